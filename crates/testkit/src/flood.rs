//! Hostile SIP traffic for flood tests and `waihu bench flood`: each source is one OS thread
//! (outside any async runtime, like a separate generator process) with its own socket bound
//! to its own loopback address (127.0.0.2, 127.0.0.3, …, so the target sees distinct
//! hosts), sending as fast as it can or at a set rate, and counting the answers it gets.
use std::collections::BTreeMap;
use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The name of the generator threads (`/proc/self/task/*/comm`).
pub const THREAD_NAME: &str = "sip-flood";

/// What one source sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// New INVITEs (a new Call-ID and branch each), with an SDP offer.
    Invite,
    /// OPTIONS pings.
    Options,
    /// Datagrams that are not SIP.
    Garbage,
    /// TCP connections opened and held without a byte sent (half-open / slow loris).
    TcpHold,
}

/// One source: its kind, its address (a loopback address other than 127.0.0.1; TCP
/// sources connect from the address the kernel picks), and its rate (datagrams or
/// connections a second; 0: as fast as it can, for TCP 200 a second).
#[derive(Debug, Clone, Copy)]
pub struct Source {
    pub kind: Kind,
    pub ip: IpAddr,
    pub rate: u32,
}

/// What one source sent and what came back.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub sent: u64,
    pub seconds: f64,
    /// Responses received by status code.
    pub responses: BTreeMap<u16, u64>,
    /// 503 responses that carried a Retry-After header.
    pub retry_after: u64,
    /// TCP: connections accepted and still open at the end, and those the target closed or
    /// refused.
    pub tcp_held: u64,
    pub tcp_closed: u64,
}

impl Outcome {
    fn count(&mut self, b: &[u8]) {
        if let Some(code) = status(b) {
            *self.responses.entry(code).or_default() += 1;
            if code == 503 && contains(b, b"\r\nRetry-After:") {
                self.retry_after += 1;
            }
        }
    }
    pub fn answered(&self) -> u64 {
        self.responses.values().sum()
    }
    pub fn rate(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }
}

/// Running sources; [`Flood::stop`] ends them and returns what each did.
pub struct Flood {
    stop: Arc<AtomicBool>,
    threads: Vec<(Source, JoinHandle<Outcome>)>,
}

impl Flood {
    /// Starts every source against `target` (the SIP address, UDP and TCP).
    pub fn start(target: SocketAddr, sources: &[Source]) -> std::io::Result<Flood> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let s = *s;
            let stop = stop.clone();
            // Named so a benchmark can tell the generator's CPU from the target's.
            let b = std::thread::Builder::new().name(THREAD_NAME.into());
            let h = match s.kind {
                Kind::TcpHold => b.spawn(move || tcp_hold(target, s, &stop))?,
                _ => {
                    let sock = UdpSocket::bind((s.ip, 0))?;
                    sock.set_nonblocking(true)?;
                    b.spawn(move || udp(target, sock, s, i as u64, &stop))?
                }
            };
            threads.push((s, h));
        }
        Ok(Flood { stop, threads })
    }

    pub fn stop(self) -> Vec<(Source, Outcome)> {
        self.stop.store(true, Ordering::Relaxed);
        self.threads
            .into_iter()
            .map(|(s, h)| (s, h.join().unwrap_or_default()))
            .collect()
    }
}

fn message(kind: Kind, from: SocketAddr, target: SocketAddr, n: u64, src: u64) -> Vec<u8> {
    let method = match kind {
        Kind::Invite => "INVITE",
        Kind::Options => "OPTIONS",
        Kind::Garbage => return format!("\x16\x03\x01\x02\x00 flood {n} \u{1}\u{2}").into_bytes(),
        Kind::TcpHold => unreachable!("TCP sources send nothing"),
    };
    let body = if kind == Kind::Invite {
        format!(
            "v=0\r\no=- {n} 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n",
            ip = from.ip()
        )
    } else {
        String::new()
    };
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "{method} sip:flood@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKf{src}x{n}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:flood@{from}>;tag=t{n}\r\nTo: <sip:flood@{target}>\r\n\
         Call-ID: flood{src}x{n}@{ip}\r\nCSeq: 1 {method}\r\nContact: <sip:flood@{from}>\r\n\
         {ct}Content-Length: {}\r\n\r\n{body}",
        body.len(),
        ip = from.ip()
    )
    .into_bytes()
}

fn udp(target: SocketAddr, sock: UdpSocket, s: Source, src: u64, stop: &AtomicBool) -> Outcome {
    let from = sock
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::new(s.ip, 0));
    let mut out = Outcome::default();
    let mut buf = vec![0u8; 65_535];
    let t0 = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        // A batch, then the answers, then (with a rate) a pause until the schedule.
        for _ in 0..50 {
            let m = message(s.kind, from, target, out.sent, src);
            match sock.send_to(&m, target) {
                Ok(_) => out.sent += 1,
                Err(_) => break,
            }
        }
        while let Ok((n, _)) = sock.recv_from(&mut buf) {
            out.count(&buf[..n]);
        }
        if s.rate > 0 {
            let due = t0 + Duration::from_secs_f64(out.sent as f64 / f64::from(s.rate));
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    out.seconds = t0.elapsed().as_secs_f64();
    // Late answers.
    std::thread::sleep(Duration::from_millis(100));
    while let Ok((n, _)) = sock.recv_from(&mut buf) {
        out.count(&buf[..n]);
    }
    out
}

fn tcp_hold(target: SocketAddr, s: Source, stop: &AtomicBool) -> Outcome {
    let mut out = Outcome::default();
    let mut held: Vec<TcpStream> = Vec::new();
    let t0 = Instant::now();
    let rate = if s.rate == 0 { 200 } else { s.rate };
    while !stop.load(Ordering::Relaxed) {
        let due = t0 + Duration::from_secs_f64(out.sent as f64 / f64::from(rate));
        if Instant::now() >= due && out.sent < 10_000 {
            // std cannot bind a client socket before connecting: the kernel picks the
            // source (127.0.0.1 for a loopback target); `Source::ip` is not used here.
            let sock = TcpStream::connect_timeout(&target, Duration::from_millis(500));
            out.sent += 1;
            if let Ok(st) = sock {
                let _ = st.set_nonblocking(true);
                held.push(st);
            }
        } else {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    out.seconds = t0.elapsed().as_secs_f64();
    let mut b = [0u8; 16];
    for mut st in held {
        match st.read(&mut b) {
            Ok(0) => out.tcp_closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => out.tcp_held += 1,
            _ => out.tcp_closed += 1,
        }
    }
    out
}

fn status(b: &[u8]) -> Option<u16> {
    let rest = b.strip_prefix(b"SIP/2.0 ")?;
    std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()
}

fn contains(h: &[u8], needle: &[u8]) -> bool {
    h.windows(needle.len()).any(|w| w == needle)
}
