//! A race between allocation strategies over Bernoulli arms with known
//! rates: how many calls each needs to name the best variant with a given
//! confidence, and what the calls cost on the way (regret). The benchmark
//! `waihu bench bandit` and the tests run it; pure and seeded.

use crate::bandit::{prob_best, Arm, Bandit, Policy};
use rand09::Rng;
use serde::Serialize;

/// How calls are split between variants until the experiment concludes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Thompson sampling with this minimum exploration share.
    Thompson { min_share: f64 },
    /// The classic A/B test: each call uniformly at random.
    FixedSplit,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Race {
    /// True success rate of each variant.
    pub rates: Vec<f64>,
    /// Calls in all.
    pub horizon: u64,
    /// Calls whose reward is still pending when the next one is chosen
    /// (calls last minutes; many run at once).
    pub in_flight: usize,
    /// Conclude when one variant is best with this posterior probability...
    pub stop_prob: f64,
    /// ...after at least this many rewards.
    pub min_trials: u64,
    /// Rewards between two evaluations of the stop rule.
    pub check_every: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RaceResult {
    /// Calls placed when the stop rule fired (None: never within the horizon).
    pub calls_to_stop: Option<u64>,
    /// The variant it concluded on.
    pub winner: Option<usize>,
    /// Successes over the whole horizon (after the stop everyone gets the winner).
    pub successes: u64,
    /// Expected successes lost against always playing the best variant.
    pub regret: f64,
}

pub fn race<R: Rng + ?Sized>(r: &Race, strategy: Strategy, rng: &mut R) -> RaceResult {
    let k = r.rates.len();
    let best_rate = r.rates.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let policy = Policy {
        min_share: match strategy {
            Strategy::Thompson { min_share } => min_share,
            Strategy::FixedSplit => 0.0,
        },
        stop_prob: r.stop_prob,
        // The race applies the stop rule itself, identically for both strategies.
        min_trials: u64::MAX,
    };
    let mut bandit = Bandit::new(k, policy);
    let mut counts = vec![Arm::default(); k];
    let mut pending: std::collections::VecDeque<(usize, bool)> = Default::default();
    let mut out = RaceResult {
        calls_to_stop: None,
        winner: None,
        successes: 0,
        regret: 0.0,
    };
    let mut observed = 0u64;
    for call in 1..=r.horizon {
        let arm = match (out.winner, strategy) {
            (Some(w), _) => w,
            (None, Strategy::FixedSplit) => rng.random_range(0..k),
            (None, Strategy::Thompson { .. }) => bandit.pick(rng).0,
        };
        let ok = rng.random::<f64>() < r.rates[arm];
        out.successes += u64::from(ok);
        out.regret += best_rate - r.rates[arm];
        if out.winner.is_some() {
            continue;
        }
        pending.push_back((arm, ok));
        while pending.len() > r.in_flight {
            let (a, ok) = pending.pop_front().expect("non-empty");
            bandit.observe(a, ok, rng);
            counts[a].trials += 1;
            counts[a].successes += u64::from(ok);
            observed += 1;
            if observed >= r.min_trials && observed.is_multiple_of(r.check_every.max(1)) {
                let p = prob_best(&counts, 2000, rng);
                if let Some((i, &pb)) = p.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)) {
                    if pb >= r.stop_prob {
                        out.winner = Some(i);
                        out.calls_to_stop = Some(call);
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand09::rngs::StdRng;
    use rand09::SeedableRng;

    #[test]
    fn thompson_loses_less_than_a_fixed_split() {
        let r = Race {
            rates: vec![0.20, 0.25, 0.30],
            horizon: 4000,
            in_flight: 20,
            stop_prob: 0.95,
            min_trials: 100,
            check_every: 20,
        };
        let (mut ts, mut fx) = (0.0, 0.0);
        for seed in 0..20 {
            let mut rng = StdRng::seed_from_u64(seed);
            ts += race(&r, Strategy::Thompson { min_share: 0.05 }, &mut rng).regret;
            let mut rng = StdRng::seed_from_u64(seed);
            fx += race(&r, Strategy::FixedSplit, &mut rng).regret;
        }
        assert!(ts < fx, "thompson regret {ts} vs fixed split {fx}");
    }
}
