//! Who answered: a person, an answering machine, a carrier announcement, or
//! nobody. A sans-IO core fed 20 ms frames of 8 kHz call audio and, when an
//! ASR runs beside it, the words it hears — each stamped with media time
//! since answer (or since early media began). It never reads a clock.
//!
//! Acoustic evidence (after the classic AMD of Asterisk's `app_amd`, with
//! tones added):
//! - **greeting length and cadence**: a person answers with a short "喂？" /
//!   "Hello?" and waits; a machine talks on. A first utterance (words joined
//!   across pauses under 700 ms) shorter than 2 s and followed by 600 ms of
//!   silence is a person; one still going at 2 s is a machine. (Asterisk's
//!   `app_amd` uses 1.5 s and 800 ms; on `waihu bench amd`'s synthetic
//!   greetings 1.5 s called two thirds of the people machines.)
//! - **beep**: a narrowband tone (one Goertzel bin holding most of a frame's
//!   energy, steady for ≥ 120 ms, 400–2500 Hz) followed by quiet is a
//!   voicemail beep; its time is kept so the bot can speak after it.
//! - **SIT**: the three rising special-information tones (≈914/985,
//!   1371/1429, 1777 Hz) back to back are a network announcement. North
//!   American networks encode why the call failed in the first two segments'
//!   pitch and length ([`SitCode`]): an intercept or vacant-code SIT names a
//!   dead number before any word of the recording is understood.
//! - nothing voiced for 3 s is silence.
//! - **fingerprints** (optional, [`Amd::with_fingerprints`]): the operator's
//!   recordings of their carriers' announcements, recognised in the audio by
//!   [`fingerprint`] within about 1.5 s of the recording starting to play. A
//!   match names the kind for certain: it overrides every other decision
//!   (greeting, beep, SIT, announcement words of another kind) and nothing
//!   revises it.
//!
//! Textual evidence overrides: announcement words ([`announce::classify`])
//! make it an announcement of that kind; voicemail words ("请在提示音后留言",
//! "leave a message") a machine. A decision can be revised by later evidence
//! (a beep, words); [`Amd::push_audio`] and [`Amd::push_text`] return the
//! decision whenever it is new or changed.
//!
//! ```
//! use waihu_amd::{Amd, Verdict};
//! let mut amd = Amd::new().unwrap();
//! let silence = [0i16; 160];
//! let mut t = 0;
//! let d = loop {
//!     if let Some(d) = amd.push_audio(t, &silence) { break d; }
//!     t += 20;
//! };
//! assert_eq!(d.verdict, Verdict::Silence);
//! ```

pub mod announce;
pub mod fingerprint;

use serde::Serialize;
use waihu_audio::goertzel::goertzel_power;
use waihu_audio::vad::{frame_dbfs, Aggressiveness, Vad, VadError, WebRtcVad};

pub use announce::{Announcement, RetryAdvice};
pub use fingerprint::{Fingerprint, FingerprintError, Library, Match, Matcher};

pub const RATE: u32 = 8000;
pub const FRAME: usize = 160;
const FRAME_MS: u64 = 20;

/// Thresholds, in ms unless named otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// No voice for this long after answer: silence.
    pub initial_silence: u64,
    /// A first utterance still going after this long: a machine.
    pub max_greeting: u64,
    /// Quiet after a short first utterance that makes it a person.
    pub after_greeting_silence: u64,
    /// Pauses shorter than this stay inside one utterance.
    pub max_pause: u64,
    /// Shortest voiced run that counts as a word.
    pub min_word: u64,
    /// Give up and take the best guess here.
    pub max_analysis: u64,
    /// Frames quieter than this (dBFS) are silence whatever the VAD says.
    pub floor_dbfs: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            initial_silence: 3000,
            max_greeting: 2000,
            after_greeting_silence: 600,
            max_pause: 700,
            min_word: 100,
            max_analysis: 5000,
            floor_dbfs: -45.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Human,
    Machine,
    Announcement,
    Silence,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Human => "human",
            Verdict::Machine => "machine",
            Verdict::Announcement => "announcement",
            Verdict::Silence => "silence",
        }
    }
}

/// What decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    ShortGreeting,
    LongGreeting,
    Beep,
    SitTone,
    AnnouncementWords,
    /// An operator-supplied recording of a carrier announcement was heard
    /// ([`fingerprint`]).
    Fingerprint,
    VoicemailWords,
    InitialSilence,
    Timeout,
}

impl Reason {
    pub fn name(self) -> &'static str {
        match self {
            Reason::ShortGreeting => "short_greeting",
            Reason::LongGreeting => "long_greeting",
            Reason::Beep => "beep",
            Reason::SitTone => "sit_tone",
            Reason::AnnouncementWords => "announcement_words",
            Reason::Fingerprint => "fingerprint",
            Reason::VoicemailWords => "voicemail_words",
            Reason::InitialSilence => "initial_silence",
            Reason::Timeout => "timeout",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub verdict: Verdict,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announcement: Option<Announcement>,
    pub confidence: f32,
    /// Media time of the decision (ms since answer).
    pub at_ms: u64,
    pub reason: Reason,
    /// End of the voicemail beep, when one was heard: speak after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beep_end_ms: Option<u64>,
    /// Later evidence changed an earlier decision.
    pub revised: bool,
}

#[derive(Debug, Clone)]
struct ToneRun {
    freq: f32,
    start: u64,
    end: u64,
    /// Ended by a jump to another frequency, not by quiet.
    jumped: bool,
    /// Each frame's frequency to 2 Hz, for how steady the run held it.
    fine: Vec<f32>,
}

/// Largest spread of a beep's frequency over its inner frames (its first and
/// last frame may hold a ramp). A machine's beep is an oscillator: it holds its
/// pitch to a few hertz. A sung-out vowel can be as pure — a level Mandarin
/// syllable of the synthetic 8 kHz voice measured share 0.95 at 400 Hz, with no
/// harmonics — but its pitch wanders 388–430 Hz.
const BEEP_MAX_SPREAD_HZ: f32 = 12.0;

impl ToneRun {
    fn steady(&self) -> bool {
        let inner = if self.fine.len() >= 4 {
            &self.fine[1..self.fine.len() - 1]
        } else {
            &self.fine[..]
        };
        let (lo, hi) = inner
            .iter()
            .fold((f32::MAX, f32::MIN), |(lo, hi), &f| (lo.min(f), hi.max(f)));
        inner.is_empty() || hi - lo <= BEEP_MAX_SPREAD_HZ
    }
}

/// The AMD core for one call.
pub struct Amd {
    cfg: Config,
    vad: WebRtcVad,
    // Tone tracking.
    tone: Option<ToneRun>,
    runs: Vec<ToneRun>,
    beep_end: Option<u64>,
    sit: bool,
    sit_code: Option<SitCode>,
    // Speech tracking.
    voiced_run: u64,
    utterance_start: Option<u64>,
    last_voiced: Option<u64>,
    words: u32,
    utterances: u32,
    decision: Option<Decision>,
    now: u64,
    // Carrier recordings.
    matcher: Option<Matcher>,
    fingerprint: Option<Match>,
}

const VOICEMAIL_CUES: &[&str] = &[
    "leave a message",
    "leave your message",
    "after the tone",
    "after the beep",
    "voicemail",
    "voice mail",
    "not available",
    "can't take your call",
    "cannot take your call",
    "留言",
    "语音信箱",
    "語音信箱",
    "提示音后",
    "提示音後",
    "嘀声后",
    "无法接听",
    "不方便接听",
];

/// The special information tones in an unanswered call's early media (before any answer,
/// so only the network plays there): the announcement their code names — intercept and
/// vacant code: a number that does not exist (`Vacant`); other codes and the ITU's plain SIT:
/// `Sit` — with the code and when the third tone ended, or `None` when there are none.
/// Ringback, silence and speech are not SIT (it needs the three tones in their bands, in
/// order).
pub fn early_media_tones(samples: &[i16]) -> Option<EarlyTones> {
    let mut amd = Amd::new().ok()?;
    for (i, f) in samples.chunks_exact(FRAME).enumerate() {
        amd.push_audio(i as u64 * FRAME_MS, f);
        if let Some(d) = amd.decision() {
            if d.reason == Reason::SitTone {
                return Some(EarlyTones {
                    announcement: d.announcement.unwrap_or(Announcement::Sit),
                    code: amd.sit_code(),
                    at_ms: d.at_ms,
                });
            }
        }
    }
    None
}

/// What [`early_media_tones`] heard.
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyTones {
    pub announcement: Announcement,
    pub code: Option<SitCode>,
    pub at_ms: u64,
}

/// Whether the words are a voicemail greeting.
pub fn is_voicemail_text(text: &str) -> bool {
    let t = text.to_lowercase();
    VOICEMAIL_CUES.iter().any(|c| t.contains(c))
}

/// The North American SIT encoding (Bellcore/Telcordia, the AT&T call
/// disposition analyser table): segments 1 and 2 are each low or high in
/// pitch (913.8/985.2 Hz, 1370.6/1428.5 Hz) and short (274 ms) or long
/// (380 ms); segment 3 is always 1776.7 Hz, long. Other networks (the ITU's
/// 950/1400/1800 Hz SIT) carry no code: their tones decode to none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SitCode {
    /// IC: intercept, a vacant or changed number (short low, short low).
    Intercept,
    /// VC: vacant code, an unassigned prefix (long high, short low).
    VacantCode,
    /// NC: no circuit, trunks busy or network controls (long, long).
    NoCircuit,
    /// RO: reorder, switching blockage or mutilated digits (short, long).
    Reorder,
    /// IO: ineffective other (long low, short high).
    IneffectiveOther,
    /// The reserved codes.
    Reserved,
}

impl SitCode {
    pub fn name(self) -> &'static str {
        match self {
            SitCode::Intercept => "intercept",
            SitCode::VacantCode => "vacant_code",
            SitCode::NoCircuit => "no_circuit",
            SitCode::Reorder => "reorder",
            SitCode::IneffectiveOther => "ineffective_other",
            SitCode::Reserved => "reserved",
        }
    }

    /// What the code says about the number: intercept and vacant code are a
    /// number that does not exist as dialled (never call it again); the rest
    /// are network trouble (a plain SIT: try again soon).
    pub fn announcement(self) -> Announcement {
        match self {
            SitCode::Intercept | SitCode::VacantCode => Announcement::Vacant,
            _ => Announcement::Sit,
        }
    }

    /// The code of segments 1 and 2, each `(high, long)`.
    pub fn from_segments(first: (bool, bool), second: (bool, bool)) -> SitCode {
        match (first, second) {
            ((false, false), (false, false)) => SitCode::Intercept,
            ((true, true), (false, false)) => SitCode::VacantCode,
            ((h1, true), (h2, true)) if h1 == h2 => SitCode::NoCircuit,
            ((true, false), (false, true)) | ((false, false), (true, true)) => SitCode::Reorder,
            ((false, true), (true, false)) => SitCode::IneffectiveOther,
            _ => SitCode::Reserved,
        }
    }
}

/// Segment lengths: short is 274 ms, long 380 ms; frames of 20 ms lose up to
/// two frames at a segment's edges, so the cut is between them.
const SIT_LONG_MS: u64 = 327;
/// How near a segment's pitch must be to a North American SIT frequency to be
/// read as coded (the standard holds them to ±0.2%; we measure to a few hertz).
const SIT_CODE_HZ: f32 = 15.0;

/// `(high, long)` of a coded SIT segment with these low and high pitches.
fn sit_segment(run: &ToneRun, low: f32, high: f32) -> Option<(bool, bool)> {
    let f = run.fine.iter().sum::<f32>() / run.fine.len().max(1) as f32;
    let is_high = if (f - low).abs() <= SIT_CODE_HZ {
        false
    } else if (f - high).abs() <= SIT_CODE_HZ {
        true
    } else {
        return None;
    };
    Some((is_high, run.end - run.start >= SIT_LONG_MS))
}

// SIT bands: segment 1 (913.8 or 985.2 Hz), 2 (1370.6 or 1428.5), 3 (1776.7).
const SIT_BANDS: [&[f32]; 3] = [&[913.8, 985.2], &[1370.6, 1428.5], &[1776.7]];

fn sit_band(f: f32) -> Option<usize> {
    SIT_BANDS
        .iter()
        .position(|b| b.iter().any(|&c| (f - c).abs() <= 40.0))
}

/// The dominant narrowband frequency of a frame and the share of the
/// frame's energy it holds (1.0 for a pure tone).
fn dominant_tone(frame: &[f32]) -> (f32, f32) {
    let mean_sq = frame.iter().map(|x| x * x).sum::<f32>() / frame.len().max(1) as f32;
    if mean_sq <= 0.0 {
        return (0.0, 0.0);
    }
    let mut best = (0f32, 0f32);
    let mut f = 400f32;
    while f <= 2500.0 {
        let share = 2.0 * goertzel_power(frame, RATE, f) / mean_sq;
        if share > best.1 {
            best = (f, share);
        }
        f += 25.0;
    }
    best
}

/// The frequency of a frame's tone near `coarse` (from [`dominant_tone`]'s
/// 25 Hz grid), to 2 Hz.
fn fine_tone(frame: &[f32], coarse: f32) -> f32 {
    let mut best = (coarse, 0f32);
    let mut f = coarse - 14.0;
    while f <= coarse + 14.0 {
        let p = goertzel_power(frame, RATE, f);
        if p > best.1 {
            best = (f, p);
        }
        f += 2.0;
    }
    best.0
}

impl Amd {
    pub fn new() -> Result<Amd, VadError> {
        Amd::with_config(Config::default())
    }

    pub fn with_config(cfg: Config) -> Result<Amd, VadError> {
        Ok(Amd {
            cfg,
            vad: WebRtcVad::new(RATE, Aggressiveness::Aggressive)?,
            tone: None,
            runs: Vec::new(),
            beep_end: None,
            sit: false,
            sit_code: None,
            voiced_run: 0,
            utterance_start: None,
            last_voiced: None,
            words: 0,
            utterances: 0,
            decision: None,
            now: 0,
            matcher: None,
            fingerprint: None,
        })
    }

    /// Listen for these carrier recordings too (an empty library changes
    /// nothing). The library is shared, not copied: cloning a [`Library`] (or
    /// passing `&Arc<Library>`) is cheap, so build it once and give every
    /// call's detector the same one.
    ///
    /// A match is a decision [`Verdict::Announcement`] of the recording's
    /// kind with [`Reason::Fingerprint`] and confidence 0.97. It is the
    /// strongest evidence there is: the carrier's own recording, labelled by
    /// the operator, heard sound for sound. So it overrides any decision
    /// before it — a greeting-length guess, a beep, a SIT tone (whose code
    /// names at most "vacant" or "network trouble"), and announcement words of
    /// another kind (an ASR can mishear; words of the same kind are kept, as
    /// they already settled it) — and neither later words nor tones revise
    /// it. SIT tones alone are still revised by words, as before.
    pub fn with_fingerprints(mut self, lib: &Library) -> Self {
        self.matcher = (!lib.is_empty()).then(|| lib.matcher());
        self
    }

    /// The carrier recording heard, once one was.
    pub fn fingerprint(&self) -> Option<&Match> {
        self.fingerprint.as_ref()
    }

    /// The current decision, if any.
    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// Media time the first utterance began (a machine starts at once; a
    /// person who talks over the bot's opening starts later).
    pub fn greeting_start(&self) -> Option<u64> {
        self.utterance_start
    }

    /// The North American code of the SIT heard, if one was and it carried one.
    pub fn sit_code(&self) -> Option<SitCode> {
        self.sit_code
    }

    /// Words heard so far (voiced runs of at least `min_word`).
    pub fn words(&self) -> u32 {
        self.words
    }

    /// One 20 ms frame (160 samples at 8 kHz) starting at `at_ms`. Returns the
    /// decision when it is new or changed. Frames of another length are
    /// ignored (a caller bug, not outside input: the media layer frames audio).
    pub fn push_audio(&mut self, at_ms: u64, frame: &[i16]) -> Option<Decision> {
        if frame.len() != FRAME {
            return None;
        }
        let end = at_ms + FRAME_MS;
        self.now = self.now.max(end);
        if let Some(found) = self.matcher.as_mut().and_then(|m| m.push(at_ms, frame)) {
            self.fingerprint = Some(found);
            self.matcher = None;
        }
        let x: Vec<f32> = frame.iter().map(|&s| s as f32 / 32768.0).collect();
        let loud = frame_dbfs(frame) > self.cfg.floor_dbfs;
        let (freq, share) = if loud { dominant_tone(&x) } else { (0.0, 0.0) };
        let is_tone = loud && share >= 0.7;
        let before = self.decision.clone();
        let tone = is_tone.then(|| (freq, fine_tone(&x, freq)));
        self.track_tone(at_ms, end, tone);
        let voiced = loud && !is_tone && self.vad.is_speech(frame).unwrap_or(false);
        self.track_speech(end, voiced);
        self.decide_acoustic(end);
        changed(before, &self.decision)
    }

    /// Words an ASR heard, available at `at_ms`.
    pub fn push_text(&mut self, at_ms: u64, text: &str) -> Option<Decision> {
        if self.fingerprint.is_some() {
            // The recording itself was heard: words cannot say better.
            return None;
        }
        let before = self.decision.clone();
        let at = at_ms.max(self.now);
        if let Some(kind) = announce::classify(text) {
            let keep = matches!(&self.decision, Some(d) if d.verdict == Verdict::Announcement && d.announcement == Some(kind));
            if !keep {
                self.set(
                    Verdict::Announcement,
                    Some(kind),
                    0.95,
                    at,
                    Reason::AnnouncementWords,
                );
            }
        } else if is_voicemail_text(text)
            && !matches!(&self.decision, Some(d) if matches!(d.verdict, Verdict::Machine | Verdict::Announcement))
        {
            self.set(Verdict::Machine, None, 0.9, at, Reason::VoicemailWords);
        }
        changed(before, &self.decision)
    }

    /// The audio ended (or the caller stops analysing) at `at_ms`: the
    /// decision, taking the best guess if none was made yet.
    pub fn finish(&mut self, at_ms: u64) -> Decision {
        if self.decision.is_none() {
            let at = at_ms.max(self.now);
            match self.utterance_start {
                None => self.set(Verdict::Silence, None, 0.6, at, Reason::InitialSilence),
                Some(s) => {
                    let long =
                        self.last_voiced.unwrap_or(s).saturating_sub(s) >= self.cfg.max_greeting;
                    let v = if long {
                        Verdict::Machine
                    } else {
                        Verdict::Human
                    };
                    self.set(v, None, 0.5, at, Reason::Timeout);
                }
            }
        }
        self.decision.clone().expect("set above")
    }

    fn set(
        &mut self,
        verdict: Verdict,
        announcement: Option<Announcement>,
        confidence: f32,
        at: u64,
        reason: Reason,
    ) {
        let revised = self.decision.is_some();
        self.decision = Some(Decision {
            verdict,
            announcement,
            confidence,
            at_ms: at,
            reason,
            beep_end_ms: self.beep_end,
            revised,
        });
    }

    fn track_tone(&mut self, start: u64, end: u64, tone: Option<(f32, f32)>) {
        match (self.tone.as_mut(), tone) {
            (Some(run), Some((f, fine))) if (f - run.freq).abs() <= 60.0 => {
                run.end = end;
                run.fine.push(fine);
            }
            (Some(_), Some((f, fine))) => {
                let mut done = self.tone.take().expect("matched Some");
                done.jumped = true;
                self.close_run(done);
                self.tone = Some(ToneRun {
                    freq: f,
                    start,
                    end,
                    jumped: false,
                    fine: vec![fine],
                });
            }
            (Some(_), None) => {
                let done = self.tone.take().expect("matched Some");
                self.close_run(done);
            }
            (None, Some((f, fine))) => {
                self.tone = Some(ToneRun {
                    freq: f,
                    start,
                    end,
                    jumped: false,
                    fine: vec![fine],
                })
            }
            (None, None) => {}
        }
        // A beep is a steady tone that stopped into quiet (not into another tone,
        // which is how SIT segments follow each other) at least 100 ms ago.
        if let Some(last) = self.runs.last() {
            let len = last.end - last.start;
            if !last.jumped
                && last.steady()
                && self.tone.is_none()
                && (120..=3000).contains(&len)
                && end >= last.end + 100
                && self.beep_end != Some(last.end)
                && !self.sit
            {
                self.beep_end = Some(last.end);
                if let Some(d) = self.decision.as_mut() {
                    d.beep_end_ms = Some(last.end);
                }
            }
        }
    }

    fn close_run(&mut self, run: ToneRun) {
        self.runs.push(run);
        let n = self.runs.len();
        if n >= 3 {
            let last3 = &self.runs[n - 3..];
            let bands: Vec<Option<usize>> = last3.iter().map(|r| sit_band(r.freq)).collect();
            let long_enough = last3.iter().all(|r| r.end - r.start >= 160);
            let contiguous = last3.windows(2).all(|w| w[1].start <= w[0].end + 60);
            if bands == [Some(0), Some(1), Some(2)] && long_enough && contiguous && !self.sit {
                self.sit = true;
                self.sit_code = sit_segment(&last3[0], 913.8, 985.2)
                    .zip(sit_segment(&last3[1], 1370.6, 1428.5))
                    .map(|(a, b)| SitCode::from_segments(a, b));
            }
        }
    }

    fn track_speech(&mut self, end: u64, voiced: bool) {
        if voiced {
            self.voiced_run += FRAME_MS;
            if self.voiced_run == self.cfg.min_word {
                let start = end - self.voiced_run;
                self.words += 1;
                let pause = self.last_voiced.map(|l| start.saturating_sub(l));
                if self.utterance_start.is_none() || pause.is_some_and(|p| p >= self.cfg.max_pause)
                {
                    if self.utterance_start.is_none() {
                        self.utterance_start = Some(start);
                    }
                    self.utterances += 1;
                }
            }
            if self.voiced_run >= self.cfg.min_word {
                self.last_voiced = Some(end);
            }
        } else {
            self.voiced_run = 0;
        }
    }

    fn decide_acoustic(&mut self, now: u64) {
        if let Some(kind) = self.fingerprint.as_ref().map(|m| m.kind) {
            let keep = matches!(&self.decision, Some(d) if d.reason == Reason::Fingerprint
                || (d.reason == Reason::AnnouncementWords && d.announcement == Some(kind)));
            if !keep {
                self.set(
                    Verdict::Announcement,
                    Some(kind),
                    0.97,
                    now,
                    Reason::Fingerprint,
                );
            }
            return;
        }
        if self.sit {
            if !matches!(&self.decision, Some(d) if d.verdict == Verdict::Announcement) {
                self.set(
                    Verdict::Announcement,
                    Some(
                        self.sit_code
                            .map_or(Announcement::Sit, SitCode::announcement),
                    ),
                    0.9,
                    now,
                    Reason::SitTone,
                );
            }
            return;
        }
        if self.beep_end.is_some() {
            // A beep outranks a guess from the greeting's length, but not words.
            let weaker = match &self.decision {
                None => true,
                Some(d) => matches!(
                    d.reason,
                    Reason::LongGreeting
                        | Reason::ShortGreeting
                        | Reason::Timeout
                        | Reason::InitialSilence
                ),
            };
            if weaker && !matches!(&self.decision, Some(d) if d.reason == Reason::Beep) {
                self.set(Verdict::Machine, None, 0.95, now, Reason::Beep);
            }
            return;
        }
        if self.decision.is_some() {
            return;
        }
        match (self.utterance_start, self.last_voiced) {
            (None, _) if now >= self.cfg.initial_silence => {
                self.set(Verdict::Silence, None, 0.7, now, Reason::InitialSilence)
            }
            (Some(start), Some(last)) => {
                let quiet = now.saturating_sub(last);
                let first_utterance = self.utterances <= 1;
                if first_utterance
                    && quiet >= self.cfg.after_greeting_silence
                    && last - start < self.cfg.max_greeting
                {
                    self.set(Verdict::Human, None, 0.8, now, Reason::ShortGreeting);
                } else if quiet < self.cfg.max_pause && now - start >= self.cfg.max_greeting {
                    // Still talking at 2 s; more words make it likelier a recording.
                    let conf = (0.65 + 0.05 * self.words as f32).min(0.85);
                    self.set(Verdict::Machine, None, conf, now, Reason::LongGreeting);
                } else if now >= self.cfg.max_analysis {
                    self.set(Verdict::Human, None, 0.5, now, Reason::Timeout);
                }
            }
            _ => {}
        }
    }
}

fn changed(before: Option<Decision>, after: &Option<Decision>) -> Option<Decision> {
    if before.as_ref() != after.as_ref() {
        after.clone()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, ms: u64, amp: f32) -> Vec<i16> {
        let n = (ms * 8) as usize;
        (0..n)
            .map(|i| (amp * (2.0 * std::f32::consts::PI * freq * i as f32 / 8000.0).sin()) as i16)
            .collect()
    }

    /// A crude voiced sound: a 140 Hz pulse train through two resonances,
    /// with the pitch wandering, which WebRTC's VAD takes for speech.
    fn voice(ms: u64, seed: u32) -> Vec<i16> {
        let n = (ms * 8) as usize;
        let mut out = Vec::with_capacity(n);
        let (mut y1, mut y2, mut z1, mut z2) = (0f32, 0f32, 0f32, 0f32);
        let mut phase = 0f32;
        for i in 0..n {
            let t = i as f32 / 8000.0;
            let f0 = 140.0 + 25.0 * (t * 3.0 + seed as f32).sin();
            phase += f0 / 8000.0;
            let pulse = if phase >= 1.0 {
                phase -= 1.0;
                1.0
            } else {
                0.0
            };
            // Two-pole resonators at ~700 Hz and ~1200 Hz.
            let r = 0.97f32;
            let (w1, w2) = (
                2.0 * std::f32::consts::PI * 700.0 / 8000.0,
                2.0 * std::f32::consts::PI * 1200.0 / 8000.0,
            );
            let y = pulse + 2.0 * r * w1.cos() * y1 - r * r * y2;
            y2 = y1;
            y1 = y;
            let z = y + 2.0 * r * w2.cos() * z1 - r * r * z2;
            z2 = z1;
            z1 = z;
            // Syllable envelope at ~4 Hz.
            let env = 0.55 + 0.45 * (2.0 * std::f32::consts::PI * 4.0 * t).sin();
            out.push((z * env * 600.0).clamp(-20000.0, 20000.0) as i16);
        }
        out
    }

    fn run(audio: &[i16]) -> Decision {
        let mut amd = Amd::new().unwrap();
        for (i, f) in audio.chunks_exact(FRAME).enumerate() {
            amd.push_audio(i as u64 * 20, f);
        }
        amd.finish(audio.len() as u64 / 8)
    }

    fn concat(parts: &[Vec<i16>]) -> Vec<i16> {
        parts.concat()
    }

    #[test]
    fn silence_is_silence() {
        let d = run(&vec![0; 8 * 4000]);
        assert_eq!(d.verdict, Verdict::Silence);
        assert_eq!(d.at_ms, 3000);
    }

    #[test]
    fn a_short_hello_then_waiting_is_a_person() {
        let audio = concat(&[vec![0; 8 * 300], voice(700, 1), vec![0; 8 * 3000]]);
        let d = run(&audio);
        assert_eq!(d.verdict, Verdict::Human, "{d:?}");
        assert_eq!(d.reason, Reason::ShortGreeting);
        assert!(d.at_ms < 2000, "{d:?}");
    }

    #[test]
    fn a_long_greeting_is_a_machine_and_its_beep_is_found() {
        let audio = concat(&[
            vec![0; 8 * 200],
            voice(1500, 2),
            vec![0; 8 * 300],
            voice(1500, 3),
            vec![0; 8 * 200],
            tone(1000.0, 400, 11_600.0),
            vec![0; 8 * 1000],
        ]);
        let mut amd = Amd::new().unwrap();
        let mut first = None;
        for (i, f) in audio.chunks_exact(FRAME).enumerate() {
            if let Some(d) = amd.push_audio(i as u64 * 20, f) {
                first.get_or_insert(d);
            }
        }
        let first = first.expect("decided");
        assert_eq!(first.verdict, Verdict::Machine);
        assert_eq!(first.reason, Reason::LongGreeting);
        assert!(first.at_ms <= 2300, "{first:?}");
        let last = amd.finish(audio.len() as u64 / 8);
        assert_eq!(last.reason, Reason::Beep);
        // The beep ran from 3700 to 4100 ms.
        let end = last.beep_end_ms.expect("beep");
        assert!((4060..=4140).contains(&end), "{end}");
    }

    /// A pure tone whose pitch wanders like a held vowel: 400 Hz ± 20 Hz.
    fn sung_vowel(ms: u64) -> Vec<i16> {
        let mut phase = 0f32;
        (0..(ms * 8) as usize)
            .map(|i| {
                let t = i as f32 / 8000.0;
                phase += (400.0 + 20.0 * (2.0 * std::f32::consts::PI * 6.0 * t).sin()) / 8000.0;
                (6000.0 * (2.0 * std::f32::consts::PI * phase).sin()) as i16
            })
            .collect()
    }

    #[test]
    fn a_pure_vowel_with_a_wandering_pitch_is_not_a_beep() {
        // Measured on a live Mandarin call: the synthetic voice's level-tone
        // vowel at the end of a clause was a 200 ms pure tone at 388-430 Hz,
        // and the call was taken for a voicemail box.
        let audio = concat(&[
            vec![0; 8 * 3500],
            voice(900, 4),
            sung_vowel(240),
            vec![0; 8 * 800],
        ]);
        let d = run(&audio);
        assert_eq!(d.beep_end_ms, None, "{d:?}");
        // The same length of a steady tone at that pitch is one.
        let audio = concat(&[
            vec![0; 8 * 3500],
            voice(900, 4),
            tone(400.0, 240, 6000.0),
            vec![0; 8 * 800],
        ]);
        assert!(run(&audio).beep_end_ms.is_some());
    }

    #[test]
    fn sit_tones_are_an_announcement_not_a_beep() {
        let audio = concat(&[
            vec![0; 8 * 100],
            tone(985.2, 380, 8000.0),
            tone(1428.5, 274, 8000.0),
            tone(1776.7, 380, 8000.0),
            vec![0; 8 * 1000],
        ]);
        let d = run(&audio);
        assert_eq!(d.verdict, Verdict::Announcement, "{d:?}");
        // Long high, short high: a reserved code, which names no number state.
        assert_eq!(d.announcement, Some(Announcement::Sit));
        assert_eq!(d.beep_end_ms, None);
    }

    fn sit_code_of(segments: &[(f32, u64)]) -> (Option<SitCode>, Decision) {
        let mut parts = vec![vec![0; 8 * 100]];
        parts.extend(segments.iter().map(|&(f, ms)| tone(f, ms, 8000.0)));
        parts.push(tone(1776.7, 380, 8000.0));
        parts.push(vec![0; 8 * 1000]);
        let audio = concat(&parts);
        let mut amd = Amd::new().unwrap();
        for (i, f) in audio.chunks_exact(FRAME).enumerate() {
            amd.push_audio(i as u64 * 20, f);
        }
        (amd.sit_code(), amd.decision().cloned().expect("decided"))
    }

    #[test]
    fn early_media_sit_names_the_number_state_and_ringback_is_not_sit() {
        // Ringback (425 Hz, 1 s on 4 s off, as Chinese networks play it), then a vacant-code
        // SIT and the start of a recording.
        let audio = concat(&[
            tone(425.0, 1000, 6000.0),
            vec![0; 8 * 4000],
            tone(985.2, 380, 8000.0),
            tone(1370.6, 274, 8000.0),
            tone(1776.7, 380, 8000.0),
            voice(2000, 4),
        ]);
        let t = early_media_tones(&audio).expect("SIT heard");
        assert_eq!(t.announcement, Announcement::Vacant);
        assert_eq!(t.code, Some(SitCode::VacantCode));
        assert!((6000..=6400).contains(&t.at_ms), "{t:?}");
        // Ringback and a voice alone are no SIT.
        let plain = concat(&[tone(425.0, 1000, 6000.0), vec![0; 8 * 4000], voice(2000, 4)]);
        assert_eq!(early_media_tones(&plain), None);
        assert_eq!(early_media_tones(&[]), None);
    }

    #[test]
    fn sit_codes_are_decoded_from_pitch_and_length() {
        let cases = [
            ([(913.8, 274), (1370.6, 274)], Some(SitCode::Intercept)),
            ([(985.2, 380), (1370.6, 274)], Some(SitCode::VacantCode)),
            ([(985.2, 380), (1428.5, 380)], Some(SitCode::NoCircuit)),
            ([(913.8, 380), (1370.6, 380)], Some(SitCode::NoCircuit)),
            ([(985.2, 274), (1370.6, 380)], Some(SitCode::Reorder)),
            ([(913.8, 274), (1428.5, 380)], Some(SitCode::Reorder)),
            (
                [(913.8, 380), (1428.5, 274)],
                Some(SitCode::IneffectiveOther),
            ),
            // The ITU's SIT (950/1400/1800 Hz, 330 ms) carries no code.
            ([(950.0, 330), (1400.0, 330)], None),
        ];
        for (segments, want) in cases {
            let (code, d) = sit_code_of(&segments);
            assert_eq!(code, want, "{segments:?}");
            assert_eq!(d.verdict, Verdict::Announcement, "{segments:?}");
            let kind = want.map_or(Announcement::Sit, SitCode::announcement);
            assert_eq!(d.announcement, Some(kind), "{segments:?}");
        }
        assert_eq!(SitCode::Intercept.announcement(), Announcement::Vacant);
        assert_eq!(SitCode::NoCircuit.announcement(), Announcement::Sit);
    }

    #[test]
    fn words_override_the_acoustic_guess() {
        let mut amd = Amd::new().unwrap();
        let audio = concat(&[vec![0; 8 * 200], voice(2500, 4)]);
        for (i, f) in audio.chunks_exact(FRAME).enumerate() {
            amd.push_audio(i as u64 * 20, f);
        }
        assert_eq!(amd.decision().map(|d| d.verdict), Some(Verdict::Machine));
        let d = amd.push_text(2700, "您拨打的电话已停机").expect("revised");
        assert_eq!(d.verdict, Verdict::Announcement);
        assert_eq!(d.announcement, Some(Announcement::Suspended));
        assert!(d.revised);
        // Voicemail words do not undo an announcement.
        assert_eq!(amd.push_text(2800, "请在提示音后留言"), None);
        let mut amd = Amd::new().unwrap();
        let d = amd
            .push_text(900, "Please leave a message after the tone")
            .unwrap();
        assert_eq!(
            (d.verdict, d.reason),
            (Verdict::Machine, Reason::VoicemailWords)
        );
    }

    #[test]
    fn odd_frames_are_ignored() {
        let mut amd = Amd::new().unwrap();
        assert_eq!(amd.push_audio(0, &[1, 2, 3]), None);
        assert_eq!(amd.push_audio(0, &[]), None);
    }

    /// The five test references, in a library, and their audio.
    fn carrier_library() -> (Library, Vec<(Announcement, String, Vec<i16>)>) {
        let refs = fingerprint::tests::references();
        let mut lib = Library::new();
        for (kind, name, audio) in &refs {
            lib.add(*kind, name.clone(), audio).unwrap();
        }
        (lib, refs)
    }

    fn decisions(amd: &mut Amd, audio: &[i16]) -> Vec<Decision> {
        audio
            .chunks_exact(FRAME)
            .enumerate()
            .filter_map(|(i, f)| amd.push_audio(i as u64 * 20, f))
            .collect()
    }

    #[test]
    fn a_carrier_recording_is_known_by_its_fingerprint() {
        let (lib, refs) = carrier_library();
        let (kind, name, recording) = &refs[2];
        // An intercept SIT (which says "vacant"), then the carrier's 关机
        // recording through the line.
        let audio = concat(&[
            vec![0; 8 * 300],
            tone(913.8, 274, 8000.0),
            tone(1370.6, 274, 8000.0),
            tone(1776.7, 380, 8000.0),
            vec![0; 8 * 200],
            fingerprint::tests::line(recording, 0.5, 20.0, 1),
        ]);
        let mut amd = Amd::new().unwrap().with_fingerprints(&lib);
        let ds = decisions(&mut amd, &audio);
        assert_eq!(ds[0].reason, Reason::SitTone, "{ds:?}");
        assert_eq!(ds[0].announcement, Some(Announcement::Vacant));
        let last = ds.last().unwrap();
        assert_eq!(
            (last.verdict, last.announcement, last.reason),
            (Verdict::Announcement, Some(*kind), Reason::Fingerprint),
            "{ds:?}"
        );
        assert!(last.revised);
        // The recording began at 1528 ms.
        assert!(last.at_ms <= 1528 + 2500, "{last:?}");
        let m = amd.fingerprint().expect("heard");
        assert_eq!((&m.name, m.kind), (name, *kind));
        assert_eq!(Reason::Fingerprint.name(), "fingerprint");
        // Words do not revise it.
        assert_eq!(amd.push_text(6000, "您拨打的号码是空号"), None);
        assert_eq!(amd.finish(7000), *last);

        // Without the library it stays the SIT's guess.
        let mut amd = Amd::new().unwrap();
        let ds = decisions(&mut amd, &audio);
        assert!(ds.iter().all(|d| d.reason != Reason::Fingerprint), "{ds:?}");
    }

    #[test]
    fn a_fingerprint_overrides_other_words_but_keeps_the_same_words() {
        let (lib, refs) = carrier_library();
        let (kind, _, recording) = &refs[0];
        let audio = concat(&[
            vec![0; 8 * 200],
            fingerprint::tests::line(recording, 1.0, 20.0, 2),
        ]);
        // Misheard words of another kind first.
        let mut amd = Amd::new().unwrap().with_fingerprints(&lib);
        let d = amd.push_text(0, "您拨打的电话已关机").unwrap();
        assert_eq!(d.announcement, Some(Announcement::PoweredOff));
        let ds = decisions(&mut amd, &audio);
        let d = ds.last().unwrap();
        assert_eq!(
            (d.announcement, d.reason),
            (Some(*kind), Reason::Fingerprint)
        );
        // The words had it right: they stand.
        let mut amd = Amd::new().unwrap().with_fingerprints(&lib);
        let words = amd.push_text(0, "您拨打的号码是空号").unwrap();
        assert_eq!(decisions(&mut amd, &audio), vec![]);
        assert!(amd.fingerprint().is_some());
        assert_eq!(amd.decision(), Some(&words));
    }

    #[test]
    fn people_are_not_fingerprinted_and_analyze_takes_a_library() {
        let (lib, refs) = carrier_library();
        let hello = concat(&[vec![0; 8 * 300], voice(700, 1), vec![0; 8 * 3000]]);
        let a = analyze_with(&hello, &[], Some(&lib)).unwrap();
        assert_eq!(a.last.verdict, Verdict::Human);
        assert_eq!(a.fingerprint, None);
        let audio = concat(&[
            vec![0; 8 * 400],
            fingerprint::tests::line(&refs[4].2, 2.0, 15.0, 3),
        ]);
        let a = analyze_with(&audio, &[], Some(&lib)).unwrap();
        assert_eq!(
            (a.last.announcement, a.last.reason),
            (Some(refs[4].0), Reason::Fingerprint)
        );
        assert_eq!(a.fingerprint.map(|m| m.name), Some(refs[4].1.clone()));
        let a = analyze(&audio, &[]).unwrap();
        assert_ne!(a.last.reason, Reason::Fingerprint);
        assert_eq!(a, analyze_with(&audio, &[], None).unwrap());
        // An empty library changes nothing.
        assert_eq!(a, analyze_with(&audio, &[], Some(&Library::new())).unwrap());
    }

    proptest::proptest! {
        #[test]
        fn any_audio_gives_a_decision(samples in proptest::collection::vec(proptest::num::i16::ANY, 0..8000)) {
            let d = run(&samples);
            proptest::prop_assert!(d.confidence > 0.0 && d.confidence <= 1.0);
        }
    }
}

/// What [`analyze`] found in a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// The first decision: what a live call would act on.
    pub first: Decision,
    /// The decision once all the audio and words were in.
    pub last: Decision,
    /// The carrier recording heard, when a library was given and one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<Match>,
}

/// Run a whole recording (8 kHz) through the core, words joining at the media
/// time they become available (`texts`: (ms, words), in any order).
pub fn analyze(samples: &[i16], texts: &[(u64, String)]) -> Result<Analysis, VadError> {
    analyze_with(samples, texts, None)
}

/// [`analyze`], listening for the carrier recordings of `fingerprints` too
/// ([`Amd::with_fingerprints`]).
pub fn analyze_with(
    samples: &[i16],
    texts: &[(u64, String)],
    fingerprints: Option<&Library>,
) -> Result<Analysis, VadError> {
    let mut amd = Amd::new()?;
    if let Some(lib) = fingerprints {
        amd = amd.with_fingerprints(lib);
    }
    let mut texts: Vec<&(u64, String)> = texts.iter().collect();
    texts.sort_by_key(|t| t.0);
    let mut next = 0;
    let mut first = None;
    let mut at = 0u64;
    for frame in samples.chunks_exact(FRAME) {
        while next < texts.len() && texts[next].0 <= at {
            if let Some(d) = amd.push_text(texts[next].0, &texts[next].1) {
                first.get_or_insert(d);
            }
            next += 1;
        }
        if let Some(d) = amd.push_audio(at, frame) {
            first.get_or_insert(d);
        }
        at += FRAME_MS;
    }
    for (t, words) in &texts[next..] {
        if let Some(d) = amd.push_text(*t, words) {
            first.get_or_insert(d);
        }
    }
    let last = amd.finish(at);
    Ok(Analysis {
        first: first.unwrap_or_else(|| last.clone()),
        last,
        fingerprint: amd.fingerprint().cloned(),
    })
}
