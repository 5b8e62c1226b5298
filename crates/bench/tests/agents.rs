//! An agent-assisted campaign (`pacing.connect: agent`) live on loopback with
//! three baresip softphones as the agents (auto-answer; each plays a 3 s
//! tone, then hangs up: the talk time) and virtual callees, run twice with the
//! same agents and callees: progressive, then predictive pacing. Checked:
//! - the abandon rate as the independent compliance checker reads it from
//!   the stored log (`call_abandoned` over answered, in every 24 h) is within
//!   3% for both modes;
//! - predictive pacing keeps the same agents busier (occupancy) than
//!   progressive dialling, and handles the calls in less time;
//! - every answered call was handed to an agent or abandoned with the message.
//!
//! Needs baresip (`have_peer`: skips loudly, fails under CI), espeak-ng and
//! the Whisper tiny.en model (scripts/setup.sh). Ports: 29800-29839.
use std::path::Path;
use std::time::Duration;

use waihu_bench::agents::{run_mode, Callers, QUEUE};
use waihu_dialer::waihu_acd;
use waihu_engine::waihu_media::wav;
use waihu_testkit::baresip::{self, Phone};
use waihu_testkit::{have_peer, Peer};

const AGENTS: [u16; 3] = [29800, 29812, 29824];

/// 3 s of a 440 Hz tone: the agent's side of the conversation.
fn talk() -> Vec<i16> {
    (0..24_000)
        .map(|i| ((i as f32 * 2.0 * std::f32::consts::PI * 440.0 / 8000.0).sin() * 6000.0) as i16)
        .collect()
}

/// A baresip agent on `port` (auto-answer); waits until it is ready.
async fn agent(dir: &Path, port: u16) -> Peer {
    std::fs::create_dir_all(dir).unwrap();
    let wav_path = dir.join("talk.wav");
    wav::write_8k_mono(&wav_path, &talk()).unwrap();
    let (peer, log) = Phone::auto_answer(port, "agent", &wav_path)
        .spawn(dir)
        .unwrap();
    for _ in 0..100 {
        if baresip::ready(&log) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peer
}

fn agents_file() -> waihu_acd::Config {
    let mut yaml = String::from("agents:\n");
    for (i, port) in AGENTS.iter().enumerate() {
        yaml.push_str(&format!(
            "  - {{id: a{i}, uri: 'sip:agent@127.0.0.1:{port}', skills: [order_service]}}\n"
        ));
    }
    yaml.push_str(QUEUE);
    waihu_acd::Config::from_yaml(&yaml, "agents.yaml").unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predictive_pacing_keeps_baresip_agents_busier_than_progressive_within_3_percent() {
    if !have_peer("baresip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut peers = Vec::new();
    for (i, port) in AGENTS.iter().enumerate() {
        peers.push(agent(&tmp.path().join(format!("agent{i}")), *port).await);
    }
    let callers = Callers {
        contacts: 48,
        answer: 0.6,
        ring: (Duration::from_millis(800), Duration::from_millis(2500)),
        no_answer_ring: Duration::from_secs(4),
        channels: 10,
    };
    let mut figures = Vec::new();
    for predictive in [false, true] {
        let dir = tmp.path().join(if predictive {
            "predictive"
        } else {
            "progressive"
        });
        std::fs::create_dir_all(&dir).unwrap();
        let f = tokio::time::timeout(
            Duration::from_secs(240),
            run_mode(&dir, agents_file(), AGENTS.len(), predictive, &callers),
        )
        .await
        .expect("the campaign finishes within 4 minutes")
        .unwrap();
        eprintln!("{f:?}");
        figures.push(f);
    }
    drop(peers);
    let (prog, pred) = (&figures[0], &figures[1]);
    for f in [prog, pred] {
        assert_eq!(f.attempts, callers.contacts, "{f:?}");
        assert!(f.answered >= 15, "too few answers to compare: {f:?}");
        assert!(f.compliance_ok, "abandon rate over 3% in the log: {f:?}");
        assert!(f.abandon_rate <= 0.03, "{f:?}");
        assert_eq!(
            f.handled as u64 + f.abandoned,
            f.answered,
            "every answered call went to an agent or was abandoned: {f:?}"
        );
    }
    assert_eq!(prog.abandoned, 0, "progressive never dials ahead: {prog:?}");
    assert!(
        pred.occupancy > prog.occupancy,
        "predictive occupancy {:.3} vs progressive {:.3}",
        pred.occupancy,
        prog.occupancy
    );
    assert!(pred.wall_s < prog.wall_s, "{pred:?} vs {prog:?}");
}
