//! `waihu segments ...`: preview and apply segmentation rules.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{NaiveDate, Utc};
use serde::Serialize;
use waihu_core::{mask_name, mask_phone, CustomerId};
use waihu_segment::RuleSet;
use waihu_store::{SegmentDef, Store};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Count customers per segment under a rule file and show masked samples.
    /// Nothing is written.
    Preview(RulesArgs),
    /// Classify every customer under a rule file and store the segments.
    Apply(RulesArgs),
    /// The stored segments and how many customers each holds.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct RulesArgs {
    /// The rule file (YAML), e.g. examples/segments.yaml.
    pub rules: PathBuf,
    /// Sample customers shown per segment (masked).
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Evaluate as of this date (YYYY-MM-DD; default: today, UTC).
    #[arg(long)]
    pub today: Option<NaiveDate>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let r = match cmd {
            Cmd::Preview(a) => preview(&store, &a, false).await,
            Cmd::Apply(a) => preview(&store, &a, true).await,
            Cmd::List { json } => list(&store, json).await,
        };
        store.close().await;
        r
    })
}

/// Load and check a rule file against the stored attribute schema. Every
/// error goes to stderr on its own line; the returned error is the summary.
pub async fn load_rules(store: &Store, path: &Path) -> anyhow::Result<RuleSet> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let schema = store.attr_schema().await?;
    RuleSet::parse(&src, &path.display().to_string(), &schema).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        let n = errors.len();
        anyhow::anyhow!(
            "{} has {n} error{}; no customer was classified",
            path.display(),
            if n == 1 { "" } else { "s" }
        )
    })
}

#[derive(Serialize)]
struct Sample {
    id: CustomerId,
    phone: String,
    name: Option<String>,
}

#[derive(Serialize)]
struct SegmentRow<'a> {
    segment: Option<&'a str>,
    description: Option<&'a str>,
    rule: Option<&'a str>,
    customers: u64,
    share: f64,
    samples: Vec<Sample>,
}

/// Classify all customers; print counts and samples; with `apply`, store the
/// result.
pub async fn preview(store: &Store, a: &RulesArgs, apply: bool) -> anyhow::Result<()> {
    let rules = load_rules(store, &a.rules).await?;
    let today = a.today.unwrap_or_else(|| Utc::now().date_naive());
    let started = std::time::Instant::now();
    let mut counts: BTreeMap<Option<&str>, u64> = BTreeMap::new();
    let mut samples: BTreeMap<Option<&str>, Vec<CustomerId>> = BTreeMap::new();
    let mut assignments = Vec::new();
    let mut cursor = 0;
    let mut total = 0u64;
    loop {
        let page = store.customer_attrs(cursor, 20_000).await?;
        let Some((last, _)) = page.last() else { break };
        cursor = last.0;
        for (id, attrs) in &page {
            let seg = rules.classify(attrs, today);
            *counts.entry(seg).or_default() += 1;
            let s = samples.entry(seg).or_default();
            if s.len() < a.samples {
                s.push(*id);
            }
            if apply {
                assignments.push((*id, seg.map(str::to_string)));
            }
            total += 1;
        }
    }
    let eval_s = started.elapsed().as_secs_f64();
    if total == 0 {
        bail!("there are no customers yet; import some first: waihu customers import examples/customers.csv");
    }
    if apply {
        let defs: Vec<SegmentDef> = rules
            .segments()
            .iter()
            .map(|s| SegmentDef {
                name: s.name.clone(),
                expr: s.rule.clone(),
                priority: s.priority,
                description: s.description.clone(),
            })
            .collect();
        store
            .apply_segments(
                &assignments,
                &defs,
                &a.rules.display().to_string(),
                Utc::now(),
            )
            .await?;
    }
    // Rows in priority order, then the default, then unmatched.
    let mut order: Vec<Option<&str>> = rules.names().into_iter().map(Some).collect();
    if rules.default_segment().is_none() {
        order.push(None);
    }
    let mut rows = Vec::new();
    for seg in order {
        let def = seg.and_then(|n| rules.segments().iter().find(|s| s.name == n));
        let mut shown = Vec::new();
        for id in samples.get(&seg).into_iter().flatten() {
            if let Some(c) = store.customer(*id).await? {
                shown.push(Sample {
                    id: c.id,
                    phone: mask_phone(&c.phone),
                    name: c.name.as_deref().map(mask_name),
                });
            }
        }
        let n = counts.get(&seg).copied().unwrap_or(0);
        rows.push(SegmentRow {
            segment: seg,
            description: def.and_then(|d| d.description.as_deref()),
            rule: def.map(|d| d.rule.as_str()),
            customers: n,
            share: if total == 0 {
                0.0
            } else {
                n as f64 / total as f64
            },
            samples: shown,
        });
    }
    if a.json {
        for r in &rows {
            print_json(r)?;
        }
        return Ok(());
    }
    println!(
        "{} customers classified by {} in {:.3}s{}",
        total,
        a.rules.display(),
        eval_s,
        if apply {
            "; segments stored"
        } else {
            " (preview: nothing stored)"
        }
    );
    println!(
        "{:<14} {:>9} {:>7}  {:<44} samples",
        "segment", "customers", "share", "rule"
    );
    for r in &rows {
        let samples: Vec<String> = r
            .samples
            .iter()
            .map(|s| format!("#{} {} {}", s.id, s.name.as_deref().unwrap_or("-"), s.phone))
            .collect();
        println!(
            "{:<14} {:>9} {:>6.1}%  {:<44} {}",
            r.segment.unwrap_or("(none)"),
            r.customers,
            r.share * 100.0,
            r.rule.unwrap_or(if r.segment.is_some() {
                "(default)"
            } else {
                "(no rule matched)"
            }),
            samples.join(", ")
        );
    }
    Ok(())
}

async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let defs = store.segment_defs().await?;
    let counts: BTreeMap<Option<String>, i64> = store.segment_counts().await?.into_iter().collect();
    let mut names: Vec<(Option<String>, Option<&SegmentDef>)> = defs
        .iter()
        .map(|d| (Some(d.name.clone()), Some(d)))
        .collect();
    for k in counts.keys() {
        if !defs.iter().any(|d| Some(&d.name) == k.as_ref()) {
            names.push((k.clone(), None));
        }
    }
    for (name, def) in names {
        let n = counts.get(&name).copied().unwrap_or(0);
        if json {
            print_json(&serde_json::json!({
                "segment": name, "customers": n, "rule": def.map(|d| &d.expr),
                "priority": def.map(|d| d.priority), "description": def.and_then(|d| d.description.as_ref()),
            }))?;
        } else {
            println!(
                "{:<14} {:>9}  {}",
                name.as_deref().unwrap_or("(none)"),
                n,
                def.map(|d| d.expr.as_str()).unwrap_or("")
            );
        }
    }
    Ok(())
}
