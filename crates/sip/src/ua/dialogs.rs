//! Calls and their dialogs (RFC 3261 §12–15): in-dialog requests, BYE, INFO, OPTIONS,
//! re-INVITE, the per-call timer and digest retries of call requests.

use std::net::SocketAddr;
use std::time::Instant;

use waihu_core::CallOutcome;

use super::{
    Call, CallId, CallState, Cancel, Dialog, OkRetrans, Owner, TimerKey, Transport, UaEvent,
    UserAgent, ALLOW,
};
use crate::auth::Challenge;
use crate::msg::{Headers, NameAddr, Request, Response, SipUri};
use crate::sdp::Sdp;

/// Tag of a From/To header value.
pub(super) fn tag_of(v: &str) -> Option<String> {
    NameAddr::parse(v).and_then(|n| n.tag().map(str::to_string))
}

/// A From/To value without its tag parameter, as `<uri>` (with display name if any).
pub(super) fn strip_tag(v: &str) -> String {
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
pub(super) fn uac_route_set(headers: &Headers) -> Vec<String> {
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
    pub(super) fn learn_remote(&mut self, headers: &Headers) {
        if let Some(ct) = contact_uri(headers) {
            self.remote_target = ct;
        }
        self.route_set = uac_route_set(headers);
    }
}

pub(super) fn contact_uri(headers: &Headers) -> Option<String> {
    headers
        .get_all("Contact")
        .first()
        .and_then(|c| NameAddr::parse(c))
        .map(|n| n.uri)
}

pub(super) fn sdp_body(headers: &Headers, body: &[u8]) -> Option<Sdp> {
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
    pub(super) fn finish_call(
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
    pub(super) fn dialog_dest(c: &Call) -> SocketAddr {
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
    pub(super) fn dialog_request(
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

    pub(super) fn send_bye(
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

    pub(super) fn call_timer(&mut self, now: Instant, call: CallId) {
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
    pub(super) fn call_response(
        &mut self,
        now: Instant,
        call: CallId,
        request: &Request,
        resp: Response,
    ) {
        match request.method.as_str() {
            "INVITE" => self.invite_response(now, call, request, resp),
            "REFER" => self.refer_response(now, call, request, resp),
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
    pub(super) fn retry_with_auth(
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

    /// ACK for a 2xx (ours): matched to the dialog by Call-ID and CSeq.
    pub(super) fn dialog_ack(&mut self, _now: Instant, req: Request, cseq: u32) {
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

    pub(super) fn in_dialog_request(
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
            "NOTIFY" => self.incoming_notify(now, stx, call, &req, from),
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
