//! Agents registering to waihu (waihu as their SIP registrar, digest auth) on
//! loopback: the live campaign lifecycle runs with an agents file whose agent
//! has only `register:` (no `uri:`); a baresip softphone (auto-answer, playing
//! a known melody) registers to the run's SIP endpoint with its password, and
//! a virtual callee who asks for a human is bridged to it — the agent leg is
//! placed to the Contact of the live binding. Checked: the registration (the
//! endpoint's binding, baresip's `200 OK`), the transfer events, and the agent's
//! melody in what the callee heard (correlation).
//!
//! With a wrong password: baresip is refused (`403`, never bound), the caller
//! is never offered to it (`transfer_abandoned` with reason `unregistered`, a
//! callback), and no INVITE reaches the softphone.
//!
//! Needs baresip (`have_peer`: skips loudly, fails under CI), espeak-ng and the
//! Whisper tiny.en model (scripts/setup.sh). Ports: 29700-29739.
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
use waihu_testkit::baresip::Phone;
use waihu_testkit::{have_peer, models_dir, Peer};

const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.en.yaml");
const PASSWORD: &str = "li-Secret-42";

/// The agent's voice: 5 s of silence (the whisper), then twice 1.5 s of a
/// pseudo-random melody and 3.5 s of silence.
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

/// Best normalised correlation of `window` anywhere in `rec`.
fn best_correlation(rec: &[i16], window: &[i16]) -> f64 {
    let w: Vec<f32> = window.iter().map(|&s| f32::from(s)).collect();
    let wn: f32 = w.iter().map(|v| v * v).sum::<f32>().sqrt();
    let r: Vec<f32> = rec.iter().map(|&s| f32::from(s)).collect();
    let mut best = 0.0f64;
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
        best = best.max(f64::from(dot / (sn * wn).max(1.0)));
    }
    best
}

/// A baresip softphone on `port` registering as `li` to waihu at `waihu`
/// with `password`; (process, its log).
async fn softphone(dir: &Path, port: u16, waihu: u16, password: &str) -> (Peer, PathBuf) {
    let wav_path = dir.join("agent.wav");
    wav::write_8k_mono(&wav_path, &agent_voice()).unwrap();
    // The AOR is li at waihu's SIP address: baresip REGISTERs there (digest auth).
    Phone {
        port,
        account: format!(
            "<sip:li@127.0.0.1:{waihu}>;auth_pass={password};regint=600;answermode=auto;audio_codecs=PCMA,PCMU"
        ),
        source: &wav_path,
        snd: None,
    }
    .spawn(dir)
    .unwrap()
}

/// The agents file: li only registers (no uri); its password in a secrets file.
/// MD5 only: baresip 1.0 (Debian 12) answers the first challenge it is given
/// and cannot do SHA-256.
fn agents(dir: &Path) -> waihu_acd::Config {
    std::fs::write(dir.join("li.pass"), format!("{PASSWORD}\n")).unwrap();
    waihu_acd::Config::from_yaml(
        "registrar: {realm: waihu, algorithms: [MD5]}\n\
         agents:\n  - {id: li, register: {user: li, password_file: li.pass}, skills: [en, order_service]}\n\
         queues:\n  - {name: order_service, skills: [en, order_service], ring_timeout_s: 8, wait_timeout_s: 12, callback_after_min: 30}\n",
        "agents.yaml",
    )
    .unwrap()
    .with_base(Some(dir))
}

/// Runs the one-customer campaign with waihu's SIP endpoint on `sip_port`;
/// the softphone is started as soon as that port is bound (before the call
/// reaches the transfer), registering with `password`.
async fn run(
    tmp: &Path,
    sip_port: u16,
    phone_port: u16,
    password: &str,
) -> (Rehearsed, Store, Peer, PathBuf) {
    let data = tmp.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let phone_dir = tmp.join("phone");
    std::fs::create_dir_all(&phone_dir).unwrap();
    let csv = "name,phone,timezone,order_id,order_item,order_amount,order_address,order_delivery\n\
               Mr. Zhang,+12125551234,America/New_York,US00001,desk lamp,59,\"10 Oak Avenue, Boston\",tomorrow afternoon\n";
    let csv_path = data.join("c.csv");
    std::fs::write(&csv_path, csv).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/scripts/order_confirmation.en.yaml");
    let store = Store::open(&data).await.unwrap();
    let opts = waihu_import::ImportOptions {
        region: "US".into(),
        ..waihu_import::ImportOptions::default()
    };
    waihu_import::import_file(&store, &csv_path, &opts, &mut ())
        .await
        .unwrap();
    let mut sim = SimOptions::new(waihu_speech::Lang::En);
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
        campaign_origin: "registrar test".into(),
        script: Some(script),
        campaign_dir: None,
        trunk: handle.addr,
        trunks: Vec::new(),
        bind: format!("127.0.0.1:{sip_port}").parse().unwrap(),
        sip_trust: Vec::new(),
        concurrency: 1,
        constants: vec![("shop".into(), "BestBuy Online".into())],
        prefix: None,
        limit: None,
        clock,
        until: Some(start + chrono::Duration::minutes(20)),
        actor: "test".into(),
        progress: None,
        messages: None,
        agents: Some(agents(tmp)),
    };
    let model = models_dir().join("whisper-tiny.en");
    let dir = data.clone();
    let kit = move |s: &waihu_bot::ScriptKit| -> Result<Kit, BoxError> {
        Ok(Kit::load(&dir, s.lang(), Some(&model), Some(1))?)
    };
    let (_keep, never) = tokio::sync::watch::channel(false);
    let campaign = tokio::spawn({
        let store = store.clone();
        async move {
            tokio::time::timeout(
                Duration::from_secs(55),
                rehearse(&store, setup, handle, kit, never),
            )
            .await
        }
    });
    // The run's endpoint is up once its port is taken: start the softphone.
    let addr = format!("127.0.0.1:{sip_port}");
    let mut up = false;
    for _ in 0..500 {
        if std::net::UdpSocket::bind(&addr).is_err() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "waihu's SIP endpoint never bound {addr}");
    let (peer, log) = softphone(&phone_dir, phone_port, sip_port, password).await;
    let r = campaign
        .await
        .unwrap()
        .expect("the campaign ends within 55 s")
        .unwrap();
    (r, store, peer, log)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registered_softphone_gets_the_bridged_call_at_its_contact() {
    if !have_peer("baresip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (r, store, peer, log) = run(tmp.path(), 29700, 29710, PASSWORD).await;
    drop(peer);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        text.contains("200 OK"),
        "baresip registered (digest auth):\n{text}"
    );
    let call = &r.summary.calls[0];
    assert_eq!(
        call.business.as_deref(),
        Some("transferred"),
        "{call:?}\n{text}"
    );
    let HandoffResult::Bridged { agent, .. } = &call.handoff else {
        panic!("not bridged: {:?}\n{text}", call.handoff)
    };
    assert_eq!(agent, "li");
    let evs = transfer_events(&store).await;
    assert!(
        evs.iter()
            .any(|e| matches!(e, EventKind::TransferAnswered { agent, .. } if agent == "li")),
        "{evs:?}"
    );
    // The agent's melody reached the callee through the bridge.
    let id = CallId::from(call.call_id.as_str());
    let rec = store
        .call_recording(&id)
        .await
        .unwrap()
        .expect("callee leg");
    let p = tmp.path().join("callee.wav");
    std::fs::write(&p, rec).unwrap();
    let (_, callee_heard) = wav::read_stereo(&p).unwrap();
    let voice = agent_voice();
    let c = best_correlation(&callee_heard, &voice[82_000..86_000]);
    assert!(c > 0.7, "agent → callee correlation {c}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_softphone_with_the_wrong_password_is_never_registered_nor_called() {
    if !have_peer("baresip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (r, store, peer, log) = run(tmp.path(), 29720, 29730, "not-the-password").await;
    drop(peer);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("403"), "baresip was refused:\n{text}");
    let call = &r.summary.calls[0];
    assert_eq!(call.outcome, CallOutcome::Answered, "{call:?}");
    assert_eq!(call.business.as_deref(), Some("callback"), "{call:?}");
    let evs = transfer_events(&store).await;
    assert!(
        evs.iter().any(
            |e| matches!(e, EventKind::TransferAbandoned { reason, .. } if reason == "unregistered")
        ),
        "{evs:?}"
    );
    assert!(
        !evs.iter().any(|e| matches!(
            e,
            EventKind::TransferOffered { .. } | EventKind::TransferAnswered { .. }
        )),
        "{evs:?}"
    );
    assert!(
        !text.contains("Incoming call") && !text.contains("INVITE"),
        "the unregistered softphone was called:\n{text}"
    );
    store.close().await;
}
