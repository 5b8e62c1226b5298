//! GPT-2 byte-level BPE encoding, as Whisper's tokenizer does it, for the
//! decoder prompt (script vocabulary such as 星河商城 or a customer's name
//! biases what Whisper hears only if the prompt reaches it as the model's
//! own tokens). Sans-IO: built from the merges of a Hugging Face
//! `tokenizer.json` and the model's vocabulary.
//!
//! Written here rather than taken from the `tokenizers` crate: encoding a
//! prompt of a few dozen characters needs the merge table and 60 lines, not a
//! tokenizer framework and its dependency tree.
use std::collections::HashMap;

/// GPT-2's printable stand-in for each byte (the inverse is the decoder's table).
pub fn byte_chars() -> [char; 256] {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut out = ['\0'; 256];
    for (&b, &c) in bs.iter().zip(&cs) {
        out[b as usize] = char::from_u32(c).unwrap_or('\0');
    }
    out
}

/// A byte-level BPE encoder.
pub struct Bpe {
    ranks: HashMap<(String, String), usize>,
    ids: HashMap<String, u32>,
    chars: [char; 256],
}

impl Bpe {
    /// From `tokenizer.json` (its `model.merges`, as `"a b"` strings or
    /// `["a", "b"]` pairs) and the token strings by id.
    pub fn from_tokenizer_json(json: &str, vocab: &[String]) -> Result<Bpe, String> {
        let v: serde_json::Value =
            serde_json::from_str(json).map_err(|e| format!("tokenizer.json: {e}"))?;
        let merges = v["model"]["merges"]
            .as_array()
            .ok_or("tokenizer.json: no model.merges list")?;
        let mut ranks = HashMap::with_capacity(merges.len());
        for (i, m) in merges.iter().enumerate() {
            let pair = match m {
                serde_json::Value::String(s) => s
                    .split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                serde_json::Value::Array(a) if a.len() == 2 => a[0]
                    .as_str()
                    .zip(a[1].as_str())
                    .map(|(a, b)| (a.to_string(), b.to_string())),
                _ => None,
            }
            .ok_or_else(|| format!("tokenizer.json: merge {i} is not a pair: {m}"))?;
            ranks.entry(pair).or_insert(i);
        }
        let ids = vocab
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i as u32))
            .collect();
        Ok(Bpe {
            ranks,
            ids,
            chars: byte_chars(),
        })
    }

    /// The token ids of `text`. Pieces GPT-2's pre-tokenizer would make (an
    /// optional space and a run of letters, of digits, or of other symbols;
    /// whitespace) are merged separately; a piece the vocabulary lacks after
    /// merging falls back to its single bytes, which every byte-level
    /// vocabulary has.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for piece in pieces(text) {
            let mut sym: Vec<String> = piece
                .bytes()
                .map(|b| self.chars[b as usize].to_string())
                .collect();
            loop {
                let best = sym
                    .windows(2)
                    .enumerate()
                    .filter_map(|(i, w)| {
                        self.ranks
                            .get(&(w[0].clone(), w[1].clone()))
                            .map(|&r| (r, i))
                    })
                    .min();
                let Some((_, i)) = best else { break };
                let merged = format!("{}{}", sym[i], sym[i + 1]);
                sym.splice(i..i + 2, [merged]);
            }
            for s in sym {
                match self.ids.get(&s) {
                    Some(&id) => out.push(id),
                    None => out.extend(
                        s.chars()
                            .filter_map(|c| self.ids.get(&c.to_string()).copied()),
                    ),
                }
            }
        }
        out
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Class {
    Letter,
    Digit,
    Space,
    Other,
}

fn class(c: char) -> Class {
    if c.is_whitespace() {
        Class::Space
    } else if c.is_alphabetic() {
        Class::Letter
    } else if c.is_numeric() {
        Class::Digit
    } else {
        Class::Other
    }
}

/// GPT-2's pre-tokenisation (`'s|'t|... | ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+`),
/// without the English contractions (they only change how a prompt's
/// "don't" is split, not whether it is a valid token sequence).
fn pieces(text: &str) -> Vec<&str> {
    let idx: Vec<(usize, char)> = text.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < idx.len() {
        let start = idx[i].0;
        let mut j = i;
        // A single space joins the run after it.
        if idx[j].1 == ' ' && j + 1 < idx.len() && class(idx[j + 1].1) != Class::Space {
            j += 1;
        }
        let c = class(idx[j].1);
        j += 1;
        while j < idx.len() && class(idx[j].1) == c {
            // A run of spaces leaves its last one to the next word.
            if c == Class::Space
                && idx[j].1 == ' '
                && j + 1 < idx.len()
                && class(idx[j + 1].1) != Class::Space
            {
                break;
            }
            j += 1;
        }
        let end = idx.get(j).map_or(text.len(), |x| x.0);
        out.push(&text[start..end]);
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A toy byte-level vocabulary: every byte, plus the merges' results.
    fn toy() -> Bpe {
        let chars = byte_chars();
        let mut vocab: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        let merges = ["Ġ h", "Ġh i", "æ ĺ", "Ġ æĺ"];
        for m in merges {
            vocab.push(m.replace(' ', ""));
        }
        let json = serde_json::json!({"model": {"merges": merges}}).to_string();
        Bpe::from_tokenizer_json(&json, &vocab).unwrap()
    }

    fn decode(b: &Bpe, vocab: &[String], ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&i| vocab[i as usize].chars().collect::<Vec<_>>())
            .filter_map(|c| b.chars.iter().position(|&x| x == c).map(|p| p as u8))
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    fn toy_vocab() -> Vec<String> {
        let mut v: Vec<String> = byte_chars().iter().map(|c| c.to_string()).collect();
        v.extend(["Ġh", "Ġhi", "æĺ", "Ġæĺ"].map(String::from));
        v
    }

    #[test]
    fn merges_apply_by_rank() {
        let b = toy();
        // " hi" → "Ġh" first (rank 0), then "Ġhi" (rank 1): one token.
        assert_eq!(b.encode(" hi"), vec![256 + 1]);
        assert_eq!(
            pieces(" hi there  42!"),
            vec![" hi", " there", " ", " 42", "!"]
        );
        assert_eq!(pieces("星河商城 138"), vec!["星河商城", " 138"]);
    }

    #[test]
    fn malformed_merges_are_named() {
        let e = Bpe::from_tokenizer_json(r#"{"model":{"merges":[3]}}"#, &[]).err();
        assert!(e.unwrap().contains("merge 0"));
        assert!(Bpe::from_tokenizer_json("{", &[]).is_err());
    }

    proptest! {
        /// Any text encodes to tokens that decode to the same text.
        #[test]
        fn encoding_round_trips(s in "\\PC{0,40}") {
            let b = toy();
            let v = toy_vocab();
            prop_assert_eq!(decode(&b, &v, &b.encode(&s)), s);
        }
    }
}
