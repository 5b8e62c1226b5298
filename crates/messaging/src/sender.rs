//! The outbox sender: one task that moves queued messages from the store to the SMSC and
//! brings receipts and replies back. The order of writes is what makes a kill harmless
//! (see `waihu_store`'s messages module): claim (`sending`) is committed before the
//! submission reaches the SMPP client, `sent` after the gateway's answer, and start-up
//! turns leftover `sending` rows into `unknown` instead of sending them again.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use waihu_smpp::driver::DriverEvent;
use waihu_smpp::{ClientConfig, Event, Failure, OutgoingSms, ReceiptState};
use waihu_store::{Store, StoreError};

use crate::gate::{Gate, MessageRules};

#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub smpp: ClientConfig,
    /// Sender address on the messages (short code, long number or alphanumeric id).
    pub from: String,
    /// How often to look for queued messages.
    pub poll: Duration,
    /// Gate rules for messages of no campaign (a campaign's come from its file).
    pub rules: MessageRules,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SenderStats {
    pub reconciled_unknown: u64,
    pub sent: u64,
    pub failed: u64,
    pub unknown: u64,
    pub receipts: u64,
    pub replies: u64,
    pub opt_outs: u64,
}

/// Runs until `shutdown` becomes true (or its sender is dropped); returns what it did.
pub async fn run_sender(
    store: Store,
    cfg: SenderConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<SenderStats, StoreError> {
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
    let window = cfg.smpp.session.window.max(1);
    let (client, mut events) = waihu_smpp::spawn(cfg.smpp.clone());
    let mut in_flight: HashMap<u64, i64> = HashMap::new();
    let mut gate = Gate::new(cfg.rules.clone());
    let mut tick = tokio::time::interval(cfg.poll);
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
                    let sms = OutgoingSms { from: cfg.from.clone(), to: m.to, text: m.text };
                    match client.submit(sms).await {
                        Ok(sid) => {
                            in_flight.insert(sid, m.id);
                        }
                        Err(e) => {
                            store.message_failed(m.id, &e.to_string(), Utc::now()).await?;
                            stats.failed += 1;
                        }
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else { break };
                handle(&store, ev, &mut in_flight, &mut stats).await?;
            }
        }
    }
    client.shutdown().await;
    // Outcomes of what was in flight (answers before the unbind, or Unknown/NotSent).
    let drain = async {
        while let Some(ev) = events.recv().await {
            handle(&store, ev, &mut in_flight, &mut stats).await?;
        }
        Ok::<_, StoreError>(())
    };
    if let Ok(r) = tokio::time::timeout(Duration::from_secs(3), drain).await {
        r?;
    }
    Ok(stats)
}

async fn handle(
    store: &Store,
    ev: DriverEvent,
    in_flight: &mut HashMap<u64, i64>,
    stats: &mut SenderStats,
) -> Result<(), StoreError> {
    let now = Utc::now();
    match ev {
        DriverEvent::ConnectFailed { reason } => tracing::warn!(%reason, "SMSC unreachable"),
        DriverEvent::Session(Event::Submitted { id, message_ids }) => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_sent(m, &message_ids, now).await?;
                stats.sent += 1;
            }
        }
        DriverEvent::Session(Event::SubmitFailed { id, failure }) => {
            let Some(m) = in_flight.remove(&id) else {
                return Ok(());
            };
            match failure {
                Failure::Rejected { status } => {
                    store
                        .message_failed(m, &format!("SMSC refused (status 0x{status:08x})"), now)
                        .await?;
                    stats.failed += 1;
                }
                Failure::NotSent { .. } => store.message_requeue(m).await?,
                Failure::Unknown { reason, .. } => {
                    store.message_unknown(m, &reason, now).await?;
                    stats.unknown += 1;
                }
            }
        }
        DriverEvent::Session(Event::Receipt { receipt, .. }) => {
            let final_state = !matches!(
                receipt.state,
                ReceiptState::Enroute | ReceiptState::Accepted
            );
            if final_state {
                let delivered = receipt.state == ReceiptState::Delivered;
                store
                    .message_receipt(&receipt.message_id, delivered, receipt.state.as_stat(), now)
                    .await?;
                stats.receipts += 1;
            }
        }
        DriverEvent::Session(Event::Mo { from, text, .. }) => {
            let r = store.message_reply(&from, &text, "sms", now).await?;
            stats.replies += 1;
            if r.opted_out {
                stats.opt_outs += 1;
                tracing::info!(message = r.message_id, "opt-out reply: number added to DNC");
            }
        }
        DriverEvent::Session(Event::Bound { system_id }) => {
            tracing::info!(%system_id, "bound to SMSC")
        }
        DriverEvent::Session(Event::BindFailed { status }) => {
            tracing::warn!(status, "SMSC refused the bind")
        }
        DriverEvent::Session(Event::Closed { reason }) => {
            tracing::info!(%reason, "SMPP bind closed")
        }
    }
    Ok(())
}
