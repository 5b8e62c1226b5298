//! `waihu campaign ...`: validate campaign files, simulate campaigns in
//! virtual time (audited by the independent compliance checker), and measure
//! the planner's cost per decision.
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use chrono::TimeZone;
use waihu_campaign::config::Policy;
use waihu_campaign::{simulate, Campaign, ContactInput, Planner, Report, SimConfig, SimReport};
use waihu_compliance::{CampaignRules, Checker, ComplianceReport};
use waihu_core::{CallOutcome, CustomerId};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Check a campaign file and print what it means. 校验活动定义。
    Validate {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Simulate a campaign in virtual time with synthetic customers; every
    /// attempt is audited by the independent compliance checker. 模拟外呼活动。
    Simulate {
        /// Campaign file (default: the shipped examples/campaign.yaml).
        #[arg(long)]
        campaign: Option<PathBuf>,
        #[arg(long, default_value_t = 100_000)]
        customers: usize,
        #[arg(long, default_value_t = 7)]
        days: u32,
        /// best-time (model ranking) or fifo (oldest first, fixed retries).
        #[arg(long, default_value = "best-time")]
        policy: String,
        /// Run best-time and fifo side by side on the same customers.
        #[arg(long)]
        compare: bool,
        /// Bot channels in total (trunks and caller-ID caps are scaled to it).
        /// Default: one channel per 2,000 customers, at least 20.
        #[arg(long)]
        channels: Option<u32>,
        /// Human agents: predictive pacing against the abandon-rate target.
        #[arg(long)]
        agents: Option<u32>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First day, YYYY-MM-DD (default: the campaign's first active day).
        #[arg(long)]
        start: Option<chrono::NaiveDate>,
        /// Also write every event as JSON lines to this file.
        #[arg(long)]
        events_out: Option<PathBuf>,
        /// Also append the events to the data directory's event log (small runs).
        #[arg(long)]
        store: bool,
        #[arg(long)]
        json: bool,
    },
    /// Planner cost per decision with PENDING contacts, beside a full scan. 调度性能测试。
    Bench {
        #[arg(long, default_value_t = 2_000_000)]
        pending: usize,
        #[arg(long, default_value_t = 200_000)]
        decisions: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Validate { file, json } => validate(file, json),
        Cmd::Simulate {
            campaign,
            customers,
            days,
            policy,
            compare,
            channels,
            agents,
            seed,
            start,
            events_out,
            store,
            json,
        } => {
            let text = match &campaign {
                Some(p) => std::fs::read_to_string(p)
                    .with_context(|| format!("reading {}", p.display()))?,
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
                vec![Policy::BestTime, Policy::Fifo]
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
                };
                results.push(run_sim(
                    ctx,
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
                    print_json(&serde_json::json!({
                        "simulation": r,
                        "compliance": {"ok": c.ok(), "violations": c.violation_count, "by_kind": c.by_kind,
                                       "campaigns": c.campaigns, "first": c.violations.iter().take(10).collect::<Vec<_>>()},
                        "peak_rss_mb": mem,
                    }))?;
                }
            } else {
                print_sims(&results);
            }
            if violations > 0 {
                bail!(
                    "{violations} compliance violation(s) in the simulation / 模拟中发现合规违规"
                );
            }
            Ok(())
        }
        Cmd::Bench {
            pending,
            decisions,
            json,
        } => bench(pending, decisions, json),
    }
}

fn parse_policy(s: &str) -> anyhow::Result<Policy> {
    match s {
        "best-time" | "best_time" => Ok(Policy::BestTime),
        "fifo" => Ok(Policy::Fifo),
        other => bail!("--policy {other}: use best-time or fifo"),
    }
}

fn validate(file: PathBuf, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let c = Campaign::from_yaml(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    if json {
        return print_json(&c);
    }
    const DAYS: [&str; 7] = [
        "一 Mon", "二 Tue", "三 Wed", "四 Thu", "五 Fri", "六 Sat", "日 Sun",
    ];
    println!("活动 campaign '{}' (id {}) — OK", c.name, c.id);
    println!(
        "  时区 zone {}, 有效期 active {:?}, 优先级 priority {}",
        c.timezone.name(),
        c.active,
        c.priority
    );
    for (d, ws) in c.windows.iter().enumerate() {
        let list: Vec<String> = ws
            .iter()
            .map(|w| {
                format!(
                    "{:02}:{:02}-{:02}:{:02}",
                    w.start / 3600,
                    w.start % 3600 / 60,
                    w.end / 3600,
                    w.end % 3600 / 60
                )
            })
            .collect();
        println!(
            "  周{}  {}",
            DAYS[d],
            if list.is_empty() {
                "不拨打 no calls".into()
            } else {
                list.join(", ")
            }
        );
    }
    println!(
        "  上限 caps: per number/day {:?}, per number/week {:?}, max attempts {}",
        c.per_number_per_day, c.per_number_per_week, c.max_attempts
    );
    for o in CallOutcome::ALL {
        println!(
            "  重试 retry {:<15} {:?}",
            o.as_str(),
            c.retry[waihu_campaign::config::outcome_index(o)]
        );
    }
    for s in &c.segments {
        println!(
            "  分群 segment {:<12} → script {:<16} value {}",
            s.name, s.script, s.value
        );
    }
    for t in &c.trunks {
        println!(
            "  中继 trunk {:<10} channels {:<5} cps {}",
            t.name, t.channels, t.cps
        );
    }
    println!(
        "  主叫号码 caller IDs: {} (local presence {})",
        c.caller_ids.len(),
        c.local_presence
    );
    println!(
        "  pacing {:?}, ranking {:?}, consent required {}",
        c.pacing, c.policy, c.consent_required
    );
    Ok(())
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn run_sim(
    ctx: &Ctx,
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
    let report = simulate(&campaign, cfg, &mut |e| {
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
        ctx.runtime()?.block_on(async {
            let s = ctx.store().await?;
            for chunk in kept.chunks(10_000) {
                s.append_events(chunk).await?;
            }
            s.close().await;
            anyhow::Ok(())
        })?;
    }
    Ok((report, checker.finish(), peak_rss_mb()))
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
    if let [(a, ..), (b, ..)] = results {
        let up = |x: f64, y: f64| if y > 0.0 { (x / y - 1.0) * 100.0 } else { 0.0 };
        println!(
            "best-time vs fifo: connects/attempt {:+.1}%, customers reached {:+.1}%, attempts reaching nobody {:+.1}%, invalid attempts {:+.1}%",
            up(a.connects_per_attempt, b.connects_per_attempt),
            up(a.reached as f64, b.reached as f64),
            up(a.wasted_attempts as f64, b.wasted_attempts as f64),
            up(a.invalid_attempts as f64, b.invalid_attempts as f64),
        );
    }
    for (r, c, _) in results {
        for v in c.violations.iter().take(5) {
            println!("  [{}] {v}", r.policy);
        }
    }
}

fn bench(pending: usize, decisions: usize, json: bool) -> anyhow::Result<()> {
    let campaign = Campaign::from_yaml(waihu_campaign::EXAMPLE_CAMPAIGN)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut c = campaign.clone();
    c.active = None;
    c.per_number_per_day = None;
    c.per_number_per_week = None;
    c.caller_ids.clear();
    for t in c.trunks.iter_mut() {
        t.channels = 1_000_000;
        t.cps = 1e9;
    }
    let segs: Vec<String> = c.segments.iter().map(|s| s.name.clone()).collect();
    let mut planner = Planner::new(c);
    planner.reserve(pending);
    let t0 = Instant::now();
    for i in 0..pending {
        planner
            .add_contact(ContactInput {
                customer: CustomerId(i as i64 + 1),
                phone: format!("+86139{:08}", i),
                tz: waihu_campaign::chrono_tz::Asia::Shanghai,
                segment: segs[i % segs.len()].clone(),
                region: None,
                has_app: false,
                consent: true,
                recency_days: Some((i % 365) as u32),
                history: Vec::new(),
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    // Tuesday 10:00 Shanghai: the window is open.
    let now = waihu_campaign::chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 3, 10, 0, 0)
        .single()
        .context("bench time")?
        .with_timezone(&chrono::Utc);
    let batch = 50;
    let mut made = 0usize;
    let t1 = Instant::now();
    let mut tick = 0i64;
    while made < decisions {
        let at = now + chrono::Duration::milliseconds(tick * 100);
        tick += 1;
        let dials = planner.next_dials(at, batch);
        if dials.is_empty() {
            break;
        }
        for d in &dials {
            // Every third answers; the rest are retried later, so the pending set stays ~2M.
            let o = if d.customer.0 % 3 == 0 {
                CallOutcome::Answered
            } else {
                CallOutcome::NoAnswer
            };
            planner.on_outcome(at, d.contact, Report::outcome(o));
        }
        made += dials.len();
    }
    let plan_s = t1.elapsed().as_secs_f64();
    let per_decision_us = plan_s / made.max(1) as f64 * 1e6;
    // Baseline: what a planner without queues pays — score every pending
    // contact and take the best, per decision.
    let scores: Vec<(f32, f32)> = (0..pending)
        .map(|i| ((i % 365) as f32, (i % 7) as f32 * 0.1))
        .collect();
    let rounds = 20;
    let t2 = Instant::now();
    let mut sink = 0usize;
    for r in 0..rounds {
        let hour = (r % 24) as f32;
        let mut best = (f32::MIN, 0usize);
        for (i, (rec, p)) in scores.iter().enumerate() {
            let s = (0.5 + 0.5 * (-rec / 90.0).exp()) * (p + hour * 0.01);
            if s > best.0 {
                best = (s, i);
            }
        }
        sink ^= best.1;
    }
    let scan_us = t2.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    std::hint::black_box(sink);
    let pending_left = planner.pending();
    if json {
        print_json(&serde_json::json!({
            "pending": pending, "pending_after": pending_left, "load_s": load_s, "decisions": made,
            "planner_us_per_decision": per_decision_us, "full_scan_us_per_decision": scan_us,
            "speedup": scan_us / per_decision_us, "peak_rss_mb": peak_rss_mb(),
        }))
    } else {
        println!("调度性能 planner cost per decision, {pending} pending contacts");
        println!("  load {pending} contacts           {load_s:>10.2} s");
        println!("  planner (queues), {made} decisions  {per_decision_us:>10.2} µs/decision (incl. outcome)");
        println!("  baseline: full scan per decision  {scan_us:>10.0} µs/decision");
        println!(
            "  speedup                           {:>10.0}×",
            scan_us / per_decision_us
        );
        println!("  pending after                     {pending_left:>10}");
        println!(
            "  peak RSS                          {:>10.0} MB",
            peak_rss_mb()
        );
        Ok(())
    }
}
