//! Outside input never panics the loader, the case loader, the interpreter or
//! the flow editor's edits (`waihu_dialog::edit`).
use std::sync::Arc;

use proptest::prelude::*;
use waihu_core::{NluResult, Sentiment, SentimentLabel};
use waihu_dialog::{Input, Interpreter};

const GOOD: &str = include_str!("../../../examples/scripts/order_confirmation.zh.yaml");

/// Fragments that make mutated input look like a script, to reach deep code.
const PIECES: &[&str] = &[
    "name: x\n",
    "language: zh\n",
    "states:\n",
    "  a:\n",
    "    say: \"{{name}}\"\n",
    "    on:\n",
    "      - intent: affirm\n",
    "        goto: b\n",
    "    end: ok\n",
    "variables: {name: 1}\n",
    "&a [1, *a]\n",
    "- ",
    "{",
    "}",
    "[",
    "]",
    ":",
    "\"",
    "'",
    "\n",
    "  ",
    "{{",
    "}}",
    "when: \"a > 1 && (b\"\n",
    "!!str ",
    "? ",
    "|\n  x\n",
    "*a",
    "&b ",
    "---\n",
    "...\n",
    "\t",
    "#",
    "globals: { anger: { escalate_after: 0 } }\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = waihu_dialog::load_str(&text, "fuzz.yaml");
        let _ = waihu_dialog::testing::load_cases_str(&text, "fuzz.cases.yaml");
    }

    #[test]
    fn script_shaped_input_never_panics(idx in proptest::collection::vec(0..PIECES.len(), 0..60)) {
        let text: String = idx.iter().map(|&i| PIECES[i]).collect();
        let _ = waihu_dialog::load_str(&text, "fuzz.yaml");
    }

    #[test]
    fn mutated_real_script_never_panics(cut in 0..GOOD.len(), insert in 0..PIECES.len(), del in 0usize..40) {
        let mut s = GOOD.to_string();
        let at = (0..=cut).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
        let end = (at + del..=s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
        s.replace_range(at..end, PIECES[insert]);
        if let Ok(p) = waihu_dialog::load_str(&s, "m.yaml") {
            // Whatever still validates must also run without panicking.
            let p = Arc::new(p);
            let customer = waihu_dialog::program::example_customer(&p);
            let mut c = Interpreter::new(p, &customer, 1).unwrap();
            let now = waihu_dialog::testing::sim_start();
            c.handle(now, Input::Answered);
            for intent in ["affirm", "deny", "unknown", "repeat", "change_address"] {
                c.handle(now, Input::PlaybackFinished);
                let n = NluResult {
                    text: "x".into(), intent: intent.into(), confidence: 0.9, entities: vec![],
                    sentiment: Sentiment { label: SentimentLabel::Neutral, score: 0.0, angry: false },
                };
                c.handle(now, Input::Utterance { nlu: &n, emotion: None });
                c.handle(now, Input::BargeIn);
                c.handle(now, Input::Continuation);
                c.handle(now, Input::NoInput);
            }
        }
    }

    #[test]
    fn flow_edits_of_any_text_never_panic(
        idx in proptest::collection::vec(0..PIECES.len(), 0..60),
        op in 0usize..6, a in 0usize..3, b in 0usize..3, rule in 0usize..4,
    ) {
        use waihu_dialog::edit::{apply, outline, Edit};
        let text: String = idx.iter().map(|&i| PIECES[i]).collect();
        let names = ["a", "b", "c d"];
        let (a, b) = (names[a].to_string(), names[b].to_string());
        let edit = match op {
            0 => Edit::Connect { from: a, to: b, intent: Some("affirm".into()) },
            1 => Edit::Retarget { from: a, rule, to: b },
            2 => Edit::Disconnect { from: a, rule },
            3 => Edit::AddState { name: b, say: "\"{{x}}\n".into(), end: Some("ok".into()) },
            4 => Edit::RenameState { from: a, to: b },
            _ => Edit::RemoveState { name: a },
        };
        let _ = outline(&text);
        if let Ok(done) = apply(&text, &edit) {
            // An edit of YAML is YAML.
            prop_assert!(outline(&done.text).is_ok(), "{edit:?} broke\n{text}\ninto\n{}", done.text);
        }
    }

    #[test]
    fn templates_and_conditions_never_panic(s in "\\PC{0,80}") {
        let _ = waihu_dialog::template::parse(&s);
        let _ = waihu_dialog::cond::parse(&s);
    }
}

#[test]
fn deeply_nested_input_is_an_error_not_a_crash() {
    for deep in [
        "[".repeat(200_000),
        "{a: ".repeat(50_000),
        "- ".repeat(50_000),
    ] {
        assert!(waihu_dialog::load_str(&deep, "deep.yaml").is_err());
    }
}
