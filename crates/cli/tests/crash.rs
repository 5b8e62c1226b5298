//! Crash safety under repeated SIGKILL: the real `waihu` binary is killed (`Child::kill`,
//! SIGKILL) at random points of an import, a live campaign and message sending, restarted,
//! killed again, and finally left to finish; after every restart and at the end the store
//! must hold whole rows only, every attempt exactly once, the caps, and the compliance
//! checker's verdict. The kill points come from a seeded RNG whose seed is printed:
//! `WAIHU_CRASH_SEED=<seed>` replays a run, `WAIHU_CRASH_ROUNDS=<n>` kills more often
//! (docs/reliability.md).
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use waihu_core::{AttrValue, CampaignState, EventKind};
use waihu_sim::{Persona, Population};
use waihu_store::{NewMessage, Store};

mod common;
use common::{assert_whisper_tiny_en, import_orders, json_lines, repo, waihu, CrashRng};

/// A `waihu` command on `dir` (no master key from the environment: the data directory's
/// key file, which the test opens too).
fn waihu_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_waihu"));
    c.arg("--data-dir")
        .arg(dir)
        .args(args)
        .env_remove("WAIHU_MASTER_KEY")
        .env_remove("WAIHU_DATA_DIR")
        .env("WAIHU_MODELS_DIR", waihu_testkit::models_dir());
    c
}

/// Spawns with stdout and stderr to files under `logs` (named `name`).
fn spawn_logged(mut c: Command, logs: &Path, name: &str) -> Child {
    let out = std::fs::File::create(logs.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(logs.join(format!("{name}.err"))).unwrap();
    c.stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .expect("spawn waihu")
}

/// Waits up to `d` for the child to exit by itself; `Some(success)` if it did.
async fn wait_for(child: &mut Child, d: Duration) -> Option<bool> {
    let until = Instant::now() + d;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s.success());
        }
        if Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// SIGKILL, and reap.
fn kill9(child: &mut Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

// ---------------------------------------------------------------------------------------
// 1. Import

/// One source row: (E.164, name, purchase_freq, member_level), or a row ingest rejects.
fn import_row(i: u64) -> Option<(String, String, f64, String)> {
    if i % 997 == 500 {
        return None;
    }
    // 7919 is prime to 10^8: every row has its own number.
    let national = format!("139{:08}", i * 7919 % 100_000_000);
    let level = ["普通", "银卡", "金卡", "钻石"][(i % 4) as usize];
    Some((
        format!("+86{national}"),
        format!("客户{i}"),
        (i % 50) as f64,
        level.to_string(),
    ))
}

fn write_import_csv(path: &Path, rows: u64) -> BTreeMap<String, (String, f64, String)> {
    use std::io::Write;
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(w, "姓名,手机号,购买频次,会员等级").unwrap();
    let mut valid = BTreeMap::new();
    for i in 0..rows {
        match import_row(i) {
            Some((phone, name, freq, level)) => {
                writeln!(w, "{name},{},{freq},{level}", &phone[3..]).unwrap();
                valid.insert(phone, (name, freq, level));
            }
            None => writeln!(w, "坏行{i},12345,1,普通").unwrap(),
        }
    }
    w.flush().unwrap();
    valid
}

/// (import id, status, rows_created) of every import, in order.
async fn imports_table(dir: &Path) -> Vec<(i64, String, i64)> {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::ConnectOptions;
    let mut conn = SqliteConnectOptions::new()
        .filename(dir.join("waihu.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let rows: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT id, status, rows_created FROM imports ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    drop(conn);
    rows
}

/// The import invariants at a restart point: every stored customer equals its source row
/// (no half-written row: the personal data opens and the attributes are the row's), each
/// has exactly one creation event, and the imports' own counters add up to what is stored.
/// Returns the number of customers.
async fn check_customers(dir: &Path, valid: &BTreeMap<String, (String, f64, String)>) -> u64 {
    let store = Store::open(dir).await.unwrap();
    let mut after = 0;
    let mut n = 0u64;
    let mut seen = BTreeSet::new();
    loop {
        let page = store.customers(after, 5000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.id.0;
        for c in &page {
            let (name, freq, level) = valid
                .get(&c.phone)
                .unwrap_or_else(|| panic!("stored customer {} is not a source row", c.id.0));
            assert_eq!(c.name.as_deref(), Some(name.as_str()), "{c:?}");
            let want: waihu_core::Attrs = [
                ("purchase_freq".to_string(), AttrValue::Number(*freq)),
                ("member_level".to_string(), AttrValue::Text(level.clone())),
            ]
            .into_iter()
            .collect();
            assert_eq!(c.attrs, want, "{c:?}");
            assert!(seen.insert(c.phone.clone()), "{} stored twice", c.phone);
            n += 1;
        }
    }
    let mut created = BTreeMap::<i64, u32>::new();
    let mut after = 0;
    loop {
        let page = store
            .events_of_type("customer_created", after, 50_000)
            .await
            .unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, e) in page {
            *created.entry(e.customer.unwrap().0).or_default() += 1;
        }
    }
    assert_eq!(created.len() as u64, n, "one creation event per customer");
    assert!(
        created.values().all(|&k| k == 1),
        "a customer created twice"
    );
    let updated = store
        .events_of_type("customer_updated", 0, 10)
        .await
        .unwrap();
    assert!(updated.is_empty(), "nothing changed, nothing updated");
    store.close().await;
    let imports = imports_table(dir).await;
    let counted: i64 = imports.iter().map(|(_, _, c)| c).sum();
    assert_eq!(
        counted as u64, n,
        "the imports' counters commit with their rows: {imports:?}"
    );
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_survives_repeated_sigkill() {
    let mut rng = CrashRng::from_env("import");
    let rounds = common::crash_rounds(6);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let logs = tmp.path().to_path_buf();
    let file = tmp.path().join("customers.csv");
    let rows = 60_000u64;
    let valid = write_import_csv(&file, rows);
    let invalid = rows - valid.len() as u64;
    let f = file.to_str().unwrap();

    // Rows per second, learnt from the kills, so the next kill lands before the end.
    let mut rate = 60_000.0f64;
    let mut stored = 0u64;
    let mut killed = Vec::new();
    for round in 0..rounds {
        // The whole file's time: a restart reads the stored rows again (unchanged) first.
        let span = (valid.len() as f64 / rate).max(0.05);
        let delay = Duration::from_secs_f64(rng.f64() * span * 0.9);
        let started = Instant::now();
        let mut child = spawn_logged(
            waihu_cmd(&dir, &["customers", "import", f, "--batch", "1000"]),
            &logs,
            &format!("import-{round}"),
        );
        if let Some(ok) = wait_for(&mut child, delay).await {
            assert!(ok, "import {round} failed on its own");
            // Kills after this land in the re-read of stored rows and the bookkeeping.
            eprintln!("import round {round}: finished before the kill at {delay:?}");
            stored = check_customers(&dir, &valid).await;
            // That was a whole import (re-read included): its time is the span to draw from.
            rate = valid.len() as f64 / started.elapsed().as_secs_f64();
            continue;
        }
        kill9(&mut child);
        let secs = started.elapsed().as_secs_f64();
        let before = stored;
        stored = check_customers(&dir, &valid).await;
        eprintln!(
            "import round {round}: killed at {:.3} s, {stored} of {} customers stored",
            secs,
            valid.len()
        );
        // A kill in the start-up or the re-read says little about the rate.
        if stored >= before + 5_000 {
            rate = (stored - before) as f64 / secs;
        }
        let imports = imports_table(&dir).await;
        if let Some((id, status, _)) = imports.last() {
            if status == "running" {
                killed.push(*id);
            }
        }
        // Every import but the last one is over: done or marked interrupted by its successor.
        let n = imports.len();
        for (id, status, _) in imports.iter().take(n.saturating_sub(1)) {
            assert!(
                status == "interrupted" || status == "done",
                "import {id} left {status}"
            );
        }
    }
    // The last run, undisturbed.
    let out = waihu_cmd(&dir, &["customers", "import", f, "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_lines(&String::from_utf8_lossy(&out.stdout))
        .pop()
        .expect("an import report");
    let total = check_customers(&dir, &valid).await;
    assert_eq!(total, valid.len() as u64, "every valid row stored once");
    assert_eq!(report["rejected"], invalid, "{report}");
    assert_eq!(report["updated"], 0, "{report}");
    assert_eq!(report["created"], valid.len() as u64 - stored, "{report}");
    assert_eq!(report["unchanged"], stored, "{report}");
    let imports = imports_table(&dir).await;
    for id in &killed {
        let status = &imports.iter().find(|(i, ..)| i == id).unwrap().1;
        assert_eq!(status, "interrupted", "killed import {id}");
    }
    assert_eq!(imports.last().unwrap().1, "done");
    eprintln!(
        "import: {} kills, {} customers, {} rejected rows, final run created {} and found {} unchanged",
        killed.len(),
        total,
        invalid,
        report["created"],
        report["unchanged"]
    );
}

// ---------------------------------------------------------------------------------------
// 3. Message sending

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_sending_survives_repeated_sigkill() {
    let mut rng = CrashRng::from_env("messages");
    let rounds = common::crash_rounds(6);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let logs = tmp.path().to_path_buf();
    let total = 300usize;
    // Message id → its marker in the text the provider receives.
    let mut marker_of: BTreeMap<i64, String> = BTreeMap::new();
    {
        let store = Store::open(&dir).await.unwrap();
        let c = store
            .campaign_create(
                "crash sms",
                "name: crash sms\ntimezone: UTC\nsegments: []\nmessages:\n  quiet_hours: []\n",
                "test",
                Utc::now(),
            )
            .await
            .unwrap();
        for i in 0..total {
            let key = format!("crash:{i}");
            let to = format!("+1212555{:04}", i);
            let text = format!("Your order ships today. #{i}# Reply STOP to opt out.");
            let (id, new) = store
                .message_enqueue(
                    &NewMessage {
                        key: &key,
                        customer: None,
                        campaign: Some(c),
                        channel: "sms",
                        template: "ships",
                        to: &to,
                        text: &text,
                        segments: 1,
                    },
                    Utc::now(),
                )
                .await
                .unwrap();
            assert!(new);
            marker_of.insert(id, format!("#{i}#"));
        }
        store.close().await;
    }
    // A provider that takes a while to answer, so kills land between its taking a
    // message and our recording that it did.
    let peer = waihu_smshttp::peer::twilio_holding(
        "ACcrash",
        "crash-token",
        &[],
        Duration::from_millis(150),
    )
    .await
    .unwrap();
    let cfg = tmp.path().join("sms-http.yaml");
    std::fs::write(
        &cfg,
        format!(
            "default: twilio\ntwilio:\n  base_url: {}\n  account_sid: ACcrash\n  auth_token_env: WAIHU_TEST_CRASH_TOKEN\n  from: \"+15005550006\"\n",
            peer.url()
        ),
    )
    .unwrap();
    let send = |seconds: &str| {
        let mut c = waihu_cmd(
            &dir,
            &[
                "messages",
                "send",
                "--sms-http",
                cfg.to_str().unwrap(),
                "--seconds",
                seconds,
            ],
        );
        c.env("WAIHU_TEST_CRASH_TOKEN", "crash-token");
        c
    };
    let statuses = |dir: PathBuf| async move {
        let store = Store::open(&dir).await.unwrap();
        let rows = store.messages_list(None, 100_000).await.unwrap();
        store.close().await;
        rows.into_iter()
            .map(|r| (r.id, r.status))
            .collect::<BTreeMap<i64, String>>()
    };
    // Received by the provider: message id → times.
    let received = |peer: &waihu_smshttp::peer::PeerHandle| {
        let mut n: BTreeMap<i64, u32> = BTreeMap::new();
        for a in peer.accepted() {
            let id = marker_of
                .iter()
                .find(|(_, m)| a.text.contains(m.as_str()))
                .map(|(id, _)| *id)
                .unwrap_or_else(|| panic!("the provider got a message nobody queued: {a:?}"));
            *n.entry(id).or_default() += 1;
        }
        n
    };

    // Messages caught in `sending` by a kill: what must end `unknown`, and nothing else.
    let mut interrupted: BTreeSet<i64> = BTreeSet::new();
    let mut kills = 0;
    for round in 0..rounds {
        let delay = Duration::from_secs_f64(rng.between(0.1, 2.0));
        let mut child = spawn_logged(send("30"), &logs, &format!("send-{round}"));
        if wait_for(&mut child, delay).await.is_some() {
            panic!("the sender exited before its 30 s");
        }
        kill9(&mut child);
        kills += 1;
        let now = statuses(dir.clone()).await;
        let got = received(&peer);
        for (id, status) in &now {
            let times = got.get(id).copied().unwrap_or(0);
            assert!(
                times <= 1,
                "message {id} reached the provider {times} times"
            );
            match status.as_str() {
                "sending" => {
                    interrupted.insert(*id);
                }
                "unknown" => assert!(
                    interrupted.contains(id),
                    "message {id} unknown without a kill"
                ),
                "sent" | "delivered" => assert_eq!(times, 1, "message {id} {status}"),
                "queued" => assert_eq!(times, 0, "message {id} queued yet sent"),
                other => panic!("message {id}: {other}"),
            }
        }
        let counts = now
            .values()
            .fold(BTreeMap::<&str, usize>::new(), |mut m, s| {
                *m.entry(s.as_str()).or_default() += 1;
                m
            });
        eprintln!("messages round {round}: killed at {delay:?}: {counts:?}");
        if !now.values().any(|s| s == "queued") {
            break;
        }
    }
    // Undisturbed runs until the outbox is empty.
    for _ in 0..10 {
        let out = send("3").output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if !statuses(dir.clone()).await.values().any(|s| s == "queued") {
            break;
        }
    }
    let end = statuses(dir.clone()).await;
    let got = received(&peer);
    assert_eq!(end.len(), total, "no message lost");
    let unknown: BTreeSet<i64> = end
        .iter()
        .filter(|(_, s)| *s == "unknown")
        .map(|(id, _)| *id)
        .collect();
    assert_eq!(
        unknown, interrupted,
        "unknown exactly where a kill fell between submit and acknowledgement"
    );
    for (id, status) in &end {
        let times = got.get(id).copied().unwrap_or(0);
        match status.as_str() {
            "sent" | "delivered" => assert_eq!(times, 1, "message {id} {status}"),
            "unknown" => assert!(times <= 1, "message {id} sent {times} times"),
            other => panic!("message {id} ended {other}"),
        }
    }
    eprintln!(
        "messages: {kills} kills, {} sent, {} unknown ({} of them reached the provider)",
        end.values().filter(|s| *s == "sent").count(),
        unknown.len(),
        unknown.iter().filter(|id| got.contains_key(id)).count()
    );
}

// ---------------------------------------------------------------------------------------
// 2. Live campaign

// The demo campaign with room for the attempts kills cost (each call a kill cuts is a
// `failed` attempt), so talking callees still get a whole conversation in the end.
const PER_DAY: usize = 6;
const MAX_ATTEMPTS: usize = 6;

/// One stored call as the checks read it.
#[derive(Debug, Clone)]
struct StoredCall {
    phone: String,
    status: String,
    outcome: Option<String>,
    business: Option<String>,
    sip_status: Option<u16>,
    duration_s: Option<f64>,
    started_at: DateTime<Utc>,
}

/// The live-campaign invariants at a restart point. `dead` holds the calls that were live
/// when a process was killed: only the next start's reconciliation may end them, as
/// `failed`. Returns the stored calls and the ones live now.
async fn check_calls(
    dir: &Path,
    dead: &BTreeSet<String>,
) -> (BTreeMap<String, StoredCall>, BTreeSet<String>) {
    let store = Store::open(dir).await.unwrap();
    let mut calls = BTreeMap::new();
    let mut before = None;
    loop {
        let page = store.calls_list(None, 500, before.as_ref()).await.unwrap();
        let Some(last) = page.last() else { break };
        before = Some(last.call_id.clone());
        for c in page {
            let customer = store.customer(c.customer.unwrap()).await.unwrap().unwrap();
            calls.insert(
                c.call_id.0.clone(),
                StoredCall {
                    phone: customer.phone,
                    status: c.status,
                    outcome: c.outcome,
                    business: c.business_outcome,
                    sip_status: c.sip_status,
                    duration_s: c.duration_s,
                    started_at: c.started_at,
                },
            );
        }
    }
    let live: BTreeSet<String> = store
        .calls_live()
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call_id.0)
        .collect();
    let mut started: HashMap<String, u32> = HashMap::new();
    let mut ended: HashMap<String, u32> = HashMap::new();
    let mut after = 0;
    loop {
        let page = store.events(after, 10_000).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = *last;
        for (_, e) in page {
            let Some(call) = e.call else { continue };
            match e.kind {
                EventKind::AttemptStarted { .. } => *started.entry(call.0).or_default() += 1,
                EventKind::AttemptEnded { .. } => *ended.entry(call.0).or_default() += 1,
                _ => {}
            }
        }
    }
    store.close().await;

    for id in started.keys().chain(ended.keys()) {
        assert!(
            calls.contains_key(id),
            "an attempt event of {id} without its call"
        );
    }
    for (id, c) in &calls {
        assert_eq!(started.get(id), Some(&1), "call {id}: attempt_started once");
        let e = ended.get(id).copied().unwrap_or(0);
        if c.status == "ended" {
            assert_eq!(e, 1, "call {id} ended: attempt_ended once");
            assert!(!live.contains(id));
        } else {
            assert_eq!(e, 0, "call {id} is {}: no attempt_ended yet", c.status);
            assert!(live.contains(id));
        }
        if dead.contains(id) && c.status == "ended" {
            assert!(
                c.outcome.as_deref() == Some("failed")
                    && c.sip_status.is_none()
                    && c.duration_s == Some(0.0),
                "call {id} was open when its process died: only reconciliation ends it: {c:?}"
            );
        }
    }
    // Per number: the caps, and nobody dialled again once reached.
    let mut by_phone: BTreeMap<&str, Vec<(&String, &StoredCall)>> = BTreeMap::new();
    for (id, c) in &calls {
        by_phone.entry(c.phone.as_str()).or_default().push((id, c));
    }
    // New York in late November (the campaign clock stays there): UTC-5.
    let ny = chrono::FixedOffset::west_opt(5 * 3600).unwrap();
    for (phone, mut cs) in by_phone {
        cs.sort_by_key(|(_, c)| c.started_at);
        assert!(
            cs.len() <= MAX_ATTEMPTS,
            "{phone}: {} attempts, max {MAX_ATTEMPTS}: {cs:?}",
            cs.len()
        );
        let mut per_day: BTreeMap<chrono::NaiveDate, usize> = BTreeMap::new();
        for (_, c) in &cs {
            *per_day
                .entry(c.started_at.with_timezone(&ny).date_naive())
                .or_default() += 1;
        }
        assert!(
            per_day.values().all(|&n| n <= PER_DAY),
            "{phone}: {per_day:?}"
        );
        for (i, (id, c)) in cs.iter().enumerate() {
            let reached = c.outcome.as_deref() == Some("answered")
                && c.business.is_some()
                && c.business.as_deref() != Some("callback");
            assert!(
                !reached || i + 1 == cs.len(),
                "{phone} was reached by {id} ({:?}) and dialled again: {cs:?}",
                c.business
            );
        }
    }
    (calls, live)
}

/// The campaign clock of a restart: a minute after the last stored event, as the system
/// clock would have moved on.
async fn clock_after_last_event(dir: &Path) -> DateTime<Utc> {
    let store = Store::open(dir).await.unwrap();
    let last = store.events_desc(None, None, 1).await.unwrap();
    store.close().await;
    last.first().map(|(_, e)| e.at).unwrap() + chrono::Duration::minutes(1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_campaign_survives_repeated_sigkill() {
    assert_whisper_tiny_en();
    let mut rng = CrashRng::from_env("live");
    let rounds = common::crash_rounds(4);
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    let logs = tmp.path().to_path_buf();
    let people = [
        ("+12125550201", Persona::Cooperative, "Mr. Stone"),
        ("+12125550202", Persona::Busy, "Ms. Hill"),
        ("+12125550203", Persona::NoAnswer, "Mr. Reed"),
        ("+12125550204", Persona::DoNotCall, "Ms. Ford"),
        ("+12125550205", Persona::Voicemail, "Mr. Lane"),
        ("+12125550206", Persona::Cancels, "Ms. Cole"),
    ];
    import_orders(
        &d,
        &people.iter().map(|(p, _, n)| (*p, *n)).collect::<Vec<_>>(),
    );
    let pop = Population::new(5)
        .with_map(people.iter().map(|(p, persona, _)| (*p, *persona)))
        .always_answer();
    let sim = common::english_callees(pop, common::quick_rings).await;
    let campaign = tmp.path().join("campaign.yaml");
    let demo = std::fs::read_to_string(repo().join("examples/campaign-demo.en.yaml")).unwrap();
    let spec = demo
        .replacen(
            "caps: {per_number_per_day: 3, per_number_per_week: 5, max_attempts: 3}",
            &format!("caps: {{per_number_per_day: {PER_DAY}, per_number_per_week: 10, max_attempts: {MAX_ATTEMPTS}}}"),
            1,
        )
        .replacen("failed: {after: 10m, max: 1}", "failed: {after: 2m, max: 5}", 1);
    assert_ne!(
        spec, demo,
        "the demo campaign's caps moved: update this test"
    );
    std::fs::write(&campaign, &spec).unwrap();
    let script = repo().join("examples/scripts/order_confirmation.en.yaml");
    let trunk = sim.addr.to_string();
    let run = |clock: DateTime<Utc>| {
        waihu_cmd(
            &d,
            &[
                "run",
                "--campaign",
                campaign.to_str().unwrap(),
                "--script",
                script.to_str().unwrap(),
                "--trunk",
                &trunk,
                "--clock-start",
                &clock.to_rfc3339(),
                "--var",
                "shop=BestBuy Online",
                "--concurrency",
                "6",
                "--json",
            ],
        )
    };

    let mut clock: DateTime<Utc> = "2026-11-25T14:30:00Z".parse().unwrap();
    let mut dead: BTreeSet<String> = BTreeSet::new();
    let mut kills = 0;
    let mut finished_early = false;
    for round in 0..rounds {
        let mut child = spawn_logged(run(clock), &logs, &format!("run-{round}"));
        let started = Instant::now();
        let mid_call = rng.f64() < 0.5;
        let exited = if mid_call {
            // Once the callees have a call in hand, a little later.
            let extra = Duration::from_secs_f64(rng.between(0.0, 4.0));
            let until = Instant::now() + Duration::from_secs(30);
            let mut exited = None;
            while sim.active_calls() == 0 && Instant::now() < until {
                if let Some(s) = child.try_wait().unwrap() {
                    exited = Some(s.success());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            match exited {
                Some(s) => Some(s),
                None => wait_for(&mut child, extra).await,
            }
        } else {
            wait_for(&mut child, Duration::from_secs_f64(rng.between(0.3, 10.0))).await
        };
        if let Some(ok) = exited {
            assert!(ok, "run {round} failed on its own");
            eprintln!("live round {round}: the campaign finished before the kill");
            finished_early = true;
            break;
        }
        let active = sim.active_calls();
        kill9(&mut child);
        kills += 1;
        let (calls, live) = check_calls(&d, &dead).await;
        eprintln!(
            "live round {round}: killed {} after {:.1} s with {active} calls at the callees, {} calls stored, {} left open",
            if mid_call { "mid-call" } else { "at a random time" },
            started.elapsed().as_secs_f64(),
            calls.len(),
            live.len()
        );
        dead.extend(live);
        clock = clock_after_last_event(&d).await.max(clock);
    }
    // The last run, undisturbed, to the end of the campaign.
    let summary = if finished_early {
        let out = std::fs::read_to_string(logs.join(format!("run-{}.out", kills))).unwrap();
        out
    } else {
        let out = tokio::task::spawn_blocking({
            let mut c = run(clock);
            move || c.output().unwrap()
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let v: serde_json::Value =
        serde_json::from_str(summary.trim().lines().last().expect("a summary")).unwrap();
    assert_eq!(
        v["summary"]["stopped_by"], "every contact finished",
        "{}",
        v["summary"]
    );
    let (calls, live) = check_calls(&d, &dead).await;
    assert!(live.is_empty(), "calls left open: {live:?}");
    for id in &dead {
        assert_eq!(
            calls[id].outcome.as_deref(),
            Some("failed"),
            "{id} reconciled"
        );
    }
    let id = v["campaign"].as_i64().unwrap();
    {
        let store = Store::open(&d).await.unwrap();
        let row = store
            .campaign_get(waihu_core::CampaignId(id))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.state, CampaignState::Finished);
        store.close().await;
    }
    // Every INVITE the callees received is a stored call; a stored call the callees never
    // saw is one a kill cut before its INVITE left (reconciled as failed).
    let until = Instant::now() + Duration::from_secs(60);
    while sim.active_calls() > 0 && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sim.active_calls(), 0, "the callees' calls ended");
    let mut invites: BTreeMap<String, usize> = BTreeMap::new();
    for l in sim.logs() {
        *invites.entry(l.to.clone()).or_default() += 1;
    }
    let mut stored: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for (cid, c) in &calls {
        let e = stored.entry(c.phone.clone()).or_default();
        e.0 += 1;
        if !dead.contains(cid) {
            e.1 += 1;
        }
    }
    for (phone, n) in &invites {
        let (all, whole) = stored.get(phone).copied().unwrap_or_default();
        assert!(
            whole <= *n && *n <= all,
            "{phone}: {n} INVITEs received, {all} calls stored ({whole} not cut by a kill)"
        );
    }
    for (phone, (_, whole)) in &stored {
        assert!(
            *whole <= invites.get(phone).copied().unwrap_or(0),
            "{phone}: a stored call never reached the callee"
        );
    }
    // The independent checker on the event log.
    let camp_file = d.join("campaign.yaml");
    std::fs::write(
        &camp_file,
        std::fs::read_to_string(&campaign)
            .unwrap()
            .replacen("id: 1 ", &format!("id: {id} "), 1),
    )
    .unwrap();
    let check = waihu(
        &d,
        &[
            "compliance",
            "check",
            "--campaign",
            camp_file.to_str().unwrap(),
        ],
    );
    assert!(check.contains("PASS"), "{check}");
    let outcomes = calls
        .values()
        .fold(BTreeMap::<String, usize>::new(), |mut m, c| {
            *m.entry(c.outcome.clone().unwrap_or_default()).or_default() += 1;
            m
        });
    eprintln!(
        "live: {kills} kills, {} calls stored ({} reconciled), {} INVITEs at the callees, outcomes {outcomes:?}",
        calls.len(),
        dead.len(),
        invites.values().sum::<usize>()
    );
    sim.shutdown().await;
}
