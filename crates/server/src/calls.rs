//! Calls (list, live list and its server-sent event stream, detail,
//! recording) and the reports over them (funnel, intents × states, voice).
//! Phone numbers leave masked; a call's words and its recording are personal
//! data too, so they leave only for operators and admins, after a
//! `pii_revealed` event naming the caller.
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::{mask_phone, CallId, CampaignId, Event, EventKind, Turn};
use waihu_store::CallSummary;

use crate::api::{file_response, limit, Format, Q};
use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::reports::{funnel_steps, intent_matrix};
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/calls",
        Need::Min(Role::Analyst),
        get(list_calls),
    )
    .add(
        "GET",
        "/api/calls/live",
        Need::Min(Role::Analyst),
        get(live_calls),
    )
    .add(
        "GET",
        "/api/calls/live/stream",
        Need::Min(Role::Analyst),
        get(live_stream),
    )
    .add(
        "GET",
        "/api/calls/{id}",
        Need::Min(Role::Analyst),
        get(call_detail),
    )
    .add(
        "GET",
        "/api/calls/{id}/recording",
        Need::Min(Role::Operator),
        get(call_recording),
    )
    .add(
        "GET",
        "/api/reports/funnel",
        Need::Min(Role::Analyst),
        get(funnel),
    )
    .add(
        "GET",
        "/api/reports/intents",
        Need::Min(Role::Analyst),
        get(intents),
    )
    .add(
        "GET",
        "/api/reports/voice",
        Need::Min(Role::Analyst),
        get(voice),
    )
}

/// A call as lists show it: the customer's number masked.
pub(crate) fn summary_json(c: &CallSummary) -> Value {
    let mut v = serde_json::to_value(c).unwrap_or(Value::Null);
    v["phone"] = json!(c.phone.as_deref().map(mask_phone));
    v
}

const CALL_COLUMNS: [&str; 19] = [
    "call_id",
    "campaign",
    "customer",
    "phone",
    "segment",
    "script",
    "lang",
    "status",
    "node",
    "emotion",
    "started_at",
    "ended_at",
    "outcome",
    "sip_status",
    "duration_s",
    "business_outcome",
    "level",
    "turns",
    "has_recording",
];

#[derive(Deserialize)]
struct CallsQ {
    campaign: Option<i64>,
    limit: Option<i64>,
    before: Option<CallId>,
    #[serde(default)]
    format: Format,
}

async fn list_calls(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<CallsQ>,
) -> Result<Response, ApiError> {
    let csv = q.format.is_file();
    let max = if csv { 100_000 } else { 1000 };
    let lim = limit(q.limit, if csv { max } else { 50 }, max)?;
    let campaign = q.campaign.map(CampaignId);
    let list = s
        .store
        .calls_list(campaign, lim as u32, q.before.as_ref())
        .await?;
    let items: Vec<Value> = list.iter().map(summary_json).collect();
    if csv {
        return file_response(q.format, "calls", &CALL_COLUMNS, &items);
    }
    let next = (list.len() as i64 == lim)
        .then(|| list.last().map(|c| c.call_id.clone()))
        .flatten();
    Ok(Json(json!({
        "items": items,
        "next_before": next,
        "total": s.store.calls_count(campaign).await?,
    }))
    .into_response())
}

async fn live_json(s: &AppState) -> Result<Value, ApiError> {
    let live = s.store.calls_live().await?;
    let items: Vec<Value> = live.iter().map(summary_json).collect();
    Ok(json!({"at": Utc::now(), "count": items.len(), "items": items}))
}

async fn live_calls(State(s): State<AppState>, _c: Caller) -> Result<Json<Value>, ApiError> {
    Ok(Json(live_json(&s).await?))
}

#[derive(Deserialize)]
struct StreamQ {
    /// Seconds before the server ends the stream (clients reconnect).
    max_s: Option<u64>,
}

/// Longest a stream stays open, and how many may be open at once: a stream
/// holds a task and polls the store every second, so both are bounded.
pub const STREAM_MAX_S: u64 = 3600;
pub const STREAM_LIMIT: usize = 32;

async fn live_stream(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<StreamQ>,
) -> Result<Response, ApiError> {
    let max_s = q.max_s.unwrap_or(600);
    if max_s == 0 || max_s > STREAM_MAX_S {
        return Err(ApiError::bad_request(
            "bad_max_s",
            format!("max_s must be between 1 and {STREAM_MAX_S} seconds, got {max_s}"),
        ));
    }
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{STREAM_LIMIT} live streams are open already; poll /api/calls/live instead or retry later"),
        )
    })?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(max_s);
    let state = (s, permit, true, deadline);
    let stream = futures_util::stream::unfold(state, |(s, permit, first, deadline)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        let ev = match live_json(&s).await {
            Ok(v) => SseEvent::default().event("live").data(v.to_string()),
            Err(e) => SseEvent::default()
                .event("error")
                .data(json!({"error": {"code": e.code, "message": e.message}}).to_string()),
        };
        Some((Ok::<_, Infallible>(ev), (s, permit, false, deadline)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

#[derive(Deserialize)]
struct DetailQ {
    #[serde(default)]
    reveal: bool,
    reason: Option<String>,
}

fn no_call(id: &CallId) -> ApiError {
    ApiError::not_found(
        "no_such_call",
        format!("no call '{id}'; list them at /api/calls"),
    )
}

/// Refuse analysts, then log the reveal of `field` of one call.
async fn audit_call_reveal(
    s: &AppState,
    caller: &Caller,
    c: &CallSummary,
    field: &str,
    reason: Option<&str>,
) -> Result<(), ApiError> {
    if caller.role < Role::Operator {
        return Err(ApiError::forbidden(
            "reveal_forbidden",
            format!("a call's {field} is personal data: analysts cannot open it; use an operator or admin key (every access is audited)"),
        ));
    }
    s.store
        .append_event(&Event {
            at: Utc::now(),
            customer: c.customer,
            campaign: c.campaign,
            call: Some(c.call_id.clone()),
            kind: EventKind::PiiRevealed {
                actor: caller.actor.clone(),
                field: field.into(),
                reason: reason.unwrap_or("api").into(),
            },
        })
        .await?;
    Ok(())
}

fn turn_json(t: &Turn, reveal: bool) -> Value {
    let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
    if !reveal {
        v["text"] = Value::Null;
    }
    v
}

async fn call_detail(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<CallId>,
    Q(q): Q<DetailQ>,
) -> Result<Json<Value>, ApiError> {
    if q.reveal && caller.role < Role::Operator {
        return Err(ApiError::forbidden(
            "reveal_forbidden",
            "analysts see transcripts without the words; drop reveal=true or use an operator or admin key (every reveal is audited)",
        ));
    }
    let d = s
        .store
        .call_detail(&id)
        .await?
        .ok_or_else(|| no_call(&id))?;
    if q.reveal {
        audit_call_reveal(&s, &caller, &d.summary, "transcript", q.reason.as_deref()).await?;
    }
    let turns: Vec<Value> = d.turns.iter().map(|t| turn_json(t, q.reveal)).collect();
    let mut v = summary_json(&d.summary);
    v["path"] = json!(d.path);
    // Parallel to `path`: the A/B prompt variant played in each state (null: one prompt).
    v["path_variants"] = json!(d.path_variants);
    v["turns"] = Value::Array(turns);
    // RTP counters and the peer's RTCP view of our audio (null: no media).
    v["quality"] = json!(d.quality);
    v["revealed"] = json!(q.reveal);
    Ok(Json(v))
}

async fn call_recording(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<CallId>,
    Q(q): Q<DetailQ>,
) -> Result<Response, ApiError> {
    if caller.role < Role::Operator {
        return Err(ApiError::forbidden(
            "reveal_forbidden",
            "recordings are personal data: analysts cannot play them; use an operator or admin key (every playback is audited)",
        ));
    }
    let d = s
        .store
        .call_detail(&id)
        .await?
        .ok_or_else(|| no_call(&id))?;
    if !d.summary.has_recording {
        return Err(ApiError::not_found(
            "no_recording",
            format!("call '{id}' has no recording"),
        ));
    }
    audit_call_reveal(&s, &caller, &d.summary, "recording", q.reason.as_deref()).await?;
    let wav = s.store.call_recording(&id).await?.ok_or_else(|| {
        ApiError::not_found("no_recording", format!("call '{id}' has no recording"))
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        wav,
    )
        .into_response())
}

#[derive(Deserialize)]
struct FunnelQ {
    script: Option<String>,
    campaign: Option<i64>,
    #[serde(default)]
    format: Format,
}

/// The funnel of a script: the one asked for, else the one with most calls.
pub(crate) async fn funnel_json(
    s: &AppState,
    script: Option<&str>,
    campaign: Option<CampaignId>,
) -> Result<Value, ApiError> {
    let scripts = s.store.funnel_scripts(campaign).await?;
    let script = match script {
        Some(x) => Some(x.to_string()),
        None => scripts
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(name, _)| name.clone()),
    };
    let rows = match &script {
        Some(x) => s.store.funnel(campaign, x).await?,
        None => Vec::new(),
    };
    let steps = funnel_steps(&rows);
    let largest = steps
        .iter()
        .find(|st| st.largest_drop)
        .map(|st| st.row.state.clone());
    Ok(json!({
        "script": script,
        "campaign": campaign.map(|c| c.0),
        "scripts": scripts.iter().map(|(n, c)| json!({"script": n, "calls": c})).collect::<Vec<_>>(),
        "steps": steps,
        "largest_drop": largest,
    }))
}

async fn funnel(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<FunnelQ>,
) -> Result<Response, ApiError> {
    let v = funnel_json(&s, q.script.as_deref(), q.campaign.map(CampaignId)).await?;
    if q.format.is_file() {
        let items = v["steps"].as_array().cloned().unwrap_or_default();
        return file_response(
            q.format,
            "funnel",
            &[
                "state",
                "entered",
                "continued",
                "dropped",
                "completed",
                "drop_rate",
                "reach",
                "avg_position",
                "largest_drop",
            ],
            &items,
        );
    }
    Ok(Json(v).into_response())
}

#[derive(Deserialize)]
struct CampaignQ {
    campaign: Option<i64>,
    #[serde(default)]
    format: Format,
}

async fn intents(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<CampaignQ>,
) -> Result<Response, ApiError> {
    let campaign = q.campaign.map(CampaignId);
    let cells = s.store.intent_heatmap(campaign).await?;
    if q.format.is_file() {
        let items: Vec<Value> = cells
            .iter()
            .map(|(st, i, n)| json!({"state": st, "intent": i, "turns": n}))
            .collect();
        return file_response(q.format, "intents", &["state", "intent", "turns"], &items);
    }
    // Rows in the order calls walk through the busiest script.
    let order: Vec<String> = funnel_json(&s, None, campaign).await?["steps"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|st| st["state"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let m = intent_matrix(&cells, &order);
    Ok(Json(json!({"campaign": q.campaign, "matrix": m})).into_response())
}

async fn voice(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<CampaignQ>,
) -> Result<Response, ApiError> {
    let rows = s.store.voice_features(q.campaign.map(CampaignId)).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
        .collect();
    if q.format.is_file() {
        return file_response(
            q.format,
            "voice",
            &[
                "by",
                "key",
                "turns",
                "with_features",
                "avg_rate_sps",
                "avg_volume_dbfs",
                "avg_pitch_hz",
                "avg_pause_ratio",
                "avg_sentiment",
                "satisfaction",
                "emotions",
            ],
            &items,
        );
    }
    Ok(Json(json!({
        "campaign": q.campaign,
        "totals": crate::reports::voice_totals(&rows),
        "rows": items,
    }))
    .into_response())
}
