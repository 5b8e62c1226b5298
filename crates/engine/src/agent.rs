//! The hook through which a conversation drives a call's audio. The call task
//! (see [`crate::call`]) owns the socket and the 20 ms clock; once the call is
//! answered it hands every frame heard to the call's [`CallAgent`] and sends
//! what the agent wrote. An agent must not block: anything slow (recognition,
//! synthesis) runs elsewhere and reaches the agent through a channel.
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the call task should do after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Continue,
    /// Hang up now (BYE); the reason is logged and reported.
    Hangup(String),
    /// Blind transfer: ask the other side to call this sip:/sips:/tel: URI (or a bare
    /// number, in the domain the call was placed to) instead (REFER). Progress reaches [`CallAgent::on_transfer`]; after the target answers the
    /// call task hangs up (RFC 5589 §6), after a failure the agent decides.
    Transfer(String),
}

/// A participant in the media of one call: the voice bot on our side, a
/// virtual callee in the simulator.
pub trait CallAgent: Send {
    /// Media starts flowing (the call was answered).
    fn on_answered(&mut self, _now: Instant) {}
    /// One 20 ms frame (160 samples at 8 kHz): `heard` is the other side's
    /// audio (silence when nothing arrived), `say` is zeroed on entry and is
    /// sent as our audio.
    fn on_frame(&mut self, now: Instant, heard: &[i16], say: &mut [i16]) -> Control;
    /// Early media before the answer (ringback, or a carrier announcement such
    /// as "the number you dialled is switched off"): frames with audio only.
    fn on_early_frame(&mut self, _now: Instant, _heard: &[i16]) {}
    /// A DTMF digit from the other side (RFC 4733 or SIP INFO).
    fn on_dtmf(&mut self, _now: Instant, _digit: char) {}
    /// Progress of a transfer the agent asked for with [`Control::Transfer`].
    fn on_transfer(&mut self, _now: Instant, _progress: &waihu_sip::TransferProgress) {}
    /// The call is over (either side hung up, or it failed); the last call.
    fn on_ended(&mut self, _now: Instant) {}
}

/// How a UAS answers one incoming call.
#[derive(Debug, Clone)]
pub enum IncomingPlan {
    /// Ring (180) for `ring_for`, then answer and hand the media to the agent.
    Answer { ring_for: Duration },
    /// Ring for `after` — with 183 and `announcement` played once as early
    /// media when given (a carrier's "the number you dialled is switched off"),
    /// silence after it —
    /// then reject with `status` (486 busy, 480 unavailable, 404 ...). A long
    /// `after` rings until the caller gives up and cancels.
    Reject {
        after: Duration,
        status: u16,
        announcement: Option<Arc<[i16]>>,
    },
}
