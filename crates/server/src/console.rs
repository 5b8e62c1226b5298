//! The operations console (`/console`) and the API behind it: what operations
//! staff need to work without a terminal. Segment rules are checked and
//! previewed as they are typed; scripts are validated as they are typed, saved
//! with a version history (who saved what, in the audit log) and chatted with;
//! an import's rejected rows can be downloaded.
//!
//! Validation answers are results, not errors: `POST /api/segments/preview`
//! and `POST /api/scripts/validate` answer 200 with `ok: false` and the errors
//! (line, column, what) for text being edited; only a malformed request is a
//! 4xx. Saving an invalid script is refused (422) with the same errors.
//!
//! The flow canvas and the text stay in step both ways: `validate` answers the
//! text's outline (states and transitions as written, even while the script
//! has errors), and `POST /api/scripts/edit` turns one canvas edit (connect,
//! move or delete an arrow, add, rename or remove a state) into a change of a
//! few lines of the text (`waihu_dialog::edit`), answered with the new text and
//! its validation.
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use waihu_core::{Event, EventKind};
use waihu_dialog::{LoadError, Program};
use waihu_import::segments::classify_all;
use waihu_segment::RuleSet;

use crate::api::J;
use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::campaigns::SCRIPTS_DIR;
use crate::error::ApiError;
use crate::{AppState, Routes};

/// The page, with the example segment rules (examples/segments.yaml) and
/// campaign as the editors' starting texts.
static CONSOLE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let js = |text: &str| serde_json::to_string(text).expect("a string serialises");
    include_str!("console.html")
        .replace(
            "\"__SEGMENTS_EXAMPLE__\"",
            &js(include_str!("../../../examples/segments.yaml")),
        )
        .replace("\"__CAMPAIGN_EXAMPLE__\"", &js(CAMPAIGN_EXAMPLE))
        .replace(crate::api::SESSION_JS_SLOT, crate::api::SESSION_JS)
});

/// Largest script or rule text accepted.
pub(crate) const TEXT_LIMIT: usize = 1 << 20;
/// Where saved versions of a script are kept: `<scripts>/.history/<name>/v<N>.yaml`.
const HISTORY_DIR: &str = ".history";

/// The console's state in the server: the lock that makes script saves one at
/// a time, and (with the `engine` feature) chat sessions and trained NLUs.
#[derive(Default)]
pub struct Console {
    saves: tokio::sync::Mutex<()>,
    #[cfg(feature = "engine")]
    pub(crate) engine: crate::console_engine::EngineState,
    #[cfg(feature = "engine")]
    pub(crate) voice: crate::console_voice::VoiceState,
}

pub(crate) fn routes(r: Routes) -> Routes {
    let r = r
        .add("GET", "/console", Need::Public, get(console_page))
        .add(
            "GET",
            "/api/segments/attributes",
            Need::Min(Role::Analyst),
            get(attributes),
        )
        .add(
            "POST",
            "/api/segments/preview",
            Need::Min(Role::Analyst),
            post(preview),
        )
        .add(
            "POST",
            "/api/segments/apply",
            Need::Min(Role::Operator),
            post(apply),
        )
        .add(
            "POST",
            "/api/scripts/validate",
            Need::Min(Role::Analyst),
            post(validate),
        )
        .add(
            "POST",
            "/api/scripts/edit",
            Need::Min(Role::Analyst),
            post(edit),
        )
        .add(
            "GET",
            "/api/scripts/{name}/source",
            Need::Min(Role::Analyst),
            get(source),
        )
        .add(
            "PUT",
            "/api/scripts/{name}",
            Need::Min(Role::Operator),
            axum::routing::put(save).layer(axum::extract::DefaultBodyLimit::max(TEXT_LIMIT * 2)),
        )
        .add(
            "GET",
            "/api/scripts/{name}/history",
            Need::Min(Role::Analyst),
            get(history),
        )
        .add(
            "GET",
            "/api/scripts/{name}/history/{version}",
            Need::Min(Role::Analyst),
            get(history_version),
        )
        .add(
            "GET",
            "/api/rejects/{file}",
            Need::Min(Role::Admin),
            get(rejects),
        );
    let r = crate::console_layout::routes(r);
    #[cfg(feature = "engine")]
    let r = crate::console_voice::routes(crate::console_engine::routes(r));
    r
}

async fn console_page() -> Html<&'static str> {
    Html(CONSOLE.as_str())
}

pub(crate) fn too_long(what: &str, len: usize) -> Result<(), ApiError> {
    if len > TEXT_LIMIT {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the {what} is {len} bytes; at most {TEXT_LIMIT} are accepted"),
        ));
    }
    Ok(())
}

// ---- segments -------------------------------------------------------------

async fn attributes(State(s): State<AppState>, _c: Caller) -> Result<Json<Value>, ApiError> {
    let schema = s.store.attr_schema().await?;
    let items: Vec<Value> = schema
        .iter()
        .map(|(name, kind)| json!({"name": name, "kind": kind}))
        .collect();
    Ok(Json(json!({"items": items})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RulesBody {
    pub(crate) rules: String,
    #[serde(default = "three")]
    samples: usize,
    today: Option<NaiveDate>,
    /// Classify every customer even over a large store (a preview otherwise
    /// estimates from a sample above [`PREVIEW_EXACT_MAX`] customers).
    #[serde(default)]
    exact: bool,
}

/// Above this many customers a preview estimates from [`PREVIEW_SAMPLE`]
/// customers in 20 runs spread over the list (4.3 s → tens of ms at 1M);
/// applying always classifies everyone.
pub const PREVIEW_EXACT_MAX: i64 = 100_000;
pub const PREVIEW_SAMPLE: usize = 50_000;

fn three() -> usize {
    3
}

/// The rule text checked against the stored schema, or its errors as JSON.
async fn rules_of(s: &AppState, b: &RulesBody) -> Result<Result<RuleSet, Value>, ApiError> {
    too_long("rule text", b.rules.len())?;
    if b.samples > 20 {
        return Err(ApiError::bad_request(
            "bad_body",
            "samples: at most 20 masked samples per segment",
        ));
    }
    let schema = s.store.attr_schema().await?;
    Ok(
        RuleSet::parse(&b.rules, "rules", &schema).map_err(|errors| {
            let errors: Vec<Value> = errors
                .iter()
                .map(|e| {
                    json!({"line": e.line, "column": e.column, "rule": e.rule, "message": e.message})
                })
                .collect();
            json!({"ok": false, "errors": errors})
        }),
    )
}

async fn preview(
    State(s): State<AppState>,
    _c: Caller,
    J(b): J<RulesBody>,
) -> Result<Json<Value>, ApiError> {
    classify(&s, &b, None).await
}

async fn apply(
    State(s): State<AppState>,
    c: Caller,
    J(b): J<RulesBody>,
) -> Result<Json<Value>, ApiError> {
    c.require(Role::Operator, "applying segment rules")?;
    classify(&s, &b, Some(&c.actor)).await
}

/// Classify every customer under the rules; with `apply_as`, store the result
/// (the source recorded is "console:<actor>").
async fn classify(
    s: &AppState,
    b: &RulesBody,
    apply_as: Option<&str>,
) -> Result<Json<Value>, ApiError> {
    let rules = match rules_of(s, b).await? {
        Ok(r) => r,
        Err(errors) => return Ok(Json(errors)),
    };
    let today = b.today.unwrap_or_else(|| Utc::now().date_naive());
    let started = Instant::now();
    let estimate =
        apply_as.is_none() && !b.exact && s.store.customer_count().await? > PREVIEW_EXACT_MAX;
    let classified = if estimate {
        waihu_import::segments::classify_sample(
            &s.store,
            &rules,
            today,
            b.samples,
            PREVIEW_SAMPLE,
            20,
        )
        .await?
    } else {
        classify_all(&s.store, &rules, today, b.samples, apply_as.is_some()).await?
    };
    let seconds = started.elapsed().as_secs_f64();
    if let Some(actor) = apply_as {
        if classified.total == 0 {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "no_customers",
                "there are no customers to classify; import some first",
            ));
        }
        classified
            .apply(&s.store, &format!("console:{actor}"), Utc::now())
            .await?;
    }
    let rows = classified.rows(&s.store).await?;
    Ok(Json(json!({
        "ok": true,
        "applied": apply_as.is_some(),
        "total": classified.total,
        "sampled": classified.sampled,
        "seconds": seconds,
        "rows": rows,
    })))
}

// ---- scripts --------------------------------------------------------------

pub(crate) fn scripts_dir(s: &AppState) -> PathBuf {
    s.store.data_dir().join(SCRIPTS_DIR)
}

/// A script name as the console may use it: the file stem of
/// `<scripts>/<name>.yaml`, letters, digits, `_`, `-` and `.`, not starting
/// with a dot and not a test-case file.
pub(crate) fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && !name.ends_with(".cases")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "bad_name",
            format!(
                "script name {name:?}: use 1–64 letters, digits, '_', '-' or '.', not starting with '.' (e.g. order_confirmation.zh)"
            ),
        ))
    }
}

pub(crate) fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

pub(crate) fn diagnostics(e: &LoadError) -> Vec<Value> {
    e.diagnostics
        .iter()
        .map(|d| json!({"line": d.pos.line, "column": d.pos.col, "path": d.path, "message": d.message}))
        .collect()
}

fn summary(p: &Program) -> Value {
    let vars: Vec<Value> = p
        .required
        .iter()
        .map(|(_, n, example)| json!({"name": n, "example": example}))
        .collect();
    json!({
        "name": p.name,
        "title": p.title,
        "language": p.language,
        "start": p.states.get(p.start as usize).map(|st| st.name.clone()),
        "states": p.states.len(),
        "transitions": p.transition_count(),
        "intents": p.intents.iter().map(|i| i.name.clone()).collect::<Vec<_>>(),
        "variables": vars,
    })
}

async fn compile(yaml: String) -> Result<Result<Program, LoadError>, ApiError> {
    tokio::task::spawn_blocking(move || waihu_dialog::load_str(&yaml, "script"))
        .await
        .map_err(|e| ApiError::internal(format!("checking a script: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScriptBody {
    pub(crate) yaml: String,
}

async fn validate(_c: Caller, J(b): J<ScriptBody>) -> Result<Json<Value>, ApiError> {
    too_long("script", b.yaml.len())?;
    Ok(Json(checked(b.yaml).await?))
}

/// The validation answer: ok with a summary, or the errors; with the text's
/// outline for the canvas whenever the text is YAML.
async fn checked(yaml: String) -> Result<Value, ApiError> {
    let graph = waihu_dialog::edit::outline(&yaml).ok();
    Ok(match compile(yaml).await? {
        Ok(p) => json!({
            "ok": true,
            "errors": [],
            "script": summary(&p),
            "graph": graph,
        }),
        Err(e) => json!({"ok": false, "errors": diagnostics(&e), "graph": graph}),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditBody {
    pub(crate) yaml: String,
    pub(crate) edit: waihu_dialog::edit::Edit,
}

/// One canvas edit applied to the text: the new text, the line to show, and
/// its validation (as `validate`). An edit that cannot be made is 422 with
/// its code (`no_such_state`, `flow_style`, ...), the line and why; the text
/// sent is not changed.
async fn edit(_c: Caller, J(b): J<EditBody>) -> Result<Json<Value>, ApiError> {
    too_long("script", b.yaml.len())?;
    let done = waihu_dialog::edit::apply(&b.yaml, &b.edit)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.code, e.to_string()))?;
    too_long("script", done.text.len())?;
    let mut v = checked(done.text.clone()).await?;
    v["yaml"] = json!(done.text);
    v["line"] = json!(done.line);
    Ok(Json(v))
}

fn read_script(s: &AppState, name: &str) -> Result<Option<String>, ApiError> {
    let path = scripts_dir(s).join(format!("{name}.yaml"));
    match std::fs::read_to_string(&path) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ApiError::internal(format!(
            "reading {}: {e}",
            path.display()
        ))),
    }
}

fn history_dir(s: &AppState, name: &str) -> PathBuf {
    scripts_dir(s).join(HISTORY_DIR).join(name)
}

/// Saved versions of a script, ascending (0: the text on disk before the first save).
fn versions(s: &AppState, name: &str) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir(history_dir(s, name)) else {
        return Vec::new();
    };
    let mut v: Vec<u32> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let f = e.file_name();
            let f = f.to_str()?;
            f.strip_prefix('v')?.strip_suffix(".yaml")?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

async fn source(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_name(&name)?;
    let text = read_script(&s, &name)?.ok_or_else(|| {
        ApiError::not_found(
            "no_such_script",
            format!("no script '{name}'; list them at /api/scripts"),
        )
    })?;
    Ok(Json(json!({
        "name": name,
        "yaml": text,
        "sha256": sha256(&text),
        "version": versions(&s, &name).last().copied(),
    })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SaveBody {
    yaml: String,
    /// The SHA-256 of the text the editor started from (from `source`); a
    /// save over a text someone else changed since is refused (409). Absent
    /// when creating a script.
    base: Option<String>,
}

/// Lines added and removed, counted as multisets of lines (a moved line counts
/// as neither).
fn line_changes(old: &str, new: &str) -> (u32, u32) {
    let mut count: HashMap<&str, i64> = HashMap::new();
    for l in old.lines() {
        *count.entry(l).or_default() += 1;
    }
    for l in new.lines() {
        *count.entry(l).or_default() -= 1;
    }
    let removed: i64 = count.values().filter(|&&c| c > 0).sum();
    let added: i64 = -count.values().filter(|&&c| c < 0).sum::<i64>();
    (added as u32, removed as u32)
}

pub(crate) fn write_atomic(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|f| f.to_str()).unwrap_or("save")
    ));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

async fn save(
    State(s): State<AppState>,
    c: Caller,
    Path(name): Path<String>,
    J(b): J<SaveBody>,
) -> Result<Response, ApiError> {
    c.require(Role::Operator, "saving a script")?;
    check_name(&name)?;
    too_long("script", b.yaml.len())?;
    if let Err(e) = compile(b.yaml.clone()).await? {
        let n = e.diagnostics.len();
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "error": {"code": "invalid_script", "message": format!("the script has {n} problem(s); nothing was saved")},
                "errors": diagnostics(&e),
            })),
        )
            .into_response());
    }
    let _one_at_a_time = s.console.saves.lock().await;
    let old = read_script(&s, &name)?;
    let previous = old.as_deref().map(sha256);
    if previous != b.base {
        let message = match (&previous, &b.base) {
            (None, Some(_)) => format!("script '{name}' no longer exists; save without base to create it"),
            (Some(_), None) => format!("script '{name}' exists; open it first and save with its sha256 as base"),
            _ => format!("script '{name}' was changed by someone else since you opened it; reload it, merge, and save again"),
        };
        return Err(ApiError::new(StatusCode::CONFLICT, "conflict", message));
    }
    let sha = sha256(&b.yaml);
    if previous.as_deref() == Some(sha.as_str()) {
        return Ok(Json(json!({"name": name, "unchanged": true, "sha256": sha, "version": versions(&s, &name).last().copied()})).into_response());
    }
    let io = |e: std::io::Error| ApiError::internal(format!("saving script '{name}': {e}"));
    let have = versions(&s, &name);
    let hist = history_dir(&s, &name);
    if let (Some(old), true) = (&old, have.is_empty()) {
        write_atomic(&hist.join("v0.yaml"), old).map_err(io)?;
    }
    let version = have.last().copied().unwrap_or(0) + 1;
    write_atomic(&hist.join(format!("v{version}.yaml")), &b.yaml).map_err(io)?;
    write_atomic(&scripts_dir(&s).join(format!("{name}.yaml")), &b.yaml).map_err(io)?;
    let (added, removed) = line_changes(old.as_deref().unwrap_or(""), &b.yaml);
    s.store
        .append_event(&Event {
            at: Utc::now(),
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::ScriptSaved {
                name: name.clone(),
                actor: c.actor.clone(),
                version,
                sha256: sha.clone(),
                previous,
                added,
                removed,
            },
        })
        .await?;
    let status = if old.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(json!({"name": name, "version": version, "sha256": sha, "added": added, "removed": removed})),
    )
        .into_response())
}

async fn history(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_name(&name)?;
    let mut items = Vec::new();
    let mut before = None;
    // Newest first; a script's saves are few, but the scan is bounded anyway.
    for _ in 0..50 {
        let page = s
            .store
            .events_desc(Some("script_saved"), before, 500)
            .await?;
        let Some((last, _)) = page.last() else { break };
        before = Some(*last);
        for (id, e) in &page {
            if let EventKind::ScriptSaved {
                name: n,
                actor,
                version,
                sha256,
                added,
                removed,
                ..
            } = &e.kind
            {
                if *n == name {
                    items.push(json!({"event": id, "at": e.at, "version": version, "actor": actor, "sha256": sha256, "added": added, "removed": removed}));
                }
            }
        }
    }
    let on_disk = versions(&s, &name).first() == Some(&0);
    Ok(Json(
        json!({"name": name, "items": items, "original_kept": on_disk}),
    ))
}

async fn history_version(
    State(s): State<AppState>,
    _c: Caller,
    Path((name, version)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    check_name(&name)?;
    let path = history_dir(&s, &name).join(format!("v{version}.yaml"));
    let text = std::fs::read_to_string(&path).map_err(|_| {
        ApiError::not_found(
            "no_such_version",
            format!(
                "script '{name}' has no saved version {version}; see /api/scripts/{name}/history"
            ),
        )
    })?;
    Ok(Json(
        json!({"name": name, "version": version, "yaml": text, "sha256": sha256(&text)}),
    ))
}

/// The example the campaign editor starts with (no active dates: forecastable any day).
pub const CAMPAIGN_EXAMPLE: &str = include_str!("../../../examples/campaign-demo.zh.yaml");

// ---- imports --------------------------------------------------------------

async fn rejects(
    State(s): State<AppState>,
    c: Caller,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    c.require(Role::Admin, "downloading an import's rejected rows")?;
    let plain = !file.is_empty()
        && !file.starts_with('.')
        && file.ends_with(".csv")
        && !file.contains(['/', '\\']);
    if !plain {
        return Err(ApiError::bad_request(
            "bad_name",
            "name a rejects file as the import reported it (its last path component, ending in .csv)",
        ));
    }
    let path = s.store.data_dir().join("rejects").join(&file);
    let body = std::fs::read(&path).map_err(|_| {
        ApiError::not_found(
            "no_such_file",
            format!("no rejects file {file:?}; an import without rejected rows writes none"),
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        body,
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_changes_count_multisets() {
        assert_eq!(line_changes("a\nb\nc", "a\nb\nc"), (0, 0));
        assert_eq!(line_changes("a\nb\nc", "a\nc\nb"), (0, 0));
        assert_eq!(line_changes("a\nb", "a\nb\nd\nd"), (2, 0));
        assert_eq!(line_changes("a\nb\nb", "a\nx"), (1, 2));
        assert_eq!(line_changes("", "a"), (1, 0));
    }

    #[test]
    fn script_names_stay_inside_the_scripts_directory() {
        for ok in ["order_confirmation.zh", "a", "x-1_y.en"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".history",
            "../etc/passwd",
            "a/b",
            "x.cases",
            "名字",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
