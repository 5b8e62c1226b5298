//! Segment classification over the whole store: every customer's attributes
//! through a rule set ([`waihu_segment::RuleSet`]), counted per segment with a
//! few samples, and — when applied — stored with the rule definitions.
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use waihu_core::{mask_name, mask_phone, CustomerId};
use waihu_segment::RuleSet;
use waihu_store::{SegmentDef, Store, StoreError};

/// What classifying every customer found; segments by name (`None`: no rule matched).
pub struct Classified<'r> {
    rules: &'r RuleSet,
    pub total: u64,
    /// Customers actually classified when the counts are estimates from a
    /// sample ([`classify_sample`]); `None` when every customer was.
    pub sampled: Option<u64>,
    counts: BTreeMap<Option<&'r str>, u64>,
    samples: BTreeMap<Option<&'r str>, Vec<CustomerId>>,
    /// Every customer's segment, when kept for [`Classified::apply`].
    assignments: Vec<(CustomerId, Option<String>)>,
}

/// A masked sample customer of a segment.
#[derive(Debug, Serialize)]
pub struct Sample {
    pub id: CustomerId,
    pub phone: String,
    pub name: Option<String>,
}

/// One segment's line of a preview (the `--json` shape of `waihu segments preview`).
#[derive(Debug, Serialize)]
pub struct SegmentRow<'a> {
    pub segment: Option<&'a str>,
    pub description: Option<&'a str>,
    pub rule: Option<&'a str>,
    pub customers: u64,
    pub share: f64,
    pub samples: Vec<Sample>,
}

/// Classifies every stored customer as of `today`, keeping `samples` ids per
/// segment; with `keep`, every assignment too (for [`Classified::apply`]).
pub async fn classify_all<'r>(
    store: &Store,
    rules: &'r RuleSet,
    today: NaiveDate,
    samples: usize,
    keep: bool,
) -> Result<Classified<'r>, StoreError> {
    let mut out = Classified {
        rules,
        total: 0,
        sampled: None,
        counts: BTreeMap::new(),
        samples: BTreeMap::new(),
        assignments: Vec::new(),
    };
    let mut cursor = 0;
    loop {
        let page = store.customer_attrs(cursor, 20_000).await?;
        let Some((last, _)) = page.last() else { break };
        cursor = last.0;
        for (id, attrs) in &page {
            let seg = rules.classify(attrs, today);
            *out.counts.entry(seg).or_default() += 1;
            let s = out.samples.entry(seg).or_default();
            if s.len() < samples {
                s.push(*id);
            }
            if keep {
                out.assignments.push((*id, seg.map(str::to_string)));
            }
            out.total += 1;
        }
    }
    Ok(out)
}

/// Estimates the segment counts from about `sample` customers read in
/// `windows` runs spread evenly over the id range (ids are dense: imports
/// number customers in order), scaled to the stored total. For a preview as
/// rules are typed over a large store; [`classify_all`] gives exact counts.
pub async fn classify_sample<'r>(
    store: &Store,
    rules: &'r RuleSet,
    today: NaiveDate,
    samples: usize,
    sample: usize,
    windows: usize,
) -> Result<Classified<'r>, StoreError> {
    let total = store.customer_count().await?.max(0) as u64;
    let windows = windows.max(1) as u64;
    let per = (sample as u64 / windows).max(1);
    let mut counts: BTreeMap<Option<&'r str>, u64> = BTreeMap::new();
    let mut shown: BTreeMap<Option<&'r str>, Vec<CustomerId>> = BTreeMap::new();
    let mut seen = 0u64;
    for w in 0..windows {
        let start = (total * w / windows) as i64;
        for (id, attrs) in store.customer_attrs(start, per as i64).await? {
            let seg = rules.classify(&attrs, today);
            *counts.entry(seg).or_default() += 1;
            let s = shown.entry(seg).or_default();
            if s.len() < samples {
                s.push(id);
            }
            seen += 1;
        }
    }
    let scale = if seen == 0 {
        0.0
    } else {
        total as f64 / seen as f64
    };
    Ok(Classified {
        rules,
        total,
        sampled: Some(seen),
        counts: counts
            .into_iter()
            .map(|(k, n)| (k, (n as f64 * scale).round() as u64))
            .collect(),
        samples: shown,
        assignments: Vec::new(),
    })
}

impl<'r> Classified<'r> {
    /// Stores every customer's segment and the rule definitions (`source`
    /// names the rule file) at `now`. Needs `keep` at classification.
    pub async fn apply(
        &self,
        store: &Store,
        source: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let defs: Vec<SegmentDef> = self
            .rules
            .segments()
            .iter()
            .map(|s| SegmentDef {
                name: s.name.clone(),
                expr: s.rule.clone(),
                priority: s.priority,
                description: s.description.clone(),
            })
            .collect();
        store
            .apply_segments(&self.assignments, &defs, source, now)
            .await
    }

    /// One row per segment in priority order, then the default, then
    /// unmatched, with masked samples read from the store.
    pub async fn rows(&self, store: &Store) -> Result<Vec<SegmentRow<'r>>, StoreError> {
        let rules = self.rules;
        let mut order: Vec<Option<&str>> = rules.names().into_iter().map(Some).collect();
        if rules.default_segment().is_none() {
            order.push(None);
        }
        let mut rows = Vec::new();
        for seg in order {
            let def = seg.and_then(|n| rules.segments().iter().find(|s| s.name == n));
            let mut shown = Vec::new();
            for id in self.samples.get(&seg).into_iter().flatten() {
                if let Some(c) = store.customer(*id).await? {
                    shown.push(Sample {
                        id: c.id,
                        phone: mask_phone(&c.phone),
                        name: c.name.as_deref().map(mask_name),
                    });
                }
            }
            let n = self.counts.get(&seg).copied().unwrap_or(0);
            rows.push(SegmentRow {
                segment: seg,
                description: def.and_then(|d| d.description.as_deref()),
                rule: def.map(|d| d.rule.as_str()),
                customers: n,
                share: if self.total == 0 {
                    0.0
                } else {
                    n as f64 / self.total as f64
                },
                samples: shown,
            });
        }
        Ok(rows)
    }
}
