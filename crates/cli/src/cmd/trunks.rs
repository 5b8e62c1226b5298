//! `waihu trunks`: validate a trunks file; show the trunks of a running node.
use std::path::PathBuf;

use anyhow::Context;
use waihu_dialer::trunks::read_status;

use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 校验中继配置: validate a trunks file (or a campaign file's trunks); errors carry
    /// file:line:column.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// 中继状态: registration and health per trunk of the node running on this data
    /// directory (read from `<data_dir>/trunks.json`).
    Status {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, c: Cmd) -> anyhow::Result<()> {
    match c {
        Cmd::Check { file, json } => check(file, json),
        Cmd::Status { json } => status(ctx, json),
    }
}

fn check(file: PathBuf, json: bool) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    // A campaign file names its trunks inline or through trunks_file; a trunks file starts
    // with `trunks:` and has nothing else.
    let is_campaign = text
        .lines()
        .any(|l| l.starts_with("name:") || l.starts_with("trunks_file:"));
    let r = if is_campaign {
        waihu_campaign::trunks::campaign_trunks(&file, &text)
    } else {
        waihu_campaign::trunks::load_trunks_file(&file)
    };
    match r {
        Ok(trunks) => {
            if json {
                crate::ctx::print_json(&serde_json::json!({"ok": true, "trunks": trunks}))?;
            } else {
                println!(
                    "{}: {} trunk(s) OK / 中继配置有效",
                    file.display(),
                    trunks.len()
                );
                for t in &trunks {
                    println!(
                        "  {:<16} {} {}  channels {}  cps {}  weight {}  register {}{}",
                        t.name,
                        t.transport.as_str(),
                        t.next_hop(),
                        t.channels,
                        t.cps,
                        t.weight,
                        if t.register { "yes" } else { "no" },
                        t.username
                            .as_deref()
                            .map(|u| format!("  user {u}"))
                            .unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            if json {
                crate::ctx::print_json(&serde_json::json!({"ok": false, "errors": e.issues}))?;
                std::process::exit(1);
            }
            Err(e.into())
        }
    }
}

fn status(ctx: &Ctx, json: bool) -> anyhow::Result<()> {
    let path = ctx.data_dir().join("trunks.json");
    let s = read_status(&path).map_err(anyhow::Error::msg)?;
    let now = chrono::Utc::now().timestamp_millis();
    let age_s = (now - s.updated_ms) as f64 / 1000.0;
    let stale = age_s > 5.0;
    if json {
        let mut v = serde_json::to_value(&s)?;
        v["age_s"] = serde_json::json!(age_s);
        v["stale"] = serde_json::json!(stale);
        return crate::ctx::print_json(&v);
    }
    if stale {
        println!(
            "注意 note: written {age_s:.0} s ago by pid {} — the node may have stopped",
            s.pid
        );
    }
    println!(
        "{:<16} {:<13} {:<12} {:>6} {:>9} {:>7} {:>8}  down until",
        "trunk", "state", "registered", "regs", "in-flight", "calls", "failures"
    );
    for t in &s.trunks {
        let down = t
            .down_until_ms
            .and_then(chrono::DateTime::from_timestamp_millis)
            .map(|d| d.format("%H:%M:%S").to_string())
            .unwrap_or_else(|| "-".into());
        let reg = match t.registration_status {
            Some(code) => format!("{} ({code})", t.registration),
            None => t.registration.clone(),
        };
        println!(
            "{:<16} {:<13} {:<12} {:>6} {:>4}/{:<4} {:>7} {:>8}  {down}",
            t.name, t.state, reg, t.registrations, t.in_flight, t.channels, t.calls, t.failures
        );
    }
    Ok(())
}
