//! VAD + endpointer on espeak-ng speech, clean and with white noise at 10 dB SNR.
use std::sync::Arc;

use waihu_audio::endpoint::EndpointConfig;
use waihu_audio::eval::{make_clip, run_clip};
use waihu_speech::{EspeakTts, LangChoice, StyleBook, Synthesizer, Voice};

fn speech(text: &str, style: &str, rate: u32) -> Vec<i16> {
    let e = EspeakTts::default();
    assert!(
        e.available(),
        "espeak-ng is not installed: apt-get install espeak-ng"
    );
    let s = Synthesizer::new(Arc::new(e));
    let v = Voice {
        style: StyleBook::default().get(style).unwrap(),
        lang: LangChoice::Auto,
        rate,
    };
    s.synthesize_all(text, v).unwrap()
}

#[test]
fn one_utterance_per_clip_with_bounded_delays() {
    let cases = [
        (
            "Yes, that's fine, please deliver it tomorrow morning.",
            "neutral",
        ),
        ("好的，明天上午送货就可以。", "neutral"),
        ("No thanks, I am not interested.", "urgent"),
        ("我现在不方便，请晚点再打过来。", "apologetic"),
    ];
    for rate in [8000u32, 16000] {
        for (i, (text, style)) in cases.iter().enumerate() {
            for snr in [None, Some(10.0)] {
                let clip = make_clip(
                    &speech(text, style, rate),
                    rate,
                    1500,
                    1500,
                    snr,
                    i as u64 + 1,
                );
                let out = run_clip(&clip, EndpointConfig::default()).unwrap();
                let what = format!("{rate} Hz {text:?} snr {snr:?}: {out:?}");
                assert_eq!(out.utterances, 1, "{what}");
                assert_eq!(out.false_starts + out.false_barge_ins, 0, "{what}");
                let start = out.start_error_ms.expect(&what);
                assert!((-100..=200).contains(&start), "{what}");
                // End decided 500 ms of silence after the speech (the VAD's own hangover adds a little).
                let end = out.end_delay_ms.expect(&what);
                assert!((400..=900).contains(&end), "{what}");
                let barge = out.barge_in_delay_ms.expect(&what);
                assert!((250..=700).contains(&barge), "{what}");
            }
        }
    }
}

#[test]
fn end_silence_is_configurable_on_real_speech() {
    let clip = make_clip(
        &speech("Please call me back next week.", "neutral", 8000),
        8000,
        1000,
        2500,
        Some(10.0),
        9,
    );
    let short = run_clip(
        &clip,
        EndpointConfig {
            end_silence_ms: 300,
            ..Default::default()
        },
    )
    .unwrap();
    let long = run_clip(
        &clip,
        EndpointConfig {
            end_silence_ms: 1200,
            ..Default::default()
        },
    )
    .unwrap();
    let (a, b) = (short.end_delay_ms.unwrap(), long.end_delay_ms.unwrap());
    assert!((b - a - 900).abs() <= 60, "300 ms → {a}, 1200 ms → {b}");
}

#[test]
fn noise_alone_never_barges_in() {
    // 20 s of 10 dB-SNR-level noise (relative to typical espeak speech) with a prompt playing.
    let reference = speech("reference level", "neutral", 8000);
    let (rms, _, _) = waihu_audio::eval::active_speech(&reference, 8000);
    let mut noise = vec![0i16; 8000 * 20];
    waihu_audio::eval::add_noise(
        &mut noise,
        rms,
        10.0,
        &mut waihu_audio::eval::Noise::new(42),
    );
    let clip = waihu_audio::eval::Clip {
        samples: noise,
        rate: 8000,
        speech_start_ms: u64::MAX / 4,
        speech_end_ms: u64::MAX / 4,
    };
    let out = run_clip(&clip, EndpointConfig::default()).unwrap();
    assert_eq!(out.utterances, 0, "{out:?}");
    assert_eq!(out.false_barge_ins, 0, "{out:?}");
}
