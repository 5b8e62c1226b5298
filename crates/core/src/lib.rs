//! Shared vocabulary of waihu.
//!
//! Architecture invariant: this crate has no I/O, no clock reads and no heavy
//! dependencies. Every other crate may depend on it; it depends on none of them.
//! Types here are the contracts between layers (SIP ↔ campaign, NLU ↔ dialog,
//! everything ↔ the event log), so changing one is a cross-crate change.

pub mod alerts;
pub mod attr;
pub mod call;
pub mod campaign;
pub mod customer;
pub mod event;
pub mod kpi;
pub mod nlu;
pub mod outcome;

pub use attr::{AttrKind, AttrSchema, AttrValue, Attrs};
pub use call::{CallId, Speaker, Turn, VoiceFeatures};
pub use campaign::{CampaignState, UnknownCampaignState};
pub use customer::{CustomerRecord, TzSource};
pub use event::{Event, EventKind};
pub use nlu::{
    Emotion, EmotionLabel, Entity, NluContext, NluResult, QuestionKind, Sentiment, SentimentLabel,
    BUILTIN_INTENTS,
};
pub use outcome::CallOutcome;

use serde::{Deserialize, Serialize};

/// Row id of a customer in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomerId(pub i64);

/// Row id of a campaign in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CampaignId(pub i64);

/// Blind index of a normalised (E.164) phone number: HMAC-SHA256 keyed with a
/// key derived from the master key, hex encoded. Equal numbers have equal
/// indexes; the index reveals nothing about the number without the key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PhoneIndex(pub String);

impl std::fmt::Display for CustomerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for CampaignId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::fmt::Display for PhoneIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Mask an E.164 number for display: keep the country code, the first three
/// national digits and the last four (`+86 138****5678`). Short inputs keep
/// only their last two characters.
pub fn mask_phone(e164: &str) -> String {
    let chars: Vec<char> = e164.chars().collect();
    if chars.len() < 9 {
        let keep = chars.len().min(2);
        let hidden = chars.len() - keep;
        return "*".repeat(hidden) + &chars[hidden..].iter().collect::<String>();
    }
    let head: String = chars[..chars.len() - 8].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// Mask a personal name: first character kept (`张**`).
pub fn mask_name(name: &str) -> String {
    let mut it = name.chars();
    match it.next() {
        Some(first) => {
            let rest = it.count();
            format!("{first}{}", "*".repeat(rest.max(1)))
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_edges_only() {
        assert_eq!(mask_phone("+8613812345678"), "+86138****5678");
        assert_eq!(mask_phone("+12025550123"), "+120****0123");
        assert_eq!(mask_phone("123"), "*23");
        assert_eq!(mask_name("张三丰"), "张**");
        assert_eq!(mask_name("Li"), "L*");
        assert_eq!(mask_name(""), "");
    }
}
