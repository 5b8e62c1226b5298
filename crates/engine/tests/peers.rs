//! Our UA against itself and against real SIP peers (SIPp, baresip) started on loopback.
//! A peer test whose binary is not installed skips with a loud `SKIPPED` line, and fails
//! when `CI` is set (`waihu_testkit::have_peer`).
//! Ports: every test has its own block in 25000-29999; our own sockets use port 0.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use waihu_core::CallOutcome;
use waihu_engine::call::{self, CallOptions, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_media::wav;
use waihu_testkit::baresip::{self, Phone};
use waihu_testkit::signal::{best_correlation, melody};
use waihu_testkit::{have_peer, Peer};

async fn endpoint(user: &str) -> SipEndpoint {
    SipEndpoint::bind("127.0.0.1:0".parse().unwrap(), user, None)
        .await
        .unwrap()
}

async fn wait_port_udp(port: u16) {
    // The peer is ready once its port is taken.
    for _ in 0..100 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_calls_our_uas_with_audio_dtmf_and_recordings() {
    let dir = tempfile::tempdir().unwrap();
    let callee_prompt: Arc<[i16]> = melody(3.0, 7).into();
    // 11 s: long enough for a second RTCP interval on each side (2.5 s, then ≤ 7.5 s), so
    // each side's SR has been echoed back and the round trip is known.
    let caller_prompt: Arc<[i16]> = melody(11.0, 99).into();
    let uas = Arc::new(endpoint("callee").await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let uas_opts = MediaOptions {
        play: Some(callee_prompt.clone()),
        record: Some(dir.path().to_path_buf()),
        max_duration: Duration::from_secs(20),
        ..Default::default()
    };
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(200),
        uas_opts,
        tx,
    ));
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:callee@{}", uas.local_addr()));
    opts.media.play = Some(caller_prompt.clone());
    opts.media.dtmf = Some("123#".into());
    opts.media.dtmf_delay = Duration::from_millis(100);
    opts.media.hangup_after_play = true;
    opts.media.record = Some(dir.path().join("uac.wav"));
    let mut steps = Vec::new();
    let report = call::place_call(&uac, opts, &mut |p| steps.push(format!("{p:?}")))
        .await
        .unwrap();
    assert_eq!(report.outcome, CallOutcome::Answered, "{report:?}");
    assert_eq!(report.sip_status, Some(200));
    assert!(steps.iter().any(|s| s == "Ringing"), "{steps:?}");
    assert!(
        report.duration_s > 11.0 && report.duration_s < 14.0,
        "{report:?}"
    );
    assert_eq!(report.rtp.lost, 0, "{report:?}");
    // RTCP both ways on RTP port + 1: the peer's view of our audio and the round trip.
    let rtp = report.rtp;
    assert!(rtp.rtcp_sent >= 2 && rtp.rtcp_received >= 2, "{rtp:?}");
    assert_eq!(rtp.peer_lost, Some(0), "{rtp:?}");
    assert!(rtp.peer_jitter_ms.is_some_and(|j| j < 20.0), "{rtp:?}");
    assert!(rtp.rtt_ms.is_some_and(|r| r < 100.0), "{rtp:?}");
    let uas_report = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(uas_report.dtmf_received, "123#");
    assert!(uas_report.rtp.rtcp_received >= 2, "{:?}", uas_report.rtp);
    assert!(uas_report.rtp.rtt_ms.is_some(), "{:?}", uas_report.rtp);
    // Our recording: left = callee's prompt, right = ours.
    let (left, right) = wav::read_stereo(&dir.path().join("uac.wav")).unwrap();
    let c_left = best_correlation(&left, &callee_prompt, 1.0);
    let c_right = best_correlation(&right, &caller_prompt, 1.5);
    assert!(
        c_left > 0.9 && c_right > 0.9,
        "left {c_left} right {c_right}"
    );
    // The callee's recording holds our prompt on its left.
    let (l2, _) = wav::read_stereo(uas_report.recording.as_ref().unwrap()).unwrap();
    assert!(best_correlation(&l2, &caller_prompt, 1.5) > 0.9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_timeout_cancels_and_reports_no_answer() {
    let uas = endpoint("slow").await;
    let mut incoming = uas.incoming().unwrap();
    tokio::spawn(async move {
        let keep = incoming.recv().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(keep);
    });
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:slow@{}", uas.local_addr()));
    opts.ring_timeout = Duration::from_millis(800);
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(r.outcome, CallOutcome::NoAnswer, "{r:?}");
    assert_eq!(r.sip_status, Some(487), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peer_is_hung_up_after_no_rtp_timeout() {
    // SIPp UAS without -rtp_echo answers and then sends no media at all.
    if !have_peer("sipp") {
        return;
    }
    let port = 25010;
    let _peer = Peer(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                "25012",
                "-nostdin",
                "-m",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port_udp(port).await;
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:service@127.0.0.1:{port}"));
    opts.media.no_rtp_timeout = Duration::from_millis(1500);
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(r.outcome, CallOutcome::Answered);
    assert!(r.reason.contains("hangup by us"), "{r:?}");
    assert!(r.duration_s >= 1.4 && r.duration_s < 3.0, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_against_sipp_uas_with_rtp_echo() {
    if !have_peer("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = 25020;
    let _peer = Peer(
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                "25022",
                "-rtp_echo",
                "-nostdin",
                "-m",
                "1",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port_udp(port).await;
    let prompt: Arc<[i16]> = melody(2.5, 3).into();
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:service@127.0.0.1:{port}"));
    opts.media.play = Some(prompt.clone());
    opts.media.hangup_after_play = true;
    opts.media.record = Some(dir.path().join("echo.wav"));
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert!(r.rtp.packets_received > 100, "{r:?}");
    let (left, _) = wav::read_stereo(&dir.path().join("echo.wav")).unwrap();
    let c = best_correlation(&left, &prompt, 1.0);
    assert!(c > 0.9, "echoed prompt correlation {c}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_uac_load_against_our_uas() {
    if !have_peer("sipp") {
        return;
    }
    let uas = Arc::new(endpoint("service").await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let opts = MediaOptions {
        max_duration: Duration::from_secs(20),
        ..Default::default()
    };
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(0),
        opts,
        tx,
    ));
    let target = uas.local_addr().to_string();
    let calls = 40;
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Peer(
            Command::new("sipp")
                .args([
                    target.as_str(),
                    "-sn",
                    "uac",
                    "-i",
                    "127.0.0.1",
                    "-p",
                    "25030",
                    "-m",
                    &calls.to_string(),
                    "-r",
                    "20",
                    "-l",
                    "20",
                    "-d",
                    "500",
                    "-nostdin",
                    "-timeout",
                    "30",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        child.0.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "sipp reported failed calls: {status:?}");
    let mut answered = 0;
    for _ in 0..calls {
        let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
        assert!(r.reason.contains("hangup by peer"), "{r:?}");
        answered += 1;
    }
    assert_eq!(answered, calls);
}

async fn baresip_call(port: u16, transport: waihu_sip::Transport) {
    if !have_peer("baresip") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prompt = melody(12.0, 42);
    let wav_path = dir.path().join("prompt.wav");
    wav::write_8k_mono(&wav_path, &prompt).unwrap();
    let (_peer, log) = Phone::auto_answer(port, "bob", &wav_path)
        .spawn(dir.path())
        .unwrap();
    for _ in 0..100 {
        if baresip::ready(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let uac = endpoint("waihu").await;
    let mut opts = CallOptions::new(format!(
        "sip:bob@127.0.0.1:{port}{}",
        if transport == waihu_sip::Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        }
    ));
    opts.transport = transport;
    opts.media.codecs = vec![waihu_sip::Codec::Pcma, waihu_sip::Codec::Pcmu];
    opts.media.dtmf = Some("159#".into());
    opts.media.dtmf_delay = Duration::from_millis(500);
    // Over UDP the call lasts long enough for baresip's RTCP reports to reach us.
    let udp = transport == waihu_sip::Transport::Udp;
    opts.media.max_duration = Duration::from_secs(if udp { 8 } else { 3 });
    opts.media.record = Some(dir.path().join("rec.wav"));
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    if udp {
        let rtp = r.rtp;
        assert!(rtp.rtcp_sent >= 1 && rtp.rtcp_received >= 1, "{rtp:?}");
        assert!(
            rtp.peer_lost.is_some() && rtp.peer_jitter_ms.is_some(),
            "{rtp:?}"
        );
        eprintln!("baresip RTCP: {rtp:?}");
    }
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert_eq!(r.codec.as_deref(), Some("PCMA"));
    assert!(r.rtp.audio_s > 2.0, "{r:?}");
    let (left, _) = wav::read_stereo(&dir.path().join("rec.wav")).unwrap();
    let c = best_correlation(&left, &prompt, 0.5);
    assert!(c > 0.8, "baresip prompt correlation {c}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = std::fs::read_to_string(&log).unwrap();
    for d in ["1", "5", "9", "#"] {
        assert!(
            text.contains(&format!("received event: '{d}'")),
            "digit {d} missing from baresip log:\n{text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_auto_answer_plays_wav_and_receives_our_dtmf() {
    baresip_call(25040, waihu_sip::Transport::Udp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_over_tcp() {
    baresip_call(25070, waihu_sip::Transport::Tcp).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_uac_calls_our_uas_over_tcp() {
    let uas = Arc::new(endpoint("callee").await);
    let prompt: Arc<[i16]> = melody(2.0, 8).into();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let o = MediaOptions {
        play: Some(prompt.clone()),
        hangup_after_play: true,
        tail: Duration::from_millis(300),
        ..Default::default()
    };
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(100),
        o,
        tx,
    ));
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:callee@{};transport=tcp", uas.local_addr()));
    opts.transport = waihu_sip::Transport::Tcp;
    opts.media.max_duration = Duration::from_secs(8);
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert!(
        r.reason.contains("hangup by peer"),
        "the UAS hung up over TCP: {r:?}"
    );
    assert!(r.rtp.audio_s > 1.5, "{r:?}");
    let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(u.outcome, CallOutcome::Answered);
}

/// A SIPp UAS that plays an announcement as early media (183 + RTP) and then rejects 480.
fn early_media_scenario(audio: &Path) -> String {
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="announcement then 480">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 183 Session Progress
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ann[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=announcement
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <nop><action><exec rtp_stream="{audio},1,0"/></action></nop>
  <pause milliseconds="2500"/>
  <send><![CDATA[
SIP/2.0 480 Temporarily Unavailable
[last_Via:]
[last_From:]
[last_To:];tag=[pid]ann[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <recv request="ACK"/>
</scenario>
"#,
        audio = audio.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_media_announcement_then_480_is_recorded_and_rejected() {
    if !have_peer("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let announcement = melody(2.0, 5);
    // SIPp streams raw payload bytes: μ-law, no header (any name not ending in .wav).
    let raw: PathBuf = dir.path().join("announce.ulaw");
    let mut ulaw = Vec::new();
    waihu_media::Law::Ulaw.encode(&announcement, &mut ulaw);
    std::fs::write(&raw, &ulaw).unwrap();
    let scen = dir.path().join("early.xml");
    std::fs::write(&scen, early_media_scenario(&raw)).unwrap();
    let port = 25050;
    let _peer = Peer(
        Command::new("sipp")
            .args([
                "-sf",
                scen.to_str().unwrap(),
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                "25052",
                "-nostdin",
                "-m",
                "1",
            ])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_port_udp(port).await;
    let uac = endpoint("caller").await;
    let mut opts = CallOptions::new(format!("sip:13800000000@127.0.0.1:{port}"));
    opts.media.record = Some(dir.path().join("early.wav"));
    let mut steps = Vec::new();
    let r = call::place_call(&uac, opts, &mut |p| steps.push(format!("{p:?}")))
        .await
        .unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Rejected, Some(480)),
        "{r:?} {steps:?}"
    );
    assert!(r.early_media && r.early_audio_s > 1.5, "{r:?}");
    let (left, _) = wav::read_stereo(&dir.path().join("early.wav")).unwrap();
    let c = best_correlation(&left, &announcement, 0.5);
    assert!(c > 0.9, "announcement correlation {c}");
    let _: SocketAddr = uac.local_addr();
}

/// Kamailio as registrar and proxy with digest auth: our UAS registers (401 → 200), our UAC
/// calls it through the proxy (407 → INVITE with credentials → Record-Route → media → BYE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_call_through_kamailio_with_digest_auth() {
    if !have_peer("kamailio") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = 25060u16;
    let _peer = waihu_testkit::kamailio::Kamailio::start(
        dir.path(),
        &waihu_testkit::kamailio::Config {
            port,
            secret: "secret".into(),
            invite_to: None,
            min_expires: None,
            tls: None,
        },
    )
    .unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // The callee registers with the wrong password first: refused.
    let uas = Arc::new(endpoint("callee").await);
    let reg = |password: &str| waihu_sip::Registration {
        registrar: format!("sip:127.0.0.1:{port}"),
        proxy: None,
        transport: waihu_sip::Transport::Udp,
        expires: 60,
        credentials: Some(waihu_sip::Credentials {
            username: "callee".into(),
            password: password.into(),
        }),
    };
    let (bad, mut bad_ev) = uas.register(reg("wrong")).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), bad_ev.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(
            ev,
            waihu_sip::UaEvent::RegistrationFailed {
                status: Some(401),
                ..
            }
        ),
        "{ev:?}"
    );
    uas.unregister(bad).unwrap();
    let (_reg, mut reg_ev) = uas.register(reg("secret")).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), reg_ev.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, waihu_sip::UaEvent::Registered { expires: 60, .. }),
        "{ev:?}"
    );

    let prompt: Arc<[i16]> = melody(2.5, 11).into();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let uas_opts = MediaOptions {
        play: Some(prompt.clone()),
        hangup_after_play: false,
        ..Default::default()
    };
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(100),
        uas_opts,
        tx,
    ));

    let uac = endpoint("caller").await;
    // Without credentials the proxy's 407 stands.
    let mut opts = CallOptions::new(format!("sip:callee@127.0.0.1:{port}"));
    opts.proxy = Some(proxy);
    let r = call::place_call(&uac, opts.clone(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Failed, Some(407)),
        "{r:?}"
    );

    opts.credentials = Some(waihu_sip::Credentials {
        username: "caller".into(),
        password: "secret".into(),
    });
    opts.media.max_duration = Duration::from_secs(3);
    opts.media.record = Some(dir.path().join("via-proxy.wav"));
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert!(r.reason.contains("hangup by us"), "{r:?}");
    let (left, _) = wav::read_stereo(&dir.path().join("via-proxy.wav")).unwrap();
    let c = best_correlation(&left, &prompt, 0.8);
    assert!(c > 0.9, "prompt through the proxy: correlation {c}");
    // The callee saw our BYE routed through Kamailio.
    let u = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(u.reason.contains("hangup by peer"), "{u:?}");
}

fn sipp_uac_request(method: &str, cseq: u32, sdp_dir: Option<&str>) -> String {
    let (ct, body) = match sdp_dir {
        Some(dir) => (
            "Content-Type: application/sdp\nContent-Length: [len]\n",
            format!(
                "\nv=0\no=sipp 1 {cseq} IN IP4 [local_ip]\ns=-\nc=IN IP4 [media_ip]\nt=0 0\nm=audio [media_port] RTP/AVP 0\na=rtpmap:0 PCMU/8000\na={dir}\n"
            ),
        ),
        None => ("Content-Length: 0\n", String::from("\n")),
    };
    let to_tag = if cseq == 1 && method == "INVITE" {
        ""
    } else {
        "[peer_tag_param]"
    };
    format!(
        "{method} sip:[service]@[remote_ip]:[remote_port] SIP/2.0\nVia: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]\n\
         From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]\nTo: <sip:[service]@[remote_ip]:[remote_port]>{to_tag}\n\
         Call-ID: [call_id]\nCSeq: {cseq} {method}\nContact: <sip:sipp@[local_ip]:[local_port]>\nMax-Forwards: 70\n{ct}{body}"
    )
}

/// SIPp calls our UAS, puts it on hold with a re-INVITE (a=sendonly) after 1 s and hangs up 2 s
/// later: our side stops sending RTP while held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_reinvite_hold_stops_our_media() {
    if !have_peer("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scen = format!(
        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\" ?>\n<scenario name=\"hold\">\n\
         <send retrans=\"500\"><![CDATA[\n{}]]></send>\n\
         <recv response=\"100\" optional=\"true\"/>\n<recv response=\"180\" optional=\"true\"/>\n<recv response=\"200\"/>\n\
         <send><![CDATA[\n{}]]></send>\n<pause milliseconds=\"1000\"/>\n\
         <send retrans=\"500\"><![CDATA[\n{}]]></send>\n<recv response=\"200\"/>\n\
         <send><![CDATA[\n{}]]></send>\n<pause milliseconds=\"2000\"/>\n\
         <send retrans=\"500\"><![CDATA[\n{}]]></send>\n<recv response=\"200\"/>\n</scenario>\n",
        sipp_uac_request("INVITE", 1, Some("sendrecv")),
        sipp_uac_request("ACK", 1, None),
        sipp_uac_request("INVITE", 2, Some("sendonly")),
        sipp_uac_request("ACK", 2, None),
        sipp_uac_request("BYE", 3, None),
    );
    let path = dir.path().join("hold.xml");
    std::fs::write(&path, scen).unwrap();
    let uas = Arc::new(endpoint("service").await);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::ZERO,
        MediaOptions::default(),
        tx,
    ));
    let target = uas.local_addr().to_string();
    let status = tokio::task::spawn_blocking(move || {
        let mut child = Peer(
            Command::new("sipp")
                .args([
                    target.as_str(),
                    "-sf",
                    path.to_str().unwrap(),
                    "-i",
                    "127.0.0.1",
                    "-p",
                    "25080",
                    "-mi",
                    "127.0.0.1",
                    "-mp",
                    "25082",
                    "-m",
                    "1",
                    "-nostdin",
                    "-timeout",
                    "20",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        child.0.wait().unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "sipp hold scenario failed: {status:?}");
    let r = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(r.outcome, CallOutcome::Answered, "{r:?}");
    assert!(r.duration_s > 2.8, "{r:?}");
    // ~1 s of sending before the hold (≈50 packets), none during the 2 s hold.
    assert!((30..=90).contains(&r.rtp.packets_sent), "{r:?}");
}

/// A SIPp transferee (RFC 3515 / RFC 5589): answers, accepts our REFER only if Refer-To and
/// Referred-By are what we asked for (otherwise the scenario fails), reports its call to
/// the target with two NOTIFYs (100 Trying, 200 OK terminating the subscription), and
/// expects our BYE after the 200.
const TRANSFEREE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="transferee">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]xfer[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]xfer[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:transferee@[local_ip]:[local_port];transport=[transport]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=transferee
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK"/>
  <recv request="REFER">
    <action>
      <ereg regexp="^ *&lt;sip:4001@127\.0\.0\.1:25094&gt;" search_in="hdr" header="Refer-To:" check_it="true" assign_to="refer_to"/>
      <ereg regexp="sip:transferor@" search_in="hdr" header="Referred-By:" check_it="true" assign_to="referred_by"/>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_from"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_to"/>
      <ereg regexp="sip:[^&gt;]*" search_in="hdr" header="Contact:" assign_to="contact"/>
    </action>
  </recv>
  <Reference variables="refer_to,referred_by"/>
  <send><![CDATA[
SIP/2.0 202 Accepted
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
  <send><![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_to]
To:[$remote_from]
Call-ID: [call_id]
CSeq: 1 NOTIFY
Max-Forwards: 70
Event: refer
Subscription-State: active;expires=60
Content-Type: message/sipfrag
Content-Length: [len]

SIP/2.0 100 Trying
]]></send>
  <recv response="200"/>
  <pause milliseconds="300"/>
  <send><![CDATA[
NOTIFY [$contact] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From:[$local_to]
To:[$remote_from]
Call-ID: [call_id]
CSeq: 2 NOTIFY
Max-Forwards: 70
Event: refer
Subscription-State: terminated;reason=noresource
Content-Type: message/sipfrag
Content-Length: [len]

SIP/2.0 200 OK
]]></send>
  <recv response="200"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"#;

/// Asks for a blind transfer one second after the answer; keeps what it was told.
struct Transferor {
    target: &'static str,
    at: Option<std::time::Instant>,
    asked: bool,
    seen: Arc<std::sync::Mutex<Vec<waihu_sip::TransferProgress>>>,
}

impl waihu_engine::agent::CallAgent for Transferor {
    fn on_answered(&mut self, now: std::time::Instant) {
        self.at = Some(now + Duration::from_secs(1));
    }
    fn on_frame(
        &mut self,
        now: std::time::Instant,
        _heard: &[i16],
        _say: &mut [i16],
    ) -> waihu_engine::agent::Control {
        if !self.asked && self.at.is_some_and(|at| now >= at) {
            self.asked = true;
            return waihu_engine::agent::Control::Transfer(self.target.into());
        }
        waihu_engine::agent::Control::Continue
    }
    fn on_transfer(&mut self, _now: std::time::Instant, p: &waihu_sip::TransferProgress) {
        self.seen.lock().unwrap().push(p.clone());
    }
}

/// Blind transfer by REFER against a SIPp transferee: the REFER is accepted, both
/// NOTIFYs are answered and reported, and we hang up once the target has answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_transfer_by_refer_to_a_sipp_transferee() {
    if !have_peer("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let scen = dir.path().join("transferee.xml");
    std::fs::write(&scen, TRANSFEREE).unwrap();
    let port = 25090;
    let mut sipp = Command::new("sipp")
        .args([
            "-sf",
            scen.to_str().unwrap(),
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-mi",
            "127.0.0.1",
            "-mp",
            "25092",
            "-nostdin",
            "-m",
            "1",
            "-timeout",
            "30",
            "-timeout_error",
        ])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_port_udp(port).await;
    let uac = endpoint("transferor").await;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let agent = Transferor {
        target: "sip:4001@127.0.0.1:25094",
        at: None,
        asked: false,
        seen: seen.clone(),
    };
    let mut opts = CallOptions::new(format!("sip:13800000000@127.0.0.1:{port}"));
    opts.media.no_rtp_timeout = Duration::from_secs(20);
    let mut steps = Vec::new();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        call::place_call_with(&uac, opts, Box::new(agent), &mut |p| {
            steps.push(format!("{p:?}"))
        }),
    )
    .await
    .expect("call finished in time")
    .unwrap();
    let t = r.transfer.clone().expect("a transfer report");
    assert_eq!(t.target, "sip:4001@127.0.0.1:25094");
    assert_eq!(
        t.progress,
        vec![
            "REFER 202".to_string(),
            "NOTIFY 100 Trying".into(),
            "NOTIFY 200 OK (terminated)".into()
        ],
        "{steps:?}"
    );
    assert_eq!(t.succeeded, Some(true));
    assert!(t.settled_ms.is_some_and(|ms| ms >= 300.0), "{t:?}");
    assert_eq!(r.outcome, CallOutcome::Answered);
    assert!(
        steps.iter().any(|s| s.contains("transferred to sip:4001")),
        "{steps:?}"
    );
    assert_eq!(seen.lock().unwrap().len(), 3);
    // SIPp exits 0 only if every message matched, Refer-To and Referred-By included.
    let status = tokio::task::spawn_blocking(move || sipp.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "SIPp transferee failed: {status:?}");
}

/// SIP over TLS through Kamailio (its `tls` module, certificate from a test CA): our UAC
/// registers and calls over TLS with digest auth, the callee (registered over UDP) hangs
/// up, and its BYE comes back to us over our own TLS connection (RFC 5923 alias). A client
/// that trusts another CA is refused at the handshake and its REGISTER fails at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_and_call_over_tls_through_kamailio() {
    if !have_peer("kamailio") || !have_peer("openssl") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (port, tls_port) = (25100u16, 25101u16);
    let ca =
        waihu_testkit::kamailio::make_test_ca(dir.path(), &["carrier.test", "127.0.0.1"]).unwrap();
    let _peer = waihu_testkit::kamailio::Kamailio::start(
        dir.path(),
        &waihu_testkit::kamailio::Config {
            port,
            secret: "secret".into(),
            tls: Some(waihu_testkit::kamailio::TlsListen {
                port: tls_port,
                cert: ca.cert.clone(),
                key: ca.key.clone(),
            }),
            ..Default::default()
        },
    )
    .unwrap();
    let tls_addr: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    let reg = |user: &str, transport| waihu_sip::Registration {
        registrar: format!("sip:127.0.0.1:{port}"),
        proxy: (transport == waihu_sip::Transport::Tls).then_some(tls_addr),
        transport,
        expires: 60,
        credentials: Some(waihu_sip::Credentials {
            username: user.into(),
            password: "secret".into(),
        }),
    };
    async fn first_event(
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<waihu_sip::UaEvent>,
    ) -> waihu_sip::UaEvent {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an answer within 5 s")
            .unwrap()
    }

    // A client trusting another CA: the handshake fails and so does the REGISTER, now.
    let other = waihu_testkit::kamailio::make_test_ca(
        &{
            let d = dir.path().join("other");
            std::fs::create_dir_all(&d).unwrap();
            d
        },
        &["carrier.test"],
    )
    .unwrap();
    // The right CA but a name the certificate does not carry: refused too.
    for (user, trusted, name) in [
        ("stranger", &other.ca, "carrier.test"),
        ("misnamed", &ca.ca, "other.test"),
    ] {
        let ep = endpoint(user).await;
        let config = waihu_engine::sip::tls_client_config(Some(trusted)).unwrap();
        ep.set_tls_peer(
            tls_addr,
            waihu_engine::sip::TlsPeer {
                server_name: name.into(),
                config,
            },
        )
        .unwrap();
        let (_r, mut ev) = ep
            .register(reg(user, waihu_sip::Transport::Tls))
            .await
            .unwrap();
        let e = first_event(&mut ev).await;
        assert!(
            matches!(
                e,
                waihu_sip::UaEvent::RegistrationFailed { status: None, .. }
            ),
            "{user}: {e:?}"
        );
        assert_eq!(ep.stats().stream_failures, 1, "{user}");
    }

    // The callee registers over UDP and plays a prompt, then hangs up.
    let uas = Arc::new(endpoint("callee").await);
    let (_reg, mut reg_ev) = uas
        .register(reg("callee", waihu_sip::Transport::Udp))
        .await
        .unwrap();
    let e = first_event(&mut reg_ev).await;
    assert!(matches!(e, waihu_sip::UaEvent::Registered { .. }), "{e:?}");
    let prompt: Arc<[i16]> = melody(2.5, 13).into();
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(call::answer_loop(
        uas.clone(),
        Duration::from_millis(100),
        MediaOptions {
            play: Some(prompt.clone()),
            hangup_after_play: true,
            ..Default::default()
        },
        tx,
    ));

    // The caller trusts the test CA and checks the name carrier.test (SNI).
    let uac = endpoint("caller").await;
    uac.set_tls_peer(
        tls_addr,
        waihu_engine::sip::TlsPeer {
            server_name: "carrier.test".into(),
            config: waihu_engine::sip::tls_client_config(Some(&ca.ca)).unwrap(),
        },
    )
    .unwrap();
    let (_r, mut ev) = uac
        .register(reg("caller", waihu_sip::Transport::Tls))
        .await
        .unwrap();
    let e = first_event(&mut ev).await;
    assert!(
        matches!(e, waihu_sip::UaEvent::Registered { expires: 60, .. }),
        "{e:?}"
    );
    let mut opts = CallOptions::new(format!("sip:callee@127.0.0.1:{port}"));
    opts.proxy = Some(tls_addr);
    opts.transport = waihu_sip::Transport::Tls;
    opts.credentials = Some(waihu_sip::Credentials {
        username: "caller".into(),
        password: "secret".into(),
    });
    opts.media.max_duration = Duration::from_secs(10);
    opts.media.record = Some(dir.path().join("tls.wav"));
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    assert_eq!(
        (r.outcome, r.sip_status),
        (CallOutcome::Answered, Some(200)),
        "{r:?}"
    );
    assert!(
        r.reason.contains("hangup by peer"),
        "BYE over our TLS connection: {r:?}"
    );
    let (left, _) = wav::read_stereo(&dir.path().join("tls.wav")).unwrap();
    let c = best_correlation(&left, &prompt, 0.8);
    assert!(c > 0.9, "prompt over a TLS-signalled call: correlation {c}");
    // Now we hang up first: our BYE goes over TLS through Kamailio and its 200 comes back
    // at once (no 32 s transaction timeout).
    let mut opts = CallOptions::new(format!("sip:callee@127.0.0.1:{port}"));
    opts.proxy = Some(tls_addr);
    opts.transport = waihu_sip::Transport::Tls;
    opts.credentials = Some(waihu_sip::Credentials {
        username: "caller".into(),
        password: "secret".into(),
    });
    opts.media.max_duration = Duration::from_secs(1);
    let t0 = std::time::Instant::now();
    let r = call::place_call(&uac, opts, &mut |_| {}).await.unwrap();
    let took = t0.elapsed();
    assert!(r.reason.contains("hangup by us"), "{r:?}");
    assert!(
        !r.reason.contains("timed out") && took < Duration::from_secs(5),
        "BYE over TLS answered in {took:?}: {r:?}"
    );
    let s = uac.stats();
    assert_eq!(s.stream_failures, 0, "{s:?}");
}
