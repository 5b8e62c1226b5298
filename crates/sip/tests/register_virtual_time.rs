//! REGISTER in virtual time against a registrar played by hand that checks RFC 2617 MD5
//! digest responses (qop=auth): challenge → authenticated REGISTER → 200, refresh before
//! the granted lifetime runs out, and retries with a growing back-off while the registrar
//! is silent or refusing, until it answers again.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use md5::{Digest as _, Md5};
use proptest::prelude::*;
use waihu_sip::{
    register_retry_delay, Config, Credentials, Message, Registration, Request, Transport, UaEvent,
    UserAgent,
};

const UA: &str = "127.0.0.1:5060";
const REGISTRAR: &str = "127.0.0.1:5080";
const PASSWORD: &str = "s3cret";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn md5(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn param(h: &str, name: &str) -> Option<String> {
    h.split(',').find_map(|p| {
        let p = p.trim().trim_start_matches("Digest ").trim();
        let (n, v) = p.split_once('=')?;
        (n.trim() == name).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The registrar's verdict on a REGISTER: RFC 2617 §3.2.2 response check.
fn digest_ok(req: &Request, nonce: &str) -> bool {
    let Some(h) = req.headers.get("Authorization") else {
        return false;
    };
    let get = |n| param(h, n).unwrap_or_default();
    if get("nonce") != nonce || get("qop") != "auth" {
        return false;
    }
    let ha1 = md5(&format!("{}:{}:{PASSWORD}", get("username"), get("realm")));
    let ha2 = md5(&format!("REGISTER:{}", get("uri")));
    let want = md5(&format!(
        "{ha1}:{nonce}:{}:{}:auth:{ha2}",
        get("nc"),
        get("cnonce")
    ));
    get("response") == want
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Mode {
    /// Challenge, then accept with this lifetime.
    Grant(u32),
    /// Drop every request (registrar down).
    Silent,
    /// Challenge, then refuse with 403.
    Refuse,
}

struct Bench {
    now: Instant,
    ua: UserAgent,
    mode: Mode,
    nonce: u32,
    /// (virtual time, has Authorization) of every REGISTER that reached the registrar.
    seen: Vec<(Instant, bool)>,
    events: Vec<(Instant, UaEvent)>,
}

impl Bench {
    fn new() -> Bench {
        let now = Instant::now();
        let mut ua = UserAgent::new(Config::new(addr(UA), "waihu"), 7);
        ua.register(
            now,
            Registration {
                registrar: format!("sip:{REGISTRAR}"),
                proxy: None,
                transport: Transport::Udp,
                expires: 120,
                credentials: Some(Credentials {
                    username: "waihu".into(),
                    password: PASSWORD.into(),
                }),
            },
        );
        let mut b = Bench {
            now,
            ua,
            mode: Mode::Grant(120),
            nonce: 0,
            seen: Vec::new(),
            events: Vec::new(),
        };
        b.pump();
        b
    }

    fn respond(&mut self, req: &Request) -> Option<String> {
        let h = |n: &str| req.headers.get(n).unwrap_or("").to_string();
        let head = |status: &str| {
            format!(
                "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=reg\r\nCall-ID: {}\r\nCSeq: {}\r\n",
                h("Via"),
                h("From"),
                h("To"),
                h("Call-ID"),
                h("CSeq")
            )
        };
        let nonce = format!("n{}", self.nonce);
        match self.mode {
            Mode::Silent => None,
            _ if !digest_ok(req, &nonce) => {
                self.nonce += 1;
                Some(format!(
                    "{}WWW-Authenticate: Digest realm=\"waihu.test\", nonce=\"n{}\", qop=\"auth\", algorithm=MD5\r\nContent-Length: 0\r\n\r\n",
                    head("401 Unauthorized"),
                    self.nonce
                ))
            }
            Mode::Refuse => Some(format!(
                "{}Content-Length: 0\r\n\r\n",
                head("403 Forbidden")
            )),
            Mode::Grant(secs) => Some(format!(
                "{}Contact: {};expires={secs}\r\nContent-Length: 0\r\n\r\n",
                head("200 OK"),
                h("Contact")
            )),
        }
    }

    fn pump(&mut self) {
        while let Some(t) = self.ua.poll_transmit() {
            let Ok(Message::Request(req)) = Message::parse(&t.bytes) else {
                panic!("unparsable request")
            };
            assert_eq!(req.method, "REGISTER");
            if self.mode != Mode::Silent {
                self.seen
                    .push((self.now, req.headers.get("Authorization").is_some()));
            }
            if let Some(resp) = self.respond(&req) {
                self.ua
                    .handle_input(self.now, addr(REGISTRAR), Transport::Udp, resp.as_bytes());
            }
        }
        while let Some(e) = self.ua.poll_event() {
            self.events.push((self.now, e));
        }
    }

    /// Advances virtual time to `until`, firing every timer on the way.
    fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.ua.poll_timeout().filter(|t| *t <= until) {
            self.now = t.max(self.now);
            self.ua.handle_timeout(self.now);
            self.pump();
        }
        self.now = until;
    }

    fn registered_at(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, UaEvent::Registered { .. }))
            .map(|(t, _)| *t)
            .collect()
    }

    fn failures_at(&self) -> Vec<Instant> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, UaEvent::RegistrationFailed { .. }))
            .map(|(t, _)| *t)
            .collect()
    }
}

#[test]
fn challenge_then_refresh_before_expiry() {
    let mut b = Bench::new();
    let start = b.now;
    // 401 → authenticated REGISTER → 200 with the granted 120 s.
    assert_eq!(
        b.seen.iter().map(|s| s.1).collect::<Vec<_>>(),
        [false, true]
    );
    assert!(matches!(
        b.events[0].1,
        UaEvent::Registered { expires: 120, .. }
    ));
    // The registrar shortens the next grant to 30 s; refreshes keep coming before expiry.
    b.mode = Mode::Grant(30);
    b.run_until(start + Duration::from_secs(300));
    let at = b.registered_at();
    assert!(at.len() >= 8, "{} registrations", at.len());
    assert_eq!(
        at[1] - at[0],
        Duration::from_secs(60),
        "refresh at half of 120 s"
    );
    for w in at[1..].windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap < Duration::from_secs(30),
            "refresh after {gap:?} of a 30 s binding"
        );
    }
}

#[test]
fn registrar_down_backs_off_then_recovers() {
    let mut b = Bench::new();
    let start = b.now;
    b.mode = Mode::Silent;
    // The refresh at 60 s times out (64*T1 = 32 s), then retries back off 2, 4, 8 ... s.
    b.run_until(start + Duration::from_secs(400));
    let fails = b.failures_at();
    assert!(fails.len() >= 4, "{fails:?}");
    assert!(fails[0] >= start + Duration::from_secs(92));
    // Each retry itself times out after 32 s: the gaps are 32 s + the back-off.
    let gaps: Vec<u64> = fails.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(&gaps[..3], &[34, 36, 40], "{gaps:?}");
    // The registrar comes back: the next retry registers again, with a fresh challenge.
    b.mode = Mode::Grant(120);
    let before = b.registered_at().len();
    let back = b.now;
    b.run_until(b.now + Duration::from_secs(100));
    let at = b.registered_at();
    assert!(at.len() > before);
    // Within one back-off (≤ 60 s) plus one transaction timeout of the registrar coming back.
    assert!(
        at[before] - back <= Duration::from_secs(92),
        "{:?}",
        at[before] - back
    );
}

#[test]
fn refusal_backs_off_exponentially_to_a_minute() {
    let mut b = Bench::new();
    let start = b.now;
    b.mode = Mode::Refuse;
    b.run_until(start + Duration::from_secs(60 + 2 + 4 + 8 + 16 + 32 + 60 + 60 + 1));
    let fails = b.failures_at();
    let gaps: Vec<u64> = fails.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [2, 4, 8, 16, 32, 60, 60], "{gaps:?}");
}

proptest! {
    #[test]
    fn retry_delay_is_monotone_and_bounded(n in 0u32..10_000) {
        let d = register_retry_delay(n);
        prop_assert!(d >= Duration::from_secs(2) && d <= Duration::from_secs(60));
        prop_assert!(register_retry_delay(n + 1) >= d);
    }
}
