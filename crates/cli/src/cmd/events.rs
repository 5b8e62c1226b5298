//! `waihu events ...`: read the append-only event log.
use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Print events, oldest first.
    List {
        /// Only this type (e.g. pii_revealed, dnc_added, attempt_started).
        #[arg(long = "type")]
        kind: Option<String>,
        #[arg(long, default_value_t = 0)]
        after: i64,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Count events per type.
    Counts {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        match cmd {
            Cmd::List {
                kind,
                after,
                limit,
                json,
            } => {
                let evs = match kind {
                    Some(k) => store.events_of_type(&k, after, limit).await?,
                    None => store.events(after, limit).await?,
                };
                for (id, e) in evs {
                    if json {
                        let mut v = serde_json::to_value(&e)?;
                        v["id"] = id.into();
                        print_json(&v)?;
                    } else {
                        let who = e
                            .customer
                            .map(|c| format!(" customer={c}"))
                            .unwrap_or_default();
                        println!(
                            "{id:>8} {} {}{who} {}",
                            e.at.format("%Y-%m-%d %H:%M:%S"),
                            e.kind.type_name(),
                            serde_json::to_string(&e.kind)?
                        );
                    }
                }
            }
            Cmd::Counts { json } => {
                for (t, n) in store.event_counts().await? {
                    if json {
                        print_json(&serde_json::json!({"type": t, "count": n}))?;
                    } else {
                        println!("{t:<24} {n}");
                    }
                }
            }
        }
        store.close().await;
        Ok(())
    })
}
