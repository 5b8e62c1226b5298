//! `waihu demo`: the README's main job on embedded defaults. It imports the
//! sample customers, segments them, runs the order-confirmation script's test
//! conversations, simulates a week-long campaign in virtual time, has the
//! independent checker prove from the event log that no calling rule was
//! broken, then runs the order-confirmation campaign live: real SIP calls on
//! loopback to virtual callees, with the voice bot (VAD → Whisper → NLU →
//! dialog → espeak-ng) on every call, scored against the callees' truth and
//! checked again by the compliance checker; then it serves the dashboard.
use std::path::PathBuf;

use anyhow::Context;

use crate::cmd::{campaign, compliance, customers, script, segments};
use crate::ctx::Ctx;

const SAMPLE_CUSTOMERS: &str = include_str!("../../../../examples/customers.csv");
const SAMPLE_SEGMENTS: &str = include_str!("../../../../examples/segments.yaml");
const SAMPLE_CAMPAIGN: &str = include_str!("../../../../examples/campaign.yaml");
const ORDER_SCRIPT: &str = include_str!("../../../../examples/scripts/order_confirmation.zh.yaml");
const SAMPLE_CUSTOMERS_US: &str = include_str!("../../../../examples/customers-us.csv");
const LIVE_CAMPAIGN_EN: &str = include_str!("../../../../examples/campaign-demo.en.yaml");
const LIVE_CAMPAIGN_ZH: &str = include_str!("../../../../examples/campaign-demo.zh.yaml");
const ORDER_SCRIPT_EN: &str =
    include_str!("../../../../examples/scripts/order_confirmation.en.yaml");
const ORDER_CASES: &str =
    include_str!("../../../../examples/scripts/order_confirmation.cases.yaml");
/// The documents the order-confirmation scripts' `knowledge:` names, as
/// `../knowledge/air_purifier.{zh,en}.md` relative to the script.
const KNOWLEDGE: [(&str, &str); 2] = [
    (
        "air_purifier.zh.md",
        include_str!("../../../../examples/knowledge/air_purifier.zh.md"),
    ),
    (
        "air_purifier.en.md",
        include_str!("../../../../examples/knowledge/air_purifier.en.md"),
    ),
];

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print machine-readable JSON lines instead of tables.
    #[arg(long)]
    json: bool,
    /// Exit after the summary instead of serving the dashboard (tests and CI).
    #[arg(long)]
    no_serve: bool,
    /// Language of the live campaign: `zh` (the Chinese sample, script and
    /// Mandarin callees; the default) or `en` (US customers, English script and
    /// callees).
    #[arg(long, default_value = "zh", value_parser = ["zh", "en"])]
    lang: String,
    /// Live calls at once.
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Dial only the first this many sample customers in the live campaign (default: all;
    /// a quick look takes a few minutes instead of about half an hour).
    #[arg(long)]
    live_contacts: Option<usize>,
    /// Where the dashboard is served after the run.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: std::net::SocketAddr,
}

pub fn run(ctx: &Ctx, args: Args) -> anyhow::Result<()> {
    let dir = ctx.data_dir().join("examples");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let csv = dir.join("customers.csv");
    let rules = dir.join("segments.yaml");
    write_if_changed(&csv, SAMPLE_CUSTOMERS)?;
    let csv_us = dir.join("customers-us.csv");
    write_if_changed(&csv_us, SAMPLE_CUSTOMERS_US)?;
    write_if_changed(&rules, SAMPLE_SEGMENTS)?;
    let campaign_file = dir.join("campaign.yaml");
    let script_file = dir.join("order_confirmation.zh.yaml");
    let cases_file = dir.join("order_confirmation.cases.yaml");
    write_if_changed(&campaign_file, SAMPLE_CAMPAIGN)?;
    // `../knowledge/` from the scripts written here (`<data-dir>/examples/`) and
    // from the copies a run keeps (`<data-dir>/scripts/`) is `<data-dir>/knowledge/`.
    let knowledge = ctx.data_dir().join("knowledge");
    std::fs::create_dir_all(&knowledge)
        .with_context(|| format!("creating {}", knowledge.display()))?;
    for (name, text) in KNOWLEDGE {
        write_if_changed(&knowledge.join(name), text)?;
    }
    write_if_changed(&script_file, ORDER_SCRIPT)?;
    write_if_changed(&cases_file, ORDER_CASES)?;
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
            let report_us = customers::import_file(
                ctx,
                &store,
                &customers::ImportArgs {
                    file: csv_us.clone(),
                    region: "US".into(),
                    map: None,
                    rejects: None,
                    batch: 5000,
                    json: args.json,
                },
            )
            .await?;
            if args.json {
                crate::ctx::print_json(&report_us)?;
            } else {
                println!(
                    "   {}: {} created, {} updated, {} unchanged, {} rejected",
                    csv_us.display(),
                    report_us.created,
                    report_us.updated,
                    report_us.unchanged,
                    report_us.rejected
                );
            }
            let report = customers::import_file(ctx, &store, &import).await?;
            if args.json {
                crate::ctx::print_json(&report)?;
            } else {
                println!(
                    "   {} created, {} updated, {} unchanged, {} rejected ({})",
                    report.created,
                    report.updated,
                    report.unchanged,
                    report.rejected,
                    report.encoding
                );
                if let Some(p) = &report.rejects_file {
                    println!("   rejected rows (the sample has three on purpose) → {p}");
                }
                println!("\n2. 客户分群 / segmenting with {}", rules.display());
            }
            let seg = segments::RulesArgs {
                rules: rules.clone(),
                samples: 2,
                today: None,
                json: args.json,
            };
            segments::preview(&store, &seg, true).await?;
            if !args.json {
                let (n, reveals) = (store.customer_count().await?, store.event_counts().await?);
                println!(
                    "\n3. 事件日志 / event log: {n} customers stored encrypted; events by type:"
                );
                for (t, c) in reveals {
                    println!("   {t:<20} {c}");
                }
            }
            Ok::<_, anyhow::Error>(())
        }
        .await;
        store.close().await;
        r
    })?;
    drop(rt);

    if !args.json {
        println!(
            "\n4. 话术脚本 / order-confirmation script: validated, then its test conversations"
        );
    }
    script::run(
        ctx,
        script::Cmd::Test {
            file: script_file.clone(),
            cases: cases_file,
            json: args.json,
            verbose: false,
        },
    )?;

    let events = dir.join("simulated-events.jsonl");
    if !args.json {
        println!(
            "\n5. 外呼模拟 / a 7-day campaign over 20,000 synthetic customers in virtual time ({})",
            campaign_file.display()
        );
    }
    campaign::run(
        ctx,
        campaign::Cmd::Simulate(waihu_bench::simulate::Args {
            campaign: Some(campaign_file.clone()),
            customers: 20_000,
            days: 7,
            policy: "best-time".into(),
            compare: false,
            channels: None,
            agents: None,
            seed: 1,
            start: None,
            explain: 0,
            events_out: Some(events.clone()),
            store: false,
            json: args.json,
        }),
    )?;
    if !args.json {
        println!(
            "\n6. 合规检查 / the independent checker re-reads that event log ({})",
            events.display()
        );
    }
    compliance::run(
        ctx,
        compliance::Cmd::Check {
            campaigns: vec![campaign_file],
            events: Some(events),
            json: args.json,
        },
    )?;
    crate::cmd::live::demo(ctx, &live_args(&args, &dir)?)?;
    if !args.json {
        println!(
            "\nNext: waihu customers list --segment high_value · waihu script chat {} · waihu --help",
            script_file.display()
        );
    }
    Ok(())
}

fn live_args(args: &Args, dir: &std::path::Path) -> anyhow::Result<crate::cmd::live::DemoArgs> {
    let (campaign, script, script_text) = match args.lang.as_str() {
        "zh" => (
            "campaign-demo.zh.yaml",
            "order_confirmation.zh.yaml",
            ORDER_SCRIPT,
        ),
        _ => (
            "campaign-demo.en.yaml",
            "order_confirmation.en.yaml",
            ORDER_SCRIPT_EN,
        ),
    };
    let campaign_text = if args.lang == "zh" {
        LIVE_CAMPAIGN_ZH
    } else {
        LIVE_CAMPAIGN_EN
    };
    let script_file = dir.join(script);
    write_if_changed(&script_file, script_text)?;
    Ok(crate::cmd::live::DemoArgs {
        lang: args.lang.clone(),
        campaign_yaml: campaign_text.to_string(),
        campaign_file: dir.join(campaign),
        script: script_file,
        concurrency: args.concurrency,
        live_contacts: args.live_contacts,
        json: args.json,
        serve: !args.no_serve,
        listen: args.listen,
    })
}

fn write_if_changed(path: &PathBuf, content: &str) -> anyhow::Result<()> {
    if std::fs::read_to_string(path).ok().as_deref() != Some(content) {
        std::fs::write(path, content).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
