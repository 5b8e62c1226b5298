//! The audit chain's storage side: chaining rows as they are appended, signing
//! checkpoints, mirroring them to a file, chaining pre-chain databases once, and
//! reading everything back for `waihu-audit`'s verifier. The chain logic itself
//! (hashes, signatures, classification) is `waihu-audit`, which does no I/O.
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_audit::{Checkpoint, Content, Head, Policy, Report, RowIn, Signer, Verifier};
use waihu_core::Event;

use crate::{parse_ts, ts, Store, StoreError};

/// Directory of the checkpoint file, under the data directory.
pub const AUDIT_DIR: &str = "audit";
/// The checkpoint file: one signed checkpoint per line (JSON), append-only. Copy it
/// off the machine (or `chattr +a` it) so an intruder cannot rewrite both copies.
pub const CHECKPOINT_FILE: &str = "checkpoints.jsonl";

/// Rows read per query while verifying or chaining old rows.
const PAGE: i64 = 10_000;

/// What the store keeps for the chain: the signing key (derived from the master key,
/// so it is never on disk when the master key comes from the environment), the
/// checkpoint policy and the file mirror.
pub(crate) struct Audit {
    signer: Signer,
    policy: Mutex<Policy>,
    file: PathBuf,
    /// A checkpoint was committed that the file may not have yet.
    unsynced: AtomicBool,
    file_lock: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Audit({:?}, {})", self.signer, self.file.display())
    }
}

impl Audit {
    pub(crate) fn new(seed: &[u8; 32], data_dir: &Path) -> Audit {
        Audit {
            signer: Signer::from_seed(seed),
            policy: Mutex::new(Policy::default()),
            file: data_dir.join(AUDIT_DIR).join(CHECKPOINT_FILE),
            // Whatever a previous process committed but did not mirror is mirrored first.
            unsynced: AtomicBool::new(true),
            file_lock: tokio::sync::Mutex::new(()),
        }
    }

    fn policy(&self) -> Policy {
        *self.policy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `e` says the chain head row is missing or unreadable (tampering, not an
/// I/O failure): the store still opens so the chain can be verified.
pub(crate) fn head_unusable(e: &StoreError) -> bool {
    match e {
        StoreError::Corrupt { table, .. } => *table == "audit_head",
        StoreError::Db(sqlx::Error::RowNotFound) => true,
        StoreError::Db(sqlx::Error::Database(d)) => d.message().contains("audit_head"),
        _ => false,
    }
}

/// The chain head row.
struct HeadRow {
    head: Head,
    cp_seq: i64,
    cp_at: Option<DateTime<Utc>>,
}

async fn read_head(conn: &mut sqlx::SqliteConnection) -> Result<HeadRow, StoreError> {
    let (seq, event_id, hash, cp_seq, cp_at): (i64, i64, Vec<u8>, i64, Option<String>) =
        sqlx::query_as("SELECT seq, event_id, hash, cp_seq, cp_at FROM audit_head WHERE id = 1")
            .fetch_one(&mut *conn)
            .await?;
    let corrupt = |reason: String| StoreError::Corrupt {
        table: "audit_head",
        id: 1,
        reason,
    };
    let hash = hash
        .try_into()
        .map_err(|h: Vec<u8>| corrupt(format!("hash has {} bytes, expected 32", h.len())))?;
    let cp_at = match cp_at {
        Some(s) => Some(parse_ts(&s).ok_or_else(|| corrupt(format!("bad cp_at '{s}'")))?),
        None => None,
    };
    Ok(HeadRow {
        head: Head {
            seq,
            event_id,
            hash,
        },
        cp_seq,
        cp_at,
    })
}

async fn write_head(conn: &mut sqlx::SqliteConnection, head: &Head) -> Result<(), StoreError> {
    sqlx::query("UPDATE audit_head SET seq = ?, event_id = ?, hash = ? WHERE id = 1")
        .bind(head.seq)
        .bind(head.event_id)
        .bind(&head.hash[..])
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn insert_checkpoint(
    conn: &mut sqlx::SqliteConnection,
    audit: &Audit,
    head: &Head,
    at: DateTime<Utc>,
) -> Result<Checkpoint, StoreError> {
    let cp = audit.signer.sign(head, &ts(at));
    sqlx::query(
        "INSERT INTO audit_checkpoints (seq, event_id, head, at, key, sig) VALUES (?, ?, ?, ?, ?, ?)",
    )
    .bind(cp.seq)
    .bind(cp.event_id)
    .bind(&cp.head)
    .bind(&cp.at)
    .bind(&cp.key)
    .bind(&cp.sig)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET cp_seq = ?, cp_at = ? WHERE id = 1")
        .bind(cp.seq)
        .bind(&cp.at)
        .execute(&mut *conn)
        .await?;
    audit.unsynced.store(true, Ordering::Release);
    Ok(cp)
}

/// The chain fields and content of `events`, chained after the stored head, ready to
/// insert; and the head after them. Called inside the appending transaction (every
/// writer begins `IMMEDIATE`, so the head cannot move under it).
pub(crate) struct Chained {
    pub(crate) rows: Vec<(waihu_audit::chain::Link, String)>,
    head: HeadRow,
}

pub(crate) async fn chain_events(
    conn: &mut sqlx::SqliteConnection,
    events: &[Event],
) -> Result<Chained, StoreError> {
    let mut head = read_head(conn).await?;
    let rows = events
        .iter()
        .map(|e| {
            let body = serde_json::to_string(&e.kind).expect("event kinds serialise");
            let call = e.call.as_ref().map(|c| c.as_str());
            let at = ts(e.at);
            let link = head.head.append(
                0,
                &Content {
                    at: &at,
                    kind: e.kind.type_name(),
                    customer: e.customer.map(|c| c.0),
                    campaign: e.campaign.map(|c| c.0),
                    call,
                    body: &body,
                },
            );
            (link, body)
        })
        .collect();
    Ok(Chained { rows, head })
}

/// After the rows are inserted: move the head (to `last_id`, the last row's id) and
/// sign it when the policy says so.
pub(crate) async fn finish_chain(
    conn: &mut sqlx::SqliteConnection,
    audit: &Audit,
    mut chained: Chained,
    last_id: i64,
    last_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    chained.head.head.event_id = last_id;
    let h = chained.head;
    write_head(conn, &h.head).await?;
    let last_cp = h.cp_at.map(|at| (h.cp_seq, at));
    if audit.policy().due(h.head.seq, last_at, last_cp) {
        insert_checkpoint(conn, audit, &h.head, last_at).await?;
    }
    Ok(())
}

/// `waihu audit verify`'s answer: the verifier's report and what it was checked against.
#[derive(Clone, Debug, Serialize)]
pub struct AuditVerification {
    #[serde(flatten)]
    pub report: Report,
    /// The public key checkpoints had to be signed with.
    pub public_key: String,
    /// Checkpoint files read (the data directory's, and any given).
    pub checkpoint_files: Vec<String>,
    /// Checkpoints in the database table (absent if the table was dropped).
    pub checkpoints_in_db: Option<usize>,
}

type RawRow = (
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// Every column cast to the type the chain expects, so rows an intruder wrote with
/// other types are read (and then flagged) instead of failing the query.
const RAW_ROWS: &str = "SELECT id, CAST(seq AS INTEGER), CAST(prev_hash AS BLOB), CAST(hash AS BLOB), \
     CAST(at AS TEXT), CAST(type AS TEXT), CAST(customer_id AS INTEGER), CAST(campaign_id AS INTEGER), \
     CAST(call_id AS TEXT), CAST(body AS TEXT) FROM events WHERE id > ? ORDER BY id LIMIT ?";

fn row_in(r: RawRow) -> RowIn {
    RowIn {
        id: r.0,
        seq: r.1,
        prev_hash: r.2,
        hash: r.3,
        at: r.4,
        kind: r.5,
        customer: r.6,
        campaign: r.7,
        call: r.8,
        body: r.9,
    }
}

/// The last complete line's `seq` in the checkpoint file (0 when empty or absent).
fn file_last_seq(path: &Path) -> std::io::Result<i64> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(4096)))?;
    let mut tail = String::new();
    f.read_to_string(&mut tail)?;
    Ok(tail
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Checkpoint>(l).ok())
        .map(|c| c.seq)
        .next()
        .unwrap_or(0))
}

impl Store {
    /// Commit a transaction and mirror any checkpoint it signed to the checkpoint file.
    pub(crate) async fn commit(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> Result<(), StoreError> {
        tx.commit().await?;
        self.sync_checkpoint_file().await;
        Ok(())
    }

    /// Append committed checkpoints the file lacks. A failure is logged and retried on
    /// the next commit: the rows are committed either way, and `verify` reads both copies.
    pub(crate) async fn sync_checkpoint_file(&self) {
        if !self.audit.unsynced.swap(false, Ordering::AcqRel) {
            return;
        }
        let _g = self.audit.file_lock.lock().await;
        if let Err(e) = self.try_sync_checkpoint_file().await {
            self.audit.unsynced.store(true, Ordering::Release);
            tracing::warn!(file = %self.audit.file.display(), error = %e, "cannot append audit checkpoints; will retry");
        }
    }

    async fn try_sync_checkpoint_file(&self) -> Result<(), StoreError> {
        let path = &self.audit.file;
        let file_err = |source| StoreError::File {
            path: path.display().to_string(),
            source,
        };
        let last = file_last_seq(path).map_err(file_err)?;
        let cps = self.checkpoints_after(last).await?;
        if cps.is_empty() {
            return Ok(());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(file_err)?;
        }
        let mut text = String::new();
        for cp in &cps {
            text.push_str(&cp.to_line());
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(file_err)?;
        f.write_all(text.as_bytes()).map_err(file_err)?;
        f.sync_data().map_err(file_err)
    }

    async fn checkpoints_after(&self, seq: i64) -> Result<Vec<Checkpoint>, StoreError> {
        let rows: Vec<(i64, i64, String, String, String, String)> = sqlx::query_as(
            "SELECT seq, event_id, head, at, key, sig FROM audit_checkpoints WHERE seq > ? ORDER BY seq",
        )
        .bind(seq)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, event_id, head, at, key, sig)| Checkpoint {
                seq,
                event_id,
                head,
                at,
                key,
                sig,
            })
            .collect())
    }

    /// The hex Ed25519 public key that signs this store's checkpoints. Record it away
    /// from the machine and pass it to `verify` to pin it.
    pub fn audit_public_key(&self) -> String {
        self.audit.signer.public_hex()
    }

    /// The checkpoint file of this data directory.
    pub fn audit_checkpoint_file(&self) -> &Path {
        &self.audit.file
    }

    /// Sign every `every_events` appended events, or when an event comes `every` (event
    /// time) after the last checkpoint. Default 1,000 events or 5 minutes.
    pub fn set_audit_policy(&self, policy: Policy) {
        *self.audit.policy.lock().unwrap_or_else(|e| e.into_inner()) = policy;
    }

    /// Sign the chain head now (if it moved since the last checkpoint), e.g. from a
    /// timer so a quiet log's last rows do not wait for the next event. `now` is stamped.
    pub async fn audit_checkpoint(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let h = read_head(&mut tx).await?;
        if h.head.seq <= h.cp_seq {
            return Ok(None);
        }
        let cp = insert_checkpoint(&mut tx, &self.audit, &h.head, now).await?;
        self.commit(tx).await?;
        Ok(Some(cp))
    }

    /// Chain the rows written before migration 0007, once, in id order, and sign the
    /// head. Runs inside `open`; a crash midway rolls back and the next open redoes it.
    pub(crate) async fn chain_legacy_events(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let h = read_head(&mut tx).await?;
        let legacy_max: i64 =
            sqlx::query_scalar("SELECT legacy_max_id FROM audit_head WHERE id = 1")
                .fetch_one(&mut *tx)
                .await?;
        if h.head.seq > 0 || legacy_max == 0 {
            return Ok(0);
        }
        let mut head = Head::EMPTY;
        let mut last_at = None;
        let mut after = 0i64;
        loop {
            let rows: Vec<RawRow> = sqlx::query_as(RAW_ROWS)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&mut *tx)
                .await?;
            let rows: Vec<RowIn> = rows
                .into_iter()
                .map(row_in)
                .filter(|r| r.id <= legacy_max)
                .collect();
            let Some(last) = rows.last() else { break };
            after = last.id;
            for r in rows {
                let corrupt = |reason: &str| StoreError::Corrupt {
                    table: "events",
                    id: r.id,
                    reason: reason.into(),
                };
                let (Some(at), Some(kind), Some(body)) = (&r.at, &r.kind, &r.body) else {
                    return Err(corrupt("a NULL column in a pre-chain row"));
                };
                let link = head.append(
                    r.id,
                    &Content {
                        at,
                        kind,
                        customer: r.customer,
                        campaign: r.campaign,
                        call: r.call.as_deref(),
                        body,
                    },
                );
                last_at = Some(parse_ts(at).ok_or_else(|| corrupt("bad timestamp"))?);
                sqlx::query("UPDATE events SET seq = ?, prev_hash = ?, hash = ? WHERE id = ?")
                    .bind(link.seq)
                    .bind(&link.prev_hash[..])
                    .bind(&link.hash[..])
                    .bind(r.id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        let Some(last_at) = last_at else {
            return Ok(0);
        };
        write_head(&mut tx, &head).await?;
        insert_checkpoint(&mut tx, &self.audit, &head, last_at).await?;
        self.commit(tx).await?;
        tracing::info!(
            rows = head.seq,
            "chained the event rows written before the audit chain existed"
        );
        Ok(head.seq as u64)
    }

    /// Walk the whole chain and check it against every checkpoint copy: the database
    /// table, this data directory's checkpoint file and `extra_files` (copies kept
    /// elsewhere). `trusted_key`: the hex public key checkpoints must carry (default:
    /// this store's own). Reads with casts and tolerates dropped tables, so a database
    /// an intruder reshaped is reported on, not refused.
    pub async fn audit_verify(
        &self,
        trusted_key: Option<&str>,
        extra_files: &[PathBuf],
    ) -> Result<AuditVerification, StoreError> {
        let mut cps = Vec::new();
        let in_db = match self.checkpoints_after(i64::MIN).await {
            Ok(c) => {
                let n = c.len();
                cps.extend(c);
                Some(n)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the audit_checkpoints table");
                None
            }
        };
        let mut files = Vec::new();
        let own = self.audit.file.clone();
        for path in std::iter::once(&own).chain(extra_files) {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == &own => continue,
                Err(source) => {
                    return Err(StoreError::File {
                        path: path.display().to_string(),
                        source,
                    })
                }
            };
            let name = path.display().to_string();
            cps.extend(
                waihu_audit::checkpoint::parse_file(&text, &name)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            );
            files.push(name);
        }
        let key = trusted_key
            .map(str::to_owned)
            .unwrap_or_else(|| self.audit_public_key());
        let mut v = Verifier::new(&cps, Some(&key));
        let mut after = i64::MIN;
        'pages: loop {
            let rows: Vec<RawRow> = sqlx::query_as(RAW_ROWS)
                .bind(after)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.0;
            for r in rows {
                if !v.push(row_in(r)) {
                    break 'pages;
                }
            }
        }
        let stored_head: Option<(i64, i64)> =
            sqlx::query_as("SELECT seq, event_id FROM audit_head WHERE id = 1")
                .fetch_optional(&self.pool)
                .await
                .unwrap_or(None);
        Ok(AuditVerification {
            report: v.finish(stored_head),
            public_key: key,
            checkpoint_files: files,
            checkpoints_in_db: in_db,
        })
    }
}
