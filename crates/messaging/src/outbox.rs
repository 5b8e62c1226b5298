//! The SMS outbox loop both gateway protocols share (SMPP in [`crate::sender`], CMPP in
//! [`crate::cmpp`]): reconcile, claim through the gate, submit, and record what the
//! gateway answers. The order of writes is what makes a kill harmless (see `waihu_store`'s
//! messages module): the claim (`sending`) is committed before the submission reaches the
//! client, `sent` after the gateway's answer, a submission that went out without an answer
//! becomes `unknown` and is never resent, and start-up turns leftover `sending` rows into
//! `unknown`. Receipts update the message; a reply is stored on the customer's timeline and
//! an opt-out reply (退订, TD, STOP, …) puts the number on DNC at once — the store decides.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use waihu_smsc_client::{ClientConfig, ClientSession, DriverEvent, SubmitId};
use waihu_store::{OutMessage, Store, StoreError};

use crate::gate::{Gate, MessageRules};
use crate::sender::SenderStats;

/// What one client event means for the outbox, as a protocol's sender reads it.
pub(crate) enum Outcome {
    /// Every part accepted, with the gateway's ids (what its receipts name).
    Submitted {
        id: SubmitId,
        gateway_ids: Vec<String>,
    },
    /// The gateway surely does not have it and will not take it.
    Refused { id: SubmitId, reason: String },
    /// The gateway surely does not have it; the next poll offers it again.
    Requeue { id: SubmitId },
    /// A request went out and no answer came: the gateway may have it. Never resent.
    Unknown { id: SubmitId, reason: String },
    /// A final delivery receipt.
    Receipt {
        gateway_id: String,
        delivered: bool,
        stat: String,
    },
    /// A message from a handset.
    Reply { from: String, text: String },
    /// Nothing to store (the protocol's sender has logged it).
    Nothing,
}

/// One protocol's side of the loop.
pub(crate) struct Protocol<S: ClientSession, M, O> {
    pub client: ClientConfig<S::Config>,
    /// Submissions in flight at once (the client's window); the loop keeps twice as many
    /// claimed.
    pub window: usize,
    /// The gateway, as the log names it when unreachable.
    pub gateway: &'static str,
    /// The client's text for a claimed message.
    pub sms: M,
    pub outcome: O,
}

/// Runs until `shutdown` becomes true (or its sender is dropped); returns what it did.
pub(crate) async fn run_outbox<S, M, O>(
    store: Store,
    p: Protocol<S, M, O>,
    poll: Duration,
    rules: MessageRules,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SenderStats, StoreError>
where
    S: ClientSession,
    M: Fn(OutMessage) -> S::Sms,
    O: Fn(S::Event) -> Outcome,
{
    let mut stats = SenderStats {
        reconciled_unknown: store.messages_reconcile_on(Some("sms"), Utc::now()).await?,
        ..SenderStats::default()
    };
    if stats.reconciled_unknown > 0 {
        tracing::warn!(
            n = stats.reconciled_unknown,
            "messages interrupted between submit and acknowledgement marked unknown (not resent)"
        );
    }
    let window = p.window.max(1);
    let (client, mut events) = waihu_smsc_client::spawn::<S>(p.client.clone());
    let mut in_flight: HashMap<SubmitId, i64> = HashMap::new();
    let mut gate = Gate::new(rules);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            _ = tick.tick() => {
                let room = (window * 2).saturating_sub(in_flight.len());
                if room == 0 {
                    continue;
                }
                for m in store.messages_due_on(Some("sms"), room as i64, Utc::now()).await? {
                    if !gate.admit(&store, &m, Utc::now()).await? {
                        continue;
                    }
                    let id = m.id;
                    match client.submit((p.sms)(m)).await {
                        Ok(sid) => {
                            in_flight.insert(sid, id);
                        }
                        Err(e) => {
                            store.message_failed(id, &e.to_string(), Utc::now()).await?;
                            stats.failed += 1;
                        }
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                handle(&store, &p, ev, &mut in_flight, &mut stats).await?;
            }
        }
    }
    client.shutdown().await;
    // Outcomes of what was in flight (answers before the logout, or Unknown/NotSent).
    let drain = async {
        while let Some(ev) = events.recv().await {
            handle(&store, &p, ev, &mut in_flight, &mut stats).await?;
        }
        Ok::<_, StoreError>(())
    };
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(3), drain).await {
        r?;
    }
    Ok(stats)
}

async fn handle<S, M, O>(
    store: &Store,
    p: &Protocol<S, M, O>,
    ev: DriverEvent<S::Event>,
    in_flight: &mut HashMap<SubmitId, i64>,
    stats: &mut SenderStats,
) -> Result<(), StoreError>
where
    S: ClientSession,
    O: Fn(S::Event) -> Outcome,
{
    let now = Utc::now();
    let ev = match ev {
        DriverEvent::ConnectFailed { reason } => {
            tracing::warn!(%reason, gateway = p.gateway, "SMS gateway unreachable");
            return Ok(());
        }
        DriverEvent::Session(ev) => ev,
    };
    match (p.outcome)(ev) {
        Outcome::Submitted { id, gateway_ids } => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_sent(m, &gateway_ids, now).await?;
                stats.sent += 1;
            }
        }
        Outcome::Refused { id, reason } => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_failed(m, &reason, now).await?;
                stats.failed += 1;
            }
        }
        Outcome::Requeue { id } => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_requeue(m).await?;
            }
        }
        Outcome::Unknown { id, reason } => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_unknown(m, &reason, now).await?;
                stats.unknown += 1;
            }
        }
        Outcome::Receipt {
            gateway_id,
            delivered,
            stat,
        } => {
            store
                .message_receipt(&gateway_id, delivered, &stat, now)
                .await?;
            stats.receipts += 1;
        }
        Outcome::Reply { from, text } => {
            let r = store.message_reply(&from, &text, "sms", now).await?;
            stats.replies += 1;
            if r.opted_out {
                stats.opt_outs += 1;
                tracing::info!(message = r.message_id, "opt-out reply: number added to DNC");
            }
        }
        Outcome::Nothing => {}
    }
    Ok(())
}
