//! The multi-node deployment (WAIHU_DATABASE_URL) seen and steered from the API: every node's
//! health and load, every shared campaign's progress, the calls open on all nodes and the
//! merged outcome totals; start / pause / stop a shared campaign (every node hears it within a
//! second) and drain a node. `configured: false` on a single-machine server.
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Json;
use chrono::Utc;
use serde_json::{json, Value};
use waihu_cluster::{Cluster, ClusterError};
use waihu_core::CampaignId;

use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/cluster",
        Need::Min(Role::Analyst),
        get(cluster),
    )
    .add(
        "POST",
        "/api/cluster/campaigns/{id}/{action}",
        Need::Min(Role::Operator),
        post(campaign_action),
    )
    .add(
        "POST",
        "/api/cluster/nodes/{name}/{action}",
        Need::Min(Role::Operator),
        post(node_action),
    )
}

fn db(e: ClusterError) -> ApiError {
    match e {
        ClusterError::Invalid(m) if m.starts_with("no ") => ApiError::not_found("not_found", m),
        ClusterError::Invalid(m) => ApiError::bad_request("invalid", m),
        other => ApiError::internal(format!("cluster database: {other}")),
    }
}

fn configured(s: &AppState) -> Result<&Cluster, ApiError> {
    s.cfg.cluster.as_ref().ok_or_else(|| {
        ApiError::not_found(
            "no_cluster",
            "this server has no cluster database (start it with WAIHU_DATABASE_URL=postgres://...)",
        )
    })
}

async fn cluster(State(s): State<AppState>, _c: Caller) -> Result<Json<Value>, ApiError> {
    let Some(c) = &s.cfg.cluster else {
        return Ok(Json(json!({"configured": false})));
    };
    let nodes = c.nodes().await.map_err(db)?;
    let campaigns = c.campaigns().await.map_err(db)?;
    let live = c.live_calls().await.map_err(db)?;
    let outcomes = c.outcomes().await.map_err(db)?;
    Ok(Json(json!({
        "configured": true, "nodes": nodes, "campaigns": campaigns,
        "live": live, "outcomes": outcomes,
    })))
}

/// `start`, `pause` or `stop` a shared campaign on every node.
async fn campaign_action(
    State(s): State<AppState>,
    caller: Caller,
    Path((id, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "steering cluster campaigns")?;
    let c = configured(&s)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("invalid_id", format!("campaign id {id:?} is not a number"))
    })?;
    let state = match action.as_str() {
        "start" => "started",
        "pause" => "paused",
        "stop" => "stopped",
        other => {
            return Err(ApiError::not_found(
                "no_such_action",
                format!("{other:?}: use start, pause or stop"),
            ))
        }
    };
    let previous = c.campaign_state(CampaignId(id)).await.map_err(db)?;
    let Some(previous) = previous else {
        return Err(ApiError::not_found(
            "no_such_campaign",
            format!("no campaign {id} in the cluster"),
        ));
    };
    c.set_campaign_state(CampaignId(id), state, Utc::now())
        .await
        .map_err(db)?;
    tracing::info!(actor = %caller.actor, campaign = id, state, "cluster campaign state");
    Ok(Json(
        json!({"campaign": id, "state": state, "previous_state": previous, "by": caller.actor}),
    ))
}

/// `drain` a node (no new dials, contacts handed back, calls finish, it stops) or `undrain` it.
async fn node_action(
    State(s): State<AppState>,
    caller: Caller,
    Path((name, action)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, "draining nodes")?;
    let c = configured(&s)?;
    let drain = match action.as_str() {
        "drain" => true,
        "undrain" => false,
        other => {
            return Err(ApiError::not_found(
                "no_such_action",
                format!("{other:?}: use drain or undrain"),
            ))
        }
    };
    c.drain(&name, drain).await.map_err(db)?;
    tracing::info!(actor = %caller.actor, node = %name, drain, "cluster node");
    Ok(Json(
        json!({"node": name, "state": if drain { "draining" } else { "up" }, "by": caller.actor}),
    ))
}
