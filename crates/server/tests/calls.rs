//! Campaign control, calls, recordings, live stream and call reports over a
//! store filled through the store's call API (see `common::fill_calls`).
mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_core::{mask_phone, EventKind};

fn err_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

fn campaign_yaml() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/campaign.yaml"
    ))
    .unwrap()
}

impl Server {
    async fn post_yaml(&self, key: &str, yaml: &str) -> (u16, Value) {
        let r = self
            .client
            .post(self.url("/api/campaigns"))
            .bearer_auth(key)
            .header("content-type", "application/yaml")
            .body(yaml.to_string())
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        (st, r.json().await.unwrap())
    }

    async fn text(&self, key: &str, path: &str) -> (u16, String) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

async fn campaign_states(s: &Server) -> Vec<String> {
    s.store
        .events_of_type("campaign_state", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| match e.kind {
            EventKind::CampaignState { state, .. } => state,
            k => panic!("{k:?}"),
        })
        .collect()
}

#[tokio::test]
async fn campaigns_are_created_from_yaml_and_moved_by_operators() {
    let s = Server::start(waihu_server::Config::default()).await;
    let yaml = campaign_yaml();
    let (st, v) = s.post_yaml(&s.analyst, &yaml).await;
    assert_eq!((st, err_code(&v)), (403, "forbidden"));
    let (st, v) = s.post_yaml(&s.operator, &yaml).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["state"].as_str()),
        (Some("double11-care"), Some("created"))
    );
    assert_eq!(v["next_states"], json!(["running", "stopped"]));
    let id = v["id"].as_i64().unwrap();
    // Again: the same campaign, not a second one; as JSON {"spec": ...} too.
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/campaigns",
            Some(json!({ "spec": yaml })),
        )
        .await;
    assert_eq!(
        (st, v["id"].as_i64(), v["created"].clone()),
        (200, Some(id), json!(false)),
        "{v}"
    );
    // A misspelt key: 422 with the line and column to fix.
    let bad = yaml.replace("per_number_per_day:", "per_number_per_dya:");
    let (st, v) = s.post_yaml(&s.operator, &bad).await;
    assert_eq!((st, err_code(&v)), (422, "invalid_campaign"), "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("line ") && msg.contains("column ") && msg.contains("per_number_per_dya"),
        "{msg}"
    );
    let (st, v) = s.post_yaml(&s.operator, "name: [unclosed").await;
    assert_eq!((st, err_code(&v)), (422, "invalid_campaign"), "{v}");
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/campaigns",
            Some(json!({"yaml": "x"})),
        )
        .await;
    assert_eq!((st, err_code(&v)), (400, "bad_body"), "{v}");

    // The state machine, each move logged; bad moves are 409 with what is possible.
    let path = |a: &str| format!("/api/campaigns/{id}/{a}");
    let (st, v) = s.send(Method::POST, &s.analyst, &path("start"), None).await;
    assert_eq!((st, err_code(&v)), (403, "forbidden"));
    let (st, v) = s
        .send(Method::POST, &s.operator, &path("pause"), None)
        .await;
    assert_eq!((st, err_code(&v)), (409, "invalid_transition"), "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("running"),
        "{v}"
    );
    let (st, v) = s
        .send(Method::POST, &s.operator, &path("start"), None)
        .await;
    assert_eq!(
        (st, v["state"].as_str(), v["previous_state"].as_str()),
        (200, Some("running"), Some("created")),
        "{v}"
    );
    let (st, v) = s
        .send(Method::POST, &s.operator, &path("start"), None)
        .await;
    assert_eq!((st, err_code(&v)), (409, "invalid_transition"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("already"),
        "{v}"
    );
    for (a, want) in [
        ("pause", "paused"),
        ("start", "running"),
        ("stop", "stopped"),
    ] {
        let (st, v) = s.send(Method::POST, &s.admin, &path(a), None).await;
        assert_eq!((st, v["state"].as_str()), (200, Some(want)), "{a}: {v}");
    }
    let (st, v) = s
        .send(Method::POST, &s.operator, &path("start"), None)
        .await;
    assert_eq!((st, err_code(&v)), (409, "invalid_transition"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("final"),
        "{v}"
    );
    let (st, v) = s
        .send(Method::POST, &s.operator, "/api/campaigns/999/start", None)
        .await;
    assert_eq!((st, err_code(&v)), (404, "no_such_campaign"));
    assert_eq!(
        campaign_states(&s).await,
        ["created", "running", "paused", "running", "stopped"]
    );
    let row = s
        .store
        .campaign_get(waihu_core::CampaignId(id))
        .await
        .unwrap()
        .unwrap();
    assert!(row.updated_by.unwrap().starts_with("api:root#"));

    let (st, v) = s.get(&s.analyst, &format!("/api/campaigns/{id}")).await;
    assert_eq!((st, v["state"].as_str()), (200, Some("stopped")));
    assert_eq!(v["spec"].as_str(), Some(yaml.as_str()));
    assert_eq!(v["next_states"], json!([]));
    let (_, v) = s.get(&s.analyst, "/api/campaigns").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    let (st, csv) = s.text(&s.analyst, "/api/campaigns?format=csv").await;
    assert_eq!(st, 200);
    assert!(csv.starts_with("\u{feff}id,name,state"), "{csv}");
    assert!(csv.contains("double11-care,stopped"), "{csv}");
    s.stop().await;
}

#[tokio::test]
async fn calls_are_masked_and_words_and_recordings_are_audited() {
    let s = Server::start(waihu_server::Config::default()).await;
    let fx = fill_calls(&s.store).await;
    // List: newest first, numbers masked, paging by call id.
    let (st, v) = s.get(&s.analyst, "/api/calls?limit=5").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["total"], 12);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["call_id"], fx.live[1].as_str());
    assert!(!v.to_string().contains("13812345678"));
    assert!(items
        .iter()
        .any(|c| c["phone"] == mask_phone("+8613812345678")));
    let mut seen: Vec<String> = items
        .iter()
        .map(|c| c["call_id"].as_str().unwrap().to_string())
        .collect();
    let mut before = v["next_before"].as_str().map(String::from);
    while let Some(b) = before {
        let (_, v) = s
            .get(&s.analyst, &format!("/api/calls?limit=5&before={b}"))
            .await;
        seen.extend(
            v["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["call_id"].as_str().unwrap().to_string()),
        );
        before = v["next_before"].as_str().map(String::from);
    }
    assert_eq!(seen.len(), 12);
    let (st, v) = s.get(&s.analyst, "/api/calls?before=nope").await;
    assert_eq!((st, err_code(&v)), (400, "invalid_request"));
    let (st, csv) = s
        .text(
            &s.analyst,
            &format!("/api/calls?format=csv&campaign={}", fx.campaign.0),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(csv.lines().count(), 13, "{csv}");
    assert!(!csv.contains("13812345678"));

    // Live calls.
    let (_, v) = s.get(&s.analyst, "/api/calls/live").await;
    assert_eq!(v["count"], 2);
    assert_eq!(v["items"][0]["node"], "verify_time");
    assert_eq!(v["items"][0]["status"], "talking");
    assert_eq!(v["items"][1]["status"], "ringing");

    // Detail: path and per-turn intent/emotion for everyone; the words only revealed.
    let hung = &fx.finished[4];
    let (st, v) = s
        .get(&s.analyst, &format!("/api/calls/{}", urlenc(hung)))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        v["path"],
        json!([
            "opening",
            "verify_address",
            "verify_time",
            "offer_check",
            "offer"
        ])
    );
    // The A/B variant played in each state, parallel to the path.
    let variants = v["path_variants"].as_array().unwrap();
    assert_eq!(variants.len(), 5, "{v}");
    assert!(
        matches!(variants[0].as_str(), Some("formal" | "short")),
        "{v}"
    );
    assert!(variants[1..].iter().all(Value::is_null), "{v}");
    assert_eq!(v["business_outcome"], "hangup");
    // The media quality as stored at the end of the call (call 4: RTCP from the peer).
    assert_eq!(v["quality"]["lost"], 6, "{v}");
    assert_eq!(v["quality"]["peer_lost"], 3, "{v}");
    assert_eq!(v["quality"]["rtt_ms"], 38.5, "{v}");
    assert_eq!(v["quality"]["codec"], "PCMA", "{v}");
    let (_, odd) = s
        .get(
            &s.analyst,
            &format!("/api/calls/{}", urlenc(&fx.finished[5])),
        )
        .await;
    assert_eq!(odd["quality"]["rtcp_received"], 0, "{odd}");
    assert!(odd["quality"]["rtt_ms"].is_null(), "{odd}");
    let turns = v["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 10);
    assert_eq!(
        (turns[9]["intent"].as_str(), turns[9]["emotion"].as_str()),
        (Some("ask_price"), Some("angry"))
    );
    assert!(turns.iter().all(|t| t["text"].is_null()));
    assert!(!v.to_string().contains("手续费"));
    let reveals = || async {
        s.store
            .events_of_type("pii_revealed", 0, 100)
            .await
            .unwrap()
    };
    let (st, v) = s
        .get(
            &s.analyst,
            &format!("/api/calls/{}?reveal=true", urlenc(hung)),
        )
        .await;
    assert_eq!((st, err_code(&v)), (403, "reveal_forbidden"));
    assert!(reveals().await.is_empty());
    let (st, v) = s
        .get(
            &s.operator,
            &format!("/api/calls/{}?reveal=true&reason=QA", urlenc(hung)),
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["turns"][9]["text"], "手续费怎么这么贵");
    let evs = reveals().await;
    assert_eq!(evs.len(), 1);
    assert_eq!(
        evs[0].1.call.as_ref().map(|c| c.as_str()),
        Some(hung.as_str())
    );
    match &evs[0].1.kind {
        EventKind::PiiRevealed {
            actor,
            field,
            reason,
        } => {
            assert!(actor.starts_with("api:ops#"));
            assert_eq!((field.as_str(), reason.as_str()), ("transcript", "QA"));
        }
        k => panic!("{k:?}"),
    }
    let (st, v) = s.get(&s.analyst, "/api/calls/nope").await;
    assert_eq!((st, err_code(&v)), (404, "no_such_call"));

    // Recordings: analysts 403 (nothing logged), operators get the WAV after an audit event.
    let (call, wav) = &fx.recordings[1];
    let url = format!("/api/calls/{}/recording", urlenc(call));
    let (st, v) = s.get(&s.analyst, &url).await;
    assert_eq!((st, err_code(&v)), (403, "reveal_forbidden"));
    assert_eq!(reveals().await.len(), 1);
    let r = s
        .client
        .get(s.url(&url))
        .bearer_auth(&s.operator)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "audio/wav");
    let body = r.bytes().await.unwrap();
    assert_eq!(&body[..4], b"RIFF");
    assert_eq!(body.as_ref(), wav.as_slice());
    let evs = reveals().await;
    assert_eq!(evs.len(), 2);
    assert!(matches!(&evs[1].1.kind, EventKind::PiiRevealed { field, .. } if field == "recording"));
    // Both accesses are on the tamper-evident chain: the playback's row is its verified head.
    let chain = s.store.audit_verify(None, &[]).await.unwrap();
    assert!(chain.report.ok, "{chain:?}");
    assert_eq!(chain.report.head_id, Some(evs[1].0));
    let (st, v) = s
        .get(
            &s.operator,
            &format!("/api/calls/{}/recording", urlenc(&fx.finished[5])),
        )
        .await;
    assert_eq!((st, err_code(&v)), (404, "no_recording"));
    assert_eq!(reveals().await.len(), 2);
    s.stop().await;
}

fn urlenc(s: &str) -> String {
    s.replace('@', "%40")
}

#[tokio::test]
async fn funnel_intents_voice_and_scripts() {
    let s = Server::start(waihu_server::Config::default()).await;
    let fx = fill_calls(&s.store).await;
    let (st, v) = s.get(&s.analyst, "/api/reports/funnel").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["script"], fx.script);
    assert_eq!(v["largest_drop"], "offer");
    let steps = v["steps"].as_array().unwrap();
    let row = |name: &str| steps.iter().find(|r| r["state"] == name).unwrap().clone();
    let names: Vec<&str> = steps.iter().map(|r| r["state"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "opening",
            "verify_address",
            "retain",
            "verify_time",
            "cancelled",
            "offer_check",
            "offer",
            "confirm_coupon",
            "objection",
            "confirm_plain"
        ]
    );
    let counts = |r: &Value| {
        ["entered", "continued", "dropped", "completed"].map(|k| r[k].as_u64().unwrap())
    };
    assert_eq!(counts(&row("opening")), [10, 10, 0, 0]);
    assert_eq!(counts(&row("verify_address")), [9, 8, 1, 0]);
    assert_eq!(counts(&row("offer")), [8, 5, 3, 0]);
    assert_eq!(counts(&row("confirm_coupon")), [4, 0, 0, 4]);
    assert_eq!(counts(&row("cancelled")), [1, 0, 0, 1]);
    assert_eq!(row("offer")["drop_rate"], json!(0.375));
    assert_eq!(row("offer")["largest_drop"], json!(true));
    assert_eq!(row("offer")["reach"], json!(0.8));
    let (_, other) = s
        .get(
            &s.analyst,
            &format!(
                "/api/reports/funnel?script={}&campaign={}",
                fx.script, fx.campaign.0
            ),
        )
        .await;
    assert_eq!(other["steps"], v["steps"]);
    let (_, none) = s.get(&s.analyst, "/api/reports/funnel?campaign=999").await;
    assert_eq!(
        (none["script"].clone(), none["steps"].clone()),
        (Value::Null, json!([]))
    );
    let (_, csv) = s.text(&s.analyst, "/api/reports/funnel?format=csv").await;
    assert!(
        csv.starts_with("\u{feff}state,entered,continued,dropped,completed,drop_rate"),
        "{csv}"
    );
    assert!(csv.contains("\noffer,8,5,3,0,0.375,0.8,4.0,true"), "{csv}");

    // Intents × states: rows in path order, hang-ups asked about the price at the offer.
    let (_, v) = s.get(&s.analyst, "/api/reports/intents").await;
    let m = &v["matrix"];
    assert_eq!(m["states"][0], "opening");
    assert_eq!(m["intents"][0], "affirm");
    let st = m["states"]
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x == "offer")
        .unwrap();
    let it = m["intents"]
        .as_array()
        .unwrap()
        .iter()
        .position(|x| x == "ask_price")
        .unwrap();
    assert_eq!(m["counts"][st][it], 3);
    assert_eq!(m["total"], 51);
    let (_, csv) = s.text(&s.analyst, "/api/reports/intents?format=csv").await;
    assert!(csv.contains("offer,ask_price,3"), "{csv}");

    // Voice features: 51 callee turns, 3 angry; by hour as well.
    let (_, v) = s.get(&s.analyst, "/api/reports/voice").await;
    let rows = v["rows"].as_array().unwrap();
    let seg = rows.iter().find(|r| r["by"] == "segment").unwrap();
    assert_eq!(
        (seg["turns"].as_u64(), seg["emotions"]["angry"].as_u64()),
        (Some(51), Some(3))
    );
    let rate = seg["avg_rate_sps"].as_f64().unwrap();
    assert!(
        (rate - (48.0 * 4.0 + 3.0 * 6.0) / 51.0).abs() < 1e-6,
        "{rate}"
    );
    // 满意度: 48 calm turns at +0.4, 3 angry at -0.7.
    assert!((v["totals"]["satisfaction"].as_f64().unwrap() - 48.0 / 51.0).abs() < 1e-12);
    assert_eq!(
        (
            v["totals"]["positive"].as_u64(),
            v["totals"]["negative"].as_u64()
        ),
        (Some(48), Some(3))
    );
    let hours: u64 = rows
        .iter()
        .filter(|r| r["by"] == "hour")
        .map(|r| r["turns"].as_u64().unwrap())
        .sum();
    assert_eq!(hours, 51);
    let (_, csv) = s.text(&s.analyst, "/api/reports/voice?format=csv").await;
    assert!(
        csv.starts_with("\u{feff}by,key,turns,with_features,avg_rate_sps"),
        "{csv}"
    );

    // Scripts: the file, its graph, traffic per node equal to the funnel.
    let (_, v) = s.get(&s.analyst, "/api/scripts").await;
    let item = &v["items"][0];
    assert_eq!(
        (item["name"].as_str(), item["calls"].as_u64()),
        (Some(fx.script), Some(10))
    );
    let (st, v) = s
        .get(&s.analyst, &format!("/api/scripts/{}", fx.script))
        .await;
    assert_eq!(st, 200, "{v}");
    let nodes = v["graph"]["nodes"].as_array().unwrap();
    let node = |n: &str| nodes.iter().find(|x| x["name"] == n).unwrap().clone();
    assert_eq!(
        (
            node("opening")["start"].clone(),
            node("opening")["layer"].clone()
        ),
        (json!(true), json!(0))
    );
    assert_eq!(
        (
            node("offer")["entered"].as_u64(),
            node("offer")["dropped"].as_u64()
        ),
        (Some(8), Some(3))
    );
    assert_eq!(node("offer")["title"], "优惠告知");
    assert!(v["graph"]["edges"].as_array().unwrap().len() > nodes.len());
    let (st, v) = s.get(&s.analyst, "/api/scripts/nope").await;
    assert_eq!((st, err_code(&v)), (404, "no_such_script"));
    // A broken script file is listed with its error, and its page is a 422 naming the line.
    std::fs::write(
        s.store.data_dir().join("scripts/broken.yaml"),
        "name: x\nstates: [\n",
    )
    .unwrap();
    let (_, v) = s.get(&s.analyst, "/api/scripts").await;
    let broken = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "broken")
        .unwrap()
        .clone();
    assert!(
        broken["error"].as_str().unwrap().contains("broken.yaml"),
        "{broken}"
    );
    let (st, v) = s.get(&s.analyst, "/api/scripts/broken").await;
    assert_eq!((st, err_code(&v)), (422, "invalid_script"));
    s.stop().await;
}

#[tokio::test]
async fn live_stream_pushes_the_live_list_and_ends_by_itself() {
    let s = Server::start(waihu_server::Config::default()).await;
    let fx = fill_calls(&s.store).await;
    let (st, v) = s.get(&s.analyst, "/api/calls/live/stream?max_s=0").await;
    assert_eq!((st, err_code(&v)), (400, "bad_max_s"));
    let r = s
        .client
        .get(s.url("/api/calls/live/stream?max_s=3"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    // A call that ends between two pushes is gone from the next one.
    let store = s.store.clone();
    let ending = fx.live[0].clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let f = waihu_store::CallFinish {
            at: chrono::Utc::now(),
            outcome: waihu_core::CallOutcome::Answered,
            sip_status: Some(200),
            duration_s: 10.0,
            business_outcome: Some("confirmed".into()),
            level: None,
            path: vec!["opening".into()],
            path_variants: Vec::new(),
            recording: None,
            quality: None,
        };
        store
            .call_finished(&waihu_core::CallId(ending), &f)
            .await
            .unwrap();
    });
    // The server closes the stream after max_s: reading to the end terminates.
    let body = tokio::time::timeout(Duration::from_secs(10), r.text())
        .await
        .expect("the stream must end by itself")
        .unwrap();
    let events: Vec<Value> = body
        .split("\n\n")
        .filter(|b| b.contains("event: live"))
        .map(|b| {
            let data = b.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            serde_json::from_str(data).unwrap()
        })
        .collect();
    assert!((2..=4).contains(&events.len()), "{body}");
    assert_eq!(events[0]["count"], 2);
    assert_eq!(events[0]["items"][0]["node"], "verify_time");
    let last = events.last().unwrap();
    assert_eq!(last["count"], 1, "{body}");
    assert_eq!(last["items"][0]["call_id"], fx.live[1].as_str());
    s.stop().await;
}
