//! `waihu serve`, `waihu apikey ...` and `waihu bench api`: the HTTP API and
//! dashboard (crate `waihu-server`), its keys, and its benchmark.
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use waihu_server::auth::Role;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on (监听地址).
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Let requests without a key read as analysts (personal data masked, no
    /// edits). Only on a loopback address. 无密钥只读访问（仅本机）。
    #[arg(long)]
    open: bool,
    /// Conversation outcomes counted as conversions (转化), comma-separated.
    #[arg(long, value_delimiter = ',')]
    conversion: Option<Vec<String>>,
}

#[derive(clap::Subcommand, Debug)]
pub enum ApikeyCmd {
    /// Create a key and print it once (only its SHA-256 is stored). 创建 API 密钥。
    Create {
        #[arg(long, value_parser = ["admin", "operator", "analyst"])]
        role: String,
        /// Who or what uses the key (shown in the audit trail).
        #[arg(long)]
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// List keys (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke { id: i64 },
}

#[derive(clap::Args, Debug)]
pub struct BenchApiArgs {
    /// Attempts to generate (each: attempt_started + attempt_ended, plus
    /// abandoned/conversation events), spread over 30 days.
    #[arg(long, default_value_t = 1_000_000)]
    attempts: usize,
    /// Finished calls to generate for the funnel and intents × states pages
    /// (each with a path through the script and up to three callee turns);
    /// 0 skips that part.
    #[arg(long, default_value_t = 1_000_000)]
    calls: usize,
    /// Timed runs per query (the p50 is reported).
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Data directory to fill (default: a temporary one, removed afterwards).
    #[arg(long)]
    dir: Option<PathBuf>,
    #[arg(long)]
    json: bool,
}

pub fn run_serve(ctx: &Ctx, a: ServeArgs) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        let mut cfg = waihu_server::Config {
            open: a.open,
            ..Default::default()
        };
        if let Some(c) = a.conversion {
            cfg.conversion_outcomes = c;
        }
        serve_store(store, a.listen, cfg, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
    })
}

/// Serve the API and dashboard over `store` on `listen` until `shutdown`
/// completes (what `waihu serve` does; `waihu demo` calls it after its run).
/// Refuses `cfg.open` on a non-loopback address; prints where to look.
pub async fn serve_store(
    store: waihu_store::Store,
    listen: SocketAddr,
    cfg: waihu_server::Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if cfg.open && !listen.ip().is_loopback() {
        anyhow::bail!(
            "--open allows key-less access and is only allowed on a loopback address, not {listen}"
        );
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let addr = listener.local_addr()?;
    eprintln!("waihu: 数据平台 / dashboard: http://{addr}/   API: http://{addr}/api/openapi.json");
    if store.api_keys().await?.is_empty() && !cfg.open {
        eprintln!("waihu: 还没有 API 密钥 / no API keys yet: waihu apikey create --role analyst --name dashboard");
    }
    waihu_server::serve(listener, store, cfg, shutdown)
        .await
        .context("serving HTTP")?;
    Ok(())
}

pub fn run_apikey(ctx: &Ctx, cmd: ApikeyCmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        match cmd {
            ApikeyCmd::Create { role, name, json } => {
                let role = Role::parse(&role).context("role must be admin, operator or analyst")?;
                if name.trim().is_empty() {
                    anyhow::bail!("--name must not be empty");
                }
                let (key, rec) = waihu_server::auth::create_key(&store, name.trim(), role, Utc::now()).await?;
                if json {
                    print_json(&serde_json::json!({"id": rec.id, "name": rec.name, "role": rec.role, "key": key}))?;
                } else {
                    println!("{key}");
                    eprintln!("waihu: key {} ({}, {}) created; it is shown only this once / 密钥只显示这一次", rec.id, rec.name, rec.role);
                }
            }
            ApikeyCmd::List { json } => {
                for k in store.api_keys().await? {
                    if json {
                        print_json(&k)?;
                    } else {
                        let state = k.revoked_at.map(|t| format!("revoked {}", t.format("%Y-%m-%d %H:%M"))).unwrap_or_default();
                        println!("{:>4} {:<9} {:<24} {} {state}", k.id, k.role, k.name, k.created_at.format("%Y-%m-%d %H:%M"));
                    }
                }
            }
            ApikeyCmd::Revoke { id } => {
                if !store.api_key_revoke(id, Utc::now()).await? {
                    anyhow::bail!("no unrevoked key with id {id} (see `waihu apikey list`)");
                }
                println!("revoked key {id}");
            }
        }
        store.close().await;
        Ok(())
    })
}

pub fn run_bench_api(ctx: &Ctx, a: BenchApiArgs) -> anyhow::Result<()> {
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
    let (report, calls) = ctx.runtime()?.block_on(async {
        let kpi = waihu_server::bench::run(&dir, a.attempts, a.runs, |line| {
            if !json {
                eprintln!("{line}");
            }
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let calls = if a.calls > 0 {
            Some(
                waihu_server::bench::run_calls(&dir.join("calls"), a.calls, a.runs, |line| {
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
        return print_json(&serde_json::json!({"kpis": report, "calls": calls}));
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

fn print_calls_bench(c: &waihu_server::bench::CallsBenchReport) -> anyhow::Result<()> {
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
