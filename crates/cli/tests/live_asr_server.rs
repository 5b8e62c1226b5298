//! A campaign whose calls are transcribed by an ASR server: `waihu asr --serve`
//! holds the Whisper model in its own process (as a deployment shares one ASR
//! server between dialer nodes), and the campaign names it with
//! `asr: {engine: openai, url: http://127.0.0.1:PORT/v1}`. The callees' answers
//! must be understood through it (the stored outcomes are what each persona
//! did) and the server must have decoded the turns. Needs espeak-ng and the
//! Whisper tiny.en model (scripts/setup.sh installs both).
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use waihu_sim::{Persona, Population};

mod common;
use common::{assert_whisper_tiny_en, import_orders, repo, run_live};

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_campaign_hears_through_an_asr_server() {
    assert_whisper_tiny_en();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log = d.join("asr-server.log");
    let mut server = Server(
        Command::new(env!("CARGO_BIN_EXE_waihu"))
            .args([
                "asr",
                "--serve",
                &format!("127.0.0.1:{port}"),
                "--lang",
                "en",
            ])
            .env("WAIHU_MODELS_DIR", waihu_testkit::models_dir())
            .env("WAIHU_LOG", "waihu_speech::serve=debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start waihu asr --serve"),
    );
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!(
                "the ASR server exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the ASR server did not listen within 60 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let people = [
        ("+12125550301", Persona::Cooperative, "Mr. Stone"),
        ("+12125550302", Persona::DoNotCall, "Ms. Hill"),
        ("+12125550303", Persona::Cancels, "Ms. Cole"),
    ];
    import_orders(
        d,
        &people
            .iter()
            .map(|(phone, _, name)| (*phone, *name))
            .collect::<Vec<_>>(),
    );
    let pop = Population::new(3)
        .with_map(
            people
                .iter()
                .map(|(p, persona, _)| (*p, *persona))
                .collect::<Vec<(&str, Persona)>>(),
        )
        .always_answer();
    let sim = common::english_callees(pop, |_| {}).await;
    let campaign = d.join("campaign.yaml");
    std::fs::write(
        &campaign,
        format!(
            "{}asr: {{engine: openai, url: 'http://127.0.0.1:{port}/v1', model: whisper-tiny.en, slots: 4}}\n",
            std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml")).unwrap()
        ),
    )
    .unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let v = run_live(
        d,
        &campaign,
        &script,
        &sim.addr.to_string(),
        &[
            "--var",
            "shop=BestBuy Online",
            "--concurrency",
            "3",
            "--hours",
            "8",
        ],
    )
    .await;
    let calls = v["summary"]["calls"].as_array().unwrap().clone();
    let business = |p: &str| -> Vec<String> {
        calls
            .iter()
            .filter(|c| c["phone"] == p)
            .filter_map(|c| c["business"].as_str().map(String::from))
            .collect()
    };
    let report = format!("{calls:#?}");
    assert_eq!(business("+12125550301"), ["confirmed"], "{report}");
    assert_eq!(business("+12125550302"), ["do_not_call"], "{report}");
    assert_eq!(business("+12125550303"), ["cancelled"], "{report}");

    // Every callee turn went to the server: it decoded at least as many utterances
    // as the run measured turns.
    drop(server);
    let mut text = String::new();
    std::fs::File::open(&log)
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let decoded = text.matches("transcribed").count() as u64;
    let turns = v["latency"]["turns"].as_u64().unwrap();
    eprintln!("ASR server decoded {decoded} utterances; the run measured {turns} turns");
    assert!(turns >= 3, "{}", v["latency"]);
    assert!(
        decoded >= turns,
        "decoded {decoded} < turns {turns}\n{text}"
    );
}
