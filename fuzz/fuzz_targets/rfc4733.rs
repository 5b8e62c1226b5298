//! RFC 4733 telephone-event payloads (crates/media dtmf.rs), as the receiver sees
//! them: the first 4 bytes are the RTP timestamp, the rest the payload.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_media::dtmf::{DtmfReceiver, EventPayload};

fuzz_target!(|data: &[u8]| {
    let _ = EventPayload::parse(data);
    let mut rx = DtmfReceiver::default();
    for chunk in data.chunks(8) {
        if chunk.len() < 4 {
            break;
        }
        let ts = u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let _ = rx.handle(ts, &chunk[4..]);
    }
});
