//! `waihu bench sms`: SMPP submit throughput of the `waihu-smpp` client against a real
//! SMSC (Net::SMPP, `libnet-smpp-perl`) on 127.0.0.1, with the requested window beside a
//! window of 1 (stop-and-wait: one submit_sm, wait for its resp) in the same run, for
//! one-segment English and two-segment Chinese texts.
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use waihu_smpp::driver::DriverEvent;
use waihu_smpp::peer::{PeerOptions, PeerSmsc};
use waihu_smpp::{ClientConfig, Config, Event, OutgoingSms};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 5000)]
    pub messages: usize,
    /// submit_sm requests in flight at once.
    #[arg(long, default_value_t = 10)]
    pub window: usize,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    text: &'static str,
    window: usize,
    messages: usize,
    pdus: usize,
    seconds: f64,
    messages_per_s: f64,
    pdus_per_s: f64,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if !PeerSmsc::available() {
        anyhow::bail!(
            "perl with Net::SMPP is missing: install libnet-smpp-perl (scripts/setup.sh)"
        );
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
        let mut rows = Vec::new();
        for (label, text, pdus) in [
            ("en, 1 segment", &english, 1),
            ("zh, 2 segments", &chinese, segs),
        ] {
            for window in [1, a.window.max(1)] {
                let smsc = PeerSmsc::start(&PeerOptions::default()).context("starting the SMSC")?;
                let seconds = one_run(&smsc, window, a.messages, text).await?;
                rows.push(Row {
                    text: label,
                    window,
                    messages: a.messages,
                    pdus: a.messages * pdus,
                    seconds,
                    messages_per_s: a.messages as f64 / seconds,
                    pdus_per_s: (a.messages * pdus) as f64 / seconds,
                });
            }
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&rows)?);
        } else {
            println!("SMPP submit throughput, waihu-smpp → Net::SMPP SMSC (perl) on 127.0.0.1");
            println!(
                "{:<16} {:>6} {:>9} {:>8} {:>10} {:>10}",
                "text", "window", "messages", "seconds", "msg/s", "PDU/s"
            );
            for r in &rows {
                println!(
                    "{:<16} {:>6} {:>9} {:>8.2} {:>10.0} {:>10.0}",
                    r.text, r.window, r.messages, r.seconds, r.messages_per_s, r.pdus_per_s
                );
            }
            for pair in rows.chunks(2) {
                if let [base, w] = pair {
                    println!(
                        "{}: window {} is {:.1}x stop-and-wait (window 1)",
                        w.text,
                        w.window,
                        w.messages_per_s / base.messages_per_s
                    );
                }
            }
            println!(
                "(the SMSC is one single-threaded perl process per bind; it bounds these figures)"
            );
        }
        Ok(())
    })
}

/// Binds, submits `n` copies of `text` and waits for every answer. Seconds from the first
/// submit to the last answer.
async fn one_run(smsc: &PeerSmsc, window: usize, n: usize, text: &str) -> anyhow::Result<f64> {
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
            Ok(Some(DriverEvent::Session(Event::Submitted { .. }))) => ok += 1,
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
