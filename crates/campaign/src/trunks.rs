//! SIP trunks as configuration, and the sans-IO trunk selector the dialer runs.
//!
//! A trunk is written inline in the campaign file (`trunks:`) or in a file the campaign
//! names (`trunks_file: trunks.yaml`, relative to the campaign file, holding `trunks:`).
//! Per trunk: `name`, `channels` (max channels), `cps` (max calls per second), `weight`,
//! `proxy` (`host:port`, `host` or a `sip:`/`sips:` URI), `transport` (`udp`, `tcp`,
//! `tls` with `tls_ca` and `tls_server_name`), `username`,
//! `realm`, the password from `password_env` or `password_file` (an inline `password` is
//! refused), `register` + `expires`, `srtp` (`off`, `optional`, `mandatory`),
//! `outbound_proxy`, `number_format` (`e164`, `national`, `prefix:<digits>`) and
//! `dns_server` (where the proxy's name is resolved, RFC 3263; [`TrunkDns`]). Every
//! problem carries `file:line:column`.
//!
//! [`TrunkSet`] is the runtime's selector: a weighted choice among trunks that are up
//! (registered when they must be, not in a failure back-off) with a free channel and a
//! call-per-second token; failover statuses ([`is_failover_status`]) count against a trunk
//! and three in a row take it out for a back-off (5 s doubling, at most 5 min). Time is an
//! input (milliseconds since the epoch); nothing here reads a clock.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

use crate::config::TrunkFile;

/// SIP transport of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrunkTransport {
    #[default]
    Udp,
    Tcp,
    /// SIP over TLS (`sips:` URIs default to it and to port 5061).
    Tls,
}

impl TrunkTransport {
    pub fn as_str(self) -> &'static str {
        match self {
            TrunkTransport::Udp => "udp",
            TrunkTransport::Tcp => "tcp",
            TrunkTransport::Tls => "tls",
        }
    }
}

/// Media encryption of a trunk's calls: SDES-SRTP (RFC 4568, `AES_CM_128_HMAC_SHA1_80`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TrunkSrtp {
    /// Plain RTP.
    #[default]
    Off,
    /// Offer keys in an `RTP/AVP` offer; plain RTP when the trunk answers without them.
    Optional,
    /// Offer `RTP/SAVP`; a call the trunk answers without keys is hung up.
    Mandatory,
}

impl TrunkSrtp {
    pub fn parse(s: &str) -> Result<TrunkSrtp, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" | "no" | "false" => Ok(TrunkSrtp::Off),
            "optional" => Ok(TrunkSrtp::Optional),
            "mandatory" | "required" => Ok(TrunkSrtp::Mandatory),
            other => Err(format!(
                "srtp {other:?}: expected off, optional or mandatory / srtp 应为 off、optional 或 mandatory"
            )),
        }
    }
}

/// How the callee's number is written in the Request-URI user part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub enum NumberFormat {
    /// `+8613800138000`
    #[default]
    E164,
    /// The national form, digits only: `13800138000`, `01012345678`.
    National,
    /// The national form behind a carrier prefix: `prefix:17951` → `1795113800138000`.
    Prefix(String),
}

impl NumberFormat {
    pub fn parse(s: &str) -> Result<NumberFormat, String> {
        let s = s.trim();
        match s.to_ascii_lowercase().as_str() {
            "e164" | "e.164" => return Ok(NumberFormat::E164),
            "national" => return Ok(NumberFormat::National),
            _ => {}
        }
        if let Some(p) = s.strip_prefix("prefix:") {
            let p = p.trim();
            if !p.is_empty() && p.len() <= 16 && p.bytes().all(|b| b.is_ascii_digit() || b == b'+')
            {
                return Ok(NumberFormat::Prefix(p.to_string()));
            }
        }
        Err(format!(
            "number_format {s:?}: expected e164, national or prefix:<digits> / 号码格式应为 e164、national 或 prefix:数字"
        ))
    }
}

/// Where a trunk's password comes from (never the YAML itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PasswordSource {
    /// An environment variable of the node.
    Env(String),
    /// A secrets file (first line, trailing newline removed); relative to the trunk file.
    File(PathBuf),
}

/// A host and port (the proxy, the registrar, an outbound proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// `host`, `host:port`, `[v6]:port`, `sip:[user@]host[:port][;transport=udp|tcp|tls]`,
/// `sips:[user@]host[:port]` (TLS, port 5061 by default).
/// Returns the address and the URI's transport, if any.
pub fn parse_proxy(s: &str) -> Result<(HostPort, Option<TrunkTransport>), String> {
    let orig = s;
    let s = s.trim();
    let sips = s.starts_with("sips:");
    let default_port = if sips { 5061 } else { 5060 };
    let s = s
        .strip_prefix("sips:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    let (s, params) = s.split_once(';').unwrap_or((s, ""));
    let mut transport = sips.then_some(TrunkTransport::Tls);
    for p in params.split(';').filter(|p| !p.is_empty()) {
        if let Some(t) = p.strip_prefix("transport=") {
            let t = parse_transport(t)?;
            if sips && t != TrunkTransport::Tls {
                return Err(format!(
                    "{orig:?}: a sips: URI is reached over TLS only / sips: 只能使用 TLS"
                ));
            }
            transport = Some(t);
        }
    }
    let host_port = s.rsplit_once('@').map_or(s, |(_, h)| h);
    let bad =
        || format!("{orig:?}: expected host, host:port or a sip: URI / 应为 主机:端口 或 sip: URI");
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if after.is_empty() => default_port,
            None => return Err(bad()),
        };
        (h.to_string(), port)
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse::<u16>().map_err(|_| bad())?),
            None => (host_port.to_string(), default_port),
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:_".contains(&b));
    if !host_ok || port == 0 {
        return Err(bad());
    }
    Ok((HostPort { host, port }, transport))
}

fn parse_transport(s: &str) -> Result<TrunkTransport, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "udp" => Ok(TrunkTransport::Udp),
        "tcp" => Ok(TrunkTransport::Tcp),
        "tls" => Ok(TrunkTransport::Tls),
        other => Err(format!(
            "transport {other:?}: expected udp, tcp or tls / 传输方式应为 udp、tcp 或 tls"
        )),
    }
}

// Field deserialisers used by `config::TrunkFile`: a bad value fails where it is written,
// so the YAML parser reports its line and column.

pub(crate) fn de_transport<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    parse_transport(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

pub(crate) fn de_srtp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    // YAML reads a bare `off` as a boolean: accept `false` as off too.
    let v = serde_norway::Value::deserialize(d)?;
    let s = match v {
        serde_norway::Value::String(s) => s,
        serde_norway::Value::Bool(false) => "off".to_string(),
        other => {
            return Err(serde::de::Error::custom(format!(
                "srtp {other:?}: expected off, optional or mandatory / srtp 应为 off、optional 或 mandatory"
            )))
        }
    };
    TrunkSrtp::parse(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

pub(crate) fn de_proxy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    parse_proxy(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

pub(crate) fn de_number_format<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    NumberFormat::parse(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

pub(crate) fn de_privacy<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    parse_privacy(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s.trim().to_string()))
}

/// A `Privacy` header value: priv-values of RFC 3323 (and `id`, RFC 3325) joined by `;`.
pub fn parse_privacy(s: &str) -> Result<Vec<&str>, String> {
    const VALUES: [&str; 6] = ["none", "id", "header", "user", "session", "critical"];
    let parts: Vec<&str> = s.split(';').map(str::trim).collect();
    if parts.iter().any(|p| !VALUES.contains(p)) {
        return Err(format!(
            "privacy {s:?}: expected {} joined by ';' / 隐私取值无效",
            VALUES.join(", ")
        ));
    }
    if parts.len() > 1 && parts.contains(&"none") {
        return Err(format!(
            "privacy {s:?}: 'none' stands alone / none 不能与其他值组合"
        ));
    }
    Ok(parts)
}

pub(crate) fn de_refuse_password<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<String>, D::Error> {
    let _ = serde::de::IgnoredAny::deserialize(d)?;
    Err(serde::de::Error::custom(
        "an inline password is refused: use password_env (an environment variable) or password_file (a secrets file) / 不允许在配置中写明文密码，请用 password_env 或 password_file",
    ))
}

// What a node writes to `<data_dir>/trunks.json` (the dialer, every 500 ms) and
// `waihu trunks status` and `GET /api/trunks` read.
/// What `<data_dir>/trunks.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusFile {
    /// Epoch milliseconds of the last write (the node rewrites it every 500 ms).
    pub updated_ms: i64,
    pub pid: u32,
    pub trunks: Vec<StatusEntry>,
    /// The node's speech recognition load, when it runs the voice bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asr: Option<AsrLoad>,
}

/// Utterances waiting for a recogniser slot, and the slots (the live wall's ASR queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsrLoad {
    pub waiting: u32,
    pub slots: u32,
}

/// One trunk in the status file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusEntry {
    pub name: String,
    pub state: String,
    pub registration: String,
    pub registration_status: Option<u16>,
    pub registrations: u64,
    pub in_flight: u32,
    pub channels: u32,
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    pub down_until_ms: Option<i64>,
}

impl From<TrunkStatus> for StatusEntry {
    fn from(s: TrunkStatus) -> Self {
        let registration = serde_norway::to_value(s.registration)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        StatusEntry {
            name: s.name,
            state: s.state.into(),
            registration,
            registration_status: s.registration_status,
            registrations: s.registrations,
            in_flight: s.in_flight,
            channels: s.channels,
            calls: s.calls,
            failures: s.failures,
            consecutive_failures: s.consecutive_failures,
            down_until_ms: s.down_until_ms,
        }
    }
}

/// One validated trunk.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkConfig {
    pub name: String,
    /// Where INVITEs (and REGISTERs) go, unless an outbound proxy is set.
    pub proxy: HostPort,
    pub transport: TrunkTransport,
    pub username: Option<String>,
    pub realm: Option<String>,
    pub password: Option<PasswordSource>,
    pub register: bool,
    /// Requested registration lifetime, seconds.
    pub expires: u32,
    /// SDES-SRTP policy of this trunk's calls.
    pub srtp: TrunkSrtp,
    pub outbound_proxy: Option<HostPort>,
    pub channels: u32,
    pub cps: f64,
    pub weight: u32,
    pub number_format: NumberFormat,
    /// Send the caller ID in `P-Asserted-Identity`.
    pub asserted_identity: bool,
    /// `Privacy` header value, validated.
    pub privacy: Option<String>,
    /// TLS only: the CA certificates (PEM) the proxy's certificate must chain to; the
    /// Mozilla roots without it. Relative paths are resolved against the trunk file.
    pub tls_ca: Option<PathBuf>,
    /// TLS only: the name the proxy's certificate must carry, also sent as SNI; the
    /// proxy's host without it.
    pub tls_server_name: Option<String>,
    /// What RFC 3263 resolution of the next hop may look up.
    pub dns: TrunkDns,
}

/// What the trunk file said that RFC 3263 resolution of the next hop depends on (the
/// dialer resolves with `waihu-resolve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct TrunkDns {
    /// The next hop names a port (`host:port`): A/AAAA only, no SRV.
    pub port_given: bool,
    /// `transport:` or `;transport=` was given: that transport's SRV, no NAPTR.
    pub transport_given: bool,
    /// `dns_server:` — else `WAIHU_DNS_SERVER`, else the system's resolver.
    pub server: Option<std::net::SocketAddr>,
}

/// Whether a `proxy`/`outbound_proxy` value names a port (`host:port`, `[v6]:port`,
/// `sip:host:port;...`), as opposed to leaving it to DNS SRV.
pub fn names_port(s: &str) -> bool {
    let s = s.trim();
    let s = s
        .strip_prefix("sips:")
        .or_else(|| s.strip_prefix("sip:"))
        .unwrap_or(s);
    let s = s.split_once(';').map_or(s, |(h, _)| h);
    let host_port = s.rsplit_once('@').map_or(s, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(rest) => rest
            .split_once(']')
            .is_some_and(|(_, a)| a.starts_with(':')),
        None => host_port.contains(':') && host_port.matches(':').count() == 1,
    }
}

/// A `dns_server` value: `ip:port`, `[v6]:port` or an IP (port 53).
pub fn parse_dns_server(s: &str) -> Result<std::net::SocketAddr, String> {
    let s = s.trim();
    if let Ok(a) = s.parse::<std::net::SocketAddr>() {
        return Ok(a);
    }
    s.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| {
            format!("{s:?}: expected an IP address with an optional port (127.0.0.1:5353) / DNS 服务器应为 IP 地址[:端口]")
        })
}

impl TrunkConfig {
    /// The next hop: the outbound proxy when one is set, else the proxy.
    pub fn next_hop(&self) -> &HostPort {
        self.outbound_proxy.as_ref().unwrap_or(&self.proxy)
    }

    /// Reads the password (environment or secrets file). `Ok(None)` without a source.
    pub fn read_password(&self) -> Result<Option<String>, String> {
        match &self.password {
            None => Ok(None),
            Some(PasswordSource::Env(v)) => std::env::var(v).map(Some).map_err(|_| {
                format!(
                    "trunk {}: environment variable {v} (password_env) is not set / 环境变量 {v} 未设置",
                    self.name
                )
            }),
            Some(PasswordSource::File(p)) => std::fs::read_to_string(p)
                .map(|s| Some(s.lines().next().unwrap_or("").to_string()))
                .map_err(|e| {
                    format!(
                        "trunk {}: password_file {}: {e} / 无法读取密码文件",
                        self.name,
                        p.display()
                    )
                }),
        }
    }
}

/// One problem in a trunk definition, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrunkIssue {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// Field path such as `trunks[1].proxy`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for TrunkIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: ", self.file)?,
            _ => write!(f, "{}: ", self.file)?,
        }
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found (at least one).
#[derive(Debug, Clone, thiserror::Error)]
pub struct TrunksError {
    pub issues: Vec<TrunkIssue>,
}

impl fmt::Display for TrunksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid trunks / 中继配置无效 ({} problem(s))",
            self.issues.len()
        )?;
        for i in &self.issues {
            write!(f, "\n  - {i}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrunksDoc {
    trunks: Vec<TrunkFile>,
}

/// Only what trunks need from a campaign file (the rest is validated by `Campaign`).
#[derive(Debug, Deserialize)]
struct CampaignTrunks {
    #[serde(default)]
    trunks: Vec<TrunkFile>,
    #[serde(default)]
    trunks_file: Option<String>,
}

fn de_error(
    file: &str,
    text: &str,
    e: serde_path_to_error::Error<serde_norway::Error>,
) -> TrunksError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let loc = inner.location();
    let mut message = inner.to_string();
    if let Some(l) = &loc {
        if let Some(m) =
            message.strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
        {
            message = m.to_string();
        }
    }
    // The parser prefixes the path (or the enclosing item's) to the message.
    if let Some((head, rest)) = message.split_once(": ") {
        if path.starts_with(head) {
            message = rest.to_string();
        }
    }
    // A field's own deserialiser fails with the position of the enclosing mapping: point
    // at the field instead.
    let mut loc = loc.map(|l| (l.line(), l.column()));
    if let Some((index, key)) = path
        .strip_prefix("trunks[")
        .and_then(|r| r.split_once("]."))
        .and_then(|(i, k)| Some((i.parse::<usize>().ok()?, k)))
    {
        if let Some(at) = locate(text, index, key).filter(|at| at.0 >= loc.map_or(0, |l| l.0)) {
            loc = Some(at);
        }
    }
    TrunksError {
        issues: vec![TrunkIssue {
            file: file.to_string(),
            line: loc.map(|l| l.0),
            column: loc.map(|l| l.1),
            path: if path.is_empty() || path == "." {
                "(document)".into()
            } else {
                path
            },
            message,
        }],
    }
}

/// Line and column (1-based) of `key:` inside the `index`-th item of the top-level
/// `trunks:` list (block style), for problems found after parsing.
fn locate(text: &str, index: usize, key: &str) -> Option<(usize, usize)> {
    let mut in_trunks = false;
    let mut item: Option<usize> = None;
    let mut item_indent = None;
    let mut first_of_item = None;
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 && !trimmed.starts_with('-') {
            in_trunks = trimmed.starts_with("trunks:");
            continue;
        }
        if !in_trunks {
            continue;
        }
        let mut col = indent;
        let mut body = trimmed;
        if let Some(rest) = trimmed.strip_prefix('-') {
            if item_indent.is_none_or(|i| i == indent) {
                item_indent = Some(indent);
                item = Some(item.map_or(0, |i| i + 1));
                let rest_trim = rest.trim_start();
                col = indent + 1 + (rest.len() - rest_trim.len());
                body = rest_trim;
                if item == Some(index) {
                    first_of_item = Some((n + 1, indent + 1));
                }
            }
        }
        if item == Some(index) && body.starts_with(key) && body[key.len()..].starts_with(':') {
            return Some((n + 1, col + 1));
        }
    }
    first_of_item
}

/// Validates trunk entries that have passed the parser. Entries without a `proxy` are
/// capacity-only (the simulator's); `need_proxy` makes a missing one an error.
fn check_entries(
    file: &str,
    base: &Path,
    text: &str,
    entries: &[TrunkFile],
    need_proxy: bool,
) -> Result<Vec<TrunkConfig>, TrunksError> {
    let mut issues = Vec::new();
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    for (i, t) in entries.iter().enumerate() {
        let mut bad = |key: &str, message: String| {
            let loc = locate(text, i, key);
            issues.push(TrunkIssue {
                file: file.to_string(),
                line: loc.map(|l| l.0),
                column: loc.map(|l| l.1),
                path: format!("trunks[{i}].{key}"),
                message,
            });
        };
        if t.name.trim().is_empty() {
            bad("name", "must not be empty / 名称不能为空".into());
        } else if !names.insert(t.name.clone()) {
            bad(
                "name",
                format!("duplicate trunk {:?} / 中继名称重复", t.name),
            );
        }
        if t.channels == 0 {
            bad("channels", "must be at least 1 / 至少为 1".into());
        }
        if !(t.cps.is_finite() && t.cps > 0.0) {
            bad("cps", "must be a positive number / 须为正数".into());
        }
        if t.weight == Some(0) {
            bad("weight", "must be at least 1 / 至少为 1".into());
        }
        let Some(proxy_text) = &t.proxy else {
            if need_proxy {
                bad(
                    "proxy",
                    "missing: where does this trunk send calls? / 缺少 proxy".into(),
                );
            }
            continue;
        };
        let Ok((proxy, uri_transport)) = parse_proxy(proxy_text) else {
            continue; // reported by the parser
        };
        let transport = match (&t.transport, uri_transport) {
            (Some(s), _) => parse_transport(s).unwrap_or_default(),
            (None, Some(u)) => u,
            (None, None) => TrunkTransport::Udp,
        };
        let password = match (&t.password_env, &t.password_file) {
            (Some(_), Some(_)) => {
                bad(
                    "password_file",
                    "give password_env or password_file, not both / 只能二选一".into(),
                );
                None
            }
            (Some(v), None) if v.trim().is_empty() => {
                bad("password_env", "must name a variable / 须为变量名".into());
                None
            }
            (Some(v), None) => Some(PasswordSource::Env(v.trim().to_string())),
            (None, Some(p)) => Some(PasswordSource::File(base.join(p))),
            (None, None) => None,
        };
        if password.is_some() && t.username.is_none() {
            bad(
                "username",
                "a password needs a username / 有密码时须提供 username".into(),
            );
        }
        let register = t.register.unwrap_or(false);
        if register && t.username.is_none() {
            bad(
                "register",
                "registration needs a username / 注册需要 username".into(),
            );
        }
        let expires = t.expires.unwrap_or(3600);
        if !(10..=86_400).contains(&expires) {
            bad(
                "expires",
                "must be between 10 and 86400 seconds / 须在 10 到 86400 秒之间".into(),
            );
        }
        let outbound_proxy = t
            .outbound_proxy
            .as_deref()
            .and_then(|o| parse_proxy(o).ok())
            .map(|o| o.0);
        if transport != TrunkTransport::Tls {
            if t.tls_ca.is_some() {
                bad("tls_ca", "only for transport tls / 仅用于 TLS 传输".into());
            }
            if t.tls_server_name.is_some() {
                bad(
                    "tls_server_name",
                    "only for transport tls / 仅用于 TLS 传输".into(),
                );
            }
        }
        if let Some(n) = &t.tls_server_name {
            let ok = !n.is_empty()
                && n.len() <= 253
                && n.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !ok {
                bad(
                    "tls_server_name",
                    format!("{n:?} is not a DNS name / 不是有效的域名"),
                );
            }
        }
        let dns_server = match t.dns_server.as_deref().map(parse_dns_server) {
            Some(Ok(a)) => Some(a),
            Some(Err(e)) => {
                bad("dns_server", e);
                None
            }
            None => None,
        };
        let next_hop_text = t.outbound_proxy.as_deref().unwrap_or(proxy_text);
        let dns = TrunkDns {
            port_given: names_port(next_hop_text),
            transport_given: t.transport.is_some() || uri_transport.is_some(),
            server: dns_server,
        };
        out.push(TrunkConfig {
            name: t.name.clone(),
            proxy,
            transport,
            username: t.username.clone(),
            realm: t.realm.clone(),
            password,
            register,
            expires,
            srtp: t
                .srtp
                .as_deref()
                .map(|v| TrunkSrtp::parse(v).unwrap_or_default())
                .unwrap_or_default(),
            outbound_proxy,
            channels: t.channels,
            cps: t.cps,
            weight: t.weight.unwrap_or(1),
            number_format: t
                .number_format
                .as_deref()
                .map(|n| NumberFormat::parse(n).unwrap_or_default())
                .unwrap_or_default(),
            asserted_identity: t.asserted_identity.unwrap_or(false),
            privacy: t.privacy.clone(),
            tls_ca: t.tls_ca.as_ref().map(|p| base.join(p)),
            tls_server_name: t.tls_server_name.clone(),
            dns,
        });
    }
    if issues.is_empty() {
        Ok(out)
    } else {
        Err(TrunksError { issues })
    }
}

/// Parses and validates a trunks file (`trunks:` at the top). `file` names it in errors;
/// `password_file` paths are relative to `base`.
pub fn parse_trunks_file(
    file: &str,
    base: &Path,
    text: &str,
) -> Result<Vec<TrunkConfig>, TrunksError> {
    let de = serde_norway::Deserializer::from_str(text);
    let doc: TrunksDoc =
        serde_path_to_error::deserialize(de).map_err(|e| de_error(file, text, e))?;
    if doc.trunks.is_empty() {
        return Err(TrunksError {
            issues: vec![TrunkIssue {
                file: file.into(),
                line: locate(text, 0, "trunks").or(Some((1, 1))).map(|l| l.0),
                column: Some(1),
                path: "trunks".into(),
                message: "no trunk defined / 未定义中继".into(),
            }],
        });
    }
    check_entries(file, base, text, &doc.trunks, true)
}

/// Reads and validates a trunks file from disk.
pub fn load_trunks_file(path: &Path) -> Result<Vec<TrunkConfig>, TrunksError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrunksError {
        issues: vec![TrunkIssue {
            file: file.clone(),
            line: None,
            column: None,
            path: "(file)".into(),
            message: format!("cannot read: {e} / 无法读取"),
        }],
    })?;
    parse_trunks_file(&file, path.parent().unwrap_or(Path::new(".")), &text)
}

/// The SIP trunks of a campaign file: those of its `trunks_file` (relative to the
/// campaign file), else its inline `trunks:` entries that name a `proxy`. Empty when it
/// has neither (the runtime then needs `--trunk` or `--trunks`).
pub fn campaign_trunks(
    campaign_path: &Path,
    campaign_text: &str,
) -> Result<Vec<TrunkConfig>, TrunksError> {
    let file = campaign_path.display().to_string();
    let base = campaign_path.parent().unwrap_or(Path::new("."));
    let de = serde_norway::Deserializer::from_str(campaign_text);
    let c: CampaignTrunks =
        serde_path_to_error::deserialize(de).map_err(|e| de_error(&file, campaign_text, e))?;
    if let Some(tf) = &c.trunks_file {
        return load_trunks_file(&base.join(tf));
    }
    if c.trunks.iter().all(|t| t.proxy.is_none()) {
        // Capacity-only trunks (planner and simulator): still validated.
        check_entries(&file, base, campaign_text, &c.trunks, false)?;
        return Ok(Vec::new());
    }
    check_entries(&file, base, campaign_text, &c.trunks, true)
}

// ---------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------

/// SIP final statuses (or `None`: timeout / transport failure) after which the same
/// attempt is retried on the next trunk: the trunk failed, not the callee.
pub fn is_failover_status(status: Option<u16>) -> bool {
    matches!(status, None | Some(408 | 500 | 503))
}

/// Failures in a row that take a trunk out.
pub const DOWN_AFTER_FAILURES: u32 = 3;

/// How long a trunk stays out after its `n`-th consecutive time down (1-based).
pub fn down_backoff_ms(n: u32) -> i64 {
    (5_000i64 << n.saturating_sub(1).min(6)).min(300_000)
}

/// Registration state of a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegState {
    /// The trunk does not register.
    NotRequired,
    Registering,
    Registered,
    Failed,
}

/// A trunk's live state, as `waihu trunks status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrunkStatus {
    pub name: String,
    /// `up`, `down` (in a failure back-off) or `unregistered`.
    pub state: &'static str,
    pub registration: RegState,
    /// Last SIP status of a failed registration.
    pub registration_status: Option<u16>,
    pub registrations: u64,
    pub in_flight: u32,
    pub channels: u32,
    pub calls: u64,
    pub failures: u64,
    pub consecutive_failures: u32,
    /// Epoch milliseconds until which the trunk is out.
    pub down_until_ms: Option<i64>,
}

#[derive(Debug, Clone)]
struct Live {
    in_flight: u32,
    tokens: f64,
    last_refill_ms: Option<i64>,
    consecutive: u32,
    downs: u32,
    down_until_ms: i64,
    reg: RegState,
    reg_status: Option<u16>,
    registrations: u64,
    calls: u64,
    failures: u64,
}

/// The runtime's trunk selector (sans-IO).
#[derive(Debug, Clone)]
pub struct TrunkSet {
    trunks: Vec<TrunkConfig>,
    live: Vec<Live>,
    rng: u64,
}

/// What became of a call placed on a trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrunkResult {
    /// The trunk carried the call (whatever the callee did).
    Carried,
    /// The trunk failed it ([`is_failover_status`]).
    Failed,
}

impl TrunkSet {
    pub fn new(trunks: Vec<TrunkConfig>, seed: u64) -> TrunkSet {
        let live = trunks
            .iter()
            .map(|t| Live {
                in_flight: 0,
                tokens: t.cps.max(1.0),
                last_refill_ms: None,
                consecutive: 0,
                downs: 0,
                down_until_ms: i64::MIN,
                reg: if t.register {
                    RegState::Registering
                } else {
                    RegState::NotRequired
                },
                reg_status: None,
                registrations: 0,
                calls: 0,
                failures: 0,
            })
            .collect();
        TrunkSet {
            trunks,
            live,
            rng: seed | 1,
        }
    }

    pub fn trunks(&self) -> &[TrunkConfig] {
        &self.trunks
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.trunks.iter().position(|t| t.name == name)
    }

    fn up(&self, i: usize, now_ms: i64) -> bool {
        let l = &self.live[i];
        now_ms >= l.down_until_ms && matches!(l.reg, RegState::NotRequired | RegState::Registered)
    }

    fn refill(&mut self, now_ms: i64) {
        for (l, t) in self.live.iter_mut().zip(&self.trunks) {
            if let Some(last) = l.last_refill_ms {
                if now_ms > last {
                    l.tokens =
                        (l.tokens + t.cps * (now_ms - last) as f64 / 1000.0).min(t.cps.max(1.0));
                }
            }
            l.last_refill_ms = Some(l.last_refill_ms.map_or(now_ms, |x| x.max(now_ms)));
        }
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Takes a channel and a CPS token on a trunk: `preferred` (the planner's choice) when
    /// it can take the call, else a weighted random choice among the others that can,
    /// never one in `exclude` (tried already for this attempt). `None`: none can now.
    pub fn acquire(
        &mut self,
        now_ms: i64,
        preferred: Option<usize>,
        exclude: &[usize],
    ) -> Option<usize> {
        self.refill(now_ms);
        let ok = |s: &TrunkSet, i: usize| {
            !exclude.contains(&i)
                && s.up(i, now_ms)
                && s.live[i].in_flight < s.trunks[i].channels
                && s.live[i].tokens >= 1.0
        };
        let pick = match preferred.filter(|&p| p < self.trunks.len() && ok(self, p)) {
            Some(p) => Some(p),
            None => {
                let total: u64 = (0..self.trunks.len())
                    .filter(|&i| ok(self, i))
                    .map(|i| u64::from(self.trunks[i].weight))
                    .sum();
                if total == 0 {
                    None
                } else {
                    let mut r = self.next_rand() % total;
                    (0..self.trunks.len()).filter(|&i| ok(self, i)).find(|&i| {
                        let w = u64::from(self.trunks[i].weight);
                        if r < w {
                            true
                        } else {
                            r -= w;
                            false
                        }
                    })
                }
            }
        }?;
        let l = &mut self.live[pick];
        l.in_flight += 1;
        l.tokens -= 1.0;
        l.calls += 1;
        Some(pick)
    }

    /// Whether any trunk outside `exclude` is up (it may be busy now).
    pub fn any_up(&self, now_ms: i64, exclude: &[usize]) -> bool {
        (0..self.trunks.len()).any(|i| !exclude.contains(&i) && self.up(i, now_ms))
    }

    /// Gives the channel back and records how the trunk did.
    pub fn release(&mut self, i: usize, now_ms: i64, result: TrunkResult) {
        let Some(l) = self.live.get_mut(i) else {
            return;
        };
        l.in_flight = l.in_flight.saturating_sub(1);
        match result {
            TrunkResult::Carried => {
                l.consecutive = 0;
                l.downs = 0;
            }
            TrunkResult::Failed => {
                l.failures += 1;
                l.consecutive += 1;
                if l.consecutive >= DOWN_AFTER_FAILURES && now_ms >= l.down_until_ms {
                    l.downs += 1;
                    l.down_until_ms = now_ms + down_backoff_ms(l.downs);
                    // Back from the back-off, one more failure takes it out again.
                    l.consecutive = DOWN_AFTER_FAILURES - 1;
                }
            }
        }
    }

    /// The trunk's registration changed (`status`: the failing SIP status, if any).
    pub fn set_registration(&mut self, i: usize, state: RegState, status: Option<u16>) {
        if let Some(l) = self.live.get_mut(i) {
            if state == RegState::Registered {
                l.registrations += 1;
            }
            l.reg = state;
            l.reg_status = status;
        }
    }

    pub fn status(&self, now_ms: i64) -> Vec<TrunkStatus> {
        self.trunks
            .iter()
            .zip(&self.live)
            .map(|(t, l)| {
                let down = now_ms < l.down_until_ms;
                TrunkStatus {
                    name: t.name.clone(),
                    state: if down {
                        "down"
                    } else if !matches!(l.reg, RegState::NotRequired | RegState::Registered) {
                        "unregistered"
                    } else {
                        "up"
                    },
                    registration: l.reg,
                    registration_status: l.reg_status,
                    registrations: l.registrations,
                    in_flight: l.in_flight,
                    channels: t.channels,
                    calls: l.calls,
                    failures: l.failures,
                    consecutive_failures: l.consecutive,
                    down_until_ms: down.then_some(l.down_until_ms),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(text: &str) -> Result<Vec<TrunkConfig>, TrunksError> {
        parse_trunks_file("trunks.yaml", Path::new("/etc/waihu"), text)
    }

    const GOOD: &str = "\
trunks:
  - name: carrier-a
    proxy: sip:sbc.example.com:5080;transport=tcp
    username: acme
    realm: example.com
    password_env: WAIHU_TRUNK_A
    register: true
    expires: 600
    channels: 30
    cps: 5
    weight: 3
    number_format: national
  - name: carrier-b
    proxy: 10.0.0.2
    outbound_proxy: 10.0.0.9:5070
    password_file: secrets/b.txt
    username: b
    channels: 10
    cps: 2.5
    number_format: prefix:17951
";

    #[test]
    fn good_file() {
        let t = parse(GOOD).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].proxy.to_string(), "sbc.example.com:5080");
        assert_eq!(t[0].transport, TrunkTransport::Tcp);
        assert!(t[0].register);
        assert_eq!(t[0].expires, 600);
        assert_eq!(
            t[0].password,
            Some(PasswordSource::Env("WAIHU_TRUNK_A".into()))
        );
        assert_eq!(t[0].number_format, NumberFormat::National);
        assert_eq!(t[1].proxy.port, 5060);
        assert_eq!(t[1].next_hop().to_string(), "10.0.0.9:5070");
        assert_eq!(
            t[1].password,
            Some(PasswordSource::File("/etc/waihu/secrets/b.txt".into()))
        );
        assert_eq!(t[1].number_format, NumberFormat::Prefix("17951".into()));
        assert_eq!(t[1].weight, 1);
    }

    fn first(text: &str) -> TrunkIssue {
        parse(text).unwrap_err().issues[0].clone()
    }

    #[test]
    fn inline_password_is_refused_with_its_position() {
        let e = first("trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 1\n    cps: 1\n    password: hunter2\n");
        assert_eq!((e.line, e.column), (Some(6), Some(5)), "{e}");
        assert!(e.message.contains("password_env"), "{e}");
        assert!(
            e.to_string()
                .starts_with("trunks.yaml:6:5: trunks[0].password: an inline"),
            "{e}"
        );
    }

    #[test]
    fn tls_trunks_take_sips_uris_a_ca_file_and_a_server_name() {
        let t = parse("trunks:\n  - name: a\n    proxy: sips:sbc.example.com\n    tls_ca: ca/carrier.pem\n    tls_server_name: sbc.example.com\n    channels: 1\n    cps: 1\n  - name: b\n    proxy: 10.0.0.1:5062\n    transport: tls\n    channels: 1\n    cps: 1\n").unwrap();
        assert_eq!(t[0].transport, TrunkTransport::Tls);
        assert_eq!(t[0].proxy.port, 5061, "sips: defaults to 5061");
        assert!(t[0].tls_ca.as_ref().unwrap().ends_with("ca/carrier.pem"));
        assert_eq!(t[0].tls_server_name.as_deref(), Some("sbc.example.com"));
        assert_eq!(
            (t[1].transport, t[1].proxy.port),
            (TrunkTransport::Tls, 5062)
        );
        let e = first("trunks:\n  - name: a\n    proxy: sips:x.example.com;transport=udp\n    channels: 1\n    cps: 1\n");
        assert_eq!((e.line, e.column), (Some(3), Some(5)), "{e}");
        assert!(e.message.contains("TLS only"), "{e}");
        let e = first("trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    tls_ca: ca.pem\n    channels: 1\n    cps: 1\n");
        assert_eq!(e.path, "trunks[0].tls_ca", "{e}");
        let e = first("trunks:\n  - name: a\n    proxy: sips:127.0.0.1\n    tls_server_name: bad name!\n    channels: 1\n    cps: 1\n");
        assert_eq!(e.path, "trunks[0].tls_server_name", "{e}");
        let e = first("trunks:\n  - name: a\n    proxy: 127.0.0.1\n    transport: quic\n    channels: 1\n    cps: 1\n");
        assert!(e.message.contains("udp, tcp or tls"), "{e}");
    }

    #[test]
    fn srtp_policy_per_trunk() {
        let t = |v: &str| {
            parse(&format!(
                "trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 1\n    cps: 1\n{v}"
            ))
        };
        assert_eq!(t("").unwrap()[0].srtp, TrunkSrtp::Off);
        assert_eq!(
            t("    srtp: mandatory\n").unwrap()[0].srtp,
            TrunkSrtp::Mandatory
        );
        assert_eq!(
            t("    srtp: optional\n").unwrap()[0].srtp,
            TrunkSrtp::Optional
        );
        assert_eq!(t("    srtp: off\n").unwrap()[0].srtp, TrunkSrtp::Off);
        assert_eq!(t("    srtp: false\n").unwrap()[0].srtp, TrunkSrtp::Off);
        for bad in ["    srtp: dtls\n", "    srtp: 3\n", "    srtp: true\n"] {
            let e = t(bad).unwrap_err().issues[0].clone();
            assert_eq!((e.line, e.column), (Some(6), Some(5)), "{bad}: {e}");
            assert!(
                e.message.contains("expected off, optional or mandatory"),
                "{e}"
            );
        }
    }

    #[test]
    fn identity_headers_are_validated_where_written() {
        let ok = parse("trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 1\n    cps: 1\n    asserted_identity: true\n    privacy: id;critical\n").unwrap();
        assert!(ok[0].asserted_identity);
        assert_eq!(ok[0].privacy.as_deref(), Some("id;critical"));
        let e = first("trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 1\n    cps: 1\n    privacy: hidden\n");
        assert_eq!(e.line, Some(6), "{e}");
        assert!(e.message.contains("privacy \"hidden\""), "{e}");
        assert!(parse_privacy("none;id").is_err());
        assert_eq!(parse_privacy("header; id").unwrap(), ["header", "id"]);
    }

    #[test]
    fn dns_hints_follow_what_the_file_names() {
        let t = parse("trunks:\n  - {name: a, proxy: carrier.example, channels: 1, cps: 1, dns_server: 127.0.0.1:5353}\n  - {name: b, proxy: carrier.example:5070, transport: tcp, channels: 1, cps: 1}\n  - {name: c, proxy: 'sip:carrier.example;transport=tcp', outbound_proxy: '[::1]:5080', channels: 1, cps: 1, dns_server: '10.0.0.2'}\n").unwrap();
        assert_eq!(
            t[0].dns,
            TrunkDns {
                port_given: false,
                transport_given: false,
                server: Some("127.0.0.1:5353".parse().unwrap())
            }
        );
        assert!(t[1].dns.port_given && t[1].dns.transport_given);
        assert!(t[2].dns.port_given, "the outbound proxy is the next hop");
        assert!(t[2].dns.transport_given);
        assert_eq!(t[2].dns.server, Some("10.0.0.2:53".parse().unwrap()));
        assert!(!names_port("sip:user@carrier.example;transport=udp"));
        assert!(names_port("sip:user@carrier.example:5062"));
        let e = first("trunks:\n  - name: a\n    proxy: carrier.example\n    channels: 1\n    cps: 1\n    dns_server: dns.example\n");
        assert_eq!(
            (e.line, e.path.as_str()),
            (Some(6), "trunks[0].dns_server"),
            "{e}"
        );
        assert!(e.message.contains("IP address"), "{e}");
    }

    #[test]
    fn semantic_problems_carry_positions() {
        let text = "trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    channels: 1\n    cps: 1\n  - name: a\n    proxy: 127.0.0.1:5061\n    channels: 0\n    cps: 1\n    register: true\n    password_env: X\n    password_file: y\n";
        let e = parse(text).unwrap_err();
        let got: Vec<String> = e.issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            got.iter()
                .map(|s| s.split(": ").next().unwrap())
                .collect::<Vec<_>>(),
            [
                "trunks.yaml:6:5",
                "trunks.yaml:8:5",
                "trunks.yaml:12:5",
                "trunks.yaml:10:5"
            ],
            "{got:#?}"
        );
    }

    #[test]
    fn unknown_fields_and_types_are_located() {
        let e =
            first("trunks:\n  - name: a\n    proxy: 127.0.0.1:5060\n    chanels: 1\n    cps: 1\n");
        assert_eq!(e.line, Some(4), "{e}");
        let e = first(
            "trunks:\n  - name: a\n    proxy: 127.0.0.1:99999\n    channels: 1\n    cps: 1\n",
        );
        assert_eq!((e.line, e.column), (Some(3), Some(5)), "{e}");
        let e = first("trunks:\n  - name: a\n    proxy: 1.2.3.4\n    channels: 1\n    cps: 1\n    number_format: local\n");
        assert_eq!(e.line, Some(6), "{e}");
        let e = first("trunks: []\n");
        assert_eq!(e.path, "trunks");
    }

    #[test]
    fn campaign_inline_and_file() {
        let dir = std::env::temp_dir().join(format!("waihu-trunks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("t.yaml"),
            "trunks:\n  - {name: x, proxy: 127.0.0.1:5070, channels: 2, cps: 1}\n",
        )
        .unwrap();
        let c = "name: c\ntrunks_file: t.yaml\nsegments: []\n";
        let t = campaign_trunks(&dir.join("c.yaml"), c).unwrap();
        assert_eq!(t[0].name, "x");
        let c = "name: c\ntrunks:\n  - name: cap\n    channels: 2\n    cps: 1\n";
        assert!(campaign_trunks(&dir.join("c.yaml"), c).unwrap().is_empty());
        let c = "name: c\ntrunks:\n  - name: cap\n    channels: 2\n    cps: 1\n    password: x\n";
        let e = campaign_trunks(&dir.join("c.yaml"), c).unwrap_err();
        assert_eq!(e.issues[0].line, Some(6));
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn trunk(name: &str, channels: u32, cps: f64, weight: u32) -> TrunkConfig {
        TrunkConfig {
            name: name.into(),
            proxy: HostPort {
                host: "127.0.0.1".into(),
                port: 5060,
            },
            transport: TrunkTransport::Udp,
            username: None,
            realm: None,
            password: None,
            register: false,
            expires: 3600,
            srtp: TrunkSrtp::Off,
            outbound_proxy: None,
            channels,
            cps,
            weight,
            number_format: NumberFormat::E164,
            asserted_identity: false,
            privacy: None,
            tls_ca: None,
            tls_server_name: None,
            dns: Default::default(),
        }
    }

    #[test]
    fn preferred_then_weighted_then_failover_and_down() {
        let mut s = TrunkSet::new(vec![trunk("a", 2, 100.0, 1), trunk("b", 100, 100.0, 3)], 9);
        assert_eq!(s.acquire(0, Some(0), &[]), Some(0));
        assert_eq!(s.acquire(0, Some(0), &[]), Some(0));
        // a is full: b.
        assert_eq!(s.acquire(0, Some(0), &[]), Some(1));
        s.release(0, 0, TrunkResult::Failed);
        s.release(0, 0, TrunkResult::Failed);
        // Failover excludes the trunk tried.
        assert_eq!(s.acquire(0, None, &[1]), Some(0));
        s.release(0, 10, TrunkResult::Failed);
        let st = s.status(10);
        assert_eq!(st[0].state, "down");
        assert_eq!(st[0].down_until_ms, Some(10 + 5_000));
        assert_eq!(s.acquire(20, Some(0), &[]), Some(1));
        assert!(!s.any_up(20, &[1]));
        // Back after the back-off; one more failure: out for twice as long.
        assert_eq!(s.acquire(5_010, Some(0), &[]), Some(0));
        s.release(0, 5_010, TrunkResult::Failed);
        assert_eq!(s.status(5_010)[0].down_until_ms, Some(15_010));
    }

    #[test]
    fn registration_gates_a_trunk() {
        let mut t = trunk("r", 5, 10.0, 1);
        t.register = true;
        let mut s = TrunkSet::new(vec![t], 1);
        assert_eq!(s.acquire(0, None, &[]), None);
        assert_eq!(s.status(0)[0].state, "unregistered");
        s.set_registration(0, RegState::Registered, None);
        assert_eq!(s.acquire(0, None, &[]), Some(0));
        s.set_registration(0, RegState::Failed, Some(403));
        assert_eq!(s.acquire(0, None, &[]), None);
    }

    proptest! {
        #[test]
        fn channels_and_cps_always_hold(
            seed in any::<u64>(),
            ops in proptest::collection::vec((0u8..3, 0usize..3, 0i64..400), 1..300),
        ) {
            let mut s = TrunkSet::new(
                vec![trunk("a", 3, 2.0, 1), trunk("b", 5, 4.0, 2), trunk("c", 1, 1.0, 5)],
                seed,
            );
            let mut now = 0i64;
            let mut held: Vec<usize> = Vec::new();
            let mut starts: Vec<Vec<i64>> = vec![Vec::new(); 3];
            for (op, i, dt) in ops {
                now += dt;
                match op {
                    0 | 1 => {
                        if let Some(t) = s.acquire(now, Some(i), &[]) {
                            held.push(t);
                            starts[t].push(now);
                        }
                    }
                    _ => {
                        if let Some(t) = held.pop() {
                            s.release(t, now, if i == 0 { TrunkResult::Failed } else { TrunkResult::Carried });
                        }
                    }
                }
                for (k, st) in s.status(now).iter().enumerate() {
                    prop_assert!(st.in_flight <= st.channels);
                    prop_assert_eq!(st.in_flight as usize, held.iter().filter(|&&h| h == k).count());
                }
            }
            // CPS: in any 1 s window at most burst (cps, at least 1) + cps calls started.
            for (k, cps) in [2.0f64, 4.0, 1.0].iter().enumerate() {
                for &t0 in &starts[k] {
                    let n = starts[k].iter().filter(|&&t| t >= t0 && t < t0 + 1000).count();
                    prop_assert!(n as f64 <= cps.max(1.0) + cps + 1e-9, "trunk {} {} calls in 1 s", k, n);
                }
            }
        }

        #[test]
        fn proxy_parser_never_panics(s in ".{0,40}") {
            let _ = parse_proxy(&s);
        }

        #[test]
        fn any_yaml_never_panics(s in "[ -~\n]{0,200}") {
            let _ = parse(&s);
            let _ = campaign_trunks(Path::new("c.yaml"), &s);
        }
    }
}
