//! The console's API over a real server and store: an upload with rejected
//! rows and their download, segment rules checked and previewed as typed,
//! scripts validated, saved with versions and conflicts, and a text chat.
mod common;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

const EXAMPLE_CSV: &str = include_str!("../../../examples/customers.csv");
const SEGMENTS: &str = include_str!("../../../examples/segments.yaml");
const SCRIPT: &str = include_str!("../../../examples/scripts/order_confirmation.zh.yaml");

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> u64 {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in the text")) as u64
        + 1
}

async fn upload(s: &Server, key: &str, name: &str, body: String) -> (u16, Value) {
    let r = s
        .client
        .post(s.url(&format!("/api/customers/import?name={name}")))
        .bearer_auth(key)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn upload_then_download_the_rejected_rows() {
    let s = Server::start(waihu_server::Config::default()).await;
    // The example list has 3 invalid rows of its own; two more are appended.
    let (_, plain) = upload(&s, &s.admin, "plain.csv", EXAMPLE_CSV.into()).await;
    let own_rejects = plain["rejected"].as_u64().unwrap();
    let valid = plain["created"].as_u64().unwrap();
    let csv = format!("{EXAMPLE_CSV}C999998,坏号码,12345,上海,普通,1,1,1,1,1,是,2025-01-01,DD1,1\nC999999,空号码,,北京,普通,1,1,1,1,1,否,2025-01-01,DD2,2\n");
    let (st, r) = upload(&s, &s.admin, "list.csv", csv.clone()).await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(r["unchanged"].as_u64().unwrap(), valid, "{r}");
    assert_eq!(r["rejected"].as_u64().unwrap(), own_rejects + 2, "{r}");
    let path = r["rejects_file"].as_str().unwrap();
    let file = std::path::Path::new(path)
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();

    // Only admins (who import) download rejects; names cannot leave the directory.
    for (key, want) in [(&s.analyst, 403), (&s.operator, 403)] {
        let r = s
            .client
            .get(s.url(&format!("/api/rejects/{file}")))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want);
    }
    for bad in ["..%2F..%2Fkeys.csv", ".hidden.csv", "x.txt"] {
        let r = s
            .client
            .get(s.url(&format!("/api/rejects/{bad}")))
            .bearer_auth(&s.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "{bad}");
    }
    let r = s
        .client
        .get(s.url(&format!("/api/rejects/{file}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(file));
    let text = r.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(text.trim_start_matches('\u{feff}').as_bytes());
    let lines: Vec<(u64, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[0].parse().unwrap(), r[1].to_string())
        })
        .collect();
    let total_lines = csv.lines().count() as u64;
    assert_eq!(lines.len() as u64, own_rejects + 2, "{text}");
    assert_eq!(
        lines[lines.len() - 2..],
        [
            (total_lines - 1, "手机号".into()),
            (total_lines, "手机号".into())
        ],
        "{text}"
    );
    s.stop().await;
}

#[tokio::test]
async fn segment_rules_are_checked_and_previewed_as_typed() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, report) = upload(&s, &s.admin, "customers.csv", EXAMPLE_CSV.into()).await;
    assert_eq!(st, 201);
    let (st, attrs) = s.get(&s.analyst, "/api/segments/attributes").await;
    assert_eq!(st, 200);
    let names: Vec<&str> = attrs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    for want in ["purchase_freq", "avg_order", "member_level", "has_app"] {
        assert!(names.contains(&want), "{want} not in {names:?}");
    }

    let (st, p) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/segments/preview",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["ok"], true, "{p}");
    let total = p["total"].as_u64().unwrap();
    // The server's fixture has 3 customers before the upload.
    assert_eq!(total, report["created"].as_u64().unwrap() + 3);
    let rows = p["rows"].as_array().unwrap();
    assert_eq!(
        rows.iter()
            .map(|r| r["customers"].as_u64().unwrap())
            .sum::<u64>(),
        total
    );
    for r in rows {
        for sample in r["samples"].as_array().unwrap() {
            assert!(
                sample["phone"].as_str().unwrap().contains('*'),
                "unmasked sample {sample}"
            );
        }
    }
    assert!(
        rows.iter()
            .any(|r| r["segment"] == "high_value" && r["customers"].as_u64().unwrap() > 0),
        "{p}"
    );

    // A typo in an attribute name and a syntax error: both at their lines.
    let broken = SEGMENTS
        .replace("rule: last_interaction > 90", "rule: last_interacton > 90")
        .replace(
            "rule: interaction_count > 3 && last_purchase < 30",
            "rule: interaction_count > > 3",
        );
    let (st, p) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/segments/preview",
            Some(json!({"rules": broken})),
        )
        .await;
    assert_eq!(st, 200, "{p}");
    assert_eq!(p["ok"], false, "{p}");
    let errors = p["errors"].as_array().unwrap();
    let lines: Vec<u64> = errors.iter().map(|e| e["line"].as_u64().unwrap()).collect();
    assert!(lines.contains(&line_of(&broken, "last_interacton")), "{p}");
    assert!(
        lines.contains(&line_of(&broken, "interaction_count > > 3")),
        "{p}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("last_interacton")),
        "{p}"
    );

    // Applying stores the segments, for operators and admins only.
    let (st, _) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/segments/apply",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, a) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/segments/apply",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    assert_eq!((st, &a["applied"]), (200, &json!(true)), "{a}");
    let (_, seg) = s.get(&s.analyst, "/api/segments").await;
    let stored: u64 = seg["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["customers"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(stored, total, "{seg}");

    let (st, e) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/segments/preview",
            Some(json!({"rules": SEGMENTS, "samples": 500})),
        )
        .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (400, Some("bad_body")),
        "{e}"
    );
    s.stop().await;
}

#[tokio::test]
async fn scripts_are_validated_saved_with_versions_and_chatted_with() {
    let s = Server::start(waihu_server::Config::default()).await;
    let dir = s.store.data_dir().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("order.zh.yaml"), SCRIPT).unwrap();

    let (st, src) = s.get(&s.analyst, "/api/scripts/order.zh/source").await;
    assert_eq!(st, 200, "{src}");
    assert_eq!(src["yaml"], SCRIPT);
    let base = src["sha256"].as_str().unwrap().to_string();

    let (_, v) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/validate",
            Some(json!({"yaml": SCRIPT})),
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["graph"]["nodes"].as_array().unwrap().len() >= 5, "{v}");

    // Broken: a transition to a state that does not exist, reported at its line.
    let broken = SCRIPT.replacen("goto: verify_address", "goto: verify_adress", 1);
    let (_, v) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/validate",
            Some(json!({"yaml": broken})),
        )
        .await;
    assert_eq!(v["ok"], false, "{v}");
    let e = &v["errors"][0];
    assert_eq!(
        e["line"].as_u64().unwrap(),
        line_of(&broken, "goto: verify_adress"),
        "{v}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("verify_adress"),
        "{v}"
    );
    // The outline is there while the script is broken: the arrow to the misspelt
    // state is drawn and marked missing.
    let missing: Vec<_> = v["graph"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["missing"] == true)
        .collect();
    assert_eq!(missing.len(), 1, "{v}");
    assert_eq!(missing[0]["to"], "verify_adress");
    // A canvas edit fixes it: the arrow moved to the right state, one line changed.
    let (st, r) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/edit",
            Some(json!({"yaml": broken, "edit": {"op": "retarget", "from": missing[0]["from"], "rule": missing[0]["rule"], "to": "verify_address"}})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["ok"].as_bool(), r["yaml"].as_str()),
        (Some(true), Some(SCRIPT)),
        "{r}"
    );
    assert_eq!(
        r["line"].as_u64().unwrap(),
        line_of(&broken, "goto: verify_adress")
    );
    // Edits that cannot be made say why and where, and change nothing.
    for (edit, code) in [
        (
            json!({"op": "connect", "from": "opening", "to": "nowhere"}),
            "no_such_state",
        ),
        (
            json!({"op": "add_state", "name": "opening", "say": "x"}),
            "state_exists",
        ),
        (
            json!({"op": "rename_state", "from": "opening", "to": "a b"}),
            "bad_name",
        ),
        (
            json!({"op": "disconnect", "from": "opening", "rule": 99}),
            "no_such_transition",
        ),
    ] {
        let (st, r) = s
            .send(
                Method::POST,
                &s.analyst,
                "/api/scripts/edit",
                Some(json!({"yaml": SCRIPT, "edit": edit})),
            )
            .await;
        assert_eq!((st, r["error"]["code"].as_str()), (422, Some(code)), "{r}");
    }
    for bad in [
        json!({"yaml": SCRIPT, "edit": {"op": "teleport", "from": "opening"}}),
        json!({"yaml": SCRIPT, "edit": {"op": "disconnect", "from": "opening", "rule": -1}}),
        json!({"yaml": SCRIPT}),
    ] {
        let (st, r) = s
            .send(Method::POST, &s.analyst, "/api/scripts/edit", Some(bad))
            .await;
        assert_eq!(
            (st, r["error"]["code"].as_str()),
            (400, Some("bad_body")),
            "{r}"
        );
    }
    // A broken script is not saved.
    let (st, r) = s
        .send(
            Method::PUT,
            &s.operator,
            "/api/scripts/order.zh",
            Some(json!({"yaml": broken, "base": base})),
        )
        .await;
    assert_eq!(st, 422, "{r}");
    assert_eq!(r["errors"][0]["line"], e["line"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("order.zh.yaml")).unwrap(),
        SCRIPT
    );

    // Analysts read; operators save.
    let edited = SCRIPT.replacen("耽误您一分钟可以吗？", "耽误您一分钟，可以吗？", 1);
    assert_ne!(edited, SCRIPT);
    let (st, _) = s
        .send(
            Method::PUT,
            &s.analyst,
            "/api/scripts/order.zh",
            Some(json!({"yaml": edited, "base": base})),
        )
        .await;
    assert_eq!(st, 403);
    let (st, r) = s
        .send(
            Method::PUT,
            &s.operator,
            "/api/scripts/order.zh",
            Some(json!({"yaml": edited, "base": base})),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (
            r["version"].as_u64(),
            r["added"].as_u64(),
            r["removed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("order.zh.yaml")).unwrap(),
        edited
    );
    // A save over a text someone else changed since is refused.
    let (st, r) = s
        .send(
            Method::PUT,
            &s.operator,
            "/api/scripts/order.zh",
            Some(json!({"yaml": SCRIPT, "base": base})),
        )
        .await;
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{r}"
    );

    let (_, h) = s.get(&s.analyst, "/api/scripts/order.zh/history").await;
    let items = h["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{h}");
    assert_eq!(items[0]["version"], 1);
    assert!(items[0]["actor"].as_str().unwrap().contains("ops"), "{h}");
    assert_eq!(h["original_kept"], true);
    let (_, v0) = s.get(&s.analyst, "/api/scripts/order.zh/history/0").await;
    assert_eq!(v0["yaml"], SCRIPT);
    let (_, ev) = s.get(&s.analyst, "/api/events?type=script_saved").await;
    assert!(ev.to_string().contains("script_saved"), "{ev}");
    // Names cannot leave the scripts directory.
    let (st, _) = s.get(&s.analyst, "/api/scripts/..%2Fkeys/source").await;
    assert_eq!(st, 400);

    // Chat: the opening prompt, an answer understood, then a hang-up ends it.
    let (st, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"yaml": edited, "vars": {"name": "张先生"}})),
        )
        .await;
    assert_eq!(st, 200, "{c}");
    assert_eq!(c["state"], "opening", "{c}");
    assert!(
        c["says"][0]["text"].as_str().unwrap().contains("张先生"),
        "{c}"
    );
    let session = c["session"].as_str().unwrap().to_string();
    let (_, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"session": session, "line": "是的，是我"})),
        )
        .await;
    assert_eq!(c["heard"]["intent"], "affirm", "{c}");
    assert_eq!(c["state"], "verify_address", "{c}");
    let (_, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"session": session, "line": "/hangup"})),
        )
        .await;
    assert_eq!(c["ended"], true, "{c}");
    let (st, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"session": session, "line": "喂？"})),
        )
        .await;
    assert_eq!(st, 409, "{c}");
    let (st, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"session": "nope", "line": "喂？"})),
        )
        .await;
    assert_eq!(st, 404, "{c}");
    let (st, c) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/chat",
            Some(json!({"yaml": broken})),
        )
        .await;
    assert_eq!((st, &c["ok"]), (200, &json!(false)), "{c}");
    s.stop().await;
}

const CAMPAIGN: &str = include_str!("../../../examples/campaign-demo.zh.yaml");

#[tokio::test]
async fn a_campaign_is_forecast_over_the_stored_list() {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, _) = upload(&s, &s.admin, "customers.csv", EXAMPLE_CSV.into()).await;
    assert_eq!(st, 201);
    let (_, listed) = s.get(&s.analyst, "/api/customers?limit=1").await;
    let customers = listed["total"].as_u64().unwrap();
    // Tuesday 08:00 to Wednesday 20:00, Shanghai: two days of windows, 20 lines.
    let body = json!({"spec": CAMPAIGN, "start": "2026-12-08T08:00", "deadline": "2026-12-09T20:00", "runs": 3});
    let (st, r) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/campaigns/forecast",
            Some(body),
        )
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let f = &r["forecast"];
    assert_eq!(
        f["contacts"].as_u64().unwrap() + r["skipped"].as_u64().unwrap(),
        customers,
        "{r}"
    );
    let reached = f["reached"]["mid"].as_f64().unwrap();
    // Three tries each at the 30% prior: about 1 − 0.7³ ≈ 66% if the lines suffice.
    assert!((0.4..0.9).contains(&reached), "{r}");
    let days = f["days"].as_array().unwrap();
    assert_eq!(days.len(), 2, "{r}");
    assert!(days[0]["reached"]["mid"].as_f64().unwrap() <= reached);
    assert!(f["attempts"]["mid"].as_f64().unwrap() >= reached * f["contacts"].as_f64().unwrap());

    // Before the windows open in Shanghai only callees elsewhere (in their own
    // daytime) are dialled: windows are in the callee's local time.
    let (_, all) = s.get(&s.analyst, "/api/customers?limit=1000").await;
    let elsewhere = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["tz"] != "Asia/Shanghai")
        .count() as f64;
    assert!(elsewhere > 0.0);
    let body = json!({"spec": CAMPAIGN, "start": "2026-12-08T01:00", "deadline": "2026-12-08T08:59", "runs": 1});
    let (_, r) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/campaigns/forecast",
            Some(body),
        )
        .await;
    let attempts = r["forecast"]["attempts"]["high"].as_f64().unwrap();
    assert!(
        attempts > 0.0 && attempts <= elsewhere * 3.0,
        "{elsewhere} elsewhere: {r}"
    );
    assert!(
        r["forecast"]["reached"]["high"].as_f64().unwrap() * customers as f64 <= elsewhere,
        "{r}"
    );

    // A bad campaign file: the error at its line; a bad deadline: 400.
    let broken = CAMPAIGN.replace("channels: 20", "channels: many");
    let body = json!({"spec": broken, "deadline": "2026-12-09T20:00"});
    let (st, r) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/campaigns/forecast",
            Some(body),
        )
        .await;
    assert_eq!((st, &r["ok"]), (200, &json!(false)), "{r}");
    assert_eq!(
        r["errors"][0]["line"].as_u64().unwrap(),
        line_of(&broken, "channels: many"),
        "{r}"
    );
    for (start, deadline) in [
        ("2026-12-09T08:00", "2026-12-08T08:00"),
        ("2026-12-01T08:00", "2027-03-01T08:00"),
        ("2026-12-08T08:00", "next friday"),
    ] {
        let body = json!({"spec": CAMPAIGN, "start": start, "deadline": deadline});
        let (st, r) = s
            .send(
                Method::POST,
                &s.analyst,
                "/api/campaigns/forecast",
                Some(body),
            )
            .await;
        assert_eq!(st, 400, "{start} {deadline}: {r}");
    }
    s.stop().await;
}

/// An XLSX list as Excel writes it: phone numbers typed as numbers, a date
/// cell, a blank row, a bad number; rejects keep their sheet row numbers.
#[tokio::test]
async fn an_xlsx_list_is_imported_with_sheet_row_numbers() {
    use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};
    let s = Server::start(waihu_server::Config::default()).await;
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in ["姓名", "手机号", "城市", "注册日期", "备注"]
        .iter()
        .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let date = Format::new().set_num_format("yyyy-mm-dd");
    // Row 2: the number typed as a number; row 3: as text; row 4 blank; row 5 bad.
    ws.write_string(1, 0, "王芳").unwrap();
    ws.write_number(1, 1, 13_912_345_678.0).unwrap();
    ws.write_string(1, 2, "杭州").unwrap();
    ws.write_datetime_with_format(1, 3, ExcelDateTime::from_ymd(2024, 3, 9).unwrap(), &date)
        .unwrap();
    ws.write_string(1, 4, "第一行\n第二行").unwrap();
    ws.write_string(2, 0, "赵强").unwrap();
    ws.write_string(2, 1, "+86 139 0000 2222").unwrap();
    ws.write_string(4, 0, "坏号码").unwrap();
    ws.write_number(4, 1, 12345.0).unwrap();
    let body = wb.save_to_buffer().unwrap();
    let r = s
        .client
        .post(s.url("/api/customers/import?name=名单.xlsx"))
        .bearer_auth(&s.admin)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let report: Value = r.json().await.unwrap();
    assert_eq!(
        (report["created"].as_u64(), report["rejected"].as_u64()),
        (Some(2), Some(1)),
        "{report}"
    );
    let file = std::path::Path::new(report["rejects_file"].as_str().unwrap())
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let rejects = s
        .client
        .get(s.url(&format!("/api/rejects/{file}")))
        .bearer_auth(&s.admin)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line: u64 = rejects
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(line, 5, "the bad row is sheet row 5: {rejects}");
    // The stored customer has the typed number and the date as the sheet shows them.
    let (_, list) = s
        .get(
            &s.operator,
            "/api/customers?limit=100&reveal=true&reason=test",
        )
        .await;
    let wang = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "王芳")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(wang["phone"], "+8613912345678", "{wang}");
    assert_eq!(
        wang["attrs"]["registered_on"]["date"], "2024-03-09",
        "{wang}"
    );
    assert_eq!(
        wang["attrs"]["备注"]["text"], "第一行 第二行",
        "a line break in a cell keeps the row on one line"
    );

    // Not a workbook at all, but ZIP-signed: a clear 422.
    let r = s
        .client
        .post(s.url("/api/customers/import?name=x.xlsx"))
        .bearer_auth(&s.admin)
        .body(b"PK\x03\x04garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error"]["code"], "invalid_xlsx", "{e}");
    s.stop().await;
}

/// Every report that downloads as CSV downloads as XLSX with the same rows:
/// a header row, numbers as numbers, Chinese intact.
/// A server whose store holds the example customers, segmented.
async fn segmented() -> Server {
    let s = Server::start(waihu_server::Config::default()).await;
    let (st, _) = upload(&s, &s.admin, "customers.csv", EXAMPLE_CSV.into()).await;
    assert_eq!(st, 201);
    let (_, a) = s
        .send(
            Method::POST,
            &s.operator,
            "/api/segments/apply",
            Some(json!({"rules": SEGMENTS})),
        )
        .await;
    assert_eq!(a["applied"], true);
    s
}

#[tokio::test]
async fn reports_download_as_xlsx() {
    use calamine::{Data, Reader, Xlsx};
    let s = segmented().await;
    for path in [
        "/api/segments",
        "/api/customers",
        "/api/events",
        "/api/kpis",
    ] {
        let csv = report(&s, path, "csv").await.text().await.unwrap();
        let r = report(&s, path, "xlsx").await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .contains("spreadsheetml"),
            "{path}"
        );
        let bytes = r.bytes().await.unwrap().to_vec();
        let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).unwrap();
        let sheet = wb.sheet_names()[0].clone();
        let range = wb.worksheet_range(&sheet).unwrap();
        let mut rows = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
        let header: Vec<String> = rows.headers().unwrap().iter().map(String::from).collect();
        let first: Vec<String> = range
            .rows()
            .next()
            .unwrap()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(first, header, "{path}");
        assert_eq!(
            range.height(),
            rows.records().count() + 1,
            "{path}: same number of rows"
        );
        if path == "/api/segments" {
            let counts: Vec<&Data> = range
                .rows()
                .skip(1)
                .map(|r| &r[header.iter().position(|h| h == "customers").unwrap()])
                .collect();
            assert!(
                counts
                    .iter()
                    .all(|c| matches!(c, Data::Float(_) | Data::Int(_))),
                "numbers stay numbers: {counts:?}"
            );
            let text: String = range
                .rows()
                .flat_map(|r| r.iter().map(|c| c.to_string()))
                .collect();
            assert!(text.contains("高价值客户"), "Chinese intact");
        }
    }
    s.stop().await;
}

/// Report `path` as `format`, as an analyst.
async fn report(s: &Server, path: &str, format: &str) -> reqwest::Response {
    s.client
        .get(s.url(&format!("{path}?format={format}")))
        .bearer_auth(&s.analyst)
        .send()
        .await
        .unwrap()
}

/// The same reports as PDF, read back by poppler's `pdftotext`: every CSV
/// header and the Chinese segment names come out as text (fails when poppler
/// is missing and `CI` is set).
#[tokio::test]
async fn reports_download_as_pdf() {
    if !waihu_testkit::have_peer("pdftotext") {
        return;
    }
    let s = segmented().await;
    let dir = tempfile::tempdir().unwrap();
    for path in ["/api/segments", "/api/customers", "/api/kpis"] {
        let csv = report(&s, path, "csv").await.text().await.unwrap();
        let r = report(&s, path, "pdf").await;
        assert_eq!(r.status().as_u16(), 200, "{path}");
        assert_eq!(r.headers()["content-type"], "application/pdf", "{path}");
        let file = dir.path().join("r.pdf");
        std::fs::write(&file, r.bytes().await.unwrap()).unwrap();
        let out = std::process::Command::new("pdftotext")
            .args([file.to_str().unwrap(), "-"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{path}");
        let text = String::from_utf8(out.stdout).unwrap();
        let mut rows = csv::Reader::from_reader(csv.trim_start_matches('\u{feff}').as_bytes());
        for h in rows.headers().unwrap().iter() {
            assert!(text.contains(h), "{path}: column {h} missing from:\n{text}");
        }
        if path == "/api/segments" {
            assert!(text.contains("高价值客户"), "{text}");
        }
        if path == "/api/customers" {
            // Masked in the PDF as in the CSV.
            let first = rows.records().next().unwrap().unwrap();
            let phone = &first[rows
                .headers()
                .unwrap()
                .iter()
                .position(|h| h == "phone")
                .unwrap()];
            assert!(phone.contains('*') && text.contains(phone), "{phone}");
        }
    }
    let (st, e) = s.get(&s.analyst, "/api/customers?format=docx").await;
    assert_eq!(st, 400, "{e}");
    s.stop().await;
}

#[tokio::test]
async fn a_scripts_test_cases_run_from_the_console() {
    let s = Server::start(waihu_server::Config::default()).await;
    let dir = s.store.data_dir().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("order_confirmation.zh.yaml"), SCRIPT).unwrap();
    std::fs::write(
        dir.join("order_confirmation.cases.yaml"),
        include_str!("../../../examples/scripts/order_confirmation.cases.yaml"),
    )
    .unwrap();
    // The stored cases (found without the language suffix) all pass on the shipped script.
    let body = json!({"yaml": SCRIPT, "name": "order_confirmation.zh"});
    let (st, r) = s
        .send(Method::POST, &s.analyst, "/api/scripts/test", Some(body))
        .await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(r["cases_file"], "order_confirmation.cases.yaml");
    let total = r["results"].as_array().unwrap().len() as u64;
    assert!(total >= 10, "{r}");
    assert_eq!(
        (r["passed"].as_u64(), r["failed"].as_u64()),
        (Some(total), Some(0)),
        "{r}"
    );
    // An edit that breaks the happy path: the cases say which and why.
    let edited = SCRIPT.replacen("goto: verify_address", "goto: cancelled", 1);
    let body = json!({"yaml": edited, "name": "order_confirmation.zh"});
    let (_, r) = s
        .send(Method::POST, &s.analyst, "/api/scripts/test", Some(body))
        .await;
    assert!(r["failed"].as_u64().unwrap() > 0, "{r}");
    let failing = r["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["passed"] == false)
        .unwrap();
    assert!(
        !failing["failures"].as_array().unwrap().is_empty(),
        "{failing}"
    );
    // Cases sent inline; a broken case file is reported at its line.
    let body = json!({"yaml": SCRIPT, "cases": "cases:\n  - name: x\n    turns: 7\n"});
    let (_, r) = s
        .send(Method::POST, &s.analyst, "/api/scripts/test", Some(body))
        .await;
    assert_eq!(r["ok"], false, "{r}");
    assert_eq!(r["errors"][0]["line"], 3, "{r}");
    let (st, _) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/test",
            Some(json!({"yaml": SCRIPT, "name": "nothing.zh"})),
        )
        .await;
    assert_eq!(st, 404);
    s.stop().await;
}

/// Samples of a WAV data URL (`data:audio/wav;base64,...`), read back by the audio crate.
fn wav_of(url: &Value) -> (u32, Vec<i16>) {
    use base64::Engine as _;
    let b64 = url
        .as_str()
        .and_then(|u| u.strip_prefix("data:audio/wav;base64,"))
        .unwrap_or_else(|| panic!("not a WAV data URL: {url}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let pcm = waihu_audio::wav::parse_wav(&bytes).unwrap();
    (pcm.rate, pcm.samples)
}

fn rms(s: &[i16]) -> f64 {
    (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn prompt_previews_speak_each_variant_in_its_style() {
    // The bot's voice is espeak-ng by default: a test that cannot speak must fail in CI.
    if !waihu_testkit::have_peer("espeak-ng") {
        return;
    }
    let s = Server::start(waihu_server::Config::default()).await;
    let preview = |state: &str, vars: Value| {
        let body = json!({"yaml": SCRIPT, "state": state, "vars": vars});
        let s = &s;
        async move {
            s.send(
                Method::POST,
                &s.analyst,
                "/api/scripts/prompt-audio",
                Some(body),
            )
            .await
        }
    };
    // The opening's two variants, the customer's name given, the rest the script's examples.
    let (st, r) = preview("opening", json!({"name": "李女士"})).await;
    assert_eq!(st, 200, "{r}");
    assert_eq!(
        (r["ok"].as_bool(), r["style"].as_str()),
        (Some(true), Some("happy")),
        "{r}"
    );
    let variants = r["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 2, "{r}");
    let mut lengths = Vec::new();
    for v in variants {
        let text = v["text"].as_str().unwrap();
        assert!(
            text.contains("李女士") && text.contains("优选商城"),
            "{text}"
        );
        assert!(!text.contains("{{"), "{text}");
        let (rate, samples) = wav_of(&v["wav"]);
        assert_eq!(rate, 8000);
        let ms = samples.len() as u64 * 1000 / 8000;
        assert_eq!(v["ms"].as_u64(), Some(ms), "{v}");
        // Speech, not silence: seconds of it, and loud enough to hear.
        assert!(ms > 2000, "{} ms for «{text}»", ms);
        assert!(rms(&samples) > 300.0, "rms {} for «{text}»", rms(&samples));
        lengths.push(ms);
    }
    // The short variant is shorter.
    assert!(lengths[1] < lengths[0], "{lengths:?}");

    // What cannot be previewed says why.
    let (st, r) = preview("no_such", json!({})).await;
    assert_eq!(
        (st, r["error"]["code"].as_str()),
        (404, Some("no_such_state")),
        "{r}"
    );
    let (st, r) = s
        .send(
            Method::POST,
            &s.analyst,
            "/api/scripts/prompt-audio",
            Some(json!({"yaml": "name: x\nstates: [", "state": "opening"})),
        )
        .await;
    assert_eq!((st, r["ok"].as_bool()), (200, Some(false)), "{r}");
    assert!(r["errors"][0]["line"].as_u64().is_some(), "{r}");
    // Keys without a role in the console are refused.
    let r = s
        .client
        .post(s.url("/api/scripts/prompt-audio"))
        .json(&json!({"yaml": SCRIPT, "state": "opening"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

/// The flow canvas's arrangement is kept beside a saved script, not in it:
/// the YAML and its versions do not change; bad positions are refused by
/// field; a damaged layout file costs only the arrangement.
#[tokio::test]
async fn the_flow_layout_is_kept_beside_the_script() {
    let s = Server::start(waihu_server::Config::default()).await;
    let dir = s.store.data_dir().join("scripts");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("order.zh.yaml"), SCRIPT).unwrap();
    let path = "/api/scripts/order.zh/layout";

    let (st, v) = s.get(&s.analyst, path).await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["positions"], json!({}), "never arranged: {v}");

    // Any name the script can give a state (the editor allows `.`; a hand-written script more).
    let arranged = json!({"positions": {"opening": {"x": 400.0, "y": 12.0}, "verify_address": {"x": 40.5, "y": 300.0}, "步骤.2": {"x": 0.0, "y": 0.0}}});
    let (st, v) = s
        .send(Method::PUT, &s.analyst, path, Some(arranged.clone()))
        .await;
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["states"], 3, "{v}");
    let (_, v) = s.get(&s.operator, path).await;
    assert_eq!(v["positions"], arranged["positions"], "{v}");
    // The script itself is untouched: same text, no version.
    let (_, src) = s.get(&s.analyst, "/api/scripts/order.zh/source").await;
    assert_eq!(src["yaml"], SCRIPT);
    assert!(src["version"].is_null(), "{src}");

    for (body, code, needle) in [
        (
            json!({"positions": {"opening": {"x": 1e9, "y": 0}}}),
            "bad_position",
            "positions.opening.x",
        ),
        (
            json!({"positions": {"bad\nname": {"x": 1, "y": 0}}}),
            "bad_state",
            "is not a state name",
        ),
        (json!({"positions": {"opening": {"x": 1}}}), "", "y"),
        (
            json!({"positions": {"opening": {"x": 1, "y": 2, "z": 3}}}),
            "",
            "z",
        ),
    ] {
        let (st, v) = s
            .send(Method::PUT, &s.analyst, path, Some(body.clone()))
            .await;
        assert!(st == 400 || st == 422, "{body} → {st} {v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "{v}");
        }
        assert!(v.to_string().contains(needle), "{body} → {v}");
    }
    let many: serde_json::Map<String, Value> = (0..=waihu_server::console_layout::MAX_POSITIONS)
        .map(|i| (format!("s{i}"), json!({"x": 0, "y": 0})))
        .collect();
    let (st, v) = s
        .send(
            Method::PUT,
            &s.analyst,
            path,
            Some(json!({"positions": many})),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (400, Some("too_many")),
        "{v}"
    );
    // What was kept survived the refusals.
    let (_, v) = s.get(&s.analyst, path).await;
    assert_eq!(v["positions"], arranged["positions"], "{v}");

    // No script, no layout; a bad name is refused before the disk.
    let (st, v) = s
        .send(
            Method::PUT,
            &s.analyst,
            "/api/scripts/nothing.zh/layout",
            Some(arranged.clone()),
        )
        .await;
    assert_eq!(
        (st, v["error"]["code"].as_str()),
        (404, Some("no_such_script")),
        "{v}"
    );
    let (st, _) = s.get(&s.analyst, "/api/scripts/..%2Fx/layout").await;
    assert_eq!(st, 400);

    // A damaged file: the automatic layout, and the next save mends it.
    std::fs::write(dir.join(".layout/order.zh.json"), "{not json").unwrap();
    let (st, v) = s.get(&s.analyst, path).await;
    assert_eq!((st, &v["positions"]), (200, &json!({})), "{v}");
    let (st, _) = s
        .send(Method::PUT, &s.analyst, path, Some(arranged.clone()))
        .await;
    assert_eq!(st, 200);
    let (_, v) = s.get(&s.analyst, path).await;
    assert_eq!(v["positions"], arranged["positions"], "{v}");
}
