//! Neural English TTS: a Piper voice (VITS exported to ONNX) run with ONNX
//! Runtime, behind [`TtsEngine`] so the [`crate::Synthesizer`] splits,
//! caches, resamples and frames its audio like any other engine's.
//!
//! The pipeline per sentence: espeak-ng turns text into IPA phonemes (run as
//! a *program*, never linked, for the licence reason in [`crate::tts`]);
//! the voice's JSON config maps each phoneme to ids (`^` first, `$` last,
//! the pad `_` after every id, as Piper does); the model takes
//! `input` (ids), `input_lengths` and `scales` = [noise, length, noise_w]
//! and returns float audio at the voice's rate.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`): from
//! `$ORT_DYLIB_PATH`, else `<models>/onnxruntime/libonnxruntime.so` as
//! installed by `scripts/deps/tts.sh` from the PyPI `onnxruntime` wheel.
//! Nothing is downloaded at build or run time. The library and each model
//! are loaded once per process; one session serves all calls (a mutex
//! around `run`), with ONNX Runtime's own threads inside it.
//!
//! Styles map onto the model's controls, not post-processing: speed →
//! `length_scale` (durations), pitch × range → `noise_scale` (how far the
//! prior is sampled from its mean: livelier or flatter intonation), range →
//! `noise_w` (rhythm variation). A VITS voice has no pitch input, so a
//! style's pitch multiplier does *not* shift F0 here.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::value::Tensor;
use serde::Deserialize;

use crate::tts::{TtsEngine, TtsError};
use waihu_audio::script::Lang;
use waihu_audio::style::Style;
use waihu_audio::wav::Pcm;

/// The voice `scripts/deps/tts.sh` installs, under the models directory.
pub const DEFAULT_VOICE_DIR: &str = "piper-en_US-joe-medium";
pub const DEFAULT_VOICE_FILE: &str = "en_US-joe-medium.onnx";
/// Where `scripts/deps/tts.sh` puts ONNX Runtime, under the models directory.
pub const RUNTIME_DIR: &str = "onnxruntime";
pub const RUNTIME_FILE: &str = "libonnxruntime.so";

#[derive(Debug, thiserror::Error)]
pub enum PiperError {
    #[error("找不到 ONNX Runtime / ONNX Runtime library {path} not found (install it with scripts/deps/tts.sh, or set ORT_DYLIB_PATH)")]
    RuntimeMissing { path: String },
    #[error("无法加载 ONNX Runtime / cannot load ONNX Runtime from {path}: {message}")]
    Runtime { path: String, message: String },
    #[error("找不到语音模型 / Piper voice {path} not found (install it with scripts/deps/tts.sh)")]
    ModelMissing { path: String },
    #[error("语音模型无效 / cannot load the Piper voice {path}: {message}")]
    Model { path: String, message: String },
    #[error("语音配置无效 / Piper voice config {path}: {message}")]
    Config { path: String, message: String },
    #[error("没有可朗读的音素 / no speakable phonemes in {text:?} (phonemes {phonemes:?}; unknown to the voice: {unknown:?})")]
    NoPhonemes {
        text: String,
        phonemes: String,
        unknown: String,
    },
    #[error(
        "无法运行 {program} / cannot run {program}: {err} (install it: apt-get install espeak-ng)"
    )]
    Phonemizer {
        program: String,
        err: std::io::Error,
    },
    #[error("{program} 失败 / {program} failed ({status}) phonemising {text:?}: {stderr}")]
    PhonemizerFailed {
        program: String,
        status: String,
        text: String,
        stderr: String,
    },
    #[error("语音合成失败 / Piper inference failed on {text:?}: {message}")]
    Inference { text: String, message: String },
    #[error("Piper 语音只说英语 / the Piper voice speaks {voice}, not {lang:?}")]
    Language { voice: String, lang: Lang },
}

/// The fields of a Piper voice's `.onnx.json` that synthesis needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PiperConfig {
    pub sample_rate: u32,
    /// The espeak-ng voice that phonemises for this model.
    pub espeak_voice: String,
    pub noise_scale: f32,
    pub length_scale: f32,
    pub noise_w: f32,
    pub num_speakers: u32,
    phoneme_id_map: HashMap<char, Vec<i64>>,
    phoneme_map: HashMap<char, Vec<char>>,
    pad: i64,
    bos: i64,
    eos: i64,
}

#[derive(Deserialize)]
struct RawConfig {
    audio: RawAudio,
    #[serde(default)]
    espeak: Option<RawEspeak>,
    #[serde(default)]
    inference: Option<RawInference>,
    #[serde(default)]
    phoneme_type: Option<String>,
    #[serde(default)]
    phoneme_map: HashMap<String, Vec<String>>,
    phoneme_id_map: HashMap<String, Vec<i64>>,
    #[serde(default)]
    num_speakers: Option<u32>,
}
#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}
#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}
#[derive(Deserialize)]
struct RawInference {
    noise_scale: Option<f32>,
    length_scale: Option<f32>,
    noise_w: Option<f32>,
}

fn one_char(s: &str) -> Option<char> {
    let mut it = s.chars();
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

impl PiperConfig {
    /// Parses a voice config; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PiperError> {
        let bad = |message: String| PiperError::Config {
            path: origin.to_string(),
            message,
        };
        let raw: RawConfig = serde_json::from_str(text)
            .map_err(|e| bad(format!("{e} (line {} column {})", e.line(), e.column())))?;
        if let Some(t) = &raw.phoneme_type {
            if t != "espeak" {
                return Err(bad(format!(
                    "phoneme_type {t:?} is not supported (only \"espeak\")"
                )));
            }
        }
        if !(8000..=48000).contains(&raw.audio.sample_rate) {
            return Err(bad(format!(
                "audio.sample_rate {} is outside 8000..=48000",
                raw.audio.sample_rate
            )));
        }
        let mut phoneme_id_map = HashMap::new();
        for (k, ids) in raw.phoneme_id_map {
            let c = one_char(&k)
                .ok_or_else(|| bad(format!("phoneme_id_map key {k:?} is not one character")))?;
            if ids.is_empty() || ids.iter().any(|&i| i < 0) {
                return Err(bad(format!(
                    "phoneme_id_map[{k:?}] = {ids:?} is not a list of ids"
                )));
            }
            phoneme_id_map.insert(c, ids);
        }
        let mut phoneme_map = HashMap::new();
        for (k, to) in raw.phoneme_map {
            let c = one_char(&k)
                .ok_or_else(|| bad(format!("phoneme_map key {k:?} is not one character")))?;
            phoneme_map.insert(c, to.iter().flat_map(|s| s.chars()).collect());
        }
        let special = |c: char, what: &str| {
            phoneme_id_map
                .get(&c)
                .and_then(|v| v.first().copied())
                .ok_or_else(|| bad(format!("phoneme_id_map has no {what} symbol {c:?}")))
        };
        let (pad, bos, eos) = (
            special('_', "pad")?,
            special('^', "bos")?,
            special('$', "eos")?,
        );
        let inf = raw.inference.unwrap_or(RawInference {
            noise_scale: None,
            length_scale: None,
            noise_w: None,
        });
        Ok(PiperConfig {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw
                .espeak
                .map(|e| e.voice)
                .unwrap_or_else(|| "en-us".to_string()),
            noise_scale: inf.noise_scale.unwrap_or(0.667),
            length_scale: inf.length_scale.unwrap_or(1.0),
            noise_w: inf.noise_w.unwrap_or(0.8),
            num_speakers: raw.num_speakers.unwrap_or(1),
            phoneme_id_map,
            phoneme_map,
            pad,
            bos,
            eos,
        })
    }

    /// Ids for a phoneme string, Piper's way: bos, pad, then each phoneme's
    /// ids followed by pad, then eos. Phonemes the voice does not know are
    /// skipped (as Piper does) and returned in the second value.
    pub fn phoneme_ids(&self, phonemes: &str) -> (Vec<i64>, Vec<char>) {
        let mut ids = vec![self.bos, self.pad];
        let mut unknown = Vec::new();
        let mapped = phonemes
            .chars()
            .flat_map(|c| match self.phoneme_map.get(&c) {
                Some(to) => to.clone(),
                None => vec![c],
            });
        for c in mapped {
            match self.phoneme_id_map.get(&c) {
                Some(v) => {
                    for &id in v {
                        ids.push(id);
                        ids.push(self.pad);
                    }
                }
                None => {
                    if !unknown.contains(&c) {
                        unknown.push(c);
                    }
                }
            }
        }
        ids.push(self.eos);
        (ids, unknown)
    }
}

/// The model's three scales for a style: `[noise_scale, length_scale,
/// noise_w]`, from the voice's defaults (see the module docs for the mapping).
pub fn scales_for(cfg: &PiperConfig, style: &Style) -> [f32; 3] {
    let speed = style.speed.clamp(0.25, 4.0);
    let expressive = (style.pitch * style.range).clamp(0.5, 1.6);
    [
        (cfg.noise_scale * expressive).clamp(0.1, 1.0),
        cfg.length_scale / speed,
        (cfg.noise_w * style.range.clamp(0.5, 1.5)).clamp(0.1, 1.2),
    ]
}

/// The clause-ending punctuation of `text`, in order, as Piper writes it into
/// the phoneme string (espeak-ng's `--ipa` output drops it, one line per clause).
fn clause_marks(text: &str) -> Vec<char> {
    let mut marks = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let mark = match c {
            ',' | ';' | ':' | '，' | '；' | '：' => ',',
            '.' | '。' => '.',
            '?' | '？' => '?',
            '!' | '！' => '!',
            _ => continue,
        };
        // "3.5" or "1,000": not a clause end.
        let next_is_word = chars.peek().is_some_and(|n| n.is_alphanumeric());
        if next_is_word {
            continue;
        }
        // Runs like "?!" or "..." end one clause.
        while chars.peek().is_some_and(|n| ",.;:?!。？！".contains(*n)) {
            chars.next();
        }
        marks.push(mark);
    }
    marks
}

/// Joins espeak-ng's clause lines into one phoneme string with Piper's
/// punctuation: each clause followed by its mark, clauses separated by a space.
fn join_clauses(lines: &[&str], text: &str) -> String {
    let marks = clause_marks(text);
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(line);
        let mark = if marks.len() == lines.len() {
            Some(marks[i])
        } else if i + 1 == lines.len() {
            // espeak split differently from us: keep only the final mark.
            marks.last().copied()
        } else {
            Some(',')
        };
        if let Some(m) = mark {
            out.push(m);
        }
    }
    out
}

/// Drops espeak-ng's language-switch markers such as `(fr)` / `(en)`.
fn strip_lang_flags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut depth = 0u32;
    for c in line.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// IPA phonemes for `text` from the espeak-ng program, with clause
/// punctuation restored (see [`join_clauses`]).
pub fn phonemize(program: &Path, voice: &str, text: &str) -> Result<String, PiperError> {
    let name = program.display().to_string();
    let child = Command::new(program)
        .args(["-q", "-b", "1", "--ipa", "-v", voice, "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| PiperError::Phonemizer {
            program: name.clone(),
            err,
        })?;
    let out = crate::tts::feed_and_wait(child, text.as_bytes()).map_err(|err| {
        PiperError::Phonemizer {
            program: name.clone(),
            err,
        }
    })?;
    if !out.status.success() {
        return Err(PiperError::PhonemizerFailed {
            program: name,
            status: out.status.to_string(),
            text: text.chars().take(80).collect(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .chars()
                .take(400)
                .collect(),
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<String> = stdout
        .lines()
        .map(|l| strip_lang_flags(l).trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    Ok(join_clauses(&refs, text))
}

static RUNTIME: OnceLock<Result<ort::environment::Environment, (String, String)>> = OnceLock::new();

/// The process's ONNX Runtime, loaded from `lib` the first time (later calls
/// get the library loaded first, whatever path they name).
pub(crate) fn shared_runtime(
    lib: &Path,
) -> Result<&'static ort::environment::Environment, PiperError> {
    let loaded = RUNTIME.get_or_init(|| {
        let path = lib.display().to_string();
        if !lib.exists() {
            return Err((path, String::new()));
        }
        ort::init_from(lib)
            .map_err(|e| (path.clone(), e.to_string()))?
            .with_name("waihu")
            .build()
            .map_err(|e| (path, e.to_string()))
    });
    match loaded {
        Ok(env) => Ok(env),
        Err((path, m)) if m.is_empty() => Err(PiperError::RuntimeMissing { path: path.clone() }),
        Err((path, m)) => Err(PiperError::Runtime {
            path: path.clone(),
            message: m.clone(),
        }),
    }
}

/// Where ONNX Runtime is looked for: `$ORT_DYLIB_PATH`, else under `models`.
pub fn runtime_path(models: &Path) -> PathBuf {
    match std::env::var_os("ORT_DYLIB_PATH") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => models.join(RUNTIME_DIR).join(RUNTIME_FILE),
    }
}

/// Where the models live: `$WAIHU_MODELS_DIR`, else `<data dir>/models`
/// (the same rule as [`crate::whisper::default_model_dir`]).
pub fn models_dir(data_dir: &Path) -> PathBuf {
    std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("models"))
}

/// The default voice's model file under `models`.
pub fn default_voice(models: &Path) -> PathBuf {
    models.join(DEFAULT_VOICE_DIR).join(DEFAULT_VOICE_FILE)
}

/// A loaded Piper voice. Load once per process and share it (`Arc`).
pub struct PiperTts {
    session: Mutex<Session>,
    output: String,
    config: PiperConfig,
    espeak: PathBuf,
    id: String,
}

impl std::fmt::Debug for PiperTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperTts").field("id", &self.id).finish()
    }
}

impl PiperTts {
    /// The default voice and runtime under `data_dir`'s models directory
    /// (see [`models_dir`], [`runtime_path`]).
    pub fn load_default(data_dir: &Path) -> Result<Self, PiperError> {
        let models = models_dir(data_dir);
        Self::load(&default_voice(&models), &runtime_path(&models), None)
    }

    /// Whether the default voice and runtime are installed under `data_dir`.
    pub fn installed(data_dir: &Path) -> bool {
        let models = models_dir(data_dir);
        default_voice(&models).exists() && runtime_path(&models).exists()
    }

    /// Loads the voice `model` (its config is `model` + `.json`) with the
    /// ONNX Runtime library `runtime`, running on `threads` threads (default:
    /// up to 2, the cores one synthesis can use well).
    pub fn load(
        model: &Path,
        runtime_lib: &Path,
        threads: Option<usize>,
    ) -> Result<Self, PiperError> {
        let mpath = model.display().to_string();
        if !model.is_file() {
            return Err(PiperError::ModelMissing { path: mpath });
        }
        let mut cfg_path = model.as_os_str().to_owned();
        cfg_path.push(".json");
        let cfg_path = PathBuf::from(cfg_path);
        let cfg_text = std::fs::read_to_string(&cfg_path).map_err(|e| PiperError::Config {
            path: cfg_path.display().to_string(),
            message: e.to_string(),
        })?;
        let config = PiperConfig::parse(&cfg_text, &cfg_path.display().to_string())?;
        if config.num_speakers > 1 {
            return Err(PiperError::Config {
                path: cfg_path.display().to_string(),
                message: format!(
                    "{} speakers: multi-speaker voices are not supported",
                    config.num_speakers
                ),
            });
        }
        let env = shared_runtime(runtime_lib)?;
        let threads = threads.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(2)
        });
        let bad = |message: String| PiperError::Model {
            path: mpath.clone(),
            message,
        };
        let session = Session::builder(env)
            .map_err(|e| bad(e.to_string()))?
            .with_intra_threads(threads.max(1))
            .map_err(|e| bad(e.to_string()))?
            .with_inter_threads(1)
            .map_err(|e| bad(e.to_string()))?
            .commit_from_file(model)
            .map_err(|e| bad(e.to_string()))?;
        for want in ["input", "input_lengths", "scales"] {
            if !session.inputs().iter().any(|o| o.name() == want) {
                return Err(bad(format!(
                    "the model has no input {want:?}: not a Piper voice"
                )));
            }
        }
        let output = session
            .outputs()
            .first()
            .map(|o| o.name().to_string())
            .ok_or_else(|| bad("the model has no outputs".to_string()))?;
        let name = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let size = std::fs::metadata(model).map(|m| m.len()).unwrap_or(0);
        let id = format!("piper {name} {size}");
        Ok(PiperTts {
            session: Mutex::new(session),
            output,
            config,
            espeak: PathBuf::from("espeak-ng"),
            id,
        })
    }

    pub fn config(&self) -> &PiperConfig {
        &self.config
    }

    /// Audio for a phoneme string (already phonemised), at the voice's rate.
    pub fn synthesize_phonemes(
        &self,
        phonemes: &str,
        style: &Style,
        text: &str,
    ) -> Result<Vec<i16>, PiperError> {
        let (ids, unknown) = self.config.phoneme_ids(phonemes);
        // bos, pad, eos alone: nothing to say.
        if ids.len() <= 3 {
            return Err(PiperError::NoPhonemes {
                text: text.chars().take(80).collect(),
                phonemes: phonemes.chars().take(80).collect(),
                unknown: unknown.into_iter().collect(),
            });
        }
        let infer = |message: String| PiperError::Inference {
            text: text.chars().take(80).collect(),
            message,
        };
        let n = ids.len();
        let input = Tensor::from_array(([1usize, n], ids)).map_err(|e| infer(e.to_string()))?;
        let lengths =
            Tensor::from_array(([1usize], vec![n as i64])).map_err(|e| infer(e.to_string()))?;
        let scales = Tensor::from_array(([3usize], scales_for(&self.config, style).to_vec()))
            .map_err(|e| infer(e.to_string()))?;
        let mut session = self
            .session
            .lock()
            .map_err(|_| infer("an earlier synthesis panicked".to_string()))?;
        let outputs = session
            .run(ort::inputs![
                "input" => input,
                "input_lengths" => lengths,
                "scales" => scales,
            ])
            .map_err(|e| infer(e.to_string()))?;
        let value = outputs
            .get(&self.output)
            .ok_or_else(|| infer(format!("no output {:?}", self.output)))?;
        let (_, audio) = value
            .try_extract_tensor::<f32>()
            .map_err(|e| infer(e.to_string()))?;
        Ok(to_i16(audio))
    }
}

/// Float audio to 16-bit with the peak at 90% of full scale (Piper
/// normalises the peak; the headroom keeps resampling from clipping).
pub(crate) fn to_i16(audio: &[f32]) -> Vec<i16> {
    let peak = audio
        .iter()
        .filter(|v| v.is_finite())
        .fold(0.01f32, |m, v| m.max(v.abs()));
    let gain = 0.9 * 32767.0 / peak;
    audio
        .iter()
        .map(|&v| {
            if v.is_finite() {
                (v * gain).clamp(-32768.0, 32767.0) as i16
            } else {
                0
            }
        })
        .collect()
}

impl TtsEngine for PiperTts {
    fn id(&self) -> &str {
        &self.id
    }

    fn synthesize(&self, text: &str, lang: Lang, style: &Style) -> Result<Pcm, TtsError> {
        if lang != Lang::En {
            return Err(PiperError::Language {
                voice: self.config.espeak_voice.clone(),
                lang,
            }
            .into());
        }
        let phonemes = phonemize(&self.espeak, &self.config.espeak_voice, text)?;
        let samples = self.synthesize_phonemes(&phonemes, style, text)?;
        Ok(Pcm {
            rate: self.config.sample_rate,
            samples,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{"audio":{"sample_rate":22050},"espeak":{"voice":"en-us"},
        "inference":{"noise_scale":0.667,"length_scale":1,"noise_w":0.8},
        "phoneme_type":"espeak","phoneme_map":{},
        "phoneme_id_map":{"_":[0],"^":[1],"$":[2]," ":[3],",":[8],".":[10],"?":[13],
          "h":[20],"l":[24],"o":[27],"ə":[59],"ˈ":[120],"ʊ":[100]},
        "num_speakers":1}"#;

    #[test]
    fn ids_follow_pipers_pad_bos_eos_convention() {
        let c = PiperConfig::parse(CONFIG, "t").unwrap();
        let (ids, unknown) = c.phoneme_ids("həlˈoʊ.");
        assert_eq!(
            ids,
            vec![1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 10, 0, 2]
        );
        assert!(unknown.is_empty());
        let (ids, unknown) = c.phoneme_ids("h☃");
        assert_eq!(ids, vec![1, 0, 20, 0, 2]);
        assert_eq!(unknown, vec!['☃']);
    }

    #[test]
    fn bad_configs_are_named_errors() {
        let e = PiperConfig::parse("{", "voice.json").unwrap_err();
        assert!(e.to_string().contains("voice.json"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
        let no_pad = CONFIG.replace(r#""_":[0],"#, "");
        let e = PiperConfig::parse(&no_pad, "v").unwrap_err();
        assert!(e.to_string().contains("pad"), "{e}");
        let e = PiperConfig::parse(&CONFIG.replace("22050", "100"), "v").unwrap_err();
        assert!(e.to_string().contains("sample_rate"), "{e}");
        let e =
            PiperConfig::parse(&CONFIG.replace(r#""h":[20]"#, r#""hh":[20]"#), "v").unwrap_err();
        assert!(e.to_string().contains("one character"), "{e}");
    }

    #[test]
    fn styles_map_to_model_scales() {
        let c = PiperConfig::parse(CONFIG, "t").unwrap();
        let n = scales_for(&c, &Style::NEUTRAL);
        assert_eq!(n, [0.667, 1.0, 0.8]);
        let urgent = scales_for(
            &c,
            &Style {
                pitch: 1.5,
                speed: 1.3,
                range: 1.0,
            },
        );
        assert!(urgent[1] < n[1] && urgent[0] > n[0]);
        let sorry = scales_for(
            &c,
            &Style {
                pitch: 0.8,
                speed: 0.9,
                range: 1.0,
            },
        );
        assert!(sorry[1] > n[1] && sorry[0] < n[0]);
    }

    #[test]
    fn clause_punctuation_is_restored() {
        assert_eq!(
            join_clauses(&["həlˈoʊ", "ðɪs ɪz ˈænə"], "Hello, this is Anna."),
            "həlˈoʊ, ðɪs ɪz ˈænə."
        );
        assert_eq!(join_clauses(&["a", "b"], "Is it 3.5, ok?"), "a, b?");
        // espeak split where we did not: the last mark survives.
        assert_eq!(join_clauses(&["a", "b", "c"], "x, y!"), "a, b, c!");
        assert_eq!(clause_marks("Wait?! No..."), vec!['?', '.']);
        assert_eq!(strip_lang_flags("(fr)bɔ̃ʒuʁ(en) ænd"), "bɔ̃ʒuʁ ænd");
    }

    #[test]
    fn audio_is_peak_normalised_without_panicking_on_nan() {
        let s = to_i16(&[0.0, 0.5, -1.0, f32::NAN, f32::INFINITY]);
        assert_eq!(s[2], -29490);
        assert_eq!(s[3], 0);
        assert!(to_i16(&[]).is_empty());
    }
}
