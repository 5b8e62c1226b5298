//! `waihu bench flood`: live calls through a SIP flood, with the flood guard and without it,
//! beside the same calls with no flood, same run. Each row places `--calls` calls of 8 s of
//! two-way G.711 audio to an endpoint while an INVITE flood, an OPTIONS flood and garbage
//! (each from its own loopback address, `--rate` datagrams a second each) and held-open TCP
//! connections hit its SIP port. Reported: what the floods sent and got back, the calls'
//! loss, late packets and jitter, the target's peak calls and transactions, its resident
//! memory growth and its CPU (the generator threads' CPU taken out).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use waihu_engine::call::{self, CallOptions, CallReport, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_engine::waihu_sip::GuardConfig;
use waihu_testkit::flood::{Flood, Kind, Source, THREAD_NAME};
use waihu_testkit::signal::melody;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Datagrams a second from each UDP flood source (INVITE, OPTIONS, garbage).
    #[arg(long, default_value_t = 20_000)]
    pub rate: u32,
    /// Live calls placed during each flood.
    #[arg(long, default_value_t = 4)]
    pub calls: usize,
    /// Seconds of audio each way in every live call.
    #[arg(long, default_value_t = 8)]
    pub call_seconds: u64,
    /// Print one JSON object per row.
    #[arg(long)]
    pub json: bool,
}

/// One run: with no flood, or a flood with the guard on or off.
#[derive(Debug, serde::Serialize)]
pub struct Row {
    pub run: &'static str,
    pub flood_per_s: f64,
    pub answered_per_flood_datagram: f64,
    /// Calls answered with no packet lost (caller side).
    pub calls_ok: usize,
    pub calls: usize,
    pub lost: u64,
    pub late: u64,
    pub max_jitter_ms: f64,
    pub peak_calls: usize,
    pub peak_transactions: usize,
    pub rss_growth_mb: f64,
    pub target_cpu_s: f64,
    pub flood_reports: u64,
}

/// CPU seconds of this process's threads, split into the flood generator's and the rest.
fn thread_cpu() -> (f64, f64) {
    let (mut flood, mut rest) = (0.0, 0.0);
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return (0.0, 0.0);
    };
    for t in dir.flatten() {
        let p = t.path();
        let name = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        let Ok(stat) = std::fs::read_to_string(p.join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        let s = (ticks(11) + ticks(12)) / 100.0;
        if name.trim() == THREAD_NAME {
            flood += s;
        } else {
            rest += s;
        }
    }
    (flood, rest)
}

async fn one(
    run: &'static str,
    guard: Option<GuardConfig>,
    flood: bool,
    a: &Args,
) -> anyhow::Result<Row> {
    let uas =
        Arc::new(SipEndpoint::bind_with("127.0.0.1:0".parse()?, "callee", None, guard).await?);
    let mut incoming = uas
        .incoming()
        .ok_or_else(|| anyhow::anyhow!("no incoming stream"))?;
    let n = a.calls.max(1);
    let callee_audio: Arc<[i16]> = melody(a.call_seconds as f64, 3).into();
    let served = {
        let uas = uas.clone();
        let opts = MediaOptions {
            play: Some(callee_audio),
            max_duration: Duration::from_secs(30),
            ..MediaOptions::default()
        };
        tokio::spawn(async move {
            let mut tasks = Vec::new();
            while let Some(inc) = incoming.recv().await {
                if !inc.from.contains("sip:caller@") {
                    let _ = uas.reject(inc.call, 603);
                    continue;
                }
                let (uas, opts) = (uas.clone(), opts.clone());
                tasks.push(tokio::spawn(async move {
                    call::serve_incoming(&uas, inc, Duration::from_millis(100), &opts, &mut |_| {})
                        .await
                }));
                if tasks.len() == n {
                    break;
                }
            }
            // Keep turning the flood away while the calls run.
            let rejecter = tokio::spawn({
                let uas = uas.clone();
                async move {
                    while let Some(inc) = incoming.recv().await {
                        let _ = uas.reject(inc.call, 603);
                    }
                }
            });
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.ok().and_then(|r| r.ok()));
            }
            rejecter.abort();
            out
        })
    };
    let rss0 = crate::rss_mb();
    let (_, cpu0) = thread_cpu();
    let ip = |last: u8| IpAddr::from([127, 0, 0, last]);
    let gen = if flood {
        let sources = [
            Source {
                kind: Kind::Invite,
                ip: ip(2),
                rate: a.rate,
            },
            Source {
                kind: Kind::Options,
                ip: ip(3),
                rate: a.rate,
            },
            Source {
                kind: Kind::Garbage,
                ip: ip(4),
                rate: a.rate,
            },
            Source {
                kind: Kind::TcpHold,
                ip: ip(5),
                rate: 100,
            },
        ];
        let f = Flood::start(uas.local_addr(), &sources)?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        Some(f)
    } else {
        None
    };
    let uac = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "caller", None).await?);
    let caller_audio: Arc<[i16]> = melody(a.call_seconds as f64, 5).into();
    let mut calls = Vec::new();
    for _ in 0..n {
        let uac = uac.clone();
        let mut opts = CallOptions::new(format!("sip:callee@{}", uas.local_addr()));
        opts.media.play = Some(caller_audio.clone());
        opts.media.hangup_after_play = true;
        calls.push(tokio::spawn(async move {
            call::place_call(&uac, opts, &mut |_| {}).await
        }));
    }
    let (mut peak_calls, mut peak_tx) = (0, 0);
    let mut reports: Vec<Option<CallReport>> = Vec::new();
    let t0 = Instant::now();
    for c in calls {
        while !c.is_finished() && t0.elapsed() < Duration::from_secs(60) {
            let s = uas.stats();
            peak_calls = peak_calls.max(s.calls);
            peak_tx = peak_tx.max(s.transactions);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        reports.push(c.await.ok().and_then(|r| r.ok()));
    }
    let outcomes = gen.map(Flood::stop).unwrap_or_default();
    let theirs = tokio::time::timeout(Duration::from_secs(15), served)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    let (_, cpu1) = thread_cpu();
    let udp: Vec<_> = outcomes
        .iter()
        .filter(|(s, _)| s.kind != Kind::TcpHold)
        .collect();
    let sent: u64 = udp.iter().map(|(_, o)| o.sent).sum();
    let answered: u64 = udp.iter().map(|(_, o)| o.answered()).sum();
    let secs = udp.first().map_or(1.0, |(_, o)| o.seconds);
    let all: Vec<&CallReport> = reports.iter().chain(theirs.iter()).flatten().collect();
    let ok = reports
        .iter()
        .flatten()
        .filter(|r| r.outcome == waihu_core::CallOutcome::Answered && r.rtp.lost == 0)
        .count();
    Ok(Row {
        run,
        flood_per_s: sent as f64 / secs.max(1e-9),
        answered_per_flood_datagram: if sent == 0 {
            0.0
        } else {
            answered as f64 / sent as f64
        },
        calls_ok: ok,
        calls: n,
        lost: all.iter().map(|r| r.rtp.lost).sum(),
        late: all.iter().map(|r| r.rtp.late).sum(),
        max_jitter_ms: all.iter().map(|r| r.rtp.jitter_ms).fold(0.0, f64::max),
        peak_calls,
        peak_transactions: peak_tx,
        rss_growth_mb: crate::rss_mb() - rss0,
        target_cpu_s: cpu1 - cpu0,
        flood_reports: uas.stats().flood_reports,
    })
}

/// The three runs, in order: no flood, guard on, guard off.
pub fn measure(a: &Args) -> anyhow::Result<Vec<Row>> {
    let rt = crate::runtime()?;
    rt.block_on(async {
        let mut rows = Vec::new();
        for (name, guard, flood) in [
            ("no flood (baseline)", Some(GuardConfig::default()), false),
            ("flood, guard on", Some(GuardConfig::default()), true),
            ("flood, guard off", None, true),
        ] {
            eprintln!("bench flood: {name} …");
            rows.push(one(name, guard, flood, a).await?);
        }
        anyhow::Ok(rows)
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let rows = measure(&a)?;
    if a.json {
        for r in &rows {
            crate::print_json(r)?;
        }
        return Ok(());
    }
    println!(
        "waihu bench flood — {} live calls of {} s through INVITE + OPTIONS + garbage floods at {}/s each and held TCP connections / 洪水攻击下的通话",
        a.calls, a.call_seconds, a.rate
    );
    println!(
        "{:<22} {:>10} {:>9} {:>8} {:>6} {:>6} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "run",
        "flood/s",
        "answered",
        "calls ok",
        "lost",
        "late",
        "jitter ms",
        "peak call",
        "peak tx",
        "RSS +MB",
        "CPU s",
        "reports"
    );
    for r in &rows {
        println!(
            "{:<22} {:>10.0} {:>8.3}% {:>5}/{:<2} {:>6} {:>6} {:>9.2} {:>9} {:>9} {:>9.1} {:>8.2} {:>8}",
            r.run,
            r.flood_per_s,
            r.answered_per_flood_datagram * 100.0,
            r.calls_ok,
            r.calls,
            r.lost,
            r.late,
            r.max_jitter_ms,
            r.peak_calls,
            r.peak_transactions,
            r.rss_growth_mb,
            r.target_cpu_s,
            r.flood_reports
        );
    }
    println!("answered: responses per flood datagram. CPU: this process minus the generator threads (the target, the callers and their media).");
    Ok(())
}
