//! Live campaigns: `waihu run` places a stored campaign's calls over SIP with
//! the voice bot; `waihu demo` uses the same path against the virtual callees.
//! Wiring only: the loop is `waihu_dialer::run`, the call is `waihu_bot`.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use waihu_bot::{Kit, Latency, ScriptKit};
use waihu_dialer::{CampaignClock, Options, Summary};
use waihu_speech::endpoint::EndpointConfig;
use waihu_speech::whisper::{default_model_dir, WhisperAsr};
use waihu_speech::{EspeakTts, StyleBook, Synthesizer, TtsCache};
use waihu_store::{Customer, Store};

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

pub async fn customers_for(store: &Store, prefix: Option<&str>) -> anyhow::Result<Vec<Customer>> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store.customers(after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.id.0;
        out.extend(
            page.into_iter()
                .filter(|c| prefix.is_none_or(|p| c.phone.starts_with(p))),
        );
    }
    Ok(out)
}

/// Stores the campaign (its `id:` made the store's id), marks it running and
/// runs it to the end. Returns the campaign id and the summary.
pub async fn run_live(
    ctx: &Ctx,
    store: &Store,
    setup: LiveSetup,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<(waihu_core::CampaignId, Summary)> {
    let prog = waihu_dialog::load_file(&setup.script).map_err(|e| anyhow::anyhow!("{e}"))?;
    let script_name = setup
        .script
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| prog.name.clone());
    // The dashboard's script view reads `<data_dir>/scripts/<name>.yaml`.
    let scripts_dir = ctx.data_dir().join("scripts");
    std::fs::create_dir_all(&scripts_dir)
        .with_context(|| format!("creating {}", scripts_dir.display()))?;
    let copy = scripts_dir.join(format!("{script_name}.yaml"));
    if copy != setup.script {
        std::fs::copy(&setup.script, &copy)
            .with_context(|| format!("copying the script to {}", copy.display()))?;
    }
    let script = ScriptKit::new(prog).map_err(|e| anyhow::anyhow!("training the NLU: {e}"))?;
    let mut campaign = waihu_campaign::config::Campaign::from_yaml(&setup.campaign_yaml)
        .map_err(|e| anyhow::anyhow!("{}: {e}", setup.campaign_origin))?;
    let actor = ctx.actor();
    let id = store
        .campaign_create(&campaign.name, &setup.campaign_yaml, &actor)
        .await?;
    // The compliance checker matches events to campaign files by `id`: make the file say the store's.
    let spec = with_id(&setup.campaign_yaml, id.0);
    if spec != setup.campaign_yaml {
        store.campaign_create(&campaign.name, &spec, &actor).await?;
    }
    campaign.id = id;
    let row = store.campaign_get(id).await?.context("campaign vanished")?;
    if row.state != "running" {
        store.campaign_set_state(id, "running", &actor).await?;
    }
    let kit = speech_kit(
        ctx,
        script.lang(),
        setup.asr_model.as_deref(),
        setup.asr_slots,
    )?;
    let customers = customers_for(store, setup.prefix.as_deref()).await?;
    let ep = Arc::new(
        waihu_engine::sip::SipEndpoint::bind(setup.bind, "waihu", None)
            .await
            .context("binding the SIP endpoint")?,
    );
    let spool = ctx.data_dir().join("spool");
    std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
    let opts = Options {
        campaign_id: id,
        campaign,
        script_name,
        script: Arc::new(script),
        kit: Arc::new(kit),
        trunk: setup.trunk,
        max_concurrent: setup.concurrency.max(1),
        ring_timeout: Duration::from_secs(25),
        max_duration: Duration::from_secs(240),
        constants: setup.constants,
        clock: setup.clock,
        until: setup.until,
        drain: Duration::from_secs(120),
        spool,
        poll: Duration::from_millis(100),
    };
    let summary = waihu_dialer::run(store.clone(), ep, opts, customers, shutdown).await?;
    let state = store.campaign_get(id).await?.map(|r| r.state);
    // Done when every contact finished or the planned hours are over; a Ctrl-C leaves it
    // running, so the next `waihu run` continues it.
    let done = summary.stopped_by == "every contact finished"
        || summary.stopped_by.starts_with("end of the campaign day");
    if state.as_deref() == Some("running") && done {
        store.campaign_set_state(id, "finished", &actor).await?;
    }
    Ok((id, summary))
}

/// The campaign file with its top-level `id:` set to `id`.
pub fn with_id(yaml: &str, id: i64) -> String {
    let mut out = String::with_capacity(yaml.len() + 8);
    let mut done = false;
    for line in yaml.split_inclusive('\n') {
        if !done && line.starts_with("id:") {
            let comment = line.find('#').map(|i| &line[i..]).unwrap_or("\n");
            out.push_str(&format!("id: {id}"));
            if comment.starts_with('#') {
                out.push_str(&format!("                            {comment}"));
            } else {
                out.push('\n');
            }
            done = true;
        } else {
            out.push_str(line);
        }
    }
    if !done {
        out = format!("id: {id}\n{out}");
    }
    out
}

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

pub fn print_summary(s: &Summary, lat: &LatencyStats) {
    println!(
        "   {} contacts, {} attempts, 接通率 connect rate {:.1}%, most calls at once {}",
        s.contacts,
        s.attempts,
        s.connect_rate() * 100.0,
        s.max_live
    );
    let join = |m: &std::collections::BTreeMap<String, usize>| {
        m.iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("   通话结果 call outcomes: {}", join(&s.outcomes));
    println!("   业务结果 business outcomes: {}", join(&s.business));
    println!("   意向等级 intention levels: {}", join(&s.levels));
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
            print_summary(&summary, &lat);
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
            if let Some(row) = prior.filter(|r| r.state == "finished") {
                // Already done in this data directory: report what is stored.
                let calls = store.calls_list(Some(row.id), 100_000, None).await?;
                let mut rep = DemoReport {
                    campaign: row.id.0,
                    lang: a.lang.clone(),
                    from_earlier_run: true,
                    attempts: calls.len(),
                    connect_rate: 0.0,
                    outcomes: Default::default(),
                    business: Default::default(),
                    levels: Default::default(),
                    latency: LatencyStats::default(),
                    correct_share: None,
                    score: None,
                    wall_s: 0.0,
                };
                for c in &calls {
                    *rep.outcomes
                        .entry(c.outcome.clone().unwrap_or_default())
                        .or_default() += 1;
                    if let Some(b) = &c.business_outcome {
                        *rep.business.entry(b.clone()).or_default() += 1;
                    }
                    if let Some(l) = &c.level {
                        *rep.levels.entry(l.clone()).or_default() += 1;
                    }
                }
                rep.connect_rate = rep.outcomes.get("answered").copied().unwrap_or(0) as f64
                    / calls.len().max(1) as f64;
                std::fs::write(&a.campaign_file, with_id(&a.campaign_yaml, row.id.0))?;
                return Ok::<_, anyhow::Error>(rep);
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
            if !a.json {
                println!("   stopped: {}", summary.stopped_by);
                print_summary(&summary, &latency);
            }
            Ok(DemoReport {
                campaign: id.0,
                lang: a.lang.clone(),
                from_earlier_run: false,
                attempts: summary.attempts,
                connect_rate: summary.connect_rate(),
                outcomes: summary.outcomes.clone(),
                business: summary.business.clone(),
                levels: summary.levels.clone(),
                latency,
                correct_share: Some(score.share()),
                score: Some(score),
                wall_s: t0.elapsed().as_secs_f64(),
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
