//! A customer row as an import produces it and the store seals it. It lives
//! here, not in `waihu-ingest`, so the store can take it without depending on
//! the CSV machinery.
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::Attrs;

/// How a customer's zone was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TzSource {
    /// From a time-zone column in the file.
    Column,
    /// From the number: its region has one zone, or its area code is known.
    Number,
    /// From the number's region, which spans several zones: most populous zone.
    RegionGuess,
}

impl TzSource {
    /// The stored spelling (the serde name).
    pub fn as_str(self) -> &'static str {
        match self {
            TzSource::Column => "column",
            TzSource::Number => "number",
            TzSource::RegionGuess => "region_guess",
        }
    }
}

/// A valid customer row, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerRecord {
    /// Line of the source file (for messages about the row).
    pub line: u64,
    pub phone_e164: String,
    pub name: Option<String>,
    /// Where the number belongs: `province/city` for a Chinese number the
    /// geo table (waihu-geo) knows (`广东/深圳`; the province alone, `辽宁`,
    /// for a fixed-line area code shared by several cities), else the ISO
    /// 3166 country of the number (`CN`, `US`).
    pub region: String,
    pub tz: Tz,
    pub tz_source: TzSource,
    pub attrs: Attrs,
    /// From a consent column (`consent`, `opt_in`, `同意`…): `None` when the file has
    /// none or the cell is empty (a re-import then keeps what is stored).
    pub consent: Option<bool>,
}
