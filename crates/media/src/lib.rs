//! Telephone media for waihu: RTP, DTMF (RFC 4733 + in-band Goertzel), a jitter buffer,
//! RTCP reports, WAV play/record, and a 20 ms frame API. G.711, WAV files and the Goertzel
//! filter come from `waihu-audio` (re-exported as [`g711`] and [`wav`]).
//!
//! **Sans-IO**: nothing here opens sockets or reads clocks. [`MediaSession`] is one call's
//! media: the runtime (`waihu-engine`) feeds it received datagrams and calls
//! [`MediaSession::tick`] every 20 ms with the frame we speak; each tick returns the RTP
//! packet to send and leaves the time-aligned frames of both sides for recording and for
//! the voice pipeline (VAD, ASR, TTS) — the frame API.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use waihu_media::{Law, MediaSession, SessionConfig, FRAME};
//! let t0 = Instant::now();
//! let mut caller = MediaSession::new(SessionConfig::new(Law::Ulaw, Some(101), 1, 0, 0), t0);
//! let mut callee = MediaSession::new(SessionConfig::new(Law::Ulaw, Some(101), 2, 0, 0), t0);
//! caller.send_dtmf("1");
//! for k in 0..20 {
//!     let now = t0 + Duration::from_millis(20 * k);
//!     if let Some(pkt) = caller.tick(now, &[0; FRAME]) {
//!         callee.handle_datagram(now, &pkt).unwrap();
//!     }
//!     callee.tick(now, &[0; FRAME]);
//! }
//! assert_eq!(callee.poll_event(), Some(waihu_media::MediaEvent::Dtmf { digit: '1', inband: false }));
//! ```

pub mod dtmf;
pub mod jitter;
pub mod rtcp;
pub mod rtp;
pub mod session;
pub mod srtp;

// One G.711 and one WAV implementation for the whole workspace; re-exported because a
// session's codec and its recording are part of this crate's API.
pub use waihu_audio::{g711, wav};

pub use rtp::{RtpError, RtpHeader, RtpPacket};
pub use session::{MediaEvent, MediaSession, MediaStats, SessionConfig};
pub use srtp::{SrtpContext, SrtpError, SrtpKey, SrtpSession};
pub use waihu_audio::g711::Law;
pub use waihu_audio::wav::{StereoRecorder, WavError};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;

/// A source of audio we speak into a call, one 20 ms frame at a time.
pub trait FrameSource: Send {
    /// Fills `out` (FRAME samples). Returns false once the source is exhausted (then `out`
    /// is silence).
    fn next_frame(&mut self, out: &mut [i16]) -> bool;
}

/// Plays a buffer of 8 kHz samples (e.g. a WAV prompt), optionally looping.
#[derive(Debug, Clone)]
pub struct PcmPlayer {
    samples: std::sync::Arc<[i16]>,
    pos: usize,
    looping: bool,
}

impl PcmPlayer {
    /// Shares `samples` (an `Arc<[i16]>` lets many calls play one prompt without copies).
    pub fn new(samples: impl Into<std::sync::Arc<[i16]>>, looping: bool) -> PcmPlayer {
        PcmPlayer {
            samples: samples.into(),
            pos: 0,
            looping,
        }
    }
    pub fn from_wav(path: &std::path::Path, looping: bool) -> Result<PcmPlayer, WavError> {
        Ok(PcmPlayer::new(wav::read_8k_mono(path)?, looping))
    }
    pub fn duration_s(&self) -> f64 {
        self.samples.len() as f64 / 8000.0
    }
    pub fn finished(&self) -> bool {
        !self.looping && self.pos >= self.samples.len()
    }
}

impl FrameSource for PcmPlayer {
    fn next_frame(&mut self, out: &mut [i16]) -> bool {
        out.iter_mut().for_each(|s| *s = 0);
        if self.samples.is_empty() || self.finished() {
            return false;
        }
        for s in out.iter_mut() {
            if self.pos >= self.samples.len() {
                if !self.looping {
                    break;
                }
                self.pos = 0;
            }
            *s = self.samples[self.pos];
            self.pos += 1;
        }
        true
    }
}

/// Silence forever.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silence;

impl FrameSource for Silence {
    fn next_frame(&mut self, out: &mut [i16]) -> bool {
        out.iter_mut().for_each(|s| *s = 0);
        true
    }
}

/// Root-mean-square level of samples (0 for empty input).
pub fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn player_pads_and_loops() {
        let mut p = PcmPlayer::new(vec![1; 200], false);
        let mut f = [9i16; FRAME];
        assert!(p.next_frame(&mut f));
        assert!(p.next_frame(&mut f));
        assert_eq!(f[39], 1);
        assert_eq!(f[40], 0);
        assert!(!p.next_frame(&mut f));
        let mut l = PcmPlayer::new(vec![2; 100], true);
        assert!(l.next_frame(&mut f) && f.iter().all(|&s| s == 2));
        assert!((rms(&[3, -3, 3, -3]) - 3.0).abs() < 1e-9);
    }
}
