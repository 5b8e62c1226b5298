//! Audio for waihu without I/O: the signal processing and decision logic that
//! the speech engines (`waihu-speech`), the call media (`waihu-media`), the
//! voice bot and the virtual callees share.
//!
//! - [`vad`] and [`endpoint`]: speech/non-speech per frame, and a sans-IO
//!   endpointer (start, end, barge-in) driven by media time, never the clock.
//! - [`script`]: prompt text split by script (Han/Latin) and sentence.
//! - [`style`]: emotion styles and their espeak-ng parameters.
//! - [`g711`]: μ-law/A-law; [`resample`]: polyphase windowed-sinc rate
//!   conversion; [`goertzel`]: the energy of one frequency.
//! - [`wav`]: WAV parsing (hand-written, tolerant, proptested) and writing.
//! - [`eval`]: noise, clips, WER/CER for tests and benchmarks.
//! - [`channel`]: a telephone line model (band, G.711, noise at an SNR,
//!   packet loss) for virtual callees and tests, seeded.
//!
//! Architecture invariant: no sockets, processes, tasks, threads or clock
//! reads. Audio, text and media time go in; audio, decisions and events come
//! out. The only file access is at the edges, each beside an in-memory twin:
//! WAV files ([`wav::read_wav`] / [`wav::parse_wav`], recordings) and a style
//! file ([`style::StyleBook::load`] / [`style::StyleBook::from_str_over_defaults`]).

pub mod channel;
pub mod endpoint;
pub mod eval;
pub mod g711;
pub mod goertzel;
pub mod mel;
pub mod resample;
pub mod script;
pub mod style;
pub mod vad;
pub mod wav;

pub use g711::Law;
pub use script::{Lang, LangChoice};
pub use style::{Style, StyleBook};
