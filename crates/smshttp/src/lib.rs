//! SMS through HTTP aggregators, written from the providers' documented protocols (no SDK):
//!
//! - [`aliyun`]: Alibaba Cloud SMS (`dysmsapi`, version 2017-05-25): `SendSms` with the RPC
//!   signature (HMAC-SHA1 over the canonicalised query with `AccessKeySecret&`), and
//!   `QuerySendDetails` to pull delivery reports.
//! - [`twilio`]: Twilio's Messages API, `POST /2010-04-01/Accounts/{Sid}/Messages.json` with
//!   HTTP Basic auth and a form body; delivery status arrives on the `StatusCallback` URL,
//!   signed with `X-Twilio-Signature` (HMAC-SHA1 of the URL and the sorted form
//!   parameters, keyed with the auth token), which is verified before it is believed.
//!
//! Each module is sans-IO: request builders take the message, the credentials, the time and
//! a nonce and return an [`HttpRequest`]; mappers turn a status and body into an
//! [`Outcome`]. [`client`] sends them with reqwest (rustls); [`peer`] holds local servers
//! that check the signatures exactly as the providers do, for the tests.

pub mod aliyun;
pub mod client;
pub mod config;
pub mod peer;
pub mod twilio;

pub use client::HttpSmsClient;
pub use config::{ConfigError, GatewayKind, SmsHttpConfig};

/// A request to send, built by a sans-IO core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// What became of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider took the message; `id` is its message id (Twilio `sid`, Alibaba `BizId`).
    Accepted { id: String },
    /// Refused for good (bad number, template not approved, ...): fail the message.
    Rejected { reason: String },
    /// The credentials or signature were refused: fail with the reason (a retry with the
    /// same secret cannot succeed).
    AuthFailed { reason: String },
    /// Try again later (rate limit, 5xx, nothing was sent).
    RetryLater { reason: String },
    /// A request may have reached the provider and no clear answer came: never resent.
    Unknown { reason: String },
}

/// A delivery report for one message id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub id: String,
    pub delivered: bool,
    /// The provider's status or error code, as it said it.
    pub stat: String,
}

pub(crate) fn status_class(status: u16) -> Option<Outcome> {
    match status {
        429 => Some(Outcome::RetryLater {
            reason: "429 too many requests".into(),
        }),
        500..=599 => Some(Outcome::RetryLater {
            reason: format!("{status} server error"),
        }),
        _ => None,
    }
}
