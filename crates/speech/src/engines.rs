//! Choosing a recogniser by configuration: the embedded Whisper, an
//! OpenAI-compatible server or a FunASR runtime, each ready to take a whole
//! audio stream (the first two behind the endpointer, which cuts utterances
//! for them; FunASR streams itself).
use std::path::PathBuf;
use std::sync::Arc;

use crate::asr::{Asr, AsrError, Endpointed};
use crate::endpoint::EndpointConfig;
use crate::funasr::{FunAsr, FunAsrMode};
use crate::openai::OpenAiAsr;
use crate::whisper::{WhisperAsr, WhisperError};

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
