//! Kill -9 of the real sender process between submit and commit: the provider (a local
//! Twilio peer that records the message and holds its answer) has the message, the process
//! dies before it can record `sent`; on restart the message is marked `unknown` and is not
//! sent again — the provider saw exactly one request.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use waihu_store::{NewMessage, Store};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_sender_never_sends_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    {
        let store = Store::open(&dir).await.unwrap();
        let c = store
            .campaign_create(
                "US renewals",
                "name: US renewals\ntimezone: UTC\nsegments: []\nmessages:\n  quiet_hours: []\n",
                "test",
                Utc::now(),
            )
            .await
            .unwrap();
        store
            .message_enqueue(
                &NewMessage {
                    key: "fallback:kill",
                    customer: None,
                    campaign: Some(c),
                    channel: "sms",
                    template: "renewal",
                    to: "+12125550123",
                    text: "Your renewal is due. Reply STOP to opt out.",
                    segments: 1,
                },
                Utc::now(),
            )
            .await
            .unwrap();
        store.close().await;
    }
    let peer =
        waihu_smshttp::peer::twilio_holding("ACkill", "kill-token", &[], Duration::from_secs(60))
            .await
            .unwrap();
    let cfg = tmp.path().join("sms-http.yaml");
    std::fs::write(
        &cfg,
        format!(
            "default: twilio\ntwilio:\n  base_url: {}\n  account_sid: ACkill\n  auth_token_env: WAIHU_TEST_KILL_TOKEN\n  from: \"+15005550006\"\n",
            peer.url()
        ),
    )
    .unwrap();
    let send = |seconds: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_waihu"));
        c.arg("--data-dir")
            .arg(&dir)
            .args(["messages", "send", "--sms-http"])
            .arg(&cfg)
            .args(["--seconds", seconds])
            .env("WAIHU_TEST_KILL_TOKEN", "kill-token")
            .env_remove("WAIHU_MASTER_KEY")
            .env_remove("WAIHU_DATA_DIR");
        c
    };
    let mut child = send("60")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while peer.accepted().is_empty() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the sender never reached the provider");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The provider has it and has not answered: kill -9 now.
    child.kill().unwrap();
    child.wait().unwrap();

    let mut again = send("2");
    let out = tokio::task::spawn_blocking(move || again.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("sent 0") && stdout.contains("(1 left unknown by an earlier run)"),
        "{stdout}"
    );
    assert_eq!(peer.accepted().len(), 1, "sent once, never again");

    let list = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["messages", "list", "--json"])
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(text.contains("\"status\":\"unknown\""), "{text}");
    assert!(
        text.contains("interrupted between submit and acknowledgement"),
        "{text}"
    );
}
