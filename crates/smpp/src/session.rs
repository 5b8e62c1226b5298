//! The client side of one SMPP 3.4 transceiver bind, sans-IO.
//!
//! Inputs: `connect(now)`, `submit(now, sms)`, `handle_input(now, bytes)`,
//! `handle_timeout(now)`, `connection_lost(now)`. Outputs: bytes to write
//! (`poll_transmit`), events (`poll_event`) and when to be woken next (`poll_timeout`).
//!
//! A submission is one text to one number; a long text becomes several submit_sm PDUs (one
//! per segment, concatenated with a UDH) or one PDU with a `message_payload` TLV. At most
//! `window` submit_sm are outstanding at once; the rest wait in order. A submission ends with
//! exactly one event: [`Event::Submitted`] (every segment accepted, with the SMSC's message
//! ids), or [`Event::SubmitFailed`] saying whether the SMSC may nevertheless have the message
//! ([`Failure::Unknown`]: a request went out and no answer came — the caller must not resend
//! blindly) or surely does not ([`Failure::Rejected`], [`Failure::NotSent`]).

use std::time::{Duration, Instant, SystemTime};

use waihu_smsc_client::{MoParts, Request, Settled, Window};

use crate::pdu::{self, esm, status, tag, Address, Bind, Body, DecodeError, Pdu, Sm, Tlv};
use crate::receipt::{self, Receipt};
use crate::text;

#[derive(Debug, Clone)]
pub struct Config {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    /// Requests in flight at once (submit_sm only; enquire_link and responses always go).
    pub window: usize,
    pub response_timeout: Duration,
    /// Send enquire_link after this long without traffic.
    pub enquire_link_interval: Duration,
    pub long_messages: LongMode,
    /// Ask the SMSC for a delivery receipt (registered_delivery = 1).
    pub request_receipts: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            system_id: String::new(),
            password: String::new(),
            system_type: String::new(),
            window: 10,
            response_timeout: Duration::from_secs(10),
            enquire_link_interval: Duration::from_secs(30),
            long_messages: LongMode::Udh,
            request_receipts: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LongMode {
    /// One submit_sm per segment, each with an 8-bit-reference concatenation UDH.
    Udh,
    /// One submit_sm with the whole text in `message_payload` (the SMSC cuts it).
    Payload,
}

/// One text to one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingSms {
    /// Sender: a short code, long number (`+...`) or alphanumeric id.
    pub from: String,
    /// Recipient, E.164 (`+8613800000000`).
    pub to: String,
    pub text: String,
}

pub use waihu_smsc_client::{ClientSession, SubmitId};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The SMSC answered with this command_status: it does not have the message.
    Rejected { status: u32 },
    /// Never put on the wire (the bind was lost first, or the text cannot be encoded).
    NotSent { reason: String },
    /// A request went out and no answer came (timeout, connection lost): the SMSC may or
    /// may not have it. Segments already accepted are listed.
    Unknown {
        reason: String,
        accepted_ids: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Bound {
        system_id: String,
    },
    BindFailed {
        status: u32,
    },
    Submitted {
        id: SubmitId,
        message_ids: Vec<String>,
    },
    SubmitFailed {
        id: SubmitId,
        failure: Failure,
    },
    /// A delivery receipt for a message this or an earlier bind submitted.
    Receipt {
        from: String,
        to: String,
        receipt: Receipt,
    },
    /// A mobile-originated message (a reply), reassembled if it came in segments.
    Mo {
        from: String,
        to: String,
        text: String,
    },
    /// The bind is over: the peer unbound, our unbind was answered, the link stopped
    /// answering enquire_link, or the byte stream broke. The driver closes the socket.
    Closed {
        reason: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Binding,
    Bound,
    Unbinding,
}

/// Requests other than submit_sm.
#[derive(Debug)]
enum Control {
    Bind,
    EnquireLink,
    Unbind,
}

pub struct Session {
    cfg: Config,
    state: State,
    /// 8-bit concatenation reference, per session (wraps).
    next_ref: u8,
    /// Submissions (one submit_sm per segment) and requests awaiting their answer.
    window: Window<Sm, Control, Event>,
    rx: Vec<u8>,
    last_traffic: Instant,
    mo_parts: MoParts<u8>,
}

/// Sequence numbers run 1..=0x7FFFFFFF (SMPP 3.4 §5.1.4).
const MAX_SEQUENCE: u32 = 0x7FFF_FFFF;

impl Session {
    pub fn state(&self) -> State {
        self.state
    }

    /// Submissions not yet finished (queued or in flight).
    pub fn pending(&self) -> usize {
        self.window.pending()
    }

    fn build(&mut self, sms: &OutgoingSms) -> Result<Vec<Sm>, String> {
        let base = Sm {
            source: Address::from_e164_or_alpha(&sms.from),
            dest: Address::from_e164_or_alpha(&sms.to),
            registered_delivery: u8::from(self.cfg.request_receipts),
            ..Sm::default()
        };
        let plan = text::plan(&sms.text);
        let dc = plan.encoding.data_coding();
        let pdus: Vec<Sm> = if plan.segment_count() == 1 {
            vec![Sm {
                data_coding: dc,
                short_message: plan.segments.concat(),
                ..base
            }]
        } else if self.cfg.long_messages == LongMode::Payload {
            vec![Sm {
                data_coding: dc,
                tlvs: vec![Tlv {
                    tag: tag::MESSAGE_PAYLOAD,
                    value: plan.segments.concat(),
                }],
                ..base
            }]
        } else {
            let total = plan.segment_count();
            if total > 255 {
                return Err(format!("text needs {total} segments (at most 255)"));
            }
            let reference = self.next_ref;
            self.next_ref = self.next_ref.wrapping_add(1);
            plan.segments
                .iter()
                .enumerate()
                .map(|(i, seg)| {
                    let mut sm = vec![0x05, 0x00, 0x03, reference, total as u8, (i + 1) as u8];
                    sm.extend_from_slice(seg);
                    Sm {
                        esm_class: esm::UDHI,
                        data_coding: dc,
                        short_message: sm,
                        ..base.clone()
                    }
                })
                .collect()
        };
        // Check every PDU encodes (address lengths etc.) before accepting the submission.
        for sm in &pdus {
            Pdu::new(0, Body::SubmitSm(sm.clone()))
                .encode()
                .map_err(|e| e.to_string())?;
        }
        Ok(pdus)
    }

    /// Politely ends the bind; [`Event::Closed`] follows the peer's answer or a timeout.
    pub fn unbind(&mut self, now: Instant) {
        if matches!(self.state, State::Bound | State::Binding) {
            self.state = State::Unbinding;
            self.request(now, Control::Unbind, Body::Unbind);
        }
    }

    fn handle_pdu(&mut self, now: Instant, p: Pdu) {
        match p.body {
            Body::EnquireLink => self.respond(p.sequence, status::OK, Body::EnquireLinkResp),
            Body::Unbind => {
                self.respond(p.sequence, status::OK, Body::UnbindResp);
                self.close(now, "peer unbound".into());
            }
            Body::DeliverSm(sm) => {
                self.respond(
                    p.sequence,
                    status::OK,
                    Body::DeliverSmResp {
                        message_id: String::new(),
                    },
                );
                self.deliver(sm);
            }
            Body::BindTransceiver(_) | Body::SubmitSm(_) => {
                self.respond(p.sequence, status::INVALID_CMD_ID, Body::GenericNack)
            }
            Body::Unknown { command_id, .. } if command_id & 0x8000_0000 == 0 => {
                self.respond(p.sequence, status::INVALID_CMD_ID, Body::GenericNack)
            }
            // Responses.
            body => {
                let Some(req) = self.window.answered(p.sequence) else {
                    tracing::debug!(sequence = p.sequence, "response to no outstanding request");
                    return;
                };
                if p.status != status::OK || matches!(body, Body::GenericNack) {
                    let st = if p.status == status::OK {
                        status::INVALID_CMD_ID
                    } else {
                        p.status
                    };
                    self.fail_request(now, req, st);
                    return;
                }
                match (req, body) {
                    (Request::Control(Control::Bind), Body::BindTransceiverResp { system_id }) => {
                        self.state = State::Bound;
                        self.window.emit(Event::Bound { system_id });
                    }
                    (Request::Submit { id, part }, Body::SubmitSmResp { message_id }) => {
                        self.window.accepted(id, part, message_id);
                    }
                    (Request::Control(Control::EnquireLink), Body::EnquireLinkResp) => {}
                    (Request::Control(Control::Unbind), Body::UnbindResp) => {
                        self.close(now, "unbound".into());
                    }
                    (req, body) => {
                        tracing::warn!(?body, "SMPP response of the wrong kind");
                        self.fail_request(now, req, status::SYSTEM_ERROR);
                    }
                }
            }
        }
    }

    fn deliver(&mut self, sm: Sm) {
        let from = sm.source.to_e164_or_raw();
        let to = sm.dest.to_e164_or_raw();
        if sm.esm_class & esm::TYPE_MASK == esm::RECEIPT {
            match receipt::from_deliver_sm(&sm) {
                Some(receipt) => self.window.emit(Event::Receipt { from, to, receipt }),
                None => tracing::warn!("unparseable delivery receipt"),
            }
            return;
        }
        let (data, payload) = match sm.tlv(tag::MESSAGE_PAYLOAD) {
            Some(p) => (p.to_vec(), true),
            None => (sm.short_message.clone(), false),
        };
        if !payload && sm.esm_class & esm::UDHI != 0 {
            let Some((&udhl, _)) = data.split_first() else {
                return;
            };
            let body_at = 1 + udhl as usize;
            let Some(udh) = data.get(1..body_at) else {
                return;
            };
            let text = text::decode(sm.data_coding, &data[body_at..]);
            match concat_ie(udh) {
                Some((reference, total, seq)) if total > 1 => {
                    if let Some(text) = self.mo_parts.add(&from, reference, total, seq, text) {
                        self.window.emit(Event::Mo { from, to, text });
                    }
                }
                _ => self.window.emit(Event::Mo { from, to, text }),
            }
            return;
        }
        let text = text::decode(sm.data_coding, &data);
        self.window.emit(Event::Mo { from, to, text });
    }

    fn fail_request(&mut self, now: Instant, req: Request<Control>, st: u32) {
        match req {
            Request::Control(Control::Bind) => {
                self.window.emit(Event::BindFailed { status: st });
                self.close(now, format!("bind refused (status 0x{st:08x})"));
            }
            Request::Submit { id, .. } => self.window.finish(id, || Event::SubmitFailed {
                id,
                failure: Failure::Rejected { status: st },
            }),
            Request::Control(Control::EnquireLink) => {}
            Request::Control(Control::Unbind) => {
                self.close(now, "unbind answered with an error".into())
            }
        }
    }

    /// Ends the bind from the protocol's side; bytes already queued (an unbind_resp) are
    /// still flushed by the driver before it closes the socket. Requests in flight end as
    /// [`Failure::Unknown`]; submissions not yet started stay queued for the next bind;
    /// ones half-sent end as `Unknown` too (their remaining segments alone would be
    /// useless).
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

    /// Sends queued segments while the window has room.
    fn pump(&mut self, now: Instant) {
        if self.state == State::Bound {
            self.window
                .pump(now, |seq, sm| Pdu::new(seq, Body::SubmitSm(sm)).encode());
        }
    }

    fn request(&mut self, now: Instant, req: Control, body: Body) {
        self.window
            .request(now, req, |seq| Pdu::new(seq, body).encode());
    }

    fn respond(&mut self, sequence: u32, st: u32, body: Body) {
        let pdu = Pdu {
            status: st,
            sequence,
            body,
        };
        if let Ok(bytes) = pdu.encode() {
            self.window.push_transmit(bytes);
        }
    }
}

impl From<Settled> for Event {
    fn from(s: Settled) -> Event {
        match s {
            Settled::Submitted { id, ids } => Event::Submitted {
                id,
                message_ids: ids,
            },
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
    const PROTOCOL: &'static str = "SMPP";

    fn new(cfg: Config, now: Instant) -> Session {
        Session {
            window: Window::new(cfg.window, cfg.response_timeout, MAX_SEQUENCE),
            cfg,
            state: State::Closed,
            next_ref: 1,
            rx: Vec::new(),
            last_traffic: now,
            mo_parts: MoParts::default(),
        }
    }

    /// A new connection is up: bind as transceiver.
    fn connect(&mut self, now: Instant, _wall: SystemTime) {
        self.rx.clear();
        self.state = State::Binding;
        self.last_traffic = now;
        let bind = Body::BindTransceiver(Bind {
            system_id: self.cfg.system_id.clone(),
            password: self.cfg.password.clone(),
            system_type: self.cfg.system_type.clone(),
            interface_version: 0x34,
            addr_ton: 0,
            addr_npi: 0,
            address_range: String::new(),
        });
        self.request(now, Control::Bind, bind);
    }

    /// Queues a text. Fails at once if it cannot be encoded into PDUs.
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
                    self.close(now, format!("peer sent an impossible PDU length {n}"));
                    break;
                }
                Err(DecodeError::Malformed {
                    command_id,
                    sequence,
                    frame_len,
                    reason,
                }) => {
                    self.rx.drain(..frame_len.min(self.rx.len()));
                    tracing::warn!(command_id, sequence, reason, "malformed SMPP PDU");
                    if command_id & 0x8000_0000 == 0 {
                        self.respond(sequence, status::INVALID_MSG_LEN, Body::GenericNack);
                    } else if let Some(req) = self.window.answered(sequence) {
                        self.fail_request(now, req, status::SYSTEM_ERROR);
                    }
                }
            }
        }
        self.pump(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        for c in self.window.expired(now, "no submit_sm_resp in time") {
            let what = match c {
                Control::Bind => "bind_transceiver_resp",
                Control::EnquireLink => "enquire_link_resp",
                Control::Unbind => "unbind_resp",
            };
            self.close(now, format!("no {what} in time"));
        }
        if self.state == State::Bound
            && now >= self.last_traffic + self.cfg.enquire_link_interval
            && !self.window.awaits(|c| matches!(c, Control::EnquireLink))
        {
            self.request(now, Control::EnquireLink, Body::EnquireLink);
        }
        self.pump(now);
    }

    /// The socket is gone. Requests in flight end as [`Failure::Unknown`]; submissions not
    /// yet started stay queued for the next bind; ones half-sent end as `Unknown` too.
    fn connection_lost(&mut self, now: Instant) {
        self.window.clear_transmit();
        self.close(now, "connection lost".into());
    }

    fn log_out(&mut self, now: Instant) {
        self.unbind(now)
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
        let keepalive = (self.state == State::Bound)
            .then(|| self.last_traffic + self.cfg.enquire_link_interval);
        self.window.deadline().into_iter().chain(keepalive).min()
    }
}

/// The concatenation information element of a UDH: (reference, total, sequence), 8- or
/// 16-bit reference.
fn concat_ie(udh: &[u8]) -> Option<(u8, u8, u8)> {
    let mut i = 0;
    while i + 1 < udh.len() {
        let (iei, len) = (udh[i], udh[i + 1] as usize);
        let data = udh.get(i + 2..i + 2 + len)?;
        match (iei, data) {
            (0x00, [r, t, s]) => return Some((*r, *t, *s)),
            (0x08, [_, r, t, s]) => return Some((*r, *t, *s)),
            _ => {}
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests;
