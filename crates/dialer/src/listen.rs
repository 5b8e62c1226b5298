//! Supervisor listen-in (监听): a supervisor asks the API to listen to a live
//! call bridged to an agent (`POST /api/calls/{id}/listen` with their
//! softphone's SIP URI); the API appends a `listen_requested` event (who asked,
//! for which call: the audit); the run that bridges the call picks it up from
//! the store within [`crate::handoff::PUBLISH_EVERY`], places a third leg to
//! the supervisor and sends it both parties mixed (the agent leg's frame:
//! what the agent said plus what the callee said). The supervisor is never
//! heard by either party. Events `listen_started` (the supervisor answered)
//! and `listen_ended` (how long) go to the call's log.
//!
//! The tap is a list of channel senders beside the agent leg; the agent leg's
//! call task only `try_lock`s it and never waits for a listener (a full or
//! slow listener drops frames, as the bridge does).
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use waihu_core::{CallId, CampaignId, CustomerId, Event, EventKind};
use waihu_engine::agent::{CallAgent, Control};
use waihu_engine::call::{place_call_with, CallOptions, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_store::Store;

use crate::handoff::Playout;
use crate::CampaignClock;

/// A supervisor's softphone rings this long before the request is dropped.
const RING: Duration = Duration::from_secs(30);

/// The senders of the supervisors listening to one call.
pub(crate) type Listeners = Arc<Mutex<Vec<std_mpsc::Sender<Vec<i16>>>>>;

/// A bridged call that can be listened to.
pub(crate) struct Tap {
    pub ep: Arc<SipEndpoint>,
    pub listeners: Listeners,
    pub campaign: Option<CampaignId>,
    pub customer: Option<CustomerId>,
}

/// The agent leg's side: sends `agent + callee` to every listener, never
/// waiting (a listener whose leg is gone is dropped).
pub(crate) fn feed(listeners: &Listeners, agent: &[i16], callee: &[i16]) {
    let Ok(mut l) = listeners.try_lock() else {
        return;
    };
    if l.is_empty() {
        return;
    }
    let mix: Vec<i16> = agent
        .iter()
        .zip(callee)
        .map(|(&a, &c)| a.saturating_add(c))
        .collect();
    l.retain(|tx| tx.send(mix.clone()).is_ok());
}

/// The supervisor's leg: plays what the tap sends, ignores what it hears;
/// hangs up when the tapped call ends.
struct ListenerLeg {
    rx: std_mpsc::Receiver<Vec<i16>>,
    out: Playout,
    answered: Option<tokio::sync::oneshot::Sender<Instant>>,
}

impl CallAgent for ListenerLeg {
    fn on_answered(&mut self, now: Instant) {
        if let Some(t) = self.answered.take() {
            let _ = t.send(now);
        }
    }

    fn on_frame(&mut self, _now: Instant, _heard: &[i16], say: &mut [i16]) -> Control {
        if !self.out.take(&self.rx) {
            return Control::Hangup("the call ended / 通话已结束".into());
        }
        self.out.play(say);
        Control::Continue
    }
}

/// Whether `uri` is a SIP URI a listener leg can be placed to (what the API
/// accepts; the run checks again).
pub fn valid_uri(uri: &str) -> bool {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"));
    match rest {
        Some(r) => {
            uri.len() <= 256
                && !r.is_empty()
                && !r.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// Places the supervisor's leg for `call` and logs its start and end.
pub(crate) fn start(
    tap: &Tap,
    call: CallId,
    supervisor: String,
    store: Store,
    clock: Arc<CampaignClock>,
) {
    let (tx, rx) = std_mpsc::channel();
    let (ans_tx, ans_rx) = tokio::sync::oneshot::channel();
    let leg = ListenerLeg {
        rx,
        out: Playout::new(),
        answered: Some(ans_tx),
    };
    tap.listeners
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(tx);
    let ep = tap.ep.clone();
    let (campaign, customer) = (tap.campaign, tap.customer);
    let event = move |kind: EventKind, clock: &CampaignClock| Event {
        at: clock.now(),
        customer,
        campaign,
        call: Some(call.clone()),
        kind,
    };
    tokio::spawn(async move {
        let mut co = CallOptions::new(supervisor.clone());
        co.ring_timeout = RING;
        co.from_user = Some("waihu-listen".into());
        co.media = MediaOptions {
            max_duration: Duration::from_secs(4 * 3600),
            no_rtp_timeout: Duration::from_secs(30),
            ..MediaOptions::default()
        };
        let mut placed =
            tokio::spawn(async move { place_call_with(&ep, co, Box::new(leg), &mut |_| {}).await });
        let answered = tokio::select! {
            a = ans_rx => a.ok(),
            _ = &mut placed => None,
        };
        let Some(at) = answered else {
            let e = event(
                EventKind::ListenEnded {
                    supervisor,
                    listened_s: 0.0,
                },
                &clock,
            );
            if let Err(err) = store.append_event(&e).await {
                tracing::warn!(error = %err, "listen-in: logging");
            }
            return;
        };
        let e = event(
            EventKind::ListenStarted {
                supervisor: supervisor.clone(),
            },
            &clock,
        );
        if let Err(err) = store.append_event(&e).await {
            tracing::warn!(error = %err, "listen-in: logging");
        }
        let _ = placed.await;
        let e = event(
            EventKind::ListenEnded {
                supervisor,
                listened_s: at.elapsed().as_secs_f64(),
            },
            &clock,
        );
        if let Err(err) = store.append_event(&e).await {
            tracing::warn!(error = %err, "listen-in: logging");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_mixes_both_sides_and_drops_gone_listeners() {
        let l: Listeners = Arc::default();
        let (tx1, rx1) = std_mpsc::channel();
        let (tx2, rx2) = std_mpsc::channel();
        l.lock().unwrap().extend([tx1, tx2]);
        drop(rx2);
        feed(&l, &[1000, i16::MAX], &[-400, 10]);
        assert_eq!(rx1.try_recv().unwrap(), vec![600, i16::MAX]);
        assert_eq!(l.lock().unwrap().len(), 1, "the gone listener is dropped");
        // Nobody listening: nothing is mixed or sent.
        drop(rx1);
        feed(&l, &[1], &[1]);
        feed(&l, &[1], &[1]);
        assert!(l.lock().unwrap().is_empty());
    }

    #[test]
    fn only_sip_uris_are_listened_from() {
        assert!(valid_uri("sip:sup@10.0.0.9:5060"));
        assert!(valid_uri("sips:sup@example.com"));
        for bad in [
            "",
            "sip:",
            "tel:+861234",
            "sip:a b@x",
            "http://x",
            "sip:x\r\nVia: y",
        ] {
            assert!(!valid_uri(bad), "{bad:?}");
        }
        assert!(!valid_uri(&format!("sip:{}", "a".repeat(300))));
    }
}
