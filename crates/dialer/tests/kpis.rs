//! One campaign, one set of figures: what `waihu demo` prints about a stored
//! campaign, what `waihu run` prints about its own calls and what the API
//! (and so the dashboard) serves all come from `waihu_core::kpi`. Calls are
//! stored the way the dialer stores them (call row + `attempt_started`, then
//! `attempt_ended` and, for answered calls, `conversation_ended`); the mix
//! includes voicemail, which counts as connected everywhere.
use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};
use waihu_dialer::lifecycle::{campaign_kpis, Figures};
use waihu_dialer::{CallResult, StopReason, Summary};
use waihu_privacy::MasterKey;
use waihu_store::{CallFinish, CallStart, Store};

/// (outcome, business outcome, intention level, duration s)
const CALLS: [(CallOutcome, Option<&str>, Option<&str>, f64); 9] = [
    (CallOutcome::Answered, Some("confirmed"), Some("A"), 62.0),
    (CallOutcome::Answered, Some("hangup"), None, 12.5),
    (CallOutcome::Answered, Some("refused"), Some("C"), 40.0),
    (CallOutcome::Voicemail, None, None, 21.0),
    (CallOutcome::Voicemail, None, None, 18.5),
    (CallOutcome::Busy, None, None, 0.0),
    (CallOutcome::NoAnswer, None, None, 30.0),
    (CallOutcome::PoweredOff, None, None, 0.0),
    (CallOutcome::Answered, Some("confirmed"), Some("B"), 55.0),
];

fn event(at: DateTime<Utc>, campaign: CampaignId, call: &CallId, kind: EventKind) -> Event {
    Event {
        at,
        customer: Some(CustomerId(1)),
        campaign: Some(campaign),
        call: Some(call.clone()),
        kind,
    }
}

async fn store_calls(store: &Store, campaign: CampaignId, t0: DateTime<Utc>) -> Vec<CallResult> {
    let mut results = Vec::new();
    for (i, (outcome, business, level, duration_s)) in CALLS.into_iter().enumerate() {
        let at = t0 + chrono::Duration::minutes(3 * i as i64);
        let call_id = CallId(format!("{}-{}-{i}", campaign.0, at.format("%Y%m%d%H%M%S")));
        let start = CallStart {
            call_id: call_id.clone(),
            campaign: Some(campaign),
            customer: Some(CustomerId(1)),
            script: "order_confirmation.en".into(),
            lang: "en".into(),
            at,
        };
        let started = event(
            at,
            campaign,
            &call_id,
            EventKind::AttemptStarted {
                phone: PhoneIndex(format!("{i:032}")),
                tz: "America/New_York".into(),
                local_time: "2026-11-02T09:30:00-05:00".into(),
                caller_id: None,
                channel: "voice".into(),
            },
        );
        store.call_started_with(&start, &[started]).await.unwrap();
        let end = at + chrono::Duration::seconds(duration_s as i64 + 5);
        let mut events = vec![event(
            end,
            campaign,
            &call_id,
            EventKind::AttemptEnded {
                outcome,
                sip_status: Some(200),
                duration_s,
            },
        )];
        if let Some(b) = business {
            events.push(event(
                end,
                campaign,
                &call_id,
                EventKind::ConversationEnded {
                    outcome: b.into(),
                    level: level.map(String::from),
                    path: vec!["opening".into()],
                },
            ));
        }
        let fin = CallFinish {
            at: end,
            outcome,
            sip_status: Some(200),
            duration_s,
            business_outcome: business.map(String::from),
            level: level.map(String::from),
            path: vec!["opening".into()],
            path_variants: Vec::new(),
            recording: None,
            quality: None,
        };
        store
            .call_finished_with(&call_id, &fin, &events)
            .await
            .unwrap();
        results.push(CallResult {
            call_id,
            phone: format!("+1212555{i:04}"),
            outcome,
            business: business.map(String::from),
            level: level.map(String::from),
            duration_s,
            turns: 0,
            barge_ins: 0,
            knowledge_answers: 0,
            knowledge_fallbacks: 0,
            announcement: None,
            voice: None,
            analysis: None,
            latencies: Vec::new(),
            speculation: Default::default(),
            handoff: Default::default(),
            conversation: None,
            errors: Vec::new(),
        });
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_run_and_api_report_the_same_figures_for_one_campaign() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 2, 14, 30, 0).unwrap();
    let campaign = store
        .campaign_create("kpi-check", "name: kpi-check\n", "test", t0)
        .await
        .unwrap();
    // Another campaign's calls must not leak into this one's figures.
    let other = store
        .campaign_create("other", "name: other\n", "test", t0)
        .await
        .unwrap();
    let calls = store_calls(&store, campaign, t0).await;
    store_calls(&store, other, t0 + chrono::Duration::hours(1)).await;

    // What `waihu demo` prints about the stored campaign.
    let stored = campaign_kpis(&store, campaign).await.unwrap();
    let demo = Figures::from(&stored);
    // What `waihu run` prints about the calls it made.
    let summary = Summary {
        contacts: CALLS.len(),
        skipped_contacts: Vec::new(),
        reconciled: 0,
        prior_attempts: 0,
        history_attempts: 0,
        attempts: CALLS.len(),
        outcomes: BTreeMap::new(),
        business: BTreeMap::new(),
        levels: BTreeMap::new(),
        callbacks: 0,
        dnc_added: 0,
        fallback_messages: 0,
        max_live: 1,
        abandoned: 0,
        agent_talk_s: 0.0,
        stopped_by: StopReason::EveryContactFinished,
        calls,
    };
    assert_eq!(summary.kpis(), stored);
    assert_eq!(Figures::from(&summary.kpis()), demo);

    // What the API serves (the dashboard prints these).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(waihu_server::serve(
        listener,
        store.clone(),
        waihu_server::Config {
            open: true,
            ..waihu_server::Config::default()
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let api: serde_json::Value =
        reqwest::get(format!("http://{addr}/api/kpis?campaign={}", campaign.0))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    let totals = &api["totals"];
    assert_eq!(*totals, serde_json::to_value(&stored).unwrap(), "{api}");

    // The figures themselves: voicemail counts as connected.
    assert_eq!(demo.attempts, 9);
    assert_eq!(demo.connect_rate, 6.0 / 9.0);
    assert_eq!(totals["connect_rate"].as_f64(), Some(demo.connect_rate));
    assert_eq!(totals["conversion_rate"].as_f64(), Some(2.0 / 6.0));
    assert_eq!(demo.outcomes["voicemail"], 2);
    assert!(!demo.outcomes.contains_key("congestion"));
    assert_eq!(
        demo.business,
        BTreeMap::from([
            ("confirmed".to_string(), 2),
            ("hangup".to_string(), 1),
            ("refused".to_string(), 1)
        ])
    );
    assert_eq!(
        demo.levels,
        BTreeMap::from([
            ("A".to_string(), 1),
            ("B".to_string(), 1),
            ("C".to_string(), 1)
        ])
    );
}

#[test]
fn stop_reasons_read_as_before_and_only_completed_work_finishes_a_campaign() {
    let day_over = StopReason::DrainLimit {
        reason: Box::new(StopReason::EndOfDay),
        live: 2,
    };
    assert_eq!(
        day_over.to_string(),
        "end of the campaign day; 2 calls still live at the drain limit"
    );
    assert_eq!(
        serde_json::to_value(StopReason::EveryContactFinished).unwrap(),
        "every contact finished"
    );
    assert_eq!(
        StopReason::Campaign(waihu_core::CampaignState::Stopped).to_string(),
        "campaign stopped"
    );
    assert!(StopReason::EveryContactFinished.completes_campaign());
    assert!(day_over.completes_campaign());
    assert!(!StopReason::Shutdown.completes_campaign());
    assert!(!StopReason::DrainLimit {
        reason: Box::new(StopReason::Shutdown),
        live: 1
    }
    .completes_campaign());
    assert!(!StopReason::Campaign(waihu_core::CampaignState::Stopped).completes_campaign());
}
