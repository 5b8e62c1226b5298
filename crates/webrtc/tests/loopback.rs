//! A leg against a real WebRTC peer on loopback: a second `str0m` instance
//! (full ICE, the offerer, as a browser is) sends a 1 kHz tone as PCMU from a
//! UDP socket; the leg hands it to a call agent, which answers with a 500 Hz
//! tone and hangs up after two seconds. Both directions must carry the tone.
use std::net::UdpSocket as StdUdp;
use std::time::{Duration, Instant};

use str0m::change::SdpAnswer;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, MediaKind, MediaTime};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, RtcConfig};
use waihu_audio::g711::Law;
use waihu_engine::agent::{CallAgent, Control};

fn tone(hz: f64, start: usize, out: &mut [i16]) {
    for (i, s) in out.iter_mut().enumerate() {
        let t = (start + i) as f64 / 8000.0;
        *s = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[derive(Default)]
struct Echo {
    answered: bool,
    frames: usize,
    loud_frames: usize,
    ended: bool,
}

impl CallAgent for Echo {
    fn on_answered(&mut self, _now: Instant) {
        self.answered = true;
    }
    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        if rms(heard) > 1000.0 {
            self.loud_frames += 1;
        }
        tone(500.0, self.frames * say.len(), say);
        self.frames += 1;
        if self.frames >= 100 {
            Control::Hangup("done".into())
        } else {
            Control::Continue
        }
    }
    fn on_ended(&mut self, _now: Instant) {
        self.ended = true;
    }
}

/// The browser's side: offers one send-receive audio line, sends a tone, counts what it hears.
fn peer(
    sock: StdUdp,
    mut rtc: str0m::Rtc,
    mid: str0m::media::Mid,
    stop: Instant,
) -> (usize, usize) {
    let local = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = vec![0u8; 2000];
    let (mut sent, mut heard, mut loud) = (0usize, 0usize, 0usize);
    let mut next_frame = Instant::now();
    let mut connected = false;
    while Instant::now() < stop {
        loop {
            match rtc.poll_output().unwrap() {
                Output::Timeout(_) => break,
                Output::Transmit(t) => {
                    sock.send_to(&t.contents, t.destination).unwrap();
                }
                Output::Event(Event::Connected) => connected = true,
                Output::Event(Event::MediaData(d)) => {
                    assert_eq!(d.params.spec().codec, Codec::PCMU);
                    heard += 1;
                    let mut pcm = Vec::new();
                    Law::Ulaw.decode(&d.data, &mut pcm);
                    if rms(&pcm) > 1000.0 {
                        loud += 1;
                    }
                }
                Output::Event(_) => {}
            }
        }
        if connected && Instant::now() >= next_frame {
            if let Some(w) = rtc.writer(mid) {
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == Codec::PCMU)
                    .map(|p| p.pt())
                    .unwrap();
                let mut pcm = [0i16; 160];
                tone(1000.0, sent * 160, &mut pcm);
                let mut ulaw = Vec::new();
                Law::Ulaw.encode(&pcm, &mut ulaw);
                let time = MediaTime::new((sent * 160) as u64, Frequency::EIGHT_KHZ);
                w.write(pt, Instant::now(), time, ulaw).unwrap();
                sent += 1;
            }
            next_frame += Duration::from_millis(20);
        }
        let input = match sock.recv_from(&mut buf) {
            Ok((n, source)) => Input::Receive(
                Instant::now(),
                Receive {
                    proto: Protocol::Udp,
                    source,
                    destination: local,
                    contents: buf[..n].try_into().unwrap(),
                },
            ),
            Err(_) => Input::Timeout(Instant::now()),
        };
        rtc.handle_input(input).unwrap();
    }
    (heard, loud)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_peer_and_the_agent_hear_each_other() {
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_pcmu(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let (answer, leg) =
        waihu_webrtc::accept(&offer.to_sdp_string(), "127.0.0.1".parse().unwrap()).unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    assert!(answer.contains("PCMU/8000"), "{answer}");
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(6);
    let browser = std::thread::spawn(move || peer(sock, rtc, mid, stop));
    let mut agent = Echo::default();
    let report = tokio::time::timeout(
        Duration::from_secs(15),
        leg.run(
            &mut agent,
            waihu_webrtc::Limits::default(),
            std::future::pending(),
        ),
    )
    .await
    .expect("the leg ends by itself");
    let (heard, loud) = browser.join().unwrap();
    assert_eq!(report.ended, "agent: done", "{report:?}");
    assert_eq!(report.codec, Some("PCMU"));
    assert!(agent.answered && agent.ended);
    // Two seconds of frames; the tone arrives after the jitter buffer's 60 ms.
    assert_eq!(agent.frames, 100);
    assert!(
        agent.loud_frames >= 80,
        "{} frames of the tone heard: {report:?}",
        agent.loud_frames
    );
    assert!(report.packets_in >= 80, "{report:?}");
    assert!(
        heard >= 80 && loud >= 80,
        "the peer heard {heard} packets, {loud} with the tone"
    );
    // The frame that hangs up is not sent.
    assert_eq!(report.frames_sent, 99);
}

#[test]
fn offers_without_g711_or_not_sdp_are_refused() {
    for bad in ["", "v=0\r\n", "hello"] {
        assert!(waihu_webrtc::accept(bad, "127.0.0.1".parse().unwrap()).is_err());
    }
    // A real offer with only Opus: nothing this side takes.
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true)
        .build(Instant::now());
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    rtc.add_local_candidate(Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let e = waihu_webrtc::accept(&offer.to_sdp_string(), "127.0.0.1".parse().unwrap());
    assert!(e.is_err(), "an Opus-only offer was answered");
}
