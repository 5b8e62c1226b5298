//! `knowledge:` in scripts: validation with field paths, the document read
//! relative to the script, and the interpreter's aside that returns the call
//! to the state it was in.
use std::sync::Arc;

use waihu_core::{NluResult, Sentiment, SentimentLabel};
use waihu_dialog::{load_file, load_str, Aside, Input, Interpreter, Output, StepKind};

const SCRIPT: &str = r#"
name: faq
language: zh
variables: { name: 张先生 }
knowledge:
  passages:
    - { title: 滤芯, text: 滤芯建议每6个月更换一次。 }
  fallback: "{{name}}，这个问题稍后请同事回复您。"
states:
  ask:
    say: 您方便确认订单吗？
    expect: { intents: [affirm, deny] }
    on:
      - intent: affirm
        end: confirmed
      - intent: deny
        end: declined
"#;

fn nlu(text: &str, intent: &str) -> NluResult {
    NluResult {
        text: text.into(),
        intent: intent.into(),
        confidence: 0.9,
        entities: vec![],
        sentiment: Sentiment {
            label: SentimentLabel::Neutral,
            score: 0.0,
            angry: false,
        },
    }
}

#[test]
fn an_out_of_script_question_is_answered_aside_and_the_call_goes_on() {
    let prog = Arc::new(load_str(SCRIPT, "faq.yaml").unwrap());
    let kn = prog.knowledge.as_ref().unwrap();
    assert_eq!(kn.passages.len(), 1);
    assert_eq!(kn.on, vec!["ask_info", "unknown"]);
    let mut call = Interpreter::new(prog, [("name", "张先生")], 1).unwrap();
    let now = chrono::Utc::now();
    call.handle(now, Input::Answered);
    call.handle(now, Input::PlaybackFinished);
    let q = nlu("滤芯多久换一次", "ask_info");
    assert!(call.wants_knowledge(&q));
    assert!(!call.wants_knowledge(&nlu("好的", "affirm")));
    let said = vec!["滤芯建议每6个月更换一次。".to_string()];
    let out = call.aside(now, Aside::Said(&said)).to_vec();
    let plays: Vec<&str> = out
        .iter()
        .filter_map(|o| match o {
            Output::Play { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        plays,
        vec!["滤芯建议每6个月更换一次。", "您方便确认订单吗？"]
    );
    assert_eq!(call.state(), "ask");
    call.handle(now, Input::PlaybackFinished);
    let out = call.aside(now, Aside::Fallback).to_vec();
    assert!(
        matches!(&out[0], Output::Play { text, .. } if text == "张先生，这个问题稍后请同事回复您。")
    );
    call.handle(now, Input::PlaybackFinished);
    let yes = nlu("好的", "affirm");
    call.handle(
        now,
        Input::Utterance {
            nlu: &yes,
            emotion: None,
        },
    );
    assert_eq!(call.ended().unwrap().0, "confirmed");
    assert!(call
        .trace()
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Handler { name } if name == "knowledge")));
}

#[test]
fn bad_knowledge_is_reported_with_its_path() {
    let both = SCRIPT.replace("  passages:", "  file: faq.md\n  passages:");
    let e = load_str(&both, "faq.yaml").unwrap_err().to_string();
    assert!(e.contains("knowledge.passages"), "{e}");
    let neither = SCRIPT.replace(
        "  passages:\n    - { title: 滤芯, text: 滤芯建议每6个月更换一次。 }\n",
        "",
    );
    let e = load_str(&neither, "faq.yaml").unwrap_err().to_string();
    assert!(e.contains("knowledge"), "{e}");
    let empty = SCRIPT.replace("text: 滤芯建议每6个月更换一次。", "text: \"\"");
    let e = load_str(&empty, "faq.yaml").unwrap_err().to_string();
    assert!(e.contains("knowledge.passages[0].text"), "{e}");
    let on = SCRIPT.replace("  fallback:", "  on: [ask_inf]\n  fallback:");
    let e = load_str(&on, "faq.yaml").unwrap_err().to_string();
    assert!(e.contains("ask_info"), "{e}");
    let var = SCRIPT.replace("{{name}}，", "{{nam}}，");
    let e = load_str(&var, "faq.yaml").unwrap_err().to_string();
    assert!(e.contains("knowledge.fallback"), "{e}");
}

#[test]
fn the_shipped_script_reads_its_document() {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/scripts/order_confirmation.zh.yaml"
    );
    let prog = load_file(p.as_ref()).unwrap();
    let doc = prog.knowledge.unwrap().document.unwrap();
    assert!(doc.contains("滤芯"));
    let dir = std::env::temp_dir().join(format!("waihu-kn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let s = dir.join("s.yaml");
    std::fs::write(
        &s,
        SCRIPT.replace(
            "  passages:\n    - { title: 滤芯, text: 滤芯建议每6个月更换一次。 }\n",
            "  file: missing.md\n",
        ),
    )
    .unwrap();
    let e = load_file(&s).unwrap_err().to_string();
    assert!(
        e.contains("knowledge.file") && e.contains("missing.md"),
        "{e}"
    );
    // Headings with nothing under them leave nothing to answer from.
    std::fs::write(dir.join("missing.md"), "# 滤芯\n\n# 价格\n").unwrap();
    let e = load_file(&s).unwrap_err().to_string();
    assert!(e.contains("knowledge.file") && e.contains("no text"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
