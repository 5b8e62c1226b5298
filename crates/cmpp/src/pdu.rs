//! CMPP 2.0 messages: the 12-byte header (Total_Length, Command_Id, Sequence_Id, all
//! big-endian) and the bodies an SP client needs. Every field has a fixed width
//! (CMPP "Octet String"s are padded with NUL bytes); the only variable parts are the
//! destination list and the message content of SUBMIT and DELIVER.
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

/// Msg_Fmt values.
pub mod fmt {
    pub const ASCII: u8 = 0;
    pub const BINARY: u8 = 4;
    pub const UCS2: u8 = 8;
    pub const GB: u8 = 15;
}

/// CMPP_CONNECT_RESP Status values (CMPP 2.0 §7.4.2).
pub mod connect_status {
    pub const OK: u8 = 0;
    pub const BAD_STRUCTURE: u8 = 1;
    pub const BAD_SOURCE_ADDR: u8 = 2;
    pub const AUTH_FAILED: u8 = 3;
    pub const VERSION_TOO_HIGH: u8 = 4;
}

/// CMPP_SUBMIT_RESP / CMPP_DELIVER_RESP Result values.
pub mod result {
    pub const OK: u8 = 0;
    pub const BAD_STRUCTURE: u8 = 1;
    pub const BAD_COMMAND: u8 = 2;
    pub const DUPLICATE_SEQUENCE: u8 = 3;
    pub const BAD_LENGTH: u8 = 4;
    /// "流量控制错": the gateway's rate limit (CMPP 2.0 result 8).
    pub const FLOW_CONTROL: u8 = 8;
    pub const OTHER: u8 = 9;
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
        status: u8,
        authenticator: [u8; 16],
        version: u8,
    },
    Terminate,
    TerminateResp,
    Submit(Submit),
    SubmitResp {
        msg_id: u64,
        result: u8,
    },
    Deliver(Deliver),
    DeliverResp {
        msg_id: u64,
        result: u8,
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
    pub content: Vec<u8>,
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
    /// 1: the content is a status report; 0: a message from the handset (MO).
    pub registered_delivery: u8,
    pub content: Vec<u8>,
}

/// The 60-byte content of a DELIVER with Registered_Delivery = 1.
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

pub const STATUS_REPORT_LEN: usize = 8 + 7 + 10 + 10 + 21 + 4;

impl StatusReport {
    pub fn delivered(&self) -> bool {
        self.stat == "DELIVRD"
    }

    pub fn decode(b: &[u8]) -> Result<StatusReport, String> {
        let mut r = Reader::new(b);
        let rep = StatusReport {
            msg_id: r.u64("Msg_Id")?,
            stat: r.text(7, "Stat")?,
            submit_time: r.text(10, "Submit_time")?,
            done_time: r.text(10, "Done_time")?,
            dest_terminal_id: r.text(21, "Dest_terminal_Id")?,
            smsc_sequence: r.u32("SMSC_sequence")?,
        };
        Ok(rep)
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut w = Vec::with_capacity(STATUS_REPORT_LEN);
        w.extend_from_slice(&self.msg_id.to_be_bytes());
        put_text(&mut w, &self.stat, 7, "Stat")?;
        put_text(&mut w, &self.submit_time, 10, "Submit_time")?;
        put_text(&mut w, &self.done_time, 10, "Done_time")?;
        put_text(&mut w, &self.dest_terminal_id, 21, "Dest_terminal_Id")?;
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

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
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
                w.push(*status);
                w.extend_from_slice(authenticator);
                w.push(*version);
            }
            Body::Terminate | Body::TerminateResp | Body::ActiveTest => {}
            Body::ActiveTestResp => w.push(0),
            Body::Submit(s) => {
                w.extend_from_slice(&s.msg_id.to_be_bytes());
                w.extend_from_slice(&[s.pk_total, s.pk_number, s.registered_delivery, s.msg_level]);
                put_text(&mut w, &s.service_id, 10, "Service_Id")?;
                w.push(s.fee_user_type);
                put_text(&mut w, &s.fee_terminal_id, 21, "Fee_terminal_Id")?;
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
                    put_text(&mut w, d, 21, "Dest_terminal_Id")?;
                }
                put_content(&mut w, &s.content)?;
                w.extend_from_slice(&[0; 8]);
            }
            Body::SubmitResp { msg_id, result } | Body::DeliverResp { msg_id, result } => {
                w.extend_from_slice(&msg_id.to_be_bytes());
                w.push(*result);
            }
            Body::Deliver(d) => {
                w.extend_from_slice(&d.msg_id.to_be_bytes());
                put_text(&mut w, &d.dest_id, 21, "Dest_Id")?;
                put_text(&mut w, &d.service_id, 10, "Service_Id")?;
                w.extend_from_slice(&[d.tp_pid, d.tp_udhi, d.msg_fmt]);
                put_text(&mut w, &d.src_terminal_id, 21, "Src_terminal_Id")?;
                w.push(d.registered_delivery);
                put_content(&mut w, &d.content)?;
                w.extend_from_slice(&[0; 8]);
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
/// message and the bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Pdu, usize)>, DecodeError> {
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
    let body =
        decode_body(command_id, &frame[HEADER_LEN..]).map_err(|reason| DecodeError::Malformed {
            command_id,
            sequence,
            frame_len: len,
            reason,
        })?;
    Ok(Some((Pdu { sequence, body }, len)))
}

fn decode_body(command_id: u32, b: &[u8]) -> Result<Body, String> {
    let mut r = Reader::new(b);
    let body = match command_id {
        CONNECT => Body::Connect(Connect {
            source_addr: r.text(6, "Source_Addr")?,
            authenticator: r.array16("AuthenticatorSource")?,
            version: r.u8("Version")?,
            timestamp: r.u32("Timestamp")?,
        }),
        CONNECT_RESP => Body::ConnectResp {
            status: r.u8("Status")?,
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
            let fee_terminal_id = r.text(21, "Fee_terminal_Id")?;
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
                dest_terminal_ids.push(r.text(21, "Dest_terminal_Id")?);
            }
            let content = r.content()?;
            r.skip(8, "Reserve")?;
            Body::Submit(Submit {
                msg_id,
                pk_total,
                pk_number,
                registered_delivery,
                msg_level,
                service_id,
                fee_user_type,
                fee_terminal_id,
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
                content,
            })
        }
        SUBMIT_RESP => Body::SubmitResp {
            msg_id: r.u64("Msg_Id")?,
            result: r.u8("Result")?,
        },
        DELIVER => {
            let d = Deliver {
                msg_id: r.u64("Msg_Id")?,
                dest_id: r.text(21, "Dest_Id")?,
                service_id: r.text(10, "Service_Id")?,
                tp_pid: r.u8("TP_pid")?,
                tp_udhi: r.u8("TP_udhi")?,
                msg_fmt: r.u8("Msg_Fmt")?,
                src_terminal_id: r.text(21, "Src_terminal_Id")?,
                registered_delivery: r.u8("Registered_Delivery")?,
                content: r.content()?,
            };
            r.skip(8, "Reserve")?;
            Body::Deliver(d)
        }
        DELIVER_RESP => Body::DeliverResp {
            msg_id: r.u64("Msg_Id")?,
            result: r.u8("Result")?,
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
        let b = p.encode().unwrap();
        assert_eq!(b.len(), 39);
        assert_eq!(&b[..12], &[0, 0, 0, 39, 0, 0, 0, 1, 0, 0, 0, 7]);
        assert_eq!(&b[12..18], b"901234");
        assert_eq!(b[34], 0x20);
        assert_eq!(&b[35..], &1205143000u32.to_be_bytes());
        assert_eq!(decode(&b).unwrap(), Some((p, 39)));
    }

    #[test]
    fn submit_layout_and_roundtrip() {
        let p = Pdu::new(1, Body::Submit(submit()));
        let b = p.encode().unwrap();
        // 12 header + 147 fixed before DestUsr_tl + 1 + 21 + 1 + 4 content + 8 reserve.
        assert_eq!(
            b.len(),
            12 + 8 + 4 + 10 + 1 + 21 + 3 + 6 + 2 + 6 + 17 + 17 + 21 + 1 + 21 + 1 + 4 + 8
        );
        assert_eq!(decode(&b).unwrap(), Some((p, b.len())));
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
        let b = r.encode().unwrap();
        assert_eq!(b.len(), STATUS_REPORT_LEN);
        assert_eq!(StatusReport::decode(&b).unwrap(), r);
        assert!(StatusReport::decode(&b[..30]).is_err());
    }

    #[test]
    fn bad_input_is_an_error() {
        assert_eq!(decode(&[0, 0, 0, 3]), Err(DecodeError::BadLength(3)));
        assert_eq!(
            decode(&[0, 0, 0x40, 0]),
            Err(DecodeError::BadLength(0x4000))
        );
        assert_eq!(decode(&[0, 0, 0, 12, 0]), Ok(None));
        // A SUBMIT_RESP missing its Result octet.
        let mut b = vec![0, 0, 0, 20, 0x80, 0, 0, 4, 0, 0, 0, 5];
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode(&b),
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
        assert!(Pdu::new(1, Body::Submit(long)).encode().is_err());
        let wide = Submit {
            src_id: "1".repeat(22),
            ..submit()
        };
        assert!(Pdu::new(1, Body::Submit(wide)).encode().is_err());
    }

    fn ascii(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[0-9A-Za-z]{{0,{max}}}")).unwrap()
    }

    prop_compose! {
        fn any_submit()(
            ids in proptest::collection::vec(ascii(21), 1..5),
            content in proptest::collection::vec(any::<u8>(), 0..=255),
            service_id in ascii(10), src_id in ascii(21), msg_src in ascii(6),
            small in proptest::array::uniform8(any::<u8>()),
            msg_id in any::<u64>(),
        ) -> Submit {
            Submit {
                msg_id, pk_total: small[0], pk_number: small[1], registered_delivery: small[2],
                msg_level: small[3], service_id, fee_user_type: small[4],
                fee_terminal_id: String::new(), tp_pid: small[5], tp_udhi: small[6],
                msg_fmt: small[7], msg_src, fee_type: "01".into(), fee_code: String::new(),
                valid_time: String::new(), at_time: String::new(), src_id,
                dest_terminal_ids: ids, content,
            }
        }
    }

    prop_compose! {
        fn any_deliver()(
            content in proptest::collection::vec(any::<u8>(), 0..=255),
            dest_id in ascii(21), src in ascii(21), service_id in ascii(10),
            small in proptest::array::uniform4(any::<u8>()), msg_id in any::<u64>(),
        ) -> Deliver {
            Deliver { msg_id, dest_id, service_id, tp_pid: small[0], tp_udhi: small[1],
                msg_fmt: small[2], src_terminal_id: src, registered_delivery: small[3], content }
        }
    }

    fn any_body() -> impl Strategy<Value = Body> {
        prop_oneof![
            any_submit().prop_map(Body::Submit),
            any_deliver().prop_map(Body::Deliver),
            (ascii(6), any::<[u8; 16]>(), any::<u8>(), any::<u32>()).prop_map(|(s, a, v, t)| {
                Body::Connect(Connect {
                    source_addr: s,
                    authenticator: a,
                    version: v,
                    timestamp: t,
                })
            }),
            (any::<u8>(), any::<[u8; 16]>(), any::<u8>()).prop_map(|(status, a, version)| {
                Body::ConnectResp {
                    status,
                    authenticator: a,
                    version,
                }
            }),
            (any::<u64>(), any::<u8>())
                .prop_map(|(msg_id, result)| Body::SubmitResp { msg_id, result }),
            (any::<u64>(), any::<u8>())
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
            let _ = decode(&b);
            let _ = StatusReport::decode(&b);
        }

        #[test]
        fn decoding_a_mangled_valid_message_never_panics(
            body in any_body(), at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()
        ) {
            let mut b = Pdu::new(3, body).encode().unwrap();
            let i = at % b.len();
            b[i] = byte;
            b.truncate(cut % (b.len() + 1));
            let _ = decode(&b);
        }

        #[test]
        fn encode_then_decode_gives_the_message_back(body in any_body(), seq in any::<u32>()) {
            let p = Pdu::new(seq, body);
            let b = p.encode().unwrap();
            prop_assert_eq!(decode(&b).unwrap(), Some((p, b.len())));
        }
    }
}
