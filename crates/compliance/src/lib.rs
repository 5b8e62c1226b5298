//! Independent compliance check over the event log.
//!
//! Architecture invariant: this crate shares no code with the scheduler
//! (`waihu-campaign`). It reads the campaign files with its own minimal
//! parser, recomputes each attempt's local time from the event's UTC
//! timestamp and IANA zone (the logged `local_time` is only compared, never
//! trusted), and replays do-not-call additions and removals in time order.
//! If the planner's gate has a bug, this crate has to have the same bug
//! independently for it to go unnoticed.
//!
//! What it proves, per `attempt_started`:
//! - inside a calling window of its campaign, on the callee's local weekday,
//!   not on a holiday, within the campaign's active dates;
//! - inside the legal outer bound 08:00–21:00 for callees in `America/*` zones;
//! - the number's attempts per callee-local day and ISO week (across all
//!   campaigns) within the campaign's caps; attempts per campaign within
//!   `max_attempts`; caller-ID daily caps;
//! - the number was not on a do-not-call list (global or the campaign's) at
//!   that instant;
//! - when the campaign says `consent.required`, the customer's imports had
//!   recorded consent (`customer_created` / `customer_updated` with
//!   `consent: true`, replayed in time order) before the attempt.
//!
//! And per `message_submitted` (an SMS or push handed to its gateway; counted once per
//! message id):
//! - not inside the campaign's message quiet hours (`messages.quiet_hours`, default
//!   21:00–08:00) in the recipient's local time, recomputed from the event's zone;
//! - the number's messages per recipient-local day and ISO week (across all campaigns
//!   and channels) within `messages.per_number_per_day` / `per_number_per_week`
//!   (defaults 2 and 5);
//! - the number was not on a do-not-call list (global or the campaign's) at that instant.
//!
//! And it checks the abandoned-call rate (`call_abandoned` over answered
//! attempts) per campaign against the limit (3%) in every 24-hour period of
//! the campaign (Ofcom's rule; periods start at the campaign's first answered
//! or abandoned call), and reports the whole campaign's rate beside it.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Timelike, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use waihu_core::{CallOutcome, Event, EventKind};

/// Error reading a campaign file.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
    #[error("{file}: {field}: {message}")]
    Field {
        file: String,
        field: String,
        message: String,
    },
}

// What this crate reads of a campaign file. Unknown fields are ignored: the
// scheduler's parser is the strict one; this one only needs the rules.
#[derive(Deserialize)]
struct RulesFile {
    name: String,
    #[serde(default)]
    id: Option<i64>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    active: Option<ActiveFile>,
    #[serde(default)]
    windows: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    holidays: Vec<NaiveDate>,
    #[serde(default)]
    caps: Option<CapsFile>,
    #[serde(default)]
    caller_ids: Option<CallerIdsFile>,
    #[serde(default)]
    pacing: Option<PacingFile>,
    #[serde(default)]
    consent: Option<ConsentFile>,
    #[serde(default)]
    messages: Option<MessagesFile>,
}

#[derive(Deserialize)]
struct MessagesFile {
    #[serde(default)]
    quiet_hours: Option<Vec<String>>,
    #[serde(default)]
    per_number_per_day: Option<u32>,
    #[serde(default)]
    per_number_per_week: Option<u32>,
}

/// Message rules that apply when a campaign file says nothing (the documented defaults of
/// `docs/messages.md`, written here again on purpose: this crate shares no code with the
/// sender's gate).
pub const MESSAGE_QUIET_DEFAULT: (u32, u32) = (21 * 3600, 8 * 3600);
pub const MESSAGE_PER_DAY_DEFAULT: u32 = 2;
pub const MESSAGE_PER_WEEK_DEFAULT: u32 = 5;

#[derive(Deserialize)]
struct ConsentFile {
    #[serde(default)]
    required: bool,
}

#[derive(Deserialize)]
struct ActiveFile {
    from: NaiveDate,
    to: NaiveDate,
}

#[derive(Deserialize, Default)]
struct CapsFile {
    #[serde(default)]
    per_number_per_day: Option<u32>,
    #[serde(default)]
    per_number_per_week: Option<u32>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

#[derive(Deserialize)]
struct CallerIdsFile {
    #[serde(default)]
    pool: Vec<CallerIdFile>,
}

#[derive(Deserialize)]
struct CallerIdFile {
    number: String,
    #[serde(default)]
    daily_cap: Option<u32>,
}

#[derive(Deserialize)]
struct PacingFile {
    #[serde(default)]
    target_abandon_rate: Option<f64>,
}

/// The rules of one campaign, as this crate understands them.
#[derive(Debug, Clone)]
pub struct CampaignRules {
    pub id: i64,
    pub name: String,
    pub timezone: Tz,
    pub active: Option<(NaiveDate, NaiveDate)>,
    /// Half-open `[start, end)` seconds after local midnight, Monday first.
    pub windows: [Vec<(u32, u32)>; 7],
    pub holidays: HashSet<NaiveDate>,
    pub per_day: Option<u32>,
    pub per_week: Option<u32>,
    pub max_attempts: u32,
    pub caller_id_caps: HashMap<String, u32>,
    pub abandon_limit: f64,
    /// Only customers with consent on record may be dialled.
    pub consent_required: bool,
    /// Message quiet spans, seconds after local midnight `[start, end)`; `start > end`
    /// wraps past midnight.
    pub message_quiet: Vec<(u32, u32)>,
    pub message_per_day: Option<u32>,
    pub message_per_week: Option<u32>,
}

fn hhmm(s: &str) -> Option<u32> {
    let s = s.trim();
    if s == "24:00" {
        return Some(24 * 3600);
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .ok()
        .map(|t| t.num_seconds_from_midnight())
}

fn span(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (hhmm(a)?, hhmm(b)?);
    (a < b).then_some((a, b))
}

/// A quiet span: like [`span`] but it may wrap midnight (`21:00-08:00`).
fn quiet_span(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once('-')?;
    let (a, b) = (hhmm(a)?, hhmm(b)?);
    (a != b && a < 24 * 3600).then_some((a, b))
}

fn in_quiet(spans: &[(u32, u32)], sec: u32) -> Option<(u32, u32)> {
    spans.iter().copied().find(|&(a, b)| {
        if a < b {
            a <= sec && sec < b
        } else {
            sec >= a || sec < b
        }
    })
}

impl CampaignRules {
    /// Read the rules out of a campaign YAML file's text.
    pub fn from_yaml(file: &str, text: &str) -> Result<CampaignRules, RulesError> {
        let f: RulesFile = serde_norway::from_str(text).map_err(|e| RulesError::Parse {
            file: file.into(),
            message: e.to_string(),
        })?;
        let field = |field: &str, message: String| RulesError::Field {
            file: file.into(),
            field: field.into(),
            message,
        };
        let timezone: Tz = f
            .timezone
            .as_deref()
            .unwrap_or("Asia/Shanghai")
            .parse()
            .map_err(|_| field("timezone", "unknown time zone".into()))?;
        let country = f.country.as_deref().unwrap_or("CN").to_ascii_uppercase();
        let fallback: Vec<(u32, u32)> = match country.as_str() {
            "US" => vec![(9 * 3600, 20 * 3600)],
            _ => vec![(9 * 3600, 12 * 3600), (14 * 3600, 20 * 3600)],
        };
        let mut windows: [Vec<(u32, u32)>; 7] = std::array::from_fn(|_| fallback.clone());
        if let Some(map) = &f.windows {
            let parse_list = |key: &str, list: &[String]| -> Result<Vec<(u32, u32)>, RulesError> {
                list.iter()
                    .map(|s| {
                        span(s).ok_or_else(|| {
                            field(&format!("windows.{key}"), format!("bad window '{s}'"))
                        })
                    })
                    .collect()
            };
            if let Some(d) = map.get("default") {
                let l = parse_list("default", d)?;
                windows = std::array::from_fn(|_| l.clone());
            }
            for (k, v) in map {
                let days: &[usize] = match k.as_str() {
                    "default" => continue,
                    "weekdays" => &[0, 1, 2, 3, 4],
                    "weekend" => &[5, 6],
                    "mon" => &[0],
                    "tue" => &[1],
                    "wed" => &[2],
                    "thu" => &[3],
                    "fri" => &[4],
                    "sat" => &[5],
                    "sun" => &[6],
                    other => return Err(field(&format!("windows.{other}"), "unknown day".into())),
                };
                let l = parse_list(k, v)?;
                for &d in days {
                    windows[d] = l.clone();
                }
            }
        }
        let mut message_quiet = vec![MESSAGE_QUIET_DEFAULT];
        let mut message_per_day = Some(MESSAGE_PER_DAY_DEFAULT);
        let mut message_per_week = Some(MESSAGE_PER_WEEK_DEFAULT);
        if let Some(m) = &f.messages {
            if let Some(q) = &m.quiet_hours {
                message_quiet = q
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        quiet_span(s).ok_or_else(|| {
                            field(
                                &format!("messages.quiet_hours[{i}]"),
                                format!("bad span '{s}'"),
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?;
            }
            message_per_day = m.per_number_per_day.or(message_per_day);
            message_per_week = m.per_number_per_week.or(message_per_week);
        }
        let caps = f.caps.unwrap_or_default();
        let mut caller_id_caps = HashMap::new();
        for c in f.caller_ids.map(|c| c.pool).unwrap_or_default() {
            if let Some(cap) = c.daily_cap {
                caller_id_caps.insert(c.number, cap);
            }
        }
        Ok(CampaignRules {
            id: f.id.unwrap_or(1),
            name: f.name,
            timezone,
            active: f.active.map(|a| (a.from, a.to)),
            windows,
            holidays: f.holidays.into_iter().collect(),
            per_day: caps.per_number_per_day,
            per_week: caps.per_number_per_week,
            max_attempts: caps.max_attempts.unwrap_or(6),
            caller_id_caps,
            abandon_limit: f.pacing.and_then(|p| p.target_abandon_rate).unwrap_or(0.03),
            consent_required: f.consent.is_some_and(|c| c.required),
            message_quiet,
            message_per_day,
            message_per_week,
        })
    }

    /// Rules for attempts of a campaign no file was given for: only the
    /// legal outer bound 08:00–21:00 every day, no caps known.
    pub fn unknown(id: i64) -> CampaignRules {
        CampaignRules {
            id,
            name: format!("campaign {id} (no rules file)"),
            timezone: chrono_tz::UTC,
            active: None,
            windows: std::array::from_fn(|_| vec![(8 * 3600, 21 * 3600)]),
            holidays: HashSet::new(),
            per_day: None,
            per_week: None,
            max_attempts: u32::MAX,
            caller_id_caps: HashMap::new(),
            abandon_limit: 0.03,
            consent_required: false,
            message_quiet: vec![MESSAGE_QUIET_DEFAULT],
            message_per_day: Some(MESSAGE_PER_DAY_DEFAULT),
            message_per_week: Some(MESSAGE_PER_WEEK_DEFAULT),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    OutsideWindow,
    Holiday,
    LegalBound,
    Inactive,
    DailyCap,
    WeeklyCap,
    MaxAttempts,
    Dnc,
    CallerIdCap,
    AbandonRate,
    LocalTimeMismatch,
    BadTimeZone,
    NoConsent,
    MessageQuietHours,
    MessageDailyCap,
    MessageWeeklyCap,
    MessageDnc,
    ConcurrentDial,
}

impl ViolationKind {
    pub fn label(self) -> &'static str {
        match self {
            ViolationKind::OutsideWindow => "outside calling window / 超出可拨打时段",
            ViolationKind::Holiday => "dialled on a holiday / 节假日拨打",
            ViolationKind::LegalBound => "outside legal hours 08:00-21:00 / 超出法定时段",
            ViolationKind::Inactive => "outside active dates / 活动日期之外",
            ViolationKind::DailyCap => "daily cap per number exceeded / 超出每日次数上限",
            ViolationKind::WeeklyCap => "weekly cap per number exceeded / 超出每周次数上限",
            ViolationKind::MaxAttempts => "max attempts per campaign exceeded / 超出最大尝试次数",
            ViolationKind::Dnc => "do-not-call number dialled / 拨打了免打扰号码",
            ViolationKind::CallerIdCap => "caller ID daily cap exceeded / 主叫号码超出每日上限",
            ViolationKind::AbandonRate => "abandoned-call rate over limit / 弃呼率超限",
            ViolationKind::LocalTimeMismatch => {
                "logged local time disagrees with zone / 记录的当地时间有误"
            }
            ViolationKind::BadTimeZone => "unknown time zone in event / 事件时区无效",
            ViolationKind::NoConsent => "dialled without consent on record / 未获外呼同意即拨打",
            ViolationKind::MessageQuietHours => {
                "message sent in quiet hours / 免打扰时段发送了消息"
            }
            ViolationKind::MessageDailyCap => {
                "daily message cap per number exceeded / 超出每日消息上限"
            }
            ViolationKind::MessageWeeklyCap => {
                "weekly message cap per number exceeded / 超出每周消息上限"
            }
            ViolationKind::MessageDnc => {
                "message sent to a do-not-call number / 向免打扰号码发送了消息"
            }
            ViolationKind::ConcurrentDial => {
                "number dialled while another call to it was open / 同一号码同时被拨打"
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Violation {
    pub kind: ViolationKind,
    pub at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub campaign: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.at.format("%Y-%m-%d %H:%M:%S"),
            self.kind.label()
        )?;
        if let Some(c) = self.campaign {
            write!(f, " campaign={c}")?;
        }
        if let Some(c) = self.customer {
            write!(f, " customer={c}")?;
        }
        if let Some(c) = &self.call {
            write!(f, " call={c}")?;
        }
        write!(f, ": {}", self.detail)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CampaignSummary {
    pub id: i64,
    pub name: String,
    pub attempts: u64,
    pub answered: u64,
    pub abandoned: u64,
    pub abandon_rate: f64,
    pub abandon_limit: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ComplianceReport {
    pub events_read: u64,
    pub attempts: u64,
    /// Messages checked (`message_submitted`, once per message).
    #[serde(default)]
    pub messages: u64,
    pub violation_count: u64,
    pub by_kind: BTreeMap<ViolationKind, u64>,
    /// The first violations in time order (all are counted in `by_kind`).
    pub violations: Vec<Violation>,
    pub campaigns: Vec<CampaignSummary>,
    pub warnings: Vec<String>,
}

impl ComplianceReport {
    pub fn ok(&self) -> bool {
        self.violation_count == 0
    }
}

/// Detail kept for at most this many violations; all are counted.
const KEEP: usize = 1000;

/// FNV-1a: the keys are blind indexes (already uniformly random hex) and
/// caller IDs, so a fast non-keyed hash is enough and SipHash is the cost
/// centre of a million-number audit.
#[derive(Default, Clone, Copy)]
struct FastHash;

struct Fnv(u64);

impl std::hash::BuildHasher for FastHash {
    type Hasher = Fnv;
    fn build_hasher(&self) -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= *b as u64;
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[derive(Default)]
struct NumberState {
    day: i32,
    day_count: u32,
    week: i32,
    week_count: u32,
    per_campaign: Vec<(i64, u32)>,
    dnc_scopes: Vec<String>,
    msg_day: i32,
    msg_day_count: u32,
    msg_week: i32,
    msg_week_count: u32,
}

#[derive(Default)]
struct CampaignCounts {
    attempts: u64,
    answered: u64,
    abandoned: u64,
    /// Start of the first 24-hour period.
    since: Option<DateTime<Utc>>,
    /// Period index → (answered, abandoned, last event's time).
    periods: BTreeMap<i64, (u64, u64, DateTime<Utc>)>,
}

impl CampaignCounts {
    fn period(&mut self, at: DateTime<Utc>) -> &mut (u64, u64, DateTime<Utc>) {
        let since = *self.since.get_or_insert(at);
        let i = (at - since).num_seconds().max(0) / 86_400;
        let p = self.periods.entry(i).or_insert((0, 0, at));
        p.2 = p.2.max(at);
        p
    }
}

/// Streaming checker: feed events in time order, then [`Checker::finish`].
pub struct Checker {
    rules: HashMap<i64, CampaignRules>,
    numbers: HashMap<String, NumberState, FastHash>,
    caller_ids: HashMap<(String, i32), u32, FastHash>,
    counts: BTreeMap<i64, CampaignCounts>,
    /// Customer id → the consent their imports last recorded.
    consent: HashMap<i64, bool, FastHash>,
    report: ComplianceReport,
    /// Message ids already counted (a message is logged once, but a log may repeat it).
    messages_seen: HashSet<i64, FastHash>,
    last_at: Option<DateTime<Utc>>,
    unknown_warned: HashSet<i64>,
    /// Phone index → the open call on it (call id, start); closed by its `attempt_ended`.
    open_calls: HashMap<String, (String, DateTime<Utc>), FastHash>,
    /// Call id → its phone index, for the calls in `open_calls`.
    open_phone: HashMap<String, String, FastHash>,
}

/// A call whose end never reached the log (a crashed process, a lost node) stops counting as
/// open after this long: longer than any call a campaign allows.
const OPEN_CALL_LIMIT: chrono::TimeDelta = chrono::TimeDelta::hours(4);

fn day_of(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

fn monday_of(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - d.weekday().num_days_from_monday() as i32
}

impl Checker {
    pub fn new(rules: Vec<CampaignRules>) -> Self {
        Checker {
            rules: rules.into_iter().map(|r| (r.id, r)).collect(),
            numbers: HashMap::default(),
            caller_ids: HashMap::default(),
            counts: BTreeMap::new(),
            consent: HashMap::default(),
            report: ComplianceReport::default(),
            messages_seen: HashSet::default(),
            last_at: None,
            unknown_warned: HashSet::new(),
            open_calls: HashMap::default(),
            open_phone: HashMap::default(),
        }
    }

    fn violate(&mut self, kind: ViolationKind, e: &Event, detail: String) {
        self.report.violation_count += 1;
        *self.report.by_kind.entry(kind).or_default() += 1;
        if self.report.violations.len() < KEEP {
            self.report.violations.push(Violation {
                kind,
                at: e.at,
                customer: e.customer.map(|c| c.0),
                campaign: e.campaign.map(|c| c.0),
                call: e.call.as_ref().map(|c| c.0.clone()),
                detail,
            });
        }
    }

    fn rules_for(&mut self, campaign: Option<i64>) -> CampaignRules {
        let id = campaign.unwrap_or(0);
        if let Some(r) = self.rules.get(&id) {
            return r.clone();
        }
        if self.unknown_warned.insert(id) {
            self.report.warnings.push(format!(
                "no rules for campaign {id}: checked against the legal bound 08:00-21:00 only / 活动 {id} 无规则文件,仅按法定时段检查"
            ));
        }
        let r = CampaignRules::unknown(id);
        self.rules.insert(id, r.clone());
        r
    }

    /// Feed one event. Events must come in non-decreasing `at`; one that
    /// does not is still checked, and a warning is recorded.
    pub fn feed(&mut self, e: &Event) {
        self.report.events_read += 1;
        if let Some(last) = self.last_at {
            if e.at < last && self.report.warnings.len() < 50 {
                self.report
                    .warnings
                    .push(format!("event at {} is out of time order", e.at));
            }
        }
        self.last_at = Some(self.last_at.map_or(e.at, |l| l.max(e.at)));
        match &e.kind {
            EventKind::CustomerCreated {
                consent: Some(c), ..
            }
            | EventKind::CustomerUpdated {
                consent: Some(c), ..
            } => {
                if let Some(id) = e.customer {
                    self.consent.insert(id.0, *c);
                }
            }
            EventKind::DncAdded { phone, scope, .. } => {
                let st = self.numbers.entry(phone.0.clone()).or_default();
                if !st.dnc_scopes.iter().any(|s| s == scope) {
                    st.dnc_scopes.push(scope.clone());
                }
            }
            EventKind::DncRemoved { phone, scope } => {
                if let Some(st) = self.numbers.get_mut(&phone.0) {
                    st.dnc_scopes.retain(|s| s != scope);
                }
            }
            EventKind::AttemptStarted {
                phone,
                tz,
                local_time,
                caller_id,
                ..
            } => {
                self.attempt(e, &phone.0, tz, local_time, caller_id.as_deref());
            }
            EventKind::MessageSubmitted {
                message,
                phone,
                tz,
                local_time,
                channel,
                ..
            } => {
                self.message(e, *message, &phone.0, tz, local_time, channel);
            }
            EventKind::AttemptEnded { outcome, .. } => {
                if let Some(phone) = e.call.as_ref().and_then(|c| self.open_phone.remove(&c.0)) {
                    self.open_calls.remove(&phone);
                }
                if *outcome != CallOutcome::Answered {
                    return;
                }
                let c = self
                    .counts
                    .entry(e.campaign.map_or(0, |c| c.0))
                    .or_default();
                c.answered += 1;
                c.period(e.at).0 += 1;
            }
            EventKind::CallAbandoned { .. } => {
                let c = self
                    .counts
                    .entry(e.campaign.map_or(0, |c| c.0))
                    .or_default();
                c.abandoned += 1;
                c.period(e.at).1 += 1;
            }
            _ => {}
        }
    }

    fn attempt(
        &mut self,
        e: &Event,
        phone: &str,
        tz_name: &str,
        logged_local: &str,
        caller_id: Option<&str>,
    ) {
        self.report.attempts += 1;
        // One call at a time per number, whichever process or node placed it.
        // An attempt without a call id cannot be paired with its end and is not checked.
        if let Some(call) = e.call.as_ref().map(|c| c.0.clone()) {
            if let Some((open, since)) = self.open_calls.get(phone) {
                if *open != call && e.at - *since < OPEN_CALL_LIMIT {
                    let detail = format!("call {open} on this number open since {since}");
                    self.violate(ViolationKind::ConcurrentDial, e, detail);
                }
            }
            if let Some((old, _)) = self
                .open_calls
                .insert(phone.to_string(), (call.clone(), e.at))
            {
                self.open_phone.remove(&old);
            }
            self.open_phone.insert(call, phone.to_string());
        }
        let rules = self.rules_for(e.campaign.map(|c| c.0));
        self.counts.entry(rules.id).or_default().attempts += 1;
        if rules.consent_required {
            let on_record = e.customer.and_then(|c| self.consent.get(&c.0).copied());
            let detail = match on_record {
                Some(true) => None,
                Some(false) => Some("the customer said no / 客户不同意"),
                None => Some("no consent on record / 无同意记录"),
            };
            if let Some(detail) = detail {
                self.violate(ViolationKind::NoConsent, e, detail.into());
            }
        }
        let tz: Tz = match tz_name.parse() {
            Ok(tz) => tz,
            Err(_) => {
                self.violate(ViolationKind::BadTimeZone, e, format!("'{tz_name}'"));
                return;
            }
        };
        let local = e.at.with_timezone(&tz);
        let date = local.date_naive();
        let sec = local.num_seconds_from_midnight();
        // The logged local time must denote the same instant (and offset).
        match DateTime::parse_from_rfc3339(logged_local) {
            Ok(t) if t == local.fixed_offset() && t.offset() == local.fixed_offset().offset() => {}
            _ => self.violate(
                ViolationKind::LocalTimeMismatch,
                e,
                format!(
                    "logged '{logged_local}', recomputed {} in {tz_name}",
                    local.to_rfc3339()
                ),
            ),
        }
        if let Some((from, to)) = rules.active {
            let d = e.at.with_timezone(&rules.timezone).date_naive();
            if d < from || d > to {
                self.violate(
                    ViolationKind::Inactive,
                    e,
                    format!("{d} not in {from}..{to}"),
                );
            }
        }
        if rules.holidays.contains(&date) {
            self.violate(ViolationKind::Holiday, e, format!("{date} local"));
        }
        let wd = date.weekday().num_days_from_monday() as usize;
        if !rules.windows[wd].iter().any(|&(a, b)| a <= sec && sec < b) {
            self.violate(
                ViolationKind::OutsideWindow,
                e,
                format!(
                    "{} {} local in {tz_name}",
                    date.weekday(),
                    local.format("%H:%M:%S")
                ),
            );
        }
        if tz_name.starts_with("America/") && !(8 * 3600..21 * 3600).contains(&sec) {
            self.violate(
                ViolationKind::LegalBound,
                e,
                format!("{} local in {tz_name}", local.format("%H:%M:%S")),
            );
        }
        if !self.numbers.contains_key(phone) {
            self.numbers
                .insert(phone.to_string(), NumberState::default());
        }
        let Some(st) = self.numbers.get_mut(phone) else {
            return;
        };
        let scoped = st
            .dnc_scopes
            .iter()
            .find(|s| *s == "global" || **s == rules.name)
            .cloned();
        let (day, week) = (day_of(date), monday_of(date));
        if st.day != day || st.day_count == 0 {
            st.day = day;
            st.day_count = 0;
        }
        if st.week != week || st.week_count == 0 {
            st.week = week;
            st.week_count = 0;
        }
        st.day_count += 1;
        st.week_count += 1;
        let (dc, wc) = (st.day_count, st.week_count);
        let n = match st.per_campaign.iter_mut().find(|(c, _)| *c == rules.id) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                st.per_campaign.push((rules.id, 1));
                1
            }
        };
        if let Some(scope) = scoped {
            self.violate(
                ViolationKind::Dnc,
                e,
                format!("number on the '{scope}' list"),
            );
        }
        if let Some(cap) = rules.per_day {
            if dc > cap {
                self.violate(
                    ViolationKind::DailyCap,
                    e,
                    format!("attempt {dc} on {date} local, cap {cap}"),
                );
            }
        }
        if let Some(cap) = rules.per_week {
            if wc > cap {
                self.violate(
                    ViolationKind::WeeklyCap,
                    e,
                    format!("attempt {wc} in the week of {date}, cap {cap}"),
                );
            }
        }
        if n > rules.max_attempts {
            self.violate(
                ViolationKind::MaxAttempts,
                e,
                format!("attempt {n}, max {}", rules.max_attempts),
            );
        }
        if let Some(cid) = caller_id {
            if let Some(&cap) = rules.caller_id_caps.get(cid) {
                let d = day_of(e.at.with_timezone(&rules.timezone).date_naive());
                let used = self.caller_ids.entry((cid.to_string(), d)).or_default();
                *used += 1;
                let u = *used;
                if u > cap {
                    self.violate(
                        ViolationKind::CallerIdCap,
                        e,
                        format!("{cid}: call {u} today, cap {cap}"),
                    );
                }
            }
        }
    }

    fn message(
        &mut self,
        e: &Event,
        id: i64,
        phone: &str,
        tz_name: &str,
        logged_local: &str,
        channel: &str,
    ) {
        if !self.messages_seen.insert(id) {
            return;
        }
        self.report.messages += 1;
        let rules = self.rules_for(e.campaign.map(|c| c.0));
        let tz: Tz = match tz_name.parse() {
            Ok(tz) => tz,
            Err(_) => {
                self.violate(ViolationKind::BadTimeZone, e, format!("'{tz_name}'"));
                return;
            }
        };
        let local = e.at.with_timezone(&tz);
        let date = local.date_naive();
        let sec = local.num_seconds_from_midnight();
        match DateTime::parse_from_rfc3339(logged_local) {
            Ok(t) if t == local.fixed_offset() && t.offset() == local.fixed_offset().offset() => {}
            _ => self.violate(
                ViolationKind::LocalTimeMismatch,
                e,
                format!(
                    "message {id}: logged '{logged_local}', recomputed {} in {tz_name}",
                    local.to_rfc3339()
                ),
            ),
        }
        if let Some((a, b)) = in_quiet(&rules.message_quiet, sec) {
            self.violate(
                ViolationKind::MessageQuietHours,
                e,
                format!(
                    "{channel} message {id} at {} local in {tz_name}, quiet {:02}:{:02}-{:02}:{:02}",
                    local.format("%H:%M:%S"),
                    a / 3600,
                    a % 3600 / 60,
                    b / 3600,
                    b % 3600 / 60
                ),
            );
        }
        let st = self.numbers.entry(phone.to_string()).or_default();
        let scoped = st
            .dnc_scopes
            .iter()
            .find(|s| *s == "global" || **s == rules.name)
            .cloned();
        let (day, week) = (day_of(date), monday_of(date));
        if st.msg_day != day || st.msg_day_count == 0 {
            st.msg_day = day;
            st.msg_day_count = 0;
        }
        if st.msg_week != week || st.msg_week_count == 0 {
            st.msg_week = week;
            st.msg_week_count = 0;
        }
        st.msg_day_count += 1;
        st.msg_week_count += 1;
        let (dc, wc) = (st.msg_day_count, st.msg_week_count);
        if let Some(scope) = scoped {
            self.violate(
                ViolationKind::MessageDnc,
                e,
                format!("{channel} message {id}: number on the '{scope}' list"),
            );
        }
        if let Some(cap) = rules.message_per_day {
            if dc > cap {
                self.violate(
                    ViolationKind::MessageDailyCap,
                    e,
                    format!("message {dc} on {date} local, cap {cap}"),
                );
            }
        }
        if let Some(cap) = rules.message_per_week {
            if wc > cap {
                self.violate(
                    ViolationKind::MessageWeeklyCap,
                    e,
                    format!("message {wc} in the week of {date}, cap {cap}"),
                );
            }
        }
    }

    pub fn finish(mut self) -> ComplianceReport {
        let counts = std::mem::take(&mut self.counts);
        for (id, c) in counts {
            let rules = self.rules_for(Some(id));
            let rate = if c.answered == 0 {
                0.0
            } else {
                c.abandoned as f64 / c.answered as f64
            };
            let since = c.since.unwrap_or(DateTime::<Utc>::MIN_UTC);
            for (i, &(answered, abandoned, last)) in &c.periods {
                // An abandoned call is also an answered one; a period whose
                // answers were logged in the one before still counts its drops.
                let over = if answered == 0 {
                    abandoned > 0
                } else {
                    abandoned as f64 / answered as f64 > rules.abandon_limit
                };
                if !over {
                    continue;
                }
                let from = since + chrono::Duration::days(*i);
                let e = Event {
                    at: last,
                    customer: None,
                    campaign: Some(waihu_core::CampaignId(id)),
                    call: None,
                    kind: EventKind::CampaignState {
                        state: "checked".into(),
                        actor: None,
                    },
                };
                self.violate(
                    ViolationKind::AbandonRate,
                    &e,
                    format!(
                        "{abandoned} abandoned of {answered} answered = {:.2}% > {:.2}% in the 24 h from {}",
                        if answered == 0 { 100.0 } else { abandoned as f64 / answered as f64 * 100.0 },
                        rules.abandon_limit * 100.0,
                        from.format("%Y-%m-%d %H:%M UTC"),
                    ),
                );
            }
            self.report.campaigns.push(CampaignSummary {
                id,
                name: rules.name.clone(),
                attempts: c.attempts,
                answered: c.answered,
                abandoned: c.abandoned,
                abandon_rate: rate,
                abandon_limit: rules.abandon_limit,
            });
        }
        self.report.violations.sort_by_key(|v| v.at);
        self.report
    }
}

/// Check a whole log: events are put in time order first (stable, so the
/// log's own order breaks ties).
pub fn check(rules: Vec<CampaignRules>, mut events: Vec<Event>) -> ComplianceReport {
    events.sort_by_key(|e| e.at);
    let mut c = Checker::new(rules);
    for e in &events {
        c.feed(e);
    }
    c.finish()
}

/// Plain-text rendering (Chinese first, English too).
pub fn render_text(r: &ComplianceReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "合规检查 / compliance check: {} events, {} attempts, {} messages, {} violation(s)\n",
        r.events_read, r.attempts, r.messages, r.violation_count
    ));
    for c in &r.campaigns {
        s.push_str(&format!(
            "  campaign {} ({}): {} attempts, {} answered, {} abandoned, 弃呼率 abandon rate {:.2}% (limit {:.2}%)\n",
            c.id,
            c.name,
            c.attempts,
            c.answered,
            c.abandoned,
            c.abandon_rate * 100.0,
            c.abandon_limit * 100.0
        ));
    }
    for (k, n) in &r.by_kind {
        s.push_str(&format!("  {n:>8}  {}\n", k.label()));
    }
    for v in r.violations.iter().take(20) {
        s.push_str(&format!("  - {v}\n"));
    }
    if r.violations.len() > 20 {
        s.push_str(&format!(
            "  ... {} more (use --json)\n",
            r.violation_count - 20
        ));
    }
    for w in &r.warnings {
        s.push_str(&format!("  warning: {w}\n"));
    }
    s.push_str(if r.ok() {
        "结果 result: PASS\n"
    } else {
        "结果 result: FAIL\n"
    });
    s
}

#[cfg(test)]
mod tests;
