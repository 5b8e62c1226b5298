//! The console's handlers that run the product's engines (the `engine`
//! feature, on by default): a text chat with a script (`waihu_bot::text`, the
//! interpreter and NLU of `waihu script chat`), a script's test cases
//! (`waihu script test`) and the campaign forecast (`waihu_dialer::forecast`
//! over `waihu_campaign::forecast`). Without the feature (the fuzz build,
//! which needs only the API's body decoding) these routes are not served.
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Json;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use waihu_bot::text::{Line, TextCall};
use waihu_core::{NluContext, NluResult};
use waihu_dialog::{Output, Program};

use crate::api::J;
use crate::auth::Caller;
use crate::auth::{Need, Role};
use crate::console::{check_name, diagnostics, scripts_dir, sha256, too_long, Console};
use crate::error::ApiError;
use crate::{AppState, Routes};

/// Chat sessions kept at once; the least recently used goes first.
pub const CHAT_SESSIONS: usize = 32;
/// A chat untouched this long is dropped.
pub const CHAT_IDLE: Duration = Duration::from_secs(30 * 60);
/// Trained script NLUs kept (by script text), so a chat restarted on the same
/// text answers at once.
const NLU_CACHE: usize = 8;

type Classify = Box<dyn Fn(&str, &NluContext) -> NluResult + Send>;

struct Chat {
    call: TextCall<Classify>,
    used: Instant,
}

/// Chat sessions, trained NLUs and the voices prompt previews speak with.
#[derive(Default)]
pub struct EngineState {
    chats: Mutex<std::collections::HashMap<String, Chat>>,
    nlus: Mutex<Vec<(String, Arc<waihu_nlu::Nlu>)>>,
    /// Per script language, loaded on the first preview.
    voices: Mutex<BTreeMap<&'static str, Arc<waihu_bot::preview::Synthesizer>>>,
}

pub(crate) fn routes(r: Routes) -> Routes {
    r.add(
        "POST",
        "/api/scripts/chat",
        Need::Min(Role::Analyst),
        post(chat),
    )
    .add(
        "POST",
        "/api/scripts/test",
        Need::Min(Role::Analyst),
        post(run_tests),
    )
    .add(
        "POST",
        "/api/campaigns/forecast",
        Need::Min(Role::Analyst),
        post(forecast),
    )
    .add(
        "POST",
        "/api/scripts/prompt-audio",
        Need::Min(Role::Analyst),
        post(prompt_audio),
    )
}

// ---- prompt previews ----------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptAudioBody {
    /// The script text (the editor's, saved or not).
    yaml: String,
    /// The state whose prompt to speak.
    state: String,
    /// Customer variables; missing ones take the script's examples.
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

/// A state's prompt variants as the callee would hear them: each rendered and
/// spoken in the state's style by the bot's voice (`WAIHU_BOT_VOICE`), 8 kHz
/// WAV as a data URL. Script errors answer 200 with ok=false, like validate.
async fn prompt_audio(
    State(s): State<AppState>,
    _c: Caller,
    J(b): J<PromptAudioBody>,
) -> Result<Json<Value>, ApiError> {
    use waihu_bot::preview::{self, PreviewError};
    too_long("script", b.yaml.len())?;
    let prog = match waihu_dialog::load_str(&b.yaml, "script") {
        Ok(p) => p,
        Err(e) => return Ok(Json(json!({"ok": false, "errors": diagnostics(&e)}))),
    };
    let (style, prompts) =
        preview::state_prompts(&prog, &b.state, &b.vars).map_err(|e| match e {
            PreviewError::NoSuchState(..) => ApiError::not_found("no_such_state", e.to_string()),
            _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "no_prompt", e.to_string()),
        })?;
    let lang = waihu_bot::lang_code(prog.language);
    let console = s.console.clone();
    let data_dir = s.store.home().to_path_buf();
    let language = prog.language;
    let state = b.state.clone();
    let spoken_style = style.clone();
    let spoken = tokio::task::spawn_blocking(move || -> Result<Vec<Value>, ApiError> {
        let voice = console.engine.voice(&data_dir, lang)?;
        let styles = waihu_bot::preview::StyleBook::default();
        let mut out = Vec::with_capacity(prompts.len());
        for p in prompts {
            let samples = preview::speak(&voice, &styles, language, &state, &spoken_style, &p.text)
                .map_err(|e| match e {
                    PreviewError::Style { .. } => ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unknown_style",
                        e.to_string(),
                    ),
                    _ => ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "tts_unavailable",
                        e.to_string(),
                    ),
                })?;
            let wav = preview::wav_data_url(preview::PREVIEW_RATE, &samples)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            out.push(json!({
                "variant": p.variant,
                "text": p.text,
                "ms": samples.len() as u64 * 1000 / u64::from(preview::PREVIEW_RATE),
                "wav": wav,
            }));
        }
        Ok(out)
    })
    .await
    .map_err(|e| ApiError::internal(format!("speaking the prompt: {e}")))??;
    Ok(Json(json!({
        "ok": true,
        "state": b.state,
        "style": style,
        "language": lang,
        "rate": preview::PREVIEW_RATE,
        "variants": spoken,
    })))
}

impl EngineState {
    /// The bot's voice for `lang`, loaded once.
    fn voice(
        &self,
        data_dir: &std::path::Path,
        lang: &'static str,
    ) -> Result<Arc<waihu_bot::preview::Synthesizer>, ApiError> {
        let mut voices = self.voices.lock().unwrap();
        if let Some(v) = voices.get(lang) {
            return Ok(v.clone());
        }
        // Previews are short and repeated while editing: a small cache.
        let v = waihu_bot::kit::load_voice(data_dir, lang, 16 << 20)
            .map(Arc::new)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "tts_unavailable",
                    e.to_string(),
                )
            })?;
        voices.insert(lang, v.clone());
        Ok(v)
    }
}

// ---- test cases -------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    /// The script text under test (the editor's, saved or not).
    yaml: String,
    /// The cases (YAML, as `waihu script test` reads them); absent: the stored
    /// `<name>.cases.yaml`, or `<stem>.cases.yaml` without the language suffix.
    cases: Option<String>,
    name: Option<String>,
}

/// The stored case file for script `name`, and its file name.
fn stored_cases(s: &AppState, name: &str) -> Result<Option<(String, String)>, ApiError> {
    check_name(name)?;
    let mut candidates = vec![format!("{name}.cases.yaml")];
    if let Some((stem, _lang)) = name.rsplit_once('.') {
        candidates.push(format!("{stem}.cases.yaml"));
    }
    for f in candidates {
        let path = scripts_dir(s).join(&f);
        if let Ok(text) = std::fs::read_to_string(&path) {
            return Ok(Some((f, text)));
        }
    }
    Ok(None)
}

async fn run_tests(
    State(s): State<AppState>,
    _c: Caller,
    J(b): J<TestBody>,
) -> Result<Json<Value>, ApiError> {
    too_long("script", b.yaml.len())?;
    let (file, cases) = match (b.cases, &b.name) {
        (Some(c), _) => ("cases".to_string(), c),
        (None, Some(name)) => stored_cases(&s, name)?.ok_or_else(|| {
            ApiError::not_found(
                "no_cases",
                format!("no {name}.cases.yaml in the scripts directory; send the cases as `cases`"),
            )
        })?,
        (None, None) => {
            return Err(ApiError::bad_request(
                "bad_body",
                "send the cases as `cases`, or the script's `name` to use its stored .cases.yaml",
            ))
        }
    };
    too_long("case file", cases.len())?;
    let console = s.console.clone();
    tokio::task::spawn_blocking(move || test_script(&console, &b.yaml, &file, &cases))
        .await
        .map_err(|e| ApiError::internal(format!("running the cases: {e}")))?
        .map(Json)
}

fn test_script(console: &Console, yaml: &str, file: &str, cases: &str) -> Result<Value, ApiError> {
    use waihu_dialog::testing;
    let started = Instant::now();
    let prog = match waihu_dialog::load_str(yaml, "script") {
        Ok(p) => Arc::new(p),
        Err(e) => return Ok(json!({"ok": false, "errors": diagnostics(&e)})),
    };
    let cases = match testing::load_cases_str(cases, file) {
        Ok(c) => c,
        Err(e) => return Ok(json!({"ok": false, "cases_file": file, "errors": diagnostics(&e)})),
    };
    // Relative times in the cases are anchored at the simulation start, as
    // `waihu script test` anchors them, so a case reads the same any day.
    let nlu = console.engine.nlu_for(&sha256(yaml), &prog)?;
    let tz = waihu_bot::text::zone(prog.language);
    let classify =
        move |text: &str, cx: &NluContext| nlu.classify_in(text, testing::sim_start(), tz, cx);
    let results = testing::run_cases(&prog, &cases, Some(&classify));
    let failed = results.iter().filter(|r| !r.passed).count();
    Ok(json!({
        "ok": true,
        "cases_file": file,
        "passed": results.len() - failed,
        "failed": failed,
        "seconds": started.elapsed().as_secs_f64(),
        "results": results,
    }))
}

// ---- chat -----------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChatBody {
    /// Start a chat with this script text (answers with the opening prompt).
    yaml: Option<String>,
    /// Customer variables for a new chat; missing ones take the script's examples.
    #[serde(default)]
    vars: BTreeMap<String, String>,
    /// Continue this chat with `line`.
    session: Option<String>,
    /// What the callee says; `/silence`, `/hangup` and `/dtmf 1#` as in `waihu script chat`.
    line: Option<String>,
}

impl EngineState {
    pub(crate) fn nlu_for(
        &self,
        sha: &str,
        prog: &Program,
    ) -> Result<Arc<waihu_nlu::Nlu>, ApiError> {
        if let Some((_, n)) = self.nlus.lock().unwrap().iter().find(|(k, _)| k == sha) {
            return Ok(n.clone());
        }
        let nlu = Arc::new(waihu_bot::script_nlu(prog).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "nlu",
                format!("training the script's NLU: {e}"),
            )
        })?);
        let mut cache = self.nlus.lock().unwrap();
        cache.retain(|(k, _)| k != sha);
        cache.push((sha.to_string(), nlu.clone()));
        if cache.len() > NLU_CACHE {
            cache.remove(0);
        }
        Ok(nlu)
    }

    fn insert(&self, id: String, chat: Chat) {
        let mut chats = self.chats.lock().unwrap();
        chats.retain(|_, c| c.used.elapsed() < CHAT_IDLE);
        while chats.len() >= CHAT_SESSIONS {
            let oldest = chats
                .iter()
                .min_by_key(|(_, c)| c.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => chats.remove(&k),
                None => break,
            };
        }
        chats.insert(id, chat);
    }
}

fn turn_json(turn: &waihu_dialog::testing::BotTurn, heard: Option<&NluResult>) -> Value {
    let mut says = Vec::new();
    let mut actions = Vec::new();
    let mut end = Value::Null;
    for o in &turn.outputs {
        match o {
            Output::Play { text, style, .. } => says.push(json!({"text": text, "style": style})),
            Output::Action { action } => actions.push(json!(action)),
            Output::End { outcome, level } => {
                end = json!({"outcome": outcome, "level": level.map(|l| l.as_str())})
            }
            Output::Listen { .. } | Output::StopPlayback => {}
        }
    }
    json!({
        "state": turn.state,
        "says": says,
        "actions": actions,
        "heard": heard.map(|n| json!({"text": n.text, "intent": n.intent, "confidence": n.confidence, "entities": n.entities, "sentiment": n.sentiment})),
        "end": end,
    })
}

async fn chat(
    State(s): State<AppState>,
    _c: Caller,
    J(b): J<ChatBody>,
) -> Result<Json<Value>, ApiError> {
    match (b.yaml, b.session, b.line) {
        (Some(yaml), None, None) => {
            too_long("script", yaml.len())?;
            let console = s.console.clone();
            let vars = b.vars;
            tokio::task::spawn_blocking(move || start_chat(&console, &yaml, vars))
                .await
                .map_err(|e| ApiError::internal(format!("starting a chat: {e}")))?
                .map(Json)
        }
        (None, Some(session), Some(line)) => {
            if line.len() > 2000 {
                return Err(ApiError::bad_request(
                    "bad_body",
                    "line: at most 2,000 bytes",
                ));
            }
            let console = s.console.clone();
            tokio::task::spawn_blocking(move || continue_chat(&console, &session, &line))
                .await
                .map_err(|e| ApiError::internal(format!("chatting: {e}")))?
                .map(Json)
        }
        _ => Err(ApiError::bad_request(
            "bad_body",
            "send {\"yaml\": ...} to start a chat, then {\"session\": ..., \"line\": ...} for each turn",
        )),
    }
}

fn start_chat(
    console: &Console,
    yaml: &str,
    mut vars: BTreeMap<String, String>,
) -> Result<Value, ApiError> {
    let prog = match waihu_dialog::load_str(yaml, "script") {
        Ok(p) => Arc::new(p),
        Err(e) => {
            return Ok(json!({"ok": false, "errors": diagnostics(&e)}));
        }
    };
    for (_, name, example) in &prog.required {
        vars.entry(name.clone()).or_insert_with(|| example.clone());
    }
    let nlu = console.engine.nlu_for(&sha256(yaml), &prog)?;
    let tz = waihu_bot::text::zone(prog.language);
    let classify: Classify =
        Box::new(move |text: &str, cx: &NluContext| nlu.classify_in(text, Utc::now(), tz, cx));
    let seed = rand::random::<u64>();
    let mut call = TextCall::new(prog, &vars, seed, classify).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "missing_variables",
            e.to_string(),
        )
    })?;
    let turn = call.answer(Utc::now());
    let mut out = turn_json(&turn, None);
    let id = format!("{:016x}", rand::random::<u64>());
    out["ok"] = json!(true);
    out["session"] = json!(id);
    out["ended"] = json!(call.is_ended());
    console.engine.insert(
        id,
        Chat {
            call,
            used: Instant::now(),
        },
    );
    Ok(out)
}

fn continue_chat(console: &Console, session: &str, line: &str) -> Result<Value, ApiError> {
    let mut chats = console.engine.chats.lock().unwrap();
    let chat = chats
        .get_mut(session)
        .filter(|c| c.used.elapsed() < CHAT_IDLE)
        .ok_or_else(|| {
            ApiError::not_found(
                "no_such_chat",
                "this chat ended or expired (30 minutes idle, or too many open chats); start a new one",
            )
        })?;
    chat.used = Instant::now();
    if chat.call.is_ended() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "chat_ended",
            "the call has ended; start a new chat",
        ));
    }
    let (turn, heard) = chat.call.line(Line::parse(line), Utc::now());
    let mut out = turn_json(&turn, heard.as_ref());
    out["ok"] = json!(true);
    out["session"] = json!(session);
    out["ended"] = json!(chat.call.is_ended());
    if chat.call.is_ended() {
        let (outcome, level) = chat.call.outcome();
        out["outcome"] = json!({"outcome": outcome, "level": level.map(|l| l.as_str()), "path": chat.call.path()});
    }
    Ok(out)
}

// ---- campaign forecast ----------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastBody {
    /// The campaign file (YAML).
    spec: String,
    /// When calling would start: RFC 3339, or a wall time in the campaign's zone
    /// (`2026-12-08T09:00`, what a browser's datetime field sends). Default: now.
    start: Option<String>,
    /// The date to forecast for, in the same forms.
    deadline: String,
    #[serde(default = "five")]
    runs: u32,
}

fn five() -> u32 {
    5
}

fn when(
    field: &str,
    text: &str,
    tz: waihu_campaign::chrono_tz::Tz,
) -> Result<chrono::DateTime<Utc>, ApiError> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
        .iter()
        .find_map(|f| chrono::NaiveDateTime::parse_from_str(text, f).ok())
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(23, 59, 59))
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_body",
                format!("{field}: {text:?} is not a time; use 2026-12-08T18:00 (the campaign's time zone) or RFC 3339"),
            )
        })?;
    naive
        .and_local_timezone(tz)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_body",
                format!("{field}: {text:?} does not exist in {tz} (a clock change)"),
            )
        })
}

/// Longest forecast horizon, and most runs.
const FORECAST_DAYS: i64 = 31;
const FORECAST_RUNS: u32 = 20;

async fn forecast(
    State(s): State<AppState>,
    _c: Caller,
    J(b): J<ForecastBody>,
) -> Result<Json<Value>, ApiError> {
    too_long("campaign file", b.spec.len())?;
    let campaign = match waihu_campaign::Campaign::from_yaml(&b.spec) {
        Ok(c) => c,
        Err(e) => {
            let errors: Vec<Value> = e
                .issues
                .iter()
                .map(|i| json!({"line": i.line, "column": i.column, "path": i.path, "message": i.message}))
                .collect();
            return Ok(Json(json!({"ok": false, "errors": errors})));
        }
    };
    let tz = campaign.timezone;
    let start = match &b.start {
        Some(t) => when("start", t, tz)?,
        None => Utc::now(),
    };
    let deadline = when("deadline", &b.deadline, tz)?;
    if deadline <= start || deadline - start > chrono::Duration::days(FORECAST_DAYS) {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("deadline: must be after start and at most {FORECAST_DAYS} days later"),
        ));
    }
    if b.runs == 0 || b.runs > FORECAST_RUNS {
        return Err(ApiError::bad_request(
            "bad_body",
            format!("runs: 1 to {FORECAST_RUNS}"),
        ));
    }
    let started = Instant::now();
    let inputs = waihu_dialer::forecast::forecast_inputs(&s.store, &campaign, start)
        .await
        .map_err(|e| ApiError::internal(format!("loading the customers: {e}")))?;
    let mut cfg = waihu_campaign::ForecastConfig::new(start, deadline);
    cfg.runs = b.runs;
    let (f, inputs) = tokio::task::spawn_blocking(move || {
        (waihu_campaign::forecast(|| inputs.planner(), &cfg), inputs)
    })
    .await
    .map_err(|e| ApiError::internal(format!("forecasting: {e}")))?;
    let skipped: Vec<&String> = inputs.skipped.iter().take(20).collect();
    Ok(Json(json!({
        "ok": true,
        "campaign": campaign.name,
        "timezone": tz.name(),
        "forecast": f,
        "skipped": inputs.skipped.len(),
        "skipped_first": skipped,
        "history_attempts": inputs.seed.len(),
        "seconds": started.elapsed().as_secs_f64(),
    })))
}
