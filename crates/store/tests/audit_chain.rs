//! The audit chain against an intruder with write access to the database file: the
//! triggers are dropped and rows edited, deleted, inserted and reordered with raw SQL;
//! `audit_verify` must name the first bad row and what happened to it.
use std::path::Path;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sqlx::{Connection, SqliteConnection};
use waihu_audit::{Policy, Problem};
use waihu_core::{Event, EventKind};
use waihu_privacy::MasterKey;
use waihu_store::{Store, DB_FILE};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap()
}

fn key() -> MasterKey {
    MasterKey::from_bytes([5; 32])
}

fn ev(i: i64) -> Event {
    Event {
        at: t0() + Duration::seconds(i),
        customer: Some(waihu_core::CustomerId(i)),
        campaign: None,
        call: None,
        kind: EventKind::PiiRevealed {
            actor: format!("cli:user{i}"),
            field: "phone".into(),
            reason: "audit test".into(),
        },
    }
}

/// A store with 20 events (ids 1..=20), checkpoints every 5 events, closed again.
async fn twenty(dir: &Path) {
    let s = Store::open_with_key(dir, &key()).await.unwrap();
    s.set_audit_policy(Policy {
        every_events: 5,
        every: Duration::hours(1),
    });
    for i in 1..=8 {
        assert_eq!(s.append_event(&ev(i)).await.unwrap(), i);
    }
    s.append_events(&(9..=20).map(ev).collect::<Vec<_>>())
        .await
        .unwrap();
    s.close().await;
}

/// Raw access to the database with the protecting triggers dropped.
async fn intrude(dir: &Path) -> SqliteConnection {
    let mut c = SqliteConnection::connect(&format!("sqlite://{}", dir.join(DB_FILE).display()))
        .await
        .unwrap();
    for t in [
        "events_append_only_update",
        "events_append_only_delete",
        "events_chained_insert",
        "audit_checkpoints_append_only_update",
        "audit_checkpoints_append_only_delete",
    ] {
        sqlx::query(&format!("DROP TRIGGER IF EXISTS {t}"))
            .execute(&mut c)
            .await
            .unwrap();
    }
    c
}

async fn sql(c: &mut SqliteConnection, q: &str) {
    sqlx::raw_sql(q).execute(&mut *c).await.unwrap();
}

async fn verify(dir: &Path) -> waihu_store::AuditVerification {
    let s = Store::open_with_key(dir, &key()).await.unwrap();
    let v = s.audit_verify(None, &[]).await.unwrap();
    s.close().await;
    v
}

async fn first_bad(dir: &Path) -> (Problem, Option<i64>) {
    let v = verify(dir).await;
    let f = v.report.finding.expect("tampering is found");
    (f.problem, f.id)
}

async fn tampered(q: &str) -> (Problem, Option<i64>) {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let mut c = intrude(dir.path()).await;
    sql(&mut c, q).await;
    c.close().await.unwrap();
    first_bad(dir.path()).await
}

#[tokio::test]
async fn an_intact_chain_verifies_with_checkpoints_in_both_copies() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let v = verify(dir.path()).await;
    assert!(v.report.ok, "{v:?}");
    assert_eq!((v.report.rows, v.report.head_seq), (20, 20));
    // The first event, 5 events later (8 single appends), then the batch ending at 20.
    assert_eq!(v.checkpoints_in_db, Some(3));
    assert_eq!(v.report.checkpoints_matched, 3);
    assert_eq!(v.report.unsigned_rows, 0);
    let file = dir.path().join("audit/checkpoints.jsonl");
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), 3, "{lines}");
    // The file alone is a complete copy.
    let seqs: Vec<i64> = waihu_audit::checkpoint::parse_file(&lines, "f")
        .unwrap()
        .iter()
        .map(|c| c.seq)
        .collect();
    assert_eq!(seqs, [1, 6, 20]);
}

#[tokio::test]
async fn the_triggers_still_refuse_the_obvious() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let mut c =
        SqliteConnection::connect(&format!("sqlite://{}", dir.path().join(DB_FILE).display()))
            .await
            .unwrap();
    for q in [
        "UPDATE events SET body = '{}' WHERE id = 3",
        "DELETE FROM events WHERE id = 3",
        "UPDATE events SET seq = NULL WHERE id = 3",
        "INSERT INTO events (at, type, body) VALUES ('x', 'y', '{}')",
        "DELETE FROM audit_checkpoints",
    ] {
        let e = sqlx::raw_sql(q).execute(&mut c).await.unwrap_err();
        assert!(e.to_string().contains("append"), "{q}: {e}");
    }
}

#[tokio::test]
async fn names_an_edited_row() {
    assert_eq!(
        tampered("UPDATE events SET body = replace(body, 'user7', 'user9') WHERE id = 7").await,
        (Problem::Edited, Some(7))
    );
    assert_eq!(
        tampered("UPDATE events SET customer_id = NULL WHERE id = 12").await,
        (Problem::Edited, Some(12))
    );
}

#[tokio::test]
async fn names_a_deleted_row() {
    assert_eq!(
        tampered("DELETE FROM events WHERE id = 7").await,
        (Problem::Deleted, Some(7))
    );
}

#[tokio::test]
async fn names_an_inserted_row() {
    // Appended by hand at the end.
    assert_eq!(
        tampered("INSERT INTO events (at, type, body) VALUES ('2026-12-01T09:00:30.000000Z', 'pii_revealed', '{}')").await,
        (Problem::Inserted, Some(21))
    );
    // Slipped in before row 7: the rows from 7 on moved up by 100 ids to make room.
    assert_eq!(
        tampered(
            "UPDATE events SET id = id + 100 WHERE id >= 7;
             INSERT INTO events (id, seq, prev_hash, hash, at, type, customer_id, body)
             SELECT 7, seq, prev_hash, hash, at, type, customer_id, '{\"forged\":true}' FROM events WHERE id = 107;"
        )
        .await,
        (Problem::Inserted, Some(7))
    );
}

#[tokio::test]
async fn names_reordered_rows() {
    // Two rows exchange their ids.
    assert_eq!(
        tampered(
            "UPDATE events SET id = -7 WHERE id = 7;
             UPDATE events SET id = 7 WHERE id = 8;
             UPDATE events SET id = 8 WHERE id = -7;"
        )
        .await,
        (Problem::Reordered, Some(7))
    );
    // Two rows exchange their contents (the chain columns stay).
    assert_eq!(
        tampered(
            "CREATE TEMP TABLE x AS SELECT id, at, customer_id, body FROM events WHERE id IN (7, 8);
             UPDATE events SET at = (SELECT at FROM x WHERE x.id = 15 - events.id),
                               customer_id = (SELECT customer_id FROM x WHERE x.id = 15 - events.id),
                               body = (SELECT body FROM x WHERE x.id = 15 - events.id) WHERE id IN (7, 8);"
        )
        .await,
        (Problem::Reordered, Some(7))
    );
}

#[tokio::test]
async fn a_cut_tail_is_named_by_the_checkpoints() {
    // The tail from 13 on deleted and the stored head moved back to match: the
    // checkpoints at 15 and 20 (in the table and the file) still cover it.
    assert_eq!(
        tampered(
            "DELETE FROM events WHERE id >= 13;
             UPDATE audit_head SET seq = 12, event_id = 12, hash = (SELECT hash FROM events WHERE id = 12);"
        )
        .await,
        (Problem::Truncated, Some(13))
    );
}

#[tokio::test]
async fn a_recomputed_chain_is_caught_by_the_signed_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let mut c = intrude(dir.path()).await;
    // An intruder who knows the format: edit row 7, recompute every later hash, move
    // the head, and delete the checkpoints from the database. The file still has them.
    sql(&mut c, "UPDATE events SET body = replace(body, 'user7', 'user9') WHERE id = 7; DELETE FROM audit_checkpoints;").await;
    let rows: Vec<(i64, String, String, Option<i64>, String)> =
        sqlx::query_as("SELECT id, at, type, customer_id, body FROM events ORDER BY id")
            .fetch_all(&mut c)
            .await
            .unwrap();
    let mut head = waihu_audit::Head::EMPTY;
    for (id, at, kind, customer, body) in &rows {
        let l = head.append(
            *id,
            &waihu_audit::Content {
                at,
                kind,
                customer: *customer,
                campaign: None,
                call: None,
                body,
            },
        );
        sqlx::query("UPDATE events SET prev_hash = ?, hash = ? WHERE id = ?")
            .bind(&l.prev_hash[..])
            .bind(&l.hash[..])
            .bind(id)
            .execute(&mut c)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE audit_head SET hash = ? WHERE id = 1")
        .bind(&head.hash[..])
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    let v = verify(dir.path()).await;
    assert_eq!(v.checkpoints_in_db, Some(0));
    let f = v.report.finding.expect("found");
    // The rewrite is placed after the last checkpoint that still matches (position 6).
    assert_eq!(
        (f.problem, f.id, f.seq),
        (Problem::Rewritten, Some(7), Some(7))
    );
}

#[tokio::test]
async fn a_forged_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let mut c = intrude(dir.path()).await;
    sql(
        &mut c,
        "UPDATE audit_checkpoints SET at = '2027-01-01T00:00:00.000000Z' WHERE seq = 6",
    )
    .await;
    c.close().await.unwrap();
    let v = verify(dir.path()).await;
    let f = v.report.finding.unwrap();
    assert_eq!((f.problem, f.seq), (Problem::BadCheckpoint, Some(6)));
    // And a checkpoint signed by another key than the pinned one.
    let s = Store::open_with_key(dir.path(), &key()).await.unwrap();
    let other = waihu_audit::Signer::from_seed(&[1; 32]).public_hex();
    let v = s.audit_verify(Some(&other), &[]).await.unwrap();
    assert_eq!(
        v.report.finding.map(|f| f.problem),
        Some(Problem::BadCheckpoint)
    );
}

#[tokio::test]
async fn rows_from_before_the_chain_are_chained_once_on_open() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    // Put the database back in the state migration 0007 leaves an older one in: rows
    // without chain fields, an empty head, no checkpoints, the v7 triggers in place.
    let mut c = intrude(dir.path()).await;
    sql(
        &mut c,
        "UPDATE events SET seq = NULL, prev_hash = NULL, hash = NULL;
         DELETE FROM audit_checkpoints;
         UPDATE audit_head SET seq = 0, event_id = 0, hash = zeroblob(32), cp_seq = 0, cp_at = NULL, legacy_max_id = 20;",
    )
    .await;
    let migration = include_str!("../migrations/0007_audit_chain.sql");
    let triggers = migration
        .split_once("DROP TRIGGER events_append_only_update;")
        .unwrap()
        .1;
    sql(&mut c, triggers).await;
    c.close().await.unwrap();
    std::fs::remove_file(dir.path().join("audit/checkpoints.jsonl")).unwrap();

    let s = Store::open_with_key(dir.path(), &key()).await.unwrap();
    s.append_event(&ev(21)).await.unwrap();
    let v = s.audit_verify(None, &[]).await.unwrap();
    assert!(v.report.ok, "{v:?}");
    assert_eq!((v.report.rows, v.report.head_seq), (21, 21));
    assert!(v.report.checkpoints_matched >= 1);
    s.close().await;
    // Opening again chains nothing twice.
    assert!(verify(dir.path()).await.report.ok);
}

#[tokio::test]
async fn a_quiet_log_is_signed_on_demand() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let s = Store::open_with_key(dir.path(), &key()).await.unwrap();
    s.set_audit_policy(Policy {
        every_events: 1000,
        every: Duration::hours(1),
    });
    s.append_events(&[ev(21), ev(22)]).await.unwrap();
    assert_eq!(
        s.audit_verify(None, &[])
            .await
            .unwrap()
            .report
            .unsigned_rows,
        2
    );
    let cp = s.audit_checkpoint(t0() + Duration::hours(2)).await.unwrap();
    assert_eq!(cp.map(|c| c.seq), Some(22));
    assert!(
        s.audit_checkpoint(t0()).await.unwrap().is_none(),
        "nothing new to sign"
    );
    let v = s.audit_verify(None, &[]).await.unwrap();
    assert_eq!((v.report.ok, v.report.unsigned_rows), (true, 0));
}

#[tokio::test]
async fn a_removed_head_does_not_stop_verification() {
    let dir = tempfile::tempdir().unwrap();
    twenty(dir.path()).await;
    let mut c = intrude(dir.path()).await;
    sql(
        &mut c,
        "DELETE FROM audit_head; DELETE FROM events WHERE id >= 18;",
    )
    .await;
    c.close().await.unwrap();
    let s = Store::open_with_key(dir.path(), &key()).await.unwrap();
    let f = s
        .audit_verify(None, &[])
        .await
        .unwrap()
        .report
        .finding
        .unwrap();
    // The checkpoint at 20 still covers the cut rows.
    assert_eq!((f.problem, f.id), (Problem::Truncated, Some(18)));
    // Appending on a chain without a head is refused, not silently restarted.
    assert!(s.append_event(&ev(21)).await.is_err());
}
