//! Speech for waihu: text to speech with emotion styles, voice activity
//! detection and endpointing, and speech recognition behind one streaming
//! trait with adapters for production servers.
//!
//! - [`tts`]: the [`tts::TtsEngine`] trait, the espeak-ng engine (run as a
//!   program, never linked: see the licence note there) and the
//!   [`tts::Synthesizer`], which splits prompts by script and sentence, maps
//!   styles to engine parameters, resamples to 8/16 kHz and streams 20 ms frames.
//! - [`cache`]: content-addressed cache of synthesised sentences.
//! - [`vad`] and [`endpoint`]: speech/non-speech per frame, and a sans-IO
//!   endpointer (start, end, barge-in) driven by media time, never the clock.
//! - [`asr`]: the streaming ASR trait; utterance engines run behind the endpointer.
//! - [`whisper`]: the embedded ASR engine: Whisper from a faster-whisper
//!   (CTranslate2) model directory read by [`ct2`], run on candle.
//! - [`openai`], [`funasr`]: remote ASR adapters.
//! - [`eval`]: noise, clips, WER/CER for tests and `waihu ... --bench`.
//! - [`wav`], [`resample`], [`script`], [`style`]: the pieces underneath.
//!
//! Architecture invariant: decision logic (script splitting, style mapping,
//! endpointing) takes time and audio as input and does no I/O; only the
//! engines and adapters touch processes and sockets.

pub mod asr;
pub mod cache;
pub mod ct2;
pub mod endpoint;
pub mod eval;
pub mod funasr;
pub mod openai;
pub mod resample;
pub mod script;
pub mod style;
pub mod tts;
pub mod vad;
pub mod wav;
pub mod whisper;

pub use cache::TtsCache;
pub use script::{Lang, LangChoice};
pub use style::{Style, StyleBook};
pub use tts::{
    EspeakTts, FrameStream, PcmFrame, Synthesizer, TtsEngine, TtsError, Voice, FRAME_MS,
};
