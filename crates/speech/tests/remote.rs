//! Remote ASR adapters against local servers speaking the documented
//! protocols, started in-process on 127.0.0.1. The servers measure what they
//! receive (duration, rate, dominant frequency, form fields) and answer with
//! it, so the tests check the audio and the options really arrived.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use waihu_audio::endpoint::EndpointConfig;
use waihu_audio::wav::parse_wav;
use waihu_speech::asr::{recognize_all, Asr, AsrError, AsrOptions, Endpointed, UtteranceAsr};
use waihu_speech::funasr::{FunAsr, FunAsrMode};
use waihu_speech::openai::OpenAiAsr;

fn tone(freq: f64, rate: u32, ms: u32, amp: f64) -> Vec<i16> {
    (0..(rate * ms / 1000) as usize)
        .map(|i| (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / rate as f64).sin()) as i16)
        .collect()
}

/// Dominant frequency from zero crossings.
fn zc_freq(s: &[i16], rate: u32) -> f64 {
    let zc = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    zc as f64 / 2.0 / (s.len() as f64 / rate as f64)
}

/// Time of the first 20 ms frame louder than -40 dBFS.
fn first_loud_ms(s: &[i16], rate: u32) -> u64 {
    let n = (rate / 50) as usize;
    s.chunks(n)
        .position(|f| waihu_audio::vad::frame_dbfs(f) > -40.0)
        .unwrap_or(0) as u64
        * 20
}

// ---------- OpenAI-compatible server ----------

type Seen = Arc<Mutex<Vec<HashMap<String, String>>>>;

async fn transcriptions(
    State(seen): State<Seen>,
    headers: HeaderMap,
    mut mp: Multipart,
) -> Result<Json<Value>, (StatusCode, String)> {
    let bad = |m: String| (StatusCode::BAD_REQUEST, m);
    let mut fields = HashMap::new();
    let mut audio = None;
    while let Some(field) = mp.next_field().await.map_err(|e| bad(e.to_string()))? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "file" {
            fields.insert(
                "filename".to_string(),
                field.file_name().unwrap_or_default().to_string(),
            );
            audio = Some(field.bytes().await.map_err(|e| bad(e.to_string()))?);
        } else {
            fields.insert(name, field.text().await.map_err(|e| bad(e.to_string()))?);
        }
    }
    if let Some(a) = headers.get("authorization") {
        fields.insert(
            "authorization".into(),
            a.to_str().unwrap_or_default().to_string(),
        );
    }
    seen.lock().unwrap().push(fields.clone());
    if fields.get("model").map(String::as_str) == Some("broken") {
        return Err((StatusCode::INTERNAL_SERVER_ERROR, "model crashed".into()));
    }
    let audio = audio.ok_or_else(|| bad("no file".into()))?;
    let pcm = parse_wav(&audio).map_err(|e| bad(e.to_string()))?;
    let dur = pcm.samples.len() as f64 / pcm.rate as f64;
    let freq = zc_freq(&pcm.samples, pcm.rate).round();
    let onset = first_loud_ms(&pcm.samples, pcm.rate) as f64 / 1000.0;
    let text = format!("heard {dur:.2} s at {} Hz, {freq} Hz", pcm.rate);
    Ok(Json(
        match fields.get("response_format").map(String::as_str) {
            Some("verbose_json") => json!({
                "task": "transcribe", "language": fields.get("language").cloned().unwrap_or("english".into()),
                "duration": dur, "text": text,
                "segments": [{"id": 0, "start": 0.0, "end": dur, "text": text, "avg_logprob": -0.25, "no_speech_prob": 0.01}],
                "words": [{"word": "heard", "start": onset, "end": onset + 0.2}]
            }),
            _ => json!({ "text": text }),
        },
    ))
}

async fn start_openai() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/v1/audio/transcriptions",
            axum::routing::post(transcriptions),
        )
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn openai_transcribes_with_options_and_confidence() {
    let (base, seen) = start_openai().await;
    let asr = OpenAiAsr::new(&base, "whisper-1")
        .unwrap()
        .with_api_key(Some("sk-local".into()));
    let opts = AsrOptions {
        lang: Some("zh".into()),
        hotwords: vec!["星河商城".into(), "王伟".into()],
        prompt: Some("订单确认".into()),
        rate: 8000,
    };
    let t = asr
        .transcribe(&tone(1000.0, 8000, 1500, 8000.0), 8000, &opts)
        .await
        .unwrap();
    assert_eq!(t.text, "heard 1.50 s at 8000 Hz, 1000 Hz");
    assert_eq!(t.language.as_deref(), Some("zh"));
    assert!((t.confidence.unwrap() - (-0.25f32).exp()).abs() < 1e-4);
    let f = seen.lock().unwrap()[0].clone();
    assert_eq!(f["model"], "whisper-1");
    assert_eq!(f["response_format"], "verbose_json");
    // Chinese as it is written: "，" between the parts, no spaces.
    assert_eq!(f["prompt"], "订单确认，星河商城，王伟");
    assert_eq!(f["authorization"], "Bearer sk-local");
    assert_eq!(f["filename"], "audio.wav");
}

#[tokio::test]
async fn openai_errors_are_typed() {
    let (base, _) = start_openai().await;
    let asr = OpenAiAsr::new(&base, "broken").unwrap();
    let opts = AsrOptions {
        rate: 8000,
        ..Default::default()
    };
    match asr.transcribe(&[0; 800], 8000, &opts).await {
        Err(AsrError::Status {
            status: 500, body, ..
        }) => assert!(body.contains("crashed")),
        other => panic!("{other:?}"),
    }
    // Nothing listens on the bound-then-dropped port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let asr = OpenAiAsr::new(&format!("http://127.0.0.1:{port}/v1"), "m").unwrap();
    assert!(matches!(
        asr.transcribe(&[0; 800], 8000, &opts).await,
        Err(AsrError::Connect { .. })
    ));
}

#[tokio::test]
async fn endpointed_openai_sends_each_utterance_once_with_media_times() {
    let (base, seen) = start_openai().await;
    let asr = Endpointed::new(
        Arc::new(OpenAiAsr::new(&base, "whisper-1").unwrap()),
        EndpointConfig::default(),
    );
    // Two "utterances" of a 300 Hz tone-like buzz in noise-free silence: 1.0-2.0 s and 3.5-4.3 s.
    let rate = 8000;
    let buzz = |ms| -> Vec<i16> {
        // A harmonic-rich 150 Hz pulse train reads as voiced speech to the VAD.
        (0..(rate * ms / 1000) as usize)
            .map(|i| {
                let t = i as f64 / rate as f64;
                let s: f64 = (1..12)
                    .map(|k| (2.0 * std::f64::consts::PI * 150.0 * k as f64 * t).sin() / k as f64)
                    .sum();
                (s * 4000.0 * (1.0 + 0.5 * (2.0 * std::f64::consts::PI * 4.0 * t).sin())) as i16
            })
            .collect()
    };
    let mut audio = vec![0i16; 8000];
    audio.extend(buzz(1000));
    audio.extend(vec![0i16; 12000]);
    audio.extend(buzz(800));
    audio.extend(vec![0i16; 8000]);
    let opts = AsrOptions {
        lang: Some("en".into()),
        rate,
        ..Default::default()
    };
    let results = recognize_all(&asr, &audio, &opts).await.unwrap();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(seen.lock().unwrap().len(), 2);
    for (r, (start, end)) in results.iter().zip([(1000u64, 2000u64), (3500, 4300)]) {
        assert!(r.is_final);
        assert!(
            r.start_ms.abs_diff(start) <= 60 && r.end_ms.abs_diff(end) <= 60,
            "{r:?}"
        );
        // Server-side word time + the utterance's place in the stream = the true onset.
        assert!(r.words[0].start_ms.abs_diff(start) <= 60, "{r:?}");
        // Audio sent: pre-roll 300 ms + speech + tail 200 ms.
        let sent: f64 = r.text.split_whitespace().nth(1).unwrap().parse().unwrap();
        let want = (end - start + 500) as f64 / 1000.0;
        assert!(
            (sent - want).abs() <= 0.06,
            "sent {sent} s, want {want} s: {r:?}"
        );
    }
}

// ---------- FunASR WebSocket server ----------

#[derive(Default, Debug)]
struct FunSeen {
    init: Option<Value>,
    samples: Vec<i16>,
    binary_messages: usize,
}

/// One FunASR session: partial "online" increments every 600 ms of audio,
/// the corrected sentence at the end.
async fn funasr_session(
    stream: tokio::net::TcpStream,
    seen: Arc<Mutex<FunSeen>>,
    set_final_flag: bool,
) {
    let mut ws = tokio_tungstenite::accept_async(stream).await.unwrap();
    let mut next_partial = 9600usize;
    let mut mode = String::new();
    while let Some(Ok(msg)) = ws.next().await {
        match msg {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                if seen.lock().unwrap().init.is_none() {
                    mode = v["mode"].as_str().unwrap_or_default().to_string();
                    seen.lock().unwrap().init = Some(v);
                    continue;
                }
                assert_eq!(v["is_speaking"], false);
                let (text, dur_ms) = {
                    let s = seen.lock().unwrap();
                    let freq = zc_freq(&s.samples, 16000).round();
                    let hot = s
                        .init
                        .as_ref()
                        .and_then(|i| i["hotwords"].as_str())
                        .unwrap_or("")
                        .to_string();
                    (
                        format!("{freq}赫兹 {hot}"),
                        s.samples.len() as u64 * 1000 / 16000,
                    )
                };
                let final_mode = if mode == "2pass" {
                    "2pass-offline"
                } else {
                    "offline"
                };
                let reply = json!({"mode": final_mode, "wav_name": "waihu", "text": text,
                                   "is_final": set_final_flag, "timestamp": format!("[[40,100],[100,{dur_ms}]]")});
                ws.send(Message::text(reply.to_string())).await.unwrap();
            }
            Message::Binary(b) => {
                let send_partial = {
                    let mut s = seen.lock().unwrap();
                    s.binary_messages += 1;
                    s.samples
                        .extend(b.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])));
                    let due = mode != "offline" && s.samples.len() >= next_partial;
                    if due {
                        next_partial += 9600;
                    }
                    due
                };
                if send_partial {
                    let online = if mode == "2pass" {
                        "2pass-online"
                    } else {
                        "online"
                    };
                    let reply = json!({"mode": online, "wav_name": "waihu", "text": "嗯", "is_final": false});
                    ws.send(Message::text(reply.to_string())).await.unwrap();
                }
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
}

async fn start_funasr(set_final_flag: bool) -> (String, Arc<Mutex<FunSeen>>) {
    let seen: Arc<Mutex<FunSeen>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(funasr_session(stream, s.clone(), set_final_flag));
        }
    });
    (format!("ws://{addr}"), seen)
}

#[tokio::test]
async fn funasr_2pass_streams_partials_then_final_at_16k() {
    let (url, seen) = start_funasr(true).await;
    let asr = FunAsr::new(&url, FunAsrMode::TwoPass).unwrap();
    let opts = AsrOptions {
        hotwords: vec!["星河商城".into()],
        rate: 8000,
        ..Default::default()
    };
    let results = recognize_all(&asr, &tone(1000.0, 8000, 2000, 8000.0), &opts)
        .await
        .unwrap();
    let s = seen.lock().unwrap();
    let init = s.init.as_ref().unwrap();
    assert_eq!(init["mode"], "2pass");
    assert_eq!(init["wav_format"], "pcm");
    assert_eq!(init["chunk_size"], json!([5, 10, 5]));
    // 2 s at 8 kHz arrive as 2 s at 16 kHz, in 60 ms messages, still a 1 kHz tone.
    assert!(s.samples.len().abs_diff(32000) <= 2, "{}", s.samples.len());
    assert!(s.binary_messages >= 33, "{}", s.binary_messages);
    assert!((zc_freq(&s.samples, 16000) - 1000.0).abs() < 3.0);
    let partials: Vec<_> = results.iter().filter(|r| !r.is_final).collect();
    assert_eq!(partials.len(), 3, "{results:?}");
    assert_eq!(partials[2].text, "嗯嗯嗯", "partials accumulate");
    let last = results.last().unwrap();
    assert!(last.is_final);
    assert_eq!(last.text, r#"1000赫兹 {"星河商城":20}"#);
    assert_eq!((last.start_ms, last.end_ms), (40, 2000));
}

#[tokio::test]
async fn funasr_offline_without_final_flag_ends_on_quiet() {
    let (url, seen) = start_funasr(false).await;
    let asr = FunAsr::new(&url, FunAsrMode::Offline).unwrap();
    let opts = AsrOptions {
        rate: 16000,
        ..Default::default()
    };
    let t0 = std::time::Instant::now();
    let results = recognize_all(&asr, &tone(500.0, 16000, 1000, 8000.0), &opts)
        .await
        .unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].is_final && results[0].text.starts_with("500赫兹"),
        "{results:?}"
    );
    assert_eq!(seen.lock().unwrap().samples.len(), 16000);
}

#[tokio::test]
async fn funasr_connection_refused_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let asr = FunAsr::new(&format!("ws://127.0.0.1:{port}"), FunAsrMode::TwoPass).unwrap();
    let opts = AsrOptions {
        rate: 8000,
        ..Default::default()
    };
    assert!(matches!(
        asr.open(&opts).await,
        Err(AsrError::Connect { .. })
    ));
}
