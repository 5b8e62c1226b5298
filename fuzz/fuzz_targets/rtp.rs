//! RTP packets from the network (crates/media rtp.rs), and SRTP/SRTCP unprotect
//! (crates/media srtp.rs) of the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_media::rtp::{looks_like_rtcp, RtpPacket};

fuzz_target!(|data: &[u8]| {
    let _ = looks_like_rtcp(data);
    let _ = RtpPacket::parse(data);
    let key = waihu_media::SrtpKey::from_bytes(&[7; 30]).unwrap();
    let mut ctx = waihu_media::SrtpContext::new(&key);
    let _ = ctx.unprotect_rtp(&mut data.to_vec());
    let _ = ctx.unprotect_rtcp(&mut data.to_vec());
});
