//! The tokio side shared by the SMS gateway clients: one task owns the TCP connection,
//! feeds the protocol's sans-IO session, writes what it asks, forwards its events, and
//! reconnects (after `reconnect_delay`) whenever the link ends. Submissions queued while
//! the link is down go out after the next login.
//!
//! ```text
//! session.connect(now, wall_clock)
//! loop {
//!     write every session.poll_transmit()
//!     hand every session.poll_event() to the application
//!     select { bytes = socket.read() => session.handle_input(now, bytes),
//!              sms = commands.recv() => session.submit(now, sms),
//!              _ = sleep_until(session.poll_timeout()) => session.handle_timeout(now) }
//! }
//! ```

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::window::SubmitId;

/// A protocol's sans-IO client session, as the driver task drives it. `Instant`s are
/// `std`'s; the driver reads the clock and passes it in.
pub trait ClientSession: Send + 'static {
    /// The session's own settings.
    type Config: Clone + Send + 'static;
    /// One text to one number.
    type Sms: Send + 'static;
    type Event: Send + 'static;
    /// The protocol's name in logs and errors ("SMPP").
    const PROTOCOL: &'static str;

    fn new(cfg: Self::Config, now: std::time::Instant) -> Self;
    /// A new connection is up: log in (bind, CONNECT). `wall`: the wall clock, for a login
    /// that carries a timestamp.
    fn connect(&mut self, now: std::time::Instant, wall: std::time::SystemTime);
    /// Queues a text; fails at once if it cannot be encoded.
    fn submit(&mut self, now: std::time::Instant, sms: &Self::Sms) -> Result<SubmitId, String>;
    fn handle_input(&mut self, now: std::time::Instant, bytes: &[u8]);
    fn handle_timeout(&mut self, now: std::time::Instant);
    fn connection_lost(&mut self, now: std::time::Instant);
    /// Ends the link politely (unbind, TERMINATE); the session closes on the answer.
    fn log_out(&mut self, now: std::time::Instant);
    /// Gives up every submission that has not gone out yet.
    fn abandon_queued(&mut self);
    fn is_closed(&self) -> bool;
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    fn poll_event(&mut self) -> Option<Self::Event>;
    fn poll_timeout(&self) -> Option<std::time::Instant>;
}

#[derive(Debug, Clone)]
pub struct ClientConfig<C> {
    /// `host:port` of the gateway.
    pub addr: String,
    pub session: C,
    pub connect_timeout: Duration,
    pub reconnect_delay: Duration,
}

impl<C> ClientConfig<C> {
    pub fn new(addr: impl Into<String>, session: C) -> ClientConfig<C> {
        ClientConfig {
            addr: addr.into(),
            session,
            connect_timeout: Duration::from_secs(5),
            reconnect_delay: Duration::from_secs(1),
        }
    }
}

/// What the driver reports besides the session's own events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverEvent<E> {
    Session(E),
    /// A connection attempt failed; the driver retries after `reconnect_delay`.
    ConnectFailed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// The driver task has stopped; the protocol's name.
    #[error("the {0} client has stopped")]
    Stopped(&'static str),
    #[error("message cannot be sent: {0}")]
    Invalid(String),
}

enum Command<M> {
    Submit(M, oneshot::Sender<Result<SubmitId, String>>),
    Shutdown,
}

/// Talks to the driver task. Cloneable; the task stops on [`Handle::shutdown`] or when
/// every handle is dropped.
pub struct Handle<S: ClientSession> {
    tx: mpsc::Sender<Command<S::Sms>>,
}

impl<S: ClientSession> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Handle {
            tx: self.tx.clone(),
        }
    }
}

impl<S: ClientSession> Handle<S> {
    /// Queues a text and returns its submission id; the outcome arrives as an event.
    pub async fn submit(&self, sms: S::Sms) -> Result<SubmitId, SubmitError> {
        let stopped = SubmitError::Stopped(S::PROTOCOL);
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Command::Submit(sms, tx)).await.is_err() {
            return Err(stopped);
        }
        rx.await.map_err(|_| stopped)?.map_err(SubmitError::Invalid)
    }

    /// Logs out (briefly waiting for the answer) and stops the task.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

/// Starts the driver task. Events (session events and connection failures) arrive on the
/// returned receiver; the receiver must be drained.
pub fn spawn<S: ClientSession>(
    cfg: ClientConfig<S::Config>,
) -> (Handle<S>, mpsc::UnboundedReceiver<DriverEvent<S::Event>>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run::<S>(cfg, cmd_rx, ev_tx));
    (Handle { tx: cmd_tx }, ev_rx)
}

type Events<S> = mpsc::UnboundedSender<DriverEvent<<S as ClientSession>::Event>>;

async fn run<S: ClientSession>(
    cfg: ClientConfig<S::Config>,
    mut cmds: mpsc::Receiver<Command<S::Sms>>,
    events: Events<S>,
) {
    let mut session = S::new(cfg.session.clone(), Instant::now().into_std());
    let mut stopping = false;
    while !stopping {
        let conn = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(&cfg.addr)).await;
        let stream = match conn {
            Ok(Ok(s)) => s,
            failed => {
                let reason = match failed {
                    Ok(Err(e)) => format!("{}: {e}", cfg.addr),
                    _ => format!("{}: connect timed out", cfg.addr),
                };
                let _ = events.send(DriverEvent::ConnectFailed { reason });
                if wait_or_command(&mut session, &mut cmds, cfg.reconnect_delay).await {
                    break;
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        stopping = connected(&mut session, stream, &mut cmds, &events).await;
        forward(&mut session, &events);
        if !stopping && wait_or_command(&mut session, &mut cmds, cfg.reconnect_delay).await {
            break;
        }
    }
    session.abandon_queued();
    forward(&mut session, &events);
}

/// Waits out the reconnect delay while still accepting submissions. True: shut down.
async fn wait_or_command<S: ClientSession>(
    session: &mut S,
    cmds: &mut mpsc::Receiver<Command<S::Sms>>,
    delay: Duration,
) -> bool {
    let until = Instant::now() + delay;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(until) => return false,
            cmd = cmds.recv() => match cmd {
                Some(Command::Submit(sms, reply)) => {
                    let _ = reply.send(session.submit(Instant::now().into_std(), &sms));
                }
                Some(Command::Shutdown) | None => return true,
            }
        }
    }
}

fn forward<S: ClientSession>(session: &mut S, events: &Events<S>) {
    while let Some(e) = session.poll_event() {
        let _ = events.send(DriverEvent::Session(e));
    }
}

/// Runs one connection until it ends. True: shut down.
async fn connected<S: ClientSession>(
    session: &mut S,
    mut stream: TcpStream,
    cmds: &mut mpsc::Receiver<Command<S::Sms>>,
    events: &Events<S>,
) -> bool {
    session.connect(Instant::now().into_std(), std::time::SystemTime::now());
    let mut buf = vec![0u8; 16 * 1024];
    let mut shutting_down = false;
    let mut shutdown_deadline = None;
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if let Err(e) = stream.write_all(&bytes).await {
                tracing::warn!(%e, protocol = S::PROTOCOL, "write failed");
                session.connection_lost(Instant::now().into_std());
                return shutting_down;
            }
        }
        forward(session, events);
        if session.is_closed() {
            return shutting_down;
        }
        let wake = session
            .poll_timeout()
            .map(Instant::from_std)
            .into_iter()
            .chain(shutdown_deadline)
            .min();
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) | Err(_) => {
                    session.connection_lost(Instant::now().into_std());
                    forward(session, events);
                    return shutting_down;
                }
                Ok(n) => session.handle_input(Instant::now().into_std(), &buf[..n]),
            },
            cmd = cmds.recv(), if !shutting_down => match cmd {
                Some(Command::Submit(sms, reply)) => {
                    let _ = reply.send(session.submit(Instant::now().into_std(), &sms));
                }
                Some(Command::Shutdown) | None => {
                    shutting_down = true;
                    session.abandon_queued();
                    session.log_out(Instant::now().into_std());
                    shutdown_deadline = Some(Instant::now() + Duration::from_secs(2));
                }
            },
            _ = sleep_until_opt(wake) => {
                let now = Instant::now();
                if shutdown_deadline.is_some_and(|d| d <= now) {
                    session.connection_lost(now.into_std());
                    forward(session, events);
                    return true;
                }
                session.handle_timeout(now.into_std());
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
