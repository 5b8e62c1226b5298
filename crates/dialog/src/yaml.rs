//! YAML to a tree whose every node knows its line and column.
//!
//! Scripts are written by business users, so every error must point at a
//! place in the file. We parse once with `yaml-rust2`'s event API (driven by
//! our own loop, not its recursive loader, so deep nesting cannot overflow the
//! stack), build a [`Node`] tree with positions, turn it into a
//! `serde_json::Value` for serde, and map serde's error path back to a node.
use std::collections::HashSet;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::TScalarStyle;

/// 1-based line and column in the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `plain` is false for quoted and block scalars: those are always strings.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: NodeKind,
    pub pos: Pos,
}

/// One step of a path into the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    /// The value under this key.
    Key(String),
    /// The key itself (for "unknown field", "unreachable state" ...).
    KeyName(String),
    Index(usize),
}

impl Seg {
    pub fn key(k: impl Into<String>) -> Seg {
        Seg::Key(k.into())
    }
}

/// Render a path the way users read it: `states.opening.on[2].goto`.
pub fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) | Seg::KeyName(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

/// A syntax error from the YAML layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub pos: Pos,
    pub message: String,
}

/// Deepest nesting we accept; scripts need about 8.
const MAX_DEPTH: usize = 64;
/// Bound on nodes after alias expansion ("billion laughs").
const MAX_NODES: usize = 2_000_000;

enum Frame {
    Seq {
        items: Vec<Node>,
        pos: Pos,
        anchor: usize,
    },
    Map {
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
        pos: Pos,
        anchor: usize,
    },
}

fn pos_of(m: &yaml_rust2::scanner::Marker) -> Pos {
    // yaml-rust2 lines are 1-based and columns 0-based.
    Pos {
        line: m.line().min(u32::MAX as usize) as u32,
        col: (m.col() + 1).min(u32::MAX as usize) as u32,
    }
}

fn count_nodes(n: &Node) -> usize {
    let mut count = 0;
    let mut stack = vec![n];
    while let Some(n) = stack.pop() {
        count += 1;
        match &n.kind {
            NodeKind::Scalar { .. } => {}
            NodeKind::Seq(items) => stack.extend(items.iter()),
            NodeKind::Map(entries) => {
                for (k, v) in entries {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
    count
}

/// Parse one YAML document. An empty document is an empty map.
pub fn parse(src: &str) -> Result<Node, YamlError> {
    let mut parser = Parser::new_from_str(src);
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<(usize, Node)> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut documents = 0usize;
    loop {
        let (ev, mark) = parser.next_token().map_err(|e| YamlError {
            pos: pos_of(e.marker()),
            message: e.info().to_string(),
        })?;
        let pos = pos_of(&mark);
        let node = match ev {
            Event::StreamEnd => break,
            Event::Nothing | Event::StreamStart | Event::DocumentEnd => continue,
            Event::DocumentStart => {
                documents += 1;
                if documents > 1 {
                    return Err(YamlError {
                        pos,
                        message: "only one YAML document per script file".into(),
                    });
                }
                continue;
            }
            Event::Alias(id) => {
                let Some((_, n)) = anchors.iter().rev().find(|(a, _)| *a == id) else {
                    return Err(YamlError {
                        pos,
                        message: "alias to an unknown anchor".into(),
                    });
                };
                nodes += count_nodes(n);
                if nodes > MAX_NODES {
                    return Err(YamlError {
                        pos,
                        message: "document too large after expanding aliases".into(),
                    });
                }
                let mut n = n.clone();
                n.pos = pos;
                n
            }
            Event::Scalar(text, style, anchor, _tag) => {
                nodes += 1;
                let n = Node {
                    kind: NodeKind::Scalar {
                        text,
                        plain: style == TScalarStyle::Plain,
                    },
                    pos,
                };
                if anchor > 0 {
                    anchors.push((anchor, n.clone()));
                }
                n
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(YamlError {
                        pos,
                        message: format!("nesting deeper than {MAX_DEPTH} levels"),
                    });
                }
                nodes += 1;
                if matches!(ev, Event::SequenceStart(..)) {
                    stack.push(Frame::Seq {
                        items: Vec::new(),
                        pos,
                        anchor,
                    });
                } else {
                    stack.push(Frame::Map {
                        entries: Vec::new(),
                        key: None,
                        pos,
                        anchor,
                    });
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(frame) = stack.pop() else {
                    return Err(YamlError {
                        pos,
                        message: "unbalanced collection end".into(),
                    });
                };
                let (n, anchor) = match frame {
                    Frame::Seq { items, pos, anchor } => (
                        Node {
                            kind: NodeKind::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Frame::Map {
                        entries,
                        pos,
                        anchor,
                        ..
                    } => {
                        check_keys(&entries)?;
                        // A block map's start mark can sit after its first key; users
                        // read a map as starting at that key.
                        let pos = entries.first().map(|(k, _)| k.pos.min(pos)).unwrap_or(pos);
                        (
                            Node {
                                kind: NodeKind::Map(entries),
                                pos,
                            },
                            anchor,
                        )
                    }
                };
                if anchor > 0 {
                    anchors.push((anchor, n.clone()));
                }
                n
            }
        };
        if nodes > MAX_NODES {
            return Err(YamlError {
                pos,
                message: "document too large".into(),
            });
        }
        match stack.last_mut() {
            None => {
                if root.is_some() {
                    return Err(YamlError {
                        pos,
                        message: "only one YAML document per script file".into(),
                    });
                }
                root = Some(node);
            }
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => {
                    if !matches!(node.kind, NodeKind::Scalar { .. }) {
                        return Err(YamlError {
                            pos: node.pos,
                            message: "mapping keys must be plain text, not lists or maps (quote a value that starts with `{{` or `[`)".into(),
                        });
                    }
                    *key = Some(node);
                }
                Some(k) => entries.push((k, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node {
        kind: NodeKind::Map(Vec::new()),
        pos: Pos { line: 1, col: 1 },
    }))
}

fn check_keys(entries: &[(Node, Node)]) -> Result<(), YamlError> {
    let mut seen: HashSet<&str> = HashSet::with_capacity(entries.len());
    for (k, _) in entries {
        if let NodeKind::Scalar { text, .. } = &k.kind {
            if !seen.insert(text.as_str()) {
                return Err(YamlError {
                    pos: k.pos,
                    message: format!("duplicate key `{text}`"),
                });
            }
        }
    }
    Ok(())
}

impl Node {
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            NodeKind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// Keys of a map in file order (empty for other nodes).
    pub fn keys(&self) -> Vec<&str> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().filter_map(|(k, _)| k.as_str()).collect(),
            _ => Vec::new(),
        }
    }

    /// The node at `path`, if it exists.
    pub fn at(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self;
        for seg in path {
            node = match (seg, &node.kind) {
                (Seg::Key(k) | Seg::KeyName(k), NodeKind::Map(_)) => node.get(k)?,
                (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// A scalar as written in the file: numbers keep their spelling
    /// (`3260.50` stays `3260.50`, not `3260.5`).
    pub fn written(&self, path: &[Seg], value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::Number(_) => self.at(path).and_then(Node::as_str).map(String::from),
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// Position of the deepest node on `path` that exists.
    pub fn locate(&self, path: &[Seg]) -> Pos {
        let mut node = self;
        for seg in path {
            let next = match (seg, &node.kind) {
                (Seg::Key(k), NodeKind::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .map(|(_, v)| v),
                (Seg::KeyName(k), NodeKind::Map(entries)) => {
                    return entries
                        .iter()
                        .find(|(key, _)| key.as_str() == Some(k))
                        .map(|(key, _)| key.pos)
                        .unwrap_or(node.pos)
                }
                (Seg::Index(i), NodeKind::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return node.pos,
            }
        }
        node.pos
    }

    /// The tree as JSON for serde. Plain scalars follow the YAML 1.2 core
    /// schema (null, booleans, numbers), except that numbers with a leading
    /// `+` or `0` stay text: they are phone numbers and codes, not amounts.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            NodeKind::Scalar { text, plain } => {
                if !plain {
                    return Value::String(text.clone());
                }
                plain_scalar(text)
            }
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut m = serde_json::Map::new();
                for (k, v) in entries {
                    m.insert(k.as_str().unwrap_or_default().to_string(), v.to_json());
                }
                Value::Object(m)
            }
        }
    }
}

fn plain_scalar(text: &str) -> serde_json::Value {
    use serde_json::Value;
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let keeps_text = text.starts_with('+')
        || (digits.len() > 1 && digits.starts_with('0') && !digits.starts_with("0."));
    if !keeps_text && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = text.parse::<i64>() {
            return Value::from(i);
        }
    }
    let looks_float = !keeps_text
        && digits
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float {
        if let Ok(f) = text.parse::<f64>() {
            if let Some(n) = serde_json::Number::from_f64(f) {
                return Value::Number(n);
            }
        }
    }
    Value::String(text.to_string())
}

/// Map a serde path (from `serde_path_to_error`) to our segments.
pub fn segs_from_serde(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|s| match s {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_point_at_values() {
        let src = "name: x\nstates:\n  a:\n    say: \"hi\"\n    on:\n      - goto: b\n";
        let root = parse(src).unwrap();
        let p = root.locate(&[
            Seg::key("states"),
            Seg::key("a"),
            Seg::key("on"),
            Seg::Index(0),
            Seg::key("goto"),
        ]);
        assert_eq!(p, Pos { line: 6, col: 15 });
        let k = root.locate(&[Seg::key("states"), Seg::KeyName("a".into())]);
        assert_eq!(k, Pos { line: 3, col: 3 });
        assert_eq!(root.keys(), vec!["name", "states"]);
    }

    #[test]
    fn scalars_follow_core_schema_but_keep_phone_numbers() {
        let root =
            parse("a: 12\nb: +8613800138000\nc: '7'\nd: true\ne: 1.5\nf: 0755\ng:\n").unwrap();
        let j = root.to_json();
        assert_eq!(j["a"], serde_json::json!(12));
        assert_eq!(j["b"], serde_json::json!("+8613800138000"));
        assert_eq!(j["c"], serde_json::json!("7"));
        assert_eq!(j["d"], serde_json::json!(true));
        assert_eq!(j["e"], serde_json::json!(1.5));
        assert_eq!(j["f"], serde_json::json!("0755"));
        assert_eq!(j["g"], serde_json::Value::Null);
    }

    #[test]
    fn duplicate_keys_and_deep_nesting_are_errors() {
        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert_eq!(e.pos.line, 3);
        assert!(e.message.contains("duplicate"), "{}", e.message);
        let deep = "[".repeat(100_000);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn aliases_expand_with_a_budget() {
        let root = parse("x: &a [1, 2]\ny: *a\n").unwrap();
        assert_eq!(root.to_json()["y"], serde_json::json!([1, 2]));
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let prev = i - 1;
            bomb.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
        }
        assert!(parse(&bomb).is_err());
    }
}
