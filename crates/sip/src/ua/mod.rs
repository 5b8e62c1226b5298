//! The user agent: transactions, dialogs, calls and registrations (RFC 3261).
//!
//! One [`UserAgent`] holds all state; its behaviour is split by concern into several
//! `impl UserAgent` blocks:
//! - this file: the state, construction, small helpers, the input and timer entry points;
//! - `transactions.rs`: client and server transactions (timers A–K), responses;
//! - `dialogs.rs`: calls and dialogs once they exist (in-dialog requests, BYE, INFO,
//!   re-INVITE, the call timer, digest retries);
//! - `invite.rs`: outgoing INVITE (UAC) with CANCEL;
//! - `incoming.rs`: incoming INVITE (UAS): ring, early media, answer, reject, CANCEL;
//! - `register.rs`: REGISTER with refresh;
//! - `registrar.rs`: incoming REGISTER answered by an attached [`crate::registrar::Registrar`];
//! - `refer.rs`: blind transfer by REFER and the NOTIFYs that report it.

mod dialogs;
mod incoming;
mod invite;
mod refer;
mod register;
mod registrar;
mod transactions;
mod types;

pub use refer::{sipfrag_status, TransferProgress};
pub use register::register_retry_delay;
pub use types::{
    outcome_for_status, CallId, Config, Credentials, OutgoingCall, RegId, Registration, SipError,
    Timers, Transmit, Transport, UaEvent,
};

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;

use crate::guard::Verdict;
use crate::msg::{parse_cseq, Message, NameAddr, Request, Via};
use crate::sdp::Sdp;
use dialogs::tag_of;

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
    /// Consecutive failed attempts (drives the retry back-off); 0 once registered.
    failures: u32,
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
    /// Per-source limits on new requests; `None` when the config has none.
    guard: Option<crate::guard::Guard>,
    /// Answers incoming REGISTER when set; its clock is milliseconds since the instant.
    registrar: Option<(crate::registrar::Registrar, Instant)>,
}

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, NOTIFY";

fn hdr<'a>(req: &'a Request, name: &'static str) -> Result<&'a str, &'static str> {
    req.headers.get(name).ok_or(name)
}

impl UserAgent {
    /// `seed` drives Call-ID, tag and branch generation so tests are deterministic; the
    /// runtime passes something random.
    pub fn new(cfg: Config, seed: u64) -> UserAgent {
        UserAgent {
            guard: cfg.guard.clone().map(crate::guard::Guard::new),
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
            registrar: None,
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
        // Over TLS we are a client only: `alias` (RFC 5923) asks the peer to send its
        // requests to our sent-by address back over the connection we opened.
        let alias = if transport == Transport::Tls {
            ";alias"
        } else {
            ""
        };
        (
            format!(
                "SIP/2.0/{} {};rport{alias};branch={}",
                transport.as_str(),
                self.cfg.local_addr,
                branch
            ),
            branch,
        )
    }
    fn contact(&self, transport: Transport) -> String {
        let t = match transport {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
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
        let timers = self.timers.peek().map(|Reverse((at, _))| *at);
        let guard = self.guard.as_ref().and_then(|g| g.poll_timeout());
        match (timers, guard) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
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

    /// What the flood guard admitted, refused and dropped (all zero without a guard).
    pub fn guard_stats(&self) -> crate::guard::GuardStats {
        self.guard.as_ref().map(|g| g.stats()).unwrap_or_default()
    }

    /// Incoming calls not yet answered or rejected.
    fn pending_incoming(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.state == CallState::Incoming)
            .count()
    }

    /// Moves the guard's flood reports to the events.
    fn guard_reports(&mut self) {
        while let Some(r) = self.guard.as_mut().and_then(|g| g.poll_report()) {
            self.emit(UaEvent::Flood(r));
        }
    }

    /// Admission of a request that would open a new server transaction: the source's
    /// budget, then the agent's global limits. Answers 503 itself when refused.
    fn admit(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        req: &Request,
    ) -> bool {
        let Some(g) = self.guard.as_mut() else {
            return true;
        };
        let ip = from.ip();
        let mut v = g.request(now, ip);
        if v == Verdict::Admit {
            let cfg = g.config();
            let (max_tx, max_inc) = (cfg.max_server_transactions, cfg.max_pending_incoming);
            let full = self.stx.len() >= max_tx
                || (req.method == "INVITE" && self.pending_incoming() >= max_inc);
            if full {
                if let Some(g) = self.guard.as_mut() {
                    v = g.overruled(now, ip);
                }
            }
        }
        self.guard_reports();
        match v {
            Verdict::Admit => true,
            Verdict::Refuse => {
                if req.method != "ACK" {
                    let retry = self
                        .guard
                        .as_ref()
                        .map_or(10, |g| g.config().retry_after.as_secs().max(1));
                    let mut r = self.response_for(req, from, 503, Some("waihu503"));
                    r.headers.push("Retry-After", retry.to_string());
                    self.send(from, transport, r.to_bytes());
                }
                false
            }
            Verdict::Drop => false,
        }
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
        if let Some(g) = self.guard.as_mut() {
            if g.muted(now, from.ip()) {
                return;
            }
        }
        match Message::parse(bytes) {
            Ok(Message::Response(r)) => self.handle_response(now, r),
            Ok(Message::Request(r)) => self.handle_request(now, from, transport, r),
            Err(_) => {
                self.malformed += 1;
                // A CRLF keep-alive (RFC 5626) is not garbage.
                if !bytes.iter().all(u8::is_ascii_whitespace) {
                    self.guard_malformed(now, from);
                }
            }
        }
    }

    fn guard_malformed(&mut self, now: Instant, from: SocketAddr) {
        if let Some(g) = self.guard.as_mut() {
            g.malformed(now, from.ip());
        }
        self.guard_reports();
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
            self.guard_malformed(now, from);
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
                self.guard_malformed(now, from);
                let answer = match self.guard.as_mut() {
                    Some(g) => g.request(now, from.ip()) == Verdict::Admit,
                    None => true,
                };
                if req.method != "ACK" && answer {
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
        // Requests inside a dialog we hold (a BYE, a re-INVITE, a CANCEL of a ringing call)
        // are never limited; anything else opens a transaction and is charged to its source.
        let known = self
            .calls_by_sip
            .contains_key(req.headers.get("Call-ID").unwrap_or(""));
        let in_dialog =
            known && (req.method == "CANCEL" || req.headers.get("To").and_then(tag_of).is_some());
        if !in_dialog && !self.admit(now, from, transport, &req) {
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
            "REGISTER" if self.registrar.is_some() => {
                self.incoming_register(now, id, &req, from);
            }
            "BYE" | "INFO" | "NOTIFY" => {
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
        if let Some(g) = self.guard.as_mut() {
            g.handle_timeout(now);
        }
        self.guard_reports();
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
