//! User accounts on a real server on loopback: sign-in, lock-out, TOTP,
//! session cookie, expiry, CSRF, sign-out, and API keys unchanged beside them.
mod common;

use std::time::Duration;

use chrono::Utc;
use common::Server;
use serde_json::{json, Value};

const PW: &str = "a-long-password-1";

async fn add_user(s: &Server, name: &str, role: &str) {
    let hash = waihu_accounts::password::hash(PW).unwrap();
    s.store
        .user_insert(name, role, &hash, Utc::now())
        .await
        .unwrap();
}

struct Login {
    status: u16,
    set_cookie: Option<String>,
    body: Value,
}

impl Login {
    fn cookie(&self) -> String {
        let c = self.set_cookie.as_deref().expect("a Set-Cookie header");
        c.split(';').next().unwrap().to_string()
    }
    fn csrf(&self) -> String {
        self.body["csrf_token"].as_str().unwrap().to_string()
    }
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn login(s: &Server, body: Value) -> Login {
    let r = s
        .client
        .post(s.url("/api/auth/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    Login {
        status: r.status().as_u16(),
        set_cookie: r
            .headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_string()),
        body: r.json().await.unwrap(),
    }
}

/// A request with the session cookie (and the CSRF header when given).
async fn with_cookie(
    s: &Server,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut rq = s
        .client
        .request(method, s.url(path))
        .header("cookie", cookie);
    if let Some(t) = csrf {
        rq = rq.header("x-csrf-token", t);
    }
    if let Some(b) = body {
        rq = rq.json(&b);
    }
    let r = rq.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn events_of(s: &Server, t: &str) -> Vec<String> {
    s.store
        .events_of_type(t, 0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| serde_json::to_string(&e.kind).unwrap())
        .collect()
}

#[tokio::test]
async fn sign_in_cookie_flags_and_the_same_answer_for_unknown_users() {
    let s = Server::start(waihu_server::Config::default()).await;
    add_user(&s, "li", "analyst").await;
    let unknown = login(&s, json!({"user": "nobody", "password": PW})).await;
    let wrong = login(&s, json!({"user": "li", "password": "wrong-password-1"})).await;
    assert_eq!((unknown.status, wrong.status), (401, 401));
    // Same code and message: the answer does not say whether the user exists.
    assert_eq!(unknown.body, wrong.body);
    assert_eq!(unknown.code(), "bad_credentials");
    assert!(unknown.set_cookie.is_none() && wrong.set_cookie.is_none());

    let ok = login(&s, json!({"user": "li", "password": PW})).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.body["user"], "li");
    assert_eq!(ok.body["role"], "analyst");
    assert_eq!(ok.csrf().len(), 64);
    assert!(ok.body["expires_at"].is_string());
    let set = ok.set_cookie.clone().unwrap();
    assert!(set.starts_with("waihu_session="), "{set}");
    let value = set
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("waihu_session=");
    assert_eq!(value.len(), 64, "32 random bytes, hex: {set}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} missing: {set}");
    }
    // Plain HTTP: no Secure flag (serve_tls sets it: the_cookie_is_secure_over_tls).
    assert!(!set.contains("Secure"), "{set}");

    // The cookie authenticates reads, as the analyst it belongs to.
    let cookie = ok.cookie();
    let (st, me) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/auth/me",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(me["user"], "li");
    assert_eq!(me["actor"], "user:li");
    assert_eq!(me["csrf_token"], ok.body["csrf_token"]);
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    // ...and only what its role allows.
    let (st, e) = with_cookie(&s, reqwest::Method::GET, "/api/keys", &cookie, None, None).await;
    assert_eq!(st, 403, "{e}");
    // A made-up cookie is nobody.
    let (st, e) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        "waihu_session=00",
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("session_expired"))
    );

    let failed = events_of(&s, "user_sign_in_failed").await;
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert!(failed[0].contains("\"user\":\"nobody\""), "{failed:?}");
    assert_eq!(events_of(&s, "user_signed_in").await.len(), 1);
    assert!(s.store.audit_verify(None, &[]).await.unwrap().report.ok);
    s.stop().await;
}

#[tokio::test]
async fn five_failures_lock_until_the_lock_runs_out() {
    let cfg = waihu_server::Config {
        lockout: waihu_accounts::lockout::Policy {
            max_failures: 5,
            lock_for: chrono::Duration::seconds(2),
        },
        login_per_minute: 100,
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    add_user(&s, "wang", "operator").await;
    for _ in 0..5 {
        let r = login(&s, json!({"user": "wang", "password": "not-the-password"})).await;
        assert_eq!((r.status, r.code()), (401, "bad_credentials"));
    }
    // Locked: the right password gets the same answer as a wrong one.
    let r = login(&s, json!({"user": "wang", "password": PW})).await;
    assert_eq!((r.status, r.code()), (401, "bad_credentials"), "{}", r.body);
    let locked = events_of(&s, "user_locked").await;
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert!(locked[0].contains("\"failures\":5"), "{locked:?}");
    let u = s.store.user("wang").await.unwrap().unwrap();
    assert!(u.locked_until.is_some());
    // The lock runs out.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = login(&s, json!({"user": "wang", "password": PW})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let u = s.store.user("wang").await.unwrap().unwrap();
    assert_eq!((u.failed_attempts, u.locked_until), (0, None));

    // An admin can unlock early (`waihu user unlock`).
    for _ in 0..5 {
        login(&s, json!({"user": "wang", "password": "not-the-password"})).await;
    }
    assert_eq!(
        login(&s, json!({"user": "wang", "password": PW}))
            .await
            .status,
        401
    );
    assert!(s.store.user_unlock("wang", Utc::now()).await.unwrap());
    assert_eq!(
        login(&s, json!({"user": "wang", "password": PW}))
            .await
            .status,
        200
    );
    s.stop().await;
}

#[tokio::test]
async fn totp_required_once_enrolled_and_a_code_works_once() {
    let s = Server::start(waihu_server::Config::default()).await;
    add_user(&s, "zhao", "admin").await;
    let secret = waihu_accounts::totp::new_secret();
    s.store
        .user_set_totp("zhao", Some(&secret), Utc::now())
        .await
        .unwrap();

    let r = login(&s, json!({"user": "zhao", "password": PW})).await;
    assert_eq!((r.status, r.code()), (401, "totp_required"));
    let r = login(
        &s,
        json!({"user": "zhao", "password": PW, "totp": "000000x"}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "totp_wrong"));
    // A wrong password with any code is just a wrong password.
    let code = waihu_accounts::totp::code(&secret, Utc::now());
    let r = login(
        &s,
        json!({"user": "zhao", "password": "wrong-password-1", "totp": code}),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "bad_credentials"));

    let code = waihu_accounts::totp::code(&secret, Utc::now());
    let r = login(&s, json!({"user": "zhao", "password": PW, "totp": code})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The same code again (someone who saw it): refused.
    let r = login(&s, json!({"user": "zhao", "password": PW, "totp": code})).await;
    assert_eq!((r.status, r.code()), (401, "totp_replayed"), "{}", r.body);
    let signed_in = events_of(&s, "user_signed_in").await;
    assert!(signed_in[0].contains("\"totp\":true"), "{signed_in:?}");
    s.stop().await;
}

#[tokio::test]
async fn csrf_token_required_for_changes_with_the_cookie_not_with_keys() {
    let s = Server::start(waihu_server::Config::default()).await;
    add_user(&s, "qian", "operator").await;
    let l = login(&s, json!({"user": "qian", "password": PW})).await;
    let cookie = l.cookie();
    let dnc = || Some(json!({"phone": "13800001111"}));
    let post = reqwest::Method::POST;

    let (st, e) = with_cookie(&s, post.clone(), "/api/dnc", &cookie, None, dnc()).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("csrf_missing")),
        "{e}"
    );
    let (st, e) = with_cookie(&s, post.clone(), "/api/dnc", &cookie, Some("0123"), dnc()).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("csrf_mismatch")),
        "{e}"
    );
    let other = "f".repeat(64);
    let (st, e) = with_cookie(&s, post.clone(), "/api/dnc", &cookie, Some(&other), dnc()).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("csrf_mismatch")),
        "{e}"
    );
    assert_eq!(s.store.dnc_count().await.unwrap(), 0, "nothing was changed");
    let (st, e) = with_cookie(
        &s,
        post.clone(),
        "/api/dnc",
        &cookie,
        Some(&l.csrf()),
        dnc(),
    )
    .await;
    assert_eq!(st, 201, "{e}");

    // The audit trail names the user: a reveal by the session.
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/customers?reveal=true&reason=check",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let reveals = events_of(&s, "pii_revealed").await;
    assert!(
        reveals.iter().any(|e| e.contains("user:qian")),
        "{reveals:?}"
    );

    // API keys: unchanged, no CSRF token needed (no ambient credential).
    let (st, e) = s
        .send(
            post.clone(),
            &s.operator,
            "/api/dnc",
            Some(json!({"phone": "13800002222"})),
        )
        .await;
    assert_eq!(st, 201, "{e}");
    let (st, _) = s.get(&s.analyst, "/api/overview").await;
    assert_eq!(st, 200);
    // A key wins over a cookie sent with it: no CSRF check.
    let r = s
        .client
        .post(s.url("/api/dnc"))
        .bearer_auth(&s.operator)
        .header("cookie", &cookie)
        .json(&json!({"phone": "13800003333"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // Sign-out: needs the token like any change, ends the session, clears the cookie.
    let (st, e) = with_cookie(&s, post.clone(), "/api/auth/logout", &cookie, None, None).await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (403, Some("csrf_missing"))
    );
    let r = s
        .client
        .post(s.url("/api/auth/logout"))
        .header("cookie", &cookie)
        .header("x-csrf-token", l.csrf())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let clear = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        clear.starts_with("waihu_session=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );
    let j: Value = r.json().await.unwrap();
    assert_eq!(j["signed_out"], true);
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 401);
    assert_eq!(events_of(&s, "user_signed_out").await.len(), 1);
    s.stop().await;
}

#[tokio::test]
async fn sessions_expire_when_idle_and_at_their_lifetime() {
    let cfg = waihu_server::Config {
        sessions: waihu_accounts::session::Lifetime {
            idle: chrono::Duration::seconds(1),
            absolute: chrono::Duration::seconds(60),
        },
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    add_user(&s, "sun", "analyst").await;
    let cookie = login(&s, json!({"user": "sun", "password": PW}))
        .await
        .cookie();
    // Used every 0.5 s: stays alive past the idle timeout.
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (st, e) = with_cookie(
            &s,
            reqwest::Method::GET,
            "/api/overview",
            &cookie,
            None,
            None,
        )
        .await;
        assert_eq!(st, 200, "{e}");
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (st, e) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(
        (st, e["error"]["code"].as_str()),
        (401, Some("session_expired")),
        "{e}"
    );
    s.stop().await;

    let cfg = waihu_server::Config {
        sessions: waihu_accounts::session::Lifetime {
            idle: chrono::Duration::seconds(60),
            absolute: chrono::Duration::seconds(2),
        },
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    add_user(&s, "sun", "analyst").await;
    let cookie = login(&s, json!({"user": "sun", "password": PW}))
        .await
        .cookie();
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &cookie,
        None,
        None,
    )
    .await;
    assert_eq!(st, 401);
    s.stop().await;
}

#[tokio::test]
async fn disabled_users_and_the_rate_limit() {
    let cfg = waihu_server::Config {
        login_per_minute: 4,
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    add_user(&s, "zhou", "supervisor").await;
    let l = login(&s, json!({"user": "zhou", "password": PW})).await;
    assert_eq!(
        (l.status, l.body["role"].as_str()),
        (200, Some("supervisor"))
    );
    s.store
        .user_set_disabled("zhou", true, Utc::now())
        .await
        .unwrap();
    let (st, _) = with_cookie(
        &s,
        reqwest::Method::GET,
        "/api/overview",
        &l.cookie(),
        None,
        None,
    )
    .await;
    assert_eq!(st, 401, "disabling ends the sessions");
    let r = login(&s, json!({"user": "zhou", "password": PW})).await;
    assert_eq!((r.status, r.code()), (403, "account_disabled"));
    // Four attempts a minute from this address: the fifth is refused whatever it says.
    let _ = login(&s, json!({"user": "zhou", "password": PW})).await;
    let _ = login(&s, json!({"user": "nobody", "password": PW})).await;
    let r = login(&s, json!({"user": "zhou", "password": PW})).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.body);
    s.stop().await;
}

/// Over HTTPS (`serve_tls`) the session cookie is also `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_secure_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let store = waihu_store::Store::open_with_key(
        dir.path(),
        &waihu_privacy::MasterKey::from_bytes([6; 32]),
    )
    .await
    .unwrap();
    let hash = waihu_accounts::password::hash(PW).unwrap();
    store
        .user_insert("tls-user", "analyst", &hash, Utc::now())
        .await
        .unwrap();
    let tls = waihu_server::tls::Tls::self_signed(dir.path()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let store = store.clone();
        tokio::spawn(async move {
            waihu_server::serve_tls(
                listener,
                &tls,
                store,
                waihu_server::Config::default(),
                async {
                    let _ = stopped.await;
                },
            )
            .await
        })
    };
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(
            reqwest::Certificate::from_pem(
                &std::fs::read(dir.path().join("tls/cert.pem")).unwrap(),
            )
            .unwrap(),
        )
        .build()
        .unwrap();
    let r = client
        .post(format!("https://localhost:{port}/api/auth/login"))
        .json(&json!({"user": "tls-user", "password": PW}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Secure"] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} missing: {set}");
    }
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
