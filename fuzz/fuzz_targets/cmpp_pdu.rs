//! CMPP 2.0 and 3.0 messages from the gateway (crates/cmpp pdu.rs): decode a stream of
//! messages in each version, then the status reports and message text inside them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_cmpp::pdu::{decode, StatusReport, Version};

fuzz_target!(|data: &[u8]| {
    for v in [Version::V2_0, Version::V3_0] {
        let mut rest = data;
        while let Ok(Some((pdu, used))) = decode(rest, v) {
            let _ = pdu.encode(v);
            if used == 0 || used > rest.len() {
                panic!("decode used {used} of {} bytes", rest.len());
            }
            rest = &rest[used..];
        }
    }
    let _ = StatusReport::decode(data);
    if let Some((&fmt, text)) = data.split_first() {
        let _ = waihu_cmpp::text::decode(fmt, text);
        let _ = waihu_cmpp::text::split_udh(text);
    }
});
