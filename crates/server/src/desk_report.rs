//! The agent desk's report (issue 17, item 5), a pure function of stored
//! events: queue wait distribution, transfer abandon rate, agent occupancy,
//! talk time per agent and dispositions. No I/O, no clock (`until` is an input).
use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use waihu_core::{Event, EventKind};

/// Upper bounds (ms) of the queue wait histogram's buckets; the last is open.
pub const WAIT_BUCKETS_MS: [u64; 5] = [5_000, 15_000, 30_000, 60_000, u64::MAX];

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WaitDist {
    /// Settled waits (answered or abandoned).
    pub n: u64,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub max_ms: Option<u64>,
    /// Counts per bucket of [`WAIT_BUCKETS_MS`]: ≤5 s, ≤15 s, ≤30 s, ≤60 s, more.
    pub buckets: [u64; 5],
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueStats {
    pub queue: String,
    /// Calls handed to the queue (`transfer_requested`).
    pub requested: u64,
    /// Calls an agent answered.
    pub answered: u64,
    /// Calls that left the queue without an agent.
    pub abandoned: u64,
    /// abandoned ÷ (answered + abandoned); None before any settled.
    pub abandon_rate: Option<f64>,
    /// Abandons by reason (`timeout`, `all_paused`, `caller_hung_up`, ...).
    pub abandon_reasons: BTreeMap<String, u64>,
    /// Each call's wait until its first answer or its abandon.
    pub wait: WaitDist,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentStats {
    pub agent: String,
    /// Times the agent's phone rang for a caller.
    pub offered: u64,
    pub answered: u64,
    /// Agent answer → the call's end, summed over its calls that ended.
    pub talk_s: f64,
    /// Seconds signed in and not paused (from `agent_state` events).
    pub signed_in_s: f64,
    /// Of those, seconds ringing, on a call or in wrap-up.
    pub busy_s: f64,
    /// busy ÷ signed in; None without signed-in time.
    pub occupancy: Option<f64>,
    pub dispositions: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DeskReport {
    pub queues: Vec<QueueStats>,
    pub agents: Vec<AgentStats>,
    /// Disposition → count, all agents.
    pub dispositions: BTreeMap<String, u64>,
}

fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

fn dist(mut waits: Vec<u64>) -> WaitDist {
    waits.sort_unstable();
    let mut buckets = [0u64; 5];
    for &w in &waits {
        let i = WAIT_BUCKETS_MS.iter().position(|&b| w <= b).unwrap_or(4);
        buckets[i] += 1;
    }
    WaitDist {
        n: waits.len() as u64,
        p50_ms: percentile(&waits, 0.50),
        p95_ms: percentile(&waits, 0.95),
        max_ms: waits.last().copied(),
        buckets,
    }
}

fn secs(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds().max(0)) as f64 / 1000.0
}

/// The report over `events` (oldest first), counting an agent's last state
/// until `until` (the window's end, or now if earlier).
pub fn desk_report(events: &[Event], until: DateTime<Utc>) -> DeskReport {
    let mut queues: BTreeMap<String, QueueStats> = BTreeMap::new();
    let mut agents: BTreeMap<String, AgentStats> = BTreeMap::new();
    let mut dispositions = BTreeMap::new();
    // Per call: its queue wait once settled, and the agent answering it (since when).
    let mut settled: std::collections::HashSet<String> = Default::default();
    let mut waits: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut talking: HashMap<String, (String, DateTime<Utc>)> = HashMap::new();
    // Per agent: the current state and since when.
    let mut states: BTreeMap<String, (String, DateTime<Utc>)> = BTreeMap::new();
    fn entry<'a>(m: &'a mut BTreeMap<String, AgentStats>, id: &str) -> &'a mut AgentStats {
        m.entry(id.to_string()).or_insert_with(|| AgentStats {
            agent: id.to_string(),
            ..AgentStats::default()
        })
    }
    fn queue<'a>(m: &'a mut BTreeMap<String, QueueStats>, q: &str) -> &'a mut QueueStats {
        m.entry(q.to_string()).or_insert_with(|| QueueStats {
            queue: q.to_string(),
            ..QueueStats::default()
        })
    }
    fn account(a: &mut AgentStats, state: &str, from: DateTime<Utc>, to: DateTime<Utc>) {
        let s = secs(from, to);
        match state {
            "paused" | "signed_out" => {}
            "ringing" | "on_call" | "wrap_up" => {
                a.signed_in_s += s;
                a.busy_s += s;
            }
            _ => a.signed_in_s += s,
        }
    }
    for e in events {
        let call = e.call.as_ref().map(|c| c.0.clone()).unwrap_or_default();
        match &e.kind {
            EventKind::TransferRequested { queue: q } => queue(&mut queues, q).requested += 1,
            EventKind::TransferOffered { agent: a, .. } => entry(&mut agents, a).offered += 1,
            EventKind::TransferAnswered {
                queue: q,
                agent: a,
                wait_ms,
            } => {
                entry(&mut agents, a).answered += 1;
                if settled.insert(call.clone()) {
                    queue(&mut queues, q).answered += 1;
                    waits.entry(q.clone()).or_default().push(*wait_ms);
                }
                talking.insert(call, (a.clone(), e.at));
            }
            EventKind::TransferAbandoned {
                queue: q,
                reason,
                wait_ms,
            } if settled.insert(call.clone()) => {
                let s = queue(&mut queues, q);
                s.abandoned += 1;
                *s.abandon_reasons.entry(reason.clone()).or_default() += 1;
                waits.entry(q.clone()).or_default().push(*wait_ms);
            }
            EventKind::AttemptEnded { .. } => {
                if let Some((a, since)) = talking.remove(&call) {
                    entry(&mut agents, &a).talk_s += secs(since, e.at);
                }
            }
            EventKind::AgentState { agent: a, state } => {
                if let Some((prev, since)) = states.get(a) {
                    let (prev, since) = (prev.clone(), *since);
                    account(entry(&mut agents, a), &prev, since, e.at.min(until));
                } else {
                    entry(&mut agents, a);
                }
                states.insert(a.clone(), (state.clone(), e.at));
            }
            EventKind::Disposition {
                agent: a,
                disposition,
                ..
            } => {
                *entry(&mut agents, a)
                    .dispositions
                    .entry(disposition.clone())
                    .or_default() += 1;
                *dispositions.entry(disposition.clone()).or_default() += 1;
            }
            _ => {}
        }
    }
    for (a, (state, since)) in states {
        if since < until {
            account(entry(&mut agents, &a), &state, since, until);
        }
    }
    for a in agents.values_mut() {
        a.occupancy = (a.signed_in_s > 0.0).then(|| a.busy_s / a.signed_in_s);
    }
    for (q, w) in waits {
        queue(&mut queues, &q).wait = dist(w);
    }
    for q in queues.values_mut() {
        let settled = q.answered + q.abandoned;
        q.abandon_rate = (settled > 0).then(|| q.abandoned as f64 / settled as f64);
    }
    DeskReport {
        queues: queues.into_values().collect(),
        agents: agents.into_values().collect(),
        dispositions,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_core::{CallId, CallOutcome};

    fn at(s: u32) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
            + chrono::Duration::seconds(s as i64)
    }

    fn e(s: u32, call: Option<&str>, kind: EventKind) -> Event {
        Event {
            at: at(s),
            customer: None,
            campaign: None,
            call: call.map(|c| CallId(c.into())),
            kind,
        }
    }

    fn state(s: u32, agent: &str, st: &str) -> Event {
        e(
            s,
            None,
            EventKind::AgentState {
                agent: agent.into(),
                state: st.into(),
            },
        )
    }

    #[test]
    fn the_report_adds_up_a_constructed_log() {
        let q = || "after_sales".to_string();
        let req = |s, c: &str| e(s, Some(c), EventKind::TransferRequested { queue: q() });
        let off = |s, c: &str, a: &str, w| {
            e(
                s,
                Some(c),
                EventKind::TransferOffered {
                    queue: q(),
                    agent: a.into(),
                    wait_ms: w,
                },
            )
        };
        let ans = |s, c: &str, a: &str, w| {
            e(
                s,
                Some(c),
                EventKind::TransferAnswered {
                    queue: q(),
                    agent: a.into(),
                    wait_ms: w,
                },
            )
        };
        let ab = |s, c: &str, r: &str, w| {
            e(
                s,
                Some(c),
                EventKind::TransferAbandoned {
                    queue: q(),
                    reason: r.into(),
                    wait_ms: w,
                },
            )
        };
        let end = |s, c: &str| {
            e(
                s,
                Some(c),
                EventKind::AttemptEnded {
                    outcome: CallOutcome::Answered,
                    sip_status: Some(200),
                    duration_s: 0.0,
                },
            )
        };
        let dispo = |s, c: &str, a: &str, d: &str| {
            e(
                s,
                Some(c),
                EventKind::Disposition {
                    agent: a.into(),
                    disposition: d.into(),
                    note: None,
                },
            )
        };
        let log = vec![
            // li signs in at 0 s; wang at 0 s, paused 100..200 s.
            state(0, "li", "available"),
            state(0, "wang", "available"),
            // c1: li rings 10..12 s, talks 12..72 s (60 s), wrap-up 72..82 s.
            req(8, "c1"),
            off(10, "c1", "li", 2_000),
            state(10, "li", "ringing"),
            ans(12, "c1", "li", 4_000),
            state(12, "li", "on_call"),
            end(72, "c1"),
            state(72, "li", "wrap_up"),
            state(82, "li", "available"),
            dispo(80, "c1", "li", "resolved"),
            // c2: wang lets it ring out, li is busy... abandoned after 40 s (timeout).
            req(100, "c2"),
            state(100, "wang", "paused"),
            ab(140, "c2", "timeout", 40_000),
            // c3: the caller hangs up after 20 s.
            req(150, "c3"),
            ab(170, "c3", "caller_hung_up", 20_000),
            state(200, "wang", "available"),
            // c4: wang answers after 70 s, talks 30 s; the whisper restarts don't double-count.
            req(200, "c4"),
            off(268, "c4", "wang", 68_000),
            state(268, "wang", "ringing"),
            ans(270, "c4", "wang", 70_000),
            ans(275, "c4", "wang", 75_000),
            state(270, "wang", "on_call"),
            end(300, "c4"),
            state(300, "wang", "signed_out"),
            dispo(301, "c4", "wang", "resolved"),
            dispo(302, "c4", "wang", "callback"),
        ];
        let r = desk_report(&log, at(400));
        assert_eq!(r.queues.len(), 1);
        let qs = &r.queues[0];
        assert_eq!((qs.requested, qs.answered, qs.abandoned), (4, 2, 2));
        assert_eq!(qs.abandon_rate, Some(0.5));
        assert_eq!(
            qs.abandon_reasons,
            BTreeMap::from([("caller_hung_up".into(), 1), ("timeout".into(), 1)])
        );
        // Waits 4 s, 40 s, 20 s, 70 s (the first answer of c4).
        assert_eq!(qs.wait.n, 4);
        assert_eq!(qs.wait.buckets, [1, 0, 1, 1, 1]);
        assert_eq!(qs.wait.p50_ms, Some(20_000));
        assert_eq!(qs.wait.p95_ms, Some(70_000));
        assert_eq!(qs.wait.max_ms, Some(70_000));

        let li = r.agents.iter().find(|a| a.agent == "li").unwrap();
        assert_eq!((li.offered, li.answered), (1, 1));
        assert_eq!(li.talk_s, 60.0);
        // Signed in 0..400 s (never paused): busy ringing 2 + on call 60 + wrap-up 10.
        assert_eq!(li.signed_in_s, 400.0);
        assert_eq!(li.busy_s, 72.0);
        assert_eq!(li.occupancy, Some(72.0 / 400.0));
        let wang = r.agents.iter().find(|a| a.agent == "wang").unwrap();
        // The second answer (after the whisper) moves the talk start: 275..300 s.
        assert_eq!((wang.offered, wang.answered), (1, 2));
        assert_eq!(wang.talk_s, 25.0);
        // Signed in 0..100 and 200..300 s (paused between, signed out after): 200 s;
        // busy ringing 2 s + on call 30 s.
        assert_eq!(wang.signed_in_s, 200.0);
        assert_eq!(wang.busy_s, 32.0);
        assert_eq!(wang.occupancy, Some(32.0 / 200.0));
        assert_eq!(
            wang.dispositions,
            BTreeMap::from([("callback".into(), 1), ("resolved".into(), 1)])
        );
        assert_eq!(
            r.dispositions,
            BTreeMap::from([("callback".into(), 1), ("resolved".into(), 2)])
        );
    }

    #[test]
    fn an_empty_log_has_no_rates() {
        let r = desk_report(&[], at(0));
        assert!(r.queues.is_empty() && r.agents.is_empty());
        let r = desk_report(&[state(0, "li", "paused")], at(100));
        assert_eq!(r.agents[0].occupancy, None);
        assert_eq!(r.agents[0].signed_in_s, 0.0);
    }
}
