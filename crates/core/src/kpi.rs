//! The one definition of every figure the product shows about calls: the
//! API's KPI page and heat map, the dashboard (which prints what the API
//! returns), `waihu run` and `waihu demo` all compute them here. Pure
//! arithmetic over counts, so the store's rollup, SQL over the raw event log,
//! a Rust scan of decoded events and a run's own tally give the same figures
//! from the same calls. The definitions are written out in `docs/kpis.md`;
//! the OpenAPI document's KPI summaries point there.
//!
//! - attempts: finished attempts (`attempt_ended`);
//! - connects: attempts whose outcome is connected ([`CallOutcome::connected`]:
//!   answered or voicemail); connect rate (接通率) = connects / attempts;
//! - abandon rate = `call_abandoned` / attempts answered by a person;
//! - average handle time = total duration of connected attempts / connects;
//! - conversion rate (转化率) = conversations whose outcome is one of the
//!   configured conversion outcomes / connects;
//! - intention levels: finished conversations per level;
//! - satisfaction (满意度) = callee turns with text sentiment above
//!   +[`SENTIMENT_BAND`] / those above +band or below −band.
use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::CallOutcome;

/// Rollup metric names (the `metric` column of the store's `kpi_hourly`).
pub mod metric {
    /// A finished attempt; key = telephony outcome, sum = duration in seconds.
    pub const ATTEMPT: &str = "attempt";
    /// An answered call dropped for want of an agent; key = "".
    pub const ABANDONED: &str = "abandoned";
    /// A finished conversation; key = business outcome.
    pub const CONVERSATION: &str = "conversation";
    /// A finished conversation's intention level; key = level.
    pub const LEVEL: &str = "level";
}

/// One aggregate cell: (UTC day, metric, key) → count and sum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KpiRow {
    pub day: NaiveDate,
    pub metric: String,
    pub key: String,
    pub n: i64,
    pub sum: f64,
}

/// Finished attempts by the callee's local date and hour, per outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalHourRow {
    pub local_date: NaiveDate,
    pub hour: u32,
    pub outcome: String,
    pub n: i64,
}

/// Conversation outcomes that count as a conversion (转化) unless configured
/// otherwise (`waihu serve --conversion ...`).
pub const DEFAULT_CONVERSION_OUTCOMES: [&str; 6] = [
    "confirmed",
    "converted",
    "agreed",
    "paid",
    "promised",
    "success",
];

/// Callee turns whose text sentiment (-1..1) is above this are positive,
/// below its negative negative; the rest neutral.
pub const SENTIMENT_BAND: f32 = 0.1;

/// A sentiment score counts as positive for 满意度.
pub fn is_positive(sentiment: f32) -> bool {
    sentiment > SENTIMENT_BAND
}

/// A sentiment score counts as negative for 满意度.
pub fn is_negative(sentiment: f32) -> bool {
    sentiment < -SENTIMENT_BAND
}

/// 满意度 (satisfaction) = positive / (positive + negative) callee turns.
pub fn satisfaction(positive: u64, negative: u64) -> Option<f64> {
    (positive + negative > 0).then(|| positive as f64 / (positive + negative) as f64)
}

/// `a / b`, or nothing when there is nothing to divide by.
pub fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Whether a stored outcome name counts as connected.
pub fn is_connected(outcome: &str) -> bool {
    CallOutcome::ALL
        .iter()
        .any(|o| o.connected() && o.as_str() == outcome)
}

/// The KPI figures of a set of attempts. Fill with the `add_*` methods (or
/// [`Kpis::add_row`] for rollup rows), then [`Kpis::finish`] computes the rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Kpis {
    pub attempts: i64,
    pub connects: i64,
    pub answered: i64,
    pub connect_rate: Option<f64>,
    pub abandoned: i64,
    pub abandon_rate: Option<f64>,
    /// Seconds of connected calls.
    pub talk_s: f64,
    /// Average handle time of connected calls, seconds.
    pub aht_s: Option<f64>,
    pub conversations: i64,
    pub conversions: i64,
    pub conversion_rate: Option<f64>,
    /// Finished attempts per telephony outcome (every outcome listed).
    pub outcomes: BTreeMap<String, i64>,
    pub conversation_outcomes: BTreeMap<String, i64>,
    /// Intention levels of finished conversations.
    pub levels: BTreeMap<String, i64>,
}

impl Kpis {
    /// No attempts yet; every telephony outcome listed with 0.
    pub fn empty() -> Kpis {
        Kpis {
            outcomes: CallOutcome::ALL
                .iter()
                .map(|o| (o.as_str().to_string(), 0))
                .collect(),
            ..Kpis::default()
        }
    }

    /// `n` finished attempts with telephony outcome `outcome` lasting `duration_s` in all.
    pub fn add_attempt(&mut self, outcome: &str, n: i64, duration_s: f64) {
        self.attempts += n;
        *self.outcomes.entry(outcome.to_string()).or_default() += n;
        if is_connected(outcome) {
            self.connects += n;
            self.talk_s += duration_s;
        }
        if outcome == CallOutcome::Answered.as_str() {
            self.answered += n;
        }
    }

    /// `n` answered calls dropped for want of an agent.
    pub fn add_abandoned(&mut self, n: i64) {
        self.abandoned += n;
    }

    /// `n` finished conversations with business outcome `outcome`.
    pub fn add_conversation(&mut self, outcome: &str, n: i64, conversion: &[String]) {
        self.conversations += n;
        *self
            .conversation_outcomes
            .entry(outcome.to_string())
            .or_default() += n;
        if conversion.iter().any(|c| c == outcome) {
            self.conversions += n;
        }
    }

    /// `n` finished conversations with intention level `level`.
    pub fn add_level(&mut self, level: &str, n: i64) {
        *self.levels.entry(level.to_string()).or_default() += n;
    }

    /// One rollup cell.
    pub fn add_row(&mut self, r: &KpiRow, conversion: &[String]) {
        match r.metric.as_str() {
            metric::ATTEMPT => self.add_attempt(&r.key, r.n, r.sum),
            metric::ABANDONED => self.add_abandoned(r.n),
            metric::CONVERSATION => self.add_conversation(&r.key, r.n, conversion),
            metric::LEVEL => self.add_level(&r.key, r.n),
            _ => {}
        }
    }

    /// Compute the rates from the counts.
    pub fn finish(&mut self) {
        self.connect_rate = ratio(self.connects, self.attempts);
        self.abandon_rate = ratio(self.abandoned, self.answered);
        self.aht_s = (self.connects > 0).then(|| self.talk_s / self.connects as f64);
        self.conversion_rate = ratio(self.conversions, self.connects);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DayKpis {
    pub day: NaiveDate,
    #[serde(flatten)]
    pub kpis: Kpis,
}

/// The totals of rollup rows.
pub fn totals(rows: &[KpiRow], conversion: &[String]) -> Kpis {
    let mut total = Kpis::empty();
    for r in rows {
        total.add_row(r, conversion);
    }
    total.finish();
    total
}

/// Totals and a per-day series with every day of `[from, to]` present.
pub fn fold(
    rows: &[KpiRow],
    from: NaiveDate,
    to: NaiveDate,
    conversion: &[String],
) -> (Kpis, Vec<DayKpis>) {
    let mut days: BTreeMap<NaiveDate, Kpis> = BTreeMap::new();
    let mut d = from;
    while d <= to {
        days.insert(d, Kpis::empty());
        match d.succ_opt() {
            Some(n) => d = n,
            None => break,
        }
    }
    for r in rows {
        days.entry(r.day)
            .or_insert_with(Kpis::empty)
            .add_row(r, conversion);
    }
    let days = days
        .into_iter()
        .map(|(day, mut kpis)| {
            kpis.finish();
            DayKpis { day, kpis }
        })
        .collect();
    (totals(rows, conversion), days)
}

/// One heat-map cell: callee-local weekday (1 = Monday … 7 = Sunday) × hour.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeatCell {
    pub weekday: u32,
    pub hour: u32,
    pub attempts: i64,
    pub connects: i64,
    pub answer_rate: Option<f64>,
}

/// All 7 × 24 cells, weekday-major.
pub fn heat(rows: &[LocalHourRow]) -> Vec<HeatCell> {
    let mut grid = [[(0i64, 0i64); 24]; 7];
    for r in rows {
        let wd = r.local_date.weekday().number_from_monday() as usize - 1;
        if let Some(cell) = grid[wd].get_mut(r.hour as usize) {
            cell.0 += r.n;
            if is_connected(&r.outcome) {
                cell.1 += r.n;
            }
        }
    }
    let mut out = Vec::with_capacity(7 * 24);
    for (wd, hours) in grid.iter().enumerate() {
        for (h, &(attempts, connects)) in hours.iter().enumerate() {
            out.push(HeatCell {
                weekday: wd as u32 + 1,
                hour: h as u32,
                attempts,
                connects,
                answer_rate: ratio(connects, attempts),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(day: &str, m: &str, key: &str, n: i64, sum: f64) -> KpiRow {
        KpiRow {
            day: day.parse().unwrap(),
            metric: m.into(),
            key: key.into(),
            n,
            sum,
        }
    }

    #[test]
    fn definitions() {
        let rows = vec![
            row("2026-11-02", "attempt", "answered", 6, 600.0),
            row("2026-11-02", "attempt", "voicemail", 2, 40.0),
            row("2026-11-02", "attempt", "busy", 2, 0.0),
            row("2026-11-03", "attempt", "no_answer", 10, 300.0),
            row("2026-11-02", "abandoned", "", 3, 0.0),
            row("2026-11-02", "conversation", "confirmed", 2, 0.0),
            row("2026-11-02", "conversation", "refused", 1, 0.0),
            row("2026-11-02", "level", "A", 2, 0.0),
        ];
        let from = "2026-11-01".parse().unwrap();
        let to = "2026-11-03".parse().unwrap();
        let (t, days) = fold(&rows, from, to, &["confirmed".to_string()]);
        assert_eq!(
            (t.attempts, t.connects, t.answered, t.abandoned),
            (20, 8, 6, 3)
        );
        assert_eq!(t.connect_rate, Some(0.4));
        assert_eq!(t.abandon_rate, Some(0.5));
        assert_eq!(t.aht_s, Some(80.0));
        assert_eq!(t.conversion_rate, Some(0.25));
        assert_eq!(t.outcomes["congestion"], 0);
        assert_eq!(t.levels["A"], 2);
        assert_eq!(days.len(), 3);
        assert_eq!(days[0].kpis.attempts, 0);
        assert_eq!(days[0].kpis.connect_rate, None);
        assert_eq!(days[2].kpis.connect_rate, Some(0.0));
    }

    #[test]
    fn adding_one_by_one_equals_the_rollup() {
        let rows = vec![
            row("2026-11-02", "attempt", "answered", 2, 90.0),
            row("2026-11-02", "attempt", "voicemail", 1, 10.0),
            row("2026-11-02", "attempt", "busy", 1, 0.0),
            row("2026-11-02", "conversation", "confirmed", 1, 0.0),
            row("2026-11-02", "conversation", "hangup", 1, 0.0),
            row("2026-11-02", "level", "A", 1, 0.0),
        ];
        let conv = ["confirmed".to_string()];
        let mut k = Kpis::empty();
        for (o, d) in [
            ("answered", 40.0),
            ("answered", 50.0),
            ("voicemail", 10.0),
            ("busy", 0.0),
        ] {
            k.add_attempt(o, 1, d);
        }
        k.add_conversation("confirmed", 1, &conv);
        k.add_conversation("hangup", 1, &conv);
        k.add_level("A", 1);
        k.finish();
        assert_eq!(k, totals(&rows, &conv));
        assert_eq!(k.connect_rate, Some(0.75), "voicemail counts as connected");
    }

    #[test]
    fn satisfaction_band() {
        assert!(is_positive(0.11) && !is_positive(0.1));
        assert!(is_negative(-0.11) && !is_negative(-0.1));
        assert_eq!(satisfaction(3, 1), Some(0.75));
        assert_eq!(satisfaction(0, 0), None);
    }

    #[test]
    fn heat_uses_local_weekday() {
        // 2026-11-02 is a Monday.
        let rows = vec![
            LocalHourRow {
                local_date: "2026-11-02".parse().unwrap(),
                hour: 9,
                outcome: "answered".into(),
                n: 3,
            },
            LocalHourRow {
                local_date: "2026-11-02".parse().unwrap(),
                hour: 9,
                outcome: "busy".into(),
                n: 1,
            },
            LocalHourRow {
                local_date: "2026-11-08".parse().unwrap(),
                hour: 23,
                outcome: "voicemail".into(),
                n: 2,
            },
        ];
        let cells = heat(&rows);
        assert_eq!(cells.len(), 168);
        let mon9 = &cells[9];
        assert_eq!(
            (
                mon9.weekday,
                mon9.hour,
                mon9.attempts,
                mon9.connects,
                mon9.answer_rate
            ),
            (1, 9, 4, 3, Some(0.75))
        );
        let sun23 = &cells[6 * 24 + 23];
        assert_eq!((sun23.weekday, sun23.attempts, sun23.connects), (7, 2, 2));
    }
}
