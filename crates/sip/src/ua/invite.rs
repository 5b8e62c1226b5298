//! Outgoing calls (UAC): INVITE, provisional and final responses, CANCEL, stray 2xx.

use std::time::{Duration, Instant};

use waihu_core::CallOutcome;

use super::dialogs::{contact_uri, sdp_body, tag_of, uac_route_set};
use super::{
    outcome_for_status, Call, CallId, CallState, Cancel, Dialog, OutgoingCall, Owner, SipError,
    TimerKey, Transport, UaEvent, UserAgent, ALLOW,
};
use crate::msg::{parse_cseq, Headers, NameAddr, Request, Response, SipUri, Via};

impl UserAgent {
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

    pub(super) fn request_cancel(
        &mut self,
        now: Instant,
        call: CallId,
        outcome: CallOutcome,
        reason: String,
    ) {
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

    pub(super) fn invite_response(
        &mut self,
        now: Instant,
        call: CallId,
        request: &Request,
        resp: Response,
    ) {
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
    pub(super) fn invite_2xx_without_tx(&mut self, now: Instant, resp: Response) {
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
            .and_then(|v| Transport::from_via(&v.transport))
            .unwrap_or(Transport::Udp);
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
}
