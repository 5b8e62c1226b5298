//! Dialog scripts as data: format, validator and a sans-IO interpreter.
//!
//! Business users write a script in YAML (see `docs/scripts.md`); [`load_file`]
//! parses it, checks it (unknown targets, unreachable states, states with no
//! way to end, intents without examples, variables nobody provides, templates
//! that do not render) and compiles it to a [`Program`]. Every error names the
//! file, line and column.
//!
//! An [`Interpreter`] runs one call over a shared program. It is a state
//! machine in the style of str0m's `Rtc`: it never reads the clock and does no
//! I/O. The runtime loop is:
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use waihu_dialog::{Input, Interpreter, Output};
//! # fn now() -> chrono::DateTime<chrono::Utc> { chrono::Utc::now() }
//! let prog = Arc::new(waihu_dialog::load_file("examples/scripts/order_confirmation.zh.yaml".as_ref())?);
//! let customer = [("name", "张先生"), ("order.amount", "299")];
//! let mut call = Interpreter::new(prog, customer, 42)?;
//! for out in call.handle(now(), Input::Answered) {
//!     match out {
//!         Output::Play { text, style, .. } => { /* synthesise and play */ }
//!         Output::Listen { no_input_ms, .. } => { /* start ASR + timer */ }
//!         Output::Action { action } => { /* SMS, transfer, DNC, callback */ }
//!         Output::End { outcome, .. } => { /* hang up */ }
//!         Output::StopPlayback => {}
//!     }
//! }
//! // ... then PlaybackFinished, Utterance { nlu, emotion }, NoInput, Dtmf, HungUp.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Architecture invariant: no I/O and no clock reads outside [`load_file`]
//! (which reads the script); the same inputs always give the same outputs.

pub mod cond;
pub mod edit;
pub mod graph;
pub mod interp;
mod lang;
pub mod model;
pub mod program;
pub mod template;
pub mod testing;
pub mod yaml;

pub use interp::{Action, Aside, Input, Interpreter, MissingVariables, Output, Step, StepKind};
pub use model::{Language, Level, Script, VoicemailAction, VoicemailRule};
pub use program::{
    load_file, load_str, BanditReward, CBandit, CKnowledge, Diagnostic, LoadError, Program,
    StyleUse, VoicemailMessage,
};
