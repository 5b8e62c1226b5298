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
use waihu_audio::endpoint::{EndpointEvent, SegmentEvent, Segmenter, Utterance};
use waihu_engine::agent::{CallAgent, Control};

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
    /// Blind transfer (REFER) to this number or URI once the current prompt has played.
    Transfer(String),
    /// Call analysis is settled: stop feeding the detector.
    AmdStop,
    /// The words heard up to the pause that ended at `end_ms` make a whole
    /// answer: end the turn now, unless the callee has spoken again since.
    EndTurn {
        end_ms: u64,
    },
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
    /// The callee paused: the audio so far, for speculative ASR.
    Tentative {
        utt: Utterance,
    },
    /// A speculative transcript of (start_ms, end_ms) is ready (sent by the
    /// brain's own ASR task).
    Speculated {
        start_ms: u64,
        end_ms: u64,
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
    /// The answering-machine detector decided (or changed its mind).
    /// `greeting_start`: media time the callee's first utterance began.
    Amd {
        decision: waihu_amd::Decision,
        greeting_start: Option<u64>,
    },
    /// The call is over; `early`: early-media audio heard before any answer.
    Ended {
        early: Vec<i16>,
        /// The trunk that carried the call when it ended (after any failover).
        trunk: Option<String>,
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
    /// A blind transfer the brain asked for: `Some(Some(target))` until it is asked of
    /// the call task, `Some(None)` after.
    transfer: Option<Option<String>>,
    vad_failed: bool,
    /// Early media (a carrier announcement), kept for the brain to classify.
    early: Vec<i16>,
    /// The trunk `early` was heard on: a failover starts it again, since the
    /// call's fate is the last trunk's.
    early_trunk: Option<String>,
    /// The trunk carrying the call, as the runtime sets it.
    trunk: TrunkSlot,
    /// The operator's carrier recordings, narrowed to the answering trunk's
    /// when the call is answered.
    announcements: Option<waihu_amd::Library>,
    /// Answering-machine detection on the first [`AMD_WINDOW_MS`] after answer.
    amd: Option<waihu_amd::Amd>,
}

/// The trunk carrying a call, by name: set by the runtime when it picks one
/// and again on each failover, read by the bot for the carrier recordings
/// that trunk's network plays. Empty when the call goes out without a trunk
/// pool.
pub type TrunkSlot = Arc<std::sync::Mutex<Option<String>>>;

fn trunk_of(slot: &TrunkSlot) -> Option<String> {
    slot.lock().map(|t| t.clone()).unwrap_or(None)
}

/// How long after answer the detector listens at most (a beep can follow a
/// long greeting).
pub const AMD_WINDOW_MS: u64 = 20_000;

impl BotAgent {
    pub(crate) fn new(
        seg: Segmenter,
        to_brain: mpsc::UnboundedSender<BrainIn>,
        from_brain: std_mpsc::Receiver<AgentCmd>,
        current: Arc<AtomicU64>,
        announcements: Option<&waihu_amd::Library>,
        trunk: TrunkSlot,
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
            transfer: None,
            vad_failed: false,
            early: Vec::new(),
            early_trunk: None,
            announcements: announcements.cloned(),
            amd: match waihu_amd::Amd::new() {
                Ok(a) => Some(match announcements {
                    Some(lib) => a.with_fingerprints(&lib.for_trunk(trunk_of(&trunk).as_deref())),
                    None => a,
                }),
                Err(e) => {
                    tracing::warn!(error = %e, "answering-machine detection unavailable");
                    None
                }
            },
            trunk,
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
                AgentCmd::Transfer(target) => {
                    self.transfer.get_or_insert(Some(target));
                }
                AgentCmd::AmdStop => self.amd = None,
                AgentCmd::EndTurn { end_ms } => {
                    let events = self.seg.end_turn(end_ms);
                    self.forward(events);
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

    /// Feeds the detector; it never blocks (a few Goertzel bins per frame).
    fn analyse(&mut self, heard: &[i16]) {
        if self.ms >= AMD_WINDOW_MS {
            self.amd = None;
        }
        let Some(amd) = self.amd.as_mut() else { return };
        if let Some(decision) = amd.push_audio(self.ms, heard) {
            let greeting_start = amd.greeting_start();
            let _ = self.to_brain.send(BrainIn::Amd {
                decision,
                greeting_start,
            });
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
        self.forward(events);
    }

    fn forward(&mut self, events: Vec<SegmentEvent>) {
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
                SegmentEvent::Tentative(utt) => {
                    let _ = self.to_brain.send(BrainIn::Tentative { utt });
                }
            }
        }
    }
}

impl CallAgent for BotAgent {
    fn on_answered(&mut self, _now: Instant) {
        // The answering trunk's recordings (it may not be the first one tried).
        if let Some(lib) = self
            .announcements
            .as_ref()
            .filter(|l| !l.trunks().is_empty())
        {
            let lib = lib.for_trunk(trunk_of(&self.trunk).as_deref());
            self.amd = self.amd.take().map(|a| a.with_fingerprints(&lib));
        }
        let _ = self.to_brain.send(BrainIn::Answered);
    }

    fn on_frame(&mut self, _now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        self.commands();
        // Listen first: a barge-in detected on this frame silences this frame.
        self.listen(heard);
        self.analyse(heard);
        self.play(say);
        self.ms += FRAME_MS;
        if self.playing.is_none() {
            // Asked once; `Some(None)` marks a transfer under way.
            if let Some(target) = self.transfer.as_mut().and_then(Option::take) {
                return Control::Transfer(target);
            }
        }
        match &self.hangup {
            Some(why) if self.playing.is_none() => Control::Hangup(why.clone()),
            _ => Control::Continue,
        }
    }

    fn on_transfer(&mut self, _now: Instant, progress: &waihu_engine::waihu_sip::TransferProgress) {
        // Success: the call task hangs up itself. Failure: the callee is still with us and
        // the conversation is over, so the bot leaves.
        if progress.settled() == Some(false) {
            self.hangup
                .get_or_insert_with(|| "transfer failed / 转接失败".to_string());
        }
    }

    fn on_early_frame(&mut self, _now: Instant, heard: &[i16]) {
        // Compared under the lock, copied only when a failover changed it.
        let moved = self.trunk.lock().is_ok_and(|t| *t != self.early_trunk);
        if moved {
            self.early.clear();
            self.early_trunk = trunk_of(&self.trunk);
        }
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
        let _ = self.to_brain.send(BrainIn::Ended {
            early,
            trunk: trunk_of(&self.trunk),
            ms: self.ms,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_audio::endpoint::EndpointConfig;
    use waihu_speech::{EspeakTts, LangChoice, Style, Synthesizer, Voice};

    fn speech(text: &str) -> Vec<i16> {
        let synth = Synthesizer::new(Arc::new(EspeakTts::default()));
        synth
            .synthesize_all(
                text,
                Voice {
                    style: Style::default(),
                    lang: LangChoice::En,
                    rate: 8000,
                },
            )
            .expect("espeak-ng is installed by scripts/setup.sh")
    }

    fn agent() -> (
        BotAgent,
        mpsc::UnboundedReceiver<BrainIn>,
        std_mpsc::Sender<AgentCmd>,
    ) {
        let vad = waihu_speech::vad::default_vad(8000).unwrap();
        let seg = Segmenter::new(vad, EndpointConfig::default());
        let (tb, rb) = mpsc::unbounded_channel();
        let (ta, ra) = std_mpsc::channel();
        let a = BotAgent::new(
            seg,
            tb,
            ra,
            Arc::new(AtomicU64::new(1)),
            None,
            TrunkSlot::default(),
        );
        (a, rb, ta)
    }

    #[test]
    fn early_media_is_the_last_trunks_and_the_end_names_it() {
        let (mut a, mut rx, _tx) = agent();
        let slot = a.trunk.clone();
        let now = Instant::now();
        *slot.lock().unwrap() = Some("cmcc".into());
        for _ in 0..10 {
            a.on_early_frame(now, &[100; 160]);
        }
        // A failover: what the first trunk played is not this call's fate.
        *slot.lock().unwrap() = Some("unicom".into());
        for _ in 0..3 {
            a.on_early_frame(now, &[-7; 160]);
        }
        a.on_ended(now);
        let mut ended = None;
        while let Ok(m) = rx.try_recv() {
            if let BrainIn::Ended { early, trunk, .. } = m {
                ended = Some((early, trunk));
            }
        }
        let (early, trunk) = ended.expect("ended");
        assert_eq!(trunk.as_deref(), Some("unicom"));
        assert_eq!(early, vec![-7; 480]);
    }

    /// Plays a 10 s prompt while the callee starts talking 1 s in; returns the
    /// frame index where the barge-in was reported and the first silent frame sent.
    fn run(barge_in: bool) -> (Option<usize>, Option<usize>, usize) {
        let (mut a, mut rx, tx) = agent();
        let prompt: Vec<i16> = (0..80_000)
            .map(|i| ((i as f32 * 0.05).sin() * 8000.0) as i16)
            .collect();
        tx.send(AgentCmd::Start { id: 1, barge_in }).unwrap();
        tx.send(AgentCmd::Audio {
            id: 1,
            samples: prompt,
        })
        .unwrap();
        tx.send(AgentCmd::End { id: 1 }).unwrap();
        let callee = speech("Sorry, I am busy right now, please call me back tomorrow afternoon.");
        let now = Instant::now();
        let (mut barge_at, mut silent_at) = (None, None);
        let onset = 50; // 1 s of silence, then the callee talks
        let mut say = vec![0i16; 160];
        for f in 0..300 {
            let heard: Vec<i16> = if f >= onset {
                let i = (f - onset) * 160;
                callee.get(i..i + 160).map_or(vec![0; 160], |s| s.to_vec())
            } else {
                vec![0; 160]
            };
            say.iter_mut().for_each(|x| *x = 0);
            a.on_frame(now, &heard, &mut say);
            while let Ok(m) = rx.try_recv() {
                if matches!(m, BrainIn::BargeIn { .. }) && barge_at.is_none() {
                    barge_at = Some(f);
                }
            }
            if f > 0 && silent_at.is_none() && say.iter().all(|&x| x == 0) {
                silent_at = Some(f);
            }
        }
        (barge_at, silent_at, onset)
    }

    #[test]
    fn barge_in_silences_the_prompt_in_the_frame_it_is_detected() {
        let (barge, silent, onset) = run(true);
        let barge = barge.expect("the callee's speech over the prompt is a barge-in");
        assert_eq!(
            silent,
            Some(barge),
            "the frame that detected it already went out silent"
        );
        // Not before `barge_in_ms` (300 ms = frames onset..=onset+14) of voice: fillers and
        // clicks do not interrupt.
        assert!(
            barge > onset + 300 / 20 - 2,
            "barge-in at frame {barge}, onset {onset}"
        );
        assert!(barge <= onset + 40, "barge-in too late: frame {barge}");
    }

    #[test]
    fn a_voicemail_greeting_and_its_beep_reach_the_brain_as_decisions() {
        let (mut a, mut rx, tx) = agent();
        let mut heard = vec![0i16; 8 * 300];
        heard.extend(speech(
            "Hi, you have reached my voicemail. I can't take your call right now. Please leave a message after the tone.",
        ));
        heard.extend(vec![0i16; 8 * 300]);
        let beep_at = heard.len() as u64 / 8;
        heard.extend((0..8 * 500).map(|i| {
            (10_000.0 * (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin()) as i16
        }));
        heard.extend(vec![0i16; 8 * 1000]);
        let now = Instant::now();
        let mut say = vec![0i16; 160];
        let mut decisions = Vec::new();
        for f in heard.chunks_exact(160) {
            a.on_frame(now, f, &mut say);
            while let Ok(m) = rx.try_recv() {
                if let BrainIn::Amd {
                    decision,
                    greeting_start,
                } = m
                {
                    decisions.push((decision, greeting_start));
                }
            }
        }
        let (first, start) = decisions.first().expect("a decision").clone();
        assert_eq!(first.verdict, waihu_amd::Verdict::Machine, "{decisions:?}");
        assert_eq!(first.reason, waihu_amd::Reason::LongGreeting);
        assert!(first.at_ms <= 2600, "{first:?}");
        assert!(start.is_some_and(|s| s <= 1000), "{start:?}");
        let beep = decisions
            .iter()
            .find(|(d, _)| d.reason == waihu_amd::Reason::Beep)
            .expect("the beep is a decision");
        let end = beep.0.beep_end_ms.expect("beep end");
        assert!(
            end.abs_diff(beep_at + 500) <= 60,
            "{end} vs {}",
            beep_at + 500
        );
        // Once the brain says the analysis is over, no more decisions.
        tx.send(AgentCmd::AmdStop).unwrap();
        a.on_frame(now, &[0; 160], &mut say);
        assert!(a.amd.is_none());
    }

    #[test]
    fn a_prompt_without_barge_in_keeps_playing_over_the_callee() {
        let (barge, silent, _) = run(false);
        assert_eq!(barge, None);
        assert_eq!(silent, None, "the 10 s prompt played on");
    }

    #[test]
    fn a_blind_transfer_is_asked_once_after_the_prompt_and_a_failure_hangs_up() {
        use waihu_engine::waihu_sip::TransferProgress;
        let (mut a, _rx, tx) = agent();
        let now = Instant::now();
        let mut say = [0i16; 160];
        // The transfer line (0.1 s) plays first.
        tx.send(AgentCmd::Start {
            id: 1,
            barge_in: false,
        })
        .unwrap();
        tx.send(AgentCmd::Audio {
            id: 1,
            samples: vec![1000; 800],
        })
        .unwrap();
        tx.send(AgentCmd::End { id: 1 }).unwrap();
        tx.send(AgentCmd::Transfer("4001".into())).unwrap();
        let mut controls = Vec::new();
        for _ in 0..10 {
            controls.push(a.on_frame(now, &[0; 160], &mut say));
        }
        let asked: Vec<usize> = controls
            .iter()
            .enumerate()
            .filter(|(_, c)| **c == Control::Transfer("4001".into()))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            asked,
            vec![4],
            "with the last of the 5 prompt frames, once: {controls:?}"
        );
        assert!(controls[5..].iter().all(|c| *c == Control::Continue));
        // Progress does not end the call; a refusal does.
        a.on_transfer(now, &TransferProgress::Accepted { status: 202 });
        assert_eq!(a.on_frame(now, &[0; 160], &mut say), Control::Continue);
        a.on_transfer(
            now,
            &TransferProgress::Notified {
                status: 486,
                reason: "Busy Here".into(),
                terminated: true,
            },
        );
        assert!(matches!(
            a.on_frame(now, &[0; 160], &mut say),
            Control::Hangup(why) if why.contains("transfer failed")
        ));
    }
}
