//! The Goertzel filter: the energy of one frequency in a block of samples, for
//! the in-band DTMF detector (`waihu-media`) and for tests that check what a
//! tone or a synthesised voice contains. Cheaper than an FFT when only a few
//! frequencies matter.

/// Squared magnitude of the DFT term at `freq` over `samples` taken at `rate`
/// Hz, unnormalised (a full-scale sine of amplitude A over N samples gives
/// about (A·N/2)²). Callers normalise for their own purpose.
pub fn goertzel(samples: &[f32], rate: u32, freq: f32) -> f32 {
    let w = 2.0 * std::f32::consts::PI * freq / rate as f32;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0f32, 0f32);
    for &x in samples {
        let s0 = x + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// Power of `samples` at frequency `freq` (Goertzel), normalised by length.
pub fn goertzel_power(samples: &[f32], rate: u32, freq: f32) -> f32 {
    goertzel(samples, rate, freq) / (samples.len().max(1) as f32).powi(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sine(freq: f32, rate: u32, n: usize, amp: f32) -> Vec<f32> {
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_tone_shows_at_its_frequency_only() {
        let x = sine(1000.0, 8000, 800, 1.0);
        // A sine of amplitude 1 has power 1/4 at its bin, normalised by N².
        assert!((goertzel_power(&x, 8000, 1000.0) - 0.25).abs() < 0.01);
        assert!(goertzel_power(&x, 8000, 1250.0) < 1e-4);
        assert_eq!(goertzel_power(&[], 8000, 1000.0), 0.0);
    }

    proptest! {
        #[test]
        fn power_is_finite(x in proptest::collection::vec(-32768f32..32768.0, 0..400),
                                            freq in 0f32..4000.0) {
            // Even at 0 Hz, where the resonator's state grows with N², an i16-range
            // block stays far inside f32's range.
            prop_assert!(goertzel(&x, 8000, freq).is_finite());
        }
    }
}
