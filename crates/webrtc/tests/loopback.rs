//! A leg against a real WebRTC peer on loopback: a second `str0m` instance
//! (full ICE, the offerer, as a browser is) sends a 1 kHz tone as PCMU, or as
//! 48 kHz Opus as a browser codes it, from a UDP socket; the leg hands it to a
//! call agent, which answers with a 500 Hz tone and hangs up after two
//! seconds. Both directions must carry the tone.
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
    crossings: usize,
    prev: i16,
    hz: f64,
    ended: bool,
}

/// Sign changes in `x`, counting the one from `prev` (the last sample before it).
fn crossings(prev: i16, x: &[i16]) -> usize {
    let mut last = prev;
    let mut n = 0;
    for &s in x {
        if (last < 0) != (s < 0) {
            n += 1;
        }
        last = s;
    }
    n
}

impl CallAgent for Echo {
    fn on_answered(&mut self, _now: Instant) {
        self.answered = true;
    }
    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        if rms(heard) > 1000.0 {
            self.loud_frames += 1;
            self.crossings += crossings(self.prev, heard);
            self.hz = self.crossings as f64 / 2.0 / (self.loud_frames as f64 * 0.02);
        }
        self.prev = heard.last().copied().unwrap_or(0);
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

/// The browser's side: offers one send-receive audio line, sends a tone in
/// `codec`, counts what it hears (and the frequency heard, by zero crossings).
fn peer(
    sock: StdUdp,
    mut rtc: str0m::Rtc,
    mid: str0m::media::Mid,
    codec: Codec,
    stop: Instant,
) -> (usize, usize, f64) {
    let local = sock.local_addr().unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(5)))
        .unwrap();
    let mut buf = vec![0u8; 2000];
    let (mut sent, mut heard, mut loud) = (0usize, 0usize, 0usize);
    // What a browser runs: Opus at 48 kHz both ways.
    let mut enc = opus::Encoder::new(48000, opus::Channels::Mono, opus::Application::Voip).unwrap();
    let mut dec = opus::Decoder::new(48000, opus::Channels::Mono).unwrap();
    let (mut crossed, mut loud_samples, mut prev) = (0usize, 0usize, 0i16);
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
                    assert_eq!(d.params.spec().codec, codec);
                    heard += 1;
                    let (pcm, rate) = if codec == Codec::Opus {
                        let mut pcm = vec![0i16; 5760];
                        let n = dec.decode(&d.data, &mut pcm, false).unwrap();
                        pcm.truncate(n);
                        (pcm, 48000.0)
                    } else {
                        let mut pcm = Vec::new();
                        Law::Ulaw.decode(&d.data, &mut pcm);
                        (pcm, 8000.0)
                    };
                    let loud_frame = rms(&pcm) > 1000.0;
                    if loud_frame {
                        loud += 1;
                        crossed += crossings(prev, &pcm);
                        loud_samples += (pcm.len() as f64 * 8000.0 / rate) as usize;
                    }
                    prev = if loud_frame {
                        pcm.last().copied().unwrap_or(0)
                    } else {
                        0
                    };
                }
                Output::Event(_) => {}
            }
        }
        if connected && Instant::now() >= next_frame {
            if let Some(w) = rtc.writer(mid) {
                let pt = w
                    .payload_params()
                    .find(|p| p.spec().codec == codec)
                    .map(|p| p.pt())
                    .unwrap();
                let (payload, time) = if codec == Codec::Opus {
                    let mut pcm = [0i16; 960];
                    for (i, s) in pcm.iter_mut().enumerate() {
                        let t = (sent * 960 + i) as f64 / 48000.0;
                        *s = (8000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16;
                    }
                    let mut out = vec![0u8; 1500];
                    let n = enc.encode(&pcm, &mut out).unwrap();
                    out.truncate(n);
                    let time = MediaTime::new((sent * 960) as u64, Frequency::FORTY_EIGHT_KHZ);
                    (out, time)
                } else {
                    let mut pcm = [0i16; 160];
                    tone(1000.0, sent * 160, &mut pcm);
                    let mut ulaw = Vec::new();
                    Law::Ulaw.encode(&pcm, &mut ulaw);
                    (
                        ulaw,
                        MediaTime::new((sent * 160) as u64, Frequency::EIGHT_KHZ),
                    )
                };
                w.write(pt, Instant::now(), time, payload).unwrap();
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
    // Zero crossings per second of loud audio: twice the tone's frequency.
    let hz = crossed as f64 / 2.0 / (loud_samples.max(1) as f64 / 8000.0);
    (heard, loud, hz)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_peer_and_the_agent_hear_each_other_over_pcmu() {
    hear_each_other(Codec::PCMU, waihu_webrtc::Codecs::Opus, "PCMU").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webrtc_peer_and_the_agent_hear_each_other_over_opus() {
    hear_each_other(Codec::Opus, waihu_webrtc::Codecs::Opus, "opus").await;
}

/// A browser offers Opus first and G.711 after it; a leg told G.711 takes PCMU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leg_told_g711_answers_pcmu_to_an_offer_of_opus_and_pcmu() {
    hear_each_other(Codec::PCMU, waihu_webrtc::Codecs::G711, "PCMU").await;
}

async fn hear_each_other(codec: Codec, codecs: waihu_webrtc::Codecs, name: &str) {
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(codec == Codec::Opus || codecs == waihu_webrtc::Codecs::G711)
        .enable_pcmu(true)
        .build(Instant::now());
    rtc.add_local_candidate(Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    let mid = change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, pending) = change.apply().unwrap();
    let (answer, leg) =
        waihu_webrtc::accept(&offer.to_sdp_string(), "127.0.0.1".parse().unwrap(), codecs).unwrap();
    assert!(answer.contains("a=ice-lite"), "{answer}");
    if codec == Codec::Opus {
        assert!(answer.contains("opus/48000"), "{answer}");
    } else {
        assert!(answer.contains("PCMU/8000"), "{answer}");
        assert!(!answer.contains("opus"), "{answer}");
    }
    rtc.sdp_api()
        .accept_answer(pending, SdpAnswer::from_sdp_string(&answer).unwrap())
        .unwrap();
    let stop = Instant::now() + Duration::from_secs(6);
    let browser = std::thread::spawn(move || peer(sock, rtc, mid, codec, stop));
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
    let (heard, loud, hz) = browser.join().unwrap();
    assert_eq!(report.ended, "agent: done", "{report:?}");
    assert_eq!(report.codec, Some(name));
    assert_eq!(report.undecodable, 0, "{report:?}");
    assert!(agent.answered && agent.ended);
    // Two seconds of frames; the tone arrives after the jitter buffer's 60 ms.
    assert_eq!(agent.frames, 100);
    assert!(
        agent.loud_frames >= 80,
        "{} frames of the tone heard: {report:?}",
        agent.loud_frames
    );
    assert!(
        (agent.hz - 1000.0).abs() < 40.0,
        "the agent heard {:.0} Hz, not the peer's 1 kHz",
        agent.hz
    );
    assert!(report.packets_in >= 80, "{report:?}");
    assert!(
        heard >= 80 && loud >= 80,
        "the peer heard {heard} packets, {loud} with the tone"
    );
    assert!(
        (hz - 500.0).abs() < 25.0,
        "the peer heard {hz:.0} Hz, not the agent's 500 Hz"
    );
    // The frame that hangs up is not sent.
    assert_eq!(report.frames_sent, 99);
}

#[tokio::test]
async fn offers_without_a_common_codec_or_not_sdp_are_refused() {
    for bad in ["", "v=0\r\n", "hello"] {
        for codecs in [waihu_webrtc::Codecs::Opus, waihu_webrtc::Codecs::G711] {
            assert!(waihu_webrtc::accept(bad, "127.0.0.1".parse().unwrap(), codecs).is_err());
        }
    }
    // A real offer with only Opus: a leg told G.711 has nothing to take.
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(true)
        .build(Instant::now());
    let sock = StdUdp::bind("127.0.0.1:0").unwrap();
    rtc.add_local_candidate(Candidate::host(sock.local_addr().unwrap(), "udp").unwrap());
    let mut change = rtc.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
    let (offer, _) = change.apply().unwrap();
    let e = waihu_webrtc::accept(
        &offer.to_sdp_string(),
        "127.0.0.1".parse().unwrap(),
        waihu_webrtc::Codecs::G711,
    );
    let e = e.err().expect("an Opus-only offer was answered");
    assert!(e.to_string().contains("G.711 PCMU or PCMA"), "{e}");
    // The default takes it.
    assert!(waihu_webrtc::accept(
        &offer.to_sdp_string(),
        "127.0.0.1".parse().unwrap(),
        waihu_webrtc::Codecs::Opus
    )
    .is_ok());
}
