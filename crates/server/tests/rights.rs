//! Personal-data rights over HTTP: export (operator, audited) and erasure (admin),
//! against a real store and server on loopback.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn export_then_erase_one_customer() {
    let s = Server::start(waihu_server::Config::default()).await;
    let fx = fill_calls(&s.store).await;
    // Customer 1 has every third fixture call.
    let (st, v) = s
        .get(&s.analyst, "/api/customers/1/export?reason=REQ-1")
        .await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s.get(&s.operator, "/api/customers/1/export").await;
    assert_eq!((st, code(&v)), (400, "reason_required"));
    let (st, v) = s.get(&s.operator, "/api/customers/x/export?reason=r").await;
    assert_eq!((st, code(&v)), (400, "bad_id"));
    let (st, v) = s
        .get(&s.operator, "/api/customers/999/export?reason=r")
        .await;
    assert_eq!((st, code(&v)), (404, "no_such_customer"));
    let (st, ex) = s
        .get(&s.operator, "/api/customers/1/export?reason=PIPL-2026-001")
        .await;
    assert_eq!(st, 200, "{ex}");
    assert_eq!(ex["customer"]["name"], "张伟");
    assert_eq!(ex["customer"]["phone"], "+8613812345678");
    let calls = ex["calls"].as_array().unwrap();
    assert!(!calls.is_empty());
    assert!(calls
        .iter()
        .flat_map(|c| c["turns"].as_array().unwrap())
        .any(|t| t["text"] == "好的，张伟收到" || t["text"] == "手续费怎么这么贵"));
    assert!(ex["events"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "pii_revealed" && e["body"]["field"] == "export"));
    let a_call = calls[0]["call_id"].as_str().unwrap().to_string();

    // Erase: admin only, a reason, an explicit confirmation.
    let body = json!({"reason": "PIPL-2026-001 删除请求", "confirm": true});
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/customers/1/erase",
            Some(body.clone()),
        )
        .await;
    assert_eq!((st, code(&v)), (403, "forbidden"));
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/customers/1/erase",
            Some(json!({"reason": "r", "confirm": false})),
        )
        .await;
    assert_eq!((st, code(&v)), (400, "confirm_required"));
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/customers/1/erase",
            Some(json!({"reason": "r"})),
        )
        .await;
    assert_eq!(st, 400, "{v}");
    let (st, r) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/customers/1/erase",
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["calls"].as_u64(), Some(calls.len() as u64));
    // Gone: 410 for the erased id, its calls keep their counts but not the words.
    let (st, v) = s
        .send(Method::POST, &s.admin, "/api/customers/1/erase", Some(body))
        .await;
    assert_eq!((st, code(&v)), (410, "erased"));
    let (st, v) = s.get(&s.operator, "/api/customers/1/export?reason=r").await;
    assert_eq!((st, code(&v)), (410, "erased"));
    let (st, v) = s.get(&s.analyst, "/api/customers/1").await;
    assert_eq!(st, 404, "{v}");
    let (st, d) = s
        .get(
            &s.operator,
            &format!("/api/calls/{}?reveal=true&reason=check", urlencode(&a_call)),
        )
        .await;
    assert_eq!(st, 200, "{d}");
    let turns = d["turns"].as_array().unwrap();
    assert!(!turns.is_empty());
    assert!(
        turns.iter().all(|t| t["text"] == waihu_store::ERASED_TEXT),
        "{d}"
    );
    // Other customers are untouched.
    let (st, ex2) = s.get(&s.operator, "/api/customers/2/export?reason=r").await;
    assert_eq!(st, 200);
    assert_eq!(ex2["customer"]["name"], "李娜");
    assert!(fx.finished.len() > calls.len());
    s.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
