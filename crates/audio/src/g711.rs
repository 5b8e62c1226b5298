//! G.711 μ-law and A-law (ITU-T G.711), after the public-domain Sun reference code.
//!
//! Written by hand: the whole codec is two small bit-twiddling functions and two 256-entry
//! decode tables, smaller than any dependency that would bring it.

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Law {
    /// μ-law (PCMU, RTP payload type 0).
    Ulaw,
    /// A-law (PCMA, RTP payload type 8).
    Alaw,
}

impl Law {
    /// The static RTP payload type.
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Ulaw => 0,
            Law::Alaw => 8,
        }
    }
    /// The law for a static payload type (0 or 8).
    pub fn from_payload_type(pt: u8) -> Option<Law> {
        match pt {
            0 => Some(Law::Ulaw),
            8 => Some(Law::Alaw),
            _ => None,
        }
    }
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Law::Ulaw => out.extend(pcm.iter().map(|&s| linear_to_ulaw(s))),
            Law::Alaw => out.extend(pcm.iter().map(|&s| linear_to_alaw(s))),
        }
    }
    pub fn decode(self, codes: &[u8], out: &mut Vec<i16>) {
        let table = match self {
            Law::Ulaw => &ULAW_DECODE,
            Law::Alaw => &ALAW_DECODE,
        };
        out.extend(codes.iter().map(|&c| table[c as usize]));
    }
    /// The code for digital silence.
    pub fn silence(self) -> u8 {
        match self {
            Law::Ulaw => 0xFF,
            Law::Alaw => 0xD5,
        }
    }
}

const SEG_UEND: [i32; 8] = [0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF];
const SEG_AEND: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];

fn segment(v: i32, table: &[i32; 8]) -> usize {
    table.iter().position(|&end| v <= end).unwrap_or(8)
}

/// 16-bit linear PCM to μ-law.
pub fn linear_to_ulaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 2;
    let mask = if v < 0 {
        v = -v;
        0x7F
    } else {
        0xFF
    };
    v = v.min(8159) + 0x21;
    let seg = segment(v, &SEG_UEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let u = ((seg as i32) << 4) | ((v >> (seg + 1)) & 0x0F);
    (u as u8) ^ mask
}

/// 16-bit linear PCM to A-law.
pub fn linear_to_alaw(pcm: i16) -> u8 {
    let mut v = i32::from(pcm) >> 3;
    let mask = if v >= 0 {
        0xD5
    } else {
        v = -v - 1;
        0x55
    };
    let seg = segment(v, &SEG_AEND);
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut a = (seg as i32) << 4;
    a |= if seg < 2 {
        (v >> 1) & 0x0F
    } else {
        (v >> seg) & 0x0F
    };
    (a as u8) ^ mask
}

const fn ulaw_to_linear(code: u8) -> i16 {
    let u = !code;
    let mut t = (((u & 0x0F) as i32) << 3) + 0x84;
    t <<= ((u & 0x70) >> 4) as i32;
    (if u & 0x80 != 0 { 0x84 - t } else { t - 0x84 }) as i16
}

const fn alaw_to_linear(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let seg = ((a & 0x70) >> 4) as i32;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

const fn table(ulaw: bool) -> [i16; 256] {
    let mut t = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if ulaw {
            ulaw_to_linear(i as u8)
        } else {
            alaw_to_linear(i as u8)
        };
        i += 1;
    }
    t
}

/// μ-law code → linear PCM.
pub static ULAW_DECODE: [i16; 256] = table(true);
/// A-law code → linear PCM.
pub static ALAW_DECODE: [i16; 256] = table(false);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_code_survives_decode_encode() {
        for c in 0..=255u8 {
            let back = linear_to_ulaw(ULAW_DECODE[c as usize]);
            // 0x7F is μ-law's negative zero; it decodes to 0, which encodes as positive zero.
            if c == 0x7F {
                assert_eq!(back, 0xFF);
            } else {
                assert_eq!(back, c, "ulaw code {c:#x}");
            }
            assert_eq!(
                linear_to_alaw(ALAW_DECODE[c as usize]),
                c,
                "alaw code {c:#x}"
            );
        }
    }

    #[test]
    fn reference_values() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(ULAW_DECODE[0x00], -32124);
        assert_eq!(ULAW_DECODE[0x80], 32124);
        assert_eq!(ALAW_DECODE[0xAA], 32256);
        assert_eq!(ALAW_DECODE[0x2A], -32256);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
    }

    proptest! {
        #[test]
        fn quantisation_error_is_bounded(s in any::<i16>()) {
            for law in [Law::Ulaw, Law::Alaw] {
                let mut enc = Vec::new();
                law.encode(&[s], &mut enc);
                let mut dec = Vec::new();
                law.decode(&enc, &mut dec);
                let err = (i32::from(s) - i32::from(dec[0])).abs();
                // Step size grows with magnitude: at most ~1/16 of the value plus the smallest step.
                let bound = i32::from(s).abs() / 16 + 32;
                prop_assert!(err <= bound, "{law:?} {s} -> {} err {err}", dec[0]);
            }
        }
    }
}
