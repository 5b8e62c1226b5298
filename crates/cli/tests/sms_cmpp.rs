//! `waihu messages send --cmpp --cmpp-version 3.0` against a CMPP 3.0 gateway on 127.0.0.1
//! (the peer checks the CONNECT's version and authenticator with its own secret): a queued
//! SMS of a campaign goes out once, its status report marks it delivered, and the "TD"
//! reply puts the number on DNC. (The outbox over CMPP 2.0 is crates/messaging's
//! cmpp_sms test.)
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use waihu_cmpp::pdu::Version;
use waihu_cmpp::peer::{PeerGateway, PeerOptions, Seen};
use waihu_store::{NewMessage, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_send_over_cmpp_delivers_and_takes_the_opt_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let to = "+8613800000021";
    {
        let store = Store::open(&dir).await.unwrap();
        let c = store
            .campaign_create(
                "复购",
                "name: 复购\ntimezone: Asia/Shanghai\nsegments: []\nmessages:\n  quiet_hours: []\n",
                "test",
                Utc::now(),
            )
            .await
            .unwrap();
        store
            .message_enqueue(
                &NewMessage {
                    key: "fallback:cmpp-cli",
                    customer: None,
                    campaign: Some(c),
                    channel: "sms",
                    template: "coupon",
                    to,
                    text: "【外呼】您的优惠券已到账，回复TD退订",
                    segments: 1,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        store.close().await;
    }
    let gateway = PeerGateway::start(PeerOptions {
        source_addr: "901234".into(),
        shared_secret: "cli-secret".into(),
        reports: true,
        mo_reply: Some("TD".into()),
        version: Version::V3_0,
    })
    .await
    .unwrap();
    let run = |extra: &[&str], secret: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_waihu"));
        c.arg("--data-dir")
            .arg(&dir)
            .args(["messages", "send", "--cmpp", &gateway.addr()])
            .args(extra)
            .env("WAIHU_CMPP_SECRET", secret)
            .env_remove("WAIHU_MASTER_KEY")
            .env_remove("WAIHU_DATA_DIR");
        c
    };

    // A bad enterprise code is refused before anything is sent.
    let out = tokio::task::spawn_blocking({
        let mut c = run(&["--sp-code", "1234567", "--seconds", "1"], "cli-secret");
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sp-code"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(gateway.seen().is_empty());

    // So is a version CMPP does not have.
    let out = tokio::task::spawn_blocking({
        let mut c = run(
            &[
                "--sp-code",
                "901234",
                "--cmpp-version",
                "4",
                "--seconds",
                "1",
            ],
            "cli-secret",
        );
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2.0 or 3.0"), "{err}");
    assert!(gateway.seen().is_empty());

    let out = tokio::task::spawn_blocking({
        let mut c = run(
            &[
                "--sp-code",
                "901234",
                "--service-id",
                "WAIHU",
                "--from",
                "1069001234",
                "--cmpp-version",
                "3.0",
                "--seconds",
                "3",
            ],
            "cli-secret",
        );
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("短信 sms (CMPP): sent 1, failed 0, unknown 0 (0 left unknown by an earlier run), reports 1, replies 1 (1 opt-outs)"),
        "{stdout}"
    );
    assert!(
        matches!(
            gateway.seen()[0],
            Seen::Connect {
                version: 0x30,
                accepted: true,
                ..
            }
        ),
        "{:?}",
        gateway.seen()
    );
    let subs = gateway.submits();
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].dest, ["13800000021"]);
    assert_eq!(subs[0].src_id, "1069001234");

    let store = Store::open(&dir).await.unwrap();
    let rows = store.messages_list(None, 10).await.unwrap();
    assert!(
        rows.iter()
            .any(|m| m.direction == "out" && m.status == "delivered"),
        "{rows:?}"
    );
    assert!(store.dnc_contains(to, "global").await.unwrap());
    store.close().await;
    let _ = Duration::ZERO;
}
