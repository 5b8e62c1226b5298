//! The SMS outbox sender over CMPP 2.0 (`waihu-cmpp`), for Chinese carriers' SMS gateways.
//! The same write order as the SMPP sender ([`crate::sender`]): the gate admits and claims
//! (committed) before the SUBMIT reaches the client, `sent` with the gateway's Msg_Ids after
//! its SUBMIT_RESP, a SUBMIT that went out without an answer becomes `unknown` and is never
//! resent, and leftovers of a crash become `unknown` at start-up. Status reports update the
//! message; a reply from the handset is stored on the customer's timeline and an opt-out
//! reply (退订, TD, …) puts the number on DNC at once — the store decides, as for SMPP.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::watch;
use waihu_cmpp::pdu::result;
use waihu_cmpp::{DriverEvent, Event, Failure, OutgoingSms};
use waihu_store::{Store, StoreError};

use crate::gate::{Gate, MessageRules};
use crate::sender::SenderStats;

#[derive(Debug, Clone)]
pub struct CmppSenderConfig {
    pub cmpp: waihu_cmpp::ClientConfig,
    /// How often to look for queued messages.
    pub poll: Duration,
    /// Gate rules for messages of no campaign (a campaign's come from its file).
    pub rules: MessageRules,
}

/// Runs until `shutdown` becomes true (or its sender is dropped); returns what it did.
pub async fn run_cmpp_sender(
    store: Store,
    cfg: CmppSenderConfig,
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
    let window = cfg.cmpp.session.window.max(1);
    let (client, mut events) = waihu_cmpp::spawn(cfg.cmpp.clone());
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
                    match client.submit(OutgoingSms { to: m.to, text: m.text }).await {
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
        DriverEvent::ConnectFailed { reason } => {
            tracing::warn!(%reason, "CMPP gateway unreachable")
        }
        DriverEvent::Session(Event::Submitted { id, msg_ids }) => {
            if let Some(m) = in_flight.remove(&id) {
                store.message_sent(m, &msg_ids, now).await?;
                stats.sent += 1;
            }
        }
        DriverEvent::Session(Event::SubmitFailed { id, failure }) => {
            let Some(m) = in_flight.remove(&id) else {
                return Ok(());
            };
            match failure {
                // "Slow down": the gateway does not have it; the next poll tries again.
                Failure::Rejected { result: r } if r == result::FLOW_CONTROL => {
                    store.message_requeue(m).await?
                }
                Failure::Rejected { result: r } => {
                    store
                        .message_failed(m, &format!("CMPP gateway refused (result {r})"), now)
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
        DriverEvent::Session(Event::Report {
            msg_id,
            stat,
            delivered,
            ..
        }) => {
            store
                .message_receipt(&msg_id, delivered, &stat, now)
                .await?;
            stats.receipts += 1;
        }
        DriverEvent::Session(Event::Mo { from, text, .. }) => {
            let r = store.message_reply(&from, &text, "sms", now).await?;
            stats.replies += 1;
            if r.opted_out {
                stats.opt_outs += 1;
                tracing::info!(message = r.message_id, "opt-out reply: number added to DNC");
            }
        }
        DriverEvent::Session(Event::Connected) => tracing::info!("connected to CMPP gateway"),
        DriverEvent::Session(Event::ConnectFailed { status, forged }) => {
            tracing::warn!(status, forged, "CMPP gateway refused the CONNECT")
        }
        DriverEvent::Session(Event::Closed { reason }) => {
            tracing::info!(%reason, "CMPP connection closed")
        }
    }
    Ok(())
}
