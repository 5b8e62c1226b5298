//! KPI arithmetic over the store's aggregate rows. Pure: the same function
//! turns the rollup, the SQL-over-log baseline and the Rust full scan into
//! figures, so they can be compared exactly.
//!
//! Definitions (documented in the OpenAPI document too):
//! - attempts: finished attempts (`attempt_ended`);
//! - connects: attempts whose outcome is connected (`CallOutcome::connected`:
//!   answered or voicemail); connect rate (接通率) = connects / attempts;
//! - abandon rate = `call_abandoned` / attempts answered by a person;
//! - average handle time = total duration of connected attempts / connects;
//! - conversion rate (转化率) = conversations whose outcome is one of the
//!   configured conversion outcomes / connects.
use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::Serialize;
use waihu_core::CallOutcome;
use waihu_store::{metric, KpiRow, LocalHourRow};

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

fn ratio(a: i64, b: i64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn is_connected(outcome: &str) -> bool {
    CallOutcome::ALL
        .iter()
        .any(|o| o.connected() && o.as_str() == outcome)
}

impl Kpis {
    fn empty() -> Kpis {
        Kpis {
            outcomes: CallOutcome::ALL
                .iter()
                .map(|o| (o.as_str().to_string(), 0))
                .collect(),
            ..Kpis::default()
        }
    }

    fn add(&mut self, r: &KpiRow, conversion: &[String]) {
        match r.metric.as_str() {
            metric::ATTEMPT => {
                self.attempts += r.n;
                *self.outcomes.entry(r.key.clone()).or_default() += r.n;
                if is_connected(&r.key) {
                    self.connects += r.n;
                    self.talk_s += r.sum;
                }
                if r.key == CallOutcome::Answered.as_str() {
                    self.answered += r.n;
                }
            }
            metric::ABANDONED => self.abandoned += r.n,
            metric::CONVERSATION => {
                self.conversations += r.n;
                *self.conversation_outcomes.entry(r.key.clone()).or_default() += r.n;
                if conversion.contains(&r.key) {
                    self.conversions += r.n;
                }
            }
            metric::LEVEL => *self.levels.entry(r.key.clone()).or_default() += r.n,
            _ => {}
        }
    }

    fn finish(&mut self) {
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

/// Totals and a per-day series with every day of `[from, to]` present.
pub fn fold(
    rows: &[KpiRow],
    from: NaiveDate,
    to: NaiveDate,
    conversion: &[String],
) -> (Kpis, Vec<DayKpis>) {
    let mut total = Kpis::empty();
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
        total.add(r, conversion);
        days.entry(r.day)
            .or_insert_with(Kpis::empty)
            .add(r, conversion);
    }
    total.finish();
    let days = days
        .into_iter()
        .map(|(day, mut kpis)| {
            kpis.finish();
            DayKpis { day, kpis }
        })
        .collect();
    (total, days)
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
