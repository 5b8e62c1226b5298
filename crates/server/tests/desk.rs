//! The agent desk's API over a real store and server: the agent role and its
//! limits, the supervisor view, state requests queued for the dialer, the
//! screen-pop of an offered call, dispositions and the desk report. The store
//! is driven the way the dialing process drives it (`desk_live` snapshot,
//! transfer events appended as they happen, live transcript turns).
mod common;

use chrono::Utc;
use common::desk::*;
use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_core::{CallId, CustomerId, EventKind};

#[tokio::test]
async fn agent_keys_are_bound_to_one_agent_and_reach_only_the_desk() {
    let s = Server::start(waihu_server::Config::default()).await;
    for (body, code) in [
        (json!({"name": "x", "role": "agent"}), "invalid_agent"),
        (
            json!({"name": "x", "role": "agent", "agent": " "}),
            "invalid_agent",
        ),
        (
            json!({"name": "x", "role": "analyst", "agent": "li"}),
            "invalid_agent",
        ),
        (json!({"name": "x", "role": "boss"}), "invalid_role"),
    ] {
        let (st, v) = s
            .send(Method::POST, &s.admin, "/api/keys", Some(body))
            .await;
        assert_eq!((st, v["error"]["code"].as_str()), (422, Some(code)), "{v}");
    }
    let li = agent_key(&s, "li").await;
    let (st, me) = s.get(&li, "/api/me").await;
    assert_eq!(
        (st, &me["role"], &me["agent"]),
        (200, &json!("agent"), &json!("li"))
    );
    // Every other route refuses an agent key, the ones any analyst reads too.
    for path in [
        "/api/calls",
        "/api/calls/live",
        "/api/customers",
        "/api/customers/1?reveal=true",
        "/api/events",
        "/api/kpis",
        "/api/agents",
        "/api/queues",
        "/api/reports/desk",
        "/api/keys",
    ] {
        let (st, v) = s.get(&li, path).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (403, Some("agent_key")),
            "{path}: {v}"
        );
    }
    // The supervisor view is for operators and admins.
    let (st, v) = s.get(&s.analyst, "/api/agents").await;
    assert_eq!((st, v["error"]["code"].as_str()), (403, Some("forbidden")));
    let (st, v) = s.get(&s.operator, "/api/agents").await;
    assert_eq!((st, &v["running"]), (200, &json!(false)), "{v}");
    s.stop().await;
}

#[tokio::test]
async fn supervisor_view_and_state_requests_go_through_the_store() {
    let s = Server::start(waihu_server::Config::default()).await;
    let li = agent_key(&s, "li").await;
    let state = |st: &str| Some(json!({"state": st}));
    // No dialer yet: nothing to ask.
    let (st, v) = s
        .send(Method::POST, &li, "/api/agents/li/state", state("paused"))
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("desk_not_running")),
        "{v}"
    );

    publish(&s.store, Utc::now(), "available", &["c-wait"]).await;
    let (st, a) = s.get(&s.operator, "/api/agents").await;
    assert_eq!((st, &a["running"]), (200, &json!(true)), "{a}");
    let states: Vec<(&str, &str)> = a["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["id"].as_str().unwrap(), x["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("li", "available"), ("wang", "paused")]);
    let (_, q) = s.get(&s.admin, "/api/queues").await;
    assert_eq!(q["queues"][0]["name"], "after_sales");
    assert_eq!(q["queues"][0]["waiting"][0]["call_id"], "c-wait");
    assert_eq!(q["queues"][0]["waiting"][0]["wait_ms"], 4200);

    let (st, v) = s
        .send(Method::POST, &li, "/api/agents/li/state", state("paused"))
        .await;
    assert_eq!(st, 202, "{v}");
    let (st, v) = s
        .send(
            Method::POST,
            &li,
            "/api/agents/wang/state",
            state("available"),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_your_agent")),
        "{v}"
    );
    let (st, v) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/agents/wang/state",
            state("available"),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/agents/wang/state",
            state("available"),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    for (agent, body, status, code) in [
        ("li", json!({"state": "on_call"}), 422, "invalid_state"),
        ("li", json!({"state": "paused", "x": 1}), 400, "bad_body"),
        ("li", json!("paused"), 400, "bad_body"),
    ] {
        let (st, v) = s
            .send(
                Method::POST,
                &li,
                &format!("/api/agents/{agent}/state"),
                Some(body),
            )
            .await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{v}"
        );
    }
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/agents/zhao/state",
            state("paused"),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("no_such_agent")),
        "{v}"
    );
    // What the dialer will read, in order, with who asked.
    let reqs = s.store.agent_state_requests(0, 10).await.unwrap();
    let got: Vec<(&str, &str)> = reqs
        .iter()
        .map(|r| (r.agent.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(got, [("li", "paused"), ("wang", "available")]);
    assert!(
        reqs[0].actor.starts_with("api:desk-li#"),
        "{}",
        reqs[0].actor
    );

    // A stale snapshot (the dialer stopped writing) is not live.
    publish(
        &s.store,
        Utc::now() - chrono::Duration::seconds(10),
        "available",
        &[],
    )
    .await;
    let (_, a) = s.get(&s.operator, "/api/agents").await;
    assert_eq!(
        (&a["running"], &a["agents"]),
        (&json!(false), &json!([])),
        "{a}"
    );
    s.stop().await;
}

#[tokio::test]
async fn the_offered_call_pops_up_for_its_agent_only_and_takes_a_disposition() {
    let s = Server::start(waihu_server::Config::default()).await;
    let li = agent_key(&s, "li").await;
    let wang = agent_key(&s, "wang").await;
    let (_, v) = s.get(&li, "/api/agents/li/offer").await;
    assert_eq!(v["offer"], Value::Null, "{v}");

    publish(&s.store, Utc::now(), "ringing", &[]).await;
    offered_call(&s.store, "c1", "li").await;
    let r = s
        .client
        .get(s.url("/api/agents/li/offer"))
        .bearer_auth(&li)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let raw = r.text().await.unwrap();
    assert!(
        !raw.contains(PHONE) && !raw.contains("张伟"),
        "PII on the desk: {raw}"
    );
    let v: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(v["state"]["state"], "ringing");
    let o = &v["offer"];
    assert_eq!(o["call_id"], "c1");
    assert_eq!(o["status"], "ringing");
    assert_eq!(o["queue"], "after_sales");
    assert_eq!(o["customer"], "张*");
    assert_eq!(o["intents"], json!(["complaint"]));
    assert_eq!(o["emotion"], "angry");
    assert_eq!(o["path"], json!(["greet", "transfer"]));
    assert!(o["summary"].as_str().unwrap().contains("张某"));
    assert_eq!(
        o["transcript"][1]["text"],
        "我的洗衣机坏了，我要投诉，转人工！"
    );
    assert_eq!(o["transcript"][1]["intent"], "complaint");
    assert_eq!(o["transcript"][1]["emotion"], "angry");

    // Who read the words is audited, once per key and call.
    let (_, again) = s.get(&li, "/api/agents/li/offer").await;
    assert_eq!(again["offer"]["transcript"], o["transcript"]);
    let reveals: Vec<_> = s
        .store
        .events_of_type("pii_revealed", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::PiiRevealed {
                actor,
                field,
                reason,
            } => Some((actor, field, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(reveals.len(), 1, "{reveals:?}");
    assert!(reveals[0].0.starts_with("api:desk-li#"));
    assert_eq!(
        (reveals[0].1.as_str(), reveals[0].2.as_str()),
        ("transcript", "screen_pop")
    );
    // Another agent's key sees nothing of it; an analyst neither; a supervisor does.
    let (st, v) = s.get(&wang, "/api/agents/li/offer").await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_your_agent")),
        "{v}"
    );
    let (_, v) = s.get(&wang, "/api/agents/wang/offer").await;
    assert_eq!(v["offer"], Value::Null, "{v}");
    let (st, _) = s.get(&s.analyst, "/api/agents/li/offer").await;
    assert_eq!(st, 403);
    let (st, v) = s.get(&s.operator, "/api/agents/li/offer").await;
    assert_eq!((st, &v["offer"]["call_id"]), (200, &json!("c1")));
    // An agent key cannot reveal: the call detail and customers refuse it.
    let (st, _) = s.get(&li, "/api/calls/c1?reveal=true").await;
    assert_eq!(st, 403);

    let dispo = |d: &str| Some(json!({"disposition": d, "note": "换货"}));
    // Not answered yet: not li's call to dispose of.
    let (st, v) = s
        .send(
            Method::POST,
            &li,
            "/api/calls/c1/disposition",
            dispo("resolved"),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (403, Some("not_your_call")),
        "{v}"
    );
    s.store
        .append_event(&ev(
            "c1",
            EventKind::TransferAnswered {
                queue: "after_sales".into(),
                agent: "li".into(),
                wait_ms: 3400,
            },
        ))
        .await
        .unwrap();
    let (_, v) = s.get(&li, "/api/agents/li/offer").await;
    assert_eq!(v["offer"]["status"], "on_call");
    for (key, path, body, status, code) in [
        (
            &wang,
            "/api/calls/c1/disposition",
            dispo("resolved"),
            403,
            "not_your_call",
        ),
        (
            &li,
            "/api/calls/c1/disposition",
            Some(json!({"disposition": "x", "agent": "wang"})),
            403,
            "not_your_agent",
        ),
        (
            &li,
            "/api/calls/c1/disposition",
            dispo(" "),
            422,
            "invalid_disposition",
        ),
        (
            &li,
            "/api/calls/c1/disposition",
            Some(json!({"disposition": "ok", "note": "长".repeat(501)})),
            422,
            "invalid_note",
        ),
        (
            &li,
            "/api/calls/nope/disposition",
            dispo("resolved"),
            404,
            "no_such_call",
        ),
        (
            &li,
            "/api/calls/c1/disposition",
            Some(json!({"code": "resolved"})),
            400,
            "bad_body",
        ),
        (
            &s.analyst,
            "/api/calls/c1/disposition",
            dispo("resolved"),
            403,
            "forbidden",
        ),
    ] {
        let (st, v) = s.send(Method::POST, key, path, body).await;
        assert_eq!(
            (st, v["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {v}"
        );
    }
    let (st, v) = s
        .send(
            Method::POST,
            &li,
            "/api/calls/c1/disposition",
            dispo("resolved"),
        )
        .await;
    assert_eq!((st, &v["agent"]), (201, &json!("li")), "{v}");
    // Stored as an event of the call (for webhooks and reports).
    let evs = s.store.call_events(&CallId("c1".into())).await.unwrap();
    assert!(evs.iter().any(|(_, e)| e.kind
        == EventKind::Disposition {
            agent: "li".into(),
            disposition: "resolved".into(),
            note: Some("换货".into()),
        }
        && e.customer == Some(CustomerId(1))));
    // A supervisor may record one for whoever answered.
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/calls/c1/disposition",
            dispo("escalated"),
        )
        .await;
    assert_eq!((st, &v["agent"]), (201, &json!("li")), "{v}");

    // The call ends: the offer reads `ended` with li's last disposition.
    s.store
        .append_event(&ev(
            "c1",
            EventKind::AttemptEnded {
                outcome: waihu_core::CallOutcome::Answered,
                sip_status: Some(200),
                duration_s: 95.0,
            },
        ))
        .await
        .unwrap();
    let (_, v) = s.get(&li, "/api/agents/li/offer").await;
    assert_eq!(v["offer"]["status"], "ended");
    assert_eq!(v["offer"]["disposition"]["disposition"], "escalated");

    // The desk report counts it: one call answered after 3.4 s, two dispositions.
    let (st, r) = s.get(&s.analyst, "/api/reports/desk").await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["queues"][0]["queue"], "after_sales");
    assert_eq!(r["queues"][0]["requested"], 1);
    assert_eq!(r["queues"][0]["answered"], 1);
    assert_eq!(r["queues"][0]["abandon_rate"], 0.0);
    assert_eq!(r["queues"][0]["wait"]["p50_ms"], 3400);
    assert_eq!(r["queues"][0]["wait"]["buckets"], json!([1, 0, 0, 0, 0]));
    assert_eq!(r["agents"][0]["agent"], "li");
    assert_eq!(r["agents"][0]["offered"], 1);
    assert_eq!(r["dispositions"], json!({"escalated": 1, "resolved": 1}));
    let (st, v) = s.get(&s.analyst, "/api/reports/desk?from=2026-13-01").await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("bad_date")));
    let (st, v) = s
        .get(
            &s.analyst,
            "/api/reports/desk?from=2026-12-05&to=2026-12-01",
        )
        .await;
    assert_eq!((st, v["error"]["code"].as_str()), (400, Some("bad_range")));
    s.stop().await;
}

#[tokio::test]
async fn a_supervisor_listen_in_is_an_audited_request_for_a_bridged_call_only() {
    let s = Server::start(waihu_server::Config::default()).await;
    offered_call(&s.store, "c-listen", "li").await;
    let body = json!({"uri": "sip:supervisor@127.0.0.1:5090"});
    // Offered, not yet answered: nothing to listen to.
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/calls/c-listen/listen",
            Some(body.clone()),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (409, Some("not_bridged")),
        "{v}"
    );
    s.store
        .append_event(&ev(
            "c-listen",
            EventKind::TransferAnswered {
                queue: "after_sales".into(),
                agent: "li".into(),
                wait_ms: 1500,
            },
        ))
        .await
        .unwrap();
    // Analysts and agents may not listen; a bad URI or an unknown call is refused.
    let li = agent_key(&s, "li").await;
    for key in [&s.analyst, &li] {
        let (st, _) = s
            .send(
                Method::POST,
                key,
                "/api/calls/c-listen/listen",
                Some(body.clone()),
            )
            .await;
        assert_eq!(st, 403);
    }
    for bad in [
        json!({"uri": "tel:+8613800000000"}),
        json!({"uri": "sip:a b@c"}),
        json!({"url": "sip:x@y"}),
    ] {
        let (st, v) = s
            .send(
                Method::POST,
                &s.operator,
                "/api/calls/c-listen/listen",
                Some(bad.clone()),
            )
            .await;
        assert!(st == 422 || st == 400, "{bad}: {st} {v}");
    }
    let (st, _) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/calls/nope/listen",
            Some(body.clone()),
        )
        .await;
    assert_eq!(st, 404);
    let (st, v) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/calls/c-listen/listen",
            Some(body),
        )
        .await;
    assert_eq!(st, 202, "{v}");
    // The audit: who asked, for which call, to which softphone.
    let reqs = s
        .store
        .events_of_type("listen_requested", 0, 10)
        .await
        .unwrap();
    assert_eq!(reqs.len(), 1);
    let (_, e) = &reqs[0];
    assert_eq!(e.call, Some(CallId("c-listen".into())));
    match &e.kind {
        EventKind::ListenRequested { supervisor, actor } => {
            assert_eq!(supervisor, "sip:supervisor@127.0.0.1:5090");
            assert!(actor.starts_with("api:"), "{actor}");
        }
        other => panic!("{other:?}"),
    }
    // Once the call is over there is nothing to listen to.
    s.store
        .append_event(&ev(
            "c-listen",
            EventKind::AttemptEnded {
                outcome: waihu_core::CallOutcome::Answered,
                sip_status: Some(200),
                duration_s: 60.0,
            },
        ))
        .await
        .unwrap();
    let (st, _) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/calls/c-listen/listen",
            Some(json!({"uri": "sip:supervisor@127.0.0.1:5090"})),
        )
        .await;
    assert_eq!(st, 409);
}
