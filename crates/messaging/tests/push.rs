//! The push outbox against local APNs, FCM and webhook peers (TLS on 127.0.0.1; the peers
//! verify signatures, token ages, headers and HTTP/2 as the services do): customers
//! imported from a CSV with their device tokens get exactly one notification each; a dead
//! token fails with the reason; "too many requests" is retried after the back-off and
//! delivered once; a number on DNC is suppressed; a message claimed by a process that
//! died is marked unknown and never sent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use waihu_messaging::{run_push_sender, PushSenderConfig};
use waihu_push::config::{ApnsConfig, FcmConfig, WebhookConfig};
use waihu_push::peer::{self, Script, TestCa};
use waihu_push::{Platform, PushClient, PushConfig};
use waihu_store::{NewMessage, Store};

const A_OK: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const A_DEAD: &str = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef";
const F_OK: &str = "fJ3kq:APA91bHok-token";
const F_BUSY: &str = "fJ3kq:APA91bHbusy-token";
const F_DNC: &str = "fJ3kq:APA91bHdnc-token";
const SECRET: &[u8] = b"in-house-webhook-secret-0001";

async fn import(store: &Store, csv: &str) {
    let now = Utc::now();
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import("push.csv", src.encoding, &src.kinds.clone(), now)
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

async fn enqueue(store: &Store, phone: &str, key: &str) -> i64 {
    let c = store.customer_by_phone(phone).await.unwrap().unwrap();
    store
        .message_enqueue(
            &NewMessage {
                key,
                customer: Some(c.id),
                campaign: None,
                channel: "push",
                template: "missed_call_push",
                to: phone,
                text: "张先生您好，您的订单待确认，请打开App查看。",
                segments: 1,
            },
            Utc::now(),
        )
        .await
        .unwrap()
        .0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_fallbacks_reach_apns_fcm_and_webhook_once_each() {
    let ca = TestCa::new().unwrap();
    let apns = peer::apns(
        &ca,
        Script {
            unregistered: [A_DEAD.to_string()].into(),
            ..Script::default()
        },
    )
    .await
    .unwrap();
    let fcm = peer::fcm(
        &ca,
        Script {
            busy_once: [F_BUSY.to_string()].into(),
            ..Script::default()
        },
    )
    .await
    .unwrap();
    let hook = peer::webhook(&ca, SECRET, Script::default()).await.unwrap();
    let cfg = PushConfig {
        title: "外呼助手".into(),
        default_platform: Some(Platform::Fcm),
        ttl: Duration::from_secs(3600),
        apns: Some(ApnsConfig {
            endpoint: apns.peer.url.clone(),
            key_pem: apns.key_pem.clone(),
            key_id: apns.key_id.clone(),
            team_id: apns.team_id.clone(),
            topic: apns.topic.clone(),
            ca_pem: Some(ca.ca_pem.clone()),
        }),
        fcm: Some(FcmConfig {
            endpoint: fcm.peer.url.clone(),
            service_account_json: fcm.service_account_json.clone(),
            ca_pem: Some(ca.ca_pem.clone()),
        }),
        webhook: Some(WebhookConfig {
            url: hook.url.clone(),
            secret: SECRET.to_vec(),
            ca_pem: Some(ca.ca_pem.clone()),
        }),
    };
    let client = Arc::new(PushClient::new(&cfg).unwrap());

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    let csv = format!(
        "姓名,手机号,push_token,push_platform\n\
         张伟,13800000001,{A_OK},ios\n\
         李娜,13800000002,{A_DEAD},ios\n\
         王芳,13800000003,{F_OK},\n\
         刘洋,13800000004,{F_BUSY},android\n\
         陈静,13800000005,user-5,webhook\n\
         赵磊,13800000006,,\n\
         孙丽,13800000007,{F_DNC},android\n"
    );
    import(&store, &csv).await;
    store
        .dnc_add("+8613800000007", "global", "test", Utc::now())
        .await
        .unwrap();
    let mut ids = BTreeMap::new();
    for n in 1..=7 {
        let phone = format!("+861380000000{n}");
        ids.insert(n, enqueue(&store, &phone, &format!("fallback:t:{n}")).await);
    }
    // A message claimed by a sender that then died: it may have gone out, so it is never
    // sent again.
    let orphan = enqueue(&store, "+8613800000001", "fallback:t:orphan").await;
    assert!(store.message_claim(orphan, Utc::now()).await.unwrap());

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run_push_sender(
        store.clone(),
        client,
        PushSenderConfig {
            poll: Duration::from_millis(50),
            concurrency: 4,
            // Messages of no campaign, at any hour the test runs: the gate's quiet hours
            // and caps are tested in tests/gate.rs with a fixed clock.
            rules: waihu_messaging::MessageRules::unrestricted(),
        },
        stopped,
    ));
    let status = |rows: &[waihu_store::MessageRow], id: i64| {
        rows.iter()
            .find(|m| m.id == id)
            .map(|m| (m.status.clone(), m.error.clone()))
            .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let rows = loop {
        let rows = store.messages_list(None, 50).await.unwrap();
        let settled = ids
            .values()
            .all(|id| !matches!(status(&rows, *id).0.as_str(), "queued" | "sending"));
        if settled {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    stop.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();

    assert_eq!(status(&rows, ids[&1]).0, "sent");
    let (st, err) = status(&rows, ids[&2]);
    assert_eq!(st, "failed");
    assert!(err.unwrap().contains("Unregistered"));
    assert_eq!(status(&rows, ids[&3]).0, "sent", "default platform fcm");
    assert_eq!(status(&rows, ids[&4]).0, "sent", "retried after 429");
    assert_eq!(status(&rows, ids[&5]).0, "sent");
    let (st, err) = status(&rows, ids[&6]);
    assert_eq!(st, "failed");
    assert!(err.unwrap().contains("no push_token"));
    assert_eq!(status(&rows, ids[&7]).0, "suppressed");
    assert_eq!(status(&rows, orphan).0, "unknown");
    assert_eq!(
        (
            stats.sent,
            stats.failed,
            stats.token_invalid,
            stats.retried,
            stats.reconciled_unknown
        ),
        (4, 2, 1, 1, 1),
        "{stats:?}"
    );

    // What the far side saw: exactly one delivery per live device, nothing for the orphan
    // or the DNC number, and no protocol violation anywhere.
    let a = apns.peer.seen();
    assert!(a.violations.is_empty(), "{:?}", a.violations);
    assert_eq!(a.delivered.len(), 1);
    assert_eq!(a.delivered[0].0, A_OK);
    assert_eq!(a.delivered[0].1["aps"]["alert"]["title"], "外呼助手");
    assert_eq!(a.attempts[A_DEAD], 1);
    let f = fcm.peer.seen();
    assert!(f.violations.is_empty(), "{:?}", f.violations);
    let mut devices: Vec<&str> = f.delivered.iter().map(|(d, _)| d.as_str()).collect();
    devices.sort();
    assert_eq!(devices, [F_BUSY, F_OK]);
    assert_eq!(f.attempts[F_BUSY], 2);
    assert!(!f.attempts.contains_key(F_DNC));
    assert_eq!(f.tokens, 1, "one access token serves every send");
    let w = hook.seen();
    assert!(w.violations.is_empty(), "{:?}", w.violations);
    assert_eq!(w.delivered.len(), 1);
    assert_eq!(
        w.delivered[0].1["body"],
        "张先生您好，您的订单待确认，请打开App查看。"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_key_is_refused_by_the_peer_and_retried_not_delivered() {
    // The client signs with a key APNs never issued: the peer answers 403
    // InvalidProviderToken, the client drops its token and the message is queued again.
    let ca = TestCa::new().unwrap();
    let apns = peer::apns(&ca, Script::default()).await.unwrap();
    let other = peer::apns(&ca, Script::default()).await.unwrap();
    let cfg = PushConfig {
        title: "t".into(),
        default_platform: None,
        ttl: Duration::from_secs(60),
        apns: Some(ApnsConfig {
            endpoint: apns.peer.url.clone(),
            key_pem: other.key_pem.clone(),
            key_id: apns.key_id.clone(),
            team_id: apns.team_id.clone(),
            topic: apns.topic.clone(),
            ca_pem: Some(ca.ca_pem.clone()),
        }),
        fcm: None,
        webhook: None,
    };
    let client = PushClient::new(&cfg).unwrap();
    let msg = waihu_push::PushMessage {
        key: "k".into(),
        token: A_OK.into(),
        title: "t".into(),
        body: "b".into(),
        data: BTreeMap::new(),
        ttl: Duration::from_secs(60),
    };
    let out = client.send(Platform::Apns, &msg).await;
    assert!(
        matches!(out, waihu_push::Outcome::AuthFailed { .. }),
        "{out:?}"
    );
    let seen = apns.peer.seen();
    assert!(seen.delivered.is_empty());
    assert_eq!(seen.violations.len(), 1, "{:?}", seen.violations);
    // A client that does not trust the peer's CA never sends at all.
    let mut untrusting = cfg.clone();
    untrusting.apns.as_mut().unwrap().ca_pem = None;
    let out = PushClient::new(&untrusting)
        .unwrap()
        .send(Platform::Apns, &msg)
        .await;
    assert!(
        matches!(out, waihu_push::Outcome::RetryLater { .. }),
        "{out:?}"
    );
}
