//! The script file format as serde types: exactly what a user writes.
//! `docs/scripts.md` describes every field; `docs/script.schema.json` mirrors it.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    Zh,
    En,
}

/// 意向等级: A (strong intent) .. D (none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Level {
    A,
    B,
    C,
    D,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::A => "A",
            Level::B => "B",
            Level::C => "C",
            Level::D => "D",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    /// Silence after the prompt before `no_input` fires.
    #[serde(default)]
    pub no_input_ms: Option<u32>,
    /// Longest single utterance the recogniser should wait for.
    #[serde(default)]
    pub max_speech_ms: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// Machine name (`order_confirmation`).
    pub name: String,
    /// Business title (`订单确认`).
    #[serde(default)]
    pub title: Option<String>,
    pub language: Language,
    #[serde(default)]
    pub description: Option<String>,
    /// Customer segment this script is meant for (`high_value`, ...).
    #[serde(default)]
    pub segment: Option<String>,
    /// Default TTS style of every prompt.
    #[serde(default)]
    pub style: Option<String>,
    /// Who the bot says it is when asked (`ask_identity`); a template.
    #[serde(default)]
    pub identity: Option<String>,
    /// Customer/call variables the script needs, with an example value used
    /// to test-render every prompt.
    #[serde(default)]
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Variables that may be missing: templates render them as the example.
    #[serde(default)]
    pub optional: BTreeMap<String, serde_json::Value>,
    /// First state (default: the first one in the file).
    #[serde(default)]
    pub start: Option<String>,
    /// Callee turns before `on_max_turns` (default 30).
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub on_max_turns: Option<Rule>,
    /// NLU results below this confidence count as `unknown` (default 0.45).
    #[serde(default)]
    pub min_confidence: Option<f32>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Where `request_human` and bare `transfer` actions go.
    #[serde(default)]
    pub transfer: Option<TransferTarget>,
    /// What to do when an answering machine picks up (default: hang up).
    #[serde(default)]
    pub voicemail: Option<VoicemailRule>,
    /// Script-defined intents, given to the NLU.
    #[serde(default)]
    pub intents: BTreeMap<String, CustomIntent>,
    /// Handlers that apply in every state: keyed by intent, plus `anger`.
    #[serde(default)]
    pub globals: BTreeMap<String, Handler>,
    /// Defaults for states that do not say what to do on silence / no match.
    #[serde(default)]
    pub no_input: Option<Retry>,
    #[serde(default)]
    pub no_match: Option<Retry>,
    /// A FAQ / product document that out-of-script questions are answered
    /// from (retrieval + an LLM behind guardrails; see `docs/llm.md`).
    #[serde(default)]
    pub knowledge: Option<Knowledge>,
    pub states: BTreeMap<String, State>,
}

/// `knowledge:` — either a document `file` (Markdown; relative to the
/// script) or inline `passages`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Knowledge {
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub passages: Vec<KnowledgePassage>,
    /// Said when the question cannot be answered safely (a template).
    #[serde(default)]
    pub fallback: Option<String>,
    /// Intents that count as an out-of-script question when the current
    /// state has no rule or handler for them (default `[ask_info, unknown]`).
    #[serde(default)]
    pub on: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KnowledgePassage {
    #[serde(default)]
    pub title: Option<String>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomIntent {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferTarget {
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
}

/// `voicemail:` — the script's answer to an answering machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoicemailRule {
    pub action: VoicemailAction,
    /// The message left after the beep (a template; `leave_message` only).
    #[serde(default)]
    pub say: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VoicemailAction {
    /// Wait for the beep, say `say`, hang up.
    LeaveMessage,
    /// Hang up at once.
    HangUp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub id: String,
    pub say: String,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// A learning experiment over a state's prompt variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditSpec {
    /// What counts as a success for the variant the callee heard.
    pub reward: Reward,
    /// Each variant's minimum share of calls while the experiment runs.
    #[serde(default = "min_share")]
    pub min_share: f64,
    /// When the experiment concludes and serves its winner to everyone.
    #[serde(default)]
    pub stop: Option<BanditStop>,
}

fn min_share() -> f64 {
    0.05
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BanditStop {
    /// Posterior probability of being best (default 0.95).
    #[serde(default = "stop_prob")]
    pub prob_best: f64,
    /// Rewards observed in all before the rule may fire (default 200).
    #[serde(default = "min_calls")]
    pub min_calls: u64,
}

fn stop_prob() -> f64 {
    0.95
}

fn min_calls() -> u64 {
    200
}

/// The reward of a bandit: `continued` (the conversation went on past the
/// state and the call did not end in a hang-up), `{outcome: [..]}` (the
/// call's final outcome is one of these) or `{level: [..]}` (its intention
/// level is one of these).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Reward {
    Continued,
    Outcome(Vec<String>),
    Level(Vec<Level>),
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    #[serde(default)]
    pub intents: Vec<String>,
    #[serde(default)]
    pub entities: Vec<String>,
    /// DTMF digits accepted here (`"12"`).
    #[serde(default)]
    pub dtmf: Option<String>,
    /// The kind of question the prompt asks (`yes_no`, `choice`, `open`), so
    /// the NLU reads a bare "嗯" or an echo of the question as the answer it is.
    /// Inferred from `intents` when absent.
    #[serde(default)]
    pub question: Option<waihu_core::QuestionKind>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Business label (`开场`), shown in graphs and funnels.
    #[serde(default)]
    pub title: Option<String>,
    /// The prompt. A state without `say` or `variants` is a router: its
    /// rules are evaluated as soon as it is entered.
    #[serde(default)]
    pub say: Option<String>,
    /// A/B variants of the prompt; one is picked per call.
    #[serde(default)]
    pub variants: Vec<Variant>,
    /// Optimise the choice between `variants` while the campaign runs
    /// (Thompson sampling per segment) instead of the fixed weights.
    #[serde(default)]
    pub bandit: Option<BanditSpec>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default = "yes")]
    pub barge_in: bool,
    #[serde(default)]
    pub expect: Expect,
    /// Actions run when the state is entered.
    #[serde(default)]
    pub enter: Vec<Action>,
    /// Transitions, first match wins.
    #[serde(default)]
    pub on: Vec<Rule>,
    /// Per-state replacements for global handlers.
    #[serde(default)]
    pub handlers: BTreeMap<String, Handler>,
    /// Global handlers switched off here (never `do_not_call`).
    #[serde(default)]
    pub disable: Vec<String>,
    #[serde(default)]
    pub no_input: Option<Retry>,
    #[serde(default)]
    pub no_match: Option<Retry>,
    /// Callee turns in this state before `on_max_turns`.
    #[serde(default)]
    pub max_turns: Option<u32>,
    #[serde(default)]
    pub on_max_turns: Option<Rule>,
    /// Terminal state: hang up with this outcome after the prompt.
    #[serde(default)]
    pub end: Option<String>,
    #[serde(default)]
    pub timeouts: Option<Timeouts>,
}

/// A transition: matchers (all given ones must hold; none = always) and an
/// effect (actions, an optional line to say, then go, end or stay).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub intent: Option<OneOrMany>,
    #[serde(default)]
    pub entity: Option<String>,
    #[serde(default)]
    pub emotion: Option<String>,
    #[serde(default)]
    pub dtmf: Option<String>,
    #[serde(default)]
    pub when: Option<String>,
    #[serde(default)]
    pub say: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default, rename = "do")]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub goto: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
}

impl Rule {
    pub fn has_matcher(&self) -> bool {
        self.intent.is_some()
            || self.entity.is_some()
            || self.emotion.is_some()
            || self.dtmf.is_some()
            || self.when.is_some()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// What to do when a global (or per-state) handler fires. Without `goto` or
/// `end` the bot says `say` and then repeats the current prompt.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Handler {
    #[serde(default)]
    pub say: Option<String>,
    #[serde(default)]
    pub style: Option<String>,
    #[serde(default, rename = "do")]
    pub actions: Vec<Action>,
    #[serde(default)]
    pub goto: Option<String>,
    #[serde(default)]
    pub end: Option<String>,
    /// `anger` only: after this many angry turns, run `escalate`.
    #[serde(default)]
    pub escalate_after: Option<u32>,
    #[serde(default)]
    pub escalate: Option<Rule>,
}

/// Reprompting on silence or on an answer that matches nothing.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// How many times to ask again before `then` (default 2).
    #[serde(default)]
    pub reprompt: Option<u32>,
    /// Said before the prompt is repeated.
    #[serde(default)]
    pub say: Option<String>,
    #[serde(default)]
    pub then: Option<Rule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Set call variables: values are templates.
    Set(BTreeMap<String, serde_json::Value>),
    /// Tag the business outcome (kept until the call ends).
    Outcome(String),
    /// Tag the intention level.
    Level(Level),
    /// Schedule a callback: at the `time` entity of this turn, or `at` (a
    /// template that renders to RFC 3339), else `in_hours` from now.
    Callback(CallbackDef),
    /// Send an SMS template (the channel layer fills in the customer).
    Sms(String),
    /// Transfer to a human (empty = the script's `transfer`).
    Transfer(TransferTarget),
    /// Put the number on the do-not-call list.
    Dnc,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackDef {
    #[serde(default)]
    pub at: Option<String>,
    #[serde(default)]
    pub in_hours: Option<f64>,
}
