//! Master-key rotation: every customer data key and the vault root are
//! re-wrapped under the new master key in one transaction; no sealed value is
//! re-encrypted, the blind index and the audit signing key stay the same.
//!
//! The key file changes in three steps, each safe to crash after: the new key
//! is written to `master.key.new`; the database is re-wrapped (one commit);
//! `master.key.new` is renamed over `master.key`. A store opened with the old
//! key after a crash between the last two finds the database on the new key,
//! and the new file beside it, and finishes the rename
//! ([`finish_interrupted_rotation`]).
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::{Event, EventKind};
use waihu_privacy::{MasterKey, Vault};

use crate::events::insert_events;
use crate::{ts, Store, StoreError, KEY_FILE};

/// Where `waihu keys rotate` writes the new key before the database moves to it.
pub const NEW_KEY_FILE: &str = "master.key.new";

/// Rows re-wrapped per statement batch.
const REWRAP_BATCH: i64 = 5000;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RotationReport {
    /// Customer data keys re-wrapped.
    pub data_keys: u64,
    pub old_check: String,
    pub new_check: String,
}

impl Store {
    /// Refuse to wrap new data keys under a master key the database has left
    /// (another process rotated it): they would open for nobody.
    pub(crate) async fn ensure_current_key(
        &self,
        conn: &mut sqlx::SqliteConnection,
    ) -> Result<(), StoreError> {
        let stored: Option<String> =
            sqlx::query_scalar("SELECT value FROM meta WHERE key = 'key_check'")
                .fetch_optional(&mut *conn)
                .await?;
        match stored {
            Some(s) if s != self.vault.key_check() => Err(StoreError::Invalid(format!(
                "the master key of {} was rotated (now {s}) while this process ran with {}; restart it with the new key",
                self.data_dir.display(),
                self.vault.key_check()
            ))),
            _ => Ok(()),
        }
    }

    /// Re-wrap every data key and the vault root under `new`, and make `new`
    /// the key the database checks for. This handle keeps working for reads;
    /// new writes that need a key are refused until the store is reopened.
    pub async fn rotate_master_key(
        &self,
        new: &MasterKey,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<RotationReport, StoreError> {
        let to = Vault::with_root(new, &self.root);
        if to.key_check() == self.vault.key_check() {
            return Err(StoreError::Invalid(
                "the new master key is the current one".into(),
            ));
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        self.ensure_current_key(&mut tx).await?;
        let mut after = i64::MIN;
        let mut n = 0u64;
        loop {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT customer_id, wrapped FROM customer_keys WHERE customer_id > ? ORDER BY customer_id LIMIT ?",
            )
            .bind(after)
            .bind(REWRAP_BATCH)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for (id, wrapped) in rows {
                let re =
                    self.vault
                        .rewrap_data_key(&to, &wrapped)
                        .map_err(|e| StoreError::Corrupt {
                            table: "customer_keys",
                            id,
                            reason: e.to_string(),
                        })?;
                sqlx::query("UPDATE customer_keys SET wrapped = ? WHERE customer_id = ?")
                    .bind(re)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                n += 1;
            }
        }
        sqlx::query("UPDATE keyring SET wrapped = ?, rotated_at = ? WHERE name = 'root'")
            .bind(new.wrap_root(&self.root))
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE meta SET value = ? WHERE key = 'key_check'")
            .bind(to.key_check())
            .execute(&mut *tx)
            .await?;
        let report = RotationReport {
            data_keys: n,
            old_check: self.vault.key_check().to_string(),
            new_check: to.key_check().to_string(),
        };
        insert_events(
            &mut tx,
            &self.audit,
            &[Event {
                at: now,
                customer: None,
                campaign: None,
                call: None,
                kind: EventKind::MasterKeyRotated {
                    actor: actor.into(),
                    data_keys: n,
                    old_check: report.old_check.clone(),
                    new_check: report.new_check.clone(),
                },
            }],
        )
        .await?;
        self.commit(tx).await?;
        // The old wrapped forms must not linger in the log.
        self.truncate_wal().await;
        Ok(report)
    }
}

/// The database is on another key than `master.key`: if `master.key.new` holds
/// that key, a rotation committed but did not get to rename the file. Finish it.
pub(crate) async fn finish_interrupted_rotation(
    data_dir: &Path,
    key_path: &Path,
) -> Result<Store, StoreError> {
    let new_path = data_dir.join(NEW_KEY_FILE);
    let old = MasterKey::load_or_create(key_path)?.0;
    let retry = || Store::open_with_key(data_dir, &old);
    if !new_path.exists() {
        return retry().await;
    }
    let text = std::fs::read_to_string(&new_path).map_err(|e| StoreError::File {
        path: new_path.display().to_string(),
        source: e,
    })?;
    let new = MasterKey::from_hex(&text)?;
    let store = Store::open_with_key(data_dir, &new).await?;
    std::fs::rename(&new_path, data_dir.join(KEY_FILE)).map_err(|e| StoreError::File {
        path: new_path.display().to_string(),
        source: e,
    })?;
    tracing::warn!(
        "finished an interrupted master-key rotation: {} replaced {}",
        NEW_KEY_FILE,
        KEY_FILE
    );
    Ok(store)
}
