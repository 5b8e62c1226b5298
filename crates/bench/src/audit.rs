//! `waihu bench audit`: what the tamper-evident chain costs. Appending events with the
//! chain (head read, SHA-256 per row, head update, a signed checkpoint when due) beside
//! the same INSERT into the same table, indexes and triggers with constant chain fields,
//! one event per transaction and in 1,000-event batches, in the same run on two fresh
//! data directories; the hashing alone in memory; and `audit_verify` over the chained
//! log, extrapolated to 10 million events.
use std::time::Instant;

use chrono::{Duration, TimeZone, Utc};
use serde::Serialize;
use waihu_core::{CustomerId, Event, EventKind};
use waihu_store::Store;

use crate::{print_json, rate, runtime};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Events appended in 1,000-event batches and then verified.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Events appended one per transaction (each way).
    #[arg(long, default_value_t = 5_000)]
    pub single: usize,
    /// Keep the two data directories here (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<std::path::PathBuf>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub single_events: usize,
    pub single_chain_us: f64,
    pub single_plain_us: f64,
    pub batch_events: usize,
    pub batch_chain_us: f64,
    pub batch_plain_us: f64,
    pub hash_only_ns: f64,
    pub verify_rows: u64,
    pub verify_s: f64,
    pub verify_rows_per_s: f64,
    pub verify_10m_s_extrapolated: f64,
    pub checkpoints: usize,
}

fn event(i: usize) -> Event {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
    Event {
        at: t0 + Duration::milliseconds(i as i64),
        customer: Some(CustomerId(1 + (i % 50_000) as i64)),
        campaign: None,
        call: None,
        kind: EventKind::PiiRevealed {
            actor: format!("api:operator{}", i % 7),
            field: ["phone", "transcript", "recording"][i % 3].into(),
            reason: "bench".into(),
        },
    }
}

/// Run the measurement (also the tests' smoke, with small counts).
pub fn measure(a: &Args) -> anyhow::Result<Results> {
    let tmp = tempfile::tempdir()?;
    let root = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let (chain_dir, plain_dir) = (root.join("chain"), root.join("plain"));
    for d in [&chain_dir, &plain_dir] {
        if d.join(waihu_store::DB_FILE).exists() {
            anyhow::bail!(
                "{} already holds a database; give an empty --dir",
                d.display()
            );
        }
    }
    runtime()?.block_on(async {
        let chain = Store::open(&chain_dir).await?;
        let plain = Store::open(&plain_dir).await?;

        // One event per transaction, alternating blocks so both see the same conditions.
        let (mut t_chain, mut t_plain) = (0.0, 0.0);
        let block = 100;
        let mut i = 0;
        while i < a.single {
            let n = block.min(a.single - i);
            let t = Instant::now();
            for k in i..i + n {
                chain.append_events(&[event(k)]).await?;
            }
            t_chain += t.elapsed().as_secs_f64();
            let t = Instant::now();
            for k in i..i + n {
                plain.append_events_unchained_for_bench(&[event(k)]).await?;
            }
            t_plain += t.elapsed().as_secs_f64();
            i += n;
        }

        // Batches of 1,000, alternating.
        let (mut b_chain, mut b_plain) = (0.0, 0.0);
        let mut i = 0;
        while i < a.events {
            let n = 1000.min(a.events - i);
            let evs: Vec<Event> = (a.single + i..a.single + i + n).map(event).collect();
            let t = Instant::now();
            chain.append_events(&evs).await?;
            b_chain += t.elapsed().as_secs_f64();
            let t = Instant::now();
            plain.append_events_unchained_for_bench(&evs).await?;
            b_plain += t.elapsed().as_secs_f64();
            i += n;
        }

        // The chain's CPU cost alone: encode and hash, no database.
        let n_hash = a.events.clamp(1, 200_000);
        let bodies: Vec<(String, String)> = (0..n_hash)
            .map(|k| {
                let e = event(k);
                (
                    e.at.to_rfc3339(),
                    serde_json::to_string(&e.kind).unwrap_or_default(),
                )
            })
            .collect();
        let mut head = waihu_audit::Head::EMPTY;
        let t = Instant::now();
        for (k, (at, body)) in bodies.iter().enumerate() {
            head.append(
                k as i64,
                &waihu_audit::Content {
                    at,
                    kind: "pii_revealed",
                    customer: Some(k as i64),
                    campaign: None,
                    call: None,
                    body,
                },
            );
        }
        let hash_ns = t.elapsed().as_secs_f64() * 1e9 / n_hash as f64;
        std::hint::black_box(head);

        let t = Instant::now();
        let v = chain.audit_verify(None, &[]).await?;
        let verify_s = t.elapsed().as_secs_f64();
        anyhow::ensure!(v.report.ok, "the bench's own chain failed to verify: {v:?}");
        let per_s = rate(v.report.rows as usize, verify_s);
        chain.close().await;
        plain.close().await;
        Ok(Results {
            single_events: a.single,
            single_chain_us: t_chain * 1e6 / a.single.max(1) as f64,
            single_plain_us: t_plain * 1e6 / a.single.max(1) as f64,
            batch_events: a.events,
            batch_chain_us: b_chain * 1e6 / a.events.max(1) as f64,
            batch_plain_us: b_plain * 1e6 / a.events.max(1) as f64,
            hash_only_ns: hash_ns,
            verify_rows: v.report.rows,
            verify_s,
            verify_rows_per_s: per_s,
            verify_10m_s_extrapolated: 1e7 / per_s.max(1e-9),
            checkpoints: v.report.checkpoints,
        })
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let r = measure(&a)?;
    if a.json {
        return print_json(&r);
    }
    let ratio = |x: f64, y: f64| x / y.max(1e-12);
    println!("审计链基准 audit chain bench (same run, same table, indexes and triggers)");
    println!(
        "append, 1 event per transaction ({} each): chain {:.1} µs/event, plain {:.1} µs/event ({:.2}×)",
        r.single_events,
        r.single_chain_us,
        r.single_plain_us,
        ratio(r.single_chain_us, r.single_plain_us)
    );
    println!(
        "append, 1,000-event batches ({} each): chain {:.2} µs/event, plain {:.2} µs/event ({:.2}×)",
        r.batch_events,
        r.batch_chain_us,
        r.batch_plain_us,
        ratio(r.batch_chain_us, r.batch_plain_us)
    );
    println!(
        "hashing alone (encode + SHA-256, in memory): {:.0} ns/event",
        r.hash_only_ns
    );
    println!(
        "verify: {} rows, {} checkpoints in {:.2} s = {:.0} rows/s → 10,000,000 rows ≈ {:.0} s (extrapolated)",
        r.verify_rows, r.checkpoints, r.verify_s, r.verify_rows_per_s, r.verify_10m_s_extrapolated
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn smoke() {
        let r = super::measure(&super::Args {
            events: 2_500,
            single: 50,
            dir: None,
            json: false,
        })
        .unwrap();
        assert_eq!(r.verify_rows, 2_550);
        assert!(r.checkpoints >= 3, "{r:?}");
        assert!(r.single_chain_us > 0.0 && r.batch_plain_us > 0.0);
    }
}
