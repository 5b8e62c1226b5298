//! Operational alerts for the live wall (告警): what a supervisor must look at
//! now. A pure decision over figures the caller gathers (the last minutes'
//! KPIs beside the hours before, the dialing node's trunk and ASR state, the
//! calls on the line); no I/O, no clock.
//!
//! - `connect_rate_drop`: the connect rate (接通率) of the recent window fell
//!   well below the baseline's (a carrier blocking the caller IDs, a bad list,
//!   a trunk half-down). Only with enough attempts in both windows.
//! - `abandon_rate`: answered calls dropped for want of an agent above the
//!   limit (3% is the common regulatory ceiling for predictive dialing).
//! - `trunk_down` / `trunk_unregistered` / `no_trunk_up`: from the node's status.
//! - `node_stopped`: calls are on the line in the store but the node stopped
//!   writing its status (crashed or hung).
//! - `asr_queue`: more utterances wait for recognition than there are decoders.
//! - `angry_callers`: callers on the line right now whose emotion is angry.
use serde::Serialize;

use crate::kpi::Kpis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Critical,
    Warning,
    Info,
}

/// One alert: a stable code, what it is about (a trunk's name), and the
/// message in both languages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub code: &'static str,
    pub severity: Severity,
    pub subject: Option<String>,
    pub zh: String,
    pub en: String,
}

/// When an alert fires.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    /// Attempts the recent window needs before its connect rate is judged.
    pub min_recent_attempts: i64,
    /// ... and the baseline window.
    pub min_baseline_attempts: i64,
    /// Warn when recent / baseline connect rate falls below this...
    pub drop_warn: f64,
    /// ... and call it critical below this.
    pub drop_critical: f64,
    /// Abandoned / answered above this is critical.
    pub abandon_limit: f64,
    /// Answered calls the abandon rate needs before it is judged.
    pub min_answered: i64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            min_recent_attempts: 20,
            min_baseline_attempts: 50,
            drop_warn: 0.7,
            drop_critical: 0.4,
            abandon_limit: 0.03,
            min_answered: 20,
        }
    }
}

/// One trunk as the dialing node reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trunk {
    pub name: String,
    /// `up`, `down` (backing off after failures) or `unregistered`.
    pub state: String,
}

/// The dialing node's status file.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The node stopped rewriting it.
    pub stale: bool,
    pub trunks: Vec<Trunk>,
    /// Utterances waiting for a decoder, and the decoders, when reported.
    pub asr: Option<(u32, u32)>,
}

/// What the alerts are decided over.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The recent window (e.g. the last 15 minutes), finished ([`Kpis::finish`]).
    pub recent: &'a Kpis,
    /// The window before it (e.g. the 2 hours before), finished.
    pub baseline: &'a Kpis,
    pub node: Option<&'a Node>,
    /// Calls on the line in the store, and how many of them have an angry callee.
    pub live_calls: usize,
    pub angry_calls: usize,
}

fn pct(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The alerts that hold for `i`, most severe first.
pub fn evaluate(i: &Inputs, p: &Policy) -> Vec<Alert> {
    let mut out = Vec::new();
    if let (Some(now), Some(before)) = (i.recent.connect_rate, i.baseline.connect_rate) {
        if i.recent.attempts >= p.min_recent_attempts
            && i.baseline.attempts >= p.min_baseline_attempts
            && before > 0.0
        {
            let ratio = now / before;
            let severity = if ratio < p.drop_critical {
                Some(Severity::Critical)
            } else if ratio < p.drop_warn {
                Some(Severity::Warning)
            } else {
                None
            };
            if let Some(severity) = severity {
                out.push(Alert {
                    code: "connect_rate_drop",
                    severity,
                    subject: None,
                    zh: format!(
                        "接通率下降：最近 {} 次呼叫接通 {}，此前为 {}",
                        i.recent.attempts,
                        pct(now),
                        pct(before)
                    ),
                    en: format!(
                        "Connect rate dropped: {} over the last {} attempts, {} before",
                        pct(now),
                        i.recent.attempts,
                        pct(before)
                    ),
                });
            }
        }
    }
    if i.recent.answered >= p.min_answered {
        if let Some(rate) = i.recent.abandon_rate {
            if rate > p.abandon_limit {
                out.push(Alert {
                    code: "abandon_rate",
                    severity: Severity::Critical,
                    subject: None,
                    zh: format!(
                        "放弃率 {} 超过上限 {}（{} 通接通后无坐席）",
                        pct(rate),
                        pct(p.abandon_limit),
                        i.recent.abandoned
                    ),
                    en: format!(
                        "Abandon rate {} is above the {} limit ({} answered calls found no agent)",
                        pct(rate),
                        pct(p.abandon_limit),
                        i.recent.abandoned
                    ),
                });
            }
        }
    }
    match i.node {
        Some(n) if n.stale => {
            if i.live_calls > 0 {
                out.push(Alert {
                    code: "node_stopped",
                    severity: Severity::Critical,
                    subject: None,
                    zh: format!(
                        "拨号节点已停止更新状态，但仍有 {} 通呼叫未结束",
                        i.live_calls
                    ),
                    en: format!(
                        "The dialing node stopped reporting while {} calls are still open",
                        i.live_calls
                    ),
                });
            }
        }
        Some(n) => {
            for t in &n.trunks {
                let (code, severity, zh, en) = match t.state.as_str() {
                    "down" => (
                        "trunk_down",
                        Severity::Critical,
                        "中继故障（连续失败，退避中）",
                        "trunk down (backing off after failures)",
                    ),
                    "unregistered" => (
                        "trunk_unregistered",
                        Severity::Warning,
                        "中继未注册",
                        "trunk not registered",
                    ),
                    _ => continue,
                };
                out.push(Alert {
                    code,
                    severity,
                    subject: Some(t.name.clone()),
                    zh: format!("{}：{zh}", t.name),
                    en: format!("{}: {en}", t.name),
                });
            }
            if !n.trunks.is_empty() && n.trunks.iter().all(|t| t.state != "up") {
                out.push(Alert {
                    code: "no_trunk_up",
                    severity: Severity::Critical,
                    subject: None,
                    zh: "没有可用中继：无法外呼".into(),
                    en: "No trunk is up: no call can be placed".into(),
                });
            }
            if let Some((waiting, slots)) = n.asr {
                if waiting > slots {
                    let severity = if waiting > 2 * slots {
                        Severity::Critical
                    } else {
                        Severity::Warning
                    };
                    out.push(Alert {
                        code: "asr_queue",
                        severity,
                        subject: None,
                        zh: format!("语音识别排队：{waiting} 段语音等待 {slots} 个识别器"),
                        en: format!(
                            "ASR queue growing: {waiting} utterances wait for {slots} decoders"
                        ),
                    });
                }
            }
        }
        None => {
            if i.live_calls > 0 {
                out.push(Alert {
                    code: "node_stopped",
                    severity: Severity::Critical,
                    subject: None,
                    zh: format!("没有拨号节点的状态，但有 {} 通呼叫未结束", i.live_calls),
                    en: format!(
                        "No dialing node reports its status while {} calls are open",
                        i.live_calls
                    ),
                });
            }
        }
    }
    if i.angry_calls > 0 {
        out.push(Alert {
            code: "angry_callers",
            severity: Severity::Info,
            subject: None,
            zh: format!("{} 位通话中的客户情绪激动，可监听或转人工", i.angry_calls),
            en: format!(
                "{} callers on the line sound angry: listen in or take over",
                i.angry_calls
            ),
        });
    }
    out.sort_by_key(|a| a.severity);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kpis(attempts: i64, answered: i64, abandoned: i64) -> Kpis {
        let mut k = Kpis::empty();
        k.add_attempt("answered", answered, 60.0 * answered as f64);
        k.add_attempt("no_answer", attempts - answered, 0.0);
        k.add_abandoned(abandoned);
        k.finish();
        k
    }

    fn codes(a: &[Alert]) -> Vec<(&'static str, Severity)> {
        a.iter().map(|a| (a.code, a.severity)).collect()
    }

    fn node(states: &[(&str, &str)], asr: Option<(u32, u32)>, stale: bool) -> Node {
        Node {
            stale,
            trunks: states
                .iter()
                .map(|(n, s)| Trunk {
                    name: n.to_string(),
                    state: s.to_string(),
                })
                .collect(),
            asr,
        }
    }

    #[test]
    fn quiet_when_all_is_well() {
        let (r, b) = (kpis(40, 20, 0), kpis(200, 100, 0));
        let n = node(&[("cmcc", "up")], Some((2, 2)), false);
        let i = Inputs {
            recent: &r,
            baseline: &b,
            node: Some(&n),
            live_calls: 3,
            angry_calls: 0,
        };
        assert!(evaluate(&i, &Policy::default()).is_empty());
    }

    #[test]
    fn connect_rate_drop_needs_enough_attempts_and_grades_itself() {
        let b = kpis(200, 100, 0);
        let p = Policy::default();
        let at = |r: &Kpis| {
            codes(&evaluate(
                &Inputs {
                    recent: r,
                    baseline: &b,
                    node: None,
                    live_calls: 0,
                    angry_calls: 0,
                },
                &p,
            ))
        };
        // 50% → 30%: a 0.6 ratio, a warning; → 10%: critical.
        assert_eq!(
            at(&kpis(40, 12, 0)),
            [("connect_rate_drop", Severity::Warning)]
        );
        assert_eq!(
            at(&kpis(40, 4, 0)),
            [("connect_rate_drop", Severity::Critical)]
        );
        // 10 attempts are too few to say anything.
        assert!(at(&kpis(10, 0, 0)).is_empty());
        // 50% → 40% is ordinary variation.
        assert!(at(&kpis(40, 16, 0)).is_empty());
    }

    #[test]
    fn abandon_rate_above_the_limit_is_critical() {
        let (r, b) = (kpis(100, 50, 3), kpis(0, 0, 0));
        let a = evaluate(
            &Inputs {
                recent: &r,
                baseline: &b,
                node: None,
                live_calls: 0,
                angry_calls: 0,
            },
            &Policy::default(),
        );
        assert_eq!(codes(&a), [("abandon_rate", Severity::Critical)]);
        assert!(a[0].zh.contains("6%") && a[0].en.contains("6%"), "{a:?}");
    }

    #[test]
    fn trunks_node_and_asr() {
        let (r, b) = (kpis(0, 0, 0), kpis(0, 0, 0));
        let p = Policy::default();
        let run = |n: Option<&Node>, live: usize, angry: usize| {
            evaluate(
                &Inputs {
                    recent: &r,
                    baseline: &b,
                    node: n,
                    live_calls: live,
                    angry_calls: angry,
                },
                &p,
            )
        };
        let n = node(
            &[("cmcc", "down"), ("cu", "unregistered")],
            Some((5, 2)),
            false,
        );
        let a = run(Some(&n), 2, 1);
        assert_eq!(
            codes(&a),
            [
                ("trunk_down", Severity::Critical),
                ("no_trunk_up", Severity::Critical),
                ("asr_queue", Severity::Critical),
                ("trunk_unregistered", Severity::Warning),
                ("angry_callers", Severity::Info),
            ]
        );
        assert_eq!(a[0].subject.as_deref(), Some("cmcc"));
        // One trunk still up: no `no_trunk_up`; 3 waiting for 2 decoders: a warning.
        let n = node(&[("cmcc", "down"), ("cu", "up")], Some((3, 2)), false);
        assert_eq!(
            codes(&run(Some(&n), 0, 0)),
            [
                ("trunk_down", Severity::Critical),
                ("asr_queue", Severity::Warning)
            ]
        );
        // A stale node only matters while calls are open; its trunks are not judged.
        let n = node(&[("cmcc", "down")], None, true);
        assert!(run(Some(&n), 0, 0).is_empty());
        assert_eq!(
            codes(&run(Some(&n), 4, 0)),
            [("node_stopped", Severity::Critical)]
        );
        assert_eq!(
            codes(&run(None, 1, 0)),
            [("node_stopped", Severity::Critical)]
        );
    }
}
