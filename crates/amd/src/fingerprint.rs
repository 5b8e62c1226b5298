//! Carrier announcements recognised by ear: audio fingerprints of the
//! operator's recordings of them.
//!
//! Carriers play a few fixed recordings (空号, 停机, 关机, 无法接通, 忙). An
//! operator who supplies theirs ([`Library::add`], 8 kHz mono, one repetition
//! each) gets the kind of announcement from the call's audio alone, without
//! an ASR, about 1.5 s after the recording starts to play, wherever in the
//! recording the call joined it, at any level, through G.711 and line noise.
//! Sans-IO like the rest of the crate: samples and their media time in, a
//! [`Match`] out; no clock, no I/O, no threads.
//!
//! ```
//! use waihu_amd::{Announcement, Library};
//! let mut lib = Library::new();
//! // A recording must hold at least 1 s of sound: silence is refused.
//! assert!(lib.add(Announcement::Vacant, "cmcc-vacant", &[0; 8000 * 4]).is_err());
//! // One matcher per call, fed what the call hears (20 ms frames here).
//! let mut matcher = lib.matcher();
//! assert_eq!(matcher.push(0, &[0; 160]), None);
//! ```
//!
//! # The fingerprint
//!
//! After Haitsma & Kalker (2002), "A Highly Robust Audio Fingerprinting
//! System", adapted to 8 kHz telephone audio ([`Fingerprint`]):
//! - Hann windows of [`WINDOW`] = 2048 samples (256 ms) every [`HOP`] = 128
//!   samples (16 ms), FFT, energy in 33 bands spaced logarithmically over
//!   300–3400 Hz, the telephone band.
//! - Sub-fingerprint bit `m` of window `n` is 1 when
//!   `E(n,m) − E(n,m+1) − (E(n−1,m) − E(n−1,m+1)) > 0`: the sign of how the
//!   difference between neighbouring bands changed since the last window.
//!   A change of level alone leaves every bit as it was.
//! - Why so long a window at 8 kHz: 3.9 Hz bins put 6 bins into the
//!   narrowest band (300–323 Hz), and windows that overlap by 15/16 change
//!   slowly, so a call that joined the recording between two hops (up to
//!   8 ms off the reference's grid) still lines up bit for bit, and noise
//!   moves few bits. Measured on the tests' calls (`sweep`, below): 1024
//!   samples raised the true alignment's bit error rate (BER) from 0.116 to
//!   0.162 (median; worst block 0.169 → 0.212) with no gain in latency; an
//!   8 ms hop gave about the same (median 0.113, worst 0.157) at twice the
//!   FFTs and four times the search; log energies nearly doubled the BER
//!   (median 0.207, worst 0.275) — H&K's linear energies it is.
//! - Silence is never compared: a sub-fingerprint whose windows hold less
//!   than -55 dBFS within 300–3400 Hz is quiet, and so, in a reference, is
//!   one 30 dB below its loudest window (a recording captured off a call has
//!   the line's noise in its pauses: with that noise 30 dB below the speech,
//!   the worst true block measured 0.170 BER with this rule, 0.241 without). Only sub-fingerprints loud on both sides count,
//!   and an alignment must compare at least 1 s of them: silence, or a
//!   reference's pauses against the call's noise, can never match.
//!
//! # The search
//!
//! The query block is the call's last 2 s (125 sub-fingerprints), compared
//! with every alignment of every reference, partial ones at either end
//! included down to 1 s compared. The [`Matcher`] keeps, per reference and
//! alignment, the running count of bit errors: each new sub-fingerprint adds
//! its errors against every sub-fingerprint of the reference once, and takes
//! them away when it leaves the block, so a 2 s block costs two
//! XOR-and-popcounts per reference sub-fingerprint per hop, and every
//! alignment's BER is exact at every scan (each 32 ms). [`Library::find`] is
//! that same matcher run over a whole recording.
//!
//! A match is the best alignment's BER under [`THRESHOLD`] = 0.25, at least
//! 0.1 below the best BER of any reference of another kind. Carriers splice
//! one "您拨打的电话…" in front of each kind; until the words that differ are
//! in the block, both match and neither is taken (tested: decided at most
//! 0.53 s after the differing words began).
//!
//! # Figures (the tests: `cargo test --release -p waihu-amd fingerprint -- --nocapture`)
//!
//! Five synthetic speech-like announcements of 3.2–5.9 s (voiced syllables
//! with gliding pitch and formants, fricatives, pauses) and 40 calls to
//! them: a random start inside the recording, 0.3× or 2× the level, the
//! 300–3400 Hz band, white noise at 15 dB below the speech, μ-law, after
//! 100–500 ms of silence or line noise.
//! - True alignment, whole 2 s blocks inside the announcement: BER 0.088 to
//!   0.169 (median 0.116, 95th percentile 0.159; 1170 blocks).
//! - Audio in no reference — 16 other speech-like signals (clean and through
//!   the line), white noise, a quiet line, silence, a 1 kHz tone, SIT tones,
//!   ringback — lowest BER at any alignment 0.372; 300 more 5 s speech-like
//!   signals (`many_strangers`): lowest 0.346, median of their lowest 0.404.
//! - So 0.25: 0.08 above the worst true block, 0.10 below the best
//!   stranger. H&K's 0.35 is too near our strangers: a 2 s block at 16 ms
//!   holds fewer independent bits than their 3 s one.
//! - Decision latency after the announcement's first sound: median 1.25 s,
//!   at most 1.45 s (the first window is 256 ms, then 1 s must be compared).
//! - Cost, per second of call audio on one core of the 2-core build machine:
//!   front end (FFTs) ≈ 165 µs, search ≈ 50 µs per reference of 4.4 s
//!   (≈ 11.5 µs per second of reference): ≈ 0.43 ms for five references.
//!   Memory per call: the 256 ms window, the 2 s block and 4 bytes per
//!   alignment per reference (≈ 1.6 KB for a 4.4 s reference).

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};
use serde::Serialize;

use crate::{Announcement, RATE};

/// Samples in one analysis window: 2048 at 8 kHz, 256 ms.
pub const WINDOW: usize = 2048;
/// Samples between windows: 128, 16 ms.
pub const HOP: usize = 128;
/// Milliseconds between sub-fingerprints.
pub const HOP_MS: u32 = (HOP as u32 * 1000) / RATE;
/// Bands per window; neighbouring bands give the 32 bits.
const BANDS: usize = 33;
const LOW_HZ: f32 = 300.0;
const HIGH_HZ: f32 = 3400.0;
/// Windows quieter than this in the 300–3400 Hz band are silence: never
/// compared.
const FLOOR_DBFS: f32 = -55.0;
/// In a reference, windows this far below its loudest are silence too.
const REFERENCE_RANGE_DB: f32 = 30.0;
/// Query block: the last this many sub-fingerprints of the call (2 s).
const QUERY: usize = 125;
/// Fewest sub-fingerprints an alignment must compare, both sides loud (1 s).
const MIN_OVERLAP: usize = 62;
/// Scan the alignments every this many hops (32 ms).
const SCAN_EVERY: usize = 2;
/// A bit error rate below this is a match.
pub const THRESHOLD: f32 = 0.25;
/// How much lower a match's bit error rate must be than that of every
/// reference of another kind (recordings that share a prefix wait for the
/// words that tell them apart).
const LEAD: f32 = 0.1;
/// Longest reference kept.
const MAX_REFERENCE_MS: u64 = 60_000;

/// Tunables, fixed in the public API; tests vary them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Params {
    window: usize,
    hop: usize,
    log: bool,
    query: usize,
    min_overlap: usize,
    threshold: f32,
    scan_every: usize,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window: WINDOW,
            hop: HOP,
            log: false,
            query: QUERY,
            min_overlap: MIN_OVERLAP,
            threshold: THRESHOLD,
            scan_every: SCAN_EVERY,
        }
    }
}

impl Params {
    fn ms(&self, subs: usize) -> u64 {
        (subs * self.hop) as u64 * 1000 / RATE as u64
    }
}

/// The shared, read-only part of the front end: FFT plan, window, bands.
struct Analyzer {
    p: Params,
    fft: Arc<dyn Fft<f32>>,
    hann: Vec<f32>,
    /// FFT bin range of each band.
    bands: Vec<(usize, usize)>,
    /// In-band energy (sum of band powers) below which a window is silence.
    floor: f32,
}

impl Analyzer {
    fn new(p: Params) -> Analyzer {
        let n = p.window;
        let fft = FftPlanner::<f32>::new().plan_fft_forward(n);
        // Periodic Hann.
        let hann: Vec<f32> = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * i as f32 / n as f32).cos())
            .collect();
        let bin_hz = RATE as f32 / n as f32;
        let ratio = HIGH_HZ / LOW_HZ;
        let edge = |k: usize| LOW_HZ * ratio.powf(k as f32 / BANDS as f32);
        let bands: Vec<(usize, usize)> = (0..BANDS)
            .map(|k| {
                let lo = (edge(k) / bin_hz).ceil() as usize;
                let hi = ((edge(k + 1) / bin_hz).ceil() as usize).max(lo + 1);
                (lo, hi.min(n / 2))
            })
            .collect();
        // A sine of mean square `ms` puts `ms * n * sum(w²) / 2` into the
        // bins of one side of the spectrum.
        let w2: f32 = hann.iter().map(|w| w * w).sum();
        let full_scale_ms = 32768f32 * 32768.0;
        let floor = full_scale_ms * 10f32.powf(FLOOR_DBFS / 10.0) * n as f32 * w2 / 2.0;
        Analyzer {
            p,
            fft,
            hann,
            bands,
            floor,
        }
    }

    /// Band energies of one window of samples; their sum.
    fn frame(&self, x: &[f32], work: &mut Work, out: &mut [f32; BANDS]) -> f32 {
        work.buf.clear();
        work.buf.extend(
            x.iter()
                .zip(&self.hann)
                .map(|(&s, &w)| Complex32::new(s * w, 0.0)),
        );
        work.scratch
            .resize(self.fft.get_inplace_scratch_len(), Complex32::default());
        self.fft
            .process_with_scratch(&mut work.buf, &mut work.scratch);
        let mut total = 0f32;
        for (e, &(lo, hi)) in out.iter_mut().zip(&self.bands) {
            *e = work.buf[lo..hi].iter().map(|c| c.norm_sqr()).sum();
            total += *e;
        }
        if self.p.log {
            for e in out.iter_mut() {
                *e = (*e + 1.0).ln();
            }
        }
        total
    }
}

#[derive(Default)]
struct Work {
    buf: Vec<Complex32>,
    scratch: Vec<Complex32>,
}

/// The sub-fingerprint of a window given the one before (Haitsma & Kalker's
/// F(n, m): the sign of the band-energy difference's change over time).
fn bits(prev: &[f32; BANDS], cur: &[f32; BANDS]) -> u32 {
    let mut b = 0u32;
    for m in 0..BANDS - 1 {
        let d = (cur[m] - cur[m + 1]) - (prev[m] - prev[m + 1]);
        if d > 0.0 {
            b |= 1 << m;
        }
    }
    b
}

/// The streaming front end: samples in, sub-fingerprints out.
struct Framer {
    an: Arc<Analyzer>,
    buf: Vec<f32>,
    prev: Option<([f32; BANDS], f32)>,
    work: Work,
}

impl Framer {
    fn new(an: Arc<Analyzer>) -> Framer {
        Framer {
            buf: Vec::with_capacity(an.p.window),
            an,
            prev: None,
            work: Work::default(),
        }
    }

    /// Feed samples; `each(i, bits, level)` gets every sub-fingerprint
    /// completed by sample `i`, with the in-band energy of the quieter of its
    /// two windows, and returns whether to go on.
    fn push(&mut self, samples: &[i16], mut each: impl FnMut(usize, u32, f32) -> bool) {
        let (window, hop) = (self.an.p.window, self.an.p.hop);
        let mut i = 0;
        while i < samples.len() {
            let take = (window - self.buf.len()).min(samples.len() - i);
            self.buf
                .extend(samples[i..i + take].iter().map(|&s| f32::from(s)));
            i += take;
            if self.buf.len() < window {
                break;
            }
            let mut cur = [0f32; BANDS];
            let level = self.an.frame(&self.buf, &mut self.work, &mut cur);
            self.buf.drain(..hop);
            let go = match self.prev.replace((cur, level)) {
                Some((prev, prev_level)) => each(i - 1, bits(&prev, &cur), prev_level.min(level)),
                None => true,
            };
            if !go {
                return;
            }
        }
    }
}

/// The fingerprint of a stretch of 8 kHz audio: one 32-bit sub-fingerprint
/// every [`HOP_MS`], each of a [`WINDOW`]-sample window and the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Sub-fingerprints, one per hop: sub-fingerprint `k` ends at sample
    /// `(k + 1) * HOP + WINDOW`.
    pub bits: Vec<u32>,
    /// Whether both windows of each sub-fingerprint were loud enough (above
    /// -55 dBFS within 300–3400 Hz) to compare; quiet ones are never compared.
    pub loud: Vec<bool>,
    /// Milliseconds between sub-fingerprints.
    pub hop_ms: u32,
}

impl Fingerprint {
    /// The fingerprint of 8 kHz mono samples (empty when shorter than one
    /// window and a hop).
    pub fn of(samples: &[i16]) -> Fingerprint {
        Fingerprint::with(Arc::new(Analyzer::new(Params::default())), samples)
    }

    fn with(an: Arc<Analyzer>, samples: &[i16]) -> Fingerprint {
        let (bits, levels) = levels(an.clone(), samples);
        Fingerprint {
            bits,
            loud: levels.iter().map(|&l| l >= an.floor).collect(),
            hop_ms: (an.p.hop as u32 * 1000) / RATE,
        }
    }

    /// Number of sub-fingerprints.
    pub fn len(&self) -> usize {
        self.bits.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bits.is_empty()
    }

    /// Milliseconds of loud (comparable) sub-fingerprints.
    pub fn loud_ms(&self) -> u64 {
        self.loud.iter().filter(|&&l| l).count() as u64 * u64::from(self.hop_ms)
    }
}

/// Sub-fingerprints and their levels ([`Framer::push`]).
fn levels(an: Arc<Analyzer>, samples: &[i16]) -> (Vec<u32>, Vec<f32>) {
    let (mut bits, mut levels) = (Vec::new(), Vec::new());
    Framer::new(an).push(samples, |_, b, level| {
        bits.push(b);
        levels.push(level);
        true
    });
    (bits, levels)
}

/// Why a recording cannot be a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FingerprintError {
    /// Nothing in it is louder than the silence floor.
    Silent,
    /// Too little loud audio for a query block to compare against.
    TooShort { loud_ms: u64, need_ms: u64 },
    /// Longer than a reference may be (one repetition of an announcement is
    /// enough; memory and time per call grow with the length).
    TooLong { ms: u64, max_ms: u64 },
}

impl fmt::Display for FingerprintError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FingerprintError::Silent => write!(f, "the recording is silent"),
            FingerprintError::TooShort { loud_ms, need_ms } => write!(
                f,
                "the recording has {loud_ms} ms of sound within any {} ms; at least {need_ms} ms are needed",
                Params::default().ms(QUERY)
            ),
            FingerprintError::TooLong { ms, max_ms } => {
                write!(f, "the recording is {ms} ms long; at most {max_ms} ms")
            }
        }
    }
}

impl std::error::Error for FingerprintError {}

/// A carrier announcement found in call audio.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Match {
    /// The reference's kind.
    pub kind: Announcement,
    /// The reference's name.
    pub name: String,
    /// Bit error rate of the best alignment (0 identical, 0.5 unrelated).
    pub ber: f32,
    /// Where in the reference the call audio was at `at_ms` (ms from the
    /// reference's start; past its end when the call ran past it).
    pub offset_ms: u64,
    /// Media time at which the match was established.
    pub at_ms: u64,
}

#[derive(Clone)]
struct Reference {
    kind: Announcement,
    name: String,
    /// The trunk whose network plays it; `None`: any trunk.
    trunk: Option<String>,
    bits: Vec<u32>,
    /// 1 for a loud sub-fingerprint, 0 for a quiet one.
    loud: Vec<u16>,
    duration_ms: u64,
}

/// The operator's carrier recordings, fingerprinted. Cloning is cheap (the
/// fingerprints are shared); adding to a clone copies them first.
#[derive(Clone)]
pub struct Library {
    an: Arc<Analyzer>,
    refs: Arc<Vec<Reference>>,
}

impl fmt::Debug for Library {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.refs.iter().map(|r| (r.kind, &r.name)))
            .finish()
    }
}

impl Default for Library {
    fn default() -> Self {
        Library::new()
    }
}

impl Library {
    /// An empty library.
    pub fn new() -> Library {
        Library::with_params(Params::default())
    }

    fn with_params(p: Params) -> Library {
        Library {
            an: Arc::new(Analyzer::new(p)),
            refs: Arc::new(Vec::new()),
        }
    }

    /// Add a recording (8 kHz mono; resample first) of an announcement of
    /// this kind, under a name to report and log. One repetition is enough:
    /// a call that joined it anywhere, or runs on into its next repetition,
    /// still lines up. Refused when it has no sound, when no 2 s of it hold
    /// 1 s of sound, or when it is longer than 60 s.
    pub fn add(
        &mut self,
        kind: Announcement,
        name: impl Into<String>,
        samples: &[i16],
    ) -> Result<(), FingerprintError> {
        self.add_for_trunk(kind, name, None, samples)
    }

    /// Like [`Library::add`], for a recording one carrier plays: with a trunk
    /// named, it is tried only on calls through that trunk
    /// ([`Library::for_trunk`]) — another carrier's network may play the same
    /// words for another state, or a similar jingle.
    pub fn add_for_trunk(
        &mut self,
        kind: Announcement,
        name: impl Into<String>,
        trunk: Option<&str>,
        samples: &[i16],
    ) -> Result<(), FingerprintError> {
        let p = self.an.p;
        let ms = samples.len() as u64 * 1000 / RATE as u64;
        if ms > MAX_REFERENCE_MS {
            return Err(FingerprintError::TooLong {
                ms,
                max_ms: MAX_REFERENCE_MS,
            });
        }
        let (bits, levels) = levels(self.an.clone(), samples);
        // A recording captured from a call carries the line's noise in its
        // pauses: that is silence too.
        let peak = levels.iter().fold(0f32, |m, &l| m.max(l));
        let floor = self
            .an
            .floor
            .max(peak * 10f32.powf(-REFERENCE_RANGE_DB / 10.0));
        let loud: Vec<u16> = levels.iter().map(|&l| u16::from(l >= floor)).collect();
        // The most loud sub-fingerprints any query block can line up with.
        let mut best = 0usize;
        let mut run = 0usize;
        for (i, &l) in loud.iter().enumerate() {
            run += usize::from(l);
            if i >= p.query {
                run -= usize::from(loud[i - p.query]);
            }
            best = best.max(run);
        }
        if best == 0 {
            return Err(FingerprintError::Silent);
        }
        if best < p.min_overlap {
            return Err(FingerprintError::TooShort {
                loud_ms: p.ms(best),
                need_ms: p.ms(p.min_overlap),
            });
        }
        Arc::make_mut(&mut self.refs).push(Reference {
            kind,
            name: name.into(),
            trunk: trunk.map(str::to_string),
            bits,
            loud,
            duration_ms: ms,
        });
        Ok(())
    }

    /// Number of references.
    pub fn len(&self) -> usize {
        self.refs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The references: kind, name and length in ms.
    pub fn references(&self) -> impl Iterator<Item = (Announcement, &str, u64)> + '_ {
        self.refs
            .iter()
            .map(|r| (r.kind, r.name.as_str(), r.duration_ms))
    }

    /// The trunks named by references, each once, in the order added.
    pub fn trunks(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for t in self.refs.iter().filter_map(|r| r.trunk.as_deref()) {
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out
    }

    /// The references tried on a call through `trunk` (`None`: the trunk is
    /// unknown, as for a call placed without a trunk pool): those for any
    /// trunk, and those recorded on this one. Cheap when no reference names
    /// a trunk (the library itself is shared).
    pub fn for_trunk(&self, trunk: Option<&str>) -> Library {
        if self.refs.iter().all(|r| r.trunk.is_none()) {
            return self.clone();
        }
        let refs = self
            .refs
            .iter()
            .filter(|r| r.trunk.is_none() || r.trunk.as_deref() == trunk)
            .cloned()
            .collect();
        Library {
            an: self.an.clone(),
            refs: Arc::new(refs),
        }
    }

    /// A streaming matcher for one call.
    pub fn matcher(&self) -> Matcher {
        Matcher::new(self)
    }

    /// Search a whole recording: the first match a [`Matcher`] fed it would
    /// return.
    pub fn find(&self, samples: &[i16]) -> Option<Match> {
        self.matcher().push(0, samples)
    }
}

/// Running error and comparison counts per alignment of one reference.
struct Track {
    err: Vec<u16>,
    cnt: Vec<u16>,
}

/// Streaming search of one call's audio against a [`Library`]: one per call,
/// from [`Library::matcher`] or [`Matcher::new`]. Cheap to make: it shares
/// the library's fingerprints and FFT plan, and holds a 256 ms window, a 2 s
/// query block and 4 bytes per reference sub-fingerprint.
pub struct Matcher {
    framer: Framer,
    search: Search,
    done: bool,
}

/// The alignment search behind a [`Matcher`].
struct Search {
    lib: Library,
    /// The query block: the last `query` sub-fingerprints.
    q: VecDeque<(u32, bool)>,
    /// Index of the next sub-fingerprint.
    t: usize,
    tracks: Vec<Track>,
    since_scan: usize,
    best: Option<f32>,
    #[cfg(test)]
    trace: Vec<Scan>,
}

#[cfg(test)]
#[derive(Debug, Clone, Copy)]
struct Scan {
    /// Index of the query's last sub-fingerprint.
    t: usize,
    ber: f32,
    reference: usize,
}

impl Matcher {
    /// A matcher listening for `lib`'s references.
    pub fn new(lib: &Library) -> Matcher {
        let p = lib.an.p;
        let tracks = lib
            .refs
            .iter()
            .map(|r| Track {
                err: vec![0; r.bits.len() + p.query],
                cnt: vec![0; r.bits.len() + p.query],
            })
            .collect();
        Matcher {
            framer: Framer::new(lib.an.clone()),
            search: Search {
                lib: lib.clone(),
                q: VecDeque::with_capacity(p.query),
                t: 0,
                tracks,
                since_scan: 0,
                best: None,
                #[cfg(test)]
                trace: Vec::new(),
            },
            done: false,
        }
    }

    /// The lowest bit error rate seen so far at any alignment of any
    /// reference (for logs and tuning).
    pub fn best_ber(&self) -> Option<f32> {
        self.search.best
    }

    /// A match was returned: the matcher does nothing more.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The call's next audio (8 kHz, any length, following what came
    /// before), `at_ms` the media time of its first sample. Returns the match
    /// once, as soon as one is established, stamped with the media time of
    /// the sample that completed it; after that the matcher ignores its input.
    pub fn push(&mut self, at_ms: u64, frame: &[i16]) -> Option<Match> {
        if self.done || self.search.lib.refs.is_empty() {
            return None;
        }
        let mut found = None;
        let search = &mut self.search;
        self.framer.push(frame, |i, bits, level| {
            let loud = level >= search.lib.an.floor;
            let Some((r, ber, r_last)) = search.add(bits, loud) else {
                return true;
            };
            let p = search.lib.an.p;
            let reference = &search.lib.refs[r];
            found = Some(Match {
                kind: reference.kind,
                name: reference.name.clone(),
                ber,
                offset_ms: ((r_last + 1) * p.hop + p.window) as u64 * 1000 / RATE as u64,
                at_ms: at_ms.saturating_add((i as u64 + 1) * 1000 / RATE as u64),
            });
            false
        });
        self.done = found.is_some();
        found
    }
}

impl Search {
    /// One sub-fingerprint of the call; on a match, the reference, the bit
    /// error rate and the reference's sub-fingerprint aligned with this one.
    fn add(&mut self, bits: u32, loud: bool) -> Option<(usize, f32, usize)> {
        let p = self.lib.an.p;
        let t = self.t;
        if self.q.len() == p.query {
            let (old, old_loud) = self.q.pop_front().expect("full");
            if old_loud {
                self.accumulate(t - p.query, old, false);
            }
        }
        if loud {
            self.accumulate(t, bits, true);
        }
        self.q.push_back((bits, loud));
        self.t += 1;
        self.since_scan += 1;
        if self.since_scan < p.scan_every {
            return None;
        }
        self.since_scan = 0;
        self.scan()
    }
    /// Add (or take away) query sub-fingerprint `t` against every sub-fingerprint
    /// `r` of every reference: alignment `r - t` lives in slot `(r - t) mod D`.
    fn accumulate(&mut self, t: usize, q: u32, add: bool) {
        for (track, reference) in self.tracks.iter_mut().zip(self.lib.refs.iter()) {
            let d = track.err.len();
            let base = (d - t % d) % d;
            let split = (d - base).min(reference.bits.len());
            let (head_bits, tail_bits) = reference.bits.split_at(split);
            let (head_loud, tail_loud) = reference.loud.split_at(split);
            let (tail_err, head_err) = track.err.split_at_mut(base);
            let (tail_cnt, head_cnt) = track.cnt.split_at_mut(base);
            let parts = [
                (head_bits, head_loud, head_err, head_cnt),
                (tail_bits, tail_loud, tail_err, tail_cnt),
            ];
            for (bits, loud, err, cnt) in parts {
                let it = bits
                    .iter()
                    .zip(loud)
                    .zip(err.iter_mut().zip(cnt.iter_mut()));
                if add {
                    for ((&b, &l), (e, c)) in it {
                        *e += (b ^ q).count_ones() as u16 * l;
                        *c += l;
                    }
                } else {
                    for ((&b, &l), (e, c)) in it {
                        *e -= (b ^ q).count_ones() as u16 * l;
                        *c -= l;
                    }
                }
            }
        }
    }

    /// The best alignment over all references: a match if under the
    /// threshold and clearly better than every reference of another kind.
    /// Rivals need only half the overlap: a recording whose shared prefix
    /// has a few more quiet windows must not drop out of the comparison.
    fn scan(&mut self) -> Option<(usize, f32, usize)> {
        let p = self.lib.an.p;
        let min = p.min_overlap as u16;
        let min_rival = min / 2;
        // Per reference: its best (bit error rate, slot), and its best bit
        // error rate as a rival.
        let mut per = Vec::with_capacity(self.tracks.len());
        for track in &self.tracks {
            let mut best: Option<(f32, usize)> = None;
            let mut rival = 1f32;
            for (slot, (&e, &c)) in track.err.iter().zip(&track.cnt).enumerate() {
                if c < min_rival {
                    continue;
                }
                let ber = f32::from(e) / (32.0 * f32::from(c));
                rival = rival.min(ber);
                if c >= min && best.is_none_or(|b| ber < b.0) {
                    best = Some((ber, slot));
                }
            }
            per.push((best, rival));
        }
        let (r, (ber, slot)) = per
            .iter()
            .enumerate()
            .filter_map(|(r, b)| b.0.map(|b| (r, b)))
            .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))?;
        let kind = self.lib.refs[r].kind;
        let rival = per
            .iter()
            .zip(self.lib.refs.iter())
            .filter(|(_, reference)| reference.kind != kind)
            .map(|(b, _)| b.1)
            .fold(1f32, f32::min);
        self.best = Some(self.best.map_or(ber, |b| b.min(ber)));
        let t_last = self.t - 1;
        #[cfg(test)]
        self.trace.push(Scan {
            t: t_last,
            ber,
            reference: r,
        });
        let d = self.tracks[r].err.len();
        let r_last = (slot + t_last) % d;
        (ber < p.threshold && rival - ber >= LEAD).then_some((r, ber, r_last))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use waihu_audio::g711::Law;

    /// splitmix64: a small deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in [0, 1).
        fn f(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32
        }
        fn range(&mut self, lo: f32, hi: f32) -> f32 {
            lo + (hi - lo) * self.f()
        }
        fn int(&mut self, lo: u64, hi: u64) -> u64 {
            lo + self.next() % (hi - lo + 1)
        }
        /// Roughly normal, unit variance.
        fn gauss(&mut self) -> f32 {
            (0..4).map(|_| self.f()).sum::<f32>() * 3f32.sqrt() - 2.0 * 3f32.sqrt()
        }
    }

    /// A two-pole resonator.
    #[derive(Default)]
    struct Reson {
        y1: f32,
        y2: f32,
    }

    impl Reson {
        /// Klatt's resonator: unity gain at 0 Hz, a peak at `hz`.
        fn step(&mut self, x: f32, hz: f32, bw: f32) -> f32 {
            let r = (-std::f32::consts::PI * bw / RATE as f32).exp();
            let b = 2.0 * r * (2.0 * std::f32::consts::PI * hz / RATE as f32).cos();
            let c = -r * r;
            let y = (1.0 - b - c) * x + b * self.y1 + c * self.y2;
            self.y2 = self.y1;
            self.y1 = y;
            y
        }
    }

    /// A speech-like recording: words of syllables, each a glottal pulse train
    /// with a gliding pitch through three gliding formants, some led by a
    /// fricative; pauses between words; 150 ms of digital silence at the
    /// start and the end. Peak about -8 dBFS.
    pub(crate) fn speech(seed: u64, ms: u64) -> Vec<i16> {
        let mut rng = Rng(seed.wrapping_mul(0x1234_5678_9ABC_DEF1) ^ 0xA5A5);
        let n = (ms * 8) as usize;
        let body = n - 8 * 150;
        let mut out = vec![0f32; 8 * 150];
        let (mut f1, mut f2, mut f3) = (Reson::default(), Reson::default(), Reson::default());
        let mut fric = Reson::default();
        let mut phase = 0f32;
        let mut lp = 0f32;
        while out.len() < body {
            let syllables = rng.int(2, 4);
            for _ in 0..syllables {
                if rng.f() < 0.35 {
                    let len = rng.int(40, 120) as usize * 8;
                    let hz = rng.range(2200.0, 3300.0);
                    let amp = rng.range(0.15, 0.4);
                    for i in 0..len {
                        let env = (i as f32 / len as f32 * std::f32::consts::PI).sin();
                        out.push(amp * env * fric.step(rng.gauss(), hz, 400.0) * 0.3);
                    }
                }
                let len = rng.int(120, 260) as usize * 8;
                let (p0, p1) = {
                    let p0 = rng.range(110.0, 230.0);
                    (p0, p0 * rng.range(0.75, 1.3))
                };
                let a = [
                    rng.range(300.0, 850.0),
                    rng.range(850.0, 2300.0),
                    rng.range(2300.0, 3200.0),
                ];
                let b = [
                    rng.range(300.0, 850.0),
                    rng.range(850.0, 2300.0),
                    rng.range(2300.0, 3200.0),
                ];
                let amp = rng.range(0.5, 1.0);
                for i in 0..len {
                    let u = i as f32 / len as f32;
                    let f0 = p0 + (p1 - p0) * u;
                    phase += f0 / RATE as f32;
                    let pulse = if phase >= 1.0 {
                        phase -= 1.0;
                        1.0
                    } else {
                        0.0
                    };
                    // Glottal roll-off, plus a little breath.
                    lp = 0.9 * lp + pulse + 0.02 * rng.gauss();
                    let env = (u * len as f32 / 160.0).min(1.0)
                        * ((1.0 - u) * len as f32 / 240.0).min(1.0);
                    let x = f1.step(lp, a[0] + (b[0] - a[0]) * u, 90.0);
                    let x = f2.step(x, a[1] + (b[1] - a[1]) * u, 110.0);
                    let x = f3.step(x, a[2] + (b[2] - a[2]) * u, 160.0);
                    out.push(amp * env * x);
                }
                let gap = rng.int(10, 60) as usize * 8;
                out.extend(std::iter::repeat_n(0.0, gap));
            }
            let pause = rng.int(150, 350) as usize * 8;
            out.extend(std::iter::repeat_n(0.0, pause));
        }
        out.truncate(body);
        out.resize(n, 0.0);
        let peak = out.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-9);
        out.iter().map(|x| (x / peak * 13000.0) as i16).collect()
    }

    /// RBJ biquad.
    struct Biquad {
        b: [f32; 3],
        a: [f32; 2],
        z: [f32; 2],
    }

    impl Biquad {
        fn new(hz: f32, high: bool) -> Biquad {
            let w = 2.0 * std::f32::consts::PI * hz / RATE as f32;
            let alpha = w.sin() / (2.0 * std::f32::consts::FRAC_1_SQRT_2);
            let c = w.cos();
            let a0 = 1.0 + alpha;
            let b = if high {
                [(1.0 + c) / 2.0, -(1.0 + c), (1.0 + c) / 2.0]
            } else {
                [(1.0 - c) / 2.0, 1.0 - c, (1.0 - c) / 2.0]
            };
            Biquad {
                b: [b[0] / a0, b[1] / a0, b[2] / a0],
                a: [-2.0 * c / a0, (1.0 - alpha) / a0],
                z: [0.0; 2],
            }
        }
        fn step(&mut self, x: f32) -> f32 {
            let y = self.b[0] * x + self.z[0];
            self.z[0] = self.b[1] * x - self.a[0] * y + self.z[1];
            self.z[1] = self.b[2] * x - self.a[1] * y;
            y
        }
    }

    /// Mean power over the 20 ms frames with sound in them.
    fn active_power(x: &[f32]) -> f32 {
        let frames: Vec<f32> = x
            .chunks(160)
            .map(|c| c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32)
            .filter(|&p| p > 1.0)
            .collect();
        frames.iter().sum::<f32>() / frames.len().max(1) as f32
    }

    /// The line: gain, a 300–3400 Hz telephone band, white noise at `snr_db`
    /// below the active level (none if infinite), G.711 μ-law.
    pub(crate) fn line(x: &[i16], gain: f32, snr_db: f32, seed: u64) -> Vec<i16> {
        let mut hp = Biquad::new(300.0, true);
        let mut lp = Biquad::new(3400.0, false);
        let y: Vec<f32> = x
            .iter()
            .map(|&s| lp.step(hp.step(f32::from(s) * gain)))
            .collect();
        let sigma = if snr_db.is_finite() {
            (active_power(&y) / 10f32.powf(snr_db / 10.0)).sqrt()
        } else {
            0.0
        };
        let mut rng = Rng(seed);
        let pcm: Vec<i16> = y
            .iter()
            .map(|&s| (s + sigma * rng.gauss()).clamp(-32768.0, 32767.0) as i16)
            .collect();
        let mut codes = Vec::new();
        Law::Ulaw.encode(&pcm, &mut codes);
        let mut out = Vec::new();
        Law::Ulaw.decode(&codes, &mut out);
        out
    }

    fn noise(ms: u64, rms: f32, seed: u64) -> Vec<i16> {
        let mut rng = Rng(seed);
        (0..ms * 8)
            .map(|_| (rms * rng.gauss()).clamp(-32768.0, 32767.0) as i16)
            .collect()
    }

    pub(crate) fn tone(hz: f32, ms: u64, amp: f32) -> Vec<i16> {
        (0..ms * 8)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * hz * i as f32 / 8000.0).sin()) as i16)
            .collect()
    }

    const KINDS: [Announcement; 5] = [
        Announcement::Vacant,
        Announcement::Suspended,
        Announcement::PoweredOff,
        Announcement::Unreachable,
        Announcement::Busy,
    ];

    /// The five references: (kind, name, audio).
    pub(crate) fn references() -> Vec<(Announcement, String, Vec<i16>)> {
        KINDS
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let ms = [3200, 4100, 5000, 5900, 3600][i];
                (k, format!("carrier-{}", k.name()), speech(i as u64 + 1, ms))
            })
            .collect()
    }

    pub(crate) fn library_with(p: Params) -> Library {
        let mut lib = Library::with_params(p);
        for (k, name, audio) in references() {
            lib.add(k, name, &audio).unwrap();
        }
        lib
    }

    /// A call: `lead_ms` of lead-in (digital silence, or line noise when
    /// `noisy_lead`), then the reference from `offset` samples on, through the
    /// line.
    struct Call {
        audio: Vec<i16>,
        lead_ms: u64,
        offset_ms: f32,
    }

    fn call(reference: &[i16], seed: u64, gain: f32, noisy_lead: bool) -> Call {
        let mut rng = Rng(seed);
        let lead_ms = rng.int(100, 500);
        let max = reference.len() - 8 * 2500;
        let offset = rng.int(0, max as u64) as usize;
        let mut audio = vec![0i16; lead_ms as usize * 8];
        audio.extend_from_slice(&reference[offset..]);
        let mut out = line(&audio, gain, 15.0, seed ^ 0xFEED);
        if !noisy_lead {
            for s in &mut out[..lead_ms as usize * 8] {
                *s = 0;
            }
        }
        Call {
            audio: out,
            lead_ms,
            offset_ms: offset as f32 / 8.0,
        }
    }

    /// The other signals: none of them is in the library.
    fn strangers() -> Vec<(String, Vec<i16>)> {
        let mut out = Vec::new();
        for s in 0..8 {
            out.push((
                format!("speech {s}"),
                line(&speech(100 + s, 5000), 1.0, 15.0, s),
            ));
            out.push((format!("clean speech {s}"), speech(200 + s, 5000)));
        }
        out.push((
            "white noise".into(),
            line(&noise(5000, 3000.0, 7), 1.0, f32::INFINITY, 1),
        ));
        out.push((
            "quiet noise".into(),
            line(&noise(5000, 30.0, 8), 1.0, f32::INFINITY, 1),
        ));
        out.push(("silence".into(), vec![0; 8 * 5000]));
        out.push((
            "tone".into(),
            line(&tone(1000.0, 5000, 8000.0), 1.0, 30.0, 2),
        ));
        let mut sit = Vec::new();
        for _ in 0..3 {
            sit.extend(tone(985.2, 380, 8000.0));
            sit.extend(tone(1428.5, 274, 8000.0));
            sit.extend(tone(1776.7, 380, 8000.0));
            sit.extend(vec![0; 8 * 600]);
        }
        out.push(("sit".into(), line(&sit, 1.0, 30.0, 3)));
        let mut ring = Vec::new();
        for _ in 0..2 {
            // Chinese ringback: 450 Hz, 1 s on, 4 s off.
            ring.extend(tone(450.0, 1000, 6000.0));
            ring.extend(vec![0; 8 * 1500]);
        }
        out.push(("ringback".into(), line(&ring, 1.0, 30.0, 4)));
        out
    }

    fn pct(v: &mut [f32], q: f32) -> f32 {
        v.sort_by(|a, b| a.total_cmp(b));
        v.get(((v.len().max(1) - 1) as f32 * q).round() as usize)
            .copied()
            .unwrap_or(f32::NAN)
    }

    /// The test calls: every reference, at 0.3× and 2×, after digital silence
    /// and after line noise, from four random offsets each.
    fn calls() -> Vec<(usize, Call)> {
        let refs = references();
        let mut out = Vec::new();
        for (r, (_, _, audio)) in refs.iter().enumerate() {
            for k in 0..8u64 {
                let gain = if k % 2 == 0 { 0.3 } else { 2.0 };
                out.push((r, call(audio, 1000 * r as u64 + k, gain, k % 4 >= 2)));
            }
        }
        out
    }

    /// Every scan's best bit error rate and reference, with matching off.
    fn trace_of(lib: &Library, audio: &[i16]) -> Vec<Scan> {
        let mut m = lib.matcher();
        for (i, f) in audio.chunks(160).enumerate() {
            m.push(i as u64 * 20, f);
        }
        m.search.trace
    }

    /// Bit error rates of the true alignment over whole query blocks inside
    /// the announcement, and the lowest of any alignment of audio that is in
    /// no reference: the evidence for the threshold.
    fn figures(p: Params) -> (Vec<f32>, f32, String) {
        let lib = library_with(Params {
            threshold: 0.0,
            ..p
        });
        let mut full = Vec::new();
        for (r, c) in calls() {
            let first = (c.lead_ms as usize * 8 + p.window) / p.hop + p.query;
            for s in trace_of(&lib, &c.audio).iter().filter(|s| s.t >= first) {
                // A block won by another reference counts as a miss.
                full.push(if s.reference == r { s.ber } else { 0.5 });
            }
        }
        let mut best_false = 1f32;
        let mut who = String::new();
        for (name, audio) in strangers() {
            for s in trace_of(&lib, &audio) {
                if s.ber < best_false {
                    best_false = s.ber;
                    who = name.clone();
                }
            }
        }
        (full, best_false, who)
    }

    #[test]
    fn true_and_false_bit_error_rates() {
        let p = Params::default();
        let (mut full, best_false, who) = figures(p);
        let lib = library_with(p);
        let mut at_match = Vec::new();
        let mut latency = Vec::new();
        for (_, c) in calls() {
            let m = lib.find(&c.audio).expect("found");
            at_match.push(m.ber);
            latency.push((m.at_ms - c.lead_ms) as f32);
        }
        eprintln!(
            "true alignment, whole 2 s blocks: BER min {:.3} median {:.3} p95 {:.3} max {:.3} ({} blocks); \
             at the match: median {:.3} max {:.3}; audio in no reference: lowest BER {best_false:.3} ({who}); \
             latency after the announcement began: median {} ms, max {} ms",
            pct(&mut full, 0.0),
            pct(&mut full, 0.5),
            pct(&mut full, 0.95),
            pct(&mut full, 1.0),
            full.len(),
            pct(&mut at_match, 0.5),
            pct(&mut at_match, 1.0),
            pct(&mut latency, 0.5),
            pct(&mut latency, 1.0),
        );
        assert!(pct(&mut full, 1.0) < THRESHOLD - 0.05);
        assert!(best_false > THRESHOLD + 0.08);
    }

    /// How the parameters were chosen: `cargo test --release -p waihu-amd
    /// sweep -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sweep() {
        for (window, hop, log) in [
            (2048, 64, false),
            (2048, 64, true),
            (2048, 128, false),
            (2048, 128, true),
            (1024, 64, false),
            (1024, 32, false),
        ] {
            for (query_ms, min_ms) in [(1500, 750), (2000, 1000), (2000, 1500)] {
                let per = hop / 8;
                let p = Params {
                    window,
                    hop,
                    log,
                    query: query_ms / per,
                    min_overlap: min_ms / per,
                    ..Params::default()
                };
                let (mut full, best_false, who) = figures(p);
                let lib = library_with(p);
                let mut latency = Vec::new();
                for (_, c) in calls() {
                    if let Some(m) = lib.find(&c.audio) {
                        latency.push((m.at_ms - c.lead_ms) as f32);
                    }
                }
                eprintln!(
                    "window {window} hop {hop} log {log} block {query_ms} ms min {min_ms} ms: \
                     true BER median {:.3} max {:.3}; lowest non-match {best_false:.3} ({who}); \
                     found {} of 40, latency max {} ms",
                    pct(&mut full, 0.5),
                    pct(&mut full, 1.0),
                    latency.len(),
                    pct(&mut latency, 1.0),
                );
            }
        }
    }

    /// The tail of the non-match distribution on many more strangers:
    /// `cargo test --release -p waihu-amd many_strangers -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn many_strangers() {
        let lib = library_with(Params {
            threshold: 0.0,
            ..Params::default()
        });
        let mut lows = Vec::new();
        for s in 0..300u64 {
            let gain = [0.3, 1.0, 2.0][s as usize % 3];
            let audio = line(&speech(1000 + s, 5000), gain, 15.0, s);
            let low = trace_of(&lib, &audio)
                .iter()
                .map(|x| x.ber)
                .fold(1f32, f32::min);
            lows.push(low);
        }
        eprintln!(
            "lowest BER per 5 s stranger over 300: min {:.3} p1 {:.3} median {:.3}",
            pct(&mut lows, 0.0),
            pct(&mut lows, 0.01),
            pct(&mut lows, 0.5)
        );
    }

    #[test]
    fn each_reference_is_found_through_the_line() {
        let refs = references();
        let lib = library_with(Params::default());
        assert_eq!(lib.len(), 5);
        for (r, c) in calls() {
            let (kind, name, _) = &refs[r];
            let m = lib.find(&c.audio).expect("found");
            assert_eq!((m.kind, &m.name), (*kind, name), "{m:?}");
            // Where the reference was when the match was made.
            let want = c.offset_ms + (m.at_ms - c.lead_ms) as f32;
            assert!(
                (m.offset_ms as f32 - want).abs() <= 40.0,
                "{m:?}: the reference was at {want} ms"
            );
            assert!(m.ber < THRESHOLD);
        }
    }

    #[test]
    fn references_captured_from_calls_work_too() {
        // The operator recorded the announcements off calls: line noise in
        // the pauses at 30 dB below loud speech, above the -55 dBFS floor.
        let mut lib = Library::new();
        for (i, (kind, name, audio)) in references().iter().enumerate() {
            let captured = line(audio, 2.0, 30.0, 77 + i as u64);
            lib.add(*kind, name.clone(), &captured).unwrap();
        }
        for (r, c) in calls() {
            let m = lib.find(&c.audio).expect("found");
            assert_eq!(m.kind, references()[r].0, "{m:?}");
            assert!(m.at_ms - c.lead_ms <= 2500, "{m:?}");
        }
    }

    #[test]
    fn the_silence_floor_is_minus_55_dbfs_in_band() {
        // RMS = 32768 × 10^(dBFS / 20), amplitude √2 × that.
        let sine = |dbfs: f32| {
            tone(
                1000.0,
                1000,
                32768.0 * 10f32.powf(dbfs / 20.0) * 2f32.sqrt(),
            )
        };
        assert!(Fingerprint::of(&sine(-53.0)).loud.iter().all(|&l| l));
        assert!(Fingerprint::of(&sine(-57.0)).loud.iter().all(|&l| !l));
        // Out of band (a 100 Hz hum) is quiet however loud.
        let hum = tone(100.0, 1000, 10_000.0);
        assert!(Fingerprint::of(&hum).loud.iter().all(|&l| !l));
    }

    #[test]
    fn a_recording_tagged_with_a_trunk_is_tried_only_on_that_trunk() {
        // Carrier A's 停机 recording and carrier B's 空号 recording are the
        // same audio (a shared jingle): each trunk's call names its own state.
        let refs = references();
        let (_, _, audio) = &refs[0];
        let mut lib = Library::new();
        let (a, b) = (Announcement::Suspended, Announcement::Vacant);
        lib.add_for_trunk(a, "cmcc-停机", Some("cmcc"), audio)
            .unwrap();
        lib.add_for_trunk(b, "cu-空号", Some("unicom"), audio)
            .unwrap();
        assert_eq!(lib.trunks(), vec!["cmcc", "unicom"]);
        let heard = call(audio, 7, 2.0, true).audio;
        let on = |t: Option<&str>| lib.for_trunk(t).find(&heard).map(|m| m.name);
        assert_eq!(on(Some("cmcc")).as_deref(), Some("cmcc-停机"));
        assert_eq!(on(Some("unicom")).as_deref(), Some("cu-空号"));
        // Another trunk, or none known: neither carrier's recording applies.
        assert_eq!(on(Some("telecom")), None);
        assert_eq!(on(None), None);
        // A recording for any trunk is tried everywhere, beside a trunk's own.
        let (k, name, other) = &refs[1];
        lib.add(*k, name.clone(), other).unwrap();
        let heard = call(other, 8, 0.3, false).audio;
        for t in [Some("cmcc"), Some("telecom"), None] {
            let m = lib.for_trunk(t).find(&heard);
            assert_eq!(m.map(|m| m.kind), Some(*k), "{t:?}");
        }
        assert_eq!(lib.for_trunk(Some("cmcc")).len(), 2);
        assert_eq!(lib.len(), 3);
    }

    #[test]
    fn other_sounds_are_not_found() {
        let lib = library_with(Params::default());
        for (name, audio) in strangers() {
            let m = lib.find(&audio);
            assert!(m.is_none(), "{name}: {m:?}");
        }
        assert_eq!(lib.find(&[]), None);
        assert_eq!(lib.find(&[0; 8 * 20_000]), None);
        // Silence is never compared at all.
        let mut m = lib.matcher();
        m.push(0, &[0; 8 * 10_000]);
        assert_eq!(m.best_ber(), None);
    }

    #[test]
    fn streaming_decides_within_2_5_s_and_agrees_with_find() {
        let lib = library_with(Params::default());
        for (_, c) in calls() {
            let want = lib.find(&c.audio).expect("found");
            for frame in [160, 80, 2000] {
                let mut m = lib.matcher();
                let mut got = Vec::new();
                for (i, f) in c.audio.chunks(frame).enumerate() {
                    got.extend(m.push((i * frame / 8) as u64, f));
                }
                assert_eq!(got, vec![want.clone()], "frames of {frame}");
                assert!(m.is_done());
            }
            assert!(want.at_ms - c.lead_ms <= 2500, "{want:?}");
        }
    }

    #[test]
    fn recordings_sharing_a_prefix_wait_for_the_words_that_differ() {
        // Carriers splice "您拨打的电话…" in front of each announcement.
        let prefix = speech(50, 1800);
        let tails = [speech(51, 2500), speech(52, 2500)];
        let kinds = [Announcement::Vacant, Announcement::PoweredOff];
        let mut lib = Library::new();
        let recordings: Vec<Vec<i16>> = tails.iter().map(|t| [&prefix[..], t].concat()).collect();
        for (k, rec) in kinds.iter().zip(&recordings) {
            lib.add(*k, k.name(), rec).unwrap();
        }
        let mut latest = 0;
        for (i, (k, rec)) in kinds.iter().zip(&recordings).enumerate() {
            for (j, gain) in [0.3, 1.0, 2.0].into_iter().enumerate() {
                for lead in [100, 300, 500] {
                    let audio = [&vec![0; 8 * lead][..], rec].concat();
                    let audio = line(&audio, gain, 15.0, (10 * i + j) as u64 + lead as u64);
                    let m = lib.find(&audio).expect("found");
                    assert_eq!(m.kind, *k, "{m:?}");
                    // The tails' speech begins at 1950 ms.
                    assert!(m.at_ms >= lead as u64 + 1800, "{m:?}");
                    latest = latest.max(m.at_ms.saturating_sub(lead as u64 + 1950));
                }
            }
        }
        eprintln!("shared prefix: decided at most {latest} ms after the words that differ");
    }

    #[test]
    fn references_must_hold_enough_sound() {
        let mut lib = Library::new();
        assert_eq!(
            lib.add(Announcement::Busy, "x", &[0; 8 * 5000]),
            Err(FingerprintError::Silent)
        );
        assert_eq!(
            lib.add(Announcement::Busy, "x", &[]),
            Err(FingerprintError::Silent)
        );
        assert!(matches!(
            lib.add(Announcement::Busy, "x", &speech(9, 900)),
            Err(FingerprintError::TooShort { need_ms: 992, .. })
        ));
        assert!(matches!(
            lib.add(Announcement::Busy, "x", &vec![1000; 8 * 61_000]),
            Err(FingerprintError::TooLong { .. })
        ));
        assert!(lib.is_empty());
        lib.add(Announcement::Busy, "busy", &speech(9, 3000))
            .unwrap();
        // Clones share; adding to one leaves the other as it was.
        let mut other = lib.clone();
        other
            .add(Announcement::Vacant, "vacant", &speech(10, 3000))
            .unwrap();
        assert_eq!((lib.len(), other.len()), (1, 2));
        let names: Vec<_> = other
            .references()
            .map(|(k, n, _)| (k, n.to_string()))
            .collect();
        assert_eq!(names[1], (Announcement::Vacant, "vacant".to_string()));
        assert!(FingerprintError::Silent.to_string().contains("silent"));
    }

    #[test]
    fn one_library_serves_every_call_task() {
        fn shared<T: Send + Sync>() {}
        shared::<Library>();
        shared::<Matcher>();
        shared::<Match>();
    }

    #[test]
    fn fingerprints_are_deterministic_and_silence_is_quiet() {
        let a = speech(3, 3000);
        let fp = Fingerprint::of(&a);
        assert_eq!(fp, Fingerprint::of(&a));
        assert_eq!(fp.hop_ms, HOP_MS);
        assert_eq!(fp.len(), (a.len() - WINDOW) / HOP);
        assert!(fp.loud_ms() > 2000, "{}", fp.loud_ms());
        let quiet = Fingerprint::of(&[0; 8 * 2000]);
        assert!(!quiet.is_empty() && quiet.loud.iter().all(|&l| !l));
        assert!(Fingerprint::of(&[5; 100]).is_empty());
    }

    /// CPU per second of call audio (a timing print, not an assertion; the
    /// fastest of three runs).
    #[test]
    fn cost() {
        if cfg!(debug_assertions) {
            // Timings mean something optimised only (`cargo test --release`).
            return;
        }
        let audio: Vec<i16> = (0..12)
            .flat_map(|s| line(&speech(300 + s, 5000), 1.0, 15.0, s))
            .collect();
        let secs = audio.len() as f64 / RATE as f64;
        let lib = library_with(Params::default());
        let ref_secs: f64 = lib.references().map(|(_, _, ms)| ms as f64 / 1000.0).sum();
        let fastest = |f: &mut dyn FnMut()| {
            (0..3)
                .map(|_| {
                    let t = std::time::Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .fold(f64::MAX, f64::min)
        };
        let mut fp = Fingerprint::of(&[]);
        let front = fastest(&mut || fp = Fingerprint::of(&audio));
        let search = fastest(&mut || {
            let mut m = lib.matcher();
            for (&b, &l) in fp.bits.iter().zip(&fp.loud) {
                assert_eq!(m.search.add(b, l), None);
            }
        });
        let whole = fastest(&mut || {
            let mut m = lib.matcher();
            for (i, f) in audio.chunks(160).enumerate() {
                assert_eq!(m.push(i as u64 * 20, f), None);
            }
        });
        eprintln!(
            "cost per second of audio: front end {:.0} µs; search {:.0} µs per reference \
             ({:.1} s on average; {:.1} µs per second of reference); \
             a matcher with the {} references, in 20 ms frames, {:.0} µs",
            front / secs * 1e6,
            search / secs / lib.len() as f64 * 1e6,
            ref_secs / lib.len() as f64,
            search / secs / ref_secs * 1e6,
            lib.len(),
            whole / secs * 1e6,
        );
    }

    fn shared() -> &'static Library {
        static LIB: std::sync::OnceLock<Library> = std::sync::OnceLock::new();
        LIB.get_or_init(|| library_with(Params::default()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        #[test]
        fn any_audio_is_safe(
            samples in proptest::collection::vec(proptest::num::i16::ANY, 0..24_000),
            frame in 1usize..400,
            at in proptest::num::u64::ANY,
        ) {
            let fp = Fingerprint::of(&samples);
            proptest::prop_assert_eq!(fp.bits.len(), fp.loud.len());
            let lib = shared();
            let found = lib.find(&samples);
            let mut m = lib.matcher();
            let mut got = None;
            for (i, f) in samples.chunks(frame).enumerate() {
                if let Some(x) = m.push(at.saturating_add(i as u64 * 20), f) {
                    proptest::prop_assert!(got.is_none());
                    got = Some(x);
                }
            }
            proptest::prop_assert_eq!(found.is_some(), got.is_some());
            let _ = Library::new().find(&samples);
        }
    }
}
