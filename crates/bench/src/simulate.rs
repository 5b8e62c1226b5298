//! `waihu campaign simulate`: a campaign in virtual time with synthetic
//! customers, every event audited by the independent compliance checker, the
//! planner's and the whole run's time measured ([`crate::campaign::simulate_timed`]);
//! `--compare` runs fifo, best-time and learned side by side on the same customers.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use waihu_campaign::config::Policy;
use waihu_campaign::{Campaign, SimConfig, SimReport};
use waihu_compliance::{CampaignRules, Checker, ComplianceReport};
use waihu_store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Campaign file (default: the shipped examples/campaign.yaml).
    #[arg(long)]
    pub campaign: Option<PathBuf>,
    #[arg(long, default_value_t = 100_000)]
    pub customers: usize,
    #[arg(long, default_value_t = 7)]
    pub days: u32,
    /// best-time (hour-of-week model ranking), learned (propensity models,
    /// channel choice, variant bandit) or fifo (oldest first, fixed retries).
    #[arg(long, default_value = "best-time")]
    pub policy: String,
    /// Run fifo, best-time and learned side by side on the same customers.
    #[arg(long)]
    pub compare: bool,
    /// Bot channels in total (trunks and caller-ID caps are scaled to it).
    /// Default: one channel per 2,000 customers, at least 20.
    #[arg(long)]
    pub channels: Option<u32>,
    /// Human agents: predictive pacing against the abandon-rate target.
    #[arg(long)]
    pub agents: Option<u32>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// First day, YYYY-MM-DD (default: the campaign's first active day).
    #[arg(long)]
    pub start: Option<chrono::NaiveDate>,
    /// Learned policy: print why the first N customers were ranked and handled
    /// as they were (probabilities, expected values, top features).
    #[arg(long, default_value_t = 0)]
    pub explain: usize,
    /// Also write every event as JSON lines to this file.
    #[arg(long)]
    pub events_out: Option<PathBuf>,
    /// Also append the events to the data directory's event log (small runs).
    #[arg(long)]
    pub store: bool,
    #[arg(long)]
    pub json: bool,
}

/// Runs the simulation(s) and prints the table (or one JSON line per policy);
/// fails when the checker found a violation. `--store` appends the events to
/// the event log of `data_dir`.
pub fn run(data_dir: &Path, a: Args) -> anyhow::Result<()> {
    let Args {
        campaign,
        customers,
        days,
        policy,
        compare,
        channels,
        agents,
        seed,
        start,
        explain,
        events_out,
        store,
        json,
    } = a;
    let text = match &campaign {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?
        }
        None => waihu_campaign::EXAMPLE_CAMPAIGN.to_string(),
    };
    let name = campaign
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "examples/campaign.yaml".into());
    let channels = channels.unwrap_or_else(|| (customers as u32 / 2000).max(20));
    let scenario = waihu_campaign::sim::scale_scenario(&text, channels)
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let policies = if compare {
        vec![Policy::Fifo, Policy::BestTime, Policy::Learned]
    } else {
        vec![parse_policy(&policy)?]
    };
    let mut results = Vec::new();
    for p in policies {
        let cfg = SimConfig {
            customers,
            days,
            seed,
            policy: p,
            agents,
            start,
            explain,
            messages: Some(
                waihu_campaign::sim::MessageRules::from_campaign_yaml(&name, &scenario)
                    .map_err(|e| anyhow::anyhow!("{e}"))?,
            ),
        };
        results.push(run_sim(
            data_dir,
            &name,
            &scenario,
            &cfg,
            events_out.as_ref(),
            store,
        )?);
    }
    let violations: u64 = results.iter().map(|(_, c, _)| c.violation_count).sum();
    if json {
        for (r, c, mem) in &results {
            crate::print_json(&serde_json::json!({
                "simulation": r,
                "compliance": {"ok": c.ok(), "violations": c.violation_count, "by_kind": c.by_kind,
                               "campaigns": c.campaigns, "first": c.violations.iter().take(10).collect::<Vec<_>>()},
                "peak_rss_mb": mem,
            }))?;
        }
    } else {
        print_sims(&results);
        for (r, ..) in &results {
            for e in &r.explanations {
                print_explanation(e);
            }
        }
    }
    if violations > 0 {
        bail!("{violations} compliance violation(s) in the simulation / 模拟中发现合规违规");
    }
    Ok(())
}

fn print_explanation(e: &waihu_campaign::sim::CustomerExplanation) {
    let x = &e.explanation;
    println!(
        "\n客户 customer {} [{}]: {:?}; P(answer) {:.3} at day part {} · P(convert) {:.3}{} · EV call {:.3}{}",
        e.customer,
        e.features.join(", "),
        x.choice,
        x.p_answer_best,
        x.best_day_part,
        x.p_convert,
        x.p_message
            .map(|p| format!(" · P(message works) {p:.3}"))
            .unwrap_or_default(),
        x.ev_call,
        x.ev_message_first
            .map(|v| format!(" · EV message first {v:.3}"))
            .unwrap_or_default(),
    );
    let list = |c: &[waihu_learn::Contribution]| {
        c.iter()
            .map(|c| format!("{} {:+.2}", c.feature, c.weight))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("  接听因素 answer: {}", list(&x.answer_features));
    println!("  转化因素 convert: {}", list(&x.convert_features));
}

fn parse_policy(s: &str) -> anyhow::Result<Policy> {
    match s {
        "best-time" | "best_time" => Ok(Policy::BestTime),
        "fifo" => Ok(Policy::Fifo),
        "learned" => Ok(Policy::Learned),
        other => bail!("--policy {other}: use best-time, learned or fifo"),
    }
}

fn run_sim(
    data_dir: &Path,
    name: &str,
    scenario: &str,
    cfg: &SimConfig,
    events_out: Option<&PathBuf>,
    store: bool,
) -> anyhow::Result<(SimReport, ComplianceReport, f64)> {
    let campaign = Campaign::from_yaml(scenario).map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
    let rules = CampaignRules::from_yaml(name, scenario)?;
    let mut checker = Checker::new(vec![rules]);
    let mut out = match events_out {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    let mut kept = Vec::new();
    let mut write_err = None;
    // Progress on stderr (stdout stays the table or JSON): virtual day reached, events,
    // rate and an estimate of the wall time left, at most once a second.
    let wall = std::time::Instant::now();
    let mut shown = wall;
    let mut first: Option<chrono::DateTime<chrono::Utc>> = None;
    let mut seen = 0u64;
    let label = format!("{:?}", cfg.policy).to_lowercase();
    let report = crate::campaign::simulate_timed(&campaign, cfg, &mut |e| {
        seen += 1;
        if seen.is_multiple_of(65_536) && shown.elapsed().as_secs_f64() >= 1.0 {
            shown = std::time::Instant::now();
            let start = first.unwrap_or(e.at);
            let day = (e.at - start).num_seconds() as f64 / 86_400.0;
            let secs = wall.elapsed().as_secs_f64();
            let left = if day > 0.0 {
                secs * (cfg.days as f64 - day).max(0.0) / day
            } else {
                0.0
            };
            eprintln!(
                "   进度 progress [{label}]: day {day:.1}/{}, {seen} events, {:.0} events/s, about {left:.0} s to go / 预计剩余 {left:.0} 秒",
                cfg.days,
                seen as f64 / secs.max(1e-9),
            );
        }
        first.get_or_insert(e.at);
        checker.feed(e);
        if let Some(w) = out.as_mut() {
            if let Err(err) = serde_json::to_writer(&mut *w, e)
                .map_err(std::io::Error::from)
                .and_then(|_| w.write_all(b"\n"))
            {
                write_err.get_or_insert(err);
            }
        }
        if store {
            kept.push(e.clone());
        }
    });
    if let Some(e) = write_err {
        return Err(e).context("writing events");
    }
    if let Some(mut w) = out {
        w.flush()?;
    }
    if store {
        crate::runtime()?.block_on(async {
            let s = Store::open(data_dir)
                .await
                .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
            for chunk in kept.chunks(10_000) {
                s.append_events(chunk).await?;
            }
            s.close().await;
            anyhow::Ok(())
        })?;
    }
    Ok((report, checker.finish(), crate::peak_rss_mb()))
}

/// One row of the simulation table: its label and how to read a cell.
type SimRow<'a> = (
    &'a str,
    Box<dyn Fn(&SimReport, &ComplianceReport) -> String>,
);

fn print_sims(results: &[(SimReport, ComplianceReport, f64)]) {
    let col = |f: &dyn Fn(&SimReport, &ComplianceReport) -> String| -> String {
        results
            .iter()
            .map(|(r, c, _)| format!("{:>16}", f(r, c)))
            .collect::<Vec<_>>()
            .join("")
    };
    println!("{:<38}{}", "模拟 simulation", col(&|r, _| r.policy.clone()));
    let rows: Vec<SimRow> = vec![
        ("客户 customers", Box::new(|r, _| r.customers.to_string())),
        ("天数 days", Box::new(|r, _| r.days.to_string())),
        (
            "线路/坐席 channels or agents",
            Box::new(|r, _| r.channels.to_string()),
        ),
        ("拨打 attempts", Box::new(|r, _| r.attempts.to_string())),
        ("接通 connects", Box::new(|r, _| r.connects.to_string())),
        (
            "触达客户 customers reached",
            Box::new(|r, _| r.reached.to_string()),
        ),
        (
            "触达率 contact rate",
            Box::new(|r, _| format!("{:.2}%", r.contact_rate * 100.0)),
        ),
        (
            "接通/拨打 connects per attempt",
            Box::new(|r, _| format!("{:.4}", r.connects_per_attempt)),
        ),
        (
            "拨打/接通 attempts per connect",
            Box::new(|r, _| format!("{:.2}", r.attempts_per_connect)),
        ),
        (
            "空号拨打 invalid-number attempts",
            Box::new(|r, _| r.invalid_attempts.to_string()),
        ),
        (
            "无效拨打 attempts reaching nobody",
            Box::new(|r, _| r.wasted_attempts.to_string()),
        ),
        (
            "完成任务 tasks completed",
            Box::new(|r, _| r.tasks_completed.to_string()),
        ),
        (
            "  通话完成 by a call",
            Box::new(|r, _| r.tasks_by_call.to_string()),
        ),
        (
            "  短信完成 by a message",
            Box::new(|r, _| r.tasks_by_message.to_string()),
        ),
        (
            "任务/线路小时 tasks per line-hour",
            Box::new(|r, _| format!("{:.3}", r.tasks_per_line_hour)),
        ),
        (
            "任务/百次拨打 tasks per 100 attempts",
            Box::new(|r, _| {
                format!(
                    "{:.2}",
                    100.0 * r.tasks_completed as f64 / r.attempts.max(1) as f64
                )
            }),
        ),
        (
            "转化/接通 conversion per connect",
            Box::new(|r, _| format!("{:.4}", r.conversion_per_connect)),
        ),
        (
            "话术分配 variant split",
            Box::new(|r, _| format!("{} {:?}", r.variant_split, r.variant_calls)),
        ),
        (
            "话术遗憾 variant regret (conv.)",
            Box::new(|r, _| format!("{:.0}", r.variant_regret)),
        ),
        (
            "先发短信 message first",
            Box::new(|r, _| r.message_first.to_string()),
        ),
        (
            "不联系 not worth contacting",
            Box::new(|r, _| r.skipped.to_string()),
        ),
        (
            "回拨请求 callbacks asked",
            Box::new(|r, _| r.callbacks_requested.to_string()),
        ),
        (
            "回拨拨打 callback dials",
            Box::new(|r, _| r.callback_dials.to_string()),
        ),
        (
            "短信/推送 messages sent",
            Box::new(|r, _| r.messages_sent.to_string()),
        ),
        (
            "短信延后/放弃 messages deferred / dropped",
            Box::new(|r, _| format!("{} / {}", r.messages_deferred, r.messages_suppressed)),
        ),
        (
            "新增免打扰 DNC added",
            Box::new(|r, _| r.dnc_added.to_string()),
        ),
        (
            "弃呼率 abandon rate",
            Box::new(|r, _| format!("{:.2}%", r.abandon_rate * 100.0)),
        ),
        (
            "合规违规 compliance violations",
            Box::new(|_, c| c.violation_count.to_string()),
        ),
        ("事件 events", Box::new(|r, _| r.events.to_string())),
        (
            "未完成 pending at end",
            Box::new(|r, _| r.pending_at_end.to_string()),
        ),
        (
            "调度耗时 planner s",
            Box::new(|r, _| format!("{:.2}", r.planner_secs)),
        ),
        (
            "墙钟 wall s",
            Box::new(|r, _| format!("{:.2}", r.wall_secs)),
        ),
    ];
    for (label, f) in rows {
        println!("{:<38}{}", label, col(&|r, c| f(r, c)));
    }
    println!(
        "{:<38}{}",
        "峰值内存 peak RSS MB (process)",
        results
            .iter()
            .map(|(_, _, m)| format!("{m:>16.0}"))
            .collect::<String>()
    );
    let up = |x: f64, y: f64| if y > 0.0 { (x / y - 1.0) * 100.0 } else { 0.0 };
    if let Some((fifo, ..)) = results.iter().find(|(r, ..)| r.policy == "fifo") {
        for (a, ..) in results.iter().filter(|(r, ..)| r.policy != "fifo") {
            println!(
                "{} vs fifo: tasks per line-hour {:+.1}% (seed: +300%), attempts reaching nobody {:+.1}% (seed: −65%), connects/attempt {:+.1}%, customers reached {:+.1}%, invalid attempts {:+.1}%",
                a.policy,
                up(a.tasks_per_line_hour, fifo.tasks_per_line_hour),
                up(a.wasted_attempts as f64, fifo.wasted_attempts as f64),
                up(a.connects_per_attempt, fifo.connects_per_attempt),
                up(a.reached as f64, fifo.reached as f64),
                up(a.invalid_attempts as f64, fifo.invalid_attempts as f64),
            );
        }
    }
    for (r, c, _) in results {
        for v in c.violations.iter().take(5) {
            println!("  [{}] {v}", r.policy);
        }
    }
}
