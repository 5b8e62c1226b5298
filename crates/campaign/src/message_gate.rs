//! The compliance gate for messages: quiet hours in the recipient's local time and the
//! number's daily and weekly message caps (DNC and opt-outs are applied by the store when
//! a message comes due). Every outgoing message passes it right before it is claimed for
//! sending, so a message queued at 20:59 that comes up at 21:01 is held too.
//!
//! [`decide`] is sans-IO (time and the earlier sends are inputs). A message that may not
//! go now is deferred to the first instant it may, or suppressed with the reason when that
//! instant is more than `max_delay_hours` after it was queued (a follow-up three days late
//! says the wrong thing). It lives here, beside the planner's call gate, so the campaign
//! simulator passes the same gate as the live senders; `waihu_messaging::gate::Gate`
//! applies it to the store's outbox and logs each admitted message as
//! `message_submitted`, which the independent checker (`waihu-compliance`) verifies
//! against the same rules read from the campaign file.
//!
//! The campaign file's section (all optional; these are the defaults):
//!
//! ```yaml
//! messages:
//!   quiet_hours: ["21:00-08:00"]   # recipient's local time; a span may wrap midnight; [] = none
//!   per_number_per_day: 2          # messages to one number per local day, all campaigns and channels
//!   per_number_per_week: 5         # ... per local ISO week (Monday first)
//!   max_delay_hours: 72            # deferred past this after queueing → suppressed
//! ```
use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

/// Message rules of one campaign.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageRules {
    /// The campaign's zone, for recipients whose own zone is not known.
    pub timezone: Tz,
    /// Quiet spans as seconds after local midnight, `[start, end)`; `start > end` wraps
    /// past midnight (`21:00-08:00`).
    pub quiet: Vec<(u32, u32)>,
    pub per_day: Option<u32>,
    pub per_week: Option<u32>,
    pub max_delay: Duration,
}

pub const DEFAULT_QUIET: &str = "21:00-08:00";
pub const DEFAULT_PER_DAY: u32 = 2;
pub const DEFAULT_PER_WEEK: u32 = 5;
pub const DEFAULT_MAX_DELAY_HOURS: u32 = 72;

impl Default for MessageRules {
    fn default() -> Self {
        MessageRules {
            timezone: chrono_tz::Asia::Shanghai,
            quiet: vec![(21 * 3600, 8 * 3600)],
            per_day: Some(DEFAULT_PER_DAY),
            per_week: Some(DEFAULT_PER_WEEK),
            max_delay: Duration::hours(DEFAULT_MAX_DELAY_HOURS as i64),
        }
    }
}

/// Error in a campaign file's `messages:` section.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}: {field}: {message}")]
pub struct RulesError {
    pub file: String,
    pub field: String,
    pub message: String,
}

#[derive(Deserialize)]
struct SpecFile {
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    messages: Option<MessagesFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MessagesFile {
    #[serde(default)]
    quiet_hours: Option<Vec<String>>,
    #[serde(default)]
    per_number_per_day: Option<u32>,
    #[serde(default)]
    per_number_per_week: Option<u32>,
    #[serde(default)]
    max_delay_hours: Option<u32>,
}

fn hhmm(s: &str) -> Option<u32> {
    let s = s.trim();
    if s == "24:00" {
        return Some(24 * 3600);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some(t.signed_duration_since(NaiveTime::MIN).num_seconds() as u32)
}

/// `"21:00-08:00"` → seconds; start and end must differ.
pub fn parse_span(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (hhmm(a)?, hhmm(b)?);
    (a != b && a < 24 * 3600).then_some((a, b))
}

impl MessageRules {
    /// The rules of a campaign file's text (other sections are ignored here; the campaign
    /// parser is the strict one for them).
    pub fn from_campaign_yaml(file: &str, text: &str) -> Result<MessageRules, RulesError> {
        let err = |field: &str, message: String| RulesError {
            file: file.into(),
            field: field.into(),
            message,
        };
        let f: SpecFile =
            serde_norway::from_str(text).map_err(|e| err("messages", e.to_string()))?;
        let mut r = MessageRules::default();
        if let Some(tz) = f.timezone {
            r.timezone = tz
                .parse()
                .map_err(|_| err("timezone", format!("unknown time zone '{tz}'")))?;
        }
        if let Some(m) = f.messages {
            if let Some(q) = m.quiet_hours {
                r.quiet = q
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        parse_span(s).ok_or_else(|| {
                            err(
                                &format!("messages.quiet_hours[{i}]"),
                                format!("'{s}' is not HH:MM-HH:MM"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            if let Some(n) = m.per_number_per_day {
                r.per_day = Some(n);
            }
            if let Some(n) = m.per_number_per_week {
                r.per_week = Some(n);
            }
            if let Some(h) = m.max_delay_hours {
                r.max_delay = Duration::hours(h as i64);
            }
        }
        Ok(r)
    }

    /// No quiet hours and no caps (DNC still applies): for messages an operator sends by
    /// hand outside any campaign.
    pub fn unrestricted() -> MessageRules {
        MessageRules {
            quiet: Vec::new(),
            per_day: None,
            per_week: None,
            ..MessageRules::default()
        }
    }

    fn quiet_label(&self) -> String {
        self.quiet
            .iter()
            .map(|&(a, b)| format!("{}-{}", clock(a), clock(b)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn clock(s: u32) -> String {
    format!("{:02}:{:02}", s / 3600, s % 3600 / 60)
}

/// What the gate says about one message now.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Send,
    Defer {
        until: DateTime<Utc>,
        reason: String,
    },
    Suppress {
        reason: String,
    },
}

/// The instant of a local wall-clock time (the earlier one when it is ambiguous, the first
/// instant after a DST gap when it does not exist).
fn instant(tz: Tz, t: NaiveDateTime) -> DateTime<Utc> {
    let mut t = t;
    for _ in 0..4 {
        if let Some(x) = tz.from_local_datetime(&t).earliest() {
            return x.with_timezone(&Utc);
        }
        t += Duration::minutes(30);
    }
    tz.from_utc_datetime(&t).with_timezone(&Utc)
}

fn midnight(d: NaiveDate) -> NaiveDateTime {
    d.and_time(NaiveTime::MIN)
}

fn monday(d: NaiveDate) -> NaiveDate {
    d - Duration::days(d.weekday().num_days_from_monday() as i64)
}

/// If `t` is in a quiet span: the span's end.
fn quiet_end(rules: &MessageRules, tz: Tz, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let local = t.with_timezone(&tz).naive_local();
    let date = local.date();
    let sec = local.signed_duration_since(midnight(date)).num_seconds() as u32;
    rules.quiet.iter().find_map(|&(a, b)| {
        let end_day = if a < b {
            (a <= sec && sec < b).then_some(date)?
        } else if sec >= a {
            date.succ_opt()?
        } else if sec < b {
            date
        } else {
            return None;
        };
        Some(instant(tz, midnight(end_day) + Duration::seconds(b as i64)))
    })
}

/// May a message to a number in zone `tz`, queued at `created`, go at `now`, given when
/// earlier messages to the number went (`earlier`, any order; those more than eight days
/// old do not matter)?
pub fn decide(
    rules: &MessageRules,
    tz: Tz,
    now: DateTime<Utc>,
    created: DateTime<Utc>,
    earlier: &[DateTime<Utc>],
) -> Decision {
    let days: Vec<NaiveDate> = earlier
        .iter()
        .map(|e| e.with_timezone(&tz).date_naive())
        .collect();
    let mut t = now;
    let mut first_reason: Option<String> = None;
    let mut allowed = false;
    for _ in 0..64 {
        if let Some(end) = quiet_end(rules, tz, t) {
            first_reason.get_or_insert_with(|| {
                format!(
                    "quiet hours {} local ({}) / 免打扰时段",
                    rules.quiet_label(),
                    tz.name()
                )
            });
            t = end.max(t + Duration::seconds(1));
            continue;
        }
        let date = t.with_timezone(&tz).date_naive();
        if let Some(cap) = rules.per_day {
            let n = days.iter().filter(|d| **d == date).count() as u32;
            if n >= cap {
                first_reason.get_or_insert_with(|| {
                    format!("{n} message(s) to this number on {date} local, cap {cap} / 已达每日短信上限")
                });
                t = instant(tz, midnight(date.succ_opt().unwrap_or(date)));
                continue;
            }
        }
        if let Some(cap) = rules.per_week {
            let week = monday(date);
            let n = days.iter().filter(|d| monday(**d) == week).count() as u32;
            if n >= cap {
                first_reason.get_or_insert_with(|| {
                    format!("{n} message(s) to this number in the week of {week}, cap {cap} / 已达每周短信上限")
                });
                t = instant(tz, midnight(week + Duration::days(7)));
                continue;
            }
        }
        allowed = true;
        break;
    }
    let reason = first_reason.unwrap_or_default();
    if !allowed {
        return Decision::Suppress {
            reason: format!("{reason}; no allowed time found / 找不到可发送时间"),
        };
    }
    if t == now {
        return Decision::Send;
    }
    if t - created > rules.max_delay {
        return Decision::Suppress {
            reason: format!(
                "{reason}; next allowed {} is over {} h after queueing / 超出最长延迟",
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z"),
                rules.max_delay.num_hours()
            ),
        };
    }
    Decision::Defer { until: t, reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const SH: Tz = chrono_tz::Asia::Shanghai;

    #[test]
    fn quiet_hours_defer_to_their_end_in_the_recipients_zone() {
        let r = MessageRules::default();
        // 22:30 Shanghai → 08:00 next morning Shanghai.
        let now = at("2026-12-04T14:30:00Z");
        assert_eq!(
            decide(&r, SH, now, now, &[]),
            Decision::Defer {
                until: at("2026-12-05T00:00:00Z"),
                reason: "quiet hours 21:00-08:00 local (Asia/Shanghai) / 免打扰时段".into()
            }
        );
        // 07:59 → 08:00 the same day; 08:00 itself is allowed.
        let now = at("2026-12-04T23:59:00Z");
        assert!(
            matches!(decide(&r, SH, now, now, &[]), Decision::Defer { until, .. } if until == at("2026-12-05T00:00:00Z"))
        );
        assert_eq!(
            decide(&r, SH, at("2026-12-05T00:00:00Z"), now, &[]),
            Decision::Send
        );
        // The same instant is 09:30 in New York: allowed there.
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            decide(&r, ny, at("2026-12-04T14:30:00Z"), now, &[]),
            Decision::Send
        );
    }

    #[test]
    fn caps_defer_to_the_next_local_day_or_week_after_quiet_hours() {
        let r = MessageRules::default();
        // Friday 2026-12-04 10:00 Shanghai, two messages already today.
        let now = at("2026-12-04T02:00:00Z");
        let today = [at("2026-12-04T01:00:00Z"), at("2026-12-04T01:30:00Z")];
        match decide(&r, SH, now, now, &today) {
            // Next local midnight is quiet until 08:00.
            Decision::Defer { until, reason } => {
                assert_eq!(until, at("2026-12-05T00:00:00Z"));
                assert!(reason.contains("cap 2"), "{reason}");
            }
            d => panic!("{d:?}"),
        }
        // Five this week (Mon..Thu) → next Monday 08:00.
        let week = [
            at("2026-11-30T02:00:00Z"),
            at("2026-12-01T02:00:00Z"),
            at("2026-12-02T02:00:00Z"),
            at("2026-12-03T02:00:00Z"),
            at("2026-12-03T03:00:00Z"),
        ];
        match decide(&r, SH, now, now, &week) {
            Decision::Defer { until, .. } => assert_eq!(until, at("2026-12-07T00:00:00Z")),
            d => panic!("{d:?}"),
        }
        // Queued on Monday: Monday next week is past 72 h → suppressed.
        match decide(&r, SH, now, at("2026-11-30T02:00:00Z"), &week) {
            Decision::Suppress { reason } => assert!(reason.contains("72 h"), "{reason}"),
            d => panic!("{d:?}"),
        }
        // Last week's messages do not count.
        let old = [at("2026-11-29T02:00:00Z"); 6];
        assert_eq!(decide(&r, SH, now, now, &old), Decision::Send);
    }

    #[test]
    fn the_campaign_section_is_read_with_field_errors() {
        let r = MessageRules::from_campaign_yaml(
            "c.yaml",
            "name: x\ntimezone: America/Chicago\nmessages:\n  quiet_hours: [\"20:00-09:00\", \"12:00-13:00\"]\n  per_number_per_day: 1\n  max_delay_hours: 24\n",
        )
        .unwrap();
        assert_eq!(r.quiet, vec![(20 * 3600, 9 * 3600), (12 * 3600, 13 * 3600)]);
        assert_eq!((r.per_day, r.per_week), (Some(1), Some(DEFAULT_PER_WEEK)));
        assert_eq!(r.timezone.name(), "America/Chicago");
        assert_eq!(r.max_delay, Duration::hours(24));
        let e = MessageRules::from_campaign_yaml(
            "c.yaml",
            "name: x\nmessages:\n  quiet_hours: [\"9pm-8am\"]\n",
        )
        .unwrap_err();
        assert_eq!(e.field, "messages.quiet_hours[0]");
        let e = MessageRules::from_campaign_yaml("c.yaml", "name: x\nmessages:\n  per_day: 1\n")
            .unwrap_err();
        assert!(e.to_string().contains("per_day"), "{e}");
        let none =
            MessageRules::from_campaign_yaml("c.yaml", "name: x\nmessages:\n  quiet_hours: []\n")
                .unwrap();
        assert!(none.quiet.is_empty());
    }

    proptest::proptest! {
        /// Whatever the earlier sends and the clock, a Send is never in quiet hours or
        /// over a cap, and a Defer's instant is itself allowed.
        #[test]
        fn decisions_respect_the_rules(now_s in 0i64..(86400 * 60), earlier in proptest::collection::vec(0i64..(86400 * 60), 0..12), day in 1u32..4, week in 1u32..8) {
            let r = MessageRules { per_day: Some(day), per_week: Some(week.max(day)), max_delay: Duration::days(30), ..MessageRules::default() };
            let base = at("2026-11-01T00:00:00Z");
            let now = base + Duration::seconds(now_s);
            let earlier: Vec<_> = earlier.into_iter().map(|s| base + Duration::seconds(s)).filter(|e| *e <= now).collect();
            let check = |t: DateTime<Utc>| {
                proptest::prop_assert!(quiet_end(&r, SH, t).is_none());
                let d = t.with_timezone(&SH).date_naive();
                let n = earlier.iter().filter(|e| e.with_timezone(&SH).date_naive() == d).count() as u32;
                proptest::prop_assert!(n < day);
                let w = earlier.iter().filter(|e| monday(e.with_timezone(&SH).date_naive()) == monday(d)).count() as u32;
                proptest::prop_assert!(w < week.max(day));
                Ok(())
            };
            match decide(&r, SH, now, now, &earlier) {
                Decision::Send => check(now)?,
                Decision::Defer { until, .. } => { proptest::prop_assert!(until > now); check(until)?; }
                Decision::Suppress { .. } => {}
            }
        }
    }
}
