//! The outbox sender against a real SMSC (Net::SMPP) on 127.0.0.1: a queued Chinese SMS is
//! submitted once, its receipt marks it delivered, and the callee's "退订" reply puts the
//! number on the DNC list.

use std::time::Duration;

use chrono::Utc;
use waihu_messaging::{run_sender, SenderConfig, TemplateSet};
use waihu_smpp::peer::{PeerOptions, PeerSmsc};
use waihu_smpp::{ClientConfig, Config};
use waihu_store::{NewMessage, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_sms_is_sent_once_delivered_and_the_opt_out_reply_lands_on_dnc() {
    if !waihu_testkit::have_peer("perl")
        || !(PeerSmsc::available()
            || waihu_testkit::have_peer_at(
                "libnet-smpp-perl",
                std::path::Path::new("/usr/share/perl5/Net/SMPP.pm"),
            ))
    {
        return;
    }
    let smsc = PeerSmsc::start(&PeerOptions {
        receipts: true,
        mo_reply: Some("退订".into()),
    })
    .expect("start SMSC");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([3; 32]))
        .await
        .unwrap();
    let set = TemplateSet::load(
        "signature: 【外呼】\ntemplates:\n  coupon:\n    zh: \"{{name}}您好，您的专属优惠券已到账，三十天内下单可直接抵扣，欢迎选购。如有疑问请拨打客服热线，我们将竭诚为您服务，祝您生活愉快。回复TD退订\"\n",
        &["name"],
    )
    .unwrap();
    let to = "+8613800000009";
    let r = set
        .render("coupon", to, &[("name".into(), "张伟".into())])
        .unwrap();
    assert_eq!(r.segments, 2);
    let now = Utc::now();
    let (id, _) = store
        .message_enqueue(
            &NewMessage {
                key: "fallback:test",
                customer: None,
                campaign: None,
                channel: "sms",
                template: "coupon",
                to,
                text: &r.text,
                segments: r.segments as u32,
            },
            now,
        )
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cfg = SenderConfig {
        smpp: ClientConfig::new(
            smsc.addr(),
            Config {
                system_id: "waihu".into(),
                ..Config::default()
            },
        ),
        from: "10690000".into(),
        poll: Duration::from_millis(50),
        // No campaign, any hour: the gate is tested in tests/gate.rs with a fixed clock.
        rules: waihu_messaging::MessageRules::unrestricted(),
    };
    let task = tokio::spawn(run_sender(store.clone(), cfg, stopped));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows = store.messages_list(None, 10).await.unwrap();
        let delivered = rows.iter().any(|m| m.id == id && m.status == "delivered");
        let dnc = store.dnc_contains(to, "global").await.unwrap();
        if delivered && dnc {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered+DNC in time: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let stats = task.await.unwrap().unwrap();
    assert_eq!(stats.sent, 1);
    assert_eq!(stats.opt_outs, 1);
    let submits = smsc
        .lines()
        .iter()
        .filter(|l| l.starts_with("SUBMIT "))
        .count();
    assert_eq!(submits, 2, "one message, two segments, sent once");
    let rows = store.messages_list(None, 10).await.unwrap();
    assert!(rows
        .iter()
        .any(|m| m.direction == "in" && m.template == "opt-out"));
}
