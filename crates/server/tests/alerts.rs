//! The live wall's alerts over a real store and a node status file: the
//! connect rate of the last 15 minutes against the 2 hours before, trunks, the
//! ASR queue, angry callers on the line; then the wall page in headless
//! Chromium (fails when Chromium is missing and `CI` is set).
mod common;

use std::time::Duration;

use chrono::Utc;
use common::{attempt, Server};
use waihu_core::{CallOutcome, CampaignId, CustomerId, Event};
use waihu_store::CallStart;

fn rfc(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// `n` attempts ending at `at` minus 0..n seconds, `answered` of them answered.
fn attempts(tag: &str, at: chrono::DateTime<Utc>, n: usize, answered: usize) -> Vec<Event> {
    (0..n)
        .flat_map(|i| {
            let t = at - chrono::Duration::seconds(i as i64 * 5);
            let outcome = if i < answered {
                CallOutcome::Answered
            } else {
                CallOutcome::NoAnswer
            };
            attempt(
                &format!("{tag}-{i}"),
                1,
                &rfc(t),
                "2026-11-02T10:00:00",
                outcome,
                20.0,
            )
        })
        .collect()
}

async fn seed(s: &Server) {
    let now = Utc::now();
    // The 2 hours before: 60 attempts, half answered. The last 15 minutes: 30, 3 answered.
    let mut ev = attempts("base", now - chrono::Duration::minutes(60), 60, 30);
    ev.extend(attempts(
        "recent",
        now - chrono::Duration::minutes(5),
        30,
        3,
    ));
    s.store.append_events(&ev).await.unwrap();
    // Two calls on the line, one callee angry.
    for (i, emotion) in ["angry", "calm"].into_iter().enumerate() {
        let cid = waihu_core::CallId(format!("wall-{i}@waihu"));
        s.store
            .call_started(&CallStart {
                call_id: cid.clone(),
                campaign: Some(CampaignId(1)),
                customer: Some(CustomerId(1 + i as i64)),
                script: "order_confirmation.zh".into(),
                lang: "zh".into(),
                at: now,
            })
            .await
            .unwrap();
        s.store
            .call_progress(&cid, "talking", Some("confirm_address"), Some(emotion), now)
            .await
            .unwrap();
    }
}

fn status_file(s: &Server, updated_ms: i64, waiting: u32) {
    let entry = |name: &str, state: &str| waihu_campaign::trunks::StatusEntry {
        name: name.into(),
        state: state.into(),
        registration: "registered".into(),
        registration_status: Some(200),
        registrations: 1,
        in_flight: 0,
        channels: 30,
        calls: 10,
        failures: 3,
        consecutive_failures: 3,
        down_until_ms: None,
    };
    let file = waihu_campaign::trunks::StatusFile {
        updated_ms,
        pid: 1,
        trunks: vec![entry("cmcc", "down"), entry("cu", "up")],
        asr: Some(waihu_campaign::trunks::AsrLoad { waiting, slots: 2 }),
    };
    std::fs::write(
        s.store.data_dir().join("trunks.json"),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
}

fn codes(v: &serde_json::Value) -> Vec<(String, String)> {
    v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["code"].as_str().unwrap().to_string(),
                a["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_from_the_log_the_node_and_the_calls() {
    let s = Server::start(Default::default()).await;
    seed(&s).await;
    status_file(&s, Utc::now().timestamp_millis(), 5);
    let (st, v) = s.get(&s.analyst, "/api/alerts").await;
    assert_eq!(st, 200, "{v}");
    let got = codes(&v);
    let want: Vec<(String, String)> = [
        ("connect_rate_drop", "critical"),
        ("trunk_down", "critical"),
        ("asr_queue", "critical"),
        ("angry_callers", "info"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(got, want, "{v}");
    assert_eq!(v["recent"]["kpis"]["attempts"], 30);
    assert_eq!(v["baseline"]["kpis"]["attempts"], 60);
    assert_eq!(v["live_calls"], 2);
    assert_eq!(v["alerts"][1]["subject"], "cmcc");
    assert!(
        v["alerts"][0]["zh"].as_str().unwrap().contains("接通率"),
        "{v}"
    );
    // Over a 1-minute window the recent attempts are too few to judge, and
    // with a short ASR queue and a stopped node only the open calls matter.
    status_file(&s, Utc::now().timestamp_millis() - 60_000, 1);
    let (_, v) = s.get(&s.analyst, "/api/alerts?recent_min=1").await;
    let got: Vec<String> = codes(&v).into_iter().map(|(c, _)| c).collect();
    assert_eq!(got, ["node_stopped", "angry_callers"], "{v}");
    let (st, v) = s.get(&s.analyst, "/api/alerts?recent_min=0").await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("bad_window")));
    let (st, _) = s.get(&s.analyst, "/api/alerts?minutes=5").await;
    assert_eq!(st, 400);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_shows_alerts_and_calls_in_a_real_browser() {
    use waihu_cdp::{Browser, CHROMIUM};
    if !waihu_testkit::have_peer_at("chromium", std::path::Path::new(CHROMIUM)) {
        return;
    }
    let s = Server::start(Default::default()).await;
    seed(&s).await;
    status_file(&s, Utc::now().timestamp_millis(), 5);
    let profile = tempfile::tempdir().unwrap();
    let mut b = Browser::launch(profile.path(), &[]).await;
    // A page that does not leave for /login, to leave the key where the wall looks.
    b.goto(&s.url("/login")).await;
    b.eval(&format!(
        "localStorage.setItem('waihu.key', {:?}); localStorage.setItem('waihu.lang', 'zh'); true",
        s.operator
    ))
    .await;
    b.goto(&s.url("/wall?live=0")).await;
    b.wait_for(
        "the wall loaded",
        "document.body.dataset.loaded === '1'",
        Duration::from_secs(15),
    )
    .await;
    let seen = b
        .eval(
            "({alerts: [...document.querySelectorAll('#alerts .alert')].map(a => a.dataset.code + ':' + a.className.split(' ')[1]), \
              calls: [...document.querySelectorAll('#calls .call')].map(c => c.dataset.emotion), \
              connect: document.getElementById('t-connect').textContent, \
              trunks: document.getElementById('t-trunks').textContent, \
              asr: document.getElementById('t-asr').textContent, \
              angry: document.getElementById('t-angry').textContent, \
              text: document.getElementById('calls').textContent})",
        )
        .await;
    assert_eq!(
        seen["alerts"],
        serde_json::json!([
            "connect_rate_drop:critical",
            "trunk_down:critical",
            "asr_queue:critical",
            "angry_callers:info"
        ]),
        "{seen}"
    );
    assert_eq!(
        seen["calls"],
        serde_json::json!(["angry", "calm"]),
        "{seen}"
    );
    assert_eq!(seen["connect"], "10%");
    assert_eq!(seen["trunks"], "1 / 2");
    assert_eq!(seen["asr"], "5 / 2");
    assert_eq!(seen["angry"], "1");
    assert!(
        seen["text"].as_str().unwrap().contains("confirm_address"),
        "{seen}"
    );
    // The English switch redraws the alerts in English.
    b.click("#lang").await;
    b.wait_for(
        "English alerts",
        "document.querySelector('#alerts .alert').textContent.startsWith('Connect rate dropped')",
        Duration::from_secs(10),
    )
    .await;
    let errors = b.page_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    s.stop().await;
}
