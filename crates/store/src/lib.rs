//! waihu's persistence.
//!
//! One [`Store`] per data directory: an SQLite database in WAL mode
//! (`waihu.db`), schema managed by migrations, personal data sealed by a
//! [`Vault`] before it is written. All SQL lives in this crate; callers see
//! only `Store` methods and plain types, so a PostgreSQL backend can be added
//! behind the same methods without touching them.
//!
//! Architecture invariant: the only crate that talks to the database. It
//! never stores a phone number or name in clear, and the `events` table is
//! append-only (enforced by triggers, not just by convention) and hash-chained
//! (`waihu-audit`): every row is appended through the chain, in the transaction
//! that makes the change it records.

mod api_keys;
mod audit;
mod calls;
mod campaigns;
mod customers;
mod desk;
mod dnc;
mod events;
mod experiments;
mod keys;
mod messages;
mod reports;
mod rights;
mod users;
mod voiceprints;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use waihu_privacy::{KeySource, MasterKey, Vault};

pub use api_keys::ApiKey;
pub use audit::{AuditVerification, AUDIT_DIR, CHECKPOINT_FILE};
pub use calls::{
    CallDetail, CallFinish, CallQuality, CallStart, CallSummary, FunnelRow, PastAttemptRow,
    TurnRecord, VoiceRow, DROP_OUTCOMES, RECORDINGS_DIR, SENTIMENT_BAND,
};
pub use campaigns::CampaignRow;
pub use customers::{
    seal_batch, Customer, ImportId, ImportStats, Importer, SealedBatch, SegmentDef, UpsertStats,
};
pub use desk::{StateRequest, DESK_EVENT_TYPES};
pub use dnc::DncEntry;
pub use experiments::{ArmChoice, ArmCounts};
pub use keys::{RotationReport, NEW_KEY_FILE};
pub use messages::{
    is_opt_out, Attribution, MessageReport, MessageReportRow, MessageRow, NewMessage, OutMessage,
    ReplyOutcome, ReplyReportRow, OPT_OUT_WORDS,
};
pub use reports::{metric, Delivery, KpiRow, LocalHourRow, Webhook};
pub use rights::{
    CustomerExport, ErasureReport, ExportedCall, ExportedEvent, ExportedMessage, ExportedTurn,
    RetentionReport, ERASED_TEXT, EXPIRED_TEXT,
};
pub use users::{check_user_name, Session, User, UserAuth, USER_NAME_MAX};
pub use voiceprints::WatchEntry;
// The call vocabulary is core's; re-exported under the names callers used.
pub use waihu_core::{CallId, CampaignState, Speaker, Turn, VoiceFeatures};

pub const DB_FILE: &str = "waihu.db";
pub const KEY_FILE: &str = "master.key";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}{hint}", hint = db_hint(source))]
    Open { path: String, source: sqlx::Error },
    #[error("migrating database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database: {0}{hint}", hint = db_hint(.0))]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Privacy(#[from] waihu_privacy::PrivacyError),
    #[error("the master key does not match this database ({db}): it was created with key {stored}, this key is {given}. Set WAIHU_MASTER_KEY or restore {key_file}")]
    WrongKey {
        db: String,
        stored: String,
        given: String,
        key_file: String,
    },
    #[error("corrupt row in {table} (id {id}): {reason}")]
    Corrupt {
        table: &'static str,
        id: i64,
        reason: String,
    },
    /// A request the store refuses as given (unknown call, bad status).
    #[error("{0}")]
    Invalid(String),
    #[error("campaign {campaign} is {from} and cannot become {to}; from {from} it can become: {allowed}")]
    Transition {
        campaign: i64,
        from: String,
        to: String,
        allowed: String,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

/// What an operator needs to know about a database error beyond SQLite's words: the
/// faults that come from outside (another process, the disk) and that clear by themselves.
pub fn db_hint(e: &sqlx::Error) -> &'static str {
    let code = match e {
        sqlx::Error::Database(d) => d.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    // Extended result codes carry the primary code in their low byte.
    match code.map(|c| c & 0xff) {
        Some(5) | Some(6) => {
            " (the database is locked by another process: waited 10 s for it. What was committed \
             before is kept; run the command again once the other process has finished)"
        }
        Some(13) => {
            " (the disk holding the data directory is full. What was committed before is kept; \
             free space and run the command again)"
        }
        Some(10) => " (a disk I/O error: check the disk holding the data directory)",
        Some(11) | Some(26) => {
            " (the database file is damaged or is not a waihu database: restore it from a backup)"
        }
        Some(14) => {
            " (cannot open the database file: check the data directory exists and is writable)"
        }
        _ => "",
    }
}

/// A handle to one data directory's database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    vault: Vault,
    /// The vault's root key (see `keyring` in migration 0017), for rotation.
    root: std::sync::Arc<MasterKey>,
    audit: std::sync::Arc<audit::Audit>,
    data_dir: PathBuf,
    /// The installation's directory when this store is a tenant's (see [`Store::home`]).
    home: PathBuf,
}

/// Compare the database's key check with `key`'s; record it on first open.
/// True when the database is new (this is its first open).
async fn check_key(
    pool: &SqlitePool,
    key: &MasterKey,
    db_path: &Path,
    data_dir: &Path,
) -> Result<bool, StoreError> {
    let given = key.check();
    let stored: Option<String> =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
            .fetch_optional(pool)
            .await?;
    match stored {
        Some(s) if s == given => Ok(false),
        Some(stored) => Err(StoreError::WrongKey {
            db: db_path.display().to_string(),
            stored,
            given,
            key_file: data_dir.join(KEY_FILE).display().to_string(),
        }),
        None => {
            sqlx::query("INSERT INTO meta (key, value) VALUES ('key_check', ?)")
                .bind(&given)
                .execute(pool)
                .await?;
            Ok(true)
        }
    }
}

/// The vault root from the keyring; made on first use: random for a new
/// database, the master key itself for one from before the keyring (what its
/// values are sealed under).
async fn load_root(
    pool: &SqlitePool,
    key: &MasterKey,
    fresh: bool,
) -> Result<MasterKey, StoreError> {
    let wrapped: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT wrapped FROM keyring WHERE name = 'root'")
            .fetch_optional(pool)
            .await?;
    if let Some(w) = wrapped {
        return Ok(key.unwrap_root(&w)?);
    }
    let root = if fresh {
        MasterKey::generate()
    } else {
        key.clone()
    };
    sqlx::query(
        "INSERT INTO keyring (name, wrapped) VALUES ('root', ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(key.wrap_root(&root))
    .execute(pool)
    .await?;
    // Another process may have made it first.
    let w: Vec<u8> = sqlx::query_scalar("SELECT wrapped FROM keyring WHERE name = 'root'")
        .fetch_one(pool)
        .await?;
    Ok(key.unwrap_root(&w)?)
}

/// Fixed-width RFC 3339 UTC, so text order is time order.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub(crate) fn parse_ts(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

impl Store {
    /// Open (creating on first use) the database and key of `data_dir`.
    /// The master key comes from `WAIHU_MASTER_KEY` or `data_dir/master.key`.
    pub async fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let key_path = data_dir.join(KEY_FILE);
        let db_path = data_dir.join(DB_FILE);
        let db_exists = db_path.exists();
        if db_exists
            && !key_path.exists()
            && std::env::var_os(waihu_privacy::MASTER_KEY_ENV).is_none()
        {
            // Never mint a fresh key for an existing database: everything in it
            // would be unreadable. Say so instead.
            return Err(StoreError::Privacy(waihu_privacy::PrivacyError::KeyFile {
                path: key_path.display().to_string(),
                reason: "missing, but the database already exists; restore the key file or set WAIHU_MASTER_KEY".into(),
            }));
        }
        let (key, source) = MasterKey::load_or_create(&key_path)?;
        if let KeySource::File {
            created: true,
            path,
        } = &source
        {
            tracing::info!(%path, "created a new master key (mode 0600); back it up");
        }
        match Store::open_with_key(data_dir, &key).await {
            Err(StoreError::WrongKey { .. }) if source != KeySource::Env => {
                keys::finish_interrupted_rotation(data_dir, &key_path).await
            }
            r => r,
        }
    }

    /// Open with an explicit master key (tests, key rotation tools).
    pub async fn open_with_key(data_dir: &Path, key: &MasterKey) -> Result<Store, StoreError> {
        let db_path = data_dir.join(DB_FILE);
        let opts = SqliteConnectOptions::from_str("sqlite://")
            .map_err(|source| StoreError::Open {
                path: db_path.display().to_string(),
                source,
            })?
            .filename(&db_path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            // 256 MiB page cache (an upper bound, allocated as used): the phone-index B-tree takes
            // random inserts, which crawl with SQLite's 2 MiB default.
            .pragma("cache_size", "-262144")
            .pragma("temp_store", "memory")
            // Deleted content is overwritten with zeros, not left in free pages: an
            // erased customer's row and destroyed data key must not be recoverable
            // from the file (`rights.rs`).
            .pragma("secure_delete", "on")
            // Checkpoint every 64 MiB of WAL instead of every 4 MiB: a bulk
            // import otherwise checkpoints (and fsyncs) on every batch.
            .pragma("wal_autocheckpoint", "16384")
            .foreign_keys(true);
        // Every write transaction in this crate is `BEGIN IMMEDIATE`: a deferred one
        // that reads before it writes fails at once with SQLITE_BUSY_SNAPSHOT when
        // another connection committed meanwhile (busy_timeout cannot retry that),
        // which concurrent live calls hit.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .map_err(|source| StoreError::Open {
                path: db_path.display().to_string(),
                source,
            })?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        let fresh = check_key(&pool, key, &db_path, data_dir).await?;
        let root = load_root(&pool, key, fresh).await?;
        let vault = Vault::with_root(key, &root);
        let audit = audit::Audit::new(&root.audit_signing_seed(), data_dir);
        let store = Store {
            pool,
            vault,
            root: std::sync::Arc::new(root),
            audit: std::sync::Arc::new(audit),
            data_dir: data_dir.to_path_buf(),
            home: data_dir.to_path_buf(),
        };
        // Databases from before the audit chain: chain their rows once (and mirror any
        // checkpoint an earlier process committed but did not write to the file).
        match store.chain_legacy_events().await {
            Ok(_) => {}
            // A head row someone removed or mangled must not stop `audit verify` from
            // opening the store; appends fail on it until it is repaired.
            Err(e) if audit::head_unusable(&e) => {
                tracing::error!(error = %e, "the audit chain head is unreadable; run `waihu audit verify`");
            }
            Err(e) => return Err(e),
        }
        store.sync_checkpoint_file().await;
        Ok(store)
    }

    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// This store's directory: its database, key file, scripts, recordings, rejects.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The installation's directory, shared by every tenant: the number-range
    /// table, models. The data directory itself unless [`Store::with_home`] said otherwise.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A tenant's store (`DIR/tenants/NAME`) shares the installation's `home`.
    pub fn with_home(mut self, home: &Path) -> Store {
        self.home = home.to_path_buf();
        self
    }

    /// Wait for writes to reach the database file and close connections.
    pub async fn close(self) {
        self.pool.close().await;
    }
}

#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod rights_tests;
#[cfg(test)]
mod tests;
