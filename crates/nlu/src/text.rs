//! Text normalisation and feature extraction shared by training and inference.
use std::sync::OnceLock;

use jieba_rs::Jieba;

/// The jieba segmenter with its bundled dictionary. Loading takes ~180 ms, so
/// it is built once per process and shared.
pub fn jieba() -> &'static Jieba {
    static JIEBA: OnceLock<Jieba> = OnceLock::new();
    JIEBA.get_or_init(Jieba::new)
}

pub fn is_cjk(c: char) -> bool {
    matches!(c as u32, 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2FA1F)
}

/// Lower case, full-width ASCII folded to half-width, punctuation to spaces,
/// apostrophes dropped (ASR writes "dont" as often as "don't"), whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = true;
    for c in text.chars() {
        let c = match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        };
        if c == '\'' || c == '’' || c == '‘' {
            continue;
        }
        if c.is_alphanumeric() || c == '¥' || c == '$' || c == '%' {
            for l in c.to_lowercase() {
                out.push(l);
            }
            space = false;
        } else if !space {
            out.push(' ');
            space = true;
        }
    }
    while out.ends_with(' ') {
        out.pop();
    }
    out
}

/// FNV-1a, seeded by a feature kind so `w:对` and `c:对` differ.
fn hash(kind: u8, parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ u64::from(kind);
    h = h.wrapping_mul(0x0000_0100_0000_01b3);
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in p.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Hashed binary features of a normalised utterance, sorted and deduplicated:
/// jieba word unigrams and bigrams (with sentence boundaries) for every
/// language, plus character 1-3 grams over the Chinese characters.
pub fn features(normalized: &str) -> Vec<u64> {
    let mut f = Vec::with_capacity(64);
    let tokens: Vec<&str> = jieba()
        .cut(normalized, true)
        .into_iter()
        .map(|t| t.word)
        .filter(|w| !w.trim().is_empty())
        .collect();
    // Disfluencies carry no intent; drop them unless they are all there is ("啊?" asks to repeat).
    let content: Vec<&str> = tokens.iter().copied().filter(|t| !is_filler(t)).collect();
    let tokens = if content.is_empty() { tokens } else { content };
    let mut prev = "<s>";
    for t in &tokens {
        f.push(hash(b'w', &[t]));
        f.push(hash(b'b', &[prev, t]));
        prev = t;
    }
    if !tokens.is_empty() {
        f.push(hash(b'b', &[prev, "</s>"]));
    }
    // Character n-grams see through segmentation mistakes and homophones.
    let mut chars: Vec<char> = Vec::with_capacity(normalized.len() / 3 + 2);
    chars.push('^');
    chars.extend(normalized.chars().filter(|c| is_cjk(*c)));
    chars.push('$');
    if chars.len() > 2 {
        let mut buf = [0u8; 16];
        let mut s = String::with_capacity(12);
        for n in 1..=3usize {
            for w in chars.windows(n) {
                if n == 1 && (w[0] == '^' || w[0] == '$') {
                    continue;
                }
                s.clear();
                for c in w {
                    s.push_str(c.encode_utf8(&mut buf));
                }
                f.push(hash(b'c', &[&s]));
            }
        }
    }
    f.sort_unstable();
    f.dedup();
    f
}

fn is_filler(t: &str) -> bool {
    matches!(
        t,
        "嗯" | "嗯嗯"
            | "呃"
            | "额"
            | "哎"
            | "哎呀"
            | "哦"
            | "喂"
            | "uh"
            | "um"
            | "hmm"
            | "er"
            | "oh"
            | "well"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_folds_width_case_and_punctuation() {
        assert_eq!(
            normalize("  Don't，ＣＡＬＬ！ 我在开车。。"),
            "dont call 我在开车"
        );
        assert_eq!(normalize("？？"), "");
    }

    #[test]
    fn features_are_deterministic_and_mixed_language() {
        let a = features(&normalize("嗯 在开车 call me later"));
        assert_eq!(a, features(&normalize("嗯 在开车 call me later")));
        assert!(a.len() > 10);
        assert!(features("").is_empty());
    }
}
