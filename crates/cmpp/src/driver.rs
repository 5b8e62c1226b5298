//! The tokio side: one task owns the TCP connection to the gateway (ISMG), feeds the
//! sans-IO [`Session`], writes what it asks, forwards its events, and reconnects (after
//! `reconnect_delay`) whenever the connection ends. Submissions queued while the link is
//! down go out after the next CONNECT. The CONNECT timestamp is read here, in China
//! Standard Time (UTC+8), the clock CMPP gateways check it against.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::session::{Config, Event, OutgoingSms, Session, State, SubmitId};

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the gateway.
    pub addr: String,
    pub session: Config,
    pub connect_timeout: Duration,
    pub reconnect_delay: Duration,
}

impl ClientConfig {
    pub fn new(addr: impl Into<String>, session: Config) -> ClientConfig {
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
pub enum DriverEvent {
    Session(Event),
    /// A connection attempt failed; the driver retries after `reconnect_delay`.
    ConnectFailed {
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error("the CMPP client has stopped")]
    Stopped,
    #[error("message cannot be sent: {0}")]
    Invalid(String),
}

enum Command {
    Submit(OutgoingSms, oneshot::Sender<Result<SubmitId, String>>),
    Shutdown,
}

/// Talks to the driver task. Cloneable; the task stops on [`CmppHandle::shutdown`] or when
/// every handle is dropped.
#[derive(Clone)]
pub struct CmppHandle {
    tx: mpsc::Sender<Command>,
}

impl CmppHandle {
    /// Queues a text and returns its submission id; the outcome arrives as an event.
    pub async fn submit(&self, sms: OutgoingSms) -> Result<SubmitId, SubmitError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Submit(sms, tx))
            .await
            .map_err(|_| SubmitError::Stopped)?;
        rx.await
            .map_err(|_| SubmitError::Stopped)?
            .map_err(SubmitError::Invalid)
    }

    /// Terminates (briefly waiting for the answer) and stops the task.
    pub async fn shutdown(&self) {
        let _ = self.tx.send(Command::Shutdown).await;
    }
}

/// Starts the driver task. Events (session events and connection failures) arrive on the
/// returned receiver; the receiver must be drained.
pub fn spawn(cfg: ClientConfig) -> (CmppHandle, mpsc::UnboundedReceiver<DriverEvent>) {
    let (cmd_tx, cmd_rx) = mpsc::channel(1024);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    tokio::spawn(run(cfg, cmd_rx, ev_tx));
    (CmppHandle { tx: cmd_tx }, ev_rx)
}

async fn run(
    cfg: ClientConfig,
    mut cmds: mpsc::Receiver<Command>,
    events: mpsc::UnboundedSender<DriverEvent>,
) {
    let mut session = Session::new(cfg.session.clone(), Instant::now().into_std());
    let mut stopping = false;
    while !stopping {
        let conn = tokio::time::timeout(cfg.connect_timeout, TcpStream::connect(&cfg.addr)).await;
        let stream = match conn {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                let _ = events.send(DriverEvent::ConnectFailed {
                    reason: format!("{}: {e}", cfg.addr),
                });
                if wait_or_command(&mut session, &mut cmds, cfg.reconnect_delay).await {
                    break;
                }
                continue;
            }
            Err(_) => {
                let _ = events.send(DriverEvent::ConnectFailed {
                    reason: format!("{}: connect timed out", cfg.addr),
                });
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
async fn wait_or_command(
    session: &mut Session,
    cmds: &mut mpsc::Receiver<Command>,
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

fn forward(session: &mut Session, events: &mpsc::UnboundedSender<DriverEvent>) {
    while let Some(e) = session.poll_event() {
        let _ = events.send(DriverEvent::Session(e));
    }
}

/// Runs one connection until it ends. True: shut down.
async fn connected(
    session: &mut Session,
    mut stream: TcpStream,
    cmds: &mut mpsc::Receiver<Command>,
    events: &mpsc::UnboundedSender<DriverEvent>,
) -> bool {
    session.connect(
        Instant::now().into_std(),
        china_timestamp(chrono::Utc::now()),
    );
    let mut buf = vec![0u8; 16 * 1024];
    let mut shutting_down = false;
    let mut shutdown_deadline = None;
    loop {
        while let Some(bytes) = session.poll_transmit() {
            if let Err(e) = stream.write_all(&bytes).await {
                tracing::warn!(%e, "CMPP write failed");
                session.connection_lost(Instant::now().into_std());
                return shutting_down;
            }
        }
        forward(session, events);
        if session.state() == State::Closed {
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
                    session.terminate(Instant::now().into_std());
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

/// `MMDDHHMMSS` of `now` in China Standard Time.
pub fn china_timestamp(now: chrono::DateTime<chrono::Utc>) -> u32 {
    use chrono::{Datelike, Timelike};
    let cst = now + chrono::Duration::hours(8);
    crate::auth::timestamp(
        cst.month(),
        cst.day(),
        cst.hour(),
        cst.minute(),
        cst.second().min(59),
    )
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamps_are_china_time() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-12-31T17:30:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(super::china_timestamp(t), 101013005);
    }
}
