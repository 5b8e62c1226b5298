//! The GE2E speaker encoder: a 3-layer LSTM (40 → 256 → 256 → 256) whose last
//! hidden state goes through a 256×256 linear layer, ReLU and L2
//! normalisation. Written with plain loops rather than candle: the model is
//! small, batch-free per partial, and a hand-written input projection
//! computed for all 160 frames at once plus one matrix-vector product per step
//! keeps it at a few tens of milliseconds per partial utterance.

use std::path::Path;

use safetensors::{Dtype, SafeTensors};

use crate::mel::{self, N_MELS, PARTIAL_FRAMES};
use crate::{Embedding, VoiceprintError, EMBEDDING_DIM};

const HIDDEN: usize = 256;
const LAYERS: usize = 3;
const GATES: usize = 4 * HIDDEN;

struct Layer {
    input: usize,
    /// `GATES × input`, PyTorch's gate order: input, forget, cell, output.
    w_ih: Vec<f32>,
    /// `GATES × HIDDEN`.
    w_hh: Vec<f32>,
    /// `b_ih + b_hh`.
    bias: Vec<f32>,
}

/// The loaded encoder. Immutable, so one instance serves every call.
pub struct Encoder {
    layers: Vec<Layer>,
    /// `EMBEDDING_DIM × HIDDEN`.
    linear_w: Vec<f32>,
    linear_b: Vec<f32>,
    filters: Vec<f32>,
}

/// The converted model's file name inside its directory (`scripts/deps/voiceprint.sh`).
pub const MODEL_FILE: &str = "encoder.safetensors";

/// Where `scripts/deps/voiceprint.sh` installs the encoder under the models directory.
pub fn model_dir(models: &Path) -> std::path::PathBuf {
    models.join("resemblyzer")
}

fn tensor(st: &SafeTensors, name: &str, shape: &[usize]) -> Result<Vec<f32>, VoiceprintError> {
    let bad = |why: String| VoiceprintError::Model(format!("{name}: {why}"));
    let t = st.tensor(name).map_err(|e| bad(e.to_string()))?;
    if t.dtype() != Dtype::F32 {
        return Err(bad(format!("dtype {:?}, expected F32", t.dtype())));
    }
    if t.shape() != shape {
        return Err(bad(format!("shape {:?}, expected {shape:?}", t.shape())));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Encoder {
    /// Load from the directory `scripts/deps/voiceprint.sh` fills.
    pub fn load(dir: &Path) -> Result<Encoder, VoiceprintError> {
        let path = dir.join(MODEL_FILE);
        let bytes = std::fs::read(&path).map_err(|e| VoiceprintError::ModelFile {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Self::from_safetensors(&bytes).map_err(|e| match e {
            VoiceprintError::Model(why) => VoiceprintError::ModelFile { path, why },
            other => other,
        })
    }

    pub fn from_safetensors(bytes: &[u8]) -> Result<Encoder, VoiceprintError> {
        let st =
            SafeTensors::deserialize(bytes).map_err(|e| VoiceprintError::Model(e.to_string()))?;
        let mut layers = Vec::with_capacity(LAYERS);
        for l in 0..LAYERS {
            let input = if l == 0 { N_MELS } else { HIDDEN };
            let w_ih = tensor(&st, &format!("lstm.weight_ih_l{l}"), &[GATES, input])?;
            let w_hh = tensor(&st, &format!("lstm.weight_hh_l{l}"), &[GATES, HIDDEN])?;
            let b_ih = tensor(&st, &format!("lstm.bias_ih_l{l}"), &[GATES])?;
            let b_hh = tensor(&st, &format!("lstm.bias_hh_l{l}"), &[GATES])?;
            let bias = b_ih.iter().zip(&b_hh).map(|(a, b)| a + b).collect();
            layers.push(Layer {
                input,
                w_ih,
                w_hh,
                bias,
            });
        }
        let linear_w = tensor(&st, "linear.weight", &[EMBEDDING_DIM, HIDDEN])?;
        let linear_b = tensor(&st, "linear.bias", &[EMBEDDING_DIM])?;
        Ok(Encoder {
            layers,
            linear_w,
            linear_b,
            filters: mel::mel_filters(),
        })
    }

    /// The embedding of one partial utterance: `frames × 40` mel values.
    pub fn embed_frames(&self, mels: &[f32]) -> Embedding {
        let frames = mels.len() / N_MELS;
        let mut xs = mels.to_vec();
        let mut h = vec![0f32; HIDDEN];
        let mut c = vec![0f32; HIDDEN];
        let mut gates = vec![0f32; frames * GATES];
        for layer in &self.layers {
            // Input projection for every frame at once.
            for t in 0..frames {
                let x = &xs[t * layer.input..(t + 1) * layer.input];
                let g = &mut gates[t * GATES..(t + 1) * GATES];
                for (r, gv) in g.iter_mut().enumerate() {
                    *gv =
                        layer.bias[r] + dot(&layer.w_ih[r * layer.input..(r + 1) * layer.input], x);
                }
            }
            h.iter_mut().for_each(|v| *v = 0.0);
            c.iter_mut().for_each(|v| *v = 0.0);
            let mut out = vec![0f32; frames * HIDDEN];
            for t in 0..frames {
                let g = &mut gates[t * GATES..(t + 1) * GATES];
                for (r, gv) in g.iter_mut().enumerate() {
                    *gv += dot(&layer.w_hh[r * HIDDEN..(r + 1) * HIDDEN], &h);
                }
                for j in 0..HIDDEN {
                    let i = sigmoid(g[j]);
                    let f = sigmoid(g[HIDDEN + j]);
                    let cell = g[2 * HIDDEN + j].tanh();
                    let o = sigmoid(g[3 * HIDDEN + j]);
                    c[j] = f * c[j] + i * cell;
                    h[j] = o * c[j].tanh();
                }
                out[t * HIDDEN..(t + 1) * HIDDEN].copy_from_slice(&h);
            }
            xs = out;
        }
        let raw: Vec<f32> = (0..EMBEDDING_DIM)
            .map(|r| {
                (self.linear_b[r] + dot(&self.linear_w[r * HIDDEN..(r + 1) * HIDDEN], &h)).max(0.0)
            })
            .collect();
        Embedding::normalized(raw)
    }

    /// The embedding of preprocessed 16 kHz audio ([`mel::preprocess`]): the
    /// normalised mean of its partial utterances' embeddings.
    pub fn embed_preprocessed(&self, wav: &[f32]) -> Result<Embedding, VoiceprintError> {
        if wav.is_empty() {
            return Err(VoiceprintError::NoSpeech);
        }
        let (starts, padded) = mel::partial_starts(wav.len());
        let mut audio = wav.to_vec();
        audio.resize(padded, 0.0);
        let spec = mel::mel_spectrogram(&audio, &self.filters);
        let mut sum = vec![0f32; EMBEDDING_DIM];
        for &s in &starts {
            let part = &spec[s * N_MELS..(s + PARTIAL_FRAMES) * N_MELS];
            let e = self.embed_frames(part);
            for (a, b) in sum.iter_mut().zip(e.as_slice()) {
                *a += b;
            }
        }
        Ok(Embedding::normalized(sum))
    }

    /// The embedding of 16-bit PCM at any rate: resampled to 16 kHz,
    /// preprocessed as resemblyzer does, then embedded.
    pub fn embed_pcm(&self, samples: &[i16], rate: u32) -> Result<Embedding, VoiceprintError> {
        let wav = to_16k_float(samples, rate)?;
        let pre = mel::preprocess(&wav)?;
        let ms = pre.len() as u64 * 1000 / mel::SAMPLE_RATE as u64;
        if ms < MIN_SPEECH_MS {
            return Err(VoiceprintError::TooShort { ms });
        }
        self.embed_preprocessed(&pre)
    }
}

/// Less voiced audio than this gives embeddings too noisy to decide on.
pub const MIN_SPEECH_MS: u64 = 1000;

/// 16-bit PCM at `rate` → float samples at 16 kHz.
pub fn to_16k_float(samples: &[i16], rate: u32) -> Result<Vec<f32>, VoiceprintError> {
    if rate == 0 {
        return Err(VoiceprintError::Rate(rate));
    }
    let pcm = waihu_audio::resample::resample_i16(samples, rate, mel::SAMPLE_RATE);
    Ok(pcm.iter().map(|&s| s as f32 / 32768.0).collect())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Dot product with eight independent accumulators, so the loop vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_matches_a_plain_sum() {
        let a: Vec<f32> = (0..43).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..43).map(|i| 1.0 - i as f32 * 0.1).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
    }

    #[test]
    fn a_bad_model_file_is_an_error_not_a_panic() {
        assert!(matches!(
            Encoder::from_safetensors(b"not a model"),
            Err(VoiceprintError::Model(_))
        ));
        let err = Encoder::load(Path::new("/nonexistent")).err().unwrap();
        assert!(err.to_string().contains("encoder.safetensors"), "{err}");
    }
}
