use chrono::NaiveDate;
use proptest::prelude::*;
use waihu_core::{AttrKind, AttrSchema, AttrValue, Attrs};

use crate::cel_oracle::CelOracle;
use crate::RuleSet;

fn schema() -> AttrSchema {
    [
        ("purchase_freq", AttrKind::Number),
        ("avg_order", AttrKind::Number),
        ("interaction_count", AttrKind::Number),
        ("last_purchase", AttrKind::Number),
        ("last_interaction", AttrKind::Number),
        ("member_level", AttrKind::Text),
        ("app_user", AttrKind::Bool),
        ("registered", AttrKind::Date),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

const SEED_RULES: &str = "\
# the seed's three segments
segments:
  - name: high_value
    description: 高价值客户
    rule: purchase_freq > 5 && avg_order > 1000
  - name: potential
    rule: interaction_count > 3 && last_purchase < 30
  - name: churn_risk
    rule: \"last_interaction > 90\"
default: regular
";

fn attrs(pairs: &[(&str, AttrValue)]) -> Attrs {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 25).unwrap()
}

#[test]
fn seed_rules_classify_with_priority() {
    let rs = RuleSet::parse(SEED_RULES, "seg.yaml", &schema()).unwrap();
    assert_eq!(
        rs.names(),
        ["high_value", "potential", "churn_risk", "regular"]
    );
    let n = AttrValue::Number;
    // Matches both high_value and churn_risk: the first listed wins.
    let both = attrs(&[
        ("purchase_freq", n(9.0)),
        ("avg_order", n(2000.0)),
        ("last_interaction", n(120.0)),
    ]);
    assert_eq!(rs.classify(&both, today()), Some("high_value"));
    let churn = attrs(&[
        ("purchase_freq", n(1.0)),
        ("avg_order", n(2000.0)),
        ("last_interaction", n(120.0)),
    ]);
    assert_eq!(rs.classify(&churn, today()), Some("churn_risk"));
    let pot = attrs(&[("interaction_count", n(4.0)), ("last_purchase", n(10.0))]);
    assert_eq!(rs.classify(&pot, today()), Some("potential"));
    assert_eq!(rs.classify(&Attrs::new(), today()), Some("regular"));
    assert_eq!(
        rs.attributes(),
        [
            "purchase_freq",
            "avg_order",
            "interaction_count",
            "last_purchase",
            "last_interaction"
        ]
    );
}

#[test]
fn explicit_priority_overrides_file_order() {
    let src = "segments:\n  - name: a\n    rule: avg_order > 1\n  - name: b\n    rule: avg_order > 2\n    priority: 100\n";
    let rs = RuleSet::parse(src, "p.yaml", &schema()).unwrap();
    let x = attrs(&[("avg_order", AttrValue::Number(5.0))]);
    assert_eq!(rs.classify(&x, today()), Some("b"));
    assert_eq!(
        rs.classify(&attrs(&[("avg_order", AttrValue::Number(1.5))]), today()),
        Some("a")
    );
    assert_eq!(rs.classify(&Attrs::new(), today()), None);
}

#[test]
fn text_bool_date_and_functions() {
    let src = r#"
segments:
  - name: gold_app
    rule: member_level in ["金卡", "钻石"] && app_user
  - name: new_member
    rule: days_since(registered) <= 30 || registered > date("2026-11-20")
  - name: silver
    rule: member_level.startsWith("银") && size(member_level) == 2 && app_user == false
"#;
    let rs = RuleSet::parse(src, "t.yaml", &schema()).unwrap();
    let t = |s: &str| AttrValue::Text(s.into());
    let d = |y, m, dd| AttrValue::Date(NaiveDate::from_ymd_opt(y, m, dd).unwrap());
    assert_eq!(
        rs.classify(
            &attrs(&[
                ("member_level", t("金卡")),
                ("app_user", AttrValue::Bool(true))
            ]),
            today()
        ),
        Some("gold_app")
    );
    assert_eq!(
        rs.classify(&attrs(&[("registered", d(2026, 11, 1))]), today()),
        Some("new_member")
    );
    assert_eq!(
        rs.classify(&attrs(&[("registered", d(2025, 1, 1))]), today()),
        None
    );
    assert_eq!(
        rs.classify(
            &attrs(&[
                ("member_level", t("银卡")),
                ("app_user", AttrValue::Bool(false))
            ]),
            today()
        ),
        Some("silver")
    );
}

#[test]
fn missing_attributes_follow_cel_absorption() {
    let src = "segments:\n  - name: x\n    rule: avg_order > 5 || app_user\n  - name: y\n    rule: '!(avg_order > 5)'\n";
    let rs = RuleSet::parse(src, "m.yaml", &schema()).unwrap();
    // avg_order missing, app_user true: `||` absorbs the missing side.
    assert_eq!(
        rs.classify(&attrs(&[("app_user", AttrValue::Bool(true))]), today()),
        Some("x")
    );
    // Both missing: neither rule matches (the negation of "unknown" is unknown).
    assert_eq!(rs.classify(&Attrs::new(), today()), None);
}

fn errors(src: &str) -> Vec<crate::RuleError> {
    RuleSet::parse(src, "bad.yaml", &schema()).unwrap_err()
}

#[test]
fn unknown_attribute_is_reported_with_rule_name_and_position() {
    let src = "segments:\n  - name: high_value\n    rule: purchase_freq > 5 && avg_ordr > 1000\n";
    let e = errors(src);
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].rule.as_deref(), Some("high_value"));
    assert_eq!((e[0].line, e[0].column), (3, 32), "{}", e[0]);
    assert!(
        e[0].message.contains("unknown attribute `avg_ordr`"),
        "{}",
        e[0]
    );
    assert!(
        e[0].to_string()
            .starts_with("bad.yaml:3:32: rule `high_value`: unknown attribute"),
        "{}",
        e[0]
    );
}

#[test]
fn syntax_errors_have_positions_and_all_rules_are_checked() {
    let src = "segments:\n  - name: a\n    rule: purchase_freq > > 5\n  - name: b\n    rule: member_level > 3\n  - name: c\n    rule: avg_order\n";
    let e = errors(src);
    assert_eq!(
        e.iter().filter(|e| e.rule.as_deref() == Some("a")).count(),
        e.iter().filter(|e| e.line == 3).count()
    );
    let a = e.iter().find(|e| e.rule.as_deref() == Some("a")).unwrap();
    assert_eq!(a.line, 3);
    assert!(a.column >= 11, "{a}");
    assert!(a.message.starts_with("syntax"), "{a}");
    let b = e.iter().find(|e| e.rule.as_deref() == Some("b")).unwrap();
    assert!(
        b.message.contains("cannot compare a text with a number"),
        "{b}"
    );
    assert_eq!(b.line, 5);
    let c = e.iter().find(|e| e.rule.as_deref() == Some("c")).unwrap();
    assert!(c.message.contains("must be true or false"), "{c}");
}

#[test]
fn date_compared_with_number_suggests_days_since() {
    let e = errors("segments:\n  - name: old\n    rule: registered > 30\n");
    assert!(e[0].message.contains("days_since"), "{}", e[0]);
}

#[test]
fn yaml_errors_have_positions() {
    let e = errors("segments:\n  - name: a\n    rule: x > 1\n   bogus: [\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].line >= 3, "{}", e[0]);
    let e = errors("segments:\n  - name: a\n    rul: x > 1\n");
    assert!(e[0].message.contains("rul"), "{}", e[0]);
    let e = errors(
        "segments:\n  - name: a\n    rule: avg_order > 1\n  - name: a\n    rule: avg_order > 2\n",
    );
    assert!(e[0].message.contains("twice"), "{}", e[0]);
}

#[test]
fn unknown_function_is_reported() {
    let e = errors("segments:\n  - name: a\n    rule: lower(member_level) == \"x\"\n");
    assert!(
        e[0].message.contains("unknown function `lower`"),
        "{}",
        e[0]
    );
    assert_eq!((e[0].line, e[0].column), (3, 11));
}

#[test]
fn shipped_example_compiles_against_the_sample_schema() {
    let src = include_str!("../../../examples/segments.yaml");
    // The schema an import of the shipped customers file infers.
    let csv = include_bytes!("../../../examples/customers.csv");
    let opts = waihu_ingest::Options::new("CN").unwrap();
    let schema: AttrSchema = waihu_ingest::Source::open(&csv[..], opts).unwrap().kinds;
    let rs =
        RuleSet::parse(src, "examples/segments.yaml", &schema).unwrap_or_else(|e| panic!("{e:?}"));
    assert!(rs
        .names()
        .starts_with(&["high_value", "potential", "churn_risk"]));
}

// ---- property tests ----

fn arb_attrs() -> impl Strategy<Value = Attrs> {
    (
        proptest::option::of(0.0f64..20.0),
        proptest::option::of(0.0f64..3000.0),
        proptest::option::of(0u8..10),
        proptest::option::of(proptest::bool::ANY),
        proptest::option::of(prop_oneof![Just("金卡"), Just("银卡"), Just("普通")]),
    )
        .prop_map(|(f, a, i, app, lvl)| {
            let mut m = Attrs::new();
            if let Some(f) = f {
                m.insert("purchase_freq".into(), AttrValue::Number(f.round()));
            }
            if let Some(a) = a {
                m.insert("avg_order".into(), AttrValue::Number(a));
            }
            if let Some(i) = i {
                m.insert("interaction_count".into(), AttrValue::Number(f64::from(i)));
            }
            if let Some(b) = app {
                m.insert("app_user".into(), AttrValue::Bool(b));
            }
            if let Some(l) = lvl {
                m.insert("member_level".into(), AttrValue::Text(l.into()));
            }
            m
        })
}

fn arb_full_attrs() -> impl Strategy<Value = Attrs> {
    (
        0.0f64..20.0,
        0.0f64..3000.0,
        0u8..10,
        proptest::bool::ANY,
        prop_oneof![Just("金卡"), Just("银卡"), Just("普通")],
    )
        .prop_map(|(f, a, i, app, lvl)| {
            attrs(&[
                ("purchase_freq", AttrValue::Number(f.round())),
                ("avg_order", AttrValue::Number(a)),
                ("interaction_count", AttrValue::Number(f64::from(i))),
                ("app_user", AttrValue::Bool(app)),
                ("member_level", AttrValue::Text(lvl.into())),
            ])
        })
}

const ORACLE_RULES: [&str; 7] = [
    "purchase_freq > 5.0 && avg_order > 1000.0",
    "purchase_freq * 2.0 >= interaction_count + 3.0 || app_user",
    "!(avg_order < 500.0) && member_level == \"金卡\"",
    "member_level in [\"金卡\", \"银卡\"] && interaction_count != 2.0",
    "app_user ? avg_order > 100.0 : purchase_freq < 3.0",
    "member_level.startsWith(\"银\") || member_level.contains(\"金\")",
    "avg_order / purchase_freq > 200.0",
];

/// The oracle rules compiled by waihu and by cel-interpreter.
fn oracle() -> (RuleSet, CelOracle) {
    let yaml: String = std::iter::once("segments:\n".to_string())
        .chain(
            ORACLE_RULES
                .iter()
                .enumerate()
                .map(|(i, r)| format!("  - name: r{i}\n    rule: '{r}'\n")),
        )
        .collect();
    let rs = RuleSet::parse(&yaml, "o.yaml", &schema()).unwrap();
    let named: Vec<(String, String)> = ORACLE_RULES
        .iter()
        .enumerate()
        .map(|(i, r)| (format!("r{i}"), r.to_string()))
        .collect();
    (rs, CelOracle::new(&named).unwrap())
}

proptest! {
    /// With every attribute present, the compiled evaluator agrees with
    /// cel-interpreter wherever CEL gives a bool; where CEL errors (division
    /// by zero) the compiled rule does not match. (Missing attributes are not
    /// compared: cel-interpreter propagates an error through `||` where the
    /// CEL spec, and waihu, let the other side decide.)
    #[test]
    fn compiled_rules_agree_with_cel_interpreter(a in arb_full_attrs()) {
        let (rs, cel) = oracle();
        let row = rs.row(&a);
        for (i, rule) in ORACLE_RULES.iter().enumerate() {
            let ours = rs.matches(i, &row, today());
            match cel.eval_rule(i, &a) {
                Ok(b) => prop_assert_eq!(ours, Some(b), "rule {} on {:?}", rule, a),
                Err(_) => prop_assert_ne!(ours, Some(true), "rule {} on {:?}", rule, a),
            }
        }
    }

    /// With attributes missing: wherever cel-interpreter still decides, so do we.
    #[test]
    fn partial_attributes_agree_where_cel_decides(a in arb_attrs()) {
        let (rs, cel) = oracle();
        let row = rs.row(&a);
        for (i, rule) in ORACLE_RULES.iter().enumerate() {
            if let Ok(b) = cel.eval_rule(i, &a) {
                prop_assert_eq!(rs.matches(i, &row, today()), Some(b), "rule {} on {:?}", rule, a);
            }
        }
    }

    /// Arbitrary rule text never panics the loader: it compiles or errors.
    #[test]
    fn arbitrary_rules_never_panic(rule in "\\PC{0,60}") {
        let yaml = format!("segments:\n  - name: r\n    rule: {}\n", serde_json::to_string(&rule).unwrap());
        let _ = RuleSet::parse(&yaml, "f.yaml", &schema());
    }

    #[test]
    fn arbitrary_files_never_panic(src in "\\PC{0,200}") {
        let _ = RuleSet::parse(&src, "f.yaml", &schema());
    }
}
