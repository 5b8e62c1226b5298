//! The sans-IO planner: given `now` and free capacity it returns the next
//! dials; given outcomes it learns and schedules retries. It never reads a
//! clock, so the simulator drives it through a week in seconds.
//!
//! # Data layout (2M pending contacts)
//! - Contacts live in one `Vec<Slot>` (~80 bytes each); everything else
//!   refers to them by index.
//! - Contacts waiting for a retry time, a cap reset or a window opening sit in
//!   a calendar keyed by minute (`BTreeMap<minute, Vec<(idx, gen)>>`); each
//!   `next_dials` drains only buckets that came due.
//! - Ready contacts sit in max-heaps per (time zone, segment, day part),
//!   keyed by the hour-independent part of their score (segment value ×
//!   recency × attempt decay × the customer's own day-part multiplier). The
//!   hour-dependent part, the segment's answer rate at this hour of week, is
//!   the same for the whole heap, so the best contact overall is the best of
//!   a handful of heap heads. Heaps whose zone is outside its window now are
//!   not looked at. A decision costs O(heaps + log n), not a scan.
//! - Entries are invalidated lazily with a generation counter.
//!
//! # One gate
//! Every dial passes [`Planner::eligibility`] right before it is emitted —
//! windows in the callee's zone, legal bounds, holidays, active dates, caps,
//! DNC, consent, max attempts, retry backoff. The queues are only an
//! optimisation of *which* contacts are looked at; the gate decides.
use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use waihu_core::{CallOutcome, CustomerId};

use crate::config::{outcome_index, weekday_index, Campaign, FallbackChannel, Policy, Retry};
use crate::learned::{explores, Choice, ContactFacts, Explanation, Learner};
use crate::model::{day_part, AnswerModel, DAY_PARTS};

/// Which follow-up message channels a customer accepts (the import's `channel_pref` /
/// 联系偏好). Fallback rules and the learned policy's message-first honour it; calls do not
/// depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelPref {
    /// Whatever the campaign's rules say.
    #[default]
    Any,
    /// SMS only: push rules are skipped.
    Sms,
    /// App push: SMS rules are skipped for a customer with the app (one without it gets
    /// the SMS rules, the only channel that reaches them).
    Push,
    /// No follow-up messages at all.
    None,
}

impl ChannelPref {
    /// The stored attribute (`sms`, `push`, `none`, `any`); anything else is `Any`.
    pub fn from_attr(v: &str) -> ChannelPref {
        match v.trim() {
            "sms" => ChannelPref::Sms,
            "push" => ChannelPref::Push,
            "none" => ChannelPref::None,
            _ => ChannelPref::Any,
        }
    }

    /// Whether a message on `channel` may go to a customer with this preference.
    pub fn allows(self, channel: FallbackChannel, has_app: bool) -> bool {
        match (self, channel) {
            (ChannelPref::Any, _) => true,
            (ChannelPref::None, _) => false,
            (ChannelPref::Sms, c) => c == FallbackChannel::Sms,
            (ChannelPref::Push, FallbackChannel::Push) => true,
            (ChannelPref::Push, FallbackChannel::Sms) => !has_app,
        }
    }
}

/// A customer to be called in this campaign.
#[derive(Debug, Clone)]
pub struct ContactInput {
    pub customer: CustomerId,
    /// E.164, with or without `+`.
    pub phone: String,
    pub tz: Tz,
    /// Segment name from the campaign's `segments`.
    pub segment: String,
    /// Where the customer is, for local-presence caller IDs: `province/city`
    /// as the import stores it (`广东/深圳`), a province or city alone
    /// (`辽宁`, `北京`), or any other name a caller ID may carry (`NY`). A bare
    /// ISO country code (`CN`) says nothing local and is ignored.
    pub region: Option<String>,
    pub has_app: bool,
    /// Follow-up message channels the customer accepts.
    pub channel_pref: ChannelPref,
    pub consent: bool,
    /// Days since the customer last interacted with the brand.
    pub recency_days: Option<u32>,
    /// Earlier calls to this customer (other campaigns, the CRM): local hour
    /// of day and whether they answered. Seeds the customer's own evidence.
    pub history: Vec<PastCall>,
    /// Named features for the learned policy (`occupation=office`,
    /// `tier=gold`; see [`crate::learned::attribute_features`]). Ignored by
    /// the other policies.
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastCall {
    pub hour: u8,
    pub answered: bool,
}

/// An attempt made before this planner started (the store's call history),
/// for [`Planner::seed_model`]: the callee's segment in this campaign, the
/// callee's local wall time when it was placed, and how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PastAttempt {
    /// Index into the campaign's `segments` ([`Campaign::segment_index`]).
    pub segment: usize,
    pub local: chrono::NaiveDateTime,
    pub outcome: CallOutcome,
}

/// Outcomes that say something about whether the callee picks up at that
/// hour; network failures teach the answer model nothing.
fn teaches(outcome: CallOutcome) -> bool {
    !matches!(
        outcome,
        CallOutcome::InvalidNumber
            | CallOutcome::Suspended
            | CallOutcome::Congestion
            | CallOutcome::Failed
    )
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContactError {
    #[error("customer {0}: phone number '{1}' is not E.164 digits / 号码格式无效")]
    BadPhone(CustomerId, String),
    #[error("customer {0}: segment '{1}' is not in the campaign / 分群不在活动中")]
    UnknownSegment(CustomerId, String),
    #[error("customer {0}: number already in the campaign / 号码重复")]
    DuplicatePhone(CustomerId),
}

/// Why a contact may not be dialled now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ineligible {
    InFlight,
    Finished,
    NoConsent,
    Dnc,
    MaxAttempts,
    NotActive,
    Holiday,
    OutsideWindow,
    DailyCap,
    WeeklyCap,
    Backoff,
}

/// Where one contact stands in a planner ([`Planner::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContactStatus {
    /// Eligible now (the next [`Planner::next_dials`] may pick it).
    Ready,
    InFlight,
    /// Due again at this time (a retry, a deferral, a closed window).
    Waiting(DateTime<Utc>),
    /// The callee asked to be called at this time.
    Callback(DateTime<Utc>),
    /// Finished here (reached, refused, out of attempts) or released.
    Done,
}

/// Opaque handle of a contact inside one planner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ContactRef(pub u32);

/// One dial to place now.
#[derive(Debug, Clone, PartialEq)]
pub struct Dial {
    pub contact: ContactRef,
    pub customer: CustomerId,
    /// E.164 digits without `+`.
    pub phone: u64,
    pub tz: Tz,
    /// The callee's wall clock when the decision was made.
    pub local_time: DateTime<Tz>,
    pub segment: usize,
    pub trunk: usize,
    pub caller_id: Option<usize>,
    /// This dial honours a callback the callee asked for.
    pub callback: bool,
    /// Answer probability the model gave (best-time policy) or 0.
    pub p_answer: f64,
}

/// One attempt of this campaign stored by an earlier run, for [`Planner::record_own_attempt`].
#[derive(Debug, Clone, Copy)]
pub struct OwnAttempt<'a> {
    pub e164: &'a str,
    /// `Failed` for an attempt whose end was never stored (the run died mid-call).
    pub outcome: CallOutcome,
    /// When it ended (when it started, if its end was never stored).
    pub ended_at: DateTime<Utc>,
    /// The callee asked to be called back at this time.
    pub callback_at: Option<DateTime<Utc>>,
    /// The call was answered and then abandoned (no agent / the bot dropped it).
    pub abandoned: bool,
}

/// What the runtime reports when an attempt ends.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    pub outcome: CallOutcome,
    /// The callee asked to be called back at this time.
    pub callback_at: Option<DateTime<Utc>>,
    /// The callee asked not to be called again.
    pub do_not_call: bool,
    /// Answered, but no agent was free (predictive pacing) and the call was dropped.
    pub abandoned: bool,
    /// The call completed the task (the script's success outcome). Teaches
    /// the learned policy's conversion model.
    pub converted: bool,
}

impl Report {
    pub fn outcome(outcome: CallOutcome) -> Self {
        Report {
            outcome,
            callback_at: None,
            do_not_call: false,
            abandoned: false,
            converted: false,
        }
    }
}

/// Decisions besides dials, for the runtime to carry out and log as events.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Send a message on another channel (→ `EventKind::MessageSent`).
    SendMessage {
        customer: CustomerId,
        channel: &'static str,
        template: String,
    },
    /// Put the number on the do-not-call list (→ `EventKind::DncAdded`).
    AddDnc { customer: CustomerId },
    /// Schedule a callback the callee asked for.
    CallbackScheduled {
        customer: CustomerId,
        at: DateTime<Utc>,
    },
    /// No more dials for this contact in this campaign.
    Finished {
        customer: CustomerId,
        reason: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Waiting,
    Ready,
    Callback,
    InFlight,
    Done,
}

#[derive(Debug, Clone)]
struct Slot {
    customer: i64,
    phone: u64,
    /// Not eligible before this (unix seconds): retry backoff or asked callback.
    next_at: i64,
    ready_since: i64,
    day: i32,
    week: i32,
    gen: u32,
    recency: f32,
    tz: u16,
    region: u16,
    segment: u16,
    /// Index into `legal_bounds` or `NO_BOUND`.
    bound: u8,
    state: State,
    attempts: u8,
    day_count: u8,
    week_count: u8,
    unanswered: u8,
    trunk: u8,
    how: u8,
    outcome_counts: [u8; CallOutcome::ALL.len()],
    dp_att: [u8; DAY_PARTS],
    dp_ans: [u8; DAY_PARTS],
    has_app: bool,
    pref: ChannelPref,
    consent: bool,
    sent: u8,
    /// The learned policy chose this contact's channel already.
    chosen: bool,
}

const NO_BOUND: u8 = u8::MAX;
const NO_REGION: u16 = u16::MAX;

#[derive(Debug, Clone, Copy)]
struct Entry {
    key: f64,
    idx: u32,
    gen: u32,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        self.cmp(o) == Ordering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> Ordering {
        // Higher key first; among equals the lower index (earlier added).
        self.key
            .total_cmp(&o.key)
            .then_with(|| o.idx.cmp(&self.idx))
    }
}

/// A max-priority queue of ready contacts, O(1) per operation.
///
/// Best-time: keys are bucketed on a log scale (2% resolution, FIFO inside a
/// bucket), so a pop is a deque pop instead of a heap sift through a
/// million-entry array; ranking is exact up to that resolution. FIFO: one
/// deque, as contacts become ready in time order.
#[derive(Debug)]
enum Queue {
    Fifo(VecDeque<Entry>),
    Buckets {
        buckets: Vec<VecDeque<Entry>>,
        /// Bit per bucket: non-empty. The top is the highest set bit.
        nonempty: [u64; BUCKETS / 64],
        len: usize,
    },
}

const BUCKETS: usize = 1216;
/// Buckets per unit of natural log: 50 → keys 2% apart share a bucket.
const BUCKET_SCALE: f64 = 50.0;

fn bucket_of(key: f64) -> usize {
    if key.is_nan() || key <= 0.0 {
        return 0;
    }
    let b = key.ln() * BUCKET_SCALE + (BUCKETS / 2) as f64;
    b.clamp(0.0, (BUCKETS - 1) as f64) as usize
}

impl Queue {
    fn new(policy: Policy) -> Self {
        match policy {
            Policy::Fifo => Queue::Fifo(VecDeque::new()),
            Policy::BestTime | Policy::Learned => Queue::Buckets {
                buckets: (0..BUCKETS).map(|_| VecDeque::new()).collect(),
                nonempty: [0; BUCKETS / 64],
                len: 0,
            },
        }
    }

    fn top(nonempty: &[u64; BUCKETS / 64]) -> Option<usize> {
        nonempty
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map(|(i, w)| i * 64 + 63 - w.leading_zeros() as usize)
    }

    fn insert(&mut self, e: Entry, front: bool) {
        match self {
            Queue::Fifo(q) if front => q.push_front(e),
            Queue::Fifo(q) => q.push_back(e),
            Queue::Buckets {
                buckets,
                nonempty,
                len,
            } => {
                let b = bucket_of(e.key);
                if front {
                    buckets[b].push_front(e);
                } else {
                    buckets[b].push_back(e);
                }
                nonempty[b / 64] |= 1 << (b % 64);
                *len += 1;
            }
        }
    }

    fn push(&mut self, e: Entry) {
        self.insert(e, false)
    }

    /// Put back an entry just popped, in front of its equals.
    fn push_front(&mut self, e: Entry) {
        self.insert(e, true)
    }

    fn peek(&self) -> Option<&Entry> {
        match self {
            Queue::Fifo(q) => q.front(),
            Queue::Buckets {
                buckets, nonempty, ..
            } => Self::top(nonempty).and_then(|b| buckets[b].front()),
        }
    }

    fn pop(&mut self) -> Option<Entry> {
        match self {
            Queue::Fifo(q) => q.pop_front(),
            Queue::Buckets {
                buckets,
                nonempty,
                len,
            } => {
                let b = Self::top(nonempty)?;
                let e = buckets[b].pop_front();
                if buckets[b].is_empty() {
                    nonempty[b / 64] &= !(1 << (b % 64));
                }
                if e.is_some() {
                    *len -= 1;
                }
                e
            }
        }
    }
}

struct TrunkState {
    in_flight: u32,
    tokens: f64,
    last_refill: i64,
}

struct CallerIdState {
    day: i32,
    used: u32,
}

/// Counters of what the planner did, for reports and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlannerStats {
    pub dials: u64,
    pub callback_dials: u64,
    pub gate_rejections: BTreeMap<String, u64>,
    pub finished: u64,
    pub pops: u64,
    /// Contacts moved to a better day part (best-time deferral).
    pub deferred: u64,
    /// Learned policy: contacts sent a message first instead of a call.
    pub message_first: u64,
    /// Learned policy: contacts not contacted (every choice worth less than its cost).
    pub skipped: u64,
    /// Learned policy: times the ready queues were re-keyed as the models moved.
    pub rekeys: u64,
}

pub struct Planner {
    campaign: Campaign,
    slots: Vec<Slot>,
    by_phone: HashMap<u64, u32>,
    dnc: HashSet<u64>,
    tzs: Vec<Tz>,
    regions: Vec<String>,
    /// heaps[tz][segment * parts + part]
    heaps: Vec<Vec<Queue>>,
    parts: usize,
    calendar: BTreeMap<i64, Vec<(u32, u32)>>,
    callbacks: BinaryHeap<Reverse<(i64, u32, u32)>>,
    model: AnswerModel,
    trunks: Vec<TrunkState>,
    caller_ids: Vec<CallerIdState>,
    rotation: usize,
    in_flight: u32,
    stats: PlannerStats,
    skip_minute: i64,
    /// Per (zone, segment): deferred to a better hour now.
    skip: Vec<bool>,
    /// The learned policy's models (`Policy::Learned` only).
    learner: Option<Box<Learner>>,
    /// Decisions taken inside `next_dials` (message first, skipped), for [`Planner::take_actions`].
    actions: Vec<Action>,
}

fn digits_len(mut n: u64) -> u32 {
    let mut l = 1;
    while n >= 10 {
        n /= 10;
        l += 1;
    }
    l
}

fn has_prefix(phone: u64, prefix: u64, prefix_len: u32) -> bool {
    let len = digits_len(phone);
    if len < prefix_len {
        return false;
    }
    phone / 10u64.pow(len - prefix_len) == prefix
}

fn day_number(d: NaiveDate) -> i32 {
    d.num_days_from_ce()
}

/// ISO week number as the day number of its Monday.
fn week_number(d: NaiveDate) -> i32 {
    d.num_days_from_ce() - d.weekday().num_days_from_monday() as i32
}

fn utc(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, 0).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// First instant at or after local `naive` that exists in `tz` (skips DST gaps).
fn local_to_utc(tz: Tz, naive: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut n = naive;
    for _ in 0..240 {
        match tz.from_local_datetime(&n) {
            chrono::LocalResult::Single(t) => return Some(t.with_timezone(&Utc)),
            chrono::LocalResult::Ambiguous(a, _) => return Some(a.with_timezone(&Utc)),
            chrono::LocalResult::None => n += Duration::minutes(1),
        }
    }
    None
}

impl Planner {
    pub fn new(campaign: Campaign) -> Self {
        let segs = campaign.segments.len();
        let parts = match campaign.policy {
            Policy::BestTime | Policy::Learned => DAY_PARTS,
            Policy::Fifo => 1,
        };
        let learner = (campaign.policy == Policy::Learned)
            .then(|| Box::new(Learner::new(campaign.learning.clone())));
        let model = AnswerModel::new(segs, campaign.prior_answer_rate, campaign.prior_strength);
        let trunks = campaign
            .trunks
            .iter()
            .map(|t| TrunkState {
                in_flight: 0,
                tokens: t.cps.max(1.0),
                last_refill: i64::MIN,
            })
            .collect();
        let caller_ids = campaign
            .caller_ids
            .iter()
            .map(|_| CallerIdState {
                day: i32::MIN,
                used: 0,
            })
            .collect();
        Planner {
            campaign,
            slots: Vec::new(),
            by_phone: HashMap::new(),
            dnc: HashSet::new(),
            tzs: Vec::new(),
            regions: Vec::new(),
            heaps: Vec::new(),
            parts,
            calendar: BTreeMap::new(),
            callbacks: BinaryHeap::new(),
            model,
            trunks,
            caller_ids,
            rotation: 0,
            in_flight: 0,
            stats: PlannerStats::default(),
            skip_minute: i64::MIN,
            skip: Vec::new(),
            learner,
            actions: Vec::new(),
        }
    }

    pub fn campaign(&self) -> &Campaign {
        &self.campaign
    }

    pub fn model(&self) -> &AnswerModel {
        &self.model
    }

    pub fn stats(&self) -> &PlannerStats {
        &self.stats
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn in_flight(&self) -> u32 {
        self.in_flight
    }

    /// Contacts not finished (waiting, ready, in flight or with a callback).
    pub fn pending(&self) -> usize {
        self.slots.iter().filter(|s| s.state != State::Done).count()
    }

    pub fn reserve(&mut self, n: usize) {
        self.slots.reserve(n);
        self.by_phone.reserve(n);
    }

    pub fn contact_by_phone(&self, e164: &str) -> Option<ContactRef> {
        let (d, _) = crate::config::parse_digits(e164)?;
        self.by_phone.get(&d).map(|i| ContactRef(*i))
    }

    pub fn customer(&self, c: ContactRef) -> CustomerId {
        CustomerId(self.slots[c.0 as usize].customer)
    }

    /// Add a contact; it becomes a candidate at once (the gate still decides).
    pub fn add_contact(&mut self, c: ContactInput) -> Result<ContactRef, ContactError> {
        let (phone, _) = crate::config::parse_digits(&c.phone)
            .ok_or_else(|| ContactError::BadPhone(c.customer, c.phone.clone()))?;
        let segment = self
            .campaign
            .segment_index(&c.segment)
            .ok_or_else(|| ContactError::UnknownSegment(c.customer, c.segment.clone()))?;
        if self.by_phone.contains_key(&phone) {
            return Err(ContactError::DuplicatePhone(c.customer));
        }
        let tz = match self.tzs.iter().position(|t| *t == c.tz) {
            Some(i) => i,
            None => {
                self.tzs.push(c.tz);
                self.heaps.push(
                    (0..self.campaign.segments.len() * self.parts)
                        .map(|_| Queue::new(self.campaign.policy))
                        .collect(),
                );
                self.tzs.len() - 1
            }
        };
        let region = match &c.region {
            None => NO_REGION,
            Some(r) => match self.regions.iter().position(|x| x == r) {
                Some(i) => i as u16,
                None if self.regions.len() < (NO_REGION as usize) => {
                    self.regions.push(r.clone());
                    (self.regions.len() - 1) as u16
                }
                None => NO_REGION,
            },
        };
        let bound = self
            .campaign
            .legal_bounds
            .iter()
            .position(|b| has_prefix(phone, b.prefix, b.prefix_len))
            .map(|i| i as u8)
            .unwrap_or(NO_BOUND);
        let recency = match c.recency_days {
            Some(d) => 0.5 + 0.5 * (-(d as f32) / 90.0).exp(),
            None => 0.75,
        };
        let (mut dp_att, mut dp_ans) = ([0u8; DAY_PARTS], [0u8; DAY_PARTS]);
        for h in &c.history {
            let d = day_part(h.hour as u32 % 24);
            dp_att[d] = dp_att[d].saturating_add(1);
            dp_ans[d] = dp_ans[d].saturating_add(u8::from(h.answered));
        }
        let idx = self.slots.len() as u32;
        self.slots.push(Slot {
            customer: c.customer.0,
            phone,
            next_at: i64::MIN,
            ready_since: i64::MIN,
            day: i32::MIN,
            week: i32::MIN,
            gen: 0,
            recency,
            tz: tz as u16,
            region,
            segment: segment as u16,
            bound,
            state: State::Waiting,
            attempts: 0,
            day_count: 0,
            week_count: 0,
            unanswered: 0,
            trunk: 0,
            how: 0,
            outcome_counts: [0; CallOutcome::ALL.len()],
            dp_att,
            dp_ans,
            has_app: c.has_app,
            pref: c.channel_pref,
            consent: c.consent,
            sent: 0,
            chosen: false,
        });
        if let Some(l) = self.learner.as_mut() {
            let seg_name = &self.campaign.segments[segment].name;
            l.add(&ContactFacts {
                segment: seg_name,
                has_app: c.has_app,
                recency_days: c.recency_days,
                attributes: &c.features,
            });
            // The stored log of earlier calls trains the answer head before the
            // first dial, against the hour model's rate for that day part, with
            // the customer's history as it stood at each call.
            let (mut att, mut ans, mut unans) = ([0u8; DAY_PARTS], [0u8; DAY_PARTS], 0u8);
            for h in &c.history {
                let d = day_part(h.hour as u32 % 24);
                let x = l.answer_x(idx, d, att[d], ans[d], unans);
                l.answer
                    .update(self.model.day_part_mean(segment, d), &x, h.answered);
                att[d] = att[d].saturating_add(1);
                ans[d] = ans[d].saturating_add(u8::from(h.answered));
                unans = if h.answered {
                    0
                } else {
                    unans.saturating_add(1)
                };
            }
        }
        self.by_phone.insert(phone, idx);
        self.make_ready(idx, i64::MIN);
        Ok(ContactRef(idx))
    }

    /// Start the answer model from earlier attempts (the stored history of
    /// this and other campaigns) instead of the prior alone: each attempt
    /// counts at its hour of week for its segment, as if this planner had
    /// placed it. Contacts already queued are re-ranked. Returns how many
    /// attempts taught the model (network failures and unknown segments do not).
    pub fn seed_model(&mut self, history: impl IntoIterator<Item = PastAttempt>) -> usize {
        let mut taught = 0;
        for a in history {
            if a.segment >= self.campaign.segments.len() || !teaches(a.outcome) {
                continue;
            }
            let how = weekday_index(a.local.weekday()) * 24 + a.local.hour() as usize;
            self.model
                .record(a.segment, how, a.outcome == CallOutcome::Answered);
            taught += 1;
        }
        self.model.refresh();
        // Best-time queue keys read the model's day-part means: re-key the ready contacts.
        self.rekey();
        taught
    }

    /// Re-rank every ready contact with the current models (ranked
    /// policies): the queues are rebuilt, which also drops stale entries.
    fn rekey(&mut self) {
        if self.campaign.policy == Policy::Fifo {
            return;
        }
        let policy = self.campaign.policy;
        for zone in &mut self.heaps {
            for q in zone.iter_mut() {
                *q = Queue::new(policy);
            }
        }
        for idx in 0..self.slots.len() as u32 {
            let s = &self.slots[idx as usize];
            if s.state == State::Ready {
                let since = s.ready_since;
                self.make_ready(idx, since);
            }
        }
        self.stats.rekeys += 1;
        self.skip_minute = i64::MIN;
    }

    /// A number went on a do-not-call list that applies to this campaign.
    pub fn add_dnc(&mut self, e164: &str) -> bool {
        match crate::config::parse_digits(e164) {
            Some((d, _)) => {
                self.dnc.insert(d);
                true
            }
            None => false,
        }
    }

    /// An attempt on this number by another campaign (caps are across campaigns).
    pub fn record_external_attempt(&mut self, e164: &str, at: DateTime<Utc>) {
        let Some((d, _)) = crate::config::parse_digits(e164) else {
            return;
        };
        if let Some(&i) = self.by_phone.get(&d) {
            self.count_attempt(i, at);
        }
    }

    /// An attempt this campaign made in an earlier run (the process was stopped or killed
    /// and started again), replayed in the order the attempts were made: it counts against
    /// `max_attempts` and the retry limits; a contact it reached (answered, no callback
    /// asked), or whose outcome stops retries, is finished; otherwise the contact waits
    /// out its retry delay from `ended_at` (or until the callback it asked for, when the
    /// campaign honours callbacks) as it would have in the run that made the attempt. The
    /// day and week caps come from [`Planner::record_external_attempt`].
    pub fn record_own_attempt(&mut self, a: OwnAttempt) {
        let Some((d, _)) = crate::config::parse_digits(a.e164) else {
            return;
        };
        let Some(&idx) = self.by_phone.get(&d) else {
            return;
        };
        let oi = outcome_index(a.outcome);
        let s = &mut self.slots[idx as usize];
        s.attempts = s.attempts.saturating_add(1);
        s.outcome_counts[oi] = s.outcome_counts[oi].saturating_add(1);
        if s.state == State::Done {
            return;
        }
        let attempts_left = (s.attempts as u32) < self.campaign.max_attempts;
        if let (Some(at), true, true) =
            (a.callback_at, self.campaign.honour_callbacks, attempts_left)
        {
            s.next_at = s.next_at.max(at.timestamp());
            return;
        }
        let policy = if a.abandoned {
            self.campaign.retry[outcome_index(CallOutcome::Busy)]
        } else {
            self.campaign.retry[oi]
        };
        let reached = a.outcome == CallOutcome::Answered && !a.abandoned;
        let done = reached
            || match policy {
                Retry::Stop => true,
                Retry::After { secs, max } => {
                    let over = max.is_some_and(|m| s.outcome_counts[oi] as u32 > m);
                    if !over {
                        s.next_at = s.next_at.max(a.ended_at.timestamp() + secs);
                    }
                    over
                }
            };
        if done {
            self.finish(idx, "earlier_run", &mut Vec::new());
        }
    }

    fn count_attempt(&mut self, idx: u32, at: DateTime<Utc>) {
        let s = &mut self.slots[idx as usize];
        let local = at.with_timezone(&self.tzs[s.tz as usize]).date_naive();
        let (day, week) = (day_number(local), week_number(local));
        if s.day != day {
            s.day = day;
            s.day_count = 0;
        }
        if s.week != week {
            s.week = week;
            s.week_count = 0;
        }
        s.day_count = s.day_count.saturating_add(1);
        s.week_count = s.week_count.saturating_add(1);
    }

    fn dnc_listed(&self, phone: u64) -> bool {
        self.dnc.contains(&phone)
            || self
                .campaign
                .dnc_prefixes
                .iter()
                .any(|&(p, l)| has_prefix(phone, p, l))
            || self
                .campaign
                .dnc_ranges
                .iter()
                .any(|r| r.from <= phone && phone <= r.to)
    }

    /// The one eligibility gate. Every emitted dial passed it at `now`.
    pub fn eligibility(&self, c: ContactRef, now: DateTime<Utc>) -> Result<(), Ineligible> {
        let s = &self.slots[c.0 as usize];
        self.check(s, now, &now.with_timezone(&self.tzs[s.tz as usize]))
    }

    fn check(&self, s: &Slot, now: DateTime<Utc>, local: &DateTime<Tz>) -> Result<(), Ineligible> {
        match s.state {
            State::InFlight => return Err(Ineligible::InFlight),
            State::Done => return Err(Ineligible::Finished),
            _ => {}
        }
        let c = &self.campaign;
        if c.consent_required && !s.consent {
            return Err(Ineligible::NoConsent);
        }
        if self.dnc_listed(s.phone) {
            return Err(Ineligible::Dnc);
        }
        if s.attempts as u32 >= c.max_attempts {
            return Err(Ineligible::MaxAttempts);
        }
        if let Some((from, to)) = c.active {
            let d = now.with_timezone(&c.timezone).date_naive();
            if d < from || d > to {
                return Err(Ineligible::NotActive);
            }
        }
        let date = local.date_naive();
        if c.holidays.contains(&date) {
            return Err(Ineligible::Holiday);
        }
        let sec = local.num_seconds_from_midnight();
        if !c.windows[weekday_index(local.weekday())]
            .iter()
            .any(|w| w.contains(sec))
        {
            return Err(Ineligible::OutsideWindow);
        }
        if s.bound != NO_BOUND && !c.legal_bounds[s.bound as usize].window.contains(sec) {
            return Err(Ineligible::OutsideWindow);
        }
        if let Some(cap) = c.per_number_per_day {
            if s.day == day_number(date) && s.day_count as u32 >= cap {
                return Err(Ineligible::DailyCap);
            }
        }
        if let Some(cap) = c.per_number_per_week {
            if s.week == week_number(date) && s.week_count as u32 >= cap {
                return Err(Ineligible::WeeklyCap);
            }
        }
        if s.next_at > now.timestamp() {
            return Err(Ineligible::Backoff);
        }
        Ok(())
    }

    /// The first instant at or after `from` when the contact's window (and
    /// legal bound) is open on a non-holiday, active day. `None`: never again.
    fn next_open(&self, idx: u32, from: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let s = &self.slots[idx as usize];
        let tz = self.tzs[s.tz as usize];
        let c = &self.campaign;
        let start_date = from.with_timezone(&tz).date_naive();
        for off in 0..400 {
            let date = start_date + Duration::days(off);
            if c.holidays.contains(&date) {
                continue;
            }
            if let Some((_, to)) = c.active {
                // Active dates are in the campaign's zone; one day of slack
                // for zone differences, the gate has the last word.
                if date > to + Duration::days(1) {
                    return None;
                }
            }
            for w in &c.windows[weekday_index(date.weekday())] {
                let (mut a, mut b) = (w.start, w.end);
                if s.bound != NO_BOUND {
                    let lb = c.legal_bounds[s.bound as usize].window;
                    a = a.max(lb.start);
                    b = b.min(lb.end);
                    if a >= b {
                        continue;
                    }
                }
                let open =
                    local_to_utc(tz, date.and_hms_opt(0, 0, 0)? + Duration::seconds(a as i64))?;
                let close =
                    local_to_utc(tz, date.and_hms_opt(0, 0, 0)? + Duration::seconds(b as i64))?;
                if close > from {
                    return Some(open.max(from));
                }
            }
        }
        None
    }

    fn key(&self, idx: u32, part: usize) -> f64 {
        let s = &self.slots[idx as usize];
        match self.campaign.policy {
            Policy::Fifo => -(s.ready_since as f64),
            Policy::BestTime => {
                let seg = s.segment as usize;
                let mult = self.customer_factor(idx, part);
                let decay = 0.9f64.powi(s.attempts as i32);
                self.campaign.segments[seg].value * s.recency as f64 * decay * mult
            }
            Policy::Learned => {
                let seg = s.segment as usize;
                let decay = 0.9f64.powi(s.attempts as i32);
                let p_conv = self
                    .learner
                    .as_ref()
                    .map(|l| l.convert.predict(l.static_x(idx)))
                    .unwrap_or(1.0);
                self.campaign.segments[seg].value * decay * self.customer_factor(idx, part) * p_conv
            }
        }
    }

    /// The customer's factor on the segment's answer rate in a day part:
    /// best-time's Beta posterior from their own attempts, or the learned
    /// answer model.
    fn customer_factor(&self, idx: u32, part: usize) -> f64 {
        let s = &self.slots[idx as usize];
        match (&self.learner, self.campaign.policy) {
            (Some(l), Policy::Learned) => l.answer.factor(&l.answer_x(
                idx,
                part,
                s.dp_att[part],
                s.dp_ans[part],
                s.unanswered,
            )),
            _ => self.model.customer_multiplier(
                s.segment as usize,
                part,
                s.dp_att[part],
                s.dp_ans[part],
            ),
        }
    }

    fn make_ready(&mut self, idx: u32, now: i64) {
        let (tz, seg, gen) = {
            let s = &mut self.slots[idx as usize];
            s.state = State::Ready;
            s.ready_since = now;
            (s.tz as usize, s.segment as usize, s.gen)
        };
        for part in 0..self.parts {
            let key = self.key(idx, part);
            self.heaps[tz][seg * self.parts + part].push(Entry { key, idx, gen });
        }
    }

    fn schedule(&mut self, idx: u32, at: i64) {
        let s = &mut self.slots[idx as usize];
        s.gen = s.gen.wrapping_add(1);
        s.state = State::Waiting;
        let gen = s.gen;
        self.calendar
            .entry(at.div_euclid(60))
            .or_default()
            .push((idx, gen));
    }

    fn finish(&mut self, idx: u32, reason: &'static str, actions: &mut Vec<Action>) {
        let s = &mut self.slots[idx as usize];
        s.state = State::Done;
        s.gen = s.gen.wrapping_add(1);
        self.stats.finished += 1;
        actions.push(Action::Finished {
            customer: CustomerId(s.customer),
            reason,
        });
    }

    /// Move a contact the gate refused to where it will next be looked at.
    fn park(&mut self, idx: u32, why: Ineligible, now: DateTime<Utc>) {
        *self
            .stats
            .gate_rejections
            .entry(format!("{why:?}"))
            .or_default() += 1;
        let mut sink = Vec::new();
        match why {
            Ineligible::InFlight => {}
            Ineligible::Finished => {}
            Ineligible::NoConsent => self.finish(idx, "no_consent", &mut sink),
            Ineligible::Dnc => self.finish(idx, "dnc", &mut sink),
            Ineligible::MaxAttempts => self.finish(idx, "max_attempts", &mut sink),
            Ineligible::Backoff => {
                let at = self.slots[idx as usize].next_at;
                self.schedule(idx, at);
            }
            Ineligible::DailyCap | Ineligible::WeeklyCap => {
                let s = &self.slots[idx as usize];
                let tz = self.tzs[s.tz as usize];
                let local = now.with_timezone(&tz).date_naive();
                let days = if why == Ineligible::DailyCap {
                    1
                } else {
                    7 - local.weekday().num_days_from_monday() as i64
                };
                let next_day = local + Duration::days(days);
                let at = next_day
                    .and_hms_opt(0, 0, 0)
                    .and_then(|n| local_to_utc(tz, n));
                match at.and_then(|t| self.next_open(idx, t)) {
                    Some(t) => self.schedule(idx, t.timestamp()),
                    None => self.finish(idx, "campaign_over", &mut sink),
                }
            }
            Ineligible::NotActive | Ineligible::Holiday | Ineligible::OutsideWindow => {
                let from = if why == Ineligible::NotActive {
                    match self.campaign.active {
                        Some((from, _))
                            if now.with_timezone(&self.campaign.timezone).date_naive() < from =>
                        {
                            from.and_hms_opt(0, 0, 0)
                                .and_then(|n| local_to_utc(self.campaign.timezone, n))
                                .unwrap_or(now)
                        }
                        _ => {
                            self.finish(idx, "campaign_over", &mut sink);
                            return;
                        }
                    }
                } else {
                    now + Duration::seconds(1)
                };
                match self.next_open(idx, from) {
                    // Never earlier than a minute ahead: the gate refused now.
                    Some(t) => self.schedule(idx, t.timestamp().max(now.timestamp() + 60)),
                    None => self.finish(idx, "campaign_over", &mut sink),
                }
            }
        }
    }

    fn refill(&mut self, now: DateTime<Utc>) {
        let ms = now.timestamp_millis();
        for (t, cfg) in self.trunks.iter_mut().zip(&self.campaign.trunks) {
            if t.last_refill != i64::MIN && ms > t.last_refill {
                t.tokens = (t.tokens + cfg.cps * (ms - t.last_refill) as f64 / 1000.0)
                    .min(cfg.cps.max(1.0));
            }
            t.last_refill = ms.max(t.last_refill);
        }
    }

    fn pick_trunk(&self) -> Option<usize> {
        let mut best: Option<(usize, u32)> = None;
        for (i, (t, cfg)) in self.trunks.iter().zip(&self.campaign.trunks).enumerate() {
            if t.in_flight < cfg.channels && t.tokens >= 1.0 {
                let free = cfg.channels - t.in_flight;
                if best.is_none_or(|(_, f)| free > f) {
                    best = Some((i, free));
                }
            }
        }
        best.map(|(i, _)| i)
    }

    /// Local presence first (same city, then same province — see
    /// [`place_rank`] — then the longest shared number prefix of at least
    /// country code + 2 digits), rotating among equals, skipping numbers at
    /// their daily cap. `Err` when every number is capped.
    fn pick_caller_id(&mut self, idx: u32, now: DateTime<Utc>) -> Result<Option<usize>, ()> {
        let n = self.campaign.caller_ids.len();
        if n == 0 {
            return Ok(None);
        }
        let today = day_number(now.with_timezone(&self.campaign.timezone).date_naive());
        let s = &self.slots[idx as usize];
        let region = (s.region != NO_REGION).then(|| self.regions[s.region as usize].as_str());
        let mut best: Option<(u32, usize)> = None;
        for k in 0..n {
            let i = (self.rotation + k) % n;
            let cid = &self.campaign.caller_ids[i];
            let st = &self.caller_ids[i];
            let used = if st.day == today { st.used } else { 0 };
            if cid.daily_cap.is_some_and(|cap| used >= cap) {
                continue;
            }
            let mut rank = 0;
            if self.campaign.local_presence {
                rank = match (region, cid.region.as_deref()) {
                    (Some(r), Some(c)) => place_rank(r, c),
                    _ => 0,
                };
                if rank == 0 {
                    let shared = shared_prefix(cid.digits, s.phone);
                    if shared >= 4 {
                        rank = shared;
                    }
                }
            }
            if best.is_none_or(|(r, _)| rank > r) {
                best = Some((rank, i));
            }
        }
        let (_, i) = best.ok_or(())?;
        self.rotation = (i + 1) % n;
        let st = &mut self.caller_ids[i];
        if st.day != today {
            st.day = today;
            st.used = 0;
        }
        st.used += 1;
        Ok(Some(i))
    }

    fn drain_calendar(&mut self, now: i64) {
        let due = now.div_euclid(60);
        while let Some(entry) = self.calendar.first_entry() {
            if *entry.key() > due {
                break;
            }
            for (idx, gen) in entry.remove() {
                let s = &self.slots[idx as usize];
                if s.gen == gen && s.state == State::Waiting {
                    self.make_ready(idx, now);
                }
            }
        }
    }

    /// Up to `free_capacity` dials to place now, best first; callbacks the
    /// callees asked for come before everything else.
    pub fn next_dials(&mut self, now: DateTime<Utc>, free_capacity: usize) -> Vec<Dial> {
        let mut out = Vec::new();
        let ts = now.timestamp();
        self.drain_calendar(ts);
        self.refill(now);
        if free_capacity == 0 {
            return out;
        }
        // Asked-for callbacks first, at their time.
        let mut deferred = Vec::new();
        while out.len() < free_capacity {
            let Some(&Reverse((at, idx, gen))) = self.callbacks.peek() else {
                break;
            };
            if at > ts {
                break;
            }
            self.callbacks.pop();
            let s = &self.slots[idx as usize];
            if s.gen != gen || s.state != State::Callback {
                continue;
            }
            let tz = self.tzs[s.tz as usize];
            match self.try_dial(idx, now, true, 0.0) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {
                    // No trunk or caller ID now: keep it first in line.
                    deferred.push(Reverse((at, idx, gen)));
                    break;
                }
                Err(why) => match why {
                    Ineligible::OutsideWindow
                    | Ineligible::Holiday
                    | Ineligible::DailyCap
                    | Ineligible::WeeklyCap => {
                        // Honour it at the first compliant moment after.
                        let from = if matches!(why, Ineligible::DailyCap | Ineligible::WeeklyCap) {
                            let next = now.with_timezone(&tz).date_naive() + Duration::days(1);
                            next.and_hms_opt(0, 0, 0)
                                .and_then(|n| local_to_utc(tz, n))
                                .unwrap_or(now)
                        } else {
                            now + Duration::seconds(60)
                        };
                        match self.next_open(idx, from) {
                            Some(t) => {
                                deferred.push(Reverse((t.timestamp().max(ts + 60), idx, gen)))
                            }
                            None => self.park(idx, Ineligible::NotActive, now),
                        }
                    }
                    other => self.park(idx, other, now),
                },
            }
        }
        self.callbacks.extend(deferred);
        if out.len() >= free_capacity {
            return out;
        }
        // Which zones are open now, and the hour of week / day part there.
        let mut open: Vec<(usize, usize, usize)> = Vec::new();
        for (z, tz) in self.tzs.iter().enumerate() {
            let local = now.with_timezone(tz);
            let sec = local.num_seconds_from_midnight();
            let wd = weekday_index(local.weekday());
            if self.campaign.holidays.contains(&local.date_naive())
                || !self.campaign.windows[wd].iter().any(|w| w.contains(sec))
            {
                continue;
            }
            let hour = local.hour();
            let part = if self.parts == 1 { 0 } else { day_part(hour) };
            open.push((z, wd * 24 + hour as usize, part));
        }
        let segs = self.campaign.segments.len();
        // Best-time deferral: a segment whose rate now is well below its best
        // open hour within the next day waits for that hour. Recomputed once
        // a (virtual) minute: the model moves slowly.
        let minute = ts.div_euclid(60);
        if self.skip_minute != minute || self.skip.len() != self.tzs.len() * segs {
            self.skip_minute = minute;
            self.skip = self.deferred_segments(&open);
        }
        'fill: while out.len() < free_capacity {
            // Best head among the open zones' heaps for the current day part.
            let mut best: Option<(f64, usize, usize, f64)> = None; // (score, zone, heap, p)
            for &(z, how, part) in &open {
                for seg in 0..segs {
                    if self.skip[z * segs + seg] {
                        continue;
                    }
                    let h = seg * self.parts + part;
                    // Drop stale heads.
                    while let Some(top) = self.heaps[z][h].peek() {
                        let s = &self.slots[top.idx as usize];
                        if s.gen == top.gen && s.state == State::Ready {
                            break;
                        }
                        self.heaps[z][h].pop();
                    }
                    let Some(top) = self.heaps[z][h].peek() else {
                        continue;
                    };
                    let (score, p) = match self.campaign.policy {
                        Policy::Fifo => (top.key, 0.0),
                        Policy::BestTime | Policy::Learned => {
                            let p = self.model.segment(seg, how);
                            (top.key * p, p)
                        }
                    };
                    if best.is_none_or(|(b, ..)| score > b) {
                        best = Some((score, z, h, p));
                    }
                }
            }
            let Some((_, z, h, p_seg)) = best else { break };
            let Some(top) = self.heaps[z][h].pop() else {
                break;
            };
            self.stats.pops += 1;
            let p = match self.campaign.policy {
                Policy::Fifo => 0.0,
                Policy::BestTime | Policy::Learned => {
                    (p_seg * self.customer_factor(top.idx, h % self.parts)).min(1.0)
                }
            };
            if let Some(at) = self.better_day_part(top.idx, h % self.parts, now) {
                self.stats.deferred += 1;
                self.schedule(top.idx, at);
                continue;
            }
            if self.learner.is_some() && !self.slots[top.idx as usize].chosen {
                // Learned policy, first time up: call, message first, or no contact.
                // The gate still has the last word on the message: it is only
                // decided for a contact the gate would let us call now.
                if let Err(why) = self.eligibility(ContactRef(top.idx), now) {
                    self.park(top.idx, why, now);
                    continue;
                }
                self.slots[top.idx as usize].chosen = true;
                match self.choice(top.idx) {
                    Choice::Call => {}
                    // A customer who does not take that channel is called instead.
                    Choice::MessageFirst if !self.message_first_allowed(top.idx) => {}
                    Choice::MessageFirst => {
                        self.message_first(top.idx, now);
                        continue;
                    }
                    Choice::Skip => {
                        self.stats.skipped += 1;
                        let mut acts = Vec::new();
                        self.finish(top.idx, "not_worthwhile", &mut acts);
                        self.actions.extend(acts);
                        continue;
                    }
                }
            }
            match self.try_dial(top.idx, now, false, p) {
                Ok(Some(d)) => out.push(d),
                Ok(None) => {
                    // Out of trunk capacity or caller IDs: put it back, stop.
                    self.heaps[z][h].push_front(top);
                    break 'fill;
                }
                Err(why) => self.park(top.idx, why, now),
            }
        }
        out
    }

    /// Best-time deferral of one customer: when their expected answer rate in
    /// the current day part is below `defer_below` × that of their best day
    /// part (segment mean × their own multiplier), the start of that day part
    /// (its next opening) — else `None`.
    fn better_day_part(&self, idx: u32, part: usize, now: DateTime<Utc>) -> Option<i64> {
        if self.campaign.policy == Policy::Fifo
            || self.campaign.defer_below <= 0.0
            || self.parts != DAY_PARTS
        {
            return None;
        }
        let s = &self.slots[idx as usize];
        let seg = s.segment as usize;
        let rate = |d: usize| self.model.day_part_mean(seg, d) * self.customer_factor(idx, d);
        let now_p = rate(part);
        let (best_d, best_p) = (0..DAY_PARTS)
            .map(|d| (d, rate(d)))
            .fold((part, now_p), |a, b| if b.1 > a.1 { b } else { a });
        if best_d == part || now_p >= self.campaign.defer_below * best_p {
            return None;
        }
        let tz = self.tzs[s.tz as usize];
        let local = now.with_timezone(&tz);
        const STARTS: [u32; DAY_PARTS] = [0, 12, 17];
        let mut date = local.date_naive();
        if local.hour() >= STARTS[best_d] {
            date += Duration::days(1);
        }
        let start = local_to_utc(tz, date.and_hms_opt(STARTS[best_d], 0, 0)?)?;
        let at = self.next_open(idx, start)?;
        Some(at.timestamp().max(now.timestamp() + 60))
    }

    fn deferred_segments(&self, open: &[(usize, usize, usize)]) -> Vec<bool> {
        let segs = self.campaign.segments.len();
        let mut skip = vec![false; self.tzs.len() * segs];
        if self.campaign.policy == Policy::Fifo || self.campaign.defer_below <= 0.0 {
            return skip;
        }
        for &(z, how, _) in open {
            for seg in 0..segs {
                let now_p = self.model.segment(seg, how);
                let mut best = now_p;
                for k in 1..24 {
                    let h = (how + k) % crate::model::HOURS;
                    let (wd, hour) = (h / 24, (h % 24) as u32);
                    // Only an hour the data speaks for is worth waiting for: an
                    // hour nobody has called yet is the prior, and deferring to
                    // it on the first outcomes of this hour starves the campaign
                    // (the forecast showed 6% reached instead of 75% in two
                    // days at 40 lines on a list without history).
                    let known = self.model.attempts(h) >= self.campaign.prior_strength;
                    if known
                        && self.campaign.windows[wd]
                            .iter()
                            .any(|w| w.start < (hour + 1) * 3600 && w.end > hour * 3600)
                    {
                        best = best.max(self.model.segment(seg, h));
                    }
                }
                skip[z * segs + seg] = now_p < self.campaign.defer_below * best;
            }
        }
        skip
    }

    /// Gate, then resources; `Ok(None)` when the contact is fine but no trunk
    /// or caller ID is available.
    fn try_dial(
        &mut self,
        idx: u32,
        now: DateTime<Utc>,
        callback: bool,
        p: f64,
    ) -> Result<Option<Dial>, Ineligible> {
        let s = &self.slots[idx as usize];
        let tz = self.tzs[s.tz as usize];
        let local = now.with_timezone(&tz);
        self.check(s, now, &local)?;
        let Some(trunk) = self.pick_trunk() else {
            return Ok(None);
        };
        let Ok(caller_id) = self.pick_caller_id(idx, now) else {
            return Ok(None);
        };
        self.count_attempt(idx, now);
        let t = &mut self.trunks[trunk];
        t.in_flight += 1;
        t.tokens -= 1.0;
        self.in_flight += 1;
        self.stats.dials += 1;
        if callback {
            self.stats.callback_dials += 1;
        }
        let s = &mut self.slots[idx as usize];
        s.state = State::InFlight;
        s.gen = s.gen.wrapping_add(1);
        s.attempts = s.attempts.saturating_add(1);
        s.trunk = trunk as u8;
        s.how = (weekday_index(local.weekday()) * 24 + local.hour() as usize) as u8;
        Ok(Some(Dial {
            contact: ContactRef(idx),
            customer: CustomerId(s.customer),
            phone: s.phone,
            tz,
            local_time: local,
            segment: s.segment as usize,
            trunk,
            caller_id,
            callback,
            p_answer: p,
        }))
    }

    /// An attempt ended. Learns, schedules the retry or callback, and returns
    /// what else to do (fallback messages, DNC, finished).
    pub fn on_outcome(&mut self, now: DateTime<Utc>, c: ContactRef, r: Report) -> Vec<Action> {
        let mut actions = Vec::new();
        let idx = c.0;
        let Some(s) = self.slots.get(idx as usize) else {
            return actions;
        };
        if s.state != State::InFlight {
            return actions;
        }
        let trunk = s.trunk as usize;
        if let Some(t) = self.trunks.get_mut(trunk) {
            t.in_flight = t.in_flight.saturating_sub(1);
        }
        self.in_flight = self.in_flight.saturating_sub(1);
        let answered = r.outcome == CallOutcome::Answered;
        let (seg, how) = (s.segment as usize, s.how as usize);
        if let Some(l) = self.learner.as_mut() {
            // The learned heads see the features as they were when the call was placed.
            let s = &self.slots[idx as usize];
            let part = day_part((how % 24) as u32);
            if teaches(r.outcome) {
                let x = l.answer_x(idx, part, s.dp_att[part], s.dp_ans[part], s.unanswered);
                l.answer.update(self.model.segment(seg, how), &x, answered);
            }
            if answered && !r.abandoned {
                let x = l.static_x(idx).to_vec();
                l.convert.update(&x, r.converted);
            }
            l.since_rekey += 1;
            if l.since_rekey >= (self.slots.len() as u64 / 5).max(5_000) {
                l.since_rekey = 0;
                self.rekey();
            }
        }
        if teaches(r.outcome) {
            // Only outcomes that say something about the callee teach the model.
            self.model.record(seg, how, answered);
            let part = day_part((how % 24) as u32);
            let s = &mut self.slots[idx as usize];
            s.dp_att[part] = s.dp_att[part].saturating_add(1);
            if answered {
                s.dp_ans[part] = s.dp_ans[part].saturating_add(1);
            }
        }
        let customer = CustomerId(self.slots[idx as usize].customer);
        let s = &mut self.slots[idx as usize];
        let oi = outcome_index(r.outcome);
        s.outcome_counts[oi] = s.outcome_counts[oi].saturating_add(1);
        s.unanswered = if answered && !r.abandoned {
            0
        } else {
            s.unanswered.saturating_add(1)
        };
        // Fallback to other channels after N unanswered attempts, each rule once.
        if !answered || r.abandoned {
            let (unanswered, has_app, pref) = (s.unanswered as u32, s.has_app, s.pref);
            for (i, f) in self.campaign.fallback.iter().enumerate() {
                let bit = 1u8 << (i.min(7));
                let s = &mut self.slots[idx as usize];
                if unanswered >= f.after_unanswered
                    && s.sent & bit == 0
                    && (!f.only_with_app || has_app)
                    && pref.allows(f.channel, has_app)
                {
                    s.sent |= bit;
                    actions.push(Action::SendMessage {
                        customer,
                        channel: match f.channel {
                            FallbackChannel::Sms => "sms",
                            FallbackChannel::Push => "push",
                        },
                        template: f.template.clone(),
                    });
                }
            }
        }
        if r.do_not_call {
            if let Some(&phone) = self.slots.get(idx as usize).map(|s| &s.phone) {
                self.dnc.insert(phone);
            }
            actions.push(Action::AddDnc { customer });
            self.finish(idx, "do_not_call", &mut actions);
            return actions;
        }
        let s = &self.slots[idx as usize];
        let attempts_left = (s.attempts as u32) < self.campaign.max_attempts;
        if let (Some(at), true) = (r.callback_at, self.campaign.honour_callbacks) {
            if attempts_left {
                let at = at.max(now);
                let s = &mut self.slots[idx as usize];
                s.gen = s.gen.wrapping_add(1);
                s.state = State::Callback;
                s.next_at = at.timestamp();
                let gen = s.gen;
                self.callbacks.push(Reverse((at.timestamp(), idx, gen)));
                actions.push(Action::CallbackScheduled { customer, at });
                return actions;
            }
        }
        if answered && !r.abandoned {
            self.finish(idx, "reached", &mut actions);
            return actions;
        }
        let policy = if r.abandoned {
            self.campaign.retry[outcome_index(CallOutcome::Busy)]
        } else {
            self.campaign.retry[oi]
        };
        match policy {
            Retry::Stop => self.finish(idx, r.outcome.as_str(), &mut actions),
            Retry::After { secs, max } => {
                let s = &self.slots[idx as usize];
                if !attempts_left {
                    self.finish(idx, "max_attempts", &mut actions);
                } else if max.is_some_and(|m| s.outcome_counts[oi] as u32 > m) {
                    self.finish(idx, "max_retries", &mut actions);
                } else {
                    let at = now.timestamp() + secs;
                    self.slots[idx as usize].next_at = at;
                    self.schedule(idx, at);
                }
            }
        }
        actions
    }

    /// Model probability this contact answers at `at` (for tests and reports).
    pub fn p_answer(&self, c: ContactRef, at: DateTime<Utc>) -> f64 {
        let s = &self.slots[c.0 as usize];
        let local = at.with_timezone(&self.tzs[s.tz as usize]);
        let how = weekday_index(local.weekday()) * 24 + local.hour() as usize;
        let part = day_part(local.hour());
        let m = self.customer_factor(c.0, part);
        self.model.probability(s.segment as usize, how, m)
    }

    /// The learned policy's choice for a contact now (the models move).
    fn choice(&self, idx: u32) -> Choice {
        self.evaluate(idx).map(|e| e.choice).unwrap_or(Choice::Call)
    }

    fn evaluate(&self, idx: u32) -> Option<Explanation> {
        let l = self.learner.as_ref()?;
        let s = &self.slots[idx as usize];
        let seg = s.segment as usize;
        let rates: [f64; DAY_PARTS] = std::array::from_fn(|d| {
            (self.model.day_part_mean(seg, d) * self.customer_factor(idx, d)).min(0.95)
        });
        let best_day_part = (0..DAY_PARTS)
            .max_by(|&a, &b| rates[a].total_cmp(&rates[b]))
            .unwrap_or(0);
        let explore = explores(s.customer, l.settings.explore);
        let (choice, p_convert, p_message, ev_call, ev_message_first) = l.choose(
            idx,
            rates,
            self.campaign.segments[seg].value,
            self.campaign.max_attempts,
            explore,
        );
        let ax = l.answer_x(
            idx,
            best_day_part,
            s.dp_att[best_day_part],
            s.dp_ans[best_day_part],
            s.unanswered,
        );
        Some(Explanation {
            p_answer_best: rates[best_day_part],
            best_day_part,
            p_convert,
            p_message,
            ev_call,
            ev_message_first,
            choice,
            answer_features: l.answer.explain(&ax, l.names(), 5),
            convert_features: l.convert.explain(l.static_x(idx), l.names(), 5),
        })
    }

    /// Why the learned policy ranks and handles this contact as it does:
    /// probabilities, expected values, the choice and the top features.
    /// `None` under the other policies.
    pub fn explain(&self, c: ContactRef) -> Option<Explanation> {
        if c.0 as usize >= self.slots.len() {
            return None;
        }
        self.evaluate(c.0)
    }

    fn message_first_allowed(&self, idx: u32) -> bool {
        let s = &self.slots[idx as usize];
        self.learner
            .as_ref()
            .and_then(|l| l.settings.message_first.as_ref())
            .is_some_and(|m| s.pref.allows(m.channel, s.has_app))
    }

    fn message_first(&mut self, idx: u32, now: DateTime<Utc>) {
        let Some(m) = self
            .learner
            .as_ref()
            .and_then(|l| l.settings.message_first.clone())
        else {
            return;
        };
        self.stats.message_first += 1;
        let customer = CustomerId(self.slots[idx as usize].customer);
        self.actions.push(Action::SendMessage {
            customer,
            channel: m.channel.as_str(),
            template: m.template,
        });
        let at = now.timestamp() + m.wait_secs;
        self.slots[idx as usize].next_at = at;
        self.schedule(idx, at);
    }

    /// Decisions `next_dials` took besides dials (messages sent first,
    /// contacts not worth contacting), for the runtime to carry out and log.
    pub fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.actions)
    }

    /// What became of a message the learned policy sent first: converted
    /// (the task is done: no call) or not (the call follows after the wait).
    /// Teaches the message model. Other policies: only finishes a converted contact.
    pub fn on_message_result(&mut self, c: ContactRef, converted: bool) -> Vec<Action> {
        let mut actions = Vec::new();
        let idx = c.0;
        let Some(s) = self.slots.get(idx as usize) else {
            return actions;
        };
        let state = s.state;
        if let Some(l) = self.learner.as_mut() {
            let x = l.static_x(idx).to_vec();
            l.message.update(&x, converted);
        }
        if converted && matches!(state, State::Waiting | State::Ready) {
            self.finish(idx, "converted", &mut actions);
        }
        actions
    }

    /// E.164 with `+` of a dial's number.
    pub fn e164(phone: u64) -> String {
        format!("+{phone}")
    }

    /// The caller ID number of a dial, if any.
    pub fn caller_id_number(&self, d: &Dial) -> Option<&str> {
        d.caller_id
            .map(|i| self.campaign.caller_ids[i].number.as_str())
    }

    /// Where a contact stands at `now` (a cluster node asks after each decision which
    /// contacts to finish, hand back or keep). A ready contact whose calling window is closed
    /// is `Waiting` for the window's next opening.
    pub fn status(&self, c: ContactRef, now: DateTime<Utc>) -> Option<ContactStatus> {
        let s = self.slots.get(c.0 as usize)?;
        Some(match s.state {
            State::Ready => match self.eligibility(c, now) {
                Err(Ineligible::OutsideWindow | Ineligible::Holiday) => {
                    match self.next_open(c.0, now) {
                        Some(at) => ContactStatus::Waiting(at),
                        None => ContactStatus::Done,
                    }
                }
                _ => ContactStatus::Ready,
            },
            State::InFlight => ContactStatus::InFlight,
            // The calendar entry that readies it again (scanned: a cluster node holds few).
            State::Waiting => {
                let entry = self
                    .calendar
                    .iter()
                    .find(|(_, v)| v.contains(&(c.0, s.gen)))
                    .map_or(s.next_at, |(m, _)| (m * 60).max(s.next_at));
                ContactStatus::Waiting(utc(entry))
            }
            State::Callback => ContactStatus::Callback(utc(s.next_at)),
            State::Done => ContactStatus::Done,
        })
    }

    /// Attempts made before this planner got the contact (by other nodes, or earlier runs),
    /// so `max_attempts` counts them. Call it right after [`Planner::add_contact`].
    pub fn set_prior_attempts(&mut self, c: ContactRef, n: u32) {
        if let Some(s) = self.slots.get_mut(c.0 as usize) {
            s.attempts = n.min(u8::MAX as u32) as u8;
        }
    }

    /// A callback the callee asked for on a call this planner did not place (a cluster node
    /// learns it from its lease): the contact waits for `at`, then goes ahead of the others as
    /// if this planner had heard the request. `false` (nothing changes) when the campaign does
    /// not honour callbacks, or the contact is in flight or finished. Call it right after
    /// [`Planner::add_contact`] and [`Planner::set_prior_attempts`].
    pub fn set_callback(&mut self, c: ContactRef, at: DateTime<Utc>) -> bool {
        if !self.campaign.honour_callbacks {
            return false;
        }
        let Some(s) = self.slots.get_mut(c.0 as usize) else {
            return false;
        };
        if !matches!(s.state, State::Ready | State::Waiting | State::Callback) {
            return false;
        }
        s.gen = s.gen.wrapping_add(1);
        s.state = State::Callback;
        s.next_at = at.timestamp();
        let gen = s.gen;
        self.callbacks.push(Reverse((at.timestamp(), c.0, gen)));
        true
    }

    /// The contact leaves this planner without an outcome: another node may take it now (a
    /// cluster node hands back what it will not dial soon), or the shared gate refused the
    /// dial [`Planner::next_dials`] just made (nothing went out: its trunk channel and CPS
    /// token come back). Its number may be added again later. `false` for an unknown one.
    pub fn release(&mut self, c: ContactRef) -> bool {
        let Some(s) = self.slots.get_mut(c.0 as usize) else {
            return false;
        };
        let was = s.state;
        let (phone, trunk) = (s.phone, s.trunk as usize);
        s.state = State::Done;
        s.gen = s.gen.wrapping_add(1);
        if was == State::InFlight {
            s.attempts = s.attempts.saturating_sub(1);
            s.day_count = s.day_count.saturating_sub(1);
            s.week_count = s.week_count.saturating_sub(1);
            if let Some(t) = self.trunks.get_mut(trunk) {
                t.in_flight = t.in_flight.saturating_sub(1);
                t.tokens += 1.0;
            }
            self.in_flight = self.in_flight.saturating_sub(1);
            self.stats.dials = self.stats.dials.saturating_sub(1);
        }
        if self.by_phone.get(&phone) == Some(&c.0) {
            self.by_phone.remove(&phone);
        }
        true
    }

    /// When the next calendar or callback entry falls due (the runtime may sleep until then).
    pub fn next_wakeup(&self) -> Option<DateTime<Utc>> {
        let cal = self.calendar.keys().next().map(|m| m * 60);
        let cb = self.callbacks.peek().map(|Reverse((t, ..))| *t);
        match (cal, cb) {
            (Some(a), Some(b)) => Some(utc(a.min(b))),
            (a, b) => a.or(b).map(utc),
        }
    }
}

/// How local a caller ID's region is to a customer's: 2000 for the same city,
/// 1000 for the same province, 0 otherwise. Regions are `province/city`
/// (`广东/深圳`, what the import stores and what caller IDs get from the
/// 号段归属地 table) or one name, a province or a city (`北京`, `深圳`, as a
/// campaign file may write it); one name matches the other side's city or
/// province. A bare country code (`CN`) never matches.
pub fn place_rank(customer: &str, caller: &str) -> u32 {
    let split = |r: &str| -> Option<(String, Option<String>)> {
        let r = r.trim();
        if r.is_empty() || (r.len() == 2 && r.bytes().all(|b| b.is_ascii_uppercase())) {
            return None;
        }
        Some(match r.split_once('/') {
            Some((p, c)) => (p.trim().to_string(), Some(c.trim().to_string())),
            None => (r.to_string(), None),
        })
    };
    let (Some((cp, cc)), Some((kp, kc))) = (split(customer), split(caller)) else {
        return 0;
    };
    let same_city = match (&cc, &kc) {
        (Some(a), Some(b)) => a == b,
        (None, Some(b)) => &cp == b,
        (Some(a), None) => a == &kp,
        (None, None) => cp == kp,
    };
    if same_city {
        2000
    } else if cp == kp {
        1000
    } else {
        0
    }
}

fn shared_prefix(a: u64, b: u64) -> u32 {
    fn digits(mut n: u64, buf: &mut [u8; 20]) -> usize {
        let mut len = 0;
        loop {
            buf[len] = (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        buf[..len].reverse();
        len
    }
    let (mut da, mut db) = ([0u8; 20], [0u8; 20]);
    let (la, lb) = (digits(a, &mut da), digits(b, &mut db));
    da[..la]
        .iter()
        .zip(&db[..lb])
        .take_while(|(x, y)| x == y)
        .count() as u32
}
