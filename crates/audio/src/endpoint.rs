//! Endpointing: from per-frame speech decisions to "the caller started
//! talking", "the caller interrupted the prompt" and "the caller finished".
//!
//! [`Endpointer`] is sans-IO: it is told each frame's media time and whether
//! the VAD heard speech, and queues events for [`Endpointer::poll_event`]. It
//! never reads a clock, so tests run hours of audio in milliseconds and the
//! measured delays are exact. [`Segmenter`] adds the VAD and cuts out each
//! utterance's audio for utterance-at-a-time ASR engines.
use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::vad::{Vad, VadError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EndpointConfig {
    /// Silence after speech that ends an utterance.
    pub end_silence_ms: u32,
    /// Voiced time needed before a start is reported (rejects clicks and blips).
    pub min_speech_ms: u32,
    /// Non-speech that abandons a start not yet confirmed.
    pub start_gap_ms: u32,
    /// An utterance is cut here even if the caller keeps talking.
    pub max_utterance_ms: u32,
    /// Voiced time while a prompt plays needed to report a barge-in (higher
    /// than `min_speech_ms`: interrupting the prompt by mistake costs more).
    pub barge_in_ms: u32,
    /// Audio kept before the detected start when cutting an utterance.
    pub pre_roll_ms: u32,
    /// Audio kept after the last voiced frame when cutting an utterance.
    pub tail_ms: u32,
    /// Silence after speech that reports a [`EndpointEvent::Pause`]: the
    /// caller may be done, so speculative ASR can start on the audio so far
    /// while the endpointer waits for `end_silence_ms`. 0 (the default): never;
    /// the live bot uses 200.
    pub pause_ms: u32,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            end_silence_ms: 500,
            min_speech_ms: 160,
            start_gap_ms: 160,
            max_utterance_ms: 15_000,
            barge_in_ms: 300,
            pre_roll_ms: 300,
            tail_ms: 200,
            pause_ms: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// `end_silence_ms` of silence.
    Silence,
    /// `max_utterance_ms` reached.
    MaxLength,
    /// The audio stream ended.
    Flush,
    /// The listener ended the turn at a pause ([`Endpointer::end_turn`]):
    /// what was said is complete, no need to wait for `end_silence_ms`.
    Early,
}

/// Times are media time in ms from the start of the stream. `detected_ms` is
/// when the decision was made (the end of the frame that made it); the
/// difference to the event's own time is the endpointing delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EndpointEvent {
    SpeechStart {
        start_ms: u64,
        detected_ms: u64,
    },
    /// Speech while a prompt is playing: stop the prompt.
    BargeIn {
        start_ms: u64,
        detected_ms: u64,
    },
    SpeechEnd {
        start_ms: u64,
        end_ms: u64,
        detected_ms: u64,
        reason: EndReason,
    },
    /// `pause_ms` of silence inside an utterance that has not ended: once per
    /// silent stretch. `end_ms` is the end of the last voiced frame; if the
    /// utterance later ends with the same `end_ms`, nothing was said since.
    Pause {
        start_ms: u64,
        end_ms: u64,
        detected_ms: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Candidate {
        start: u64,
        voiced: u64,
        last_voiced_end: u64,
    },
    Speech {
        start: u64,
        voiced: u64,
        last_voiced_end: u64,
        barged: bool,
        /// A pause was reported for this silent stretch.
        paused: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Endpointer {
    cfg: EndpointConfig,
    state: State,
    playing: bool,
    events: VecDeque<EndpointEvent>,
}

impl Endpointer {
    pub fn new(cfg: EndpointConfig) -> Self {
        Endpointer {
            cfg,
            state: State::Idle,
            playing: false,
            events: VecDeque::new(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.cfg
    }

    /// Tell the endpointer whether a prompt is playing (barge-in detection).
    pub fn set_playing(&mut self, playing: bool) {
        self.playing = playing;
    }

    pub fn in_speech(&self) -> bool {
        matches!(self.state, State::Speech { .. })
    }

    /// One frame starting at `start_ms`, `dur_ms` long.
    pub fn handle_frame(&mut self, start_ms: u64, dur_ms: u32, speech: bool) {
        let end = start_ms + dur_ms as u64;
        let c = self.cfg;
        self.state = match self.state {
            State::Idle if speech => self.confirm(start_ms, dur_ms as u64, end),
            State::Idle => State::Idle,
            State::Candidate {
                start,
                voiced,
                last_voiced_end,
            } => {
                if speech {
                    self.confirm(start, voiced + dur_ms as u64, end)
                } else if end - last_voiced_end >= c.start_gap_ms as u64 {
                    State::Idle
                } else {
                    State::Candidate {
                        start,
                        voiced,
                        last_voiced_end,
                    }
                }
            }
            State::Speech {
                start,
                voiced,
                last_voiced_end,
                barged,
                paused,
            } => {
                let (voiced, last_voiced_end, mut paused) = if speech {
                    (voiced + dur_ms as u64, end, false)
                } else {
                    (voiced, last_voiced_end, paused)
                };
                let barged = self.maybe_barge(start, voiced, end, barged);
                if end - start >= c.max_utterance_ms as u64 {
                    self.events.push_back(EndpointEvent::SpeechEnd {
                        start_ms: start,
                        end_ms: end,
                        detected_ms: end,
                        reason: EndReason::MaxLength,
                    });
                    State::Idle
                } else if !speech && end - last_voiced_end >= c.end_silence_ms as u64 {
                    self.events.push_back(EndpointEvent::SpeechEnd {
                        start_ms: start,
                        end_ms: last_voiced_end,
                        detected_ms: end,
                        reason: EndReason::Silence,
                    });
                    State::Idle
                } else {
                    if !speech
                        && !paused
                        && c.pause_ms > 0
                        && end - last_voiced_end >= c.pause_ms as u64
                    {
                        paused = true;
                        self.events.push_back(EndpointEvent::Pause {
                            start_ms: start,
                            end_ms: last_voiced_end,
                            detected_ms: end,
                        });
                    }
                    State::Speech {
                        start,
                        voiced,
                        last_voiced_end,
                        barged,
                        paused,
                    }
                }
            }
        };
    }

    fn confirm(&mut self, start: u64, voiced: u64, end: u64) -> State {
        if voiced < self.cfg.min_speech_ms as u64 {
            return State::Candidate {
                start,
                voiced,
                last_voiced_end: end,
            };
        }
        self.events.push_back(EndpointEvent::SpeechStart {
            start_ms: start,
            detected_ms: end,
        });
        let barged = self.maybe_barge(start, voiced, end, false);
        State::Speech {
            start,
            voiced,
            last_voiced_end: end,
            barged,
            paused: false,
        }
    }

    fn maybe_barge(&mut self, start: u64, voiced: u64, end: u64, barged: bool) -> bool {
        if !barged && self.playing && voiced >= self.cfg.barge_in_ms as u64 {
            self.events.push_back(EndpointEvent::BargeIn {
                start_ms: start,
                detected_ms: end,
            });
            return true;
        }
        barged
    }

    /// The listener decided at `now_ms` that the utterance whose last voiced
    /// frame ended at `end_ms` is complete (its words made sense after a
    /// pause): end it now with [`EndReason::Early`]. Does nothing, and
    /// returns false, when the caller spoke again since (`end_ms` is no
    /// longer the last voiced frame) or no utterance is open: then the turn
    /// goes on and ends by silence as usual.
    pub fn end_turn(&mut self, now_ms: u64, end_ms: u64) -> bool {
        match self.state {
            State::Speech {
                start,
                last_voiced_end,
                ..
            } if last_voiced_end == end_ms => {
                self.events.push_back(EndpointEvent::SpeechEnd {
                    start_ms: start,
                    end_ms,
                    detected_ms: now_ms.max(end_ms),
                    reason: EndReason::Early,
                });
                self.state = State::Idle;
                true
            }
            _ => false,
        }
    }

    /// The stream ended at `now_ms`: close an open utterance.
    pub fn flush(&mut self, now_ms: u64) {
        if let State::Speech {
            start,
            last_voiced_end,
            ..
        } = self.state
        {
            self.events.push_back(EndpointEvent::SpeechEnd {
                start_ms: start,
                end_ms: last_voiced_end,
                detected_ms: now_ms,
                reason: EndReason::Flush,
            });
        }
        self.state = State::Idle;
    }

    pub fn poll_event(&mut self) -> Option<EndpointEvent> {
        self.events.pop_front()
    }
}

/// A stretch of caller audio from a start to an end event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utterance {
    /// Media time of the first sample in `samples` (pre-roll included).
    pub audio_start_ms: u64,
    pub start_ms: u64,
    pub end_ms: u64,
    pub reason: EndReason,
    pub rate: u32,
    pub samples: Vec<i16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentEvent {
    Endpoint(EndpointEvent),
    Utterance(Utterance),
    /// The audio so far of an utterance that paused ([`EndpointEvent::Pause`],
    /// `reason` [`EndReason::Silence`] as if it ended there): for speculative
    /// ASR. The utterance may go on; if it ends with the same `start_ms` and
    /// `end_ms`, its audio is this audio (when `pause_ms` ≥ `tail_ms`).
    Tentative(Utterance),
}

/// VAD + endpointer + audio: push 20 ms frames, get endpoint events and the
/// audio of each finished utterance.
pub struct Segmenter {
    vad: Box<dyn Vad>,
    ep: Endpointer,
    rate: u32,
    now_ms: u64,
    /// Recent frames (start time, samples) for the pre-roll.
    history: VecDeque<(u64, Vec<i16>)>,
    /// Frames of the utterance in progress.
    current: Option<Vec<(u64, Vec<i16>)>>,
}

impl Segmenter {
    pub fn new(vad: Box<dyn Vad>, cfg: EndpointConfig) -> Self {
        let rate = vad.rate();
        Segmenter {
            vad,
            ep: Endpointer::new(cfg),
            rate,
            now_ms: 0,
            history: VecDeque::new(),
            current: None,
        }
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn set_playing(&mut self, playing: bool) {
        self.ep.set_playing(playing);
    }

    /// Push one frame (10, 20 or 30 ms at the VAD's rate).
    pub fn push(&mut self, frame: &[i16]) -> Result<Vec<SegmentEvent>, VadError> {
        let speech = self.vad.is_speech(frame)?;
        let dur = (frame.len() as u64 * 1000 / self.rate as u64) as u32;
        let start = self.now_ms;
        self.now_ms += dur as u64;
        self.ep.handle_frame(start, dur, speech);
        let frame = (start, frame.to_vec());
        if let Some(cur) = &mut self.current {
            cur.push(frame.clone());
        }
        self.history.push_back(frame);
        let c = self.ep.config();
        let keep = (c.pre_roll_ms + c.min_speech_ms + c.start_gap_ms + 100) as u64;
        while self
            .history
            .front()
            .is_some_and(|(t, _)| *t + keep < self.now_ms)
        {
            self.history.pop_front();
        }
        Ok(self.drain())
    }

    /// End the open utterance now if nothing was said after `end_ms`
    /// ([`Endpointer::end_turn`]); the events include its [`Utterance`].
    pub fn end_turn(&mut self, end_ms: u64) -> Vec<SegmentEvent> {
        if self.ep.end_turn(self.now_ms, end_ms) {
            self.drain()
        } else {
            Vec::new()
        }
    }

    /// End of stream: close an utterance in progress.
    pub fn finish(&mut self) -> Vec<SegmentEvent> {
        self.ep.flush(self.now_ms);
        self.drain()
    }

    fn drain(&mut self) -> Vec<SegmentEvent> {
        let mut out = Vec::new();
        while let Some(ev) = self.ep.poll_event() {
            match ev {
                EndpointEvent::SpeechStart { start_ms, .. } => {
                    let from = start_ms.saturating_sub(self.ep.config().pre_roll_ms as u64);
                    self.current = Some(
                        self.history
                            .iter()
                            .filter(|(t, _)| *t >= from)
                            .cloned()
                            .collect(),
                    );
                }
                EndpointEvent::SpeechEnd {
                    start_ms,
                    end_ms,
                    reason,
                    ..
                } => {
                    let until = end_ms + self.ep.config().tail_ms as u64;
                    let frames = self.current.take().unwrap_or_default();
                    let audio_start_ms = frames.first().map(|(t, _)| *t).unwrap_or(start_ms);
                    let samples = frames
                        .into_iter()
                        .filter(|(t, _)| *t < until)
                        .flat_map(|(_, s)| s)
                        .collect();
                    out.push(SegmentEvent::Endpoint(ev));
                    out.push(SegmentEvent::Utterance(Utterance {
                        audio_start_ms,
                        start_ms,
                        end_ms,
                        reason,
                        rate: self.rate,
                        samples,
                    }));
                    continue;
                }
                EndpointEvent::Pause {
                    start_ms, end_ms, ..
                } => {
                    let until = end_ms + self.ep.config().tail_ms as u64;
                    let frames = self.current.as_deref().unwrap_or_default();
                    let audio_start_ms = frames.first().map(|(t, _)| *t).unwrap_or(start_ms);
                    let samples = frames
                        .iter()
                        .filter(|(t, _)| *t < until)
                        .flat_map(|(_, s)| s.iter().copied())
                        .collect();
                    out.push(SegmentEvent::Endpoint(ev));
                    out.push(SegmentEvent::Tentative(Utterance {
                        audio_start_ms,
                        start_ms,
                        end_ms,
                        reason: EndReason::Silence,
                        rate: self.rate,
                        samples,
                    }));
                    continue;
                }
                EndpointEvent::BargeIn { .. } => {}
            }
            out.push(SegmentEvent::Endpoint(ev));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drive the endpointer with a speech pattern of (speech?, ms) runs in 20 ms frames.
    fn run(ep: &mut Endpointer, pattern: &[(bool, u64)]) -> Vec<EndpointEvent> {
        let mut out = run_open(ep, pattern);
        let t = pattern.iter().map(|&(_, ms)| ms / 20 * 20).sum();
        ep.flush(t);
        while let Some(e) = ep.poll_event() {
            out.push(e);
        }
        out
    }

    #[test]
    fn a_pause_is_reported_once_per_silence_and_an_early_end_needs_no_new_speech() {
        let cfg = EndpointConfig {
            pause_ms: 200,
            ..EndpointConfig::default()
        };
        // Speech 0..600, a 300 ms pause, speech 900..1400, then silence.
        let mut ep = Endpointer::new(cfg);
        let ev = run(
            &mut ep,
            &[(true, 600), (false, 300), (true, 500), (false, 1000)],
        );
        let pauses: Vec<_> = ev
            .iter()
            .filter(|e| matches!(e, EndpointEvent::Pause { .. }))
            .collect();
        assert_eq!(
            pauses,
            vec![
                &EndpointEvent::Pause {
                    start_ms: 0,
                    end_ms: 600,
                    detected_ms: 800
                },
                &EndpointEvent::Pause {
                    start_ms: 0,
                    end_ms: 1400,
                    detected_ms: 1600
                },
            ]
        );
        assert!(ev.contains(&EndpointEvent::SpeechEnd {
            start_ms: 0,
            end_ms: 1400,
            detected_ms: 1900,
            reason: EndReason::Silence
        }));

        // Ending the turn at the first pause after the caller spoke again does nothing.
        let mut ep = Endpointer::new(cfg);
        let _ = run_open(&mut ep, &[(true, 600), (false, 300), (true, 100)]);
        assert!(!ep.end_turn(1000, 600));
        assert!(ep.in_speech());
        // At the pause the caller's last voiced frame is still 600: it ends there.
        let mut ep = Endpointer::new(cfg);
        let _ = run_open(&mut ep, &[(true, 600), (false, 260)]);
        assert!(ep.end_turn(860, 600));
        assert_eq!(
            ep.poll_event(),
            Some(EndpointEvent::SpeechEnd {
                start_ms: 0,
                end_ms: 600,
                detected_ms: 860,
                reason: EndReason::Early
            })
        );
        assert!(!ep.in_speech());
        assert!(!ep.end_turn(900, 600), "only once");
    }

    /// A VAD that calls a frame speech when its first sample is non-zero.
    struct Level;
    impl Vad for Level {
        fn rate(&self) -> u32 {
            8000
        }
        fn is_speech(&mut self, frame: &[i16]) -> Result<bool, VadError> {
            Ok(frame.first().is_some_and(|&s| s != 0))
        }
        fn reset(&mut self) {}
    }

    #[test]
    fn the_segmenter_hands_out_the_audio_so_far_at_a_pause_and_the_same_audio_at_an_early_end() {
        let cfg = EndpointConfig {
            pause_ms: 200,
            ..EndpointConfig::default()
        };
        let mut seg = Segmenter::new(Box::new(Level), cfg);
        let mut tentative = None;
        // 400 ms of silence, 600 ms of "speech" (sample value = frame index), then silence.
        for i in 0..100u64 {
            let v = if (20..50).contains(&i) { i as i16 } else { 0 };
            for ev in seg.push(&[v; 160]).unwrap() {
                if let SegmentEvent::Tentative(u) = ev {
                    assert!(tentative.is_none(), "one tentative per pause");
                    tentative = Some(u);
                }
            }
            if tentative.is_some() {
                break;
            }
        }
        let t = tentative.expect("a pause after 200 ms of silence");
        assert_eq!((t.start_ms, t.end_ms), (400, 1000));
        let ends = seg.end_turn(t.end_ms);
        let Some(SegmentEvent::Utterance(u)) = ends.last() else {
            panic!("an utterance: {ends:?}")
        };
        assert_eq!(u.reason, EndReason::Early);
        assert_eq!(
            (u.start_ms, u.end_ms, &u.samples),
            (t.start_ms, t.end_ms, &t.samples)
        );
        // From the pre-roll (300 ms before 400) to the end of the tail (1000 + 200).
        assert_eq!(u.samples.len(), 1100 * 8);
    }

    /// Like [`run`] without the flush: the utterance stays open.
    fn run_open(ep: &mut Endpointer, pattern: &[(bool, u64)]) -> Vec<EndpointEvent> {
        let mut t = 0;
        let mut out = Vec::new();
        for &(speech, ms) in pattern {
            for _ in 0..ms / 20 {
                ep.handle_frame(t, 20, speech);
                t += 20;
                while let Some(e) = ep.poll_event() {
                    out.push(e);
                }
            }
        }
        out
    }

    #[test]
    fn start_and_end_with_exact_delays() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        let ev = run(&mut ep, &[(false, 1000), (true, 1200), (false, 1000)]);
        assert_eq!(
            ev,
            vec![
                EndpointEvent::SpeechStart {
                    start_ms: 1000,
                    detected_ms: 1160
                },
                EndpointEvent::SpeechEnd {
                    start_ms: 1000,
                    end_ms: 2200,
                    detected_ms: 2700,
                    reason: EndReason::Silence
                },
            ]
        );
    }

    #[test]
    fn short_blips_and_short_pauses_are_ignored() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        // A 60 ms click, then speech with a 300 ms pause inside (shorter than 500 ms).
        let ev = run(
            &mut ep,
            &[
                (true, 60),
                (false, 500),
                (true, 600),
                (false, 300),
                (true, 400),
                (false, 800),
            ],
        );
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert_eq!(
            ev[0],
            EndpointEvent::SpeechStart {
                start_ms: 560,
                detected_ms: 720
            }
        );
        assert!(matches!(
            ev[1],
            EndpointEvent::SpeechEnd {
                start_ms: 560,
                end_ms: 1860,
                reason: EndReason::Silence,
                ..
            }
        ));
    }

    #[test]
    fn configurable_end_silence() {
        let mut ep = Endpointer::new(EndpointConfig {
            end_silence_ms: 800,
            ..Default::default()
        });
        let ev = run(
            &mut ep,
            &[(true, 400), (false, 600), (true, 200), (false, 1000)],
        );
        assert_eq!(ev.len(), 2, "{ev:?}");
        assert!(matches!(
            ev[1],
            EndpointEvent::SpeechEnd {
                end_ms: 1200,
                detected_ms: 2000,
                ..
            }
        ));
    }

    #[test]
    fn max_utterance_cuts_and_restarts() {
        let mut ep = Endpointer::new(EndpointConfig {
            max_utterance_ms: 2000,
            ..Default::default()
        });
        let ev = run(&mut ep, &[(true, 3000), (false, 600)]);
        assert!(matches!(
            ev[1],
            EndpointEvent::SpeechEnd {
                start_ms: 0,
                end_ms: 2000,
                reason: EndReason::MaxLength,
                ..
            }
        ));
        assert!(matches!(
            ev[2],
            EndpointEvent::SpeechStart { start_ms: 2000, .. }
        ));
        assert!(matches!(
            ev[3],
            EndpointEvent::SpeechEnd {
                end_ms: 3000,
                reason: EndReason::Silence,
                ..
            }
        ));
    }

    #[test]
    fn barge_in_only_while_playing_and_after_enough_speech() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        ep.set_playing(true);
        // 200 ms is a start but not enough to interrupt.
        let ev = run(&mut ep, &[(false, 100), (true, 200), (false, 600)]);
        assert!(
            !ev.iter()
                .any(|e| matches!(e, EndpointEvent::BargeIn { .. })),
            "{ev:?}"
        );
        let mut ep = Endpointer::new(EndpointConfig::default());
        ep.set_playing(true);
        let ev = run(&mut ep, &[(false, 100), (true, 500), (false, 600)]);
        assert_eq!(
            ev[1],
            EndpointEvent::BargeIn {
                start_ms: 100,
                detected_ms: 400
            }
        );
        let mut ep = Endpointer::new(EndpointConfig::default());
        let ev = run(&mut ep, &[(true, 500), (false, 600)]);
        assert!(!ev
            .iter()
            .any(|e| matches!(e, EndpointEvent::BargeIn { .. })));
    }

    #[test]
    fn flush_closes_open_speech() {
        let mut ep = Endpointer::new(EndpointConfig::default());
        let ev = run(&mut ep, &[(true, 400)]);
        assert!(matches!(
            ev[1],
            EndpointEvent::SpeechEnd {
                reason: EndReason::Flush,
                end_ms: 400,
                ..
            }
        ));
    }
}
