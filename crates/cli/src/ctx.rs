//! What every command needs: where the data lives, and how to open it.
use std::path::{Path, PathBuf};

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
