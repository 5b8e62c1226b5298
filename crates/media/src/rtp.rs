//! RTP packets (RFC 3550 §5.1): zero-copy parsing and serialisation.
//!
//! Hand-written: the fixed header is 12 bytes and we need exactly the fields below; a
//! proptest checks that parse ∘ serialise is the identity and that arbitrary bytes never panic.

/// Why a datagram is not a usable RTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    #[error("RTP packet too short: {0} bytes (need at least 12)")]
    TooShort(usize),
    #[error("RTP version {0} (expected 2)")]
    Version(u8),
    #[error("RTP packet of {len} bytes cannot hold its {need}-byte header (CSRC/extension)")]
    Truncated { len: usize, need: usize },
    #[error("RTP padding length {pad} is larger than the {len}-byte payload area")]
    Padding { pad: usize, len: usize },
}

/// A parsed RTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub csrc_count: u8,
    /// Header extension (profile, data) if the X bit was set.
    pub extension: Option<(u16, &'a [u8])>,
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    pub fn parse(b: &'a [u8]) -> Result<RtpPacket<'a>, RtpError> {
        if b.len() < 12 {
            return Err(RtpError::TooShort(b.len()));
        }
        let version = b[0] >> 6;
        if version != 2 {
            return Err(RtpError::Version(version));
        }
        let padding = b[0] & 0x20 != 0;
        let has_ext = b[0] & 0x10 != 0;
        let cc = b[0] & 0x0F;
        let mut off = 12 + 4 * usize::from(cc);
        if b.len() < off {
            return Err(RtpError::Truncated {
                len: b.len(),
                need: off,
            });
        }
        let mut extension = None;
        if has_ext {
            if b.len() < off + 4 {
                return Err(RtpError::Truncated {
                    len: b.len(),
                    need: off + 4,
                });
            }
            let profile = u16::from_be_bytes([b[off], b[off + 1]]);
            let words = usize::from(u16::from_be_bytes([b[off + 2], b[off + 3]]));
            let end = off + 4 + 4 * words;
            if b.len() < end {
                return Err(RtpError::Truncated {
                    len: b.len(),
                    need: end,
                });
            }
            extension = Some((profile, &b[off + 4..end]));
            off = end;
        }
        let mut end = b.len();
        if padding {
            let pad = usize::from(b[b.len() - 1]);
            if pad == 0 || pad > end - off {
                return Err(RtpError::Padding {
                    pad,
                    len: end - off,
                });
            }
            end -= pad;
        }
        Ok(RtpPacket {
            marker: b[1] & 0x80 != 0,
            payload_type: b[1] & 0x7F,
            sequence: u16::from_be_bytes([b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            ssrc: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
            csrc_count: cc,
            extension,
            payload: &b[off..end],
        })
    }
}

/// The header fields we set when sending (no CSRC, no extension, no padding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
}

impl RtpHeader {
    /// Appends header + payload to `out`.
    pub fn write(&self, payload: &[u8], out: &mut Vec<u8>) {
        out.reserve(12 + payload.len());
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(payload);
    }
    pub fn to_vec(&self, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::with_capacity(12 + payload.len());
        self.write(payload, &mut v);
        v
    }
}

/// Is this datagram RTCP rather than RTP (RFC 5761 §4: payload types 72-76 with the marker
/// bit read as part of the type are RTCP)?
pub fn looks_like_rtcp(b: &[u8]) -> bool {
    b.len() >= 2 && (200..=206).contains(&b[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_csrc_extension_and_padding() {
        let mut b = vec![
            0x80 | 0x20 | 0x10 | 0x01,
            0x80 | 8,
            0,
            7,
            0,
            0,
            1,
            0,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        b.extend_from_slice(&[1, 2, 3, 4]); // CSRC
        b.extend_from_slice(&[0xbe, 0xde, 0, 1, 9, 9, 9, 9]); // extension, one word
        b.extend_from_slice(&[0xd5; 5]);
        b.extend_from_slice(&[0, 0, 3]); // 3 bytes padding
        let p = RtpPacket::parse(&b).unwrap();
        assert!(p.marker);
        assert_eq!(
            (p.payload_type, p.sequence, p.timestamp, p.ssrc),
            (8, 7, 256, 0xdeadbeef)
        );
        assert_eq!(p.extension, Some((0xbede, &[9u8, 9, 9, 9][..])));
        assert_eq!(p.payload, &[0xd5; 5]);
    }

    #[test]
    fn rejects_bad_input_with_reasons() {
        assert_eq!(RtpPacket::parse(&[0x80; 5]), Err(RtpError::TooShort(5)));
        assert_eq!(RtpPacket::parse(&[0x40; 12]), Err(RtpError::Version(1)));
        let mut b = vec![0x8F, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::Truncated { .. })
        ));
        b[0] = 0xA0;
        b.push(200);
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::Padding { .. })
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(marker: bool, pt in 0u8..128, seq: u16, ts: u32, ssrc: u32, payload in proptest::collection::vec(any::<u8>(), 0..400)) {
            let h = RtpHeader { marker, payload_type: pt, sequence: seq, timestamp: ts, ssrc };
            let bytes = h.to_vec(&payload);
            let p = RtpPacket::parse(&bytes).unwrap();
            prop_assert_eq!((p.marker, p.payload_type, p.sequence, p.timestamp, p.ssrc), (marker, pt, seq, ts, ssrc));
            prop_assert_eq!(p.payload, &payload[..]);
        }

        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RtpPacket::parse(&b);
        }
    }
}
