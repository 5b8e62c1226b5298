//! Personal-data rights over HTTP: export everything held about one customer
//! (operator; audited before anything is opened) and erase one (admin;
//! crypto-shredding). The store does the work (`waihu_store::rights`).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::CustomerId;

use crate::api::{J, Q};
use crate::auth::{Caller, Need, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/customers/{id}/export",
        Need::Min(Role::Operator),
        get(export),
    )
    .add(
        "POST",
        "/api/customers/{id}/erase",
        Need::Min(Role::Admin),
        post(erase),
    )
}

fn parse_id(id: &str) -> Result<CustomerId, ApiError> {
    id.parse().map(CustomerId).map_err(|_| {
        ApiError::bad_request(
            "bad_id",
            format!("customer id must be an integer, got '{id}'"),
        )
    })
}

fn require_reason(reason: &str) -> Result<(), ApiError> {
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "reason_required",
            "give the request's reason or reference (reason), recorded on the audit chain",
        ));
    }
    if reason.chars().count() > 500 {
        return Err(ApiError::bad_request(
            "reason_too_long",
            "reason is longer than 500 characters",
        ));
    }
    Ok(())
}

/// 404 for an id never seen, 410 for an erased one.
async fn missing(s: &AppState, id: CustomerId) -> ApiError {
    match s.store.erased_customers().await {
        Ok(m) => match m.get(&id.0) {
            Some(at) => ApiError::new(
                StatusCode::GONE,
                "erased",
                format!("customer {} was erased at {}", id.0, at.to_rfc3339()),
            ),
            None => ApiError::not_found(
                "no_such_customer",
                format!("no customer with id {}; list them at /api/customers", id.0),
            ),
        },
        Err(e) => e.into(),
    }
}

#[derive(Deserialize)]
struct ReasonQ {
    #[serde(default)]
    reason: String,
}

async fn export(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Q(q): Q<ReasonQ>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "exporting a customer's personal data")?;
    let id = parse_id(&id)?;
    require_reason(&q.reason)?;
    match s
        .store
        .customer_export_audited(id, &caller.actor, &q.reason, Utc::now())
        .await?
    {
        Some(ex) => Ok(Json(serde_json::to_value(ex).map_err(|e| {
            ApiError::internal(format!("serialising the export: {e}"))
        })?)),
        None => Err(missing(&s, id).await),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EraseBody {
    reason: String,
    /// Must be true: erasure cannot be undone.
    confirm: bool,
}

async fn erase(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    J(b): J<EraseBody>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Admin, "erasing a customer")?;
    let id = parse_id(&id)?;
    require_reason(&b.reason)?;
    if !b.confirm {
        return Err(ApiError::bad_request(
            "confirm_required",
            "erasure cannot be undone: send \"confirm\": true",
        ));
    }
    if s.store.customer(id).await?.is_none() {
        return Err(missing(&s, id).await);
    }
    let r = s
        .store
        .customer_erase(id, &caller.actor, &b.reason, Utc::now())
        .await?;
    Ok(Json(json!({
        "customer": r.customer.0,
        "erased": true,
        "calls": r.calls,
        "turns": r.turns,
        "recordings": r.recordings,
        "messages": r.messages,
        "voiceprints": r.voiceprints,
        "do_not_call": r.do_not_call,
    })))
}
