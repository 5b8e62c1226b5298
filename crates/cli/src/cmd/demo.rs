//! `waihu demo`: the README's main job on embedded defaults. Today it imports
//! the sample customers, applies the sample segmentation and shows the
//! result; later stages (campaign, calls, dashboard) join here as they land.
use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::{customers, segments};
use crate::ctx::Ctx;

const SAMPLE_CUSTOMERS: &str = include_str!("../../../../examples/customers.csv");
const SAMPLE_SEGMENTS: &str = include_str!("../../../../examples/segments.yaml");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print machine-readable JSON lines instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let dir = ctx.data_dir().join("examples");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join("customers.csv");
    let rules = dir.join("segments.yaml");
    write_if_changed(&csv, SAMPLE_CUSTOMERS)?;
    write_if_changed(&rules, SAMPLE_SEGMENTS)?;
    if !args.json {
        println!("waihu demo — data directory {}", ctx.data_dir().display());
        println!(
            "\n1. 导入客户 / importing the sample customers ({})",
            csv.display()
        );
    }
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let r = async {
            let import = customers::ImportArgs {
                file: csv.clone(),
                region: "CN".into(),
                map: None,
                rejects: None,
                batch: 5000,
                json: args.json,
            };
            let report = customers::import_file(ctx, &store, &import).await?;
            if args.json {
                crate::ctx::print_json(&report)?;
            } else {
                println!(
                    "   {} created, {} updated, {} unchanged, {} rejected ({})",
                    report.created, report.updated, report.unchanged, report.rejected, report.encoding
                );
                if let Some(p) = &report.rejects_file {
                    println!("   rejected rows (the sample has three on purpose) → {p}");
                }
                println!("\n2. 客户分群 / segmenting with {}", rules.display());
            }
            let seg = segments::RulesArgs { rules: rules.clone(), samples: 2, today: None, json: args.json };
            segments::preview(&store, &seg, true).await?;
            if !args.json {
                let (n, reveals) = (store.customer_count().await?, store.event_counts().await?);
                println!("\n3. 事件日志 / event log: {n} customers stored encrypted; events by type:");
                for (t, c) in reveals {
                    println!("   {t:<20} {c}");
                }
                println!(
                    "\nNext: waihu customers list --segment high_value | waihu segments preview {} | waihu --help",
                    rules.display()
                );
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        store.close().await;
        r
    })
}

fn write_if_changed(path: &PathBuf, content: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(content) {
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
