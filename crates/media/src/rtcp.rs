//! RTCP sender and receiver reports (RFC 3550 §6.4): build ours, read the peer's.

/// One reception report block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    pub ssrc: u32,
    pub fraction_lost: u8,
    /// 24-bit signed cumulative loss.
    pub cumulative_lost: i32,
    pub highest_seq: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    pub last_sr: u32,
    pub delay_since_last_sr: u32,
}

/// The sender-info part of an SR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    pub ntp: u64,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A parsed SR or RR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ssrc: u32,
    pub sender: Option<SenderInfo>,
    pub blocks: Vec<ReportBlock>,
}

fn block_bytes(b: &ReportBlock, out: &mut Vec<u8>) {
    out.extend_from_slice(&b.ssrc.to_be_bytes());
    let lost = (b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32) & 0x00FF_FFFF;
    out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
    out.extend_from_slice(&b.highest_seq.to_be_bytes());
    out.extend_from_slice(&b.jitter.to_be_bytes());
    out.extend_from_slice(&b.last_sr.to_be_bytes());
    out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
}

impl Report {
    /// Serialises as SR (with sender info) or RR, followed by an SDES CNAME chunk, as a
    /// compound packet (RFC 3550 §6.1 requires SDES in every compound packet).
    pub fn to_bytes(&self, cname: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(80);
        let count = self.blocks.len().min(31) as u8;
        let pt = if self.sender.is_some() { 200u8 } else { 201 };
        let words = 1 + if self.sender.is_some() { 5 } else { 0 } + 6 * usize::from(count);
        out.push(0x80 | count);
        out.push(pt);
        out.extend_from_slice(&(words as u16).to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        if let Some(s) = &self.sender {
            out.extend_from_slice(&s.ntp.to_be_bytes());
            out.extend_from_slice(&s.rtp_ts.to_be_bytes());
            out.extend_from_slice(&s.packets.to_be_bytes());
            out.extend_from_slice(&s.octets.to_be_bytes());
        }
        for b in self.blocks.iter().take(31) {
            block_bytes(b, &mut out);
        }
        // SDES: one chunk, CNAME item, null-terminated and padded to 32 bits.
        let name = &cname.as_bytes()[..cname.len().min(255)];
        let mut chunk = Vec::new();
        chunk.extend_from_slice(&self.ssrc.to_be_bytes());
        chunk.push(1);
        chunk.push(name.len() as u8);
        chunk.extend_from_slice(name);
        chunk.push(0);
        while chunk.len() % 4 != 0 {
            chunk.push(0);
        }
        out.push(0x81);
        out.push(202);
        out.extend_from_slice(&((chunk.len() / 4) as u16).to_be_bytes());
        out.extend_from_slice(&chunk);
        out
    }

    /// Reads every SR/RR in a compound packet; other packet types are skipped. Truncated or
    /// malformed parts end the walk (what was read before is kept).
    pub fn parse_compound(b: &[u8]) -> Vec<Report> {
        let mut out = Vec::new();
        let mut off = 0;
        while off + 4 <= b.len() {
            if b[off] >> 6 != 2 {
                break;
            }
            let count = usize::from(b[off] & 0x1F);
            let pt = b[off + 1];
            let len = 4 * (usize::from(u16::from_be_bytes([b[off + 2], b[off + 3]])) + 1);
            if off + len > b.len() {
                break;
            }
            let p = &b[off..off + len];
            if (pt == 200 || pt == 201) && p.len() >= 8 {
                let ssrc = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                let mut i = 8;
                let sender = if pt == 200 && p.len() >= 28 {
                    let g = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
                    i = 28;
                    Some(SenderInfo {
                        ntp: (u64::from(g(8)) << 32) | u64::from(g(12)),
                        rtp_ts: g(16),
                        packets: g(20),
                        octets: g(24),
                    })
                } else {
                    None
                };
                let mut blocks = Vec::new();
                for _ in 0..count {
                    if i + 24 > p.len() {
                        break;
                    }
                    let g = |o: usize| u32::from_be_bytes([p[o], p[o + 1], p[o + 2], p[o + 3]]);
                    let lost_word = g(i + 4);
                    let raw = lost_word & 0x00FF_FFFF;
                    let cumulative_lost = if raw & 0x80_0000 != 0 {
                        raw as i32 - 0x100_0000
                    } else {
                        raw as i32
                    };
                    blocks.push(ReportBlock {
                        ssrc: g(i),
                        fraction_lost: (lost_word >> 24) as u8,
                        cumulative_lost,
                        highest_seq: g(i + 8),
                        jitter: g(i + 12),
                        last_sr: g(i + 16),
                        delay_since_last_sr: g(i + 20),
                    });
                    i += 24;
                }
                out.push(Report {
                    ssrc,
                    sender,
                    blocks,
                });
            }
            off += len;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sr_roundtrip() {
        let r = Report {
            ssrc: 0x1234,
            sender: Some(SenderInfo {
                ntp: 0xdead_beef_0000_0001,
                rtp_ts: 160,
                packets: 50,
                octets: 8000,
            }),
            blocks: vec![ReportBlock {
                ssrc: 9,
                fraction_lost: 25,
                cumulative_lost: -3,
                highest_seq: 70000,
                jitter: 12,
                last_sr: 5,
                delay_since_last_sr: 6,
            }],
        };
        let b = r.to_bytes("waihu@127.0.0.1");
        assert_eq!(b.len() % 4, 0);
        assert_eq!(Report::parse_compound(&b), vec![r]);
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Report::parse_compound(&b);
        }
    }
}
