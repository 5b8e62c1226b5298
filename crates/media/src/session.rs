//! One call's media as a sans-IO state machine: datagrams and `now` in, RTP packets and
//! aligned 20 ms frames (what we heard, what we sent) out. The runtime calls
//! [`MediaSession::tick`] every 20 ms and [`MediaSession::handle_datagram`] per datagram.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::dtmf::{tone, DtmfReceiver, DtmfSender, ToneDetector};
use crate::jitter::{JitterBuffer, JitterStats, SeqStats};
use crate::rtcp::{Report, ReportBlock, SenderInfo};
use crate::rtp::{looks_like_rtcp, RtpError, RtpHeader, RtpPacket};
use crate::srtp::{SrtpError, SrtpSession};
use crate::FRAME;
use waihu_audio::g711::Law;

/// How a session sends and receives.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub law: Law,
    /// Payload type for `law` (static 0 or 8).
    pub payload_type: u8,
    /// Negotiated telephone-event payload type; None: DTMF is sent in-band as tones.
    pub dtmf_payload_type: Option<u8>,
    pub ssrc: u32,
    pub initial_seq: u16,
    pub initial_ts: u32,
    /// Playout delay of the jitter buffer.
    pub jitter_delay: Duration,
    /// DTMF digit and pause lengths.
    pub dtmf_tone: Duration,
    pub dtmf_gap: Duration,
}

impl SessionConfig {
    pub fn new(
        law: Law,
        dtmf_payload_type: Option<u8>,
        ssrc: u32,
        initial_seq: u16,
        initial_ts: u32,
    ) -> SessionConfig {
        SessionConfig {
            law,
            payload_type: law.payload_type(),
            dtmf_payload_type,
            ssrc,
            initial_seq,
            initial_ts,
            jitter_delay: Duration::from_millis(60),
            dtmf_tone: Duration::from_millis(100),
            dtmf_gap: Duration::from_millis(100),
        }
    }
}

/// Something the remote side did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit, from RFC 4733 events or detected in the audio.
    Dtmf { digit: char, inband: bool },
    /// An RTCP report from the peer about our stream.
    PeerReport {
        fraction_lost: u8,
        cumulative_lost: i32,
        jitter: u32,
    },
}

/// Counters for logs, the JSON outcome and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MediaStats {
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Lost by sequence numbers (RFC 3550 expected − received).
    pub lost: u64,
    /// Arrived too late for playout.
    pub late: u64,
    pub duplicates: u64,
    /// Datagrams that were neither valid RTP nor RTCP, or RTP of an unknown payload type.
    pub malformed: u64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// 20 ms frames that held received audio.
    pub frames_with_audio: u64,
    pub buffer: JitterStats,
    /// RTCP compound packets sent and received.
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// The peer's view of our stream, from its last report block about us: loss
    /// fraction of the last interval (0–1), cumulative loss, jitter (ms).
    pub peer_fraction_lost: Option<f64>,
    pub peer_lost: Option<i64>,
    pub peer_jitter_ms: Option<f64>,
    /// Round-trip time from the peer's LSR/DLSR echo of our last SR (RFC 3550 §6.4.1).
    pub rtt_ms: Option<f64>,
    /// SRTP datagrams dropped because their tag did not check (wrong key, altered,
    /// or plain RTP on an SRTP call).
    pub srtp_auth_failed: u64,
    /// The same for SRTCP, counted apart: a report that fails says nothing
    /// about the media, and a peer tearing a call down may send its RTCP BYE
    /// after its SRTP context is gone.
    pub srtcp_auth_failed: u64,
    /// SRTP/SRTCP datagrams dropped as replays (or older than the replay window).
    pub srtp_replayed: u64,
}

/// The media state of one call.
#[derive(Debug)]
pub struct MediaSession {
    cfg: SessionConfig,
    seq: u16,
    ts: u32,
    first_packet: bool,
    sending: bool,
    started: Instant,
    jitter: JitterBuffer,
    seq_stats: SeqStats,
    dtmf_tx: DtmfSender,
    dtmf_rx: DtmfReceiver,
    tones: ToneDetector,
    /// Phase of the in-band tone being sent (samples since it started).
    inband_phase: usize,
    events: VecDeque<MediaEvent>,
    remote_ssrc: Option<u32>,
    last_rx: Option<Instant>,
    stats: MediaStats,
    octets_sent: u64,
    rx_frame: Vec<i16>,
    tx_frame: Vec<i16>,
    rx_has_audio: bool,
    decode_buf: Vec<i16>,
    encode_buf: Vec<u8>,
    /// The middle 32 bits of the peer's last SR timestamp and when it arrived (for LSR/DLSR).
    last_peer_sr: Option<(u32, Instant)>,
    /// SRTP keys when the call negotiated SDES-SRTP: every packet out is protected, every
    /// datagram in must authenticate.
    srtp: Option<SrtpSession>,
    /// Scratch buffer for decrypting a received datagram in place.
    srtp_buf: Vec<u8>,
}

/// The middle 32 bits of a 64-bit NTP timestamp (RFC 3550's "compact" form, 1/65536 s).
fn ntp_mid(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

impl MediaSession {
    pub fn new(cfg: SessionConfig, now: Instant) -> MediaSession {
        let delay = (cfg.jitter_delay.as_millis() as usize * 8).max(FRAME);
        let ptime = 20;
        MediaSession {
            seq: cfg.initial_seq,
            ts: cfg.initial_ts,
            first_packet: true,
            sending: true,
            started: now,
            jitter: JitterBuffer::new(FRAME, delay, delay + 8 * 240),
            seq_stats: SeqStats::default(),
            dtmf_tx: DtmfSender::new(
                cfg.dtmf_tone.as_millis() as u32,
                cfg.dtmf_gap.as_millis() as u32,
                ptime,
            ),
            dtmf_rx: DtmfReceiver::default(),
            tones: ToneDetector::default(),
            inband_phase: 0,
            events: VecDeque::new(),
            remote_ssrc: None,
            last_rx: None,
            stats: MediaStats::default(),
            octets_sent: 0,
            rx_frame: vec![0; FRAME],
            tx_frame: vec![0; FRAME],
            rx_has_audio: false,
            decode_buf: Vec::with_capacity(FRAME),
            encode_buf: Vec::with_capacity(FRAME),
            last_peer_sr: None,
            srtp: None,
            srtp_buf: Vec::with_capacity(256),
            cfg,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// Turns SRTP on (or off with `None`): from now on [`tick`](Self::tick) and
    /// [`rtcp_report`](Self::rtcp_report) return SRTP/SRTCP, and
    /// [`handle_datagram`](Self::handle_datagram) accepts only packets that authenticate.
    pub fn set_srtp(&mut self, srtp: Option<SrtpSession>) {
        self.srtp = srtp;
    }

    /// The peer changed its key (a re-INVITE): a new receive context; what we send keeps
    /// its key, rollover counter and SRTCP index. False when SRTP is off.
    pub fn rekey_inbound(&mut self, theirs: &crate::srtp::SrtpKey) -> bool {
        match &mut self.srtp {
            Some(s) => {
                s.inbound = crate::srtp::SrtpContext::new(theirs);
                true
            }
            None => false,
        }
    }

    pub fn srtp_on(&self) -> bool {
        self.srtp.is_some()
    }

    /// Stops or resumes sending (hold, receive-only early media). Ticks still play out.
    pub fn set_sending(&mut self, on: bool) {
        self.sending = on;
    }

    /// Queues DTMF digits; returns the characters that are not digits (skipped).
    pub fn send_dtmf(&mut self, digits: &str) -> Vec<char> {
        self.dtmf_tx.push(digits)
    }

    /// True when all queued DTMF has gone out.
    pub fn dtmf_idle(&self) -> bool {
        self.dtmf_tx.is_idle()
    }

    /// When the last valid RTP packet arrived.
    pub fn last_rx(&self) -> Option<Instant> {
        self.last_rx
    }

    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// One received datagram (RTP or RTCP, muxed or not). Never panics on outside input.
    /// With SRTP on, a datagram that does not authenticate is dropped and counted
    /// ([`MediaStats::srtp_auth_failed`], [`MediaStats::srtp_replayed`]) and reads as `Ok`.
    pub fn handle_datagram(&mut self, now: Instant, bytes: &[u8]) -> Result<(), RtpError> {
        let Some(srtp) = &mut self.srtp else {
            return self.handle_plain(now, bytes);
        };
        let mut buf = std::mem::take(&mut self.srtp_buf);
        buf.clear();
        buf.extend_from_slice(bytes);
        let rtcp = looks_like_rtcp(bytes);
        let r = if rtcp {
            srtp.inbound.unprotect_rtcp(&mut buf)
        } else {
            srtp.inbound.unprotect_rtp(&mut buf)
        };
        let out = match r {
            Ok(n) => self.handle_plain(now, &buf[..n]),
            Err(SrtpError::Replay | SrtpError::TooOld) => {
                self.stats.srtp_replayed += 1;
                Ok(())
            }
            Err(_) if rtcp => {
                self.stats.srtcp_auth_failed += 1;
                Ok(())
            }
            Err(_) => {
                self.stats.srtp_auth_failed += 1;
                Ok(())
            }
        };
        self.srtp_buf = buf;
        out
    }

    fn handle_plain(&mut self, now: Instant, bytes: &[u8]) -> Result<(), RtpError> {
        if looks_like_rtcp(bytes) {
            let reports = Report::parse_compound(bytes);
            if !reports.is_empty() {
                self.stats.rtcp_received += 1;
            }
            let now_mid = ntp_mid(self.ntp(now));
            for r in reports {
                if let Some(sr) = r.sender {
                    self.last_peer_sr = Some((ntp_mid(sr.ntp), now));
                }
                if let Some(b) = r.blocks.iter().find(|b| b.ssrc == self.cfg.ssrc) {
                    self.stats.peer_fraction_lost = Some(f64::from(b.fraction_lost) / 256.0);
                    self.stats.peer_lost = Some(i64::from(b.cumulative_lost));
                    // Jitter is in timestamp units: 8 per ms at 8 kHz.
                    self.stats.peer_jitter_ms = Some(f64::from(b.jitter) / 8.0);
                    if b.last_sr != 0 {
                        let units = now_mid
                            .wrapping_sub(b.last_sr)
                            .wrapping_sub(b.delay_since_last_sr);
                        // Anything over a minute is a wrapped or bogus echo, not a round trip.
                        if units < 60 * 65_536 {
                            self.stats.rtt_ms = Some(f64::from(units) * 1000.0 / 65_536.0);
                        }
                    }
                    self.events.push_back(MediaEvent::PeerReport {
                        fraction_lost: b.fraction_lost,
                        cumulative_lost: b.cumulative_lost,
                        jitter: b.jitter,
                    });
                }
            }
            return Ok(());
        }
        let p = match RtpPacket::parse(bytes) {
            Ok(p) => p,
            Err(e) => {
                self.stats.malformed += 1;
                return Err(e);
            }
        };
        if self.remote_ssrc != Some(p.ssrc) {
            self.remote_ssrc = Some(p.ssrc);
            self.seq_stats = SeqStats::default();
        }
        self.last_rx = Some(now);
        self.stats.packets_received += 1;
        let arrival = now.saturating_duration_since(self.started).as_secs_f64() * 8000.0;
        self.seq_stats.record(p.sequence, p.timestamp, arrival);
        if Some(p.payload_type) == self.cfg.dtmf_payload_type {
            if let Some(d) = self.dtmf_rx.handle(p.timestamp, p.payload) {
                self.events.push_back(MediaEvent::Dtmf {
                    digit: d,
                    inband: false,
                });
            }
            return Ok(());
        }
        let law = match Law::from_payload_type(p.payload_type) {
            Some(l) => l,
            // Comfort noise (13) and anything else: not audio we can play.
            None => {
                if p.payload_type != 13 {
                    self.stats.malformed += 1;
                }
                return Ok(());
            }
        };
        let mut pcm = std::mem::take(&mut self.decode_buf);
        pcm.clear();
        law.decode(p.payload, &mut pcm);
        self.jitter.insert(p.ssrc, p.timestamp, pcm.clone());
        self.decode_buf = pcm;
        Ok(())
    }

    /// Advances one 20 ms tick: plays out a received frame and produces the packet to send.
    /// `ours` is what we say this tick (160 samples; shorter is padded with silence). After
    /// the call, [`received_frame`](Self::received_frame) and [`sent_frame`](Self::sent_frame)
    /// hold the time-aligned audio of both sides (for recording and the voice pipeline).
    pub fn tick(&mut self, _now: Instant, ours: &[i16]) -> Option<Vec<u8>> {
        // Receive side.
        self.rx_has_audio = self.jitter.pull(&mut self.rx_frame);
        if self.rx_has_audio {
            self.stats.frames_with_audio += 1;
            // In-band detection is the fallback for peers without RFC 4733 (and costs eight
            // Goertzel filters per frame, so it runs only then).
            if self.cfg.dtmf_payload_type.is_none() {
                if let Some(d) = self.tones.push(&self.rx_frame) {
                    self.events.push_back(MediaEvent::Dtmf {
                        digit: d,
                        inband: true,
                    });
                }
            }
        }
        // Send side.
        self.tx_frame.clear();
        self.tx_frame
            .extend_from_slice(&ours[..ours.len().min(FRAME)]);
        self.tx_frame.resize(FRAME, 0);
        let ts = self.ts;
        self.ts = self.ts.wrapping_add(FRAME as u32);
        if !self.sending {
            return None;
        }
        let event = self.dtmf_tx.tick(ts);
        let mut out = Vec::with_capacity(12 + FRAME);
        match (event, self.cfg.dtmf_payload_type) {
            (Some((start, ev)), Some(pt)) => {
                // Record the tone we signal so the recording shows the digit too.
                let digit = crate::dtmf::digit_for(ev.payload.event).unwrap_or('0');
                self.inband_phase = if ev.marker {
                    0
                } else {
                    self.inband_phase + FRAME
                };
                if !ev.payload.end {
                    self.tx_frame = tone(digit, FRAME, 6000.0, self.inband_phase);
                } else {
                    self.tx_frame.iter_mut().for_each(|s| *s = 0);
                }
                let h = RtpHeader {
                    marker: ev.marker,
                    payload_type: pt,
                    sequence: self.seq,
                    timestamp: start,
                    ssrc: self.cfg.ssrc,
                };
                h.write(&ev.payload.to_bytes(), &mut out);
            }
            (ev, _) => {
                if let Some((_, ev)) = ev {
                    // No telephone-event negotiated: send the tone in-band instead.
                    self.inband_phase = if ev.marker {
                        0
                    } else {
                        self.inband_phase + FRAME
                    };
                    let digit = crate::dtmf::digit_for(ev.payload.event).unwrap_or('0');
                    self.tx_frame = if ev.payload.end {
                        vec![0; FRAME]
                    } else {
                        tone(digit, FRAME, 6000.0, self.inband_phase)
                    };
                }
                self.encode_buf.clear();
                self.cfg.law.encode(&self.tx_frame, &mut self.encode_buf);
                let h = RtpHeader {
                    marker: self.first_packet,
                    payload_type: self.cfg.payload_type,
                    sequence: self.seq,
                    timestamp: ts,
                    ssrc: self.cfg.ssrc,
                };
                h.write(&self.encode_buf, &mut out);
            }
        }
        self.first_packet = false;
        self.seq = self.seq.wrapping_add(1);
        self.stats.packets_sent += 1;
        self.octets_sent += (out.len() - 12) as u64;
        if let Some(srtp) = &mut self.srtp {
            // Our own packets always have a valid header.
            srtp.outbound.protect_rtp(&mut out).ok()?;
        }
        Some(out)
    }

    /// The remote party's audio of the last tick (silence when nothing arrived in time).
    pub fn received_frame(&self) -> &[i16] {
        &self.rx_frame
    }
    /// Whether the last tick's received frame held real audio.
    pub fn received_audio(&self) -> bool {
        self.rx_has_audio
    }
    /// What we sent in the last tick (including DTMF tones we signalled).
    pub fn sent_frame(&self) -> &[i16] {
        &self.tx_frame
    }

    /// Our NTP-format clock: time since the session started (peers only echo it back, so
    /// it need not be wall-clock time). Starts one second in so no SR has a zero LSR.
    fn ntp(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started) + Duration::from_secs(1);
        (elapsed.as_secs() << 32) | ((u64::from(elapsed.subsec_nanos()) << 32) / 1_000_000_000)
    }

    /// An RTCP compound packet (SR if we send, else RR) about both directions.
    pub fn rtcp_report(&mut self, now: Instant, cname: &str) -> Vec<u8> {
        let mut blocks = Vec::new();
        if let Some(ssrc) = self.remote_ssrc {
            let (last_sr, delay_since_last_sr) = match self.last_peer_sr {
                Some((mid, at)) => {
                    let d = now.saturating_duration_since(at);
                    (mid, (d.as_secs_f64() * 65_536.0) as u32)
                }
                None => (0, 0),
            };
            blocks.push(ReportBlock {
                ssrc,
                fraction_lost: self.seq_stats.take_fraction_lost(),
                cumulative_lost: self.seq_stats.lost().min(0x7F_FFFF) as i32,
                highest_seq: self.seq_stats.highest_seq(),
                jitter: self.seq_stats.jitter_samples() as u32,
                last_sr,
                delay_since_last_sr,
            });
        }
        self.stats.rtcp_sent += 1;
        let ntp = self.ntp(now);
        let sender = (self.stats.packets_sent > 0).then_some(SenderInfo {
            ntp,
            rtp_ts: self.ts,
            packets: self.stats.packets_sent as u32,
            octets: self.octets_sent as u32,
        });
        let mut pkt = Report {
            ssrc: self.cfg.ssrc,
            sender,
            blocks,
        }
        .to_bytes(cname);
        if let Some(srtp) = &mut self.srtp {
            // Our own compound packets always hold at least an 8-byte header.
            let _ = srtp.outbound.protect_rtcp(&mut pkt);
        }
        pkt
    }

    pub fn stats(&self) -> MediaStats {
        let mut s = self.stats;
        s.lost = self.seq_stats.lost();
        s.jitter_ms = self.seq_stats.jitter_samples() / 8.0;
        s.buffer = self.jitter.stats();
        s.late = s.buffer.late;
        s.duplicates = s.buffer.duplicates;
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(a_dtmf: Option<u8>, b_dtmf: Option<u8>) -> (MediaSession, MediaSession, Instant) {
        let now = Instant::now();
        let a = MediaSession::new(SessionConfig::new(Law::Alaw, a_dtmf, 1, 100, 5000), now);
        let b = MediaSession::new(
            SessionConfig::new(Law::Alaw, b_dtmf, 2, 65530, u32::MAX - 300),
            now,
        );
        (a, b, now)
    }

    /// Two sessions wired back to back in virtual time: audio and DTMF cross, stats add up.
    #[test]
    fn back_to_back_audio_and_dtmf() {
        for dtmf in [Some(101), None] {
            let (mut a, mut b, t0) = pair(dtmf, dtmf);
            a.send_dtmf("4#");
            let speech: Vec<i16> = (0..FRAME)
                .map(|i| ((i as f32 * 0.3).sin() * 5000.0) as i16)
                .collect();
            let mut heard = 0;
            for k in 0..100u32 {
                let now = t0 + Duration::from_millis(20 * u64::from(k));
                if let Some(p) = a.tick(now, if a.dtmf_idle() { &speech } else { &[] }) {
                    // Drop every 25th packet.
                    if k % 25 != 10 {
                        b.handle_datagram(now, &p).unwrap();
                    }
                }
                if let Some(p) = b.tick(now, &[]) {
                    a.handle_datagram(now, &p).unwrap();
                }
                if b.received_audio()
                    && b.received_frame()
                        .iter()
                        .map(|&s| i64::from(s).abs())
                        .sum::<i64>()
                        > 100_000
                {
                    heard += 1;
                }
            }
            let mut digits = String::new();
            while let Some(ev) = b.poll_event() {
                if let MediaEvent::Dtmf { digit, inband } = ev {
                    assert_eq!(inband, dtmf.is_none());
                    digits.push(digit);
                }
            }
            assert_eq!(digits, "4#", "dtmf {dtmf:?}");
            assert!(heard > 60, "heard {heard}");
            let s = b.stats();
            assert_eq!(s.packets_received, 96);
            assert_eq!(s.lost, 4);
            assert_eq!(s.late, 0);
            let rr = b.rtcp_report(t0 + Duration::from_secs(2), "b");
            a.handle_datagram(t0 + Duration::from_secs(2), &rr).unwrap();
            let rep = std::iter::from_fn(|| a.poll_event())
                .find(|e| matches!(e, MediaEvent::PeerReport { .. }));
            assert!(
                matches!(
                    rep,
                    Some(MediaEvent::PeerReport {
                        cumulative_lost: 4,
                        ..
                    })
                ),
                "{rep:?}"
            );
        }
    }

    /// SR → RR with LSR/DLSR: the round trip is what the wire took, not the peer's hold
    /// time; the peer's view of our stream (loss, jitter) is kept in our stats.
    #[test]
    fn rtcp_round_trip_and_peer_view() {
        let (mut a, mut b, t0) = pair(None, None);
        let speech = vec![1000i16; FRAME];
        for k in 0..50u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            if let Some(p) = a.tick(now, &speech) {
                // b misses 5 of a's packets.
                if k % 10 != 3 {
                    b.handle_datagram(now + Duration::from_millis(15), &p)
                        .unwrap();
                }
            }
            if let Some(p) = b.tick(now, &speech) {
                a.handle_datagram(now + Duration::from_millis(15), &p)
                    .unwrap();
            }
        }
        let t1 = t0 + Duration::from_secs(1);
        let sr = a.rtcp_report(t1, "a");
        // 15 ms on the wire, 200 ms held by b, 15 ms back: RTT 30 ms.
        b.handle_datagram(t1 + Duration::from_millis(15), &sr)
            .unwrap();
        let rr = b.rtcp_report(t1 + Duration::from_millis(215), "b");
        a.handle_datagram(t1 + Duration::from_millis(230), &rr)
            .unwrap();
        let s = a.stats();
        let rtt = s.rtt_ms.expect("an RTT");
        assert!((rtt - 30.0).abs() < 0.5, "rtt {rtt}");
        assert_eq!(s.peer_lost, Some(5));
        assert!(
            s.peer_fraction_lost.is_some_and(|f| f > 0.05 && f < 0.15),
            "{s:?}"
        );
        assert!(s.peer_jitter_ms.is_some());
        assert_eq!((s.rtcp_sent, s.rtcp_received), (1, 1));
        // Before any SR from the peer, an RR carries no LSR and gives no RTT.
        let (mut c, mut d, t0) = pair(None, None);
        if let Some(p) = c.tick(t0, &speech) {
            d.handle_datagram(t0, &p).unwrap();
        }
        let rr = d.rtcp_report(t0 + Duration::from_secs(1), "d");
        c.handle_datagram(t0 + Duration::from_secs(1), &rr).unwrap();
        assert_eq!(c.stats().rtt_ms, None);
        assert_eq!(c.stats().peer_lost, Some(0));
    }

    /// SRTP both ways: audio, RFC 4733 DTMF and RTCP cross encrypted (b's sequence numbers
    /// wrap, so its ROC rolls over); the wrong key or plain RTP is dropped and counted.
    #[test]
    fn srtp_back_to_back() {
        use crate::srtp::{SrtpKey, SrtpSession};
        let ka = SrtpKey::from_bytes(&[7; 30]).unwrap();
        let kb = SrtpKey::from_bytes(&[9; 30]).unwrap();
        let (mut a, mut b, t0) = pair(Some(101), Some(101));
        a.set_srtp(Some(SrtpSession::new(&ka, &kb)));
        b.set_srtp(Some(SrtpSession::new(&kb, &ka)));
        let mut plain = MediaSession::new(SessionConfig::new(Law::Alaw, None, 3, 4000, 0), t0);
        let mut eve = MediaSession::new(SessionConfig::new(Law::Alaw, Some(101), 5, 0, 0), t0);
        eve.set_srtp(Some(SrtpSession::new(&kb, &kb)));
        a.send_dtmf("7");
        let speech = vec![3000i16; FRAME];
        let mut heard = 0;
        for k in 0..60u32 {
            let now = t0 + Duration::from_millis(20 * u64::from(k));
            if let Some(p) = a.tick(now, if a.dtmf_idle() { &speech } else { &[] }) {
                assert!(RtpPacket::parse(&p).is_ok(), "the header stays readable");
                b.handle_datagram(now, &p).unwrap();
                eve.handle_datagram(now, &p).unwrap();
            }
            if let Some(p) = b.tick(now, &speech) {
                a.handle_datagram(now, &p).unwrap();
            }
            if let Some(p) = plain.tick(now, &speech) {
                b.handle_datagram(now, &p).unwrap();
            }
            eve.tick(now, &[]);
            heard += usize::from(b.received_audio());
        }
        assert!(heard > 30, "heard {heard}");
        assert_eq!(
            b.poll_event(),
            Some(MediaEvent::Dtmf {
                digit: '7',
                inband: false
            })
        );
        let sb = b.stats();
        assert_eq!(sb.packets_received, 60);
        assert_eq!(sb.srtp_auth_failed, 60, "plain RTP refused");
        assert_eq!(a.stats().packets_received, 60);
        let es = eve.stats();
        assert_eq!((es.packets_received, es.frames_with_audio), (0, 0));
        assert_eq!(es.srtp_auth_failed, 60);
        let sr = a.rtcp_report(t0 + Duration::from_secs(2), "a");
        b.handle_datagram(t0 + Duration::from_secs(2), &sr).unwrap();
        b.handle_datagram(t0 + Duration::from_secs(2), &sr).unwrap();
        assert_eq!(b.stats().rtcp_received, 1);
        assert_eq!(b.stats().srtp_replayed, 1);
        let rr = b.rtcp_report(t0 + Duration::from_secs(2), "b");
        a.handle_datagram(t0 + Duration::from_secs(2), &rr).unwrap();
        assert_eq!(a.stats().rtcp_received, 1);
        assert!(a.stats().rtt_ms.is_some());
    }

    #[test]
    fn garbage_is_counted_not_fatal() {
        let (mut a, _, now) = pair(Some(101), None);
        assert!(a.handle_datagram(now, &[1, 2, 3]).is_err());
        a.handle_datagram(
            now,
            &RtpHeader {
                marker: false,
                payload_type: 96,
                sequence: 1,
                timestamp: 1,
                ssrc: 3,
            }
            .to_vec(&[1]),
        )
        .unwrap();
        assert_eq!(a.stats().malformed, 2);
    }
}
