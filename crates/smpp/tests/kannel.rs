//! Kannel (bearerbox + smsbox, Debian `kannel`) as a real SMS gateway in front of the
//! Net::SMPP SMSC (`peer/smsc.pl`): messages sent to Kannel's `sendsms` HTTP interface
//! must reach the SMSC as submit_sm PDUs, and the SMSC's delivery receipts must come back
//! through Kannel as delivery reports. The same pairing `waihu bench sms` measures.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use waihu_smpp::peer::{PeerOptions, PeerSmsc};
use waihu_testkit::kannel::{self, Kannel};

fn have_peers() -> bool {
    waihu_testkit::have_peer_at("kannel", std::path::Path::new(kannel::BEARERBOX))
        && waihu_testkit::have_peer_at("kannel", std::path::Path::new(kannel::SMSBOX))
        && waihu_testkit::have_peer("perl")
        && (PeerSmsc::available()
            || waihu_testkit::have_peer_at(
                "libnet-smpp-perl",
                std::path::Path::new("/usr/share/perl5/Net/SMPP.pm"),
            ))
}

/// A listener for Kannel's delivery-report callbacks: every request line's target.
fn dlr_listener() -> (u16, mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind DLR listener");
    let port = l.local_addr().expect("local addr").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut first = String::new();
            if BufReader::new(&conn).read_line(&mut first).is_err() {
                continue;
            }
            let target = first.split_whitespace().nth(1).unwrap_or("").to_string();
            let _ = conn
                .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx.send(target).is_err() {
                return;
            }
        }
    });
    (port, rx)
}

fn hex_bytes(h: &str) -> Vec<u8> {
    (0..h.len() / 2)
        .map(|k| u8::from_str_radix(&h[2 * k..2 * k + 2], 16).unwrap_or(0))
        .collect()
}

#[test]
fn messages_sent_through_kannel_reach_the_smsc_and_report_back() {
    if !have_peers() {
        return;
    }
    let smsc = PeerSmsc::start(&PeerOptions {
        receipts: true,
        mo_reply: None,
    })
    .expect("start SMSC");
    let dir = tempfile::tempdir().expect("temp dir");
    let k = Kannel::start(
        dir.path(),
        &kannel::Config {
            smsc_port: smsc.port,
            ..kannel::Config::default()
        },
    )
    .expect("start Kannel");
    let (dlr_port, reports) = dlr_listener();

    let chinese = "【外呼】您好，您的专属优惠券已经发放到账户，有效期三十天，可在下单时直接抵扣。\
                   如有疑问请拨打客服热线，我们将竭诚为您服务，感谢您的支持。回复TD退订";
    let sent = [
        (
            "+8613800000001",
            "Your coupon is ready. Reply STOP to opt out.",
        ),
        ("+8613800000002", "Second message"),
        ("+8613800000003", chinese),
    ];
    for (i, (to, text)) in sent.iter().enumerate() {
        let dlr = format!("http://127.0.0.1:{dlr_port}/dlr?n={i}&type=%d");
        let (status, body) = k
            .sendsms("10690000", to, text, Some(&dlr))
            .expect("sendsms request");
        assert!(
            (200..300).contains(&status) && body.contains("Accepted"),
            "Kannel refused message {i}: {status} {body}"
        );
    }

    // One English segment each, two UCS-2 segments for the Chinese text.
    assert!(
        smsc.wait_for(Duration::from_secs(10), |l| {
            l.iter().filter(|l| l.starts_with("SUBMIT ")).count() >= 4
        }),
        "the SMSC saw {:?}",
        smsc.lines()
    );
    let submits: Vec<Vec<String>> = smsc
        .lines()
        .iter()
        .filter(|l| l.starts_with("SUBMIT "))
        .map(|l| l.split(' ').map(str::to_string).collect())
        .collect();
    assert_eq!(submits.len(), 4, "{submits:?}");
    let to = |n: &str| submits.iter().filter(|s| s[2] == n).collect::<Vec<_>>();
    let first = to("8613800000001");
    assert_eq!(first.len(), 1);
    assert_eq!(
        waihu_smpp::text::decode(0, &hex_bytes(&first[0][6])),
        sent[0].1
    );
    assert_eq!(to("8613800000002").len(), 1);
    let zh = to("8613800000003");
    assert_eq!(zh.len(), 2, "{zh:?}");
    let mut parts: Vec<(u8, Vec<u8>)> = zh
        .iter()
        .map(|s| {
            let esm: u8 = s[3].parse().unwrap_or(0);
            assert_eq!(esm & 0x40, 0x40, "UDHI set on a concatenated part");
            assert_eq!(s[4], "8", "UCS-2");
            let b = hex_bytes(&s[6]);
            let udhl = b[0] as usize;
            (b[udhl], b[udhl + 1..].to_vec())
        })
        .collect();
    parts.sort();
    let joined: Vec<u8> = parts.into_iter().flat_map(|(_, b)| b).collect();
    assert_eq!(waihu_smpp::text::decode(8, &joined), chinese);

    // The SMSC's receipts come back as "delivered" reports for each message.
    let until = Instant::now() + Duration::from_secs(10);
    let mut delivered = std::collections::BTreeSet::new();
    while delivered.len() < sent.len() && Instant::now() < until {
        if let Ok(target) = reports.recv_timeout(Duration::from_millis(200)) {
            if target.contains("type=1") {
                if let Some(n) = target
                    .split(['?', '&'])
                    .find_map(|kv| kv.strip_prefix("n="))
                {
                    delivered.insert(n.to_string());
                }
            }
        }
    }
    assert_eq!(
        delivered.len(),
        sent.len(),
        "delivery reports for {delivered:?}; Kannel logs in {}",
        k.dir.display()
    );
}
