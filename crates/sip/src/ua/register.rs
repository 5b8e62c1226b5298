//! REGISTER (RFC 3261 §10): bindings kept alive at half the granted lifetime, digest
//! challenges, and after a failure (refusal or timeout) a retry with exponential back-off:
//! 2 s, 4 s, 8 s ... capped at 60 s ([`register_retry_delay`]).

use std::time::{Duration, Instant};

use super::{Owner, Reg, RegId, Registration, TimerKey, UaEvent, UserAgent};
use crate::auth::Challenge;
use crate::msg::{Headers, NameAddr, Request, Response, SipUri};

/// Wait before the next REGISTER after `failures` consecutive failures (1-based):
/// 2 s doubling per failure, at most 60 s.
pub fn register_retry_delay(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(5);
    Duration::from_secs((2u64 << exp).min(60))
}

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
            failures: 0,
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

    pub(super) fn reg_response(
        &mut self,
        now: Instant,
        id: RegId,
        request: &Request,
        resp: Response,
    ) {
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
            r.failures = 0;
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

    pub(super) fn reg_failed(&mut self, now: Instant, id: RegId) {
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        if r.removing {
            self.regs.remove(&id);
            return;
        }
        // Keep trying, backing off: an unattended dialer must recover by itself, without
        // hammering a registrar that is down or refusing us.
        r.auth_tries = 0;
        r.failures = r.failures.saturating_add(1);
        let at = now + register_retry_delay(r.failures);
        r.refresh_at = Some(at);
        self.arm(at, TimerKey::Reg(id));
    }

    pub(super) fn reg_timer(&mut self, now: Instant, id: RegId) {
        let Some(r) = self.regs.get_mut(&id) else {
            return;
        };
        if r.refresh_at.is_some_and(|at| now >= at) {
            r.refresh_at = None;
            self.send_register(now, id, None);
        }
    }
}
