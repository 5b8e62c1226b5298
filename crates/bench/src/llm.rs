//! `waihu bench llm`: knowledge-base answers end to end — retrieval, the
//! model (Qwen2.5-0.5B on candle, served on loopback in this process, or any
//! OpenAI-compatible `--endpoint`), and the guardrails — over the question
//! sets beside each document (`examples/knowledge/*.questions.tsv`: some
//! answerable from the document, some not). Reports the share answered
//! correctly, the share refused (fallback line), the share of spoken answers
//! stating a number not in the passages used (must be 0), time to the first
//! spoken sentence (p50/p95) and decode tokens/s. The baseline beside it is
//! the same model with no guard (what an unguarded adapter would have said):
//! how many raw answers carried an unsupported number.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use waihu_llm::eval::{parse_questions, run_set, subset};
use waihu_llm::guard::Lang;
use waihu_llm::serve::{default_model_path, serve, LocalModel};
use waihu_llm::{Client, Config, Message};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Use this OpenAI-compatible server (`http://host:port/v1`) instead of
    /// serving the local model in-process.
    #[arg(long)]
    endpoint: Option<String>,
    /// The GGUF model to serve (default: where scripts/deps/llm.sh installs it).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Documents and question sets: `<prefix>.{zh,en}.md` and `<prefix>.{zh,en}.questions.tsv`.
    #[arg(long, default_value = "examples/knowledge/air_purifier")]
    set: String,
    /// Token budget per answer.
    #[arg(long, default_value_t = 48)]
    max_tokens: u32,
    /// Questions per language (0 = all): half answerable, half not.
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Seconds to wait for an answer's first token (a 0.5B model on a busy
    /// 2-core machine needs minutes for a prompt).
    #[arg(long, default_value_t = 300)]
    first_token_s: u64,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<()> {
    let rt = crate::runtime()?;
    rt.block_on(run_async(a))
}

async fn run_async(a: &Args) -> anyhow::Result<()> {
    // The sets first: a wrong --set fails before the model is loaded.
    let mut sets = Vec::new();
    for lang in [Lang::Zh, Lang::En] {
        let doc_path = format!("{}.{}.md", a.set, lang.as_str());
        let q_path = format!("{}.{}.questions.tsv", a.set, lang.as_str());
        let read = |p: &str| {
            std::fs::read_to_string(p).with_context(|| {
                format!("reading {p} (run from the repository root, or pass --set PREFIX)")
            })
        };
        let doc = read(&doc_path)?;
        let questions = subset(&parse_questions(&read(&q_path)?), a.limit);
        anyhow::ensure!(!questions.is_empty(), "{q_path}: no questions");
        sets.push((lang, doc, questions));
    }
    let endpoint = match &a.endpoint {
        Some(e) => e.clone(),
        None => {
            let path = a.model.clone().unwrap_or_else(default_model_path);
            anyhow::ensure!(
                path.exists(),
                "no model at {} (run scripts/deps/llm.sh, or pass --endpoint)",
                path.display()
            );
            let t = Instant::now();
            let m = tokio::task::spawn_blocking(move || LocalModel::load(&path)).await??;
            eprintln!("llm: model loaded in {:.1} s", t.elapsed().as_secs_f64());
            let (tx, rx) = tokio::sync::oneshot::channel();
            let server = tokio::spawn(serve(
                m,
                "127.0.0.1:0".parse()?,
                a.max_tokens as usize,
                move |addr| {
                    let _ = tx.send(addr);
                },
            ));
            match rx.await {
                Ok(addr) => format!("http://{addr}/v1"),
                Err(_) => {
                    let why = match server.await {
                        Ok(Err(e)) => e.to_string(),
                        Ok(Ok(())) => "it stopped".into(),
                        Err(e) => e.to_string(),
                    };
                    anyhow::bail!("serving the model on 127.0.0.1: {why}");
                }
            }
        }
    };
    let client = Client::new(Config {
        endpoint,
        max_tokens: a.max_tokens,
        first_token_timeout_ms: a.first_token_s.saturating_mul(1000),
        total_timeout_ms: a.first_token_s.saturating_mul(1000).saturating_add(120_000),
        ..Config::default()
    })?;
    // One token, so an unreachable or broken endpoint is an error, not a
    // table of fallbacks.
    client
        .complete(&[Message::user("ping")], Some(1))
        .await
        .context("the model does not answer")?;
    let mut all = Vec::new();
    for (lang, doc, questions) in sets {
        let n = questions.len();
        let start = Instant::now();
        let mut last_report = Instant::now();
        let json = a.json;
        let f = run_set(&client, lang, &doc, &questions, |i, q, ans| {
            if !json {
                let shown = if ans.spoken.is_empty() {
                    format!(
                        "(fallback: {})",
                        ans.fallback
                            .as_ref()
                            .map(|r| r.to_string())
                            .unwrap_or_default()
                    )
                } else {
                    ans.spoken.join("")
                };
                eprintln!("  [{}] {} → {shown}", lang.as_str(), q.text);
            }
            if last_report.elapsed().as_secs() >= 10 {
                let done = i + 1;
                let per = start.elapsed().as_secs_f64() / done as f64;
                eprintln!(
                    "llm {}: {done}/{n} questions, {per:.1} s/question, ETA {:.0} s",
                    lang.as_str(),
                    per * (n - done) as f64
                );
                last_report = Instant::now();
            }
        })
        .await;
        all.push(f);
    }
    if a.json {
        for f in &all {
            crate::print_json(f)?;
        }
        return Ok(());
    }
    println!(
        "知识库问答 / knowledge-base answers (max {} tokens per answer)",
        a.max_tokens
    );
    println!(
        "{:<4} {:>4} {:>16} {:>14} {:>18} {:>16} {:>18} {:>8}",
        "lang",
        "n",
        "correct",
        "refused",
        "unsupported spoken",
        "unguarded raw",
        "1st sentence p50/p95",
        "tok/s"
    );
    for f in &all {
        println!(
            "{:<4} {:>4} {:>9}/{:<2} {:>4.0}% {:>7} {:>4.0}% {:>13} {:>4.0}% {:>10}/{:<5} {:>8.0}/{:<6.0} ms {:>8.1}",
            f.lang,
            f.questions,
            f.correct,
            f.answerable,
            100.0 * f.correct_share,
            f.refused,
            100.0 * f.refused_share,
            f.unsupported_spoken,
            100.0 * f.unsupported_share,
            f.unsupported_raw,
            f.model_calls,
            f.first_sentence_p50_ms,
            f.first_sentence_p95_ms,
            f.tokens_per_s
        );
        println!(
            "     unanswerable refused {}/{}; fallback reasons {:?}",
            f.refused_unanswerable, f.unanswerable, f.fallback_reasons
        );
    }
    Ok(())
}
