//! A browser as a call leg: WebRTC audio on one UDP socket, bridged every
//! 20 ms to a [`CallAgent`], the hook the SIP call task drives. The voice bot
//! that answers a phone call answers the browser's microphone unchanged (VAD,
//! endpointing, ASR, NLU, dialog, TTS), so the console's voice test exercises
//! the product's own pipeline, not a copy of it.
//!
//! WebRTC itself (ICE, DTLS, SRTP, SDP, RTP) is `str0m`: sans-IO like our SIP
//! and media cores, so this crate is only the runtime around it (the socket,
//! the clock, the 20 ms frame loop), with its pure-Rust crypto provider (no
//! OpenSSL). The answer is ICE-lite with one host candidate: the browser
//! checks connectivity to us, which is what a server on a LAN or loopback
//! needs, and no STUN or TURN server is involved.
//!
//! Audio is G.711 (PCMU, else PCMA) at 8 kHz, which every browser must offer
//! (RFC 7874 §3): the bot hears exactly the band a phone line gives it, and
//! nothing is transcoded. Opus is not accepted, on purpose: its wideband
//! audio would make the browser test easier than a real call.
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Serialize;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Frequency, MediaKind, MediaTime, Mid, Pt};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use waihu_audio::g711::Law;
use waihu_engine::agent::{CallAgent, Control};
use waihu_media::jitter::JitterBuffer;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
const FRAME_MS: u64 = 20;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the SDP offer cannot be read: {0}")]
    Sdp(String),
    #[error("the offer has no audio this side can take (G.711 PCMU or PCMA): {0}")]
    Media(String),
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Bounds of one leg.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// ICE and DTLS must complete within this, or the leg ends.
    pub connect: Duration,
    /// The leg ends after this long in any case.
    pub max: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect: Duration::from_secs(15),
            max: Duration::from_secs(10 * 60),
        }
    }
}

/// What happened on a leg.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LegReport {
    /// From the answer to ICE and DTLS connected, ms.
    pub connected_ms: Option<u64>,
    /// The negotiated codec (`PCMU` or `PCMA`).
    pub codec: Option<&'static str>,
    /// Audio packets received from the browser.
    pub packets_in: u64,
    /// Frames handed to the agent that held received audio.
    pub frames_heard: u64,
    /// Frames sent to the browser.
    pub frames_sent: u64,
    /// Why it ended: `agent: <reason>`, `browser left`, `not connected`, `time limit`, `stopped`, or an error.
    pub ended: String,
}

/// One browser's audio session, answered and not yet running.
pub struct Leg {
    rtc: Rtc,
    socket: UdpSocket,
    local: SocketAddr,
    started: Instant,
}

/// Answers a browser's SDP offer: a socket on `ip` (port chosen by the
/// system) as the only candidate, G.711 only. Returns the SDP answer to send
/// back and the leg to [`Leg::run`].
pub fn accept(offer: &str, ip: IpAddr) -> Result<(String, Leg), Error> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| Error::Sdp(e.to_string()))?;
    let now = Instant::now();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_pcmu(true)
        .enable_pcma(true)
        .set_ice_lite(true)
        .build(now);
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    let candidate = Candidate::host(local, "udp").map_err(|e| Error::Rtc(e.to_string()))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc
        .sdp_api()
        .accept_offer(offer)
        .map_err(|e| Error::Media(e.to_string()))?;
    let sdp = answer.to_sdp_string();
    if !sdp.contains("PCMU/8000") && !sdp.contains("PCMA/8000") {
        return Err(Error::Media("no G.711 in the answer".into()));
    }
    Ok((
        sdp,
        Leg {
            rtc,
            socket: UdpSocket::from_std(socket)?,
            local,
            started: now,
        },
    ))
}

fn law_of(codec: Codec) -> Option<(Law, &'static str)> {
    match codec {
        Codec::PCMU => Some((Law::Ulaw, "PCMU")),
        Codec::PCMA => Some((Law::Alaw, "PCMA")),
        _ => None,
    }
}

impl Leg {
    /// The socket the browser sends to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Runs the leg until the agent hangs up, the browser leaves, `limits`
    /// run out or `stop` resolves. The agent is told `on_answered` once media
    /// can flow, then gets a frame every 20 ms, then `on_ended`.
    pub async fn run<A: CallAgent + ?Sized>(
        mut self,
        agent: &mut A,
        limits: Limits,
        stop: impl std::future::Future<Output = ()>,
    ) -> LegReport {
        let mut report = LegReport::default();
        let mut buf = vec![0u8; 2000];
        let mut tick = tokio::time::interval(Duration::from_millis(FRAME_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut jitter = JitterBuffer::new(FRAME, 3 * FRAME, 12 * FRAME);
        let mut heard: Vec<i16> = Vec::with_capacity(FRAME);
        let mut say = vec![0i16; FRAME];
        let mut encoded = Vec::with_capacity(FRAME);
        let mut decoded = Vec::with_capacity(FRAME * 2);
        // The audio m-line and the payload type we send with, once known.
        let mut out: Option<(Mid, Pt, Law)> = None;
        let mut connected = false;
        let mut sent_samples: u64 = 0;
        let deadline = tokio::time::Instant::from_std(self.started + limits.max);
        let connect_by = tokio::time::Instant::from_std(self.started + limits.connect);
        tokio::pin!(stop);
        let ended = loop {
            // Drain what str0m has to say until it wants input or time.
            let wake = loop {
                match self.rtc.poll_output() {
                    Ok(Output::Timeout(at)) => break Ok(at),
                    Ok(Output::Transmit(t)) => {
                        if let Err(e) = self.socket.send_to(&t.contents, t.destination).await {
                            tracing::debug!(error = %e, "WebRTC send");
                        }
                    }
                    Ok(Output::Event(ev)) => match ev {
                        Event::Connected if !connected => {
                            connected = true;
                            report.connected_ms = Some(self.started.elapsed().as_millis() as u64);
                            agent.on_answered(Instant::now());
                        }
                        Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                            break Err("browser left".to_string());
                        }
                        Event::MediaAdded(m) if m.kind == MediaKind::Audio && out.is_none() => {
                            let chosen = self.rtc.writer(m.mid).and_then(|w| {
                                w.payload_params()
                                    .find_map(|p| law_of(p.spec().codec).map(|l| (p.pt(), l)))
                            });
                            if let Some((pt, (law, name))) = chosen {
                                out = Some((m.mid, pt, law));
                                report.codec = Some(name);
                            }
                        }
                        Event::MediaData(d) => {
                            if let Some((law, _)) = law_of(d.params.spec().codec) {
                                report.packets_in += 1;
                                decoded.clear();
                                law.decode(&d.data, &mut decoded);
                                let ts = d.time.rebase(Frequency::EIGHT_KHZ).numer() as u32;
                                jitter.insert(1, ts, std::mem::take(&mut decoded));
                            }
                        }
                        _ => {}
                    },
                    Err(e) => break Err(format!("WebRTC: {e}")),
                }
            };
            let wake = match wake {
                Ok(at) => at,
                Err(why) => break why,
            };
            if !self.rtc.is_alive() {
                break "browser left".into();
            }
            let sleep = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
            let input = tokio::select! {
                _ = &mut stop => break "stopped".into(),
                _ = tokio::time::sleep_until(deadline) => break "time limit".into(),
                _ = tokio::time::sleep_until(connect_by), if !connected => break "not connected".into(),
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, source)) => match buf[..n].try_into() {
                        Ok(contents) => Input::Receive(Instant::now(), Receive {
                            proto: Protocol::Udp,
                            source,
                            destination: self.local,
                            contents,
                        }),
                        // Not STUN, DTLS or (S)RTP: someone else's datagram.
                        Err(_) => continue,
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "WebRTC receive");
                        continue;
                    }
                },
                _ = sleep => Input::Timeout(Instant::now()),
                _ = tick.tick() => {
                    if !connected {
                        continue;
                    }
                    let now = Instant::now();
                    if jitter.pull(&mut heard) {
                        report.frames_heard += 1;
                    }
                    say.iter_mut().for_each(|s| *s = 0);
                    match agent.on_frame(now, &heard, &mut say) {
                        Control::Continue => {}
                        Control::Hangup(why) => break format!("agent: {why}"),
                        // A browser has nobody to be transferred to.
                        Control::Transfer(to) => break format!("agent: transfer to {to}"),
                    }
                    if let Some((mid, pt, law)) = out {
                        encoded.clear();
                        law.encode(&say, &mut encoded);
                        let time = MediaTime::new(sent_samples, Frequency::EIGHT_KHZ);
                        sent_samples += FRAME as u64;
                        if let Some(w) = self.rtc.writer(mid) {
                            if w.write(pt, now, time, encoded.clone()).is_ok() {
                                report.frames_sent += 1;
                            }
                        }
                    }
                    Input::Timeout(now)
                }
            };
            if let Err(e) = self.rtc.handle_input(input) {
                break format!("WebRTC: {e}");
            }
        };
        self.rtc.disconnect();
        agent.on_ended(Instant::now());
        report.ended = ended;
        report
    }
}
