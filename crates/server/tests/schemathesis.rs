//! schemathesis (PyPI, installed by scripts/deps/schemathesis.sh) against the
//! served OpenAPI document: generated requests, valid and invalid, for every
//! route with an admin key, over a store holding calls and customers. Passes
//! when no response is a 5xx and every response fits its documented schema.
//! Set WAIHU_SCHEMATHESIS_EXAMPLES (default 8) or WAIHU_SCHEMATHESIS_SEED to
//! search wider or elsewhere; CI uses a fixed seed so a failure reproduces.
mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

fn schemathesis() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WAIHU_SCHEMATHESIS") {
        return Some(p.into());
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let p = cache.join("waihu/schemathesis/bin/schemathesis");
    p.exists().then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_find_no_server_error_and_no_schema_violation() {
    let Some(st) = schemathesis() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is not installed: run scripts/deps/schemathesis.sh"
        );
        eprintln!("skipped: schemathesis is not installed (scripts/deps/schemathesis.sh)");
        return;
    };
    let s = Server::start(waihu_server::Config::default()).await;
    fill_calls(&s.store).await;
    let examples = std::env::var("WAIHU_SCHEMATHESIS_EXAMPLES").unwrap_or_else(|_| "8".into());
    let seed = std::env::var("WAIHU_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261206".into());
    let mut cmd = tokio::process::Command::new(&st);
    cmd.arg("run")
        .arg(s.url("/api/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {}", s.admin)])
        .args([
            "--checks",
            "not_a_server_error,response_schema_conformance",
            "--max-examples",
            &examples,
            "--seed",
            &seed,
            "--request-timeout",
            "20",
            "--workers",
            "2",
            "--no-color",
        ])
        // Webhook URLs would be generated outside loopback; their routes have
        // their own tests (webhook.rs).
        .args(["--exclude-path-regex", "^/api/webhooks"])
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(900), cmd.output())
        .await
        .expect("schemathesis finished within 15 minutes")
        .expect("schemathesis runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let summary: String = stdout
        .lines()
        .skip_while(|l| !l.contains("SUMMARY"))
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{summary}");
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("generated") && !stdout.contains("Authentication failed"),
        "schemathesis did not exercise the API:\n{stdout}"
    );
    s.stop().await;
}
