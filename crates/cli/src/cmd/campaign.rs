//! `waihu campaign ...`: validate campaign files, simulate campaigns in
//! virtual time (audited by the independent compliance checker), and measure
//! the planner's cost per decision (`bench`, in crate `waihu-bench`).
use std::path::PathBuf;

use anyhow::Context;
use waihu_campaign::Campaign;
use waihu_core::CallOutcome;

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
    Simulate(waihu_bench::simulate::Args),
    /// Learning experiments (bandits over script variants): per variant calls,
    /// success rate, probability of being best, uplift. 话术实验报告。
    Experiments {
        /// Only this campaign id.
        #[arg(long)]
        campaign: Option<i64>,
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
        Cmd::Simulate(a) => waihu_bench::simulate::run(ctx.data_dir(), a),
        Cmd::Experiments { campaign, json } => experiments(ctx, campaign, json),
        Cmd::Bench {
            pending,
            decisions,
            json,
        } => waihu_bench::campaign::planner(pending, decisions, json),
    }
}

fn experiments(ctx: &Ctx, campaign: Option<i64>, json: bool) -> anyhow::Result<()> {
    let report = ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        anyhow::Ok(
            waihu_server::experiments::report(&store, campaign.map(waihu_core::CampaignId)).await?,
        )
    })?;
    if json {
        return print_json(&serde_json::json!({ "items": report }));
    }
    if report.is_empty() {
        println!("没有话术实验 no experiments (a script state needs `bandit:`)");
    }
    for e in &report {
        println!(
            "活动 campaign #{} · {} / {} · 客群 segment {} — {} 通分配 assigned, {} 通到达 reached, 领先 leader {}",
            e.campaign_id, e.script, e.state, e.segment, e.chosen, e.trials, e.leader
        );
        for v in &e.variants {
            let uplift = match v.stats.uplift {
                Some(u) => format!(
                    "{:+.1} pp [{:+.1}, {:+.1}]",
                    100.0 * u.diff,
                    100.0 * u.lo,
                    100.0 * u.hi
                ),
                None => "对照 control".into(),
            };
            println!(
                "  {:<12} 分配 {:>6}  到达 {:>6}  成功 {:>6}  率 rate {:>5.1}%  P(best) {:>5.1}%  {uplift}",
                v.variant,
                v.chosen,
                v.stats.trials,
                v.stats.successes,
                100.0 * v.stats.rate,
                100.0 * v.stats.prob_best
            );
        }
    }
    Ok(())
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
