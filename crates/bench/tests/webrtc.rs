//! `waihu bench webrtc` at its smallest, as CI runs it: one call per path (the
//! phone over SIP to a virtual callee, the console's voice test in headless
//! Chromium with Opus, then with G.711), all to the same English bot in one
//! process. Checked: each path timed one turn at the listener's ear, with the
//! codec it was meant to use; the figures are printed.
//!
//! Needs Chromium, espeak-ng and the speech models (scripts/setup.sh;
//! `have_peer` fails under CI when one is missing).
use std::path::Path;

use waihu_testkit::{have_peer, have_peer_at};

#[test]
fn the_browser_and_the_phone_are_timed_at_the_ear_in_one_run() {
    if !have_peer_at("chromium", Path::new(waihu_cdp::CHROMIUM)) || !have_peer("espeak-ng") {
        return;
    }
    let home = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(waihu_testkit::models_dir(), home.path().join("models")).unwrap();
    let r = waihu_bench::webrtc::measure(
        home.path(),
        &waihu_bench::webrtc::Args {
            calls: 1,
            json: true,
        },
    )
    .unwrap();
    let codecs: Vec<&str> = r.paths.iter().map(|p| p.codec.as_str()).collect();
    assert_eq!(codecs, ["PCMU", "opus", "PCMU"], "{r:?}");
    for p in &r.paths {
        assert!(p.turns >= 1, "{r:?}");
        assert!(
            p.p50_ms > 0.0 && p.p50_ms < 10_000.0,
            "{}: {} ms",
            p.path,
            p.p50_ms
        );
    }
    println!(
        "mouth to ear: phone over SIP {:.0} ms, browser Opus {:.0} ms ({:.2}×), browser G.711 {:.0} ms ({:.2}×)",
        r.paths[0].p50_ms, r.paths[1].p50_ms, r.opus_vs_sip, r.paths[2].p50_ms, r.g711_vs_sip
    );
}
