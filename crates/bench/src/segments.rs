//! `waihu bench segments`: generated customers classified by the compiled rules (from
//! attribute maps; from laid-out rows on one core and on all) beside `cel-interpreter`
//! evaluating the same rules.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};

pub mod cel;

/// Attributes in the shape `waihu customers import` gives the sample file.
fn generate_attrs(n: usize, seed: u64) -> Vec<waihu_core::Attrs> {
    use waihu_core::AttrValue as V;
    const LEVELS: &[&str] = &["普通", "银卡", "金卡", "钻石"];
    const CITIES: &[&str] = &["北京", "上海", "广州", "深圳", "杭州", "成都"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut a = waihu_core::Attrs::new();
            a.insert(
                "purchase_freq".into(),
                V::Number(f64::from(rng.gen_range(0..30))),
            );
            a.insert(
                "avg_order".into(),
                V::Number(f64::from(rng.gen_range(30..8000))),
            );
            a.insert(
                "interaction_count".into(),
                V::Number(f64::from(rng.gen_range(0..15))),
            );
            a.insert(
                "last_purchase".into(),
                V::Number(f64::from(rng.gen_range(1..400))),
            );
            a.insert(
                "last_interaction".into(),
                V::Number(f64::from(rng.gen_range(1..365))),
            );
            a.insert(
                "member_level".into(),
                V::Text(LEVELS[rng.gen_range(0..LEVELS.len())].into()),
            );
            a.insert(
                "city".into(),
                V::Text(CITIES[rng.gen_range(0..CITIES.len())].into()),
            );
            a.insert("has_app".into(), V::Bool(rng.gen_bool(0.5)));
            a
        })
        .collect()
}

/// Classifies `n` generated customers under the rules of `rules` (default
/// `examples/segments.yaml`), compiled and by `cel-interpreter` (`baseline_n` of them).
pub fn run(n: usize, rules: Option<PathBuf>, baseline_n: usize, json: bool) -> anyhow::Result<()> {
    use rayon::prelude::*;
    let (src, file) = match &rules {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            include_str!("../../../examples/segments.yaml").to_string(),
            "examples/segments.yaml".into(),
        ),
    };
    let attrs = generate_attrs(n, 7);
    let mut schema = waihu_core::AttrSchema::new();
    for a in attrs.iter().take(1) {
        for (k, v) in a {
            schema.insert(k.clone(), v.kind());
        }
    }
    let rs = waihu_segment::RuleSet::parse(&src, &file, &schema).map_err(|e| {
        anyhow::anyhow!(e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    })?;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).context("date")?;

    // 1. From attribute maps (what `segments apply` does per customer), one core.
    let t = Instant::now();
    let mut hist = vec![0u64; rs.names().len() + 1];
    for a in &attrs {
        let seg = rs.classify(a, today);
        let i = seg
            .and_then(|s| rs.names().iter().position(|n| *n == s))
            .unwrap_or(hist.len() - 1);
        hist[i] += 1;
    }
    let from_attrs_s = t.elapsed().as_secs_f64();

    // 2. Rows laid out once (a columnar cache), one core and all cores.
    let rows: Vec<_> = attrs.iter().map(|a| rs.row(a)).collect();
    let t = Instant::now();
    let matched_1 = rows
        .iter()
        .filter(|r| rs.classify_row(r, today).is_some())
        .count();
    let rows_1_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let matched_n = rows
        .par_iter()
        .filter(|r| rs.classify_row(r, today).is_some())
        .count();
    let rows_n_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        matched_1 == matched_n,
        "parallel and serial classification disagree"
    );

    // 3. Baseline: cel-interpreter on the same rules, one core.
    let defs: Vec<(String, String)> = rs
        .segments()
        .iter()
        .map(|s| (s.name.clone(), s.rule.clone()))
        .collect();
    let cel = cel::CelBaseline::new(&defs, rs.default_segment().map(str::to_string))
        .map_err(anyhow::Error::msg)?;
    let bn = baseline_n.min(n);
    let t = Instant::now();
    let mut disagree = 0u64;
    for a in &attrs[..bn] {
        if cel.classify(a) != rs.classify(a, today) {
            disagree += 1;
        }
    }
    // The loop above also runs ours; time ours alone on the same slice and subtract.
    let both_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for a in &attrs[..bn] {
        std::hint::black_box(rs.classify(a, today));
    }
    let ours_slice_s = t.elapsed().as_secs_f64();
    let cel_s = (both_s - ours_slice_s).max(1e-9);

    let threads = rayon::current_num_threads();
    let r_attrs = crate::rate(n, from_attrs_s);
    let r_rows1 = crate::rate(n, rows_1_s);
    let r_rowsn = crate::rate(n, rows_n_s);
    let r_cel = crate::rate(bn, cel_s);
    let counts: serde_json::Map<String, serde_json::Value> = rs
        .names()
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once("(none)".to_string()))
        .zip(hist.iter())
        .map(|(k, v)| (k, serde_json::json!(v)))
        .collect();
    if json {
        return crate::print_json(&serde_json::json!({
            "bench": "segments", "customers": n, "rules": rs.segments().len(), "threads": threads,
            "compiled_from_attrs_per_s": r_attrs, "compiled_rows_1core_per_s": r_rows1,
            "compiled_rows_all_cores_per_s": r_rowsn, "cel_interpreter_per_s": r_cel,
            "baseline_customers": bn, "disagreements": disagree, "segments": counts,
        }));
    }
    println!(
        "segment evaluation: {n} customers, {} rules from {file}",
        rs.segments().len()
    );
    println!("  {:<44} {:>14} {:>8}", "path", "customers/s", "vs CEL");
    for (name, r) in [
        ("cel-interpreter (baseline, 1 core)", r_cel),
        ("compiled, from attribute maps (1 core)", r_attrs),
        ("compiled, laid-out rows (1 core)", r_rows1),
        (
            &*format!("compiled, laid-out rows ({threads} threads)"),
            r_rowsn,
        ),
    ] {
        println!("  {:<44} {:>14.0} {:>7.1}x", name, r, r / r_cel);
    }
    println!("  segments: {}", serde_json::Value::Object(counts));
    println!("  disagreements with cel-interpreter on {bn} customers: {disagree}");
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The baseline is only a baseline if it computes the same thing: on the shipped
    /// rules and generated customers, cel-interpreter and the compiled rules agree.
    #[test]
    fn cel_baseline_agrees_with_compiled_rules() {
        let src = include_str!("../../../examples/segments.yaml");
        let attrs = super::generate_attrs(3000, 7);
        let mut schema = waihu_core::AttrSchema::new();
        for (k, v) in &attrs[0] {
            schema.insert(k.clone(), v.kind());
        }
        let rs = waihu_segment::RuleSet::parse(src, "segments.yaml", &schema).unwrap();
        let defs: Vec<(String, String)> = rs
            .segments()
            .iter()
            .map(|s| (s.name.clone(), s.rule.clone()))
            .collect();
        let cel =
            super::cel::CelBaseline::new(&defs, rs.default_segment().map(str::to_string)).unwrap();
        let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        let mut matched = 0;
        for a in &attrs {
            let ours = rs.classify(a, today);
            assert_eq!(cel.classify(a), ours, "{a:?}");
            matched += usize::from(ours.is_some());
        }
        assert!(matched > 0);
    }
}
