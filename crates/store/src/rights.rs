//! Personal-data rights (个人信息保护法 / GDPR): a data key per customer
//! (crypto-shredding), export of everything held about one customer, erasure,
//! and the retention of recordings and transcripts.
//!
//! What a customer said and how they sounded (turn texts, recordings, messages)
//! is sealed under their own random data key, kept only wrapped by the vault
//! (`customer_keys`). Erasing deletes the wrapped key, so every copy of that
//! data, in this database or wherever a file was copied to, stops opening; the
//! customer's own row (phone, name, attributes) is deleted with the database's
//! `secure_delete` on, and the write-ahead log is truncated so no old page
//! image survives in it. Counts, rollups and the event chain are untouched.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use waihu_core::{CustomerId, Event, EventKind};
use waihu_privacy::{DataKey, PrivacyError};

use crate::calls::recording_file_name;
use crate::events::insert_events;
use crate::{parse_ts, ts, Customer, Store, StoreError};

/// Shown in place of text sealed under a destroyed data key.
pub const ERASED_TEXT: &str = "〔已擦除 erased〕";
/// Shown in place of a transcript line removed by the retention policy.
pub const EXPIRED_TEXT: &str = "〔已过保留期 past retention〕";

/// Everything held about one customer, opened (`waihu customer export`,
/// `GET /api/customers/{id}/export`).
#[derive(Debug, Clone, Serialize)]
pub struct CustomerExport {
    pub exported_at: DateTime<Utc>,
    pub customer: Customer,
    /// Do-not-call scopes the number is on.
    pub do_not_call: Vec<String>,
    pub calls: Vec<ExportedCall>,
    pub messages: Vec<ExportedMessage>,
    /// Enrolled voiceprints (speaker embeddings): how many; the vectors are
    /// not meaningful to a person and are not exported.
    pub voiceprints: u64,
    /// Every event about the customer on the audit chain, oldest first.
    pub events: Vec<ExportedEvent>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedCall {
    pub call_id: String,
    pub campaign: Option<i64>,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub outcome: Option<String>,
    pub business_outcome: Option<String>,
    pub duration_s: Option<f64>,
    /// A recording is held (`waihu customer export --out DIR` writes it).
    pub recording: bool,
    pub turns: Vec<ExportedTurn>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedTurn {
    pub seq: i64,
    pub speaker: String,
    pub at: String,
    pub text: String,
    pub intent: Option<String>,
    pub emotion: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedMessage {
    pub direction: String,
    pub channel: String,
    pub template: String,
    pub status: String,
    pub created_at: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExportedEvent {
    pub seq: Option<i64>,
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub campaign: Option<i64>,
    pub call: Option<String>,
    pub body: serde_json::Value,
}

type TurnExportRow = (i64, String, String, Vec<u8>, Option<String>, Option<String>);
type MessageExportRow = (String, String, String, String, String, String, Vec<u8>);
type EventExportRow = (
    Option<i64>,
    String,
    String,
    Option<i64>,
    Option<String>,
    String,
);

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErasureReport {
    pub customer: CustomerId,
    pub calls: u64,
    pub turns: u64,
    /// Recording files deleted (the call's own and its other legs').
    pub recordings: u64,
    pub messages: u64,
    pub voiceprints: u64,
    /// The number stays on these do-not-call scopes (suppression is why it is
    /// kept: erasing it would let the next import call them again).
    pub do_not_call: Vec<String>,
}

/// What a retention run removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub recordings: u64,
    pub transcripts: u64,
}

impl Store {
    /// The customer's data key, if one is kept (none yet, or erased: `None`).
    pub(crate) async fn data_key(
        &self,
        conn: &mut SqliteConnection,
        customer: Option<i64>,
    ) -> Result<Option<DataKey>, StoreError> {
        let Some(id) = customer else { return Ok(None) };
        let wrapped: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT wrapped FROM customer_keys WHERE customer_id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let Some(w) = wrapped else { return Ok(None) };
        match self.vault.unwrap_data_key(&w) {
            Ok(k) => Ok(Some(k)),
            Err(e) => {
                // Say "rotated" rather than "tampered" when that is why.
                self.ensure_current_key(conn).await?;
                Err(e.into())
            }
        }
    }

    /// The key to seal new personal data of `customer` under: their kept key,
    /// a new one made and kept on first use, or, for an erased customer, a
    /// fresh key that is never kept (what is sealed for them now is shredded at
    /// once). `None` only for data without a customer (sealed by the vault).
    pub(crate) async fn data_key_for_write(
        &self,
        conn: &mut SqliteConnection,
        customer: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<DataKey>, StoreError> {
        let Some(id) = customer else { return Ok(None) };
        if let Some(k) = self.data_key(conn, Some(id)).await? {
            return Ok(Some(k));
        }
        let erased: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM erased_customers WHERE customer_id = ?")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        let (key, wrapped) = self.vault.new_data_key();
        if erased.is_some() {
            return Ok(Some(key));
        }
        self.ensure_current_key(conn).await?;
        sqlx::query(
            "INSERT INTO customer_keys (customer_id, wrapped, created_at) VALUES (?, ?, ?) \
             ON CONFLICT (customer_id) DO NOTHING",
        )
        .bind(id)
        .bind(&wrapped)
        .bind(ts(now))
        .execute(&mut *conn)
        .await?;
        // Another writer may have made one first: use whichever was kept.
        Ok(self.data_key(conn, Some(id)).await?.or(Some(key)))
    }

    /// Seal under `key`, or under the vault when the data has no customer.
    pub(crate) fn seal_for(
        &self,
        key: Option<&DataKey>,
        table: &str,
        column: &str,
        row_key: &str,
        plaintext: &[u8],
    ) -> Vec<u8> {
        match key {
            Some(k) => k.seal_bytes(table, column, row_key, plaintext),
            None => self.vault.seal_bytes(table, column, row_key, plaintext),
        }
    }

    /// Open text sealed by [`Store::seal_for`]: [`ERASED_TEXT`] when its key was
    /// destroyed, [`EXPIRED_TEXT`] when retention removed it.
    pub(crate) fn open_text_for(
        &self,
        key: Option<&DataKey>,
        table: &str,
        column: &str,
        row_key: &str,
        sealed: &[u8],
    ) -> Result<String, StoreError> {
        if sealed.is_empty() {
            return Ok(EXPIRED_TEXT.to_string());
        }
        match self.vault.open_with(key, table, column, row_key, sealed) {
            Ok(s) => Ok(s),
            Err(PrivacyError::Shredded { .. }) => Ok(ERASED_TEXT.to_string()),
            Err(e) => Err(e.into()),
        }
    }

    /// Everything held about `id`, opened. The caller records the reveal
    /// (`pii_revealed`, field `export`) — see [`Store::customer_export_audited`].
    pub async fn customer_export(
        &self,
        id: CustomerId,
        now: DateTime<Utc>,
    ) -> Result<Option<CustomerExport>, StoreError> {
        let Some(customer) = self.customer(id).await? else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let key = self.data_key(&mut conn, Some(id.0)).await?;
        let idx = self.vault.blind_index(&customer.phone);
        let do_not_call: Vec<String> =
            sqlx::query_scalar("SELECT scope FROM dnc WHERE phone_idx = ? ORDER BY scope")
                .bind(&idx)
                .fetch_all(&mut *conn)
                .await?;
        type CallRow = (
            String,
            i64,
            String,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<f64>,
            Option<String>,
        );
        let rows: Vec<CallRow> = sqlx::query_as(
            "SELECT call_id, campaign_id, started_at, ended_at, outcome, business_outcome, duration_s, recording \
             FROM calls WHERE customer_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
        let mut calls = Vec::with_capacity(rows.len());
        for (call_id, campaign, started, ended, outcome, business, duration, recording) in rows {
            let turns: Vec<TurnExportRow> =
                sqlx::query_as(
                    "SELECT seq, speaker, at, text_ct, intent, emotion FROM call_turns WHERE call_id = ? ORDER BY seq",
                )
                .bind(&call_id)
                .fetch_all(&mut *conn)
                .await?;
            let turns = turns
                .into_iter()
                .map(|(seq, speaker, at, ct, intent, emotion)| {
                    let seq_u = u32::try_from(seq).unwrap_or(u32::MAX);
                    Ok(ExportedTurn {
                        text: self.open_text_for(
                            key.as_ref(),
                            "call_turns",
                            "text",
                            &crate::calls::turn_key(&call_id, seq_u),
                            &ct,
                        )?,
                        seq,
                        speaker,
                        at,
                        intent,
                        emotion,
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            calls.push(ExportedCall {
                campaign: (campaign != 0).then_some(campaign),
                started_at: started,
                ended_at: ended,
                outcome,
                business_outcome: business,
                duration_s: duration,
                recording: recording.is_some(),
                turns,
                call_id,
            });
        }
        let msgs: Vec<MessageExportRow> = sqlx::query_as(
            "SELECT key, direction, channel, template, status, created_at, text_ct FROM messages \
             WHERE customer_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *conn)
        .await?;
        let messages = msgs
            .into_iter()
            .map(
                |(mkey, direction, channel, template, status, created, ct)| {
                    Ok(ExportedMessage {
                        text: self.open_text_for(key.as_ref(), "messages", "text", &mkey, &ct)?,
                        direction,
                        channel,
                        template,
                        status,
                        created_at: created,
                    })
                },
            )
            .collect::<Result<Vec<_>, StoreError>>()?;
        let voiceprints: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM voiceprints WHERE customer_id = ?")
                .bind(id.0)
                .fetch_one(&mut *conn)
                .await?;
        let evs: Vec<EventExportRow> =
            sqlx::query_as(
                "SELECT seq, at, type, campaign_id, call_id, body FROM events WHERE customer_id = ? ORDER BY id",
            )
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?;
        let events = evs
            .into_iter()
            .map(|(seq, at, kind, campaign, call, body)| ExportedEvent {
                body: serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body)),
                seq,
                at,
                kind,
                campaign,
                call,
            })
            .collect();
        Ok(Some(CustomerExport {
            exported_at: now,
            customer,
            do_not_call,
            calls,
            messages,
            voiceprints: voiceprints as u64,
            events,
        }))
    }

    /// [`Store::customer_export`] with the reveal on the audit chain, appended
    /// before the data is returned.
    pub async fn customer_export_audited(
        &self,
        id: CustomerId,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<CustomerExport>, StoreError> {
        if self.customer(id).await?.is_none() {
            return Ok(None);
        }
        self.append_events(&[Event {
            at: now,
            customer: Some(id),
            campaign: None,
            call: None,
            kind: EventKind::PiiRevealed {
                actor: actor.into(),
                field: "export".into(),
                reason: reason.into(),
            },
        }])
        .await?;
        self.customer_export(id, now).await
    }

    /// The recordings of one of `id`'s calls as WAV files (`(file stem, bytes)`):
    /// the call's own and any other leg's. For `export --out`.
    pub async fn customer_recordings(
        &self,
        id: CustomerId,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let calls: Vec<String> = sqlx::query_scalar(
            "SELECT call_id FROM calls WHERE customer_id = ? AND recording IS NOT NULL ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for call in calls {
            let cid = waihu_core::CallId(call.clone());
            if let Some(wav) = self.call_recording(&cid).await? {
                out.push((call.clone(), wav));
            }
            if let Some(wav) = self.leg_recording(&cid, "agent").await? {
                out.push((format!("{call}#agent"), wav));
            }
        }
        Ok(out)
    }

    /// Erase customer `id`: destroy their data key (crypto-shredding), delete
    /// their row, voiceprints and recordings, and unlink their calls, attempts
    /// and messages (kept for counts, their words now unreadable). Values
    /// sealed before customers had keys are first re-sealed under the key, so
    /// they are shredded with it. The number stays on any do-not-call list.
    /// Recorded as `customer_erased` on the audit chain, in the same transaction.
    pub async fn customer_erase(
        &self,
        id: CustomerId,
        actor: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<ErasureReport, StoreError> {
        let Some(customer) = self.customer(id).await? else {
            let erased: Option<String> =
                sqlx::query_scalar("SELECT erased_at FROM erased_customers WHERE customer_id = ?")
                    .bind(id.0)
                    .fetch_optional(&self.pool)
                    .await?;
            return Err(StoreError::Invalid(match erased {
                Some(at) => format!("customer {} was already erased at {at}", id.0),
                None => format!("no customer {}", id.0),
            }));
        };
        let idx = self.vault.blind_index(&customer.phone);
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let key = self
            .data_key_for_write(&mut tx, Some(id.0), now)
            .await?
            .expect("a customer always gets a key");
        let call_ids: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT call_id, recording FROM calls WHERE customer_id = ? ORDER BY id",
        )
        .bind(id.0)
        .fetch_all(&mut *tx)
        .await?;
        // Turns sealed by the vault (before v17): re-seal under the key first.
        let mut turns = 0u64;
        for (call_id, _) in &call_ids {
            let rows: Vec<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, text_ct FROM call_turns WHERE call_id = ?")
                    .bind(call_id)
                    .fetch_all(&mut *tx)
                    .await?;
            turns += rows.len() as u64;
            for (seq, ct) in rows {
                if ct.first() != Some(&1) {
                    continue;
                }
                let rk = crate::calls::turn_key(call_id, u32::try_from(seq).unwrap_or(u32::MAX));
                let pt = self.vault.open_bytes("call_turns", "text", &rk, &ct)?;
                sqlx::query("UPDATE call_turns SET text_ct = ? WHERE call_id = ? AND seq = ?")
                    .bind(key.seal_bytes("call_turns", "text", &rk, &pt))
                    .bind(call_id)
                    .bind(seq)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let msgs: Vec<(i64, String, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT id, key, phone_ct, text_ct FROM messages WHERE customer_id = ?")
                .bind(id.0)
                .fetch_all(&mut *tx)
                .await?;
        for (mid, mkey, phone_ct, text_ct) in &msgs {
            let reseal = |column: &str, ct: &[u8]| -> Result<Vec<u8>, StoreError> {
                Ok(if ct.first() == Some(&1) {
                    let pt = self.vault.open_bytes("messages", column, mkey, ct)?;
                    key.seal_bytes("messages", column, mkey, &pt)
                } else {
                    ct.to_vec()
                })
            };
            let (p, t) = (reseal("phone", phone_ct)?, reseal("text", text_ct)?);
            sqlx::query(
                "UPDATE messages SET phone_ct = ?, text_ct = ?, phone_idx = '', customer_id = NULL, \
                 status = CASE WHEN status = 'queued' THEN 'failed' ELSE status END, \
                 error = CASE WHEN status = 'queued' THEN 'customer erased' ELSE error END \
                 WHERE id = ?",
            )
            .bind(p)
            .bind(t)
            .bind(mid)
            .execute(&mut *tx)
            .await?;
        }
        let voiceprints = sqlx::query("DELETE FROM voiceprints WHERE customer_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM voice_sightings WHERE customer_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE calls SET recording = NULL WHERE customer_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE attempts SET customer_id = NULL WHERE customer_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        // The shredding itself.
        sqlx::query("DELETE FROM customer_keys WHERE customer_id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO erased_customers (customer_id, erased_at) VALUES (?, ?)")
            .bind(id.0)
            .bind(ts(now))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM customers WHERE id = ?")
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        let do_not_call: Vec<String> =
            sqlx::query_scalar("SELECT scope FROM dnc WHERE phone_idx = ? ORDER BY scope")
                .bind(&idx)
                .fetch_all(&mut *tx)
                .await?;
        // Recording files: the call's own and other legs'. Deleted after the
        // commit (a failed erase keeps them); already unreadable once it commits.
        let mut files = Vec::new();
        for (call_id, rec) in &call_ids {
            if let Some(name) = rec {
                files.push(name.clone());
            }
            files.push(recording_file_name(&format!("{call_id}#agent")));
        }
        let mut report = ErasureReport {
            customer: id,
            calls: call_ids.len() as u64,
            turns,
            recordings: 0,
            messages: msgs.len() as u64,
            voiceprints,
            do_not_call,
        };
        insert_events(
            &mut tx,
            &self.audit,
            &[Event {
                at: now,
                customer: Some(id),
                campaign: None,
                call: None,
                kind: EventKind::CustomerErased {
                    actor: actor.into(),
                    reason: reason.into(),
                    calls: report.calls,
                    turns: report.turns,
                    recordings: files.len() as u64,
                    messages: report.messages,
                    voiceprints: report.voiceprints,
                    on_dnc: !report.do_not_call.is_empty(),
                },
            }],
        )
        .await?;
        self.commit(tx).await?;
        let dir = self.data_dir.join(crate::RECORDINGS_DIR);
        for f in files {
            match std::fs::remove_file(dir.join(&f)) {
                Ok(()) => report.recordings += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(file = %f, error = %e, "erased customer's recording not deleted (it is unreadable: its key is gone)")
                }
            }
        }
        self.truncate_wal().await;
        Ok(report)
    }

    /// Checkpoint the write-ahead log into the database file and truncate it,
    /// so old page images (a destroyed key, a deleted row) do not linger in it.
    /// Best effort: a reader holding an old snapshot keeps the log until the
    /// next checkpoint.
    pub async fn truncate_wal(&self) {
        for _ in 0..20 {
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await
            {
                Ok((0, _, _)) => return,
                Ok(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
                Err(e) => {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                    return;
                }
            }
        }
        tracing::warn!("WAL not truncated: readers kept it busy; the next checkpoint will");
    }

    /// Remove recordings of calls that ended before `recordings_before` and the
    /// words of turns of calls that ended before `transcripts_before` (intents,
    /// timings and voice features stay). Recorded as `retention_applied`.
    pub async fn apply_retention(
        &self,
        recordings_before: Option<DateTime<Utc>>,
        transcripts_before: Option<DateTime<Utc>>,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<RetentionReport, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut files = Vec::new();
        let mut recordings = 0;
        if let Some(before) = recordings_before {
            let rows: Vec<(String, String)> = sqlx::query_as(
                "SELECT call_id, recording FROM calls WHERE recording IS NOT NULL AND ended_at IS NOT NULL AND ended_at < ?",
            )
            .bind(ts(before))
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE calls SET recording = NULL WHERE recording IS NOT NULL AND ended_at IS NOT NULL AND ended_at < ?",
            )
            .bind(ts(before))
            .execute(&mut *tx)
            .await?;
            recordings = rows.len() as u64;
            for (call_id, name) in rows {
                files.push(name);
                files.push(recording_file_name(&format!("{call_id}#agent")));
            }
        }
        let mut transcripts = 0;
        if let Some(before) = transcripts_before {
            transcripts = sqlx::query(
                "UPDATE call_turns SET text_ct = x'' WHERE length(text_ct) > 0 AND call_id IN \
                 (SELECT call_id FROM calls WHERE ended_at IS NOT NULL AND ended_at < ?)",
            )
            .bind(ts(before))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        let report = RetentionReport {
            recordings,
            transcripts,
        };
        if report.recordings > 0 || report.transcripts > 0 {
            insert_events(
                &mut tx,
                &self.audit,
                &[Event {
                    at: now,
                    customer: None,
                    campaign: None,
                    call: None,
                    kind: EventKind::RetentionApplied {
                        actor: actor.into(),
                        recordings_before: recordings_before.map(ts),
                        transcripts_before: transcripts_before.map(ts),
                        recordings: report.recordings,
                        transcripts: report.transcripts,
                    },
                }],
            )
            .await?;
        }
        self.commit(tx).await?;
        let dir = self.data_dir.join(crate::RECORDINGS_DIR);
        for f in files {
            if let Err(e) = std::fs::remove_file(dir.join(&f)) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %f, error = %e, "recording past retention not deleted");
                }
            }
        }
        if report.recordings > 0 || report.transcripts > 0 {
            self.truncate_wal().await;
        }
        Ok(report)
    }

    /// When each customer id was erased (for `waihu customer list --erased`).
    pub async fn erased_customers(&self) -> Result<BTreeMap<i64, DateTime<Utc>>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT customer_id, erased_at FROM erased_customers ORDER BY customer_id",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, at)| parse_ts(&at).map(|t| (id, t)))
            .collect())
    }
}
