//! Report queries for the API and dashboard: KPI rollups (kept by triggers in
//! `0002_api.sql`), the same figures computed straight from the event log (the
//! benchmark baseline and a cross-check), paged event reads, webhooks.
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite};
use waihu_core::{CampaignId, CustomerId, Event};

use crate::events::{decode, insert_events, EventRow};
use crate::{parse_ts, ts, Store, StoreError};

// The rollup's row types and metric names belong to the KPI definitions.
pub use waihu_core::kpi::{metric, KpiRow, LocalHourRow};

/// A configured webhook (secret opened).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub id: i64,
    pub url: String,
    #[serde(skip)]
    pub secret: String,
    /// Event types delivered; empty means all.
    pub event_types: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub active: bool,
    /// Last event id handed over (delivered or given up on).
    pub cursor: i64,
}

impl Webhook {
    pub fn wants(&self, type_name: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == type_name)
    }
}

/// One POST (with its retries) of a batch of events to a webhook.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    pub webhook_id: i64,
    pub first_event: i64,
    pub last_event: i64,
    pub events: i64,
    pub tries: i64,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub delivered: bool,
    pub at: DateTime<Utc>,
}

fn hour_key(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H").to_string()
}

fn day(s: &str, table: &'static str) -> Result<NaiveDate, StoreError> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| StoreError::Corrupt {
        table,
        id: 0,
        reason: format!("day '{s}'"),
    })
}

type RawKpi = (String, String, String, i64, f64);

fn kpi_rows(rows: Vec<RawKpi>, table: &'static str) -> Result<Vec<KpiRow>, StoreError> {
    rows.into_iter()
        .map(|(d, metric, key, n, sum)| {
            Ok(KpiRow {
                day: day(&d, table)?,
                metric,
                key,
                n,
                sum,
            })
        })
        .collect()
}

impl Store {
    /// KPI aggregates per UTC day for events in `[from, to)` at hour
    /// resolution (both are truncated to the hour), from the rollup table.
    pub async fn kpi_rollup(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<KpiRow>, StoreError> {
        let rows: Vec<RawKpi> = sqlx::query_as(
            "SELECT substr(hour, 1, 10), metric, key, SUM(n), TOTAL(sum) FROM kpi_hourly \
             WHERE hour >= ? AND hour < ? AND (? IS NULL OR campaign_id = ?) \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(hour_key(from))
        .bind(hour_key(to))
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        kpi_rows(rows, "kpi_hourly")
    }

    /// The same aggregates as [`Store::kpi_rollup`], computed from the event
    /// log with `json_extract` (no rollup): the benchmark baseline and the
    /// check that the triggers keep the rollup true.
    pub async fn kpi_from_log(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<KpiRow>, StoreError> {
        let rows: Vec<RawKpi> = sqlx::query_as(
            "SELECT day, metric, key, COUNT(*), TOTAL(v) FROM ( \
               SELECT substr(at, 1, 10) AS day, \
                 CASE type WHEN 'attempt_ended' THEN 'attempt' WHEN 'call_abandoned' THEN 'abandoned' ELSE 'conversation' END AS metric, \
                 CASE type WHEN 'call_abandoned' THEN '' ELSE COALESCE(json_extract(body, '$.outcome'), '') END AS key, \
                 CASE type WHEN 'attempt_ended' THEN json_extract(body, '$.duration_s') ELSE 0 END AS v \
               FROM events WHERE type IN ('attempt_ended', 'call_abandoned', 'conversation_ended') \
                 AND substr(at, 1, 13) >= ? AND substr(at, 1, 13) < ? AND (? IS NULL OR campaign_id = ?) \
               UNION ALL \
               SELECT substr(at, 1, 10), 'level', json_extract(body, '$.level'), 0 \
               FROM events WHERE type = 'conversation_ended' AND json_extract(body, '$.level') IS NOT NULL \
                 AND substr(at, 1, 13) >= ? AND substr(at, 1, 13) < ? AND (? IS NULL OR campaign_id = ?) \
             ) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(hour_key(from))
        .bind(hour_key(to))
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .bind(hour_key(from))
        .bind(hour_key(to))
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        kpi_rows(rows, "events")
    }

    /// Finished attempts and abandoned calls in `[from, to)` to the microsecond
    /// (the alerts' recent and baseline windows, finer than the hourly rollup),
    /// from the event log through its `(type, at)` index. The rates are computed.
    pub async fn kpi_window(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<waihu_core::kpi::Kpis, StoreError> {
        let rows: Vec<(String, String, i64, f64)> = sqlx::query_as(
            "SELECT type, COALESCE(json_extract(body, '$.outcome'), ''), COUNT(*), \
               TOTAL(json_extract(body, '$.duration_s')) \
             FROM events WHERE type IN ('attempt_ended', 'call_abandoned') AND at >= ? AND at < ? \
             GROUP BY 1, 2",
        )
        .bind(crate::ts(from))
        .bind(crate::ts(to))
        .fetch_all(&self.pool)
        .await?;
        let mut k = waihu_core::kpi::Kpis::empty();
        for (kind, outcome, n, secs) in rows {
            if kind == "call_abandoned" {
                k.add_abandoned(n);
            } else {
                k.add_attempt(&outcome, n, secs);
            }
        }
        k.finish();
        Ok(k)
    }

    /// First and last UTC hour with a finished attempt, if any.
    pub async fn kpi_span(&self) -> Result<Option<(DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        let row: (Option<String>, Option<String>) =
            sqlx::query_as("SELECT MIN(hour), MAX(hour) FROM kpi_hourly WHERE metric = 'attempt'")
                .fetch_one(&self.pool)
                .await?;
        let parse = |h: Option<String>| h.and_then(|h| parse_ts(&format!("{h}:00:00Z")));
        Ok(match (parse(row.0), parse(row.1)) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        })
    }

    /// Finished attempts by the callee's local date (inclusive range) and hour.
    pub async fn local_hour_rollup(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<LocalHourRow>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT local_date, local_hour, outcome, SUM(n) FROM kpi_local_hour \
             WHERE local_date >= ? AND local_date <= ? AND (? IS NULL OR campaign_id = ?) \
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(from.to_string())
        .bind(to.to_string())
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        local_rows(rows)
    }

    /// [`Store::local_hour_rollup`] computed from the event log (join of
    /// attempt_started and attempt_ended by call id): baseline and cross-check.
    pub async fn local_hour_from_log(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<LocalHourRow>, StoreError> {
        let rows: Vec<(String, i64, String, i64)> = sqlx::query_as(
            "SELECT d, h, o, COUNT(*) FROM ( \
               SELECT substr(json_extract(s.body, '$.local_time'), 1, 10) AS d, \
                      CAST(substr(json_extract(s.body, '$.local_time'), 12, 2) AS INTEGER) AS h, \
                      COALESCE(json_extract(e.body, '$.outcome'), '') AS o \
               FROM events e JOIN events s ON s.call_id = e.call_id AND s.type = 'attempt_started' \
               WHERE e.type = 'attempt_ended' AND length(json_extract(s.body, '$.local_time')) >= 13 \
                 AND (? IS NULL OR e.campaign_id = ?)) \
             WHERE d >= ? AND d <= ? GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .bind(from.to_string())
        .bind(to.to_string())
        .fetch_all(&self.pool)
        .await?;
        local_rows(rows)
    }

    /// Events newest first, optionally of one type, with id below `before`.
    pub async fn events_desc(
        &self,
        type_name: Option<&str>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events \
             WHERE (? IS NULL OR type = ?) AND id < ? ORDER BY id DESC LIMIT ?",
        )
        .bind(type_name)
        .bind(type_name)
        .bind(before.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// A customer's events, newest first.
    pub async fn customer_events(
        &self,
        customer: CustomerId,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let rows: Vec<EventRow> = sqlx::query_as(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events WHERE customer_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(customer.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }

    /// The id of the newest event (0 when the log is empty).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    pub async fn dnc_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM dnc")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Append many events in transactions of `per_tx` rows (bulk loads).
    pub async fn append_events_bulk(
        &self,
        events: &[Event],
        per_tx: usize,
    ) -> Result<(), StoreError> {
        for chunk in events.chunks(per_tx.max(1)) {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            insert_events(&mut tx, &self.audit, chunk).await?;
            self.commit(tx).await?;
        }
        Ok(())
    }

    /// Register a webhook. New webhooks start after the newest event: they get
    /// what happens from now on, not the history.
    pub async fn webhook_add(
        &self,
        url: &str,
        secret: &str,
        event_types: &[String],
        now: DateTime<Utc>,
    ) -> Result<Webhook, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let cursor: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM events")
            .fetch_one(&mut *tx)
            .await?;
        let types = if event_types.is_empty() {
            "*".to_string()
        } else {
            event_types.join(",")
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO webhooks (url, secret_ct, event_types, created_at, cursor) VALUES (?, x'', ?, ?, ?) RETURNING id",
        )
        .bind(url)
        .bind(&types)
        .bind(ts(now))
        .bind(cursor)
        .fetch_one(&mut *tx)
        .await?;
        // Sealed with the row id as associated data, so it cannot be moved to another webhook.
        let ct = self
            .vault
            .seal("webhooks", "secret", &id.to_string(), secret);
        sqlx::query("UPDATE webhooks SET secret_ct = ? WHERE id = ?")
            .bind(ct)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(Webhook {
            id,
            url: url.into(),
            secret: secret.into(),
            event_types: event_types.to_vec(),
            created_at: now,
            active: true,
            cursor,
        })
    }

    /// All webhooks (active or not), secrets opened.
    pub async fn webhooks(&self) -> Result<Vec<Webhook>, StoreError> {
        let rows: Vec<WebhookRow> =
            sqlx::query_as("SELECT id, url, secret_ct, event_types, created_at, active, cursor FROM webhooks ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, url, ct, types, created, active, cursor)| {
                let secret = self
                    .vault
                    .open("webhooks", "secret", &id.to_string(), &ct)?;
                let created_at = parse_ts(&created).ok_or(StoreError::Corrupt {
                    table: "webhooks",
                    id,
                    reason: format!("created_at '{created}'"),
                })?;
                let event_types = if types == "*" {
                    Vec::new()
                } else {
                    types
                        .split(',')
                        .filter(|t| !t.is_empty())
                        .map(str::to_string)
                        .collect()
                };
                Ok(Webhook {
                    id,
                    url,
                    secret,
                    event_types,
                    created_at,
                    active,
                    cursor,
                })
            })
            .collect()
    }

    /// Delete a webhook and its delivery log. False when there was none.
    pub async fn webhook_delete(&self, id: i64) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        self.commit(tx).await?;
        Ok(n == 1)
    }

    /// Record a delivery and move the webhook's cursor to `cursor`, together.
    pub async fn webhook_record(&self, d: &Delivery, cursor: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO webhook_deliveries (webhook_id, first_event, last_event, events, tries, http_status, error, delivered, at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(d.webhook_id)
        .bind(d.first_event)
        .bind(d.last_event)
        .bind(d.events)
        .bind(d.tries)
        .bind(d.http_status.map(i64::from))
        .bind(&d.error)
        .bind(d.delivered)
        .bind(ts(d.at))
        .execute(&mut *tx)
        .await?;
        Self::advance(&mut tx, d.webhook_id, cursor).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Move a webhook's cursor past events it does not want (nothing to send).
    pub async fn webhook_skip_to(&self, webhook_id: i64, cursor: i64) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        Self::advance(&mut conn, webhook_id, cursor).await
    }

    async fn advance(
        conn: &mut sqlx::SqliteConnection,
        webhook_id: i64,
        cursor: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE webhooks SET cursor = MAX(cursor, ?) WHERE id = ?")
            .bind(cursor)
            .bind(webhook_id)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// A webhook's deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        webhook_id: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(
            "SELECT webhook_id, first_event, last_event, events, tries, http_status, error, delivered, at \
             FROM webhook_deliveries WHERE webhook_id = ? ORDER BY id DESC LIMIT ?",
        )
        .bind(webhook_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(
                |(
                    webhook_id,
                    first_event,
                    last_event,
                    events,
                    tries,
                    status,
                    error,
                    delivered,
                    at,
                )| {
                    Ok(Delivery {
                        webhook_id,
                        first_event,
                        last_event,
                        events,
                        tries,
                        http_status: status.and_then(|s| u16::try_from(s).ok()),
                        error,
                        delivered,
                        at: parse_ts(&at).ok_or(StoreError::Corrupt {
                            table: "webhook_deliveries",
                            id: webhook_id,
                            reason: format!("at '{at}'"),
                        })?,
                    })
                },
            )
            .collect()
    }

    /// Events of the given types (all when empty) after `after`, oldest first.
    pub async fn events_of_types(
        &self,
        types: &[String],
        after: i64,
        limit: i64,
    ) -> Result<Vec<(i64, Event)>, StoreError> {
        let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT id, at, customer_id, campaign_id, call_id, body FROM events WHERE id > ",
        );
        qb.push_bind(after);
        if !types.is_empty() {
            qb.push(" AND type IN (");
            let mut sep = qb.separated(", ");
            for t in types {
                sep.push_bind(t.as_str());
            }
            qb.push(")");
        }
        qb.push(" ORDER BY id LIMIT ");
        qb.push_bind(limit);
        let rows: Vec<EventRow> = qb.build_query_as().fetch_all(&self.pool).await?;
        rows.into_iter().map(decode).collect()
    }
}

type WebhookRow = (i64, String, Vec<u8>, String, String, bool, i64);
type DeliveryRow = (
    i64,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<String>,
    bool,
    String,
);
fn local_rows(rows: Vec<(String, i64, String, i64)>) -> Result<Vec<LocalHourRow>, StoreError> {
    rows.into_iter()
        .map(|(d, h, outcome, n)| {
            Ok(LocalHourRow {
                local_date: day(&d, "kpi_local_hour")?,
                hour: u32::try_from(h).map_err(|_| StoreError::Corrupt {
                    table: "kpi_local_hour",
                    id: 0,
                    reason: format!("hour {h}"),
                })?,
                outcome,
                n,
            })
        })
        .collect()
}
