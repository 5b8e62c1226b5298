//! The cross-node part of the dial decision, without I/O or clocks: given what the database
//! counted under the number's lock, may this dial start, and if not, what becomes of the
//! contact. Windows, holidays and the answer model stay the planner's (they need no shared
//! state); this is what another node can make stale between the planner's decision and the dial.
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// Per-number and per-contact limits of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    /// Dials per number per local calendar day (all campaigns, all nodes).
    pub per_day: Option<u32>,
    /// Dials per number per local ISO week (Monday first).
    pub per_week: Option<u32>,
    /// Dials per contact in this campaign.
    pub max_attempts: u32,
}

/// The callee's local day and week around `now`, as half-open UTC spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalSpans {
    pub day: (DateTime<Utc>, DateTime<Utc>),
    pub week: (DateTime<Utc>, DateTime<Utc>),
}

fn start_of(tz: Tz, d: NaiveDate) -> DateTime<Utc> {
    let naive = d.and_time(NaiveTime::MIN);
    // A zone whose midnight falls in a gap starts the day at the first valid instant after it.
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(a, _) => a.with_timezone(&Utc),
        chrono::LocalResult::None => (1..=180)
            .find_map(|m| {
                tz.from_local_datetime(&(naive + Duration::minutes(m)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| naive.and_utc()),
    }
}

/// The local day and ISO week containing `now` in `tz`.
pub fn local_spans(tz: Tz, now: DateTime<Utc>) -> LocalSpans {
    let today = now.with_timezone(&tz).date_naive();
    let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
    let next = |d: NaiveDate, n: i64| d + Duration::days(n);
    LocalSpans {
        day: (start_of(tz, today), start_of(tz, next(today, 1))),
        week: (start_of(tz, monday), start_of(tz, next(monday, 7))),
    }
}

/// What the database counted for one dial, under the number's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counted {
    /// Dials on the number in the local day / week (any campaign, any node).
    pub day: u32,
    pub week: u32,
    /// Dials already made for this contact in this campaign.
    pub contact_attempts: u32,
    /// Whether a dial on the number is open right now (any node).
    pub open_call: bool,
    /// Whether the number is on the do-not-call list.
    pub dnc: bool,
}

/// Why a dial may not start, and what happens to the contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The campaign is not started (paused, stopped, finished): the lease is kept.
    NotStarted(String),
    /// Another node holds the contact now, or it is no longer pending.
    LeaseLost,
    /// The number is do-not-call: the contact is finished.
    Dnc,
    /// Another call to the number is open (on any node): try again later.
    NumberBusy,
    /// The number's daily cap is used: the contact waits for the next local day.
    DailyCap { next: DateTime<Utc> },
    /// The weekly cap is used: the contact waits for the next local week.
    WeeklyCap { next: DateTime<Utc> },
    /// The contact's attempts are used up: finished.
    MaxAttempts,
    /// All of the campaign's channels (over all nodes) are busy.
    ChannelsFull,
    /// The campaign's shared calls-per-second budget is spent until `until`.
    Paced { until: DateTime<Utc> },
}

impl Refusal {
    /// A stable label for logs, metrics and the contact's `reason`.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::NotStarted(_) => "not_started",
            Refusal::LeaseLost => "lease_lost",
            Refusal::Dnc => "dnc",
            Refusal::NumberBusy => "number_busy",
            Refusal::DailyCap { .. } => "daily_cap",
            Refusal::WeeklyCap { .. } => "weekly_cap",
            Refusal::MaxAttempts => "max_attempts",
            Refusal::ChannelsFull => "channels_full",
            Refusal::Paced { .. } => "paced",
        }
    }
}

/// The number- and contact-level decision (campaign-level limits are one atomic update, see
/// the runtime). Order matters: a finished contact (DNC, attempts used) is finished even when
/// the number is busy now.
pub fn decide(caps: &Caps, spans: &LocalSpans, c: &Counted) -> Result<(), Refusal> {
    if c.dnc {
        return Err(Refusal::Dnc);
    }
    if c.contact_attempts >= caps.max_attempts {
        return Err(Refusal::MaxAttempts);
    }
    if c.open_call {
        return Err(Refusal::NumberBusy);
    }
    if caps.per_week.is_some_and(|cap| c.week >= cap) {
        return Err(Refusal::WeeklyCap { next: spans.week.1 });
    }
    if caps.per_day.is_some_and(|cap| c.day >= cap) {
        return Err(Refusal::DailyCap { next: spans.day.1 });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn spans_are_the_callees_local_day_and_week() {
        // 2026-11-04 is a Wednesday; 01:00 in Shanghai is still 11-03 in UTC.
        let s = local_spans(chrono_tz::Asia::Shanghai, at("2026-11-03T17:00:00Z"));
        assert_eq!(s.day.0, at("2026-11-03T16:00:00Z"));
        assert_eq!(s.day.1, at("2026-11-04T16:00:00Z"));
        assert_eq!(s.week.0, at("2026-11-01T16:00:00Z"));
        assert_eq!(s.week.1, at("2026-11-08T16:00:00Z"));
        // A day with a DST change in New York is 25 hours long.
        let s = local_spans(chrono_tz::America::New_York, at("2026-11-01T12:00:00Z"));
        assert_eq!(s.day.1 - s.day.0, Duration::hours(25));
    }

    #[test]
    fn refusals_in_order() {
        let caps = Caps {
            per_day: Some(2),
            per_week: Some(3),
            max_attempts: 4,
        };
        let s = local_spans(chrono_tz::Asia::Shanghai, at("2026-11-03T03:00:00Z"));
        let ok = Counted::default();
        assert_eq!(decide(&caps, &s, &ok), Ok(()));
        let c = |f: fn(&mut Counted)| {
            let mut c = ok;
            f(&mut c);
            decide(&caps, &s, &c)
        };
        assert_eq!(c(|c| c.day = 2), Err(Refusal::DailyCap { next: s.day.1 }));
        assert_eq!(
            c(|c| {
                c.day = 2;
                c.week = 3
            }),
            Err(Refusal::WeeklyCap { next: s.week.1 })
        );
        assert_eq!(
            c(|c| {
                c.open_call = true;
                c.contact_attempts = 4
            }),
            Err(Refusal::MaxAttempts)
        );
        assert_eq!(
            c(|c| {
                c.open_call = true;
                c.dnc = true
            }),
            Err(Refusal::Dnc)
        );
        assert_eq!(c(|c| c.open_call = true), Err(Refusal::NumberBusy));
        let uncapped = Caps {
            per_day: None,
            per_week: None,
            max_attempts: 1,
        };
        let many = Counted {
            day: 100,
            week: 100,
            ..ok
        };
        assert_eq!(decide(&uncapped, &s, &many), Ok(()));
    }
}
