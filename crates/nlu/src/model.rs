//! Multinomial logistic regression over hashed sparse binary features,
//! trained with AdaGrad in a deterministic order.
use std::collections::HashMap;

use crate::text;

/// Training hyper-parameters. The defaults were chosen on the built-in
/// training data (see `waihu bench nlu`) and are used for custom scripts too.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    pub epochs: usize,
    pub learning_rate: f32,
    pub l2: f32,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 30,
            learning_rate: 0.4,
            l2: 1e-5,
            seed: 0x5eed_cafe,
        }
    }
}

/// One training example: a label index, its feature hashes and a weight
/// (custom intents with few examples are up-weighted).
pub struct Example {
    pub label: usize,
    pub features: Vec<u64>,
    pub weight: f32,
}

#[derive(Debug, Clone)]
pub struct Model {
    labels: Vec<String>,
    vocab: HashMap<u64, u32>,
    /// `vocab.len() x labels.len()`, row-major by feature.
    weights: Vec<f32>,
    bias: Vec<f32>,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn softmax_in_place(z: &mut [f32]) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    if sum > 0.0 {
        for v in z.iter_mut() {
            *v /= sum;
        }
    }
}

impl Model {
    pub fn train(labels: Vec<String>, examples: &[Example], cfg: TrainConfig) -> Model {
        let k = labels.len();
        let mut vocab: HashMap<u64, u32> = HashMap::new();
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(examples.len());
        for ex in examples {
            let mut idx: Vec<u32> = Vec::with_capacity(ex.features.len());
            for f in &ex.features {
                let next = vocab.len() as u32;
                idx.push(*vocab.entry(*f).or_insert(next));
            }
            rows.push(idx);
        }
        let n = vocab.len();
        let mut w = vec![0f32; n * k];
        let mut g2 = vec![1e-6f32; n * k];
        let mut b = vec![0f32; k];
        let mut gb2 = vec![1e-6f32; k];
        let mut order: Vec<usize> = (0..examples.len()).collect();
        let mut rng = cfg.seed;
        let mut z = vec![0f32; k];
        for _ in 0..cfg.epochs {
            for i in (1..order.len()).rev() {
                let j = (splitmix(&mut rng) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            for &i in &order {
                let ex = &examples[i];
                let row = &rows[i];
                if row.is_empty() {
                    continue;
                }
                let x = 1.0 / (row.len() as f32).sqrt();
                z.copy_from_slice(&b);
                for &f in row {
                    let base = f as usize * k;
                    for (c, zc) in z.iter_mut().enumerate() {
                        *zc += w[base + c] * x;
                    }
                }
                softmax_in_place(&mut z);
                for c in 0..k {
                    let err = (z[c] - if c == ex.label { 1.0 } else { 0.0 }) * ex.weight;
                    // Classes the example no longer moves cost nothing (most of them after
                    // a few epochs); this makes training several times faster.
                    if err.abs() < 1e-4 {
                        continue;
                    }
                    gb2[c] += err * err;
                    b[c] -= cfg.learning_rate * err / gb2[c].sqrt();
                    for &f in row {
                        let p = f as usize * k + c;
                        let g = err * x + cfg.l2 * w[p];
                        g2[p] += g * g;
                        w[p] -= cfg.learning_rate * g / g2[p].sqrt();
                    }
                }
            }
        }
        Model {
            labels,
            vocab,
            weights: w,
            bias: b,
        }
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// Raw scores (logits) for an utterance's features.
    pub fn logits(&self, features: &[u64], out: &mut Vec<f32>) {
        out.clear();
        out.extend_from_slice(&self.bias);
        let k = self.labels.len();
        let known: Vec<usize> = features
            .iter()
            .filter_map(|f| self.vocab.get(f))
            .map(|&i| i as usize)
            .collect();
        // Scale by the count of all features, as in training, so unseen words dilute confidence.
        let x = if features.is_empty() {
            0.0
        } else {
            1.0 / (features.len() as f32).sqrt()
        };
        for i in known {
            let row = &self.weights[i * k..(i + 1) * k];
            for (o, w) in out.iter_mut().zip(row) {
                *o += w * x;
            }
        }
    }

    /// Class probabilities at `temperature`.
    pub fn probabilities(&self, features: &[u64], temperature: f32) -> Vec<f32> {
        let mut z = Vec::with_capacity(self.labels.len());
        self.logits(features, &mut z);
        let t = temperature.max(1e-3);
        for v in z.iter_mut() {
            *v /= t;
        }
        softmax_in_place(&mut z);
        z
    }
}

/// Parse `label<TAB>text` lines. Blank lines and `#` comments are skipped.
pub fn parse_tsv(data: &str) -> Result<Vec<(String, String)>, crate::Error> {
    let mut out = Vec::new();
    for (i, line) in data.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((label, text)) = line.split_once('\t') else {
            return Err(crate::Error::Tsv {
                line: i + 1,
                message: "expected label<TAB>text".into(),
            });
        };
        let label = label.trim();
        if label.is_empty() {
            return Err(crate::Error::Tsv {
                line: i + 1,
                message: "empty label".into(),
            });
        }
        out.push((label.to_string(), text.to_string()));
    }
    Ok(out)
}

/// Feature hashes of raw text (normalisation included).
pub fn featurize(raw: &str) -> Vec<u64> {
    text::features(&text::normalize(raw))
}
