//! `waihu bench import`: generated customers imported with encryption on, beside
//! baselines (CSV parsing alone; parsing + normalisation).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};

const HEADER: &str = "客户编号,姓名,手机号,城市,会员等级,购买频次,平均客单价,互动次数,最近购买天数,最近互动天数,是否APP用户,注册日期\n";

/// Deterministic fictional customers in the shape of `examples/customers.csv`.
pub fn generate_customers(path: &Path, rows: usize, seed: u64) -> anyhow::Result<()> {
    const SURNAMES: &[&str] = &[
        "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙",
    ];
    const GIVEN: &[&str] = &[
        "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰", "涛", "明",
    ];
    const CITIES: &[&str] = &[
        "北京", "上海", "广州", "深圳", "杭州", "成都", "武汉", "南京", "西安",
    ];
    const PREFIX: &[&str] = &[
        "135", "136", "137", "138", "139", "150", "151", "158", "186", "188",
    ];
    const LEVELS: &[&str] = &["普通", "银卡", "金卡", "钻石"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f);
    w.write_all(HEADER.as_bytes())?;
    for i in 0..rows {
        // Unique numbers: the row index spread over the prefixes.
        let prefix = PREFIX[i % PREFIX.len()];
        let body = (i / PREFIX.len()) as u64 * 7919 % 100_000_000;
        writeln!(
            w,
            "C{},{}{}{},{}{:08},{},{},{},{},{},{},{},{},{}-{:02}-{:02}",
            i,
            SURNAMES[rng.gen_range(0..SURNAMES.len())],
            GIVEN[rng.gen_range(0..GIVEN.len())],
            GIVEN[rng.gen_range(0..GIVEN.len())],
            prefix,
            body,
            CITIES[rng.gen_range(0..CITIES.len())],
            LEVELS[rng.gen_range(0..LEVELS.len())],
            rng.gen_range(0..30),
            rng.gen_range(30..8000),
            rng.gen_range(0..15),
            rng.gen_range(1..400),
            rng.gen_range(1..365),
            if rng.gen_bool(0.5) { "是" } else { "否" },
            rng.gen_range(2019..2026),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
        )?;
    }
    w.flush()?;
    Ok(())
}

/// Generates `rows` customers (in `dir`, default a temporary one) and imports them with
/// `waihu customers import` in a child process: the `waihu` binary this runs in.
pub fn run(rows: usize, dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)?;
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let csv_path = dir.join("bench-customers.csv");
    let data_dir = dir.join("bench-data");
    let _ = std::fs::remove_dir_all(&data_dir);
    let t = Instant::now();
    generate_customers(&csv_path, rows, 42)?;
    eprintln!("generated {rows} rows in {:.1}s", t.elapsed().as_secs_f64());

    // Baseline 1: the csv crate reading every record, nothing else.
    let t = Instant::now();
    let mut rdr = csv::Reader::from_path(&csv_path)?;
    let mut rec = csv::ByteRecord::new();
    let mut n = 0usize;
    while rdr.read_byte_record(&mut rec)? {
        n += 1;
    }
    let parse_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(n == rows, "read {n} rows, expected {rows}");

    // Baseline 2: waihu-ingest (decode, normalise to E.164, type attributes), no store.
    let t = Instant::now();
    let file = std::fs::File::open(&csv_path)?;
    let mut src = waihu_ingest::Source::open(
        std::io::BufReader::with_capacity(1 << 20, file),
        waihu_ingest::Options::new("CN")?,
    )?;
    let mut ok = 0usize;
    loop {
        let b = src.next_batch(5000)?;
        if b.is_empty() {
            break;
        }
        ok += b.iter().filter(|r| r.is_ok()).count();
    }
    let normalise_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(ok == rows, "normalised {ok} of {rows} rows");

    // The real thing, in a child process so its peak memory is its own:
    // parse, normalise, seal (AES-256-GCM + HMAC index), upsert, events.
    let exe = std::env::current_exe()?;
    let t = Instant::now();
    let out = std::process::Command::new(exe)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["customers", "import", "--json"])
        .arg(&csv_path)
        .env_remove("WAIHU_MASTER_KEY")
        .output()
        .context("running the import child")?;
    let import_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        out.status.success(),
        "import failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).context("import report")?;
    anyhow::ensure!(
        report["created"] == rows,
        "import created {} of {rows}",
        report["created"]
    );
    let peak_kib = children_peak_rss_kib();
    let db_bytes = std::fs::metadata(data_dir.join("waihu.db"))
        .map(|m| m.len())
        .unwrap_or(0);

    let result = serde_json::json!({
        "bench": "import",
        "rows": rows,
        "csv_parse_rows_per_s": crate::rate(rows, parse_s),
        "ingest_normalise_rows_per_s": crate::rate(rows, normalise_s),
        "full_import_rows_per_s": crate::rate(rows, import_s),
        "full_import_seconds": import_s,
        "full_vs_csv_parse": parse_s / import_s,
        "full_vs_normalise": normalise_s / import_s,
        "peak_rss_mib": peak_kib as f64 / 1024.0,
        "db_mib": db_bytes as f64 / (1024.0 * 1024.0),
        "target_rows_per_s": 100_000,
    });
    if json {
        crate::print_json(&result)?;
    } else {
        println!("import benchmark, {rows} rows (2 cores; encryption on)");
        println!(
            "  csv parse only (baseline)        {:>12.0} rows/s",
            crate::rate(rows, parse_s)
        );
        println!(
            "  + decode, E.164, typed attrs     {:>12.0} rows/s",
            crate::rate(rows, normalise_s)
        );
        println!(
            "  full import (+ seal, upsert, events) {:>8.0} rows/s  ({:.2}s; {:.3}x of csv parse, {:.2}x of normalise)",
            crate::rate(rows, import_s),
            import_s,
            parse_s / import_s,
            normalise_s / import_s
        );
        println!(
            "  peak RSS of the import process   {:>12.1} MiB",
            peak_kib as f64 / 1024.0
        );
        println!(
            "  database size                    {:>12.1} MiB",
            db_bytes as f64 / (1024.0 * 1024.0)
        );
        println!(
            "  target: >= 100000 rows/s -> {}",
            if crate::rate(rows, import_s) >= 100_000.0 {
                "met"
            } else {
                "NOT met"
            }
        );
    }
    Ok(())
}

/// Peak resident set of the largest waited-for child, in KiB.
fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) == 0 {
            ru.ru_maxrss
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every generated row is a valid customer with a unique number, so the import
    /// bench measures the happy path it claims to.
    #[test]
    fn generated_customers_are_all_valid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.csv");
        super::generate_customers(&path, 500, 42).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let mut src =
            waihu_ingest::Source::open(file, waihu_ingest::Options::new("CN").unwrap()).unwrap();
        let mut phones = std::collections::HashSet::new();
        loop {
            let b = src.next_batch(100).unwrap();
            if b.is_empty() {
                break;
            }
            for r in b {
                let c = r.unwrap_or_else(|e| panic!("{e:?}"));
                assert!(phones.insert(c.phone_e164.clone()), "{}", c.phone_e164);
            }
        }
        assert_eq!(phones.len(), 500);
    }
}
