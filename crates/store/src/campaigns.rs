//! The campaign control plane. A campaign's row is its command channel: the
//! API (or CLI) moves its `state`, the runtime polls it and obeys. Every
//! change of state appends a `campaign_state` event in the same transaction.
//! The states and the moves allowed between them are [`CampaignState`]'s.
use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::{CampaignId, CampaignState, Event, EventKind};

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CampaignRow {
    pub id: CampaignId,
    pub name: String,
    /// The campaign file (YAML) as given.
    pub spec: String,
    pub state: CampaignState,
    pub created_at: DateTime<Utc>,
    /// Last change of state or spec, and who made it.
    pub updated_at: Option<DateTime<Utc>>,
    pub updated_by: Option<String>,
}

type Row = (
    i64,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

const SELECT: &str =
    "SELECT id, name, spec, state, created_at, updated_at, updated_by FROM campaigns";

fn decode(r: Row) -> Result<CampaignRow, StoreError> {
    let (id, name, spec, state, created, updated, updated_by) = r;
    let corrupt = |s: &str| StoreError::Corrupt {
        table: "campaigns",
        id,
        reason: format!("timestamp '{s}'"),
    };
    let state = state.parse().map_err(|e| StoreError::Corrupt {
        table: "campaigns",
        id,
        reason: format!("state: {e}"),
    })?;
    Ok(CampaignRow {
        id: CampaignId(id),
        name,
        spec,
        state,
        created_at: parse_ts(&created).ok_or_else(|| corrupt(&created))?,
        updated_at: updated
            .as_deref()
            .map(|u| parse_ts(u).ok_or_else(|| corrupt(u)))
            .transpose()?,
        updated_by,
    })
}

fn state_event(id: CampaignId, state: CampaignState, actor: &str, at: DateTime<Utc>) -> Event {
    Event {
        at,
        customer: None,
        campaign: Some(id),
        call: None,
        kind: EventKind::CampaignState {
            state: state.as_str().into(),
            actor: Some(actor.into()),
        },
    }
}

impl Store {
    /// Create a campaign in state `created` (logged at `now`). When one with
    /// this name exists already its id is returned; a different spec replaces
    /// the stored one (its state is kept), so re-running a setup is harmless.
    pub async fn campaign_create(
        &self,
        name: &str,
        spec_yaml: &str,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<CampaignId, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing: Option<(i64, String)> =
            sqlx::query_as("SELECT id, spec FROM campaigns WHERE name = ?")
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?;
        let id = match existing {
            Some((id, spec)) => {
                if spec != spec_yaml {
                    sqlx::query(
                        "UPDATE campaigns SET spec = ?, updated_at = ?, updated_by = ? WHERE id = ?",
                    )
                    .bind(spec_yaml)
                    .bind(ts(now))
                    .bind(actor)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                CampaignId(id)
            }
            None => {
                let id: i64 = sqlx::query_scalar(
                    "INSERT INTO campaigns (name, spec, state, created_at, updated_at, updated_by) \
                     VALUES (?, ?, 'created', ?, ?, ?) RETURNING id",
                )
                .bind(name)
                .bind(spec_yaml)
                .bind(ts(now))
                .bind(ts(now))
                .bind(actor)
                .fetch_one(&mut *tx)
                .await?;
                let id = CampaignId(id);
                insert_events(
                    &mut tx,
                    &self.audit,
                    &[state_event(id, CampaignState::Created, actor, now)],
                )
                .await?;
                id
            }
        };
        self.commit(tx).await?;
        Ok(id)
    }

    /// Move a campaign to `state` (logged at `now`). Setting the state it is
    /// already in changes nothing; a move [`CampaignState::next_states`] does
    /// not allow is refused with [`StoreError::Transition`].
    pub async fn campaign_set_state(
        &self,
        id: CampaignId,
        state: CampaignState,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let from: Option<String> = sqlx::query_scalar("SELECT state FROM campaigns WHERE id = ?")
            .bind(id.0)
            .fetch_optional(&mut *tx)
            .await?;
        let from = from.ok_or_else(|| {
            StoreError::Invalid(format!("no campaign with id {id}; create it first"))
        })?;
        let from: CampaignState = from.parse().map_err(|e| StoreError::Corrupt {
            table: "campaigns",
            id: id.0,
            reason: format!("state: {e}"),
        })?;
        if from == state {
            return Ok(());
        }
        if !from.can_become(state) {
            let allowed = from.next_states();
            return Err(StoreError::Transition {
                campaign: id.0,
                from: from.to_string(),
                to: state.to_string(),
                allowed: if allowed.is_empty() {
                    "nothing (it is final)".into()
                } else {
                    allowed
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
        }
        sqlx::query("UPDATE campaigns SET state = ?, updated_at = ?, updated_by = ? WHERE id = ?")
            .bind(state.as_str())
            .bind(ts(now))
            .bind(actor)
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        insert_events(&mut tx, &self.audit, &[state_event(id, state, actor, now)]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    pub async fn campaign_get(&self, id: CampaignId) -> Result<Option<CampaignRow>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(decode).transpose()
    }

    pub async fn campaign_by_name(&self, name: &str) -> Result<Option<CampaignRow>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(decode).transpose()
    }

    /// All campaigns, oldest first.
    pub async fn campaigns(&self) -> Result<Vec<CampaignRow>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(decode).collect()
    }
}
