//! A token bucket per client address (sign-in attempts). Time is an input:
//! the caller passes a monotonic `now`.
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// `burst` requests at once, refilled at `per_minute`.
#[derive(Debug)]
pub struct Limiter<K> {
    burst: f64,
    per_s: f64,
    buckets: HashMap<K, Bucket>,
}

/// Buckets kept before the full ones are forgotten.
const MAX_KEYS: usize = 10_000;

impl<K: Hash + Eq + Clone> Limiter<K> {
    pub fn new(per_minute: u32) -> Self {
        let n = f64::from(per_minute.max(1));
        Limiter {
            burst: n,
            per_s: n / 60.0,
            buckets: HashMap::new(),
        }
    }

    /// Take one token for `key` at `now`: Ok, or how long until one is there.
    pub fn take(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if self.buckets.len() >= MAX_KEYS && !self.buckets.contains_key(key) {
            let (burst, per_s) = (self.burst, self.per_s);
            // A full bucket is the same as no bucket.
            self.buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_s < burst
            });
        }
        let b = self.buckets.entry(key.clone()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.saturating_duration_since(b.at).as_secs_f64() * self.per_s;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.at = now.max(b.at);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / self.per_s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_a_minute_per_key() {
        let t0 = Instant::now();
        let mut l = Limiter::new(10);
        for _ in 0..10 {
            assert!(l.take(&"a", t0).is_ok());
        }
        let wait = l.take(&"a", t0).unwrap_err();
        assert!((5.9..=6.1).contains(&wait.as_secs_f64()), "{wait:?}");
        // Another client is not affected.
        assert!(l.take(&"b", t0).is_ok());
        // One token back after 6 s, not two.
        let t1 = t0 + Duration::from_secs(6);
        assert!(l.take(&"a", t1).is_ok());
        assert!(l.take(&"a", t1).is_err());
    }
}
