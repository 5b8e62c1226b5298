//! `waihu trunks`: validate a trunks file; show what DNS gives for its trunks; show the
//! trunks of a running node.
use std::net::SocketAddr;
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
    /// 解析中继地址: each trunk's next hop resolved per RFC 3263 (NAPTR → SRV → A/AAAA),
    /// the targets in the order a call tries them, each with its record chain.
    Resolve {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// DNS server to ask (`127.0.0.1:5353`); default: the trunk's `dns_server`, else
        /// WAIHU_DNS_SERVER, else the system's resolv.conf.
        #[arg(long, value_parser = parse_dns_server)]
        dns_server: Option<SocketAddr>,
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
        Cmd::Resolve {
            file,
            json,
            dns_server,
        } => resolve(file, json, dns_server),
    }
}

fn parse_dns_server(s: &str) -> Result<SocketAddr, String> {
    waihu_resolve::dns::parse_server(s)
}

/// The trunks of a trunks file or of a campaign file.
fn load(
    file: &std::path::Path,
) -> anyhow::Result<
    Result<Vec<waihu_campaign::trunks::TrunkConfig>, waihu_campaign::trunks::TrunksError>,
> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    // A campaign file names its trunks inline or through trunks_file; a trunks file starts
    // with `trunks:` and has nothing else.
    let is_campaign = text
        .lines()
        .any(|l| l.starts_with("name:") || l.starts_with("trunks_file:"));
    Ok(if is_campaign {
        waihu_campaign::trunks::campaign_trunks(file, &text)
    } else {
        waihu_campaign::trunks::load_trunks_file(file)
    })
}

fn resolve(file: PathBuf, json: bool, dns_server: Option<SocketAddr>) -> anyhow::Result<()> {
    use waihu_dialer::trunks::{resolve_trunk, trunk_resolver};
    let trunks = load(&file)?.map_err(anyhow::Error::from)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let seed = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let mut out = Vec::new();
    let mut failed = 0;
    for t in &trunks {
        let r = trunk_resolver(t, dns_server).and_then(|resolver| {
            let started = std::time::Instant::now();
            let found = rt.block_on(resolve_trunk(t, &resolver))?;
            Ok((resolver.server(), found, started.elapsed()))
        });
        match r {
            Ok((server, found, took)) => {
                let targets = found.targets(seed);
                // u32::MAX: nothing was looked up (an IP literal).
                let ttl = (found.ttl_s != u32::MAX).then_some(found.ttl_s);
                if !json {
                    println!(
                        "{}  {}  (DNS {}, {:.1} ms, TTL {})",
                        t.name,
                        t.next_hop(),
                        server.map_or("system".to_string(), |s| s.to_string()),
                        took.as_secs_f64() * 1000.0,
                        ttl.map_or("-".to_string(), |s| format!("{s} s"))
                    );
                    for (i, target) in targets.iter().enumerate() {
                        println!("  {}. {} {}", i + 1, target.transport, target.addr);
                        for step in &target.chain {
                            println!("       {step}");
                        }
                    }
                }
                out.push(serde_json::json!({
                    "trunk": t.name,
                    "ok": true,
                    "dns_server": server.map(|s| s.to_string()),
                    "ms": took.as_secs_f64() * 1000.0,
                    "ttl_s": ttl,
                    "targets": targets,
                }));
            }
            Err(e) => {
                failed += 1;
                if !json {
                    println!("{}  {}\n  错误 error: {e}", t.name, t.next_hop());
                }
                out.push(serde_json::json!({"trunk": t.name, "ok": false, "error": e}));
            }
        }
    }
    if json {
        crate::ctx::print_json(&serde_json::json!({"ok": failed == 0, "trunks": out}))?;
    }
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn check(file: PathBuf, json: bool) -> anyhow::Result<()> {
    match load(&file)? {
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
    if let Some(a) = s.asr {
        println!(
            "ASR 识别排队 / queue: {} waiting for {} decoders",
            a.waiting, a.slots
        );
    }
    Ok(())
}
