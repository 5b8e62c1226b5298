//! APNs provider API (Apple's "Sending notification requests to APNs"): HTTP/2 only,
//! `POST /3/device/<hex token>`, token-based authentication.
//!
//! - The provider token is a JWT: header `{"alg":"ES256","kid":<key id>}`, claims
//!   `{"iss":<team id>,"iat":<seconds>}`, signed with the team's `.p8` key (PKCS#8 P-256).
//!   APNs refuses a token older than one hour (`ExpiredProviderToken`) and one refreshed
//!   more often than every 20 minutes (`TooManyProviderTokenUpdates`), so it is reused for
//!   [`TOKEN_REUSE`] and then replaced.
//! - Headers: `authorization: bearer <jwt>`, `apns-topic` (the app's bundle id),
//!   `apns-push-type: alert`, `apns-priority: 10`, `apns-expiration` (Unix seconds),
//!   `apns-id` (a UUID; ours is derived from the message key), optional `apns-collapse-id`.
//! - Body: `{"aps":{"alert":{"title","body"},"sound":"default"}, <custom keys>}`, at most
//!   4 KB.
//! - Answers: 200 with `apns-id`; errors as `{"reason": ...}` — 400 `BadDeviceToken`,
//!   410 `Unregistered`/`ExpiredToken` (the app is gone), 403 `ExpiredProviderToken` /
//!   `InvalidProviderToken`, 429 `TooManyRequests`, 500/503.
use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::{jwt, retry_after, uuid_from_key, HttpRequest, Outcome, PushMessage};

/// How long one provider token is used (APNs: between 20 and 60 minutes).
pub const TOKEN_REUSE: Duration = Duration::from_secs(50 * 60);
/// APNs' payload limit for alert notifications.
pub const MAX_PAYLOAD: usize = 4096;
pub const PRODUCTION: &str = "https://api.push.apple.com";
pub const SANDBOX: &str = "https://api.sandbox.push.apple.com";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "the APNs key is not a PKCS#8 P-256 private key in PEM (an AuthKey_<id>.p8 file): {0}"
    )]
    Key(String),
    #[error("{0} is empty")]
    Missing(&'static str),
}

/// Token-based credentials and the provider token in use.
pub struct ApnsAuth {
    key: p256::ecdsa::SigningKey,
    key_id: String,
    team_id: String,
    current: Option<(u64, String)>,
}

impl std::fmt::Debug for ApnsAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApnsAuth")
            .field("key_id", &self.key_id)
            .field("team_id", &self.team_id)
            .finish_non_exhaustive()
    }
}

impl ApnsAuth {
    pub fn from_p8(pem: &str, key_id: &str, team_id: &str) -> Result<ApnsAuth, KeyError> {
        use p256::pkcs8::DecodePrivateKey;
        if key_id.trim().is_empty() {
            return Err(KeyError::Missing("key_id"));
        }
        if team_id.trim().is_empty() {
            return Err(KeyError::Missing("team_id"));
        }
        let key = p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim())
            .map_err(|e| KeyError::Key(e.to_string()))?;
        Ok(ApnsAuth {
            key,
            key_id: key_id.trim().to_string(),
            team_id: team_id.trim().to_string(),
            current: None,
        })
    }

    /// The provider token to use at `now` (Unix seconds): the current one while it is
    /// younger than [`TOKEN_REUSE`], else a new one.
    pub fn token(&mut self, now: u64) -> &str {
        let fresh = matches!(&self.current, Some((iat, _)) if now >= *iat && now - iat < TOKEN_REUSE.as_secs());
        if !fresh {
            let t = jwt::sign_es256(
                &json!({"alg": "ES256", "kid": self.key_id}),
                &json!({"iss": self.team_id, "iat": now}),
                &self.key,
            );
            self.current = Some((now, t));
        }
        &self.current.as_ref().expect("set above").1
    }

    /// Drops the token after APNs refused it, so the next request signs a new one.
    pub fn invalidate(&mut self) {
        self.current = None;
    }
}

/// Whether a device token looks like one APNs issues (hex, even length, 32–200 bytes).
pub fn valid_device_token(t: &str) -> bool {
    (64..=400).contains(&t.len())
        && t.len().is_multiple_of(2)
        && t.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The JSON payload of an alert notification.
pub fn payload(msg: &PushMessage) -> Value {
    let mut root = Map::new();
    for (k, v) in &msg.data {
        if k != "aps" {
            root.insert(k.clone(), Value::String(v.clone()));
        }
    }
    root.insert(
        "aps".into(),
        json!({"alert": {"title": msg.title, "body": msg.body}, "sound": "default"}),
    );
    Value::Object(root)
}

/// The request for one notification, or the outcome if it can never be sent (bad token,
/// payload too large) — decided before anything leaves the process.
pub fn request(
    endpoint: &str,
    topic: &str,
    provider_token: &str,
    msg: &PushMessage,
    now: u64,
) -> Result<HttpRequest, Outcome> {
    let token = msg.token.trim().to_ascii_lowercase();
    if !valid_device_token(&token) {
        return Err(Outcome::Rejected {
            reason: "not an APNs device token (hex, 64–400 characters)".into(),
            token_invalid: true,
        });
    }
    let body = payload(msg).to_string().into_bytes();
    if body.len() > MAX_PAYLOAD {
        return Err(Outcome::Rejected {
            reason: format!("payload is {} bytes; APNs allows {MAX_PAYLOAD}", body.len()),
            token_invalid: false,
        });
    }
    let mut headers = vec![
        ("authorization".into(), format!("bearer {provider_token}")),
        ("apns-topic".into(), topic.to_string()),
        ("apns-push-type".into(), "alert".into()),
        ("apns-priority".into(), "10".into()),
        (
            "apns-expiration".into(),
            (now + msg.ttl.as_secs()).to_string(),
        ),
        ("apns-id".into(), uuid_from_key(&msg.key)),
        ("content-type".into(), "application/json".into()),
    ];
    if let Some(c) = msg.data.get("collapse_id") {
        if c.len() <= 64 {
            headers.push(("apns-collapse-id".into(), c.clone()));
        }
    }
    Ok(HttpRequest {
        url: format!("{}/3/device/{token}", endpoint.trim_end_matches('/')),
        headers,
        body,
    })
}

/// What an APNs answer means.
pub fn outcome(status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
    let reason = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("reason").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_default();
    let said = |what: &str| {
        if reason.is_empty() {
            format!("APNs {status} {what}")
        } else {
            format!("APNs {status} {reason}")
        }
    };
    match status {
        200 => Outcome::Accepted {
            id: headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("apns-id"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        },
        410 => Outcome::Rejected {
            reason: said("gone"),
            token_invalid: true,
        },
        400 if matches!(
            reason.as_str(),
            "BadDeviceToken" | "DeviceTokenNotForTopic" | "MissingDeviceToken"
        ) =>
        {
            Outcome::Rejected {
                reason: said(""),
                token_invalid: true,
            }
        }
        403 if matches!(
            reason.as_str(),
            "ExpiredProviderToken" | "InvalidProviderToken" | "MissingProviderToken"
        ) =>
        {
            Outcome::AuthFailed { reason: said("") }
        }
        429 | 500 | 503 => Outcome::RetryLater {
            reason: said("try later"),
            after: retry_after(headers),
        },
        _ => Outcome::Rejected {
            reason: said("refused"),
            token_invalid: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn msg(token: &str) -> PushMessage {
        PushMessage {
            key: "fallback:1:7:coupon".into(),
            token: token.into(),
            title: "外呼".into(),
            body: "您的优惠券已到账".into(),
            data: BTreeMap::from([("campaign".into(), "1".into())]),
            ttl: Duration::from_secs(3600),
        }
    }

    fn auth() -> ApnsAuth {
        use p256::pkcs8::EncodePrivateKey;
        let k = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
        let pem = k.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        ApnsAuth::from_p8(&pem, "KEY123", "TEAM456").unwrap()
    }

    #[test]
    fn provider_token_is_reused_then_replaced() {
        let mut a = auth();
        let t0 = a.token(1_000).to_string();
        assert_eq!(a.token(1_000 + 49 * 60), t0);
        let t1 = a.token(1_000 + 50 * 60).to_string();
        assert_ne!(t1, t0);
        let d = jwt::decode(&t1).unwrap();
        assert_eq!(d.str("kid"), Some("KEY123"));
        assert_eq!(d.str("iss"), Some("TEAM456"));
        assert_eq!(d.num("iat"), Some(4_000));
        a.invalidate();
        assert_ne!(a.token(4_001), t1);
    }

    #[test]
    fn request_carries_what_apns_requires() {
        let token = "ab".repeat(32);
        let r = request(SANDBOX, "com.example.shop", "JWT", &msg(&token), 100).unwrap();
        assert_eq!(r.url, format!("{SANDBOX}/3/device/{token}"));
        assert_eq!(r.header("authorization"), Some("bearer JWT"));
        assert_eq!(r.header("apns-topic"), Some("com.example.shop"));
        assert_eq!(r.header("apns-push-type"), Some("alert"));
        assert_eq!(r.header("apns-expiration"), Some("3700"));
        assert_eq!(
            r.header("apns-id"),
            Some(uuid_from_key("fallback:1:7:coupon").as_str())
        );
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["aps"]["alert"]["body"], "您的优惠券已到账");
        assert_eq!(v["campaign"], "1");
    }

    #[test]
    fn hopeless_requests_never_leave() {
        assert!(matches!(
            request(SANDBOX, "t", "J", &msg("not-hex"), 0),
            Err(Outcome::Rejected {
                token_invalid: true,
                ..
            })
        ));
        let mut m = msg(&"ab".repeat(32));
        m.body = "长".repeat(2000);
        assert!(matches!(
            request(SANDBOX, "t", "J", &m, 0),
            Err(Outcome::Rejected {
                token_invalid: false,
                ..
            })
        ));
    }

    #[test]
    fn answers_map_to_outcomes() {
        let id = vec![("apns-id".to_string(), "X".to_string())];
        assert_eq!(outcome(200, &id, b""), Outcome::Accepted { id: "X".into() });
        assert!(matches!(
            outcome(410, &[], br#"{"reason":"Unregistered","timestamp":1}"#),
            Outcome::Rejected {
                token_invalid: true,
                ..
            }
        ));
        assert!(matches!(
            outcome(400, &[], br#"{"reason":"BadDeviceToken"}"#),
            Outcome::Rejected {
                token_invalid: true,
                ..
            }
        ));
        assert!(matches!(
            outcome(400, &[], br#"{"reason":"PayloadEmpty"}"#),
            Outcome::Rejected {
                token_invalid: false,
                ..
            }
        ));
        assert!(matches!(
            outcome(403, &[], br#"{"reason":"ExpiredProviderToken"}"#),
            Outcome::AuthFailed { .. }
        ));
        let ra = vec![("retry-after".to_string(), "3".to_string())];
        assert_eq!(
            outcome(429, &ra, br#"{"reason":"TooManyRequests"}"#),
            Outcome::RetryLater {
                reason: "APNs 429 TooManyRequests".into(),
                after: Some(Duration::from_secs(3))
            }
        );
        // Garbage bodies still give an outcome.
        assert!(matches!(
            outcome(503, &[], b"\xff\x00"),
            Outcome::RetryLater { .. }
        ));
    }

    #[test]
    fn bad_keys_are_explained() {
        assert!(matches!(
            ApnsAuth::from_p8(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                "K",
                "T"
            ),
            Err(KeyError::Key(_))
        ));
        assert!(matches!(
            ApnsAuth::from_p8("", " ", "T"),
            Err(KeyError::Missing("key_id"))
        ));
    }
}
