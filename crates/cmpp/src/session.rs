//! The SP side of one CMPP 2.0 or 3.0 connection, sans-IO.
//!
//! Inputs: `connect_at(now, timestamp)` (or `connect(now, wall_clock)`), `submit(now, sms)`, `handle_input(now, bytes)`,
//! `handle_timeout(now)`, `connection_lost(now)`, `terminate(now)`. Outputs: bytes to write
//! (`poll_transmit`), events (`poll_event`) and when to be woken next (`poll_timeout`).
//!
//! A submission is one text to one number; a long text becomes several CMPP_SUBMITs
//! (Pk_total/Pk_number, TP_udhi = 1 and a concatenation UDH). At most `window` SUBMITs are
//! outstanding at once. A submission ends with exactly one [`Event::Submitted`] (every part
//! accepted, with the gateway's Msg_Ids as decimal strings — what its status reports name)
//! or [`Event::SubmitFailed`], saying whether the gateway may have it anyway
//! ([`Failure::Unknown`]) or surely has not ([`Failure::Rejected`], [`Failure::NotSent`]).

use std::time::{Duration, Instant, SystemTime};

use waihu_smsc_client::{MoParts, Request, Settled, Window};

use crate::auth;
use crate::pdu::{
    self, connect_status, result, Body, Connect, DecodeError, Deliver, Pdu, Submit, Version,
};
use crate::text;

#[derive(Debug, Clone)]
pub struct Config {
    /// The SP's enterprise code (Source_Addr, Msg_src), 6 characters.
    pub source_addr: String,
    pub shared_secret: String,
    /// The service code (Service_Id) the carrier assigned.
    pub service_id: String,
    /// The SP's number messages come from (Src_Id), e.g. `1069001234`.
    pub src_id: String,
    /// SUBMITs in flight at once (CMPP suggests 16 at most).
    pub window: usize,
    pub response_timeout: Duration,
    /// Send ACTIVE_TEST after this long without traffic.
    pub active_test_interval: Duration,
    /// Ask for status reports (Registered_Delivery = 1).
    pub request_reports: bool,
    /// The protocol version to log in with (the gateway's contract says which).
    pub version: Version,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            source_addr: String::new(),
            shared_secret: String::new(),
            service_id: String::new(),
            src_id: String::new(),
            window: 16,
            response_timeout: Duration::from_secs(10),
            active_test_interval: Duration::from_secs(60),
            request_reports: true,
            version: Version::V2_0,
        }
    }
}

/// One text to one number (E.164; a +86 number goes out as its 11 national digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    pub to: String,
    pub text: String,
}

pub use waihu_smsc_client::{ClientSession, SubmitId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The gateway answered with this Result: it does not have the message.
    /// [`result::FLOW_CONTROL`] means "slow down", not "never".
    Rejected { result: u32 },
    /// Never put on the wire.
    NotSent { reason: String },
    /// A SUBMIT went out and no answer came: the gateway may have it.
    Unknown {
        reason: String,
        accepted_ids: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connected,
    /// The gateway refused the CONNECT (status 3: authentication failed), or its
    /// AuthenticatorISMG did not verify (`status` 0 and `forged` true).
    ConnectFailed {
        status: u32,
        forged: bool,
    },
    Submitted {
        id: SubmitId,
        msg_ids: Vec<String>,
    },
    SubmitFailed {
        id: SubmitId,
        failure: Failure,
    },
    /// A status report for a message this or an earlier connection submitted.
    Report {
        /// The handset, E.164.
        to: String,
        msg_id: String,
        stat: String,
        delivered: bool,
    },
    /// A message from a handset, reassembled if it came in parts.
    Mo {
        from: String,
        to: String,
        text: String,
    },
    Closed {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Connecting,
    Connected,
    Terminating,
}

/// Requests other than CMPP_SUBMIT.
#[derive(Debug)]
enum Control {
    /// With the AuthenticatorSource sent, which the gateway's answer must be computed from.
    Connect([u8; 16]),
    ActiveTest,
    Terminate,
}

pub struct Session {
    cfg: Config,
    state: State,
    next_ref: u8,
    /// Submissions (one CMPP_SUBMIT per part) and requests awaiting their answer.
    window: Window<Submit, Control, Event>,
    rx: Vec<u8>,
    last_traffic: Instant,
    mo_parts: MoParts<u16>,
}

impl Session {
    pub fn state(&self) -> State {
        self.state
    }

    pub fn pending(&self) -> usize {
        self.window.pending()
    }

    /// A new TCP connection is up: CMPP_CONNECT with the authenticator for `timestamp`
    /// (`MMDDHHMMSS` in the gateway's time, China Standard Time; see [`auth::timestamp`]).
    pub fn connect_at(&mut self, now: Instant, timestamp: u32) {
        self.rx.clear();
        self.state = State::Connecting;
        self.last_traffic = now;
        let authenticator =
            auth::authenticator_source(&self.cfg.source_addr, &self.cfg.shared_secret, timestamp);
        let body = Body::Connect(Connect {
            source_addr: self.cfg.source_addr.clone(),
            authenticator,
            version: self.cfg.version.octet(),
            timestamp,
        });
        self.request(now, Control::Connect(authenticator), body);
    }

    fn build(&mut self, sms: &OutgoingSms) -> Result<Vec<Submit>, String> {
        let dest = national(&sms.to)?;
        let plan = text::plan(&sms.text);
        let total = plan.part_count();
        if total > 255 {
            return Err(format!("text needs {total} parts (at most 255)"));
        }
        let base = Submit {
            pk_total: total as u8,
            pk_number: 1,
            registered_delivery: u8::from(self.cfg.request_reports),
            msg_level: 1,
            service_id: self.cfg.service_id.clone(),
            // 2: the fee terminal field says who pays; "01" free.
            fee_user_type: 2,
            msg_fmt: plan.msg_fmt,
            msg_src: self.cfg.source_addr.clone(),
            fee_type: "01".into(),
            fee_code: "000000".into(),
            src_id: self.cfg.src_id.clone(),
            dest_terminal_ids: vec![dest],
            ..Submit::default()
        };
        let pdus: Vec<Submit> = if total == 1 {
            vec![Submit {
                content: plan.parts.concat(),
                ..base
            }]
        } else {
            let reference = self.next_ref;
            self.next_ref = self.next_ref.wrapping_add(1);
            plan.parts
                .iter()
                .enumerate()
                .map(|(i, part)| {
                    let mut content = vec![5, 0, 3, reference, total as u8, (i + 1) as u8];
                    content.extend_from_slice(part);
                    Submit {
                        pk_number: (i + 1) as u8,
                        tp_udhi: 1,
                        content,
                        ..base.clone()
                    }
                })
                .collect()
        };
        for s in &pdus {
            Pdu::new(0, Body::Submit(s.clone()))
                .encode(self.cfg.version)
                .map_err(|e| e.to_string())?;
        }
        Ok(pdus)
    }

    /// Ends the connection politely: CMPP_TERMINATE; [`Event::Closed`] follows the answer
    /// or a timeout.
    pub fn terminate(&mut self, now: Instant) {
        if matches!(self.state, State::Connected | State::Connecting) {
            self.state = State::Terminating;
            self.request(now, Control::Terminate, Body::Terminate);
        }
    }

    fn handle_pdu(&mut self, now: Instant, p: Pdu) {
        match p.body {
            Body::ActiveTest => self.respond(p.sequence, Body::ActiveTestResp),
            Body::Terminate => {
                self.respond(p.sequence, Body::TerminateResp);
                self.close(now, "gateway terminated the connection".into());
            }
            Body::Deliver(d) => {
                self.respond(
                    p.sequence,
                    Body::DeliverResp {
                        msg_id: d.msg_id,
                        result: result::OK,
                    },
                );
                self.deliver(d);
            }
            Body::Connect(_) | Body::Submit(_) => {
                tracing::warn!(sequence = p.sequence, "gateway sent an SP-side request");
            }
            Body::Unknown { command_id, .. } => {
                tracing::warn!(command_id, "unknown CMPP command ignored");
            }
            body => {
                let Some(req) = self.window.answered(p.sequence) else {
                    tracing::debug!(sequence = p.sequence, "answer to no outstanding request");
                    return;
                };
                match (req, body) {
                    (
                        Request::Control(Control::Connect(source)),
                        Body::ConnectResp {
                            status,
                            authenticator,
                            ..
                        },
                    ) => {
                        if status != connect_status::OK {
                            self.window.emit(Event::ConnectFailed {
                                status,
                                forged: false,
                            });
                            self.close(now, format!("CONNECT refused (status {status})"));
                        } else if authenticator
                            != auth::authenticator_ismg(
                                self.cfg.version,
                                status,
                                &source,
                                &self.cfg.shared_secret,
                            )
                        {
                            // The gateway does not know our secret: not the gateway we meant.
                            self.window.emit(Event::ConnectFailed {
                                status,
                                forged: true,
                            });
                            self.close(now, "gateway's AuthenticatorISMG does not verify".into());
                        } else {
                            self.state = State::Connected;
                            self.window.emit(Event::Connected);
                        }
                    }
                    (Request::Submit { id, part }, Body::SubmitResp { msg_id, result: r }) => {
                        if r == result::OK {
                            self.window.accepted(id, part, msg_id.to_string());
                        } else {
                            self.window.finish(id, || Event::SubmitFailed {
                                id,
                                failure: Failure::Rejected { result: r },
                            });
                        }
                    }
                    (Request::Control(Control::ActiveTest), Body::ActiveTestResp) => {}
                    (Request::Control(Control::Terminate), Body::TerminateResp) => {
                        self.close(now, "terminated".into())
                    }
                    (req, body) => {
                        tracing::warn!(?body, "CMPP answer of the wrong kind");
                        self.fail_request(now, req, result::BAD_COMMAND);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, d: Deliver) {
        let from = e164(&d.src_terminal_id);
        if d.registered_delivery == 1 {
            match pdu::StatusReport::decode(&d.content) {
                Ok(r) => self.window.emit(Event::Report {
                    to: from,
                    msg_id: r.msg_id.to_string(),
                    delivered: r.delivered(),
                    stat: r.stat,
                }),
                Err(e) => tracing::warn!(%e, "unparseable CMPP status report"),
            }
            return;
        }
        let to = d.dest_id.clone();
        if d.tp_udhi == 1 {
            match text::split_udh(&d.content) {
                Some((reference, total, seq, body)) if total > 1 => {
                    let t = text::decode(d.msg_fmt, body);
                    if let Some(text) = self.mo_parts.add(&from, reference, total, seq, t) {
                        self.window.emit(Event::Mo { from, to, text });
                    }
                }
                Some((_, _, _, body)) => {
                    let t = text::decode(d.msg_fmt, body);
                    self.window.emit(Event::Mo { from, to, text: t })
                }
                None => tracing::warn!("MO with TP_udhi but no readable UDH"),
            }
            return;
        }
        let t = text::decode(d.msg_fmt, &d.content);
        self.window.emit(Event::Mo { from, to, text: t });
    }

    fn fail_request(&mut self, now: Instant, req: Request<Control>, r: u32) {
        match req {
            Request::Control(Control::Connect(_)) => {
                self.window.emit(Event::ConnectFailed {
                    status: r,
                    forged: false,
                });
                self.close(now, "CONNECT answered with garbage".into());
            }
            // An unreadable answer: the gateway may have taken it.
            Request::Submit { id, .. } => self
                .window
                .unknown(id, format!("unreadable SUBMIT_RESP (result {r})")),
            Request::Control(Control::ActiveTest) => {}
            Request::Control(Control::Terminate) => {
                self.close(now, "TERMINATE answered with garbage".into())
            }
        }
    }

    fn close(&mut self, now: Instant, reason: String) {
        let was_open = self.state != State::Closed;
        self.state = State::Closed;
        self.rx.clear();
        self.window.link_lost(&reason);
        if was_open {
            self.window.emit(Event::Closed { reason });
        }
        self.last_traffic = now;
    }

    fn pump(&mut self, now: Instant) {
        if self.state == State::Connected {
            let v = self.cfg.version;
            self.window
                .pump(now, |seq, sub| Pdu::new(seq, Body::Submit(sub)).encode(v));
        }
    }

    fn request(&mut self, now: Instant, req: Control, body: Body) {
        let v = self.cfg.version;
        self.window
            .request(now, req, |seq| Pdu::new(seq, body).encode(v));
    }

    fn respond(&mut self, sequence: u32, body: Body) {
        if let Ok(bytes) = Pdu::new(sequence, body).encode(self.cfg.version) {
            self.window.push_transmit(bytes);
        }
    }
}

impl From<Settled> for Event {
    fn from(s: Settled) -> Event {
        match s {
            Settled::Submitted { id, ids } => Event::Submitted { id, msg_ids: ids },
            Settled::NotSent { id, reason } => Event::SubmitFailed {
                id,
                failure: Failure::NotSent { reason },
            },
            Settled::Unknown {
                id,
                reason,
                accepted_ids,
            } => Event::SubmitFailed {
                id,
                failure: Failure::Unknown {
                    reason,
                    accepted_ids,
                },
            },
        }
    }
}

impl ClientSession for Session {
    type Config = Config;
    type Sms = OutgoingSms;
    type Event = Event;
    const PROTOCOL: &'static str = "CMPP";

    fn new(cfg: Config, now: Instant) -> Session {
        Session {
            window: Window::new(cfg.window, cfg.response_timeout, u32::MAX),
            cfg,
            state: State::Closed,
            next_ref: 1,
            rx: Vec::new(),
            last_traffic: now,
            mo_parts: MoParts::default(),
        }
    }

    /// CONNECT stamped with `wall` in China Standard Time ([`Session::connect_at`]).
    fn connect(&mut self, now: Instant, wall: SystemTime) {
        self.connect_at(now, china_timestamp(wall.into()));
    }

    /// Queues a text. Fails at once if it cannot become CMPP_SUBMITs.
    fn submit(&mut self, now: Instant, sms: &OutgoingSms) -> Result<SubmitId, String> {
        let pdus = self.build(sms)?;
        let id = self.window.enqueue(pdus);
        self.pump(now);
        Ok(id)
    }

    fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.last_traffic = now;
        self.rx.extend_from_slice(bytes);
        loop {
            match pdu::decode(&self.rx, self.cfg.version) {
                Ok(None) => break,
                Ok(Some((p, used))) => {
                    self.rx.drain(..used);
                    self.handle_pdu(now, p);
                    if self.state == State::Closed {
                        break;
                    }
                }
                Err(DecodeError::BadLength(n)) => {
                    self.close(now, format!("gateway sent an impossible Total_Length {n}"));
                    break;
                }
                Err(DecodeError::Malformed {
                    command_id,
                    sequence,
                    frame_len,
                    reason,
                }) => {
                    self.rx.drain(..frame_len.min(self.rx.len()));
                    tracing::warn!(command_id, sequence, reason, "malformed CMPP message");
                    if command_id == pdu::DELIVER {
                        // Answered, so the gateway does not resend garbage forever.
                        self.respond(
                            sequence,
                            Body::DeliverResp {
                                msg_id: 0,
                                result: result::BAD_STRUCTURE,
                            },
                        );
                    } else if command_id & 0x8000_0000 != 0 {
                        if let Some(req) = self.window.answered(sequence) {
                            self.fail_request(now, req, result::BAD_STRUCTURE);
                        }
                    }
                }
            }
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        for c in self.window.expired(now, "no SUBMIT_RESP in time") {
            let what = match c {
                Control::Connect(_) => "CONNECT_RESP",
                Control::ActiveTest => "ACTIVE_TEST_RESP",
                Control::Terminate => "TERMINATE_RESP",
            };
            self.close(now, format!("no {what} in time"));
        }
        if self.state == State::Connected
            && now >= self.last_traffic + self.cfg.active_test_interval
            && !self.window.awaits(|c| matches!(c, Control::ActiveTest))
        {
            self.request(now, Control::ActiveTest, Body::ActiveTest);
        }
        self.pump(now);
    }

    /// The socket is gone: requests in flight end as [`Failure::Unknown`], submissions not
    /// started stay queued for the next connection.
    fn connection_lost(&mut self, now: Instant) {
        self.window.clear_transmit();
        self.close(now, "connection lost".into());
    }

    fn log_out(&mut self, now: Instant) {
        self.terminate(now)
    }

    /// Gives up every submission that has not gone out yet (shutting down).
    fn abandon_queued(&mut self) {
        self.window.abandon_unsent("client shut down");
    }

    fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.window.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.window.poll_event()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let keepalive = (self.state == State::Connected)
            .then(|| self.last_traffic + self.cfg.active_test_interval);
        self.window.deadline().into_iter().chain(keepalive).min()
    }
}

/// `MMDDHHMMSS` of `now` in China Standard Time.
pub fn china_timestamp(now: chrono::DateTime<chrono::Utc>) -> u32 {
    use chrono::{Datelike, Timelike};
    let cst = now + chrono::Duration::hours(8);
    auth::timestamp(
        cst.month(),
        cst.day(),
        cst.hour(),
        cst.minute(),
        cst.second().min(59),
    )
    .unwrap_or(0)
}

/// The Dest_terminal_Id for an E.164 number: +86 numbers as their national digits (what
/// Chinese gateways expect), others as digits without `+`.
pub fn national(e164: &str) -> Result<String, String> {
    let digits = e164.strip_prefix('+').unwrap_or(e164);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 21 {
        return Err(format!("{e164:?} is not a phone number"));
    }
    Ok(match digits.strip_prefix("86") {
        Some(n) if e164.starts_with('+') => n.to_string(),
        _ => digits.to_string(),
    })
}

/// A terminal id from the gateway as E.164: 11 digits starting with 1 are a Chinese mobile,
/// `86…` is already international; anything else is returned as it came.
pub fn e164(terminal: &str) -> String {
    let t = terminal.trim();
    if t.len() == 11 && t.starts_with('1') && t.bytes().all(|b| b.is_ascii_digit()) {
        format!("+86{t}")
    } else if t.len() == 13 && t.starts_with("86") && t.bytes().all(|b| b.is_ascii_digit()) {
        format!("+{t}")
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests;
