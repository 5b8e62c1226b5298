//! Incoming REGISTER: when a [`Registrar`] is attached the agent is the registrar of its
//! domain (RFC 3261 §10.3); the registrar decides, this file wraps its reply in a response
//! sent through the server transaction (so retransmitted REGISTERs get the same answer).
//! Without one, REGISTER is refused with 405 like any method the agent does not serve.

use std::net::SocketAddr;
use std::time::Instant;

use super::UserAgent;
use crate::msg::Request;
use crate::registrar::{Binding, Ms, Registrar};

impl UserAgent {
    /// Makes this agent answer REGISTER with `registrar`, whose clock starts at `now`
    /// (its milliseconds are counted from this instant).
    pub fn set_registrar(&mut self, now: Instant, registrar: Registrar) {
        self.registrar = Some((registrar, now));
    }

    /// The attached registrar, if any.
    pub fn registrar(&self) -> Option<&Registrar> {
        self.registrar.as_ref().map(|(r, _)| r)
    }

    fn registrar_ms(origin: Instant, now: Instant) -> Ms {
        now.saturating_duration_since(origin).as_millis() as Ms
    }

    /// The live contacts of `user` at `now` (empty without a registrar), newest first.
    pub fn registrar_lookup(&self, user: &str, now: Instant) -> Vec<Binding> {
        match &self.registrar {
            Some((r, origin)) => r.lookup(user, Self::registrar_ms(*origin, now)),
            None => Vec::new(),
        }
    }

    pub(super) fn incoming_register(
        &mut self,
        now: Instant,
        stx: u64,
        req: &Request,
        from: SocketAddr,
    ) {
        let Some((reg, origin)) = self.registrar.as_mut() else {
            return;
        };
        let ms = Self::registrar_ms(*origin, now);
        reg.purge(ms);
        let reply = reg.handle(req, from, ms);
        let tag = self.token();
        let mut r = self.response_for(req, from, reply.status, Some(&tag));
        r.reason = reply.reason;
        for (n, v) in reply.headers {
            r.headers.push(n, v);
        }
        self.stx_respond(now, stx, &r);
    }
}
