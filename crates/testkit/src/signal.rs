//! Test signals for audio paths: a melody with one clear cross-correlation peak and the
//! correlation that finds it in a recording (a call's recording holds what was played).

/// A non-periodic test signal: 50 ms tones at pseudo-random frequencies (300-3000 Hz), so
/// cross-correlation has one clear peak.
pub fn melody(seconds: f64, seed: u32) -> Vec<i16> {
    let n = (seconds * 8000.0) as usize;
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    let mut freq = 440.0f64;
    let mut phase = 0.0f64;
    (0..n)
        .map(|i| {
            if i % 400 == 0 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                freq = 300.0 + f64::from(state % 2700);
            }
            phase += 2.0 * std::f64::consts::PI * freq / 8000.0;
            (phase.sin() * 9000.0) as i16
        })
        .collect()
}

/// Best normalised cross-correlation of one second of `reference` (from `at` s) anywhere
/// in `rec`.
pub fn best_correlation(rec: &[i16], reference: &[i16], at: f64) -> f64 {
    let start = (at * 8000.0) as usize;
    let w: Vec<f32> = reference[start..start + 8000]
        .iter()
        .map(|&s| f32::from(s))
        .collect();
    let wn: f32 = w.iter().map(|v| v * v).sum::<f32>().sqrt();
    let r: Vec<f32> = rec.iter().map(|&s| f32::from(s)).collect();
    let mut best = 0.0f64;
    if r.len() < w.len() {
        return 0.0;
    }
    for lag in 0..=(r.len() - w.len()) {
        let seg = &r[lag..lag + w.len()];
        let dot: f32 = seg.iter().zip(&w).map(|(a, b)| a * b).sum();
        if dot <= 0.0 {
            continue;
        }
        let sn: f32 = seg.iter().map(|v| v * v).sum::<f32>().sqrt();
        best = best.max(f64::from(dot / (sn * wn).max(1.0)));
    }
    best
}
