//! Calls as the runtime places them: a row per call that moves through
//! dialing → ringing → talking → ended, its transcript (each turn's words
//! sealed), its recording (a sealed WAV file under `data_dir/recordings/`),
//! and the reports over them: the funnel by script state, intents × states,
//! callee voice features by segment and hour.
//!
//! Reports read rollups kept in the same transaction as the write that
//! changes them (`funnel_rollup` at [`Store::call_finished`], `voice_rollup`
//! at [`Store::call_turn`], `intent_rollup` by a trigger on `call_turn`
//! events), so a page costs the same at a thousand calls or a million. The
//! `*_from_raw` twins compute the same figures from the raw tables: the
//! benchmark baseline and the check that the rollups stay true.
use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::SqliteConnection;
use waihu_core::{
    kpi, CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, Speaker, Turn,
    VoiceFeatures,
};

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

/// Business outcomes that count as a drop when a path ends in a state (a
/// missing outcome counts too): the callee left before the script decided.
pub const DROP_OUTCOMES: [&str; 2] = ["", "hangup"];

/// Callee turns whose text sentiment (-1..1) is above this are positive,
/// below its negative negative; the rest neutral. Defined with the other KPIs.
pub use waihu_core::kpi::SENTIMENT_BAND;

/// Directory under the data directory that holds sealed recordings.
pub const RECORDINGS_DIR: &str = "recordings";

/// A call the runtime is about to dial.
#[derive(Debug, Clone, PartialEq)]
pub struct CallStart {
    pub call_id: CallId,
    pub campaign: Option<CampaignId>,
    pub customer: Option<CustomerId>,
    /// Script name (file stem, e.g. `order_confirmation.en`).
    pub script: String,
    pub lang: String,
    pub at: DateTime<Utc>,
}

/// The transcript turn under its old name: the one core [`Turn`].
pub type TurnRecord = Turn;

/// How a call ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CallFinish {
    pub at: DateTime<Utc>,
    pub outcome: CallOutcome,
    pub sip_status: Option<u16>,
    pub duration_s: f64,
    pub business_outcome: Option<String>,
    pub level: Option<String>,
    /// Script states in visiting order.
    pub path: Vec<String>,
    /// Parallel to `path`: the A/B prompt variant id played on entering each
    /// state (None where the state has one prompt).
    pub path_variants: Vec<Option<String>>,
    /// A WAV file's bytes; stored sealed under `data_dir/recordings/`.
    pub recording: Option<Vec<u8>>,
    /// How the media went (None: no media, or not measured).
    pub quality: Option<CallQuality>,
}

/// The media quality of one call: what we received (RTP sequence numbers and arrival times)
/// and what the peer reported about our audio over RTCP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
pub struct CallQuality {
    pub codec: Option<String>,
    pub packets_sent: u64,
    pub packets_received: u64,
    /// Lost by sequence numbers (received direction).
    pub lost: u64,
    /// Arrived too late for playout.
    pub late: u64,
    /// Interarrival jitter of what we received, ms.
    pub jitter_ms: f64,
    pub rtcp_sent: u64,
    pub rtcp_received: u64,
    /// The peer's last RTCP report about our audio: loss in its last interval (%),
    /// cumulative loss, jitter (ms). None without RTCP from the peer.
    pub peer_loss_pct: Option<f64>,
    pub peer_lost: Option<i64>,
    pub peer_jitter_ms: Option<f64>,
    /// Round trip measured through RTCP, ms.
    pub rtt_ms: Option<f64>,
}

/// A call as lists show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallSummary {
    pub call_id: CallId,
    pub campaign: Option<CampaignId>,
    pub customer: Option<CustomerId>,
    /// The customer's E.164 number in clear: mask it before showing.
    #[serde(skip)]
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub script: String,
    pub lang: String,
    /// dialing | ringing | talking | ended
    pub status: String,
    /// Current (or last) script state.
    pub node: Option<String>,
    /// Last emotion heard.
    pub emotion: Option<String>,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub sip_status: Option<u16>,
    pub duration_s: Option<f64>,
    pub business_outcome: Option<String>,
    pub level: Option<String>,
    pub turns: u32,
    pub has_recording: bool,
}

/// One ended attempt of the call history ([`Store::attempt_history`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PastAttemptRow {
    /// The call's row id (page with it).
    pub id: i64,
    pub customer: CustomerId,
    /// When it was placed.
    pub at: DateTime<Utc>,
    pub outcome: CallOutcome,
}

/// A call with its transcript (opened) and path.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallDetail {
    pub summary: CallSummary,
    pub path: Vec<String>,
    /// Parallel to `path`: the A/B prompt variant played in each state.
    pub path_variants: Vec<Option<String>>,
    pub turns: Vec<Turn>,
    pub quality: Option<CallQuality>,
}

/// One script state in the funnel. `entered = continued + dropped + completed`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunnelRow {
    pub state: String,
    /// Calls whose path reached this state (each call once).
    pub entered: u64,
    /// … and went on to another state.
    pub continued: u64,
    /// … and ended here without a business outcome or with `hangup`.
    pub dropped: u64,
    /// … and ended here with a business outcome.
    pub completed: u64,
    /// Mean first position in the paths (0 = start state); the sort key.
    pub avg_position: f64,
}

/// Callee voice features over a group of turns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VoiceRow {
    /// `segment` or `hour`.
    pub by: String,
    /// The segment name (`""` = none) or UTC hour `YYYY-MM-DDTHH`.
    pub key: String,
    pub turns: u64,
    /// Turns that carried voice features (the averages are over these).
    pub with_features: u64,
    pub avg_rate_sps: Option<f64>,
    pub avg_volume_dbfs: Option<f64>,
    pub avg_pitch_hz: Option<f64>,
    pub avg_pause_ratio: Option<f64>,
    /// Turns per emotion (`""` = none detected).
    pub emotions: BTreeMap<String, u64>,
    /// Turns with a text sentiment score, and their mean (-1..1).
    pub with_sentiment: u64,
    pub avg_sentiment: Option<f64>,
    /// Turns scoring above / below ±[`SENTIMENT_BAND`].
    pub positive: u64,
    pub negative: u64,
    /// 满意度: positive / (positive + negative).
    pub satisfaction: Option<f64>,
}

const LIVE_STATUSES: [&str; 3] = ["dialing", "ringing", "talking"];

fn campaign_key(c: Option<CampaignId>) -> i64 {
    c.map_or(0, |c| c.0)
}

fn is_drop(business_outcome: Option<&str>) -> bool {
    business_outcome.is_none_or(|o| DROP_OUTCOMES.contains(&o))
}

/// The funnel contribution of one finished path: per distinct state in first
/// visiting order, (state, first position, continued, dropped, completed).
pub(crate) fn funnel_steps<'a>(
    path: &'a [String],
    business_outcome: Option<&str>,
) -> Vec<(&'a str, usize, bool, bool, bool)> {
    let Some(last) = path.last() else {
        return Vec::new();
    };
    let drop = is_drop(business_outcome);
    let mut out: Vec<(&str, usize, bool, bool, bool)> = Vec::new();
    for (pos, s) in path.iter().enumerate() {
        if out.iter().any(|(seen, ..)| *seen == s.as_str()) {
            continue;
        }
        let terminal = s == last;
        out.push((s, pos, !terminal, terminal && drop, terminal && !drop));
    }
    out
}

#[derive(sqlx::FromRow)]
struct SummaryRow {
    call_id: String,
    campaign_id: i64,
    customer_id: Option<i64>,
    phone_idx: Option<String>,
    phone_ct: Option<Vec<u8>>,
    key_wrapped: Option<Vec<u8>>,
    segment: Option<String>,
    script: String,
    lang: String,
    status: String,
    node: Option<String>,
    emotion: Option<String>,
    started_at: String,
    updated_at: String,
    ended_at: Option<String>,
    outcome: Option<String>,
    sip_status: Option<i64>,
    duration_s: Option<f64>,
    business_outcome: Option<String>,
    level: Option<String>,
    turns: i64,
    recording: Option<String>,
    path: String,
}

const SELECT_SUMMARY: &str = "SELECT c.call_id, c.campaign_id, c.customer_id, cu.phone_idx, cu.phone_ct, ck.wrapped AS key_wrapped, cu.segment, \
     c.script, c.lang, c.status, c.node, c.emotion, c.started_at, c.updated_at, c.ended_at, c.outcome, \
     c.sip_status, c.duration_s, c.business_outcome, c.level, c.turns, c.recording, c.path \
     FROM calls c LEFT JOIN customers cu ON cu.id = c.customer_id LEFT JOIN customer_keys ck ON ck.customer_id = c.customer_id";

#[derive(sqlx::FromRow)]
struct TurnRow {
    seq: i64,
    speaker: String,
    state: String,
    at: String,
    start_ms: i64,
    end_ms: i64,
    text_ct: Vec<u8>,
    intent: Option<String>,
    confidence: Option<f64>,
    emotion: Option<String>,
    sentiment: Option<f64>,
    rate_sps: Option<f64>,
    volume_dbfs: Option<f64>,
    pitch_hz: Option<f64>,
    pause_ratio: Option<f64>,
    barge_in: bool,
    latency_ms: Option<f64>,
}

impl Store {
    fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join(RECORDINGS_DIR)
    }

    fn open_summary(&self, r: SummaryRow) -> Result<(CallSummary, String), StoreError> {
        let SummaryRow {
            call_id,
            campaign_id: campaign,
            customer_id: customer,
            phone_idx,
            phone_ct,
            key_wrapped,
            segment,
            script,
            lang,
            status,
            node,
            emotion,
            started_at: started,
            updated_at: updated,
            ended_at: ended,
            outcome,
            sip_status,
            duration_s,
            business_outcome,
            level,
            turns,
            recording,
            path,
        } = r;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "calls",
            id: 0,
            reason: format!("call {call_id}: {reason}"),
        };
        let phone = match (phone_idx, phone_ct) {
            (Some(idx), Some(ct)) => {
                let key = key_wrapped
                    .map(|w| self.vault.unwrap_data_key(&w))
                    .transpose()?;
                Some(
                    self.vault
                        .open_with(key.as_ref(), "customers", "phone", &idx, &ct)?,
                )
            }
            _ => None,
        };
        let time = |s: &str| parse_ts(s).ok_or_else(|| corrupt(format!("timestamp '{s}'")));
        let summary = CallSummary {
            campaign: (campaign != 0).then_some(CampaignId(campaign)),
            customer: customer.map(CustomerId),
            phone,
            segment,
            script,
            lang,
            status,
            node,
            emotion,
            started_at: time(&started)?,
            updated_at: time(&updated)?,
            ended_at: ended.as_deref().map(time).transpose()?,
            outcome,
            sip_status: sip_status.and_then(|s| u16::try_from(s).ok()),
            duration_s,
            business_outcome,
            level,
            turns: u32::try_from(turns).unwrap_or(u32::MAX),
            has_recording: recording.is_some(),
            call_id: CallId(call_id),
        };
        Ok((summary, path))
    }

    /// Record a call about to be dialed (status `dialing`). Calling it again
    /// with the same call id changes nothing.
    pub async fn call_started(&self, c: &CallStart) -> Result<(), StoreError> {
        self.call_started_with(c, &[]).await
    }

    /// [`Store::call_started`] and `events` (e.g. `attempt_started`) in one
    /// transaction. A repeated call id appends nothing.
    pub async fn call_started_with(
        &self,
        c: &CallStart,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        // A campaign that loaded its contacts before an erasure must not call them.
        if let Some(customer) = c.customer {
            let erased: Option<String> =
                sqlx::query_scalar("SELECT erased_at FROM erased_customers WHERE customer_id = ?")
                    .bind(customer.0)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some(at) = erased {
                return Err(StoreError::Invalid(format!(
                    "customer {} was erased at {at}: not called",
                    customer.0
                )));
            }
        }
        if insert_call(&mut tx, c).await? && !events.is_empty() {
            insert_events(&mut tx, &self.audit, events).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Move a live call to `status` (`dialing`, `ringing` or `talking`),
    /// optionally noting the script state it is in and the last emotion
    /// heard. An ended call is left as it is.
    pub async fn call_progress(
        &self,
        call_id: &CallId,
        status: &str,
        node: Option<&str>,
        emotion: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let call_id = call_id.as_str();
        if !LIVE_STATUSES.contains(&status) {
            return Err(StoreError::Invalid(format!(
                "call {call_id}: status '{status}' is not one of dialing, ringing, talking (call_finished ends a call)"
            )));
        }
        let n = sqlx::query(
            "UPDATE calls SET status = ?, node = COALESCE(?, node), emotion = COALESCE(?, emotion), updated_at = ? \
             WHERE call_id = ? AND status <> 'ended'",
        )
        .bind(status)
        .bind(node)
        .bind(emotion)
        .bind(ts(at))
        .bind(call_id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 {
            self.require_call(call_id).await?;
        }
        Ok(())
    }

    async fn require_call(&self, call_id: &str) -> Result<(), StoreError> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM calls WHERE call_id = ?")
            .bind(call_id)
            .fetch_optional(&self.pool)
            .await?;
        match exists {
            Some(_) => Ok(()),
            None => Err(unknown_call(call_id)),
        }
    }

    /// Store one turn (its words sealed). A callee turn also appends a
    /// `call_turn` event (without the words) in the same transaction, which
    /// feeds the intents × states heat map; its voice features feed the
    /// voice report. Storing the same (call, seq) again changes nothing.
    pub async fn call_turn(&self, call_id: &CallId, t: &Turn) -> Result<(), StoreError> {
        let call_id = call_id.as_str();
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_turn(self, &mut tx, call_id, t).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// The call ended: outcome, business result, path and recording. The
    /// funnel rollup is updated in the same transaction. Finishing an ended
    /// call again changes nothing.
    pub async fn call_finished(&self, call_id: &CallId, f: &CallFinish) -> Result<(), StoreError> {
        self.call_finished_with(call_id, f, &[]).await
    }

    /// [`Store::call_finished`] and `events` (e.g. `attempt_ended`,
    /// `conversation_ended`) in one transaction. Finishing an ended call
    /// again appends nothing.
    pub async fn call_finished_with(
        &self,
        call_id: &CallId,
        f: &CallFinish,
        events: &[Event],
    ) -> Result<(), StoreError> {
        let call_id = call_id.as_str();
        let recording = match &f.recording {
            Some(wav) => {
                let key = self.call_key_for_write(call_id, f.at).await?;
                Some(self.write_recording(key.as_ref(), call_id, wav)?)
            }
            None => None,
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if finish_call(&mut tx, call_id, f, recording.as_deref()).await? && !events.is_empty() {
            insert_events(&mut tx, &self.audit, events).await?;
        }
        self.commit(tx).await?;
        Ok(())
    }

    /// Seal a WAV into `recordings/`, written to a temporary name and renamed
    /// so a crash never leaves half a file under the real name.
    fn write_recording(
        &self,
        key: Option<&waihu_privacy::DataKey>,
        call_id: &str,
        wav: &[u8],
    ) -> Result<String, StoreError> {
        let dir = self.recordings_dir();
        let io = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source: std::io::Error| StoreError::File { path, source }
        };
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let name = recording_file_name(call_id);
        let sealed = self.seal_for(key, "calls", "recording", call_id, wav);
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, sealed).map_err(io(&tmp))?;
        std::fs::rename(&tmp, dir.join(&name)).map_err(io(&tmp))?;
        Ok(name)
    }

    /// Calls not ended yet, oldest first.
    pub async fn calls_live(&self) -> Result<Vec<CallSummary>, StoreError> {
        // The partial index holds only live calls, but without table
        // statistics SQLite would rather scan every call than use it for `<>`.
        let select = SELECT_SUMMARY.replace("FROM calls c", "FROM calls c INDEXED BY calls_live");
        let rows: Vec<SummaryRow> =
            sqlx::query_as(&format!("{select} WHERE c.status <> 'ended' ORDER BY c.id"))
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|r| self.open_summary(r).map(|(s, _)| s))
            .collect()
    }

    /// Calls newest first (optionally of one campaign), `limit` of them,
    /// starting after the call `before` (the previous page's last call id).
    pub async fn calls_list(
        &self,
        campaign: Option<CampaignId>,
        limit: u32,
        before: Option<&CallId>,
    ) -> Result<Vec<CallSummary>, StoreError> {
        let before_id: i64 = match before {
            Some(b) => sqlx::query_scalar("SELECT id FROM calls WHERE call_id = ?")
                .bind(b.as_str())
                .fetch_optional(&self.pool)
                .await?
                .ok_or_else(|| unknown_call(b.as_str()))?,
            None => i64::MAX,
        };
        let rows: Vec<SummaryRow> = match campaign {
            Some(c) => {
                sqlx::query_as(&format!(
                "{SELECT_SUMMARY} WHERE c.campaign_id = ? AND c.id < ? ORDER BY c.id DESC LIMIT ?"
            ))
                .bind(c.0)
                .bind(before_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as(&format!(
                    "{SELECT_SUMMARY} WHERE c.id < ? ORDER BY c.id DESC LIMIT ?"
                ))
                .bind(before_id)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter()
            .map(|r| self.open_summary(r).map(|(s, _)| s))
            .collect()
    }

    /// Ended attempts on known customers with id greater than `after`, oldest
    /// first, at most `limit`: the history a planner's answer model starts from.
    pub async fn attempt_history(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<PastAttemptRow>, StoreError> {
        let rows: Vec<(i64, i64, String, String)> = sqlx::query_as(
            "SELECT id, customer_id, started_at, outcome FROM calls \
             WHERE id > ? AND customer_id IS NOT NULL AND outcome IS NOT NULL ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, customer, at, outcome)| {
                let corrupt = |reason: String| StoreError::Corrupt {
                    table: "calls",
                    id,
                    reason,
                };
                Ok(PastAttemptRow {
                    id,
                    customer: CustomerId(customer),
                    at: parse_ts(&at).ok_or_else(|| corrupt(format!("started_at '{at}'")))?,
                    outcome: serde_json::from_value(serde_json::Value::String(outcome.clone()))
                        .map_err(|_| corrupt(format!("outcome '{outcome}'")))?,
                })
            })
            .collect()
    }

    /// Number of stored calls (optionally of one campaign).
    pub async fn calls_count(&self, campaign: Option<CampaignId>) -> Result<u64, StoreError> {
        let n: i64 = match campaign {
            Some(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM calls WHERE campaign_id = ?")
                    .bind(c.0)
                    .fetch_one(&self.pool)
                    .await?
            }
            None => {
                sqlx::query_scalar("SELECT COUNT(*) FROM calls")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// One call with its path and transcript (words opened).
    pub async fn call_detail(&self, call_id: &CallId) -> Result<Option<CallDetail>, StoreError> {
        let call_id = call_id.as_str();
        let row: Option<SummaryRow> =
            sqlx::query_as(&format!("{SELECT_SUMMARY} WHERE c.call_id = ?"))
                .bind(call_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (summary, path) = self.open_summary(row)?;
        let path: Vec<String> = serde_json::from_str(&path).map_err(|e| StoreError::Corrupt {
            table: "calls",
            id: 0,
            reason: format!("call {call_id}: path: {e}"),
        })?;
        let (variants, quality): (String, Option<String>) =
            sqlx::query_as("SELECT path_variants, quality FROM calls WHERE call_id = ?")
                .bind(call_id)
                .fetch_one(&self.pool)
                .await?;
        let quality: Option<CallQuality> = quality
            .map(|q| serde_json::from_str(&q))
            .transpose()
            .map_err(|e| StoreError::Corrupt {
                table: "calls",
                id: 0,
                reason: format!("call {call_id}: quality: {e}"),
            })?;
        let path_variants: Vec<Option<String>> =
            serde_json::from_str(&variants).map_err(|e| StoreError::Corrupt {
                table: "calls",
                id: 0,
                reason: format!("call {call_id}: path_variants: {e}"),
            })?;
        let rows: Vec<TurnRow> = sqlx::query_as(
            "SELECT seq, speaker, state, at, start_ms, end_ms, text_ct, intent, confidence, emotion, sentiment, \
             rate_sps, volume_dbfs, pitch_hz, pause_ratio, barge_in, latency_ms \
             FROM call_turns WHERE call_id = ? ORDER BY seq",
        )
        .bind(call_id)
        .fetch_all(&self.pool)
        .await?;
        let key = {
            let mut conn = self.pool.acquire().await?;
            self.data_key(&mut conn, summary.customer.map(|c| c.0))
                .await?
        };
        let turns = rows
            .into_iter()
            .map(|r| self.open_turn(key.as_ref(), call_id, r))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(CallDetail {
            summary,
            path,
            path_variants,
            turns,
            quality,
        }))
    }

    fn open_turn(
        &self,
        key: Option<&waihu_privacy::DataKey>,
        call_id: &str,
        r: TurnRow,
    ) -> Result<Turn, StoreError> {
        let TurnRow {
            seq,
            speaker,
            state,
            at,
            start_ms,
            end_ms,
            text_ct,
            intent,
            confidence,
            emotion,
            sentiment,
            rate_sps: rate,
            volume_dbfs: volume,
            pitch_hz: pitch,
            pause_ratio: pause,
            barge_in,
            latency_ms,
        } = r;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "call_turns",
            id: seq,
            reason: format!("call {call_id}: {reason}"),
        };
        let seq = u32::try_from(seq).map_err(|_| corrupt(format!("seq {seq}")))?;
        let speaker = match speaker.as_str() {
            "bot" => Speaker::Bot,
            "callee" => Speaker::Callee,
            other => return Err(corrupt(format!("speaker '{other}'"))),
        };
        let text =
            self.open_text_for(key, "call_turns", "text", &turn_key(call_id, seq), &text_ct)?;
        let features = match (rate, volume, pitch, pause) {
            (Some(r), Some(v), Some(p), Some(q)) => Some(VoiceFeatures {
                rate_sps: r as f32,
                volume_dbfs: v as f32,
                pitch_hz: p as f32,
                pause_ratio: q as f32,
            }),
            _ => None,
        };
        Ok(Turn {
            seq,
            speaker,
            state,
            at: parse_ts(&at).ok_or_else(|| corrupt(format!("at '{at}'")))?,
            start_ms: u64::try_from(start_ms).unwrap_or(0),
            end_ms: u64::try_from(end_ms).unwrap_or(0),
            text,
            intent,
            confidence: confidence.map(|c| c as f32),
            emotion,
            sentiment: sentiment.map(|s| s as f32),
            features,
            barge_in,
            latency_ms,
        })
    }

    /// The call's recording as WAV bytes (opened). The caller audits access.
    pub async fn call_recording(&self, call_id: &CallId) -> Result<Option<Vec<u8>>, StoreError> {
        let call_id = call_id.as_str();
        let name: Option<Option<String>> =
            sqlx::query_scalar("SELECT recording FROM calls WHERE call_id = ?")
                .bind(call_id)
                .fetch_optional(&self.pool)
                .await?;
        let Some(Some(name)) = name else {
            return Ok(None);
        };
        let path = self.recordings_dir().join(&name);
        let sealed = std::fs::read(&path).map_err(|source| StoreError::File {
            path: path.display().to_string(),
            source,
        })?;
        let key = self.call_key(call_id).await?;
        Ok(Some(self.vault.open_bytes_with(
            key.as_ref(),
            "calls",
            "recording",
            call_id,
            &sealed,
        )?))
    }

    /// The data key of the customer a call was to (None: no customer, or erased).
    async fn call_key(&self, call_id: &str) -> Result<Option<waihu_privacy::DataKey>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let customer: Option<Option<i64>> =
            sqlx::query_scalar("SELECT customer_id FROM calls WHERE call_id = ?")
                .bind(call_id)
                .fetch_optional(&mut *conn)
                .await?;
        self.data_key(&mut conn, customer.flatten()).await
    }

    /// The key to seal a call's personal data under (see [`Store::data_key_for_write`]).
    async fn call_key_for_write(
        &self,
        call_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<waihu_privacy::DataKey>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let customer: Option<Option<i64>> =
            sqlx::query_scalar("SELECT customer_id FROM calls WHERE call_id = ?")
                .bind(call_id)
                .fetch_optional(&mut *tx)
                .await?;
        let key = self
            .data_key_for_write(&mut tx, customer.flatten(), now)
            .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Seals another leg's recording of a call beside the call's own (the
    /// agent leg of a warm transfer: `leg` = `agent`). Bound to `call_id#leg`.
    pub async fn put_leg_recording(
        &self,
        call_id: &CallId,
        leg: &str,
        wav: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let key = self.call_key_for_write(call_id.as_str(), now).await?;
        self.write_recording(key.as_ref(), &format!("{}#{leg}", call_id.as_str()), wav)
            .map(|_| ())
    }

    /// A leg's recording stored by [`Store::put_leg_recording`] (opened); None
    /// when there is none. The caller audits access.
    pub async fn leg_recording(
        &self,
        call_id: &CallId,
        leg: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let key = format!("{}#{leg}", call_id.as_str());
        let path = self.recordings_dir().join(recording_file_name(&key));
        let sealed = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::File {
                    path: path.display().to_string(),
                    source,
                })
            }
        };
        let data_key = self.call_key(call_id.as_str()).await?;
        Ok(Some(self.vault.open_bytes_with(
            data_key.as_ref(),
            "calls",
            "recording",
            &key,
            &sealed,
        )?))
    }

    /// The funnel of `script` (optionally one campaign) from the rollup, in
    /// path order.
    pub async fn funnel(
        &self,
        campaign: Option<CampaignId>,
        script: &str,
    ) -> Result<Vec<FunnelRow>, StoreError> {
        let rows: Vec<FunnelRaw> = sqlx::query_as(
            "SELECT state, SUM(entered), SUM(continued), SUM(dropped), SUM(completed), SUM(pos_sum) \
             FROM funnel_rollup WHERE script = ? AND (? IS NULL OR campaign_id = ?) GROUP BY state",
        )
        .bind(script)
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(funnel_rows(rows))
    }

    /// [`Store::funnel`] computed from the paths of the stored calls (no
    /// rollup): the benchmark baseline and the rollup's cross-check.
    pub async fn funnel_from_raw(
        &self,
        campaign: Option<CampaignId>,
        script: &str,
    ) -> Result<Vec<FunnelRow>, StoreError> {
        let rows: Vec<FunnelRaw> = sqlx::query_as(
            "WITH p AS ( \
               SELECT c.id, j.value AS state, MIN(CAST(j.key AS INTEGER)) AS pos, \
                      json_extract(c.path, '$[#-1]') AS last, \
                      (c.business_outcome IS NULL OR c.business_outcome IN ('', 'hangup')) AS drop_ \
               FROM calls c, json_each(c.path) j \
               WHERE c.status = 'ended' AND c.script = ? AND (? IS NULL OR c.campaign_id = ?) \
               GROUP BY c.id, j.value) \
             SELECT state, COUNT(*), SUM(state <> last), SUM(state = last AND drop_), \
                    SUM(state = last AND NOT drop_), SUM(pos) FROM p GROUP BY state",
        )
        .bind(script)
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(funnel_rows(rows))
    }

    /// Scripts that have funnel data, with their finished-call counts.
    pub async fn funnel_scripts(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        // Every call with a path enters its start state, so the busiest state
        // counts the calls (exactly, unless the start state changed over time).
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT script, MAX(e) FROM (SELECT script, state, SUM(entered) AS e FROM funnel_rollup \
             WHERE (? IS NULL OR campaign_id = ?) GROUP BY script, state) GROUP BY script ORDER BY script",
        )
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(s, n)| (s, u64::try_from(n).unwrap_or(0)))
            .collect())
    }

    /// Callee intents per script state: (state, intent, turns), sorted.
    pub async fn intent_heatmap(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT state, intent, SUM(n) FROM intent_rollup WHERE (? IS NULL OR campaign_id = ?) \
             GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(counts(rows))
    }

    /// [`Store::intent_heatmap`] from the raw transcript table (baseline).
    pub async fn intent_heatmap_from_raw(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<(String, String, u64)>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT t.state, COALESCE(t.intent, 'unknown'), COUNT(*) FROM call_turns t \
             JOIN calls c ON c.call_id = t.call_id \
             WHERE t.speaker = 'callee' AND (? IS NULL OR c.campaign_id = ?) GROUP BY 1, 2 ORDER BY 1, 2",
        )
        .bind(campaign.map(|c| c.0))
        .bind(campaign.map(|c| c.0))
        .fetch_all(&self.pool)
        .await?;
        Ok(counts(rows))
    }

    /// Callee voice features by segment, then by UTC hour.
    pub async fn voice_features(
        &self,
        campaign: Option<CampaignId>,
    ) -> Result<Vec<VoiceRow>, StoreError> {
        let mut out = Vec::new();
        for (by, col) in [("segment", "segment"), ("hour", "hour")] {
            let rows: Vec<VoiceRaw> = sqlx::query_as(&format!(
                "SELECT {col}, emotion, SUM(n), SUM(n_feat), TOTAL(sum_rate), TOTAL(sum_volume), TOTAL(sum_pitch), TOTAL(sum_pause), \
                 SUM(n_sent), TOTAL(sum_sent), SUM(n_pos), SUM(n_neg) \
                 FROM voice_rollup WHERE (? IS NULL OR campaign_id = ?) GROUP BY 1, 2 ORDER BY 1, 2"
            ))
            .bind(campaign.map(|c| c.0))
            .bind(campaign.map(|c| c.0))
            .fetch_all(&self.pool)
            .await?;
            out.extend(voice_rows(by, rows));
        }
        Ok(out)
    }

    /// Load many finished calls at once (benchmarks, imports of history):
    /// the same writes as call_started + call_turn + call_finished, in
    /// transactions of `per_tx` calls. Recordings are not written.
    pub async fn calls_bulk(
        &self,
        calls: &[(CallStart, Vec<Turn>, CallFinish)],
        per_tx: usize,
    ) -> Result<(), StoreError> {
        for chunk in calls.chunks(per_tx.max(1)) {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            for (start, turns, finish) in chunk {
                insert_call(&mut tx, start).await?;
                for t in turns {
                    insert_turn(self, &mut tx, start.call_id.as_str(), t).await?;
                }
                finish_call(&mut tx, start.call_id.as_str(), finish, None).await?;
            }
            self.commit(tx).await?;
        }
        Ok(())
    }
}

type FunnelRaw = (String, i64, i64, i64, i64, i64);
type VoiceRaw = (
    String,
    String,
    i64,
    i64,
    f64,
    f64,
    f64,
    f64,
    i64,
    f64,
    i64,
    i64,
);

fn unknown_call(call_id: &str) -> StoreError {
    StoreError::Invalid(format!(
        "no call '{call_id}' is stored; record it with call_started first"
    ))
}

pub(crate) fn turn_key(call_id: &str, seq: u32) -> String {
    format!("{call_id}/{seq}")
}

/// A file name for a call id that may hold any character (SIP Call-IDs do):
/// safe characters kept, the rest hex-escaped, so names stay unique.
pub(crate) fn recording_file_name(call_id: &str) -> String {
    let mut s = String::with_capacity(call_id.len() + 10);
    for b in call_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            s.push(b as char);
        } else {
            s.push_str(&format!("~{b:02x}"));
        }
    }
    s.push_str(".wav.sealed");
    s
}

fn u(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn counts(rows: Vec<(String, String, i64)>) -> Vec<(String, String, u64)> {
    rows.into_iter().map(|(a, b, n)| (a, b, u(n))).collect()
}

fn funnel_rows(rows: Vec<FunnelRaw>) -> Vec<FunnelRow> {
    let mut out: Vec<FunnelRow> = rows
        .into_iter()
        .map(
            |(state, entered, continued, dropped, completed, pos_sum)| FunnelRow {
                state,
                entered: u(entered),
                continued: u(continued),
                dropped: u(dropped),
                completed: u(completed),
                avg_position: if entered > 0 {
                    pos_sum as f64 / entered as f64
                } else {
                    0.0
                },
            },
        )
        .collect();
    out.sort_by(|a, b| {
        a.avg_position
            .total_cmp(&b.avg_position)
            .then(b.entered.cmp(&a.entered))
            .then(a.state.cmp(&b.state))
    });
    out
}

fn voice_rows(by: &str, rows: Vec<VoiceRaw>) -> Vec<VoiceRow> {
    let mut out: Vec<VoiceRow> = Vec::new();
    // Per key: (rate, volume, pitch, pause, sentiment) sums.
    let mut sums: Vec<[f64; 5]> = Vec::new();
    for (key, emotion, n, n_feat, rate, volume, pitch, pause, n_sent, sent, pos, neg) in rows {
        if out.last().is_none_or(|r| r.key != key) {
            out.push(VoiceRow {
                by: by.into(),
                key,
                turns: 0,
                with_features: 0,
                avg_rate_sps: None,
                avg_volume_dbfs: None,
                avg_pitch_hz: None,
                avg_pause_ratio: None,
                emotions: BTreeMap::new(),
                with_sentiment: 0,
                avg_sentiment: None,
                positive: 0,
                negative: 0,
                satisfaction: None,
            });
            sums.push([0.0; 5]);
        }
        let (Some(r), Some(s)) = (out.last_mut(), sums.last_mut()) else {
            continue;
        };
        r.turns += u(n);
        r.with_features += u(n_feat);
        *r.emotions.entry(emotion).or_default() += u(n);
        r.with_sentiment += u(n_sent);
        r.positive += u(pos);
        r.negative += u(neg);
        for (acc, v) in s.iter_mut().zip([rate, volume, pitch, pause, sent]) {
            *acc += v;
        }
    }
    for (r, s) in out.iter_mut().zip(sums) {
        if r.with_features > 0 {
            let n = r.with_features as f64;
            r.avg_rate_sps = Some(s[0] / n);
            r.avg_volume_dbfs = Some(s[1] / n);
            r.avg_pitch_hz = Some(s[2] / n);
            r.avg_pause_ratio = Some(s[3] / n);
        }
        if r.with_sentiment > 0 {
            r.avg_sentiment = Some(s[4] / r.with_sentiment as f64);
        }
        r.satisfaction = kpi::satisfaction(r.positive, r.negative);
    }
    out
}

/// True when the call is new.
async fn insert_call(conn: &mut SqliteConnection, c: &CallStart) -> Result<bool, StoreError> {
    let n = sqlx::query(
        "INSERT INTO calls (call_id, campaign_id, customer_id, script, lang, status, started_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, 'dialing', ?, ?) ON CONFLICT (call_id) DO NOTHING",
    )
    .bind(c.call_id.as_str())
    .bind(campaign_key(c.campaign))
    .bind(c.customer.map(|c| c.0))
    .bind(&c.script)
    .bind(&c.lang)
    .bind(ts(c.at))
    .bind(ts(c.at))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}

async fn insert_turn(
    store: &Store,
    conn: &mut SqliteConnection,
    call_id: &str,
    t: &Turn,
) -> Result<(), StoreError> {
    let call: Option<(i64, Option<i64>, Option<String>)> = sqlx::query_as(
        "SELECT c.campaign_id, c.customer_id, cu.segment FROM calls c \
         LEFT JOIN customers cu ON cu.id = c.customer_id WHERE c.call_id = ?",
    )
    .bind(call_id)
    .fetch_optional(&mut *conn)
    .await?;
    let (campaign, customer, segment) = call.ok_or_else(|| unknown_call(call_id))?;
    let key = store.data_key_for_write(conn, customer, t.at).await?;
    let text_ct = store.seal_for(
        key.as_ref(),
        "call_turns",
        "text",
        &turn_key(call_id, t.seq),
        t.text.as_bytes(),
    );
    let f = t.features;
    let inserted = sqlx::query(
        "INSERT INTO call_turns (call_id, seq, speaker, state, at, start_ms, end_ms, text_ct, intent, confidence, \
         emotion, sentiment, rate_sps, volume_dbfs, pitch_hz, pause_ratio, barge_in, latency_ms) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (call_id, seq) DO NOTHING",
    )
    .bind(call_id)
    .bind(i64::from(t.seq))
    .bind(t.speaker.as_str())
    .bind(&t.state)
    .bind(ts(t.at))
    .bind(i64::try_from(t.start_ms).unwrap_or(i64::MAX))
    .bind(i64::try_from(t.end_ms).unwrap_or(i64::MAX))
    .bind(text_ct)
    .bind(&t.intent)
    .bind(t.confidence.map(f64::from))
    .bind(&t.emotion)
    .bind(t.sentiment.map(f64::from))
    .bind(f.map(|f| f64::from(f.rate_sps)))
    .bind(f.map(|f| f64::from(f.volume_dbfs)))
    .bind(f.map(|f| f64::from(f.pitch_hz)))
    .bind(f.map(|f| f64::from(f.pause_ratio)))
    .bind(t.barge_in)
    .bind(t.latency_ms)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        return Ok(());
    }
    sqlx::query("UPDATE calls SET turns = turns + 1, updated_at = MAX(updated_at, ?), emotion = COALESCE(?, emotion) WHERE call_id = ?")
        .bind(ts(t.at))
        .bind(if t.speaker == Speaker::Callee { t.emotion.as_deref() } else { None })
        .bind(call_id)
        .execute(&mut *conn)
        .await?;
    if t.speaker != Speaker::Callee {
        return Ok(());
    }
    let ev = Event {
        at: t.at,
        customer: customer.map(CustomerId),
        campaign: (campaign != 0).then_some(CampaignId(campaign)),
        call: Some(CallId::from(call_id)),
        kind: EventKind::CallTurn {
            seq: t.seq,
            state: t.state.clone(),
            intent: t.intent.clone().unwrap_or_else(|| "unknown".into()),
            confidence: t.confidence.unwrap_or(0.0),
            emotion: t.emotion.clone(),
            barge_in: t.barge_in,
            latency_ms: t.latency_ms,
        },
    };
    insert_events(conn, &store.audit, &[ev]).await?;
    sqlx::query(
        "INSERT INTO voice_rollup (campaign_id, segment, hour, emotion, n, n_feat, sum_rate, sum_volume, sum_pitch, sum_pause, \
         n_sent, sum_sent, n_pos, n_neg) \
         VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (campaign_id, segment, hour, emotion) DO UPDATE SET n = n + 1, n_feat = n_feat + excluded.n_feat, \
         sum_rate = sum_rate + excluded.sum_rate, sum_volume = sum_volume + excluded.sum_volume, \
         sum_pitch = sum_pitch + excluded.sum_pitch, sum_pause = sum_pause + excluded.sum_pause, \
         n_sent = n_sent + excluded.n_sent, sum_sent = sum_sent + excluded.sum_sent, \
         n_pos = n_pos + excluded.n_pos, n_neg = n_neg + excluded.n_neg",
    )
    .bind(campaign)
    .bind(segment.unwrap_or_default())
    .bind(t.at.format("%Y-%m-%dT%H").to_string())
    .bind(t.emotion.clone().unwrap_or_default())
    .bind(i64::from(f.is_some()))
    .bind(f.map_or(0.0, |f| f64::from(f.rate_sps)))
    .bind(f.map_or(0.0, |f| f64::from(f.volume_dbfs)))
    .bind(f.map_or(0.0, |f| f64::from(f.pitch_hz)))
    .bind(f.map_or(0.0, |f| f64::from(f.pause_ratio)))
    .bind(i64::from(t.sentiment.is_some()))
    .bind(t.sentiment.map_or(0.0, f64::from))
    .bind(i64::from(t.sentiment.is_some_and(kpi::is_positive)))
    .bind(i64::from(t.sentiment.is_some_and(kpi::is_negative)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True when the call was live and is ended now.
async fn finish_call(
    conn: &mut SqliteConnection,
    call_id: &str,
    f: &CallFinish,
    recording: Option<&str>,
) -> Result<bool, StoreError> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("SELECT campaign_id, script, status FROM calls WHERE call_id = ?")
            .bind(call_id)
            .fetch_optional(&mut *conn)
            .await?;
    let (campaign, script, status) = row.ok_or_else(|| unknown_call(call_id))?;
    if status == "ended" {
        return Ok(false);
    }
    let path = serde_json::to_string(&f.path).expect("a list of strings serialises");
    let variants =
        serde_json::to_string(&f.path_variants).expect("a list of optional strings serialises");
    sqlx::query(
        "UPDATE calls SET status = 'ended', updated_at = ?, ended_at = ?, outcome = ?, sip_status = ?, duration_s = ?, \
         business_outcome = ?, level = ?, path = ?, path_variants = ?, recording = COALESCE(?, recording), \
         node = COALESCE(?, node), quality = ? WHERE call_id = ?",
    )
    .bind(ts(f.at))
    .bind(ts(f.at))
    .bind(f.outcome.as_str())
    .bind(f.sip_status.map(i64::from))
    .bind(f.duration_s)
    .bind(&f.business_outcome)
    .bind(&f.level)
    .bind(path)
    .bind(variants)
    .bind(recording)
    .bind(f.path.last())
    .bind(
        f.quality
            .as_ref()
            .map(|q| serde_json::to_string(q).expect("numbers and strings serialise")),
    )
    .bind(call_id)
    .execute(&mut *conn)
    .await?;
    for (state, pos, continued, dropped, completed) in
        funnel_steps(&f.path, f.business_outcome.as_deref())
    {
        sqlx::query(
            "INSERT INTO funnel_rollup (campaign_id, script, state, entered, continued, dropped, completed, pos_sum) \
             VALUES (?, ?, ?, 1, ?, ?, ?, ?) \
             ON CONFLICT (script, campaign_id, state) DO UPDATE SET entered = entered + 1, \
             continued = continued + excluded.continued, dropped = dropped + excluded.dropped, \
             completed = completed + excluded.completed, pos_sum = pos_sum + excluded.pos_sum",
        )
        .bind(campaign)
        .bind(&script)
        .bind(state)
        .bind(i64::from(continued))
        .bind(i64::from(dropped))
        .bind(i64::from(completed))
        .bind(pos as i64)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}
