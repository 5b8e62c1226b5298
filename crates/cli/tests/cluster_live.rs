//! Three `waihu run --node` processes share one campaign through a real PostgreSQL (started
//! here), dialling virtual callees through the shipped Kamailio edge
//! (`deploy/kamailio/waihu-edge.cfg`): the nodes are the edge's dispatcher set, the callees
//! its trunk. One node is SIGKILLed while it has a call up. The survivors declare it lost,
//! end its calls in the shared log and finish every contact; the merged log then shows no
//! number dialled twice at once and no cap exceeded, and `waihu cluster check` (the
//! independent compliance checker) passes on it. Then the third node is drained from the
//! command line while it has a call up: it finishes the call, dials nothing new and stops,
//! and the first node finishes the campaign alone.
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use waihu_cluster::Cluster;
use waihu_core::{CampaignId, EventKind};
use waihu_sim::{Persona, Population};
use waihu_testkit::edge::{free_ports, start_edge, Probe};

use common::{assert_whisper_tiny_en, import_orders_in, repo};

/// A call's start and (once logged) end.
type Span = (DateTime<Utc>, Option<DateTime<Utc>>);
/// A call's start, end and id.
type Dialled<'a> = (DateTime<Utc>, DateTime<Utc>, &'a str);

const MAX_ATTEMPTS: usize = 3;
const PER_DAY: usize = 3;
/// A node silent this long is declared lost (`--lost-after`).
const LOST_AFTER_S: u64 = 4;

fn spawn_node(data: &Path, url: &str, name: &str, port: u16, edge: u16, args: &[&str]) -> Child {
    let logs = data.parent().unwrap();
    let out = std::fs::File::create(logs.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{name}.err"))).unwrap();
    Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(data)
        .args([
            "run",
            "--node",
            name,
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--trunk", &format!("127.0.0.1:{edge}")])
        .args(["--lost-after", &LOST_AFTER_S.to_string()])
        .args(["--concurrency", "2", "--asr-slots", "1", "--json"])
        .args(["--var", "shop=BestBuy Online"])
        .args(args)
        .env("WAIHU_DATABASE_URL", url)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env("WAIHU_MODELS_DIR", waihu_testkit::models_dir())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn waihu run --node")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

fn node_log(tmp: &Path, name: &str) -> String {
    let out = std::fs::read_to_string(tmp.join(format!("{name}.out"))).unwrap_or_default();
    let err = std::fs::read_to_string(tmp.join(format!("{name}.err"))).unwrap_or_default();
    let tail: String = err
        .lines()
        .rev()
        .take(30)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    format!("--- {name} stdout\n{out}\n--- {name} stderr (tail)\n{tail}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_share_a_campaign_through_kamailio_and_survive_a_sigkill() {
    assert_whisper_tiny_en();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let Some(pg) = waihu_testkit::postgres::Postgres::start_or_skip(&t.join("pg")) else {
        return;
    };
    if !waihu_testkit::have_peer("kamailio") {
        return;
    }
    let url = pg.create_database("live").unwrap();

    // The customers, imported once; each node gets a copy of that data directory (the
    // same keys, so the same blind indexes of the numbers in the shared tables).
    let people: Vec<(String, Persona, String)> = (0..9)
        .map(|i| {
            let persona = match i {
                0..=4 => Persona::Cooperative,
                5 => Persona::Busy,
                6 => Persona::NoAnswer,
                7 => Persona::DoNotCall,
                _ => Persona::Cancels,
            };
            (format!("+1212555031{i}"), persona, format!("Customer {i}"))
        })
        .collect();
    let base = t.join("base");
    std::fs::create_dir_all(&base).unwrap();
    // In London, not New York: a node runs on the real clock (no --clock-start), and the
    // independent checker holds every America/ zone to 08:00-21:00 whatever the campaign says,
    // so a run in New York's night would be a true violation.
    import_orders_in(
        &base,
        &people
            .iter()
            .map(|(p, _, n)| (p.as_str(), n.as_str()))
            .collect::<Vec<_>>(),
        "Europe/London",
    );

    let pop = Population::new(7)
        .with_map(people.iter().map(|(p, persona, _)| (p.as_str(), *persona)))
        .always_answer();
    let sim = common::english_callees(pop, common::quick_rings).await;

    // The nodes' SIP ports are the edge's dispatcher set; the callees are its trunk.
    let ports = free_ports(3);
    let edge_dir = t.join("edge");
    std::fs::create_dir_all(&edge_dir).unwrap();
    let edge = start_edge(
        &edge_dir,
        &ports,
        sim.addr.port(),
        Probe {
            interval_s: 1,
            failures: 2,
            successes: 2,
            no_reply_ms: 1000,
        },
    );

    // The demo campaign, made independent of the hour CI runs at: every hour is a calling
    // hour (no US TCPA bound; the numbers are fictional), and retries come within seconds.
    let demo = std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml")).unwrap();
    let spec = demo
        .replacen("country: US ", "country: XX ", 1)
        .replacen(
            "windows:\n  default: [\"09:00-20:00\"]",
            "legal_bounds: []\nwindows:\n  default: [\"00:00-24:00\"]",
            1,
        )
        .replacen("busy: {after: 10m, max: 2}", "busy: {after: 3s, max: 2}", 1)
        .replacen(
            "no_answer: {after: 1h, max: 2}",
            "no_answer: {after: 3s, max: 2}",
            1,
        )
        .replacen(
            "failed: {after: 10m, max: 1}",
            "failed: {after: 3s, max: 2}",
            1,
        );
    for part in [
        "country: XX",
        "00:00-24:00",
        "busy: {after: 3s",
        "no_answer: {after: 3s",
        "failed: {after: 3s",
    ] {
        assert!(
            spec.contains(part),
            "the demo campaign moved: update this test ({part})"
        );
    }
    let parsed = waihu_campaign::config::Campaign::from_yaml(&spec).unwrap();
    assert!(parsed.legal_bounds.is_empty());
    assert!(
        parsed
            .windows
            .iter()
            .all(|w| w.len() == 1 && w[0].start == 0 && w[0].end == 86_400),
        "every hour of every day: {:?}",
        parsed.windows
    );
    let campaign = t.join("campaign.yaml");
    std::fs::write(&campaign, &spec).unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let script_args = [
        "--campaign",
        campaign.to_str().unwrap(),
        "--script",
        script.to_str().unwrap(),
    ];

    let names = ["n1", "n2", "n3"];
    let mut nodes: Vec<Child> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let data = t.join(format!("data-{name}"));
        copy_dir(&base, &data);
        nodes.push(spawn_node(
            &data,
            &url,
            name,
            ports[i],
            edge.port,
            &script_args,
        ));
    }

    // Watch the shared tables from here, as an operator would.
    let watcher = Cluster::connect(&url, "test-watch", 2).await.unwrap();
    // Kill n2 once it has a call up (a second later: mid-call).
    let started = Instant::now();
    loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "n2 never had a call up\n{}",
            node_log(t, "n2")
        );
        for (n, c) in names.iter().zip(nodes.iter_mut()) {
            if let Some(s) = c.try_wait().unwrap() {
                panic!("{n} exited early ({s})\n{}", node_log(t, n));
            }
        }
        let up = watcher
            .nodes()
            .await
            .unwrap()
            .into_iter()
            .any(|n| n.name == "n2" && n.open_calls > 0);
        if up {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    nodes[1].kill().unwrap();
    nodes[1].wait().unwrap();
    let killed_at = Utc::now();

    // Once n2 is reaped, drain n3 while it has a call up: it dials nothing new, hands its
    // contacts back, lets the call finish and stops; n1 finishes the campaign alone.
    let wait_for = |what: &'static str| {
        let until = Instant::now() + Duration::from_secs(90);
        move || assert!(Instant::now() < until, "{what} within 90 s")
    };
    let check = wait_for("n2 reaped and n3 with a call up");
    loop {
        check();
        let ns = watcher.nodes().await.unwrap();
        let lost = ns.iter().any(|n| n.name == "n2" && n.state == "lost");
        let busy = ns.iter().any(|n| n.name == "n3" && n.open_calls > 0);
        if lost && busy {
            break;
        }
        assert!(
            nodes[2].try_wait().unwrap().is_none(),
            "n3 ended early\n{}",
            node_log(t, "n3")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let drain = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(t.join("data-n1"))
        .args(["cluster", "drain", "n3"])
        .env("WAIHU_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        drain.status.success(),
        "{}",
        String::from_utf8_lossy(&drain.stderr)
    );
    let drained_at = Utc::now();

    // The survivors stop by themselves.
    let until = Instant::now() + Duration::from_secs(360);
    let mut reports = BTreeMap::new();
    for (i, name) in names.iter().enumerate() {
        if i == 1 {
            continue;
        }
        let status = loop {
            if let Some(s) = nodes[i].try_wait().unwrap() {
                break s;
            }
            if Instant::now() > until {
                for c in nodes.iter_mut() {
                    let _ = c.kill();
                }
                panic!("{name} still running after 6 min\n{}", node_log(t, name));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert!(status.success(), "{name}: {status}\n{}", node_log(t, name));
        let out = std::fs::read_to_string(t.join(format!("{name}.out"))).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{name} JSON: {e}\n{out}"));
        let why = if *name == "n3" {
            "this node was drained"
        } else {
            "every contact finished"
        };
        assert_eq!(json["summary"]["stopped_by"], why, "{name}: {json}");
        reports.insert(name.to_string(), json);
    }
    let reaped: Vec<&serde_json::Value> = reports
        .values()
        .flat_map(|j| j["node"]["reaped"].as_array().unwrap().iter())
        .collect();
    assert_eq!(reaped, vec!["n2"], "exactly one survivor declared n2 lost");
    // n3's calls all ended on n3 (none reaped), and it started none after it heard the drain
    // (its next heartbeat, under a second; 3 s of slack for a loaded machine).
    let n3_calls = reports["n3"]["summary"]["calls"].as_array().unwrap().len();
    assert!(n3_calls >= 1);

    // The shared state: every contact finished, nothing open, n2 lost.
    let campaigns = watcher.campaigns().await.unwrap();
    let c = campaigns.iter().find(|c| c.id == 1).expect("campaign 1");
    assert_eq!(
        (c.pending, c.done, c.in_flight),
        (0, people.len() as i64, 0),
        "{c:?}"
    );
    assert_eq!(c.state, "finished");
    let states: BTreeMap<String, String> = watcher
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.name.starts_with('n'))
        .map(|n| (n.name, n.state))
        .collect();
    assert_eq!(states["n2"], "lost", "{states:?}");
    assert_eq!(states["n1"], "stopped", "{states:?}");
    assert_eq!(states["n3"], "stopped", "{states:?}");

    // The merged log, checked here by hand: per number, calls never overlap, at most
    // MAX_ATTEMPTS attempts and PER_DAY a day; n2's open calls ended `failed` after the kill.
    let events = watcher.events().await.unwrap();
    let mut calls: BTreeMap<String, (String, Span)> = BTreeMap::new();
    let mut ended_failed_after_kill = 0;
    for e in &events {
        let call = e.call.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        match &e.kind {
            EventKind::AttemptStarted { phone, .. } => {
                assert_eq!(e.campaign, Some(CampaignId(1)));
                calls.insert(call, (phone.0.clone(), (e.at, None)));
            }
            EventKind::AttemptEnded { outcome, .. } => {
                let entry = calls.get_mut(&call).expect("an end without a start");
                assert!(entry.1 .1.is_none(), "{call} ended twice");
                entry.1 .1 = Some(e.at);
                if call.contains("-n2-") && e.at >= killed_at && outcome.as_str() == "failed" {
                    ended_failed_after_kill += 1;
                }
            }
            _ => {}
        }
    }
    assert!(
        ended_failed_after_kill >= 1,
        "n2's open call was ended in the log by the reap"
    );
    // Reclaimed within the timeout (plus a heartbeat and a loaded machine's slack).
    let reaped_at = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::AttemptEnded { .. }) && e.at >= killed_at)
        .filter(|e| e.call.as_ref().is_some_and(|c| c.0.contains("-n2-")))
        .map(|e| e.at)
        .min()
        .unwrap();
    let reclaim_s = (reaped_at - killed_at).num_milliseconds() as f64 / 1000.0;
    assert!(
        reclaim_s <= LOST_AFTER_S as f64 + 11.0,
        "reaped {reclaim_s} s after the kill"
    );
    let mut by_phone: BTreeMap<&str, Vec<Dialled>> = BTreeMap::new();
    for (call, (phone, (start, end))) in &calls {
        let end = end.unwrap_or_else(|| panic!("{call} never ended"));
        by_phone
            .entry(phone.as_str())
            .or_default()
            .push((*start, end, call.as_str()));
    }
    assert_eq!(by_phone.len(), people.len(), "every number dialled");
    for (phone, mut cs) in by_phone {
        cs.sort();
        assert!(cs.len() <= MAX_ATTEMPTS.min(PER_DAY), "{phone}: {cs:?}");
        for w in cs.windows(2) {
            assert!(w[0].1 <= w[1].0, "{phone} dialled twice at once: {cs:?}");
        }
    }
    for (call, (_, (start, end))) in calls.iter().filter(|(c, _)| c.contains("-n3-")) {
        assert!(
            *start <= drained_at + chrono::Duration::seconds(3),
            "n3 started {call} at {start}, after the drain at {drained_at}"
        );
        assert!(end.is_some(), "{call} open");
    }
    let n3_logged = calls.keys().filter(|c| c.contains("-n3-")).count();
    assert_eq!(n3_logged, n3_calls, "every n3 call ended on n3");
    let nodes_dialled: std::collections::BTreeSet<&str> = calls
        .keys()
        .filter_map(|c| {
            names
                .iter()
                .find(|n| c.contains(&format!("-{n}-")))
                .copied()
        })
        .collect();
    assert_eq!(
        nodes_dialled.len(),
        3,
        "every node dialled: {nodes_dialled:?}"
    );

    // Every call reached the callees through the edge (the nodes knew no other address).
    let seen = sim.logs().len() + sim.active_calls();
    assert!(
        seen >= calls.len() - ended_failed_after_kill && seen <= calls.len(),
        "callees saw {seen} calls, the log has {}",
        calls.len()
    );

    let per_node: BTreeMap<&str, usize> = names
        .iter()
        .map(|n| {
            (
                *n,
                calls
                    .keys()
                    .filter(|c| c.contains(&format!("-{n}-")))
                    .count(),
            )
        })
        .collect();
    eprintln!(
        "3 nodes, {} contacts: {} calls {per_node:?}, n2 killed with a call up and reaped {reclaim_s:.1} s later, campaign done {:.0} s after the start; refusals by the shared gate: {:?}",
        people.len(),
        calls.len(),
        started.elapsed().as_secs_f64(),
        reports
            .values()
            .map(|j| j["node"]["refused"].clone())
            .collect::<Vec<_>>()
    );

    // The independent checker, on the merged log.
    let out = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .arg("--data-dir")
        .arg(t.join("data-n1"))
        .args(["cluster", "check", "--campaign", campaign.to_str().unwrap()])
        .env("WAIHU_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    watcher.close().await;
}
