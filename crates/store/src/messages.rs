//! The message outbox (follow-up SMS) and inbound replies.
//!
//! ## Exactly once, or say so
//!
//! SMPP has no idempotency key: if the gateway accepted a submit_sm and the answer was lost,
//! sending again delivers twice. So the outbox never resends a message whose fate it does
//! not know:
//!
//! 1. [`Store::message_enqueue`] writes the message as `queued` under the caller's key
//!    (`fallback:<call id>`); enqueueing the same key again is a no-op, so a replayed
//!    planner decision does not queue a second message.
//! 2. [`Store::message_claim`] moves it `queued → sending` and commits **before** the
//!    sender writes a byte to the gateway. Only one claimer wins (the update is
//!    conditional on `queued`).
//! 3. After submit_sm_resp, [`Store::message_sent`] stores the gateway's ids and moves it
//!    `sending → sent`. A clear refusal → [`Store::message_failed`]; nothing went out (the
//!    bind was lost before sending) → [`Store::message_requeue`]; a request went out and
//!    no answer came → [`Store::message_unknown`].
//! 4. After a crash (a kill between submit and step 3), the message is still `sending`.
//!    [`Store::messages_reconcile`] at start-up turns every `sending` row into `unknown`:
//!    it is listed for an operator and never picked again by [`Store::messages_due`].
//!
//! The result is at most once per key, with every "maybe" visible; never twice.
//! Receipts ([`Store::message_receipt`]) then move `sent → delivered | failed`.

use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::{CampaignId, CustomerId, Event, EventKind};

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

/// Words that, as a whole reply, mean "stop messaging me" (Chinese carriers require 退订
/// and TD to work; STOP and N are the international conventions).
pub const OPT_OUT_WORDS: [&str; 6] = ["退订", "TD", "STOP", "N", "UNSUBSCRIBE", "取消"];

/// Whether a reply is an opt-out: one of [`OPT_OUT_WORDS`], ignoring case, spaces and
/// trailing punctuation (`退订。`, ` stop!`).
pub fn is_opt_out(text: &str) -> bool {
    let t: String = text
        .trim()
        .trim_end_matches(|c: char| c.is_ascii_punctuation() || "。！!，".contains(c))
        .trim()
        .to_uppercase();
    OPT_OUT_WORDS.contains(&t.as_str())
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewMessage<'a> {
    /// Idempotency key: one message per key, ever.
    pub key: &'a str,
    pub customer: Option<CustomerId>,
    pub campaign: Option<CampaignId>,
    pub channel: &'a str,
    pub template: &'a str,
    /// E.164.
    pub to: &'a str,
    pub text: &'a str,
    pub segments: u32,
}

/// A queued message, opened for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    pub id: i64,
    pub key: String,
    pub customer: Option<CustomerId>,
    pub campaign: Option<CampaignId>,
    pub channel: String,
    pub template: String,
    pub to: String,
    pub text: String,
    /// Blind index of `to` (what DNC, caps and the event log know the number by).
    pub phone_idx: String,
    /// The customer's IANA zone, when the message has a customer.
    pub tz: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// One message as listed (no number or text in clear).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageRow {
    pub id: i64,
    pub direction: String,
    pub customer_id: Option<i64>,
    pub campaign_id: Option<i64>,
    pub channel: String,
    pub template: String,
    pub status: String,
    pub segments: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
    /// When the final receipt (delivered or failed) or the reply arrived.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What a reply did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyOutcome {
    pub message_id: i64,
    pub customer: Option<CustomerId>,
    /// The reply was an opt-out and the number is now on the global DNC list.
    pub opted_out: bool,
}

impl Store {
    /// Queues a message. Returns its id and whether it is new (false: the key was already
    /// used and nothing changed).
    pub async fn message_enqueue(
        &self,
        m: &NewMessage<'_>,
        now: DateTime<Utc>,
    ) -> Result<(i64, bool), StoreError> {
        if m.key.is_empty() {
            return Err(StoreError::Invalid("message key is empty".into()));
        }
        let idx = self.vault.blind_index(m.to);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let key = self
            .data_key_for_write(&mut tx, m.customer.map(|c| c.0), now)
            .await?;
        let phone_ct = self.seal_for(key.as_ref(), "messages", "phone", m.key, m.to.as_bytes());
        let text_ct = self.seal_for(key.as_ref(), "messages", "text", m.key, m.text.as_bytes());
        let inserted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO messages (key, direction, customer_id, campaign_id, channel, template,
                 phone_idx, phone_ct, text_ct, status, segments, created_at)
             VALUES (?, 'out', ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)
             ON CONFLICT(key) DO NOTHING RETURNING id",
        )
        .bind(m.key)
        .bind(m.customer.map(|c| c.0))
        .bind(m.campaign.map(|c| c.0))
        .bind(m.channel)
        .bind(m.template)
        .bind(idx)
        .bind(phone_ct)
        .bind(text_ct)
        .bind(i64::from(m.segments))
        .bind(ts(now))
        .fetch_optional(&mut *tx)
        .await?;
        let out = match inserted {
            Some(id) => (id, true),
            None => {
                let id: i64 = sqlx::query_scalar("SELECT id FROM messages WHERE key = ?")
                    .bind(m.key)
                    .fetch_one(&mut *tx)
                    .await?;
                (id, false)
            }
        };
        tx.commit().await?;
        Ok(out)
    }

    /// Queued outgoing messages, oldest first, opened for sending. A message whose number
    /// is on the global DNC list (or the campaign's) is marked `suppressed` instead.
    pub async fn messages_due(
        &self,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError> {
        self.messages_due_on(None, limit, now).await
    }

    /// [`Store::messages_due`] for one channel (`sms`, `push`): each sender takes only its
    /// own, so a backlog on one channel never starves the other.
    pub async fn messages_due_on(
        &self,
        channel: Option<&str>,
        limit: i64,
        now: DateTime<Utc>,
    ) -> Result<Vec<OutMessage>, StoreError> {
        // Suppress first, in one statement, so an opt-out that arrived after queueing wins.
        sqlx::query(
            "UPDATE messages SET status = 'suppressed', done_at = ?
             WHERE status = 'queued' AND direction = 'out' AND EXISTS (
                SELECT 1 FROM dnc d WHERE d.phone_idx = messages.phone_idx AND (d.scope = 'global'
                   OR d.scope = (SELECT name FROM campaigns c WHERE c.id = messages.campaign_id)))",
        )
        .bind(ts(now))
        .execute(&self.pool)
        .await?;
        type Row = (
            i64,
            String,
            Option<i64>,
            Option<i64>,
            String,
            String,
            Vec<u8>,
            Vec<u8>,
            String,
            Option<String>,
            String,
        );
        // A deferred message (`not_before`, see `message_defer`) is not due before its time.
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT m.id, m.key, m.customer_id, m.campaign_id, m.channel, m.template, m.phone_ct,
                    m.text_ct, m.phone_idx, c.tz, m.created_at
             FROM messages m LEFT JOIN customers c ON c.id = m.customer_id
             WHERE m.status = 'queued' AND m.direction = 'out'
               AND (?1 IS NULL OR m.channel = ?1)
               AND (m.not_before IS NULL OR m.not_before <= ?3)
             ORDER BY m.id LIMIT ?2",
        )
        .bind(channel)
        .bind(limit)
        .bind(ts(now))
        .fetch_all(&self.pool)
        .await?;
        let mut keys = std::collections::HashMap::new();
        let mut conn = self.pool.acquire().await?;
        for r in &rows {
            if let Some(c) = r.2 {
                if let std::collections::hash_map::Entry::Vacant(v) = keys.entry(c) {
                    v.insert(self.data_key(&mut conn, Some(c)).await?);
                }
            }
        }
        drop(conn);
        rows.into_iter()
            .map(
                |(
                    id,
                    key,
                    customer,
                    campaign,
                    channel,
                    template,
                    phone_ct,
                    text_ct,
                    phone_idx,
                    tz,
                    created,
                )| {
                    let dk = customer.and_then(|c| keys.get(&c)).and_then(Option::as_ref);
                    Ok(OutMessage {
                        to: self
                            .vault
                            .open_with(dk, "messages", "phone", &key, &phone_ct)?,
                        text: self
                            .vault
                            .open_with(dk, "messages", "text", &key, &text_ct)?,
                        created_at: parse_ts(&created).ok_or_else(|| StoreError::Corrupt {
                            table: "messages",
                            id,
                            reason: format!("created_at '{created}'"),
                        })?,
                        id,
                        key,
                        customer: customer.map(CustomerId),
                        campaign: campaign.map(CampaignId),
                        channel,
                        template,
                        phone_idx,
                        tz,
                    })
                },
            )
            .collect()
    }

    /// `queued → sending`, committed before the gateway sees the message. False: someone
    /// else claimed it, or it is no longer queued.
    pub async fn message_claim(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE messages SET status = 'sending', sent_at = ? WHERE id = ? AND status = 'queued'",
        )
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// [`Store::message_claim`] for a message the compliance gate allowed: `queued →
    /// sending`, and on the message's first claim records `claimed_at` and logs
    /// `message_submitted` (number index, the recipient's zone and local time as the gate
    /// saw them) in the same transaction, so the compliance checker sees every message
    /// exactly when it was handed to the gateway. False: not claimed (someone else has it).
    pub async fn message_claim_gated(
        &self,
        m: &OutMessage,
        tz: &str,
        local_time: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let first: Option<bool> = sqlx::query_scalar(
            "UPDATE messages SET status = 'sending', sent_at = ?1, error = NULL, not_before = NULL,
                 claimed_at = COALESCE(claimed_at, ?1)
             WHERE id = ?2 AND status = 'queued' RETURNING claimed_at = ?1",
        )
        .bind(ts(now))
        .bind(m.id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(first) = first else {
            return Ok(false);
        };
        if first {
            let ev = Event {
                at: now,
                customer: m.customer,
                campaign: m.campaign,
                call: None,
                kind: EventKind::MessageSubmitted {
                    message: m.id,
                    phone: waihu_core::PhoneIndex(m.phone_idx.clone()),
                    tz: tz.into(),
                    local_time: local_time.into(),
                    channel: m.channel.clone(),
                    template: m.template.clone(),
                },
            };
            insert_events(&mut tx, &self.audit, &[ev]).await?;
        }
        self.commit(tx).await?;
        Ok(true)
    }

    /// When earlier outgoing messages to a number were first handed to a gateway
    /// (`claimed_at`), at or after `since`, excluding message `except`: what the gate counts
    /// against the number's daily and weekly message caps (all campaigns and channels).
    pub async fn message_claims_to(
        &self,
        phone_idx: &str,
        since: DateTime<Utc>,
        except: i64,
    ) -> Result<Vec<DateTime<Utc>>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT claimed_at FROM messages WHERE phone_idx = ? AND direction = 'out'
               AND claimed_at IS NOT NULL AND claimed_at >= ? AND id <> ? ORDER BY claimed_at",
        )
        .bind(phone_idx)
        .bind(ts(since))
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().filter_map(|s| parse_ts(s)).collect())
    }

    /// The gate deferred a queued message: it stays `queued`, is not due before `until`,
    /// and lists `reason` until it is sent.
    pub async fn message_defer(
        &self,
        id: i64,
        until: DateTime<Utc>,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET not_before = ?, error = ? WHERE id = ? AND status = 'queued'",
        )
        .bind(ts(until))
        .bind(reason)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The gate will never allow a queued message (say the cap leaves no room before it
    /// would be stale): `queued → suppressed` with the reason.
    pub async fn message_suppress(
        &self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'suppressed', error = ?, done_at = ?
             WHERE id = ? AND status = 'queued'",
        )
        .bind(reason)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `sending → sent` with the gateway's message ids (one per segment); logs
    /// `message_sent`.
    pub async fn message_sent(
        &self,
        id: i64,
        gateway_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row: Option<(Option<i64>, Option<i64>, String, String)> = sqlx::query_as(
            "UPDATE messages SET status = 'sent', sent_at = ? WHERE id = ? AND status IN ('sending', 'unknown')
             RETURNING customer_id, campaign_id, channel, template",
        )
        .bind(ts(now))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((customer, campaign, channel, template)) = row else {
            return Err(StoreError::Invalid(format!(
                "message {id} is not being sent"
            )));
        };
        let mut early_stat: Option<String> = None;
        for g in gateway_ids {
            let stat: Option<String> =
                sqlx::query_scalar("SELECT stat FROM message_receipts_early WHERE gateway_id = ?")
                    .bind(g)
                    .fetch_optional(&mut *tx)
                    .await?;
            early_stat = stat.or(early_stat);
            sqlx::query(
                "INSERT OR REPLACE INTO message_parts (gateway_id, message_id, status)
                 VALUES (?1, ?2, COALESCE((SELECT status FROM message_receipts_early WHERE gateway_id = ?1), 'sent'))",
            )
            .bind(g)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM message_receipts_early WHERE gateway_id = ?")
                .bind(g)
                .execute(&mut *tx)
                .await?;
        }
        // A receipt that beat the gateway's answer keeps its own status text.
        let stat = early_stat.unwrap_or_else(|| "receipt arrived before submit_sm_resp".into());
        settle(&mut tx, id, &stat, now).await?;
        let ev = Event {
            at: now,
            customer: customer.map(CustomerId),
            campaign: campaign.map(CampaignId),
            call: None,
            kind: EventKind::MessageSent { channel, template },
        };
        insert_events(&mut tx, &self.audit, &[ev]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The gateway refused the message: `sending → failed`.
    pub async fn message_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.message_end(id, "failed", error, now).await
    }

    /// A request went out and no answer came: `sending → unknown`, never retried by itself.
    pub async fn message_unknown(
        &self,
        id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.message_end(id, "unknown", reason, now).await
    }

    async fn message_end(
        &self,
        id: i64,
        status: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = ?, error = ?, done_at = ? WHERE id = ? AND status = 'sending'",
        )
        .bind(status)
        .bind(error)
        .bind(ts(now))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Nothing reached the gateway (the message never left this process): `sending → queued`.
    pub async fn message_requeue(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE messages SET status = 'queued', sent_at = NULL WHERE id = ? AND status = 'sending'",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// At start-up: every message left `sending` by a previous process becomes `unknown`.
    /// Returns how many.
    pub async fn messages_reconcile(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        self.messages_reconcile_on(None, now).await
    }

    /// [`Store::messages_reconcile`] for one channel: a sender starting beside another
    /// (SMS and push in one process) only touches its own rows.
    pub async fn messages_reconcile_on(
        &self,
        channel: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "UPDATE messages SET status = 'unknown', done_at = ?1,
                 error = 'interrupted between submit and acknowledgement; not resent'
             WHERE status = 'sending' AND (?2 IS NULL OR channel = ?2)",
        )
        .bind(ts(now))
        .bind(channel)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// A delivery receipt for one segment. When every segment is delivered the message is
    /// `delivered`; any failed segment makes it `failed`. Returns the message id, or None
    /// for a gateway id not known (yet): the receipt is kept and applied if
    /// [`Store::message_sent`] later records that id.
    pub async fn message_receipt(
        &self,
        gateway_id: &str,
        delivered: bool,
        stat: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let id: Option<i64> = sqlx::query_scalar(
            "UPDATE message_parts SET status = ? WHERE gateway_id = ? RETURNING message_id",
        )
        .bind(if delivered { "delivered" } else { "failed" })
        .bind(gateway_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            sqlx::query(
                "INSERT OR REPLACE INTO message_receipts_early (gateway_id, status, stat, at) VALUES (?, ?, ?, ?)",
            )
            .bind(gateway_id)
            .bind(if delivered { "delivered" } else { "failed" })
            .bind(stat)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
            self.commit(tx).await?;
            return Ok(None);
        };
        settle(&mut tx, id, stat, now).await?;
        self.commit(tx).await?;
        Ok(Some(id))
    }

    /// An inbound message (a reply). Stored sealed on the sender's timeline; an opt-out
    /// word puts the number on the global DNC list at once (logged as `dnc_added`).
    pub async fn message_reply(
        &self,
        from: &str,
        text: &str,
        channel: &str,
        now: DateTime<Utc>,
    ) -> Result<ReplyOutcome, StoreError> {
        let idx = self.vault.blind_index(from);
        let customer: Option<i64> =
            sqlx::query_scalar("SELECT id FROM customers WHERE phone_idx = ?")
                .bind(&idx)
                .fetch_optional(&self.pool)
                .await?;
        // The last campaign that messaged this number, for the timeline.
        let campaign: Option<Option<i64>> = sqlx::query_scalar(
            "SELECT campaign_id FROM messages WHERE phone_idx = ? AND direction = 'out'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(&idx)
        .fetch_optional(&self.pool)
        .await?;
        let opted_out = is_opt_out(text);
        let key = format!(
            "in:{}:{}",
            ts(now),
            self.vault.blind_index(&format!("{from}|{text}"))
        );
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let dk = self.data_key_for_write(&mut tx, customer, now).await?;
        let phone_ct = self.seal_for(dk.as_ref(), "messages", "phone", &key, from.as_bytes());
        let text_ct = self.seal_for(dk.as_ref(), "messages", "text", &key, text.as_bytes());
        let message_id: i64 = sqlx::query_scalar(
            "INSERT INTO messages (key, direction, customer_id, campaign_id, channel, template,
                 phone_idx, phone_ct, text_ct, status, segments, created_at, done_at)
             VALUES (?, 'in', ?, ?, ?, ?, ?, ?, ?, 'received', 1, ?, ?)
             ON CONFLICT(key) DO UPDATE SET status = status RETURNING id",
        )
        .bind(&key)
        .bind(customer)
        .bind(campaign.flatten())
        .bind(channel)
        .bind(if opted_out { "opt-out" } else { "reply" })
        .bind(&idx)
        .bind(phone_ct)
        .bind(text_ct)
        .bind(ts(now))
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if opted_out {
            self.dnc_add(
                from,
                "global",
                &format!("{channel} reply: {}", text.trim()),
                now,
            )
            .await?;
        }
        Ok(ReplyOutcome {
            message_id,
            customer: customer.map(CustomerId),
            opted_out,
        })
    }

    /// Messages, newest first, optionally of one campaign.
    pub async fn messages_list(
        &self,
        campaign: Option<CampaignId>,
        limit: i64,
    ) -> Result<Vec<MessageRow>, StoreError> {
        type Row = (
            i64,
            String,
            Option<i64>,
            Option<i64>,
            String,
            String,
            String,
            i64,
            Option<String>,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, direction, customer_id, campaign_id, channel, template, status, segments,
                    error, created_at, sent_at, done_at
             FROM messages WHERE (?1 IS NULL OR campaign_id = ?1) ORDER BY id DESC LIMIT ?2",
        )
        .bind(campaign.map(|c| c.0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                let corrupt = |what: &str| StoreError::Corrupt {
                    table: "messages",
                    id: r.0,
                    reason: format!("bad {what} timestamp"),
                };
                let opt = |s: &Option<String>, what: &str| match s {
                    Some(s) => parse_ts(s).map(Some).ok_or_else(|| corrupt(what)),
                    None => Ok(None),
                };
                let delivered_at = if matches!(r.6.as_str(), "delivered" | "received") {
                    opt(&r.11, "done")?
                } else {
                    None
                };
                Ok(MessageRow {
                    created_at: parse_ts(&r.9).ok_or_else(|| corrupt("created"))?,
                    sent_at: opt(&r.10, "sent")?,
                    delivered_at,
                    id: r.0,
                    direction: r.1,
                    customer_id: r.2,
                    campaign_id: r.3,
                    channel: r.4,
                    template: r.5,
                    status: r.6,
                    segments: r.7,
                    error: r.8,
                })
            })
            .collect()
    }
}

/// Outgoing messages of one campaign, channel and template, by status, with the delivery
/// latency (sent → delivery receipt) of those delivered.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageReportRow {
    pub campaign_id: Option<i64>,
    pub channel: String,
    pub template: String,
    pub total: u64,
    pub queued: u64,
    pub sent: u64,
    pub delivered: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub unknown: u64,
    /// Median and 90th percentile seconds from `sent` to the delivery receipt.
    pub delivery_p50_s: Option<f64>,
    pub delivery_p90_s: Option<f64>,
    /// Conversions attributed to these messages (last touch, see [`Attribution`]).
    pub conversions: u64,
    /// `conversions / delivered` (push: `/ sent`, the services give no receipts).
    pub conversion_rate: Option<f64>,
}

/// How conversions are attributed to messages: a conversation ending in one of `outcomes`
/// (the KPI conversion outcomes) is credited to the customer's **last** message delivered
/// (a push: sent) at or before it and at most `window` before it. One conversion, one
/// message; conversions with no such message are not credited to any.
#[derive(Debug, Clone, PartialEq)]
pub struct Attribution {
    pub outcomes: Vec<String>,
    pub window: chrono::Duration,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            outcomes: waihu_core::kpi::DEFAULT_CONVERSION_OUTCOMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            window: chrono::Duration::days(7),
        }
    }
}

/// Replies per campaign and channel (attributed to the last campaign that messaged the
/// number).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplyReportRow {
    pub campaign_id: Option<i64>,
    pub channel: String,
    pub replies: u64,
    pub opt_outs: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MessageReport {
    pub outgoing: Vec<MessageReportRow>,
    pub replies: Vec<ReplyReportRow>,
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank: the smallest value with at least p of the values at or below it.
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

impl Store {
    /// Counts per campaign, channel and template, optionally of one campaign, with
    /// conversions attributed by the default [`Attribution`] (KPI conversion outcomes,
    /// 7 days).
    pub async fn messages_report(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<MessageReport, StoreError> {
        self.messages_report_with(campaign, &Attribution::default())
            .await
    }

    /// Message ids credited with a conversion (last touch within the window), one entry
    /// per conversion.
    pub async fn message_conversions(&self, a: &Attribution) -> Result<Vec<i64>, StoreError> {
        // Touches: delivered messages (push: sent) to known customers, in time order.
        type Touch = (i64, i64, Option<String>, Option<String>, String);
        let touches: Vec<Touch> = sqlx::query_as(
            "SELECT id, customer_id, done_at, sent_at, status FROM messages
             WHERE direction = 'out' AND customer_id IS NOT NULL
               AND (status = 'delivered' OR (channel = 'push' AND status = 'sent'))",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_customer: std::collections::HashMap<i64, Vec<(DateTime<Utc>, i64)>> =
            Default::default();
        for (id, customer, done, sent, status) in touches {
            let at = if status == "delivered" { done } else { sent };
            if let Some(at) = at.as_deref().and_then(parse_ts) {
                by_customer.entry(customer).or_default().push((at, id));
            }
        }
        for v in by_customer.values_mut() {
            v.sort();
        }
        let conversions: Vec<(i64, String, Option<String>)> = sqlx::query_as(
            "SELECT customer_id, at, json_extract(body, '$.outcome') FROM events
             WHERE type = 'conversation_ended' AND customer_id IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut credited = Vec::new();
        for (customer, at, outcome) in conversions {
            let Some(outcome) = outcome else { continue };
            if !a.outcomes.contains(&outcome) {
                continue;
            }
            let (Some(at), Some(touches)) = (parse_ts(&at), by_customer.get(&customer)) else {
                continue;
            };
            // The last touch at or before the conversion.
            let i = touches.partition_point(|(t, _)| *t <= at);
            if i == 0 {
                continue;
            }
            let (t, id) = touches[i - 1];
            if at - t <= a.window {
                credited.push(id);
            }
        }
        Ok(credited)
    }

    /// [`Store::messages_report`] with a given attribution.
    pub async fn messages_report_with(
        &self,
        campaign: Option<CampaignId>,
        attribution: &Attribution,
    ) -> Result<MessageReport, StoreError> {
        let mut credited: std::collections::HashMap<i64, u64> = Default::default();
        for id in self.message_conversions(attribution).await? {
            *credited.entry(id).or_default() += 1;
        }
        type Row = (
            i64,
            String,
            Option<i64>,
            String,
            String,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, direction, campaign_id, channel, template, status, sent_at, done_at
             FROM messages WHERE (?1 IS NULL OR campaign_id = ?1) ORDER BY id",
        )
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        type Key = (Option<i64>, String, String);
        let mut out: std::collections::BTreeMap<Key, (MessageReportRow, Vec<f64>)> =
            Default::default();
        let mut replies: std::collections::BTreeMap<(Option<i64>, String), ReplyReportRow> =
            Default::default();
        for (id, direction, campaign_id, channel, template, status, sent_at, done_at) in rows {
            if direction == "in" {
                let r = replies
                    .entry((campaign_id, channel.clone()))
                    .or_insert_with(|| ReplyReportRow {
                        campaign_id,
                        channel,
                        ..Default::default()
                    });
                r.replies += 1;
                if template == "opt-out" {
                    r.opt_outs += 1;
                }
                continue;
            }
            let (r, lat) = out
                .entry((campaign_id, channel.clone(), template.clone()))
                .or_insert_with(|| {
                    (
                        MessageReportRow {
                            campaign_id,
                            channel,
                            template,
                            ..Default::default()
                        },
                        Vec::new(),
                    )
                });
            r.total += 1;
            r.conversions += credited.get(&id).copied().unwrap_or(0);
            match status.as_str() {
                "queued" | "sending" => r.queued += 1,
                "sent" => r.sent += 1,
                "delivered" => {
                    r.delivered += 1;
                    if let (Some(a), Some(b)) = (
                        sent_at.as_deref().and_then(parse_ts),
                        done_at.as_deref().and_then(parse_ts),
                    ) {
                        lat.push((b - a).num_milliseconds().max(0) as f64 / 1000.0);
                    }
                }
                "failed" => r.failed += 1,
                "suppressed" => r.suppressed += 1,
                _ => r.unknown += 1,
            }
        }
        Ok(MessageReport {
            outgoing: out
                .into_values()
                .map(|(mut r, mut lat)| {
                    lat.sort_by(f64::total_cmp);
                    r.delivery_p50_s = percentile(&lat, 0.5);
                    r.delivery_p90_s = percentile(&lat, 0.9);
                    // Push has no receipts: its touches are the messages sent.
                    let base = if r.channel == "push" {
                        r.sent + r.delivered
                    } else {
                        r.delivered
                    };
                    r.conversion_rate = (base > 0).then(|| r.conversions as f64 / base as f64);
                    r
                })
                .collect(),
            replies: replies.into_values().collect(),
        })
    }
}

/// Derives a sent message's status from its segments: every one delivered → `delivered`,
/// any failed → `failed`, otherwise unchanged.
async fn settle(
    tx: &mut sqlx::SqliteConnection,
    id: i64,
    stat: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (total, ok, bad): (i64, Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(status = 'delivered'), SUM(status = 'failed')
         FROM message_parts WHERE message_id = ?",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await?;
    let (ok, bad) = (ok.unwrap_or(0), bad.unwrap_or(0));
    let status = if bad > 0 {
        "failed"
    } else if total > 0 && ok == total {
        "delivered"
    } else {
        return Ok(());
    };
    sqlx::query(
        "UPDATE messages SET status = ?, done_at = ?, error = ?
         WHERE id = ? AND status IN ('sent', 'unknown', 'sending')",
    )
    .bind(status)
    .bind(ts(now))
    .bind((status == "failed").then_some(stat))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
