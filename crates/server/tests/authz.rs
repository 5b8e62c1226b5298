//! The authorisation matrix: every route the router serves (from `app()`),
//! tried by every role — with an API key and, for users' roles, with a
//! signed-in session (CSRF token sent) — and without credentials. Below the
//! route's declared minimum role the answer is 401/403, never 2xx; at or above
//! it, anything but 401/403 (a 4xx for the dummy body or ids is fine). A
//! handler that checks a different role than its route declares fails here.
mod common;

use common::{concrete, Server};
use waihu_server::auth::{create_key, create_key_for, Need, Role};

enum Cred {
    None,
    Key(String),
    Session { cookie: String, csrf: String },
}

async fn sign_in(s: &Server, user: &str, role: &str) -> Cred {
    let pw = "authz-password-1";
    let hash = waihu_accounts::password::hash(pw).unwrap();
    s.store
        .user_insert(user, role, &hash, chrono::Utc::now())
        .await
        .unwrap();
    let r = s
        .client
        .post(s.url("/api/auth/login"))
        .json(&serde_json::json!({"user": user, "password": pw}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "signing in {user}");
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    let j: serde_json::Value = r.json().await.unwrap();
    Cred::Session {
        cookie,
        csrf: j["csrf_token"].as_str().unwrap().to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_times_every_role() {
    let cfg = waihu_server::Config {
        login_per_minute: 1000,
        ..Default::default()
    };
    let s = Server::start(cfg.clone()).await;
    let (_, mut routes) = waihu_server::app(s.store.clone(), cfg);
    // Signing out ends the sessions the matrix uses: last.
    routes.sort_by_key(|r| r.path == "/api/auth/logout");
    let now = chrono::Utc::now();
    let supervisor = create_key(&s.store, "sup", Role::Supervisor, now)
        .await
        .unwrap()
        .0;
    let agent = create_key_for(&s.store, "ag", Role::Agent, Some("a1"), now)
        .await
        .unwrap()
        .0;
    let mut callers: Vec<(String, Option<Role>, Cred)> = vec![
        ("nobody".into(), None, Cred::None),
        ("agent key".into(), Some(Role::Agent), Cred::Key(agent)),
        (
            "analyst key".into(),
            Some(Role::Analyst),
            Cred::Key(s.analyst.clone()),
        ),
        (
            "operator key".into(),
            Some(Role::Operator),
            Cred::Key(s.operator.clone()),
        ),
        (
            "supervisor key".into(),
            Some(Role::Supervisor),
            Cred::Key(supervisor),
        ),
        (
            "admin key".into(),
            Some(Role::Admin),
            Cred::Key(s.admin.clone()),
        ),
    ];
    for role in [Role::Analyst, Role::Operator, Role::Supervisor, Role::Admin] {
        let cred = sign_in(&s, &format!("u-{}", role.as_str()), role.as_str()).await;
        callers.push((format!("{} session", role.as_str()), Some(role), cred));
    }
    let mut bad = Vec::new();
    let mut tried = 0;
    for r in &routes {
        let path = concrete(r.path);
        for (who, role, cred) in &callers {
            let method = reqwest::Method::from_bytes(r.method.as_bytes()).unwrap();
            let mut rq = s.client.request(method.clone(), s.url(&path));
            if method != reqwest::Method::GET {
                rq = rq.header("content-type", "application/json").body("{}");
            }
            rq = match cred {
                Cred::None => rq,
                Cred::Key(k) => rq.bearer_auth(k),
                Cred::Session { cookie, csrf } => {
                    rq.header("cookie", cookie).header("x-csrf-token", csrf)
                }
            };
            // Streams answer with their headers at once; the body is not read.
            let status = rq.send().await.unwrap().status().as_u16();
            tried += 1;
            let allowed = match (r.need, role) {
                (Need::Public, _) => true,
                (_, None) => false,
                (Need::Min(min), Some(have)) => *have >= min,
                (Need::OwnAgentOr(min), Some(have)) => *have == Role::Agent || *have >= min,
            };
            let refused = status == 401 || status == 403;
            if allowed == refused || (!allowed && (200..300).contains(&status)) {
                bad.push(format!(
                    "{} {} declared {:?}: {who} got {status}",
                    r.method, r.path, r.need
                ));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
    assert!(tried > 60 * 10, "{tried}");

    // HEAD needs what GET needs; a method a path does not serve is 405, whoever asks.
    let head = |key: Option<&str>| {
        let mut rq = s.client.head(s.url("/api/overview"));
        if let Some(k) = key {
            rq = rq.bearer_auth(k);
        }
        rq.send()
    };
    assert_eq!(head(None).await.unwrap().status(), 401);
    assert_eq!(head(Some(&s.analyst)).await.unwrap().status(), 200);
    for key in [None, Some(s.analyst.as_str())] {
        let mut rq = s.client.patch(s.url("/api/overview"));
        if let Some(k) = key {
            rq = rq.bearer_auth(k);
        }
        assert_eq!(rq.send().await.unwrap().status(), 405);
    }
    s.stop().await;
}
