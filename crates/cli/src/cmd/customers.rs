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

#[derive(serde::Serialize)]
pub struct ImportReport {
    pub file: String,
    pub encoding: String,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
    pub rejects_file: Option<String>,
    pub seconds: f64,
    pub rows_per_s: f64,
}

/// Read, normalise, seal and store a CSV file. Parsing and normalising run on
/// a reader thread (rayon inside) while this task writes the previous batch.
pub async fn import_file(
    ctx: &Ctx,
    store: &Store,
    args: &ImportArgs,
) -> anyhow::Result<ImportReport> {
    let started = std::time::Instant::now();
    let path = &args.file;
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut opts = waihu_ingest::Options::new(&args.region)?;
    if let Some(map) = &args.map {
        let text =
            std::fs::read_to_string(map).with_context(|| format!("reading {}", map.display()))?;
        opts.map = waihu_ingest::ColumnMap::from_yaml(&text, &map.display().to_string())?;
    }
    opts.schema = store.attr_schema().await?;
    let src = waihu_ingest::Source::open(std::io::BufReader::with_capacity(1 << 20, file), opts)
        .with_context(|| format!("reading {}", path.display()))?;
    let headers = src.headers.clone();
    let encoding = src.encoding.to_string();
    let file_name = path.display().to_string();
    let mut importer = store
        .begin_import(&file_name, &encoding, &src.kinds, Utc::now())
        .await?;

    let batch = args.batch.max(1);
    // Reader thread: decode, normalise and seal (rayon inside), so the
    // database work below overlaps with the CPU work for the next batch.
    let (tx, mut rx) = tokio::sync::mpsc::channel(2);
    let vault = store.vault().clone();
    let reader = std::thread::spawn(move || {
        let mut src = src;
        loop {
            match src.next_batch(batch) {
                Ok(b) if b.is_empty() => break,
                Ok(b) => {
                    let mut good = Vec::with_capacity(b.len());
                    let mut bad = Vec::new();
                    for r in b {
                        match r {
                            Ok(c) => good.push(c),
                            Err(rej) => bad.push(rej),
                        }
                    }
                    let sealed = waihu_store::seal_batch(&vault, &good);
                    if tx.blocking_send(Ok((sealed, bad))).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let mut rejects = Vec::new();
    while let Some(msg) = rx.recv().await {
        let (sealed, bad) = msg.with_context(|| format!("reading {file_name}"))?;
        for rej in bad {
            if rejects.len() < 10 {
                eprintln!(
                    "{file_name}:{}: {}{}",
                    rej.line,
                    rej.column
                        .as_deref()
                        .map(|c| format!("column {c}: "))
                        .unwrap_or_default(),
                    rej.reason
                );
            }
            rejects.push(rej);
        }
        importer.write_sealed(sealed, Utc::now()).await?;
    }
    let _ = reader.join();
    let import_id = importer.id().0;
    let stats = importer.finish(rejects.len() as u64, Utc::now()).await?;
    let rejects_file = if rejects.is_empty() {
        None
    } else {
        let p = match &args.rejects {
            Some(p) => p.clone(),
            None => {
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "import".into());
                ctx.data_dir()
                    .join("rejects")
                    .join(format!("{stem}-{import_id}.csv"))
            }
        };
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let f = std::fs::File::create(&p).with_context(|| format!("creating {}", p.display()))?;
        waihu_ingest::write_rejects(f, &headers, &rejects)
            .with_context(|| format!("writing {}", p.display()))?;
        if rejects.len() > 10 {
            eprintln!("... and {} more rejected rows", rejects.len() - 10);
        }
        Some(p.display().to_string())
    };
    let seconds = started.elapsed().as_secs_f64();
    let total = stats.created + stats.updated + stats.unchanged + stats.rejected;
    Ok(ImportReport {
        file: file_name,
        encoding,
        created: stats.created,
        updated: stats.updated,
        unchanged: stats.unchanged,
        rejected: stats.rejected,
        rejects_file,
        seconds,
        rows_per_s: total as f64 / seconds.max(1e-9),
    })
}
