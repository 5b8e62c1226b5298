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
//! Audio is Opus (RFC 7587) when the browser offers it, which every browser
//! does first, else G.711 (PCMU, else PCMA), which every browser must offer
//! (RFC 7874 §3); [`Codecs::G711`] refuses Opus. Either way the bot hears
//! 8 kHz, the band a phone line gives it: libopus decodes straight to 8 kHz
//! (its own band-limiting resampler) and encodes the bot's 8 kHz voice as
//! narrowband Opus, so the browser test is never easier than a real call.
//! Opus is the `opus` crate over the system libopus (Debian `libopus-dev`),
//! the reference implementation: no codec is written here.
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
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
    #[error("the offer has no audio this side can take ({1}): {0}")]
    Media(String, &'static str),
    #[error("WebRTC: {0}")]
    Rtc(String),
    #[error("UDP socket: {0}")]
    Io(#[from] std::io::Error),
}

/// The audio codecs a leg may answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Codecs {
    /// Opus when offered (the browser's first choice), else G.711.
    #[default]
    Opus,
    /// G.711 only (PCMU, else PCMA): what a phone line carries, byte for byte.
    G711,
}

impl Codecs {
    fn describe(self) -> &'static str {
        match self {
            Codecs::Opus => "Opus, G.711 PCMU or PCMA",
            Codecs::G711 => "G.711 PCMU or PCMA",
        }
    }
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
    /// The negotiated codec (`opus`, `PCMU` or `PCMA`).
    pub codec: Option<&'static str>,
    /// Audio packets received from the browser.
    pub packets_in: u64,
    /// Received packets the codec could not decode.
    pub undecodable: u64,
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
    codec: &'static str,
}

/// Answers a browser's SDP offer: a socket on `ip` (port chosen by the
/// system) as the only candidate, the audio `codecs` allow. Returns the SDP
/// answer to send back and the leg to [`Leg::run`].
pub fn accept(offer: &str, ip: IpAddr, codecs: Codecs) -> Result<(String, Leg), Error> {
    let offer = SdpOffer::from_sdp_string(offer).map_err(|e| Error::Sdp(e.to_string()))?;
    let now = Instant::now();
    let mut rtc = RtcConfig::new()
        .clear_codecs()
        .enable_opus(codecs == Codecs::Opus)
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
        .map_err(|e| Error::Media(e.to_string(), codecs.describe()))?;
    let sdp = answer.to_sdp_string();
    // What the leg will send: the same order `Leg::run` picks in.
    let codec = if codecs == Codecs::Opus && sdp.to_ascii_lowercase().contains("opus/48000") {
        "opus"
    } else if sdp.contains("PCMU/8000") {
        "PCMU"
    } else if sdp.contains("PCMA/8000") {
        "PCMA"
    } else {
        return Err(Error::Media(
            "no common audio codec in the answer".into(),
            codecs.describe(),
        ));
    };
    Ok((
        sdp,
        Leg {
            rtc,
            socket: UdpSocket::from_std(socket)?,
            local,
            started: now,
            codec,
        },
    ))
}

/// How one direction's audio is coded: G.711, or Opus at 8 kHz on the
/// wire's 48 kHz RTP clock (RFC 7587 §4.1).
enum Coder {
    G711(Law),
    Opus {
        enc: Box<opus::Encoder>,
        dec: Box<opus::Decoder>,
    },
}

/// The coder for a negotiated codec, preferring Opus, then PCMU, then PCMA.
fn coder_rank(codec: Codec) -> Option<u8> {
    match codec {
        Codec::Opus => Some(0),
        Codec::PCMU => Some(1),
        Codec::PCMA => Some(2),
        _ => None,
    }
}

impl Coder {
    fn new(codec: Codec) -> Result<(Coder, &'static str), String> {
        Ok(match codec {
            Codec::PCMU => (Coder::G711(Law::Ulaw), "PCMU"),
            Codec::PCMA => (Coder::G711(Law::Alaw), "PCMA"),
            Codec::Opus => {
                let mut enc =
                    opus::Encoder::new(8000, opus::Channels::Mono, opus::Application::Voip)
                        .map_err(|e| format!("Opus encoder: {e}"))?;
                // Narrowband speech: 16 kbit/s is transparent for it.
                enc.set_bitrate(opus::Bitrate::Bits(16_000))
                    .map_err(|e| format!("Opus encoder: {e}"))?;
                let dec = opus::Decoder::new(8000, opus::Channels::Mono)
                    .map_err(|e| format!("Opus decoder: {e}"))?;
                (
                    Coder::Opus {
                        enc: Box::new(enc),
                        dec: Box::new(dec),
                    },
                    "opus",
                )
            }
            other => return Err(format!("no coder for {other:?}")),
        })
    }

    /// The RTP clock of what this coder sends.
    fn clock(&self) -> Frequency {
        match self {
            Coder::G711(_) => Frequency::EIGHT_KHZ,
            Coder::Opus { .. } => Frequency::FORTY_EIGHT_KHZ,
        }
    }

    /// 8 kHz samples per 20 ms frame → one payload.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> bool {
        out.clear();
        match self {
            Coder::G711(law) => {
                law.encode(pcm, out);
                true
            }
            Coder::Opus { enc, .. } => {
                out.resize(400, 0);
                match enc.encode(pcm, out) {
                    Ok(n) => {
                        out.truncate(n);
                        true
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "Opus encode");
                        false
                    }
                }
            }
        }
    }

    /// One received payload of `codec` → 8 kHz samples (`false` if it cannot be decoded).
    fn decode(&mut self, codec: Codec, payload: &[u8], out: &mut Vec<i16>) -> bool {
        out.clear();
        match (codec, self) {
            (Codec::PCMU, _) => Law::Ulaw.decode(payload, out),
            (Codec::PCMA, _) => Law::Alaw.decode(payload, out),
            (Codec::Opus, Coder::Opus { dec, .. }) => {
                // Up to 120 ms per packet (RFC 6716 §3.2.5).
                out.resize(960, 0);
                match dec.decode(payload, out, false) {
                    Ok(n) => out.truncate(n),
                    Err(_) => return false,
                }
            }
            _ => return false,
        }
        true
    }
}

impl Leg {
    /// The codec the answer settled on (`opus`, `PCMU` or `PCMA`).
    pub fn codec(&self) -> &'static str {
        self.codec
    }

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
        let mut encoded = Vec::with_capacity(400);
        let mut decoded = Vec::with_capacity(960);
        // The audio m-line, the payload type we send with and its coder, once known.
        let mut out: Option<(Mid, Pt, Coder)> = None;
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
                                    .filter_map(|p| {
                                        let c = p.spec().codec;
                                        coder_rank(c).map(|r| (r, p.pt(), c))
                                    })
                                    .min_by_key(|(r, _, _)| *r)
                            });
                            if let Some((_, pt, codec)) = chosen {
                                match Coder::new(codec) {
                                    Ok((coder, name)) => {
                                        out = Some((m.mid, pt, coder));
                                        report.codec = Some(name);
                                    }
                                    Err(e) => break Err(e),
                                }
                            }
                        }
                        Event::MediaData(d) => {
                            let codec = d.params.spec().codec;
                            if coder_rank(codec).is_some() {
                                report.packets_in += 1;
                                let ok = match &mut out {
                                    Some((_, _, coder)) => {
                                        coder.decode(codec, &d.data, &mut decoded)
                                    }
                                    None => false,
                                };
                                if ok {
                                    let ts = d.time.rebase(Frequency::EIGHT_KHZ).numer() as u32;
                                    jitter.insert(1, ts, std::mem::take(&mut decoded));
                                } else {
                                    report.undecodable += 1;
                                }
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
                    if let Some((mid, pt, coder)) = &mut out {
                        let clock = coder.clock();
                        let time = MediaTime::new(sent_samples, Frequency::EIGHT_KHZ).rebase(clock);
                        sent_samples += FRAME as u64;
                        if coder.encode(&say, &mut encoded) {
                            if let Some(w) = self.rtc.writer(*mid) {
                                if w.write(*pt, now, time, encoded.clone()).is_ok() {
                                    report.frames_sent += 1;
                                }
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
