//! The voice bot of one call. [`start`] returns a [`BotAgent`] for the call
//! task (see `waihu_engine::agent`) and the brain, a future to spawn: it
//! transcribes each utterance the agent cuts out (ASR slots shared by all
//! calls), understands it (NLU + emotion), steps the script's interpreter,
//! and streams the reply's speech back to the agent sentence by sentence.
//! The brain's report is the call's transcript, path, business outcome,
//! actions and per-turn latency breakdown; live notes (current node, each
//! turn) go to a channel as they happen, for the store and the dashboard.
mod agent;
pub mod kit;
pub mod preview;
pub mod text;
pub mod turn;
pub mod voice;
pub use kit::KitError;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, Semaphore};
use waihu_audio::endpoint::{EndpointConfig, Segmenter, Utterance};
use waihu_core::NluResult;
use waihu_dialog::{Action, Input, Interpreter, Language, MissingVariables, Output, Program};
use waihu_nlu::{Nlu, Tz};
use waihu_speech::asr::{AsrOptions, UtteranceAsr};
use waihu_speech::{LangChoice, StyleBook, Synthesizer, Voice};

use agent::{AgentCmd, BrainIn};
pub use agent::{BotAgent, TrunkSlot, FRAME_MS};
pub use voice::{VoiceCheck, VoiceChecker, VoiceMatch};

/// Call audio rate (G.711).
pub const RATE: u32 = 8000;

/// What every call of a process shares: the recogniser (with a bound on how
/// many utterances it decodes at once), the synthesiser and its cache, the
/// voice styles and the endpointing settings.
pub struct Kit {
    pub asr: Arc<dyn UtteranceAsr>,
    /// Utterances decoded at once; the rest queue (their wait counts as ASR time).
    pub asr_slots: Arc<Semaphore>,
    /// Utterances waiting for one of those slots now ([`Kit::asr_permit`]),
    /// and how many slots there are: the live wall's ASR queue.
    pub asr_waiting: Arc<std::sync::atomic::AtomicU32>,
    pub asr_capacity: u32,
    pub synth: Synthesizer,
    pub styles: StyleBook,
    pub endpoint: EndpointConfig,
    /// Answers out-of-script questions from a script's `knowledge:` (the
    /// runtime's language model behind its guardrails). None: such questions
    /// go through the script's rules like any other words.
    pub answerer: Option<Arc<dyn Answerer>>,
    /// Checks the callee's voice against their voiceprint and the fraud
    /// watchlist (`voice.*` in scripts). None: no check, the variables stay
    /// unset.
    pub voice: Option<Arc<dyn VoiceChecker>>,
    /// Operators' recordings of their carriers' announcements: heard in early
    /// media or after answer, they are recognised by their audio fingerprint
    /// (before, and without, any ASR). None: words and SIT tones only.
    pub announcements: Option<waihu_amd::Library>,
    /// Terms that bias recognition (a campaign's `asr.vocabulary`): literal
    /// words and `{variable}` references to the call's variables, expanded
    /// per call by [`asr_vocabulary`]. Empty: no prompt at all.
    pub vocabulary: Vec<String>,
}

/// The lead-in of a Mandarin decoder prompt when a vocabulary is set: it
/// keeps Whisper in Simplified characters and in spoken sentences.
pub const ZH_PROMPT: &str = "以下是普通话的句子。";

/// A call's recognition vocabulary: each term as written, a `{name}` replaced
/// by the call variable's value (left out when the call has none); blank and
/// repeated terms dropped, at most 32 terms of 64 characters.
pub fn asr_vocabulary(terms: &[String], vars: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in terms {
        let t = t.trim();
        let value = match t.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
            Some(name) => vars
                .iter()
                .find(|(k, _)| k == name.trim())
                .map(|(_, v)| v.trim()),
            None => Some(t),
        };
        if let Some(v) = value.filter(|v| !v.is_empty() && v.chars().count() <= 64) {
            if !out.iter().any(|o| o == v) && out.len() < 32 {
                out.push(v.to_string());
            }
        }
    }
    out
}

/// What an [`Answerer`] says to an out-of-script question: the sentences that
/// passed the guardrails (none: the script's fallback line is said instead),
/// and why it fell back or stopped short, if it did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KnowledgeReply {
    pub spoken: Vec<String>,
    pub why_not: Option<String>,
}

/// Answers a caller's question from the script's knowledge during a call. The
/// bot asks only when [`Interpreter::wants_knowledge`] says the words are such
/// a question; `values` are the call's variable values an answer may state.
pub trait Answerer: Send + Sync {
    fn answer(
        &self,
        prog: Arc<Program>,
        question: String,
        values: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = KnowledgeReply> + Send>>;
}

/// A script ready to run: the program and its NLU (built-in intents plus the
/// script's own, trained once and shared by every call of the script).
pub struct ScriptKit {
    pub prog: Arc<Program>,
    pub nlu: Arc<Nlu>,
}

/// The NLU of a script: the built-in intents plus the script's own. One
/// place, so `waihu script chat|test` hear exactly what live calls hear.
pub fn script_nlu(prog: &Program) -> Result<Nlu, waihu_nlu::Error> {
    let custom: Vec<waihu_nlu::CustomIntent> = prog
        .intents
        .iter()
        .map(|i| waihu_nlu::CustomIntent {
            name: i.name.clone(),
            description: None,
            examples: i.examples.clone(),
            keywords: i.keywords.clone(),
            regexes: Vec::new(),
        })
        .collect();
    let nlu = Nlu::with_custom(&custom)?;
    Ok(attach_encoder(nlu, !custom.is_empty()))
}

/// The NLU with the sentence encoder (second stage) when the script has
/// intents of its own and the model is installed (`scripts/deps/encoder.sh`);
/// otherwise the linear model alone, as before.
pub fn attach_encoder(nlu: Nlu, has_custom: bool) -> Nlu {
    match (has_custom, waihu_nlu::encoder::installed()) {
        (true, Some(enc)) => nlu.with_encoder(enc),
        _ => nlu,
    }
}

impl ScriptKit {
    pub fn new(prog: Program) -> Result<ScriptKit, waihu_nlu::Error> {
        let nlu = script_nlu(&prog)?;
        Ok(ScriptKit {
            prog: Arc::new(prog),
            nlu: Arc::new(nlu),
        })
    }

    /// Every style the script names is in `styles` (the book its calls speak
    /// with): checked once at load, so no prompt falls back to a default voice.
    pub fn check_styles(&self, styles: &StyleBook) -> Result<(), waihu_dialog::LoadError> {
        let names: Vec<&str> = styles.names().collect();
        self.prog.check_styles(&names)
    }

    pub fn lang(&self) -> &'static str {
        lang_code(self.prog.language)
    }
}

/// A script language's code, `zh` or `en` (how the speech kit names it).
pub fn lang_code(l: Language) -> &'static str {
    match l {
        Language::Zh => "zh",
        Language::En => "en",
    }
}

/// The voice language a script in `l` speaks.
pub(crate) fn lang_choice(l: Language) -> LangChoice {
    match l {
        Language::Zh => LangChoice::Zh,
        Language::En => LangChoice::En,
    }
}

/// The wall clock of the conversation (the campaign's clock: the demo runs
/// a business day's clock so it can run at any hour).
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// One call's inputs.
pub struct CallSetup {
    /// Script variables from the customer record and the campaign.
    pub vars: Vec<(String, String)>,
    /// Picks A/B prompt variants (hash of the call id).
    pub seed: u64,
    /// Variants chosen for this call by the campaign's bandits: (state, variant id).
    pub variants: Vec<(String, String)>,
    /// The callee's zone (relative times like "tomorrow at 3").
    pub tz: Tz,
    pub clock: Clock,
    /// Warm transfer: when set and the conversation ends with a transfer to a
    /// queue, the brain hands the call over here instead of hanging up (the
    /// runtime's handoff agent takes the call's media from the next frame).
    pub handoff: Option<std_mpsc::Sender<HandoffRequest>>,
    /// The store's customer called, and the number (E.164), for the voice check.
    pub customer: Option<i64>,
    pub phone: String,
    /// The trunk carrying the call, kept current by the runtime (see
    /// [`TrunkSlot`]); a default (empty) slot when there is no trunk pool.
    pub trunk: TrunkSlot,
}

/// The bot hands a live call to a human queue (转人工): what the agent's
/// whisper is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct HandoffRequest {
    pub queue: String,
    /// The callee's intents so far, oldest first (no words: those are personal data).
    pub intents: Vec<String>,
    /// The callee's last emotion.
    pub emotion: Option<String>,
    /// The script states visited.
    pub path: Vec<String>,
}

// The transcript vocabulary is core's (the store keeps these very turns);
// re-exported so the bot's callers needn't name two crates.
pub use waihu_core::{Speaker, Turn, VoiceFeatures};

/// Where a turn's latency went: end of the callee's speech → first audio of
/// the reply, in ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub total_ms: f64,
    /// Silence the endpointer waited for before calling the turn over.
    pub endpoint_ms: f64,
    /// Including the wait for a free ASR slot.
    pub asr_ms: f64,
    pub asr_wait_ms: f64,
    pub nlu_ms: f64,
    pub dialog_ms: f64,
    pub tts_first_ms: f64,
}

/// Live notes while the call runs.
#[derive(Debug, Clone)]
pub enum Note {
    Node {
        state: String,
        emotion: Option<String>,
    },
    Turn(Box<Turn>),
}

/// What the brain reports when the call is over.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BotReport {
    pub turns: Vec<Turn>,
    /// Where the time went for each callee turn the bot replied to, in order
    /// (that turn's `latency_ms` is the `total_ms` here).
    pub latencies: Vec<Latency>,
    pub path: Vec<String>,
    /// Parallel to `path`: the A/B prompt variant played in each state (None: one prompt).
    pub path_variants: Vec<Option<String>>,
    /// The script's business outcome and intention level (None: hung up before one was set).
    pub outcome: Option<String>,
    pub level: Option<String>,
    pub actions: Vec<Action>,
    /// The first thing heard was a voicemail greeting.
    pub voicemail: bool,
    pub barge_ins: u32,
    /// Callee utterances taken as the end of their previous answer, because
    /// they began before the prompt that followed it (see [`turn::is_continuation`]).
    pub continuations: u32,
    /// Out-of-script questions answered from the script's knowledge, and how
    /// many of them got the fallback line instead of an answer.
    pub knowledge_answers: u32,
    pub knowledge_fallbacks: u32,
    /// Why the bot hung up (None: the callee did).
    pub bot_hangup: Option<String>,
    /// The number or URI the conversation ended transferring the callee to by REFER (the
    /// script's `transfer: {number}` without an agent desk).
    pub blind_transfer: Option<String>,
    /// What a carrier announcement in the early media said (unanswered calls).
    pub announcement: Option<String>,
    /// The network outcome that announcement means, when it names one.
    pub network_outcome: Option<waihu_core::CallOutcome>,
    /// What answered, as the call's answering-machine detection saw it
    /// (answered calls, and unanswered ones whose early media named a cause).
    pub analysis: Option<Analysis>,
    /// Speculative ASR at the callee's pauses.
    pub speculation: Speculation,
    /// The voiceprint check of the callee, when one ran.
    pub voice: Option<VoiceCheck>,
    pub errors: Vec<String>,
}

/// What speculative ASR did in a call: transcripts started at a pause, the
/// turns that ended with the audio a transcript already covered (no ASR
/// wait after the end), turns ended early because the words at the pause
/// made a whole answer, and pauses not transcribed because every ASR slot
/// was busy (load shedding: turns that did end come first).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Speculation {
    pub started: u32,
    pub hits: u32,
    pub early_ends: u32,
    pub shed: u32,
}

/// A transcript started at a pause: its utterance's (start, end) and result.
struct Spec {
    start_ms: u64,
    end_ms: u64,
    task: Option<tokio::task::JoinHandle<Result<String, String>>>,
    done: Option<Result<String, String>>,
}

/// The call's answering-machine detection, for the store and the reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Analysis {
    /// What the call acted on last: `human`, `machine`, `announcement`, `silence`.
    pub verdict: String,
    pub reason: String,
    /// Media ms from answer to the detector's first decision.
    pub decided_ms: u64,
    /// Media ms from answer to the decision acted on last.
    pub final_ms: u64,
    pub announcement: Option<waihu_amd::Announcement>,
    pub beep_end_ms: Option<u64>,
    /// The script's voicemail message was left.
    pub message_left: bool,
}

impl Analysis {
    pub fn event(&self) -> waihu_core::EventKind {
        waihu_core::EventKind::CallAnalysed {
            verdict: self.verdict.clone(),
            reason: self.reason.clone(),
            decided_ms: self.decided_ms,
            final_ms: self.final_ms,
            announcement: self.announcement.map(|a| a.name().to_string()),
            beep_end_ms: self.beep_end_ms,
            message_left: self.message_left,
        }
    }
}

/// A machine starts talking at once; a person who talks over the bot's
/// opening starts after hearing some of it. A long first utterance that began
/// later than this is not taken for a machine on its length alone.
const MACHINE_GREETING_START_MS: u64 = 1000;

/// With the machine known from its words, the message waits this long for
/// the beep before it is said anyway.
const BEEP_WAIT: Duration = Duration::from_secs(4);

/// After SIT tones, words naming the announcement are awaited this long (or
/// until the carrier hangs up); then the tones alone decide (a network
/// failure: `congestion`). Long: a whole announcement is one utterance, and
/// its ASR may queue behind other calls'.
const SIT_WAIT: Duration = Duration::from_secs(20);

/// The brain's side of answering-machine detection.
#[derive(Default)]
struct CallAnalysis {
    first: Option<waihu_amd::Decision>,
    /// (verdict, reason, media ms, announcement) of the decision acted on.
    last: Option<(
        waihu_amd::Verdict,
        String,
        u64,
        Option<waihu_amd::Announcement>,
    )>,
    /// A machine or an announcement is suspected from the audio: the script
    /// is paused until the words (or a beep) settle it.
    held: bool,
    /// Settled as a machine or an announcement: the script never resumes.
    settled: bool,
    beep_end: Option<u64>,
    /// The voicemail message waiting for the beep, and how long it waits.
    pending_message: Option<(String, String)>,
    beep_deadline: Option<tokio::time::Instant>,
    /// SIT tones hold the call until words name the announcement, or this.
    sit_deadline: Option<tokio::time::Instant>,
    /// SIT tones were heard; what their code names ([`waihu_amd::SitCode`]:
    /// vacant for an intercept, else a plain SIT) when no words name more.
    sit: Option<waihu_amd::Announcement>,
    /// Media ms the SIT tones were recognised (their end).
    sit_end: Option<u64>,
    message_left: bool,
    answered_at: Option<tokio::time::Instant>,
    /// Words heard while held that named nothing (kept for the report).
    heard: Vec<String>,
}

impl BotReport {
    /// The `conversation_ended` event of this call, once a script outcome exists.
    pub fn conversation_ended(&self) -> waihu_core::EventKind {
        waihu_core::EventKind::ConversationEnded {
            outcome: self.outcome.clone().unwrap_or_else(|| "hangup".into()),
            level: self.level.clone(),
            path: self.path.clone(),
        }
    }
}

/// Words of a voicemail greeting, in both languages. A call whose first
/// callee turn says one of these is a machine: the bot hangs up without
/// running the script (the campaign retries it as voicemail).
const VOICEMAIL_CUES: &[&str] = &[
    "leave a message",
    "leave your message",
    "after the tone",
    "after the beep",
    "voicemail",
    "voice mail",
    "not available to take your call",
    "留言",
    "语音信箱",
    "語音信箱",
    "提示音后",
    "提示音後",
    "嘀声后",
];

/// What a carrier's announcement says about the number, in both languages:
/// the stored outcome of [`waihu_amd::announce::classify`]'s kind (空号
/// `invalid_number`, 停机 `suspended`, 关机 and 无法接通 `powered_off`, 忙 `busy`).
pub fn classify_announcement(text: &str) -> Option<waihu_core::CallOutcome> {
    waihu_amd::announce::classify(text).map(|k| k.outcome())
}

pub fn is_voicemail_greeting(text: &str) -> bool {
    let t = text.to_lowercase();
    VOICEMAIL_CUES.iter().any(|c| t.contains(c))
}

/// Sets up one call's bot: the agent for the call task, and the brain to spawn.
pub fn start(
    kit: Arc<Kit>,
    script: Arc<ScriptKit>,
    setup: CallSetup,
    notes: Option<mpsc::UnboundedSender<Note>>,
) -> Result<
    (
        BotAgent,
        impl std::future::Future<Output = BotReport> + Send + 'static,
    ),
    MissingVariables,
> {
    let mut interp = Interpreter::new(script.prog.clone(), setup.vars.clone(), setup.seed)?;
    for (state, variant) in &setup.variants {
        interp
            .choose_variant(state, variant)
            .map_err(|e| MissingVariables(vec![format!("bandit: {e}")]))?;
    }
    let vad = waihu_speech::vad::default_vad(RATE)
        .map_err(|e| MissingVariables(vec![format!("VAD: {e}")]))?;
    let seg = Segmenter::new(vad, kit.endpoint);
    let (to_brain, brain_rx) = mpsc::unbounded_channel();
    let to_self = to_brain.clone();
    let (to_agent, agent_rx) = std_mpsc::channel();
    let current = Arc::new(AtomicU64::new(0));
    let agent = BotAgent::new(
        seg,
        to_brain,
        agent_rx,
        current.clone(),
        kit.announcements.as_ref(),
        setup.trunk.clone(),
    );
    let brain = Brain {
        kit,
        script,
        setup,
        interp,
        to_agent,
        to_self,
        spec: None,
        current,
        notes,
        report: BotReport::default(),
        next_id: 0,
        playing: None,
        listen: None,
        no_input_at: None,
        ending: false,
        pending_latency: None,
        seq: 0,
        last_emotion: None,
        tts_first: None,
        answered: false,
        analysis: CallAnalysis::default(),
        reply_start_ms: None,
        continued: 0,
        replaying: false,
        voice: voice::Collector::default(),
    };
    Ok((agent, brain.run(brain_rx)))
}

impl CallAnalysis {
    /// The script waits: the call is being analysed, or it is a machine.
    fn paused(&self) -> bool {
        self.held || self.settled
    }
}

/// A prompt being played and what to do when it is done.
struct Prompt {
    id: u64,
    barge_in: bool,
    /// Index of the bot turn in the report (its end time is filled in when done).
    turn: usize,
}

struct Brain {
    kit: Arc<Kit>,
    script: Arc<ScriptKit>,
    setup: CallSetup,
    interp: Interpreter,
    to_agent: std_mpsc::Sender<AgentCmd>,
    /// The brain's own inbox, for its speculative ASR tasks to report back.
    to_self: mpsc::UnboundedSender<BrainIn>,
    /// The latest speculative transcript (one at a time: a newer pause replaces it).
    spec: Option<Spec>,
    current: Arc<AtomicU64>,
    notes: Option<mpsc::UnboundedSender<Note>>,
    report: BotReport,
    next_id: u64,
    playing: Option<Prompt>,
    /// Listen settings the interpreter gave, armed when playback ends.
    listen: Option<u32>,
    no_input_at: Option<tokio::time::Instant>,
    ending: bool,
    /// The callee turn whose reply is being synthesised: (turn index, breakdown, end of speech ms).
    pending_latency: Option<(usize, Latency, u64)>,
    seq: u32,
    last_emotion: Option<String>,
    tts_first: Option<std_mpsc::Receiver<f64>>,
    answered: bool,
    analysis: CallAnalysis,
    /// Media time the first audio of the latest prompt went out, when that
    /// prompt replied to a callee turn.
    reply_start_ms: Option<u64>,
    /// Continuations in a row (reset by an utterance taken as an answer).
    continued: u32,
    /// The next prompt asks again the question a continuation cut.
    replaying: bool,
    /// The callee's speech gathered for the voice check.
    voice: voice::Collector,
}

impl Brain {
    /// Classifies an unanswered call's early media: an operator's recording
    /// by its fingerprint, else the words the ASR hears, else the special
    /// information tones the acoustic detector hears.
    async fn announcement(&mut self, early: &[i16], trunk: Option<&str>) {
        let lib = self.kit.announcements.as_ref().map(|l| l.for_trunk(trunk));
        if let Some(m) = lib.and_then(|l| l.find(early)) {
            self.report.network_outcome = Some(m.kind.outcome());
            self.report.analysis = Some(early_analysis(
                m.kind,
                waihu_amd::Reason::Fingerprint.name(),
            ));
            self.report.announcement = Some(format!("<{}>", m.name));
            return;
        }
        let tones = waihu_amd::early_media_tones(early);
        let opts = AsrOptions {
            lang: Some(self.script.lang().to_string()),
            hotwords: Vec::new(),
            prompt: None,
            rate: RATE,
        };
        let permit = self.kit.asr_permit().await;
        let r = self.kit.asr.transcribe(early, RATE, &opts).await;
        drop(permit);
        // Before any answer only the network speaks: a misheard recording is
        // still matched to the nearest standard one.
        let words = match r {
            Ok(t) => {
                let text = t.text.trim().to_string();
                let kind = waihu_amd::announce::classify_heard(&text);
                self.report.announcement = Some(text);
                kind
            }
            Err(e) => {
                self.report.errors.push(format!("ASR of early media: {e}"));
                None
            }
        };
        // Words name the number's state most precisely; without them, the tones'
        // code (vacant code and intercept: 空号; the rest: a network fault).
        let decided = match (words, &tones) {
            (Some(k), _) => Some((k, "announcement_words")),
            (None, Some(t)) => Some((t.announcement, waihu_amd::Reason::SitTone.name())),
            (None, None) => None,
        };
        self.report.network_outcome = decided.map(|(k, _)| k.outcome());
        if let Some((k, reason)) = decided {
            // Early media: before any answer, so no media time to report.
            self.report.analysis = Some(early_analysis(k, reason));
        }
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<BrainIn>) -> BotReport {
        loop {
            let deadline = [
                self.no_input_at,
                self.analysis.beep_deadline,
                self.analysis.sit_deadline,
            ]
            .into_iter()
            .flatten()
            .min();
            let msg = tokio::select! {
                m = rx.recv() => m,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending::<()>().await,
                    }
                } => {
                    let now = tokio::time::Instant::now();
                    if self.analysis.beep_deadline.is_some_and(|d| d <= now) {
                        // No beep came: say the message anyway.
                        self.analysis.beep_deadline = None;
                        self.leave_message();
                    } else if self.analysis.sit_deadline.is_some_and(|d| d <= now) {
                        self.analysis.sit_deadline = None;
                        let at = self.media_ms();
                        let kind = self.analysis.sit.unwrap_or(waihu_amd::Announcement::Sit);
                        self.announcement_heard(
                            kind,
                            at,
                            "",
                            waihu_amd::Reason::SitTone,
                        );
                    } else {
                        self.no_input_at = None;
                        if !self.analysis.paused() {
                            self.step(Input::NoInput, None);
                        }
                    }
                    continue;
                }
            };
            let Some(msg) = msg else { break };
            match msg {
                BrainIn::Answered => {
                    self.answered = true;
                    self.analysis.answered_at = Some(tokio::time::Instant::now());
                    self.step(Input::Answered, None)
                }
                BrainIn::PlayStarted { id, ms } => self.play_started(id, ms),
                BrainIn::Amd {
                    decision,
                    greeting_start,
                } => self.on_amd(decision, greeting_start),
                BrainIn::PlayDone { id, ms } => {
                    if self.playing.as_ref().is_some_and(|p| p.id == id) {
                        let p = self.playing.take().expect("checked");
                        self.note_bot_turn(p.turn, ms);
                        if self.ending {
                            self.hangup("conversation ended");
                        } else if self.analysis.paused() {
                            // The script waits while the call is analysed.
                        } else {
                            self.step(Input::PlaybackFinished, None);
                            self.arm_listen();
                        }
                    }
                }
                BrainIn::BargeIn { .. } if self.analysis.paused() => {}
                BrainIn::BargeIn { ms } => {
                    self.report.barge_ins += 1;
                    if let Some(p) = self.playing.take() {
                        self.note_bot_turn(p.turn, ms);
                    }
                    self.step(Input::BargeIn, None);
                    self.arm_listen();
                }
                BrainIn::Utterance { utt, detected_ms } => {
                    self.utterance(utt, detected_ms).await;
                }
                BrainIn::Tentative { utt } => self.speculate(utt),
                BrainIn::Speculated { start_ms, end_ms } => {
                    self.speculated(start_ms, end_ms).await;
                }
                BrainIn::Dtmf { .. } if self.analysis.paused() => {}
                BrainIn::Dtmf { digit } => {
                    let over_prompt = self.playing.as_ref().map(|p| p.barge_in);
                    if over_prompt != Some(false) {
                        if over_prompt == Some(true) {
                            let _ = self.to_agent.send(AgentCmd::Stop);
                            self.current.store(0, Ordering::Relaxed);
                            self.playing = None;
                        }
                        let d = digit.to_string();
                        self.no_input_at = None;
                        self.step(Input::Dtmf(&d), None);
                        self.arm_listen();
                    }
                }
                BrainIn::Ended { early, trunk, ms } => {
                    if let Some(p) = self.playing.take() {
                        self.note_bot_turn(p.turn, ms);
                    }
                    if !self.answered && early.len() >= RATE as usize {
                        self.announcement(&early, trunk.as_deref()).await;
                    }
                    if let (Some(kind), false) = (self.analysis.sit, self.analysis.settled) {
                        // The carrier hung up after its tones; no words named it.
                        let at = self.media_ms();
                        self.announcement_heard(kind, at, "", waihu_amd::Reason::SitTone);
                    }
                    let now = (self.setup.clock)();
                    let _ = self.interp.handle(now, Input::HungUp);
                    self.finish_outcome();
                    break;
                }
            }
            if self.interp.is_ended() && self.playing.is_none() && !self.ending {
                self.ending = true;
                self.hangup("conversation ended");
            }
        }
        self.finish_outcome();
        self.finish_analysis();
        self.report
    }

    fn finish_analysis(&mut self) {
        let Some(first) = &self.analysis.first else {
            return;
        };
        let (verdict, reason, at, kind) = self.analysis.last.clone().unwrap_or((
            first.verdict,
            first.reason.name().to_string(),
            first.at_ms,
            first.announcement,
        ));
        self.report.analysis = Some(Analysis {
            verdict: verdict.name().to_string(),
            reason,
            decided_ms: first.at_ms,
            final_ms: at,
            announcement: kind,
            beep_end_ms: self.analysis.beep_end,
            message_left: self.analysis.message_left,
        });
    }

    /// A decision of the detector in the call task.
    fn on_amd(&mut self, d: waihu_amd::Decision, greeting_start: Option<u64>) {
        use waihu_amd::{Reason, Verdict};
        tracing::debug!(
            verdict = d.verdict.name(),
            reason = d.reason.name(),
            at_ms = d.at_ms,
            "amd"
        );
        self.analysis.first.get_or_insert(d.clone());
        if let Some(b) = d.beep_end_ms {
            self.analysis.beep_end = Some(b);
            if self.analysis.pending_message.is_some() {
                self.leave_message();
                return;
            }
        }
        if self.analysis.settled || self.ending {
            return;
        }
        match (d.verdict, d.reason) {
            (Verdict::Machine, Reason::Beep) => {
                self.machine(d.at_ms, Reason::Beep.name());
            }
            // An operator's recording of this very announcement: no need to
            // wait for words.
            (Verdict::Announcement, Reason::Fingerprint) => {
                let kind = d.announcement.unwrap_or(waihu_amd::Announcement::Sit);
                self.announcement_heard(kind, d.at_ms, "", Reason::Fingerprint);
            }
            (Verdict::Announcement, Reason::SitTone) => {
                self.hold(&d);
                self.analysis.sit = Some(d.announcement.unwrap_or(waihu_amd::Announcement::Sit));
                self.analysis.sit_end = Some(d.at_ms);
                self.analysis.sit_deadline = Some(tokio::time::Instant::now() + SIT_WAIT);
            }
            (Verdict::Machine, Reason::LongGreeting)
                if greeting_start.is_some_and(|s| s <= MACHINE_GREETING_START_MS) =>
            {
                self.hold(&d);
            }
            _ => {
                if self.analysis.last.is_none() {
                    self.analysis.last = Some((
                        d.verdict,
                        d.reason.name().to_string(),
                        d.at_ms,
                        d.announcement,
                    ));
                }
            }
        }
    }

    /// The audio says machine (or SIT): quiet the line so its words are
    /// heard, and pause the script until they (or a beep) settle it.
    fn hold(&mut self, d: &waihu_amd::Decision) {
        if self.analysis.held {
            return;
        }
        self.analysis.held = true;
        self.analysis.last = Some((
            d.verdict,
            d.reason.name().to_string(),
            d.at_ms,
            d.announcement,
        ));
        self.no_input_at = None;
        self.stop_prompt(d.at_ms);
    }

    /// Media ms since answer, by the brain's clock (timers only).
    fn media_ms(&self) -> u64 {
        self.analysis
            .answered_at
            .map_or(0, |t| t.elapsed().as_millis() as u64)
    }

    fn stop_prompt(&mut self, at_ms: u64) {
        if let Some(p) = self.playing.take() {
            let _ = self.to_agent.send(AgentCmd::Stop);
            self.current.store(0, Ordering::Relaxed);
            self.note_bot_turn(p.turn, at_ms);
        }
    }

    /// An answering machine: the script's voicemail action.
    fn machine(&mut self, at_ms: u64, reason: &str) {
        if self.analysis.settled {
            return;
        }
        self.analysis.settled = true;
        self.analysis.held = false;
        self.analysis.last = Some((waihu_amd::Verdict::Machine, reason.to_string(), at_ms, None));
        self.report.voicemail = true;
        self.report.outcome = Some("voicemail".into());
        self.no_input_at = None;
        self.stop_prompt(at_ms);
        match self.interp.voicemail_message() {
            Some(msg) => {
                self.analysis.pending_message = Some(msg);
                if self.analysis.beep_end.is_some() {
                    self.leave_message();
                } else {
                    self.analysis.beep_deadline = Some(tokio::time::Instant::now() + BEEP_WAIT);
                }
            }
            None => {
                self.ending = true;
                let _ = self.to_agent.send(AgentCmd::AmdStop);
                self.hangup("answering machine");
            }
        }
    }

    /// Says the waiting voicemail message once, then hangs up.
    fn leave_message(&mut self) {
        let Some((text, style)) = self.analysis.pending_message.take() else {
            return;
        };
        self.analysis.beep_deadline = None;
        self.analysis.message_left = true;
        self.ending = true;
        let _ = self.to_agent.send(AgentCmd::AmdStop);
        self.speak(vec![(text, style, false)]);
    }

    /// A carrier announcement after answer: its outcome, and hang up.
    fn announcement_heard(
        &mut self,
        kind: waihu_amd::Announcement,
        at_ms: u64,
        text: &str,
        reason: waihu_amd::Reason,
    ) {
        if self.analysis.settled {
            return;
        }
        self.analysis.settled = true;
        self.analysis.held = false;
        self.analysis.pending_message = None;
        self.analysis.beep_deadline = None;
        self.analysis.sit_deadline = None;
        self.analysis.last = Some((
            waihu_amd::Verdict::Announcement,
            reason.name().to_string(),
            at_ms,
            Some(kind),
        ));
        self.report.network_outcome = Some(kind.outcome());
        if !text.is_empty() {
            self.report.announcement = Some(text.to_string());
        } else if !self.analysis.heard.is_empty() {
            self.report.announcement = Some(self.analysis.heard.join(" "));
        }
        self.report.voicemail = false;
        self.report.outcome = Some("announcement".into());
        self.no_input_at = None;
        self.stop_prompt(at_ms);
        self.ending = true;
        let _ = self.to_agent.send(AgentCmd::AmdStop);
        self.hangup("carrier announcement");
    }

    fn finish_outcome(&mut self) {
        self.report.path = self.interp.path().into_iter().map(String::from).collect();
        self.report.path_variants = self
            .interp
            .path_variants()
            .into_iter()
            .map(|v| v.map(String::from))
            .collect();
        if let Some((outcome, level)) = self.interp.ended() {
            if !(outcome == "hangup" && self.report.outcome.is_some()) {
                self.report.outcome = Some(outcome.clone());
            }
            self.report.level = level
                .map(|l| l.as_str().to_string())
                .or(self.report.level.take());
        }
    }

    fn hangup(&mut self, why: &str) {
        if let Some(req) = self
            .handoff_request()
            .filter(|_| why == "conversation ended")
        {
            if let Some(tx) = self.setup.handoff.take() {
                if tx.send(req).is_ok() {
                    // The handoff agent owns the call from here; the brain waits for its end.
                    return;
                }
            }
        }
        if why == "conversation ended" {
            // A script's `transfer: {number: ...}` with no agent desk to take it: a blind
            // transfer (REFER) once the transfer line has played; the call task hangs up
            // when the target answers, the agent when the transfer fails.
            if let Some(number) = self.blind_transfer_target() {
                self.report.blind_transfer = Some(number.clone());
                let _ = self.to_agent.send(AgentCmd::Transfer(number));
                return;
            }
        }
        self.report
            .bot_hangup
            .get_or_insert_with(|| why.to_string());
        let _ = self.to_agent.send(AgentCmd::Hangup(why.to_string()));
    }

    /// The number of the conversation's last transfer, when it names one.
    fn blind_transfer_target(&self) -> Option<String> {
        match self
            .report
            .actions
            .iter()
            .rev()
            .find(|a| matches!(a, Action::Transfer { .. }))?
        {
            Action::Transfer {
                number: Some(n), ..
            } if !n.trim().is_empty() => Some(n.trim().to_string()),
            _ => None,
        }
    }

    /// The queue the conversation ended transferring to, when warm transfer is on.
    fn handoff_request(&self) -> Option<HandoffRequest> {
        self.setup.handoff.as_ref()?;
        let queue = self.report.actions.iter().rev().find_map(|a| match a {
            Action::Transfer { queue: Some(q), .. } => Some(q.clone()),
            _ => None,
        })?;
        let callee = self
            .report
            .turns
            .iter()
            .filter(|t| t.speaker == Speaker::Callee);
        Some(HandoffRequest {
            queue,
            intents: callee.clone().filter_map(|t| t.intent.clone()).collect(),
            emotion: callee.filter_map(|t| t.emotion.clone()).next_back(),
            path: self.interp.path().into_iter().map(String::from).collect(),
        })
    }

    fn arm_listen(&mut self) {
        if self.playing.is_none() {
            if let Some(ms) = self.listen.take() {
                self.no_input_at =
                    Some(tokio::time::Instant::now() + Duration::from_millis(ms as u64));
            }
        }
    }

    fn note(&self, n: Note) {
        if let Some(tx) = &self.notes {
            let _ = tx.send(n);
        }
    }

    fn play_started(&mut self, id: u64, ms: u64) {
        let Some(p) = self.playing.as_ref().filter(|p| p.id == id) else {
            return;
        };
        // Only a reply to the callee's words makes later words a
        // continuation; a re-prompt after silence may be answered at once.
        // A question asked again after a continuation is no new reply: words
        // begun before it answer the same question, cut a moment earlier.
        let replay = std::mem::take(&mut self.replaying);
        self.reply_start_ms = (self.pending_latency.is_some() && !replay).then_some(ms);
        if let Some(t) = self.report.turns.get_mut(p.turn) {
            t.start_ms = ms;
        }
        let tts_first = self.tts_first.take().and_then(|rx| rx.try_recv().ok());
        if let Some((callee_turn, mut lat, end_ms)) = self.pending_latency.take() {
            lat.tts_first_ms = tts_first.unwrap_or_default();
            lat.total_ms = ms.saturating_sub(end_ms) as f64;
            if let Some(t) = self.report.turns.get_mut(callee_turn) {
                t.latency_ms = Some(lat.total_ms);
                self.report.latencies.push(lat);
                let t = t.clone();
                self.note(Note::Turn(Box::new(t)));
            }
        }
    }

    /// A bot turn is stored once its prompt ended (played out, interrupted or cut by the hang-up).
    fn note_bot_turn(&mut self, turn: usize, end_ms: u64) {
        if let Some(t) = self.report.turns.get_mut(turn) {
            t.end_ms = end_ms.max(t.start_ms);
            let t = t.clone();
            self.note(Note::Turn(Box::new(t)));
        }
    }

    async fn utterance(&mut self, utt: Utterance, detected_ms: u64) {
        // Speech that ended while a prompt without barge-in was playing is talk-over: ignored,
        // as the interpreter's contract says — except the first thing heard, which is
        // transcribed anyway: an answering machine talks over the opening prompt.
        let first_turn = self.seq_callee() == 0;
        if self.playing.is_some() && !first_turn {
            return;
        }
        if self.interp.is_ended() || self.ending {
            return;
        }
        let mut lat = Latency {
            endpoint_ms: detected_ms.saturating_sub(utt.end_ms) as f64,
            ..Latency::default()
        };
        let t0 = Instant::now();
        let spec = self
            .spec
            .take()
            .filter(|x| x.start_ms == utt.start_ms && x.end_ms == utt.end_ms);
        let speculated = match spec {
            Some(Spec { done: Some(r), .. }) => Some(r),
            Some(Spec {
                task: Some(task), ..
            }) => task.await.ok(),
            _ => None,
        };
        let result = match speculated {
            // Nothing said since the pause: the transcript started then covers it.
            Some(r) => {
                self.report.speculation.hits += 1;
                r
            }
            None => {
                let permit = self.kit.asr_permit().await;
                lat.asr_wait_ms = t0.elapsed().as_secs_f64() * 1000.0;
                let samples = self.asr_samples(&utt).to_vec();
                let r = transcribe(&self.kit, &samples, utt.rate, &self.asr_options()).await;
                drop(permit);
                r
            }
        };
        let text = match result {
            Ok(t) => t,
            Err(e) => {
                self.report.errors.push(format!("ASR: {e}"));
                String::new()
            }
        };
        lat.asr_ms = t0.elapsed().as_secs_f64() * 1000.0;
        if text.is_empty() || is_noise(&text) {
            // Nothing intelligible: keep listening (the no-input timer still runs).
            if first_turn
                && self.analysis.held
                && !self.analysis.settled
                && self.analysis.sit.is_none()
            {
                // The long sound was no words at all: not a machine we can
                // tell; the script goes on (a beep still settles it).
                self.analysis.held = false;
                self.step(Input::PlaybackFinished, None);
                self.arm_listen();
            }
            return;
        }
        // Media time the words became known: when the utterance was cut plus ASR.
        let words_ms = detected_ms + lat.asr_ms as u64;
        // Words are checked on the first utterance, and on every one while
        // the audio holds the call (SIT tones come before the words).
        if (first_turn || self.analysis.held) && !self.analysis.settled {
            // While the audio holds the call (a long greeting, SIT tones) the
            // words may be a carrier's recording, misheard: match it to the
            // nearest one. A person's first words only by their cue words.
            let kind = if self.analysis.held {
                waihu_amd::announce::classify_heard(&text)
            } else {
                waihu_amd::announce::classify(&text)
            };
            let voicemail = waihu_amd::is_voicemail_text(&text)
                || (self.analysis.held && self.analysis.beep_end.is_some());
            if kind.is_some() || voicemail {
                let idx = self.push_callee_turn(&utt, text.clone(), None, None, None);
                if let Some(t) = self.report.turns.get(idx) {
                    self.note(Note::Turn(Box::new(t.clone())));
                }
                match kind {
                    Some(k) => self.announcement_heard(
                        k,
                        words_ms,
                        &text,
                        waihu_amd::Reason::AnnouncementWords,
                    ),
                    None => self.machine(
                        words_ms,
                        if waihu_amd::is_voicemail_text(&text) {
                            waihu_amd::Reason::VoicemailWords.name()
                        } else {
                            waihu_amd::Reason::Beep.name()
                        },
                    ),
                }
                return;
            }
            if self.analysis.held && self.analysis.sit.is_none() {
                // Neither a machine's nor a carrier's words, and no beep: a
                // person who talked first. The opening was cut; resume.
                self.analysis.held = false;
                self.analysis.last =
                    Some((waihu_amd::Verdict::Human, "words".into(), words_ms, None));
                self.step(Input::PlaybackFinished, None);
            }
        }
        if self.analysis.paused() {
            if self.analysis.held {
                // Carrier words, not the customer's: kept for the report, never logged.
                self.analysis.heard.push(text);
            }
            return;
        }
        if self.playing.is_some() {
            return;
        }
        if let Some(checker) = self.kit.voice.clone() {
            self.check_voice(checker, &utt).await;
        }
        if self.continues_last_answer(&utt) {
            // Kept in the transcript, not taken as an answer: the question it
            // cut is asked again.
            self.continued += 1;
            self.report.continuations += 1;
            self.replaying = true;
            let idx = self.push_callee_turn(&utt, text, None, None, None);
            if let Some(t) = self.report.turns.get_mut(idx) {
                // Its own label in the transcript and the event log, so the
                // intent figures do not count it as words not understood.
                t.intent = Some("continuation".into());
            }
            self.no_input_at = None;
            self.step(Input::Continuation, Some((idx, lat, utt.end_ms)));
            if self.playing.is_none() {
                self.replaying = false;
            }
            self.arm_listen();
            return;
        }
        self.continued = 0;
        let now = (self.setup.clock)();
        let t1 = Instant::now();
        let nlu =
            self.script
                .nlu
                .classify_in(&text, now, self.setup.tz, &self.interp.nlu_context());
        let reading = waihu_nlu::emotion::analyze(&utt.samples, utt.rate, Some(&text));
        lat.nlu_ms = t1.elapsed().as_secs_f64() * 1000.0;
        let emotion = reading.emotion;
        let features = VoiceFeatures {
            rate_sps: reading.acoustic.speech_rate,
            volume_dbfs: reading.acoustic.rms_dbfs,
            pitch_hz: reading.acoustic.pitch_mean_hz,
            pause_ratio: reading.acoustic.pause_ratio,
        };
        let idx = self.push_callee_turn(
            &utt,
            text,
            Some(&nlu),
            Some(emotion.label.as_str().to_string()),
            Some(features),
        );
        self.no_input_at = None;
        if let Some(answerer) = self.kit.answerer.clone() {
            if self.interp.wants_knowledge(&nlu) {
                self.knowledge(answerer, nlu.text.clone(), (idx, lat, utt.end_ms))
                    .await;
                self.arm_listen();
                return;
            }
        }
        self.step(
            Input::Utterance {
                nlu: &nlu,
                emotion: Some(emotion),
            },
            Some((idx, lat, utt.end_ms)),
        );
        self.arm_listen();
    }

    /// An out-of-script question: answered from the script's knowledge (or
    /// with its fallback line), then the question the call was at is asked
    /// again ([`Interpreter::aside`]). The answer's time counts as the turn's
    /// dialog time.
    async fn knowledge(
        &mut self,
        answerer: Arc<dyn Answerer>,
        question: String,
        heard: (usize, Latency, u64),
    ) {
        let t = Instant::now();
        let values = self
            .interp
            .variable_values()
            .into_iter()
            .map(String::from)
            .collect();
        let reply = answerer
            .answer(self.script.prog.clone(), question, values)
            .await;
        if let Some(why) = &reply.why_not {
            tracing::info!(%why, "knowledge answer fell back or stopped");
        }
        let now = (self.setup.clock)();
        let outputs = if reply.spoken.is_empty() {
            self.report.knowledge_fallbacks += 1;
            self.interp
                .aside(now, waihu_dialog::Aside::Fallback)
                .to_vec()
        } else {
            self.report.knowledge_answers += 1;
            self.interp
                .aside(now, waihu_dialog::Aside::Said(&reply.spoken))
                .to_vec()
        };
        let (idx, mut lat, end_ms) = heard;
        lat.dialog_ms = t.elapsed().as_secs_f64() * 1000.0;
        self.carry_out(outputs, Some((idx, lat, end_ms)));
    }

    /// Gathers the callee's speech for the voice check and runs the check once
    /// there is enough — before this turn's words are heard, so the rules it
    /// leads to read the result. Until then `voice.verdict` is `pending`.
    async fn check_voice(&mut self, checker: Arc<dyn VoiceChecker>, utt: &Utterance) {
        if self.voice.is_done() {
            return;
        }
        let Some((samples, rate)) = self.voice.offer(&utt.samples, utt.rate) else {
            self.interp.set_voice("pending", 0.0, None);
            return;
        };
        let speech_ms = samples.len() as u64 * 1000 / u64::from(rate.max(1));
        let t = Instant::now();
        let found = checker
            .check(
                self.setup.customer,
                self.setup.phone.clone(),
                samples,
                rate,
                (self.setup.clock)(),
            )
            .await;
        let found = found.unwrap_or_else(|e| {
            self.report.errors.push(format!("voiceprint: {e}"));
            VoiceMatch {
                verdict: "unavailable".into(),
                score: 0.0,
                alert: None,
                new_number: false,
                numbers: None,
            }
        });
        tracing::info!(
            verdict = %found.verdict,
            score = found.score,
            alert = found.alert.is_some(),
            "voice checked"
        );
        self.interp
            .set_voice(&found.verdict, found.score, found.alert.as_deref());
        self.report.voice = Some(VoiceCheck {
            found,
            speech_ms,
            check_ms: t.elapsed().as_secs_f64() * 1000.0,
        });
    }

    /// See [`turn::is_continuation`].
    fn continues_last_answer(&self, utt: &Utterance) -> bool {
        let last_end = self
            .report
            .turns
            .iter()
            .rev()
            .find(|t| t.speaker == Speaker::Callee)
            .map(|t| t.end_ms);
        turn::is_continuation(utt.start_ms, self.reply_start_ms, last_end, self.continued)
    }

    fn asr_options(&self) -> AsrOptions {
        let lang = self.script.lang().to_string();
        let configured = !self.kit.vocabulary.is_empty();
        AsrOptions {
            hotwords: asr_vocabulary(&self.kit.vocabulary, &self.setup.vars),
            prompt: (configured && waihu_speech::zh::is_chinese(&lang))
                .then(|| ZH_PROMPT.to_string()),
            lang: Some(lang),
            rate: RATE,
        }
    }

    /// The utterance's audio to transcribe: Whisper loses the words behind
    /// SIT tones, so from their end when they fall inside it.
    fn asr_samples<'u>(&self, utt: &'u Utterance) -> &'u [i16] {
        let skip = self
            .analysis
            .sit_end
            .filter(|&e| e > utt.start_ms && e < utt.end_ms)
            .map_or(0, |e| {
                ((e - utt.start_ms) * utt.rate as u64 / 1000) as usize
            });
        utt.samples.get(skip..).unwrap_or(&utt.samples)
    }

    /// The callee paused: transcribe what they said so far while the
    /// endpointer waits for the end of the turn — but only with an ASR slot
    /// free now. When turns queue for the cores, guesses would only delay
    /// turns that did end (load shedding).
    fn speculate(&mut self, utt: Utterance) {
        if self.interp.is_ended() || self.ending {
            return;
        }
        let Ok(permit) = self.kit.asr_slots.clone().try_acquire_owned() else {
            self.report.speculation.shed += 1;
            return;
        };
        self.report.speculation.started += 1;
        let samples = self.asr_samples(&utt).to_vec();
        let (kit, opts, tx) = (self.kit.clone(), self.asr_options(), self.to_self.clone());
        let (start_ms, end_ms, rate) = (utt.start_ms, utt.end_ms, utt.rate);
        let task = tokio::spawn(async move {
            let r = transcribe(&kit, &samples, rate, &opts).await;
            drop(permit);
            let _ = tx.send(BrainIn::Speculated { start_ms, end_ms });
            r
        });
        // A newer pause of the same utterance replaces the older guess.
        self.spec = Some(Spec {
            start_ms,
            end_ms,
            task: Some(task),
            done: None,
        });
    }

    /// A speculative transcript is ready. If nothing was said since and
    /// its words make a whole answer to the current question, the turn ends
    /// now instead of after the full end-of-turn silence.
    async fn speculated(&mut self, start_ms: u64, end_ms: u64) {
        let Some(spec) = self
            .spec
            .as_mut()
            .filter(|x| x.start_ms == start_ms && x.end_ms == end_ms)
        else {
            return;
        };
        if let Some(task) = spec.task.take() {
            spec.done = Some(task.await.unwrap_or_else(|e| Err(format!("ASR task: {e}"))));
        }
        let Some(Ok(text)) = spec.done.clone() else {
            return;
        };
        let text = text.as_str();
        // The first utterance decides human or machine, and a prompt that is
        // still playing ignores talk-over: both wait for the real end.
        if self.seq_callee() == 0
            || self.analysis.paused()
            || self.playing.is_some()
            || self.interp.is_ended()
            || text.is_empty()
            || is_noise(text)
            || turn::trails_off(text)
        {
            return;
        }
        let now = (self.setup.clock)();
        let nlu = self
            .script
            .nlu
            .classify_in(text, now, self.setup.tz, &self.interp.nlu_context());
        if nlu.intent != "unknown" && nlu.confidence >= self.script.prog.min_confidence {
            self.report.speculation.early_ends += 1;
            let _ = self.to_agent.send(AgentCmd::EndTurn { end_ms });
        }
    }

    fn seq_callee(&self) -> usize {
        self.report
            .turns
            .iter()
            .filter(|t| t.speaker == Speaker::Callee)
            .count()
    }

    fn push_callee_turn(
        &mut self,
        utt: &Utterance,
        text: String,
        nlu: Option<&NluResult>,
        emotion: Option<String>,
        features: Option<VoiceFeatures>,
    ) -> usize {
        self.seq += 1;
        let turn = Turn {
            seq: self.seq,
            speaker: Speaker::Callee,
            state: self.interp.state().to_string(),
            at: (self.setup.clock)(),
            start_ms: utt.start_ms,
            end_ms: utt.end_ms,
            text,
            intent: nlu.map(|n| n.intent.clone()),
            confidence: nlu.map(|n| n.confidence),
            emotion: emotion.clone(),
            sentiment: nlu.map(|n| n.sentiment.score),
            features,
            barge_in: false,
            latency_ms: None,
        };
        // The turn is noted once its reply starts (with the latency), or now if no reply comes.
        self.pending_latency = None;
        self.report.turns.push(turn);
        let idx = self.report.turns.len() - 1;
        self.last_emotion = emotion;
        idx
    }

    /// Feeds the interpreter and carries out what it asks.
    fn step(&mut self, input: Input<'_>, heard: Option<(usize, Latency, u64)>) {
        let now = (self.setup.clock)();
        let before = self.interp.state().to_string();
        let t = Instant::now();
        let outputs: Vec<Output> = self.interp.handle(now, input).to_vec();
        let dialog_ms = t.elapsed().as_secs_f64() * 1000.0;
        let after = self.interp.state().to_string();
        if after != before || matches!(input, Input::Answered) {
            self.note(Note::Node {
                state: after.clone(),
                emotion: self.last_emotion.clone(),
            });
        }
        let heard = heard.map(|(idx, mut lat, end_ms)| {
            lat.dialog_ms = dialog_ms;
            (idx, lat, end_ms)
        });
        self.carry_out(outputs, heard);
    }

    /// Carries out the interpreter's outputs: prompts are spoken as one
    /// playback, actions noted, an end hangs up once nothing is playing.
    fn carry_out(&mut self, outputs: Vec<Output>, heard: Option<(usize, Latency, u64)>) {
        let mut texts: Vec<(String, String, bool)> = Vec::new();
        for o in outputs {
            match o {
                Output::Play {
                    text,
                    style,
                    barge_in,
                } => texts.push((text, style, barge_in)),
                Output::StopPlayback => {
                    let _ = self.to_agent.send(AgentCmd::Stop);
                    self.current.store(0, Ordering::Relaxed);
                    self.playing = None;
                }
                Output::Listen { no_input_ms, .. } => self.listen = Some(no_input_ms),
                Output::Action { action } => {
                    match &action {
                        Action::Outcome { outcome } => self.report.outcome = Some(outcome.clone()),
                        Action::Level { level } => {
                            self.report.level = Some(level.as_str().to_string())
                        }
                        _ => {}
                    }
                    self.report.actions.push(action);
                }
                Output::End { outcome, level } => {
                    self.report.outcome = Some(outcome);
                    if let Some(l) = level {
                        self.report.level = Some(l.as_str().to_string());
                    }
                    self.ending = true;
                }
            }
        }
        if let Some((idx, lat, end_ms)) = heard {
            if texts.is_empty() {
                if let Some(t) = self.report.turns.get(idx) {
                    self.note(Note::Turn(Box::new(t.clone())));
                }
            } else {
                self.pending_latency = Some((idx, lat, end_ms));
            }
        }
        if !texts.is_empty() {
            self.speak(texts);
        } else if self.ending && self.playing.is_none() {
            self.hangup("conversation ended");
        }
    }

    /// Streams the prompts of one step as one playback.
    fn speak(&mut self, texts: Vec<(String, String, bool)>) {
        if let Some(p) = self.playing.take() {
            let end = self.report.turns.get(p.turn).map_or(0, |t| t.start_ms);
            self.note_bot_turn(p.turn, end);
        }
        self.next_id += 1;
        let id = self.next_id;
        self.current.store(id, Ordering::Relaxed);
        let barge_in = texts.iter().all(|t| t.2);
        let _ = self.to_agent.send(AgentCmd::Start { id, barge_in });
        self.seq += 1;
        let text = texts
            .iter()
            .map(|t| t.0.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        self.report.turns.push(Turn {
            seq: self.seq,
            speaker: Speaker::Bot,
            state: self.interp.state().to_string(),
            at: (self.setup.clock)(),
            start_ms: 0,
            end_ms: 0,
            text,
            intent: None,
            confidence: None,
            emotion: None,
            sentiment: None,
            features: None,
            barge_in,
            latency_ms: None,
        });
        self.playing = Some(Prompt {
            id,
            barge_in,
            turn: self.report.turns.len() - 1,
        });
        let lang = lang_choice(self.script.prog.language);
        let voices: Vec<(String, Voice)> = texts
            .into_iter()
            .map(|(text, style, _)| {
                // Scripts are checked against the book at load (`ScriptKit::check_styles`);
                // an unknown style here is a bug, said out loud.
                let style = self.kit.styles.get(&style).unwrap_or_else(|e| {
                    tracing::error!(error = %e, "unknown style at play time; speaking neutral");
                    waihu_speech::Style::NEUTRAL
                });
                (
                    text,
                    Voice {
                        style,
                        lang,
                        rate: RATE,
                    },
                )
            })
            .collect();
        let synth = self.kit.synth.clone();
        let tx = self.to_agent.clone();
        let current = self.current.clone();
        let tts_started = Instant::now();
        let (first_tx, first_rx) = std_mpsc::channel::<f64>();
        tokio::task::spawn_blocking(move || {
            let mut sent_first = false;
            'prompts: for (text, voice) in voices {
                let stream = match synth.stream(&text, voice) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "TTS failed");
                        continue;
                    }
                };
                for frame in stream {
                    if current.load(Ordering::Relaxed) != id {
                        break 'prompts;
                    }
                    match frame {
                        Ok(f) => {
                            if !sent_first {
                                sent_first = true;
                                let _ = first_tx.send(tts_started.elapsed().as_secs_f64() * 1000.0);
                            }
                            if tx
                                .send(AgentCmd::Audio {
                                    id,
                                    samples: f.samples,
                                })
                                .is_err()
                            {
                                break 'prompts;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "TTS failed");
                            break;
                        }
                    }
                }
            }
            let _ = tx.send(AgentCmd::End { id });
        });
        // The producer reports its first frame before the agent can play it; the
        // breakdown picks it up when the agent reports the start.
        self.tts_first = Some(first_rx);
    }
}

/// Whisper's stock hallucinations on noise and silence.
/// One utterance through the kit's ASR: the trimmed text, or the error.
async fn transcribe(
    kit: &Kit,
    samples: &[i16],
    rate: u32,
    opts: &AsrOptions,
) -> Result<String, String> {
    kit.asr
        .transcribe(samples, rate, opts)
        .await
        .map(|t| t.text.trim().to_string())
        .map_err(|e| e.to_string())
}

fn is_noise(text: &str) -> bool {
    let t = text
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase();
    t.is_empty()
        || matches!(
            t.as_str(),
            "you" | "thanks for watching" | "music" | "applause"
        )
}

/// The analysis of an unanswered call's early media (no media time: nothing was answered).
fn early_analysis(kind: waihu_amd::Announcement, reason: &str) -> Analysis {
    Analysis {
        verdict: "announcement".into(),
        reason: reason.into(),
        decided_ms: 0,
        final_ms: 0,
        announcement: Some(kind),
        beep_end_ms: None,
        message_left: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use waihu_core::CallOutcome;

    #[test]
    fn vocabulary_takes_the_calls_variables() {
        let terms: Vec<String> = [
            "星河商城",
            "{name}",
            "{product}",
            "{missing}",
            " ",
            "星河商城",
        ]
        .map(String::from)
        .to_vec();
        let vars = vec![
            ("name".to_string(), "张伟".to_string()),
            ("product".to_string(), " 蓝色羽绒服 ".to_string()),
        ];
        assert_eq!(
            asr_vocabulary(&terms, &vars),
            vec!["星河商城", "张伟", "蓝色羽绒服"]
        );
        let long = vec!["x".repeat(65)];
        assert!(asr_vocabulary(&long, &[]).is_empty());
        let many: Vec<String> = (0..40).map(|i| format!("t{i}")).collect();
        assert_eq!(asr_vocabulary(&many, &[]).len(), 32);
    }

    #[test]
    fn carrier_announcements_name_the_network_outcome() {
        for (text, want) in [
            (
                "The number you have dialed is switched off. Please try again later.",
                Some(CallOutcome::PoweredOff),
            ),
            (
                "您拨打的电话已关机，请稍后再拨。",
                Some(CallOutcome::PoweredOff),
            ),
            (
                "The subscriber you dialed is not reachable.",
                Some(CallOutcome::PoweredOff),
            ),
            (
                "您拨打的号码是空号，请查证后再拨。",
                Some(CallOutcome::InvalidNumber),
            ),
            (
                "The number you have dialed is not in service.",
                Some(CallOutcome::InvalidNumber),
            ),
            (
                "The subscriber is busy, please try again later.",
                Some(CallOutcome::Busy),
            ),
            ("您拨打的用户正在通话中", Some(CallOutcome::Busy)),
            ("您拨打的电话已停机", Some(CallOutcome::Suspended)),
            (
                "The number you have dialed has been suspended.",
                Some(CallOutcome::Suspended),
            ),
            ("Please hold while we connect your call.", None),
        ] {
            assert_eq!(classify_announcement(text), want, "{text}");
        }
    }

    #[test]
    fn voicemail_greetings_and_whisper_noise() {
        assert!(is_voicemail_greeting(
            "Hi, you've reached Anna. Please leave a message after the tone."
        ));
        assert!(is_voicemail_greeting("您好，请在提示音后留言。"));
        assert!(!is_voicemail_greeting("Yes, speaking. Go ahead."));
        assert!(is_noise(" you "));
        assert!(is_noise("..."));
        assert!(!is_noise("Yes."));
    }
}
