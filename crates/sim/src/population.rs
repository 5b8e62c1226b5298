//! Who answers which number: a seeded mix of personas (or an explicit map),
//! and whether a callee picks up, drawn per call from an answer probability
//! by the callee's local hour. Sans-IO: the time of the call is an input.
use std::collections::HashMap;

use chrono::{DateTime, Timelike, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use waihu_core::CallOutcome;

use crate::persona::Persona;

/// What the callee does with one incoming call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Answered,
    NoAnswer,
    Busy,
    PoweredOff,
    Voicemail,
    /// The carrier answered and said 空号 (the number does not exist).
    Vacant,
    /// The carrier answered and said 停机 (the line is suspended).
    Suspended,
    /// The simulator was at its concurrency limit and refused the call (503).
    Overloaded,
}

impl Decision {
    /// The telephony outcome a correct bot records for this decision.
    pub fn outcome(self) -> CallOutcome {
        match self {
            Decision::Answered => CallOutcome::Answered,
            Decision::NoAnswer => CallOutcome::NoAnswer,
            Decision::Busy => CallOutcome::Busy,
            Decision::PoweredOff => CallOutcome::PoweredOff,
            Decision::Voicemail => CallOutcome::Voicemail,
            Decision::Vacant => CallOutcome::InvalidNumber,
            Decision::Suspended => CallOutcome::Suspended,
            Decision::Overloaded => CallOutcome::Congestion,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Decision::Answered => "answered",
            Decision::NoAnswer => "no_answer",
            Decision::Busy => "busy",
            Decision::PoweredOff => "powered_off",
            Decision::Voicemail => "voicemail",
            Decision::Vacant => "vacant",
            Decision::Suspended => "suspended",
            Decision::Overloaded => "overloaded",
        }
    }
}

/// The default mix: cooperative 40%, interrupter 6%, every other persona 4%
/// (54% spread over 13 personas, normalised). The carriers' 空号/停机
/// answerers and the callee with an out-of-script question are not in it
/// (name them in a map or a mix of your own), so the default population stays
/// what earlier runs measured.
pub fn default_mix() -> Vec<(Persona, f64)> {
    Persona::ALL
        .into_iter()
        .filter(|p| {
            !matches!(
                p,
                Persona::Vacant | Persona::Suspended | Persona::AsksQuestion
            )
        })
        .map(|p| {
            let w = match p {
                Persona::Cooperative => 40.0,
                Persona::Interrupter => 6.0,
                _ => 54.0 / 13.0,
            };
            (p, w)
        })
        .collect()
}

/// Probability that a person picks up, by local hour: low at night, high in
/// the morning and afternoon, dips at lunch (12–13) and in the evening.
pub const DEFAULT_ANSWER_BY_HOUR: [f64; 24] = [
    0.15, 0.10, 0.10, 0.10, 0.10, 0.15, 0.30, 0.50, // 00–07
    0.70, 0.85, 0.90, 0.85, 0.55, 0.60, 0.85, 0.90, // 08–15
    0.85, 0.75, 0.55, 0.50, 0.55, 0.45, 0.30, 0.20, // 16–23
];

/// A phone number as the simulator keys it: the user part of a SIP/tel URI
/// (display name, angle brackets, parameters and host removed), with visual
/// separators dropped — `"Bob" <sip:+1 (555) 123-0001@127.0.0.1:5070>;tag=x`
/// → `+15551230001`. Non-numeric users (`sip:alice@host`) are kept lowercased.
pub fn normalize_number(to: &str) -> String {
    let s = to.trim();
    // The URI: inside <...> when present, else the whole value up to header parameters.
    let uri = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if b > a => &s[a + 1..b],
        (Some(a), _) => &s[a + 1..],
        _ => s.split(';').next().unwrap_or(""),
    };
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    let rest = ["sips:", "sip:", "tel:"]
        .iter()
        .find_map(|p| lower.starts_with(p).then(|| &uri[p.len()..]))
        .unwrap_or(uri);
    let user = rest.split('@').next().unwrap_or("");
    let user = user.split(';').next().unwrap_or("");
    let user = user.split('?').next().unwrap_or("").trim();
    let numeric = user
        .chars()
        .all(|c| c.is_ascii_digit() || "+-.() ".contains(c))
        && user.chars().any(|c| c.is_ascii_digit());
    if numeric {
        let plus = user.trim_start().starts_with('+');
        let digits: String = user.chars().filter(char::is_ascii_digit).collect();
        if plus {
            format!("+{digits}")
        } else {
            digits
        }
    } else {
        user.to_lowercase()
    }
}

/// The callee's time zone, from the number's country code.
pub fn zone_of(number: &str) -> chrono_tz::Tz {
    let d = number.trim_start_matches('+');
    if d.starts_with("86") {
        chrono_tz::Asia::Shanghai
    } else if d.starts_with('1') {
        chrono_tz::America::New_York
    } else if d.starts_with("44") {
        chrono_tz::Europe::London
    } else {
        chrono_tz::UTC
    }
}

fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // FNV's high bits mix poorly for numbers that differ in the last digits:
    // finish with splitmix64.
    h = (h ^ (h >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^ (h >> 31)
}

/// A population of virtual callees.
#[derive(Debug, Clone)]
pub struct Population {
    pub seed: u64,
    mix: Vec<(Persona, f64)>,
    explicit: HashMap<String, Persona>,
    fixed: Option<Persona>,
    /// Answer probability of conversing personas by the callee's local hour.
    pub answer_by_hour: [f64; 24],
}

impl Population {
    /// The default mix ([`default_mix`]) and answer curve.
    pub fn new(seed: u64) -> Population {
        Population {
            seed,
            mix: default_mix(),
            explicit: HashMap::new(),
            fixed: None,
            answer_by_hour: DEFAULT_ANSWER_BY_HOUR,
        }
    }

    /// A custom mix (weights need not sum to 1; zero and negative weights drop a persona).
    pub fn with_mix(mut self, mix: Vec<(Persona, f64)>) -> Population {
        let mix: Vec<(Persona, f64)> = mix
            .into_iter()
            .filter(|(_, w)| w.is_finite() && *w > 0.0)
            .collect();
        if !mix.is_empty() {
            self.mix = mix;
        }
        self
    }

    /// Every number not in the explicit map is this persona.
    pub fn with_fixed(mut self, persona: Persona) -> Population {
        self.fixed = Some(persona);
        self
    }

    /// Explicit number → persona entries (numbers are normalised).
    pub fn with_map<S: AsRef<str>>(
        mut self,
        map: impl IntoIterator<Item = (S, Persona)>,
    ) -> Population {
        for (n, p) in map {
            self.explicit.insert(normalize_number(n.as_ref()), p);
        }
        self
    }

    /// Conversing personas always pick up (tests, benchmarks).
    pub fn always_answer(mut self) -> Population {
        self.answer_by_hour = [1.0; 24];
        self
    }

    /// The persona behind a number (a SIP To value or a plain number): the
    /// explicit map, else the fixed persona, else a seeded hash of the number
    /// over the mix's weights — the same number is always the same persona.
    pub fn persona_of(&self, to: &str) -> Persona {
        let n = normalize_number(to);
        if let Some(p) = self.explicit.get(&n) {
            return *p;
        }
        if let Some(p) = self.fixed {
            return p;
        }
        let total: f64 = self.mix.iter().map(|(_, w)| w).sum();
        if self.mix.is_empty() || total <= 0.0 {
            return Persona::Cooperative;
        }
        let u = (fnv(self.seed, &[b"persona", n.as_bytes()]) >> 11) as f64 / (1u64 << 53) as f64;
        let mut acc = 0.0;
        for (p, w) in &self.mix {
            acc += w / total;
            if u < acc {
                return *p;
            }
        }
        self.mix[self.mix.len() - 1].0
    }

    /// Answer probability for a number at `now` (by its local hour).
    pub fn answer_probability(&self, number: &str, now: DateTime<Utc>) -> f64 {
        let hour = now.with_timezone(&zone_of(number)).hour() as usize;
        self.answer_by_hour[hour % 24].clamp(0.0, 1.0)
    }

    /// What the callee does with its `attempt`-th call (0-based) at `now`:
    /// busy, powered-off, no-answer and voicemail personas always do that;
    /// the others pick up with [`Population::answer_probability`], drawn from
    /// a seeded hash of (seed, number, attempt) so a run can be replayed.
    pub fn decide(
        &self,
        persona: Persona,
        number: &str,
        attempt: u32,
        now: DateTime<Utc>,
    ) -> Decision {
        match persona {
            Persona::NoAnswer => Decision::NoAnswer,
            Persona::Busy => Decision::Busy,
            Persona::PoweredOff => Decision::PoweredOff,
            Persona::Voicemail => Decision::Voicemail,
            Persona::Vacant => Decision::Vacant,
            Persona::Suspended => Decision::Suspended,
            _ => {
                let p = self.answer_probability(number, now);
                let n = normalize_number(number);
                let mut rng = StdRng::seed_from_u64(fnv(
                    self.seed,
                    &[b"answer", n.as_bytes(), &attempt.to_le_bytes()],
                ));
                if rng.gen::<f64>() < p {
                    Decision::Answered
                } else {
                    Decision::NoAnswer
                }
            }
        }
    }

    /// A per-call seed for the callee's phrasing and pauses.
    pub fn call_seed(&self, number: &str, attempt: u32) -> u64 {
        fnv(
            self.seed,
            &[
                b"call",
                normalize_number(number).as_bytes(),
                &attempt.to_le_bytes(),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    #[test]
    fn normalizes_to_headers_and_plain_numbers() {
        let cases = [
            ("<sip:+15551230001@127.0.0.1:5070>;tag=abc", "+15551230001"),
            ("\"Bob\" <sip:+1 (555) 123-0001@127.0.0.1>", "+15551230001"),
            ("sip:+8613800138000@host;user=phone", "+8613800138000"),
            ("<tel:+86-138-0013-8000>", "+8613800138000"),
            ("+15551230001", "+15551230001"),
            ("15551230001", "15551230001"),
            ("SIP:Alice@example.com", "alice"),
            ("<sip:+15551230001;isub=1@h>", "+15551230001"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_number(input), want, "{input}");
        }
    }

    #[test]
    fn the_mix_gives_about_the_configured_shares() {
        let pop = Population::new(1);
        let n = 20_000;
        let mut counts: HashMap<Persona, usize> = HashMap::new();
        for i in 0..n {
            *counts
                .entry(pop.persona_of(&format!("+1555{i:07}")))
                .or_default() += 1;
        }
        let coop = counts[&Persona::Cooperative] as f64 / n as f64;
        assert!((0.38..0.42).contains(&coop), "{coop}");
        for (p, _) in default_mix() {
            let share = counts.get(&p).copied().unwrap_or(0) as f64 / n as f64;
            assert!(share > 0.02, "{p}: {share}");
        }
        // Stable per number, different per seed.
        assert_eq!(
            pop.persona_of("+15550000001"),
            pop.persona_of("<sip:+15550000001@x>")
        );
        let other = Population::new(2);
        let differ = (0..200)
            .filter(|i| {
                let n = format!("+1555{i:07}");
                pop.persona_of(&n) != other.persona_of(&n)
            })
            .count();
        assert!(differ > 50, "{differ}");
    }

    #[test]
    fn explicit_and_fixed_personas_win() {
        let pop = Population::new(1)
            .with_fixed(Persona::Angry)
            .with_map([("sip:+15550000009@h", Persona::Busy)]);
        assert_eq!(
            pop.persona_of("<sip:+15550000009@127.0.0.1:5070>"),
            Persona::Busy
        );
        assert_eq!(pop.persona_of("+15550000001"), Persona::Angry);
    }

    #[test]
    fn answering_follows_the_local_hour() {
        let pop = Population::new(3);
        // 15:00 UTC = 10:00 in New York (0.90), 23:00 in Shanghai (0.20).
        let now = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let share = |prefix: &str| {
            (0..2000)
                .filter(|i| {
                    let n = format!("{prefix}{i:07}");
                    pop.decide(Persona::Cooperative, &n, 0, now) == Decision::Answered
                })
                .count() as f64
                / 2000.0
        };
        let ny = share("+1555");
        let sh = share("+86138");
        assert!((0.86..0.94).contains(&ny), "{ny}");
        assert!((0.16..0.24).contains(&sh), "{sh}");
        assert_eq!(
            pop.decide(Persona::Busy, "+15550000001", 0, now),
            Decision::Busy
        );
        assert_eq!(
            Population::new(3)
                .always_answer()
                .decide(Persona::Angry, "+86138", 5, now),
            Decision::Answered
        );
        // Replayable.
        assert_eq!(
            pop.decide(Persona::Cooperative, "+15550001234", 2, now),
            pop.decide(Persona::Cooperative, "+15550001234", 2, now)
        );
    }

    proptest! {
        #[test]
        fn lookup_never_panics_on_any_to_value(to in ".{0,80}", seed in any::<u64>(), attempt in any::<u32>()) {
            let pop = Population::new(seed);
            let p = pop.persona_of(&to);
            let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
            let _ = pop.decide(p, &to, attempt, now);
            let _ = pop.call_seed(&to, attempt);
            let n = normalize_number(&to);
            prop_assert!(!n.chars().any(|c| c.is_ascii_uppercase()));
        }

        #[test]
        fn lookup_never_panics_on_sip_like_values(user in "[+0-9a-zA-Z() .;=@<>:\"-]{0,40}") {
            let to = format!("<sip:{user}@127.0.0.1:5070>;tag=1");
            let _ = Population::new(1).persona_of(&to);
        }
    }
}
