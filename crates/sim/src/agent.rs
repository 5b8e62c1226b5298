//! One virtual callee in a call: a [`CallAgent`] that listens to the bot,
//! waits for it to finish a prompt, pauses like a person, says its next line
//! and, when it has nothing left to say, hangs up once the bot falls silent.
//!
//! The core is sans-IO: it counts 20 ms frames and never reads a clock, so a
//! unit test drives it with synthetic audio faster than real time. The engine's
//! call task feeds it the real frames.
//!
//! End of a bot prompt is detected by energy: a frame is voiced when its RMS is
//! at least [`Timing::voice_rms`] (300 ≈ −41 dBFS; espeak speech through G.711
//! sits around 2,000–6,000 while voiced, line silence is 0 on loopback). A
//! prompt is at least [`Timing::min_prompt`] (300 ms) of voiced frames, and it
//! has ended after [`Timing::end_silence`] (700 ms) without a voiced frame —
//! longer than the pauses between espeak's words and sentences (≤ ~450 ms), so
//! a multi-sentence prompt is one prompt. If the bot speaks again during our
//! pause, the prompt was not over: we keep listening and keep the line.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use waihu_engine::agent::{CallAgent, Control};

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME: usize = 160;
const FRAME_MS: u64 = 20;

/// Times the callee repeats its last line when the bot asks again after the
/// lines ran out (the bot re-prompted after a misrecognition, say).
pub const EXTRA_REPLIES: usize = 2;

/// Thresholds and human-like delays of a callee.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// RMS (16-bit scale) from which a heard frame counts as speech.
    pub voice_rms: f32,
    /// Silence that ends a bot prompt.
    pub end_silence: Duration,
    /// Voiced audio a prompt needs (shorter bursts are clicks or noise).
    pub min_prompt: Duration,
    /// The pause before replying is drawn uniformly from this range.
    pub gap: (Duration, Duration),
    /// An interrupter starts talking this far into a bot prompt (drawn per prompt).
    pub barge_after: (Duration, Duration),
    /// With nothing left to say, hang up once the bot has answered our last
    /// line (its goodbye) and then been silent this long.
    pub done_silence: Duration,
    /// With nothing left to say and no word from the bot since our last line
    /// (it may still be thinking), hang up after this long.
    pub last_reply_wait: Duration,
    /// Hang up when the bot has said nothing at all for this long.
    pub bot_silent_max: Duration,
    /// A voicemail box hangs up when no message started this long after the beep.
    pub voicemail_no_message: Duration,
    /// Hang up at this call length whatever happens.
    pub max_call: Duration,
    /// Replies (the last line again) once the lines ran out; default
    /// [`EXTRA_REPLIES`]. A talkative callee (more) keeps answering a human
    /// agent after a warm transfer.
    pub extra_replies: usize,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            voice_rms: 300.0,
            end_silence: Duration::from_millis(700),
            min_prompt: Duration::from_millis(300),
            gap: (Duration::from_millis(200), Duration::from_millis(500)),
            barge_after: (Duration::from_millis(900), Duration::from_millis(1300)),
            done_silence: Duration::from_secs(3),
            last_reply_wait: Duration::from_secs(10),
            bot_silent_max: Duration::from_secs(15),
            voicemail_no_message: Duration::from_secs(8),
            max_call: Duration::from_secs(180),
            extra_replies: EXTRA_REPLIES,
        }
    }
}

/// Root mean square of a frame (16-bit scale).
/// The level that times mouth to ear ([`AgentRecord::reply_ms`]): 0.02 of full
/// scale (−34 dBFS), the threshold the console's voice test uses on its
/// microphone and speaker meters, so the phone's and the browser's figures are
/// taken by the same rule.
pub const REPLY_RMS: f32 = 0.02 * 32768.0;

pub fn frame_rms(frame: &[i16]) -> f32 {
    if frame.is_empty() {
        return 0.0;
    }
    let sum: f64 = frame.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / frame.len() as f64).sqrt() as f32
}

/// A 1 kHz voicemail beep: `ms` long at 8 kHz, −9 dBFS, 5 ms ramps.
pub fn beep(ms: u32) -> Vec<i16> {
    let n = (8 * ms) as usize;
    let ramp = 40usize;
    (0..n)
        .map(|i| {
            let env = (i.min(n - 1 - i) as f32 / ramp as f32).min(1.0);
            let s = (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin();
            (s * env * 11_600.0) as i16
        })
        .collect()
}

/// A line the callee can say: its text and 8 kHz audio.
#[derive(Debug, Clone)]
pub struct Line {
    pub text: String,
    pub audio: Arc<[i16]>,
}

/// What the callee does in an answered call.
#[derive(Debug, Clone)]
pub enum Role {
    /// A person: answers each bot prompt with the next line; `barge_in` talks
    /// over the bot on purpose ~1 s into each prompt.
    Talker { lines: Vec<Line>, barge_in: bool },
    /// A voicemail box: plays the greeting (with its beep) at once, then
    /// listens in silence.
    Voicemail { greeting: Line },
    /// A carrier that answered to play an announcement (空号, 停机): plays
    /// it at once and hangs up when it is over.
    Announcement { audio: Line },
}

/// What happened in the call, as far as the callee could tell.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AgentRecord {
    pub answered: bool,
    /// Texts said, in order (a repeated line appears twice).
    pub lines_said: Vec<String>,
    /// Bot prompts detected (ended by silence, or talked over by an interrupter).
    pub bot_prompts_heard: u32,
    /// Lines started while the bot was still talking.
    pub barge_ins: u32,
    /// Bot prompts that started while we were saying a line we did not start
    /// over the bot: the bot cut in on us (it took a pause for the end of our turn).
    pub talked_over: u32,
    /// Seconds of voiced bot audio heard.
    pub bot_speech_s: f64,
    /// Mouth to ear, as the callee hears it: per new line it finished without
    /// talking over the bot, ms from its last frame sent at [`REPLY_RMS`] to the
    /// first frame heard at that level (RTP both ways, the jitter buffers and
    /// the bot's endpointing, ASR, dialog and TTS all inside).
    pub reply_ms: Vec<u64>,
    /// Why the callee hung up (`None`: the bot hung up, or the call failed).
    pub callee_hangup: Option<String>,
    pub ended: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Listening,
    /// The bot finished; we pause until `until` (frame index) before saying `line`.
    Gap {
        until: u64,
        line: usize,
        kind: Reply,
    },
    Speaking {
        line: usize,
        pos: usize,
        barged: bool,
    },
    /// Voicemail greeting.
    Greeting {
        pos: usize,
    },
    Hungup,
}

/// Why a line is said: the next one, a repeat (the bot did not hear it), or
/// the last one again after the lines ran out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Reply {
    Next,
    Repeat,
    Extra,
}

fn frames(d: Duration) -> u64 {
    (d.as_millis() as u64).div_ceil(FRAME_MS)
}

/// The callee's state machine. Implements [`CallAgent`].
pub struct Callee {
    role: Role,
    timing: Timing,
    rng: StdRng,
    phase: Phase,
    frame: u64,
    // Bot-prompt detector.
    in_prompt: bool,
    prompt_start: u64,
    prompt_voiced: u64,
    silence_run: u64,
    last_voice: Option<u64>,
    barge_at: Option<u64>,
    // Conversation.
    next_line: usize,
    extra_used: usize,
    repeat: Option<usize>,
    /// End of our last utterance (frame), for the silence timers.
    spoke_until: u64,
    /// End of our last new line (not a repeat or extra): has the bot answered it?
    fresh_until: u64,
    /// Last frame we sent at or above [`REPLY_RMS`].
    last_said_voiced: u64,
    /// A new line we finished, not yet answered: its last voiced frame.
    awaiting_reply: Option<u64>,
    fresh_speaking: bool,
    greeted: bool,
    record: AgentRecord,
    sink: Option<Arc<Mutex<AgentRecord>>>,
}

impl Callee {
    pub fn new(role: Role, timing: Timing, seed: u64) -> Callee {
        Callee {
            role,
            timing,
            rng: StdRng::seed_from_u64(seed),
            phase: Phase::Listening,
            frame: 0,
            in_prompt: false,
            prompt_start: 0,
            prompt_voiced: 0,
            silence_run: 0,
            last_voice: None,
            barge_at: None,
            next_line: 0,
            extra_used: 0,
            repeat: None,
            spoke_until: 0,
            fresh_until: 0,
            last_said_voiced: 0,
            awaiting_reply: None,
            fresh_speaking: false,
            greeted: false,
            record: AgentRecord::default(),
            sink: None,
        }
    }

    /// Mirror the record into `sink` as it changes (the server reads it after the call).
    pub fn with_sink(mut self, sink: Arc<Mutex<AgentRecord>>) -> Callee {
        self.sink = Some(sink);
        self
    }

    pub fn record(&self) -> &AgentRecord {
        &self.record
    }

    fn publish(&self) {
        if let Some(s) = &self.sink {
            if let Ok(mut r) = s.lock() {
                *r = self.record.clone();
            }
        }
    }

    fn lines(&self) -> &[Line] {
        match &self.role {
            Role::Talker { lines, .. } => lines,
            Role::Voicemail { .. } | Role::Announcement { .. } => &[],
        }
    }

    fn draw(&mut self, range: (Duration, Duration)) -> u64 {
        let (lo, hi) = (frames(range.0), frames(range.1));
        if hi <= lo {
            lo
        } else {
            self.rng.gen_range(lo..=hi)
        }
    }

    /// The line that answers the prompt that just ended, if any.
    fn choose_reply(&mut self) -> Option<(usize, Reply)> {
        let n = self.lines().len();
        if let Some(i) = self.repeat.take() {
            return Some((i, Reply::Repeat));
        }
        if self.next_line < n {
            return Some((self.next_line, Reply::Next));
        }
        if n > 0 && self.extra_used < self.timing.extra_replies {
            self.extra_used += 1;
            return Some((n - 1, Reply::Extra));
        }
        None
    }

    fn start_speaking(&mut self, line: usize, kind: Reply, barged: bool) {
        if kind == Reply::Next {
            self.next_line += 1;
        }
        self.fresh_speaking = kind == Reply::Next;
        if let Some(l) = self.lines().get(line) {
            let text = l.text.clone();
            self.record.lines_said.push(text);
        }
        if barged {
            self.record.barge_ins += 1;
        }
        self.phase = Phase::Speaking {
            line,
            pos: 0,
            barged,
        };
        self.publish();
    }

    fn hang_up(&mut self, why: &str) -> Control {
        self.phase = Phase::Hungup;
        self.record.callee_hangup = Some(why.to_string());
        self.publish();
        Control::Hangup(why.to_string())
    }

    /// Call answered: a voicemail box starts its greeting.
    pub fn answered(&mut self) {
        self.record.answered = true;
        if matches!(
            self.role,
            Role::Voicemail { .. } | Role::Announcement { .. }
        ) {
            self.phase = Phase::Greeting { pos: 0 };
        }
        self.publish();
    }

    /// One 20 ms frame: `heard` is the bot, `say` (zeroed) is filled with our audio.
    pub fn step(&mut self, heard: &[i16], say: &mut [i16]) -> Control {
        if self.phase == Phase::Hungup {
            return Control::Continue;
        }
        self.frame += 1;
        let f = self.frame;
        let t = self.timing.clone();

        // 1. Bot-prompt detection.
        let level = frame_rms(heard);
        let voiced = level >= t.voice_rms;
        if level >= REPLY_RMS {
            if let Some(end) = self.awaiting_reply.take() {
                self.record.reply_ms.push(f.saturating_sub(end) * FRAME_MS);
            }
        }
        let mut prompt_ended = false;
        let mut prompt_started = false;
        if voiced {
            if !self.in_prompt {
                self.in_prompt = true;
                prompt_started = true;
                self.prompt_start = f;
                self.prompt_voiced = 0;
                self.barge_at = None;
                if let Some(end) = self.awaiting_reply.take() {
                    self.record.reply_ms.push(f.saturating_sub(end) * FRAME_MS);
                }
            }
            self.prompt_voiced += 1;
            self.silence_run = 0;
            self.last_voice = Some(f);
            self.record.bot_speech_s += FRAME_MS as f64 / 1000.0;
        } else {
            self.silence_run += 1;
            if self.in_prompt && self.silence_run >= frames(t.end_silence) {
                self.in_prompt = false;
                prompt_ended = self.prompt_voiced >= frames(t.min_prompt);
            }
        }

        if prompt_started && matches!(self.phase, Phase::Speaking { barged: false, .. }) {
            self.record.talked_over += 1;
        }

        // 2. Conversation.
        match self.phase {
            Phase::Listening => {
                let barge = matches!(self.role, Role::Talker { barge_in: true, .. });
                if prompt_started && barge {
                    let d = self.draw(t.barge_after);
                    self.barge_at = Some(f + d);
                }
                if prompt_ended {
                    if self.barge_at.is_some_and(|at| at == u64::MAX) {
                        // We already talked over this prompt; its end is not a new question.
                    } else {
                        self.record.bot_prompts_heard += 1;
                        if let Some((line, kind)) = self.choose_reply() {
                            let gap = self.draw(t.gap);
                            self.phase = Phase::Gap {
                                until: f + gap,
                                line,
                                kind,
                            };
                        }
                    }
                    self.publish();
                } else if self.in_prompt && barge && self.barge_at.is_some_and(|at| f >= at) {
                    self.barge_at = Some(u64::MAX);
                    if let Some((line, kind)) = self.choose_reply() {
                        self.record.bot_prompts_heard += 1;
                        self.start_speaking(line, kind, true);
                    }
                }
            }
            Phase::Gap { until, line, kind } => {
                if voiced {
                    // The bot was only pausing: not our turn yet; the line stays ours to say.
                    self.record.bot_prompts_heard = self.record.bot_prompts_heard.saturating_sub(1);
                    match kind {
                        Reply::Next => {}
                        Reply::Repeat => self.repeat = Some(line),
                        Reply::Extra => self.extra_used = self.extra_used.saturating_sub(1),
                    }
                    self.phase = Phase::Listening;
                } else if f >= until {
                    self.start_speaking(line, kind, false);
                }
            }
            Phase::Speaking { .. } | Phase::Greeting { .. } | Phase::Hungup => {}
        }

        // 3. Our audio.
        match self.phase {
            Phase::Speaking { line, pos, barged } => {
                let audio = self.lines().get(line).map(|l| l.audio.clone());
                let audio = audio.unwrap_or_else(|| Arc::from(Vec::new()));
                let end = (pos + say.len()).min(audio.len());
                let n = end.saturating_sub(pos);
                say[..n].copy_from_slice(&audio[pos..end]);
                if frame_rms(say) >= REPLY_RMS {
                    self.last_said_voiced = f;
                }
                if end >= audio.len() {
                    self.phase = Phase::Listening;
                    self.spoke_until = f;
                    if self.fresh_speaking {
                        self.fresh_until = f;
                        // A reply to a line we said over the bot would time the barge-in.
                        self.awaiting_reply = (!barged).then_some(self.last_said_voiced);
                    }
                    // Talked over the bot and it kept going: it did not hear us, so
                    // answer its question (again) once it finishes.
                    if barged && self.last_voice.is_some_and(|v| f.saturating_sub(v) <= 15) {
                        self.repeat = Some(line);
                        self.barge_at = None;
                        self.in_prompt = true;
                        self.prompt_voiced = self.prompt_voiced.max(frames(t.min_prompt));
                    }
                } else {
                    self.phase = Phase::Speaking {
                        line,
                        pos: end,
                        barged,
                    };
                }
            }
            Phase::Greeting { pos } => {
                let audio = match &self.role {
                    Role::Voicemail { greeting } => greeting.audio.clone(),
                    Role::Announcement { audio } => audio.audio.clone(),
                    Role::Talker { .. } => Arc::from(Vec::new()),
                };
                let end = (pos + say.len()).min(audio.len());
                let n = end.saturating_sub(pos);
                say[..n].copy_from_slice(&audio[pos..end]);
                if end >= audio.len() {
                    self.phase = Phase::Listening;
                    self.spoke_until = f;
                    self.greeted = true;
                    // Anything the bot said over the greeting is not a message.
                    self.in_prompt = false;
                    self.record.bot_prompts_heard = 0;
                    self.publish();
                } else {
                    self.phase = Phase::Greeting { pos: end };
                }
            }
            _ => {}
        }

        // 4. Hang-up rules.
        if f >= frames(t.max_call) {
            return self.hang_up("max call length reached");
        }
        if self.phase != Phase::Listening || self.in_prompt {
            return Control::Continue;
        }
        let quiet_since = self.last_voice.unwrap_or(0).max(self.spoke_until);
        let quiet = f.saturating_sub(quiet_since);
        match &self.role {
            Role::Announcement { .. } => {
                if self.greeted {
                    return self.hang_up("announcement over");
                }
            }
            Role::Voicemail { .. } => {
                let spoke_after_greeting = self.last_voice.is_some_and(|v| v > self.spoke_until);
                if spoke_after_greeting && quiet >= frames(t.done_silence) {
                    return self.hang_up("message recorded");
                }
                if !spoke_after_greeting && quiet >= frames(t.voicemail_no_message) {
                    return self.hang_up("no message after the beep");
                }
            }
            Role::Talker { lines, .. } => {
                let bot_answered = self.last_voice.is_some_and(|v| v > self.fresh_until);
                if self.next_line >= lines.len() {
                    if bot_answered && quiet >= frames(t.done_silence) {
                        return self.hang_up("nothing left to say and the bot is silent");
                    }
                    if !bot_answered && quiet >= frames(t.last_reply_wait) {
                        return self.hang_up("the bot did not answer my last line");
                    }
                }
                if quiet >= frames(t.bot_silent_max) {
                    return self.hang_up("the bot said nothing");
                }
            }
        }
        Control::Continue
    }
}

impl CallAgent for Callee {
    fn on_answered(&mut self, _now: Instant) {
        self.answered();
    }

    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        self.step(heard, say)
    }

    fn on_ended(&mut self, _now: Instant) {
        self.record.ended = true;
        self.publish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(text: &str, ms: usize) -> Line {
        Line {
            text: text.into(),
            audio: vec![3000i16; 8 * ms].into(),
        }
    }

    /// Drives a callee against a scripted bot: `bot` says which frames carry
    /// bot speech. Returns, per frame, whether the callee spoke.
    fn run(
        c: &mut Callee,
        frames: usize,
        bot: impl Fn(usize) -> bool,
    ) -> (Vec<bool>, Option<String>) {
        let loud = vec![4000i16; FRAME];
        let quiet = vec![0i16; FRAME];
        let mut spoke = Vec::new();
        for i in 0..frames {
            let mut say = vec![0i16; FRAME];
            let ctl = c.step(if bot(i) { &loud } else { &quiet }, &mut say);
            spoke.push(frame_rms(&say) > 100.0);
            if let Control::Hangup(w) = ctl {
                return (spoke, Some(w));
            }
        }
        (spoke, None)
    }

    fn first_after(v: &[bool], from: usize) -> Option<usize> {
        (from..v.len()).find(|&i| v[i])
    }

    #[test]
    fn replies_after_the_prompt_ends_with_a_human_gap_and_hangs_up_when_done() {
        let lines = vec![line("yes", 600), line("right", 400)];
        let mut c = Callee::new(
            Role::Talker {
                lines,
                barge_in: false,
            },
            Timing::default(),
            1,
        );
        c.answered();
        // Bot prompt 1: frames 0..100 (2 s), prompt 2: 200..300, a goodbye at 420..450.
        let (spoke, hung) = run(&mut c, 2000, |i| {
            i < 100 || (200..300).contains(&i) || (420..450).contains(&i)
        });
        // Ends at frame 100, silence 35 frames, then a 10..25 frame gap.
        let r1 = first_after(&spoke, 0).unwrap();
        assert!(
            (100 + 35 + 10..=100 + 36 + 25).contains(&r1),
            "first reply at {r1}"
        );
        assert!(!spoke[..100].iter().any(|&s| s), "never over the bot");
        let r2 = first_after(&spoke, 200).unwrap();
        assert!(
            (300 + 35 + 10..=300 + 36 + 25).contains(&r2),
            "second reply at {r2}"
        );
        // Mouth to ear, at the callee: the end of each new line to the bot's next
        // prompt (the extra line is not timed: no new answer was due).
        let last_before = |to: usize| (0..to).rev().find(|&i| spoke[i]).unwrap();
        assert_eq!(
            c.record().reply_ms,
            vec![
                (200 - last_before(200)) as u64 * FRAME_MS,
                (420 - last_before(420)) as u64 * FRAME_MS
            ]
        );
        // The goodbye gets the one extra reply (the last line again).
        assert_eq!(c.record().lines_said, vec!["yes", "right", "right"]);
        assert_eq!(c.record().bot_prompts_heard, 3);
        let why = hung.expect("hangs up");
        assert!(why.contains("nothing left"), "{why}");
        // 3 s after the end of the extra line.
        let extra = first_after(&spoke, 450).unwrap();
        assert!(
            spoke.len() <= extra + 20 + 150 + 2,
            "hung up at {}",
            spoke.len()
        );
    }

    #[test]
    fn a_pause_inside_a_prompt_is_not_the_end_and_clicks_are_not_prompts() {
        let mut c = Callee::new(
            Role::Talker {
                lines: vec![line("yes", 200)],
                barge_in: false,
            },
            Timing::default(),
            2,
        );
        c.answered();
        // A 5-frame click at 0, a prompt 100..150, a 600 ms pause, more prompt 180..230.
        let (spoke, _) = run(&mut c, 400, |i| {
            i < 5 || (100..150).contains(&i) || (180..230).contains(&i)
        });
        let r = first_after(&spoke, 0).unwrap();
        assert!(r > 230 + 35, "replied at {r}");
        assert_eq!(c.record().bot_prompts_heard, 1);
    }

    #[test]
    fn the_bot_resuming_during_our_pause_keeps_the_line() {
        let t = Timing {
            gap: (Duration::from_millis(500), Duration::from_millis(500)),
            ..Timing::default()
        };
        let mut c = Callee::new(
            Role::Talker {
                lines: vec![line("a", 200), line("b", 200)],
                barge_in: false,
            },
            t,
            3,
        );
        c.answered();
        // Prompt 0..50, silence 35 frames → gap of 25 frames; the bot resumes at frame 100.
        let (spoke, _) = run(&mut c, 400, |i| i < 50 || (100..150).contains(&i));
        let r = first_after(&spoke, 0).unwrap();
        assert!(r > 150, "replied at {r}");
        assert_eq!(c.record().lines_said, vec!["a"]);
        assert_eq!(c.record().bot_prompts_heard, 1);
    }

    #[test]
    fn an_interrupter_talks_over_the_prompt_about_a_second_in() {
        let mut c = Callee::new(
            Role::Talker {
                lines: vec![line("a", 400), line("b", 400)],
                barge_in: true,
            },
            Timing::default(),
            4,
        );
        c.answered();
        // A bot that stops within a frame when talked over: a 4 s prompt that stops when we talk.
        let stopped = std::cell::Cell::new(None::<usize>);
        let loud = vec![4000i16; FRAME];
        let quiet = vec![0i16; FRAME];
        let mut first = None;
        for i in 0..300 {
            let bot = i < 200 && stopped.get().is_none();
            let mut say = vec![0i16; FRAME];
            c.step(if bot { &loud } else { &quiet }, &mut say);
            if frame_rms(&say) > 100.0 && first.is_none() {
                first = Some(i);
                stopped.set(Some(i));
            }
        }
        let at = first.expect("barged in");
        assert!((45..=66).contains(&at), "barged in at frame {at}");
        assert_eq!(c.record().barge_ins, 1);
        assert_eq!(c.record().lines_said, vec!["a"]);
    }

    #[test]
    fn an_interrupter_the_bot_ignored_repeats_its_answer_after_the_prompt() {
        let mut c = Callee::new(
            Role::Talker {
                lines: vec![line("a", 300), line("b", 300)],
                barge_in: true,
            },
            Timing::default(),
            5,
        );
        c.answered();
        // The bot talks on for 5 s regardless.
        let (_, _) = run(&mut c, 400, |i| i < 250);
        assert_eq!(c.record().lines_said, vec!["a", "a"]);
        assert_eq!(c.record().barge_ins, 1);
    }

    #[test]
    fn voicemail_greets_then_hangs_up_after_the_message() {
        let mut c = Callee::new(
            Role::Voicemail {
                greeting: line("leave a message", 1000),
            },
            Timing::default(),
            6,
        );
        c.answered();
        // Greeting 50 frames; the bot leaves a 2 s message at frames 70..170.
        let (spoke, hung) = run(&mut c, 1000, |i| (70..170).contains(&i));
        assert!(spoke[..50].iter().all(|&s| s));
        assert_eq!(hung.as_deref(), Some("message recorded"));
        assert!(
            spoke.len() >= 170 + 150 && spoke.len() < 170 + 160,
            "{}",
            spoke.len()
        );
        let mut c = Callee::new(
            Role::Voicemail {
                greeting: line("leave a message", 1000),
            },
            Timing::default(),
            6,
        );
        c.answered();
        let (spoke, hung) = run(&mut c, 1000, |_| false);
        assert_eq!(hung.as_deref(), Some("no message after the beep"));
        assert!(spoke.len() < 50 + 401, "{}", spoke.len());
    }

    #[test]
    fn a_silent_bot_is_hung_up_on() {
        let mut c = Callee::new(
            Role::Talker {
                lines: vec![line("a", 300)],
                barge_in: false,
            },
            Timing::default(),
            7,
        );
        c.answered();
        let (spoke, hung) = run(&mut c, 2000, |_| false);
        assert_eq!(hung.as_deref(), Some("the bot said nothing"));
        assert_eq!(spoke.len(), 750);
    }

    #[test]
    fn beep_is_a_one_kilohertz_tone() {
        let b = beep(500);
        assert_eq!(b.len(), 4000);
        let crossings = b.windows(2).filter(|w| w[0] < 0 && w[1] >= 0).count();
        assert!((495..=505).contains(&crossings), "{crossings}");
        assert!(frame_rms(&b[400..560]) > 7000.0);
    }
}
