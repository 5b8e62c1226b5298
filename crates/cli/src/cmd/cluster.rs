//! `waihu cluster`: the shared PostgreSQL of a multi-node deployment (`WAIHU_DATABASE_URL`,
//! a `postgres://` URL): nodes and campaigns at a glance, a campaign's shared limits from its
//! file, start / pause / stop on every node at once, dead-node reclaim, and the compliance
//! check over the merged log of all nodes. 多节点集群。
use std::path::PathBuf;

use anyhow::{bail, Context};
use chrono::Utc;
use waihu_campaign::config::Campaign;
use waihu_cluster::{CampaignSpec, Caps, Cluster};
use waihu_core::CampaignId;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Args, Debug)]
pub struct Conn {
    /// The cluster's PostgreSQL (`postgres://user@host:port/db`).
    #[arg(long, env = "WAIHU_DATABASE_URL", hide_env_values = true)]
    pub url: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Nodes (state, last heartbeat, open calls, leases) and campaigns (state, channels in
    /// use, contacts pending). 节点与活动状态。
    Status {
        #[command(flatten)]
        conn: Conn,
        #[arg(long)]
        json: bool,
    },
    /// Register or update a campaign's shared limits from its campaign file: caps from
    /// `caps`, channels and CPS summed over its trunks (or given here). 登记活动。
    Campaign {
        #[command(flatten)]
        conn: Conn,
        file: PathBuf,
        /// Concurrent calls over all nodes (default: the trunks' channels).
        #[arg(long)]
        channels: Option<u32>,
        /// New calls per second over all nodes (default: the trunks' CPS).
        #[arg(long)]
        cps: Option<f64>,
    },
    /// Start, pause or stop a campaign on every node (they hear it within a second).
    /// 启动 / 暂停 / 停止。
    State {
        #[command(flatten)]
        conn: Conn,
        campaign: i64,
        /// started | paused | stopped | finished
        state: String,
    },
    /// Drain a node: it dials nothing new, hands its contacts to the other nodes, lets its
    /// calls finish and stops (`--undo`: back in service while it still runs). Pair it with
    /// Kamailio's `dispatcher.set_state d` for inbound calls (docs/deploy.md). 节点排空。
    Drain {
        #[command(flatten)]
        conn: Conn,
        node: String,
        #[arg(long)]
        undo: bool,
    },
    /// Declare nodes silent for longer than the timeout lost: their open calls are ended in
    /// the log and their contacts go back to the others (every node does this by itself).
    Reap {
        #[command(flatten)]
        conn: Conn,
        #[arg(long, default_value_t = 30)]
        timeout_s: i64,
    },
    /// The compliance check over the merged log of every node; non-zero exit on a
    /// violation. 合并日志合规检查。
    Check {
        #[command(flatten)]
        conn: Conn,
        /// Campaign files whose rules apply (matched to events by `id`).
        #[arg(long = "campaign")]
        campaigns: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

async fn connect(conn: &Conn) -> anyhow::Result<Cluster> {
    if !conn.url.starts_with("postgres://") && !conn.url.starts_with("postgresql://") {
        bail!("WAIHU_DATABASE_URL / --url: a postgres:// URL is needed for the cluster");
    }
    let name = format!("cli-{}", std::process::id());
    Cluster::connect(&conn.url, &name, 2)
        .await
        .context("connecting to the cluster's PostgreSQL")
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        match cmd {
            Cmd::Status { conn, json } => {
                let c = connect(&conn).await?;
                let nodes = c.nodes().await?;
                let campaigns = c.campaigns().await?;
                if json {
                    return print_json(&serde_json::json!({"nodes": nodes, "campaigns": campaigns}));
                }
                let now = Utc::now();
                println!("节点 / nodes: {}", nodes.len());
                for n in &nodes {
                    println!(
                        "  {:<16} {:<9} heartbeat {:>6.1} s ago  calls {:>4}  leases {:>5}",
                        n.name,
                        n.state,
                        (now - n.heartbeat).num_milliseconds() as f64 / 1000.0,
                        n.open_calls,
                        n.leases
                    );
                }
                println!("活动 / campaigns: {}", campaigns.len());
                for k in &campaigns {
                    println!(
                        "  {:>4} {:<20} {:<9} channels {:>4}/{:<4} cps {:>6.1}  pending {:>7}  done {:>7}",
                        k.id, k.name, k.state, k.in_flight, k.channels, k.cps, k.pending, k.done
                    );
                }
                Ok(())
            }
            Cmd::Campaign {
                conn,
                file,
                channels,
                cps,
            } => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?;
                let k = Campaign::from_yaml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
                let channels = channels.unwrap_or_else(|| k.trunks.iter().map(|t| t.channels).sum());
                let cps = cps.unwrap_or_else(|| k.trunks.iter().map(|t| t.cps).sum());
                if channels == 0 || cps <= 0.0 {
                    bail!(
                        "{}: no trunks with channels and CPS; give --channels and --cps",
                        file.display()
                    );
                }
                let c = connect(&conn).await?;
                c.upsert_campaign(
                    &CampaignSpec {
                        id: k.id,
                        name: k.name.clone(),
                        channels,
                        cps,
                        caps: Caps {
                            per_day: k.per_number_per_day,
                            per_week: k.per_number_per_week,
                            max_attempts: k.max_attempts,
                        },
                    },
                    Utc::now(),
                )
                .await?;
                println!(
                    "活动 {} ({}) 已登记 / registered: {channels} channels, {cps} cps, caps {:?}/{:?} per day/week, {} attempts",
                    k.id, k.name, k.per_number_per_day, k.per_number_per_week, k.max_attempts
                );
                Ok(())
            }
            Cmd::State {
                conn,
                campaign,
                state,
            } => {
                let c = connect(&conn).await?;
                c.set_campaign_state(CampaignId(campaign), &state, &ctx.actor(), Utc::now())
                    .await?;
                println!("活动 {campaign}: {state}");
                Ok(())
            }
            Cmd::Drain { conn, node, undo } => {
                let c = connect(&conn).await?;
                c.drain(&node, !undo).await?;
                if undo {
                    println!("node {node} back in service / 节点恢复");
                } else {
                    println!(
                        "node {node} draining: no new dials, its calls finish, then it stops / 节点排空中"
                    );
                }
                Ok(())
            }
            Cmd::Reap { conn, timeout_s } => {
                if timeout_s <= 0 {
                    bail!("--timeout-s must be positive");
                }
                let c = connect(&conn).await?;
                let lost = c
                    .reap(Utc::now(), chrono::Duration::seconds(timeout_s))
                    .await?;
                println!("lost nodes reclaimed / 已回收: {}", lost.join(", "));
                Ok(())
            }
            Cmd::Check {
                conn,
                campaigns,
                json,
            } => {
                let rules = super::compliance::load_rules(&campaigns)?;
                let c = connect(&conn).await?;
                let report = super::compliance::check_and_print(rules, c.events().await?, json)?;
                if !report.ok() {
                    bail!(
                        "{} compliance violation(s) in the merged log / 合并日志中发现 {} 项合规违规",
                        report.violation_count,
                        report.violation_count
                    );
                }
                Ok(())
            }
        }
    })
}
