//! The append-only event log.
use sqlx::{QueryBuilder, Sqlite};
use waihu_core::{CallId, CampaignId, CustomerId, Event, EventKind};

use crate::{parse_ts, ts, Store, StoreError};

/// Rows per multi-row INSERT (7 bind parameters each, far below SQLite's limit).
const EVENT_BATCH: usize = 1000;

pub(crate) async fn insert_events(
    conn: &mut sqlx::SqliteConnection,
    events: &[Event],
) -> Result<(), StoreError> {
    for chunk in events.chunks(EVENT_BATCH) {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (at, type, customer_id, campaign_id, call_id, body) ",
        );
        qb.push_values(chunk, |mut b, e| {
            b.push_bind(ts(e.at))
                .push_bind(e.kind.type_name())
                .push_bind(e.customer.map(|c| c.0))
                .push_bind(e.campaign.map(|c| c.0))
                .push_bind(e.call.as_ref().map(|c| c.0.clone()))
                .push_bind(serde_json::to_string(&e.kind).expect("event kinds serialise"));
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

type EventRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
);

fn decode(row: EventRow) -> Result<(i64, Event), StoreError> {
    let (id, at, customer, campaign, call, body) = row;
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "events",
        id,
        reason,
    };
    let at = parse_ts(&at).ok_or_else(|| corrupt(format!("bad timestamp '{at}'")))?;
    let kind: EventKind = serde_json::from_str(&body).map_err(|e| corrupt(e.to_string()))?;
    Ok((
        id,
        Event {
            at,
            customer: customer.map(CustomerId),
            campaign: campaign.map(CampaignId),
            call: call.map(CallId),
            kind,
        },
    ))
}

impl Store {
    /// Append one event; returns its id (ids increase with insertion order).
    pub async fn append_event(&self, event: &Event) -> Result<i64, StoreError> {
        let id = sqlx::query_scalar(
            "INSERT INTO events (at, type, customer_id, campaign_id, call_id, body) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(ts(event.at))
        .bind(event.kind.type_name())
        .bind(event.customer.map(|c| c.0))
        .bind(event.campaign.map(|c| c.0))
        .bind(event.call.as_ref().map(|c| c.as_str()))
        .bind(serde_json::to_string(&event.kind).expect("event kinds serialise"))
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Append several events atomically.
    pub async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_events(&mut tx, events).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events with id greater than `after_id`, oldest first, at most `limit`.
    pub async fn events(&self, after_id: i64, limit: i64) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Events of one type (e.g. `pii_revealed`), oldest first, after `after_id`.
    pub async fn events_of_type(
        &self,
        type_name: &str,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events WHERE type = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(type_name)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// Number of events per type.
    pub async fn event_counts(&self) -> Result<Vec<(String, i64)>, StoreError> {
        Ok(
            sqlx::query_as("SELECT type, COUNT(*) FROM events GROUP BY type ORDER BY type")
                .fetch_all(&self.pool)
                .await?,
        )
    }
}
