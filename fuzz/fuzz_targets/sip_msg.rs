//! SIP messages as they arrive on UDP or TCP (crates/sip msg.rs): the datagram
//! parser, the TCP stream framer, and the header-value parsers the UA applies to
//! what was parsed (URIs, name-addrs, Via, CSeq, comma lists, auth challenges).
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_sip::auth::Challenge;
use waihu_sip::msg::{parse_cseq, split_comma, NameAddr, SipUri, Via};
use waihu_sip::{Message, StreamFramer};

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = Message::parse(data) {
        let h = msg.headers();
        for v in h.get_all("Via") {
            if let Some(via) = Via::parse(v) {
                let _ = via.branch();
            }
        }
        for name in ["From", "To", "Contact", "Route", "Record-Route"] {
            for v in h.get_all(name) {
                for part in split_comma(v) {
                    if let Some(na) = NameAddr::parse(part) {
                        let _ = na.tag();
                    }
                }
            }
        }
        if let Some(c) = h.get("CSeq") {
            let _ = parse_cseq(c);
        }
        for name in ["WWW-Authenticate", "Proxy-Authenticate"] {
            if let Some(v) = h.get(name) {
                let _ = Challenge::parse(v);
            }
        }
        if let Message::Request(r) = &msg {
            if let Some(u) = SipUri::parse(&r.uri) {
                let _ = u.socket_addr();
            }
            let _ = Message::parse(&r.to_bytes());
        }
    }
    // The same bytes as a TCP stream, fed in two pieces.
    let mut framer = StreamFramer::new();
    let cut = data.len() / 2;
    framer.push(&data[..cut]);
    while let Ok(Some(m)) = framer.next_message() {
        let _ = Message::parse(&m);
    }
    framer.push(&data[cut..]);
    while let Ok(Some(m)) = framer.next_message() {
        let _ = Message::parse(&m);
    }
});
