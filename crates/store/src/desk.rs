//! The agent desk's channel between the dialing process and the API: the
//! running ACD's live snapshot, agent state changes asked for through the API,
//! and the event lookups the desk and its report read.
use chrono::{DateTime, Utc};
use waihu_core::{CallId, Event};

use crate::events::{decode, EventRow};
use crate::{parse_ts, ts, Store, StoreError};

/// Event types the desk report reads.
pub const DESK_EVENT_TYPES: [&str; 8] = [
    "transfer_requested",
    "transfer_offered",
    "transfer_answered",
    "transfer_abandoned",
    "agent_state",
    "disposition",
    "attempt_ended",
    "transfer_screen",
];

/// An agent state change asked for through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateRequest {
    pub id: i64,
    pub agent: String,
    /// `available` or `paused`.
    pub state: String,
    pub actor: String,
    pub at: DateTime<Utc>,
}

impl Store {
    /// Replace the live desk snapshot (a JSON document) written at `at`.
    pub async fn desk_publish(&self, at: DateTime<Utc>, body: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO desk_live (id, at, body) VALUES (1, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET at = excluded.at, body = excluded.body",
        )
        .bind(ts(at))
        .bind(body)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The last desk snapshot and when it was written (None: no dialer with
    /// agents has run on this store).
    pub async fn desk_live(&self) -> Result<Option<(DateTime<Utc>, String)>, StoreError> {
        let row: Option<(String, String)> =
            sqlx::query_as("SELECT at, body FROM desk_live WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        match row {
            None => Ok(None),
            Some((at, body)) => {
                let at = parse_ts(&at).ok_or_else(|| StoreError::Corrupt {
                    table: "desk_live",
                    id: 1,
                    reason: format!("at '{at}'"),
                })?;
                Ok(Some((at, body)))
            }
        }
    }

    /// Ask the running dialer to set `agent`'s state (`available` or `paused`).
    pub async fn agent_state_request(
        &self,
        agent: &str,
        state: &str,
        actor: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        if !matches!(state, "available" | "paused") {
            return Err(StoreError::Invalid(format!(
                "state: '{state}' is not available or paused"
            )));
        }
        Ok(sqlx::query_scalar(
            "INSERT INTO agent_state_requests (agent_id, state, actor, at) VALUES (?, ?, ?, ?) RETURNING id",
        )
        .bind(agent)
        .bind(state)
        .bind(actor)
        .bind(ts(at))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The newest state request's id (0: none): a starting dialer reads past it,
    /// so yesterday's requests do not replay.
    pub async fn agent_state_head(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM agent_state_requests")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// State requests after `after`, oldest first.
    pub async fn agent_state_requests(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<StateRequest>, StoreError> {
        let rows: Vec<(i64, String, String, String, String)> = sqlx::query_as(
            "SELECT id, agent_id, state, actor, at FROM agent_state_requests WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, agent, state, actor, at)| {
                Ok(StateRequest {
                    id,
                    agent,
                    state,
                    actor,
                    at: parse_ts(&at).ok_or_else(|| StoreError::Corrupt {
                        table: "agent_state_requests",
                        id,
                        reason: format!("at '{at}'"),
                    })?,
                })
            })
            .collect()
    }

    /// The call last offered to `agent` (its newest `transfer_offered`) and
    /// every event of that call, oldest first.
    pub async fn desk_offer(
        &self,
        agent: &str,
    ) -> Result<Option<(CallId, Vec<(i64, Event)>)>, StoreError> {
        let call: Option<Option<String>> = sqlx::query_scalar(
            "SELECT call_id FROM events WHERE type = 'transfer_offered' AND json_extract(body, '$.agent') = ? ORDER BY id DESC LIMIT 1",
        )
        .bind(agent)
        .fetch_optional(&self.pool)
        .await?;
        let Some(Some(call)) = call else {
            return Ok(None);
        };
        let events = self.call_events(&CallId(call.clone())).await?;
        Ok(Some((CallId(call), events)))
    }

    /// Every event of one call, oldest first.
    pub async fn call_events(&self, call: &CallId) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events WHERE call_id = ? ORDER BY id",
        )
        .bind(&call.0)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// The events the desk report reads ([`DESK_EVENT_TYPES`]) with `from <= at
    /// < to`, oldest first, at most `limit`.
    pub async fn desk_events(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events \
             WHERE type IN ('transfer_requested', 'transfer_offered', 'transfer_answered', 'transfer_abandoned', \
                            'agent_state', 'disposition', 'attempt_ended', 'transfer_screen') \
               AND at >= ? AND at < ? ORDER BY id LIMIT ?",
        )
        .bind(ts(from))
        .bind(ts(to))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| decode(r).map(|(_, e)| e))
            .collect()
    }
}
