//! The sans-IO interpreter: one per call, fed [`Input`]s with the time, it
//! answers with [`Output`]s. It never reads a clock, sleeps or touches a
//! socket, so a test or a simulator can run a call in microseconds and the
//! same inputs always give the same outputs.
//!
//! The contract with the runtime:
//! - `Answered` starts the call; the bot plays the first prompt.
//! - Every `Play` of one step is played in order; when the last one has
//!   finished, send `PlaybackFinished`. The bot then says `Listen` (start the
//!   recogniser with those timeouts) or `End`.
//! - While listening, send each `Utterance` (NLU + emotion of one callee turn),
//!   `Dtmf` digits or `NoInput` when the silence timeout fires.
//! - If the current prompt allows barge-in, speech during playback may be sent
//!   as `BargeIn` (the bot answers `StopPlayback` + `Listen`) or directly as an
//!   `Utterance`; otherwise callee input during playback is ignored.
//! - `HungUp` ends the call with the outcome tagged so far.
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use waihu_core::{Emotion, EmotionLabel, NluContext, NluResult, SentimentLabel};

use crate::cond::Val;
use crate::model::Level;
use crate::program::{CAction, CHandler, CRule, Effect, EmotionMatch, Next, Program, ANGER};

/// How an out-of-script question was answered (see [`Interpreter::aside`]).
#[derive(Debug, Clone, Copy)]
pub enum Aside<'a> {
    /// These sentences: the interpreter plays them.
    Said(&'a [String]),
    /// The runtime already streamed the answer to TTS.
    Streamed,
    /// Nothing safe to say: the interpreter plays the script's fallback line.
    Fallback,
}

/// What happened on the line.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Answered,
    Utterance {
        nlu: &'a NluResult,
        emotion: Option<Emotion>,
    },
    Dtmf(&'a str),
    PlaybackFinished,
    BargeIn,
    NoInput,
    /// The callee's words began before the current prompt did: they finish
    /// the previous answer ("对，地址没错" split at the comma), they cannot
    /// answer a question not yet heard. A prompt they cut is said again;
    /// nothing is taken as an answer and no turn is counted.
    Continuation,
    HungUp,
}

/// What the bot wants done.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    Play {
        text: String,
        style: String,
        barge_in: bool,
    },
    StopPlayback,
    Listen {
        no_input_ms: u32,
        max_speech_ms: u32,
        dtmf: bool,
    },
    Action {
        action: Action,
    },
    End {
        outcome: String,
        level: Option<Level>,
    },
}

/// A side effect for the runtime (or, for `Outcome`/`Level`/`Set`, a note
/// for the event log).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Set {
        var: String,
        value: String,
    },
    Outcome {
        outcome: String,
    },
    Level {
        level: Level,
    },
    Callback {
        at: DateTime<Utc>,
    },
    Sms {
        template: String,
    },
    Transfer {
        queue: Option<String>,
        number: Option<String>,
    },
    AddDnc,
}

/// One entry of the recorded path (funnel analytics).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub at: DateTime<Utc>,
    pub state: u32,
    pub kind: StepKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// Entered the state; `variant` is the A/B prompt variant played.
    Enter {
        variant: Option<u16>,
    },
    /// A callee turn and the intent it was taken as (after the confidence floor).
    Heard {
        intent: String,
    },
    Dtmf {
        digits: String,
    },
    NoInput,
    BargeIn,
    /// A global or per-state handler fired (`request_human`, `anger`, ...).
    Handler {
        name: String,
    },
    End {
        outcome: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("缺少客户变量 / variables not provided: {}", .0.join(", "))]
pub struct MissingVariables(pub Vec<String>);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    NotStarted,
    Speaking,
    Listening,
    Ended,
}

enum Heard<'a> {
    Speech {
        intent: &'a str,
        nlu: &'a NluResult,
        emotion: Option<Emotion>,
    },
    Dtmf(&'a str),
}

/// One call's conversation state.
pub struct Interpreter {
    prog: Arc<Program>,
    vars: Vec<Option<Val>>,
    seed: u64,
    state: u32,
    phase: Phase,
    out: Vec<Output>,
    played: bool,
    pending_end: Option<String>,
    barge_in: bool,
    prompt: String,
    turns: u32,
    state_turns: u32,
    no_input_count: u32,
    no_match_count: u32,
    anger_count: u32,
    style_override: Option<String>,
    outcome: Option<String>,
    level: Option<Level>,
    turn_time: Option<DateTime<Utc>>,
    trace: Vec<Step>,
    ended: Option<(String, Option<Level>)>,
    /// Per state, a variant chosen from outside (a bandit) over the weights.
    chosen: Vec<Option<u16>>,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn is_angry(nlu: &NluResult, emotion: Option<Emotion>) -> bool {
    nlu.sentiment.angry
        || emotion.is_some_and(|e| e.label == EmotionLabel::Angry && e.confidence >= 0.5)
}

impl Interpreter {
    /// A conversation for one call. `customer` gives the script's variables
    /// (extra keys are ignored); `seed` picks A/B variants (use a hash of the
    /// call id so a retried call hears the same variant).
    pub fn new<K: AsRef<str>, V: AsRef<str>>(
        prog: Arc<Program>,
        customer: impl IntoIterator<Item = (K, V)>,
        seed: u64,
    ) -> Result<Interpreter, MissingVariables> {
        let mut vars: Vec<Option<Val>> = vec![None; prog.vars.len()];
        for (k, v) in customer {
            // A record cannot claim what only the call can tell.
            if crate::program::RUNTIME_VARS.contains(&k.as_ref()) {
                continue;
            }
            if let Some(slot) = prog.slot(k.as_ref()) {
                vars[slot] = Some(Val::new(v.as_ref()));
            }
        }
        let missing: Vec<String> = prog
            .required
            .iter()
            .filter(|(s, _, _)| vars[*s].is_none())
            .map(|(_, n, _)| n.clone())
            .collect();
        if !missing.is_empty() {
            return Err(MissingVariables(missing));
        }
        for (slot, _, default) in &prog.optional {
            if vars[*slot].is_none() {
                vars[*slot] = Some(Val::new(default.as_str()));
            }
        }
        let start = prog.start;
        Ok(Interpreter {
            prog,
            vars,
            seed,
            state: start,
            phase: Phase::NotStarted,
            out: Vec::with_capacity(8),
            played: false,
            pending_end: None,
            barge_in: false,
            prompt: String::new(),
            turns: 0,
            state_turns: 0,
            no_input_count: 0,
            no_match_count: 0,
            anger_count: 0,
            style_override: None,
            outcome: None,
            level: None,
            turn_time: None,
            trace: Vec::with_capacity(32),
            ended: None,
            chosen: Vec::new(),
        })
    }

    /// Plays variant `variant` of `state` whenever the state is entered,
    /// instead of the weighted pick (a campaign's bandit chose it). Unknown
    /// names are an error and change nothing.
    pub fn choose_variant(&mut self, state: &str, variant: &str) -> Result<(), String> {
        let t = self
            .prog
            .state_id(state)
            .ok_or_else(|| format!("no state `{state}`"))? as usize;
        let v = self.prog.states[t]
            .variants
            .iter()
            .position(|v| v.id == variant)
            .ok_or_else(|| format!("state `{state}` has no variant `{variant}`"))?;
        if self.chosen.len() <= t {
            self.chosen.resize(t + 1, None);
        }
        self.chosen[t] = Some(v as u16);
        Ok(())
    }

    pub fn program(&self) -> &Program {
        &self.prog
    }

    /// Name of the current state.
    pub fn state(&self) -> &str {
        &self.prog.states[self.state as usize].name
    }

    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The script's message for an answering machine, rendered with this
    /// call's variables, and its style: `None` when the script hangs up on
    /// machines (`voicemail: {action: hang_up}` or no `voicemail:`).
    pub fn voicemail_message(&self) -> Option<(String, String)> {
        let vm = self.prog.voicemail.as_ref()?;
        let style = vm.style.clone().unwrap_or_else(|| self.prog.style.clone());
        Some((self.render(&vm.say), style))
    }

    /// Outcome and level, once the call has ended.
    pub fn ended(&self) -> Option<&(String, Option<Level>)> {
        self.ended.as_ref()
    }

    pub fn trace(&self) -> &[Step] {
        &self.trace
    }

    /// States in the order they were entered (the funnel path).
    pub fn path(&self) -> Vec<&str> {
        self.trace
            .iter()
            .filter(|s| matches!(s.kind, StepKind::Enter { .. }))
            .map(|s| self.prog.states[s.state as usize].name.as_str())
            .collect()
    }

    /// Parallel to [`Interpreter::path`]: the id of the A/B prompt variant
    /// played on entering each state, `None` where the state has one prompt
    /// (or none: a router).
    pub fn path_variants(&self) -> Vec<Option<&str>> {
        self.trace
            .iter()
            .filter_map(|s| match s.kind {
                StepKind::Enter { variant } => Some((s.state, variant)),
                _ => None,
            })
            .map(|(state, variant)| {
                let st = &self.prog.states[state as usize];
                match variant {
                    Some(v) if st.variants.len() > 1 => {
                        st.variants.get(v as usize).map(|x| x.id.as_str())
                    }
                    _ => None,
                }
            })
            .collect()
    }

    /// The business result as an event-log entry, once the call has ended.
    pub fn conversation_ended(&self) -> Option<waihu_core::EventKind> {
        let (outcome, level) = self.ended.as_ref()?;
        Some(waihu_core::EventKind::ConversationEnded {
            outcome: outcome.clone(),
            level: level.map(|l| l.as_str().to_string()),
            path: self.path().into_iter().map(String::from).collect(),
        })
    }

    /// What the current state expects of the next utterance, as data for the
    /// NLU: the question kind, the prompt as played, the expected intents and
    /// entity kinds. Empty once the call has ended.
    pub fn nlu_context(&self) -> NluContext {
        if self.is_ended() {
            return NluContext::default();
        }
        let st = &self.prog.states[self.state as usize];
        NluContext {
            question: st.question,
            prompt: self.prompt.clone(),
            intents: st.expect_intents.clone(),
            entities: st.expect_entities.clone(),
        }
    }

    /// The runtime's voiceprint check of the callee: sets `voice.verdict`,
    /// `voice.score` and (on a watchlist hit) `voice.alert` for the rules that
    /// read them. Rules are evaluated as usual on the next input or state
    /// entered; set it before the input it should decide.
    pub fn set_voice(&mut self, verdict: &str, score: f32, alert: Option<&str>) {
        let score = format!("{score:.3}");
        for (name, value) in [
            ("voice.verdict", Some(verdict)),
            ("voice.score", Some(score.as_str())),
            ("voice.alert", alert),
        ] {
            if let (Some(slot), Some(v)) = (self.prog.slot(name), value) {
                self.vars[slot] = Some(Val::new(v));
            }
        }
    }

    /// Current value of a variable.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.prog
            .slot(name)
            .and_then(|s| self.vars[s].as_ref())
            .map(|v| v.text.as_str())
    }

    /// Whether this utterance is an out-of-script question for the script's
    /// `knowledge:`: the call is listening, the intent (after the confidence
    /// floor) is one of `knowledge.on`, the words are not empty, and the
    /// current state has no rule or handler of its own for that intent. The
    /// runtime then answers (or not) and reports it with [`Interpreter::aside`]
    /// instead of sending the utterance.
    pub fn wants_knowledge(&self, nlu: &NluResult) -> bool {
        let Some(kn) = self.prog.knowledge.as_ref() else {
            return false;
        };
        if self.phase != Phase::Listening || nlu.text.trim().chars().count() < 2 {
            return false;
        }
        let intent = if nlu.confidence >= self.prog.min_confidence {
            nlu.intent.as_str()
        } else {
            "unknown"
        };
        if !kn.on.iter().any(|i| i == intent) {
            return false;
        }
        let st = &self.prog.states[self.state as usize];
        let ruled = st.rules.iter().any(|r| {
            r.intents.iter().any(|i| i == intent)
                || (r.entity.is_some() && !nlu.entities.is_empty())
        });
        !ruled && self.handler_for(&self.prog, intent).is_none()
    }

    /// The script's line for a question it cannot answer safely, rendered.
    pub fn knowledge_fallback(&self) -> Option<String> {
        self.prog
            .knowledge
            .as_ref()
            .map(|k| self.render(&k.fallback))
    }

    /// Current values of the script's variables (what an answer may state).
    pub fn variable_values(&self) -> Vec<&str> {
        self.vars
            .iter()
            .flatten()
            .map(|v| v.text.as_str())
            .collect()
    }

    /// An out-of-script question was handled aside: `answer` says what the
    /// callee heard. The turn counts (turn limits apply) and is recorded as
    /// the `knowledge` handler; then the current prompt is repeated, so the
    /// call returns to where it was.
    pub fn aside(&mut self, now: DateTime<Utc>, answer: Aside<'_>) -> &[Output] {
        self.out.clear();
        self.played = false;
        self.turn_time = None;
        if self.phase != Phase::Listening {
            return &self.out;
        }
        let prog = self.prog.clone();
        if self.count_turn(now, &prog) {
            self.settle(now);
            return &self.out;
        }
        self.record(
            now,
            StepKind::Handler {
                name: "knowledge".into(),
            },
        );
        let style = self.current_style(&prog).to_string();
        match answer {
            Aside::Said(lines) => {
                for l in lines {
                    self.play(l.clone(), style.clone());
                }
            }
            Aside::Fallback => {
                if let Some(t) = self.knowledge_fallback() {
                    self.play(t, style);
                }
            }
            Aside::Streamed => self.played = true,
        }
        self.replay_prompt(&prog);
        self.settle(now);
        &self.out
    }

    /// Feed one input; the returned outputs are valid until the next call.
    pub fn handle(&mut self, now: DateTime<Utc>, input: Input<'_>) -> &[Output] {
        self.out.clear();
        self.played = false;
        self.turn_time = None;
        match (self.phase, input) {
            (Phase::Ended, _) => return &self.out,
            (_, Input::HungUp) => {
                let outcome = self.outcome.clone().unwrap_or_else(|| "hangup".into());
                self.end_now(now, outcome);
                return &self.out;
            }
            (Phase::NotStarted, Input::Answered) => {
                let start = self.prog.start;
                self.enter(now, start);
            }
            (Phase::NotStarted, _) => return &self.out,
            (Phase::Speaking, Input::PlaybackFinished) => {
                if let Some(o) = self.pending_end.take() {
                    self.end_now(now, o);
                } else {
                    self.listen();
                }
                return &self.out;
            }
            (Phase::Speaking, Input::BargeIn) => {
                if self.barge_in && self.pending_end.is_none() {
                    self.record(now, StepKind::BargeIn);
                    self.out.push(Output::StopPlayback);
                    self.listen();
                }
                return &self.out;
            }
            (Phase::Speaking, Input::Utterance { .. } | Input::Dtmf(_)) => {
                if !self.barge_in || self.pending_end.is_some() {
                    return &self.out;
                }
                self.record(now, StepKind::BargeIn);
                self.out.push(Output::StopPlayback);
                self.phase = Phase::Listening;
                return self.handle_listening(now, input);
            }
            (Phase::Listening, Input::Utterance { .. } | Input::Dtmf(_) | Input::NoInput) => {
                return self.handle_listening(now, input);
            }
            (Phase::Listening, Input::Continuation) => {
                // Nothing else is due, so the question the words cut (or
                // talked over) is asked again.
                self.record(
                    now,
                    StepKind::Handler {
                        name: "continuation".into(),
                    },
                );
                let prog = self.prog.clone();
                self.replay_prompt(&prog);
            }
            _ => return &self.out,
        }
        self.settle(now);
        &self.out
    }

    fn handle_listening(&mut self, now: DateTime<Utc>, input: Input<'_>) -> &[Output] {
        let prog = self.prog.clone();
        match input {
            Input::Utterance { nlu, emotion } => {
                let intent = if nlu.confidence >= prog.min_confidence {
                    nlu.intent.as_str()
                } else {
                    "unknown"
                };
                self.note_utterance(&prog, nlu, intent);
                self.record(
                    now,
                    StepKind::Heard {
                        intent: intent.to_string(),
                    },
                );
                self.turn(
                    now,
                    &prog,
                    Heard::Speech {
                        intent,
                        nlu,
                        emotion,
                    },
                );
            }
            Input::Dtmf(d) => {
                if let Some(s) = prog.last_dtmf {
                    self.vars[s] = Some(Val::new(d));
                }
                self.record(
                    now,
                    StepKind::Dtmf {
                        digits: d.to_string(),
                    },
                );
                self.turn(now, &prog, Heard::Dtmf(d));
            }
            Input::NoInput => {
                self.record(now, StepKind::NoInput);
                self.no_input(now, &prog);
            }
            _ => {}
        }
        self.settle(now);
        &self.out
    }

    fn note_utterance(&mut self, prog: &Program, nlu: &NluResult, intent: &str) {
        if let Some(s) = prog.last_text {
            self.vars[s] = Some(Val::new(nlu.text.as_str()));
        }
        if let Some(s) = prog.last_intent {
            self.vars[s] = Some(Val::new(intent));
        }
        for e in &nlu.entities {
            let text = match &e.value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => e.text.clone(),
                v => v.to_string(),
            };
            if e.kind == "time" && self.turn_time.is_none() {
                self.turn_time = DateTime::parse_from_rfc3339(&text)
                    .ok()
                    .map(|t| t.with_timezone(&Utc));
            }
            // `entity.time` holds the normalised value, `entity.time.text` the words said.
            for (k, slot) in &prog.entity_slots {
                if let Some(rest) = k.strip_prefix(e.kind.as_str()) {
                    if rest.is_empty() {
                        self.vars[*slot] = Some(Val::new(text.as_str()));
                    } else if rest == ".text" {
                        self.vars[*slot] = Some(Val::new(e.text.as_str()));
                    } else if let Some(part) = rest.strip_prefix('.').and_then(|p| e.parts.get(p)) {
                        // `entity.address.city`: a named part of a structured value.
                        self.vars[*slot] = Some(Val::new(part.as_str()));
                    }
                }
            }
        }
    }

    /// After a step: either end now, wait for playback, or listen.
    fn settle(&mut self, now: DateTime<Utc>) {
        if self.phase == Phase::Ended {
            return;
        }
        if self.pending_end.is_some() && !self.played {
            let o = self.pending_end.take().unwrap_or_default();
            self.end_now(now, o);
        } else if self.played {
            self.phase = Phase::Speaking;
        } else if self.phase != Phase::NotStarted {
            self.listen();
        }
    }

    fn listen(&mut self) {
        let st = &self.prog.states[self.state as usize];
        self.out.push(Output::Listen {
            no_input_ms: st.no_input_ms,
            max_speech_ms: st.max_speech_ms,
            dtmf: st.expect_dtmf.is_some() || st.rules.iter().any(|r| r.dtmf.is_some()),
        });
        self.phase = Phase::Listening;
    }

    fn end_now(&mut self, now: DateTime<Utc>, outcome: String) {
        self.record(
            now,
            StepKind::End {
                outcome: outcome.clone(),
            },
        );
        self.out.push(Output::End {
            outcome: outcome.clone(),
            level: self.level,
        });
        self.ended = Some((outcome, self.level));
        self.phase = Phase::Ended;
        self.pending_end = None;
    }

    fn record(&mut self, at: DateTime<Utc>, kind: StepKind) {
        self.trace.push(Step {
            at,
            state: self.state,
            kind,
        });
    }

    fn get(&self, slot: usize) -> Option<&str> {
        self.vars
            .get(slot)
            .and_then(|v| v.as_ref())
            .map(|v| v.text.as_str())
    }

    fn render(&self, t: &crate::template::Template) -> String {
        t.render(|s| self.get(s))
    }

    fn current_style<'a>(&'a self, prog: &'a Program) -> &'a str {
        if let Some(s) = &self.style_override {
            return s;
        }
        prog.states[self.state as usize]
            .style
            .as_deref()
            .unwrap_or(&prog.style)
    }

    fn play(&mut self, text: String, style: String) {
        if text.trim().is_empty() {
            return;
        }
        self.played = true;
        self.out.push(Output::Play {
            text,
            style,
            barge_in: self.barge_in,
        });
    }

    fn anger_enabled(&self, prog: &Program) -> bool {
        !prog.states[self.state as usize]
            .disabled
            .iter()
            .any(|d| d == ANGER)
    }

    fn handler_for<'p>(&self, prog: &'p Program, intent: &str) -> Option<&'p CHandler> {
        let st = &prog.states[self.state as usize];
        if let Some((_, h)) = st.handlers.iter().find(|(n, _)| n == intent) {
            return Some(h);
        }
        if st.disabled.iter().any(|d| d == intent) {
            return None;
        }
        prog.globals
            .iter()
            .find(|(n, _)| n == intent)
            .map(|(_, h)| h)
    }

    fn anger_handler<'p>(&self, prog: &'p Program) -> Option<&'p CHandler> {
        let st = &prog.states[self.state as usize];
        st.handlers
            .iter()
            .find(|(n, _)| n == ANGER)
            .map(|(_, h)| h)
            .or(prog.anger.as_ref())
    }

    fn matches(&self, r: &CRule, heard: &Heard<'_>) -> bool {
        if !r.intents.is_empty() {
            match heard {
                Heard::Speech { intent, .. } if r.intents.iter().any(|i| i == intent) => {}
                _ => return false,
            }
        }
        if let Some(kind) = &r.entity {
            match heard {
                Heard::Speech { nlu, .. } if nlu.entities.iter().any(|e| &e.kind == kind) => {}
                _ => return false,
            }
        }
        if let Some(em) = &r.emotion {
            let Heard::Speech { nlu, emotion, .. } = heard else {
                return false;
            };
            let ok = match em {
                EmotionMatch::Label(EmotionLabel::Angry) => is_angry(nlu, *emotion),
                EmotionMatch::Label(l) => {
                    emotion.is_some_and(|e| e.label == *l && e.confidence >= 0.5)
                }
                EmotionMatch::Negative => nlu.sentiment.label == SentimentLabel::Negative,
                EmotionMatch::Positive => nlu.sentiment.label == SentimentLabel::Positive,
            };
            if !ok {
                return false;
            }
        }
        if let Some(d) = &r.dtmf {
            match heard {
                Heard::Dtmf(got) if got == d => {}
                _ => return false,
            }
        }
        if let Some(c) = &r.when {
            if !c.eval(&|s| self.vars.get(s).and_then(|v| v.as_ref())) {
                return false;
            }
        }
        true
    }

    /// Count a callee turn; true if a turn limit fired instead.
    fn count_turn(&mut self, now: DateTime<Utc>, prog: &Program) -> bool {
        self.turns += 1;
        self.state_turns += 1;
        let st = &prog.states[self.state as usize];
        if self.turns > prog.max_turns {
            self.record(
                now,
                StepKind::Handler {
                    name: "max_turns".into(),
                },
            );
            self.run(now, prog, &prog.on_max_turns);
            return true;
        }
        if let Some(max) = st.max_turns {
            if self.state_turns > max {
                self.record(
                    now,
                    StepKind::Handler {
                        name: "max_turns".into(),
                    },
                );
                let eff = st.on_max_turns.as_ref().unwrap_or(&prog.on_max_turns);
                self.run(now, prog, eff);
                return true;
            }
        }
        false
    }

    fn turn(&mut self, now: DateTime<Utc>, prog: &Program, heard: Heard<'_>) {
        // Never overridable, never limited: a do-not-call request is honoured first.
        if let Heard::Speech {
            intent: "do_not_call",
            ..
        } = heard
        {
            self.record(
                now,
                StepKind::Handler {
                    name: "do_not_call".into(),
                },
            );
            self.run(now, prog, &prog.dnc.effect);
            return;
        }
        if self.count_turn(now, prog) {
            return;
        }
        let angry = matches!(heard, Heard::Speech { nlu, emotion, .. } if is_angry(nlu, emotion))
            && self.anger_enabled(prog);
        let st = &prog.states[self.state as usize];
        if let Some(rule) = st.rules.iter().find(|r| self.matches(r, &heard)) {
            if angry {
                self.note_anger(prog);
            }
            self.no_match_count = 0;
            self.run(now, prog, &rule.effect);
            return;
        }
        let handler = match heard {
            Heard::Speech { intent, .. } => self.handler_for(prog, intent).map(|h| (intent, h)),
            Heard::Dtmf(_) => None,
        };
        if angry {
            let anger = self.anger_handler(prog);
            self.note_anger(prog);
            if let Some(a) = anger {
                if let (Some(after), Some(esc)) = (a.escalate_after, &a.escalate) {
                    if self.anger_count >= after {
                        self.record(now, StepKind::Handler { name: ANGER.into() });
                        self.run(now, prog, esc);
                        return;
                    }
                }
                if handler.is_none() {
                    self.record(now, StepKind::Handler { name: ANGER.into() });
                    self.run(now, prog, &a.effect);
                    return;
                }
                if let Some(say) = &a.effect.say {
                    let text = self.render(say);
                    let style = self.current_style(prog).to_string();
                    self.play(text, style);
                }
            }
        }
        if let Some((name, h)) = handler {
            self.record(
                now,
                StepKind::Handler {
                    name: name.to_string(),
                },
            );
            self.run(now, prog, &h.effect);
            return;
        }
        self.no_match(now, prog);
    }

    fn note_anger(&mut self, prog: &Program) {
        self.anger_count += 1;
        let style = self
            .anger_handler(prog)
            .and_then(|a| a.effect.style.clone());
        self.style_override = Some(style.unwrap_or_else(|| "apologetic".into()));
    }

    fn no_input(&mut self, now: DateTime<Utc>, prog: &Program) {
        if self.count_turn(now, prog) {
            return;
        }
        let st = &prog.states[self.state as usize];
        let retry = st.no_input.as_ref().unwrap_or(&prog.no_input);
        self.no_input_count += 1;
        if self.no_input_count <= retry.reprompt {
            if let Some(say) = &retry.say {
                let text = self.render(say);
                let style = self.current_style(prog).to_string();
                self.play(text, style);
            }
            self.replay_prompt(prog);
        } else {
            self.record(
                now,
                StepKind::Handler {
                    name: "no_input".into(),
                },
            );
            self.run(now, prog, &retry.then);
        }
    }

    fn no_match(&mut self, now: DateTime<Utc>, prog: &Program) {
        let st = &prog.states[self.state as usize];
        let retry = st.no_match.as_ref().unwrap_or(&prog.no_match);
        self.no_match_count += 1;
        if self.no_match_count <= retry.reprompt {
            if let Some(say) = &retry.say {
                let text = self.render(say);
                let style = self.current_style(prog).to_string();
                self.play(text, style);
            }
            self.replay_prompt(prog);
        } else {
            self.record(
                now,
                StepKind::Handler {
                    name: "no_match".into(),
                },
            );
            self.run(now, prog, &retry.then);
        }
    }

    /// The call ends once the prompts of this step have played: they are the
    /// call's last words ("正在为您转接人工客服，请稍候"), so no barge-in may cut
    /// them — a cut prompt never reports finished, and the ending would wait
    /// for it until the callee hung up (the Mandarin demo's asks_human calls:
    /// the second half of "我要人工服务，请帮我转接" cut the transfer prompt).
    fn end_after_prompts(&mut self, outcome: String) {
        for o in &mut self.out {
            if let Output::Play { barge_in, .. } = o {
                *barge_in = false;
            }
        }
        self.pending_end = Some(outcome);
    }

    fn replay_prompt(&mut self, prog: &Program) {
        let text = self.prompt.clone();
        let style = self.current_style(prog).to_string();
        self.play(text, style);
    }

    fn run(&mut self, now: DateTime<Utc>, prog: &Program, eff: &Effect) {
        for a in &eff.actions {
            self.act(now, a);
        }
        if let Some(say) = &eff.say {
            let text = self.render(say);
            let style = match &eff.style {
                Some(s) => s.clone(),
                None => self.current_style(prog).to_string(),
            };
            self.play(text, style);
        }
        match &eff.next {
            Next::Stay => self.replay_prompt(prog),
            Next::Goto(t) => self.enter(now, *t),
            Next::End(o) => self.end_after_prompts(o.clone()),
        }
    }

    fn act(&mut self, now: DateTime<Utc>, a: &CAction) {
        let action = match a {
            CAction::Set(list) => {
                for (slot, t) in list {
                    let value = self.render(t);
                    self.out.push(Output::Action {
                        action: Action::Set {
                            var: self.prog.vars[*slot].clone(),
                            value: value.clone(),
                        },
                    });
                    self.vars[*slot] = Some(Val::new(value));
                }
                return;
            }
            CAction::Outcome(o) => {
                self.outcome = Some(o.clone());
                Action::Outcome { outcome: o.clone() }
            }
            CAction::Level(l) => {
                self.level = Some(*l);
                Action::Level { level: *l }
            }
            CAction::Callback { at, in_hours } => {
                let from_template = at
                    .as_ref()
                    .and_then(|t| DateTime::parse_from_rfc3339(self.render(t).trim()).ok())
                    .map(|t| t.with_timezone(&Utc));
                let at = from_template
                    .or(self.turn_time)
                    .unwrap_or_else(|| now + Duration::seconds((in_hours * 3600.0) as i64));
                Action::Callback { at }
            }
            CAction::Sms(t) => Action::Sms {
                template: t.clone(),
            },
            CAction::Transfer(t) => Action::Transfer {
                queue: t.queue.clone(),
                number: t.number.clone(),
            },
            CAction::Dnc => Action::AddDnc,
        };
        self.out.push(Output::Action { action });
    }

    fn enter(&mut self, now: DateTime<Utc>, target: u32) {
        let prog = self.prog.clone();
        let mut t = target;
        for _ in 0..=prog.states.len() {
            self.state = t;
            self.state_turns = 0;
            self.no_input_count = 0;
            self.no_match_count = 0;
            let st = &prog.states[t as usize];
            for a in &st.enter {
                self.act(now, a);
            }
            if st.is_router() {
                self.record(now, StepKind::Enter { variant: None });
                let Some(rule) = st
                    .rules
                    .iter()
                    .find(|r| r.when.is_none() || self.matches(r, &Heard::Dtmf("")))
                else {
                    self.end_after_prompts(st.end.clone().unwrap_or_else(|| "error".into()));
                    return;
                };
                for a in &rule.effect.actions {
                    self.act(now, a);
                }
                if let Some(say) = &rule.effect.say {
                    let text = self.render(say);
                    let style = self.current_style(&prog).to_string();
                    self.play(text, style);
                }
                match &rule.effect.next {
                    Next::Goto(n) => {
                        t = *n;
                        continue;
                    }
                    Next::End(o) => self.end_after_prompts(o.clone()),
                    Next::Stay => self.end_after_prompts("error".into()),
                }
                return;
            }
            let v = if st.variants.len() == 1 {
                0
            } else if let Some(v) = self.chosen.get(t as usize).copied().flatten() {
                v as usize
            } else {
                let total: u64 = st.variants.iter().map(|v| u64::from(v.weight)).sum();
                let mut r = splitmix(self.seed ^ u64::from(t).wrapping_mul(0x9E37_79B9_7F4A_7C15))
                    % total.max(1);
                let mut idx = 0;
                for (i, v) in st.variants.iter().enumerate() {
                    if r < u64::from(v.weight) {
                        idx = i;
                        break;
                    }
                    r -= u64::from(v.weight);
                }
                idx
            };
            self.record(
                now,
                StepKind::Enter {
                    variant: Some(v as u16),
                },
            );
            self.barge_in = st.barge_in;
            self.prompt = self.render(&st.variants[v].text);
            self.replay_prompt(&prog);
            if let Some(o) = &st.end {
                self.end_after_prompts(o.clone());
            }
            return;
        }
        self.end_after_prompts("error".into());
    }
}
