//! What every command needs: where the data lives, and how to open it.
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct Ctx {
    data_dir: PathBuf,
}

impl Ctx {
    pub fn new(data_dir: Option<PathBuf>) -> Self {
        let data_dir = data_dir.unwrap_or_else(default_data_dir);
        Ctx { data_dir }
    }

    /// The data directory (database, key file, models, recordings). Not created here.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A tokio runtime for one command. Commands are short-lived; the
    /// long-running runtime for calls lives in `waihu-engine`.
    pub fn runtime(&self) -> anyhow::Result<tokio::runtime::Runtime> {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")
    }

    /// Open the store of the data directory (creating it on first use).
    pub async fn store(&self) -> anyhow::Result<waihu_store::Store> {
        waihu_store::Store::open(&self.data_dir)
            .await
            .with_context(|| format!("opening the data directory {}", self.data_dir.display()))
    }

    /// Who is acting, for the audit trail.
    pub fn actor(&self) -> String {
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        format!("cli:{user}")
    }
}

/// `$XDG_DATA_HOME/waihu`, else `$HOME/.local/share/waihu`, else `./.waihu-data`.
fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("waihu");
    }
    if let Some(h) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(h).join(".local/share/waihu");
    }
    PathBuf::from(".waihu-data")
}

/// Print one JSON object per line.
pub fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}
