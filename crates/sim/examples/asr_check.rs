//! Do the callee lines survive the bot's ears? Every persona line, in one or
//! more espeak-ng voices, goes through the telephone path the simulator uses
//! (8 kHz, G.711 μ-law) and the embedded Whisper engine the bot uses, then the
//! NLU of the order-confirmation script; each persona's conversations are then
//! replayed through the dialog interpreter with the recognised text, and the
//! end outcome is compared with the persona's truth.
//!
//! cargo run --release -p waihu-sim --example asr_check -- en en-us+f3,en-us [PACE] [MODEL_DIR]
//! cargo run --release -p waihu-sim --example asr_check -- zh cmn-latn-pinyin+f3 0.85
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use waihu_dialog::{Input, Interpreter, Output, Program};
use waihu_engine::waihu_media::Law;
use waihu_sim::{Persona, Voices};
use waihu_speech::asr::{AsrOptions, UtteranceAsr};
use waihu_speech::whisper::WhisperAsr;
use waihu_speech::{EspeakTts, Lang, Synthesizer};

fn nlu_for(prog: &Program) -> waihu_nlu::Nlu {
    waihu_bot::script_nlu(prog).expect("NLU")
}

fn converse(
    prog: &Arc<Program>,
    nlu: &waihu_nlu::Nlu,
    zone: chrono_tz::Tz,
    lines: &[String],
) -> String {
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let customer: Vec<(String, String)> = prog
        .required
        .iter()
        .map(|(_, n, e)| (n.clone(), e.clone()))
        .collect();
    let mut call = Interpreter::new(prog.clone(), customer, 7).expect("vars");
    call.handle(now, Input::Answered);
    call.handle(now, Input::PlaybackFinished);
    let mut said = 0;
    let mut extra = 0;
    while !call.is_ended() {
        let line = if said < lines.len() {
            said += 1;
            &lines[said - 1]
        } else if extra < waihu_sim::agent::EXTRA_REPLIES && !lines.is_empty() {
            extra += 1;
            &lines[lines.len() - 1]
        } else {
            call.handle(now, Input::HungUp);
            break;
        };
        let r = nlu.classify(line, now, zone);
        let emotion = r.sentiment.angry.then_some(waihu_core::Emotion {
            label: waihu_core::EmotionLabel::Angry,
            confidence: 0.8,
        });
        let outs = call
            .handle(now, Input::Utterance { nlu: &r, emotion })
            .to_vec();
        if outs.iter().any(|o| matches!(o, Output::Play { .. })) && !call.is_ended() {
            call.handle(now, Input::PlaybackFinished);
        }
    }
    call.ended().map(|e| e.0.clone()).unwrap_or_default()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let lang = match args.next().as_deref() {
        Some("zh") => Lang::Zh,
        _ => Lang::En,
    };
    let voices: Vec<String> = args
        .next()
        .unwrap_or_else(|| match lang {
            Lang::En => waihu_sim::CALLEE_EN_VOICE.into(),
            Lang::Zh => waihu_sim::CALLEE_ZH_VOICE.into(),
        })
        .split(',')
        .map(str::to_string)
        .collect();
    let pace: f32 = args.next().and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let model = args.next().map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
        PathBuf::from(home)
            .join(".local/share/waihu/models")
            .join(match lang {
                Lang::En => "whisper-tiny.en",
                Lang::Zh => "whisper-base",
            })
    });
    let asr = WhisperAsr::load(&model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let (file, zone, code) = match lang {
        Lang::En => (
            "order_confirmation.en.yaml",
            chrono_tz::America::New_York,
            "en",
        ),
        Lang::Zh => (
            "order_confirmation.zh.yaml",
            chrono_tz::Asia::Shanghai,
            "zh",
        ),
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts")
        .join(file);
    let prog = Arc::new(waihu_dialog::load_file(&path).expect("script"));
    let nlu = nlu_for(&prog);
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let opts = AsrOptions {
        lang: Some(code.into()),
        hotwords: Vec::new(),
        prompt: None,
        rate: 8000,
    };
    // Candidate phrasings from a file (one per line): recognised text and intent only.
    if let Some(file) = std::env::var_os("ASR_LINES") {
        let text = std::fs::read_to_string(&file).expect("ASR_LINES file");
        let (zh, en) = match lang {
            Lang::En => (waihu_sim::CALLEE_ZH_VOICE.to_string(), voices[0].clone()),
            Lang::Zh => (voices[0].clone(), waihu_sim::CALLEE_EN_VOICE.to_string()),
        };
        let synth = Synthesizer::new(Arc::new(EspeakTts::new("espeak-ng", &zh, &en)));
        let choice = match lang {
            Lang::En => waihu_speech::LangChoice::En,
            Lang::Zh => waihu_speech::LangChoice::Zh,
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let style = waihu_speech::Style {
                speed: pace,
                ..waihu_speech::Style::NEUTRAL
            };
            let audio = synth
                .synthesize_all(
                    line,
                    waihu_speech::Voice {
                        style,
                        lang: choice,
                        rate: 8000,
                    },
                )
                .expect("espeak-ng");
            let mut codes = Vec::new();
            Law::Ulaw.encode(&audio, &mut codes);
            let mut pcm = vec![0i16; 2400];
            Law::Ulaw.decode(&codes, &mut pcm);
            pcm.extend(std::iter::repeat_n(0i16, 2400));
            let t = asr
                .transcribe(&pcm, 8000, &opts)
                .await
                .map(|t| t.text)
                .unwrap_or_default();
            let a = nlu.classify(line, now, zone);
            let b = nlu.classify(&t, now, zone);
            println!(
                "{} {line} [{}] → {t} [{} {:.2}]",
                if a.intent == b.intent { "✓" } else { "✗" },
                a.intent,
                b.intent,
                b.confidence
            );
        }
        return;
    }
    for voice in voices {
        let (zh, en) = match lang {
            Lang::En => (waihu_sim::CALLEE_ZH_VOICE.to_string(), voice.clone()),
            Lang::Zh => (voice.clone(), waihu_sim::CALLEE_EN_VOICE.to_string()),
        };
        let synth = Synthesizer::new(Arc::new(EspeakTts::new("espeak-ng", &zh, &en)));
        let v = Voices::prepare_paced(&synth, lang, pace).expect("espeak-ng");
        let mut heard: HashMap<String, String> = HashMap::new();
        let (mut same_intent, mut total) = (0, 0);
        let mut bad = Vec::new();
        for p in Persona::ALL.into_iter().filter(|p| p.converses()) {
            for seed in 0..16u64 {
                for l in v.lines_for(p, seed) {
                    if heard.contains_key(&l.text) {
                        continue;
                    }
                    // The telephone path: μ-law there and back, a little silence around.
                    let mut codes = Vec::new();
                    Law::Ulaw.encode(&l.audio, &mut codes);
                    let mut pcm = vec![0i16; 2400];
                    Law::Ulaw.decode(&codes, &mut pcm);
                    pcm.extend(std::iter::repeat_n(0i16, 2400));
                    let t = asr
                        .transcribe(&pcm, 8000, &opts)
                        .await
                        .map(|t| t.text)
                        .unwrap_or_default();
                    let a = nlu.classify(&l.text, now, zone);
                    let b = nlu.classify(&t, now, zone);
                    total += 1;
                    if a.intent == b.intent {
                        same_intent += 1;
                    } else {
                        bad.push(format!(
                            "  {p}: {:?} [{}] → {:?} [{} {:.2}]",
                            l.text, a.intent, t, b.intent, b.confidence
                        ));
                    }
                    heard.insert(l.text.clone(), t);
                }
            }
        }
        // Conversations with the recognised text, every alternative.
        let (mut ok, mut convs) = (0, 0);
        let mut wrong = Vec::new();
        for p in Persona::ALL.into_iter().filter(|p| p.converses()) {
            let want = p.truth(&prog.name).business.unwrap_or_default();
            let turns = p.lines(lang);
            let alts = turns.iter().map(|t| t.len()).max().unwrap_or(0);
            for j in 0..alts {
                let lines: Vec<String> = turns
                    .iter()
                    .map(|t| heard.get(t[j % t.len()]).cloned().unwrap_or_default())
                    .collect();
                let got = converse(&prog, &nlu, zone, &lines);
                convs += 1;
                if got == want {
                    ok += 1;
                } else {
                    wrong.push(format!("  {p} #{j}: want {want}, got {got}: {lines:?}"));
                }
            }
        }
        println!(
            "{voice} (pace {pace}): intent kept through ASR {same_intent}/{total}; conversations ending in the truth {ok}/{convs}"
        );
        for b in bad {
            println!("{b}");
        }
        for w in wrong {
            println!("{w}");
        }
    }
}
