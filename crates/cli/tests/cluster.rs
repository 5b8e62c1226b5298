//! `waihu cluster` against a real PostgreSQL started here: a campaign registered from the
//! shipped campaign file, a node's dials seen in `status`, a pause heard by a listening node,
//! the merged log passing the compliance check and failing it once a bad dial is in it, and
//! bad input refused by name.
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use waihu_cluster::{Cluster, NewContact, Next};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, PhoneIndex};

fn waihu(dir: &Path, url: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_waihu"))
        .current_dir(dir)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env("WAIHU_DATABASE_URL", url)
        .output()
        .expect("run waihu");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn cluster_commands_over_a_real_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = waihu_testkit::postgres::Postgres::start_or_skip(&dir.path().join("pg")) else {
        return;
    };
    let url = pg.create_database("cli").unwrap();
    let campaign = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/campaign.yaml");
    let campaign = campaign.to_str().unwrap();
    let d = dir.path();

    let (ok, out, err) = waihu(d, &url, &["cluster", "campaign", campaign]);
    assert!(ok, "{err}");
    assert!(out.contains("500 channels, 50 cps"), "{out}");

    // One node dials three customers at 10:00 in Shanghai (inside the file's windows).
    let t0 = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 2, 10, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Pools and listeners drop inside the runtime (declared after the guard, dropped before it).
    let _in_rt = rt.enter();
    let node = rt.block_on(async {
        let c = Cluster::connect(&url, "n1", 2).await.unwrap();
        c.join(Utc::now()).await.unwrap();
        let contacts: Vec<NewContact> = (1..=3)
            .map(|i| NewContact {
                customer: CustomerId(i),
                phone: PhoneIndex(format!("idx{i}")),
                tz: "Asia/Shanghai".into(),
                due: t0,
            })
            .collect();
        c.enqueue(CampaignId(1), &contacts).await.unwrap();
        c.set_campaign_state(CampaignId(1), "started", "test", t0)
            .await
            .unwrap();
        let leases = c
            .claim(CampaignId(1), 10, t0, chrono::Duration::seconds(60))
            .await
            .unwrap();
        assert_eq!(leases.len(), 3);
        for (i, l) in leases.iter().enumerate() {
            let at = t0 + chrono::Duration::seconds(i as i64);
            let a = c
                .begin_attempt(l, &CallId(format!("c{i}")), "trunk-bj", None, at)
                .await
                .unwrap()
                .unwrap();
            if i < 2 {
                c.end_attempt(
                    &a,
                    CallOutcome::Answered,
                    Some(200),
                    30.0,
                    None,
                    Next::Done,
                    at + chrono::Duration::seconds(30),
                )
                .await
                .unwrap();
            }
        }
        c
    });

    let (ok, out, err) = waihu(d, &url, &["cluster", "status", "--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let n1 = v["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "n1")
        .expect("n1 listed");
    assert_eq!(
        (n1["open_calls"].as_i64(), n1["leases"].as_i64()),
        (Some(1), Some(1))
    );
    let k = &v["campaigns"][0];
    assert_eq!(
        (
            k["state"].as_str(),
            k["in_flight"].as_i64(),
            k["done"].as_i64()
        ),
        (Some("started"), Some(1), Some(2)),
        "{v}"
    );
    let (ok, out, _) = waihu(d, &url, &["cluster", "status"]);
    assert!(
        ok && out.contains("n1") && out.contains("double11-care"),
        "{out}"
    );

    // A pause from the command line reaches a listening node within a second.
    let mut listener = rt.block_on(node.control_listener()).unwrap();
    let (ok, _, err) = waihu(d, &url, &["cluster", "state", "1", "paused"]);
    assert!(ok, "{err}");
    let heard = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(1), listener.recv()).await })
        .expect("heard within 1 s")
        .unwrap();
    assert_eq!(heard.state, "paused");

    // The merged log passes; one dial at 23:30 local time written into it fails it.
    let (ok, out, err) = waihu(d, &url, &["cluster", "check", "--campaign", campaign]);
    assert!(ok, "{err}\n{out}");
    rt.block_on(async {
        let late = t0 + chrono::Duration::minutes(13 * 60 + 30);
        let ev = serde_json::json!({
            "at": late, "customer": 9, "campaign": 1, "call": "late",
            "kind": {
                "type": "attempt_started", "phone": "idx9", "tz": "Asia/Shanghai",
                "local_time": late.with_timezone(&chrono_tz::Asia::Shanghai).to_rfc3339(),
                "caller_id": null, "channel": "trunk-bj"
            }
        });
        sqlx::query("INSERT INTO cluster_events (at_us, node, event) VALUES ($1, 'rogue', $2)")
            .bind(late.timestamp_micros())
            .bind(ev.to_string())
            .execute(node.pool())
            .await
            .unwrap();
    });
    let (ok, out, err) = waihu(d, &url, &["cluster", "check", "--campaign", campaign]);
    assert!(!ok, "{out}");
    assert!(err.contains("1 compliance violation"), "{err}");
    assert!(out.contains("outside"), "{out}");

    // Drain from the command line: the node hears it at its next heartbeat, and its leases
    // are no longer renewed; undone, it is back.
    let (ok, out, err) = waihu(d, &url, &["cluster", "drain", "n1"]);
    assert!(ok && out.contains("draining"), "{err}");
    let ttl = chrono::Duration::seconds(60);
    let beat = rt.block_on(node.heartbeat(Utc::now(), ttl)).unwrap();
    assert_eq!(beat, waihu_cluster::NodeStatus::Draining);
    let (ok, _, err) = waihu(d, &url, &["cluster", "drain", "n1"]);
    assert!(ok, "draining twice is fine: {err}");
    let (ok, _, err) = waihu(d, &url, &["cluster", "drain", "n1", "--undo"]);
    assert!(ok, "{err}");
    let beat = rt.block_on(node.heartbeat(Utc::now(), ttl)).unwrap();
    assert_eq!(beat, waihu_cluster::NodeStatus::Up);
    let (ok, _, err) = waihu(d, &url, &["cluster", "drain", "nobody"]);
    assert!(!ok && err.contains("no node \"nobody\""), "{err}");

    // Bad input, said by name.
    let (ok, _, err) = waihu(d, &url, &["cluster", "state", "1", "running"]);
    assert!(!ok && err.contains("\"running\""), "{err}");
    let (ok, _, err) = waihu(d, &url, &["cluster", "state", "42", "paused"]);
    assert!(!ok && err.contains("no campaign 42"), "{err}");
    let (ok, _, err) = waihu(d, "sqlite://x.db", &["cluster", "status"]);
    assert!(!ok && err.contains("postgres://"), "{err}");
}
