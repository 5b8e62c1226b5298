//! Signing in with a user account in a real headless Chromium (`waihu-cdp`):
//! the `/login` page, the dashboard reached with the session cookie alone, a
//! change sent from the page without the CSRF token refused (and the same
//! change through the page's own code accepted), and an expired session
//! sending the browser back to `/login`. Fails when Chromium is missing and
//! `CI` is set (`waihu_testkit::have_peer_at`).
mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use waihu_cdp::{Browser, CHROMIUM};
use waihu_testkit::have_peer_at;

const WAIT: Duration = Duration::from_secs(15);
const PW: &str = "browser-password-1";

/// Navigates without waiting for the load event: these pages may leave for
/// `/login` before they finish loading, and that load event never comes.
async fn open_redirecting(b: &mut Browser, url: &str) {
    b.eval(&format!("location.href = {}; true", serde_json::json!(url)))
        .await;
}

#[tokio::test]
async fn sign_in_csrf_and_expiry_in_a_real_browser() {
    if !have_peer_at("chromium", Path::new(CHROMIUM)) {
        return;
    }
    let cfg = waihu_server::Config {
        sessions: waihu_accounts::session::Lifetime {
            idle: chrono::Duration::seconds(4),
            absolute: chrono::Duration::hours(1),
        },
        ..Default::default()
    };
    let s = Server::start(cfg).await;
    let hash = waihu_accounts::password::hash(PW).unwrap();
    s.store
        .user_insert("ops-li", "operator", &hash, chrono::Utc::now())
        .await
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let mut b = Browser::launch(profile.path(), &[]).await;

    // No key, no session: the dashboard sends the browser to /login.
    open_redirecting(&mut b, &s.url("/?live=0")).await;
    b.wait_for("the sign-in page", "location.pathname === '/login' && document.readyState === 'complete' && !!document.getElementById('go')", WAIT)
        .await;
    // A wrong password: the page says so and stays.
    b.type_into("#user", "ops-li", true).await;
    b.type_into("#password", "not-the-password", true).await;
    b.click("#go").await;
    b.wait_for(
        "the refusal",
        "document.getElementById('msg').textContent.includes('wrong user name or password')",
        WAIT,
    )
    .await;
    b.type_into("#password", PW, true).await;
    b.click("#go").await;
    b.wait_for(
        "the dashboard as the signed-in operator",
        "location.pathname === '/' && document.getElementById('who').textContent.includes('operator') && document.body.dataset.loaded === '1'",
        WAIT,
    )
    .await;
    let cookie_visible = b.eval("document.cookie.includes('waihu_session')").await;
    assert_eq!(
        cookie_visible,
        serde_json::json!(false),
        "HttpOnly: scripts cannot read it"
    );

    // A POST from the page without the token: refused, nothing added.
    let refused = b
        .eval(
            "fetch('/api/dnc', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({phone: '13800001111'})}).then(async r => [r.status, (await r.json()).error.code])",
        )
        .await;
    assert_eq!(refused, serde_json::json!([403, "csrf_missing"]));
    let wrong = b
        .eval(
            "fetch('/api/dnc', {method: 'POST', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': 'forged'}, body: JSON.stringify({phone: '13800001111'})}).then(async r => [r.status, (await r.json()).error.code])",
        )
        .await;
    assert_eq!(wrong, serde_json::json!([403, "csrf_mismatch"]));
    assert_eq!(s.store.dnc_count().await.unwrap(), 0);
    // The page's own helper sends the token it got at sign-in.
    let ok = b
        .eval("postJson('/api/dnc', {phone: '13800001111'}).then(r => r.added)")
        .await;
    assert_eq!(ok, serde_json::json!(true));
    assert_eq!(s.store.dnc_count().await.unwrap(), 1);

    // Idle past the timeout: the next page load goes back to /login, which says why.
    tokio::time::sleep(Duration::from_millis(4500)).await;
    open_redirecting(&mut b, &s.url("/?live=0")).await;
    b.wait_for(
        "back at the sign-in page",
        "location.pathname === '/login' && new URLSearchParams(location.search).get('expired') === '1' && document.getElementById('msg').textContent.length > 0",
        WAIT,
    )
    .await;
    // The console behaves the same.
    open_redirecting(&mut b, &s.url("/console")).await;
    b.wait_for(
        "the console sends to /login too",
        "location.pathname === '/login' && new URLSearchParams(location.search).get('next').startsWith('/console') && document.readyState === 'complete' && !!document.getElementById('go')",
        WAIT,
    )
    .await;

    // Sign in again and sign out with the button: back at /login, the session gone.
    b.type_into("#user", "ops-li", true).await;
    b.type_into("#password", PW, true).await;
    b.click("#go").await;
    b.wait_for(
        "the console, signed in, with a sign-out button",
        "location.pathname === '/console' && !document.getElementById('logout').hidden",
        WAIT,
    )
    .await;
    b.click("#logout").await;
    b.wait_for("signed out", "location.pathname === '/login' && document.readyState === 'complete' && !!document.getElementById('go')", WAIT)
        .await;
    let me = b.eval("fetch('/api/auth/me').then(r => r.status)").await;
    assert_eq!(me, serde_json::json!(401));
    // The refusals this test provoked are logged by the browser as failed loads;
    // anything else (a script error) fails the test.
    let errors: Vec<String> = b
        .page_errors()
        .into_iter()
        .filter(|e| {
            !(e.starts_with("network error:")
                && (e.contains("status of 401") || e.contains("status of 403")))
        })
        .collect();
    assert!(errors.is_empty(), "the pages logged errors: {errors:?}");
    s.stop().await;
}
