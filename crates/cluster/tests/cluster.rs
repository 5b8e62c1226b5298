//! Many nodes against one real PostgreSQL (started here on loopback): contention for the same
//! contacts and caps, a node killed with SIGKILL mid-campaign, the control plane. Every run is
//! checked by the independent compliance checker on the merged log, and by SQL over the
//! attempts table.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use rand::Rng;
use waihu_cluster::{
    Attempt, CampaignSpec, Caps, Cluster, Lease, NewContact, Next, NodeStatus, Refusal,
};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};
use waihu_testkit::postgres::Postgres;

const CAMPAIGN: CampaignId = CampaignId(7);

const RULES: &str = r#"
name: cluster
id: 7
timezone: Asia/Shanghai
windows:
  default: ["08:00-21:00"]
caps: {per_number_per_day: 2, per_number_per_week: 5, max_attempts: 3}
"#;

fn caps() -> Caps {
    Caps {
        per_day: Some(2),
        per_week: Some(5),
        max_attempts: 3,
    }
}

/// Virtual time: Monday 2026-11-02 10:00 in Shanghai plus the real time elapsed since
/// `wall_start` (shared by every node, including child processes).
#[derive(Clone, Copy)]
struct Clock {
    wall_start: DateTime<Utc>,
}

impl Clock {
    fn new() -> Clock {
        Clock {
            wall_start: Utc::now(),
        }
    }
    fn base() -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, 2, 10, 0, 0)
            .unwrap()
            .with_timezone(&Utc)
    }
    fn now(&self) -> DateTime<Utc> {
        Clock::base() + (Utc::now() - self.wall_start)
    }
}

fn start_pg(dir: &std::path::Path) -> Option<Postgres> {
    Postgres::start_or_skip(dir)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

/// `n` contacts over `phones` numbers (several customers may share one number: a family
/// line, a company switchboard), all due now.
fn contacts(n: usize, phones: usize, due: DateTime<Utc>) -> Vec<NewContact> {
    (0..n)
        .map(|i| NewContact {
            customer: CustomerId(i as i64 + 1),
            phone: PhoneIndex(format!("idx{:04}", i % phones)),
            tz: "Asia/Shanghai".into(),
            due,
        })
        .collect()
}

async fn setup(url: &str, channels: u32, cps: f64, n: usize, phones: usize, now: DateTime<Utc>) {
    let c = Cluster::connect(url, "setup", 2).await.unwrap();
    c.upsert_campaign(
        &CampaignSpec {
            id: CAMPAIGN,
            name: "cluster".into(),
            channels,
            cps,
            caps: caps(),
        },
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        c.enqueue(CAMPAIGN, &contacts(n, phones, now))
            .await
            .unwrap(),
        n as u64
    );
    c.set_campaign_state(CAMPAIGN, "started", "test", now)
        .await
        .unwrap();
    c.close().await;
}

#[derive(Default)]
struct Tally {
    granted: u64,
    refused: BTreeMap<&'static str, u64>,
}

/// One node's dial loop: claim, gate, "call" (a callee that answers after a few
/// milliseconds or not at all), end; heartbeat and reap as it goes. Returns when nothing
/// is due and nothing of its own is open, or `stop` is set.
async fn node_loop(
    c: Cluster,
    clock: Clock,
    stop: Arc<AtomicBool>,
    tally: Arc<Mutex<Tally>>,
    reap_after: chrono::Duration,
) {
    let ttl = chrono::Duration::seconds(3);
    c.join(clock.now()).await.unwrap();
    let calls = tokio::task::JoinSet::new();
    let calls = Arc::new(tokio::sync::Mutex::new(calls));
    let mut seq = 0u64;
    let mut idle_rounds = 0;
    while !stop.load(Ordering::Relaxed) {
        assert_eq!(
            c.heartbeat(clock.now(), ttl).await.unwrap(),
            NodeStatus::Up,
            "{} was declared lost while alive",
            c.node()
        );
        c.reap(clock.now(), reap_after).await.unwrap();
        let leases = c.claim(CAMPAIGN, 4, clock.now(), ttl).await.unwrap();
        let mut any = !leases.is_empty();
        for lease in leases {
            seq += 1;
            let call = CallId(format!("{}-{seq}", c.node()));
            match c
                .begin_attempt(&lease, &call, "trunk-a", None, clock.now())
                .await
                .unwrap()
            {
                Ok(a) => {
                    tally.lock().unwrap().granted += 1;
                    let c = c.clone();
                    calls.lock().await.spawn(async move {
                        let (ms, answered) = {
                            let mut r = rand::thread_rng();
                            (r.gen_range(2..25), r.gen_bool(0.3))
                        };
                        // The call goes out at its CPS slot, then rings or talks.
                        let slot = (a.at - clock.now()).to_std().unwrap_or_default();
                        tokio::time::sleep(slot + Duration::from_millis(ms)).await;
                        end(&c, &a, answered, ms, clock.now()).await;
                    });
                }
                Err(r) => {
                    *tally.lock().unwrap().refused.entry(r.label()).or_default() += 1;
                    if matches!(
                        r,
                        Refusal::ChannelsFull | Refusal::Paced { .. } | Refusal::NotStarted(_)
                    ) {
                        c.release(&lease, clock.now()).await.unwrap();
                    }
                }
            }
        }
        while calls.lock().await.try_join_next().is_some() {}
        if !any {
            any = !calls.lock().await.is_empty();
        }
        if any {
            idle_rounds = 0;
        } else {
            idle_rounds += 1;
            let due = due_now(&c, clock.now()).await;
            if due == 0 && idle_rounds > 3 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(if any { 1 } else { 20 })).await;
    }
    while calls.lock().await.join_next().await.is_some() {}
}

/// `count` nodes named `<prefix>0..`, each running [`node_loop`] with its own pool of
/// `conns` connections, reaping nodes silent for `reap_s` seconds.
async fn spawn_nodes(
    url: &str,
    clock: Clock,
    prefix: &str,
    count: usize,
    conns: u32,
    reap_s: i64,
) -> (
    Vec<tokio::task::JoinHandle<()>>,
    Arc<AtomicBool>,
    Arc<Mutex<Tally>>,
) {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let mut nodes = Vec::new();
    for n in 0..count {
        let c = Cluster::connect(url, &format!("{prefix}{n}"), conns)
            .await
            .unwrap();
        nodes.push(tokio::spawn(node_loop(
            c,
            clock,
            stop.clone(),
            tally.clone(),
            chrono::Duration::seconds(reap_s),
        )));
    }
    (nodes, stop, tally)
}

async fn end(c: &Cluster, a: &Attempt, answered: bool, ms: u64, now: DateTime<Utc>) {
    let (outcome, next) = if answered {
        (CallOutcome::Answered, Next::Done)
    } else {
        (CallOutcome::NoAnswer, Next::RetryAt(now))
    };
    // An answered call's conversation goes to the merged log too (half confirm, at level A).
    let conversation = answered.then(|| EventKind::ConversationEnded {
        outcome: if a.customer.0 % 2 == 0 {
            "confirmed"
        } else {
            "declined"
        }
        .to_string(),
        level: (a.customer.0 % 2 == 0).then(|| "A".to_string()),
        path: vec!["offer".to_string()],
    });
    c.end_attempt(
        a,
        outcome,
        None,
        ms as f64 / 1000.0,
        conversation,
        next,
        now,
    )
    .await
    .unwrap();
}

/// The work left today: pending contacts due before the end of the callee's local day (a
/// number busy on another node comes back in a few seconds; one whose caps are used waits
/// for tomorrow and is not today's work), plus open attempts.
async fn due_now(c: &Cluster, now: DateTime<Utc>) -> i64 {
    let day_end = waihu_cluster::gate::local_spans(chrono_tz::Asia::Shanghai, now)
        .day
        .1;
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM cluster_contacts WHERE campaign = $1 AND state = 'pending' AND next_us < $2)
              + (SELECT count(*) FROM cluster_attempts WHERE ended_us IS NULL)",
    )
    .bind(CAMPAIGN.0)
    .bind(day_end.timestamp_micros())
    .fetch_one(c.pool())
    .await
    .unwrap()
}

/// The independent checks over the outcome of a run: the compliance checker on the merged
/// log, and SQL over the attempts (no overlap per number, caps per local day).
async fn verify(url: &str) -> Vec<Event> {
    let c = Cluster::connect(url, "verifier", 2).await.unwrap();
    let events = c.events().await.unwrap();
    let rules = vec![waihu_compliance::CampaignRules::from_yaml("cluster.yaml", RULES).unwrap()];
    let report = waihu_compliance::check(rules.clone(), events.clone());
    assert!(
        report.ok() && report.violation_count == 0,
        "{}",
        waihu_compliance::render_text(&report)
    );
    // The checker is not blind to what this test is about: the same log with one more dial
    // on a number whose call is open fails it.
    let mut doctored = events.clone();
    let i = doctored
        .iter()
        .position(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
        .unwrap();
    let mut twin = doctored[i].clone();
    twin.call = Some(CallId("twin".into()));
    doctored.insert(i + 1, twin);
    let bad = waihu_compliance::check(rules, doctored);
    assert!(bad.violation_count >= 1);
    let overlaps: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cluster_attempts a JOIN cluster_attempts b
           ON a.phone = b.phone AND a.id < b.id
          AND b.started_us < COALESCE(a.ended_us, 9223372036854775807)
          AND a.started_us < COALESCE(b.ended_us, 9223372036854775807)",
    )
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_eq!(overlaps, 0, "two calls to one number at once");
    let over_cap: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT phone FROM cluster_attempts GROUP BY phone HAVING count(*) > 2) x",
    )
    .fetch_one(c.pool())
    .await
    .unwrap();
    assert_eq!(
        over_cap, 0,
        "a number dialled more than twice in one local day"
    );
    // The rollups the reports read agree with a scan of what they summarise, after every
    // interleaving of claims, refusals, ends and reaps the test produced.
    let scanned: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT campaign, node, outcome, count(*) FROM cluster_attempts
         WHERE ended_us IS NOT NULL GROUP BY campaign, node, outcome ORDER BY 1, 2, 3",
    )
    .fetch_all(c.pool())
    .await
    .unwrap();
    let rolled: Vec<(i64, String, String, i64)> = c
        .outcomes()
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.campaign, o.node, o.outcome, o.count))
        .collect();
    assert_eq!(rolled, scanned);
    let (pending, done): (i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE state = 'pending'), count(*) FILTER (WHERE state = 'done')
         FROM cluster_contacts",
    )
    .fetch_one(c.pool())
    .await
    .unwrap();
    let k = c.campaigns().await.unwrap().remove(0);
    assert_eq!((k.pending, k.done), (pending, done));
    assert_eq!(c.pending(CAMPAIGN).await.unwrap(), pending as u64);
    // The KPI rollup the cluster's dashboard folds equals the cells counted here, in Rust,
    // from the decoded merged log.
    let mut want: BTreeMap<(NaiveDate, String, String), (i64, f64)> = BTreeMap::new();
    for e in &events {
        let cells = match &e.kind {
            EventKind::AttemptEnded {
                outcome,
                duration_s,
                ..
            } => vec![("attempt", outcome.as_str().to_string(), *duration_s)],
            EventKind::ConversationEnded { outcome, level, .. } => {
                let mut v = vec![("conversation", outcome.clone(), 0.0)];
                v.extend(level.iter().map(|l| ("level", l.clone(), 0.0)));
                v
            }
            _ => vec![],
        };
        for (metric, key, sum) in cells {
            let cell = want
                .entry((e.at.date_naive(), metric.to_string(), key))
                .or_default();
            cell.0 += 1;
            cell.1 += sum;
        }
    }
    let start = events.first().map(|e| e.at).unwrap() - chrono::Duration::days(1);
    let end = events.last().map(|e| e.at).unwrap() + chrono::Duration::days(1);
    let got: BTreeMap<(NaiveDate, String, String), (i64, f64)> = c
        .kpi_rollup(start, end, Some(CAMPAIGN))
        .await
        .unwrap()
        .into_iter()
        .map(|r| ((r.day, r.metric, r.key), (r.n, r.sum)))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (k, (n, sum)) in &want {
        assert_eq!(got[k].0, *n, "{k:?}");
        assert!(
            (got[k].1 - sum).abs() < 1e-6,
            "{k:?}: {} vs {sum}",
            got[k].1
        );
    }
    let answered = want
        .keys()
        .any(|(_, m, k)| m == "attempt" && k == "answered");
    assert_eq!(
        answered,
        want.keys().any(|(_, m, _)| m == "conversation"),
        "answered calls and conversations in the merged log: {want:?}"
    );
    c.close().await;
    events
}

#[test]
fn nodes_racing_for_the_same_contacts_and_caps_never_break_a_rule() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("contention").unwrap();
    rt().block_on(async {
        let clock = Clock::new();
        // 300 contacts on 100 numbers (three customers per number), 8 channels shared by
        // six nodes, per number at most 2 dials a day: the caps bind, numbers collide.
        setup(&url, 8, 1e6, 300, 100, clock.now()).await;
        let (nodes, stop, tally) = spawn_nodes(&url, clock, "node", 6, 3, 10).await;
        // The shared channel counter, sampled while they run: never above the 8 channels.
        let watch = Cluster::connect(&url, "watch", 1).await.unwrap();
        let peak = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let sampler = {
            let (peak, stop) = (peak.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n: i32 = sqlx::query_scalar("SELECT in_flight FROM cluster_campaigns")
                        .fetch_one(watch.pool())
                        .await
                        .unwrap();
                    peak.fetch_max(n, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let all = async {
            for n in nodes {
                n.await.unwrap();
            }
        };
        if tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .is_err()
        {
            stop.store(true, Ordering::Relaxed);
            panic!("the nodes did not finish the campaign in 120 s");
        }
        stop.store(true, Ordering::Relaxed);
        sampler.await.unwrap();
        let peak = peak.load(Ordering::Relaxed);
        assert!(
            (1..=8).contains(&peak),
            "{peak} calls at once over 8 shared channels"
        );
        let events = verify(&url).await;
        let t = std::mem::take(&mut *tally.lock().unwrap());
        let started = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
            .count();
        eprintln!("granted {} refused {:?}", t.granted, t.refused);
        assert_eq!(started as u64, t.granted);
        // The race really happened: caps bound and channels were full. (Numbers busy on
        // another node are counted too, but not required: claims go in due order, so two
        // customers of one number rarely have calls up at once, and on a loaded machine none
        // may; the SQL in `verify` checks from the log that no calls to a number overlapped.)
        for label in ["daily_cap", "channels_full"] {
            assert!(
                t.refused.get(label).copied().unwrap_or(0) > 0,
                "{label}: {:?}",
                t.refused
            );
        }
        // Every number got exactly its two dials today (no answer was a coin toss, but three
        // customers and three attempts each leave more than two dials' worth of work).
        let per_phone: Vec<i64> =
            sqlx::query_scalar("SELECT count(*) FROM cluster_attempts GROUP BY phone")
                .fetch_all(&sqlx::PgPool::connect(&url).await.unwrap())
                .await
                .unwrap();
        assert_eq!(per_phone.len(), 100);
        assert!(per_phone.iter().all(|&n| n == 2), "{per_phone:?}");
    });
}

#[test]
fn shared_cps_spaces_dials_over_all_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("cps").unwrap();
    rt().block_on(async {
        let clock = Clock::new();
        // 40 distinct numbers, 20 calls per second over three nodes.
        setup(&url, 50, 20.0, 40, 40, clock.now()).await;
        let (nodes, _, _) = spawn_nodes(&url, clock, "n", 3, 2, 10).await;
        for n in nodes {
            tokio::time::timeout(Duration::from_secs(60), n)
                .await
                .expect("finished")
                .unwrap();
        }
        let events = verify(&url).await;
        let starts: Vec<DateTime<Utc>> = events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::AttemptStarted { .. }))
            .map(|e| e.at)
            .collect();
        assert!(starts.len() >= 40);
        let min_gap = starts
            .windows(2)
            .map(|w| (w[1] - w[0]).num_microseconds().unwrap())
            .min()
            .unwrap();
        // 1/20 s = 50 ms between any two dials, whichever nodes placed them.
        assert!(min_gap >= 50_000, "two dials {min_gap} µs apart");
        let nodes_used: std::collections::BTreeSet<_> =
            sqlx::query_scalar::<_, String>("SELECT DISTINCT node FROM cluster_attempts")
                .fetch_all(&sqlx::PgPool::connect(&url).await.unwrap())
                .await
                .unwrap()
                .into_iter()
                .collect();
        assert!(nodes_used.len() >= 2, "{nodes_used:?}");
    });
}

/// Run only as a child of `a_node_killed_mid_campaign_...`: one node's loop in its own
/// process, until it is killed.
#[test]
#[ignore = "a child process of another test"]
fn child_node() {
    let (Ok(url), Ok(node), Ok(start)) = (
        std::env::var("WAIHU_CLUSTER_URL"),
        std::env::var("WAIHU_CLUSTER_NODE"),
        std::env::var("WAIHU_CLUSTER_WALL_START"),
    ) else {
        return;
    };
    let clock = Clock {
        wall_start: Utc.timestamp_micros(start.parse().unwrap()).unwrap(),
    };
    rt().block_on(async {
        let c = Cluster::connect(&url, &node, 3).await.unwrap();
        node_loop(
            c,
            clock,
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(Tally::default())),
            chrono::Duration::seconds(3),
        )
        .await;
    });
}

#[test]
fn a_node_killed_mid_campaign_loses_its_calls_and_the_survivors_finish() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("kill").unwrap();
    rt().block_on(async {
        let clock = Clock::new();
        // Slow enough that the victim is mid-call when it dies: 1 channel-heavy campaign.
        setup(&url, 6, 1e6, 200, 200, clock.now()).await;
        // The victim: a separate process running one node.
        let mut victim = waihu_testkit::Peer(
            std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_node", "--ignored", "--nocapture"])
            .env("WAIHU_CLUSTER_URL", &url)
            .env("WAIHU_CLUSTER_NODE", "victim")
            .env(
                "WAIHU_CLUSTER_WALL_START",
                clock.wall_start.timestamp_micros().to_string(),
            )
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let watch = Cluster::connect(&url, "watch", 1).await.unwrap();
        // Wait until the victim has calls open, then SIGKILL it.
        let t0 = Instant::now();
        let open_at_kill = loop {
            let open: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM cluster_attempts WHERE node = 'victim' AND ended_us IS NULL",
            )
            .fetch_one(watch.pool())
            .await
            .unwrap();
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM cluster_attempts WHERE node = 'victim' AND ended_us IS NOT NULL",
            )
            .fetch_one(watch.pool())
            .await
            .unwrap();
            if open > 0 && done >= 10 {
                victim.0.kill().unwrap(); // SIGKILL
                victim.0.wait().unwrap();
                break open;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "victim never dialled");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        let left_open: Vec<String> = sqlx::query_scalar(
            "SELECT call_id FROM cluster_attempts WHERE node = 'victim' AND ended_us IS NULL",
        )
        .fetch_all(watch.pool())
        .await
        .unwrap();
        assert!(open_at_kill > 0 && !left_open.is_empty());
        // Two survivors; they reap the victim after 3 s of silence (long enough that a
        // survivor slowed down by a loaded machine is never taken for dead).
        let (nodes, _, _) = spawn_nodes(&url, clock, "survivor", 2, 3, 3).await;
        for n in nodes {
            tokio::time::timeout(Duration::from_secs(90), n)
                .await
                .expect("survivors finished")
                .unwrap();
        }
        let nodes = watch.nodes().await.unwrap();
        let v = nodes.iter().find(|n| n.name == "victim").unwrap();
        assert_eq!(v.state, "lost");
        assert_eq!((v.open_calls, v.leases), (0, 0));
        // The victim's open calls were ended as failed, in the log.
        let events = verify(&url).await;
        for call in &left_open {
            assert!(events.iter().any(|e| e.call.as_ref().map(|c| &c.0) == Some(call)
                && matches!(
                    e.kind,
                    EventKind::AttemptEnded {
                        outcome: CallOutcome::Failed,
                        ..
                    }
                )));
        }
        // Every contact was finished or waits for tomorrow (its number's two dials of today
        // used), none is leased: the survivors took over where the victim stopped.
        assert_eq!(due_now(&watch, clock.now()).await, 0);
        let leased: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cluster_contacts WHERE lease_node IS NOT NULL",
        )
        .fetch_one(watch.pool())
        .await
        .unwrap();
        assert_eq!(leased, 0);
        let by_survivors: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM cluster_attempts WHERE node LIKE 'survivor%'",
        )
        .fetch_one(watch.pool())
        .await
        .unwrap();
        assert!(by_survivors > 0);
        // A victim that comes back is told it was lost, and re-joins cleanly.
        let back = Cluster::connect(&url, "victim", 1).await.unwrap();
        assert_eq!(
            back.heartbeat(clock.now(), chrono::Duration::seconds(3))
                .await
                .unwrap(),
            NodeStatus::Lost
        );
        back.join(clock.now()).await.unwrap();
        assert_eq!(
            back.heartbeat(clock.now(), chrono::Duration::seconds(3))
                .await
                .unwrap(),
            NodeStatus::Up
        );
    });
}

#[test]
fn pause_reaches_every_node_within_a_second_and_the_gate_honours_it() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("control").unwrap();
    rt().block_on(async {
        let clock = Clock::new();
        setup(&url, 4, 1e6, 10, 10, clock.now()).await;
        let a = Cluster::connect(&url, "a", 2).await.unwrap();
        let b = Cluster::connect(&url, "b", 2).await.unwrap();
        a.join(clock.now()).await.unwrap();
        let mut listeners = Vec::new();
        for n in 0..3 {
            let c = Cluster::connect(&url, &format!("l{n}"), 1).await.unwrap();
            listeners.push(c.control_listener().await.unwrap());
        }
        let leases: Vec<Lease> = a
            .claim(CAMPAIGN, 2, clock.now(), chrono::Duration::seconds(30))
            .await
            .unwrap();
        assert_eq!(leases.len(), 2);
        let t = Instant::now();
        b.set_campaign_state(CAMPAIGN, "paused", "test", clock.now())
            .await
            .unwrap();
        for l in &mut listeners {
            let got = tokio::time::timeout(Duration::from_secs(1), l.recv())
                .await
                .expect("a pause reaches every node within 1 s")
                .unwrap();
            assert_eq!((got.campaign, got.state.as_str()), (CAMPAIGN, "paused"));
        }
        eprintln!("pause reached 3 listeners in {:?}", t.elapsed());
        let r = a
            .begin_attempt(&leases[0], &CallId("x1".into()), "t", None, clock.now())
            .await
            .unwrap();
        assert_eq!(r, Err(Refusal::NotStarted("paused".into())));
        b.set_campaign_state(CAMPAIGN, "started", "test", clock.now())
            .await
            .unwrap();
        let r = a
            .begin_attempt(&leases[0], &CallId("x1".into()), "t", None, clock.now())
            .await
            .unwrap();
        assert!(r.is_ok(), "{r:?}");
        // Another node cannot dial a contact leased to a; a bad state is refused by name.
        let stolen = Lease {
            ..leases[1].clone()
        };
        assert_eq!(
            b.begin_attempt(&stolen, &CallId("x2".into()), "t", None, clock.now())
                .await
                .unwrap(),
            Err(Refusal::LeaseLost)
        );
        let e = b
            .set_campaign_state(CAMPAIGN, "running", "test", clock.now())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("\"running\""), "{e}");
        // DNC added by one node stops the dial on another, and finishes the contact.
        a.add_dnc(&leases[1].phone, "客户要求", clock.now())
            .await
            .unwrap();
        assert_eq!(
            a.begin_attempt(&leases[1], &CallId("x3".into()), "t", None, clock.now())
                .await
                .unwrap(),
            Err(Refusal::Dnc)
        );
    });
}

#[test]
fn enqueue_is_idempotent_and_names_a_bad_row() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("enqueue").unwrap();
    rt().block_on(async {
        let now = Clock::base();
        let c = Cluster::connect(&url, "imp", 2).await.unwrap();
        c.upsert_campaign(
            &CampaignSpec {
                id: CAMPAIGN,
                name: "e".into(),
                channels: 1,
                cps: 1.0,
                caps: caps(),
            },
            now,
        )
        .await
        .unwrap();
        let rows = contacts(50_000, 50_000, now);
        let t = Instant::now();
        assert_eq!(c.enqueue(CAMPAIGN, &rows).await.unwrap(), 50_000);
        eprintln!(
            "COPY enqueue: {:.0} contacts/s",
            50_000.0 / t.elapsed().as_secs_f64()
        );
        assert_eq!(c.enqueue(CAMPAIGN, &rows[..10]).await.unwrap(), 0);
        let mut bad = contacts(3, 3, now);
        bad[2].tz = "Asia/Nowhere".into();
        let e = c.enqueue(CAMPAIGN, &bad).await.unwrap_err().to_string();
        assert!(e.contains("contact 3") && e.contains("tz"), "{e}");
        bad[2].tz = "Asia/Shanghai".into();
        bad[1].phone = PhoneIndex("a\tb".into());
        let e = c.enqueue(CAMPAIGN, &bad).await.unwrap_err().to_string();
        assert!(e.contains("contact 2") && e.contains("phone"), "{e}");
        // A second connect runs the migrations again without harm.
        Cluster::connect(&url, "imp2", 1).await.unwrap();
        assert_eq!(c.pending(CAMPAIGN).await.unwrap(), 50_000);
    });
}

#[test]
fn a_callback_goes_first_on_any_node_and_the_merged_log_is_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let Some(pg) = start_pg(dir.path()) else {
        return;
    };
    let url = pg.create_database("callback").unwrap();
    rt().block_on(async {
        let t0 = Clock::base();
        setup(&url, 4, 1e6, 30, 30, t0).await;
        let a = Cluster::connect(&url, "a", 2).await.unwrap();
        let b = Cluster::connect(&url, "b", 2).await.unwrap();
        let watcher = Cluster::connect(&url, "dashboard", 1).await.unwrap();
        let mut notices = watcher.event_listener().await.unwrap();
        let seen = watcher.last_event_id().await.unwrap();
        let ttl = chrono::Duration::seconds(30);
        a.join(t0).await.unwrap();
        b.join(t0).await.unwrap();
        let lease = a.claim(CAMPAIGN, 1, t0, ttl).await.unwrap().remove(0);
        assert_eq!((lease.customer, lease.callback), (CustomerId(1), None));
        let t = Instant::now();
        let att = a
            .begin_attempt(&lease, &CallId("cb1".into()), "t", None, t0)
            .await
            .unwrap()
            .unwrap();
        // The dashboard hears the dial as it commits, and reads it back with its node.
        let id = tokio::time::timeout(Duration::from_secs(1), notices.recv())
            .await
            .expect("a logged event reaches a listener within 1 s")
            .unwrap();
        eprintln!("event notice after {:?}", t.elapsed());
        let got = watcher.events_after(seen, 10).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].id, got[0].node.as_str()), (id, "a"));
        assert!(matches!(
            got[0].event.kind,
            EventKind::AttemptStarted { .. }
        ));
        // The callee asks to be called back in an hour.
        let at = t0 + chrono::Duration::hours(1);
        assert!(a
            .end_attempt(
                &att,
                CallOutcome::Answered,
                Some(200),
                20.0,
                None,
                Next::Callback(at),
                t0 + chrono::Duration::seconds(20)
            )
            .await
            .unwrap());
        // Before its time, another node gets other contacts.
        let early = b
            .claim(CAMPAIGN, 5, t0 + chrono::Duration::minutes(30), ttl)
            .await
            .unwrap();
        assert!(early.iter().all(|l| l.customer != CustomerId(1)));
        for l in &early {
            b.release(l, t0).await.unwrap();
        }
        // At its time it is the first contact any node claims, though 29 older ones are due,
        // and the lease says it is a callback.
        let first = b.claim(CAMPAIGN, 1, at, ttl).await.unwrap().remove(0);
        assert_eq!((first.customer, first.callback), (CustomerId(1), Some(at)));
        assert_eq!(first.attempts, 1);
        // Handed back unanswered, it stays a callback; called and not reached, it is not.
        b.release(&first, at).await.unwrap();
        let again = b.claim(CAMPAIGN, 1, at, ttl).await.unwrap().remove(0);
        assert_eq!(again.callback, Some(at));
        let att = b
            .begin_attempt(&again, &CallId("cb2".into()), "t", None, at)
            .await
            .unwrap()
            .unwrap();
        let retry = at + chrono::Duration::minutes(5);
        b.end_attempt(
            &att,
            CallOutcome::NoAnswer,
            Some(480),
            30.0,
            None,
            Next::RetryAt(retry),
            at + chrono::Duration::seconds(30),
        )
        .await
        .unwrap();
        let later = b.claim(CAMPAIGN, 30, retry, ttl).await.unwrap();
        let back = later.iter().find(|l| l.customer == CustomerId(1)).unwrap();
        assert_eq!((back.callback, back.attempts), (None, 2));
        assert_ne!(
            later[0].customer,
            CustomerId(1),
            "no longer ahead of the others"
        );
        // Who changed the campaign's state is on its row and in the log.
        let k = watcher.campaigns().await.unwrap().remove(0);
        assert_eq!(k.updated_by.as_deref(), Some("test"));
        let actors: Vec<_> = watcher
            .events()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|e| match e.kind {
                EventKind::CampaignState { state, actor } => Some((state, actor)),
                _ => None,
            })
            .collect();
        assert_eq!(
            actors,
            vec![("started".to_string(), Some("test".to_string()))]
        );
    });
}
