//! SDP bodies of INVITEs and answers (crates/sip sdp.rs): parse, then what the UA
//! does with an offer (answer it) or an answer (negotiate from it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_sip::{Codec, Sdp};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let _ = sdp.negotiated_from_answer();
    let rtp = "127.0.0.1:40000".parse().unwrap();
    let _ = Sdp::answer(&sdp, rtp, &[Codec::Pcmu, Codec::Pcma], 1);
    let _ = Sdp::parse(&sdp.to_bytes());
});
