//! Graph export names every state once and every transition as an edge.
use std::path::Path;

#[test]
fn mermaid_and_dot_show_states_transitions_and_outcomes() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts/order_confirmation.zh.yaml");
    let p = waihu_dialog::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let m = waihu_dialog::graph::mermaid(&p);
    assert!(m.starts_with("flowchart TD\n"));
    for (i, st) in p.states.iter().enumerate() {
        assert!(
            m.contains(&format!("  s{i}[\"")),
            "state {} missing",
            st.name
        );
    }
    let opening = p.state_id("opening").unwrap();
    let verify = p.state_id("verify_address").unwrap();
    assert!(
        m.contains(&format!("s{opening} -->|\"affirm\"| s{verify}")),
        "{m}"
    );
    assert!(m.contains("end: confirmed"));
    let d = waihu_dialog::graph::dot(&p);
    assert!(d.starts_with("digraph \"order_confirmation\" {"));
    assert!(d.contains(&format!("s{opening} -> s{verify} [label=\"affirm\"];")));
    assert!(
        d.contains("shape=diamond"),
        "the router offer_check is drawn as a decision"
    );
    assert_eq!(d.matches('{').count(), d.matches('}').count());
}
