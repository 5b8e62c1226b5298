//! `waihu bench api`: the dashboard's pages over a month of generated attempts and
//! calls, each beside the same figures computed without the rollups.
use std::path::PathBuf;

use anyhow::Context;

pub mod harness;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Attempts to generate (each: attempt_started + attempt_ended, plus
    /// abandoned/conversation events), spread over 30 days.
    #[arg(long, default_value_t = 1_000_000)]
    pub attempts: usize,
    /// Finished calls to generate for the funnel and intents × states pages
    /// (each with a path through the script and up to three callee turns);
    /// 0 skips that part.
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: usize,
    /// Timed runs per query (the p50 is reported).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// Data directory to fill (default: a temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

/// Fills a fresh data directory (`--dir` or a temporary one) and prints the page
/// timings beside their baselines; fails when the methods disagree.
pub fn run(a: Args) -> anyhow::Result<()> {
    let tmp;
    let dir = match a.dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir().context("creating a temporary data directory")?;
            tmp.path().to_path_buf()
        }
    };
    if dir.join(waihu_store::DB_FILE).exists() {
        anyhow::bail!(
            "{} already holds a database; give an empty --dir",
            dir.display()
        );
    }
    let json = a.json;
    let (report, calls) = crate::runtime()?.block_on(async {
        let kpi = harness::run(&dir, a.attempts, a.runs, |line| {
            if !json {
                eprintln!("{line}");
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let calls = if a.calls > 0 {
            Some(
                harness::run_calls(&dir.join("calls"), a.calls, a.runs, |line| {
                    if !json {
                        eprintln!("{line}");
                    }
                })
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?,
            )
        } else {
            None
        };
        anyhow::Ok((kpi, calls))
    })?;
    if json {
        return crate::print_json(&serde_json::json!({"kpis": report, "calls": calls}));
    }
    println!(
        "loaded {} attempts = {} events in {:.1} s ({:.0} events/s, rollups kept by triggers); database {:.0} MiB",
        report.attempts,
        report.events,
        report.load_s,
        report.load_events_per_s,
        report.db_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "{:<58} {:>10} {:>10} {:>5}",
        "query (30 days)", "p50 ms", "min ms", "runs"
    );
    for t in &report.timings {
        println!(
            "{:<58} {:>10.2} {:>10.2} {:>5}",
            t.what, t.p50_ms, t.min_ms, t.runs
        );
    }
    let find = |w: &str| {
        report
            .timings
            .iter()
            .find(|t| t.what.starts_with(w))
            .map(|t| t.p50_ms)
    };
    if let (Some(r), Some(b)) = (find("kpis: rollup"), find("kpis: SQL")) {
        println!(
            "kpis: rollup is {:.0}x faster than SQL over the log",
            b / r.max(1e-9)
        );
    }
    if let (Some(r), Some(b)) = (find("heat map: rollup"), find("heat map: SQL")) {
        println!(
            "heat map: rollup is {:.0}x faster than SQL over the log",
            b / r.max(1e-9)
        );
    }
    println!(
        "all three methods agree: {}; connect rate {:.1}%; target < 300 ms per page",
        if report.agree { "yes" } else { "NO" },
        report.connect_rate.unwrap_or(0.0) * 100.0
    );
    if !report.agree {
        anyhow::bail!("the rollup disagrees with the event log");
    }
    if let Some(c) = calls {
        print_calls_bench(&c)?;
    }
    Ok(())
}

fn print_calls_bench(c: &harness::CallsBenchReport) -> anyhow::Result<()> {
    println!();
    println!(
        "loaded {} calls with {} callee turns in {:.1} s ({:.0} calls/s; transcripts sealed, rollups kept in the same transactions); database {:.0} MiB",
        c.calls,
        c.turns,
        c.load_s,
        c.calls as f64 / c.load_s.max(1e-9),
        c.db_bytes as f64 / (1 << 20) as f64
    );
    println!(
        "{:<64} {:>10} {:>10} {:>5}",
        "query (all calls)", "p50 ms", "min ms", "runs"
    );
    for t in &c.timings {
        println!(
            "{:<64} {:>10.2} {:>10.2} {:>5}",
            t.what, t.p50_ms, t.min_ms, t.runs
        );
    }
    let find = |w: &str| {
        c.timings
            .iter()
            .find(|t| t.what.starts_with(w))
            .map(|t| t.p50_ms)
    };
    for (name, fast, slow) in [
        ("funnel", "funnel: rollup", "funnel: SQL"),
        (
            "intents x states",
            "intents x states: rollup",
            "intents x states: SQL",
        ),
    ] {
        if let (Some(r), Some(b)) = (find(fast), find(slow)) {
            println!(
                "{name}: rollup is {:.0}x faster than SQL over the raw tables",
                b / r.max(1e-9)
            );
        }
    }
    if let Some((state, rate)) = &c.largest_drop {
        println!(
            "largest drop: {state} ({:.1}% of the calls that reached it)",
            rate * 100.0
        );
    }
    println!(
        "rollups agree with the raw tables: {}; target < 300 ms per page",
        if c.agree { "yes" } else { "NO" }
    );
    if !c.agree {
        anyhow::bail!("the call rollups disagree with the raw tables");
    }
    Ok(())
}
