//! `waihu customers ...`
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::Utc;
use serde_json::json;
use waihu_core::{mask_name, mask_phone, CustomerId};
use waihu_store::{Customer, Store};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Import customers from a CSV file (UTF-8 or GBK, Chinese or English headers).
    /// Re-importing the same phone number updates the customer.
    Import(ImportArgs),
    /// List customers (phone numbers and names masked unless --reveal).
    List {
        /// Start after this customer id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// Only customers of this segment.
        #[arg(long)]
        segment: Option<String>,
        /// Show numbers and names in clear (recorded in the audit trail).
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Show one customer by id or phone number.
    Show {
        /// Customer id, or a phone number.
        who: String,
        #[arg(long, default_value = "CN")]
        region: String,
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Export all customers as CSV (or JSON lines with --json).
    Export {
        /// Output file (default: standard output).
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The CSV file.
    pub file: PathBuf,
    /// Region for numbers written without a country code (ISO 3166).
    #[arg(long, default_value = "CN")]
    pub region: String,
    /// YAML file mapping headers to fields: `columns: {客户电话: phone, 积分: points}`.
    #[arg(long, value_name = "FILE")]
    pub map: Option<PathBuf>,
    /// Where to write rejected rows (default: DATA_DIR/rejects/<file>-<import>.csv).
    #[arg(long, value_name = "FILE")]
    pub rejects: Option<PathBuf>,
    /// Rows per transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let r = run_async(ctx, &store, cmd).await;
        store.close().await;
        r
    })
}

async fn run_async(ctx: &Ctx, store: &Store, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Import(args) => {
            let report = import_file(ctx, store, &args).await?;
            if args.json {
                print_json(&report)?;
            } else {
                println!(
                    "imported {} ({}): {} created, {} updated, {} unchanged, {} rejected in {:.2}s ({:.0} rows/s)",
                    report.file,
                    report.encoding,
                    report.created,
                    report.updated,
                    report.unchanged,
                    report.rejected,
                    report.seconds,
                    report.rows_per_s
                );
                if let Some(p) = &report.rejects_file {
                    println!("rejected rows written to {p}");
                }
            }
            Ok(())
        }
        Cmd::List {
            after,
            limit,
            segment,
            reveal,
            json,
        } => {
            let mut shown = Vec::new();
            let mut cursor = after;
            while (shown.len() as i64) < limit {
                let page = store.customers(cursor, 1000).await?;
                let Some(last) = page.last() else { break };
                cursor = last.id.0;
                shown.extend(page.into_iter().filter(|c| {
                    segment
                        .as_ref()
                        .is_none_or(|s| c.segment.as_ref() == Some(s))
                }));
            }
            shown.truncate(limit.max(0) as usize);
            audit_reveal(ctx, store, reveal, &shown).await?;
            for c in &shown {
                print_customer(c, reveal, json)?;
            }
            Ok(())
        }
        Cmd::Show {
            who,
            region,
            reveal,
            json,
        } => {
            let found = match who.parse::<i64>() {
                Ok(id) if who.len() < 9 => store.customer(CustomerId(id)).await?,
                _ => {
                    let (e164, _) =
                        waihu_ingest::normalize_phone(&who, &region).map_err(anyhow::Error::msg)?;
                    store.customer_by_phone(&e164).await?
                }
            };
            let Some(c) = found else {
                bail!("no customer {who}")
            };
            audit_reveal(ctx, store, reveal, std::slice::from_ref(&c)).await?;
            print_customer(&c, reveal, json)
        }
        Cmd::Export {
            output,
            reveal,
            json,
        } => export(ctx, store, output.as_deref(), reveal, json).await,
    }
}

async fn audit_reveal(
    ctx: &Ctx,
    store: &Store,
    reveal: bool,
    shown: &[Customer],
) -> anyhow::Result<()> {
    if reveal && !shown.is_empty() {
        let ids: Vec<CustomerId> = shown.iter().map(|c| c.id).collect();
        store
            .record_reveal(&ctx.actor(), "phone,name", &ids, "cli --reveal", Utc::now())
            .await?;
    }
    Ok(())
}

fn view(c: &Customer, reveal: bool) -> serde_json::Value {
    let (phone, name) = if reveal {
        (c.phone.clone(), c.name.clone())
    } else {
        (mask_phone(&c.phone), c.name.as_deref().map(mask_name))
    };
    json!({
        "id": c.id, "phone": phone, "name": name, "region": c.region, "tz": c.tz,
        "tz_source": c.tz_source, "segment": c.segment, "attrs": c.attrs,
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

fn print_customer(c: &Customer, reveal: bool, json: bool) -> anyhow::Result<()> {
    let v = view(c, reveal);
    if json {
        return print_json(&v);
    }
    let attrs: Vec<String> = c
        .attrs
        .iter()
        .map(|(k, v)| format!("{k}={}", attr_text(v)))
        .collect();
    println!(
        "{:>7}  {:<16} {:<8} {:<16} {:<12} {}",
        c.id,
        v["phone"].as_str().unwrap_or(""),
        v["name"].as_str().unwrap_or("-"),
        c.tz,
        c.segment.as_deref().unwrap_or("-"),
        attrs.join(" ")
    );
    Ok(())
}

async fn export(
    ctx: &Ctx,
    store: &Store,
    output: Option<&Path>,
    reveal: bool,
    json: bool,
) -> anyhow::Result<()> {
    let sink: Box<dyn std::io::Write> = match output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let schema = store.attr_schema().await?;
    let names: Vec<&String> = schema.keys().collect();
    // JSON lines go straight to the sink; CSV through a csv writer around it.
    let (mut lines, mut csv) = if json {
        (Some(sink), None)
    } else {
        (None, Some(csv::Writer::from_writer(sink)))
    };
    if let Some(w) = csv.as_mut() {
        let mut head = vec![
            "id".to_string(),
            "phone".into(),
            "name".into(),
            "region".into(),
            "tz".into(),
            "segment".into(),
        ];
        head.extend(names.iter().map(|s| s.to_string()));
        w.write_record(&head)?;
    }
    let mut cursor = 0;
    let mut count = 0u64;
    loop {
        let page = store.customers(cursor, 2000).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id.0;
        audit_reveal(ctx, store, reveal, &page).await?;
        for c in &page {
            count += 1;
            let v = view(c, reveal);
            if let Some(out) = lines.as_mut() {
                writeln!(out, "{}", serde_json::to_string(&v)?)?;
            }
            if let Some(w) = csv.as_mut() {
                let mut rec = vec![
                    c.id.to_string(),
                    v["phone"].as_str().unwrap_or("").to_string(),
                    v["name"].as_str().unwrap_or("").to_string(),
                    c.region.clone(),
                    c.tz.clone(),
                    c.segment.clone().unwrap_or_default(),
                ];
                rec.extend(
                    names
                        .iter()
                        .map(|n| c.attrs.get(*n).map(attr_text).unwrap_or_default()),
                );
                w.write_record(&rec)?;
            }
        }
    }
    if let Some(mut out) = lines {
        out.flush()?;
    }
    if let Some(mut w) = csv {
        w.flush()?;
    }
    if output.is_some() {
        eprintln!("exported {count} customers");
    }
    Ok(())
}

fn attr_text(v: &waihu_core::AttrValue) -> String {
    match v {
        waihu_core::AttrValue::Number(n) => n.to_string(),
        waihu_core::AttrValue::Date(d) => d.to_string(),
        waihu_core::AttrValue::Text(t) => t.clone(),
        waihu_core::AttrValue::Bool(b) => b.to_string(),
    }
}

pub use waihu_import::ImportReport;

/// Import a CSV file through `waihu-import`, printing the first rejected rows
/// to stderr as they come. `demo` and `run` import through this too.
pub async fn import_file(
    _ctx: &Ctx,
    store: &Store,
    args: &ImportArgs,
) -> anyhow::Result<ImportReport> {
    let opts = waihu_import::ImportOptions {
        region: args.region.clone(),
        map: args.map.clone(),
        rejects: args.rejects.clone(),
        batch: args.batch,
    };
    let mut shown = RejectLines {
        file: args.file.display().to_string(),
        seen: 0,
    };
    let report = waihu_import::import_file(store, &args.file, &opts, &mut shown).await?;
    if report.rejects_file.is_some() && report.rejected > SHOWN_REJECTS {
        eprintln!(
            "... and {} more rejected rows",
            report.rejected - SHOWN_REJECTS
        );
    }
    Ok(report)
}

/// Rejected rows printed before the summary; the rest are in the rejects file.
const SHOWN_REJECTS: u64 = 10;

/// Prints `file:line: column C: reason` for the first rejected rows.
struct RejectLines {
    file: String,
    seen: u64,
}

impl waihu_import::Progress for RejectLines {
    fn reject(&mut self, rej: &waihu_ingest::Reject) {
        if self.seen < SHOWN_REJECTS {
            eprintln!(
                "{}:{}: {}{}",
                self.file,
                rej.line,
                rej.column
                    .as_deref()
                    .map(|c| format!("column {c}: "))
                    .unwrap_or_default(),
                rej.reason
            );
        }
        self.seen += 1;
    }
}
