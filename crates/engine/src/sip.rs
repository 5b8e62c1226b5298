//! A SIP endpoint over UDP and TCP: one tokio task owns the sockets and the sans-IO
//! [`UserAgent`]; calls talk to it through a command channel and receive their events on
//! their own channel.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use waihu_sip::{
    CallId, Config, OutgoingCall, RegId, Registration, Sdp, SipError, StreamFramer,
    TransferProgress, Transport, UaEvent, UserAgent,
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
}

/// Counters of the endpoint task, for the benchmark.
#[derive(Debug, Clone, Copy, Default)]
pub struct EndpointStats {
    pub datagrams_in: u64,
    pub datagrams_out: u64,
    pub send_errors: u64,
}

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
        let cfg = Config::new(local, user);
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
    /// Blind transfer (REFER) of an answered call to `target` (a sip:/sips:/tel: URI).
    /// Progress, or a refusal when the target or the call's state does not allow it,
    /// arrives on the call's events as [`UaEvent::Transfer`].
    pub fn refer(&self, call: CallId, target: impl Into<String>) -> Result<(), EngineError> {
        self.send(Cmd::Refer(call, target.into()))
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

/// A TCP connection's reader: frames messages and hands them to the endpoint loop; an
/// empty message reports the connection closed.
async fn tcp_reader(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    peer: SocketAddr,
    to_loop: mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
) {
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match rd.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                framer.push(&buf[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(m)) => {
                            if to_loop.send((peer, m)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            // A broken stream cannot be resynchronised: drop the connection.
                            tracing::info!(%peer, error = %e, "closing SIP TCP connection");
                            let _ = to_loop.send((peer, Vec::new()));
                            return;
                        }
                    }
                }
            }
        }
    }
    let _ = to_loop.send((peer, Vec::new()));
}

async fn tcp_writer(
    mut wr: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
) {
    while let Some(b) = rx.recv().await {
        if wr.write_all(&b).await.is_err() {
            return;
        }
    }
}

/// Starts reader and writer tasks for a stream; returns the writer's queue.
fn tcp_attach(
    stream: TcpStream,
    peer: SocketAddr,
    to_loop: &mpsc::UnboundedSender<(SocketAddr, Vec<u8>)>,
) -> mpsc::UnboundedSender<Vec<u8>> {
    let _ = stream.set_nodelay(true);
    let (rd, wr) = stream.into_split();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(tcp_reader(rd, peer, to_loop.clone()));
    tokio::spawn(tcp_writer(wr, rx));
    tx
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
    // TCP: one writer queue per peer address; readers feed `tcp_in`.
    let mut conns: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    let (tcp_tx, mut tcp_in) = mpsc::unbounded_channel::<(SocketAddr, Vec<u8>)>();
    loop {
        // 1. Everything the agent wants to send and tell.
        while let Some(t) = ua.poll_transmit() {
            if t.transport == Transport::Tcp {
                local.datagrams_out += 1;
                let q = conns.entry(t.to).or_insert_with(|| {
                    // Connect in the background; messages queue until the stream is up.
                    let (tx, rx) = mpsc::unbounded_channel::<Vec<u8>>();
                    let to_loop = tcp_tx.clone();
                    let peer = t.to;
                    tokio::spawn(async move {
                        match TcpStream::connect(peer).await {
                            Ok(stream) => {
                                let _ = stream.set_nodelay(true);
                                let (rd, wr) = stream.into_split();
                                tokio::spawn(tcp_reader(rd, peer, to_loop));
                                tcp_writer(wr, rx).await;
                            }
                            Err(e) => {
                                tracing::info!(%peer, error = %e, "SIP TCP connect failed");
                                let _ = to_loop.send((peer, Vec::new()));
                            }
                        }
                    });
                    tx
                });
                if q.send(t.bytes).is_err() {
                    conns.remove(&t.to);
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
        if let Ok(mut s) = stats.lock() {
            *s = local;
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
                    let q = tcp_attach(stream, peer, &tcp_tx);
                    conns.insert(peer, q);
                }
                Err(e) => tracing::debug!(error = %e, "SIP TCP accept error"),
            },
            m = tcp_in.recv() => {
                if let Some((peer, msg)) = m {
                    if msg.is_empty() {
                        conns.remove(&peer);
                    } else {
                        local.datagrams_in += 1;
                        ua.handle_input(Instant::now(), peer, Transport::Tcp, &msg);
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
