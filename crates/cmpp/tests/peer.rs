//! The client against a CMPP gateway on 127.0.0.1 (`waihu_cmpp::peer`, which reads the
//! wire by the specification's offsets and checks the version and the MD5 authenticator
//! itself), in CMPP 2.0 and 3.0.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use waihu_cmpp::pdu::Version;
use waihu_cmpp::peer::{PeerGateway, PeerOptions, Seen};
use waihu_cmpp::{ClientConfig, Config, DriverEvent, Event, OutgoingSms};

fn opts() -> PeerOptions {
    PeerOptions {
        source_addr: "901234".into(),
        shared_secret: "s3cret".into(),
        reports: true,
        mo_reply: Some("退订".into()),
        version: Version::V2_0,
    }
}

fn client(peer: &PeerGateway, secret: &str, window: usize) -> ClientConfig {
    client_v(peer, secret, window, Version::V2_0)
}

fn client_v(peer: &PeerGateway, secret: &str, window: usize, version: Version) -> ClientConfig {
    ClientConfig::new(
        peer.addr(),
        Config {
            source_addr: "901234".into(),
            shared_secret: secret.into(),
            service_id: "WAIHU".into(),
            src_id: "1069001234".into(),
            window,
            version,
            ..Config::default()
        },
    )
}

async fn next(rx: &mut UnboundedReceiver<DriverEvent>) -> DriverEvent {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
        .expect("an event within 10 s")
}

#[tokio::test]
async fn a_wrong_secret_is_refused_by_the_gateway() {
    let peer = PeerGateway::start(opts()).await.expect("peer");
    let (c, mut events) = waihu_cmpp::spawn(client(&peer, "wrong", 4));
    assert_eq!(
        next(&mut events).await,
        DriverEvent::Session(Event::ConnectFailed {
            status: 3,
            forged: false
        })
    );
    c.shutdown().await;
    assert_eq!(
        peer.seen()[0],
        Seen::Connect {
            source_addr: "901234".into(),
            version: 0x20,
            accepted: false
        }
    );
}

#[tokio::test]
async fn a_3_0_login_to_a_2_0_gateway_is_refused_as_version_too_high() {
    let peer = PeerGateway::start(opts()).await.expect("peer");
    let (c, mut events) = waihu_cmpp::spawn(client_v(&peer, "s3cret", 4, Version::V3_0));
    // The 2.0 gateway answers in its own 1-octet Status; the 3.0 client reads it by length.
    assert_eq!(
        next(&mut events).await,
        DriverEvent::Session(Event::ConnectFailed {
            status: 4,
            forged: false
        })
    );
    c.shutdown().await;
    assert_eq!(
        peer.seen()[0],
        Seen::Connect {
            source_addr: "901234".into(),
            version: 0x30,
            accepted: false
        }
    );
}

#[tokio::test]
async fn chinese_long_sms_is_submitted_reported_and_answered() {
    long_sms_round_trip(Version::V2_0).await
}

#[tokio::test]
async fn chinese_long_sms_over_cmpp_3_0_is_submitted_reported_and_answered() {
    long_sms_round_trip(Version::V3_0).await
}

async fn long_sms_round_trip(version: Version) {
    let peer = PeerGateway::start(PeerOptions { version, ..opts() })
        .await
        .expect("peer");
    let (c, mut events) = waihu_cmpp::spawn(client_v(&peer, "s3cret", 4, version));
    let text = "【外呼】您好，感谢您接听我们的电话。您的专属优惠券已经发放到账户，有效期三十天，\
                可在下单时直接抵扣。如有疑问请拨打客服热线，我们将竭诚为您服务。回复退订可取消。";
    let id = c
        .submit(OutgoingSms {
            to: "+8613800000001".into(),
            text: text.into(),
        })
        .await
        .expect("queued");
    let (mut ids, mut reports, mut mo) = (None, Vec::new(), None);
    while ids.is_none() || reports.len() < 2 || mo.is_none() {
        match next(&mut events).await {
            DriverEvent::Session(Event::Connected) => {}
            DriverEvent::Session(Event::Submitted { id: i, msg_ids }) if i == id => {
                ids = Some(msg_ids)
            }
            DriverEvent::Session(Event::Report {
                to,
                msg_id,
                delivered,
                ..
            }) => {
                assert_eq!(to, "+8613800000001");
                assert!(delivered);
                reports.push(msg_id);
            }
            DriverEvent::Session(Event::Mo { from, text, .. }) => mo = Some((from, text)),
            other => panic!("unexpected {other:?}"),
        }
    }
    let mut ids = ids.unwrap_or_default();
    assert_eq!(ids.len(), 2, "one Msg_Id per part");
    ids.sort();
    reports.sort();
    assert_eq!(ids, reports);
    assert_eq!(mo, Some(("+8613800000001".into(), "退订".into())));

    // What the gateway saw.
    let subs = peer.submits();
    assert_eq!(subs.len(), 2);
    let mut joined = Vec::new();
    for (i, s) in subs.iter().enumerate() {
        assert_eq!(s.dest, vec!["13800000001".to_string()]);
        assert_eq!((s.pk_total, s.pk_number), (2, i as u8 + 1));
        assert_eq!((s.tp_udhi, s.msg_fmt, s.registered_delivery), (1, 8, 1));
        assert_eq!(
            (s.service_id.as_str(), s.msg_src.as_str(), s.src_id.as_str()),
            ("WAIHU", "901234", "1069001234")
        );
        assert_eq!(s.content[..3], [5, 0, 3]);
        assert_eq!(s.content[4..6], [2, i as u8 + 1]);
        joined.extend_from_slice(&s.content[6..]);
    }
    assert_eq!(waihu_cmpp::text::decode(8, &joined), text);
    c.shutdown().await;
    // Every DELIVER was acknowledged with result 0, and the client said goodbye.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = peer.seen();
    let acks = seen
        .iter()
        .filter(|s| matches!(s, Seen::DeliverResp { result: 0, .. }))
        .count();
    assert_eq!(acks, 3, "{seen:?}");
    assert!(seen.contains(&Seen::Terminate), "{seen:?}");
    assert!(
        matches!(seen[0], Seen::Connect { version: v, accepted: true, .. } if v == version.octet()),
        "{seen:?}"
    );
}

#[tokio::test]
async fn many_messages_through_a_window_each_end_once() {
    let peer = PeerGateway::start(PeerOptions {
        reports: false,
        mo_reply: None,
        ..opts()
    })
    .await
    .expect("peer");
    let (c, mut events) = waihu_cmpp::spawn(client(&peer, "s3cret", 5));
    let n = 200;
    let mut want = std::collections::HashSet::new();
    for i in 0..n {
        let id = c
            .submit(OutgoingSms {
                to: format!("+86138{i:08}"),
                text: format!("Your code is {i}"),
            })
            .await
            .expect("queued");
        want.insert(id);
    }
    while !want.is_empty() {
        match next(&mut events).await {
            DriverEvent::Session(Event::Submitted { id, msg_ids }) => {
                assert!(want.remove(&id), "submission {id} ended twice");
                assert_eq!(msg_ids.len(), 1);
            }
            DriverEvent::Session(Event::Connected) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(peer.submits().len(), n);
    c.shutdown().await;
}
