use super::*;
use crate::pdu::{decode, StatusReport, Version};

const TS: u32 = 1205143000;

fn cfg() -> Config {
    Config {
        source_addr: "901234".into(),
        shared_secret: "s3cret".into(),
        service_id: "WAIHU".into(),
        src_id: "1069001234".into(),
        window: 2,
        ..Config::default()
    }
}

fn sent(s: &mut Session) -> Vec<Pdu> {
    let v = s.cfg.version;
    let mut out = Vec::new();
    while let Some(b) = s.poll_transmit() {
        let (p, used) = decode(&b, v).unwrap().unwrap();
        assert_eq!(used, b.len());
        out.push(p);
    }
    out
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn answer(s: &mut Session, now: Instant, seq: u32, body: Body) {
    let v = s.cfg.version;
    s.handle_input(now, &Pdu::new(seq, body).encode(v).unwrap());
}

fn connected(now: Instant) -> Session {
    connected_as(now, cfg())
}

fn connected_as(now: Instant, cfg: Config) -> Session {
    let v = cfg.version;
    let mut s = Session::new(cfg, now);
    s.connect_at(now, TS);
    let p = sent(&mut s).remove(0);
    let Body::Connect(c) = &p.body else {
        panic!("{p:?}")
    };
    assert_eq!(
        c.authenticator,
        auth::authenticator_source("901234", "s3cret", TS)
    );
    assert_eq!(c.version, v.octet());
    let ismg = auth::authenticator_ismg(v, 0, &c.authenticator, "s3cret");
    answer(
        &mut s,
        now,
        p.sequence,
        Body::ConnectResp {
            status: 0,
            authenticator: ismg,
            version: v.octet(),
        },
    );
    assert_eq!(events(&mut s), vec![Event::Connected]);
    s
}

#[test]
fn the_window_holds_submits_back_until_answers_come() {
    let now = Instant::now();
    let mut s = connected(now);
    for i in 0..3 {
        s.submit(
            now,
            &OutgoingSms {
                to: format!("+861380000000{i}"),
                text: "hi".into(),
            },
        )
        .unwrap();
    }
    let out = sent(&mut s);
    assert_eq!(out.len(), 2, "window 2");
    let Body::Submit(sub) = &out[0].body else {
        panic!()
    };
    assert_eq!(sub.dest_terminal_ids, vec!["13800000000".to_string()]);
    assert_eq!((sub.msg_fmt, sub.registered_delivery), (0, 1));
    answer(
        &mut s,
        now,
        out[0].sequence,
        Body::SubmitResp {
            msg_id: 42,
            result: 0,
        },
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Submitted {
            id: 1,
            msg_ids: vec!["42".into()]
        }]
    );
    assert_eq!(sent(&mut s).len(), 1, "the third goes once one is answered");
    answer(
        &mut s,
        now,
        out[1].sequence,
        Body::SubmitResp {
            msg_id: 0,
            result: result::FLOW_CONTROL,
        },
    );
    assert_eq!(
        events(&mut s),
        vec![Event::SubmitFailed {
            id: 2,
            failure: Failure::Rejected { result: 8 }
        }]
    );
    // The third times out: the gateway may have it.
    s.handle_timeout(now + Duration::from_secs(11));
    assert!(matches!(
        events(&mut s)[..],
        [Event::SubmitFailed {
            id: 3,
            failure: Failure::Unknown { .. }
        }]
    ));
}

#[test]
fn a_long_chinese_text_goes_in_parts_with_a_udh() {
    let now = Instant::now();
    let mut s = connected(now);
    let text = "您".repeat(100);
    s.submit(
        now,
        &OutgoingSms {
            to: "+8613800000001".into(),
            text: text.clone(),
        },
    )
    .unwrap();
    let out = sent(&mut s);
    assert_eq!(out.len(), 2);
    let mut joined = Vec::new();
    for (i, p) in out.iter().enumerate() {
        let Body::Submit(sub) = &p.body else { panic!() };
        assert_eq!(
            (sub.pk_total, sub.pk_number, sub.tp_udhi),
            (2, i as u8 + 1, 1)
        );
        assert_eq!(sub.msg_fmt, 8);
        assert_eq!(sub.content[..3], [5, 0, 3]);
        assert_eq!(sub.content[4..6], [2, i as u8 + 1]);
        joined.extend_from_slice(&sub.content[6..]);
    }
    assert_eq!(text::decode(8, &joined), text);
}

#[test]
fn reports_and_replies_are_answered_and_reported() {
    let now = Instant::now();
    let mut s = connected(now);
    let report = StatusReport {
        msg_id: 42,
        stat: "DELIVRD".into(),
        submit_time: "2612051430".into(),
        done_time: "2612051430".into(),
        dest_terminal_id: "13800000001".into(),
        smsc_sequence: 1,
    };
    answer(
        &mut s,
        now,
        900,
        Body::Deliver(Deliver {
            msg_id: 7,
            dest_id: "1069001234".into(),
            src_terminal_id: "13800000001".into(),
            registered_delivery: 1,
            content: report.encode(Version::V2_0).unwrap(),
            ..Deliver::default()
        }),
    );
    // A two-part GBK reply.
    for (seq, part) in [(2u8, &[0xB6u8, 0xA9][..]), (1, &[0xCD, 0xCB][..])] {
        let mut content = vec![5, 0, 3, 77, 2, seq];
        content.extend_from_slice(part);
        answer(
            &mut s,
            now,
            900 + seq as u32,
            Body::Deliver(Deliver {
                msg_id: 8,
                dest_id: "1069001234".into(),
                src_terminal_id: "8613800000001".into(),
                tp_udhi: 1,
                msg_fmt: 15,
                content,
                ..Deliver::default()
            }),
        );
    }
    assert_eq!(
        events(&mut s),
        vec![
            Event::Report {
                to: "+8613800000001".into(),
                msg_id: "42".into(),
                stat: "DELIVRD".into(),
                delivered: true
            },
            Event::Mo {
                from: "+8613800000001".into(),
                to: "1069001234".into(),
                text: "退订".into()
            }
        ]
    );
    let resps = sent(&mut s);
    assert_eq!(resps.len(), 3);
    assert!(resps
        .iter()
        .all(|p| matches!(p.body, Body::DeliverResp { result: 0, .. })));
}

#[test]
fn a_cmpp_3_0_session_uses_3_0_layouts_and_wide_results() {
    let now = Instant::now();
    let mut s = connected_as(
        now,
        Config {
            version: Version::V3_0,
            ..cfg()
        },
    );
    s.submit(
        now,
        &OutgoingSms {
            to: "+8613800000001".into(),
            text: "您好".into(),
        },
    )
    .unwrap();
    let mut raw = Vec::new();
    while let Some(b) = s.poll_transmit() {
        raw.push(b);
    }
    assert_eq!(raw.len(), 1);
    // DestUsr_tl sits at 128 of a 3.0 body (116 in 2.0), then one 32-octet id.
    assert_eq!(raw[0][12 + 128], 1);
    assert_eq!(&raw[0][12 + 129..12 + 140], b"13800000001");
    let (p, _) = decode(&raw[0], Version::V3_0).unwrap().unwrap();
    // A 4-octet Result: flow control, then accepted.
    answer(
        &mut s,
        now,
        p.sequence,
        Body::SubmitResp {
            msg_id: 0,
            result: result::FLOW_CONTROL,
        },
    );
    assert_eq!(
        events(&mut s),
        vec![Event::SubmitFailed {
            id: 1,
            failure: Failure::Rejected { result: 8 }
        }]
    );
    // A 71-octet report inside a 3.0 DELIVER with a 32-octet Src_terminal_Id.
    let report = StatusReport {
        msg_id: 42,
        stat: "DELIVRD".into(),
        submit_time: "2612051430".into(),
        done_time: "2612051430".into(),
        dest_terminal_id: "13800000001".into(),
        smsc_sequence: 1,
    };
    answer(
        &mut s,
        now,
        900,
        Body::Deliver(Deliver {
            msg_id: 7,
            dest_id: "1069001234".into(),
            src_terminal_id: "13800000001".into(),
            registered_delivery: 1,
            content: report.encode(Version::V3_0).unwrap(),
            link_id: "LINK".into(),
            ..Deliver::default()
        }),
    );
    assert_eq!(
        events(&mut s),
        vec![Event::Report {
            to: "+8613800000001".into(),
            msg_id: "42".into(),
            stat: "DELIVRD".into(),
            delivered: true
        }]
    );
    let mut raw = Vec::new();
    while let Some(b) = s.poll_transmit() {
        raw.push(b);
    }
    // DELIVER_RESP: Msg_Id and a 4-octet Result.
    assert_eq!(raw.len(), 1);
    assert_eq!(raw[0].len(), 12 + 8 + 4);
}

#[test]
fn a_gateway_that_does_not_know_the_secret_is_refused() {
    let now = Instant::now();
    let mut s = Session::new(cfg(), now);
    s.connect_at(now, TS);
    let p = sent(&mut s).remove(0);
    answer(
        &mut s,
        now,
        p.sequence,
        Body::ConnectResp {
            status: 0,
            authenticator: [0; 16],
            version: 0x20,
        },
    );
    let ev = events(&mut s);
    assert_eq!(
        ev[0],
        Event::ConnectFailed {
            status: 0,
            forged: true
        }
    );
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn garbage_from_the_gateway_closes_or_is_skipped_never_panics() {
    let now = Instant::now();
    let mut s = connected(now);
    // A DELIVER too short for its fields: answered with result 1, connection kept.
    let mut bad = vec![0, 0, 0, 20, 0, 0, 0, 5, 0, 0, 0, 9];
    bad.extend_from_slice(&[0; 8]);
    s.handle_input(now, &bad);
    assert_eq!(s.state(), State::Connected);
    assert!(matches!(
        sent(&mut s)[..],
        [Pdu {
            sequence: 9,
            body: Body::DeliverResp { result: 1, .. }
        }]
    ));
    s.handle_input(now, &[0xff, 0xff, 0xff, 0xff]);
    assert_eq!(s.state(), State::Closed);
}

#[test]
fn numbers() {
    assert_eq!(national("+8613800000001").unwrap(), "13800000001");
    assert_eq!(national("+447700900001").unwrap(), "447700900001");
    assert!(national("+86 138").is_err());
    assert!(national("").is_err());
    assert_eq!(e164("13800000001"), "+8613800000001");
    assert_eq!(e164("8613800000001"), "+8613800000001");
    assert_eq!(e164("10086"), "10086");
}
