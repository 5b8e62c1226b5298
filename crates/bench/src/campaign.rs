//! The campaign planner and simulator, timed: `waihu campaign bench` (the planner's
//! cost per decision beside a full scan) and the wall and planner time of
//! `waihu campaign simulate`. The simulator itself reads no clock: it reports the
//! planner calls to a [`PlannerTimer`], and the time is measured here.
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::TimeZone;
use waihu_campaign::sim::PlannerTimer;
use waihu_campaign::{Campaign, ContactInput, Planner, Report, SimConfig, SimReport};
use waihu_core::{CallOutcome, CustomerId, Event};

/// Wall-clock time spent between [`PlannerTimer::start`] and [`PlannerTimer::stop`].
#[derive(Debug, Default)]
pub struct Stopwatch {
    started: Option<Instant>,
    total: Duration,
}

impl Stopwatch {
    /// The time measured so far.
    pub fn total(&self) -> Duration {
        self.total
    }
}

impl PlannerTimer for Stopwatch {
    fn start(&mut self) {
        self.started = Some(Instant::now());
    }

    fn stop(&mut self) {
        if let Some(t) = self.started.take() {
            self.total += t.elapsed();
        }
    }
}

/// [`waihu_campaign::simulate`] with its `wall_secs` (the whole run, `sink` included)
/// and `planner_secs` (inside the planner's calls) measured.
pub fn simulate_timed(
    campaign: &Campaign,
    cfg: &SimConfig,
    sink: &mut dyn FnMut(&Event),
) -> SimReport {
    let wall = Instant::now();
    let mut planner = Stopwatch::default();
    let mut report = waihu_campaign::sim::simulate_with(campaign, cfg, sink, &mut planner);
    report.planner_secs = planner.total().as_secs_f64();
    report.wall_secs = wall.elapsed().as_secs_f64();
    report
}

/// `waihu campaign bench`: the planner's cost per decision with `pending` contacts
/// waiting, beside a full scan per decision.
pub fn planner(pending: usize, decisions: usize, json: bool) -> anyhow::Result<()> {
    let campaign = Campaign::from_yaml(waihu_campaign::EXAMPLE_CAMPAIGN)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut c = campaign.clone();
    c.active = None;
    c.per_number_per_day = None;
    c.per_number_per_week = None;
    c.caller_ids.clear();
    for t in c.trunks.iter_mut() {
        t.channels = 1_000_000;
        t.cps = 1e9;
    }
    let segs: Vec<String> = c.segments.iter().map(|s| s.name.clone()).collect();
    let mut planner = Planner::new(c);
    planner.reserve(pending);
    let t0 = Instant::now();
    for i in 0..pending {
        planner
            .add_contact(ContactInput {
                customer: CustomerId(i as i64 + 1),
                phone: format!("+86139{:08}", i),
                tz: waihu_campaign::chrono_tz::Asia::Shanghai,
                segment: segs[i % segs.len()].clone(),
                region: None,
                has_app: false,
                channel_pref: waihu_campaign::ChannelPref::Any,
                consent: true,
                recency_days: Some((i % 365) as u32),
                history: Vec::new(),
                features: Vec::new(),
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let load_s = t0.elapsed().as_secs_f64();
    // Tuesday 10:00 Shanghai: the window is open.
    let now = waihu_campaign::chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, 3, 10, 0, 0)
        .single()
        .context("bench time")?
        .with_timezone(&chrono::Utc);
    let batch = 50;
    let mut made = 0usize;
    let t1 = Instant::now();
    let mut tick = 0i64;
    while made < decisions {
        let at = now + chrono::Duration::milliseconds(tick * 100);
        tick += 1;
        let dials = planner.next_dials(at, batch);
        if dials.is_empty() {
            break;
        }
        for d in &dials {
            // Every third answers; the rest are retried later, so the pending set stays ~2M.
            let o = if d.customer.0 % 3 == 0 {
                CallOutcome::Answered
            } else {
                CallOutcome::NoAnswer
            };
            planner.on_outcome(at, d.contact, Report::outcome(o));
        }
        made += dials.len();
    }
    let plan_s = t1.elapsed().as_secs_f64();
    let per_decision_us = plan_s / made.max(1) as f64 * 1e6;
    // Baseline: what a planner without queues pays — score every pending
    // contact and take the best, per decision.
    let scores: Vec<(f32, f32)> = (0..pending)
        .map(|i| ((i % 365) as f32, (i % 7) as f32 * 0.1))
        .collect();
    let rounds = 20;
    let t2 = Instant::now();
    let mut sink = 0usize;
    for r in 0..rounds {
        let hour = (r % 24) as f32;
        let mut best = (f32::MIN, 0usize);
        for (i, (rec, p)) in scores.iter().enumerate() {
            let s = (0.5 + 0.5 * (-rec / 90.0).exp()) * (p + hour * 0.01);
            if s > best.0 {
                best = (s, i);
            }
        }
        sink ^= best.1;
    }
    let scan_us = t2.elapsed().as_secs_f64() / rounds as f64 * 1e6;
    std::hint::black_box(sink);
    let pending_left = planner.pending();
    if json {
        crate::print_json(&serde_json::json!({
            "pending": pending, "pending_after": pending_left, "load_s": load_s, "decisions": made,
            "planner_us_per_decision": per_decision_us, "full_scan_us_per_decision": scan_us,
            "speedup": scan_us / per_decision_us, "peak_rss_mb": crate::peak_rss_mb(),
        }))
    } else {
        println!("调度性能 planner cost per decision, {pending} pending contacts");
        println!("  load {pending} contacts           {load_s:>10.2} s");
        println!("  planner (queues), {made} decisions  {per_decision_us:>10.2} µs/decision (incl. outcome)");
        println!("  baseline: full scan per decision  {scan_us:>10.0} µs/decision");
        println!(
            "  speedup                           {:>10.0}×",
            scan_us / per_decision_us
        );
        println!("  pending after                     {pending_left:>10}");
        println!(
            "  peak RSS                          {:>10.0} MB",
            crate::peak_rss_mb()
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use waihu_campaign::{simulate, Campaign, SimConfig, EXAMPLE_CAMPAIGN};

    /// The simulator reads no clock; the harness's timing fills in what it measured
    /// and changes nothing else.
    #[test]
    fn timing_is_the_harness_s_and_changes_no_figure() {
        let text = waihu_campaign::sim::scale_scenario(EXAMPLE_CAMPAIGN, 12).unwrap();
        let campaign = Campaign::from_yaml(&text).unwrap();
        let cfg = SimConfig {
            customers: 400,
            days: 1,
            ..SimConfig::default()
        };
        let plain = simulate(&campaign, &cfg, &mut |_| {});
        assert_eq!((plain.wall_secs, plain.planner_secs), (0.0, 0.0));
        let timed = super::simulate_timed(&campaign, &cfg, &mut |_| {});
        assert!(timed.planner_secs > 0.0, "{timed:?}");
        assert!(timed.wall_secs >= timed.planner_secs, "{timed:?}");
        assert_eq!(
            (
                timed.attempts,
                timed.connects,
                timed.events,
                timed.decisions
            ),
            (
                plain.attempts,
                plain.connects,
                plain.events,
                plain.decisions
            )
        );
    }
}
