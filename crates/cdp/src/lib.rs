//! A minimal driver for headless Chromium over the Chrome DevTools Protocol (CDP), for the
//! browser tests that click through the operations console in a real browser.
//!
//! [`Browser::launch`] starts `/usr/bin/chromium` headless on a caller-owned profile
//! directory, reads the browser's websocket address from its stderr (`DevTools listening on
//! ws://…`), attaches to the start page with a flattened session (`Target.attachToTarget`,
//! `flatten: true`: page commands carry a `sessionId` on the one browser socket) and enables
//! the `Page`, `Runtime` and `Log` domains. The methods then do what a user does — open a
//! page, type, press a key, click, choose files — and what a test checks: evaluate a script,
//! wait until an expression holds, take a screenshot, list the page's errors.
//!
//! ```no_run
//! # async fn demo(profile: &std::path::Path) {
//! let mut browser = waihu_cdp::Browser::launch(profile, &[]).await;
//! browser.goto("http://127.0.0.1:8080/").await;
//! browser.type_into("#search", "13800138000", true).await;
//! browser.press("Enter").await;
//! browser.click("#call-btn").await;
//! let ringing = "document.querySelector('#status').textContent === 'ringing'";
//! let patience = std::time::Duration::from_secs(5);
//! browser.wait_for("the call to ring", ringing, patience).await;
//! assert!(browser.page_errors().is_empty(), "{:?}", browser.page_errors());
//! # }
//! ```
//!
//! The design has no background task on the socket: each method sends a command and reads
//! the socket until the response with its id arrives, noting the events read on the way
//! (load events, console errors, uncaught exceptions), so none is lost. The one task is
//! the reader of Chromium's stderr (so its pipe never fills), which is why the methods
//! must run inside a tokio runtime. Every wait is bounded (30 s per command and per page
//! load, 20 s for the launch).
//!
//! It is test support, so it panics on failure, and every panic says what was being done:
//! ``clicking `#upload-btn`: no such element``.
//!
//! Not handled: JavaScript dialogs. An `alert` or `confirm` blocks the page, and the next
//! command fails after its 30 s; a page under test should not open one.
//!
//! Written by hand because no maintained CDP crate fits without a large dependency tree
//! (`chromiumoxide` compiles hundreds of generated protocol types; `headless_chrome` is a
//! blocking API with threads of its own) while the tests need about ten commands. The
//! dependencies here were already in the lock file.
//!
//! *Invariant:* test support only; never a dependency of a shipped crate.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::time::{timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Where the browser is expected (Debian's `chromium` package). Tests check it with
/// `waihu_testkit::have_peer_at("chromium", Path::new(waihu_cdp::CHROMIUM))`.
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Flags for a page that talks over WebRTC with a fake microphone playing `wav` once
/// (granted without a prompt), plays what it receives without a user gesture, and may
/// connect to a server on loopback (which offers the address the page was loaded from).
pub fn fake_microphone(wav: &Path) -> Vec<String> {
    vec![
        "--use-fake-ui-for-media-stream".to_string(),
        "--use-fake-device-for-media-stream".to_string(),
        format!("--use-file-for-fake-audio-capture={}%noloop", wav.display()),
        "--autoplay-policy=no-user-gesture-required".to_string(),
        "--allow-loopback-in-peer-connection".to_string(),
    ]
}

const LAUNCH_TIMEOUT: Duration = Duration::from_secs(20);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
const LOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of Chromium's stderr kept for panic messages.
const STDERR_TAIL: usize = 20;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type StderrTail = Arc<Mutex<VecDeque<String>>>;

/// One headless Chromium with one page, killed when dropped (its helper processes —
/// zygotes, renderers, GPU, network service, crash handler — exit with it).
pub struct Browser {
    /// Killed on drop.
    _child: Child,
    socket: Socket,
    /// The flattened session of the page target.
    session: String,
    next_id: u64,
    /// Loaders (documents) whose load event has fired (`Page.lifecycleEvent` `load`).
    loaded: HashSet<String>,
    /// Console errors, uncaught exceptions and error log entries seen so far.
    errors: Vec<String>,
    stderr: StderrTail,
}

impl Browser {
    /// Starts headless Chromium on `profile` (its user data directory, which the caller
    /// owns and removes) with `extra_args` after the standard flags, and attaches to its
    /// `about:blank` page.
    pub async fn launch(profile: &Path, extra_args: &[String]) -> Browser {
        let doing = "launching chromium";
        let mut child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                "--window-size=1366,900",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra_args)
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("{doing}: starting {CHROMIUM}: {e}"));
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let mut lines = BufReader::new(child.stderr.take().expect("stderr is piped"));

        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        let url = loop {
            match timeout_at(deadline, read_line(&mut lines)).await {
                Err(_) => panic!(
                    "{doing}: no `DevTools listening on` line on its stderr within {} s{}",
                    LAUNCH_TIMEOUT.as_secs(),
                    tail_text(&stderr)
                ),
                Ok(None) => {
                    let status = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
                    panic!(
                        "{doing}: it exited ({}) before DevTools came up{}",
                        match status {
                            Ok(Ok(status)) => status.to_string(),
                            _ => "status unknown".into(),
                        },
                        tail_text(&stderr)
                    )
                }
                Ok(Some(line)) => {
                    let url = line
                        .split_once("DevTools listening on ")
                        .map(|(_, url)| url.trim().to_string());
                    push_line(&stderr, line);
                    if let Some(url) = url {
                        break url;
                    }
                }
            }
        };
        // Keep reading stderr so that Chromium never blocks on a full pipe.
        let tail = stderr.clone();
        tokio::spawn(async move {
            while let Some(line) = read_line(&mut lines).await {
                push_line(&tail, line);
            }
        });

        let socket = match tokio::time::timeout(
            COMMAND_TIMEOUT,
            tokio_tungstenite::connect_async(url.as_str()),
        )
        .await
        {
            Ok(Ok((socket, _response))) => socket,
            Ok(Err(e)) => panic!("{doing}: connecting to {url}: {e}{}", tail_text(&stderr)),
            Err(_) => panic!(
                "{doing}: connecting to {url}: no answer within {} s",
                COMMAND_TIMEOUT.as_secs()
            ),
        };
        let mut browser = Browser {
            _child: child,
            socket,
            session: String::new(),
            next_id: 0,
            loaded: HashSet::new(),
            errors: Vec::new(),
            stderr,
        };

        let doing = "attaching to chromium's page";
        let targets = browser
            .browser_command(doing, "Target.getTargets", json!({}))
            .await;
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string);
        let target = match page {
            Some(target) => target,
            None => browser
                .browser_command(doing, "Target.createTarget", json!({"url": "about:blank"}))
                .await["targetId"]
                .as_str()
                .unwrap_or_else(|| panic!("{doing}: Target.createTarget returned no targetId"))
                .to_string(),
        };
        let attached = browser
            .browser_command(
                doing,
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("{doing}: Target.attachToTarget returned {attached}"))
            .to_string();
        for method in ["Page.enable", "Runtime.enable", "Log.enable"] {
            browser.command(doing, method, json!({})).await;
        }
        browser
            .command(
                doing,
                "Page.setLifecycleEventsEnabled",
                json!({"enabled": true}),
            )
            .await;
        browser
    }

    /// Navigates to `url` and waits for its load event, at most 30 s. (The `load`
    /// lifecycle event of the navigation's loader rather than `Page.loadEventFired`, which
    /// names no document: a late one from an earlier page could end the wait early.) A
    /// same-document navigation (`#fragment`) has no load event and returns at once.
    pub async fn goto(&mut self, url: &str) {
        let doing = format!("opening {}", snippet(url));
        let navigated = self
            .command(&doing, "Page.navigate", json!({"url": url}))
            .await;
        if let Some(error) = navigated["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("{doing}: navigation failed: {error}");
        }
        let Some(loader) = navigated["loaderId"].as_str() else {
            return;
        };
        // The load event may have been read already, while waiting for the response.
        let deadline = Instant::now() + LOAD_TIMEOUT;
        let waiting = format!("load event within {} s", LOAD_TIMEOUT.as_secs());
        while !self.loaded.contains(loader) {
            let message = self.read_message(&doing, &waiting, deadline).await;
            self.note_event(&message);
        }
    }

    /// Evaluates `js` in the page (`Runtime.evaluate`, awaiting a promise, returning the
    /// value as JSON) and returns its value: `null` for `undefined` and for objects JSON
    /// cannot hold; `NaN`, `Infinity`, `-0` and BigInts as strings (`"NaN"`, `"1n"`).
    /// Panics with the exception if the script throws or its promise rejects.
    pub async fn eval(&mut self, js: &str) -> Value {
        let doing = format!("evaluating `{}`", snippet(js));
        match self.evaluate(&doing, js).await {
            Ok(value) => value,
            Err(exception) => panic!("{doing}: the script threw: {exception}"),
        }
    }

    /// Evaluates the expression `js` every 100 ms until its value is truthy (in the
    /// JavaScript sense; a throw counts as not yet, so `document.querySelector('#x').value`
    /// may be polled before `#x` exists) and returns that value. Panics after `timeout`,
    /// naming `what` and the last value or exception.
    pub async fn wait_for(&mut self, what: &str, js: &str, timeout: Duration) -> Value {
        let doing = format!("waiting for {what}");
        let expression = js.trim().trim_end_matches(';');
        // Newlines, so that an expression ending in a `//` comment still parses.
        let probe =
            format!("(async () => {{ const v = await (\n{expression}\n); return [!!v, v]; }})()");
        let deadline = Instant::now() + timeout;
        loop {
            let last = match self.evaluate(&doing, &probe).await {
                Ok(Value::Array(mut pair)) if pair.len() == 2 => {
                    let value = pair.pop().expect("two elements");
                    if pair[0] == Value::Bool(true) {
                        return value;
                    }
                    format!("the value {value}")
                }
                Ok(other) => format!("the unexpected result {other}"),
                Err(exception) => format!("the exception {exception}"),
            };
            if Instant::now() >= deadline {
                panic!(
                    "{doing}: `{}` still not truthy after {timeout:?}; last: {last}",
                    snippet(js)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the first element matching the CSS selector `css` with real mouse events
    /// (move, press, release at its centre after scrolling it into view), so the page sees a
    /// trusted click. Panics if there is no such element, it has no size, or another
    /// element covers its centre (the click would land there).
    pub async fn click(&mut self, css: &str) {
        let doing = format!("clicking `{css}`");
        let (x, y) = self.locate(&doing, css).await;
        let events = [
            ("mouseMoved", x, y, "none", 0, 0),
            ("mousePressed", x, y, "left", 1, 1),
            ("mouseReleased", x, y, "left", 0, 1),
        ];
        self.mouse(&doing, &events).await;
    }

    /// Dispatches mouse events `(type, x, y, button, buttons, clickCount)`, then settles.
    async fn mouse(&mut self, doing: &str, events: &[(&str, f64, f64, &str, u8, u8)]) {
        for &(kind, x, y, button, buttons, clicks) in events {
            let event = json!({
                "type": kind, "x": x, "y": y,
                "button": button, "buttons": buttons, "clickCount": clicks,
            });
            self.command(doing, "Input.dispatchMouseEvent", event).await;
        }
        self.settle().await;
    }

    /// Drags with the left button from the centre of the first element matching `from` to
    /// the centre of the first matching `to`: press, ten moves with the button held,
    /// release, all real mouse events. `from` is scrolled into view; `to` must then be in
    /// the viewport too. Panics like [`Browser::click`] when either is missing, has no
    /// size or is covered.
    pub async fn drag(&mut self, from: &str, to: &str) {
        let doing = format!("dragging `{from}` onto `{to}`");
        let (x0, y0) = self.locate_in(&doing, from, true).await;
        let (x1, y1) = self.locate_in(&doing, to, false).await;
        self.drag_between(&doing, (x0, y0), (x1, y1)).await;
    }

    /// Drags the first element matching `from` (scrolled into view) by `dx`, `dy` CSS
    /// pixels from its centre, with the same real mouse events as [`Browser::drag`].
    pub async fn drag_by(&mut self, from: &str, dx: f64, dy: f64) {
        let doing = format!("dragging `{from}` by ({dx}, {dy})");
        let (x0, y0) = self.locate_in(&doing, from, true).await;
        self.drag_between(&doing, (x0, y0), (x0 + dx, y0 + dy))
            .await;
    }

    async fn drag_between(&mut self, doing: &str, (x0, y0): (f64, f64), (x1, y1): (f64, f64)) {
        let mut events = vec![
            ("mouseMoved", x0, y0, "none", 0, 0),
            ("mousePressed", x0, y0, "left", 1, 1),
        ];
        for i in 1..=10 {
            let f = f64::from(i) / 10.0;
            events.push((
                "mouseMoved",
                x0 + (x1 - x0) * f,
                y0 + (y1 - y0) * f,
                "left",
                1,
                0,
            ));
        }
        events.push(("mouseReleased", x1, y1, "left", 0, 1));
        self.mouse(doing, &events).await;
    }

    /// Focuses the first element matching `css` (an input, a textarea or a contenteditable)
    /// and types `text` into it with `Input.insertText`, so `input` events fire. With
    /// `clear` the existing contents are selected first and replaced; without it the text
    /// is appended.
    pub async fn type_into(&mut self, css: &str, text: &str, clear: bool) {
        let doing = format!("typing into `{css}`");
        let selector = js_string(css);
        let script = format!(
            r#"(() => {{
  const el = document.querySelector({selector});
  if (!el) return 'no such element';
  el.scrollIntoView({{block: 'center', inline: 'center'}});
  el.focus();
  if (document.activeElement !== el) return 'it does not take focus (disabled, hidden or not focusable?)';
  if (typeof el.select === 'function') {{
    if ({clear}) el.select();
    else try {{ el.setSelectionRange(el.value.length, el.value.length); }} catch (_) {{ /* email, number: no caret API */ }}
  }} else {{
    const range = document.createRange();
    range.selectNodeContents(el);
    if (!{clear}) range.collapse(false);
    getSelection().removeAllRanges();
    getSelection().addRange(range);
  }}
  return 'ok';
}})()"#
        );
        match self.evaluate(&doing, &script).await {
            Ok(v) if v == "ok" => {}
            Ok(problem) => panic!("{doing}: {}", problem.as_str().unwrap_or_default()),
            Err(exception) => panic!("{doing}: {exception}"),
        }
        if !text.is_empty() {
            self.command(&doing, "Input.insertText", json!({"text": text}))
                .await;
        } else if clear {
            self.press("Backspace").await;
        }
        self.settle().await;
    }

    /// Presses and releases `key` (`Input.dispatchKeyEvent`): a DOM key name — `Enter`,
    /// `Tab`, `Escape`, `Backspace`, `Delete`, `ArrowUp`/`Down`/`Left`/`Right`, `Home`,
    /// `End`, `PageUp`, `PageDown` — or a single character. `Enter` also types `"\r"`, so it
    /// submits a form as a real Enter does.
    pub async fn press(&mut self, key: &str) {
        let doing = format!("pressing `{key}`");
        let Some((code, key_code, text)) = key_definition(key) else {
            panic!("{doing}: unknown key (a DOM key name such as `Enter` or `ArrowDown`, or one character)");
        };
        let mut down = json!({
            "type": if text.is_some() { "keyDown" } else { "rawKeyDown" },
            "key": key, "code": code,
            "windowsVirtualKeyCode": key_code, "nativeVirtualKeyCode": key_code,
        });
        if let Some(text) = &text {
            down["text"] = json!(text);
            down["unmodifiedText"] = json!(text);
        }
        self.command(&doing, "Input.dispatchKeyEvent", down).await;
        let up = json!({
            "type": "keyUp", "key": key, "code": code,
            "windowsVirtualKeyCode": key_code, "nativeVirtualKeyCode": key_code,
        });
        self.command(&doing, "Input.dispatchKeyEvent", up).await;
        self.settle().await;
    }

    /// Chooses `files` in the `<input type=file>` matching `css` (`DOM.setFileInputFiles`;
    /// Chromium fires its `input` and `change` events). Relative paths are made absolute.
    pub async fn set_files(&mut self, css: &str, files: &[PathBuf]) {
        let doing = format!("setting files on `{css}`");
        let files: Vec<String> = files
            .iter()
            .map(|file| {
                let file = std::fs::canonicalize(file)
                    .unwrap_or_else(|e| panic!("{doing}: {}: {e}", file.display()));
                file.to_string_lossy().into_owned()
            })
            .collect();
        let document = self
            .command(&doing, "DOM.getDocument", json!({"depth": 0}))
            .await;
        let root = document["root"]["nodeId"].clone();
        let found = self
            .command(
                &doing,
                "DOM.querySelector",
                json!({"nodeId": root, "selector": css}),
            )
            .await;
        let node = found["nodeId"].as_u64().unwrap_or(0);
        if node == 0 {
            panic!("{doing}: no such element");
        }
        self.command(
            &doing,
            "DOM.setFileInputFiles",
            json!({"files": files, "nodeId": node}),
        )
        .await;
        self.settle().await;
    }

    /// Lets downloads go to `dir` (created if missing) under the name the page suggests
    /// (`Browser.setDownloadBehavior`, `allow`, with download events enabled). A test
    /// waits for the file to appear there; Chromium writes `<name>.crdownload` first and
    /// renames it when complete.
    pub async fn allow_downloads(&mut self, dir: &Path) {
        let doing = format!("allowing downloads into {}", dir.display());
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{doing}: creating it: {e}"));
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("{doing}: {e}"));
        self.browser_command(
            &doing,
            "Browser.setDownloadBehavior",
            json!({"behavior": "allow", "downloadPath": dir, "eventsEnabled": true}),
        )
        .await;
    }

    /// Writes a PNG screenshot of the viewport to `path` (`Page.captureScreenshot`).
    pub async fn screenshot(&mut self, path: &Path) {
        let doing = format!("taking a screenshot into {}", path.display());
        let shot = self
            .command(&doing, "Page.captureScreenshot", json!({"format": "png"}))
            .await;
        let data = shot["data"]
            .as_str()
            .unwrap_or_else(|| panic!("{doing}: no image data in the response"));
        let png = base64::engine::general_purpose::STANDARD
            .decode(data)
            .unwrap_or_else(|e| panic!("{doing}: the image is not base64: {e}"));
        std::fs::write(path, png).unwrap_or_else(|e| panic!("{doing}: {e}"));
    }

    /// The page's errors seen so far, in order: `console.error(…)` and failed
    /// `console.assert(…)` calls, uncaught exceptions and unhandled rejections, and
    /// browser log entries of level error (a failed resource load, a blocked request) —
    /// except a failed `/favicon.ico`, which headless Chromium requests from every http
    /// page's server by itself.
    /// Events are read while commands run; the input methods finish with a round trip to
    /// the page, so errors their handlers raised synchronously are already here.
    pub fn page_errors(&self) -> Vec<String> {
        self.errors.clone()
    }

    /// The centre of the first element matching `css`, scrolled into view.
    async fn locate(&mut self, doing: &str, css: &str) -> (f64, f64) {
        self.locate_in(doing, css, true).await
    }

    /// As `locate`; without `scroll` the element must already be in the viewport.
    async fn locate_in(&mut self, doing: &str, css: &str, scroll: bool) -> (f64, f64) {
        let selector = js_string(css);
        let scroll = if scroll {
            "el.scrollIntoView({block: 'center', inline: 'center'});"
        } else {
            ""
        };
        let script = format!(
            r#"(() => {{
  const el = document.querySelector({selector});
  if (!el) return 'no such element';
  {scroll}
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) return `it has zero size (${{r.width}}x${{r.height}}): hidden?`;
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (hit !== el && !el.contains(hit)) {{
    const name = hit ? hit.tagName.toLowerCase() + (hit.id ? '#' + hit.id : '') : 'nothing (outside the viewport?)';
    return `its centre (${{x}}, ${{y}}) is covered by ${{name}}`;
  }}
  return [x, y];
}})()"#
        );
        match self.evaluate(doing, &script).await {
            Ok(Value::Array(point)) => match (point[0].as_f64(), point[1].as_f64()) {
                (Some(x), Some(y)) => (x, y),
                _ => panic!("{doing}: bad coordinates {point:?}"),
            },
            Ok(problem) => panic!("{doing}: {}", problem.as_str().unwrap_or_default()),
            Err(exception) => panic!("{doing}: {exception}"),
        }
    }

    /// `Runtime.evaluate`: the value, or the exception's text if the script threw (or the
    /// protocol error if the evaluation could not run).
    async fn evaluate(&mut self, doing: &str, js: &str) -> Result<Value, String> {
        let params = json!({
            "expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true,
        });
        // A protocol error (the page navigated mid-call and its context is gone) is the
        // caller's to judge: `wait_for` tries again, the others panic with it.
        let mut evaluated = match self.send(doing, true, "Runtime.evaluate", params).await {
            Ok(v) => v,
            Err(error) => return Err(format!("Runtime.evaluate failed: {error}")),
        };
        if let Some(details) = evaluated.get("exceptionDetails") {
            return Err(exception_text(details));
        }
        let result = evaluated["result"].take();
        Ok(match result.get("value") {
            Some(value) => value.clone(),
            None => result
                .get("unserializableValue")
                .cloned()
                .unwrap_or(Value::Null),
        })
    }

    /// A round trip to the page after input: its response comes after the events the input
    /// caused synchronously (console errors, exceptions), which are then noted. Errors are
    /// ignored: the input may have started a navigation that destroyed the context.
    async fn settle(&mut self) {
        let _ = self
            .send(
                "waiting for the page after input",
                true,
                "Runtime.evaluate",
                json!({"expression": "0"}),
            )
            .await;
    }

    /// A command to the page's session; panics if Chromium answers with an error.
    async fn command(&mut self, doing: &str, method: &str, params: Value) -> Value {
        self.send(doing, true, method, params)
            .await
            .unwrap_or_else(|error| panic!("{doing}: {method} failed: {error}"))
    }

    /// A command to the browser itself (no session).
    async fn browser_command(&mut self, doing: &str, method: &str, params: Value) -> Value {
        self.send(doing, false, method, params)
            .await
            .unwrap_or_else(|error| panic!("{doing}: {method} failed: {error}"))
    }

    /// Sends a command and reads the socket until its response, noting the events read
    /// meanwhile. `Err` is the protocol error Chromium answered with.
    async fn send(
        &mut self,
        doing: &str,
        to_page: bool,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if to_page {
            command["sessionId"] = json!(self.session);
        }
        if let Err(e) = self.socket.send(Message::text(command.to_string())).await {
            panic!("{doing}: sending {method}: {e}{}", tail_text(&self.stderr));
        }
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let waiting = format!(
            "response to {method} within {} s",
            COMMAND_TIMEOUT.as_secs()
        );
        loop {
            let mut message = self.read_message(doing, &waiting, deadline).await;
            if message["id"].as_u64() == Some(id) {
                return match message.get("error") {
                    Some(error) => Err(match error["message"].as_str() {
                        Some(text) => format!("{text} ({})", error["code"]),
                        None => error.to_string(),
                    }),
                    None => Ok(message["result"].take()),
                };
            }
            self.note_event(&message);
        }
    }

    /// The next JSON message from the socket; panics on a timeout or a closed connection.
    async fn read_message(&mut self, doing: &str, waiting: &str, deadline: Instant) -> Value {
        loop {
            let message = match timeout_at(deadline, self.socket.next()).await {
                Err(_) => panic!("{doing}: no {waiting}"),
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(e))) => panic!(
                    "{doing}: reading the DevTools socket: {e}{}",
                    tail_text(&self.stderr)
                ),
                Ok(None) => panic!(
                    "{doing}: Chromium closed the DevTools socket (crashed?){}",
                    tail_text(&self.stderr)
                ),
            };
            match message {
                Message::Text(text) => {
                    return serde_json::from_str(text.as_str()).unwrap_or_else(|e| {
                        panic!(
                            "{doing}: DevTools sent invalid JSON ({e}): {}",
                            snippet(&text)
                        )
                    })
                }
                Message::Close(frame) => panic!(
                    "{doing}: Chromium closed the DevTools socket ({frame:?}){}",
                    tail_text(&self.stderr)
                ),
                // Pings are answered by tungstenite; Chromium sends no binary frames.
                _ => {}
            }
        }
    }

    /// Records what the tests need from an event of the page's session.
    fn note_event(&mut self, message: &Value) {
        if message["sessionId"].as_str() != Some(self.session.as_str()) {
            return;
        }
        let params = &message["params"];
        match message["method"].as_str().unwrap_or_default() {
            "Page.lifecycleEvent" if params["name"] == "load" => {
                if let Some(loader) = params["loaderId"].as_str() {
                    self.loaded.insert(loader.to_string());
                }
            }
            "Runtime.consoleAPICalled" => {
                let kind = params["type"].as_str().unwrap_or_default();
                if kind == "error" || kind == "assert" {
                    let args = params["args"].as_array().map(Vec::as_slice).unwrap_or(&[]);
                    let text: Vec<String> = args.iter().map(remote_object_text).collect();
                    self.errors
                        .push(format!("console.{kind}: {}", text.join(" ")));
                }
            }
            "Runtime.exceptionThrown" => self.errors.push(format!(
                "uncaught exception: {}",
                exception_text(&params["exceptionDetails"])
            )),
            "Log.entryAdded" if params["entry"]["level"] == "error" => {
                let entry = &params["entry"];
                let url = entry["url"].as_str().unwrap_or_default();
                // Chromium asks every http page's server for /favicon.ico on its own.
                if entry["source"] == "network" && url.ends_with("/favicon.ico") {
                    return;
                }
                let mut text = format!(
                    "{} error: {}",
                    entry["source"].as_str().unwrap_or("browser"),
                    entry["text"].as_str().unwrap_or_default()
                );
                if !url.is_empty() {
                    text += &format!(" ({})", snippet(url));
                }
                self.errors.push(text);
            }
            _ => {}
        }
    }
}

/// One line of Chromium's stderr (lossily decoded), `None` at its end.
async fn read_line(reader: &mut BufReader<impl AsyncRead + Unpin>) -> Option<String> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(String::from_utf8_lossy(&line).trim_end().to_string()),
    }
}

fn push_line(tail: &StderrTail, line: String) {
    let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if tail.len() == STDERR_TAIL {
        tail.pop_front();
    }
    tail.push_back(line);
}

/// Chromium's last stderr lines, for a panic message.
fn tail_text(tail: &StderrTail) -> String {
    let tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let lines: Vec<&str> = tail.iter().map(String::as_str).collect();
    format!("\nChromium's last stderr lines:\n{}", lines.join("\n"))
}

/// A Rust string as a JavaScript string literal (JSON's escaping is valid JavaScript).
fn js_string(s: &str) -> String {
    Value::from(s).to_string()
}

/// `s` on one line and at most 120 characters, for messages.
fn snippet(s: &str) -> String {
    let line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(120) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// A console argument as the console would print it.
fn remote_object_text(object: &Value) -> String {
    match object.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(value) => value.to_string(),
        None => object["unserializableValue"]
            .as_str()
            .or(object["description"].as_str())
            .unwrap_or_else(|| object["type"].as_str().unwrap_or("?"))
            .to_string(),
    }
}

/// The text of `Runtime.ExceptionDetails`: the thrown value's description (with the stack,
/// for an `Error`), else the value, else the summary (`Uncaught`).
fn exception_text(details: &Value) -> String {
    let exception = &details["exception"];
    if let Some(description) = exception["description"].as_str() {
        description.to_string()
    } else if exception.get("value").is_some() {
        remote_object_text(exception)
    } else {
        details["text"].as_str().unwrap_or("exception").to_string()
    }
}

/// `(code, windowsVirtualKeyCode, text)` of a key name or a single character.
fn key_definition(key: &str) -> Option<(String, u32, Option<String>)> {
    let named = |code: &str, key_code: u32, text: Option<&str>| {
        Some((code.to_string(), key_code, text.map(str::to_string)))
    };
    match key {
        "Enter" => named("Enter", 13, Some("\r")),
        "Tab" => named("Tab", 9, None),
        "Escape" => named("Escape", 27, None),
        "Backspace" => named("Backspace", 8, None),
        "Delete" => named("Delete", 46, None),
        "ArrowLeft" => named("ArrowLeft", 37, None),
        "ArrowUp" => named("ArrowUp", 38, None),
        "ArrowRight" => named("ArrowRight", 39, None),
        "ArrowDown" => named("ArrowDown", 40, None),
        "Home" => named("Home", 36, None),
        "End" => named("End", 35, None),
        "PageUp" => named("PageUp", 33, None),
        "PageDown" => named("PageDown", 34, None),
        " " => named("Space", 32, Some(" ")),
        _ => {
            let mut chars = key.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return None;
            };
            let upper = c.to_ascii_uppercase();
            let (code, key_code) = if c.is_ascii_alphabetic() {
                (format!("Key{upper}"), upper as u32)
            } else if c.is_ascii_digit() {
                (format!("Digit{c}"), c as u32)
            } else {
                (String::new(), 0)
            };
            Some((code, key_code, Some(c.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_are_one_short_line() {
        assert_eq!(snippet("a\n  b"), "a b");
        let long = "é".repeat(200);
        assert_eq!(snippet(&long).chars().count(), 121);
    }

    #[test]
    fn selectors_become_string_literals() {
        assert_eq!(js_string(r#"a[title="x"]\"#), r#""a[title=\"x\"]\\""#);
    }

    #[test]
    fn keys() {
        assert_eq!(
            key_definition("Enter"),
            Some(("Enter".into(), 13, Some("\r".into())))
        );
        assert_eq!(
            key_definition("a"),
            Some(("KeyA".into(), 65, Some("a".into())))
        );
        assert_eq!(
            key_definition("7"),
            Some(("Digit7".into(), 55, Some("7".into())))
        );
        assert_eq!(key_definition("Enterr"), None);
        assert_eq!(key_definition(""), None);
    }
}
