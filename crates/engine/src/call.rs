//! Calls with media: an outgoing call ([`place_call`]) and a UAS that answers
//! ([`serve_incoming`], [`answer_loop`]). Each call is one task: it owns its RTP socket,
//! paces a [`MediaSession`] every 20 ms, plays a prompt, records a stereo WAV (left: the
//! remote party, right: us), sends DTMF and tears the call down on max duration, end of
//! prompt or RTP silence.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use waihu_core::CallOutcome;
use waihu_media::{
    FrameSource, Law, MediaEvent, MediaSession, MediaStats, PcmPlayer, SessionConfig, Silence,
    SrtpKey, SrtpSession, StereoRecorder, FRAME,
};
use waihu_sip::{
    CallId, Codec, Credentials, Negotiated, OutgoingCall, SdesKey, Sdp, SrtpMode, TransferProgress,
    UaEvent,
};

use crate::agent::{CallAgent, Control, IncomingPlan};
use crate::sip::{IncomingCall, SipEndpoint};
use crate::EngineError;

/// What a call does with its media.
#[derive(Debug, Clone)]
pub struct MediaOptions {
    /// 8 kHz mono prompt to play once answered.
    pub play: Option<Arc<[i16]>>,
    pub loop_play: bool,
    /// Stereo WAV to write (left: remote party, right: us). For [`answer_loop`] a directory.
    pub record: Option<PathBuf>,
    /// DTMF digits to send (RFC 4733, or in-band if the peer did not offer telephone-event).
    pub dtmf: Option<String>,
    /// Wait this long after answer before sending DTMF.
    pub dtmf_delay: Duration,
    /// Hang up after this long in the answered state.
    pub max_duration: Duration,
    /// Hang up when no RTP arrived for this long (after answer).
    pub no_rtp_timeout: Duration,
    /// Hang up once the prompt and the DTMF have been sent (plus `tail`).
    pub hangup_after_play: bool,
    pub tail: Duration,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// SDES-SRTP (RFC 4568/3711): off, optional (best effort) or mandatory. The recording
    /// holds the decrypted audio either way.
    pub srtp: SrtpMode,
}

impl Default for MediaOptions {
    fn default() -> Self {
        MediaOptions {
            play: None,
            loop_play: false,
            record: None,
            dtmf: None,
            dtmf_delay: Duration::from_millis(300),
            max_duration: Duration::from_secs(60),
            no_rtp_timeout: Duration::from_secs(10),
            hangup_after_play: false,
            tail: Duration::from_millis(500),
            codecs: vec![Codec::Pcmu, Codec::Pcma],
            srtp: SrtpMode::Off,
        }
    }
}

/// An outgoing call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    pub target: String,
    /// Trunk / outbound proxy.
    pub proxy: Option<SocketAddr>,
    pub credentials: Option<Credentials>,
    pub from_user: Option<String>,
    /// Extra INVITE headers (`P-Asserted-Identity`, `Privacy`).
    pub headers: Vec<(String, String)>,
    /// SIP transport towards the target or proxy (UDP or TCP).
    pub transport: waihu_sip::Transport,
    pub ring_timeout: Duration,
    pub media: MediaOptions,
}

impl CallOptions {
    pub fn new(target: impl Into<String>) -> CallOptions {
        CallOptions {
            target: target.into(),
            proxy: None,
            credentials: None,
            from_user: None,
            headers: Vec::new(),
            transport: waihu_sip::Transport::Udp,
            ring_timeout: Duration::from_secs(45),
            media: MediaOptions::default(),
        }
    }
}

/// Call progress, for printing as it happens.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Trying,
    Ringing,
    EarlyMedia,
    Answered {
        setup_ms: f64,
    },
    DtmfReceived(char),
    HangingUp(String),
    PeerHungUp,
    /// A step of a blind transfer (REFER sent, its answer, each NOTIFY).
    Transfer(String),
}

/// RTP counters of a call.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct RtpReport {
    pub packets_sent: u64,
    pub packets_received: u64,
    pub lost: u64,
    pub late: u64,
    pub jitter_ms: f64,
    pub audio_s: f64,
    /// RTCP reports sent and received.
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// The peer's view of our audio (its last RTCP report block about us): loss in its
    /// last interval (%), cumulative loss, jitter (ms). `None` without RTCP from the peer.
    pub peer_loss_pct: Option<f64>,
    pub peer_lost: Option<i64>,
    pub peer_jitter_ms: Option<f64>,
    /// Round-trip time measured through RTCP (LSR/DLSR), milliseconds.
    pub rtt_ms: Option<f64>,
    /// Whether the media was SRTP, and the datagrams dropped for failing authentication
    /// or as replays.
    pub srtp: bool,
    pub srtp_auth_failed: u64,
    /// SRTCP datagrams that failed authentication (apart from the media's).
    pub srtcp_auth_failed: u64,
    pub srtp_replayed: u64,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl From<MediaStats> for RtpReport {
    fn from(s: MediaStats) -> Self {
        RtpReport {
            packets_sent: s.packets_sent,
            packets_received: s.packets_received,
            lost: s.lost,
            late: s.late,
            jitter_ms: round2(s.jitter_ms),
            audio_s: s.frames_with_audio as f64 * 0.02,
            rtcp_sent: s.rtcp_sent,
            rtcp_received: s.rtcp_received,
            peer_loss_pct: s.peer_fraction_lost.map(|f| round2(f * 100.0)),
            peer_lost: s.peer_lost,
            peer_jitter_ms: s.peer_jitter_ms.map(round2),
            rtt_ms: s.rtt_ms.map(round2),
            srtp: false,
            srtp_auth_failed: s.srtp_auth_failed,
            srtcp_auth_failed: s.srtcp_auth_failed,
            srtp_replayed: s.srtp_replayed,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone, Serialize)]
pub struct CallReport {
    pub outcome: CallOutcome,
    pub sip_status: Option<u16>,
    /// Seconds between answer and hang-up (0 when never answered).
    pub duration_s: f64,
    pub reason: String,
    /// INVITE to answer, milliseconds.
    pub setup_ms: Option<f64>,
    pub early_media: bool,
    /// Seconds of early audio received before the answer (or the failure).
    pub early_audio_s: f64,
    pub dtmf_sent: String,
    pub dtmf_received: String,
    pub codec: Option<String>,
    pub rtp: RtpReport,
    pub recording: Option<PathBuf>,
    /// Final statuses (`None`: timeout or transport failure) of earlier routes this call
    /// failed on before the one that carried it ([`place_call_routed`]).
    pub rerouted_after: Vec<Option<u16>>,
    /// The blind transfer (REFER) the agent asked for, if any.
    pub transfer: Option<TransferReport>,
    #[serde(skip)]
    pub call: CallId,
}

/// A blind transfer as it went.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TransferReport {
    pub target: String,
    /// Each report in order: `REFER 202`, `NOTIFY 100 Trying`, `NOTIFY 200 OK (terminated)`.
    pub progress: Vec<String>,
    /// `Some(true)`: the target answered the transferee; `Some(false)`: refused or failed;
    /// `None`: still under way when the call ended.
    pub succeeded: Option<bool>,
    /// REFER sent → final report, milliseconds.
    pub settled_ms: Option<f64>,
}

impl TransferReport {
    fn new(target: String) -> TransferReport {
        TransferReport {
            target,
            progress: Vec::new(),
            succeeded: None,
            settled_ms: None,
        }
    }

    fn record(&mut self, p: &TransferProgress, since_refer_ms: f64) {
        self.progress.push(match p {
            TransferProgress::Accepted { status } => format!("REFER {status}"),
            TransferProgress::Refused { status: Some(s) } => format!("REFER {s}"),
            TransferProgress::Refused { status: None } => "REFER unanswered or not sent".into(),
            TransferProgress::Notified {
                status,
                reason,
                terminated,
            } => format!(
                "NOTIFY {status} {reason}{}",
                if *terminated { " (terminated)" } else { "" }
            ),
        });
        if self.succeeded.is_none() {
            if let Some(ok) = p.settled() {
                self.succeeded = Some(ok);
                self.settled_ms = Some((since_refer_ms * 10.0).round() / 10.0);
            }
        }
    }
}

/// Where an INVITE goes: one trunk.
#[derive(Debug, Clone)]
pub struct Route {
    pub target: String,
    pub proxy: Option<SocketAddr>,
    pub transport: waihu_sip::Transport,
    pub credentials: Option<Credentials>,
    /// Extra INVITE headers this route wants (a trunk's `P-Asserted-Identity`, `Privacy`).
    pub headers: Vec<(String, String)>,
    /// The trunk's SDES-SRTP policy (a failover to a trunk with another policy re-offers).
    pub srtp: SrtpMode,
}

/// Asked when an outgoing call failed before it was answered, with the final status
/// (`None`: timeout or transport failure): the next route for the same call (the same
/// media, agent and recording), or `None` to let the failure stand.
pub type NextRoute<'a> = &'a mut (dyn FnMut(Option<u16>) -> Option<Route> + Send);

fn law_of(c: Codec) -> Law {
    match c {
        Codec::Pcmu => Law::Ulaw,
        Codec::Pcma => Law::Alaw,
    }
}

/// The media half of a call: socket, session, prompt, recorder.
struct Media {
    sock: UdpSocket,
    /// RTCP on the RTP port + 1 (RFC 3550 §11), so peers need no `a=rtcp`.
    rtcp: Option<Arc<UdpSocket>>,
    rtcp_remote: Option<SocketAddr>,
    rtcp_next: Option<Instant>,
    local: SocketAddr,
    session: Option<MediaSession>,
    remote: Option<SocketAddr>,
    negotiated: Option<Negotiated>,
    source: Box<dyn FrameSource>,
    source_done: bool,
    frame: Vec<i16>,
    recorder: Option<StereoRecorder>,
    record_path: Option<PathBuf>,
    record_error: Option<String>,
    dtmf_received: String,
    early_frames: u64,
    answered: bool,
    /// Plays `source` before the answer (a UAS's early-media announcement).
    early_sending: bool,
    agent: Option<Box<dyn CallAgent>>,
    /// The remote party's audio of the last tick, handed to the agent.
    heard: Vec<i16>,
    agent_hangup: Option<String>,
    agent_transfer: Option<String>,
    /// SDES-SRTP policy and our key for this call (fresh per call); the peer's key in use.
    srtp_mode: SrtpMode,
    our_key: SdesKey,
    their_key: Option<SdesKey>,
}

impl Media {
    /// Binds an even RTP port with its RTCP port + 1 (a few tries); if no pair is free,
    /// RTP alone (the call works, without RTCP).
    async fn bind(ip: std::net::IpAddr) -> Result<Media, EngineError> {
        let mut pair = None;
        for _ in 0..16 {
            let sock = UdpSocket::bind((ip, 0))
                .await
                .map_err(|e| EngineError::io(format!("binding RTP socket on {ip}"), e))?;
            let port = sock
                .local_addr()
                .map_err(|e| EngineError::io("reading RTP socket address", e))?
                .port();
            if port % 2 == 1 || port == u16::MAX {
                continue;
            }
            if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)).await {
                pair = Some((sock, Some(Arc::new(rtcp))));
                break;
            }
        }
        let (sock, rtcp) = match pair {
            Some(p) => p,
            None => {
                tracing::debug!(%ip, "no free RTP/RTCP port pair: RTCP off for this call");
                let sock = UdpSocket::bind((ip, 0))
                    .await
                    .map_err(|e| EngineError::io(format!("binding RTP socket on {ip}"), e))?;
                (sock, None)
            }
        };
        let local = sock
            .local_addr()
            .map_err(|e| EngineError::io("reading RTP socket address", e))?;
        Ok(Media {
            sock,
            rtcp,
            rtcp_remote: None,
            rtcp_next: None,
            local,
            session: None,
            remote: None,
            negotiated: None,
            source: Box::new(Silence),
            source_done: true,
            frame: vec![0; FRAME],
            recorder: None,
            record_path: None,
            record_error: None,
            dtmf_received: String::new(),
            early_frames: 0,
            answered: false,
            early_sending: false,
            agent: None,
            heard: vec![0; FRAME],
            agent_hangup: None,
            agent_transfer: None,
            srtp_mode: SrtpMode::Off,
            our_key: SdesKey {
                tag: 1,
                key_salt: {
                    let mut k = [0u8; 30];
                    rand::Rng::fill(&mut rand::thread_rng(), &mut k[..]);
                    k
                },
            },
            their_key: None,
        })
    }

    fn record_to(&mut self, path: Option<PathBuf>) -> Result<(), EngineError> {
        if let Some(p) = path {
            self.recorder = Some(StereoRecorder::create(&p)?);
            self.record_path = Some(p);
        }
        Ok(())
    }

    /// Applies the SRTP policy to what an answer (or offer) settled: `Err` with the reason
    /// when SRTP is mandatory and the peer gave no usable key; with SRTP off a key is ignored.
    fn srtp_policy(&self, mut neg: Negotiated) -> Result<Negotiated, String> {
        match self.srtp_mode {
            SrtpMode::Off => neg.srtp = None,
            SrtpMode::Optional => {}
            SrtpMode::Mandatory if neg.srtp.is_none() => {
                return Err("SRTP mandatory: the peer's SDP has no usable a=crypto".into())
            }
            SrtpMode::Mandatory => {}
        }
        Ok(neg)
    }

    /// Our SDP offer, with our SDES key when SRTP is on.
    fn offer(&self, codecs: &[Codec]) -> Sdp {
        Sdp::offer(self.local, codecs, 20, rand::random::<u32>().into())
            .with_srtp(self.srtp_mode, &self.our_key)
    }

    /// Answers `offer` under this call's SRTP policy.
    fn answer(
        &self,
        offer: &Sdp,
        codecs: &[Codec],
    ) -> Result<(Sdp, Negotiated), waihu_sip::SdpError> {
        Sdp::answer_srtp(
            offer,
            self.local,
            codecs,
            rand::random::<u32>().into(),
            self.srtp_mode,
            Some(&self.our_key),
        )
    }

    /// Starts (or re-targets) media after an offer/answer. `sending`: false for early media.
    fn start(&mut self, neg: Negotiated, sending: bool) {
        let now = Instant::now();
        let session = self.session.get_or_insert_with(|| {
            let cfg = SessionConfig::new(
                law_of(neg.codec),
                neg.dtmf_payload_type,
                rand::random(),
                rand::random(),
                rand::random(),
            );
            MediaSession::new(cfg, now)
        });
        // (Re)key when the peer's key is new; a later offer/answer without one keeps the
        // keys in place (the UA re-answers with the same SDP).
        if let Some(theirs) = &neg.srtp {
            if self.their_key.as_ref() != Some(theirs) {
                let ours = SrtpKey::from_bytes(&self.our_key.key_salt).expect("30 bytes");
                let peer = SrtpKey::from_bytes(&theirs.key_salt).expect("30 bytes");
                if !session.rekey_inbound(&peer) {
                    session.set_srtp(Some(SrtpSession::new(&ours, &peer)));
                }
                self.their_key = Some(theirs.clone());
            }
        }
        session.set_sending(sending && neg.direction.sends());
        self.remote = Some(neg.remote_rtp);
        self.rtcp_remote = Some(neg.remote_rtcp);
        // First report after 2.5 s, then every 5 s ± 50% (RFC 3550 §6.2, §6.3.5).
        self.rtcp_next
            .get_or_insert(now + Duration::from_millis(2_500));
        self.negotiated = Some(neg);
    }

    /// A datagram from the peer's RTCP.
    fn on_rtcp(&mut self, bytes: &[u8]) {
        if let Some(s) = &mut self.session {
            let _ = s.handle_datagram(Instant::now(), bytes);
        }
    }

    /// Sends our SR/RR when it is due (answered calls only).
    async fn send_rtcp(&mut self, now: Instant, cname: &str) {
        let (Some(sock), Some(to), Some(s)) = (&self.rtcp, self.rtcp_remote, &mut self.session)
        else {
            return;
        };
        if !self.answered || self.rtcp_next.is_none_or(|at| now < at) {
            return;
        }
        let pkt = s.rtcp_report(now, cname);
        self.rtcp_next = Some(now + Duration::from_millis(2_500 + rand::random::<u64>() % 5_000));
        if let Err(e) = sock.send_to(&pkt, to).await {
            tracing::trace!(error = %e, "RTCP send error");
        }
    }

    async fn recv(&mut self, buf: &mut [u8]) {
        match self.sock.recv_from(buf).await {
            Ok((n, from)) => {
                if let Some(s) = &mut self.session {
                    // Symmetric RTP would latch onto `from`; we keep the SDP address but accept
                    // media from anywhere (peers behind NAT still reach us).
                    let _ = from;
                    let _ = s.handle_datagram(Instant::now(), &buf[..n]);
                }
            }
            Err(e) => tracing::trace!(error = %e, "RTP receive error"),
        }
    }

    /// One 20 ms tick.
    async fn tick(&mut self) {
        let Some(s) = &mut self.session else { return };
        let now = Instant::now();
        if self.answered && s.dtmf_idle() {
            if let Some(agent) = &mut self.agent {
                self.frame.iter_mut().for_each(|x| *x = 0);
                match agent.on_frame(now, &self.heard, &mut self.frame) {
                    Control::Continue => {}
                    Control::Hangup(why) => {
                        self.agent_hangup.get_or_insert(why);
                    }
                    Control::Transfer(target) => {
                        self.agent_transfer.get_or_insert(target);
                    }
                }
            } else {
                self.source_done = !self.source.next_frame(&mut self.frame) || self.source_done;
            }
        } else if !self.answered && self.early_sending {
            if !self.source.next_frame(&mut self.frame) {
                self.frame.iter_mut().for_each(|x| *x = 0);
            }
        } else {
            self.frame.iter_mut().for_each(|x| *x = 0);
        }
        let pkt = s.tick(now, &self.frame);
        let rx = s.received_frame();
        if rx.len() == self.heard.len() {
            self.heard.copy_from_slice(rx);
        }
        if !self.answered && s.received_audio() {
            self.early_frames += 1;
            if let Some(agent) = &mut self.agent {
                agent.on_early_frame(now, &self.heard);
            }
        }
        if let Some(rec) = &mut self.recorder {
            if let Err(e) = rec.write(s.received_frame(), s.sent_frame()) {
                self.record_error = Some(e.to_string());
                self.recorder = None;
            }
        }
        while let Some(ev) = s.poll_event() {
            if let MediaEvent::Dtmf { digit, .. } = ev {
                self.dtmf_received.push(digit);
                if let Some(agent) = &mut self.agent {
                    agent.on_dtmf(now, digit);
                }
            }
        }
        if let (Some(p), Some(to)) = (pkt, self.remote) {
            if let Err(e) = self.sock.send_to(&p, to).await {
                tracing::trace!(error = %e, "RTP send error");
            }
        }
    }

    fn finish(&mut self) -> Result<Option<PathBuf>, EngineError> {
        if let Some(rec) = self.recorder.take() {
            rec.finish()?;
        }
        if let Some(e) = &self.record_error {
            return Err(EngineError::Recording(e.clone()));
        }
        Ok(self.record_path.clone())
    }
}

/// Receives on `sock` (the length read; errors read as empty), or waits forever without one.
async fn recv_opt(sock: Option<&UdpSocket>, buf: &mut [u8]) -> usize {
    match sock {
        Some(s) => s.recv_from(buf).await.map_or(0, |(n, _)| n),
        None => std::future::pending().await,
    }
}

enum Role {
    Uac,
    /// Answer after ringing this long; `offer` is the caller's SDP (None: offer-less INVITE).
    /// `reject`: instead of answering at `answer_at`, reject with this status.
    Uas {
        offer: Option<Sdp>,
        answer_at: Instant,
        reject: Option<u16>,
    },
}

/// Places a call and runs it to the end. `progress` sees each step as it happens.
pub async fn place_call(
    ep: &SipEndpoint,
    opts: CallOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<CallReport, EngineError> {
    place(ep, opts, None, progress, None).await
}

/// Places a call whose answered media is driven by `agent` (the voice bot).
/// `opts.media.play` is ignored; the recording, timeouts and codecs apply.
pub async fn place_call_with(
    ep: &SipEndpoint,
    opts: CallOptions,
    agent: Box<dyn CallAgent>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<CallReport, EngineError> {
    place(ep, opts, Some(agent), progress, None).await
}

/// Like [`place_call_with`] (or [`place_call`] without an agent), with failover: when the
/// call fails before an answer, `next` may give another route and the same call is
/// INVITEd again there — one call, one report, one recording.
pub async fn place_call_routed(
    ep: &SipEndpoint,
    opts: CallOptions,
    agent: Option<Box<dyn CallAgent>>,
    progress: &mut (dyn FnMut(&Progress) + Send),
    next: NextRoute<'_>,
) -> Result<CallReport, EngineError> {
    place(ep, opts, agent, progress, Some(next)).await
}

async fn place(
    ep: &SipEndpoint,
    opts: CallOptions,
    agent: Option<Box<dyn CallAgent>>,
    progress: &mut (dyn FnMut(&Progress) + Send),
    failover: Option<NextRoute<'_>>,
) -> Result<CallReport, EngineError> {
    let mut media = Media::bind(ep.local_addr().ip()).await?;
    media.agent = agent;
    media.srtp_mode = opts.media.srtp;
    media.record_to(opts.media.record.clone())?;
    let offer = media.offer(&opts.media.codecs);
    let mut oc = OutgoingCall::new(opts.target.clone());
    oc.proxy = opts.proxy;
    oc.credentials = opts.credentials.clone();
    oc.from_user = opts.from_user.clone();
    oc.headers = opts.headers.clone();
    oc.transport = opts.transport;
    oc.ring_timeout = Some(opts.ring_timeout);
    oc.sdp = Some(offer.clone());
    let (call, events) = ep.invite(oc.clone()).await?;
    drive(
        ep,
        call,
        events,
        Role::Uac,
        media,
        offer,
        &opts.media,
        progress,
        failover.map(|f| (f, oc)),
    )
    .await
}

/// Serves one incoming call: rings for `ring_for`, answers, plays, records, hangs up.
pub async fn serve_incoming(
    ep: &SipEndpoint,
    inc: IncomingCall,
    ring_for: Duration,
    opts: &MediaOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<CallReport, EngineError> {
    let mut media = match Media::bind(ep.local_addr().ip()).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ep.reject(inc.call, 500);
            return Err(e);
        }
    };
    if let Err(e) = media.record_to(opts.record.clone()) {
        let _ = ep.reject(inc.call, 500);
        return Err(e);
    }
    media.srtp_mode = opts.srtp;
    let offer = media.offer(&opts.codecs);
    if !ring_for.is_zero() {
        ep.ring(inc.call)?;
    }
    let role = Role::Uas {
        offer: inc.sdp,
        answer_at: Instant::now() + ring_for,
        reject: None,
    };
    drive(
        ep, inc.call, inc.events, role, media, offer, opts, progress, None,
    )
    .await
}

/// Serves one incoming call by `plan`: answer and hand the media to `agent`,
/// or ring (optionally with an early-media announcement) and reject.
pub async fn serve_incoming_with(
    ep: &SipEndpoint,
    inc: IncomingCall,
    plan: IncomingPlan,
    opts: &MediaOptions,
    agent: Box<dyn CallAgent>,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<CallReport, EngineError> {
    let mut media = match Media::bind(ep.local_addr().ip()).await {
        Ok(m) => m,
        Err(e) => {
            let _ = ep.reject(inc.call, 500);
            return Err(e);
        }
    };
    if let Err(e) = media.record_to(opts.record.clone()) {
        let _ = ep.reject(inc.call, 500);
        return Err(e);
    }
    media.agent = Some(agent);
    media.srtp_mode = opts.srtp;
    let offer = media.offer(&opts.codecs);
    let now = Instant::now();
    let role = match plan {
        IncomingPlan::Answer { ring_for } => {
            if !ring_for.is_zero() {
                ep.ring(inc.call)?;
            }
            Role::Uas {
                offer: inc.sdp,
                answer_at: now + ring_for,
                reject: None,
            }
        }
        IncomingPlan::Reject {
            after,
            status,
            announcement,
        } => {
            let early = match (&announcement, &inc.sdp) {
                (Some(a), Some(o)) => media
                    .answer(o, &opts.codecs)
                    .ok()
                    .map(|(sdp, neg)| (a.clone(), sdp, neg)),
                _ => None,
            };
            match early {
                Some((audio, sdp, neg)) => {
                    ep.early_media(inc.call, sdp)?;
                    media.start(neg, true);
                    media.source = Box::new(PcmPlayer::new(audio, false));
                    media.early_sending = true;
                }
                None => ep.ring(inc.call)?,
            }
            Role::Uas {
                offer: None,
                answer_at: now + after,
                reject: Some(status),
            }
        }
    };
    drive(
        ep, inc.call, inc.events, role, media, offer, opts, progress, None,
    )
    .await
}

/// Answers every incoming call on `ep` until the endpoint closes; each call runs in its own
/// task and its report goes to `reports`. With `opts.record` set, recordings are written
/// into that directory as `<n>-<sip call id>.wav`.
pub async fn answer_loop(
    ep: Arc<SipEndpoint>,
    ring_for: Duration,
    opts: MediaOptions,
    reports: mpsc::UnboundedSender<Result<CallReport, EngineError>>,
) -> Result<(), EngineError> {
    let mut incoming = ep.incoming().ok_or(EngineError::Closed)?;
    let mut n = 0u64;
    while let Some(inc) = incoming.recv().await {
        n += 1;
        let ep = ep.clone();
        let mut o = opts.clone();
        o.record = opts
            .record
            .as_ref()
            .map(|dir| dir.join(format!("{n:05}-call{}.wav", inc.call.0)));
        let reports = reports.clone();
        tokio::spawn(async move {
            let r = serve_incoming(&ep, inc, ring_for, &o, &mut |_| {}).await;
            let _ = reports.send(r);
        });
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn drive(
    ep: &SipEndpoint,
    mut call: CallId,
    mut events: mpsc::UnboundedReceiver<UaEvent>,
    mut role: Role,
    mut media: Media,
    our_offer: Sdp,
    opts: &MediaOptions,
    progress: &mut (dyn FnMut(&Progress) + Send),
    mut failover: Option<(NextRoute<'_>, OutgoingCall)>,
) -> Result<CallReport, EngineError> {
    let started = Instant::now();
    let mut rerouted_after = Vec::new();
    let mut answered_at: Option<Instant> = None;
    let mut early_media = false;
    let mut hanging_up = false;
    let mut dtmf_sent = String::new();
    let mut dtmf_at: Option<Instant> = None;
    let mut done_at: Option<Instant> = None;
    let mut transfer: Option<(TransferReport, Instant)> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    let cname = format!("waihu@{}", media.local.ip());
    let rtcp_sock = media.rtcp.clone();
    let prompt = opts.play.clone();
    // Returns when to send DTMF.
    let start_answered = |media: &mut Media, at: Instant| -> Option<Instant> {
        media.answered = true;
        media.early_sending = false;
        if let Some(agent) = &mut media.agent {
            agent.on_answered(at);
        }
        if let Some(p) = &prompt {
            media.source = Box::new(PcmPlayer::new(p.clone(), opts.loop_play));
            media.source_done = false;
        }
        opts.dtmf
            .as_deref()
            .is_some_and(|d| !d.is_empty())
            .then_some(at + opts.dtmf_delay)
    };
    loop {
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { return Err(EngineError::Closed) };
                match ev {
                    UaEvent::Trying { .. } => progress(&Progress::Trying),
                    UaEvent::Ringing { early_sdp, .. } => {
                        progress(&Progress::Ringing);
                        if let Some(neg) = early_sdp.and_then(|s| s.negotiated_from_answer().ok()).and_then(|n| media.srtp_policy(n).ok()) {
                            early_media = true;
                            media.start(neg, false);
                        }
                    }
                    UaEvent::EarlyMedia { sdp, .. } => {
                        progress(&Progress::EarlyMedia);
                        early_media = true;
                        if let Some(neg) = sdp.negotiated_from_answer().ok().and_then(|n| media.srtp_policy(n).ok()) {
                            media.start(neg, false);
                        }
                    }
                    UaEvent::Answered { sdp, .. } => {
                        let now = Instant::now();
                        match &role {
                            Role::Uac => {
                                let neg = sdp.as_ref().and_then(|s| s.negotiated_from_answer().ok()).or(media.negotiated.clone());
                                match neg.map(|n| media.srtp_policy(n)) {
                                    Some(Ok(n)) => media.start(n, true),
                                    Some(Err(why)) => {
                                        tracing::warn!(?call, %why, "answer refused: hanging up");
                                        media.agent_hangup = Some(why);
                                    }
                                    None => tracing::warn!(?call, "answer without usable SDP: no media"),
                                }
                                answered_at = Some(now);
                                progress(&Progress::Answered { setup_ms: now.duration_since(started).as_secs_f64() * 1000.0 });
                                dtmf_at = start_answered(&mut media, now);
                            }
                            Role::Uas { offer: None, reject: None, .. } => {
                                // Offer-less INVITE: the ACK carried the answer to our offer.
                                match sdp.as_ref().and_then(|s| s.negotiated_from_answer().ok()).map(|n| media.srtp_policy(n)) {
                                    Some(Ok(n)) => media.start(n, true),
                                    Some(Err(why)) => media.agent_hangup = Some(why),
                                    None => {}
                                }
                            }
                            Role::Uas { .. } => {}
                        }
                    }
                    UaEvent::ReInvite { sdp: Some(offer), .. } => {
                        // Hold / resume / new address: follow the offer's direction and target
                        // (the UA already answered with the mirrored direction).
                        if let Ok((_, neg)) = media.answer(&offer, &opts.codecs) {
                            media.start(neg, true);
                        }
                    }
                    UaEvent::DtmfInfo { digit, .. } => {
                        media.dtmf_received.push(digit);
                        if let Some(agent) = &mut media.agent {
                            agent.on_dtmf(Instant::now(), digit);
                        }
                        progress(&Progress::DtmfReceived(digit));
                    }
                    UaEvent::ByeReceived { .. } | UaEvent::Cancelled { .. } => progress(&Progress::PeerHungUp),
                    UaEvent::Transfer { progress: p, .. } => {
                        let now = Instant::now();
                        if let Some(agent) = &mut media.agent {
                            agent.on_transfer(now, &p);
                        }
                        if let Some((report, at)) = &mut transfer {
                            let first = report.succeeded.is_none();
                            report.record(&p, now.duration_since(*at).as_secs_f64() * 1000.0);
                            progress(&Progress::Transfer(report.progress.last().cloned().unwrap_or_default()));
                            // RFC 5589 §6: once the target has answered, the transferor leaves.
                            if first && report.succeeded == Some(true) && !hanging_up {
                                let why = format!("transferred to {}", report.target);
                                progress(&Progress::HangingUp(why));
                                hanging_up = true;
                                ep.hangup(call)?;
                            }
                        }
                    }
                    UaEvent::Terminated { outcome, sip_status, reason, .. } => {
                        if answered_at.is_none() {
                            if let Some((next, oc)) = &mut failover {
                                if let Some(route) = next(sip_status) {
                                    tracing::info!(?call, ?sip_status, target = %route.target, "failing over to the next route");
                                    oc.target = route.target;
                                    oc.proxy = route.proxy;
                                    oc.transport = route.transport;
                                    oc.credentials = route.credentials;
                                    oc.headers = route.headers;
                                    if route.srtp != media.srtp_mode {
                                        media.srtp_mode = route.srtp;
                                        oc.sdp = Some(media.offer(&opts.codecs));
                                    }
                                    let (c, ev) = ep.invite(oc.clone()).await?;
                                    call = c;
                                    events = ev;
                                    rerouted_after.push(sip_status);
                                    continue;
                                }
                            }
                        }
                        let now = Instant::now();
                        let early_audio_s = media.early_frames as f64 * 0.02;
                        // A failure after an announcement (early audio) is the network or the
                        // callee refusing the call, whatever status the carrier picked.
                        let outcome = if answered_at.is_none()
                            && early_audio_s > 0.0
                            && matches!(outcome, CallOutcome::NoAnswer | CallOutcome::Failed)
                            && !reason.contains("by us")
                            && !reason.contains("ring timeout")
                        {
                            CallOutcome::Rejected
                        } else {
                            outcome
                        };
                        if let Some(agent) = &mut media.agent {
                            agent.on_ended(now);
                        }
                        let recording = media.finish()?;
                        let stats = media.session.as_ref().map(|s| s.stats()).unwrap_or_default();
                        let mut rtp: RtpReport = stats.into();
                        rtp.srtp = media.session.as_ref().is_some_and(|s| s.srtp_on());
                        return Ok(CallReport {
                            outcome,
                            sip_status,
                            duration_s: answered_at.map_or(0.0, |a| (now.duration_since(a).as_secs_f64() * 100.0).round() / 100.0),
                            reason,
                            setup_ms: answered_at.map(|a| (a.duration_since(started).as_secs_f64() * 10_000.0).round() / 10.0),
                            early_media,
                            early_audio_s,
                            dtmf_sent,
                            dtmf_received: media.dtmf_received.clone(),
                            codec: media.negotiated.as_ref().map(|n| n.codec.name().to_string()),
                            rtp,
                            recording,
                            rerouted_after,
                            transfer: transfer.take().map(|(r, _)| r),
                            call,
                        });
                    }
                    _ => {}
                }
            }
            _ = media.recv(&mut buf) => {}
            n = recv_opt(rtcp_sock.as_deref(), &mut rtcp_buf) => if n > 0 { media.on_rtcp(&rtcp_buf[..n]) },
            _ = ticker.tick() => {
                let now = Instant::now();
                media.send_rtcp(now, &cname).await;
                if let Role::Uas { reject: Some(status), answer_at, .. } = &role {
                    if now >= *answer_at && !hanging_up {
                        ep.reject(call, *status)?;
                        hanging_up = true;
                    }
                }
                if let Role::Uas { offer, answer_at, reject: None } = &role {
                    if now >= *answer_at && answered_at.is_none() {
                        let answer = match offer {
                            Some(o) => match media.answer(o, &opts.codecs) {
                                Ok((sdp, neg)) => {
                                    media.start(neg, true);
                                    Some(sdp)
                                }
                                Err(e) => {
                                    tracing::info!(?call, error = %e, "incoming offer not acceptable: 488");
                                    ep.reject(call, 488)?;
                                    None
                                }
                            },
                            None => Some(our_offer.clone()),
                        };
                        if let Some(a) = answer {
                            ep.answer(call, a)?;
                            answered_at = Some(now);
                            progress(&Progress::Answered { setup_ms: now.duration_since(started).as_secs_f64() * 1000.0 });
                            dtmf_at = start_answered(&mut media, now);
                        } else {
                            answered_at = Some(now);
                            hanging_up = true;
                        }
                        role = Role::Uas { offer: None, answer_at: *answer_at, reject: None };
                    }
                }
                if let (Some(at), Some(s)) = (dtmf_at, media.session.as_mut()) {
                    if now >= at {
                        let digits = opts.dtmf.clone().unwrap_or_default();
                        s.send_dtmf(&digits);
                        dtmf_sent.push_str(&digits);
                        dtmf_at = None;
                    }
                }
                media.tick().await;
                let Some(ans) = answered_at else { continue };
                if hanging_up {
                    continue;
                }
                if let Some(target) = media.agent_transfer.take() {
                    if transfer.is_none() {
                        progress(&Progress::Transfer(format!("REFER to {target}")));
                        ep.refer(call, target.clone())?;
                        transfer = Some((TransferReport::new(target), now));
                    }
                }
                let mut why = media.agent_hangup.take();
                if now.duration_since(ans) >= opts.max_duration {
                    why = Some(format!("max duration {} s reached", opts.max_duration.as_secs_f64()));
                }
                let last_rx = media.session.as_ref().and_then(|s| s.last_rx()).map_or(ans, |t| t.max(ans));
                if now.duration_since(last_rx) >= opts.no_rtp_timeout {
                    why = Some(format!("no RTP for {} s", opts.no_rtp_timeout.as_secs_f64()));
                }
                if opts.hangup_after_play && dtmf_at.is_none() && media.source_done
                    && media.session.as_ref().is_none_or(|s| s.dtmf_idle())
                {
                    let d = *done_at.get_or_insert(now);
                    if now.duration_since(d) >= opts.tail {
                        why = Some("prompt finished".into());
                    }
                }
                if let Some(w) = why {
                    progress(&Progress::HangingUp(w));
                    hanging_up = true;
                    ep.hangup(call)?;
                }
            }
        }
    }
}
