//! `waihu bench agents`: an agent-assisted campaign (`pacing.connect: agent`)
//! live on loopback, predictive pacing beside progressive with the same
//! agents and the same virtual callees in the same run. Every answered call
//! goes straight to an agent; one that finds none within 2 s hears the
//! abandon message. Printed per mode: answered, abandoned and the abandon
//! rate as the independent compliance checker reads them from the stored log,
//! agent occupancy (agent seconds on calls over agent seconds of the run) and
//! calls handled per agent-hour.
//!
//! [`run_mode`] is the harness; the live test (`crates/bench/tests/agents.rs`)
//! runs it with baresip agents, the bench with in-process ones.
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;
use waihu_bot::Kit;
use waihu_dialer::handoff::HandoffResult;
use waihu_dialer::lifecycle::{business_morning, BoxError, CampaignSetup};
use waihu_dialer::{waihu_acd, CampaignClock};
use waihu_engine::call::{answer_loop, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_import::ImportOptions;
use waihu_sim::rehearsal::{rehearse, start_callees, Callees, Rehearsed};
use waihu_store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Customers called (each mode calls all of them once).
    #[arg(long, default_value_t = 60)]
    pub contacts: usize,
    /// Agents (in-process SIP endpoints answering after 50 ms).
    #[arg(long, default_value_t = 4)]
    pub agents: usize,
    /// Share of callees who pick up.
    #[arg(long, default_value_t = 0.5)]
    pub answer: f64,
    /// Seconds an agent talks with a callee.
    #[arg(long, default_value_t = 4.0)]
    pub talk_s: f64,
    /// Lines at once (trunk channels).
    #[arg(long, default_value_t = 16)]
    pub channels: usize,
    #[arg(long)]
    pub json: bool,
}

/// The callees' and the lines' behaviour for one mode.
#[derive(Debug, Clone)]
pub struct Callers {
    pub contacts: usize,
    pub answer: f64,
    /// A person picks up after ringing this long (drawn per call).
    pub ring: (Duration, Duration),
    /// An unanswered call rings this long, then 480.
    pub no_answer_ring: Duration,
    pub channels: usize,
}

/// What one mode did.
#[derive(Debug, Clone, Serialize)]
pub struct ModeFigures {
    pub mode: &'static str,
    pub attempts: usize,
    pub answered: u64,
    /// Bridged to an agent.
    pub handled: usize,
    /// From the stored log, by the compliance checker.
    pub abandoned: u64,
    pub abandon_rate: f64,
    pub compliance_ok: bool,
    /// Agent seconds on calls / (agents × the run's wall time).
    pub occupancy: f64,
    pub handled_per_agent_hour: f64,
    pub agent_talk_s: f64,
    pub wall_s: f64,
}

/// The campaign: the English demo's, with agent-assisted pacing to `order_service`.
pub fn campaign_yaml(predictive: bool) -> String {
    let mode = if predictive {
        "predictive"
    } else {
        "progressive"
    };
    CAMPAIGN.replace(
        "pacing: {mode: progressive}",
        &format!(
            "pacing: {{mode: {mode}, target_abandon_rate: 0.03, connect: agent, queue: order_service, abandon_after_s: 2}}"
        ),
    )
}

/// Runs one agent-assisted campaign in `data_dir` (a fresh directory) with
/// `agents` (an agents file with the queue `order_service`; `n_agents` of
/// them) against virtual callees; returns its figures.
pub async fn run_mode(
    data_dir: &Path,
    agents: waihu_acd::Config,
    n_agents: usize,
    predictive: bool,
    c: &Callers,
) -> anyhow::Result<ModeFigures> {
    let mut csv = String::from(
        "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
    );
    for i in 0..c.contacts {
        csv.push_str(&format!(
            "Mr. Test,+1212556{:04},America/New_York,US{i:05},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
            i, 10 + i
        ));
    }
    let csv_path = data_dir.join("agents.csv");
    std::fs::write(&csv_path, csv)?;
    let script = crate::write_order_script(data_dir)?;
    let store = Store::open(data_dir)
        .await
        .with_context(|| format!("opening {}", data_dir.display()))?;
    let opts = ImportOptions {
        region: "US".into(),
        ..ImportOptions::default()
    };
    waihu_import::import_file(&store, &csv_path, &opts, &mut ()).await?;
    let mut sim = waihu_sim::SimOptions::new(waihu_speech::Lang::En);
    sim.max_concurrent = c.channels + 4;
    sim.ring = c.ring;
    sim.no_answer_ring = c.no_answer_ring;
    let mut population = waihu_sim::Population::new(7).with_fixed(waihu_sim::Persona::Cooperative);
    population.answer_by_hour = [c.answer; 24];
    let callees = Callees {
        population,
        synth: waihu_sim::callee_synthesizer(None),
        opts: sim,
    };
    let start = business_morning(&waihu_nlu::Tz::America__New_York, chrono::Utc::now());
    let clock = CampaignClock::starting_at(start, true);
    let handle = start_callees(callees, &clock).await?;
    let campaign = campaign_yaml(predictive);
    let setup = CampaignSetup {
        campaign_yaml: campaign.clone(),
        campaign_origin: "bench agents".into(),
        script: Some(script.clone()),
        campaign_dir: None,
        trunk: handle.addr,
        trunks: Vec::new(),
        bind: "127.0.0.1:0".parse()?,
        sip_trust: Vec::new(),
        concurrency: c.channels.max(1),
        constants: vec![("shop".into(), "BestBuy Online".into())],
        prefix: None,
        limit: None,
        clock,
        // One attempt per contact: retries (an abandoned call's after 10
        // minutes, no answer's after an hour) fall after the end.
        until: Some(start + chrono::Duration::minutes(5)),
        actor: "bench".into(),
        // A mode runs for minutes: counts, rate and ETA every 10 s (stderr,
        // so `--json` stays clean).
        progress: Some(std::sync::Arc::new(move |p: &waihu_dialer::RunProgress| {
            eprintln!(
                "   {}: {p}",
                if predictive {
                    "predictive"
                } else {
                    "progressive"
                }
            )
        })),
        messages: None,
        agents: Some(agents),
    };
    // No bot talks on these calls, but a run loads its kit (the voice of the
    // abandon message); the ASR model is the installed one.
    let model = waihu_testkit::models_dir().join("whisper-tiny.en");
    let kit = |s: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
        Ok(Kit::load(data_dir, s.lang(), Some(&model), Some(1))?)
    };
    let (_keep, never) = tokio::sync::watch::channel(false);
    let t0 = std::time::Instant::now();
    let Rehearsed {
        summary,
        campaign: id,
        ..
    } = rehearse(&store, setup, handle, kit, never).await?;
    let wall = t0.elapsed().as_secs_f64();
    // The abandon rate as the independent checker reads it from the log.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(after, 10_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        events.extend(page.into_iter().map(|(_, e)| e));
    }
    let mut text = campaign;
    text = text.replace("id: 1 ", &format!("id: {} ", id.0));
    let rules = waihu_compliance::CampaignRules::from_yaml("agents campaign", &text)?;
    let report = waihu_compliance::check(vec![rules], events);
    store.close().await;
    let camp = report.campaigns.iter().find(|s| s.id == id.0);
    let handled = summary
        .calls
        .iter()
        .filter(|c| matches!(c.handoff, HandoffResult::Bridged { .. }))
        .count();
    let agent_s = n_agents.max(1) as f64 * wall;
    Ok(ModeFigures {
        mode: if predictive {
            "predictive"
        } else {
            "progressive"
        },
        attempts: summary.attempts,
        answered: camp.map_or(0, |c| c.answered),
        handled,
        abandoned: camp.map_or(0, |c| c.abandoned),
        abandon_rate: camp.map_or(0.0, |c| c.abandon_rate),
        compliance_ok: report.ok(),
        occupancy: summary.agent_talk_s / agent_s,
        handled_per_agent_hour: handled as f64 / (agent_s / 3600.0),
        agent_talk_s: summary.agent_talk_s,
        wall_s: wall,
    })
}

/// In-process agents: auto-answer after 50 ms, play a tone, hang up after `talk`.
async fn local_agents(
    n: usize,
    talk: Duration,
) -> anyhow::Result<(waihu_acd::Config, Vec<impl Send>)> {
    let tone: Arc<[i16]> = (0..8000)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 6000.0) as i16)
        .collect();
    let mut yaml = String::from("agents:\n");
    let mut keep = Vec::new();
    for i in 0..n.max(1) {
        let ep = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "agent", None).await?);
        yaml.push_str(&format!(
            "  - {{id: a{i}, uri: 'sip:agent@{}', skills: [order_service]}}\n",
            ep.local_addr()
        ));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let media = MediaOptions {
            play: Some(tone.clone()),
            loop_play: true,
            max_duration: talk,
            ..MediaOptions::default()
        };
        tokio::spawn(answer_loop(
            ep.clone(),
            Duration::from_millis(50),
            media,
            tx,
        ));
        keep.push((ep, rx));
    }
    yaml.push_str(QUEUE);
    Ok((waihu_acd::Config::from_yaml(&yaml, "bench agents")?, keep))
}

/// The queue every agent serves; no after-call work, so occupancy is talk.
pub const QUEUE: &str =
    "queues:\n  - {name: order_service, ring_timeout_s: 5, wait_timeout_s: 60, wrap_up_s: 0}\n";

pub fn run(a: Args) -> anyhow::Result<()> {
    let c = Callers {
        contacts: a.contacts.max(1),
        answer: a.answer.clamp(0.01, 1.0),
        ring: (Duration::from_millis(800), Duration::from_millis(2500)),
        no_answer_ring: Duration::from_secs(4),
        channels: a.channels.max(1),
    };
    let rt = crate::runtime()?;
    let mut out = Vec::new();
    for predictive in [false, true] {
        let tmp = tempfile::tempdir()?;
        let f = rt.block_on(async {
            let (agents, keep) =
                local_agents(a.agents, Duration::from_secs_f64(a.talk_s.max(0.5))).await?;
            let f = run_mode(tmp.path(), agents, a.agents, predictive, &c).await;
            drop(keep);
            f
        })?;
        if a.json {
            crate::print_json(&f)?;
        } else {
            println!(
                "{:>11}: {} attempts, {} answered, {} handled by agents, {} abandoned = {:.2}% (compliance {}), occupancy {:.1}%, {:.0} calls per agent-hour, agents talked {:.0} s, wall {:.1} s",
                f.mode,
                f.attempts,
                f.answered,
                f.handled,
                f.abandoned,
                f.abandon_rate * 100.0,
                if f.compliance_ok { "ok" } else { "VIOLATED" },
                f.occupancy * 100.0,
                f.handled_per_agent_hour,
                f.agent_talk_s,
                f.wall_s
            );
        }
        out.push(f);
    }
    if !a.json {
        let (p, q) = (&out[0], &out[1]);
        println!(
            "predictive / progressive: occupancy ×{:.2}, calls per agent-hour ×{:.2}, wall ×{:.2}",
            q.occupancy / p.occupancy.max(1e-9),
            q.handled_per_agent_hour / p.handled_per_agent_hour.max(1e-9),
            q.wall_s / p.wall_s.max(1e-9)
        );
    }
    Ok(())
}

const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");
