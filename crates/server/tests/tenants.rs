//! Tenants: one server over three stores (the installation's own and two
//! client companies'). Every route × every role × the other tenant: a
//! credential of one tenant never works in another (401), whether the other
//! tenant is named by header or by cookie; each tenant's lists hold only its
//! own rows; sign-in pins the browser to its tenant.
mod common;

use std::collections::BTreeMap;

use chrono::Utc;
use common::concrete;
use waihu_server::auth::{create_key, create_key_for, Need, Role};
use waihu_server::tenancy;
use waihu_store::Store;

struct Tenant {
    name: &'static str,
    store: Store,
    /// Credentials by label: API keys of every role, and sessions.
    keys: Vec<(String, String)>,
    sessions: Vec<(String, String, String)>,
    _dir: tempfile::TempDir,
}

async fn tenant(name: &'static str, csv: &str, file: &str, key: u8) -> Tenant {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([key; 32]))
        .await
        .unwrap();
    let now = Utc::now();
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import(file, src.encoding, &src.kinds.clone(), now)
        .await
        .unwrap();
    let rows: Vec<_> = src
        .next_batch(100)
        .unwrap()
        .into_iter()
        .filter_map(|r| r.ok())
        .collect();
    imp.write(&rows, now).await.unwrap();
    imp.finish(0, now).await.unwrap();
    let mut keys = Vec::new();
    for role in [Role::Analyst, Role::Operator, Role::Supervisor, Role::Admin] {
        let k = create_key(&store, &format!("{name}-{}", role.as_str()), role, now)
            .await
            .unwrap()
            .0;
        keys.push((format!("{} key", role.as_str()), k));
    }
    let agent = create_key_for(
        &store,
        &format!("{name}-agent"),
        Role::Agent,
        Some("a1"),
        now,
    )
    .await
    .unwrap()
    .0;
    keys.push(("agent key".into(), agent));
    Tenant {
        name,
        store,
        keys,
        sessions: Vec::new(),
        _dir: dir,
    }
}

const PASSWORD: &str = "tenant-password-1";

/// Sign `user` in to `tenant` (named by header): the session cookie, the
/// tenant cookie and the CSRF token.
async fn sign_in(
    c: &reqwest::Client,
    base: &str,
    tenant: &str,
    user: &str,
) -> (reqwest::StatusCode, Vec<String>, String) {
    let r = c
        .post(format!("{base}/api/auth/login"))
        .header(tenancy::HEADER, tenant)
        .json(&serde_json::json!({"user": user, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let csrf = r.json::<serde_json::Value>().await.unwrap()["csrf_token"]
        .as_str()
        .unwrap_or("")
        .to_string();
    (status, cookies, csrf)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_tenant_reaches_another() {
    let mut tenants = vec![
        tenant(tenancy::DEFAULT, common::CSV, "own.csv", 1).await,
        tenant(
            "acme",
            "姓名,手机号,会员\n赵一,13811110001,ACMEGOLD\n钱二,13811110002,ACMEGOLD\n",
            "acme-list.csv",
            2,
        )
        .await,
        tenant(
            "globex",
            "姓名,手机号,会员\n孙三,13922220003,GLOBEXVIP\n",
            "globex-list.csv",
            3,
        )
        .await,
    ];
    // The same user name in two tenants is two accounts.
    let hash = waihu_accounts::password::hash(PASSWORD).unwrap();
    for t in &tenants {
        for role in ["analyst", "operator", "supervisor", "admin"] {
            t.store
                .user_insert(&format!("u-{role}"), role, &hash, Utc::now())
                .await
                .unwrap();
        }
    }
    let cfg = waihu_server::Config {
        login_per_minute: 1000,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stores: Vec<(String, Store)> = tenants
        .iter()
        .map(|t| (t.name.to_string(), t.store.clone()))
        .collect();
    let task = tokio::spawn(waihu_server::serve_tenants(
        listener,
        None,
        stores.clone(),
        cfg.clone(),
        async move {
            let _ = rx.await;
        },
    ));
    let c = reqwest::Client::new();
    for t in tenants.iter_mut() {
        for role in ["analyst", "operator", "supervisor", "admin"] {
            let (st, cookies, csrf) = sign_in(&c, &base, t.name, &format!("u-{role}")).await;
            assert_eq!(st, 200, "{} {role}", t.name);
            // Sign-in pins the browser to the tenant.
            assert!(
                cookies.contains(&format!("{}={}", tenancy::COOKIE, t.name)),
                "{cookies:?}"
            );
            let session = cookies
                .iter()
                .find(|c| c.starts_with("waihu_session="))
                .unwrap()
                .clone();
            t.sessions.push((format!("{role} session"), session, csrf));
        }
    }

    // Every route × every credential of each tenant × every other tenant.
    let (_, mut routes) = waihu_server::app_tenants(stores, cfg).unwrap();
    routes.sort_by_key(|r| r.path == "/api/auth/logout");
    let mut bad = Vec::new();
    let mut tried = 0;
    for r in routes.iter().filter(|r| r.need != Need::Public) {
        let path = concrete(r.path);
        let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
        for from in &tenants {
            for to in tenants.iter().filter(|t| t.name != from.name) {
                let mut tries: Vec<(String, reqwest::RequestBuilder)> = Vec::new();
                let rq = || {
                    let mut rq = c.request(method.clone(), format!("{base}{path}"));
                    if method != reqwest::Method::GET {
                        rq = rq.header("content-type", "application/json").body("{}");
                    }
                    rq
                };
                for (label, k) in &from.keys {
                    tries.push((
                        format!("{label} by header"),
                        rq().bearer_auth(k).header(tenancy::HEADER, to.name),
                    ));
                }
                for (label, cookie, csrf) in &from.sessions {
                    // The tenant named by the cookie, as a browser would send it.
                    tries.push((
                        format!("{label} by cookie"),
                        rq().header(
                            "cookie",
                            format!("{cookie}; {}={}", tenancy::COOKIE, to.name),
                        )
                        .header("x-csrf-token", csrf),
                    ));
                }
                for (who, rq) in tries {
                    let status = rq.send().await.unwrap().status().as_u16();
                    tried += 1;
                    if status != 401 {
                        bad.push(format!(
                            "{} {}: {} {who} in {} got {status}",
                            r.method, r.path, from.name, to.name
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} leaks:\n{}", bad.len(), bad.join("\n"));
    eprintln!("{tried} cross-tenant requests, all refused");
    assert!(tried > 60 * 9 * 6, "{tried}");

    // Each tenant's own reads hold its rows and no other tenant's: every GET
    // without ids, as each tenant's admin.
    let marks: BTreeMap<&str, &str> = [
        (tenancy::DEFAULT, "own.csv"),
        ("acme", "ACMEGOLD"),
        ("globex", "GLOBEXVIP"),
    ]
    .into();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in routes
        .iter()
        .filter(|r| r.method == "GET" && !r.path.contains('{') && !r.path.contains("stream"))
    {
        for t in &tenants {
            let admin = &t.keys.iter().find(|(l, _)| l == "admin key").unwrap().1;
            let resp = c
                .get(format!("{base}{}", r.path))
                .bearer_auth(admin)
                .header(tenancy::HEADER, t.name)
                .send()
                .await
                .unwrap();
            let body = resp.text().await.unwrap();
            for (other, mark) in &marks {
                if body.contains(mark) {
                    if other == &t.name {
                        *seen.entry(t.name).or_default() += 1;
                    } else {
                        bad.push(format!(
                            "GET {} as {}: holds {other}'s {mark}",
                            r.path, t.name
                        ));
                    }
                }
            }
        }
    }
    assert!(bad.is_empty(), "{} leaks:\n{}", bad.len(), bad.join("\n"));
    // The marks are really served somewhere (the imports list, the attributes).
    for t in &tenants {
        assert!(seen.get(t.name).copied().unwrap_or(0) > 0, "{seen:?}");
    }

    // The browser's cookies alone reach the tenant signed into.
    let (_, cookie, _) = &tenants[1].sessions[0];
    let me: serde_json::Value = c
        .get(format!("{base}/api/auth/me"))
        .header("cookie", format!("{cookie}; {}=acme", tenancy::COOKIE))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"], "acme", "{me}");
    assert_eq!(me["user"], "u-analyst", "{me}");
    // Without a tenant the installation's own store answers.
    let (_, own_key) = &tenants[0].keys[0];
    let r = c
        .get(format!("{base}/api/auth/me"))
        .bearer_auth(own_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["tenant"],
        "default"
    );
    // An unknown tenant is named as such and its stale cookie cleared; a bad name is a 400.
    let r = c
        .get(format!("{base}/api/overview"))
        .header("cookie", format!("{}=initech", tenancy::COOKIE))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("waihu_tenant=;"));
    let j: serde_json::Value = r.json().await.unwrap();
    assert_eq!(j["error"]["code"], "unknown_tenant", "{j}");
    let r = c
        .get(format!("{base}/api/overview"))
        .header(tenancy::HEADER, "../acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A browser with an API key picks its tenant at /tenant/NAME (a cookie, then the dashboard).
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .get(format!("{base}/tenant/acme"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/");
    let picked = r.headers()["set-cookie"].to_str().unwrap();
    assert!(picked.starts_with("waihu_tenant=acme;"), "{picked}");
    let acme_key = &tenants[1].keys[0].1;
    let me: serde_json::Value = c
        .get(format!("{base}/api/me"))
        .bearer_auth(acme_key)
        .header("cookie", picked.split(';').next().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["tenant"], "acme", "{me}");
    for (path, status) in [("/tenant/initech", 404), ("/tenant/Bad_Name", 400)] {
        let r = no_redirect
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{path}");
    }
    // Signing in with the right password in the wrong tenant fails.
    let (st, _, _) = sign_in(&c, &base, "globex", "nobody-here").await;
    assert_eq!(st, 401);

    // --open cannot expose every tenant key-less.
    let open = waihu_server::Config {
        open: true,
        ..Default::default()
    };
    let both: Vec<_> = tenants
        .iter()
        .map(|t| (t.name.to_string(), t.store.clone()))
        .collect();
    assert!(waihu_server::app_tenants(both, open).is_err());

    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

/// The sign-in form's organisation field in a real headless Chromium: the
/// same user name and password in two tenants reach two different stores, and
/// the page shows which. Fails when Chromium is missing and `CI` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_to_the_tenant_it_names() {
    use std::time::Duration;
    use waihu_cdp::{Browser, CHROMIUM};
    if !waihu_testkit::have_peer_at("chromium", std::path::Path::new(CHROMIUM)) {
        return;
    }
    const WAIT: Duration = Duration::from_secs(15);
    let own = tenant(tenancy::DEFAULT, common::CSV, "own.csv", 1).await;
    let acme = tenant(
        "acme",
        "姓名,手机号\n赵一,13811110001\n钱二,13811110002\n孙三,13811110003\n李四,13811110004\n周五,13811110005\n",
        "acme.csv",
        2,
    )
    .await;
    let hash = waihu_accounts::password::hash(PASSWORD).unwrap();
    own.store
        .user_insert("li", "analyst", &hash, Utc::now())
        .await
        .unwrap();
    acme.store
        .user_insert("li", "operator", &hash, Utc::now())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(waihu_server::serve_tenants(
        listener,
        None,
        vec![
            (own.name.into(), own.store.clone()),
            (acme.name.into(), acme.store.clone()),
        ],
        Default::default(),
        async move {
            let _ = rx.await;
        },
    ));
    let profile = tempfile::tempdir().unwrap();
    let mut b = Browser::launch(profile.path(), &[]).await;
    let sign_in = |tenant: &'static str| {
        format!(
            "document.getElementById('tenant').value = {tenant:?}; document.getElementById('user').value = 'li'; document.getElementById('password').value = {PASSWORD:?}; document.getElementById('go').click(); true"
        )
    };
    let customers = "fetch('/api/overview').then(r => r.json()).then(j => j.customers)";

    b.goto(&format!("{base}/login?tenant=acme")).await;
    let prefilled = b.eval("document.getElementById('tenant').value").await;
    assert_eq!(prefilled, serde_json::json!("acme"));
    b.eval(&sign_in("acme")).await;
    b.wait_for(
        "the dashboard of acme, as its operator",
        "location.pathname === '/' && document.getElementById('who').textContent.startsWith('acme · ') && document.getElementById('who').textContent.includes('operator')",
        WAIT,
    )
    .await;
    assert_eq!(b.eval(customers).await, serde_json::json!(5));
    // Sign out, and in again with the field empty: the installation's own store.
    // Off the dashboard first: its supervisor poll would answer the sign-out with
    // its own navigation to /login, racing ours.
    b.goto(&format!("{base}/login")).await;
    let out = b
        .eval("fetch('/api/auth/logout', {method: 'POST', headers: {'X-CSRF-Token': sessionStorage.getItem('waihu.csrf')}}).then(r => r.status)")
        .await;
    assert_eq!(out, serde_json::json!(200));
    b.goto(&format!("{base}/login")).await;
    assert_eq!(
        b.eval("document.getElementById('tenant').value").await,
        serde_json::json!("acme"),
        "the last organisation is remembered"
    );
    b.eval(&sign_in("")).await;
    b.wait_for(
        "the installation's dashboard, as its analyst",
        "location.pathname === '/' && document.getElementById('who').textContent.includes('analyst') && !document.getElementById('who').textContent.includes('acme')",
        WAIT,
    )
    .await;
    assert_eq!(b.eval(customers).await, serde_json::json!(3));
    let errors: Vec<String> = b
        .page_errors()
        .into_iter()
        .filter(|e| !(e.starts_with("network error:") && e.contains("status of 401")))
        .collect();
    assert!(errors.is_empty(), "the pages logged errors: {errors:?}");
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}
