//! The real-time half of the bot: runs inside the call task every 20 ms. It
//! plays the audio the brain streams to it, runs the VAD and endpointer on
//! what it hears, stops a prompt within one frame on a barge-in the prompt
//! allows, and hands finished utterances to the brain. It never blocks: the
//! brain (ASR, NLU, dialog, TTS) runs in its own task.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use waihu_engine::agent::{CallAgent, Control};
use waihu_speech::endpoint::{EndpointEvent, SegmentEvent, Segmenter, Utterance};

/// Media time of one frame.
pub const FRAME_MS: u64 = 20;

/// From the brain to the agent.
#[derive(Debug)]
pub(crate) enum AgentCmd {
    /// A new prompt starts: audio with this id follows; earlier prompts are dropped.
    Start {
        id: u64,
        barge_in: bool,
    },
    Audio {
        id: u64,
        samples: Vec<i16>,
    },
    /// No more audio for this prompt.
    End {
        id: u64,
    },
    /// Stop playing now.
    Stop,
    Hangup(String),
}

/// From the agent to the brain. Times are media ms since the answer.
#[derive(Debug)]
pub(crate) enum BrainIn {
    Answered,
    /// The callee talked over a prompt that allows it; playback already stopped.
    BargeIn {
        ms: u64,
    },
    Utterance {
        utt: Utterance,
        detected_ms: u64,
    },
    /// The first frame of prompt `id` went out.
    PlayStarted {
        id: u64,
        ms: u64,
    },
    /// The last frame of prompt `id` went out.
    PlayDone {
        id: u64,
        ms: u64,
    },
    Dtmf {
        digit: char,
    },
    /// The call is over; `early`: early-media audio heard before any answer.
    Ended {
        early: Vec<i16>,
        ms: u64,
    },
}

struct Playing {
    id: u64,
    barge_in: bool,
    started: bool,
    ended: bool,
}

/// The bot's [`CallAgent`]. Made by [`crate::start`].
pub struct BotAgent {
    seg: Segmenter,
    to_brain: mpsc::UnboundedSender<BrainIn>,
    from_brain: std_mpsc::Receiver<AgentCmd>,
    /// The prompt id the brain wants played; TTS producers stop when it moves on.
    pub(crate) current: Arc<AtomicU64>,
    queue: VecDeque<i16>,
    playing: Option<Playing>,
    ms: u64,
    hangup: Option<String>,
    vad_failed: bool,
    /// Early media (a carrier announcement), kept for the brain to classify.
    early: Vec<i16>,
}

impl BotAgent {
    pub(crate) fn new(
        seg: Segmenter,
        to_brain: mpsc::UnboundedSender<BrainIn>,
        from_brain: std_mpsc::Receiver<AgentCmd>,
        current: Arc<AtomicU64>,
    ) -> BotAgent {
        BotAgent {
            seg,
            to_brain,
            from_brain,
            current,
            queue: VecDeque::with_capacity(8000),
            playing: None,
            ms: 0,
            hangup: None,
            vad_failed: false,
            early: Vec::new(),
        }
    }

    fn commands(&mut self) {
        while let Ok(cmd) = self.from_brain.try_recv() {
            match cmd {
                AgentCmd::Start { id, barge_in } => {
                    self.queue.clear();
                    self.playing = Some(Playing {
                        id,
                        barge_in,
                        started: false,
                        ended: false,
                    });
                }
                AgentCmd::Audio { id, samples } => {
                    if self.playing.as_ref().is_some_and(|p| p.id == id) {
                        self.queue.extend(samples);
                    }
                }
                AgentCmd::End { id } => {
                    if let Some(p) = self.playing.as_mut().filter(|p| p.id == id) {
                        p.ended = true;
                    }
                }
                AgentCmd::Stop => self.stop(),
                AgentCmd::Hangup(why) => {
                    self.hangup.get_or_insert(why);
                }
            }
        }
    }

    fn stop(&mut self) {
        self.queue.clear();
        self.playing = None;
        self.current.store(0, Ordering::Relaxed);
    }

    fn play(&mut self, say: &mut [i16]) {
        let Some(p) = &mut self.playing else { return };
        if !self.queue.is_empty() {
            if !p.started {
                p.started = true;
                let _ = self.to_brain.send(BrainIn::PlayStarted {
                    id: p.id,
                    ms: self.ms,
                });
            }
            for s in say.iter_mut() {
                match self.queue.pop_front() {
                    Some(x) => *s = x,
                    None => break,
                }
            }
        }
        if self.queue.is_empty() && p.ended {
            let _ = self.to_brain.send(BrainIn::PlayDone {
                id: p.id,
                ms: self.ms + FRAME_MS,
            });
            self.playing = None;
        }
    }

    fn listen(&mut self, heard: &[i16]) {
        if self.vad_failed {
            return;
        }
        self.seg.set_playing(self.playing.is_some());
        let events = match self.seg.push(heard) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "VAD failed; the bot stops listening");
                self.vad_failed = true;
                return;
            }
        };
        for ev in events {
            match ev {
                SegmentEvent::Endpoint(EndpointEvent::BargeIn { detected_ms, .. }) => {
                    if self.playing.as_ref().is_some_and(|p| p.barge_in) {
                        // Within this frame: the next frame we send is silence.
                        self.stop();
                        let _ = self.to_brain.send(BrainIn::BargeIn { ms: detected_ms });
                    }
                }
                SegmentEvent::Endpoint(_) => {}
                SegmentEvent::Utterance(utt) => {
                    let detected_ms = self.seg.now_ms();
                    let _ = self.to_brain.send(BrainIn::Utterance { utt, detected_ms });
                }
            }
        }
    }
}

impl CallAgent for BotAgent {
    fn on_answered(&mut self, _now: Instant) {
        let _ = self.to_brain.send(BrainIn::Answered);
    }

    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        self.commands();
        // Listen first: a barge-in detected on this frame silences this frame.
        self.listen(heard);
        self.play(say);
        self.ms += FRAME_MS;
        match &self.hangup {
            Some(why) if self.playing.is_none() => Control::Hangup(why.clone()),
            _ => Control::Continue,
        }
    }

    fn on_early_frame(&mut self, _now: Instant, heard: &[i16]) {
        // Up to 12 s: enough for any announcement, bounded for a long ringback.
        if self.early.len() < 12 * 8000 {
            self.early.extend_from_slice(heard);
        }
    }

    fn on_dtmf(&mut self, _now: Instant, digit: char) {
        let _ = self.to_brain.send(BrainIn::Dtmf { digit });
    }

    fn on_ended(&mut self, _now: Instant) {
        self.current.store(0, Ordering::Relaxed);
        let early = std::mem::take(&mut self.early);
        let _ = self.to_brain.send(BrainIn::Ended { early, ms: self.ms });
    }
}
