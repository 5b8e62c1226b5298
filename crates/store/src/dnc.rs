//! Do-not-call entries, matched through the blind index.
use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::{Event, EventKind, PhoneIndex};

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DncEntry {
    /// E.164 in clear (mask before showing).
    pub phone: String,
    pub scope: String,
    pub reason: String,
    pub added_at: DateTime<Utc>,
}

impl Store {
    /// Add a normalised number to the list for `scope` (`global` or a campaign
    /// name). Returns false when it was already there. Logged as an event.
    pub async fn dnc_add(
        &self,
        e164: &str,
        scope: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let idx = self.vault.blind_index(e164);
        let ct = self
            .vault
            .seal("dnc", "phone", &format!("{idx}/{scope}"), e164);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let added = sqlx::query(
            "INSERT INTO dnc (phone_idx, scope, phone_ct, reason, added_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&idx)
        .bind(scope)
        .bind(ct)
        .bind(reason)
        .bind(ts(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if added {
            let customer: Option<i64> =
                sqlx::query_scalar("SELECT id FROM customers WHERE phone_idx = ?")
                    .bind(&idx)
                    .fetch_optional(&mut *tx)
                    .await?;
            let ev = Event {
                at: now,
                customer: customer.map(waihu_core::CustomerId),
                campaign: None,
                call: None,
                kind: EventKind::DncAdded {
                    phone: PhoneIndex(idx),
                    scope: scope.into(),
                    reason: reason.into(),
                },
            };
            insert_events(&mut tx, &self.audit, &[ev]).await?;
        }
        self.commit(tx).await?;
        Ok(added)
    }

    /// Remove a number from `scope`. Returns false when it was not there.
    pub async fn dnc_remove(
        &self,
        e164: &str,
        scope: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let idx = self.vault.blind_index(e164);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = sqlx::query("DELETE FROM dnc WHERE phone_idx = ? AND scope = ?")
            .bind(&idx)
            .bind(scope)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        if removed {
            let ev = Event {
                at: now,
                customer: None,
                campaign: None,
                call: None,
                kind: EventKind::DncRemoved {
                    phone: PhoneIndex(idx),
                    scope: scope.into(),
                },
            };
            insert_events(&mut tx, &self.audit, &[ev]).await?;
        }
        self.commit(tx).await?;
        Ok(removed)
    }

    /// Whether a number may not be called in `scope` (global entries apply everywhere).
    pub async fn dnc_contains(&self, e164: &str, scope: &str) -> Result<bool, StoreError> {
        let idx = self.vault.blind_index(e164);
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM dnc WHERE phone_idx = ? AND (scope = 'global' OR scope = ?)",
        )
        .bind(idx)
        .bind(scope)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// All entries (optionally of one scope), numbers opened.
    pub async fn dnc_list(&self, scope: Option<&str>) -> Result<Vec<DncEntry>, StoreError> {
        let rows: Vec<(String, String, Vec<u8>, String, String)> = sqlx::query_as(
            "SELECT phone_idx, scope, phone_ct, reason, added_at FROM dnc WHERE (? IS NULL OR scope = ?) ORDER BY added_at, phone_idx",
        )
        .bind(scope)
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(idx, scope, ct, reason, at)| {
                let phone = self
                    .vault
                    .open("dnc", "phone", &format!("{idx}/{scope}"), &ct)?;
                let added_at = parse_ts(&at).ok_or(StoreError::Corrupt {
                    table: "dnc",
                    id: 0,
                    reason: format!("added_at '{at}'"),
                })?;
                Ok(DncEntry {
                    phone,
                    scope,
                    reason,
                    added_at,
                })
            })
            .collect()
    }

    /// Do-not-call additions logged after event `after_id`, oldest first, at most
    /// `limit`: (event id, blind index, scope). A running campaign polls this to
    /// stop dialling a number listed while it runs. Reads the event log by id
    /// (new rows only), not the whole list.
    pub async fn dnc_added_since(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, PhoneIndex, String)>, StoreError> {
        // `+type`: walk the id range, not the index of every `dnc_added` ever logged.
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, body FROM events WHERE id > ? AND +type = 'dnc_added' ORDER BY id LIMIT ?",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, body)| match serde_json::from_str(&body) {
                Ok(EventKind::DncAdded { phone, scope, .. }) => Ok((id, phone, scope)),
                Ok(_) | Err(_) => Err(StoreError::Corrupt {
                    table: "events",
                    id,
                    reason: "dnc_added body".into(),
                }),
            })
            .collect()
    }

    /// Blind indexes on the list for `scope` (global included), for planners.
    pub async fn dnc_indexes(&self, scope: &str) -> Result<Vec<PhoneIndex>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT phone_idx FROM dnc WHERE scope = 'global' OR scope = ?",
        )
        .bind(scope)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(PhoneIndex).collect())
    }
}
