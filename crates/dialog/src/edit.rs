//! The flow editor's two directions over a script's text: [`outline`] reads the
//! states and transitions as the text has them, and [`apply`] turns one change
//! made on the canvas (connect two states, move or delete an arrow, add, rename
//! or remove a state) into a change of a few lines of that text.
//!
//! The canvas and the YAML beside it must stay in step, and the YAML belongs to
//! its author: comments, key order, quoting and blank lines must survive an
//! edit made by dragging. Re-serialising a parsed document would lose all of
//! them, so the edits here work on lines, guided by the positions of
//! [`crate::yaml::parse`]'s tree. Block-style YAML (what every example and the
//! docs use) is edited; a part written in flow style (`on: [{intent: a, goto:
//! b}]`) is refused with its line, and the user edits that part as text.
//!
//! [`outline`] works while the script has errors (an unknown `goto` target, an
//! unreachable state): the canvas shows what the text says, with a missing
//! target marked, so a state that was just added can be connected before the
//! script validates again.
//!
//! Architecture invariant: pure functions of the text; no I/O, no clock.
use std::collections::{HashMap, VecDeque};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::yaml::{self, Node, NodeKind};

/// One change made on the flow canvas.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Edit {
    /// A new transition of `from`: when the callee's answer is `intent` (no
    /// intent: any answer the transitions above did not take), go to `to`.
    /// Written before the state's first catch-all transition (one after it
    /// could never fire), and the intent is added to `expect.intents` when the
    /// state lists what it expects.
    Connect {
        from: String,
        to: String,
        #[serde(default)]
        intent: Option<String>,
    },
    /// Transition `on[rule]` of `from` now goes to `to` (a transition that
    /// ended the call now continues).
    Retarget {
        from: String,
        rule: usize,
        to: String,
    },
    /// Transition `on[rule]` of `from` is deleted.
    Disconnect { from: String, rule: usize },
    /// A new state at the end of `states`, saying `say`; with `end`, the call
    /// ends there with that outcome.
    AddState {
        name: String,
        say: String,
        #[serde(default)]
        end: Option<String>,
    },
    /// The state `from` is called `to`, and so is every `goto` and `start`
    /// that named it.
    RenameState { from: String, to: String },
    /// The state and its lines are deleted; transitions that went to it are
    /// left for the validator to point at.
    RemoveState { name: String },
}

/// The text after an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edited {
    pub text: String,
    /// 1-based line of the edit in the new text, for the editor to show.
    pub line: u32,
}

/// Why an edit was not made. The text is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EditError {
    /// Stable code for programs: `yaml`, `no_states`, `no_such_state`,
    /// `state_exists`, `bad_name`, `no_such_transition`, `flow_style`, `not_a_list`.
    pub code: &'static str,
    /// Where in the text (1-based), or 0 for the whole file.
    pub line: u32,
    /// Chinese, then English: `中文 / English`.
    pub message: String,
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

impl std::error::Error for EditError {}

fn fail(code: &'static str, line: u32, zh: impl AsRef<str>, en: impl AsRef<str>) -> EditError {
    EditError {
        code,
        line,
        message: format!("{} / {}", zh.as_ref(), en.as_ref()),
    }
}

/// The states and transitions written in a script, for drawing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outline {
    pub nodes: Vec<OutlineNode>,
    pub edges: Vec<OutlineEdge>,
    /// Number of layers (columns) of the drawing.
    pub layers: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlineNode {
    pub name: String,
    pub title: Option<String>,
    /// Breadth-first distance from the start state; unreachable states go one
    /// past the deepest.
    pub layer: usize,
    pub start: bool,
    /// The outcome of a state that ends the call (`end:`).
    pub end: Option<String>,
    /// 1-based line of the state's name.
    pub line: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutlineEdge {
    pub from: String,
    /// Next state (may name a state that does not exist: see `missing`).
    pub to: Option<String>,
    /// Outcome when the transition ends the call.
    pub end: Option<String>,
    /// What triggers it: intents, `entity:`, `dtmf:`, `emotion:`, `when`,
    /// `else`, `no_match`, `no_input`.
    pub label: String,
    /// Index in the state's `on` list (what [`Edit::Retarget`] and
    /// [`Edit::Disconnect`] take); None for `no_match` and `no_input`.
    pub rule: Option<usize>,
    /// 1-based line of the transition.
    pub line: u32,
    /// `to` names no state.
    pub missing: bool,
}

/// Keys of an `on` item that make it conditional (as `model::Rule::has_matcher`).
const MATCHERS: [&str; 5] = ["intent", "entity", "emotion", "dtmf", "when"];

fn yaml_fail(e: yaml::YamlError) -> EditError {
    fail(
        "yaml",
        e.pos.line,
        format!("YAML 语法错误（第 {} 列）：{}", e.pos.col, e.message),
        format!("YAML syntax error at column {}: {}", e.pos.col, e.message),
    )
}

fn scalar(n: &Node) -> Option<&str> {
    match &n.kind {
        NodeKind::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

fn entries(n: &Node) -> &[(Node, Node)] {
    match &n.kind {
        NodeKind::Map(e) => e,
        _ => &[],
    }
}

fn label_of(item: &Node) -> String {
    let mut parts = Vec::new();
    for key in MATCHERS {
        let Some(v) = item.get(key) else { continue };
        let text = match &v.kind {
            NodeKind::Scalar { text, .. } => text.clone(),
            NodeKind::Seq(items) => items
                .iter()
                .filter_map(scalar)
                .collect::<Vec<_>>()
                .join("|"),
            NodeKind::Map(_) => String::new(),
        };
        parts.push(match key {
            "intent" => text,
            "when" => "when".into(),
            _ => format!("{key}:{text}"),
        });
    }
    if parts.is_empty() {
        "else".into()
    } else {
        parts.join(" ")
    }
}

/// The states and transitions as written, whenever the text is YAML.
pub fn outline(src: &str) -> Result<Outline, EditError> {
    let root = yaml::parse(src).map_err(yaml_fail)?;
    let states = root.get("states").map(entries).unwrap_or_default();
    let names: Vec<&str> = states.iter().filter_map(|(k, _)| scalar(k)).collect();
    let start = root
        .get("start")
        .and_then(scalar)
        .filter(|s| names.contains(s))
        .or(names.first().copied());
    let mut edges = Vec::new();
    for (k, v) in states {
        let Some(from) = scalar(k) else { continue };
        let mut push = |item: &Node, label: String, rule: Option<usize>| {
            let to = item.get("goto").and_then(scalar).map(String::from);
            let end = item.get("end").and_then(scalar).map(String::from);
            if to.is_none() && end.is_none() {
                return;
            }
            edges.push(OutlineEdge {
                from: from.to_string(),
                missing: to.as_deref().is_some_and(|t| !names.contains(&t)),
                to,
                end,
                label,
                rule,
                line: item.pos.line,
            });
        };
        if let Some(NodeKind::Seq(items)) = v.get("on").map(|n| &n.kind) {
            for (i, item) in items.iter().enumerate() {
                push(item, label_of(item), Some(i));
            }
        }
        for retry in ["no_match", "no_input"] {
            if let Some(then) = v.get(retry).and_then(|r| r.get("then")) {
                push(then, retry.into(), None);
            }
        }
    }
    let index: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let mut layer: Vec<Option<usize>> = vec![None; names.len()];
    let mut queue = VecDeque::new();
    if let Some(s) = start.and_then(|s| index.get(s)) {
        layer[*s] = Some(0);
        queue.push_back(*s);
    }
    while let Some(i) = queue.pop_front() {
        let d = layer[i].unwrap_or(0);
        for e in edges.iter().filter(|e| e.from == names[i]) {
            if let Some(&j) = e.to.as_deref().and_then(|t| index.get(t)) {
                if layer[j].is_none() {
                    layer[j] = Some(d + 1);
                    queue.push_back(j);
                }
            }
        }
    }
    let deepest = layer.iter().flatten().copied().max().unwrap_or(0);
    let nodes: Vec<OutlineNode> = states
        .iter()
        .filter(|(k, _)| scalar(k).is_some())
        .zip(0..)
        .map(|((k, v), i)| OutlineNode {
            name: scalar(k).unwrap_or_default().to_string(),
            title: v.get("title").and_then(scalar).map(String::from),
            layer: layer[i].unwrap_or(deepest + 1),
            start: Some(names[i]) == start,
            end: v.get("end").and_then(scalar).map(String::from),
            line: k.pos.line,
        })
        .collect();
    let layers = nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
    Ok(Outline {
        nodes,
        edges,
        layers,
    })
}

/// A name the editor may write as a plain YAML key and `goto` target.
fn check_name(name: &str) -> Result<(), EditError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_alphabetic() || c == '_')
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-' || c == '.')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "true" | "false" | "null" | "yes" | "no" | "on" | "off"
        );
    if ok {
        Ok(())
    } else {
        Err(fail(
            "bad_name",
            0,
            format!("名称 `{name}` 不可用：以字母或下划线开头，只含字母、数字、`_`、`-`、`.`，最长 64 个字符"),
            format!("the name `{name}` cannot be used: start with a letter or `_`, then letters, digits, `_`, `-` or `.`, at most 64 characters"),
        ))
    }
}

/// The source as lines, with its line ending kept.
struct Text {
    lines: Vec<String>,
    crlf: bool,
    trailing_newline: bool,
}

impl Text {
    fn new(src: &str) -> Text {
        let crlf = src.contains("\r\n");
        let mut lines: Vec<String> = src
            .split('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
            .collect();
        let trailing_newline = src.ends_with('\n');
        if trailing_newline {
            lines.pop();
        }
        Text {
            lines,
            crlf,
            trailing_newline,
        }
    }

    fn join(&self) -> String {
        let eol = if self.crlf { "\r\n" } else { "\n" };
        let mut s = self.lines.join(eol);
        if self.trailing_newline || self.lines.is_empty() {
            s.push_str(eol);
        }
        s
    }

    /// 0-based line of a node.
    fn line(&self, n: &Node) -> usize {
        (n.pos.line as usize).saturating_sub(1)
    }

    fn get(&self, i: usize) -> &str {
        self.lines.get(i).map(String::as_str).unwrap_or("")
    }

    /// Last line (0-based) of the block that starts on line `start` whose
    /// lines are indented deeper than `indent`. Blank lines and comments never
    /// end a block; trailing ones are left outside it unless indented deeper.
    fn block_end(&self, start: usize, indent: usize) -> usize {
        let mut last = start;
        for (j, l) in self.lines.iter().enumerate().skip(start + 1) {
            let t = l.trim_start();
            if t.is_empty() {
                continue;
            }
            let ind = l.len() - t.len();
            if t.starts_with('#') {
                if ind > indent {
                    last = j;
                }
                continue;
            }
            if ind <= indent {
                break;
            }
            last = j;
        }
        last
    }
}

/// Leading spaces of a line.
fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// The byte offset of 1-based character column `col` in `line`.
fn byte_at(line: &str, col: u32) -> usize {
    line.char_indices()
        .nth((col as usize).saturating_sub(1))
        .map_or(line.len(), |(b, _)| b)
}

/// How a node sits on its line: `Some(indent)` when it starts a block entry
/// (only spaces and `- ` markers before it), with `indent` the column of the
/// first of those markers or of the node itself; None in flow style.
fn block_at(text: &Text, n: &Node) -> Option<usize> {
    let line = text.get(text.line(n));
    let at = byte_at(line, n.pos.col);
    let before = &line[..at];
    let rest = before.trim_start_matches(' ');
    let flow = line[at..].starts_with(['[', '{']);
    if !flow && rest.chars().all(|c| c == ' ' || c == '-') && !rest.contains("--") {
        Some(indent_of(before))
    } else {
        None
    }
}

/// Byte span of the scalar that starts at 1-based column `col` of `line`.
fn scalar_span(line: &str, col: u32) -> (usize, usize) {
    let start = byte_at(line, col);
    let rest = &line[start..];
    let mut chars = rest.char_indices();
    match chars.next() {
        Some((_, q @ ('"' | '\''))) => {
            let mut escaped = false;
            let mut prev_quote = false;
            for (i, c) in chars {
                if q == '"' {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        return (start, start + i + 1);
                    }
                } else if c == '\'' {
                    // `''` is an escaped quote inside single quotes.
                    prev_quote = !prev_quote;
                } else if prev_quote {
                    return (start, start + i);
                }
            }
            (start, line.len())
        }
        _ => {
            let mut end = rest.len();
            let mut prev_space = false;
            for (i, c) in rest.char_indices() {
                let key_end =
                    c == ':' && rest[i + 1..].starts_with([' ', '\t']) || rest[i..] == *":";
                if matches!(c, ',' | ']' | '}') || key_end || (c == '#' && prev_space) {
                    end = i;
                    break;
                }
                prev_space = c == ' ' || c == '\t';
            }
            (start, start + rest[..end].trim_end().len())
        }
    }
}

fn spaces(n: usize) -> String {
    " ".repeat(n)
}

/// One change of the text. Spans change one line in place; inserts and
/// removals move the lines below them.
enum Change {
    Span {
        line: usize,
        start: usize,
        end: usize,
        text: String,
    },
    Insert {
        at: usize,
        lines: Vec<String>,
    },
    Remove {
        from: usize,
        to: usize,
    },
}

impl Change {
    fn line(&self) -> usize {
        match self {
            Change::Span { line, .. } => *line,
            Change::Insert { at, .. } => *at,
            Change::Remove { from, .. } => *from,
        }
    }

    fn shift(&self) -> isize {
        match self {
            Change::Span { .. } => 0,
            Change::Insert { lines, .. } => lines.len() as isize,
            Change::Remove { from, to } => -((to - from + 1) as isize),
        }
    }
}

/// Applies `changes` and returns the new text. The first change is the one the
/// editor shows, at `offset` lines into it.
fn commit(mut text: Text, mut changes: Vec<Change>, offset: usize) -> Edited {
    let focus = changes.first().map_or(0, Change::line);
    let shift: isize = changes
        .iter()
        .skip(1)
        .filter(|c| c.line() < focus)
        .map(Change::shift)
        .sum();
    // Bottom-up, and right-to-left on one line, so earlier positions stay valid.
    changes.sort_by_key(|c| {
        std::cmp::Reverse(match c {
            Change::Span { line, start, .. } => (*line, 1, *start),
            Change::Insert { at, .. } => (*at, 0, 0),
            Change::Remove { from, .. } => (*from, 0, 0),
        })
    });
    for c in changes {
        match c {
            Change::Span {
                line,
                start,
                end,
                text: t,
            } => {
                if let Some(l) = text.lines.get_mut(line) {
                    l.replace_range(start..end, &t);
                }
            }
            Change::Insert { at, lines } => {
                let at = at.min(text.lines.len());
                text.lines.splice(at..at, lines);
            }
            Change::Remove { from, to } => {
                let to = to.min(text.lines.len().saturating_sub(1));
                if from <= to {
                    text.lines.drain(from..=to);
                }
            }
        }
    }
    let line = (focus as isize + shift).max(0) as u32 + offset as u32 + 1;
    Edited {
        text: text.join(),
        line,
    }
}

struct Doc<'a> {
    text: Text,
    root: &'a Node,
}

impl Doc<'_> {
    fn states(&self) -> Result<&[(Node, Node)], EditError> {
        match self.root.get("states") {
            Some(n) if matches!(n.kind, NodeKind::Map(_)) => Ok(entries(n)),
            Some(n) => Err(fail(
                "no_states",
                n.pos.line,
                "`states` 应当是状态名到状态的映射",
                "`states` must map state names to states",
            )),
            None => Err(fail(
                "no_states",
                0,
                "脚本还没有 `states`",
                "the script has no `states` yet",
            )),
        }
    }

    fn state(&self, name: &str) -> Result<(&Node, &Node), EditError> {
        self.states()?
            .iter()
            .find(|(k, _)| scalar(k) == Some(name))
            .map(|(k, v)| (k, v))
            .ok_or_else(|| {
                fail(
                    "no_such_state",
                    0,
                    format!("没有名为 `{name}` 的状态"),
                    format!("there is no state `{name}`"),
                )
            })
    }

    fn absent(&self, name: &str) -> Result<(), EditError> {
        if let Ok((k, _)) = self.state(name) {
            return Err(fail(
                "state_exists",
                k.pos.line,
                format!("已有名为 `{name}` 的状态"),
                format!("there is already a state `{name}`"),
            ));
        }
        Ok(())
    }

    /// The column of a block node's key (or of its `- ` marker); flow style refused.
    fn block(&self, n: &Node, what: &str) -> Result<usize, EditError> {
        block_at(&self.text, n).ok_or_else(|| {
            fail(
                "flow_style",
                n.pos.line,
                format!("{what} 用的是行内写法（[...] 或 {{...}}），流程图只编辑分行写法；请在文本里修改这一处"),
                format!("{what} is written in flow style ([...] or {{...}}); the flow editor edits block style, so change this part in the text"),
            )
        })
    }

    fn rule<'n>(
        &self,
        from: &str,
        st: &'n Node,
        rule: usize,
    ) -> Result<(&'n [Node], &'n Node), EditError> {
        let items: &[Node] = match st.get("on").map(|n| &n.kind) {
            Some(NodeKind::Seq(items)) => items,
            _ => &[],
        };
        let item = items.get(rule).ok_or_else(|| {
            fail(
                "no_such_transition",
                st.pos.line,
                format!(
                    "状态 `{from}` 没有第 {rule} 条跳转（on[{rule}]），它有 {} 条",
                    items.len()
                ),
                format!(
                    "state `{from}` has no transition on[{rule}]; it has {}",
                    items.len()
                ),
            )
        })?;
        Ok((items, item))
    }

    /// The column of the state's own keys, and the line its block ends on.
    fn state_block(&self, k: &Node, v: &Node) -> Result<(usize, usize, usize), EditError> {
        let key_indent = self.block(k, "这个状态 / this state")?;
        let inner = match &v.kind {
            NodeKind::Map(e) if !e.is_empty() => self.block(&e[0].0, "这个状态 / this state")?,
            NodeKind::Map(_) | NodeKind::Seq(_) => {
                return Err(fail(
                    "flow_style",
                    v.pos.line,
                    "这个状态用的是行内写法，流程图只编辑分行写法",
                    "this state is written in flow style; the flow editor edits block style",
                ))
            }
            NodeKind::Scalar { .. } => key_indent + 2,
        };
        let start = self.text.line(k);
        Ok((key_indent, inner, self.text.block_end(start, key_indent)))
    }

    /// Where a list item's block starts and ends (0-based lines) and its `- ` column.
    fn item_block(&self, item: &Node) -> Result<(usize, usize, usize), EditError> {
        let dash = self.block(item, "这条跳转 / this transition")?;
        let line = self.text.line(item);
        let start = if self.text.get(line)[dash..].starts_with('-') {
            line
        } else if line > 0 && self.text.get(line - 1).trim() == "-" {
            line - 1
        } else {
            return Err(fail(
                "flow_style",
                item.pos.line,
                "这条跳转不是 `- ` 开头的列表项，请在文本里修改",
                "this transition is not a `- ` list item; change it in the text",
            ));
        };
        let dash = indent_of(self.text.get(start));
        Ok((start, self.text.block_end(start, dash), dash))
    }

    fn connect(
        &self,
        from: &str,
        to: &str,
        intent: Option<&str>,
    ) -> Result<Vec<Change>, EditError> {
        let (k, v) = self.state(from)?;
        self.state(to)?;
        if let Some(i) = intent {
            check_name(i)?;
        }
        let (_, inner, end) = self.state_block(k, v)?;
        let item = |dash: usize, offset: usize| -> Vec<String> {
            match intent {
                Some(i) => vec![
                    format!("{}- intent: {i}", spaces(dash)),
                    format!("{}goto: {to}", spaces(dash + offset)),
                ],
                None => vec![format!("{}- goto: {to}", spaces(dash))],
            }
        };
        let mut changes = Vec::new();
        match v.get("on") {
            Some(on) => match &on.kind {
                NodeKind::Seq(items) if !items.is_empty() => {
                    let (_, _, dash) = self.item_block(&items[0])?;
                    let offset = (items[0].pos.col as usize - 1).saturating_sub(dash).max(2);
                    let at = match items
                        .iter()
                        .position(|it| !MATCHERS.iter().any(|m| it.get(m).is_some()))
                    {
                        Some(c) => self.item_block(&items[c])?.0,
                        None => self.item_block(&items[items.len() - 1])?.1 + 1,
                    };
                    changes.push(Change::Insert {
                        at,
                        lines: item(dash, offset),
                    });
                }
                NodeKind::Seq(_) | NodeKind::Scalar { .. } => {
                    // `on: []` or `on:` with nothing: becomes a block list.
                    let (key, _) = v.entries_key("on").unwrap_or((on, on));
                    let key_indent = self.block(key, "`on`")?;
                    let line = self.text.line(key);
                    changes.push(Change::Insert {
                        at: line + 1,
                        lines: item(key_indent + 2, 2),
                    });
                    changes.push(Change::Span {
                        line,
                        start: 0,
                        end: self.text.get(line).len(),
                        text: format!("{}on:", spaces(key_indent)),
                    });
                }
                NodeKind::Map(_) => {
                    return Err(fail(
                        "not_a_list",
                        on.pos.line,
                        "`on` 应当是跳转的列表（每项以 `- ` 开头）",
                        "`on` must be a list of transitions (items starting with `- `)",
                    ))
                }
            },
            None => {
                let mut lines = vec![format!("{}on:", spaces(inner))];
                lines.extend(item(inner + 2, 2));
                changes.push(Change::Insert { at: end + 1, lines });
            }
        }
        if let Some(i) = intent {
            if let Some(list) = v.get("expect").and_then(|e| e.get("intents")) {
                changes.extend(self.add_expected(list, i)?);
            }
        }
        Ok(changes)
    }

    /// `intent` added to a state's `expect.intents` unless it is there.
    fn add_expected(&self, list: &Node, intent: &str) -> Result<Option<Change>, EditError> {
        let NodeKind::Seq(items) = &list.kind else {
            return Ok(None);
        };
        if items.iter().any(|i| scalar(i) == Some(intent)) {
            return Ok(None);
        }
        let line_no = self.text.line(list);
        let line = self.text.get(line_no);
        let open = byte_at(line, list.pos.col);
        if line[open..].starts_with('[') {
            // A one-line flow list: the item goes before its `]`.
            let close = items
                .last()
                .filter(|l| l.pos.line == list.pos.line)
                .map(|l| scalar_span(line, l.pos.col).1)
                .unwrap_or(open + 1);
            let Some(rel) = line[close..].find(']') else {
                return Ok(None);
            };
            let at = close + rel;
            let before = line[..at].trim_end();
            let sep = if before.ends_with('[') { "" } else { ", " };
            let start = before.len();
            return Ok(Some(Change::Span {
                line: line_no,
                start,
                end: at,
                text: format!("{sep}{intent}"),
            }));
        }
        let Some(last) = items.last() else {
            return Ok(None);
        };
        let (_, end, dash) = self.item_block(last)?;
        Ok(Some(Change::Insert {
            at: end + 1,
            lines: vec![format!("{}- {intent}", spaces(dash))],
        }))
    }

    fn retarget(&self, from: &str, rule: usize, to: &str) -> Result<Vec<Change>, EditError> {
        let (_, v) = self.state(from)?;
        self.state(to)?;
        let (_, item) = self.rule(from, v, rule)?;
        if let Some(goto) = item.get("goto") {
            let line = self.text.line(goto);
            let (start, end) = scalar_span(self.text.get(line), goto.pos.col);
            return Ok(vec![Change::Span {
                line,
                start,
                end,
                text: to.to_string(),
            }]);
        }
        if let Some((key, value)) = item.entries_key("end") {
            let line = self.text.line(key);
            if value.pos.line == key.pos.line {
                let l = self.text.get(line);
                let start = byte_at(l, key.pos.col);
                let (_, end) = scalar_span(l, value.pos.col);
                return Ok(vec![Change::Span {
                    line,
                    start,
                    end,
                    text: format!("goto: {to}"),
                }]);
            }
        }
        // A block map's keys all start at its first key's column.
        let (_, end, _) = self.item_block(item)?;
        let key_col = item.pos.col as usize - 1;
        Ok(vec![Change::Insert {
            at: end + 1,
            lines: vec![format!("{}goto: {to}", spaces(key_col))],
        }])
    }

    fn disconnect(&self, from: &str, rule: usize) -> Result<Vec<Change>, EditError> {
        let (_, v) = self.state(from)?;
        let (items, item) = self.rule(from, v, rule)?;
        let (start, end, _) = self.item_block(item)?;
        if items.len() == 1 {
            // The last transition: the `on:` key goes too.
            if let Some((key, _)) = v.entries_key("on") {
                return Ok(vec![Change::Remove {
                    from: self.text.line(key),
                    to: end,
                }]);
            }
        }
        Ok(vec![Change::Remove {
            from: start,
            to: end,
        }])
    }

    /// The insert, and the line of the new state's name within it.
    fn add_state(
        &self,
        name: &str,
        say: &str,
        end_with: Option<&str>,
    ) -> Result<(Vec<Change>, usize), EditError> {
        check_name(name)?;
        if let Some(o) = end_with {
            check_name(o)?;
        }
        self.absent(name)?;
        let states = self.states()?;
        let Some((last_k, last_v)) = states.last() else {
            return Err(fail(
                "flow_style",
                self.root.get("states").map_or(0, |n| n.pos.line),
                "`states` 是空的行内写法，请先在文本里写一个状态",
                "`states` is an empty flow map; write the first state in the text",
            ));
        };
        let (key_indent, _, end) = self.state_block(last_k, last_v)?;
        let (_, inner, _) = self.state_block(&states[0].0, &states[0].1)?;
        let inner = if inner > key_indent {
            inner
        } else {
            key_indent + 2
        };
        let mut lines = Vec::new();
        let key_line = self.text.line(last_k);
        if key_line > 0 && self.text.get(key_line - 1).trim().is_empty() {
            lines.push(String::new());
        }
        let focus = lines.len();
        lines.push(format!("{}{name}:", spaces(key_indent)));
        // A JSON string is a valid YAML double-quoted scalar.
        let said = serde_json::to_string(say).unwrap_or_else(|_| "\"\"".into());
        lines.push(format!("{}say: {said}", spaces(inner)));
        if let Some(o) = end_with {
            lines.push(format!("{}end: {o}", spaces(inner)));
        }
        Ok((vec![Change::Insert { at: end + 1, lines }], focus))
    }

    fn rename(&self, from: &str, to: &str) -> Result<Vec<Change>, EditError> {
        check_name(to)?;
        let (k, _) = self.state(from)?;
        self.absent(to)?;
        let mut changes = Vec::new();
        let mut span = |n: &Node| {
            let line = self.text.line(n);
            let (start, end) = scalar_span(self.text.get(line), n.pos.col);
            changes.push(Change::Span {
                line,
                start,
                end,
                text: to.to_string(),
            });
        };
        span(k);
        if let Some(s) = self.root.get("start").filter(|s| scalar(s) == Some(from)) {
            span(s);
        }
        let mut stack = vec![self.root];
        while let Some(n) = stack.pop() {
            match &n.kind {
                NodeKind::Scalar { .. } => {}
                NodeKind::Seq(items) => stack.extend(items.iter()),
                NodeKind::Map(e) => {
                    for (key, value) in e {
                        if scalar(key) == Some("goto") && scalar(value) == Some(from) {
                            span(value);
                        } else {
                            stack.push(value);
                        }
                    }
                }
            }
        }
        Ok(changes)
    }

    fn remove_state(&self, name: &str) -> Result<Vec<Change>, EditError> {
        let (k, v) = self.state(name)?;
        let (_, _, end) = self.state_block(k, v)?;
        let mut start = self.text.line(k);
        // One blank line before the state goes with it when another follows.
        let after_blank = self.text.get(end + 1).trim().is_empty();
        if start > 0 && after_blank && self.text.get(start - 1).trim().is_empty() {
            start -= 1;
        }
        Ok(vec![Change::Remove {
            from: start,
            to: end,
        }])
    }
}

trait EntriesKey {
    fn entries_key(&self, key: &str) -> Option<(&Node, &Node)>;
}

impl EntriesKey for Node {
    fn entries_key(&self, key: &str) -> Option<(&Node, &Node)> {
        entries(self)
            .iter()
            .find(|(k, _)| scalar(k) == Some(key))
            .map(|(k, v)| (k, v))
    }
}

/// `edit` applied to `src`. On an error the text is unchanged and the error says why.
pub fn apply(src: &str, edit: &Edit) -> Result<Edited, EditError> {
    let root = yaml::parse(src).map_err(yaml_fail)?;
    let doc = Doc {
        text: Text::new(src),
        root: &root,
    };
    let (changes, offset) = match edit {
        Edit::Connect { from, to, intent } => (doc.connect(from, to, intent.as_deref())?, 0),
        Edit::Retarget { from, rule, to } => (doc.retarget(from, *rule, to)?, 0),
        Edit::Disconnect { from, rule } => (doc.disconnect(from, *rule)?, 0),
        Edit::AddState { name, say, end } => doc.add_state(name, say, end.as_deref())?,
        Edit::RenameState { from, to } => (doc.rename(from, to)?, 0),
        Edit::RemoveState { name } => (doc.remove_state(name)?, 0),
    };
    Ok(commit(doc.text, changes, offset))
}
