//! Signed webhooks.
//!
//! Every active webhook has a cursor into the event log. The dispatcher polls
//! for events after it that the webhook wants, POSTs them in batches as
//!
//! ```json
//! {"webhook_id": 1, "sent_at": "2026-11-25T13:00:00Z", "events": [{"id": 42, "type": "attempt_ended", ...}]}
//! ```
//!
//! with `X-Waihu-Signature: sha256=<hex HMAC-SHA256 of the body, keyed with the
//! webhook's secret>` and `X-Waihu-Timestamp` (the same instant as `sent_at`,
//! which the signature covers: receivers should refuse old timestamps to stop
//! replays). A non-2xx answer or a transport error is retried with exponential
//! backoff; after the last try the batch is recorded as undelivered and the
//! cursor moves on, so one dead receiver cannot stall the log. Deliveries are
//! recorded with the cursor move in one transaction.
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use waihu_store::{Delivery, Store, Webhook};

use crate::api::event_json;

pub const SIGNATURE_HEADER: &str = "x-waihu-signature";
pub const TIMESTAMP_HEADER: &str = "x-waihu-timestamp";

#[derive(Debug, Clone)]
pub struct Settings {
    /// How often the log is polled for new events.
    pub poll: Duration,
    /// Events per POST.
    pub batch: i64,
    /// Tries per batch (first try included).
    pub tries: u32,
    /// Wait before the second try; doubled for each further try.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll: Duration::from_secs(1),
            batch: 100,
            tries: 6,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Settings {
    /// The wait after failed try `tried` (1-based), or None when it was the last.
    pub fn retry_delay(&self, tried: u32) -> Option<Duration> {
        if tried >= self.tries {
            return None;
        }
        let factor = 1u32
            .checked_shl(tried.saturating_sub(1))
            .unwrap_or(u32::MAX);
        Some(self.backoff.saturating_mul(factor).min(self.max_backoff))
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Check a signature header in constant time (what a receiver does).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

/// The delivery client: `http` and `https` URLs, TLS by rustls trusting the Mozilla roots
/// (and `extra_roots`, for a private CA), certificates and host names always verified.
pub fn delivery_client(
    settings: &Settings,
    extra_roots: &[reqwest::Certificate],
) -> reqwest::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(settings.timeout);
    for r in extra_roots {
        b = b.add_root_certificate(r.clone());
    }
    b.build()
}

/// Run until `stop` turns true: poll, deliver, record.
pub async fn run_dispatcher(
    store: Store,
    settings: Settings,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let client = match delivery_client(&settings, &[]) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "webhooks disabled: cannot build the HTTP client");
            return;
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        match pass(&store, &client, &settings, &mut stop).await {
            Ok(true) => continue, // more may be waiting
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "webhook pass failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.poll) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One round over every active webhook. True when some batch was full.
async fn pass(
    store: &Store,
    client: &reqwest::Client,
    settings: &Settings,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Result<bool, waihu_store::StoreError> {
    let mut more = false;
    for hook in store.webhooks().await?.into_iter().filter(|w| w.active) {
        let head = store.last_event_id().await?;
        let evs = store
            .events_of_types(&hook.event_types, hook.cursor, settings.batch)
            .await?;
        if evs.is_empty() {
            if head > hook.cursor {
                store.webhook_skip_to(hook.id, head).await?;
            }
            continue;
        }
        more |= evs.len() as i64 == settings.batch;
        let d = deliver(client, settings, &hook, &evs, stop).await;
        store.webhook_record(&d, d.last_event).await?;
        if *stop.borrow() {
            break;
        }
    }
    Ok(more)
}

async fn deliver(
    client: &reqwest::Client,
    settings: &Settings,
    hook: &Webhook,
    evs: &[(i64, waihu_core::Event)],
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> Delivery {
    let first = evs.first().map(|(id, _)| *id).unwrap_or(0);
    let last = evs.last().map(|(id, _)| *id).unwrap_or(0);
    let mut tried = 0u32;
    let (mut status, mut error): (Option<u16>, Option<String>);
    loop {
        tried += 1;
        let now = Utc::now();
        let sent_at = now.to_rfc3339_opts(SecondsFormat::Secs, true);
        let body = json!({
            "webhook_id": hook.id,
            "sent_at": sent_at,
            "events": evs.iter().map(|(id, e)| event_json(*id, e)).collect::<Vec<_>>(),
        })
        .to_string();
        let res = client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sign(&hook.secret, body.as_bytes()))
            .header(TIMESTAMP_HEADER, now.timestamp().to_string())
            .header("x-waihu-delivery", format!("{}:{first}-{last}", hook.id))
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                return Delivery {
                    webhook_id: hook.id,
                    first_event: first,
                    last_event: last,
                    events: evs.len() as i64,
                    tries: tried as i64,
                    http_status: Some(r.status().as_u16()),
                    error: None,
                    delivered: true,
                    at: Utc::now(),
                }
            }
            Ok(r) => {
                status = Some(r.status().as_u16());
                error = Some(format!("HTTP {}", r.status()));
            }
            Err(e) => {
                status = None;
                error = Some(e.to_string());
            }
        }
        tracing::warn!(webhook = hook.id, tried, error = ?error, "webhook delivery failed");
        let Some(wait) = settings.retry_delay(tried) else {
            break;
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => break,
        }
    }
    Delivery {
        webhook_id: hook.id,
        first_event: first,
        last_event: last,
        events: evs.len() as i64,
        tries: tried as i64,
        http_status: status,
        error,
        delivered: false,
        at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Webhooks go over HTTPS with the certificate verified: a loopback server whose
    /// certificate no trusted root signed is refused; trusting its CA, the same client
    /// completes the TLS handshake and gets an HTTP answer.
    #[tokio::test]
    async fn https_deliveries_verify_the_certificate() {
        let ca = waihu_push::peer::TestCa::new().unwrap();
        let peer = waihu_push::peer::webhook(&ca, b"s", Default::default())
            .await
            .unwrap();
        assert!(peer.url.starts_with("https://127.0.0.1:"), "{}", peer.url);
        let settings = Settings::default();
        let e = delivery_client(&settings, &[])
            .unwrap()
            .post(&peer.url)
            .body("{}")
            .send()
            .await
            .unwrap_err();
        let mut chain = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            chain.push_str(&format!(": {s}"));
            src = s.source();
        }
        assert!(chain.contains("certificate"), "{chain}");
        let root = reqwest::Certificate::from_pem(ca.ca_pem.as_bytes()).unwrap();
        let r = delivery_client(&settings, &[root])
            .unwrap()
            .post(&peer.url)
            .body("{}")
            .send()
            .await
            .unwrap();
        // The peer checks the push-webhook signature headers, which this body lacks.
        assert_eq!(r.status(), 401);
    }

    #[test]
    fn signature_matches_rfc4231_style_vector_and_verifies() {
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog").
        let s = sign("key", b"The quick brown fox jumps over the lazy dog");
        assert_eq!(
            s,
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert!(verify(
            "key",
            b"The quick brown fox jumps over the lazy dog",
            &s
        ));
        assert!(!verify(
            "key",
            b"The quick brown fox jumps over the lazy cat",
            &s
        ));
        assert!(!verify(
            "other",
            b"The quick brown fox jumps over the lazy dog",
            &s
        ));
        assert!(!verify("key", b"x", "sha256=zz"));
        assert!(!verify("key", b"x", "md5=00"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_stops() {
        let s = Settings {
            tries: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..Settings::default()
        };
        let d: Vec<_> = (1..=5).map(|t| s.retry_delay(t)).collect();
        assert_eq!(
            d,
            vec![
                Some(Duration::from_millis(100)),
                Some(Duration::from_millis(200)),
                Some(Duration::from_millis(400)),
                Some(Duration::from_millis(500)),
                None
            ]
        );
    }
}
