//! The dashboard in a real headless Chromium: the numbers it renders are the
//! API's, the English switch works, and a screenshot has the charts drawn.
//! Skipped (loudly) when /usr/bin/chromium is missing (`apt-get install chromium`), and
//! failed instead when `CI` is set (`waihu_testkit::have_peer_at`).
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use serde_json::Value;
use waihu_testkit::have_peer_at;

const CHROMIUM: &str = "/usr/bin/chromium";

async fn chromium(profile: &Path, extra: &[String], url: &str) -> String {
    let mut cmd = tokio::process::Command::new(CHROMIUM);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(45), cmd.output())
        .await
        .expect("chromium did not finish within 45 s")
        .expect("running chromium");
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Text of the element with this id in a serialized DOM.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the DOM"));
    let rest = &dom[start..];
    let open = rest.find('>').unwrap() + 1;
    let close = rest[open..].find('<').unwrap();
    rest[open..open + close].to_string()
}

fn pct(v: &Value) -> String {
    format!("{:.1}%", v.as_f64().unwrap() * 100.0)
}

#[tokio::test]
async fn dashboard_shows_the_api_numbers() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) {
        return;
    }
    let s = Server::start(waihu_server::Config::default()).await;
    s.store.append_events(&known_events()).await.unwrap();
    s.store
        .dnc_add("+8613800138000", "global", "test", chrono::Utc::now())
        .await
        .unwrap();
    let (_, k) = s.get(&s.analyst, "/api/kpis").await;
    let tot = &k["totals"];
    let profile = tempfile::tempdir().unwrap();

    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url(&format!("/?key={}", s.analyst)),
    )
    .await;
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page did not finish loading:\n{}",
        &dom[..dom.len().min(3000)]
    );
    assert_eq!(text_of(&dom, "kpi-attempts"), tot["attempts"].to_string());
    assert_eq!(text_of(&dom, "kpi-connects"), tot["connects"].to_string());
    assert_eq!(text_of(&dom, "kpi-connect_rate"), pct(&tot["connect_rate"]));
    assert_eq!(text_of(&dom, "kpi-abandon_rate"), pct(&tot["abandon_rate"]));
    assert_eq!(
        text_of(&dom, "kpi-conversion_rate"),
        pct(&tot["conversion_rate"])
    );
    assert_eq!(
        text_of(&dom, "kpi-aht"),
        format!("{:.1}", tot["aht_s"].as_f64().unwrap())
    );
    assert_eq!(text_of(&dom, "ov-customers"), "3");
    assert_eq!(text_of(&dom, "ov-dnc"), "1");
    // The values themselves, as constructed in known_events().
    assert_eq!(text_of(&dom, "kpi-attempts"), "15");
    assert_eq!(text_of(&dom, "kpi-connect_rate"), "40.0%");
    assert_eq!(text_of(&dom, "kpi-aht"), "60.8");
    // Charts were drawn: one bar per day of the range, 168 heat cells, outcome bars.
    assert_eq!(dom.matches("data-cell=").count(), 168);
    assert_eq!(dom.matches("data-outcome=").count(), 10);
    assert!(dom.contains("接通率"));
    // The key is not left in the address bar.
    assert!(
        !dom.contains(&s.analyst),
        "the key must not stay in the page"
    );

    // English switch (the stored key is reused from localStorage in the same profile).
    let dom_en = chromium(profile.path(), &["--dump-dom".into()], &s.url("/?lang=en")).await;
    assert!(
        dom_en.contains("data-loaded=\"1\""),
        "the page did not load with the stored key"
    );
    assert!(dom_en.contains(">Connect rate<") && dom_en.contains(">Abandon rate<"));
    assert_eq!(text_of(&dom_en, "kpi-attempts"), "15");

    // Screenshot: a real PNG of the page with charts (a blank page compresses to a few KiB).
    let shot = profile.path().join("shot.png");
    chromium(
        profile.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,1400".into(),
        ],
        &s.url(&format!("/?key={}", s.analyst)),
    )
    .await;
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((w, h), (1280, 1400));
    assert!(
        png.len() > 40_000,
        "screenshot is only {} bytes: nothing drawn?",
        png.len()
    );
    s.stop().await;
}

/// Whether `dom` has an element whose attribute `attr` is `value`.
fn has_attr(dom: &str, attr: &str, value: &str) -> bool {
    dom.contains(&format!("{attr}=\"{value}\""))
}

#[tokio::test]
async fn dashboard_shows_campaigns_calls_funnel_topics_voice_and_graph() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) {
        return;
    }
    let s = Server::start(waihu_server::Config::default()).await;
    let fx = fill_calls(&s.store).await;
    let (_, funnel) = s.get(&s.analyst, "/api/reports/funnel").await;
    let (_, intents) = s.get(&s.analyst, "/api/reports/intents").await;
    let (_, graph) = s
        .get(&s.analyst, &format!("/api/scripts/{}", fx.script))
        .await;
    let (_, camps) = s.get(&s.analyst, "/api/campaigns").await;
    let newest_ended = fx.finished.last().unwrap();
    let (_, detail) = s
        .get(
            &s.analyst,
            &format!("/api/calls/{}", newest_ended.replace('@', "%40")),
        )
        .await;
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url(&format!("/?key={}", s.analyst)),
    )
    .await;
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page did not finish loading:\n{}",
        &dom[..dom.len().min(3000)]
    );
    // Campaigns: the row and its call count; analysts get disabled buttons.
    let camp = &camps["items"][0];
    assert_eq!(
        text_of(&dom, &format!("camp-{}-calls", camp["id"])),
        camp["calls"].to_string()
    );
    assert!(
        dom.contains("data-action=\"start\" disabled=\"\""),
        "analysts cannot start campaigns"
    );
    // Funnel: the largest drop and the figures per step are the API's.
    assert_eq!(
        text_of(&dom, "funnel-largest"),
        funnel["largest_drop"].as_str().unwrap()
    );
    assert_eq!(text_of(&dom, "funnel-largest"), "offer");
    let steps = funnel["steps"].as_array().unwrap();
    assert_eq!(dom.matches("data-funnel=").count(), steps.len());
    for st in steps {
        let name = st["state"].as_str().unwrap();
        for k in ["entered", "dropped", "completed"] {
            assert_eq!(
                text_of(&dom, &format!("f-{name}-{k}")),
                st[k].to_string(),
                "{name} {k}"
            );
        }
        assert_eq!(
            text_of(&dom, &format!("f-{name}-drop_rate")),
            pct(&st["drop_rate"])
        );
    }
    assert!(has_attr(&dom, "data-largest", "offer"));
    assert!(dom.contains("class=\"largest\""));
    // Intents × nodes: every cell drawn, counts as in the API.
    let m = &intents["matrix"];
    let cells = m["states"].as_array().unwrap().len() * m["intents"].as_array().unwrap().len();
    assert_eq!(dom.matches("data-icell=").count(), cells);
    assert!(dom.contains("data-icell=\"offer|ask_price\" data-n=\"3\""));
    let (_, voice) = s.get(&s.analyst, "/api/reports/voice").await;
    assert_eq!(
        text_of(&dom, "kpi-satisfaction"),
        pct(&voice["totals"]["satisfaction"])
    );
    assert_eq!(text_of(&dom, "kpi-satisfaction"), "94.1%");
    // Voice features, live calls.
    assert!(has_attr(&dom, "data-voice-turns", "51"));
    assert_eq!(text_of(&dom, "live-count"), "2");
    assert!(has_attr(&dom, "data-live", &fx.live[0]));
    // Script graph: a node per state with the funnel's traffic.
    let nodes = graph["graph"]["nodes"].as_array().unwrap();
    assert_eq!(dom.matches("data-node=").count(), nodes.len());
    assert!(dom.contains("data-node=\"offer\" data-entered=\"8\""));
    assert!(dom.matches("data-edge=").count() >= nodes.len() - 1);
    // Call detail: the newest finished call, its path and turns; words hidden for analysts.
    assert_eq!(text_of(&dom, "d-call"), newest_ended.as_str());
    assert_eq!(
        dom.matches("data-path-step=").count(),
        detail["path"].as_array().unwrap().len()
    );
    assert_eq!(
        dom.matches("data-turn=").count(),
        detail["turns"].as_array().unwrap().len()
    );
    assert!(dom.contains("已隐藏"));
    assert!(
        !dom.contains("张伟收到"),
        "words must not reach an analyst's page"
    );

    // English, as an operator: words shown only after the audited reveal (not automatic).
    let profile2 = tempfile::tempdir().unwrap();
    let dom_en = chromium(
        profile2.path(),
        &["--dump-dom".into()],
        &s.url(&format!("/?key={}&lang=en", s.operator)),
    )
    .await;
    assert!(dom_en.contains("data-loaded=\"1\""));
    assert!(dom_en.contains(">Funnel by script node<") && dom_en.contains(">Largest drop<"));
    assert_eq!(text_of(&dom_en, "funnel-largest"), "offer");
    assert!(
        !dom_en.contains("data-action=\"stop\" disabled"),
        "operators may stop a created campaign"
    );
    assert!(s
        .store
        .events_of_type("pii_revealed", 0, 10)
        .await
        .unwrap()
        .is_empty());

    // Screenshot of the whole page with the new panels drawn (kept when
    // WAIHU_SCREENSHOT names a file, for people reviewing the layout).
    let shot = profile2.path().join("ops.png");
    chromium(
        profile2.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1280,4200".into(),
        ],
        &s.url("/?lang=zh"),
    )
    .await;
    let png = std::fs::read(&shot).expect("no screenshot written");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 100_000,
        "screenshot is only {} bytes",
        png.len()
    );
    if let Some(keep) = std::env::var_os("WAIHU_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    s.stop().await;
}

/// The node's trunk status file as the dialer writes it: `carrier-a` down in a
/// back-off that ends in a minute, `carrier-b` up with calls in flight.
fn write_trunks(data_dir: &Path, age_ms: i64) -> i64 {
    use waihu_campaign::trunks::{StatusEntry, StatusFile};
    let now = chrono::Utc::now().timestamp_millis();
    let until = now + 60_000;
    let entry = |name: &str, state: &str, reg: &str| StatusEntry {
        name: name.into(),
        state: state.into(),
        registration: reg.into(),
        registration_status: None,
        registrations: 1,
        in_flight: 0,
        channels: 0,
        calls: 0,
        failures: 0,
        consecutive_failures: 0,
        down_until_ms: None,
    };
    let file = StatusFile {
        asr: None,
        updated_ms: now - age_ms,
        pid: 4242,
        trunks: vec![
            StatusEntry {
                registration_status: Some(403),
                channels: 30,
                calls: 12,
                failures: 4,
                consecutive_failures: 3,
                down_until_ms: Some(until),
                ..entry("carrier-a", "down", "failed")
            },
            StatusEntry {
                in_flight: 7,
                channels: 10,
                calls: 80,
                ..entry("carrier-b", "up", "registered")
            },
        ],
    };
    std::fs::write(
        data_dir.join("trunks.json"),
        serde_json::to_vec(&file).unwrap(),
    )
    .unwrap();
    until
}

#[tokio::test]
async fn dashboard_shows_trunks_up_down_and_stale() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) {
        return;
    }
    let s = Server::start(waihu_server::Config::default()).await;
    let profile = tempfile::tempdir().unwrap();
    let url = s.url(&format!("/?key={}&live=0", s.analyst));

    // No node yet: an empty table and a note saying so.
    let dom = chromium(profile.path(), &["--dump-dom".into()], &url).await;
    assert!(dom.contains("data-loaded=\"1\""), "the page did not load");
    assert!(dom.contains("中继线路"));
    assert_eq!(dom.matches("data-trunk=").count(), 0);
    assert!(text_of(&dom, "trunk-note").contains("trunks.json"));

    // A running node: one row per trunk; the down one highlighted with its back-off end.
    write_trunks(s.store.data_dir(), 100);
    let dom = chromium(profile.path(), &["--dump-dom".into()], &url).await;
    assert!(dom.contains("data-loaded=\"1\""));
    assert!(
        dom.contains("data-trunk=\"carrier-a\" data-state=\"down\" class=\"down\""),
        "{}",
        &dom[dom.find("trunktab").unwrap()..][..1500]
    );
    assert!(dom.contains("data-trunk=\"carrier-b\" data-state=\"up\">"));
    assert_eq!(text_of(&dom, "trunk-carrier-b-channels"), "7 / 10");
    assert_eq!(text_of(&dom, "trunk-carrier-a-channels"), "0 / 30");
    assert_eq!(text_of(&dom, "trunk-carrier-a-calls"), "12");
    assert_eq!(text_of(&dom, "trunk-carrier-a-failures"), "4 (3)");
    assert_eq!(text_of(&dom, "trunk-carrier-b-failures"), "0");
    assert!(
        dom.contains(">故障退避<") && dom.contains(">注册失败 (403)<") && dom.contains(">已注册<")
    );
    let until = text_of(&dom, "trunk-carrier-a-until");
    assert!(until.contains("秒后"), "back-off end: {until}");
    assert_eq!(text_of(&dom, "trunk-carrier-b-until"), "");
    assert!(
        dom.contains("id=\"trunk-stale\" hidden"),
        "a fresh file is not stale"
    );

    // English.
    let dom_en = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url("/?lang=en&live=0"),
    )
    .await;
    assert!(
        dom_en.contains(">Trunks<")
            && dom_en.contains(">down (back-off)<")
            && dom_en.contains(">Back-off ends<")
    );

    // The node stopped writing a minute ago: every row stale, the badge says since when.
    write_trunks(s.store.data_dir(), 60_000);
    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url("/?lang=zh&live=0"),
    )
    .await;
    assert!(dom.contains("data-trunk=\"carrier-b\" data-state=\"stale\" class=\"stale\""));
    let badge = text_of(&dom, "trunk-stale");
    let secs: u64 = badge
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap();
    assert!(
        badge.contains("停止写入") && (60..120).contains(&secs),
        "{badge}"
    );
    s.stop().await;
}

/// The agent desk: an offered call pops up with the transcript for the agent's
/// key (the store driven as the dialer drives it); the supervisor view lists
/// the agents, the queue and the report for an operator.
#[tokio::test]
async fn agent_desk_pops_up_the_offered_call_with_its_transcript() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) {
        return;
    }
    use common::desk::*;
    let s = Server::start(waihu_server::Config::default()).await;
    let li = agent_key(&s, "li").await;
    publish(&s.store, chrono::Utc::now(), "ringing", &["c-wait"]).await;
    offered_call(&s.store, "c1", "li").await;
    // The dialer keeps publishing while the page loads (a stale snapshot is not live).
    let store = s.store.clone();
    let keep = tokio::spawn(async move {
        loop {
            publish(&store, chrono::Utc::now(), "ringing", &["c-wait"]).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url(&format!("/?key={li}")),
    )
    .await;
    assert!(
        dom.contains("data-desk=\"1\""),
        "the desk did not load:\n{}",
        &dom[..dom.len().min(3000)]
    );
    assert!(
        dom.contains("<div id=\"analytics\" hidden=\"\">"),
        "analytics shown to an agent"
    );
    assert!(
        dom.contains("<section id=\"pop\" data-call=\"c1\" data-status=\"ringing\">"),
        "no screen-pop:\n{dom}"
    );
    assert_eq!(text_of(&dom, "desk-agent"), "li");
    assert_eq!(text_of(&dom, "desk-state"), "振铃");
    assert_eq!(text_of(&dom, "pop-customer"), "张*");
    assert_eq!(text_of(&dom, "pop-queue"), "after_sales");
    assert_eq!(text_of(&dom, "pop-intents"), "complaint");
    assert_eq!(text_of(&dom, "pop-emotion"), "愤怒");
    assert!(text_of(&dom, "pop-summary").contains("张某"));
    assert!(has_attr(&dom, "data-seq", "2"));
    assert!(
        dom.contains("<td>我的洗衣机坏了，我要投诉，转人工！</td>"),
        "no transcript"
    );
    assert!(
        !dom.contains(PHONE) && !dom.contains("张伟"),
        "PII on the desk"
    );
    assert!(!dom.contains(&li), "the key must not stay in the page");

    // English, same profile (the key is remembered).
    let dom_en = chromium(profile.path(), &["--dump-dom".into()], &s.url("/?lang=en")).await;
    assert!(dom_en.contains("data-desk=\"1\""));
    assert_eq!(text_of(&dom_en, "desk-state"), "ringing");
    assert!(dom_en.contains(">Screen-pop<") && dom_en.contains(">Disposition<"));

    // The supervisor view for an operator: agents, the waiting caller, the
    // report; li has answered: a listen-in button beside it.
    keep.abort();
    let store = s.store.clone();
    let keep = tokio::spawn(async move {
        loop {
            publish(&store, chrono::Utc::now(), "on_call", &["c-wait"]).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let dom = chromium(
        profile.path(),
        &["--dump-dom".into()],
        &s.url(&format!("/?key={}&live=0", s.operator)),
    )
    .await;
    assert!(
        dom.contains("data-loaded=\"1\""),
        "{}",
        &dom[..dom.len().min(3000)]
    );
    assert!(
        dom.contains("<section id=\"supervisor\">"),
        "supervisor view hidden"
    );
    assert!(dom.contains("data-agent=\"li\" data-state=\"on_call\""));
    assert!(dom.contains("data-listen=\"li\""), "no listen-in button");
    assert!(
        !dom.contains("data-listen=\"wang\""),
        "listen-in on a paused agent"
    );
    assert!(dom.contains("id=\"listen-uri\""));
    assert!(dom.contains("data-agent=\"wang\" data-state=\"paused\""));
    assert!(dom.contains("<td>c-wait (4)</td>"), "no waiting caller");
    assert!(
        dom.contains("<tr data-queue=\"after_sales\"><td>after_sales</td><td class=\"num\">1</td>"),
        "no report row"
    );
    keep.abort();
    s.stop().await;
}
