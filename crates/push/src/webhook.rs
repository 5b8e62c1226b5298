//! A signed webhook for in-house apps that run their own push (or in-app inbox).
//!
//! `POST <url>` with a JSON body `{"id","to","title","body","data","ttl_seconds"}` and:
//! - `X-Waihu-Timestamp: <unix seconds>`
//! - `X-Waihu-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`
//! - `Idempotency-Key: <message key>` — the same message always carries the same key, so a
//!   receiver that stores keys can drop a duplicate.
//!
//! A receiver checks the signature with [`verify`] (constant-time) and refuses timestamps
//! older than [`MAX_SKEW`] (replays). Answers: 2xx accepted; 404/410 the recipient is
//! unknown; 429/5xx retry (honouring `Retry-After`); other 4xx refused.
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use crate::{retry_after, HttpRequest, Outcome, PushMessage};

/// How far a receiver accepts a timestamp from its own clock.
pub const MAX_SKEW: u64 = 300;

fn mac(secret: &[u8], ts: u64, body: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    m.update(ts.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// The `X-Waihu-Signature` value.
pub fn sign(secret: &[u8], ts: u64, body: &[u8]) -> String {
    let tag = mac(secret, ts, body).finalize().into_bytes();
    let hex: String = tag.iter().map(|b| format!("{b:02x}")).collect();
    format!("v1={hex}")
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("signature header is not v1=<64 hex digits>")]
    Format,
    #[error("timestamp {ts} is more than {MAX_SKEW} s from now ({now})")]
    Stale { ts: u64, now: u64 },
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a request as a receiver should: fresh timestamp, then the tag in constant time.
pub fn verify(
    secret: &[u8],
    ts: u64,
    body: &[u8],
    header: &str,
    now: u64,
) -> Result<(), VerifyError> {
    let hex = header
        .trim()
        .strip_prefix("v1=")
        .ok_or(VerifyError::Format)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(VerifyError::Format);
    }
    let tag: Vec<u8> = (0..32)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| VerifyError::Format))
        .collect::<Result<_, _>>()?;
    if ts.abs_diff(now) > MAX_SKEW {
        return Err(VerifyError::Stale { ts, now });
    }
    mac(secret, ts, body)
        .verify_slice(&tag)
        .map_err(|_| VerifyError::Mismatch)
}

pub fn request(url: &str, secret: &[u8], msg: &PushMessage, now: u64) -> HttpRequest {
    let body = json!({
        "id": msg.key,
        "to": msg.token,
        "title": msg.title,
        "body": msg.body,
        "data": msg.data,
        "ttl_seconds": msg.ttl.as_secs(),
    })
    .to_string()
    .into_bytes();
    HttpRequest {
        url: url.to_string(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-waihu-timestamp".into(), now.to_string()),
            ("x-waihu-signature".into(), sign(secret, now, &body)),
            ("idempotency-key".into(), msg.key.clone()),
        ],
        body,
    }
}

pub fn outcome(status: u16, headers: &[(String, String)], body: &[u8]) -> Outcome {
    let text: String = String::from_utf8_lossy(body).chars().take(160).collect();
    let reason = format!("webhook {status} {}", text.trim())
        .trim_end()
        .to_string();
    match status {
        200..=299 => Outcome::Accepted {
            id: headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-request-id"))
                .map(|(_, v)| v.clone())
                .unwrap_or_default(),
        },
        404 | 410 => Outcome::Rejected {
            reason,
            token_invalid: true,
        },
        401 | 403 => Outcome::AuthFailed { reason },
        429 | 500..=599 => Outcome::RetryLater {
            reason,
            after: retry_after(headers),
        },
        _ => Outcome::Rejected {
            reason,
            token_invalid: false,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::time::Duration;

    #[test]
    fn signed_requests_verify_and_tampering_does_not() {
        let m = PushMessage {
            key: "fallback:1:2:coupon".into(),
            token: "user-42".into(),
            title: "外呼".into(),
            body: "优惠券".into(),
            data: BTreeMap::new(),
            ttl: Duration::from_secs(60),
        };
        let r = request("https://app.example/push", b"s3cret", &m, 1_000);
        let sig = r.header("x-waihu-signature").unwrap();
        assert_eq!(r.header("idempotency-key"), Some("fallback:1:2:coupon"));
        verify(b"s3cret", 1_000, &r.body, sig, 1_100).unwrap();
        assert_eq!(
            verify(b"other", 1_000, &r.body, sig, 1_000),
            Err(VerifyError::Mismatch)
        );
        let mut body = r.body.clone();
        body[3] ^= 1;
        assert_eq!(
            verify(b"s3cret", 1_000, &body, sig, 1_000),
            Err(VerifyError::Mismatch)
        );
        assert_eq!(
            verify(b"s3cret", 1_000, &r.body, sig, 2_000),
            Err(VerifyError::Stale {
                ts: 1_000,
                now: 2_000
            })
        );
        assert_eq!(
            verify(b"s3cret", 1_000, &r.body, "v2=00", 1_000),
            Err(VerifyError::Format)
        );
    }

    #[test]
    fn answers_map_to_outcomes() {
        assert!(matches!(outcome(202, &[], b""), Outcome::Accepted { .. }));
        assert!(matches!(
            outcome(410, &[], b"gone"),
            Outcome::Rejected {
                token_invalid: true,
                ..
            }
        ));
        assert!(matches!(outcome(503, &[], b""), Outcome::RetryLater { .. }));
        assert!(matches!(outcome(401, &[], b""), Outcome::AuthFailed { .. }));
        assert!(matches!(
            outcome(422, &[], b"bad"),
            Outcome::Rejected {
                token_invalid: false,
                ..
            }
        ));
    }

    proptest! {
        #[test]
        fn verify_never_panics(h in ".{0,80}", ts in any::<u64>(), now in any::<u64>()) {
            let _ = verify(b"k", ts, b"{}", &h, now);
        }
    }
}
