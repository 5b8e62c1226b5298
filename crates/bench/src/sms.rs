//! `waihu bench sms`: SMPP submit throughput of the `waihu-smpp` client against a real
//! SMSC (Net::SMPP, `libnet-smpp-perl`) on 127.0.0.1, with the requested window beside a
//! window of 1 (stop-and-wait: one submit_sm, wait for its resp), and beside Kannel
//! (Debian `kannel`: bearerbox + smsbox, its SMPP window set to the same size) fed through
//! its own `sendsms` HTTP interface and delivering to the same kind of SMSC — all in the
//! same run, for one-segment English and two-segment Chinese texts.
//!
//! Each run gets a fresh SMSC process. waihu's time runs from the first submit to the last
//! submit_sm_resp; Kannel's from the first `sendsms` request to the moment the SMSC has
//! logged every submit_sm (Kannel answers HTTP once a message is queued, not submitted).
//!
//! Then CMPP: `waihu-cmpp` in 2.0 and 3.0 against waihu's CMPP test gateway
//! (`waihu_cmpp::peer`, which reads the wire by the spec's offsets) in the same process,
//! at window 1 and at the window, same texts. No CMPP gateway is packaged for Debian, so
//! the baseline here is stop-and-wait, not another client.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use waihu_smpp::driver::DriverEvent;
use waihu_smpp::peer::{PeerOptions, PeerSmsc};
use waihu_smpp::{ClientConfig, Config, Event, OutgoingSms};
use waihu_testkit::kannel::{self, Kannel};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// submit_sm requests in flight at once (waihu's window and Kannel's
    /// `max-pending-submits`).
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    /// `sendsms` HTTP requests in flight at once against Kannel.
    #[arg(long, default_value_t = 10)]
    pub http_concurrency: usize,
    /// Only the CMPP rows (they need neither perl's Net::SMPP nor Kannel).
    #[arg(long)]
    pub cmpp_only: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    text: &'static str,
    /// "waihu-smpp" or "kannel sendsms".
    client: &'static str,
    window: usize,
    messages: usize,
    pdus: usize,
    seconds: f64,
    messages_per_s: f64,
    pdus_per_s: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !a.cmpp_only && !PeerSmsc::available() {
        anyhow::bail!(
            "perl with Net::SMPP is missing: install libnet-smpp-perl (scripts/setup.sh)"
        );
    }
    for bin in [kannel::BEARERBOX, kannel::SMSBOX] {
        if !a.cmpp_only && !std::path::Path::new(bin).exists() {
            anyhow::bail!("{bin} is missing: install Debian's kannel (scripts/setup.sh)");
        }
    }
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let english = "Your coupon is ready. Reply STOP to opt out.".to_string();
        let chinese =
            "【外呼】您好，您的专属优惠券已经发放到账户，有效期三十天，可在下单时直接抵扣。\
                       如有疑问请拨打客服热线，我们将竭诚为您服务，感谢您一直以来的支持与信任，祝您生活愉快。回复TD退订"
                .to_string();
        let segs = waihu_smpp::text::plan(&chinese).segment_count();
        anyhow::ensure!(segs == 2, "the Chinese text should take 2 segments, takes {segs}");
        let window = a.window.max(1);
        let mut rows = Vec::new();
        let texts = [
            ("en, 1 segment", &english, 1),
            ("zh, 2 segments", &chinese, segs),
        ];
        let cmpp = cmpp_rows(&texts, window, a.messages).await?;
        for &(label, text, pdus) in texts.iter().filter(|_| !a.cmpp_only) {
            for w in [1, window] {
                let smsc = PeerSmsc::start(&PeerOptions::default()).context("starting the SMSC")?;
                let seconds = one_run(&smsc, w, a.messages, text, label).await?;
                rows.push(row(label, "waihu-smpp", w, a.messages, pdus, seconds));
            }
            let smsc = PeerSmsc::start(&PeerOptions::default()).context("starting the SMSC")?;
            let seconds = kannel_run(&smsc, window, a.http_concurrency, a.messages, text, pdus, label)
                .await?;
            rows.push(row(label, "kannel sendsms", window, a.messages, pdus, seconds));
        }
        if a.json {
            rows.extend(cmpp);
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else if a.cmpp_only {
            print_cmpp(&cmpp);
        } else {
            println!(
                "SMPP submit throughput to a Net::SMPP SMSC (perl) on 127.0.0.1: waihu-smpp \
                 directly vs Kannel's sendsms HTTP interface ({} requests in flight)",
                a.http_concurrency
            );
            println!(
                "{:<16} {:<15} {:>6} {:>9} {:>8} {:>10} {:>10}",
                "text", "client", "window", "messages", "seconds", "msg/s", "PDU/s"
            );
            for r in &rows {
                println!(
                    "{:<16} {:<15} {:>6} {:>9} {:>8.2} {:>10.0} {:>10.0}",
                    r.text,
                    r.client,
                    r.window,
                    r.messages,
                    r.seconds,
                    r.messages_per_s,
                    r.pdus_per_s
                );
            }
            for triple in rows.chunks(3) {
                if let [base, w, k] = triple {
                    println!(
                        "{}: window {} is {:.1}x stop-and-wait (window 1) and {:.2}x Kannel sendsms \
                         (Kannel window {})",
                        w.text,
                        w.window,
                        w.messages_per_s / base.messages_per_s,
                        w.messages_per_s / k.messages_per_s,
                        k.window
                    );
                }
            }
            println!(
                "(the SMSC is one single-threaded perl process per bind; it bounds these figures)"
            );
            print_cmpp(&cmpp);
        }
        Ok(())
    })
}

/// For each text: waihu-cmpp 2.0 at window 1 and at `window`, then 3.0 at `window`, each
/// against a fresh gateway of its version.
async fn cmpp_rows(
    texts: &[(&'static str, &String, usize)],
    window: usize,
    n: usize,
) -> anyhow::Result<Vec<Row>> {
    use waihu_cmpp::pdu::Version;
    let mut rows = Vec::new();
    for &(label, text, _) in texts {
        let parts = waihu_cmpp::text::plan(text).part_count();
        for (client, version, w) in [
            ("waihu-cmpp 2.0", Version::V2_0, 1),
            ("waihu-cmpp 2.0", Version::V2_0, window),
            ("waihu-cmpp 3.0", Version::V3_0, window),
        ] {
            let seconds = cmpp_run(version, w, n, text, label).await?;
            rows.push(row(label, client, w, n, parts, seconds));
        }
    }
    Ok(rows)
}

fn print_cmpp(rows: &[Row]) {
    println!();
    println!(
        "CMPP submit throughput to waihu's CMPP test gateway (tokio, same process) on 127.0.0.1"
    );
    println!(
        "{:<16} {:<15} {:>6} {:>9} {:>8} {:>10} {:>10}",
        "text", "client", "window", "messages", "seconds", "msg/s", "PDU/s"
    );
    for r in rows {
        println!(
            "{:<16} {:<15} {:>6} {:>9} {:>8.2} {:>10.0} {:>10.0}",
            r.text, r.client, r.window, r.messages, r.seconds, r.messages_per_s, r.pdus_per_s
        );
    }
    for triple in rows.chunks(3) {
        if let [base, w, v3] = triple {
            println!(
                "{}: CMPP 2.0 window {} is {:.1}x stop-and-wait; 3.0 at the same window is {:.2}x 2.0",
                w.text,
                w.window,
                w.messages_per_s / base.messages_per_s,
                v3.messages_per_s / w.messages_per_s,
            );
        }
    }
}

/// Connects in `version` to a fresh test gateway, submits `n` copies of `text` to distinct
/// numbers and waits for every SUBMIT_RESP. Seconds from the first submit to the last
/// answer.
async fn cmpp_run(
    version: waihu_cmpp::pdu::Version,
    window: usize,
    n: usize,
    text: &str,
    label: &str,
) -> anyhow::Result<f64> {
    use waihu_cmpp::peer::{PeerGateway, PeerOptions};
    let gateway = PeerGateway::start(PeerOptions {
        source_addr: "901234".into(),
        shared_secret: "bench".into(),
        reports: false,
        mo_reply: None,
        version,
    })
    .await
    .context("starting the CMPP test gateway")?;
    let cfg = waihu_cmpp::ClientConfig::new(
        gateway.addr(),
        waihu_cmpp::Config {
            source_addr: "901234".into(),
            shared_secret: "bench".into(),
            service_id: "WAIHU".into(),
            src_id: "1069001234".into(),
            window,
            request_reports: false,
            version,
            ..waihu_cmpp::Config::default()
        },
    );
    let (client, mut events) = waihu_cmpp::spawn(cfg);
    let limit = Duration::from_secs(120);
    loop {
        match tokio::time::timeout(limit, events.recv()).await {
            Ok(Some(waihu_cmpp::DriverEvent::Session(waihu_cmpp::Event::Connected))) => break,
            Ok(Some(waihu_cmpp::DriverEvent::Session(waihu_cmpp::Event::ConnectFailed {
                status,
                ..
            }))) => anyhow::bail!("CMPP gateway refused the CONNECT (status {status})"),
            Ok(Some(_)) => {}
            _ => anyhow::bail!("no CMPP CONNECT within {limit:?}"),
        }
    }
    let mut progress = Progress::new(format!("{label}, waihu-cmpp {version}, window {window}"), n);
    let parts = waihu_cmpp::text::plan(text).part_count();
    let t0 = Instant::now();
    let submitter = client.clone();
    let text = text.to_string();
    let feed = tokio::spawn(async move {
        for i in 0..n {
            let sms = waihu_cmpp::OutgoingSms {
                to: format!("+86138{i:08}"),
                text: text.clone(),
            };
            if submitter.submit(sms).await.is_err() {
                break;
            }
        }
    });
    let (mut ok, mut failed) = (0, 0);
    while ok + failed < n {
        match tokio::time::timeout(limit, events.recv()).await {
            Ok(Some(waihu_cmpp::DriverEvent::Session(waihu_cmpp::Event::Submitted { .. }))) => {
                ok += 1;
                progress.tick(ok + failed);
            }
            Ok(Some(waihu_cmpp::DriverEvent::Session(waihu_cmpp::Event::SubmitFailed {
                failure,
                ..
            }))) => {
                failed += 1;
                tracing::warn!(?failure, "CMPP submit failed");
            }
            Ok(Some(_)) => {}
            _ => anyhow::bail!("CMPP stalled after {ok} answers"),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let _ = feed.await;
    client.shutdown().await;
    anyhow::ensure!(failed == 0, "{failed} of {n} CMPP submits failed");
    let seen = gateway.submits().len();
    anyhow::ensure!(
        seen == n * parts,
        "the gateway saw {seen} SUBMITs for {n} messages of {parts} parts"
    );
    Ok(seconds)
}

fn row(
    text: &'static str,
    client: &'static str,
    window: usize,
    messages: usize,
    pdus: usize,
    seconds: f64,
) -> Row {
    Row {
        text,
        client,
        window,
        messages,
        pdus: messages * pdus,
        seconds,
        messages_per_s: messages as f64 / seconds,
        pdus_per_s: (messages * pdus) as f64 / seconds,
    }
}

/// Progress on stderr about once a second, so a long run shows it is moving.
struct Progress {
    label: String,
    n: usize,
    last: Instant,
}

impl Progress {
    fn new(label: String, n: usize) -> Progress {
        eprintln!("{label}: {n} messages…");
        Progress {
            label,
            n,
            last: Instant::now(),
        }
    }

    fn tick(&mut self, done: usize) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            eprintln!("  {}: {done}/{}", self.label, self.n);
        }
    }
}

/// Starts Kannel in front of `smsc`, sends `n` copies of `text` through `sendsms` with
/// `concurrency` requests in flight, and waits until the SMSC has logged all `n × pdus`
/// submit_sm. Seconds from the first request to the last submit_sm seen.
async fn kannel_run(
    smsc: &PeerSmsc,
    window: usize,
    concurrency: usize,
    n: usize,
    text: &str,
    pdus: usize,
    label: &str,
) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let cfg = kannel::Config {
        smsc_port: smsc.port,
        window: window as u32,
        ..kannel::Config::default()
    };
    let k = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || Kannel::start(&dir, &cfg)
    })
    .await?
    .context("starting Kannel (bearerbox + smsbox)")?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = k.sendsms_base();
    let next = Arc::new(AtomicUsize::new(0));
    let mut progress = Progress::new(format!("{label}, Kannel sendsms, window {window}"), n);
    let t0 = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (http, base, next, text) = (http.clone(), base.clone(), next.clone(), text.to_string());
        senders.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), anyhow::Error>(());
                }
                let path = kannel::sendsms_path("10690000", &format!("+86138{i:08}"), &text, None);
                let res = http.get(format!("{base}{path}")).send().await?;
                let status = res.status();
                let body = res.text().await?;
                anyhow::ensure!(
                    status.is_success() && body.contains("Accepted"),
                    "Kannel refused message {i}: {status} {body}"
                );
            }
        }));
    }
    let want = n * pdus;
    let limit = Duration::from_secs(120);
    let mut last_seen = (0, Instant::now());
    loop {
        let seen = smsc.count("SUBMIT ");
        if seen >= want {
            break;
        }
        if seen != last_seen.0 {
            last_seen = (seen, Instant::now());
        } else if last_seen.1.elapsed() > limit {
            anyhow::bail!(
                "Kannel stalled: the SMSC saw {seen} of {want} submit_sm (logs in {})",
                k.dir.display()
            );
        }
        progress.tick(seen / pdus.max(1));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let seconds = t0.elapsed().as_secs_f64();
    for s in senders {
        s.await??;
    }
    drop(k);
    Ok(seconds)
}

/// Binds, submits `n` copies of `text` and waits for every answer. Seconds from the first
/// submit to the last answer.
async fn one_run(
    smsc: &PeerSmsc,
    window: usize,
    n: usize,
    text: &str,
    label: &str,
) -> anyhow::Result<f64> {
    let cfg = ClientConfig::new(
        smsc.addr(),
        Config {
            system_id: "bench".into(),
            window,
            request_receipts: false,
            ..Config::default()
        },
    );
    let (client, mut events) = waihu_smpp::spawn(cfg);
    let limit = Duration::from_secs(120);
    loop {
        match tokio::time::timeout(limit, events.recv()).await {
            Ok(Some(DriverEvent::Session(Event::Bound { .. }))) => break,
            Ok(Some(DriverEvent::ConnectFailed { reason })) => anyhow::bail!("SMSC: {reason}"),
            Ok(Some(_)) => {}
            _ => anyhow::bail!("no bind within {limit:?}"),
        }
    }
    let mut progress = Progress::new(format!("{label}, waihu-smpp, window {window}"), n);
    let t0 = Instant::now();
    let submitter = client.clone();
    let text = text.to_string();
    let feed = tokio::spawn(async move {
        for i in 0..n {
            let sms = OutgoingSms {
                from: "10690000".into(),
                to: format!("+86138{:08}", i),
                text: text.clone(),
            };
            if submitter.submit(sms).await.is_err() {
                break;
            }
        }
    });
    let (mut ok, mut failed) = (0, 0);
    while ok + failed < n {
        match tokio::time::timeout(limit, events.recv()).await {
            Ok(Some(DriverEvent::Session(Event::Submitted { .. }))) => {
                ok += 1;
                progress.tick(ok + failed);
            }
            Ok(Some(DriverEvent::Session(Event::SubmitFailed { failure, .. }))) => {
                failed += 1;
                tracing::warn!(?failure, "submit failed");
            }
            Ok(Some(_)) => {}
            _ => anyhow::bail!("stalled after {ok} answers"),
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    let _ = feed.await;
    client.shutdown().await;
    if failed > 0 {
        anyhow::bail!("{failed} of {n} submits failed");
    }
    Ok(seconds)
}

#[cfg(test)]
mod tests {
    /// A short run of the CMPP part (what `waihu bench sms --cmpp-only` measures): both
    /// versions, both texts, every message answered and seen once per part by the gateway.
    #[test]
    fn cmpp_rows_run_end_to_end() {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let english = "Your coupon is ready.".to_string();
        let chinese = "您好".repeat(40);
        let rows = rt
            .block_on(super::cmpp_rows(
                &[("en", &english, 1), ("zh", &chinese, 2)],
                4,
                50,
            ))
            .unwrap();
        assert_eq!(rows.len(), 6);
        assert_eq!(rows[3].pdus, 100, "80 Chinese characters take 2 parts");
        assert!(rows.iter().all(|r| r.messages_per_s > 0.0));
    }
}
