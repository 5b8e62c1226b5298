//! Kamailio as a carrier-like peer on loopback: registrar and proxy with digest
//! auth, one configuration for every test and benchmark that needs it.
//!
//! - REGISTER must carry credentials for the To user (password [`Config::secret`]);
//!   the binding is kept in memory (`usrloc` without a database).
//! - INVITE must carry credentials for the From user; it is record-routed and
//!   either sent to the callees at [`Config::invite_to`] (a trunk in front of
//!   a callee farm) or, without it, to the registered binding of the Request-URI.
//! - Other out-of-dialog requests (OPTIONS) go to the registered binding (404 without one).
//! - With [`Config::tls`] it also listens for SIP over TLS (the `tls` module, Debian
//!   `kamailio-tls-modules`) with the given certificate, and accepts connection aliases
//!   (RFC 5923) so requests to a TLS client go back over the client's own connection.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::Peer;
use std::time::Duration;

/// A TLS listener: port on 127.0.0.1 and the server's certificate chain and key (PEM).
#[derive(Debug, Clone)]
pub struct TlsListen {
    pub port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test certificate authority and a server certificate it signed, made with the
/// `openssl` command (no Rust dependency here): `ca.pem` for the client to trust,
/// `server.pem` + `server.key` for the listener, valid for `names` (DNS names or IP
/// addresses) for two days. `dir` receives the files.
pub fn make_test_ca(dir: &Path, names: &[&str]) -> std::io::Result<TlsListenFiles> {
    let run = |args: &[&str]| -> std::io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=waihu test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    run(&a)?;
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend(["-keyout", "server.key", "-out", "server.csr", "-subj"]);
    let subject = format!("/CN={}", names.first().copied().unwrap_or("localhost"));
    a.push(&subject);
    run(&a)?;
    let san: Vec<String> = names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect();
    std::fs::write(
        dir.join("server.ext"),
        format!(
            "subjectAltName={}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            san.join(",")
        ),
    )?;
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    Ok(TlsListenFiles {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    })
}

/// What [`make_test_ca`] wrote.
#[derive(Debug, Clone)]
pub struct TlsListenFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What the peer does.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// UDP port on 127.0.0.1.
    pub port: u16,
    /// The digest password of every user.
    pub secret: String,
    /// Route every INVITE to 127.0.0.1 on this port instead of the location table.
    pub invite_to: Option<u16>,
    /// Shortest registration Kamailio accepts (its default is 60 s).
    pub min_expires: Option<u32>,
    /// Also listen for SIP over TLS.
    pub tls: Option<TlsListen>,
}

/// The `tls` module's own configuration file for a listener.
pub fn tls_config(t: &TlsListen) -> String {
    format!(
        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\nprivate_key = {}\ncertificate = {}\n\n[client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
        t.key.display(),
        t.cert.display()
    )
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
    let tls = match &c.tls {
        Some(t) => format!(
            "enable_tls=yes\nlisten=tls:127.0.0.1:{p}\nalias=\"127.0.0.1:{p}\"\ntcp_accept_aliases=yes\n",
            p = t.port
        ),
        None => String::new(),
    };
    let tls_module = if c.tls.is_some() {
        "loadmodule \"tls.so\"\nmodparam(\"tls\", \"config\", \"tls.cfg\")\n"
    } else {
        ""
    };
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=2
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
{tls}mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
{tls_module}loadmodule "tm.so"
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
        if let Some(t) = &c.tls {
            std::fs::write(dir.join("tls.cfg"), tls_config(t))?;
        }
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
            tls: None,
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
        assert!(!text.contains("tls"));
        c.tls = Some(TlsListen {
            port: 5098,
            cert: "/t/cert.pem".into(),
            key: "/t/key.pem".into(),
        });
        let text = config(&c);
        assert!(
            text.contains("listen=tls:127.0.0.1:5098") && text.contains("loadmodule \"tls.so\"")
        );
        assert!(tls_config(c.tls.as_ref().unwrap()).contains("certificate = /t/cert.pem"));
    }
}
