//! `waihu bench webrtc`: mouth to ear in the console's voice test (headless
//! Chromium, its fake microphone, WebRTC with Opus and with G.711) beside a
//! phone call over SIP to the same bot, in the same run.
//!
//! Both figures are taken at the listener's ear, from the end of the callee's
//! words to the first audio of the bot's reply: in the page, from the
//! microphone's and the remote track's levels (`vtTurns()` in the console);
//! on the phone, by the virtual callee on its received RTP (its
//! `reply_ms`). Both include the network path both ways, the jitter buffers,
//! and the bot's endpointing, ASR, NLU, dialog and TTS; the bot's own figure
//! for the same turns (end of speech to first audio sent) is printed beside
//! each, so what the transport adds can be read off. The bot is the same:
//! English order confirmation, one ASR slot, speculative ASR as the product
//! runs it.
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use serde_json::{json, Value};
use waihu_cdp::Browser;
use waihu_store::Store;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Calls per path (browser with Opus, browser with G.711, phone over SIP).
    #[arg(long, default_value_t = 3)]
    pub calls: usize,
    #[arg(long)]
    pub json: bool,
}

/// One way of reaching the bot, measured.
#[derive(Debug, Serialize)]
pub struct Leg {
    pub path: &'static str,
    /// The codec the calls used (`opus`, `PCMU`, `PCMA`).
    pub codec: String,
    /// Turns measured at the listener's ear.
    pub turns: usize,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// The bot's end of speech to first audio sent, p50 over the same calls.
    pub bot_p50_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// The phone over SIP, the browser with Opus, the browser with G.711.
    pub paths: Vec<Leg>,
    /// Browser (Opus) p50 / phone p50.
    pub opus_vs_sip: f64,
    /// Browser (G.711) p50 / phone p50.
    pub g711_vs_sip: f64,
}

const SCRIPT: &str = include_str!("../../../examples/scripts/order_confirmation.en.yaml");
const KNOWLEDGE: &str = include_str!("../../../examples/knowledge/air_purifier.en.md");

/// The same rank rule as the SIP side's figures (nearest rank, rounded).
fn pct(v: &[f64], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let i = ((v.len().max(1) - 1) as f64 * p).round() as usize;
    v.get(i).copied().unwrap_or(f64::NAN)
}

pub fn run(home: &Path, a: Args) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let report = measure(home, &a)?;
    if a.json {
        return crate::print_json(&report);
    }
    println!("mouth to ear, end of the callee's words to the bot's reply at their ear (same run, same English bot, one ASR slot):");
    for p in &report.paths {
        println!(
            "  {:<34} {:<5} p50 {:>5.0} ms, p95 {:>5.0} ms over {} turns; the bot's own end of speech to first audio p50 {:>5.0} ms",
            p.path, p.codec, p.p50_ms, p.p95_ms, p.turns, p.bot_p50_ms
        );
    }
    println!(
        "  browser/phone p50: Opus {:.2}×, G.711 {:.2}×; wall {:.0} s",
        report.opus_vs_sip,
        report.g711_vs_sip,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The three paths of `a`, one after another in this process.
pub fn measure(home: &Path, a: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(a.calls >= 1, "--calls must be at least 1");
    anyhow::ensure!(
        Path::new(waihu_cdp::CHROMIUM).exists(),
        "{} is not installed (bash scripts/setup.sh installs it)",
        waihu_cdp::CHROMIUM
    );
    let t0 = Instant::now();
    eprintln!(
        "waihu bench webrtc: 1/3 the phone over SIP, {} calls to virtual callees",
        a.calls
    );
    let sip = crate::voice::levels(&crate::voice::Args {
        levels: vec![1],
        calls: Some(a.calls),
        persona: "cooperative".into(),
        asr_slots: Some(1),
        lang: "en".into(),
        arrival: "staggered".into(),
        speculate: "on".into(),
        json: false,
        quiet: a.json,
        // The models the browser's bot uses (`WAIHU_MODELS_DIR`, else under `home`).
        models: Some(waihu_speech::piper::models_dir(home)),
    })?;
    let sip = sip.first().context("the SIP run returned no row")?;
    let mut paths = vec![Leg {
        path: "phone over SIP (virtual callee)",
        codec: "PCMU".into(),
        turns: sip.ear.turns,
        p50_ms: sip.ear.p50_ms,
        p95_ms: sip.ear.p95_ms,
        bot_p50_ms: sip.latency.p50_ms,
    }];
    let rt = crate::runtime()?;
    for (i, codec) in ["opus", "g711"].into_iter().enumerate() {
        eprintln!(
            "waihu bench webrtc: {}/3 the browser over WebRTC ({codec}), {} calls; {:.0} s so far",
            i + 2,
            a.calls,
            t0.elapsed().as_secs_f64()
        );
        let row = rt.block_on(browser(home, codec, a.calls))?;
        paths.push(row);
    }
    let ratio = |i: usize| (paths[i].p50_ms / paths[0].p50_ms.max(1.0) * 100.0).round() / 100.0;
    Ok(Report {
        opus_vs_sip: ratio(1),
        g711_vs_sip: ratio(2),
        paths,
    })
}

/// `calls` voice tests in headless Chromium with `codec` chosen in the page.
async fn browser(home: &Path, codec: &str, calls: usize) -> anyhow::Result<Leg> {
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("data");
    let scripts = dir.join("scripts");
    std::fs::create_dir_all(&scripts)?;
    std::fs::create_dir_all(dir.join("knowledge"))?;
    std::fs::write(scripts.join("order_confirmation.en.yaml"), SCRIPT)?;
    std::fs::write(dir.join("knowledge/air_purifier.en.md"), KNOWLEDGE)?;
    let models = waihu_speech::piper::models_dir(home);
    std::os::unix::fs::symlink(&models, dir.join("models"))
        .with_context(|| format!("linking the models at {}", models.display()))?;
    let store = Store::open(&dir).await?;
    let (key, _) = waihu_server::auth::create_key(
        &store,
        "bench",
        waihu_server::auth::Role::Admin,
        chrono::Utc::now(),
    )
    .await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(waihu_server::serve(
        listener,
        store,
        waihu_server::Config::default(),
        async move {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    let api = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&key);
        if let Some(b) = body {
            r = r.json(&b);
        }
        async move {
            let r = r.send().await?;
            let status = r.status();
            let v: Value = r.json().await?;
            anyhow::ensure!(status.is_success(), "{status}: {v}");
            Ok::<Value, anyhow::Error>(v)
        }
    };
    // The callee: quiet through the opening (its longest variant), then an answer.
    let pv = api(
        reqwest::Method::POST,
        "/api/scripts/prompt-audio",
        Some(json!({"yaml": SCRIPT, "state": "opening"})),
    )
    .await
    .context("timing the opening prompt")?;
    let opening_ms = pv["variants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["ms"].as_u64())
        .max()
        .context("the opening has no audio")?;
    let said = tmp.path().join("said.wav");
    let ok = std::process::Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&said)
        .arg("Yes, speaking.")
        .status()
        .context("running espeak-ng")?;
    anyhow::ensure!(ok.success(), "espeak-ng failed");
    let pcm = waihu_audio::wav::read_wav(&said)?;
    let ms = |n: u64| vec![0i16; (n * u64::from(pcm.rate) / 1000) as usize];
    let mut samples = ms(opening_ms + 3000);
    samples.extend_from_slice(&pcm.samples);
    samples.extend(ms(8000));
    let mic = tmp.path().join("mic.wav");
    waihu_audio::wav::write_wav(&mic, pcm.rate, &samples)?;

    let (mut page, mut bot, mut used) = (Vec::new(), Vec::new(), String::new());
    for i in 0..calls {
        let profile = tmp.path().join(format!("profile-{i}"));
        std::fs::create_dir_all(&profile)?;
        let args = waihu_cdp::fake_microphone(&mic);
        let mut b = Browser::launch(&profile, &args).await;
        b.goto(&format!("{base}/console?key={key}#scripts")).await;
        b.wait_for(
            "the script to load",
            "document.getElementById('sc-status').className === 'status ok'",
            Duration::from_secs(30),
        )
        .await;
        b.eval(&format!(
            "document.getElementById('vt-codec').value = '{codec}'"
        ))
        .await;
        b.click("#vt-start").await;
        b.wait_for(
            "the answer understood and the reply heard in the page",
            "window.vtNotes && window.vtNotes.some(n => n.kind === 'state' && n.state === 'verify_address') && vtTurns().length > 0",
            Duration::from_millis(opening_ms + 40_000),
        )
        .await;
        let turns = b.eval("vtTurns()").await;
        let id = b.eval("window.vtId").await;
        b.click("#vt-stop").await;
        let session = format!("/api/scripts/voice/{}", id.as_str().unwrap_or_default());
        let deadline = Instant::now() + Duration::from_secs(40);
        let ended = loop {
            let v = api(reqwest::Method::GET, &session, None).await?;
            if !v["ended"].is_null() {
                break v["ended"].clone();
            }
            anyhow::ensure!(Instant::now() < deadline, "the voice test did not end: {v}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        drop(b);
        let gap = turns[0][2]
            .as_f64()
            .context("no turn measured in the page")?;
        page.push(gap);
        if let Some(t) = ended["bot"]["latencies"][0]["total_ms"].as_f64() {
            bot.push(t);
        }
        used = ended["leg"]["codec"].as_str().unwrap_or("?").to_string();
        eprintln!(
            "  call {}/{calls} ({used}): mouth to ear {gap:.0} ms in the page",
            i + 1
        );
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(Leg {
        path: "browser over WebRTC (Chromium)",
        codec: used,
        turns: page.len(),
        p50_ms: pct(&page, 0.5),
        p95_ms: pct(&page, 0.95),
        bot_p50_ms: pct(&bot, 0.5),
    })
}
