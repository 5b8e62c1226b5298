//! `waihu tenant ...`: client companies served by one installation. A tenant
//! is a data directory of its own under `DATA_DIR/tenants/NAME` (database,
//! master key, scripts, recordings, trunks); every command acts on one with
//! `--tenant NAME`, and `waihu serve` serves them all (`waihu_server::tenancy`).
use anyhow::Context;

use crate::ctx::{print_json, Ctx, TENANTS_DIR};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Create a tenant: its own database and master key. 新建租户。
    Add { name: String },
    /// List the installation's tenants (`default` is the data directory itself). 租户列表。
    List {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Add { name } => {
            waihu_server::tenancy::check_name(&name).map_err(|e| anyhow::anyhow!("tenant: {e}"))?;
            if name == waihu_server::tenancy::DEFAULT {
                anyhow::bail!("tenant: 'default' is the data directory itself and always exists");
            }
            let dir = ctx.home().join(TENANTS_DIR).join(&name);
            if dir.join(waihu_store::DB_FILE).exists() {
                anyhow::bail!("tenant: '{name}' already exists ({})", dir.display());
            }
            ctx.runtime()?.block_on(async {
                waihu_store::Store::open(&dir)
                    .await
                    .with_context(|| format!("creating tenant '{name}' in {}", dir.display()))
            })?;
            println!("租户已创建 / tenant created: {name} ({})", dir.display());
            println!("next: WAIHU_PASSWORD=... waihu --tenant {name} user add NAME --role admin");
            Ok(())
        }
        Cmd::List { json } => {
            for (name, dir) in ctx.tenants()? {
                if json {
                    print_json(&serde_json::json!({"tenant": name, "dir": dir}))?;
                } else {
                    println!("{name}\t{}", dir.display());
                }
            }
            Ok(())
        }
    }
}
