//! `waihu bench console`: what the operations console asks of the server, timed
//! over HTTP on a data directory with many customers and calls, beside the same
//! requests on a directory 1/100 the size (the baseline: how each page scales).
//!
//! Customers are imported through the real pipeline (generated CSV, sealed
//! personal data); calls go in through the store's bulk call API. Each request
//! is the console's own: the page itself, a page of customers (first and deep),
//! the segment preview (every customer classified), script validation, a chat
//! turn, a script's test cases, the campaign forecast (every customer loaded as
//! the dialer loads them), a page of calls and one call's detail.
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use chrono::{TimeZone, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use waihu_store::Store;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Customers in the large directory (the baseline holds 1/100 of them).
    #[arg(long, default_value_t = 1_000_000)]
    pub customers: usize,
    /// Finished calls in the large directory (likewise 1/100 in the baseline).
    #[arg(long, default_value_t = 1_000_000)]
    pub calls: usize,
    /// Timed runs per request (the p50 is reported; the forecast and the
    /// preview run at most 3 times).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Where to build the directories (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub request: &'static str,
    pub small_ms: f64,
    pub large_ms: f64,
    /// large / small.
    pub ratio: f64,
    pub bytes: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub customers: usize,
    pub calls: usize,
    pub load_s: f64,
    pub rows: Vec<Row>,
}

const SEGMENTS: &str = include_str!("../../../examples/segments.yaml");
const SCRIPT: &str = include_str!("../../../examples/scripts/order_confirmation.zh.yaml");
const CASES: &str = include_str!("../../../examples/scripts/order_confirmation.cases.yaml");
const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.zh.yaml");

/// A data directory filled with `customers` and `calls`, served on loopback.
struct Served {
    base: String,
    key: String,
    call_id: String,
    client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn fill(
    dir: &Path,
    customers: usize,
    calls: usize,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<(Served, f64)> {
    std::fs::create_dir_all(dir)?;
    let store = Store::open(dir).await?;
    let t0 = Instant::now();
    let csv = dir.join("customers.csv");
    crate::import::generate_customers(&csv, customers, 11)?;
    let opts = waihu_import::ImportOptions::default();
    let report = waihu_import::import_file(&store, &csv, &opts, &mut ())
        .await
        .map_err(|e| anyhow::anyhow!("importing the generated customers: {e}"))?;
    progress(&format!(
        "  {} customers imported in {:.1} s ({:.0} rows/s)",
        report.created, report.seconds, report.rows_per_s
    ));
    let spec = crate::api::harness::GenSpec {
        attempts: 0,
        calls,
        days: 30,
        start: Utc
            .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .single()
            .context("start date")?,
        seed: 7,
    };
    store
        .campaign_create("bench-a", "name: bench\n", "bench", Utc::now())
        .await?;
    let mut i = 0;
    let mut call_id = String::new();
    while i < calls {
        let batch = crate::api::harness::generate_calls(&spec, i..(i + 10_000).min(calls));
        if call_id.is_empty() {
            call_id = batch[0].0.call_id.0.clone();
        }
        store.calls_bulk(&batch, batch.len()).await?;
        i += 10_000;
        if i % 200_000 == 0 {
            progress(&format!("  {i} calls loaded"));
        }
    }
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts)?;
    std::fs::write(scripts.join("order_confirmation.zh.yaml"), SCRIPT)?;
    std::fs::write(scripts.join("order_confirmation.cases.yaml"), CASES)?;
    let load_s = t0.elapsed().as_secs_f64();
    let (key, _) = waihu_server::auth::create_key(
        &store,
        "bench",
        waihu_server::auth::Role::Operator,
        Utc::now(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(waihu_server::serve(
        listener,
        store,
        waihu_server::Config::default(),
        async move {
            let _ = rx.await;
        },
    ));
    Ok((
        Served {
            base: format!("http://{addr}"),
            key,
            call_id,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task,
        },
        load_s,
    ))
}

impl Served {
    /// p50 of `runs` requests, in ms, and the body size of the last.
    async fn time(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        runs: usize,
    ) -> anyhow::Result<(f64, usize, Value)> {
        let mut ms = Vec::with_capacity(runs);
        let mut last = (0, Value::Null);
        for _ in 0..runs.max(1) {
            let mut rq = self
                .client
                .request(method.clone(), format!("{}{path}", self.base))
                .bearer_auth(&self.key);
            if let Some(b) = body {
                rq = rq.json(b);
            }
            let t = Instant::now();
            let r = rq.send().await?;
            let status = r.status();
            let bytes = r.bytes().await?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            anyhow::ensure!(
                status.is_success(),
                "{method} {path}: {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
            );
            let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            last = (bytes.len(), v);
        }
        ms.sort_by(f64::total_cmp);
        Ok((ms[ms.len() / 2], last.0, last.1))
    }

    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }
}

/// The console's requests against one served directory: (name, p50 ms, bytes).
async fn requests(
    s: &Served,
    customers: usize,
    runs: usize,
) -> anyhow::Result<Vec<(&'static str, f64, usize)>> {
    use reqwest::Method;
    let mut out = Vec::new();
    let heavy = runs.min(3);
    let deep = format!("/api/customers?limit=50&after={}", customers * 9 / 10);
    let call = format!("/api/calls/{}", s.call_id);
    let chat_start = json!({"yaml": SCRIPT});
    let (_, _, started) = s
        .time(Method::POST, "/api/scripts/chat", Some(&chat_start), 1)
        .await?;
    let session = started["session"].as_str().unwrap_or_default().to_string();
    let plain: [(&'static str, Method, String, Option<Value>, usize); 11] = [
        (
            "console page (HTML)",
            Method::GET,
            "/console".into(),
            None,
            runs,
        ),
        (
            "customers, first page of 50 (masked, with total)",
            Method::GET,
            "/api/customers?limit=50".into(),
            None,
            runs,
        ),
        (
            "customers, a page of 50 at 90%",
            Method::GET,
            deep,
            None,
            runs,
        ),
        (
            "attribute names (completion)",
            Method::GET,
            "/api/segments/attributes".into(),
            None,
            runs,
        ),
        (
            "segment preview: every customer classified",
            Method::POST,
            "/api/segments/preview".into(),
            Some(json!({"rules": SEGMENTS})),
            heavy,
        ),
        (
            "script validation as typed",
            Method::POST,
            "/api/scripts/validate".into(),
            Some(json!({"yaml": SCRIPT})),
            runs,
        ),
        (
            "chat: one callee turn",
            Method::POST,
            "/api/scripts/chat".into(),
            Some(json!({"session": session, "line": "/silence"})),
            1,
        ),
        (
            "script test cases (15)",
            Method::POST,
            "/api/scripts/test".into(),
            Some(json!({"yaml": SCRIPT, "name": "order_confirmation.zh"})),
            runs,
        ),
        (
            "campaign forecast: every customer, 2 days, 1 run",
            Method::POST,
            "/api/campaigns/forecast".into(),
            Some(
                json!({"spec": CAMPAIGN, "start": "2026-12-08T08:00", "deadline": "2026-12-09T20:00", "runs": 1}),
            ),
            heavy,
        ),
        (
            "calls, first page of 50",
            Method::GET,
            "/api/calls?limit=50".into(),
            None,
            runs,
        ),
        ("one call's detail", Method::GET, call, None, runs),
    ];
    for (name, method, path, body, n) in plain {
        let (ms, bytes, _) = s.time(method, &path, body.as_ref(), n).await?;
        out.push((name, ms, bytes));
    }
    Ok(out)
}

pub fn measure(a: &Args, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    let tmp;
    let root = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir().context("creating a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let small_n = (a.customers / 100).max(100);
    let small_calls = (a.calls / 100).max(100);
    crate::runtime()?.block_on(async {
        progress(&format!(
            "baseline: {small_n} customers, {small_calls} calls"
        ));
        let (small, _) = fill(&root.join("small"), small_n, small_calls, &mut progress).await?;
        progress(&format!(
            "large: {} customers, {} calls",
            a.customers, a.calls
        ));
        let (large, load_s) =
            fill(&root.join("large"), a.customers, a.calls, &mut progress).await?;
        progress("timing the console's requests");
        let s = requests(&small, small_n, a.runs).await?;
        let l = requests(&large, a.customers, a.runs).await?;
        small.stop().await?;
        large.stop().await?;
        let rows = s
            .iter()
            .zip(&l)
            .map(|((name, sm, _), (_, lm, bytes))| Row {
                request: name,
                small_ms: *sm,
                large_ms: *lm,
                ratio: lm / sm.max(1e-6),
                bytes: *bytes,
            })
            .collect();
        Ok(Report {
            customers: a.customers,
            calls: a.calls,
            load_s,
            rows,
        })
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let json = a.json;
    let r = measure(&a, |line| {
        if !json {
            eprintln!("{line}");
        }
    })?;
    if json {
        return crate::print_json(&r);
    }
    println!(
        "console over {} customers and {} calls (filled in {:.0} s) vs 1/100 of both",
        r.customers, r.calls, r.load_s
    );
    println!(
        "{:<52} {:>11} {:>11} {:>8} {:>10}",
        "request (HTTP, p50)", "1/100 ms", "full ms", "ratio", "bytes"
    );
    for row in &r.rows {
        println!(
            "{:<52} {:>11.1} {:>11.1} {:>7.1}x {:>10}",
            row.request, row.small_ms, row.large_ms, row.ratio, row.bytes
        );
    }
    Ok(())
}
