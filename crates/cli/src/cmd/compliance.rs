//! `waihu compliance check`: re-read the event log and prove that no attempt
//! broke the calling rules. Exits non-zero when it finds a violation.
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use waihu_compliance::{check, render_text, CampaignRules, ComplianceReport};
use waihu_core::Event;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Audit attempts against windows (callee local time), caps, DNC and the
    /// abandon-rate limit. 合规检查:时段、次数上限、免打扰、弃呼率。
    Check {
        /// Campaign files whose rules apply (matched to events by `id`).
        #[arg(long = "campaign")]
        campaigns: Vec<PathBuf>,
        /// Read events from a JSON-lines file instead of the data directory.
        #[arg(long)]
        events: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

/// Event types the check needs from the log.
const TYPES: [&str; 5] = [
    "attempt_started",
    "attempt_ended",
    "dnc_added",
    "dnc_removed",
    "call_abandoned",
];

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Check {
        campaigns,
        events,
        json,
    } = cmd;
    let rules = load_rules(&campaigns)?;
    let evs = match events {
        Some(p) => read_jsonl(&p)?,
        None => ctx.runtime()?.block_on(async {
            let store = ctx.store().await?;
            let mut all: Vec<(i64, Event)> = Vec::new();
            for t in TYPES {
                let mut after = 0;
                loop {
                    let page = store.events_of_type(t, after, 50_000).await?;
                    let Some(&(last, _)) = page.last() else { break };
                    after = last;
                    all.extend(page);
                }
            }
            store.close().await;
            // Log order breaks ties between events with the same timestamp.
            all.sort_by_key(|(id, e)| (e.at, *id));
            anyhow::Ok(all.into_iter().map(|(_, e)| e).collect::<Vec<_>>())
        })?,
    };
    let report = check_and_print(rules, evs, json)?;
    if !report.ok() {
        bail!(
            "{} compliance violation(s) / 发现 {} 项合规违规",
            report.violation_count,
            report.violation_count
        );
    }
    Ok(())
}

/// The rules of each campaign file (matched to events by `id`).
pub(crate) fn load_rules(files: &[PathBuf]) -> anyhow::Result<Vec<CampaignRules>> {
    let mut rules = Vec::new();
    for p in files {
        let text =
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
        rules.push(CampaignRules::from_yaml(&p.display().to_string(), &text)?);
    }
    Ok(rules)
}

/// Runs the checker over `events` (in time order) and prints its report, as text or JSON.
pub(crate) fn check_and_print(
    rules: Vec<CampaignRules>,
    events: Vec<Event>,
    json: bool,
) -> anyhow::Result<ComplianceReport> {
    let report = check(rules, events);
    if json {
        print_json(&report)?;
    } else {
        print!("{}", render_text(&report));
    }
    Ok(report)
}

fn read_jsonl(p: &PathBuf) -> anyhow::Result<Vec<Event>> {
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}: line {}", p.display(), i + 1))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(&line)
            .with_context(|| format!("{}: line {}: not JSON", p.display(), i + 1))?;
        // `waihu events list --json` adds an `id`; events of other types are skipped.
        let ty = v
            .get("kind")
            .and_then(|k| k.get("type"))
            .and_then(|t| t.as_str())
            .unwrap_or("");
        if !TYPES.contains(&ty) {
            continue;
        }
        let e: Event = serde_json::from_value(v)
            .with_context(|| format!("{}: line {}: not an event", p.display(), i + 1))?;
        out.push(e);
    }
    Ok(out)
}
