//! Embedded ASR: Whisper from a faster-whisper (CTranslate2) model directory,
//! run with `candle-transformers`.
//!
//! Why this shape: CTranslate2 directories are the most widely deployed
//! offline Whisper format, and the setup step installs one from a registry
//! package (`scripts/deps/speech.sh`). Rust bindings to CTranslate2 need a
//! 20-minute C++ build and always encode a 30 s window (RTF > 1 here);
//! candle is pure Rust. The weights are read straight from `model.bin`
//! ([`crate::ct2`]), fused projections split and renamed to the layout
//! candle expects, so there is no conversion step. The encoder gets only the
//! real audio length instead of a zero-padded 30 s window, which is what
//! makes a 3 s turn fast. The log-mel front end is computed here on rustfft
//! for just the frames needed.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::Module;
use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{model::Whisper, quantized_model, Config};
use serde::Serialize;

use crate::asr::{AsrError, AsrOptions, Transcript, UtteranceAsr};
use crate::ct2;
use waihu_audio::resample::resample_i16;

const SAMPLE_RATE: usize = 16000;
const N_FFT: usize = 400;
const HOP: usize = 160;

#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error("读取模型失败 / cannot read {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("模型目录无效 / invalid Whisper model directory {dir}: {what}")]
    Invalid { dir: String, what: String },
    #[error(transparent)]
    Ct2(#[from] ct2::Ct2Error),
    #[error("Whisper 推理失败 / Whisper inference failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// Token ids the decoder needs, looked up by name in the vocabulary.
#[derive(Debug, Clone)]
struct Specials {
    eot: u32,
    sot: u32,
    transcribe: Option<u32>,
    no_timestamps: u32,
    start_of_prev: Option<u32>,
    langs: Vec<(String, u32)>,
}

/// A loaded Whisper model. Inference holds a lock: one utterance at a time
/// per loaded model (load several for parallel calls).
pub struct WhisperModel {
    /// Decoder instances sharing one copy of the weights (candle tensors are
    /// reference-counted; each clone has its own KV cache): as many
    /// utterances decode at once as there are instances, instead of queueing
    /// on one lock while the other core idles.
    pool: Vec<Mutex<Net>>,
    /// Weight precision of the decoder instances.
    precision: Precision,
    vocab: Vec<String>,
    token_ids: HashMap<String, u32>,
    /// The BPE encoder from `tokenizer.json`, when the model directory has one.
    bpe: Option<crate::bpe::Bpe>,
    specials: Specials,
    suppress: Vec<u32>,
    suppress_begin: Vec<u32>,
    filters: Vec<f32>,
    n_mels: usize,
    multilingual: bool,
    name: String,
    /// Cap on decoded tokens per second of audio (and an absolute cap).
    pub max_tokens_per_s: f32,
    /// Hypotheses kept per step: 1 is greedy decoding (the default, the
    /// fastest); faster-whisper and OpenAI's `transcribe` default to 5.
    pub beam: usize,
}

fn read(path: &Path) -> Result<Vec<u8>, WhisperError> {
    std::fs::read(path).map_err(|err| WhisperError::Io {
        path: path.display().to_string(),
        err,
    })
}

/// Slaney-style mel filterbank (librosa's default, which Whisper uses).
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    waihu_audio::mel::slaney_filters(n_mels)
}

/// Whisper's log-mel spectrogram of 16 kHz audio: `n_mels × frames`
/// (row-major), frames = len / 160 rounded up to even.
pub fn log_mel(samples: &[f32], filters: &[f32], n_mels: usize) -> (Vec<f32>, usize) {
    let n_freqs = N_FFT / 2 + 1;
    let mut frames = samples.len() / HOP;
    frames = frames.max(2);
    frames += frames % 2;
    // Centre padding by reflection, then zeros for the rounding.
    let pad = N_FFT / 2;
    let total = frames * HOP + N_FFT;
    let mut x = Vec::with_capacity(total);
    let get = |i: isize| -> f32 {
        let n = samples.len() as isize;
        if n == 0 {
            return 0.0;
        }
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        if (0..n).contains(&j) {
            samples[j as usize]
        } else {
            0.0
        }
    };
    for i in 0..total {
        let src = i as isize - pad as isize;
        x.push(if src < samples.len() as isize + pad as isize {
            get(src)
        } else {
            0.0
        });
    }
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| 0.5 * (1.0 - (2.0 * std::f32::consts::PI * i as f32 / N_FFT as f32).cos()))
        .collect();
    let fft = rustfft::FftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let mut buf = vec![rustfft::num_complex::Complex::new(0f32, 0f32); N_FFT];
    let mut power = vec![0f32; n_freqs];
    let mut mel = vec![0f32; n_mels * frames];
    for t in 0..frames {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = rustfft::num_complex::Complex::new(x[t * HOP + i] * window[i], 0.0);
        }
        fft.process(&mut buf);
        for (k, p) in power.iter_mut().enumerate() {
            *p = buf[k].norm_sqr();
        }
        for m in 0..n_mels {
            let row = &filters[m * n_freqs..(m + 1) * n_freqs];
            let e: f32 = row.iter().zip(&power).map(|(a, b)| a * b).sum();
            mel[m * frames + t] = e.max(1e-10).log10();
        }
    }
    let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for v in &mut mel {
        *v = (v.max(max - 8.0) + 4.0) / 4.0;
    }
    (mel, frames)
}

/// GPT-2 byte-level BPE: each byte is drawn as a printable character.
fn byte_decoder() -> HashMap<char, u8> {
    crate::bpe::byte_chars()
        .iter()
        .enumerate()
        .map(|(b, &c)| (c, b as u8))
        .collect()
}

fn invalid(dir: &Path, what: impl Into<String>) -> WhisperError {
    WhisperError::Invalid {
        dir: dir.display().to_string(),
        what: what.into(),
    }
}

/// Split a fused projection `(parts × d, d)` weight or `(parts × d)` bias.
fn split_rows(v: &[f32], parts: usize) -> Vec<Vec<f32>> {
    let n = v.len() / parts;
    (0..parts).map(|i| v[i * n..(i + 1) * n].to_vec()).collect()
}

/// Copies CTranslate2 variables to the names candle's Whisper expects.
struct Renamer<'a> {
    raw: &'a HashMap<String, (Vec<usize>, Vec<f32>)>,
    out: HashMap<String, Tensor>,
    d: usize,
    dir: &'a Path,
    dev: &'a Device,
}

impl Renamer<'_> {
    fn get(&self, n: &str) -> Result<&(Vec<usize>, Vec<f32>), WhisperError> {
        self.raw
            .get(n)
            .ok_or_else(|| invalid(self.dir, format!("model.bin has no `{n}`")))
    }

    fn put(&mut self, name: String, dims: &[usize], data: Vec<f32>) -> Result<(), WhisperError> {
        self.out
            .insert(name, Tensor::from_vec(data, dims, self.dev)?);
        Ok(())
    }

    fn copy(&mut self, from: &str, to: &str) -> Result<(), WhisperError> {
        let (dims, v) = self.get(from)?.clone();
        self.put(to.to_string(), &dims, v)
    }

    fn ln(&mut self, from: &str, to: &str) -> Result<(), WhisperError> {
        self.copy(&format!("{from}/gamma"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/beta"), &format!("{to}.bias"))
    }

    fn lin(&mut self, from: &str, to: &str) -> Result<(), WhisperError> {
        self.copy(&format!("{from}/weight"), &format!("{to}.weight"))?;
        self.copy(&format!("{from}/bias"), &format!("{to}.bias"))
    }

    /// Fused `[q;k;v]` or `[k;v]` projections, split; Whisper's key projection has no bias.
    fn fused(&mut self, from: &str, to: &str, names: &[&str]) -> Result<(), WhisperError> {
        let d = self.d;
        let (_, w) = self.get(&format!("{from}/weight"))?.clone();
        let (_, b) = self.get(&format!("{from}/bias"))?.clone();
        if w.len() != names.len() * d * d || b.len() != names.len() * d {
            return Err(invalid(
                self.dir,
                format!("`{from}` is not a fused {}-way projection", names.len()),
            ));
        }
        for ((n, w), b) in names
            .iter()
            .zip(split_rows(&w, names.len()))
            .zip(split_rows(&b, names.len()))
        {
            self.put(format!("{to}.{n}.weight"), &[d, d], w)?;
            if *n != "k_proj" {
                self.put(format!("{to}.{n}.bias"), &[d], b)?;
            }
        }
        Ok(())
    }
}

impl WhisperModel {
    /// Load a faster-whisper model directory (`model.bin`, `config.json`,
    /// `vocabulary.txt` or `vocabulary.json`).
    pub fn load(dir: &Path) -> Result<Self, WhisperError> {
        let bin = read(&dir.join("model.bin"))?;
        let model = ct2::parse(&bin)?;
        if model.spec != "WhisperSpec" {
            return Err(invalid(
                dir,
                format!("model.bin holds a {}, not a WhisperSpec", model.spec),
            ));
        }
        let dev = Device::Cpu;
        let mut raw: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
        for v in &model.variables {
            if matches!(v.dtype, ct2::DType::I8) && v.dims.len() == 2 {
                return Err(invalid(
                    dir,
                    format!(
                        "`{}` is int8-quantised; use a float16/float32 model",
                        v.name
                    ),
                ));
            }
            raw.insert(v.name.clone(), (v.dims.clone(), v.to_f32()));
        }
        let get = |n: &str| {
            raw.get(n)
                .ok_or_else(|| invalid(dir, format!("model.bin has no `{n}`")))
        };
        let (emb_dims, _) = get("decoder/embeddings/weight")?;
        let (vocab_size, d_model) = (emb_dims[0], emb_dims.get(1).copied().unwrap_or(0));
        let count_layers = |prefix: &str| {
            (0..)
                .take_while(|i| {
                    raw.contains_key(&format!("{prefix}/layer_{i}/ffn/linear_0/weight"))
                })
                .count()
        };
        let heads = |n: &str| {
            raw.get(n)
                .and_then(|(_, v)| v.first().copied())
                .map(|h| h as usize)
                .unwrap_or(d_model / 64)
        };
        let cfg = Config {
            num_mel_bins: get("encoder/conv1/weight")?.0.get(1).copied().unwrap_or(80),
            max_source_positions: get("encoder/position_encodings/encodings")?.0[0],
            d_model,
            encoder_attention_heads: heads("encoder/num_heads"),
            encoder_layers: count_layers("encoder"),
            vocab_size,
            max_target_positions: get("decoder/position_encodings/encodings")?.0[0],
            decoder_attention_heads: heads("decoder/num_heads"),
            decoder_layers: count_layers("decoder"),
            suppress_tokens: Vec::new(),
        };
        let mut w = Renamer {
            raw: &raw,
            out: HashMap::new(),
            d: d_model,
            dir,
            dev: &dev,
        };
        for (side, layers) in [
            ("encoder", cfg.encoder_layers),
            ("decoder", cfg.decoder_layers),
        ] {
            for i in 0..layers {
                let c = format!("{side}/layer_{i}");
                let h = format!("model.{side}.layers.{i}");
                w.ln(
                    &format!("{c}/self_attention/layer_norm"),
                    &format!("{h}.self_attn_layer_norm"),
                )?;
                w.fused(
                    &format!("{c}/self_attention/linear_0"),
                    &format!("{h}.self_attn"),
                    &["q_proj", "k_proj", "v_proj"],
                )?;
                w.lin(
                    &format!("{c}/self_attention/linear_1"),
                    &format!("{h}.self_attn.out_proj"),
                )?;
                w.ln(
                    &format!("{c}/ffn/layer_norm"),
                    &format!("{h}.final_layer_norm"),
                )?;
                w.lin(&format!("{c}/ffn/linear_0"), &format!("{h}.fc1"))?;
                w.lin(&format!("{c}/ffn/linear_1"), &format!("{h}.fc2"))?;
                if side == "decoder" {
                    w.ln(
                        &format!("{c}/attention/layer_norm"),
                        &format!("{h}.encoder_attn_layer_norm"),
                    )?;
                    w.lin(
                        &format!("{c}/attention/linear_0"),
                        &format!("{h}.encoder_attn.q_proj"),
                    )?;
                    w.fused(
                        &format!("{c}/attention/linear_1"),
                        &format!("{h}.encoder_attn"),
                        &["k_proj", "v_proj"],
                    )?;
                    w.lin(
                        &format!("{c}/attention/linear_2"),
                        &format!("{h}.encoder_attn.out_proj"),
                    )?;
                }
            }
            w.ln(
                &format!("{side}/layer_norm"),
                &format!("model.{side}.layer_norm"),
            )?;
        }
        w.lin("encoder/conv1", "model.encoder.conv1")?;
        w.lin("encoder/conv2", "model.encoder.conv2")?;
        w.copy(
            "decoder/embeddings/weight",
            "model.decoder.embed_tokens.weight",
        )?;
        w.copy(
            "decoder/position_encodings/encodings",
            "model.decoder.embed_positions.weight",
        )?;
        let t = w.out;
        drop(raw);
        let precision = Precision::from_env();
        let whisper = match precision {
            Precision::F32 => {
                let vb = VarBuilder::from_tensors(t, DType::F32, &dev);
                Net::F32(Whisper::load(&vb, cfg.clone())?)
            }
            Precision::Q8 => Net::q8(t, &cfg)?,
        };

        let vocab = Self::load_vocab(dir)?;
        if vocab.len() < vocab_size.saturating_sub(1) {
            return Err(invalid(
                dir,
                format!(
                    "vocabulary has {} tokens, the model {vocab_size}",
                    vocab.len()
                ),
            ));
        }
        let token_ids: HashMap<String, u32> = vocab
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        let bpe = match std::fs::read_to_string(dir.join("tokenizer.json")) {
            Ok(json) => Some(
                crate::bpe::Bpe::from_tokenizer_json(&json, &vocab).map_err(|e| invalid(dir, e))?,
            ),
            Err(_) => None,
        };
        let id = |s: &str| token_ids.get(s).copied();
        let need = |s: &str| id(s).ok_or_else(|| invalid(dir, format!("vocabulary lacks {s}")));
        let multilingual = vocab_size >= 51865;
        let langs: Vec<(String, u32)> = if multilingual {
            vocab
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let code = s.strip_prefix("<|")?.strip_suffix("|>")?;
                    (code.len() <= 3 && code.chars().all(|c| c.is_ascii_lowercase()))
                        .then(|| (code.to_string(), i as u32))
                })
                .collect()
        } else {
            Vec::new()
        };
        let specials = Specials {
            eot: need("<|endoftext|>")?,
            sot: need("<|startoftranscript|>")?,
            transcribe: id("<|transcribe|>"),
            no_timestamps: need("<|notimestamps|>")?,
            start_of_prev: id("<|startofprev|>"),
            langs,
        };
        let conf: serde_json::Value = std::fs::read(dir.join("config.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let ids = |k: &str| -> Vec<u32> {
            conf[k]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_u64())
                        .map(|v| v as u32)
                        .collect()
                })
                .unwrap_or_default()
        };
        let n_mels = cfg.num_mel_bins;
        Ok(WhisperModel {
            pool: (0..default_instances())
                .map(|_| Mutex::new(whisper.clone()))
                .collect(),
            precision,
            vocab,
            token_ids,
            bpe,
            specials,
            suppress: ids("suppress_ids"),
            suppress_begin: ids("suppress_ids_begin"),
            filters: mel_filters(n_mels),
            n_mels,
            multilingual,
            name: format!(
                "whisper {} ({}×{}, {})",
                dir.file_name()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default(),
                cfg.encoder_layers,
                d_model,
                if multilingual {
                    "multilingual"
                } else {
                    "English"
                }
            ),
            max_tokens_per_s: 12.0,
            beam: 1,
        })
    }

    fn load_vocab(dir: &Path) -> Result<Vec<String>, WhisperError> {
        let txt = dir.join("vocabulary.txt");
        if txt.exists() {
            let b = read(&txt)?;
            return Ok(String::from_utf8_lossy(&b)
                .lines()
                .map(str::to_string)
                .collect());
        }
        let json = dir.join("vocabulary.json");
        let b = read(&json)?;
        serde_json::from_slice(&b).map_err(|e| invalid(dir, format!("vocabulary.json: {e}")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Decoder instances (utterances that can decode at once).
    pub fn instances(&self) -> usize {
        self.pool.len()
    }

    /// Keeps `n` (≥ 1) decoder instances; more share the same weights.
    pub fn set_instances(&mut self, n: usize) {
        let proto = self.instance().clone();
        self.pool = (0..n.max(1)).map(|_| Mutex::new(proto.clone())).collect();
    }

    /// Weight precision of the decoder instances.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A free decoder instance, else the first to come free.
    fn instance(&self) -> std::sync::MutexGuard<'_, Net> {
        for m in &self.pool {
            if let Ok(g) = m.try_lock() {
                return g;
            }
        }
        // All busy: wait on one (spread by thread, so waiters do not all pile on the first).
        let i = THREAD_SLOT.with(|s| *s) % self.pool.len();
        self.pool[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_multilingual(&self) -> bool {
        self.multilingual
    }

    pub fn decode_text(&self, tokens: &[u32]) -> String {
        let dec = byte_decoder();
        let mut bytes = Vec::new();
        for &t in tokens {
            if t >= self.specials.eot {
                continue;
            }
            if let Some(s) = self.vocab.get(t as usize) {
                bytes.extend(s.chars().filter_map(|c| dec.get(&c).copied()));
            }
        }
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    /// The prompt's tokens, for biasing towards names and products: BPE as
    /// Whisper's own tokenizer encodes `" " + prompt` (the last 100 tokens, as
    /// Whisper keeps the end of a long prompt). Without a `tokenizer.json`,
    /// only words that are a single token (with a leading space) are kept,
    /// which drops nearly every Chinese word.
    pub fn prompt_tokens(&self, prompt: &str) -> Vec<u32> {
        if let Some(bpe) = &self.bpe {
            let t = bpe.encode(&format!(" {}", prompt.trim()));
            return t[t.len().saturating_sub(100)..].to_vec();
        }
        let enc: HashMap<u8, char> = byte_decoder().into_iter().map(|(c, b)| (b, c)).collect();
        prompt
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty())
            .filter_map(|w| {
                let s: String = format!(" {w}")
                    .bytes()
                    .filter_map(|b| enc.get(&b))
                    .collect();
                self.token_ids.get(&s).copied()
            })
            .collect()
    }

    /// Transcribe 16 kHz mono audio in [-1, 1]. Greedy decoding without
    /// timestamps, capped in length and stopped on repeated n-grams (Whisper
    /// otherwise loops on some inputs).
    pub fn transcribe_16k(
        &self,
        audio: &[f32],
        lang: Option<&str>,
        prompt: Option<&str>,
    ) -> Result<Transcript, WhisperError> {
        let dev = Device::Cpu;
        let (mel, frames) = log_mel(audio, &self.filters, self.n_mels);
        let mut model = self.instance();
        let cfg = model.config().clone();
        let max_frames = cfg.max_source_positions * 2;
        let frames_used = frames.min(max_frames);
        let mel =
            Tensor::from_vec(mel, (1, self.n_mels, frames), &dev)?.narrow(2, 0, frames_used)?;
        let features = model.encode(&mel)?;
        let sp = &self.specials;
        let mut tokens: Vec<u32> = Vec::new();
        if let (Some(p), Some(sop)) = (prompt, sp.start_of_prev) {
            let pt = self.prompt_tokens(p);
            if !pt.is_empty() {
                tokens.push(sop);
                tokens.extend(pt.iter().take(100));
            }
        }
        tokens.push(sp.sot);
        let mut language = None;
        if self.multilingual {
            let code = match lang {
                Some(l) => l.to_string(),
                None => self.detect_language(&mut model, &features, &tokens)?,
            };
            if let Some((_, lid)) = sp.langs.iter().find(|(c, _)| *c == code) {
                tokens.push(*lid);
            }
            language = Some(code);
            tokens.extend(sp.transcribe);
        } else {
            language = language.or(Some("en".to_string()));
        }
        tokens.push(sp.no_timestamps);
        let audio_s = audio.len() as f32 / SAMPLE_RATE as f32;
        let cap =
            ((audio_s * self.max_tokens_per_s) as usize + 8).min(cfg.max_target_positions / 2);
        let (text_tokens, logprob_sum) = if self.beam > 1 {
            self.beam_search(&mut model, &features, &tokens, cap, self.beam)?
        } else {
            self.greedy(&mut model, &features, &tokens, cap)?
        };
        let n = (text_tokens.len() + 1) as f64;
        let mut text = self.decode_text(&text_tokens);
        if language.as_deref().is_some_and(crate::zh::is_chinese) {
            text = crate::zh::to_simplified(&text);
        }
        Ok(Transcript {
            text,
            language,
            confidence: Some((logprob_sum / n).exp().clamp(0.0, 1.0) as f32),
            words: Vec::new(),
        })
    }

    /// Log-probabilities of the next token over the tokens allowed after
    /// `step` text tokens: no suppressed tokens, no blank start, and nothing
    /// past end of text (timestamps and other specials).
    fn allowed_logprobs(&self, mut l: Vec<f32>, step: usize) -> Vec<f32> {
        for &s in &self.suppress {
            if let Some(v) = l.get_mut(s as usize) {
                *v = f32::NEG_INFINITY;
            }
        }
        if step == 0 {
            for &s in &self.suppress_begin {
                if let Some(v) = l.get_mut(s as usize) {
                    *v = f32::NEG_INFINITY;
                }
            }
        }
        for v in l.iter_mut().skip(self.specials.eot as usize + 1) {
            *v = f32::NEG_INFINITY;
        }
        let max = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let lse = max + l.iter().map(|v| (v - max).exp()).sum::<f32>().ln();
        for v in l.iter_mut() {
            *v -= lse;
        }
        l
    }

    /// Greedy decoding: the text tokens and the sum of their log-probabilities.
    fn greedy(
        &self,
        model: &mut Net,
        features: &Tensor,
        prefix: &[u32],
        cap: usize,
    ) -> Result<(Vec<u32>, f64), WhisperError> {
        let mut tokens = prefix.to_vec();
        let mut logprob_sum = 0f64;
        for step in 0..cap {
            let input = Tensor::new(tokens.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let raw = model.next_logits(&input, features, step == 0)?;
            let l = self.allowed_logprobs(raw, step);
            let (best, &best_lp) = l
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .ok_or_else(|| candle_core::Error::Msg("empty logits".into()))?;
            logprob_sum += best_lp as f64;
            let best = best as u32;
            if best == self.specials.eot {
                break;
            }
            tokens.push(best);
            if let Some(extra) = repetition(&tokens[prefix.len()..]) {
                tokens.truncate(tokens.len() - extra);
                break;
            }
        }
        Ok((tokens[prefix.len()..].to_vec(), logprob_sum))
    }

    /// Beam search as OpenAI's and faster-whisper's decoders do it: `beam`
    /// hypotheses advance together (one batched decoder pass per step, the
    /// batch kept at `beam` rows so the cross-attention cache stays valid),
    /// each proposes its `beam + 1` best next tokens, the best `beam`
    /// unfinished continuations go on; an end of text (or a repetition loop)
    /// finishes one. The winner has the best log-probability per token.
    fn beam_search(
        &self,
        model: &mut Net,
        features: &Tensor,
        prefix: &[u32],
        cap: usize,
        beam: usize,
    ) -> Result<(Vec<u32>, f64), WhisperError> {
        let (_, t, d) = features.dims3()?;
        let features = features.broadcast_as((beam, t, d))?.contiguous()?;
        let mut live: Vec<(Vec<u32>, f64)> = vec![(Vec::new(), 0.0)];
        let mut done: Vec<(Vec<u32>, f64)> = Vec::new();
        for step in 0..cap {
            if live.is_empty() || done.len() >= beam {
                break;
            }
            // Rows past the live hypotheses repeat the first; their logits are ignored.
            let rows: Vec<u32> = (0..beam)
                .flat_map(|r| {
                    let h = &live[r.min(live.len() - 1)].0;
                    prefix.iter().chain(h.iter()).copied()
                })
                .collect();
            let input = Tensor::from_vec(rows, (beam, prefix.len() + step), &Device::Cpu)?;
            let logits = model.logits_rows(&input, &features, step == 0)?;
            let mut candidates: Vec<(f64, usize, u32)> = Vec::new();
            for (i, (_, score)) in live.iter().enumerate() {
                let l = self.allowed_logprobs(logits[i].clone(), step);
                let mut idx: Vec<u32> = (0..l.len() as u32)
                    .filter(|&k| l[k as usize].is_finite())
                    .collect();
                let k = (beam + 1).min(idx.len());
                if k == 0 {
                    continue;
                }
                idx.select_nth_unstable_by(k - 1, |a, b| l[*b as usize].total_cmp(&l[*a as usize]));
                for &tok in &idx[..k] {
                    candidates.push((score + l[tok as usize] as f64, i, tok));
                }
            }
            candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
            let mut next = Vec::with_capacity(beam);
            for (score, i, tok) in candidates {
                if next.len() >= beam {
                    break;
                }
                let mut seq = live[i].0.clone();
                if tok == self.specials.eot {
                    if done.len() < beam {
                        done.push((seq, score));
                    }
                    continue;
                }
                seq.push(tok);
                if let Some(extra) = repetition(&seq) {
                    seq.truncate(seq.len() - extra);
                    if done.len() < beam {
                        done.push((seq, score));
                    }
                    continue;
                }
                next.push((seq, score));
            }
            live = next;
        }
        if done.is_empty() {
            done = live;
        }
        Ok(done
            .into_iter()
            .max_by(|a, b| {
                let per = |h: &(Vec<u32>, f64)| h.1 / (h.0.len().max(1)) as f64;
                per(a).total_cmp(&per(b))
            })
            .unwrap_or_default())
    }

    fn detect_language(
        &self,
        model: &mut Net,
        features: &Tensor,
        prefix: &[u32],
    ) -> Result<String, WhisperError> {
        let input = Tensor::new(prefix, &Device::Cpu)?.unsqueeze(0)?;
        let l = model.next_logits(&input, features, true)?;
        Ok(self
            .specials
            .langs
            .iter()
            .max_by(|a, b| l[a.1 as usize].total_cmp(&l[b.1 as usize]))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| "en".into()))
    }
}

/// Weight precision of the embedded Whisper's matrix products.
///
/// Decoding one token multiplies a single vector by every weight matrix, so
/// it is bound by memory traffic, not arithmetic: base reads ~200 MB of f32
/// weights per token (half of it the vocabulary projection). 8-bit blocks
/// (GGML Q8_0, a scale per 32 weights) read a quarter of that with a
/// negligible change in output; `waihu bench asr` measures both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    F32,
    Q8,
}

impl Precision {
    /// `WAIHU_ASR_PRECISION=f32|q8` (default q8).
    pub fn from_env() -> Precision {
        match std::env::var("WAIHU_ASR_PRECISION").as_deref() {
            Ok("f32") => Precision::F32,
            _ => Precision::Q8,
        }
    }
}

/// One decoder instance: candle's f32 Whisper, or its quantised twin with
/// the vocabulary projection quantised too (candle's quantised decoder keeps
/// that one in f32, and it is half the per-token work).
#[derive(Clone)]
enum Net {
    F32(Whisper),
    Q8 {
        model: quantized_model::Whisper,
        logits: QMatMul,
    },
}

impl Net {
    /// Quantises the 2-D weight matrices to Q8_0 (rows a multiple of 32
    /// long); everything else stays f32.
    fn q8(t: HashMap<String, Tensor>, cfg: &Config) -> Result<Net, WhisperError> {
        let mut q: Vec<(String, QTensor)> = Vec::with_capacity(t.len());
        for (name, tensor) in &t {
            let dims = tensor.dims();
            let dtype = if dims.len() == 2 && dims[1] % 32 == 0 && name.ends_with(".weight") {
                GgmlDType::Q8_0
            } else {
                GgmlDType::F32
            };
            q.push((name.clone(), QTensor::quantize(tensor, dtype)?));
        }
        let emb = t
            .get("model.decoder.embed_tokens.weight")
            .ok_or_else(|| candle_core::Error::Msg("no decoder embeddings".into()))?;
        let logits = QMatMul::from_qtensor(QTensor::quantize(emb, GgmlDType::Q8_0)?)?;
        drop(t);
        let mut buf = std::io::Cursor::new(Vec::new());
        let refs: Vec<(&str, &QTensor)> = q.iter().map(|(n, t)| (n.as_str(), t)).collect();
        candle_core::quantized::gguf_file::write(&mut buf, &[], &refs)?;
        drop(q);
        let vb = quantized_model::VarBuilder::from_gguf_buffer(buf.get_ref(), &Device::Cpu)?;
        let model = quantized_model::Whisper::load(&vb, cfg.clone())?;
        Ok(Net::Q8 { model, logits })
    }

    fn config(&self) -> &Config {
        match self {
            Net::F32(m) => &m.config,
            Net::Q8 { model, .. } => &model.config,
        }
    }

    fn encode(&mut self, mel: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Net::F32(m) => m.encoder.forward(mel, true),
            Net::Q8 { model, .. } => model.encoder.forward(mel, true),
        }
    }

    /// The logits of the token after `tokens` (batch 1).
    fn next_logits(
        &mut self,
        tokens: &Tensor,
        features: &Tensor,
        flush: bool,
    ) -> candle_core::Result<Vec<f32>> {
        self.logits_rows(tokens, features, flush)?
            .into_iter()
            .next()
            .ok_or_else(|| candle_core::Error::Msg("no logits".into()))
    }

    /// The logits of the token after each row of `tokens` (batch × length),
    /// with `features` batched alike.
    fn logits_rows(
        &mut self,
        tokens: &Tensor,
        features: &Tensor,
        flush: bool,
    ) -> candle_core::Result<Vec<Vec<f32>>> {
        let last = |ys: &Tensor| -> candle_core::Result<Tensor> {
            let (_, seq, _) = ys.dims3()?;
            ys.i((.., seq - 1..))
        };
        let logits = match self {
            Net::F32(m) => {
                let ys = m.decoder.forward(tokens, features, flush)?;
                m.decoder.final_linear(&last(&ys)?)?
            }
            Net::Q8 { model, logits } => {
                let ys = model.decoder.forward(tokens, features, flush)?;
                logits.forward(&last(&ys)?.contiguous()?)?
            }
        };
        logits.squeeze(1)?.to_vec2()
    }
}

/// Decoder instances by default: one per core (`WAIHU_ASR_INSTANCES` overrides).
fn default_instances() -> usize {
    std::env::var("WAIHU_ASR_INSTANCES")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

thread_local! {
    static THREAD_SLOT: usize = {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        NEXT.fetch_add(1, Ordering::Relaxed)
    };
}

/// A decoding loop at the end of `t`: a phrase of 3 or more tokens said
/// twice in a row (a whole sentence included: on a short clip without
/// Whisper's 30 s of padding the model may start the utterance over instead
/// of ending it), or of 1..=2 tokens four times. Returns how many trailing
/// tokens are repetition (to drop, keeping the first occurrence).
fn repetition(t: &[u32]) -> Option<usize> {
    let copies = |n: usize, k: usize| {
        t.len() >= k * n
            && (1..k).all(|c| t[t.len() - n..] == t[t.len() - (c + 1) * n..t.len() - c * n])
    };
    (3..=t.len() / 2)
        .find(|&n| copies(n, 2))
        .or_else(|| (1..=2).find(|&n| copies(n, 4)).map(|n| 3 * n))
}

/// The embedded engine as an [`UtteranceAsr`]; run it behind [`crate::asr::Endpointed`].
#[derive(Clone)]
pub struct WhisperAsr {
    model: Arc<WhisperModel>,
}

impl WhisperAsr {
    pub fn load(dir: &Path) -> Result<Self, WhisperError> {
        Ok(WhisperAsr {
            model: Arc::new(WhisperModel::load(dir)?),
        })
    }

    /// Wraps a model loaded (and configured: instances, beam) by the caller.
    pub fn from_model(model: WhisperModel) -> Self {
        WhisperAsr {
            model: Arc::new(model),
        }
    }

    pub fn model(&self) -> &WhisperModel {
        &self.model
    }
}

/// Where the setup step installs models: `$WAIHU_MODELS_DIR`, else `<data dir>/models`.
pub fn default_model_dir(data_dir: &Path, name: &str) -> PathBuf {
    std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("models"))
        .join(name)
}

#[async_trait]
impl UtteranceAsr for WhisperAsr {
    fn name(&self) -> &str {
        self.model.name()
    }

    async fn transcribe(
        &self,
        samples: &[i16],
        rate: u32,
        opts: &AsrOptions,
    ) -> Result<Transcript, AsrError> {
        let audio: Vec<f32> = resample_i16(samples, rate, SAMPLE_RATE as u32)
            .iter()
            .map(|&s| s as f32 / 32768.0)
            .collect();
        let model = self.model.clone();
        let lang = opts.lang.clone().filter(|l| l != "auto");
        let prompt = opts.whisper_prompt();
        // Inference is CPU-bound for a few hundred ms: keep it off the async workers.
        tokio::task::spawn_blocking(move || {
            model.transcribe_16k(&audio, lang.as_deref(), prompt.as_deref())
        })
        .await
        .map_err(|e| AsrError::Input(format!("Whisper task: {e}")))?
        .map_err(|e| AsrError::Input(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mel_filters_cover_the_band_with_slaney_norm() {
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        // Every filter has some weight, and none is negative.
        for m in 0..80 {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|&v| v >= 0.0));
            assert!(row.iter().any(|&v| v > 0.0), "filter {m} empty");
        }
        // The first filter spans 0-74 Hz (peak 37 Hz): of the 40 Hz bins only bin 1 falls in it.
        assert!(f[0] == 0.0 && f[1] > 0.0 && f[2] == 0.0);
    }

    #[test]
    fn log_mel_of_a_tone_peaks_in_the_right_band() {
        let audio: Vec<f32> = (0..16000)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16000.0).sin())
            .collect();
        let f = mel_filters(80);
        let (mel, frames) = log_mel(&audio, &f, 80);
        assert_eq!(frames, 100);
        let t = 50;
        let best = (0..80)
            .max_by(|&a, &b| mel[a * frames + t].total_cmp(&mel[b * frames + t]))
            .unwrap();
        // 1 kHz sits at mel 15 → filter index ~ 15 / (max_mel / 81).
        let max_mel = 15.0 + (8.0f64).ln() / ((6.4f64).ln() / 27.0);
        let want = (15.0 / (max_mel / 81.0)).round() as usize - 1;
        assert!(best.abs_diff(want) <= 1, "peak at {best}, want {want}");
        assert!(mel.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn repetition_guard() {
        assert_eq!(repetition(&[9, 1, 2, 3, 1, 2, 3]), Some(3));
        assert_eq!(repetition(&[5, 5, 5, 5]), Some(3));
        assert_eq!(repetition(&[5, 5, 5]), None);
        // "thank you thank you" (2 tokens twice) is speech, not a loop.
        assert_eq!(repetition(&[7, 8, 7, 8]), None);
        assert_eq!(repetition(&[1, 2, 3, 4, 5, 6]), None);
        // A whole 14-token sentence started over.
        let sentence: Vec<u32> = (100..114).collect();
        let twice = [sentence.clone(), sentence].concat();
        assert_eq!(repetition(&twice), Some(14));
    }

    #[test]
    fn byte_decoder_round_trips_space_and_newline() {
        let d = byte_decoder();
        assert_eq!(d.len(), 256);
        assert_eq!(d[&'Ġ'], b' ');
        assert_eq!(d[&'Ċ'], b'\n');
        assert_eq!(d[&'a'], b'a');
    }
}
