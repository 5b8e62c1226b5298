//! A SIP flood in virtual time: one host sends 10,000 INVITEs in two seconds, another
//! OPTIONS every millisecond, a third garbage, while a real caller places a call to the same
//! agent. The call goes through; the flood gets its small budget of transactions, a few 503s
//! with Retry-After and otherwise silence; each flood is one report at its start and one at
//! its end.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;
use waihu_sip::{
    Codec, Config, FloodPhase, Message, OutgoingCall, Sdp, Transport, UaEvent, UserAgent,
};

const A: &str = "203.0.113.1:5060";
const B: &str = "203.0.113.2:5070";
const INVITER: &str = "198.51.100.7:5060";
const PINGER: &str = "198.51.100.8:5060";
const GARBAGE: &str = "198.51.100.9:5060";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn request(method: &str, from: &str, n: u64) -> Vec<u8> {
    format!(
        "{method} sip:bob@{B} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKflood{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:x@{from}>;tag=f{n}\r\nTo: <sip:bob@{B}>\r\n\
         Call-ID: flood-{n}@{from}\r\nCSeq: 1 {method}\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

#[derive(Default)]
struct Seen {
    to_inviter: Vec<Vec<u8>>,
    to_pinger: usize,
    to_garbage: usize,
}

/// Delivers the agents' datagrams to each other (1 ms per hop) and collects what goes to the
/// flooders; returns bob's events.
fn pump(now: &mut Instant, a: &mut UserAgent, b: &mut UserAgent, seen: &mut Seen) -> Vec<UaEvent> {
    let mut events = Vec::new();
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            moved = true;
            *now += Duration::from_millis(1);
            if t.to == addr(B) {
                b.handle_input(*now, addr(A), t.transport, &t.bytes);
            }
        }
        while let Some(t) = b.poll_transmit() {
            moved = true;
            if t.to == addr(A) {
                *now += Duration::from_millis(1);
                a.handle_input(*now, addr(B), t.transport, &t.bytes);
            } else if t.to == addr(INVITER) {
                seen.to_inviter.push(t.bytes);
            } else if t.to == addr(PINGER) {
                seen.to_pinger += 1;
            } else if t.to == addr(GARBAGE) {
                seen.to_garbage += 1;
            }
        }
        events.extend(std::iter::from_fn(|| b.poll_event()));
        if !moved {
            return events;
        }
    }
}

#[test]
fn a_flood_leaves_a_live_call_alone_and_is_reported_once() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut a = UserAgent::new(Config::new(addr(A), "alice"), 1);
    let mut b = UserAgent::new(Config::new(addr(B), "bob"), 2);
    let mut seen = Seen::default();
    let mut bob_events = Vec::new();
    let mut alice_events = Vec::new();
    let mut call = None;
    let mut answered = false;
    let mut n = 0u64;
    let mut peak_transactions = 0;
    // 2 s of flood, 1 ms steps; then 20 s of quiet for the timers and the end reports.
    for ms in 0..22_000u64 {
        now = now.max(t0 + Duration::from_millis(ms));
        if ms < 2_000 {
            for _ in 0..5 {
                n += 1;
                b.handle_input(
                    now,
                    addr(INVITER),
                    Transport::Udp,
                    &request("INVITE", INVITER, n),
                );
            }
            n += 1;
            b.handle_input(
                now,
                addr(PINGER),
                Transport::Udp,
                &request("OPTIONS", PINGER, n),
            );
            b.handle_input(
                now,
                addr(GARBAGE),
                Transport::Udp,
                b"\x16\x03\x01 not sip at all",
            );
        }
        if ms == 500 {
            let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
            oc.sdp = Some(Sdp::offer(addr("203.0.113.1:40000"), &[Codec::Pcmu], 20, 1));
            call = Some(a.invite(now, oc).unwrap());
        }
        if ms == 1_500 {
            a.bye(now, call.unwrap());
        }
        for t in [a.poll_timeout(), b.poll_timeout()].into_iter().flatten() {
            if t <= now {
                a.handle_timeout(now);
                b.handle_timeout(now);
                break;
            }
        }
        let evs = pump(&mut now, &mut a, &mut b, &mut seen);
        for e in &evs {
            if let UaEvent::Incoming { call, source, .. } = e {
                if *source == addr(A) && !answered {
                    answered = true;
                    let ans = Sdp::offer(addr("203.0.113.2:41000"), &[Codec::Pcmu], 20, 2);
                    b.answer(now, *call, ans);
                }
            }
        }
        bob_events.extend(evs);
        bob_events.extend(std::iter::from_fn(|| b.poll_event()));
        alice_events.extend(std::iter::from_fn(|| a.poll_event()));
        let more = pump(&mut now, &mut a, &mut b, &mut seen);
        bob_events.extend(more);
        alice_events.extend(std::iter::from_fn(|| a.poll_event()));
        peak_transactions = peak_transactions.max(b.active_transactions());
    }

    // The real call went through while the flood was on.
    let ended = alice_events.iter().find_map(|e| match e {
        UaEvent::Terminated { outcome, .. } => Some(*outcome),
        _ => None,
    });
    assert_eq!(ended, Some(CallOutcome::Answered), "{alice_events:?}");

    // The INVITE flood: 10,000 sent; at most its burst (20) and 10 a second became calls.
    let flood_calls = bob_events
        .iter()
        .filter(|e| matches!(e, UaEvent::Incoming { source, .. } if *source == addr(INVITER)))
        .count();
    assert!(
        (20..=41).contains(&flood_calls),
        "{flood_calls} calls from the flood"
    );
    // Each admitted INVITE got its 100 Trying; beyond the budget, a few 503s with
    // Retry-After (5 at once, then 2 a second), and silence.
    let statuses: Vec<u16> = seen
        .to_inviter
        .iter()
        .filter_map(|b| match Message::parse(b) {
            Ok(Message::Response(r)) => Some(r.status),
            _ => None,
        })
        .collect();
    let refusals: Vec<&Vec<u8>> = seen
        .to_inviter
        .iter()
        .filter(|b| b.starts_with(b"SIP/2.0 503"))
        .collect();
    assert!(
        (5..=10).contains(&refusals.len()),
        "{} refusals",
        refusals.len()
    );
    assert!(String::from_utf8_lossy(refusals[0]).contains("\r\nRetry-After: 10\r\n"));
    assert!(
        statuses.len() < 200,
        "10,000 INVITEs were answered {} times",
        statuses.len()
    );
    // OPTIONS: 2,000 sent, the burst and 10 a second answered 200, a few 503s.
    assert!(seen.to_pinger <= 20 + 20 + 10, "{}", seen.to_pinger);
    // Garbage is never answered.
    assert_eq!(seen.to_garbage, 0);
    // Memory stays bounded: transactions of the admitted requests only.
    assert!(peak_transactions <= 120, "peak {peak_transactions}");

    // Each flooder: one report when it started, one when it ended (the flood lasted 2 s,
    // under the 10 s report interval).
    let reports: Vec<_> = bob_events
        .iter()
        .filter_map(|e| match e {
            UaEvent::Flood(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    for src in [INVITER, PINGER, GARBAGE] {
        let ip = addr(src).ip();
        let phases: Vec<FloodPhase> = reports
            .iter()
            .filter(|r| r.source == ip)
            .map(|r| r.phase)
            .collect();
        assert_eq!(
            phases,
            vec![FloodPhase::Started, FloodPhase::Ended],
            "{src}: {reports:?}"
        );
    }
    let ended = |src: &str| {
        reports
            .iter()
            .find(|r| r.source == addr(src).ip() && r.phase == FloodPhase::Ended)
            .unwrap()
    };
    let garbage_end = ended(GARBAGE);
    assert_eq!(
        garbage_end.malformed + garbage_end.dropped,
        2_000,
        "{garbage_end:?}"
    );
    // The INVITE flood's totals account for every INVITE after the first 20 (the burst
    // admitted before anything was wrong).
    let inviter_end = ended(INVITER);
    assert_eq!(
        inviter_end.admitted + inviter_end.refused + inviter_end.dropped,
        10_000 - 20,
        "{inviter_end:?}"
    );
    assert_eq!(inviter_end.admitted as usize, flood_calls - 20);
    let stats = b.guard_stats();
    assert_eq!(stats.floods, 3, "{stats:?}");
}

#[test]
fn without_a_guard_everything_is_taken() {
    let t0 = Instant::now();
    let mut cfg = Config::new(addr(B), "bob");
    cfg.guard = None;
    let mut b = UserAgent::new(cfg, 2);
    for n in 0..500 {
        b.handle_input(
            t0,
            addr(INVITER),
            Transport::Udp,
            &request("INVITE", INVITER, n),
        );
    }
    let calls = std::iter::from_fn(|| b.poll_event())
        .filter(|e| matches!(e, UaEvent::Incoming { .. }))
        .count();
    assert_eq!(calls, 500);
    assert_eq!(b.guard_stats(), Default::default());
}
