//! Decisions over embeddings: is this the enrolled customer, and is this a
//! voice on the fraud watchlist. Pure functions; the thresholds are measured
//! by `waihu bench voiceprint` (equal-error point over synthetic voices).

use serde::Serialize;

use crate::Embedding;

/// Cosine at or above which a probe is taken for the enrolled speaker. Set
/// from the equal-error threshold `waihu bench voiceprint` measured over 24
/// synthetic voices on an 8 kHz line (0.895, EER 4.3%), rounded up: a false
/// accept discloses personal data, a false reject only sends the caller to a
/// human. Synthetic voices from one synthesiser resemble each other more than
/// people do (mean cross-voice cosine 0.73 here), so real calls should
/// calibrate their own.
pub const VERIFY_THRESHOLD: f32 = 0.90;
/// Cosine at or above which a voice is taken for a watchlisted one. Lower
/// than verification's: a false alert costs a human review, a miss costs a
/// fraud.
pub const WATCH_THRESHOLD: f32 = 0.85;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The same speaker as the enrolment.
    Match,
    /// Another speaker.
    NoMatch,
    /// Nothing enrolled to compare with.
    NotEnrolled,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::NoMatch => "no_match",
            Verdict::NotEnrolled => "not_enrolled",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Verification {
    pub verdict: Verdict,
    /// Cosine between the probe and the enrolment's mean (0 when not enrolled).
    pub score: f32,
    pub threshold: f32,
}

/// Compare `probe` with the mean of an enrolment's embeddings.
pub fn verify(enrolled: &[Embedding], probe: &Embedding, threshold: f32) -> Verification {
    let Some(centroid) = Embedding::mean(enrolled) else {
        return Verification {
            verdict: Verdict::NotEnrolled,
            score: 0.0,
            threshold,
        };
    };
    let score = centroid.cosine(probe);
    Verification {
        verdict: if score >= threshold {
            Verdict::Match
        } else {
            Verdict::NoMatch
        },
        score,
        threshold,
    }
}

/// The watchlist entry `probe` resembles most, when it reaches `threshold`:
/// its index in `entries` and the cosine.
pub fn watch_match(
    entries: &[Embedding],
    probe: &Embedding,
    threshold: f32,
) -> Option<(usize, f32)> {
    entries
        .iter()
        .enumerate()
        .map(|(i, e)| (i, e.cosine(probe)))
        .filter(|&(_, s)| s >= threshold)
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Different numbers one voice must be heard on (this one included) before
/// it is an alert though nobody flagged it: this number and two more (one
/// person answering a spouse's phone is common; three numbers much less so).
pub const CROWD_NUMBERS: usize = 3;
/// Days a voice heard on a live call is kept for the crowd check.
pub const SIGHTING_DAYS: i64 = 30;

/// A voice answering for many numbers: in how many different numbers'
/// sightings (`(number key, embedding)`) the probe is heard at `threshold`
/// or above, counting `this` number once whether or not it was heard before,
/// and the highest cosine among the others.
pub fn crowd<'a>(
    sightings: impl IntoIterator<Item = (&'a str, &'a Embedding)>,
    this: &str,
    probe: &Embedding,
    threshold: f32,
) -> (usize, f32) {
    let mut numbers = std::collections::BTreeSet::new();
    let mut best = 0.0f32;
    for (number, e) in sightings {
        if number == this {
            continue;
        }
        let s = e.cosine(probe);
        if s >= threshold {
            numbers.insert(number);
            best = best.max(s);
        }
    }
    (numbers.len() + 1, best)
}

/// Equal error rate of a verifier from genuine (same speaker) and impostor
/// scores: the rate where false accepts equal false rejects, and the
/// threshold that achieves it (linear interpolation between the two closest
/// thresholds). `None` when either set is empty.
pub fn equal_error_rate(genuine: &[f32], impostor: &[f32]) -> Option<(f64, f32)> {
    if genuine.is_empty() || impostor.is_empty() {
        return None;
    }
    let mut thresholds: Vec<f32> = genuine.iter().chain(impostor).copied().collect();
    thresholds.sort_by(f32::total_cmp);
    let rates = |t: f32| {
        let frr = genuine.iter().filter(|&&s| s < t).count() as f64 / genuine.len() as f64;
        let far = impostor.iter().filter(|&&s| s >= t).count() as f64 / impostor.len() as f64;
        (far, frr)
    };
    let mut best = (f64::INFINITY, 0.0, 0f32);
    for &t in &thresholds {
        let (far, frr) = rates(t);
        let gap = (far - frr).abs();
        if gap < best.0 {
            best = (gap, (far + frr) / 2.0, t);
        }
    }
    Some((best.1, best.2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(v: &[f32]) -> Embedding {
        let mut x = v.to_vec();
        x.resize(crate::EMBEDDING_DIM, 0.0);
        Embedding::normalized(x)
    }

    #[test]
    fn a_voice_on_many_numbers_is_counted_once_per_number() {
        let v = e(&[1.0, 0.0]);
        let near = e(&[0.97, 0.05]);
        let other = e(&[0.0, 1.0]);
        let seen = [
            ("a", &v),
            ("a", &near),
            ("b", &near),
            ("c", &other),
            ("me", &v),
        ];
        let (n, best) = crowd(seen.iter().map(|(k, e)| (*k, *e)), "me", &v, 0.9);
        assert_eq!(n, 3, "me, a and b; not c (another voice)");
        assert!(best > 0.99);
        let (n, best) = crowd(seen.iter().map(|(k, e)| (*k, *e)), "me", &other, 0.9);
        assert_eq!((n, best > 0.99), (2, true));
        assert_eq!(crowd(std::iter::empty(), "me", &v, 0.9), (1, 0.0));
    }

    #[test]
    fn verify_compares_with_the_enrolment_mean() {
        let a = e(&[1.0, 0.0]);
        let b = e(&[0.9, 0.1]);
        let stranger = e(&[0.0, 1.0]);
        let v = verify(&[a.clone(), b], &a, 0.8);
        assert_eq!(v.verdict, Verdict::Match);
        assert!(v.score > 0.99);
        assert_eq!(
            verify(std::slice::from_ref(&a), &stranger, 0.8).verdict,
            Verdict::NoMatch
        );
        assert_eq!(verify(&[], &a, 0.8).verdict, Verdict::NotEnrolled);
    }

    #[test]
    fn the_closest_watchlisted_voice_above_threshold_wins() {
        let list = [
            e(&[1.0, 0.0, 0.0]),
            e(&[0.0, 1.0, 0.0]),
            e(&[0.1, 1.0, 0.0]),
        ];
        assert_eq!(
            watch_match(&list, &e(&[0.0, 1.0, 0.0]), 0.9).map(|m| m.0),
            Some(1)
        );
        assert_eq!(watch_match(&list, &e(&[0.0, 0.0, 1.0]), 0.5), None);
    }

    #[test]
    fn eer_of_separable_and_overlapping_scores() {
        let (eer, t) = equal_error_rate(&[0.9, 0.8, 0.85], &[0.2, 0.3, 0.5]).unwrap();
        assert_eq!(eer, 0.0);
        assert!(t > 0.5 && t <= 0.8);
        // One impostor above one genuine: 1 of 4 wrong on each side.
        let (eer, _) = equal_error_rate(&[0.9, 0.8, 0.6, 0.85], &[0.2, 0.7, 0.3, 0.1]).unwrap();
        assert!((eer - 0.25).abs() < 1e-9, "{eer}");
        assert!(equal_error_rate(&[], &[0.1]).is_none());
    }
}
