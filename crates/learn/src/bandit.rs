//! Beta-Bernoulli Thompson sampling over the prompt variants of one script
//! node (per segment).
//!
//! Why Thompson sampling: rewards are binary (the callee went on, the call
//! converted), arms are few (2–5 variants) and a call's reward arrives
//! minutes after its choice, with many calls in flight. Thompson sampling
//! handles that delay gracefully (the choice stays randomised while results
//! are pending, unlike UCB which keeps pulling one arm until its bound
//! moves), its posterior is also what the A/B report needs (probability of
//! being best), and it has no tuning constant besides the prior.
//!
//! Guardrails the script declares: a minimum exploration share (each arm is
//! still chosen at random with at least that probability, so a slow start
//! cannot starve a variant), and a stop rule (once one arm is best with
//! probability `stop_prob` after `min_trials` observations the experiment
//! is concluded and the winner is served to everyone).
//!
//! Sans-IO: randomness is an input (`rng`), counts are plain data the
//! runtime restores from the store.

use rand09::Rng;
use rand_distr::{Beta, Distribution};
use serde::Serialize;

/// Observations of one arm. The posterior is Beta(1 + successes, 1 + failures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Arm {
    pub trials: u64,
    pub successes: u64,
}

impl Arm {
    pub fn failures(&self) -> u64 {
        self.trials.saturating_sub(self.successes)
    }

    /// The posterior mean of the success rate.
    pub fn mean(&self) -> f64 {
        (1.0 + self.successes as f64) / (2.0 + self.trials as f64)
    }

    /// The posterior variance of the success rate.
    pub fn variance(&self) -> f64 {
        let a = 1.0 + self.successes as f64;
        let b = 1.0 + self.failures() as f64;
        a * b / ((a + b) * (a + b) * (a + b + 1.0))
    }

    fn beta(&self) -> Beta<f64> {
        Beta::new(1.0 + self.successes as f64, 1.0 + self.failures() as f64)
            .expect("both shape parameters are at least 1")
    }
}

/// How a bandit explores and when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Policy {
    /// Each arm's minimum probability of being chosen while exploring
    /// (`min_share × arms ≤ 1`).
    pub min_share: f64,
    /// Conclude once one arm is best with this posterior probability...
    pub stop_prob: f64,
    /// ...and at least this many rewards have been observed in all.
    pub min_trials: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_share: 0.05,
            stop_prob: 0.95,
            min_trials: 100,
        }
    }
}

impl Policy {
    /// Why this policy cannot drive `arms` arms, if it cannot.
    pub fn check(&self, arms: usize) -> Result<(), String> {
        if arms < 2 {
            return Err(format!("a bandit needs at least 2 variants, got {arms}"));
        }
        if !(0.0..=1.0).contains(&self.min_share) || self.min_share * arms as f64 > 1.0 + 1e-9 {
            return Err(format!(
                "min_share {} × {arms} variants must be between 0 and 1",
                self.min_share
            ));
        }
        if !(self.stop_prob > 0.5 && self.stop_prob < 1.0) {
            return Err(format!(
                "stop prob_best {} must be above 0.5 and below 1",
                self.stop_prob
            ));
        }
        Ok(())
    }
}

/// Why an arm was chosen (stored with the call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pick {
    /// The minimum exploration share: uniformly at random.
    Explore,
    /// A Thompson sample from the posteriors.
    Sample,
    /// The experiment has concluded: its winner.
    Winner,
}

impl Pick {
    pub fn as_str(self) -> &'static str {
        match self {
            Pick::Explore => "explore",
            Pick::Sample => "sample",
            Pick::Winner => "winner",
        }
    }
}

/// Monte Carlo draws behind [`prob_best`] and the stop rule.
pub const DRAWS: usize = 4000;

/// One node's (and segment's) bandit.
#[derive(Debug, Clone, PartialEq)]
pub struct Bandit {
    arms: Vec<Arm>,
    policy: Policy,
    winner: Option<usize>,
}

impl Bandit {
    /// A fresh bandit over `arms` variants. Panics when the policy does not
    /// [`Policy::check`] (scripts are validated when they load).
    pub fn new(arms: usize, policy: Policy) -> Bandit {
        if let Err(e) = policy.check(arms) {
            panic!("invalid bandit policy: {e}");
        }
        // No observations: the stop rule cannot fire.
        Bandit {
            arms: vec![Arm::default(); arms],
            policy,
            winner: None,
        }
    }

    /// A bandit from stored counts; the stop rule is re-applied.
    pub fn restore<R: Rng + ?Sized>(arms: Vec<Arm>, policy: Policy, rng: &mut R) -> Bandit {
        if let Err(e) = policy.check(arms.len()) {
            panic!("invalid bandit policy: {e}");
        }
        let mut b = Bandit {
            arms,
            policy,
            winner: None,
        };
        b.apply_stop_rule(rng);
        b
    }

    pub fn arms(&self) -> &[Arm] {
        &self.arms
    }

    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The concluded experiment's winner.
    pub fn winner(&self) -> Option<usize> {
        self.winner
    }

    /// The arm for the next call.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> (usize, Pick) {
        if let Some(w) = self.winner {
            return (w, Pick::Winner);
        }
        let k = self.arms.len();
        if rng.random::<f64>() < self.policy.min_share * k as f64 {
            return (rng.random_range(0..k), Pick::Explore);
        }
        (thompson(&self.arms, rng), Pick::Sample)
    }

    /// A reward arrived for `arm` (ignored when out of range).
    pub fn observe<R: Rng + ?Sized>(&mut self, arm: usize, success: bool, rng: &mut R) {
        let Some(a) = self.arms.get_mut(arm) else {
            return;
        };
        a.trials += 1;
        a.successes += u64::from(success);
        self.apply_stop_rule(rng);
    }

    fn apply_stop_rule<R: Rng + ?Sized>(&mut self, rng: &mut R) {
        if self.winner.is_some() {
            return;
        }
        let total: u64 = self.arms.iter().map(|a| a.trials).sum();
        if total < self.policy.min_trials.max(1) {
            return;
        }
        let p = prob_best(&self.arms, DRAWS, rng);
        if let Some((i, &best)) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
            if best >= self.policy.stop_prob {
                self.winner = Some(i);
            }
        }
    }
}

/// One Thompson draw: the arm whose posterior sample is highest.
pub fn thompson<R: Rng + ?Sized>(arms: &[Arm], rng: &mut R) -> usize {
    let mut best = (0, f64::NEG_INFINITY);
    for (i, a) in arms.iter().enumerate() {
        let x = a.beta().sample(rng);
        if x > best.1 {
            best = (i, x);
        }
    }
    best.0
}

/// Per arm, the posterior probability that it has the highest success rate
/// (Monte Carlo over `draws` joint samples; sums to 1).
pub fn prob_best<R: Rng + ?Sized>(arms: &[Arm], draws: usize, rng: &mut R) -> Vec<f64> {
    let mut wins = vec![0u64; arms.len()];
    if arms.is_empty() || draws == 0 {
        return vec![0.0; arms.len()];
    }
    let betas: Vec<Beta<f64>> = arms.iter().map(Arm::beta).collect();
    for _ in 0..draws {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, b) in betas.iter().enumerate() {
            let x = b.sample(rng);
            if x > best.1 {
                best = (i, x);
            }
        }
        wins[best.0] += 1;
    }
    wins.iter().map(|&w| w as f64 / draws as f64).collect()
}

/// An arm's success rate against a control arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Uplift {
    /// Difference of posterior means (percentage points / 100).
    pub diff: f64,
    /// Its 95% interval (normal approximation of the two Beta posteriors).
    pub lo: f64,
    pub hi: f64,
    /// `diff` relative to the control's mean.
    pub relative: f64,
}

pub fn uplift(control: &Arm, arm: &Arm) -> Uplift {
    let diff = arm.mean() - control.mean();
    let half = 1.959_964 * (arm.variance() + control.variance()).sqrt();
    Uplift {
        diff,
        lo: diff - half,
        hi: diff + half,
        relative: diff / control.mean(),
    }
}

/// One row of an A/B report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub arm: usize,
    pub trials: u64,
    pub successes: u64,
    /// Posterior mean success rate.
    pub rate: f64,
    pub prob_best: f64,
    /// Against the first arm (the control); `None` for the control itself.
    pub uplift: Option<Uplift>,
}

/// The A/B report of one experiment. `rng` drives the Monte Carlo of
/// `prob_best`; seed it for a report that reads the same twice.
pub fn report<R: Rng + ?Sized>(arms: &[Arm], rng: &mut R) -> Vec<ArmReport> {
    let p = prob_best(arms, DRAWS, rng);
    arms.iter()
        .enumerate()
        .map(|(i, a)| ArmReport {
            arm: i,
            trials: a.trials,
            successes: a.successes,
            rate: a.mean(),
            prob_best: p[i],
            uplift: (i > 0).then(|| uplift(&arms[0], a)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand09::rngs::StdRng;
    use rand09::SeedableRng;

    fn arm(trials: u64, successes: u64) -> Arm {
        Arm { trials, successes }
    }

    #[test]
    fn prob_best_favours_the_clearly_better_arm_and_sums_to_one() {
        let mut rng = StdRng::seed_from_u64(1);
        let p = prob_best(&[arm(500, 100), arm(500, 150)], DRAWS, &mut rng);
        assert!(p[1] > 0.99, "{p:?}");
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        // No data: a coin toss.
        let p = prob_best(&[arm(0, 0), arm(0, 0)], DRAWS, &mut rng);
        assert!((p[0] - 0.5).abs() < 0.05, "{p:?}");
    }

    #[test]
    fn the_stop_rule_waits_for_min_trials_then_concludes() {
        let policy = Policy {
            min_share: 0.1,
            stop_prob: 0.95,
            min_trials: 1000,
        };
        let mut rng = StdRng::seed_from_u64(2);
        let b = Bandit::restore(vec![arm(400, 40), arm(400, 120)], policy, &mut rng);
        assert_eq!(b.winner(), None, "only 800 trials");
        let mut b = Bandit::restore(vec![arm(500, 50), arm(499, 150)], policy, &mut rng);
        assert_eq!(b.winner(), None);
        b.observe(1, true, &mut rng);
        assert_eq!(b.winner(), Some(1));
        assert_eq!(b.pick(&mut rng), (1, Pick::Winner));
    }

    #[test]
    fn close_arms_do_not_conclude() {
        let mut rng = StdRng::seed_from_u64(3);
        let b = Bandit::restore(
            vec![arm(300, 60), arm(300, 62)],
            Policy::default(),
            &mut rng,
        );
        assert_eq!(b.winner(), None);
    }

    #[test]
    fn min_share_keeps_every_arm_explored() {
        let policy = Policy {
            min_share: 0.1,
            stop_prob: 0.999,
            min_trials: u64::MAX,
        };
        let mut rng = StdRng::seed_from_u64(4);
        // Arm 2 looks hopeless, yet keeps being tried through exploration.
        let b = Bandit::restore(
            vec![arm(1000, 300), arm(1000, 310), arm(1000, 10)],
            policy,
            &mut rng,
        );
        let n = 20_000;
        let chosen = (0..n).filter(|_| b.pick(&mut rng).0 == 2).count();
        let share = chosen as f64 / n as f64;
        assert!(share > 0.08 && share < 0.13, "share {share}");
    }

    #[test]
    fn policy_check_names_the_problem() {
        let p = Policy {
            min_share: 0.4,
            ..Policy::default()
        };
        assert!(p.check(3).unwrap_err().contains("min_share"));
        assert!(Policy::default()
            .check(1)
            .unwrap_err()
            .contains("at least 2"));
        let p = Policy {
            stop_prob: 1.0,
            ..Policy::default()
        };
        assert!(p.check(2).unwrap_err().contains("prob_best"));
    }

    #[test]
    fn uplift_interval_contains_the_difference_and_excludes_zero_when_clear() {
        let u = uplift(&arm(2000, 200), &arm(2000, 300));
        assert!(u.lo < u.diff && u.diff < u.hi);
        assert!(u.lo > 0.0, "{u:?}");
        assert!((u.relative - 0.5).abs() < 0.05, "{u:?}");
        let u = uplift(&arm(20, 2), &arm(20, 3));
        assert!(u.lo < 0.0 && u.hi > 0.0, "{u:?}");
    }

    proptest::proptest! {
        // Each observation past min_trials runs the stop rule's Monte Carlo.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn picks_stay_in_range_and_counts_add_up(
            rewards in proptest::collection::vec((0usize..4, proptest::bool::ANY), 0..300),
            seed in 0u64..1000,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut b = Bandit::new(4, Policy { min_share: 0.05, stop_prob: 0.9, min_trials: 50 });
            for (arm, ok) in &rewards {
                let (p, _) = b.pick(&mut rng);
                proptest::prop_assert!(p < 4);
                b.observe(*arm, *ok, &mut rng);
            }
            let trials: u64 = b.arms().iter().map(|a| a.trials).sum();
            let successes: u64 = b.arms().iter().map(|a| a.successes).sum();
            proptest::prop_assert_eq!(trials, rewards.len() as u64);
            proptest::prop_assert_eq!(successes, rewards.iter().filter(|r| r.1).count() as u64);
        }
    }
}
