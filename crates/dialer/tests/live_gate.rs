//! The campaign file honoured on live calls, checked on the wire: `waihu run`'s
//! lifecycle dials a SIPp UAS on loopback that logs every INVITE's Request-URI
//! and From and answers 486 Busy. Checked:
//! - `consent.required`: only customers whose import said yes are dialled;
//! - the planner's caller ID is the From user of each INVITE (local presence);
//! - without `--script`, each customer's call runs their segment's script;
//! - a do-not-call entry added while the campaign runs stops the dial to that
//!   number (the run polls the store's list every 250 ms).
//!
//! Needs SIPp (`have_peer`: skips loudly, fails under CI), espeak-ng and the
//! Whisper tiny.en model (scripts/setup.sh installs all three).
//! Ports: 28600-28619.
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use waihu_bot::{Kit, ScriptKit};
use waihu_core::EventKind;
use waihu_dialer::lifecycle::{business_morning, run_campaign, BoxError, CampaignSetup};
use waihu_dialer::CampaignClock;
use waihu_store::Store;
use waihu_testkit::models_dir;

/// Stops the SIPp it wraps (by its PID) when dropped; SIGTERM lets SIPp flush its log.
struct Sipp(Child);
impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        for _ in 0..40 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A busy callee on `port`, logging to `log`.
fn busy_uas(port: u16, log: &Path) -> Sipp {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/busy_uas.xml");
    Sipp(
        Command::new("sipp")
            .arg("-sf")
            .arg(&scenario)
            .args(["-i", "127.0.0.1", "-p", &port.to_string()])
            .args(["-nostdin", "-trace_logs", "-log_file"])
            .arg(log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sipp"),
    )
}

async fn wait_port_udp(port: u16) {
    for _ in 0..100 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("sipp did not bind {port}");
}

/// (Request-URI user, From user) of every INVITE SIPp logged.
fn invites(log: &Path) -> Vec<(String, String)> {
    // Lines `INVITE|<Request-URI user>|<From user>|...` (tests/sipp/busy_uas.xml).
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("INVITE|"))
        .map(|l| {
            let mut f = l.split('|');
            let to = f.next().unwrap_or("").to_string();
            (to, f.next().unwrap_or("").to_string())
        })
        .collect()
}

async fn store_with(dir: &Path, csv: &str) -> Store {
    std::fs::create_dir_all(dir).unwrap();
    let store = Store::open_with_key(dir, &waihu_privacy::MasterKey::from_bytes([4; 32]))
        .await
        .unwrap();
    let report = waihu_import::import_reader(
        &store,
        "customers.csv",
        std::io::Cursor::new(csv.as_bytes().to_vec()),
        None,
        &waihu_import::ImportOptions::default(),
        &mut (),
    )
    .await
    .unwrap();
    assert_eq!(report.rejected, 0, "{report:?}");
    store
}

fn kit_loader(data_dir: PathBuf) -> impl FnOnce(&ScriptKit) -> Result<Kit, BoxError> {
    move |script| {
        let model = models_dir().join("whisper-tiny.en");
        Ok(Kit::load(&data_dir, script.lang(), Some(&model), Some(1))?)
    }
}

fn setup(yaml: String, dir: &Path, trunk: SocketAddr, script: Option<PathBuf>) -> CampaignSetup {
    // Tomorrow's business morning: after the import on the campaign clock too,
    // whatever the hour the test runs (the compliance checker replays the log
    // in time order, so consent recorded by the import must precede the dials).
    let start = business_morning(
        &chrono_tz::America::New_York,
        chrono::Utc::now() + chrono::Duration::days(1),
    );
    CampaignSetup {
        campaign_yaml: yaml,
        campaign_origin: dir.join("campaign.yaml").display().to_string(),
        script,
        campaign_dir: Some(dir.to_path_buf()),
        trunk,
        trunks: Vec::new(),
        bind: "127.0.0.1:0".parse().unwrap(),
        sip_trust: Vec::new(),
        concurrency: 1,
        constants: Vec::new(),
        prefix: None,
        limit: None,
        clock: CampaignClock::starting_at(start, true),
        until: Some(start + chrono::Duration::hours(6)),
        actor: "test".into(),
        progress: None,
        messages: None,
        agents: None,
    }
}

fn have_everything() -> bool {
    if !waihu_testkit::have_peer("sipp") {
        return false;
    }
    let model = models_dir().join("whisper-tiny.en");
    assert!(
        model.join("model.bin").exists(),
        "Whisper tiny.en missing at {} — run scripts/setup.sh",
        model.display()
    );
    true
}

const SCRIPT: &str =
    "language: en\nstates:\n  hello:\n    say: \"Hello, this is a test call.\"\n    end: done\n";
/// Segment beta's script: a bandit chooses between two greetings.
const BANDIT_SCRIPT: &str = "language: en\nstates:\n  hello:\n    variants:\n      - {id: short, say: \"Hello.\"}\n      - {id: long, say: \"Hello, this is a test call.\"}\n    bandit: {reward: continued}\n    end: done\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_caller_id_and_segment_scripts_on_the_wire() {
    if !have_everything() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::create_dir_all(dir.join("scripts")).unwrap();
    std::fs::write(
        dir.join("scripts/greet_a.yaml"),
        format!("name: greet_a\n{SCRIPT}"),
    )
    .unwrap();
    std::fs::write(
        dir.join("scripts/greet_b.yaml"),
        format!("name: greet_b\n{BANDIT_SCRIPT}"),
    )
    .unwrap();
    // (phone, consent cell, segment); +1212 and +1312 numbers for local presence.
    let people = [
        ("+12125550101", "yes", "alpha"),
        ("+13125550102", "是", "beta"),
        ("+12125550103", "no", "alpha"),
        ("+13125550104", "", "beta"),
        ("+12125550105", "1", "beta"),
        ("+13125550106", "true", "alpha"),
    ];
    let mut csv = String::from("phone,timezone,opt_in\n");
    for (p, consent, _) in &people {
        csv.push_str(&format!("{p},America/New_York,{consent}\n"));
    }
    let store = store_with(&data, &csv).await;
    let mut assign = Vec::new();
    for (p, _, seg) in &people {
        let c = store.customer_by_phone(p).await.unwrap().unwrap();
        assign.push((c.id, Some(seg.to_string())));
    }
    store.set_segments(&assign).await.unwrap();

    let port = 28600;
    let log = dir.join("sipp.log");
    let sipp = busy_uas(port, &log);
    wait_port_udp(port).await;
    let yaml = "name: honour-live\nid: 1\ntimezone: America/New_York\ncountry: US\n\
        windows: {default: [\"08:00-21:00\"]}\n\
        retry: {busy: stop}\n\
        consent: {required: true}\n\
        trunks: [{name: sipp, channels: 4, cps: 50}]\n\
        caller_ids:\n  local_presence: true\n  pool:\n    - {number: \"+12125550000\"}\n    - {number: \"+13125550000\"}\n\
        segments:\n  - {name: alpha, script: greet_a}\n  - {name: beta, script: greet_b}\n\
        ranking: {policy: fifo}\n"
        .to_string();
    std::fs::write(dir.join("campaign.yaml"), &yaml).unwrap();
    let trunk: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (_keep, shutdown) = watch::channel(false);
    let (id, summary) = run_campaign(
        &store,
        setup(yaml.clone(), dir, trunk, None),
        kit_loader(data.clone()),
        shutdown,
    )
    .await
    .unwrap();
    drop(sipp);
    assert_eq!(summary.contacts, 6, "{summary:?}");

    // Only the four who said yes were dialled, each once, each from the caller
    // ID that shares its area code.
    let wire = invites(&log);
    let dialled: BTreeMap<String, String> = wire.iter().cloned().collect();
    assert_eq!(wire.len(), 4, "{wire:?}");
    let want: BTreeMap<String, String> = [
        ("+12125550101", "+12125550000"),
        ("+13125550102", "+13125550000"),
        ("+12125550105", "+12125550000"),
        ("+13125550106", "+13125550000"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(dialled, want, "INVITEs on the wire: {wire:?}");

    // The From on the wire is the caller ID the planner logged for that attempt.
    let started = store
        .events_of_type("attempt_started", 0, 100)
        .await
        .unwrap();
    assert_eq!(started.len(), 4);
    for (_, e) in &started {
        let c = store.customer(e.customer.unwrap()).await.unwrap().unwrap();
        let EventKind::AttemptStarted { caller_id, .. } = &e.kind else {
            unreachable!()
        };
        assert_eq!(caller_id.as_deref(), Some(dialled[&c.phone].as_str()));
    }

    // Each call ran its customer's segment's script.
    let calls = store.calls_list(Some(id), 100, None).await.unwrap();
    assert_eq!(calls.len(), 4);
    for call in &calls {
        let c = store
            .customer(call.customer.unwrap())
            .await
            .unwrap()
            .unwrap();
        let seg = people.iter().find(|(p, ..)| *p == c.phone).unwrap().2;
        let want = if seg == "alpha" { "greet_a" } else { "greet_b" };
        assert_eq!(call.script, want, "{}", c.phone);
    }

    // Segment beta's bandit chose a greeting for each of its two calls; the
    // callee was busy, so neither is an observation.
    let arms = store.experiment_counts(Some(id)).await.unwrap();
    assert!(
        arms.iter()
            .all(|a| a.script == "greet_b" && a.segment == "beta"),
        "{arms:?}"
    );
    assert_eq!(arms.iter().map(|a| a.chosen).sum::<u64>(), 2, "{arms:?}");
    assert_eq!(arms.iter().map(|a| a.trials).sum::<u64>(), 0, "{arms:?}");

    // The independent checker agrees: no call without consent.
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let page = store.events(after, 1000).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        events.extend(page.into_iter().map(|(_, e)| e));
    }
    let spec = store.campaign_get(id).await.unwrap().unwrap().spec;
    let rules = waihu_compliance::CampaignRules::from_yaml("campaign.yaml", &spec).unwrap();
    assert!(rules.consent_required);
    let report = waihu_compliance::check(vec![rules], events);
    assert!(report.ok(), "{}", waihu_compliance::render_text(&report));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dnc_entry_added_mid_run_stops_the_next_dial_within_a_second() {
    if !have_everything() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let data = dir.join("data");
    std::fs::write(dir.join("greet.yaml"), format!("name: greet\n{SCRIPT}")).unwrap();
    // Ten callees dialled one at a time in file order, 300 ms+ each: the eighth
    // is about two seconds after the first.
    let phones: Vec<String> = (0..10).map(|i| format!("+1212555{:04}", 200 + i)).collect();
    let mut csv = String::from("phone,timezone\n");
    for p in &phones {
        csv.push_str(&format!("{p},America/New_York\n"));
    }
    let store = store_with(&data, &csv).await;
    let listed = phones[7].clone();

    let port = 28610;
    let log = dir.join("sipp.log");
    let sipp = busy_uas(port, &log);
    wait_port_udp(port).await;
    let yaml = "name: honour-dnc\nid: 1\ntimezone: America/New_York\ncountry: US\n\
        windows: {default: [\"08:00-21:00\"]}\n\
        retry: {busy: stop}\n\
        trunks: [{name: sipp, channels: 1, cps: 50}]\n\
        segments:\n  - {name: default, script: greet}\n\
        ranking: {policy: fifo}\n"
        .to_string();
    let trunk: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (_keep, shutdown) = watch::channel(false);
    let run = {
        let store = store.clone();
        let setup = setup(yaml, dir, trunk, Some(dir.join("greet.yaml")));
        tokio::spawn(async move { run_campaign(&store, setup, kit_loader(data), shutdown).await })
    };
    // As soon as the first call is placed, put the eighth number on the list
    // the way `waihu dnc add` and `POST /api/dnc` do.
    let t0 = Instant::now();
    while store.calls_count(None).await.unwrap() == 0 {
        assert!(t0.elapsed() < Duration::from_secs(60), "no call started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let added_at = Instant::now();
    assert!(store
        .dnc_add(&listed, "global", "asked by phone", chrono::Utc::now())
        .await
        .unwrap());
    let (_, summary) = run.await.unwrap().unwrap();
    drop(sipp);

    let wire: Vec<String> = invites(&log).into_iter().map(|(to, _)| to).collect();
    assert!(!wire.contains(&listed), "{listed} was dialled: {wire:?}");
    assert_eq!(wire.len(), 9, "{wire:?}");
    assert_eq!(summary.attempts, 9);
    // The listed number's turn came more than a second after the entry.
    let run_s = added_at.elapsed().as_secs_f64();
    assert!(run_s > 2.0, "the run ended {run_s:.1} s after the entry");
}
