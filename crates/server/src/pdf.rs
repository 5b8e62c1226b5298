//! Reports as PDF (`format=pdf` wherever CSV and XLSX are offered): the same
//! rows as the CSV, as a table with a CJK font subset embedded (`waihu-pdf`).
//! The font is the system's: `WAIHU_PDF_FONT` (a path, `PATH#INDEX` for a
//! face of a collection), else the first installed of a few common CJK fonts
//! (`fonts-wqy-microhei` is in `scripts/deps/server.apt`).
use std::sync::{Arc, OnceLock};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// The environment variable naming the font file.
pub const FONT_ENV: &str = "WAIHU_PDF_FONT";

/// Installed CJK fonts tried in order when `WAIHU_PDF_FONT` is not set.
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
];

/// A PDF has at most this many rows (about 130 pages); the CSV and XLSX of
/// the same report have all of them, and the PDF says so.
pub const MAX_ROWS: usize = 5_000;

fn load() -> Result<Arc<waihu_pdf::Font>, String> {
    let (path, index) = match std::env::var(FONT_ENV) {
        Ok(v) if !v.trim().is_empty() => match v.rsplit_once('#') {
            Some((p, i)) => (
                p.to_string(),
                i.parse()
                    .map_err(|_| format!("{FONT_ENV}={v}: the face index after # must be a number"))?,
            ),
            None => (v, 0),
        },
        _ => (
            FONT_CANDIDATES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .ok_or_else(|| {
                    format!(
                        "no CJK font installed for PDF reports: apt-get install fonts-wqy-microhei, or set {FONT_ENV}"
                    )
                })?
                .to_string(),
            0,
        ),
    };
    let data = std::fs::read(&path).map_err(|e| format!("{path}: {e}"))?;
    waihu_pdf::Font::from_bytes(data, index)
        .map(Arc::new)
        .map_err(|e| format!("{path}: {e}"))
}

/// The font, loaded on the first PDF (and the failure, remembered: it names the fix).
fn font() -> Result<Arc<waihu_pdf::Font>, ApiError> {
    static FONT: OnceLock<Result<Arc<waihu_pdf::Font>, String>> = OnceLock::new();
    FONT.get_or_init(load)
        .clone()
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "pdf_font_missing", e))
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    }
}

/// `items` as a PDF table titled `name`, with the columns of the CSV.
pub(crate) fn response(
    name: &str,
    columns: &[&str],
    items: &[Value],
) -> Result<Response, ApiError> {
    let font = font()?;
    let rows: Vec<Vec<String>> = items
        .iter()
        .take(MAX_ROWS)
        .map(|it| columns.iter().map(|c| cell(it.get(*c))).collect())
        .collect();
    let now = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    let subtitle = if items.len() > MAX_ROWS {
        format!(
            "{now} · 前 {MAX_ROWS} 行，共 {} 行（CSV/XLSX 含全部）/ first {MAX_ROWS} of {} rows (CSV and XLSX have all)",
            items.len(),
            items.len()
        )
    } else {
        format!("{now} · {} 行 / rows", items.len())
    };
    let columns: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
    let title = format!("waihu · {name}");
    let body = waihu_pdf::table(
        &font,
        &waihu_pdf::Table {
            title: &title,
            subtitle: &subtitle,
            columns: &columns,
            rows: &rows,
        },
    )
    .map_err(|e| ApiError::internal(format!("writing PDF: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.pdf\""),
            ),
        ],
        body,
    )
        .into_response())
}
