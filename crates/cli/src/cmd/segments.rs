//! `waihu segments ...`: preview and apply segmentation rules.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::{NaiveDate, Utc};
use waihu_import::segments::classify_all;
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

/// Classify all customers; print counts and samples; with `apply`, store the
/// result.
pub async fn preview(store: &Store, a: &RulesArgs, apply: bool) -> anyhow::Result<()> {
    let rules = load_rules(store, &a.rules).await?;
    let today = a.today.unwrap_or_else(|| Utc::now().date_naive());
    let started = std::time::Instant::now();
    let classified = classify_all(store, &rules, today, a.samples, apply).await?;
    let eval_s = started.elapsed().as_secs_f64();
    let total = classified.total;
    if total == 0 {
        bail!("there are no customers yet; import some first: waihu customers import examples/customers.csv");
    }
    if apply {
        let source = a.rules.display().to_string();
        classified.apply(store, &source, Utc::now()).await?;
    }
    let rows = classified.rows(store).await?;
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
