//! A do-not-call list file into the store: one number per line, or a CSV
//! whose first column is the number (UTF-8 or GBK; a first line without
//! digits is a header). Numbers are normalised to E.164 in `region`; a line
//! that is not a number is reported with its line number and skipped.
use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_store::{Store, StoreError};

/// Where the numbers go and why.
#[derive(Debug, Clone)]
pub struct DncImport<'a> {
    /// `global` or a campaign name.
    pub scope: &'a str,
    pub reason: &'a str,
    /// Region for numbers without a country code (ISO 3166).
    pub region: &'a str,
}

/// What a DNC import did (the `--json` line of `waihu dnc import`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DncReport {
    pub added: u64,
    pub already_listed: u64,
    pub rejected: u64,
}

/// Adds every number of `bytes` at `now`; `reject(line, why)` hears of each
/// line that is not a number (1-based line numbers).
pub async fn import_dnc(
    store: &Store,
    bytes: &[u8],
    to: &DncImport<'_>,
    now: DateTime<Utc>,
    reject: &mut dyn FnMut(usize, &str),
) -> Result<DncReport, StoreError> {
    let (text, _, _) = waihu_ingest::detect_encoding(bytes, true).decode(bytes);
    let mut report = DncReport::default();
    for (i, line) in text.lines().enumerate() {
        let cell = line
            .split(',')
            .next()
            .unwrap_or("")
            .trim()
            .trim_matches('"');
        if cell.is_empty() || (i == 0 && !cell.chars().any(|c| c.is_ascii_digit())) {
            continue; // blank line or header
        }
        match waihu_phone::normalize_phone(cell, to.region) {
            Ok((e164, _)) => {
                if store.dnc_add(&e164, to.scope, to.reason, now).await? {
                    report.added += 1;
                } else {
                    report.already_listed += 1;
                }
            }
            Err(why) => {
                report.rejected += 1;
                reject(i + 1, &why);
            }
        }
    }
    Ok(report)
}
