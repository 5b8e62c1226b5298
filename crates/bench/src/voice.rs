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
    /// Language: `en` (tiny.en, espeak-ng callees) or `zh` (Whisper base, the
    /// order-confirmation script in Mandarin, neural callee voices through a
    /// telephone line model where installed).
    #[arg(long, default_value = "en", value_parser = ["en", "zh"])]
    pub lang: String,
    /// How calls start: `lockstep` (10 per second, so a level's turns arrive
    /// in bursts), `staggered` (one per second), or `both`.
    #[arg(long, default_value = "both", value_parser = ["lockstep", "staggered", "both"])]
    pub arrival: String,
    /// Speculative ASR at the callee's pauses: `on`, `off`, or `both` (off
    /// first, as the baseline, then on).
    #[arg(long, default_value = "both", value_parser = ["on", "off", "both"])]
    pub speculate: String,
    #[arg(long)]
    pub json: bool,
    /// Print no rows (a caller prints what it takes from them).
    #[arg(skip)]
    pub quiet: bool,
    /// The models directory (a caller's); default `WAIHU_MODELS_DIR`.
    #[arg(skip)]
    pub models: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub(crate) struct VoiceLevel {
    lang: String,
    concurrency: usize,
    arrival: &'static str,
    speculate: bool,
    calls: usize,
    correct_share: f64,
    /// Bot prompts started while a callee was saying a line, per callee line.
    cut_in_share: f64,
    speculation: waihu_bot::Speculation,
    pub(crate) latency: LatencyStats,
    /// Mouth to ear as the callees heard it: end of their line to the bot's reply
    /// at their ear, RTP both ways and the jitter buffers included.
    pub(crate) ear: Ear,
    wall_s: f64,
    /// CPU of the whole process (bot and virtual callees) in cores, while the level ran.
    cpu_cores: f64,
    /// CPU seconds per answered call (both sides).
    cpu_s_per_call: f64,
    /// The first calls whose stored outcome differs from the callee's truth: what
    /// the callee said, what was stored, and what answering-machine detection did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    misses: Vec<String>,
}

#[derive(Debug, Serialize, Default, Clone)]
pub(crate) struct Ear {
    pub(crate) turns: usize,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
}

pub(crate) fn ear(ms: &[u64]) -> Ear {
    let mut v = ms.to_vec();
    v.sort_unstable();
    let pct = |p: f64| {
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .map_or(0.0, |&x| x as f64)
    };
    Ear {
        turns: v.len(),
        p50_ms: pct(0.5),
        p95_ms: pct(0.95),
    }
}

/// `waihu bench voice`: the whole pipeline (planner → SIP → VAD → Whisper → NLU → dialog →
/// TTS, and the virtual callees' side) at several concurrency levels in one process; turn
/// latency with its breakdown, correctness against the callees' truth, and CPU.
///
/// Each level imports its callees and runs its campaign through the code
/// `waihu run` uses (`waihu_import`, `waihu_dialer::lifecycle`), so the bench
/// measures exactly what a live campaign runs.
pub fn run(a: Args) -> anyhow::Result<()> {
    let rows = levels(&a)?;
    if !a.json {
        summarise(&rows);
    }
    Ok(())
}

/// Runs every level of `a`, printing each row as it finishes (JSON with `--json`).
pub(crate) fn levels(a: &Args) -> anyhow::Result<Vec<VoiceLevel>> {
    let persona: waihu_sim::Persona = serde_json::from_value(serde_json::json!(a.persona))
        .map_err(|_| anyhow::anyhow!("unknown persona '{}'", a.persona))?;
    let zh = a.lang == "zh";
    let arrivals: &[(&'static str, u32)] = match a.arrival.as_str() {
        "lockstep" => &[("lockstep", 10)],
        "staggered" => &[("staggered", 1)],
        _ => &[("lockstep", 10), ("staggered", 1)],
    };
    let speculate: &[bool] = match a.speculate.as_str() {
        "on" => &[true],
        "off" => &[false],
        _ => &[false, true],
    };
    let mut runs = Vec::new();
    for &level in &a.levels {
        for &arrival in arrivals {
            for &spec in speculate {
                runs.push((level, arrival, spec));
            }
        }
    }
    let t_all = std::time::Instant::now();
    let mut rows = Vec::new();
    for (i, &(level, (arrival, cps), spec)) in runs.iter().enumerate() {
        if i > 0 {
            let per = t_all.elapsed().as_secs_f64() / i as f64;
            eprintln!(
                "waihu bench voice: {i}/{} runs done, {:.0} s elapsed, about {:.0} s to go",
                runs.len(),
                t_all.elapsed().as_secs_f64(),
                per * (runs.len() - i) as f64
            );
        }
        let tmp = tempfile::tempdir()?;
        let models = a
            .models
            .clone()
            .or_else(|| std::env::var_os("WAIHU_MODELS_DIR").map(PathBuf::from));
        let data_dir = tmp.path();
        if let Some(m) = &a.models {
            // What `Kit::load` looks for under the data directory (the encoder, the voices) too.
            std::os::unix::fs::symlink(m, data_dir.join("models"))
                .with_context(|| format!("linking the models at {}", m.display()))?;
        }
        let n = a.calls.unwrap_or((2 * level).max(4));
        let mut csv = String::from(
            "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
        );
        for i in 0..n {
            if zh {
                csv.push_str(&format!(
                    "张先生,+86138{:08},Asia/Shanghai,CN{i:05},空气净化器,1299,上海市浦东新区世纪大道{}号,明天上午9点到12点\n",
                    10_000_000 + i,
                    10 + i
                ));
            } else {
                csv.push_str(&format!(
                    "Mr. Test,+1212555{:04},America/New_York,US{i:05},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
                    1000 + i,
                    10 + i
                ));
            }
        }
        let csv_path = tmp.path().join("bench.csv");
        std::fs::write(&csv_path, csv)?;
        let script = crate::write_order_script_in(tmp.path(), &a.lang)?;
        let rt = crate::runtime()?;
        let row = rt.block_on(async {
            let store = Store::open(data_dir)
                .await
                .with_context(|| format!("opening the data directory {}", data_dir.display()))?;
            let opts = ImportOptions {
                region: if zh { "CN" } else { "US" }.into(),
                ..ImportOptions::default()
            };
            waihu_import::import_file(&store, &csv_path, &opts, &mut ()).await?;
            let lang = if zh {
                waihu_speech::Lang::Zh
            } else {
                waihu_speech::Lang::En
            };
            let mut opts = waihu_sim::SimOptions::new(lang);
            opts.max_concurrent = level * 2 + 4;
            // Mandarin callees as the demo has them: the neural voice at
            // per-persona pitch and speed through a telephone line.
            let synth = if zh {
                let v = waihu_sim::callee_voice(data_dir, None);
                if v.zh_neural {
                    opts.vary_voices = true;
                    opts.line = Some(waihu_speech::channel::LineConfig::default());
                }
                v.synth
            } else {
                waihu_sim::callee_synthesizer(None)
            };
            let callees = Callees {
                population: waihu_sim::Population::new(1)
                    .with_fixed(persona)
                    .always_answer(),
                synth,
                opts,
            };
            let tz = if zh {
                waihu_nlu::Tz::Asia__Shanghai
            } else {
                waihu_nlu::Tz::America__New_York
            };
            let start = business_morning(&tz, chrono::Utc::now());
            let clock = CampaignClock::starting_at(start, true);
            let sim = start_callees(callees, &clock).await?;
            let campaign = if zh {
                LIVE_CAMPAIGN_ZH
            } else {
                LIVE_BENCH_CAMPAIGN
            };
            let yaml = campaign.replace(
                "channels: 20, cps: 10",
                &format!("channels: {level}, cps: {cps}"),
            );
            anyhow::ensure!(
                yaml != campaign,
                "the bench campaign has no `channels: 20, cps: 10` trunk"
            );
            let setup = CampaignSetup {
                campaign_yaml: yaml,
                campaign_origin: "bench campaign".into(),
                script: Some(script.clone()),
                campaign_dir: None,
                trunk: sim.addr,
                trunks: Vec::new(),
                bind: "127.0.0.1:0".parse()?,
                sip_trust: Vec::new(),
                concurrency: level,
                constants: vec![(
                    "shop".into(),
                    if zh { "优选商城" } else { "BestBuy Online" }.into(),
                )],
                prefix: None,
                limit: None,
                clock,
                until: Some(start + chrono::Duration::hours(10)),
                actor: "bench".into(),
                progress: None,
                messages: None,
                agents: None,
            };
            let model = models.map(|m| {
                m.join(if zh {
                    "whisper-base"
                } else {
                    "whisper-tiny.en"
                })
            });
            let slots = a.asr_slots;
            let kit = |script: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
                let mut kit = Kit::load(data_dir, script.lang(), model.as_deref(), slots)?;
                if !spec {
                    kit.endpoint.pause_ms = 0;
                }
                Ok(kit)
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
            let mut speculation = waihu_bot::Speculation::default();
            for c in &summary.calls {
                speculation.started += c.speculation.started;
                speculation.hits += c.speculation.hits;
                speculation.early_ends += c.speculation.early_ends;
                speculation.shed += c.speculation.shed;
            }
            let misses = score
                .mismatches
                .iter()
                .take(5)
                .map(|m| {
                    // Every attempt on the number: its detector verdict.
                    let analysis: Vec<String> = summary
                        .calls
                        .iter()
                        .filter(|c| waihu_sim::normalize_number(&c.phone) == m.number)
                        .map(|c| {
                            c.analysis.as_ref().map_or("-".to_string(), |a| {
                                format!("{} {} at {} ms", a.verdict, a.reason, a.final_ms)
                            })
                        })
                        .collect();
                    let analysis = analysis.join(", ");
                    format!(
                        "{:?}: expected {} / {:?}, stored {} / {:?}; amd {analysis}; callee said {:?}",
                        m.persona,
                        m.expected_outcome,
                        m.expected_business,
                        m.got_outcome,
                        m.got_business,
                        m.lines_said
                    )
                })
                .collect();
            Ok::<_, anyhow::Error>(VoiceLevel {
                misses,
                lang: a.lang.clone(),
                concurrency: level,
                arrival,
                speculate: spec,
                calls: summary.attempts,
                correct_share: score.share(),
                cut_in_share: score.cut_in_share(),
                speculation,
                latency: latency_stats(summary.calls.iter().flat_map(|c| c.latencies.iter())),
                ear: ear(&score.reply_ms),
                wall_s: (wall * 10.0).round() / 10.0,
                cpu_cores: (cpu / wall * 100.0).round() / 100.0,
                cpu_s_per_call: (cpu / answered.max(1) as f64 * 100.0).round() / 100.0,
            })
        })?;
        if a.quiet {
            // The caller prints.
        } else if a.json {
            crate::print_json(&row)?;
        } else {
            let m = &row.latency.mean;
            let sp = &row.speculation;
            println!(
                "{} {:>3} at once, {:<9} speculative ASR {:<3}: {:>3} calls, correct {:>5.1}%, turn latency p50 {:>5.0} ms p95 {:>5.0} ms over {} turns (endpointing {:.0}, ASR {:.0} incl. queue {:.0}, NLU {:.1}, dialog {:.2}, TTS first {:.0}); mouth to ear at the callee p50 {:.0} ms p95 {:.0} ms over {} lines; cut-ins {:.1}%; speculation {} started, {} hits, {} early ends, {} shed; CPU {:.2} cores, {:.1} s per call; wall {:.0} s",
                row.lang, row.concurrency, row.arrival, if row.speculate { "on" } else { "off" },
                row.calls, row.correct_share * 100.0, row.latency.p50_ms, row.latency.p95_ms,
                row.latency.turns, m.endpoint_ms, m.asr_ms, m.asr_wait_ms, m.nlu_ms, m.dialog_ms, m.tts_first_ms,
                row.ear.p50_ms, row.ear.p95_ms, row.ear.turns,
                row.cut_in_share * 100.0, sp.started, sp.hits, sp.early_ends, sp.shed,
                row.cpu_cores, row.cpu_s_per_call, row.wall_s
            );
            for m in &row.misses {
                println!("    ✗ {m}");
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn summarise(rows: &[VoiceLevel]) {
    {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        println!("(one process holds both the bot and the virtual callees; {cores} cores; targets at 20 calls: English p50 ≤ 500 ms, p95 ≤ 900 ms; Mandarin p50 ≤ 700 ms; cut-ins ≤ 5%)");
        // Speculation on against off at each level and arrival: the ratio of p50s.
        for on in rows.iter().filter(|r| r.speculate) {
            if let Some(off) = rows.iter().find(|r| {
                !r.speculate && r.concurrency == on.concurrency && r.arrival == on.arrival
            }) {
                println!(
                    "{} {:>3} at once, {}: speculative ASR p50 {:.0} ms vs {:.0} ms without = {:.2}×, p95 {:.2}×",
                    on.lang, on.concurrency, on.arrival, on.latency.p50_ms, off.latency.p50_ms,
                    on.latency.p50_ms / off.latency.p50_ms.max(1.0),
                    on.latency.p95_ms / off.latency.p95_ms.max(1.0)
                );
            }
        }
    }
}

const LIVE_BENCH_CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");
const LIVE_CAMPAIGN_ZH: &str = include_str!("../../../examples/campaign-demo.zh.yaml");
