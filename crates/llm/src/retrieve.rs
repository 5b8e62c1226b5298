//! Passage retrieval for knowledge-base answers. [`Retriever`] is the seam:
//! [`Bm25`] is the lexical implementation (character unigrams and bigrams for
//! Chinese, lower-cased words for English), and [`Dense`] ranks by cosine
//! over any [`Embedder`] (a sentence encoder plugs in there).
//! Pure computation: no I/O, no clock.
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One retrievable piece of a knowledge document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Passage {
    /// The heading it sits under (may be empty).
    #[serde(default)]
    pub title: String,
    pub text: String,
}

impl Passage {
    pub fn full(&self) -> String {
        if self.title.is_empty() {
            self.text.clone()
        } else {
            format!("{}：{}", self.title, self.text)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    /// Index into the passages the retriever was built from.
    pub index: usize,
    pub score: f32,
    /// How much of the question the passage covers, 0..=1: the idf-weighted
    /// share of the question's terms known to the document that this
    /// passage contains (cosine for [`Dense`]).
    pub coverage: f32,
    /// Matched terms longer than one character (Han bigrams, words): a
    /// single shared character is no evidence of topic.
    pub strong: usize,
}

pub trait Retriever: Send + Sync {
    /// Best passages for `query`, best first, at most `k`.
    fn search(&self, query: &str, k: usize) -> Vec<Hit>;
}

/// Turns texts into vectors (a sentence encoder).
pub trait Embedder: Send + Sync {
    fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>>;
}

fn is_han(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

const STOP_ZH: &str = "的了吗呢吧啊呀是我你您们这那个么请问一有在和就都也会能可以要什怎还";
const STOP_EN: &[&str] = &[
    "a", "an", "the", "is", "are", "do", "does", "did", "i", "you", "we", "my", "your", "it", "to",
    "of", "for", "and", "or", "in", "on", "can", "how", "what", "when", "which", "be", "with",
    "there", "this", "that", "please", "me", "if", "will", "would", "could", "should", "any",
];

/// Toneless pinyin of a Han character (its first reading).
fn plain_pinyin(c: char) -> Option<&'static str> {
    use pinyin::ToPinyin;
    c.to_pinyin().map(|p| p.plain())
}

/// Terms of a text: Han unigrams (minus function characters) and bigrams,
/// each Han bigram also as its toneless pinyin (`~hao dian`), English words
/// lower-cased with a plural `s` dropped, digit runs.
///
/// The pinyin terms are for questions heard over the phone: Whisper writes
/// a word it does not know with other characters of the same sound
/// ("这个进化其号电多少" for 这个净化器耗电多少), which share no character
/// bigram with the passage but share the sounds "hua qi" and "hao dian".
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if is_han(c) {
            if !STOP_ZH.contains(c) {
                out.push(c.to_string());
            }
            if let Some(&n) = chars.get(i + 1) {
                if is_han(n) {
                    out.push([c, n].iter().collect());
                    if let (Some(a), Some(b)) = (plain_pinyin(c), plain_pinyin(n)) {
                        out.push(format!("~{a} {b}"));
                    }
                }
            }
            i += 1;
        } else if c.is_alphanumeric() {
            let s = i;
            while i < chars.len() && chars[i].is_alphanumeric() && !is_han(chars[i]) {
                i += 1;
            }
            let w: String = chars[s..i].iter().collect::<String>().to_lowercase();
            if STOP_EN.contains(&w.as_str()) {
                continue;
            }
            let w = if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") {
                w[..w.len() - 1].to_string()
            } else {
                w
            };
            out.push(w);
        } else {
            i += 1;
        }
    }
    out
}

/// Okapi BM25 (k1 = 1.2, b = 0.75) over [`terms`].
pub struct Bm25 {
    docs: Vec<HashMap<String, f32>>,
    lens: Vec<f32>,
    avg: f32,
    df: HashMap<String, f32>,
}

impl Bm25 {
    pub fn new<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Bm25 {
        let mut docs = Vec::new();
        let mut lens = Vec::new();
        let mut df: HashMap<String, f32> = HashMap::new();
        for t in texts {
            let mut tf: HashMap<String, f32> = HashMap::new();
            let ts = terms(t.as_ref());
            lens.push(ts.len() as f32);
            for x in ts {
                *tf.entry(x).or_default() += 1.0;
            }
            for k in tf.keys() {
                *df.entry(k.clone()).or_default() += 1.0;
            }
            docs.push(tf);
        }
        let avg = if lens.is_empty() {
            1.0
        } else {
            (lens.iter().sum::<f32>() / lens.len() as f32).max(1.0)
        };
        Bm25 {
            docs,
            lens,
            avg,
            df,
        }
    }

    fn idf(&self, t: &str) -> f32 {
        let n = self.docs.len() as f32;
        let df = self.df.get(t).copied().unwrap_or(0.0);
        ((n - df + 0.5) / (df + 0.5) + 1.0).ln()
    }
}

impl Retriever for Bm25 {
    fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let mut q = terms(query);
        q.sort();
        q.dedup();
        let total_idf: f32 = q
            .iter()
            .filter(|t| self.df.contains_key(*t))
            .map(|t| self.idf(t))
            .sum();
        let mut hits: Vec<Hit> = Vec::new();
        for (i, d) in self.docs.iter().enumerate() {
            let (mut score, mut covered, mut strong) = (0.0f32, 0.0f32, 0usize);
            for t in &q {
                if let Some(&f) = d.get(t) {
                    let idf = self.idf(t);
                    covered += idf;
                    strong += usize::from(t.chars().count() > 1);
                    score += idf * f * 2.2 / (f + 1.2 * (0.25 + 0.75 * self.lens[i] / self.avg));
                }
            }
            if score > 0.0 {
                hits.push(Hit {
                    index: i,
                    score,
                    coverage: if total_idf > 0.0 {
                        covered / total_idf
                    } else {
                        0.0
                    },
                    strong,
                });
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        hits
    }
}

/// Cosine ranking over an [`Embedder`]'s vectors; passages embedded once.
pub struct Dense<E: Embedder> {
    embedder: E,
    vecs: Vec<Vec<f32>>,
}

impl<E: Embedder> Dense<E> {
    pub fn new<S: AsRef<str>>(embedder: E, texts: &[S]) -> Self {
        let refs: Vec<&str> = texts.iter().map(|s| s.as_ref()).collect();
        let vecs = embedder.embed(&refs);
        Dense { embedder, vecs }
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

impl<E: Embedder> Retriever for Dense<E> {
    fn search(&self, query: &str, k: usize) -> Vec<Hit> {
        let Some(q) = self.embedder.embed(&[query]).into_iter().next() else {
            return Vec::new();
        };
        let mut hits: Vec<Hit> = self
            .vecs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = cosine(&q, v);
                Hit {
                    index: i,
                    score: c,
                    coverage: c,
                    strong: 1,
                }
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.index.cmp(&b.index)));
        hits.truncate(k);
        hits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_misheard_as_homophones_finds_its_passage() {
        let doc = include_str!("../../../examples/knowledge/air_purifier.zh.md");
        let passages = crate::kb::split_document(doc, 300);
        let b = Bm25::new(passages.iter().map(Passage::full));
        // Whisper base's transcript of the live test's question (这个净化器
        // 耗电多少) over an 8 kHz line.
        let heard = "请问这个进化其号电多少?";
        let hits = b.search(heard, 3);
        let best = hits.first().unwrap_or_else(|| panic!("{heard}: no hit"));
        assert_eq!(passages[best.index].title, "耗电", "{hits:?}");
        assert!(best.strong > 0, "{best:?}");
        assert!(terms("耗电").contains(&"~hao dian".to_string()));
    }

    #[test]
    fn finds_the_right_passage() {
        let docs = [
            "滤芯更换：建议每6个月更换一次滤芯。",
            "配送：下单后48小时内发货。",
            "Filter: replace the filter every 6 months.",
            "Shipping: orders ship within 48 hours.",
        ];
        let b = Bm25::new(docs);
        assert_eq!(b.search("滤芯多久换一次？", 2)[0].index, 0);
        assert_eq!(b.search("什么时候发货", 2)[0].index, 1);
        assert_eq!(
            b.search("How often should I replace filters?", 2)[0].index,
            2
        );
        assert_eq!(b.search("when does my order ship", 2)[0].index, 3);
        assert!(b.search("今天天气", 2).is_empty() || b.search("今天天气", 2)[0].coverage < 0.5);
    }

    struct Bag;
    impl Embedder for Bag {
        fn embed(&self, texts: &[&str]) -> Vec<Vec<f32>> {
            texts
                .iter()
                .map(|t| {
                    let mut v = vec![0.0; 64];
                    for x in terms(t) {
                        let h = x
                            .bytes()
                            .fold(7u32, |h, b| h.wrapping_mul(31).wrapping_add(b as u32));
                        v[(h % 64) as usize] += 1.0;
                    }
                    v
                })
                .collect()
        }
    }

    #[test]
    fn dense_plugs_in() {
        let d = Dense::new(Bag, &["滤芯每6个月更换", "48小时内发货"]);
        assert_eq!(d.search("滤芯更换", 1)[0].index, 0);
    }
}
