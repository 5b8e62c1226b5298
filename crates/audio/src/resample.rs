//! Streaming rational sample-rate conversion with a polyphase Kaiser-windowed
//! sinc filter. Written here rather than taken from `rubato` because the
//! ratios we need are fixed and rational (22050 → 8000 is 160/441), so one
//! precomputed table per phase is exact, allocation-free per sample and small.

/// Converts a stream of samples from `from` Hz to `to` Hz. Feed it any number
/// of samples with [`Resampler::process`], then [`Resampler::flush`] once.
#[derive(Debug, Clone)]
pub struct Resampler {
    up: u64,
    down: u64,
    half: usize,
    table: Vec<f32>,
    /// Input samples still needed, preceded by `half - 1` zeros of history at the start.
    buf: Vec<f32>,
    /// Absolute input index of `buf[0]` (negative for the zero history).
    buf_start: i64,
    /// Input samples received so far.
    received: u64,
    /// Next output sample index.
    next_out: u64,
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// Zeroth-order modified Bessel function of the first kind (Kaiser window).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let q = x * x / 4.0;
    for k in 1..50 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// `from` and `to` must be non-zero.
    pub fn new(from: u32, to: u32) -> Self {
        let (from, to) = (from.max(1) as u64, to.max(1) as u64);
        let g = gcd(from, to);
        let (up, down) = (to / g, from / g);
        // Cut-off relative to the input Nyquist frequency: the lower of the two
        // Nyquists, with 8 % left for the transition band.
        let cutoff = (up as f64 / down as f64).min(1.0) * 0.92;
        // Enough zero crossings for ~80 dB stop-band with beta 8.
        let half = if up == down {
            1
        } else {
            (14.0 / cutoff).ceil() as usize
        };
        let beta = 8.0;
        let taps = 2 * half;
        let mut table = vec![0f32; up as usize * taps];
        if up != down {
            for p in 0..up as usize {
                let frac = p as f64 / up as f64;
                let row = &mut table[p * taps..(p + 1) * taps];
                let mut sum = 0.0;
                let mut vals = vec![0f64; taps];
                for (j, v) in vals.iter_mut().enumerate() {
                    // Tap j multiplies input sample i + j - (half - 1); its distance
                    // from the output instant i + frac:
                    let t = j as f64 - (half as f64 - 1.0) - frac;
                    let x = std::f64::consts::PI * cutoff * t;
                    let sinc = if x.abs() < 1e-12 { 1.0 } else { x.sin() / x };
                    let r = t / half as f64;
                    let w = if r.abs() >= 1.0 {
                        0.0
                    } else {
                        bessel_i0(beta * (1.0 - r * r).sqrt()) / bessel_i0(beta)
                    };
                    *v = cutoff * sinc * w;
                    sum += *v;
                }
                // Unity gain at DC for every phase.
                for (d, v) in row.iter_mut().zip(vals) {
                    *d = (v / sum) as f32;
                }
            }
        }
        Resampler {
            up,
            down,
            half,
            table,
            buf: vec![0.0; half - 1],
            buf_start: -(half as i64 - 1),
            received: 0,
            next_out: 0,
        }
    }

    pub fn is_identity(&self) -> bool {
        self.up == self.down
    }

    /// Feed samples; returns the output samples that are now determined.
    pub fn process(&mut self, input: &[f32]) -> Vec<f32> {
        if self.is_identity() {
            return input.to_vec();
        }
        self.buf.extend_from_slice(input);
        self.received += input.len() as u64;
        let mut out = Vec::with_capacity(input.len() * self.up as usize / self.down as usize + 2);
        self.produce(self.received as i64, &mut out);
        out
    }

    /// Produce outputs whose filter window ends before absolute index `limit`.
    fn produce(&mut self, limit: i64, out: &mut Vec<f32>) {
        let taps = 2 * self.half;
        loop {
            let pos = self.next_out * self.down;
            let i = (pos / self.up) as i64;
            let phase = (pos % self.up) as usize;
            let last_needed = i + self.half as i64;
            if last_needed >= limit {
                break;
            }
            let start = (i - (self.half as i64 - 1) - self.buf_start) as usize;
            let window = &self.buf[start..start + taps];
            let row = &self.table[phase * taps..(phase + 1) * taps];
            out.push(window.iter().zip(row).map(|(a, b)| a * b).sum());
            self.next_out += 1;
        }
        // Drop input no future output needs.
        let pos = self.next_out * self.down;
        let first_needed = (pos / self.up) as i64 - (self.half as i64 - 1);
        let drop = (first_needed - self.buf_start).clamp(0, self.buf.len() as i64) as usize;
        self.buf.drain(..drop);
        self.buf_start += drop as i64;
    }

    /// Emit the tail: outputs up to the end of the input, using zeros past it.
    pub fn flush(&mut self) -> Vec<f32> {
        if self.is_identity() {
            return Vec::new();
        }
        let total_out = (self.received * self.up).div_ceil(self.down);
        let mut out = Vec::new();
        self.buf.extend(std::iter::repeat_n(0.0, self.half + 1));
        let limit = self.buf_start + self.buf.len() as i64;
        self.produce(limit, &mut out);
        let keep = total_out.saturating_sub(self.next_out - out.len() as u64) as usize;
        out.truncate(keep);
        out
    }
}

/// Resample a whole 16-bit signal.
pub fn resample_i16(samples: &[i16], from: u32, to: u32) -> Vec<i16> {
    if from == to {
        return samples.to_vec();
    }
    let mut r = Resampler::new(from, to);
    let input: Vec<f32> = samples.iter().map(|&s| s as f32).collect();
    let mut out = r.process(&input);
    out.extend(r.flush());
    out.into_iter()
        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goertzel::goertzel_power;

    fn tone(freq: f32, rate: u32, secs: f32, amp: f32) -> Vec<i16> {
        let n = (rate as f32 * secs) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin()) as i16
            })
            .collect()
    }

    fn zero_crossings(s: &[i16]) -> usize {
        s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count()
    }

    fn rms(s: &[i16]) -> f32 {
        (s.iter().map(|&v| (v as f32).powi(2)).sum::<f32>() / s.len().max(1) as f32).sqrt()
    }

    #[test]
    fn a_1khz_tone_stays_1khz() {
        for to in [8000u32, 16000] {
            let input = tone(1000.0, 22050, 1.0, 10000.0);
            let out = resample_i16(&input, 22050, to);
            assert!(
                (out.len() as i64 - to as i64).abs() <= 1,
                "len {}",
                out.len()
            );
            // 1 s of 1 kHz: 2000 zero crossings.
            let zc = zero_crossings(&out);
            assert!((1995..=2002).contains(&zc), "{to}: {zc} crossings");
            let f: Vec<f32> = out[400..out.len() - 400]
                .iter()
                .map(|&v| v as f32)
                .collect();
            let at = goertzel_power(&f, to, 1000.0);
            let off = goertzel_power(&f, to, 1250.0);
            assert!(at > off * 1000.0, "{to}: {at} vs {off}");
            // Amplitude kept (passband gain ~1).
            let r = rms(&out[400..out.len() - 400]);
            assert!((r - 10000.0 / 2f32.sqrt()).abs() < 150.0, "{to}: rms {r}");
        }
    }

    #[test]
    fn tones_above_the_new_nyquist_are_removed() {
        // 6 kHz would alias to 2 kHz at 8 kHz.
        let input = tone(6000.0, 22050, 0.5, 10000.0);
        let out = resample_i16(&input, 22050, 8000);
        assert!(
            rms(&out[200..out.len() - 200]) < 10000.0 * 0.001,
            "rms {}",
            rms(&out)
        );
    }

    #[test]
    fn streaming_in_pieces_equals_one_shot() {
        let input: Vec<f32> = tone(440.0, 22050, 0.3, 8000.0)
            .iter()
            .map(|&v| v as f32)
            .collect();
        let mut a = Resampler::new(22050, 16000);
        let mut one = a.process(&input);
        one.extend(a.flush());
        let mut b = Resampler::new(22050, 16000);
        let mut pieces = Vec::new();
        for c in input.chunks(97) {
            pieces.extend(b.process(c));
        }
        pieces.extend(b.flush());
        assert_eq!(one.len(), pieces.len());
        for (x, y) in one.iter().zip(&pieces) {
            assert!((x - y).abs() < 1e-3);
        }
    }

    #[test]
    fn upsampling_and_identity() {
        let input = tone(1000.0, 8000, 0.5, 8000.0);
        let out = resample_i16(&input, 8000, 16000);
        assert_eq!(out.len(), 8000);
        let zc = zero_crossings(&out);
        assert!((995..=1001).contains(&zc), "{zc}");
        assert_eq!(resample_i16(&input, 8000, 8000), input);
    }
}
