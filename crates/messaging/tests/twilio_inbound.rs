//! Replies through Twilio's incoming-message webhook, against the local Twilio peer: a
//! signed reply is stored on the customer's timeline, a signed "STOP" puts the number on
//! the DNC list at once, and a reply whose `X-Twilio-Signature` does not verify is refused
//! with 403 and stores nothing.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use waihu_messaging::{run_http_sender, HttpSenderConfig};
use waihu_smshttp::{peer, HttpSmsClient, SmsHttpConfig};
use waihu_store::{NewMessage, Store};

const TOKEN: &str = "twilio-token-inbound";

fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_replies_are_stored_and_stop_lands_on_dnc_forged_ones_are_refused() {
    std::env::set_var("WAIHU_TEST_TWILIO_TOKEN_INBOUND", TOKEN);
    let tw = peer::twilio("ACinbound", TOKEN, &[]).await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "default: twilio\ntwilio:\n  base_url: {}\n  account_sid: ACinbound\n  auth_token_env: WAIHU_TEST_TWILIO_TOKEN_INBOUND\n  from: \"+15005550006\"\n  status_callback: http://127.0.0.1:{port}/twilio/status\n  inbound_url: http://127.0.0.1:{port}/twilio/inbound\n  listen: 127.0.0.1:{port}\n",
        tw.url()
    );
    let cfg = SmsHttpConfig::parse("sms-http.yaml", std::path::Path::new("."), &yaml).unwrap();
    let client = Arc::new(HttpSmsClient::new(cfg).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([5; 32]))
        .await
        .unwrap();
    let to = "+12125550123";
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
                key: "inbound:1",
                customer: None,
                campaign: Some(c),
                channel: "sms",
                template: "renewal",
                to,
                text: "Your renewal is due. Reply STOP to opt out.",
                segments: 1,
            },
            Utc::now(),
        )
        .await
        .unwrap();
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
    while tw.accepted().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let url = format!("http://127.0.0.1:{port}/twilio/inbound");
    let http = reqwest::Client::new();
    let reply = |sid: &'static str, from: &'static str, body: &'static str| {
        form(&[
            ("MessageSid", sid),
            ("AccountSid", "ACinbound"),
            ("From", from),
            ("To", "+15005550006"),
            ("Body", body),
            ("NumMedia", "0"),
            ("SmsStatus", "received"),
        ])
    };
    // Forged: signed with the wrong token. Refused, nothing stored, not on DNC.
    assert_eq!(
        peer::post_callback(
            &http,
            &url,
            &reply("SMforged", "+12125550199", "STOP"),
            "not-the-token"
        )
        .await,
        403
    );
    assert_eq!(
        peer::post_callback(&http, &url, &reply("SM1", to, "Call me tomorrow"), TOKEN).await,
        200
    );
    assert!(!store.dnc_contains(to, "global").await.unwrap());
    assert_eq!(
        peer::post_callback(&http, &url, &reply("SM2", to, "STOP"), TOKEN).await,
        200
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store.dnc_contains(to, "global").await.unwrap() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "STOP did not reach DNC"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send(true).unwrap();
    let stats = task.await.unwrap().unwrap();
    assert_eq!((stats.replies, stats.opt_outs), (2, 1));
    assert_eq!(stats.forged_callbacks, 1);
    assert!(!store.dnc_contains("+12125550199", "global").await.unwrap());
    let rows = store.messages_list(None, 10).await.unwrap();
    let inbound: Vec<_> = rows.iter().filter(|m| m.direction == "in").collect();
    assert_eq!(inbound.len(), 2, "{rows:?}");
    assert!(inbound.iter().any(|m| m.template == "opt-out"));
}
