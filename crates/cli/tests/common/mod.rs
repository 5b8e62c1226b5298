//! What the live campaign tests share: running the binary on a data directory, the
//! repository's examples, and the US order customers the English script talks to.
// Each test binary compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use waihu_testkit::models_dir;

/// Runs `waihu --data-dir <dir> <args>` and returns its stdout; panics with its stderr
/// when it fails.
pub fn waihu(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env("WAIHU_MODELS_DIR", models_dir())
        .output()
        .expect("run waihu");
    assert!(
        out.status.success(),
        "waihu {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The JSON objects among a command's output lines.
pub fn json_lines(s: &str) -> Vec<serde_json::Value> {
    s.lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

/// The live tests' bot hears through Whisper tiny.en; without it they cannot run.
pub fn assert_whisper_tiny_en() {
    let model = models_dir().join("whisper-tiny.en");
    assert!(
        model.join("model.bin").exists(),
        "Whisper tiny.en missing at {} — run scripts/setup.sh",
        model.display()
    );
}

/// Imports customers (phone, name) in New York with an order each, the attributes the
/// English order-confirmation script reads.
pub fn import_orders(dir: &Path, people: &[(&str, &str)]) {
    import_orders_in(dir, people, "America/New_York")
}

/// [`import_orders`] with the customers in the zone `tz`.
pub fn import_orders_in(dir: &Path, people: &[(&str, &str)], tz: &str) {
    let mut csv = String::from(
        "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
    );
    for (i, (phone, name)) in people.iter().enumerate() {
        csv.push_str(&format!(
            "{name},{phone},{tz},US{i:04},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
            10 + i
        ));
    }
    let csv_path = dir.join("c.csv");
    std::fs::write(&csv_path, csv).unwrap();
    waihu(
        dir,
        &[
            "customers",
            "import",
            csv_path.to_str().unwrap(),
            "--region",
            "US",
        ],
    );
}

/// `waihu run --json` of `campaign` with `script`, dialling the trunk at `trunk`, with the
/// campaign clock on a Wednesday morning in New York (the calling window is open whatever
/// the real time); `extra` adds flags. Runs off the async threads (the virtual callees
/// answer on them) and returns the run's JSON summary.
pub async fn run_live(
    dir: &Path,
    campaign: &Path,
    script: &Path,
    trunk: &str,
    extra: &[&str],
) -> serde_json::Value {
    // An empty `trunk`: the calls go through the trunks `extra` names (`--trunks FILE`).
    let trunk_args = if trunk.is_empty() {
        Vec::new()
    } else {
        vec!["--trunk", trunk]
    };
    let args: Vec<String> = [
        "run",
        "--campaign",
        campaign.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
        "--clock-start",
        "2026-11-25T14:30:00Z",
        "--json",
    ]
    .iter()
    .chain(&trunk_args)
    .chain(extra)
    .map(|s| s.to_string())
    .collect();
    let dir = dir.to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        waihu(&dir, &refs)
    })
    .await
    .expect("waihu run finished");
    serde_json::from_str(out.trim().lines().last().expect("a summary line")).expect("JSON summary")
}

/// The crash harness's random kill points: splitmix64 from `WAIHU_CRASH_SEED` (else the
/// time), printed so a failing run can be replayed.
pub struct CrashRng(u64);

impl CrashRng {
    pub fn from_env(scenario: &str) -> CrashRng {
        let seed = std::env::var("WAIHU_CRASH_SEED")
            .ok()
            .map(|s| {
                s.trim()
                    .parse::<u64>()
                    .expect("WAIHU_CRASH_SEED is a number")
            })
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        eprintln!("{scenario}: WAIHU_CRASH_SEED={seed}");
        CrashRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + self.f64() * (hi - lo)
    }
}

/// Kill rounds per crash scenario: `WAIHU_CRASH_ROUNDS`, else `default`.
pub fn crash_rounds(default: usize) -> usize {
    std::env::var("WAIHU_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Virtual callees on a loopback port speaking English with the default callee voice;
/// `tune` adjusts the options (ring times, carrier recordings) before they start.
pub async fn english_callees(
    pop: waihu_sim::Population,
    tune: impl FnOnce(&mut waihu_sim::SimOptions),
) -> waihu_sim::SimHandle {
    let mut opts = waihu_sim::SimOptions::new(waihu_speech::Lang::En);
    tune(&mut opts);
    waihu_sim::SimServer::start_with(
        "127.0.0.1:0".parse().unwrap(),
        pop,
        waihu_sim::callee_synthesizer(None),
        opts,
    )
    .await
    .expect("virtual callees start")
}

/// Rings of 0.3–1.2 s (1.5 s before a no-answer), so more of a run is dialling and talking.
pub fn quick_rings(opts: &mut waihu_sim::SimOptions) {
    opts.ring = (
        std::time::Duration::from_millis(300),
        std::time::Duration::from_millis(1200),
    );
    opts.no_answer_ring = std::time::Duration::from_millis(1500);
}
