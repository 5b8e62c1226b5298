use super::*;
use proptest::prelude::*;

fn cfg() -> Config {
    Config {
        system_id: "waihu".into(),
        password: "pw".into(),
        window: 2,
        ..Config::default()
    }
}

fn sent(s: &mut Session) -> Vec<Pdu> {
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        let (p, used) = pdu::decode(&b).unwrap().unwrap();
        assert_eq!(used, b.len());
        out.push(p);
    }
    out
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn resp(seq: u32, body: Body) -> Vec<u8> {
    Pdu::new(seq, body).encode().unwrap()
}

fn bound(now: Instant) -> Session {
    let mut s = Session::new(cfg(), now);
    s.connect(now, SystemTime::UNIX_EPOCH);
    let bind = sent(&mut s);
    assert!(matches!(bind[0].body, Body::BindTransceiver(_)));
    s.handle_input(
        now,
        &resp(
            bind[0].sequence,
            Body::BindTransceiverResp {
                system_id: "SMSC".into(),
            },
        ),
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Bound {
            system_id: "SMSC".into()
        }]
    );
    s
}

fn sms(text: &str) -> OutgoingSms {
    OutgoingSms {
        from: "10690000".into(),
        to: "+8613800000001".into(),
        text: text.into(),
    }
}

#[test]
fn a_long_chinese_text_goes_out_in_udh_segments_within_the_window() {
    let now = Instant::now();
    let mut s = bound(now);
    let id = s.submit(now, &sms(&"您好".repeat(70))).unwrap(); // 140 units: 3 segments
    let first = sent(&mut s);
    assert_eq!(first.len(), 2, "window of 2");
    for p in &first {
        let Body::SubmitSm(sm) = &p.body else {
            panic!("not submit_sm")
        };
        assert_eq!(sm.data_coding, text::DC_UCS2);
        assert_eq!(sm.esm_class & esm::UDHI, esm::UDHI);
        assert_eq!(&sm.short_message[..5], &[5, 0, 3, sm.short_message[3], 3]);
        assert_eq!(sm.dest.addr, "8613800000001");
    }
    s.handle_input(
        now,
        &resp(
            first[0].sequence,
            Body::SubmitSmResp {
                message_id: "a".into(),
            },
        ),
    );
    let third = sent(&mut s);
    assert_eq!(third.len(), 1, "window slot freed");
    for (p, mid) in [(&first[1], "b"), (&third[0], "c")] {
        s.handle_input(
            now,
            &resp(
                p.sequence,
                Body::SubmitSmResp {
                    message_id: mid.into(),
                },
            ),
        );
    }
    assert_eq!(
        events(&mut s),
        vec![Event::Submitted {
            id,
            message_ids: vec!["a".into(), "b".into(), "c".into()]
        }]
    );
}

#[test]
fn no_answer_means_unknown_not_failed() {
    let now = Instant::now();
    let mut s = bound(now);
    let id = s.submit(now, &sms("hi")).unwrap();
    sent(&mut s);
    let t = s.poll_timeout().unwrap();
    assert_eq!(t, now + Duration::from_secs(10));
    s.handle_timeout(t);
    assert!(matches!(
        events(&mut s).as_slice(),
        [Event::SubmitFailed { id: i, failure: Failure::Unknown { .. } }] if *i == id
    ));
}

#[test]
fn a_rejection_carries_the_status() {
    let now = Instant::now();
    let mut s = bound(now);
    let id = s.submit(now, &sms("hi")).unwrap();
    let p = sent(&mut s);
    let mut r = Pdu::new(
        p[0].sequence,
        Body::SubmitSmResp {
            message_id: String::new(),
        },
    );
    r.status = status::THROTTLED;
    s.handle_input(now, &r.encode().unwrap());
    assert_eq!(
        events(&mut s),
        vec![Event::SubmitFailed {
            id,
            failure: Failure::Rejected {
                status: status::THROTTLED
            }
        }]
    );
}

#[test]
fn queued_submissions_survive_a_reconnect_and_sent_ones_do_not() {
    let now = Instant::now();
    let mut s = bound(now);
    let a = s.submit(now, &sms("a")).unwrap();
    let _b = s.submit(now, &sms("b")).unwrap();
    let c = s.submit(now, &sms("c")).unwrap();
    assert_eq!(sent(&mut s).len(), 2);
    s.connection_lost(now);
    let ev = events(&mut s);
    assert!(ev.iter().any(
        |e| matches!(e, Event::SubmitFailed { id, failure: Failure::Unknown { .. } } if *id == a)
    ));
    assert!(matches!(ev.last(), Some(Event::Closed { .. })));
    assert_eq!(s.pending(), 1);
    // Reconnect: only `c` goes out.
    s.connect(now, SystemTime::UNIX_EPOCH);
    let bind = sent(&mut s);
    s.handle_input(
        now,
        &resp(
            bind[0].sequence,
            Body::BindTransceiverResp {
                system_id: "S".into(),
            },
        ),
    );
    let out = sent(&mut s);
    assert_eq!(out.len(), 1);
    s.handle_input(
        now,
        &resp(
            out[0].sequence,
            Body::SubmitSmResp {
                message_id: "z".into(),
            },
        ),
    );
    assert!(events(&mut s).contains(&Event::Submitted {
        id: c,
        message_ids: vec!["z".into()]
    }));
}

#[test]
fn receipts_and_segmented_mo_replies_become_events_and_are_acknowledged() {
    let now = Instant::now();
    let mut s = bound(now);
    let receipt = Sm {
        source: Address::from_e164_or_alpha("+8613800000001"),
        esm_class: esm::RECEIPT,
        short_message: b"id:42 sub:001 dlvr:001 submit date:2612030000 done date:2612030001 stat:DELIVRD err:000 text:x".to_vec(),
        ..Sm::default()
    };
    s.handle_input(now, &resp(7, Body::DeliverSm(receipt)));
    let mut parts = Vec::new();
    for (i, t) in ["退", "订"].iter().enumerate() {
        let mut m = vec![5, 0, 3, 9, 2, i as u8 + 1];
        m.extend(t.encode_utf16().flat_map(u16::to_be_bytes));
        parts.push(Sm {
            source: Address::from_e164_or_alpha("+8613800000001"),
            esm_class: esm::UDHI,
            data_coding: text::DC_UCS2,
            short_message: m,
            ..Sm::default()
        });
    }
    s.handle_input(now, &resp(8, Body::DeliverSm(parts.remove(1))));
    s.handle_input(now, &resp(9, Body::DeliverSm(parts.remove(0))));
    let acks = sent(&mut s);
    assert_eq!(
        acks.iter().map(|p| p.sequence).collect::<Vec<_>>(),
        [7, 8, 9]
    );
    let ev = events(&mut s);
    assert!(
        matches!(&ev[0], Event::Receipt { receipt, from, .. } if receipt.message_id == "42" && from == "+8613800000001")
    );
    assert!(matches!(&ev[1], Event::Mo { text, .. } if text == "退订"));
}

#[test]
fn idle_links_are_probed_and_a_dead_one_closes() {
    let now = Instant::now();
    let mut s = bound(now);
    let t = s.poll_timeout().unwrap();
    assert_eq!(t, now + Duration::from_secs(30));
    s.handle_timeout(t);
    assert!(matches!(sent(&mut s)[0].body, Body::EnquireLink));
    s.handle_timeout(t + Duration::from_secs(10));
    assert!(matches!(events(&mut s).last(), Some(Event::Closed { .. })));
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn peer_unbind_is_answered_before_closing() {
    let now = Instant::now();
    let mut s = bound(now);
    s.handle_input(now, &resp(5, Body::Unbind));
    let out = sent(&mut s);
    assert!(matches!(out[0].body, Body::UnbindResp));
    assert_eq!(s.state(), State::Closed);
}

proptest! {
    #[test]
    fn arbitrary_input_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..8)) {
        let now = Instant::now();
        let mut s = bound(now);
        let _ = s.submit(now, &sms("hello"));
        for c in chunks {
            s.handle_input(now, &c);
            s.handle_timeout(now + Duration::from_secs(60));
        }
        while s.poll_transmit().is_some() {}
        while s.poll_event().is_some() {}
    }
}
