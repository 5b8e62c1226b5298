//! Warm transfer (转人工) on loopback: the live campaign lifecycle calls a
//! virtual callee who asks for a human; the script transfers to the queue
//! `default`; waihu, staying in the call, rings a baresip agent (auto-answer,
//! playing bursts of a known melody, `sndfile` recording both directions),
//! whispers to it, then bridges the two legs. Checked by correlation:
//! - the agent heard the whisper first, then the callee's own audio;
//! - the callee heard the agent's melody;
//! - events requested / offered / answered and the agent leg's sealed recording.
//!
//! With every agent paused: no INVITE reaches the agent, the call ends
//! `callback` with a `callback_requested` event and `transfer_abandoned`.
//!
//! Needs baresip (`have_peer`: skips loudly, fails under CI), espeak-ng and
//! the Whisper tiny.en model (scripts/setup.sh). Ports: 29610-29639.
use std::path::{Path, PathBuf};
use std::time::Duration;

use waihu_bot::Kit;
use waihu_core::{CallId, CallOutcome, EventKind};
use waihu_dialer::handoff::HandoffResult;
use waihu_dialer::lifecycle::{business_morning, BoxError, CampaignSetup};
use waihu_dialer::waihu_acd;
use waihu_dialer::CampaignClock;
use waihu_engine::waihu_media::wav;
use waihu_sim::rehearsal::{rehearse, start_callees, Callees, Rehearsed};
use waihu_sim::{Persona, Population, SimOptions};
use waihu_store::Store;
use waihu_testkit::baresip::{self, Phone};
use waihu_testkit::{have_peer, models_dir, Peer};

const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");

/// The agent's voice: 5 s of silence (listening to the whisper), then twice
/// 1.5 s of a pseudo-random melody and 3.5 s of silence (the callee answers
/// in the gaps). baresip hangs up when it ends.
fn agent_voice() -> Vec<i16> {
    let mut out = vec![0i16; 40_000];
    let mut state = 0x9E37_79B9u32;
    let (mut freq, mut phase) = (440.0f64, 0.0f64);
    for _ in 0..2 {
        for i in 0..12_000 {
            if i % 400 == 0 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                freq = 300.0 + f64::from(state % 2700);
            }
            phase += 2.0 * std::f64::consts::PI * freq / 8000.0;
            out.push((phase.sin() * 9000.0) as i16);
        }
        out.extend(std::iter::repeat_n(0i16, 28_000));
    }
    out
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Best normalised correlation of `window` anywhere in `rec`, and where.
fn find(rec: &[i16], window: &[i16]) -> (f64, usize) {
    let w: Vec<f32> = window.iter().map(|&s| f32::from(s)).collect();
    let wn: f32 = w.iter().map(|v| v * v).sum::<f32>().sqrt();
    let r: Vec<f32> = rec.iter().map(|&s| f32::from(s)).collect();
    let mut best = (0.0f64, 0usize);
    if r.len() < w.len() || wn == 0.0 {
        return best;
    }
    for lag in 0..=(r.len() - w.len()) {
        let seg = &r[lag..lag + w.len()];
        let dot: f32 = seg.iter().zip(&w).map(|(a, b)| a * b).sum();
        if dot <= 0.0 {
            continue;
        }
        let sn: f32 = seg.iter().map(|v| v * v).sum::<f32>().sqrt();
        let c = f64::from(dot / (sn * wn).max(1.0));
        if c > best.0 {
            best = (c, lag);
        }
    }
    best
}

/// A baresip agent on `port`; (process, its log, its recordings directory).
async fn agent(dir: &Path, port: u16) -> (Peer, PathBuf, PathBuf) {
    let wav_path = dir.join("agent.wav");
    wav::write_8k_mono(&wav_path, &agent_voice()).unwrap();
    let snd = dir.join("snd");
    std::fs::create_dir_all(&snd).unwrap();
    let mut phone = Phone::auto_answer(port, "li", &wav_path);
    phone.snd = Some(&snd);
    let (peer, log) = phone.spawn(dir).unwrap();
    for _ in 0..100 {
        if baresip::ready(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (peer, log, snd)
}

fn agents_yaml(port: u16, paused: bool) -> waihu_acd::Config {
    waihu_acd::Config::from_yaml(
        &format!(
            "agents:\n  - {{id: li, uri: 'sip:li@127.0.0.1:{port}', skills: [en, order_service], paused: {paused}}}\n\
             queues:\n  - {{name: order_service, skills: [en, order_service], ring_timeout_s: 8, wait_timeout_s: 12, callback_after_min: 30}}\n"
        ),
        "agents.yaml",
    )
    .unwrap()
}

/// Runs the one-customer campaign with `agents`; the summary and the store.
/// With `listen`: once the call is answered by an agent, a supervisor asks to
/// listen in from that softphone (the `listen_requested` event the API writes).
async fn run(
    data_dir: &Path,
    agents: waihu_acd::Config,
    listen: Option<String>,
) -> (Rehearsed, Store) {
    let csv = "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n\
               Mr. Zhang,+12125551234,America/New_York,US00001,desk lamp,59,\"10 Oak Avenue, Boston\",tomorrow afternoon\n";
    let csv_path = data_dir.join("c.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts/order_confirmation.en.yaml");
    let store = Store::open(data_dir).await.unwrap();
    let opts = waihu_import::ImportOptions {
        region: "US".into(),
        ..waihu_import::ImportOptions::default()
    };
    waihu_import::import_file(&store, &csv_path, &opts, &mut ())
        .await
        .unwrap();
    let mut sim = SimOptions::new(waihu_speech::Lang::En);
    // A talkative callee: keeps answering the agent after the transfer.
    sim.timing.extra_replies = 20;
    let callees = Callees {
        population: Population::new(1)
            .with_fixed(Persona::AsksHuman)
            .always_answer(),
        synth: waihu_sim::callee_synthesizer(None),
        opts: sim,
    };
    let start = business_morning(&chrono_tz::America::New_York, chrono::Utc::now());
    let clock = CampaignClock::starting_at(start, true);
    let handle = start_callees(callees, &clock).await.unwrap();
    let setup = CampaignSetup {
        campaign_yaml: CAMPAIGN.to_string(),
        campaign_origin: "handoff test".into(),
        script: Some(script),
        campaign_dir: None,
        trunk: handle.addr,
        trunks: Vec::new(),
        bind: "127.0.0.1:0".parse().unwrap(),
        sip_trust: Vec::new(),
        concurrency: 1,
        constants: vec![("shop".into(), "BestBuy Online".into())],
        prefix: None,
        limit: None,
        clock,
        // Past the first call, before the 30-minute callback: one call.
        until: Some(start + chrono::Duration::minutes(20)),
        actor: "test".into(),
        progress: None,
        messages: None,
        agents: Some(agents),
    };
    let model = models_dir().join("whisper-tiny.en");
    let dir = data_dir.to_path_buf();
    let kit = move |s: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
        Ok(Kit::load(&dir, s.lang(), Some(&model), Some(1))?)
    };
    let (_keep, never) = tokio::sync::watch::channel(false);
    let watcher = listen.map(|uri| {
        let store = store.clone();
        tokio::spawn(async move {
            loop {
                let answered = store
                    .events_of_type("transfer_answered", 0, 1)
                    .await
                    .unwrap();
                if let Some((_, e)) = answered.into_iter().next() {
                    let request = waihu_core::Event {
                        at: chrono::Utc::now(),
                        customer: e.customer,
                        campaign: e.campaign,
                        call: e.call,
                        kind: EventKind::ListenRequested {
                            supervisor: uri,
                            actor: "api:supervisor#1".into(),
                        },
                    };
                    store.append_event(&request).await.unwrap();
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    });
    let r = tokio::time::timeout(
        Duration::from_secs(150),
        rehearse(&store, setup, handle, kit, never),
    )
    .await
    .expect("the campaign ends within 150 s (a bound, not a target: the machine may be shared)")
    .unwrap();
    if let Some(w) = watcher {
        w.abort();
    }
    (r, store)
}

async fn transfer_events(store: &Store) -> Vec<EventKind> {
    let mut out = Vec::new();
    for t in [
        "transfer_requested",
        "transfer_offered",
        "transfer_answered",
        "transfer_abandoned",
        "callback_requested",
    ] {
        for (_, e) in store.events_of_type(t, 0, 100).await.unwrap() {
            out.push(e.kind);
        }
    }
    out
}

fn stereo(bytes: &[u8], dir: &Path, name: &str) -> (Vec<i16>, Vec<i16>) {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    wav::read_stereo(&p).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callee_asking_for_a_human_is_bridged_to_an_agent_after_the_whisper() {
    if !have_peer("baresip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let peer_dir = tmp.path().join("agent");
    std::fs::create_dir_all(&peer_dir).unwrap();
    let (peer, _log, snd) = agent(&peer_dir, 29610).await;
    // A supervisor's softphone listens in once the agent has the call.
    let sup_dir = tmp.path().join("supervisor");
    std::fs::create_dir_all(&sup_dir).unwrap();
    let (sup, _sup_log, sup_snd) = agent(&sup_dir, 29620).await;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (r, store) = run(
        &data,
        agents_yaml(29610, false),
        Some("sip:li@127.0.0.1:29620".into()),
    )
    .await;
    drop(peer);
    drop(sup);
    let call = &r.summary.calls[0];
    assert_eq!(call.outcome, CallOutcome::Answered, "{call:?}");
    assert_eq!(call.business.as_deref(), Some("transferred"), "{call:?}");
    let HandoffResult::Bridged {
        agent,
        decision_to_answer,
        decision_to_bridge,
    } = &call.handoff
    else {
        panic!("not bridged: {:?}", call.handoff)
    };
    assert_eq!(agent, "li");
    assert!(
        *decision_to_bridge > *decision_to_answer + Duration::from_millis(1500),
        "the whisper comes first: {decision_to_answer:?} then {decision_to_bridge:?}"
    );
    let evs = transfer_events(&store).await;
    assert!(evs.contains(&EventKind::TransferRequested {
        queue: "order_service".into()
    }));
    assert!(
        evs.iter()
            .any(|e| matches!(e, EventKind::TransferOffered { agent, .. } if agent == "li")),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, EventKind::TransferAnswered { agent, .. } if agent == "li")),
        "{evs:?}"
    );
    assert!(!evs
        .iter()
        .any(|e| matches!(e, EventKind::CallbackRequested { .. })));
    // The agent desk's view: the transfer events were appended while the call
    // was up (before its end), with the screen-pop beside them; the agent's
    // states were published and signed out at the run's end.
    let id = CallId::from(call.call_id.as_str());
    let of_call = store.call_events(&id).await.unwrap();
    let pos = |t: &str| of_call.iter().position(|(_, e)| e.kind.type_name() == t);
    let ended = pos("attempt_ended").expect("attempt_ended");
    for t in [
        "transfer_requested",
        "transfer_screen",
        "transfer_offered",
        "transfer_answered",
    ] {
        assert!(
            pos(t).is_some_and(|p| p < ended),
            "{t} not written before the call's end"
        );
    }
    assert!(of_call.iter().any(|(_, e)| matches!(&e.kind,
        EventKind::TransferScreen { queue, intents, summary, .. }
            if queue == "order_service" && !intents.is_empty() && summary.contains("Wants"))));
    let states: Vec<String> = store
        .events_of_type("agent_state", 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|(_, e)| match e.kind {
            EventKind::AgentState { agent, state } if agent == "li" => Some(state),
            _ => None,
        })
        .collect();
    assert!(
        states.first().map(String::as_str) == Some("available")
            && states.iter().any(|s| s == "on_call")
            && states.last().map(String::as_str) == Some("signed_out"),
        "{states:?}"
    );

    // WAIHU_KEEP_TEST_DIR: keep the recordings to look at after a failure.
    let tmp = if std::env::var_os("WAIHU_KEEP_TEST_DIR").is_some() {
        let dir = tmp.keep();
        eprintln!("kept {}", dir.display());
        dir
    } else {
        tmp.path().to_path_buf()
    };
    let tmp = tmp.as_path();
    // The callee leg: left what the callee said, right what waihu sent it.
    let callee_rec = store
        .call_recording(&id)
        .await
        .unwrap()
        .expect("callee leg");
    let (callee_said, callee_heard) = stereo(&callee_rec, tmp, "callee.wav");
    // The agent leg, sealed beside it: left what the agent said, right what it was sent.
    let agent_rec = store
        .leg_recording(&id, "agent")
        .await
        .unwrap()
        .expect("agent leg recording");
    let (_, agent_sent) = stereo(&agent_rec, tmp, "agent-leg.wav");

    // 1. The agent's melody reached the callee (its second burst: the first may
    // overlap the whisper, which the bridge waits for).
    let voice = agent_voice();
    let (c, _) = find(&callee_heard, &voice[82_000..86_000]);
    assert!(c > 0.7, "agent → callee correlation {c}");

    // 2. What baresip heard: the whisper first, then the callee.
    let dec = baresip::heard(&snd)
        .unwrap_or_else(|| panic!("no -dec.wav recording in {}", snd.display()));
    let heard = wav::read_8k_mono(&dec).unwrap();
    // The whisper: the first 2 s waihu sent the agent are in what it heard, early.
    let whisper = &agent_sent[..16_000.min(agent_sent.len())];
    assert!(rms(whisper) > 300.0, "the whisper is speech");
    let (cw, at_w) = find(&heard, &whisper[4000..12_000]);
    assert!(cw > 0.7, "whisper correlation {cw}");
    // The callee's voice after the bridge: a voiced second of what the callee
    // said while bridged, found in what the agent heard, after the whisper.
    let tail_start = callee_said.len().saturating_sub(10 * 8000);
    let window = (tail_start..callee_said.len().saturating_sub(8000))
        .step_by(1600)
        .map(|s| &callee_said[s..s + 8000])
        .max_by(|a, b| rms(a).total_cmp(&rms(b)))
        .expect("the callee talked while bridged");
    assert!(rms(window) > 300.0, "callee speech while bridged");
    let (cc, at_c) = find(&heard, window);
    assert!(cc > 0.6, "callee → agent correlation {cc}");
    assert!(
        at_c > at_w + 8000,
        "the callee ({at_c}) came after the whisper ({at_w})"
    );

    // 3. Listen-in: the supervisor's leg was logged and heard the agent's
    // melody (mixed with the callee); nobody heard the supervisor.
    let kinds: Vec<EventKind> = store
        .call_events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.kind)
        .collect();
    assert!(
        kinds.iter().any(|k| matches!(k,
            EventKind::ListenStarted { supervisor } if supervisor == "sip:li@127.0.0.1:29620")),
        "listen_started: {kinds:?}"
    );
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::ListenEnded { listened_s, .. } if *listened_s > 2.0)),
        "listen_ended: {kinds:?}"
    );
    let sup_dec = baresip::heard(&sup_snd)
        .unwrap_or_else(|| panic!("no -dec.wav recording in {}", sup_snd.display()));
    let sup_heard = wav::read_8k_mono(&sup_dec).unwrap();
    let (cs, _) = find(&sup_heard, &voice[82_000..86_000]);
    assert!(cs > 0.5, "agent → supervisor correlation {cs}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_agent_paused_a_callback_is_scheduled_and_nothing_is_bridged() {
    if !have_peer("baresip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let peer_dir = tmp.path().join("agent");
    std::fs::create_dir_all(&peer_dir).unwrap();
    let (peer, log, snd) = agent(&peer_dir, 29630).await;
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let (r, store) = run(&data, agents_yaml(29630, true), None).await;
    drop(peer);
    let call = &r.summary.calls[0];
    assert_eq!(call.outcome, CallOutcome::Answered, "{call:?}");
    assert_eq!(call.business.as_deref(), Some("callback"), "{call:?}");
    assert!(
        matches!(call.handoff, HandoffResult::Callback { .. }),
        "{:?}",
        call.handoff
    );
    assert_eq!(r.summary.callbacks, 1, "the planner scheduled the callback");
    let evs = transfer_events(&store).await;
    assert!(
        evs.iter().any(
            |e| matches!(e, EventKind::TransferAbandoned { reason, .. } if reason == "all_paused")
        ),
        "{evs:?}"
    );
    assert!(
        evs.iter()
            .any(|e| matches!(e, EventKind::CallbackRequested { .. })),
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(
            e,
            EventKind::TransferOffered { .. } | EventKind::TransferAnswered { .. }
        )),
        "{evs:?}"
    );
    let id = CallId::from(call.call_id.as_str());
    assert_eq!(store.leg_recording(&id, "agent").await.unwrap(), None);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("INVITE") && !text.contains("Incoming call"),
        "the paused agent was called:\n{text}"
    );
    assert_eq!(std::fs::read_dir(&snd).unwrap().count(), 0);
    store.close().await;
}
