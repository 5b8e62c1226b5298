//! A real store in a temp dir, keys for every role, a real server on 127.0.0.1:0.
#![allow(dead_code)]
pub mod desk;
use std::net::SocketAddr;

use chrono::{DateTime, TimeZone, Utc};
use waihu_core::{CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};
use waihu_server::auth::{create_key, Role};
use waihu_store::Store;

pub struct Server {
    pub addr: SocketAddr,
    pub store: Store,
    pub admin: String,
    pub operator: String,
    pub analyst: String,
    pub client: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _dir: tempfile::TempDir,
}

pub const CSV: &str =
    "姓名,手机号,购买频次\n张伟,13812345678,6\n李娜,13900001111,2\nTom Li,+12025550123,1\n";

/// A route's path with ids that exist nowhere (so DELETEs touch nothing),
/// except the agent `a1` agent keys are bound to.
pub fn concrete(path: &str) -> String {
    let p = if path.starts_with("/api/agents/{id}") {
        path.replace("{id}", "a1")
    } else {
        path.replace("{id}", "999999")
    };
    p.replace("{phone}", "13700000000")
        .replace("{name}", "no-such-script")
        .replace("{file}", "no-such.csv")
        .replace("{version}", "1")
}

pub fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

async fn import(store: &Store, csv: &str) {
    let now = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
    let mut opts = waihu_ingest::Options::new("CN").unwrap();
    opts.schema = store.attr_schema().await.unwrap();
    let mut src = waihu_ingest::Source::open(csv.as_bytes(), opts).unwrap();
    let mut imp = store
        .begin_import("t.csv", src.encoding, &src.kinds.clone(), now)
        .await
        .unwrap();
    loop {
        let batch = src.next_batch(100).unwrap();
        if batch.is_empty() {
            break;
        }
        let ok: Vec<_> = batch.into_iter().filter_map(|r| r.ok()).collect();
        imp.write(&ok, now).await.unwrap();
    }
    imp.finish(0, now).await.unwrap();
}

impl Server {
    pub async fn start(cfg: waihu_server::Config) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_with_key(dir.path(), &waihu_privacy::MasterKey::from_bytes([3; 32]))
                .await
                .unwrap();
        import(&store, CSV).await;
        let now = Utc::now();
        let admin = create_key(&store, "root", Role::Admin, now)
            .await
            .unwrap()
            .0;
        let operator = create_key(&store, "ops", Role::Operator, now)
            .await
            .unwrap()
            .0;
        let analyst = create_key(&store, "ana", Role::Analyst, now)
            .await
            .unwrap()
            .0;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(waihu_server::serve(
            listener,
            store.clone(),
            cfg,
            async move {
                let _ = rx.await;
            },
        ));
        Server {
            addr,
            store,
            admin,
            operator,
            analyst,
            client: reqwest::Client::new(),
            stop: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, key: &str, path: &str) -> (u16, serde_json::Value) {
        let r = self
            .client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut rq = self.client.request(method, self.url(path)).bearer_auth(key);
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let r = rq.send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

/// One attempt: started at `at` (callee local time `local`), ended `dur` s later.
pub fn attempt(
    call: &str,
    campaign: i64,
    at: &str,
    local: &str,
    outcome: CallOutcome,
    dur: f64,
) -> Vec<Event> {
    let at = t(at);
    vec![
        Event {
            at,
            customer: Some(CustomerId(1)),
            campaign: Some(CampaignId(campaign)),
            call: Some(call.into()),
            kind: EventKind::AttemptStarted {
                phone: PhoneIndex("00".into()),
                tz: "Asia/Shanghai".into(),
                local_time: local.into(),
                caller_id: None,
                channel: "voice".into(),
            },
        },
        Event {
            at: at + chrono::Duration::milliseconds((dur * 1000.0) as i64),
            customer: Some(CustomerId(1)),
            campaign: Some(CampaignId(campaign)),
            call: Some(call.into()),
            kind: EventKind::AttemptEnded {
                outcome,
                sip_status: None,
                duration_s: dur,
            },
        },
    ]
}

pub fn other(call: &str, campaign: i64, at: &str, kind: EventKind) -> Event {
    Event {
        at: t(at),
        customer: Some(CustomerId(1)),
        campaign: Some(CampaignId(campaign)),
        call: Some(call.into()),
        kind,
    }
}

/// A known month: day 1 (2026-11-02, a Monday) and day 2 (2026-11-03).
///
/// Day 1, campaign 1: 10 attempts — answered ×4 (60, 120, 30, 90 s), voicemail ×1 (20 s),
/// no_answer ×3, busy ×2; 1 abandoned; conversations confirmed ×2 (level A, B), refused ×1 (A).
/// Day 2, campaign 2: 5 attempts — answered ×1 (45 s), powered_off ×4.
pub fn known_events() -> Vec<Event> {
    use CallOutcome::*;
    let mut v = Vec::new();
    let d1: [(CallOutcome, f64); 10] = [
        (Answered, 60.0),
        (Answered, 120.0),
        (Answered, 30.0),
        (Answered, 90.0),
        (Voicemail, 20.0),
        (NoAnswer, 30.0),
        (NoAnswer, 30.0),
        (NoAnswer, 30.0),
        (Busy, 0.0),
        (Busy, 0.0),
    ];
    for (i, (o, d)) in d1.iter().enumerate() {
        // 01:00 UTC = 09:00 in Shanghai (Monday); the first six in hour 9, the rest in hour 10.
        let (utc_h, loc_h) = if i < 6 { (1, 9) } else { (2, 10) };
        v.extend(attempt(
            &format!("k{i}"),
            1,
            &format!("2026-11-02T{utc_h:02}:{:02}:00Z", i * 5),
            &format!("2026-11-02T{loc_h:02}:{:02}:00+08:00", i * 5),
            *o,
            *d,
        ));
    }
    v.push(other(
        "k0",
        1,
        "2026-11-02T01:01:00Z",
        EventKind::CallAbandoned {
            phone: PhoneIndex("00".into()),
        },
    ));
    for (call, out, lvl) in [
        ("k1", "confirmed", "A"),
        ("k2", "confirmed", "B"),
        ("k3", "refused", "A"),
    ] {
        v.push(other(
            call,
            1,
            "2026-11-02T01:30:00Z",
            EventKind::ConversationEnded {
                outcome: out.into(),
                level: Some(lvl.into()),
                path: vec![],
            },
        ));
    }
    let d2: [(CallOutcome, f64); 5] = [
        (Answered, 45.0),
        (PoweredOff, 0.0),
        (PoweredOff, 0.0),
        (PoweredOff, 0.0),
        (PoweredOff, 0.0),
    ];
    for (i, (o, d)) in d2.iter().enumerate() {
        // 12:00 UTC on Tuesday = 20:00 in Shanghai.
        v.extend(attempt(
            &format!("m{i}"),
            2,
            &format!("2026-11-03T12:{:02}:00Z", i * 5),
            &format!("2026-11-03T20:{:02}:00+08:00", i * 5),
            *o,
            *d,
        ));
    }
    v
}

/// A stereo 16-bit 8 kHz WAV of `ms` milliseconds: a tone on the left
/// (callee), another on the right (bot), as the runtime records calls.
pub fn stereo_wav(ms: u32, left_hz: f32, right_hz: f32) -> Vec<u8> {
    let frames = 8 * ms;
    let data_len = frames * 4;
    let mut v = Vec::with_capacity(44 + data_len as usize);
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes()); // PCM
    v.extend_from_slice(&2u16.to_le_bytes()); // stereo
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&32000u32.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let t = i as f32 / 8000.0;
        for hz in [left_hz, right_hz] {
            let s = ((t * hz * std::f32::consts::TAU).sin() * 6000.0) as i16;
            v.extend_from_slice(&s.to_le_bytes());
        }
    }
    v
}

/// What [`fill_calls`] stored.
pub struct CallsFixture {
    pub campaign: CampaignId,
    pub script: &'static str,
    /// Finished calls, oldest first.
    pub finished: Vec<String>,
    /// Calls with a recording, and the WAV stored for each.
    pub recordings: Vec<(String, Vec<u8>)>,
    pub live: Vec<String>,
}

pub const SCRIPT: &str = "order_confirmation.zh";

/// The paths of the fixture's finished calls, with their business outcome:
/// 10 calls; `offer` is entered by 8 and 3 hang up there (the largest drop,
/// 37.5%); 1 of 9 stops at `verify_address` without an outcome.
pub fn fixture_paths() -> Vec<(Vec<&'static str>, Option<&'static str>)> {
    let full = vec![
        "opening",
        "verify_address",
        "verify_time",
        "offer_check",
        "offer",
        "confirm_coupon",
    ];
    let mut v = Vec::new();
    for _ in 0..4 {
        v.push((full.clone(), Some("confirmed")));
    }
    for _ in 0..3 {
        v.push((full[..5].to_vec(), Some("hangup")));
    }
    v.push((vec!["opening", "verify_address"], None));
    v.push((
        vec![
            "opening",
            "verify_address",
            "verify_time",
            "offer_check",
            "offer",
            "objection",
            "confirm_plain",
        ],
        Some("confirmed"),
    ));
    v.push((vec!["opening", "retain", "cancelled"], Some("cancelled")));
    v
}

/// Fill the store like a demo run would, through the store's call API:
/// a campaign from examples/campaign.yaml, the zh order-confirmation script
/// under data_dir/scripts (its knowledge document under data_dir/knowledge),
/// 10 finished calls with transcripts (bot and callee turns, intents,
/// emotions, voice features), 3 recordings, 2 live calls.
pub async fn fill_calls(store: &Store) -> CallsFixture {
    use waihu_store::{CallFinish, CallStart, Speaker, TurnRecord, VoiceFeatures};
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples");
    let spec = std::fs::read_to_string(format!("{root}/campaign.yaml")).unwrap();
    let campaign = store
        .campaign_create("double11-care", &spec, "test", t("2026-11-01T00:00:00Z"))
        .await
        .unwrap();
    let scripts = store.data_dir().join("scripts");
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::copy(
        format!("{root}/scripts/{SCRIPT}.yaml"),
        scripts.join(format!("{SCRIPT}.yaml")),
    )
    .unwrap();
    // Its `knowledge: {file: ../knowledge/air_purifier.zh.md}`, where a run's copy finds it.
    let knowledge = store.data_dir().join("knowledge");
    std::fs::create_dir_all(&knowledge).unwrap();
    std::fs::copy(
        format!("{root}/knowledge/air_purifier.zh.md"),
        knowledge.join("air_purifier.zh.md"),
    )
    .unwrap();
    let t0 = t("2026-11-02T02:00:00Z");
    let mut fx = CallsFixture {
        campaign,
        script: SCRIPT,
        finished: Vec::new(),
        recordings: Vec::new(),
        live: Vec::new(),
    };
    for (i, (path, outcome)) in fixture_paths().into_iter().enumerate() {
        let call_id = format!("call-{i:02}@waihu");
        let cid = waihu_core::CallId(call_id.clone());
        let at = t0 + chrono::Duration::minutes(i as i64 * 7);
        store
            .call_started(&CallStart {
                call_id: cid.clone(),
                campaign: Some(campaign),
                customer: Some(CustomerId(1 + (i % 3) as i64)),
                script: SCRIPT.into(),
                lang: "zh".into(),
                at,
            })
            .await
            .unwrap();
        store
            .call_progress(&cid, "ringing", None, None, at)
            .await
            .unwrap();
        store
            .call_progress(
                &cid,
                "talking",
                Some(path[0]),
                None,
                at + chrono::Duration::seconds(4),
            )
            .await
            .unwrap();
        let mut seq = 0;
        for (k, state) in path.iter().enumerate() {
            let ts = at + chrono::Duration::seconds(5 + 8 * k as i64);
            let ms = 8000 * k as u64;
            store
                .call_turn(
                    &cid,
                    &TurnRecord {
                        seq,
                        speaker: Speaker::Bot,
                        state: state.to_string(),
                        at: ts,
                        start_ms: ms,
                        end_ms: ms + 3000,
                        text: format!("您好，这里是{state}环节"),
                        intent: None,
                        confidence: None,
                        emotion: None,
                        sentiment: None,
                        features: None,
                        barge_in: false,
                        latency_ms: Some(500.0 + 10.0 * k as f64),
                    },
                )
                .await
                .unwrap();
            let angry = *state == "offer" && outcome == Some("hangup");
            let intent = if angry {
                "ask_price"
            } else if *state == "retain" {
                "deny"
            } else {
                "affirm"
            };
            store
                .call_turn(
                    &cid,
                    &TurnRecord {
                        seq: seq + 1,
                        speaker: Speaker::Callee,
                        state: state.to_string(),
                        at: ts + chrono::Duration::seconds(4),
                        start_ms: ms + 3500,
                        end_ms: ms + 5500,
                        text: if angry {
                            "手续费怎么这么贵".into()
                        } else {
                            "好的，张伟收到".into()
                        },
                        intent: Some(intent.into()),
                        confidence: Some(0.9),
                        emotion: Some(if angry { "angry" } else { "calm" }.into()),
                        sentiment: Some(if angry { -0.7 } else { 0.4 }),
                        features: Some(VoiceFeatures {
                            rate_sps: if angry { 6.0 } else { 4.0 },
                            volume_dbfs: if angry { -12.0 } else { -24.0 },
                            pitch_hz: 190.0,
                            pause_ratio: if angry { 0.1 } else { 0.3 },
                        }),
                        barge_in: angry,
                        latency_ms: None,
                    },
                )
                .await
                .unwrap();
            seq += 2;
        }
        let recording = (i < 3).then(|| stereo_wav(400 + 100 * i as u32, 220.0, 440.0));
        if let Some(r) = &recording {
            fx.recordings.push((call_id.clone(), r.clone()));
        }
        store
            .call_finished(
                &cid,
                &CallFinish {
                    at: at + chrono::Duration::seconds(60),
                    outcome: CallOutcome::Answered,
                    sip_status: Some(200),
                    duration_s: 55.0,
                    business_outcome: outcome.map(String::from),
                    level: Some(
                        if outcome == Some("confirmed") {
                            "A"
                        } else {
                            "C"
                        }
                        .into(),
                    ),
                    path: path.iter().map(|s| s.to_string()).collect(),
                    // The opening's A/B variant alternates; the other states have one prompt.
                    path_variants: path
                        .iter()
                        .enumerate()
                        .map(|(k, _)| {
                            (k == 0)
                                .then(|| if i % 2 == 0 { "formal" } else { "short" }.to_string())
                        })
                        .collect(),
                    recording,
                    // Even calls carried RTCP from the peer; odd ones only our own counters.
                    quality: Some(waihu_store::CallQuality {
                        codec: Some("PCMA".into()),
                        packets_sent: 2750,
                        packets_received: 2748,
                        lost: 2 + i as u64,
                        late: 0,
                        jitter_ms: 1.5,
                        rtcp_sent: 11,
                        rtcp_received: if i % 2 == 0 { 10 } else { 0 },
                        peer_loss_pct: (i % 2 == 0).then_some(0.4),
                        peer_lost: (i % 2 == 0).then_some(3),
                        peer_jitter_ms: (i % 2 == 0).then_some(2.25),
                        rtt_ms: (i % 2 == 0).then_some(38.5),
                    }),
                },
            )
            .await
            .unwrap();
        fx.finished.push(call_id);
    }
    for (i, (status, node)) in [("talking", Some("verify_time")), ("ringing", None)]
        .into_iter()
        .enumerate()
    {
        let call_id = format!("live-{i}@waihu");
        let cid = waihu_core::CallId(call_id.clone());
        store
            .call_started(&CallStart {
                call_id: cid.clone(),
                campaign: Some(campaign),
                customer: Some(CustomerId(1 + i as i64)),
                script: SCRIPT.into(),
                lang: "zh".into(),
                at: t0 + chrono::Duration::hours(2),
            })
            .await
            .unwrap();
        store
            .call_progress(
                &cid,
                status,
                node,
                node.map(|_| "calm"),
                t0 + chrono::Duration::hours(2),
            )
            .await
            .unwrap();
        fx.live.push(call_id);
    }
    fx
}
