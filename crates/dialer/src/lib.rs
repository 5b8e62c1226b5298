//! The live campaign runtime. [`run`] loads the campaign's contacts into the
//! sans-IO planner, and then, while the campaign's stored state is `running`,
//! asks the planner whom to call with the free capacity, places each call over
//! SIP with a voice bot (one task per call), writes the call, its transcript
//! and its events to the store as they happen, and reports every outcome back
//! to the planner (retries, callbacks, do-not-call, the answer model).
//!
//! The stored campaign state is the control plane: the API's start / pause /
//! stop change it and this loop follows within a poll interval. A pause stops
//! new dials; a stop, or the process being asked to shut down, stops new dials
//! and lets every live conversation finish (up to a drain limit) — no call is
//! cut mid-sentence. Calls a killed process left open are closed on the next
//! start from the store (`failed`, "interrupted"), so no attempt is lost and
//! the caps count it.
//!
//! [`lifecycle::run_campaign`] is the whole job around this loop — store the
//! campaign file under the store's id, mark it running, run it, mark it
//! finished — for any front end (`waihu run`, `waihu demo`, a server).
pub mod agent_registrar;
pub mod experiments;
pub mod forecast;
pub mod handoff;
pub mod listen;
pub mod pacing;
// The agents file's types, for callers that only depend on the dialer.
pub use waihu_acd;
pub mod lifecycle;
pub mod node;
pub mod trunks;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Serialize, Serializer};
use tokio::sync::{mpsc, watch};
use waihu_bot::{BotReport, Kit, Note, ScriptKit};
use waihu_campaign::config::Campaign;
use waihu_campaign::planner::{
    Action as PlanAction, ContactInput, ContactRef, Dial, OwnAttempt, PastAttempt, PastCall,
    Planner, Report,
};
use waihu_core::kpi::{Kpis, DEFAULT_CONVERSION_OUTCOMES};
use waihu_core::{
    AttrValue, CallId, CallOutcome, CampaignId, CampaignState, CustomerId, Event, EventKind,
    PhoneIndex,
};
use waihu_dialog::Action as DialogAction;
use waihu_engine::call::{place_call_with, CallOptions, MediaOptions, Progress};
use waihu_engine::sip::SipEndpoint;
use waihu_store::{CallFinish, CallStart, Customer, Store};

/// The campaign's clock. Production runs on the system clock. The demo
/// starts it at a business hour in the callees' zone (so it can run at any
/// hour of the real day) and lets it skip idle gaps — a retry due in an hour
/// is dialled as soon as nothing else is left — while calls themselves run in
/// real time. Every decision and event uses this clock, and the compliance
/// checker verifies the log against it like any other.
///
/// A skipping clock may also *gather*: each jump lands that much past the
/// next calendar entry, so retries due close together start as one wave.
/// Without it a retry round trickles: a jump reaches only the first retry
/// due, the clock then runs in real time while that call is live, the next
/// retry comes due minutes later, and the last contacts are dialled one or
/// two at a time. Dialling a retry later than it is due is always allowed
/// (the planner still checks windows and caps at the new time).
#[derive(Debug, Default)]
pub struct CampaignClock {
    offset_ms: AtomicI64,
    skip_idle: bool,
    gather_ms: i64,
}

impl CampaignClock {
    pub fn system() -> Arc<CampaignClock> {
        Arc::new(CampaignClock::default())
    }

    /// A clock that reads `start` now and may skip idle time.
    pub fn starting_at(start: DateTime<Utc>, skip_idle: bool) -> Arc<CampaignClock> {
        let offset = (start - Utc::now()).num_milliseconds();
        Arc::new(CampaignClock {
            offset_ms: AtomicI64::new(offset),
            skip_idle,
            gather_ms: 0,
        })
    }

    /// A skipping clock that reads `start` now and lands `gather` past each
    /// calendar entry it jumps to (see [`CampaignClock`]).
    pub fn gathering(start: DateTime<Utc>, gather: chrono::Duration) -> Arc<CampaignClock> {
        let offset = (start - Utc::now()).num_milliseconds();
        Arc::new(CampaignClock {
            offset_ms: AtomicI64::new(offset),
            skip_idle: true,
            gather_ms: gather.num_milliseconds().max(0),
        })
    }

    /// Millisecond precision: the store keeps microseconds, so an event's time
    /// and the local time logged from it must not differ below that.
    pub fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        (Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed)))
            .trunc_subsecs(3)
    }

    /// Jump forward to `t` (never back). Only a skipping clock moves.
    fn skip_to(&self, t: DateTime<Utc>) -> bool {
        let ahead = (t - self.now()).num_milliseconds() + self.gather_ms;
        if self.skip_idle && ahead > 0 {
            self.offset_ms.fetch_add(ahead, Ordering::Relaxed);
            true
        } else {
            false
        }
    }
}

/// Everything a run needs besides the store and the SIP endpoint.
pub struct Options {
    pub campaign_id: CampaignId,
    pub campaign: Campaign,
    /// Script (file stem) stored with each call, for customers whose segment
    /// has none in [`Options::segment_scripts`].
    pub script_name: String,
    pub script: Arc<ScriptKit>,
    /// Per campaign segment (by index), the script its customers get (file
    /// stem, kit); empty: everyone gets [`Options::script`] (`--script`).
    pub segment_scripts: Vec<(String, Arc<ScriptKit>)>,
    pub kit: Arc<Kit>,
    /// Where INVITEs go: the trunk / SBC (or the virtual callees).
    pub trunk: SocketAddr,
    /// Configured trunks (registration, auth, selection, failover); when set, calls go
    /// through them and `trunk` is unused. The campaign's planner trunks are theirs.
    pub trunks: Option<Arc<trunks::TrunkPool>>,
    pub max_concurrent: usize,
    pub ring_timeout: Duration,
    pub max_duration: Duration,
    /// Script variables every call gets (the shop's name...), before the customer's own.
    pub constants: Vec<(String, String)>,
    pub clock: Arc<CampaignClock>,
    /// Stop dialling when the campaign clock passes this (the demo's day).
    pub until: Option<DateTime<Utc>>,
    /// Longest wait for live calls to finish once stopping.
    pub drain: Duration,
    /// Directory for the temporary WAV of each call (sealed into the store at the end).
    pub spool: PathBuf,
    /// How often the stored campaign state is read.
    pub poll: Duration,
    /// Told how the run is going every `progress_every` (wall time), and once at the end.
    pub progress: Option<ProgressFn>,
    pub progress_every: Duration,
    /// Message templates for the planner's fallbacks: with them each fallback is rendered
    /// for its customer and queued in the store's outbox (the sender in `waihu-messaging`
    /// sends it); without, fallbacks are only counted.
    pub messages: Option<Arc<waihu_messaging::TemplateSet>>,
    /// How often the store's do-not-call list is read for entries added while
    /// the campaign runs (CLI, API, opt-out replies): a new entry stops the next
    /// dial to its number within this (plus a dial already being placed).
    pub dnc_poll: Duration,
    /// Agents and queues for warm transfer (转人工): a script's transfer to a
    /// queue bridges the callee to an agent ([`handoff`]); without, the bot
    /// says its transfer line and hangs up.
    pub handoff: Option<Arc<handoff::Handoff>>,
}

impl Options {
    /// The script a customer of campaign segment `segment` gets: (file stem, kit).
    pub fn script_for(&self, segment: usize) -> (&str, &Arc<ScriptKit>) {
        match self.segment_scripts.get(segment) {
            Some((name, kit)) => (name, kit),
            None => (&self.script_name, &self.script),
        }
    }
}

/// Where a run's progress goes (a front end prints it).
pub type ProgressFn = Arc<dyn Fn(&RunProgress) + Send + Sync>;

/// How far a run has come.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunProgress {
    /// Contacts loaded into the planner.
    pub contacts: usize,
    /// Contacts the planner still has work for (retries and callbacks included).
    pub pending: usize,
    /// Calls finished.
    pub done: usize,
    /// Calls in progress.
    pub live: usize,
    pub answered: usize,
    /// Wall time since the run started.
    pub elapsed_s: f64,
    /// Wall time still needed at the rate contacts have been finishing so far;
    /// `None` until one has.
    pub eta_s: Option<f64>,
}

impl RunProgress {
    fn new(
        contacts: usize,
        pending: usize,
        summary: &Summary,
        live: usize,
        elapsed_s: f64,
    ) -> Self {
        let finished = contacts.saturating_sub(pending);
        let eta_s = (finished > 0).then(|| (elapsed_s * pending as f64 / finished as f64).round());
        RunProgress {
            contacts,
            pending,
            done: summary.calls.len(),
            live,
            answered: summary.outcomes.get("answered").copied().unwrap_or(0),
            elapsed_s: elapsed_s.round(),
            eta_s,
        }
    }
}

impl std::fmt::Display for RunProgress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "进度 progress: {} calls done, {} in progress, {} answered; {}/{} contacts finished; elapsed {:.0} s, ",
            self.done,
            self.live,
            self.answered,
            self.contacts - self.pending.min(self.contacts),
            self.contacts,
            self.elapsed_s
        )?;
        match self.eta_s {
            Some(eta) => write!(f, "about {eta:.0} s to go / 预计剩余 {eta:.0} 秒"),
            None => f.write_str("estimating / 预计中"),
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One finished call, for the summary and for scoring against the virtual callees.
#[derive(Debug, Clone, Serialize)]
pub struct CallResult {
    pub call_id: CallId,
    pub phone: String,
    pub outcome: CallOutcome,
    pub business: Option<String>,
    pub level: Option<String>,
    pub duration_s: f64,
    pub turns: usize,
    pub barge_ins: u32,
    /// Out-of-script questions answered from the script's knowledge, and those
    /// that got its fallback line (`waihu run --llm`).
    #[serde(skip_serializing_if = "is_zero")]
    pub knowledge_answers: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub knowledge_fallbacks: u32,
    /// What a carrier announcement said (early media, or after answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announcement: Option<String>,
    /// The call's answering-machine detection (answered calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub analysis: Option<waihu_bot::Analysis>,
    /// The voiceprint check of the callee (`waihu run --voiceprint`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<waihu_bot::VoiceCheck>,
    #[serde(skip)]
    pub latencies: Vec<waihu_bot::Latency>,
    /// What speculative ASR did in the call.
    #[serde(skip)]
    pub speculation: waihu_bot::Speculation,
    /// How a warm transfer (转人工) ended, when the script transferred to a queue.
    #[serde(skip)]
    pub handoff: handoff::HandoffResult,
    /// The answered call's `conversation_ended`, as logged (a cluster node copies it to the
    /// merged log for the reports of every node).
    #[serde(skip)]
    pub conversation: Option<EventKind>,
    pub errors: Vec<String>,
}

/// Why a run stopped dialling. Printed (and serialised) as the sentence it
/// always was, e.g. `every contact finished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The planner has nobody left to call.
    EveryContactFinished,
    /// The campaign clock passed [`Options::until`].
    EndOfDay,
    /// The stored campaign state left `running` (an operator stopped it, or
    /// something else marked it finished).
    Campaign(CampaignState),
    /// The process was asked to shut down (Ctrl-C).
    Shutdown,
    /// Another node declared this one lost (its heartbeat stopped too long): its calls were
    /// ended in the shared log and its contacts went to the others (`waihu run --node`).
    NodeLost,
    /// An operator drained this node (`waihu cluster drain`): no new dials, live calls
    /// finished, contacts handed to the other nodes.
    Drained,
    /// Stopping for `reason`, but `live` calls had not ended by the drain limit.
    DrainLimit {
        reason: Box<StopReason>,
        live: usize,
    },
}

/// While a run is stopping for `why`: how it ends now (nothing live, or the drain limit
/// `drain` after the first call passed, with calls still live), or `None` to wait on.
pub(crate) fn stop_now(
    why: &StopReason,
    live: usize,
    drain_until: &mut Option<tokio::time::Instant>,
    drain: Duration,
) -> Option<StopReason> {
    if live == 0 {
        return Some(why.clone());
    }
    let until = *drain_until.get_or_insert_with(|| tokio::time::Instant::now() + drain);
    (tokio::time::Instant::now() >= until).then(|| StopReason::DrainLimit {
        reason: Box::new(why.clone()),
        live,
    })
}

impl StopReason {
    /// The campaign's work is done — every contact finished, or its planned
    /// hours are over — so it is marked `finished`. An operator's stop or a
    /// shutdown leaves it as it is, for the next run to continue.
    pub fn completes_campaign(&self) -> bool {
        match self {
            StopReason::EveryContactFinished | StopReason::EndOfDay => true,
            StopReason::DrainLimit { reason, .. } => **reason == StopReason::EndOfDay,
            StopReason::Campaign(_)
            | StopReason::Shutdown
            | StopReason::NodeLost
            | StopReason::Drained => false,
        }
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::EveryContactFinished => f.write_str("every contact finished"),
            StopReason::EndOfDay => f.write_str("end of the campaign day"),
            StopReason::Campaign(state) => write!(f, "campaign {state}"),
            StopReason::Shutdown => f.write_str("shutdown"),
            StopReason::NodeLost => f.write_str("this node was declared lost by the cluster"),
            StopReason::Drained => f.write_str("this node was drained"),
            StopReason::DrainLimit { reason, live } => {
                write!(f, "{reason}; {live} calls still live at the drain limit")
            }
        }
    }
}

impl Serialize for StopReason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub contacts: usize,
    pub skipped_contacts: Vec<String>,
    pub reconciled: usize,
    /// Attempts on these numbers already in the log (last 8 days), counted against the caps.
    pub prior_attempts: usize,
    /// Earlier attempts on these customers (any age) the answer model started from.
    pub history_attempts: usize,
    pub attempts: usize,
    pub outcomes: BTreeMap<String, usize>,
    pub business: BTreeMap<String, usize>,
    pub levels: BTreeMap<String, usize>,
    pub callbacks: usize,
    pub dnc_added: usize,
    pub fallback_messages: usize,
    pub max_live: usize,
    /// Agent-assisted campaigns: answered calls no agent took in time.
    pub abandoned: usize,
    /// Agent-assisted campaigns: agent seconds on calls.
    pub agent_talk_s: f64,
    pub stopped_by: StopReason,
    pub calls: Vec<CallResult>,
}

impl Summary {
    fn new(reconciled: usize) -> Summary {
        Summary {
            contacts: 0,
            skipped_contacts: Vec::new(),
            reconciled,
            prior_attempts: 0,
            history_attempts: 0,
            attempts: 0,
            outcomes: BTreeMap::new(),
            business: BTreeMap::new(),
            levels: BTreeMap::new(),
            callbacks: 0,
            dnc_added: 0,
            fallback_messages: 0,
            max_live: 0,
            abandoned: 0,
            agent_talk_s: 0.0,
            stopped_by: StopReason::Shutdown,
            calls: Vec::new(),
        }
    }

    /// The KPIs of this run's finished calls, by the one definition
    /// ([`waihu_core::kpi`]) the API and dashboard use: the same figures they
    /// show for the same calls (voicemail counts as connected).
    pub fn kpis(&self) -> Kpis {
        let conversion: Vec<String> = DEFAULT_CONVERSION_OUTCOMES.map(String::from).to_vec();
        let mut k = Kpis::empty();
        for c in &self.calls {
            k.add_attempt(c.outcome.as_str(), 1, c.duration_s);
            if let Some(b) = &c.business {
                k.add_conversation(b, 1, &conversion);
            }
            if let Some(l) = &c.level {
                k.add_level(l, 1);
            }
        }
        k.finish();
        k
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DialerError {
    #[error(transparent)]
    Store(#[from] waihu_store::StoreError),
    #[error("活动不存在 / campaign {0} not found in the store")]
    NoCampaign(i64),
    #[error(
        "pacing.connect: agent sends answered calls to the queue {0:?}: give an agents file with that queue (--agents) / 直连坐席需要坐席配置"
    )]
    AgentsNeeded(String),
    #[error("cluster: {0}")]
    Cluster(#[from] waihu_cluster::ClusterError),
    #[error("{0}")]
    Node(String),
}

struct Finished {
    contact: ContactRef,
    result: CallResult,
    report: Report,
    dnc: bool,
    /// Agent-assisted campaigns: what the call teaches the pacer.
    sample: Option<pacing::Sample>,
}

/// The media quality to store for a call that carried media.
fn quality_of(r: &waihu_engine::call::CallReport) -> Option<waihu_store::CallQuality> {
    let q = r.rtp;
    (q.packets_sent > 0 || q.packets_received > 0).then(|| waihu_store::CallQuality {
        codec: r.codec.clone(),
        packets_sent: q.packets_sent,
        packets_received: q.packets_received,
        lost: q.lost,
        late: q.late,
        jitter_ms: q.jitter_ms,
        rtcp_sent: q.rtcp_sent,
        rtcp_received: q.rtcp_received,
        peer_loss_pct: q.peer_loss_pct,
        peer_lost: q.peer_lost,
        peer_jitter_ms: q.peer_jitter_ms,
        rtt_ms: q.rtt_ms,
    })
}

/// Closes calls a previous process left open (killed mid-call): each gets
/// `failed` with the reason, an `attempt_ended` event, and counts as an attempt.
pub async fn reconcile(store: &Store, now: DateTime<Utc>) -> Result<usize, DialerError> {
    let open = store.calls_live().await?;
    for c in &open {
        let fin = CallFinish {
            at: now,
            outcome: CallOutcome::Failed,
            sip_status: None,
            duration_s: 0.0,
            business_outcome: None,
            level: None,
            path: Vec::new(),
            path_variants: Vec::new(),
            recording: None,
            quality: None,
        };
        let ended = Event {
            at: now,
            customer: c.customer,
            campaign: c.campaign,
            call: Some(c.call_id.clone()),
            kind: EventKind::AttemptEnded {
                outcome: CallOutcome::Failed,
                sip_status: None,
                duration_s: 0.0,
            },
        };
        store.call_finished_with(&c.call_id, &fin, &[ended]).await?;
    }
    Ok(open.len())
}

fn contact_input(
    c: &Customer,
    campaign: &Campaign,
    today: chrono::NaiveDate,
) -> Result<ContactInput, String> {
    let tz: chrono_tz::Tz =
        c.tz.parse()
            .map_err(|_| format!("customer {}: unknown time zone '{}'", c.id.0, c.tz))?;
    let segment = match &c.segment {
        Some(s) if campaign.segments.iter().any(|x| &x.name == s) => s.clone(),
        _ if campaign.segments.iter().any(|x| x.name == "default") => "default".into(),
        other => {
            return Err(format!(
                "customer {}: segment {:?} is not in the campaign and it has no `default` segment",
                c.id.0, other
            ))
        }
    };
    let has_app = matches!(
        c.attrs
            .get("has_app")
            .or_else(|| c.attrs.get("是否APP用户")),
        Some(AttrValue::Bool(true))
    );
    // Validated at import (`waihu_ingest::parse_channel_pref`); anything else reads as "any".
    let channel_pref = match c.attrs.get("channel_pref") {
        Some(AttrValue::Text(v)) => waihu_campaign::ChannelPref::from_attr(v),
        _ => waihu_campaign::ChannelPref::Any,
    };
    Ok(ContactInput {
        customer: c.id,
        phone: c.phone.clone(),
        tz,
        segment,
        region: Some(c.region.clone()),
        has_app,
        channel_pref,
        // Only a stored yes counts: a customer whose imports never said is not
        // dialled by a `consent.required` campaign.
        consent: c.consent == Some(true),
        recency_days: None,
        history: Vec::new(),
        features: waihu_campaign::learned::attribute_features(&c.attrs, today),
    })
}

/// A customer's stored attempts: each seeds the answer model (at the callee's
/// local time), and those that say whether the callee picks up (not network
/// failures) become the contact's own evidence.
fn add_history(
    ci: &mut ContactInput,
    segment: usize,
    attempts: Vec<(DateTime<Utc>, CallOutcome)>,
    seed: &mut Vec<PastAttempt>,
) {
    for (at, outcome) in attempts {
        let local = at.with_timezone(&ci.tz).naive_local();
        seed.push(PastAttempt {
            segment,
            local,
            outcome,
        });
        if !matches!(
            outcome,
            CallOutcome::InvalidNumber
                | CallOutcome::Suspended
                | CallOutcome::Congestion
                | CallOutcome::Failed
        ) {
            ci.history.push(PastCall {
                hour: chrono::Timelike::hour(&local) as u8,
                answered: outcome == CallOutcome::Answered,
            });
        }
    }
}

/// The stored call history of these customers: (placed at, outcome) per customer.
async fn attempt_history(
    store: &Store,
    customers: &[Customer],
) -> Result<HashMap<CustomerId, Vec<(DateTime<Utc>, CallOutcome)>>, DialerError> {
    let ids: std::collections::HashSet<CustomerId> = customers.iter().map(|c| c.id).collect();
    let mut out: HashMap<CustomerId, Vec<(DateTime<Utc>, CallOutcome)>> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.attempt_history(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for a in page {
            if ids.contains(&a.customer) {
                out.entry(a.customer).or_default().push((a.at, a.outcome));
            }
        }
    }
    Ok(out)
}

/// Numbers of this run's contacts put on the do-not-call list (global or
/// `scope`) since `cursor` (an event id, moved past what was read).
async fn new_dnc_entries(
    store: &Store,
    cursor: &mut i64,
    scope: &str,
    by_index: &HashMap<String, String>,
) -> Result<Vec<String>, DialerError> {
    let mut out = Vec::new();
    loop {
        let page = store.dnc_added_since(*cursor, 1000).await?;
        let Some((last, ..)) = page.last() else {
            break;
        };
        *cursor = *last;
        for (_, idx, s) in &page {
            if s == "global" || s == scope {
                if let Some(phone) = by_index.get(&idx.0) {
                    out.push(phone.clone());
                }
            }
        }
        if page.len() < 1000 {
            break;
        }
    }
    Ok(out)
}

/// Renders a planner fallback for its customer and queues it in the outbox, once per
/// campaign, customer and template (the key makes a replayed decision a no-op). A template
/// that cannot be rendered for this customer is logged and skipped: the call loop goes on.
async fn queue_fallback(
    store: &Store,
    opts: &Options,
    set: &waihu_messaging::TemplateSet,
    customer: waihu_core::CustomerId,
    channel: &str,
    template: &str,
    now: DateTime<Utc>,
) -> Result<(), DialerError> {
    if channel != "sms" && channel != "push" {
        tracing::info!(channel, template, "unknown fallback channel; skipped");
        return Ok(());
    }
    let Some(c) = store.customer(customer).await? else {
        return Ok(());
    };
    let vars = call_vars(&c, &opts.constants);
    let rendered = match set.render(template, &c.phone, &vars) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(customer = customer.0, %e, "fallback message not queued");
            return Ok(());
        }
    };
    let key = format!("fallback:{}:{}:{template}", opts.campaign_id.0, customer.0);
    store
        .message_enqueue(
            &waihu_store::NewMessage {
                key: &key,
                customer: Some(customer),
                campaign: Some(opts.campaign_id),
                channel,
                template,
                to: &c.phone,
                text: &rendered.text,
                segments: rendered.segments as u32,
            },
            now,
        )
        .await?;
    Ok(())
}

/// Script variables of one customer: the constants, then the name, then every
/// attribute (an attribute `order_item` also fills `order.item`).
pub fn call_vars(c: &Customer, constants: &[(String, String)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = constants.to_vec();
    if let Some(n) = &c.name {
        v.push(("name".into(), n.clone()));
    }
    for (k, val) in c.attrs.iter() {
        let s = attr_text(val);
        v.push((k.clone(), s.clone()));
        if k.contains('_') {
            v.push((k.replacen('_', ".", 1), s));
        }
    }
    v
}

/// An attribute as a script reads it: whole numbers without a decimal point.
fn attr_text(v: &AttrValue) -> String {
    match v {
        AttrValue::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
        AttrValue::Number(n) => format!("{n}"),
        AttrValue::Date(d) => d.to_string(),
        AttrValue::Text(t) => t.clone(),
        AttrValue::Bool(b) => b.to_string(),
    }
}

fn seed_of(call_id: &str) -> u64 {
    call_id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// The campaign's prompt experiments over every script the run uses.
async fn load_experiments(
    store: &Store,
    opts: &Options,
) -> Result<Arc<experiments::Experiments>, DialerError> {
    let mut scripts: Vec<(&str, &Arc<ScriptKit>)> = vec![(opts.script_name.as_str(), &opts.script)];
    for (name, kit) in &opts.segment_scripts {
        if !scripts.iter().any(|(n, _)| n == name) {
            scripts.push((name.as_str(), kit));
        }
    }
    let seed = (opts.campaign_id.0 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    Ok(Arc::new(
        experiments::Experiments::load(store, opts.campaign_id, &scripts, seed).await?,
    ))
}

/// The customers a run can dial, as planner inputs: those the campaign or their script
/// cannot take are reported in `summary.skipped_contacts`; numbers on the do-not-call list
/// go to the planner's list; each customer's stored attempts seed the answer model and
/// their own evidence.
async fn prepare_contacts(
    store: &Store,
    opts: &Options,
    planner: &mut Planner,
    customers: Vec<Customer>,
    summary: &mut Summary,
) -> Result<Vec<(Customer, ContactInput)>, DialerError> {
    let mut history = attempt_history(store, &customers).await?;
    let mut inputs: Vec<(Customer, ContactInput)> = Vec::with_capacity(customers.len());
    let mut seed: Vec<PastAttempt> = Vec::new();
    let today = opts
        .clock
        .now()
        .with_timezone(&planner.campaign().timezone)
        .date_naive();
    for c in customers {
        let mut ci = match contact_input(&c, planner.campaign(), today) {
            Ok(ci) => ci,
            Err(e) => {
                summary.skipped_contacts.push(e);
                continue;
            }
        };
        let segment = planner
            .campaign()
            .segment_index(&ci.segment)
            .unwrap_or_default();
        // A customer without what their script needs is reported, never dialled.
        let (script_name, script) = opts.script_for(segment);
        let vars = call_vars(&c, &opts.constants);
        let missing: Vec<&str> = script
            .prog
            .required
            .iter()
            .map(|(_, name, _)| name.as_str())
            .filter(|name| !vars.iter().any(|(k, _)| k == name))
            .collect();
        if !missing.is_empty() {
            summary.skipped_contacts.push(format!(
                "customer {}: the script {script_name} needs {} / 缺少话术变量",
                c.id.0,
                missing.join(", ")
            ));
            continue;
        }
        if store
            .dnc_contains(&c.phone, &planner.campaign().name)
            .await?
        {
            planner.add_dnc(&c.phone);
        }
        // The customer's own earlier attempts, at their local hour.
        add_history(
            &mut ci,
            segment,
            history.remove(&c.id).unwrap_or_default(),
            &mut seed,
        );
        inputs.push((c, ci));
    }
    // The answer model starts from the stored history, not from the prior.
    summary.history_attempts = planner.seed_model(seed);
    Ok(inputs)
}

/// The planner's dials for `free` channels, and its other choices carried out: a message
/// first (rendered and queued in the outbox) or no contact.
async fn plan_dials(
    store: &Store,
    opts: &Options,
    planner: &mut Planner,
    summary: &mut Summary,
    free: usize,
    now: DateTime<Utc>,
) -> Result<Vec<Dial>, DialerError> {
    let dials = if free > 0 {
        planner.next_dials(now, free)
    } else {
        Vec::new()
    };
    for a in planner.take_actions() {
        if let PlanAction::SendMessage {
            customer,
            channel,
            template,
        } = a
        {
            summary.fallback_messages += 1;
            if let Some(set) = &opts.messages {
                queue_fallback(store, opts, set, customer, channel, &template, now).await?;
            }
        }
    }
    Ok(dials)
}

/// Runs the campaign until it is finished, stopped, past `until`, or `shutdown` fires.
pub async fn run(
    store: Store,
    ep: Arc<SipEndpoint>,
    opts: Options,
    customers: Vec<Customer>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Summary, DialerError> {
    let opts = Arc::new(opts);
    let mut summary = Summary::new(reconcile(&store, opts.clock.now()).await?);
    let mut campaign = opts.campaign.clone();
    campaign.id = opts.campaign_id;
    if let Some(pool) = &opts.trunks {
        campaign.trunks = pool.planner_trunks();
    }
    let mut planner = Planner::new(campaign);
    // Agent-assisted: every answered call goes to the queue; the agents pace the dialling.
    let mut agent_pacing = match &planner.campaign().agent_connect {
        Some(ac) => match &opts.handoff {
            Some(h) if h.has_queue(&ac.queue) => Some(pacing::AgentPacing::new(
                ac.clone(),
                planner.campaign().pacing,
                h.clone(),
            )),
            _ => return Err(DialerError::AgentsNeeded(ac.queue.clone())),
        },
        None => None,
    };
    let experiments = load_experiments(&store, &opts).await?;
    // Entries added to the do-not-call list from here on are picked up while running.
    let mut dnc_cursor = store.last_event_id().await?;
    let inputs = prepare_contacts(&store, &opts, &mut planner, customers, &mut summary).await?;
    let mut by_ref: HashMap<ContactRef, Customer> = HashMap::new();
    let mut by_index: HashMap<String, String> = HashMap::with_capacity(inputs.len());
    for (c, ci) in inputs {
        match planner.add_contact(ci) {
            Ok(r) => {
                by_index.insert(store.vault().blind_index(&c.phone), c.phone.clone());
                by_ref.insert(r, c);
            }
            Err(e) => summary.skipped_contacts.push(e.to_string()),
        }
    }
    summary.contacts = by_ref.len();
    // Caps hold across campaigns and across restarts: count what the log already holds.
    let phones: HashMap<i64, &str> = by_ref
        .values()
        .map(|c| (c.id.0, c.phone.as_str()))
        .collect();
    let since = opts.clock.now() - chrono::Duration::days(8);
    // This campaign's own attempts from earlier runs, in the order they were made (call id
    // → index), and the id of the first one's event.
    let mut own: Vec<OwnAttempt> = Vec::new();
    let mut own_by_call: HashMap<String, usize> = HashMap::new();
    let mut first_own: Option<i64> = None;
    let mut after = 0;
    loop {
        let page = store
            .events_of_type("attempt_started", after, 10_000)
            .await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (id, e) in &page {
            if let Some(phone) = e.customer.and_then(|c| phones.get(&c.0)) {
                if e.at >= since {
                    planner.record_external_attempt(phone, e.at);
                    summary.prior_attempts += 1;
                }
                if let (Some(call), true) = (&e.call, e.campaign == Some(opts.campaign_id)) {
                    first_own.get_or_insert(*id);
                    own_by_call.insert(call.0.clone(), own.len());
                    own.push(OwnAttempt {
                        e164: phone,
                        outcome: CallOutcome::Failed,
                        ended_at: e.at,
                        callback_at: None,
                        abandoned: false,
                    });
                }
            }
        }
    }
    // Without them a restart (after a stop or a kill; the calls a kill left open were
    // closed by `reconcile` above) would dial a number past `max_attempts`, call again whom
    // it had reached, and retry before the retry delay.
    let kinds = ["attempt_ended", "callback_requested", "call_abandoned"].map(String::from);
    let mut after = first_own.map_or(i64::MAX, |id| id - 1);
    while after < i64::MAX {
        let page = store.events_of_types(&kinds, after, 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, e) in page {
            let Some(o) = e
                .call
                .and_then(|c| own_by_call.get(&c.0))
                .map(|&i| &mut own[i])
            else {
                continue;
            };
            match e.kind {
                EventKind::AttemptEnded { outcome, .. } => {
                    o.outcome = outcome;
                    o.ended_at = e.at;
                }
                EventKind::CallbackRequested { when } => o.callback_at = Some(when),
                EventKind::CallAbandoned { .. } => o.abandoned = true,
                _ => {}
            }
        }
    }
    for a in own {
        planner.record_own_attempt(a);
    }
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Finished>();
    let mut live = 0usize;
    let mut seq = 0u64;
    let mut stopping: Option<StopReason> = None;
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut tick = tokio::time::interval(opts.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dnc_tick = tokio::time::interval(opts.dnc_poll);
    dnc_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A dropped sender can never ask to stop: stop listening (a closed channel is
    // ready at every poll and would spin the loop).
    let mut can_shut_down = true;
    let started = tokio::time::Instant::now();
    let mut last_progress = started;
    let report = |summary: &Summary, planner: &Planner, live: usize| {
        if let Some(p) = &opts.progress {
            let elapsed = started.elapsed().as_secs_f64();
            p(&RunProgress::new(
                summary.contacts,
                planner.pending(),
                summary,
                live,
                elapsed,
            ));
        }
    };
    loop {
        if last_progress.elapsed() >= opts.progress_every {
            last_progress = tokio::time::Instant::now();
            report(&summary, &planner, live);
        }
        tokio::select! {
            Some(f) = done_rx.recv() => {
                live -= 1;
                if let (Some(p), Some(s)) = (agent_pacing.as_mut(), f.sample.as_ref()) {
                    p.observe(s, opts.clock.now());
                    summary.agent_talk_s = p.talk_s;
                    summary.abandoned += usize::from(s.abandoned);
                }
                finish(&store, &mut planner, &opts, &mut summary, f).await?;
                continue;
            }
            changed = shutdown.changed(), if can_shut_down => {
                if changed.is_err() {
                    can_shut_down = false;
                } else if *shutdown.borrow() {
                    stopping.get_or_insert(StopReason::Shutdown);
                }
            }
            _ = dnc_tick.tick() => {
                let scope = planner.campaign().name.clone();
                for phone in new_dnc_entries(&store, &mut dnc_cursor, &scope, &by_index).await? {
                    planner.add_dnc(&phone);
                }
                continue;
            }
            _ = tick.tick() => {}
        }
        let now = opts.clock.now();
        if stopping.is_none() {
            let state = store
                .campaign_get(opts.campaign_id)
                .await?
                .ok_or(DialerError::NoCampaign(opts.campaign_id.0))?
                .state;
            match state {
                CampaignState::Running => {}
                CampaignState::Paused | CampaignState::Created => continue,
                other => stopping = Some(StopReason::Campaign(other)),
            }
            if opts.until.is_some_and(|u| now >= u) {
                stopping = Some(StopReason::EndOfDay);
            }
        }
        if let Some(why) = &stopping {
            if let Some(stop) = stop_now(why, live, &mut drain_until, opts.drain) {
                summary.stopped_by = stop;
                break;
            }
            continue;
        }
        let channels = opts.max_concurrent.saturating_sub(live);
        let free = match &agent_pacing {
            Some(p) if channels > 0 => {
                let registered = p.handoff().registered(&ep).await;
                p.want(channels, &registered)
            }
            _ => channels,
        };
        let dials = plan_dials(&store, &opts, &mut planner, &mut summary, free, now).await?;
        if dials.is_empty() && live == 0 {
            if planner.pending() == 0 {
                summary.stopped_by = StopReason::EveryContactFinished;
                break;
            }
            // Nothing to do before the next calendar entry: a demo clock jumps
            // there; the system clock waits (polling the campaign state meanwhile).
            let next = planner
                .next_wakeup()
                .unwrap_or(now + chrono::Duration::minutes(1));
            opts.clock
                .skip_to(next.max(now + chrono::Duration::seconds(1)));
        }
        for d in dials {
            let Some(c) = by_ref.get(&d.contact).cloned() else {
                continue;
            };
            seq += 1;
            live += 1;
            summary.max_live = summary.max_live.max(live);
            summary.attempts += 1;
            let call_id = CallId(format!(
                "{}-{}-{}",
                opts.campaign_id.0,
                now.format("%Y%m%d%H%M%S"),
                seq
            ));
            start_call(
                &ep,
                &store,
                &planner,
                &opts,
                &experiments,
                &d,
                c,
                call_id,
                now,
                agent_pacing.as_ref().map(|p| p.lines.dial()),
                done_tx.clone(),
            )
            .await?;
        }
    }
    report(&summary, &planner, live);
    // Calls still live after the drain limit end when the process does; the next start reconciles them.
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
async fn start_call(
    ep: &Arc<SipEndpoint>,
    store: &Store,
    planner: &Planner,
    opts: &Arc<Options>,
    experiments: &Arc<experiments::Experiments>,
    d: &Dial,
    c: Customer,
    call_id: CallId,
    now: DateTime<Utc>,
    line: Option<Arc<pacing::Line>>,
    done: mpsc::UnboundedSender<Finished>,
) -> Result<(), DialerError> {
    let phone_idx = PhoneIndex(store.vault().blind_index(&c.phone));
    // The customer's segment's script (or the one `--script` forced).
    let (script_name, script) = opts.script_for(d.segment);
    let script = script.clone();
    // The planner's caller ID goes out as the From user of the INVITE.
    let caller_id = planner.caller_id_number(d).map(str::to_string);
    // The call row and its attempt_started event commit together (and only once).
    store
        .call_started_with(
            &CallStart {
                call_id: call_id.clone(),
                campaign: Some(opts.campaign_id),
                customer: Some(c.id),
                script: script_name.to_string(),
                lang: script.lang().into(),
                at: now,
            },
            &[Event {
                at: now,
                customer: Some(c.id),
                campaign: Some(opts.campaign_id),
                call: Some(call_id.clone()),
                kind: EventKind::AttemptStarted {
                    phone: phone_idx,
                    tz: d.tz.name().into(),
                    local_time: d.local_time.to_rfc3339(),
                    caller_id: caller_id.clone(),
                    channel: "voice".into(),
                },
            }],
        )
        .await?;
    // The campaign's bandits choose the prompt variants this call will play.
    let segment = planner
        .campaign()
        .segments
        .get(d.segment)
        .map(|s| s.name.clone())
        .unwrap_or_default();
    let arms = experiments.choose(script_name, &script, &segment);
    store
        .experiment_chosen(call_id.as_str(), opts.campaign_id, script_name, &arms, now)
        .await?;
    let learn = Learning {
        experiments: experiments.clone(),
        script: script_name.to_string(),
        segment,
        variants: arms.into_iter().map(|a| (a.state, a.variant)).collect(),
    };
    let contact = d.contact;
    let ep = ep.clone();
    let opts = opts.clone();
    let store = store.clone();
    let tz = d.tz;
    let trunk = d.trunk;
    tokio::spawn(async move {
        let dial = CallDial {
            tz,
            contact,
            script,
            caller_id,
            trunk,
            learn,
            line,
        };
        let f = call(ep, &store, &opts, &c, &call_id, dial).await;
        let _ = done.send(f);
    });
    Ok(())
}

/// What one call was dialled with.
struct CallDial {
    tz: chrono_tz::Tz,
    contact: ContactRef,
    script: Arc<ScriptKit>,
    /// The From user (the planner's caller ID); `None`: the endpoint's default.
    caller_id: Option<String>,
    /// The planner's trunk choice (an index into the configured trunks).
    trunk: usize,
    learn: Learning,
    /// Agent-assisted campaigns: the call's place among the lines in flight.
    line: Option<Arc<pacing::Line>>,
}

/// The call's part in the campaign's learning experiments.
struct Learning {
    experiments: Arc<experiments::Experiments>,
    script: String,
    segment: String,
    /// The bandits' choices: (state, variant id).
    variants: Vec<(String, String)>,
}

/// One call from dial to the last event.
async fn call(
    ep: Arc<SipEndpoint>,
    store: &Store,
    opts: &Options,
    c: &Customer,
    call_id: &CallId,
    dial: CallDial,
) -> Finished {
    let CallDial {
        tz,
        contact,
        script,
        caller_id,
        trunk,
        learn,
        line,
    } = dial;
    let dialled = std::time::Instant::now();
    let clock = opts.clock.clone();
    // The trunk carrying the call, by name, for the bot (carrier recordings are per trunk).
    let trunk_slot = waihu_bot::TrunkSlot::default();
    let setup = waihu_bot::CallSetup {
        vars: call_vars(c, &opts.constants),
        seed: seed_of(call_id.as_str()),
        variants: learn.variants.clone(),
        tz,
        clock: Arc::new(move || clock.now()),
        handoff: None,
        customer: Some(c.id.0),
        phone: c.phone.clone(),
        trunk: trunk_slot.clone(),
    };
    let mut setup = setup;
    let handoff_rx = opts.handoff.as_ref().map(|_| {
        let (tx, rx) = std::sync::mpsc::channel();
        setup.handoff = Some(tx);
        rx
    });
    let handoff_out = Arc::new(std::sync::Mutex::new(handoff::Outcome::default()));
    let (notes_tx, mut notes_rx) = mpsc::unbounded_channel::<Note>();
    let mut result = CallResult {
        call_id: call_id.clone(),
        phone: c.phone.clone(),
        outcome: CallOutcome::Failed,
        business: None,
        level: None,
        duration_s: 0.0,
        turns: 0,
        barge_ins: 0,
        knowledge_answers: 0,
        knowledge_fallbacks: 0,
        announcement: None,
        analysis: None,
        voice: None,
        latencies: Vec::new(),
        speculation: Default::default(),
        handoff: handoff::HandoffResult::None,
        conversation: None,
        errors: Vec::new(),
    };
    let context =
        |h: &Arc<handoff::Handoff>, direct: Option<handoff::Direct>| handoff::CallContext {
            handoff: h.clone(),
            ep: ep.clone(),
            synth: opts.kit.synth.clone(),
            zh: script.lang() == "zh",
            customer: c.name.as_deref().map(waihu_core::mask_name),
            customer_id: Some(c.id),
            campaign: Some(opts.campaign_id),
            call_id: call_id.to_string(),
            clock: opts.clock.clone(),
            max_duration: opts.max_duration,
            outcome: handoff_out.clone(),
            direct,
        };
    let (agent, brain): (
        Box<dyn waihu_engine::agent::CallAgent>,
        tokio::task::JoinHandle<BotReport>,
    ) = match (line.clone(), &opts.campaign.agent_connect, &opts.handoff) {
        // Agent-assisted: no bot, straight to the queue.
        (Some(line), Some(ac), Some(h)) => {
            let zh = script.lang() == "zh";
            let direct = handoff::Direct {
                queue: ac.queue.clone(),
                wait: Duration::from_secs_f64(ac.abandon_after_s),
                message: ac
                    .message
                    .clone()
                    .unwrap_or_else(|| handoff::abandon_text(zh).to_string()),
                line,
            };
            (
                Box::new(handoff::CalleeLeg::direct(context(h, Some(direct)))),
                tokio::spawn(async { BotReport::default() }),
            )
        }
        _ => {
            let (agent, brain) = match waihu_bot::start(
                opts.kit.clone(),
                script.clone(),
                setup,
                Some(notes_tx.clone()),
            ) {
                Ok(x) => x,
                Err(e) => {
                    // The customer record lacks what the script needs: no call is placed.
                    result.errors.push(e.to_string());
                    let fin = CallFinish {
                        at: opts.clock.now(),
                        outcome: CallOutcome::Failed,
                        sip_status: None,
                        duration_s: 0.0,
                        business_outcome: None,
                        level: None,
                        path: Vec::new(),
                        path_variants: Vec::new(),
                        recording: None,
                        quality: None,
                    };
                    let ended = event(
                        opts,
                        c,
                        call_id,
                        EventKind::AttemptEnded {
                            outcome: CallOutcome::Failed,
                            sip_status: None,
                            duration_s: 0.0,
                        },
                    );
                    let _ = store.call_finished_with(call_id, &fin, &[ended]).await;
                    // Nobody heard a variant: no observation.
                    let _ = store.experiment_rewarded(call_id.as_str(), &[]).await;
                    return Finished {
                        contact,
                        result,
                        report: Report::outcome(CallOutcome::Failed),
                        dnc: false,
                        sample: None,
                    };
                }
            };
            let agent: Box<dyn waihu_engine::agent::CallAgent> = match (&opts.handoff, handoff_rx) {
                (Some(h), Some(rx)) => Box::new(handoff::CalleeLeg::new(
                    Box::new(agent),
                    rx,
                    context(h, None),
                )),
                _ => Box::new(agent),
            };
            (agent, tokio::spawn(brain))
        }
    };
    // Live notes → the store (the dashboard's live view and transcript).
    let writer = {
        let store = store.clone();
        let call_id = call_id.clone();
        let clock = opts.clock.clone();
        tokio::spawn(async move {
            while let Some(n) = notes_rx.recv().await {
                let r = match n {
                    Note::Node { state, emotion } => {
                        store
                            .call_progress(
                                &call_id,
                                "talking",
                                Some(&state),
                                emotion.as_deref(),
                                clock.now(),
                            )
                            .await
                    }
                    Note::Turn(t) => store.call_turn(&call_id, &t).await,
                };
                if let Err(e) = r {
                    tracing::warn!(call = %call_id, error = %e, "storing a live note failed");
                }
            }
        })
    };
    let wav = opts.spool.join(format!("{call_id}.wav"));
    let mut co = CallOptions::new(format!("sip:{}@{}", c.phone, opts.trunk));
    co.ring_timeout = opts.ring_timeout;
    co.from_user = caller_id;
    co.media = MediaOptions {
        record: Some(wav.clone()),
        max_duration: opts.max_duration,
        no_rtp_timeout: Duration::from_secs(10),
        ..MediaOptions::default()
    };
    let (prog_tx, mut prog_rx) = mpsc::unbounded_channel::<&'static str>();
    let prog_writer = {
        let store = store.clone();
        let call_id = call_id.clone();
        let clock = opts.clock.clone();
        tokio::spawn(async move {
            while let Some(s) = prog_rx.recv().await {
                let _ = store
                    .call_progress(&call_id, s, None, None, clock.now())
                    .await;
            }
        })
    };
    let mut on_progress = |p: &Progress| {
        if matches!(p, Progress::Ringing | Progress::EarlyMedia) {
            let _ = prog_tx.send("ringing");
        }
    };
    let report = match &opts.trunks {
        // Trunk selection and failover: still this one call, stored and counted once.
        Some(pool) => {
            let on_trunk = |name: &str| {
                if let Ok(mut t) = trunk_slot.lock() {
                    *t = Some(name.to_string());
                }
            };
            pool.place(&ep, co, &c.phone, trunk, agent, &mut on_progress, &on_trunk)
                .await
        }
        None => place_call_with(&ep, co, agent, &mut on_progress).await,
    };
    if let Some(l) = &line {
        l.done();
    }
    drop(prog_tx);
    drop(notes_tx);
    let bot: BotReport = brain.await.unwrap_or_default();
    let _ = writer.await;
    let _ = prog_writer.await;
    let now = opts.clock.now();
    let (outcome, sip_status, duration_s) = match &report {
        Ok(r) => (r.outcome, r.sip_status, r.duration_s),
        Err(e) => {
            result.errors.push(e.to_string());
            (CallOutcome::Failed, None, 0.0)
        }
    };
    let outcome = match (bot.voicemail, bot.network_outcome) {
        (true, _) => CallOutcome::Voicemail,
        // An announcement names the real reason: before a failure (the SIP
        // status carriers send with it is often a generic 480 or 487), or
        // after a 200 OK (carriers that answer to play it).
        (false, Some(n)) => n,
        _ => outcome,
    };
    let recording = match std::fs::read(&wav) {
        Ok(b) if outcome.connected() => Some(b),
        _ => None,
    };
    let _ = std::fs::remove_file(&wav);
    let answered = outcome == CallOutcome::Answered;
    let transfer = std::mem::take(&mut *handoff_out.lock().unwrap_or_else(|e| e.into_inner()));
    // No agent came: the call ends `callback`, not `transferred`.
    let transfer_callback = match &transfer.result {
        handoff::HandoffResult::Callback { at } => Some(*at),
        _ => None,
    };
    let dropped = matches!(transfer.result, handoff::HandoffResult::Dropped { .. });
    let business = answered.then(|| match (transfer_callback, &transfer.result) {
        (Some(_), _) => "callback".to_string(),
        (None, handoff::HandoffResult::Dropped { .. }) => "abandoned".to_string(),
        // Agent-assisted: no bot, the agent's call.
        (None, handoff::HandoffResult::Bridged { .. }) if line.is_some() => {
            "transferred".to_string()
        }
        (None, _) => bot.outcome.clone().unwrap_or_else(|| "hangup".into()),
    });
    if let Some(wav) = &transfer.agent_recording {
        if let Err(e) = store.put_leg_recording(call_id, "agent", wav, now).await {
            result
                .errors
                .push(format!("store: agent leg recording: {e}"));
        }
    }
    result.handoff = transfer.result.clone();
    let fin = CallFinish {
        at: now,
        outcome,
        sip_status,
        duration_s,
        business_outcome: business.clone(),
        level: if answered { bot.level.clone() } else { None },
        path: bot.path.clone(),
        path_variants: bot.path_variants.clone(),
        recording,
        quality: report.as_ref().ok().and_then(quality_of),
    };
    let mut conversation = None;
    let mut events = vec![EventKind::AttemptEnded {
        outcome,
        sip_status,
        duration_s,
    }];
    if let Some(a) = &bot.analysis {
        events.push(a.event());
    }
    let mut callback_at = None;
    let mut dnc = false;
    if answered {
        let mut ended = bot.conversation_ended();
        if let (Some(b), EventKind::ConversationEnded { outcome, .. }) = (&business, &mut ended) {
            outcome.clone_from(b);
        }
        conversation = Some(ended.clone());
        events.push(ended);
        for (_, k) in &transfer.events {
            events.push(k.clone());
        }
        if let Some(t) = report.as_ref().ok().and_then(|r| r.transfer.as_ref()) {
            events.push(EventKind::TransferReferred {
                target: t.target.clone(),
                succeeded: t.succeeded,
                settled_ms: t.settled_ms.map(|m| m.round() as u64),
                progress: t.progress.clone(),
            });
        }
        if let Some(at) = transfer_callback {
            callback_at = Some(at);
            events.push(EventKind::CallbackRequested { when: at });
        }
        if dropped {
            // The compliance checker's abandon rate counts these.
            events.push(EventKind::CallAbandoned {
                phone: PhoneIndex(store.vault().blind_index(&c.phone)),
            });
        }
        for a in &bot.actions {
            match a {
                DialogAction::Callback { at } => {
                    callback_at = Some(*at);
                    events.push(EventKind::CallbackRequested { when: *at });
                }
                DialogAction::AddDnc => dnc = true,
                _ => {}
            }
        }
    }
    // The call's end, its business result and a callback request commit together.
    let events: Vec<Event> = events
        .into_iter()
        .map(|k| event(opts, c, call_id, k))
        .collect();
    if let Err(e) = store.call_finished_with(call_id, &fin, &events).await {
        result.errors.push(format!("store: {e}"));
    }
    if !learn.variants.is_empty() {
        let rewards = script.prog.bandit_rewards(
            &fin.path,
            &fin.path_variants,
            fin.business_outcome.as_deref(),
            fin.level.as_deref(),
        );
        let stored: Vec<(String, bool)> = rewards
            .iter()
            .map(|r| (r.state.clone(), r.success))
            .collect();
        match store.experiment_rewarded(call_id.as_str(), &stored).await {
            Ok(()) => learn
                .experiments
                .observe(&learn.script, &learn.segment, &rewards),
            Err(e) => result.errors.push(format!("store: {e}")),
        }
    }
    result.outcome = outcome;
    result.business = business;
    result.level = fin.level.clone();
    result.conversation = conversation;
    result.duration_s = duration_s;
    result.turns = bot.turns.len();
    result.barge_ins = bot.barge_ins;
    result.knowledge_answers = bot.knowledge_answers;
    result.knowledge_fallbacks = bot.knowledge_fallbacks;
    result.announcement = bot.announcement.clone();
    result.analysis = bot.analysis.clone();
    result.voice = bot.voice.clone();
    result.latencies = bot.latencies.clone();
    result.speculation = bot.speculation;
    result.errors.extend(bot.errors.iter().cloned());
    let sample = line.is_some().then(|| pacing::Sample {
        connected: answered,
        answer_delay: transfer
            .answered_at
            .map(|a| a.saturating_duration_since(dialled)),
        abandoned: dropped,
        talk: transfer.talk,
    });
    Finished {
        contact,
        result,
        sample,
        report: Report {
            outcome,
            callback_at,
            do_not_call: dnc,
            abandoned: dropped,
            // The learned policy's conversion model learns from the business outcome.
            converted: fin
                .business_outcome
                .as_deref()
                .is_some_and(|o| waihu_core::kpi::DEFAULT_CONVERSION_OUTCOMES.contains(&o)),
        },
        dnc,
    }
}

fn event(opts: &Options, c: &Customer, call_id: &CallId, kind: EventKind) -> Event {
    Event {
        at: opts.clock.now(),
        customer: Some(c.id),
        campaign: Some(opts.campaign_id),
        call: Some(call_id.clone()),
        kind,
    }
}

/// An attempt is over: tell the planner, carry out what it decides, count.
async fn finish(
    store: &Store,
    planner: &mut Planner,
    opts: &Options,
    summary: &mut Summary,
    f: Finished,
) -> Result<(), DialerError> {
    let now = opts.clock.now();
    *summary
        .outcomes
        .entry(f.result.outcome.as_str().to_string())
        .or_default() += 1;
    if let Some(b) = &f.result.business {
        *summary.business.entry(b.clone()).or_default() += 1;
    }
    if let Some(l) = &f.result.level {
        *summary.levels.entry(l.clone()).or_default() += 1;
    }
    if f.dnc {
        if store
            .dnc_add(&f.result.phone, "global", "callee asked on a call", now)
            .await?
        {
            summary.dnc_added += 1;
        }
        planner.add_dnc(&f.result.phone);
    }
    for a in planner.on_outcome(now, f.contact, f.report) {
        match a {
            PlanAction::CallbackScheduled { .. } => summary.callbacks += 1,
            PlanAction::SendMessage {
                customer,
                channel,
                template,
            } => {
                summary.fallback_messages += 1;
                if let Some(set) = &opts.messages {
                    queue_fallback(store, opts, set, customer, channel, &template, now).await?;
                }
            }
            PlanAction::AddDnc { .. } | PlanAction::Finished { .. } => {}
        }
    }
    summary.calls.push(f.result);
    Ok(())
}

#[cfg(test)]
mod clock_tests {
    use super::*;

    fn start() -> DateTime<Utc> {
        "2026-12-07T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn a_skipping_clock_lands_on_the_entry_and_a_gathering_one_past_it() {
        let hour = chrono::Duration::hours(1);
        let plain = CampaignClock::starting_at(start(), true);
        assert!(plain.skip_to(start() + hour));
        let off = (plain.now() - (start() + hour)).num_seconds();
        assert!((0..5).contains(&off), "plain clock {off} s past the entry");

        let gathering = CampaignClock::gathering(start(), chrono::Duration::minutes(20));
        assert!(gathering.skip_to(start() + hour));
        let off = (gathering.now() - (start() + hour)).num_seconds();
        assert!(
            (1200..1205).contains(&off),
            "gathering clock {off} s past the entry"
        );

        // Never back, and the system clock never jumps.
        assert!(!gathering.skip_to(start()));
        let system = CampaignClock::system();
        assert!(!system.skip_to(Utc::now() + hour));
    }
}
