//! The fuzz seeds (`fuzz/corpus/cmpp_pdu`) are whole, valid gateway messages, so the
//! fuzzer starts from inputs that reach deep into the decoder; `*_v3.bin` are CMPP 3.0's.
use waihu_cmpp::pdu::{decode, Body, StatusReport, Version};

#[test]
fn fuzz_seeds_decode_to_what_their_names_say() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/cmpp_pdu");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("seed corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("seed");
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let version = if name.ends_with("_v3.bin") {
            Version::V3_0
        } else {
            Version::V2_0
        };
        let mut rest = &bytes[..];
        let mut bodies = Vec::new();
        while !rest.is_empty() {
            let (p, used) = decode(rest, version)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .unwrap_or_else(|| panic!("{}: truncated", path.display()));
            bodies.push(p.body);
            rest = &rest[used..];
        }
        match (name, &bodies[..]) {
            ("connect_resp.bin", [Body::ConnectResp { status: 0, .. }]) => {}
            (
                "connect_resp_v3.bin",
                [Body::ConnectResp {
                    status: 0,
                    version: 0x30,
                    ..
                }],
            ) => {}
            (
                "submit_resp_flow_control_and_active_test_v3.bin",
                [Body::SubmitResp { result: 8, .. }, Body::ActiveTest],
            ) => {}
            ("deliver_report_v3.bin", [Body::Deliver(d)]) => {
                assert_eq!((d.registered_delivery, d.content.len()), (1, 71));
                let r = StatusReport::decode(&d.content).unwrap();
                assert!(r.delivered());
                assert_eq!(r.dest_terminal_id, "13800000001");
            }
            ("submit_resp_and_active_test.bin", [Body::SubmitResp { .. }, Body::ActiveTest]) => {}
            ("deliver_report.bin", [Body::Deliver(d)]) => {
                assert_eq!(d.registered_delivery, 1);
                assert!(StatusReport::decode(&d.content).unwrap().delivered());
            }
            ("deliver_mo_ucs2_part.bin", [Body::Deliver(d)]) => {
                let (_, total, _, body) = waihu_cmpp::text::split_udh(&d.content).unwrap();
                assert_eq!(
                    (total, waihu_cmpp::text::decode(8, body).as_str()),
                    (2, "退订")
                );
            }
            ("deliver_mo_gbk.bin", [Body::Deliver(d)]) => {
                assert_eq!(waihu_cmpp::text::decode(d.msg_fmt, &d.content), "退订");
            }
            ("terminate.bin", [Body::Terminate]) => {}
            other => panic!("unexpected seed {other:?}"),
        }
        seen += 1;
    }
    assert_eq!(seen, 9);
}
