//! The outbox sender over SMPP (`waihu-smpp`): one task that moves queued messages from the
//! store to the SMSC and brings receipts and replies back. The loop and its order of writes
//! (claim committed before submit, never resent, leftovers reconciled to `unknown`) are
//! [`crate::outbox`]'s, shared with the CMPP sender; this module says what SMPP's events
//! mean for it.

use std::time::Duration;

use tokio::sync::watch;
use waihu_smpp::{ClientConfig, Event, Failure, OutgoingSms, ReceiptState, Session};
use waihu_store::{Store, StoreError};

use crate::gate::MessageRules;
use crate::outbox::{run_outbox, Outcome, Protocol};

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
    shutdown: watch::Receiver<bool>,
) -> Result<SenderStats, StoreError> {
    let from = cfg.from;
    let protocol = Protocol::<Session, _, _> {
        window: cfg.smpp.session.window,
        client: cfg.smpp,
        gateway: "SMSC",
        sms: move |m: waihu_store::OutMessage| OutgoingSms {
            from: from.clone(),
            to: m.to,
            text: m.text,
        },
        outcome,
    };
    run_outbox(store, protocol, cfg.poll, cfg.rules, shutdown).await
}

fn outcome(ev: Event) -> Outcome {
    match ev {
        Event::Submitted { id, message_ids } => Outcome::Submitted {
            id,
            gateway_ids: message_ids,
        },
        Event::SubmitFailed { id, failure } => match failure {
            Failure::Rejected { status } => Outcome::Refused {
                id,
                reason: format!("SMSC refused (status 0x{status:08x})"),
            },
            Failure::NotSent { .. } => Outcome::Requeue { id },
            Failure::Unknown { reason, .. } => Outcome::Unknown { id, reason },
        },
        // Enroute and accepted are on the way, not an end.
        Event::Receipt { receipt, .. } => match receipt.state {
            ReceiptState::Enroute | ReceiptState::Accepted => Outcome::Nothing,
            state => Outcome::Receipt {
                gateway_id: receipt.message_id,
                delivered: state == ReceiptState::Delivered,
                stat: state.as_stat().to_string(),
            },
        },
        Event::Mo { from, text, .. } => Outcome::Reply { from, text },
        Event::Bound { system_id } => {
            tracing::info!(%system_id, "bound to SMSC");
            Outcome::Nothing
        }
        Event::BindFailed { status } => {
            tracing::warn!(status, "SMSC refused the bind");
            Outcome::Nothing
        }
        Event::Closed { reason } => {
            tracing::info!(%reason, "SMPP bind closed");
            Outcome::Nothing
        }
    }
}
