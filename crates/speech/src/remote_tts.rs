//! What the remote TTS adapters ([`crate::cosyvoice`], [`crate::azure`])
//! share: the sans-IO parts (reassembling samples from byte chunks split
//! anywhere, naming the mood of a [`Style`] for servers that take a style
//! name or an instruction) and one small piece of I/O: an HTTP response body
//! streamed into [`Pcm`] pieces as bytes arrive, with timeouts and every
//! server misbehaviour mapped to a [`RemoteError`].
//!
//! The [`crate::TtsEngine`] trait is synchronous (the synthesiser runs on a
//! blocking thread), so requests run on one process-wide Tokio runtime of a
//! single worker thread and hand their bytes over a channel: the adapters
//! work the same from a plain thread, `spawn_blocking` or a test.
use std::sync::{mpsc, OnceLock};
use std::time::{Duration, Instant};

use waihu_audio::g711::Law;
use waihu_audio::style::{Style, StyleBook};
use waihu_audio::wav::Pcm;

use crate::tts::TtsError;

/// How the server encodes samples in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleFormat {
    /// 16-bit little-endian signed PCM.
    S16Le,
    /// 8-bit G.711 μ-law.
    Ulaw,
}

impl SampleFormat {
    pub fn bytes_per_sample(self) -> usize {
        match self {
            SampleFormat::S16Le => 2,
            SampleFormat::Ulaw => 1,
        }
    }
}

/// Turns body chunks into samples, whatever byte boundaries the network put
/// between them: a 16-bit sample split across two chunks is carried over.
#[derive(Debug, Clone)]
pub struct PcmAssembler {
    format: SampleFormat,
    carry: Option<u8>,
    bytes: u64,
}

impl PcmAssembler {
    pub fn new(format: SampleFormat) -> Self {
        PcmAssembler {
            format,
            carry: None,
            bytes: 0,
        }
    }

    /// Appends the samples completed by `chunk` to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<i16>) {
        self.bytes += chunk.len() as u64;
        match self.format {
            SampleFormat::Ulaw => Law::Ulaw.decode(chunk, out),
            SampleFormat::S16Le => {
                let mut rest = chunk;
                if let Some(lo) = self.carry.take() {
                    match rest.split_first() {
                        Some((&hi, tail)) => {
                            out.push(i16::from_le_bytes([lo, hi]));
                            rest = tail;
                        }
                        None => {
                            self.carry = Some(lo);
                            return;
                        }
                    }
                }
                let mut pairs = rest.chunks_exact(2);
                out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
                self.carry = pairs.remainder().first().copied();
            }
        }
    }

    /// Body bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the body ended between samples (false: a byte is left over).
    pub fn ends_on_sample(&self) -> bool {
        self.carry.is_none()
    }
}

/// The seed's emotion styles by name, for servers that take a style name
/// (Azure's `mstts:express-as`) or a spoken instruction (CosyVoice instruct).
/// A [`Style`] carries only numbers, so its mood is the nearest of the
/// default presets; the numbers themselves still go to the server where it
/// has controls for them (SSML prosody).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mood {
    Neutral,
    Happy,
    Urgent,
    Apologetic,
    Calm,
}

impl Mood {
    pub const ALL: [Mood; 5] = [
        Mood::Neutral,
        Mood::Happy,
        Mood::Urgent,
        Mood::Apologetic,
        Mood::Calm,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mood::Neutral => "neutral",
            Mood::Happy => "happy",
            Mood::Urgent => "urgent",
            Mood::Apologetic => "apologetic",
            Mood::Calm => "calm",
        }
    }

    /// The default preset nearest to `style` in (pitch, speed, range).
    pub fn of(style: &Style) -> Mood {
        let book = StyleBook::default();
        let dist = |m: Mood| {
            let p = book.get(m.name()).unwrap_or(Style::NEUTRAL);
            (p.pitch - style.pitch).powi(2)
                + (p.speed - style.speed).powi(2)
                + (p.range - style.range).powi(2)
        };
        Mood::ALL
            .into_iter()
            .min_by(|a, b| dist(*a).total_cmp(&dist(*b)))
            .unwrap_or(Mood::Neutral)
    }
}

/// A remote TTS server failed; `kind` says how.
#[derive(Debug, thiserror::Error)]
#[error("{engine} 语音合成 / TTS at {url}: {kind}")]
pub struct RemoteError {
    pub engine: &'static str,
    pub url: String,
    pub kind: RemoteErrorKind,
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteErrorKind {
    #[error("配置错误 / bad configuration: {0}")]
    Config(String),
    #[error("无法连接 / cannot connect: {0} (is the server running, is the endpoint right?)")]
    Connect(String),
    #[error("HTTP {status}{hint}: {body}")]
    Status {
        status: u16,
        body: String,
        hint: &'static str,
    },
    #[error("超时 / timed out after {ms} ms waiting for {stage}")]
    Timeout { stage: &'static str, ms: u64 },
    #[error("音频被截断 / audio truncated: {0}")]
    Truncated(String),
    #[error("响应类型错误 / Content-Type {got:?} is not raw audio: {body}")]
    ContentType { got: String, body: String },
    #[error("服务器未返回音频 / the server answered 200 with an empty body")]
    NoAudio,
}

fn status_hint(status: u16) -> &'static str {
    match status {
        401 | 403 => " (密钥被拒绝 / key rejected: check the key)",
        429 => " (请求过多 / rate limited: fewer concurrent calls or a higher quota)",
        422 => " (表单字段不符 / form fields rejected: does the mode match the server's model?)",
        400 => " (请求无效 / bad request: text, voice name or SSML)",
        415 => " (不支持的请求类型 / unsupported request Content-Type)",
        500..=599 => " (服务器错误 / server error)",
        _ => "",
    }
}

/// How long a request may wait. Timeouts are errors, never silent truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteTimeouts {
    /// TCP (and TLS) connection set-up.
    pub connect: Duration,
    /// From sending the request to the first audio bytes (the server's
    /// time to first audio plus the network).
    pub first_audio: Duration,
    /// Longest gap between two body chunks once audio flows.
    pub idle: Duration,
}

impl Default for RemoteTimeouts {
    fn default() -> Self {
        RemoteTimeouts {
            connect: Duration::from_secs(5),
            first_audio: Duration::from_secs(15),
            idle: Duration::from_secs(10),
        }
    }
}

/// Parses and checks an endpoint URL (http or https, no credentials in it).
/// A configuration mistake of remote engine `engine` (endpoint `url`).
pub(crate) fn config_error(engine: &'static str, url: &str, m: String) -> TtsError {
    TtsError::Remote(RemoteError {
        engine,
        url: url.to_string(),
        kind: RemoteErrorKind::Config(m),
    })
}

pub(crate) fn parse_endpoint(engine: &'static str, url: &str) -> Result<url::Url, RemoteError> {
    let bad = |m: String| RemoteError {
        engine,
        url: url.to_string(),
        kind: RemoteErrorKind::Config(m),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("scheme must be http or https".to_string()));
    }
    if parsed.scheme() == "https" && !cfg!(feature = "tls") {
        return Err(bad(
            "this build has no HTTPS: build with `--features tls` (cargo build --release -p waihu --features tls)"
                .to_string(),
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL: use the key's environment variable".to_string(),
        ));
    }
    Ok(parsed)
}

pub(crate) fn client(timeouts: &RemoteTimeouts) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .build()
        .map_err(|e| format!("HTTP client: {e}"))
}

fn runtime() -> Result<&'static tokio::runtime::Runtime, String> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("waihu-tts-http")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))
    })
    .as_ref()
    .map_err(Clone::clone)
}

enum Msg {
    Bytes(bytes::Bytes),
    Done,
    Err(RemoteErrorKind),
}

/// The first bytes of an error body, as text, for the error message.
async fn snippet(resp: reqwest::Response, wait: Duration) -> String {
    let body = tokio::time::timeout(wait, resp.bytes())
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body[..body.len().min(600)]).into_owned();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        "(empty body)".to_string()
    } else {
        text
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A request whose response body is raw audio.
pub(crate) struct AudioRequest {
    pub engine: &'static str,
    pub url: String,
    pub request: reqwest::RequestBuilder,
    pub format: SampleFormat,
    pub rate: u32,
    pub timeouts: RemoteTimeouts,
    /// Whether a response Content-Type (None: absent) is audio.
    pub accept: fn(Option<&str>) -> bool,
}

/// Sends the request and returns the body as [`Pcm`] pieces, each handed
/// out as soon as its bytes arrive. Dropping the stream abandons the request.
pub(crate) fn stream_audio(req: AudioRequest) -> Result<HttpAudio, TtsError> {
    let rt = runtime().map_err(|m| RemoteError {
        engine: req.engine,
        url: req.url.clone(),
        kind: RemoteErrorKind::Config(m),
    })?;
    let (tx, rx) = mpsc::channel();
    let t = req.timeouts;
    let accept = req.accept;
    let request = req.request;
    rt.spawn(async move {
        let started = Instant::now();
        let ms = |d: Duration| d.as_millis() as u64;
        let mut resp = match tokio::time::timeout(t.first_audio, request.send()).await {
            Err(_) => {
                let _ = tx.send(Msg::Err(RemoteErrorKind::Timeout {
                    stage: "the response",
                    ms: ms(t.first_audio),
                }));
                return;
            }
            Ok(Err(e)) => {
                let kind = if e.is_connect() {
                    RemoteErrorKind::Connect(error_chain(&e))
                } else if e.is_timeout() {
                    RemoteErrorKind::Timeout {
                        stage: "the connection",
                        ms: ms(t.connect),
                    }
                } else {
                    RemoteErrorKind::Truncated(format!("request failed: {}", error_chain(&e)))
                };
                let _ = tx.send(Msg::Err(kind));
                return;
            }
            Ok(Ok(r)) => r,
        };
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            let body = snippet(resp, t.idle).await;
            let _ = tx.send(Msg::Err(RemoteErrorKind::Status {
                status,
                body,
                hint: status_hint(status),
            }));
            return;
        }
        let ct = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        if !accept(ct.as_deref()) {
            let body = snippet(resp, t.idle).await;
            let _ = tx.send(Msg::Err(RemoteErrorKind::ContentType {
                got: ct.unwrap_or_default(),
                body,
            }));
            return;
        }
        let mut first = true;
        loop {
            let (limit, stage) = if first {
                (
                    t.first_audio.saturating_sub(started.elapsed()),
                    "the first audio bytes",
                )
            } else {
                (t.idle, "more audio (the stream stalled)")
            };
            let msg = match tokio::time::timeout(limit, resp.chunk()).await {
                Err(_) => Msg::Err(RemoteErrorKind::Timeout {
                    stage,
                    ms: ms(if first { t.first_audio } else { t.idle }),
                }),
                Ok(Err(e)) => Msg::Err(RemoteErrorKind::Truncated(format!(
                    "the connection broke mid-body: {}",
                    error_chain(&e)
                ))),
                Ok(Ok(None)) => Msg::Done,
                Ok(Ok(Some(b))) if b.is_empty() => continue,
                Ok(Ok(Some(b))) => {
                    first = false;
                    Msg::Bytes(b)
                }
            };
            let end = !matches!(msg, Msg::Bytes(_));
            // A closed channel means the caller stopped listening (barge-in):
            // returning drops the response and with it the connection.
            if tx.send(msg).is_err() || end {
                return;
            }
        }
    });
    Ok(HttpAudio {
        rx,
        asm: PcmAssembler::new(req.format),
        rate: req.rate,
        engine: req.engine,
        url: req.url,
        done: false,
        // The task enforces the real timeouts; this only guards against a
        // task that vanished without a word.
        wait: t.connect + t.first_audio + t.idle,
    })
}

/// A response body as [`Pcm`] pieces. See [`stream_audio`].
pub struct HttpAudio {
    rx: mpsc::Receiver<Msg>,
    asm: PcmAssembler,
    rate: u32,
    engine: &'static str,
    url: String,
    done: bool,
    wait: Duration,
}

impl HttpAudio {
    fn fail(&mut self, kind: RemoteErrorKind) -> Option<Result<Pcm, TtsError>> {
        self.done = true;
        Some(Err(TtsError::Remote(RemoteError {
            engine: self.engine,
            url: self.url.clone(),
            kind,
        })))
    }
}

impl Iterator for HttpAudio {
    type Item = Result<Pcm, TtsError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.rx.recv_timeout(self.wait) {
                Ok(Msg::Bytes(b)) => {
                    let mut samples = Vec::with_capacity(b.len() / 2 + 1);
                    self.asm.push(&b, &mut samples);
                    if !samples.is_empty() {
                        return Some(Ok(Pcm {
                            rate: self.rate,
                            samples,
                        }));
                    }
                }
                Ok(Msg::Done) => {
                    if !self.asm.ends_on_sample() {
                        let n = self.asm.bytes();
                        return self.fail(RemoteErrorKind::Truncated(format!(
                            "the body has {n} bytes, not a whole number of 16-bit samples"
                        )));
                    }
                    if self.asm.bytes() == 0 {
                        return self.fail(RemoteErrorKind::NoAudio);
                    }
                    self.done = true;
                }
                Ok(Msg::Err(kind)) => return self.fail(kind),
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let ms = self.wait.as_millis() as u64;
                    return self.fail(RemoteErrorKind::Timeout {
                        stage: "the transfer",
                        ms,
                    });
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return self.fail(RemoteErrorKind::Truncated(
                        "the transfer ended without finishing".to_string(),
                    ))
                }
            }
        }
        None
    }
}

/// Whether a response's Content-Type can carry raw audio: none at all
/// (CosyVoice's `StreamingResponse` sends none), `audio/*`, or a generic
/// `application/octet-stream` a proxy may add. Anything textual is an error
/// page, not audio.
pub(crate) fn is_audio(ct: Option<&str>) -> bool {
    match ct {
        None => true,
        Some(ct) => {
            let ct = ct.trim().to_ascii_lowercase();
            ct.starts_with("audio/") || ct.starts_with("application/octet-stream")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_map_to_their_mood() {
        let book = StyleBook::default();
        for m in Mood::ALL {
            assert_eq!(Mood::of(&book.get(m.name()).unwrap()), m);
        }
        let slightly_up = Style {
            pitch: 1.05,
            speed: 1.02,
            range: 1.0,
        };
        assert_eq!(Mood::of(&slightly_up), Mood::Neutral);
    }

    #[test]
    fn split_samples_are_carried_over() {
        let mut a = PcmAssembler::new(SampleFormat::S16Le);
        let mut out = Vec::new();
        a.push(&[0x34], &mut out);
        a.push(&[0x12, 0xff], &mut out);
        assert_eq!(out, vec![0x1234]);
        assert!(!a.ends_on_sample());
        a.push(&[0x7f], &mut out);
        assert_eq!(out, vec![0x1234, 0x7fff]);
        assert!(a.ends_on_sample());
        assert_eq!(a.bytes(), 4);
    }
}
