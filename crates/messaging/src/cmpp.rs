//! The SMS outbox sender over CMPP 2.0 (`waihu-cmpp`), for Chinese carriers' SMS gateways.
//! The loop and its order of writes are [`crate::outbox`]'s, shared with the SMPP sender:
//! the gate admits and claims (committed) before the SUBMIT reaches the client, `sent` with
//! the gateway's Msg_Ids after its SUBMIT_RESP, a SUBMIT that went out without an answer
//! becomes `unknown` and is never resent, and leftovers of a crash become `unknown` at
//! start-up. Status reports update the message; an opt-out reply (退订, TD, …) puts the
//! number on DNC at once. This module says what CMPP's events mean for it.

use std::time::Duration;

use tokio::sync::watch;
use waihu_cmpp::pdu::result;
use waihu_cmpp::{Event, Failure, OutgoingSms, Session};
use waihu_store::{Store, StoreError};

use crate::gate::MessageRules;
use crate::outbox::{run_outbox, Outcome, Protocol};
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
    shutdown: watch::Receiver<bool>,
) -> Result<SenderStats, StoreError> {
    let protocol = Protocol::<Session, _, _> {
        window: cfg.cmpp.session.window,
        client: cfg.cmpp,
        gateway: "CMPP gateway",
        sms: |m: waihu_store::OutMessage| OutgoingSms {
            to: m.to,
            text: m.text,
        },
        outcome,
    };
    run_outbox(store, protocol, cfg.poll, cfg.rules, shutdown).await
}

fn outcome(ev: Event) -> Outcome {
    match ev {
        Event::Submitted { id, msg_ids } => Outcome::Submitted {
            id,
            gateway_ids: msg_ids,
        },
        Event::SubmitFailed { id, failure } => match failure {
            // "Slow down": the gateway does not have it; the next poll tries again.
            Failure::Rejected { result: r } if r == result::FLOW_CONTROL => Outcome::Requeue { id },
            Failure::Rejected { result: r } => Outcome::Refused {
                id,
                reason: format!("CMPP gateway refused (result {r})"),
            },
            Failure::NotSent { .. } => Outcome::Requeue { id },
            Failure::Unknown { reason, .. } => Outcome::Unknown { id, reason },
        },
        Event::Report {
            msg_id,
            stat,
            delivered,
            ..
        } => Outcome::Receipt {
            gateway_id: msg_id,
            delivered,
            stat,
        },
        Event::Mo { from, text, .. } => Outcome::Reply { from, text },
        Event::Connected => {
            tracing::info!("connected to CMPP gateway");
            Outcome::Nothing
        }
        Event::ConnectFailed { status, forged } => {
            tracing::warn!(status, forged, "CMPP gateway refused the CONNECT");
            Outcome::Nothing
        }
        Event::Closed { reason } => {
            tracing::info!(%reason, "CMPP connection closed");
            Outcome::Nothing
        }
    }
}
