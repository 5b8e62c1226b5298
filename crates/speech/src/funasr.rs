//! FunASR runtime WebSocket protocol (the common on-prem Mandarin engine:
//! Paraformer / SenseVoice; `runtime/docs/websocket_protocol.md`):
//!
//! 1. client → text: `{"mode": "2pass"|"online"|"offline", "chunk_size": [5,10,5],
//!    "chunk_interval": 10, "wav_name": ..., "wav_format": "pcm", "audio_fs": 16000,
//!    "is_speaking": true, "hotwords": "{\"word\": 20}", "itn": true}`
//! 2. client → binary: 16-bit little-endian mono PCM at 16 kHz
//! 3. client → text: `{"is_speaking": false}` at the end
//! 4. server → text: `{"mode": "2pass-online"|"2pass-offline"|"online"|"offline",
//!    "wav_name", "text", "is_final", "timestamp": "[[100,200],...]"}`
//!
//! `online` / `2pass-online` texts are increments of the sentence being
//! spoken and become partial results (accumulated); `offline` /
//! `2pass-offline` texts are corrected sentences and become final results.
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::asr::{Asr, AsrError, AsrOptions, AsrResult, AsrSession};
use waihu_audio::resample::Resampler;

/// The rate FunASR's models take.
pub const FUNASR_RATE: u32 = 16000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FunAsrMode {
    /// Streaming partials plus corrected sentences (the usual choice for calls).
    #[default]
    TwoPass,
    Online,
    Offline,
}

impl FunAsrMode {
    pub fn as_str(self) -> &'static str {
        match self {
            FunAsrMode::TwoPass => "2pass",
            FunAsrMode::Online => "online",
            FunAsrMode::Offline => "offline",
        }
    }
}

impl std::str::FromStr for FunAsrMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "2pass" => Ok(FunAsrMode::TwoPass),
            "online" => Ok(FunAsrMode::Online),
            "offline" => Ok(FunAsrMode::Offline),
            other => Err(format!("FunASR mode `{other}` (2pass, online, offline)")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FunAsr {
    pub url: String,
    pub mode: FunAsrMode,
    /// Look-back, chunk and look-ahead in 60 ms units; `[5, 10, 5]` = 600 ms chunks.
    pub chunk_size: [u32; 3],
    /// Audio is sent in pieces of `chunk_size[1] * 60 / chunk_interval` ms.
    pub chunk_interval: u32,
    pub itn: bool,
    /// Weight given to each hot word.
    pub hotword_weight: u32,
    /// How long to wait for the connection and for the last result.
    pub timeout: Duration,
}

impl FunAsr {
    pub fn new(url: &str, mode: FunAsrMode) -> Result<Self, AsrError> {
        let parsed = url::Url::parse(url)
            .map_err(|e| AsrError::Input(format!("FunASR URL `{url}`: {e}")))?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(AsrError::Input(format!(
                "FunASR URL `{url}`: scheme must be ws or wss"
            )));
        }
        Ok(FunAsr {
            url: url.to_string(),
            mode,
            chunk_size: [5, 10, 5],
            chunk_interval: 10,
            itn: true,
            hotword_weight: 20,
            timeout: Duration::from_secs(10),
        })
    }

    /// The first message of a session.
    pub fn init_message(&self, opts: &AsrOptions, wav_name: &str) -> serde_json::Value {
        let hot: serde_json::Map<String, serde_json::Value> = opts
            .hotwords
            .iter()
            .map(|w| (w.clone(), serde_json::Value::from(self.hotword_weight)))
            .collect();
        let mut m = serde_json::json!({
            "mode": self.mode.as_str(),
            "chunk_size": self.chunk_size,
            "chunk_interval": self.chunk_interval,
            "wav_name": wav_name,
            "wav_format": "pcm",
            "audio_fs": FUNASR_RATE,
            "is_speaking": true,
            "itn": self.itn,
        });
        if !hot.is_empty() {
            // The protocol carries hot words as a JSON object serialised into a string.
            m["hotwords"] = serde_json::Value::String(serde_json::Value::Object(hot).to_string());
        }
        m
    }
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

#[async_trait]
impl Asr for FunAsr {
    fn name(&self) -> &str {
        "funasr-ws"
    }

    async fn open(&self, opts: &AsrOptions) -> Result<Box<dyn AsrSession>, AsrError> {
        if opts.rate == 0 {
            return Err(AsrError::Input("sample rate 0".into()));
        }
        let connect = tokio_tungstenite::connect_async(self.url.as_str());
        let (mut ws, _) = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| AsrError::Timeout {
                url: self.url.clone(),
                secs: self.timeout.as_secs(),
            })?
            .map_err(|e| AsrError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let init = self.init_message(opts, "waihu");
        ws.send(Message::text(init.to_string()))
            .await
            .map_err(|e| AsrError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let stride_ms = (self.chunk_size[1] * 60 / self.chunk_interval.max(1)).max(10);
        Ok(Box::new(FunAsrSession {
            ws,
            url: self.url.clone(),
            mode: self.mode,
            timeout: self.timeout,
            resampler: (opts.rate != FUNASR_RATE).then(|| Resampler::new(opts.rate, FUNASR_RATE)),
            pending: Vec::new(),
            stride: (FUNASR_RATE * stride_ms / 1000) as usize,
            sent_samples: 0,
            partial: String::new(),
            last_final_end: 0,
        }))
    }
}

struct FunAsrSession {
    ws: Ws,
    url: String,
    mode: FunAsrMode,
    timeout: Duration,
    resampler: Option<Resampler>,
    pending: Vec<i16>,
    stride: usize,
    sent_samples: u64,
    /// Online increments since the last final sentence.
    partial: String,
    last_final_end: u64,
}

#[derive(Debug, Deserialize)]
struct Reply {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    timestamp: Option<serde_json::Value>,
}

/// `timestamp` is a string holding `[[start_ms, end_ms], ...]` (some servers send the array itself).
fn parse_timestamp(v: &serde_json::Value) -> Option<(u64, u64)> {
    let arr: Vec<[f64; 2]> = match v {
        serde_json::Value::String(s) => serde_json::from_str(s).ok()?,
        other => serde_json::from_value(other.clone()).ok()?,
    };
    let first = arr.first()?;
    let last = arr.last()?;
    (first[0].is_finite() && last[1].is_finite())
        .then(|| (first[0].max(0.0) as u64, last[1].max(0.0) as u64))
}

fn to_bytes(s: &[i16]) -> Vec<u8> {
    s.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl FunAsrSession {
    fn sent_ms(&self) -> u64 {
        self.sent_samples * 1000 / FUNASR_RATE as u64
    }

    fn err(&self, message: impl Into<String>) -> AsrError {
        AsrError::Protocol {
            url: self.url.clone(),
            message: message.into(),
        }
    }

    async fn send_pending(&mut self, all: bool) -> Result<(), AsrError> {
        while self.pending.len() >= self.stride || (all && !self.pending.is_empty()) {
            let n = self.stride.min(self.pending.len());
            let bytes = to_bytes(&self.pending[..n]);
            self.pending.drain(..n);
            self.sent_samples += n as u64;
            self.ws
                .send(Message::binary(bytes))
                .await
                .map_err(|e| AsrError::Connect {
                    url: self.url.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(())
    }

    /// One server message to a result; `None` for messages without text.
    fn handle(&mut self, msg: Message) -> Result<Option<(AsrResult, bool)>, AsrError> {
        let text = match msg {
            Message::Text(t) => t.to_string(),
            Message::Binary(_) => return Err(self.err("unexpected binary message")),
            _ => return Ok(None),
        };
        let r: Reply = serde_json::from_str(&text).map_err(|e| {
            self.err(format!(
                "{e} in {:?}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        let sentence_final = r.mode.ends_with("offline");
        let ts = r.timestamp.as_ref().and_then(parse_timestamp);
        let result = if sentence_final {
            self.partial.clear();
            let (start, end) = ts.unwrap_or((self.last_final_end, self.sent_ms()));
            self.last_final_end = end;
            AsrResult {
                text: r.text.trim().to_string(),
                is_final: true,
                start_ms: start,
                end_ms: end,
                confidence: None,
                words: Vec::new(),
            }
        } else {
            self.partial.push_str(&r.text);
            let (start, end) = ts.unwrap_or((self.last_final_end, self.sent_ms()));
            AsrResult {
                text: self.partial.trim().to_string(),
                is_final: false,
                start_ms: start,
                end_ms: end,
                confidence: None,
                words: Vec::new(),
            }
        };
        Ok(Some((result, r.is_final)))
    }
}

#[async_trait]
impl AsrSession for FunAsrSession {
    async fn push(&mut self, frame: &[i16]) -> Result<Vec<AsrResult>, AsrError> {
        match &mut self.resampler {
            Some(r) => {
                let f: Vec<f32> = frame.iter().map(|&s| s as f32).collect();
                self.pending.extend(
                    r.process(&f)
                        .into_iter()
                        .map(|v| v.round().clamp(-32768.0, 32767.0) as i16),
                );
            }
            None => self.pending.extend_from_slice(frame),
        }
        self.send_pending(false).await?;
        // Take whatever the server has sent, without waiting.
        let mut out = Vec::new();
        while let Some(next) = self.ws.next().now_or_never() {
            match next {
                Some(Ok(msg)) => {
                    if let Some((r, _)) = self.handle(msg)? {
                        if !r.text.is_empty() {
                            out.push(r);
                        }
                    }
                }
                Some(Err(e)) => {
                    return Err(AsrError::Connect {
                        url: self.url.clone(),
                        message: e.to_string(),
                    })
                }
                None => return Err(self.err("server closed the connection")),
            }
        }
        Ok(out)
    }

    async fn finish(&mut self) -> Result<Vec<AsrResult>, AsrError> {
        if let Some(r) = &mut self.resampler {
            let tail = r.flush();
            self.pending.extend(
                tail.into_iter()
                    .map(|v| v.round().clamp(-32768.0, 32767.0) as i16),
            );
        }
        self.send_pending(true).await?;
        self.ws
            .send(Message::text(r#"{"is_speaking": false}"#))
            .await
            .map_err(|e| AsrError::Connect {
                url: self.url.clone(),
                message: e.to_string(),
            })?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut out = Vec::new();
        let mut got_final_sentence = false;
        loop {
            // After a corrected sentence, a short quiet spell means the server is done
            // (not every server version sets `is_final`).
            let wait_until = if got_final_sentence {
                (tokio::time::Instant::now() + Duration::from_millis(400)).min(deadline)
            } else {
                deadline
            };
            match tokio::time::timeout_at(wait_until, self.ws.next()).await {
                Err(_) if got_final_sentence => break,
                Err(_) => {
                    return Err(AsrError::Timeout {
                        url: self.url.clone(),
                        secs: self.timeout.as_secs(),
                    })
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(AsrError::Connect {
                        url: self.url.clone(),
                        message: e.to_string(),
                    })
                }
                Ok(Some(Ok(msg))) => {
                    let Some((r, is_final)) = self.handle(msg)? else {
                        continue;
                    };
                    got_final_sentence |= r.is_final || self.mode == FunAsrMode::Online;
                    if !r.text.is_empty() {
                        out.push(r);
                    }
                    if is_final {
                        break;
                    }
                }
            }
        }
        // Online mode has no corrected pass: its accumulated partial is the final text.
        if self.mode == FunAsrMode::Online && !self.partial.trim().is_empty() {
            out.push(AsrResult {
                text: std::mem::take(&mut self.partial).trim().to_string(),
                is_final: true,
                start_ms: self.last_final_end,
                end_ms: self.sent_ms(),
                confidence: None,
                words: Vec::new(),
            });
        }
        let _ = self.ws.close(None).await;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_message_follows_the_protocol() {
        let f = FunAsr::new("ws://127.0.0.1:10095", FunAsrMode::TwoPass).unwrap();
        let opts = AsrOptions {
            hotwords: vec!["星河商城".into(), "Zhang Wei".into()],
            rate: 8000,
            ..Default::default()
        };
        let m = f.init_message(&opts, "call-1");
        assert_eq!(m["mode"], "2pass");
        assert_eq!(m["chunk_size"], serde_json::json!([5, 10, 5]));
        assert_eq!(m["is_speaking"], true);
        assert_eq!(m["audio_fs"], 16000);
        let hot: serde_json::Value = serde_json::from_str(m["hotwords"].as_str().unwrap()).unwrap();
        assert_eq!(hot["星河商城"], 20);
        assert_eq!(hot["Zhang Wei"], 20);
        assert!(f
            .init_message(&AsrOptions::default(), "x")
            .get("hotwords")
            .is_none());
    }

    #[test]
    fn timestamps_parse_from_string_or_array() {
        assert_eq!(
            parse_timestamp(&serde_json::json!("[[100,200],[200,500]]")),
            Some((100, 500))
        );
        assert_eq!(
            parse_timestamp(&serde_json::json!([[30, 40]])),
            Some((30, 40))
        );
        assert_eq!(parse_timestamp(&serde_json::json!("garbage")), None);
        assert_eq!(parse_timestamp(&serde_json::json!("[]")), None);
    }

    #[test]
    fn urls_must_be_websocket() {
        assert!(FunAsr::new("http://x", FunAsrMode::Offline).is_err());
        assert!("3pass".parse::<FunAsrMode>().is_err());
    }
}
