//! Agent-assisted campaigns (`pacing.connect: agent`): every answered call
//! goes straight to a human agent of the campaign's queue, and the number of
//! lines dialled follows the agents.
//!
//! - **Progressive**: one line per agent free now, minus the calls already
//!   ringing or waiting for one — nobody is ever abandoned, agents wait
//!   through every ring and every unanswered call.
//! - **Predictive**: [`waihu_campaign::MeasuredPacer`] dials ahead from the
//!   run's measured connect rate, answer delays and talk times, holding the
//!   abandoned share of answered calls at the campaign's target.
//!
//! An answered callee waits at most `abandon_after_s` (≤ 2 s) for an agent;
//! then they hear the abandon message (who called, that we will call back)
//! and the call ends `abandoned` with a `call_abandoned` event, which the
//! compliance checker counts against the 3% rule from the log alone.
//!
//! The lines in flight are counted here ([`Lines`]): each call's [`Line`]
//! moves ringing → waiting (answered, no agent yet) → done exactly once,
//! from the call task and its transfer task.
use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use waihu_campaign::{AgentConnect, AgentView, MeasuredPacer, PacingMode};

use crate::handoff::Handoff;

/// Calls of the run placed and not yet answered, and answered ones waiting
/// for an agent.
#[derive(Debug, Default)]
pub struct Lines {
    ringing: AtomicUsize,
    waiting: AtomicUsize,
}

impl Lines {
    pub fn ringing(&self) -> usize {
        self.ringing.load(Ordering::Relaxed)
    }
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// A new line, counted as ringing until it moves on.
    pub fn dial(self: &Arc<Self>) -> Arc<Line> {
        self.ringing.fetch_add(1, Ordering::Relaxed);
        Arc::new(Line {
            lines: self.clone(),
            state: AtomicU8::new(RINGING),
        })
    }
}

const RINGING: u8 = 0;
const WAITING: u8 = 1;
const DONE: u8 = 2;

/// One call's place in [`Lines`].
#[derive(Debug)]
pub struct Line {
    lines: Arc<Lines>,
    state: AtomicU8,
}

impl Line {
    /// The callee answered: now waiting for an agent.
    pub fn answered(&self) {
        if self
            .state
            .compare_exchange(RINGING, WAITING, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            self.lines.ringing.fetch_sub(1, Ordering::Relaxed);
            self.lines.waiting.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An agent took the call, it was abandoned, or it ended: out of the count.
    pub fn done(&self) {
        match self.state.swap(DONE, Ordering::AcqRel) {
            RINGING => self.lines.ringing.fetch_sub(1, Ordering::Relaxed),
            WAITING => self.lines.waiting.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.done();
    }
}

/// What a finished call of an agent-assisted campaign teaches the pacer.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// A person answered.
    pub connected: bool,
    /// Dial → answer.
    pub answer_delay: Option<Duration>,
    /// Answered, and no agent came within the limit.
    pub abandoned: bool,
    /// The agent's time on the call (answer to hang-up).
    pub talk: Option<Duration>,
}

/// The run's pacing when its calls go to agents.
pub struct AgentPacing {
    pub connect: AgentConnect,
    pub lines: Arc<Lines>,
    handoff: Arc<Handoff>,
    /// `None`: progressive.
    pacer: Option<MeasuredPacer>,
    /// Agent seconds on calls, summed over finished calls.
    pub talk_s: f64,
    /// When the current 24-hour compliance period began (the first sample).
    period_from: Option<chrono::DateTime<chrono::Utc>>,
}

impl AgentPacing {
    pub fn new(connect: AgentConnect, mode: PacingMode, handoff: Arc<Handoff>) -> AgentPacing {
        let pacer = match mode {
            PacingMode::Predictive {
                target_abandon_rate,
            } => Some(MeasuredPacer::new(
                target_abandon_rate,
                0.5,
                // The queue rings nobody in the last tenth of the wait.
                connect.abandon_after_s * 0.9,
            )),
            PacingMode::Progressive => None,
        };
        AgentPacing {
            connect,
            lines: Arc::new(Lines::default()),
            handoff,
            pacer,
            talk_s: 0.0,
            period_from: None,
        }
    }

    /// What the queue's agents are doing now.
    pub fn handoff(&self) -> &Arc<Handoff> {
        &self.handoff
    }

    /// The queue's reachable agents now (`registered`: agent ids with a live binding).
    pub fn view(&self, registered: &HashSet<String>) -> AgentView {
        self.handoff.view(&self.connect.queue, registered)
    }

    /// Lines to dial now with `channels` free trunk channels.
    pub fn want(&self, channels: usize, registered: &HashSet<String>) -> usize {
        let view = self.view(registered);
        let (ringing, waiting) = (self.lines.ringing(), self.lines.waiting());
        match &self.pacer {
            Some(p) => p.lines_for(&view, ringing, waiting, channels),
            None => view.free.saturating_sub(ringing + waiting).min(channels),
        }
    }

    /// A finished call at `now` (campaign time). The abandon budget is kept
    /// per 24 hours, as the compliance checker reads it.
    pub fn observe(&mut self, s: &Sample, now: chrono::DateTime<chrono::Utc>) {
        if let Some(t) = s.talk {
            self.talk_s += t.as_secs_f64();
        }
        let Some(p) = self.pacer.as_mut() else {
            return;
        };
        let from = *self.period_from.get_or_insert(now);
        if now - from >= chrono::Duration::hours(24) {
            p.new_period();
            self.period_from = Some(now);
        }
        p.on_attempt(s.connected);
        if let Some(d) = s.answer_delay {
            p.on_answer_delay(d.as_secs_f64());
        }
        if let Some(t) = s.talk {
            p.on_talk(t.as_secs_f64());
        }
        if s.connected {
            p.on_answered(s.abandoned);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_moves_once_and_its_drop_clears_it() {
        let lines = Arc::new(Lines::default());
        let a = lines.dial();
        let b = lines.dial();
        assert_eq!((lines.ringing(), lines.waiting()), (2, 0));
        a.answered();
        a.answered();
        assert_eq!((lines.ringing(), lines.waiting()), (1, 1));
        a.done();
        a.done();
        assert_eq!((lines.ringing(), lines.waiting()), (1, 0));
        drop(a);
        drop(b);
        assert_eq!((lines.ringing(), lines.waiting()), (0, 0));
        let c = lines.dial();
        c.done();
        c.answered();
        assert_eq!((lines.ringing(), lines.waiting()), (0, 0), "done is final");
    }
}
