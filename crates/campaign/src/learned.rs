//! The learned policy's models and choices (`ranking.policy: learned`).
//!
//! Three online heads from `waihu-learn`, one per question the planner asks:
//! - **answer** ([`Multiplier`]): this customer's factor on the campaign's
//!   hour-of-week × segment answer rate (the best-time model), from their
//!   attributes crossed with the day part (answer windows are learned from
//!   who the customer is, not only from their own few attempts), their
//!   answered/unanswered history in that day part and their miss streak;
//! - **convert** ([`Logistic`]): the chance a connected call completes the
//!   task, from the attributes;
//! - **message** ([`Logistic`]): the chance a message sent first completes it
//!   without a call.
//!
//! Ranking key per day part: segment value × attempt decay × answer factor ×
//! P(convert) — expected value per attempt without the hour term, which the
//! planner multiplies in from the hour-of-week model, so its queues stay
//! exact. The first time a contact comes up, [`Learner::choose`] compares the
//! expected value net of costs of calling, of a message first (then a call
//! if it did not work), and of no contact at all. Every head learns from each
//! outcome as it is reported: the model is refreshed during the campaign,
//! and the ready queues are re-keyed as it moves (`Planner::on_outcome`).
use serde::Serialize;
use waihu_learn::{Contribution, Features, Logistic, Multiplier, Tuning};

use crate::config::Learning;
use crate::model::DAY_PARTS;

/// A call placed after a message-first wait is worth this much of a call now.
const WAIT_DISCOUNT: f64 = 0.9;

/// What to do with a contact the first time it comes up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Choice {
    Call,
    MessageFirst,
    Skip,
}

/// Why a contact is ranked and handled as it is (`Planner::explain`).
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// Answer probability at the customer's best day part (segment mean × factor).
    pub p_answer_best: f64,
    pub best_day_part: usize,
    pub p_convert: f64,
    pub p_message: Option<f64>,
    pub ev_call: f64,
    pub ev_message_first: Option<f64>,
    pub choice: Choice,
    /// Features that move the answer factor most (log-factor units).
    pub answer_features: Vec<Contribution>,
    /// Features that move the conversion odds most (log-odds units).
    pub convert_features: Vec<Contribution>,
}

pub struct Learner {
    pub(crate) names: Features,
    pub(crate) answer: Multiplier,
    pub(crate) convert: Logistic,
    pub(crate) message: Logistic,
    /// Per contact: ids of its static features.
    statics: Vec<Box<[u32]>>,
    /// Per static feature id: its crossed id for each day part (u32::MAX: not a static feature).
    cross: Vec<[u32; DAY_PARTS]>,
    /// `hist|p{d}|a{0..3}|t{1..3}`, `unans={0..4}`.
    hist: [[[u32; 4]; 4]; DAY_PARTS],
    unans: [u32; 5],
    pub(crate) settings: Learning,
    /// Outcomes since the ready queues were last re-keyed.
    pub(crate) since_rekey: u64,
}

/// Static features of a contact besides its attributes.
pub struct ContactFacts<'a> {
    pub segment: &'a str,
    pub has_app: bool,
    pub recency_days: Option<u32>,
    pub attributes: &'a [String],
}

fn recency_bucket(d: Option<u32>) -> &'static str {
    match d {
        None => "recency=unknown",
        Some(0..=7) => "recency=week",
        Some(8..=30) => "recency=month",
        Some(31..=180) => "recency=half_year",
        Some(_) => "recency=older",
    }
}

impl Learner {
    pub fn new(settings: Learning) -> Self {
        let mut names = Features::new();
        let mut hist = [[[0u32; 4]; 4]; DAY_PARTS];
        for (d, by_a) in hist.iter_mut().enumerate() {
            for (a, by_t) in by_a.iter_mut().enumerate() {
                for (t, id) in by_t.iter_mut().enumerate() {
                    *id = names.intern(&format!("hist|p{d}|answered={a}|tried={}", t + 1));
                }
            }
        }
        let unans = std::array::from_fn(|k| names.intern(&format!("unanswered={k}")));
        Learner {
            names,
            answer: Multiplier::new(
                0.95,
                Tuning {
                    rate: 0.05,
                    l2: 1e-4,
                },
            ),
            convert: Logistic::new(0.2, Tuning::default()),
            message: Logistic::new(0.05, Tuning::default()),
            statics: Vec::new(),
            cross: Vec::new(),
            hist,
            unans,
            settings,
            since_rekey: 0,
        }
    }

    /// Register a new contact (index = the planner's slot index).
    pub fn add(&mut self, facts: &ContactFacts) {
        let mut ids: Vec<u32> = Vec::with_capacity(facts.attributes.len() + 3);
        let push = |name: &str, names: &mut Features, cross: &mut Vec<[u32; DAY_PARTS]>| {
            let id = names.intern(name);
            if cross.len() <= id as usize {
                cross.resize(id as usize + 1, [u32::MAX; DAY_PARTS]);
            }
            if cross[id as usize][0] == u32::MAX {
                let c: [u32; DAY_PARTS] =
                    std::array::from_fn(|d| names.intern(&format!("p{d}|{name}")));
                for &cid in &c {
                    if cross.len() <= cid as usize {
                        cross.resize(cid as usize + 1, [u32::MAX; DAY_PARTS]);
                    }
                }
                cross[id as usize] = c;
            }
            id
        };
        ids.push(push(
            &format!("segment={}", facts.segment),
            &mut self.names,
            &mut self.cross,
        ));
        ids.push(push(
            if facts.has_app { "app=yes" } else { "app=no" },
            &mut self.names,
            &mut self.cross,
        ));
        ids.push(push(
            recency_bucket(facts.recency_days),
            &mut self.names,
            &mut self.cross,
        ));
        for a in facts.attributes {
            ids.push(push(a, &mut self.names, &mut self.cross));
        }
        ids.sort_unstable();
        ids.dedup();
        self.statics.push(ids.into_boxed_slice());
    }

    /// Features of the answer head for a contact in a day part.
    pub fn answer_x(&self, idx: u32, part: usize, tried: u8, answered: u8, unans: u8) -> Vec<u32> {
        let st = &self.statics[idx as usize];
        let mut x = Vec::with_capacity(st.len() * 2 + 2);
        for &f in st.iter() {
            x.push(f);
            x.push(self.cross[f as usize][part]);
        }
        if tried > 0 {
            let a = answered.min(3) as usize;
            let t = (tried.min(4) - 1) as usize;
            x.push(self.hist[part][a][t.min(3)]);
        }
        x.push(self.unans[unans.min(4) as usize]);
        x
    }

    /// Features of the conversion and message heads.
    pub fn static_x(&self, idx: u32) -> &[u32] {
        &self.statics[idx as usize]
    }

    /// Enough outcomes for the models to choose (`learning.min_outcomes`;
    /// before that every contact is called, and the explored share gets messages).
    pub fn warm(&self) -> bool {
        let n = self.settings.min_outcomes;
        self.answer.seen() >= n && self.convert.seen() >= n / 7
    }

    fn message_warm(&self) -> bool {
        self.message.seen() >= self.settings.min_outcomes / 10
    }

    /// Expected values net of costs, and the choice. `rates[d]`: answer
    /// probability per attempt in day part `d`; `value`: the segment's value;
    /// `attempts`: the campaign's maximum; `explore`: this contact is in the
    /// exploration share (it takes the other road).
    pub fn choose(
        &self,
        idx: u32,
        rates: [f64; DAY_PARTS],
        value: f64,
        attempts: u32,
        explore: bool,
    ) -> (Choice, f64, Option<f64>, f64, Option<f64>) {
        let x = self.static_x(idx);
        let p_conv = self.convert.predict(x);
        let p = rates.iter().cloned().fold(0.0, f64::max).clamp(1e-4, 0.95);
        let miss_all = (1.0 - p).powi(attempts.max(1) as i32);
        let expected_attempts = (1.0 - miss_all) / p;
        let ev_call =
            value * (1.0 - miss_all) * p_conv - self.settings.call_cost * expected_attempts;
        let (p_msg, ev_msg) = match &self.settings.message_first {
            Some(m) => {
                let pm = self.message.predict(x);
                let ev = -m.cost + pm * value + (1.0 - pm) * WAIT_DISCOUNT * ev_call;
                (Some(pm), Some(ev))
            }
            None => (None, None),
        };
        if !self.warm() {
            // Too little evidence to choose: call, and let the explored share try messages.
            let c = if explore && ev_msg.is_some() {
                Choice::MessageFirst
            } else {
                Choice::Call
            };
            return (c, p_conv, p_msg, ev_call, ev_msg);
        }
        let msg_ready = self.message_warm();
        let mut choice = match ev_msg {
            Some(m) if msg_ready && m > ev_call => Choice::MessageFirst,
            _ => Choice::Call,
        };
        if self.settings.skip_unprofitable && ev_call.max(ev_msg.unwrap_or(f64::MIN)) <= 0.0 {
            choice = Choice::Skip;
        }
        if explore {
            choice = match choice {
                Choice::Call if ev_msg.is_some() => Choice::MessageFirst,
                Choice::MessageFirst | Choice::Skip => Choice::Call,
                c => c,
            };
        }
        (choice, p_conv, p_msg, ev_call, ev_msg)
    }

    pub fn names(&self) -> &Features {
        &self.names
    }
}

/// A customer's stored attributes as named features for the learned
/// policy: text and booleans as `name=value` (long texts such as names or
/// addresses are left out: they identify, not describe), numbers by power of
/// two (`balance~2^10`), dates by how long ago from `today` (`last_order=month`).
pub fn attribute_features(attrs: &waihu_core::Attrs, today: chrono::NaiveDate) -> Vec<String> {
    use waihu_core::AttrValue;
    let mut out = Vec::new();
    for (k, v) in attrs {
        match v {
            AttrValue::Bool(b) => out.push(format!("{k}={b}")),
            AttrValue::Text(t) if t.chars().count() <= 16 => out.push(format!("{k}={t}")),
            AttrValue::Text(_) => {}
            AttrValue::Number(x) if x.is_finite() => {
                let b = (x.abs() + 1.0).log2().floor() as i32;
                let sign = if *x < 0.0 { "-" } else { "" };
                out.push(format!("{k}~{sign}2^{b}"));
            }
            AttrValue::Number(_) => {}
            AttrValue::Date(d) => {
                let days = (today - *d).num_days();
                let b = match days {
                    i64::MIN..=-1 => "future",
                    0..=7 => "week",
                    8..=30 => "month",
                    31..=180 => "half_year",
                    _ => "older",
                };
                out.push(format!("{k}={b}"));
            }
        }
    }
    out
}

/// Deterministic exploration draw for a customer (no RNG in the planner).
pub fn explores(customer: i64, share: f64) -> bool {
    let mut z = (customer as u64) ^ 0x5851_f42d_4c95_7f2d;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    ((z % 1_000_000) as f64) < share * 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_cross_with_the_day_part() {
        let mut l = Learner::new(Learning::default());
        let attrs = vec!["occupation=office".to_string()];
        l.add(&ContactFacts {
            segment: "vip",
            has_app: true,
            recency_days: Some(3),
            attributes: &attrs,
        });
        let x0 = l.answer_x(0, 0, 0, 0, 0);
        let x2 = l.answer_x(0, 2, 2, 1, 1);
        let names: Vec<&str> = x2.iter().map(|&i| l.names().name(i)).collect();
        assert!(names.contains(&"p2|occupation=office"), "{names:?}");
        assert!(names.contains(&"hist|p2|answered=1|tried=2"), "{names:?}");
        assert!(names.contains(&"unanswered=1"), "{names:?}");
        assert_ne!(x0, x2);
        // 4 statics (segment, app, recency, 1 attribute) × 2 + unanswered.
        assert_eq!(x0.len(), 9);
    }

    #[test]
    fn attributes_become_named_features() {
        use waihu_core::AttrValue;
        let mut a = waihu_core::Attrs::new();
        a.insert("tier".into(), AttrValue::Text("gold".into()));
        a.insert("has_app".into(), AttrValue::Bool(true));
        a.insert("balance".into(), AttrValue::Number(1500.0));
        a.insert(
            "last_order".into(),
            AttrValue::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()),
        );
        a.insert(
            "address".into(),
            AttrValue::Text("上海市浦东新区世纪大道100号2号楼".into()),
        );
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
        assert_eq!(
            attribute_features(&a, today),
            vec![
                "balance~2^10",
                "has_app=true",
                "last_order=month",
                "tier=gold"
            ]
        );
    }

    #[test]
    fn exploration_share_is_close_to_the_setting() {
        let n = (0..100_000).filter(|&c| explores(c, 0.05)).count();
        assert!((4_500..5_500).contains(&n), "{n}");
    }
}
