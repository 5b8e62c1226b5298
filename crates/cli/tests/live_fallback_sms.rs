//! The SMS fallback end to end: `waihu run` dials virtual callees on loopback (real SIP and
//! RTP through the engine, the dialer and the bot) under a rehearsal clock; two customers
//! talk, one line is busy and two ring out, one of them a customer whose imported channel
//! preference (联系偏好: 不接收) takes no messages. The campaign's `fallback:` rule (an SMS
//! after one unanswered attempt) makes the planner queue a message for exactly the two other
//! customers who did not answer, rendered from `examples/messages.yaml`. Then `waihu messages send` delivers
//! the outbox over SMPP to a real SMSC (Net::SMPP, `waihu_smpp::peer`), whose delivery
//! receipts come back and are stored: each unanswered customer got exactly one message,
//! delivered; the answered ones none; the SMSC saw one submit per unanswered number.
//!
//! Needs espeak-ng, the Whisper tiny.en model and Net::SMPP (scripts/setup.sh installs
//! them).
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use waihu_sim::{Persona, Population};
use waihu_smpp::peer::{PeerOptions, PeerSmsc};

mod common;
use common::{assert_whisper_tiny_en, import_orders, json_lines, repo, run_live, waihu};

/// The English demo campaign with no retries for unanswered calls (one attempt each keeps
/// the run short), an SMS fallback after the first unanswered attempt, and a message gate
/// without quiet hours or a delay limit: the sender below runs on the system clock, days
/// after the rehearsal clock queued the messages, at whatever hour the test runs.
const CAMPAIGN: &str = r#"name: fallback-sms-live
id: 1
timezone: America/New_York
country: US
windows:
  default: ["09:00-20:00"]
caps: {per_number_per_day: 3, per_number_per_week: 5, max_attempts: 3}
retry:
  busy: stop
  no_answer: stop
  powered_off: stop
  voicemail: stop
  congestion: stop
  failed: stop
  rejected: stop
  invalid_number: stop
callback: {honour: true}
consent: {required: false}
trunks:
  - {name: loopback, channels: 20, cps: 10}
caller_ids:
  local_presence: true
  pool:
    - {number: "+12125550100", region: US, daily_cap: 1000}
segments:
  - {name: default, script: order_confirmation, value: 1.0}
fallback:
  - {after_unanswered: 1, channel: sms, template: missed_call_sms}
messages:
  quiet_hours: []
  max_delay_hours: 100000
pacing: {mode: progressive}
ranking: {policy: fifo}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_customers_of_a_live_campaign_get_one_fallback_sms_each_delivered_over_smpp() {
    if !waihu_testkit::have_peer("perl")
        || !(PeerSmsc::available()
            || waihu_testkit::have_peer_at(
                "libnet-smpp-perl",
                Path::new("/usr/share/perl5/Net/SMPP.pm"),
            ))
        || !waihu_testkit::have_peer("espeak-ng")
    {
        return;
    }
    assert_whisper_tiny_en();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // (phone, persona, stored outcome of its one call)
    let people = [
        ("+12125550301", Persona::NotInterested, "answered"),
        ("+12125550302", Persona::Busy, "busy"),
        ("+12125550303", Persona::NoAnswer, "no_answer"),
        ("+12125550304", Persona::NotInterested, "answered"),
        ("+12125550305", Persona::NoAnswer, "no_answer"),
    ];
    // Ed takes no follow-up messages (联系偏好: 不接收): unanswered, but no SMS.
    let no_messages = "+12125550305";
    let names = ["Ann Lee", "Bo Chan", "Cy Ward", "Di Moss", "Ed Ray"];
    import_orders(
        d,
        &people
            .iter()
            .zip(names)
            .map(|((phone, ..), name)| (*phone, name))
            .collect::<Vec<_>>(),
    );
    // A second file adds the preference; attributes merge on re-import.
    let prefs = d.join("prefs.csv");
    std::fs::write(
        &prefs,
        format!("name,phone,timezone,联系偏好\nEd Ray,{no_messages},America/New_York,不接收\n"),
    )
    .unwrap();
    waihu(
        d,
        &[
            "customers",
            "import",
            prefs.to_str().unwrap(),
            "--region",
            "US",
        ],
    );
    let pop = Population::new(7)
        .with_map(
            people
                .iter()
                .map(|(p, persona, _)| (*p, *persona))
                .collect::<Vec<(&str, Persona)>>(),
        )
        .always_answer();
    // Ring out with 480 after a second instead of the dialer's 25 s ring timeout.
    let sim = common::english_callees(pop, |o| o.no_answer_ring = Duration::from_secs(1)).await;

    let campaign = d.join("campaign.yaml");
    std::fs::write(&campaign, CAMPAIGN).unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let messages = repo().join("examples/messages.yaml");
    let v = run_live(
        d,
        &campaign,
        &script,
        &sim.addr.to_string(),
        &[
            "--var",
            "shop=BestBuy Online",
            "--messages",
            messages.to_str().unwrap(),
            "--concurrency",
            "4",
            "--hours",
            "4",
        ],
    )
    .await;
    sim.shutdown().await;
    let summary = &v["summary"];
    assert_eq!(
        summary["calls"].as_array().map(Vec::len),
        Some(people.len()),
        "one call each (no retries): {summary}"
    );
    let outcome_of: BTreeMap<String, String> = summary["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["phone"].as_str().unwrap().to_string(),
                c["outcome"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let unanswered: Vec<&str> = people
        .iter()
        .filter(|(p, _, outcome)| *outcome != "answered" && *p != no_messages)
        .map(|(p, ..)| *p)
        .collect();
    assert_eq!(
        summary["fallback_messages"], 2,
        "the planner asks for one SMS per unanswered customer: {summary}"
    );
    let queued = json_lines(&waihu(d, &["messages", "list", "--json"]));
    assert_eq!(queued.len(), 2, "queued by the campaign: {queued:?}");
    assert!(queued.iter().all(|m| m["status"] == "queued"), "{queued:?}");

    // The product's sender, against a real SMSC that sends delivery receipts.
    let smsc = PeerSmsc::start(&PeerOptions {
        receipts: true,
        mo_reply: None,
    })
    .expect("start SMSC");
    let addr = smsc.addr();
    let dd = d.to_path_buf();
    tokio::task::spawn_blocking(move || {
        waihu(
            &dd,
            &[
                "messages",
                "send",
                "--smsc",
                &addr,
                "--from",
                "12125550100",
                "--seconds",
                "5",
            ],
        )
    })
    .await
    .unwrap();

    // What the store holds: one message per unanswered customer, delivered by receipt.
    let rows = json_lines(&waihu(d, &["messages", "list", "--json"]));
    let store = waihu_store::Store::open(d).await.unwrap();
    let mut got: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for m in &rows {
        assert_eq!(m["direction"], "out", "no replies were sent: {m}");
        let id = m["customer_id"]
            .as_i64()
            .expect("a campaign message has a customer");
        let c = store
            .customer(waihu_core::CustomerId(id))
            .await
            .unwrap()
            .expect("customer");
        got.entry(c.phone).or_default().push(m.clone());
    }
    store.close().await;
    let report = format!("outcomes {outcome_of:?}\nmessages {rows:#?}");
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        unanswered,
        "messages went to exactly the unanswered customers\n{report}"
    );
    for (phone, ms) in &got {
        assert_eq!(ms.len(), 1, "{phone}: exactly one message\n{report}");
        let m = &ms[0];
        assert_eq!(m["template"], "missed_call_sms", "{report}");
        assert_eq!(m["channel"], "sms", "{report}");
        assert_eq!(
            m["status"], "delivered",
            "{phone}: receipt stored\n{report}"
        );
        assert!(m["delivered_at"].is_string(), "{report}");
        assert!(m["sent_at"].is_string(), "{report}");
    }
    for (phone, persona, outcome) in people {
        assert_eq!(
            outcome_of.get(phone).map(String::as_str),
            Some(outcome),
            "{persona}\n{report}"
        );
    }

    // The SMSC saw one submit per unanswered number (one segment each), and nothing else.
    let mut dests: Vec<String> = smsc
        .lines()
        .iter()
        .filter(|l| l.starts_with("SUBMIT "))
        .filter_map(|l| l.split(' ').nth(2).map(String::from))
        .collect();
    dests.sort();
    let want: Vec<String> = unanswered
        .iter()
        .map(|p| p.trim_start_matches('+').to_string())
        .collect();
    assert_eq!(dests, want, "SMSC log: {:?}", smsc.lines());

    // The event log: each message handed to the sender once (gated) and sent once.
    for (kind, n) in [("message_submitted", 2), ("message_sent", 2)] {
        let ev = json_lines(&waihu(
            d,
            &["events", "list", "--type", kind, "--limit", "100", "--json"],
        ));
        assert_eq!(ev.len(), n, "{kind}: {ev:?}");
    }
}
