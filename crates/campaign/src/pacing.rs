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
