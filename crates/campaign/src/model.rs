//! Answer probability per hour of week, learned from outcomes, with
//! Beta-Binomial shrinkage campaign → segment → customer.
//!
//! - Campaign, hour `h`: `p_c(h) = (ans_h + k0·prior) / (att_h + k0)`.
//! - Segment `s`, hour `h`: `p_s(h) = (ans_sh + k1·p_c(h)) / (att_sh + k1)`.
//! - Customer, day part `d` (morning / afternoon / evening): the posterior mean
//!   of a Beta prior centred on the segment's mean `m` for that day part with
//!   strength `k2`, turned into a multiplier `((ans + k2·m) / (att + k2)) / m`.
//!
//! A customer's probability at hour `h` is `p_s(h) × multiplier(d(h))`. The
//! factorisation is what lets the planner keep per-segment, per-day-part heaps
//! ordered by a key that does not change with the hour (see `planner.rs`).

/// Hours in a week; hour-of-week 0 is Monday 00:00–01:00 local time.
pub const HOURS: usize = 168;
/// Day parts a customer's own evidence is kept for.
pub const DAY_PARTS: usize = 3;

/// The day part of a local hour: before noon, noon–17:00, after 17:00.
pub fn day_part(hour_of_day: u32) -> usize {
    if hour_of_day < 12 {
        0
    } else if hour_of_day < 17 {
        1
    } else {
        2
    }
}

#[derive(Debug, Clone)]
pub struct AnswerModel {
    prior: f64,
    k0: f64,
    k1: f64,
    k2: f64,
    camp_att: Vec<f64>,
    camp_ans: Vec<f64>,
    seg_att: Vec<Vec<f64>>,
    seg_ans: Vec<Vec<f64>>,
    /// `segment_day_part_mean` cached; refreshed every `REFRESH` records.
    dp_mean: Vec<[f64; DAY_PARTS]>,
    since_refresh: u32,
}

const REFRESH: u32 = 2048;

impl AnswerModel {
    pub fn new(segments: usize, prior: f64, strength: f64) -> Self {
        AnswerModel {
            prior,
            k0: strength,
            k1: strength,
            k2: 2.0,
            camp_att: vec![0.0; HOURS],
            camp_ans: vec![0.0; HOURS],
            seg_att: vec![vec![0.0; HOURS]; segments],
            seg_ans: vec![vec![0.0; HOURS]; segments],
            dp_mean: vec![[prior; DAY_PARTS]; segments],
            since_refresh: 0,
        }
    }

    pub(crate) fn refresh(&mut self) {
        for s in 0..self.seg_att.len() {
            for d in 0..DAY_PARTS {
                self.dp_mean[s][d] = self.segment_day_part_mean(s, d);
            }
        }
        self.since_refresh = 0;
    }

    pub fn record(&mut self, segment: usize, hour_of_week: usize, answered: bool) {
        let h = hour_of_week % HOURS;
        let a = if answered { 1.0 } else { 0.0 };
        self.camp_att[h] += 1.0;
        self.camp_ans[h] += a;
        self.seg_att[segment][h] += 1.0;
        self.seg_ans[segment][h] += a;
        self.since_refresh += 1;
        if self.since_refresh >= REFRESH {
            self.refresh();
        }
    }

    /// Attempts seen at this hour of week, over all segments (the evidence
    /// behind [`AnswerModel::campaign`]).
    pub fn attempts(&self, hour_of_week: usize) -> f64 {
        self.camp_att[hour_of_week % HOURS]
    }

    pub fn campaign(&self, hour_of_week: usize) -> f64 {
        let h = hour_of_week % HOURS;
        (self.camp_ans[h] + self.k0 * self.prior) / (self.camp_att[h] + self.k0)
    }

    pub fn segment(&self, segment: usize, hour_of_week: usize) -> f64 {
        let h = hour_of_week % HOURS;
        (self.seg_ans[segment][h] + self.k1 * self.campaign(h))
            / (self.seg_att[segment][h] + self.k1)
    }

    /// Mean of the segment's hourly rates over the day part, across the week,
    /// weighted by how often those hours were tried (so closed hours, never
    /// tried, do not pull the mean towards the prior).
    pub fn segment_day_part_mean(&self, segment: usize, part: usize) -> f64 {
        let (mut num, mut den) = (0.0, 0.0);
        for h in 0..HOURS {
            if day_part((h % 24) as u32) != part {
                continue;
            }
            let w = self.seg_att[segment][h] + 1.0;
            num += w * self.segment(segment, h);
            den += w;
        }
        if den > 0.0 {
            num / den
        } else {
            self.prior
        }
    }

    /// The segment's answer rate over a day part (cached, refreshed as outcomes arrive).
    pub fn day_part_mean(&self, segment: usize, part: usize) -> f64 {
        self.dp_mean[segment][part]
    }

    /// The customer's multiplier for a day part given their own attempts and answers there.
    pub fn customer_multiplier(
        &self,
        segment: usize,
        part: usize,
        attempts: u8,
        answers: u8,
    ) -> f64 {
        if attempts == 0 {
            return 1.0;
        }
        let m = self.dp_mean[segment][part].clamp(1e-4, 1.0);
        ((answers as f64 + self.k2 * m) / (attempts as f64 + self.k2)) / m
    }

    /// Probability that this customer answers at this hour of week.
    pub fn probability(&self, segment: usize, hour_of_week: usize, multiplier: f64) -> f64 {
        (self.segment(segment, hour_of_week) * multiplier).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_towards_parents_and_learns() {
        let mut m = AnswerModel::new(2, 0.3, 20.0);
        assert!((m.segment(0, 10) - 0.3).abs() < 1e-12);
        // Campaign-wide: hour 10 answers well.
        for i in 0..1000 {
            m.record(1, 10, i % 10 < 6);
        }
        // Segment 0 never tried at hour 10 borrows the campaign's 0.6.
        assert!((m.segment(0, 10) - m.campaign(10)).abs() < 1e-12);
        assert!(m.campaign(10) > 0.55);
        // A few segment-0 failures move it only part of the way.
        for _ in 0..5 {
            m.record(0, 10, false);
        }
        let s = m.segment(0, 10);
        assert!(s < m.campaign(10) && s > 0.4, "{s}");
        m.refresh();
        // A customer who missed twice in the morning gets a multiplier below 1,
        // one who answered gets one above.
        assert!(m.customer_multiplier(0, 0, 2, 0) < 1.0);
        assert!(m.customer_multiplier(0, 0, 1, 1) > 1.0);
        assert_eq!(m.customer_multiplier(0, 0, 0, 0), 1.0);
    }

    #[test]
    fn day_parts_cover_the_day() {
        assert_eq!(day_part(9), 0);
        assert_eq!(day_part(12), 1);
        assert_eq!(day_part(16), 1);
        assert_eq!(day_part(17), 2);
        assert_eq!(day_part(23), 2);
    }
}
