//! `waihu bench tenants`: what tenants cost, measured side by side in one run.
//!
//! - **API**: requests per second to one store served alone (`serve`) beside
//!   the same kind of store served as one of several tenants (`serve_tenants`,
//!   the request naming its tenant by header): the price of the dispatcher.
//! - **PDF reports**: the same rows written as CSV and as PDF (`waihu-pdf`,
//!   with the CJK font subset), time and size, when a CJK font is installed.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds per server.
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    /// Tenants beside the measured one.
    #[arg(long, default_value_t = 9)]
    pub others: usize,
    /// Rows of the report written as CSV and PDF.
    #[arg(long, default_value_t = 5_000)]
    pub rows: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub single_req_per_s: f64,
    pub tenant_req_per_s: f64,
    /// tenant / single.
    pub ratio: f64,
    pub errors: u64,
    pub rows: usize,
    pub csv_ms: f64,
    pub csv_bytes: usize,
    /// None without a CJK font.
    pub pdf_ms: Option<f64>,
    pub pdf_bytes: Option<usize>,
}

async fn load(url: String, key: String, tenant: Option<String>, a: &Args) -> (u64, u64, f64) {
    let ok = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(a.seconds);
    let t = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..a.clients.max(1) {
        let (ok, bad, url, key, tenant) = (
            ok.clone(),
            bad.clone(),
            url.clone(),
            key.clone(),
            tenant.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let c = reqwest::Client::new();
            while Instant::now() < until {
                let mut rq = c.get(&url).bearer_auth(&key);
                if let Some(t) = &tenant {
                    rq = rq.header(waihu_server::tenancy::HEADER, t);
                }
                let good = match rq.send().await {
                    Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                    _ => false,
                };
                if good {
                    ok.fetch_add(1, Ordering::Relaxed);
                } else {
                    bad.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    (
        ok.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
        t.elapsed().as_secs_f64(),
    )
}

async fn store_with_key(dir: &std::path::Path) -> anyhow::Result<(waihu_store::Store, String)> {
    std::fs::create_dir_all(dir)?;
    let store =
        waihu_store::Store::open_with_key(dir, &waihu_privacy::MasterKey::generate()).await?;
    let (key, _) = waihu_server::auth::create_key(
        &store,
        "bench",
        waihu_server::auth::Role::Analyst,
        chrono::Utc::now(),
    )
    .await?;
    Ok((store, key))
}

/// The report's rows: what `/api/calls?format=…` holds, generated.
fn report_rows(n: usize) -> (Vec<String>, Vec<Vec<String>>) {
    let columns = [
        "call_id",
        "campaign",
        "phone",
        "segment",
        "script",
        "status",
        "node",
        "emotion",
        "outcome",
        "duration_s",
        "business_outcome",
    ]
    .map(String::from)
    .to_vec();
    let rows = (0..n)
        .map(|i| {
            vec![
                format!("c{i:07}@waihu"),
                format!("{}", 1 + i % 3),
                format!("+86138****{:04}", i % 10_000),
                ["高价值客户", "沉睡客户", "新客户"][i % 3].to_string(),
                "order_confirmation.zh".into(),
                "ended".into(),
                ["确认地址", "确认时间", "结束"][i % 3].to_string(),
                ["calm", "happy", "angry"][i % 3].to_string(),
                ["answered", "no_answer", "busy"][i % 3].to_string(),
                format!("{:.1}", 20.0 + (i % 90) as f64),
                ["confirmed", "refused", "callback"][i % 3].to_string(),
            ]
        })
        .collect();
    (columns, rows)
}

pub fn measure(a: &Args) -> anyhow::Result<Figures> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (single, tenant, errors) = rt.block_on(async {
        let tmp = tempfile::tempdir()?;
        let (alone, alone_key) = store_with_key(&tmp.path().join("alone")).await?;
        let mut stores = Vec::new();
        for i in 0..a.others {
            stores.push((format!("t{i}"), store_with_key(&tmp.path().join(format!("t{i}"))).await?.0));
        }
        let (acme, acme_key) = store_with_key(&tmp.path().join("acme")).await?;
        stores.push(("acme".into(), acme));
        let (stop_tx, _) = tokio::sync::broadcast::channel::<()>(1);
        let l1 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let l2 = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let (p1, p2) = (l1.local_addr()?.port(), l2.local_addr()?.port());
        let mut rx = stop_tx.subscribe();
        let s1 = tokio::spawn(waihu_server::serve(l1, alone, Default::default(), async move {
            let _ = rx.recv().await;
        }));
        let mut rx = stop_tx.subscribe();
        let s2 = tokio::spawn(waihu_server::serve_tenants(l2, None, stores, Default::default(), async move {
            let _ = rx.recv().await;
        }));
        let path = "/api/segments";
        if !a.json {
            eprintln!(
                "bench tenants: {} clients × {:.0} s per server, GET {path}; one store alone, then one of {} tenants",
                a.clients,
                a.seconds,
                a.others + 1
            );
        }
        let one = load(format!("http://127.0.0.1:{p1}{path}"), alone_key, None, a).await;
        let many = load(format!("http://127.0.0.1:{p2}{path}"), acme_key, Some("acme".into()), a).await;
        let _ = stop_tx.send(());
        let _ = s1.await;
        let _ = s2.await;
        anyhow::ensure!(one.0 > 0 && many.0 > 0, "no request succeeded: {one:?} {many:?}");
        Ok::<_, anyhow::Error>((one.0 as f64 / one.2, many.0 as f64 / many.2, one.1 + many.1))
    })?;

    let (columns, rows) = report_rows(a.rows);
    let t = Instant::now();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&columns)?;
    for r in &rows {
        w.write_record(r)?;
    }
    let csv_bytes = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?.len();
    let csv_ms = t.elapsed().as_secs_f64() * 1000.0;
    let font = waihu_server::pdf::FONT_CANDIDATES
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| {
            std::fs::read(p)
                .map_err(anyhow::Error::from)
                .and_then(|d| Ok(waihu_pdf::Font::from_bytes(d, 0)?))
        })
        .transpose()?;
    let (pdf_ms, pdf_bytes) = match &font {
        Some(f) => {
            let t = Instant::now();
            let pdf = waihu_pdf::table(
                f,
                &waihu_pdf::Table {
                    title: "calls",
                    subtitle: "bench",
                    columns: &columns,
                    rows: &rows,
                },
            )?;
            (Some(t.elapsed().as_secs_f64() * 1000.0), Some(pdf.len()))
        }
        None => (None, None),
    };
    Ok(Figures {
        single_req_per_s: single,
        tenant_req_per_s: tenant,
        ratio: tenant / single,
        errors,
        rows: a.rows,
        csv_ms,
        csv_bytes,
        pdf_ms,
        pdf_bytes,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let f = measure(&a)?;
    if a.json {
        println!("{}", serde_json::to_string(&f)?);
        return Ok(());
    }
    println!("  one store alone      {:>9.0} req/s", f.single_req_per_s);
    println!(
        "  one of {:>2} tenants    {:>9.0} req/s",
        a.others + 1,
        f.tenant_req_per_s
    );
    println!("  tenant / alone: {:.2}×   ({} errors)", f.ratio, f.errors);
    println!("  report of {} rows:", f.rows);
    println!("    CSV {:>8.1} ms {:>10} bytes", f.csv_ms, f.csv_bytes);
    match (f.pdf_ms, f.pdf_bytes) {
        (Some(ms), Some(b)) => {
            println!("    PDF {ms:>8.1} ms {b:>10} bytes (CJK font subset embedded)");
            println!("    PDF / CSV time: {:.1}×", ms / f.csv_ms.max(1e-6));
        }
        _ => println!("    PDF: no CJK font installed (apt-get install fonts-wqy-microhei)"),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A short bounded run (the long one is on demand).
    #[test]
    fn smoke() {
        let f = measure(&Args {
            seconds: 0.3,
            clients: 2,
            others: 2,
            rows: 200,
            json: true,
        })
        .unwrap();
        assert!(
            f.single_req_per_s > 0.0 && f.tenant_req_per_s > 0.0,
            "{f:?}"
        );
        assert_eq!(f.errors, 0, "{f:?}");
        assert!(f.csv_bytes > 200 * 50, "{f:?}");
    }
}
