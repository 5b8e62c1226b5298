//! One call's vocabulary, shared by the bot that holds the conversation, the
//! dialer that places it, the store that keeps it and the API that shows it.
//! The serialised forms are the stored and served forms (transcript rows,
//! `/api/calls/{id}`), so fields are only ever added.
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A call's id as the runtime assigns it (`<campaign>-<yyyymmddHHMMSS>-<seq>`
/// for the dialer; any text for calls from elsewhere, e.g. a SIP Call-ID).
/// Serialised as the bare string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CallId(pub String);

impl CallId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for CallId {
    fn from(s: String) -> Self {
        CallId(s)
    }
}

impl From<&str> for CallId {
    fn from(s: &str) -> Self {
        CallId(s.to_string())
    }
}

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Speaker {
    Bot,
    Callee,
}

impl Speaker {
    /// The stored spelling (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            Speaker::Bot => "bot",
            Speaker::Callee => "callee",
        }
    }
}

/// Acoustic cues of one callee turn.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct VoiceFeatures {
    /// Syllables per second.
    pub rate_sps: f32,
    pub volume_dbfs: f32,
    pub pitch_hz: f32,
    /// Share of the turn that was silence, 0..1.
    pub pause_ratio: f32,
}

/// One turn of the conversation, bot or callee. Times are media ms since the
/// answer; `at` is the campaign clock when the turn was taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    pub seq: u32,
    pub speaker: Speaker,
    /// Script state the turn was spoken in.
    pub state: String,
    pub at: DateTime<Utc>,
    /// Media time from answer.
    pub start_ms: u64,
    pub end_ms: u64,
    /// The words (sealed at rest: personal data).
    pub text: String,
    pub intent: Option<String>,
    pub confidence: Option<f32>,
    pub emotion: Option<String>,
    pub sentiment: Option<f32>,
    pub features: Option<VoiceFeatures>,
    pub barge_in: bool,
    /// End of the callee's speech → first audio of the bot's reply.
    pub latency_ms: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_id_and_speaker_serialise_as_plain_strings() {
        assert_eq!(
            serde_json::to_string(&CallId::from("1-20261102093000-7")).unwrap(),
            r#""1-20261102093000-7""#
        );
        assert_eq!(
            serde_json::to_string(&Speaker::Callee).unwrap(),
            r#""callee""#
        );
        assert_eq!(Speaker::Bot.as_str(), "bot");
    }
}
