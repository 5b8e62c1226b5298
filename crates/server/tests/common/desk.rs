//! The store as the dialing process drives it for the agent desk, and agent keys.
use chrono::Utc;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_core::{CallId, CampaignId, CustomerId, Event, EventKind, Speaker, Turn};
use waihu_store::{CallStart, Store};

use super::Server;

pub const PHONE: &str = "13812345678";

/// What the dialer publishes every 250 ms (see waihu_dialer::handoff).
pub async fn publish(store: &Store, at: chrono::DateTime<Utc>, li: &str, waiting: &[&str]) {
    let w: Vec<Value> = waiting
        .iter()
        .map(|c| json!({"call_id": c, "since": at, "wait_ms": 4200}))
        .collect();
    let body = json!({
        "running": true,
        "at": at,
        "agents": [
            {"id": "li", "state": li, "since": at, "for_ms": 1500, "pending": null},
            {"id": "wang", "state": "paused", "since": at, "for_ms": 9000, "pending": null},
        ],
        "queues": [{"name": "after_sales", "waiting": w}, {"name": "default", "waiting": []}],
    });
    store.desk_publish(at, &body.to_string()).await.unwrap();
}

pub fn ev(call: &str, kind: EventKind) -> Event {
    Event {
        at: Utc::now(),
        customer: Some(CustomerId(1)),
        campaign: Some(CampaignId(1)),
        call: Some(CallId(call.into())),
        kind,
    }
}

/// A call handed to `after_sales` and offered to `agent`, as the dialer writes it.
pub async fn offered_call(store: &Store, call: &str, agent: &str) {
    let now = Utc::now();
    store
        .call_started(&CallStart {
            call_id: CallId(call.into()),
            campaign: Some(CampaignId(1)),
            customer: Some(CustomerId(1)),
            script: "after_sales.zh".into(),
            lang: "zh".into(),
            at: now,
        })
        .await
        .unwrap();
    for (seq, speaker, state, text, intent, emotion) in [
        (
            1,
            Speaker::Bot,
            "greet",
            "您好，这里是售后服务。",
            None,
            None,
        ),
        (
            2,
            Speaker::Callee,
            "greet",
            "我的洗衣机坏了，我要投诉，转人工！",
            Some("complaint"),
            Some("angry"),
        ),
    ] {
        store
            .call_turn(
                &CallId(call.into()),
                &Turn {
                    seq,
                    speaker,
                    state: state.into(),
                    at: now,
                    start_ms: 0,
                    end_ms: 1000,
                    text: text.into(),
                    intent: intent.map(String::from),
                    confidence: None,
                    emotion: emotion.map(String::from),
                    sentiment: None,
                    features: None,
                    barge_in: false,
                    latency_ms: None,
                },
            )
            .await
            .unwrap();
    }
    store
        .append_event(&ev(
            call,
            EventKind::TransferRequested {
                queue: "after_sales".into(),
            },
        ))
        .await
        .unwrap();
    store
        .append_event(&ev(
            call,
            EventKind::TransferScreen {
                queue: "after_sales".into(),
                customer: Some("张*".into()),
                path: vec!["greet".into(), "transfer".into()],
                intents: vec!["complaint".into()],
                emotion: Some("angry".into()),
                summary: "after sales转人工，张某，诉求：complaint，情绪：angry。".into(),
            },
        ))
        .await
        .unwrap();
    store
        .append_event(&ev(
            call,
            EventKind::TransferOffered {
                queue: "after_sales".into(),
                agent: agent.into(),
                wait_ms: 1200,
            },
        ))
        .await
        .unwrap();
}

pub async fn agent_key(s: &Server, agent: &str) -> String {
    let (st, v) = s
        .send(
            Method::POST,
            &s.admin,
            "/api/keys",
            Some(json!({"name": format!("desk-{agent}"), "role": "agent", "agent": agent})),
        )
        .await;
    assert_eq!(st, 201, "{v}");
    assert_eq!(v["role"], "agent");
    assert_eq!(v["agent_id"], agent);
    v["key"].as_str().unwrap().to_string()
}
