//! Learning from outcomes while a campaign runs.
//!
//! - [`bandit`]: Thompson sampling over a script node's prompt variants,
//!   per segment, with a minimum exploration share and a stop rule; the
//!   posterior probability of being best and the uplift for the A/B report.
//! - [`race`]: the bandit against a fixed split on known rates (the
//!   benchmark and the tests).
//! - [`propensity`]: online, explainable answer and conversion propensity
//!   models over named customer features (predictive outbound).
//!
//! Sans-IO: counts in, choices and reports out; randomness is an input.

pub mod bandit;
pub mod propensity;
pub mod race;

pub use bandit::{prob_best, report, uplift, Arm, ArmReport, Bandit, Pick, Policy, Uplift};
pub use propensity::{Contribution, Features, Logistic, Multiplier, Tuning};
