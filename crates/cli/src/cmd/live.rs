//! Live campaigns: `waihu run` places a stored campaign's calls over SIP with
//! the voice bot; `waihu demo` uses the same path against the virtual callees.
//! Wiring only: the campaign's lifecycle is `waihu_dialer::lifecycle`, the
//! call is `waihu_bot`; here are the arguments, the speech kit and printing.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use tokio::sync::watch;
use waihu_bot::{Kit, ScriptKit};
use waihu_core::CampaignState;
use waihu_dialer::lifecycle::{
    business_morning, campaign_kpis, latency_stats, run_campaign, run_campaign_node, with_id,
    BoxError, CampaignSetup, Figures, LatencyStats,
};
use waihu_dialer::{CampaignClock, ProgressFn, RunProgress, Summary};
use waihu_sim::rehearsal::{rehearse, start_callees, Callees, Rehearsed};
use waihu_speech::TtsCache;

use crate::ctx::Ctx;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Campaign file (YAML); stored (or updated) under its `name`.
    #[arg(long)]
    campaign: PathBuf,
    /// Dialog script (YAML) every call runs. Without it each customer gets the
    /// script their segment names (`segments[].script`, looked up next to the
    /// campaign file and in its `scripts/`). 不指定则按分群使用各自话术。
    #[arg(long)]
    script: Option<PathBuf>,
    /// Where INVITEs go: one SIP trunk / SBC (`host:port`), no registration or auth — the
    /// shorthand for a single trunk. Not needed with `--trunks` or a campaign with trunks.
    #[arg(long)]
    trunk: Option<SocketAddr>,
    /// Trunks file (YAML, `trunks:`): registration, digest auth, weights, channels, CPS,
    /// failover (see docs/trunks.md). Default: the campaign's `trunks_file:` or inline
    /// trunks that name a `proxy`. 中继配置文件。
    #[arg(long, conflicts_with = "trunk")]
    trunks: Option<PathBuf>,
    /// Local SIP address to bind.
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// A source address the SIP flood guard never limits (repeatable): a Kamailio edge, a
    /// carrier's inbound gateways. Loopback and every peer the run calls are trusted
    /// already; anyone else gets 10 new requests a second (docs/sip.md). 信任的SIP来源。
    #[arg(long = "sip-trust")]
    sip_trust: Vec<std::net::IpAddr>,
    /// Calls at once (also bounded by the campaign's trunk channels).
    #[arg(long, default_value_t = 20)]
    concurrency: usize,
    /// Script variables every call gets, `name=value` (e.g. `shop=BestBuy Online`).
    #[arg(long = "var", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Only customers whose E.164 number starts with this (e.g. `+1`).
    #[arg(long)]
    prefix: Option<String>,
    /// Only the first this many of those customers (by id): a short rehearsal.
    #[arg(long)]
    limit: Option<usize>,
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
    /// Message templates (YAML) for the campaign's SMS fallbacks: each fallback is
    /// rendered and queued in the outbox (`waihu messages send` delivers it). 短信模板。
    #[arg(long)]
    messages: Option<PathBuf>,
    /// Agents and queues (YAML, `agents:` and `queues:`, see docs/handoff.md): a script's
    /// `transfer: {queue: ...}` becomes a warm transfer to an agent, or a callback when
    /// none is free. Agents with `register:` register their softphones to this run's SIP
    /// address (digest auth). 坐席与队列配置（转人工；坐席可注册到本机）。
    #[arg(long)]
    agents: Option<PathBuf>,
    /// Answer callers' out-of-script questions from the script's `knowledge:` with the
    /// model at WAIHU_LLM_ENDPOINT, behind the guardrails (docs/llm.md); without it such
    /// questions go through the script's rules. 用知识库回答话术外的问题。
    #[arg(long)]
    llm: bool,
    /// Check each callee's voice (from their first second or more of speech) against
    /// their enrolled voiceprint and the fraud watchlist (`waihu voiceprint`); scripts
    /// branch on `voice.verdict` / `voice.alert` before disclosing anything.
    /// 声纹核验：核对接听人声纹与欺诈声纹名单。
    #[arg(long)]
    voiceprint: bool,
    /// With --voiceprint: one voice heard on this many different numbers within
    /// --voice-keep-days is an alert though nobody flagged it (0: never).
    /// 同一声音出现在多个号码即告警。
    #[arg(long, default_value_t = waihu_voiceprint::decide::CROWD_NUMBERS)]
    voice_crowd: usize,
    /// With --voiceprint: days the voices heard on calls are kept (sealed) for
    /// that check; older ones are deleted.
    #[arg(long, default_value_t = waihu_voiceprint::decide::SIGHTING_DAYS)]
    voice_keep_days: i64,
    /// Run as one dialer node of a cluster under this name (unique among the nodes): the
    /// contacts, the per-number caps, DNC, channels, pacing and start / pause / stop are shared
    /// with the other nodes through the PostgreSQL at WAIHU_DATABASE_URL (docs/deploy.md).
    /// 作为集群中的一个外呼节点运行。 Uses the system clock (no --clock-start).
    #[arg(long, conflicts_with = "clock_start")]
    node: Option<String>,
    /// With --node: the cluster's PostgreSQL (`postgres://...`).
    #[arg(long, env = "WAIHU_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --node: seconds a node may be silent before the others declare it lost, end its
    /// calls in the log and take its contacts.
    #[arg(long, default_value_t = 15.0)]
    lost_after: f64,
    /// With --node and a campaign without trunks: calls at once over all nodes.
    #[arg(long, default_value_t = 200)]
    cluster_channels: u32,
    /// With --node and a campaign without trunks: new calls per second over all nodes.
    #[arg(long, default_value_t = 20.0)]
    cluster_cps: f64,
    #[arg(long)]
    json: bool,
}

fn parse_var(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected name=value, got '{s}'"))
}

/// Where this run's calls are transcribed.
enum AsrPlan {
    /// The embedded Whisper: this model directory, or the script language's default.
    Whisper(Option<PathBuf>),
    /// An OpenAI-compatible transcription server (a campaign's `asr: {engine: openai}`).
    Server(Arc<waihu_speech::openai::OpenAiAsr>),
}

/// The recogniser and its slots: `--asr-model` first, then the campaign's `asr:`,
/// then the embedded default; `--asr-slots` over the campaign's `slots`.
fn asr_plan(
    ctx: &Ctx,
    a: &RunArgs,
    asr: Option<&waihu_campaign::config::AsrFile>,
) -> anyhow::Result<(AsrPlan, Option<usize>)> {
    let at = a.campaign.display();
    let (Some(f), None) = (asr, &a.asr_model) else {
        return Ok((AsrPlan::Whisper(a.asr_model.clone()), a.asr_slots));
    };
    let slots = a.asr_slots.or(f.slots);
    match f.engine.trim() {
        "openai" => {
            let url = f.url.as_deref().unwrap_or_default().trim();
            let model = f.model.as_deref().map_or("whisper-1", str::trim);
            let key = match &f.api_key_env {
                Some(var) => Some(std::env::var(var.trim()).with_context(|| {
                    format!("{at}: asr.api_key_env: {var} is not set / 未设置语音识别密钥")
                })?),
                None => None,
            };
            let asr = waihu_speech::openai::OpenAiAsr::new(url, model)
                .with_context(|| format!("{at}: asr.url"))?
                .with_api_key(key);
            eprintln!("waihu: 语音识别 / ASR: {model} at {}", asr.url());
            // A server decodes on its own cores: more turns in flight than ours.
            Ok((AsrPlan::Server(Arc::new(asr)), slots.or(Some(8))))
        }
        _ => {
            let dir = f.model.as_deref().map(str::trim).map(|m| {
                if m.contains('/') || m.contains('\\') {
                    a.campaign
                        .parent()
                        .unwrap_or(std::path::Path::new("."))
                        .join(m)
                } else {
                    waihu_speech::whisper::default_model_dir(ctx.home(), m)
                }
            });
            Ok((AsrPlan::Whisper(dir), slots))
        }
    }
}

/// Loads this process's speech kit once the script (and so its language) is known.
fn kit_loader(
    ctx: &Ctx,
    asr: AsrPlan,
    slots: Option<usize>,
    llm: bool,
    voiceprint: Option<(waihu_store::Store, usize, i64)>,
    announcements: Option<waihu_amd::Library>,
    vocabulary: Vec<String>,
) -> impl FnOnce(&ScriptKit) -> Result<Kit, BoxError> + '_ {
    move |script| {
        let mut kit = match asr {
            AsrPlan::Whisper(model) => {
                Kit::load(ctx.home(), script.lang(), model.as_deref(), slots)?
            }
            AsrPlan::Server(asr) => Kit::with_asr(ctx.home(), script.lang(), asr, slots)?,
        };
        kit.announcements = announcements;
        kit.vocabulary = vocabulary;
        if llm {
            let answerer = crate::cmd::llm::LiveAnswerer::from_env()
                .map_err(|e| -> BoxError { format!("{e:#}").into() })?;
            kit.answerer = Some(Arc::new(answerer));
        }
        if let Some((store, crowd, days)) = voiceprint {
            let mut checker = crate::cmd::voiceprint::LiveVoiceChecker::load(ctx, store)
                .map_err(|e| -> BoxError { format!("{e:#}").into() })?;
            checker.crowd_numbers = crowd;
            checker.sighting_days = days;
            kit.voice = Some(Arc::new(checker));
        }
        Ok(kit)
    }
}

/// Prints a live run's progress line: on stdout with the other lines, on
/// stderr when stdout carries JSON.
fn progress_printer(json: bool) -> ProgressFn {
    Arc::new(move |p: &RunProgress| {
        if json {
            eprintln!("waihu: {p}");
        } else {
            println!("   {p}");
        }
    })
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
    let trunks = match &a.trunks {
        Some(f) => waihu_campaign::trunks::load_trunks_file(f)?,
        None if a.trunk.is_some() => Vec::new(),
        None => waihu_campaign::trunks::campaign_trunks(&a.campaign, &yaml)?,
    };
    let trunk = match (a.trunk, trunks.is_empty()) {
        (Some(t), _) => t,
        (None, false) => SocketAddr::from(([127, 0, 0, 1], 5060)), // unused: the trunks carry the calls
        (None, true) => anyhow::bail!(
            "no trunk: give --trunk HOST:PORT, --trunks FILE, or trunks with a proxy in the campaign / 未指定中继"
        ),
    };
    // The operator's carrier recordings, read and fingerprinted up front so a
    // bad file stops the run before any call. (A campaign that does not parse
    // is reported by the run itself, with every issue.)
    let parsed = waihu_campaign::config::Campaign::from_yaml(&yaml).ok();
    let announcements = match &parsed {
        Some(c) => {
            let names: Vec<&str> = trunks.iter().map(|t| t.name.as_str()).collect();
            crate::cmd::amd::campaign_library(&a.campaign, c, &names)?
        }
        None => None,
    };
    let (asr, asr_slots) = asr_plan(ctx, &a, parsed.as_ref().and_then(|c| c.asr.as_ref()))?;
    if let Some(lib) = &announcements {
        let names: Vec<String> = lib
            .references()
            .map(|(kind, name, ms)| {
                format!("{name} ({}, {:.1} s)", kind.name(), ms as f64 / 1000.0)
            })
            .collect();
        eprintln!(
            "waihu: carrier recordings 运营商提示音: {}",
            names.join(", ")
        );
    }
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let store = ctx.store().await?;
        let messages = match &a.messages {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let set = waihu_messaging::load_for_campaign(&store, &text, &a.vars)
                    .await
                    .with_context(|| path.display().to_string())?;
                Some(Arc::new(set))
            }
            None => None,
        };
        let agents = match &a.agents {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
                // Relative `register.password_file` paths are read beside the agents file.
                Some(
                    waihu_dialer::waihu_acd::Config::from_yaml(&text, &path.display().to_string())?
                        .with_base(path.parent()),
                )
            }
            None => None,
        };
        let setup = CampaignSetup {
            messages,
            agents,
            campaign_yaml: yaml.clone(),
            campaign_origin: a.campaign.display().to_string(),
            script: a.script.clone(),
            campaign_dir: a.campaign.parent().map(std::path::Path::to_path_buf),
            trunk,
            trunks,
            bind: a.bind,
            sip_trust: a.sip_trust.clone(),
            concurrency: a.concurrency,
            constants: a.vars.clone(),
            prefix: a.prefix.clone(),
            limit: a.limit,
            clock: match a.clock_start {
                Some(t) => CampaignClock::starting_at(t, true),
                None => CampaignClock::system(),
            },
            until: a.hours.map(|h| {
                a.clock_start.unwrap_or_else(chrono::Utc::now)
                    + chrono::Duration::seconds((h * 3600.0) as i64)
            }),
            actor: ctx.actor(),
            progress: Some(progress_printer(a.json)),
        };
        let kit = kit_loader(
            ctx,
            asr,
            asr_slots,
            a.llm,
            a.voiceprint
                .then(|| (store.clone(), a.voice_crowd, a.voice_keep_days)),
            announcements,
            parsed
                .as_ref()
                .and_then(|c| c.asr.as_ref())
                .map(|f| f.vocabulary.clone())
                .unwrap_or_default(),
        );
        let (id, summary, node) = match &a.node {
            None => {
                let (id, summary) = run_campaign(&store, setup, kit, shutdown_on_ctrl_c()).await?;
                (id, summary, None)
            }
            Some(name) => {
                let node = node_options(&a, name, &yaml).await?;
                let (id, summary, report) =
                    run_campaign_node(&store, setup, node, kit, shutdown_on_ctrl_c()).await?;
                (id, summary, Some(report))
            }
        };
        let lat = latency_stats(summary.calls.iter().flat_map(|c| c.latencies.iter()));
        if a.json {
            crate::ctx::print_json(&serde_json::json!({
                "campaign": id.0, "summary": summary, "latency": lat, "node": node,
            }))?;
        } else {
            println!("campaign {} — stopped: {}", id.0, summary.stopped_by);
            if let Some(n) = &node {
                println!(
                    "   节点 node {}: claimed {}, refused by the shared gate {:?}, handed back {}, finished undialled {}, reaped {:?}",
                    n.node, n.claimed, n.refused, n.handed_back, n.finished_undialled, n.reaped
                );
            }
            // This run's calls, by the dashboard's definitions.
            print_summary(&summary, &Figures::from(&summary.kpis()), &lat);
        }
        store.close().await;
        Ok(())
    })
}

/// How `waihu run --node` joins its cluster: the URL, the timeouts, and the campaign's
/// shared channels and CPS (its trunks', or the flags').
async fn node_options(
    a: &RunArgs,
    name: &str,
    yaml: &str,
) -> anyhow::Result<waihu_dialer::node::NodeOptions> {
    let url = a.database_url.as_deref().unwrap_or_default();
    if !url.starts_with("postgres://") && !url.starts_with("postgresql://") {
        anyhow::bail!(
            "--node needs the cluster's PostgreSQL: set WAIHU_DATABASE_URL=postgres://... / 集群模式需要 PostgreSQL"
        );
    }
    if !(a.lost_after >= 3.0 && a.lost_after.is_finite()) {
        anyhow::bail!("--lost-after: at least 3 seconds, got {}", a.lost_after);
    }
    let campaign = waihu_campaign::config::Campaign::from_yaml(yaml)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.campaign.display()))?;
    let (channels, cps) =
        waihu_dialer::node::shared_limits(&campaign, a.cluster_channels, a.cluster_cps);
    let cluster = waihu_cluster::Cluster::connect(url, name, 4)
        .await
        .context("connecting to the cluster's PostgreSQL")?;
    let lost_after = chrono::Duration::milliseconds((a.lost_after * 1000.0) as i64);
    Ok(waihu_dialer::node::NodeOptions {
        cluster,
        // A lease outlives two missed heartbeats, and goes to the others soon after the
        // node is declared lost.
        lease_ttl: lost_after,
        heartbeat: std::time::Duration::from_secs_f64((a.lost_after / 5.0).clamp(0.5, 5.0)),
        lost_after,
        channels,
        cps,
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
    /// Dial only the first this many sample customers (a quick look; CI's smoke).
    pub live_contacts: Option<usize>,
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

/// Campaign minutes the demo clock gathers retries over (see `CampaignClock::gathering`).
const DEMO_GATHER_MIN: i64 = 20;

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
            let cache_dir = ctx.home().join("cache").join("sim-tts");
            std::fs::create_dir_all(&cache_dir)?;
            let cache = TtsCache::with_dir(64 << 20, &cache_dir).map_err(anyhow::Error::msg)?;
            let prog = waihu_dialog::load_file(&a.script).map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut opts = waihu_sim::SimOptions::new(lang);
            opts.script = prog.name.clone();
            opts.max_concurrent = a.concurrency * 2;
            // Mandarin callees speak with the neural voice where installed, each
            // persona at its own pitch and speed, through a telephone line model
            // (band + G.711); English callees keep espeak-ng, which the English
            // demo's correctness is measured with.
            let synth = if lang == waihu_speech::Lang::Zh {
                let v = waihu_sim::callee_voice(ctx.home(), Some(Arc::new(cache)));
                if let Some(note) = &v.note {
                    eprintln!("note: {note}");
                }
                if v.zh_neural {
                    eprintln!("{}", waihu_speech::zhvoice::LICENCE_NOTE);
                    opts.vary_voices = true;
                    opts.line = Some(waihu_speech::channel::LineConfig::default());
                }
                v.synth
            } else {
                waihu_sim::callee_synthesizer(Some(Arc::new(cache)))
            };
            let callees = Callees {
                population: waihu_sim::Population::new(7),
                synth,
                opts,
            };
            // One clock for both sides: the callees answer by their local hour on it.
            // It gathers retries due within 20 minutes into one wave (see CampaignClock):
            // a trickling retry tail was half of the Mandarin demo's wall time.
            let start = business_morning(&campaign.timezone, chrono::Utc::now());
            let clock = CampaignClock::gathering(start, chrono::Duration::minutes(DEMO_GATHER_MIN));
            let sim = start_callees(callees, &clock).await?;
            let setup = CampaignSetup {
                campaign_yaml: a.campaign_yaml.clone(),
                campaign_origin: a.campaign_file.display().to_string(),
                script: Some(a.script.clone()),
                campaign_dir: None,
                trunk: sim.addr,
                trunks: Vec::new(),
                bind: "127.0.0.1:0".parse()?,
                sip_trust: Vec::new(),
                concurrency: a.concurrency,
                constants: constants
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                prefix: Some(prefix.into()),
                limit: a.live_contacts,
                clock,
                // Six hours of campaign clock: every retry the campaign allows fits.
                until: Some(start + chrono::Duration::hours(6)),
                actor: ctx.actor(),
                progress: Some(progress_printer(a.json)),
                messages: None,
                agents: None,
            };
            let kit = kit_loader(
                ctx,
                AsrPlan::Whisper(None),
                None,
                false,
                None,
                None,
                Vec::new(),
            );
            let Rehearsed {
                campaign: id,
                summary,
                score,
            } = rehearse(&store, setup, sim, kit, shutdown_on_ctrl_c()).await?;
            std::fs::write(&a.campaign_file, with_id(&a.campaign_yaml, id.0))?;
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
