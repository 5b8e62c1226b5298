//! Texts to CMPP content and back: ASCII (Msg_Fmt 0) when every character is printable
//! ASCII, UCS-2 (Msg_Fmt 8) otherwise; one message holds 140 octets, a longer text is cut
//! into parts of 134 octets behind a 6-octet concatenation UDH (TP_udhi = 1). A UTF-16
//! surrogate pair is never split across parts.

use crate::pdu::fmt;

/// Octets in one message's content.
pub const MAX_OCTETS: usize = 140;
/// Octets of text in one part of a long message (140 − the 6-octet UDH).
pub const PART_OCTETS: usize = 134;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub msg_fmt: u8,
    /// The encoded text of each part, without UDH.
    pub parts: Vec<Vec<u8>>,
}

impl Plan {
    pub fn part_count(&self) -> usize {
        self.parts.len()
    }
}

pub fn plan(text: &str) -> Plan {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\n' || b == b'\r')
    {
        let b = text.as_bytes();
        let parts = if b.len() <= MAX_OCTETS {
            vec![b.to_vec()]
        } else {
            b.chunks(PART_OCTETS).map(<[u8]>::to_vec).collect()
        };
        return Plan {
            msg_fmt: fmt::ASCII,
            parts,
        };
    }
    let units: Vec<u16> = text.encode_utf16().collect();
    let parts = if units.len() * 2 <= MAX_OCTETS {
        vec![be(&units)]
    } else {
        let per = PART_OCTETS / 2;
        let mut parts = Vec::new();
        let mut at = 0;
        while at < units.len() {
            let mut end = (at + per).min(units.len());
            // Do not end a part on a high surrogate.
            if end < units.len() && (0xD800..0xDC00).contains(&units[end - 1]) {
                end -= 1;
            }
            parts.push(be(&units[at..end]));
            at = end;
        }
        parts
    };
    Plan {
        msg_fmt: fmt::UCS2,
        parts,
    }
}

fn be(units: &[u16]) -> Vec<u8> {
    units.iter().flat_map(|u| u.to_be_bytes()).collect()
}

/// Content to text by Msg_Fmt: UCS-2 (8), GBK/GB18030 (15, what many handsets' replies
/// arrive as), anything else as ASCII/Latin-1. Never fails: undecodable bytes become U+FFFD.
pub fn decode(msg_fmt: u8, b: &[u8]) -> String {
    match msg_fmt {
        fmt::UCS2 => {
            let units: Vec<u16> = b
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        fmt::GB => encoding_rs::GB18030.decode(b).0.into_owned(),
        _ => b.iter().map(|&c| c as char).collect(),
    }
}

/// The concatenation element of a UDH at the start of `content`: (reference, total,
/// number, the text after the UDH). 8- or 16-bit references.
pub fn split_udh(content: &[u8]) -> Option<(u16, u8, u8, &[u8])> {
    let (&udhl, rest) = content.split_first()?;
    let udh = rest.get(..udhl as usize)?;
    let body = &rest[udhl as usize..];
    let mut i = 0;
    while i + 1 < udh.len() {
        let (iei, len) = (udh[i], udh[i + 1] as usize);
        let data = udh.get(i + 2..i + 2 + len)?;
        match (iei, data) {
            (0x00, [r, t, s]) => return Some((*r as u16, *t, *s, body)),
            (0x08, [r1, r2, t, s]) => return Some((u16::from_be_bytes([*r1, *r2]), *t, *s, body)),
            _ => {}
        }
        i += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ascii_and_ucs2_limits() {
        assert_eq!(plan(&"a".repeat(140)).parts.len(), 1);
        assert_eq!(plan(&"a".repeat(141)).parts.len(), 2);
        let p = plan(&"中".repeat(70));
        assert_eq!((p.msg_fmt, p.parts.len()), (fmt::UCS2, 1));
        let p = plan(&"中".repeat(71));
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.parts[0].len(), 134);
        // A tab is not printable ASCII: UCS-2.
        assert_eq!(plan("a\tb").msg_fmt, fmt::UCS2);
    }

    #[test]
    fn surrogate_pairs_stay_whole() {
        let text = format!("{}😀tail", "中".repeat(66));
        let p = plan(&format!("{text}{}", "x".repeat(10)));
        assert_eq!(p.parts[0].len(), 132, "the pair moved to the next part");
        let joined: Vec<u8> = p.parts.concat();
        assert!(decode(8, &joined).starts_with(&text));
    }

    #[test]
    fn decodes_gbk_replies() {
        assert_eq!(decode(fmt::GB, &[0xCD, 0xCB, 0xB6, 0xA9]), "退订");
        assert_eq!(decode(fmt::UCS2, &[0x90, 0x00, 0x8b]), "退\u{8b00}");
        assert_eq!(decode(fmt::ASCII, b"TD"), "TD");
    }

    #[test]
    fn udh_parsing() {
        let c = [5, 0, 3, 9, 2, 1, b'h', b'i'];
        assert_eq!(split_udh(&c), Some((9, 2, 1, &b"hi"[..])));
        let c = [6, 8, 4, 1, 2, 3, 1, b'x'];
        assert_eq!(split_udh(&c), Some((0x0102, 3, 1, &b"x"[..])));
        assert_eq!(split_udh(&[7, 0, 3]), None);
        assert_eq!(split_udh(&[]), None);
    }

    proptest! {
        #[test]
        fn parts_fit_and_join_back(text in "\\PC{0,300}") {
            let p = plan(&text);
            let max = if p.parts.len() == 1 { MAX_OCTETS } else { PART_OCTETS };
            for part in &p.parts {
                prop_assert!(part.len() <= max);
            }
            prop_assert_eq!(decode(p.msg_fmt, &p.parts.concat()), text);
        }

        #[test]
        fn never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), f in any::<u8>()) {
            let _ = decode(f, &b);
            let _ = split_udh(&b);
        }
    }
}
