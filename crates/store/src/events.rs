//! The append-only event log.
use sqlx::{QueryBuilder, Sqlite};
use waihu_core::{CallId, CampaignId, CustomerId, Event, EventKind};

use crate::audit::{chain_events, finish_chain, Audit};
use crate::{parse_ts, ts, Store, StoreError};

/// Rows per multi-row INSERT (10 bind parameters each, far below SQLite's limit).
const EVENT_BATCH: usize = 1000;

/// Append `events` inside the caller's transaction, chained after the audit head
/// (`waihu-audit`): each row gets its position, its predecessor's hash and its own,
/// the head moves, and a checkpoint is signed when due. The caller commits with
/// [`Store::commit`], which mirrors new checkpoints to the checkpoint file.
pub(crate) async fn insert_events(
    conn: &mut sqlx::SqliteConnection,
    audit: &Audit,
    events: &[Event],
) -> Result<(), StoreError> {
    let Some(last) = events.last() else {
        return Ok(());
    };
    let chained = chain_events(conn, events).await?;
    let mut last_id = 0;
    for (chunk, links) in events
        .chunks(EVENT_BATCH)
        .zip(chained.rows.chunks(EVENT_BATCH))
    {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "INSERT INTO events (seq, prev_hash, hash, at, type, customer_id, campaign_id, call_id, body) ",
        );
        qb.push_values(chunk.iter().zip(links), |mut b, (e, (link, body))| {
            b.push_bind(link.seq)
                .push_bind(link.prev_hash.to_vec())
                .push_bind(link.hash.to_vec())
                .push_bind(ts(e.at))
                .push_bind(e.kind.type_name())
                .push_bind(e.customer.map(|c| c.0))
                .push_bind(e.campaign.map(|c| c.0))
                .push_bind(e.call.as_ref().map(|c| c.0.clone()))
                .push_bind(body.clone());
        });
        last_id = qb.build().execute(&mut *conn).await?.last_insert_rowid();
    }
    finish_chain(conn, audit, chained, last_id, last.at).await
}

/// An `events` row as the readers select it: id, at, customer, campaign, call, body.
pub(crate) type EventRow = (
    i64,
    String,
    Option<i64>,
    Option<i64>,
    Option<String>,
    String,
);

pub(crate) fn decode(row: EventRow) -> Result<(i64, Event), StoreError> {
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_events(&mut tx, &self.audit, std::slice::from_ref(event)).await?;
        let id = sqlx::query_scalar("SELECT event_id FROM audit_head WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(id)
    }

    /// Append several events atomically.
    pub async fn append_events(&self, events: &[Event]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_events(&mut tx, &self.audit, events).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Benchmark baseline only (`waihu bench audit`): the same INSERT into the same
    /// table, indexes and triggers, with constant chain fields instead of the chain.
    /// The rows it writes fail `audit_verify`, as they should.
    #[doc(hidden)]
    pub async fn append_events_unchained_for_bench(
        &self,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for chunk in events.chunks(EVENT_BATCH) {
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO events (seq, prev_hash, hash, at, type, customer_id, campaign_id, call_id, body) ",
            );
            qb.push_values(chunk, |mut b, e| {
                b.push_bind(0i64)
                    .push_bind(vec![0u8; 32])
                    .push_bind(vec![0u8; 32])
                    .push_bind(ts(e.at))
                    .push_bind(e.kind.type_name())
                    .push_bind(e.customer.map(|c| c.0))
                    .push_bind(e.campaign.map(|c| c.0))
                    .push_bind(e.call.as_ref().map(|c| c.0.clone()))
                    .push_bind(serde_json::to_string(&e.kind).expect("event kinds serialise"));
            });
            qb.build().execute(&mut *tx).await?;
        }
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

    /// The id of the newest event of one type (0: none): where a reader that
    /// must not replay the past starts.
    pub async fn event_type_head(&self, type_name: &str) -> Result<i64, StoreError> {
        let (id,): (i64,) =
            sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM events WHERE type = ?")
                .bind(type_name)
                .fetch_one(&self.pool)
                .await?;
        Ok(id)
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
