//! `waihu bench soak`: many concurrent calls with two-way G.711 audio kept up for a long
//! time, each call replaced by a new one as it ends (setup and teardown all along, not one
//! long call), while resident memory, open file descriptors, live tasks and packet loss are
//! sampled. After the warm-up, a least-squares slope per minute of each says whether anything
//! leaks; the first and last sampling windows are printed side by side.
//!
//! Both sides are in this process (our UAC calling our UAS on loopback), so the figures are
//! the whole call path's. Runs for hours on demand (`--minutes 240`); CI runs a short smoke
//! (`crates/bench/tests/soak.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use waihu_engine::call::{self, CallOptions, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_testkit::signal::melody;

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Calls up at once.
    #[arg(long, default_value_t = 1000)]
    pub calls: usize,
    /// How long to keep them up.
    #[arg(long, default_value_t = 10.0)]
    pub minutes: f64,
    /// Length of each call (a new one replaces it when it ends).
    #[arg(long, default_value_t = 60)]
    pub call_seconds: u64,
    /// Seconds between samples.
    #[arg(long, default_value_t = 10)]
    pub sample_seconds: u64,
    /// Print one JSON object per sample and the summary.
    #[arg(long)]
    pub json: bool,
}

/// One sample of the process.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Sample {
    pub t_s: f64,
    pub rss_mb: f64,
    pub fds: usize,
    pub tasks: usize,
    pub calls_up: u64,
    pub calls_done: u64,
    /// Packets lost / late in calls that ended since the previous sample.
    pub lost: u64,
    pub late: u64,
    pub received: u64,
}

/// The run: samples, and the slopes after the warm-up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub samples: Vec<Sample>,
    pub calls_done: u64,
    pub calls_failed: u64,
    pub lost: u64,
    pub late: u64,
    pub received: u64,
    /// Per minute, least squares over the samples after the warm-up.
    pub rss_mb_per_min: f64,
    pub fds_per_min: f64,
    pub tasks_per_min: f64,
    pub lost_per_min_trend: f64,
    pub warmup_s: f64,
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// Least-squares slope of `y` against `x`.
pub fn slope(xy: &[(f64, f64)]) -> f64 {
    let n = xy.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (
        xy.iter().map(|p| p.0).sum::<f64>() / n,
        xy.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        return 0.0;
    }
    xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum::<f64>() / sxx
}

#[derive(Default)]
struct Counters {
    up: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
    lost: AtomicU64,
    late: AtomicU64,
    received: AtomicU64,
}

/// Runs the soak and returns its samples and slopes; `progress` sees every sample.
pub fn measure(a: &Args, progress: &mut dyn FnMut(&Sample, f64)) -> anyhow::Result<Report> {
    let rt = crate::runtime()?;
    rt.block_on(async {
        let uas = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "soak", None).await?);
        let uac = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "caller", None).await?);
        let call_len = Duration::from_secs(a.call_seconds.max(1));
        let (tx, mut reports) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(call::answer_loop(
            uas.clone(),
            Duration::ZERO,
            MediaOptions {
                play: Some(melody(2.0, 11).into()),
                loop_play: true,
                max_duration: call_len + Duration::from_secs(30),
                ..MediaOptions::default()
            },
            tx,
        ));
        // The callee's reports: drained so they do not pile up.
        tokio::spawn(async move { while reports.recv().await.is_some() {} });
        let tone: Arc<[i16]> = melody(call_len.as_secs_f64(), 7).into();
        let c = Arc::new(Counters::default());
        let t0 = Instant::now();
        let end = t0 + Duration::from_secs_f64(a.minutes.max(0.05) * 60.0);
        // Keep `calls` up: each worker places calls back to back, its first one staggered
        // over one call length so the endings (and new setups) spread out.
        let mut workers = Vec::new();
        for i in 0..a.calls.max(1) {
            let (uac, uas_addr, tone, c) = (uac.clone(), uas.local_addr(), tone.clone(), c.clone());
            let stagger = call_len.mul_f64(i as f64 / a.calls.max(1) as f64);
            workers.push(tokio::spawn(async move {
                tokio::time::sleep(stagger).await;
                while Instant::now() < end {
                    let mut o = CallOptions::new(format!("sip:soak@{uas_addr}"));
                    o.media.play = Some(tone.clone());
                    o.media.hangup_after_play = true;
                    c.up.fetch_add(1, Ordering::Relaxed);
                    let r = call::place_call(&uac, o, &mut |_| {}).await;
                    c.up.fetch_sub(1, Ordering::Relaxed);
                    c.done.fetch_add(1, Ordering::Relaxed);
                    match r {
                        Ok(r) if r.outcome == waihu_core::CallOutcome::Answered => {
                            c.lost.fetch_add(r.rtp.lost, Ordering::Relaxed);
                            c.late.fetch_add(r.rtp.late, Ordering::Relaxed);
                            c.received
                                .fetch_add(r.rtp.packets_received, Ordering::Relaxed);
                        }
                        _ => {
                            c.failed.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                    }
                }
            }));
        }
        let every = Duration::from_secs(a.sample_seconds.max(1));
        let mut samples = Vec::new();
        let (mut lost0, mut late0, mut rx0) = (0, 0, 0);
        let handle = tokio::runtime::Handle::current();
        let mut next = t0 + every;
        while next <= end + every / 2 {
            tokio::time::sleep_until(next.into()).await;
            next += every;
            let (lost, late, rx) = (
                c.lost.load(Ordering::Relaxed),
                c.late.load(Ordering::Relaxed),
                c.received.load(Ordering::Relaxed),
            );
            let s = Sample {
                t_s: t0.elapsed().as_secs_f64(),
                rss_mb: crate::rss_mb(),
                fds: fds(),
                tasks: handle.metrics().num_alive_tasks(),
                calls_up: c.up.load(Ordering::Relaxed),
                calls_done: c.done.load(Ordering::Relaxed),
                lost: lost - lost0,
                late: late - late0,
                received: rx - rx0,
            };
            (lost0, late0, rx0) = (lost, late, rx);
            let eta = end.saturating_duration_since(Instant::now()).as_secs_f64();
            progress(&s, eta);
            samples.push(s);
        }
        for w in workers {
            let _ = w.await;
        }
        // Warm-up: the first call length (every worker has started and the first calls ended).
        let warmup = call_len.as_secs_f64() + every.as_secs_f64();
        let after: Vec<&Sample> = samples.iter().filter(|s| s.t_s >= warmup).collect();
        let per_min = |f: &dyn Fn(&Sample) -> f64| {
            slope(
                &after
                    .iter()
                    .map(|s| (s.t_s / 60.0, f(s)))
                    .collect::<Vec<_>>(),
            )
        };
        Ok(Report {
            calls_done: c.done.load(Ordering::Relaxed),
            calls_failed: c.failed.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            late: c.late.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            rss_mb_per_min: per_min(&|s| s.rss_mb),
            fds_per_min: per_min(&|s| s.fds as f64),
            tasks_per_min: per_min(&|s| s.tasks as f64),
            lost_per_min_trend: per_min(&|s| s.lost as f64),
            warmup_s: warmup,
            samples,
        })
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let json = a.json;
    if !json {
        println!(
            "waihu bench soak — {} calls up at once, {} s each, replaced as they end, for {} min / 长时间压力测试",
            a.calls, a.call_seconds, a.minutes
        );
        println!(
            "{:>7} {:>8} {:>6} {:>7} {:>8} {:>10} {:>6} {:>6} {:>9} {:>7}",
            "t s",
            "RSS MB",
            "fds",
            "tasks",
            "calls up",
            "calls done",
            "lost",
            "late",
            "received",
            "ETA s"
        );
    }
    let r = measure(&a, &mut |s, eta| {
        if json {
            let _ = crate::print_json(s);
        } else {
            println!(
                "{:>7.0} {:>8.1} {:>6} {:>7} {:>8} {:>10} {:>6} {:>6} {:>9} {:>7.0}",
                s.t_s,
                s.rss_mb,
                s.fds,
                s.tasks,
                s.calls_up,
                s.calls_done,
                s.lost,
                s.late,
                s.received,
                eta
            );
        }
    })?;
    if json {
        let mut r = r;
        r.samples.clear();
        return crate::print_json(&r);
    }
    let after: Vec<&Sample> = r.samples.iter().filter(|s| s.t_s >= r.warmup_s).collect();
    if let (Some(first), Some(last)) = (after.first(), after.last()) {
        println!(
            "after the {:.0} s warm-up — first window vs last: RSS {:.1} → {:.1} MB, fds {} → {}, tasks {} → {}",
            r.warmup_s, first.rss_mb, last.rss_mb, first.fds, last.fds, first.tasks, last.tasks
        );
    }
    println!(
        "slopes per minute after the warm-up: RSS {:+.3} MB, fds {:+.2}, tasks {:+.2}, lost packets {:+.2}",
        r.rss_mb_per_min, r.fds_per_min, r.tasks_per_min, r.lost_per_min_trend
    );
    println!(
        "calls: {} done, {} failed; packets: {} received, {} lost ({:.4} %), {} late",
        r.calls_done,
        r.calls_failed,
        r.received,
        r.lost,
        100.0 * r.lost as f64 / r.received.max(1) as f64,
        r.late
    );
    Ok(())
}
