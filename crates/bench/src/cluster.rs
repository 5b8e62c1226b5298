//! `waihu bench cluster`: what the shared PostgreSQL costs a dial, and how it scales with
//! nodes. For 1, 2 and 3 nodes against one PostgreSQL (each node its own connection pool and
//! four dial workers, all in this process): every contact of a fresh campaign goes through
//! claim (`SKIP LOCKED` lease), the gate (`begin_attempt`: number lock, caps, DNC, open-call
//! check, shared channel and CPS slot, attempt row and event) and `end_attempt` — the
//! cluster's work per call, without the SIP and media a real call adds. Beside it, in the same
//! run, the single-node SQLite path: the same number of dials committed the way `waihu run`
//! commits them (`call_started_with` + `call_finished_with`, each with its event). Also the
//! `COPY` enqueue rate. PostgreSQL is started here (initdb into a temporary directory) unless
//! `--url` names one.
//!
//! The report part (`--report-calls`, 10,000,000 for the figure): a campaign with that
//! many ended calls over three nodes, and the dashboard's merged view read the way the API
//! reads it (nodes, campaigns, open calls, outcome totals: the rollups the database keeps)
//! against the same figures scanned from the attempts and contacts, in the same run.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use waihu_cluster::{CampaignSpec, Caps, Cluster, NewContact, Next};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};

use crate::{print_json, rate, runtime};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Contacts dialled per node count.
    #[arg(long, default_value_t = 20_000)]
    pub contacts: usize,
    /// Node counts to measure, comma-separated.
    #[arg(long, default_value = "1,2,3", value_delimiter = ',')]
    pub nodes: Vec<usize>,
    /// Dial workers per node.
    #[arg(long, default_value_t = 4)]
    pub workers: usize,
    /// A PostgreSQL server URL without the database (`postgres://user@host:port`); each
    /// measurement creates its own database there. Default: start one here.
    #[arg(long, env = "WAIHU_BENCH_PG_URL")]
    pub url: Option<String>,
    /// Ended calls stored for the report latency measurement (0 skips it).
    #[arg(long, default_value_t = 1_000_000)]
    pub report_calls: usize,
    #[arg(long)]
    pub json: bool,
}

/// The dashboard's merged view over a campaign with `calls` stored calls.
#[derive(Debug, Serialize)]
pub struct ReportRun {
    pub calls: usize,
    pub fill_s: f64,
    /// `GET /api/cluster`'s reads (rollups), per request.
    pub rollup_p50_ms: f64,
    pub rollup_p95_ms: f64,
    /// The same totals scanned from the attempts and contacts.
    pub scan_p50_ms: f64,
    /// The rollup and the scan agree.
    pub agree: bool,
    /// `GET /api/cluster/kpis` (30 days of the hourly KPI cells the merged log's trigger
    /// keeps), per request.
    pub kpi_rollup_p50_ms: f64,
    /// The same cells computed from the merged log's events.
    pub kpi_scan_p50_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct NodeRun {
    pub nodes: usize,
    pub dials: u64,
    pub seconds: f64,
    pub dials_per_s: f64,
    /// Gate refusals seen (paced, busy...): retried work, not errors.
    pub refusals: u64,
}

#[derive(Debug, Serialize)]
pub struct Results {
    pub contacts: usize,
    pub enqueue_per_s: f64,
    pub runs: Vec<NodeRun>,
    pub sqlite_dials_per_s: f64,
    pub report: Option<ReportRun>,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap()
}

fn contacts(n: usize) -> Vec<NewContact> {
    (0..n)
        .map(|i| NewContact {
            customer: CustomerId(i as i64 + 1),
            phone: PhoneIndex(format!("{:064x}", i as u64 * 0x9E37_79B9_7F4A_7C15)),
            tz: "Asia/Shanghai".into(),
            due: t0(),
        })
        .collect()
}

struct Server {
    base: String,
    _pg: Option<(waihu_testkit::postgres::Postgres, tempfile::TempDir)>,
    created: u32,
}

impl Server {
    fn start(url: Option<&str>) -> anyhow::Result<Server> {
        if let Some(u) = url {
            return Ok(Server {
                base: u.trim_end_matches('/').to_string(),
                _pg: None,
                created: 0,
            });
        }
        let dir = tempfile::tempdir()?;
        let pg = waihu_testkit::postgres::Postgres::start(dir.path()).map_err(|e| {
            anyhow::anyhow!("starting PostgreSQL (scripts/setup.sh installs it): {e}")
        })?;
        Ok(Server {
            base: format!("postgres://waihu@127.0.0.1:{}", pg.port),
            _pg: Some((pg, dir)),
            created: 0,
        })
    }

    async fn fresh_database(&mut self) -> anyhow::Result<String> {
        self.created += 1;
        let name = format!("waihu_bench_{}_{}", std::process::id(), self.created);
        let admin = sqlx::PgPool::connect(&format!("{}/postgres", self.base)).await?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await?;
        admin.close().await;
        Ok(format!("{}/{name}", self.base))
    }
}

const CAMPAIGN: CampaignId = CampaignId(1);

async fn run_nodes(url: &str, nodes: usize, workers: usize, n: usize) -> anyhow::Result<NodeRun> {
    let setup = Cluster::connect(url, "setup", 2).await?;
    setup
        .upsert_campaign(
            &CampaignSpec {
                id: CAMPAIGN,
                name: "bench".into(),
                channels: 100_000,
                cps: 1e9,
                caps: Caps {
                    per_day: Some(2),
                    per_week: Some(5),
                    max_attempts: 3,
                },
            },
            t0(),
        )
        .await?;
    setup.enqueue(CAMPAIGN, &contacts(n)).await?;
    setup
        .set_campaign_state(CAMPAIGN, "started", "bench", t0())
        .await?;
    setup.close().await;
    let dials = Arc::new(AtomicU64::new(0));
    let refusals = Arc::new(AtomicU64::new(0));
    // Virtual time advancing one microsecond per gate call: every dial gets its own CPS slot.
    let tick = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for node in 0..nodes {
        let c = Cluster::connect(url, &format!("bench{node}"), workers as u32 + 1).await?;
        c.join(t0()).await?;
        for w in 0..workers {
            let (c, dials, refusals, tick) =
                (c.clone(), dials.clone(), refusals.clone(), tick.clone());
            tasks.spawn(async move {
                let now = || {
                    t0() + chrono::Duration::microseconds(
                        tick.fetch_add(1, Ordering::Relaxed) as i64
                    )
                };
                let mut seq = 0u64;
                loop {
                    let leases = c
                        .claim(CAMPAIGN, 16, now(), chrono::Duration::seconds(60))
                        .await?;
                    if leases.is_empty() {
                        return anyhow::Ok(());
                    }
                    for l in leases {
                        seq += 1;
                        let call = CallId(format!("{}-{w}-{seq}", c.node()));
                        match c.begin_attempt(&l, &call, "bench", None, now()).await? {
                            Ok(a) => {
                                c.end_attempt(
                                    &a,
                                    CallOutcome::Answered,
                                    Some(200),
                                    0.0,
                                    Some(EventKind::ConversationEnded {
                                        outcome: "confirmed".into(),
                                        level: Some("A".into()),
                                        path: Vec::new(),
                                    }),
                                    Next::Done,
                                    now(),
                                )
                                .await?;
                                dials.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                refusals.fetch_add(1, Ordering::Relaxed);
                                c.release(&l, now()).await?;
                            }
                        }
                    }
                }
            });
        }
    }
    let progress = {
        let dials = dials.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let d = dials.load(Ordering::Relaxed) as usize;
                let s = started.elapsed().as_secs_f64();
                let r = rate(d, s);
                eprintln!(
                    "  {nodes} node(s): {d}/{n} dials, {r:.0}/s, ETA {:.0} s",
                    (n.saturating_sub(d)) as f64 / r.max(1.0)
                );
            }
        })
    };
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    progress.abort();
    let seconds = started.elapsed().as_secs_f64();
    let d = dials.load(Ordering::Relaxed);
    anyhow::ensure!(d as usize == n, "{d} of {n} contacts dialled");
    Ok(NodeRun {
        nodes,
        dials: d,
        seconds,
        dials_per_s: rate(d as usize, seconds),
        refusals: refusals.load(Ordering::Relaxed),
    })
}

const OUTCOMES: &str = "ARRAY['answered','no_answer','busy','failed','rejected']";

/// The milliseconds of `runs` calls of `f` (each returns its own time and a result).
async fn times<T, F, Fut>(c: &Cluster, runs: usize, f: F) -> anyhow::Result<Vec<f64>>
where
    F: Fn(Cluster) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(f64, T)>>,
{
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        v.push(f(c.clone()).await?.0);
    }
    Ok(v)
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// Fills a campaign with `n` ended calls (server-side, in batches with progress) and times
/// the merged view's reads against scans of the same figures.
async fn report_latency(url: &str, n: usize) -> anyhow::Result<ReportRun> {
    let c = Cluster::connect(url, "report", 2).await?;
    let k = CampaignId(2);
    c.upsert_campaign(
        &CampaignSpec {
            id: k,
            name: "report".into(),
            channels: 1000,
            cps: 100.0,
            caps: Caps {
                per_day: Some(2),
                per_week: None,
                max_attempts: 3,
            },
        },
        t0(),
    )
    .await?;
    for node in ["node0", "node1", "node2"] {
        Cluster::connect(url, node, 1).await?.join(t0()).await?;
    }
    let started = Instant::now();
    let batch = 500_000usize;
    let mut done = 0usize;
    while done < n {
        let (from, to) = (done as i64 + 1, (done + batch).min(n) as i64);
        // A tenth still pending; every contact called once, ended 30 s after it started.
        sqlx::query(
            "INSERT INTO cluster_contacts (campaign, customer, phone, tz, state, next_us, attempts)
             SELECT $1, g, 'r' || g, 'Asia/Shanghai',
                    CASE WHEN g % 10 = 0 THEN 'pending' ELSE 'done' END, $2, 1
             FROM generate_series($3::bigint, $4::bigint) g",
        )
        .bind(k.0)
        .bind(t0().timestamp_micros())
        .bind(from)
        .bind(to)
        .execute(c.pool())
        .await?;
        sqlx::query(&format!(
            "INSERT INTO cluster_attempts (campaign, customer, phone, node, call_id, started_us, ended_us, outcome)
             SELECT $1, g, 'r' || g, 'node' || (g % 3), 'r-' || g, $2 + g * 1000, $2 + g * 1000 + 30000000,
                    ({OUTCOMES})[1 + g % 5]
             FROM generate_series($3::bigint, $4::bigint) g"
        ))
        .bind(k.0)
        .bind(t0().timestamp_micros())
        .bind(from)
        .bind(to)
        .execute(c.pool())
        .await?;
        // Their merged log as the nodes write it: each call's attempt_ended, and an answered
        // call's conversation_ended (every other one confirmed at level A). The KPI trigger
        // counts each row as it goes in.
        sqlx::query(&format!(
            "INSERT INTO cluster_events (at_us, node, event)
             SELECT e.at_us, 'node' || (e.g % 3), json_build_object(
                      'at', to_char(to_timestamp(e.at_us / 1e6) AT TIME ZONE 'UTC',
                                    'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),
                      'campaign', $1::bigint, 'customer', e.g, 'call', 'r-' || e.g, 'kind', e.kind)::text
             FROM (SELECT g, $2 + g * 1000 + 30000000 AS at_us,
                          json_build_object('type', 'attempt_ended', 'outcome', ({OUTCOMES})[1 + g % 5],
                                            'duration_s', 30.0) AS kind
                   FROM generate_series($3::bigint, $4::bigint) g
                   UNION ALL
                   SELECT g, $2 + g * 1000 + 30000000,
                          json_build_object('type', 'conversation_ended',
                                            'outcome', CASE WHEN g % 2 = 0 THEN 'confirmed' ELSE 'declined' END,
                                            'level', CASE WHEN g % 2 = 0 THEN 'A' END, 'path', '[]'::json)
                   FROM generate_series($3::bigint, $4::bigint) g WHERE g % 5 = 0) e"
        ))
        .bind(k.0)
        .bind(t0().timestamp_micros())
        .bind(from)
        .bind(to)
        .execute(c.pool())
        .await?;
        done = to as usize;
        let s = started.elapsed().as_secs_f64();
        let r = rate(done, s);
        eprintln!(
            "  report fill: {done}/{n} calls, {r:.0}/s, ETA {:.0} s",
            (n - done) as f64 / r.max(1.0)
        );
    }
    // The outcome rollup as the trigger would have kept it call by call (the fill inserts
    // ended calls in bulk, which the end-of-call trigger does not see).
    sqlx::query(
        "INSERT INTO cluster_outcomes SELECT campaign, node, outcome, count(*) FROM cluster_attempts
         WHERE campaign = $1 GROUP BY campaign, node, outcome",
    )
    .bind(k.0)
    .execute(c.pool())
    .await?;
    sqlx::query("ANALYZE").execute(c.pool()).await?;
    let fill_s = started.elapsed().as_secs_f64();
    // Warm both paths once, then time them.
    let view = |c: Cluster| async move {
        let t = Instant::now();
        let nodes = c.nodes().await?;
        let campaigns = c.campaigns().await?;
        let live = c.live_calls().await?;
        let outcomes = c.outcomes().await?;
        anyhow::Ok((
            t.elapsed().as_secs_f64() * 1e3,
            (nodes, campaigns, live, outcomes),
        ))
    };
    let scan = |c: Cluster| async move {
        let t = Instant::now();
        let outcomes: Vec<(i64, String, String, i64)> = sqlx::query_as(
            "SELECT campaign, node, outcome, count(*) FROM cluster_attempts
             WHERE ended_us IS NOT NULL GROUP BY campaign, node, outcome ORDER BY 1, 2, 3",
        )
        .fetch_all(c.pool())
        .await?;
        let counts: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT campaign, count(*) FILTER (WHERE state = 'pending'),
                    count(*) FILTER (WHERE state = 'done')
             FROM cluster_contacts GROUP BY campaign ORDER BY campaign",
        )
        .fetch_all(c.pool())
        .await?;
        anyhow::Ok((t.elapsed().as_secs_f64() * 1e3, (outcomes, counts)))
    };
    let (_, (_, campaigns, _, outcomes)) = view(c.clone()).await?;
    let (_, (scanned, counts)) = scan(c.clone()).await?;
    let rolled: Vec<(i64, String, String, i64)> = outcomes
        .into_iter()
        .map(|o| (o.campaign, o.node, o.outcome, o.count))
        .collect();
    let agree = rolled == scanned
        && counts
            == campaigns
                .iter()
                .filter(|k| k.pending + k.done > 0)
                .map(|k| (k.id, k.pending, k.done))
                .collect::<Vec<_>>();
    let mut fast = times(&c, 20, view).await?;
    let mut slow = times(&c, 3, scan).await?;
    // The cluster's KPI report: the rollup the API folds, against the same cells from the log.
    let (from, to) = (
        t0() - chrono::Duration::days(29),
        t0() + chrono::Duration::days(1),
    );
    let kpi = |c: Cluster| async move {
        let t = Instant::now();
        let rows = c.kpi_rollup(from, to, Some(k)).await?;
        anyhow::Ok((t.elapsed().as_secs_f64() * 1e3, rows))
    };
    let kpi_scan = |c: Cluster| async move {
        let t = Instant::now();
        let rows: Vec<(i64, String, String, i64, f64)> = sqlx::query_as(
            "SELECT c.hour_us / 86400000000, c.metric, c.key, count(*), sum(c.sum)
             FROM cluster_events e, LATERAL cluster_kpi_cells(e.at_us, e.event) c
             WHERE e.at_us >= $1 AND e.at_us < $2 AND c.campaign = $3
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .bind(from.timestamp_micros())
        .bind(to.timestamp_micros())
        .bind(k.0)
        .fetch_all(c.pool())
        .await?;
        anyhow::Ok((t.elapsed().as_secs_f64() * 1e3, rows))
    };
    let (_, rolled) = kpi(c.clone()).await?;
    let (_, scanned) = kpi_scan(c.clone()).await?;
    let kpi_agree = rolled.len() == scanned.len()
        && rolled.iter().zip(&scanned).all(|(r, (_, m, key, n, sum))| {
            (&r.metric, &r.key, r.n) == (m, key, *n) && (r.sum - sum).abs() < 1e-3 * sum.max(1.0)
        })
        && rolled
            .iter()
            .filter(|r| r.metric == "attempt")
            .map(|r| r.n)
            .sum::<i64>()
            == n as i64;
    let mut kpi_fast = times(&c, 20, kpi).await?;
    let mut kpi_slow = times(&c, 3, kpi_scan).await?;
    c.close().await;
    Ok(ReportRun {
        calls: n,
        fill_s,
        rollup_p50_ms: percentile(&mut fast, 0.5),
        rollup_p95_ms: percentile(&mut fast, 0.95),
        scan_p50_ms: percentile(&mut slow, 0.5),
        agree: agree && kpi_agree,
        kpi_rollup_p50_ms: percentile(&mut kpi_fast, 0.5),
        kpi_scan_p50_ms: percentile(&mut kpi_slow, 0.5),
    })
}

/// The single-node baseline: each dial's start and end committed as `waihu run` does.
async fn sqlite_dials(n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let store = waihu_store::Store::open(dir.path()).await?;
    let started = Instant::now();
    for i in 0..n {
        let at = t0() + chrono::Duration::microseconds(i as i64);
        let call = CallId(format!("s-{i}"));
        let ev = |kind| Event {
            at,
            customer: Some(CustomerId(i as i64 + 1)),
            campaign: Some(CAMPAIGN),
            call: Some(call.clone()),
            kind,
        };
        store
            .call_started_with(
                &waihu_store::CallStart {
                    call_id: call.clone(),
                    campaign: Some(CAMPAIGN),
                    customer: Some(CustomerId(i as i64 + 1)),
                    script: "bench".into(),
                    lang: "zh".into(),
                    at,
                },
                &[ev(EventKind::AttemptStarted {
                    phone: PhoneIndex(format!("{i:064x}")),
                    tz: "Asia/Shanghai".into(),
                    local_time: at.with_timezone(&chrono_tz::Asia::Shanghai).to_rfc3339(),
                    caller_id: None,
                    channel: "voice".into(),
                })],
            )
            .await?;
        store
            .call_finished_with(
                &call,
                &waihu_store::CallFinish {
                    at,
                    outcome: CallOutcome::Answered,
                    sip_status: Some(200),
                    duration_s: 0.0,
                    business_outcome: None,
                    level: None,
                    path: vec![],
                    path_variants: vec![],
                    recording: None,
                    quality: None,
                },
                &[ev(EventKind::AttemptEnded {
                    outcome: CallOutcome::Answered,
                    sip_status: Some(200),
                    duration_s: 0.0,
                })],
            )
            .await?;
    }
    Ok(rate(n, started.elapsed().as_secs_f64()))
}

pub fn measure(a: &Args) -> anyhow::Result<Results> {
    anyhow::ensure!(
        a.contacts > 0 && a.workers > 0,
        "--contacts and --workers must be positive"
    );
    anyhow::ensure!(
        !a.nodes.is_empty() && a.nodes.iter().all(|&n| (1..=16).contains(&n)),
        "--nodes: 1 to 16 each"
    );
    let mut server = Server::start(a.url.as_deref())?;
    runtime()?.block_on(async {
        let url = server.fresh_database().await?;
        let c = Cluster::connect(&url, "enqueue", 2).await?;
        c.upsert_campaign(
            &CampaignSpec {
                id: CAMPAIGN,
                name: "enqueue".into(),
                channels: 1,
                cps: 1.0,
                caps: Caps {
                    per_day: None,
                    per_week: None,
                    max_attempts: 1,
                },
            },
            t0(),
        )
        .await?;
        let rows = contacts(a.contacts.max(100_000));
        let t = Instant::now();
        c.enqueue(CAMPAIGN, &rows).await?;
        let enqueue_per_s = rate(rows.len(), t.elapsed().as_secs_f64());
        c.close().await;
        eprintln!(
            "enqueue (COPY): {} contacts, {enqueue_per_s:.0}/s",
            rows.len()
        );
        let mut runs = Vec::new();
        for &nodes in &a.nodes {
            let url = server.fresh_database().await?;
            let r = run_nodes(&url, nodes, a.workers, a.contacts).await?;
            eprintln!(
                "{nodes} node(s): {} dials in {:.1} s, {:.0} dials/s ({} refusals retried)",
                r.dials, r.seconds, r.dials_per_s, r.refusals
            );
            runs.push(r);
        }
        let sqlite = sqlite_dials(a.contacts).await?;
        eprintln!("1 SQLite node (baseline): {sqlite:.0} dials/s");
        let report = if a.report_calls > 0 {
            let url = server.fresh_database().await?;
            let r = report_latency(&url, a.report_calls).await?;
            anyhow::ensure!(
                r.agree,
                "the rollups disagree with a scan of the same calls"
            );
            eprintln!(
                "report over {} calls: rollups p50 {:.2} ms, scan p50 {:.0} ms",
                r.calls, r.rollup_p50_ms, r.scan_p50_ms
            );
            Some(r)
        } else {
            None
        };
        Ok(Results {
            contacts: a.contacts,
            enqueue_per_s,
            runs,
            sqlite_dials_per_s: sqlite,
            report,
        })
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let r = measure(&a)?;
    if a.json {
        return print_json(&r);
    }
    println!(
        "cluster gate (claim + begin_attempt + end_attempt), {} contacts:",
        r.contacts
    );
    println!(
        "  enqueue (COPY)          {:>10.0} contacts/s",
        r.enqueue_per_s
    );
    for run in &r.runs {
        println!(
            "  {} node(s), PostgreSQL   {:>10.0} dials/s  ({:.2}× one SQLite node)",
            run.nodes,
            run.dials_per_s,
            run.dials_per_s / r.sqlite_dials_per_s
        );
    }
    println!(
        "  1 node, SQLite (baseline) {:>8.0} dials/s",
        r.sqlite_dials_per_s
    );
    if let Some(rep) = &r.report {
        println!(
            "dashboard merged view over {} stored calls (filled in {:.0} s):",
            rep.calls, rep.fill_s
        );
        println!(
            "  rollups (GET /api/cluster)  p50 {:>9.2} ms  p95 {:.2} ms",
            rep.rollup_p50_ms, rep.rollup_p95_ms
        );
        println!(
            "  scan of the same figures    p50 {:>9.0} ms  ({:.0}× slower)",
            rep.scan_p50_ms,
            rep.scan_p50_ms / rep.rollup_p50_ms.max(1e-6)
        );
        println!(
            "  KPIs (GET /api/cluster/kpis, 30 days) p50 {:>7.2} ms; from the merged log p50 {:.0} ms ({:.0}× slower)",
            rep.kpi_rollup_p50_ms,
            rep.kpi_scan_p50_ms,
            rep.kpi_scan_p50_ms / rep.kpi_rollup_p50_ms.max(1e-6)
        );
    }
    Ok(())
}
