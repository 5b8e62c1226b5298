//! `waihu dnc ...`: the do-not-call list, matched through the blind index.
use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use serde_json::json;
use waihu_core::mask_phone;
use waihu_import::dnc::{import_dnc, DncImport};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Put a number on the list.
    Add {
        phone: String,
        /// `global` (every campaign) or a campaign name.
        #[arg(long, default_value = "global")]
        scope: String,
        #[arg(long, default_value = "")]
        reason: String,
        /// Region for numbers without a country code.
        #[arg(long, default_value = "CN")]
        region: String,
    },
    /// Take a number off the list.
    Remove {
        phone: String,
        #[arg(long, default_value = "global")]
        scope: String,
        #[arg(long, default_value = "CN")]
        region: String,
    },
    /// Whether a number may be called.
    Check {
        phone: String,
        #[arg(long, default_value = "global")]
        scope: String,
        #[arg(long, default_value = "CN")]
        region: String,
        #[arg(long)]
        json: bool,
    },
    /// List entries (numbers masked unless --reveal, which is audited).
    List {
        #[arg(long)]
        scope: Option<String>,
        #[arg(long)]
        reveal: bool,
        #[arg(long)]
        json: bool,
    },
    /// Add every number of a file: one per line, or CSV whose first column is the number.
    Import {
        file: PathBuf,
        #[arg(long, default_value = "global")]
        scope: String,
        #[arg(long, default_value = "imported")]
        reason: String,
        #[arg(long, default_value = "CN")]
        region: String,
        #[arg(long)]
        json: bool,
    },
}

fn normalize(phone: &str, region: &str) -> anyhow::Result<String> {
    Ok(waihu_phone::normalize_phone(phone, region)
        .map_err(anyhow::Error::msg)?
        .0)
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        match cmd {
            Cmd::Add { phone, scope, reason, region } => {
                let e164 = normalize(&phone, &region)?;
                let added = store.dnc_add(&e164, &scope, &reason, Utc::now()).await?;
                println!("{} {} ({scope})", if added { "added" } else { "already listed:" }, mask_phone(&e164));
            }
            Cmd::Remove { phone, scope, region } => {
                let e164 = normalize(&phone, &region)?;
                if !store.dnc_remove(&e164, &scope, Utc::now()).await? {
                    anyhow::bail!("{} is not on the {scope} list", mask_phone(&e164));
                }
                println!("removed {} ({scope})", mask_phone(&e164));
            }
            Cmd::Check { phone, scope, region, json } => {
                let e164 = normalize(&phone, &region)?;
                let listed = store.dnc_contains(&e164, &scope).await?;
                if json {
                    print_json(&json!({"phone": mask_phone(&e164), "scope": scope, "do_not_call": listed}))?;
                } else {
                    println!("{}: {}", mask_phone(&e164), if listed { "DO NOT CALL" } else { "may be called" });
                }
            }
            Cmd::List { scope, reveal, json } => {
                let entries = store.dnc_list(scope.as_deref()).await?;
                if reveal && !entries.is_empty() {
                    let ev = waihu_core::Event {
                        at: Utc::now(),
                        customer: None,
                        campaign: None,
                        call: None,
                        kind: waihu_core::EventKind::PiiRevealed {
                            actor: ctx.actor(),
                            field: format!("dnc.phone x{}", entries.len()),
                            reason: "cli dnc list --reveal".into(),
                        },
                    };
                    store.append_event(&ev).await?;
                }
                for e in entries {
                    let phone = if reveal { e.phone.clone() } else { mask_phone(&e.phone) };
                    if json {
                        print_json(&json!({"phone": phone, "scope": e.scope, "reason": e.reason, "added_at": e.added_at}))?;
                    } else {
                        println!("{phone:<16} {:<12} {}  {}", e.scope, e.added_at.format("%Y-%m-%d %H:%M"), e.reason);
                    }
                }
            }
            Cmd::Import { file, scope, reason, region, json } => {
                let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                let to = DncImport { scope: &scope, reason: &reason, region: &region };
                let mut reject = |line: usize, why: &str| eprintln!("{}:{line}: {why}", file.display());
                let r = import_dnc(&store, &bytes, &to, Utc::now(), &mut reject).await?;
                if json {
                    print_json(&r)?;
                } else {
                    println!("{} added, {} already listed, {} rejected", r.added, r.already_listed, r.rejected);
                }
            }
        }
        store.close().await;
        Ok(())
    })
}
