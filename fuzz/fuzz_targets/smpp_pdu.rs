//! SMPP PDUs from the SMSC (crates/smpp pdu.rs): decode a stream of PDUs, then
//! the delivery receipts and message text inside them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_smpp::pdu::decode;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((pdu, used))) = decode(rest) {
        let _ = pdu.encode();
        if used == 0 || used > rest.len() {
            panic!("decode used {used} of {} bytes", rest.len());
        }
        rest = &rest[used..];
    }
    if let Some((&dc, text)) = data.split_first() {
        let s = waihu_smpp::text::decode(dc, text);
        let _ = waihu_smpp::receipt::parse_text(&s);
    }
});
