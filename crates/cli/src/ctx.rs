//! What every command needs: where the data lives, and how to open it.
use std::path::{Path, PathBuf};

use anyhow::Context;

pub struct Ctx {
    /// The installation's directory: models, the number-range table, TLS, caches,
    /// and the default tenant's store.
    home: PathBuf,
    /// The tenant's directory (its database, key file, scripts, recordings,
    /// trunks): `home` itself, or `home/tenants/NAME` with `--tenant NAME`.
    data_dir: PathBuf,
}

/// Where tenants' data directories live under the installation's.
pub const TENANTS_DIR: &str = "tenants";

impl Ctx {
    pub fn new(data_dir: Option<PathBuf>, tenant: Option<String>) -> anyhow::Result<Self> {
        let home = data_dir.unwrap_or_else(default_data_dir);
        let data_dir = match tenant.as_deref() {
            None | Some(waihu_server::tenancy::DEFAULT) => home.clone(),
            Some(t) => {
                waihu_server::tenancy::check_name(t)
                    .map_err(|e| anyhow::anyhow!("--tenant: {e}"))?;
                home.join(TENANTS_DIR).join(t)
            }
        };
        Ok(Ctx { home, data_dir })
    }

    /// The tenant's data directory (database, key file, scripts, recordings,
    /// trunks). Not created here.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The installation's directory, shared by every tenant: models, the
    /// number-range table, the TLS certificate, caches.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Every tenant of the installation with a store: `default` (the
    /// installation's own directory) and each `tenants/NAME` holding a database.
    pub fn tenants(&self) -> anyhow::Result<Vec<(String, PathBuf)>> {
        let mut out = vec![(
            waihu_server::tenancy::DEFAULT.to_string(),
            self.home.clone(),
        )];
        let dir = self.home.join(TENANTS_DIR);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
        };
        let mut named = Vec::new();
        for e in rd {
            let e = e.with_context(|| format!("reading {}", dir.display()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if waihu_server::tenancy::check_name(&name).is_ok()
                && name != waihu_server::tenancy::DEFAULT
                && e.path().join(waihu_store::DB_FILE).exists()
            {
                named.push((name, e.path()));
            }
        }
        named.sort();
        out.extend(named);
        Ok(out)
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
            .map(|s| s.with_home(&self.home))
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
