//! Kannel (Debian `kannel`: `bearerbox` + `smsbox`) on loopback as an SMS gateway in
//! front of an SMSC the test runs. Kannel is an SMPP *client*: its `smsc = smpp` group
//! binds as a transceiver to the SMSC at [`Config::smsc_port`] and submits what arrives
//! on smsbox's `sendsms` HTTP interface (`/cgi-bin/sendsms`), the way an application
//! in front of Kannel sends. Its own SMPP window is `max-pending-submits`.
//!
//! [`Kannel::start`] writes the configuration into a directory, starts both boxes in the
//! foreground and waits until the SMPP link is online (admin `/status.txt`), so the first
//! message a test sends is not queued behind the bind. Logs stay in that directory.
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::Peer;

/// Where Debian installs the boxes (`/usr/sbin` is not on every user's `PATH`).
pub const BEARERBOX: &str = "/usr/sbin/bearerbox";
pub const SMSBOX: &str = "/usr/sbin/smsbox";

/// What Kannel connects to and how.
#[derive(Debug, Clone)]
pub struct Config {
    /// The SMSC's SMPP port on 127.0.0.1.
    pub smsc_port: u16,
    /// system_id and password Kannel binds with.
    pub system_id: String,
    pub password: String,
    /// Kannel's SMPP window (`max-pending-submits`).
    pub window: u32,
    /// Kannel log level for its files (0 debug … 4 panic). Debug logs every PDU, which
    /// slows it down several times; benchmarks want 2 (warnings).
    pub log_level: u8,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            smsc_port: 0,
            system_id: "kannel".into(),
            password: "secret".into(),
            window: 10,
            log_level: 2,
        }
    }
}

/// The `sendsms-user` every [`Kannel`] accepts.
pub const SENDSMS_USER: &str = "waihu";
pub const SENDSMS_PASSWORD: &str = "sendsms-secret";
const ADMIN_PASSWORD: &str = "admin-secret";

/// Ports Kannel listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub admin: u16,
    pub smsbox: u16,
    pub sendsms: u16,
}

/// The configuration file's text.
pub fn config(c: &Config, ports: Ports, dir: &Path) -> String {
    format!(
        r#"group = core
admin-port = {admin}
admin-interface = 127.0.0.1
admin-password = {ADMIN_PASSWORD}
admin-allow-ip = 127.0.0.1
smsbox-port = {smsbox}
smsbox-interface = 127.0.0.1
box-allow-ip = 127.0.0.1
log-file = "{dir}/bearerbox.log"
log-level = {level}
dlr-storage = internal

group = smsc
smsc = smpp
smsc-id = peer
host = 127.0.0.1
port = {smsc}
receive-port = 0
transceiver-mode = true
smsc-username = "{user}"
smsc-password = "{password}"
system-type = ""
max-pending-submits = {window}
enquire-link-interval = 30
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {smsbox}
sendsms-port = {sendsms}
sendsms-interface = 127.0.0.1
log-file = "{dir}/smsbox.log"
log-level = {level}

group = sendsms-user
username = {SENDSMS_USER}
password = {SENDSMS_PASSWORD}
max-messages = 10
concatenation = true

# Replies from the SMSC (MO) are accepted and not answered.
group = sms-service
keyword = default
text = ""
max-messages = 0
"#,
        admin = ports.admin,
        smsbox = ports.smsbox,
        sendsms = ports.sendsms,
        smsc = c.smsc_port,
        user = c.system_id,
        password = c.password,
        window = c.window.max(1),
        level = c.log_level.min(4),
        dir = dir.display(),
    )
}

/// A free TCP port on 127.0.0.1 (free when asked; Kannel binds it a moment later).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay as they are).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `sendsms` request path for one message (UTF-8 text; Kannel picks GSM or UCS-2
/// with `coding=2` for non-Latin text and concatenates long ones). With `dlr_url`,
/// Kannel asks the SMSC for a delivery receipt and fetches that URL when one arrives
/// (`%d` in it becomes the report type: 1 delivered, 2 failed, 8 SMSC accepted, …).
pub fn sendsms_path(from: &str, to: &str, text: &str, dlr_url: Option<&str>) -> String {
    let coding = if text.is_ascii() { "0" } else { "2" };
    let mut p = format!(
        "/cgi-bin/sendsms?username={}&password={}&from={}&to={}&charset=UTF-8&coding={coding}&text={}",
        query_escape(SENDSMS_USER),
        query_escape(SENDSMS_PASSWORD),
        query_escape(from),
        query_escape(to),
        query_escape(text),
    );
    if let Some(url) = dlr_url {
        p.push_str("&dlr-mask=3&dlr-url=");
        p.push_str(&query_escape(url));
    }
    p
}

/// A running bearerbox and smsbox; both stopped when dropped.
pub struct Kannel {
    // Dropped in this order: smsbox first so it does not reconnect to a dying bearerbox.
    _smsbox: Peer,
    _bearerbox: Peer,
    pub ports: Ports,
    pub dir: PathBuf,
}

impl Kannel {
    /// Writes `kannel.conf` into `dir`, starts bearerbox and smsbox and waits (at most
    /// 15 s) until smsbox accepts `sendsms` requests and the SMPP link is online.
    pub fn start(dir: &Path, c: &Config) -> std::io::Result<Kannel> {
        let ports = Ports {
            admin: free_port()?,
            smsbox: free_port()?,
            sendsms: free_port()?,
        };
        let conf = dir.join("kannel.conf");
        std::fs::write(&conf, config(c, ports, dir))?;
        let spawn = |bin: &str, out: &str| -> std::io::Result<Peer> {
            let log = std::fs::File::create(dir.join(out))?;
            Command::new(bin)
                // Console output at warnings only; the log files get `log_level`.
                .args(["-v", "2"])
                .arg(&conf)
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map(Peer)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{bin}: {e}")))
        };
        let bearerbox = spawn(BEARERBOX, "bearerbox.stderr")?;
        wait_for_port(ports.smsbox, Duration::from_secs(10), "bearerbox")?;
        let smsbox = spawn(SMSBOX, "smsbox.stderr")?;
        let k = Kannel {
            _smsbox: smsbox,
            _bearerbox: bearerbox,
            ports,
            dir: dir.to_path_buf(),
        };
        wait_for_port(ports.sendsms, Duration::from_secs(10), "smsbox")?;
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            let status = k.admin("/status.txt").unwrap_or_default();
            // "peer    SMPP:127.0.0.1:<port>/0:kannel:  (online 0s, rcvd ...)"
            if status
                .lines()
                .any(|l| l.contains("SMPP:") && l.contains("online"))
            {
                return Ok(k);
            }
            if Instant::now() > until {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "Kannel's SMPP link to 127.0.0.1:{} did not come online within 15 s \
                         (logs in {}); status:\n{status}",
                        c.smsc_port,
                        dir.display()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The sendsms interface's base, `http://127.0.0.1:<port>`.
    pub fn sendsms_base(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.sendsms)
    }

    /// One `sendsms` request; Kannel's answer (status and body, e.g.
    /// `202 0: Accepted for delivery`).
    pub fn sendsms(
        &self,
        from: &str,
        to: &str,
        text: &str,
        dlr_url: Option<&str>,
    ) -> std::io::Result<(u16, String)> {
        http_get(self.ports.sendsms, &sendsms_path(from, to, text, dlr_url))
    }

    /// A page of the admin interface (`/status.txt`, …), password added.
    pub fn admin(&self, path: &str) -> std::io::Result<String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        http_get(
            self.ports.admin,
            &format!("{path}{sep}password={ADMIN_PASSWORD}"),
        )
        .map(|(_, body)| body)
    }
}

fn wait_for_port(port: u16, limit: Duration, what: &str) -> std::io::Result<()> {
    let until = Instant::now() + limit;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("{what} did not listen on 127.0.0.1:{port} within {limit:?}"),
    ))
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (no client library here): status and body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {head:?}")))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_points_the_smpp_group_at_the_smsc() {
        let c = Config {
            smsc_port: 2775,
            window: 7,
            ..Config::default()
        };
        let ports = Ports {
            admin: 1,
            smsbox: 2,
            sendsms: 3,
        };
        let text = config(&c, ports, Path::new("/tmp/k"));
        assert!(text.contains("smsc = smpp\n"));
        assert!(text.contains("port = 2775\n"));
        assert!(text.contains("transceiver-mode = true"));
        assert!(text.contains("max-pending-submits = 7"));
        assert!(text.contains("sendsms-port = 3\n"));
        assert_eq!(text.matches("bearerbox-port = 2\n").count(), 1);
        assert!(text.contains("log-file = \"/tmp/k/smsbox.log\""));
    }

    #[test]
    fn sendsms_paths_escape_text_and_pick_the_coding() {
        let p = sendsms_path("10690000", "+8613800000001", "退订 a&b", None);
        assert!(p.contains("&to=%2B8613800000001&"));
        assert!(p.contains("&coding=2&"));
        assert!(p.ends_with("&text=%E9%80%80%E8%AE%A2%20a%26b"));
        let p = sendsms_path("W", "1", "hi", Some("http://h/r?t=%d"));
        assert!(p.contains("&coding=0&"));
        assert!(p.ends_with("&dlr-mask=3&dlr-url=http%3A%2F%2Fh%2Fr%3Ft%3D%25d"));
    }
}
