//! The operations console clicked through in a real headless Chromium (over
//! the DevTools protocol, `waihu-cdp`) on a fresh data directory: upload a
//! list with bad rows and see them rejected, preview segments and break a rule,
//! complete an attribute name, open a script, break it and see the error at its
//! line, fix and save it, chat with it, edit its flow by dragging on the canvas
//! (connect, move and delete an arrow, add a state), and forecast a campaign over the
//! uploaded list. Screenshots of each page are kept
//! under the target directory (`console-screens/`). Fails when Chromium is
//! missing and `CI` is set (`waihu_testkit::have_peer_at`).
mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};
use waihu_cdp::{Browser, CHROMIUM};
use waihu_testkit::have_peer_at;

const EXAMPLE_CSV: &str = include_str!("../../../examples/customers.csv");
const SEGMENTS: &str = include_str!("../../../examples/segments.yaml");
const SCRIPT: &str = include_str!("../../../examples/scripts/order_confirmation.zh.yaml");
const WAIT: Duration = Duration::from_secs(15);

fn screens() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screens");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The data directory's `scripts/`, with the knowledge files the example scripts
/// name (`knowledge.file: ../knowledge/...`): without them a script does not load
/// and the scripts list reports it broken.
fn with_knowledge(s: &Server) -> PathBuf {
    let dir = s.store.data_dir();
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::create_dir_all(dir.join("knowledge")).unwrap();
    for (name, text) in [
        (
            "air_purifier.zh.md",
            include_str!("../../../examples/knowledge/air_purifier.zh.md"),
        ),
        (
            "air_purifier.en.md",
            include_str!("../../../examples/knowledge/air_purifier.en.md"),
        ),
    ] {
        std::fs::write(dir.join("knowledge").join(name), text).unwrap();
    }
    scripts
}

/// The positions the server keeps at `layout`, once `done` holds for them (`None` after [`WAIT`]).
async fn kept_layout(s: &Server, layout: &str, done: impl Fn(&Value) -> bool) -> Option<Value> {
    tokio::time::timeout(WAIT, async {
        loop {
            let (_, v) = s.get(&s.analyst, layout).await;
            if done(&v["positions"]) {
                return v["positions"].clone();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .ok()
}

/// On the flow canvas: drag `from`'s port onto `to`, pick `intent` in the form
/// that opens, connect.
async fn connect_by_drag(b: &mut Browser, from: &str, to: &str, intent: &str) {
    b.drag(
        &format!("#sc-graph circle.port[data-port={from}]"),
        &format!("#sc-graph g[data-state={to}]"),
    )
    .await;
    b.wait_for(
        "the connect form",
        &format!("!document.getElementById('fe-connect').hidden && document.getElementById('fe-connect-what').textContent === '{from} → {to}'"),
        WAIT,
    )
    .await;
    b.eval(&format!(
        "document.getElementById('fe-intent').value = '{intent}'; 0"
    ))
    .await;
    b.click("#fe-connect-ok").await;
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

#[tokio::test]
async fn console_in_a_real_browser() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) || !waihu_testkit::have_peer("espeak-ng") {
        return;
    }
    let s = Server::start(waihu_server::Config::default()).await;
    let scripts = with_knowledge(&s);
    std::fs::write(scripts.join("order_confirmation.zh.yaml"), SCRIPT).unwrap();
    std::fs::write(
        scripts.join("order_confirmation.cases.yaml"),
        include_str!("../../../examples/scripts/order_confirmation.cases.yaml"),
    )
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let csv = work.path().join("客户名单.csv");
    let bad_line = EXAMPLE_CSV.lines().count() + 1;
    std::fs::write(
        &csv,
        format!("{EXAMPLE_CSV}C999998,坏号码,12345,上海,普通,1,1,1,1,1,是,2025-01-01,DD1,1\n"),
    )
    .unwrap();
    let shots = screens();
    let profile = tempfile::tempdir().unwrap();
    let mut b = Browser::launch(profile.path(), &[]).await;

    // Customers: upload by choosing the file; the report and the rejected rows.
    b.goto(&s.url(&format!("/console?key={}#customers", s.admin)))
        .await;
    b.wait_for(
        "signed in",
        "document.getElementById('who').textContent === 'admin'",
        WAIT,
    )
    .await;
    b.set_files("#file", std::slice::from_ref(&csv)).await;
    b.wait_for(
        "the import report",
        "!document.getElementById('report').hidden && document.getElementById('up-progress').value === 100",
        WAIT,
    )
    .await;
    b.wait_for(
        "the rejected rows",
        "!document.getElementById('rej').hidden",
        WAIT,
    )
    .await;
    let created = b
        .eval("Number(document.getElementById('r-created').textContent)")
        .await;
    let rejected = b
        .eval("Number(document.getElementById('r-rejected').textContent)")
        .await;
    let (_, listed) = s.get(&s.analyst, "/api/customers?limit=1").await;
    assert_eq!(
        created.as_u64().unwrap() + 3,
        listed["total"].as_u64().unwrap(),
        "the page's count is the store's"
    );
    let rows = b
        .eval("[...document.querySelectorAll('#rejects tbody tr')].map(r => [...r.cells].map(c => c.textContent))")
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len() as u64, rejected.as_u64().unwrap());
    let last = rows.last().unwrap();
    assert_eq!(last[0], bad_line.to_string(), "{rows:?}");
    assert_eq!(last[1], "手机号");
    b.wait_for(
        "the customer table",
        "document.querySelectorAll('#custtab tbody tr').length === 50",
        WAIT,
    )
    .await;
    let phone = b
        .eval("document.querySelector('#custtab tbody tr td:nth-child(2)').textContent")
        .await;
    assert!(
        phone.as_str().unwrap().contains('*'),
        "numbers are masked: {phone}"
    );
    b.screenshot(&shots.join("1-customers.png")).await;

    // Segments: the example rules previewed; counts equal the API's.
    b.click("nav button[data-page=segments]").await;
    b.wait_for(
        "the segment preview",
        "document.getElementById('seg-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let (_, api) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/segments/preview",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    let page_rows = b
        .eval("[...document.querySelectorAll('#segtab tbody tr')].map(r => [r.dataset.segment, Number(r.cells[1].textContent)])")
        .await;
    let api_rows: Vec<serde_json::Value> = api["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["segment"].as_str().unwrap_or(""), r["customers"]]))
        .collect();
    assert_eq!(page_rows, json!(api_rows));
    b.screenshot(&shots.join("2-segments.png")).await;

    // A typo in an attribute: the error names it, at its line, marked in the gutter.
    let broken = SEGMENTS.replace("rule: last_interaction > 90", "rule: last_interacton > 90");
    let line = line_of(&broken, "last_interacton");
    b.type_into("#seg-text", &broken, true).await;
    b.wait_for(
        "the rule error",
        &format!("document.querySelector('#seg-errors li[data-line=\"{line}\"]') !== null"),
        WAIT,
    )
    .await;
    let marked = b
        .eval("[...document.querySelectorAll('#seg-gutter b')].map(b => Number(b.textContent))")
        .await;
    assert_eq!(marked, json!([line]));
    b.screenshot(&shots.join("3-segments-error.png")).await;
    // Attribute-name completion: type the start of a name, Tab completes it.
    b.type_into("#seg-text", "segments:\n  - name: x\n    rule: purch", true)
        .await;
    b.wait_for(
        "the completion list",
        "!document.getElementById('seg-suggest').hidden && document.getElementById('seg-suggest').textContent.includes('purchase_freq')",
        WAIT,
    )
    .await;
    b.press("Tab").await;
    let text = b.eval("document.getElementById('seg-text').value").await;
    assert!(
        text.as_str().unwrap().ends_with("rule: purchase_freq"),
        "{text}"
    );

    // Scripts: open, break (an unknown goto target), see the error at its line.
    b.click("nav button[data-page=scripts]").await;
    b.wait_for(
        "the script to load and validate",
        "document.getElementById('sc-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let nodes = b
        .eval("document.querySelectorAll('#sc-graph g[data-state]').length")
        .await;
    assert!(nodes.as_u64().unwrap() >= 5, "the flow is drawn: {nodes}");
    let broken = SCRIPT.replacen("goto: verify_address", "goto: verify_adress", 1);
    let line = line_of(&broken, "goto: verify_adress");
    b.type_into("#sc-text", &broken, true).await;
    b.wait_for(
        "the script error",
        &format!("document.querySelector('#sc-errors li[data-line=\"{line}\"]') !== null && document.getElementById('sc-save').disabled"),
        WAIT,
    )
    .await;
    let msg = b
        .eval("document.querySelector('#sc-errors li').textContent")
        .await;
    assert!(msg.as_str().unwrap().contains("verify_adress"), "{msg}");
    // Clicking the error puts the cursor on that line.
    b.click("#sc-errors li").await;
    let at = b
        .eval("(() => { const t = document.getElementById('sc-text'); return t.value.slice(0, t.selectionStart).split('\\n').length; })()")
        .await;
    assert_eq!(at, json!(line));
    b.screenshot(&shots.join("4-script-error.png")).await;

    // Fix it with an edit, save: version 1, by this key, in the history.
    let edited = SCRIPT.replacen("耽误您一分钟可以吗？", "耽误您一分钟，可以吗？", 1);
    b.type_into("#sc-text", &edited, true).await;
    b.wait_for(
        "the fixed script to validate",
        "document.getElementById('sc-status').className === 'status ok' && !document.getElementById('sc-save').disabled",
        WAIT,
    )
    .await;
    b.click("#sc-save").await;
    b.wait_for(
        "the saved version in the history",
        "document.querySelectorAll('#histtab tbody tr').length === 2",
        WAIT,
    )
    .await;
    assert_eq!(
        std::fs::read_to_string(scripts.join("order_confirmation.zh.yaml")).unwrap(),
        edited
    );
    let who = b
        .eval("document.querySelector('#histtab tbody tr').cells[1].textContent")
        .await;
    assert!(who.as_str().unwrap().contains("root"), "{who}");

    // The script's stored test cases run against the editor's text.
    b.click("#sc-test").await;
    b.wait_for(
        "the case results",
        "document.querySelectorAll('#casetab tbody tr').length > 0",
        WAIT,
    )
    .await;
    let (pass, fail) = (
        b.eval("document.querySelectorAll('#casetab tr.pass').length")
            .await,
        b.eval("document.querySelectorAll('#casetab tr.fail').length")
            .await,
    );
    assert!(
        pass.as_u64().unwrap() >= 10 && fail == json!(0),
        "{pass} passed, {fail} failed"
    );

    // Chat with the saved script: the opening prompt, then an answer understood.
    b.click("#chat-start").await;
    b.wait_for(
        "the opening prompt",
        "document.querySelectorAll('#chat-log .bot').length > 0",
        WAIT,
    )
    .await;
    let opening = b
        .eval("document.querySelector('#chat-log .bot').textContent")
        .await;
    assert!(opening.as_str().unwrap().contains("[opening]"), "{opening}");
    b.type_into("#chat-in", "是的，是我", true).await;
    b.press("Enter").await;
    b.wait_for(
        "the bot's answer",
        "document.querySelector('#chat-log .me .meta') !== null && [...document.querySelectorAll('#chat-log .bot')].some(d => d.textContent.includes('[verify_address]'))",
        WAIT,
    )
    .await;
    let heard = b
        .eval("document.querySelector('#chat-log .me .meta').textContent")
        .await;
    assert!(heard.as_str().unwrap().contains("affirm"), "{heard}");
    b.screenshot(&shots.join("5-script-chat.png")).await;

    // Prompt preview (试听): a click on a state in the flow speaks its variants with the
    // bot's own voice; the audio element holds seconds of 8 kHz WAV.
    b.click("#sc-graph g[data-state=opening]").await;
    b.wait_for(
        "the opening's prompt audio",
        "(() => { const a = document.getElementById('pv-audio'); return a.src.startsWith('data:audio/wav') && a.readyState >= 1 && a.duration > 2 && document.querySelectorAll('#pv-variants .pv-variant').length === 2; })()",
        WAIT,
    )
    .await;
    let title = b
        .eval("document.getElementById('pv-title').textContent")
        .await;
    assert_eq!(title, json!("[opening] happy"));
    let first = b
        .eval("document.querySelector('#pv-variants .pv-variant').textContent")
        .await;
    assert!(first.as_str().unwrap().contains("张先生"), "{first}");

    // The flow editor. Drag opening's port onto offer_check and pick the intent: the
    // text gets exactly the lines `waihu_dialog::edit` writes (two in `on`, the intent
    // in `expect`), the arrow is drawn, the edited line is marked in the gutter.
    use waihu_dialog::edit::{apply, Edit};
    let editor_text = "document.getElementById('sc-text').value";
    connect_by_drag(&mut b, "opening", "offer_check", "price_concern").await;
    b.wait_for(
        "the new arrow",
        "document.querySelector('#sc-graph line.edge[data-from=opening][data-rule=\"4\"][data-to=offer_check]') !== null && document.getElementById('sc-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let connect = Edit::Connect {
        from: "opening".into(),
        to: "offer_check".into(),
        intent: Some("price_concern".into()),
    };
    let connected = apply(&edited, &connect).unwrap();
    assert_eq!(b.eval(editor_text).await, json!(connected.text));
    let marked = b
        .eval("document.querySelector('#sc-gutter em').textContent")
        .await;
    assert_eq!(marked, json!(connected.line.to_string()));
    b.screenshot(&shots.join("6-flow-connected.png")).await;
    // Drag the new arrow's tip onto retain: only its `goto` changes.
    b.drag(
        "#sc-graph circle.tip[data-from=opening][data-rule=\"4\"]",
        "#sc-graph g[data-state=retain]",
    )
    .await;
    b.wait_for(
        "the moved arrow",
        "document.querySelector('#sc-graph line.edge[data-from=opening][data-rule=\"4\"][data-to=retain]') !== null",
        WAIT,
    )
    .await;
    let moved = apply(
        &connected.text,
        &Edit::Retarget {
            from: "opening".into(),
            rule: 4,
            to: "retain".into(),
        },
    )
    .unwrap();
    assert_eq!(b.eval(editor_text).await, json!(moved.text));
    // Select the arrow and delete it: the text is the saved one again, except for
    // the intent the state now expects.
    b.eval("document.querySelector('#sc-graph line.hit[data-from=opening][data-rule=\"4\"]').dispatchEvent(new MouseEvent('click', {bubbles: true})); 0").await;
    b.wait_for(
        "the arrow's form",
        "!document.getElementById('fe-edge').hidden",
        WAIT,
    )
    .await;
    b.click("#fe-edge-delete").await;
    b.wait_for(
        "the arrow gone",
        "document.querySelector('#sc-graph line.edge[data-from=opening][data-rule=\"4\"]') === null && document.getElementById('sc-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let expects = edited.replacen(
        "intents: [affirm, deny, busy_callback, wrong_number, cancel_order]",
        "intents: [affirm, deny, busy_callback, wrong_number, cancel_order, price_concern]",
        1,
    );
    assert_ne!(expects, edited);
    assert_eq!(b.eval(editor_text).await, json!(expects));
    // A new state: drawn at once (unreachable, so the script has an error), then
    // connected by a drag, and the script is valid again.
    b.type_into("#fe-name", "price_talk", true).await;
    b.type_into(
        "#fe-say",
        "价格的问题我帮您反馈给专员，稍后联系您，再见。",
        true,
    )
    .await;
    b.type_into("#fe-end", "declined", true).await;
    b.click("#fe-add").await;
    b.wait_for(
        "the new state",
        "document.querySelector('#sc-graph g[data-state=price_talk]') !== null && document.getElementById('sc-status').className === 'status bad'",
        WAIT,
    )
    .await;
    connect_by_drag(&mut b, "verify_time", "price_talk", "price_concern").await;
    b.wait_for(
        "the script valid again",
        "document.querySelector('#sc-graph line.edge[data-from=verify_time][data-to=price_talk]') !== null && document.getElementById('sc-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let text = b.eval(editor_text).await;
    let p = waihu_dialog::load_str(text.as_str().unwrap(), "edited.yaml").unwrap();
    assert_eq!(
        p.states
            .iter()
            .find(|s| s.name == "price_talk")
            .unwrap()
            .end
            .as_deref(),
        Some("declined")
    );
    b.screenshot(&shots.join("7-flow-new-state.png")).await;
    // Arranging: `verify_time`'s box is dragged 120 px right and 60 px down; the
    // position is kept beside the script (its text untouched), the box is drawn there
    // again after a reload, and 自动排列 puts it back.
    let rect_of = |state: &str| {
        format!("(() => {{ const r = document.querySelector('#sc-graph g[data-state={state}] rect'); return [Number(r.getAttribute('x')), Number(r.getAttribute('y'))]; }})()")
    };
    let xy = |v: &Value| -> Vec<f64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect()
    };
    let before = xy(&b.eval(&rect_of("verify_time")).await);
    // CSS pixels per canvas unit.
    let scale = b
        .eval("document.getElementById('sc-graph').getScreenCTM().a")
        .await
        .as_f64()
        .unwrap();
    let saved_text = std::fs::read_to_string(scripts.join("order_confirmation.zh.yaml")).unwrap();
    b.drag_by("#sc-graph g[data-state=verify_time] rect", 120.0, 60.0)
        .await;
    let layout = "/api/scripts/order_confirmation.zh/layout";
    let moved = kept_layout(&s, layout, |p| !p["verify_time"].is_null())
        .await
        .expect("the layout saved after the drag")["verify_time"]
        .clone();
    let moved = vec![moved["x"].as_f64().unwrap(), moved["y"].as_f64().unwrap()];
    assert_eq!(xy(&b.eval(&rect_of("verify_time")).await), moved);
    for (i, d) in [120.0, 60.0].into_iter().enumerate() {
        let want = before[i] + d / scale;
        assert!(
            (moved[i] - want).abs() <= 2.0,
            "moved to {moved:?}, from {before:?} by {d} px at {scale} px per unit"
        );
    }
    assert_eq!(
        std::fs::read_to_string(scripts.join("order_confirmation.zh.yaml")).unwrap(),
        saved_text,
        "arranging the canvas does not touch the script"
    );
    b.screenshot(&shots.join("7b-flow-arranged.png")).await;
    b.goto(&s.url(&format!("/console?key={}#scripts", s.admin)))
        .await;
    b.wait_for(
        "the arranged flow after a reload",
        "document.querySelector('#sc-graph g[data-state=verify_time]') !== null && !document.getElementById('sc-graph-auto').hidden",
        WAIT,
    )
    .await;
    assert_eq!(xy(&b.eval(&rect_of("verify_time")).await), moved);
    b.click("#sc-graph-auto").await;
    b.wait_for(
        "the automatic layout back",
        "document.getElementById('sc-graph-auto').hidden",
        WAIT,
    )
    .await;
    assert_ne!(xy(&b.eval(&rect_of("verify_time")).await), moved);
    kept_layout(&s, layout, |p| *p == json!({}))
        .await
        .expect("自动排列 clears the kept layout");

    // Campaigns: a forecast over the uploaded list before launch, drawn per day.
    b.click("nav button[data-page=campaigns]").await;
    b.eval("document.getElementById('cp-start').value = '2026-12-08T08:00'; document.getElementById('cp-deadline').value = '2026-12-10T18:00'; 0").await;
    b.click("#cp-forecast").await;
    b.wait_for(
        "the forecast",
        "!document.getElementById('fc-cards').hidden",
        WAIT,
    )
    .await;
    let contacts = b
        .eval("Number(document.getElementById('fc-contacts').textContent)")
        .await;
    let (_, listed) = s.get(&s.analyst, "/api/customers?limit=1").await;
    assert_eq!(
        contacts, listed["total"],
        "every customer is in the forecast"
    );
    let points = b
        .eval("document.querySelectorAll('#fc-chart circle').length")
        .await;
    assert_eq!(points, json!(3), "one point per day");
    let summary = b
        .eval("document.getElementById('fc-summary').textContent")
        .await;
    assert!(summary.as_str().unwrap().contains("预计触达"), "{summary}");
    assert_eq!(
        b.eval("document.getElementById('cp-launch').disabled")
            .await,
        json!(false)
    );
    b.screenshot(&shots.join("6-campaign-forecast.png")).await;

    // The wizard: the stored segments and scripts become a campaign file, which
    // the forecast checks (errors at their lines) and predicts.
    let (st, applied) = s
        .send(
            reqwest::Method::POST,
            &s.operator,
            "/api/segments/apply",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    assert_eq!(st, 200, "{applied}");
    b.click("nav button[data-page=scripts]").await;
    b.click("nav button[data-page=campaigns]").await;
    b.wait_for(
        "the wizard's segments",
        "document.querySelectorAll('#wz-segs tbody tr').length > 1 && document.querySelector('#wz-segs .wz-script option') !== null",
        WAIT,
    )
    .await;
    let picked = b
        .eval(
            "(() => { const rows = [...document.querySelectorAll('#wz-segs tbody tr')]; \
               rows.forEach((tr, i) => { tr.querySelector('.wz-use').checked = i < 2; }); \
               document.getElementById('wz-name').value = 'wizard-test'; \
               document.getElementById('wz-windows').value = '09:00-12:00, 25:00-26:00'; \
               return rows.slice(0, 2).map(tr => tr.dataset.segment); })()",
        )
        .await;
    b.click("#wz-build").await;
    b.wait_for(
        "the wizard's bad window named at its line",
        "document.querySelectorAll('#cp-errors li').length > 0 && document.getElementById('fc-summary').textContent.startsWith('✗')",
        WAIT,
    )
    .await;
    let err = b
        .eval("document.querySelector('#cp-errors li').textContent")
        .await;
    assert!(err.as_str().unwrap().contains("25:00"), "{err}");
    b.eval("document.getElementById('wz-windows').value = '09:00-12:00, 14:00-20:00'; 0")
        .await;
    b.click("#wz-build").await;
    b.wait_for(
        "the wizard's campaign forecast",
        "document.getElementById('fc-summary').textContent.startsWith('✓') && document.getElementById('cp-text').value.includes('wizard-test')",
        WAIT,
    )
    .await;
    let yaml = b.eval("document.getElementById('cp-text').value").await;
    let yaml = yaml.as_str().unwrap();
    for seg in picked.as_array().unwrap() {
        assert!(
            yaml.contains(&format!("name: {seg}")),
            "{seg} missing from:\n{yaml}"
        );
    }
    assert_eq!(yaml.matches(", script: ").count(), 2, "{yaml}");
    assert!(
        yaml.contains("active: {from: 2026-12-08, to: 2026-12-10}"),
        "{yaml}"
    );
    // Launched, it shows on the calendar on the days it may dial.
    b.click("#cp-launch").await;
    b.wait_for(
        "the wizard's campaign launched",
        "document.getElementById('msg').className === 'ok' && document.getElementById('msg').textContent.includes('#')",
        WAIT,
    )
    .await;
    let days = b
        .eval(
            "calMonth = new Date(2026, 11, 1); drawCalendar().then(() => \
               [...document.querySelectorAll('#cal td')].filter(td => [...td.querySelectorAll('.ev')].some(e => e.textContent.includes('wizard-test'))).map(td => td.dataset.date))",
        )
        .await;
    assert_eq!(
        days,
        json!(["2026-12-08", "2026-12-09", "2026-12-10"]),
        "the campaign's active dates"
    );
    let (_, listed) = s.get(&s.analyst, "/api/campaigns").await;
    let made = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "wizard-test")
        .unwrap();
    assert_eq!(
        made["active"],
        json!({"from": "2026-12-08", "to": "2026-12-10"})
    );
    assert_eq!(made["state"], "running");
    b.screenshot(&shots.join("6b-campaign-wizard.png")).await;
    b.click("nav button[data-page=scripts]").await;

    // The English switch.
    b.click("#lang").await;
    let tab = b
        .eval("document.querySelector('nav button[data-page=scripts]').textContent")
        .await;
    assert_eq!(tab, json!("Scripts"));
    b.screenshot(&shots.join("7-script-en.png")).await;
    let errors = b.page_errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:?}");
    eprintln!("console screenshots in {}", shots.display());
    drop(b);
    s.stop().await;
}

/// The voice test: Chromium's fake microphone plays a WAV (silence through the
/// bot's opening, then "Yes, speaking.") into the console's WebRTC call; the
/// bot (the phone pipeline) hears it as `affirm` and moves on, and the page
/// hears its spoken reply. Prints the mouth-to-ear latency measured in the page
/// beside the bot's own end-of-speech-to-first-audio figure for the same turn.
#[tokio::test]
async fn voice_test_over_webrtc() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) || !waihu_testkit::have_peer("espeak-ng") {
        return;
    }
    const EN: &str = include_str!("../../../examples/scripts/order_confirmation.en.yaml");
    let s = Server::start(waihu_server::Config::default()).await;
    let scripts = with_knowledge(&s);
    std::fs::write(scripts.join("order_confirmation.en.yaml"), EN).unwrap();
    // The bot's recogniser, where setup installed it (a server looks under its data directory).
    std::os::unix::fs::symlink(
        waihu_testkit::models_dir(),
        s.store.data_dir().join("models"),
    )
    .unwrap();
    // How long the opening lasts, as the bot will say it (its longest variant).
    let (st, pv) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/prompt-audio",
            Some(json!({"yaml": EN, "state": "opening"})),
        )
        .await;
    assert_eq!(st, 200, "{pv}");
    let opening_ms = pv["variants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["ms"].as_u64().unwrap())
        .max()
        .unwrap();
    // The callee: quiet through the opening, an answer, then quiet.
    let work = tempfile::tempdir().unwrap();
    let said = work.path().join("said.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&said)
        .arg("Yes, speaking.")
        .status()
        .unwrap();
    assert!(ok.success());
    let pcm = waihu_audio::wav::read_wav(&said).unwrap();
    let ms = |n: u64| vec![0i16; (n * u64::from(pcm.rate) / 1000) as usize];
    let mut samples = ms(opening_ms + 4000);
    samples.extend_from_slice(&pcm.samples);
    samples.extend(ms(8000));
    let mic = work.path().join("mic.wav");
    waihu_audio::wav::write_wav(&mic, pcm.rate, &samples).unwrap();
    let answer_at_ms = opening_ms + 4000;

    let profile = tempfile::tempdir().unwrap();
    let args = waihu_cdp::fake_microphone(&mic);
    let mut b = Browser::launch(profile.path(), &args).await;
    b.goto(&s.url(&format!("/console?key={}#scripts", s.admin)))
        .await;
    b.wait_for(
        "the script to load",
        "document.getElementById('sc-status').className === 'status ok'",
        WAIT,
    )
    .await;
    let started = std::time::Instant::now();
    b.click("#vt-start").await;
    // Waited for here rather than with `wait_for`, to say what the call did if it fails.
    let call = Duration::from_millis(answer_at_ms + 30_000);
    let understood = "window.vtNotes.some(n => n.kind === 'turn' && n.turn.speaker === 'callee' && n.turn.intent === 'affirm')";
    while b.eval(understood).await != json!(true) {
        if started.elapsed() > call {
            let state = b
                .eval("JSON.stringify({status: document.getElementById('vt-status').textContent, msg: document.getElementById('msg').textContent, notes: window.vtNotes, ended: window.vtEnded, mic: window.vtLevels.mic.length, bot: window.vtLevels.bot.length, micLoud: window.vtLevels.mic.filter(([t, r]) => r > 0.02).length, botLoud: window.vtLevels.bot.filter(([t, r]) => r > 0.02).length})")
                .await;
            let id = b.eval("window.vtId").await;
            let (_, api) = s
                .get(
                    &s.analyst,
                    &format!("/api/scripts/voice/{}", id.as_str().unwrap_or("none")),
                )
                .await;
            panic!(
                "the callee's answer was not understood in {call:?}: page {state}; server {api}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    b.wait_for(
        "the reply heard in the page",
        "vtTurns().length > 0 && window.vtNotes.some(n => n.kind === 'state' && n.state === 'verify_address')",
        Duration::from_secs(20),
    )
    .await;
    // Let the reply play out, then hang up.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let notes = b.eval("window.vtNotes").await;
    let turns = b.eval("vtTurns()").await;
    let bot_voiced = b
        .eval("window.vtLevels.bot.filter(([t, r]) => r > 0.02).length * 20")
        .await;
    b.screenshot(&screens().join("8-voice-test.png")).await;
    let id = b.eval("window.vtId").await;
    let session = format!("/api/scripts/voice/{}", id.as_str().unwrap());
    b.click("#vt-stop").await;
    let hung_up = std::time::Instant::now();
    let ended = loop {
        let (_, v) = s.get(&s.analyst, &session).await;
        if !v["ended"].is_null() {
            break v["ended"].clone();
        }
        assert!(
            hung_up.elapsed() < Duration::from_secs(40),
            "the call did not end after the hang-up: {v}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    b.wait_for(
        "the page's report",
        "window.vtEnded !== null && window.vtEnded !== undefined",
        WAIT,
    )
    .await;
    let heard = notes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "turn" && n["turn"]["speaker"] == "callee")
        .unwrap()["turn"]
        .clone();
    let text = heard["text"].as_str().unwrap().to_lowercase();
    assert!(text.contains("yes"), "the bot heard {heard}");
    // Chromium offers Opus first; the leg takes it by default.
    assert_eq!(ended["leg"]["codec"], "opus", "{ended}");
    assert_eq!(ended["leg"]["undecodable"], 0, "{ended}");
    assert!(
        ended["leg"]["packets_in"].as_u64().unwrap() > 100,
        "{ended}"
    );
    // The reply was heard in the page: the bot's audio after the answer lasts seconds.
    assert!(
        bot_voiced.as_u64().unwrap() > 2000,
        "{bot_voiced} ms of the bot heard"
    );
    let t = &turns[0];
    let mouth_to_ear = t[2].as_f64().unwrap();
    let bot_side = ended["bot"]["latencies"][0]["total_ms"]
        .as_f64()
        .unwrap_or(f64::NAN);
    println!(
        "voice test over WebRTC: heard {text:?} as {}; mouth-to-ear {mouth_to_ear:.0} ms in the page, end of speech to first audio {bot_side:.0} ms in the bot; call {:.1} s",
        heard["intent"],
        started.elapsed().as_secs_f64()
    );
    assert!(mouth_to_ear > 0.0 && mouth_to_ear < 10_000.0, "{turns}");
    s.stop().await;
}
