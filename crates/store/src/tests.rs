use super::*;
use chrono::TimeZone;
use waihu_core::{AttrValue, CustomerId, EventKind};
use waihu_ingest::{Options, Source};

pub(crate) fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

const CSV: &str = "姓名,手机号,购买频次,会员等级\n张伟,13812345678,6,金卡\n李娜,13900001111,2,普通\n坏的,12,1,普通\n";

pub(crate) async fn import(store: &Store, csv: &str) -> ImportStats {
    let mut opts = Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import("t.csv", src.encoding, &src.kinds.clone(), now())
        .await
        .unwrap();
    let mut rejected = 0;
    loop {
        let batch = src.next_batch(2).unwrap();
        if batch.is_empty() {
            break;
        }
        let ok: Vec<_> = batch
            .into_iter()
            .filter_map(|r| r.map_err(|_| rejected += 1).ok())
            .collect();
        imp.write(&ok, now()).await.unwrap();
    }
    imp.finish(rejected, now()).await.unwrap()
}

#[tokio::test]
async fn import_reimport_is_idempotent_and_sealed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    let s1 = import(&store, CSV).await;
    assert_eq!((s1.created, s1.updated, s1.rejected), (2, 0, 1));
    let s2 = import(&store, "手机号,姓名,购买频次\n+86 138-1234-5678,张伟,7\n").await;
    assert_eq!((s2.created, s2.updated), (0, 1));
    // The same file again changes nothing and logs nothing.
    let s3 = import(&store, "手机号,姓名,购买频次\n+86 138-1234-5678,张伟,7\n").await;
    assert_eq!((s3.created, s3.updated, s3.unchanged), (0, 0, 1));
    assert_eq!(store.customer_count().await.unwrap(), 2);
    let c = store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.name.as_deref(), Some("张伟"));
    assert_eq!(c.attrs["purchase_freq"], AttrValue::Number(7.0));
    // Attributes merge: member_level from the first import survives the second.
    assert_eq!(c.attrs["member_level"], AttrValue::Text("金卡".into()));
    assert_eq!(c.tz, "Asia/Shanghai");
    // Every change is an event.
    let counts: std::collections::HashMap<_, _> =
        store.event_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["customer_created"], 2);
    assert_eq!(counts["customer_updated"], 1);
    store.close().await;

    // The raw database file holds no phone number or name in clear.
    let mut raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))) {
        raw.extend(wal);
    }
    for needle in ["13812345678", "张伟", "13900001111", "李娜"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} found in clear"
        );
    }
}

#[tokio::test]
async fn duplicates_in_one_file_update_not_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    let s = import(
        &store,
        "手机号,购买频次\n13812345678,1\n13812345678,2\n13812345678,3\n",
    )
    .await;
    assert_eq!((s.created, s.updated), (1, 2));
    let c = store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.attrs["purchase_freq"], AttrValue::Number(3.0));
}

#[tokio::test]
async fn wrong_key_is_rejected_before_anything_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    import(&store, CSV).await;
    store.close().await;
    let err = Store::open_with_key(dir.path(), &key(2)).await.unwrap_err();
    assert!(matches!(err, StoreError::WrongKey { .. }), "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    // The right key still works.
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    assert_eq!(store.customers(0, 10).await.unwrap().len(), 2);
}

#[tokio::test]
async fn events_are_append_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    store
        .record_reveal("cli", "phone", &[CustomerId(1)], "test", now())
        .await
        .unwrap();
    let upd = sqlx::query("UPDATE events SET type = 'x'")
        .execute(&store.pool)
        .await;
    assert!(upd.unwrap_err().to_string().contains("append-only"));
    let del = sqlx::query("DELETE FROM events").execute(&store.pool).await;
    assert!(del.is_err());
    let evs = store.events(0, 10).await.unwrap();
    assert_eq!(evs.len(), 1);
    assert!(matches!(evs[0].1.kind, EventKind::PiiRevealed { .. }));
}

#[tokio::test]
async fn dnc_matches_through_blind_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    assert!(store
        .dnc_add("+8613812345678", "global", "customer asked", now())
        .await
        .unwrap());
    assert!(!store
        .dnc_add("+8613812345678", "global", "again", now())
        .await
        .unwrap());
    assert!(store
        .dnc_add("+8613900001111", "spring_promo", "", now())
        .await
        .unwrap());
    assert!(store
        .dnc_contains("+8613812345678", "anything")
        .await
        .unwrap());
    assert!(store
        .dnc_contains("+8613900001111", "spring_promo")
        .await
        .unwrap());
    assert!(!store.dnc_contains("+8613900001111", "other").await.unwrap());
    let list = store.dnc_list(None).await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list
        .iter()
        .any(|e| e.phone == "+8613812345678" && e.reason == "customer asked"));
    assert!(store
        .dnc_remove("+8613812345678", "global", now())
        .await
        .unwrap());
    assert!(!store.dnc_contains("+8613812345678", "x").await.unwrap());
    let types: Vec<_> = store
        .events(0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind.type_name())
        .collect();
    assert_eq!(types, ["dnc_added", "dnc_added", "dnc_removed"]);
}

#[tokio::test]
async fn missing_key_file_for_existing_database_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    std::env::remove_var(waihu_privacy::MASTER_KEY_ENV);
    let store = Store::open(dir.path()).await.unwrap();
    store.close().await;
    std::fs::remove_file(dir.path().join(KEY_FILE)).unwrap();
    let err = Store::open(dir.path()).await.unwrap_err().to_string();
    assert!(err.contains("restore the key file"), "{err}");
}

#[tokio::test]
async fn experiment_choices_and_rewards_count_per_variant() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &key(1)).await.unwrap();
    let c = waihu_core::CampaignId(7);
    let choice = |variant: &str| ArmChoice {
        state: "pitch".into(),
        segment: "vip".into(),
        variant: variant.into(),
        pick: "sample".into(),
    };
    for (call, variant, reward) in [
        ("c1", "a", Some(true)),
        ("c2", "a", Some(false)),
        ("c3", "b", Some(true)),
        // Never reached the state (no answer): chosen, not an observation.
        ("c4", "b", None),
        // Still ringing: no reward yet.
        ("c5", "b", Some(true)),
    ] {
        store
            .experiment_chosen(call, c, "offer", &[choice(variant)], now())
            .await
            .unwrap();
        // Idempotent.
        store
            .experiment_chosen(call, c, "offer", &[choice(variant)], now())
            .await
            .unwrap();
        if call == "c5" {
            continue;
        }
        let rewards: Vec<(String, bool)> = reward
            .map(|r| ("pitch".to_string(), r))
            .into_iter()
            .collect();
        store.experiment_rewarded(call, &rewards).await.unwrap();
    }
    let counts = store.experiment_counts(Some(c)).await.unwrap();
    let got: Vec<(&str, u64, u64, u64)> = counts
        .iter()
        .map(|r| (r.variant.as_str(), r.chosen, r.trials, r.successes))
        .collect();
    assert_eq!(got, vec![("a", 2, 2, 1), ("b", 3, 1, 1)]);
    assert!(store
        .experiment_counts(Some(waihu_core::CampaignId(8)))
        .await
        .unwrap()
        .is_empty());
}
