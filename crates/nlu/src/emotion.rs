//! Acoustic emotion cues from one utterance of mono PCM (8 or 16 kHz), fused
//! with text sentiment into a per-turn [`Emotion`] the dialog can branch on.
//!
//! Features, all computed here by hand on `&[i16]` (no I/O):
//! - RMS energy per 25 ms frame (dBFS), its mean over speech and spread;
//! - voice activity from an adaptive energy floor, giving the pause ratio;
//! - pitch by YIN (de Cheveigné & Kawahara 2002) on voiced frames: mean,
//!   10th-90th percentile range in semitones;
//! - speech rate as syllable nuclei per second of speech (peaks of the
//!   smoothed energy envelope), which tracks syllables well for Chinese.
//!
//! The thresholds that turn these into arousal are absolute (no per-speaker
//! baseline within one utterance) and tuned for telephone speech.
use serde::Serialize;
use waihu_core::nlu::{Emotion, EmotionLabel, Sentiment, SentimentLabel};

/// Acoustic features of one utterance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AcousticFeatures {
    pub duration_s: f32,
    /// Mean RMS energy of speech frames, dBFS (-100 for silence).
    pub rms_dbfs: f32,
    /// Standard deviation of frame energy over speech frames, dB.
    pub energy_std_db: f32,
    /// Mean F0 of voiced frames, Hz (0 when nothing was voiced).
    pub pitch_mean_hz: f32,
    /// 10th-90th percentile F0 range, semitones.
    pub pitch_range_st: f32,
    /// Share of frames with a pitch.
    pub voiced_ratio: f32,
    /// Share of silence between the first and last speech frame.
    pub pause_ratio: f32,
    /// Syllable nuclei per second of speech.
    pub speech_rate: f32,
    /// 0 (flat, quiet, slow) ..= 1 (loud, wide pitch, fast).
    pub arousal: f32,
}

/// The fused reading with the evidence behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EmotionReading {
    pub emotion: Emotion,
    pub acoustic: AcousticFeatures,
    pub sentiment: Option<Sentiment>,
}

const FRAME_MS: usize = 25;
const HOP_MS: usize = 10;
const PITCH_MS: usize = 40;
const F0_MIN: f32 = 60.0;
const F0_MAX: f32 = 500.0;
const YIN_THRESHOLD: f32 = 0.15;

fn db(x: f32) -> f32 {
    if x <= 1e-9 {
        -100.0
    } else {
        (20.0 * x.log10()).max(-100.0)
    }
}

fn percentile(sorted: &[f32], q: f32) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f32 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// YIN F0 estimate of one frame, or `None` when unvoiced.
fn yin(frame: &[f32], rate: u32) -> Option<f32> {
    let tau_min = (rate as f32 / F0_MAX).floor().max(2.0) as usize;
    let tau_max = (rate as f32 / F0_MIN).ceil() as usize;
    let w = frame.len().checked_sub(tau_max + 1)?;
    if w < tau_max / 2 || tau_max + 2 >= frame.len() {
        return None;
    }
    // Difference function and its cumulative mean normalisation.
    let mut d = vec![0f32; tau_max + 2];
    for (tau, dv) in d.iter_mut().enumerate().skip(1) {
        let mut s = 0.0;
        for j in 0..w {
            let diff = frame[j] - frame[j + tau];
            s += diff * diff;
        }
        *dv = s;
    }
    let mut cmnd = vec![1f32; d.len()];
    let mut running = 0.0;
    for tau in 1..d.len() {
        running += d[tau];
        cmnd[tau] = if running > 0.0 {
            d[tau] * tau as f32 / running
        } else {
            1.0
        };
    }
    let mut tau = tau_min;
    while tau < tau_max {
        if cmnd[tau] < YIN_THRESHOLD {
            while tau + 1 < tau_max && cmnd[tau + 1] < cmnd[tau] {
                tau += 1;
            }
            // Parabolic interpolation around the minimum.
            let (a, b, c) = (cmnd[tau - 1], cmnd[tau], cmnd[tau + 1]);
            let den = a + c - 2.0 * b;
            let shift = if den.abs() > 1e-9 {
                (0.5 * (a - c) / den).clamp(-0.5, 0.5)
            } else {
                0.0
            };
            let f0 = rate as f32 / (tau as f32 + shift);
            return (F0_MIN..=F0_MAX).contains(&f0).then_some(f0);
        }
        tau += 1;
    }
    None
}

/// Acoustic features of one utterance. Any rate from 4 kHz up works; 8 and
/// 16 kHz are what calls carry. Never panics; empty input gives zeros.
pub fn analyze_pcm(samples: &[i16], rate: u32) -> AcousticFeatures {
    let rate = rate.clamp(4000, 192_000);
    let x: Vec<f32> = samples.iter().map(|&s| s as f32 / 32768.0).collect();
    let frame = rate as usize * FRAME_MS / 1000;
    let hop = rate as usize * HOP_MS / 1000;
    let pitch_len = rate as usize * PITCH_MS / 1000;
    let duration_s = samples.len() as f32 / rate as f32;
    let n_frames = if x.len() >= frame {
        (x.len() - frame) / hop + 1
    } else {
        0
    };
    let mut energy_db = Vec::with_capacity(n_frames);
    for i in 0..n_frames {
        let f = &x[i * hop..i * hop + frame];
        let ms = f.iter().map(|v| v * v).sum::<f32>() / frame as f32;
        energy_db.push(db(ms.sqrt()));
    }
    let mut sorted = energy_db.clone();
    sorted.sort_by(f32::total_cmp);
    // Speech is well above the utterance's own noise floor and above -50 dBFS.
    let floor = percentile(&sorted, 0.1);
    let threshold = (floor + 12.0)
        .max(-50.0)
        .min(percentile(&sorted, 0.9) - 3.0)
        .max(-55.0);
    let active: Vec<bool> = energy_db.iter().map(|&e| e > threshold).collect();
    let first = active.iter().position(|&a| a);
    let last = active.iter().rposition(|&a| a);
    let mut feats = AcousticFeatures {
        duration_s,
        rms_dbfs: -100.0,
        energy_std_db: 0.0,
        pitch_mean_hz: 0.0,
        pitch_range_st: 0.0,
        voiced_ratio: 0.0,
        pause_ratio: 0.0,
        speech_rate: 0.0,
        arousal: 0.0,
    };
    let (Some(first), Some(last)) = (first, last) else {
        return feats;
    };
    let speech: Vec<f32> = energy_db
        .iter()
        .zip(&active)
        .filter(|(_, &a)| a)
        .map(|(&e, _)| e)
        .collect();
    let mean = speech.iter().sum::<f32>() / speech.len() as f32;
    let var = speech.iter().map(|e| (e - mean) * (e - mean)).sum::<f32>() / speech.len() as f32;
    feats.rms_dbfs = mean;
    feats.energy_std_db = var.sqrt();
    let span = last - first + 1;
    let silent = active[first..=last].iter().filter(|a| !**a).count();
    feats.pause_ratio = silent as f32 / span as f32;

    // Pitch on active frames, with a longer window centred on the frame.
    let mut f0s = Vec::new();
    for (i, &a) in active.iter().enumerate() {
        if !a {
            continue;
        }
        let centre = i * hop + frame / 2;
        let start = centre.saturating_sub(pitch_len / 2);
        let end = (start + pitch_len).min(x.len());
        if end - start < pitch_len {
            continue;
        }
        if let Some(f0) = yin(&x[start..end], rate) {
            f0s.push(f0);
        }
    }
    feats.voiced_ratio = f0s.len() as f32 / n_frames.max(1) as f32;
    if !f0s.is_empty() {
        f0s.sort_by(f32::total_cmp);
        // The median guards the mean against octave errors.
        let med = percentile(&f0s, 0.5);
        let kept: Vec<f32> = f0s
            .iter()
            .copied()
            .filter(|f| *f > med * 0.6 && *f < med * 1.7)
            .collect();
        feats.pitch_mean_hz = kept.iter().sum::<f32>() / kept.len().max(1) as f32;
        let (lo, hi) = (percentile(&kept, 0.1), percentile(&kept, 0.9));
        if lo > 0.0 {
            feats.pitch_range_st = 12.0 * (hi / lo).log2();
        }
    }

    // Syllable nuclei: peaks of the 3-frame smoothed envelope, at least 3 dB
    // above the dip since the previous peak and 100 ms apart.
    let smooth: Vec<f32> = (0..energy_db.len())
        .map(|i| {
            let lo = i.saturating_sub(1);
            let hi = (i + 2).min(energy_db.len());
            energy_db[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
        })
        .collect();
    let mut peaks = 0usize;
    let mut last_peak: Option<usize> = None;
    let mut dip = f32::INFINITY;
    for i in 1..smooth.len().saturating_sub(1) {
        dip = dip.min(smooth[i]);
        let is_peak = active[i] && smooth[i] >= smooth[i - 1] && smooth[i] > smooth[i + 1];
        if is_peak && smooth[i] - dip >= 3.0 && last_peak.is_none_or(|p| (i - p) * HOP_MS >= 100) {
            peaks += 1;
            last_peak = Some(i);
            dip = f32::INFINITY;
        }
    }
    let speech_s = speech.len() as f32 * HOP_MS as f32 / 1000.0;
    if speech_s > 0.0 {
        feats.speech_rate = peaks as f32 / speech_s;
    }
    feats.arousal = arousal(&feats);
    feats
}

/// Loudness, pitch movement and tempo, each mapped to 0..1 and averaged.
fn arousal(f: &AcousticFeatures) -> f32 {
    let clamp = |v: f32| v.clamp(0.0, 1.0);
    let energy = clamp((f.rms_dbfs + 32.0) / 20.0);
    let pitch = clamp((f.pitch_range_st - 2.0) / 10.0);
    let high = if f.pitch_mean_hz > 0.0 {
        clamp((f.pitch_mean_hz - 140.0) / 200.0)
    } else {
        0.0
    };
    let rate = clamp((f.speech_rate - 3.0) / 4.0);
    let calm_pauses = clamp(f.pause_ratio * 2.0);
    clamp(0.35 * energy + 0.25 * pitch + 0.1 * high + 0.2 * rate + 0.1 * (1.0 - calm_pauses))
}

/// Fuse acoustic arousal with text sentiment (valence) into one reading:
/// negative + aroused (or an anger word) is `angry`; negative or uneasy and
/// aroused-but-not-hostile is `anxious`; positive is `happy`; else `calm`.
pub fn fuse(acoustic: &AcousticFeatures, sentiment: Option<&Sentiment>) -> Emotion {
    let valence = sentiment.map(|s| s.score).unwrap_or(0.0);
    let text_angry = sentiment.is_some_and(|s| s.angry);
    let a = acoustic.arousal;
    let (label, confidence) = if text_angry {
        (EmotionLabel::Angry, 0.7 + 0.3 * a)
    } else if valence <= -0.2 && a >= 0.55 {
        (
            EmotionLabel::Angry,
            0.5 + 0.25 * (a - 0.55) / 0.45 + 0.25 * (-valence),
        )
    } else if valence <= -0.2 || (a >= 0.65 && valence < 0.2) {
        // Unease in words, or agitation in the voice without hostile words.
        let c = if valence <= -0.2 {
            0.45 + 0.3 * (-valence) + 0.2 * a
        } else {
            0.4 + 0.4 * (a - 0.65) / 0.35
        };
        (EmotionLabel::Anxious, c)
    } else if valence >= 0.2 || (sentiment.is_some_and(|s| s.label == SentimentLabel::Positive)) {
        (EmotionLabel::Happy, 0.5 + 0.4 * valence + 0.1 * a)
    } else {
        (EmotionLabel::Calm, 0.5 + 0.4 * (1.0 - a))
    };
    Emotion {
        label,
        confidence: confidence.clamp(0.0, 1.0),
    }
}

/// Features plus the fused reading for one utterance (`text` is what ASR heard, if any).
pub fn analyze(samples: &[i16], rate: u32, text: Option<&str>) -> EmotionReading {
    let acoustic = analyze_pcm(samples, rate);
    let sentiment = text.map(crate::sentiment::analyze);
    let emotion = fuse(&acoustic, sentiment.as_ref());
    EmotionReading {
        emotion,
        acoustic,
        sentiment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Harmonic "voice" at f0 with amplitude `amp`, as i16.
    fn voice(rate: u32, secs: f32, f0: impl Fn(f32) -> f32, amp: f32) -> Vec<i16> {
        let n = (rate as f32 * secs) as usize;
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                phase += 2.0 * std::f32::consts::PI * f0(t) / rate as f32;
                let v =
                    (phase.sin() + 0.5 * (2.0 * phase).sin() + 0.25 * (3.0 * phase).sin()) / 1.75;
                (v * amp * 32767.0) as i16
            })
            .collect()
    }

    /// `n` syllables of `syl` seconds separated by `gap` seconds of silence.
    /// Pitch moves by `step` (fraction of f0) from one syllable to the next.
    fn syllables(
        rate: u32,
        n: usize,
        syl: f32,
        gap: f32,
        f0: f32,
        amp: f32,
        step: f32,
    ) -> Vec<i16> {
        let mut out = Vec::new();
        for k in 0..n {
            let s = voice(rate, syl, |_| f0 * (1.0 + step * k as f32), amp);
            // Raised-cosine envelope so each syllable has one energy peak.
            let len = s.len() as f32;
            out.extend(s.iter().enumerate().map(|(i, &v)| {
                let w = 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / len).cos();
                (v as f32 * w) as i16
            }));
            out.extend(std::iter::repeat_n(0i16, (rate as f32 * gap) as usize));
        }
        out
    }

    #[test]
    fn silence_has_no_speech() {
        let f = analyze_pcm(&vec![0i16; 16000], 16000);
        assert_eq!(f.rms_dbfs, -100.0);
        assert_eq!(f.pitch_mean_hz, 0.0);
        assert_eq!(f.speech_rate, 0.0);
        let f = analyze_pcm(&[], 8000);
        assert_eq!(f.duration_s, 0.0);
    }

    #[test]
    fn pitch_of_a_steady_voice() {
        for rate in [8000, 16000] {
            let s = voice(rate, 1.0, |_| 180.0, 0.3);
            let f = analyze_pcm(&s, rate);
            assert!(
                (f.pitch_mean_hz - 180.0).abs() < 4.0,
                "{rate}: {}",
                f.pitch_mean_hz
            );
            assert!(f.pitch_range_st < 0.5, "{}", f.pitch_range_st);
            assert!(f.voiced_ratio > 0.8);
            assert!(
                (f.rms_dbfs - db(0.3 / 2f32.sqrt() * 0.75)).abs() < 3.0,
                "{}",
                f.rms_dbfs
            );
        }
    }

    #[test]
    fn pitch_range_of_a_glide() {
        // 120 Hz up to 240 Hz: an octave, 12 semitones; 10th-90th percentile ~ 9.6.
        let s = voice(16000, 1.0, |t| 120.0 * 2f32.powf(t), 0.3);
        let f = analyze_pcm(&s, 16000);
        assert!(
            f.pitch_range_st > 8.0 && f.pitch_range_st < 11.0,
            "{}",
            f.pitch_range_st
        );
    }

    #[test]
    fn speech_rate_and_pauses() {
        // 8 syllables of 150 ms with 100 ms gaps: 4 syllables per second of sound,
        // 5.3 per second of speech; 40% of the span is pause.
        let s = syllables(8000, 8, 0.15, 0.1, 200.0, 0.3, 0.02);
        let f = analyze_pcm(&s, 8000);
        assert!(
            f.speech_rate > 4.0 && f.speech_rate < 9.0,
            "{}",
            f.speech_rate
        );
        assert!(
            f.pause_ratio > 0.3 && f.pause_ratio < 0.65,
            "{}",
            f.pause_ratio
        );
        let slow = analyze_pcm(&syllables(8000, 4, 0.3, 0.4, 200.0, 0.3, 0.02), 8000);
        assert!(
            slow.speech_rate < f.speech_rate,
            "{} vs {}",
            slow.speech_rate,
            f.speech_rate
        );
        assert!(slow.pause_ratio > f.pause_ratio);
    }

    #[test]
    fn fusion() {
        let loud = analyze_pcm(&syllables(8000, 12, 0.12, 0.03, 220.0, 0.9, 0.07), 8000);
        let quiet = analyze_pcm(&syllables(8000, 4, 0.3, 0.4, 120.0, 0.03, 0.01), 8000);
        assert!(loud.arousal > quiet.arousal + 0.3, "{loud:?} vs {quiet:?}");
        let s = |t: &str| crate::sentiment::analyze(t);
        assert_eq!(
            fuse(&quiet, Some(&s("好的 谢谢"))).label,
            EmotionLabel::Happy
        );
        assert_eq!(
            fuse(&quiet, Some(&s("在开车 晚点打"))).label,
            EmotionLabel::Calm
        );
        assert_eq!(fuse(&quiet, None).label, EmotionLabel::Calm);
        assert_eq!(
            fuse(&loud, Some(&s("你们服务太差了"))).label,
            EmotionLabel::Angry
        );
        assert_eq!(fuse(&quiet, Some(&s("滚"))).label, EmotionLabel::Angry);
        assert_eq!(
            fuse(&quiet, Some(&s("我很担心 有点着急"))).label,
            EmotionLabel::Anxious
        );
        assert_eq!(fuse(&loud, None).label, EmotionLabel::Anxious);
        let e = fuse(&loud, Some(&s("你们服务太差了")));
        assert!(e.confidence > 0.5 && e.confidence <= 1.0);
    }
}
