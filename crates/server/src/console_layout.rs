//! Where the flow canvas draws each state of a saved script, as the people
//! editing it arranged them: `GET`/`PUT /api/scripts/{name}/layout`.
//!
//! A layout is presentation, not behaviour, so it lives beside the script
//! (`<scripts>/.layout/<name>.json`), not in it: the YAML (and its version
//! history and audit) changes only when the script does. A state without a
//! position is placed by the automatic layering; positions of states the
//! script no longer has are dropped on the next save of the layout.
use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::api::J;
use crate::auth::{Caller, Need, Role};
use crate::console::{check_name, scripts_dir, write_atomic};
use crate::error::ApiError;
use crate::{AppState, Routes};

const LAYOUT_DIR: &str = ".layout";
/// More states than any script the validator accepts would draw legibly.
pub const MAX_POSITIONS: usize = 500;
/// The canvas's coordinates are its own units (a state box is 150 × 44).
const MAX_COORD: f64 = 100_000.0;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LayoutBody {
    /// State name → the top-left corner of its box.
    positions: BTreeMap<String, Point>,
}

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "GET",
        "/api/scripts/{name}/layout",
        Need::Min(Role::Analyst),
        get(read),
    )
    .add(
        "PUT",
        "/api/scripts/{name}/layout",
        Need::Min(Role::Analyst),
        axum::routing::put(write),
    )
}

fn path(s: &AppState, name: &str) -> std::path::PathBuf {
    scripts_dir(s).join(LAYOUT_DIR).join(format!("{name}.json"))
}

/// The positions checked: printable state names, finite coordinates on the
/// canvas, a bounded count.
fn check(positions: &BTreeMap<String, Point>) -> Result<(), ApiError> {
    if positions.len() > MAX_POSITIONS {
        return Err(ApiError::bad_request(
            "too_many",
            format!("{} positions; at most {MAX_POSITIONS}", positions.len()),
        ));
    }
    for (state, p) in positions {
        // Only a key in this file: any state the script can name (the editor's and the
        // validator's naming rules stay theirs), bounded and printable.
        let name_ok = !state.is_empty()
            && state.chars().count() <= 64
            && !state.chars().any(char::is_control);
        if !name_ok {
            return Err(ApiError::bad_request(
                "bad_state",
                format!("positions: {state:?} is not a state name (1–64 characters, none a control character)"),
            ));
        }
        for (axis, v) in [("x", p.x), ("y", p.y)] {
            if !v.is_finite() || !(-MAX_COORD..=MAX_COORD).contains(&v) {
                return Err(ApiError::bad_request(
                    "bad_position",
                    format!(
                        "positions.{state}.{axis}: {v} is not a coordinate within ±{MAX_COORD}"
                    ),
                ));
            }
        }
    }
    Ok(())
}

async fn read(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    check_name(&name)?;
    let positions: BTreeMap<String, Point> = match std::fs::read_to_string(path(&s, &name)) {
        Ok(text) => serde_json::from_str(&text).unwrap_or_else(|e| {
            // A damaged layout costs the arrangement, never the script.
            tracing::warn!(script = %name, error = %e, "unreadable flow layout, drawing the automatic one");
            BTreeMap::new()
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(ApiError::internal(format!("reading the layout of {name}: {e}"))),
    };
    Ok(Json(json!({"name": name, "positions": positions})))
}

async fn write(
    State(s): State<AppState>,
    _c: Caller,
    Path(name): Path<String>,
    J(b): J<LayoutBody>,
) -> Result<Json<Value>, ApiError> {
    check_name(&name)?;
    if !scripts_dir(&s).join(format!("{name}.yaml")).is_file() {
        return Err(ApiError::not_found(
            "no_such_script",
            format!("no script '{name}' to keep a layout for; save the script first"),
        ));
    }
    check(&b.positions)?;
    let text = serde_json::to_string(&b.positions)
        .map_err(|e| ApiError::internal(format!("layout: {e}")))?;
    write_atomic(&path(&s, &name), &text)
        .map_err(|e| ApiError::internal(format!("writing the layout of {name}: {e}")))?;
    Ok(Json(
        json!({"ok": true, "name": name, "states": b.positions.len()}),
    ))
}
