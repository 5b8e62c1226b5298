//! `waihu bench voice`: the voice bot end to end over SIP against virtual callees in the
//! same process, at several concurrency levels: turn latency and its breakdown,
//! correctness against the callees' truth, and CPU.
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use waihu_bot::Latency;
use waihu_dialer::{CampaignClock, Summary};
use waihu_store::Store;

// MERGE: issue 13 moves the CSV import into `waihu-import` and the campaign lifecycle
// (`run_live` in crates/cli/src/cmd/live.rs) into `waihu-dialer`. Once both are
// library calls, call them from `run` below (the import is
// `waihu_import::import_file(&store, csv, &ImportOptions { region, ..Default::default() }, &mut ())`)
// and delete `LiveCampaign`, `LiveRun` and the binary's implementation
// (`BinaryLive` in crates/cli/src/cmd/bench.rs).
/// What `bench voice` takes from the live-campaign path of the `waihu` binary (`waihu
/// run`), which implements it over its own functions: the bench measures exactly the
/// code a live campaign runs.
pub trait LiveCampaign {
    /// Imports the customers of `csv` (numbers without a country code are in
    /// `region`) into `store`, the store of `data_dir`.
    fn import(
        &self,
        data_dir: &Path,
        store: &Store,
        csv: &Path,
        region: &str,
    ) -> impl Future<Output = anyhow::Result<()>>;

    /// Stores the campaign, marks it running and runs it to the end.
    fn run(
        &self,
        data_dir: &Path,
        store: &Store,
        setup: LiveRun,
    ) -> impl Future<Output = anyhow::Result<Summary>>;
}

/// One live run, field for field what `waihu run` needs from its files and flags.
pub struct LiveRun {
    pub campaign_yaml: String,
    pub campaign_origin: String,
    pub script: PathBuf,
    pub trunk: SocketAddr,
    pub bind: SocketAddr,
    pub concurrency: usize,
    pub constants: Vec<(String, String)>,
    pub prefix: Option<String>,
    pub asr_model: Option<PathBuf>,
    pub asr_slots: Option<usize>,
    pub clock: Arc<CampaignClock>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Concurrency levels to measure, e.g. `1,10,20`.
    #[arg(long, default_value = "1,10,20", value_delimiter = ',')]
    pub levels: Vec<usize>,
    /// Calls per level (default: 2 × the level, at least 4).
    #[arg(long)]
    pub calls: Option<usize>,
    /// Persona of every virtual callee.
    #[arg(long, default_value = "cooperative")]
    pub persona: String,
    /// Utterances decoded at once (default: the number of cores).
    #[arg(long)]
    pub asr_slots: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct VoiceLevel {
    concurrency: usize,
    calls: usize,
    correct_share: f64,
    latency: LatencyStats,
    wall_s: f64,
    /// CPU of the whole process (bot and virtual callees) in cores, while the level ran.
    cpu_cores: f64,
    /// CPU seconds per answered call (both sides).
    cpu_s_per_call: f64,
}

/// `waihu bench voice`: the whole pipeline (planner → SIP → VAD → Whisper → NLU → dialog →
/// TTS, and the virtual callees' side) at several concurrency levels in one process; turn
/// latency with its breakdown, correctness against the callees' truth, and CPU.
///
/// `live` runs the campaign of each level (see [`LiveCampaign`]).
pub fn run(a: Args, live: &impl LiveCampaign) -> anyhow::Result<()> {
    let persona: waihu_sim::Persona = serde_json::from_value(serde_json::json!(a.persona))
        .map_err(|_| anyhow::anyhow!("unknown persona '{}'", a.persona))?;
    let repo_script = ORDER_EN;
    let mut rows = Vec::new();
    for &level in &a.levels {
        let tmp = tempfile::tempdir()?;
        let models = std::env::var_os("WAIHU_MODELS_DIR").map(PathBuf::from);
        let data_dir = tmp.path();
        let n = a.calls.unwrap_or((2 * level).max(4));
        let mut csv = String::from(
            "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
        );
        for i in 0..n {
            csv.push_str(&format!(
                "Mr. Test,+1212555{:04},America/New_York,US{i:05},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
                1000 + i,
                10 + i
            ));
        }
        let csv_path = tmp.path().join("bench.csv");
        std::fs::write(&csv_path, csv)?;
        let script = tmp.path().join("order_confirmation.en.yaml");
        std::fs::write(&script, repo_script)?;
        let rt = crate::runtime()?;
        let row = rt.block_on(async {
            let store = Store::open(data_dir)
                .await
                .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
            live.import(data_dir, &store, &csv_path, "US").await?;
            let mut sim_opts = waihu_sim::SimOptions::new(waihu_speech::Lang::En);
            sim_opts.max_concurrent = level * 2 + 4;
            let start = business_morning(waihu_nlu::Tz::America__New_York);
            let clock = CampaignClock::starting_at(start, true);
            let c2 = clock.clone();
            sim_opts.clock = Arc::new(move || c2.now());
            let sim = waihu_sim::SimServer::start_with(
                "127.0.0.1:0".parse()?,
                waihu_sim::Population::new(1)
                    .with_fixed(persona)
                    .always_answer(),
                waihu_sim::callee_synthesizer(None),
                sim_opts,
            )
            .await
            .map_err(|e| anyhow::anyhow!("starting the virtual callees: {e}"))?;
            let yaml = LIVE_BENCH_CAMPAIGN.replace("channels: 20", &format!("channels: {level}"));
            let setup = LiveRun {
                campaign_yaml: yaml,
                campaign_origin: "bench campaign".into(),
                script: script.clone(),
                trunk: sim.addr,
                bind: "127.0.0.1:0".parse()?,
                concurrency: level,
                constants: vec![("shop".into(), "BestBuy Online".into())],
                prefix: None,
                asr_model: models.map(|m| m.join("whisper-tiny.en")),
                asr_slots: a.asr_slots,
                clock,
                until: Some(start + chrono::Duration::hours(10)),
            };
            let pid = std::process::id().to_string();
            let cpu0 = crate::process_cpu_seconds(&pid).unwrap_or(0.0);
            let t0 = std::time::Instant::now();
            let summary = live.run(data_dir, &store, setup).await?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = crate::process_cpu_seconds(&pid).unwrap_or(0.0) - cpu0;
            let attempts: Vec<(String, waihu_core::CallOutcome, Option<String>)> = summary
                .calls
                .iter()
                .map(|c| (c.phone.clone(), c.outcome, c.business.clone()))
                .collect();
            let logs = sim
                .wait_for_logs(attempts.len(), Duration::from_secs(5))
                .await;
            let score = waihu_sim::score(&attempts, &logs);
            sim.shutdown().await;
            store.close().await;
            let answered = summary
                .calls
                .iter()
                .filter(|c| c.outcome == waihu_core::CallOutcome::Answered)
                .count();
            Ok::<_, anyhow::Error>(VoiceLevel {
                concurrency: level,
                calls: summary.attempts,
                correct_share: score.share(),
                latency: latency_stats(summary.calls.iter().flat_map(|c| c.latencies.iter())),
                wall_s: (wall * 10.0).round() / 10.0,
                cpu_cores: (cpu / wall * 100.0).round() / 100.0,
                cpu_s_per_call: (cpu / answered.max(1) as f64 * 100.0).round() / 100.0,
            })
        })?;
        if a.json {
            crate::print_json(&row)?;
        } else {
            let m = &row.latency.mean;
            println!(
                "{:>3} at once: {:>3} calls, correct {:>5.1}%, turn latency p50 {:>5.0} ms p95 {:>5.0} ms over {} turns (endpointing {:.0}, ASR {:.0} incl. queue {:.0}, NLU {:.1}, dialog {:.2}, TTS first {:.0}); CPU {:.2} cores, {:.1} s per call; wall {:.0} s",
                row.concurrency, row.calls, row.correct_share * 100.0, row.latency.p50_ms, row.latency.p95_ms,
                row.latency.turns, m.endpoint_ms, m.asr_ms, m.asr_wait_ms, m.nlu_ms, m.dialog_ms, m.tts_first_ms,
                row.cpu_cores, row.cpu_s_per_call, row.wall_s
            );
        }
        rows.push(row);
    }
    if !a.json {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        println!("(one process holds both the bot and the virtual callees; {cores} cores; the target is p50 ≤ 700 ms, p95 ≤ 1200 ms)");
    }
    Ok(())
}

const ORDER_EN: &str = include_str!("../../../examples/scripts/order_confirmation.en.yaml");
const LIVE_BENCH_CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");

// MERGE: the same as `LatencyStats`, `latency_stats` and `business_morning` in
// crates/cli/src/cmd/live.rs (`waihu run` and the demo print them too); keep one
// copy wherever the live-campaign lifecycle lands and use it here.
/// Percentiles and the mean breakdown of turn latencies.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    pub turns: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub mean: Latency,
}

pub fn latency_stats<'a>(lat: impl Iterator<Item = &'a Latency>) -> LatencyStats {
    let all: Vec<&Latency> = lat.collect();
    if all.is_empty() {
        return LatencyStats::default();
    }
    let mut totals: Vec<f64> = all.iter().map(|l| l.total_ms).collect();
    totals.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| totals[((totals.len() - 1) as f64 * p).round() as usize];
    let n = all.len() as f64;
    let mean = |f: &dyn Fn(&Latency) -> f64| {
        (all.iter().map(|l| f(l)).sum::<f64>() / n * 10.0).round() / 10.0
    };
    LatencyStats {
        turns: all.len(),
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
        mean: Latency {
            total_ms: mean(&|l| l.total_ms),
            endpoint_ms: mean(&|l| l.endpoint_ms),
            asr_ms: mean(&|l| l.asr_ms),
            asr_wait_ms: mean(&|l| l.asr_wait_ms),
            nlu_ms: mean(&|l| l.nlu_ms),
            dialog_ms: mean(&|l| l.dialog_ms),
            tts_first_ms: mean(&|l| l.tts_first_ms),
        },
    }
}

/// 9:30 today in `zone` (the campaign clock starts there), as UTC.
fn business_morning(zone: waihu_nlu::Tz) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let t = today.and_hms_opt(9, 30, 0).unwrap_or_default();
    zone.from_local_datetime(&t)
        .earliest()
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
}
