//! The state graph of a program as Mermaid or Graphviz DOT.
use std::fmt::Write;

use crate::program::{CRule, Effect, Next, Program};

/// One drawn edge: from, label, to (`None` = the call ends with the label).
struct Edge {
    from: usize,
    label: String,
    to: Option<usize>,
    end: Option<String>,
}

fn rule_label(r: &CRule) -> String {
    let mut parts = Vec::new();
    if !r.intents.is_empty() {
        parts.push(r.intents.join("|"));
    }
    if let Some(e) = &r.entity {
        parts.push(format!("entity:{e}"));
    }
    if let Some(e) = &r.emotion {
        parts.push(format!(
            "emotion:{}",
            format!("{e:?}")
                .to_lowercase()
                .replace("label(", "")
                .replace(')', "")
        ));
    }
    if let Some(d) = &r.dtmf {
        parts.push(format!("dtmf:{d}"));
    }
    if r.when.is_some() {
        parts.push("when".into());
    }
    if parts.is_empty() {
        "else".into()
    } else {
        parts.join(" ")
    }
}

fn push(edges: &mut Vec<Edge>, from: usize, label: String, e: &Effect) {
    match &e.next {
        Next::Goto(t) => edges.push(Edge {
            from,
            label,
            to: Some(*t as usize),
            end: None,
        }),
        Next::End(o) => edges.push(Edge {
            from,
            label,
            to: None,
            end: Some(o.clone()),
        }),
        Next::Stay => {}
    }
}

fn edges(p: &Program) -> Vec<Edge> {
    let mut out = Vec::new();
    for (i, st) in p.states.iter().enumerate() {
        for r in &st.rules {
            push(&mut out, i, rule_label(r), &r.effect);
        }
        for (n, h) in &st.handlers {
            push(&mut out, i, n.clone(), &h.effect);
        }
        if let Some(r) = &st.no_input {
            push(&mut out, i, "no_input".into(), &r.then);
        }
        if let Some(r) = &st.no_match {
            push(&mut out, i, "no_match".into(), &r.then);
        }
        if let Some(e) = &st.on_max_turns {
            push(&mut out, i, "max_turns".into(), e);
        }
        if let Some(o) = &st.end {
            out.push(Edge {
                from: i,
                label: String::new(),
                to: None,
                end: Some(o.clone()),
            });
        }
    }
    out
}

fn node_label(p: &Program, i: usize) -> String {
    let st = &p.states[i];
    match &st.title {
        Some(t) => format!("{t}\\n{}", st.name),
        None => st.name.clone(),
    }
}

fn esc(s: &str) -> String {
    s.replace('"', "'")
}

/// Mermaid flowchart. Ends are drawn as rounded outcome nodes.
pub fn mermaid(p: &Program) -> String {
    let mut s = String::from("flowchart TD\n");
    for i in 0..p.states.len() {
        let label = esc(&node_label(p, i)).replace("\\n", "<br/>");
        let _ = writeln!(s, "  s{i}[\"{label}\"]");
    }
    let _ = writeln!(s, "  start((start)) --> s{}", p.start);
    let mut outcomes: Vec<String> = Vec::new();
    for e in edges(p) {
        let to = match (e.to, &e.end) {
            (Some(t), _) => format!("s{t}"),
            (None, Some(o)) => {
                let idx = outcomes.iter().position(|x| x == o).unwrap_or_else(|| {
                    outcomes.push(o.clone());
                    outcomes.len() - 1
                });
                format!("o{idx}")
            }
            (None, None) => continue,
        };
        if e.label.is_empty() {
            let _ = writeln!(s, "  s{} --> {to}", e.from);
        } else {
            let _ = writeln!(s, "  s{} -->|\"{}\"| {to}", e.from, esc(&e.label));
        }
    }
    for (i, o) in outcomes.iter().enumerate() {
        let _ = writeln!(s, "  o{i}([\"end: {}\"])", esc(o));
    }
    s
}

/// Graphviz DOT.
pub fn dot(p: &Program) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
        esc(&p.name)
    );
    for i in 0..p.states.len() {
        let shape = if p.states[i].is_router() {
            " shape=diamond"
        } else {
            ""
        };
        let _ = writeln!(s, "  s{i} [label=\"{}\"{shape}];", esc(&node_label(p, i)));
    }
    let _ = writeln!(s, "  start [shape=circle];\n  start -> s{};", p.start);
    let mut outcomes: Vec<String> = Vec::new();
    for e in edges(p) {
        let to = match (e.to, &e.end) {
            (Some(t), _) => format!("s{t}"),
            (None, Some(o)) => {
                let idx = outcomes.iter().position(|x| x == o).unwrap_or_else(|| {
                    outcomes.push(o.clone());
                    outcomes.len() - 1
                });
                format!("o{idx}")
            }
            (None, None) => continue,
        };
        let _ = writeln!(s, "  s{} -> {to} [label=\"{}\"];", e.from, esc(&e.label));
    }
    for (i, o) in outcomes.iter().enumerate() {
        let _ = writeln!(s, "  o{i} [label=\"end: {}\" shape=oval];", esc(o));
    }
    s.push_str("}\n");
    s
}
