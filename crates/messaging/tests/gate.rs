//! The message gate over a real store, with a fixed clock: messages queued at night in
//! the recipient's zone wait for the morning, the number's daily cap pushes the second
//! message to the next day, a message that could only go too late is suppressed with the
//! reason, and the independent compliance checker, reading the store's event log, finds
//! no violation in what the gate let through (and does find one when a submission is
//! moved into quiet hours).

use chrono::{DateTime, Duration, Utc};
use waihu_compliance::{CampaignRules, ViolationKind};
use waihu_core::EventKind;
use waihu_messaging::{Gate, MessageRules};
use waihu_store::{NewMessage, Store};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

const SPEC: &str = "name: 回访短信\ntimezone: Asia/Shanghai\nsegments:\n  - {name: a, script: s}\nmessages:\n  quiet_hours: [\"21:00-08:00\"]\n  per_number_per_day: 1\n  per_number_per_week: 3\n  max_delay_hours: 24\n";

async fn import(store: &Store, csv: &str, now: DateTime<Utc>) {
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import("gate.csv", src.encoding, &src.kinds.clone(), now)
        .await
        .unwrap();
    loop {
        let batch = src.next_batch(100).unwrap();
        if batch.is_empty() {
            break;
        }
        let ok: Vec<_> = batch.into_iter().map(|r| r.unwrap()).collect();
        imp.write(&ok, now).await.unwrap();
    }
    imp.finish(0, now).await.unwrap();
}

async fn admit_due(store: &Store, gate: &mut Gate, now: DateTime<Utc>) -> Vec<String> {
    let mut admitted = Vec::new();
    for m in store.messages_due(100, now).await.unwrap() {
        if gate.admit(store, &m, now).await.unwrap() {
            admitted.push(m.key.clone());
        }
    }
    admitted
}

#[tokio::test]
async fn quiet_hours_and_caps_defer_and_the_checker_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    // Friday 2026-12-04 22:00 in Shanghai = 09:00 in New York.
    let t0 = at("2026-12-04T14:00:00Z");
    import(
        &store,
        "phone,name\n13800000001,张伟\n13800000002,李娜\n+12125550123,Ann\n",
        t0 - Duration::days(3),
    )
    .await;
    let campaign = store
        .campaign_create("回访短信", SPEC, "test", t0 - Duration::days(3))
        .await
        .unwrap();
    let enqueue = |key: &'static str, to: &'static str, created: DateTime<Utc>| {
        let store = store.clone();
        async move {
            let c = store.customer_by_phone(to).await.unwrap().unwrap();
            store
                .message_enqueue(
                    &NewMessage {
                        key,
                        customer: Some(c.id),
                        campaign: Some(campaign),
                        channel: "sms",
                        template: "coupon",
                        to,
                        text: "【外呼】您的优惠券已到账，回复TD退订",
                        segments: 1,
                    },
                    created,
                )
                .await
                .unwrap()
                .0
        }
    };
    enqueue("a", "+8613800000001", t0).await;
    enqueue("b", "+8613800000001", t0).await;
    enqueue("ny", "+12125550123", t0).await;
    // Queued 30 h ago: the next allowed time (08:00 tomorrow) is past max_delay_hours 24.
    let stale = enqueue("stale", "+8613800000002", t0 - Duration::hours(30)).await;

    let mut gate = Gate::new(MessageRules::default());
    // 22:00 in Shanghai: only New York (09:00 there) goes.
    assert_eq!(admit_due(&store, &mut gate, t0).await, vec!["ny"]);
    let rows = store.messages_list(Some(campaign), 10).await.unwrap();
    let row = |id: i64| rows.iter().find(|r| r.id == id).unwrap().clone();
    let s = row(stale);
    assert_eq!(s.status, "suppressed");
    assert!(
        s.error.as_deref().unwrap().contains("24 h"),
        "{:?}",
        s.error
    );
    let a = rows.iter().find(|r| r.status == "queued").unwrap();
    assert!(
        a.error
            .as_deref()
            .unwrap()
            .starts_with("deferred: quiet hours 21:00-08:00"),
        "{:?}",
        a.error
    );
    // Deferred messages are not due in the night.
    assert!(store
        .messages_due(100, at("2026-12-04T23:59:00Z"))
        .await
        .unwrap()
        .is_empty());
    // 08:00 Saturday: one of the two to the same number goes. The cap (1 a day) would
    // hold the other until 08:00 Sunday, 34 h after it was queued, past max_delay_hours
    // 24: it is suppressed, and the reason says why.
    let t1 = at("2026-12-05T00:00:00Z");
    assert_eq!(admit_due(&store, &mut gate, t1).await, vec!["a"]);
    assert!(admit_due(&store, &mut gate, at("2026-12-05T10:00:00Z"))
        .await
        .is_empty());
    assert!(admit_due(&store, &mut gate, at("2026-12-06T00:00:00Z"))
        .await
        .is_empty());
    let rows = store.messages_list(Some(campaign), 10).await.unwrap();
    let statuses: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.template.clone(), r.status.clone()))
        .collect();
    assert_eq!(
        rows.iter().filter(|r| r.status == "sending").count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        rows.iter().filter(|r| r.status == "suppressed").count(),
        2,
        "{statuses:?}"
    );
    let b = rows
        .iter()
        .filter(|r| r.status == "suppressed")
        .find(|r| r.id != stale)
        .unwrap();
    assert!(
        b.error.as_deref().unwrap().contains("cap 1"),
        "{:?}",
        b.error
    );

    // The checker, from the log alone.
    let events: Vec<_> = store
        .events(0, 10_000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    let submitted: Vec<_> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::MessageSubmitted { .. }))
        .cloned()
        .collect();
    assert_eq!(submitted.len(), 2);
    let mut rules = CampaignRules::from_yaml("campaign.yaml", SPEC).unwrap();
    rules.id = campaign.0;
    let r = waihu_compliance::check(vec![rules.clone()], events.clone());
    assert!(r.ok(), "{}", waihu_compliance::render_text(&r));
    assert_eq!(r.messages, 2);
    // Move the Shanghai message to 23:00 local (as a gate bug would have sent it): caught.
    let mut forged = events.clone();
    for e in forged.iter_mut() {
        if let EventKind::MessageSubmitted { tz, local_time, .. } = &mut e.kind {
            if tz == "Asia/Shanghai" {
                e.at = at("2026-12-04T15:00:00Z");
                *local_time = "2026-12-04T23:00:00+08:00".into();
            }
        }
    }
    let r = waihu_compliance::check(vec![rules], forged);
    assert_eq!(
        r.by_kind.get(&ViolationKind::MessageQuietHours),
        Some(&1),
        "{}",
        waihu_compliance::render_text(&r)
    );
}
