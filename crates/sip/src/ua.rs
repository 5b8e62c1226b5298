//! The user agent: transactions, dialogs, calls and registrations (RFC 3261).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};

use crate::auth::Challenge;
use crate::msg::{
    parse_cseq, reason_phrase, Headers, Message, NameAddr, Request, Response, SipUri, Via,
};
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
        }
    }
}

/// Transport protocol of a datagram or stream message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }
    /// Reliable transports get no retransmissions and zero-length wait timers (D, I, J, K).
    pub fn reliable(self) -> bool {
        matches!(self, Transport::Tcp)
    }
}

/// Bytes the runtime must send. Over TCP the runtime reuses (or opens) a connection to `to`.
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

/// Timer owners; entries in the heap may be stale (the owner re-checks its own deadlines).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    ClientTx(u64),
    ServerTx(u64),
    Call(CallId),
    Reg(RegId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Call(CallId),
    Reg(RegId),
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// Calling (INVITE) / Trying (non-INVITE).
    Initial,
    Proceeding,
    Completed,
    /// Server INVITE transaction after ACK (timer I).
    Confirmed,
}

/// A client transaction (RFC 3261 §17.1).
#[derive(Debug)]
struct ClientTx {
    invite: bool,
    request: Request,
    bytes: Vec<u8>,
    dest: SocketAddr,
    transport: Transport,
    state: TxState,
    owner: Owner,
    /// Timer A (INVITE) / E (non-INVITE).
    retrans_at: Option<Instant>,
    interval: Duration,
    /// Timer B / F.
    timeout_at: Option<Instant>,
    /// Timer D / K.
    kill_at: Option<Instant>,
    ack: Option<Vec<u8>>,
    key: (String, String),
}

/// A server transaction (RFC 3261 §17.2).
#[derive(Debug)]
struct ServerTx {
    invite: bool,
    source: SocketAddr,
    transport: Transport,
    state: TxState,
    last_response: Option<Vec<u8>>,
    /// Timer G.
    retrans_at: Option<Instant>,
    interval: Duration,
    /// Timer H.
    timeout_at: Option<Instant>,
    /// Timer I / J.
    kill_at: Option<Instant>,
    key: (String, String, String),
}

#[derive(Debug, Clone)]
struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// `<sip:...>` without tag.
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    route_set: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallState {
    /// UAC: INVITE sent, no provisional yet.
    Calling,
    /// UAC: provisional received.
    Early,
    /// UAS: INVITE received, not answered yet.
    Incoming,
    /// UAS: 2xx sent, waiting for ACK.
    WaitAck,
    Confirmed,
    /// BYE sent, waiting for its final response.
    Terminating,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    No,
    /// Wanted, but no provisional response yet (RFC 3261 §9.1: CANCEL only after a 1xx).
    Pending,
    Sent,
}

#[derive(Debug)]
struct OkRetrans {
    bytes: Vec<u8>,
    cseq: u32,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

#[derive(Debug)]
struct Call {
    uac: bool,
    state: CallState,
    dialog: Dialog,
    transport: Transport,
    /// Where to send in-dialog requests when neither route set nor remote target resolve.
    fallback_dest: SocketAddr,
    // UAC side
    invite: Option<Request>,
    invite_dest: SocketAddr,
    creds: Option<Credentials>,
    auth_tries: u8,
    ring_deadline: Option<Instant>,
    cancel: Cancel,
    cancel_deadline: Option<Instant>,
    cancel_outcome: Option<(CallOutcome, String)>,
    ack: Option<Vec<u8>>,
    trying_seen: bool,
    ringing_seen: bool,
    early_seen: bool,
    // UAS side
    stx: Option<u64>,
    invite_req: Option<Request>,
    local_sdp: Option<Sdp>,
    remote_sdp: Option<Sdp>,
    ok_retrans: Option<OkRetrans>,
    incoming_deadline: Option<Instant>,
    // both
    /// How the call ends once the BYE completes.
    end: Option<(CallOutcome, Option<u16>, String)>,
}

#[derive(Debug)]
struct Reg {
    cfg: Registration,
    dest: SocketAddr,
    call_id: String,
    tag: String,
    aor: String,
    cseq: u32,
    auth_tries: u8,
    refresh_at: Option<Instant>,
    removing: bool,
}

/// One local SIP endpoint: a sans-IO state machine for all its calls and registrations.
///
/// It never reads a clock and never touches a socket: see the crate docs for the run loop.
#[derive(Debug)]
pub struct UserAgent {
    cfg: Config,
    rng: u64,
    next_id: u64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<UaEvent>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    ctx: HashMap<u64, ClientTx>,
    ctx_by_key: HashMap<(String, String), u64>,
    stx: HashMap<u64, ServerTx>,
    stx_by_key: HashMap<(String, String, String), u64>,
    calls: HashMap<CallId, Call>,
    calls_by_sip: HashMap<String, CallId>,
    regs: HashMap<RegId, Reg>,
    malformed: u64,
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO";

fn hdr<'a>(req: &'a Request, name: &'static str) -> Result<&'a str, &'static str> {
    req.headers.get(name).ok_or(name)
}

/// Tag of a From/To header value.
fn tag_of(v: &str) -> Option<String> {
    NameAddr::parse(v).and_then(|n| n.tag().map(str::to_string))
}

/// A From/To value without its tag parameter, as `<uri>` (with display name if any).
fn strip_tag(v: &str) -> String {
    match NameAddr::parse(v) {
        Some(n) => {
            let mut s = match &n.display {
                Some(d) => format!("\"{d}\" <{}>", n.uri),
                None => format!("<{}>", n.uri),
            };
            for (k, val) in n
                .params
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("tag"))
            {
                s.push(';');
                s.push_str(k);
                if let Some(val) = val {
                    s.push('=');
                    s.push_str(val);
                }
            }
            s
        }
        None => v.to_string(),
    }
}

/// The route set a UAC learns from a dialog-creating response: the
/// Record-Route values in reverse order (RFC 3261 §12.1.2).
fn uac_route_set(headers: &Headers) -> Vec<String> {
    headers
        .get_all("Record-Route")
        .into_iter()
        .rev()
        .map(str::to_string)
        .collect()
}

impl Dialog {
    /// UAC side: take the remote target (Contact) and the route set from a
    /// response that creates or confirms the dialog.
    fn learn_remote(&mut self, headers: &Headers) {
        if let Some(ct) = contact_uri(headers) {
            self.remote_target = ct;
        }
        self.route_set = uac_route_set(headers);
    }
}

fn contact_uri(headers: &Headers) -> Option<String> {
    headers
        .get_all("Contact")
        .first()
        .and_then(|c| NameAddr::parse(c))
        .map(|n| n.uri)
}

fn sdp_body(headers: &Headers, body: &[u8]) -> Option<Sdp> {
    if body.is_empty() {
        return None;
    }
    let ct = headers.get("Content-Type").unwrap_or("application/sdp");
    if !ct.to_ascii_lowercase().contains("application/sdp") {
        return None;
    }
    Sdp::parse(body).ok()
}

fn dtmf_from_info(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("Signal") {
            return None;
        }
        let c = v.trim().chars().next()?;
        matches!(c, '0'..='9' | '*' | '#' | 'A'..='D').then_some(c)
    })
}

impl UserAgent {
    /// `seed` drives Call-ID, tag and branch generation so tests are deterministic; the
    /// runtime passes something random.
    pub fn new(cfg: Config, seed: u64) -> UserAgent {
        UserAgent {
            cfg,
            rng: seed ^ 0x5851_f42d_4c95_7f2d,
            next_id: 1,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            timers: BinaryHeap::new(),
            ctx: HashMap::new(),
            ctx_by_key: HashMap::new(),
            stx: HashMap::new(),
            stx_by_key: HashMap::new(),
            calls: HashMap::new(),
            calls_by_sip: HashMap::new(),
            regs: HashMap::new(),
            malformed: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Messages dropped because they could not be parsed or lacked mandatory headers.
    pub fn malformed_count(&self) -> u64 {
        self.malformed
    }

    // ---- small helpers -------------------------------------------------------------

    fn rand(&mut self) -> u64 {
        // splitmix64: deterministic from the seed, good enough for tags and branches.
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn token(&mut self) -> String {
        format!("{:016x}", self.rand())
    }
    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
    fn arm(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
    }
    fn send(&mut self, to: SocketAddr, transport: Transport, bytes: Vec<u8>) {
        self.transmits.push_back(Transmit {
            to,
            transport,
            bytes,
        });
    }
    fn emit(&mut self, ev: UaEvent) {
        self.events.push_back(ev);
    }
    fn t1x64(&self) -> Duration {
        self.cfg.timers.t1 * 64
    }
    fn via(&mut self, transport: Transport) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.token());
        (
            format!(
                "SIP/2.0/{} {};rport;branch={}",
                transport.as_str(),
                self.cfg.local_addr,
                branch
            ),
            branch,
        )
    }
    fn contact(&self, transport: Transport) -> String {
        let t = if transport.reliable() {
            ";transport=tcp"
        } else {
            ""
        };
        format!("<sip:{}@{}{}>", self.cfg.user, self.cfg.local_addr, t)
    }

    // ---- public queries ----------------------------------------------------------------

    /// Next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should be called next. May be early
    /// (a timer that was since cancelled); calling `handle_timeout` then is harmless.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// The SIP Call-ID of a call (for logs and correlation).
    pub fn sip_call_id(&self, call: CallId) -> Option<&str> {
        self.calls.get(&call).map(|c| c.dialog.call_id.as_str())
    }

    /// Number of calls the agent still tracks.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Number of live transactions (client + server), for load monitoring.
    pub fn active_transactions(&self) -> usize {
        self.ctx.len() + self.stx.len()
    }

    // ---- client transactions -------------------------------------------------------------

    fn start_client_tx(
        &mut self,
        now: Instant,
        request: Request,
        dest: SocketAddr,
        transport: Transport,
        owner: Owner,
    ) -> u64 {
        let id = self.id();
        let branch = request
            .headers
            .get_all("Via")
            .first()
            .and_then(|v| Via::parse(v))
            .and_then(|v| v.branch().map(str::to_string))
            .unwrap_or_default();
        let key = (branch, request.method.clone());
        let bytes = request.to_bytes();
        self.send(dest, transport, bytes.clone());
        let invite = request.method == "INVITE";
        let t1 = self.cfg.timers.t1;
        let retrans_at = (!transport.reliable()).then(|| now + t1);
        let timeout_at = Some(now + self.t1x64());
        if let Some(at) = retrans_at {
            self.arm(at, TimerKey::ClientTx(id));
        }
        if let Some(at) = timeout_at {
            self.arm(at, TimerKey::ClientTx(id));
        }
        self.ctx_by_key.insert(key.clone(), id);
        self.ctx.insert(
            id,
            ClientTx {
                invite,
                request,
                bytes,
                dest,
                transport,
                state: TxState::Initial,
                owner,
                retrans_at,
                interval: t1,
                timeout_at,
                kill_at: None,
                ack: None,
                key,
            },
        );
        id
    }

    fn remove_ctx(&mut self, id: u64) -> Option<ClientTx> {
        let tx = self.ctx.remove(&id)?;
        self.ctx_by_key.remove(&tx.key);
        Some(tx)
    }

    fn client_tx_timer(&mut self, now: Instant, id: u64) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.ctx.get_mut(&id) else {
            return;
        };
        if tx.kill_at.is_some_and(|at| now >= at) {
            self.remove_ctx(id);
            return;
        }
        if tx.timeout_at.is_some_and(|at| now >= at)
            && matches!(tx.state, TxState::Initial | TxState::Proceeding)
        {
            // Timer B / F: no final response at all.
            let owner = tx.owner;
            let method = tx.request.method.clone();
            self.remove_ctx(id);
            self.tx_timed_out(now, owner, &method);
            return;
        }
        let mut resend = None;
        let mut rearm = None;
        if let Some(at) = tx.retrans_at {
            if now >= at {
                match (tx.invite, tx.state) {
                    (true, TxState::Initial) => {
                        tx.interval *= 2;
                        resend = Some(tx.bytes.clone());
                    }
                    (false, TxState::Initial) => {
                        tx.interval = (tx.interval * 2).min(t2);
                        resend = Some(tx.bytes.clone());
                    }
                    (false, TxState::Proceeding) => {
                        tx.interval = t2;
                        resend = Some(tx.bytes.clone());
                    }
                    _ => tx.retrans_at = None,
                }
                if resend.is_some() {
                    let next = now + tx.interval;
                    tx.retrans_at = Some(next);
                    rearm = Some(next);
                }
            }
        }
        let (dest, transport) = (tx.dest, tx.transport);
        if let Some(b) = resend {
            self.send(dest, transport, b);
        }
        if let Some(at) = rearm {
            self.arm(at, TimerKey::ClientTx(id));
        }
    }

    /// ACK for a non-2xx final response, built from the INVITE (RFC 3261 §17.1.1.3).
    fn non2xx_ack(invite: &Request, resp: &Response) -> Request {
        let mut h = Headers::default();
        if let Some(v) = invite.headers.get_all("Via").first() {
            h.push("Via", *v);
        }
        h.push("Max-Forwards", "70");
        for name in ["From", "Call-ID"] {
            if let Some(v) = invite.headers.get(name) {
                h.push(name, v);
            }
        }
        if let Some(v) = resp.headers.get("To") {
            h.push("To", v);
        }
        let n = invite
            .headers
            .get("CSeq")
            .and_then(parse_cseq)
            .map_or(1, |c| c.0);
        h.push("CSeq", format!("{n} ACK"));
        for r in invite.headers.get_all("Route") {
            h.push("Route", r);
        }
        Request {
            method: "ACK".into(),
            uri: invite.uri.clone(),
            headers: h,
            body: Vec::new(),
        }
    }

    fn handle_response(&mut self, now: Instant, resp: Response) {
        let Some(via) = resp
            .headers
            .get_all("Via")
            .first()
            .and_then(|v| Via::parse(v))
        else {
            self.malformed += 1;
            return;
        };
        let Some((cseq, method)) = resp.headers.get("CSeq").and_then(parse_cseq) else {
            self.malformed += 1;
            return;
        };
        let _ = cseq;
        let key = (via.branch().unwrap_or("").to_string(), method.clone());
        let Some(&id) = self.ctx_by_key.get(&key) else {
            if method == "INVITE" && (200..300).contains(&resp.status) {
                // A retransmitted (or forked) 2xx after the transaction ended: the dialog
                // layer re-sends its ACK.
                self.invite_2xx_without_tx(now, resp);
            }
            return;
        };
        let t4 = self.cfg.timers.t4;
        let Some(tx) = self.ctx.get_mut(&id) else {
            return;
        };
        let status = resp.status;
        let mut pass = true;
        let mut send_ack = None;
        let mut remove = false;
        let mut arm = None;
        if tx.invite {
            match (tx.state, status) {
                (TxState::Initial | TxState::Proceeding, 100..=199) => {
                    tx.state = TxState::Proceeding;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                }
                (TxState::Initial | TxState::Proceeding, 200..=299) => remove = true,
                (TxState::Initial | TxState::Proceeding, _) => {
                    tx.state = TxState::Completed;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                    let ack = Self::non2xx_ack(&tx.request, &resp).to_bytes();
                    tx.ack = Some(ack.clone());
                    send_ack = Some(ack);
                    if tx.transport.reliable() {
                        remove = true;
                    } else {
                        // Timer D: absorb retransmitted finals for 32 s.
                        let at = now + Duration::from_secs(32).max(self.cfg.timers.t1 * 64);
                        tx.kill_at = Some(at);
                        arm = Some(at);
                    }
                }
                (TxState::Completed, 300..) => {
                    send_ack = tx.ack.clone();
                    pass = false;
                }
                _ => pass = false,
            }
        } else {
            match (tx.state, status) {
                (TxState::Initial | TxState::Proceeding, 100..=199) => {
                    tx.state = TxState::Proceeding;
                }
                (TxState::Initial | TxState::Proceeding, _) => {
                    tx.state = TxState::Completed;
                    tx.retrans_at = None;
                    tx.timeout_at = None;
                    if tx.transport.reliable() {
                        remove = true;
                    } else {
                        let at = now + t4;
                        tx.kill_at = Some(at);
                        arm = Some(at);
                    }
                }
                _ => pass = false,
            }
        }
        let (dest, transport, owner) = (tx.dest, tx.transport, tx.owner);
        let request = if pass { Some(tx.request.clone()) } else { None };
        if let Some(ack) = send_ack {
            self.send(dest, transport, ack);
        }
        if let Some(at) = arm {
            self.arm(at, TimerKey::ClientTx(id));
        }
        if remove {
            self.remove_ctx(id);
        }
        if let Some(request) = request {
            match owner {
                // A 2xx for a call we already gave up on: ACK and BYE it (stray dialog).
                Owner::Call(call) if !self.calls.contains_key(&call) => {
                    if method == "INVITE" && (200..300).contains(&status) {
                        self.invite_2xx_without_tx(now, resp);
                    }
                }
                Owner::Call(call) => self.call_response(now, call, &request, resp),
                Owner::Reg(reg) => self.reg_response(now, reg, &request, resp),
                Owner::None => {}
            }
        }
    }

    fn tx_timed_out(&mut self, now: Instant, owner: Owner, method: &str) {
        match owner {
            Owner::Call(call) => {
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                match method {
                    "INVITE" => {
                        let (outcome, reason) = c.cancel_outcome.clone().unwrap_or((
                            CallOutcome::Failed,
                            "no response to INVITE (timer B)".into(),
                        ));
                        self.finish_call(call, outcome, None, reason);
                    }
                    "BYE" => {
                        let (o, s, r) = c.end.clone().unwrap_or((
                            CallOutcome::Answered,
                            Some(200),
                            "hangup".into(),
                        ));
                        self.finish_call(call, o, s, format!("{r}; BYE timed out"));
                    }
                    _ => {}
                }
            }
            Owner::Reg(reg) => {
                self.emit(UaEvent::RegistrationFailed { reg, status: None });
                self.reg_failed(now, reg);
            }
            Owner::None => {}
        }
    }

    // ---- server transactions ---------------------------------------------------------------

    fn server_key(req: &Request, via: &Via, cseq: u32) -> (String, String, String) {
        let method = if req.method == "ACK" {
            "INVITE".to_string()
        } else {
            req.method.clone()
        };
        match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") => (b.to_string(), via.sent_by.clone(), method),
            // RFC 2543 peers: no magic cookie, match on the request's identity instead.
            _ => (
                format!(
                    "2543:{}:{}:{}",
                    req.headers.get("Call-ID").unwrap_or(""),
                    cseq,
                    req.headers.get("From").and_then(tag_of).unwrap_or_default()
                ),
                via.sent_by.clone(),
                method,
            ),
        }
    }

    fn new_server_tx(
        &mut self,
        key: (String, String, String),
        source: SocketAddr,
        transport: Transport,
        invite: bool,
    ) -> u64 {
        let id = self.id();
        self.stx_by_key.insert(key.clone(), id);
        self.stx.insert(
            id,
            ServerTx {
                invite,
                source,
                transport,
                state: TxState::Proceeding,
                last_response: None,
                retrans_at: None,
                interval: self.cfg.timers.t1,
                timeout_at: None,
                kill_at: None,
                key,
            },
        );
        id
    }

    fn remove_stx(&mut self, id: u64) {
        if let Some(tx) = self.stx.remove(&id) {
            self.stx_by_key.remove(&tx.key);
        }
    }

    /// Sends `resp` through server transaction `id` and advances its state.
    fn stx_respond(&mut self, now: Instant, id: u64, resp: &Response) {
        let t1 = self.cfg.timers.t1;
        let t1x64 = self.t1x64();
        let Some(tx) = self.stx.get_mut(&id) else {
            return;
        };
        let bytes = resp.to_bytes();
        let (source, transport) = (tx.source, tx.transport);
        tx.last_response = Some(bytes.clone());
        let mut arms = Vec::new();
        let mut remove = false;
        if resp.status >= 200 {
            if tx.invite {
                if resp.status < 300 {
                    // The TU retransmits 2xx itself (RFC 3261 §13.3.1.4).
                    remove = true;
                } else {
                    tx.state = TxState::Completed;
                    if !transport.reliable() {
                        tx.retrans_at = Some(now + t1);
                        tx.interval = t1;
                        arms.push(now + t1);
                    }
                    tx.timeout_at = Some(now + t1x64);
                    arms.push(now + t1x64);
                }
            } else if transport.reliable() {
                remove = true;
            } else {
                tx.state = TxState::Completed;
                tx.kill_at = Some(now + t1x64);
                arms.push(now + t1x64);
            }
        }
        self.send(source, transport, bytes);
        for at in arms {
            self.arm(at, TimerKey::ServerTx(id));
        }
        if remove {
            self.remove_stx(id);
        }
    }

    fn server_tx_timer(&mut self, now: Instant, id: u64) {
        let t2 = self.cfg.timers.t2;
        let Some(tx) = self.stx.get_mut(&id) else {
            return;
        };
        if tx.kill_at.is_some_and(|at| now >= at) {
            self.remove_stx(id);
            return;
        }
        if tx.state == TxState::Completed && tx.timeout_at.is_some_and(|at| now >= at) {
            // Timer H: the ACK never came.
            self.remove_stx(id);
            return;
        }
        if tx.state == TxState::Completed && tx.retrans_at.is_some_and(|at| now >= at) {
            // Timer G.
            tx.interval = (tx.interval * 2).min(t2);
            let next = now + tx.interval;
            tx.retrans_at = Some(next);
            let (src, tr, bytes) = (tx.source, tx.transport, tx.last_response.clone());
            if let Some(b) = bytes {
                self.send(src, tr, b);
            }
            self.arm(next, TimerKey::ServerTx(id));
        }
    }

    /// A response to `req` with the mandatory headers copied (RFC 3261 §8.2.6.2).
    fn response_for(
        &self,
        req: &Request,
        source: SocketAddr,
        status: u16,
        to_tag: Option<&str>,
    ) -> Response {
        let mut h = Headers::default();
        for (i, v) in req.headers.get_all("Via").into_iter().enumerate() {
            if i == 0 {
                // RFC 3581 rport / RFC 3261 received, so proxies and NATed peers route back.
                let mut v = v.to_string();
                if let Some(via) = Via::parse(&v) {
                    if via
                        .params
                        .iter()
                        .any(|(k, val)| k.eq_ignore_ascii_case("rport") && val.is_none())
                    {
                        v = v.replacen(";rport", &format!(";rport={}", source.port()), 1);
                        v.push_str(&format!(";received={}", source.ip()));
                    }
                }
                h.push("Via", v);
            } else {
                h.push("Via", v);
            }
        }
        if let Some(v) = req.headers.get("From") {
            h.push("From", v);
        }
        if let Some(v) = req.headers.get("To") {
            match to_tag {
                Some(t) if tag_of(v).is_none() => h.push("To", format!("{v};tag={t}")),
                _ => h.push("To", v),
            }
        }
        for name in ["Call-ID", "CSeq"] {
            if let Some(v) = req.headers.get(name) {
                h.push(name, v);
            }
        }
        h.push("Server", self.cfg.user_agent.clone());
        Response {
            status,
            reason: reason_phrase(status).to_string(),
            headers: h,
            body: Vec::new(),
        }
    }

    /// Stateless response (no transaction), e.g. 400 for a request we cannot process.
    fn respond_stateless(
        &mut self,
        req: &Request,
        source: SocketAddr,
        transport: Transport,
        status: u16,
        reason: Option<&str>,
    ) {
        let mut r = self.response_for(req, source, status, Some("waihu400"));
        if let Some(reason) = reason {
            r.reason = reason.to_string();
        }
        self.send(source, transport, r.to_bytes());
    }

    // ---- input ------------------------------------------------------------------------

    /// Feeds one received message. Malformed requests are answered 400 where a response
    /// is possible; nothing here panics on outside input.
    pub fn handle_input(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        bytes: &[u8],
    ) {
        match Message::parse(bytes) {
            Ok(Message::Response(r)) => self.handle_response(now, r),
            Ok(Message::Request(r)) => self.handle_request(now, from, transport, r),
            Err(_) => self.malformed += 1,
        }
    }

    fn handle_request(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        req: Request,
    ) {
        let Some(via) = req
            .headers
            .get_all("Via")
            .first()
            .and_then(|v| Via::parse(v))
        else {
            // Without a Via there is nowhere to address a response.
            self.malformed += 1;
            return;
        };
        let cseq = match (|| {
            hdr(&req, "Call-ID")?;
            hdr(&req, "From")?;
            let to = hdr(&req, "To")?;
            NameAddr::parse(to).ok_or("To")?;
            let (n, m) = parse_cseq(hdr(&req, "CSeq")?).ok_or("CSeq")?;
            if !m.eq_ignore_ascii_case(&req.method) {
                return Err("CSeq");
            }
            Ok(n)
        })() {
            Ok(n) => n,
            Err(name) => {
                self.malformed += 1;
                if req.method != "ACK" {
                    self.respond_stateless(
                        &req,
                        from,
                        transport,
                        400,
                        Some(&format!("Bad Request ({name})")),
                    );
                }
                return;
            }
        };
        let key = Self::server_key(&req, &via, cseq);
        if req.method == "ACK" {
            if let Some(&id) = self.stx_by_key.get(&key) {
                // ACK for our non-2xx final: stop timer G, wait timer I.
                let t4 = self.cfg.timers.t4;
                if let Some(tx) = self.stx.get_mut(&id) {
                    if tx.state == TxState::Completed {
                        tx.state = TxState::Confirmed;
                        tx.retrans_at = None;
                        tx.timeout_at = None;
                        if tx.transport.reliable() {
                            self.remove_stx(id);
                        } else {
                            tx.kill_at = Some(now + t4);
                            self.arm(now + t4, TimerKey::ServerTx(id));
                        }
                    }
                }
                return;
            }
            self.dialog_ack(now, req, cseq);
            return;
        }
        if let Some(&id) = self.stx_by_key.get(&key) {
            // Retransmitted request: repeat our last response (if any yet).
            if let Some(tx) = self.stx.get(&id) {
                if let Some(b) = tx.last_response.clone() {
                    let (s, t) = (tx.source, tx.transport);
                    self.send(s, t, b);
                }
            }
            return;
        }
        let id = self.new_server_tx(key.clone(), from, transport, req.method == "INVITE");
        if req.method == "CANCEL" {
            self.incoming_cancel(now, id, &req, from, &key);
            return;
        }
        let to_tag = req.headers.get("To").and_then(tag_of);
        if to_tag.is_some() {
            self.in_dialog_request(now, id, req, from, cseq);
            return;
        }
        match req.method.as_str() {
            "INVITE" => self.incoming_invite(now, id, req, from, transport, cseq),
            "OPTIONS" => {
                let tag = self.token();
                let mut r = self.response_for(&req, from, 200, Some(&tag));
                r.headers.push("Allow", ALLOW);
                r.headers.push("Accept", "application/sdp");
                self.stx_respond(now, id, &r);
            }
            "BYE" | "INFO" => {
                let r = self.response_for(&req, from, 481, Some("waihu481"));
                self.stx_respond(now, id, &r);
            }
            _ => {
                let mut r = self.response_for(&req, from, 405, Some("waihu405"));
                r.headers.push("Allow", ALLOW);
                self.stx_respond(now, id, &r);
            }
        }
    }

    // ---- timers -----------------------------------------------------------------------------

    /// Advances timers to `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due = Vec::new();
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            due.push(key);
        }
        due.sort();
        due.dedup();
        for key in due {
            match key {
                TimerKey::ClientTx(id) => self.client_tx_timer(now, id),
                TimerKey::ServerTx(id) => self.server_tx_timer(now, id),
                TimerKey::Call(c) => self.call_timer(now, c),
                TimerKey::Reg(r) => self.reg_timer(now, r),
            }
        }
    }
}

// ---- calls -------------------------------------------------------------------------------------

impl UserAgent {
    fn finish_call(
        &mut self,
        call: CallId,
        outcome: CallOutcome,
        sip_status: Option<u16>,
        reason: String,
    ) {
        if let Some(c) = self.calls.remove(&call) {
            if self.calls_by_sip.get(&c.dialog.call_id) == Some(&call) {
                self.calls_by_sip.remove(&c.dialog.call_id);
            }
            self.emit(UaEvent::Terminated {
                call,
                outcome,
                sip_status,
                reason,
            });
        }
    }

    /// Next hop for an in-dialog request: first route, else remote target, else fallback.
    fn dialog_dest(c: &Call) -> SocketAddr {
        if let Some(r) = c.dialog.route_set.first() {
            if let Some(a) = NameAddr::parse(r)
                .and_then(|n| SipUri::parse(&n.uri))
                .and_then(|u| u.socket_addr())
            {
                return a;
            }
            return c.fallback_dest;
        }
        if !c.uac && c.transport.reliable() {
            // Reuse the caller's connection rather than dialling its Contact.
            return c.fallback_dest;
        }
        SipUri::parse(&c.dialog.remote_target)
            .and_then(|u| u.socket_addr())
            .unwrap_or(c.fallback_dest)
    }

    /// Builds an in-dialog request (RFC 3261 §12.2.1.1). `cseq` None takes the next number.
    fn dialog_request(
        &mut self,
        call: CallId,
        method: &str,
        cseq: Option<u32>,
    ) -> Option<(Request, SocketAddr, Transport)> {
        let (via, _) = {
            let transport = self.calls.get(&call)?.transport;
            self.via(transport)
        };
        let contact = {
            let t = self.calls.get(&call)?.transport;
            self.contact(t)
        };
        let ua = self.cfg.user_agent.clone();
        let c = self.calls.get_mut(&call)?;
        let n = match cseq {
            Some(n) => n,
            None => {
                c.dialog.local_cseq += 1;
                c.dialog.local_cseq
            }
        };
        let d = &c.dialog;
        let mut h = Headers::default();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        h.push("From", format!("{};tag={}", d.local_uri, d.local_tag));
        match &d.remote_tag {
            Some(t) => h.push("To", format!("{};tag={t}", d.remote_uri)),
            None => h.push("To", d.remote_uri.clone()),
        }
        h.push("Call-ID", d.call_id.clone());
        h.push("CSeq", format!("{n} {method}"));
        for r in &d.route_set {
            h.push("Route", r.clone());
        }
        if method == "INVITE" {
            h.push("Contact", contact);
        }
        h.push("User-Agent", ua);
        let req = Request {
            method: method.to_string(),
            uri: d.remote_target.clone(),
            headers: h,
            body: Vec::new(),
        };
        let dest = Self::dialog_dest(c);
        Some((req, dest, c.transport))
    }

    fn send_bye(
        &mut self,
        now: Instant,
        call: CallId,
        outcome: CallOutcome,
        status: Option<u16>,
        reason: String,
    ) {
        let Some((mut req, dest, transport)) = self.dialog_request(call, "BYE", None) else {
            return;
        };
        if let Some(c) = self.calls.get_mut(&call) {
            c.state = CallState::Terminating;
            c.ok_retrans = None;
            c.end = Some((outcome, status, reason));
            if let Some(invite) = &c.invite {
                // Proxies that challenged the INVITE usually accept the same credentials.
                for name in ["Proxy-Authorization", "Authorization"] {
                    if let Some(v) = invite.headers.get(name) {
                        req.headers.push(name, v);
                    }
                }
            }
        }
        self.start_client_tx(now, req, dest, transport, Owner::Call(call));
    }

    /// Starts an outgoing call.
    pub fn invite(&mut self, now: Instant, req: OutgoingCall) -> Result<CallId, SipError> {
        let target =
            SipUri::parse(&req.target).ok_or_else(|| SipError::BadTarget(req.target.clone()))?;
        let dest = match req.proxy {
            Some(p) => p,
            None => target
                .socket_addr()
                .ok_or_else(|| SipError::NoRoute(req.target.clone()))?,
        };
        let id = CallId(self.id());
        let call_id = format!("{}@waihu", self.token());
        let tag = self.token();
        let user = req
            .from_user
            .clone()
            .unwrap_or_else(|| self.cfg.user.clone());
        let local_uri = match &self.cfg.display_name {
            Some(d) => format!("\"{}\" <sip:{user}@{}>", d.replace('"', ""), target.host),
            None => format!("<sip:{user}@{}>", target.host),
        };
        let remote_uri = format!("<{}>", req.target.trim());
        let (via, _) = self.via(req.transport);
        let mut h = Headers::default();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        h.push("From", format!("{local_uri};tag={tag}"));
        h.push("To", remote_uri.clone());
        h.push("Call-ID", call_id.clone());
        h.push("CSeq", "1 INVITE");
        h.push("Contact", self.contact(req.transport));
        h.push("User-Agent", self.cfg.user_agent.clone());
        h.push("Allow", ALLOW);
        for (k, v) in &req.headers {
            h.push(k.clone(), v.clone());
        }
        let body = match &req.sdp {
            Some(s) => {
                h.push("Content-Type", "application/sdp");
                s.to_bytes()
            }
            None => Vec::new(),
        };
        let invite = Request {
            method: "INVITE".into(),
            uri: req.target.trim().to_string(),
            headers: h,
            body,
        };
        let ring = now + req.ring_timeout.unwrap_or(self.cfg.ring_timeout);
        self.calls.insert(
            id,
            Call {
                uac: true,
                state: CallState::Calling,
                dialog: Dialog {
                    call_id: call_id.clone(),
                    local_tag: tag,
                    remote_tag: None,
                    local_uri,
                    remote_uri,
                    local_cseq: 1,
                    remote_cseq: None,
                    remote_target: req.target.trim().to_string(),
                    route_set: Vec::new(),
                },
                transport: req.transport,
                fallback_dest: dest,
                invite: Some(invite.clone()),
                invite_dest: dest,
                creds: req.credentials.clone(),
                auth_tries: 0,
                ring_deadline: Some(ring),
                cancel: Cancel::No,
                cancel_deadline: None,
                cancel_outcome: None,
                ack: None,
                trying_seen: false,
                ringing_seen: false,
                early_seen: false,
                stx: None,
                invite_req: None,
                local_sdp: req.sdp.clone(),
                remote_sdp: None,
                ok_retrans: None,
                incoming_deadline: None,
                end: None,
            },
        );
        self.calls_by_sip.insert(call_id, id);
        self.arm(ring, TimerKey::Call(id));
        self.start_client_tx(now, invite, dest, req.transport, Owner::Call(id));
        Ok(id)
    }

    fn send_cancel(&mut self, now: Instant, call: CallId) {
        let t1x64 = self.t1x64();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let Some(invite) = &c.invite else { return };
        // CANCEL copies the INVITE's Request-URI, top Via (same branch), From, To, Call-ID,
        // Route and CSeq number (RFC 3261 §9.1).
        let mut h = Headers::default();
        if let Some(v) = invite.headers.get_all("Via").first() {
            h.push("Via", *v);
        }
        h.push("Max-Forwards", "70");
        for name in ["From", "To", "Call-ID"] {
            if let Some(v) = invite.headers.get(name) {
                h.push(name, v);
            }
        }
        let n = invite
            .headers
            .get("CSeq")
            .and_then(parse_cseq)
            .map_or(1, |x| x.0);
        h.push("CSeq", format!("{n} CANCEL"));
        for r in invite.headers.get_all("Route") {
            h.push("Route", r);
        }
        let req = Request {
            method: "CANCEL".into(),
            uri: invite.uri.clone(),
            headers: h,
            body: Vec::new(),
        };
        c.cancel = Cancel::Sent;
        // If the callee never answers the CANCEL with 487, give up after 64*T1.
        c.cancel_deadline = Some(now + t1x64);
        let (dest, transport) = (c.invite_dest, c.transport);
        self.arm(now + t1x64, TimerKey::Call(call));
        self.start_client_tx(now, req, dest, transport, Owner::None);
    }

    fn request_cancel(&mut self, now: Instant, call: CallId, outcome: CallOutcome, reason: String) {
        let t1x64 = self.t1x64();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.cancel != Cancel::No {
            return;
        }
        c.cancel_outcome = Some((outcome, reason));
        c.ring_deadline = None;
        match c.state {
            CallState::Calling => {
                // Not even 100 Trying yet: CANCEL must wait for a provisional (RFC 3261 §9.1).
                // Give it a short grace, then report the call as failed (no response) rather
                // than holding the dialer for timer B.
                c.cancel = Cancel::Pending;
                let grace = t1x64.min(Duration::from_secs(2));
                c.cancel_deadline = Some(now + grace);
                self.arm(now + grace, TimerKey::Call(call));
            }
            CallState::Early => self.send_cancel(now, call),
            _ => {}
        }
    }

    /// Cancels an outgoing call that is not answered yet (or BYEs it if it just was).
    /// Ends with `Terminated { outcome: NoAnswer, .. }`.
    pub fn cancel(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.uac, c.state) {
            (true, CallState::Calling | CallState::Early) => {
                self.request_cancel(now, call, CallOutcome::NoAnswer, "cancelled by us".into())
            }
            _ => self.bye(now, call),
        }
    }

    /// Hangs up: BYE for an established call, CANCEL for an outgoing call still ringing,
    /// 480 for an incoming call not answered yet.
    pub fn bye(&mut self, now: Instant, call: CallId) {
        let Some(c) = self.calls.get(&call) else {
            return;
        };
        match (c.uac, c.state) {
            (true, CallState::Calling | CallState::Early) => self.cancel(now, call),
            (false, CallState::Incoming) => self.reject(now, call, 480),
            (_, CallState::Confirmed | CallState::WaitAck) => self.send_bye(
                now,
                call,
                CallOutcome::Answered,
                Some(200),
                "hangup by us".into(),
            ),
            _ => {}
        }
    }

    fn call_timer(&mut self, now: Instant, call: CallId) {
        let t2 = self.cfg.timers.t2;
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.ring_deadline.is_some_and(|at| now >= at) {
            c.ring_deadline = None;
            self.request_cancel(now, call, CallOutcome::NoAnswer, "ring timeout".into());
            return;
        }
        if c.cancel_deadline.is_some_and(|at| now >= at) {
            c.cancel_deadline = None;
            if c.cancel == Cancel::Pending {
                self.finish_call(
                    call,
                    CallOutcome::Failed,
                    None,
                    "no response to INVITE".into(),
                );
                return;
            }
            let (o, r) = c
                .cancel_outcome
                .clone()
                .unwrap_or((CallOutcome::NoAnswer, "cancelled".into()));
            self.finish_call(
                call,
                o,
                None,
                format!("{r}; no final response after CANCEL"),
            );
            return;
        }
        if c.incoming_deadline.is_some_and(|at| now >= at) {
            c.incoming_deadline = None;
            self.reject(now, call, 480);
            return;
        }
        let mut resend = None;
        let mut give_up = false;
        if let Some(ok) = &mut c.ok_retrans {
            if now >= ok.give_up_at {
                give_up = true;
            } else if now >= ok.next_at {
                // 2xx retransmission: T1, 2T1, ... capped at T2 (RFC 3261 §13.3.1.4).
                ok.interval = (ok.interval * 2).min(t2);
                ok.next_at = now + ok.interval;
                resend = Some((ok.bytes.clone(), ok.next_at));
            }
        }
        let (dest, transport) = (c.fallback_dest, c.transport);
        if give_up {
            let reinvite = c.state == CallState::Confirmed;
            c.ok_retrans = None;
            self.send_bye(
                now,
                call,
                CallOutcome::Failed,
                Some(200),
                "no ACK for our 200 OK".into(),
            );
            if reinvite {
                if let Some(c) = self.calls.get_mut(&call) {
                    c.end = Some((
                        CallOutcome::Answered,
                        Some(200),
                        "no ACK for re-INVITE 200 OK".into(),
                    ));
                }
            }
        } else if let Some((b, next)) = resend {
            self.send(dest, transport, b);
            self.arm(next, TimerKey::Call(call));
        }
    }

    /// Responses to client transactions owned by a call.
    fn call_response(&mut self, now: Instant, call: CallId, request: &Request, resp: Response) {
        match request.method.as_str() {
            "INVITE" => self.invite_response(now, call, request, resp),
            "BYE" => {
                if resp.status < 200 {
                    return;
                }
                if matches!(resp.status, 401 | 407)
                    && self.retry_with_auth(now, call, request, &resp)
                {
                    return;
                }
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                let (o, s, r) =
                    c.end
                        .clone()
                        .unwrap_or((CallOutcome::Answered, Some(200), "hangup".into()));
                self.finish_call(call, o, s, r);
            }
            _ => {}
        }
    }

    /// Re-sends `request` with digest credentials for a 401/407. Returns false when we have
    /// no credentials or already tried twice (then the failure stands).
    fn retry_with_auth(
        &mut self,
        now: Instant,
        call: CallId,
        request: &Request,
        resp: &Response,
    ) -> bool {
        let (ch_name, auth_name) = if resp.status == 407 {
            ("Proxy-Authenticate", "Proxy-Authorization")
        } else {
            ("WWW-Authenticate", "Authorization")
        };
        let Some(challenge) = Challenge::best(resp.headers.get_lines(ch_name)) else {
            return false;
        };
        let cnonce = self.token();
        let (via, _) = {
            let Some(c) = self.calls.get(&call) else {
                return false;
            };
            let t = c.transport;
            self.via(t)
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return false;
        };
        let Some(creds) = c.creds.clone() else {
            return false;
        };
        if c.auth_tries >= 2 {
            return false;
        }
        c.auth_tries += 1;
        c.dialog.local_cseq += 1;
        let n = c.dialog.local_cseq;
        let mut req = request.clone();
        req.headers.set("Via", via);
        req.headers.set("CSeq", format!("{n} {}", req.method));
        req.headers.remove(auth_name);
        req.headers.push(
            auth_name,
            challenge.respond(
                &req.method,
                &req.uri,
                &creds.username,
                &creds.password,
                &cnonce,
                1,
            ),
        );
        let dest = if req.method == "INVITE" {
            c.invite_dest
        } else {
            Self::dialog_dest(c)
        };
        let transport = c.transport;
        if req.method == "INVITE" {
            c.invite = Some(req.clone());
            c.state = CallState::Calling;
        }
        self.start_client_tx(now, req, dest, transport, Owner::Call(call));
        true
    }

    fn invite_response(&mut self, now: Instant, call: CallId, request: &Request, resp: Response) {
        let status = resp.status;
        let sdp = sdp_body(&resp.headers, &resp.body);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        match status {
            100 => {
                // 100 is a provisional response too: a CANCEL may follow it (RFC 3261 §9.1).
                if c.state == CallState::Calling {
                    c.state = CallState::Early;
                }
                let pending = c.cancel == Cancel::Pending;
                if !c.trying_seen {
                    c.trying_seen = true;
                    self.emit(UaEvent::Trying { call });
                }
                if pending {
                    self.send_cancel(now, call);
                }
            }
            101..=199 => {
                if c.state == CallState::Calling {
                    c.state = CallState::Early;
                }
                if let Some(t) = resp.headers.get("To").and_then(tag_of) {
                    // Early dialog: remember where the callee is for a possible BYE.
                    if c.dialog.remote_tag.is_none() {
                        c.dialog.remote_tag = Some(t);
                        c.dialog.learn_remote(&resp.headers);
                    }
                }
                let pending = c.cancel == Cancel::Pending;
                let ev = match sdp {
                    // First SDP in a provisional: early media starts (183 is the usual carrier
                    // announcement; 180 with SDP is ringback from the far end).
                    Some(s) if !c.early_seen => {
                        c.early_seen = true;
                        if status == 183 {
                            Some(UaEvent::EarlyMedia { call, sdp: s })
                        } else {
                            c.ringing_seen = true;
                            Some(UaEvent::Ringing {
                                call,
                                early_sdp: Some(s),
                            })
                        }
                    }
                    _ if !c.ringing_seen && !c.early_seen => {
                        c.ringing_seen = true;
                        Some(UaEvent::Ringing {
                            call,
                            early_sdp: None,
                        })
                    }
                    _ => None,
                };
                if let Some(ev) = ev {
                    self.emit(ev);
                }
                if pending {
                    self.send_cancel(now, call);
                }
            }
            200..=299 => {
                let to_tag = resp.headers.get("To").and_then(tag_of);
                if c.state == CallState::Confirmed || c.state == CallState::Terminating {
                    // Retransmission or another fork (handled by invite_2xx_without_tx).
                    return self.invite_2xx_without_tx(now, resp);
                }
                c.dialog.remote_tag = to_tag;
                c.dialog.learn_remote(&resp.headers);
                c.state = CallState::Confirmed;
                c.ring_deadline = None;
                c.cancel_deadline = None;
                let n = request
                    .headers
                    .get("CSeq")
                    .and_then(parse_cseq)
                    .map_or(1, |x| x.0);
                let Some((mut ack, dest, transport)) = self.dialog_request(call, "ACK", Some(n))
                else {
                    return;
                };
                for name in ["Proxy-Authorization", "Authorization"] {
                    if let Some(v) = request.headers.get(name) {
                        ack.headers.push(name, v);
                    }
                }
                let bytes = ack.to_bytes();
                self.send(dest, transport, bytes.clone());
                let Some(c) = self.calls.get_mut(&call) else {
                    return;
                };
                c.ack = Some(bytes);
                c.remote_sdp = sdp.clone();
                if c.cancel != Cancel::No {
                    // The callee answered while our CANCEL was under way: hang up at once.
                    let (o, r) = c
                        .cancel_outcome
                        .clone()
                        .unwrap_or((CallOutcome::NoAnswer, "cancelled".into()));
                    self.send_bye(
                        now,
                        call,
                        o,
                        Some(200),
                        format!("{r}; answered after CANCEL"),
                    );
                } else {
                    self.emit(UaEvent::Answered { call, sdp });
                }
            }
            _ => {
                if matches!(status, 401 | 407)
                    && c.cancel == Cancel::No
                    && self.retry_with_auth(now, call, request, &resp)
                {
                    return;
                }
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                let (outcome, reason) = match (&c.cancel_outcome, status) {
                    (Some((o, r)), 487) => (*o, r.clone()),
                    _ => (
                        outcome_for_status(status),
                        format!("{} {}", status, resp.reason),
                    ),
                };
                self.finish_call(call, outcome, Some(status), reason);
            }
        }
    }

    /// A 2xx to an INVITE with no client transaction: a retransmission (re-send the ACK)
    /// or a 2xx from a second fork / for a call we gave up on (ACK, then BYE it).
    fn invite_2xx_without_tx(&mut self, now: Instant, resp: Response) {
        let Some(call_id) = resp.headers.get("Call-ID") else {
            return;
        };
        let to_tag = resp.headers.get("To").and_then(tag_of);
        if let Some(&call) = self.calls_by_sip.get(call_id) {
            if let Some(c) = self.calls.get(&call) {
                if c.uac && c.dialog.remote_tag == to_tag {
                    if let Some(ack) = c.ack.clone() {
                        let dest = Self::dialog_dest(c);
                        let t = c.transport;
                        self.send(dest, t, ack);
                    }
                    return;
                }
            }
        }
        // Stray dialog: build it from the response, ACK and BYE it so the far end does not
        // stay connected to nobody.
        let (Some(from), Some(to), Some((n, _))) = (
            resp.headers.get("From"),
            resp.headers.get("To"),
            resp.headers.get("CSeq").and_then(parse_cseq),
        ) else {
            return;
        };
        let Some(target) = contact_uri(&resp.headers) else {
            return;
        };
        let route_set = uac_route_set(&resp.headers);
        let hop = route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .and_then(|n| SipUri::parse(&n.uri))
            .or_else(|| SipUri::parse(&target))
            .and_then(|u| u.socket_addr());
        let Some(dest) = hop else { return };
        let transport = resp
            .headers
            .get_all("Via")
            .first()
            .and_then(|v| Via::parse(v))
            .map_or(Transport::Udp, |v| {
                if v.transport == "TCP" {
                    Transport::Tcp
                } else {
                    Transport::Udp
                }
            });
        for (method, cseq) in [("ACK", n), ("BYE", n + 1)] {
            let (via, _) = self.via(transport);
            let mut h = Headers::default();
            h.push("Via", via);
            h.push("Max-Forwards", "70");
            h.push("From", from);
            h.push("To", to);
            h.push("Call-ID", call_id);
            h.push("CSeq", format!("{cseq} {method}"));
            for r in &route_set {
                h.push("Route", r.clone());
            }
            let req = Request {
                method: method.into(),
                uri: target.clone(),
                headers: h,
                body: Vec::new(),
            };
            if method == "ACK" {
                self.send(dest, transport, req.to_bytes());
            } else {
                self.start_client_tx(now, req, dest, transport, Owner::None);
            }
        }
    }

    // ---- UAS ------------------------------------------------------------------------------

    fn incoming_invite(
        &mut self,
        now: Instant,
        stx: u64,
        req: Request,
        from: SocketAddr,
        transport: Transport,
        cseq: u32,
    ) {
        let call_id = req.headers.get("Call-ID").unwrap_or("").to_string();
        if self.calls_by_sip.contains_key(&call_id) {
            // Same Call-ID without To tag on a new branch: a merged request (RFC 3261 §8.2.2.2).
            let r = self.response_for(&req, from, 482, Some("waihu482"));
            self.stx_respond(now, stx, &r);
            return;
        }
        let has_body = !req.body.is_empty();
        let sdp = sdp_body(&req.headers, &req.body);
        if has_body && sdp.is_none() {
            let ct = req
                .headers
                .get("Content-Type")
                .unwrap_or("application/sdp")
                .to_ascii_lowercase();
            let (status, reason) = if ct.contains("application/sdp") {
                (400, "Bad Request (SDP)")
            } else {
                (415, "Unsupported Media Type")
            };
            let mut r = self.response_for(&req, from, status, Some("waihu400"));
            r.reason = reason.into();
            if status == 415 {
                r.headers.push("Accept", "application/sdp");
            }
            self.stx_respond(now, stx, &r);
            return;
        }
        let id = CallId(self.id());
        let tag = self.token();
        let from_h = req.headers.get("From").unwrap_or("").to_string();
        let to_h = req.headers.get("To").unwrap_or("").to_string();
        let remote_target = contact_uri(&req.headers)
            .unwrap_or_else(|| NameAddr::parse(&from_h).map(|n| n.uri).unwrap_or_default());
        let trying = self.response_for(&req, from, 100, None);
        self.stx_respond(now, stx, &trying);
        let deadline = now + self.cfg.incoming_timeout;
        self.calls.insert(
            id,
            Call {
                uac: false,
                state: CallState::Incoming,
                dialog: Dialog {
                    call_id: call_id.clone(),
                    local_tag: tag,
                    remote_tag: tag_of(&from_h),
                    local_uri: strip_tag(&to_h),
                    remote_uri: strip_tag(&from_h),
                    local_cseq: 0,
                    remote_cseq: Some(cseq),
                    remote_target,
                    route_set: req
                        .headers
                        .get_all("Record-Route")
                        .into_iter()
                        .map(str::to_string)
                        .collect(),
                },
                transport,
                fallback_dest: from,
                invite: None,
                invite_dest: from,
                creds: None,
                auth_tries: 0,
                ring_deadline: None,
                cancel: Cancel::No,
                cancel_deadline: None,
                cancel_outcome: None,
                ack: None,
                trying_seen: false,
                ringing_seen: false,
                early_seen: false,
                stx: Some(stx),
                invite_req: Some(req),
                local_sdp: None,
                remote_sdp: sdp.clone(),
                ok_retrans: None,
                incoming_deadline: Some(deadline),
                end: None,
            },
        );
        self.calls_by_sip.insert(call_id, id);
        self.arm(deadline, TimerKey::Call(id));
        self.emit(UaEvent::Incoming {
            call: id,
            from: from_h,
            to: to_h,
            sdp,
            source: from,
        });
    }

    /// A response to the pending INVITE of an incoming call, with our tag and Contact.
    fn uas_response(&self, call: CallId, status: u16) -> Option<(u64, Response)> {
        let c = self.calls.get(&call)?;
        if c.uac || c.state != CallState::Incoming {
            return None;
        }
        let stx = c.stx?;
        let req = c.invite_req.as_ref()?;
        let mut r = self.response_for(req, c.fallback_dest, status, Some(&c.dialog.local_tag));
        if status < 300 {
            r.headers.push("Contact", self.contact(c.transport));
            if status >= 200 {
                r.headers.push("Allow", ALLOW);
            }
        }
        Some((stx, r))
    }

    /// Sends 180 Ringing for an incoming call.
    pub fn ring(&mut self, now: Instant, call: CallId) {
        if let Some((stx, r)) = self.uas_response(call, 180) {
            self.stx_respond(now, stx, &r);
        }
    }

    /// Sends 183 Session Progress with SDP (early media) for an incoming call.
    pub fn early_media(&mut self, now: Instant, call: CallId, sdp: Sdp) {
        if let Some((stx, mut r)) = self.uas_response(call, 183) {
            r.headers.push("Content-Type", "application/sdp");
            r.body = sdp.to_bytes();
            self.stx_respond(now, stx, &r);
            if let Some(c) = self.calls.get_mut(&call) {
                c.local_sdp = Some(sdp);
            }
        }
    }

    /// Answers an incoming call with 200 OK and our SDP answer; retransmitted until ACKed.
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: Sdp) {
        let Some((stx, mut r)) = self.uas_response(call, 200) else {
            return;
        };
        r.headers.push("Content-Type", "application/sdp");
        r.body = sdp.to_bytes();
        self.stx_respond(now, stx, &r);
        let t1 = self.cfg.timers.t1;
        let give_up = now + self.t1x64();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        let cseq = c.dialog.remote_cseq.unwrap_or(0);
        c.state = CallState::WaitAck;
        c.stx = None;
        c.incoming_deadline = None;
        c.local_sdp = Some(sdp);
        if c.transport.reliable() {
            // No retransmission over TCP, but still give up if no ACK arrives (timer H's value).
            c.ok_retrans = Some(OkRetrans {
                bytes: Vec::new(),
                cseq,
                next_at: give_up,
                interval: t1,
                give_up_at: give_up,
            });
            self.arm(give_up, TimerKey::Call(call));
        } else {
            c.ok_retrans = Some(OkRetrans {
                bytes: r.to_bytes(),
                cseq,
                next_at: now + t1,
                interval: t1,
                give_up_at: give_up,
            });
            self.arm(now + t1, TimerKey::Call(call));
            self.arm(give_up, TimerKey::Call(call));
        }
    }

    /// Rejects an incoming call with a final status (e.g. 486, 603, 480).
    pub fn reject(&mut self, now: Instant, call: CallId, status: u16) {
        let status = if (300..700).contains(&status) {
            status
        } else {
            603
        };
        let Some((stx, r)) = self.uas_response(call, status) else {
            return;
        };
        self.stx_respond(now, stx, &r);
        self.finish_call(
            call,
            outcome_for_status(status),
            Some(status),
            format!("rejected by us with {status}"),
        );
    }

    /// Sends a DTMF digit as SIP INFO (`application/dtmf-relay`), for peers without RFC 4733.
    pub fn send_info_dtmf(&mut self, now: Instant, call: CallId, digit: char, duration_ms: u32) {
        if self
            .calls
            .get(&call)
            .is_none_or(|c| c.state != CallState::Confirmed)
        {
            return;
        }
        let Some((mut req, dest, transport)) = self.dialog_request(call, "INFO", None) else {
            return;
        };
        req.headers.push("Content-Type", "application/dtmf-relay");
        req.body = format!("Signal={digit}\r\nDuration={duration_ms}\r\n").into_bytes();
        self.start_client_tx(now, req, dest, transport, Owner::Call(call));
    }

    fn incoming_cancel(
        &mut self,
        now: Instant,
        stx: u64,
        req: &Request,
        from: SocketAddr,
        key: &(String, String, String),
    ) {
        let invite_key = (key.0.clone(), key.1.clone(), "INVITE".to_string());
        let call = self
            .stx_by_key
            .get(&invite_key)
            .copied()
            .and_then(|invite_tx| {
                self.calls
                    .iter()
                    .find(|(_, c)| c.stx == Some(invite_tx) && c.state == CallState::Incoming)
                    .map(|(id, _)| *id)
            });
        let Some(call) = call else {
            let r = self.response_for(req, from, 481, Some("waihu481"));
            self.stx_respond(now, stx, &r);
            return;
        };
        let ok = self.response_for(
            req,
            from,
            200,
            self.calls.get(&call).map(|c| c.dialog.local_tag.as_str()),
        );
        self.stx_respond(now, stx, &ok);
        if let Some((itx, r)) = self.uas_response(call, 487) {
            self.stx_respond(now, itx, &r);
        }
        self.emit(UaEvent::Cancelled { call });
        self.finish_call(
            call,
            CallOutcome::NoAnswer,
            Some(487),
            "cancelled by caller".into(),
        );
    }

    /// ACK for a 2xx (ours): matched to the dialog by Call-ID and CSeq.
    fn dialog_ack(&mut self, _now: Instant, req: Request, cseq: u32) {
        let Some(&call) = req
            .headers
            .get("Call-ID")
            .and_then(|id| self.calls_by_sip.get(id))
        else {
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.uac || c.ok_retrans.as_ref().is_none_or(|o| o.cseq != cseq) {
            return;
        }
        c.ok_retrans = None;
        if c.state == CallState::WaitAck {
            c.state = CallState::Confirmed;
            // Offer-less INVITE: the ACK carries the offer's answer.
            let sdp = sdp_body(&req.headers, &req.body).or_else(|| c.remote_sdp.clone());
            self.emit(UaEvent::Answered { call, sdp });
        }
    }

    fn in_dialog_request(
        &mut self,
        now: Instant,
        stx: u64,
        req: Request,
        from: SocketAddr,
        cseq: u32,
    ) {
        let to_tag = req.headers.get("To").and_then(tag_of);
        let call = req
            .headers
            .get("Call-ID")
            .and_then(|id| self.calls_by_sip.get(id).copied())
            .filter(|id| {
                self.calls
                    .get(id)
                    .is_some_and(|c| Some(&c.dialog.local_tag) == to_tag.as_ref())
            });
        let Some(call) = call else {
            let status = if req.method == "OPTIONS" { 200 } else { 481 };
            let r = self.response_for(&req, from, status, None);
            self.stx_respond(now, stx, &r);
            return;
        };
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if c.dialog.remote_cseq.is_some_and(|r| cseq < r) {
            let r = self.response_for(&req, from, 500, None);
            self.stx_respond(now, stx, &r);
            return;
        }
        c.dialog.remote_cseq = Some(cseq);
        match req.method.as_str() {
            "BYE" => {
                let r = self.response_for(&req, from, 200, None);
                self.stx_respond(now, stx, &r);
                let Some(c) = self.calls.get(&call) else {
                    return;
                };
                if c.uac && matches!(c.state, CallState::Calling | CallState::Early) {
                    // BYE in an early dialog (RFC 3261 §15): the call is over before answer.
                    self.emit(UaEvent::ByeReceived { call });
                    self.finish_call(call, CallOutcome::Failed, None, "BYE before answer".into());
                    return;
                }
                if c.state == CallState::Incoming {
                    if let Some((itx, r)) = self.uas_response(call, 487) {
                        self.stx_respond(now, itx, &r);
                    }
                }
                self.emit(UaEvent::ByeReceived { call });
                self.finish_call(
                    call,
                    CallOutcome::Answered,
                    Some(200),
                    "hangup by peer".into(),
                );
            }
            "INFO" => {
                let r = self.response_for(&req, from, 200, None);
                self.stx_respond(now, stx, &r);
                if let Some(digit) = dtmf_from_info(&req.body) {
                    self.emit(UaEvent::DtmfInfo { call, digit });
                }
            }
            "OPTIONS" => {
                let mut r = self.response_for(&req, from, 200, None);
                r.headers.push("Allow", ALLOW);
                self.stx_respond(now, stx, &r);
            }
            "INVITE" => self.reinvite(now, stx, call, req, from, cseq),
            _ => {
                let mut r = self.response_for(&req, from, 501, None);
                r.headers.push("Allow", ALLOW);
                self.stx_respond(now, stx, &r);
            }
        }
    }

    /// Re-INVITE (hold / resume / session refresh): answer with our SDP, mirrored direction.
    fn reinvite(
        &mut self,
        now: Instant,
        stx: u64,
        call: CallId,
        req: Request,
        from: SocketAddr,
        cseq: u32,
    ) {
        let contact = {
            let Some(c) = self.calls.get(&call) else {
                return;
            };
            if c.state != CallState::Confirmed || c.ok_retrans.is_some() {
                let r = self.response_for(&req, from, 491, None);
                self.stx_respond(now, stx, &r);
                return;
            }
            self.contact(c.transport)
        };
        let offer = sdp_body(&req.headers, &req.body);
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if let Some(ct) = contact_uri(&req.headers) {
            c.dialog.remote_target = ct;
        }
        let mut r = {
            let mut h = Headers::default();
            let _ = &mut h;
            Response {
                status: 200,
                reason: "OK".into(),
                headers: h,
                body: Vec::new(),
            }
        };
        let answer = c.local_sdp.as_ref().map(|ours| {
            let dir = offer
                .as_ref()
                .and_then(|o| {
                    o.media
                        .iter()
                        .find(|m| m.kind == "audio")
                        .and_then(|m| m.direction)
                        .or(o.direction)
                })
                .unwrap_or(crate::sdp::Direction::SendRecv)
                .answer_for();
            ours.with_direction(dir)
        });
        if let Some(a) = &answer {
            c.local_sdp = Some(a.clone());
        }
        let fallback = c.fallback_dest;
        let base = self.response_for(&req, fallback, 200, None);
        r.headers = base.headers;
        r.headers.push("Contact", contact);
        if let Some(a) = &answer {
            r.headers.push("Content-Type", "application/sdp");
            r.body = a.to_bytes();
        }
        self.stx_respond(now, stx, &r);
        let t1 = self.cfg.timers.t1;
        let give_up = now + self.t1x64();
        let Some(c) = self.calls.get_mut(&call) else {
            return;
        };
        if !c.transport.reliable() {
            c.ok_retrans = Some(OkRetrans {
                bytes: r.to_bytes(),
                cseq,
                next_at: now + t1,
                interval: t1,
                give_up_at: give_up,
            });
            self.arm(now + t1, TimerKey::Call(call));
            self.arm(give_up, TimerKey::Call(call));
        }
        self.emit(UaEvent::ReInvite { call, sdp: offer });
    }
}

// ---- registrations ---------------------------------------------------------------------------

impl UserAgent {
    /// Registers (and keeps refreshing at half the granted lifetime) a binding.
    pub fn register(&mut self, now: Instant, reg: Registration) -> RegId {
        let id = RegId(self.id());
        let uri = SipUri::parse(&reg.registrar);
        let dest = reg
            .proxy
            .or_else(|| uri.as_ref().and_then(|u| u.socket_addr()));
        let host = uri
            .as_ref()
            .map_or_else(|| self.cfg.local_addr.ip().to_string(), |u| u.host.clone());
        let Some(dest) = dest else {
            self.emit(UaEvent::RegistrationFailed {
                reg: id,
                status: None,
            });
            return id;
        };
        let r = Reg {
            aor: format!("<sip:{}@{host}>", self.cfg.user),
            cfg: reg,
            dest,
            call_id: format!("{}@waihu", self.token()),
            tag: self.token(),
            cseq: 0,
            auth_tries: 0,
            refresh_at: None,
            removing: false,
        };
        self.regs.insert(id, r);
        self.send_register(now, id, None);
        id
    }

    /// Removes a binding (REGISTER with Expires: 0); `Registered { expires: 0 }` follows.
    pub fn unregister(&mut self, now: Instant, reg: RegId) {
        if let Some(r) = self.regs.get_mut(&reg) {
            r.removing = true;
            r.refresh_at = None;
            r.auth_tries = 0;
            self.send_register(now, reg, None);
        }
    }

    fn send_register(&mut self, now: Instant, id: RegId, auth: Option<(&'static str, String)>) {
        let Some(transport) = self.regs.get(&id).map(|r| r.cfg.transport) else {
            return;
        };
        let (via, _) = self.via(transport);
        let contact = self.contact(transport);
        let ua = self.cfg.user_agent.clone();
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        r.cseq += 1;
        let expires = if r.removing { 0 } else { r.cfg.expires };
        let mut h = Headers::default();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        h.push("From", format!("{};tag={}", r.aor, r.tag));
        h.push("To", r.aor.clone());
        h.push("Call-ID", r.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", r.cseq));
        h.push("Contact", contact);
        h.push("Expires", expires.to_string());
        h.push("User-Agent", ua);
        if let Some((n, v)) = auth {
            h.push(n, v);
        }
        let req = Request {
            method: "REGISTER".into(),
            uri: r.cfg.registrar.clone(),
            headers: h,
            body: Vec::new(),
        };
        let dest = r.dest;
        self.start_client_tx(now, req, dest, transport, Owner::Reg(id));
    }

    fn reg_response(&mut self, now: Instant, id: RegId, request: &Request, resp: Response) {
        let status = resp.status;
        if status < 200 {
            return;
        }
        let local = self.cfg.local_addr.to_string();
        let cnonce = self.token();
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        if (200..300).contains(&status) {
            r.auth_tries = 0;
            if r.removing {
                self.regs.remove(&id);
                self.emit(UaEvent::Registered {
                    reg: id,
                    expires: 0,
                });
                return;
            }
            // The registrar may shorten the lifetime: our Contact's expires param, else Expires.
            let granted = resp
                .headers
                .get_all("Contact")
                .into_iter()
                .filter_map(NameAddr::parse)
                .find(|n| n.uri.contains(&local))
                .and_then(|n| crate::msg::param(&n.params, "expires").and_then(|e| e.parse().ok()))
                .or_else(|| {
                    resp.headers
                        .get("Expires")
                        .and_then(|e| e.trim().parse().ok())
                })
                .unwrap_or(r.cfg.expires);
            let at = now + Duration::from_secs(u64::from(granted.max(2) / 2));
            r.refresh_at = Some(at);
            self.arm(at, TimerKey::Reg(id));
            self.emit(UaEvent::Registered {
                reg: id,
                expires: granted,
            });
            return;
        }
        if matches!(status, 401 | 407) && r.auth_tries < 2 {
            if let (Some(creds), true) = (r.cfg.credentials.clone(), true) {
                let (ch, an) = if status == 407 {
                    ("Proxy-Authenticate", "Proxy-Authorization")
                } else {
                    ("WWW-Authenticate", "Authorization")
                };
                if let Some(c) = Challenge::best(resp.headers.get_lines(ch)) {
                    r.auth_tries += 1;
                    let v = c.respond(
                        "REGISTER",
                        &request.uri,
                        &creds.username,
                        &creds.password,
                        &cnonce,
                        1,
                    );
                    self.send_register(now, id, Some((an, v)));
                    return;
                }
            }
        }
        self.emit(UaEvent::RegistrationFailed {
            reg: id,
            status: Some(status),
        });
        self.reg_failed(now, id);
    }

    fn reg_failed(&mut self, now: Instant, id: RegId) {
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        if r.removing {
            self.regs.remove(&id);
            return;
        }
        // Keep trying once a minute: an unattended dialer must recover by itself.
        r.auth_tries = 0;
        let at = now + Duration::from_secs(60);
        r.refresh_at = Some(at);
        self.arm(at, TimerKey::Reg(id));
    }

    fn reg_timer(&mut self, now: Instant, id: RegId) {
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        if r.refresh_at.is_some_and(|at| now >= at) {
            r.refresh_at = None;
            self.send_register(now, id, None);
        }
    }
}
