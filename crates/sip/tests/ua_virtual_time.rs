//! Two sans-IO user agents wired back to back in virtual time: whole calls, retransmission
//! under loss, CANCEL, busy, digest challenges and garbage input, thousands of times faster
//! than real time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use waihu_core::CallOutcome;
use waihu_sip::{
    Codec, Config, Message, OutgoingCall, Sdp, SipError, TransferProgress, Transmit, Transport,
    UaEvent, UserAgent,
};

const A: &str = "127.0.0.1:5060";
const B: &str = "127.0.0.1:5070";

type DropRule = Box<dyn FnMut(usize, &[u8]) -> bool>;

struct Net {
    now: Instant,
    a: UserAgent,
    b: UserAgent,
    /// Datagrams seen on the wire, in order (from, bytes).
    wire: Vec<(SocketAddr, Vec<u8>)>,
    /// Drop the n-th datagram (0-based) if this says so.
    drop: DropRule,
    ev_a: Vec<UaEvent>,
    ev_b: Vec<UaEvent>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Net {
    fn new() -> Net {
        Net {
            now: Instant::now(),
            a: UserAgent::new(Config::new(addr(A), "alice"), 1),
            b: UserAgent::new(Config::new(addr(B), "bob"), 2),
            wire: Vec::new(),
            drop: Box::new(|_, _| false),
            ev_a: Vec::new(),
            ev_b: Vec::new(),
        }
    }

    /// Delivers everything in flight (1 ms per hop) until both agents are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            let out: Vec<(SocketAddr, Transmit)> = std::iter::from_fn(|| self.a.poll_transmit())
                .map(|t| (addr(A), t))
                .chain(std::iter::from_fn(|| self.b.poll_transmit()).map(|t| (addr(B), t)))
                .collect();
            for (from, t) in out {
                moved = true;
                let n = self.wire.len();
                self.wire.push((from, t.bytes.clone()));
                if (self.drop)(n, &t.bytes) {
                    continue;
                }
                self.now += Duration::from_millis(1);
                if t.to == addr(A) {
                    self.a.handle_input(self.now, from, t.transport, &t.bytes);
                } else if t.to == addr(B) {
                    self.b.handle_input(self.now, from, t.transport, &t.bytes);
                }
            }
            self.ev_a.extend(std::iter::from_fn(|| self.a.poll_event()));
            self.ev_b.extend(std::iter::from_fn(|| self.b.poll_event()));
            if !moved {
                return;
            }
        }
    }

    /// Advances virtual time to `until`, firing timers on the way.
    fn run_until(&mut self, until: Instant) {
        self.pump();
        loop {
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= until => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    self.pump();
                }
                _ => break,
            }
        }
        self.now = self.now.max(until);
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn offer(&self) -> Sdp {
        Sdp::offer(addr("127.0.0.1:40000"), &[Codec::Pcmu, Codec::Pcma], 20, 1)
    }

    fn call(&mut self) -> waihu_sip::CallId {
        let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
        oc.sdp = Some(self.offer());
        oc.ring_timeout = Some(Duration::from_secs(30));
        let now = self.now;
        let id = self.a.invite(now, oc).unwrap();
        self.pump();
        id
    }

    fn incoming(&self) -> Option<waihu_sip::CallId> {
        self.ev_b.iter().find_map(|e| match e {
            UaEvent::Incoming { call, .. } => Some(*call),
            _ => None,
        })
    }

    fn terminated(ev: &[UaEvent]) -> Option<(CallOutcome, Option<u16>, String)> {
        ev.iter().find_map(|e| match e {
            UaEvent::Terminated {
                outcome,
                sip_status,
                reason,
                ..
            } => Some((*outcome, *sip_status, reason.clone())),
            _ => None,
        })
    }

    fn methods_sent(&self) -> Vec<String> {
        self.wire
            .iter()
            .map(|(_, b)| {
                String::from_utf8_lossy(b)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    }
}

fn answer_incoming(net: &mut Net) {
    let call = net.incoming().expect("INVITE reached bob");
    let offer = net
        .ev_b
        .iter()
        .find_map(|e| match e {
            UaEvent::Incoming { sdp, .. } => sdp.clone(),
            _ => None,
        })
        .expect("offer");
    let (ans, neg) = Sdp::answer(&offer, addr("127.0.0.1:41000"), &[Codec::Pcma], 2).unwrap();
    assert_eq!(neg.codec, Codec::Pcma);
    let now = net.now;
    net.b.ring(now, call);
    net.b.answer(now, call, ans);
    net.pump();
}

#[test]
fn whole_call_with_loss_recovers_by_retransmission() {
    let mut net = Net::new();
    // Lose the first INVITE and the first 200 OK.
    let mut lost_invite = false;
    let mut lost_ok = false;
    net.drop = Box::new(move |_, b| {
        let first = String::from_utf8_lossy(b)
            .lines()
            .next()
            .unwrap_or("")
            .to_string();
        if first.starts_with("INVITE") && !lost_invite {
            lost_invite = true;
            return true;
        }
        if first.starts_with("SIP/2.0 200")
            && first.contains("OK")
            && !lost_ok
            && String::from_utf8_lossy(b).contains("INVITE")
        {
            lost_ok = true;
            return true;
        }
        false
    });
    let call = net.call();
    assert!(net.incoming().is_none());
    net.run_for(Duration::from_millis(600)); // timer A fires at T1 = 500 ms
    answer_incoming(&mut net);
    net.run_for(Duration::from_secs(2)); // the 2xx is retransmitted by bob
    let answered = net.ev_a.iter().find_map(|e| match e {
        UaEvent::Answered { sdp, .. } => Some(sdp.clone()),
        _ => None,
    });
    let neg = answered
        .flatten()
        .expect("alice answered with SDP")
        .negotiated_from_answer()
        .unwrap();
    assert_eq!(
        (neg.codec, neg.remote_rtp),
        (Codec::Pcma, addr("127.0.0.1:41000"))
    );
    assert!(
        net.ev_b
            .iter()
            .any(|e| matches!(e, UaEvent::Answered { .. })),
        "bob got the ACK"
    );
    let now = net.now;
    net.a.bye(now, call);
    net.run_for(Duration::from_secs(1));
    assert_eq!(Net::terminated(&net.ev_a).unwrap().0, CallOutcome::Answered);
    assert_eq!(Net::terminated(&net.ev_b).unwrap().2, "hangup by peer");
    let m = net.methods_sent();
    assert_eq!(
        m.iter().filter(|l| l.starts_with("INVITE")).count(),
        2,
        "{m:#?}"
    );
    assert!(
        m.iter().filter(|l| l.starts_with("SIP/2.0 200")).count() >= 3,
        "{m:#?}"
    );
    // Everything is cleaned up after the wait timers.
    net.run_for(Duration::from_secs(40));
    assert_eq!((net.a.active_calls(), net.b.active_calls()), (0, 0));
    assert_eq!(
        (net.a.active_transactions(), net.b.active_transactions()),
        (0, 0)
    );
}

#[test]
fn ring_timeout_sends_cancel_and_reports_no_answer() {
    let mut net = Net::new();
    let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
    oc.ring_timeout = Some(Duration::from_secs(3));
    let now = net.now;
    net.a.invite(now, oc).unwrap();
    net.pump();
    let call = net.incoming().unwrap();
    let now = net.now;
    net.b.ring(now, call);
    net.run_for(Duration::from_secs(5));
    let m = net.methods_sent();
    assert!(m.iter().any(|l| l.starts_with("CANCEL")), "{m:#?}");
    assert_eq!(
        Net::terminated(&net.ev_a).map(|t| (t.0, t.1)),
        Some((CallOutcome::NoAnswer, Some(487)))
    );
    assert!(net
        .ev_b
        .iter()
        .any(|e| matches!(e, UaEvent::Cancelled { .. })));
}

#[test]
fn cancel_waits_for_100_trying_and_silent_peer_fails_fast() {
    // Peer that never answers anything: no CANCEL may be sent; we give up 2 s after the ring timeout.
    let mut net = Net::new();
    net.drop = Box::new(|_, b| b.starts_with(b"INVITE"));
    let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
    oc.ring_timeout = Some(Duration::from_secs(1));
    let t0 = net.now;
    net.a.invite(t0, oc).unwrap();
    net.run_for(Duration::from_secs(4));
    assert!(!net.methods_sent().iter().any(|l| l.starts_with("CANCEL")));
    let (o, s, r) = Net::terminated(&net.ev_a).unwrap();
    assert_eq!(
        (o, s, r.as_str()),
        (CallOutcome::Failed, None, "no response to INVITE")
    );
}

#[test]
fn busy_is_acked_and_mapped() {
    let mut net = Net::new();
    net.call();
    let call = net.incoming().unwrap();
    let now = net.now;
    net.b.reject(now, call, 486);
    net.run_for(Duration::from_secs(1));
    assert_eq!(
        Net::terminated(&net.ev_a).map(|t| (t.0, t.1)),
        Some((CallOutcome::Busy, Some(486)))
    );
    assert!(net.methods_sent().iter().any(|l| l.starts_with("ACK")));
}

#[test]
fn digest_challenge_is_answered_once_then_fails_with_bad_password() {
    // Play the proxy by hand: challenge every INVITE with 407.
    let mut a = UserAgent::new(Config::new(addr(A), "alice"), 9);
    let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
    oc.credentials = Some(waihu_sip::Credentials {
        username: "alice".into(),
        password: "pw".into(),
    });
    let mut now = Instant::now();
    a.invite(now, oc).unwrap();
    let mut invites = Vec::new();
    for _ in 0..5 {
        let Some(t) =
            std::iter::from_fn(|| a.poll_transmit()).find(|t| t.bytes.starts_with(b"INVITE"))
        else {
            break;
        };
        let Ok(Message::Request(req)) = Message::parse(&t.bytes) else {
            panic!("unparsable INVITE")
        };
        invites.push(req.clone());
        let h = |n: &str| req.headers.get(n).unwrap().to_string();
        let resp = format!(
            "SIP/2.0 407 Proxy Authentication Required\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=px\r\nCall-ID: {}\r\nCSeq: {}\r\n\
             Proxy-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n{}\", qop=\"auth\", algorithm=SHA-256\r\nContent-Length: 0\r\n\r\n",
            h("Via"),
            h("From"),
            h("To"),
            h("Call-ID"),
            h("CSeq"),
            invites.len()
        );
        now += Duration::from_millis(5);
        a.handle_input(now, addr(B), Transport::Udp, resp.as_bytes());
    }
    assert_eq!(
        invites.len(),
        3,
        "first INVITE plus two authenticated retries"
    );
    let auth = invites[1].headers.get("Proxy-Authorization").unwrap();
    assert!(
        auth.contains("algorithm=SHA-256")
            && auth.contains("username=\"alice\"")
            && auth.contains("qop=auth"),
        "{auth}"
    );
    let term = std::iter::from_fn(|| a.poll_event()).find_map(|e| match e {
        UaEvent::Terminated {
            outcome,
            sip_status,
            ..
        } => Some((outcome, sip_status)),
        _ => None,
    });
    assert_eq!(term, Some((CallOutcome::Failed, Some(407))));
}

/// The transferee's side of a REFER, written by hand (our UA is only ever the
/// transferor): the REFER as it reached the wire, and replies built from it.
struct ReferSeen {
    via: String,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    refer_to: String,
    referred_by: String,
}

impl ReferSeen {
    fn from_wire(net: &Net) -> ReferSeen {
        let (_, bytes) = net
            .wire
            .iter()
            .rev()
            .find(|(_, b)| b.starts_with(b"REFER "))
            .expect("a REFER on the wire");
        let Ok(Message::Request(r)) = Message::parse(bytes) else {
            panic!("REFER does not parse")
        };
        let h = |n| {
            r.headers
                .get(n)
                .unwrap_or_else(|| panic!("{n}"))
                .to_string()
        };
        ReferSeen {
            via: h("Via"),
            from: h("From"),
            to: h("To"),
            call_id: h("Call-ID"),
            cseq: h("CSeq"),
            refer_to: h("Refer-To"),
            referred_by: h("Referred-By"),
        }
    }

    fn response(&self, status: &str) -> String {
        format!(
            "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
            self.via, self.from, self.to, self.call_id, self.cseq
        )
    }

    fn notify(&self, cseq: u32, event: &str, state: &str, frag: &str) -> String {
        format!(
            "NOTIFY sip:alice@{A} SIP/2.0\r\nVia: SIP/2.0/UDP {B};branch=z9hG4bKnotify{cseq}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\nEvent: {event}\r\nSubscription-State: {state}\r\nContent-Type: message/sipfrag\r\nContent-Length: {}\r\n\r\n{frag}",
            self.to,
            self.from,
            self.call_id,
            frag.len()
        )
    }
}

fn transfers(ev: &[UaEvent]) -> Vec<TransferProgress> {
    ev.iter()
        .filter_map(|e| match e {
            UaEvent::Transfer { progress, .. } => Some(progress.clone()),
            _ => None,
        })
        .collect()
}

/// Feeds `text` to alice as if bob sent it; returns alice's answer's status line.
fn to_alice(net: &mut Net, text: &str) -> String {
    net.now += Duration::from_millis(1);
    let now = net.now;
    net.a
        .handle_input(now, addr(B), Transport::Udp, text.as_bytes());
    net.ev_a.extend(std::iter::from_fn(|| net.a.poll_event()));
    let mut first = String::new();
    while let Some(t) = net.a.poll_transmit() {
        if first.is_empty() {
            first = String::from_utf8_lossy(&t.bytes)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
        }
    }
    first
}

#[test]
fn blind_transfer_by_refer_follows_the_notifies_to_the_end() {
    let mut net = Net::new();
    // Bob's UA would refuse the REFER (501): let the test be the transferee instead.
    net.drop = Box::new(|_, b| b.starts_with(b"REFER "));
    let call = net.call();
    answer_incoming(&mut net);
    let now = net.now;
    assert!(matches!(
        net.a.refer(now, call, "sip:4001@127.0.0.1:5090"),
        Ok(())
    ));
    net.pump();
    let seen = ReferSeen::from_wire(&net);
    assert_eq!(seen.refer_to, "<sip:4001@127.0.0.1:5090>");
    assert!(
        seen.referred_by.contains("sip:alice@"),
        "{}",
        seen.referred_by
    );
    assert!(seen.cseq.ends_with(" REFER"));
    assert_eq!(to_alice(&mut net, &seen.response("202 Accepted")), "");
    let frag = |s: &str| format!("SIP/2.0 {s}\r\n");
    for (n, (state, line)) in [
        ("active;expires=60", "100 Trying"),
        ("active;expires=60", "180 Ringing"),
        ("terminated;reason=noresource", "200 OK"),
    ]
    .into_iter()
    .enumerate()
    {
        let answer = to_alice(
            &mut net,
            &seen.notify(n as u32 + 1, "refer", state, &frag(line)),
        );
        assert_eq!(answer, "SIP/2.0 200 OK");
    }
    let got = transfers(&net.ev_a);
    assert_eq!(
        got,
        vec![
            TransferProgress::Accepted { status: 202 },
            TransferProgress::Notified {
                status: 100,
                reason: "Trying".into(),
                terminated: false
            },
            TransferProgress::Notified {
                status: 180,
                reason: "Ringing".into(),
                terminated: false
            },
            TransferProgress::Notified {
                status: 200,
                reason: "OK".into(),
                terminated: true
            },
        ]
    );
    assert_eq!(got.last().unwrap().settled(), Some(true));
    // A NOTIFY of another package, or one whose body is not a sipfrag, changes nothing.
    assert_eq!(
        to_alice(
            &mut net,
            &seen.notify(10, "dialog", "active", &frag("200 OK"))
        ),
        "SIP/2.0 489 Bad Event"
    );
    assert!(
        to_alice(&mut net, &seen.notify(11, "refer", "active", "hello")).starts_with("SIP/2.0 400")
    );
    assert_eq!(transfers(&net.ev_a).len(), 4);
    // The call is still up: the runtime hangs up when it decides to.
    assert!(Net::terminated(&net.ev_a).is_none());
    let now = net.now;
    net.a.bye(now, call);
    net.drop = Box::new(|_, _| false);
    net.pump();
    assert!(Net::terminated(&net.ev_a).is_some());
}

#[test]
fn refer_refused_unanswered_or_out_of_state_is_reported() {
    let mut net = Net::new();
    net.drop = Box::new(|_, b| b.starts_with(b"REFER "));
    let call = net.call();
    // Not answered yet: no REFER.
    let now = net.now;
    assert!(matches!(
        net.a.refer(now, call, "sip:4001@127.0.0.1:5090"),
        Err(SipError::BadState(..))
    ));
    answer_incoming(&mut net);
    let now = net.now;
    for bad in ["4001", "sip:x@y>\r\nEvil: 1", "mailto:a@b"] {
        assert!(matches!(
            net.a.refer(now, call, bad),
            Err(SipError::BadTarget(_))
        ));
    }
    net.a.refer(now, call, "tel:+861012345678").unwrap();
    net.pump();
    let seen = ReferSeen::from_wire(&net);
    assert_eq!(seen.refer_to, "<tel:+861012345678>");
    to_alice(&mut net, &seen.response("603 Declined"));
    assert_eq!(
        transfers(&net.ev_a),
        vec![TransferProgress::Refused { status: Some(603) }]
    );
    // A REFER nobody answers: timer F (64 T1) reports it refused with no status.
    net.ev_a.clear();
    let now = net.now;
    net.a.refer(now, call, "sip:4002@127.0.0.1:5090").unwrap();
    net.run_for(Duration::from_secs(40));
    assert_eq!(
        transfers(&net.ev_a),
        vec![TransferProgress::Refused { status: None }]
    );
    assert!(Net::terminated(&net.ev_a).is_none());
}

#[test]
fn malformed_request_gets_400_and_is_counted() {
    let mut b = UserAgent::new(Config::new(addr(B), "bob"), 3);
    let msg = "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    b.handle_input(Instant::now(), addr(A), Transport::Udp, msg.as_bytes());
    let t = b.poll_transmit().expect("a response");
    let text = String::from_utf8_lossy(&t.bytes);
    assert!(
        text.starts_with("SIP/2.0 400") && text.contains("(To)"),
        "{text}"
    );
    assert_eq!(b.malformed_count(), 1);
}

proptest! {
    #[test]
    fn arbitrary_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), prefix in prop::sample::select(vec!["", "INVITE sip:b@127.0.0.1 SIP/2.0\r\n", "SIP/2.0 200 OK\r\n", "BYE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\n"])) {
        let mut ua = UserAgent::new(Config::new(addr(B), "bob"), 4);
        let mut input = prefix.as_bytes().to_vec();
        input.extend_from_slice(&bytes);
        let now = Instant::now();
        ua.handle_input(now, addr(A), Transport::Udp, &input);
        ua.handle_timeout(now + Duration::from_secs(100));
        while ua.poll_transmit().is_some() {}
    }
}

#[test]
fn tls_calls_carry_tls_via_alias_and_contact_and_a_dead_stream_fails_them_at_once() {
    // A whole call over TLS: Via says TLS with `alias` (RFC 5923), the Contact asks for
    // `transport=tls`, the callee's requests and responses come back over TLS, and no
    // retransmission is ever sent on a reliable transport.
    let mut net = Net::new();
    let mut oc = OutgoingCall::new(format!("sip:bob@{B};transport=tls"));
    oc.sdp = Some(net.offer());
    oc.transport = Transport::Tls;
    let now = net.now;
    let call = net.a.invite(now, oc).unwrap();
    net.pump();
    answer_incoming(&mut net);
    net.run_for(Duration::from_secs(2));
    let invite = String::from_utf8_lossy(&net.wire[0].1).to_string();
    assert!(
        invite.contains("Via: SIP/2.0/TLS 127.0.0.1:5060;rport;alias;branch="),
        "{invite}"
    );
    assert!(invite.contains(";transport=tls>"), "{invite}");
    let now = net.now;
    net.a.bye(now, call);
    net.run_for(Duration::from_secs(40));
    assert_eq!(
        Net::terminated(&net.ev_a).map(|t| t.0),
        Some(CallOutcome::Answered)
    );
    let invites = net
        .methods_sent()
        .iter()
        .filter(|m| m.starts_with("INVITE"))
        .count();
    assert_eq!(invites, 1, "no retransmission over TLS");

    // The connection cannot be opened: the runtime says so and the call fails now, not
    // after timer B (32 s); a transaction to another address is untouched.
    let mut a = UserAgent::new(Config::new(addr(A), "alice"), 7);
    let t0 = Instant::now();
    let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
    oc.transport = Transport::Tls;
    let dead = a.invite(t0, oc).unwrap();
    let mut other = OutgoingCall::new("sip:carol@127.0.0.1:5080".to_string());
    other.transport = Transport::Tls;
    let alive = a.invite(t0, other).unwrap();
    assert_eq!(
        a.transport_failed(t0, addr(B), Transport::Udp),
        0,
        "other transport"
    );
    assert_eq!(a.transport_failed(t0, addr(B), Transport::Tls), 1);
    let ended: Vec<waihu_sip::CallId> = std::iter::from_fn(|| a.poll_event())
        .filter_map(|e| match e {
            UaEvent::Terminated { call, outcome, .. } => {
                assert_eq!(outcome, CallOutcome::Failed);
                Some(call)
            }
            _ => None,
        })
        .collect();
    assert_eq!(ended, vec![dead]);
    assert_ne!(dead, alive);
}

#[test]
fn record_route_is_copied_into_dialog_responses_and_followed_by_the_caller() {
    // A proxy at :5999 record-routes the INVITE (played by hand: the header is added on
    // the way). The callee's 180 and 200 carry it (RFC 3261 §12.1.1), so the caller's
    // BYE goes through the proxy, not straight to the callee's Contact.
    let proxy = addr("127.0.0.1:5999");
    let mut a = UserAgent::new(Config::new(addr(A), "alice"), 11);
    let mut b = UserAgent::new(Config::new(addr(B), "bob"), 12);
    let now = Instant::now();
    let mut oc = OutgoingCall::new(format!("sip:bob@{B}"));
    oc.sdp = Some(Sdp::offer(addr("127.0.0.1:40000"), &[Codec::Pcmu], 20, 1));
    let call = a.invite(now, oc).unwrap();
    let invite = a.poll_transmit().unwrap().bytes;
    let text = String::from_utf8(invite).unwrap();
    let (line, rest) = text.split_once("\r\n").unwrap();
    let routed = format!("{line}\r\nRecord-Route: <sip:127.0.0.1:5999;lr>\r\n{rest}");
    b.handle_input(now, proxy, Transport::Udp, routed.as_bytes());
    let (incoming, offer) = std::iter::from_fn(|| b.poll_event())
        .find_map(|e| match e {
            UaEvent::Incoming { call, sdp, .. } => Some((call, sdp.unwrap())),
            _ => None,
        })
        .unwrap();
    let (ans, _) = Sdp::answer(&offer, addr("127.0.0.1:41000"), &[Codec::Pcmu], 2).unwrap();
    b.ring(now, incoming);
    b.answer(now, incoming, ans);
    let sent: Vec<String> = std::iter::from_fn(|| b.poll_transmit())
        .map(|t| String::from_utf8(t.bytes).unwrap())
        .collect();
    for status in ["SIP/2.0 180", "SIP/2.0 200"] {
        let r = sent.iter().find(|m| m.starts_with(status)).unwrap();
        assert!(r.contains("Record-Route: <sip:127.0.0.1:5999;lr>"), "{r}");
    }
    let trying = sent.iter().find(|m| m.starts_with("SIP/2.0 100")).unwrap();
    assert!(!trying.contains("Record-Route"), "{trying}");
    let ok = sent.iter().find(|m| m.starts_with("SIP/2.0 200")).unwrap();
    a.handle_input(now, proxy, Transport::Udp, ok.as_bytes());
    let _ack = a.poll_transmit().unwrap();
    a.bye(now, call);
    let bye = a.poll_transmit().unwrap();
    assert_eq!(bye.to, proxy);
    let text = String::from_utf8(bye.bytes).unwrap();
    assert!(
        text.starts_with("BYE ") && text.contains("Route: <sip:127.0.0.1:5999;lr>"),
        "{text}"
    );
}
