//! Drives a real headless Chromium through a local page: typing, keys, clicks, file
//! choice, downloads, waiting, error capture and screenshots; and checks that failures
//! say what was being done. Needs `/usr/bin/chromium` (skipped loudly without it, a
//! failure under CI).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use waihu_cdp::{Browser, CHROMIUM};

const PAGE: &str = r#"<!doctype html>
<html>
<head><meta charset="utf-8"><title>cdp test</title></head>
<body>
<form id="search"><input id="name" value="old"></form>
<div id="inputs">0</div>
<div id="submitted"></div>
<input type="file" id="upload">
<div id="file-info"></div>
<button id="fail">Fail</button>
<button id="throw">Throw</button>
<button id="broken">Broken image</button>
<a id="download" download="report.csv" href="data:text/csv,id%2Cname%0A1%2CAda%0A">Download</a>
<button id="hidden" style="display: none">Hidden</button>
<div style="position: relative">
  <button id="under">Under</button>
  <div id="overlay" style="position: absolute; inset: 0"></div>
</div>
<!-- Below the fold: clicking it must scroll. -->
<div style="height: 3000px"></div>
<button id="hello">Hello</button>
<div id="clicked"></div>
<script>
  const $ = id => document.getElementById(id);
  let inputs = 0;
  $('name').addEventListener('input', () => { $('inputs').textContent = ++inputs; });
  $('search').addEventListener('submit', e => {
    e.preventDefault();
    $('submitted').textContent = 'submitted: ' + $('name').value;
  });
  $('hello').addEventListener('click', e => {
    $('clicked').textContent = `clicked trusted=${e.isTrusted} detail=${e.detail}`;
  });
  $('upload').addEventListener('change', e => {
    const file = e.target.files[0];
    $('file-info').textContent = `${file.name} ${file.size}`;
  });
  $('fail').addEventListener('click', () => console.error('boom from the fail button', 42));
  $('throw').addEventListener('click', () => { throw new Error('thrown by the throw button'); });
  $('broken').addEventListener('click', () => {
    document.body.insertAdjacentHTML('beforeend', '<img src="missing.png" onerror="window.broken = true">');
  });
</script>
</body>
</html>
"#;

/// Whether Chromium is here (see `waihu_testkit::have_peer_at`).
fn have_chromium() -> bool {
    waihu_testkit::have_peer_at("chromium", Path::new(CHROMIUM))
}

/// A temporary directory holding the test page, and the page's URL.
fn page_dir() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("creating a temporary directory");
    let page = dir.path().join("page.html");
    std::fs::write(&page, PAGE).expect("writing the test page");
    let url = format!("file://{}", page.display());
    (dir, url)
}

#[tokio::test]
async fn drives_a_page() {
    if !have_chromium() {
        return;
    }
    let started = Instant::now();
    let (dir, url) = page_dir();
    let mut browser = Browser::launch(&dir.path().join("profile"), &[]).await;
    let launched = started.elapsed();
    browser.goto(&url).await;
    assert_eq!(browser.eval("document.title").await, "cdp test");
    assert_eq!(browser.eval("Promise.resolve(6 * 7)").await, 42);
    assert_eq!(browser.eval("undefined").await, serde_json::Value::Null);

    // Typing replaces, then appends, firing input events; Enter submits the form.
    browser.type_into("#name", "Ada", true).await;
    assert_eq!(browser.eval("$('name').value").await, "Ada");
    browser.type_into("#name", " Lovelace", false).await;
    assert_eq!(browser.eval("$('name').value").await, "Ada Lovelace");
    assert!(browser.eval("inputs").await.as_u64() >= Some(2));
    browser.press("Enter").await;
    let submitted = browser
        .wait_for(
            "the form to be submitted",
            "$('submitted').textContent",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(submitted, "submitted: Ada Lovelace");
    browser.type_into("#name", "", true).await;
    assert_eq!(browser.eval("$('name').value").await, "");

    // wait_for polls through exceptions (the element does not exist yet); they are not
    // page errors.
    browser
        .eval("setTimeout(() => document.body.insertAdjacentHTML('beforeend', '<p id=late>late</p>'), 300)")
        .await;
    let late = browser
        .wait_for(
            "the late paragraph",
            "document.querySelector('#late').textContent",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(late, "late");

    // A real, trusted click, on a button that first has to be scrolled into view.
    assert_eq!(browser.eval("scrollY").await, 0);
    browser.click("#hello").await;
    assert_eq!(
        browser.eval("$('clicked').textContent").await,
        "clicked trusted=true detail=1"
    );
    assert_ne!(browser.eval("scrollY").await, 0);

    // Choosing a file fires the change event.
    let csv = dir.path().join("calls.csv");
    std::fs::write(&csv, "id,phone\n1,13800138000\n").unwrap();
    browser.set_files("#upload", &[csv]).await;
    let info = browser
        .wait_for(
            "the file's name and size",
            "$('file-info').textContent",
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(info, "calls.csv 23");

    // Errors: none so far, then a console error, an uncaught exception and a failed load.
    assert_eq!(browser.page_errors(), Vec::<String>::new());
    browser.click("#fail").await;
    assert_eq!(
        browser.page_errors(),
        ["console.error: boom from the fail button 42"]
    );
    browser.click("#throw").await;
    let errors = browser.page_errors();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[1].starts_with("uncaught exception: Error: thrown by the throw button"),
        "{errors:?}"
    );
    browser.click("#broken").await;
    browser
        .wait_for("the image to fail", "window.broken", Duration::from_secs(5))
        .await;
    // The network service reports the failure a few milliseconds after `onerror` ran, not
    // in order with the page's own events: read events until it is in.
    let deadline = Instant::now() + Duration::from_secs(5);
    while browser.page_errors().len() < 3 && Instant::now() < deadline {
        browser.eval("0").await;
    }
    let errors = browser.page_errors();
    assert_eq!(errors.len(), 3, "{errors:?}");
    assert!(
        errors[2].starts_with(
            "network error: Failed to load resource: net::ERR_FILE_NOT_FOUND (file://"
        ) && errors[2].ends_with("/missing.png)"),
        "{errors:?}"
    );

    // Downloads land in the directory under the suggested name.
    let downloads = dir.path().join("downloads");
    browser.allow_downloads(&downloads).await;
    browser.click("#download").await;
    let report = downloads.join("report.csv");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !report.exists() {
        assert!(
            Instant::now() < deadline,
            "no {} after 10 s",
            report.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        std::fs::read_to_string(&report).unwrap(),
        "id,name\n1,Ada\n"
    );

    let shot = dir.path().join("shot.png");
    browser.screenshot(&shot).await;
    let png = std::fs::read(&shot).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 1000, "a {}-byte PNG", png.len());

    eprintln!(
        "drives_a_page: launch {launched:?}, total {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn failures_say_what_was_being_done() {
    if !have_chromium() {
        return;
    }
    let (dir, url) = page_dir();
    let mut browser = Browser::launch(&dir.path().join("profile"), &[]).await;
    browser.goto(&url).await;

    let message = panic_message(browser.click("#nope")).await;
    assert_eq!(message, "clicking `#nope`: no such element");
    let message = panic_message(browser.click("#hidden")).await;
    assert!(
        message.starts_with("clicking `#hidden`: it has zero size"),
        "{message}"
    );
    let message = panic_message(browser.click("#under")).await;
    assert!(
        message.starts_with("clicking `#under`: its centre") && message.ends_with("div#overlay"),
        "{message}"
    );
    let message = panic_message(browser.click("a:::b")).await;
    assert!(
        message.starts_with("clicking `a:::b`: SyntaxError"),
        "{message}"
    );
    let message = panic_message(browser.eval("null.x")).await;
    assert!(
        message.starts_with("evaluating `null.x`: the script threw: TypeError"),
        "{message}"
    );
    let message = panic_message(browser.eval("Promise.reject(new Error('no'))")).await;
    assert!(message.contains("the script threw: Error: no"), "{message}");
    let message = panic_message(browser.wait_for(
        "a miracle",
        "$('inputs').textContent === 'never'",
        Duration::from_millis(300),
    ))
    .await;
    assert!(
        message.starts_with("waiting for a miracle: `$('inputs').textContent === 'never'` still not truthy after 300ms; last: the value false"),
        "{message}"
    );
    let message = panic_message(browser.type_into("#hidden", "x", true)).await;
    assert!(
        message.starts_with("typing into `#hidden`: it does not take focus"),
        "{message}"
    );
    let message =
        panic_message(browser.set_files("#upload", &[PathBuf::from("/nonexistent")])).await;
    assert!(
        message.starts_with("setting files on `#upload`: /nonexistent:"),
        "{message}"
    );
    let message = panic_message(browser.set_files("#name", &[PathBuf::from(&url[7..])])).await;
    assert!(
        message.starts_with("setting files on `#name`: DOM.setFileInputFiles failed:"),
        "{message}"
    );
    let message = panic_message(browser.set_files("#nope", &[PathBuf::from(&url[7..])])).await;
    assert_eq!(message, "setting files on `#nope`: no such element");
    let message = panic_message(browser.press("Hyper")).await;
    assert!(
        message.starts_with("pressing `Hyper`: unknown key"),
        "{message}"
    );
    let missing = dir.path().join("missing.html");
    let message = panic_message(browser.goto(&format!("file://{}", missing.display()))).await;
    assert!(message.starts_with("opening file://"), "{message}");
    assert!(
        message.contains("navigation failed: net::ERR_FILE_NOT_FOUND"),
        "{message}"
    );

    // The browser is still usable after all that, and none of it was a page error.
    browser.goto(&url).await;
    assert_eq!(browser.eval("document.title").await, "cdp test");
    // A same-document navigation has no load event to wait for.
    browser.goto(&format!("{url}#fragment")).await;
    assert_eq!(browser.eval("location.hash").await, "#fragment");
    assert_eq!(browser.page_errors(), Vec::<String>::new());
}

/// The message `future` panics with; fails the test if it does not panic.
async fn panic_message<T>(future: impl std::future::Future<Output = T>) -> String {
    match std::panic::AssertUnwindSafe(future).catch_unwind().await {
        Ok(_) => panic!("expected a panic"),
        Err(payload) => payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default(),
    }
}
