//! The command-line contract, end to end through the real binary: exit codes,
//! one-line errors, JSON lines, masking and auditing, encodings, rejects,
//! idempotent re-import, rule errors.
use std::path::Path;
use std::process::{Command, Output};

fn waihu(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .output()
        .expect("run waihu")
}

fn ok(dir: &Path, args: &[&str]) -> String {
    let out = waihu(dir, args);
    assert!(
        out.status.success(),
        "waihu {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

const CSV: &str = "姓名,手机号,会员等级,购买频次,平均客单价,最近互动天数\n\
张伟,13800138000,金卡,8,1500,10\n\
李娜,139-0013-9000,普通,2,300,120\n\
王芳,12345,普通,1,100,5\n\
赵敏,+86 137 0013 7000,银卡,很多,800,30\n\
陈静,15000150000,钻石,12,2600,200\n";

#[test]
fn gbk_import_rejects_reimport_and_masking() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("crm.csv");
    let (gbk, _, _) = encoding_rs::GBK.encode(CSV);
    std::fs::write(&file, &gbk).unwrap();
    let f = file.to_str().unwrap();

    let out = json_lines(&ok(&dir, &["customers", "import", f, "--json"]));
    let r = &out[0];
    assert!(
        r["encoding"]
            .as_str()
            .unwrap()
            .eq_ignore_ascii_case("gb18030"),
        "{r}"
    );
    assert_eq!(
        (r["created"].as_u64(), r["rejected"].as_u64()),
        (Some(3), Some(2)),
        "{r}"
    );
    let rejects = std::fs::read_to_string(r["rejects_file"].as_str().unwrap()).unwrap();
    assert!(
        rejects.contains('4') && rejects.contains("手机号"),
        "reject file names line and column: {rejects}"
    );
    assert!(rejects.contains("购买频次"), "{rejects}");

    // Same file again: nothing created or changed.
    let again = json_lines(&ok(&dir, &["customers", "import", f, "--json"]));
    assert_eq!(
        (again[0]["created"].as_u64(), again[0]["unchanged"].as_u64()),
        (Some(0), Some(3)),
        "{}",
        again[0]
    );

    // A changed attribute updates the same customer.
    std::fs::write(
        &file,
        encoding_rs::GBK
            .encode("姓名,手机号,购买频次\n张伟,13800138000,9\n")
            .0,
    )
    .unwrap();
    let upd = json_lines(&ok(&dir, &["customers", "import", f, "--json"]));
    assert_eq!(
        (upd[0]["created"].as_u64(), upd[0]["updated"].as_u64()),
        (Some(0), Some(1)),
        "{}",
        upd[0]
    );

    // Listing masks numbers and names; one JSON object per line.
    let list = json_lines(&ok(&dir, &["customers", "list", "--json"]));
    assert_eq!(list.len(), 3);
    let zhang = list
        .iter()
        .find(|c| c["attrs"]["member_level"]["text"] == "金卡")
        .unwrap();
    assert_eq!(zhang["phone"], "+86138****8000");
    assert_eq!(zhang["name"], "张*");
    assert_eq!(zhang["attrs"]["purchase_freq"]["number"], 9.0);
    assert!(!ok(&dir, &["customers", "list"]).contains("13800138000"));

    // Revealing is audited.
    let shown = json_lines(&ok(
        &dir,
        &["customers", "show", "13800138000", "--reveal", "--json"],
    ));
    assert_eq!(shown[0]["phone"], "+8613800138000");
    assert_eq!(shown[0]["name"], "张伟");
    let audit = json_lines(&ok(
        &dir,
        &["events", "list", "--type", "pii_revealed", "--json"],
    ));
    assert_eq!(audit.len(), 1, "{audit:?}");

    // The raw database file holds neither numbers nor names.
    let db = std::fs::read(dir.join("waihu.db")).unwrap();
    let hay = String::from_utf8_lossy(&db);
    assert!(!hay.contains("13800138000") && !hay.contains("张伟"));
}

#[test]
fn segment_rules_apply_and_errors_point_at_the_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("c.csv");
    std::fs::write(&file, CSV).unwrap();
    ok(&dir, &["customers", "import", file.to_str().unwrap()]);

    let rules = tmp.path().join("seg.yaml");
    std::fs::write(
        &rules,
        "segments:\n  - name: high_value\n    rule: purchase_freq > 5 && avg_order > 1000\n  - name: churn_risk\n    rule: last_interaction > 90\ndefault: regular\n",
    )
    .unwrap();
    let r = rules.to_str().unwrap();
    let rows = json_lines(&ok(&dir, &["segments", "preview", r, "--json"]));
    let count = |name: &str| {
        rows.iter()
            .find(|x| x["segment"] == name)
            .and_then(|x| x["customers"].as_u64())
    };
    assert_eq!(
        (count("high_value"), count("churn_risk"), count("regular")),
        (Some(2), Some(1), Some(0))
    );
    let sample = &rows[0]["samples"][0]["phone"];
    assert!(
        sample.as_str().unwrap().contains("****"),
        "samples are masked: {sample}"
    );
    // Preview stores nothing; apply does.
    assert!(json_lines(&ok(&dir, &["customers", "list", "--json"]))
        .iter()
        .all(|c| c["segment"].is_null()));
    ok(&dir, &["segments", "apply", r]);
    let applied = json_lines(&ok(
        &dir,
        &["events", "list", "--type", "segments_applied", "--json"],
    ));
    assert_eq!(applied.len(), 1, "{applied:?}");
    let kind = &applied[0]["kind"];
    assert_eq!(kind["counts"]["high_value"], 2, "{kind}");
    assert_eq!(kind["counts"]["churn_risk"], 1, "{kind}");
    assert!(kind["counts"].get("regular").is_none(), "{kind}");
    assert_eq!(kind["unsegmented"], 0, "{kind}");
    let listed = json_lines(&ok(&dir, &["segments", "list", "--json"]));
    assert!(
        listed
            .iter()
            .any(|s| s["segment"] == "high_value" && s["customers"] == 2),
        "{listed:?}"
    );

    std::fs::write(
        &rules,
        "segments:\n  - name: vip\n    rule: purchase_freq > 5 && avg_ordr > 1000\n",
    )
    .unwrap();
    let out = waihu(&dir, &["segments", "preview", r]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(":3:32: rule `vip`: unknown attribute `avg_ordr`"),
        "{err}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("waihu: ") && last.contains("1 error"),
        "{last}"
    );
}

#[test]
fn dnc_matches_through_the_blind_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(
        &dir,
        &["dnc", "add", "138 0013 8000", "--reason", "客户要求"],
    );
    let check = json_lines(&ok(&dir, &["dnc", "check", "+8613800138000", "--json"]));
    assert_eq!(check[0]["do_not_call"], true, "{check:?}");
    let other = json_lines(&ok(&dir, &["dnc", "check", "13900139000", "--json"]));
    assert_eq!(other[0]["do_not_call"], false, "{other:?}");
    let list = ok(&dir, &["dnc", "list"]);
    assert!(
        !list.contains("13800138000") && list.contains("****"),
        "{list}"
    );
    ok(&dir, &["dnc", "remove", "13800138000"]);
    let after = json_lines(&ok(&dir, &["dnc", "check", "13800138000", "--json"]));
    assert_eq!(after[0]["do_not_call"], false);
}

#[test]
fn audit_verify_exits_zero_when_intact_and_names_a_deleted_row() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    for n in ["13800138000", "13900139000", "13700137000"] {
        ok(&dir, &["dnc", "add", n]);
    }
    let v = json_lines(&ok(&dir, &["audit", "verify", "--json"]));
    assert_eq!(
        (v[0]["ok"].as_bool(), v[0]["rows"].as_u64()),
        (Some(true), Some(3)),
        "{v:?}"
    );
    assert!(ok(&dir, &["audit", "verify"]).contains("audit chain intact"));

    // An intruder drops the trigger and deletes the middle row.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.join("waihu.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::raw_sql("DROP TRIGGER events_append_only_delete; DELETE FROM events WHERE id = 2;")
            .execute(&mut c)
            .await
            .unwrap();
        c.close().await.unwrap();
    });
    let out = waihu(&dir, &["audit", "verify", "--json"]);
    assert!(!out.status.success());
    let v = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(v[0]["finding"]["problem"], "deleted", "{v:?}");
    assert_eq!(v[0]["finding"]["id"], 2);
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("row 2") && err.contains("deleted"), "{err}");
}

#[test]
fn wrong_key_is_a_clear_one_line_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    ok(&dir, &["dnc", "add", "13800138000"]);
    let out = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["dnc", "list"])
        .env("WAIHU_MASTER_KEY", "11".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("master key does not match"), "{err}");
    // Bad input to a command: non-zero, one line, no panic.
    let out = waihu(&dir, &["customers", "import", "/nonexistent.csv"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("waihu: ") && !err.contains("panicked"),
        "{err}"
    );
}

/// A kill in the middle of an import leaves whole rows only: every stored
/// customer opens and has its creation event, and importing again completes.
#[test]
fn killed_import_leaves_whole_rows_and_resumes() {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let file = tmp.path().join("big.csv");
    let rows = 120_000u64;
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "姓名,手机号,购买频次").unwrap();
        for i in 0..rows {
            writeln!(w, "客户{i},139{:08},{}", i * 7 % 100_000_000, i % 30).unwrap();
        }
    }
    let f = file.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["customers", "import", f, "--batch", "2000"])
        .env_remove("WAIHU_MASTER_KEY")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once some batches are in (the database file grows), or after 10 s.
    let db = dir.join("waihu.db-wal");
    let t = std::time::Instant::now();
    while t.elapsed() < std::time::Duration::from_secs(10) {
        if std::fs::metadata(&db)
            .map(|m| m.len() > 2_000_000)
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();

    let count = |dir: &Path| -> (u64, u64) {
        let counts = json_lines(&ok(dir, &["events", "counts", "--json"]));
        let created = counts
            .iter()
            .find(|c| c["type"] == "customer_created")
            .and_then(|c| c["count"].as_u64())
            .unwrap_or(0);
        let customers = ok(dir, &["customers", "export", "--json"]).lines().count() as u64;
        (customers, created)
    };
    let (customers, created) = count(&dir);
    assert_eq!(
        customers, created,
        "every stored customer has its event (and opens: export decrypts all)"
    );
    if status.success() {
        eprintln!("note: the import finished before the kill; consistency still checked");
    } else {
        assert!(customers < rows, "killed mid-way: {customers} of {rows}");
    }
    // Import again: the rest is created, nothing duplicated.
    ok(&dir, &["customers", "import", f]);
    assert_eq!(count(&dir), (rows, rows));
}

/// `waihu campaign simulate --compare --json`: one line per policy compared
/// (FIFO, best-time, learned) with attempts, connects, tasks completed and
/// attempts reaching nobody, each audited by the independent checker.
#[test]
fn simulate_compare_json_reports_the_three_policies() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &[
            "campaign",
            "simulate",
            "--customers",
            "3000",
            "--days",
            "3",
            "--compare",
            "--json",
        ],
    );
    let lines = json_lines(&out);
    let policies: Vec<&str> = lines
        .iter()
        .map(|l| l["simulation"]["policy"].as_str().unwrap())
        .collect();
    assert_eq!(policies, ["fifo", "best-time", "learned"]);
    for l in &lines {
        let s = &l["simulation"];
        let n = |k: &str| s[k].as_u64().unwrap_or_else(|| panic!("{k} in {s}"));
        assert!(n("attempts") > 3000, "{s}");
        assert!(n("connects") > 0 && n("tasks_completed") > 0, "{s}");
        assert_eq!(n("attempts_reaching_nobody"), n("attempts") - n("connects"));
        assert_eq!(l["compliance"]["violations"], 0, "{l}");
    }
    assert!(lines[2]["simulation"]["message_first"].as_u64().unwrap() > 0);
}

/// `waihu geo`: lookups from the table `WAIHU_GEO_TABLE` names (rows of PyPI
/// phone 0.4.5), a clear error when none is installed, and a bad table named
/// by file and line.
#[test]
fn geo_lookup_info_and_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let table = tmp.path().join("cn-phone.tsv");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_waihu"))
            .arg("--data-dir")
            .arg(&dir)
            .args(args)
            .env("WAIHU_GEO_TABLE", &table)
            .env_remove("WAIHU_DATA_DIR")
            .output()
            .expect("run waihu")
    };
    let out = run(&["geo", "lookup", "13802201234"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scripts/deps/geo.sh"), "{err}");

    std::fs::write(
        &table,
        "waihu-geo 1\nV\tPyPI phone 0.4.5 (test rows)\n\
         R\t广东\t深圳\t518000\t0755\nR\t北京\t北京\t100000\t010\n\
         M\t1380000\t1\t1\t1\nM\t1380220\t10\t0\t1\n",
    )
    .unwrap();
    let out = run(&[
        "geo",
        "lookup",
        "13802201234",
        "0755-8888 1234",
        "+12025550123",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(v[0]["region"], "广东/深圳");
    assert_eq!(v[0]["carrier"], "移动");
    assert_eq!(v[1]["region"], "广东/深圳");
    assert_eq!(v[1]["area_code"], "0755");
    assert_eq!(v[1]["carrier"], serde_json::Value::Null);
    assert_eq!(v[2]["found"], false);
    let out = run(&["geo", "info", "--json"]);
    let info = json_lines(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(info[0]["segments"], 11);
    assert_eq!(info[0]["source"], "PyPI phone 0.4.5 (test rows)");

    std::fs::write(&table, "waihu-geo 1\nR\t广东\t深圳\t518000\n").unwrap();
    let out = run(&["geo", "info"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cn-phone.tsv:line 2") && err.contains("4 fields"),
        "{err}"
    );
}

/// Speech-like test audio (8 kHz): syllables of harmonics at a wandering
/// pitch with formant-like weights, and short pauses; `seed` picks the voice.
fn syllables(seed: u64, ms: usize) -> Vec<i16> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut rnd = move || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f64) / (1u64 << 31) as f64
    };
    let mut out = Vec::with_capacity(ms * 8);
    while out.len() < ms * 8 {
        let n = (8.0 * (150.0 + 150.0 * rnd())) as usize;
        let f0 = 110.0 + 140.0 * rnd();
        let (f1, f2) = (400.0 + 600.0 * rnd(), 1100.0 + 1600.0 * rnd());
        for i in 0..n {
            let t = i as f64 / 8000.0;
            let env = (std::f64::consts::PI * i as f64 / n as f64).sin();
            let mut v = 0.0;
            let mut h = 1.0;
            while h * f0 < 3400.0 {
                let f = h * f0;
                let w =
                    (-((f - f1) / 250.0).powi(2)).exp() + 0.6 * (-((f - f2) / 350.0).powi(2)).exp();
                v += w * (2.0 * std::f64::consts::PI * f * t).sin();
                h += 1.0;
            }
            out.push((env * v * 6000.0).clamp(-32000.0, 32000.0) as i16);
        }
        out.extend(std::iter::repeat_n(
            0i16,
            (8.0 * (50.0 + 100.0 * rnd())) as usize,
        ));
    }
    out
}

#[test]
fn amd_names_an_operator_recording_by_its_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let reference = tmp.path().join("carrier-停机.wav");
    let other = tmp.path().join("other.wav");
    let call = tmp.path().join("call.wav");
    let rec = syllables(7, 4000);
    waihu_audio::wav::write_wav(&reference, 8000, &rec).unwrap();
    waihu_audio::wav::write_wav(&other, 8000, &syllables(8, 4000)).unwrap();
    // The call: 400 ms of line quiet, then the recording from 0.6 s in, at
    // half level, through G.711 μ-law.
    let mut heard: Vec<i16> = vec![0; 8 * 400];
    let mut codes = Vec::new();
    let half: Vec<i16> = rec[8 * 600..].iter().map(|s| s / 2).collect();
    waihu_audio::g711::Law::Ulaw.encode(&half, &mut codes);
    waihu_audio::g711::Law::Ulaw.decode(&codes, &mut heard);
    waihu_audio::wav::write_wav(&call, 8000, &heard).unwrap();
    let (c, r, o) = (
        call.to_str().unwrap(),
        format!("suspended={}", reference.display()),
        format!("vacant={}", other.display()),
    );

    let v = json_lines(&ok(
        &dir,
        &[
            "amd",
            c,
            "--no-asr",
            "--json",
            "--announcement",
            &o,
            "--announcement",
            &r,
        ],
    ));
    let v = &v[0];
    assert_eq!(v["decision"], "announcement", "{v}");
    assert_eq!(v["reason"], "fingerprint", "{v}");
    assert_eq!(v["announcement"], "suspended", "{v}");
    assert_eq!(v["outcome"], "suspended", "{v}");
    assert_eq!(v["fingerprint"]["name"], "carrier-停机.wav", "{v}");
    assert!(v["fingerprint"]["ber"].as_f64().unwrap() < 0.25, "{v}");
    assert!(v["final_ms"].as_u64().unwrap() <= 2500, "{v}");

    // Without the recording, the same audio is no announcement.
    let v = json_lines(&ok(
        &dir,
        &["amd", c, "--no-asr", "--json", "--announcement", &o],
    ));
    assert_ne!(v[0]["announcement"], "suspended", "{}", v[0]);

    // A kind nobody knows, and a file that is not there: one clear line each.
    let out = waihu(&dir, &["amd", c, "--announcement", "out_of_money=x.wav"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("out_of_money") && err.contains("suspended (停机)"),
        "{err}"
    );
    let out = waihu(&dir, &["amd", c, "--announcement", "busy=missing.wav"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.wav"));
}

fn waihu_with_password(dir: &Path, args: &[&str], env_pw: Option<&str>, stdin: &str) -> Output {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_waihu"));
    cmd.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env_remove("WAIHU_PASSWORD")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(p) = env_pw {
        cmd.env("WAIHU_PASSWORD", p);
    }
    let mut child = cmd.spawn().expect("run waihu");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn user_accounts_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // Too short: one line on stderr, non-zero, nothing created.
    let out = waihu_with_password(
        &dir,
        &["user", "add", "li", "--role", "operator"],
        Some("short"),
        "",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("at least 10 characters"), "{err}");
    // From the environment, then from stdin.
    let out = waihu_with_password(
        &dir,
        &["user", "add", "li", "--role", "operator"],
        Some("long-enough-pw"),
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = waihu_with_password(
        &dir,
        &["user", "add", "wang", "--role", "supervisor"],
        None,
        "another-long-pw\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = waihu_with_password(
        &dir,
        &["user", "add", "li", "--role", "admin"],
        Some("long-enough-pw"),
        "",
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    // TOTP enrolment prints the URI and the secret.
    let totp = ok(&dir, &["user", "totp", "li"]);
    assert!(
        totp.starts_with("otpauth://totp/waihu:li?secret="),
        "{totp}"
    );
    assert!(totp.contains("secret (base32): "), "{totp}");
    ok(&dir, &["user", "disable", "wang"]);
    let users = json_lines(&ok(&dir, &["user", "list", "--json"]));
    assert_eq!(users.len(), 2);
    assert_eq!(
        (users[0]["name"].as_str(), users[0]["totp"].as_bool()),
        (Some("li"), Some(true))
    );
    assert_eq!(
        (users[1]["role"].as_str(), users[1]["disabled"].as_bool()),
        (Some("supervisor"), Some(true))
    );
    // The list never shows a hash or a secret.
    let listed = ok(&dir, &["user", "list", "--json"]);
    assert!(
        !listed.contains("argon2") && !listed.contains("password"),
        "{listed}"
    );
    ok(&dir, &["user", "totp", "li", "--off"]);
    ok(&dir, &["user", "unlock", "li"]);
    let out = waihu(&dir, &["user", "unlock", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user 'nobody'"));
}

/// One plain-HTTP GET on loopback: the status and the body.
fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut rq = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        rq.push_str(&format!("{k}: {v}\r\n"));
    }
    rq.push_str("\r\n");
    s.write_all(rq.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    Ok((status, body.to_string()))
}

#[test]
fn tenants_keep_their_own_data_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let f = tmp.path().join("acme.csv");
    std::fs::write(&f, CSV).unwrap();
    let f = f.to_str().unwrap();
    ok(&dir, &["customers", "list"]);
    assert!(ok(&dir, &["tenant", "add", "acme"]).contains("acme"));
    for (name, says) in [
        ("acme", "already exists"),
        ("Acme_Corp", "1 to 32 characters"),
        ("default", "always exists"),
    ] {
        let out = waihu(&dir, &["tenant", "add", name]);
        assert!(!out.status.success(), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{name}: {err}");
    }
    let out = waihu(&dir, &["--tenant", "../x", "customers", "list"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tenant"));
    // The import lands in acme's store only, sealed under acme's own key.
    ok(&dir, &["--tenant", "acme", "customers", "import", f]);
    let in_acme = json_lines(&ok(
        &dir,
        &["--tenant", "acme", "customers", "list", "--json"],
    ));
    assert_eq!(in_acme.len(), 3, "{in_acme:?}");
    assert!(ok(&dir, &["customers", "list", "--json"]).trim().is_empty());
    let own_key = std::fs::read(dir.join("master.key")).unwrap();
    let acme_key = std::fs::read(dir.join("tenants/acme/master.key")).unwrap();
    assert_ne!(own_key, acme_key);
    let tenants = json_lines(&ok(&dir, &["tenant", "list", "--json"]));
    let names: Vec<_> = tenants
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "acme"]);

    // `waihu serve` serves both; a key of acme works in acme only.
    let key = json_lines(&ok(
        &dir,
        &[
            "--tenant", "acme", "apikey", "create", "--role", "analyst", "--name", "t", "--json",
        ],
    ))[0]["key"]
        .as_str()
        .unwrap()
        .to_string();
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let out = waihu(&dir, &["--tenant", "acme", "serve", "--listen", &addr]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop --tenant"));
    let mut server = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(&dir)
        .args(["serve", "--listen", &addr])
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env_remove("WAIHU_TENANT")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bearer = format!("Bearer {key}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        match http_get(
            &addr,
            "/api/overview",
            &[("Authorization", &bearer), ("X-Waihu-Tenant", "acme")],
        ) {
            Ok(a) => break a,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100))
            }
            Err(e) => {
                let _ = server.kill();
                panic!("waihu serve never answered: {e}");
            }
        }
    };
    let in_default = http_get(&addr, "/api/overview", &[("Authorization", &bearer)]);
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(answer.0, 200, "{}", answer.1);
    let j: serde_json::Value = serde_json::from_str(&answer.1).unwrap();
    assert_eq!(j["customers"], 3, "{j}");
    assert_eq!(in_default.unwrap().0, 401);
}
