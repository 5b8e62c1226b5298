//! The live wall (大屏) and its alerts: `GET /api/alerts` gathers what
//! `waihu_core::alerts` decides over (the recent window's KPIs beside the
//! baseline before it, from the event log; the dialing node's trunks and ASR
//! queue from its status file; the calls on the line and their emotion), and
//! `GET /wall` is the full-screen page a supervisor keeps open.
use axum::extract::State;
use axum::response::Html;
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::alerts::{evaluate, Inputs, Node, Policy, Trunk};
use waihu_core::kpi::Kpis;

use crate::api::Q;
use crate::auth::{Caller, Need, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/api/alerts", Need::Min(Role::Analyst), get(alerts))
        .add("GET", "/wall", Need::Public, get(wall))
}

static WALL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    include_str!("wall.html").replace(crate::api::SESSION_JS_SLOT, crate::api::SESSION_JS)
});

async fn wall() -> Html<&'static str> {
    Html(WALL.as_str())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQ {
    /// The recent window, minutes (default 15).
    recent_min: Option<i64>,
    /// The baseline window before it, minutes (default 120).
    baseline_min: Option<i64>,
}

fn window(k: &Kpis) -> Value {
    json!({
        "attempts": k.attempts,
        "connects": k.connects,
        "answered": k.answered,
        "abandoned": k.abandoned,
        "connect_rate": k.connect_rate,
        "abandon_rate": k.abandon_rate,
    })
}

async fn alerts(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<AlertsQ>,
) -> Result<Json<Value>, ApiError> {
    let bad = |field: &str| {
        ApiError::bad_request(
            "bad_window",
            format!("{field}: minutes from 1 to 10080 (a week)"),
        )
    };
    let recent_min = q.recent_min.unwrap_or(15);
    let baseline_min = q.baseline_min.unwrap_or(120);
    if !(1..=10_080).contains(&recent_min) {
        return Err(bad("recent_min"));
    }
    if !(1..=10_080).contains(&baseline_min) {
        return Err(bad("baseline_min"));
    }
    let now = chrono::Utc::now();
    let split = now - chrono::Duration::minutes(recent_min);
    let recent = s.store.kpi_window(split, now).await?;
    let baseline = s
        .store
        .kpi_window(split - chrono::Duration::minutes(baseline_min), split)
        .await?;
    let status = crate::trunks::read(s.store.data_dir()).map_err(ApiError::internal)?;
    let node = status.as_ref().map(|f| Node {
        stale: now.timestamp_millis() - f.updated_ms > crate::trunks::STALE_MS,
        trunks: f
            .trunks
            .iter()
            .map(|t| Trunk {
                name: t.name.clone(),
                state: t.state.clone(),
            })
            .collect(),
        asr: f.asr.map(|a| (a.waiting, a.slots)),
    });
    let live = s.store.calls_live().await?;
    let angry = live
        .iter()
        .filter(|c| c.emotion.as_deref() == Some("angry"))
        .count();
    let list = evaluate(
        &Inputs {
            recent: &recent,
            baseline: &baseline,
            node: node.as_ref(),
            live_calls: live.len(),
            angry_calls: angry,
        },
        &Policy::default(),
    );
    Ok(Json(json!({
        "at": now,
        "alerts": list,
        "recent": {"minutes": recent_min, "kpis": window(&recent)},
        "baseline": {"minutes": baseline_min, "kpis": window(&baseline)},
        "live_calls": live.len(),
        "angry_calls": angry,
        "node": node.as_ref().map(|n| json!({"stale": n.stale, "trunks_up": n.trunks.iter().filter(|t| t.state == "up").count(), "trunks": n.trunks.len()})),
        "asr": status.and_then(|f| f.asr),
    })))
}
