//! `waihu customers ...`
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chrono::Utc;
use waihu_core::CustomerId;
use waihu_import::export::{attr_text, customer_view, record_reveal, Format, Reveal};
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
    /// 个人信息查阅 (PIPL art. 45 / GDPR art. 15): everything held about one customer,
    /// opened, as JSON; with --out, also their call recordings as WAV files.
    /// Recorded on the audit chain with the reason.
    Access {
        /// Customer id, or a phone number.
        who: String,
        #[arg(long, default_value = "CN")]
        region: String,
        /// Why (the request's reference), for the audit trail.
        #[arg(long)]
        reason: String,
        /// Directory to write `customer-<id>.json` and the recordings into
        /// (default: the JSON on standard output).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
    /// 个人信息删除 (PIPL art. 47 / GDPR art. 17): erase one customer by destroying
    /// their data key (crypto-shredding). Irreversible: needs --yes.
    Erase {
        /// Customer id, or a phone number.
        who: String,
        #[arg(long, default_value = "CN")]
        region: String,
        #[arg(long)]
        reason: String,
        /// Confirm: the customer's words, recordings, name and number cannot be recovered.
        #[arg(long)]
        yes: bool,
        #[arg(long)]
        json: bool,
    },
    /// 保留期限: delete recordings and transcript words of calls that ended more than
    /// N days ago (run daily from a timer). Intents, timings and counts stay.
    Retention {
        #[arg(long, value_name = "DAYS")]
        recordings_days: Option<u32>,
        #[arg(long, value_name = "DAYS")]
        transcripts_days: Option<u32>,
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
            let c = find(store, &who, &region).await?;
            audit_reveal(ctx, store, reveal, std::slice::from_ref(&c)).await?;
            print_customer(&c, reveal, json)
        }
        Cmd::Access {
            who,
            region,
            reason,
            out,
        } => {
            let c = find(store, &who, &region).await?;
            let now = chrono::Utc::now();
            let Some(export) = store
                .customer_export_audited(c.id, &ctx.actor(), &reason, now)
                .await?
            else {
                bail!("no customer {who}")
            };
            let Some(dir) = out else {
                return print_json(&export);
            };
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let json_path = dir.join(format!("customer-{}.json", c.id.0));
            std::fs::write(&json_path, serde_json::to_vec_pretty(&export)?)
                .with_context(|| format!("writing {}", json_path.display()))?;
            let recordings = store.customer_recordings(c.id).await?;
            for (stem, wav) in &recordings {
                let safe: String = stem
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() || ch == '-' || ch == '_' || ch == '#' {
                            ch
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let p = dir.join(format!("{safe}.wav"));
                std::fs::write(&p, wav).with_context(|| format!("writing {}", p.display()))?;
            }
            println!(
                "customer {}: {} calls, {} messages, {} events, {} recordings written to {}",
                c.id.0,
                export.calls.len(),
                export.messages.len(),
                export.events.len(),
                recordings.len(),
                dir.display()
            );
            Ok(())
        }
        Cmd::Erase {
            who,
            region,
            reason,
            yes,
            json,
        } => {
            let c = match (find(store, &who, &region).await, who.parse::<i64>()) {
                (Ok(c), _) => c,
                // An id already erased: the store says when.
                (Err(_), Ok(id)) if who.len() < 9 => {
                    store
                        .customer_erase(CustomerId(id), &ctx.actor(), &reason, Utc::now())
                        .await?;
                    bail!("no customer {who}")
                }
                (Err(e), _) => return Err(e),
            };
            if !yes {
                bail!(
                    "erasing customer {} ({}) cannot be undone: their name, number, words and recordings become unrecoverable. Run again with --yes",
                    c.id.0,
                    waihu_core::mask_phone(&c.phone)
                );
            }
            let r = store
                .customer_erase(c.id, &ctx.actor(), &reason, chrono::Utc::now())
                .await?;
            if json {
                return print_json(&r);
            }
            println!(
                "customer {} erased: data key destroyed; {} calls ({} turns) now unreadable, {} recordings deleted, {} messages, {} voiceprints",
                r.customer.0, r.calls, r.turns, r.recordings, r.messages, r.voiceprints
            );
            if !r.do_not_call.is_empty() {
                println!(
                    "the number stays on the do-not-call list ({}): suppression is kept so it is never called again",
                    r.do_not_call.join(", ")
                );
            }
            Ok(())
        }
        Cmd::Retention {
            recordings_days,
            transcripts_days,
            json,
        } => {
            if recordings_days.is_none() && transcripts_days.is_none() {
                bail!("give --recordings-days and/or --transcripts-days");
            }
            let now = chrono::Utc::now();
            let cut = |d: Option<u32>| d.map(|d| now - chrono::Duration::days(i64::from(d)));
            let r = store
                .apply_retention(
                    cut(recordings_days),
                    cut(transcripts_days),
                    &ctx.actor(),
                    now,
                )
                .await?;
            if json {
                return print_json(&r);
            }
            println!(
                "retention: {} recordings deleted, {} transcript lines removed",
                r.recordings, r.transcripts
            );
            Ok(())
        }
        Cmd::Export {
            output,
            reveal,
            json,
        } => export(ctx, store, output.as_deref(), reveal, json).await,
    }
}

/// A customer by id (fewer than 9 digits) or phone number.
async fn find(store: &Store, who: &str, region: &str) -> anyhow::Result<waihu_store::Customer> {
    let found = match who.parse::<i64>() {
        Ok(id) if who.len() < 9 => store.customer(CustomerId(id)).await?,
        _ => {
            let (e164, _) =
                waihu_phone::normalize_phone(who, region).map_err(anyhow::Error::msg)?;
            store.customer_by_phone(&e164).await?
        }
    };
    found.ok_or_else(|| anyhow::anyhow!("no customer {who}"))
}

/// With `--reveal`, records that this user saw `shown` before it is printed.
async fn audit_reveal(
    ctx: &Ctx,
    store: &Store,
    reveal: bool,
    shown: &[Customer],
) -> anyhow::Result<()> {
    if reveal {
        record_reveal(store, &cli_reveal(ctx), shown, Utc::now()).await?;
    }
    Ok(())
}

fn cli_reveal(ctx: &Ctx) -> Reveal {
    Reveal {
        actor: ctx.actor(),
        context: "cli --reveal".into(),
    }
}

fn print_customer(c: &Customer, reveal: bool, json: bool) -> anyhow::Result<()> {
    let v = customer_view(c, reveal);
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
    let format = if json { Format::JsonLines } else { Format::Csv };
    let who = reveal.then(|| cli_reveal(ctx));
    let count = waihu_import::export::export(store, sink, format, who.as_ref(), Utc::now()).await?;
    if output.is_some() {
        eprintln!("exported {count} customers");
    }
    Ok(())
}

pub use waihu_import::ImportReport;

/// Import a CSV file through `waihu-import`, printing the first rejected rows
/// to stderr as they come. `demo` and `run` import through this too.
pub async fn import_file(
    ctx: &Ctx,
    store: &Store,
    args: &ImportArgs,
) -> anyhow::Result<ImportReport> {
    let opts = waihu_import::ImportOptions {
        region: args.region.clone(),
        map: args.map.clone(),
        rejects: args.rejects.clone(),
        batch: args.batch,
        geo: waihu_import::installed_geo(ctx.home())?,
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
