//! Message text on the air: GSM 03.38 7-bit default alphabet vs UCS-2, and how a long text
//! is cut into concatenated segments.
//!
//! A single SMS holds 140 octets: 160 GSM septets or 70 UCS-2 code units. A concatenated
//! message spends 6 octets per segment on the User Data Header, leaving 153 septets or 67
//! UCS-2 units per segment. Characters from the GSM extension table (`€ [ ] { } \ ^ ~ |` and
//! form feed) take two septets and are never split across segments; neither is a UTF-16
//! surrogate pair.

/// SMPP data_coding values.
pub const DC_DEFAULT: u8 = 0x00;
pub const DC_LATIN1: u8 = 0x03;
pub const DC_UCS2: u8 = 0x08;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// GSM 03.38 default alphabet, sent unpacked (one septet per octet) with data_coding 0.
    Gsm7,
    /// UTF-16 big-endian with data_coding 8 (Chinese text always lands here).
    Ucs2,
}

impl Encoding {
    pub fn data_coding(self) -> u8 {
        match self {
            Encoding::Gsm7 => DC_DEFAULT,
            Encoding::Ucs2 => DC_UCS2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Gsm7 => "GSM-7",
            Encoding::Ucs2 => "UCS-2",
        }
    }
    fn single_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => 160,
            Encoding::Ucs2 => 70,
        }
    }
    fn segment_limit(self) -> usize {
        match self {
            Encoding::Gsm7 => 153,
            Encoding::Ucs2 => 67,
        }
    }
}

/// GSM 03.38 default alphabet, indexed by septet.
const GSM_BASIC: [char; 128] = [
    '@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å', 'Δ', '_',
    'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', '\u{1b}', 'Æ', 'æ', 'ß', 'É', ' ', '!', '"', '#',
    '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/', '0', '1', '2', '3', '4', '5', '6',
    '7', '8', '9', ':', ';', '<', '=', '>', '?', '¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I',
    'J', 'K', 'L', 'M', 'N', 'O', 'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö',
    'Ñ', 'Ü', '§', '¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
];

/// Extension table: characters sent as ESC (0x1B) + septet.
const GSM_EXT: [(char, u8); 10] = [
    ('\u{0c}', 0x0A),
    ('^', 0x14),
    ('{', 0x28),
    ('}', 0x29),
    ('\\', 0x2F),
    ('[', 0x3C),
    ('~', 0x3D),
    (']', 0x3E),
    ('|', 0x40),
    ('€', 0x65),
];

/// The septets for one character, or `None` if GSM-7 cannot carry it.
fn gsm_septets(c: char) -> Option<([u8; 2], usize)> {
    if c == '\u{1b}' {
        return None;
    }
    if let Some(i) = GSM_BASIC.iter().position(|&g| g == c) {
        return Some(([i as u8, 0], 1));
    }
    GSM_EXT
        .iter()
        .find(|(g, _)| *g == c)
        .map(|&(_, s)| ([0x1B, s], 2))
}

/// The cheapest encoding that carries `text` exactly.
pub fn choose_encoding(text: &str) -> Encoding {
    if text.chars().all(|c| gsm_septets(c).is_some()) {
        Encoding::Gsm7
    } else {
        Encoding::Ucs2
    }
}

/// How a text goes on the air.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentPlan {
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Each segment's user data (without UDH), already encoded.
    pub segments: Vec<Vec<u8>>,
}

impl SegmentPlan {
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }
}

/// Encodes and cuts `text`. An empty text is one empty segment.
pub fn plan(text: &str) -> SegmentPlan {
    let encoding = choose_encoding(text);
    // Each character's encoded form and its size in units.
    let chars: Vec<(Vec<u8>, usize)> = text
        .chars()
        .map(|c| match encoding {
            Encoding::Gsm7 => {
                let (s, n) = gsm_septets(c).unwrap_or(([0x3F, 0], 1)); // '?' unreachable
                (s[..n].to_vec(), n)
            }
            Encoding::Ucs2 => {
                let mut buf = [0u16; 2];
                let units = c.encode_utf16(&mut buf);
                let bytes = units.iter().flat_map(|u| u.to_be_bytes()).collect();
                (bytes, units.len())
            }
        })
        .collect();
    let units: usize = chars.iter().map(|(_, n)| n).sum();
    let limit = if units <= encoding.single_limit() {
        encoding.single_limit()
    } else {
        encoding.segment_limit()
    };
    let mut segments = vec![Vec::new()];
    let mut used = 0;
    for (bytes, n) in chars {
        if used + n > limit {
            segments.push(Vec::new());
            used = 0;
        }
        if let Some(last) = segments.last_mut() {
            last.extend_from_slice(&bytes);
        }
        used += n;
    }
    SegmentPlan {
        encoding,
        units,
        segments,
    }
}

/// Decodes a received short message (MO text, receipt text) by its data_coding.
/// Unknown codings fall back to Latin-1 so nothing is lost silently; invalid UCS-2 is
/// replaced with U+FFFD.
pub fn decode(data_coding: u8, bytes: &[u8]) -> String {
    match data_coding {
        DC_UCS2 => {
            let units: Vec<u16> = bytes
                .chunks(2)
                .map(|c| u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]))
                .collect();
            String::from_utf16_lossy(&units)
        }
        DC_DEFAULT => decode_gsm_unpacked(bytes),
        _ => bytes.iter().map(|&b| b as char).collect(),
    }
}

fn decode_gsm_unpacked(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut esc = false;
    for &b in bytes {
        let s = b & 0x7F;
        if esc {
            esc = false;
            match GSM_EXT.iter().find(|(_, e)| *e == s) {
                Some((c, _)) => out.push(*c),
                None => out.push(GSM_BASIC[s as usize]),
            }
        } else if s == 0x1B {
            esc = true;
        } else {
            out.push(GSM_BASIC[s as usize]);
        }
    }
    out
}

/// Encodes a whole text in one encoding, without cutting (for message_payload).
pub fn encode_whole(text: &str) -> (Encoding, Vec<u8>) {
    let p = plan(text);
    (p.encoding, p.segments.concat())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn latin_text_is_gsm7_and_chinese_is_ucs2() {
        assert_eq!(choose_encoding("Hello @ 5€"), Encoding::Gsm7);
        assert_eq!(choose_encoding("您好"), Encoding::Ucs2);
        assert_eq!(choose_encoding("naïve"), Encoding::Ucs2);
    }

    #[test]
    fn segment_boundaries_match_the_standard() {
        assert_eq!(plan(&"a".repeat(160)).segment_count(), 1);
        assert_eq!(plan(&"a".repeat(161)).segment_count(), 2);
        assert_eq!(plan(&"a".repeat(306)).segment_count(), 2);
        assert_eq!(plan(&"a".repeat(307)).segment_count(), 3);
        assert_eq!(plan(&"好".repeat(70)).segment_count(), 1);
        assert_eq!(plan(&"好".repeat(71)).segment_count(), 2);
        assert_eq!(plan(&"好".repeat(134)).segment_count(), 2);
        assert_eq!(plan(&"好".repeat(135)).segment_count(), 3);
        // Extension characters count twice.
        assert_eq!(plan(&"€".repeat(80)).segment_count(), 1);
        assert_eq!(plan(&"€".repeat(81)).segment_count(), 2);
    }

    #[test]
    fn escapes_are_never_split() {
        let text = format!("{}€", "a".repeat(152));
        let p = plan(&format!("{text}{}", "b".repeat(10)));
        assert_eq!(p.segments[0].len(), 152);
        assert_eq!(p.segments[1][..2], [0x1B, 0x65]);
    }

    proptest! {
        #[test]
        fn segments_decode_back_to_the_text(text in "[a-zA-Z0-9 €{}@好中文😀]{0,400}") {
            let p = plan(&text);
            let joined: String = p.segments.iter().map(|s| decode(p.encoding.data_coding(), s)).collect();
            prop_assert_eq!(joined, text);
            for s in &p.segments {
                let limit = match p.encoding { Encoding::Gsm7 => 160, Encoding::Ucs2 => 140 };
                prop_assert!(s.len() <= limit);
            }
        }

        #[test]
        fn decoding_any_bytes_never_panics(dc in any::<u8>(), bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode(dc, &bytes);
        }
    }
}
