//! A SIP endpoint over UDP, TCP and TLS: one tokio task owns the sockets and the sans-IO
//! [`UserAgent`]; calls talk to it through a command channel and receive their events on
//! their own channel.
//!
//! Streams (TCP, TLS) are opened on the first message to a peer and reused for every later
//! one, in both directions; a connect, handshake or write failure is reported to the agent
//! ([`UserAgent::transport_failed`]) so its transactions fail at once. Over TLS the
//! endpoint is a client only (the trunk's proxy is the server): it verifies the server's
//! certificate against the trunk's CA file or the Mozilla roots, sends SNI, and the
//! agent's `alias` Via parameter (RFC 5923) lets the peer send its requests back over the
//! same connection.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use waihu_sip::{
    Binding, CallId, Config, FloodPhase, FloodReport, GuardConfig, OutgoingCall, RegId, Registrar,
    Registration, Sdp, SipError, StreamFramer, TransferProgress, Transport, UaEvent, UserAgent,
};

use crate::EngineError;

/// An incoming call handed to the application; it must ring, answer or reject it.
#[derive(Debug)]
pub struct IncomingCall {
    pub call: CallId,
    pub from: String,
    pub to: String,
    pub sdp: Option<Sdp>,
    pub source: SocketAddr,
    pub events: mpsc::UnboundedReceiver<UaEvent>,
}

#[derive(Debug)]
enum Cmd {
    Invite(
        Box<OutgoingCall>,
        mpsc::UnboundedSender<UaEvent>,
        oneshot::Sender<Result<CallId, SipError>>,
    ),
    Ring(CallId),
    EarlyMedia(CallId, Box<Sdp>),
    Answer(CallId, Box<Sdp>),
    Reject(CallId, u16),
    Hangup(CallId),
    InfoDtmf(CallId, char),
    Refer(CallId, String),
    Register(
        Box<Registration>,
        mpsc::UnboundedSender<UaEvent>,
        oneshot::Sender<RegId>,
    ),
    Unregister(RegId),
    TlsPeer(SocketAddr, Box<TlsPeer>),
    SetRegistrar(Box<Registrar>),
    Lookup(String, oneshot::Sender<Vec<Binding>>),
}

/// How to reach one TLS peer: the name its certificate must carry (also sent as SNI) and
/// the client configuration (trusted roots) to verify it with.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub server_name: String,
    pub config: Arc<rustls::ClientConfig>,
}

/// A TLS client configuration trusting the CA certificates of a PEM file, or the Mozilla
/// roots without one. TLS 1.2 and 1.3 (ring provider).
pub fn tls_client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, EngineError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |what: String| {
                EngineError::io(
                    format!(
                        "reading TLS CA file {} / 无法读取 CA 证书文件",
                        path.display()
                    ),
                    std::io::Error::new(std::io::ErrorKind::InvalidData, what),
                )
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no certificate in the file".into()));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            EngineError::io(
                "building the TLS client configuration",
                std::io::Error::other(e.to_string()),
            )
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// Counters of the endpoint task, for the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub send_errors: u64,
    /// TCP/TLS connections that could not be opened (connect or handshake) or broke.
    pub stream_failures: u64,
    /// Calls and transactions the agent holds now (bounded under a flood by the guard).
    pub calls: usize,
    pub transactions: usize,
    /// What the flood guard admitted, refused (503), dropped and counted as garbage.
    pub guard: waihu_sip::GuardStats,
    /// Flood reports logged (one per phase of a flood, never one per packet).
    pub flood_reports: u64,
    /// TCP/TLS connections open now (both ways); accepted ones closed at once (over the
    /// per-source or total cap); accepted ones closed for sending no message within
    /// [`FIRST_MESSAGE_TIMEOUT`].
    pub tcp_open: usize,
    pub tcp_refused: u64,
    pub tcp_silent: u64,
}

/// Accepted TCP connections one address may hold open, and all addresses together.
pub const TCP_PER_SOURCE: usize = 32;
pub const TCP_TOTAL: usize = 1024;
/// An accepted connection that sends no complete SIP message within this is closed (a
/// half-open or slow-loris client).
pub const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handle to a running SIP endpoint. Dropping it stops the task.
#[derive(Debug)]
pub struct SipEndpoint {
    cmd: mpsc::UnboundedSender<Cmd>,
    local: SocketAddr,
    incoming: Mutex<Option<mpsc::UnboundedReceiver<IncomingCall>>>,
    stats: std::sync::Arc<Mutex<EndpointStats>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SipEndpoint {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The address to advertise when bound to a wildcard address: the interface the OS would
/// use to reach `toward` (a UDP "connect" sends nothing).
pub fn advertised_ip(bind: IpAddr, toward: Option<SocketAddr>) -> IpAddr {
    if !bind.is_unspecified() {
        return bind;
    }
    let probe = || -> std::io::Result<IpAddr> {
        let s = std::net::UdpSocket::bind((bind, 0))?;
        s.connect(toward.unwrap_or_else(|| SocketAddr::from(([192, 0, 2, 1], 5060))))?;
        Ok(s.local_addr()?.ip())
    };
    probe().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

impl SipEndpoint {
    /// Binds UDP and TCP on `bind` (port 0: any) and starts the endpoint task. `advertise`
    /// overrides the address put in Via/Contact/SDP (needed when bound to 0.0.0.0). If the
    /// TCP port is taken the endpoint runs UDP only (TCP connections we open still work).
    pub async fn bind(
        bind: SocketAddr,
        user: &str,
        advertise: Option<IpAddr>,
    ) -> Result<SipEndpoint, EngineError> {
        Self::bind_with(bind, user, advertise, Some(GuardConfig::default())).await
    }

    /// [`bind`](Self::bind) with the flood guard's limits (`None`: take everything, for a
    /// test peer standing in for a carrier network).
    pub async fn bind_with(
        bind: SocketAddr,
        user: &str,
        advertise: Option<IpAddr>,
        guard: Option<GuardConfig>,
    ) -> Result<SipEndpoint, EngineError> {
        let sock = UdpSocket::bind(bind)
            .await
            .map_err(|e| EngineError::io(format!("binding SIP UDP socket {bind}"), e))?;
        let bound = sock
            .local_addr()
            .map_err(|e| EngineError::io("reading SIP socket address", e))?;
        let listener = match TcpListener::bind(bound).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::warn!(%bound, error = %e, "SIP TCP listener not available; UDP only");
                None
            }
        };
        let ip = advertise.unwrap_or_else(|| advertised_ip(bound.ip(), None));
        let local = SocketAddr::new(ip, bound.port());
        let mut cfg = Config::new(local, user);
        cfg.guard = guard;
        let ua = UserAgent::new(cfg, rand::random());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (inc_tx, inc_rx) = mpsc::unbounded_channel();
        let stats = std::sync::Arc::new(Mutex::new(EndpointStats::default()));
        let task = tokio::spawn(run(ua, sock, listener, cmd_rx, inc_tx, stats.clone()));
        Ok(SipEndpoint {
            cmd: cmd_tx,
            local,
            incoming: Mutex::new(Some(inc_rx)),
            stats,
            task,
        })
    }

    /// The advertised SIP address (Via/Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    pub fn stats(&self) -> EndpointStats {
        self.stats.lock().map(|s| *s).unwrap_or_default()
    }

    /// Takes the stream of incoming calls (once).
    pub fn incoming(&self) -> Option<mpsc::UnboundedReceiver<IncomingCall>> {
        self.incoming.lock().ok()?.take()
    }

    fn send(&self, c: Cmd) -> Result<(), EngineError> {
        self.cmd.send(c).map_err(|_| EngineError::Closed)
    }

    /// Sends an INVITE; events of the call arrive on the returned receiver.
    pub async fn invite(
        &self,
        call: OutgoingCall,
    ) -> Result<(CallId, mpsc::UnboundedReceiver<UaEvent>), EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rtx, rrx) = oneshot::channel();
        self.send(Cmd::Invite(Box::new(call), tx, rtx))?;
        let id = rrx.await.map_err(|_| EngineError::Closed)??;
        Ok((id, rx))
    }

    pub async fn register(
        &self,
        reg: Registration,
    ) -> Result<(RegId, mpsc::UnboundedReceiver<UaEvent>), EngineError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rtx, rrx) = oneshot::channel();
        self.send(Cmd::Register(Box::new(reg), tx, rtx))?;
        let id = rrx.await.map_err(|_| EngineError::Closed)?;
        Ok((id, rx))
    }
    pub fn unregister(&self, reg: RegId) -> Result<(), EngineError> {
        self.send(Cmd::Unregister(reg))
    }
    pub fn ring(&self, call: CallId) -> Result<(), EngineError> {
        self.send(Cmd::Ring(call))
    }
    pub fn early_media(&self, call: CallId, sdp: Sdp) -> Result<(), EngineError> {
        self.send(Cmd::EarlyMedia(call, Box::new(sdp)))
    }
    pub fn answer(&self, call: CallId, sdp: Sdp) -> Result<(), EngineError> {
        self.send(Cmd::Answer(call, Box::new(sdp)))
    }
    pub fn reject(&self, call: CallId, status: u16) -> Result<(), EngineError> {
        self.send(Cmd::Reject(call, status))
    }
    /// BYE, CANCEL or 480, whatever the call's state needs.
    pub fn hangup(&self, call: CallId) -> Result<(), EngineError> {
        self.send(Cmd::Hangup(call))
    }
    pub fn info_dtmf(&self, call: CallId, digit: char) -> Result<(), EngineError> {
        self.send(Cmd::InfoDtmf(call, digit))
    }
    /// Blind transfer (REFER) of an answered call to `target` (a sip:/sips:/tel: URI, or a
    /// bare number reached through the domain the call was placed to).
    /// Progress, or a refusal when the target or the call's state does not allow it,
    /// arrives on the call's events as [`UaEvent::Transfer`].
    pub fn refer(&self, call: CallId, target: impl Into<String>) -> Result<(), EngineError> {
        self.send(Cmd::Refer(call, target.into()))
    }
    /// Makes this endpoint the registrar of its domain: incoming REGISTER is answered by
    /// `registrar` (digest-authenticated bindings; its clock starts now). Without one,
    /// REGISTER is refused with 405.
    pub fn set_registrar(&self, registrar: Registrar) -> Result<(), EngineError> {
        self.send(Cmd::SetRegistrar(Box::new(registrar)))
    }
    /// The live contacts registered for `user` (newest first; empty without a registrar).
    /// The Contact is used as the phone gave it; the REGISTER's source address is in
    /// [`Binding::source`] (see `waihu_sip::registrar` on NAT).
    pub async fn registered_contacts(&self, user: &str) -> Result<Vec<Binding>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.send(Cmd::Lookup(user.to_string(), tx))?;
        rx.await.map_err(|_| EngineError::Closed)
    }
    /// How to verify the TLS peer at `addr` (a trunk's next hop). Without it a TLS
    /// connection to `addr` verifies the peer's IP address against the Mozilla roots.
    pub fn set_tls_peer(&self, addr: SocketAddr, peer: TlsPeer) -> Result<(), EngineError> {
        self.send(Cmd::TlsPeer(addr, Box::new(peer)))
    }
}

fn call_of(ev: &UaEvent) -> Option<CallId> {
    Some(match ev {
        UaEvent::Trying { call }
        | UaEvent::Ringing { call, .. }
        | UaEvent::EarlyMedia { call, .. }
        | UaEvent::Answered { call, .. }
        | UaEvent::Cancelled { call }
        | UaEvent::ByeReceived { call }
        | UaEvent::Terminated { call, .. }
        | UaEvent::DtmfInfo { call, .. }
        | UaEvent::ReInvite { call, .. }
        | UaEvent::Transfer { call, .. } => *call,
        _ => return None,
    })
}

fn reg_of(ev: &UaEvent) -> Option<RegId> {
    match ev {
        UaEvent::Registered { reg, .. } | UaEvent::RegistrationFailed { reg, .. } => Some(*reg),
        _ => None,
    }
}

/// What a reader sends the loop when it closed an accepted connection that sent nothing in
/// time (no SIP message is one byte long).
const SILENT: &[u8] = &[0];

/// One log line per phase of a flood, with its running totals.
fn log_flood(r: &FloodReport) {
    let (source, seconds) = (r.source, format!("{:.1}", r.seconds));
    let (admitted, refused, dropped, malformed, muted) =
        (r.admitted, r.refused, r.dropped, r.malformed, r.muted);
    match r.phase {
        FloodPhase::Started => tracing::warn!(
            %source, refused, dropped, malformed, muted,
            "SIP flood started: this source is over its request budget; answering 503 with Retry-After a few times a second, dropping the rest"
        ),
        FloodPhase::Continuing => tracing::warn!(
            %source, seconds, admitted, refused, dropped, malformed, muted,
            "SIP flood continuing"
        ),
        FloodPhase::Ended => tracing::warn!(
            %source, seconds, admitted, refused, dropped, malformed,
            "SIP flood ended"
        ),
    }
}

/// What stream readers and connectors tell the endpoint loop: a framed message from a
/// peer, or (empty) that the connection to it is gone or could not be opened.
type StreamMsg = (Transport, SocketAddr, Vec<u8>);

/// A stream's reader: frames messages and hands them to the endpoint loop; an empty
/// message reports the connection closed.
async fn stream_reader(
    mut rd: impl AsyncRead + Unpin,
    transport: Transport,
    peer: SocketAddr,
    to_loop: mpsc::UnboundedSender<StreamMsg>,
    first_within: Option<Duration>,
) {
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    // An accepted connection must deliver its first message in time (half-open and
    // slow-loris clients hold a descriptor and a task each).
    let mut deadline = first_within.map(|d| tokio::time::Instant::now() + d);
    loop {
        let read = match deadline {
            Some(at) => match tokio::time::timeout_at(at, rd.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    tracing::info!(%peer, "closing SIP stream connection: no message in time");
                    let _ = to_loop.send((transport, peer, SILENT.to_vec()));
                    return;
                }
            },
            None => rd.read(&mut buf).await,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                framer.push(&buf[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(m)) => {
                            deadline = None;
                            if to_loop.send((transport, peer, m)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // A broken stream cannot be resynchronised: drop the connection.
                            tracing::info!(%peer, error = %e, "closing SIP stream connection");
                            let _ = to_loop.send((transport, peer, Vec::new()));
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = to_loop.send((transport, peer, Vec::new()));
}

async fn stream_writer(mut wr: impl AsyncWrite + Unpin, mut rx: mpsc::UnboundedReceiver<Vec<u8>>) {
    while let Some(b) = rx.recv().await {
        if wr.write_all(&b).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
}

/// Starts reader and writer tasks for a stream; returns the writer's queue.
fn stream_attach<S>(
    stream: S,
    transport: Transport,
    peer: SocketAddr,
    to_loop: &mpsc::UnboundedSender<StreamMsg>,
) -> mpsc::UnboundedSender<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (rd, wr) = tokio::io::split(stream);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(stream_reader(
        rd,
        transport,
        peer,
        to_loop.clone(),
        Some(FIRST_MESSAGE_TIMEOUT),
    ));
    tokio::spawn(stream_writer(wr, rx));
    tx
}

/// How long opening a stream (TCP connect, then the TLS handshake) may take.
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a TCP or TLS connection to `peer` and runs it: messages queued on `rx` before
/// the connection is up are sent once it is. A failure is reported to the loop.
async fn open_stream(
    transport: Transport,
    peer: SocketAddr,
    tls: Option<TlsPeer>,
    rx: mpsc::UnboundedReceiver<Vec<u8>>,
    to_loop: mpsc::UnboundedSender<StreamMsg>,
) {
    let opened = tokio::time::timeout(STREAM_OPEN_TIMEOUT, async {
        let tcp = TcpStream::connect(peer)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        match tls {
            None => Ok::<_, String>(Box::new(tcp) as Box<dyn Stream>),
            Some(t) => {
                let name = ServerName::try_from(t.server_name.clone())
                    .map_err(|e| format!("TLS server name {:?}: {e}", t.server_name))?;
                let s = tokio_rustls::TlsConnector::from(t.config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake with {:?}: {e}", t.server_name))?;
                Ok(Box::new(s) as Box<dyn Stream>)
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("timed out".into()));
    match opened {
        Ok(stream) => {
            let (rd, wr) = tokio::io::split(stream);
            tokio::spawn(stream_reader(rd, transport, peer, to_loop, None));
            stream_writer(wr, rx).await;
        }
        Err(e) => {
            tracing::warn!(%peer, transport = transport.as_str(), error = %e, "SIP connection failed");
            let _ = to_loop.send((transport, peer, Vec::new()));
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A peer nobody configured: its certificate must name its IP address, verified against
/// the Mozilla roots (built once).
fn default_tls_peer(
    cfg: &mut Option<Arc<rustls::ClientConfig>>,
    to: SocketAddr,
) -> Option<TlsPeer> {
    if cfg.is_none() {
        match tls_client_config(None) {
            Ok(c) => *cfg = Some(c),
            Err(e) => {
                tracing::warn!(error = %e, "no TLS client configuration");
                return None;
            }
        }
    }
    Some(TlsPeer {
        server_name: to.ip().to_string(),
        config: cfg.clone()?,
    })
}

async fn accept_or_pending(l: &Option<TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn run(
    mut ua: UserAgent,
    sock: UdpSocket,
    listener: Option<TcpListener>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    incoming: mpsc::UnboundedSender<IncomingCall>,
    stats: std::sync::Arc<Mutex<EndpointStats>>,
) {
    let mut calls: HashMap<CallId, mpsc::UnboundedSender<UaEvent>> = HashMap::new();
    let mut regs: HashMap<RegId, mpsc::UnboundedSender<UaEvent>> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    let mut local = EndpointStats::default();
    // Streams: one writer queue per (transport, peer address); readers feed `stream_in`.
    let mut conns: HashMap<(Transport, SocketAddr), mpsc::UnboundedSender<Vec<u8>>> =
        HashMap::new();
    let mut tls_peers: HashMap<SocketAddr, TlsPeer> = HashMap::new();
    let mut default_tls: Option<Arc<rustls::ClientConfig>> = None;
    let (stream_tx, mut stream_in) = mpsc::unbounded_channel::<StreamMsg>();
    loop {
        // 1. Everything the agent wants to send and tell.
        while let Some(t) = ua.poll_transmit() {
            if t.transport.reliable() {
                local.datagrams_out += 1;
                let key = (t.transport, t.to);
                let q = conns.entry(key).or_insert_with(|| {
                    // Connect in the background; messages queue until the stream is up.
                    let tls = if t.transport == Transport::Tls {
                        match tls_peers.get(&t.to) {
                            Some(p) => Some(p.clone()),
                            None => default_tls_peer(&mut default_tls, t.to),
                        }
                    } else {
                        None
                    };
                    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
                    if t.transport == Transport::Tls && tls.is_none() {
                        // Without a client configuration nothing can be verified.
                        let _ = stream_tx.send((t.transport, t.to, Vec::new()));
                    } else {
                        tokio::spawn(open_stream(t.transport, t.to, tls, rx, stream_tx.clone()));
                    }
                    tx
                });
                if q.send(t.bytes).is_err() {
                    conns.remove(&key);
                    local.send_errors += 1;
                }
                continue;
            }
            local.datagrams_out += 1;
            if let Err(e) = sock.send_to(&t.bytes, t.to).await {
                local.send_errors += 1;
                tracing::debug!(to = %t.to, error = %e, "SIP send failed");
            }
        }
        // The counters are current before anyone hears of what they count.
        local.calls = ua.active_calls();
        local.transactions = ua.active_transactions();
        local.guard = ua.guard_stats();
        local.tcp_open = conns.len();
        if let Ok(mut s) = stats.lock() {
            *s = local;
        }
        while let Some(ev) = ua.poll_event() {
            if let UaEvent::Incoming {
                call,
                from,
                to,
                sdp,
                source,
            } = ev
            {
                let (tx, rx) = mpsc::unbounded_channel();
                calls.insert(call, tx);
                let inc = IncomingCall {
                    call,
                    from,
                    to,
                    sdp,
                    source,
                    events: rx,
                };
                if incoming.send(inc).is_err() {
                    // Nobody takes calls on this endpoint.
                    calls.remove(&call);
                    ua.reject(Instant::now(), call, 480);
                }
                continue;
            }
            if let Some(call) = call_of(&ev) {
                let end = matches!(ev, UaEvent::Terminated { .. });
                if let Some(tx) = calls.get(&call) {
                    let _ = tx.send(ev);
                }
                if end {
                    calls.remove(&call);
                }
            } else if let UaEvent::Flood(r) = &ev {
                local.flood_reports += 1;
                log_flood(r);
            } else if let Some(reg) = reg_of(&ev) {
                let gone = matches!(ev, UaEvent::Registered { expires: 0, .. });
                if let Some(tx) = regs.get(&reg) {
                    let _ = tx.send(ev);
                }
                if gone {
                    regs.remove(&reg);
                }
            }
        }
        // 2. Wait for a datagram, a command or the next timer.
        let wake = ua.poll_timeout().map_or_else(
            || tokio::time::Instant::now() + Duration::from_secs(3600),
            tokio::time::Instant::from_std,
        );
        tokio::select! {
            r = sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    local.datagrams_in += 1;
                    ua.handle_input(Instant::now(), from, Transport::Udp, &buf[..n]);
                }
                Err(e) => tracing::debug!(error = %e, "SIP receive error"),
            },
            a = accept_or_pending(&listener) => match a {
                Ok((stream, peer)) => {
                    let from_peer = conns
                        .keys()
                        .filter(|(t, a)| *t == Transport::Tcp && a.ip() == peer.ip())
                        .count();
                    if from_peer >= TCP_PER_SOURCE || conns.len() >= TCP_TOTAL {
                        // Dropping the stream closes it.
                        local.tcp_refused += 1;
                    } else {
                        let _ = stream.set_nodelay(true);
                        let q = stream_attach(stream, Transport::Tcp, peer, &stream_tx);
                        conns.insert((Transport::Tcp, peer), q);
                    }
                }
                Err(e) => tracing::debug!(error = %e, "SIP TCP accept error"),
            },
            m = stream_in.recv() => {
                if let Some((transport, peer, msg)) = m {
                    if msg == SILENT {
                        // Closed for sending nothing in time: not a failure of ours.
                        conns.remove(&(transport, peer));
                        local.tcp_silent += 1;
                    } else if msg.is_empty() {
                        if conns.remove(&(transport, peer)).is_some() {
                            local.stream_failures += 1;
                        }
                        ua.transport_failed(Instant::now(), peer, transport);
                    } else {
                        local.datagrams_in += 1;
                        ua.handle_input(Instant::now(), peer, transport, &msg);
                    }
                }
            }
            c = cmds.recv() => {
                let Some(c) = c else { break };
                let now = Instant::now();
                match c {
                    Cmd::Invite(oc, tx, reply) => {
                        let r = ua.invite(now, *oc);
                        if let Ok(id) = &r {
                            calls.insert(*id, tx);
                        }
                        let _ = reply.send(r);
                    }
                    Cmd::Register(reg, tx, reply) => {
                        let id = ua.register(now, *reg);
                        regs.insert(id, tx);
                        let _ = reply.send(id);
                    }
                    Cmd::Unregister(reg) => ua.unregister(now, reg),
                    Cmd::TlsPeer(addr, peer) => {
                        tls_peers.insert(addr, *peer);
                    }
                    Cmd::SetRegistrar(r) => ua.set_registrar(now, *r),
                    Cmd::Lookup(user, reply) => {
                        let _ = reply.send(ua.registrar_lookup(&user, now));
                    }
                    Cmd::Ring(c) => ua.ring(now, c),
                    Cmd::EarlyMedia(c, sdp) => ua.early_media(now, c, *sdp),
                    Cmd::Answer(c, sdp) => ua.answer(now, c, *sdp),
                    Cmd::Reject(c, s) => ua.reject(now, c, s),
                    Cmd::Hangup(c) => ua.bye(now, c),
                    Cmd::InfoDtmf(c, d) => ua.send_info_dtmf(now, c, d, 160),
                    Cmd::Refer(c, target) => {
                        if let Err(e) = ua.refer(now, c, &target) {
                            tracing::warn!(call = ?c, %target, error = %e, "REFER not sent");
                            if let Some(tx) = calls.get(&c) {
                                let _ = tx.send(UaEvent::Transfer {
                                    call: c,
                                    progress: TransferProgress::Refused { status: None },
                                });
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep_until(wake) => ua.handle_timeout(Instant::now()),
        }
    }
}
