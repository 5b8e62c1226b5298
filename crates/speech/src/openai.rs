//! OpenAI-compatible speech recognition: `POST {base}/audio/transcriptions`
//! (multipart), as served by OpenAI, faster-whisper servers
//! (speaches, faster-whisper-server), vLLM and FunASR's OpenAI-compatible
//! server. An utterance engine: run it behind [`crate::asr::Endpointed`].
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use crate::asr::{AsrError, AsrOptions, Transcript, UtteranceAsr, WordTiming};
use waihu_audio::wav::wav_bytes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResponseFormat {
    /// `{"text": ...}` only.
    Json,
    /// Text plus segments with `avg_logprob` (confidence) and timings.
    #[default]
    VerboseJson,
}

impl ResponseFormat {
    fn as_str(self) -> &'static str {
        match self {
            ResponseFormat::Json => "json",
            ResponseFormat::VerboseJson => "verbose_json",
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiAsr {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
    format: ResponseFormat,
    timeout: Duration,
}

impl OpenAiAsr {
    /// `base` is the API root, e.g. `http://127.0.0.1:8000/v1`.
    pub fn new(base: &str, model: &str) -> Result<Self, AsrError> {
        let parsed =
            url::Url::parse(base).map_err(|e| AsrError::Input(format!("ASR URL `{base}`: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(AsrError::Input(format!(
                "ASR URL `{base}`: scheme must be http or https"
            )));
        }
        let timeout = Duration::from_secs(30);
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| AsrError::Input(format!("HTTP client: {e}")))?;
        Ok(OpenAiAsr {
            client,
            url: format!("{}/audio/transcriptions", base.trim_end_matches('/')),
            model: model.to_string(),
            api_key: None,
            format: ResponseFormat::default(),
            timeout,
        })
    }

    pub fn with_api_key(mut self, key: Option<String>) -> Self {
        self.api_key = key.filter(|k| !k.is_empty());
        self
    }

    pub fn with_format(mut self, format: ResponseFormat) -> Self {
        self.format = format;
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

#[derive(Debug, Deserialize)]
struct Reply {
    text: String,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    segments: Vec<Segment>,
    #[serde(default)]
    words: Vec<Word>,
}

#[derive(Debug, Deserialize)]
struct Segment {
    #[serde(default)]
    start: f64,
    #[serde(default)]
    end: f64,
    #[serde(default)]
    avg_logprob: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct Word {
    word: String,
    start: f64,
    end: f64,
}

fn secs_to_ms(s: f64) -> u64 {
    if s.is_finite() && s > 0.0 {
        (s * 1000.0).round() as u64
    } else {
        0
    }
}

/// Duration-weighted mean of the segments' average log-probability, as a probability.
fn confidence(segments: &[Segment]) -> Option<f32> {
    let (mut num, mut den) = (0f64, 0f64);
    for s in segments {
        if let Some(lp) = s.avg_logprob.filter(|v| v.is_finite()) {
            let w = (s.end - s.start).max(0.01);
            num += lp * w;
            den += w;
        }
    }
    (den > 0.0).then(|| (num / den).exp().clamp(0.0, 1.0) as f32)
}

/// Parse a transcription reply (`json` or `verbose_json`).
pub fn parse_reply(body: &str) -> Result<Transcript, String> {
    let r: Reply = serde_json::from_str(body)
        .map_err(|e| format!("{e} (line {} column {})", e.line(), e.column()))?;
    Ok(Transcript {
        text: r.text.trim().to_string(),
        language: r.language,
        confidence: confidence(&r.segments),
        words: r
            .words
            .into_iter()
            .map(|w| WordTiming {
                text: w.word.trim().to_string(),
                start_ms: secs_to_ms(w.start),
                end_ms: secs_to_ms(w.end),
            })
            .collect(),
    })
}

#[async_trait]
impl UtteranceAsr for OpenAiAsr {
    fn name(&self) -> &str {
        "openai-compatible"
    }

    async fn transcribe(
        &self,
        samples: &[i16],
        rate: u32,
        opts: &AsrOptions,
    ) -> Result<Transcript, AsrError> {
        let wav = wav_bytes(rate, samples).map_err(|e| AsrError::Input(e.to_string()))?;
        let file = reqwest::multipart::Part::bytes(wav)
            .file_name("audio.wav")
            .mime_str("audio/wav")
            .map_err(|e| AsrError::Input(e.to_string()))?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.model.clone())
            .text("response_format", self.format.as_str())
            .text("temperature", "0");
        if let Some(lang) = opts
            .lang
            .as_deref()
            .filter(|l| !l.is_empty() && *l != "auto")
        {
            form = form.text("language", lang.to_string());
        }
        if let Some(prompt) = opts.whisper_prompt() {
            form = form.text("prompt", prompt);
        }
        let mut req = self.client.post(&self.url).multipart(form);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| {
            if e.is_timeout() {
                AsrError::Timeout {
                    url: self.url.clone(),
                    secs: self.timeout.as_secs(),
                }
            } else {
                AsrError::Connect {
                    url: self.url.clone(),
                    message: e.to_string(),
                }
            }
        })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| AsrError::Protocol {
            url: self.url.clone(),
            message: format!("reading the body: {e}"),
        })?;
        if !status.is_success() {
            return Err(AsrError::Status {
                url: self.url.clone(),
                status: status.as_u16(),
                body: body.chars().take(300).collect(),
            });
        }
        let mut t = parse_reply(&body).map_err(|message| AsrError::Protocol {
            url: self.url.clone(),
            message,
        })?;
        // Whisper servers name the language ("chinese") or echo the code asked for.
        let chinese = |l: &str| crate::zh::is_chinese(l) || l.eq_ignore_ascii_case("chinese");
        if t.language.as_deref().is_some_and(chinese) || opts.lang.as_deref().is_some_and(chinese) {
            t.text = crate::zh::to_simplified(&t.text);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_json_and_verbose_json() {
        let t = parse_reply(r#"{"text":" hello "}"#).unwrap();
        assert_eq!(t.text, "hello");
        assert_eq!(t.confidence, None);
        let t = parse_reply(
            r#"{"task":"transcribe","language":"english","duration":2.0,"text":"yes please",
                "segments":[{"id":0,"start":0.0,"end":1.0,"text":"yes","avg_logprob":-0.1,"no_speech_prob":0.01},
                            {"id":1,"start":1.0,"end":2.0,"text":"please","avg_logprob":-0.3}],
                "words":[{"word":"yes","start":0.1,"end":0.5},{"word":" please","start":1.1,"end":1.6}]}"#,
        )
        .unwrap();
        assert_eq!(t.language.as_deref(), Some("english"));
        let c = t.confidence.unwrap();
        assert!((c - (-0.2f32).exp()).abs() < 1e-4, "{c}");
        assert_eq!(
            t.words[1],
            WordTiming {
                text: "please".into(),
                start_ms: 1100,
                end_ms: 1600
            }
        );
    }

    #[test]
    fn bad_replies_are_errors_with_position() {
        let e = parse_reply("{\"txt\": 1}").unwrap_err();
        assert!(e.contains("text") && e.contains("line 1"), "{e}");
        assert!(parse_reply("<html>").is_err());
    }

    #[test]
    fn rejects_non_http_urls() {
        assert!(OpenAiAsr::new("ftp://x", "m").is_err());
        assert!(OpenAiAsr::new("not a url", "m").is_err());
        assert_eq!(
            OpenAiAsr::new("http://h:1/v1/", "m").unwrap().url(),
            "http://h:1/v1/audio/transcriptions"
        );
    }

    proptest! {
        #[test]
        fn reply_parser_never_panics(s in ".{0,200}") {
            let _ = parse_reply(&s);
        }
    }
}
