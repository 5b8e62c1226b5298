//! Consecutive failed sign-ins lock an account for a while.
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Failures in a row that lock the account (5).
    pub max_failures: u32,
    /// How long a lock lasts (15 min).
    pub lock_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            max_failures: 5,
            lock_for: Duration::minutes(15),
        }
    }
}

/// What the store keeps per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct State {
    pub failures: u32,
    pub locked_until: Option<DateTime<Utc>>,
}

impl State {
    /// The lock in force at `now`, if any.
    pub fn locked_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.locked_until.filter(|u| *u > now)
    }

    /// The state after one more failure at `now`. A lock that has run out
    /// starts the count again; the failure that reaches the limit locks.
    pub fn after_failure(self, policy: &Policy, now: DateTime<Utc>) -> State {
        let failures = match self.locked_until {
            Some(u) if u <= now => 1,
            _ => self.failures.saturating_add(1),
        };
        if failures >= policy.max_failures.max(1) {
            State {
                failures,
                locked_until: Some(now + policy.lock_for),
            }
        } else {
            State {
                failures,
                locked_until: None,
            }
        }
    }

    /// Whether this failure was the one that locked the account.
    pub fn just_locked(before: &State, after: &State, now: DateTime<Utc>) -> bool {
        before.locked_at(now).is_none() && after.locked_at(now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_failures_lock_for_fifteen_minutes_then_the_count_restarts() {
        let p = Policy::default();
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let mut s = State::default();
        for i in 1..=4 {
            let next = s.after_failure(&p, t0);
            assert!(!State::just_locked(&s, &next, t0));
            s = next;
            assert_eq!(s.failures, i);
            assert_eq!(s.locked_at(t0), None);
        }
        let next = s.after_failure(&p, t0);
        assert!(State::just_locked(&s, &next, t0));
        s = next;
        let until = t0 + Duration::minutes(15);
        assert_eq!(s.locked_at(t0), Some(until));
        assert_eq!(s.locked_at(until - Duration::seconds(1)), Some(until));
        // Run out: open again, and one more failure does not lock at once.
        assert_eq!(s.locked_at(until), None);
        let s = s.after_failure(&p, until);
        assert_eq!(
            s,
            State {
                failures: 1,
                locked_until: None
            }
        );
    }

    #[test]
    fn configurable() {
        let p = Policy {
            max_failures: 2,
            lock_for: Duration::seconds(3),
        };
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let s = State::default().after_failure(&p, t0).after_failure(&p, t0);
        assert_eq!(s.locked_at(t0), Some(t0 + Duration::seconds(3)));
    }
}
