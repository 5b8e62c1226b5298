//! The espeak-ng engine against the real program (Debian package `espeak-ng`).
use std::sync::Arc;

use waihu_audio::goertzel::goertzel_power;
use waihu_speech::{
    EspeakTts, LangChoice, Style, StyleBook, Synthesizer, TtsCache, TtsEngine, Voice,
};

fn engine() -> EspeakTts {
    let e = EspeakTts::default();
    assert!(
        e.available(),
        "espeak-ng is not installed: apt-get install espeak-ng (scripts/deps/speech.apt)"
    );
    e
}

fn frame_energy(s: &[i16]) -> f64 {
    s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64
}

#[test]
fn mandarin_and_english_prompts_give_speech_frames() {
    let s = Synthesizer::new(Arc::new(engine()));
    for rate in [8000u32, 16000] {
        let v = Voice {
            style: Style::NEUTRAL,
            lang: LangChoice::Auto,
            rate,
        };
        let frames: Vec<_> = s
            .stream("您好，这里是客服中心。Your order has shipped.", v)
            .unwrap()
            .map(|f| f.unwrap())
            .collect();
        assert!(frames.iter().all(|f| f.samples.len() == rate as usize / 50));
        // Two sentences of speech: well over a second of audio.
        assert!(frames.len() > 75, "{} frames", frames.len());
        let loud = frames
            .iter()
            .filter(|f| frame_energy(&f.samples) > 1e5)
            .count();
        assert!(
            loud * 3 > frames.len(),
            "{loud} of {} frames carry speech energy",
            frames.len()
        );
    }
}

#[test]
fn style_pitch_raises_f0() {
    // Estimate F0 from autocorrelation over voiced frames: happy must be higher than apologetic.
    let e = engine();
    let book = StyleBook::default();
    let f0 = |style: &Style| {
        let pcm = e
            .synthesize(
                "hello there, how are you today",
                waihu_speech::Lang::En,
                style,
            )
            .unwrap();
        median_f0(&pcm.samples, pcm.rate)
    };
    let low = f0(&book.get("apologetic").unwrap());
    let mid = f0(&book.get("neutral").unwrap());
    let high = f0(&book.get("happy").unwrap());
    assert!(
        low < mid && mid < high,
        "F0 apologetic {low:.0} neutral {mid:.0} happy {high:.0}"
    );
    // ×1.2 within 10 % of the measured table.
    assert!(
        (high / mid - 1.2).abs() < 0.12,
        "happy/neutral = {:.2}",
        high / mid
    );
}

#[test]
fn style_range_widens_intonation() {
    // `range` goes to espeak-ng as SSML prosody: the F0 spread must grow with it.
    let e = engine();
    let spread = |range: f32| {
        let style = Style {
            pitch: 1.0,
            speed: 1.0,
            range,
        };
        let pcm = e
            .synthesize(
                "really? you want it delivered tomorrow morning at nine?",
                waihu_speech::Lang::En,
                &style,
            )
            .unwrap();
        let mut f = f0_track(&pcm.samples, pcm.rate);
        f.sort_by(|a, b| a.total_cmp(b));
        f[f.len() * 9 / 10] - f[f.len() / 10]
    };
    let (narrow, wide) = (spread(0.3), spread(1.8));
    assert!(
        wide > narrow * 1.3,
        "F0 10-90 % spread: range 0.3 → {narrow:.0} Hz, 1.8 → {wide:.0} Hz"
    );
}

fn median_f0(s: &[i16], rate: u32) -> f32 {
    let f0s = f0_track(s, rate);
    f0s.get(f0s.len() / 2).copied().unwrap_or(0.0)
}

fn f0_track(s: &[i16], rate: u32) -> Vec<f32> {
    let win = (rate as usize) / 25; // 40 ms
    let mut f0s = Vec::new();
    for w in s.chunks_exact(win) {
        let x: Vec<f32> = w.iter().map(|&v| v as f32).collect();
        let e0: f32 = x.iter().map(|v| v * v).sum();
        if e0 < 1e8 {
            continue;
        }
        let (lo, hi) = (rate as usize / 400, rate as usize / 60);
        let (mut best, mut best_lag) = (0f32, 0usize);
        for lag in lo..hi {
            let c: f32 = x[..win - lag]
                .iter()
                .zip(&x[lag..])
                .map(|(a, b)| a * b)
                .sum();
            if c > best {
                best = c;
                best_lag = lag;
            }
        }
        if best > 0.5 * e0 && best_lag > 0 {
            f0s.push(rate as f32 / best_lag as f32);
        }
    }
    f0s.sort_by(|a, b| a.total_cmp(b));
    f0s
}

#[test]
fn speed_shortens_audio_and_cache_skips_synthesis() {
    let e = Arc::new(engine());
    let cache = Arc::new(TtsCache::in_memory(8 << 20));
    let s = Synthesizer::new(e).with_cache(cache.clone());
    let slow = Voice {
        style: StyleBook::default().get("apologetic").unwrap(),
        lang: LangChoice::Auto,
        rate: 8000,
    };
    let fast = Voice {
        style: StyleBook::default().get("urgent").unwrap(),
        ..slow
    };
    let text = "感谢您的耐心等待，我们会尽快处理。";
    let a = s.synthesize_all(text, slow).unwrap();
    let b = s.synthesize_all(text, fast).unwrap();
    assert!(
        b.len() * 5 < a.len() * 4,
        "urgent {} vs apologetic {} samples",
        b.len(),
        a.len()
    );
    let again = s.synthesize_all(text, slow).unwrap();
    assert_eq!(a, again);
    assert_eq!(cache.stats().hits, 1);
}

#[test]
fn resampled_output_keeps_speech_band() {
    // Energy of espeak speech at 8 kHz sits below 4 kHz and above 100 Hz.
    let s = Synthesizer::new(Arc::new(engine()));
    let v = Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::En,
        rate: 8000,
    };
    let a = s.synthesize_all("one two three four five", v).unwrap();
    let f: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    let speech = goertzel_power(&f, 8000, 500.0) + goertzel_power(&f, 8000, 1000.0);
    assert!(speech > 0.0);
}
