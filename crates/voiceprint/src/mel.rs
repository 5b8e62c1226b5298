//! resemblyzer's front end, reproduced step by step so the encoder sees what
//! it was trained on: volume raised (never lowered) to -30 dBFS, silences
//! longer than ~200 ms cut with WebRTC's VAD (the same libfvad, mode 3, 30 ms
//! windows, an 8-window moving average and a 7-window dilation), then a
//! librosa-style power mel spectrogram (periodic Hann, 25 ms window, 10 ms
//! hop, centred with reflection padding, 40 Slaney mel bands up to 8 kHz)
//! cut into partial utterances of 160 frames.

use rustfft::num_complex::Complex;
use waihu_audio::vad::{Aggressiveness, Vad, WebRtcVad};

use crate::VoiceprintError;

pub const SAMPLE_RATE: u32 = 16_000;
pub const N_MELS: usize = 40;
pub const N_FFT: usize = 400;
pub const HOP: usize = 160;
/// Frames in one partial utterance (1.6 s).
pub const PARTIAL_FRAMES: usize = 160;
/// Partial utterances per second of audio (resemblyzer's default: successive
/// partials overlap by about half).
pub const PARTIAL_RATE: f64 = 1.3;
/// The last partial is kept only when audio covers this much of it.
pub const MIN_COVERAGE: f64 = 0.75;

const TARGET_DBFS: f64 = -30.0;
const VAD_WINDOW: usize = 480; // 30 ms
const VAD_AVERAGE_WIDTH: usize = 8;
const VAD_MAX_SILENCE: usize = 6;

/// Scale `wav` (float samples, full scale 1.0) up to -30 dBFS; louder audio is
/// left as it is. Silence cannot be scaled and is an error.
pub fn normalize_volume(wav: &[f32]) -> Result<Vec<f32>, VoiceprintError> {
    if wav.is_empty() {
        return Err(VoiceprintError::TooShort { ms: 0 });
    }
    let mean_sq = wav
        .iter()
        .map(|&x| (x as f64 * 32767.0).powi(2))
        .sum::<f64>()
        / wav.len() as f64;
    if mean_sq <= 0.0 || !mean_sq.is_finite() {
        return Err(VoiceprintError::NoSpeech);
    }
    let dbfs = 20.0 * (mean_sq.sqrt() / 32767.0).log10();
    let change = TARGET_DBFS - dbfs;
    if change < 0.0 {
        return Ok(wav.to_vec());
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    Ok(wav.iter().map(|&x| x * gain).collect())
}

/// Cut silences longer than resemblyzer allows, as its `trim_long_silences`.
pub fn trim_long_silences(wav: &[f32]) -> Result<Vec<f32>, VoiceprintError> {
    let n = wav.len() - wav.len() % VAD_WINDOW;
    let wav = &wav[..n];
    let mut vad = WebRtcVad::new(SAMPLE_RATE, Aggressiveness::VeryAggressive)?;
    let mut flags = Vec::with_capacity(n / VAD_WINDOW);
    let mut pcm = vec![0i16; VAD_WINDOW];
    for win in wav.chunks_exact(VAD_WINDOW) {
        for (p, &x) in pcm.iter_mut().zip(win) {
            *p = (x * 32767.0).round().clamp(-32768.0, 32767.0) as i16;
        }
        flags.push(vad.is_speech(&pcm)?);
    }
    // Moving average over 8 windows (3 before, 4 after, zeros outside), rounded
    // half to even as numpy does: a window is voiced when 5 or more of the 8 are.
    let before = (VAD_AVERAGE_WIDTH - 1) / 2;
    let voiced: Vec<bool> = (0..flags.len())
        .map(|j| {
            let lo = j.saturating_sub(before);
            let hi = (j + VAD_AVERAGE_WIDTH - before).min(flags.len());
            let count = flags[lo..hi].iter().filter(|&&f| f).count();
            2 * count > VAD_AVERAGE_WIDTH
        })
        .collect();
    // Dilation by 7 windows (3 either side).
    let reach = VAD_MAX_SILENCE / 2;
    let keep: Vec<bool> = (0..voiced.len())
        .map(|j| {
            let lo = j.saturating_sub(reach);
            let hi = (j + reach + 1).min(voiced.len());
            voiced[lo..hi].iter().any(|&v| v)
        })
        .collect();
    Ok(wav
        .chunks_exact(VAD_WINDOW)
        .zip(&keep)
        .filter(|(_, &k)| k)
        .flat_map(|(w, _)| w.iter().copied())
        .collect())
}

/// Both preprocessing steps: what resemblyzer's `preprocess_wav` does to 16 kHz audio.
pub fn preprocess(wav: &[f32]) -> Result<Vec<f32>, VoiceprintError> {
    let loud = normalize_volume(wav)?;
    let trimmed = trim_long_silences(&loud)?;
    if trimmed.is_empty() {
        return Err(VoiceprintError::NoSpeech);
    }
    Ok(trimmed)
}

/// The 40 Slaney-scale triangular filters over the 201 FFT bins, normalised
/// to equal area (librosa's `filters.mel(sr=16000, n_fft=400, n_mels=40)`).
pub fn mel_filters() -> Vec<f32> {
    waihu_audio::mel::slaney_filters(N_MELS)
}

/// Power mel spectrogram, `frames × 40` row-major, frames = 1 + len / 160.
pub fn mel_spectrogram(wav: &[f32], filters: &[f32]) -> Vec<f32> {
    let n_freqs = N_FFT / 2 + 1;
    let pad = N_FFT / 2;
    let n = wav.len() as isize;
    // librosa's reflection padding; very short inputs fall back to zeros.
    let at = |i: isize| -> f32 {
        let j = if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        };
        if (0..n).contains(&j) {
            wav[j as usize]
        } else {
            0.0
        }
    };
    let frames = 1 + wav.len() / HOP;
    let window: Vec<f32> = (0..N_FFT)
        .map(|i| (0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / N_FFT as f64).cos()) as f32)
        .collect();
    let fft = rustfft::FftPlanner::<f32>::new().plan_fft_forward(N_FFT);
    let mut buf = vec![Complex::new(0f32, 0f32); N_FFT];
    let mut power = vec![0f32; n_freqs];
    let mut out = vec![0f32; frames * N_MELS];
    for t in 0..frames {
        let start = (t * HOP) as isize - pad as isize;
        for (i, b) in buf.iter_mut().enumerate() {
            *b = Complex::new(at(start + i as isize) * window[i], 0.0);
        }
        fft.process(&mut buf);
        for (p, b) in power.iter_mut().zip(&buf) {
            *p = b.norm_sqr();
        }
        for m in 0..N_MELS {
            let row = &filters[m * n_freqs..(m + 1) * n_freqs];
            out[t * N_MELS + m] = row.iter().zip(&power).map(|(a, b)| a * b).sum();
        }
    }
    out
}

/// Where the partial utterances start (in mel frames) for `n_samples` of audio,
/// and how many samples the audio must be padded to, as resemblyzer's
/// `compute_partial_slices(n, rate=1.3, min_coverage=0.75)`.
pub fn partial_starts(n_samples: usize) -> (Vec<usize>, usize) {
    let n_frames = (n_samples + 1).div_ceil(HOP);
    let step = ((SAMPLE_RATE as f64 / PARTIAL_RATE) / HOP as f64).round() as usize;
    let steps = (n_frames + step + 1).saturating_sub(PARTIAL_FRAMES).max(1);
    let mut starts: Vec<usize> = (0..steps).step_by(step).collect();
    if let Some(&last) = starts.last() {
        let coverage = (n_samples as f64 - (last * HOP) as f64) / (PARTIAL_FRAMES * HOP) as f64;
        if coverage < MIN_COVERAGE && starts.len() > 1 {
            starts.pop();
        }
    }
    let padded = (starts.last().copied().unwrap_or(0) + PARTIAL_FRAMES) * HOP;
    (starts, padded.max(n_samples))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partials_follow_resemblyzer() {
        // 1 s: one partial, padded to 1.6 s.
        assert_eq!(partial_starts(16_000), (vec![0], 25_600));
        // 5 s: n_frames = 501, step 77, steps = 501-160+77+1 = 419 → 0,77,...,385;
        // the last one covers (80000-61600)/25600 = 0.72 < 0.75 and is dropped;
        // the rest end before the audio does, so nothing is padded.
        let (s, padded) = partial_starts(80_000);
        assert_eq!(s, vec![0, 77, 154, 231, 308]);
        assert_eq!(padded, 80_000);
        // 4.5 s: the last partial (308) covers (72000-49280)/25600 = 0.89: kept,
        // and the audio is padded to its end.
        let (s, padded) = partial_starts(72_000);
        assert_eq!(s, vec![0, 77, 154, 231, 308]);
        assert_eq!(padded, 74_880);
    }

    #[test]
    fn filters_have_slaney_area() {
        let f = mel_filters();
        // Every band has some weight and none is negative.
        for m in 0..N_MELS {
            let row = &f[m * 201..(m + 1) * 201];
            assert!(row.iter().all(|&w| w >= 0.0));
            assert!(row.iter().any(|&w| w > 0.0), "band {m} empty");
        }
    }

    #[test]
    fn a_tone_lands_in_its_band() {
        let wav: Vec<f32> = (0..16_000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mel = mel_spectrogram(&wav, &mel_filters());
        assert_eq!(mel.len(), 101 * N_MELS);
        let frame = &mel[50 * N_MELS..51 * N_MELS];
        let peak = (0..N_MELS)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        // 1 kHz is mel 15 on the Slaney scale, 8 kHz is 45.25: band m is
        // centred at 45.25·(m+1)/41, so 1 kHz falls between bands 12 and 13.
        assert!((12..=13).contains(&peak), "peak band {peak}");
    }

    #[test]
    fn silence_is_refused_and_long_pauses_are_cut() {
        assert!(matches!(
            normalize_volume(&[0.0; 1600]),
            Err(VoiceprintError::NoSpeech)
        ));
        // Noise bursts are not speech to the VAD, so a pure tone with 2 s of
        // silence in between is cut down to what the VAD keeps: never longer.
        let mut wav = vec![0f32; 48_000];
        for (i, x) in wav.iter_mut().enumerate().take(16_000) {
            *x = 0.3 * (2.0 * std::f32::consts::PI * 220.0 * i as f32 / 16_000.0).sin();
        }
        let t = trim_long_silences(&wav).unwrap();
        assert!(t.len() <= wav.len());
        assert_eq!(t.len() % VAD_WINDOW, 0);
    }
}
