//! CMPP 2.0 and 3.0 messages: the 12-byte header (Total_Length, Command_Id, Sequence_Id,
//! all big-endian) and the bodies an SP client needs. Every field has a fixed width
//! (CMPP "Octet String"s are padded with NUL bytes); the only variable parts are the
//! destination list and the message content of SUBMIT and DELIVER.
//!
//! CMPP 3.0 changes only field widths and adds a few fields: terminal ids are 32 octets
//! (21 in 2.0) with a terminal-type octet after them, SUBMIT and DELIVER end with a
//! 20-octet LinkID instead of 8 reserved octets, and the Status/Result of CONNECT_RESP,
//! SUBMIT_RESP and DELIVER_RESP are 4 octets (1 in 2.0). SUBMIT and DELIVER are read and
//! written for the [`Version`] the connection logged in with. The fixed-size answers and
//! status reports are read by their length, which tells the two layouts apart: gateways
//! that answer a 3.0 login with 2.0-sized answers exist, and reading them costs nothing.
//!
//! Decoding never panics on any input (property-tested). A frame whose length is sane but
//! whose body is not is reported with its sequence so the session can drop it and carry on;
//! an impossible length is fatal for the connection (the stream cannot be re-framed).

use thiserror::Error;

pub const HEADER_LEN: usize = 12;
/// The largest message accepted. A SUBMIT to 100 numbers with 255 bytes of content is
/// under 2,500 bytes; anything near this is a broken or hostile peer.
pub const MAX_PDU_LEN: u32 = 8 * 1024;

pub const CONNECT: u32 = 0x0000_0001;
pub const CONNECT_RESP: u32 = 0x8000_0001;
pub const TERMINATE: u32 = 0x0000_0002;
pub const TERMINATE_RESP: u32 = 0x8000_0002;
pub const SUBMIT: u32 = 0x0000_0004;
pub const SUBMIT_RESP: u32 = 0x8000_0004;
pub const DELIVER: u32 = 0x0000_0005;
pub const DELIVER_RESP: u32 = 0x8000_0005;
pub const ACTIVE_TEST: u32 = 0x0000_0008;
pub const ACTIVE_TEST_RESP: u32 = 0x8000_0008;

/// CMPP 2.0's version octet (major 2, minor 0).
pub const VERSION_2_0: u8 = 0x20;
/// CMPP 3.0's version octet.
pub const VERSION_3_0: u8 = 0x30;

/// The protocol version a connection logs in with; it decides SUBMIT's and DELIVER's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Version {
    #[default]
    V2_0,
    V3_0,
}

impl Version {
    /// The Version octet of CMPP_CONNECT.
    pub fn octet(self) -> u8 {
        match self {
            Version::V2_0 => VERSION_2_0,
            Version::V3_0 => VERSION_3_0,
        }
    }

    /// Width of a terminal id (Fee_terminal_Id, Dest_terminal_Id, Src_terminal_Id).
    pub fn terminal_len(self) -> usize {
        match self {
            Version::V2_0 => 21,
            Version::V3_0 => 32,
        }
    }

    /// `2.0`/`2`/`20` or `3.0`/`3`/`30`, as an operator writes it.
    pub fn parse(s: &str) -> Result<Version, String> {
        match s.trim() {
            "2.0" | "2" | "20" => Ok(Version::V2_0),
            "3.0" | "3" | "30" => Ok(Version::V3_0),
            other => Err(format!("CMPP version {other:?}: 2.0 or 3.0")),
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Version::V2_0 => "2.0",
            Version::V3_0 => "3.0",
        })
    }
}

/// Msg_Fmt values.
pub mod fmt {
    pub const ASCII: u8 = 0;
    pub const BINARY: u8 = 4;
    pub const UCS2: u8 = 8;
    pub const GB: u8 = 15;
}

/// CMPP_CONNECT_RESP Status values (CMPP 2.0 §7.4.2, 3.0 §7.4.2; one octet in 2.0, four
/// in 3.0).
pub mod connect_status {
    pub const OK: u32 = 0;
    pub const BAD_STRUCTURE: u32 = 1;
    pub const BAD_SOURCE_ADDR: u32 = 2;
    pub const AUTH_FAILED: u32 = 3;
    pub const VERSION_TOO_HIGH: u32 = 4;
    pub const OTHER: u32 = 5;
}

/// CMPP_SUBMIT_RESP / CMPP_DELIVER_RESP Result values (one octet in 2.0, four in 3.0).
pub mod result {
    pub const OK: u32 = 0;
    pub const BAD_STRUCTURE: u32 = 1;
    pub const BAD_COMMAND: u32 = 2;
    pub const DUPLICATE_SEQUENCE: u32 = 3;
    pub const BAD_LENGTH: u32 = 4;
    /// "流量控制错": the gateway's rate limit (result 8 in both versions).
    pub const FLOW_CONTROL: u32 = 8;
    pub const OTHER: u32 = 9;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub sequence: u32,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Connect(Connect),
    ConnectResp {
        status: u32,
        authenticator: [u8; 16],
        version: u8,
    },
    Terminate,
    TerminateResp,
    Submit(Submit),
    SubmitResp {
        msg_id: u64,
        result: u32,
    },
    Deliver(Deliver),
    DeliverResp {
        msg_id: u64,
        result: u32,
    },
    ActiveTest,
    ActiveTestResp,
    /// A command this client does not know; kept so it can be logged.
    Unknown {
        command_id: u32,
        body: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The SP's enterprise code (企业代码), 6 characters.
    pub source_addr: String,
    pub authenticator: [u8; 16],
    pub version: u8,
    /// MMDDHHMMSS as a number (`1205143000` for 5 Dec 14:30:00).
    pub timestamp: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Submit {
    /// Filled in by the gateway; 0 from an SP.
    pub msg_id: u64,
    pub pk_total: u8,
    pub pk_number: u8,
    /// 1: ask for a status report.
    pub registered_delivery: u8,
    pub msg_level: u8,
    pub service_id: String,
    pub fee_user_type: u8,
    pub fee_terminal_id: String,
    /// 3.0 only: 0 a real number, 1 a pseudonym (伪码).
    pub fee_terminal_type: u8,
    pub tp_pid: u8,
    /// 1: the content starts with a User Data Header.
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    /// The SP's enterprise code.
    pub msg_src: String,
    pub fee_type: String,
    pub fee_code: String,
    pub valid_time: String,
    pub at_time: String,
    /// The number the message comes from (the SP's service number, e.g. 106900001234).
    pub src_id: String,
    pub dest_terminal_ids: Vec<String>,
    /// 3.0 only: 0 real numbers, 1 pseudonyms.
    pub dest_terminal_type: u8,
    pub content: Vec<u8>,
    /// 3.0 only: the LinkID an on-demand service's MO carried (empty for follow-ups).
    pub link_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Deliver {
    pub msg_id: u64,
    /// The SP number the handset sent to.
    pub dest_id: String,
    pub service_id: String,
    pub tp_pid: u8,
    pub tp_udhi: u8,
    pub msg_fmt: u8,
    /// The handset's number.
    pub src_terminal_id: String,
    /// 3.0 only: 0 a real number, 1 a pseudonym.
    pub src_terminal_type: u8,
    /// 1: the content is a status report; 0: a message from the handset (MO).
    pub registered_delivery: u8,
    pub content: Vec<u8>,
    /// 3.0 only.
    pub link_id: String,
}

/// The content of a DELIVER with Registered_Delivery = 1: 60 octets in 2.0, 71 in 3.0
/// (the 32-octet Dest_terminal_Id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The Msg_Id the gateway gave the SUBMIT this reports on.
    pub msg_id: u64,
    /// `DELIVRD`, `EXPIRED`, `DELETED`, `UNDELIV`, `ACCEPTD`, `UNKNOWN`, `REJECTD`, or a
    /// carrier's own code (`MA:0001`, …).
    pub stat: String,
    pub submit_time: String,
    pub done_time: String,
    pub dest_terminal_id: String,
    pub smsc_sequence: u32,
}

/// A status report's length in `v`.
pub fn status_report_len(v: Version) -> usize {
    8 + 7 + 10 + 10 + v.terminal_len() + 4
}

impl StatusReport {
    pub fn delivered(&self) -> bool {
        self.stat == "DELIVRD"
    }

    /// Reads a report of either version: 71 octets or more are 3.0's layout, fewer 2.0's.
    pub fn decode(b: &[u8]) -> Result<StatusReport, String> {
        let v = if b.len() >= status_report_len(Version::V3_0) {
            Version::V3_0
        } else {
            Version::V2_0
        };
        let mut r = Reader::new(b);
        let rep = StatusReport {
            msg_id: r.u64("Msg_Id")?,
            stat: r.text(7, "Stat")?,
            submit_time: r.text(10, "Submit_time")?,
            done_time: r.text(10, "Done_time")?,
            dest_terminal_id: r.text(v.terminal_len(), "Dest_terminal_Id")?,
            smsc_sequence: r.u32("SMSC_sequence")?,
        };
        Ok(rep)
    }

    pub fn encode(&self, v: Version) -> Result<Vec<u8>, EncodeError> {
        let mut w = Vec::with_capacity(status_report_len(v));
        w.extend_from_slice(&self.msg_id.to_be_bytes());
        put_text(&mut w, &self.stat, 7, "Stat")?;
        put_text(&mut w, &self.submit_time, 10, "Submit_time")?;
        put_text(&mut w, &self.done_time, 10, "Done_time")?;
        put_text(
            &mut w,
            &self.dest_terminal_id,
            v.terminal_len(),
            "Dest_terminal_Id",
        )?;
        w.extend_from_slice(&self.smsc_sequence.to_be_bytes());
        Ok(w)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Total_Length below the header size or above [`MAX_PDU_LEN`]: the stream cannot be
    /// framed any more.
    #[error("impossible CMPP Total_Length {0}")]
    BadLength(u32),
    /// The frame is complete but its body does not parse.
    #[error("malformed CMPP message 0x{command_id:08x} (sequence {sequence}): {reason}")]
    Malformed {
        command_id: u32,
        sequence: u32,
        frame_len: usize,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{field} is {len} bytes, at most {max} fit")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} must be ASCII")]
    NotAscii { field: &'static str },
    /// A 3.0-only field set, or a Status/Result above 255, in a CMPP 2.0 message.
    #[error("{field} cannot be sent in CMPP {version}")]
    NotInVersion {
        field: &'static str,
        version: Version,
    },
}

impl Pdu {
    pub fn new(sequence: u32, body: Body) -> Pdu {
        Pdu { sequence, body }
    }

    pub fn command_id(&self) -> u32 {
        match &self.body {
            Body::Connect(_) => CONNECT,
            Body::ConnectResp { .. } => CONNECT_RESP,
            Body::Terminate => TERMINATE,
            Body::TerminateResp => TERMINATE_RESP,
            Body::Submit(_) => SUBMIT,
            Body::SubmitResp { .. } => SUBMIT_RESP,
            Body::Deliver(_) => DELIVER,
            Body::DeliverResp { .. } => DELIVER_RESP,
            Body::ActiveTest => ACTIVE_TEST,
            Body::ActiveTestResp => ACTIVE_TEST_RESP,
            Body::Unknown { command_id, .. } => *command_id,
        }
    }

    /// The message as CMPP `v` lays it out.
    pub fn encode(&self, v: Version) -> Result<Vec<u8>, EncodeError> {
        let tl = v.terminal_len();
        let mut w = vec![0u8; HEADER_LEN];
        match &self.body {
            Body::Connect(c) => {
                put_text(&mut w, &c.source_addr, 6, "Source_Addr")?;
                w.extend_from_slice(&c.authenticator);
                w.push(c.version);
                w.extend_from_slice(&c.timestamp.to_be_bytes());
            }
            Body::ConnectResp {
                status,
                authenticator,
                version,
            } => {
                put_status(&mut w, *status, v, "Status")?;
                w.extend_from_slice(authenticator);
                w.push(*version);
            }
            Body::Terminate | Body::TerminateResp | Body::ActiveTest => {}
            Body::ActiveTestResp => w.push(0),
            Body::Submit(s) => {
                if v == Version::V2_0 {
                    only_in_3(s.fee_terminal_type != 0, "Fee_terminal_type")?;
                    only_in_3(s.dest_terminal_type != 0, "Dest_terminal_type")?;
                    only_in_3(!s.link_id.is_empty(), "LinkID")?;
                }
                w.extend_from_slice(&s.msg_id.to_be_bytes());
                w.extend_from_slice(&[s.pk_total, s.pk_number, s.registered_delivery, s.msg_level]);
                put_text(&mut w, &s.service_id, 10, "Service_Id")?;
                w.push(s.fee_user_type);
                put_text(&mut w, &s.fee_terminal_id, tl, "Fee_terminal_Id")?;
                if v == Version::V3_0 {
                    w.push(s.fee_terminal_type);
                }
                w.extend_from_slice(&[s.tp_pid, s.tp_udhi, s.msg_fmt]);
                put_text(&mut w, &s.msg_src, 6, "Msg_src")?;
                put_text(&mut w, &s.fee_type, 2, "FeeType")?;
                put_text(&mut w, &s.fee_code, 6, "FeeCode")?;
                put_text(&mut w, &s.valid_time, 17, "ValId_Time")?;
                put_text(&mut w, &s.at_time, 17, "At_Time")?;
                put_text(&mut w, &s.src_id, 21, "Src_Id")?;
                if s.dest_terminal_ids.is_empty() || s.dest_terminal_ids.len() > 100 {
                    return Err(EncodeError::TooLong {
                        field: "DestUsr_tl",
                        len: s.dest_terminal_ids.len(),
                        max: 100,
                    });
                }
                w.push(s.dest_terminal_ids.len() as u8);
                for d in &s.dest_terminal_ids {
                    put_text(&mut w, d, tl, "Dest_terminal_Id")?;
                }
                if v == Version::V3_0 {
                    w.push(s.dest_terminal_type);
                }
                put_content(&mut w, &s.content)?;
                put_tail(&mut w, &s.link_id, v)?;
            }
            Body::SubmitResp { msg_id, result } | Body::DeliverResp { msg_id, result } => {
                w.extend_from_slice(&msg_id.to_be_bytes());
                put_status(&mut w, *result, v, "Result")?;
            }
            Body::Deliver(d) => {
                if v == Version::V2_0 {
                    only_in_3(d.src_terminal_type != 0, "Src_terminal_type")?;
                    only_in_3(!d.link_id.is_empty(), "LinkID")?;
                }
                w.extend_from_slice(&d.msg_id.to_be_bytes());
                put_text(&mut w, &d.dest_id, 21, "Dest_Id")?;
                put_text(&mut w, &d.service_id, 10, "Service_Id")?;
                w.extend_from_slice(&[d.tp_pid, d.tp_udhi, d.msg_fmt]);
                put_text(&mut w, &d.src_terminal_id, tl, "Src_terminal_Id")?;
                if v == Version::V3_0 {
                    w.push(d.src_terminal_type);
                }
                w.push(d.registered_delivery);
                put_content(&mut w, &d.content)?;
                put_tail(&mut w, &d.link_id, v)?;
            }
            Body::Unknown { body, .. } => w.extend_from_slice(body),
        }
        let len = w.len() as u32;
        if len > MAX_PDU_LEN {
            return Err(EncodeError::TooLong {
                field: "message",
                len: len as usize,
                max: MAX_PDU_LEN as usize,
            });
        }
        w[0..4].copy_from_slice(&len.to_be_bytes());
        w[4..8].copy_from_slice(&self.command_id().to_be_bytes());
        w[8..12].copy_from_slice(&self.sequence.to_be_bytes());
        Ok(w)
    }
}

/// One message from the front of `buf`: `Ok(None)` until a whole frame is there, then the
/// message and the bytes it used. SUBMIT and DELIVER are read in `v`'s layout; the
/// fixed-size answers in whichever layout their length is.
pub fn decode(buf: &[u8], v: Version) -> Result<Option<(Pdu, usize)>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if (len as usize) < HEADER_LEN || len > MAX_PDU_LEN {
        return Err(DecodeError::BadLength(len));
    }
    let len = len as usize;
    let Some(frame) = buf.get(..len) else {
        return Ok(None);
    };
    let command_id = u32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let sequence = u32::from_be_bytes([frame[8], frame[9], frame[10], frame[11]]);
    let body = decode_body(command_id, &frame[HEADER_LEN..], v).map_err(|reason| {
        DecodeError::Malformed {
            command_id,
            sequence,
            frame_len: len,
            reason,
        }
    })?;
    Ok(Some((Pdu { sequence, body }, len)))
}

fn decode_body(command_id: u32, b: &[u8], v: Version) -> Result<Body, String> {
    let tl = v.terminal_len();
    // Status/Result: one octet in 2.0's answers, four in 3.0's; the body length says which.
    let wide = |fixed: usize| b.len() == fixed + 4;
    let mut r = Reader::new(b);
    let body = match command_id {
        CONNECT => Body::Connect(Connect {
            source_addr: r.text(6, "Source_Addr")?,
            authenticator: r.array16("AuthenticatorSource")?,
            version: r.u8("Version")?,
            timestamp: r.u32("Timestamp")?,
        }),
        CONNECT_RESP => Body::ConnectResp {
            status: r.status(wide(17), "Status")?,
            authenticator: r.array16("AuthenticatorISMG")?,
            version: r.u8("Version")?,
        },
        TERMINATE => Body::Terminate,
        TERMINATE_RESP => Body::TerminateResp,
        ACTIVE_TEST => Body::ActiveTest,
        // Reserved octet; some gateways leave it out.
        ACTIVE_TEST_RESP => return Ok(Body::ActiveTestResp),
        SUBMIT => {
            let msg_id = r.u64("Msg_Id")?;
            let pk_total = r.u8("Pk_total")?;
            let pk_number = r.u8("Pk_number")?;
            let registered_delivery = r.u8("Registered_Delivery")?;
            let msg_level = r.u8("Msg_level")?;
            let service_id = r.text(10, "Service_Id")?;
            let fee_user_type = r.u8("Fee_UserType")?;
            let fee_terminal_id = r.text(tl, "Fee_terminal_Id")?;
            let fee_terminal_type = r.v3_u8(v, "Fee_terminal_type")?;
            let tp_pid = r.u8("TP_pId")?;
            let tp_udhi = r.u8("TP_udhi")?;
            let msg_fmt = r.u8("Msg_Fmt")?;
            let msg_src = r.text(6, "Msg_src")?;
            let fee_type = r.text(2, "FeeType")?;
            let fee_code = r.text(6, "FeeCode")?;
            let valid_time = r.text(17, "ValId_Time")?;
            let at_time = r.text(17, "At_Time")?;
            let src_id = r.text(21, "Src_Id")?;
            let n = r.u8("DestUsr_tl")?;
            if n == 0 || n > 100 {
                return Err(format!("DestUsr_tl {n} (1..=100)"));
            }
            let mut dest_terminal_ids = Vec::with_capacity(n as usize);
            for _ in 0..n {
                dest_terminal_ids.push(r.text(tl, "Dest_terminal_Id")?);
            }
            let dest_terminal_type = r.v3_u8(v, "Dest_terminal_type")?;
            let content = r.content()?;
            let link_id = r.tail(v)?;
            Body::Submit(Submit {
                msg_id,
                pk_total,
                pk_number,
                registered_delivery,
                msg_level,
                service_id,
                fee_user_type,
                fee_terminal_id,
                fee_terminal_type,
                tp_pid,
                tp_udhi,
                msg_fmt,
                msg_src,
                fee_type,
                fee_code,
                valid_time,
                at_time,
                src_id,
                dest_terminal_ids,
                dest_terminal_type,
                content,
                link_id,
            })
        }
        SUBMIT_RESP => Body::SubmitResp {
            msg_id: r.u64("Msg_Id")?,
            result: r.status(wide(8), "Result")?,
        },
        DELIVER => Body::Deliver(Deliver {
            msg_id: r.u64("Msg_Id")?,
            dest_id: r.text(21, "Dest_Id")?,
            service_id: r.text(10, "Service_Id")?,
            tp_pid: r.u8("TP_pid")?,
            tp_udhi: r.u8("TP_udhi")?,
            msg_fmt: r.u8("Msg_Fmt")?,
            src_terminal_id: r.text(tl, "Src_terminal_Id")?,
            src_terminal_type: r.v3_u8(v, "Src_terminal_type")?,
            registered_delivery: r.u8("Registered_Delivery")?,
            content: r.content()?,
            link_id: r.tail(v)?,
        }),
        DELIVER_RESP => Body::DeliverResp {
            msg_id: r.u64("Msg_Id")?,
            result: r.status(wide(8), "Result")?,
        },
        other => {
            return Ok(Body::Unknown {
                command_id: other,
                body: b.to_vec(),
            })
        }
    };
    if r.rest() != 0 {
        return Err(format!("{} bytes after the last field", r.rest()));
    }
    Ok(body)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(b: &'a [u8]) -> Self {
        Reader { b, at: 0 }
    }

    fn rest(&self) -> usize {
        self.b.len().saturating_sub(self.at)
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        let s = self
            .b
            .get(self.at..self.at.saturating_add(n))
            .ok_or_else(|| format!("{field}: message ends early"))?;
        self.at += n;
        Ok(s)
    }

    fn skip(&mut self, n: usize, field: &str) -> Result<(), String> {
        self.take(n, field).map(|_| ())
    }

    /// A field CMPP 3.0 added: 0 in 2.0, where it is not on the wire.
    fn v3_u8(&mut self, v: Version, field: &str) -> Result<u8, String> {
        match v {
            Version::V2_0 => Ok(0),
            Version::V3_0 => self.u8(field),
        }
    }

    /// What ends SUBMIT and DELIVER: 8 reserved octets in 2.0, the 20-octet LinkID in 3.0.
    fn tail(&mut self, v: Version) -> Result<String, String> {
        match v {
            Version::V2_0 => self.skip(8, "Reserve").map(|_| String::new()),
            Version::V3_0 => self.text(20, "LinkID"),
        }
    }

    /// A Status or Result: four octets when `wide` (3.0), else one.
    fn status(&mut self, wide: bool, field: &str) -> Result<u32, String> {
        if wide {
            self.u32(field)
        } else {
            self.u8(field).map(u32::from)
        }
    }

    fn u8(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.take(1, field)?[0])
    }

    fn u32(&mut self, field: &str) -> Result<u32, String> {
        let s = self.take(4, field)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    fn u64(&mut self, field: &str) -> Result<u64, String> {
        let s = self.take(8, field)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        Ok(u64::from_be_bytes(a))
    }

    fn array16(&mut self, field: &str) -> Result<[u8; 16], String> {
        let s = self.take(16, field)?;
        let mut a = [0u8; 16];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A fixed-width text field: up to the first NUL, which must be ASCII.
    fn text(&mut self, n: usize, field: &str) -> Result<String, String> {
        let s = self.take(n, field)?;
        let end = s.iter().position(|&c| c == 0).unwrap_or(s.len());
        let s = &s[..end];
        if !s.is_ascii() {
            return Err(format!("{field}: not ASCII"));
        }
        Ok(s.iter().map(|&c| c as char).collect())
    }

    /// Msg_Length (one octet) then that many bytes.
    fn content(&mut self) -> Result<Vec<u8>, String> {
        let n = self.u8("Msg_Length")? as usize;
        Ok(self.take(n, "Msg_Content")?.to_vec())
    }
}

fn put_text(w: &mut Vec<u8>, s: &str, n: usize, field: &'static str) -> Result<(), EncodeError> {
    if !s.is_ascii() {
        return Err(EncodeError::NotAscii { field });
    }
    if s.len() > n {
        return Err(EncodeError::TooLong {
            field,
            len: s.len(),
            max: n,
        });
    }
    w.extend_from_slice(s.as_bytes());
    w.resize(w.len() + n - s.len(), 0);
    Ok(())
}

fn put_status(
    w: &mut Vec<u8>,
    value: u32,
    v: Version,
    field: &'static str,
) -> Result<(), EncodeError> {
    match v {
        Version::V3_0 => w.extend_from_slice(&value.to_be_bytes()),
        Version::V2_0 => {
            let octet =
                u8::try_from(value).map_err(|_| EncodeError::NotInVersion { field, version: v })?;
            w.push(octet);
        }
    }
    Ok(())
}

fn only_in_3(set: bool, field: &'static str) -> Result<(), EncodeError> {
    if set {
        return Err(EncodeError::NotInVersion {
            field,
            version: Version::V2_0,
        });
    }
    Ok(())
}

fn put_tail(w: &mut Vec<u8>, link_id: &str, v: Version) -> Result<(), EncodeError> {
    match v {
        Version::V2_0 => {
            w.extend_from_slice(&[0; 8]);
            Ok(())
        }
        Version::V3_0 => put_text(w, link_id, 20, "LinkID"),
    }
}

fn put_content(w: &mut Vec<u8>, c: &[u8]) -> Result<(), EncodeError> {
    if c.len() > 255 {
        return Err(EncodeError::TooLong {
            field: "Msg_Content",
            len: c.len(),
            max: 255,
        });
    }
    w.push(c.len() as u8);
    w.extend_from_slice(c);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn submit() -> Submit {
        Submit {
            pk_total: 1,
            pk_number: 1,
            registered_delivery: 1,
            service_id: "WAIHU".into(),
            msg_fmt: fmt::UCS2,
            msg_src: "901234".into(),
            fee_type: "01".into(),
            src_id: "1069001234".into(),
            dest_terminal_ids: vec!["13800000001".into()],
            content: "退订".encode_utf16().flat_map(u16::to_be_bytes).collect(),
            ..Submit::default()
        }
    }

    #[test]
    fn connect_is_39_bytes_with_the_fields_where_the_spec_puts_them() {
        let p = Pdu::new(
            7,
            Body::Connect(Connect {
                source_addr: "901234".into(),
                authenticator: [0xAB; 16],
                version: VERSION_2_0,
                timestamp: 1205143000,
            }),
        );
        let b = p.encode(Version::V2_0).unwrap();
        assert_eq!(b.len(), 39);
        assert_eq!(&b[..12], &[0, 0, 0, 39, 0, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&b[12..18], b"901234");
        assert_eq!(b[34], 0x20);
        assert_eq!(&b[35..], &1205143000u32.to_be_bytes());
        assert_eq!(decode(&b, Version::V2_0).unwrap(), Some((p.clone(), 39)));
        // CONNECT is the same in 3.0 (only the Version octet says 0x30).
        assert_eq!(p.encode(Version::V3_0).unwrap(), b);
    }

    #[test]
    fn submit_layout_and_roundtrip() {
        let p = Pdu::new(1, Body::Submit(submit()));
        let b = p.encode(Version::V2_0).unwrap();
        // 12 header + 147 fixed before DestUsr_tl + 1 + 21 + 1 + 4 content + 8 reserve.
        assert_eq!(
            b.len(),
            12 + 8 + 4 + 10 + 1 + 21 + 3 + 6 + 2 + 6 + 17 + 17 + 21 + 1 + 21 + 1 + 4 + 8
        );
        assert_eq!(decode(&b, Version::V2_0).unwrap(), Some((p, b.len())));
    }

    #[test]
    fn cmpp_3_0_submit_has_32_octet_terminals_type_octets_and_a_link_id() {
        let s = Submit {
            fee_terminal_id: "13800000009".into(),
            link_id: "L1".into(),
            ..submit()
        };
        let p = Pdu::new(1, Body::Submit(s.clone()));
        let b = p.encode(Version::V3_0).unwrap();
        // 12 header, Msg_Id..Fee_UserType 23, Fee_terminal_Id 32 + type 1, TP_pId..Msg_Fmt 3,
        // Msg_src..Src_Id 69, DestUsr_tl 1, one id 32, Dest_terminal_type 1, Msg_Length 1,
        // 4 content octets, LinkID 20.
        assert_eq!(b.len(), 12 + 23 + 32 + 1 + 3 + 69 + 1 + 32 + 1 + 1 + 4 + 20);
        let body = &b[12..];
        assert_eq!(&body[23..34], b"13800000009");
        assert_eq!(body[128], 1, "DestUsr_tl at 128 in 3.0 (116 in 2.0)");
        assert_eq!(&body[129..140], b"13800000001");
        assert_eq!(&body[body.len() - 20..body.len() - 18], b"L1");
        assert_eq!(
            decode(&b, Version::V3_0).unwrap(),
            Some((p.clone(), b.len()))
        );
        // The same message read as 2.0 does not come back as itself.
        assert_ne!(
            decode(&b, Version::V2_0).ok().flatten().map(|x| x.0),
            Some(p)
        );
        // 3.0-only fields cannot go out in 2.0.
        assert!(matches!(
            Pdu::new(1, Body::Submit(s)).encode(Version::V2_0),
            Err(EncodeError::NotInVersion {
                field: "LinkID",
                ..
            })
        ));
    }

    #[test]
    fn answers_are_read_by_their_length_in_either_version() {
        for v in [Version::V2_0, Version::V3_0] {
            let wide = Pdu::new(
                4,
                Body::SubmitResp {
                    msg_id: 9,
                    result: 8,
                },
            )
            .encode(Version::V3_0)
            .unwrap();
            assert_eq!(wide.len(), 12 + 8 + 4);
            let narrow = Pdu::new(
                4,
                Body::SubmitResp {
                    msg_id: 9,
                    result: 8,
                },
            )
            .encode(Version::V2_0)
            .unwrap();
            assert_eq!(narrow.len(), 12 + 8 + 1);
            for b in [wide, narrow] {
                let (p, _) = decode(&b, v).unwrap().unwrap();
                assert_eq!(
                    p.body,
                    Body::SubmitResp {
                        msg_id: 9,
                        result: 8
                    }
                );
            }
            let resp = Pdu::new(
                1,
                Body::ConnectResp {
                    status: 3,
                    authenticator: [7; 16],
                    version: VERSION_3_0,
                },
            );
            let b = resp.encode(Version::V3_0).unwrap();
            assert_eq!(b.len(), 12 + 4 + 16 + 1);
            assert_eq!(decode(&b, v).unwrap(), Some((resp, 33)));
        }
        // A 3.0 Result above 255 has no 2.0 form.
        assert!(Pdu::new(
            1,
            Body::SubmitResp {
                msg_id: 1,
                result: 300
            }
        )
        .encode(Version::V2_0)
        .is_err());
    }

    #[test]
    fn status_report_roundtrip_and_length() {
        let r = StatusReport {
            msg_id: 0x1234_5678_9abc_def0,
            stat: "DELIVRD".into(),
            submit_time: "2612051430".into(),
            done_time: "2612051431".into(),
            dest_terminal_id: "13800000001".into(),
            smsc_sequence: 9,
        };
        for (v, len) in [(Version::V2_0, 60), (Version::V3_0, 71)] {
            let b = r.encode(v).unwrap();
            assert_eq!(b.len(), len);
            assert_eq!(status_report_len(v), len);
            assert_eq!(StatusReport::decode(&b).unwrap(), r);
            assert!(StatusReport::decode(&b[..30]).is_err());
        }
        let long = StatusReport {
            dest_terminal_id: "8".repeat(32),
            ..r
        };
        assert!(long.encode(Version::V2_0).is_err());
        assert_eq!(
            StatusReport::decode(&long.encode(Version::V3_0).unwrap()).unwrap(),
            long
        );
    }

    #[test]
    fn bad_input_is_an_error() {
        let v = Version::V2_0;
        assert_eq!(decode(&[0, 0, 0, 3], v), Err(DecodeError::BadLength(3)));
        assert_eq!(
            decode(&[0, 0, 0x40, 0], v),
            Err(DecodeError::BadLength(0x4000))
        );
        assert_eq!(decode(&[0, 0, 0, 12, 0], v), Ok(None));
        // A SUBMIT_RESP missing its Result octet.
        let mut b = vec![0, 0, 0, 20, 0x80, 0, 0, 4, 0, 0, 0, 5];
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(&b, v),
            Err(DecodeError::Malformed {
                sequence: 5,
                frame_len: 20,
                ..
            })
        ));
        let long = Submit {
            content: vec![0; 256],
            ..submit()
        };
        assert!(Pdu::new(1, Body::Submit(long)).encode(v).is_err());
        let wide = Submit {
            src_id: "1".repeat(22),
            ..submit()
        };
        assert!(Pdu::new(1, Body::Submit(wide)).encode(v).is_err());
    }

    fn ascii(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[0-9A-Za-z]{{0,{max}}}")).unwrap()
    }

    fn any_version() -> impl Strategy<Value = Version> {
        prop_oneof![Just(Version::V2_0), Just(Version::V3_0)]
    }

    prop_compose! {
        fn any_submit(v: Version)(
            ids in proptest::collection::vec(ascii(v.terminal_len()), 1..5),
            content in proptest::collection::vec(any::<u8>(), 0..=255),
            service_id in ascii(10), src_id in ascii(21), msg_src in ascii(6),
            fee in ascii(v.terminal_len()),
            link_id in ascii(if v == Version::V3_0 { 20 } else { 0 }),
            small in proptest::array::uniform10(any::<u8>()),
            msg_id in any::<u64>(),
        ) -> Submit {
            let v3 = |b: u8| if v == Version::V3_0 { b } else { 0 };
            Submit {
                msg_id, pk_total: small[0], pk_number: small[1], registered_delivery: small[2],
                msg_level: small[3], service_id, fee_user_type: small[4],
                fee_terminal_id: fee, fee_terminal_type: v3(small[8]), tp_pid: small[5],
                tp_udhi: small[6], msg_fmt: small[7], msg_src, fee_type: "01".into(),
                fee_code: String::new(), valid_time: String::new(), at_time: String::new(),
                src_id, dest_terminal_ids: ids, dest_terminal_type: v3(small[9]), content,
                link_id,
            }
        }
    }

    prop_compose! {
        fn any_deliver(v: Version)(
            content in proptest::collection::vec(any::<u8>(), 0..=255),
            dest_id in ascii(21), src in ascii(v.terminal_len()), service_id in ascii(10),
            link_id in ascii(if v == Version::V3_0 { 20 } else { 0 }),
            small in proptest::array::uniform5(any::<u8>()), msg_id in any::<u64>(),
        ) -> Deliver {
            Deliver { msg_id, dest_id, service_id, tp_pid: small[0], tp_udhi: small[1],
                msg_fmt: small[2], src_terminal_id: src,
                src_terminal_type: if v == Version::V3_0 { small[4] } else { 0 },
                registered_delivery: small[3], content, link_id }
        }
    }

    /// A Status/Result that fits `v`.
    fn any_status(v: Version) -> BoxedStrategy<u32> {
        match v {
            Version::V2_0 => any::<u8>().prop_map(u32::from).boxed(),
            Version::V3_0 => any::<u32>().boxed(),
        }
    }

    fn any_body(v: Version) -> impl Strategy<Value = Body> {
        prop_oneof![
            any_submit(v).prop_map(Body::Submit),
            any_deliver(v).prop_map(Body::Deliver),
            (ascii(6), any::<[u8; 16]>(), any::<u8>(), any::<u32>()).prop_map(|(s, a, v, t)| {
                Body::Connect(Connect {
                    source_addr: s,
                    authenticator: a,
                    version: v,
                    timestamp: t,
                })
            }),
            (any_status(v), any::<[u8; 16]>(), any::<u8>()).prop_map(|(status, a, version)| {
                Body::ConnectResp {
                    status,
                    authenticator: a,
                    version,
                }
            }),
            (any::<u64>(), any_status(v))
                .prop_map(|(msg_id, result)| Body::SubmitResp { msg_id, result }),
            (any::<u64>(), any_status(v))
                .prop_map(|(msg_id, result)| Body::DeliverResp { msg_id, result }),
            Just(Body::ActiveTest),
            Just(Body::ActiveTestResp),
            Just(Body::Terminate),
            Just(Body::TerminateResp),
        ]
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&b, Version::V2_0);
            let _ = decode(&b, Version::V3_0);
            let _ = StatusReport::decode(&b);
        }

        #[test]
        fn decoding_a_mangled_valid_message_never_panics(
            (v, body) in any_version().prop_flat_map(|v| (Just(v), any_body(v))),
            at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()
        ) {
            let mut b = Pdu::new(3, body).encode(v).unwrap();
            let i = at % b.len();
            b[i] = byte;
            b.truncate(cut % (b.len() + 1));
            let _ = decode(&b, v);
        }

        #[test]
        fn encode_then_decode_gives_the_message_back(
            (v, body) in any_version().prop_flat_map(|v| (Just(v), any_body(v))),
            seq in any::<u32>()
        ) {
            let p = Pdu::new(seq, body);
            let b = p.encode(v).unwrap();
            prop_assert_eq!(decode(&b, v).unwrap(), Some((p, b.len())));
        }
    }
}
