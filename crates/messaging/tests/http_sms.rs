//! SMS through HTTP aggregators against local peers on 127.0.0.1 that verify the
//! signatures as the providers do: each campaign's messages go through the gateway the
//! gateways file names for it (Twilio for one, Alibaba Cloud for the other), exactly once;
//! delivery reports (Twilio's signed status callbacks, Alibaba's QuerySendDetails) mark
//! them delivered or failed; a forged callback is refused and changes nothing; a wrong
//! secret is refused by the peer and fails the message with the provider's reason.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use waihu_messaging::{run_http_sender, HttpSenderConfig, HttpStats};
use waihu_smshttp::{peer, HttpSmsClient, SmsHttpConfig};
use waihu_store::{MessageRow, NewMessage, Store};

const US: &str = "US renewals";
const CN: &str = "回访短信";
// No quiet hours: the test runs at any hour (the gate has its own tests).
const SPEC: &str = "timezone: UTC\nsegments: []\nmessages:\n  quiet_hours: []\n";

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([9; 32]))
        .await
        .unwrap();
    (dir, s)
}

async fn enqueue(store: &Store, campaign: &str, key: &str, to: &str, text: &str) -> i64 {
    let c = store
        .campaign_create(
            campaign,
            &format!("name: {campaign}\n{SPEC}"),
            "test",
            Utc::now(),
        )
        .await
        .unwrap();
    store
        .message_enqueue(
            &NewMessage {
                key,
                customer: None,
                campaign: Some(c),
                channel: "sms",
                template: "coupon",
                to,
                text,
                segments: 1,
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .0
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(twilio_url: &str, aliyun_url: &str, callback_port: u16, tag: &str) -> SmsHttpConfig {
    let yaml = format!(
        "default: aliyun\ncampaigns:\n  {US}: twilio\naliyun:\n  endpoint: {aliyun_url}\n  access_key_id: LTAI5tTest\n  access_key_secret_env: WAIHU_TEST_ALIYUN_SECRET_{tag}\n  sign_name: 外呼\n  templates:\n    coupon: {{code: SMS_153055065, param: content}}\ntwilio:\n  base_url: {twilio_url}\n  account_sid: ACtest\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_{tag}\n  from: \"+15005550006\"\n  status_callback: http://127.0.0.1:{callback_port}/twilio/status\n  listen: 127.0.0.1:{callback_port}\n"
    );
    SmsHttpConfig::parse("sms-http.yaml", std::path::Path::new("."), &yaml).unwrap()
}

async fn run_until(
    store: &Store,
    client: Arc<HttpSmsClient>,
    done: impl Fn(&[MessageRow]) -> bool,
) -> (Vec<MessageRow>, HttpStats) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_http_sender(
        store.clone(),
        client,
        HttpSenderConfig {
            poll: Duration::from_millis(50),
            receipt_poll: Duration::from_millis(100),
            ..HttpSenderConfig::default()
        },
        stopped,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let rows = loop {
        let rows = store.messages_list(None, 50).await.unwrap();
        if done(&rows) || tokio::time::Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // A forged status callback while the listener still runs is left to the caller.
    stop.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    (rows, stats)
}

fn status(rows: &[MessageRow], id: i64) -> (String, Option<String>) {
    let r = rows.iter().find(|r| r.id == id).unwrap();
    (r.status.clone(), r.error.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_campaign_goes_through_its_aggregator_once_with_receipts() {
    std::env::set_var("WAIHU_TEST_ALIYUN_SECRET_OK", "aliyun-secret-0001");
    std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_OK", "twilio-token-0001");
    let tw = peer::twilio("ACtest", "twilio-token-0001", &["+12125550199"])
        .await
        .unwrap();
    let ali = peer::aliyun("LTAI5tTest", "aliyun-secret-0001", &["13800000002"])
        .await
        .unwrap();
    let port = free_port();
    let client = Arc::new(HttpSmsClient::new(config(&tw.url(), &ali.url(), port, "OK")).unwrap());
    let (_d, store) = store().await;
    let us_ok = enqueue(
        &store,
        US,
        "k1",
        "+12125550123",
        "Your renewal is due. Reply STOP to opt out.",
    )
    .await;
    let us_bad = enqueue(
        &store,
        US,
        "k2",
        "+12125550199",
        "Your renewal is due. Reply STOP to opt out.",
    )
    .await;
    let cn_ok = enqueue(
        &store,
        CN,
        "k3",
        "+8613800000001",
        "【外呼】张先生您好，优惠券已到账，回复TD退订",
    )
    .await;
    let cn_bad = enqueue(
        &store,
        CN,
        "k4",
        "+8613800000002",
        "【外呼】李女士您好，优惠券已到账，回复TD退订",
    )
    .await;

    let ids = [us_ok, us_bad, cn_ok, cn_bad];
    let (rows, stats) = run_until(&store, client.clone(), |rows| {
        ids.iter().all(|id| {
            rows.iter()
                .any(|r| r.id == *id && matches!(r.status.as_str(), "delivered" | "failed"))
        })
    })
    .await;
    assert_eq!(status(&rows, us_ok).0, "delivered", "{rows:?}");
    assert_eq!(
        status(&rows, us_bad),
        ("failed".into(), Some("undelivered 30003".into()))
    );
    assert_eq!(status(&rows, cn_ok).0, "delivered", "{rows:?}");
    assert_eq!(
        status(&rows, cn_bad),
        ("failed".into(), Some("MK:0001".into()))
    );
    assert_eq!(
        (stats.sent, stats.receipts, stats.failed, stats.unknown),
        (4, 4, 0, 0),
        "{stats:?}"
    );

    // Exactly one request per message, each at the gateway of its campaign.
    let t = tw.accepted();
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(t
        .iter()
        .all(|a| a.to.starts_with("+1") && a.detail == "+15005550006"));
    let a = ali.accepted();
    assert_eq!(a.len(), 2, "{a:?}");
    let first = a.iter().find(|x| x.to == "13800000001").unwrap();
    // The 【签名】 is Alibaba's SignName, not part of the template variable.
    assert_eq!(
        first.text,
        r#"{"content":"张先生您好，优惠券已到账，回复TD退订"}"#
    );
    assert_eq!(first.detail, "外呼|SMS_153055065|k3");
    assert!(
        tw.refused().is_empty() && ali.refused().is_empty(),
        "{:?} {:?}",
        tw.refused(),
        ali.refused()
    );
    // Twilio posted sent + final for each, and the listener took them (204).
    assert_eq!(
        tw.callbacks().iter().filter(|(_, c)| *c == 204).count(),
        4,
        "{:?}",
        tw.callbacks()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_status_callback_is_refused_and_changes_nothing() {
    std::env::set_var("WAIHU_TEST_ALIYUN_SECRET_FORGE", "aliyun-secret-0001");
    std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_FORGE", "twilio-token-0001");
    let tw = peer::twilio("ACtest", "twilio-token-0001", &[])
        .await
        .unwrap();
    let port = free_port();
    let client = Arc::new(
        HttpSmsClient::new(config(&tw.url(), "http://127.0.0.1:9", port, "FORGE")).unwrap(),
    );
    let (_d, store) = store().await;
    let id = enqueue(&store, US, "f1", "+12125550123", "Your renewal is due.").await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_http_sender(
        store.clone(),
        client,
        HttpSenderConfig {
            poll: Duration::from_millis(50),
            ..HttpSenderConfig::default()
        },
        stopped,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while status(&store.messages_list(None, 10).await.unwrap(), id).0 != "delivered" {
        assert!(tokio::time::Instant::now() < deadline, "never delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sid = tw.accepted()[0].id.clone();
    let url = format!("http://127.0.0.1:{port}/twilio/status");
    let form: Vec<(String, String)> = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "failed"),
        ("ErrorCode", "30007"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    let http = reqwest::Client::new();
    assert_eq!(
        peer::post_callback(&http, &url, &form, "not-the-token").await,
        403
    );
    stop.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert_eq!(stats.forged_callbacks, 1);
    assert_eq!(
        status(&store.messages_list(None, 10).await.unwrap(), id).0,
        "delivered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_fails_the_message_with_the_reason() {
    std::env::set_var("WAIHU_TEST_ALIYUN_SECRET_BAD", "not-the-secret");
    std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_BAD", "not-the-token");
    let tw = peer::twilio("ACtest", "twilio-token-0001", &[])
        .await
        .unwrap();
    let ali = peer::aliyun("LTAI5tTest", "aliyun-secret-0001", &[])
        .await
        .unwrap();
    let client =
        Arc::new(HttpSmsClient::new(config(&tw.url(), &ali.url(), free_port(), "BAD")).unwrap());
    let (_d, store) = store().await;
    let us = enqueue(&store, US, "b1", "+12125550123", "Your renewal is due.").await;
    let cn = enqueue(
        &store,
        CN,
        "b2",
        "+8613800000001",
        "【外呼】您好，回复TD退订",
    )
    .await;
    let (rows, stats) = run_until(&store, client, |rows| {
        [us, cn]
            .iter()
            .all(|id| rows.iter().any(|r| r.id == *id && r.status == "failed"))
    })
    .await;
    let (s, e) = status(&rows, us);
    assert_eq!(s, "failed");
    assert!(
        e.as_deref()
            .unwrap()
            .contains("twilio refused the credentials")
            && e.as_deref().unwrap().contains("20003"),
        "{e:?}"
    );
    let (s, e) = status(&rows, cn);
    assert_eq!(s, "failed");
    assert!(
        e.as_deref()
            .unwrap()
            .contains("aliyun refused the credentials")
            && e.as_deref().unwrap().contains("SignatureDoesNotMatch"),
        "{e:?}"
    );
    assert_eq!((stats.sent, stats.failed), (0, 2));
    assert!(tw.accepted().is_empty() && ali.accepted().is_empty());
    assert_eq!(tw.refused(), vec!["20003: Authenticate".to_string()]);
    assert!(
        ali.refused()[0].starts_with("SignatureDoesNotMatch"),
        "{:?}",
        ali.refused()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_pushes_reports_and_replies_to_the_token_path_and_nothing_else_gets_in() {
    std::env::set_var("WAIHU_TEST_ALIYUN_SECRET_PUSH", "aliyun-secret-0001");
    std::env::set_var("WAIHU_TEST_ALIYUN_PUSH_TOKEN", "pushToken0123456789");
    let ali = peer::aliyun("LTAI5tTest", "aliyun-secret-0001", &[])
        .await
        .unwrap();
    let port = free_port();
    let yaml = format!(
        "default: aliyun\naliyun:\n  endpoint: {}\n  access_key_id: LTAI5tTest\n  access_key_secret_env: WAIHU_TEST_ALIYUN_SECRET_PUSH\n  sign_name: 外呼\n  templates:\n    coupon: {{code: SMS_153055065, param: content}}\n  push_listen: 127.0.0.1:{port}\n  push_token_env: WAIHU_TEST_ALIYUN_PUSH_TOKEN\n",
        ali.url()
    );
    let cfg = SmsHttpConfig::parse("sms-http.yaml", std::path::Path::new("."), &yaml).unwrap();
    let client = Arc::new(HttpSmsClient::new(cfg).unwrap());
    let (_d, store) = store().await;
    let id = enqueue(
        &store,
        CN,
        "p1",
        "+8613800000001",
        "【外呼】您好，优惠券已到账，回复TD退订",
    )
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_http_sender(
        store.clone(),
        client,
        HttpSenderConfig {
            poll: Duration::from_millis(50),
            // Longer than the test: the report can only arrive by push.
            receipt_poll: Duration::from_secs(600),
            ..HttpSenderConfig::default()
        },
        stopped,
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while status(&store.messages_list(None, 10).await.unwrap(), id).0 != "sent" {
        assert!(tokio::time::Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let biz = ali.accepted()[0].id.clone();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}/aliyun");
    let post = |url: String, body: String| {
        let http = http.clone();
        async move {
            let r = http
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let report = format!(
        r#"[{{"phone_number":"13800000001","send_time":"2026-12-07 10:00:00","report_time":"2026-12-07 10:00:03","success":true,"err_code":"DELIVERED","err_msg":"用户接收成功","sms_size":"1","biz_id":"{biz}","out_id":"p1"}}]"#
    );
    // Without the token: 404, nothing changes.
    let (code, _) = post(
        format!("{base}/wrongToken0123456789/SmsReport"),
        report.clone(),
    )
    .await;
    assert_eq!(code, 404);
    // Not the documented JSON: 400 with the reason.
    let (code, body) = post(
        format!("{base}/pushToken0123456789/SmsReport"),
        "{\"biz_id\":1}".into(),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("SmsReport"), "{body}");
    assert_eq!(
        status(&store.messages_list(None, 10).await.unwrap(), id).0,
        "sent"
    );
    // The real push: 200 with the documented answer, and the message is delivered.
    let (code, body) = post(format!("{base}/pushToken0123456789/SmsReport"), report).await;
    assert_eq!((code, body.contains(r#""code":0"#)), (200, true), "{body}");
    // The handset's 退订 arrives as SmsUp.
    let up = r#"[{"phone_number":"13800000001","send_time":"2026-12-07 10:01:00","content":"退订","sign_name":"外呼","dest_code":"1234","sequence_id":1234567890}]"#;
    let (code, body) = post(format!("{base}/pushToken0123456789/SmsUp"), up.into()).await;
    assert_eq!(code, 200, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let delivered = status(&store.messages_list(None, 10).await.unwrap(), id).0 == "delivered";
        let dnc = store
            .dnc_contains("+8613800000001", "global")
            .await
            .unwrap();
        if delivered && dnc {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "delivered {delivered}, on DNC {dnc}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert_eq!(
        (
            stats.sent,
            stats.receipts,
            stats.replies,
            stats.opt_outs,
            stats.forged_callbacks
        ),
        (1, 1, 1, 1, 1),
        "{stats:?}"
    );
    assert_eq!(ali.accepted().len(), 1, "sent once");
}
