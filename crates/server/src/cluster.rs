//! The multi-node deployment (WAIHU_DATABASE_URL) seen and steered from the API: every node's
//! health and load, every shared campaign's progress, the calls open on all nodes and the
//! merged outcome totals; start / pause / stop a shared campaign (every node hears it within a
//! second) and drain a node. `configured: false` on a single-machine server.
//!
//! `/api/cluster/stream` is the merged live view: it listens to the merged log's `NOTIFY`
//! (every event any node commits) and sends a fresh snapshot with the new events a moment
//! after each burst, and at least every [`SNAPSHOT_EVERY`] (heartbeats are not logged).
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::Utc;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_cluster::{Cluster, ClusterError, EventListener, LoggedEvent};
use waihu_core::{CampaignId, EventKind};

use crate::api::{day_bounds, kpi_response, range_ending, RangeQ, Q};
use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::calls::{STREAM_LIMIT, STREAM_MAX_S};
use crate::error::ApiError;
use crate::{AppState, Routes};

/// A snapshot goes out at least this often, even when no node logged anything.
pub const SNAPSHOT_EVERY: Duration = Duration::from_secs(5);
/// Notices arriving this close together are answered with one snapshot.
const COALESCE: Duration = Duration::from_millis(150);
/// New events sent with one snapshot at most (the rest are counted as `skipped`).
const EVENTS_PER_SNAPSHOT: u32 = 100;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/cluster",
        Need::Min(Role::Analyst),
        get(cluster),
    )
    .add(
        "GET",
        "/api/cluster/stream",
        Need::Min(Role::Analyst),
        get(stream),
    )
    .add(
        "GET",
        "/api/cluster/kpis",
        Need::Min(Role::Analyst),
        get(kpis),
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
    Ok(Json(snapshot(c).await?))
}

/// `/api/kpis` over every node: the same fold, of the cells the merged log's trigger keeps.
async fn kpis(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<RangeQ>,
) -> Result<Response, ApiError> {
    let c = configured(&s)?;
    let last = c.kpi_last_hour().await.map_err(db)?;
    let (from, to) = range_ending(last.map(|t| t.date_naive()), &q)?;
    let (start, end) = day_bounds(from, to);
    let rows = c
        .kpi_rollup(start, end, q.campaign.map(CampaignId))
        .await
        .map_err(db)?;
    kpi_response(&s, &q, from, to, &rows)
}

async fn snapshot(c: &Cluster) -> Result<Value, ApiError> {
    let nodes = c.nodes().await.map_err(db)?;
    let campaigns = c.campaigns().await.map_err(db)?;
    let live = c.live_calls().await.map_err(db)?;
    let outcomes = c.outcomes().await.map_err(db)?;
    Ok(json!({
        "configured": true, "at": Utc::now(), "nodes": nodes, "campaigns": campaigns,
        "live": live, "outcomes": outcomes,
    }))
}

/// An event of the merged log as the stream shows it: what happened where, without the
/// event's blind indexes and texts (the call detail has those, for those allowed).
fn event_json(e: &LoggedEvent) -> Value {
    let mut v = json!({
        "id": e.id, "node": e.node, "at": e.event.at, "type": e.event.kind.type_name(),
        "campaign": e.event.campaign.map(|c| c.0), "customer": e.event.customer.map(|c| c.0),
        "call": e.event.call.as_ref().map(|c| c.0.clone()),
    });
    match &e.event.kind {
        EventKind::AttemptEnded { outcome, .. } => v["outcome"] = json!(outcome.as_str()),
        EventKind::CampaignState { state, actor } => {
            v["state"] = json!(state);
            v["actor"] = json!(actor);
        }
        _ => {}
    }
    v
}

#[derive(Deserialize)]
struct StreamQ {
    /// Seconds before the server ends the stream (clients reconnect).
    max_s: Option<u64>,
    /// Send the events after this id first (a reconnecting client's last one); default:
    /// none before the stream opened.
    after: Option<i64>,
}

struct Feed {
    cluster: Cluster,
    listener: EventListener,
    last: i64,
    first: bool,
    deadline: tokio::time::Instant,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Feed {
    /// Waits for the next notice (then lets a burst settle) or the snapshot interval;
    /// `None` at the deadline.
    async fn wait(&mut self) -> Option<Result<(), ClusterError>> {
        let until = (tokio::time::Instant::now() + SNAPSHOT_EVERY).min(self.deadline);
        match tokio::time::timeout_at(until, self.listener.recv()).await {
            Ok(Err(e)) => return Some(Err(e)),
            Ok(Ok(_)) => {
                let settle = tokio::time::Instant::now() + COALESCE;
                while let Ok(r) = tokio::time::timeout_at(settle, self.listener.recv()).await {
                    if let Err(e) = r {
                        return Some(Err(e));
                    }
                }
            }
            Err(_) => {}
        }
        (tokio::time::Instant::now() < self.deadline).then_some(Ok(()))
    }

    async fn next(&mut self) -> Result<Value, ApiError> {
        let events = self
            .cluster
            .events_after(self.last, EVENTS_PER_SNAPSHOT)
            .await
            .map_err(db)?;
        let newest = self.cluster.last_event_id().await.map_err(db)?;
        let skipped = match events.last() {
            Some(e) => newest - e.id,
            None => 0,
        };
        self.last = newest.max(self.last);
        let mut v = snapshot(&self.cluster).await?;
        v["events"] = events.iter().map(event_json).collect();
        v["events_skipped"] = json!(skipped);
        v["last_event"] = json!(self.last);
        Ok(v)
    }
}

/// The merged live view of every node as server-sent events: a `cluster` event (the body of
/// `/api/cluster` plus the new events of the merged log) when the stream opens, a moment
/// after any node logs something, and at least every 5 s.
async fn stream(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<StreamQ>,
) -> Result<Response, ApiError> {
    let c = configured(&s)?.clone();
    let max_s = q.max_s.unwrap_or(600);
    if max_s == 0 || max_s > STREAM_MAX_S {
        return Err(ApiError::bad_request(
            "bad_max_s",
            format!("max_s must be between 1 and {STREAM_MAX_S} seconds, got {max_s}"),
        ));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(ApiError::bad_request(
            "bad_after",
            "after must be an event id (0 or more)",
        ));
    }
    let permit = s.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!("{STREAM_LIMIT} live streams are open already; poll /api/cluster instead or retry later"),
        )
    })?;
    // Listen before reading the position: nothing committed in between is missed.
    let listener = c.event_listener().await.map_err(db)?;
    let last = match q.after {
        Some(a) => a,
        None => c.last_event_id().await.map_err(db)?,
    };
    let feed = Feed {
        cluster: c,
        listener,
        last,
        first: true,
        deadline: tokio::time::Instant::now() + Duration::from_secs(max_s),
        _permit: permit,
    };
    let stream = futures_util::stream::unfold(Some(feed), |feed| async move {
        let mut feed = feed?;
        if !feed.first {
            match feed.wait().await? {
                Ok(()) => {}
                Err(e) => {
                    let ev = SseEvent::default().event("error").data(
                        json!({"error": {"code": "cluster_database", "message": e.to_string()}})
                            .to_string(),
                    );
                    // The listener's connection is gone: say so and end (clients reconnect).
                    return Some((Ok::<_, Infallible>(ev), None));
                }
            }
        }
        feed.first = false;
        let ev = match feed.next().await {
            Ok(v) => SseEvent::default().event("cluster").data(v.to_string()),
            Err(e) => SseEvent::default()
                .event("error")
                .data(json!({"error": {"code": e.code, "message": e.message}}).to_string()),
        };
        Some((Ok(ev), Some(feed)))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
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
    c.set_campaign_state(CampaignId(id), state, &caller.actor, Utc::now())
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
