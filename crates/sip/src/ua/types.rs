//! The values that cross the user agent's API: configuration, handles, call and
//! registration requests, events and errors.

use std::net::SocketAddr;
use std::time::Duration;

use waihu_core::CallOutcome;

use crate::sdp::Sdp;

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum duration a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

/// Configuration of one local SIP endpoint.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address we advertise in Via and Contact (the runtime's bound socket address).
    pub local_addr: SocketAddr,
    /// Our user part (From / Contact).
    pub user: String,
    pub display_name: Option<String>,
    /// `User-Agent` / `Server` header value.
    pub user_agent: String,
    pub timers: Timers,
    /// Default time an outgoing call may ring (after the first provisional response, or
    /// from the INVITE when none comes) before we CANCEL it → `NoAnswer`.
    pub ring_timeout: Duration,
    /// How long an incoming call may stay unanswered before we answer 480 ourselves.
    pub incoming_timeout: Duration,
    /// Per-source limits on new requests (see [`crate::guard`]); `None` takes everything
    /// (a test peer standing in for a carrier network).
    pub guard: Option<crate::guard::GuardConfig>,
}

impl Config {
    pub fn new(local_addr: SocketAddr, user: impl Into<String>) -> Config {
        Config {
            local_addr,
            user: user.into(),
            display_name: None,
            user_agent: concat!("waihu/", env!("CARGO_PKG_VERSION")).to_string(),
            timers: Timers::default(),
            ring_timeout: Duration::from_secs(45),
            incoming_timeout: Duration::from_secs(120),
            guard: Some(crate::guard::GuardConfig::default()),
        }
    }
}

/// Transport protocol of a datagram or stream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
    /// SIP over TLS (RFC 3261 §26.2): a reliable stream; the runtime does the handshake.
    Tls,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
    /// The `transport=` URI parameter value.
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }
    /// From a Via sent-protocol transport (`UDP`, `TCP`, `TLS`; case-insensitive).
    pub fn from_via(s: &str) -> Option<Transport> {
        match s.to_ascii_uppercase().as_str() {
            "UDP" => Some(Transport::Udp),
            "TCP" => Some(Transport::Tcp),
            "TLS" => Some(Transport::Tls),
            _ => None,
        }
    }
    /// Reliable transports get no retransmissions and zero-length wait timers (D, I, J, K).
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp | Transport::Tls)
    }
}

/// Bytes the runtime must send. Over TCP or TLS the runtime reuses (or opens) a connection
/// to `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub to: SocketAddr,
    pub transport: Transport,
    pub bytes: Vec<u8>,
}

/// Local handle of one call (one INVITE dialog), outgoing or incoming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

/// Local handle of one registration binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegId(pub u64);

/// Digest credentials for a trunk, proxy or registrar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

/// An outgoing call request.
#[derive(Debug, Clone)]
pub struct OutgoingCall {
    /// Request-URI, e.g. `sip:+8613800000000@trunk.example;user=phone` or `sip:bob@127.0.0.1:5062`.
    pub target: String,
    /// Next hop (trunk / outbound proxy). `None`: the target's host must be an IP literal.
    pub proxy: Option<SocketAddr>,
    pub transport: Transport,
    /// The SDP offer (usually [`Sdp::offer`]); `None` sends an offer-less INVITE.
    pub sdp: Option<Sdp>,
    pub credentials: Option<Credentials>,
    /// From user part; `None` uses [`Config::user`].
    pub from_user: Option<String>,
    /// Extra headers (e.g. `P-Asserted-Identity`, `X-Campaign`).
    pub headers: Vec<(String, String)>,
    /// Overrides [`Config::ring_timeout`].
    pub ring_timeout: Option<Duration>,
}

impl OutgoingCall {
    pub fn new(target: impl Into<String>) -> OutgoingCall {
        OutgoingCall {
            target: target.into(),
            proxy: None,
            transport: Transport::Udp,
            sdp: None,
            credentials: None,
            from_user: None,
            headers: Vec::new(),
            ring_timeout: None,
        }
    }
}

/// A registration binding to keep alive at a registrar.
#[derive(Debug, Clone)]
pub struct Registration {
    /// Registrar URI for the Request-URI, e.g. `sip:127.0.0.1:5080`.
    pub registrar: String,
    /// Where to send; `None`: the registrar URI's host must be an IP literal.
    pub proxy: Option<SocketAddr>,
    pub transport: Transport,
    /// Requested binding lifetime in seconds; refreshed at half the granted value.
    pub expires: u32,
    pub credentials: Option<Credentials>,
}

/// Errors returned synchronously from user operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SipError {
    #[error("SIP target URI {0:?} is not a valid sip:/sips:/tel: URI")]
    BadTarget(String),
    #[error(
        "SIP target {0:?} has no IP-literal host and no proxy was given (no DNS in the SIP core)"
    )]
    NoRoute(String),
    #[error("unknown call {0:?}")]
    UnknownCall(CallId),
    #[error("call {0:?} is not in a state that allows {1}")]
    BadState(CallId, &'static str),
}

/// What happened, for the runtime and the layers above.
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq)]
pub enum UaEvent {
    /// 100 Trying received for our INVITE.
    Trying { call: CallId },
    /// 180/181/182 received; `early_sdp` if it carried SDP.
    Ringing {
        call: CallId,
        early_sdp: Option<Sdp>,
    },
    /// 183 with SDP: early media (carrier announcement or ringback) will flow.
    EarlyMedia { call: CallId, sdp: Sdp },
    /// 2xx received (UAC, after we sent ACK) or our 2xx was ACKed (UAS). `sdp` is the
    /// peer's answer (UAC) or offer (UAS).
    Answered { call: CallId, sdp: Option<Sdp> },
    /// A new incoming call. The UA has already sent 100 Trying; the owner calls
    /// [`UserAgent::ring`], [`UserAgent::early_media`], [`UserAgent::answer`] or
    /// [`UserAgent::reject`].
    ///
    /// [`UserAgent::ring`]: super::UserAgent::ring
    /// [`UserAgent::early_media`]: super::UserAgent::early_media
    /// [`UserAgent::answer`]: super::UserAgent::answer
    /// [`UserAgent::reject`]: super::UserAgent::reject
    Incoming {
        call: CallId,
        from: String,
        to: String,
        sdp: Option<Sdp>,
        source: SocketAddr,
    },
    /// A CANCEL arrived for an incoming call (it has been answered 487; Terminated follows).
    Cancelled { call: CallId },
    /// The peer hung up (BYE received and answered 200; Terminated follows).
    ByeReceived { call: CallId },
    /// The call is over; nothing more will be reported for it.
    Terminated {
        call: CallId,
        outcome: CallOutcome,
        sip_status: Option<u16>,
        reason: String,
    },
    /// The registrar accepted the binding for `expires` seconds (0: unregistered).
    Registered { reg: RegId, expires: u32 },
    /// The registration failed (`status` None: timeout).
    RegistrationFailed { reg: RegId, status: Option<u16> },
    /// An in-dialog INFO with `application/dtmf-relay` was received.
    DtmfInfo { call: CallId, digit: char },
    /// The peer sent a new offer in the dialog (re-INVITE: hold or resume). The UA has
    /// already answered 200 with our last SDP and the mirrored direction.
    ReInvite { call: CallId, sdp: Option<Sdp> },
    /// Progress of a transfer asked for with [`UserAgent::refer`]: the REFER's answer,
    /// then the NOTIFYs reporting the transferee's call to the target.
    ///
    /// [`UserAgent::refer`]: super::UserAgent::refer
    Transfer {
        call: CallId,
        progress: super::TransferProgress,
    },
    /// A source went over its request budget, still is, or has stopped (see
    /// [`crate::guard`]): one event per phase, never one per packet.
    Flood(crate::guard::FloodReport),
}

/// Maps a final failure status of an outgoing INVITE to a call outcome.
pub fn outcome_for_status(status: u16) -> CallOutcome {
    match status {
        200..=299 => CallOutcome::Answered,
        486 | 600 => CallOutcome::Busy,
        408 | 480 | 487 => CallOutcome::NoAnswer,
        603 => CallOutcome::Rejected,
        404 | 484 | 604 => CallOutcome::InvalidNumber,
        500 | 502 | 503 => CallOutcome::Congestion,
        _ => CallOutcome::Failed,
    }
}
