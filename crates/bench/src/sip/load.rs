//! Load generation for `waihu bench sip`: many concurrent outgoing calls with two-way
//! G.711 media, and a call-setup-rate run. [`super::run`] starts the callee side (our UAS
//! in a child process, or SIPp) and prints the figures side by side.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use waihu_core::CallOutcome;

use waihu_engine::call::{place_call, CallOptions, CallReport};
use waihu_engine::sip::SipEndpoint;
use waihu_engine::EngineError;

use crate::process_cpu_seconds;

/// What a load run measured on our (calling) side.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadResult {
    pub calls: usize,
    pub answered: usize,
    pub failed: usize,
    pub wall_s: f64,
    /// Achieved setup rate (see `run_load`).
    pub setup_rate_cps: f64,
    pub setup_ms_p50: f64,
    pub setup_ms_p99: f64,
    pub packets_sent: u64,
    pub packets_received: u64,
    pub lost: u64,
    pub late: u64,
    pub max_jitter_ms: f64,
    /// Our process's CPU seconds during the run.
    pub cpu_s: f64,
    pub outcomes: Vec<(String, usize)>,
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Places `calls` calls to `target`, started at `rate` per second, each held for `hold`
/// while playing `prompt` (looped) both ways. Returns when every call has ended.
pub async fn run_load(
    ep: Arc<SipEndpoint>,
    target: String,
    calls: usize,
    rate: f64,
    hold: Duration,
    prompt: Option<Arc<[i16]>>,
) -> Result<LoadResult, EngineError> {
    let cpu0 = process_cpu_seconds("self").unwrap_or(0.0);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(calls);
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.1));
    for i in 0..calls {
        // Pace the starts against the clock (not by sleeping a fixed gap after each spawn).
        let due = t0 + gap.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let ep = ep.clone();
        let mut o = CallOptions::new(target.clone());
        o.ring_timeout = Duration::from_secs(20);
        o.media.play = prompt.clone();
        o.media.loop_play = true;
        o.media.max_duration = hold;
        o.media.no_rtp_timeout = hold + Duration::from_secs(5);
        o.media.dtmf = None;
        tasks.push(tokio::spawn(async move {
            place_call(&ep, o, &mut |_| {}).await
        }));
    }
    let ramp = t0.elapsed();
    let mut reports: Vec<CallReport> = Vec::with_capacity(calls);
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => reports.push(r),
            _ => failed += 1,
        }
    }
    let wall = t0.elapsed();
    let cpu = process_cpu_seconds("self").unwrap_or(0.0) - cpu0;
    let mut setup: Vec<f64> = reports.iter().filter_map(|r| r.setup_ms).collect();
    setup.sort_by(f64::total_cmp);
    let answered = reports
        .iter()
        .filter(|r| r.outcome == CallOutcome::Answered)
        .count();
    let mut outcomes: Vec<(String, usize)> = Vec::new();
    for r in &reports {
        let k = format!(
            "{:?}/{}",
            r.outcome,
            r.sip_status.map_or("-".into(), |s| s.to_string())
        );
        match outcomes.iter_mut().find(|(n, _)| *n == k) {
            Some(e) => e.1 += 1,
            None => outcomes.push((k, 1)),
        }
    }
    Ok(LoadResult {
        calls,
        answered,
        failed: failed + reports.len() - answered,
        wall_s: wall.as_secs_f64(),
        // Held calls: answers per second of ramp. Zero-hold calls: whole calls (INVITE → 200 →
        // ACK → BYE → 200) per second of wall time, i.e. the sustained rate.
        setup_rate_cps: answered as f64
            / if hold.is_zero() { wall } else { ramp }
                .as_secs_f64()
                .max(1e-3),
        setup_ms_p50: pct(&setup, 0.5),
        setup_ms_p99: pct(&setup, 0.99),
        packets_sent: reports.iter().map(|r| r.rtp.packets_sent).sum(),
        packets_received: reports.iter().map(|r| r.rtp.packets_received).sum(),
        lost: reports.iter().map(|r| r.rtp.lost).sum(),
        late: reports.iter().map(|r| r.rtp.late).sum(),
        max_jitter_ms: reports.iter().map(|r| r.rtp.jitter_ms).fold(0.0, f64::max),
        cpu_s: cpu,
        outcomes,
    })
}
