//! The agent desk across the two processes' channel, the store: a live
//! handoff (as `waihu run --agents` makes it) publishes its agents, the API
//! (`waihu serve`, here on 127.0.0.1:29750) reads them, and a state change an
//! agent asks the API for reaches the running ACD. No call is placed: the
//! transfer itself is tested with baresip agents in crates/sim/tests/handoff.rs.
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use waihu_core::EventKind;
use waihu_dialer::handoff::Handoff;
use waihu_dialer::CampaignClock;
use waihu_privacy::MasterKey;
use waihu_server::auth::{create_key, create_key_for, Role};
use waihu_store::Store;

const AGENTS: &str = "agents:
  - {id: li, uri: 'sip:li@127.0.0.1:29751', skills: [zh, default]}
  - {id: wang, uri: 'sip:wang@127.0.0.1:29752', skills: [zh, default], paused: true}
queues:
  - {name: default, skills: [zh]}
";

async fn get(c: &reqwest::Client, url: &str, key: &str) -> Value {
    c.get(url)
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls `f` every 20 ms for at most 5 s; how long it took.
async fn until<F: std::future::Future<Output = bool>>(mut f: impl FnMut() -> F) -> Duration {
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < Duration::from_secs(5), "not within 5 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_change_asked_through_the_api_reaches_the_running_acd() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &MasterKey::from_bytes([9; 32]))
        .await
        .unwrap();
    let now = chrono::Utc::now();
    let ops = create_key(&store, "ops", Role::Operator, now)
        .await
        .unwrap()
        .0;
    let li = create_key_for(&store, "li", Role::Agent, Some("li"), now)
        .await
        .unwrap()
        .0;
    // A request from before the run must not replay into it.
    store
        .agent_state_request("wang", "available", "api:old", now)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:29750")
        .await
        .unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(waihu_server::serve(
        listener,
        store.clone(),
        waihu_server::Config::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let cfg = waihu_acd::Config::from_yaml(AGENTS, "agents.yaml").unwrap();
    let h = Handoff::live(
        cfg,
        dir.path().join("spool"),
        store.clone(),
        CampaignClock::system(),
    );
    let c = reqwest::Client::new();
    let base = "http://127.0.0.1:29750";
    let agents = format!("{base}/api/agents");
    until(|| async { get(&c, &agents, &ops).await["running"] == json!(true) }).await;
    let v = get(&c, &agents, &ops).await;
    let states: Vec<(&str, &str)> = v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["id"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("li", "available"), ("wang", "paused")]);
    let q = get(&c, &format!("{base}/api/queues"), &ops).await;
    assert_eq!(q["queues"], json!([{"name": "default", "waiting": []}]));

    // The agent pauses itself through the API; the ACD has it within a second
    // (two polls of 250 ms), and the published snapshot follows.
    let r = c
        .post(format!("{base}/api/agents/li/state"))
        .bearer_auth(&li)
        .json(&json!({"state": "paused"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let took = until(|| async {
        h.agents()
            .iter()
            .any(|(id, s)| id == "li" && *s == "paused")
    })
    .await;
    eprintln!("API request → running ACD: {} ms", took.as_millis());
    assert!(took < Duration::from_secs(1), "took {took:?}");
    until(|| async { get(&c, &agents, &ops).await["agents"][0]["state"] == json!("paused") }).await;
    // The old request did not apply: wang is still paused.
    assert!(h
        .agents()
        .iter()
        .any(|(id, s)| id == "wang" && *s == "paused"));
    // And a supervisor resumes wang.
    let r = c
        .post(format!("{base}/api/agents/wang/state"))
        .bearer_auth(&ops)
        .json(&json!({"state": "available"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    until(|| async {
        h.agents()
            .iter()
            .any(|(id, s)| id == "wang" && *s == "available")
    })
    .await;

    // Every change is an agent_state event; the run's end signs everyone out.
    h.close().await;
    let v = get(&c, &agents, &ops).await;
    assert_eq!(v["running"], json!(false));
    let changes: Vec<(String, String)> = store
        .events_of_type("agent_state", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::AgentState { agent, state } => Some((agent, state)),
            _ => None,
        })
        .collect();
    let of = |a: &str| -> Vec<&str> {
        changes
            .iter()
            .filter(|(x, _)| x == a)
            .map(|(_, s)| s.as_str())
            .collect()
    };
    assert_eq!(of("li"), ["available", "paused", "signed_out"]);
    assert_eq!(of("wang"), ["paused", "available", "signed_out"]);
    drop(h);
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
