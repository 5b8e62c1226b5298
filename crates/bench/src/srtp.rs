//! `waihu bench srtp`: what SDES-SRTP costs a call. Two measures, each beside its plain-RTP
//! baseline in the same run:
//!
//! 1. per packet: protect + unprotect of a 20 ms G.711 packet (172 bytes), against the
//!    rest of the media path for the same packet (a [`MediaSession`] tick: encode, packetise,
//!    and `handle_datagram`: parse, decode, jitter buffer);
//! 2. per call: `--calls` concurrent calls, each two [`MediaSession`]s sending 50 packets/s
//!    to each other over real UDP sockets on 127.0.0.1 for `--seconds`, once in plain RTP
//!    and once in SRTP; this thread's CPU time per call, and the ratio.
use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde::Serialize;
use waihu_engine::waihu_media::srtp::{SrtpKey, SrtpSession};
use waihu_engine::waihu_media::{Law, MediaSession, SessionConfig, FRAME};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Concurrent calls of the stream run.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Seconds of media per run (plain, then SRTP).
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Packets of the per-packet measure.
    #[arg(long, default_value_t = 200_000)]
    packets: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
pub struct StreamRun {
    pub srtp: bool,
    pub calls: usize,
    pub seconds: f64,
    /// CPU seconds of this thread (user + system) over the run.
    pub cpu_s: f64,
    /// Percent of one core per call.
    pub core_pct_per_call: f64,
    /// CPU microseconds per packet sent and received.
    pub cpu_us_per_packet: f64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub srtp_auth_failed: u64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    /// Nanoseconds per 172-byte packet.
    pub protect_ns: f64,
    pub unprotect_ns: f64,
    /// The plain media path for the same packet (tick + handle_datagram), nanoseconds.
    pub media_path_ns: f64,
    pub plain: StreamRun,
    pub srtp: StreamRun,
    /// SRTP CPU / plain CPU in the stream run.
    pub cpu_ratio: f64,
}

fn thread_cpu_s() -> f64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_THREAD, &mut ru) != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        tv(ru.ru_utime) + tv(ru.ru_stime)
    }
}

fn speech() -> Vec<i16> {
    (0..FRAME)
        .map(|i| ((i as f64 * 0.21).sin() * 6000.0) as i16)
        .collect()
}

fn keys(n: u8) -> SrtpKey {
    SrtpKey::from_bytes(&[n.wrapping_mul(37).wrapping_add(1); 30]).expect("30 bytes")
}

/// Per-packet costs: protect, unprotect, and the plain media path.
fn per_packet(packets: u64) -> anyhow::Result<(f64, f64, f64)> {
    let t0 = Instant::now();
    let frame = speech();
    let mut a = MediaSession::new(SessionConfig::new(Law::Ulaw, Some(101), 1, 0, 0), t0);
    let mut b = MediaSession::new(SessionConfig::new(Law::Ulaw, Some(101), 2, 0, 0), t0);
    // Packets from a real session, protected and unprotected by a key pair.
    let mut s = SrtpSession::new(&keys(1), &keys(2));
    let mut r = SrtpSession::new(&keys(2), &keys(1));
    let plain = a.tick(t0, &frame).context_none()?;
    let mut pkts = Vec::with_capacity(1024);
    let t = Instant::now();
    let mut unprotect_s = 0.0;
    for i in 0..packets {
        let mut p = plain.clone();
        let seq = (i & 0xFFFF) as u16;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        s.outbound.protect_rtp(&mut p)?;
        pkts.push(p);
        if pkts.len() == 1024 || i + 1 == packets {
            let u = Instant::now();
            for p in &mut pkts {
                r.inbound.unprotect_rtp(p).ok();
            }
            unprotect_s += u.elapsed().as_secs_f64();
            pkts.clear();
        }
    }
    let total = t.elapsed().as_secs_f64();
    let protect_ns = (total - unprotect_s) * 1e9 / packets as f64;
    let unprotect_ns = unprotect_s * 1e9 / packets as f64;
    // The plain path: tick (encode + packetise) and handle_datagram (parse, decode, buffer).
    let t = Instant::now();
    for k in 0..packets {
        let now = t0 + Duration::from_millis(20 * k);
        if let Some(p) = a.tick(now, &frame) {
            b.handle_datagram(now, &p)?;
        }
        b.tick(now, &[]);
    }
    let media_path_ns = t.elapsed().as_secs_f64() * 1e9 / packets as f64;
    Ok((protect_ns, unprotect_ns, media_path_ns))
}

trait ContextNone<T> {
    fn context_none(self) -> anyhow::Result<T>;
}
impl<T> ContextNone<T> for Option<T> {
    fn context_none(self) -> anyhow::Result<T> {
        self.ok_or_else(|| anyhow::anyhow!("the session sent no packet"))
    }
}

/// One end of a call: its session and socket.
struct End {
    session: MediaSession,
    sock: UdpSocket,
}

/// `calls` calls with two-way media over loopback UDP for `seconds`, paced at 20 ms.
fn streams(calls: usize, seconds: f64, srtp: bool) -> anyhow::Result<StreamRun> {
    let t0 = Instant::now();
    let frame = speech();
    let mut ends: Vec<(End, End)> = Vec::with_capacity(calls);
    for c in 0..calls {
        let mk = |ssrc: u32| -> anyhow::Result<End> {
            let sock = UdpSocket::bind("127.0.0.1:0")?;
            sock.set_nonblocking(true)?;
            Ok(End {
                session: MediaSession::new(
                    SessionConfig::new(Law::Ulaw, Some(101), ssrc, ssrc as u16, 0),
                    t0,
                ),
                sock,
            })
        };
        let mut a = mk(2 * c as u32 + 1)?;
        let mut b = mk(2 * c as u32 + 2)?;
        a.sock.connect(b.sock.local_addr()?)?;
        b.sock.connect(a.sock.local_addr()?)?;
        if srtp {
            let (ka, kb) = (keys(c as u8), keys(c as u8 ^ 0x55));
            a.session.set_srtp(Some(SrtpSession::new(&ka, &kb)));
            b.session.set_srtp(Some(SrtpSession::new(&kb, &ka)));
        }
        ends.push((a, b));
    }
    let ticks = (seconds * 50.0).round().max(1.0) as u64;
    let mut buf = [0u8; 2048];
    let cpu0 = thread_cpu_s();
    let start = Instant::now();
    for k in 0..ticks {
        let due = start + Duration::from_millis(20 * k);
        if let Some(d) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
        let now = Instant::now();
        for (a, b) in &mut ends {
            for e in [&mut *a, &mut *b] {
                if let Some(p) = e.session.tick(now, &frame) {
                    let _ = e.sock.send(&p);
                }
            }
        }
        for (a, b) in &mut ends {
            for e in [&mut *a, &mut *b] {
                while let Ok(n) = e.sock.recv(&mut buf) {
                    let _ = e.session.handle_datagram(now, &buf[..n]);
                }
            }
        }
    }
    // Let the last packets land.
    std::thread::sleep(Duration::from_millis(20));
    for (a, b) in &mut ends {
        for e in [&mut *a, &mut *b] {
            while let Ok(n) = e.sock.recv(&mut buf) {
                let _ = e.session.handle_datagram(Instant::now(), &buf[..n]);
            }
        }
    }
    let cpu_s = thread_cpu_s() - cpu0;
    let wall = start.elapsed().as_secs_f64();
    let (mut sent, mut received, mut failed) = (0, 0, 0);
    for (a, b) in &ends {
        for e in [a, b] {
            let s = e.session.stats();
            sent += s.packets_sent;
            received += s.packets_received;
            failed += s.srtp_auth_failed;
        }
    }
    Ok(StreamRun {
        srtp,
        calls,
        seconds: wall,
        cpu_s,
        core_pct_per_call: cpu_s / wall / calls as f64 * 100.0,
        cpu_us_per_packet: cpu_s * 1e6 / (sent + received).max(1) as f64,
        packets_sent: sent,
        packets_received: received,
        srtp_auth_failed: failed,
    })
}

pub fn measure(a: &Args) -> anyhow::Result<Figures> {
    let (protect_ns, unprotect_ns, media_path_ns) = per_packet(a.packets.max(1))?;
    let plain = streams(a.calls.max(1), a.seconds, false)?;
    let srtp = streams(a.calls.max(1), a.seconds, true)?;
    if srtp.packets_received * 100 < srtp.packets_sent * 95 || srtp.srtp_auth_failed > 0 {
        anyhow::bail!(
            "SRTP run lost packets or failed authentication: {} sent, {} received, {} failed",
            srtp.packets_sent,
            srtp.packets_received,
            srtp.srtp_auth_failed
        );
    }
    let cpu_ratio = srtp.cpu_s / plain.cpu_s.max(1e-9);
    Ok(Figures {
        protect_ns,
        unprotect_ns,
        media_path_ns,
        plain,
        srtp,
        cpu_ratio,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let f = measure(&a)?;
    if a.json {
        return crate::print_json(&f);
    }
    println!("SRTP AES_CM_128_HMAC_SHA1_80, 20 ms G.711 packets (172 bytes):");
    println!(
        "  per packet: protect {:.0} ns + unprotect {:.0} ns = {:.0} ns; plain media path (tick + receive) {:.0} ns",
        f.protect_ns,
        f.unprotect_ns,
        f.protect_ns + f.unprotect_ns,
        f.media_path_ns
    );
    println!(
        "{} calls x 50 packets/s each way over loopback UDP, {:.1} s each (CPU of the media thread):",
        f.plain.calls, f.plain.seconds
    );
    for r in [&f.plain, &f.srtp] {
        println!(
            "  {:<5} CPU {:.3} s  {:.4} %core/call  {:.2} us/packet  sent {} received {}",
            if r.srtp { "srtp" } else { "plain" },
            r.cpu_s,
            r.core_pct_per_call,
            r.cpu_us_per_packet,
            r.packets_sent,
            r.packets_received
        );
    }
    println!("  SRTP / plain CPU: {:.2}x", f.cpu_ratio);
    Ok(())
}
