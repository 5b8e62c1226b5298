//! A campaign's forecast before launch: the real [`Planner`], loaded with the
//! real customer list (and its history), driven in virtual time from `start`
//! to `deadline` with the campaign's channels. Each dial is answered with the
//! probability the planner's own answer model gives for that callee at that
//! local time (the model the store's call history seeded; the campaign's prior
//! where there is none), so the forecast says what the data says and no more.
//! Calling windows, caps, retries, DNC and callbacks are the planner's, exactly
//! as a live run applies them. Several seeded runs give a range.
//!
//! No clock and no I/O: the caller builds a planner per run (`make`) and passes
//! the times.
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waihu_core::CallOutcome;

use crate::planner::{Planner, Report};

#[derive(Debug, Clone)]
pub struct ForecastConfig {
    pub start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// Seeded runs (the range is their 10th–90th percentile).
    pub runs: u32,
    pub seed: u64,
    /// Seconds a line is held by an answered call and by one that is not.
    pub talk_s: f64,
    pub ring_s: f64,
}

impl ForecastConfig {
    pub fn new(start: DateTime<Utc>, deadline: DateTime<Utc>) -> Self {
        ForecastConfig {
            start,
            deadline,
            runs: 5,
            seed: 1,
            talk_s: 75.0,
            ring_s: 30.0,
        }
    }
}

/// Low, middle and high of the runs (10th, 50th, 90th percentile).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Range {
    pub low: f64,
    pub mid: f64,
    pub high: f64,
}

impl Range {
    fn of(mut v: Vec<f64>) -> Range {
        if v.is_empty() {
            return Range {
                low: 0.0,
                mid: 0.0,
                high: 0.0,
            };
        }
        v.sort_by(f64::total_cmp);
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Range {
            low: at(0.1),
            mid: at(0.5),
            high: at(0.9),
        }
    }
}

/// Where the campaign stands at the end of one day (the campaign's time zone), cumulative.
#[derive(Debug, Clone, Serialize)]
pub struct ForecastDay {
    pub date: NaiveDate,
    /// Share of the contacts reached (answered at least once).
    pub reached: Range,
    pub attempts: Range,
}

#[derive(Debug, Clone, Serialize)]
pub struct Forecast {
    pub contacts: usize,
    pub channels: u32,
    pub runs: u32,
    pub start: DateTime<Utc>,
    pub deadline: DateTime<Utc>,
    /// Share of the contacts reached by the deadline.
    pub reached: Range,
    pub attempts: Range,
    /// Attempts per contact reached.
    pub attempts_per_reached: Range,
    /// Contacts with nothing left to do (reached, or out of attempts) by the deadline.
    pub finished: Range,
    pub days: Vec<ForecastDay>,
}

/// One virtual-time run: (reached, attempts, finished) at the deadline and per day.
struct Run {
    reached: usize,
    attempts: u64,
    finished: usize,
    days: BTreeMap<NaiveDate, (usize, u64)>,
}

fn run(mut p: Planner, truth: &Planner, cfg: &ForecastConfig, seed: u64) -> Run {
    let mut rng = SmallRng::seed_from_u64(seed);
    let channels: usize = p
        .campaign()
        .trunks
        .iter()
        .map(|t| t.channels as usize)
        .sum::<usize>()
        .max(1);
    let tz = p.campaign().timezone;
    // (ends at, contact, answered)
    let mut lines: BinaryHeap<Reverse<(DateTime<Utc>, u32, bool)>> = BinaryHeap::new();
    let mut reached: HashSet<u32> = HashSet::new();
    let mut finished = 0usize;
    let mut attempts = 0u64;
    let mut days: BTreeMap<NaiveDate, (usize, u64)> = BTreeMap::new();
    let mut now = cfg.start;
    let step = Duration::seconds(1);
    while now < cfg.deadline {
        while let Some(Reverse((at, c, answered))) = lines.peek().copied() {
            if at > now {
                break;
            }
            lines.pop();
            let outcome = if answered {
                CallOutcome::Answered
            } else {
                CallOutcome::NoAnswer
            };
            let c = crate::planner::ContactRef(c);
            p.on_outcome(at, c, Report::outcome(outcome));
            for a in p.take_actions() {
                if matches!(a, crate::planner::Action::Finished { .. }) {
                    finished += 1;
                }
            }
        }
        let free = channels.saturating_sub(lines.len());
        let mut dialled = 0;
        if free > 0 {
            for d in p.next_dials(now, free) {
                dialled += 1;
                attempts += 1;
                let answered = rng.gen::<f64>() < truth.p_answer(d.contact, now);
                if answered {
                    reached.insert(d.contact.0);
                }
                let hold = if answered { cfg.talk_s } else { cfg.ring_s };
                let ends = now + Duration::milliseconds((hold * 1000.0) as i64);
                lines.push(Reverse((ends, d.contact.0, answered)));
            }
        }
        let day = now.with_timezone(&tz).date_naive();
        days.insert(day, (reached.len(), attempts));
        // The next thing that can change anything: a line frees, the planner's
        // calendar or a callback falls due, or (pacing) a second later.
        // As the dialer does: with nothing to do, to the planner's next
        // calendar entry (or a minute on), and stop once nobody is pending.
        if lines.is_empty() && dialled == 0 && p.pending() == 0 {
            break;
        }
        let mut next = cfg.deadline;
        if let Some(Reverse((at, ..))) = lines.peek() {
            next = next.min(*at);
        }
        next = next.min(p.next_wakeup().unwrap_or(now + Duration::minutes(1)));
        if dialled > 0 && lines.len() < channels {
            next = next.min(now + step);
        }
        now = next.max(now + step);
    }
    Run {
        reached: reached.len(),
        attempts,
        finished,
        days,
    }
}

/// Forecast `cfg.runs` runs, each over a planner from `make` (loaded with the
/// same contacts and history every time).
pub fn forecast(make: impl Fn() -> Planner, cfg: &ForecastConfig) -> Forecast {
    // What callees do: the answer model as the history seeded it, frozen. The
    // planner of each run learns from the outcomes, as a live one does.
    let truth = make();
    let runs: Vec<Run> = (0..cfg.runs.max(1))
        .map(|i| run(make(), &truth, cfg, cfg.seed.wrapping_add(i as u64)))
        .collect();
    let contacts = truth.len();
    let channels = truth.campaign().trunks.iter().map(|t| t.channels).sum();
    let share = |n: usize| {
        if contacts == 0 {
            0.0
        } else {
            n as f64 / contacts as f64
        }
    };
    // Every day from the first to the deadline's, carrying the last figures forward.
    let tz = truth.campaign().timezone;
    let first = cfg.start.with_timezone(&tz).date_naive();
    let last = cfg.deadline.with_timezone(&tz).date_naive();
    let mut days = Vec::new();
    let mut date = first;
    while date <= last && days.len() < 366 {
        let at = |r: &Run| {
            r.days
                .range(..=date)
                .next_back()
                .map(|(_, v)| *v)
                .unwrap_or((0, 0))
        };
        days.push(ForecastDay {
            date,
            reached: Range::of(runs.iter().map(|r| share(at(r).0)).collect()),
            attempts: Range::of(runs.iter().map(|r| at(r).1 as f64).collect()),
        });
        date = match date.succ_opt() {
            Some(d) => d,
            None => break,
        };
    }
    Forecast {
        contacts,
        channels,
        runs: runs.len() as u32,
        start: cfg.start,
        deadline: cfg.deadline,
        reached: Range::of(runs.iter().map(|r| share(r.reached)).collect()),
        attempts: Range::of(runs.iter().map(|r| r.attempts as f64).collect()),
        attempts_per_reached: Range::of(
            runs.iter()
                .map(|r| r.attempts as f64 / r.reached.max(1) as f64)
                .collect(),
        ),
        finished: Range::of(runs.iter().map(|r| share(r.finished)).collect()),
        days,
    }
}
