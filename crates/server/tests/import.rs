//! `POST /api/customers/import`: admin only, the CLI's JSON report, rejects
//! written under the data directory, re-import idempotent.
mod common;

use common::Server;

const CSV: &str = "姓名,手机号,购买频次\n王芳,13700002222,3\n坏号,12345,1\n周杰,13600003333,5\n";

async fn post_csv(s: &Server, key: &str, query: &str, body: &str) -> (u16, serde_json::Value) {
    let r = s
        .client
        .post(s.url(&format!("/api/customers/import{query}")))
        .bearer_auth(key)
        .header("content-type", "text/csv")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn admin_imports_a_csv_body_with_the_cli_report() {
    let s = Server::start(waihu_server::Config::default()).await;
    let before = s.store.customer_count().await.unwrap();

    for key in [&s.analyst, &s.operator] {
        let (st, body) = post_csv(&s, key, "", CSV).await;
        assert_eq!(st, 403, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");
    }
    assert_eq!(s.store.customer_count().await.unwrap(), before);

    let (st, r) = post_csv(&s, &s.admin, "?name=crm.csv&batch=2", CSV).await;
    assert_eq!(st, 201, "{r}");
    let keys: Vec<&str> = r.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    let mut want = [
        "file",
        "encoding",
        "created",
        "updated",
        "unchanged",
        "rejected",
        "rejects_file",
        "seconds",
        "rows_per_s",
    ];
    let mut got = keys.clone();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);
    assert_eq!(r["file"], "crm.csv");
    assert_eq!(r["encoding"], "UTF-8");
    assert_eq!(
        (&r["created"], &r["updated"], &r["rejected"]),
        (&2.into(), &0.into(), &1.into())
    );
    let rejects = r["rejects_file"].as_str().unwrap();
    assert!(
        rejects.starts_with(&s.store.data_dir().join("rejects").display().to_string()),
        "{rejects}"
    );
    assert!(std::fs::read_to_string(rejects).unwrap().contains("坏号"));
    assert_eq!(s.store.customer_count().await.unwrap(), before + 2);

    // The same body again changes nothing.
    let (st, r) = post_csv(&s, &s.admin, "?name=crm.csv", CSV).await;
    assert_eq!(st, 201, "{r}");
    assert_eq!(
        (&r["created"], &r["updated"], &r["unchanged"]),
        (&0.into(), &0.into(), &2.into())
    );

    // A body that is not a customer list names the problem.
    let (st, r) = post_csv(&s, &s.admin, "", "a,b\n1,2\n").await;
    assert_eq!(st, 422, "{r}");
    assert_eq!(r["error"]["code"], "invalid_csv");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no phone column"),
        "{r}"
    );
    let (st, r) = post_csv(&s, &s.admin, "?region=XX", CSV).await;
    assert_eq!(st, 400, "{r}");
    s.stop().await;
}
