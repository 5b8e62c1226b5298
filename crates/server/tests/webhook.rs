//! Signed webhooks against a local receiver that verifies the signature.
mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_core::{CallOutcome, EventKind, PhoneIndex};
use waihu_server::webhook::{verify, Settings, SIGNATURE_HEADER, TIMESTAMP_HEADER};

#[derive(Default)]
struct Seen {
    /// Status answered to each request, in order.
    answers: Vec<u16>,
    /// Bodies that verified, as JSON.
    verified: Vec<Value>,
    bad_signatures: usize,
}

#[derive(Clone)]
struct Receiver {
    secret: String,
    /// Fail this many requests with 500 first.
    fail_first: usize,
    seen: Arc<Mutex<Seen>>,
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut seen = r.seen.lock().unwrap();
    let sig = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ts_ok = headers
        .get(TIMESTAMP_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .is_some();
    let status = if !verify(&r.secret, &body, sig) || !ts_ok {
        seen.bad_signatures += 1;
        StatusCode::UNAUTHORIZED
    } else if seen.answers.len() < r.fail_first {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        seen.verified.push(serde_json::from_slice(&body).unwrap());
        StatusCode::NO_CONTENT
    };
    seen.answers.push(status.as_u16());
    status
}

async fn start_receiver(
    secret: &str,
    fail_first: usize,
) -> (String, Arc<Mutex<Seen>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let r = Receiver {
        secret: secret.into(),
        fail_first,
        seen: seen.clone(),
    };
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(r);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (url, seen, task)
}

fn fast() -> waihu_server::Config {
    waihu_server::Config {
        webhooks: Settings {
            poll: Duration::from_millis(50),
            batch: 100,
            tries: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(2),
        },
        ..Default::default()
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn signed_delivery_with_retry_and_filter() {
    let s = Server::start(fast()).await;
    let secret = "s3cret-for-the-test-receiver";
    let (url, seen, rx_task) = start_receiver(secret, 1).await;
    let (st, v) =
        s.send(Method::POST, &s.admin, "/api/webhooks", Some(json!({"url": url, "events": ["attempt_ended", "call_abandoned"], "secret": secret}))).await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["secret"], secret);
    let hook = v["id"].as_i64().unwrap();
    let (_, list) = s.get(&s.admin, "/api/webhooks").await;
    assert!(!list.to_string().contains(secret), "secrets are not listed");

    // Two attempts (4 events) and an abandoned call: three events match the filter.
    let mut evs = attempt(
        "w1",
        1,
        "2026-11-02T01:00:00Z",
        "2026-11-02T09:00:00+08:00",
        CallOutcome::Answered,
        30.0,
    );
    evs.extend(attempt(
        "w2",
        1,
        "2026-11-02T01:05:00Z",
        "2026-11-02T09:05:00+08:00",
        CallOutcome::Busy,
        0.0,
    ));
    evs.push(other(
        "w1",
        1,
        "2026-11-02T01:00:10Z",
        EventKind::CallAbandoned {
            phone: PhoneIndex("00".into()),
        },
    ));
    s.store.append_events(&evs).await.unwrap();

    wait_for("a verified delivery", || {
        !seen.lock().unwrap().verified.is_empty()
    })
    .await;
    {
        let seen = seen.lock().unwrap();
        // The first try got 500 and was retried; the signature always verified.
        assert_eq!(seen.answers, vec![500, 204]);
        assert_eq!(seen.bad_signatures, 0);
        let body = &seen.verified[0];
        assert_eq!(body["webhook_id"], hook);
        assert!(body["sent_at"].is_string());
        let types: Vec<&str> = body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            vec!["attempt_ended", "attempt_ended", "call_abandoned"]
        );
        assert_eq!(body["events"][0]["detail"]["outcome"], "answered");
    }
    wait_for("the delivery log", || true).await;
    let mut deliveries = Value::Null;
    for _ in 0..100 {
        deliveries = s
            .get(&s.admin, &format!("/api/webhooks/{hook}/deliveries"))
            .await
            .1;
        if !deliveries["items"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let d = &deliveries["items"][0];
    assert_eq!(
        (
            d["tries"].as_i64(),
            d["delivered"].as_bool(),
            d["events"].as_i64(),
            d["http_status"].as_i64()
        ),
        (Some(2), Some(true), Some(3), Some(204))
    );

    // Nothing is sent twice; non-matching events advance the cursor without a POST.
    s.store
        .append_events(&[other(
            "x",
            1,
            "2026-11-02T02:00:00Z",
            EventKind::CampaignState {
                state: "paused".into(),
                actor: None,
            },
        )])
        .await
        .unwrap();
    let last = s.store.last_event_id().await.unwrap();
    let t0 = Instant::now();
    loop {
        let hooks = s.store.webhooks().await.unwrap();
        if hooks[0].cursor == last {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "cursor did not advance"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen.lock().unwrap().answers.len(), 2);

    // A receiver with another secret refuses every try; the batch is given up on and logged.
    let (st, _) = s
        .send(
            Method::DELETE,
            &s.admin,
            &format!("/api/webhooks/{hook}"),
            None,
        )
        .await;
    assert_eq!(st, 200);
    let (url2, seen2, rx2) = start_receiver("a-different-secret-entirely", 0).await;
    let (_, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/webhooks",
            Some(json!({"url": url2, "secret": "not-what-the-receiver-has"})),
        )
        .await;
    let hook2 = v["id"].as_i64().unwrap();
    s.store
        .append_events(&attempt(
            "w3",
            1,
            "2026-11-02T03:00:00Z",
            "2026-11-02T11:00:00+08:00",
            CallOutcome::NoAnswer,
            30.0,
        ))
        .await
        .unwrap();
    let mut d = Value::Null;
    let t0 = Instant::now();
    while d.is_null() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no failed delivery logged"
        );
        d = s
            .get(&s.admin, &format!("/api/webhooks/{hook2}/deliveries"))
            .await
            .1["items"][0]
            .clone();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        (
            d["tries"].as_i64(),
            d["delivered"].as_bool(),
            d["http_status"].as_i64()
        ),
        (Some(3), Some(false), Some(401))
    );
    assert_eq!(seen2.lock().unwrap().bad_signatures, 3);

    // Bad webhook requests.
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/webhooks",
            Some(json!({"url": "ftp://x"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("invalid_url"))
    );
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/webhooks",
            Some(json!({"url": "http://127.0.0.1/", "secret": "short"})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (422, Some("weak_secret"))
    );
    s.stop().await;
    rx_task.abort();
    rx2.abort();
}
