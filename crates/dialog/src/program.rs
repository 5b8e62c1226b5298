//! Loading a script: YAML → serde model → validated, compiled [`Program`].
//!
//! Compilation resolves every name once (states to indices, variables to
//! slots, templates and conditions to small trees), so the interpreter never
//! hashes a state name or re-parses text while a call is running. Every
//! problem found on the way is a [`Diagnostic`] with line and column; loading
//! collects them all instead of stopping at the first.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;

use waihu_core::BUILTIN_INTENTS;

use crate::cond::{self, Expr};
use crate::lang;
use crate::model::{self, Language, Level, Rule, Script, TransferTarget, VoicemailAction};
use crate::template::{self, RawPart, Template};
use crate::yaml::{self, path_string, Node, Pos, Seg};

/// TTS styles the speech layer knows (the seed's table plus neutral/calm).
pub const STYLES: [&str; 5] = ["neutral", "happy", "urgent", "apologetic", "calm"];
/// Emotion matchers: the emotion labels plus text sentiment.
pub const EMOTIONS: [&str; 6] = ["angry", "anxious", "calm", "happy", "negative", "positive"];
/// Names usable under `globals` besides intents.
pub const ANGER: &str = "anger";

const DEFAULT_NO_INPUT_MS: u32 = 6000;
const DEFAULT_MAX_SPEECH_MS: u32 = 15000;
const DEFAULT_REPROMPT: u32 = 2;
const DEFAULT_MAX_TURNS: u32 = 30;
const DEFAULT_MIN_CONFIDENCE: f32 = 0.45;

/// One problem in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub pos: Pos,
    /// Where in the document, as `states.opening.on[2].goto`.
    pub path: String,
    pub message: String,
}

/// Everything wrong with a script file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub file: String,
    pub diagnostics: Vec<Diagnostic>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, d.pos.line, d.pos.col, d.message
            )?;
            if !d.path.is_empty() {
                write!(f, " (at {})", d.path)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Repeat the current prompt.
    Stay,
    Goto(u32),
    End(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum CAction {
    Set(Vec<(usize, Template)>),
    Outcome(String),
    Level(Level),
    Callback { at: Option<Template>, in_hours: f64 },
    Sms(String),
    Transfer(TransferTarget),
    Dnc,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub say: Option<Template>,
    pub style: Option<String>,
    pub actions: Vec<CAction>,
    pub next: Next,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EmotionMatch {
    Label(waihu_core::EmotionLabel),
    Negative,
    Positive,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CRule {
    /// Empty: any intent.
    pub intents: Vec<String>,
    pub entity: Option<String>,
    pub emotion: Option<EmotionMatch>,
    pub dtmf: Option<String>,
    pub when: Option<Expr<usize>>,
    pub effect: Effect,
}

impl CRule {
    pub fn is_catch_all(&self) -> bool {
        self.intents.is_empty()
            && self.entity.is_none()
            && self.emotion.is_none()
            && self.dtmf.is_none()
            && self.when.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CHandler {
    pub effect: Effect,
    pub escalate_after: Option<u32>,
    pub escalate: Option<Effect>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CRetry {
    pub reprompt: u32,
    pub say: Option<Template>,
    pub then: Effect,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PromptVariant {
    pub id: String,
    pub text: Template,
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CState {
    pub name: String,
    pub title: Option<String>,
    /// Empty for routers.
    pub variants: Vec<PromptVariant>,
    /// The variants are chosen by a learning experiment, not their weights.
    pub bandit: Option<CBandit>,
    pub style: Option<String>,
    pub barge_in: bool,
    pub expect_intents: Vec<String>,
    pub expect_entities: Vec<String>,
    pub expect_dtmf: Option<String>,
    /// Declared or inferred; `None` for routers and end states.
    pub question: Option<waihu_core::QuestionKind>,
    pub enter: Vec<CAction>,
    pub rules: Vec<CRule>,
    pub handlers: Vec<(String, CHandler)>,
    pub disabled: Vec<String>,
    pub no_input: Option<CRetry>,
    pub no_match: Option<CRetry>,
    pub max_turns: Option<u32>,
    pub on_max_turns: Option<Effect>,
    pub end: Option<String>,
    pub no_input_ms: u32,
    pub max_speech_ms: u32,
}

impl CState {
    pub fn is_router(&self) -> bool {
        self.variants.is_empty()
    }
}

/// A validated learning experiment over a state's prompt variants.
#[derive(Debug, Clone, PartialEq)]
pub struct CBandit {
    pub reward: model::Reward,
    pub min_share: f64,
    pub stop_prob: f64,
    pub min_calls: u64,
}

/// The reward one bandit state earned on one call.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BanditReward {
    pub state: String,
    /// The variant the callee heard (its id and index in the state).
    pub variant: String,
    pub variant_index: usize,
    pub success: bool,
}

/// A custom intent, as the NLU needs it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IntentDef {
    pub name: String,
    pub examples: Vec<String>,
    pub keywords: Vec<String>,
}

/// Variables only the runtime sets during a call, never the customer record:
/// the voiceprint check of the callee's voice. `voice.verdict` is `match`,
/// `no_match`, `not_enrolled`, `unavailable` (the check failed) or `pending`
/// (not enough speech heard yet); `voice.score` the cosine; `voice.alert` the
/// watchlist label of a flagged voice. Unset when the runtime runs no check.
pub const RUNTIME_VARS: [&str; 3] = ["voice.verdict", "voice.score", "voice.alert"];

/// A validated, compiled script. Immutable; share it with `Arc` across calls.
#[derive(Debug, Clone)]
pub struct Program {
    pub name: String,
    pub title: Option<String>,
    pub language: Language,
    pub segment: Option<String>,
    pub style: String,
    pub states: Vec<CState>,
    pub start: u32,
    /// Variable slot names.
    pub vars: Vec<String>,
    pub(crate) var_index: HashMap<String, usize>,
    /// Declared customer variables (slot, name) with their example values.
    pub required: Vec<(usize, String, String)>,
    /// Optional variables with their defaults.
    pub optional: Vec<(usize, String, String)>,
    /// `entity.<kind>` slots.
    pub entity_slots: Vec<(String, usize)>,
    pub last_text: Option<usize>,
    pub last_intent: Option<usize>,
    pub last_dtmf: Option<usize>,
    pub globals: Vec<(String, CHandler)>,
    pub anger: Option<CHandler>,
    pub dnc: CHandler,
    pub identity: Template,
    pub no_input: CRetry,
    pub no_match: CRetry,
    pub max_turns: u32,
    pub on_max_turns: Effect,
    pub min_confidence: f32,
    pub intents: Vec<IntentDef>,
    pub transfer: Option<TransferTarget>,
    /// The message to leave on an answering machine (None: hang up).
    pub voicemail: Option<VoicemailMessage>,
    /// `knowledge:` — what out-of-script questions are answered from.
    pub knowledge: Option<CKnowledge>,
    pub(crate) state_index: HashMap<String, u32>,
    /// The file the script was loaded from (as named to [`load_str`]).
    pub file: String,
    /// Every style the script names, where it names it (file order). The speech
    /// layer checks them against its style book at load ([`Program::check_styles`]).
    pub styles: Vec<StyleUse>,
}

/// A compiled `knowledge:`. The document of `file` is read by [`load_file`]
/// (relative to the script); [`load_str`] leaves `document` empty.
#[derive(Debug, Clone)]
pub struct CKnowledge {
    /// `file` as written, and where it is written (for errors).
    pub file: Option<(String, Pos)>,
    /// The document's text, once read.
    pub document: Option<String>,
    /// Inline passages: (title, text).
    pub passages: Vec<(String, String)>,
    pub fallback: Template,
    /// Intents that count as out-of-script questions.
    pub on: Vec<String>,
}

/// A compiled `voicemail: {action: leave_message}`.
#[derive(Debug, Clone)]
pub struct VoicemailMessage {
    pub say: Template,
    pub style: Option<String>,
}

/// A style named in a script, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StyleUse {
    pub name: String,
    pub pos: Pos,
    /// Where in the document, as `states.opening.style`.
    pub path: String,
}

impl Program {
    pub fn state_id(&self, name: &str) -> Option<u32> {
        self.state_index.get(name).copied()
    }

    pub fn slot(&self, var: &str) -> Option<usize> {
        self.var_index.get(var).copied()
    }

    /// Every style the script names must be one of `known` (the style book the
    /// calls will speak with): an unknown one is a load-time error with
    /// file:line:column, never a silent fallback to the neutral voice.
    pub fn check_styles(&self, known: &[&str]) -> Result<(), LoadError> {
        let diagnostics: Vec<Diagnostic> = self
            .styles
            .iter()
            .filter(|u| !known.contains(&u.name.as_str()))
            .map(|u| Diagnostic {
                pos: u.pos,
                path: u.path.clone(),
                message: format!(
                    "语音风格 `{}` 不在风格表中 / style `{}` is not in the style book (known: {})",
                    u.name,
                    u.name,
                    known.join(", ")
                ),
            })
            .collect();
        if diagnostics.is_empty() {
            Ok(())
        } else {
            Err(LoadError {
                file: self.file.clone(),
                diagnostics,
            })
        }
    }

    /// The states whose variants a bandit chooses, in file order.
    pub fn bandit_states(&self) -> impl Iterator<Item = (usize, &CState, &CBandit)> {
        self.states
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.bandit.as_ref().map(|b| (i, s, b)))
    }

    /// The rewards of a finished call for each bandit state it entered
    /// (the first entry counts; the variant is the one heard there).
    /// `path`/`path_variants` are the call's (parallel) state path and the
    /// variants played; `outcome`/`level` its final business result.
    pub fn bandit_rewards(
        &self,
        path: &[String],
        path_variants: &[Option<String>],
        outcome: Option<&str>,
        level: Option<&str>,
    ) -> Vec<BanditReward> {
        let mut out = Vec::new();
        for (_, st, b) in self.bandit_states() {
            let Some(at) = path.iter().position(|p| p == &st.name) else {
                continue;
            };
            let Some(Some(variant)) = path_variants.get(at) else {
                continue;
            };
            let Some(variant_index) = st.variants.iter().position(|v| &v.id == variant) else {
                continue;
            };
            let success = match &b.reward {
                model::Reward::Continued => {
                    at + 1 < path.len() && outcome.is_some_and(|o| o != "hangup")
                }
                model::Reward::Outcome(os) => outcome.is_some_and(|o| os.iter().any(|x| x == o)),
                model::Reward::Level(ls) => {
                    level.is_some_and(|l| ls.iter().any(|x| x.as_str() == l))
                }
            };
            out.push(BanditReward {
                state: st.name.clone(),
                variant: variant.clone(),
                variant_index,
                success,
            });
        }
        out
    }

    /// Every business outcome the script can end a call with.
    pub fn outcomes(&self) -> BTreeSet<String> {
        fn effect(e: &Effect, out: &mut BTreeSet<String>) {
            if let Next::End(o) = &e.next {
                out.insert(o.clone());
            }
            actions(&e.actions, out);
        }
        fn actions(a: &[CAction], out: &mut BTreeSet<String>) {
            for a in a {
                match a {
                    CAction::Outcome(o) => {
                        out.insert(o.clone());
                    }
                    CAction::Transfer(_) => {
                        out.insert("transferred".into());
                    }
                    CAction::Dnc => {
                        out.insert("do_not_call".into());
                    }
                    _ => {}
                }
            }
        }
        fn handler(h: &CHandler, out: &mut BTreeSet<String>) {
            effect(&h.effect, out);
            if let Some(e) = &h.escalate {
                effect(e, out);
            }
        }
        let mut out = BTreeSet::new();
        // Hung up before the script set one.
        out.insert("hangup".to_string());
        for st in &self.states {
            if let Some(e) = &st.end {
                out.insert(e.clone());
            }
            actions(&st.enter, &mut out);
            st.rules.iter().for_each(|r| effect(&r.effect, &mut out));
            st.handlers.iter().for_each(|(_, h)| handler(h, &mut out));
            for r in [&st.no_input, &st.no_match].into_iter().flatten() {
                effect(&r.then, &mut out);
            }
            if let Some(e) = &st.on_max_turns {
                effect(e, &mut out);
            }
        }
        self.globals.iter().for_each(|(_, h)| handler(h, &mut out));
        if let Some(h) = &self.anger {
            handler(h, &mut out);
        }
        handler(&self.dnc, &mut out);
        effect(&self.no_input.then, &mut out);
        effect(&self.no_match.then, &mut out);
        effect(&self.on_max_turns, &mut out);
        out
    }

    /// Number of transitions (rules, handlers, retries) for reporting.
    pub fn transition_count(&self) -> usize {
        self.states
            .iter()
            .map(|s| {
                s.rules.len()
                    + s.handlers.len()
                    + usize::from(s.no_input.is_some())
                    + usize::from(s.no_match.is_some())
                    + usize::from(s.on_max_turns.is_some())
            })
            .sum::<usize>()
            + self.globals.len()
    }
}

/// Load and validate a script file.
pub fn load_file(path: &Path) -> Result<Program, LoadError> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| LoadError {
        file: file.clone(),
        diagnostics: vec![Diagnostic {
            pos: Pos { line: 1, col: 1 },
            path: String::new(),
            message: e.to_string(),
        }],
    })?;
    let mut prog = load_str(&src, &file)?;
    if let Some(kn) = prog.knowledge.as_mut() {
        if let Some((name, pos)) = &kn.file {
            let doc = path.parent().unwrap_or(Path::new(".")).join(name);
            let fail = |message: String| LoadError {
                file: file.clone(),
                diagnostics: vec![Diagnostic {
                    pos: *pos,
                    path: "knowledge.file".into(),
                    message,
                }],
            };
            let text = std::fs::read_to_string(&doc).map_err(|e| {
                fail(format!(
                    "读不了知识库文件 / cannot read the knowledge file {}: {e}",
                    doc.display()
                ))
            })?;
            if text.trim().is_empty() {
                return Err(fail(format!(
                    "知识库文件是空的 / the knowledge file {} is empty",
                    doc.display()
                )));
            }
            if text
                .lines()
                .map(str::trim)
                .all(|l| l.is_empty() || l.starts_with('#'))
            {
                return Err(fail(format!(
                    "知识库文件只有标题 / the knowledge file {} has headings but no text under them",
                    doc.display()
                )));
            }
            kn.document = Some(text);
        }
    }
    Ok(prog)
}

/// Parse any YAML document into `T`, with positioned errors. Also returns the
/// tree, for locating later (semantic) errors.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    src: &str,
    file: &str,
) -> Result<(T, Node), LoadError> {
    let fail = |diagnostics| LoadError {
        file: file.to_string(),
        diagnostics,
    };
    let root = yaml::parse(src).map_err(|e| {
        fail(vec![Diagnostic {
            pos: e.pos,
            path: String::new(),
            message: format!("YAML 语法错误 / YAML syntax: {}", e.message),
        }])
    })?;
    let json = root.to_json();
    let value: T = serde_path_to_error::deserialize(json).map_err(|e| {
        let mut segs = yaml::segs_from_serde(e.path());
        let message = e.inner().to_string();
        // Point "unknown field `x`" at the key itself.
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|m| m.split('`').next())
        {
            if segs.last() == Some(&Seg::Key(field.to_string())) {
                segs.pop();
            }
            segs.push(Seg::KeyName(field.to_string()));
        }
        let zh = if message.starts_with("unknown field") {
            "未知字段（拼写错误？）"
        } else if message.starts_with("missing field") {
            "缺少必填字段"
        } else if message.starts_with("unknown variant") {
            "取值不在允许范围内"
        } else {
            "字段类型不对"
        };
        fail(vec![Diagnostic {
            pos: root.locate(&segs),
            path: path_string(&segs),
            message: format!("{zh} / {message}"),
        }])
    })?;
    Ok((value, root))
}

/// Load and validate a script from text; `file` names it in errors.
pub fn load_str(src: &str, file: &str) -> Result<Program, LoadError> {
    let (script, root): (Script, Node) = parse_yaml(src, file)?;
    let mut prog = compile(&script, &root).map_err(|diagnostics| LoadError {
        file: file.to_string(),
        diagnostics,
    })?;
    prog.file = file.to_string();
    Ok(prog)
}

/// Parse a script without validating it (for tools such as the baseline bench).
pub fn parse_script(src: &str, file: &str) -> Result<Script, LoadError> {
    parse_yaml(src, file).map(|(s, _)| s)
}

struct Cx<'a> {
    script: &'a Script,
    diags: Vec<(Vec<Seg>, String)>,
    /// Styles named, with their paths.
    styles: Vec<(Vec<Seg>, String)>,
    vars: Vec<String>,
    var_index: HashMap<String, usize>,
    defined: BTreeSet<String>,
    state_index: HashMap<String, u32>,
    state_names: Vec<String>,
    intents: BTreeSet<String>,
}

fn p(base: &[Seg], more: &[Seg]) -> Vec<Seg> {
    let mut v = base.to_vec();
    v.extend_from_slice(more);
    v
}

fn k(s: &str) -> Seg {
    Seg::Key(s.to_string())
}

fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Closest name by edit distance, for "did you mean".
fn suggest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                cur.push(
                    (prev[j] + usize::from(ca != *cb))
                        .min(prev[j + 1] + 1)
                        .min(cur[j] + 1),
                );
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .map(|c| (dist(name, c), c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min()
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

impl Cx<'_> {
    /// Record a problem: Chinese first, then English.
    fn err(&mut self, path: Vec<Seg>, zh: impl AsRef<str>, en: impl AsRef<str>) {
        self.diags
            .push((path, format!("{} / {}", zh.as_ref(), en.as_ref())));
    }

    fn slot(&mut self, name: &str) -> usize {
        if let Some(&s) = self.var_index.get(name) {
            return s;
        }
        let s = self.vars.len();
        self.vars.push(name.to_string());
        self.var_index.insert(name.to_string(), s);
        s
    }

    fn var_known(&self, name: &str) -> bool {
        self.defined.contains(name)
            || name.starts_with("entity.")
            || matches!(name, "last.text" | "last.intent" | "last.dtmf")
            || RUNTIME_VARS.contains(&name)
    }

    fn template(&mut self, path: Vec<Seg>, src: &str) -> Template {
        match template::parse(src) {
            Ok(raw) => {
                for part in &raw {
                    if let RawPart::Var(v) = part {
                        if !self.var_known(v) {
                            let hint = suggest(v, self.defined.iter().map(String::as_str));
                            self.err(
                                path.clone(),
                                format!("模板引用的变量 `{v}` 没有提供"), format!("template uses `{{{{{v}}}}}` but no variable `{v}` is provided: declare it under `variables` (or `optional`), or `set` it{hint}"),
                            );
                        }
                    }
                }
                Template::from_raw(&raw, |v| self.slot(v))
            }
            Err(e) => {
                self.err(
                    path,
                    format!("模板无法渲染：第 {} 个字符", e.offset + 1),
                    format!(
                        "template does not render: {} (at character {})",
                        e.message,
                        e.offset + 1
                    ),
                );
                Template::default()
            }
        }
    }

    fn cond(&mut self, path: Vec<Seg>, src: &str) -> Option<Expr<usize>> {
        match cond::parse(src) {
            Ok(e) => {
                let mut names = Vec::new();
                e.vars(&mut names);
                for v in &names {
                    if !self.var_known(v) {
                        let hint = suggest(v, self.defined.iter().map(String::as_str));
                        self.err(
                            path.clone(),
                            format!("条件引用的变量 `{v}` 没有提供"),
                            format!("condition reads `{v}` but no such variable is provided{hint}"),
                        );
                    }
                }
                Some(e.map(&mut |v: String| self.slot(&v)))
            }
            Err(e) => {
                self.err(
                    path,
                    format!("条件写法有误：第 {} 个字符", e.offset + 1),
                    format!(
                        "bad condition: {} (at character {})",
                        e.message,
                        e.offset + 1
                    ),
                );
                None
            }
        }
    }

    fn style(&mut self, path: Vec<Seg>, s: &Option<String>) -> Option<String> {
        let s = s.as_ref()?;
        self.styles.push((path.clone(), s.clone()));
        if !STYLES.contains(&s.as_str()) {
            self.err(
                path,
                format!("未知的语音风格 `{s}`"),
                format!("unknown style `{s}`; use one of {}", STYLES.join(", ")),
            );
        }
        Some(s.clone())
    }

    fn intent(&mut self, path: Vec<Seg>, name: &str) {
        if !self.intents.contains(name) {
            let hint = suggest(name, self.intents.iter().map(String::as_str));
            self.err(
                path,
                format!("未知意图 `{name}`"),
                format!(
                    "unknown intent `{name}`: not built in and not defined under `intents`{hint}"
                ),
            );
        }
    }

    fn target(&mut self, path: Vec<Seg>, name: &str) -> Option<u32> {
        match self.state_index.get(name) {
            Some(&i) => Some(i),
            None => {
                let hint = suggest(name, self.state_names.iter().map(String::as_str));
                self.err(
                    path,
                    format!("目标状态 `{name}` 不存在"),
                    format!("unknown state `{name}`{hint}"),
                );
                None
            }
        }
    }

    fn dtmf(&mut self, path: Vec<Seg>, d: &str) {
        if d.is_empty()
            || !d
                .chars()
                .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
        {
            self.err(
                path,
                format!("按键 `{d}` 只能是 0-9、* 或 #"),
                format!("DTMF `{d}` must be digits 0-9, * or #"),
            );
        }
    }

    fn action(&mut self, path: Vec<Seg>, a: &model::Action) -> CAction {
        match a {
            model::Action::Set(map) => {
                let mut out = Vec::new();
                for (var, v) in map {
                    let vp = p(&path, &[k("set"), k(var)]);
                    let Some(text) = scalar_text(v) else {
                        self.err(
                            vp,
                            "变量的值必须是文字或数字",
                            "a value to set must be text or a number",
                        );
                        continue;
                    };
                    if template::parse(&format!("{{{{{var}}}}}")).is_err() {
                        self.err(
                            vp.clone(),
                            format!("`{var}` 不是合法的变量名"),
                            format!("`{var}` is not a variable name"),
                        );
                    }
                    let t = self.template(vp, &text);
                    out.push((self.slot(var), t));
                }
                CAction::Set(out)
            }
            model::Action::Outcome(o) => CAction::Outcome(o.clone()),
            model::Action::Level(l) => CAction::Level(*l),
            model::Action::Callback(c) => {
                let at =
                    c.at.as_ref()
                        .map(|t| self.template(p(&path, &[k("callback"), k("at")]), t));
                let in_hours = c.in_hours.unwrap_or(24.0);
                if !(0.0..=24.0 * 366.0).contains(&in_hours) {
                    self.err(
                        p(&path, &[k("callback"), k("in_hours")]),
                        "in_hours 必须在 0 到 8784 之间",
                        "in_hours must be between 0 and 8784",
                    );
                }
                CAction::Callback { at, in_hours }
            }
            model::Action::Sms(t) => {
                if t.trim().is_empty() {
                    self.err(
                        p(&path, &[k("sms")]),
                        "短信模板名为空",
                        "SMS template name is empty",
                    );
                }
                CAction::Sms(t.clone())
            }
            model::Action::Transfer(t) => {
                let target = if t.queue.is_none() && t.number.is_none() {
                    match &self.script.transfer {
                        Some(d) => d.clone(),
                        None => {
                            self.err(
                                p(&path, &[k("transfer")]),
                                "转接没有指定队列或号码，脚本也没有默认转接目标", "transfer has no `queue` or `number` and the script has no default `transfer`",
                            );
                            TransferTarget::default()
                        }
                    }
                } else {
                    t.clone()
                };
                CAction::Transfer(target)
            }
            model::Action::Dnc => CAction::Dnc,
        }
    }

    fn actions(&mut self, path: &[Seg], list: &[model::Action]) -> Vec<CAction> {
        list.iter()
            .enumerate()
            .map(|(i, a)| self.action(p(path, &[Seg::Index(i)]), a))
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn effect(
        &mut self,
        path: &[Seg],
        say: &Option<String>,
        style: &Option<String>,
        actions: &[model::Action],
        goto: &Option<String>,
        end: &Option<String>,
        do_key: &str,
    ) -> Effect {
        let say = say.as_ref().map(|s| self.template(p(path, &[k("say")]), s));
        let style = self.style(p(path, &[k("style")]), style);
        let actions = self.actions(&p(path, &[k(do_key)]), actions);
        let next = match (goto, end) {
            (Some(_), Some(_)) => {
                self.err(
                    p(path, &[k("end")]),
                    "`goto` 和 `end` 只能二选一",
                    "use either `goto` or `end`, not both",
                );
                Next::Stay
            }
            (Some(g), None) => self
                .target(p(path, &[k("goto")]), g)
                .map(Next::Goto)
                .unwrap_or(Next::Stay),
            (None, Some(e)) => {
                if e.trim().is_empty() {
                    self.err(
                        p(path, &[k("end")]),
                        "结果（outcome）为空",
                        "outcome is empty",
                    );
                }
                Next::End(e.clone())
            }
            (None, None) => {
                // A transfer hands the call over: the bot's part ends.
                if actions.iter().any(|a| matches!(a, CAction::Transfer(_))) {
                    Next::End("transferred".into())
                } else if actions.iter().any(|a| matches!(a, CAction::Dnc)) {
                    Next::End("do_not_call".into())
                } else {
                    Next::Stay
                }
            }
        };
        Effect {
            say,
            style,
            actions,
            next,
        }
    }

    fn rule_effect(&mut self, path: &[Seg], r: &Rule) -> Effect {
        self.effect(path, &r.say, &r.style, &r.actions, &r.goto, &r.end, "do")
    }

    /// A rule used where matchers make no sense (`then`, `on_max_turns`, `escalate`).
    fn plain_effect(&mut self, path: &[Seg], r: &Rule) -> Effect {
        if r.has_matcher() {
            self.err(path.to_vec(), "这里是动作，不能写匹配条件", "intent/entity/emotion/dtmf/when are not allowed here; this is an action, not a transition");
        }
        self.rule_effect(path, r)
    }

    fn rule(&mut self, path: &[Seg], r: &Rule) -> CRule {
        let intents = r.intent.as_ref().map(|i| i.to_vec()).unwrap_or_default();
        for (i, name) in intents.iter().enumerate() {
            let ip = if matches!(r.intent, Some(model::OneOrMany::Many(_))) {
                p(path, &[k("intent"), Seg::Index(i)])
            } else {
                p(path, &[k("intent")])
            };
            self.intent(ip.clone(), name);
            if name == "do_not_call" {
                self.err(ip, "免打扰（do_not_call）始终由全局处理，状态不能覆盖", "`do_not_call` is always handled globally (confirm, add to the do-not-call list, end); a state cannot override it");
            }
        }
        let emotion = r.emotion.as_ref().map(|e| match e.as_str() {
            "angry" => EmotionMatch::Label(waihu_core::EmotionLabel::Angry),
            "anxious" => EmotionMatch::Label(waihu_core::EmotionLabel::Anxious),
            "calm" => EmotionMatch::Label(waihu_core::EmotionLabel::Calm),
            "happy" => EmotionMatch::Label(waihu_core::EmotionLabel::Happy),
            "positive" => EmotionMatch::Positive,
            _ => {
                if e != "negative" {
                    self.err(
                        p(path, &[k("emotion")]),
                        format!("未知情绪 `{e}`"),
                        format!("unknown emotion `{e}`; use one of {}", EMOTIONS.join(", ")),
                    );
                }
                EmotionMatch::Negative
            }
        });
        if let Some(d) = &r.dtmf {
            self.dtmf(p(path, &[k("dtmf")]), d);
        }
        let when = r
            .when
            .as_ref()
            .and_then(|w| self.cond(p(path, &[k("when")]), w));
        let effect = self.rule_effect(path, r);
        CRule {
            intents,
            entity: r.entity.clone(),
            emotion,
            dtmf: r.dtmf.clone(),
            when,
            effect,
        }
    }

    fn handler(&mut self, path: &[Seg], name: &str, h: &model::Handler) -> CHandler {
        let effect = self.effect(path, &h.say, &h.style, &h.actions, &h.goto, &h.end, "do");
        let escalate = h
            .escalate
            .as_ref()
            .map(|r| self.plain_effect(&p(path, &[k("escalate")]), r));
        if name != ANGER && (h.escalate_after.is_some() || h.escalate.is_some()) {
            self.err(
                p(path, &[k("escalate_after")]),
                "`escalate_after`/`escalate` 只能用于 `anger` 处理器",
                "`escalate_after`/`escalate` apply only to the `anger` handler",
            );
        }
        if name == ANGER && h.escalate_after.is_some() != h.escalate.is_some() {
            self.err(
                path.to_vec(),
                "`escalate_after` 和 `escalate` 要同时给出",
                "give both `escalate_after` and `escalate`, or neither",
            );
        }
        if h.escalate_after == Some(0) {
            self.err(
                p(path, &[k("escalate_after")]),
                "escalate_after 至少为 1",
                "escalate_after must be at least 1",
            );
        }
        if name != ANGER {
            self.intent(
                p(&path[..path.len() - 1], &[Seg::KeyName(name.to_string())]),
                name,
            );
        }
        CHandler {
            effect,
            escalate_after: h.escalate_after,
            escalate,
        }
    }

    fn retry(&mut self, path: &[Seg], r: &model::Retry, default_then: Effect) -> CRetry {
        let say = r
            .say
            .as_ref()
            .map(|s| self.template(p(path, &[k("say")]), s));
        let then = match &r.then {
            Some(t) => self.plain_effect(&p(path, &[k("then")]), t),
            None => default_then,
        };
        CRetry {
            reprompt: r.reprompt.unwrap_or(DEFAULT_REPROMPT),
            say,
            then,
        }
    }
}

fn collect_sets(actions: &[model::Action], out: &mut BTreeSet<String>) {
    for a in actions {
        if let model::Action::Set(m) = a {
            out.extend(m.keys().cloned());
        }
    }
}

fn collect_rule_sets(r: &Rule, out: &mut BTreeSet<String>) {
    collect_sets(&r.actions, out);
}

fn collect_handler_sets(h: &model::Handler, out: &mut BTreeSet<String>) {
    collect_sets(&h.actions, out);
    if let Some(e) = &h.escalate {
        collect_rule_sets(e, out);
    }
}

fn collect_retry_sets(r: &Option<model::Retry>, out: &mut BTreeSet<String>) {
    if let Some(t) = r.as_ref().and_then(|r| r.then.as_ref()) {
        collect_rule_sets(t, out);
    }
}

fn ends(e: &Effect) -> bool {
    matches!(e.next, Next::End(_))
}

fn edge(e: &Effect) -> Option<u32> {
    match e.next {
        Next::Goto(t) => Some(t),
        _ => None,
    }
}

/// What the metadata section settles for the rest of the compilation.
struct Metadata {
    voicemail: Option<VoicemailMessage>,
    style: String,
    required: Vec<(usize, String, String)>,
    optional: Vec<(usize, String, String)>,
    start: u32,
    identity: Template,
}

/// Script-wide handlers, with the built-in defaults filled in.
struct Globals {
    globals: Vec<(String, CHandler)>,
    anger: CHandler,
    dnc: CHandler,
}

/// Script-wide answers to silence, to words that match nothing and to a call that runs too long.
struct Retries {
    no_input: CRetry,
    no_match: CRetry,
    on_max_turns: Effect,
}

/// What a state falls back to when it does not say otherwise.
struct StateDefaults {
    no_input_then: Effect,
    no_match_then: Effect,
    no_input_ms: u32,
    max_speech_ms: u32,
}

/// A fixed prompt without variables (the built-in texts).
fn lit(s: &str) -> Option<Template> {
    Some(Template::from_raw(&[RawPart::Lit(s.to_string())], |_| 0))
}

fn compile(script: &Script, root: &Node) -> Result<Program, Vec<Diagnostic>> {
    let texts = lang::texts(script.language);
    let mut cx = compile_names(script, root);
    let meta = compile_metadata(&mut cx, root, texts);
    let globals = compile_globals(&mut cx, texts, &meta.identity);
    let (retries, defaults) = compile_retries(&mut cx, texts);
    let states = compile_states(&mut cx, &defaults);

    // Graph checks (only when names resolved, or they only repeat errors).
    if cx.diags.is_empty() && !states.is_empty() {
        graph_checks(
            &mut cx,
            &states,
            meta.start,
            &globals.globals,
            &globals.anger,
            &retries.no_input,
            &retries.no_match,
            &retries.on_max_turns,
        );
    }

    let knowledge = compile_knowledge(&mut cx, root);
    let mut program = assemble_program(&cx, script, meta, globals, retries, states);
    program.knowledge = knowledge;
    if cx.diags.is_empty() {
        bandit_outcome_checks(&mut cx, &program);
    }
    program.styles = cx
        .styles
        .iter()
        .map(|(path, name)| StyleUse {
            name: name.clone(),
            pos: root.locate(path),
            path: path_string(path),
        })
        .collect();
    program.styles.sort_by_key(|u| u.pos);
    if cx.diags.is_empty() {
        test_render(&mut cx, &program);
    }
    if !cx.diags.is_empty() {
        return Err(diagnostics(&cx, root));
    }
    Ok(program)
}

/// A bandit rewarding outcomes the script never ends with would never learn.
fn bandit_outcome_checks(cx: &mut Cx, program: &Program) {
    let known = program.outcomes();
    for (_, st, b) in program.bandit_states() {
        let model::Reward::Outcome(os) = &b.reward else {
            continue;
        };
        for (i, o) in os.iter().enumerate() {
            if !known.contains(o) {
                let all = known.iter().cloned().collect::<Vec<_>>().join(", ");
                cx.err(
                    vec![
                        k("states"),
                        k(&st.name),
                        k("bandit"),
                        k("reward"),
                        k("outcome"),
                        Seg::Index(i),
                    ],
                    format!("脚本没有结果 `{o}`（已有：{all}）"),
                    format!("the script never ends with outcome `{o}` (it has: {all})"),
                );
            }
        }
    }
}

/// Names every later section resolves against: states in file order, the variables the
/// script defines anywhere (so a template may use a variable a later state sets) and
/// the intents.
fn compile_names<'a>(script: &'a Script, root: &Node) -> Cx<'a> {
    // File order of states (serde's map is sorted).
    let mut state_names: Vec<String> = root
        .get("states")
        .map(|n| n.keys().into_iter().map(String::from).collect())
        .unwrap_or_default();
    if state_names.len() != script.states.len() {
        state_names = script.states.keys().cloned().collect();
    }
    let state_index: HashMap<String, u32> = state_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i as u32))
        .collect();

    let mut defined: BTreeSet<String> = script.variables.keys().cloned().collect();
    defined.extend(script.optional.keys().cloned());
    for st in script.states.values() {
        collect_sets(&st.enter, &mut defined);
        st.on
            .iter()
            .for_each(|r| collect_rule_sets(r, &mut defined));
        st.handlers
            .values()
            .for_each(|h| collect_handler_sets(h, &mut defined));
        collect_retry_sets(&st.no_input, &mut defined);
        collect_retry_sets(&st.no_match, &mut defined);
        if let Some(r) = &st.on_max_turns {
            collect_rule_sets(r, &mut defined);
        }
    }
    script
        .globals
        .values()
        .for_each(|h| collect_handler_sets(h, &mut defined));
    collect_retry_sets(&script.no_input, &mut defined);
    collect_retry_sets(&script.no_match, &mut defined);
    if let Some(r) = &script.on_max_turns {
        collect_rule_sets(r, &mut defined);
    }

    let mut intents: BTreeSet<String> = BUILTIN_INTENTS.iter().map(|s| s.to_string()).collect();
    intents.extend(script.intents.keys().cloned());

    Cx {
        script,
        diags: Vec::new(),
        styles: Vec::new(),
        vars: Vec::new(),
        var_index: HashMap::new(),
        defined,
        state_index,
        state_names,
        intents,
    }
}

/// Metadata: name, style, variables, custom intents, transfer, limits, start, identity.
fn compile_metadata(cx: &mut Cx, root: &Node, texts: &lang::Texts) -> Metadata {
    let script = cx.script;
    if script.name.trim().is_empty() {
        cx.err(vec![k("name")], "脚本名称为空", "script name is empty");
    }
    let style = cx
        .style(vec![k("style")], &script.style)
        .unwrap_or_else(|| "neutral".into());
    let mut required = Vec::new();
    for (name, example) in &script.variables {
        let vp = vec![k("variables"), Seg::KeyName(name.clone())];
        if template::parse(&format!("{{{{{name}}}}}")).is_err() {
            cx.err(
                vp.clone(),
                format!("`{name}` 不是合法的变量名"),
                format!("`{name}` is not a variable name"),
            );
        }
        match root.written(&[k("variables"), k(name)], example) {
            Some(t) => {
                let s = cx.slot(name);
                required.push((s, name.clone(), t));
            }
            None => cx.err(
                vec![k("variables"), k(name)],
                format!("请给变量 `{name}` 一个示例值"), format!("give `{name}` an example value (text or number): prompts are test-rendered with it"),
            ),
        }
    }
    let mut optional = Vec::new();
    for (name, default) in &script.optional {
        if script.variables.contains_key(name) {
            cx.err(
                vec![k("optional"), Seg::KeyName(name.clone())],
                format!("`{name}` 不能既是必需变量又是可选变量"),
                format!("`{name}` is both required and optional"),
            );
        }
        let s = cx.slot(name);
        optional.push((
            s,
            name.clone(),
            root.written(&[k("optional"), k(name)], default)
                .unwrap_or_default(),
        ));
    }
    for (name, def) in &script.intents {
        let ip = vec![k("intents"), Seg::KeyName(name.clone())];
        if BUILTIN_INTENTS.contains(&name.as_str()) {
            cx.err(
                ip.clone(),
                format!("`{name}` 是内置意图，自定义意图请换个名字"),
                format!("`{name}` is a built-in intent; give a custom intent another name"),
            );
        }
        if def.examples.iter().all(|e| e.trim().is_empty()) {
            cx.err(
                ip,
                format!("意图 `{name}` 没有例句"),
                format!("intent `{name}` has no examples: the NLU cannot learn it"),
            );
        }
    }
    if let Some(t) = &script.transfer {
        if t.queue.is_none() && t.number.is_none() {
            cx.err(
                vec![k("transfer")],
                "转接需要队列（queue）或号码（number）",
                "transfer needs a `queue` or a `number`",
            );
        }
    }
    if let Some(c) = script.min_confidence {
        if !(0.0..=1.0).contains(&c) {
            cx.err(
                vec![k("min_confidence")],
                "min_confidence 必须在 0 到 1 之间",
                "min_confidence must be between 0 and 1",
            );
        }
    }
    if script.max_turns == Some(0) {
        cx.err(
            vec![k("max_turns")],
            "max_turns 至少为 1",
            "max_turns must be at least 1",
        );
    }
    if script.states.is_empty() {
        cx.err(
            vec![k("states")],
            "脚本至少需要一个状态",
            "a script needs at least one state",
        );
    }
    let start = match &script.start {
        Some(s) => cx.target(vec![k("start")], s).unwrap_or(0),
        None => 0,
    };
    let identity_src = script
        .identity
        .clone()
        .unwrap_or_else(|| texts.identity.to_string());
    let identity = cx.template(vec![k("identity")], &identity_src);
    let voicemail = compile_voicemail(cx);
    Metadata {
        voicemail,
        style,
        required,
        optional,
        start,
        identity,
    }
}

/// `voicemail:`: `leave_message` needs the words to say, `hang_up` takes none.
fn compile_voicemail(cx: &mut Cx) -> Option<VoicemailMessage> {
    let rule = cx.script.voicemail.clone()?;
    let style = cx.style(vec![k("voicemail"), k("style")], &rule.style);
    match (rule.action, &rule.say) {
        (VoicemailAction::LeaveMessage, Some(say)) if !say.trim().is_empty() => {
            let say = cx.template(vec![k("voicemail"), k("say")], say);
            Some(VoicemailMessage { say, style })
        }
        (VoicemailAction::LeaveMessage, _) => {
            cx.err(
                vec![k("voicemail"), k("action")],
                "留言（leave_message）需要 `say`：提示音后要说的话",
                "`leave_message` needs `say`: the message to leave after the beep",
            );
            None
        }
        (VoicemailAction::HangUp, Some(_)) => {
            cx.err(
                vec![k("voicemail"), k("say")],
                "挂断（hang_up）时不会留言：去掉 `say`，或改用 leave_message",
                "`hang_up` leaves no message: remove `say`, or use `action: leave_message`",
            );
            None
        }
        (VoicemailAction::HangUp, None) => None,
    }
}

fn compile_knowledge(cx: &mut Cx, root: &Node) -> Option<CKnowledge> {
    let kn = cx.script.knowledge.clone()?;
    let base = vec![k("knowledge")];
    match (&kn.file, kn.passages.is_empty()) {
        (None, true) => cx.err(
            base.clone(),
            "知识库需要 `file`（文档）或 `passages`（段落）",
            "`knowledge` needs a `file` (a document) or `passages`",
        ),
        (Some(_), false) => cx.err(
            p(&base, &[k("passages")]),
            "`file` 和 `passages` 只能二选一",
            "give either `file` or `passages`, not both",
        ),
        (Some(f), true) if f.trim().is_empty() => cx.err(
            p(&base, &[k("file")]),
            "`file` 不能为空",
            "`file` is empty: name a Markdown document (relative to the script)",
        ),
        _ => {}
    }
    for (i, ps) in kn.passages.iter().enumerate() {
        if ps.text.trim().is_empty() {
            cx.err(
                p(&base, &[k("passages"), Seg::Index(i), k("text")]),
                "段落内容为空",
                "passage text is empty",
            );
        }
    }
    let known: BTreeSet<String> = BUILTIN_INTENTS
        .iter()
        .map(|s| s.to_string())
        .chain(cx.intents.iter().cloned())
        .chain(["unknown".to_string()])
        .collect();
    for (i, intent) in kn.on.iter().enumerate() {
        if !known.contains(intent) {
            let hint = suggest(intent, known.iter().map(String::as_str));
            cx.err(
                p(&base, &[k("on"), Seg::Index(i)]),
                format!("未知意图 `{intent}`"),
                format!("unknown intent `{intent}`{hint}"),
            );
        }
    }
    let fallback_src = kn.fallback.clone().unwrap_or_else(|| {
        match cx.script.language {
            Language::Zh => "这个问题我需要跟同事确认一下，稍后再回复您。",
            Language::En => "I need to check that with a colleague and get back to you.",
        }
        .to_string()
    });
    let fallback = cx.template(p(&base, &[k("fallback")]), &fallback_src);
    let file_path = p(&base, &[k("file")]);
    Some(CKnowledge {
        file: kn.file.clone().map(|f| (f, root.locate(&file_path))),
        document: None,
        passages: kn
            .passages
            .iter()
            .map(|ps| (ps.title.clone().unwrap_or_default(), ps.text.clone()))
            .collect(),
        fallback,
        on: if kn.on.is_empty() {
            vec!["ask_info".into(), "unknown".into()]
        } else {
            kn.on.clone()
        },
    })
}

/// Global handlers, with built-in defaults for the well-known ones.
fn compile_globals(cx: &mut Cx, texts: &lang::Texts, identity: &Template) -> Globals {
    let script = cx.script;
    let mut globals: Vec<(String, CHandler)> = Vec::new();
    let mut anger = None;
    let mut dnc = CHandler {
        effect: Effect {
            say: Some(Template::from_raw(&[RawPart::Lit(texts.dnc.into())], |_| 0)),
            style: None,
            actions: vec![CAction::Dnc],
            next: Next::End("do_not_call".into()),
        },
        escalate_after: None,
        escalate: None,
    };
    for (name, h) in &script.globals {
        let hp = vec![k("globals"), k(name)];
        if name == "do_not_call" {
            if h.goto.is_some() || h.end.is_some() || !h.actions.is_empty() || h.escalate.is_some()
            {
                cx.err(hp.clone(), "免打扰（do_not_call）只能修改话术，不能改变行为", "`do_not_call` may only change what is said (`say`, `style`): it always adds the number to the do-not-call list and ends the call");
            }
            if let Some(s) = &h.say {
                dnc.effect.say = Some(cx.template(p(&hp, &[k("say")]), s));
            }
            dnc.effect.style = cx.style(p(&hp, &[k("style")]), &h.style);
            continue;
        }
        let c = cx.handler(&hp, name, h);
        if name == ANGER {
            anger = Some(c);
        } else {
            globals.push((name.clone(), c));
        }
    }
    let default_transfer = script.transfer.clone().unwrap_or(TransferTarget {
        queue: Some("default".into()),
        number: None,
    });
    let defaults: [(&str, Effect); 5] = [
        (
            "request_human",
            Effect {
                say: lit(texts.human),
                style: None,
                actions: vec![CAction::Transfer(default_transfer.clone())],
                next: Next::End("transferred".into()),
            },
        ),
        (
            "repeat",
            Effect {
                say: None,
                style: None,
                actions: vec![],
                next: Next::Stay,
            },
        ),
        (
            "ask_identity",
            Effect {
                say: Some(identity.clone()),
                style: None,
                actions: vec![],
                next: Next::Stay,
            },
        ),
        (
            "complaint",
            Effect {
                say: lit(texts.complaint),
                style: Some("apologetic".into()),
                actions: vec![
                    CAction::Outcome("complaint".into()),
                    CAction::Transfer(TransferTarget {
                        queue: Some("complaint".into()),
                        number: None,
                    }),
                ],
                next: Next::End("complaint".into()),
            },
        ),
        (
            "wrong_number",
            Effect {
                say: lit(texts.wrong_number),
                style: None,
                actions: vec![],
                next: Next::End("wrong_number".into()),
            },
        ),
    ];
    for (name, effect) in defaults {
        if !globals.iter().any(|(n, _)| n == name) {
            globals.push((
                name.to_string(),
                CHandler {
                    effect,
                    escalate_after: None,
                    escalate: None,
                },
            ));
        }
    }
    if !globals.iter().any(|(n, _)| n == "busy_callback") {
        globals.push((
            "busy_callback".into(),
            CHandler {
                effect: Effect {
                    say: lit(texts.busy_callback),
                    style: None,
                    actions: vec![CAction::Callback {
                        at: None,
                        in_hours: 24.0,
                    }],
                    next: Next::End("callback".into()),
                },
                escalate_after: None,
                escalate: None,
            },
        ));
    }
    let anger = anger.unwrap_or(CHandler {
        effect: Effect {
            say: lit(texts.anger),
            style: Some("apologetic".into()),
            actions: vec![],
            next: Next::Stay,
        },
        escalate_after: Some(3),
        escalate: Some(Effect {
            say: lit(texts.human),
            style: Some("apologetic".into()),
            actions: vec![CAction::Transfer(default_transfer)],
            next: Next::End("transferred".into()),
        }),
    });
    Globals {
        globals,
        anger,
        dnc,
    }
}

/// No-input and no-match retries and the turn limit, script-wide and as defaults for states.
fn compile_retries(cx: &mut Cx, texts: &lang::Texts) -> (Retries, StateDefaults) {
    let script = cx.script;
    let default_no_input_then = Effect {
        say: lit(texts.goodbye_silent),
        style: None,
        actions: vec![],
        next: Next::End("no_response".into()),
    };
    let default_no_match_then = Effect {
        say: lit(texts.goodbye_not_understood),
        style: None,
        actions: vec![],
        next: Next::End("not_understood".into()),
    };
    let no_input = match &script.no_input {
        Some(r) => cx.retry(&[k("no_input")], r, default_no_input_then.clone()),
        None => CRetry {
            reprompt: DEFAULT_REPROMPT,
            say: lit(texts.no_input),
            then: default_no_input_then.clone(),
        },
    };
    let no_match = match &script.no_match {
        Some(r) => cx.retry(&[k("no_match")], r, default_no_match_then.clone()),
        None => CRetry {
            reprompt: DEFAULT_REPROMPT,
            say: lit(texts.no_match),
            then: default_no_match_then.clone(),
        },
    };
    let on_max_turns = match &script.on_max_turns {
        Some(r) => cx.plain_effect(&[k("on_max_turns")], r),
        None => Effect {
            say: lit(texts.max_turns),
            style: None,
            actions: vec![],
            next: Next::End("max_turns".into()),
        },
    };
    let def_no_input_ms = script.timeouts.no_input_ms.unwrap_or(DEFAULT_NO_INPUT_MS);
    let def_max_speech_ms = script
        .timeouts
        .max_speech_ms
        .unwrap_or(DEFAULT_MAX_SPEECH_MS);
    (
        Retries {
            no_input,
            no_match,
            on_max_turns,
        },
        StateDefaults {
            no_input_then: default_no_input_then,
            no_match_then: default_no_match_then,
            no_input_ms: def_no_input_ms,
            max_speech_ms: def_max_speech_ms,
        },
    )
}

/// States, in file order.
fn compile_states(cx: &mut Cx, defaults: &StateDefaults) -> Vec<CState> {
    let script = cx.script;
    let state_names = cx.state_names.clone();
    let mut states = Vec::with_capacity(state_names.len());
    for name in &state_names {
        let Some(st) = script.states.get(name) else {
            continue;
        };
        states.push(compile_state(cx, name, st, defaults));
    }
    states
}

/// A state that expects a yes or a no asks a yes/no question; one that lists
/// several other intents offers a choice; anything else is open.
fn infer_question(e: &model::Expect) -> waihu_core::QuestionKind {
    use waihu_core::QuestionKind;
    if e.intents.iter().any(|i| i == "affirm" || i == "deny") {
        QuestionKind::YesNo
    } else if e.intents.len() >= 2 {
        QuestionKind::Choice
    } else {
        QuestionKind::Open
    }
}

fn compile_state(cx: &mut Cx, name: &str, st: &model::State, defaults: &StateDefaults) -> CState {
    let sp = vec![k("states"), k(name)];
    let variants = state_prompt(cx, &sp, st);
    let router = variants.is_empty();
    let bandit = st
        .bandit
        .as_ref()
        .and_then(|b| state_bandit(cx, &sp, b, variants.len()));
    let style = cx.style(p(&sp, &[k("style")]), &st.style);
    for (i, intent) in st.expect.intents.iter().enumerate() {
        cx.intent(p(&sp, &[k("expect"), k("intents"), Seg::Index(i)]), intent);
    }
    if let Some(d) = &st.expect.dtmf {
        cx.dtmf(p(&sp, &[k("expect"), k("dtmf")]), d);
    }
    let enter = cx.actions(&p(&sp, &[k("enter")]), &st.enter);
    let (rules, catch_all_at) = state_rules(cx, &sp, st, router);
    if router && st.end.is_none() && catch_all_at.is_none() {
        cx.err(
            p(&sp, &[Seg::KeyName("on".into())]),
            "没有话术的路由状态需要一条无条件的兜底跳转", "a state without a prompt needs a last transition without conditions, or the call could get stuck",
        );
    }
    if st.end.is_some() && !st.on.is_empty() {
        cx.err(
            p(&sp, &[k("end")]),
            "结束状态播完话术就挂机，`on` 里的跳转不会执行",
            "a state with `end` hangs up after its prompt; its `on` transitions would never run",
        );
    }
    if let Some(e) = &st.end {
        if e.trim().is_empty() {
            cx.err(
                p(&sp, &[k("end")]),
                "结果（outcome）为空",
                "outcome is empty",
            );
        }
    }
    let mut handlers = Vec::new();
    for (hname, h) in &st.handlers {
        let hp = p(&sp, &[k("handlers"), k(hname)]);
        if hname == "do_not_call" {
            cx.err(
                hp.clone(),
                "免打扰（do_not_call）不能在状态里覆盖",
                "`do_not_call` cannot be overridden per state",
            );
            continue;
        }
        handlers.push((hname.clone(), cx.handler(&hp, hname, h)));
    }
    for (i, d) in st.disable.iter().enumerate() {
        let dp = p(&sp, &[k("disable"), Seg::Index(i)]);
        if d == "do_not_call" {
            cx.err(
                dp,
                "免打扰（do_not_call）不能被关闭",
                "`do_not_call` can never be disabled",
            );
        } else if d != ANGER {
            cx.intent(dp, d);
        }
    }
    let no_input = st
        .no_input
        .as_ref()
        .map(|r| cx.retry(&p(&sp, &[k("no_input")]), r, defaults.no_input_then.clone()));
    let no_match = st
        .no_match
        .as_ref()
        .map(|r| cx.retry(&p(&sp, &[k("no_match")]), r, defaults.no_match_then.clone()));
    if st.max_turns == Some(0) {
        cx.err(
            p(&sp, &[k("max_turns")]),
            "max_turns 至少为 1",
            "max_turns must be at least 1",
        );
    }
    let on_max_turns = st
        .on_max_turns
        .as_ref()
        .map(|r| cx.plain_effect(&p(&sp, &[k("on_max_turns")]), r));
    let t = st.timeouts.clone().unwrap_or_default();
    CState {
        name: name.to_string(),
        title: st.title.clone(),
        variants,
        bandit,
        style,
        barge_in: st.barge_in,
        expect_intents: st.expect.intents.clone(),
        expect_entities: st.expect.entities.clone(),
        expect_dtmf: st.expect.dtmf.clone(),
        question: if router || st.end.is_some() {
            None
        } else {
            Some(
                st.expect
                    .question
                    .unwrap_or_else(|| infer_question(&st.expect)),
            )
        },
        enter,
        rules,
        handlers,
        disabled: st.disable.clone(),
        no_input,
        no_match,
        max_turns: st.max_turns,
        on_max_turns,
        end: st.end.clone(),
        no_input_ms: t.no_input_ms.unwrap_or(defaults.no_input_ms),
        max_speech_ms: t.max_speech_ms.unwrap_or(defaults.max_speech_ms),
    }
}

/// The prompt of a state: `say`, or weighted `variants` (none: the state is a router).
fn state_prompt(cx: &mut Cx, sp: &[Seg], st: &model::State) -> Vec<PromptVariant> {
    let mut variants = Vec::new();
    match (&st.say, st.variants.is_empty()) {
        (Some(_), false) => cx.err(
            p(sp, &[k("variants")]),
            "`say` 和 `variants` 只能二选一",
            "use either `say` or `variants`, not both",
        ),
        (Some(s), true) => variants.push(PromptVariant {
            id: "main".into(),
            text: cx.template(p(sp, &[k("say")]), s),
            weight: 1,
        }),
        (None, _) => {
            let mut ids = BTreeSet::new();
            for (i, v) in st.variants.iter().enumerate() {
                let vp = p(sp, &[k("variants"), Seg::Index(i)]);
                if !ids.insert(v.id.clone()) {
                    cx.err(
                        p(&vp, &[k("id")]),
                        format!("话术版本 id `{}` 重复", v.id),
                        format!("variant id `{}` is used twice", v.id),
                    );
                }
                if v.weight == 0 {
                    cx.err(
                        p(&vp, &[k("weight")]),
                        "权重至少为 1",
                        "weight must be at least 1",
                    );
                }
                let text = cx.template(p(&vp, &[k("say")]), &v.say);
                variants.push(PromptVariant {
                    id: v.id.clone(),
                    text,
                    weight: v.weight.max(1),
                });
            }
        }
    }
    variants
}

/// A state's `bandit`: it needs two variants or more and a sane policy.
fn state_bandit(
    cx: &mut Cx,
    sp: &[Seg],
    b: &model::BanditSpec,
    variants: usize,
) -> Option<CBandit> {
    let bp = p(sp, &[k("bandit")]);
    let before = cx.diags.len();
    if variants < 2 {
        cx.err(
            bp.clone(),
            format!("bandit 需要至少 2 个话术版本 (variants)，这里有 {variants} 个"),
            format!("a bandit needs at least 2 variants, this state has {variants}"),
        );
    }
    if !(0.0..=1.0).contains(&b.min_share) || b.min_share * variants.max(1) as f64 > 1.0 + 1e-9 {
        cx.err(
            p(&bp, &[k("min_share")]),
            format!(
                "min_share {} × {variants} 个版本必须在 0 到 1 之间",
                b.min_share
            ),
            format!(
                "min_share {} × {variants} variants must be between 0 and 1",
                b.min_share
            ),
        );
    }
    let (stop_prob, min_calls) = b
        .stop
        .as_ref()
        .map(|s| (s.prob_best, s.min_calls))
        .unwrap_or((0.95, 200));
    if !(stop_prob > 0.5 && stop_prob < 1.0) {
        cx.err(
            p(&bp, &[k("stop"), k("prob_best")]),
            "prob_best 必须大于 0.5 且小于 1",
            "prob_best must be above 0.5 and below 1",
        );
    }
    let empty = match &b.reward {
        model::Reward::Continued => false,
        model::Reward::Outcome(v) => v.is_empty(),
        model::Reward::Level(v) => v.is_empty(),
    };
    if empty {
        cx.err(
            p(&bp, &[k("reward")]),
            "奖励列表不能为空",
            "the reward's list is empty",
        );
    }
    (cx.diags.len() == before).then(|| CBandit {
        reward: b.reward.clone(),
        min_share: b.min_share,
        stop_prob,
        min_calls,
    })
}

/// A state's `on` transitions, and the index of the first that matches everything.
fn state_rules(
    cx: &mut Cx,
    sp: &[Seg],
    st: &model::State,
    router: bool,
) -> (Vec<CRule>, Option<usize>) {
    let mut rules = Vec::with_capacity(st.on.len());
    let mut catch_all_at: Option<usize> = None;
    for (i, r) in st.on.iter().enumerate() {
        let rp = p(sp, &[k("on"), Seg::Index(i)]);
        if let Some(prev) = catch_all_at {
            cx.err(
                rp.clone(),
                format!("这条跳转永远不会触发：上面的 on[{prev}] 已匹配所有回答"),
                format!("this transition can never fire: on[{prev}] above matches everything"),
            );
        }
        let c = cx.rule(&rp, r);
        if let (Some(d), Some(allowed)) = (&c.dtmf, &st.expect.dtmf) {
            if !d.chars().all(|ch| allowed.contains(ch)) {
                cx.err(
                    p(&rp, &[k("dtmf")]),
                    format!("按键 `{d}` 不在本状态允许的按键 `{allowed}` 中"),
                    format!("DTMF `{d}` is not in this state's expect.dtmf `{allowed}`"),
                );
            }
        }
        if router {
            if !c.intents.is_empty()
                || c.entity.is_some()
                || c.emotion.is_some()
                || c.dtmf.is_some()
            {
                cx.err(
                    rp.clone(),
                    "没有话术的路由状态只能按 `when` 条件跳转",
                    "a state without a prompt routes on `when` conditions only: it hears nothing",
                );
            }
            if c.effect.next == Next::Stay {
                cx.err(
                    rp.clone(),
                    "没有话术的路由状态必须跳转或结束",
                    "a state without a prompt must move on: add `goto` or `end`",
                );
            }
        }
        if !r.has_matcher() && catch_all_at.is_none() {
            catch_all_at = Some(i);
        }
        rules.push(c);
    }
    (rules, catch_all_at)
}

/// The compiled program, with variable slots resolved.
fn assemble_program(
    cx: &Cx,
    script: &Script,
    meta: Metadata,
    globals: Globals,
    retries: Retries,
    states: Vec<CState>,
) -> Program {
    let Metadata {
        style,
        required,
        optional,
        start,
        identity,
        voicemail,
    } = meta;
    let Globals {
        globals,
        anger,
        dnc,
    } = globals;
    let Retries {
        no_input,
        no_match,
        on_max_turns,
    } = retries;
    let mut program = Program {
        name: script.name.clone(),
        title: script.title.clone(),
        language: script.language,
        segment: script.segment.clone(),
        style,
        states,
        start,
        vars: Vec::new(),
        var_index: HashMap::new(),
        required,
        optional,
        entity_slots: Vec::new(),
        last_text: None,
        last_intent: None,
        last_dtmf: None,
        globals,
        anger: Some(anger),
        dnc,
        identity,
        no_input,
        no_match,
        max_turns: script.max_turns.unwrap_or(DEFAULT_MAX_TURNS),
        on_max_turns,
        min_confidence: script.min_confidence.unwrap_or(DEFAULT_MIN_CONFIDENCE),
        intents: script
            .intents
            .iter()
            .map(|(n, d)| IntentDef {
                name: n.clone(),
                examples: d.examples.clone(),
                keywords: d.keywords.clone(),
            })
            .collect(),
        transfer: script.transfer.clone(),
        knowledge: None,
        voicemail,
        state_index: cx.state_index.clone(),
        file: String::new(),
        styles: Vec::new(),
    };
    program.vars = cx.vars.clone();
    program.var_index = cx.var_index.clone();
    program.entity_slots = program
        .vars
        .iter()
        .enumerate()
        .filter_map(|(i, v)| v.strip_prefix("entity.").map(|kind| (kind.to_string(), i)))
        .collect();
    program.last_text = program.slot("last.text");
    program.last_intent = program.slot("last.intent");
    program.last_dtmf = program.slot("last.dtmf");
    program
}

/// Test-render every prompt with the example values.
fn test_render(cx: &mut Cx, program: &Program) {
    let script = cx.script;
    let mut vals: Vec<Option<String>> = vec![None; program.vars.len()];
    for (slot, _, v) in program.required.iter().chain(program.optional.iter()) {
        vals[*slot] = Some(v.clone());
    }
    for (i, v) in program.vars.iter().enumerate() {
        if vals[i].is_none() {
            vals[i] = Some(format!("<{v}>"));
        }
    }
    for (si, st) in program.states.iter().enumerate() {
        for (vi, v) in st.variants.iter().enumerate() {
            let text = v.text.render(|s| vals.get(s).and_then(|x| x.as_deref()));
            if text.trim().is_empty() {
                let key = if script.states.get(&st.name).is_some_and(|s| s.say.is_some()) {
                    vec![k("states"), k(&cx.state_names[si]), k("say")]
                } else {
                    vec![
                        k("states"),
                        k(&cx.state_names[si]),
                        k("variants"),
                        Seg::Index(vi),
                    ]
                };
                cx.err(
                    key,
                    "用示例值渲染后话术为空",
                    "prompt renders to nothing with the example values",
                );
            }
        }
    }
}

/// Diagnostics in file order, each with its line and column.
fn diagnostics(cx: &Cx, root: &Node) -> Vec<Diagnostic> {
    let mut out: Vec<Diagnostic> = cx
        .diags
        .iter()
        .map(|(path, message)| Diagnostic {
            pos: root.locate(path),
            path: path_string(path),
            message: message.clone(),
        })
        .collect();
    out.sort_by(|a, b| a.pos.cmp(&b.pos).then_with(|| a.message.cmp(&b.message)));
    out.dedup();
    out
}

#[allow(clippy::too_many_arguments)]
fn graph_checks(
    cx: &mut Cx,
    states: &[CState],
    start: u32,
    globals: &[(String, CHandler)],
    anger: &CHandler,
    no_input: &CRetry,
    no_match: &CRetry,
    on_max_turns: &Effect,
) {
    let n = states.len();
    // Edges a state can take by itself, and whether it can end by itself.
    let mut local: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut ends_here = vec![false; n];
    let mut all_edges: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut global_targets: Vec<(Option<&str>, u32)> = Vec::new();
    for (name, h) in globals {
        global_targets.extend(edge(&h.effect).map(|t| (Some(name.as_str()), t)));
        if let Some(e) = &h.escalate {
            global_targets.extend(edge(e).map(|t| (Some(name.as_str()), t)));
        }
    }
    for e in [Some(&anger.effect), anger.escalate.as_ref()]
        .into_iter()
        .flatten()
    {
        global_targets.extend(edge(e).map(|t| (Some(ANGER), t)));
    }
    for e in [&no_input.then, &no_match.then, on_max_turns] {
        global_targets.extend(edge(e).map(|t| (None, t)));
    }
    for (i, st) in states.iter().enumerate() {
        let mut effects: Vec<&Effect> = st.rules.iter().map(|r| &r.effect).collect();
        for (_, h) in &st.handlers {
            effects.push(&h.effect);
            effects.extend(h.escalate.as_ref());
        }
        effects.extend(st.no_input.as_ref().map(|r| &r.then));
        effects.extend(st.no_match.as_ref().map(|r| &r.then));
        effects.extend(st.on_max_turns.as_ref());
        ends_here[i] = st.end.is_some() || effects.iter().any(|e| ends(e));
        local[i] = effects.iter().filter_map(|e| edge(e)).collect();
        all_edges[i] = local[i].clone();
        for (name, t) in &global_targets {
            if name.is_none_or(|nm| !st.disabled.iter().any(|d| d == nm)) {
                all_edges[i].push(*t);
            }
        }
    }
    // Reachability from the start over every edge.
    let mut seen = vec![false; n];
    let mut stack = vec![start as usize];
    seen[start as usize] = true;
    while let Some(s) = stack.pop() {
        for &t in &all_edges[s] {
            if !seen[t as usize] {
                seen[t as usize] = true;
                stack.push(t as usize);
            }
        }
    }
    for (i, st) in states.iter().enumerate() {
        if !seen[i] {
            cx.err(
                vec![k("states"), Seg::KeyName(st.name.clone())],
                format!("状态 `{}` 不可达", st.name),
                format!(
                    "state `{}` is unreachable: no transition from `{}` leads here",
                    st.name, states[start as usize].name
                ),
            );
        }
    }
    // Can end: reverse reachability from states that end, over local edges.
    let mut rev: Vec<Vec<u32>> = vec![Vec::new(); n];
    for (s, ts) in local.iter().enumerate() {
        for &t in ts {
            rev[t as usize].push(s as u32);
        }
    }
    let mut can_end = ends_here.clone();
    let mut stack: Vec<usize> = (0..n).filter(|&i| can_end[i]).collect();
    while let Some(t) = stack.pop() {
        for &s in &rev[t] {
            if !can_end[s as usize] {
                can_end[s as usize] = true;
                stack.push(s as usize);
            }
        }
    }
    for (i, st) in states.iter().enumerate() {
        if seen[i] && !can_end[i] {
            cx.err(
                vec![k("states"), Seg::KeyName(st.name.clone())],
                format!("状态 `{}` 无法结束通话", st.name), format!("state `{}` has no way to end: none of its transitions leads to a state that hangs up (`end`)", st.name),
            );
        }
    }
    // Routers in a cycle would spin forever without hearing anything.
    let router = |i: usize| states[i].is_router();
    let mut color = vec![0u8; n];
    for s0 in 0..n {
        if !router(s0) || color[s0] != 0 {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(s0, 0)];
        color[s0] = 1;
        while let Some(&mut (s, ref mut idx)) = stack.last_mut() {
            let next = local[s].get(*idx).copied();
            *idx += 1;
            match next {
                Some(t) if router(t as usize) => match color[t as usize] {
                    0 => {
                        color[t as usize] = 1;
                        stack.push((t as usize, 0));
                    }
                    1 => {
                        cx.err(
                            vec![k("states"), Seg::KeyName(states[t as usize].name.clone())],
                            format!("路由状态在 `{}` 处形成循环", states[t as usize].name),
                            format!(
                                "states without prompts route in a circle through `{}`",
                                states[t as usize].name
                            ),
                        );
                    }
                    _ => {}
                },
                Some(_) => {}
                None => {
                    color[s] = 2;
                    stack.pop();
                }
            }
        }
    }
}

/// Placeholder values for test-rendering, exposed for tools.
pub fn example_customer(p: &Program) -> BTreeMap<String, String> {
    p.required
        .iter()
        .map(|(_, n, v)| (n.clone(), v.clone()))
        .collect()
}
