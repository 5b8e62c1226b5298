//! The HTTP API against a real store and a real server on loopback.
mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_core::{mask_name, mask_phone, CampaignId};

fn err_code(v: &Value) -> &str {
    v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error body: {v}"))
}

#[tokio::test]
async fn keys_roles_and_json_errors() {
    let s = Server::start(waihu_server::Config::default()).await;
    // No key, wrong key, malformed header: 401 with a JSON body that says what to do.
    let r = s.client.get(s.url("/api/customers")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(err_code(&v), "unauthorized");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("Bearer"),
        "{v}"
    );
    let (st, v) = s.get("wh_nope", "/api/customers").await;
    assert_eq!((st, err_code(&v)), (401, "unauthorized"));
    let r = s
        .client
        .get(s.url("/api/me"))
        .header("Authorization", "Basic abc")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // X-API-Key works as well as Bearer.
    let r = s
        .client
        .get(s.url("/api/me"))
        .header("X-API-Key", &s.operator)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["role"], "operator");
    assert!(v["actor"].as_str().unwrap().starts_with("api:ops#"));
    // Roles: analysts cannot edit DNC or see webhooks/keys; operators cannot manage keys.
    let (st, v) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/dnc",
            Some(json!({"phone": "13800138000"})),
        )
        .await;
    assert_eq!((st, err_code(&v)), (403, "forbidden"));
    assert!(
        v["error"]["message"].as_str().unwrap().contains("operator"),
        "{v}"
    );
    let (st, _) = s.get(&s.analyst, "/api/webhooks").await;
    assert_eq!(st, 403);
    let (st, _) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/keys",
            Some(json!({"name": "x", "role": "admin"})),
        )
        .await;
    assert_eq!(st, 403);
    // Admin creates a key; it works at once and is only shown once; revoking stops it.
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/keys",
            Some(json!({"name": "bi", "role": "analyst"})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    let key = v["key"].as_str().unwrap().to_string();
    let id = v["id"].as_i64().unwrap();
    assert_eq!(s.get(&key, "/api/me").await.1["role"], "analyst");
    let (_, list) = s.get(&s.admin, "/api/keys").await;
    assert!(!list.to_string().contains(&key), "keys are never listed");
    let (st, _) = s
        .send(Method::DELETE, &s.admin, &format!("/api/keys/{id}"), None)
        .await;
    assert_eq!(st, 200);
    assert_eq!(s.get(&key, "/api/me").await.0, 401);
    // Bad bodies and parameters.
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/keys",
            Some(json!({"name": "x", "role": "boss"})),
        )
        .await;
    assert_eq!((st, err_code(&v)), (422, "invalid_role"));
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/keys",
            Some(json!({"nam": "x", "role": "admin"})),
        )
        .await;
    assert_eq!((st, err_code(&v)), (400, "bad_body"));
    let (st, v) = s.get(&s.analyst, "/api/customers?limit=0").await;
    assert_eq!((st, err_code(&v)), (400, "bad_limit"));
    let (st, v) = s.get(&s.analyst, "/api/customers?after=x").await;
    assert_eq!((st, err_code(&v)), (400, "bad_query"));
    let (st, v) = s.get(&s.analyst, "/api/nothing").await;
    assert_eq!((st, err_code(&v)), (404, "no_such_route"));
    s.stop().await;
}

#[tokio::test]
async fn masking_and_audited_reveal() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, v) = s.get(&s.analyst, "/api/customers?limit=2").await;
    assert_eq!(st, 200);
    assert_eq!(v["total"], 3);
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["phone"], mask_phone("+8613812345678"));
    assert_eq!(items[0]["name"], mask_name("张伟"));
    assert!(!v.to_string().contains("13812345678"));
    // Paging.
    let next = v["next_after"].as_i64().unwrap();
    let (_, v2) = s
        .get(&s.analyst, &format!("/api/customers?after={next}"))
        .await;
    assert_eq!(v2["items"].as_array().unwrap().len(), 1);
    assert_eq!(v2["items"][0]["phone"], mask_phone("+12025550123"));
    assert_eq!(v2["next_after"], Value::Null);

    let reveals = |store: waihu_store::Store| async move {
        store.events_of_type("pii_revealed", 0, 1000).await.unwrap()
    };
    // Analysts can never reveal: 403, and nothing is logged.
    for path in ["/api/customers?reveal=true", "/api/customers/1?reveal=true"] {
        let (st, v) = s.get(&s.analyst, path).await;
        assert_eq!((st, err_code(&v)), (403, "reveal_forbidden"), "{path}");
    }
    assert!(reveals(s.store.clone()).await.is_empty());
    // Operators can; each customer shown is one pii_revealed event with the key as actor.
    let (st, v) = s
        .get(
            &s.operator,
            "/api/customers?reveal=true&reason=complaint%20%2312",
        )
        .await;
    assert_eq!(st, 200);
    assert_eq!(v["items"][0]["phone"], "+8613812345678");
    assert_eq!(v["items"][0]["name"], "张伟");
    let evs = reveals(s.store.clone()).await;
    assert_eq!(evs.len(), 3);
    match &evs[0].1.kind {
        waihu_core::EventKind::PiiRevealed { actor, reason, .. } => {
            assert!(actor.starts_with("api:ops#"), "{actor}");
            assert_eq!(reason, "complaint #12");
        }
        k => panic!("{k:?}"),
    }
    let (st, v) = s.get(&s.admin, "/api/customers/2?reveal=true").await;
    assert_eq!(st, 200);
    assert_eq!(v["phone"], "+8613900001111");
    assert_eq!(reveals(s.store.clone()).await.len(), 4);
    // Detail without reveal: masked, with the customer's events.
    let (_, v) = s.get(&s.analyst, "/api/customers/2").await;
    assert_eq!(v["phone"], mask_phone("+8613900001111"));
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "pii_revealed"));
    let (st, v) = s.get(&s.analyst, "/api/customers/99").await;
    assert_eq!((st, err_code(&v)), (404, "no_such_customer"));
    let (st, v) = s.get(&s.analyst, "/api/customers/abc").await;
    assert_eq!((st, err_code(&v)), (400, "bad_id"));
    // CSV export is masked too, and has a BOM + header.
    let csv = s
        .client
        .get(s.url("/api/customers?format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("\u{feff}id,phone,name"), "{csv}");
    assert!(
        csv.contains(&mask_phone("+8613812345678")) && !csv.contains("13812345678"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 4);
    s.stop().await;
}

#[tokio::test]
async fn dnc_segments_events() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/dnc",
            Some(json!({"phone": "138 0013 8000", "reason": "客户要求"})),
        )
        .await;
    assert_eq!((st, v["added"].clone()), (201, json!(true)), "{v}");
    assert_eq!(v["phone"], mask_phone("+8613800138000"));
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/dnc",
            Some(json!({"phone": "+8613800138000"})),
        )
        .await;
    assert_eq!((st, v["added"].clone()), (200, json!(false)));
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/dnc",
            Some(json!({"phone": "12"})),
        )
        .await;
    assert_eq!((st, err_code(&v)), (422, "invalid_phone"));
    assert!(s.store.dnc_contains("+8613800138000", "any").await.unwrap());
    let (_, v) = s.get(&s.analyst, "/api/dnc").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["items"][0]["phone"], mask_phone("+8613800138000"));
    assert_eq!(v["items"][0]["reason"], "客户要求");
    let (_, o) = s.get(&s.analyst, "/api/overview").await;
    assert_eq!(
        (o["dnc"].clone(), o["customers"].clone()),
        (json!(1), json!(3))
    );
    let (st, _) = s
        .send(
            Method::DELETE,
            &s.operator,
            "/api/dnc/%2B8613800138000",
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (st, v) = s
        .send(
            Method::DELETE,
            &s.operator,
            "/api/dnc/%2B8613800138000",
            None,
        )
        .await;
    assert_eq!((st, err_code(&v)), (404, "not_listed"));
    assert!(!s.store.dnc_contains("+8613800138000", "any").await.unwrap());

    // Segments with counts.
    s.store
        .save_segment_defs(
            &[waihu_store::SegmentDef {
                name: "vip".into(),
                expr: "purchase_freq > 5".into(),
                priority: 1,
                description: Some("高价值".into()),
            }],
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    s.store
        .set_segments(&[(waihu_core::CustomerId(1), Some("vip".into()))])
        .await
        .unwrap();
    let (_, v) = s.get(&s.analyst, "/api/segments").await;
    assert_eq!(v["items"][0]["name"], "vip");
    assert_eq!(v["items"][0]["customers"], 1);
    assert_eq!(v["unsegmented"], 2);

    // Events: newest first with a type filter, then paging both ways.
    let (_, v) = s.get(&s.analyst, "/api/events?type=dnc_added").await;
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    assert_eq!(v["items"][0]["detail"]["reason"], "客户要求");
    let (_, v) = s.get(&s.analyst, "/api/events?limit=2").await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items[0]["type"], "dnc_removed");
    let before = v["next"]["before"].as_i64().unwrap();
    assert_eq!(before, items[1]["id"].as_i64().unwrap());
    let (_, v) = s
        .get(
            &s.analyst,
            &format!("/api/events?before={before}&limit=100"),
        )
        .await;
    assert!(v["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["id"].as_i64().unwrap() < before));
    assert_eq!(v["next"]["before"], Value::Null);
    let (_, v) = s
        .get(
            &s.analyst,
            "/api/events?after=0&limit=100&type=customer_created",
        )
        .await;
    assert_eq!(v["items"].as_array().unwrap().len(), 3);
    let (st, v) = s.get(&s.analyst, "/api/events?after=1&before=3").await;
    assert_eq!((st, err_code(&v)), (400, "bad_query"));
    s.stop().await;
}

#[tokio::test]
async fn kpis_and_heat_map_from_known_events() {
    let s = Server::start(waihu_server::Config::default()).await;
    let evs = known_events();
    s.store.append_events(&evs).await.unwrap();
    let (st, v) = s
        .get(&s.analyst, "/api/kpis?from=2026-11-02&to=2026-11-03")
        .await;
    assert_eq!(st, 200, "{v}");
    let tot = &v["totals"];
    assert_eq!(
        (
            tot["attempts"].as_i64(),
            tot["connects"].as_i64(),
            tot["answered"].as_i64()
        ),
        (Some(15), Some(6), Some(5))
    );
    assert_eq!(tot["connect_rate"], json!(0.4));
    assert_eq!(tot["abandoned"], 1);
    assert_eq!(tot["abandon_rate"], json!(0.2));
    assert!((tot["aht_s"].as_f64().unwrap() - 365.0 / 6.0).abs() < 1e-9);
    assert_eq!(
        (tot["conversations"].as_i64(), tot["conversions"].as_i64()),
        (Some(3), Some(2))
    );
    assert!((tot["conversion_rate"].as_f64().unwrap() - 2.0 / 6.0).abs() < 1e-9);
    assert_eq!(
        tot["outcomes"],
        json!({"answered": 5, "voicemail": 1, "no_answer": 3, "busy": 2, "powered_off": 4, "rejected": 0, "invalid_number": 0, "suspended": 0, "congestion": 0, "failed": 0})
    );
    assert_eq!(tot["levels"], json!({"A": 2, "B": 1}));
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 2);
    assert_eq!(
        (
            days[0]["day"].as_str(),
            days[0]["attempts"].as_i64(),
            days[0]["connect_rate"].as_f64()
        ),
        (Some("2026-11-02"), Some(10), Some(0.5))
    );
    assert_eq!(
        (
            days[0]["aht_s"].as_f64(),
            days[0]["abandon_rate"].as_f64(),
            days[0]["conversion_rate"].as_f64()
        ),
        (Some(64.0), Some(0.25), Some(0.4))
    );
    assert_eq!(
        (
            days[1]["attempts"].as_i64(),
            days[1]["connect_rate"].as_f64(),
            days[1]["aht_s"].as_f64()
        ),
        (Some(5), Some(0.2), Some(45.0))
    );
    // Campaign filter and an empty range.
    let (_, v) = s
        .get(
            &s.analyst,
            "/api/kpis?from=2026-11-02&to=2026-11-03&campaign=2",
        )
        .await;
    assert_eq!(v["totals"]["attempts"], 5);
    let (_, v) = s
        .get(&s.analyst, "/api/kpis?from=2026-11-04&to=2026-11-05")
        .await;
    assert_eq!(
        (
            v["totals"]["attempts"].as_i64(),
            v["totals"]["connect_rate"].clone()
        ),
        (Some(0), Value::Null)
    );
    // Default range: the 30 days ending at the newest data.
    let (_, v) = s.get(&s.analyst, "/api/kpis").await;
    assert_eq!(
        (
            v["to"].as_str(),
            v["from"].as_str(),
            v["totals"]["attempts"].as_i64()
        ),
        (Some("2026-11-03"), Some("2026-10-05"), Some(15))
    );
    // Errors.
    let (st, v) = s.get(&s.analyst, "/api/kpis?from=2026-13-01").await;
    assert_eq!((st, err_code(&v)), (400, "bad_date"));
    let (st, v) = s
        .get(&s.analyst, "/api/kpis?from=2026-11-05&to=2026-11-01")
        .await;
    assert_eq!((st, err_code(&v)), (400, "bad_range"));

    // Heat map: callee-local Monday 09 (6 attempts, 5 connects), 10 (4, 0); Tuesday 20 (5, 1).
    let (_, v) = s
        .get(&s.analyst, "/api/heatmap?from=2026-11-02&to=2026-11-03")
        .await;
    let cells = v["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 168);
    let cell = |wd: u64, h: u64| {
        cells
            .iter()
            .find(|c| c["weekday"] == wd && c["hour"] == h)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (
            cell(1, 9)["attempts"].as_i64(),
            cell(1, 9)["connects"].as_i64()
        ),
        (Some(6), Some(5))
    );
    assert_eq!(
        (
            cell(1, 10)["attempts"].as_i64(),
            cell(1, 10)["answer_rate"].as_f64()
        ),
        (Some(4), Some(0.0))
    );
    assert_eq!(
        (
            cell(2, 20)["attempts"].as_i64(),
            cell(2, 20)["answer_rate"].as_f64()
        ),
        (Some(5), Some(0.2))
    );
    let total: i64 = cells.iter().map(|c| c["attempts"].as_i64().unwrap()).sum();
    assert_eq!(total, 15);

    // The trigger-kept rollups equal the SQL over the log (and the Rust scan of decoded
    // events: waihu-bench's `api::harness` tests).
    let (from, to) = (t("2026-11-02T00:00:00Z"), t("2026-11-04T00:00:00Z"));
    let (d0, d1) = ("2026-11-02".parse().unwrap(), "2026-11-03".parse().unwrap());
    let rollup = s.store.kpi_rollup(from, to, None).await.unwrap();
    assert_eq!(rollup, s.store.kpi_from_log(from, to, None).await.unwrap());
    let local = s.store.local_hour_rollup(d0, d1, None).await.unwrap();
    assert_eq!(
        local,
        s.store.local_hour_from_log(d0, d1, None).await.unwrap()
    );
    assert_eq!(
        s.store
            .local_hour_rollup(d0, d1, Some(CampaignId(2)))
            .await
            .unwrap()
            .iter()
            .map(|r| r.n)
            .sum::<i64>(),
        5
    );

    // CSV of the daily series.
    let csv = s
        .client
        .get(s.url("/api/kpis?from=2026-11-02&to=2026-11-03&format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("\u{feff}day,attempts,connects,connect_rate"),
        "{csv}"
    );
    assert!(lines[1].starts_with("2026-11-02,10,5,0.5,"), "{csv}");
    assert_eq!(lines.len(), 3);
    s.stop().await;
}

#[tokio::test]
async fn every_listed_route_is_served() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (_, routes) = waihu_server::app(s.store.clone(), waihu_server::Config::default());
    for r in routes {
        let path = r
            .path
            .replace("{id}", "999")
            .replace("{phone}", "13800138000")
            .replace("{name}", "nope")
            .replace("/stream", "/stream?max_s=1");
        let method = Method::from_bytes(r.method.as_bytes()).unwrap();
        let mut rq = s.client.request(method, s.url(&path)).bearer_auth(&s.admin);
        if r.method == "POST" {
            rq = rq.json(&json!({}));
        }
        let resp = rq.send().await.unwrap();
        let st = resp.status().as_u16();
        let body = resp.text().await.unwrap();
        assert_ne!(st, 405, "{} {path}", r.method);
        assert!(
            !body.contains("no_such_route"),
            "{} {path}: {body}",
            r.method
        );
    }
    let (st, doc) = s.get("", "/api/openapi.json").await;
    assert_eq!((st, doc["openapi"].as_str()), (200, Some("3.1.0")));
    s.stop().await;
}

#[tokio::test]
async fn open_mode_gives_keyless_read_only_access() {
    let s = Server::start(waihu_server::Config {
        open: true,
        ..Default::default()
    })
    .await;
    let r = s.client.get(s.url("/api/kpis")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = s
        .client
        .get(s.url("/api/customers?reveal=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = s
        .client
        .post(s.url("/api/dnc"))
        .json(&json!({"phone": "13800138000"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A wrong key is still refused.
    assert_eq!(s.get("wh_bad", "/api/kpis").await.0, 401);
    s.stop().await;
}

#[tokio::test]
async fn dashboard_is_served_without_a_key() {
    let s = Server::start(waihu_server::Config::default()).await;
    let r = s.client.get(s.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("接通率") && html.contains("Connect rate"));
    for external in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(
            !html.contains(external),
            "the dashboard loads nothing from outside: {external}"
        );
    }
    tokio::time::sleep(Duration::from_millis(1)).await;
    s.stop().await;
}

#[tokio::test]
async fn messages_list_and_report_as_json_and_csv_without_numbers() {
    let s = Server::start(waihu_server::Config::default()).await;
    let now = chrono::Utc::now();
    for (i, channel) in ["sms", "sms", "push"].iter().enumerate() {
        let key = format!("fallback:1:{i}:coupon");
        let (id, _) = s
            .store
            .message_enqueue(
                &waihu_store::NewMessage {
                    key: &key,
                    customer: None,
                    campaign: Some(CampaignId(1)),
                    channel,
                    template: "coupon",
                    to: "+8613812345678",
                    text: "【外呼】优惠券已到账",
                    segments: 1,
                },
                now,
            )
            .await
            .unwrap();
        if i == 0 {
            assert!(s.store.message_claim(id, now).await.unwrap());
            s.store
                .message_sent(id, &["gw-1".into()], now)
                .await
                .unwrap();
            s.store
                .message_receipt("gw-1", true, "DELIVRD", now + chrono::Duration::seconds(4))
                .await
                .unwrap();
        }
    }
    s.store
        .message_reply("+8613812345678", "退订", "sms", now)
        .await
        .unwrap();

    let (st, v) = s.get(&s.analyst, "/api/messages?campaign=1").await;
    assert_eq!(st, 200);
    assert_eq!(v["items"].as_array().unwrap().len(), 4, "{v}");
    assert!(!v.to_string().contains("13812345678"), "no numbers: {v}");
    let (st, v) = s.get(&s.analyst, "/api/messages/report?campaign=1").await;
    assert_eq!(st, 200);
    let sms = v["outgoing"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == "sms")
        .unwrap();
    assert_eq!(
        (sms["total"].as_u64(), sms["delivered"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(sms["delivery_p50_s"], 4.0);
    // No conversation ended: nothing to attribute (crediting is tested in the store).
    assert_eq!(
        (sms["conversions"].as_u64(), sms["conversion_rate"].as_f64()),
        (Some(0), Some(0.0))
    );
    assert_eq!(v["attribution"]["window_days"], 7);
    assert_eq!(v["attribution"]["model"], "last_touch");
    assert_eq!(v["replies"][0]["opt_outs"], 1);
    let (st, v) = s
        .get(&s.analyst, "/api/messages/report?window_days=30")
        .await;
    assert_eq!(
        (st, v["attribution"]["window_days"].as_u64()),
        (200, Some(30))
    );
    let (st, v) = s
        .get(&s.analyst, "/api/messages/report?window_days=0")
        .await;
    assert_eq!((st, err_code(&v)), (400, "bad_query"));
    let csv = s
        .client
        .get(s.url("/api/messages/report?format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{feff}campaign_id,channel,template,total"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines()
            .next()
            .unwrap()
            .ends_with("delivery_p90_s,conversions,conversion_rate"),
        "{csv}"
    );
    let (st, v) = s.get(&s.analyst, "/api/messages?limit=0").await;
    assert_eq!((st, err_code(&v)), (400, "bad_limit"));
    let (st, v) = s.get(&s.analyst, "/api/messages/report?campaing=1").await;
    assert_eq!((st, err_code(&v)), (400, "bad_query"));
    s.stop().await;
}

#[tokio::test]
async fn experiments_report_posteriors_per_variant() {
    let s = Server::start(waihu_server::Config::default()).await;
    let now = chrono::Utc::now();
    // Variant b converts 40 of 100, a 20 of 100: b leads with P(best) near 1.
    for i in 0..200 {
        let (variant, ok) = if i < 100 {
            ("a", i < 20)
        } else {
            ("b", i < 140)
        };
        let call = format!("call-{i}");
        s.store
            .experiment_chosen(
                &call,
                CampaignId(1),
                "offer",
                &[waihu_store::ArmChoice {
                    state: "pitch".into(),
                    segment: "default".into(),
                    variant: variant.into(),
                    pick: "sample".into(),
                }],
                now,
            )
            .await
            .unwrap();
        s.store
            .experiment_rewarded(&call, &[("pitch".into(), ok)])
            .await
            .unwrap();
    }
    let (st, v) = s.get(&s.analyst, "/api/experiments?campaign=1").await;
    assert_eq!(st, 200, "{v}");
    let e = &v["items"][0];
    assert_eq!(
        (e["state"].as_str(), e["leader"].as_str()),
        (Some("pitch"), Some("b"))
    );
    assert_eq!(e["trials"], 200);
    let b = &e["variants"][1];
    assert_eq!(
        (b["trials"].as_u64(), b["successes"].as_u64()),
        (Some(100), Some(40))
    );
    assert!(b["prob_best"].as_f64().unwrap() > 0.99, "{b}");
    let up = b["uplift"]["diff"].as_f64().unwrap();
    assert!(
        (up - 0.196).abs() < 0.01 && b["uplift"]["lo"].as_f64().unwrap() > 0.0,
        "{b}"
    );
    assert!(e["variants"][0]["uplift"].is_null());
    // The same data reads the same twice (seeded Monte Carlo).
    let (_, again) = s.get(&s.analyst, "/api/experiments?campaign=1").await;
    assert_eq!(v, again);
    let csv = s
        .client
        .get(s.url("/api/experiments?format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        csv.starts_with("\u{feff}campaign_id,script,state,segment,variant"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let (st, v) = s.get(&s.analyst, "/api/experiments?campaign=2").await;
    assert_eq!((st, v["items"].as_array().map(Vec::len)), (200, Some(0)));
    s.stop().await;
}

/// Trunk state: nothing before a node wrote its status file; the node's trunks
/// while it keeps writing it; `stale` once it stopped; CSV with one row per trunk.
#[tokio::test]
async fn trunk_state_from_the_node_status_file() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, v) = s.get(&s.analyst, "/api/trunks").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(
        (v["stale"].as_bool(), v["node"].is_null()),
        (Some(true), true)
    );
    let write = |age_ms: i64| {
        let file = waihu_campaign::trunks::StatusFile {
            asr: None,
            updated_ms: chrono::Utc::now().timestamp_millis() - age_ms,
            pid: 4242,
            trunks: vec![
                waihu_campaign::trunks::StatusEntry {
                    name: "carrier-a".into(),
                    state: "down".into(),
                    registration: "failed".into(),
                    registration_status: Some(403),
                    registrations: 3,
                    in_flight: 0,
                    channels: 30,
                    calls: 12,
                    failures: 4,
                    consecutive_failures: 3,
                    down_until_ms: Some(1),
                },
                waihu_campaign::trunks::StatusEntry {
                    name: "carrier-b".into(),
                    state: "up".into(),
                    registration: "registered".into(),
                    registration_status: None,
                    registrations: 1,
                    in_flight: 7,
                    channels: 10,
                    calls: 80,
                    failures: 0,
                    consecutive_failures: 0,
                    down_until_ms: None,
                },
            ],
        };
        std::fs::write(
            s.store.data_dir().join("trunks.json"),
            serde_json::to_vec(&file).unwrap(),
        )
        .unwrap();
    };
    write(200);
    let (st, v) = s.get(&s.analyst, "/api/trunks").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["stale"], false, "{v}");
    assert_eq!(
        (v["node"]["pid"].as_u64(), v["node"]["running"].as_bool()),
        (Some(4242), Some(true))
    );
    assert_eq!(v["items"][0]["state"], "down");
    assert_eq!(v["items"][1]["in_flight"], 7);
    write(60_000);
    let (_, v) = s.get(&s.analyst, "/api/trunks").await;
    assert_eq!(
        (v["stale"].as_bool(), v["node"]["running"].as_bool()),
        (Some(true), Some(false))
    );
    let csv = s
        .client
        .get(s.url("/api/trunks?format=csv"))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(csv.starts_with("\u{feff}name,state,registration"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(
        csv.lines()
            .nth(1)
            .unwrap()
            .starts_with("carrier-a,down,failed,403,"),
        "{csv}"
    );
    // A file the node half-wrote is an error naming it, not an empty list.
    std::fs::write(
        s.store.data_dir().join("trunks.json"),
        "{\"updated_ms\": 1,",
    )
    .unwrap();
    let (st, v) = s.get(&s.analyst, "/api/trunks").await;
    assert_eq!(st, 500, "{v}");
    assert!(v.to_string().contains("trunks.json"), "{v}");
    s.stop().await;
}
