//! `waihu bench api`'s workload and timing: a month of synthetic attempts in a
//! fresh store, then the dashboard's KPI and heat-map pages timed three ways — the rollup the API
//! uses, the same aggregate in SQL straight over the event log, and a full
//! scan of decoded events in Rust — checked to agree, p50 over several runs.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};
use waihu_store::{metric, KpiRow, LocalHourRow, Store};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenSpec {
    pub attempts: usize,
    /// Calls, for [`generate_calls`].
    pub calls: usize,
    pub days: u32,
    /// UTC midnight of the first day.
    pub start: DateTime<Utc>,
    pub seed: u64,
}

const OFFSET_H: i64 = 8; // callees in Asia/Shanghai (UTC+8, no DST)

/// Answer probability by callee-local hour and weekday (0 = Monday): low at
/// lunch, higher in the evening and at weekends.
fn answer_p(hour: u32, weekday: u32) -> f64 {
    let h = match hour {
        9..=11 => 0.36,
        12..=13 => 0.22,
        14..=17 => 0.33,
        18..=20 => 0.48,
        _ => 0.15,
    };
    if weekday >= 5 {
        h + 0.07
    } else {
        h
    }
}

const FAILS: [(CallOutcome, u32); 7] = [
    (CallOutcome::NoAnswer, 45),
    (CallOutcome::Busy, 15),
    (CallOutcome::PoweredOff, 15),
    (CallOutcome::Rejected, 8),
    (CallOutcome::InvalidNumber, 5),
    (CallOutcome::Congestion, 4),
    (CallOutcome::Failed, 8),
];
const CONVERSATIONS: [(&str, u32); 4] = [
    ("confirmed", 40),
    ("refused", 35),
    ("callback", 15),
    ("no_intent", 10),
];
const LEVELS: [&str; 4] = ["A", "B", "C", "D"];

fn pick<T: Copy>(rng: &mut StdRng, table: &[(T, u32)]) -> T {
    let total: u32 = table.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (v, w) in table {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    table[table.len() - 1].0
}

/// Events of attempts `range` (in time order within it): attempt_started and
/// attempt_ended per attempt, call_abandoned for some answered calls,
/// conversation_ended for the others. Deterministic for a seed.
pub fn generate(spec: &GenSpec, range: std::ops::Range<usize>) -> Vec<Event> {
    let mut rng =
        StdRng::seed_from_u64(spec.seed ^ (range.start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut out = Vec::with_capacity(range.len() * 3);
    // Dial from 09:00 to 21:00 local, spread evenly over the days.
    let window_s = 12 * 3600;
    let total_s = spec.days as i64 * window_s;
    for i in range {
        let t = (i as i128 * total_s as i128 / spec.attempts.max(1) as i128) as i64;
        let (day, in_day) = (t / window_s, t % window_s);
        let local_s = day * 86400 + 9 * 3600 + in_day;
        let at = spec.start + chrono::Duration::seconds(local_s - OFFSET_H * 3600);
        let local = at + chrono::Duration::hours(OFFSET_H);
        let (hour, weekday) = (local.hour(), local.weekday().num_days_from_monday());
        let customer = CustomerId(rng.gen_range(1..=200_000));
        let campaign = CampaignId(1 + (i % 3) as i64);
        let call = CallId(format!("b{i}"));
        let phone = PhoneIndex(format!("{:032x}", rng.gen::<u128>()));
        out.push(Event {
            at,
            customer: Some(customer),
            campaign: Some(campaign),
            call: Some(call.clone()),
            kind: EventKind::AttemptStarted {
                phone: phone.clone(),
                tz: "Asia/Shanghai".into(),
                local_time: format!("{}+08:00", local.format("%Y-%m-%dT%H:%M:%S")),
                caller_id: None,
                channel: "voice".into(),
            },
        });
        let connected = rng.gen_bool(answer_p(hour, weekday));
        let outcome = if connected {
            if rng.gen_bool(0.12) {
                CallOutcome::Voicemail
            } else {
                CallOutcome::Answered
            }
        } else {
            pick(&mut rng, &FAILS)
        };
        let abandoned = outcome == CallOutcome::Answered && rng.gen_bool(0.03);
        let dur = match outcome {
            CallOutcome::Answered if abandoned => rng.gen_range(1.0..4.0),
            CallOutcome::Answered => rng.gen_range(20.0..240.0),
            CallOutcome::Voicemail => rng.gen_range(15.0..40.0),
            CallOutcome::NoAnswer => rng.gen_range(25.0..45.0),
            _ => rng.gen_range(0.0..8.0),
        };
        let dur = (dur * 10.0f64).round() / 10.0;
        let end = at + chrono::Duration::milliseconds((dur * 1000.0) as i64 + 3000);
        if abandoned {
            out.push(Event {
                at: at + chrono::Duration::seconds(3),
                customer: Some(customer),
                campaign: Some(campaign),
                call: Some(call.clone()),
                kind: EventKind::CallAbandoned { phone },
            });
        }
        out.push(Event {
            at: end,
            customer: Some(customer),
            campaign: Some(campaign),
            call: Some(call.clone()),
            kind: EventKind::AttemptEnded {
                outcome,
                sip_status: Some(if connected { 200 } else { 486 }),
                duration_s: dur,
            },
        });
        if outcome == CallOutcome::Answered && !abandoned {
            let result = pick(&mut rng, &CONVERSATIONS);
            out.push(Event {
                at: end,
                customer: Some(customer),
                campaign: Some(campaign),
                call: Some(call),
                kind: EventKind::ConversationEnded {
                    outcome: result.into(),
                    level: Some(LEVELS[rng.gen_range(0..LEVELS.len())].into()),
                    path: vec!["greeting".into(), "confirm".into()],
                },
            });
        }
    }
    out
}

/// The rollups computed from decoded events in Rust: the oracle for tests and
/// the full-scan baseline. KPI rows for events in `[from, to)` (UTC), local
/// rows for attempts whose callee-local date is in `[lfrom, lto]`.
pub fn aggregate(
    events: &[(i64, Event)],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    lfrom: NaiveDate,
    lto: NaiveDate,
) -> (Vec<KpiRow>, Vec<LocalHourRow>) {
    let mut kpi: BTreeMap<(NaiveDate, &'static str, String), (i64, f64)> = BTreeMap::new();
    let mut started: HashMap<&str, &str> = HashMap::new();
    let mut local: BTreeMap<(NaiveDate, u32, String), i64> = BTreeMap::new();
    let hour = |t: DateTime<Utc>| {
        t.with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(t)
    };
    let (from, to) = (hour(from), hour(to));
    for (_, e) in events {
        let in_range = e.at >= from && e.at < to;
        let day = e.at.date_naive();
        match &e.kind {
            EventKind::AttemptStarted { local_time, .. } => {
                if let Some(c) = &e.call {
                    started.insert(c.as_str(), local_time);
                }
            }
            EventKind::AttemptEnded {
                outcome,
                duration_s,
                ..
            } => {
                if in_range {
                    let c = kpi
                        .entry((day, metric::ATTEMPT, outcome.as_str().into()))
                        .or_default();
                    c.0 += 1;
                    c.1 += duration_s;
                }
                let lt = e.call.as_ref().and_then(|c| started.get(c.as_str()));
                if let Some(lt) = lt.filter(|lt| lt.len() >= 13) {
                    let d = lt
                        .get(..10)
                        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
                    let h = lt.get(11..13).and_then(|h| h.parse::<u32>().ok());
                    if let (Some(d), Some(h)) = (d, h) {
                        if d >= lfrom && d <= lto {
                            *local.entry((d, h, outcome.as_str().into())).or_default() += 1;
                        }
                    }
                }
            }
            EventKind::CallAbandoned { .. } if in_range => {
                kpi.entry((day, metric::ABANDONED, String::new()))
                    .or_default()
                    .0 += 1
            }
            EventKind::ConversationEnded { outcome, level, .. } if in_range => {
                kpi.entry((day, metric::CONVERSATION, outcome.clone()))
                    .or_default()
                    .0 += 1;
                if let Some(l) = level {
                    kpi.entry((day, metric::LEVEL, l.clone())).or_default().0 += 1;
                }
            }
            _ => {}
        }
    }
    let kpi = kpi
        .into_iter()
        .map(|((day, m, key), (n, sum))| KpiRow {
            day,
            metric: m.into(),
            key,
            n,
            sum,
        })
        .collect();
    let local = local
        .into_iter()
        .map(|((local_date, hour, outcome), n)| LocalHourRow {
            local_date,
            hour,
            outcome,
            n,
        })
        .collect();
    (kpi, local)
}

#[derive(Debug, Clone, Serialize)]
pub struct Timing {
    pub what: String,
    pub p50_ms: f64,
    pub min_ms: f64,
    pub runs: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub attempts: usize,
    pub events: i64,
    pub load_s: f64,
    pub load_events_per_s: f64,
    pub db_bytes: u64,
    pub timings: Vec<Timing>,
    /// The three methods gave identical KPI and heat-map rows.
    pub agree: bool,
    pub connect_rate: Option<f64>,
}

fn timing(what: &str, mut v: Vec<Duration>) -> Timing {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Timing {
        what: what.into(),
        p50_ms: ms(v[v.len() / 2]),
        min_ms: ms(v[0]),
        runs: v.len(),
    }
}

fn same_kpis(a: &[KpiRow], b: &[KpiRow]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.day == y.day
                && x.metric == y.metric
                && x.key == y.key
                && x.n == y.n
                && (x.sum - y.sum).abs() < 1e-6 * x.sum.abs().max(1.0)
        })
}

/// Fill `dir` (a fresh data directory) and time the pages. `progress` gets a
/// line now and then.
pub async fn run(
    dir: &std::path::Path,
    attempts: usize,
    runs: usize,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport, Box<dyn std::error::Error + Send + Sync>> {
    let store = Store::open(dir).await?;
    let start = Utc
        .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
        .single()
        .ok_or("start date")?;
    let spec = GenSpec {
        attempts,
        calls: 0,
        days: 30,
        start,
        seed: 42,
    };
    let t0 = Instant::now();
    let chunk = 20_000;
    let mut i = 0;
    while i < attempts {
        let evs = generate(&spec, i..(i + chunk).min(attempts));
        store.append_events_bulk(&evs, evs.len()).await?;
        i += chunk;
        if i % 200_000 == 0 {
            progress(&format!(
                "  loaded {i} attempts ({:.0} s)",
                t0.elapsed().as_secs_f64()
            ));
        }
    }
    let load_s = t0.elapsed().as_secs_f64();
    let events = store.last_event_id().await?;
    let from_day = start.date_naive();
    let to_day = from_day
        .checked_add_days(Days::new(spec.days as u64 - 1))
        .ok_or("range")?;
    let from = start;
    let to = start + chrono::Duration::days(spec.days as i64);
    let conv = waihu_server::Config::default().conversion_outcomes;
    let runs = runs.max(1);
    let mut timings = Vec::new();

    // The API's way: rollup tables, through the HTTP server.
    let key_store = store.clone();
    let (key, _) = waihu_server::auth::create_key(
        &key_store,
        "bench",
        waihu_server::auth::Role::Analyst,
        Utc::now(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(waihu_server::serve(
        listener,
        store.clone(),
        waihu_server::Config::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::new();
    for (name, path) in [
        ("kpi page, HTTP (rollup)", "kpis"),
        ("heat-map page, HTTP (rollup)", "heatmap"),
    ] {
        let url = format!("http://{addr}/api/{path}?from={from_day}&to={to_day}");
        let mut v = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let r = client.get(&url).bearer_auth(&key).send().await?;
            if !r.status().is_success() {
                return Err(format!("{url}: HTTP {}", r.status()).into());
            }
            let _body = r.bytes().await?;
            v.push(t.elapsed());
        }
        timings.push(timing(name, v));
    }
    let _ = stop_tx.send(());
    let _ = server.await;

    let mut v = Vec::new();
    let mut rollup = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        rollup = store.kpi_rollup(from, to, None).await?;
        let _ = waihu_server::kpi::fold(&rollup, from_day, to_day, &conv);
        v.push(t.elapsed());
    }
    timings.push(timing("kpis: rollup query + fold", v));
    let mut v = Vec::new();
    let mut lrollup = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        lrollup = store.local_hour_rollup(from_day, to_day, None).await?;
        let _ = waihu_server::kpi::heat(&lrollup);
        v.push(t.elapsed());
    }
    timings.push(timing("heat map: rollup query", v));

    progress("  baseline: SQL over the event log");
    let base_runs = runs.min(3);
    let mut v = Vec::new();
    let mut from_log = Vec::new();
    for _ in 0..base_runs {
        let t = Instant::now();
        from_log = store.kpi_from_log(from, to, None).await?;
        v.push(t.elapsed());
    }
    timings.push(timing("kpis: SQL json_extract over events (baseline)", v));
    let mut v = Vec::new();
    let mut lfrom_log = Vec::new();
    for _ in 0..base_runs {
        let t = Instant::now();
        lfrom_log = store.local_hour_from_log(from_day, to_day, None).await?;
        v.push(t.elapsed());
    }
    timings.push(timing("heat map: SQL join over events (baseline)", v));

    progress("  baseline: full scan of decoded events in Rust");
    let t = Instant::now();
    let mut all = Vec::with_capacity(events as usize);
    let mut after = 0;
    loop {
        let page = store.events(after, 50_000).await?;
        let Some((last, _)) = page.last() else { break };
        after = *last;
        all.extend(page);
    }
    let (scan_kpi, scan_local) = aggregate(&all, from, to, from_day, to_day);
    let _ = waihu_server::kpi::fold(&scan_kpi, from_day, to_day, &conv);
    let _ = waihu_server::kpi::heat(&scan_local);
    timings.push(timing(
        "kpis + heat map: decode all events in Rust (baseline)",
        vec![t.elapsed()],
    ));
    drop(all);

    let agree = same_kpis(&rollup, &from_log)
        && same_kpis(&rollup, &scan_kpi)
        && lrollup == lfrom_log
        && lrollup == scan_local;
    let (totals, _) = waihu_server::kpi::fold(&rollup, from_day, to_day, &conv);
    let db_bytes = ["waihu.db", "waihu.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    store.close().await;
    Ok(BenchReport {
        attempts,
        events,
        load_s,
        load_events_per_s: events as f64 / load_s,
        db_bytes,
        timings,
        agree,
        connect_rate: totals.connect_rate,
    })
}

/// The script states of the call benchmark, in order, with the chance a call
/// goes on from each (the fee explanation loses 37%, as in the bank story).
const BENCH_STATES: [(&str, f64); 6] = [
    ("opening", 0.92),
    ("verify", 0.88),
    ("offer", 0.85),
    ("fee_explain", 0.63),
    ("confirm", 0.0),
    ("objection", 0.75),
];
const BENCH_INTENTS: [(&str, u32); 6] = [
    ("affirm", 50),
    ("deny", 15),
    ("ask_price", 12),
    ("busy", 8),
    ("request_human", 5),
    ("unknown", 10),
];
const BENCH_SCRIPTS: [&str; 2] = ["order_confirmation.zh", "payment_reminder.zh"];

/// Calls `range` of a synthetic history: a path through [`BENCH_STATES`]
/// (with a detour through `objection` now and then), up to three callee
/// turns with intents, emotions and voice features, and the outcome.
/// Deterministic for a seed.
pub fn generate_calls(
    spec: &GenSpec,
    range: std::ops::Range<usize>,
) -> Vec<(
    waihu_store::CallStart,
    Vec<waihu_store::TurnRecord>,
    waihu_store::CallFinish,
)> {
    use waihu_store::{CallFinish, CallStart, Speaker, TurnRecord, VoiceFeatures};
    let mut rng =
        StdRng::seed_from_u64(spec.seed ^ (range.start as u64).wrapping_mul(0xD1B5_4A32_D192_ED03));
    let total_s = spec.days as i64 * 86400;
    let mut out = Vec::with_capacity(range.len());
    for i in range {
        let at = spec.start
            + chrono::Duration::seconds(
                (i as i128 * total_s as i128 / spec.calls.max(1) as i128) as i64,
            );
        let mut path: Vec<String> = Vec::new();
        for (k, (state, go_on)) in BENCH_STATES[..5].iter().enumerate() {
            path.push(state.to_string());
            if k == 2 && rng.gen_bool(0.1) {
                path.push(BENCH_STATES[5].0.into());
                if !rng.gen_bool(BENCH_STATES[5].1) {
                    break;
                }
            }
            if !rng.gen_bool(*go_on) {
                break;
            }
        }
        let reached_end = path.last().map(String::as_str) == Some("confirm");
        let business = if reached_end {
            Some("confirmed")
        } else {
            [Some("hangup"), Some("hangup"), None, Some("refused")][rng.gen_range(0..4)]
        };
        let call_id = CallId(format!("bench-{i}"));
        let turns: Vec<TurnRecord> = path
            .iter()
            .take(3)
            .enumerate()
            .map(|(k, state)| {
                let angry = rng.gen_bool(0.08);
                TurnRecord {
                    seq: k as u32,
                    speaker: Speaker::Callee,
                    state: state.clone(),
                    at: at + chrono::Duration::seconds(6 + 9 * k as i64),
                    start_ms: 6000 + 9000 * k as u64,
                    end_ms: 8000 + 9000 * k as u64,
                    text: "好的".into(),
                    intent: Some(pick(&mut rng, &BENCH_INTENTS).into()),
                    confidence: Some(rng.gen_range(0.5..1.0)),
                    emotion: Some(if angry { "angry" } else { "calm" }.into()),
                    sentiment: None,
                    features: Some(VoiceFeatures {
                        rate_sps: rng.gen_range(2.5..7.0),
                        volume_dbfs: rng.gen_range(-35.0..-10.0),
                        pitch_hz: rng.gen_range(90.0..260.0),
                        pause_ratio: rng.gen_range(0.0..0.6),
                    }),
                    barge_in: false,
                    latency_ms: None,
                }
            })
            .collect();
        out.push((
            CallStart {
                call_id,
                campaign: Some(CampaignId(1 + (i % 3) as i64)),
                customer: None,
                script: BENCH_SCRIPTS[i % 7 / 6].into(),
                lang: "zh".into(),
                at,
            },
            turns,
            CallFinish {
                at: at + chrono::Duration::seconds(60),
                outcome: CallOutcome::Answered,
                sip_status: Some(200),
                duration_s: 55.0,
                business_outcome: business.map(String::from),
                level: None,
                path,
                path_variants: Vec::new(),
                recording: None,
                quality: None,
            },
        ));
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct CallsBenchReport {
    pub calls: usize,
    pub turns: u64,
    pub load_s: f64,
    pub db_bytes: u64,
    pub timings: Vec<Timing>,
    /// The rollups gave the same rows as SQL over the raw tables.
    pub agree: bool,
    /// The largest drop the funnel found (state, drop rate).
    pub largest_drop: Option<(String, f64)>,
}

async fn time_runs<T, F, Fut>(
    runs: usize,
    mut f: F,
) -> Result<(Vec<Duration>, T), waihu_store::StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, waihu_store::StoreError>>,
{
    let mut v = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = Some(f().await?);
        v.push(t.elapsed());
    }
    Ok((v, last.expect("at least one run")))
}

/// Fill `dir` (a fresh data directory) with `calls` finished calls through
/// the store's call API (bulk form) and time the funnel and intents × states
/// pages: rollups (as the API serves them, also over HTTP) against SQL over
/// the raw `calls` and `call_turns` tables, checked to agree.
pub async fn run_calls(
    dir: &std::path::Path,
    calls: usize,
    runs: usize,
    mut progress: impl FnMut(&str),
) -> Result<CallsBenchReport, Box<dyn std::error::Error + Send + Sync>> {
    let store = Store::open(dir).await?;
    for name in ["bench-a", "bench-b", "bench-c"] {
        store
            .campaign_create(name, "name: bench\n", "bench", Utc::now())
            .await?;
    }
    let spec = GenSpec {
        attempts: 0,
        calls,
        days: 30,
        start: Utc
            .with_ymd_and_hms(2026, 10, 1, 0, 0, 0)
            .single()
            .ok_or("start date")?,
        seed: 7,
    };
    let t0 = Instant::now();
    let chunk = 10_000;
    let mut i = 0;
    let mut turns = 0u64;
    while i < calls {
        let batch = generate_calls(&spec, i..(i + chunk).min(calls));
        turns += batch.iter().map(|(_, t, _)| t.len() as u64).sum::<u64>();
        store.calls_bulk(&batch, batch.len()).await?;
        i += chunk;
        if i % 100_000 == 0 {
            progress(&format!(
                "  loaded {i} calls ({:.0} s)",
                t0.elapsed().as_secs_f64()
            ));
        }
    }
    let load_s = t0.elapsed().as_secs_f64();
    let runs = runs.max(1);
    let base_runs = runs.min(3);
    let script = BENCH_SCRIPTS[0];
    let mut timings = Vec::new();

    let (key, _) = waihu_server::auth::create_key(
        &store,
        "bench",
        waihu_server::auth::Role::Analyst,
        Utc::now(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(waihu_server::serve(
        listener,
        store.clone(),
        waihu_server::Config::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let client = reqwest::Client::new();
    for (name, path) in [
        (
            "funnel page, HTTP (rollup)",
            format!("reports/funnel?script={script}"),
        ),
        (
            "intents x states page, HTTP (rollup)",
            "reports/intents".to_string(),
        ),
        (
            "voice features page, HTTP (rollup)",
            "reports/voice".to_string(),
        ),
        (
            "calls page (50, with total), HTTP",
            "calls?limit=50".to_string(),
        ),
        ("live calls, HTTP (partial index)", "calls/live".to_string()),
        (
            "campaigns page with call counts, HTTP",
            "campaigns".to_string(),
        ),
    ] {
        let url = format!("http://{addr}/api/{path}");
        let mut v = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let r = client.get(&url).bearer_auth(&key).send().await?;
            if !r.status().is_success() {
                return Err(format!("{url}: HTTP {}", r.status()).into());
            }
            let _body = r.bytes().await?;
            v.push(t.elapsed());
        }
        timings.push(timing(name, v));
    }
    let _ = stop_tx.send(());
    let _ = server.await;

    let (v, funnel) = time_runs(runs, || store.funnel(None, script)).await?;
    timings.push(timing("funnel: rollup query", v));
    let (v, heat) = time_runs(runs, || store.intent_heatmap(None)).await?;
    timings.push(timing("intents x states: rollup query", v));
    let (v, heat_c) = time_runs(runs, || store.intent_heatmap(Some(CampaignId(2)))).await?;
    timings.push(timing("intents x states, one campaign: rollup query", v));
    progress("  baseline: SQL over the raw calls and turns");
    let (v, funnel_raw) = time_runs(base_runs, || store.funnel_from_raw(None, script)).await?;
    timings.push(timing("funnel: SQL json_each over calls (baseline)", v));
    let (v, heat_raw) = time_runs(base_runs, || store.intent_heatmap_from_raw(None)).await?;
    timings.push(timing(
        "intents x states: SQL over call_turns (baseline)",
        v,
    ));
    let (v, heat_c_raw) = time_runs(base_runs, || {
        store.intent_heatmap_from_raw(Some(CampaignId(2)))
    })
    .await?;
    timings.push(timing(
        "intents x states, one campaign: SQL over call_turns (baseline)",
        v,
    ));
    let agree = funnel == funnel_raw && heat == heat_raw && heat_c == heat_c_raw;
    let largest_drop = waihu_server::reports::funnel_steps(&funnel)
        .into_iter()
        .find(|s| s.largest_drop)
        .map(|s| (s.row.state, s.drop_rate.unwrap_or(0.0)));
    let db_bytes = ["waihu.db", "waihu.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum();
    store.close().await;
    Ok(CallsBenchReport {
        calls,
        turns,
        load_s,
        db_bytes,
        timings,
        agree,
        largest_drop,
    })
}

#[cfg(test)]
mod tests {
    /// The Rust scan of decoded events (`aggregate`) is the oracle of the rollups the
    /// store's triggers keep: on a generated month, all three methods give the same rows.
    #[tokio::test]
    async fn rollups_sql_and_rust_scan_agree() {
        let dir = tempfile::tempdir().unwrap();
        let r = super::run(dir.path(), 3000, 1, |_| {}).await.unwrap();
        assert!(r.agree, "{r:?}");
        assert_eq!(r.attempts, 3000);
        assert!(r.connect_rate.is_some_and(|c| c > 0.1 && c < 0.6), "{r:?}");
    }

    #[tokio::test]
    async fn call_rollups_agree_with_raw_tables() {
        let dir = tempfile::tempdir().unwrap();
        let r = super::run_calls(dir.path(), 500, 1, |_| {}).await.unwrap();
        assert!(r.agree, "{r:?}");
        assert!(r.largest_drop.is_some(), "{r:?}");
    }
}
