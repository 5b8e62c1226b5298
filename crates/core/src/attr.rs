//! Typed customer attributes: whatever extra columns a CRM export carries,
//! kept with a type so segmentation rules can compare them.
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// One attribute value. Serialised externally tagged: `{"number": 6.0}`,
/// `{"date": "2026-01-31"}`, `{"text": "金卡"}`, `{"bool": true}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrValue {
    Number(f64),
    Date(NaiveDate),
    Text(String),
    Bool(bool),
}

/// The kind of an attribute column, decided once per import from its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AttrKind {
    Number,
    Date,
    Text,
    Bool,
}

impl AttrValue {
    pub fn kind(&self) -> AttrKind {
        match self {
            AttrValue::Number(_) => AttrKind::Number,
            AttrValue::Date(_) => AttrKind::Date,
            AttrValue::Text(_) => AttrKind::Text,
            AttrValue::Bool(_) => AttrKind::Bool,
        }
    }
}

impl AttrKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AttrKind::Number => "number",
            AttrKind::Date => "date",
            AttrKind::Text => "text",
            AttrKind::Bool => "bool",
        }
    }
}

/// A customer's attributes by name (names are identifiers such as `purchase_freq`).
pub type Attrs = BTreeMap<String, AttrValue>;

/// Names and kinds of the attributes known to the store (what rules may use).
pub type AttrSchema = BTreeMap<String, AttrKind>;
