use super::*;
use crate::auth::Challenge;
use crate::msg::Message;

const SRC: &str = "127.0.0.1:5070";

fn reg() -> Registrar {
    Registrar::new(
        RegistrarConfig::default(),
        [7u8; 32],
        [
            ("li".to_string(), Secret::Password("s3cret".into())),
            (
                "wang".to_string(),
                Secret::Ha1 {
                    md5: Some(hash(Algorithm::Md5, "wang:waihu:pw")),
                    sha256: None,
                },
            ),
        ],
    )
}

/// A REGISTER for `user` with `extra` header lines (each ending in CRLF).
fn request(user: &str, call_id: &str, cseq: u32, extra: &str) -> Request {
    let raw = format!(
        "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{cseq}\r\n\
From: <sip:{user}@127.0.0.1>;tag=a\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: {call_id}\r\n\
CSeq: {cseq} REGISTER\r\n{extra}Content-Length: 0\r\n\r\n"
    );
    match Message::parse(raw.as_bytes()) {
        Ok(Message::Request(r)) => r,
        other => panic!("{other:?}"),
    }
}

fn header<'a>(r: &'a Reply, name: &str) -> Vec<&'a str> {
    r.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// Answers the challenge in `r` (the algorithm it prefers, or MD5 when `md5`).
fn authorize(mut req: Request, r: &Reply, user: &str, pw: &str, nc: u32, md5: bool) -> Request {
    let lines = header(r, "WWW-Authenticate");
    let ch = if md5 {
        lines
            .iter()
            .filter_map(|l| Challenge::parse(l))
            .find(|c| c.algorithm == Algorithm::Md5)
            .unwrap()
    } else {
        Challenge::best(lines).unwrap()
    };
    let v = ch.respond("REGISTER", &req.uri, user, pw, "cn0nce", nc);
    req.headers.push("Authorization", v);
    req
}

/// Challenge, then the answer: the final reply.
fn register(
    r: &mut Registrar,
    user: &str,
    pw: &str,
    cid: &str,
    cseq: u32,
    extra: &str,
    now: Ms,
) -> Reply {
    let ch = r.handle(&request(user, cid, cseq, extra), SRC.parse().unwrap(), now);
    assert_eq!(ch.status, 401, "{ch:?}");
    let req = authorize(request(user, cid, cseq + 1, extra), &ch, user, pw, 1, false);
    r.handle(&req, SRC.parse().unwrap(), now)
}

#[test]
fn challenges_with_sha256_then_md5_and_accepts_the_right_password() {
    let mut r = reg();
    let ch = r.handle(
        &request("li", "c1", 1, "Contact: <sip:li@127.0.0.1:5070>\r\n"),
        SRC.parse().unwrap(),
        1_000,
    );
    assert_eq!(ch.status, 401);
    let lines = header(&ch, "WWW-Authenticate");
    assert_eq!(lines.len(), 2);
    assert!(lines[0].contains("algorithm=SHA-256") && lines[0].contains("realm=\"waihu\""));
    assert!(lines[1].contains("algorithm=MD5") && lines[1].contains("qop=\"auth\""));
    for md5 in [false, true] {
        let req = authorize(
            request(
                "li",
                "c1",
                2 + u32::from(md5),
                "Contact: <sip:li@127.0.0.1:5070>\r\n",
            ),
            &ch,
            "li",
            "s3cret",
            1 + u32::from(md5),
            md5,
        );
        let ok = r.handle(&req, SRC.parse().unwrap(), 1_500);
        assert_eq!(ok.status, 200, "{ok:?}");
        assert_eq!(
            header(&ok, "Contact"),
            ["<sip:li@127.0.0.1:5070>;expires=3600"]
        );
    }
    let b = r.lookup("li", 2_000);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, "sip:li@127.0.0.1:5070");
    assert_eq!(b[0].source, SRC.parse().unwrap());
    // An HA1-only user (MD5 only: SHA-256 answers fail).
    let ok = register(
        &mut r,
        "wang",
        "pw",
        "w1",
        1,
        "Contact: <sip:wang@127.0.0.1:5071>\r\n",
        2_000,
    );
    assert_eq!(ok.status, 403, "no SHA-256 HA1 for wang: {ok:?}");
    let ch = r.handle(
        &request("wang", "w2", 1, "Contact: <sip:wang@127.0.0.1:5071>\r\n"),
        SRC.parse().unwrap(),
        2_000,
    );
    let req = authorize(
        request("wang", "w2", 2, "Contact: <sip:wang@127.0.0.1:5071>\r\n"),
        &ch,
        "wang",
        "pw",
        1,
        true,
    );
    assert_eq!(r.handle(&req, SRC.parse().unwrap(), 2_000).status, 200);
}

#[test]
fn wrong_password_unknown_user_and_foreign_aor_are_forbidden_not_rechallenged() {
    let mut r = reg();
    let c = "Contact: <sip:li@127.0.0.1:5070>\r\n";
    assert_eq!(register(&mut r, "li", "wrong", "c", 1, c, 0).status, 403);
    assert_eq!(register(&mut r, "zhao", "s3cret", "c", 1, c, 0).status, 403);
    // li's credentials for wang's address of record.
    let ch = r.handle(&request("wang", "c", 1, c), SRC.parse().unwrap(), 0);
    let req = authorize(request("wang", "c", 2, c), &ch, "li", "s3cret", 1, false);
    assert_eq!(r.handle(&req, SRC.parse().unwrap(), 0).status, 403);
    assert!(r.lookup("li", 0).is_empty() && r.lookup("wang", 0).is_empty());
    // A nonce not minted here (or tampered) is challenged afresh, not refused.
    let ch = r.handle(&request("li", "c", 1, c), SRC.parse().unwrap(), 0);
    let mut req = authorize(request("li", "c", 2, c), &ch, "li", "s3cret", 1, false);
    let v = req
        .headers
        .get("Authorization")
        .unwrap()
        .replace("nonce=\"0", "nonce=\"1");
    req.headers.set("Authorization", v);
    let again = r.handle(&req, SRC.parse().unwrap(), 0);
    assert_eq!(again.status, 401);
    assert!(!header(&again, "WWW-Authenticate")[0].contains("stale"));
    // Another secret (another process) does not recognise the nonce either.
    let other = Registrar::new(RegistrarConfig::default(), [8u8; 32], []);
    let (n5, n5b, n50) = (r.nonce(5), r.nonce(5), r.nonce(50));
    assert_ne!(n5, n5b, "two nonces of the same millisecond differ");
    assert!(other.nonce_time(&n5, 10).is_none());
    assert_eq!(r.nonce_time(&n5, 10), Some(5));
    assert!(r.nonce_time(&n50, 10).is_none(), "from the future");
}

#[test]
fn a_stale_nonce_is_rechallenged_with_stale_true_and_replayed_nc_too() {
    let mut r = reg();
    let c = "Contact: <sip:li@127.0.0.1:5070>\r\n";
    let ch = r.handle(&request("li", "c", 1, c), SRC.parse().unwrap(), 0);
    let late = authorize(request("li", "c", 2, c), &ch, "li", "s3cret", 1, false);
    let stale = r.handle(&late, SRC.parse().unwrap(), 300_001);
    assert_eq!(stale.status, 401);
    assert!(header(&stale, "WWW-Authenticate")
        .iter()
        .all(|l| l.contains("stale=true")));
    // A stale nonce with a wrong password is still a failure.
    let bad = authorize(request("li", "c", 3, c), &ch, "li", "nope", 1, false);
    assert_eq!(r.handle(&bad, SRC.parse().unwrap(), 300_001).status, 403);
    // Fresh: accepted once per nc; the same nc again is a replay.
    let ok = authorize(request("li", "c", 4, c), &ch, "li", "s3cret", 1, false);
    assert_eq!(r.handle(&ok, SRC.parse().unwrap(), 1_000).status, 200);
    let replay = authorize(request("li", "c", 5, c), &ch, "li", "s3cret", 1, false);
    let re = r.handle(&replay, SRC.parse().unwrap(), 1_000);
    assert_eq!(re.status, 401);
    assert!(header(&re, "WWW-Authenticate")[0].contains("stale=true"));
    let next = authorize(request("li", "c", 6, c), &ch, "li", "s3cret", 2, false);
    assert_eq!(r.handle(&next, SRC.parse().unwrap(), 1_000).status, 200);
    // Without qop (RFC 2069 style) after qop=auth was offered: refused.
    let mut q = request("li", "c", 7, c);
    let n = r.nonce(1_000);
    q.headers.push("Authorization", format!(
        "Digest username=\"li\", realm=\"waihu\", nonce=\"{n}\", uri=\"sip:127.0.0.1:5060\", response=\"00\""
    ));
    assert_eq!(r.handle(&q, SRC.parse().unwrap(), 1_000).status, 403);
}

#[test]
fn bindings_expire_are_removed_and_too_brief_is_423() {
    let mut r = reg();
    let ok = register(
        &mut r,
        "li",
        "s3cret",
        "c",
        1,
        "Contact: <sip:li@127.0.0.1:5070>;expires=120\r\n",
        0,
    );
    assert_eq!(ok.status, 200);
    assert_eq!(r.lookup("li", 119_999).len(), 1);
    assert!(r.lookup("li", 120_000).is_empty(), "expired");
    // Too brief → 423 with Min-Expires, nothing bound.
    let brief = register(
        &mut r,
        "li",
        "s3cret",
        "d",
        1,
        "Contact: <sip:li@127.0.0.1:5070>\r\nExpires: 30\r\n",
        200_000,
    );
    assert_eq!(brief.status, 423);
    assert_eq!(header(&brief, "Min-Expires"), ["60"]);
    assert!(r.lookup("li", 200_000).is_empty());
    // Too long is shortened to max_expires; two contacts; a query lists both.
    let two = register(&mut r, "li", "s3cret", "e", 1,
        "Contact: <sip:li@127.0.0.1:5070>, <sip:li@127.0.0.1:5072;transport=tcp>\r\nExpires: 99999\r\n", 200_000);
    assert_eq!(two.status, 200);
    assert_eq!(header(&two, "Contact").len(), 2);
    assert!(header(&two, "Contact")
        .iter()
        .all(|c| c.ends_with(";expires=3600")));
    let q = register(&mut r, "li", "s3cret", "e", 3, "", 260_000);
    assert_eq!(q.status, 200);
    assert!(header(&q, "Contact")
        .iter()
        .all(|c| c.ends_with(";expires=3540")));
    // Expires: 0 removes one; `*` removes all (and needs Expires: 0 alone).
    let one = register(
        &mut r,
        "li",
        "s3cret",
        "e",
        5,
        "Contact: <sip:li@127.0.0.1:5070>;expires=0\r\n",
        261_000,
    );
    assert_eq!(header(&one, "Contact").len(), 1);
    assert_eq!(
        r.lookup("li", 261_000)[0].contact,
        "sip:li@127.0.0.1:5072;transport=tcp"
    );
    let star_bad = register(&mut r, "li", "s3cret", "e", 7, "Contact: *\r\n", 262_000);
    assert_eq!(star_bad.status, 400);
    let star = register(
        &mut r,
        "li",
        "s3cret",
        "e",
        9,
        "Contact: *\r\nExpires: 0\r\n",
        262_000,
    );
    assert_eq!(star.status, 200);
    assert!(header(&star, "Contact").is_empty());
    assert!(r.lookup("li", 262_000).is_empty());
    assert_eq!(r.aor_count(), 0);
}

#[test]
fn an_older_cseq_on_the_same_call_id_is_refused_and_changes_nothing() {
    let mut r = reg();
    let c = "Contact: <sip:li@127.0.0.1:5070>\r\n";
    assert_eq!(
        register(&mut r, "li", "s3cret", "same", 10, c, 0).status,
        200
    );
    // CSeq 11 was the authorised request; 7+1 = 8 is older.
    let old = register(
        &mut r,
        "li",
        "s3cret",
        "same",
        7,
        "Contact: <sip:li@127.0.0.1:5070>;expires=0\r\n",
        1_000,
    );
    assert_eq!(old.status, 500, "{old:?}");
    assert_eq!(r.lookup("li", 1_000).len(), 1, "nothing removed");
    // A different Call-ID (the phone restarted) may remove it whatever its CSeq.
    let other = register(
        &mut r,
        "li",
        "s3cret",
        "restart",
        1,
        "Contact: <sip:li@127.0.0.1:5070>;expires=0\r\n",
        2_000,
    );
    assert_eq!(other.status, 200);
    assert!(r.lookup("li", 2_000).is_empty());
    // A newer CSeq refreshes.
    assert_eq!(
        register(&mut r, "li", "s3cret", "same", 20, c, 3_000).status,
        200
    );
    assert_eq!(
        register(&mut r, "li", "s3cret", "same", 30, c, 4_000).status,
        200
    );
    assert_eq!(r.lookup("li", 4_000)[0].cseq, 31);
}

#[test]
fn the_user_agent_client_registers_against_it() {
    // The crate's own REGISTER client meets the registrar: challenge, answer, bound.
    use crate::ua::{Config, Credentials, Registration, Transport, UaEvent, UserAgent};
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let server: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let client_addr: SocketAddr = "127.0.0.1:5070".parse().unwrap();
    let mut srv = UserAgent::new(Config::new(server, "waihu"), 1);
    srv.set_registrar(t0, reg());
    let mut cli = UserAgent::new(Config::new(client_addr, "li"), 2);
    let regn = Registration {
        registrar: "sip:127.0.0.1:5060".into(),
        proxy: None,
        transport: Transport::Udp,
        expires: 600,
        credentials: Some(Credentials {
            username: "li".into(),
            password: "s3cret".into(),
        }),
    };
    cli.register(t0, regn);
    let mut now = t0;
    let mut registered = None;
    for _ in 0..20 {
        while let Some(t) = cli.poll_transmit() {
            srv.handle_input(now, client_addr, Transport::Udp, &t.bytes);
        }
        while let Some(t) = srv.poll_transmit() {
            cli.handle_input(now, server, Transport::Udp, &t.bytes);
        }
        while let Some(ev) = cli.poll_event() {
            if let UaEvent::Registered { expires, .. } = ev {
                registered = Some(expires);
            }
        }
        now += Duration::from_millis(10);
    }
    assert_eq!(registered, Some(600));
    let b = srv.registrar_lookup("li", now);
    assert_eq!(b.len(), 1, "{b:?}");
    assert!(b[0].contact.contains("127.0.0.1:5070"), "{b:?}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn header_line() -> impl Strategy<Value = String> {
        prop_oneof![
            "Contact: [ -~]{0,40}\r\n",
            "Contact: <sip:li@127\\.0\\.0\\.1:[0-9]{1,5}>(;expires=[0-9]{1,6})?\r\n",
            Just("Contact: *\r\n".to_string()),
            "Expires: [0-9a-z]{0,8}\r\n",
            "Authorization: Digest [ -~]{0,80}\r\n",
            "Authorization: [ -~]{0,40}\r\n",
            "To: [ -~]{0,30}\r\n",
            "CSeq: [0-9 A-Z]{0,12}\r\n",
        ]
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_registers(
            user in "[a-z]{0,4}",
            lines in proptest::collection::vec(header_line(), 0..6),
            now in 0u64..10_000_000,
        ) {
            let mut r = reg();
            let req = request(if user.is_empty() { "li" } else { &user }, "p", 1, &lines.concat());
            let reply = r.handle(&req, SRC.parse().unwrap(), now);
            prop_assert!((200..700).contains(&reply.status));
            // Without valid credentials nothing is ever bound.
            prop_assert!(reply.status != 200);
            prop_assert!(r.lookup("li", now).is_empty());
        }

        #[test]
        fn never_panics_on_mutated_authorized_registers(
            pos in 0usize..600,
            byte in any::<u8>(),
            cut in 0usize..600,
            now in 0u64..1_000_000,
        ) {
            let mut r = reg();
            let extra = "Contact: <sip:li@127.0.0.1:5070>;expires=120\r\n";
            let ch = r.handle(&request("li", "m", 1, extra), SRC.parse().unwrap(), now);
            let good = authorize(request("li", "m", 2, extra), &ch, "li", "s3cret", 1, false);
            let mut bytes = good.to_bytes();
            if !bytes.is_empty() {
                let p = pos % bytes.len();
                bytes[p] = byte;
                bytes.truncate(cut.max(p + 1));
            }
            if let Ok(Message::Request(req)) = Message::parse(&bytes) {
                let reply = r.handle(&req, SRC.parse().unwrap(), now);
                prop_assert!((200..700).contains(&reply.status));
                let live = r.lookup("li", now);
                // A binding exists only after a 200, and then it is li's own contact.
                prop_assert!(live.is_empty() || reply.status == 200);
                prop_assert!(live.len() <= 1);
            }
        }

        #[test]
        fn expiry_and_lookup_agree(expires in 60u32..5000, later in 0u64..6_000_000) {
            let mut r = reg();
            let ok = register(&mut r, "li", "s3cret", "x", 1, &format!("Contact: <sip:li@127.0.0.1:5070>;expires={expires}\r\n"), 0);
            prop_assert_eq!(ok.status, 200);
            let granted = u64::from(expires.min(3600)) * 1000;
            prop_assert_eq!(r.lookup("li", later).len(), usize::from(later < granted));
        }
    }
}
