//! Voiceprints: 256-d speaker embeddings from resemblyzer's GE2E encoder
//! (PyPI `resemblyzer` 0.1.4, Apache-2.0), run here in plain Rust, and the
//! decisions made with them.
//!
//! - [`mel`]: resemblyzer's front end (volume, silence trimming, mel
//!   spectrogram, partial utterances), sans-IO.
//! - [`encoder`]: the LSTM encoder, loaded from the safetensors file that
//!   `scripts/deps/voiceprint.sh` converts from the wheel's `pretrained.pt`.
//! - [`decide`]: verification against an enrolment and the fraud watchlist,
//!   pure functions over embeddings and thresholds.
//! - [`registry`]: enrol, verify, erase and watch through `waihu-store`,
//!   which keeps the embeddings sealed (this crate writes no SQL).
//!
//! ```no_run
//! # fn main() -> Result<(), waihu_voiceprint::VoiceprintError> {
//! use waihu_voiceprint::{decide, encoder::Encoder};
//! let enc = Encoder::load(std::path::Path::new("models/resemblyzer"))?;
//! let (a, b) = (vec![0i16; 48_000], vec![0i16; 48_000]); // 8 kHz call audio
//! let enrolled = enc.embed_pcm(&a, 8000)?;
//! let probe = enc.embed_pcm(&b, 8000)?;
//! let v = decide::verify(&[enrolled], &probe, decide::VERIFY_THRESHOLD);
//! println!("{:?} {:.3}", v.verdict, v.score);
//! # Ok(()) }
//! ```
//!
//! Embeddings are personal data: this crate only computes them; the store
//! seals them and erases them with the customer.

use std::path::PathBuf;

pub mod decide;
pub mod encoder;
pub mod mel;
pub mod registry;

pub const EMBEDDING_DIM: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum VoiceprintError {
    #[error("声纹模型无效 / speaker model invalid: {0}")]
    Model(String),
    #[error("声纹模型无法读取 / speaker model {path}: {why} (install it with scripts/deps/voiceprint.sh)")]
    ModelFile { path: PathBuf, why: String },
    #[error("没有检测到语音 / no speech in the audio")]
    NoSpeech,
    #[error("语音太短 / too little speech: {ms} ms (at least 1000 ms needed)")]
    TooShort { ms: u64 },
    #[error("采样率无效 / invalid sample rate {0} Hz")]
    Rate(u32),
    #[error("声纹数据无效 / voiceprint bytes invalid: {0} bytes, expected 1024")]
    Bytes(usize),
    #[error(transparent)]
    Store(#[from] waihu_store::StoreError),
    #[error(transparent)]
    Vad(#[from] waihu_audio::vad::VadError),
}

/// A unit-length speaker embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedding(Vec<f32>);

impl Embedding {
    /// Scale to unit length (a zero vector stays zero: it matches nothing).
    pub fn normalized(mut v: Vec<f32>) -> Embedding {
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        Embedding(v)
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.0
    }

    /// Cosine similarity (both are unit length, so the dot product).
    pub fn cosine(&self, other: &Embedding) -> f32 {
        self.0.iter().zip(&other.0).map(|(a, b)| a * b).sum()
    }

    /// Little-endian f32s: what the store seals.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    pub fn from_bytes(b: &[u8]) -> Result<Embedding, VoiceprintError> {
        if b.len() != EMBEDDING_DIM * 4 {
            return Err(VoiceprintError::Bytes(b.len()));
        }
        let v: Vec<f32> = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if v.iter().any(|x| !x.is_finite()) {
            return Err(VoiceprintError::Bytes(b.len()));
        }
        Ok(Embedding(v))
    }

    /// The normalised mean of several embeddings (an enrolment from several calls).
    pub fn mean(all: &[Embedding]) -> Option<Embedding> {
        let first = all.first()?;
        let mut sum = vec![0f32; first.0.len()];
        for e in all {
            for (a, b) in sum.iter_mut().zip(&e.0) {
                *a += b;
            }
        }
        Some(Embedding::normalized(sum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_and_bad_lengths_are_refused() {
        let e = Embedding::normalized((0..256).map(|i| i as f32).collect());
        assert_eq!(Embedding::from_bytes(&e.to_bytes()).unwrap(), e);
        assert!(matches!(
            Embedding::from_bytes(&[0u8; 10]),
            Err(VoiceprintError::Bytes(10))
        ));
        let mut nan = e.to_bytes();
        nan[0..4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(Embedding::from_bytes(&nan).is_err());
        assert!((e.cosine(&e) - 1.0).abs() < 1e-5);
    }
}
