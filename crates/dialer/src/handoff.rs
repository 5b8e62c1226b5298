//! Warm transfer to a human queue (转人工), waihu staying in the call as a
//! B2BUA. The bot's brain hands the call over when its script ends with a
//! transfer to a queue ([`waihu_bot::HandoffRequest`]); from the next frame
//! the callee's media belongs to [`CalleeLeg`], and a transfer task (one per
//! handed-over call):
//!
//! 1. loops the queue's hold prompt to the callee;
//! 2. asks the ACD ([`waihu_acd`], shared by every call of the run) for an
//!    agent and places the agent leg with the engine ([`place_call_with`]);
//! 3. plays the agent a spoken whisper (who, why, emotion) that the callee
//!    does not hear;
//! 4. bridges the two legs frame by frame: each call task hands the frame it
//!    heard to the other through a channel and sends what the other heard,
//!    never waiting (a leg's jitter buffer holds at most [`MAX_BUFFER_FRAMES`]);
//! 5. or, when no agent comes (the queue's wait timeout, all agents paused),
//!    apologises, offers a callback and hangs up: the call ends `callback`
//!    and the dialer schedules it like any callback the callee asked for.
//!
//! Both legs are recorded: the callee leg in the call's own stereo recording
//! (left: callee, right: what waihu sent — the bot, then the agent), the agent
//! leg in a second stereo file sealed as the call's `agent` leg.
//!
//! A run with a store ([`Handoff::live`]) is also the agent desk's source: the
//! transfer events (with a `transfer_screen` of what the agent's screen-pop
//! shows) are appended as they happen, a task publishes the ACD's agents and
//! waiting callers to the store every [`PUBLISH_EVERY`] (`desk_live`), appends
//! an `agent_state` event at every state change, and applies the state changes
//! agents ask the API for (`agent_state_requests`, polled past a cursor like
//! the do-not-call list).
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::json;
use tokio::sync::mpsc;
use waihu_acd::{Acd, AcdError, AgentState, Config, GiveUp, Step};
use waihu_bot::HandoffRequest;
use waihu_core::{CallId, CampaignId, CustomerId, Event, EventKind};
use waihu_engine::agent::{CallAgent, Control};
use waihu_engine::call::{place_call_with, CallOptions, MediaOptions};
use waihu_engine::sip::SipEndpoint;
use waihu_speech::{LangChoice, Style, Synthesizer, Voice};
use waihu_store::Store;

use crate::CampaignClock;

/// Samples per 20 ms frame at 8 kHz.
const FRAME: usize = 160;
/// Frames a bridged leg buffers from the other before dropping the oldest
/// (the two call tasks tick on their own timers; this bounds the delay).
pub const MAX_BUFFER_FRAMES: usize = 6;
/// Frames buffered before playing starts, and again after running dry: the
/// two tasks' ticks jitter against each other, and playing each frame the
/// moment it arrives would cut a gap into the audio at every late tick.
pub const PRIME_FRAMES: usize = 2;

/// How often a live run publishes its agents and queues and polls the agents'
/// state requests (the API applies a request within twice this).
pub const PUBLISH_EVERY: Duration = Duration::from_millis(250);

/// The agents and queues of a live run, shared by its calls.
pub struct Handoff {
    acd: Mutex<Acd>,
    origin: Instant,
    /// Agent-leg recordings are written here before they are sealed.
    pub spool: PathBuf,
    live: Option<Live>,
    /// Callers waiting for an agent: call id → (queue, since on the ACD's clock).
    waiting: Mutex<BTreeMap<String, (String, u64)>>,
    /// Calls bridged to an agent now, by call id: supervisors may listen in.
    taps: Mutex<HashMap<String, crate::listen::Tap>>,
}

/// Where a live run's desk goes.
struct Live {
    store: Store,
    clock: Arc<CampaignClock>,
    /// Agents' last published state and since when, for `agent_state` events.
    /// Held while a state change is appended, so no change can land after the
    /// run's sign-outs.
    last: tokio::sync::Mutex<HashMap<String, (&'static str, DateTime<Utc>)>>,
    /// The run is over and its sign-outs are written: nothing more is published.
    closed: std::sync::atomic::AtomicBool,
}

/// Removes a caller from the waiting list however its transfer ends.
struct WaitingGuard<'a>(&'a Handoff, String);

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        self.0.waiting().remove(&self.1);
    }
}

impl Handoff {
    pub fn new(cfg: Config, spool: PathBuf) -> Handoff {
        Handoff {
            acd: Mutex::new(Acd::new(cfg, 0)),
            origin: Instant::now(),
            spool,
            live: None,
            waiting: Mutex::new(BTreeMap::new()),
            taps: Mutex::new(HashMap::new()),
        }
    }

    /// A handoff that is also the agent desk's source (see the module docs):
    /// starts the publishing task, which ends with the last reference. Call
    /// [`Handoff::close`] when the run ends. Call from inside the runtime.
    pub fn live(
        cfg: Config,
        spool: PathBuf,
        store: Store,
        clock: Arc<CampaignClock>,
    ) -> Arc<Handoff> {
        let mut h = Handoff::new(cfg, spool);
        h.live = Some(Live {
            store,
            clock,
            last: tokio::sync::Mutex::new(HashMap::new()),
            closed: Default::default(),
        });
        let h = Arc::new(h);
        tokio::spawn(publish(Arc::downgrade(&h)));
        h
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (String, u64)>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn taps(&self) -> std::sync::MutexGuard<'_, HashMap<String, crate::listen::Tap>> {
        self.taps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The API's listen-in requests past `cursor`: a supervisor's leg for each
    /// call bridged here now (a request for a call this run does not hold is
    /// another run's, or too late: left alone).
    async fn listen_once(
        &self,
        live: &Live,
        cursor: &mut i64,
    ) -> Result<(), waihu_store::StoreError> {
        for (id, e) in live
            .store
            .events_of_type("listen_requested", *cursor, 100)
            .await?
        {
            *cursor = id;
            let (EventKind::ListenRequested { supervisor, .. }, Some(call)) = (e.kind, e.call)
            else {
                continue;
            };
            if !crate::listen::valid_uri(&supervisor) {
                tracing::warn!(call = %call, "listen-in: not a SIP URI, ignored");
                continue;
            }
            let taps = self.taps();
            match taps.get(call.as_str()) {
                Some(tap) => crate::listen::start(
                    tap,
                    call.clone(),
                    supervisor,
                    live.store.clone(),
                    live.clock.clone(),
                ),
                None => {
                    tracing::debug!(call = %call, "listen-in: the call is not bridged in this run")
                }
            }
        }
        Ok(())
    }

    /// The run is over: every agent is `signed_out` (so reports stop counting
    /// their time) and the desk snapshot says the dialer stopped.
    pub async fn close(&self) {
        let Some(live) = &self.live else { return };
        let now = live.clock.now();
        let mut last = live.last.lock().await;
        live.closed.store(true, std::sync::atomic::Ordering::SeqCst);
        let events: Vec<Event> = last
            .drain()
            .map(|(agent, _)| desk_event(now, agent, "signed_out"))
            .collect();
        if let Err(e) = live.store.append_events(&events).await {
            tracing::warn!(error = %e, "agent desk: recording sign-outs");
        }
        let body = json!({"running": false, "at": now, "agents": [], "queues": []}).to_string();
        if let Err(e) = live.store.desk_publish(Utc::now(), &body).await {
            tracing::warn!(error = %e, "agent desk: publishing the end of the run");
        }
    }

    /// Applies the API's state requests, publishes the snapshot and appends
    /// the state changes. Returns the pauses that must wait for a call's end.
    async fn publish_once(
        &self,
        live: &Live,
        cursor: &mut i64,
        pending: &mut BTreeMap<String, String>,
    ) -> Result<(), waihu_store::StoreError> {
        for r in live.store.agent_state_requests(*cursor, 1000).await? {
            *cursor = r.id;
            pending.insert(r.agent, r.state);
        }
        pending.retain(|agent, state| {
            let r = if state == "paused" {
                self.pause(agent)
            } else {
                self.resume(agent)
            };
            match r {
                Ok(()) => false,
                // Ringing or on a call: paused once the call is over.
                Err(AcdError::Busy(_)) => true,
                Err(e) => {
                    tracing::warn!(agent = %agent, error = %e, "agent desk: state request refused");
                    false
                }
            }
        });
        let now_ms = self.now_ms();
        let wall = live.clock.now();
        let agents = self.acd().snapshot(now_ms);
        let waiting = self.waiting().clone();
        let queues: Vec<String> = self.acd().queues().iter().map(|q| q.name.clone()).collect();
        let ago = |ms: u64| wall - chrono::Duration::milliseconds(now_ms.saturating_sub(ms) as i64);
        let mut last = live.last.lock().await;
        if live.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        let mut events = Vec::new();
        let mut rows = Vec::with_capacity(agents.len());
        for (id, st) in agents {
            let name = st.name();
            let since = match last.get(&id) {
                Some((n, since)) if *n == name => *since,
                _ => {
                    events.push(desk_event(wall, id.clone(), name));
                    let since = match st {
                        AgentState::Ringing { since } | AgentState::OnCall { since } => ago(since),
                        _ => wall,
                    };
                    last.insert(id.clone(), (name, since));
                    since
                }
            };
            rows.push(json!({
                "id": id,
                "state": name,
                "since": since,
                "for_ms": (wall - since).num_milliseconds().max(0),
                "pending": pending.get(&id),
            }));
        }
        let queues: Vec<serde_json::Value> = queues
            .iter()
            .map(|q| {
                let w: Vec<serde_json::Value> = waiting
                    .iter()
                    .filter(|(_, (wq, _))| wq == q)
                    .map(|(call, (_, since))| {
                        json!({"call_id": call, "since": ago(*since), "wait_ms": now_ms.saturating_sub(*since)})
                    })
                    .collect();
                json!({"name": q, "waiting": w})
            })
            .collect();
        let body = json!({"running": true, "at": wall, "agents": rows, "queues": queues});
        live.store
            .desk_publish(Utc::now(), &body.to_string())
            .await?;
        if !events.is_empty() {
            live.store.append_events(&events).await?;
        }
        // Released only now: `close` cannot write its sign-outs between this
        // snapshot's state changes and their append.
        drop(last);
        Ok(())
    }

    /// Milliseconds since the run started: the ACD's clock.
    pub fn now_ms(&self) -> u64 {
        self.origin.elapsed().as_millis() as u64
    }

    fn acd(&self) -> std::sync::MutexGuard<'_, Acd> {
        self.acd.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An agent stops / starts taking calls.
    pub fn pause(&self, agent: &str) -> Result<(), waihu_acd::AcdError> {
        let now = self.now_ms();
        self.acd().pause(agent, now)
    }
    pub fn resume(&self, agent: &str) -> Result<(), waihu_acd::AcdError> {
        let now = self.now_ms();
        self.acd().resume(agent, now)
    }
    pub fn has_queue(&self, queue: &str) -> bool {
        self.acd().queue(queue).is_some()
    }

    /// What the agents of `queue` are doing now, for predictive pacing. An
    /// agent who only registers and has no live binding (not in `registered`,
    /// agent ids) cannot take a call and is not counted.
    pub fn view(&self, queue: &str, registered: &HashSet<String>) -> waihu_campaign::AgentView {
        let now = self.now_ms();
        let mut v = waihu_campaign::AgentView::default();
        let secs = |ms: u64| ms as f64 / 1000.0;
        let mut acd = self.acd();
        for (spec, s) in acd.queue_states(queue, now).unwrap_or_default() {
            if spec.uri.is_none() && !registered.contains(&spec.id) {
                continue;
            }
            match s {
                AgentState::Available => v.free += 1,
                // Rung for a call: as good as on it, just begun.
                AgentState::Ringing { .. } => v.talking_s.push(0.0),
                AgentState::OnCall { since } => v.talking_s.push(secs(now.saturating_sub(since))),
                AgentState::WrapUp { until } => {
                    v.wrap_up_left_s.push(secs(until.saturating_sub(now)))
                }
                AgentState::Paused => {}
            }
        }
        v
    }

    /// Agent ids with a live registration now (pacing counts only reachable agents).
    pub async fn registered(&self, ep: &SipEndpoint) -> HashSet<String> {
        let regs = self.acd().registrations();
        crate::agent_registrar::contacts(ep, &regs)
            .await
            .into_keys()
            .collect()
    }

    /// (agent id, state name) of every agent now.
    pub fn agents(&self) -> Vec<(String, &'static str)> {
        let now = self.now_ms();
        self.acd()
            .snapshot(now)
            .into_iter()
            .map(|(id, s)| (id, s.name()))
            .collect()
    }
}

fn desk_event(at: DateTime<Utc>, agent: String, state: &str) -> Event {
    Event {
        at,
        customer: None,
        campaign: None,
        call: None,
        kind: EventKind::AgentState {
            agent,
            state: state.into(),
        },
    }
}

/// The desk's publishing task: every [`PUBLISH_EVERY`] until the handoff is gone.
async fn publish(h: Weak<Handoff>) {
    let (mut cursor, mut listen_cursor) = match h.upgrade() {
        Some(h) => match &h.live {
            Some(live) => (
                live.store.agent_state_head().await.unwrap_or(0),
                // Requests from before this run are not replayed.
                live.store
                    .event_type_head("listen_requested")
                    .await
                    .unwrap_or(0),
            ),
            None => return,
        },
        None => return,
    };
    let mut pending = BTreeMap::new();
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(h) = h.upgrade() else { break };
        let Some(live) = &h.live else { break };
        if let Err(e) = h.publish_once(live, &mut cursor, &mut pending).await {
            tracing::warn!(error = %e, "agent desk: publishing");
        }
        if let Err(e) = h.listen_once(live, &mut listen_cursor).await {
            tracing::warn!(error = %e, "agent desk: listen-in requests");
        }
    }
}

/// How a handed-over call ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum HandoffResult {
    /// Never handed over (the script did not transfer to a queue).
    #[default]
    None,
    /// An agent took the call.
    Bridged {
        agent: String,
        /// Transfer decision → the agent answered (what a cold transfer would take).
        decision_to_answer: Duration,
        /// Transfer decision → the agent hears the callee (the bridge opens,
        /// after the whisper).
        decision_to_bridge: Duration,
    },
    /// No agent came: a callback at this time was offered and is scheduled.
    Callback { at: DateTime<Utc> },
    /// The callee hung up while waiting.
    Abandoned,
    /// Agent-assisted campaign: answered, and no agent came within the
    /// abandon limit (2 s); the callee heard the abandon message.
    Dropped { waited: Duration },
}

/// What one call's transfer produced, read by the dialer at the call's end.
#[derive(Default)]
pub struct Outcome {
    pub events: Vec<(DateTime<Utc>, EventKind)>,
    pub result: HandoffResult,
    /// The agent leg's recording (stereo WAV: left the agent, right what waihu sent it).
    pub agent_recording: Option<Vec<u8>>,
    /// When the callee answered (agent-assisted campaigns: the answer delay).
    pub answered_at: Option<Instant>,
    /// The agent's time on the call, answer to hang-up.
    pub talk: Option<Duration>,
}

/// An agent-assisted call ([`crate::pacing`]): no bot, the callee goes to
/// `queue` the moment they answer, and waits at most `wait`.
pub struct Direct {
    pub queue: String,
    pub wait: Duration,
    /// What an abandoned callee hears before the hang-up.
    pub message: String,
    pub line: Arc<crate::pacing::Line>,
}

/// A callee leg's bot in an agent-assisted call: silence until the transfer
/// task takes over (the first frame after the answer).
struct Silent;

impl CallAgent for Silent {
    fn on_frame(&mut self, _now: Instant, _heard: &[i16], say: &mut [i16]) -> Control {
        say.fill(0);
        Control::Continue
    }
}

/// What a transfer task tells the callee's leg.
enum LegCmd {
    /// Loop this audio (the hold prompt) until told otherwise.
    Loop(Arc<[i16]>),
    /// Play this once, then hang up.
    PlayThenHangup(Vec<i16>),
    /// Relay audio with the agent from now on.
    Bridge(Bridge),
}

/// What arrives from another call task, played out 20 ms at a time: starts
/// after [`PRIME_FRAMES`] frames, keeps at most [`MAX_BUFFER_FRAMES`] (older
/// audio is dropped back to the priming depth).
pub(crate) struct Playout {
    buf: VecDeque<i16>,
    primed: bool,
}

impl Playout {
    pub(crate) fn new() -> Playout {
        Playout {
            buf: VecDeque::with_capacity(FRAME * MAX_BUFFER_FRAMES * 2),
            primed: false,
        }
    }

    /// Takes what arrived on `rx`. False: its sender is gone.
    pub(crate) fn take(&mut self, rx: &std_mpsc::Receiver<Vec<i16>>) -> bool {
        loop {
            match rx.try_recv() {
                Ok(f) => self.buf.extend(f),
                Err(std_mpsc::TryRecvError::Empty) => return true,
                Err(std_mpsc::TryRecvError::Disconnected) => return false,
            }
        }
    }

    /// Fills `say` with the next frame (silence while priming).
    pub(crate) fn play(&mut self, say: &mut [i16]) {
        if self.buf.len() > FRAME * MAX_BUFFER_FRAMES {
            // Too far behind: keep the newest, back at the priming depth.
            let drop = self.buf.len() - FRAME * (PRIME_FRAMES + 1);
            self.buf.drain(..drop);
        }
        if !self.primed {
            if self.buf.len() < FRAME * PRIME_FRAMES {
                return;
            }
            self.primed = true;
        }
        if self.buf.len() < say.len() {
            self.primed = false;
        }
        for s in say.iter_mut() {
            match self.buf.pop_front() {
                Some(x) => *s = x,
                None => break,
            }
        }
    }
}

/// One side's ends of the two audio channels of a bridge.
struct Bridge {
    tx: std_mpsc::Sender<Vec<i16>>,
    rx: std_mpsc::Receiver<Vec<i16>>,
    out: Playout,
}

impl Bridge {
    fn new(tx: std_mpsc::Sender<Vec<i16>>, rx: std_mpsc::Receiver<Vec<i16>>) -> Bridge {
        Bridge {
            tx,
            rx,
            out: Playout::new(),
        }
    }

    /// Sends what this leg heard and fills `say` with what the other leg
    /// heard. False: the other leg is gone.
    fn relay(&mut self, heard: &[i16], say: &mut [i16]) -> bool {
        if self.tx.send(heard.to_vec()).is_err() || !self.out.take(&self.rx) {
            return false;
        }
        self.out.play(say);
        true
    }
}

/// Everything a call's transfer task needs.
pub struct CallContext {
    pub handoff: Arc<Handoff>,
    pub ep: Arc<SipEndpoint>,
    pub synth: Synthesizer,
    pub zh: bool,
    /// The customer's name, masked (张*), for the whisper.
    pub customer: Option<String>,
    /// Whom and which campaign the call's live events name.
    pub customer_id: Option<CustomerId>,
    pub campaign: Option<CampaignId>,
    pub call_id: String,
    pub clock: Arc<CampaignClock>,
    pub max_duration: Duration,
    pub outcome: Arc<Mutex<Outcome>>,
    /// Agent-assisted: straight to an agent, abandoned after a short wait.
    pub direct: Option<Direct>,
}

/// The callee's leg: the bot until it hands over, then the transfer's.
pub struct CalleeLeg {
    bot: Box<dyn CallAgent>,
    requests: std_mpsc::Receiver<HandoffRequest>,
    ctx: Option<CallContext>,
    cmds: Option<std_mpsc::Receiver<LegCmd>>,
    gone: Arc<AtomicBool>,
    play: VecDeque<i16>,
    hold: Option<(Arc<[i16]>, usize)>,
    hangup_after_play: bool,
    bridge: Option<Bridge>,
    rt: tokio::runtime::Handle,
}

impl CalleeLeg {
    /// Wraps the call's bot; `requests` is the receiving end of
    /// [`waihu_bot::CallSetup::handoff`]. Call from inside the runtime.
    pub fn new(
        bot: Box<dyn CallAgent>,
        requests: std_mpsc::Receiver<HandoffRequest>,
        ctx: CallContext,
    ) -> CalleeLeg {
        CalleeLeg {
            bot,
            requests,
            ctx: Some(ctx),
            cmds: None,
            gone: Arc::new(AtomicBool::new(false)),
            play: VecDeque::new(),
            hold: None,
            hangup_after_play: false,
            bridge: None,
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// An agent-assisted call's leg: no bot; handed to `direct.queue` at the
    /// first frame after the answer.
    pub fn direct(ctx: CallContext) -> CalleeLeg {
        let (tx, rx) = std_mpsc::channel();
        if let Some(d) = &ctx.direct {
            let _ = tx.send(HandoffRequest {
                queue: d.queue.clone(),
                intents: Vec::new(),
                emotion: None,
                path: Vec::new(),
            });
        }
        CalleeLeg::new(Box::new(Silent), rx, ctx)
    }

    fn commands(&mut self) {
        let Some(rx) = &self.cmds else { return };
        while let Ok(c) = rx.try_recv() {
            match c {
                LegCmd::Loop(a) => self.hold = Some((a, 0)),
                LegCmd::PlayThenHangup(a) => {
                    self.hold = None;
                    self.play.extend(a);
                    self.hangup_after_play = true;
                }
                LegCmd::Bridge(b) => {
                    self.hold = None;
                    self.play.clear();
                    self.bridge = Some(b);
                }
            }
        }
    }
}

impl CallAgent for CalleeLeg {
    fn on_answered(&mut self, now: Instant) {
        if let Some(ctx) = &self.ctx {
            ctx.outcome
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .answered_at = Some(now);
            if let Some(d) = &ctx.direct {
                d.line.answered();
            }
        }
        self.bot.on_answered(now)
    }

    fn on_frame(&mut self, now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        if self.cmds.is_none() {
            match self.requests.try_recv() {
                Ok(req) => {
                    let (tx, rx) = std_mpsc::channel();
                    self.cmds = Some(rx);
                    if let Some(ctx) = self.ctx.take() {
                        let gone = self.gone.clone();
                        self.rt.spawn(transfer(ctx, req, tx, gone, Instant::now()));
                    }
                }
                Err(_) => return self.bot.on_frame(now, heard, say),
            }
        }
        self.commands();
        if let Some(b) = &mut self.bridge {
            if !b.relay(heard, say) {
                return Control::Hangup("the agent hung up / 坐席已挂断".into());
            }
            return Control::Continue;
        }
        if !self.play.is_empty() {
            for s in say.iter_mut() {
                match self.play.pop_front() {
                    Some(x) => *s = x,
                    None => break,
                }
            }
        } else if self.hangup_after_play {
            return Control::Hangup("transfer: no agent, callback offered".into());
        } else if let Some((audio, pos)) = &mut self.hold {
            for s in say.iter_mut() {
                if audio.is_empty() {
                    break;
                }
                *s = audio[*pos % audio.len()];
                *pos += 1;
            }
        }
        Control::Continue
    }

    fn on_early_frame(&mut self, now: Instant, heard: &[i16]) {
        self.bot.on_early_frame(now, heard)
    }

    fn on_dtmf(&mut self, now: Instant, digit: char) {
        if self.cmds.is_none() {
            self.bot.on_dtmf(now, digit)
        }
    }

    fn on_ended(&mut self, now: Instant) {
        self.gone.store(true, Ordering::Relaxed);
        self.bridge = None;
        self.bot.on_ended(now)
    }
}

/// The agent's leg: the whisper, then the bridge.
struct AgentLeg {
    whisper: VecDeque<i16>,
    /// The callee leg's ends, handed over when the whisper is done.
    callee_ends: Option<Bridge>,
    callee_cmds: std_mpsc::Sender<LegCmd>,
    own: Bridge,
    bridged: bool,
    gone: Arc<AtomicBool>,
    answered: mpsc::UnboundedSender<Instant>,
    bridged_at: Arc<Mutex<Option<Instant>>>,
    /// Supervisors listening in.
    listeners: crate::listen::Listeners,
}

impl CallAgent for AgentLeg {
    fn on_answered(&mut self, now: Instant) {
        let _ = self.answered.send(now);
    }

    fn on_frame(&mut self, now: Instant, heard: &[i16], say: &mut [i16]) -> Control {
        if self.gone.load(Ordering::Relaxed) {
            return Control::Hangup("the customer hung up / 客户已挂断".into());
        }
        if !self.bridged {
            if !self.whisper.is_empty() {
                for s in say.iter_mut() {
                    match self.whisper.pop_front() {
                        Some(x) => *s = x,
                        None => break,
                    }
                }
                return Control::Continue;
            }
            // Whisper done: the callee leg relays from its next frame.
            if let Some(b) = self.callee_ends.take() {
                if self.callee_cmds.send(LegCmd::Bridge(b)).is_err() {
                    return Control::Hangup("the customer hung up / 客户已挂断".into());
                }
            }
            self.bridged = true;
            *self.bridged_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(now);
        }
        if self.own.relay(heard, say) {
            crate::listen::feed(&self.listeners, heard, say);
            Control::Continue
        } else {
            Control::Hangup("the customer hung up / 客户已挂断".into())
        }
    }
}

fn say(synth: &Synthesizer, zh: bool, text: &str) -> Vec<i16> {
    let voice = Voice {
        style: Style::default(),
        lang: if zh { LangChoice::Zh } else { LangChoice::En },
        rate: 8000,
    };
    match synth.synthesize_all(text, voice) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(error = %e, "handoff prompt synthesis failed");
            Vec::new()
        }
    }
}

async fn speak(synth: &Synthesizer, zh: bool, text: String) -> Vec<i16> {
    let synth = synth.clone();
    tokio::task::spawn_blocking(move || say(&synth, zh, &text))
        .await
        .unwrap_or_default()
}

/// What an abandoned callee of an agent-assisted campaign hears, unless the
/// campaign file says otherwise: who called, that we will call back.
pub fn abandon_text(zh: bool) -> &'static str {
    if zh {
        "您好，这里是客户服务中心。现在坐席繁忙，我们稍后会再给您回电。再见。"
    } else {
        "Hello, this is the customer service centre. All our agents are busy; we will call you back later. Goodbye."
    }
}

/// The spoken summary for the agent: who, why, how they feel. Short: the
/// callee waits on hold while the agent listens to it.
pub fn whisper_text(zh: bool, customer: Option<&str>, req: &HandoffRequest) -> String {
    let intents: Vec<String> = req
        .intents
        .iter()
        .rev()
        .take(2)
        .rev()
        .map(|i| i.replace('_', " "))
        .collect();
    let why = if intents.is_empty() {
        if zh { "未知" } else { "unknown" }.to_string()
    } else {
        intents.join(if zh { "，" } else { ", " })
    };
    let emotion = req.emotion.as_deref().unwrap_or("neutral");
    let queue = req.queue.replace('_', " ");
    // A masked name is read as its first character only (张* → 张某), never
    // as "asterisk".
    let initial = customer.and_then(|c| c.chars().next());
    if zh {
        let who = initial.map_or("客户".to_string(), |c| format!("{c}某"));
        format!("{queue}转人工，{who}，诉求：{why}，情绪：{emotion}。")
    } else {
        let who = initial.map_or("a customer".to_string(), |c| format!("customer {c}"));
        format!("{queue}: {who}. Wants: {why}. Mood: {emotion}.")
    }
}

fn hold_text(zh: bool) -> &'static str {
    if zh {
        "正在为您转接人工客服，请稍候。"
    } else {
        "Please hold while I connect you to an agent."
    }
}

fn callback_text(zh: bool, minutes: u64) -> String {
    if zh {
        format!("非常抱歉，人工客服现在都在忙。我们会在{minutes}分钟后给您回电，再见。")
    } else {
        format!(
            "I'm sorry, all our agents are busy. We will call you back in {minutes} minutes. Goodbye."
        )
    }
}

/// A transfer event of the call: appended to the store at once in a live run
/// (the desk sees it while the call is up), else kept for the call's end.
async fn record(ctx: &CallContext, kind: EventKind) {
    let at = ctx.clock.now();
    if let Some(live) = &ctx.handoff.live {
        let e = Event {
            at,
            customer: ctx.customer_id,
            campaign: ctx.campaign,
            call: Some(CallId(ctx.call_id.clone())),
            kind,
        };
        match live.store.append_event(&e).await {
            Ok(_) => return,
            Err(err) => {
                tracing::warn!(call = %ctx.call_id, error = %err, "transfer event: kept for the call's end");
                ctx.outcome
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .events
                    .push((at, e.kind));
                return;
            }
        }
    }
    let mut o = ctx.outcome.lock().unwrap_or_else(|e| e.into_inner());
    o.events.push((at, kind));
}

/// One handed-over call, from the request to the bridge's end or the callback.
async fn transfer(
    ctx: CallContext,
    req: HandoffRequest,
    cmds: std_mpsc::Sender<LegCmd>,
    gone: Arc<AtomicBool>,
    decided: Instant,
) {
    let h = ctx.handoff.clone();
    let log = |kind: EventKind| record(&ctx, kind);
    let set = |r: HandoffResult| {
        ctx.outcome.lock().unwrap_or_else(|e| e.into_inner()).result = r;
    };
    let summary = whisper_text(ctx.zh, ctx.customer.as_deref(), &req);
    log(EventKind::TransferRequested {
        queue: req.queue.clone(),
    })
    .await;
    log(EventKind::TransferScreen {
        queue: req.queue.clone(),
        customer: ctx.customer.clone(),
        path: req.path.clone(),
        intents: req.intents.clone(),
        emotion: req.emotion.clone(),
        summary: summary.clone(),
    })
    .await;
    let queue = h.acd().queue(&req.queue).cloned();
    let start = h.now_ms();
    let direct = ctx.direct.as_ref();
    let asked = match direct {
        Some(d) => h
            .acd()
            .request_within(&req.queue, start, d.wait.as_millis() as u64),
        None => h.acd().request(&req.queue, start),
    };
    let mut waiting = match asked {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(call = %ctx.call_id, error = %e, "transfer to an unknown queue");
            None
        }
    };
    let mut in_queue = waiting.as_ref().map(|_| {
        h.waiting()
            .insert(ctx.call_id.clone(), (req.queue.clone(), start));
        WaitingGuard(&h, ctx.call_id.clone())
    });
    let callback_min = queue.as_ref().map_or(30, |q| q.callback_after_min);
    let hold = queue
        .as_ref()
        .and_then(|q| q.hold_prompt.clone())
        .unwrap_or_else(|| hold_text(ctx.zh).to_string());
    // An agent-assisted call has no time for a hold prompt or a whisper:
    // the agent must be talking within the abandon limit.
    let whisper = if direct.is_some() {
        Vec::new()
    } else {
        let mut hold_audio = speak(&ctx.synth, ctx.zh, hold).await;
        hold_audio.extend(std::iter::repeat_n(0, 8000 * 2));
        let _ = cmds.send(LegCmd::Loop(hold_audio.into()));
        speak(&ctx.synth, ctx.zh, summary).await
    };
    let give_up = |reason: &str, waited_ms: u64| {
        log(EventKind::TransferAbandoned {
            queue: req.queue.clone(),
            reason: reason.into(),
            wait_ms: waited_ms,
        })
    };
    loop {
        let Some(w) = waiting.as_mut() else {
            give_up("unknown_queue", 0).await;
            break;
        };
        let now = h.now_ms();
        if gone.load(Ordering::Relaxed) {
            h.acd().abandon(w, now);
            give_up("caller_hung_up", w.waited(now)).await;
            set(HandoffResult::Abandoned);
            return;
        }
        // Registered agents are reached at their live binding's contact, others at `uri`.
        let regs = h.acd().registrations();
        let live = crate::agent_registrar::contacts(&ctx.ep, &regs).await;
        let step = h.acd().next_with(w, now, &|a: &waihu_acd::AgentSpec| {
            live.get(&a.id).cloned().or_else(|| a.uri.clone())
        });
        match step {
            Step::Wait { until } => {
                tokio::time::sleep(Duration::from_millis(until.saturating_sub(now))).await;
            }
            Step::GiveUp { reason, waited_ms } => {
                give_up(reason.name(), waited_ms).await;
                debug_assert!(matches!(
                    reason,
                    GiveUp::Timeout | GiveUp::AllPaused | GiveUp::NoAgent | GiveUp::Unregistered
                ));
                break;
            }
            Step::Offer {
                agent,
                uri,
                ring_ms,
            } => {
                log(EventKind::TransferOffered {
                    queue: req.queue.clone(),
                    agent: agent.clone(),
                    wait_ms: w.waited(now),
                })
                .await;
                let (a_tx, a_rx) = std_mpsc::channel(); // callee → agent
                let (c_tx, c_rx) = std_mpsc::channel(); // agent → callee
                let (ans_tx, mut ans_rx) = mpsc::unbounded_channel();
                let bridged_at = Arc::new(Mutex::new(None));
                let listeners = crate::listen::Listeners::default();
                let leg = AgentLeg {
                    listeners: listeners.clone(),
                    whisper: whisper.iter().copied().collect(),
                    callee_ends: Some(Bridge::new(a_tx, c_rx)),
                    callee_cmds: cmds.clone(),
                    own: Bridge::new(c_tx, a_rx),
                    bridged: false,
                    gone: gone.clone(),
                    answered: ans_tx,
                    bridged_at: bridged_at.clone(),
                };
                let wav = h.spool.join(format!("{}-agent-{agent}.wav", ctx.call_id));
                let mut co = CallOptions::new(uri);
                co.ring_timeout = Duration::from_millis(ring_ms);
                co.from_user = Some("waihu".into());
                co.media = MediaOptions {
                    record: Some(wav.clone()),
                    max_duration: ctx.max_duration,
                    no_rtp_timeout: Duration::from_secs(10),
                    ..MediaOptions::default()
                };
                let ep = ctx.ep.clone();
                let mut call = tokio::spawn(async move {
                    place_call_with(&ep, co, Box::new(leg), &mut |_| {}).await
                });
                let answered = tokio::select! {
                    a = ans_rx.recv() => a,
                    _ = &mut call => None,
                };
                let now = h.now_ms();
                let Some(answered_at) = answered else {
                    h.acd().no_answer(w, now);
                    let _ = std::fs::remove_file(&wav);
                    continue;
                };
                h.acd().answered(w, now);
                if let Some(d) = direct {
                    d.line.done();
                }
                log(EventKind::TransferAnswered {
                    queue: req.queue.clone(),
                    agent: agent.clone(),
                    wait_ms: w.waited(now),
                })
                .await;
                // Bridged to an agent: no longer waiting (unless the agent
                // hangs up during the whisper; then the caller waits again).
                drop(in_queue.take());
                h.taps().insert(
                    ctx.call_id.clone(),
                    crate::listen::Tap {
                        ep: ctx.ep.clone(),
                        listeners,
                        campaign: ctx.campaign,
                        customer: ctx.customer_id,
                    },
                );
                let report = call.await;
                // Listeners hang up: their senders go with the tap.
                h.taps().remove(&ctx.call_id);
                let now = h.now_ms();
                h.acd().ended_call(w, now);
                ctx.outcome.lock().unwrap_or_else(|e| e.into_inner()).talk =
                    Some(answered_at.elapsed());
                if let Ok(Err(e)) = &report {
                    tracing::warn!(call = %ctx.call_id, error = %e, "agent leg failed");
                }
                let bridged = *bridged_at.lock().unwrap_or_else(|e| e.into_inner());
                let recording = std::fs::read(&wav).ok();
                let _ = std::fs::remove_file(&wav);
                let Some(at) = bridged else {
                    // The agent hung up during the whisper: the caller is still
                    // on hold; offer the call again (or give up in time).
                    h.waiting()
                        .insert(ctx.call_id.clone(), (req.queue.clone(), w.since()));
                    in_queue = Some(WaitingGuard(&h, ctx.call_id.clone()));
                    continue;
                };
                let mut o = ctx.outcome.lock().unwrap_or_else(|e| e.into_inner());
                o.agent_recording = recording;
                o.result = HandoffResult::Bridged {
                    agent,
                    decision_to_answer: answered_at.saturating_duration_since(decided),
                    decision_to_bridge: at.saturating_duration_since(decided),
                };
                return;
            }
        }
    }
    drop(in_queue);
    if let Some(d) = direct {
        // Abandoned (TCPA/Ofcom): the message, then the hang-up; the planner
        // retries the contact like a busy line.
        d.line.done();
        let waited = Duration::from_millis(waiting.as_ref().map_or(0, |w| w.waited(h.now_ms())));
        set(HandoffResult::Dropped { waited });
        let message = speak(&ctx.synth, ctx.zh, d.message.clone()).await;
        let _ = cmds.send(LegCmd::PlayThenHangup(message));
        return;
    }
    // No agent: apologise, offer the callback, hang up after saying so.
    let at = ctx.clock.now() + chrono::Duration::minutes(callback_min as i64);
    set(HandoffResult::Callback { at });
    let sorry = speak(&ctx.synth, ctx.zh, callback_text(ctx.zh, callback_min)).await;
    let _ = cmds.send(LegCmd::PlayThenHangup(sorry));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(v: i16) -> Vec<i16> {
        vec![v; FRAME]
    }

    #[test]
    fn the_bridge_primes_relays_in_order_and_bounds_its_delay() {
        let (a_tx, a_rx) = std_mpsc::channel();
        let (b_tx, b_rx) = std_mpsc::channel();
        let mut a = Bridge::new(a_tx, b_rx);
        let mut b = Bridge::new(b_tx, a_rx);
        let mut say = vec![0i16; FRAME];
        // b sends frames 1, 2, 3; a hears nothing until two are buffered.
        b.relay(&frame(1), &mut say);
        assert!(a.relay(&frame(0), &mut say));
        assert!(say.iter().all(|&x| x == 0), "not primed on one frame");
        b.relay(&frame(2), &mut say);
        say.fill(0);
        a.relay(&frame(0), &mut say);
        assert_eq!(say, frame(1), "in order, from the first");
        b.relay(&frame(3), &mut say);
        say.fill(0);
        a.relay(&frame(0), &mut say);
        assert_eq!(say, frame(2));
        // A burst far beyond the cap: only the newest few frames are kept.
        for v in 10..30 {
            b.relay(&frame(v), &mut say);
        }
        say.fill(0);
        a.relay(&frame(0), &mut say);
        assert_eq!(say, frame(30 - 1 - PRIME_FRAMES as i16));
        // The other side gone: relay says so.
        drop(b);
        assert!(!a.relay(&frame(0), &mut say));
    }

    #[test]
    fn the_whisper_names_the_queue_reason_and_mood_never_a_mask() {
        let req = HandoffRequest {
            queue: "after_sales".into(),
            intents: vec!["affirm".into(), "complaint".into(), "request_human".into()],
            emotion: Some("angry".into()),
            path: vec![],
        };
        let zh = whisper_text(true, Some("张*"), &req);
        assert_eq!(
            zh,
            "after sales转人工，张某，诉求：complaint，request human，情绪：angry。"
        );
        let en = whisper_text(false, Some("M********"), &req);
        assert!(!en.contains('*'), "{en}");
        assert!(
            en.contains("customer M") && en.contains("request human"),
            "{en}"
        );
        let anon = whisper_text(
            false,
            None,
            &HandoffRequest {
                intents: vec![],
                emotion: None,
                ..req
            },
        );
        assert!(
            anon.contains("a customer") && anon.contains("unknown") && anon.contains("neutral"),
            "{anon}"
        );
    }
}
