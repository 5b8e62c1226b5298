//! RTCP compound packets from the network (crates/media rtcp.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_media::rtcp::Report;

fuzz_target!(|data: &[u8]| {
    let _ = Report::parse_compound(data);
});
