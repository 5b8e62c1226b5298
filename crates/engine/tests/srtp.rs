//! SDES-SRTP on live calls: our UAC against our UAS, and against baresip with its `srtp`
//! module in mandatory mode. Recordings hold the decrypted audio, so a recording that
//! correlates with the peer's prompt proves the decryption is real.
//! A peer test whose binary is missing skips loudly, and fails when `CI` is set.
//! Ports: 27300-27399.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use waihu_core::CallOutcome;
use waihu_engine::call::{self, CallOptions, CallReport, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_media::wav;
use waihu_sip::SrtpMode;
use waihu_testkit::signal::{best_correlation, melody};
use waihu_testkit::{have_peer, Peer};

async fn endpoint(user: &str) -> SipEndpoint {
    SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), user, None)
        .await
        .unwrap()
}

/// One call from our UAC (`uac_srtp`) to our UAS (`uas_srtp`), each playing a prompt and
/// recording; returns both reports and the recordings' left channels (what each heard).
async fn self_call(
    uac_srtp: SrtpMode,
    uas_srtp: SrtpMode,
    dir: &Path,
) -> (
    CallReport,
    CallReport,
    Vec<i16>,
    Vec<i16>,
    Vec<i16>,
    Vec<i16>,
) {
    let uas = Arc::new(endpoint("callee").await);
    let callee_prompt = melody(3.0, 5);
    let caller_prompt = melody(3.0, 6);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let uas_opts = MediaOptions {
        play: Some(callee_prompt.clone().into()),
        record: Some(dir.to_path_buf()),
        max_duration: Duration::from_secs(4),
        srtp: uas_srtp,
        ..MediaOptions::default()
    };
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(100),
        uas_opts,
        tx,
    ));
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:callee@{}", uas.local_addr()));
    opts.media.play = Some(caller_prompt.clone().into());
    opts.media.max_duration = Duration::from_secs(3);
    opts.media.record = Some(dir.join("uac.wav"));
    opts.media.srtp = uac_srtp;
    opts.ring_timeout = Duration::from_secs(5);
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        call::place_call(&uac, opts, &mut |_| {}),
    )
    .await
    .expect("call bounded")
    .unwrap();
    let u = tokio::time::timeout(Duration::from_secs(8), rx.recv())
        .await
        .expect("UAS report bounded")
        .unwrap()
        .unwrap();
    let read = |p: Option<&std::path::PathBuf>| {
        p.map(|p| wav::read_stereo(p).unwrap().0)
            .unwrap_or_default()
    };
    let left_uac = read(r.recording.as_ref());
    let left_uas = read(u.recording.as_ref());
    (r, u, left_uac, left_uas, caller_prompt, callee_prompt)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_calls_our_uas_with_mandatory_srtp() {
    let dir = tempfile::tempdir().unwrap();
    let (r, u, heard_by_uac, heard_by_uas, caller_prompt, callee_prompt) =
        self_call(SrtpMode::Mandatory, SrtpMode::Mandatory, dir.path()).await;
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    for rep in [&r, &u] {
        assert!(rep.rtp.srtp, "media was SRTP: {rep:?}");
        assert!(rep.rtp.packets_received > 50, "{rep:?}");
        assert_eq!(rep.rtp.srtp_auth_failed, 0, "{rep:?}");
    }
    let c1 = best_correlation(&heard_by_uac, &callee_prompt, 1.0);
    let c2 = best_correlation(&heard_by_uas, &caller_prompt, 1.0);
    assert!(
        c1 > 0.9 && c2 > 0.9,
        "decrypted audio correlates: {c1} {c2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srtp_policy_mismatches() {
    // Mandatory caller, callee without SRTP: the RTP/SAVP offer is refused (488).
    let dir = tempfile::tempdir().unwrap();
    let uas = Arc::new(endpoint("callee").await);
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::ZERO,
        MediaOptions::default(),
        tx,
    ));
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:callee@{}", uas.local_addr()));
    opts.media.srtp = SrtpMode::Mandatory;
    opts.ring_timeout = Duration::from_secs(5);
    let r = tokio::time::timeout(
        Duration::from_secs(15),
        call::place_call(&uac, opts, &mut |_| {}),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(r.sip_status, Some(488), "{r:?}");
    assert_ne!(r.outcome, CallOutcome::Answered, "{r:?}");
    // Optional caller, plain callee: the call goes through in plain RTP.
    let (r, u, heard_by_uac, _, _, callee_prompt) =
        self_call(SrtpMode::Optional, SrtpMode::Off, dir.path()).await;
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    assert!(!r.rtp.srtp && !u.rtp.srtp, "{r:?} {u:?}");
    assert!(best_correlation(&heard_by_uac, &callee_prompt, 1.0) > 0.9);
    // Optional caller, optional callee: SRTP.
    let dir = tempfile::tempdir().unwrap();
    let (r, u, heard_by_uac, _, _, callee_prompt) =
        self_call(SrtpMode::Optional, SrtpMode::Optional, dir.path()).await;
    assert!(r.rtp.srtp && u.rtp.srtp, "{r:?} {u:?}");
    assert!(best_correlation(&heard_by_uac, &callee_prompt, 1.0) > 0.9);
}

fn write_baresip_config(dir: &Path, port: u16, wav: &Path, mediaenc: Option<&str>) {
    std::fs::write(
        dir.join("config"),
        format!(
            "poll_method epoll\nsip_listen 127.0.0.1:{port}\nnet_interface 127.0.0.1\naudio_player alsa,null\n\
             audio_source aufile,{wav}\naudio_alert alsa,null\nrtp_ports {rtp}-{rtp2}\n\
             module_path /usr/lib/baresip/modules\nmodule g711.so\nmodule aufile.so\nmodule alsa.so\n\
             module srtp.so\nmodule_app account.so\nmodule_app menu.so\n",
            wav = wav.display(),
            rtp = port + 2,
            rtp2 = port + 9,
        ),
    )
    .unwrap();
    let enc = mediaenc
        .map(|m| format!(";mediaenc={m}"))
        .unwrap_or_default();
    std::fs::write(
        dir.join("accounts"),
        format!(
            "<sip:bob@127.0.0.1:{port}>;regint=0;answermode=auto;audio_codecs=PCMA,PCMU{enc}\n"
        ),
    )
    .unwrap();
    std::fs::write(dir.join("contacts"), "").unwrap();
}

/// Starts baresip in `dir` and waits until it is ready.
async fn start_baresip(dir: &Path) -> Peer {
    let log = dir.join("baresip.log");
    let peer = Peer(
        Command::new("baresip")
            .args(["-f", dir.to_str().unwrap(), "-v"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for _ in 0..100 {
        if std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("baresip is ready")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_with_mandatory_sdes_srtp() {
    if !have_peer("baresip") {
        return;
    }
    let port = 27300;
    let dir = tempfile::tempdir().unwrap();
    let prompt = melody(12.0, 42);
    let wav_path = dir.path().join("prompt.wav");
    wav::write_8k_mono(&wav_path, &prompt).unwrap();
    write_baresip_config(dir.path(), port, &wav_path, Some("srtp-mand"));
    let _peer = start_baresip(dir.path()).await;
    let uac = endpoint("waihu").await;
    let call = |srtp: SrtpMode, rec: &str| {
        let mut opts = CallOptions::new(format!("sip:bob@127.0.0.1:{port}"));
        opts.media.codecs = vec![waihu_sip::Codec::Pcma, waihu_sip::Codec::Pcmu];
        // Long enough for an RTCP report each way (the first goes after 2.5 s).
        opts.media.max_duration = Duration::from_secs(6);
        opts.media.no_rtp_timeout = Duration::from_secs(3);
        opts.media.record = Some(dir.path().join(rec));
        opts.media.srtp = srtp;
        opts.ring_timeout = Duration::from_secs(5);
        opts
    };
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        call::place_call(&uac, call(SrtpMode::Mandatory, "srtp.wav"), &mut |_| {}),
    )
    .await
    .expect("call bounded")
    .unwrap();
    eprintln!("baresip SRTP call: {r:?}");
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert!(r.rtp.srtp, "{r:?}");
    assert!(r.rtp.packets_received > 100, "{r:?}");
    assert_eq!(
        r.rtp.srtp_auth_failed, 0,
        "every media packet authenticated: {r:?}"
    );
    // baresip may send its RTCP BYE as it tears the call down, after its SRTP
    // context is gone: one such datagram is the peer's, more would be ours.
    assert!(
        r.rtp.srtcp_auth_failed <= 1,
        "SRTCP from baresip authenticated: {r:?}"
    );
    assert!(
        r.rtp.rtcp_received >= 1,
        "SRTCP from baresip decrypted: {r:?}"
    );
    // baresip's report block about our stream: it authenticated and decrypted our SRTP too.
    assert!(r.rtp.peer_lost.is_some(), "{r:?}");
    let (left, _) = wav::read_stereo(&dir.path().join("srtp.wav")).unwrap();
    let c = best_correlation(&left, &prompt, 0.5);
    assert!(c > 0.8, "decrypted baresip prompt correlation {c}");
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap();
    // Negative: the same peer will not carry a call without keys.
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        call::place_call(&uac, call(SrtpMode::Off, "plain.wav"), &mut |_| {}),
    )
    .await
    .expect("call bounded")
    .unwrap();
    eprintln!("baresip plain call: {r:?}");
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Failed, Some(488)),
        "baresip srtp-mand must refuse a plain offer: {r:?}\n{log}"
    );
}
