//! The second stage of intent classification: multilingual-e5-small sentence
//! embeddings (crate `waihu-encoder`) compared with a bank of examples — the
//! script's own intent examples plus a fixed handful of built-in training
//! lines per built-in intent and language ("prototypes"). It decides when the
//! script defines custom intents (a custom intent the encoder picks wins over
//! the built-ins), and when the linear model is unsure. The bank is embedded
//! once per script (the encoder remembers every text; the prototypes are also
//! cached on disk), so a turn pays one embedding (~15 ms on one core).
//!
//! Two ways to decide, both measured by `waihu bench nlu`: nearest examples
//! (the mean cosine of each intent's `K` closest examples) and a small
//! softmax-regression head trained on the bank at script load.
use std::sync::Arc;

use waihu_encoder::{Encoder, Kind};

/// How the encoder stage picks an intent from the bank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Mean cosine of each intent's [`NEAREST_K`] closest examples.
    Nearest,
    /// A softmax regression over the (centred) embeddings, trained at load.
    Head,
}

/// Examples per intent averaged by [`Method::Nearest`].
pub const NEAREST_K: usize = 2;
/// How far below the best built-in intent's score a custom intent's may be
/// and still win: the script's author named this call's vocabulary. Chosen on
/// built-in *training* lines (not in the bank) scored against the few-shot
/// sets' intents: ~5% of them are then taken by a custom intent.
pub const CUSTOM_MARGIN: f32 = 0.005;
/// Softmax temperature turning nearest-example cosines into a confidence.
const NEAREST_TEMPERATURE: f32 = 0.02;
/// Built-in training lines per built-in intent and language in the bank.
pub const PROTOTYPES: usize = 16;

pub(crate) struct Second {
    pub enc: Arc<Encoder>,
    pub method: Method,
    /// Linear confidence below which a turn goes to the encoder even when
    /// the script has no intents of its own (0 = never).
    pub unsure: f32,
    bank: Vec<(usize, Arc<[f32]>)>,
    n_labels: usize,
    head: Option<Head>,
}

pub(crate) struct Verdict {
    pub label: usize,
    pub confidence: f32,
}

impl Second {
    pub fn new(
        enc: Arc<Encoder>,
        method: Method,
        unsure: f32,
        examples: &[(usize, String)],
        n_labels: usize,
    ) -> Second {
        let texts: Vec<String> = examples.iter().map(|(_, t)| t.clone()).collect();
        let vecs = enc.embed_all(&texts, Kind::Query, Some(&waihu_encoder::cache_dir()));
        let bank: Vec<(usize, Arc<[f32]>)> = examples.iter().map(|(l, _)| *l).zip(vecs).collect();
        let head = (method == Method::Head).then(|| Head::train(&bank, n_labels));
        Second {
            enc,
            method,
            unsure,
            bank,
            n_labels,
            head,
        }
    }

    /// The encoder's intent for an utterance embedding `q`. `custom[l]` says
    /// whether label `l` is the script's own: with nearest examples, the best
    /// custom intent wins when its score is within [`CUSTOM_MARGIN`] of the
    /// best built-in one. `prior[l]`, when given, weighs label `l` as the
    /// linear model's context priors do (the state's expected intents, the
    /// yes/no reading of the words): the head's probabilities are multiplied
    /// by it, and nearest-example scores shifted by `T·ln(prior)`, which is
    /// the same product on their softmax.
    pub fn decide(&self, q: &[f32], custom: &[bool], prior: Option<&[f32]>) -> Option<Verdict> {
        if let (Some(h), Method::Head) = (&self.head, self.method) {
            let mut p = h.probabilities(q);
            if let Some(w) = prior {
                p.iter_mut().zip(w).for_each(|(v, w)| *v *= w);
                let sum: f32 = p.iter().sum();
                if sum > 0.0 {
                    p.iter_mut().for_each(|v| *v /= sum);
                }
            }
            let (label, confidence) =
                p.iter()
                    .enumerate()
                    .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a });
            return Some(Verdict { label, confidence });
        }
        let mut score = self.scores(q);
        if let Some(w) = prior {
            score
                .iter_mut()
                .zip(w)
                .filter(|(_, w)| **w > 0.0)
                .for_each(|(v, w)| *v += NEAREST_TEMPERATURE * w.ln());
        }
        let best_of = |want: bool| {
            score
                .iter()
                .enumerate()
                .filter(|(l, v)| custom.get(*l).copied().unwrap_or(false) == want && v.is_finite())
                .fold(None, |a: Option<(usize, f32)>, (l, &v)| match a {
                    Some((_, b)) if b >= v => a,
                    _ => Some((l, v)),
                })
        };
        let (label, best) = match (best_of(true), best_of(false)) {
            (Some((c, sc)), Some((_, sb))) if sc >= sb - CUSTOM_MARGIN => (c, sc),
            (Some((c, sc)), None) => (c, sc),
            (_, Some((b, sb))) => (b, sb),
            (None, None) => return None,
        };
        let z: f32 = score
            .iter()
            .filter(|v| v.is_finite())
            .map(|v| ((v - best) / NEAREST_TEMPERATURE).exp())
            .sum();
        Some(Verdict {
            label,
            confidence: (1.0 / z.max(1.0)).min(1.0),
        })
    }

    /// Each label's nearest-example score (mean cosine of its closest [`NEAREST_K`]).
    pub fn scores(&self, q: &[f32]) -> Vec<f32> {
        let mut top: Vec<[f32; NEAREST_K]> = vec![[f32::NEG_INFINITY; NEAREST_K]; self.n_labels];
        for (l, v) in &self.bank {
            let c: f32 = q.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            let t = &mut top[*l];
            if c > t[NEAREST_K - 1] {
                t[NEAREST_K - 1] = c;
                t.sort_by(|a, b| b.total_cmp(a));
            }
        }
        top.iter()
            .map(|t| {
                let got: Vec<f32> = t.iter().copied().filter(|v| v.is_finite()).collect();
                if got.is_empty() {
                    f32::NEG_INFINITY
                } else {
                    got.iter().sum::<f32>() / got.len() as f32
                }
            })
            .collect()
    }
}

/// Multinomial logistic regression on centred embeddings, class-balanced.
struct Head {
    mean: Vec<f32>,
    w: Vec<f32>,
    b: Vec<f32>,
    n: usize,
}

const HEAD_SCALE: f32 = 8.0;
const HEAD_EPOCHS: usize = 150;
const HEAD_RATE: f32 = 0.5;
const HEAD_L2: f32 = 1e-3;

impl Head {
    fn train(bank: &[(usize, Arc<[f32]>)], n: usize) -> Head {
        let d = bank.first().map_or(0, |(_, v)| v.len());
        let mut mean = vec![0f32; d];
        for (_, v) in bank {
            for (m, x) in mean.iter_mut().zip(v.iter()) {
                *m += x / bank.len() as f32;
            }
        }
        let xs: Vec<Vec<f32>> = bank
            .iter()
            .map(|(_, v)| {
                v.iter()
                    .zip(&mean)
                    .map(|(x, m)| (x - m) * HEAD_SCALE)
                    .collect()
            })
            .collect();
        let mut count = vec![0usize; n];
        for (l, _) in bank {
            count[*l] += 1;
        }
        let present = count.iter().filter(|&&c| c > 0).count().max(1) as f32;
        let weight: Vec<f32> = count
            .iter()
            .map(|&c| {
                if c == 0 {
                    0.0
                } else {
                    bank.len() as f32 / (present * c as f32)
                }
            })
            .collect();
        let mut w = vec![0f32; n * d];
        let mut b = vec![0f32; n];
        let mut p = vec![0f32; n];
        let total: f32 = bank.iter().map(|(l, _)| weight[*l]).sum::<f32>().max(1e-6);
        for _ in 0..HEAD_EPOCHS {
            let mut gw = vec![0f32; n * d];
            let mut gb = vec![0f32; n];
            for ((l, _), x) in bank.iter().zip(&xs) {
                logits(&w, &b, x, &mut p);
                softmax(&mut p);
                let s = weight[*l] / total;
                for (k, pk) in p.iter().enumerate() {
                    let g = (pk - if k == *l { 1.0 } else { 0.0 }) * s;
                    if g.abs() < 1e-7 {
                        continue;
                    }
                    gb[k] += g;
                    for (gw, xv) in gw[k * d..(k + 1) * d].iter_mut().zip(x) {
                        *gw += g * xv;
                    }
                }
            }
            for (wv, g) in w.iter_mut().zip(&gw) {
                *wv -= HEAD_RATE * (g + HEAD_L2 * *wv);
            }
            for (bv, g) in b.iter_mut().zip(&gb) {
                *bv -= HEAD_RATE * g;
            }
        }
        // Labels with no examples can never win.
        for (k, &c) in count.iter().enumerate() {
            if c == 0 {
                b[k] = -1e4;
            }
        }
        Head { mean, w, b, n }
    }

    /// The head's probability of every label for embedding `q`.
    fn probabilities(&self, q: &[f32]) -> Vec<f32> {
        let x: Vec<f32> = q
            .iter()
            .zip(&self.mean)
            .map(|(x, m)| (x - m) * HEAD_SCALE)
            .collect();
        let mut p = vec![0f32; self.n];
        logits(&self.w, &self.b, &x, &mut p);
        softmax(&mut p);
        p
    }
}

fn logits(w: &[f32], b: &[f32], x: &[f32], out: &mut [f32]) {
    let d = x.len();
    for (k, o) in out.iter_mut().enumerate() {
        *o = b[k]
            + w[k * d..(k + 1) * d]
                .iter()
                .zip(x)
                .map(|(a, b)| a * b)
                .sum::<f32>();
    }
}

fn softmax(p: &mut [f32]) {
    let m = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in p.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in p.iter_mut() {
        *v /= s;
    }
}
