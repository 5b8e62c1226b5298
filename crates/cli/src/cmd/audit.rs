//! `waihu audit ...`: verify the tamper-evident event log, sign its head, show the key.
use std::path::PathBuf;

use anyhow::bail;

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 校验审计链: walk the whole event log and check every row's hash and every signed
    /// checkpoint (database table, the data directory's checkpoint file, and any copies
    /// given). Exit 0 when intact; otherwise non-zero, naming the first bad row.
    Verify {
        /// Hex Ed25519 public key the checkpoints must be signed with (default: the key
        /// derived from this data directory's master key). Pin it from `waihu audit key`.
        #[arg(long, value_name = "HEX")]
        public_key: Option<String>,
        /// Another copy of the checkpoint file (e.g. shipped off the machine); repeatable.
        #[arg(long = "checkpoints", value_name = "FILE")]
        checkpoints: Vec<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// 签名检查点: sign the chain head now if it moved since the last checkpoint.
    Checkpoint {
        #[arg(long)]
        json: bool,
    },
    /// 公钥: the public key that signs checkpoints, and where the checkpoint file is.
    Key {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    ctx.runtime()?.block_on(async {
        let store = ctx.store().await?;
        let result = match cmd {
            Cmd::Verify {
                public_key,
                checkpoints,
                json,
            } => verify(&store, public_key.as_deref(), &checkpoints, json).await,
            Cmd::Checkpoint { json } => {
                let cp = store.audit_checkpoint(chrono::Utc::now()).await?;
                match (json, cp) {
                    (true, cp) => print_json(&serde_json::json!({ "checkpoint": cp })),
                    (false, Some(cp)) => {
                        println!(
                            "已签名 signed: position {} (row {}), head {}",
                            cp.seq, cp.event_id, cp.head
                        );
                        Ok(())
                    }
                    (false, None) => {
                        println!("无新事件 nothing new: the head is already signed");
                        Ok(())
                    }
                }
            }
            Cmd::Key { json } => {
                let key = store.audit_public_key();
                let file = store.audit_checkpoint_file().display().to_string();
                if json {
                    print_json(&serde_json::json!({ "public_key": key, "checkpoint_file": file }))
                } else {
                    println!("公钥 public key:      {key}");
                    println!("检查点文件 checkpoints: {file}");
                    Ok(())
                }
            }
        };
        store.close().await;
        result
    })
}

async fn verify(
    store: &waihu_store::Store,
    public_key: Option<&str>,
    files: &[PathBuf],
    json: bool,
) -> anyhow::Result<()> {
    let v = store.audit_verify(public_key, files).await?;
    let r = &v.report;
    if json {
        print_json(&v)?;
    } else {
        let head = r.head_id.map_or("-".into(), |i| i.to_string());
        println!(
            "rows {}, verified up to position {} (row {head}), head {}",
            r.rows, r.head_seq, r.head_hash
        );
        println!(
            "checkpoints: {} valid, {} matched, last at position {}; {} row(s) after it are protected by the chain alone",
            r.checkpoints,
            r.checkpoints_matched,
            r.last_checkpoint_seq.map_or("-".into(), |s| s.to_string()),
            r.unsigned_rows
        );
        if v.checkpoints_in_db.is_none() {
            println!("warning: the audit_checkpoints table cannot be read (dropped?)");
        }
        println!(
            "public key {}; files: {}",
            v.public_key,
            if v.checkpoint_files.is_empty() {
                "none".into()
            } else {
                v.checkpoint_files.join(", ")
            }
        );
        if r.ok {
            println!("审计链完好 audit chain intact");
        }
    }
    if let Some(f) = &r.finding {
        let id = f.id.map_or("?".into(), |i| i.to_string());
        bail!(
            "审计链被破坏 audit chain broken: row {id}: {}: {}",
            f.problem.label(),
            f.detail
        );
    }
    Ok(())
}
