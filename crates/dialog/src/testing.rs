//! Scripted conversations with expected paths and outcomes (`waihu script
//! test FILE CASES`). A case file is YAML:
//!
//! ```yaml
//! customer: { name: 张先生, order.amount: 299 }   # shared by all cases
//! cases:
//!   - name: 顺利确认
//!     turns:
//!       - intent: affirm
//!       - { intent: busy_callback, entities: [{ kind: time, value: "2026-11-26T10:00:00+08:00" }] }
//!       - dtmf: "1"
//!       - no_input: true
//!       - { intent: deny, emotion: angry }
//!     expect:
//!       path: [opening, verify_address, offer, confirm_done]
//!       outcome: confirmed
//!       level: A
//!       actions: [sms]
//! ```
//!
//! Turns name the intent directly, so cases test the script, not the NLU. A
//! turn with only `text` needs a classifier (the CLI passes the real NLU).
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use waihu_core::{Emotion, EmotionLabel, Entity, NluContext, NluResult, Sentiment, SentimentLabel};

use crate::interp::{Input, Interpreter, Output};
use crate::model::Level;
use crate::program::{parse_yaml, Diagnostic, LoadError, Program};
use crate::yaml::{Pos, Seg};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    #[serde(default)]
    pub customer: BTreeMap<String, serde_json::Value>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default)]
    pub customer: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub turns: Vec<Turn>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Turn {
    #[serde(default)]
    pub intent: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub confidence: Option<f32>,
    #[serde(default)]
    pub entities: Vec<EntitySpec>,
    #[serde(default)]
    pub emotion: Option<String>,
    #[serde(default)]
    pub dtmf: Option<String>,
    #[serde(default)]
    pub no_input: bool,
    #[serde(default)]
    pub hangup: bool,
    /// Speak over the prompt instead of waiting for it to finish.
    #[serde(default)]
    pub barge_in: bool,
    /// The runtime's voiceprint check, done on this turn's audio: set before
    /// the turn is heard, as live calls do.
    #[serde(default)]
    pub voice: Option<VoiceSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoiceSpec {
    /// `match`, `no_match` or `not_enrolled`.
    pub verdict: String,
    #[serde(default)]
    pub score: f32,
    /// The watchlist label of a flagged voice.
    #[serde(default)]
    pub alert: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    pub kind: String,
    pub value: serde_json::Value,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// Exact sequence of states entered.
    #[serde(default)]
    pub path: Option<Vec<String>>,
    /// States that must appear in the path (in this order, gaps allowed).
    #[serde(default)]
    pub visits: Option<Vec<String>>,
    #[serde(default)]
    pub outcome: Option<String>,
    #[serde(default)]
    pub level: Option<Level>,
    /// Action kinds that must have been emitted (`sms`, `transfer`, `add_dnc`, `callback`, ...).
    #[serde(default)]
    pub actions: Vec<String>,
    /// Action kinds that must not have been emitted.
    #[serde(default)]
    pub no_actions: Vec<String>,
    /// Text fragments some prompt must contain.
    #[serde(default)]
    pub said: Vec<String>,
    /// Text fragments no prompt may contain (what must not be disclosed).
    #[serde(default)]
    pub not_said: Vec<String>,
    /// Styles some prompt must have used.
    #[serde(default)]
    pub styles: Vec<String>,
    /// Final variable values.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
}

/// One bot turn as printed by `script chat --json` and kept in results.
#[derive(Debug, Clone, Serialize)]
pub struct BotTurn {
    pub state: String,
    pub outputs: Vec<Output>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    pub failures: Vec<String>,
    pub path: Vec<String>,
    pub outcome: Option<String>,
    pub level: Option<Level>,
    pub transcript: Vec<BotTurn>,
}

/// A classifier for text-only turns: the words and what the current state
/// expects of them ([`Interpreter::nlu_context`]).
pub type Classify<'a> = &'a dyn Fn(&str, &NluContext) -> NluResult;

pub fn load_cases(path: &Path) -> Result<CaseFile, LoadError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        diagnostics: vec![Diagnostic {
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: e.to_string(),
        }],
    })?;
    load_cases_str(&src, &file)
}

pub fn load_cases_str(src: &str, file: &str) -> Result<CaseFile, LoadError> {
    let (mut cases, root): (CaseFile, _) = parse_yaml(src, file)?;
    // Keep numbers as written (`3260.50`), as a CSV import would.
    for (k, v) in cases.customer.iter_mut() {
        if let Some(t) = root.written(&[Seg::key("customer"), Seg::key(k.as_str())], v) {
            *v = serde_json::Value::String(t);
        }
    }
    for (ci, case) in cases.cases.iter_mut().enumerate() {
        let base = [Seg::key("cases"), Seg::Index(ci), Seg::key("customer")];
        for (k, v) in case.customer.iter_mut() {
            let mut p = base.to_vec();
            p.push(Seg::key(k.as_str()));
            if let Some(t) = root.written(&p, v) {
                *v = serde_json::Value::String(t);
            }
        }
    }
    let mut diagnostics = Vec::new();
    for (ci, case) in cases.cases.iter().enumerate() {
        for (ti, t) in case.turns.iter().enumerate() {
            let kinds = usize::from(t.intent.is_some() || t.text.is_some())
                + usize::from(t.dtmf.is_some())
                + usize::from(t.no_input)
                + usize::from(t.hangup);
            if kinds != 1 {
                let segs = [
                    Seg::key("cases"),
                    Seg::Index(ci),
                    Seg::key("turns"),
                    Seg::Index(ti),
                ];
                diagnostics.push(Diagnostic {
                    pos: root.locate(&segs),
                    path: crate::yaml::path_string(&segs),
                    message: "每轮只能是 intent/text、dtmf、no_input、hangup 之一 / a turn is exactly one of: intent/text, dtmf, no_input, hangup".into(),
                });
            }
        }
    }
    if diagnostics.is_empty() {
        Ok(cases)
    } else {
        Err(LoadError {
            file: file.to_string(),
            diagnostics,
        })
    }
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

/// The clock of simulated calls: fixed, advanced a few seconds per step.
pub fn sim_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0)
        .single()
        .unwrap_or_default()
}

pub fn emotion_of(name: &str) -> Option<Emotion> {
    let label = match name {
        "angry" => EmotionLabel::Angry,
        "anxious" => EmotionLabel::Anxious,
        "calm" => EmotionLabel::Calm,
        "happy" => EmotionLabel::Happy,
        _ => return None,
    };
    Some(Emotion {
        label,
        confidence: 0.9,
    })
}

/// Build the NLU result of a scripted turn heard in `context`.
pub fn nlu_of(
    t: &Turn,
    context: &NluContext,
    classify: Option<Classify<'_>>,
) -> Result<NluResult, String> {
    let mut nlu = match (&t.intent, &t.text, classify) {
        (Some(intent), text, _) => NluResult {
            text: text.clone().unwrap_or_default(),
            intent: intent.clone(),
            confidence: t.confidence.unwrap_or(0.95),
            entities: Vec::new(),
            sentiment: Sentiment {
                label: SentimentLabel::Neutral,
                score: 0.0,
                angry: false,
            },
        },
        (None, Some(text), Some(c)) => c(text, context),
        (None, Some(_), None) => return Err("a text-only turn needs an NLU; give `intent`".into()),
        (None, None, _) => return Err("not a speech turn".into()),
    };
    for e in &t.entities {
        nlu.entities.push(Entity {
            kind: e.kind.clone(),
            value: e.value.clone(),
            text: e.text.clone().unwrap_or_default(),
            parts: Default::default(),
        });
    }
    if t.emotion.as_deref() == Some("angry") {
        nlu.sentiment = Sentiment {
            label: SentimentLabel::Negative,
            score: -0.8,
            angry: true,
        };
    }
    Ok(nlu)
}

fn action_kind(o: &Output) -> Option<String> {
    match o {
        Output::Action { action } => serde_json::to_value(action)
            .ok()
            .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from)),
        _ => None,
    }
}

/// Run one case against a program.
pub fn run_case(
    prog: &Arc<Program>,
    defaults: &BTreeMap<String, serde_json::Value>,
    case: &Case,
    classify: Option<Classify<'_>>,
) -> CaseResult {
    let mut customer: BTreeMap<String, String> = defaults
        .iter()
        .map(|(k, v)| (k.clone(), scalar(v)))
        .collect();
    customer.extend(case.customer.iter().map(|(k, v)| (k.clone(), scalar(v))));
    let mut result = CaseResult {
        name: case.name.clone(),
        passed: false,
        failures: Vec::new(),
        path: Vec::new(),
        outcome: None,
        level: None,
        transcript: Vec::new(),
    };
    let mut call = match Interpreter::new(prog.clone(), &customer, case.seed) {
        Ok(c) => c,
        Err(e) => {
            result.failures.push(e.to_string());
            return result;
        }
    };
    let mut now = sim_start();
    let mut all: Vec<Output> = Vec::new();
    let step = |call: &mut Interpreter,
                now: &mut DateTime<Utc>,
                input: Input<'_>,
                all: &mut Vec<Output>| {
        *now += Duration::seconds(3);
        let outs = call.handle(*now, input).to_vec();
        let speaking = outs.iter().any(|o| matches!(o, Output::Play { .. }));
        all.extend(outs.iter().cloned());
        let mut turn = BotTurn {
            state: call.state().to_string(),
            outputs: outs,
        };
        if speaking && !call.is_ended() {
            *now += Duration::seconds(4);
            let more = call.handle(*now, Input::PlaybackFinished).to_vec();
            all.extend(more.iter().cloned());
            turn.outputs.extend(more);
        }
        turn
    };
    let t = step(&mut call, &mut now, Input::Answered, &mut all);
    result.transcript.push(t);
    for (i, turn) in case.turns.iter().enumerate() {
        if call.is_ended() {
            result.failures.push(format!(
                "turn {} was never heard: the call had already ended",
                i + 1
            ));
            break;
        }
        if let Some(v) = &turn.voice {
            call.set_voice(&v.verdict, v.score, v.alert.as_deref());
        }
        let nlu;
        let input = if turn.hangup {
            Input::HungUp
        } else if turn.no_input {
            Input::NoInput
        } else if let Some(d) = &turn.dtmf {
            Input::Dtmf(d)
        } else {
            nlu = match nlu_of(turn, &call.nlu_context(), classify) {
                Ok(n) => n,
                Err(e) => {
                    result.failures.push(format!("turn {}: {e}", i + 1));
                    break;
                }
            };
            Input::Utterance {
                nlu: &nlu,
                emotion: turn.emotion.as_deref().and_then(emotion_of),
            }
        };
        let t = step(&mut call, &mut now, input, &mut all);
        result.transcript.push(t);
    }
    result.path = call.path().iter().map(|s| s.to_string()).collect();
    if let Some((o, l)) = call.ended() {
        result.outcome = Some(o.clone());
        result.level = *l;
    }
    let e = &case.expect;
    if let Some(path) = &e.path {
        if *path != result.path {
            result
                .failures
                .push(format!("path: expected {:?}, got {:?}", path, result.path));
        }
    }
    if let Some(visits) = &e.visits {
        let mut it = result.path.iter();
        for v in visits {
            if !it.any(|p| p == v) {
                result.failures.push(format!(
                    "visits: `{v}` not visited in order; path was {:?}",
                    result.path
                ));
                break;
            }
        }
    }
    if let Some(o) = &e.outcome {
        if result.outcome.as_ref() != Some(o) {
            result
                .failures
                .push(format!("outcome: expected `{o}`, got {:?}", result.outcome));
        }
    }
    if let Some(l) = e.level {
        if result.level != Some(l) {
            result.failures.push(format!(
                "level: expected {}, got {:?}",
                l.as_str(),
                result.level
            ));
        }
    }
    let kinds: Vec<String> = all.iter().filter_map(action_kind).collect();
    for a in &e.actions {
        if !kinds.contains(a) {
            result.failures.push(format!(
                "action `{a}` was not taken; actions were {kinds:?}"
            ));
        }
    }
    for a in &e.no_actions {
        if kinds.contains(a) {
            result
                .failures
                .push(format!("action `{a}` was taken but must not be"));
        }
    }
    let plays: Vec<(&str, &str)> = all
        .iter()
        .filter_map(|o| match o {
            Output::Play { text, style, .. } => Some((text.as_str(), style.as_str())),
            _ => None,
        })
        .collect();
    for s in &e.said {
        if !plays.iter().any(|(t, _)| t.contains(s.as_str())) {
            result.failures.push(format!("no prompt said `{s}`"));
        }
    }
    for s in &e.not_said {
        if let Some((t, _)) = plays.iter().find(|(t, _)| t.contains(s.as_str())) {
            result.failures.push(format!("a prompt said `{s}`: {t}"));
        }
    }
    for s in &e.styles {
        if !plays.iter().any(|(_, st)| st == s) {
            result.failures.push(format!("no prompt used style `{s}`"));
        }
    }
    for (k, v) in &e.vars {
        let want = scalar(v);
        if call.var(k) != Some(want.as_str()) {
            result.failures.push(format!(
                "variable `{k}`: expected `{want}`, got {:?}",
                call.var(k)
            ));
        }
    }
    result.passed = result.failures.is_empty();
    result
}

/// Run every case of a file.
pub fn run_cases(
    prog: &Arc<Program>,
    file: &CaseFile,
    classify: Option<Classify<'_>>,
) -> Vec<CaseResult> {
    file.cases
        .iter()
        .map(|c| run_case(prog, &file.customer, c, classify))
        .collect()
}
