//! Measuring the VAD and endpointer on synthesised speech with noise: the
//! shared code of the tests and of `waihu tts/asr --bench`.
use crate::endpoint::{EndpointConfig, EndpointEvent, SegmentEvent, Segmenter};
use crate::vad::{default_vad, frame_dbfs, Vad, VadError};

/// Deterministic Gaussian noise (xorshift64* + Box-Muller), so measurements repeat.
pub struct Noise {
    state: u64,
    spare: Option<f64>,
}

impl Noise {
    pub fn new(seed: u64) -> Self {
        Noise {
            state: seed.max(1),
            spare: None,
        }
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let v = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        ((v >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    pub fn gaussian(&mut self) -> f64 {
        if let Some(s) = self.spare.take() {
            return s;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let th = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * th.sin());
        r * th.cos()
    }
}

/// RMS over frames louder than -45 dBFS (the active speech level), and the
/// sample range [first, last) of those frames.
pub fn active_speech(samples: &[i16], rate: u32) -> (f64, usize, usize) {
    let n = (rate / 50) as usize;
    let (mut sum, mut count, mut first, mut last) = (0f64, 0usize, usize::MAX, 0usize);
    for (i, f) in samples.chunks(n).enumerate() {
        if frame_dbfs(f) > -45.0 {
            sum += f.iter().map(|&s| (s as f64).powi(2)).sum::<f64>();
            count += f.len();
            first = first.min(i * n);
            last = (i + 1) * n;
        }
    }
    let rms = if count == 0 {
        0.0
    } else {
        (sum / count as f64).sqrt()
    };
    (
        rms,
        if first == usize::MAX { 0 } else { first },
        last.min(samples.len()),
    )
}

/// Add white noise at `snr_db` below the active speech level of `speech_rms`.
pub fn add_noise(samples: &mut [i16], speech_rms: f64, snr_db: f64, noise: &mut Noise) {
    let sigma = speech_rms / 10f64.powf(snr_db / 20.0);
    for s in samples.iter_mut() {
        *s = (*s as f64 + sigma * noise.gaussian())
            .round()
            .clamp(-32768.0, 32767.0) as i16;
    }
}

/// One clip: `lead_ms` of silence, the speech, `trail_ms` of silence, then noise.
pub struct Clip {
    pub samples: Vec<i16>,
    pub rate: u32,
    pub speech_start_ms: u64,
    pub speech_end_ms: u64,
}

pub fn make_clip(
    speech: &[i16],
    rate: u32,
    lead_ms: u32,
    trail_ms: u32,
    snr_db: Option<f64>,
    seed: u64,
) -> Clip {
    let (rms, first, last) = active_speech(speech, rate);
    let lead = (rate * lead_ms / 1000) as usize;
    let mut samples = vec![0i16; lead];
    samples.extend_from_slice(&speech[first..last]);
    samples.extend(std::iter::repeat_n(0, (rate * trail_ms / 1000) as usize));
    if let Some(snr) = snr_db {
        add_noise(&mut samples, rms, snr, &mut Noise::new(seed));
    }
    let ms = |n: usize| n as u64 * 1000 / rate as u64;
    Clip {
        samples,
        rate,
        speech_start_ms: ms(lead),
        speech_end_ms: ms(lead + last - first),
    }
}

/// What the endpointer did on one clip, with a prompt "playing" over the
/// leading non-speech (so any start there is a false barge-in).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClipOutcome {
    pub utterances: usize,
    pub false_starts: usize,
    pub false_barge_ins: usize,
    /// Detected start minus true start (ms), first utterance overlapping the speech.
    pub start_error_ms: Option<i64>,
    /// Decision time of the end minus true end of speech (ms).
    pub end_delay_ms: Option<i64>,
    /// Barge-in decision time minus true start, with the prompt playing over the start.
    pub barge_in_delay_ms: Option<i64>,
}

/// Run the default VAD and endpointer over a clip. The prompt plays until the
/// caller's speech is detected (a barge-in).
pub fn run_clip(clip: &Clip, cfg: EndpointConfig) -> Result<ClipOutcome, VadError> {
    run_clip_with(clip, cfg, default_vad(clip.rate)?)
}

/// [`run_clip`] with a given detector (to compare detectors on the same audio).
pub fn run_clip_with(
    clip: &Clip,
    cfg: EndpointConfig,
    vad: Box<dyn Vad>,
) -> Result<ClipOutcome, VadError> {
    let mut seg = Segmenter::new(vad, cfg);
    seg.set_playing(true);
    let n = (clip.rate / 50) as usize;
    let mut out = ClipOutcome::default();
    let mut events = Vec::new();
    for f in clip.samples.chunks_exact(n) {
        events.extend(seg.push(f)?);
    }
    events.extend(seg.finish());
    let (s, e) = (clip.speech_start_ms as i64, clip.speech_end_ms as i64);
    for ev in events {
        match ev {
            SegmentEvent::Endpoint(EndpointEvent::SpeechStart { start_ms, .. }) => {
                let start = start_ms as i64;
                if start < s - 100 || start > e {
                    out.false_starts += 1;
                } else if out.start_error_ms.is_none() {
                    out.start_error_ms = Some(start - s);
                }
            }
            SegmentEvent::Endpoint(EndpointEvent::BargeIn {
                start_ms,
                detected_ms,
            }) => {
                if (start_ms as i64) < s - 100 || start_ms as i64 > e {
                    out.false_barge_ins += 1;
                } else {
                    seg.set_playing(false);
                    out.barge_in_delay_ms.get_or_insert(detected_ms as i64 - s);
                }
            }
            SegmentEvent::Endpoint(EndpointEvent::SpeechEnd {
                end_ms,
                detected_ms,
                ..
            }) => {
                if (end_ms as i64) >= s && out.end_delay_ms.is_none() && (end_ms as i64) + 300 >= e
                {
                    out.end_delay_ms = Some(detected_ms as i64 - e);
                }
            }
            SegmentEvent::Utterance(_) => out.utterances += 1,
            SegmentEvent::Endpoint(EndpointEvent::Pause { .. }) | SegmentEvent::Tentative(_) => {}
        }
    }
    Ok(out)
}

/// Lowercase words with punctuation removed (hyphens and apostrophes kept
/// inside words), for word error rate.
pub fn normalize_words(s: &str) -> Vec<String> {
    s.to_lowercase()
        .split(|c: char| c.is_whitespace() || (c.is_ascii_punctuation() && c != '\'' && c != '-'))
        .map(|w| w.trim_matches(|c: char| c == '\'' || c == '-').to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Levenshtein distance between two sequences.
pub fn edit_distance<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, x) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(x != y))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Word error rate of `hyp` against `reference` (errors, reference words).
pub fn word_errors(reference: &str, hyp: &str) -> (usize, usize) {
    let r = normalize_words(reference);
    let h = normalize_words(hyp);
    (edit_distance(&r, &h), r.len())
}

/// Character errors for Chinese (punctuation and spaces removed), with the reference length.
pub fn char_errors(reference: &str, hyp: &str) -> (usize, usize) {
    let clean = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect()
    };
    let (r, h) = (clean(reference), clean(hyp));
    (edit_distance(&r, &h), r.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wer_counts_substitutions_insertions_deletions() {
        assert_eq!(word_errors("Yes, I'm here.", "yes i'm here"), (0, 3));
        assert_eq!(
            word_errors("call me back later", "call back later please"),
            (2, 4)
        );
        assert_eq!(char_errors("好的，谢谢。", "好了谢谢"), (1, 4));
    }

    #[test]
    fn noise_has_unit_variance_and_repeats() {
        let mut a = Noise::new(7);
        let v: Vec<f64> = (0..20000).map(|_| a.gaussian()).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
        assert_eq!(Noise::new(7).gaussian(), v[0]);
    }

    #[test]
    fn snr_is_as_asked() {
        let rate = 8000;
        let tone: Vec<i16> = (0..8000)
            .map(|i| (8000.0 * (i as f64 * 0.3).sin()) as i16)
            .collect();
        let (rms, _, _) = active_speech(&tone, rate);
        let mut noisy = tone.clone();
        add_noise(&mut noisy, rms, 10.0, &mut Noise::new(3));
        let noise_rms = (noisy
            .iter()
            .zip(&tone)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            / tone.len() as f64)
            .sqrt();
        let snr = 20.0 * (rms / noise_rms).log10();
        assert!((snr - 10.0).abs() < 0.3, "{snr}");
    }
}
