//! Kamailio as a carrier-like peer on loopback: registrar and proxy with digest
//! auth, one configuration for every test and benchmark that needs it.
//!
//! - REGISTER must carry credentials for the To user (password [`Config::secret`]);
//!   the binding is kept in memory (`usrloc` without a database).
//! - INVITE must carry credentials for the From user; it is record-routed and
//!   either sent to the callees at [`Config::invite_to`] (a trunk in front of
//!   a callee farm) or, without it, to the registered binding of the Request-URI.
//! - Other out-of-dialog requests (OPTIONS) go to the registered binding (404 without one).
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Peer;
use std::time::Duration;

/// What the peer does.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP port on 127.0.0.1.
    pub port: u16,
    /// The digest password of every user.
    pub secret: String,
    /// Route every INVITE to 127.0.0.1 on this port instead of the location table.
    pub invite_to: Option<u16>,
    /// Shortest registration Kamailio accepts (its default is 60 s).
    pub min_expires: Option<u32>,
}

/// The configuration file's text.
pub fn config(c: &Config) -> String {
    let invite_route = match c.invite_to {
        Some(p) => format!("rewritehostport(\"127.0.0.1:{p}\");\n        t_relay();\n        exit;"),
        None => "if (!lookup(\"location\")) { sl_send_reply(\"404\", \"Not Found\"); exit; }\n        t_relay();\n        exit;".to_string(),
    };
    let min_expires = c
        .min_expires
        .map(|m| format!("modparam(\"registrar\", \"min_expires\", {m})\n"))
        .unwrap_or_default();
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
{min_expires}modparam("rr", "enable_full_lr", 1)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    if (is_method("REGISTER")) {{
        if (!pv_auth_check("$td", "{secret}", "0", "1")) {{ auth_challenge("$td", "1"); exit; }}
        consume_credentials();
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_auth_check("$fd", "{secret}", "0", "0")) {{ auth_challenge("$fd", "1"); exit; }}
        consume_credentials();
        record_route();
        {invite_route}
    }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"#,
        port = c.port,
        secret = c.secret,
    )
}

/// A running Kamailio; stopped (with the workers it forked) when dropped.
pub struct Kamailio {
    _peer: Peer,
    pub port: u16,
}

impl Kamailio {
    /// Writes the configuration into `dir`, starts Kamailio in the foreground
    /// (`-DD`, its working directory `dir`) and waits up to 10 s for its UDP port.
    pub fn start(dir: &Path, c: &Config) -> std::io::Result<Kamailio> {
        let cfg = dir.join("kamailio.cfg");
        std::fs::write(&cfg, config(c))?;
        let child = Command::new("kamailio")
            .arg("-f")
            .arg(&cfg)
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .args(["-m", "64", "-M", "8", "-E", "-DD", "-w"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let k = Kamailio {
            _peer: Peer(child),
            port: c.port,
        };
        for _ in 0..200 {
            if std::net::UdpSocket::bind(("127.0.0.1", c.port)).is_err() {
                return Ok(k);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("kamailio did not start on UDP {}", c.port),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_routes_invites_to_the_callees_or_the_location_table() {
        let mut c = Config {
            port: 5099,
            secret: "s3cret".into(),
            invite_to: Some(5200),
            min_expires: Some(5),
        };
        let text = config(&c);
        assert!(text.contains("listen=udp:127.0.0.1:5099"));
        assert!(text.contains("rewritehostport(\"127.0.0.1:5200\")"));
        assert!(text.contains("modparam(\"registrar\", \"min_expires\", 5)"));
        assert_eq!(text.matches("\"s3cret\"").count(), 2);
        c.invite_to = None;
        c.min_expires = None;
        let text = config(&c);
        assert!(!text.contains("rewritehostport") && !text.contains("min_expires"));
        assert_eq!(text.matches("lookup(\"location\")").count(), 2);
    }
}
