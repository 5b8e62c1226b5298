//! Live campaigns: `waihu run` places a stored campaign's calls over SIP with
//! the voice bot; `waihu demo` uses the same path against the virtual callees.
//! Wiring only: the campaign's lifecycle is `waihu_dialer::lifecycle`, the
//! call is `waihu_bot`; here are the arguments, the speech kit and printing.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use waihu_bot::Kit;
use waihu_core::CampaignState;
use waihu_dialer::lifecycle::{campaign_kpis, BoxError, CampaignSetup, Figures};
pub use waihu_dialer::lifecycle::{latency_stats, with_id, LatencyStats};
use waihu_dialer::{CampaignClock, Summary};
use waihu_speech::endpoint::EndpointConfig;
use waihu_speech::whisper::{default_model_dir, WhisperAsr};
use waihu_speech::{EspeakTts, StyleBook, Synthesizer, TtsCache};
use waihu_store::Store;

use crate::ctx::Ctx;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Campaign file (YAML); stored (or updated) under its `name`.
    #[arg(long)]
    campaign: PathBuf,
    /// Dialog script (YAML) the bot runs.
    #[arg(long)]
    script: PathBuf,
    /// Where INVITEs go: the SIP trunk / SBC (`host:port`).
    #[arg(long)]
    trunk: SocketAddr,
    /// Local SIP address to bind.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Calls at once (also bounded by the campaign's trunk channels).
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Script variables every call gets, `name=value` (e.g. `shop=BestBuy Online`).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Only customers whose E.164 number starts with this (e.g. `+1`).
    #[arg(long)]
    prefix: Option<String>,
    /// Whisper model directory (default: by the script's language, installed by scripts/deps/speech.sh).
    #[arg(long)]
    asr_model: Option<PathBuf>,
    /// Utterances decoded at once (default: the number of cores).
    #[arg(long)]
    asr_slots: Option<usize>,
    /// Rehearsal: run the campaign's clock from this instant (RFC 3339) and let it
    /// skip idle gaps, instead of the system clock. Calls still run in real time.
    #[arg(long)]
    clock_start: Option<chrono::DateTime<chrono::Utc>>,
    /// Stop dialling this many hours of campaign clock after the start.
    #[arg(long)]
    hours: Option<f64>,
    #[arg(long)]
    json: bool,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected name=value, got '{s}'"))
}

/// Everything a live run needs, from files on disk.
pub struct LiveSetup {
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

/// The process-wide speech kit: Whisper for the script's language, espeak-ng with a cache.
pub fn speech_kit(
    ctx: &Ctx,
    lang: &str,
    model: Option<&Path>,
    slots: Option<usize>,
) -> anyhow::Result<Kit> {
    let dir = model.map(Path::to_path_buf).unwrap_or_else(|| {
        let name = if lang == "en" {
            "whisper-tiny.en"
        } else {
            "whisper-base"
        };
        default_model_dir(ctx.data_dir(), name)
    });
    let asr = WhisperAsr::load(&dir).with_context(|| {
        format!(
            "loading the Whisper model from {} (install it with scripts/setup.sh)",
            dir.display()
        )
    })?;
    let engine = EspeakTts::default();
    if !engine.available() {
        anyhow::bail!("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng");
    }
    let synth =
        Synthesizer::new(Arc::new(engine)).with_cache(Arc::new(TtsCache::in_memory(128 << 20)));
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Ok(Kit {
        asr: Arc::new(asr),
        asr_slots: Arc::new(tokio::sync::Semaphore::new(slots.unwrap_or(cores).max(1))),
        synth,
        styles: StyleBook::default(),
        endpoint: EndpointConfig::default(),
    })
}

/// Stores the campaign (its `id:` made the store's id), marks it running and
/// runs it to the end (`waihu_dialer::lifecycle::run_campaign`), with the
/// speech kit this process loads. Returns the campaign id and the summary.
pub async fn run_live(
    ctx: &Ctx,
    store: &Store,
    setup: LiveSetup,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(waihu_core::CampaignId, Summary)> {
    let LiveSetup {
        campaign_yaml,
        campaign_origin,
        script,
        trunk,
        bind,
        concurrency,
        constants,
        prefix,
        asr_model,
        asr_slots,
        clock,
        until,
    } = setup;
    let run = CampaignSetup {
        campaign_yaml,
        campaign_origin,
        script,
        trunk,
        bind,
        concurrency,
        constants,
        prefix,
        clock,
        until,
        actor: ctx.actor(),
    };
    let kit = |script: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
        Ok(speech_kit(
            ctx,
            script.lang(),
            asr_model.as_deref(),
            asr_slots,
        )?)
    };
    Ok(waihu_dialer::lifecycle::run_campaign(store, run, kit, shutdown).await?)
}

/// One line per figure: the campaign's (or run's) counts and connect rate
/// come from `figures` (the KPI definitions the dashboard uses), the rest
/// from the run's summary.
pub fn print_summary(s: &Summary, figures: &Figures, lat: &LatencyStats) {
    println!(
        "   {} contacts, {} attempts, 接通率 connect rate {:.1}%, most calls at once {}",
        s.contacts,
        figures.attempts,
        figures.connect_rate * 100.0,
        s.max_live
    );
    let join = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("   通话结果 call outcomes: {}", join(&figures.outcomes));
    println!("   业务结果 business outcomes: {}", join(&figures.business));
    println!("   意向等级 intention levels: {}", join(&figures.levels));
    println!(
        "   回拨 callbacks {}, 免打扰 do-not-call added {}, 补发短信/推送 fallback messages {}",
        s.callbacks, s.dnc_added, s.fallback_messages
    );
    if lat.turns > 0 {
        let m = &lat.mean;
        println!(
            "   轮次时延 turn latency over {} turns: p50 {:.0} ms, p95 {:.0} ms (mean: endpointing {:.0}, ASR {:.0} incl. queue {:.0}, NLU {:.2}, dialog {:.3}, TTS first audio {:.0})",
            lat.turns, lat.p50_ms, lat.p95_ms, m.endpoint_ms, m.asr_ms, m.asr_wait_ms, m.nlu_ms, m.dialog_ms, m.tts_first_ms
        );
    }
    if !s.skipped_contacts.is_empty() {
        println!(
            "   跳过 skipped {} contacts, e.g. {}",
            s.skipped_contacts.len(),
            s.skipped_contacts[0]
        );
    }
    let errors: usize = s.calls.iter().map(|c| c.errors.len()).sum();
    if errors > 0 {
        println!(
            "   errors in {errors} places; first: {:?}",
            s.calls.iter().flat_map(|c| c.errors.first()).next()
        );
    }
}

pub fn shutdown_on_ctrl_c() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!(
                "waihu: 停止拨号，等待通话结束 / stopping: no new dials, letting live calls finish"
            );
            let _ = tx.send(true);
        }
    });
    rx
}

pub fn run(ctx: &Ctx, a: RunArgs) -> anyhow::Result<()> {
    let yaml = std::fs::read_to_string(&a.campaign)
        .with_context(|| format!("reading {}", a.campaign.display()))?;
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let setup = LiveSetup {
            campaign_yaml: yaml,
            campaign_origin: a.campaign.display().to_string(),
            script: a.script.clone(),
            trunk: a.trunk,
            bind: a.bind,
            concurrency: a.concurrency,
            constants: a.vars.clone(),
            prefix: a.prefix.clone(),
            asr_model: a.asr_model.clone(),
            asr_slots: a.asr_slots,
            clock: match a.clock_start {
                Some(t) => CampaignClock::starting_at(t, true),
                None => CampaignClock::system(),
            },
            until: a.hours.map(|h| {
                a.clock_start.unwrap_or_else(chrono::Utc::now)
                    + chrono::Duration::seconds((h * 3600.0) as i64)
            }),
        };
        let (id, summary) = run_live(ctx, &store, setup, shutdown_on_ctrl_c()).await?;
        let lat = latency_stats(summary.calls.iter().flat_map(|c| c.latencies.iter()));
        if a.json {
            crate::ctx::print_json(
                &serde_json::json!({"campaign": id.0, "summary": summary, "latency": lat}),
            )?;
        } else {
            println!("campaign {} — stopped: {}", id.0, summary.stopped_by);
            // This run's calls, by the dashboard's definitions.
            print_summary(&summary, &Figures::from(&summary.kpis()), &lat);
        }
        store.close().await;
        Ok(())
    })
}

/// The live part of `waihu demo`.
pub struct DemoArgs {
    pub lang: String,
    pub campaign_yaml: String,
    /// Where the campaign file (with the store's id) is written for the compliance check.
    pub campaign_file: PathBuf,
    pub script: PathBuf,
    pub concurrency: usize,
    pub json: bool,
    pub serve: bool,
    pub listen: SocketAddr,
}

/// What the demo prints (and `--json` emits) about the live campaign.
#[derive(Debug, Serialize)]
struct DemoReport {
    campaign: i64,
    lang: String,
    from_earlier_run: bool,
    attempts: usize,
    connect_rate: f64,
    outcomes: std::collections::BTreeMap<String, usize>,
    business: std::collections::BTreeMap<String, usize>,
    levels: std::collections::BTreeMap<String, usize>,
    latency: LatencyStats,
    /// Share of calls whose stored outcome matches the virtual callee's truth.
    correct_share: Option<f64>,
    score: Option<waihu_sim::Score>,
    wall_s: f64,
}

impl DemoReport {
    fn new(
        campaign: i64,
        lang: &str,
        from_earlier_run: bool,
        figures: Figures,
        latency: LatencyStats,
    ) -> DemoReport {
        let Figures {
            attempts,
            connect_rate,
            outcomes,
            business,
            levels,
        } = figures;
        DemoReport {
            campaign,
            lang: lang.to_string(),
            from_earlier_run,
            attempts,
            connect_rate,
            outcomes,
            business,
            levels,
            latency,
            correct_share: None,
            score: None,
            wall_s: 0.0,
        }
    }
}

/// 9:30 today in `zone` (the demo's campaign clock starts there), as UTC.
fn business_morning(zone: waihu_nlu::Tz) -> chrono::DateTime<chrono::Utc> {
    use chrono::TimeZone;
    let today = chrono::Utc::now().with_timezone(&zone).date_naive();
    let t = today.and_hms_opt(9, 30, 0).unwrap_or_default();
    zone.from_local_datetime(&t)
        .earliest()
        .map(|d| d.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now)
}

pub fn demo(ctx: &Ctx, a: &DemoArgs) -> anyhow::Result<()> {
    let campaign = waihu_campaign::config::Campaign::from_yaml(&a.campaign_yaml)
        .map_err(|e| anyhow::anyhow!("demo campaign: {e}"))?;
    // Script variables every call gets; a customer's own attributes override them (the
    // Chinese sample has order ids and amounts but no item, address or delivery slot).
    let (lang, prefix, constants): (_, _, &[(&str, &str)]) = match a.lang.as_str() {
        "zh" => (
            waihu_speech::Lang::Zh,
            "+86",
            &[
                ("shop", "优选商城"),
                ("order.item", "空气净化器"),
                ("order.address", "上海市浦东新区世纪大道100号"),
                ("order.delivery", "明天上午9点到12点"),
            ],
        ),
        _ => (waihu_speech::Lang::En, "+1", &[("shop", "BestBuy Online")]),
    };
    if !a.json {
        println!(
            "\n7. 实时外呼 / live campaign '{}': SIP calls on loopback to virtual callees, {} at once, with the voice bot on every call",
            campaign.name, a.concurrency
        );
    }
    let rt = ctx.runtime()?;
    let report = rt.block_on(async {
        let store = ctx.store().await?;
        let r = async {
            let prior = store.campaign_by_name(&campaign.name).await?;
            let t0 = std::time::Instant::now();
            if let Some(row) = prior.filter(|r| r.state == CampaignState::Finished) {
                // Already done in this data directory: report what is stored.
                let figures = Figures::from(&campaign_kpis(&store, row.id).await?);
                std::fs::write(&a.campaign_file, with_id(&a.campaign_yaml, row.id.0))?;
                return Ok::<_, anyhow::Error>(DemoReport::new(
                    row.id.0,
                    &a.lang,
                    true,
                    figures,
                    LatencyStats::default(),
                ));
            }
            let cache_dir = ctx.data_dir().join("cache").join("sim-tts");
            std::fs::create_dir_all(&cache_dir)?;
            let cache = TtsCache::with_dir(64 << 20, &cache_dir).map_err(anyhow::Error::msg)?;
            let prog = waihu_dialog::load_file(&a.script).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut sim_opts = waihu_sim::SimOptions::new(lang);
            sim_opts.script = prog.name.clone();
            sim_opts.max_concurrent = a.concurrency * 2;
            // One clock for both sides: the callees answer by their local hour on it.
            let start = business_morning(campaign.timezone);
            let clock = CampaignClock::starting_at(start, true);
            let sim_clock = clock.clone();
            sim_opts.clock = Arc::new(move || sim_clock.now());
            let sim = waihu_sim::SimServer::start_with(
                "127.0.0.1:0".parse()?,
                waihu_sim::Population::new(7),
                waihu_sim::callee_synthesizer(Some(Arc::new(cache))),
                sim_opts,
            )
            .await
            .map_err(|e| anyhow::anyhow!("starting the virtual callees: {e}"))?;
            let setup = LiveSetup {
                campaign_yaml: a.campaign_yaml.clone(),
                campaign_origin: a.campaign_file.display().to_string(),
                script: a.script.clone(),
                trunk: sim.addr,
                bind: "127.0.0.1:0".parse()?,
                concurrency: a.concurrency,
                constants: constants
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                prefix: Some(prefix.into()),
                asr_model: None,
                asr_slots: None,
                clock,
                // Six hours of campaign clock: every retry the campaign allows fits.
                until: Some(start + chrono::Duration::hours(6)),
            };
            let (id, summary) = run_live(ctx, &store, setup, shutdown_on_ctrl_c()).await?;
            std::fs::write(&a.campaign_file, with_id(&a.campaign_yaml, id.0))?;
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
            let latency = latency_stats(summary.calls.iter().flat_map(|c| c.latencies.iter()));
            // The campaign's figures as stored, by the dashboard's definitions.
            let figures = Figures::from(&campaign_kpis(&store, id).await?);
            if !a.json {
                println!("   stopped: {}", summary.stopped_by);
                print_summary(&summary, &figures, &latency);
            }
            Ok(DemoReport {
                correct_share: Some(score.share()),
                score: Some(score),
                wall_s: t0.elapsed().as_secs_f64(),
                ..DemoReport::new(id.0, &a.lang, false, figures, latency)
            })
        }
        .await;
        store.close().await;
        r
    })?;
    drop(rt);
    if a.json {
        crate::ctx::print_json(&report)?;
    } else if report.from_earlier_run {
        println!(
            "   already run in this data directory (campaign {}): {} attempts, outcomes {:?}, business {:?}",
            report.campaign, report.attempts, report.outcomes, report.business
        );
    } else if let Some(score) = &report.score {
        println!(
            "   与虚拟被叫真值一致 / calls whose stored outcome matches the callee's truth: {}/{} = {:.1}% (wall time {:.0} s)",
            score.correct,
            score.calls,
            score.share() * 100.0,
            report.wall_s
        );
        let per: Vec<String> = score
            .per_persona
            .iter()
            .map(|(p, s)| format!("{} {}/{}", p.name(), s.correct, s.calls))
            .collect();
        println!("     by persona: {}", per.join(", "));
        for m in score.mismatches.iter().take(5) {
            println!(
                "     ✗ {} {:?}: expected {} / {:?}, stored {} / {:?}",
                waihu_core::mask_phone(&m.number),
                m.persona,
                m.expected_outcome,
                m.expected_business,
                m.got_outcome,
                m.got_business
            );
        }
    }
    if !a.json {
        println!(
            "\n8. 合规检查 / the independent checker re-reads the live calls' event log from the store"
        );
    }
    crate::cmd::compliance::run(
        ctx,
        crate::cmd::compliance::Cmd::Check {
            campaigns: vec![a.campaign_file.clone()],
            events: None,
            json: a.json,
        },
    )?;
    if a.serve {
        if !a.json {
            println!("\n9. 数据平台 / serving the dashboard until Ctrl-C (key-less, read-only, loopback only)");
        }
        let rt = ctx.runtime()?;
        rt.block_on(async {
            let store = ctx.store().await?;
            let cfg = waihu_server::Config {
                open: true,
                ..waihu_server::Config::default()
            };
            crate::cmd::serve::serve_store(store, a.listen, cfg, async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
        })?;
    }
    Ok(())
}

#[derive(clap::Args, Debug)]
pub struct BenchVoiceArgs {
    /// Concurrency levels to measure, e.g. `1,10,20`.
    #[arg(long, default_value = "1,10,20", value_delimiter = ',')]
    levels: Vec<usize>,
    /// Calls per level (default: 2 × the level, at least 4).
    #[arg(long)]
    calls: Option<usize>,
    /// Persona of every virtual callee.
    #[arg(long, default_value = "cooperative")]
    persona: String,
    /// Utterances decoded at once (default: the number of cores).
    #[arg(long)]
    asr_slots: Option<usize>,
    #[arg(long)]
    json: bool,
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
pub fn bench_voice(a: BenchVoiceArgs) -> anyhow::Result<()> {
    let persona: waihu_sim::Persona = serde_json::from_value(serde_json::json!(a.persona))
        .map_err(|_| anyhow::anyhow!("unknown persona '{}'", a.persona))?;
    let repo_script = ORDER_EN;
    let mut rows = Vec::new();
    for &level in &a.levels {
        let tmp = tempfile::tempdir()?;
        let models = std::env::var_os("WAIHU_MODELS_DIR").map(PathBuf::from);
        let ctx = Ctx::new(Some(tmp.path().to_path_buf()));
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
        let rt = ctx.runtime()?;
        let row = rt.block_on(async {
            let store = ctx.store().await?;
            crate::cmd::customers::import_file(
                &ctx,
                &store,
                &crate::cmd::customers::ImportArgs {
                    file: csv_path.clone(),
                    region: "US".into(),
                    map: None,
                    rejects: None,
                    batch: 5000,
                    json: true,
                },
            )
            .await?;
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
            let setup = LiveSetup {
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
            let cpu0 = waihu_engine::bench::process_cpu_seconds(&pid).unwrap_or(0.0);
            let t0 = std::time::Instant::now();
            let (_, summary) = run_live(&ctx, &store, setup, watch::channel(false).1).await?;
            let wall = t0.elapsed().as_secs_f64();
            let cpu = waihu_engine::bench::process_cpu_seconds(&pid).unwrap_or(0.0) - cpu0;
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
            crate::ctx::print_json(&row)?;
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

const ORDER_EN: &str = include_str!("../../../../examples/scripts/order_confirmation.en.yaml");
const LIVE_BENCH_CAMPAIGN: &str = include_str!("../../../../examples/campaign-demo.en.yaml");
