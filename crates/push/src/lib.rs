//! App push for waihu's follow-ups: when a call goes unanswered and the customer has the
//! app, the planner's `push` fallback reaches them as a notification instead of an SMS.
//!
//! Three gateways, each written from its documented protocol (no vendor SDK, nothing that
//! needs the internet at build time):
//!
//! - [`apns`]: Apple Push Notification service, HTTP/2 `POST /3/device/<token>` with an
//!   ES256 provider token (JWT) signed by the team's `.p8` key, reused for 50 minutes.
//! - [`fcm`]: Firebase Cloud Messaging HTTP v1, `POST /v1/projects/<id>/messages:send` with
//!   an OAuth 2 access token obtained by the service-account JWT-bearer grant (RS256).
//! - [`webhook`]: a signed JSON POST for in-house apps (HMAC-SHA256 over timestamp and
//!   body, an `Idempotency-Key` per message).
//!
//! Each module is a sans-IO core: it builds an [`HttpRequest`] from a message, the time and
//! the credentials, and turns a response (status, headers, body) into an [`Outcome`]. It
//! never reads the clock or opens a socket. [`client::PushClient`] is the runtime that
//! sends those requests with reqwest (HTTP/2 over rustls) and keeps the tokens; [`peer`]
//! holds local servers that check what each protocol requires (signatures, headers,
//! HTTP/2), used by the tests as stand-ins for the services that cannot run here.
//!
//! What is deliberately the same for all three: a request that may have reached the
//! service and got no answer is [`Outcome::Unknown`], and the outbox never sends it again
//! by itself (see `waihu_store`'s messages module).

pub mod apns;
pub mod client;
pub mod config;
pub mod fcm;
pub mod jwt;
pub mod peer;
pub mod webhook;

use std::collections::BTreeMap;
use std::time::Duration;

pub use client::PushClient;
pub use config::{ConfigError, PushConfig};

/// Which push service a device token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Apns,
    Fcm,
    Webhook,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Apns => "apns",
            Platform::Fcm => "fcm",
            Platform::Webhook => "webhook",
        }
    }

    /// `apns`/`ios`, `fcm`/`android`, `webhook`/`app`, any case.
    pub fn parse(s: &str) -> Option<Platform> {
        match s.trim().to_ascii_lowercase().as_str() {
            "apns" | "ios" => Some(Platform::Apns),
            "fcm" | "android" | "firebase" => Some(Platform::Fcm),
            "webhook" | "app" => Some(Platform::Webhook),
            _ => None,
        }
    }
}

/// One notification to one device.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// The outbox key: stable per message, used as the idempotency key and to derive ids.
    pub key: String,
    /// The device token (APNs: hex; FCM: registration token; webhook: the app's user id).
    pub token: String,
    pub title: String,
    pub body: String,
    /// Extra key/values for the app (campaign, template...).
    pub data: BTreeMap<String, String>,
    /// How long the service should keep trying to deliver.
    pub ttl: Duration,
}

/// What happened to one send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The service accepted the notification; its id (apns-id, FCM message name...).
    Accepted { id: String },
    /// The service refused it and will refuse it again. `token_invalid`: the device token
    /// is unknown or unregistered (the app was removed), so the customer has no push.
    Rejected { reason: String, token_invalid: bool },
    /// Not accepted this time (rate limit, service unavailable, connection refused before
    /// anything was sent); try again after `after` if the service said when.
    RetryLater {
        reason: String,
        after: Option<Duration>,
    },
    /// Our credentials were refused (expired or invalid provider token): the token is
    /// dropped and the message retried; persistent failures surface in the reason.
    AuthFailed { reason: String },
    /// The request may have reached the service and no answer came.
    Unknown { reason: String },
}

/// A request for the runtime to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Seconds from a `Retry-After` header (the delay form; an HTTP date is ignored).
pub fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(3600)))
}

/// A canonical lowercase UUID (8-4-4-4-12) derived from a message key, so the same message
/// always carries the same id (APNs' `apns-id`).
pub fn uuid_from_key(key: &str) -> String {
    use sha2::Digest;
    let h = sha2::Sha256::digest(key.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h[..16]);
    b[6] = (b[6] & 0x0f) | 0x50; // version 5-style (name-based)
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_is_canonical_and_stable() {
        let a = uuid_from_key("fallback:1:2:coupon");
        assert_eq!(a, uuid_from_key("fallback:1:2:coupon"));
        assert_ne!(a, uuid_from_key("fallback:1:3:coupon"));
        assert_eq!(a.len(), 36);
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12]);
        assert!(a
            .chars()
            .all(|c| c == '-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    }

    #[test]
    fn platforms_parse_their_aliases() {
        assert_eq!(Platform::parse(" iOS "), Some(Platform::Apns));
        assert_eq!(Platform::parse("Android"), Some(Platform::Fcm));
        assert_eq!(Platform::parse("webhook"), Some(Platform::Webhook));
        assert_eq!(Platform::parse("pager"), None);
    }

    #[test]
    fn retry_after_reads_seconds_only() {
        let h = |v: &str| vec![("Retry-After".to_string(), v.to_string())];
        assert_eq!(retry_after(&h("7")), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(retry_after(&[]), None);
    }
}
