//! Follow-up messages in the API: the outbox (channel, template, status, times; never a
//! number or a text) and the report per campaign, channel and template, both as JSON or
//! CSV.
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::CampaignId;

use crate::api::{file_response, limit, Format, Q};
use crate::auth::Caller;
use crate::auth::{Need, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/api/messages", Need::Min(Role::Analyst), get(list))
        .add(
            "GET",
            "/api/messages/report",
            Need::Min(Role::Analyst),
            get(report),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQ {
    campaign: Option<i64>,
    limit: Option<i64>,
    #[serde(default)]
    format: Format,
}

const LIST_COLUMNS: &[&str] = &[
    "id",
    "direction",
    "campaign_id",
    "customer_id",
    "channel",
    "template",
    "status",
    "segments",
    "error",
    "created_at",
    "sent_at",
    "delivered_at",
];

async fn list(State(s): State<AppState>, _c: Caller, Q(q): Q<ListQ>) -> Result<Response, ApiError> {
    let default = if q.format.is_file() { 1_000_000 } else { 100 };
    let lim = limit(q.limit, default, 1_000_000)?;
    let rows = s
        .store
        .messages_list(q.campaign.map(CampaignId), lim)
        .await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
        .collect();
    if q.format.is_file() {
        return file_response(q.format, "messages", LIST_COLUMNS, &items);
    }
    Ok(Json(json!({"items": items})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQ {
    campaign: Option<i64>,
    /// Conversion attribution window in days (default 7).
    window_days: Option<u32>,
    #[serde(default)]
    format: Format,
}

const REPORT_COLUMNS: &[&str] = &[
    "campaign_id",
    "channel",
    "template",
    "total",
    "queued",
    "sent",
    "delivered",
    "failed",
    "suppressed",
    "unknown",
    "delivery_p50_s",
    "delivery_p90_s",
    "conversions",
    "conversion_rate",
];

async fn report(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<ReportQ>,
) -> Result<Response, ApiError> {
    // Conversions: the server's conversion outcomes, last touch within the window.
    let window_days = q.window_days.unwrap_or(7);
    if window_days == 0 || window_days > 365 {
        return Err(ApiError::bad_request(
            "bad_query",
            "window_days must be 1..365",
        ));
    }
    let attribution = waihu_store::Attribution {
        outcomes: s.cfg.conversion_outcomes.clone(),
        window: chrono::Duration::days(window_days as i64),
    };
    let r = s
        .store
        .messages_report_with(q.campaign.map(CampaignId), &attribution)
        .await?;
    if q.format.is_file() {
        let items: Vec<Value> = r
            .outgoing
            .iter()
            .map(|m| serde_json::to_value(m).unwrap_or(Value::Null))
            .collect();
        return file_response(q.format, "messages-report", REPORT_COLUMNS, &items);
    }
    Ok(Json(json!({
        "outgoing": r.outgoing,
        "replies": r.replies,
        "attribution": {"window_days": window_days, "conversion_outcomes": s.cfg.conversion_outcomes, "model": "last_touch"},
    }))
    .into_response())
}
