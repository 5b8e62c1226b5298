//! Incoming calls (UAS): INVITE, ring, early media, answer, reject and CANCEL.

use std::net::SocketAddr;
use std::time::Instant;

use waihu_core::CallOutcome;

use super::dialogs::{contact_uri, sdp_body, strip_tag, tag_of};
use super::{
    outcome_for_status, Call, CallId, CallState, Cancel, Dialog, OkRetrans, TimerKey, Transport,
    UaEvent, UserAgent, ALLOW,
};
use crate::msg::{NameAddr, Request, Response};
use crate::sdp::Sdp;

impl UserAgent {
    pub(super) fn incoming_invite(
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
    pub(super) fn uas_response(&self, call: CallId, status: u16) -> Option<(u64, Response)> {
        let c = self.calls.get(&call)?;
        if c.uac || c.state != CallState::Incoming {
            return None;
        }
        let stx = c.stx?;
        let req = c.invite_req.as_ref()?;
        let mut r = self.response_for(req, c.fallback_dest, status, Some(&c.dialog.local_tag));
        if status < 300 {
            // RFC 3261 §12.1.1: a dialog-creating response carries the request's
            // Record-Route, so the caller's in-dialog requests follow the proxies too.
            if status > 100 {
                for rr in req.headers.get_all("Record-Route") {
                    r.headers.push("Record-Route", rr);
                }
            }
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

    pub(super) fn incoming_cancel(
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
}
