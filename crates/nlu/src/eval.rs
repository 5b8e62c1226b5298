//! Accuracy, macro-F1, per-label precision/recall and the confusion matrix.
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct LabelStats {
    pub label: String,
    pub support: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub n: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    pub labels: Vec<LabelStats>,
    /// `confusion[i][j]`: examples of `labels[i]` predicted as `labels[j]`.
    pub confusion: Vec<Vec<usize>>,
}

/// Score `(gold, predicted)` pairs. Labels appear in first-seen order of gold
/// labels, then any predicted-only labels.
pub fn evaluate(pairs: &[(String, String)]) -> Report {
    let mut names: Vec<String> = Vec::new();
    let idx = |names: &mut Vec<String>, l: &str| -> usize {
        match names.iter().position(|n| n == l) {
            Some(i) => i,
            None => {
                names.push(l.to_string());
                names.len() - 1
            }
        }
    };
    for (g, _) in pairs {
        idx(&mut names, g);
    }
    for (_, p) in pairs {
        idx(&mut names, p);
    }
    let k = names.len();
    let mut m = vec![vec![0usize; k]; k];
    let mut correct = 0;
    for (g, p) in pairs {
        let gi = idx(&mut names, g);
        let pi = idx(&mut names, p);
        m[gi][pi] += 1;
        if gi == pi {
            correct += 1;
        }
    }
    let mut labels = Vec::with_capacity(k);
    let mut f1_sum = 0.0;
    let mut f1_n = 0;
    for i in 0..k {
        let tp = m[i][i] as f64;
        let support: usize = m[i].iter().sum();
        let predicted: usize = m.iter().map(|r| r[i]).sum();
        let precision = if predicted > 0 {
            tp / predicted as f64
        } else {
            0.0
        };
        let recall = if support > 0 {
            tp / support as f64
        } else {
            0.0
        };
        let f1 = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        if support > 0 {
            f1_sum += f1;
            f1_n += 1;
        }
        labels.push(LabelStats {
            label: names[i].clone(),
            support,
            precision,
            recall,
            f1,
        });
    }
    Report {
        n: pairs.len(),
        accuracy: if pairs.is_empty() {
            0.0
        } else {
            correct as f64 / pairs.len() as f64
        },
        macro_f1: if f1_n > 0 { f1_sum / f1_n as f64 } else { 0.0 },
        labels,
        confusion: m,
    }
}

impl Report {
    /// Human-readable table (Chinese first, English too).
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "样本 examples: {}", self.n);
        let _ = writeln!(s, "准确率 accuracy: {:.4}", self.accuracy);
        let _ = writeln!(s, "宏平均F1 macro-F1: {:.4}", self.macro_f1);
        let _ = writeln!(
            s,
            "\n{:<16} {:>7} {:>9} {:>9} {:>9}",
            "label", "support", "precision", "recall", "f1"
        );
        for l in &self.labels {
            let _ = writeln!(
                s,
                "{:<16} {:>7} {:>9.3} {:>9.3} {:>9.3}",
                l.label, l.support, l.precision, l.recall, l.f1
            );
        }
        let _ = writeln!(
            s,
            "\n混淆矩阵 confusion matrix (rows gold, columns predicted):"
        );
        let short: Vec<String> = self
            .labels
            .iter()
            .map(|l| l.label.chars().take(6).collect())
            .collect();
        let _ = write!(s, "{:<16}", "");
        for h in &short {
            let _ = write!(s, " {h:>6}");
        }
        s.push('\n');
        for (i, row) in self.confusion.iter().enumerate() {
            let _ = write!(s, "{:<16}", self.labels[i].label);
            for v in row {
                let _ = write!(s, " {v:>6}");
            }
            s.push('\n');
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_on_a_small_case() {
        let p = |g: &str, q: &str| (g.to_string(), q.to_string());
        let r = evaluate(&[p("a", "a"), p("a", "b"), p("b", "b"), p("b", "b")]);
        assert_eq!(r.accuracy, 0.75);
        assert_eq!(r.confusion, vec![vec![1, 1], vec![0, 2]]);
        assert!((r.labels[0].precision - 1.0).abs() < 1e-9);
        assert!((r.labels[1].precision - 2.0 / 3.0).abs() < 1e-9);
        assert!((r.macro_f1 - (2.0 / 3.0 + 0.8) / 2.0).abs() < 1e-9);
    }
}

/// A few-shot benchmark file: custom intents (script `intents:` format, ≤ 12
/// examples each) and held-out phrasings per intent.
#[derive(Debug, Clone)]
pub struct FewShotSet {
    pub intents: Vec<crate::CustomIntent>,
    /// `(intent, text)` held-out lines.
    pub heldout: Vec<(String, String)>,
}

/// Parse a few-shot file (`intents:` + `heldout: { intent: [lines] }`).
pub fn parse_fewshot(src: &str) -> Result<FewShotSet, crate::Error> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        heldout: std::collections::BTreeMap<String, Vec<String>>,
    }
    let intents = crate::parse_script_intents(src)?;
    let f: File = serde_norway::from_str(src).map_err(|e| crate::Error::Script(e.to_string()))?;
    let mut heldout = Vec::new();
    for (name, lines) in f.heldout {
        if !intents.iter().any(|i| i.name == name) {
            return Err(crate::Error::Script(format!(
                "heldout names `{name}`, which is not an intent of the file"
            )));
        }
        heldout.extend(lines.into_iter().map(|l| (name.clone(), l)));
    }
    Ok(FewShotSet { intents, heldout })
}

/// How a classifier did on a few-shot set.
#[derive(Debug, Clone, Serialize)]
pub struct FewShotReport {
    pub n: usize,
    /// Held-out lines classified as their custom intent.
    pub accuracy: f64,
    /// Held-out lines classified as a built-in intent (custom swallowed).
    pub swallowed_by_builtin: f64,
    /// Held-out lines classified as another custom intent.
    pub other_custom: f64,
    /// Held-out lines left `unknown`.
    pub unknown: f64,
    /// The lines it got wrong: (gold, predicted, text).
    pub errors: Vec<(String, String, String)>,
}

/// Score predictions `(gold, predicted, text)` of a few-shot set whose custom
/// intent names are `custom`.
pub fn fewshot_report(custom: &[String], preds: &[(String, String, String)]) -> FewShotReport {
    let n = preds.len().max(1) as f64;
    let mut ok = 0;
    let mut builtin = 0;
    let mut other = 0;
    let mut unknown = 0;
    let mut errors = Vec::new();
    for (g, p, t) in preds {
        if g == p {
            ok += 1;
            continue;
        }
        if p == "unknown" {
            unknown += 1;
        } else if custom.contains(p) {
            other += 1;
        } else {
            builtin += 1;
        }
        errors.push((g.clone(), p.clone(), t.clone()));
    }
    FewShotReport {
        n: preds.len(),
        accuracy: ok as f64 / n,
        swallowed_by_builtin: builtin as f64 / n,
        other_custom: other as f64 / n,
        unknown: unknown as f64 / n,
        errors,
    }
}

/// Train a script model (built-ins + the set's custom intents, as a script
/// load does) and score the held-out lines.
pub fn fewshot(set: &FewShotSet) -> Result<FewShotReport, crate::Error> {
    let nlu = crate::Nlu::with_custom(&set.intents)?;
    Ok(fewshot_with(&nlu, set))
}

/// Score the held-out lines of `set` with `nlu` (built for the set's intents,
/// e.g. with the sentence encoder attached).
pub fn fewshot_with(nlu: &crate::Nlu, set: &FewShotSet) -> FewShotReport {
    let names: Vec<String> = set.intents.iter().map(|i| i.name.clone()).collect();
    let preds: Vec<(String, String, String)> = set
        .heldout
        .iter()
        .map(|(g, t)| (g.clone(), nlu.intent(t).intent, t.clone()))
        .collect();
    fewshot_report(&names, &preds)
}
