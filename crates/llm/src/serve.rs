//! A local OpenAI-compatible server for a Qwen2 GGUF model, on candle (CPU):
//! `POST /v1/chat/completions` (streaming and not), `GET /v1/models`. The
//! tokenizer is built from the GGUF's own `tokenizer.ggml.*` metadata, so the
//! one file is all it needs. One generation at a time (a 0.5B model on two
//! cores has no throughput to share); greedy decoding, so answers repeat.
//! Meant for tests, benchmarks and on-prem trials behind loopback.
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_qwen2::ModelWeights;
use serde::Deserialize;
use tokenizers::Tokenizer;

use crate::client::Message;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("reading {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a usable Qwen2 GGUF model: {msg}")]
    Model { path: PathBuf, msg: String },
    #[error("generation failed: {0}")]
    Generate(String),
}

/// Where `scripts/deps/llm.sh` installs the model.
pub fn default_model_path() -> PathBuf {
    let data = std::env::var_os("WAIHU_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("waihu")))
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/waihu")))
        .unwrap_or_else(|| PathBuf::from("."));
    let models = std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| data.join("models"));
    models.join("qwen2.5-0.5b").join("model.gguf")
}

/// Counts of one generation.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GenStats {
    pub prompt_tokens: usize,
    pub tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub finish_reason: String,
}

pub struct LocalModel {
    model: ModelWeights,
    tok: Tokenizer,
    eos: Vec<u32>,
    device: Device,
    pub name: String,
}

/// A candle error without the backtrace it carries when `RUST_BACKTRACE` is set.
fn first_line(e: &candle_core::Error) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// Qwen's ChatML template.
pub fn chat_template(messages: &[Message]) -> String {
    let mut s = String::new();
    if messages.first().is_none_or(|m| m.role != "system") {
        s.push_str("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n");
    }
    for m in messages {
        s.push_str(&format!(
            "<|im_start|>{}\n{}<|im_end|>\n",
            m.role, m.content
        ));
    }
    s.push_str("<|im_start|>assistant\n");
    s
}

impl LocalModel {
    pub fn load(path: &Path) -> Result<LocalModel, ServeError> {
        let bad = |msg: String| ServeError::Model {
            path: path.to_path_buf(),
            msg,
        };
        let mut f = std::fs::File::open(path).map_err(|source| ServeError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        let ct = gguf_file::Content::read(&mut f).map_err(|e| bad(first_line(&e)))?;
        let tok = Tokenizer::from_gguf(&ct).map_err(|e| bad(format!("tokenizer: {e}")))?;
        let device = Device::Cpu;
        let model =
            ModelWeights::from_gguf(ct, &mut f, &device).map_err(|e| bad(first_line(&e)))?;
        let eos: Vec<u32> = ["<|im_end|>", "<|endoftext|>"]
            .iter()
            .filter_map(|t| tok.token_to_id(t))
            .collect();
        if eos.is_empty() {
            return Err(bad("no <|im_end|> token".into()));
        }
        Ok(LocalModel {
            model,
            tok,
            eos,
            device,
            name: "qwen2.5-0.5b".into(),
        })
    }

    /// Greedy generation; `on_text` gets each new piece of text and returns
    /// false to stop.
    pub fn generate(
        &mut self,
        prompt: &str,
        max_tokens: usize,
        mut on_text: impl FnMut(&str) -> bool,
    ) -> Result<GenStats, ServeError> {
        let g = |e: candle_core::Error| ServeError::Generate(e.to_string());
        let enc = self
            .tok
            .encode(prompt, false)
            .map_err(|e| ServeError::Generate(e.to_string()))?;
        let ids = enc.get_ids().to_vec();
        let mut st = GenStats {
            prompt_tokens: ids.len(),
            finish_reason: "length".into(),
            ..GenStats::default()
        };
        self.model.clear_kv_cache();
        let t0 = Instant::now();
        let input = Tensor::new(ids.as_slice(), &self.device)
            .and_then(|t| t.unsqueeze(0))
            .map_err(g)?;
        let mut logits = self.model.forward(&input, 0).map_err(g)?;
        st.prefill_ms = t0.elapsed().as_secs_f64() * 1e3;
        let t1 = Instant::now();
        let mut out_ids: Vec<u32> = Vec::new();
        let mut sent = 0usize;
        for pos in ids.len()..ids.len() + max_tokens {
            let v: Vec<f32> = logits
                .squeeze(0)
                .and_then(|l| l.to_dtype(candle_core::DType::F32))
                .and_then(|l| l.to_vec1())
                .map_err(g)?;
            let next = v
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(i, _)| i as u32)
                .unwrap_or(0);
            if self.eos.contains(&next) {
                st.finish_reason = "stop".into();
                break;
            }
            out_ids.push(next);
            st.tokens += 1;
            let text = self
                .tok
                .decode(&out_ids, true)
                .map_err(|e| ServeError::Generate(e.to_string()))?;
            // Hold back a trailing partial UTF-8 character.
            if !text.ends_with('\u{FFFD}') && text.len() > sent && text.is_char_boundary(sent) {
                let piece = &text[sent..];
                sent = text.len();
                if !on_text(piece) {
                    st.finish_reason = "stop".into();
                    break;
                }
            }
            let input = Tensor::new(&[next], &self.device)
                .and_then(|t| t.unsqueeze(0))
                .map_err(g)?;
            logits = self.model.forward(&input, pos).map_err(g)?;
        }
        st.decode_ms = t1.elapsed().as_secs_f64() * 1e3;
        Ok(st)
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<Message>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    model: Option<String>,
}

struct App {
    model: Mutex<LocalModel>,
    name: String,
    /// Hard cap on `max_tokens` per request.
    max_tokens: usize,
}

fn chunk(model: &str, content: Option<&str>, finish: Option<&str>) -> String {
    let delta = match content {
        Some(c) => serde_json::json!({"content": c}),
        None => serde_json::json!({}),
    };
    let v = serde_json::json!({
        "object": "chat.completion.chunk",
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    });
    format!("data: {v}\n\n")
}

async fn completions(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let req: ChatRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            let v = serde_json::json!({"error": {"message": format!("bad request: {e}")}});
            return (StatusCode::BAD_REQUEST, Json(v)).into_response();
        }
    };
    let prompt = chat_template(&req.messages);
    let max = req.max_tokens.unwrap_or(app.max_tokens).min(app.max_tokens);
    let name = req.model.unwrap_or_else(|| app.name.clone());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let app2 = app.clone();
    let name2 = name.clone();
    let job = tokio::task::spawn_blocking(move || {
        let mut m = match app2.model.lock() {
            Ok(m) => m,
            Err(p) => p.into_inner(),
        };
        let st = m.generate(&prompt, max, |piece| {
            tx.send(chunk(&name2, Some(piece), None)).is_ok()
        });
        match st {
            Ok(st) => {
                tracing::debug!(?st, "generated");
                let _ = tx.send(chunk(&name2, None, Some(&st.finish_reason)));
                let _ = tx.send("data: [DONE]\n\n".into());
            }
            Err(e) => {
                let v = serde_json::json!({"error": {"message": e.to_string()}});
                let _ = tx.send(format!("data: {v}\n\n"));
            }
        }
    });
    if req.stream {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|s| (Ok::<_, Infallible>(Bytes::from(s)), rx))
        });
        return Response::builder()
            .header(header::CONTENT_TYPE, "text/event-stream")
            .header(header::CACHE_CONTROL, "no-cache")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    }
    let _ = job.await;
    let mut rx = rx;
    let mut text = String::new();
    let mut finish = "stop".to_string();
    while let Ok(ev) = rx.try_recv() {
        for line in ev.lines() {
            if let Some(d) = line.strip_prefix("data: ") {
                match crate::sse::chunk_delta(d) {
                    Ok(delta) => {
                        text.push_str(&delta.content);
                        if let Some(f) = delta.finish_reason {
                            finish = f;
                        }
                    }
                    // The generation failed: its error object, as a server error.
                    Err(crate::sse::ChunkError::Server(msg)) => {
                        let v = serde_json::json!({"error": {"message": msg}});
                        return (StatusCode::INTERNAL_SERVER_ERROR, Json(v)).into_response();
                    }
                    Err(_) => {}
                }
            }
        }
    }
    let v = serde_json::json!({
        "object": "chat.completion",
        "model": name,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
    });
    Json(v).into_response()
}

/// Serves `model` on `listen` until the process ends. `ready` gets the bound
/// address (port 0 picks a free one).
pub async fn serve(
    model: LocalModel,
    listen: SocketAddr,
    max_tokens: usize,
    ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let name = model.name.clone();
    let app = Arc::new(App {
        model: Mutex::new(model),
        name: name.clone(),
        max_tokens,
    });
    let router = Router::new()
        .route("/v1/chat/completions", post(completions))
        .route(
            "/v1/models",
            get(move || async move { Json(serde_json::json!({"object": "list", "data": [{"id": name, "object": "model"}]})) }),
        )
        .with_state(app);
    let l = tokio::net::TcpListener::bind(listen).await?;
    ready(l.local_addr()?);
    axum::serve(l, router).await
}
