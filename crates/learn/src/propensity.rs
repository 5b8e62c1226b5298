//! Propensity models for predictive outbound: online, sparse, explainable.
//!
//! Customers are described by *named binary features* (`occupation=office`,
//! `part1|occupation=office`, `tier=gold`, `unanswered=2`, ...), interned to
//! ids by [`Features`]. Two kinds of head learn from outcomes one at a time
//! (the campaign keeps running while they learn; there is no batch step):
//!
//! - [`Logistic`]: `p = σ(b + Σ w_i)` — conversion after a connect, and
//!   conversion after a message.
//! - [`Multiplier`]: `p = min(base · exp(Σ w_i), cap)` — a customer's answer
//!   propensity as a factor on a base rate the caller already has (the
//!   campaign's hour-of-week × segment model). Multiplicative on purpose: the
//!   planner ranks ready contacts in queues keyed by an hour-independent
//!   score, and a factor keeps that ranking exact for every hour.
//!
//! Both use AdaGrad with L2 shrinkage (per-feature step sizes: rare features
//! such as one city move fast at first, common ones settle). Weights of
//! features never seen are zero, so a new feature changes nothing until an
//! outcome speaks for it. [`Logistic::explain`] / [`Multiplier::explain`] give
//! the features that move one customer's prediction most, with their
//! contribution in log-odds (or log-factor) units.
//!
//! Sans-IO and deterministic: the same outcomes in the same order give the
//! same weights.
use std::collections::HashMap;

use serde::Serialize;

/// Interned feature names.
#[derive(Debug, Clone, Default)]
pub struct Features {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Features {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `name`, adding it if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    pub fn get(&self, name: &str) -> Option<u32> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names
            .get(id as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// One feature's share of a prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Contribution {
    pub feature: String,
    /// Log-odds (logistic) or log-factor (multiplier) units; positive raises.
    pub weight: f64,
}

/// Step size and shrinkage.
#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    pub rate: f64,
    pub l2: f64,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning {
            rate: 0.1,
            l2: 1e-4,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Weights {
    w: Vec<f64>,
    g2: Vec<f64>,
}

impl Weights {
    fn dot(&self, x: &[u32]) -> f64 {
        x.iter()
            .map(|&i| self.w.get(i as usize).copied().unwrap_or(0.0))
            .sum()
    }

    fn step(&mut self, x: &[u32], grad: f64, t: Tuning) {
        for &i in x {
            let i = i as usize;
            if i >= self.w.len() {
                self.w.resize(i + 1, 0.0);
                self.g2.resize(i + 1, 0.0);
            }
            // Ascent on the log-likelihood minus the L2 penalty.
            let g = grad - t.l2 * self.w[i];
            self.g2[i] += g * g;
            self.w[i] += t.rate * g / (self.g2[i].sqrt() + 1e-9);
        }
    }

    fn explain(&self, x: &[u32], names: &Features, k: usize) -> Vec<Contribution> {
        let mut c: Vec<Contribution> = x
            .iter()
            .map(|&i| Contribution {
                feature: names.name(i).to_string(),
                weight: self.w.get(i as usize).copied().unwrap_or(0.0),
            })
            .filter(|c| c.weight != 0.0)
            .collect();
        c.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        c.truncate(k);
        c
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

fn logit(p: f64) -> f64 {
    let p = p.clamp(1e-6, 1.0 - 1e-6);
    (p / (1.0 - p)).ln()
}

/// Online logistic regression over binary features.
#[derive(Debug, Clone)]
pub struct Logistic {
    bias: f64,
    bias_g2: f64,
    weights: Weights,
    tuning: Tuning,
    seen: u64,
}

impl Logistic {
    /// Starts at `prior` for everyone.
    pub fn new(prior: f64, tuning: Tuning) -> Self {
        Logistic {
            bias: logit(prior),
            bias_g2: 0.0,
            weights: Weights::default(),
            tuning,
            seen: 0,
        }
    }

    pub fn predict(&self, x: &[u32]) -> f64 {
        sigmoid(self.bias + self.weights.dot(x))
    }

    pub fn update(&mut self, x: &[u32], y: bool) {
        let g = f64::from(u8::from(y)) - self.predict(x);
        self.bias_g2 += g * g;
        self.bias += self.tuning.rate * g / (self.bias_g2.sqrt() + 1e-9);
        self.weights.step(x, g, self.tuning);
        self.seen += 1;
    }

    /// Outcomes learned from.
    pub fn seen(&self) -> u64 {
        self.seen
    }

    /// The `k` features of `x` that move this prediction most.
    pub fn explain(&self, x: &[u32], names: &Features, k: usize) -> Vec<Contribution> {
        self.weights.explain(x, names, k)
    }
}

/// A learned factor on a base probability: `p = min(base · exp(w·x), cap)`.
#[derive(Debug, Clone)]
pub struct Multiplier {
    weights: Weights,
    tuning: Tuning,
    cap: f64,
    seen: u64,
}

/// The log-factor is clamped to ±LIMIT (a factor between 1/20 and 20).
const LIMIT: f64 = 3.0;

impl Multiplier {
    pub fn new(cap: f64, tuning: Tuning) -> Self {
        Multiplier {
            weights: Weights::default(),
            tuning,
            cap,
            seen: 0,
        }
    }

    /// The factor for these features (1 for an untrained model).
    pub fn factor(&self, x: &[u32]) -> f64 {
        self.weights.dot(x).clamp(-LIMIT, LIMIT).exp()
    }

    pub fn predict(&self, base: f64, x: &[u32]) -> f64 {
        (base * self.factor(x)).clamp(0.0, self.cap)
    }

    /// One outcome of a trial whose base probability was `base`.
    pub fn update(&mut self, base: f64, x: &[u32], y: bool) {
        let eta = self.weights.dot(x);
        let p = (base.max(1e-6) * eta.clamp(-LIMIT, LIMIT).exp()).min(self.cap);
        // d/dη of the Bernoulli log-likelihood with p = base·e^η:
        // success: 1; failure: −p/(1−p). No push past the cap or the clamp.
        let grad = if y {
            if p >= self.cap || eta >= LIMIT {
                0.0
            } else {
                1.0
            }
        } else if eta <= -LIMIT {
            0.0
        } else {
            -p / (1.0 - p)
        };
        self.weights.step(x, grad, self.tuning);
        self.seen += 1;
    }

    pub fn seen(&self) -> u64 {
        self.seen
    }

    pub fn explain(&self, x: &[u32], names: &Features, k: usize) -> Vec<Contribution> {
        self.weights.explain(x, names, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand09::{Rng, SeedableRng};

    #[test]
    fn logistic_learns_which_feature_converts() {
        let mut f = Features::new();
        let gold = f.intern("tier=gold");
        let basic = f.intern("tier=basic");
        let city = f.intern("city=北京");
        let mut m = Logistic::new(0.2, Tuning::default());
        let mut rng = rand09::rngs::StdRng::seed_from_u64(3);
        for i in 0..20_000 {
            let (x, p) = if i % 2 == 0 {
                (vec![gold, city], 0.5)
            } else {
                (vec![basic, city], 0.1)
            };
            let y = rng.random_bool(p);
            m.update(&x, y);
        }
        let pg = m.predict(&[gold, city]);
        let pb = m.predict(&[basic, city]);
        assert!((pg - 0.5).abs() < 0.05, "{pg}");
        assert!((pb - 0.1).abs() < 0.03, "{pb}");
        let why = m.explain(&[gold, city], &f, 1);
        assert_eq!(why[0].feature, "tier=gold");
        assert!(why[0].weight > 0.0);
        assert_eq!(m.seen(), 20_000);
    }

    #[test]
    fn multiplier_recovers_a_factor_on_the_base_rate() {
        let mut f = Features::new();
        let evening = f.intern("part2|occupation=office");
        let morning = f.intern("part0|occupation=office");
        let mut m = Multiplier::new(0.95, Tuning::default());
        assert_eq!(m.factor(&[evening]), 1.0);
        let mut rng = rand09::rngs::StdRng::seed_from_u64(5);
        for i in 0..40_000 {
            // Base 0.3 everywhere; office workers answer 2× in the evening, 0.5× in the morning.
            let base = 0.3;
            let (x, p) = if i % 2 == 0 {
                (evening, 0.6)
            } else {
                (morning, 0.15)
            };
            m.update(base, &[x], rng.random_bool(p));
        }
        let fe = m.factor(&[evening]);
        let fm = m.factor(&[morning]);
        assert!((fe - 2.0).abs() < 0.2, "{fe}");
        assert!((fm - 0.5).abs() < 0.08, "{fm}");
        assert!(m.predict(0.9, &[evening]) <= 0.95);
        assert_eq!(m.explain(&[evening], &f, 3)[0].feature, evening_name(&f));
    }

    fn evening_name(f: &Features) -> String {
        f.name(0).to_string()
    }

    #[test]
    fn unseen_features_change_nothing_and_interning_is_stable() {
        let mut f = Features::new();
        let a = f.intern("a");
        assert_eq!(f.intern("a"), a);
        assert_eq!(f.get("b"), None);
        let b = f.intern("b");
        let m = Logistic::new(0.3, Tuning::default());
        assert!((m.predict(&[a, b]) - 0.3).abs() < 1e-9);
        assert!(m.explain(&[a, b], &f, 5).is_empty());
        assert_eq!(f.len(), 2);
    }
}
