//! Voice activity detection per 20 ms frame, behind a trait so the
//! endpointer does not care which detector runs.
//!
//! The default is WebRTC's GMM VAD (`webrtc-vad`, libfvad compiled from C
//! source; BSD licence): it works natively at 8 kHz, which is what a G.711
//! call delivers, and costs ~2 µs per frame. Line noise is handled by
//! [`NoiseGate`], which also requires energy above a tracked noise floor.

#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error("VAD 帧长度错误 / VAD frame of {got} samples at {rate} Hz; needs 10, 20 or 30 ms")]
    FrameLength { got: usize, rate: u32 },
    #[error("VAD 不支持采样率 / VAD does not support {0} Hz (8000, 16000, 32000, 48000)")]
    Rate(u32),
}

pub trait Vad: Send {
    fn rate(&self) -> u32;
    /// Whether this frame (10, 20 or 30 ms at [`Vad::rate`]) holds speech.
    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError>;
    fn reset(&mut self);
}

/// How readily WebRTC's VAD calls a frame non-speech (0 = least, 3 = most).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggressiveness {
    Quality,
    LowBitrate,
    #[default]
    Aggressive,
    VeryAggressive,
}

pub struct WebRtcVad {
    inner: webrtc_vad::Vad,
    rate: u32,
    mode: Aggressiveness,
}

// SAFETY: `webrtc_vad::Vad` holds a pointer to a heap-allocated libfvad state
// that it owns exclusively and frees on drop; libfvad has no thread-local or
// global state, so moving the owner to another thread is sound. (It is not
// `Sync`, and we do not claim it is.)
unsafe impl Send for WebRtcVad {}

fn webrtc_rate(rate: u32) -> Result<webrtc_vad::SampleRate, VadError> {
    Ok(match rate {
        8000 => webrtc_vad::SampleRate::Rate8kHz,
        16000 => webrtc_vad::SampleRate::Rate16kHz,
        32000 => webrtc_vad::SampleRate::Rate32kHz,
        48000 => webrtc_vad::SampleRate::Rate48kHz,
        other => return Err(VadError::Rate(other)),
    })
}

fn webrtc_mode(m: Aggressiveness) -> webrtc_vad::VadMode {
    match m {
        Aggressiveness::Quality => webrtc_vad::VadMode::Quality,
        Aggressiveness::LowBitrate => webrtc_vad::VadMode::LowBitrate,
        Aggressiveness::Aggressive => webrtc_vad::VadMode::Aggressive,
        Aggressiveness::VeryAggressive => webrtc_vad::VadMode::VeryAggressive,
    }
}

impl WebRtcVad {
    pub fn new(rate: u32, mode: Aggressiveness) -> Result<Self, VadError> {
        let inner = webrtc_vad::Vad::new_with_rate_and_mode(webrtc_rate(rate)?, webrtc_mode(mode));
        Ok(WebRtcVad { inner, rate, mode })
    }
}

fn check_len(frame: &[i16], rate: u32) -> Result<(), VadError> {
    let ms10 = rate as usize / 100;
    if frame.len() == ms10 || frame.len() == 2 * ms10 || frame.len() == 3 * ms10 {
        Ok(())
    } else {
        Err(VadError::FrameLength {
            got: frame.len(),
            rate,
        })
    }
}

impl Vad for WebRtcVad {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
        // Checked here: the binding indexes frame[0] and would panic on an empty slice.
        check_len(frame, self.rate)?;
        self.inner
            .is_voice_segment(frame)
            .map_err(|_| VadError::FrameLength {
                got: frame.len(),
                rate: self.rate,
            })
    }

    fn reset(&mut self) {
        if let Ok(r) = webrtc_rate(self.rate) {
            self.inner = webrtc_vad::Vad::new_with_rate_and_mode(r, webrtc_mode(self.mode));
        }
    }
}

/// Frame energy in dBFS.
pub fn frame_dbfs(frame: &[i16]) -> f32 {
    let e = frame.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / frame.len().max(1) as f64;
    (10.0 * (e / (32768.0f64 * 32768.0)).max(1e-12).log10()) as f32
}

/// Wraps a VAD and also requires the frame to be `margin_db` louder than the
/// noise floor, so steady line noise that the GMM mistakes for speech does
/// not start utterances or barge in. The floor is the quietest frame of the
/// last 1.5 s (minimum statistics): pauses between words keep it at the
/// noise level while someone speaks.
pub struct NoiseGate<V: Vad> {
    inner: V,
    margin_db: f32,
    recent_db: std::collections::VecDeque<f32>,
}

const FLOOR_WINDOW_FRAMES: usize = 75;

impl<V: Vad> NoiseGate<V> {
    pub fn new(inner: V, margin_db: f32) -> Self {
        NoiseGate {
            inner,
            margin_db,
            recent_db: std::collections::VecDeque::with_capacity(FLOOR_WINDOW_FRAMES),
        }
    }

    pub fn noise_floor_db(&self) -> f32 {
        self.recent_db.iter().copied().fold(f32::INFINITY, f32::min)
    }
}

impl<V: Vad> Vad for NoiseGate<V> {
    fn rate(&self) -> u32 {
        self.inner.rate()
    }

    fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
        let vad = self.inner.is_speech(frame)?;
        let db = frame_dbfs(frame);
        if self.recent_db.len() == FLOOR_WINDOW_FRAMES {
            self.recent_db.pop_front();
        }
        self.recent_db.push_back(db);
        Ok(vad && db > self.noise_floor_db() + self.margin_db)
    }

    fn reset(&mut self) {
        self.inner.reset();
        self.recent_db.clear();
    }
}

/// The default detector for a call leg at `rate`.
pub fn default_vad(rate: u32) -> Result<Box<dyn Vad>, VadError> {
    Ok(Box::new(NoiseGate::new(
        WebRtcVad::new(rate, Aggressiveness::Aggressive)?,
        6.0,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_frames_without_panicking() {
        let mut v = WebRtcVad::new(8000, Aggressiveness::Aggressive).unwrap();
        assert!(matches!(
            v.is_speech(&[]),
            Err(VadError::FrameLength { got: 0, .. })
        ));
        assert!(v.is_speech(&[0; 161]).is_err());
        assert!(!v.is_speech(&[0; 160]).unwrap());
        assert!(matches!(
            WebRtcVad::new(11025, Aggressiveness::Quality),
            Err(VadError::Rate(11025))
        ));
    }

    #[test]
    fn silence_is_not_speech() {
        let mut v = default_vad(8000).unwrap();
        for _ in 0..50 {
            assert!(!v.is_speech(&[0; 160]).unwrap());
        }
    }

    #[test]
    fn dbfs_of_full_scale_square_is_zero() {
        assert!((frame_dbfs(&[32767, -32768].repeat(80))).abs() < 0.01);
        assert!(frame_dbfs(&[0; 160]) < -100.0);
    }
}
