//! SIP messages: a tolerant parser, a serialiser and a TCP stream framer.
//!
//! Written here rather than taken from a crate so that real-world quirks stay under our
//! control: compact header names (`v`, `f`, `t`, `i`, `m`, `l`, ...), folded header lines,
//! case-insensitive names, several Via values joined by commas, quoted strings containing
//! commas, bare `\n` line ends, and `Content-Length` missing on UDP. Headers keep the order
//! and spelling they arrived with; lookups are by canonical name.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

/// Largest header section we accept; bigger is an attack or garbage.
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Largest body we accept (SDP is a few hundred bytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Why a datagram or stream chunk is not a SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("SIP message is empty")]
    Empty,
    #[error("SIP message has no end of header section (blank line)")]
    NoHeaderEnd,
    #[error("SIP message header section is larger than {MAX_HEADER_BYTES} bytes")]
    TooLarge,
    #[error("SIP start line is malformed: {0:?}")]
    StartLine(String),
    #[error("SIP header line {line} is malformed: {text:?}")]
    HeaderLine { line: usize, text: String },
    #[error("SIP header {name} is missing")]
    Missing { name: &'static str },
    #[error("SIP header {name} is malformed: {value:?}")]
    BadHeader { name: &'static str, value: String },
    #[error("SIP Content-Length {declared} exceeds the {available} bytes received")]
    ShortBody { declared: usize, available: usize },
    #[error("SIP message is not UTF-8 in its header section")]
    NotUtf8,
}

/// Why a TCP stream cannot be framed any more (the connection should be closed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SIP stream header section exceeds {MAX_HEADER_BYTES} bytes without a blank line")]
    HeaderTooLarge,
    #[error("SIP stream Content-Length is malformed or larger than {MAX_BODY_BYTES}: {0:?}")]
    BadContentLength(String),
}

/// Ordered header list with case-insensitive, compact-form-aware lookup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<(String, String)>);

/// Expands compact header names (RFC 3261 §7.3.3 and later RFCs) to their full form.
pub fn canonical_name(name: &str) -> &str {
    if name.len() == 1 {
        match name.as_bytes()[0].to_ascii_lowercase() {
            b'v' => return "Via",
            b'f' => return "From",
            b't' => return "To",
            b'i' => return "Call-ID",
            b'm' => return "Contact",
            b'l' => return "Content-Length",
            b'c' => return "Content-Type",
            b'k' => return "Supported",
            b's' => return "Subject",
            b'e' => return "Content-Encoding",
            b'o' => return "Event",
            b'r' => return "Refer-To",
            b'u' => return "Allow-Events",
            b'x' => return "Session-Expires",
            _ => {}
        }
    }
    name
}

fn name_eq(a: &str, b: &str) -> bool {
    canonical_name(a).eq_ignore_ascii_case(canonical_name(b))
}

impl Headers {
    /// First value of header `name` (case-insensitive, compact forms accepted).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| name_eq(n, name))
            .map(|(_, v)| v.as_str())
    }
    /// All values of `name`, with comma-joined values split (outside quotes and `<>`).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| name_eq(n, name))
            .flat_map(|(_, v)| split_comma(v))
            .collect()
    }
    /// Raw header lines named `name`, unsplit (for headers whose values contain commas,
    /// like WWW-Authenticate).
    pub fn get_lines(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| name_eq(n, name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !name_eq(n, name));
    }
    /// Replaces all values of `name` with one value (appended at the end if absent).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        if let Some(pos) = self.0.iter().position(|(n, _)| name_eq(n, name)) {
            self.0[pos].1 = value;
            let mut i = 0;
            self.0.retain(|(n, _)| {
                i += 1;
                i - 1 == pos || !name_eq(n, name)
            });
        } else {
            self.0.push((name.to_string(), value));
        }
    }
}

/// Splits a header value at commas that are outside quoted strings and `<...>`.
pub fn split_comma(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut escaped) = (false, false, false);
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                let s = v[start..i].trim();
                if !s.is_empty() {
                    out.push(s);
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    let s = v[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// A parsed SIP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// Parses one complete message (a UDP datagram or one framed TCP message).
    ///
    /// Tolerates bare `\n`, folded lines, compact names, a missing Content-Length (the
    /// rest of the datagram is the body) and trailing bytes beyond Content-Length.
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        let start = bytes
            .iter()
            .position(|b| !matches!(b, b'\r' | b'\n'))
            .ok_or(ParseError::Empty)?;
        let bytes = &bytes[start..];
        let (head_len, body_start) =
            find_header_end(bytes).ok_or(if bytes.len() > MAX_HEADER_BYTES {
                ParseError::TooLarge
            } else {
                ParseError::NoHeaderEnd
            })?;
        if head_len > MAX_HEADER_BYTES {
            return Err(ParseError::TooLarge);
        }
        let head = std::str::from_utf8(&bytes[..head_len]).map_err(|_| ParseError::NotUtf8)?;
        let mut lines: Vec<&str> = head
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let first = lines.first().copied().ok_or(ParseError::Empty)?;
        let mut headers = Headers::default();
        for (idx, line) in lines.iter().enumerate().skip(1) {
            if line.starts_with([' ', '\t']) {
                // Folded continuation (RFC 3261 §7.3.1): joins the previous value with one space.
                match headers.0.last_mut() {
                    Some((_, v)) => {
                        v.push(' ');
                        v.push_str(line.trim());
                    }
                    None => {
                        return Err(ParseError::HeaderLine {
                            line: idx + 1,
                            text: line.to_string(),
                        })
                    }
                }
                continue;
            }
            if line.is_empty() {
                continue;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| ParseError::HeaderLine {
                line: idx + 1,
                text: line.to_string(),
            })?;
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return Err(ParseError::HeaderLine {
                    line: idx + 1,
                    text: line.to_string(),
                });
            }
            headers.push(canonical_name(name), value.trim());
        }
        let rest = &bytes[body_start..];
        let body = match headers.get("Content-Length") {
            Some(v) => {
                let declared: usize = v.trim().parse().map_err(|_| ParseError::BadHeader {
                    name: "Content-Length",
                    value: v.to_string(),
                })?;
                if declared > rest.len() {
                    return Err(ParseError::ShortBody {
                        declared,
                        available: rest.len(),
                    });
                }
                rest[..declared].to_vec()
            }
            None => rest.to_vec(),
        };
        if let Some(status_line) = first.strip_prefix("SIP/2.0 ") {
            let mut it = status_line.trim_start().splitn(2, ' ');
            let code = it.next().unwrap_or("");
            let status: u16 = code
                .parse()
                .map_err(|_| ParseError::StartLine(first.to_string()))?;
            if !(100..700).contains(&status) {
                return Err(ParseError::StartLine(first.to_string()));
            }
            let reason = it.next().unwrap_or("").trim().to_string();
            Ok(Message::Response(Response {
                status,
                reason,
                headers,
                body,
            }))
        } else {
            let mut it = first.split_whitespace();
            let (Some(method), Some(uri), Some(ver), None) =
                (it.next(), it.next(), it.next(), it.next())
            else {
                return Err(ParseError::StartLine(first.to_string()));
            };
            if !ver.eq_ignore_ascii_case("SIP/2.0")
                || !method
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
                || !uri.contains(':')
            {
                return Err(ParseError::StartLine(first.to_string()));
            }
            Ok(Message::Request(Request {
                method: method.to_string(),
                uri: uri.to_string(),
                headers,
                body,
            }))
        }
    }

    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

/// Returns (length of header section without the blank line, offset of the body).
fn find_header_end(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\n' {
            if b.get(i + 1) == Some(&b'\n') {
                return Some((i + 1, i + 2));
            }
            if b.get(i + 1) == Some(&b'\r') && b.get(i + 2) == Some(&b'\n') {
                return Some((i + 1, i + 3));
            }
        }
        i += 1;
    }
    None
}

fn write_headers(out: &mut String, headers: &Headers, body: &[u8]) {
    for (n, v) in &headers.0 {
        if n.eq_ignore_ascii_case("Content-Length") || n == "l" {
            continue;
        }
        let _ = write!(out, "{n}: {v}\r\n");
    }
    let _ = write!(out, "Content-Length: {}\r\n\r\n", body.len());
}

impl Request {
    /// Serialises with a freshly computed Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut s, &self.headers, &self.body);
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

impl Response {
    /// Serialises with a freshly computed Content-Length.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut s = format!("SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut s, &self.headers, &self.body);
        let mut out = s.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// Splits a SIP byte stream (TCP) into messages by Content-Length (RFC 3261 §18.3).
///
/// Leading CRLF keep-alives (RFC 5626 "ping") are skipped. A missing Content-Length on a
/// stream counts as 0.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

impl StreamFramer {
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends bytes read from the connection.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// Bytes buffered but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
    /// Next complete message, `Ok(None)` when more bytes are needed, `Err` when the stream
    /// is garbage and the connection should be closed.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let skip = self
            .buf
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        if skip > 0 {
            self.buf.drain(..skip);
        }
        let Some((head_len, body_start)) = find_header_end(&self.buf) else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(FrameError::HeaderTooLarge);
            }
            return Ok(None);
        };
        if head_len > MAX_HEADER_BYTES {
            return Err(FrameError::HeaderTooLarge);
        }
        let head = String::from_utf8_lossy(&self.buf[..head_len]);
        let mut len = 0usize;
        for line in head.split('\n') {
            if let Some((n, v)) = line.split_once(':') {
                if name_eq(n.trim(), "Content-Length") {
                    let v = v.trim();
                    len = v
                        .parse()
                        .map_err(|_| FrameError::BadContentLength(v.to_string()))?;
                    if len > MAX_BODY_BYTES {
                        return Err(FrameError::BadContentLength(v.to_string()));
                    }
                }
            }
        }
        if self.buf.len() < body_start + len {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..body_start + len).collect();
        Ok(Some(msg))
    }
}

/// `;name=value;flag` parameters, in order.
pub type Params = Vec<(String, Option<String>)>;

fn parse_params(s: &str) -> Params {
    split_outside_quotes(s, ';')
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), Some(v.trim().to_string())),
            None => (p.to_string(), None),
        })
        .collect()
}

fn split_outside_quotes(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut quoted, mut start) = (false, 0);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Value of parameter `name` (case-insensitive).
pub fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_deref().unwrap_or(""))
}

/// A `sip:` / `sips:` / `tel:` URI, split just enough for routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl SipUri {
    pub fn parse(s: &str) -> Option<SipUri> {
        let s = s.trim();
        let (scheme, rest) = s.split_once(':')?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphabetic()) {
            return None;
        }
        let rest = rest.split('?').next().unwrap_or(rest);
        let (userhost, params) = match rest.find(';') {
            Some(i) => (&rest[..i], parse_params(&rest[i + 1..])),
            None => (rest, Vec::new()),
        };
        let (user, hostport) = match userhost.rfind('@') {
            Some(i) => (Some(userhost[..i].to_string()), &userhost[i + 1..]),
            None => (None, userhost),
        };
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let end = v6.find(']')?;
            let port = match v6[end + 1..].strip_prefix(':') {
                Some(p) => Some(p.parse().ok()?),
                None => None,
            };
            (format!("[{}]", &v6[..end]), port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse().ok()?)),
                None => (hostport.to_string(), None),
            }
        };
        if host.is_empty() {
            return None;
        }
        Some(SipUri {
            scheme: scheme.to_ascii_lowercase(),
            user,
            host,
            port,
            params,
        })
    }

    /// The address to send to when the host is an IP literal (no DNS in a sans-IO core).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        let default = if self.scheme == "sips" { 5061 } else { 5060 };
        Some(SocketAddr::new(ip, self.port.unwrap_or(default)))
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }
}

/// `"Display" <uri>;params` or `uri;params` (From, To, Contact, Route, Record-Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    pub uri: String,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(s: &str) -> Option<NameAddr> {
        let s = s.trim();
        if let Some(lt) = find_outside_quotes(s, '<') {
            let gt = s[lt..].find('>')? + lt;
            let display = s[..lt].trim().trim_matches('"').trim();
            Some(NameAddr {
                display: (!display.is_empty()).then(|| display.to_string()),
                uri: s[lt + 1..gt].trim().to_string(),
                params: parse_params(s[gt + 1..].trim_start_matches(';')),
            })
        } else {
            // Without angle brackets, parameters belong to the header, not the URI.
            let (uri, params) = match s.find(';') {
                Some(i) => (&s[..i], parse_params(&s[i + 1..])),
                None => (s, Vec::new()),
            };
            if uri.is_empty() {
                return None;
            }
            Some(NameAddr {
                display: None,
                uri: uri.to_string(),
                params,
            })
        }
    }
    pub fn tag(&self) -> Option<&str> {
        param(&self.params, "tag")
    }
}

fn find_outside_quotes(s: &str, c: char) -> Option<usize> {
    let mut quoted = false;
    for (i, ch) in s.char_indices() {
        if ch == '"' {
            quoted = !quoted;
        } else if ch == c && !quoted {
            return Some(i);
        }
    }
    None
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub sent_by: String,
    pub params: Params,
}

impl Via {
    pub fn parse(s: &str) -> Option<Via> {
        let s = s.trim();
        let (proto, rest) = s.split_once(|c: char| c.is_whitespace())?;
        let mut parts = proto.split('/');
        let (Some(name), Some(_ver), Some(transport)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        if !name.eq_ignore_ascii_case("SIP") {
            return None;
        }
        let rest = rest.trim();
        let (sent_by, params) = match rest.find(';') {
            Some(i) => (rest[..i].trim(), parse_params(&rest[i + 1..])),
            None => (rest, Vec::new()),
        };
        if sent_by.is_empty() {
            return None;
        }
        Some(Via {
            transport: transport.to_ascii_uppercase(),
            sent_by: sent_by.to_ascii_lowercase(),
            params,
        })
    }
    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch")
    }
}

/// `CSeq: 42 INVITE`.
pub fn parse_cseq(s: &str) -> Option<(u32, String)> {
    let mut it = s.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?.to_string();
    Some((n, m))
}

/// Standard reason phrase for a status code.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        415 => "Unsupported Media Type",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quirky_request() {
        let raw = b"\r\nINVITE sip:bob@127.0.0.1:5062 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP 10.0.0.2;branch=z9hG4bKb\r\n\
f: \"Al, ice\" <sip:alice@x>;tag=1\r\nT: <sip:bob@y>\r\ni: abc@x\r\nCSEQ: 1 INVITE\r\n\
Subject: folded\r\n  line\r\nl: 4\r\n\r\nv=0\r\nextra";
        let Message::Request(r) = Message::parse(raw).unwrap() else {
            panic!()
        };
        assert_eq!(r.method, "INVITE");
        let vias = r.headers.get_all("via");
        assert_eq!(vias.len(), 2);
        assert_eq!(Via::parse(vias[1]).unwrap().branch(), Some("z9hG4bKb"));
        let from = NameAddr::parse(r.headers.get("From").unwrap()).unwrap();
        assert_eq!(from.display.as_deref(), Some("Al, ice"));
        assert_eq!(from.tag(), Some("1"));
        assert_eq!(r.headers.get("subject"), Some("folded line"));
        assert_eq!(r.body, b"v=0\r");
        assert_eq!(r.headers.get("call-id"), Some("abc@x"));
    }

    #[test]
    fn roundtrip_and_framer() {
        let raw = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nContent-Length: 0\r\n\r\n";
        let Message::Response(r) = Message::parse(raw).unwrap() else {
            panic!()
        };
        assert_eq!(r.status, 180);
        let bytes = r.to_bytes();
        let mut f = StreamFramer::new();
        f.push(b"\r\n\r\n");
        f.push(&bytes[..10]);
        assert_eq!(f.next_message().unwrap(), None);
        f.push(&bytes[10..]);
        f.push(&bytes);
        assert_eq!(f.next_message().unwrap().unwrap(), bytes);
        assert_eq!(f.next_message().unwrap().unwrap(), bytes);
        assert_eq!(f.next_message().unwrap(), None);
    }

    #[test]
    fn uri_forms() {
        let u = SipUri::parse("sip:bob@127.0.0.1:5062;transport=tcp").unwrap();
        assert_eq!(u.socket_addr(), Some("127.0.0.1:5062".parse().unwrap()));
        assert_eq!(u.param("transport"), Some("tcp"));
        let u = SipUri::parse("sip:[::1]:5070").unwrap();
        assert_eq!(u.socket_addr(), Some("[::1]:5070".parse().unwrap()));
        assert!(SipUri::parse("sip:bob@host:notaport").is_none());
    }

    #[test]
    fn rejects_garbage() {
        assert!(Message::parse(b"").is_err());
        assert!(Message::parse(b"hello\r\n\r\n").is_err());
        assert!(Message::parse(b"SIP/2.0 99 x\r\n\r\n").is_err());
        assert!(Message::parse(b"INVITE sip:a SIP/2.0\r\nl: 10\r\n\r\nab").is_err());
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = Message::parse(&bytes);
            let mut f = StreamFramer::new();
            f.push(&bytes);
            while let Ok(Some(_)) = f.next_message() {}
        }

        #[test]
        fn never_panics_on_sip_like(s in "(INVITE|SIP/2.0|BYE) [ -~]{0,20}( SIP/2.0)?\r\n([A-Za-z-]{1,8}:[ -~]{0,30}\r\n){0,6}\r\n[ -~]{0,40}") {
            if let Ok(m) = Message::parse(s.as_bytes()) {
                for (_, v) in &m.headers().0 {
                    let _ = NameAddr::parse(v);
                    let _ = Via::parse(v);
                    let _ = SipUri::parse(v);
                    let _ = parse_cseq(v);
                }
            }
        }
    }
}
