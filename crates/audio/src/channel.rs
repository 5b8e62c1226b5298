//! A telephone line model for simulated calls and tests: what a callee's
//! voice goes through between their handset and the bot. Sans-IO: 8 kHz
//! samples in, 8 kHz samples out, the random numbers from a seed given by
//! the caller, so a run repeats exactly.
//!
//! Per 20 ms frame, in order:
//! 1. background noise (white Gaussian) at `snr_db` below a nominal active
//!    speech level (`speech_dbfs`), present in pauses too, as on a real line;
//! 2. the telephone band: 4th-order Butterworth high-pass at 300 Hz and
//!    low-pass at 3400 Hz (each two cascaded biquads);
//! 3. a G.711 round trip (μ-law or A-law encode + decode);
//! 4. packet loss: with probability `loss` the frame is dropped and the
//!    receiver plays silence in its place (no concealment, the worst case).
use crate::eval::Noise;
use crate::g711::Law;

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
/// The line's sample rate.
pub const RATE: u32 = 8000;

/// What the line does to audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineConfig {
    pub law: Law,
    /// Band-limit to 300–3400 Hz.
    pub band: bool,
    /// Background noise this many dB below `speech_dbfs`; `None`: no noise.
    pub snr_db: Option<f64>,
    /// The active speech level the SNR refers to, in dBFS (RMS).
    pub speech_dbfs: f64,
    /// Probability that a 20 ms frame is lost, 0.0..=1.0.
    pub loss: f64,
}

impl Default for LineConfig {
    /// A clean G.711 μ-law line with the telephone band.
    fn default() -> Self {
        LineConfig {
            law: Law::Ulaw,
            band: true,
            snr_db: None,
            speech_dbfs: -20.0,
            loss: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Biquad {
    b: [f64; 3],
    a: [f64; 2],
    z: [f64; 2],
}

impl Biquad {
    /// RBJ cookbook low/high-pass with quality `q` at `f0` Hz.
    fn new(high: bool, f0: f64, q: f64, rate: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * f0 / rate;
        let (sin, cos) = w.sin_cos();
        let alpha = sin / (2.0 * q);
        let a0 = 1.0 + alpha;
        let b = if high {
            [(1.0 + cos) / 2.0, -(1.0 + cos), (1.0 + cos) / 2.0]
        } else {
            [(1.0 - cos) / 2.0, 1.0 - cos, (1.0 - cos) / 2.0]
        };
        Biquad {
            b: [b[0] / a0, b[1] / a0, b[2] / a0],
            a: [-2.0 * cos / a0, (1.0 - alpha) / a0],
            z: [0.0; 2],
        }
    }

    /// Transposed direct form II.
    fn run(&mut self, x: f64) -> f64 {
        let y = self.b[0] * x + self.z[0];
        self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
        self.z[1] = self.b[2] * x - self.a[1] * y;
        y
    }
}

/// One direction of a telephone line (see the module docs).
pub struct Line {
    cfg: LineConfig,
    filters: Vec<Biquad>,
    rng: Noise,
    pending: Vec<i16>,
    frames: u64,
    lost: u64,
}

impl Line {
    /// A line with `cfg`; `seed` drives the noise and the losses.
    pub fn new(cfg: LineConfig, seed: u64) -> Self {
        // 4th-order Butterworth = two biquads with Q 0.5412 and 1.3066.
        let qs = [0.541_196_1, 1.306_563];
        let mut filters = Vec::new();
        if cfg.band {
            for q in qs {
                filters.push(Biquad::new(true, 300.0, q, RATE as f64));
            }
            for q in qs {
                filters.push(Biquad::new(false, 3400.0, q, RATE as f64));
            }
        }
        Line {
            cfg: LineConfig {
                loss: cfg.loss.clamp(0.0, 1.0),
                ..cfg
            },
            filters,
            rng: Noise::new(seed),
            pending: Vec::new(),
            frames: 0,
            lost: 0,
        }
    }

    pub fn config(&self) -> &LineConfig {
        &self.cfg
    }

    /// Frames processed and frames lost so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.frames, self.lost)
    }

    /// One 20 ms frame (any length works; 160 samples is a frame).
    pub fn frame(&mut self, input: &[i16]) -> Vec<i16> {
        self.frames += 1;
        let noise_rms = self
            .cfg
            .snr_db
            .map(|snr| 32768.0 * 10f64.powf((self.cfg.speech_dbfs - snr) / 20.0));
        let mut shaped: Vec<i16> = Vec::with_capacity(input.len());
        for &s in input {
            let mut x = s as f64;
            if let Some(rms) = noise_rms {
                x += rms * self.rng.gaussian();
            }
            for f in &mut self.filters {
                x = f.run(x);
            }
            shaped.push(x.round().clamp(-32768.0, 32767.0) as i16);
        }
        let mut codes = Vec::with_capacity(shaped.len());
        self.cfg.law.encode(&shaped, &mut codes);
        // The loss draw happens for every frame, so the pattern of losses
        // depends only on the seed and the frame count.
        let lost = self.cfg.loss > 0.0 && self.rng.uniform() < self.cfg.loss;
        if lost {
            self.lost += 1;
            codes.iter_mut().for_each(|c| *c = self.cfg.law.silence());
        }
        let mut out = Vec::with_capacity(codes.len());
        self.cfg.law.decode(&codes, &mut out);
        out
    }

    /// Any amount of audio: whole frames go through now, a partial frame
    /// waits for the next call (or [`Line::flush`]).
    pub fn push(&mut self, input: &[i16]) -> Vec<i16> {
        self.pending.extend_from_slice(input);
        let whole = self.pending.len() / FRAME * FRAME;
        let mut out = Vec::with_capacity(whole);
        let rest = self.pending.split_off(whole);
        let ready = std::mem::replace(&mut self.pending, rest);
        for f in ready.chunks(FRAME) {
            out.extend(self.frame(f));
        }
        out
    }

    /// The partial frame held back by [`Line::push`], padded with silence.
    pub fn flush(&mut self) -> Vec<i16> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let mut f = std::mem::take(&mut self.pending);
        f.resize(FRAME, 0);
        self.frame(&f)
    }

    /// A whole clip through the line.
    pub fn process(&mut self, input: &[i16]) -> Vec<i16> {
        let mut out = self.push(input);
        out.extend(self.flush());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, secs: f64, amp: f64) -> Vec<i16> {
        let n = (secs * RATE as f64) as usize;
        (0..n)
            .map(|i| {
                (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / RATE as f64).sin()) as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    /// Gain in dB of the line for a tone, skipping the filters' settling.
    fn gain_db(cfg: LineConfig, freq: f64) -> f64 {
        let x = tone(freq, 1.0, 8000.0);
        let y = Line::new(cfg, 1).process(&x);
        20.0 * (rms(&y[2000..]) / rms(&x[2000..])).log10()
    }

    #[test]
    fn the_line_passes_the_voice_band_and_cuts_outside_it() {
        let cfg = LineConfig::default();
        for f in [500.0, 1000.0, 2000.0, 3000.0] {
            let g = gain_db(cfg, f);
            assert!(g.abs() < 1.5, "{f} Hz: {g:.2} dB");
        }
        assert!(gain_db(cfg, 100.0) < -25.0, "100 Hz");
        assert!(gain_db(cfg, 60.0) < -35.0, "60 Hz hum");
        assert!(gain_db(cfg, 3900.0) < -15.0, "3900 Hz");
        let flat = LineConfig { band: false, ..cfg };
        assert!(gain_db(flat, 100.0).abs() < 0.5);
    }

    #[test]
    fn g711_round_trip_keeps_the_signal() {
        for law in [Law::Ulaw, Law::Alaw] {
            let cfg = LineConfig {
                law,
                band: false,
                ..Default::default()
            };
            let x = tone(1000.0, 0.5, 10000.0);
            let y = Line::new(cfg, 7).process(&x);
            assert_eq!(y.len(), x.len());
            let err: Vec<i16> = x.iter().zip(&y).map(|(a, b)| a - b).collect();
            let snr = 20.0 * (rms(&x) / rms(&err)).log10();
            // G.711's quantisation SNR is about 38 dB for loud signals.
            assert!(snr > 30.0, "{law:?}: {snr:.1} dB");
            // Decoded values are fixed points of another round trip.
            let again = Line::new(cfg, 7).process(&y);
            assert_eq!(again, y);
        }
    }

    #[test]
    fn noise_comes_at_the_chosen_snr() {
        let cfg = LineConfig {
            band: false,
            snr_db: Some(10.0),
            speech_dbfs: -20.0,
            ..Default::default()
        };
        let silence = vec![0i16; 8000];
        let y = Line::new(cfg, 3).process(&silence);
        let level = 20.0 * (rms(&y) / 32768.0).log10();
        assert!((level - -30.0).abs() < 1.0, "{level:.2} dBFS");
        // The same seed gives the same noise; another seed does not.
        assert_eq!(Line::new(cfg, 3).process(&silence), y);
        assert_ne!(Line::new(cfg, 4).process(&silence), y);
        // No noise configured: silence stays silent.
        let quiet = Line::new(LineConfig::default(), 3).process(&silence);
        assert!(quiet.iter().all(|&v| v.abs() <= 8), "{:?}", &quiet[..8]);
    }

    #[test]
    fn packet_loss_drops_whole_frames_at_the_rate() {
        let cfg = LineConfig {
            band: false,
            loss: 0.2,
            ..Default::default()
        };
        let x = tone(1000.0, 20.0, 8000.0);
        let mut line = Line::new(cfg, 11);
        let y = line.process(&x);
        let (frames, lost) = line.counts();
        assert_eq!(frames as usize, x.len() / FRAME);
        let rate = lost as f64 / frames as f64;
        assert!((rate - 0.2).abs() < 0.03, "loss {rate:.3}");
        // Each frame is either all silence (lost) or carries the tone.
        let silent = y
            .chunks(FRAME)
            .filter(|f| f.iter().all(|&v| v.abs() <= 8))
            .count();
        assert_eq!(silent as u64, lost);
        assert_eq!(Line::new(cfg, 0).counts(), (0, 0));
    }

    #[test]
    fn streaming_in_odd_pieces_matches_one_pass() {
        let cfg = LineConfig {
            snr_db: Some(20.0),
            loss: 0.1,
            ..Default::default()
        };
        let x = tone(700.0, 1.03, 6000.0);
        let whole = Line::new(cfg, 5).process(&x);
        let mut line = Line::new(cfg, 5);
        let mut parts = Vec::new();
        for piece in x.chunks(97) {
            parts.extend(line.push(piece));
        }
        parts.extend(line.flush());
        assert_eq!(parts, whole);
        assert!(Line::new(cfg, 5).flush().is_empty());
    }
}
