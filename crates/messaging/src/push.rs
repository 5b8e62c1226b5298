//! The push outbox sender: queued `push` messages go to APNs, FCM or the in-house webhook
//! with the same write order as SMS (claim committed before the request, `sent` after the
//! service accepted it, leftovers of a crash become `unknown`, never resent).
//!
//! The device comes from the customer's attributes: `push_token` (aliases `device_token`,
//! `推送令牌`) and `push_platform` (`apns`/`ios`, `fcm`/`android`, `webhook`; else the
//! config's `default_platform`). The message's number stays the phone, so DNC and opt-out
//! suppress a push exactly like an SMS.
//!
//! Retries: an answer that says "later" (429, 5xx, connection refused before sending,
//! refused credentials) puts the message back in the queue with exponential back-off
//! (1 s doubling to 5 min, or the service's Retry-After), at most [`MAX_ATTEMPTS`] times.
//! An invalid device token fails the message and records why.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use waihu_core::AttrValue;
use waihu_push::{Outcome, Platform, PushClient, PushMessage};
use waihu_store::{OutMessage, Store, StoreError};

/// Sends per message before it is failed.
pub const MAX_ATTEMPTS: u32 = 6;
const TOKEN_ATTRS: [&str; 3] = ["push_token", "device_token", "推送令牌"];
const PLATFORM_ATTRS: [&str; 2] = ["push_platform", "推送平台"];

#[derive(Debug, Clone)]
pub struct PushSenderConfig {
    /// How often to look for queued messages.
    pub poll: Duration,
    /// Requests in flight at once (HTTP/2 multiplexes them on one connection).
    pub concurrency: usize,
    /// Gate rules for messages of no campaign (a campaign's come from its file).
    pub rules: crate::gate::MessageRules,
}

impl Default for PushSenderConfig {
    fn default() -> Self {
        PushSenderConfig {
            poll: Duration::from_millis(200),
            concurrency: 16,
            rules: crate::gate::MessageRules::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushStats {
    pub reconciled_unknown: u64,
    pub sent: u64,
    pub failed: u64,
    /// Of `failed`: the device token was invalid or unregistered.
    pub token_invalid: u64,
    /// Sends answered "later" and queued again.
    pub retried: u64,
    pub unknown: u64,
}

/// The back-off after the `attempt`-th failed try.
pub fn backoff(attempt: u32, said: Option<Duration>) -> Duration {
    said.unwrap_or_else(|| Duration::from_secs(1u64 << attempt.saturating_sub(1).min(8)))
        .min(Duration::from_secs(300))
}

fn attr(c: &waihu_store::Customer, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match c.attrs.get(*n) {
        Some(AttrValue::Text(t)) if !t.trim().is_empty() => Some(t.trim().to_string()),
        Some(AttrValue::Number(n)) => Some(format!("{n}")),
        _ => None,
    })
}

/// Where a message goes, or why it cannot go anywhere.
async fn device(
    store: &Store,
    client: &PushClient,
    m: &OutMessage,
) -> Result<Result<(Platform, String), String>, StoreError> {
    let Some(id) = m.customer else {
        return Ok(Err("push message without a customer".into()));
    };
    let Some(c) = store.customer(id).await? else {
        return Ok(Err(format!("customer {} no longer exists", id.0)));
    };
    let Some(token) = attr(&c, &TOKEN_ATTRS) else {
        return Ok(Err("customer has no push_token".into()));
    };
    let platform = match attr(&c, &PLATFORM_ATTRS) {
        Some(p) => match Platform::parse(&p) {
            Some(p) => p,
            None => {
                return Ok(Err(format!(
                    "push_platform '{p}': use apns, fcm or webhook"
                )))
            }
        },
        None => match client.default_platform {
            Some(p) => p,
            None => {
                return Ok(Err(
                    "customer has no push_platform and no default is set".into()
                ))
            }
        },
    };
    if !client.serves(platform) {
        return Ok(Err(format!(
            "no {} gateway is configured",
            platform.as_str()
        )));
    }
    Ok(Ok((platform, token)))
}

/// Runs until `shutdown` becomes true (or its sender is dropped); returns what it did.
pub async fn run_push_sender(
    store: Store,
    client: Arc<PushClient>,
    cfg: PushSenderConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<PushStats, StoreError> {
    let mut stats = PushStats {
        reconciled_unknown: store
            .messages_reconcile_on(Some("push"), Utc::now())
            .await?,
        ..PushStats::default()
    };
    // Message id → (failed tries, not before).
    let mut retry: HashMap<i64, (u32, DateTime<Utc>)> = HashMap::new();
    let mut in_flight: JoinSet<(i64, Outcome)> = JoinSet::new();
    let mut tick = tokio::time::interval(cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = cfg.concurrency.max(1);
    let mut gate = crate::gate::Gate::new(cfg.rules.clone());
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok((id, out)) = done {
                    settle(&store, id, out, &mut retry, &mut stats).await?;
                }
            }
            _ = tick.tick() => {
                let room = limit.saturating_sub(in_flight.len());
                if room == 0 {
                    continue;
                }
                let now = Utc::now();
                // Look past messages still backing off.
                let due = store.messages_due_on(Some("push"), (room + retry.len()) as i64, now).await?;
                for m in due.into_iter().filter(|m| retry.get(&m.id).is_none_or(|(_, at)| *at <= now)).take(room) {
                    let target = device(&store, &client, &m).await?;
                    if !gate.admit(&store, &m, Utc::now()).await? {
                        continue;
                    }
                    match target {
                        Err(why) => {
                            store.message_failed(m.id, &why, Utc::now()).await?;
                            stats.failed += 1;
                        }
                        Ok((platform, token)) => {
                            let msg = PushMessage {
                                data: [
                                    ("template".to_string(), m.template.clone()),
                                    ("campaign".to_string(), m.campaign.map(|c| c.0.to_string()).unwrap_or_default()),
                                ]
                                .into_iter()
                                .collect(),
                                key: m.key,
                                token,
                                title: client.title.clone(),
                                body: m.text,
                                ttl: client.ttl,
                            };
                            let (client, id) = (client.clone(), m.id);
                            in_flight.spawn(async move { (id, client.send(platform, &msg).await) });
                        }
                    }
                }
            }
        }
    }
    // Answers of what is in flight, for a bounded time; the rest stay `sending` and the
    // next start marks them unknown.
    let drain = async {
        while let Some(done) = in_flight.join_next().await {
            if let Ok((id, out)) = done {
                settle(&store, id, out, &mut retry, &mut stats).await?;
            }
        }
        Ok::<_, StoreError>(())
    };
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(5), drain).await {
        r?;
    }
    Ok(stats)
}

async fn settle(
    store: &Store,
    id: i64,
    out: Outcome,
    retry: &mut HashMap<i64, (u32, DateTime<Utc>)>,
    stats: &mut PushStats,
) -> Result<(), StoreError> {
    let now = Utc::now();
    match out {
        Outcome::Accepted { id: gw } => {
            let gw = if gw.is_empty() {
                format!("push:{id}")
            } else {
                gw
            };
            store.message_sent(id, &[gw], now).await?;
            retry.remove(&id);
            stats.sent += 1;
        }
        Outcome::Rejected {
            reason,
            token_invalid,
        } => {
            let reason = if token_invalid {
                stats.token_invalid += 1;
                format!("device token invalid: {reason}")
            } else {
                reason
            };
            store.message_failed(id, &reason, now).await?;
            retry.remove(&id);
            stats.failed += 1;
        }
        Outcome::RetryLater { reason, after } => {
            requeue(store, id, &reason, after, retry, stats).await?;
        }
        Outcome::AuthFailed { reason } => {
            tracing::warn!(%reason, "push credentials refused; the token is renewed and the message retried");
            requeue(store, id, &reason, None, retry, stats).await?;
        }
        Outcome::Unknown { reason } => {
            store.message_unknown(id, &reason, now).await?;
            retry.remove(&id);
            stats.unknown += 1;
        }
    }
    Ok(())
}

async fn requeue(
    store: &Store,
    id: i64,
    reason: &str,
    after: Option<Duration>,
    retry: &mut HashMap<i64, (u32, DateTime<Utc>)>,
    stats: &mut PushStats,
) -> Result<(), StoreError> {
    let tries = retry.get(&id).map_or(0, |(n, _)| *n) + 1;
    if tries >= MAX_ATTEMPTS {
        store
            .message_failed(
                id,
                &format!("gave up after {tries} tries: {reason}"),
                Utc::now(),
            )
            .await?;
        retry.remove(&id);
        stats.failed += 1;
        return Ok(());
    }
    let wait = chrono::Duration::from_std(backoff(tries, after)).unwrap_or_default();
    retry.insert(id, (tries, Utc::now() + wait));
    store.message_requeue(id).await?;
    stats.retried += 1;
    tracing::info!(message = id, tries, %reason, "push answered later; queued again");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1, None), Duration::from_secs(1));
        assert_eq!(backoff(2, None), Duration::from_secs(2));
        assert_eq!(backoff(5, None), Duration::from_secs(16));
        assert_eq!(backoff(30, None), Duration::from_secs(256));
        assert_eq!(
            backoff(1, Some(Duration::from_secs(9000))),
            Duration::from_secs(300)
        );
        assert_eq!(
            backoff(4, Some(Duration::from_secs(1))),
            Duration::from_secs(1)
        );
    }
}
