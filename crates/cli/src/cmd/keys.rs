//! `waihu keys ...`: the master key.
use std::path::PathBuf;

use anyhow::{bail, Context};
use waihu_privacy::{MasterKey, MASTER_KEY_ENV};
use waihu_store::{KEY_FILE, NEW_KEY_FILE};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 密钥轮换: move the database to a new random master key. Every customer data
    /// key and the vault root are re-wrapped in one transaction (nothing is
    /// re-encrypted); `master.key` is replaced. Stop every other waihu process on
    /// this data directory first: one still on the old key refuses new writes.
    Rotate {
        /// With WAIHU_MASTER_KEY set: the new file to write the new key into
        /// (mode 0600); put its contents into WAIHU_MASTER_KEY afterwards.
        #[arg(long, value_name = "FILE")]
        new_key_file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    let Cmd::Rotate { new_key_file, json } = cmd;
    let from_env = std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    let target = match (&new_key_file, from_env) {
        (Some(f), _) => f.clone(),
        (None, true) => bail!(
            "{MASTER_KEY_ENV} is set: give --new-key-file FILE for the new key, then set {MASTER_KEY_ENV} to it"
        ),
        (None, false) => ctx.data_dir().join(NEW_KEY_FILE),
    };
    let rt = ctx.runtime()?;
    rt.block_on(async {
        // Opening also finishes a rotation a crash interrupted.
        let store = ctx.store().await?;
        if target.exists() {
            bail!(
                "{} exists: another rotation is running, or left it behind. If every waihu command still opens this data directory with the current key, delete it and run again",
                target.display()
            );
        }
        let new = MasterKey::generate();
        new.write_new_file(&target)
            .with_context(|| format!("writing the new key to {}", target.display()))?;
        let r = match store
            .rotate_master_key(&new, &ctx.actor(), chrono::Utc::now())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // Nothing changed in the database: the new key is useless.
                let _ = std::fs::remove_file(&target);
                return Err(e.into());
            }
        };
        store.close().await;
        if new_key_file.is_none() {
            let key_path = ctx.data_dir().join(KEY_FILE);
            std::fs::rename(&target, &key_path)
                .with_context(|| format!("replacing {} (the database is on the new key in {}: rename it by hand)", key_path.display(), target.display()))?;
            if let Ok(d) = std::fs::File::open(ctx.data_dir()) {
                let _ = d.sync_all();
            }
        }
        if json {
            return print_json(&r);
        }
        println!(
            "master key rotated: {} → {}; {} customer data keys and the vault root re-wrapped, nothing re-encrypted",
            r.old_check, r.new_check, r.data_keys
        );
        match new_key_file {
            Some(f) => println!(
                "the new key is in {} — set {MASTER_KEY_ENV} to its contents before the next command, and back it up",
                f.display()
            ),
            None => println!(
                "{} now holds the new key: back it up; the old key no longer opens this database",
                ctx.data_dir().join(KEY_FILE).display()
            ),
        }
        Ok(())
    })
}
