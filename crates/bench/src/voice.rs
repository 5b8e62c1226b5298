//! `waihu bench voice`: the voice bot end to end over SIP against virtual callees in the
//! same process, at several concurrency levels: turn latency and its breakdown,
//! correctness against the callees' truth, and CPU.
use std::path::PathBuf;

use anyhow::Context;
use serde::Serialize;
use waihu_bot::Kit;
use waihu_dialer::lifecycle::{
    business_morning, latency_stats, BoxError, CampaignSetup, LatencyStats,
};
use waihu_dialer::CampaignClock;
use waihu_import::ImportOptions;
use waihu_sim::rehearsal::{rehearse, start_callees, Callees, Rehearsed};
use waihu_store::Store;

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
/// Each level imports its callees and runs its campaign through the code
/// `waihu run` uses (`waihu_import`, `waihu_dialer::lifecycle`), so the bench
/// measures exactly what a live campaign runs.
pub fn run(a: Args) -> anyhow::Result<()> {
    let persona: waihu_sim::Persona = serde_json::from_value(serde_json::json!(a.persona))
        .map_err(|_| anyhow::anyhow!("unknown persona '{}'", a.persona))?;
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
        let script = crate::write_order_script(tmp.path())?;
        let rt = crate::runtime()?;
        let row = rt.block_on(async {
            let store = Store::open(data_dir)
                .await
                .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
            let opts = ImportOptions {
                region: "US".into(),
                ..ImportOptions::default()
            };
            waihu_import::import_file(&store, &csv_path, &opts, &mut ()).await?;
            let mut opts = waihu_sim::SimOptions::new(waihu_speech::Lang::En);
            opts.max_concurrent = level * 2 + 4;
            let callees = Callees {
                population: waihu_sim::Population::new(1)
                    .with_fixed(persona)
                    .always_answer(),
                synth: waihu_sim::callee_synthesizer(None),
                opts,
            };
            let start = business_morning(&waihu_nlu::Tz::America__New_York, chrono::Utc::now());
            let clock = CampaignClock::starting_at(start, true);
            let sim = start_callees(callees, &clock).await?;
            let yaml = LIVE_BENCH_CAMPAIGN.replace("channels: 20", &format!("channels: {level}"));
            let setup = CampaignSetup {
                campaign_yaml: yaml,
                campaign_origin: "bench campaign".into(),
                script: Some(script.clone()),
                campaign_dir: None,
                trunk: sim.addr,
                trunks: Vec::new(),
                bind: "127.0.0.1:0".parse()?,
                concurrency: level,
                constants: vec![("shop".into(), "BestBuy Online".into())],
                prefix: None,
                clock,
                until: Some(start + chrono::Duration::hours(10)),
                actor: "bench".into(),
                progress: None,
                messages: None,
                agents: None,
            };
            let model = models.map(|m| m.join("whisper-tiny.en"));
            let slots = a.asr_slots;
            let kit = |script: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
                Ok(Kit::load(data_dir, script.lang(), model.as_deref(), slots)?)
            };
            let (_keep, never) = tokio::sync::watch::channel(false);
            let pid = std::process::id().to_string();
            let cpu0 = crate::process_cpu_seconds(&pid).unwrap_or(0.0);
            let t0 = std::time::Instant::now();
            let Rehearsed { summary, score, .. } = rehearse(&store, setup, sim, kit, never).await?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = crate::process_cpu_seconds(&pid).unwrap_or(0.0) - cpu0;
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

const LIVE_BENCH_CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");
