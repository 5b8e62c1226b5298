//! The client against a real SMSC (Net::SMPP, `peer/smsc.pl`) on 127.0.0.1.

use std::time::Duration;

use waihu_smpp::driver::DriverEvent;
use waihu_smpp::peer::{PeerOptions, PeerSmsc};
use waihu_smpp::{ClientConfig, Config, Event, OutgoingSms, ReceiptState};

fn have_net_smpp() -> bool {
    // `perl` must be there; the module is what scripts/deps/sms.apt installs.
    if !waihu_testkit::have_peer("perl") {
        return false;
    }
    if PeerSmsc::available() {
        return true;
    }
    waihu_testkit::have_peer_at(
        "libnet-smpp-perl",
        std::path::Path::new("/usr/share/perl5/Net/SMPP.pm"),
    )
}

async fn next_event(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<DriverEvent>,
) -> Option<DriverEvent> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chinese_long_sms_is_submitted_receipted_and_answered() {
    if !have_net_smpp() {
        return;
    }
    let smsc = PeerSmsc::start(&PeerOptions {
        receipts: true,
        mo_reply: Some("退订".into()),
    })
    .expect("start SMSC");
    let (client, mut events) = waihu_smpp::spawn(ClientConfig::new(
        smsc.addr(),
        Config {
            system_id: "waihu".into(),
            password: "secret".into(),
            ..Config::default()
        },
    ));
    let text = "【外呼】您好，感谢您接听我们的电话。您的专属优惠券已经发放到账户，有效期三十天，\
                可在下单时直接抵扣。如有疑问请拨打客服热线，我们将竭诚为您服务。回复退订可取消。";
    assert!(waihu_smpp::text::plan(text).segment_count() >= 2);
    let id = client
        .submit(OutgoingSms {
            from: "10690000".into(),
            to: "+8613800000001".into(),
            text: text.into(),
        })
        .await
        .expect("queued");

    let (mut ids, mut receipts, mut mo) = (None, Vec::new(), None);
    while ids.is_none() || receipts.len() < 2 || mo.is_none() {
        match next_event(&mut events).await {
            Some(DriverEvent::Session(Event::Submitted { id: i, message_ids })) if i == id => {
                ids = Some(message_ids)
            }
            Some(DriverEvent::Session(Event::Receipt { receipt, from, .. })) => {
                assert_eq!(from, "+8613800000001");
                receipts.push(receipt)
            }
            Some(DriverEvent::Session(Event::Mo { from, text, .. })) => mo = Some((from, text)),
            Some(DriverEvent::Session(Event::Bound { .. })) => {}
            other => panic!("unexpected {other:?} (ids {ids:?}, receipts {receipts:?})"),
        }
    }
    let ids = ids.unwrap_or_default();
    assert_eq!(ids.len(), 2, "one message id per segment");
    assert!(receipts.iter().all(|r| r.state == ReceiptState::Delivered));
    let mut got: Vec<_> = receipts.iter().map(|r| r.message_id.clone()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(mo, Some(("+8613800000001".into(), "退订".into())));

    // What the SMSC saw: two UCS-2 segments with one concatenation reference that decode
    // back to the text.
    smsc.wait_for(Duration::from_secs(5), |l| {
        l.iter().filter(|l| l.starts_with("SUBMIT ")).count() >= 2
    });
    let submits: Vec<Vec<String>> = smsc
        .lines()
        .iter()
        .filter(|l| l.starts_with("SUBMIT "))
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(submits.len(), 2);
    let mut joined = Vec::new();
    for (i, s) in submits.iter().enumerate() {
        assert_eq!(s[2], "8613800000001");
        assert_eq!(s[3], "64", "esm_class UDHI");
        assert_eq!(s[4], "8", "data_coding UCS-2");
        let bytes: Vec<u8> = (0..s[6].len())
            .step_by(2)
            .map(|k| u8::from_str_radix(&s[6][k..k + 2], 16).unwrap_or(0))
            .collect();
        assert_eq!(bytes[..3], [5, 0, 3]);
        assert_eq!(bytes[4..6], [2, i as u8 + 1]);
        joined.extend_from_slice(&bytes[6..]);
    }
    assert_eq!(waihu_smpp::text::decode(8, &joined), text);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_mode_sends_the_whole_text_in_one_pdu() {
    if !have_net_smpp() {
        return;
    }
    let smsc = PeerSmsc::start(&PeerOptions::default()).expect("start SMSC");
    let cfg = ClientConfig::new(
        smsc.addr(),
        Config {
            system_id: "waihu".into(),
            long_messages: waihu_smpp::LongMode::Payload,
            request_receipts: false,
            ..Config::default()
        },
    );
    let (client, mut events) = waihu_smpp::spawn(cfg);
    let long = "Your coupon is ready. ".repeat(10);
    let id = client
        .submit(OutgoingSms {
            from: "WAIHU".into(),
            to: "+447700900001".into(),
            text: long.clone(),
        })
        .await
        .expect("queued");
    loop {
        match next_event(&mut events).await {
            Some(DriverEvent::Session(Event::Submitted { id: i, message_ids })) if i == id => {
                assert_eq!(message_ids.len(), 1);
                break;
            }
            Some(DriverEvent::Session(Event::Bound { .. })) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    // The log reaches us through a reader thread; give it a moment.
    smsc.wait_for(Duration::from_secs(5), |l| {
        l.iter().any(|l| l.starts_with("SUBMIT "))
    });
    let line = smsc
        .lines()
        .into_iter()
        .find(|l| l.starts_with("SUBMIT "))
        .unwrap_or_default();
    let fields: Vec<&str> = line.split(' ').collect();
    assert_eq!(fields[4], "0", "GSM default alphabet");
    assert_eq!(fields[6], "-", "empty short_message");
    assert_eq!(
        fields[7].len(),
        long.len() * 2,
        "the whole text in message_payload"
    );

    client.shutdown().await;
}
