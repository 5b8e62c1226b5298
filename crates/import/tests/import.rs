//! The import pipeline against a real store in a temp dir: counts, rejects
//! with line and column, the rejects file, idempotent re-import, progress.
use std::path::Path;

use waihu_import::{
    import_file, import_reader, ImportError, ImportOptions, ImportProgress, Progress,
};
use waihu_ingest::Reject;
use waihu_store::Store;

/// Line 3 has a bad number, line 5 an unknown time zone; lines 2, 4 and 6 are good.
const CSV: &str = "姓名,手机号,时区,购买频次\n\
    张伟,13812345678,,6\n\
    坏号,12345,,1\n\
    李娜,13900001111,Asia/Shanghai,2\n\
    王芳,13700002222,Mars/Olympus,3\n\
    Tom Li,+12025550123,,1\n";

#[derive(Default)]
struct Heard {
    rejects: Vec<Reject>,
    batches: Vec<ImportProgress>,
}

impl Progress for Heard {
    fn reject(&mut self, reject: &Reject) {
        self.rejects.push(reject.clone());
    }

    fn batch(&mut self, progress: &ImportProgress) {
        self.batches.push(*progress);
    }
}

async fn store(dir: &Path) -> Store {
    Store::open_with_key(dir, &waihu_privacy::MasterKey::from_bytes([9; 32]))
        .await
        .unwrap()
}

fn opts(batch: usize) -> ImportOptions {
    ImportOptions {
        batch,
        ..ImportOptions::default()
    }
}

#[tokio::test]
async fn good_and_bad_rows_rejects_file_and_progress() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, CSV).unwrap();
    let mut heard = Heard::default();
    let report = import_file(&store, &csv, &opts(2), &mut heard)
        .await
        .unwrap();

    assert_eq!(report.file, csv.display().to_string());
    assert_eq!(report.encoding, "UTF-8");
    assert_eq!(
        (
            report.created,
            report.updated,
            report.unchanged,
            report.rejected
        ),
        (3, 0, 0, 2)
    );
    assert_eq!(store.customer_count().await.unwrap(), 3);
    assert!(report.rows_per_s > 0.0);

    let where_: Vec<(u64, Option<&str>)> = heard
        .rejects
        .iter()
        .map(|r| (r.line, r.column.as_deref()))
        .collect();
    assert_eq!(where_, [(3, Some("手机号")), (5, Some("时区"))]);
    assert!(heard.rejects[1].reason.contains("Mars/Olympus"));

    // Counts only grow, up to the totals.
    assert!(!heard.batches.is_empty());
    assert!(heard.batches.windows(2).all(|w| w[0].rows() <= w[1].rows()));
    let last = heard.batches.last().unwrap();
    assert_eq!((last.rows(), last.created, last.rejected), (5, 3, 2));
    assert_eq!(last.bytes_total, Some(CSV.len() as u64));
    assert_eq!(last.bytes_read, CSV.len() as u64);
    assert_eq!(last.fraction(), Some(1.0));

    // The default rejects file: <data_dir>/rejects/<stem>-<import id>.csv,
    // BOM, line/column/reason, then the original cells.
    let rejects = report.rejects_file.clone().unwrap();
    assert_eq!(
        Path::new(&rejects),
        dir.path().join("rejects").join("list-1.csv")
    );
    let text = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "\u{feff}line,column,reason,姓名,手机号,时区,购买频次"
    );
    assert!(lines[1].starts_with("3,手机号,"), "{}", lines[1]);
    assert!(lines[1].ends_with(",坏号,12345,,1"), "{}", lines[1]);
    assert!(lines[2].starts_with("5,时区,"), "{}", lines[2]);
    assert!(
        lines[2].ends_with(",王芳,13700002222,Mars/Olympus,3"),
        "{}",
        lines[2]
    );
    assert_eq!(lines.len(), 3);
}

#[tokio::test]
async fn reimport_counts_created_updated_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let rejects = dir.path().join("out").join("bad.csv");
    let o = ImportOptions {
        rejects: Some(rejects.clone()),
        ..ImportOptions::default()
    };
    let first = import_reader(&store, "crm.csv", CSV.as_bytes(), None, &o, &mut ())
        .await
        .unwrap();
    assert_eq!((first.created, first.updated, first.unchanged), (3, 0, 0));
    assert_eq!(first.file, "crm.csv");
    assert_eq!(
        first.rejects_file.as_deref(),
        Some(rejects.display().to_string().as_str())
    );
    assert!(rejects.exists());

    // The same file again writes nothing.
    let again = import_reader(&store, "crm.csv", CSV.as_bytes(), None, &o, &mut ())
        .await
        .unwrap();
    assert_eq!(
        (
            again.created,
            again.updated,
            again.unchanged,
            again.rejected
        ),
        (0, 0, 3, 2)
    );

    // One changed row, one new: updated 1, created 1, unchanged 1.
    let next = "姓名,手机号,时区,购买频次\n\
        张伟,13812345678,,7\n\
        李娜,13900001111,Asia/Shanghai,2\n\
        新人,13500003333,,1\n";
    let third = import_reader(
        &store,
        "next.csv",
        next.as_bytes(),
        None,
        &ImportOptions::default(),
        &mut (),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            third.created,
            third.updated,
            third.unchanged,
            third.rejected
        ),
        (1, 1, 1, 0)
    );
    assert_eq!(third.rejects_file, None);
    assert_eq!(store.customer_count().await.unwrap(), 4);
}

#[tokio::test]
async fn unreadable_input_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let missing = dir.path().join("nope.csv");
    let e = import_file(&store, &missing, &ImportOptions::default(), &mut ())
        .await
        .unwrap_err();
    assert!(matches!(e, ImportError::Open { .. }), "{e:?}");
    assert_eq!(e.to_string(), format!("opening {}", missing.display()));

    let e = import_reader(
        &store,
        "x.csv",
        "姓名,城市\n张三,北京\n".as_bytes(),
        None,
        &ImportOptions::default(),
        &mut (),
    )
    .await
    .unwrap_err();
    assert_eq!(e.to_string(), "reading x.csv");
    let cause = std::error::Error::source(&e).unwrap().to_string();
    assert!(cause.contains("no phone column"), "{cause}");

    let bad_region = ImportOptions {
        region: "XX".into(),
        ..ImportOptions::default()
    };
    let e = import_reader(&store, "x.csv", CSV.as_bytes(), None, &bad_region, &mut ())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown default region 'XX'"), "{e}");
    // Nothing was imported by the failed attempts.
    assert_eq!(store.customer_count().await.unwrap(), 0);
}

#[tokio::test]
async fn dnc_file_adds_counts_and_names_bad_lines() {
    use waihu_import::dnc::{import_dnc, DncImport, DncReport};
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let file = "手机号,备注\n13812345678,投诉\n\n12345,坏号\n+86 139 0000 1111\n13812345678\n";
    let to = DncImport {
        scope: "global",
        reason: "complaint",
        region: "CN",
    };
    let mut bad = Vec::new();
    let now = chrono::Utc::now();
    let r = import_dnc(&store, file.as_bytes(), &to, now, &mut |l, _| bad.push(l))
        .await
        .unwrap();
    assert_eq!(
        r,
        DncReport {
            added: 2,
            already_listed: 1,
            rejected: 1
        }
    );
    assert_eq!(bad, vec![4]);
    assert!(store
        .dnc_contains("+8613900001111", "global")
        .await
        .unwrap());
    // GBK input decodes the same.
    let (gbk, _, _) = encoding_rs::GBK.encode("号码\n13700002222\n");
    let r = import_dnc(&store, &gbk, &to, now, &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(r.added, 1);
}

#[tokio::test]
async fn export_masks_unless_revealed_and_records_the_reveal() {
    use waihu_import::export::{export, Format, Reveal};
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, CSV).unwrap();
    import_file(&store, &csv, &opts(100), &mut ())
        .await
        .unwrap();
    let now = chrono::Utc::now();

    let mut out = Vec::new();
    let n = export(&store, &mut out, Format::Csv, None, now)
        .await
        .unwrap();
    assert_eq!(n, 3);
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("id,phone,name,region,tz,segment,purchase_freq")
    );
    assert!(!text.contains("13812345678"), "{text}");
    assert_eq!(text.lines().count(), 4);
    assert_eq!(reveals(&store).await, 0);

    let who = Reveal {
        actor: "alice".into(),
        context: "test".into(),
    };
    let mut out = Vec::new();
    export(&store, &mut out, Format::JsonLines, Some(&who), now)
        .await
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("+8613812345678"), "{text}");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert!(first["attrs"].is_object());
    assert_eq!(
        reveals(&store).await,
        3,
        "one pii_revealed event per customer shown"
    );
}

async fn reveals(store: &Store) -> usize {
    let events = store.events(0, 10_000).await.unwrap();
    events
        .iter()
        .filter(|(_, e)| matches!(e.kind, waihu_core::EventKind::PiiRevealed { .. }))
        .count()
}

#[tokio::test]
async fn segments_classify_count_and_apply() {
    use waihu_import::segments::classify_all;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, CSV).unwrap();
    import_file(&store, &csv, &opts(100), &mut ())
        .await
        .unwrap();
    let schema = store.attr_schema().await.unwrap();
    let rules = waihu_segment::RuleSet::parse(
        "segments:\n  - name: loyal\n    rule: purchase_freq > 4\ndefault: other\n",
        "rules.yaml",
        &schema,
    )
    .unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap();
    let c = classify_all(&store, &rules, today, 5, true).await.unwrap();
    assert_eq!(c.total, 3);
    let rows = c.rows(&store).await.unwrap();
    let counts: Vec<(Option<&str>, u64)> = rows.iter().map(|r| (r.segment, r.customers)).collect();
    assert_eq!(counts, vec![(Some("loyal"), 1), (Some("other"), 2)]);
    assert!(rows[0].samples[0].phone.contains('*'));
    c.apply(&store, "rules.yaml", chrono::Utc::now())
        .await
        .unwrap();
    let stored: std::collections::BTreeMap<Option<String>, i64> =
        store.segment_counts().await.unwrap().into_iter().collect();
    assert_eq!(stored.get(&Some("loyal".to_string())), Some(&1));
}

/// Consent comes from a column under any of its names (here `是否同意`), with
/// yes/no words in either language; a bad cell rejects its row at
/// file:line:column with the other cells kept in the rejects file; a re-import
/// without the column keeps what is stored; the stored value reaches the
/// customer record and the import's events.
#[tokio::test]
async fn consent_column_with_synonyms_values_and_row_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = dir.path().join("consent.csv");
    std::fs::write(
        &csv,
        "姓名,手机号,是否同意,购买频次\n\
         张伟,13812345678,是,6\n\
         李娜,13900001111,不同意,2\n\
         王芳,13700002222,maybe,3\n\
         Tom,13600003333,yes,1\n\
         Ann,13500004444,0,1\n\
         Bob,13400005555,,1\n",
    )
    .unwrap();
    let mut heard = Heard::default();
    let report = import_file(&store, &csv, &opts(100), &mut heard)
        .await
        .unwrap();
    assert_eq!((report.created, report.rejected), (5, 1));
    let rej = &heard.rejects[0];
    assert_eq!((rej.line, rej.column.as_deref()), (4, Some("是否同意")));
    assert!(rej.reason.contains("'maybe'"), "{}", rej.reason);
    assert_eq!(rej.cells, ["王芳", "13700002222", "maybe", "3"]);
    let text = std::fs::read_to_string(report.rejects_file.unwrap()).unwrap();
    assert!(
        text.lines()
            .nth(1)
            .unwrap()
            .ends_with(",王芳,13700002222,maybe,3"),
        "{text}"
    );

    let consent = |phone: &'static str| {
        let store = store.clone();
        async move {
            store
                .customer_by_phone(phone)
                .await
                .unwrap()
                .unwrap()
                .consent
        }
    };
    assert_eq!(consent("+8613812345678").await, Some(true));
    assert_eq!(consent("+8613900001111").await, Some(false));
    assert_eq!(consent("+8613600003333").await, Some(true));
    assert_eq!(consent("+8613500004444").await, Some(false));
    assert_eq!(consent("+8613400005555").await, None);
    // Not an attribute: the column is a role.
    let c = store
        .customer_by_phone("+8613812345678")
        .await
        .unwrap()
        .unwrap();
    assert!(!c.attrs.contains_key("是否同意"), "{:?}", c.attrs);

    // The import's events carry it (the compliance checker replays them).
    let created = store
        .events_of_type("customer_created", 0, 100)
        .await
        .unwrap();
    let with_consent = created
        .iter()
        .filter(|(_, e)| {
            matches!(
                e.kind,
                waihu_core::EventKind::CustomerCreated {
                    consent: Some(_),
                    ..
                }
            )
        })
        .count();
    assert_eq!(with_consent, 4);

    // English synonyms and values; a file without the column keeps consent.
    let again = dir.path().join("again.csv");
    std::fs::write(&again, "phone,opt_in\n13900001111,TRUE\n").unwrap();
    import_file(&store, &again, &opts(100), &mut ())
        .await
        .unwrap();
    assert_eq!(consent("+8613900001111").await, Some(true));
    let plain = dir.path().join("plain.csv");
    std::fs::write(&plain, "phone,购买频次\n13900001111,9\n").unwrap();
    import_file(&store, &plain, &opts(100), &mut ())
        .await
        .unwrap();
    assert_eq!(consent("+8613900001111").await, Some(true));
    for (cell, want) in [
        ("同意", Some(true)),
        ("授权", Some(true)),
        ("1", Some(true)),
        ("false", Some(false)),
        ("否", Some(false)),
        ("No", Some(false)),
        ("perhaps", None),
    ] {
        assert_eq!(waihu_ingest::parse_consent(cell), want, "{cell}");
    }
}

/// `examples/campaign-us.yaml` requires consent: its customers file says it for every row.
#[tokio::test]
async fn the_us_example_customers_carry_consent() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/customers-us.csv");
    let report = import_file(&store, &csv, &opts(1000), &mut ())
        .await
        .unwrap();
    assert_eq!((report.created, report.rejected), (150, 0));
    let all = store.customers(0, 1000).await.unwrap();
    let yes = all.iter().filter(|c| c.consent == Some(true)).count();
    let no = all.iter().filter(|c| c.consent == Some(false)).count();
    assert_eq!((yes, no), (135, 15));
}

/// The 号段归属地 table installed by `scripts/deps/geo.sh`, or `None` (skip;
/// a failure under CI) when it is missing.
#[track_caller]
fn installed_geo() -> Option<std::sync::Arc<waihu_geo::Table>> {
    let path = waihu_testkit::models_dir()
        .join("geo")
        .join(waihu_geo::FILE_NAME);
    if !waihu_testkit::have_peer_at("号段归属地 table (scripts/deps/geo.sh)", &path) {
        return None;
    }
    Some(std::sync::Arc::new(
        waihu_geo::read_file(&path).unwrap().unwrap(),
    ))
}

/// The stored region is the number's province/city once the table is there: a
/// re-import updates the rows stored earlier with the country alone, and a
/// second one changes nothing. Numbers of other countries keep their country.
#[tokio::test]
async fn stored_region_is_the_province_and_city() {
    let Some(geo) = installed_geo() else { return };
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let csv = "姓名,手机号\n\
        北京客户,13800001234\n\
        深圳客户,13802201234\n\
        深圳座机,0755-8888 1234\n\
        沈阳座机,024-2345 6789\n\
        Tom Li,+12025550123\n";
    let region = |e164: &'static str| {
        let store = &store;
        async move { store.customer_by_phone(e164).await.unwrap().unwrap().region }
    };
    let before = import_reader(&store, "a.csv", csv.as_bytes(), None, &opts(10), &mut ())
        .await
        .unwrap();
    assert_eq!(before.created, 5);
    assert_eq!(region("+8613802201234").await, "CN");

    let with_geo = ImportOptions {
        geo: Some(geo),
        ..opts(10)
    };
    let after = import_reader(&store, "a.csv", csv.as_bytes(), None, &with_geo, &mut ())
        .await
        .unwrap();
    assert_eq!((after.created, after.updated, after.unchanged), (0, 4, 1));
    assert_eq!(region("+8613800001234").await, "北京/北京");
    assert_eq!(region("+8613802201234").await, "广东/深圳");
    assert_eq!(region("+8675588881234").await, "广东/深圳");
    // 024 serves 沈阳, 抚顺, 本溪 and 铁岭: the province only.
    assert_eq!(region("+862423456789").await, "辽宁");
    assert_eq!(region("+12025550123").await, "US");

    let again = import_reader(&store, "a.csv", csv.as_bytes(), None, &with_geo, &mut ())
        .await
        .unwrap();
    assert_eq!((again.updated, again.unchanged), (0, 5));
}

/// A preview's estimate from an even sample of the list stays close to the exact
/// counts, and says how many customers it read.
#[tokio::test]
async fn a_sampled_preview_estimates_the_exact_counts() {
    use std::fmt::Write;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let mut csv = String::from("姓名,手机号,购买频次,平均客单价\n");
    for i in 0..6000u64 {
        // Deterministic but mixed: about 30% are frequent buyers, 20% big spenders.
        let freq = (i * 7919) % 10;
        let avg = (i * 104_729) % 2000;
        writeln!(csv, "客户{i},139{:08},{freq},{avg}", i * 13 % 100_000_000).unwrap();
    }
    let report = import_reader(
        &store,
        "s.csv",
        std::io::Cursor::new(csv.into_bytes()),
        None,
        &opts(1000),
        &mut (),
    )
    .await
    .unwrap();
    assert_eq!(report.created, 6000, "{report:?}");
    let rules = waihu_segment::RuleSet::parse(
        "segments:\n  - name: vip\n    rule: purchase_freq > 6 && avg_order > 1000\n  - name: frequent\n    rule: purchase_freq > 6\ndefault: other\n",
        "rules",
        &store.attr_schema().await.unwrap(),
    )
    .unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
    let exact = waihu_import::segments::classify_all(&store, &rules, today, 2, false)
        .await
        .unwrap();
    let est = waihu_import::segments::classify_sample(&store, &rules, today, 2, 1200, 12)
        .await
        .unwrap();
    assert_eq!((exact.sampled, est.total), (None, 6000));
    let read = est.sampled.unwrap();
    assert!((1100..=1200).contains(&read), "{read}");
    let (e_rows, s_rows) = (
        exact.rows(&store).await.unwrap(),
        est.rows(&store).await.unwrap(),
    );
    for (e, s) in e_rows.iter().zip(&s_rows) {
        assert_eq!(e.segment, s.segment);
        assert!(
            (e.share - s.share).abs() < 0.04,
            "{:?}: exact {} vs estimate {}",
            e.segment,
            e.share,
            s.share
        );
        assert!(!s.samples.is_empty(), "masked samples come from the sample");
    }
}
