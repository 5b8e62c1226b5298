//! A recogniser served over the OpenAI-compatible transcription API
//! (`POST /v1/audio/transcriptions`, multipart, as [`crate::openai`] speaks
//! it): one process holding the Whisper model answers the ASR of many dialer
//! nodes, so speech capacity grows apart from dialing capacity, and a campaign
//! points at it with `asr: {engine: openai, url: http://host:port/v1}`.
//!
//! Fields read: `file` (a WAV at any rate; required), `language` (`zh`, `en`,
//! or a name such as `chinese`), `prompt`, `response_format` (`json`,
//! `verbose_json`, `text`); `model` and `temperature` are accepted and ignored
//! (the server runs one model). Errors answer OpenAI's shape,
//! `{"error": {"message", "type", "param"}}`. At most `slots` requests are
//! decoded at once; the rest wait their turn.
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, Multipart, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::asr::{AsrOptions, UtteranceAsr};

/// The largest upload accepted (OpenAI's own limit).
pub const MAX_UPLOAD: usize = 25 << 20;

#[derive(Clone)]
struct Served {
    asr: Arc<dyn UtteranceAsr>,
    slots: Arc<Semaphore>,
}

/// The API's routes: `POST /v1/audio/transcriptions` and `GET /v1/models`.
pub fn router(asr: Arc<dyn UtteranceAsr>, slots: usize) -> Router {
    Router::new()
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .with_state(Served {
            asr,
            slots: Arc::new(Semaphore::new(slots.max(1))),
        })
}

fn invalid(param: &str, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": "invalid_request_error", "param": param}});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

async fn models(State(s): State<Served>) -> Json<serde_json::Value> {
    Json(
        json!({"object": "list", "data": [{"id": s.asr.name(), "object": "model", "owned_by": "waihu"}]}),
    )
}

/// `zh`, `en`, or the language names Whisper clients send.
fn language(v: &str) -> Option<&'static str> {
    match v.trim().to_ascii_lowercase().as_str() {
        "zh" | "cmn" | "chinese" | "mandarin" | "zh-cn" => Some("zh"),
        "en" | "english" | "en-us" | "en-gb" => Some("en"),
        _ => None,
    }
}

async fn transcriptions(State(s): State<Served>, mut form: Multipart) -> Response {
    let (mut wav, mut lang, mut prompt, mut format) = (None, None, None, "json".to_string());
    loop {
        let field = match form.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => return invalid("file", format!("reading the form: {e}")),
        };
        let name = field.name().unwrap_or("").to_string();
        let bytes = match field.bytes().await {
            Ok(b) => b,
            Err(e) => return invalid(&name, format!("reading `{name}`: {e}")),
        };
        let text = || String::from_utf8_lossy(&bytes).trim().to_string();
        match name.as_str() {
            "file" => wav = Some(bytes.clone()),
            "language" => {
                let v = text();
                match language(&v) {
                    Some(l) => lang = Some(l.to_string()),
                    None => {
                        return invalid("language", format!("unsupported language `{v}`: zh or en"))
                    }
                }
            }
            "prompt" => prompt = Some(text()).filter(|p| !p.is_empty()),
            "response_format" => format = text(),
            // One model per server; sampling is the engine's own.
            _ => {}
        }
    }
    if !matches!(format.as_str(), "json" | "verbose_json" | "text") {
        return invalid(
            "response_format",
            format!("unsupported response_format `{format}`: json, verbose_json or text"),
        );
    }
    let Some(wav) = wav else {
        return invalid("file", "no `file` part: send the audio as a WAV file");
    };
    let pcm = match crate::wav::parse_wav(&wav) {
        Ok(p) => p,
        Err(e) => return invalid("file", format!("not a WAV file this server reads: {e}")),
    };
    let duration_s = pcm.samples.len() as f64 / f64::from(pcm.rate.max(1));
    let opts = AsrOptions {
        lang: lang.clone(),
        hotwords: Vec::new(),
        prompt,
        rate: pcm.rate,
    };
    let queued = Instant::now();
    let Ok(_permit) = s.slots.clone().acquire_owned().await else {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response();
    };
    let wait_ms = queued.elapsed().as_millis();
    let started = Instant::now();
    let t = match s.asr.transcribe(&pcm.samples, pcm.rate, &opts).await {
        Ok(t) => t,
        Err(e) => {
            let body =
                json!({"error": {"message": e.to_string(), "type": "server_error", "param": null}});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(body)).into_response();
        }
    };
    tracing::debug!(
        wait_ms,
        decode_ms = started.elapsed().as_millis(),
        audio_s = duration_s,
        "transcribed"
    );
    match format.as_str() {
        "text" => t.text.into_response(),
        "json" => Json(json!({"text": t.text})).into_response(),
        _ => {
            // One segment over the whole file; its avg_logprob carries the confidence.
            let logprob = t.confidence.map(|c| f64::from(c.max(1e-6)).ln());
            let words: Vec<_> = t
                .words
                .iter()
                .map(|w| json!({"word": w.text, "start": w.start_ms as f64 / 1000.0, "end": w.end_ms as f64 / 1000.0}))
                .collect();
            Json(json!({
                "task": "transcribe",
                "language": t.language.or(lang).unwrap_or_default(),
                "duration": duration_s,
                "text": t.text,
                "segments": [{"id": 0, "start": 0.0, "end": duration_s, "text": t.text, "avg_logprob": logprob}],
                "words": words,
            }))
            .into_response()
        }
    }
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    asr: Arc<dyn UtteranceAsr>,
    slots: usize,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(asr, slots))
        .with_graceful_shutdown(shutdown)
        .await
}
