//! Follow-up messages: what to say ([`templates`]) and getting it sent: SMS over SMPP
//! ([`sender`]), CMPP 2.0 to a Chinese carrier's gateway ([`cmpp`]) or an HTTP aggregator ([`http`]: Alibaba Cloud SMS, Twilio) and app push through APNs, FCM or a webhook ([`push`]).
//!
//! *Invariant:* the store owns every row (the outbox's states and the exactly-once
//! reasoning are in `waihu_store`'s messages module); the SMPP protocol lives in
//! `waihu-smpp` (CMPP in `waihu-cmpp`), the push protocols in `waihu-push`. This crate owns the sender tasks and
//! reads the clock for the times it stores. The SMPP and CMPP senders share one outbox loop
//! (`outbox`). Every outgoing message passes the compliance
//! gate ([`gate`]: quiet hours, per-number caps) right before it is claimed.

pub mod cmpp;
pub mod gate;
pub mod http;
mod outbox;
pub mod push;
pub mod sender;
pub mod templates;

pub use cmpp::{run_cmpp_sender, CmppSenderConfig};
pub use gate::{Decision, Gate, MessageRules};
pub use http::{run_http_sender, HttpSenderConfig, HttpStats};
pub use push::{run_push_sender, PushSenderConfig, PushStats};
pub use sender::{run_sender, SenderConfig, SenderStats};
pub use templates::{load_for_campaign, Rendered, TemplateError, TemplateSet};
