//! The SIP edge that ships in `deploy/kamailio/waihu-edge.cfg` (Kamailio + dispatcher in
//! front of the waihu nodes), run on loopback with only the values at its top rewritten:
//! the edge test and the multi-node campaign test start the same file.
use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Peer;

/// How the edge probes its nodes (the shipped defaults are 5 s, 3 and 3, 3000 ms).
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub interval_s: u32,
    pub failures: u32,
    pub successes: u32,
    pub no_reply_ms: u32,
}

/// `n` distinct UDP ports on 127.0.0.1 that were free a moment ago (all held at once so
/// they differ).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<UdpSocket> = (0..n)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind an ephemeral UDP port"))
        .collect();
    held.iter()
        .map(|s| s.local_addr().expect("local address").port())
        .collect()
}

/// The shipped configuration with the values of some `#!define`/`#!substdef` lines
/// replaced. Panics when a name is missing, so the test and the shipped file cannot
/// silently drift apart.
pub fn render(cfg: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(cfg.len());
    let mut seen = BTreeSet::new();
    for line in cfg.lines() {
        let replaced = values.iter().find_map(|(name, value)| {
            if line.starts_with(&format!("#!substdef \"!{name}!")) {
                Some((name, format!("#!substdef \"!{name}!{value}!g\"")))
            } else if line.starts_with(&format!("#!define {name} ")) {
                Some((name, format!("#!define {name} {value}")))
            } else {
                None
            }
        });
        match replaced {
            Some((name, l)) => {
                assert!(seen.insert(*name), "{name} is set twice in the config");
                out.push_str(&l);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    for (name, _) in values {
        assert!(
            seen.contains(name),
            "the shipped config has no value {name}"
        );
    }
    out
}

/// A running edge; Kamailio stops when it drops.
pub struct Edge {
    pub dir: PathBuf,
    /// The edge's UDP port on 127.0.0.1 (nodes and trunk address it).
    pub port: u16,
    /// The `kamcmd` socket.
    pub ctl: String,
    _kamailio: Peer,
}

impl Edge {
    pub fn kamcmd(&self, args: &[&str]) -> String {
        let out = Command::new("kamcmd")
            .arg("-s")
            .arg(&self.ctl)
            .args(args)
            .output()
            .expect("run kamcmd");
        assert!(
            out.status.success(),
            "kamcmd {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The dispatcher flags of every destination (`AP` active and probed, `IP` inactive,
    /// `DX` disabled by the operator), from `kamcmd dispatcher.list`.
    pub fn flags(&self) -> BTreeMap<String, String> {
        let list = self.kamcmd(&["dispatcher.list"]);
        let mut flags = BTreeMap::new();
        let mut uri = None;
        for line in list.lines().map(str::trim) {
            if let Some(u) = line.strip_prefix("URI: ") {
                uri = Some(u.to_string());
            } else if let (Some(f), Some(u)) = (line.strip_prefix("FLAGS: "), uri.take()) {
                flags.insert(u, f.to_string());
            }
        }
        flags
    }

    /// Polls the flags of `uri` until they start with `state` (`'A'`, `'I'`, `'D'`);
    /// returns how long that took.
    pub fn wait_state(&self, uri: &str, state: char, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let flags = self.flags();
            if flags.get(uri).is_some_and(|f| f.starts_with(state)) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "{uri} not in state {state} after {limit:?}: {flags:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }
}

/// Starts the shipped edge in `dir` for the nodes at `127.0.0.1:<nodes>` (dispatcher set 1)
/// and the trunk at `127.0.0.1:<trunk>`, once `kamailio -c` accepts the rendered file; returns
/// when its management socket answers.
pub fn start_edge(dir: &Path, nodes: &[u16], trunk: u16, probe: Probe) -> Edge {
    let shipped =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kamailio/waihu-edge.cfg");
    let cfg = std::fs::read_to_string(&shipped)
        .unwrap_or_else(|e| panic!("read {}: {e}", shipped.display()));
    let port = free_ports(1)[0];
    let list = dir.join("dispatcher.list");
    let mut text = String::from("# set 1: the waihu nodes of this test\n");
    for n in nodes {
        text.push_str(&format!("1 sip:127.0.0.1:{n} 0 0\n"));
    }
    std::fs::write(&list, text).expect("write dispatcher.list");
    let ctl = format!("unixs:{}", dir.join("ctl").display());
    let rendered = render(
        &cfg,
        &[
            ("EDGE_LISTEN", format!("udp:127.0.0.1:{port}")),
            ("EDGE_ADVERTISED", format!("127.0.0.1:{port}")),
            ("TRUNK_ADDR", format!("127.0.0.1:{trunk}")),
            // The callers of these tests send from 127.0.0.1; the second net shows a list.
            ("CARRIER_NETS", "127.0.0.1/32,10.255.255.0/24".to_string()),
            ("DISPATCHER_LIST", list.display().to_string()),
            ("CTL_SOCKET", ctl.clone()),
            ("PING_INTERVAL", probe.interval_s.to_string()),
            ("PROBE_FAILURES", probe.failures.to_string()),
            ("PROBE_SUCCESSES", probe.successes.to_string()),
            ("NO_REPLY_MS", probe.no_reply_ms.to_string()),
            ("WORKERS", "2".to_string()),
        ],
    );
    let cfg_path = dir.join("waihu-edge.cfg");
    std::fs::write(&cfg_path, rendered).expect("write the rendered config");

    let check = Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(&cfg_path)
        .output()
        .expect("run kamailio -c");
    assert!(
        check.status.success(),
        "kamailio -c rejects the rendered config: {}",
        String::from_utf8_lossy(&check.stderr)
    );

    let log = std::fs::File::create(dir.join("kamailio.log")).expect("create kamailio.log");
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&cfg_path)
        .arg("-P")
        .arg(dir.join("kamailio.pid"))
        .args(["-m", "64", "-M", "8", "-E", "-DD", "-w"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start kamailio");
    let edge = Edge {
        dir: dir.to_path_buf(),
        port,
        ctl,
        _kamailio: Peer(child),
    };
    // Up once its management socket answers.
    let start = Instant::now();
    while !Command::new("kamcmd")
        .args(["-s", &edge.ctl, "core.version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "kamailio did not come up: {}",
            edge.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    edge
}
