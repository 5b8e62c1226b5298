//! API keys for the HTTP API. Only a SHA-256 digest of each key is stored
//! (the caller hashes); the key itself is shown once when created.
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::{parse_ts, ts, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// `admin`, `supervisor`, `operator`, `analyst` or `agent`.
    pub role: String,
    /// The agent an `agent` key acts as (an id of the agents file).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

type KeyRow = (i64, String, String, String, Option<String>, Option<String>);

fn key_row((id, name, role, created, revoked, agent_id): KeyRow) -> Result<ApiKey, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt {
        table: "api_keys",
        id,
        reason: what.to_string(),
    };
    Ok(ApiKey {
        id,
        name,
        role,
        agent_id,
        created_at: parse_ts(&created).ok_or_else(|| corrupt("created_at"))?,
        revoked_at: match revoked {
            Some(r) => Some(parse_ts(&r).ok_or_else(|| corrupt("revoked_at"))?),
            None => None,
        },
    })
}

impl Store {
    /// Store a new key by its SHA-256 digest (hex). The role is checked by the
    /// database (`admin`, `operator`, `analyst`).
    pub async fn api_key_insert(
        &self,
        name: &str,
        role: &str,
        key_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, StoreError> {
        self.api_key_insert_for(name, role, None, key_sha256, now)
            .await
    }

    /// [`Store::api_key_insert`] with the agent an `agent` key acts as (required
    /// for that role, refused for the others by the database).
    pub async fn api_key_insert_for(
        &self,
        name: &str,
        role: &str,
        agent_id: Option<&str>,
        key_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<ApiKey, StoreError> {
        let id: i64 = sqlx::query_scalar("INSERT INTO api_keys (name, role, agent_id, key_sha256, created_at) VALUES (?, ?, ?, ?, ?) RETURNING id")
            .bind(name)
            .bind(role)
            .bind(agent_id)
            .bind(key_sha256)
            .bind(ts(now))
            .fetch_one(&self.pool)
            .await?;
        Ok(ApiKey {
            id,
            name: name.into(),
            role: role.into(),
            agent_id: agent_id.map(String::from),
            created_at: now,
            revoked_at: None,
        })
    }

    /// The unrevoked key with this digest.
    pub async fn api_key_by_hash(&self, key_sha256: &str) -> Result<Option<ApiKey>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(
            "SELECT id, name, role, created_at, revoked_at, agent_id FROM api_keys WHERE key_sha256 = ? AND revoked_at IS NULL",
        )
        .bind(key_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(key_row).transpose()
    }

    pub async fn api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, name, role, created_at, revoked_at, agent_id FROM api_keys ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(key_row).collect()
    }

    /// Revoke a key. False when there is no such unrevoked key.
    pub async fn api_key_revoke(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n =
            sqlx::query("UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(ts(now))
                .bind(id)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n == 1)
    }
}
