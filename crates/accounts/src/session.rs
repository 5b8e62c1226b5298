//! When a sign-in session ends: after a time without requests (idle) or a
//! fixed time after sign-in (absolute), whichever comes first.
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    /// 30 min.
    pub idle: Duration,
    /// 12 h.
    pub absolute: Duration,
}

impl Default for Lifetime {
    fn default() -> Self {
        Lifetime {
            idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Valid; it ends at `expires_at` unless used again before then.
    Live { expires_at: DateTime<Utc> },
    /// No request for longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Expired,
}

impl Lifetime {
    /// When a session created at `created` and last used at `last_seen` ends.
    pub fn expires_at(&self, created: DateTime<Utc>, last_seen: DateTime<Utc>) -> DateTime<Utc> {
        (last_seen + self.idle).min(created + self.absolute)
    }

    /// The session at `now`.
    pub fn verdict(
        &self,
        created: DateTime<Utc>,
        last_seen: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Verdict {
        if now >= created + self.absolute {
            Verdict::Expired
        } else if now >= last_seen + self.idle {
            Verdict::Idle
        } else {
            Verdict::Live {
                expires_at: self.expires_at(created, now),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn idle_and_absolute() {
        let l = Lifetime::default();
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let m = Duration::minutes;
        assert_eq!(
            l.verdict(t0, t0, t0 + m(29)),
            Verdict::Live {
                expires_at: t0 + m(59)
            }
        );
        assert_eq!(l.verdict(t0, t0, t0 + m(30)), Verdict::Idle);
        // Used every 20 min: alive until the 12 h mark, not a second longer.
        let last = t0 + Duration::hours(11) + m(50);
        assert_eq!(
            l.verdict(t0, last, last + m(5)),
            Verdict::Live {
                expires_at: t0 + Duration::hours(12)
            }
        );
        assert_eq!(
            l.verdict(t0, last, t0 + Duration::hours(12)),
            Verdict::Expired
        );
    }
}
