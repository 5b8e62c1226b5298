//! SDP (RFC 4566) parsing/serialising and offer/answer (RFC 3264) for telephony audio:
//! PCMU (0), PCMA (8) and telephone-event (RFC 4733), ptime, direction attributes and hold,
//! and SDES-SRTP keys (RFC 4568 `a=crypto`, suite `AES_CM_128_HMAC_SHA1_80` only).
//!
//! Written here because telephony needs only a sliver of SDP and the answer logic (codec
//! choice, direction mirroring, where to send RTP) is ours anyway; the parser is lenient
//! about unknown lines and strict only about what we use.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Why an SDP body cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP line {line} is malformed: {text:?}")]
    Line { line: usize, text: String },
    #[error("SDP field {field} is malformed at line {line}: {value:?}")]
    Field {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("SDP has no audio media line")]
    NoAudio,
    #[error("SDP has no connection address (c=) for the audio stream")]
    NoConnection,
    #[error("SDP offers no codec we support (PCMU, PCMA); offered payload types {0:?}")]
    NoCommonCodec(Vec<u8>),
    #[error("SDP is not UTF-8")]
    NotUtf8,
    #[error("SDP a=crypto is malformed: {0}")]
    Crypto(String),
    #[error("SDP offer requires SRTP (RTP/SAVP) but SRTP is off for this call")]
    SrtpNotEnabled,
    #[error(
        "SRTP is mandatory but the peer's SDP has no usable a=crypto (AES_CM_128_HMAC_SHA1_80)"
    )]
    SrtpRequired,
}

/// Whether a call protects its media with SDES-SRTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SrtpMode {
    /// Plain RTP; an SRTP-only (`RTP/SAVP`) offer is refused.
    #[default]
    Off,
    /// Offer `RTP/AVP` with `a=crypto` (RFC 4568 best effort, what baresip's `srtp` does):
    /// SRTP when the answer carries a key, plain RTP otherwise.
    Optional,
    /// Offer `RTP/SAVP` with `a=crypto`; an answer without a usable key fails the call.
    Mandatory,
}

impl SrtpMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SrtpMode::Off => "off",
            SrtpMode::Optional => "optional",
            SrtpMode::Mandatory => "mandatory",
        }
    }
    pub fn parse(s: &str) -> Option<SrtpMode> {
        Some(match s {
            "off" => SrtpMode::Off,
            "optional" => SrtpMode::Optional,
            "mandatory" => SrtpMode::Mandatory,
            _ => return None,
        })
    }
}

/// The one crypto suite we speak.
pub const SRTP_SUITE: &str = "AES_CM_128_HMAC_SHA1_80";

/// An SDES key from an `a=crypto` line: its tag and the 30-byte master key || salt.
#[derive(Clone, PartialEq, Eq)]
pub struct SdesKey {
    pub tag: u32,
    pub key_salt: [u8; 30],
}

impl fmt::Debug for SdesKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keys never reach logs.
        write!(f, "SdesKey {{ tag: {}, .. }}", self.tag)
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

impl SdesKey {
    /// The `a=crypto` value: `<tag> AES_CM_128_HMAC_SHA1_80 inline:<base64>`.
    pub fn to_attr(&self) -> String {
        use base64::Engine;
        format!(
            "{} {SRTP_SUITE} inline:{}",
            self.tag,
            b64().encode(self.key_salt)
        )
    }

    /// Parses one `a=crypto` value. `Ok(None)`: well-formed but not usable by us (another
    /// suite, an MKI, session parameters); `Err`: malformed.
    pub fn parse_attr(v: &str) -> Result<Option<SdesKey>, SdpError> {
        use base64::Engine;
        let bad = |why: &str| SdpError::Crypto(format!("{why}: {v:?}"));
        let mut it = v.split_whitespace();
        let tag: u32 = it
            .next()
            .and_then(|t| t.parse().ok())
            .filter(|t| *t < 1_000_000_000)
            .ok_or_else(|| bad("tag is not a number"))?;
        let suite = it.next().ok_or_else(|| bad("no crypto suite"))?;
        let params = it.next().ok_or_else(|| bad("no key parameters"))?;
        let session_params = it.next().is_some();
        if !suite.eq_ignore_ascii_case(SRTP_SUITE) {
            return Ok(None);
        }
        // Several keys (`;`) would need MKIs; one key, optional lifetime, no MKI.
        if params.contains(';') {
            return Ok(None);
        }
        let inline = params
            .strip_prefix("inline:")
            .ok_or_else(|| bad("key method is not inline:"))?;
        let mut parts = inline.split('|');
        let key = parts.next().unwrap_or("");
        let mut mki = false;
        for p in parts {
            if p.contains(':') {
                mki = true;
            }
        }
        let raw = b64().decode(key).map_err(|_| bad("key is not base64"))?;
        let key_salt: [u8; 30] = raw
            .as_slice()
            .try_into()
            .map_err(|_| bad("key||salt is not 30 bytes"))?;
        if mki || session_params {
            // UNENCRYPTED_SRTP, KDR, an MKI field in every packet...: not supported.
            return Ok(None);
        }
        Ok(Some(SdesKey { tag, key_salt }))
    }
}

impl MediaDesc {
    /// The first usable SDES key of this media section (`Ok(None)`: none offered).
    pub fn sdes_key(&self) -> Result<Option<SdesKey>, SdpError> {
        for (name, v) in &self.attrs {
            if name.eq_ignore_ascii_case("crypto") {
                if let Some(k) = SdesKey::parse_attr(v.as_deref().unwrap_or(""))? {
                    return Ok(Some(k));
                }
            }
        }
        Ok(None)
    }

    fn secure_proto(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/SAVP") || self.proto.eq_ignore_ascii_case("RTP/SAVPF")
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }
    fn parse(s: &str) -> Option<Direction> {
        Some(match s {
            "sendrecv" => Direction::SendRecv,
            "sendonly" => Direction::SendOnly,
            "recvonly" => Direction::RecvOnly,
            "inactive" => Direction::Inactive,
            _ => return None,
        })
    }
    /// The direction an answer takes for an offer with this direction (RFC 3264 §6.1).
    pub fn answer_for(self) -> Direction {
        match self {
            Direction::SendRecv => Direction::SendRecv,
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            Direction::Inactive => Direction::Inactive,
        }
    }
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// Audio codecs we speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, static payload type 0.
    Pcmu,
    /// G.711 A-law, static payload type 8.
    Pcma,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
        }
    }
    pub fn static_pt(self) -> u8 {
        match self {
            Codec::Pcmu => 0,
            Codec::Pcma => 8,
        }
    }
}

/// One `m=` section with its attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDesc {
    pub kind: String,
    pub port: u16,
    pub proto: String,
    pub formats: Vec<u8>,
    /// `a=rtpmap:<pt> <name>/<rate>[/<channels>]` as (pt, name, rate).
    pub rtpmap: Vec<(u8, String, u32)>,
    /// `a=fmtp:<pt> <params>`.
    pub fmtp: Vec<(u8, String)>,
    pub ptime: Option<u32>,
    pub direction: Option<Direction>,
    pub connection: Option<IpAddr>,
    /// Other attributes kept verbatim (name, value).
    pub attrs: Vec<(String, Option<String>)>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub origin_user: String,
    pub session_id: u64,
    pub session_version: u64,
    pub origin_addr: IpAddr,
    pub session_name: String,
    pub connection: Option<IpAddr>,
    pub direction: Option<Direction>,
    pub media: Vec<MediaDesc>,
}

/// What an offer/answer exchange settled on: where to send RTP and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// Where the peer wants RTP (its connection address + media port).
    pub remote_rtp: SocketAddr,
    /// Where the peer wants RTCP: its `a=rtcp:` (RFC 3605), the RTP address itself with
    /// `a=rtcp-mux` (RFC 5761), else the RTP port + 1 (RFC 3550).
    pub remote_rtcp: SocketAddr,
    pub codec: Codec,
    /// RTP payload type of `codec` (static 0/8).
    pub payload_type: u8,
    /// Payload type of telephone-event (RFC 4733) if both sides support it.
    pub dtmf_payload_type: Option<u8>,
    /// Packetisation time in milliseconds (20 unless the peer asked otherwise).
    pub ptime: u32,
    /// Our direction: whether we should send and/or expect media (hold = not sendrecv).
    pub direction: Direction,
    /// The peer's SDES-SRTP key when the media is to be SRTP (it protects what the peer
    /// sends); `None`: plain RTP.
    pub srtp: Option<SdesKey>,
}

/// The peer's RTCP address for media section `m` whose RTP goes to `conn`:`m.port`.
fn rtcp_addr(m: &MediaDesc, conn: IpAddr) -> SocketAddr {
    let attr = |name: &str| m.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name));
    if attr("rtcp-mux").is_some() {
        return SocketAddr::new(conn, m.port);
    }
    if let Some((_, Some(v))) = attr("rtcp") {
        // `a=rtcp:<port> [IN IP4 <addr>]`
        let mut it = v.split_whitespace();
        if let Some(port) = it.next().and_then(|p| p.parse::<u16>().ok()) {
            let addr = match (it.next(), it.next(), it.next()) {
                (Some(net), Some(_), Some(a)) if net.eq_ignore_ascii_case("IN") => {
                    a.parse().unwrap_or(conn)
                }
                _ => conn,
            };
            return SocketAddr::new(addr, port);
        }
    }
    SocketAddr::new(conn, m.port.wrapping_add(1))
}

impl Sdp {
    /// An audio offer from `rtp` (our RTP address) with codecs in preference order and
    /// telephone-event as payload type 101.
    pub fn offer(rtp: SocketAddr, codecs: &[Codec], ptime: u32, session_id: u64) -> Sdp {
        let mut formats: Vec<u8> = codecs.iter().map(|c| c.static_pt()).collect();
        let mut rtpmap: Vec<(u8, String, u32)> = codecs
            .iter()
            .map(|c| (c.static_pt(), c.name().to_string(), 8000))
            .collect();
        formats.push(101);
        rtpmap.push((101, "telephone-event".into(), 8000));
        Sdp {
            origin_user: "waihu".into(),
            session_id,
            session_version: session_id,
            origin_addr: rtp.ip(),
            session_name: "waihu".into(),
            connection: Some(rtp.ip()),
            direction: None,
            media: vec![MediaDesc {
                kind: "audio".into(),
                port: rtp.port(),
                proto: "RTP/AVP".into(),
                formats,
                rtpmap,
                fmtp: vec![(101, "0-16".into())],
                ptime: Some(ptime),
                direction: Some(Direction::SendRecv),
                connection: None,
                attrs: Vec::new(),
            }],
        }
    }

    /// This offer (or answer) protected with SDES-SRTP: our key in `a=crypto` and, when
    /// `mode` is mandatory, `RTP/SAVP`. `Off` leaves it as it is.
    pub fn with_srtp(mut self, mode: SrtpMode, ours: &SdesKey) -> Sdp {
        if mode == SrtpMode::Off {
            return self;
        }
        if let Some(m) = self.media.iter_mut().find(|m| m.kind == "audio") {
            if mode == SrtpMode::Mandatory {
                m.proto = "RTP/SAVP".into();
            }
            m.attrs.retain(|(n, _)| !n.eq_ignore_ascii_case("crypto"));
            m.attrs.push(("crypto".into(), Some(ours.to_attr())));
        }
        self
    }

    /// The same offer with another direction and a bumped version (re-INVITE for hold:
    /// `SendOnly`; resume: `SendRecv`).
    pub fn with_direction(&self, dir: Direction) -> Sdp {
        let mut s = self.clone();
        s.session_version += 1;
        if let Some(m) = s.media.iter_mut().find(|m| m.kind == "audio") {
            m.direction = Some(dir);
        }
        s
    }

    fn audio(&self) -> Result<&MediaDesc, SdpError> {
        self.media
            .iter()
            .find(|m| m.kind == "audio" && m.port != 0)
            .ok_or(SdpError::NoAudio)
    }

    /// Answers `offer` from our RTP address `rtp`, picking the first offered codec we support
    /// (the offerer's preference order, RFC 3264 §6.1) among `supported`.
    pub fn answer(
        offer: &Sdp,
        rtp: SocketAddr,
        supported: &[Codec],
        session_id: u64,
    ) -> Result<(Sdp, Negotiated), SdpError> {
        Sdp::answer_srtp(offer, rtp, supported, session_id, SrtpMode::Off, None)
    }

    /// [`answer`](Self::answer) with SDES-SRTP: with `mode` not `Off` and `ours` given, an
    /// offer carrying a usable `a=crypto` is answered with our key under the same tag (and
    /// the offer's profile), and [`Negotiated::srtp`] holds the peer's key. An `RTP/SAVP`
    /// offer without SRTP on, or a plain offer with SRTP mandatory, is refused.
    pub fn answer_srtp(
        offer: &Sdp,
        rtp: SocketAddr,
        supported: &[Codec],
        session_id: u64,
        mode: SrtpMode,
        ours: Option<&SdesKey>,
    ) -> Result<(Sdp, Negotiated), SdpError> {
        let m = offer.audio()?;
        let srtp_on = mode != SrtpMode::Off && ours.is_some();
        let theirs = if srtp_on { m.sdes_key()? } else { None };
        if m.secure_proto() && theirs.is_none() {
            return Err(if srtp_on {
                SdpError::SrtpRequired
            } else {
                SdpError::SrtpNotEnabled
            });
        }
        if mode == SrtpMode::Mandatory && theirs.is_none() {
            return Err(SdpError::SrtpRequired);
        }
        let conn = m
            .connection
            .or(offer.connection)
            .ok_or(SdpError::NoConnection)?;
        let (codec, pt) = m
            .formats
            .iter()
            .find_map(|&pt| {
                let c = offer_codec(m, pt)?;
                supported.contains(&c).then_some((c, pt))
            })
            .ok_or_else(|| SdpError::NoCommonCodec(m.formats.clone()))?;
        let dtmf = telephone_event_pt(m);
        let offer_dir = m
            .direction
            .or(offer.direction)
            .unwrap_or(Direction::SendRecv);
        // An offer addressed to 0.0.0.0 is the old (RFC 2543) way to say "hold".
        let offer_dir = if conn.is_unspecified() && offer_dir == Direction::SendRecv {
            Direction::SendOnly
        } else {
            offer_dir
        };
        let our_dir = offer_dir.answer_for();
        let ptime = m.ptime.unwrap_or(20);
        let mut formats = vec![pt];
        let mut rtpmap = vec![(pt, codec.name().to_string(), 8000)];
        let mut fmtp = Vec::new();
        if let Some(d) = dtmf {
            formats.push(d);
            rtpmap.push((d, "telephone-event".into(), 8000));
            fmtp.push((d, "0-16".into()));
        }
        let mut attrs = Vec::new();
        if let (Some(t), Some(o)) = (&theirs, ours) {
            let k = SdesKey {
                tag: t.tag,
                key_salt: o.key_salt,
            };
            attrs.push(("crypto".to_string(), Some(k.to_attr())));
        }
        let answer = Sdp {
            origin_user: "waihu".into(),
            session_id,
            session_version: session_id,
            origin_addr: rtp.ip(),
            session_name: "waihu".into(),
            connection: Some(rtp.ip()),
            direction: None,
            media: vec![MediaDesc {
                kind: "audio".into(),
                port: rtp.port(),
                proto: m.proto.clone(),
                formats,
                rtpmap,
                fmtp,
                ptime: Some(ptime),
                direction: Some(our_dir),
                connection: None,
                attrs,
            }],
        };
        let neg = Negotiated {
            remote_rtp: SocketAddr::new(conn, m.port),
            remote_rtcp: rtcp_addr(m, conn),
            codec,
            payload_type: pt,
            dtmf_payload_type: dtmf,
            ptime,
            direction: our_dir,
            srtp: theirs,
        };
        Ok((answer, neg))
    }

    /// What was agreed, read from the peer's answer to our offer (the answer carries one
    /// codec, or several of which the first one is used). [`Negotiated::srtp`] is the
    /// answer's SDES key if it has one (whether that is enough is the caller's policy).
    pub fn negotiated_from_answer(&self) -> Result<Negotiated, SdpError> {
        let m = self.audio()?;
        let conn = m
            .connection
            .or(self.connection)
            .ok_or(SdpError::NoConnection)?;
        let (codec, pt) = m
            .formats
            .iter()
            .find_map(|&pt| offer_codec(m, pt).map(|c| (c, pt)))
            .ok_or_else(|| SdpError::NoCommonCodec(m.formats.clone()))?;
        let peer_dir = m
            .direction
            .or(self.direction)
            .unwrap_or(Direction::SendRecv);
        Ok(Negotiated {
            remote_rtp: SocketAddr::new(conn, m.port),
            remote_rtcp: rtcp_addr(m, conn),
            codec,
            payload_type: pt,
            dtmf_payload_type: telephone_event_pt(m),
            ptime: m.ptime.unwrap_or(20),
            direction: peer_dir.answer_for(),
            srtp: m.sdes_key()?,
        })
    }

    /// Parses an SDP body; unknown lines and attributes are kept or skipped, never fatal.
    pub fn parse(bytes: &[u8]) -> Result<Sdp, SdpError> {
        let text = std::str::from_utf8(bytes).map_err(|_| SdpError::NotUtf8)?;
        let mut sdp = Sdp {
            origin_user: "-".into(),
            session_id: 0,
            session_version: 0,
            origin_addr: IpAddr::from([0, 0, 0, 0]),
            session_name: "-".into(),
            connection: None,
            direction: None,
            media: Vec::new(),
        };
        for (i, raw) in text.split('\n').enumerate() {
            let line_no = i + 1;
            let line = raw.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(SdpError::Line {
                    line: line_no,
                    text: line.to_string(),
                });
            };
            let field = |field: &'static str| SdpError::Field {
                line: line_no,
                field,
                value: v.to_string(),
            };
            match k {
                "o" => {
                    let p: Vec<&str> = v.split_whitespace().collect();
                    if p.len() >= 6 {
                        sdp.origin_user = p[0].to_string();
                        sdp.session_id = p[1].parse().unwrap_or(0);
                        sdp.session_version = p[2].parse().unwrap_or(0);
                        sdp.origin_addr = p[5].parse().unwrap_or(sdp.origin_addr);
                    }
                }
                "s" => sdp.session_name = v.to_string(),
                "c" => {
                    let p: Vec<&str> = v.split_whitespace().collect();
                    let ip: IpAddr = p
                        .get(2)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse().ok())
                        .ok_or_else(|| field("c"))?;
                    match sdp.media.last_mut() {
                        Some(m) => m.connection = Some(ip),
                        None => sdp.connection = Some(ip),
                    }
                }
                "m" => {
                    let p: Vec<&str> = v.split_whitespace().collect();
                    if p.len() < 3 {
                        return Err(field("m"));
                    }
                    let port: u16 = p[1]
                        .split('/')
                        .next()
                        .and_then(|x| x.parse().ok())
                        .ok_or_else(|| field("m port"))?;
                    let formats = p[3..].iter().filter_map(|f| f.parse().ok()).collect();
                    sdp.media.push(MediaDesc {
                        kind: p[0].to_string(),
                        port,
                        proto: p[2].to_string(),
                        formats,
                        rtpmap: Vec::new(),
                        fmtp: Vec::new(),
                        ptime: None,
                        direction: None,
                        connection: None,
                        attrs: Vec::new(),
                    });
                }
                "a" => {
                    let (name, value) = match v.split_once(':') {
                        Some((n, val)) => (n, Some(val)),
                        None => (v, None),
                    };
                    if let Some(dir) = Direction::parse(name) {
                        match sdp.media.last_mut() {
                            Some(m) => m.direction = Some(dir),
                            None => sdp.direction = Some(dir),
                        }
                        continue;
                    }
                    let Some(m) = sdp.media.last_mut() else {
                        continue;
                    };
                    match (name, value) {
                        ("rtpmap", Some(val)) => {
                            let (pt, enc) = val.split_once(' ').ok_or_else(|| field("rtpmap"))?;
                            let pt: u8 = pt.trim().parse().map_err(|_| field("rtpmap"))?;
                            let mut parts = enc.trim().split('/');
                            let name = parts.next().unwrap_or("").to_string();
                            let rate = parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000);
                            m.rtpmap.push((pt, name, rate));
                        }
                        ("fmtp", Some(val)) => {
                            if let Some((pt, params)) = val.split_once(' ') {
                                if let Ok(pt) = pt.trim().parse() {
                                    m.fmtp.push((pt, params.trim().to_string()));
                                }
                            }
                        }
                        ("ptime", Some(val)) => {
                            m.ptime = Some(val.trim().parse().map_err(|_| field("ptime"))?);
                        }
                        _ => m.attrs.push((name.to_string(), value.map(str::to_string))),
                    }
                }
                _ => {}
            }
        }
        Ok(sdp)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn ip_kind(ip: &IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn offer_codec(m: &MediaDesc, pt: u8) -> Option<Codec> {
    if let Some((_, name, rate)) = m.rtpmap.iter().find(|(p, _, _)| *p == pt) {
        if *rate != 8000 {
            return None;
        }
        if name.eq_ignore_ascii_case("PCMU") {
            return Some(Codec::Pcmu);
        }
        if name.eq_ignore_ascii_case("PCMA") {
            return Some(Codec::Pcma);
        }
        return None;
    }
    match pt {
        0 => Some(Codec::Pcmu),
        8 => Some(Codec::Pcma),
        _ => None,
    }
}

fn telephone_event_pt(m: &MediaDesc) -> Option<u8> {
    m.rtpmap
        .iter()
        .find(|(pt, name, rate)| {
            name.eq_ignore_ascii_case("telephone-event") && *rate == 8000 && m.formats.contains(pt)
        })
        .map(|(pt, _, _)| *pt)
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v=0\r\n")?;
        write!(
            f,
            "o={} {} {} IN {} {}\r\n",
            self.origin_user,
            self.session_id,
            self.session_version,
            ip_kind(&self.origin_addr),
            self.origin_addr
        )?;
        write!(f, "s={}\r\n", self.session_name)?;
        if let Some(c) = self.connection {
            write!(f, "c=IN {} {}\r\n", ip_kind(&c), c)?;
        }
        write!(f, "t=0 0\r\n")?;
        if let Some(d) = self.direction {
            write!(f, "a={}\r\n", d.as_str())?;
        }
        for m in &self.media {
            write!(f, "m={} {} {}", m.kind, m.port, m.proto)?;
            for pt in &m.formats {
                write!(f, " {pt}")?;
            }
            write!(f, "\r\n")?;
            if let Some(c) = m.connection {
                write!(f, "c=IN {} {}\r\n", ip_kind(&c), c)?;
            }
            for (pt, name, rate) in &m.rtpmap {
                write!(f, "a=rtpmap:{pt} {name}/{rate}\r\n")?;
            }
            for (pt, p) in &m.fmtp {
                write!(f, "a=fmtp:{pt} {p}\r\n")?;
            }
            if let Some(p) = m.ptime {
                write!(f, "a=ptime:{p}\r\n")?;
            }
            for (n, v) in &m.attrs {
                match v {
                    Some(v) => write!(f, "a={n}:{v}\r\n")?,
                    None => write!(f, "a={n}\r\n")?,
                }
            }
            if let Some(d) = m.direction {
                write!(f, "a={}\r\n", d.as_str())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str =
        "v=0\r\no=- 123 456 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
m=audio 10000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n";

    #[test]
    fn rtcp_address_from_attributes() {
        let sdp = |extra: &str| {
            Sdp::parse(
                format!("v=0\r\nc=IN IP4 10.0.0.5\r\nm=audio 4000 RTP/AVP 0\r\n{extra}").as_bytes(),
            )
            .unwrap()
            .negotiated_from_answer()
            .unwrap()
            .remote_rtcp
        };
        assert_eq!(sdp(""), "10.0.0.5:4001".parse().unwrap());
        assert_eq!(sdp("a=rtcp:5555\r\n"), "10.0.0.5:5555".parse().unwrap());
        assert_eq!(
            sdp("a=rtcp:5555 IN IP4 10.0.0.9\r\n"),
            "10.0.0.9:5555".parse().unwrap()
        );
        assert_eq!(sdp("a=rtcp-mux\r\n"), "10.0.0.5:4000".parse().unwrap());
        assert_eq!(sdp("a=rtcp:junk\r\n"), "10.0.0.5:4001".parse().unwrap());
    }

    #[test]
    fn answer_prefers_offerer_order() {
        let offer = Sdp::parse(BARESIP.as_bytes()).unwrap();
        let (ans, neg) = Sdp::answer(
            &offer,
            "127.0.0.1:20000".parse().unwrap(),
            &[Codec::Pcmu, Codec::Pcma],
            7,
        )
        .unwrap();
        assert_eq!(neg.codec, Codec::Pcma);
        assert_eq!(neg.remote_rtp, "127.0.0.1:10000".parse().unwrap());
        assert_eq!(neg.dtmf_payload_type, Some(101));
        let back = Sdp::parse(&ans.to_bytes())
            .unwrap()
            .negotiated_from_answer()
            .unwrap();
        assert_eq!(back.codec, Codec::Pcma);
        assert_eq!(back.remote_rtp, "127.0.0.1:20000".parse().unwrap());
    }

    #[test]
    fn hold_directions() {
        let offer = Sdp::offer("127.0.0.1:4000".parse().unwrap(), &[Codec::Pcmu], 20, 1)
            .with_direction(Direction::SendOnly);
        let parsed = Sdp::parse(&offer.to_bytes()).unwrap();
        let (_, neg) = Sdp::answer(
            &parsed,
            "127.0.0.1:5000".parse().unwrap(),
            &[Codec::Pcmu],
            2,
        )
        .unwrap();
        assert_eq!(neg.direction, Direction::RecvOnly);
        let old_hold = BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let (_, neg) = Sdp::answer(
            &Sdp::parse(old_hold.as_bytes()).unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            &[Codec::Pcmu],
            2,
        )
        .unwrap();
        assert_eq!(neg.direction, Direction::RecvOnly);
    }

    #[test]
    fn no_common_codec() {
        let g722 = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\n";
        let e = Sdp::answer(
            &Sdp::parse(g722.as_bytes()).unwrap(),
            "127.0.0.1:1".parse().unwrap(),
            &[Codec::Pcmu],
            1,
        );
        assert!(matches!(e, Err(SdpError::NoCommonCodec(_))));
        assert!(matches!(
            Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(SdpError::Field { line: 2, .. })
        ));
    }

    fn key(n: u8) -> SdesKey {
        SdesKey {
            tag: 1,
            key_salt: [n; 30],
        }
    }

    #[test]
    fn sdes_offer_answer_both_ways() {
        let offer = Sdp::offer("127.0.0.1:4000".parse().unwrap(), &[Codec::Pcmu], 20, 1)
            .with_srtp(SrtpMode::Mandatory, &key(1));
        let text = offer.to_string();
        assert!(text.contains("m=audio 4000 RTP/SAVP 0 101\r\n"), "{text}");
        assert!(
            text.contains("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB\r\n"),
            "{text}"
        );
        let parsed = Sdp::parse(text.as_bytes()).unwrap();
        let (ans, neg) = Sdp::answer_srtp(
            &parsed,
            "127.0.0.1:5000".parse().unwrap(),
            &[Codec::Pcmu],
            2,
            SrtpMode::Optional,
            Some(&key(2)),
        )
        .unwrap();
        assert_eq!(
            neg.srtp,
            Some(key(1)),
            "the offerer's key protects what it sends"
        );
        let back = Sdp::parse(&ans.to_bytes()).unwrap();
        assert_eq!(back.media[0].proto, "RTP/SAVP");
        assert_eq!(back.negotiated_from_answer().unwrap().srtp, Some(key(2)));
        // Optional: RTP/AVP with a=crypto.
        let opt = Sdp::offer("127.0.0.1:4000".parse().unwrap(), &[Codec::Pcmu], 20, 1)
            .with_srtp(SrtpMode::Optional, &key(1));
        assert_eq!(opt.media[0].proto, "RTP/AVP");
        assert_eq!(opt.media[0].sdes_key().unwrap(), Some(key(1)));
        // SRTP off: an RTP/SAVP offer is refused, a best-effort one answered in plain RTP.
        let e = Sdp::answer(
            &parsed,
            "127.0.0.1:5000".parse().unwrap(),
            &[Codec::Pcmu],
            2,
        );
        assert_eq!(e.unwrap_err(), SdpError::SrtpNotEnabled);
        let (a, n) =
            Sdp::answer(&opt, "127.0.0.1:5000".parse().unwrap(), &[Codec::Pcmu], 2).unwrap();
        assert!(n.srtp.is_none() && !a.to_string().contains("crypto"));
        // Mandatory: a plain offer is refused.
        let plain = Sdp::offer("127.0.0.1:4000".parse().unwrap(), &[Codec::Pcmu], 20, 1);
        let e = Sdp::answer_srtp(
            &plain,
            "127.0.0.1:5000".parse().unwrap(),
            &[Codec::Pcmu],
            2,
            SrtpMode::Mandatory,
            Some(&key(2)),
        );
        assert_eq!(e.unwrap_err(), SdpError::SrtpRequired);
    }

    #[test]
    fn crypto_lines() {
        let k = "inline:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB";
        let ok = |v: &str| SdesKey::parse_attr(v);
        assert_eq!(
            ok(&format!("3 AES_CM_128_HMAC_SHA1_80 {k}"))
                .unwrap()
                .unwrap()
                .tag,
            3
        );
        assert_eq!(
            ok(&format!("1 AES_CM_128_HMAC_SHA1_80 {k}|2^31")).unwrap(),
            Some(key(1))
        );
        // Usable by others, not by us: another suite, an MKI, session parameters.
        assert_eq!(ok(&format!("1 AES_CM_128_HMAC_SHA1_32 {k}")).unwrap(), None);
        assert_eq!(
            ok(&format!("1 AES_CM_128_HMAC_SHA1_80 {k}|2^20|1:4")).unwrap(),
            None
        );
        assert_eq!(
            ok(&format!("1 AES_CM_128_HMAC_SHA1_80 {k} UNENCRYPTED_SRTCP")).unwrap(),
            None
        );
        for bad in [
            "",
            "x AES_CM_128_HMAC_SHA1_80 inline:AAAA",
            "1 AES_CM_128_HMAC_SHA1_80",
            "1 AES_CM_128_HMAC_SHA1_80 uri:foo",
            "1 AES_CM_128_HMAC_SHA1_80 inline:%%%%",
            "1 AES_CM_128_HMAC_SHA1_80 inline:AQEBAQ==",
        ] {
            assert!(matches!(ok(bad), Err(SdpError::Crypto(_))), "{bad:?}");
        }
        // The first usable line wins (baresip offers several suites).
        let sdp = format!(
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 5 RTP/SAVP 0\r\n\
             a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:xyz\r\na=crypto:2 AES_CM_128_HMAC_SHA1_80 {k}\r\n"
        );
        let n = Sdp::parse(sdp.as_bytes())
            .unwrap()
            .negotiated_from_answer()
            .unwrap();
        assert_eq!(n.srtp.map(|k| k.tag), Some(2));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            if let Ok(s) = Sdp::parse(&bytes) {
                let _ = Sdp::answer(&s, "127.0.0.1:1".parse().unwrap(), &[Codec::Pcmu, Codec::Pcma], 1);
                let _ = s.negotiated_from_answer();
            }
        }
        #[test]
        fn crypto_attr_never_panics(v in "[0-9]{0,3} (AES_CM_128_HMAC_SHA1_80|[A-Z_0-9]{0,10}) (inline:)?[A-Za-z0-9+/=|:^]{0,60}( [ -~]{0,10})?") {
            if let Ok(Some(k)) = SdesKey::parse_attr(&v) {
                proptest::prop_assert_eq!(SdesKey::parse_attr(&k.to_attr()), Ok(Some(k)));
            }
        }
        #[test]
        fn never_panics_sdp_like(s in "([vocmsta]=[ -~]{0,30}\r\n|a=crypto:[ -~]{0,60}\r\n){0,10}") {
            if let Ok(s) = Sdp::parse(s.as_bytes()) {
                let _ = Sdp::answer(&s, "127.0.0.1:1".parse().unwrap(), &[Codec::Pcmu], 1);
                let _ = Sdp::answer_srtp(&s, "127.0.0.1:1".parse().unwrap(), &[Codec::Pcmu], 1, SrtpMode::Mandatory, Some(&key(1)));
                let _ = Sdp::parse(&s.to_bytes());
            }
        }
    }
}
