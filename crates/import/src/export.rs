//! Customers out of the store: every customer as CSV (one column per
//! attribute of the schema) or as JSON lines, phone numbers and names masked
//! unless revealed — and a reveal is recorded (`pii_revealed`) page by page,
//! before that page is written.
use std::io::Write;

use chrono::{DateTime, Utc};
use serde_json::json;
use waihu_core::{mask_name, mask_phone, AttrValue, CustomerId};
use waihu_store::{Customer, Store, StoreError};

/// The file format of an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A header row (`id,phone,name,region,tz,segment,<attributes...>`), then one row each.
    Csv,
    /// One JSON object per customer, shaped as [`customer_view`].
    JsonLines,
}

/// Who sees the clear numbers and names, for the audit trail.
#[derive(Debug, Clone)]
pub struct Reveal {
    pub actor: String,
    /// Where the reveal happened, e.g. `cli --reveal`.
    pub context: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("writing the export")]
    Write(#[source] std::io::Error),
    #[error("writing the export")]
    Csv(#[source] csv::Error),
}

/// One customer as the CLI and the exports show it: phone and name masked
/// unless `reveal`.
pub fn customer_view(c: &Customer, reveal: bool) -> serde_json::Value {
    let (phone, name) = if reveal {
        (c.phone.clone(), c.name.clone())
    } else {
        (mask_phone(&c.phone), c.name.as_deref().map(mask_name))
    };
    json!({
        "id": c.id, "phone": phone, "name": name, "region": c.region, "tz": c.tz,
        "tz_source": c.tz_source, "segment": c.segment, "attrs": c.attrs,
        "created_at": c.created_at, "updated_at": c.updated_at,
    })
}

/// An attribute as text (a CSV cell, a console column).
pub fn attr_text(v: &AttrValue) -> String {
    match v {
        AttrValue::Number(n) => n.to_string(),
        AttrValue::Date(d) => d.to_string(),
        AttrValue::Text(t) => t.clone(),
        AttrValue::Bool(b) => b.to_string(),
    }
}

/// Records that `reveal.actor` saw the numbers and names of `shown` at `now`.
pub async fn record_reveal(
    store: &Store,
    reveal: &Reveal,
    shown: &[Customer],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    if shown.is_empty() {
        return Ok(());
    }
    let ids: Vec<CustomerId> = shown.iter().map(|c| c.id).collect();
    store
        .record_reveal(&reveal.actor, "phone,name", &ids, &reveal.context, now)
        .await
}

/// Writes every customer to `sink` in `format`; returns how many. With
/// `reveal`, each page's reveal is recorded at `now` before it is written.
pub async fn export<W: Write>(
    store: &Store,
    sink: W,
    format: Format,
    reveal: Option<&Reveal>,
    now: DateTime<Utc>,
) -> Result<u64, ExportError> {
    let schema = store.attr_schema().await?;
    let names: Vec<&String> = schema.keys().collect();
    // JSON lines go straight to the sink; CSV through a csv writer around it.
    let (mut lines, mut csv) = match format {
        Format::JsonLines => (Some(sink), None),
        Format::Csv => (None, Some(csv::Writer::from_writer(sink))),
    };
    if let Some(w) = csv.as_mut() {
        let mut head: Vec<&str> = vec!["id", "phone", "name", "region", "tz", "segment"];
        head.extend(names.iter().map(|s| s.as_str()));
        w.write_record(&head).map_err(ExportError::Csv)?;
    }
    let mut cursor = 0;
    let mut count = 0u64;
    loop {
        let page = store.customers(cursor, 2000).await?;
        let Some(last) = page.last() else { break };
        cursor = last.id.0;
        if let Some(r) = reveal {
            record_reveal(store, r, &page, now).await?;
        }
        for c in &page {
            count += 1;
            let v = customer_view(c, reveal.is_some());
            if let Some(out) = lines.as_mut() {
                writeln!(out, "{v}").map_err(ExportError::Write)?;
            }
            if let Some(w) = csv.as_mut() {
                let mut rec = vec![
                    c.id.to_string(),
                    v["phone"].as_str().unwrap_or("").to_string(),
                    v["name"].as_str().unwrap_or("").to_string(),
                    c.region.clone(),
                    c.tz.clone(),
                    c.segment.clone().unwrap_or_default(),
                ];
                rec.extend(
                    names
                        .iter()
                        .map(|n| c.attrs.get(*n).map(attr_text).unwrap_or_default()),
                );
                w.write_record(&rec).map_err(ExportError::Csv)?;
            }
        }
    }
    if let Some(mut out) = lines {
        out.flush().map_err(ExportError::Write)?;
    }
    if let Some(mut w) = csv {
        w.flush().map_err(ExportError::Write)?;
    }
    Ok(count)
}
