//! The rule file: YAML in, a checked [`RuleSet`] out, or every error with the
//! rule's name and its position in the file.
use std::collections::HashSet;
use std::fmt;

use chrono::NaiveDate;
use serde::Deserialize;
use waihu_core::{AttrSchema, Attrs};

use crate::compile::{CompileError, Compiler, Slots};
use crate::eval::{Env, Pred, Row, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    segments: Vec<SegmentSpec>,
    #[serde(default)]
    default: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SegmentSpec {
    name: String,
    #[serde(alias = "expr")]
    rule: String,
    #[serde(default)]
    description: Option<String>,
    /// Higher wins when several rules match; equal priorities keep file order.
    #[serde(default)]
    priority: Option<i64>,
    /// Business value of a customer in this segment, for campaign ranking.
    #[serde(default)]
    value: Option<f64>,
}

/// One compiled segment.
#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub rule: String,
    pub description: Option<String>,
    pub priority: i64,
    pub value: f64,
    pred: Pred,
}

/// A problem in a rule file: where, which rule, what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleError {
    pub file: String,
    /// 1-based; 0 when the position is not known.
    pub line: usize,
    pub column: usize,
    /// The segment the error is in, if any.
    pub rule: Option<String>,
    pub message: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule `{r}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for RuleError {}

/// Segments in priority order (the first match wins) over one attribute
/// schema.
#[derive(Debug, Clone)]
pub struct RuleSet {
    segments: Vec<Segment>,
    default: Option<String>,
    slots: Slots,
}

impl RuleSet {
    /// Parse and check a rule file. `file` names it in errors. Every error in
    /// the file is reported, not just the first.
    pub fn parse(src: &str, file: &str, schema: &AttrSchema) -> Result<RuleSet, Vec<RuleError>> {
        let spec: FileSpec = serde_norway::from_str(src).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            vec![RuleError {
                file: file.into(),
                line,
                column,
                rule: None,
                message: e.to_string(),
            }]
        })?;
        let mut errors = Vec::new();
        let mut slots = Slots::default();
        let mut segments = Vec::new();
        let mut seen = HashSet::new();
        let n = spec.segments.len() as i64;
        for (i, s) in spec.segments.into_iter().enumerate() {
            let (line, col) = locate_rule(src, &s.name, &s.rule);
            let err = |l: usize, c: usize, message: String| RuleError {
                file: file.into(),
                line: l,
                column: c,
                rule: Some(s.name.clone()),
                message,
            };
            if !is_identifier(&s.name) {
                errors.push(err(
                    line,
                    0,
                    "segment names are identifiers: letters, digits and _".into(),
                ));
            }
            if !seen.insert(s.name.clone()) {
                errors.push(err(
                    line,
                    0,
                    "a segment with this name is defined twice".into(),
                ));
            }
            if s.value.is_some_and(|v| !v.is_finite()) {
                errors.push(err(line, 0, "value must be a finite number".into()));
            }
            let ast = match parse_cel(&s.rule) {
                Ok(ast) => ast,
                Err(None) => {
                    errors.push(err(
                        line,
                        col,
                        "syntax: the expression is not valid CEL".into(),
                    ));
                    continue;
                }
                Err(Some(pe)) => {
                    for e in pe.errors {
                        let (l, c) = (e.pos.0.max(1) as usize, e.pos.1.max(0) as usize);
                        let (fl, fc) = if l == 1 {
                            (line, col + c)
                        } else {
                            (line + l - 1, c + 1)
                        };
                        errors.push(err(fl, fc, format!("syntax: {}", e.msg)));
                    }
                    continue;
                }
            };
            let mut c = Compiler {
                schema,
                slots: &mut slots,
            };
            match c.rule(&ast) {
                Ok(pred) => segments.push(Segment {
                    priority: s.priority.unwrap_or(n - i as i64),
                    name: s.name,
                    rule: s.rule,
                    description: s.description,
                    value: s.value.unwrap_or(1.0),
                    pred,
                }),
                Err(CompileError { message, ident }) => {
                    let off = ident
                        .as_deref()
                        .and_then(|id| find_ident(&s.rule, id))
                        .unwrap_or(0);
                    let (dl, dc) = line_col(&s.rule, off);
                    let (fl, fc) = if dl == 1 {
                        (line, col + dc - 1)
                    } else {
                        (line + dl - 1, dc)
                    };
                    errors.push(err(fl, fc, message));
                }
            }
        }
        if let Some(d) = &spec.default {
            if !is_identifier(d) {
                errors.push(RuleError {
                    file: file.into(),
                    line: 0,
                    column: 0,
                    rule: None,
                    message: format!("default segment `{d}` is not an identifier"),
                });
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Stable: equal priorities keep file order.
        segments.sort_by_key(|s| std::cmp::Reverse(s.priority));
        Ok(RuleSet {
            segments,
            default: spec.default,
            slots,
        })
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    pub fn default_segment(&self) -> Option<&str> {
        self.default.as_deref()
    }

    /// Every segment name a customer can get, in priority order, default last.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.segments.iter().map(|s| s.name.as_str()).collect();
        v.extend(self.default.as_deref());
        v
    }

    /// The attributes the rules read, in slot order.
    pub fn attributes(&self) -> &[String] {
        &self.slots.names
    }

    /// Lay out a customer's attributes for [`RuleSet::classify_row`].
    pub fn row(&self, attrs: &Attrs) -> Row {
        Row(self
            .slots
            .names
            .iter()
            .map(|n| attrs.get(n).map(Value::from_attr))
            .collect())
    }

    /// Index into [`RuleSet::segments`] of the first matching rule.
    pub fn classify_row(&self, row: &Row, today: NaiveDate) -> Option<usize> {
        let env = Env::new(today);
        self.segments
            .iter()
            .position(|s| s.pred.eval(row, env) == Some(true))
    }

    /// The segment name of one customer: first matching rule, else the default.
    pub fn classify(&self, attrs: &Attrs, today: NaiveDate) -> Option<&str> {
        match self.classify_row(&self.row(attrs), today) {
            Some(i) => Some(&self.segments[i].name),
            None => self.default.as_deref(),
        }
    }

    /// Whether one segment's rule matches (`None`: an attribute it needs is missing).
    pub fn matches(&self, segment: usize, row: &Row, today: NaiveDate) -> Option<bool> {
        self.segments.get(segment)?.pred.eval(row, Env::new(today))
    }
}

thread_local! {
    static QUIET_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Parse with `cel-parser`, which panics on some malformed input (its ANTLR
/// runtime reaches `unreachable!`): the panic is caught and reported as a
/// syntax error (`Err(None)`), and kept off stderr.
fn parse_cel(src: &str) -> Result<cel_parser::Expression, Option<cel_parser::ParseErrors>> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET_PANIC.with(|q| q.get()) {
                previous(info);
            }
        }));
    });
    QUIET_PANIC.with(|q| q.set(true));
    let r = std::panic::catch_unwind(|| cel_parser::Parser::new().parse(src));
    QUIET_PANIC.with(|q| q.set(false));
    match r {
        Ok(Ok(ast)) => Ok(ast),
        Ok(Err(e)) => Err(Some(e)),
        Err(_) => Err(None),
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
}

/// Where the rule's expression starts in the file (1-based line and column):
/// the `rule:`/`expr:` key after the segment's `name:`. Falls back to the
/// name's line, or (0, 0).
fn locate_rule(src: &str, name: &str, rule: &str) -> (usize, usize) {
    let lines: Vec<&str> = src.lines().collect();
    let is_name = |l: &str| {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        t.strip_prefix("name:")
            .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\''))
            == Some(name)
    };
    let Some(start) = lines.iter().position(|l| is_name(l)) else {
        return (0, 0);
    };
    for (i, l) in lines
        .iter()
        .enumerate()
        .skip(start.saturating_sub(4))
        .take(16)
    {
        let t = l.trim_start().trim_start_matches("- ").trim_start();
        for key in ["rule:", "expr:"] {
            if let Some(rest) = t.strip_prefix(key) {
                let key_col = l.len() - t.len();
                let after = rest.trim_start();
                let mut col = key_col + key.len() + (rest.len() - after.len());
                if after.starts_with(['"', '\'']) {
                    col += 1;
                }
                if after.starts_with(['|', '>']) {
                    // Block scalar: the expression starts on the next line.
                    let next = lines.get(i + 1).copied().unwrap_or("");
                    let indent = next.len() - next.trim_start().len();
                    return (i + 2, indent + 1);
                }
                if rule.is_empty() || after.contains(rule.lines().next().unwrap_or("").trim()) {
                    return (i + 1, col + 1);
                }
            }
        }
    }
    (start + 1, 1)
}

/// Byte offset of `ident` as a whole word outside string literals.
fn find_ident(expr: &str, ident: &str) -> Option<usize> {
    let bytes = expr.as_bytes();
    let mut in_str: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = in_str {
            if b == b'\\' {
                i += 2;
                continue;
            }
            if b == q {
                in_str = None;
            }
            i += 1;
            continue;
        }
        if b == b'"' || b == b'\'' {
            in_str = Some(b);
            i += 1;
            continue;
        }
        if expr[i..].starts_with(ident) {
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            let before = expr[..i].chars().next_back();
            let after = expr[i + ident.len()..].chars().next();
            if !word(before) && !word(after) {
                return Some(i);
            }
        }
        i += expr[i..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(s: &str, off: usize) -> (usize, usize) {
    let before = &s[..off.min(s.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
