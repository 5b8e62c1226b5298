//! Follow-up messages: what to say ([`templates`]) and getting it sent ([`sender`]).
//!
//! *Invariant:* the store owns every row (the outbox's states and the exactly-once
//! reasoning are in `waihu_store`'s messages module); the SMPP protocol lives in
//! `waihu-smpp`. This crate owns the sender task and reads the clock for the times it
//! stores.

pub mod sender;
pub mod templates;

pub use sender::{run_sender, SenderConfig, SenderStats};
pub use templates::{load_for_campaign, Rendered, TemplateError, TemplateSet};
