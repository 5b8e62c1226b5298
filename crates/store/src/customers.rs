//! Customers: sealed personal data, typed attributes, imports.
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde::Serialize;
use sqlx::{QueryBuilder, Sqlite};
use waihu_core::CustomerRecord;
use waihu_core::{AttrKind, AttrSchema, Attrs, CustomerId, Event, EventKind};

use crate::events::insert_events;
use crate::{parse_ts, ts, Store, StoreError};

/// Rows per multi-row upsert statement (12 bind parameters each).
const UPSERT_CHUNK: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ImportId(pub i64);

/// A customer as read back, personal data opened.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Customer {
    pub id: CustomerId,
    /// E.164 in clear. Show [`waihu_core::mask_phone`] of it unless revealing.
    pub phone: String,
    pub name: Option<String>,
    pub region: String,
    pub tz: String,
    pub tz_source: String,
    pub attrs: Attrs,
    pub segment: Option<String>,
    /// Whether the customer agreed to be called (`None`: the imports never said).
    pub consent: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A segment as stored: its rule and where it ranks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentDef {
    pub name: String,
    pub expr: String,
    pub priority: i64,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertStats {
    pub created: u64,
    pub updated: u64,
    /// Rows identical to what the last import stored: nothing written.
    pub unchanged: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImportStats {
    pub import: ImportId,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

/// One import in progress. Each [`Importer::write`] is one transaction:
/// customers, their events and the import's counters commit together, so a
/// crash or kill leaves whole rows only and the import marked `running`
/// (`interrupted` once the next import starts).
pub struct Importer<'a> {
    store: &'a Store,
    id: ImportId,
    source: String,
    max_id_before: i64,
    seen: HashSet<[u8; 16]>,
    stats: UpsertStats,
}

#[derive(Clone)]
struct Sealed {
    idx: String,
    /// The row's fresh data key and its wrapped form: kept for a new customer;
    /// for a known one its own key replaces it (see `write_sealed`).
    key: waihu_privacy::DataKey,
    wrapped: Vec<u8>,
    phone_ct: Vec<u8>,
    name_ct: Option<Vec<u8>>,
    region: String,
    tz: String,
    tz_source: &'static str,
    attrs: String,
    consent: Option<bool>,
    content_mac: String,
}

fn idx_key(idx: &str) -> [u8; 16] {
    let mut k = [0u8; 16];
    for (i, b) in idx.as_bytes().iter().take(32).enumerate() {
        let nib = (*b as char).to_digit(16).unwrap_or(0) as u8;
        k[i / 2] |= if i % 2 == 0 { nib << 4 } else { nib };
    }
    k
}

impl Store {
    /// Attribute names and kinds seen in earlier imports.
    pub async fn attr_schema(&self) -> Result<AttrSchema, StoreError> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, kind FROM attribute_defs")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(n, k)| {
                let kind = match k.as_str() {
                    "number" => AttrKind::Number,
                    "date" => AttrKind::Date,
                    "bool" => AttrKind::Bool,
                    "text" => AttrKind::Text,
                    _ => return None,
                };
                Some((n, kind))
            })
            .collect())
    }

    /// Start an import of `file`; records the attribute kinds this file uses.
    pub async fn begin_import(
        &self,
        file: &str,
        encoding: &str,
        kinds: &BTreeMap<String, AttrKind>,
        now: DateTime<Utc>,
    ) -> Result<Importer<'_>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("UPDATE imports SET status = 'interrupted' WHERE status = 'running'")
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO imports (file, encoding, started_at, status) VALUES (?, ?, ?, 'running') RETURNING id",
        )
        .bind(file)
        .bind(encoding)
        .bind(ts(now))
        .fetch_one(&mut *tx)
        .await?;
        for (name, kind) in kinds {
            sqlx::query("INSERT INTO attribute_defs (name, kind, source, first_seen) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO NOTHING")
                .bind(name)
                .bind(kind.as_str())
                .bind(file)
                .bind(ts(now))
                .execute(&mut *tx)
                .await?;
        }
        let max_id_before: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM customers")
            .fetch_one(&mut *tx)
            .await?;
        self.commit(tx).await?;
        Ok(Importer {
            store: self,
            id: ImportId(id),
            source: file.to_string(),
            max_id_before,
            seen: HashSet::new(),
            stats: UpsertStats::default(),
        })
    }

    pub async fn customer_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM customers")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Customers with id greater than `after`, in id order, personal data opened.
    pub async fn customers(&self, after: i64, limit: i64) -> Result<Vec<Customer>, StoreError> {
        let rows: Vec<CustomerRow> = sqlx::query_as(&format!(
            "{SELECT_CUSTOMER} WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(|r| self.open_row(r)).collect()
    }

    pub async fn customer(&self, id: CustomerId) -> Result<Option<Customer>, StoreError> {
        let row: Option<CustomerRow> = sqlx::query_as(&format!("{SELECT_CUSTOMER} WHERE id = ?"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.open_row(r)).transpose()
    }

    /// Find by E.164 number, through the blind index.
    pub async fn customer_by_phone(&self, e164: &str) -> Result<Option<Customer>, StoreError> {
        let row: Option<CustomerRow> =
            sqlx::query_as(&format!("{SELECT_CUSTOMER} WHERE phone_idx = ?"))
                .bind(self.vault.blind_index(e164))
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| self.open_row(r)).transpose()
    }

    /// Attributes only (nothing decrypted), for segmentation over many customers.
    pub async fn customer_attrs(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(CustomerId, Attrs)>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, attrs FROM customers WHERE id > ? ORDER BY id LIMIT ?")
                .bind(after)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, a)| {
                let attrs = serde_json::from_str(&a).map_err(|e| StoreError::Corrupt {
                    table: "customers",
                    id,
                    reason: format!("attrs: {e}"),
                })?;
                Ok((CustomerId(id), attrs))
            })
            .collect()
    }

    /// Store each customer's segment (None clears it). Grouped by segment,
    /// 500 ids per statement, one transaction.
    pub async fn set_segments(
        &self,
        assignments: &[(CustomerId, Option<String>)],
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        write_assignments(&mut tx, assignments).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Replace the stored segment definitions (what `segments apply` used).
    pub async fn save_segment_defs(
        &self,
        defs: &[SegmentDef],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        write_segment_defs(&mut tx, defs, now).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Apply a classification in one transaction: every customer's segment,
    /// the rule set that produced it, and a `segments_applied` event with the
    /// counts (`rules` names the rule file).
    pub async fn apply_segments(
        &self,
        assignments: &[(CustomerId, Option<String>)],
        defs: &[SegmentDef],
        rules: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut unsegmented = 0;
        for (_, seg) in assignments {
            match seg {
                Some(s) => *counts.entry(s.clone()).or_default() += 1,
                None => unsegmented += 1,
            }
        }
        let event = Event {
            at: now,
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::SegmentsApplied {
                rules: rules.to_string(),
                counts,
                unsegmented,
            },
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        write_assignments(&mut tx, assignments).await?;
        write_segment_defs(&mut tx, defs, now).await?;
        insert_events(&mut tx, &self.audit, &[event]).await?;
        self.commit(tx).await?;
        Ok(())
    }

    /// Stored segment definitions, highest priority first.
    pub async fn segment_defs(&self) -> Result<Vec<SegmentDef>, StoreError> {
        let rows: Vec<(String, String, i64, Option<String>)> = sqlx::query_as(
            "SELECT name, expr, priority, description FROM segments ORDER BY priority DESC, name",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(name, expr, priority, description)| SegmentDef {
                name,
                expr,
                priority,
                description,
            })
            .collect())
    }

    /// Customers per stored segment (None: no segment).
    pub async fn segment_counts(&self) -> Result<Vec<(Option<String>, i64)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT segment, COUNT(*) FROM customers GROUP BY segment ORDER BY COUNT(*) DESC",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Audit that `actor` saw `field` of a customer in clear.
    pub async fn record_reveal(
        &self,
        actor: &str,
        field: &str,
        customers: &[CustomerId],
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let events: Vec<Event> = customers
            .iter()
            .map(|c| Event {
                at: now,
                customer: Some(*c),
                campaign: None,
                call: None,
                kind: EventKind::PiiRevealed {
                    actor: actor.into(),
                    field: field.into(),
                    reason: reason.into(),
                },
            })
            .collect();
        self.append_events(&events).await
    }

    fn open_row(&self, r: CustomerRow) -> Result<Customer, StoreError> {
        let (
            id,
            idx,
            phone_ct,
            name_ct,
            region,
            tz,
            tz_source,
            attrs,
            segment,
            consent,
            created,
            updated,
            wrapped,
        ) = r;
        let key = wrapped
            .map(|w| self.vault.unwrap_data_key(&w))
            .transpose()?;
        let phone = self
            .vault
            .open_with(key.as_ref(), "customers", "phone", &idx, &phone_ct)?;
        let name = name_ct
            .map(|ct| {
                self.vault
                    .open_with(key.as_ref(), "customers", "name", &idx, &ct)
            })
            .transpose()?;
        let corrupt = |reason: String| StoreError::Corrupt {
            table: "customers",
            id,
            reason,
        };
        Ok(Customer {
            id: CustomerId(id),
            phone,
            name,
            region,
            tz,
            tz_source,
            attrs: serde_json::from_str(&attrs).map_err(|e| corrupt(format!("attrs: {e}")))?,
            segment,
            consent: consent.map(|c| c != 0),
            created_at: parse_ts(&created).ok_or_else(|| corrupt("created_at".into()))?,
            updated_at: parse_ts(&updated).ok_or_else(|| corrupt("updated_at".into()))?,
        })
    }
}

async fn write_assignments(
    conn: &mut sqlx::SqliteConnection,
    assignments: &[(CustomerId, Option<String>)],
) -> Result<(), StoreError> {
    let mut by_seg: BTreeMap<Option<&str>, Vec<i64>> = BTreeMap::new();
    for (id, seg) in assignments {
        by_seg.entry(seg.as_deref()).or_default().push(id.0);
    }
    for (seg, ids) in by_seg {
        for chunk in ids.chunks(500) {
            let mut q: QueryBuilder<Sqlite> = QueryBuilder::new("UPDATE customers SET segment = ");
            q.push_bind(seg);
            q.push(" WHERE id IN (");
            let mut sep = q.separated(", ");
            for id in chunk {
                sep.push_bind(*id);
            }
            q.push(")");
            q.build().execute(&mut *conn).await?;
        }
    }
    Ok(())
}

async fn write_segment_defs(
    conn: &mut sqlx::SqliteConnection,
    defs: &[SegmentDef],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM segments")
        .execute(&mut *conn)
        .await?;
    for d in defs {
        sqlx::query(
            "INSERT INTO segments (name, expr, priority, description, updated_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&d.name)
        .bind(&d.expr)
        .bind(d.priority)
        .bind(&d.description)
        .bind(ts(now))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

type CustomerRow = (
    i64,
    String,
    Vec<u8>,
    Option<Vec<u8>>,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<i64>,
    String,
    String,
    Option<Vec<u8>>,
);
const SELECT_CUSTOMER: &str = "SELECT c.id, c.phone_idx, c.phone_ct, c.name_ct, c.region, c.tz, c.tz_source, c.attrs, c.segment, c.consent, c.created_at, c.updated_at, k.wrapped FROM customers c LEFT JOIN customer_keys k ON k.customer_id = c.id";

/// Rows sealed for the store: blind index, ciphertexts, attributes as JSON.
pub struct SealedBatch(Vec<Sealed>);

impl SealedBatch {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Encrypt and index a batch of rows (CPU only, parallel; no database).
pub fn seal_batch(vault: &waihu_privacy::Vault, rows: &[CustomerRecord]) -> SealedBatch {
    SealedBatch(
        rows.par_iter()
            .with_min_len(64)
            .map(|r| {
                let idx = vault.blind_index(&r.phone_e164);
                let attrs = serde_json::to_string(&r.attrs).expect("attributes serialise");
                let (key, wrapped) = vault.new_data_key();
                Sealed {
                    phone_ct: key.seal("customers", "phone", &idx, &r.phone_e164),
                    name_ct: r
                        .name
                        .as_ref()
                        .map(|n| key.seal("customers", "name", &idx, n)),
                    key,
                    wrapped,
                    region: r.region.clone(),
                    tz: r.tz.name().to_string(),
                    tz_source: match r.tz_source {
                        waihu_core::TzSource::Column => "column",
                        waihu_core::TzSource::Number => "number",
                        waihu_core::TzSource::RegionGuess => "region_guess",
                    },
                    // Consent joins the content only when the row says it, so files
                    // without the column keep the macs (and `unchanged` counts) they had;
                    // so does a region finer than the country (`广东/深圳`), so rows
                    // stored with the country alone are updated once the geo table is there.
                    content_mac: vault.blind_index(&format!(
                        "content\x1f{}\x1f{}\x1f{}\x1f{}{}{}",
                        r.phone_e164,
                        r.name.as_deref().unwrap_or(""),
                        r.tz.name(),
                        attrs,
                        match r.consent {
                            None => "",
                            Some(true) => "\x1fconsent=1",
                            Some(false) => "\x1fconsent=0",
                        },
                        if r.region.contains(|c: char| !c.is_ascii_uppercase()) {
                            format!("\x1fregion={}", r.region)
                        } else {
                            String::new()
                        }
                    )),
                    consent: r.consent,
                    attrs,
                    idx,
                }
            })
            .collect(),
    )
}

impl Store {
    /// Rows of `chunk` whose number is already a customer with a data key,
    /// re-sealed under that key (so what was sealed for them before keeps
    /// opening, and erasing them shreds it all); the others as they are.
    async fn reseal_known<'a>(
        &self,
        conn: &mut sqlx::SqliteConnection,
        chunk: &[&'a Sealed],
    ) -> Result<Vec<std::borrow::Cow<'a, Sealed>>, StoreError> {
        let mut q: QueryBuilder<Sqlite> = QueryBuilder::new(
            "SELECT c.phone_idx, k.wrapped FROM customers c JOIN customer_keys k ON k.customer_id = c.id WHERE c.phone_idx IN (",
        );
        let mut sep = q.separated(", ");
        for s in chunk {
            sep.push_bind(&s.idx);
        }
        q.push(")");
        let known: HashMap<String, Vec<u8>> = q
            .build_query_as::<(String, Vec<u8>)>()
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        chunk
            .iter()
            .map(|s| {
                let Some(wrapped) = known.get(&s.idx) else {
                    return Ok(std::borrow::Cow::Borrowed(*s));
                };
                let key = self.vault.unwrap_data_key(wrapped)?;
                let reseal = |column: &str, ct: &[u8]| -> Result<Vec<u8>, StoreError> {
                    let pt = self.vault.open_bytes_with(
                        Some(&s.key),
                        "customers",
                        column,
                        &s.idx,
                        ct,
                    )?;
                    Ok(key.seal_bytes("customers", column, &s.idx, &pt))
                };
                let mut r = (*s).clone();
                r.phone_ct = reseal("phone", &s.phone_ct)?;
                r.name_ct = s
                    .name_ct
                    .as_deref()
                    .map(|ct| reseal("name", ct))
                    .transpose()?;
                r.key = key;
                r.wrapped = wrapped.clone();
                Ok(std::borrow::Cow::Owned(r))
            })
            .collect()
    }
}

impl Importer<'_> {
    pub fn id(&self) -> ImportId {
        self.id
    }

    /// Seal and upsert a batch of valid rows (same phone → update) in one transaction.
    pub async fn write(
        &mut self,
        rows: &[CustomerRecord],
        now: DateTime<Utc>,
    ) -> Result<UpsertStats, StoreError> {
        let sealed = seal_batch(&self.store.vault, rows);
        self.write_sealed(sealed, now).await
    }

    /// Upsert rows sealed by [`seal_batch`] (which callers may run on another
    /// thread, overlapping encryption with the database work).
    pub async fn write_sealed(
        &mut self,
        batch: SealedBatch,
        now: DateTime<Utc>,
    ) -> Result<UpsertStats, StoreError> {
        let t0 = std::time::Instant::now();
        let sealed = batch.0;
        // The same number twice in one batch: the later row wins.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(sealed.len());
        for (i, s) in sealed.iter().enumerate() {
            last.insert(&s.idx, i);
        }
        let mut batch_stats = UpsertStats {
            created: 0,
            updated: (sealed.len() - last.len()) as u64,
            unchanged: 0,
        };
        let unique: Vec<&Sealed> = sealed
            .iter()
            .enumerate()
            .filter(|(i, s)| last[s.idx.as_str()] == *i)
            .map(|(_, s)| s)
            .collect();

        let now_s = ts(now);
        let mut tx = self.store.pool.begin_with("BEGIN IMMEDIATE").await?;
        self.store.ensure_current_key(&mut tx).await?;
        let mut events = Vec::with_capacity(unique.len());
        for chunk in unique.chunks(UPSERT_CHUNK) {
            // Known numbers keep their data key: re-seal their fields under it.
            let chunk = self.store.reseal_known(&mut tx, chunk).await?;
            let chunk = &chunk[..];
            let mut qb: QueryBuilder<Sqlite> = QueryBuilder::new(
                "INSERT INTO customers (phone_idx, phone_ct, name_ct, region, tz, tz_source, attrs, consent, created_at, updated_at, import_id, content_mac) ",
            );
            qb.push_values(chunk, |mut b, s| {
                b.push_bind(&s.idx)
                    .push_bind(&s.phone_ct)
                    .push_bind(&s.name_ct)
                    .push_bind(&s.region)
                    .push_bind(&s.tz)
                    .push_bind(s.tz_source)
                    .push_bind(&s.attrs)
                    .push_bind(s.consent.map(i64::from))
                    .push_bind(&now_s)
                    .push_bind(&now_s)
                    .push_bind(self.id.0)
                    .push_bind(&s.content_mac);
            });
            // Re-import: attributes merge (a partial export must not wipe the
            // rest), a missing name keeps the stored one.
            qb.push(
                " ON CONFLICT(phone_idx) DO UPDATE SET \
                 name_ct = COALESCE(excluded.name_ct, customers.name_ct), \
                 region = excluded.region, tz = excluded.tz, tz_source = excluded.tz_source, \
                 attrs = json_patch(customers.attrs, excluded.attrs), \
                 consent = COALESCE(excluded.consent, customers.consent), \
                 updated_at = excluded.updated_at, import_id = excluded.import_id, \
                 content_mac = excluded.content_mac \
                 WHERE customers.content_mac <> excluded.content_mac \
                 RETURNING id, phone_idx",
            );
            let returned: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
            batch_stats.unchanged += (chunk.len() - returned.len()) as u64;
            let consent_of: HashMap<&str, Option<bool>> =
                chunk.iter().map(|s| (s.idx.as_str(), s.consent)).collect();
            let wrapped_of: HashMap<&str, &[u8]> = chunk
                .iter()
                .map(|s| (s.idx.as_str(), s.wrapped.as_slice()))
                .collect();
            // Created or updated rows without a key (new, or from before keys):
            // theirs is the one their fields were just sealed under.
            if !returned.is_empty() {
                let mut keys: QueryBuilder<Sqlite> = QueryBuilder::new(
                    "INSERT INTO customer_keys (customer_id, wrapped, created_at) ",
                );
                keys.push_values(&returned, |mut b, (id, idx)| {
                    b.push_bind(*id)
                        .push_bind(wrapped_of.get(idx.as_str()).copied().unwrap_or_default())
                        .push_bind(&now_s);
                });
                keys.push(" ON CONFLICT (customer_id) DO NOTHING");
                keys.build().execute(&mut *tx).await?;
            }
            for (id, idx) in returned {
                let consent = consent_of.get(idx.as_str()).copied().flatten();
                let first_time = self.seen.insert(idx_key(&idx));
                let created = id > self.max_id_before && first_time;
                let kind = if created {
                    batch_stats.created += 1;
                    EventKind::CustomerCreated {
                        source: self.source.clone(),
                        consent,
                    }
                } else {
                    batch_stats.updated += 1;
                    EventKind::CustomerUpdated {
                        source: self.source.clone(),
                        consent,
                    }
                };
                events.push(Event {
                    at: now,
                    customer: Some(CustomerId(id)),
                    campaign: None,
                    call: None,
                    kind,
                });
            }
        }
        let t_upsert = t0.elapsed();
        insert_events(&mut tx, &self.store.audit, &events).await?;
        let t_events = t0.elapsed();
        sqlx::query("UPDATE imports SET rows_created = rows_created + ?, rows_updated = rows_updated + ? WHERE id = ?")
            .bind(batch_stats.created as i64)
            .bind(batch_stats.updated as i64)
            .bind(self.id.0)
            .execute(&mut *tx)
            .await?;
        self.store.commit(tx).await?;
        tracing::debug!(rows = sealed.len(), ?t_upsert, ?t_events, total = ?t0.elapsed(), "import batch written");
        self.stats.created += batch_stats.created;
        self.stats.updated += batch_stats.updated;
        self.stats.unchanged += batch_stats.unchanged;
        Ok(batch_stats)
    }

    /// Mark the import done with its rejected-row count.
    pub async fn finish(
        self,
        rejected: u64,
        now: DateTime<Utc>,
    ) -> Result<ImportStats, StoreError> {
        sqlx::query(
            "UPDATE imports SET status = 'done', finished_at = ?, rows_rejected = ? WHERE id = ?",
        )
        .bind(ts(now))
        .bind(rejected as i64)
        .bind(self.id.0)
        .execute(&self.store.pool)
        .await?;
        Ok(ImportStats {
            import: self.id,
            created: self.stats.created,
            updated: self.stats.updated,
            unchanged: self.stats.unchanged,
            rejected,
        })
    }
}
