//! How many lines to dial now.
//!
//! - **Progressive** (bot calls): one dial per free channel; the CPS limit is
//!   applied by the planner's trunk buckets.
//! - **Predictive** (calls handed to human agents): dial ahead of free agents
//!   by the expected connect rate, scaled by an aggressiveness that a
//!   stochastic-approximation controller moves after every answered call:
//!   `a ← a·exp(η·(setpoint − abandoned))`, whose fixed point is an abandon
//!   probability equal to the setpoint (80% of the target, for margin). When
//!   the cumulative rate reaches the target, over-dialling stops entirely
//!   until it recovers — the rule is about the rate, so the guard is too.

/// Adaptive predictive pacer. Sans-IO: the caller reports outcomes and asks.
#[derive(Debug, Clone)]
pub struct PredictivePacer {
    target: f64,
    setpoint: f64,
    aggressiveness: f64,
    connect_rate: f64,
    answered: u64,
    abandoned: u64,
}

const GAIN: f64 = 0.05;
const CONNECT_EWMA: f64 = 0.01;

impl PredictivePacer {
    /// `target`: the abandoned-call rate not to exceed (0.03); `initial_connect`:
    /// the connect rate to assume before any outcome is seen.
    pub fn new(target: f64, initial_connect: f64) -> Self {
        PredictivePacer {
            target,
            setpoint: target * 0.8,
            aggressiveness: 1.0,
            connect_rate: initial_connect.clamp(0.02, 1.0),
            answered: 0,
            abandoned: 0,
        }
    }

    /// Lines to dial now, given agents free and calls still ringing.
    pub fn lines_to_dial(&self, free_agents: usize, ringing: usize) -> usize {
        let p = self.connect_rate.max(0.02);
        let mut a = self.aggressiveness;
        if self.abandon_rate() >= self.target {
            a = a.min(1.0);
        }
        let expected_from_ringing = ringing as f64 * p;
        let want_answers = a * free_agents as f64 - expected_from_ringing;
        if want_answers <= 0.0 {
            return 0;
        }
        (want_answers / p).floor() as usize
    }

    /// Every finished attempt: was somebody reached?
    pub fn on_attempt(&mut self, connected: bool) {
        let x = if connected { 1.0 } else { 0.0 };
        self.connect_rate += CONNECT_EWMA * (x - self.connect_rate);
    }

    /// Every answered call: was it abandoned (no agent free)?
    pub fn on_answered(&mut self, abandoned: bool) {
        self.answered += 1;
        let x = if abandoned {
            self.abandoned += 1;
            1.0
        } else {
            0.0
        };
        self.aggressiveness =
            (self.aggressiveness * (GAIN * (self.setpoint - x)).exp()).clamp(0.2, 4.0);
    }

    pub fn abandon_rate(&self) -> f64 {
        if self.answered == 0 {
            0.0
        } else {
            self.abandoned as f64 / self.answered as f64
        }
    }

    pub fn aggressiveness(&self) -> f64 {
        self.aggressiveness
    }

    pub fn connect_rate(&self) -> f64 {
        self.connect_rate
    }
}

/// What the agents of a live run are doing, for [`MeasuredPacer::lines_for`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentView {
    /// Agents available now.
    pub free: usize,
    /// Agents on a call: how long each has been talking (seconds).
    pub talking_s: Vec<f64>,
    /// Agents in after-call work: seconds until each is available again.
    pub wrap_up_left_s: Vec<f64>,
}

/// Over-dialling stops at this share of the target rate.
const GUARD: f64 = 0.9;
/// The adaptive controller may raise the allowance to this many setpoints.
const MAX_BOOST: f64 = 1.5;
/// From a call's end to its agent taking the next (hang-up, the queue's poll).
const FREE_LAG_S: f64 = 0.5;
/// Answer delays kept for the window's quantile (the newest).
const DELAY_SAMPLES: usize = 64;
/// Talk times kept for the empirical distribution (the newest).
const TALK_SAMPLES: usize = 256;
/// Talk times needed before a talking agent counts as possibly free soon.
const MIN_TALK_SAMPLES: usize = 5;

/// Predictive pacing for a live run, from the measured talk and answer times
/// of the run itself (the campaign's agents, its callees).
///
/// The question at every tick: how many more lines can be dialled so that the
/// expected number of answered calls finding no agent, as a share of the
/// expected answers, stays within the allowance? Answers among the calls
/// ringing and the new lines are Binomial(`ringing + n`, connect rate); the
/// agents able to take them within the window (a quick time to answer plus
/// the grace an answered callee may wait, 2 s by the TCPA/Ofcom rule) are the
/// free ones, the ones in wrap-up ending in time, and each talking agent with
/// the probability, from the empirical talk-time distribution, that a call as
/// old as theirs ends within the window. The expected overflow is exact over
/// these two distributions; the largest `n` within the allowance is found by
/// bisection (the ratio grows with `n`).
///
/// The allowance is the adaptive aggressiveness of [`PredictivePacer`] times
/// its setpoint, and zero — no line the agents may not take for certain —
/// while one more abandon would put the period's rate over the target (so
/// before 1/target answered calls), or its rate is near the target.
#[derive(Debug, Clone)]
pub struct MeasuredPacer {
    inner: PredictivePacer,
    grace_s: f64,
    /// The newest dial → answer delays.
    delays: std::collections::VecDeque<f64>,
    talk: std::collections::VecDeque<f64>,
    sorted: Vec<f64>,
}

impl MeasuredPacer {
    /// `target`: the abandon rate not to exceed; `grace_s`: how long an
    /// answered callee may wait for an agent before the call is abandoned.
    pub fn new(target: f64, initial_connect: f64, grace_s: f64) -> Self {
        MeasuredPacer {
            inner: PredictivePacer::new(target, initial_connect),
            grace_s: grace_s.max(0.0),
            delays: Default::default(),
            talk: Default::default(),
            sorted: Vec::new(),
        }
    }

    /// Every finished attempt: was somebody reached?
    pub fn on_attempt(&mut self, connected: bool) {
        self.inner.on_attempt(connected);
    }

    /// Every answered call: did it find an agent in time?
    pub fn on_answered(&mut self, abandoned: bool) {
        self.inner.on_answered(abandoned);
    }

    /// Dial → answer, for the answered calls.
    pub fn on_answer_delay(&mut self, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            if self.delays.len() == DELAY_SAMPLES {
                self.delays.pop_front();
            }
            self.delays.push_back(secs);
        }
    }

    /// An agent's call ended after this long.
    pub fn on_talk(&mut self, secs: f64) {
        if !secs.is_finite() || secs < 0.0 {
            return;
        }
        if self.talk.len() == TALK_SAMPLES {
            self.talk.pop_front();
        }
        self.talk.push_back(secs);
        self.sorted = self.talk.iter().copied().collect();
        self.sorted.sort_by(f64::total_cmp);
    }

    pub fn abandon_rate(&self) -> f64 {
        self.inner.abandon_rate()
    }

    pub fn connect_rate(&self) -> f64 {
        self.inner.connect_rate()
    }

    /// A new compliance period (24 h): the abandon budget starts again; what
    /// was measured of the callees and agents (connect rate, answer delays,
    /// talk times, aggressiveness) is kept.
    pub fn new_period(&mut self) {
        self.inner.answered = 0;
        self.inner.abandoned = 0;
    }

    /// The window in which a new line's answer needs an agent (seconds): a
    /// quick answer (the 10th percentile of the measured delays, 1 s before
    /// any) plus the grace. A call answered sooner than most finds the
    /// agents counted on still busy, so the window is the short one.
    pub fn window_s(&self) -> f64 {
        let quick = if self.delays.is_empty() {
            1.0
        } else {
            let mut d: Vec<f64> = self.delays.iter().copied().collect();
            d.sort_by(f64::total_cmp);
            d[d.len() / 10]
        };
        quick + self.grace_s
    }

    /// P(a call talking for `age` s ends within `w` more), from the measured
    /// talk times; 0 before enough were measured. The agent is free a little
    /// after the call ends (hang-up, the queue noticing): [`FREE_LAG_S`].
    fn p_ends_within(&self, age: f64, w: f64) -> f64 {
        let w = w - FREE_LAG_S;
        if self.sorted.len() < MIN_TALK_SAMPLES || w <= 0.0 {
            return 0.0;
        }
        let longer = |t: f64| self.sorted.len() - self.sorted.partition_point(|&x| x <= t);
        let alive = longer(age);
        if alive == 0 {
            // Longer than anything seen: no evidence it ends soon.
            return 0.0;
        }
        (alive - longer(age + w)) as f64 / alive as f64
    }

    /// How many more lines to dial now. `ringing`: calls placed and not yet
    /// answered or failed; `waiting`: answered calls waiting for an agent;
    /// `max`: the free trunk channels.
    pub fn lines_for(&self, view: &AgentView, ringing: usize, waiting: usize, max: usize) -> usize {
        let w = self.window_s();
        // Agents able to take a call within the window: a Poisson-binomial.
        let mut cap = vec![1.0f64];
        let mut sure = view.free;
        for &left in &view.wrap_up_left_s {
            if left <= w {
                sure += 1;
            }
        }
        for &age in &view.talking_s {
            let q = self.p_ends_within(age, w);
            if q >= 1.0 {
                sure += 1;
            } else if q > 0.0 {
                let mut next = vec![0.0; cap.len() + 1];
                for (k, &pk) in cap.iter().enumerate() {
                    next[k] += pk * (1.0 - q);
                    next[k + 1] += pk * q;
                }
                cap = next;
            }
        }
        let p = self.inner.connect_rate().clamp(0.02, 0.999);
        // The allowance exists only while one more abandon is within budget:
        // (abandoned + 1) / (answered + 1) ≤ target on the answers measured
        // so far in this period, and the rate is under the guard (a margin
        // for the calls still in flight). Before 1/target answers (33 at 3%)
        // a line is dialled only for an agent certain to take it — the rule
        // counts whole abandons, and a small period affords none.
        let (answered, abandoned) = (self.inner.answered as f64, self.inner.abandoned as f64);
        let allowance = if self.inner.answered == 0
            || self.abandon_rate() >= GUARD * self.inner.target
            || abandoned + 1.0 > self.inner.target * (answered + 1.0) + 1e-9
        {
            0.0
        } else {
            self.inner.aggressiveness.clamp(0.2, MAX_BOOST) * self.inner.setpoint
        };
        // Expected overflow over expected answers with `n` new lines.
        let within = |n: usize| -> bool {
            let m = ringing + n;
            let answers = m as f64 * p + waiting as f64;
            if answers <= 0.0 {
                return true;
            }
            let ax = binomial_pmf(m, p);
            let mut overflow = 0.0;
            for (x, &px) in ax.iter().enumerate() {
                let demand = x + waiting;
                if demand <= sure {
                    continue;
                }
                for (k, &pk) in cap.iter().enumerate() {
                    let have = sure + k;
                    if demand > have {
                        overflow += px * pk * (demand - have) as f64;
                    }
                }
            }
            overflow <= allowance * answers + 1e-9
        };
        // Never more lines than could be answered by everyone able to take one.
        let hi_cap = ((sure + cap.len()) as f64 / p).ceil() as usize;
        let (mut lo, mut hi) = (0usize, max.min(hi_cap));
        if !within(0) {
            return 0;
        }
        while lo < hi {
            let mid = (lo + hi).div_ceil(2);
            if within(mid) {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        lo
    }
}

/// P(X = x) for X ~ Binomial(n, p), x = 0..=n, in O(n) (log space: no
/// underflow of `(1 − p)^n` for long lines).
fn binomial_pmf(n: usize, p: f64) -> Vec<f64> {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    let (lp, lq) = (p.ln(), (1.0 - p).ln());
    let mut v = Vec::with_capacity(n + 1);
    let mut l = n as f64 * lq;
    v.push(l.exp());
    for x in 0..n {
        l += ((n - x) as f64).ln() - ((x + 1) as f64).ln() + lp - lq;
        v.push(l.exp());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// A call centre: agents, calls that ring then connect with probability
    /// `p`, talk times around a minute. Returns (abandon rate, agent utilisation).
    fn run(predictive: bool, seed: u64) -> (f64, f64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let agents = 30usize;
        let p = 0.3;
        let mut pacer = PredictivePacer::new(0.03, 0.5);
        let mut agent_free_at = vec![0u32; agents];
        let mut ringing: Vec<u32> = Vec::new(); // answer/fail time
        let mut ringing_connects: Vec<bool> = Vec::new();
        let (mut busy_secs, mut total_secs) = (0u64, 0u64);
        for t in 0..4 * 3600u32 {
            // Resolve calls whose ringing ends now.
            let mut i = 0;
            while i < ringing.len() {
                if ringing[i] <= t {
                    let connected = ringing_connects[i];
                    pacer.on_attempt(connected);
                    if connected {
                        match agent_free_at.iter_mut().find(|f| **f <= t) {
                            Some(f) => {
                                *f = t + rng.gen_range(30..90);
                                pacer.on_answered(false);
                            }
                            None => pacer.on_answered(true),
                        }
                    }
                    ringing.swap_remove(i);
                    ringing_connects.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            let free = agent_free_at.iter().filter(|f| **f <= t).count();
            busy_secs += (agents - free) as u64;
            total_secs += agents as u64;
            let n = if predictive {
                pacer.lines_to_dial(free, ringing.len())
            } else {
                free.saturating_sub(ringing.len())
            };
            for _ in 0..n {
                ringing.push(t + rng.gen_range(8..25));
                ringing_connects.push(rng.gen_bool(p));
            }
        }
        (pacer.abandon_rate(), busy_secs as f64 / total_secs as f64)
    }

    #[test]
    fn predictive_keeps_abandon_rate_under_target_and_beats_progressive() {
        for seed in 1..4 {
            let (abandon, util) = run(true, seed);
            let (p_abandon, p_util) = run(false, seed);
            assert!(abandon <= 0.03, "seed {seed}: abandon {abandon}");
            assert_eq!(p_abandon, 0.0);
            assert!(
                util > p_util * 1.5,
                "seed {seed}: predictive {util} vs progressive {p_util}"
            );
        }
    }

    /// A live run in deciseconds: `agents` agents, calls ringing 2–6 s and
    /// connecting with probability `p`, talk 8–16 s, no wrap-up; an answered
    /// call waits up to 2 s for an agent, then is abandoned. Returns
    /// (abandon rate, agent utilisation, answered calls).
    fn live(measured: bool, agents: usize, p: f64, seed: u64) -> (f64, f64, u64) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pacer = MeasuredPacer::new(0.03, 0.5, 2.0);
        let mut busy_since: Vec<Option<u32>> = vec![None; agents];
        let mut ends_at = vec![0u32; agents];
        let mut ringing: Vec<(u32, u32, bool)> = Vec::new(); // (placed, ends, connects)
        let mut waiting: Vec<u32> = Vec::new(); // answered at
        let (mut busy, mut total, mut answered) = (0u64, 0u64, 0u64);
        for t in 0..36_000u32 {
            for (a, s) in busy_since.iter_mut().enumerate() {
                if let Some(since) = *s {
                    if ends_at[a] <= t {
                        pacer.on_talk((t - since) as f64 / 10.0);
                        *s = None;
                    }
                }
            }
            let mut i = 0;
            while i < ringing.len() {
                let (placed, end, connects) = ringing[i];
                if end <= t {
                    pacer.on_attempt(connects);
                    if connects {
                        pacer.on_answer_delay((t - placed) as f64 / 10.0);
                        waiting.push(t);
                        answered += 1;
                    }
                    ringing.swap_remove(i);
                } else {
                    i += 1;
                }
            }
            waiting.retain(|&at| {
                if let Some(a) = busy_since.iter().position(|s| s.is_none()) {
                    busy_since[a] = Some(t);
                    ends_at[a] = t + rng.gen_range(80..160);
                    pacer.on_answered(false);
                    false
                } else if t - at >= 20 {
                    pacer.on_answered(true);
                    false
                } else {
                    true
                }
            });
            let free = busy_since.iter().filter(|s| s.is_none()).count();
            busy += (agents - free) as u64;
            total += agents as u64;
            let n = if measured {
                let view = AgentView {
                    free,
                    talking_s: busy_since
                        .iter()
                        .flatten()
                        .map(|s| (t - s) as f64 / 10.0)
                        .collect(),
                    wrap_up_left_s: Vec::new(),
                };
                pacer.lines_for(&view, ringing.len(), waiting.len(), 1000)
            } else {
                free.saturating_sub(ringing.len() + waiting.len())
            };
            for _ in 0..n {
                ringing.push((t, t + rng.gen_range(20..60), rng.gen_bool(p)));
            }
        }
        (pacer.abandon_rate(), busy as f64 / total as f64, answered)
    }

    #[test]
    fn measured_pacer_holds_the_rate_and_beats_progressive_for_small_teams() {
        for (agents, p) in [(3usize, 0.5f64), (8, 0.4), (20, 0.3)] {
            for seed in 1..3 {
                let (abandon, util, answered) = live(true, agents, p, seed);
                let (p_abandon, p_util, _) = live(false, agents, p, seed);
                eprintln!("{agents} agents p {p} seed {seed}: abandon {abandon:.4} util {util:.3} vs {p_util:.3}, {answered} answered");
                assert!(answered > 300, "{agents} agents: {answered} answered");
                assert!(
                    abandon <= 0.03,
                    "{agents} agents seed {seed}: abandon {abandon}"
                );
                assert_eq!(p_abandon, 0.0);
                assert!(
                    util > p_util * 1.05,
                    "{agents} agents seed {seed}: measured {util:.3} vs progressive {p_util:.3}"
                );
            }
        }
    }

    #[test]
    fn measured_pacer_dials_nothing_it_cannot_place_before_it_has_seen_an_answer() {
        let p = MeasuredPacer::new(0.03, 0.5, 2.0);
        let view = AgentView {
            free: 4,
            ..AgentView::default()
        };
        // No answered call yet: only lines four agents take for certain.
        let n = p.lines_for(&view, 0, 0, 100);
        assert!(n <= 4, "{n}");
        assert_eq!(p.lines_for(&AgentView::default(), 0, 0, 100), 0);
        assert_eq!(p.lines_for(&view, 0, 0, 2), 2, "the channel limit holds");
    }

    #[test]
    fn over_dialling_waits_until_one_abandon_is_within_budget_in_the_period() {
        let mut p = MeasuredPacer::new(0.03, 0.5, 2.0);
        let view = AgentView {
            free: 4,
            ..AgentView::default()
        };
        let answer = |p: &mut MeasuredPacer, n: usize| {
            for _ in 0..n {
                p.on_attempt(true);
                p.on_attempt(false);
                p.on_answered(false);
            }
        };
        answer(&mut p, 31);
        // 32 answered: (0 + 1) / 33 > 3% — no line but the certain ones.
        answer(&mut p, 1);
        assert!(p.lines_for(&view, 0, 0, 100) <= 4);
        answer(&mut p, 1);
        // 33 answered: one abandon in 34 is 2.9%.
        let n = p.lines_for(&view, 0, 0, 100);
        assert!(n > 4, "{n}");
        // A new 24 h: the budget starts again.
        p.new_period();
        assert!(p.lines_for(&view, 0, 0, 100) <= 4);
    }

    #[test]
    fn binomial_pmf_sums_to_one_and_has_the_mean() {
        for (n, p) in [(0usize, 0.3), (1, 0.5), (10, 0.3), (400, 0.5), (2000, 0.02)] {
            let v = binomial_pmf(n, p);
            let sum: f64 = v.iter().sum();
            let mean: f64 = v.iter().enumerate().map(|(x, q)| x as f64 * q).sum();
            assert!((sum - 1.0).abs() < 1e-6, "{n} {p}: {sum}");
            assert!(
                (mean - n as f64 * p).abs() < 1e-4 * (n as f64 + 1.0),
                "{n} {p}: {mean}"
            );
        }
    }

    #[test]
    fn guard_stops_overdial_at_target() {
        let mut p = PredictivePacer::new(0.03, 0.25);
        for _ in 0..10 {
            p.on_answered(true);
        }
        // Rate is 100%: never more than one expected answer per free agent.
        assert!(p.lines_to_dial(10, 0) as f64 * p.connect_rate() <= 10.0 + 1e-9);
        assert_eq!(p.lines_to_dial(0, 5), 0);
    }
}
