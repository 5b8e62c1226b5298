//! Client and server transactions (RFC 3261 §17): retransmission and timeout timers
//! A–K, matching responses and requests to transactions, building responses.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use waihu_core::CallOutcome;

use super::dialogs::tag_of;
use super::{ClientTx, Owner, ServerTx, TimerKey, Transport, TxState, UaEvent, UserAgent};
use crate::msg::{parse_cseq, reason_phrase, Headers, Request, Response, Via};

impl UserAgent {
    // ---- client transactions -------------------------------------------------------------

    pub(super) fn start_client_tx(
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
        if let Some(g) = self.guard.as_mut() {
            // Whom we send requests to (trunks, agents' phones) we take requests from.
            g.trust_peer(now, dest.ip());
        }
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

    /// The runtime could not reach `to` over a stream transport (connect, TLS handshake or
    /// write failed, or the connection closed): every client transaction still waiting for
    /// a final response there ends now as if its timer B/F had fired (RFC 3261 §8.1.3.1),
    /// instead of 32 s later. Returns how many ended.
    pub fn transport_failed(
        &mut self,
        now: Instant,
        to: SocketAddr,
        transport: Transport,
    ) -> usize {
        let mut dead: Vec<u64> = self
            .ctx
            .iter()
            .filter(|(_, tx)| {
                tx.dest == to
                    && tx.transport == transport
                    && matches!(tx.state, TxState::Initial | TxState::Proceeding)
            })
            .map(|(id, _)| *id)
            .collect();
        dead.sort_unstable();
        for id in &dead {
            if let Some(tx) = self.remove_ctx(*id) {
                self.tx_timed_out(now, tx.owner, &tx.request.method);
            }
        }
        dead.len()
    }

    fn remove_ctx(&mut self, id: u64) -> Option<ClientTx> {
        let tx = self.ctx.remove(&id)?;
        self.ctx_by_key.remove(&tx.key);
        Some(tx)
    }

    pub(super) fn client_tx_timer(&mut self, now: Instant, id: u64) {
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

    pub(super) fn handle_response(&mut self, now: Instant, resp: Response) {
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
                    "REFER" => self.refer_timed_out(call),
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

    pub(super) fn server_key(req: &Request, via: &Via, cseq: u32) -> (String, String, String) {
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

    pub(super) fn new_server_tx(
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

    pub(super) fn remove_stx(&mut self, id: u64) {
        if let Some(tx) = self.stx.remove(&id) {
            self.stx_by_key.remove(&tx.key);
        }
    }

    /// Sends `resp` through server transaction `id` and advances its state.
    pub(super) fn stx_respond(&mut self, now: Instant, id: u64, resp: &Response) {
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

    pub(super) fn server_tx_timer(&mut self, now: Instant, id: u64) {
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
    pub(super) fn response_for(
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
    pub(super) fn respond_stateless(
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
}
