//! Campaigns (create from a YAML file, start, pause, stop) and scripts (the
//! files under `<data_dir>/scripts/`, their state graphs with traffic). The
//! campaign row is the command channel: these handlers move its state and the
//! runtime, polling it, obeys.
use std::path::PathBuf;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_core::{CampaignId, CampaignState};
use waihu_store::CampaignRow;

use crate::api::{file_response, int_id, Format, Q};
use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::reports::script_graph;
use crate::{AppState, Routes};

/// Directory under the data directory that holds script files.
pub const SCRIPTS_DIR: &str = "scripts";

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/campaigns",
        Need::Min(Role::Analyst),
        get(list_campaigns),
    )
    .add(
        "POST",
        "/api/campaigns",
        Need::Min(Role::Operator),
        post(create_campaign),
    )
    .add(
        "GET",
        "/api/campaigns/{id}",
        Need::Min(Role::Analyst),
        get(show_campaign),
    )
    .add(
        "POST",
        "/api/campaigns/{id}/start",
        Need::Min(Role::Operator),
        post(start),
    )
    .add(
        "POST",
        "/api/campaigns/{id}/pause",
        Need::Min(Role::Operator),
        post(pause),
    )
    .add(
        "POST",
        "/api/campaigns/{id}/stop",
        Need::Min(Role::Operator),
        post(stop),
    )
    .add(
        "GET",
        "/api/scripts",
        Need::Min(Role::Analyst),
        get(list_scripts),
    )
    .add(
        "GET",
        "/api/scripts/{name}",
        Need::Min(Role::Analyst),
        get(show_script),
    )
}

async fn campaign_json(s: &AppState, c: &CampaignRow, live: usize) -> Result<Value, ApiError> {
    // The dates the campaign may dial on (`active:` in its file), for the calendar.
    let active = waihu_campaign::Campaign::from_yaml(&c.spec)
        .ok()
        .and_then(|k| k.active)
        .map(|(from, to)| json!({"from": from, "to": to}));
    Ok(json!({
        "id": c.id.0,
        "name": c.name,
        "active": active,
        "state": c.state,
        "created_at": c.created_at,
        "updated_at": c.updated_at,
        "updated_by": c.updated_by,
        "next_states": c.state.next_states(),
        "calls": s.store.calls_count(Some(c.id)).await?,
        "live": live,
    }))
}

#[derive(Deserialize)]
struct FormatQ {
    #[serde(default)]
    format: Format,
}

async fn list_campaigns(
    State(s): State<AppState>,
    _c: Caller,
    Q(q): Q<FormatQ>,
) -> Result<Response, ApiError> {
    let live = s.store.calls_live().await?;
    let mut items = Vec::new();
    for c in s.store.campaigns().await? {
        let n = live.iter().filter(|l| l.campaign == Some(c.id)).count();
        items.push(campaign_json(&s, &c, n).await?);
    }
    if q.format.is_file() {
        return file_response(
            q.format,
            "campaigns",
            &[
                "id",
                "name",
                "state",
                "created_at",
                "updated_at",
                "updated_by",
                "calls",
                "live",
            ],
            &items,
        );
    }
    Ok(Json(json!({"items": items})).into_response())
}

fn parse_id(id: &str) -> Result<CampaignId, ApiError> {
    int_id("campaign", id).map(CampaignId)
}

async fn get_campaign(s: &AppState, id: CampaignId) -> Result<CampaignRow, ApiError> {
    s.store.campaign_get(id).await?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_campaign",
            format!("no campaign {id}; list them at /api/campaigns"),
        )
    })
}

async fn show_campaign(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let c = get_campaign(&s, id).await?;
    let live = s
        .store
        .calls_live()
        .await?
        .iter()
        .filter(|l| l.campaign == Some(id))
        .count();
    let mut v = campaign_json(&s, &c, live).await?;
    v["spec"] = json!(c.spec);
    v["scripts"] = json!(s
        .store
        .funnel_scripts(Some(id))
        .await?
        .into_iter()
        .map(|(n, calls)| json!({"script": n, "calls": calls}))
        .collect::<Vec<_>>());
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    spec: String,
}

/// The campaign file from the body: YAML as is, or JSON `{"spec": "<yaml>"}`.
fn spec_from_body(headers: &HeaderMap, body: &[u8]) -> Result<String, ApiError> {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") {
        let b: CreateBody = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                "bad_body",
                format!("{e}; send {{\"spec\": \"<campaign YAML>\"}} or the YAML itself with Content-Type: application/yaml"),
            )
        })?;
        return Ok(b.spec);
    }
    String::from_utf8(body.to_vec()).map_err(|_| {
        ApiError::bad_request(
            "bad_body",
            "the campaign file is not UTF-8 text; save it as UTF-8",
        )
    })
}

/// The campaign file from the body, parsed and validated: the file as sent and the campaign.
pub(crate) fn campaign_from_body(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(String, waihu_campaign::Campaign), ApiError> {
    let spec = spec_from_body(headers, body)?;
    let campaign = waihu_campaign::Campaign::from_yaml(&spec).map_err(|e| {
        let issues: Vec<String> = e.issues.iter().map(|i| i.to_string()).collect();
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_campaign",
            format!(
                "the campaign file has {} problem(s); fix them and send it again: {}",
                issues.len(),
                issues.join("; ")
            ),
        )
    })?;
    Ok((spec, campaign))
}

async fn create_campaign(
    State(s): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    caller.require(Role::Operator, "creating campaigns")?;
    let (spec, campaign) = campaign_from_body(&headers, &body)?;
    let name = campaign.name.clone();
    let existed = s.store.campaign_by_name(&name).await?;
    let id = s
        .store
        .campaign_create(&name, &spec, &caller.actor, chrono::Utc::now())
        .await?;
    let row = get_campaign(&s, id).await?;
    let mut v = campaign_json(&s, &row, 0).await?;
    v["spec"] = json!(row.spec);
    let status = match existed {
        None => {
            v["created"] = json!(true);
            StatusCode::CREATED
        }
        Some(old) => {
            v["created"] = json!(false);
            v["spec_changed"] = json!(old.spec != spec);
            StatusCode::OK
        }
    };
    Ok((status, Json(v)).into_response())
}

async fn transition(
    s: AppState,
    caller: Caller,
    id: String,
    to: CampaignState,
    verb: &str,
) -> Result<Json<Value>, ApiError> {
    caller.require(Role::Operator, &format!("{verb} campaigns"))?;
    let id = parse_id(&id)?;
    let c = get_campaign(&s, id).await?;
    if c.state == to {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_transition",
            format!("campaign {id} is {to} already; nothing to do"),
        ));
    }
    s.store
        .campaign_set_state(id, to, &caller.actor, chrono::Utc::now())
        .await?;
    let row = get_campaign(&s, id).await?;
    let mut v = campaign_json(&s, &row, 0).await?;
    v["previous_state"] = json!(c.state);
    Ok(Json(v))
}

async fn start(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    transition(s, caller, id, CampaignState::Running, "starting").await
}

async fn pause(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    transition(s, caller, id, CampaignState::Paused, "pausing").await
}

async fn stop(
    State(s): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    transition(s, caller, id, CampaignState::Stopped, "stopping").await
}

fn scripts_dir(s: &AppState) -> PathBuf {
    s.store.data_dir().join(SCRIPTS_DIR)
}

/// Script files (`*.yaml`, not `*.cases.yaml` test files), by name (file
/// stem), sorted.
fn script_files(dir: &std::path::Path) -> Vec<(String, PathBuf)> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| {
            let file = p.file_name()?.to_str()?.to_string();
            let stem = file
                .strip_suffix(".yaml")
                .or_else(|| file.strip_suffix(".yml"))?;
            (!stem.ends_with(".cases")).then(|| (stem.to_string(), p.clone()))
        })
        .collect();
    out.sort();
    out
}

async fn load(path: PathBuf) -> Result<waihu_dialog::Program, ApiError> {
    tokio::task::spawn_blocking(move || waihu_dialog::load_file(&path))
        .await
        .map_err(|e| ApiError::internal(format!("loading a script: {e}")))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_script",
                format!("{e}; fix the script (waihu script check) and reload"),
            )
        })
}

/// The funnel of a script under its file name, else under its declared name.
async fn script_funnel(
    s: &AppState,
    stem: &str,
    p: &waihu_dialog::Program,
    campaign: Option<CampaignId>,
) -> Result<(String, Vec<waihu_store::FunnelRow>), ApiError> {
    let rows = s.store.funnel(campaign, stem).await?;
    if !rows.is_empty() || p.name == stem {
        return Ok((stem.to_string(), rows));
    }
    Ok((p.name.clone(), s.store.funnel(campaign, &p.name).await?))
}

async fn list_scripts(State(s): State<AppState>, _c: Caller) -> Result<Json<Value>, ApiError> {
    let mut items = Vec::new();
    for (name, path) in script_files(&scripts_dir(&s)) {
        match load(path).await {
            Ok(p) => {
                let (_, funnel) = script_funnel(&s, &name, &p, None).await?;
                let calls = funnel.iter().map(|r| r.entered).max().unwrap_or(0);
                items.push(json!({
                    "name": name,
                    "script": p.name,
                    "title": p.title,
                    "language": json!(p.language),
                    "states": p.states.len(),
                    "transitions": p.transition_count(),
                    "calls": calls,
                }));
            }
            Err(e) => items.push(json!({"name": name, "error": e.message})),
        }
    }
    Ok(Json(json!({"dir": scripts_dir(&s), "items": items})))
}

#[derive(Deserialize)]
struct ScriptQ {
    campaign: Option<i64>,
}

async fn show_script(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    Q(q): Q<ScriptQ>,
) -> Result<Json<Value>, ApiError> {
    let path = script_files(&scripts_dir(&s))
        .into_iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p)
        .ok_or_else(|| {
            ApiError::not_found(
                "no_such_script",
                format!(
                    "no script '{name}' in {}; list them at /api/scripts",
                    scripts_dir(&s).display()
                ),
            )
        })?;
    let p = load(path).await?;
    let (key, funnel) = script_funnel(&s, &name, &p, q.campaign.map(CampaignId)).await?;
    let g = script_graph(&p, &funnel);
    Ok(Json(json!({
        "name": name,
        "script": p.name,
        "funnel_key": key,
        "title": p.title,
        "language": json!(p.language),
        "start": p.states.get(p.start as usize).map(|st| st.name.clone()),
        "graph": g,
    })))
}
