//! The SP side of one CMPP 2.0 connection, sans-IO.
//!
//! Inputs: `connect(now, timestamp)`, `submit(now, sms)`, `handle_input(now, bytes)`,
//! `handle_timeout(now)`, `connection_lost(now)`, `terminate(now)`. Outputs: bytes to write
//! (`poll_transmit`), events (`poll_event`) and when to be woken next (`poll_timeout`).
//!
//! A submission is one text to one number; a long text becomes several CMPP_SUBMITs
//! (Pk_total/Pk_number, TP_udhi = 1 and a concatenation UDH). At most `window` SUBMITs are
//! outstanding at once. A submission ends with exactly one [`Event::Submitted`] (every part
//! accepted, with the gateway's Msg_Ids as decimal strings — what its status reports name)
//! or [`Event::SubmitFailed`], saying whether the gateway may have it anyway
//! ([`Failure::Unknown`]) or surely has not ([`Failure::Rejected`], [`Failure::NotSent`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::auth;
use crate::pdu::{self, connect_status, result, Body, Connect, DecodeError, Deliver, Pdu, Submit};
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
        }
    }
}

/// One text to one number (E.164; a +86 number goes out as its 11 national digits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    pub to: String,
    pub text: String,
}

pub type SubmitId = u64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The gateway answered with this Result: it does not have the message.
    /// [`result::FLOW_CONTROL`] means "slow down", not "never".
    Rejected { result: u8 },
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
        status: u8,
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

#[derive(Debug)]
enum Request {
    Connect([u8; 16]),
    Submit { id: SubmitId, part: usize },
    ActiveTest,
    Terminate,
}

struct Submission {
    pdus: Vec<Submit>,
    msg_ids: Vec<Option<String>>,
    sent: usize,
}

/// Partial MO messages kept at most.
const MAX_MO_PARTIALS: usize = 256;

pub struct Session {
    cfg: Config,
    state: State,
    next_seq: u32,
    next_submit: SubmitId,
    next_ref: u8,
    outstanding: BTreeMap<u32, (Request, Instant)>,
    submits_in_flight: usize,
    submissions: HashMap<SubmitId, Submission>,
    queue: VecDeque<SubmitId>,
    rx: Vec<u8>,
    tx: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    last_traffic: Instant,
    mo_parts: HashMap<(String, u16), (u8, BTreeMap<u8, String>)>,
}

impl Session {
    pub fn new(cfg: Config, now: Instant) -> Session {
        Session {
            cfg,
            state: State::Closed,
            next_seq: 1,
            next_submit: 1,
            next_ref: 1,
            outstanding: BTreeMap::new(),
            submits_in_flight: 0,
            submissions: HashMap::new(),
            queue: VecDeque::new(),
            rx: Vec::new(),
            tx: VecDeque::new(),
            events: VecDeque::new(),
            last_traffic: now,
            mo_parts: HashMap::new(),
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn pending(&self) -> usize {
        self.submissions.len()
    }

    /// A new TCP connection is up: CMPP_CONNECT with the authenticator for `timestamp`
    /// (`MMDDHHMMSS` in the gateway's time, China Standard Time; see [`auth::timestamp`]).
    pub fn connect(&mut self, now: Instant, timestamp: u32) {
        self.rx.clear();
        self.state = State::Connecting;
        self.last_traffic = now;
        let authenticator =
            auth::authenticator_source(&self.cfg.source_addr, &self.cfg.shared_secret, timestamp);
        let body = Body::Connect(Connect {
            source_addr: self.cfg.source_addr.clone(),
            authenticator,
            version: pdu::VERSION_2_0,
            timestamp,
        });
        self.request(now, Request::Connect(authenticator), body);
    }

    /// Queues a text. Fails at once if it cannot become CMPP_SUBMITs.
    pub fn submit(&mut self, now: Instant, sms: &OutgoingSms) -> Result<SubmitId, String> {
        let pdus = self.build(sms)?;
        let id = self.next_submit;
        self.next_submit += 1;
        let n = pdus.len();
        self.submissions.insert(
            id,
            Submission {
                pdus,
                msg_ids: vec![None; n],
                sent: 0,
            },
        );
        self.queue.push_back(id);
        self.pump(now);
        Ok(id)
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
                .encode()
                .map_err(|e| e.to_string())?;
        }
        Ok(pdus)
    }

    /// Ends the connection politely: CMPP_TERMINATE; [`Event::Closed`] follows the answer
    /// or a timeout.
    pub fn terminate(&mut self, now: Instant) {
        if matches!(self.state, State::Connected | State::Connecting) {
            self.state = State::Terminating;
            self.request(now, Request::Terminate, Body::Terminate);
        }
    }

    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.last_traffic = now;
        self.rx.extend_from_slice(bytes);
        loop {
            match pdu::decode(&self.rx) {
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
                        if let Some((req, _)) = self.outstanding.remove(&sequence) {
                            self.fail_request(now, req, result::BAD_STRUCTURE);
                        }
                    }
                }
            }
        }
        self.pump(now);
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
                let Some((req, _)) = self.outstanding.remove(&p.sequence) else {
                    tracing::debug!(sequence = p.sequence, "answer to no outstanding request");
                    return;
                };
                match (req, body) {
                    (
                        Request::Connect(source),
                        Body::ConnectResp {
                            status,
                            authenticator,
                            ..
                        },
                    ) => {
                        if status != connect_status::OK {
                            self.events.push_back(Event::ConnectFailed {
                                status,
                                forged: false,
                            });
                            self.close(now, format!("CONNECT refused (status {status})"));
                        } else if authenticator
                            != auth::authenticator_ismg(status, &source, &self.cfg.shared_secret)
                        {
                            // The gateway does not know our secret: not the gateway we meant.
                            self.events.push_back(Event::ConnectFailed {
                                status,
                                forged: true,
                            });
                            self.close(now, "gateway's AuthenticatorISMG does not verify".into());
                        } else {
                            self.state = State::Connected;
                            self.events.push_back(Event::Connected);
                        }
                    }
                    (Request::Submit { id, part }, Body::SubmitResp { msg_id, result: r }) => {
                        self.submits_in_flight -= 1;
                        if r == result::OK {
                            self.part_accepted(id, part, msg_id.to_string());
                        } else {
                            self.finish_failed(id, Failure::Rejected { result: r });
                        }
                    }
                    (Request::ActiveTest, Body::ActiveTestResp) => {}
                    (Request::Terminate, Body::TerminateResp) => {
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
                Ok(r) => self.events.push_back(Event::Report {
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
                    self.mo_part(from, to, reference, total, seq, t);
                }
                Some((_, _, _, body)) => {
                    let t = text::decode(d.msg_fmt, body);
                    self.events.push_back(Event::Mo { from, to, text: t })
                }
                None => tracing::warn!("MO with TP_udhi but no readable UDH"),
            }
            return;
        }
        let t = text::decode(d.msg_fmt, &d.content);
        self.events.push_back(Event::Mo { from, to, text: t });
    }

    fn mo_part(&mut self, from: String, to: String, r: u16, total: u8, seq: u8, text: String) {
        let key = (from.clone(), r);
        if !self.mo_parts.contains_key(&key) && self.mo_parts.len() >= MAX_MO_PARTIALS {
            tracing::warn!("too many partial MO messages; dropping a part");
            return;
        }
        let entry = self
            .mo_parts
            .entry(key.clone())
            .or_insert_with(|| (total, BTreeMap::new()));
        entry.1.insert(seq, text);
        if entry.1.len() >= entry.0 as usize {
            if let Some((_, parts)) = self.mo_parts.remove(&key) {
                let text = parts.into_values().collect();
                self.events.push_back(Event::Mo { from, to, text });
            }
        }
    }

    fn part_accepted(&mut self, id: SubmitId, part: usize, msg_id: String) {
        let done = match self.submissions.get_mut(&id) {
            Some(s) => {
                if let Some(slot) = s.msg_ids.get_mut(part) {
                    *slot = Some(msg_id);
                }
                s.msg_ids.iter().all(Option::is_some)
            }
            None => false,
        };
        if done {
            if let Some(s) = self.submissions.remove(&id) {
                let msg_ids = s.msg_ids.into_iter().flatten().collect();
                self.events.push_back(Event::Submitted { id, msg_ids });
            }
        }
    }

    fn fail_request(&mut self, now: Instant, req: Request, r: u8) {
        match req {
            Request::Connect(_) => {
                self.events.push_back(Event::ConnectFailed {
                    status: r,
                    forged: false,
                });
                self.close(now, "CONNECT answered with garbage".into());
            }
            Request::Submit { id, .. } => {
                self.submits_in_flight -= 1;
                let accepted_ids = self.accepted_ids(id);
                // An unreadable answer: the gateway may have taken it.
                self.finish_failed(
                    id,
                    Failure::Unknown {
                        reason: format!("unreadable SUBMIT_RESP (result {r})"),
                        accepted_ids,
                    },
                );
            }
            Request::ActiveTest => {}
            Request::Terminate => self.close(now, "TERMINATE answered with garbage".into()),
        }
    }

    fn finish_failed(&mut self, id: SubmitId, failure: Failure) {
        if self.submissions.remove(&id).is_some() {
            self.queue.retain(|q| *q != id);
            self.events.push_back(Event::SubmitFailed { id, failure });
        }
    }

    fn accepted_ids(&self, id: SubmitId) -> Vec<String> {
        self.submissions
            .get(&id)
            .map(|s| s.msg_ids.iter().flatten().cloned().collect())
            .unwrap_or_default()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let expired: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            let Some((req, _)) = self.outstanding.remove(&seq) else {
                continue;
            };
            match req {
                Request::Submit { id, .. } => {
                    self.submits_in_flight -= 1;
                    let accepted_ids = self.accepted_ids(id);
                    self.finish_failed(
                        id,
                        Failure::Unknown {
                            reason: "no SUBMIT_RESP in time".into(),
                            accepted_ids,
                        },
                    );
                }
                Request::Connect(_) => self.close(now, "no CONNECT_RESP in time".into()),
                Request::ActiveTest => self.close(now, "no ACTIVE_TEST_RESP in time".into()),
                Request::Terminate => self.close(now, "no TERMINATE_RESP in time".into()),
            }
        }
        if self.state == State::Connected
            && now >= self.last_traffic + self.cfg.active_test_interval
            && !self
                .outstanding
                .values()
                .any(|(r, _)| matches!(r, Request::ActiveTest))
        {
            self.request(now, Request::ActiveTest, Body::ActiveTest);
        }
        self.pump(now);
    }

    /// The socket is gone: requests in flight end as [`Failure::Unknown`], submissions not
    /// started stay queued for the next connection.
    pub fn connection_lost(&mut self, now: Instant) {
        self.tx.clear();
        self.close(now, "connection lost".into());
    }

    fn close(&mut self, now: Instant, reason: String) {
        let was_open = self.state != State::Closed;
        self.state = State::Closed;
        self.rx.clear();
        let started: Vec<SubmitId> = self
            .submissions
            .iter()
            .filter(|(_, s)| s.sent > 0)
            .map(|(id, _)| *id)
            .collect();
        self.outstanding.clear();
        self.submits_in_flight = 0;
        for id in started {
            let accepted_ids = self.accepted_ids(id);
            self.finish_failed(
                id,
                Failure::Unknown {
                    reason: reason.clone(),
                    accepted_ids,
                },
            );
        }
        if was_open {
            self.events.push_back(Event::Closed { reason });
        }
        self.last_traffic = now;
    }

    /// Gives up every submission that has not gone out yet (shutting down).
    pub fn abandon_queued(&mut self) {
        let ids: Vec<SubmitId> = self.queue.drain(..).collect();
        for id in ids {
            if self.submissions.get(&id).is_some_and(|s| s.sent == 0) {
                self.finish_failed(
                    id,
                    Failure::NotSent {
                        reason: "client shut down".into(),
                    },
                );
            } else {
                self.queue.push_back(id);
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.tx.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let deadline = self.outstanding.values().map(|(_, d)| *d).min();
        let keepalive = (self.state == State::Connected)
            .then(|| self.last_traffic + self.cfg.active_test_interval);
        match (deadline, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn pump(&mut self, now: Instant) {
        if self.state != State::Connected {
            return;
        }
        while self.submits_in_flight < self.cfg.window.max(1) {
            let Some(&id) = self.queue.front() else {
                break;
            };
            let Some(s) = self.submissions.get_mut(&id) else {
                self.queue.pop_front();
                continue;
            };
            let part = s.sent;
            let Some(sub) = s.pdus.get(part).cloned() else {
                self.queue.pop_front();
                continue;
            };
            s.sent += 1;
            if s.sent == s.pdus.len() {
                self.queue.pop_front();
            }
            self.submits_in_flight += 1;
            self.request(now, Request::Submit { id, part }, Body::Submit(sub));
        }
    }

    fn request(&mut self, now: Instant, req: Request, body: Body) {
        let seq = self.next_seq;
        self.next_seq = seq.checked_add(1).unwrap_or(1);
        match Pdu::new(seq, body).encode() {
            Ok(bytes) => {
                self.tx.push_back(bytes);
                self.outstanding
                    .insert(seq, (req, now + self.cfg.response_timeout));
            }
            Err(e) => tracing::error!(%e, "CMPP request does not encode"),
        }
    }

    fn respond(&mut self, sequence: u32, body: Body) {
        if let Ok(bytes) = Pdu::new(sequence, body).encode() {
            self.tx.push_back(bytes);
        }
    }
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
