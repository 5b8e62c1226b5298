//! `POST /api/customers/import`: a CSV or XLSX body imported through `waihu-import`,
//! the same pipeline as `waihu customers import`, answering with the same
//! JSON report as its `--json` line.
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use serde::Deserialize;
use waihu_import::{ImportError, ImportOptions};

use crate::api::Q;
use crate::auth::Need;
use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::{AppState, Routes};

/// Largest CSV body accepted (the body is held in memory while it is read):
/// about half a million rows of a typical CRM export.
pub const IMPORT_BODY_LIMIT: usize = 64 << 20;

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "POST",
        "/api/customers/import",
        Need::Min(Role::Admin),
        post(import_customers).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT)),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportQ {
    /// File name for the report, the imports table and the rejects file.
    #[serde(default = "upload_name")]
    name: String,
    #[serde(default = "cn")]
    region: String,
    #[serde(default = "batch")]
    batch: usize,
}

fn upload_name() -> String {
    "upload.csv".into()
}

fn cn() -> String {
    "CN".into()
}

fn batch() -> usize {
    ImportOptions::default().batch
}

async fn import_customers(
    State(s): State<AppState>,
    caller: Caller,
    Q(q): Q<ImportQ>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.require(Role::Admin, "importing customers")?;
    let body = body.map_err(|e| {
        ApiError::new(
            e.status(),
            "bad_body",
            format!(
                "{}; send the CSV file as the body (at most {} MiB)",
                e.body_text(),
                IMPORT_BODY_LIMIT >> 20
            ),
        )
    })?;
    let opts = ImportOptions {
        region: q.region,
        batch: q.batch,
        geo: waihu_import::installed_geo(s.store.home()).map_err(import_error)?,
        ..ImportOptions::default()
    };
    let report = waihu_import::import_bytes(&s.store, &q.name, body.to_vec(), &opts, &mut ())
        .await
        .map_err(import_error)?;
    Ok((StatusCode::CREATED, Json(report)).into_response())
}

/// The error with its causes on one line, as the CLI prints it.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        line.push_str(": ");
        line.push_str(&c.to_string());
        cause = c.source();
    }
    line
}

fn import_error(e: ImportError) -> ApiError {
    match e {
        ImportError::Store(e) => e.into(),
        ImportError::Read { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_csv", chain(&e))
        }
        ImportError::Xlsx { .. } => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_xlsx", chain(&e))
        }
        ImportError::Options(_) => ApiError::bad_request("bad_query", chain(&e)),
        other => {
            tracing::error!(error = %chain(&other), "import");
            ApiError::internal(format!(
                "the import failed: {}; check the server log and the data directory",
                chain(&other)
            ))
        }
    }
}
