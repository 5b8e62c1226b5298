//! RTP packets from the network (crates/media rtp.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_media::rtp::{looks_like_rtcp, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtcp(data);
    let _ = RtpPacket::parse(data);
});
