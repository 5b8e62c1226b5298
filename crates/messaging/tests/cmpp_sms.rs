//! The outbox sender over CMPP 2.0 against a gateway on 127.0.0.1 (`waihu_cmpp::peer`,
//! which checks the CONNECT authenticator): a queued Chinese SMS is submitted once in two
//! parts, the gateway's status reports mark it delivered, and the callee's "退订" reply
//! is stored and puts the number on the DNC list.

use std::time::Duration;

use chrono::Utc;
use waihu_cmpp::peer::{PeerGateway, PeerOptions};
use waihu_messaging::{run_cmpp_sender, CmppSenderConfig, TemplateSet};
use waihu_store::{NewMessage, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fallback_sms_over_cmpp_is_sent_once_delivered_and_the_opt_out_reply_lands_on_dnc() {
    let gateway = PeerGateway::start(PeerOptions {
        source_addr: "901234".into(),
        shared_secret: "s3cret".into(),
        reports: true,
        mo_reply: Some("退订".into()),
        version: waihu_cmpp::pdu::Version::V2_0,
    })
    .await
    .expect("start gateway");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([4; 32]))
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
    let (id, _) = store
        .message_enqueue(
            &NewMessage {
                key: "fallback:cmpp-test",
                customer: None,
                campaign: None,
                channel: "sms",
                template: "coupon",
                to,
                text: &r.text,
                segments: r.segments as u32,
            },
            Utc::now(),
        )
        .await
        .unwrap();

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let cfg = CmppSenderConfig {
        cmpp: waihu_cmpp::ClientConfig::new(
            gateway.addr(),
            waihu_cmpp::Config {
                source_addr: "901234".into(),
                shared_secret: "s3cret".into(),
                service_id: "WAIHU".into(),
                src_id: "1069001234".into(),
                ..waihu_cmpp::Config::default()
            },
        ),
        poll: Duration::from_millis(50),
        rules: waihu_messaging::MessageRules::unrestricted(),
    };
    let task = tokio::spawn(run_cmpp_sender(store.clone(), cfg, stopped));
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
    assert_eq!(stats.receipts, 2, "one status report per part");
    assert_eq!(stats.opt_outs, 1);
    let subs = gateway.submits();
    assert_eq!(subs.len(), 2, "one message, two parts, sent once");
    assert!(subs.iter().all(|s| s.dest == ["13800000009"]));
    let rows = store.messages_list(None, 10).await.unwrap();
    assert!(rows
        .iter()
        .any(|m| m.direction == "in" && m.template == "opt-out"));
}
