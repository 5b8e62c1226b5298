//! `GET /api/cluster`: a multi-node deployment's nodes and shared campaigns, from a real
//! PostgreSQL started here; `configured: false` on a single-machine server.
mod common;

use chrono::Utc;
use common::*;
use waihu_cluster::{CampaignSpec, Caps, Cluster, NewContact};
use waihu_core::{CampaignId, CustomerId, PhoneIndex};

#[tokio::test]
async fn single_machine_says_so() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, v) = s.get(&s.analyst, "/api/cluster").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, serde_json::json!({"configured": false}));
    let (st, v) = s
        .send(
            reqwest::Method::POST,
            &s.operator,
            "/api/cluster/campaigns/1/pause",
            None,
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("no_cluster")),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_campaigns_of_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let pg = {
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || waihu_testkit::postgres::Postgres::start_or_skip(&d))
            .await
            .unwrap()
    };
    let Some(pg) = pg else {
        return;
    };
    let url = pg.create_database("api").unwrap();
    let now = Utc::now();
    let node = Cluster::connect(&url, "node-a", 2).await.unwrap();
    node.join(now).await.unwrap();
    node.upsert_campaign(
        &CampaignSpec {
            id: CampaignId(3),
            name: "续费提醒".into(),
            channels: 40,
            cps: 5.0,
            caps: Caps {
                per_day: Some(2),
                per_week: None,
                max_attempts: 3,
            },
        },
        now,
    )
    .await
    .unwrap();
    let contacts: Vec<NewContact> = (1..=5)
        .map(|i| NewContact {
            customer: CustomerId(i),
            phone: PhoneIndex(format!("p{i}")),
            tz: "Asia/Shanghai".into(),
            due: now,
        })
        .collect();
    node.enqueue(CampaignId(3), &contacts).await.unwrap();
    let leases = node
        .claim(CampaignId(3), 2, now, chrono::Duration::seconds(30))
        .await
        .unwrap();
    node.set_campaign_state(CampaignId(3), "started", "test", now)
        .await
        .unwrap();
    // One call ended, one open: the merged totals and the live view.
    let mut attempts = Vec::new();
    for (i, l) in leases.iter().enumerate() {
        let call = waihu_core::CallId(format!("node-a-{i}"));
        let at = now + chrono::Duration::seconds(i as i64);
        attempts.push(
            node.begin_attempt(l, &call, "t", None, at)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    node.end_attempt(
        &attempts[0],
        waihu_core::CallOutcome::Busy,
        Some(486),
        0.0,
        None,
        waihu_cluster::Next::RetryAt(now + chrono::Duration::minutes(10)),
        now + chrono::Duration::seconds(5),
    )
    .await
    .unwrap();
    let cfg = waihu_server::Config {
        cluster: Some(Cluster::connect(&url, "api", 2).await.unwrap()),
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    let (st, v) = s.get(&s.analyst, "/api/cluster").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["configured"], true);
    let n = &v["nodes"][0];
    assert_eq!(
        (n["name"].as_str(), n["state"].as_str()),
        (Some("node-a"), Some("up"))
    );
    assert_eq!(
        (n["leases"].as_i64(), n["open_calls"].as_i64()),
        (Some(1), Some(1))
    );
    let k = &v["campaigns"][0];
    assert_eq!(k["name"], "续费提醒");
    assert_eq!(
        (
            k["channels"].as_i64(),
            k["pending"].as_i64(),
            k["in_flight"].as_i64()
        ),
        (Some(40), Some(5), Some(1))
    );
    assert_eq!(v["live"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(
        (v["live"][0]["node"].as_str(), v["live"][0]["call"].as_str()),
        (Some("node-a"), Some("node-a-1"))
    );
    assert_eq!(
        v["outcomes"],
        serde_json::json!([{"campaign": 3, "node": "node-a", "outcome": "busy", "count": 1}])
    );
    // The merged live stream: a snapshot at once, then a dial committed on a node reaches it
    // within a second, with the event and its node.
    let (st, v) = s.get(&s.analyst, "/api/cluster/stream?max_s=0").await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("bad_max_s")));
    let mut r = s
        .client
        .get(s.url("/api/cluster/stream?max_s=3"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let opened = std::time::Instant::now();
    let dial = {
        let node = node.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(700)).await;
            let t = Utc::now() + chrono::Duration::minutes(11);
            // Customer 2's call is still open (its number is busy): dial customer 3.
            let lease = node
                .claim(CampaignId(3), 5, t, chrono::Duration::seconds(30))
                .await
                .unwrap()
                .into_iter()
                .find(|l| l.customer == CustomerId(3))
                .unwrap();
            let a = node
                .begin_attempt(&lease, &waihu_core::CallId("node-a-2".into()), "t", None, t)
                .await
                .unwrap()
                .expect("the gate lets the dial through");
            (std::time::Instant::now(), a)
        })
    };
    let mut arrivals = Vec::new();
    let mut buf = String::new();
    while let Some(chunk) = tokio::time::timeout(std::time::Duration::from_secs(10), r.chunk())
        .await
        .expect("the stream ends by itself")
        .unwrap()
    {
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(i) = buf.find("\n\n") {
            let block: String = buf.drain(..i + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                if block.contains("event: cluster") {
                    let v: serde_json::Value = serde_json::from_str(data).unwrap();
                    arrivals.push((std::time::Instant::now(), v));
                }
            }
        }
    }
    let (dialled, _) = dial.await.unwrap();
    assert!(opened.elapsed() < std::time::Duration::from_secs(6));
    assert_eq!(
        arrivals[0].1["events"],
        serde_json::json!([]),
        "nothing old at first"
    );
    assert_eq!(arrivals[0].1["live"].as_array().unwrap().len(), 1);
    let (at, v) = arrivals
        .iter()
        .find(|(_, v)| v["live"].as_array().unwrap().len() == 2)
        .expect("a snapshot with the new call");
    let lag = at.saturating_duration_since(dialled);
    eprintln!("cluster stream: the dial reached the dashboard after {lag:?}");
    assert!(lag < std::time::Duration::from_secs(1), "{lag:?}");
    let ev = &v["events"][0];
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["node"].as_str(),
            ev["call"].as_str()
        ),
        (Some("attempt_started"), Some("node-a"), Some("node-a-2")),
        "{v}"
    );
    assert!(
        ev.get("phone").is_none(),
        "no blind index on the stream: {ev}"
    );

    // Roles: analysts and up; no key, no answer.
    let (st, _) = s.get("", "/api/cluster").await;
    assert_eq!(st, 401);

    // The KPIs of every node: the open call ends answered and its conversation confirms.
    assert!(node
        .end_attempt(
            &attempts[1],
            waihu_core::CallOutcome::Answered,
            Some(200),
            42.0,
            Some(waihu_core::EventKind::ConversationEnded {
                outcome: "confirmed".into(),
                level: Some("A".into()),
                path: vec!["greet".into(), "confirm".into()],
            }),
            waihu_cluster::Next::Done,
            now + chrono::Duration::seconds(50),
        )
        .await
        .unwrap());
    let (st, v) = s.get(&s.analyst, "/api/cluster/kpis").await;
    assert_eq!(st, 200, "{v}");
    let k = &v["totals"];
    assert_eq!(
        (
            k["attempts"].as_i64(),
            k["connects"].as_i64(),
            k["conversations"].as_i64(),
            k["conversions"].as_i64()
        ),
        (Some(2), Some(1), Some(1), Some(1)),
        "{v}"
    );
    assert_eq!(k["connect_rate"].as_f64(), Some(0.5));
    assert_eq!(k["aht_s"].as_f64(), Some(42.0));
    assert_eq!(k["levels"], serde_json::json!({"A": 1}));
    assert_eq!(
        (
            k["outcomes"]["busy"].as_i64(),
            k["outcomes"]["answered"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let (st, v) = s.get(&s.analyst, "/api/cluster/kpis?campaign=99").await;
    assert_eq!((st, v["totals"]["attempts"].as_i64()), (200, Some(0)));
    let (st, v) = s.get(&s.analyst, "/api/cluster/kpis?from=2026-13-01").await;
    assert_eq!(st, 400, "{v}");
    let csv = s
        .client
        .get(s.url("/api/cluster/kpis?format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let body = csv.text().await.unwrap();
    // A byte-order mark first, for spreadsheet programs.
    assert!(
        body.trim_start_matches('\u{feff}')
            .starts_with("day,attempts,connects"),
        "{body}"
    );
    let (st, _) = s.get("", "/api/cluster/kpis").await;
    assert_eq!(st, 401);

    // Steering: a pause from the API reaches a listening node; analysts may not.
    let post = |key: &str, path: &str| {
        let (key, path) = (key.to_string(), path.to_string());
        let s = &s;
        async move { s.send(reqwest::Method::POST, &key, &path, None).await }
    };
    let (st, _) = post(&s.analyst, "/api/cluster/campaigns/3/pause").await;
    assert_eq!(st, 403);
    let mut listener = node.control_listener().await.unwrap();
    let (st, v) = post(&s.operator, "/api/cluster/campaigns/3/pause").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["state"].as_str(), v["previous_state"].as_str()),
        (Some("paused"), Some("started"))
    );
    let heard = tokio::time::timeout(std::time::Duration::from_secs(1), listener.recv())
        .await
        .expect("heard within 1 s")
        .unwrap();
    assert_eq!(heard.state, "paused");
    let (_, v) = s.get(&s.analyst, "/api/cluster").await;
    assert!(
        v["campaigns"][0]["updated_by"]
            .as_str()
            .is_some_and(|a| a.starts_with("api:ops#")),
        "the caller is recorded: {v}"
    );
    let (st, v) = post(&s.operator, "/api/cluster/campaigns/3/start").await;
    assert_eq!((st, v["state"].as_str()), (200, Some("started")));
    let (st, v) = post(&s.operator, "/api/cluster/campaigns/99/stop").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("no_such_campaign")),
        "{v}"
    );
    let (st, _) = post(&s.operator, "/api/cluster/campaigns/3/explode").await;
    assert_eq!(st, 404);
    let (st, _) = post(&s.operator, "/api/cluster/campaigns/x/stop").await;
    assert_eq!(st, 400);
    // Drain: the node hears it at its next heartbeat; undrain puts it back.
    let (st, v) = post(&s.operator, "/api/cluster/nodes/node-a/drain").await;
    assert_eq!((st, v["state"].as_str()), (200, Some("draining")), "{v}");
    let beat = node
        .heartbeat(Utc::now(), chrono::Duration::seconds(30))
        .await
        .unwrap();
    assert_eq!(beat, waihu_cluster::NodeStatus::Draining);
    let (st, _) = post(&s.operator, "/api/cluster/nodes/node-a/undrain").await;
    assert_eq!(st, 200);
    let (st, v) = post(&s.operator, "/api/cluster/nodes/ghost/drain").await;
    assert_eq!(st, 404, "{v}");
    node.close().await;
}
