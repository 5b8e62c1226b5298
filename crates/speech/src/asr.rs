//! Speech recognition behind one streaming shape: push 20 ms frames, get
//! partial and final results with timings and a confidence.
//!
//! Streaming engines (FunASR's WebSocket runtime) implement [`Asr`]
//! directly. Utterance engines (OpenAI-compatible HTTP servers, embedded
//! Whisper) implement [`UtteranceAsr`] and run behind [`Endpointed`], which
//! cuts the stream into utterances with the VAD and endpointer and sends
//! each one when the caller stops talking.
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use waihu_audio::endpoint::{EndpointConfig, SegmentEvent, Segmenter};
use waihu_audio::vad::{default_vad, VadError};

/// What a recognition session is told up front.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AsrOptions {
    /// `zh`, `en`, or `None` for automatic detection.
    pub lang: Option<String>,
    /// Phrase biasing: product and customer names from the script. Sent as
    /// FunASR hot words, and folded into the prompt for Whisper-style servers.
    pub hotwords: Vec<String>,
    /// Free-text context for Whisper-style engines (`prompt`).
    pub prompt: Option<String>,
    /// Sample rate of the pushed frames.
    pub rate: u32,
}

impl AsrOptions {
    /// The initial prompt for Whisper-style engines: the prompt, then the hot
    /// words (for Chinese joined by "，" with no spaces, as Chinese is
    /// written; none after a prompt that ends a clause).
    pub fn whisper_prompt(&self) -> Option<String> {
        let zh = self.lang.as_deref().is_some_and(crate::zh::is_chinese);
        let mut parts: Vec<String> = self
            .prompt
            .iter()
            .filter(|p| !p.trim().is_empty())
            .cloned()
            .collect();
        if !self.hotwords.is_empty() {
            parts.push(self.hotwords.join(if zh { "，" } else { ", " }));
        }
        if parts.is_empty() {
            return None;
        }
        if !zh {
            return Some(parts.join(" "));
        }
        // Chinese: no spaces; a "，" between parts unless the first ends a clause.
        let mut out = parts[0].trim_end().to_string();
        for p in &parts[1..] {
            if !out.ends_with(['。', '，', '！', '？', '；', '：', '、']) {
                out.push('，');
            }
            out.push_str(p.trim());
        }
        Some(out)
    }
}

#[cfg(test)]
mod prompt_tests {
    use super::*;

    #[test]
    fn prompts_are_written_as_the_language_is() {
        let o = |lang: &str, prompt: Option<&str>, hot: &[&str]| AsrOptions {
            lang: Some(lang.into()),
            prompt: prompt.map(String::from),
            hotwords: hot.iter().map(|s| s.to_string()).collect(),
            rate: 8000,
        };
        assert_eq!(
            o("zh", Some("以下是普通话的句子。"), &["星河商城", "张伟"]).whisper_prompt(),
            Some("以下是普通话的句子。星河商城，张伟".into())
        );
        assert_eq!(
            o("en", None, &["Star River", "Johnson"]).whisper_prompt(),
            Some("Star River, Johnson".into())
        );
        assert_eq!(o("en", Some(" "), &[]).whisper_prompt(), None);
        assert_eq!(
            o("zh", Some("订单确认"), &["王伟"]).whisper_prompt(),
            Some("订单确认，王伟".into())
        );
        assert_eq!(
            o("en", Some("Order check."), &["Wang"]).whisper_prompt(),
            Some("Order check. Wang".into())
        );
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordTiming {
    pub text: String,
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A recognition result. Times are media time of the session's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AsrResult {
    pub text: String,
    /// A final result will not be revised; partials are replaced by later results.
    pub is_final: bool,
    pub start_ms: u64,
    pub end_ms: u64,
    /// 0..1 when the engine reports one.
    pub confidence: Option<f32>,
    pub words: Vec<WordTiming>,
}

/// What an utterance engine returns; times relative to the audio it was given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    pub text: String,
    pub language: Option<String>,
    pub confidence: Option<f32>,
    pub words: Vec<WordTiming>,
}

#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error("无法连接语音识别服务 / cannot reach ASR server {url}: {message}")]
    Connect { url: String, message: String },
    #[error("语音识别服务返回错误 / ASR server {url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        body: String,
    },
    #[error("语音识别服务应答无效 / ASR server {url} sent an invalid reply: {message}")]
    Protocol { url: String, message: String },
    #[error("语音识别服务超时 / ASR server {url} gave no result within {secs} s")]
    Timeout { url: String, secs: u64 },
    #[error(transparent)]
    Vad(#[from] VadError),
    #[error("语音识别输入错误 / ASR input error: {0}")]
    Input(String),
}

/// A running recognition of one audio stream.
#[async_trait]
pub trait AsrSession: Send {
    /// Push one frame (20 ms at the session rate). Returns results that are
    /// available now, without waiting for more.
    async fn push(&mut self, frame: &[i16]) -> Result<Vec<AsrResult>, AsrError>;
    /// End of audio: waits for and returns the remaining results.
    async fn finish(&mut self) -> Result<Vec<AsrResult>, AsrError>;
}

#[async_trait]
pub trait Asr: Send + Sync {
    fn name(&self) -> &str;
    async fn open(&self, opts: &AsrOptions) -> Result<Box<dyn AsrSession>, AsrError>;
}

/// An engine that transcribes a whole utterance at once.
#[async_trait]
pub trait UtteranceAsr: Send + Sync {
    fn name(&self) -> &str;
    async fn transcribe(
        &self,
        samples: &[i16],
        rate: u32,
        opts: &AsrOptions,
    ) -> Result<Transcript, AsrError>;
}

/// An utterance engine made streaming by the VAD and endpointer.
pub struct Endpointed<U: ?Sized> {
    engine: Arc<U>,
    cfg: EndpointConfig,
    name: String,
}

impl<U: UtteranceAsr + ?Sized> Endpointed<U> {
    pub fn new(engine: Arc<U>, cfg: EndpointConfig) -> Self {
        let name = format!("{} (endpointed)", engine.name());
        Endpointed { engine, cfg, name }
    }
}

#[async_trait]
impl<U: UtteranceAsr + ?Sized + 'static> Asr for Endpointed<U> {
    fn name(&self) -> &str {
        &self.name
    }

    async fn open(&self, opts: &AsrOptions) -> Result<Box<dyn AsrSession>, AsrError> {
        let seg = Segmenter::new(default_vad(opts.rate)?, self.cfg);
        Ok(Box::new(EndpointedSession {
            engine: self.engine.clone(),
            seg,
            opts: opts.clone(),
        }))
    }
}

struct EndpointedSession<U: ?Sized> {
    engine: Arc<U>,
    seg: Segmenter,
    opts: AsrOptions,
}

/// Transcribe the utterances among `events`. A free function so the future
/// does not borrow the session's VAD (which is `Send` but not `Sync`).
async fn transcribe_events<U: UtteranceAsr + ?Sized>(
    engine: &U,
    opts: &AsrOptions,
    events: Vec<SegmentEvent>,
) -> Result<Vec<AsrResult>, AsrError> {
    {
        let mut out = Vec::new();
        for ev in events {
            let SegmentEvent::Utterance(u) = ev else {
                continue;
            };
            let t = engine.transcribe(&u.samples, u.rate, opts).await?;
            let text = t.text.trim().to_string();
            if text.is_empty() {
                continue;
            }
            let words = t
                .words
                .into_iter()
                .map(|w| WordTiming {
                    text: w.text,
                    start_ms: w.start_ms + u.audio_start_ms,
                    end_ms: w.end_ms + u.audio_start_ms,
                })
                .collect();
            out.push(AsrResult {
                text,
                is_final: true,
                start_ms: u.start_ms,
                end_ms: u.end_ms,
                confidence: t.confidence,
                words,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl<U: UtteranceAsr + ?Sized + 'static> AsrSession for EndpointedSession<U> {
    async fn push(&mut self, frame: &[i16]) -> Result<Vec<AsrResult>, AsrError> {
        let events = self.seg.push(frame)?;
        transcribe_events(&*self.engine, &self.opts, events).await
    }

    async fn finish(&mut self) -> Result<Vec<AsrResult>, AsrError> {
        let events = self.seg.finish();
        transcribe_events(&*self.engine, &self.opts, events).await
    }
}

/// Feed a whole signal through a session in 20 ms frames (files, tests, benches).
pub async fn recognize_all(
    asr: &dyn Asr,
    samples: &[i16],
    opts: &AsrOptions,
) -> Result<Vec<AsrResult>, AsrError> {
    let n = (opts.rate / 50) as usize;
    if n == 0 {
        return Err(AsrError::Input(format!("sample rate {} Hz", opts.rate)));
    }
    let mut session = asr.open(opts).await?;
    let mut out = Vec::new();
    for chunk in samples.chunks(n) {
        if chunk.len() == n {
            out.extend(session.push(chunk).await?);
        } else {
            let mut last = chunk.to_vec();
            last.resize(n, 0);
            out.extend(session.push(&last).await?);
        }
    }
    out.extend(session.finish().await?);
    Ok(out)
}
