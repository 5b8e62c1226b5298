//! The callee's voice checked during the call: against the customer's
//! enrolled voiceprint (before the script discloses anything) and against the
//! fraud watchlist. The runtime supplies a [`VoiceChecker`] (the store and the
//! speaker encoder); the bot collects the callee's speech, asks once there is
//! enough, and hands the result to the script as `voice.*` variables
//! ([`waihu_dialog::program::RUNTIME_VARS`]).
use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

/// Speech the check waits for: the encoder's shortest useful input is about
/// a second (its partial windows are 1.6 s at 16 kHz; shorter audio is
/// padded), and a callee's "是的，是我" is about that long.
pub const MIN_SPEECH_MS: u64 = 1000;
/// Speech the check uses at most (the first seconds are enough, and the
/// encoder's time grows with the audio).
pub const MAX_SPEECH_MS: u64 = 6000;

/// What a [`VoiceChecker`] found. `verdict` is `match`, `no_match` or
/// `not_enrolled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceMatch {
    pub verdict: String,
    /// Cosine to the enrolment (0 when not enrolled).
    pub score: f32,
    /// The watchlist label of a flagged voice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    /// A flagged voice heard on a number it was not heard on before.
    pub new_number: bool,
    /// Different numbers this voice was heard on lately (this one included),
    /// when more than one: one voice answering for many numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub numbers: Option<u32>,
}

/// The check of one call as the bot reports it: what was found (verdict
/// `unavailable` when the check failed: the script should not take it for a
/// match), on how much speech, and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceCheck {
    #[serde(flatten)]
    pub found: VoiceMatch,
    /// Speech the check used, ms.
    pub speech_ms: u64,
    /// Time the check took (embedding, store), ms.
    pub check_ms: f64,
}

/// Checks a callee's voice. `customer` is the store's customer id; `phone`
/// the number called (E.164); `now` the call's clock (for the events logged).
pub trait VoiceChecker: Send + Sync {
    fn check(
        &self,
        customer: Option<i64>,
        phone: String,
        samples: Vec<i16>,
        rate: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Pin<Box<dyn Future<Output = Result<VoiceMatch, String>> + Send>>;
}

/// The callee's speech gathered for the check, utterance by utterance. Pure.
#[derive(Debug, Default)]
pub struct Collector {
    samples: Vec<i16>,
    rate: u32,
    done: bool,
}

impl Collector {
    /// Adds an utterance; returns the speech to check when there is enough
    /// and the check has not run yet (it runs once per call).
    pub fn offer(&mut self, samples: &[i16], rate: u32) -> Option<(Vec<i16>, u32)> {
        if self.done || rate == 0 {
            return None;
        }
        if self.rate != rate {
            // One call has one rate; should it change, start over.
            self.samples.clear();
            self.rate = rate;
        }
        let max = (MAX_SPEECH_MS * rate as u64 / 1000) as usize;
        let room = max.saturating_sub(self.samples.len());
        self.samples
            .extend_from_slice(&samples[..samples.len().min(room)]);
        if self.ms() < MIN_SPEECH_MS {
            return None;
        }
        self.done = true;
        Some((std::mem::take(&mut self.samples), rate))
    }

    /// Speech gathered so far, ms.
    pub fn ms(&self) -> u64 {
        if self.rate == 0 {
            return 0;
        }
        self.samples.len() as u64 * 1000 / self.rate as u64
    }

    pub fn is_done(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_runs_once_on_enough_speech() {
        let mut c = Collector::default();
        assert_eq!(c.offer(&[1; 4000], 8000), None, "half a second");
        let (s, rate) = c.offer(&[2; 4800], 8000).expect("1.1 s");
        assert_eq!((s.len(), rate), (8800, 8000));
        assert!(c.is_done());
        assert_eq!(c.offer(&[3; 16000], 8000), None, "only once");
    }

    #[test]
    fn long_speech_is_capped() {
        let mut c = Collector::default();
        let (s, _) = c.offer(&vec![1; 80_000], 8000).expect("10 s");
        assert_eq!(s.len() as u64, MAX_SPEECH_MS * 8);
        assert_eq!(Collector::default().offer(&[1; 10], 0), None);
    }
}
