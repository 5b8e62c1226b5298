//! `waihu bench ...`: throughput of waihu's parts, each beside a baseline
//! measured in the same run so the ratio means something on any machine.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use rand::{Rng, SeedableRng};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// SIP calls: concurrent calls with two-way G.711 media and call setup rate, against our
    /// UAS and a SIPp UAS (-rtp_echo) as the reference.
    Sip(crate::cmd::call::BenchSipArgs),
    /// HTTP API: KPI and heat-map pages over 1,000,000 generated attempts (rollup vs SQL over
    /// the event log vs a Rust scan of decoded events).
    Api(crate::cmd::serve::BenchApiArgs),
    /// Dialog scripts: validation time and per-step cost of the interpreter on a generated
    /// 250-state / 1,000+-transition script, beside a naive interpreter of the parsed YAML.
    Script(crate::cmd::script::BenchArgs),
    /// Speech synthesis: time to first audio and real-time factor per language,
    /// uncached beside cached.
    Tts {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Intent classification: held-out accuracy, macro-F1 and latency beside
    /// a scikit-learn TF-IDF + LogisticRegression baseline on the same split.
    Nlu(crate::cmd::nlu::BenchArgs),
    /// The voice bot end to end over SIP against virtual callees at several
    /// concurrency levels: turn latency and its breakdown, correctness, CPU.
    Voice(crate::cmd::live::BenchVoiceArgs),
    /// Voice activity detection: endpoint delay and false barge-ins on espeak
    /// clips, clean and at 10 dB SNR, beside WebRTC VAD without the noise gate.
    Vad,
    /// Embedded Whisper: WER and time per utterance beside faster-whisper
    /// (Python) on the same audio and model.
    Asr {
        /// Model directory (default: DATA_DIR/models/whisper-tiny.en).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Skip the faster-whisper baseline.
        #[arg(long)]
        no_baseline: bool,
    },
    /// Customer import: generate ROWS rows, import them with encryption on,
    /// beside baselines (CSV parsing alone; parsing + normalisation).
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Keep the generated file and data directory here (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Segment evaluation: classify CUSTOMERS generated customers under the
    /// rules of examples/segments.yaml (or --rules), compiled (one core and
    /// all cores) beside cel-interpreter evaluating the same rules.
    Segments {
        #[arg(long, default_value_t = 1_000_000)]
        customers: usize,
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Customers given to the cel-interpreter baseline (it is slower).
        #[arg(long, default_value_t = 200_000)]
        baseline_customers: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(_ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Sip(a) => crate::cmd::call::bench_sip(_ctx, a),
        Cmd::Api(a) => crate::cmd::serve::run_bench_api(_ctx, a),
        Cmd::Script(a) => crate::cmd::script::bench(a),
        Cmd::Tts { runs } => crate::cmd::speech::bench_tts(runs),
        Cmd::Vad => crate::cmd::speech::bench_vad(),
        Cmd::Voice(a) => crate::cmd::live::bench_voice(a),
        Cmd::Nlu(a) => crate::cmd::nlu::bench(a),
        Cmd::Asr {
            model_dir,
            no_baseline,
        } => crate::cmd::speech::bench_asr(_ctx, model_dir, !no_baseline),
        Cmd::Import { rows, dir, json } => bench_import(rows, dir, json),
        Cmd::Segments {
            customers,
            rules,
            baseline_customers,
            json,
        } => bench_segments(customers, rules, baseline_customers, json),
    }
}

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

fn rate(rows: usize, secs: f64) -> f64 {
    rows as f64 / secs.max(1e-9)
}

fn bench_import(rows: usize, dir: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
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
        "csv_parse_rows_per_s": rate(rows, parse_s),
        "ingest_normalise_rows_per_s": rate(rows, normalise_s),
        "full_import_rows_per_s": rate(rows, import_s),
        "full_import_seconds": import_s,
        "full_vs_csv_parse": parse_s / import_s,
        "full_vs_normalise": normalise_s / import_s,
        "peak_rss_mib": peak_kib as f64 / 1024.0,
        "db_mib": db_bytes as f64 / (1024.0 * 1024.0),
        "target_rows_per_s": 100_000,
    });
    if json {
        print_json(&result)?;
    } else {
        println!("import benchmark, {rows} rows (2 cores; encryption on)");
        println!(
            "  csv parse only (baseline)        {:>12.0} rows/s",
            rate(rows, parse_s)
        );
        println!(
            "  + decode, E.164, typed attrs     {:>12.0} rows/s",
            rate(rows, normalise_s)
        );
        println!(
            "  full import (+ seal, upsert, events) {:>8.0} rows/s  ({:.2}s; {:.3}x of csv parse, {:.2}x of normalise)",
            rate(rows, import_s),
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
            if rate(rows, import_s) >= 100_000.0 {
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

/// Attributes in the shape `waihu customers import` gives the sample file.
fn generate_attrs(n: usize, seed: u64) -> Vec<waihu_core::Attrs> {
    use waihu_core::AttrValue as V;
    const LEVELS: &[&str] = &["普通", "银卡", "金卡", "钻石"];
    const CITIES: &[&str] = &["北京", "上海", "广州", "深圳", "杭州", "成都"];
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let mut a = waihu_core::Attrs::new();
            a.insert(
                "purchase_freq".into(),
                V::Number(f64::from(rng.gen_range(0..30))),
            );
            a.insert(
                "avg_order".into(),
                V::Number(f64::from(rng.gen_range(30..8000))),
            );
            a.insert(
                "interaction_count".into(),
                V::Number(f64::from(rng.gen_range(0..15))),
            );
            a.insert(
                "last_purchase".into(),
                V::Number(f64::from(rng.gen_range(1..400))),
            );
            a.insert(
                "last_interaction".into(),
                V::Number(f64::from(rng.gen_range(1..365))),
            );
            a.insert(
                "member_level".into(),
                V::Text(LEVELS[rng.gen_range(0..LEVELS.len())].into()),
            );
            a.insert(
                "city".into(),
                V::Text(CITIES[rng.gen_range(0..CITIES.len())].into()),
            );
            a.insert("has_app".into(), V::Bool(rng.gen_bool(0.5)));
            a
        })
        .collect()
}

fn bench_segments(
    n: usize,
    rules: Option<PathBuf>,
    baseline_n: usize,
    json: bool,
) -> anyhow::Result<()> {
    use rayon::prelude::*;
    let (src, file) = match &rules {
        Some(p) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        None => (
            include_str!("../../../../examples/segments.yaml").to_string(),
            "examples/segments.yaml".into(),
        ),
    };
    let attrs = generate_attrs(n, 7);
    let mut schema = waihu_core::AttrSchema::new();
    for a in attrs.iter().take(1) {
        for (k, v) in a {
            schema.insert(k.clone(), v.kind());
        }
    }
    let rs = waihu_segment::RuleSet::parse(&src, &file, &schema).map_err(|e| {
        anyhow::anyhow!(e
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("; "))
    })?;
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).context("date")?;

    // 1. From attribute maps (what `segments apply` does per customer), one core.
    let t = Instant::now();
    let mut hist = vec![0u64; rs.names().len() + 1];
    for a in &attrs {
        let seg = rs.classify(a, today);
        let i = seg
            .and_then(|s| rs.names().iter().position(|n| *n == s))
            .unwrap_or(hist.len() - 1);
        hist[i] += 1;
    }
    let from_attrs_s = t.elapsed().as_secs_f64();

    // 2. Rows laid out once (a columnar cache), one core and all cores.
    let rows: Vec<_> = attrs.iter().map(|a| rs.row(a)).collect();
    let t = Instant::now();
    let matched_1 = rows
        .iter()
        .filter(|r| rs.classify_row(r, today).is_some())
        .count();
    let rows_1_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let matched_n = rows
        .par_iter()
        .filter(|r| rs.classify_row(r, today).is_some())
        .count();
    let rows_n_s = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        matched_1 == matched_n,
        "parallel and serial classification disagree"
    );

    // 3. Baseline: cel-interpreter on the same rules, one core.
    let defs: Vec<(String, String)> = rs
        .segments()
        .iter()
        .map(|s| (s.name.clone(), s.rule.clone()))
        .collect();
    let cel =
        waihu_segment::baseline::CelBaseline::new(&defs, rs.default_segment().map(str::to_string))
            .map_err(anyhow::Error::msg)?;
    let bn = baseline_n.min(n);
    let t = Instant::now();
    let mut disagree = 0u64;
    for a in &attrs[..bn] {
        if cel.classify(a) != rs.classify(a, today) {
            disagree += 1;
        }
    }
    // The loop above also runs ours; time ours alone on the same slice and subtract.
    let both_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    for a in &attrs[..bn] {
        std::hint::black_box(rs.classify(a, today));
    }
    let ours_slice_s = t.elapsed().as_secs_f64();
    let cel_s = (both_s - ours_slice_s).max(1e-9);

    let threads = rayon::current_num_threads();
    let r_attrs = rate(n, from_attrs_s);
    let r_rows1 = rate(n, rows_1_s);
    let r_rowsn = rate(n, rows_n_s);
    let r_cel = rate(bn, cel_s);
    let counts: serde_json::Map<String, serde_json::Value> = rs
        .names()
        .iter()
        .map(|s| s.to_string())
        .chain(std::iter::once("(none)".to_string()))
        .zip(hist.iter())
        .map(|(k, v)| (k, serde_json::json!(v)))
        .collect();
    if json {
        return print_json(&serde_json::json!({
            "bench": "segments", "customers": n, "rules": rs.segments().len(), "threads": threads,
            "compiled_from_attrs_per_s": r_attrs, "compiled_rows_1core_per_s": r_rows1,
            "compiled_rows_all_cores_per_s": r_rowsn, "cel_interpreter_per_s": r_cel,
            "baseline_customers": bn, "disagreements": disagree, "segments": counts,
        }));
    }
    println!(
        "segment evaluation: {n} customers, {} rules from {file}",
        rs.segments().len()
    );
    println!("  {:<44} {:>14} {:>8}", "path", "customers/s", "vs CEL");
    for (name, r) in [
        ("cel-interpreter (baseline, 1 core)", r_cel),
        ("compiled, from attribute maps (1 core)", r_attrs),
        ("compiled, laid-out rows (1 core)", r_rows1),
        (
            &*format!("compiled, laid-out rows ({threads} threads)"),
            r_rowsn,
        ),
    ] {
        println!("  {:<44} {:>14.0} {:>7.1}x", name, r, r / r_cel);
    }
    println!("  segments: {}", serde_json::Value::Object(counts));
    println!("  disagreements with cel-interpreter on {bn} customers: {disagree}");
    Ok(())
}
