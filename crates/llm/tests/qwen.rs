//! End to end with a real small model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M
//! (scripts/deps/llm.sh) served by `waihu_llm::serve` on loopback, asked
//! knowledge-base questions through the real client and guardrails.
//! Without the model the test skips, and fails under CI (`CI=true`).
//! Generations are capped at 48 tokens to keep the run bounded on 2 cores.
use std::path::PathBuf;

use waihu_llm::guard::Lang;
use waihu_llm::serve::{default_model_path, serve, LocalModel};
use waihu_llm::summary::{parse_summary, rule_summary, summary_prompt, CallText, Speaker, TurnText};
use waihu_llm::{answer, split_document, Client, Config, Knowledge, Violation};

fn in_ci() -> bool {
    matches!(std::env::var("CI").ok().as_deref(), Some(v) if !v.is_empty() && v != "false" && v != "0")
}

fn model() -> Option<PathBuf> {
    let p = std::env::var_os("WAIHU_LLM_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_path);
    if p.exists() {
        return Some(p);
    }
    assert!(
        !in_ci(),
        "the LLM test model is missing at {} (run scripts/deps/llm.sh)",
        p.display()
    );
    eprintln!("skipping: no model at {} (scripts/deps/llm.sh)", p.display());
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn knowledge_answers_with_a_real_model() {
    let Some(path) = model() else { return };
    let m = tokio::task::spawn_blocking(move || LocalModel::load(&path))
        .await
        .unwrap()
        .expect("the installed model loads");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(m, "127.0.0.1:0".parse().unwrap(), 48, move |a| {
        let _ = tx.send(a);
    }));
    let addr = rx.await.unwrap();
    let client = Client::new(Config {
        endpoint: format!("http://{addr}/v1"),
        first_token_timeout_ms: 30_000,
        total_timeout_ms: 60_000,
        max_tokens: 48,
        ..Config::default()
    })
    .unwrap();
    let zh = Knowledge::new(
        Lang::Zh,
        split_document(include_str!("../../../examples/knowledge/air_purifier.zh.md"), 200),
    );
    let en = Knowledge::new(
        Lang::En,
        split_document(include_str!("../../../examples/knowledge/air_purifier.en.md"), 300),
    );
    let mut answered = 0;
    for (kb, q) in [(&zh, "滤芯多久换一次？"), (&en, "How often should I replace the filter?")] {
        let a = answer(&client, kb, q, [], |_| {}).await;
        eprintln!("{q} -> {:?} fallback={:?} first={:?}ms", a.spoken, a.fallback, a.first_sentence_ms);
        // The server worked: any fallback is a guardrail verdict, not a transport error.
        assert!(!matches!(a.fallback, Some(Violation::Model(_))), "{:?}", a.fallback);
        let c = a.completion.expect("the model answered");
        assert!(c.chunks > 0 && c.first_token_ms.is_some());
        answered += usize::from(!a.spoken.is_empty());
    }
    assert!(answered >= 1, "the model answered none of the plain FAQ questions");
    // Out of the document: refused before the model is asked.
    let a = answer(&client, &zh, "你们公司老板叫什么名字？", [], |_| {}).await;
    assert_eq!(a.fallback, Some(Violation::NoPassage));
    // A summary: whatever the model writes is schema-checked, else the rules summarise.
    let call = CallText {
        language: Lang::Zh,
        turns: vec![
            TurnText { speaker: Speaker::Bot, text: "您好，想跟您确认一下空气净化器的配送信息，现在方便吗？".into(), intent: None },
            TurnText { speaker: Speaker::Callee, text: "我在开会，明天再打吧".into(), intent: Some("busy_callback".into()) },
        ],
        outcome: Some("callback".into()),
    };
    let out = client.complete(&summary_prompt(&call), Some(48)).await.unwrap();
    let s = parse_summary(&out.text, &call).unwrap_or_else(|e| {
        eprintln!("model summary rejected ({e}): {:?}", out.text);
        rule_summary(&call)
    });
    assert!(waihu_llm::summary::DISPOSITIONS.contains(&s.disposition.as_str()));
}
