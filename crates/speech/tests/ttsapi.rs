//! Remote TTS adapters against local servers speaking the documented
//! protocols, started in-process on 127.0.0.1:
//!
//! - CosyVoice's FastAPI server (`runtime/python/fastapi/server.py`): the
//!   four inference endpoints on GET and POST, form fields as FastAPI reads
//!   them (url-encoded or multipart; a missing field is FastAPI's 422), and
//!   the body streamed as raw int16 PCM with no Content-Type. An unknown
//!   speaker fails inside the generator after the 200 went out, so the
//!   connection breaks mid-body, as the real server's does.
//! - Azure Speech REST (`/cognitiveservices/v1`): the key, Content-Type,
//!   output format and User-Agent headers checked in the service's order
//!   (401, 415, 400), the SSML parsed with namespaces and rejected (400)
//!   unless well-formed with `speak`/`voice`/`prosody` in the synthesis
//!   namespace and `express-as` in `mstts`, and the audio streamed chunked.
//!
//! The servers stream tones in chunks with delays and record what they were
//! asked, so the tests check the request, the streaming (first frame before
//! the body ends) and the audio that comes out.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use proptest::prelude::*;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;
use waihu_audio::g711::Law;
use waihu_audio::script::{Lang, LangChoice};
use waihu_audio::style::{Style, StyleBook};
use waihu_audio::wav::Pcm;
use waihu_speech::azure::{build_ssml, xml_text, AzureConfig, AzureFormat, AzureTts};
use waihu_speech::cosyvoice::{instruct_text, CosyVoiceConfig, CosyVoiceMode, CosyVoiceTts};
use waihu_speech::remote_tts::{Mood, PcmAssembler, RemoteErrorKind, RemoteTimeouts, SampleFormat};
use waihu_speech::{PcmFrame, Synthesizer, TtsCache, TtsEngine, TtsError, Voice};

// ---------- shared helpers ----------

fn tone(freq: f64, rate: u32, ms: u32, amp: f64) -> Vec<i16> {
    (0..(rate as u64 * ms as u64 / 1000) as usize)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

fn le_bytes(s: &[i16]) -> Vec<u8> {
    s.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Dominant frequency from zero crossings.
fn zc_freq(s: &[i16], rate: u32) -> f64 {
    let zc = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    zc as f64 / 2.0 / (s.len() as f64 / rate as f64)
}

/// How the server sends the body, and how it ends it.
#[derive(Debug, Clone, Copy)]
struct Plan {
    chunk: usize,
    gap_ms: u64,
    first_ms: u64,
    end: End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Complete,
    /// Break the connection without the final chunk (a failing generator).
    Abort,
    /// Stop sending and hold the connection open.
    Stall(u64),
}

impl Plan {
    /// Odd-sized chunks so samples straddle chunk boundaries.
    fn slow() -> Plan {
        Plan {
            chunk: 2205 * 2 + 1,
            gap_ms: 40,
            first_ms: 20,
            end: End::Complete,
        }
    }

    fn fast() -> Plan {
        Plan {
            chunk: 8191,
            gap_ms: 0,
            first_ms: 0,
            end: End::Complete,
        }
    }
}

type Done = Arc<Mutex<Option<Instant>>>;

/// A chunked body sent on the server's runtime; `done` is set when the last
/// byte has been handed to the connection.
fn streamed(bytes: Vec<u8>, plan: Plan, done: Done) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(plan.first_ms)).await;
        for (i, c) in bytes.chunks(plan.chunk.max(1)).enumerate() {
            if i > 0 && plan.gap_ms > 0 {
                tokio::time::sleep(Duration::from_millis(plan.gap_ms)).await;
            }
            if tx.send(Ok(Bytes::copy_from_slice(c))).await.is_err() {
                return;
            }
        }
        *done.lock().unwrap() = Some(Instant::now());
        match plan.end {
            End::Complete => {}
            End::Abort => {
                let _ = tx.send(Err(std::io::Error::other("model failed"))).await;
            }
            End::Stall(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        }
    });
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|x| (x, rx))
    }))
}

struct Server {
    addr: std::net::SocketAddr,
    _rt: tokio::runtime::Runtime,
}

fn serve(app: Router) -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let addr = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        // As uvicorn (asyncio sets TCP_NODELAY on every TCP transport): with
        // Nagle on, small chunks meet the client's delayed ACK and stall ~40 ms.
        let l = l.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(l, app).await });
        addr
    });
    Server { addr, _rt: rt }
}

fn voice(rate: u32) -> Voice {
    Voice {
        style: Style::NEUTRAL,
        lang: LangChoice::Auto,
        rate,
    }
}

/// All frames of a prompt with their arrival times, and the error that ended it.
fn frames(
    synth: &Synthesizer,
    text: &str,
    v: Voice,
) -> (Vec<(Instant, PcmFrame)>, Option<TtsError>) {
    let mut out = Vec::new();
    for f in synth.stream(text, v).unwrap() {
        match f {
            Ok(f) => out.push((Instant::now(), f)),
            Err(e) => return (out, Some(e)),
        }
    }
    (out, None)
}

fn remote_kind(e: &TtsError) -> &RemoteErrorKind {
    match e {
        TtsError::Remote(r) => &r.kind,
        other => panic!("not a remote error: {other}"),
    }
}

fn quick() -> RemoteTimeouts {
    RemoteTimeouts {
        connect: Duration::from_secs(2),
        first_audio: Duration::from_millis(1500),
        idle: Duration::from_millis(400),
    }
}

// ---------- CosyVoice FastAPI server ----------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Misbehave {
    None,
    Status(u16),
    Json200,
    Odd,
    Empty,
    Stall,
}

#[derive(Default)]
struct CosyLog {
    requests: Vec<(String, String, HashMap<String, String>)>,
    prompt_wavs: Vec<Vec<u8>>,
}

#[derive(Clone)]
struct Cosy {
    rate: u32,
    plan: Plan,
    misbehave: Misbehave,
    log: Arc<Mutex<CosyLog>>,
    done: Done,
}

const SPEAKERS: [&str; 4] = ["中文女", "中文男", "英文女", "英文男"];

/// FastAPI's answer when a `Form()` field is missing.
fn fastapi_422(missing: &str) -> Response {
    let body = serde_json::json!({"detail": [{
        "type": "missing", "loc": ["body", missing], "msg": "Field required", "input": null
    }]});
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn cosy_handler(State(st): State<Cosy>, req: Request) -> Response {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let method = req.method().to_string();
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut fields = HashMap::new();
    let mut wav = None;
    if ct.starts_with("multipart/form-data") {
        let mut mp = match Multipart::from_request(req, &()).await {
            Ok(m) => m,
            Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
        };
        while let Ok(Some(f)) = mp.next_field().await {
            let name = f.name().unwrap_or_default().to_string();
            let is_file = f.file_name().is_some();
            let data = f.bytes().await.unwrap_or_default();
            if is_file {
                wav = Some((name, data.to_vec()));
            } else {
                fields.insert(name, String::from_utf8_lossy(&data).into_owned());
            }
        }
    } else if ct.starts_with("application/x-www-form-urlencoded") {
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default();
        fields = url::form_urlencoded::parse(&body).into_owned().collect();
    }
    let (text_fields, file): (&[&str], Option<&str>) = match path.as_str() {
        "inference_sft" => (&["tts_text", "spk_id"], None),
        "inference_instruct" => (&["tts_text", "spk_id", "instruct_text"], None),
        "inference_zero_shot" => (&["tts_text", "prompt_text"], Some("prompt_wav")),
        "inference_instruct2" => (&["tts_text", "instruct_text"], Some("prompt_wav")),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    for f in text_fields {
        if !fields.contains_key(*f) {
            return fastapi_422(f);
        }
    }
    if let Some(f) = file {
        match &wav {
            Some((name, data)) if name == f => {
                st.log.lock().unwrap().prompt_wavs.push(data.clone())
            }
            _ => return fastapi_422(f),
        }
    }
    st.log
        .lock()
        .unwrap()
        .requests
        .push((method, path, fields.clone()));
    match st.misbehave {
        Misbehave::Status(code) => {
            return (StatusCode::from_u16(code).unwrap(), "Internal Server Error").into_response()
        }
        Misbehave::Json200 => {
            return (
                [(header::CONTENT_TYPE, "application/json")],
                r#"{"error":"model not loaded"}"#,
            )
                .into_response()
        }
        _ => {}
    }
    let chars = fields["tts_text"].chars().count() as u32;
    let mut bytes = le_bytes(&tone(440.0, st.rate, 100 * chars, 8000.0));
    let mut plan = st.plan;
    if fields
        .get("spk_id")
        .is_some_and(|s| !SPEAKERS.contains(&s.as_str()))
    {
        // inference_sft raises KeyError inside the generator, after the 200.
        bytes.clear();
        plan.end = End::Abort;
    }
    match st.misbehave {
        Misbehave::Odd => bytes.push(0x11),
        Misbehave::Empty => bytes.clear(),
        Misbehave::Stall => {
            bytes.truncate(bytes.len() / 2);
            plan.end = End::Stall(5_000);
        }
        _ => {}
    }
    // StreamingResponse without media_type: no Content-Type header.
    Response::new(streamed(bytes, plan, st.done.clone()))
}

fn cosy_server(rate: u32, plan: Plan, misbehave: Misbehave) -> (Server, Cosy) {
    let st = Cosy {
        rate,
        plan,
        misbehave,
        log: Arc::default(),
        done: Arc::default(),
    };
    let h = get(cosy_handler).post(cosy_handler);
    let app = Router::new()
        .route("/inference_sft", h.clone())
        .route("/inference_instruct", h.clone())
        .route("/inference_zero_shot", h.clone())
        .route("/inference_instruct2", h)
        .with_state(st.clone());
    (serve(app), st)
}

fn cosy_engine(addr: std::net::SocketAddr, mode: CosyVoiceMode) -> CosyVoiceTts {
    let mut cfg = CosyVoiceConfig::new(&format!("http://{addr}"));
    cfg.mode = mode;
    cfg.timeouts = quick();
    CosyVoiceTts::new(cfg).unwrap()
}

#[test]
fn cosyvoice_sft_streams_frames_before_the_body_ends() {
    let (srv, st) = cosy_server(22050, Plan::slow(), Misbehave::None);
    let eng = Arc::new(cosy_engine(srv.addr, CosyVoiceMode::Sft));
    let synth = Synthesizer::new(eng);
    let text = "您好这里是快递服务中心";
    let t0 = Instant::now();
    let (got, err) = frames(&synth, text, voice(8000));
    assert!(err.is_none(), "{err:?}");
    let done = st.done.lock().unwrap().expect("body sent");
    let first = got[0].0;
    assert!(first < done, "first frame only after the whole body");
    eprintln!(
        "cosyvoice (slow server: 100 ms chunks every 40 ms): first frame {:.1} ms, body done {:.1} ms",
        (first - t0).as_secs_f64() * 1e3,
        (done - t0).as_secs_f64() * 1e3
    );
    // 11 characters = 1.1 s = 55 frames at 8 kHz (the tail frame padded).
    assert!((55..=56).contains(&got.len()), "{} frames", got.len());
    let audio: Vec<i16> = got.iter().flat_map(|(_, f)| f.samples.clone()).collect();
    let f = zc_freq(&audio[800..8800], 8000);
    assert!((f - 440.0).abs() < 10.0, "{f} Hz");
    let log = st.log.lock().unwrap();
    let (method, path, fields) = &log.requests[0];
    assert_eq!((method.as_str(), path.as_str()), ("POST", "inference_sft"));
    assert_eq!(fields["tts_text"], text);
    assert_eq!(fields["spk_id"], "中文女");
    assert_eq!(fields.len(), 2);
}

#[test]
fn cosyvoice_instruct_speaks_the_style_as_an_instruction() {
    let (srv, st) = cosy_server(22050, Plan::fast(), Misbehave::None);
    let eng = Arc::new(cosy_engine(srv.addr, CosyVoiceMode::Instruct));
    let cache = Arc::new(TtsCache::in_memory(1 << 20));
    let synth = Synthesizer::new(eng).with_cache(cache);
    let book = StyleBook::default();
    for m in Mood::ALL {
        let v = Voice {
            style: book.get(m.name()).unwrap(),
            ..voice(16000)
        };
        let audio = synth.synthesize_all("好的", v).unwrap();
        assert_eq!(audio.len(), 3200);
        // Cached per style: the second time the server is not asked.
        synth.synthesize_all("好的", v).unwrap();
    }
    let log = st.log.lock().unwrap();
    assert_eq!(log.requests.len(), Mood::ALL.len());
    for (m, (_, path, fields)) in Mood::ALL.iter().zip(&log.requests) {
        assert_eq!(path, "inference_instruct");
        assert_eq!(fields["instruct_text"], instruct_text("", *m));
        assert!(fields["instruct_text"].ends_with("<|endofprompt|>"));
    }
    assert!(log.requests[1].2["instruct_text"].contains("开心"));
    assert!(log.requests[3].2["instruct_text"].contains("抱歉"));
}

#[test]
fn cosyvoice_zero_shot_and_instruct2_upload_the_prompt() {
    let (srv, st) = cosy_server(24000, Plan::fast(), Misbehave::None);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("prompt.wav");
    waihu_audio::wav::write_wav(&wav, 16000, &tone(200.0, 16000, 300, 5000.0)).unwrap();
    let wav_bytes = std::fs::read(&wav).unwrap();
    for mode in [CosyVoiceMode::ZeroShot, CosyVoiceMode::Instruct2] {
        let mut cfg = CosyVoiceConfig::new(&format!("http://{}/", srv.addr));
        cfg.mode = mode;
        cfg.prompt_wav = Some(wav.clone());
        cfg.prompt_text = Some("希望你以后能够做的比我还好呦。".to_string());
        cfg.instruct_prefix = "You are a helpful assistant. ".to_string();
        let eng = CosyVoiceTts::new(cfg).unwrap();
        assert_eq!(eng.rate(), 24000);
        let pcm = eng
            .synthesize("收到", Lang::Zh, &StyleBook::default().get("calm").unwrap())
            .unwrap();
        assert_eq!(pcm.rate, 24000);
        assert_eq!(pcm.samples.len(), 4800);
    }
    let log = st.log.lock().unwrap();
    assert_eq!(log.prompt_wavs, vec![wav_bytes.clone(), wav_bytes]);
    let zs = &log.requests[0].2;
    assert_eq!(zs["prompt_text"], "希望你以后能够做的比我还好呦。");
    assert!(!zs.contains_key("instruct_text"));
    let i2 = &log.requests[1].2;
    assert_eq!(
        i2["instruct_text"],
        instruct_text("You are a helpful assistant. ", Mood::Calm)
    );
}

#[test]
fn cosyvoice_failures_are_clear_errors() {
    let synth_err = |misbehave: Misbehave| {
        let (srv, _st) = cosy_server(22050, Plan::fast(), misbehave);
        let synth = Synthesizer::new(Arc::new(cosy_engine(srv.addr, CosyVoiceMode::Sft)));
        let (_, err) = frames(&synth, "您好", voice(8000));
        err.expect("an error")
    };
    let e = synth_err(Misbehave::Status(500));
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Status { status: 500, body, .. } if body == "Internal Server Error"),
        "{e}"
    );
    assert!(e.to_string().contains("CosyVoice"), "{e}");
    let e = synth_err(Misbehave::Json200);
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::ContentType { got, body } if got == "application/json" && body.contains("model not loaded")),
        "{e}"
    );
    let e = synth_err(Misbehave::Odd);
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Truncated(m) if m.contains("whole number")),
        "{e}"
    );
    let e = synth_err(Misbehave::Empty);
    assert!(matches!(remote_kind(&e), RemoteErrorKind::NoAudio), "{e}");
    let e = synth_err(Misbehave::Stall);
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Timeout { ms: 400, .. }),
        "{e}"
    );

    // An unknown speaker: 200, then the connection breaks.
    let (srv, _st) = cosy_server(22050, Plan::fast(), Misbehave::None);
    let mut cfg = CosyVoiceConfig::new(&format!("http://{}", srv.addr));
    cfg.voice = "无此人".to_string();
    cfg.timeouts = quick();
    let e = CosyVoiceTts::new(cfg)
        .unwrap()
        .synthesize("您好", Lang::Zh, &Style::NEUTRAL)
        .unwrap_err();
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Truncated(_)),
        "{e}"
    );

    // A model without the mode's endpoint fields: FastAPI's 422, surfaced.
    let (srv, _st) = cosy_server(22050, Plan::fast(), Misbehave::None);
    assert_eq!(raw_http::post_missing_field(srv.addr), 422);

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let e = cosy_engine(port, CosyVoiceMode::Sft)
        .synthesize("您好", Lang::Zh, &Style::NEUTRAL)
        .unwrap_err();
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Connect(_)),
        "{e}"
    );
}

/// A request with a field missing, as a hand-written HTTP/1.1 exchange.
mod raw_http {
    use std::io::{Read, Write};
    pub fn post_missing_field(addr: std::net::SocketAddr) -> u16 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let body = "tts_text=hi";
        write!(
            s,
            "POST /inference_sft HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        assert!(out.contains("Field required"), "{out}");
        out.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    }
}

#[test]
fn cosyvoice_bad_configuration_is_caught_before_speaking() {
    let bad = |f: &dyn Fn(&mut CosyVoiceConfig)| {
        let mut cfg = CosyVoiceConfig::new("http://127.0.0.1:9");
        f(&mut cfg);
        match CosyVoiceTts::new(cfg) {
            Err(e) => assert!(matches!(remote_kind(&e), RemoteErrorKind::Config(_)), "{e}"),
            Ok(_) => panic!("accepted"),
        }
    };
    bad(&|c| c.endpoint = "ftp://host".into());
    bad(&|c| c.endpoint = "http://user:pw@host".into());
    bad(&|c| c.voice = " ".into());
    bad(&|c| c.mode = CosyVoiceMode::ZeroShot);
    bad(&|c| c.sample_rate = Some(100));
    bad(&|c| {
        c.mode = CosyVoiceMode::Instruct2;
        c.prompt_wav = Some("/nonexistent.wav".into());
    });
}

// ---------- Azure Speech REST ----------

const SYNTH_NS: &[u8] = b"http://www.w3.org/2001/10/synthesis";
const MSTTS_NS: &[u8] = b"https://www.w3.org/2001/mstts";

#[derive(Debug, Default, Clone, PartialEq)]
struct Ssml {
    lang: String,
    voice: String,
    style: Option<String>,
    rate: Option<String>,
    pitch: Option<String>,
    range: Option<String>,
    text: String,
}

/// What Azure checks before synthesising: well-formed XML, the SSML
/// namespace on `speak`, `voice` and `prosody`, `mstts` on `express-as`,
/// text only inside a voice.
fn parse_ssml(body: &str) -> Result<Ssml, String> {
    let mut r = NsReader::from_str(body);
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Ssml::default();
    let mut roots = 0;
    loop {
        let (ns, ev) = r.read_resolved_event().map_err(|e| e.to_string())?;
        let ns: Option<Vec<u8>> = match ns {
            ResolveResult::Bound(n) => Some(n.as_ref().to_vec()),
            _ => None,
        };
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let mut attrs = HashMap::new();
                for a in e.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let v = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map_err(|e| e.to_string())?;
                    attrs.insert(
                        String::from_utf8_lossy(a.key.as_ref()).into_owned(),
                        v.into_owned(),
                    );
                }
                let in_ns = |want: &[u8]| ns.as_deref() == Some(want);
                match (local.as_str(), stack.len()) {
                    ("speak", 0) if in_ns(SYNTH_NS) => {
                        roots += 1;
                        if attrs.get("version").map(String::as_str) != Some("1.0") {
                            return Err("speak needs version=\"1.0\"".into());
                        }
                        seen.lang = attrs.get("xml:lang").cloned().ok_or("no xml:lang")?;
                    }
                    ("voice", 1) if in_ns(SYNTH_NS) => {
                        seen.voice = attrs.get("name").cloned().ok_or("voice without name")?;
                    }
                    ("express-as", d) if d >= 2 && in_ns(MSTTS_NS) => {
                        seen.style = attrs.get("style").cloned();
                    }
                    ("prosody", d) if d >= 2 && in_ns(SYNTH_NS) => {
                        seen.rate = attrs.get("rate").cloned();
                        seen.pitch = attrs.get("pitch").cloned();
                        seen.range = attrs.get("range").cloned();
                    }
                    (other, d) => {
                        return Err(format!(
                            "unexpected element {other} at depth {d} in namespace {:?}",
                            ns.map(|n| String::from_utf8_lossy(&n).into_owned())
                        ))
                    }
                }
                if matches!(ev, Event::Start(_)) {
                    stack.push(local);
                }
            }
            Event::End(_) => {
                stack.pop();
            }
            Event::Text(t) => {
                let t = t.decode().map_err(|e| e.to_string())?;
                if !stack.iter().any(|s| s == "voice") {
                    if !t.trim().is_empty() {
                        return Err("text outside a voice".into());
                    }
                    continue;
                }
                seen.text.push_str(&t);
            }
            Event::GeneralRef(g) => {
                let c = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                    Some(c) => c.to_string(),
                    None => {
                        let name = g.decode().map_err(|e| e.to_string())?;
                        quick_xml::escape::resolve_predefined_entity(&name)
                            .ok_or(format!("unknown entity &{name};"))?
                            .to_string()
                    }
                };
                seen.text.push_str(&c);
            }
            Event::CData(c) => seen.text.push_str(&String::from_utf8_lossy(&c)),
            Event::DocType(_) => return Err("DTDs are not accepted".into()),
            Event::Eof => break,
            _ => {}
        }
    }
    if roots != 1 || !stack.is_empty() {
        return Err("not one complete <speak> document".into());
    }
    Ok(seen)
}

/// `+20%` as a multiplier.
fn pct(v: &Option<String>) -> f64 {
    v.as_deref()
        .and_then(|s| s.strip_suffix('%'))
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(1.0, |p| 1.0 + p / 100.0)
}

#[derive(Clone)]
struct Az {
    key: &'static str,
    plan: Plan,
    misbehave: Misbehave,
    seen: Arc<Mutex<Vec<(Ssml, String, String)>>>,
    done: Done,
}

fn azure_error(status: StatusCode, msg: &str) -> Response {
    (status, msg.to_string()).into_response()
}

async fn azure_handler(
    State(st): State<Az>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    assert_eq!(method, Method::POST);
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    if h("Ocp-Apim-Subscription-Key") != st.key {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}"#,
        )
            .into_response();
    }
    if h("Content-Type") != "application/ssml+xml" {
        return azure_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported media type");
    }
    let fmt = h("X-Microsoft-OutputFormat").to_string();
    let Some(format) = AzureFormat::parse(&fmt) else {
        return azure_error(StatusCode::BAD_REQUEST, "Unsupported output format");
    };
    if h("User-Agent").is_empty() {
        return azure_error(StatusCode::BAD_REQUEST, "User-Agent required");
    }
    let Ok(text) = std::str::from_utf8(&body) else {
        return azure_error(StatusCode::BAD_REQUEST, "SSML is not UTF-8");
    };
    let ssml = match parse_ssml(text) {
        Ok(s) => s,
        Err(e) => return azure_error(StatusCode::BAD_REQUEST, &format!("invalid SSML: {e}")),
    };
    st.seen
        .lock()
        .unwrap()
        .push((ssml.clone(), fmt, h("User-Agent").to_string()));
    match st.misbehave {
        Misbehave::Status(429) => {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "1")],
                "Too many requests",
            )
                .into_response()
        }
        Misbehave::Status(code) => {
            return azure_error(StatusCode::from_u16(code).unwrap(), "Bad gateway")
        }
        _ => {}
    }
    // A tone at 200 Hz times the pitch, 80 ms per character over the rate.
    let rate = format.rate();
    let ms = (80.0 * ssml.text.chars().count() as f64 / pct(&ssml.rate)) as u32;
    let samples = tone(200.0 * pct(&ssml.pitch), rate, ms, 8000.0);
    let bytes = if format == AzureFormat::Ulaw8k {
        let mut b = Vec::new();
        Law::Ulaw.encode(&samples, &mut b);
        b
    } else {
        le_bytes(&samples)
    };
    let mut resp = Response::new(streamed(bytes, st.plan, st.done.clone()));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, "audio/x-wav".parse().unwrap());
    resp
}

fn azure_server(key: &'static str, plan: Plan, misbehave: Misbehave) -> (Server, Az) {
    let st = Az {
        key,
        plan,
        misbehave,
        seen: Arc::default(),
        done: Arc::default(),
    };
    let app = Router::new()
        .route("/cognitiveservices/v1", post(azure_handler))
        .with_state(st.clone());
    (serve(app), st)
}

fn azure_engine(addr: std::net::SocketAddr, key_env: &str, format: AzureFormat) -> AzureTts {
    AzureTts::new(AzureConfig {
        endpoint: Some(format!("http://{addr}/cognitiveservices/v1")),
        key_env: key_env.to_string(),
        format,
        timeouts: quick(),
        ..AzureConfig::default()
    })
    .unwrap()
}

#[test]
fn azure_streams_styled_ssml_in_both_languages() {
    std::env::set_var("WAIHU_TEST_AZ_KEY_A", "k3y-a");
    let (srv, st) = azure_server("k3y-a", Plan::slow(), Misbehave::None);
    let eng = azure_engine(srv.addr, "WAIHU_TEST_AZ_KEY_A", AzureFormat::Pcm16k);
    assert!(!eng.id().contains("k3y-a"));
    let synth = Synthesizer::new(Arc::new(eng));
    let happy = StyleBook::default().get("happy").unwrap();
    let text = "您好，您的快递明天到。Your parcel <arrives> tomorrow & \"soon\".";
    let t0 = Instant::now();
    let (got, err) = frames(
        &synth,
        text,
        Voice {
            style: happy,
            ..voice(8000)
        },
    );
    assert!(err.is_none(), "{err:?}");
    let seen = st.seen.lock().unwrap().clone();
    assert!(seen.len() >= 2, "one request per chunk");
    let (zh, fmt, ua) = &seen[0];
    assert_eq!(fmt, "raw-16khz-16bit-mono-pcm");
    assert!(ua.starts_with("waihu/"));
    assert_eq!(zh.voice, "zh-CN-XiaoxiaoNeural");
    assert_eq!(zh.lang, "zh-CN");
    assert_eq!(zh.style.as_deref(), Some("cheerful"));
    assert_eq!(
        (zh.rate.as_deref(), zh.pitch.as_deref()),
        (Some("+10%"), Some("+20%"))
    );
    let (en, _, _) = &seen[seen.len() - 1];
    assert_eq!(en.voice, "en-US-JennyNeural");
    assert_eq!(en.lang, "en-US");
    assert!(
        en.text.contains("<arrives> tomorrow & \"soon\""),
        "{:?}",
        en.text
    );
    let first = got[0].0;
    let done = st.done.lock().unwrap().expect("sent");
    assert!(first < done);
    eprintln!(
        "azure (slow server): first frame {:.1} ms",
        (first - t0).as_secs_f64() * 1e3
    );
    // Each chunk: 80 ms per character / 1.1; the tone at 240 Hz.
    let want_ms: f64 = seen
        .iter()
        .map(|(s, _, _)| (80.0 * s.text.chars().count() as f64 / 1.1).floor())
        .sum();
    let got_ms = got.len() as f64 * 20.0;
    assert!((got_ms - want_ms).abs() <= 40.0, "{got_ms} vs {want_ms}");
    let audio: Vec<i16> = got.iter().flat_map(|(_, f)| f.samples.clone()).collect();
    let f = zc_freq(&audio[400..4400], 8000);
    assert!((f - 240.0).abs() < 8.0, "{f} Hz");
}

#[test]
fn azure_mulaw_and_other_moods() {
    std::env::set_var("WAIHU_TEST_AZ_KEY_B", "k3y-b");
    let (srv, st) = azure_server("k3y-b", Plan::fast(), Misbehave::None);
    let eng = azure_engine(srv.addr, "WAIHU_TEST_AZ_KEY_B", AzureFormat::Ulaw8k);
    let book = StyleBook::default();
    let pcm = eng
        .synthesize("稍等", Lang::Zh, &book.get("apologetic").unwrap())
        .unwrap();
    assert_eq!(pcm.rate, 8000);
    // 2 characters, 80 ms each, at speed 0.9.
    assert_eq!(pcm.samples.len(), 8000 * (160.0f64 / 0.9) as usize / 1000);
    let f = zc_freq(&pcm.samples, 8000);
    assert!((f - 160.0).abs() < 8.0, "{f} Hz");
    eng.synthesize("sorry", Lang::En, &book.get("apologetic").unwrap())
        .unwrap();
    eng.synthesize("now", Lang::En, &book.get("urgent").unwrap())
        .unwrap();
    eng.synthesize("好", Lang::Zh, &book.get("calm").unwrap())
        .unwrap();
    let seen = st.seen.lock().unwrap();
    let styles: Vec<_> = seen.iter().map(|s| s.0.style.clone()).collect();
    assert_eq!(
        styles,
        [
            Some("sorry"),
            Some("empathetic"),
            Some("serious"),
            Some("calm")
        ]
        .map(|s| s.map(String::from))
    );
    assert_eq!(seen[3].0.range.as_deref(), Some("-20%"));
    assert_eq!(seen[0].1, "raw-8khz-8bit-mono-mulaw");
}

#[test]
fn azure_failures_are_clear_errors() {
    std::env::set_var("WAIHU_TEST_AZ_KEY_C", "wrong-key");
    let (srv, _) = azure_server("right-key", Plan::fast(), Misbehave::None);
    let e = azure_engine(srv.addr, "WAIHU_TEST_AZ_KEY_C", AzureFormat::Pcm16k)
        .synthesize("你好", Lang::Zh, &Style::NEUTRAL)
        .unwrap_err();
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Status { status: 401, body, .. } if body.contains("Access denied")),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("key rejected") && !msg.contains("wrong-key"),
        "{msg}"
    );

    std::env::set_var("WAIHU_TEST_AZ_KEY_D", "k");
    for (code, want) in [(429u16, "rate limited"), (502, "server error")] {
        let (srv, _) = azure_server("k", Plan::fast(), Misbehave::Status(code));
        let e = azure_engine(srv.addr, "WAIHU_TEST_AZ_KEY_D", AzureFormat::Pcm16k)
            .synthesize("你好", Lang::Zh, &Style::NEUTRAL)
            .unwrap_err();
        assert!(
            matches!(remote_kind(&e), RemoteErrorKind::Status { status, .. } if *status == code),
            "{e}"
        );
        assert!(e.to_string().contains(want), "{e}");
    }

    let (srv, _) = azure_server(
        "k",
        Plan {
            end: End::Abort,
            ..Plan::slow()
        },
        Misbehave::None,
    );
    let synth = Synthesizer::new(Arc::new(azure_engine(
        srv.addr,
        "WAIHU_TEST_AZ_KEY_D",
        AzureFormat::Pcm24k,
    )));
    let (got, err) = frames(&synth, "您好，这里是快递服务中心", voice(8000));
    assert!(!got.is_empty(), "audio before the break still plays");
    assert!(matches!(
        remote_kind(&err.unwrap()),
        RemoteErrorKind::Truncated(_)
    ));

    let (srv, _) = azure_server(
        "k",
        Plan {
            first_ms: 3000,
            ..Plan::fast()
        },
        Misbehave::None,
    );
    let e = azure_engine(srv.addr, "WAIHU_TEST_AZ_KEY_D", AzureFormat::Pcm16k)
        .synthesize("你好", Lang::Zh, &Style::NEUTRAL)
        .unwrap_err();
    assert!(
        matches!(remote_kind(&e), RemoteErrorKind::Timeout { ms: 1500, .. }),
        "{e}"
    );
}

#[test]
fn azure_configuration_is_checked() {
    let bad = |cfg: AzureConfig| match AzureTts::new(cfg) {
        Err(e) => {
            assert!(matches!(remote_kind(&e), RemoteErrorKind::Config(_)), "{e}");
            e.to_string()
        }
        Ok(_) => panic!("accepted"),
    };
    let base = AzureConfig {
        endpoint: Some("http://127.0.0.1:9/cognitiveservices/v1".into()),
        key_env: "WAIHU_TEST_AZ_KEY_UNSET".into(),
        ..AzureConfig::default()
    };
    let m = bad(base.clone());
    assert!(m.contains("WAIHU_TEST_AZ_KEY_UNSET"), "{m}");
    std::env::set_var("WAIHU_TEST_AZ_KEY_E", "k");
    let with_key = AzureConfig {
        key_env: "WAIHU_TEST_AZ_KEY_E".into(),
        ..base
    };
    bad(AzureConfig {
        zh_voice: "zh-CN-Xiao\"><evil/>".into(),
        ..with_key.clone()
    });
    bad(AzureConfig {
        endpoint: None,
        region: Some("east asia".into()),
        ..with_key.clone()
    });
    bad(AzureConfig {
        endpoint: None,
        region: None,
        ..with_key.clone()
    });
    assert!(AzureTts::new(with_key).is_ok());
}

// ---------- measurements (printed, not asserted) ----------

/// The same tone from memory, in one piece or in pieces of `piece` samples
/// (as the server's chunks): the baselines for the adapters' per-frame cost.
struct Local(Pcm, usize);

impl TtsEngine for Local {
    fn id(&self) -> &str {
        "local"
    }
    fn synthesize(&self, _: &str, _: Lang, _: &Style) -> Result<Pcm, TtsError> {
        Ok(self.0.clone())
    }
    fn synthesize_stream(
        &self,
        _: &str,
        _: Lang,
        _: &Style,
    ) -> Result<waihu_speech::PcmPieces, TtsError> {
        let rate = self.0.rate;
        let pieces: Vec<_> = self
            .0
            .samples
            .chunks(self.1)
            .map(|c| {
                Ok(Pcm {
                    rate,
                    samples: c.to_vec(),
                })
            })
            .collect();
        Ok(Box::new(pieces.into_iter()))
    }
}

fn drain(synth: &Synthesizer, text: &str) -> (Duration, Duration, usize) {
    let t0 = Instant::now();
    let mut first = None;
    let mut n = 0;
    for f in synth.stream(text, voice(8000)).unwrap() {
        f.unwrap();
        first.get_or_insert_with(|| t0.elapsed());
        n += 1;
    }
    (first.unwrap_or_default(), t0.elapsed(), n)
}

#[test]
fn measure_first_audio_and_per_frame_cost() {
    // 60 characters = 6 s at 100 ms per character (CosyVoice server).
    let text: String = "您好这里是快递服务中心请问"
        .chars()
        .cycle()
        .take(60)
        .collect();
    let (srv, _) = cosy_server(22050, Plan::fast(), Misbehave::None);
    let cosy = Synthesizer::new(Arc::new(cosy_engine(srv.addr, CosyVoiceMode::Sft)));
    std::env::set_var("WAIHU_TEST_AZ_KEY_M", "m");
    let (asrv, _) = azure_server("m", Plan::fast(), Misbehave::None);
    let azure = Synthesizer::new(Arc::new(azure_engine(
        asrv.addr,
        "WAIHU_TEST_AZ_KEY_M",
        AzureFormat::Pcm16k,
    )));
    let pcm = Pcm {
        rate: 22050,
        samples: tone(440.0, 22050, 6000, 8000.0),
    };
    let local = Synthesizer::new(Arc::new(Local(pcm.clone(), usize::MAX)));
    let pieces = Synthesizer::new(Arc::new(Local(pcm, 8191 / 2)));
    drain(&cosy, &text);
    drain(&azure, &text);
    let runs = 11;
    for (name, s) in [
        ("local, one piece", &local),
        ("local, 186 ms pieces", &pieces),
        ("cosyvoice", &cosy),
        ("azure", &azure),
    ] {
        let mut firsts = Vec::new();
        let mut per_frame = Vec::new();
        for _ in 0..runs {
            let (first, total, n) = drain(s, &text);
            firsts.push(first.as_secs_f64() * 1e3);
            per_frame.push(total.as_secs_f64() * 1e6 / n as f64);
        }
        firsts.sort_by(f64::total_cmp);
        per_frame.sort_by(f64::total_cmp);
        eprintln!(
            "{name:>20}: first audio median {:.2} ms (min {:.2}), whole prompt per 20 ms frame median {:.1} µs (min {:.1}), {runs} runs",
            firsts[runs / 2],
            firsts[0],
            per_frame[runs / 2],
            per_frame[0]
        );
    }
}

// ---------- properties of the parsers ----------

proptest! {
    #[test]
    fn pcm_survives_any_chunking(samples in prop::collection::vec(any::<i16>(), 0..400),
                                 cuts in prop::collection::vec(0usize..800, 0..20)) {
        let bytes = le_bytes(&samples);
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        cuts.push(0);
        cuts.push(bytes.len());
        cuts.sort();
        let mut asm = PcmAssembler::new(SampleFormat::S16Le);
        let mut out = Vec::new();
        for w in cuts.windows(2) {
            asm.push(&bytes[w[0]..w[1]], &mut out);
        }
        prop_assert_eq!(out, samples);
        prop_assert!(asm.ends_on_sample());
    }

    #[test]
    fn any_text_makes_well_formed_ssml(text in "\\PC{0,40}|[<>&'\"\\x00-\\x1f\u{FFFE}\u{FFFF}a-z]{0,40}",
                                       pitch in 0.5f32..2.0, speed in 0.4f32..2.5, range in 0.0f32..2.0) {
        let style = Style { pitch, speed, range };
        let ssml = build_ssml("zh-CN-XiaoxiaoNeural", Lang::Zh, &style, &text);
        let seen = parse_ssml(&ssml).map_err(|e| TestCaseError::fail(format!("{e}: {ssml}")))?;
        let xml_char = |c: char| {
            matches!(c, '\t' | '\n' | '\r') || ((c as u32) >= 0x20 && !matches!(c, '\u{FFFE}' | '\u{FFFF}'))
        };
        let kept: String = text.chars().filter(|&c| xml_char(c)).collect();
        prop_assert_eq!(seen.text, kept);
        prop_assert_eq!(seen.voice, "zh-CN-XiaoxiaoNeural");
        prop_assert_eq!(xml_text(&text).contains('<'), false);
    }
}

#[test]
fn the_bot_chooses_a_server_from_its_environment() {
    use waihu_speech::engines::TtsChoice;
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |k: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(TtsChoice::from_env(env(&[])), Ok(TtsChoice::Espeak));
    let c = TtsChoice::from_env(env(&[
        ("WAIHU_BOT_VOICE", "cosyvoice"),
        ("WAIHU_COSYVOICE_URL", "http://10.0.0.5:50000"),
        ("WAIHU_COSYVOICE_MODE", "instruct"),
        ("WAIHU_COSYVOICE_VOICE", "中文男"),
    ]))
    .unwrap();
    let TtsChoice::CosyVoice(cfg) = c else {
        panic!("{c:?}")
    };
    assert_eq!(
        (cfg.mode, cfg.voice.as_str()),
        (CosyVoiceMode::Instruct, "中文男")
    );
    let c = TtsChoice::from_env(env(&[
        ("WAIHU_BOT_VOICE", "azure"),
        ("WAIHU_AZURE_REGION", "eastasia"),
        ("WAIHU_AZURE_FORMAT", "raw-8khz-8bit-mono-mulaw"),
    ]))
    .unwrap();
    let TtsChoice::Azure(cfg) = c else {
        panic!("{c:?}")
    };
    assert_eq!(cfg.format, AzureFormat::Ulaw8k);
    assert_eq!(cfg.key_env, "AZURE_SPEECH_KEY");
    assert!(TtsChoice::from_env(env(&[("WAIHU_BOT_VOICE", "cosyvoice")])).is_err());
    assert!(TtsChoice::from_env(env(&[("WAIHU_BOT_VOICE", "robot")])).is_err());
}
