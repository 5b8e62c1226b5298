//! SDP bodies of INVITEs and answers (crates/sip sdp.rs): parse, then what the UA
//! does with an offer (answer it) or an answer (negotiate from it).
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_sip::{Codec, SdesKey, Sdp, SrtpMode};

fuzz_target!(|data: &[u8]| {
    let Ok(sdp) = Sdp::parse(data) else { return };
    let _ = sdp.negotiated_from_answer();
    let rtp = "127.0.0.1:40000".parse().unwrap();
    let _ = Sdp::answer(&sdp, rtp, &[Codec::Pcmu, Codec::Pcma], 1);
    let ours = SdesKey {
        tag: 1,
        key_salt: [1; 30],
    };
    let _ = Sdp::answer_srtp(&sdp, rtp, &[Codec::Pcmu], 1, SrtpMode::Mandatory, Some(&ours));
    let _ = Sdp::parse(&sdp.to_bytes());
});
