//! `waihu bench handoff`: warm transfer (转人工) end to end on loopback. Virtual
//! callees who ask for a human are called by the live lifecycle with an agents
//! file; the agents are in-process SIP endpoints that auto-answer and play a
//! tone. Printed per run: transfer decision → agent answered (what a cold
//! transfer would take: the baseline) and transfer decision → the agent hears
//! the callee (the bridge opens after the whisper), p50/p95, and the bridge's
//! CPU per bridged call.
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
    /// Callees asking for a human.
    #[arg(long, default_value_t = 6)]
    pub calls: usize,
    /// Agents (in-process SIP endpoints that answer after 300 ms).
    #[arg(long, default_value_t = 2)]
    pub agents: usize,
    /// Calls at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Seconds an agent stays on the call (the whisper, about 5 s, included).
    #[arg(long, default_value_t = 9)]
    pub talk_s: u64,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Figures {
    calls: usize,
    bridged: usize,
    callbacks: usize,
    /// Decision → agent answered (cold transfer: the baseline), ms.
    answer_p50_ms: f64,
    answer_p95_ms: f64,
    /// Decision → agent hears the callee (warm transfer, after the whisper), ms.
    hears_callee_p50_ms: f64,
    hears_callee_p95_ms: f64,
    /// CPU seconds of the whole process per bridged call (bot, callees, agents, bridge).
    cpu_s_per_call: f64,
    wall_s: f64,
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    (v[i] * 10.0).round() / 10.0
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let data_dir = tmp.path();
    let models = std::env::var_os("WAIHU_MODELS_DIR").map(std::path::PathBuf::from);
    let mut csv = String::from(
        "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n",
    );
    for i in 0..a.calls {
        csv.push_str(&format!(
            "Mr. Test,+1212555{:04},America/New_York,US{i:05},desk lamp,59,\"{} Oak Avenue, Boston\",tomorrow afternoon\n",
            2000 + i,
            10 + i
        ));
    }
    let csv_path = data_dir.join("bench.csv");
    std::fs::write(&csv_path, csv)?;
    let script = crate::write_order_script(data_dir)?;
    let rt = crate::runtime()?;
    let figures = rt.block_on(async {
        let store = Store::open(data_dir)
            .await
            .with_context(|| format!("opening {}", data_dir.display()))?;
        let opts = ImportOptions {
            region: "US".into(),
            ..ImportOptions::default()
        };
        waihu_import::import_file(&store, &csv_path, &opts, &mut ()).await?;
        // The agents: auto-answering endpoints playing a tone, hanging up after talk_s.
        let tone: Arc<[i16]> = (0..8000)
            .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 6000.0) as i16)
            .collect();
        let mut yaml = String::from("agents:\n");
        let mut keep = Vec::new();
        for n in 0..a.agents.max(1) {
            let ep = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "agent", None).await?);
            yaml.push_str(&format!(
                "  - {{id: a{n}, uri: 'sip:agent@{}', skills: [order_service]}}\n",
                ep.local_addr()
            ));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let media = MediaOptions {
                play: Some(tone.clone()),
                loop_play: true,
                max_duration: Duration::from_secs(a.talk_s),
                ..MediaOptions::default()
            };
            tokio::spawn(answer_loop(ep.clone(), Duration::from_millis(300), media, tx));
            keep.push((ep, rx));
        }
        yaml.push_str("queues:\n  - {name: order_service, ring_timeout_s: 10, wait_timeout_s: 60, wrap_up_s: 1}\n");
        let agents = waihu_acd::Config::from_yaml(&yaml, "bench agents")?;
        let mut sim = waihu_sim::SimOptions::new(waihu_speech::Lang::En);
        sim.max_concurrent = a.concurrency * 2 + 4;
        let callees = Callees {
            population: waihu_sim::Population::new(1)
                .with_fixed(waihu_sim::Persona::AsksHuman)
                .always_answer(),
            synth: waihu_sim::callee_synthesizer(None),
            opts: sim,
        };
        let start = business_morning(&waihu_nlu::Tz::America__New_York, chrono::Utc::now());
        let clock = CampaignClock::starting_at(start, true);
        let handle = start_callees(callees, &clock).await?;
        let setup = CampaignSetup {
            campaign_yaml: CAMPAIGN.to_string(),
            campaign_origin: "bench handoff".into(),
            script: Some(script.clone()),
            campaign_dir: None,
            trunk: handle.addr,
            trunks: Vec::new(),
            bind: "127.0.0.1:0".parse()?,
            sip_trust: Vec::new(),
            concurrency: a.concurrency.max(1),
            constants: vec![("shop".into(), "BestBuy Online".into())],
            prefix: None,
            limit: None,
            clock,
            // Before any callback (30 min) comes due: one call per callee.
            until: Some(start + chrono::Duration::minutes(20)),
            actor: "bench".into(),
            progress: None,
            messages: None,
            agents: Some(agents),
        };
        let model = models.map(|m| m.join("whisper-tiny.en"));
        let kit = |s: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
            Ok(Kit::load(data_dir, s.lang(), model.as_deref(), None)?)
        };
        let (_keep, never) = tokio::sync::watch::channel(false);
        let pid = std::process::id().to_string();
        let cpu0 = crate::process_cpu_seconds(&pid).unwrap_or(0.0);
        let t0 = std::time::Instant::now();
        let Rehearsed { summary, .. } = rehearse(&store, setup, handle, kit, never).await?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = crate::process_cpu_seconds(&pid).unwrap_or(0.0) - cpu0;
        store.close().await;
        drop(keep);
        let (mut ans, mut hears) = (Vec::new(), Vec::new());
        let mut callbacks = 0;
        for c in &summary.calls {
            match &c.handoff {
                HandoffResult::Bridged {
                    decision_to_answer,
                    decision_to_bridge,
                    ..
                } => {
                    ans.push(decision_to_answer.as_secs_f64() * 1000.0);
                    hears.push(decision_to_bridge.as_secs_f64() * 1000.0);
                }
                HandoffResult::Callback { .. } => callbacks += 1,
                _ => {}
            }
        }
        let bridged = hears.len();
        Ok::<_, anyhow::Error>(Figures {
            calls: summary.attempts,
            bridged,
            callbacks,
            answer_p50_ms: pct(&mut ans, 0.5),
            answer_p95_ms: pct(&mut ans, 0.95),
            hears_callee_p50_ms: pct(&mut hears, 0.5),
            hears_callee_p95_ms: pct(&mut hears, 0.95),
            cpu_s_per_call: (cpu / bridged.max(1) as f64 * 100.0).round() / 100.0,
            wall_s: (wall * 10.0).round() / 10.0,
        })
    })?;
    if a.json {
        crate::print_json(&figures)?;
    } else {
        let f = &figures;
        println!(
            "{} calls, {} bridged, {} callbacks; decision → agent answered (cold transfer, baseline) p50 {:.0} ms p95 {:.0} ms; decision → agent hears the callee (warm, after the whisper) p50 {:.0} ms p95 {:.0} ms; CPU {:.2} s per bridged call (whole process); wall {:.0} s",
            f.calls, f.bridged, f.callbacks, f.answer_p50_ms, f.answer_p95_ms, f.hears_callee_p50_ms, f.hears_callee_p95_ms, f.cpu_s_per_call, f.wall_s
        );
    }
    Ok(())
}

const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");
