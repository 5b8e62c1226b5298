//! `GET /api/cluster`: a multi-node deployment's nodes and shared campaigns, from a real
//! PostgreSQL started here; `configured: false` on a single-machine server.
mod common;

use chrono::Utc;
use common::*;
use waihu_cluster::{CampaignSpec, Caps, Cluster, NewContact};
use waihu_core::{CampaignId, CustomerId, PhoneIndex};

#[tokio::test]
async fn single_machine_says_so() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, v) = s.get(&s.analyst, "/api/cluster").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v, serde_json::json!({"configured": false}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_and_campaigns_of_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let pg = {
        let d = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || waihu_testkit::postgres::Postgres::start_or_skip(&d))
            .await
            .unwrap()
    };
    let Some(pg) = pg else {
        return;
    };
    let url = pg.create_database("api").unwrap();
    let now = Utc::now();
    let node = Cluster::connect(&url, "node-a", 2).await.unwrap();
    node.join(now).await.unwrap();
    node.upsert_campaign(
        &CampaignSpec {
            id: CampaignId(3),
            name: "续费提醒".into(),
            channels: 40,
            cps: 5.0,
            caps: Caps {
                per_day: Some(2),
                per_week: None,
                max_attempts: 3,
            },
        },
        now,
    )
    .await
    .unwrap();
    let contacts: Vec<NewContact> = (1..=5)
        .map(|i| NewContact {
            customer: CustomerId(i),
            phone: PhoneIndex(format!("p{i}")),
            tz: "Asia/Shanghai".into(),
            due: now,
        })
        .collect();
    node.enqueue(CampaignId(3), &contacts).await.unwrap();
    node.claim(CampaignId(3), 2, now, chrono::Duration::seconds(30))
        .await
        .unwrap();
    let cfg = waihu_server::Config {
        cluster: Some(Cluster::connect(&url, "api", 2).await.unwrap()),
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    let (st, v) = s.get(&s.analyst, "/api/cluster").await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["configured"], true);
    let n = &v["nodes"][0];
    assert_eq!(
        (n["name"].as_str(), n["state"].as_str()),
        (Some("node-a"), Some("up"))
    );
    assert_eq!(
        (n["leases"].as_i64(), n["open_calls"].as_i64()),
        (Some(2), Some(0))
    );
    let k = &v["campaigns"][0];
    assert_eq!(k["name"], "续费提醒");
    assert_eq!(
        (k["channels"].as_i64(), k["pending"].as_i64()),
        (Some(40), Some(5))
    );
    // Roles: analysts and up; no key, no answer.
    let (st, _) = s.get("", "/api/cluster").await;
    assert_eq!(st, 401);
    node.close().await;
}
