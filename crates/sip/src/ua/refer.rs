//! Blind transfer by REFER (RFC 3515, with the call-transfer practice of RFC 5589): we
//! ask the callee's UA (the transferee) to call a third party (the transfer target),
//! and follow its INVITE through the NOTIFYs of the implicit `refer` subscription.
//!
//! Policy stays with the caller of the core: the UA reports [`TransferProgress`] as it
//! arrives; the runtime decides when to hang up (RFC 5589 §6: the transferor ends its
//! dialog after a successful NOTIFY).

use std::net::SocketAddr;
use std::time::Instant;

use super::{CallId, CallState, Owner, SipError, UaEvent, UserAgent};
use crate::msg::{Request, Response, SipUri};

/// What we learnt about a transfer we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferProgress {
    /// The transferee accepted the REFER (2xx, normally 202 Accepted).
    Accepted { status: u16 },
    /// The transferee refused the REFER (`status`), or never answered it (`None`).
    Refused { status: Option<u16> },
    /// A NOTIFY reported the status line of the transferee's INVITE to the target
    /// (`message/sipfrag`). `terminated`: the subscription is over (the last report).
    Notified {
        status: u16,
        reason: String,
        terminated: bool,
    },
}

impl TransferProgress {
    /// The transfer's final answer, once known: `Some(true)` succeeded (target answered),
    /// `Some(false)` failed; `None` while it is still under way.
    pub fn settled(&self) -> Option<bool> {
        match self {
            TransferProgress::Accepted { .. } => None,
            TransferProgress::Refused { .. } => Some(false),
            TransferProgress::Notified {
                status, terminated, ..
            } => match status {
                200..=299 => Some(true),
                100..=199 if !terminated => None,
                _ => Some(false),
            },
        }
    }
}

/// The status line of a `message/sipfrag` body (RFC 3420): `SIP/2.0 200 OK`.
pub fn sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let rest = line.strip_prefix("SIP/2.0")?;
    let rest = rest.trim_start();
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = code.parse().ok()?;
    (100..=699)
        .contains(&status)
        .then(|| (status, reason.trim().to_string()))
}

/// A Refer-To value for `target`: a sip:, sips: or tel: URI, or a bare number (digits,
/// an optional leading `+`, `-` separators), which goes to the domain of `remote` (the
/// URI the call was placed to: the same trunk or proxy reaches the number).
fn refer_to_value(target: &str, remote: &str) -> Result<String, SipError> {
    let t = target.trim();
    let bad = || SipError::BadTarget(target.to_string());
    let digits = t.strip_prefix('+').unwrap_or(t);
    if !digits.is_empty()
        && digits.len() <= 32
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'-')
        && digits.bytes().any(|b| b.is_ascii_digit())
    {
        let r = SipUri::parse(remote)
            .filter(|r| !r.host.is_empty())
            .ok_or_else(bad)?;
        let scheme = if r.scheme == "sips" { "sips" } else { "sip" };
        let number: String = t.chars().filter(|c| *c != '-').collect();
        return Ok(match r.port {
            Some(p) => format!("<{scheme}:{number}@{}:{p}>", r.host),
            None => format!("<{scheme}:{number}@{}>", r.host),
        });
    }
    if t.bytes()
        .any(|b| b.is_ascii_control() || b == b'<' || b == b'>' || b == b'"')
    {
        return Err(bad());
    }
    if let Some(num) = t.strip_prefix("tel:") {
        if num.is_empty()
            || !num
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | ';' | '='))
        {
            return Err(bad());
        }
        return Ok(format!("<{t}>"));
    }
    let uri = SipUri::parse(t).ok_or_else(bad)?;
    if !matches!(uri.scheme.as_str(), "sip" | "sips") || uri.host.is_empty() {
        return Err(bad());
    }
    Ok(format!("<{t}>"))
}

impl UserAgent {
    /// Asks the other side of an answered call to call `target` instead (blind transfer).
    /// Progress arrives as [`UaEvent::Transfer`]; the call itself stays up until the
    /// runtime hangs it up.
    pub fn refer(&mut self, now: Instant, call: CallId, target: &str) -> Result<(), SipError> {
        let c = self.calls.get(&call).ok_or(SipError::UnknownCall(call))?;
        let refer_to = refer_to_value(target, &c.dialog.remote_uri)?;
        if c.state != CallState::Confirmed {
            return Err(SipError::BadState(call, "REFER"));
        }
        let referred_by = c.dialog.local_uri.clone();
        let contact = self.contact(c.transport);
        let (mut req, dest, transport) = self
            .dialog_request(call, "REFER", None)
            .ok_or(SipError::UnknownCall(call))?;
        req.headers.push("Contact", contact);
        req.headers.push("Refer-To", refer_to);
        req.headers.push("Referred-By", referred_by);
        req.headers.push("Content-Length", "0");
        self.start_client_tx(now, req, dest, transport, Owner::Call(call));
        Ok(())
    }

    /// The final response to our REFER.
    pub(super) fn refer_response(
        &mut self,
        now: Instant,
        call: CallId,
        request: &Request,
        resp: Response,
    ) {
        if resp.status < 200 {
            return;
        }
        if matches!(resp.status, 401 | 407) && self.retry_with_auth(now, call, request, &resp) {
            return;
        }
        let progress = if resp.status < 300 {
            TransferProgress::Accepted {
                status: resp.status,
            }
        } else {
            TransferProgress::Refused {
                status: Some(resp.status),
            }
        };
        self.emit(UaEvent::Transfer { call, progress });
    }

    /// Our REFER was never answered (timer F).
    pub(super) fn refer_timed_out(&mut self, call: CallId) {
        self.emit(UaEvent::Transfer {
            call,
            progress: TransferProgress::Refused { status: None },
        });
    }

    /// An in-dialog NOTIFY (the `refer` subscription's reports). Answered 200 when it is a
    /// refer report we can read, 489 Bad Event for any other package, 400 for a body that
    /// is not a sipfrag status line.
    pub(super) fn incoming_notify(
        &mut self,
        now: Instant,
        stx: u64,
        call: CallId,
        req: &Request,
        from: SocketAddr,
    ) {
        let event = req.headers.get("Event").unwrap_or("");
        let package = event.split(';').next().unwrap_or("").trim();
        if !package.eq_ignore_ascii_case("refer") {
            let r = self.response_for(req, from, 489, None);
            self.stx_respond(now, stx, &r);
            return;
        }
        let Some((status, reason)) = sipfrag_status(&req.body) else {
            let r = self.response_for(req, from, 400, None);
            self.stx_respond(now, stx, &r);
            return;
        };
        let terminated = req
            .headers
            .get("Subscription-State")
            .map(|s| {
                s.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .eq_ignore_ascii_case("terminated")
            })
            .unwrap_or(false);
        let r = self.response_for(req, from, 200, None);
        self.stx_respond(now, stx, &r);
        self.emit(UaEvent::Transfer {
            call,
            progress: TransferProgress::Notified {
                status,
                reason,
                terminated,
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sipfrag_status_lines() {
        assert_eq!(
            sipfrag_status(b"SIP/2.0 200 OK\r\n"),
            Some((200, "OK".into()))
        );
        assert_eq!(
            sipfrag_status(b"\r\nSIP/2.0 100 Trying"),
            Some((100, "Trying".into()))
        );
        assert_eq!(sipfrag_status(b"SIP/2.0 486"), Some((486, String::new())));
        assert_eq!(sipfrag_status(b"SIP/2.0 99 Odd"), None);
        assert_eq!(sipfrag_status(b"HTTP/1.1 200 OK"), None);
        assert_eq!(sipfrag_status(b""), None);
        assert_eq!(sipfrag_status(&[0xff, 0xfe]), None);
    }

    #[test]
    fn refer_to_targets() {
        let remote = "sip:+8613800138000@sbc.example.com:5080";
        let v = |t: &str| refer_to_value(t, remote);
        assert_eq!(
            v("sip:400@127.0.0.1:5070").unwrap(),
            "<sip:400@127.0.0.1:5070>"
        );
        assert_eq!(v("tel:+86-10-12345678").unwrap(), "<tel:+86-10-12345678>");
        // A bare number goes where the call went.
        assert_eq!(
            v("400-123-4567").unwrap(),
            "<sip:4001234567@sbc.example.com:5080>"
        );
        assert_eq!(
            refer_to_value("+861012345678", "sips:a@carrier.example").unwrap(),
            "<sips:+861012345678@carrier.example>"
        );
        assert!(refer_to_value("4001", "not a uri").is_err());
        for bad in [
            "40a1",
            "+",
            "--",
            "http://x",
            "sip:a@b>\r\nX: y",
            "tel:",
            "tel:abc",
            "",
        ] {
            assert!(v(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn settled() {
        let n = |status, terminated| TransferProgress::Notified {
            status,
            reason: String::new(),
            terminated,
        };
        assert_eq!(TransferProgress::Accepted { status: 202 }.settled(), None);
        assert_eq!(n(100, false).settled(), None);
        assert_eq!(n(180, false).settled(), None);
        assert_eq!(n(200, true).settled(), Some(true));
        assert_eq!(n(486, true).settled(), Some(false));
        assert_eq!(n(100, true).settled(), Some(false));
        assert_eq!(
            TransferProgress::Refused { status: Some(603) }.settled(),
            Some(false)
        );
    }
}
