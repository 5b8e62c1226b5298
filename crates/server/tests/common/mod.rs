//! A real store in a temp dir, keys for every role, a real server on 127.0.0.1:0.
#![allow(dead_code)]
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
