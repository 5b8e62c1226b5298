//! Campaign definition: the YAML a user writes, and the validated [`Campaign`]
//! the planner runs. Parsing reports the field path, line and column of the
//! first syntax or type error; [`Campaign::from_yaml`] then collects every
//! semantic problem (overlapping windows, caps that contradict each other, a
//! window outside the legal bound of a country) with its field path.
use std::collections::{BTreeMap, HashSet};
use std::fmt;

use chrono::{NaiveDate, NaiveTime, Timelike, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use waihu_core::{CallOutcome, CampaignId};

/// One problem in a campaign file: where (field path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path such as `retry.busy.after` or `trunks[1].cps`.
    pub path: String,
    /// 1-based line and column when the parser knows them.
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "line {l} column {c}: {}: {}", self.path, self.message),
            _ => write!(f, "{}: {}", self.path, self.message),
        }
    }
}

/// Every problem found in a campaign file (at least one).
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub issues: Vec<ConfigIssue>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid campaign definition / 活动定义无效 ({} problem(s))",
            self.issues.len()
        )?;
        for i in &self.issues {
            write!(f, "\n  - {i}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// The file format (what serde reads). Unknown fields are errors so that a
// misspelt `per_number_per_dya` does not silently mean "no cap".
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignFile {
    pub name: String,
    /// Row id in the store; events carry it. Defaults to 1 for files used alone.
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub priority: Option<i32>,
    /// IANA zone used for active dates and caller-ID daily counters.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Country whose default calling windows apply (`CN`, `US`).
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub active: Option<ActiveFile>,
    #[serde(default)]
    pub windows: Option<BTreeMap<String, Vec<String>>>,
    /// Legal outer bounds by E.164 prefix; defaults to `+1: 08:00-21:00`.
    #[serde(default)]
    pub legal_bounds: Option<Vec<LegalBoundFile>>,
    #[serde(default)]
    pub holidays: Vec<NaiveDate>,
    #[serde(default)]
    pub caps: CapsFile,
    #[serde(default)]
    pub retry: BTreeMap<String, RetryFile>,
    #[serde(default)]
    pub callback: Option<CallbackFile>,
    #[serde(default)]
    pub dnc: DncFile,
    #[serde(default)]
    pub consent: ConsentFile,
    #[serde(default)]
    pub trunks: Vec<TrunkFile>,
    /// A trunks file (relative to the campaign file) for live calls; see [`crate::trunks`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks_file: Option<String>,
    #[serde(default)]
    pub caller_ids: Option<CallerIdsFile>,
    pub segments: Vec<SegmentFile>,
    #[serde(default)]
    pub fallback: Vec<FallbackFile>,
    #[serde(default)]
    pub pacing: Option<PacingFile>,
    #[serde(default)]
    pub ranking: Option<RankingFile>,
    /// Quiet hours and per-number caps for follow-up messages. The message sender
    /// (`waihu_messaging::gate`) and the compliance checker read them from the stored
    /// file; this parser only validates them at load.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<MessagesFile>,
    /// Operators' recordings of their carriers' announcements (WAV, relative to
    /// the campaign file), recognised on live calls by their audio fingerprint.
    /// The runtime reads and checks the files (`waihu_amd::fingerprint`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub announcements: Vec<AnnouncementFile>,
    /// Speech recognition for this campaign's calls; default: the embedded
    /// Whisper for the script's language.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr: Option<AsrFile>,
}

/// The engines `asr.engine` may name.
pub const ASR_ENGINES: [&str; 2] = ["whisper", "openai"];

/// `asr: {engine: openai, url: http://10.0.0.5:8000/v1}`: where a campaign's
/// calls are transcribed.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AsrFile {
    /// `whisper` (embedded, the default) or `openai` (an OpenAI-compatible
    /// transcription server: `waihu asr --serve`, faster-whisper servers,
    /// vLLM, OpenAI itself).
    #[serde(default = "default_asr_engine")]
    pub engine: String,
    /// whisper: a model name under the models directory (`whisper-tiny.en`,
    /// `whisper-base`) or a directory (relative to the campaign file);
    /// openai: the model name sent (default `whisper-1`).
    #[serde(default)]
    pub model: Option<String>,
    /// openai: the API base, `http(s)://host:port/v1`.
    #[serde(default)]
    pub url: Option<String>,
    /// openai: the environment variable holding the API key (never the key).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Utterances transcribed at once (default: one per core for whisper, 8
    /// for a server).
    #[serde(default)]
    pub slots: Option<usize>,
    /// Terms that bias recognition through the decoder prompt (Whisper) or
    /// as hot words (FunASR): the shop, the product, and `{variable}`
    /// references to each call's own values (`{name}`: the customer's name).
    #[serde(default)]
    pub vocabulary: Vec<String>,
}

fn default_asr_engine() -> String {
    "whisper".into()
}

/// `announcements: [{kind: suspended, file: carrier/cmcc-停机.wav}]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnouncementFile {
    /// vacant (空号), suspended (停机), powered_off (关机), unreachable
    /// (无法接通), busy (忙) or sit.
    pub kind: String,
    pub file: String,
    /// Shown in reports; default: the file name.
    #[serde(default)]
    pub name: Option<String>,
    /// The trunk (by its name) whose carrier plays this recording: tried only
    /// on calls that trunk carried (after failover, the trunk that gave the
    /// final answer). Default: every trunk. The runtime checks the name
    /// against the trunks it dials through (a `--trunks` file may replace the
    /// campaign's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunk: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesFile {
    /// Recipient-local spans with no messages (`21:00-08:00` may wrap midnight); default
    /// `["21:00-08:00"]`, `[]` for none.
    #[serde(default)]
    pub quiet_hours: Option<Vec<String>>,
    /// Messages per number per recipient-local day, all campaigns and channels (default 2).
    #[serde(default)]
    pub per_number_per_day: Option<u32>,
    /// ... per recipient-local ISO week (default 5).
    #[serde(default)]
    pub per_number_per_week: Option<u32>,
    /// A message deferred past this many hours after it was queued is suppressed (default 72).
    #[serde(default)]
    pub max_delay_hours: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ActiveFile {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LegalBoundFile {
    pub prefix: String,
    pub window: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CapsFile {
    /// Attempts per number per callee-local calendar day, across all campaigns.
    #[serde(default)]
    pub per_number_per_day: Option<u32>,
    /// Attempts per number per callee-local ISO week (Mon–Sun), across all campaigns.
    #[serde(default)]
    pub per_number_per_week: Option<u32>,
    /// Attempts per contact in this campaign.
    #[serde(default)]
    pub max_attempts: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RetryFile {
    /// `stop`: never retry after this outcome.
    Word(String),
    Rule {
        after: String,
        #[serde(default)]
        max: Option<u32>,
    },
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackFile {
    #[serde(default = "yes")]
    pub honour: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DncFile {
    /// Number prefixes never dialled (`+86170`: virtual operators, say).
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Inclusive number ranges of equal length.
    #[serde(default)]
    pub ranges: Vec<DncRangeFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DncRangeFile {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentFile {
    #[serde(default)]
    pub required: bool,
}

/// One trunk as written: capacity (all the planner and simulator need) and, for live
/// calls, where and how to reach it — validated by [`crate::trunks`].
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrunkFile {
    pub name: String,
    #[serde(alias = "max_channels")]
    pub channels: u32,
    #[serde(alias = "max_cps")]
    pub cps: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_proxy",
        skip_serializing_if = "Option::is_none"
    )]
    pub proxy: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_transport",
        skip_serializing_if = "Option::is_none"
    )]
    pub transport: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub realm: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// Only here to refuse it with a clear error: passwords never live in the YAML.
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_refuse_password",
        skip_serializing
    )]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub register: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u32>,
    /// SDES-SRTP for this trunk's calls: `off` (default), `optional`, `mandatory`.
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_srtp",
        skip_serializing_if = "Option::is_none"
    )]
    pub srtp: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_proxy",
        skip_serializing_if = "Option::is_none"
    )]
    pub outbound_proxy: Option<String>,
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_number_format",
        skip_serializing_if = "Option::is_none"
    )]
    pub number_format: Option<String>,
    /// Send the caller ID in `P-Asserted-Identity` (RFC 3325), for trunks that ask for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asserted_identity: Option<bool>,
    /// `Privacy` header value (RFC 3323/3325): `none`, `id`, `header`, `user`, `session`,
    /// `critical`, joined by `;`.
    #[serde(
        default,
        deserialize_with = "crate::trunks::de_privacy",
        skip_serializing_if = "Option::is_none"
    )]
    pub privacy: Option<String>,
    /// `transport: tls` only: CA certificates (PEM file, relative to the trunk file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<String>,
    /// `transport: tls` only: the name the proxy's certificate must carry (SNI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<String>,
    /// The DNS server the trunk's proxy is resolved with (RFC 3263 NAPTR/SRV/A):
    /// `127.0.0.1:5353` or an address (port 53). Default: `WAIHU_DNS_SERVER`, else the
    /// system's resolv.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_server: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdsFile {
    #[serde(default = "yes")]
    pub local_presence: bool,
    pub pool: Vec<CallerIdFile>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CallerIdFile {
    pub number: String,
    #[serde(default)]
    /// `province/city` or one name (`北京`); when absent, the number's own from the
    /// 号段归属地 table ([`Campaign::locate_caller_ids`]).
    pub region: Option<String>,
    #[serde(default)]
    pub daily_cap: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentFile {
    pub name: String,
    pub script: String,
    #[serde(default)]
    pub value: Option<f64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FallbackFile {
    pub after_unanswered: u32,
    pub channel: String,
    pub template: String,
    /// `has_app`: only for customers with the app.
    #[serde(default)]
    pub when: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PacingFile {
    pub mode: String,
    #[serde(default)]
    pub target_abandon_rate: Option<f64>,
    /// `bot` (default): the voice bot takes an answered call. `agent`: an
    /// answered call goes straight to a human in `queue` (agent-assisted).
    #[serde(default)]
    pub connect: Option<String>,
    #[serde(default)]
    pub queue: Option<String>,
    /// `connect: agent`: how long an answered callee may wait for an agent
    /// before the call is abandoned (≤ 2 s, the TCPA/Ofcom rule).
    #[serde(default)]
    pub abandon_after_s: Option<f64>,
    /// `connect: agent`: what an abandoned callee hears (who called, that
    /// we will call back, how to opt out). A default by language otherwise.
    #[serde(default)]
    pub abandon_message: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RankingFile {
    #[serde(default)]
    pub policy: Option<String>,
    #[serde(default)]
    pub prior_answer_rate: Option<f64>,
    #[serde(default)]
    pub prior_strength: Option<f64>,
    /// Best-time only: leave a segment for later when its answer rate this
    /// hour is below this fraction of its best open hour in the next 24 h.
    #[serde(default)]
    pub defer_below: Option<f64>,
    /// Read by `policy: learned` only: costs and the message-first channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learning: Option<LearningFile>,
}

/// `ranking.learning`: what the learned policy weighs when it chooses between
/// calling, a message first, or no contact (in the units of segment `value`).
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LearningFile {
    /// Cost of one call attempt.
    #[serde(default)]
    pub call_cost: Option<f64>,
    /// Message first: `{channel: sms|push, template, cost, wait}`.
    #[serde(default)]
    pub message_first: Option<MessageFirstFile>,
    /// Share of contacts that follow the other choice, so the models keep learning.
    #[serde(default)]
    pub explore: Option<f64>,
    /// Contacts whose every choice is worth less than its cost are not contacted.
    #[serde(default)]
    pub skip_unprofitable: Option<bool>,
    /// Answer outcomes before the models choose channels (default 2000; the
    /// conversion and message heads need a seventh and a tenth of it).
    #[serde(default)]
    pub min_outcomes: Option<u64>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MessageFirstFile {
    #[serde(default)]
    pub channel: Option<String>,
    pub template: String,
    #[serde(default)]
    pub cost: Option<f64>,
    /// How long to wait for the message to work before calling (`1d`, `6h`).
    #[serde(default)]
    pub wait: Option<String>,
}

// ---------------------------------------------------------------------------
// The validated campaign.
// ---------------------------------------------------------------------------

/// Half-open window `[start, end)` in seconds after local midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start: u32,
    pub end: u32,
}

impl Window {
    pub fn contains(&self, sec_of_day: u32) -> bool {
        self.start <= sec_of_day && sec_of_day < self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Retry {
    Stop,
    After { secs: i64, max: Option<u32> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trunk {
    pub name: String,
    pub channels: u32,
    pub cps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerId {
    pub number: String,
    pub digits: u64,
    pub region: Option<String>,
    pub daily_cap: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Segment {
    pub name: String,
    pub script: String,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum FallbackChannel {
    Sms,
    Push,
}

impl FallbackChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            FallbackChannel::Sms => "sms",
            FallbackChannel::Push => "push",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub after_unanswered: u32,
    pub channel: FallbackChannel,
    pub template: String,
    pub only_with_app: bool,
}

/// An agent-assisted campaign: every answered call is connected to an agent
/// of `queue`, or abandoned after `abandon_after_s` with `message`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentConnect {
    pub queue: String,
    pub abandon_after_s: f64,
    pub message: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum PacingMode {
    /// Bot calls: fill free channels within CPS.
    Progressive,
    /// Human agents: dial ahead, keep abandoned calls at or under the target.
    Predictive { target_abandon_rate: f64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Policy {
    /// Rank by expected value: answer probability this hour × segment value × recency.
    BestTime,
    /// Oldest-eligible first, fixed retries: the baseline.
    Fifo,
    /// Best-time's hour-of-week model × a learned per-customer answer factor ×
    /// learned conversion probability, and a choice of channel per contact
    /// (call, message first, or none); see [`Learning`].
    Learned,
}

/// Settings of the learned policy (`ranking.learning`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learning {
    pub call_cost: f64,
    /// `(channel, template, cost, wait seconds)`.
    pub message_first: Option<MessageFirst>,
    pub explore: f64,
    pub skip_unprofitable: bool,
    pub min_outcomes: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageFirst {
    pub channel: FallbackChannel,
    pub template: String,
    pub cost: f64,
    pub wait_secs: i64,
}

impl Default for Learning {
    fn default() -> Self {
        Learning {
            call_cost: 0.02,
            message_first: None,
            explore: 0.05,
            skip_unprofitable: false,
            min_outcomes: 2_000,
        }
    }
}

/// A number range (inclusive) of E.164 digits, both ends of equal length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DigitRange {
    pub from: u64,
    pub to: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LegalBound {
    pub prefix: u64,
    pub prefix_len: u32,
    pub window: Window,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub priority: i32,
    #[serde(serialize_with = "ser_tz")]
    pub timezone: Tz,
    pub active: Option<(NaiveDate, NaiveDate)>,
    /// Windows per weekday, Monday = 0.
    pub windows: [Vec<Window>; 7],
    pub legal_bounds: Vec<LegalBound>,
    pub holidays: HashSet<NaiveDate>,
    pub per_number_per_day: Option<u32>,
    pub per_number_per_week: Option<u32>,
    pub max_attempts: u32,
    /// Indexed by [`outcome_index`].
    pub retry: [Retry; CallOutcome::ALL.len()],
    pub honour_callbacks: bool,
    pub dnc_prefixes: Vec<(u64, u32)>,
    pub dnc_ranges: Vec<DigitRange>,
    pub consent_required: bool,
    pub trunks: Vec<Trunk>,
    pub caller_ids: Vec<CallerId>,
    pub local_presence: bool,
    pub segments: Vec<Segment>,
    pub fallback: Vec<Fallback>,
    pub pacing: PacingMode,
    /// `pacing.connect: agent`: answered calls go straight to human agents.
    pub agent_connect: Option<AgentConnect>,
    pub policy: Policy,
    pub prior_answer_rate: f64,
    pub prior_strength: f64,
    pub defer_below: f64,
    pub learning: Learning,
    /// Operators' carrier announcement recordings (paths as written, relative
    /// to the campaign file).
    pub announcements: Vec<AnnouncementFile>,
    /// Where the calls are transcribed (checked at load; the runtime builds it).
    pub asr: Option<AsrFile>,
}

fn ser_tz<S: serde::Serializer>(tz: &Tz, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(tz.name())
}

pub fn outcome_index(o: CallOutcome) -> usize {
    match o {
        CallOutcome::Answered => 0,
        CallOutcome::Busy => 1,
        CallOutcome::NoAnswer => 2,
        CallOutcome::Rejected => 3,
        CallOutcome::InvalidNumber => 4,
        CallOutcome::Suspended => 5,
        CallOutcome::Congestion => 6,
        CallOutcome::PoweredOff => 7,
        CallOutcome::Voicemail => 8,
        CallOutcome::Failed => 9,
    }
}

/// Default retry policy when the file names none for an outcome.
fn default_retry(o: CallOutcome) -> Retry {
    let h = 3600;
    match o {
        CallOutcome::Answered | CallOutcome::InvalidNumber | CallOutcome::Rejected => Retry::Stop,
        CallOutcome::Busy => Retry::After {
            secs: h / 2,
            max: None,
        },
        CallOutcome::NoAnswer => Retry::After {
            secs: 3 * h,
            max: None,
        },
        CallOutcome::PoweredOff => Retry::After {
            secs: 4 * h,
            max: None,
        },
        // 停机 is mostly a line cut off for an unpaid bill: once paid (days
        // later) it takes calls again. One more try after three days.
        CallOutcome::Suspended => Retry::After {
            secs: 72 * h,
            max: Some(1),
        },
        CallOutcome::Voicemail => Retry::After {
            secs: 24 * h,
            max: None,
        },
        CallOutcome::Congestion => Retry::After {
            secs: 300,
            max: None,
        },
        CallOutcome::Failed => Retry::After {
            secs: 600,
            max: None,
        },
    }
}

/// The announcement kinds `announcements[].kind` may name (`waihu_amd`'s).
pub const ANNOUNCEMENT_KINDS: [&str; 6] = [
    "vacant",
    "suspended",
    "powered_off",
    "unreachable",
    "busy",
    "sit",
];

/// The shape of `announcements:`; the files themselves are read by the runtime.
fn announcements_check(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) {
    for (i, a) in f.announcements.iter().enumerate() {
        if !ANNOUNCEMENT_KINDS.contains(&a.kind.trim()) {
            bad(
                &format!("announcements[{i}].kind"),
                format!(
                    "'{}': use {} / 未知的运营商提示音类型",
                    a.kind,
                    ANNOUNCEMENT_KINDS.join(", ")
                ),
            );
        }
        if a.file.trim().is_empty() {
            bad(
                &format!("announcements[{i}].file"),
                "empty: name a WAV recording of the announcement".into(),
            );
        }
    }
}

/// The shape of `asr:`; the runtime loads the model or reaches the server.
fn asr_check(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) {
    let Some(a) = &f.asr else { return };
    let engine = a.engine.trim();
    if !ASR_ENGINES.contains(&engine) {
        bad(
            "asr.engine",
            format!(
                "'{}': use {} / 未知的语音识别引擎",
                a.engine,
                ASR_ENGINES.join(", ")
            ),
        );
    }
    let url = a.url.as_deref().map(str::trim);
    match (engine, url) {
        ("openai", None) => bad(
            "asr.url",
            "engine openai needs the server's API base, e.g. http://10.0.0.5:8000/v1".into(),
        ),
        ("openai", Some(u)) if !(u.starts_with("http://") || u.starts_with("https://")) => bad(
            "asr.url",
            format!("'{u}': an http:// or https:// API base, e.g. http://10.0.0.5:8000/v1"),
        ),
        ("whisper", Some(_)) => bad(
            "asr.url",
            "the embedded whisper engine has no URL; use engine: openai for a server".into(),
        ),
        _ => {}
    }
    if engine == "whisper" && a.api_key_env.is_some() {
        bad(
            "asr.api_key_env",
            "the embedded whisper engine takes no API key".into(),
        );
    }
    if a.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        bad("asr.model", "empty: name a model, or leave it out".into());
    }
    if a.slots.is_some_and(|n| n == 0 || n > 256) {
        bad("asr.slots", "between 1 and 256".into());
    }
    if a.vocabulary.len() > 32 {
        bad(
            "asr.vocabulary",
            format!(
                "{} terms: at most 32 (the prompt holds ~100 tokens)",
                a.vocabulary.len()
            ),
        );
    }
    for (i, t) in a.vocabulary.iter().enumerate() {
        let t = t.trim();
        let var = t.strip_prefix('{').and_then(|r| r.strip_suffix('}'));
        if t.is_empty() || t.chars().count() > 64 {
            bad(&format!("asr.vocabulary[{i}]"), "1 to 64 characters".into());
        } else if t.contains(['{', '}'])
            && !var.is_some_and(|v| {
                !v.is_empty()
                    && v.chars()
                        .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
            })
        {
            bad(
                &format!("asr.vocabulary[{i}]"),
                format!("{t:?}: a term, or a whole `{{variable}}`"),
            );
        }
    }
}

/// `"30m"`, `"2h"`, `"1d"`, `"1h30m"`, `"45s"` → seconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() {
            num.push(ch);
            continue;
        }
        let mult = match ch {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 7 * 86400,
            _ => {
                return Err(format!(
                    "'{s}': unexpected '{ch}' (use e.g. 45s, 30m, 2h, 1d, 1h30m)"
                ))
            }
        };
        let n: i64 = num
            .parse()
            .map_err(|_| format!("'{s}': a number must come before '{ch}'"))?;
        total = total
            .checked_add(
                n.checked_mul(mult)
                    .ok_or_else(|| format!("'{s}': too large"))?,
            )
            .ok_or_else(|| format!("'{s}': too large"))?;
        num.clear();
    }
    if !num.is_empty() {
        return Err(format!("'{s}': missing unit after {num} (s, m, h, d, w)"));
    }
    Ok(total)
}

/// `"09:00-12:00"` → window; `24:00` is allowed as an end.
pub fn parse_window(s: &str) -> Result<Window, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("'{s}': expected HH:MM-HH:MM"))?;
    let start =
        parse_hhmm(a.trim()).ok_or_else(|| format!("'{s}': bad start time '{}'", a.trim()))?;
    let end = parse_hhmm(b.trim()).ok_or_else(|| format!("'{s}': bad end time '{}'", b.trim()))?;
    if end <= start {
        return Err(format!("'{s}': end must be after start"));
    }
    Ok(Window { start, end })
}

fn parse_hhmm(s: &str) -> Option<u32> {
    if s == "24:00" {
        return Some(86400);
    }
    let t = NaiveTime::parse_from_str(s, "%H:%M").ok()?;
    Some(t.num_seconds_from_midnight())
}

/// `"+8613800138000"` (or without `+`) → digits as a number.
pub fn parse_digits(s: &str) -> Option<(u64, u32)> {
    let d = s.trim().strip_prefix('+').unwrap_or(s.trim());
    if d.is_empty() || d.len() > 18 || !d.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((d.parse().ok()?, d.len() as u32))
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

pub fn weekday_index(w: Weekday) -> usize {
    w.num_days_from_monday() as usize
}

impl Campaign {
    /// Give every caller ID without a `region` in the campaign file the
    /// province/city of its number (`+8675588881234` → `广东/深圳`, mobile
    /// segments too), for local presence. Returns how many were located.
    pub fn locate_caller_ids(&mut self, geo: &waihu_geo::Table) -> usize {
        let mut n = 0;
        for c in &mut self.caller_ids {
            if c.region.is_none() {
                c.region = geo.region(&c.number);
                n += usize::from(c.region.is_some());
            }
        }
        n
    }

    /// Parse and validate. Syntax and type errors carry line, column and field
    /// path; semantic errors carry the field path, all of them at once.
    pub fn from_yaml(text: &str) -> Result<Campaign, ConfigError> {
        let de = serde_norway::Deserializer::from_str(text);
        let file: CampaignFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let loc = inner.location();
            // The YAML error repeats the path and location; keep its message only.
            let mut message = inner.to_string();
            if let Some(l) = &loc {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                if let Some(m) = message.strip_suffix(&suffix) {
                    message = m.to_string();
                }
            }
            if let Some(m) = message.strip_prefix(&format!("{path}: ")) {
                message = m.to_string();
            }
            ConfigError {
                issues: vec![ConfigIssue {
                    path: if path.is_empty() || path == "." {
                        "(document)".into()
                    } else {
                        path
                    },
                    line: loc.as_ref().map(|l| l.line()),
                    column: loc.as_ref().map(|l| l.column()),
                    message,
                }],
            }
        })?;
        Campaign::from_file(file)
    }

    pub fn from_file(f: CampaignFile) -> Result<Campaign, ConfigError> {
        let mut issues = Vec::new();
        let mut bad = |path: &str, message: String| {
            issues.push(ConfigIssue {
                path: path.into(),
                line: None,
                column: None,
                message,
            })
        };
        if f.name.trim().is_empty() {
            bad("name", "must not be empty".into());
        }
        // Each section reports through `bad` and carries on, so the user sees every problem
        // at once; issues are listed in the order of the calls below.
        let timezone = timezone_from(&f, &mut bad);
        let country = f.country.as_deref().unwrap_or("CN").to_ascii_uppercase();
        let windows = windows_from(&f, &country, &mut bad);
        let legal_bounds = legal_bounds_from(&f, &mut bad);
        check_windows(&country, &windows, &mut bad);
        let active = active_from(&f, &mut bad);
        let max_attempts = caps_from(&f, &mut bad);
        let retry = retry_from(&f, &mut bad);
        announcements_check(&f, &mut bad);
        asr_check(&f, &mut bad);
        let (dnc_prefixes, dnc_ranges) = dnc_from(&f, &mut bad);
        let trunks = trunks_from(&f, &mut bad);
        let (caller_ids, local_presence) = caller_ids_from(&f, &mut bad);
        let segments = segments_from(&f, &mut bad);
        let fallback = fallback_from(&f, &mut bad);
        let pacing = pacing_from(&f, &mut bad);
        let agent_connect = agent_connect_from(&f, &mut bad);
        let Ranking {
            policy,
            prior_answer_rate,
            prior_strength,
            defer_below,
            learning,
        } = ranking_from(&f, &mut bad);
        messages_check(&f, &mut bad);
        let honour_callbacks = f.callback.as_ref().map(|c| c.honour).unwrap_or(true);
        if !issues.is_empty() {
            return Err(ConfigError { issues });
        }
        Ok(Campaign {
            id: CampaignId(f.id.unwrap_or(1)),
            name: f.name,
            priority: f.priority.unwrap_or(0),
            timezone,
            active,
            windows,
            legal_bounds,
            holidays: f.holidays.into_iter().collect(),
            per_number_per_day: f.caps.per_number_per_day,
            per_number_per_week: f.caps.per_number_per_week,
            max_attempts,
            retry,
            honour_callbacks,
            dnc_prefixes,
            dnc_ranges,
            consent_required: f.consent.required,
            trunks,
            caller_ids,
            local_presence,
            segments,
            fallback,
            pacing,
            agent_connect,
            policy,
            prior_answer_rate,
            prior_strength,
            defer_below,
            learning,
            announcements: f.announcements.clone(),
            asr: f.asr.clone(),
        })
    }

    pub fn segment_index(&self, name: &str) -> Option<usize> {
        self.segments.iter().position(|s| s.name == name)
    }
}

/// Where the `ranking` section leaves the planner's policy and its priors.
struct Ranking {
    policy: Policy,
    prior_answer_rate: f64,
    prior_strength: f64,
    defer_below: f64,
    learning: Learning,
}

fn timezone_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Tz {
    match f.timezone.as_deref().unwrap_or("Asia/Shanghai").parse() {
        Ok(tz) => tz,
        Err(_) => {
            bad(
                "timezone",
                format!(
                    "unknown IANA time zone '{}'",
                    f.timezone.as_deref().unwrap_or("")
                ),
            );
            chrono_tz::Asia::Shanghai
        }
    }
}

/// Calling windows per weekday: the country's defaults, overridden by `windows:`.
fn windows_from(
    f: &CampaignFile,
    country: &str,
    bad: &mut impl FnMut(&str, String),
) -> [Vec<Window>; 7] {
    let default_windows: Vec<Window> = match country {
        "CN" => vec![
            Window {
                start: 9 * 3600,
                end: 12 * 3600,
            },
            Window {
                start: 14 * 3600,
                end: 20 * 3600,
            },
        ],
        "US" => vec![Window {
            start: 9 * 3600,
            end: 20 * 3600,
        }],
        other => {
            if f.windows.is_none() {
                bad(
                    "country",
                    format!("no default windows for '{other}'; give `windows:` explicitly"),
                );
            }
            Vec::new()
        }
    };
    let mut windows: [Vec<Window>; 7] = std::array::from_fn(|_| default_windows.clone());
    if let Some(w) = &f.windows {
        let mut base = default_windows.clone();
        if let Some(def) = w.get("default") {
            base = parse_window_list(def, "windows.default", &mut *bad);
        }
        windows = std::array::from_fn(|_| base.clone());
        for (k, v) in w {
            if k == "default" {
                continue;
            }
            let days: Vec<usize> = match k.as_str() {
                "weekdays" => (0..5).collect(),
                "weekend" => vec![5, 6],
                d => match WEEKDAYS.iter().position(|x| *x == d) {
                    Some(i) => vec![i],
                    None => {
                        bad(
                            &format!("windows.{k}"),
                            "unknown day; use default, weekdays, weekend, mon, tue, wed, thu, fri, sat, sun".into(),
                        );
                        continue;
                    }
                },
            };
            let list = parse_window_list(v, &format!("windows.{k}"), &mut *bad);
            for d in days {
                windows[d] = list.clone();
            }
        }
    }
    windows
}

fn legal_bounds_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Vec<LegalBound> {
    let legal_src = f.legal_bounds.clone().unwrap_or_else(|| {
        vec![LegalBoundFile {
            prefix: "+1".into(),
            window: "08:00-21:00".into(),
        }]
    });
    let mut legal_bounds = Vec::new();
    for (i, lb) in legal_src.iter().enumerate() {
        let path = format!("legal_bounds[{i}]");
        let Some((prefix, prefix_len)) = parse_digits(&lb.prefix) else {
            bad(
                &format!("{path}.prefix"),
                format!("'{}' is not a number prefix", lb.prefix),
            );
            continue;
        };
        match parse_window(&lb.window) {
            Ok(window) => legal_bounds.push(LegalBound {
                prefix,
                prefix_len,
                window,
            }),
            Err(e) => bad(&format!("{path}.window"), e),
        }
    }
    legal_bounds
}

/// Checks the windows against the country's legal bound, once legal bounds are read.
fn check_windows(country: &str, windows: &[Vec<Window>; 7], bad: &mut impl FnMut(&str, String)) {
    if country == "US" {
        // A US campaign's own windows must sit inside the TCPA bound.
        for (d, ws) in windows.iter().enumerate() {
            for w in ws {
                if w.start < 8 * 3600 || w.end > 21 * 3600 {
                    bad(
                        &format!("windows.{}", WEEKDAYS[d]),
                        "US calls must fall within 08:00-21:00 callee local time / 美国外呼须在当地 08:00-21:00 内"
                            .into(),
                    );
                    break;
                }
            }
        }
    }
    if windows.iter().all(|w| w.is_empty()) {
        bad(
            "windows",
            "no calling window on any day / 没有任何可拨打时段".into(),
        );
    }
}

fn active_from(
    f: &CampaignFile,
    bad: &mut impl FnMut(&str, String),
) -> Option<(NaiveDate, NaiveDate)> {
    match &f.active {
        Some(a) if a.to < a.from => {
            bad(
                "active.to",
                format!("{} is before active.from {}", a.to, a.from),
            );
            None
        }
        Some(a) => Some((a.from, a.to)),
        None => None,
    }
}

/// Checks the caps; returns `max_attempts` (the other caps are taken as written).
fn messages_check(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) {
    let Some(m) = &f.messages else { return };
    for (i, q) in m.quiet_hours.iter().flatten().enumerate() {
        let ok = q.split_once('-').and_then(|(a, b)| {
            let (a, b) = (parse_hhmm(a.trim())?, parse_hhmm(b.trim())?);
            (a != b && a < 86400).then_some(())
        });
        if ok.is_none() {
            bad(
                &format!("messages.quiet_hours[{i}]"),
                format!("'{q}': expected HH:MM-HH:MM (may wrap midnight, e.g. 21:00-08:00)"),
            );
        }
    }
    if m.per_number_per_day == Some(0) || m.per_number_per_week == Some(0) {
        bad(
            "messages",
            "a cap of 0 would forbid every message; leave fallbacks out instead".into(),
        );
    }
    if let (Some(d), Some(w)) = (m.per_number_per_day, m.per_number_per_week) {
        if w < d {
            bad(
                "messages.per_number_per_week",
                format!("{w} is below the daily cap {d}"),
            );
        }
    }
}

fn caps_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> u32 {
    let caps = &f.caps;
    if caps.per_number_per_day == Some(0) {
        bad(
            "caps.per_number_per_day",
            "0 would forbid every call; omit it for no cap".into(),
        );
    }
    if let (Some(d), Some(w)) = (caps.per_number_per_day, caps.per_number_per_week) {
        if w < d {
            bad(
                "caps.per_number_per_week",
                format!("{w} is below the daily cap {d}"),
            );
        }
    }
    let max_attempts = caps.max_attempts.unwrap_or(6);
    if max_attempts == 0 || max_attempts > 50 {
        bad(
            "caps.max_attempts",
            format!("{max_attempts}: must be between 1 and 50"),
        );
    }
    max_attempts
}

fn retry_from(
    f: &CampaignFile,
    bad: &mut impl FnMut(&str, String),
) -> [Retry; CallOutcome::ALL.len()] {
    let mut retry: [Retry; CallOutcome::ALL.len()] =
        std::array::from_fn(|i| default_retry(CallOutcome::ALL[i]));
    for (k, v) in &f.retry {
        let path = format!("retry.{k}");
        let Some(o) = CallOutcome::ALL.iter().copied().find(|o| o.as_str() == k) else {
            bad(&path, "unknown outcome; use busy, no_answer, powered_off, rejected, voicemail, congestion, failed, invalid_number, suspended".into());
            continue;
        };
        let r = match v {
            RetryFile::Word(w) if w == "stop" || w == "never" => Retry::Stop,
            RetryFile::Word(w) => {
                bad(&path, format!("'{w}': use `stop` or {{after: 2h, max: 3}}"));
                continue;
            }
            RetryFile::Rule { after, max } => match parse_duration(after) {
                Ok(secs) if secs > 0 => Retry::After { secs, max: *max },
                Ok(_) => {
                    bad(&format!("{path}.after"), "must be longer than 0s".into());
                    continue;
                }
                Err(e) => {
                    bad(&format!("{path}.after"), e);
                    continue;
                }
            },
        };
        if o == CallOutcome::InvalidNumber && r != Retry::Stop {
            bad(
                &path,
                "an invalid number is never retried / 空号不重拨".into(),
            );
            continue;
        }
        retry[outcome_index(o)] = r;
    }
    retry
}

fn dnc_from(
    f: &CampaignFile,
    bad: &mut impl FnMut(&str, String),
) -> (Vec<(u64, u32)>, Vec<DigitRange>) {
    let mut dnc_prefixes = Vec::new();
    for (i, p) in f.dnc.prefixes.iter().enumerate() {
        match parse_digits(p) {
            Some(d) => dnc_prefixes.push(d),
            None => bad(
                &format!("dnc.prefixes[{i}]"),
                format!("'{p}' is not a number prefix"),
            ),
        }
    }
    let mut dnc_ranges = Vec::new();
    for (i, r) in f.dnc.ranges.iter().enumerate() {
        match (parse_digits(&r.from), parse_digits(&r.to)) {
            (Some((a, la)), Some((b, lb))) if la == lb && a <= b => {
                dnc_ranges.push(DigitRange { from: a, to: b })
            }
            (Some(_), Some(_)) => bad(
                &format!("dnc.ranges[{i}]"),
                "from and to must have the same number of digits and from <= to".into(),
            ),
            _ => bad(
                &format!("dnc.ranges[{i}]"),
                "from/to must be phone numbers".into(),
            ),
        }
    }
    (dnc_prefixes, dnc_ranges)
}

fn trunks_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Vec<Trunk> {
    let mut names = HashSet::new();
    for (i, t) in f.trunks.iter().enumerate() {
        if !names.insert(t.name.clone()) {
            bad(
                &format!("trunks[{i}].name"),
                format!("duplicate trunk '{}'", t.name),
            );
        }
        if t.channels == 0 {
            bad(
                &format!("trunks[{i}].channels"),
                "must be at least 1".into(),
            );
        }
        if !(t.cps.is_finite() && t.cps > 0.0) {
            bad(
                &format!("trunks[{i}].cps"),
                "must be a positive number".into(),
            );
        }
    }
    let trunks = if f.trunks.is_empty() {
        vec![Trunk {
            name: "default".into(),
            channels: 100,
            cps: 10.0,
        }]
    } else {
        f.trunks
            .iter()
            .map(|t| Trunk {
                name: t.name.clone(),
                channels: t.channels,
                cps: t.cps,
            })
            .collect()
    };
    trunks
}

/// The caller-ID pool and whether to prefer a local number.
fn caller_ids_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> (Vec<CallerId>, bool) {
    let mut caller_ids = Vec::new();
    let mut local_presence = true;
    if let Some(c) = &f.caller_ids {
        local_presence = c.local_presence;
        if c.pool.is_empty() {
            bad(
                "caller_ids.pool",
                "empty pool; remove `caller_ids` to dial without a caller ID".into(),
            );
        }
        for (i, p) in c.pool.iter().enumerate() {
            match parse_digits(&p.number) {
                Some((digits, _)) => caller_ids.push(CallerId {
                    number: p.number.clone(),
                    digits,
                    region: p.region.clone(),
                    daily_cap: p.daily_cap,
                }),
                None => bad(
                    &format!("caller_ids.pool[{i}].number"),
                    format!("'{}' is not a phone number", p.number),
                ),
            }
            if p.daily_cap == Some(0) {
                bad(
                    &format!("caller_ids.pool[{i}].daily_cap"),
                    "0 makes the number unusable".into(),
                );
            }
        }
    }
    (caller_ids, local_presence)
}

fn segments_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut seg_names = HashSet::new();
    if f.segments.is_empty() {
        bad(
            "segments",
            "at least one segment with a script is required".into(),
        );
    }
    if f.segments.len() > 200 {
        bad("segments", "at most 200 segments".into());
    }
    for (i, s) in f.segments.iter().enumerate() {
        if !seg_names.insert(s.name.clone()) {
            bad(
                &format!("segments[{i}].name"),
                format!("duplicate segment '{}'", s.name),
            );
        }
        if s.script.trim().is_empty() {
            bad(
                &format!("segments[{i}].script"),
                "must name a script".into(),
            );
        }
        let value = s.value.unwrap_or(1.0);
        if !(value.is_finite() && value > 0.0) {
            bad(
                &format!("segments[{i}].value"),
                "must be a positive number".into(),
            );
        }
        segments.push(Segment {
            name: s.name.clone(),
            script: s.script.clone(),
            value,
        });
    }
    segments
}

fn fallback_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Vec<Fallback> {
    let mut fallback = Vec::new();
    for (i, r) in f.fallback.iter().enumerate() {
        let channel = match r.channel.as_str() {
            "sms" => FallbackChannel::Sms,
            "push" => FallbackChannel::Push,
            other => {
                bad(
                    &format!("fallback[{i}].channel"),
                    format!("'{other}': use sms or push"),
                );
                continue;
            }
        };
        let only_with_app = match r.when.as_deref() {
            None => channel == FallbackChannel::Push,
            Some("has_app") => true,
            Some(other) => {
                bad(
                    &format!("fallback[{i}].when"),
                    format!("'{other}': only has_app is known"),
                );
                continue;
            }
        };
        if r.after_unanswered == 0 {
            bad(
                &format!("fallback[{i}].after_unanswered"),
                "must be at least 1".into(),
            );
        }
        fallback.push(Fallback {
            after_unanswered: r.after_unanswered,
            channel,
            template: r.template.clone(),
            only_with_app,
        });
    }
    fallback
}

fn agent_connect_from(
    f: &CampaignFile,
    bad: &mut impl FnMut(&str, String),
) -> Option<AgentConnect> {
    let p = f.pacing.as_ref()?;
    match p.connect.as_deref() {
        None | Some("bot") => {
            for (field, set) in [
                ("pacing.queue", p.queue.is_some()),
                ("pacing.abandon_after_s", p.abandon_after_s.is_some()),
                ("pacing.abandon_message", p.abandon_message.is_some()),
            ] {
                if set {
                    bad(field, "only with connect: agent / 仅用于直连坐席".into());
                }
            }
            None
        }
        Some("agent") => {
            let after = p.abandon_after_s.unwrap_or(2.0);
            if !(after > 0.0 && after <= 2.0) {
                bad(
                    "pacing.abandon_after_s",
                    format!("{after}: must be in (0, 2] (TCPA/Ofcom: an agent within 2 s)"),
                );
            }
            let queue = p.queue.clone().unwrap_or_else(|| "default".into());
            if queue.trim().is_empty() {
                bad("pacing.queue", "empty queue name".into());
            }
            Some(AgentConnect {
                queue,
                abandon_after_s: after,
                message: p.abandon_message.clone().filter(|m| !m.trim().is_empty()),
            })
        }
        Some(other) => {
            bad(
                "pacing.connect",
                format!("'{other}': use bot or agent / 应为 bot 或 agent"),
            );
            None
        }
    }
}

fn pacing_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> PacingMode {
    match &f.pacing {
        None => PacingMode::Progressive,
        Some(p) => match p.mode.as_str() {
            "progressive" => PacingMode::Progressive,
            "predictive" => {
                let t = p.target_abandon_rate.unwrap_or(0.03);
                if !(t > 0.0 && t <= 0.03) {
                    bad(
                        "pacing.target_abandon_rate",
                        format!("{t}: must be in (0, 0.03] (US/UK rule: 3%)"),
                    );
                }
                PacingMode::Predictive {
                    target_abandon_rate: t,
                }
            }
            other => {
                bad(
                    "pacing.mode",
                    format!("'{other}': use progressive or predictive"),
                );
                PacingMode::Progressive
            }
        },
    }
}

fn ranking_from(f: &CampaignFile, bad: &mut impl FnMut(&str, String)) -> Ranking {
    let (mut policy, mut prior_answer_rate, mut prior_strength, mut defer_below) =
        (Policy::BestTime, 0.3, 20.0, 0.0);
    if let Some(r) = &f.ranking {
        match r.policy.as_deref() {
            None | Some("best_time") | Some("best-time") => {}
            Some("fifo") => policy = Policy::Fifo,
            Some("learned") => policy = Policy::Learned,
            Some(other) => bad(
                "ranking.policy",
                format!("'{other}': use best_time, learned or fifo"),
            ),
        }
        if let Some(p) = r.prior_answer_rate {
            if !(p > 0.0 && p < 1.0) {
                bad("ranking.prior_answer_rate", "must be in (0, 1)".into());
            }
            prior_answer_rate = p;
        }
        if let Some(d) = r.defer_below {
            if !(0.0..1.0).contains(&d) {
                bad("ranking.defer_below", "must be in [0, 1)".into());
            }
            defer_below = d;
        }
        if let Some(s) = r.prior_strength {
            if !(s > 0.0 && s.is_finite()) {
                bad("ranking.prior_strength", "must be positive".into());
            }
            prior_strength = s;
        }
    }
    let learning = learning_from(f, policy, bad);
    Ranking {
        policy,
        prior_answer_rate,
        prior_strength,
        defer_below,
        learning,
    }
}

fn learning_from(f: &CampaignFile, policy: Policy, bad: &mut impl FnMut(&str, String)) -> Learning {
    let mut l = Learning::default();
    let Some(lf) = f.ranking.as_ref().and_then(|r| r.learning.as_ref()) else {
        return l;
    };
    // Kept for any policy (a file can be simulated with `--policy learned`);
    // only the learned policy reads it.
    let _ = policy;
    let nonneg = |v: Option<f64>, path: &str, bad: &mut dyn FnMut(&str, String)| match v {
        Some(x) if !(x >= 0.0 && x.is_finite()) => {
            bad(path, format!("{x}: must be a number ≥ 0"));
            None
        }
        other => other,
    };
    let mut bad_dyn = |p: &str, m: String| bad(p, m);
    if let Some(c) = nonneg(lf.call_cost, "ranking.learning.call_cost", &mut bad_dyn) {
        l.call_cost = c;
    }
    if let Some(e) = lf.explore {
        if !(0.0..=0.5).contains(&e) {
            bad_dyn(
                "ranking.learning.explore",
                format!("{e}: must be in [0, 0.5]"),
            );
        } else {
            l.explore = e;
        }
    }
    l.skip_unprofitable = lf.skip_unprofitable.unwrap_or(false);
    if let Some(n) = lf.min_outcomes {
        l.min_outcomes = n;
    }
    if let Some(m) = &lf.message_first {
        let channel = match m.channel.as_deref().unwrap_or("sms") {
            "sms" => FallbackChannel::Sms,
            "push" => FallbackChannel::Push,
            other => {
                bad_dyn(
                    "ranking.learning.message_first.channel",
                    format!("'{other}': use sms or push"),
                );
                FallbackChannel::Sms
            }
        };
        if m.template.trim().is_empty() {
            bad_dyn(
                "ranking.learning.message_first.template",
                "must not be empty".into(),
            );
        }
        let cost =
            nonneg(m.cost, "ranking.learning.message_first.cost", &mut bad_dyn).unwrap_or(0.005);
        let wait_secs = match m.wait.as_deref().map(parse_duration) {
            None => 86_400,
            Some(Ok(s)) if s > 0 => s,
            Some(Ok(_)) => {
                bad_dyn(
                    "ranking.learning.message_first.wait",
                    "must be positive".into(),
                );
                86_400
            }
            Some(Err(e)) => {
                bad_dyn("ranking.learning.message_first.wait", e);
                86_400
            }
        };
        l.message_first = Some(MessageFirst {
            channel,
            template: m.template.clone(),
            cost,
            wait_secs,
        });
    }
    l
}

fn parse_window_list(
    list: &[String],
    path: &str,
    bad: &mut impl FnMut(&str, String),
) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for (i, s) in list.iter().enumerate() {
        match parse_window(s) {
            Ok(w) => out.push(w),
            Err(e) => bad(&format!("{path}[{i}]"), e),
        }
    }
    out.sort_by_key(|w| w.start);
    for pair in out.windows(2) {
        if pair[1].start < pair[0].end {
            bad(path, "windows overlap / 时段重叠".into());
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "name: t\nsegments:\n  - {name: a, script: s}\n";

    #[test]
    fn the_messages_section_is_validated_at_load() {
        let ok = format!("{MIN}messages:\n  quiet_hours: [\"21:00-08:00\"]\n  per_number_per_day: 1\n  per_number_per_week: 3\n  max_delay_hours: 48\n");
        Campaign::from_yaml(&ok).unwrap();
        let e = Campaign::from_yaml(&format!("{MIN}messages:\n  quiet_hours: [\"21:00\"]\n  per_number_per_day: 4\n  per_number_per_week: 2\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("messages.quiet_hours[0]"), "{e}");
        assert!(e.contains("messages.per_number_per_week"), "{e}");
        let e = Campaign::from_yaml(&format!("{MIN}messages:\n  quiet: []\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("quiet"), "{e}");
    }

    #[test]
    fn minimal_file_gets_cn_defaults() {
        let c = Campaign::from_yaml(MIN).unwrap();
        assert_eq!(
            c.windows[0],
            vec![
                Window {
                    start: 32400,
                    end: 43200
                },
                Window {
                    start: 50400,
                    end: 72000
                }
            ]
        );
        assert_eq!(c.timezone, chrono_tz::Asia::Shanghai);
        assert_eq!(
            c.retry[outcome_index(CallOutcome::InvalidNumber)],
            Retry::Stop
        );
        assert_eq!(c.legal_bounds.len(), 1);
    }

    #[test]
    fn type_error_names_field_line_and_column() {
        let text =
            "name: t\ncaps:\n  per_number_per_day: lots\nsegments:\n  - {name: a, script: s}\n";
        let e = Campaign::from_yaml(text).unwrap_err();
        let i = &e.issues[0];
        assert_eq!(i.path, "caps.per_number_per_day");
        assert_eq!(i.line, Some(3));
        let text = "name: t\ncaps:\n  per_number_per_dya: 2\nsegments:\n  - {name: a, script: s}\n";
        let e = Campaign::from_yaml(text).unwrap_err();
        assert!(e.issues[0].message.contains("per_number_per_dya"), "{e}");
    }

    #[test]
    fn semantic_errors_are_collected_with_paths() {
        let text = r#"
name: t
country: US
timezone: Mars/Olympus
windows:
  default: ["07:00-12:00"]
  sat: ["10:00-11:00", "10:30-12:00"]
  funday: []
caps: {per_number_per_day: 3, per_number_per_week: 2, max_attempts: 0}
retry:
  busy: {after: 30x}
  invalid_number: {after: 1h}
  shouting: stop
trunks:
  - {name: a, channels: 0, cps: -1}
segments:
  - {name: a, script: s}
  - {name: a, script: ""}
fallback:
  - {after_unanswered: 0, channel: fax, template: x}
pacing: {mode: predictive, target_abandon_rate: 0.1}
announcements:
  - {kind: suspended, file: cmcc-stop.wav}
  - {kind: out_of_money, file: x.wav}
  - {kind: vacant, file: " "}
asr: {engine: openai, url: "10.0.0.5:8000", slots: 0}
"#;
        let e = Campaign::from_yaml(text).unwrap_err();
        let paths: Vec<&str> = e.issues.iter().map(|i| i.path.as_str()).collect();
        for p in [
            "timezone",
            "windows.funday",
            "windows.sat",
            "windows.mon",
            "caps.per_number_per_week",
            "caps.max_attempts",
            "retry.busy.after",
            "retry.invalid_number",
            "retry.shouting",
            "trunks[0].channels",
            "trunks[0].cps",
            "segments[1].name",
            "segments[1].script",
            "fallback[0].channel",
            "pacing.target_abandon_rate",
            "announcements[1].kind",
            "announcements[2].file",
            "asr.url",
            "asr.slots",
        ] {
            assert!(paths.contains(&p), "missing {p} in {paths:?}");
        }
        assert!(!paths.iter().any(|p| p.starts_with("announcements[0]")));
    }

    #[test]
    fn asr_names_an_engine_and_what_it_needs() {
        let c = Campaign::from_yaml(&format!(
            "{MIN}asr: {{engine: openai, url: 'http://10.0.0.5:8000/v1', model: whisper-base, api_key_env: ASR_KEY, slots: 12}}\n"
        ))
        .unwrap();
        let a = c.asr.unwrap();
        assert_eq!((a.engine.as_str(), a.slots), ("openai", Some(12)));
        assert_eq!(a.url.as_deref(), Some("http://10.0.0.5:8000/v1"));
        let c = Campaign::from_yaml(&format!("{MIN}asr: {{model: whisper-tiny.en}}\n")).unwrap();
        assert_eq!(c.asr.unwrap().engine, "whisper");
        for (bad, path) in [
            ("asr: {engine: kaldi}", "asr.engine"),
            ("asr: {engine: openai}", "asr.url"),
            ("asr: {url: 'http://x/v1'}", "asr.url"),
            ("asr: {api_key_env: K}", "asr.api_key_env"),
            ("asr: {model: ' '}", "asr.model"),
            (
                "asr: {vocabulary: ['星河商城', '{name']}",
                "asr.vocabulary[1]",
            ),
            ("asr: {vocabulary: ['']}", "asr.vocabulary[0]"),
        ] {
            let e = Campaign::from_yaml(&format!("{MIN}{bad}\n")).unwrap_err();
            assert!(e.issues.iter().any(|i| i.path == path), "{bad}: {e:?}");
        }
        assert!(Campaign::from_yaml(&format!("{MIN}asr: {{engine: whisper, key: x}}\n")).is_err());
    }

    #[test]
    fn agent_connect_reads_its_fields_and_refuses_what_breaks_the_rule() {
        let c = Campaign::from_yaml(&format!(
            "{MIN}pacing: {{mode: predictive, connect: agent, queue: sales, abandon_after_s: 1.5}}\n"
        ))
        .unwrap();
        assert_eq!(
            c.agent_connect,
            Some(AgentConnect {
                queue: "sales".into(),
                abandon_after_s: 1.5,
                message: None
            })
        );
        let c = Campaign::from_yaml(&format!(
            "{MIN}pacing: {{mode: progressive, connect: agent}}\n"
        ))
        .unwrap();
        let a = c.agent_connect.unwrap();
        assert_eq!((a.queue.as_str(), a.abandon_after_s), ("default", 2.0));
        assert!(
            Campaign::from_yaml(&format!("{MIN}pacing: {{mode: predictive}}\n"))
                .unwrap()
                .agent_connect
                .is_none()
        );
        for (bad, path) in [
            (
                "{mode: predictive, connect: agent, abandon_after_s: 5}",
                "pacing.abandon_after_s",
            ),
            ("{mode: predictive, connect: human}", "pacing.connect"),
            ("{mode: predictive, queue: sales}", "pacing.queue"),
        ] {
            let e = Campaign::from_yaml(&format!("{MIN}pacing: {bad}\n")).unwrap_err();
            assert!(e.issues.iter().any(|i| i.path == path), "{bad}: {e}");
        }
    }

    #[test]
    fn durations_and_windows_parse() {
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172800));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(
            parse_window("20:00-24:00"),
            Ok(Window {
                start: 72000,
                end: 86400
            })
        );
        assert!(parse_window("12:00-09:00").is_err());
        assert!(parse_window("25:00-26:00").is_err());
    }

    #[test]
    fn examples_validate() {
        for f in ["campaign.yaml", "campaign-us.yaml"] {
            let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples")
                .join(f);
            let text = std::fs::read_to_string(&p).unwrap();
            Campaign::from_yaml(&text).unwrap_or_else(|e| panic!("{f}: {e}"));
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
            let _ = Campaign::from_yaml(&s);
        }

        #[test]
        fn arbitrary_durations_never_panic(s in "[0-9smhdwx]{0,24}") {
            let _ = parse_duration(&s);
        }
    }
}
