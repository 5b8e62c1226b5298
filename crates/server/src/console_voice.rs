//! The console's voice test: the browser's microphone talks to the script's
//! bot over WebRTC (`waihu_webrtc`), through the same pipeline a phone call
//! uses (`waihu_bot::start`: VAD, endpointing, ASR, NLU, dialog, TTS), with
//! the transcript, intents, states and emotion polled live beside it.
//!
//! `POST /api/scripts/voice` takes the editor's script and the browser's SDP
//! offer and answers the SDP answer and a session id; `GET
//! /api/scripts/voice/{id}` is what the bot heard and did so far (and, once
//! over, how the leg ended and each turn's latency); `DELETE` hangs up. A
//! session lasts at most [`MAX_CALL`]; [`MAX_SESSIONS`] run at once (each
//! holds an ASR slot's worth of CPU while the callee talks).
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::api::J;
use crate::auth::{Caller, Need, Role};
use crate::console::{diagnostics, sha256, too_long};
use crate::error::ApiError;
use crate::{AppState, Routes};

/// Voice tests at once.
pub const MAX_SESSIONS: usize = 4;
/// Longest voice test.
pub const MAX_CALL: Duration = Duration::from_secs(5 * 60);
/// Ended sessions are kept this long for the page to read their last notes.
const KEEP_ENDED: Duration = Duration::from_secs(10 * 60);

/// One voice test.
struct Session {
    /// What the page polls: notes in order.
    notes: Vec<Value>,
    /// Set once the leg and the bot are done.
    ended: Option<Value>,
    stop: Option<oneshot::Sender<()>>,
    started: Instant,
    owner: String,
}

/// Voice tests and the speech kits they use (one per language, loaded on first use).
#[derive(Default)]
pub struct VoiceState {
    sessions: Mutex<HashMap<String, Arc<Mutex<Session>>>>,
    kits: Mutex<HashMap<&'static str, Arc<waihu_bot::Kit>>>,
}

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "POST",
        "/api/scripts/voice",
        Need::Min(Role::Analyst),
        post(start),
    )
    .add(
        "GET",
        "/api/scripts/voice/{id}",
        Need::Min(Role::Analyst),
        get(poll),
    )
    .add(
        "DELETE",
        "/api/scripts/voice/{id}",
        Need::Min(Role::Analyst),
        axum::routing::delete(hang_up),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VoiceBody {
    /// The script text (the editor's, saved or not).
    pub(crate) yaml: String,
    /// The browser's SDP offer (RTCPeerConnection.createOffer).
    pub(crate) sdp: String,
    /// Customer variables; missing ones take the script's examples.
    #[serde(default)]
    pub(crate) vars: std::collections::BTreeMap<String, String>,
    /// `opus` (the default: Opus when offered, else G.711) or `g711`.
    #[serde(default)]
    pub(crate) codec: waihu_webrtc::Codecs,
}

/// The address to offer the browser: the one it reached us on (the Host
/// header's, when it is an address), else the first non-loopback IPv4 of this
/// machine (the route to a documentation address; nothing is sent), else loopback.
fn media_ip(headers: &HeaderMap) -> IpAddr {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let bare = host
        .rsplit_once(':')
        .filter(|(h, p)| !h.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        .map_or(host, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if !ip.is_unspecified() {
            return ip;
        }
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

impl VoiceState {
    fn kit(
        &self,
        data_dir: &std::path::Path,
        lang: &'static str,
    ) -> Result<Arc<waihu_bot::Kit>, ApiError> {
        if let Some(k) = self.kits.lock().unwrap().get(lang) {
            return Ok(k.clone());
        }
        // One ASR slot: the voice test must not take the cores live calls need.
        let kit = waihu_bot::Kit::load(data_dir, lang, None, Some(1)).map_err(|e| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "speech_unavailable",
                e.to_string(),
            )
        })?;
        let kit = Arc::new(kit);
        self.kits.lock().unwrap().insert(lang, kit.clone());
        Ok(kit)
    }

    fn session(&self, id: &str) -> Result<Arc<Mutex<Session>>, ApiError> {
        self.sessions
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found("no_such_session", format!("no voice test {id}")))
    }
}

async fn start(
    State(s): State<AppState>,
    c: Caller,
    headers: HeaderMap,
    J(b): J<VoiceBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    too_long("script", b.yaml.len())?;
    too_long("SDP offer", b.sdp.len())?;
    let prog = match waihu_dialog::load_str(&b.yaml, "script") {
        Ok(p) => p,
        Err(e) => {
            return Ok((
                StatusCode::OK,
                Json(json!({"ok": false, "errors": diagnostics(&e)})),
            ))
        }
    };
    let voice = &s.console.voice;
    {
        let mut sessions = voice.sessions.lock().unwrap();
        sessions.retain(|_, v| {
            let v = v.lock().unwrap();
            v.ended.is_none() || v.started.elapsed() < KEEP_ENDED
        });
        let live = sessions
            .values()
            .filter(|v| v.lock().unwrap().ended.is_none())
            .count();
        if live >= MAX_SESSIONS {
            return Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "busy",
                format!("{live} voice tests are running; at most {MAX_SESSIONS} run at once"),
            ));
        }
    }
    let lang = waihu_bot::lang_code(prog.language);
    let data_dir = s.store.home().to_path_buf();
    let console = s.console.clone();
    let sha = sha256(&b.yaml);
    // Loading Whisper and training the NLU take a moment the first time: off the runtime.
    let (kit, script) = tokio::task::spawn_blocking(move || -> Result<_, ApiError> {
        let kit = console.voice.kit(&data_dir, lang)?;
        let nlu = console.engine.nlu_for(&sha, &prog)?;
        Ok((
            kit,
            Arc::new(waihu_bot::ScriptKit {
                prog: Arc::new(prog),
                nlu,
            }),
        ))
    })
    .await
    .map_err(|e| ApiError::internal(format!("loading the voice test: {e}")))??;
    let mut vars = waihu_dialog::program::example_customer(&script.prog);
    vars.extend(b.vars);
    let (answer, leg) = waihu_webrtc::accept(&b.sdp, media_ip(&headers), b.codec)
        .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_offer", e.to_string()))?;
    let setup = waihu_bot::CallSetup {
        vars: vars.into_iter().collect(),
        seed: rand09::random(),
        variants: Vec::new(),
        tz: waihu_bot::text::zone(script.prog.language),
        clock: Arc::new(chrono::Utc::now),
        handoff: None,
        customer: None,
        phone: "browser".into(),
        trunk: waihu_bot::TrunkSlot::default(),
    };
    let (notes_tx, mut notes_rx) = tokio::sync::mpsc::unbounded_channel();
    let (mut agent, brain) = waihu_bot::start(kit, script, setup, Some(notes_tx)).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_variables",
            e.to_string(),
        )
    })?;
    let id = format!("v{:016x}", rand09::random::<u64>());
    let (stop_tx, stop_rx) = oneshot::channel();
    let session = Arc::new(Mutex::new(Session {
        notes: Vec::new(),
        ended: None,
        stop: Some(stop_tx),
        started: Instant::now(),
        owner: c.actor.clone(),
    }));
    voice
        .sessions
        .lock()
        .unwrap()
        .insert(id.clone(), session.clone());
    let local = leg.local_addr();
    let codec = leg.codec();
    let noted = session.clone();
    let begun = Instant::now();
    tokio::spawn(async move {
        while let Some(n) = notes_rx.recv().await {
            let at_ms = begun.elapsed().as_millis() as u64;
            let v = match n {
                waihu_bot::Note::Node { state, emotion } => {
                    json!({"kind": "state", "at_ms": at_ms, "state": state, "emotion": emotion})
                }
                waihu_bot::Note::Turn(t) => json!({"kind": "turn", "at_ms": at_ms, "turn": t}),
            };
            noted.lock().unwrap().notes.push(v);
        }
    });
    let ended = session.clone();
    tokio::spawn(async move {
        let brain = tokio::spawn(brain);
        let limits = waihu_webrtc::Limits {
            max: MAX_CALL,
            ..Default::default()
        };
        let leg = leg
            .run(&mut agent, limits, async {
                let _ = stop_rx.await;
            })
            .await;
        drop(agent);
        let report = match tokio::time::timeout(Duration::from_secs(30), brain).await {
            Ok(Ok(r)) => json!({
                "outcome": r.outcome,
                "latencies": r.latencies,
                "turns": r.turns.len(),
            }),
            _ => json!({"error": "the bot did not finish"}),
        };
        tracing::info!(ended = %leg.ended, packets_in = leg.packets_in, "voice test over");
        ended.lock().unwrap().ended = Some(json!({"leg": leg, "bot": report}));
    });
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"ok": true, "id": id, "sdp": answer, "media": local.to_string(), "codec": codec, "language": lang}),
        ),
    ))
}

async fn poll(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let session = s.console.voice.session(&id)?;
    let v = session.lock().unwrap();
    Ok(Json(json!({
        "id": id,
        "notes": v.notes,
        "ended": v.ended,
        "seconds": v.started.elapsed().as_secs_f64(),
        "owner": v.owner,
    })))
}

async fn hang_up(
    State(s): State<AppState>,
    _c: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let session = s.console.voice.session(&id)?;
    if let Some(stop) = session.lock().unwrap().stop.take() {
        let _ = stop.send(());
    }
    Ok(StatusCode::NO_CONTENT)
}
