//! Knowledge-base answer evaluation: a document, questions with the facts a
//! correct answer contains (none = not answerable from the document), and
//! the figures `waihu bench llm` prints. Runs through [`crate::answer`].

use serde::Serialize;

use crate::guard::{numbers, Lang};
use crate::{answer, split_document, Client, Knowledge};

/// One question of a set: the text and the expected facts (lower-case; any
/// of them in the answer makes it correct; empty = must be refused).
#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub expect: Vec<String>,
}

/// Reads `question<TAB>fact|fact` lines (`#` comments).
pub fn parse_questions(tsv: &str) -> Vec<Question> {
    tsv.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (q, e) = l.split_once('\t').unwrap_or((l, ""));
            Question {
                text: q.trim().to_string(),
                expect: e
                    .split('|')
                    .map(|x| x.trim().to_lowercase())
                    .filter(|x| !x.is_empty())
                    .collect(),
            }
        })
        .collect()
}

/// A subset of `limit` questions (0 = all): half answerable (from the
/// start of the set), half not, so a short run still measures both.
pub fn subset(questions: &[Question], limit: usize) -> Vec<Question> {
    if limit == 0 || limit >= questions.len() {
        return questions.to_vec();
    }
    let answerable = questions.iter().filter(|q| !q.expect.is_empty());
    let unanswerable = questions.iter().filter(|q| q.expect.is_empty());
    let mut pick: Vec<Question> = answerable.take(limit - limit / 2).cloned().collect();
    pick.extend(unanswerable.take(limit / 2).cloned());
    pick
}

#[derive(Debug, Default, Serialize)]
pub struct LangFigures {
    pub lang: String,
    pub questions: usize,
    pub answerable: usize,
    /// Answerable questions whose spoken answer contains an expected fact.
    pub correct: usize,
    pub correct_share: f64,
    /// Questions answered with the fallback line.
    pub refused: usize,
    pub refused_share: f64,
    /// Unanswerable questions correctly refused.
    pub refused_unanswerable: usize,
    pub unanswerable: usize,
    /// Spoken answers with a number not in the passages used (must be 0).
    pub unsupported_spoken: usize,
    pub unsupported_share: f64,
    /// Baseline: raw model outputs (no guard) with such a number.
    pub unsupported_raw: usize,
    pub model_calls: usize,
    pub first_sentence_p50_ms: f64,
    pub first_sentence_p95_ms: f64,
    pub tokens_per_s: f64,
    /// Why answers fell back, by kind.
    pub fallback_reasons: std::collections::BTreeMap<String, usize>,
}

pub fn pct(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Numbers of `text` not among the numbers (or digit substrings) of `facts`.
pub fn unsupported(text: &str, facts: &str) -> bool {
    let known = numbers(facts);
    numbers(text)
        .iter()
        .any(|n| !known.contains(n) && !facts.contains(n.as_str()))
}

/// Runs every question of one language; `progress` is called after each.
pub async fn run_set(
    client: &Client,
    lang: Lang,
    doc: &str,
    questions: &[Question],
    mut progress: impl FnMut(usize, &Question, &crate::Answer),
) -> LangFigures {
    let kb = Knowledge::new(lang, split_document(doc, 300));
    let mut f = LangFigures {
        lang: lang.as_str().into(),
        questions: questions.len(),
        ..LangFigures::default()
    };
    let (mut firsts, mut tokens, mut decode_s) = (Vec::new(), 0usize, 0f64);
    for (i, q) in questions.iter().enumerate() {
        let ans = answer(client, &kb, &q.text, [], |_| {}).await;
        let used: String = ans
            .passages
            .iter()
            .map(|&p| kb.passages[p].full())
            .collect::<Vec<_>>()
            .join("\n");
        let spoken = ans.spoken.join("");
        if !q.expect.is_empty() {
            f.answerable += 1;
            let low = spoken.to_lowercase();
            if !spoken.is_empty() && q.expect.iter().any(|e| low.contains(e.as_str())) {
                f.correct += 1;
            }
        } else {
            f.unanswerable += 1;
            if ans.fallback.is_some() {
                f.refused_unanswerable += 1;
            }
        }
        if let Some(r) = &ans.fallback {
            f.refused += 1;
            let kind = serde_json::to_value(r)
                .ok()
                .and_then(|v| v["kind"].as_str().map(str::to_string))
                .unwrap_or_default();
            *f.fallback_reasons.entry(kind).or_default() += 1;
        }
        if !spoken.is_empty() && unsupported(&spoken, &used) {
            f.unsupported_spoken += 1;
        }
        if let Some(c) = &ans.completion {
            f.model_calls += 1;
            if unsupported(&c.text, &used) {
                f.unsupported_raw += 1;
            }
            if let Some(ft) = c.first_token_ms {
                if c.chunks > 1 && !c.stopped {
                    tokens += c.chunks - 1;
                    decode_s += (c.total_ms - ft) / 1e3;
                }
            }
        }
        if let Some(ms) = ans.first_sentence_ms {
            firsts.push(ms);
        }
        progress(i, q, &ans);
    }
    f.correct_share = f.correct as f64 / f.answerable.max(1) as f64;
    f.refused_share = f.refused as f64 / f.questions.max(1) as f64;
    f.unsupported_share = f.unsupported_spoken as f64 / (f.questions - f.refused).max(1) as f64;
    f.first_sentence_p50_ms = pct(firsts.clone(), 0.5);
    f.first_sentence_p95_ms = pct(firsts, 0.95);
    f.tokens_per_s = tokens as f64 / decode_s.max(1e-9);
    f
}
