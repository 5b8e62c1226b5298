//! End to end with a real small model: Qwen2.5-Coder-0.5B-Instruct Q4_K_M
//! (scripts/deps/llm.sh) served by `waihu_llm::serve` on loopback, asked
//! knowledge-base questions through the real client and guardrails.
//! Without the model the test skips, and fails under CI (`CI=true`).
//! Generations are capped at 32 tokens to keep the run bounded on 2 cores.
use std::path::PathBuf;

use waihu_llm::guard::Lang;
use waihu_llm::serve::{default_model_path, serve, LocalModel};
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
    eprintln!(
        "skipping: no model at {} (scripts/deps/llm.sh)",
        p.display()
    );
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
    tokio::spawn(serve(m, "127.0.0.1:0".parse().unwrap(), 32, move |a| {
        let _ = tx.send(a);
    }));
    let addr = rx.await.unwrap();
    let client = Client::new(Config {
        endpoint: format!("http://{addr}/v1"),
        // Generous: the CPU may be shared with builds (a prompt token costs
        // ~0.1 s on an idle core here, 0.4 s on a busy one).
        first_token_timeout_ms: 300_000,
        total_timeout_ms: 400_000,
        max_tokens: 32,
        ..Config::default()
    })
    .unwrap();
    let zh = Knowledge::new(
        Lang::Zh,
        split_document(
            include_str!("../../../examples/knowledge/air_purifier.zh.md"),
            200,
        ),
    );
    let en = Knowledge::new(
        Lang::En,
        split_document(
            include_str!("../../../examples/knowledge/air_purifier.en.md"),
            300,
        ),
    );
    let mut answered = 0;
    for (kb, q) in [
        (&zh, "滤芯多久换一次？"),
        (&en, "How often should I replace the filter?"),
    ] {
        let a = answer(&client, kb, q, [], |_| {}).await;
        eprintln!(
            "{q} -> {:?} fallback={:?} first={:?}ms",
            a.spoken, a.fallback, a.first_sentence_ms
        );
        // The server worked: any fallback is a guardrail verdict, not a transport error.
        assert!(
            !matches!(a.fallback, Some(Violation::Model { .. })),
            "{:?}",
            a.fallback
        );
        let c = a.completion.expect("the model answered");
        assert!(c.chunks > 0 && c.first_token_ms.is_some());
        answered += usize::from(!a.spoken.is_empty());
    }
    assert!(
        answered >= 1,
        "the model answered none of the plain FAQ questions"
    );
    // Out of the document: refused before the model is asked.
    let a = answer(&client, &zh, "你们公司老板叫什么名字？", [], |_| {}).await;
    assert_eq!(a.fallback, Some(Violation::NoPassage));
}

/// Prefill and decode speed of the local model (`-- --ignored --nocapture`).
#[test]
#[ignore]
fn generation_speed() {
    let Some(path) = model() else { return };
    let t = std::time::Instant::now();
    let mut m = LocalModel::load(&path).unwrap();
    eprintln!("load {:.1} s", t.elapsed().as_secs_f64());
    let msgs = waihu_llm::kb::prompt(
        Lang::Zh,
        "滤芯多久换一次？",
        &["滤芯更换：滤芯建议每6个月更换一次。".to_string()],
    );
    let prompt = waihu_llm::serve::chat_template(&msgs);
    let t = std::time::Instant::now();
    let st = m
        .generate(&prompt, 24, |p| {
            eprintln!("{:.2}s {p:?}", t.elapsed().as_secs_f64());
            true
        })
        .unwrap();
    eprintln!("{st:?}");
}

/// The knowledge-base evaluation of `waihu bench llm` without the binary:
/// `WAIHU_LLM_EVAL_LIMIT=N cargo test --release -p waihu-llm --test qwen kb_eval -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn kb_eval() {
    use waihu_llm::eval::{parse_questions, run_set, subset};
    let Some(path) = model() else { return };
    let m = tokio::task::spawn_blocking(move || LocalModel::load(&path))
        .await
        .unwrap()
        .unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(m, "127.0.0.1:0".parse().unwrap(), 32, move |a| {
        let _ = tx.send(a);
    }));
    let addr = rx.await.unwrap();
    let client = Client::new(Config {
        endpoint: format!("http://{addr}/v1"),
        first_token_timeout_ms: 300_000,
        total_timeout_ms: 400_000,
        max_tokens: 32,
        ..Config::default()
    })
    .unwrap();
    let limit: usize = std::env::var("WAIHU_LLM_EVAL_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let root = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/knowledge/air_purifier"
    );
    for (lang, l) in [(Lang::Zh, "zh"), (Lang::En, "en")] {
        let doc = std::fs::read_to_string(format!("{root}.{l}.md")).unwrap();
        let all =
            parse_questions(&std::fs::read_to_string(format!("{root}.{l}.questions.tsv")).unwrap());
        let qs = subset(&all, limit);
        let f = run_set(&client, lang, &doc, &qs, |_, q, a| {
            eprintln!(
                "[{l}] {} -> {:?} fallback={:?} first={:?}",
                q.text,
                a.spoken,
                a.fallback.as_ref().map(|r| r.to_string()),
                a.first_sentence_ms.map(|x| x.round())
            );
        })
        .await;
        println!("{}", serde_json::to_string(&f).unwrap());
        assert_eq!(f.unsupported_spoken, 0);
    }
}
