//! Scoring a run: the bot's stored outcomes against the simulator's truth.
//!
//! Attempts and simulator logs are matched per number in order (the n-th
//! attempt to a number is the n-th call the simulator saw for it). A call is
//! correct when its telephony outcome equals the expected one and, where a
//! business outcome is expected, the dialog ended with it.
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use waihu_core::CallOutcome;

use crate::persona::Persona;
use crate::population::{normalize_number, Decision};
use crate::server::SimCallLog;

/// Per-persona counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PersonaScore {
    pub calls: usize,
    /// Telephony and business outcome both right.
    pub correct: usize,
    pub outcome_ok: usize,
    /// Calls with an expected business outcome, and how many had it.
    pub business_scored: usize,
    pub business_ok: usize,
}

/// One call whose stored outcome differs from the truth.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub number: String,
    pub attempt: u32,
    pub persona: Persona,
    pub decision: Decision,
    pub expected_outcome: CallOutcome,
    pub got_outcome: CallOutcome,
    pub expected_business: Option<String>,
    pub got_business: Option<String>,
    /// What the callee said, to see why.
    pub lines_said: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Score {
    /// Attempts scored (matched to a simulator call) plus attempts without one.
    pub calls: usize,
    pub correct: usize,
    pub per_persona: BTreeMap<Persona, PersonaScore>,
    pub mismatches: Vec<Mismatch>,
    /// Attempts the simulator never saw (counted as wrong).
    pub attempts_without_call: Vec<String>,
    /// Simulator calls no attempt accounts for.
    pub calls_without_attempt: usize,
    /// Lines the callees said in the scored calls.
    pub callee_lines: usize,
    /// Bot prompts that started while a callee was saying a line (false cut-ins).
    pub talked_over: usize,
    /// Mouth to ear as the callees heard it, ms per answered line ([`crate::agent::AgentRecord::reply_ms`]).
    pub reply_ms: Vec<u64>,
}

impl Score {
    /// Share of attempts whose stored outcome matches the persona's truth.
    pub fn share(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.correct as f64 / self.calls as f64
        }
    }

    /// False cut-ins per callee line: how often the bot started talking
    /// while the callee was still saying something.
    pub fn cut_in_share(&self) -> f64 {
        self.talked_over as f64 / self.callee_lines.max(1) as f64
    }
}

impl std::fmt::Display for Score {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<16} {:>6} {:>8} {:>10} {:>10}",
            "persona", "calls", "correct", "outcome", "business"
        )?;
        for (p, s) in &self.per_persona {
            writeln!(
                f,
                "{:<16} {:>6} {:>8} {:>10} {:>10}",
                p.name(),
                s.calls,
                s.correct,
                s.outcome_ok,
                format!("{}/{}", s.business_ok, s.business_scored)
            )?;
        }
        writeln!(
            f,
            "正确率 / correct: {}/{} = {:.1}%",
            self.correct,
            self.calls,
            self.share() * 100.0
        )?;
        if !self.attempts_without_call.is_empty() {
            writeln!(
                f,
                "attempts the simulator never saw: {}",
                self.attempts_without_call.len()
            )?;
        }
        for m in &self.mismatches {
            writeln!(
                f,
                "  ✗ {} #{} {} ({}): outcome {} (want {}), business {} (want {})",
                m.number,
                m.attempt,
                m.persona,
                m.decision.name(),
                m.got_outcome.as_str(),
                m.expected_outcome.as_str(),
                m.got_business.as_deref().unwrap_or("-"),
                m.expected_business.as_deref().unwrap_or("-"),
            )?;
        }
        Ok(())
    }
}

/// Scores `attempts` — (number, stored telephony outcome, stored business
/// outcome), in the order they were placed — against the simulator's logs.
pub fn score(attempts: &[(String, CallOutcome, Option<String>)], logs: &[SimCallLog]) -> Score {
    let mut by_number: HashMap<String, Vec<&SimCallLog>> = HashMap::new();
    for l in logs {
        by_number
            .entry(normalize_number(&l.to))
            .or_default()
            .push(l);
    }
    for v in by_number.values_mut() {
        v.sort_by(|a, b| a.attempt.cmp(&b.attempt).then(a.started.cmp(&b.started)));
    }
    let mut used: HashMap<String, usize> = HashMap::new();
    let mut s = Score::default();
    for (number, outcome, business) in attempts {
        let n = normalize_number(number);
        let i = used.entry(n.clone()).or_insert(0);
        let Some(log) = by_number.get(&n).and_then(|v| v.get(*i)) else {
            s.calls += 1;
            s.attempts_without_call.push(n);
            continue;
        };
        *i += 1;
        s.calls += 1;
        s.callee_lines += log.lines_said.len();
        s.talked_over += log.talked_over as usize;
        s.reply_ms.extend(&log.reply_ms);
        let ps = s.per_persona.entry(log.persona).or_default();
        ps.calls += 1;
        let outcome_ok = *outcome == log.expected_outcome;
        let business_ok = match &log.expected_business {
            Some(want) => business.as_deref() == Some(want.as_str()),
            None => true,
        };
        ps.outcome_ok += outcome_ok as usize;
        if log.expected_business.is_some() {
            ps.business_scored += 1;
            ps.business_ok += business_ok as usize;
        }
        if outcome_ok && business_ok {
            ps.correct += 1;
            s.correct += 1;
        } else {
            s.mismatches.push(Mismatch {
                number: n,
                attempt: log.attempt,
                persona: log.persona,
                decision: log.decision,
                expected_outcome: log.expected_outcome,
                got_outcome: *outcome,
                expected_business: log.expected_business.clone(),
                got_business: business.clone(),
                lines_said: log.lines_said.clone(),
            });
        }
    }
    s.calls_without_attempt = by_number
        .iter()
        .map(|(n, v)| v.len().saturating_sub(used.get(n).copied().unwrap_or(0)))
        .sum();
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn log(to: &str, attempt: u32, persona: Persona, decision: Decision) -> SimCallLog {
        let t = persona.truth("order_confirmation");
        SimCallLog {
            to: to.into(),
            persona,
            attempt,
            decision,
            lines_said: vec![],
            bot_prompts_heard: 0,
            barge_ins: 0,
            talked_over: 0,
            bot_speech_s: 0.0,
            reply_ms: vec![],
            started: Utc::now(),
            ended: Utc::now(),
            talk_s: 0.0,
            callee_hangup: None,
            reason: String::new(),
            sip_status: None,
            expected_outcome: decision.outcome(),
            expected_business: (decision == Decision::Answered)
                .then_some(t.business)
                .flatten(),
        }
    }

    #[test]
    fn matches_attempts_per_number_in_order_and_lists_mismatches() {
        let logs = vec![
            log("+1555001", 1, Persona::Cooperative, Decision::Answered),
            log("+1555001", 0, Persona::Cooperative, Decision::NoAnswer),
            log("+1555002", 0, Persona::Busy, Decision::Busy),
            log("+1555003", 0, Persona::DoNotCall, Decision::Answered),
            log("+1555009", 0, Persona::Angry, Decision::Answered),
        ];
        let a = |n: &str, o: CallOutcome, b: Option<&str>| (n.to_string(), o, b.map(String::from));
        let attempts = vec![
            a("sip:+1555001@h", CallOutcome::NoAnswer, None),
            a("+1555002", CallOutcome::Busy, None),
            a("+1555001", CallOutcome::Answered, Some("confirmed")),
            a("+1555003", CallOutcome::Answered, Some("not_available")),
            a("+1555004", CallOutcome::Answered, Some("confirmed")),
        ];
        let s = score(&attempts, &logs);
        assert_eq!(s.calls, 5);
        assert_eq!(s.correct, 3);
        assert_eq!(s.per_persona[&Persona::Cooperative].correct, 2);
        assert_eq!(s.per_persona[&Persona::DoNotCall].business_ok, 0);
        assert_eq!(s.mismatches.len(), 1);
        assert_eq!(
            s.mismatches[0].expected_business.as_deref(),
            Some("do_not_call")
        );
        assert_eq!(s.attempts_without_call, vec!["+1555004".to_string()]);
        assert_eq!(s.calls_without_attempt, 1);
        assert!((s.share() - 0.6).abs() < 1e-9);
        let text = s.to_string();
        assert!(text.contains("do_not_call"), "{text}");
    }

    #[test]
    fn a_wrong_telephony_outcome_is_a_mismatch_even_without_business() {
        let logs = vec![log("+1", 0, Persona::PoweredOff, Decision::PoweredOff)];
        let s = score(&[("+1".into(), CallOutcome::Rejected, None)], &logs);
        assert_eq!(s.correct, 0);
        assert_eq!(s.mismatches[0].expected_outcome, CallOutcome::PoweredOff);
    }
}
