//! The personas' lines and the truth table agree: every line of every
//! conversing persona, in English and Mandarin, goes as text through the real
//! NLU (built-in intents plus the script's own) and the real dialog
//! interpreter of the order-confirmation script, and the conversation must end
//! with the persona's business outcome. No audio here: this proves the lines
//! and the truth before speech recognition can blur them.
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use waihu_audio::Lang;
use waihu_dialog::{Input, Interpreter, Output, Program};
use waihu_sim::{Persona, Truth};

fn script(lang: Lang) -> Arc<Program> {
    let file = match lang {
        Lang::En => "order_confirmation.en.yaml",
        Lang::Zh => "order_confirmation.zh.yaml",
    };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts")
        .join(file);
    Arc::new(waihu_dialog::load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

fn nlu(prog: &Program) -> waihu_nlu::Nlu {
    waihu_bot::script_nlu(prog).expect("training the NLU")
}

/// Runs one conversation the way the call agent does: answer each prompt with
/// the next line, repeat the last line once when the bot asks again after the
/// lines ran out, then hang up. Returns the end outcome and a transcript.
fn converse(
    prog: &Arc<Program>,
    nlu: &waihu_nlu::Nlu,
    zone: chrono_tz::Tz,
    lines: &[&str],
) -> (String, Vec<String>) {
    let now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    let customer: Vec<(String, String)> = prog
        .required
        .iter()
        .map(|(_, name, example)| (name.clone(), example.clone()))
        .collect();
    let mut call = Interpreter::new(prog.clone(), customer, 7).unwrap();
    let mut log = Vec::new();
    let note = |outs: &[Output], log: &mut Vec<String>| {
        for o in outs {
            match o {
                Output::Play { text, .. } => log.push(format!("bot: {text}")),
                Output::End { outcome, .. } => log.push(format!("end: {outcome}")),
                _ => {}
            }
        }
    };
    let outs = call.handle(now, Input::Answered).to_vec();
    note(&outs, &mut log);
    let outs = call.handle(now, Input::PlaybackFinished).to_vec();
    note(&outs, &mut log);
    let mut said = 0;
    let mut extra = 0;
    while !call.is_ended() {
        let line = if said < lines.len() {
            said += 1;
            lines[said - 1]
        } else if extra < waihu_sim::agent::EXTRA_REPLIES && !lines.is_empty() {
            extra += 1;
            lines[lines.len() - 1]
        } else {
            let outs = call.handle(now, Input::HungUp).to_vec();
            note(&outs, &mut log);
            break;
        };
        let r = nlu.classify(line, now, zone);
        log.push(format!(
            "callee: {line}  [{} {:.2}]",
            r.intent, r.confidence
        ));
        let emotion = r.sentiment.angry.then_some(waihu_core::Emotion {
            label: waihu_core::EmotionLabel::Angry,
            confidence: 0.8,
        });
        let outs = call
            .handle(now, Input::Utterance { nlu: &r, emotion })
            .to_vec();
        note(&outs, &mut log);
        if outs.iter().any(|o| matches!(o, Output::Play { .. })) && !call.is_ended() {
            let outs = call.handle(now, Input::PlaybackFinished).to_vec();
            note(&outs, &mut log);
        }
    }
    let outcome = call.ended().map(|e| e.0.clone()).unwrap_or_default();
    (outcome, log)
}

#[test]
fn every_persona_line_leads_the_script_to_the_personas_business_truth() {
    let mut failures = Vec::new();
    let mut conversations = 0;
    for lang in [Lang::En, Lang::Zh] {
        let prog = script(lang);
        let nlu = nlu(&prog);
        let zone: chrono_tz::Tz = match lang {
            Lang::En => chrono_tz::America::New_York,
            Lang::Zh => chrono_tz::Asia::Shanghai,
        };
        for p in Persona::ALL.into_iter().filter(|p| p.converses()) {
            let Truth { business, .. } = p.truth(&prog.name);
            let want = business.expect("order_confirmation has a business truth for talkers");
            let turns = p.lines(lang);
            let alts = turns.iter().map(|t| t.len()).max().unwrap_or(0);
            // Every phrasing is used at least once: conversation j takes alternative j of each turn.
            for j in 0..alts {
                let lines: Vec<&str> = turns.iter().map(|t| t[j % t.len()]).collect();
                let (got, log) = converse(&prog, &nlu, zone, &lines);
                conversations += 1;
                if std::env::var_os("WAIHU_SIM_VERBOSE").is_some() {
                    println!("{p} {lang:?} #{j}: {got}\n    {}", log.join("\n    "));
                }
                if got != want {
                    failures.push(format!(
                        "{p} {lang:?} #{j}: want {want}, got {got}\n    {}",
                        log.join("\n    ")
                    ));
                }
            }
        }
    }
    assert!(conversations >= 40, "{conversations} conversations");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
