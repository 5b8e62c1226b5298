//! SMPP 3.4 PDUs: the 16-byte header, the bodies a transceiver client needs, and the
//! optional TLV parameters. Decoding never panics on any input (property-tested); a frame
//! whose header is sane but whose body is not is reported with its sequence number so the
//! session can answer `generic_nack` and carry on.

use thiserror::Error;

/// Header: command_length, command_id, command_status, sequence_number.
pub const HEADER_LEN: usize = 16;
/// Largest PDU accepted. SMPP sets no limit; a message_payload of a few KB is the largest
/// thing a real SMSC sends, so anything near this is a broken or hostile peer.
pub const MAX_PDU_LEN: u32 = 64 * 1024;

pub const GENERIC_NACK: u32 = 0x8000_0000;
pub const BIND_TRANSCEIVER: u32 = 0x0000_0009;
pub const BIND_TRANSCEIVER_RESP: u32 = 0x8000_0009;
pub const SUBMIT_SM: u32 = 0x0000_0004;
pub const SUBMIT_SM_RESP: u32 = 0x8000_0004;
pub const DELIVER_SM: u32 = 0x0000_0005;
pub const DELIVER_SM_RESP: u32 = 0x8000_0005;
pub const UNBIND: u32 = 0x0000_0006;
pub const UNBIND_RESP: u32 = 0x8000_0006;
pub const ENQUIRE_LINK: u32 = 0x0000_0015;
pub const ENQUIRE_LINK_RESP: u32 = 0x8000_0015;

/// command_status values the client produces or interprets.
pub mod status {
    pub const OK: u32 = 0x0000_0000;
    pub const INVALID_MSG_LEN: u32 = 0x0000_0001;
    pub const INVALID_CMD_ID: u32 = 0x0000_0003;
    pub const SYSTEM_ERROR: u32 = 0x0000_0008;
    pub const THROTTLED: u32 = 0x0000_0058;
    pub const MSG_QUEUE_FULL: u32 = 0x0000_0014;
}

/// Optional parameter tags used here.
pub mod tag {
    pub const RECEIPTED_MESSAGE_ID: u16 = 0x001E;
    pub const MESSAGE_STATE: u16 = 0x0427;
    pub const MESSAGE_PAYLOAD: u16 = 0x0424;
    pub const SAR_MSG_REF_NUM: u16 = 0x020C;
    pub const SAR_TOTAL_SEGMENTS: u16 = 0x020E;
    pub const SAR_SEGMENT_SEQNUM: u16 = 0x020F;
    pub const SC_INTERFACE_VERSION: u16 = 0x0210;
}

/// esm_class bits.
pub mod esm {
    /// The short message starts with a User Data Header (concatenation).
    pub const UDHI: u8 = 0x40;
    /// Message type mask; `RECEIPT` marks an SMSC delivery receipt in deliver_sm.
    pub const TYPE_MASK: u8 = 0x3C;
    pub const RECEIPT: u8 = 0x04;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pdu {
    pub status: u32,
    pub sequence: u32,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    BindTransceiver(Bind),
    BindTransceiverResp {
        system_id: String,
    },
    SubmitSm(Sm),
    SubmitSmResp {
        message_id: String,
    },
    DeliverSm(Sm),
    DeliverSmResp {
        message_id: String,
    },
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    /// A command this client does not implement; answered with generic_nack.
    Unknown {
        command_id: u32,
        body: Vec<u8>,
    },
}

impl Body {
    pub fn command_id(&self) -> u32 {
        match self {
            Body::BindTransceiver(_) => BIND_TRANSCEIVER,
            Body::BindTransceiverResp { .. } => BIND_TRANSCEIVER_RESP,
            Body::SubmitSm(_) => SUBMIT_SM,
            Body::SubmitSmResp { .. } => SUBMIT_SM_RESP,
            Body::DeliverSm(_) => DELIVER_SM,
            Body::DeliverSmResp { .. } => DELIVER_SM_RESP,
            Body::Unbind => UNBIND,
            Body::UnbindResp => UNBIND_RESP,
            Body::EnquireLink => ENQUIRE_LINK,
            Body::EnquireLinkResp => ENQUIRE_LINK_RESP,
            Body::GenericNack => GENERIC_NACK,
            Body::Unknown { command_id, .. } => *command_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bind {
    pub system_id: String,
    pub password: String,
    pub system_type: String,
    pub interface_version: u8,
    pub addr_ton: u8,
    pub addr_npi: u8,
    pub address_range: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address {
    pub ton: u8,
    pub npi: u8,
    pub addr: String,
}

impl Address {
    /// An international number (`+8613800000000` → TON 1, NPI 1, digits without `+`), or an
    /// alphanumeric sender (TON 5) when it holds letters.
    pub fn from_e164_or_alpha(s: &str) -> Address {
        if let Some(digits) = s.strip_prefix('+') {
            Address {
                ton: 1,
                npi: 1,
                addr: digits.to_string(),
            }
        } else if s.chars().all(|c| c.is_ascii_digit()) {
            Address {
                ton: 0,
                npi: 1,
                addr: s.to_string(),
            }
        } else {
            Address {
                ton: 5,
                npi: 0,
                addr: s.to_string(),
            }
        }
    }

    /// The address as the rest of waihu writes numbers: `+digits` for international ones.
    pub fn to_e164_or_raw(&self) -> String {
        if self.ton == 1 && !self.addr.starts_with('+') {
            format!("+{}", self.addr)
        } else {
            self.addr.clone()
        }
    }
}

/// submit_sm and deliver_sm share one body layout in SMPP 3.4.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sm {
    pub service_type: String,
    pub source: Address,
    pub dest: Address,
    pub esm_class: u8,
    pub protocol_id: u8,
    pub priority_flag: u8,
    pub schedule_delivery_time: String,
    pub validity_period: String,
    pub registered_delivery: u8,
    pub replace_if_present: u8,
    pub data_coding: u8,
    pub sm_default_msg_id: u8,
    pub short_message: Vec<u8>,
    pub tlvs: Vec<Tlv>,
}

impl Sm {
    pub fn tlv(&self, tag: u16) -> Option<&[u8]> {
        self.tlvs
            .iter()
            .find(|t| t.tag == tag)
            .map(|t| t.value.as_slice())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u16,
    pub value: Vec<u8>,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The header's length is impossible: the byte stream cannot be re-synchronised and the
    /// connection must be closed.
    #[error("SMPP frame length {0} out of range ({HEADER_LEN}..={MAX_PDU_LEN})")]
    BadLength(u32),
    /// A complete frame whose body is malformed. `frame_len` bytes may be skipped.
    #[error("malformed SMPP PDU (command 0x{command_id:08x}, sequence {sequence}): {reason}")]
    Malformed {
        command_id: u32,
        sequence: u32,
        frame_len: usize,
        reason: &'static str,
    },
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("SMPP field {field} is too long ({len} > {max} bytes)")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("SMPP field {field} contains a NUL byte")]
    Nul { field: &'static str },
}

/// Decodes one PDU from the front of `buf`. `Ok(None)`: more bytes are needed. On success
/// returns the PDU and how many bytes it used.
pub fn decode(buf: &[u8]) -> Result<Option<(Pdu, usize)>, DecodeError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if (len as usize) < HEADER_LEN || len > MAX_PDU_LEN {
        return Err(DecodeError::BadLength(len));
    }
    let len = len as usize;
    if buf.len() < len {
        return Ok(None);
    }
    let word = |i: usize| u32::from_be_bytes([buf[i], buf[i + 1], buf[i + 2], buf[i + 3]]);
    let command_id = word(4);
    let status = word(8);
    let sequence = word(12);
    let mut r = Reader {
        buf: &buf[HEADER_LEN..len],
        pos: 0,
    };
    let body = decode_body(command_id, &mut r).map_err(|reason| DecodeError::Malformed {
        command_id,
        sequence,
        frame_len: len,
        reason,
    })?;
    Ok(Some((
        Pdu {
            status,
            sequence,
            body,
        },
        len,
    )))
}

fn decode_body(command_id: u32, r: &mut Reader<'_>) -> Result<Body, &'static str> {
    let body = match command_id {
        BIND_TRANSCEIVER => Body::BindTransceiver(Bind {
            system_id: r.cstr(16, "system_id")?,
            password: r.cstr(9, "password")?,
            system_type: r.cstr(13, "system_type")?,
            interface_version: r.u8()?,
            addr_ton: r.u8()?,
            addr_npi: r.u8()?,
            address_range: r.cstr(41, "address_range")?,
        }),
        // Error responses may omit the body (SMPP 3.4 §3.3); TLVs after it are ignored.
        BIND_TRANSCEIVER_RESP => Body::BindTransceiverResp {
            system_id: r.opt_cstr(16, "system_id")?,
        },
        SUBMIT_SM_RESP => Body::SubmitSmResp {
            message_id: r.opt_cstr(65, "message_id")?,
        },
        DELIVER_SM_RESP => Body::DeliverSmResp {
            message_id: r.opt_cstr(65, "message_id")?,
        },
        SUBMIT_SM => Body::SubmitSm(decode_sm(r)?),
        DELIVER_SM => Body::DeliverSm(decode_sm(r)?),
        UNBIND => Body::Unbind,
        UNBIND_RESP => Body::UnbindResp,
        ENQUIRE_LINK => Body::EnquireLink,
        ENQUIRE_LINK_RESP => Body::EnquireLinkResp,
        GENERIC_NACK => Body::GenericNack,
        other => Body::Unknown {
            command_id: other,
            body: r.rest().to_vec(),
        },
    };
    Ok(body)
}

fn decode_sm(r: &mut Reader<'_>) -> Result<Sm, &'static str> {
    let service_type = r.cstr(6, "service_type")?;
    let source = Address {
        ton: r.u8()?,
        npi: r.u8()?,
        addr: r.cstr(21, "source_addr")?,
    };
    let dest = Address {
        ton: r.u8()?,
        npi: r.u8()?,
        addr: r.cstr(21, "destination_addr")?,
    };
    let esm_class = r.u8()?;
    let protocol_id = r.u8()?;
    let priority_flag = r.u8()?;
    let schedule_delivery_time = r.cstr(17, "schedule_delivery_time")?;
    let validity_period = r.cstr(17, "validity_period")?;
    let registered_delivery = r.u8()?;
    let replace_if_present = r.u8()?;
    let data_coding = r.u8()?;
    let sm_default_msg_id = r.u8()?;
    let sm_length = r.u8()? as usize;
    let short_message = r
        .take(sm_length)
        .ok_or("short_message longer than the PDU")?;
    let short_message = short_message.to_vec();
    let mut tlvs = Vec::new();
    while !r.rest().is_empty() {
        let tag = r.u16()?;
        let len = r.u16()? as usize;
        let value = r.take(len).ok_or("TLV longer than the PDU")?.to_vec();
        tlvs.push(Tlv { tag, value });
    }
    Ok(Sm {
        service_type,
        source,
        dest,
        esm_class,
        protocol_id,
        priority_flag,
        schedule_delivery_time,
        validity_period,
        registered_delivery,
        replace_if_present,
        data_coding,
        sm_default_msg_id,
        short_message,
        tlvs,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u8(&mut self) -> Result<u8, &'static str> {
        self.take(1).map(|b| b[0]).ok_or("PDU body ends early")
    }
    fn u16(&mut self) -> Result<u16, &'static str> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or("PDU body ends early")
    }
    /// A C-Octet String of at most `max` bytes including its NUL.
    fn cstr(&mut self, max: usize, field: &'static str) -> Result<String, &'static str> {
        let rest = self.rest();
        let window = &rest[..rest.len().min(max)];
        match window.iter().position(|&b| b == 0) {
            Some(n) => {
                let s = String::from_utf8_lossy(&window[..n]).into_owned();
                self.pos += n + 1;
                Ok(s)
            }
            None => Err(match field {
                "system_id" => "system_id not NUL-terminated within 16 bytes",
                "password" => "password not NUL-terminated within 9 bytes",
                "system_type" => "system_type not NUL-terminated within 13 bytes",
                "address_range" => "address_range not NUL-terminated within 41 bytes",
                "message_id" => "message_id not NUL-terminated within 65 bytes",
                "service_type" => "service_type not NUL-terminated within 6 bytes",
                "source_addr" => "source_addr not NUL-terminated within 21 bytes",
                "destination_addr" => "destination_addr not NUL-terminated within 21 bytes",
                _ => "time field not NUL-terminated within 17 bytes",
            }),
        }
    }
    fn opt_cstr(&mut self, max: usize, field: &'static str) -> Result<String, &'static str> {
        if self.rest().is_empty() {
            Ok(String::new())
        } else {
            self.cstr(max, field)
        }
    }
}

impl Pdu {
    pub fn new(sequence: u32, body: Body) -> Pdu {
        Pdu {
            status: status::OK,
            sequence,
            body,
        }
    }

    /// The PDU's bytes on the wire.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut out = vec![0u8; HEADER_LEN];
        match &self.body {
            Body::BindTransceiver(b) => {
                put_cstr(&mut out, &b.system_id, 16, "system_id")?;
                put_cstr(&mut out, &b.password, 9, "password")?;
                put_cstr(&mut out, &b.system_type, 13, "system_type")?;
                out.extend_from_slice(&[b.interface_version, b.addr_ton, b.addr_npi]);
                put_cstr(&mut out, &b.address_range, 41, "address_range")?;
            }
            Body::BindTransceiverResp { system_id } => {
                put_cstr(&mut out, system_id, 16, "system_id")?
            }
            Body::SubmitSmResp { message_id } | Body::DeliverSmResp { message_id } => {
                put_cstr(&mut out, message_id, 65, "message_id")?
            }
            Body::SubmitSm(sm) | Body::DeliverSm(sm) => encode_sm(&mut out, sm)?,
            Body::Unbind
            | Body::UnbindResp
            | Body::EnquireLink
            | Body::EnquireLinkResp
            | Body::GenericNack => {}
            Body::Unknown { body, .. } => out.extend_from_slice(body),
        }
        if out.len() > MAX_PDU_LEN as usize {
            return Err(EncodeError::TooLong {
                field: "PDU",
                len: out.len(),
                max: MAX_PDU_LEN as usize,
            });
        }
        let len = out.len() as u32;
        out[0..4].copy_from_slice(&len.to_be_bytes());
        out[4..8].copy_from_slice(&self.body.command_id().to_be_bytes());
        out[8..12].copy_from_slice(&self.status.to_be_bytes());
        out[12..16].copy_from_slice(&self.sequence.to_be_bytes());
        Ok(out)
    }
}

fn encode_sm(out: &mut Vec<u8>, sm: &Sm) -> Result<(), EncodeError> {
    put_cstr(out, &sm.service_type, 6, "service_type")?;
    out.extend_from_slice(&[sm.source.ton, sm.source.npi]);
    put_cstr(out, &sm.source.addr, 21, "source_addr")?;
    out.extend_from_slice(&[sm.dest.ton, sm.dest.npi]);
    put_cstr(out, &sm.dest.addr, 21, "destination_addr")?;
    out.extend_from_slice(&[sm.esm_class, sm.protocol_id, sm.priority_flag]);
    put_cstr(
        out,
        &sm.schedule_delivery_time,
        17,
        "schedule_delivery_time",
    )?;
    put_cstr(out, &sm.validity_period, 17, "validity_period")?;
    out.extend_from_slice(&[
        sm.registered_delivery,
        sm.replace_if_present,
        sm.data_coding,
        sm.sm_default_msg_id,
    ]);
    if sm.short_message.len() > 254 {
        return Err(EncodeError::TooLong {
            field: "short_message",
            len: sm.short_message.len(),
            max: 254,
        });
    }
    out.push(sm.short_message.len() as u8);
    out.extend_from_slice(&sm.short_message);
    for t in &sm.tlvs {
        if t.value.len() > u16::MAX as usize {
            return Err(EncodeError::TooLong {
                field: "TLV value",
                len: t.value.len(),
                max: u16::MAX as usize,
            });
        }
        out.extend_from_slice(&t.tag.to_be_bytes());
        out.extend_from_slice(&(t.value.len() as u16).to_be_bytes());
        out.extend_from_slice(&t.value);
    }
    Ok(())
}

fn put_cstr(
    out: &mut Vec<u8>,
    s: &str,
    max: usize,
    field: &'static str,
) -> Result<(), EncodeError> {
    if s.len() + 1 > max {
        return Err(EncodeError::TooLong {
            field,
            len: s.len() + 1,
            max,
        });
    }
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::Nul { field });
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ascii(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0x20u8..0x7f, 0..max)
            .prop_map(|v| String::from_utf8(v).unwrap_or_default())
    }

    fn address() -> impl Strategy<Value = Address> {
        (any::<u8>(), any::<u8>(), ascii(20)).prop_map(|(ton, npi, addr)| Address {
            ton,
            npi,
            addr,
        })
    }

    fn sm() -> impl Strategy<Value = Sm> {
        (
            (ascii(5), address(), address(), any::<u8>(), any::<u8>()),
            (ascii(16), ascii(16), any::<u8>(), any::<u8>()),
            proptest::collection::vec(any::<u8>(), 0..254),
            proptest::collection::vec(
                (any::<u16>(), proptest::collection::vec(any::<u8>(), 0..40)),
                0..4,
            ),
        )
            .prop_map(
                |((st, src, dst, esm, dc), (sched, valid, rd, pid), msg, tlvs)| Sm {
                    service_type: st,
                    source: src,
                    dest: dst,
                    esm_class: esm,
                    protocol_id: pid,
                    priority_flag: 0,
                    schedule_delivery_time: sched,
                    validity_period: valid,
                    registered_delivery: rd,
                    replace_if_present: 0,
                    data_coding: dc,
                    sm_default_msg_id: 0,
                    short_message: msg,
                    tlvs: tlvs
                        .into_iter()
                        .map(|(tag, value)| Tlv { tag, value })
                        .collect(),
                },
            )
    }

    fn body() -> impl Strategy<Value = Body> {
        prop_oneof![
            (ascii(15), ascii(8), ascii(12), any::<u8>(), ascii(40)).prop_map(
                |(system_id, password, system_type, v, range)| Body::BindTransceiver(Bind {
                    system_id,
                    password,
                    system_type,
                    interface_version: v,
                    addr_ton: 1,
                    addr_npi: 1,
                    address_range: range,
                })
            ),
            ascii(15).prop_map(|system_id| Body::BindTransceiverResp { system_id }),
            sm().prop_map(Body::SubmitSm),
            sm().prop_map(Body::DeliverSm),
            ascii(64).prop_map(|message_id| Body::SubmitSmResp { message_id }),
            ascii(64).prop_map(|message_id| Body::DeliverSmResp { message_id }),
            Just(Body::Unbind),
            Just(Body::UnbindResp),
            Just(Body::EnquireLink),
            Just(Body::EnquireLinkResp),
            Just(Body::GenericNack),
        ]
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = decode(&bytes);
        }

        #[test]
        fn decoding_bodies_behind_a_valid_header_never_panics(
            cmd in prop_oneof![Just(BIND_TRANSCEIVER), Just(BIND_TRANSCEIVER_RESP), Just(SUBMIT_SM),
                               Just(DELIVER_SM), Just(SUBMIT_SM_RESP), Just(DELIVER_SM_RESP), any::<u32>()],
            body in proptest::collection::vec(any::<u8>(), 0..400),
        ) {
            let mut bytes = ((body.len() + 16) as u32).to_be_bytes().to_vec();
            bytes.extend_from_slice(&cmd.to_be_bytes());
            bytes.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
            bytes.extend_from_slice(&body);
            if let Ok(Some((_, used))) = decode(&bytes) {
                prop_assert_eq!(used, bytes.len());
            }
        }

        #[test]
        fn encode_then_decode_round_trips(seq in any::<u32>(), st in any::<u32>(), body in body()) {
            let pdu = Pdu { status: st, sequence: seq, body };
            let bytes = pdu.encode().expect("generated fields are within limits");
            let (back, used) = decode(&bytes).expect("decodes").expect("complete");
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(back, pdu);
        }
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let bytes = Pdu::new(1, Body::EnquireLink).encode().unwrap();
        for n in 0..bytes.len() {
            assert_eq!(decode(&bytes[..n]), Ok(None));
        }
    }

    #[test]
    fn an_impossible_length_is_fatal() {
        assert_eq!(
            decode(&[0, 0, 0, 3, 0, 0, 0, 0]),
            Err(DecodeError::BadLength(3))
        );
    }

    #[test]
    fn an_error_response_without_body_decodes() {
        let mut b = 16u32.to_be_bytes().to_vec();
        b.extend_from_slice(&SUBMIT_SM_RESP.to_be_bytes());
        b.extend_from_slice(&status::THROTTLED.to_be_bytes());
        b.extend_from_slice(&9u32.to_be_bytes());
        let (p, _) = decode(&b).unwrap().unwrap();
        assert_eq!(p.status, status::THROTTLED);
        assert_eq!(
            p.body,
            Body::SubmitSmResp {
                message_id: String::new()
            }
        );
    }
}
