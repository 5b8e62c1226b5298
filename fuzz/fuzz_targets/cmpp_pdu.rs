//! CMPP 2.0 messages from the gateway (crates/cmpp pdu.rs): decode a stream of messages,
//! then the status reports and message text inside them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_cmpp::pdu::{decode, StatusReport};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((pdu, used))) = decode(rest) {
        let _ = pdu.encode();
        if used == 0 || used > rest.len() {
            panic!("decode used {used} of {} bytes", rest.len());
        }
        rest = &rest[used..];
    }
    let _ = StatusReport::decode(data);
    if let Some((&fmt, text)) = data.split_first() {
        let _ = waihu_cmpp::text::decode(fmt, text);
        let _ = waihu_cmpp::text::split_udh(text);
    }
});
