//! Erasure, export and retention against a real database and recordings directory.
use super::*;
use crate::calls_tests::{finish, start, turn, wav};
use crate::tests::{import, now};
use chrono::Duration;
use waihu_core::{CallId, CustomerId, EventKind};

const CSV: &str = "姓名,手机号,会员等级\n欧阳锋,13812345678,金卡\n李娜,13900001111,普通\n";
const WORDS: &str = "我的银行卡尾号是九八七六";
const OTHER_WORDS: &str = "我下周三再还款";

/// Import `csv` expecting the write to fail; the error's text.
async fn import_err(store: &Store, csv: &str) -> String {
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import("t.csv", src.encoding, &src.kinds.clone(), now())
        .await
        .unwrap();
    let rows: Vec<_> = src
        .next_batch(10)
        .unwrap()
        .into_iter()
        .filter_map(Result::ok)
        .collect();
    imp.write(&rows, now()).await.unwrap_err().to_string()
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap();
    (dir, store)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// Every byte under `dir` (database, WAL, recordings, checkpoint file...).
fn all_bytes(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// A customer with a call (two turns, one sealed the pre-v17 way), a recording,
/// an agent-leg recording, a message and a voiceprint.
async fn customer_with_history(store: &Store, phone: &str, call: &str, words: &str) -> CustomerId {
    let c = store.customer_by_phone(phone).await.unwrap().unwrap();
    let mut s = start(call, None, "collections.zh");
    s.customer = Some(c.id);
    store.call_started(&s).await.unwrap();
    store
        .call_turn(
            &CallId::from(call),
            &turn(0, Speaker::Bot, "greet", "您好", None),
        )
        .await
        .unwrap();
    store
        .call_turn(
            &CallId::from(call),
            &turn(1, Speaker::Callee, "greet", words, Some("promise")),
        )
        .await
        .unwrap();
    store
        .call_finished(
            &CallId::from(call),
            &finish(&["greet"], Some("promised"), Some(wav())),
        )
        .await
        .unwrap();
    store
        .put_leg_recording(&CallId::from(call), "agent", &wav(), now())
        .await
        .unwrap();
    store
        .message_enqueue(
            &NewMessage {
                key: &format!("fallback:{call}"),
                customer: Some(c.id),
                campaign: None,
                channel: "sms",
                template: "reminder",
                to: phone,
                text: &format!("{} 您好，提醒您还款", c.name.clone().unwrap_or_default()),
                segments: 1,
            },
            now(),
        )
        .await
        .unwrap();
    store
        .voiceprint_enroll(c.id, &[0x5au8; 1024], "test", now())
        .await
        .unwrap();
    c.id
}

#[tokio::test]
async fn erase_shreds_every_copy_and_keeps_the_rest() {
    let (dir, store) = store().await;
    import(&store, CSV).await;
    let a = customer_with_history(&store, "+8613812345678", "call-a", WORDS).await;
    let b = customer_with_history(&store, "+8613900001111", "call-b", OTHER_WORDS).await;
    // A transcript line sealed before customers had keys (schema < 17): the vault's.
    let legacy = store.vault.seal(
        "call_turns",
        "text",
        &crate::calls::turn_key("call-a", 0),
        "您好欧阳先生",
    );
    sqlx::query("UPDATE call_turns SET text_ct = ? WHERE call_id = 'call-a' AND seq = 0")
        .bind(&legacy)
        .execute(&store.pool)
        .await
        .unwrap();
    // Copies made before the erasure: the recordings directory archived elsewhere.
    let rec_dir = dir.path().join(RECORDINGS_DIR);
    let archived: Vec<(String, Vec<u8>)> = all_bytes(&rec_dir)
        .into_iter()
        .filter(|(p, _)| p.contains("call-a"))
        .collect();
    assert_eq!(
        archived.len(),
        2,
        "the call's and the agent leg's recordings"
    );
    let wrapped: Vec<u8> =
        sqlx::query_scalar("SELECT wrapped FROM customer_keys WHERE customer_id = ?")
            .bind(a.0)
            .fetch_one(&store.pool)
            .await
            .unwrap();

    // Export first: everything, opened, and the export is on the chain.
    let ex = store
        .customer_export_audited(a, "cli:test", "PIPL access request", now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ex.customer.name.as_deref(), Some("欧阳锋"));
    assert_eq!(ex.calls.len(), 1);
    assert_eq!(ex.calls[0].turns[0].text, "您好欧阳先生");
    assert_eq!(ex.calls[0].turns[1].text, WORDS);
    assert!(ex.calls[0].recording);
    assert_eq!(ex.messages.len(), 1);
    assert!(ex.messages[0].text.contains("提醒您还款"));
    assert_eq!(ex.voiceprints, 1);
    assert!(ex.events.iter().any(|e| e.kind == "pii_revealed"));
    assert_eq!(store.customer_recordings(a).await.unwrap().len(), 2);

    // Before: the scan below finds the key and the index (so it can fail).
    store.truncate_wal().await;
    let before = all_bytes(dir.path());
    let idx = store.vault.blind_index("+8613812345678");
    assert!(before.iter().any(|(_, b)| contains(b, &wrapped)));
    assert!(before.iter().any(|(_, b)| contains(b, idx.as_bytes())));

    let report = store
        .customer_erase(a, "cli:test", "PIPL erasure request", now())
        .await
        .unwrap();
    assert_eq!(
        (
            report.calls,
            report.turns,
            report.recordings,
            report.messages,
            report.voiceprints
        ),
        (1, 2, 2, 1, 1)
    );
    assert!(report.do_not_call.is_empty());

    // Gone from the store's answers; B untouched.
    assert!(store.customer(a).await.unwrap().is_none());
    assert!(store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .is_none());
    assert!(store.customer_export(a, now()).await.unwrap().is_none());
    let detail = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert!(
        detail.turns.iter().all(|t| t.text == ERASED_TEXT),
        "{:?}",
        detail.turns
    );
    assert_eq!(
        detail.turns[1].intent.as_deref(),
        Some("promise"),
        "the counts' inputs stay"
    );
    assert_eq!(
        store.call_recording(&CallId::from("call-a")).await.unwrap(),
        None
    );
    let detail_b = store
        .call_detail(&CallId::from("call-b"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail_b.turns[1].text, OTHER_WORDS);
    assert!(store
        .call_recording(&CallId::from("call-b"))
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.voiceprints(b).await.unwrap().len(), 1);

    // The archived copies no longer open, with the master key or without.
    for (path, sealed) in &archived {
        let key = if path.contains("agent") {
            "call-a#agent"
        } else {
            "call-a"
        };
        let err = store
            .vault
            .open_bytes_with(None, "calls", "recording", key, sealed)
            .unwrap_err();
        assert!(
            matches!(err, waihu_privacy::PrivacyError::Shredded { .. }),
            "{err}"
        );
    }

    // A late write for the erased customer (a call still in flight) is shredded at once.
    store
        .call_turn(
            &CallId::from("call-a"),
            &turn(2, Speaker::Callee, "greet", "还在吗", None),
        )
        .await
        .unwrap();
    let detail = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(detail.turns[2].text, ERASED_TEXT);
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM customer_keys WHERE customer_id = ?")
            .bind(a.0)
            .fetch_one(&store.pool)
            .await
            .unwrap(),
        0
    );

    // The chain is intact and records the erasure.
    let v = store.audit_verify(None, &[]).await.unwrap();
    assert!(v.report.ok, "{v:?}");
    let evs = store.events(0, 1000).await.unwrap();
    assert!(evs.iter().any(|(_, e)| e.customer == Some(a)
        && matches!(&e.kind, EventKind::CustomerErased { turns: 2, .. })));

    // A campaign that still holds the customer in memory cannot start a call to them.
    let mut late = start("call-a2", None, "collections.zh");
    late.customer = Some(a);
    let e = store.call_started(&late).await.unwrap_err();
    assert!(e.to_string().contains("was erased"), "{e}");
    // Erasing twice says so.
    let again = store
        .customer_erase(a, "cli:test", "again", now())
        .await
        .unwrap_err();
    assert!(again.to_string().contains("already erased"), "{again}");

    // No byte of the number, name, words, voice or key is left in the data directory.
    store.truncate_wal().await;
    let pcm = &wav()[44..44 + 64];
    let needles: Vec<(&str, Vec<u8>)> = vec![
        ("number", b"13812345678".to_vec()),
        ("name", "欧阳锋".as_bytes().to_vec()),
        ("words", WORDS.as_bytes().to_vec()),
        ("legacy words", "欧阳先生".as_bytes().to_vec()),
        ("wrapped key", wrapped.clone()),
        ("blind index", idx.as_bytes().to_vec()),
    ];
    let files = all_bytes(dir.path());
    for (what, needle) in &needles {
        for (path, bytes) in &files {
            assert!(!contains(bytes, needle), "{what} found in {path}");
        }
    }
    for (path, bytes) in &files {
        if path.contains(RECORDINGS_DIR) {
            assert!(!path.contains("call-a"), "recording left: {path}");
            assert!(!contains(bytes, pcm), "voice in clear in {path}");
        }
    }
    // B's number is still there, sealed: the scan can find what is present.
    let b_idx = store.vault.blind_index("+8613900001111");
    assert!(files
        .iter()
        .any(|(_, bytes)| contains(bytes, b_idx.as_bytes())));
    drop(dir);
}

#[tokio::test]
async fn erase_keeps_do_not_call_and_fails_queued_messages() {
    let (_dir, store) = store().await;
    import(&store, CSV).await;
    let c = store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .unwrap();
    store
        .dnc_add("+8613812345678", "global", "asked", now())
        .await
        .unwrap();
    let (mid, _) = store
        .message_enqueue(
            &NewMessage {
                key: "k1",
                customer: Some(c.id),
                campaign: None,
                channel: "sms",
                template: "t",
                to: "+8613812345678",
                text: "hello",
                segments: 1,
            },
            now(),
        )
        .await
        .unwrap();
    let r = store
        .customer_erase(c.id, "api:admin#1", "request", now())
        .await
        .unwrap();
    assert_eq!(r.do_not_call, vec!["global".to_string()]);
    assert!(store
        .dnc_contains("+8613812345678", "global")
        .await
        .unwrap());
    assert!(store.messages_due(10, now()).await.unwrap().is_empty());
    let status: String = sqlx::query_scalar("SELECT status FROM messages WHERE id = ?")
        .bind(mid)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(status, "failed");
    // Re-importing the number makes a new customer: a new data subject record.
    import(&store, CSV).await;
    let again = store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(again.id, c.id);
    assert!(store
        .customer_erase(CustomerId(9999), "x", "y", now())
        .await
        .unwrap_err()
        .to_string()
        .contains("no customer 9999"));
}

#[tokio::test]
async fn retention_removes_old_recordings_and_words_only() {
    let (dir, store) = store().await;
    import(&store, CSV).await;
    customer_with_history(&store, "+8613812345678", "call-a", WORDS).await;
    let ended = now() + Duration::seconds(30);
    // Nothing has ended before the cut-off yet.
    let r = store
        .apply_retention(
            Some(ended - Duration::seconds(1)),
            Some(ended - Duration::seconds(1)),
            "cli",
            now(),
        )
        .await
        .unwrap();
    assert_eq!((r.recordings, r.transcripts), (0, 0));
    let r = store
        .apply_retention(Some(ended + Duration::days(1)), None, "cli", now())
        .await
        .unwrap();
    assert_eq!((r.recordings, r.transcripts), (1, 0));
    assert_eq!(
        store.call_recording(&CallId::from("call-a")).await.unwrap(),
        None
    );
    assert_eq!(
        store
            .leg_recording(&CallId::from("call-a"), "agent")
            .await
            .unwrap(),
        None
    );
    assert!(all_bytes(&dir.path().join(RECORDINGS_DIR)).is_empty());
    let d = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.turns[1].text, WORDS, "transcripts have their own policy");
    let r = store
        .apply_retention(None, Some(ended + Duration::days(1)), "cli", now())
        .await
        .unwrap();
    assert_eq!((r.recordings, r.transcripts), (0, 2));
    let d = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert!(d.turns.iter().all(|t| t.text == EXPIRED_TEXT));
    assert_eq!(d.turns[1].intent.as_deref(), Some("promise"));
    let evs: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE type = 'retention_applied'")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(evs, 2);
}

#[tokio::test]
async fn customer_fields_live_under_their_key_across_reimports() {
    let (_dir, store) = store().await;
    import(&store, CSV).await;
    let a = customer_with_history(&store, "+8613812345678", "call-a", WORDS).await;
    let key_of = |id: CustomerId| {
        let pool = store.pool.clone();
        async move {
            sqlx::query_scalar::<_, Vec<u8>>(
                "SELECT wrapped FROM customer_keys WHERE customer_id = ?",
            )
            .bind(id.0)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let k1 = key_of(a).await;
    let (phone_ct,): (Vec<u8>,) = sqlx::query_as("SELECT phone_ct FROM customers WHERE id = ?")
        .bind(a.0)
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        phone_ct[0], 2,
        "the number is sealed under the customer's key"
    );
    // A re-import that changes the name keeps the key: the earlier call still opens.
    import(&store, "姓名,手机号,会员等级\n欧阳克,13812345678,金卡\n").await;
    assert_eq!(key_of(a).await, k1);
    let c = store.customer(a).await.unwrap().unwrap();
    assert_eq!(c.name.as_deref(), Some("欧阳克"));
    let d = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.turns[1].text, WORDS);
    assert_eq!(d.summary.phone.as_deref(), Some("+8613812345678"));

    // A customer stored before keys existed (vault-sealed, no key row) still opens,
    // gets a key when re-imported with changes, and keeps a name the file lacks.
    let b = store
        .customer_by_phone("+8613900001111")
        .await
        .unwrap()
        .unwrap();
    let idx = store.vault.blind_index("+8613900001111");
    sqlx::query("DELETE FROM customer_keys WHERE customer_id = ?")
        .bind(b.id.0)
        .execute(&store.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE customers SET phone_ct = ?, name_ct = ? WHERE id = ?")
        .bind(
            store
                .vault
                .seal("customers", "phone", &idx, "+8613900001111"),
        )
        .bind(store.vault.seal("customers", "name", &idx, "李娜"))
        .bind(b.id.0)
        .execute(&store.pool)
        .await
        .unwrap();
    assert_eq!(
        store.customer(b.id).await.unwrap().unwrap().name.as_deref(),
        Some("李娜")
    );
    import(&store, "手机号,会员等级\n13900001111,钻石\n").await;
    let b2 = store.customer(b.id).await.unwrap().unwrap();
    assert_eq!(b2.name.as_deref(), Some("李娜"));
    assert_eq!(b2.phone, "+8613900001111");
    let _ = key_of(b.id).await;
    // Erasing it shreds the new-key fields and deletes the row with the legacy name.
    store.customer_erase(b.id, "t", "t", now()).await.unwrap();
    assert!(store.customer(b.id).await.unwrap().is_none());
}

#[tokio::test]
async fn master_key_rotation_rewraps_without_reencrypting() {
    let dir = tempfile::tempdir().unwrap();
    // Through the key file, as `waihu` does.
    let store = Store::open(dir.path()).await.unwrap();
    import(&store, CSV).await;
    let a = customer_with_history(&store, "+8613812345678", "call-a", WORDS).await;
    store
        .dnc_add("+8613900001111", "global", "asked", now())
        .await
        .unwrap();
    let public_key = store.audit_public_key();
    let turn_ct: Vec<u8> =
        sqlx::query_scalar("SELECT text_ct FROM call_turns WHERE call_id = 'call-a' AND seq = 1")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    let old =
        MasterKey::from_hex(&std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap()).unwrap();
    let new = MasterKey::generate();
    new.write_new_file(&dir.path().join(NEW_KEY_FILE)).unwrap();
    let r = store
        .rotate_master_key(&new, "cli:test", now())
        .await
        .unwrap();
    assert_eq!(r.data_keys, 2);
    assert_ne!(r.old_check, r.new_check);
    // This handle (and any other process still on the old key) cannot make new keys.
    let err = store
        .message_enqueue(
            &NewMessage {
                key: "late",
                customer: Some(a),
                campaign: None,
                channel: "sms",
                template: "t",
                to: "+8613812345678",
                text: "x",
                segments: 1,
            },
            now(),
        )
        .await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("rotated"), "{err}");
    let e = import_err(&store, "手机号\n13700001234\n").await;
    assert!(e.contains("rotated"), "{e}");
    store.close().await;

    // Crash before the rename: opening with the old key file finishes the rotation.
    let store = Store::open(dir.path()).await.unwrap();
    assert!(!dir.path().join(NEW_KEY_FILE).exists());
    let on_disk =
        MasterKey::from_hex(&std::fs::read_to_string(dir.path().join(KEY_FILE)).unwrap()).unwrap();
    assert_eq!(on_disk.check(), new.check());
    // Everything opens; nothing was re-encrypted; the index and audit key are unchanged.
    let c = store.customer(a).await.unwrap().unwrap();
    assert_eq!(c.name.as_deref(), Some("欧阳锋"));
    assert!(store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .is_some());
    assert!(store
        .dnc_contains("+8613900001111", "global")
        .await
        .unwrap());
    let d = store
        .call_detail(&CallId::from("call-a"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.turns[1].text, WORDS);
    assert!(store
        .call_recording(&CallId::from("call-a"))
        .await
        .unwrap()
        .is_some());
    let turn_ct2: Vec<u8> =
        sqlx::query_scalar("SELECT text_ct FROM call_turns WHERE call_id = 'call-a' AND seq = 1")
            .fetch_one(&store.pool)
            .await
            .unwrap();
    assert_eq!(turn_ct, turn_ct2, "not re-encrypted");
    assert_eq!(store.audit_public_key(), public_key);
    let v = store.audit_verify(Some(&public_key), &[]).await.unwrap();
    assert!(v.report.ok, "{v:?}");
    import(&store, "手机号\n13700001234\n").await;
    store.close().await;
    // The old key is refused.
    let e = Store::open_with_key(dir.path(), &old).await.unwrap_err();
    assert!(matches!(e, StoreError::WrongKey { .. }), "{e}");
}
