//! Intent classification, entities, sentiment and acoustic emotion cues for
//! Chinese and English. Sans-IO: every function takes its input (text, `now`,
//! PCM samples) and returns a value; nothing here reads clocks, files or sockets.
//!
//! ```no_run
//! use waihu_nlu::Nlu;
//! let nlu = Nlu::builtin();
//! let now = chrono::Utc::now();
//! let r = nlu.classify("在开车 明天下午三点再打", now, chrono_tz::Asia::Shanghai);
//! assert_eq!(r.intent, "busy_callback");
//! ```
//!
//! The intent model is a multinomial logistic regression over jieba words,
//! word bigrams and Chinese character 1-3 grams, trained at load time from the
//! embedded data (`data/intents_*.tsv`) plus a script's own examples.
pub mod context;
pub mod emotion;
pub mod entities;
pub mod eval;
mod model;
pub mod numbers;
mod second;
pub mod sentiment;
pub mod structured;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use waihu_core::nlu::{NluContext, NluResult, QuestionKind, BUILTIN_INTENTS};

pub use chrono_tz::Tz;
pub use model::{parse_tsv, TrainConfig};
pub use second::{Method, CUSTOM_MARGIN, NEAREST_K, PROTOTYPES};
pub use text::normalize;
pub use waihu_encoder as encoder;

/// Built-in training data, `label<TAB>text`. The held-out files are never used for training.
pub const TRAIN_ZH: &str = include_str!("../data/intents_zh.tsv");
pub const TRAIN_EN: &str = include_str!("../data/intents_en.tsv");
pub const HELDOUT_ZH: &str = include_str!("../data/intents_zh.test.tsv");
pub const HELDOUT_EN: &str = include_str!("../data/intents_en.test.tsv");
/// Few-shot custom-intent benchmark sets (≤ 12 examples per intent, held-out phrasings).
pub const FEWSHOT_ZH: &str = include_str!("../data/fewshot.zh.yaml");
pub const FEWSHOT_EN: &str = include_str!("../data/fewshot.en.yaml");

/// Softmax temperature. Fitted by minimising the negative log-likelihood on the
/// held-out files (`waihu bench nlu` prints the current optimum); it rescales
/// confidence only and never changes which intent wins.
pub const TEMPERATURE: f32 = 0.75;
/// Below this calibrated confidence the answer is `unknown`.
pub const UNKNOWN_THRESHOLD: f32 = 0.3;
/// Prior weight of an intent the current state expects (`expect.intents`).
pub const EXPECTED_PRIOR: f32 = 3.0;
/// Prior weight of a script's own intent over the built-ins (the script's
/// author knows this call's vocabulary: "比网上贵" is price_concern here).
pub const CUSTOM_PRIOR: f32 = 2.0;
/// Prior weight of affirm/deny when the answer to a yes/no question reads as
/// a yes/no (the `yes_no` entity).
pub const YES_NO_PRIOR: f32 = 3.0;
/// Below this linear confidence a turn goes to the sentence encoder even in a
/// script without intents of its own (see `second.rs`; 0 turns it off).
pub const ENCODER_UNSURE: f32 = 0.0;
/// Intents no context may override: the callee's wish not to be called.
const PROTECTED: [&str; 1] = ["do_not_call"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("line {line}: {message}")]
    Tsv { line: usize, message: String },
    #[error("script intents: {0}")]
    Script(String),
    #[error("intent {intent:?}: invalid regex {regex:?}: {message}")]
    Regex {
        intent: String,
        regex: String,
        message: String,
    },
    #[error("unknown time zone {0:?} (expected an IANA name such as Asia/Shanghai)")]
    TimeZone(String),
    #[error("intent {intent:?}: {message}")]
    Intent { intent: String, message: String },
}

/// An IANA time zone name ("Asia/Shanghai", "America/New_York").
pub fn parse_tz(name: &str) -> Result<Tz, Error> {
    name.parse::<Tz>()
        .map_err(|_| Error::TimeZone(name.to_string()))
}

/// A script-defined intent: examples train the model; keywords and regexes
/// (matched on the normalised text) win outright.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomIntent {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub examples: Vec<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default, alias = "regex")]
    pub regexes: Vec<String>,
}

/// Read the `intents:` map of a script (YAML or JSON; other keys are ignored):
/// `intents: { name: { examples: [...], keywords: [...], regexes: [...] } }`.
pub fn parse_script_intents(src: &str) -> Result<Vec<CustomIntent>, Error> {
    #[derive(Deserialize)]
    struct Script {
        #[serde(default)]
        intents: BTreeMap<String, CustomIntent>,
    }
    let s: Script = serde_norway::from_str(src).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!("line {} column {}: ", l.line(), l.column()))
            .unwrap_or_default();
        Error::Script(format!("{at}{e}"))
    })?;
    Ok(s.intents
        .into_iter()
        .map(|(name, mut i)| {
            i.name = name;
            i
        })
        .collect())
}

enum Matcher {
    Keyword(String),
    Regex(regex::Regex),
}

struct Rule {
    intent: String,
    matcher: Matcher,
}

impl Rule {
    fn matches(&self, normalized: &str) -> bool {
        match &self.matcher {
            Matcher::Keyword(k) => contains_keyword(normalized, k),
            Matcher::Regex(r) => r.is_match(normalized),
        }
    }
}

/// A keyword without the degree words and particles at its ends, when that
/// shortens it ("便宜点" → "便宜"); `None` when nothing would change.
fn keyword_stem(k: &str) -> Option<String> {
    const ZH: [&str; 10] = ["一下", "太", "更", "了", "点", "吧", "啊", "呢", "很", "再"];
    const EN: [&str; 9] = ["too", "the", "a", "it", "its", "is", "very", "so", "that"];
    let mut t = k.to_string();
    if t.chars().any(text::is_cjk) {
        loop {
            let before = t.clone();
            for w in ZH {
                if let Some(r) = t.strip_prefix(w) {
                    t = r.to_string();
                }
                if let Some(r) = t.strip_suffix(w) {
                    t = r.to_string();
                }
            }
            if t == before {
                break;
            }
        }
    } else {
        let words: Vec<&str> = t.split_whitespace().collect();
        let a = words
            .iter()
            .position(|w| !EN.contains(w))
            .unwrap_or(words.len());
        let b = words
            .iter()
            .rposition(|w| !EN.contains(w))
            .map_or(a, |i| i + 1);
        t = words[a..b.max(a)].join(" ");
    }
    // A bare negation ("不要" from "不要了") says too little to lean on.
    let negation = ["不", "没", "别", "dont", "not ", "no "]
        .iter()
        .any(|n| t.starts_with(n));
    (!t.is_empty() && t != k && !negation).then_some(t)
}

/// Substring match; ASCII keywords must also sit on word boundaries ("no" is not in "know").
fn contains_keyword(text: &str, kw: &str) -> bool {
    if kw.is_empty() {
        return false;
    }
    let ascii_word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    for (i, _) in text.match_indices(kw) {
        let before = text[..i].chars().next_back();
        let after = text[i + kw.len()..].chars().next();
        let first = kw.chars().next();
        let last = kw.chars().next_back();
        let bad_before = ascii_word(first) && ascii_word(before);
        let bad_after = ascii_word(last) && ascii_word(after);
        if !bad_before && !bad_after {
            return true;
        }
    }
    false
}

/// The winning intent of one utterance.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentScore {
    pub intent: String,
    /// Calibrated probability of `intent` (for a thresholded `unknown`: 1 - the best probability).
    pub confidence: f32,
    /// True when a keyword or regex rule decided.
    pub by_rule: bool,
}

struct Inner {
    model: model::Model,
    temperature: f32,
    threshold: f32,
    rules: Vec<Rule>,
    /// The script's own examples `(label, text)`, for the encoder stage.
    custom_examples: Vec<(usize, String)>,
    second: Option<Arc<second::Second>>,
}

/// An intent classifier plus entity and sentiment extraction. Cheap to clone.
#[derive(Clone)]
pub struct Nlu {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Nlu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nlu")
            .field("labels", &self.inner.model.labels())
            .field("rules", &self.inner.rules.len())
            .finish()
    }
}

/// The embedded built-in training examples (both languages).
pub fn builtin_training_data() -> Vec<(String, String)> {
    let mut v = parse_tsv(TRAIN_ZH).unwrap_or_default();
    v.extend(parse_tsv(TRAIN_EN).unwrap_or_default());
    v
}

/// A script example plus the disfluent forms ASR will deliver ("嗯 那个 …啊",
/// "uh so …"), so a handful of clean examples still match noisy speech the
/// way the built-in data (which has such noise) does.
fn augment(example: &str) -> Vec<String> {
    let e = example.trim();
    if e.is_empty() {
        return Vec::new();
    }
    if e.chars().any(text::is_cjk) {
        vec![
            e.to_string(),
            format!("嗯 {e}"),
            format!("那个 {e}啊"),
            format!("就是{e}呢"),
        ]
    } else {
        vec![
            e.to_string(),
            format!("uh {e}"),
            format!("so {e} okay"),
            format!("um well {e}"),
        ]
    }
}

/// Features of the built-in examples, computed once per process: a script's
/// model then only segments its own examples.
fn builtin_features() -> &'static [(String, Vec<u64>)] {
    static FEATURES: OnceLock<Vec<(String, Vec<u64>)>> = OnceLock::new();
    FEATURES.get_or_init(|| {
        builtin_training_data()
            .into_iter()
            .map(|(l, t)| {
                let f = model::featurize(&t);
                (l, f)
            })
            .collect()
    })
}

/// The built-in lines in the encoder's bank: [`PROTOTYPES`] per built-in
/// intent and language, spread evenly over the training file.
pub fn prototypes() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for src in [TRAIN_ZH, TRAIN_EN] {
        let rows = parse_tsv(src).unwrap_or_default();
        let mut by_label: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (l, t) in &rows {
            by_label.entry(l.as_str()).or_default().push(t.as_str());
        }
        for (l, ts) in by_label {
            let step = (ts.len() as f32 / PROTOTYPES as f32).max(1.0);
            for k in 0..PROTOTYPES.min(ts.len()) {
                out.push((l.to_string(), ts[(k as f32 * step) as usize].to_string()));
            }
        }
    }
    out
}

/// The embedded held-out examples (both languages), never used for training.
pub fn builtin_heldout_data() -> Vec<(String, String)> {
    let mut v = parse_tsv(HELDOUT_ZH).unwrap_or_default();
    v.extend(parse_tsv(HELDOUT_EN).unwrap_or_default());
    v
}

impl Nlu {
    /// The built-in model, trained once per process on first use and shared.
    pub fn builtin() -> Nlu {
        static BUILTIN: OnceLock<Nlu> = OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                Nlu::build(builtin_features(), &[], TrainConfig::default())
                    .expect("built-in data is valid")
            })
            .clone()
    }

    /// The built-in intents plus a script's own. A custom intent with a built-in
    /// name adds examples (and rules) to it.
    pub fn with_custom(custom: &[CustomIntent]) -> Result<Nlu, Error> {
        Nlu::build(builtin_features(), custom, TrainConfig::default())
    }

    /// Train on `label, text` pairs plus custom intents.
    pub fn train(
        data: &[(String, String)],
        custom: &[CustomIntent],
        cfg: TrainConfig,
    ) -> Result<Nlu, Error> {
        let featurized: Vec<(String, Vec<u64>)> = data
            .iter()
            .map(|(l, t)| (l.clone(), model::featurize(t)))
            .collect();
        Nlu::build(&featurized, custom, cfg)
    }

    fn build(
        data: &[(String, Vec<u64>)],
        custom: &[CustomIntent],
        cfg: TrainConfig,
    ) -> Result<Nlu, Error> {
        let mut labels: Vec<String> = BUILTIN_INTENTS.iter().map(|s| s.to_string()).collect();
        let mut index: HashMap<String, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), i))
            .collect();
        let mut label_of = |l: &str, labels: &mut Vec<String>| -> usize {
            if let Some(&i) = index.get(l) {
                return i;
            }
            labels.push(l.to_string());
            index.insert(l.to_string(), labels.len() - 1);
            labels.len() - 1
        };
        let mut examples = Vec::with_capacity(data.len());
        for (l, f) in data {
            let label = label_of(l, &mut labels);
            examples.push(model::Example {
                label,
                features: f.clone(),
                weight: 1.0,
            });
        }
        let mean_per_label = (data.len() as f32 / BUILTIN_INTENTS.len() as f32).max(1.0);
        let mut rules = Vec::new();
        let mut custom_examples = Vec::new();
        for ci in custom {
            let name = ci.name.trim();
            if name.is_empty() {
                return Err(Error::Intent {
                    intent: ci.name.clone(),
                    message: "empty intent name".into(),
                });
            }
            if ci.examples.is_empty() && ci.keywords.is_empty() && ci.regexes.is_empty() {
                return Err(Error::Intent {
                    intent: name.into(),
                    message: "needs examples, keywords or regexes".into(),
                });
            }
            let label = label_of(name, &mut labels);
            custom_examples.extend(
                ci.examples
                    .iter()
                    .map(|e| e.trim())
                    .filter(|e| !e.is_empty())
                    .map(|e| (label, e.to_string())),
            );
            // A handful of script examples must weigh about as much as a built-in label's data.
            let weight = (mean_per_label / ci.examples.len().max(1) as f32).clamp(1.0, 20.0);
            for e in &ci.examples {
                for v in augment(e) {
                    examples.push(model::Example {
                        label,
                        features: model::featurize(&v),
                        weight,
                    });
                }
            }
            for k in &ci.keywords {
                let k = normalize(k);
                if !k.is_empty() {
                    rules.push(Rule {
                        intent: name.into(),
                        matcher: Matcher::Keyword(k),
                    });
                }
            }
            for r in &ci.regexes {
                let re = regex::Regex::new(r).map_err(|e| Error::Regex {
                    intent: name.into(),
                    regex: r.clone(),
                    message: e.to_string(),
                })?;
                rules.push(Rule {
                    intent: name.into(),
                    matcher: Matcher::Regex(re),
                });
            }
        }
        let model = model::Model::train(labels, &examples, cfg);
        Ok(Nlu {
            inner: Arc::new(Inner {
                model,
                temperature: TEMPERATURE,
                threshold: UNKNOWN_THRESHOLD,
                rules,
                custom_examples,
                second: None,
            }),
        })
    }

    /// A copy with a different softmax temperature and `unknown` threshold.
    pub fn with_calibration(&self, temperature: f32, threshold: f32) -> Nlu {
        let inner = &self.inner;
        Nlu {
            inner: Arc::new(Inner {
                model: inner.model.clone(),
                temperature,
                threshold,
                rules: inner
                    .rules
                    .iter()
                    .map(|r| Rule {
                        intent: r.intent.clone(),
                        matcher: match &r.matcher {
                            Matcher::Keyword(k) => Matcher::Keyword(k.clone()),
                            Matcher::Regex(re) => Matcher::Regex(re.clone()),
                        },
                    })
                    .collect(),
                custom_examples: inner.custom_examples.clone(),
                second: inner.second.clone(),
            }),
        }
    }

    /// A copy that consults the sentence encoder (second stage; the softmax
    /// head, which `waihu bench nlu` measured ahead of nearest examples): the script's
    /// examples and the built-in prototypes are embedded now (once per text
    /// per process; the prototypes are also cached on disk).
    pub fn with_encoder(&self, enc: Arc<encoder::Encoder>) -> Nlu {
        self.with_encoder_as(enc, Method::Head, ENCODER_UNSURE)
    }

    /// [`Nlu::with_encoder`] with the decision method and the linear
    /// confidence below which built-in-only turns also go to the encoder.
    pub fn with_encoder_as(&self, enc: Arc<encoder::Encoder>, method: Method, unsure: f32) -> Nlu {
        let labels = self.inner.model.labels();
        let index: HashMap<&str, usize> = labels
            .iter()
            .enumerate()
            .map(|(i, l)| (l.as_str(), i))
            .collect();
        let mut bank: Vec<(usize, String)> = prototypes()
            .into_iter()
            .filter_map(|(l, t)| index.get(l.as_str()).map(|&i| (i, t)))
            .collect();
        bank.extend(self.inner.custom_examples.iter().cloned());
        let second = second::Second::new(enc, method, unsure, &bank, labels.len());
        let inner = &self.inner;
        let mut copy = self.with_calibration(inner.temperature, inner.threshold);
        if let Some(i) = Arc::get_mut(&mut copy.inner) {
            i.second = Some(Arc::new(second));
        }
        copy
    }

    /// The encoder's nearest-example score of every label for `text`
    /// (`None` without the encoder), best first.
    pub fn encoder_scores(&self, text: &str) -> Option<Vec<(String, f32)>> {
        let s = self.inner.second.as_ref()?;
        let q = s.enc.embed(text, encoder::Kind::Query);
        let mut v: Vec<(String, f32)> = self
            .inner
            .model
            .labels()
            .iter()
            .cloned()
            .zip(s.scores(&q))
            .filter(|(_, x)| x.is_finite())
            .collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        Some(v)
    }

    /// Whether the sentence encoder is consulted.
    pub fn has_encoder(&self) -> bool {
        self.inner.second.is_some()
    }

    /// The encoder's say on a turn the linear model scored `(best, conf)`:
    /// `Some` when it decides — a custom intent of the script it picks wins
    /// over the built-ins; below the `unsure` confidence its pick stands.
    /// `prior` is the context's weight per label (see [`Nlu::intent_in`]).
    fn second_opinion(
        &self,
        text: &str,
        best: usize,
        conf: f32,
        prior: Option<&[f32]>,
    ) -> Option<IntentScore> {
        let s = self.inner.second.as_ref()?;
        let labels = self.inner.model.labels();
        let has_custom = labels.len() > BUILTIN_INTENTS.len();
        let unsure = conf < s.unsure;
        if !has_custom && !unsure {
            return None;
        }
        if PROTECTED.contains(&labels[best].as_str()) && conf >= self.inner.threshold {
            return None;
        }
        // A fragment ("Sorry.", "嗯", "喂") carries too little meaning for a
        // sentence embedding: in the English demo the encoder read a lone
        // "Sorry." as cancel_order (0.32) where the linear model said repeat
        // (0.99). A sure linear reading of a fragment stands.
        if conf >= self.inner.threshold && is_fragment(text) {
            return None;
        }
        let q = s.enc.embed(text, encoder::Kind::Query);
        let custom: Vec<bool> = labels
            .iter()
            .map(|l| !BUILTIN_INTENTS.contains(&l.as_str()))
            .collect();
        let v = s.decide(&q, &custom, prior)?;
        let custom = !BUILTIN_INTENTS.contains(&labels[v.label].as_str());
        (custom || unsure).then(|| IntentScore {
            intent: labels[v.label].clone(),
            confidence: v.confidence,
            by_rule: false,
        })
    }

    pub fn labels(&self) -> &[String] {
        self.inner.model.labels()
    }

    /// Calibrated probabilities over [`Nlu::labels`] (rules and threshold not applied).
    pub fn probabilities(&self, text: &str) -> Vec<f32> {
        self.inner
            .model
            .probabilities(&model::featurize(text), self.inner.temperature)
    }

    /// What every intent decision starts with: a matching keyword/regex rule
    /// decides (`Err`), an utterance without features is `unknown` (`Err`);
    /// otherwise the features for the model (`Ok`).
    fn rule_or_features(&self, norm: &str) -> Result<Vec<u64>, IntentScore> {
        if let Some(r) = self.inner.rules.iter().find(|r| r.matches(norm)) {
            return Err(IntentScore {
                intent: r.intent.clone(),
                confidence: 1.0,
                by_rule: true,
            });
        }
        let feats = text::features(norm);
        if feats.is_empty() {
            return Err(IntentScore {
                intent: "unknown".into(),
                confidence: 1.0,
                by_rule: false,
            });
        }
        Ok(feats)
    }

    /// The intent of one utterance: a matching rule wins; otherwise the model's
    /// best label, or `unknown` when its confidence is below the threshold.
    pub fn intent(&self, text: &str) -> IntentScore {
        let norm = normalize(text);
        let feats = match self.rule_or_features(&norm) {
            Ok(feats) => feats,
            Err(decided) => return decided,
        };
        let p = self
            .inner
            .model
            .probabilities(&feats, self.inner.temperature);
        let (best, conf) = argmax(&p);
        if let Some(decided) = self.second_opinion(text, best, conf, None) {
            return decided;
        }
        let label = &self.inner.model.labels()[best];
        if conf < self.inner.threshold {
            return IntentScore {
                intent: "unknown".into(),
                confidence: 1.0 - conf,
                by_rule: false,
            };
        }
        IntentScore {
            intent: label.clone(),
            confidence: conf,
            by_rule: false,
        }
    }

    /// Intent, entities and sentiment of one utterance. `now` and `tz` anchor
    /// relative times ("明天下午三点") in the callee's time zone.
    pub fn classify(&self, text: &str, now: DateTime<Utc>, tz: Tz) -> NluResult {
        self.classify_in(text, now, tz, &NluContext::default())
    }

    /// [`Nlu::classify`] for an utterance heard in `cx`, the state of the
    /// conversation: after a yes/no question a back-channel ("嗯", "mm-hm") or
    /// an echo of the question ("有的，有人") is affirm (or deny); the state's
    /// expected intents, the script's own intents and the yes/no reading are
    /// priors on the model's probabilities. Keyword and regex rules still win
    /// first, and `do_not_call` is never overridden. An empty context gives
    /// exactly [`Nlu::classify`].
    pub fn classify_in(
        &self,
        text: &str,
        now: DateTime<Utc>,
        tz: Tz,
        cx: &NluContext,
    ) -> NluResult {
        let entities = entities::extract(text, now, tz);
        let intent = self.intent_in(text, cx, &entities);
        NluResult {
            text: text.to_string(),
            intent: intent.intent,
            confidence: intent.confidence,
            entities,
            sentiment: sentiment::analyze(text),
        }
    }

    /// The intent of one utterance heard in `cx` (see [`Nlu::classify_in`]).
    pub fn intent_in(
        &self,
        text: &str,
        cx: &NluContext,
        entities: &[waihu_core::Entity],
    ) -> IntentScore {
        if *cx == NluContext::default() {
            return self.intent(text);
        }
        let norm = normalize(text);
        let feats = match self.rule_or_features(&norm) {
            Ok(feats) => feats,
            Err(decided) => return decided,
        };
        let labels = self.inner.model.labels();
        let mut p = self
            .inner
            .model
            .probabilities(&feats, self.inner.temperature);
        let best = argmax;
        let (b, conf) = best(&p);
        if PROTECTED.contains(&labels[b].as_str()) && conf >= self.inner.threshold {
            return IntentScore {
                intent: labels[b].clone(),
                confidence: conf,
                by_rule: false,
            };
        }
        let yes_no_question = cx.question == Some(QuestionKind::YesNo);
        if yes_no_question {
            let answer = if context::backchannel(&norm) {
                Some(true)
            } else {
                context::echo(&norm, &cx.prompt)
            };
            // "现在不方便，明天下午三点再打给我": the no echoes the question, but
            // the rest asks for a callback. A sure reading of an intent the state
            // expects, other than yes/no, says more than the echo: it stands.
            let said_more = answer == Some(false)
                && conf >= self.inner.threshold
                && !matches!(labels[b].as_str(), "affirm" | "deny")
                && cx.intents.iter().any(|i| *i == labels[b]);
            if let Some(yes) = answer.filter(|_| !said_more) {
                return IntentScore {
                    intent: if yes { "affirm" } else { "deny" }.into(),
                    confidence: 0.9,
                    by_rule: true,
                };
            }
        }
        let yes_no = entities
            .iter()
            .find(|e| e.kind == "yes_no")
            .and_then(|e| e.value.as_bool());
        let has_custom = labels.len() > BUILTIN_INTENTS.len();
        // A script intent whose keyword stem is in the words ("贵" of "太贵")
        // wins over the built-ins: the script's author named this call's
        // vocabulary ("你们比网上卖得贵" is price_concern, not complaint).
        let mut stem_hits = labels.iter().filter(|l| {
            !BUILTIN_INTENTS.contains(&l.as_str())
                && self.inner.rules.iter().any(|r| {
                    r.intent == **l
                        && matches!(&r.matcher, Matcher::Keyword(k)
                            if keyword_stem(k).is_some_and(|st| contains_keyword(&norm, &st)))
                })
        });
        if let (Some(l), None) = (stem_hits.next(), stem_hits.next()) {
            return IntentScore {
                intent: l.clone(),
                confidence: 0.8,
                by_rule: true,
            };
        }
        let mut prior = vec![1f32; labels.len()];
        for (i, l) in labels.iter().enumerate() {
            let mut w = 1.0;
            if cx.intents.iter().any(|x| x == l) {
                w *= EXPECTED_PRIOR;
            }
            if has_custom && !BUILTIN_INTENTS.contains(&l.as_str()) {
                w *= CUSTOM_PRIOR;
            }
            if yes_no_question {
                match (yes_no, l.as_str()) {
                    (Some(true), "affirm") | (Some(false), "deny") => w *= YES_NO_PRIOR,
                    _ => {}
                }
            }
            p[i] *= w;
            prior[i] = w;
        }
        let sum: f32 = p.iter().sum();
        if sum > 0.0 {
            p.iter_mut().for_each(|v| *v /= sum);
        }
        let (b, conf) = best(&p);
        if let Some(decided) = self.second_opinion(text, b, conf, Some(&prior)) {
            return decided;
        }
        if conf < self.inner.threshold {
            return IntentScore {
                intent: "unknown".into(),
                confidence: 1.0 - conf,
                by_rule: false,
            };
        }
        IntentScore {
            intent: labels[b].clone(),
            confidence: conf,
            by_rule: false,
        }
    }
}

/// One word, or at most two Chinese characters: too short to embed.
fn is_fragment(text: &str) -> bool {
    let han = text
        .chars()
        .filter(|c| ('\u{4e00}'..='\u{9fff}').contains(c))
        .count();
    let words = text
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphanumeric() || c == '\''))
        .count();
    han + words <= 1 || (words == 0 && han <= 2)
}

/// The index and value of the largest probability (the first on ties).
fn argmax(p: &[f32]) -> (usize, f32) {
    p.iter()
        .enumerate()
        .fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a })
}

#[cfg(test)]
mod fragment_tests {
    use super::is_fragment;

    #[test]
    fn fragments_are_one_word_or_two_characters() {
        for t in ["Sorry.", "yes", "嗯", "好的", "喂？", "", "OK!", "don't"] {
            assert!(is_fragment(t), "{t}");
        }
        for t in ["Sorry, wrong number.", "不好意思", "cancel it", "打错了"] {
            assert!(!is_fragment(t), "{t}");
        }
    }
}
