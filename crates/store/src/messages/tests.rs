use super::*;
use chrono::TimeZone;
use waihu_privacy::MasterKey;

fn t(min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 3, 8, min, 0).unwrap()
}

async fn store(dir: &std::path::Path) -> Store {
    Store::open_with_key(dir, &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap()
}

fn msg<'a>(key: &'a str, to: &'a str) -> NewMessage<'a> {
    NewMessage {
        key,
        customer: None,
        campaign: Some(CampaignId(3)),
        channel: "sms",
        template: "coupon",
        to,
        text: "【外呼】您的优惠券已到账",
        segments: 1,
    }
}

#[tokio::test]
async fn a_message_goes_queued_sending_sent_delivered_and_is_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let (id, new) = s
        .message_enqueue(&msg("fallback:c1", "+8613800000001"), t(0))
        .await
        .unwrap();
    assert!(new);
    let (again, new) = s
        .message_enqueue(&msg("fallback:c1", "+8613800000001"), t(1))
        .await
        .unwrap();
    assert_eq!((again, new), (id, false), "one message per key");

    let due = s.messages_due(10, t(1)).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].to, "+8613800000001");
    assert_eq!(due[0].text, "【外呼】您的优惠券已到账");
    assert!(s.message_claim(id, t(1)).await.unwrap());
    assert!(!s.message_claim(id, t(1)).await.unwrap(), "claimed once");
    assert!(s.messages_due(10, t(1)).await.unwrap().is_empty());
    s.message_sent(id, &["g1".into(), "g2".into()], t(2))
        .await
        .unwrap();
    assert_eq!(
        s.message_receipt("g1", true, "DELIVRD", t(3))
            .await
            .unwrap(),
        Some(id)
    );
    assert_eq!(s.messages_list(None, 10).await.unwrap()[0].status, "sent");
    s.message_receipt("g2", true, "DELIVRD", t(4))
        .await
        .unwrap();
    assert_eq!(
        s.message_receipt("nope", true, "DELIVRD", t(4))
            .await
            .unwrap(),
        None
    );
    let rows = s.messages_list(Some(CampaignId(3)), 10).await.unwrap();
    assert_eq!(rows[0].status, "delivered");
    assert_eq!(rows[0].delivered_at, Some(t(4)));
    assert!(s
        .messages_list(Some(CampaignId(4)), 10)
        .await
        .unwrap()
        .is_empty());
    let sent = s.events_of_type("message_sent", 0, 10).await.unwrap();
    assert_eq!(sent.len(), 1);

    // Neither the number nor the text is stored in clear.
    drop(s);
    let db = std::fs::read(dir.path().join(crate::DB_FILE)).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("waihu.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        let hay = String::from_utf8_lossy(&bytes);
        assert!(!hay.contains("8613800000001"));
        assert!(!hay.contains("优惠券"));
    }
}

#[tokio::test]
async fn a_kill_between_submit_and_commit_is_reconciled_to_unknown_never_resent() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let (id, _) = s
        .message_enqueue(&msg("fallback:c2", "+8613800000002"), t(0))
        .await
        .unwrap();
    assert!(s.message_claim(id, t(1)).await.unwrap());
    // The process dies here: the gateway may have the message.
    drop(s);
    let s = store(dir.path()).await;
    assert_eq!(s.messages_reconcile(t(5)).await.unwrap(), 1);
    assert!(s.messages_due(10, t(5)).await.unwrap().is_empty());
    let row = &s.messages_list(None, 10).await.unwrap()[0];
    assert_eq!(row.status, "unknown");
    // A late receipt still settles it.
    let (id2, _) = s
        .message_enqueue(&msg("fallback:c3", "+8613800000003"), t(6))
        .await
        .unwrap();
    assert!(s.message_claim(id2, t(6)).await.unwrap());
    s.message_requeue(id2).await.unwrap();
    assert_eq!(
        s.messages_due(10, t(6)).await.unwrap().len(),
        1,
        "never-sent goes back"
    );
}

#[tokio::test]
async fn an_opt_out_reply_puts_the_number_on_dnc_and_suppresses_queued_messages() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    s.message_enqueue(&msg("fallback:c4", "+8613800000004"), t(0))
        .await
        .unwrap();
    let plain = s
        .message_reply("+8613800000004", "好的，谢谢", "sms", t(1))
        .await
        .unwrap();
    assert!(!plain.opted_out);
    assert!(!s.dnc_contains("+8613800000004", "global").await.unwrap());
    let out = s
        .message_reply("+8613800000004", " 退订。", "sms", t(2))
        .await
        .unwrap();
    assert!(out.opted_out);
    assert!(s.dnc_contains("+8613800000004", "global").await.unwrap());
    assert_eq!(s.events_of_type("dnc_added", 0, 10).await.unwrap().len(), 1);
    assert!(s.messages_due(10, t(3)).await.unwrap().is_empty());
    let rows = s.messages_list(None, 10).await.unwrap();
    let statuses: Vec<_> = rows.iter().map(|r| r.status.as_str()).collect();
    assert_eq!(statuses, ["received", "received", "suppressed"]);
    assert_eq!(rows[0].template, "opt-out");
    assert_eq!(rows[0].campaign_id, Some(3));
}

#[tokio::test]
async fn a_receipt_that_beats_the_submit_answer_is_kept_and_applied() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    let (id, _) = s
        .message_enqueue(&msg("fallback:c5", "+8613800000005"), t(0))
        .await
        .unwrap();
    assert!(s.message_claim(id, t(0)).await.unwrap());
    assert_eq!(
        s.message_receipt("x1", true, "DELIVRD", t(1))
            .await
            .unwrap(),
        None
    );
    s.message_sent(id, &["x1".into(), "x2".into()], t(2))
        .await
        .unwrap();
    assert_eq!(s.messages_list(None, 1).await.unwrap()[0].status, "sent");
    s.message_receipt("x2", true, "DELIVRD", t(3))
        .await
        .unwrap();
    assert_eq!(
        s.messages_list(None, 1).await.unwrap()[0].status,
        "delivered"
    );
}

#[test]
fn opt_out_words() {
    for w in ["退订", "TD", "td", "STOP", "stop!", "N", " n ", "退订。"] {
        assert!(is_opt_out(w), "{w}");
    }
    for w in ["No thanks", "不要退订我", "nice", ""] {
        assert!(!is_opt_out(w), "{w}");
    }
}

#[tokio::test]
async fn the_report_counts_statuses_latency_replies_and_keeps_channels_apart() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    // Three SMS: delivered after 1 and 3 minutes, one failed; one push queued; one SMS
    // of another campaign.
    for (i, m) in [1u32, 3].iter().enumerate() {
        let key = format!("fallback:d{i}");
        let to = format!("+861380000001{i}");
        let (id, _) = s.message_enqueue(&msg(&key, &to), t(0)).await.unwrap();
        assert!(s.message_claim(id, t(0)).await.unwrap());
        s.message_sent(id, &[format!("g{i}")], t(1)).await.unwrap();
        s.message_receipt(&format!("g{i}"), true, "DELIVRD", t(1 + m))
            .await
            .unwrap();
    }
    let (id, _) = s
        .message_enqueue(&msg("fallback:f", "+8613800000020"), t(0))
        .await
        .unwrap();
    assert!(s.message_claim(id, t(0)).await.unwrap());
    s.message_failed(id, "refused", t(1)).await.unwrap();
    let mut push = msg("fallback:p", "+8613800000021");
    push.channel = "push";
    s.message_enqueue(&push, t(0)).await.unwrap();
    let mut other = msg("fallback:o", "+8613800000022");
    other.campaign = Some(CampaignId(4));
    s.message_enqueue(&other, t(0)).await.unwrap();
    s.message_reply("+8613800000010", "好的", "sms", t(9))
        .await
        .unwrap();
    s.message_reply("+8613800000011", "退订", "sms", t(9))
        .await
        .unwrap();

    let r = s.messages_report(Some(CampaignId(3))).await.unwrap();
    assert_eq!(r.outgoing.len(), 2, "{r:?}");
    let sms = r.outgoing.iter().find(|x| x.channel == "sms").unwrap();
    assert_eq!(
        (sms.total, sms.delivered, sms.failed, sms.queued),
        (3, 2, 1, 0)
    );
    assert_eq!(sms.delivery_p50_s, Some(60.0));
    assert_eq!(sms.delivery_p90_s, Some(180.0));
    let p = r.outgoing.iter().find(|x| x.channel == "push").unwrap();
    assert_eq!((p.total, p.queued, p.delivery_p50_s), (1, 1, None));
    assert_eq!(r.replies.len(), 1);
    assert_eq!((r.replies[0].replies, r.replies[0].opt_outs), (2, 1));
    let all = s.messages_report(None).await.unwrap();
    assert_eq!(all.outgoing.iter().map(|x| x.total).sum::<u64>(), 5);
}

async fn import(s: &Store, csv: &str) {
    let now = t(0);
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = s.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = s
        .begin_import("c.csv", src.encoding, &src.kinds.clone(), now)
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

fn conversation(at: DateTime<Utc>, customer: CustomerId, outcome: &str) -> Event {
    Event {
        at,
        customer: Some(customer),
        campaign: Some(CampaignId(3)),
        call: None,
        kind: EventKind::ConversationEnded {
            outcome: outcome.into(),
            level: None,
            path: vec![],
        },
    }
}

#[tokio::test]
async fn conversions_are_credited_to_the_last_delivered_message_within_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path()).await;
    import(
        &s,
        "phone,name\n13800000001,张伟\n13800000002,李娜\n13800000003,王芳\n",
    )
    .await;
    let c = |p: &'static str| {
        let s = s.clone();
        async move { s.customer_by_phone(p).await.unwrap().unwrap().id }
    };
    let (a, b, d) = (
        c("+8613800000001").await,
        c("+8613800000002").await,
        c("+8613800000003").await,
    );
    let day = chrono::Duration::days(1);
    let send = |key: &'static str,
                customer: CustomerId,
                to: &'static str,
                template: &'static str,
                at: DateTime<Utc>,
                delivered: bool| {
        let s = s.clone();
        async move {
            let (id, _) = s
                .message_enqueue(
                    &NewMessage {
                        customer: Some(customer),
                        template,
                        ..msg(key, to)
                    },
                    at,
                )
                .await
                .unwrap();
            assert!(s.message_claim(id, at).await.unwrap());
            s.message_sent(id, &[format!("g-{key}")], at).await.unwrap();
            s.message_receipt(&format!("g-{key}"), delivered, "x", at)
                .await
                .unwrap();
            id
        }
    };
    // Customer a: coupon, then reminder; converts after both → the reminder (last touch).
    send("a1", a, "+8613800000001", "coupon", t(0), true).await;
    send("a2", a, "+8613800000001", "reminder", t(0) + day, true).await;
    // Customer b: coupon delivered, converts 8 days later → outside the 7-day window.
    send("b1", b, "+8613800000002", "coupon", t(0), true).await;
    // Customer d: the message failed → no touch; converts anyway.
    send("d1", d, "+8613800000003", "coupon", t(0), false).await;
    s.append_events(&[
        conversation(t(0) + day * 2, a, "converted"),
        // Not a conversion outcome.
        conversation(t(0) + day * 2, a, "refused"),
        // Before any message: not credited.
        conversation(t(0) - day, a, "paid"),
        conversation(t(0) + day * 8, b, "paid"),
        conversation(t(0) + day, d, "converted"),
    ])
    .await
    .unwrap();
    let r = s.messages_report(None).await.unwrap();
    let row = |tpl: &str| {
        r.outgoing
            .iter()
            .find(|x| x.template == tpl)
            .unwrap()
            .clone()
    };
    assert_eq!(row("reminder").conversions, 1);
    assert_eq!(row("reminder").conversion_rate, Some(1.0));
    assert_eq!(row("coupon").conversions, 0, "{r:?}");
    assert_eq!(row("coupon").conversion_rate, Some(0.0));
    // A wider window credits b's coupon too.
    let wide = Attribution {
        window: day * 10,
        ..Attribution::default()
    };
    let r = s.messages_report_with(None, &wide).await.unwrap();
    assert_eq!(
        r.outgoing
            .iter()
            .find(|x| x.template == "coupon")
            .unwrap()
            .conversions,
        1
    );
}
