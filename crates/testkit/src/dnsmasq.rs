//! dnsmasq as a small authoritative DNS server on a loopback port, for the tests of
//! RFC 3263 trunk resolution (and `waihu bench` figures against it).
//!
//! ```no_run
//! let Some(dns) = waihu_testkit::dnsmasq::Dnsmasq::start(
//!     "waihu.test",
//!     &["--srv-host=_sip._udp.carrier.waihu.test,a.waihu.test,5070,10,1",
//!       "--host-record=a.waihu.test,127.0.0.1"],
//! ) else {
//!     return; // skipped (never under CI)
//! };
//! println!("DNS at {}", dns.addr);
//! ```

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{decide, find_on_path, Peer};

/// A running dnsmasq, stopped when dropped (and after 10 minutes whatever happens).
pub struct Dnsmasq {
    pub addr: SocketAddr,
    _peer: Peer,
}

/// dnsmasq on `PATH`, else in `/usr/sbin` (not on every user's `PATH`).
fn binary() -> Option<PathBuf> {
    find_on_path("dnsmasq", std::env::var_os("PATH").as_deref())
        .or_else(|| Some(PathBuf::from("/usr/sbin/dnsmasq")).filter(|p| p.exists()))
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> u16 {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port");
        let port = udp.local_addr().expect("local addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port for dnsmasq");
}

impl Dnsmasq {
    /// Starts dnsmasq answering for `domain` (authoritatively: a name under it without
    /// records is NXDOMAIN, nothing is forwarded) with the records given as dnsmasq
    /// options (`--naptr-record=...`, `--srv-host=...`, `--host-record=...`), TTL 30 s.
    /// `None` when dnsmasq is missing outside CI (see [`crate::have_peer`]).
    #[track_caller]
    pub fn start(domain: &str, records: &[&str]) -> Option<Dnsmasq> {
        let bin = binary();
        if !decide("dnsmasq", bin.is_some()) {
            return None;
        }
        let bin = bin?;
        let port = free_port();
        let mut cmd = Command::new("timeout");
        cmd.arg("600")
            .arg(&bin)
            .args([
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--conf-file=/dev/null",
                "--pid-file",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                "--local-ttl=30",
                "--log-facility=-",
                "--quiet-dhcp",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--local=/{domain}/"))
            .args(records)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start dnsmasq");
        let until = Instant::now() + Duration::from_secs(10);
        while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("dnsmasq ({}) exited at start: {status}", path_str(&bin));
            }
            assert!(Instant::now() < until, "dnsmasq did not listen on {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Dnsmasq {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _peer: Peer(child),
        })
    }
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}
