//! The SMS outbox sender for HTTP aggregators (Alibaba Cloud SMS, Twilio), chosen per
//! campaign by the gateways file. Same write order as SMPP and push: the gate admits and
//! claims (committed) before the request, `sent` with the provider's id after it accepted,
//! a request that may have arrived without a clear answer becomes `unknown` and is never
//! resent, and leftovers of a crash become `unknown` at start-up.
//!
//! Delivery reports: Twilio posts them to the status listener (its `X-Twilio-Signature`
//! verified; a forged one is refused and changes nothing); Alibaba's are pushed to the push
//! receiver when the file configures one (`push_listen`, a secret path token) — which also
//! covers messages an earlier process sent — and are pulled with `QuerySendDetails` for the
//! messages this process sent and no push has reported yet, every `receipt_poll`.
//! Replies: Twilio posts them to the same listener's `inbound_url` (signature verified),
//! Alibaba pushes them as `SmsUp`; they take the SMPP MO path — stored on the customer's
//! timeline, opt-out words → DNC.
//! "Later" answers (429, 5xx, rate limits, connection refused before sending) defer the
//! message in the store with back-off; refused credentials fail it with the provider's
//! reason (the same secret will not work on a retry).
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use waihu_smshttp::client::{Callback, OutgoingText};
use waihu_smshttp::{GatewayKind, HttpSmsClient, Outcome};
use waihu_store::{Store, StoreError};

use crate::gate::{Gate, MessageRules};

#[derive(Debug, Clone)]
pub struct HttpSenderConfig {
    pub poll: Duration,
    pub concurrency: usize,
    /// How often Alibaba delivery reports are pulled.
    pub receipt_poll: Duration,
    /// Gate rules for messages of no campaign.
    pub rules: MessageRules,
}

impl Default for HttpSenderConfig {
    fn default() -> Self {
        HttpSenderConfig {
            poll: Duration::from_millis(200),
            concurrency: 8,
            receipt_poll: Duration::from_secs(30),
            rules: MessageRules::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HttpStats {
    pub reconciled_unknown: u64,
    pub sent: u64,
    pub failed: u64,
    pub retried: u64,
    pub unknown: u64,
    pub receipts: u64,
    /// Status callbacks and incoming messages refused because their signature did not verify.
    pub forged_callbacks: u64,
    /// Messages from handsets (Twilio's incoming-message webhook), and how many opted out.
    pub replies: u64,
    pub opt_outs: u64,
}

/// Tries per message before it is failed.
pub const MAX_TRIES: u32 = 6;

struct Pending {
    message: i64,
    to: String,
    sent_at: DateTime<Utc>,
}

/// Runs until `shutdown` becomes true; returns what it did.
pub async fn run_http_sender(
    store: Store,
    client: Arc<HttpSmsClient>,
    cfg: HttpSenderConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<HttpStats, StoreError> {
    let mut stats = HttpStats {
        reconciled_unknown: store.messages_reconcile_on(Some("sms"), Utc::now()).await?,
        ..HttpStats::default()
    };
    // Every webhook receiver hands its callbacks to one channel, before it answers.
    let (cb_tx, cb_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut receivers = 0;
    if let Some(t) = &client.config.twilio {
        if let Some(bind) = t.listen {
            match waihu_smshttp::client::twilio_listener(
                bind,
                t.account.status_callback.clone(),
                t.inbound_url.clone(),
                t.account.auth_token.clone(),
                cb_tx.clone(),
                shutdown.clone(),
            )
            .await
            {
                Ok(_) => receivers += 1,
                Err(e) => tracing::error!(%e, %bind, "Twilio status listener could not bind"),
            }
        }
    }
    if let Some(p) = client.config.aliyun.as_ref().and_then(|a| a.push.as_ref()) {
        match waihu_smshttp::client::aliyun_listener(
            p.listen,
            p.token.clone(),
            cb_tx.clone(),
            shutdown.clone(),
        )
        .await
        {
            Ok(_) => receivers += 1,
            Err(e) => tracing::error!(%e, bind = %p.listen, "Alibaba push receiver could not bind"),
        }
    }
    drop(cb_tx);
    let mut callbacks = (receivers > 0).then_some(cb_rx);
    let mut gate = Gate::new(cfg.rules.clone());
    let mut names: HashMap<i64, Option<String>> = HashMap::new();
    let mut tries: HashMap<i64, u32> = HashMap::new();
    // Alibaba message id → what is needed to pull its report.
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut in_flight: JoinSet<(i64, String, GatewayKind, Outcome)> = JoinSet::new();
    let mut tick = tokio::time::interval(cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first pull one period after start, not at once: a report is never ready the moment
    // a message is accepted, and a push may bring it first.
    let mut receipts_tick = tokio::time::interval_at(
        tokio::time::Instant::now() + cfg.receipt_poll,
        cfg.receipt_poll,
    );
    receipts_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let limit = cfg.concurrency.max(1);
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            Some(cb) = async { match callbacks.as_mut() { Some(rx) => rx.recv().await, None => None } }, if callbacks.is_some() => {
                if let Callback::Receipt(r) = &cb {
                    // Pushed: no need to pull it any more.
                    pending.remove(&r.id);
                }
                on_callback(&store, cb, &mut stats).await?;
            }
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                if let Ok((id, to, kind, out)) = done {
                    settle(&store, id, &to, kind, out, &mut tries, &mut pending, &mut stats).await?;
                }
            }
            _ = receipts_tick.tick(), if !pending.is_empty() => {
                let ids: Vec<String> = pending.keys().cloned().collect();
                for biz in ids {
                    let Some(p) = pending.get(&biz) else { continue };
                    match client.aliyun_receipt(&p.to, &biz, p.sent_at).await {
                        Ok(Some(r)) => {
                            store.message_receipt(&r.id, r.delivered, &r.stat, Utc::now()).await?;
                            stats.receipts += 1;
                            pending.remove(&biz);
                        }
                        Ok(None) => {}
                        Err(e) => tracing::warn!(message = p.message, %e, "Alibaba delivery report query failed"),
                    }
                }
            }
            _ = tick.tick() => {
                let room = limit.saturating_sub(in_flight.len());
                if room == 0 {
                    continue;
                }
                for m in store.messages_due_on(Some("sms"), room as i64, Utc::now()).await? {
                    let name = match (m.campaign, m.campaign.and_then(|c| names.get(&c.0))) {
                        (None, _) => None,
                        (Some(_), Some(n)) => n.clone(),
                        (Some(c), None) => {
                            let n = store.campaign_get(c).await?.map(|r| r.name);
                            names.insert(c.0, n.clone());
                            n
                        }
                    };
                    let kind = client.config.gateway_for(name.as_deref());
                    if !gate.admit(&store, &m, Utc::now()).await? {
                        continue;
                    }
                    let client = client.clone();
                    in_flight.spawn(async move {
                        let out = client
                            .send(kind, &OutgoingText { to: &m.to, text: &m.text, template: &m.template, key: &m.key })
                            .await;
                        (m.id, m.to, kind, out)
                    });
                }
            }
        }
    }
    let drain = async {
        while let Some(done) = in_flight.join_next().await {
            if let Ok((id, to, kind, out)) = done {
                settle(
                    &store,
                    id,
                    &to,
                    kind,
                    out,
                    &mut tries,
                    &mut pending,
                    &mut stats,
                )
                .await?;
            }
        }
        Ok::<_, StoreError>(())
    };
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(5), drain).await {
        r?;
    }
    // Callbacks already answered but not yet taken when shutdown won the select: the
    // peer saw its answer, so what it implies is recorded too.
    if let Some(rx) = callbacks.as_mut() {
        while let Ok(cb) = rx.try_recv() {
            on_callback(&store, cb, &mut stats).await?;
        }
    }
    Ok(stats)
}

async fn on_callback(store: &Store, cb: Callback, stats: &mut HttpStats) -> Result<(), StoreError> {
    match cb {
        Callback::Receipt(r) => {
            // Applied now, or kept until `message_sent` records the id (a callback can
            // beat the API's answer).
            store
                .message_receipt(&r.id, r.delivered, &r.stat, Utc::now())
                .await?;
            stats.receipts += 1;
        }
        Callback::Inbound(m) => {
            // The same path as an SMPP MO: on the customer's timeline, opt-out words → DNC.
            let r = store
                .message_reply(&m.from, &m.body, "sms", Utc::now())
                .await?;
            stats.replies += 1;
            if r.opted_out {
                stats.opt_outs += 1;
                tracing::info!(message = r.message_id, "opt-out reply: number added to DNC");
            }
        }
        Callback::Forged => {
            stats.forged_callbacks += 1;
            tracing::warn!(
                "a webhook was refused (a bad X-Twilio-Signature, or an Alibaba push without the path token)"
            );
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn settle(
    store: &Store,
    id: i64,
    to: &str,
    kind: GatewayKind,
    out: Outcome,
    tries: &mut HashMap<i64, u32>,
    pending: &mut HashMap<String, Pending>,
    stats: &mut HttpStats,
) -> Result<(), StoreError> {
    let now = Utc::now();
    match out {
        Outcome::Accepted { id: gw } => {
            store
                .message_sent(id, std::slice::from_ref(&gw), now)
                .await?;
            if kind == GatewayKind::Aliyun {
                pending.insert(
                    gw,
                    Pending {
                        message: id,
                        to: to.into(),
                        sent_at: now,
                    },
                );
            }
            tries.remove(&id);
            stats.sent += 1;
        }
        Outcome::Rejected { reason } => {
            store
                .message_failed(id, &format!("{}: {reason}", kind.as_str()), now)
                .await?;
            stats.failed += 1;
        }
        Outcome::AuthFailed { reason } => {
            store
                .message_failed(
                    id,
                    &format!(
                        "{} refused the credentials / 凭据被拒绝: {reason}",
                        kind.as_str()
                    ),
                    now,
                )
                .await?;
            stats.failed += 1;
        }
        Outcome::RetryLater { reason } => {
            let n = tries.get(&id).copied().unwrap_or(0) + 1;
            if n >= MAX_TRIES {
                store
                    .message_failed(id, &format!("gave up after {n} tries: {reason}"), now)
                    .await?;
                tries.remove(&id);
                stats.failed += 1;
            } else {
                tries.insert(id, n);
                store.message_requeue(id).await?;
                let wait = chrono::Duration::seconds(1i64 << (n - 1).min(8))
                    .min(chrono::Duration::minutes(5));
                store
                    .message_defer(id, now + wait, &format!("retry {n}: {reason}"))
                    .await?;
                stats.retried += 1;
            }
        }
        Outcome::Unknown { reason } => {
            store.message_unknown(id, &reason, now).await?;
            stats.unknown += 1;
        }
    }
    Ok(())
}
