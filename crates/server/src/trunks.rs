//! Trunk state in the API: what the dialing node writes to `<data_dir>/trunks.json`
//! every 500 ms (registration, up/down with its back-off, channels in use, calls and
//! failures per trunk), with the file's age, so a stopped node shows as stale rather
//! than as healthy trunks. JSON or CSV (one row per trunk).
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_campaign::trunks::StatusFile;

use crate::api::{file_response, Format, Q};
use crate::auth::Caller;
use crate::auth::{Need, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

/// A node rewrites the file every 500 ms; older than this, it is not running.
pub const STALE_MS: i64 = 5_000;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add("GET", "/api/trunks", Need::Min(Role::Analyst), get(list))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQ {
    #[serde(default)]
    format: Format,
}

const CSV_COLUMNS: &[&str] = &[
    "name",
    "state",
    "registration",
    "registration_status",
    "in_flight",
    "channels",
    "calls",
    "failures",
    "consecutive_failures",
    "down_until_ms",
    "stale",
];

/// The node's status file, `None` when no node has written one; an unreadable file
/// is an error naming it.
pub fn read(data_dir: &std::path::Path) -> Result<Option<StatusFile>, String> {
    let path = data_dir.join("trunks.json");
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

async fn list(State(s): State<AppState>, _c: Caller, Q(q): Q<ListQ>) -> Result<Response, ApiError> {
    let status = read(s.store.data_dir()).map_err(ApiError::internal)?;
    let now = chrono::Utc::now().timestamp_millis();
    let (node, trunks, stale) = match &status {
        None => (Value::Null, Vec::new(), true),
        Some(f) => {
            let age = now - f.updated_ms;
            (
                json!({"pid": f.pid, "updated_ms": f.updated_ms, "age_ms": age, "running": age <= STALE_MS}),
                f.trunks.clone(),
                age > STALE_MS,
            )
        }
    };
    if q.format.is_file() {
        let rows: Vec<Value> = trunks
            .iter()
            .map(|t| {
                let mut v = serde_json::to_value(t).unwrap_or(Value::Null);
                v["stale"] = json!(stale);
                v
            })
            .collect();
        return file_response(q.format, "trunks", CSV_COLUMNS, &rows);
    }
    Ok(Json(json!({"node": node, "stale": stale, "items": trunks})).into_response())
}
