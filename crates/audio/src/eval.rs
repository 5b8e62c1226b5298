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

const ONES: [&str; 20] = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
];
const TENS: [&str; 10] = [
    "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

/// An English cardinal in words, without "and": 129 → "one hundred twenty nine".
pub fn cardinal_en(n: u64) -> String {
    fn below_1000(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(ONES[(n / 100) as usize].into());
            out.push("hundred".into());
        }
        let r = n % 100;
        if r >= 20 {
            out.push(TENS[(r / 10) as usize].into());
            if !r.is_multiple_of(10) {
                out.push(ONES[(r % 10) as usize].into());
            }
        } else if r > 0 || n == 0 {
            out.push(ONES[r as usize].into());
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let mut out = Vec::new();
    for (scale, name) in [
        (1_000_000_000_000u64, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ] {
        if !(n / scale).is_multiple_of(1000) || (scale == 1_000_000_000_000 && n >= scale) {
            below_1000((n / scale) % 1000, &mut out);
            out.push(name.into());
        }
    }
    if !n.is_multiple_of(1000) {
        below_1000(n % 1000, &mut out);
    }
    out.join(" ")
}

/// The ordinal of a cardinal in words: "twenty one" → "twenty first".
fn ordinal_words(cardinal: &str) -> String {
    let (head, last) = cardinal.rsplit_once(' ').unwrap_or(("", cardinal));
    let last = match last {
        "one" => "first".to_string(),
        "two" => "second".into(),
        "three" => "third".into(),
        "five" => "fifth".into(),
        "eight" => "eighth".into(),
        "nine" => "ninth".into(),
        "twelve" => "twelfth".into(),
        w if w.ends_with('y') => format!("{}ieth", &w[..w.len() - 1]),
        w => format!("{w}th"),
    };
    if head.is_empty() {
        last
    } else {
        format!("{head} {last}")
    }
}

/// Digits one by one: "0123" → "zero one two three".
fn digit_words(d: &str) -> String {
    d.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|v| ONES[v as usize])
        .collect::<Vec<_>>()
        .join(" ")
}

/// A run of digits as said: up to four digits (no leading zero) as a
/// number, longer codes and zero-led ones digit by digit.
fn number_words(d: &str) -> String {
    if d.len() > 4 || (d.len() > 1 && d.starts_with('0')) {
        digit_words(d)
    } else {
        cardinal_en(d.parse().unwrap_or(0))
    }
}

/// English text with its written numbers spelled as they are said, so a
/// transcript that writes "$129.99", "10%", "3:30" or "15th" scores the same
/// as one that spells them (both sides of a WER go through it). Also
/// "Mr./Mrs./Dr./St." → mister/missus/doctor/street, hyphens → spaces, and
/// "and" inside a number ("one hundred and five") dropped.
pub fn spoken_en(text: &str) -> String {
    let mut words: Vec<String> = Vec::new();
    for raw in text.split_whitespace() {
        let tok = raw
            .trim_matches(|c: char| c.is_ascii_punctuation() && !matches!(c, '$' | '%' | '\''))
            .trim_end_matches(['.', ',']);
        let lower = tok.to_lowercase();
        let digits: String = lower.chars().filter(|c| *c != ',').collect();
        if let Some(m) = digits.strip_prefix('$') {
            let (int, frac) = m.split_once('.').unwrap_or((m, ""));
            if !int.is_empty() && int.chars().all(|c| c.is_ascii_digit()) {
                words.push(cardinal_en(int.parse().unwrap_or(0)));
                words.push("dollars".into());
                let cents: u64 = frac.parse().unwrap_or(0);
                if cents > 0 {
                    words.push(cardinal_en(cents));
                    words.push("cents".into());
                }
                continue;
            }
        }
        if let Some(p) = digits.strip_suffix('%') {
            if !p.is_empty() && p.chars().all(|c| c.is_ascii_digit() || c == '.') {
                words.push(spoken_en(p));
                words.push("percent".into());
                continue;
            }
        }
        if let Some((h, m)) = digits.split_once(':') {
            let m = m.trim_end_matches(|c: char| c.is_ascii_alphabetic());
            if (1..=2).contains(&h.len())
                && m.len() == 2
                && h.chars().chain(m.chars()).all(|c| c.is_ascii_digit())
            {
                words.push(cardinal_en(h.parse().unwrap_or(0)));
                if m != "00" {
                    if m.starts_with('0') {
                        words.push("oh".into());
                    }
                    words.push(cardinal_en(m.parse().unwrap_or(0)));
                }
                continue;
            }
        }
        let num_end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        if num_end > 0 {
            let (num, rest) = digits.split_at(num_end);
            if matches!(rest, "st" | "nd" | "rd" | "th") && !num.starts_with('0') {
                words.push(ordinal_words(&cardinal_en(num.parse().unwrap_or(0))));
                continue;
            }
            if let Some(frac) = rest.strip_prefix('.') {
                if !frac.is_empty() && frac.chars().all(|c| c.is_ascii_digit()) {
                    words.push(number_words(num));
                    words.push("point".into());
                    words.push(digit_words(frac));
                    continue;
                }
            }
        }
        // Digits and letters mixed ("5b", "a4"): each run on its own.
        let mut run = String::new();
        let flush = |run: &mut String, words: &mut Vec<String>| {
            if run.is_empty() {
                return;
            }
            if run.chars().all(|c| c.is_ascii_digit()) {
                words.push(number_words(run));
            } else {
                words.push(match run.as_str() {
                    "mr" => "mister".into(),
                    "mrs" => "missus".into(),
                    "dr" => "doctor".into(),
                    "st" => "street".into(),
                    "ok" => "okay".into(),
                    _ => run.clone(),
                });
            }
            run.clear();
        };
        let mut prev_digit = None;
        for c in digits.chars() {
            if c == '-' || c == '/' {
                flush(&mut run, &mut words);
                prev_digit = None;
                continue;
            }
            let d = c.is_ascii_digit();
            if prev_digit.is_some_and(|p| p != d) && c.is_alphanumeric() {
                flush(&mut run, &mut words);
            }
            if c.is_alphanumeric() || c == '\'' {
                prev_digit = Some(d);
            }
            run.push(c);
        }
        flush(&mut run, &mut words);
    }
    let words: Vec<String> = words
        .join(" ")
        .split_whitespace()
        .map(String::from)
        .collect();
    const NUMERIC: [&str; 3] = ["hundred", "thousand", "million"];
    let is_num = |w: &str| ONES.contains(&w) || TENS[2..].contains(&w) || NUMERIC.contains(&w);
    let mut out: Vec<&str> = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        if w == "and"
            && i > 0
            && NUMERIC.contains(&words[i - 1].as_str())
            && words.get(i + 1).is_some_and(|n| is_num(n))
        {
            continue;
        }
        out.push(w);
    }
    out.join(" ")
}

/// Word errors of English with numbers normalised on both sides
/// ([`spoken_en`]): (errors, reference words).
pub fn word_errors_en(reference: &str, hyp: &str) -> (usize, usize) {
    word_errors(&spoken_en(reference), &spoken_en(hyp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_numbers_score_as_spoken() {
        assert_eq!(cardinal_en(129), "one hundred twenty nine");
        assert_eq!(cardinal_en(1_280), "one thousand two hundred eighty");
        assert_eq!(cardinal_en(2_000_015), "two million fifteen");
        assert_eq!(
            spoken_en("The total is $1,280.50, about 10%."),
            "the total is one thousand two hundred eighty dollars fifty cents about ten percent"
        );
        assert_eq!(
            spoken_en("Come at 3:30 or 10:05"),
            "come at three thirty or ten oh five"
        );
        assert_eq!(
            spoken_en("on March 3rd, the 21st"),
            "on march third the twenty first"
        );
        assert_eq!(spoken_en("Order 48213, call 415 555 0123"),
            "order four eight two one three call four hundred fifteen five hundred fifty five zero one two three");
        assert_eq!(
            spoken_en("Apartment 5B, Mr. Lee's forty-two"),
            "apartment five b mister lee's forty two"
        );
        assert_eq!(
            word_errors_en(
                "It costs one hundred and twenty nine dollars.",
                "It costs $129."
            ),
            (0, 7)
        );
        assert_eq!(
            word_errors_en("See you at five o'clock", "see you at 5 o'clock"),
            (0, 5)
        );
        assert_eq!(word_errors_en("twelve", "11"), (1, 1));
        // Never panics, whatever the text.
        for s in [
            "$",
            "%",
            ":",
            "$.5",
            "1:",
            "12:345",
            "0th",
            "99999999999999999999",
            "a-b/c",
            "$1.2.3",
        ] {
            spoken_en(s);
        }
    }

    proptest::proptest! {
        /// Transcripts are outside input: any text normalises without a panic.
        #[test]
        fn spoken_en_takes_any_text(s in "[0-9$%:.,/a-zA-Z' -]{0,24}|\\PC{0,24}") {
            spoken_en(&s);
        }
    }

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
