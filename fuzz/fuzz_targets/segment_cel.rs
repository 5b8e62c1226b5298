//! Segment rule files with CEL rules (crates/segment): parse, type-check against
//! the attribute kinds of the shipped customers, then classify two customers.
#![no_main]
use chrono::NaiveDate;
use libfuzzer_sys::fuzz_target;
use waihu_core::{AttrKind, AttrSchema, AttrValue, Attrs};
use waihu_segment::RuleSet;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let mut schema = AttrSchema::new();
    for n in [
        "purchase_freq",
        "avg_order",
        "interaction_count",
        "last_purchase",
        "last_interaction",
    ] {
        schema.insert(n.into(), AttrKind::Number);
    }
    schema.insert("member_level".into(), AttrKind::Text);
    schema.insert("city".into(), AttrKind::Text);
    schema.insert("has_app".into(), AttrKind::Bool);
    schema.insert("registered".into(), AttrKind::Date);
    let Ok(rules) = RuleSet::parse(src, "fuzz.yaml", &schema) else {
        return;
    };
    let today = NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let mut full = Attrs::new();
    full.insert("purchase_freq".into(), AttrValue::Number(7.0));
    full.insert("avg_order".into(), AttrValue::Number(-1e308));
    full.insert("last_purchase".into(), AttrValue::Number(f64::MAX));
    full.insert("member_level".into(), AttrValue::Text("金卡".into()));
    full.insert("has_app".into(), AttrValue::Bool(true));
    full.insert("registered".into(), AttrValue::Date(NaiveDate::MIN));
    for attrs in [Attrs::new(), full] {
        let row = rules.row(&attrs);
        let _ = rules.classify_row(&row, today);
    }
});
