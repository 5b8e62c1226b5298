//! The one runtime: owns sockets, timers and tasks, and drives the sans-IO cores.
//!
//! - [`sip`]: a UDP SIP endpoint — one task around a `waihu_sip::UserAgent`.
//! - [`call`]: outgoing (UAC) and incoming (UAS) calls with paced RTP media around a
//!   `waihu_media::MediaSession`, playing and recording WAV, sending and receiving DTMF.

pub mod agent;
pub mod call;
pub mod sip;

/// Runtime errors (libraries return these; the CLI adds context with anyhow).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Sip(#[from] waihu_sip::SipError),
    #[error(transparent)]
    Wav(#[from] waihu_media::WavError),
    #[error("recording failed: {0}")]
    Recording(String),
    #[error("the SIP endpoint task has stopped")]
    Closed,
}

impl EngineError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> EngineError {
        EngineError::Io {
            what: what.into(),
            source,
        }
    }
}

// The cores this runtime drives, for callers that only depend on the engine.
pub use waihu_media;
pub use waihu_sip;
