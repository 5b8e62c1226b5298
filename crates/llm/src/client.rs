//! The OpenAI-compatible chat-completions client (runtime): one POST to
//! `{endpoint}/chat/completions` with `stream: true`, the SSE body fed to the
//! sans-IO [`crate::sse`] parser, deltas handed to a callback that can stop
//! the stream. Three timeouts: connect, first token, whole answer.
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::sse::{chunk_delta, ChunkError, SseError, SseEvent, SseParser};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn system(s: impl Into<String>) -> Message {
        Message {
            role: "system".into(),
            content: s.into(),
        }
    }
    pub fn user(s: impl Into<String>) -> Message {
        Message {
            role: "user".into(),
            content: s.into(),
        }
    }
}

/// Where and how to call the model. `WAIHU_LLM_*` environment variables fill
/// it in the binary (see `docs/llm.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Base URL up to and including `/v1` (`http://127.0.0.1:8088/v1`).
    pub endpoint: String,
    pub model: String,
    /// Name of the environment variable holding the API key (none sent when unset).
    pub api_key_env: String,
    pub connect_timeout_ms: u64,
    /// From sending the request to the first content token.
    pub first_token_timeout_ms: u64,
    /// From sending the request to the last token.
    pub total_timeout_ms: u64,
    /// `max_tokens` of every request (the token budget of one answer).
    pub max_tokens: u32,
    pub temperature: f32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            endpoint: "http://127.0.0.1:8088/v1".into(),
            model: "qwen2.5-0.5b".into(),
            api_key_env: "WAIHU_LLM_API_KEY".into(),
            connect_timeout_ms: 2_000,
            first_token_timeout_ms: 5_000,
            total_timeout_ms: 20_000,
            max_tokens: 64,
            temperature: 0.0,
        }
    }
}

impl Config {
    /// Defaults overridden by `WAIHU_LLM_ENDPOINT`, `WAIHU_LLM_MODEL`,
    /// `WAIHU_LLM_API_KEY_ENV`, `WAIHU_LLM_MAX_TOKENS`, `WAIHU_LLM_FIRST_TOKEN_MS`,
    /// `WAIHU_LLM_TOTAL_MS`, `WAIHU_LLM_CONNECT_MS`.
    pub fn from_env() -> Config {
        let mut c = Config::default();
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if let Some(v) = var("WAIHU_LLM_ENDPOINT") {
            c.endpoint = v;
        }
        if let Some(v) = var("WAIHU_LLM_MODEL") {
            c.model = v;
        }
        if let Some(v) = var("WAIHU_LLM_API_KEY_ENV") {
            c.api_key_env = v;
        }
        let num = |k: &str| var(k).and_then(|v| v.parse::<u64>().ok());
        if let Some(v) = num("WAIHU_LLM_MAX_TOKENS") {
            c.max_tokens = v.min(u64::from(u32::MAX)) as u32;
        }
        if let Some(v) = num("WAIHU_LLM_FIRST_TOKEN_MS") {
            c.first_token_timeout_ms = v;
        }
        if let Some(v) = num("WAIHU_LLM_TOTAL_MS") {
            c.total_timeout_ms = v;
        }
        if let Some(v) = num("WAIHU_LLM_CONNECT_MS") {
            c.connect_timeout_ms = v;
        }
        c
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error("cannot reach the model at {url}: {source}")]
    Connect { url: String, source: reqwest::Error },
    #[error("the model at {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("no token from the model within {0} ms")]
    FirstTokenTimeout(u64),
    #[error("the model did not finish within {0} ms")]
    TotalTimeout(u64),
    #[error("reading the model's stream: {0}")]
    Read(reqwest::Error),
    #[error("malformed event stream: {0}")]
    Sse(#[from] SseError),
    #[error("malformed stream chunk: {0}")]
    Chunk(#[from] ChunkError),
    #[error("the stream ended without [DONE] or a finish reason")]
    Truncated,
}

/// Whether to keep reading after a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
}

/// How a streamed completion went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Completion {
    pub text: String,
    pub finish_reason: Option<String>,
    /// Content chunks received (≈ tokens for most servers).
    pub chunks: usize,
    pub first_token_ms: Option<f64>,
    pub total_ms: f64,
    /// The callback asked to stop before the model finished.
    pub stopped: bool,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    pub config: Config,
}

impl Client {
    pub fn new(config: Config) -> Result<Client, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(config.connect_timeout_ms))
            .build()?;
        Ok(Client { http, config })
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.endpoint.trim_end_matches('/')
        )
    }

    /// Streams one completion, calling `on_delta` with each piece of text.
    pub async fn stream(
        &self,
        messages: &[Message],
        max_tokens: Option<u32>,
        mut on_delta: impl FnMut(&str) -> Flow,
    ) -> Result<Completion, LlmError> {
        let c = &self.config;
        let start = Instant::now();
        let total = Duration::from_millis(c.total_timeout_ms);
        let first = Duration::from_millis(c.first_token_timeout_ms.min(c.total_timeout_ms));
        let body = serde_json::json!({
            "model": c.model,
            "messages": messages,
            "stream": true,
            "max_tokens": max_tokens.unwrap_or(c.max_tokens),
            "temperature": c.temperature,
        });
        let url = self.url();
        let mut req = self.http.post(&url).json(&body);
        if let Ok(key) = std::env::var(&c.api_key_env) {
            if !key.is_empty() {
                req = req.bearer_auth(key);
            }
        }
        let mut out = Completion::default();
        let deadline = |got_first: bool| {
            let limit = if got_first { total } else { first };
            limit.saturating_sub(start.elapsed())
        };
        let timeout_err = |got_first: bool| {
            if got_first {
                LlmError::TotalTimeout(c.total_timeout_ms)
            } else {
                LlmError::FirstTokenTimeout(c.first_token_timeout_ms)
            }
        };
        let mut resp = match tokio::time::timeout(deadline(false), req.send()).await {
            Err(_) => return Err(timeout_err(false)),
            Ok(Err(e)) => {
                return Err(LlmError::Connect {
                    url: url.clone(),
                    source: e,
                })
            }
            Ok(Ok(r)) => r,
        };
        if !resp.status().is_success() {
            let status = resp.status().as_u16();
            let body = tokio::time::timeout(Duration::from_millis(500), resp.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(LlmError::Status {
                url,
                status,
                body: body.chars().take(300).collect(),
            });
        }
        let mut parser = SseParser::new();
        let mut done = false;
        let mut handle = |events: Vec<SseEvent>, out: &mut Completion| -> Result<bool, LlmError> {
            for e in events {
                match e {
                    SseEvent::Done => return Ok(true),
                    SseEvent::Data(d) => {
                        let delta = chunk_delta(&d)?;
                        if let Some(f) = delta.finish_reason {
                            out.finish_reason = Some(f);
                        }
                        if !delta.content.is_empty() {
                            if out.first_token_ms.is_none() {
                                out.first_token_ms = Some(start.elapsed().as_secs_f64() * 1e3);
                            }
                            out.chunks += 1;
                            out.text.push_str(&delta.content);
                            if on_delta(&delta.content) == Flow::Stop {
                                out.stopped = true;
                                return Ok(true);
                            }
                        }
                    }
                }
            }
            Ok(false)
        };
        while !done {
            let got_first = out.first_token_ms.is_some();
            let chunk = match tokio::time::timeout(deadline(got_first), resp.chunk()).await {
                Err(_) => return Err(timeout_err(got_first)),
                Ok(Err(e)) => return Err(LlmError::Read(e)),
                Ok(Ok(c)) => c,
            };
            match chunk {
                Some(bytes) => done = handle(parser.push(&bytes)?, &mut out)?,
                None => {
                    done = handle(parser.finish()?, &mut out)?;
                    if !done && out.finish_reason.is_none() {
                        return Err(LlmError::Truncated);
                    }
                    break;
                }
            }
        }
        out.total_ms = start.elapsed().as_secs_f64() * 1e3;
        Ok(out)
    }

    /// The whole completion as one string.
    pub async fn complete(
        &self,
        messages: &[Message],
        max_tokens: Option<u32>,
    ) -> Result<Completion, LlmError> {
        self.stream(messages, max_tokens, |_| Flow::Continue).await
    }
}
