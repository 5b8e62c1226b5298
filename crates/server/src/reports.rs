//! Pure shaping of the call reports: which funnel step loses the most, the
//! intents × states matrix, and a script's state graph laid out in layers.
//! No I/O; the handlers in `calls.rs` and `campaigns.rs` feed them store rows
//! and compiled scripts.
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::Serialize;
use waihu_dialog::program::{Effect, Next};
use waihu_dialog::Program;
use waihu_store::FunnelRow;

/// A funnel step as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelStep {
    #[serde(flatten)]
    pub row: FunnelRow,
    /// dropped / entered.
    pub drop_rate: Option<f64>,
    /// entered / entered at the first step.
    pub reach: Option<f64>,
    /// The step with the largest drop (highlighted in the dashboard).
    pub largest_drop: bool,
}

/// Steps need at least this share of the first step's calls to be called the
/// largest drop: 1 of 1 dropped is 100% but says nothing.
const MIN_SHARE_FOR_LARGEST: f64 = 0.05;

/// Drop rates, reach, and the largest drop: the highest drop rate among steps
/// entered by enough calls, ties broken by more calls dropped.
pub fn funnel_steps(rows: &[FunnelRow]) -> Vec<FunnelStep> {
    let first = rows.iter().map(|r| r.entered).max().unwrap_or(0);
    let rate = |r: &FunnelRow| (r.entered > 0).then(|| r.dropped as f64 / r.entered as f64);
    let largest = rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.dropped > 0 && r.entered as f64 >= MIN_SHARE_FOR_LARGEST * first as f64)
        .max_by(|(_, a), (_, b)| {
            rate(a)
                .unwrap_or(0.0)
                .total_cmp(&rate(b).unwrap_or(0.0))
                .then(a.dropped.cmp(&b.dropped))
        })
        .map(|(i, _)| i);
    rows.iter()
        .enumerate()
        .map(|(i, r)| FunnelStep {
            row: r.clone(),
            drop_rate: rate(r),
            reach: (first > 0).then(|| r.entered as f64 / first as f64),
            largest_drop: Some(i) == largest,
        })
        .collect()
}

/// Intents × states as a dense matrix: row and column labels, counts.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntentMatrix {
    pub states: Vec<String>,
    pub intents: Vec<String>,
    /// `counts[state][intent]`.
    pub counts: Vec<Vec<u64>>,
    pub max: u64,
    pub total: u64,
}

/// States in the given order first (e.g. the funnel's path order), then any
/// others alphabetically; intents by total count, most frequent first.
pub fn intent_matrix(cells: &[(String, String, u64)], state_order: &[String]) -> IntentMatrix {
    let mut states: Vec<String> = state_order
        .iter()
        .filter(|s| cells.iter().any(|(st, _, _)| st == *s))
        .cloned()
        .collect();
    let rest: BTreeSet<&String> = cells
        .iter()
        .map(|(s, _, _)| s)
        .filter(|s| !states.contains(s))
        .collect();
    states.extend(rest.into_iter().cloned());
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, i, n) in cells {
        *totals.entry(i).or_default() += n;
    }
    let mut intents: Vec<(&str, u64)> = totals.into_iter().collect();
    intents.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let intents: Vec<String> = intents.into_iter().map(|(i, _)| i.to_string()).collect();
    let mut counts = vec![vec![0u64; intents.len()]; states.len()];
    for (s, i, n) in cells {
        if let (Some(r), Some(c)) = (
            states.iter().position(|x| x == s),
            intents.iter().position(|x| x == i),
        ) {
            counts[r][c] += n;
        }
    }
    IntentMatrix {
        max: counts.iter().flatten().copied().max().unwrap_or(0),
        total: counts.iter().flatten().sum(),
        states,
        intents,
        counts,
    }
}

/// The voice report's totals over all segments: 满意度 and mean sentiment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceTotals {
    pub turns: u64,
    pub with_sentiment: u64,
    pub positive: u64,
    pub negative: u64,
    /// positive / (positive + negative).
    pub satisfaction: Option<f64>,
    pub avg_sentiment: Option<f64>,
}

/// Sum the per-segment rows (each turn is in exactly one segment row).
pub fn voice_totals(rows: &[waihu_store::VoiceRow]) -> VoiceTotals {
    let seg = rows.iter().filter(|r| r.by == "segment");
    let mut t = VoiceTotals {
        turns: 0,
        with_sentiment: 0,
        positive: 0,
        negative: 0,
        satisfaction: None,
        avg_sentiment: None,
    };
    let mut sum = 0.0;
    for r in seg {
        t.turns += r.turns;
        t.with_sentiment += r.with_sentiment;
        t.positive += r.positive;
        t.negative += r.negative;
        sum += r.avg_sentiment.unwrap_or(0.0) * r.with_sentiment as f64;
    }
    t.satisfaction = waihu_core::kpi::satisfaction(t.positive, t.negative);
    if t.with_sentiment > 0 {
        t.avg_sentiment = Some(sum / t.with_sentiment as f64);
    }
    t
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    pub name: String,
    pub title: Option<String>,
    /// Shortest number of transitions from the start state (unreachable
    /// states come one layer after the deepest).
    pub layer: usize,
    pub start: bool,
    /// The state ends the call when its prompt is done, with this outcome.
    pub end: Option<String>,
    /// Traffic from the funnel (0 when no call reached it).
    pub entered: u64,
    pub continued: u64,
    pub dropped: u64,
    pub completed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphEdge {
    pub from: String,
    /// Next state, or None when the transition ends the call.
    pub to: Option<String>,
    /// Outcome when the transition ends the call.
    pub end: Option<String>,
    /// What triggers it: intents, a handler name, no_input, no_match, max_turns, else.
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScriptGraph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    pub layers: usize,
}

fn edge(p: &Program, from: usize, label: String, e: &Effect, out: &mut Vec<GraphEdge>) {
    let from = p.states[from].name.clone();
    match &e.next {
        Next::Goto(t) => {
            if let Some(to) = p.states.get(*t as usize) {
                out.push(GraphEdge {
                    from,
                    to: Some(to.name.clone()),
                    end: None,
                    label,
                });
            }
        }
        Next::End(o) => out.push(GraphEdge {
            from,
            to: None,
            end: Some(o.clone()),
            label,
        }),
        Next::Stay => {}
    }
}

/// The state graph of a compiled script with per-state traffic.
pub fn script_graph(p: &Program, funnel: &[FunnelRow]) -> ScriptGraph {
    let mut edges = Vec::new();
    for (i, st) in p.states.iter().enumerate() {
        for r in &st.rules {
            let mut parts = Vec::new();
            if !r.intents.is_empty() {
                parts.push(r.intents.join("|"));
            }
            if let Some(e) = &r.entity {
                parts.push(format!("entity:{e}"));
            }
            if r.emotion.is_some() {
                parts.push("emotion".into());
            }
            if let Some(d) = &r.dtmf {
                parts.push(format!("dtmf:{d}"));
            }
            if r.when.is_some() {
                parts.push("when".into());
            }
            let label = if parts.is_empty() {
                "else".into()
            } else {
                parts.join(" ")
            };
            edge(p, i, label, &r.effect, &mut edges);
        }
        for (n, h) in &st.handlers {
            edge(p, i, n.clone(), &h.effect, &mut edges);
        }
        if let Some(r) = &st.no_input {
            edge(p, i, "no_input".into(), &r.then, &mut edges);
        }
        if let Some(r) = &st.no_match {
            edge(p, i, "no_match".into(), &r.then, &mut edges);
        }
        if let Some(e) = &st.on_max_turns {
            edge(p, i, "max_turns".into(), e, &mut edges);
        }
    }
    // Layers: breadth-first from the start over state-to-state edges.
    let index = |name: &str| p.states.iter().position(|s| s.name == name);
    let mut layer: Vec<Option<usize>> = vec![None; p.states.len()];
    let mut queue = VecDeque::new();
    if let Some(l) = layer.get_mut(p.start as usize) {
        *l = Some(0);
        queue.push_back(p.start as usize);
    }
    while let Some(i) = queue.pop_front() {
        let d = layer[i].unwrap_or(0);
        for e in edges.iter().filter(|e| e.from == p.states[i].name) {
            if let Some(j) = e.to.as_deref().and_then(index) {
                if layer[j].is_none() {
                    layer[j] = Some(d + 1);
                    queue.push_back(j);
                }
            }
        }
    }
    let deepest = layer.iter().flatten().copied().max().unwrap_or(0);
    let nodes: Vec<GraphNode> = p
        .states
        .iter()
        .enumerate()
        .map(|(i, st)| {
            let f = funnel.iter().find(|r| r.state == st.name);
            GraphNode {
                name: st.name.clone(),
                title: st.title.clone(),
                layer: layer[i].unwrap_or(deepest + 1),
                start: i == p.start as usize,
                end: st.end.clone(),
                entered: f.map_or(0, |r| r.entered),
                continued: f.map_or(0, |r| r.continued),
                dropped: f.map_or(0, |r| r.dropped),
                completed: f.map_or(0, |r| r.completed),
            }
        })
        .collect();
    let layers = nodes.iter().map(|n| n.layer + 1).max().unwrap_or(0);
    ScriptGraph {
        nodes,
        edges,
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, entered: u64, continued: u64, dropped: u64, pos: f64) -> FunnelRow {
        FunnelRow {
            state: state.into(),
            entered,
            continued,
            dropped,
            completed: entered - continued - dropped,
            avg_position: pos,
        }
    }

    #[test]
    fn largest_drop_is_the_highest_rate_among_steps_with_traffic() {
        let rows = [
            row("greet", 1000, 900, 100, 0.0),
            row("fee", 900, 560, 340, 1.0), // 37.8%
            row("confirm", 560, 0, 60, 2.0),
            row("rare", 10, 0, 10, 3.0), // 100%, but 1% of traffic
        ];
        let steps = funnel_steps(&rows);
        let flagged: Vec<_> = steps
            .iter()
            .filter(|s| s.largest_drop)
            .map(|s| s.row.state.as_str())
            .collect();
        assert_eq!(flagged, ["fee"]);
        assert_eq!(steps[1].drop_rate, Some(340.0 / 900.0));
        assert_eq!(steps[2].reach, Some(0.56));
        assert!(funnel_steps(&[row("a", 5, 5, 0, 0.0)])
            .iter()
            .all(|s| !s.largest_drop));
        assert!(funnel_steps(&[]).is_empty());
    }

    #[test]
    fn largest_drop_is_unique_and_beats_every_eligible_step_on_random_funnels() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for _ in 0..2000 {
            let n = rng.gen_range(0..8);
            let rows: Vec<FunnelRow> = (0..n)
                .map(|i| {
                    let entered = rng.gen_range(0..200u64);
                    let dropped = rng.gen_range(0..=entered);
                    let continued = rng.gen_range(0..=entered - dropped);
                    row(&format!("s{i}"), entered, continued, dropped, i as f64)
                })
                .collect();
            let steps = funnel_steps(&rows);
            let first = rows.iter().map(|r| r.entered).max().unwrap_or(0) as f64;
            let eligible = |s: &FunnelStep| {
                s.row.dropped > 0 && s.row.entered as f64 >= MIN_SHARE_FOR_LARGEST * first
            };
            let marked: Vec<&FunnelStep> = steps.iter().filter(|s| s.largest_drop).collect();
            assert!(marked.len() <= 1);
            assert_eq!(marked.is_empty(), !steps.iter().any(eligible), "{rows:?}");
            if let Some(m) = marked.first() {
                assert!(eligible(m));
                for s in steps.iter().filter(|s| eligible(s)) {
                    assert!(s.drop_rate <= m.drop_rate, "{rows:?}");
                }
            }
            for s in &steps {
                assert!(s.drop_rate.is_none_or(|r| (0.0..=1.0).contains(&r)));
                assert!(s.reach.is_none_or(|r| (0.0..=1.0).contains(&r)));
            }
        }
    }

    #[test]
    fn intent_matrix_orders_states_by_path_and_intents_by_count() {
        let cells = vec![
            ("b".to_string(), "deny".to_string(), 2),
            ("a".to_string(), "affirm".to_string(), 5),
            ("z".to_string(), "deny".to_string(), 4),
            ("b".to_string(), "affirm".to_string(), 1),
        ];
        let m = intent_matrix(&cells, &["b".into(), "a".into(), "missing".into()]);
        assert_eq!(m.states, ["b", "a", "z"]);
        assert_eq!(m.intents, ["affirm", "deny"]);
        assert_eq!(m.counts, [[1, 2], [5, 0], [0, 4]]);
        assert_eq!((m.max, m.total), (5, 12));
    }

    #[test]
    fn graph_of_a_shipped_script_has_layers_and_traffic() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/scripts/order_confirmation.en.yaml"
        );
        let p = waihu_dialog::load_file(std::path::Path::new(path)).unwrap();
        let start = p.states[p.start as usize].name.clone();
        let g = script_graph(&p, &[row(&start, 7, 5, 2, 0.0)]);
        assert_eq!(g.nodes.len(), p.states.len());
        let s = g.nodes.iter().find(|n| n.start).unwrap();
        assert_eq!((s.layer, s.entered, s.dropped), (0, 7, 2));
        assert!(g.layers >= 2, "{g:?}");
        // Every edge starts at a known state; gotos land on known states one layer on at most.
        for e in &g.edges {
            let from = g.nodes.iter().find(|n| n.name == e.from).unwrap();
            if let Some(to) = &e.to {
                let to = g.nodes.iter().find(|n| &n.name == to).unwrap();
                assert!(to.layer <= from.layer + 1, "{e:?}");
            } else {
                assert!(e.end.is_some());
            }
        }
        assert!(g.edges.iter().any(|e| e.end.is_some()));
    }
}
