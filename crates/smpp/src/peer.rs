//! A real SMPP peer for tests and benchmarks: `peer/smsc.pl`, a small SMSC on Debian's
//! Net::SMPP (`libnet-smpp-perl`, installed by `scripts/deps/sms.apt`), run by `perl` on
//! 127.0.0.1. It answers binds and submits, sends delivery receipts, optionally a
//! mobile-originated reply, and logs what it received on stdout, which [`PeerSmsc`] collects.
//!
//! This module starts a process and a reader thread; nothing in the client uses it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The script, embedded so a binary can run it from anywhere.
pub const SMSC_PL: &str = include_str!("../peer/smsc.pl");

#[derive(Debug, Clone, Default)]
pub struct PeerOptions {
    /// Send a delivery receipt for each submit_sm asking for one.
    pub receipts: bool,
    /// After the first receipt to each number, reply from that number with this text.
    pub mo_reply: Option<String>,
}

pub struct PeerSmsc {
    child: Child,
    pub port: u16,
    lines: Arc<Mutex<Vec<String>>>,
    script: std::path::PathBuf,
}

impl PeerSmsc {
    /// Whether `perl` can load Net::SMPP here.
    pub fn available() -> bool {
        Command::new("perl")
            .args(["-MNet::SMPP", "-e", "1"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn start(opts: &PeerOptions) -> std::io::Result<PeerSmsc> {
        let script = std::env::temp_dir().join(format!(
            "waihu-smsc-{}-{}.pl",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        std::fs::File::create(&script)?.write_all(SMSC_PL.as_bytes())?;
        let mut cmd = Command::new("perl");
        cmd.arg(&script)
            .arg("0")
            .env("SMSC_RECEIPTS", if opts.receipts { "1" } else { "0" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null());
        if let Some(mo) = &opts.mo_reply {
            let hex: String = mo
                .encode_utf16()
                .flat_map(u16::to_be_bytes)
                .map(|b| format!("{b:02x}"))
                .collect();
            cmd.env("SMSC_MO_HEX", hex);
        }
        let mut child = cmd.spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| std::io::Error::other("no stdout"))?;
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        reader.read_line(&mut first)?;
        let port = first
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| {
                let _ = child.kill();
                std::io::Error::other(format!("SMSC did not start: {first:?}"))
            })?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(PeerSmsc {
            child,
            port,
            lines,
            script,
        })
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Everything the SMSC logged so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// How many logged lines start with `prefix` (`"SUBMIT "`: submit_sm received), without
    /// copying the log.
    pub fn count(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|l| l.starts_with(prefix)).count())
            .unwrap_or(0)
    }

    /// Waits (at most `limit`) until `pred` holds for the log.
    pub fn wait_for(&self, limit: Duration, pred: impl Fn(&[String]) -> bool) -> bool {
        let until = std::time::Instant::now() + limit;
        while std::time::Instant::now() < until {
            if pred(&self.lines()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        pred(&self.lines())
    }
}

static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Drop for PeerSmsc {
    fn drop(&mut self) {
        // The listener; connection children exit when their socket closes.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.script);
    }
}
