//! The contract between understanding (NLU, emotion) and the dialog engine.
use serde::{Deserialize, Serialize};

/// Intents every outbound script understands (labels are exact and stable).
pub const BUILTIN_INTENTS: [&str; 13] = [
    "affirm",
    "deny",
    "busy_callback",
    "not_interested",
    "do_not_call",
    "ask_identity",
    "request_human",
    "ask_info",
    "already_done",
    "complaint",
    "wrong_number",
    "repeat",
    "unknown",
];

/// One recognised entity in an utterance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    /// `time`, `date`, `money`, `number`, `digits`, `address`, `name`,
    /// `order_number`, `yes_no`, or a script-defined kind.
    pub kind: String,
    /// Normalised value: RFC 3339 time, amount as a number, digit string...
    pub value: serde_json::Value,
    /// The text it was recognised from.
    pub text: String,
    /// Named parts of a structured value (an address's `province`, `city`,
    /// `district`...; a name's `surname`, `title`), empty for plain values.
    /// Scripts read them as `entity.<kind>.<part>`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub parts: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SentimentLabel {
    Negative,
    Neutral,
    Positive,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sentiment {
    pub label: SentimentLabel,
    /// -1 (very negative) ..= 1 (very positive).
    pub score: f32,
    pub angry: bool,
}

/// What the callee said, understood.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NluResult {
    pub text: String,
    /// A built-in label from [`BUILTIN_INTENTS`] or a script-defined one.
    pub intent: String,
    /// Calibrated, 0..=1.
    pub confidence: f32,
    pub entities: Vec<Entity>,
    pub sentiment: Sentiment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmotionLabel {
    Angry,
    Anxious,
    Calm,
    Happy,
}

impl EmotionLabel {
    pub fn as_str(self) -> &'static str {
        match self {
            EmotionLabel::Angry => "angry",
            EmotionLabel::Anxious => "anxious",
            EmotionLabel::Calm => "calm",
            EmotionLabel::Happy => "happy",
        }
    }
}

/// Per-turn emotion reading (text sentiment fused with acoustic cues).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Emotion {
    pub label: EmotionLabel,
    pub confidence: f32,
}

/// The kind of question the bot's prompt asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// "家里有人收货吗？", "Is that correct?": a back-channel or an echo of the
    /// question's words is an answer.
    YesNo,
    /// One of several listed options.
    Choice,
    /// Anything else (an address, a time, a reason).
    Open,
}

/// What the conversation expects of the next utterance, built by the dialog
/// from its current state and handed to the NLU as data. The default is "no
/// context": the NLU then behaves exactly as without one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NluContext {
    /// The question the prompt asked, declared by the script or inferred.
    #[serde(default)]
    pub question: Option<QuestionKind>,
    /// The prompt as the callee heard it (echo answers repeat its words).
    #[serde(default)]
    pub prompt: String,
    /// Intents the state expects (priors).
    #[serde(default)]
    pub intents: Vec<String>,
    /// Entity kinds the state expects.
    #[serde(default)]
    pub entities: Vec<String>,
}
