use super::*;
use crate::calls::funnel_steps;
use chrono::{Duration, TimeZone};
use waihu_core::{CallId, CallOutcome, CampaignId, CampaignState, CustomerId, Event, EventKind};

fn cid(s: &str) -> CallId {
    CallId::from(s)
}

fn st(s: &str) -> CampaignState {
    s.parse().unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 8, 0, 0).unwrap()
}

async fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &MasterKey::from_bytes([9; 32]))
        .await
        .unwrap();
    (dir, store)
}

pub(crate) fn start(id: &str, campaign: Option<CampaignId>, script: &str) -> CallStart {
    CallStart {
        call_id: id.into(),
        campaign,
        customer: None,
        script: script.into(),
        lang: "zh".into(),
        at: t0(),
    }
}

pub(crate) fn turn(
    seq: u32,
    speaker: Speaker,
    state: &str,
    text: &str,
    intent: Option<&str>,
) -> TurnRecord {
    TurnRecord {
        seq,
        speaker,
        state: state.into(),
        at: t0() + Duration::seconds(i64::from(seq) * 3),
        start_ms: u64::from(seq) * 3000,
        end_ms: u64::from(seq) * 3000 + 2000,
        text: text.into(),
        intent: intent.map(String::from),
        confidence: intent.map(|_| 0.9),
        emotion: (speaker == Speaker::Callee).then(|| "calm".to_string()),
        sentiment: None,
        features: (speaker == Speaker::Callee).then_some(VoiceFeatures {
            rate_sps: 4.0 + seq as f32,
            volume_dbfs: -20.0,
            pitch_hz: 180.0,
            pause_ratio: 0.25,
        }),
        barge_in: false,
        latency_ms: (speaker == Speaker::Bot).then_some(640.0),
    }
}

pub(crate) fn finish(
    path: &[&str],
    outcome: Option<&str>,
    recording: Option<Vec<u8>>,
) -> CallFinish {
    CallFinish {
        at: t0() + Duration::seconds(30),
        outcome: CallOutcome::Answered,
        sip_status: Some(200),
        duration_s: 30.0,
        business_outcome: outcome.map(String::from),
        level: Some("A".into()),
        path: path.iter().map(|s| s.to_string()).collect(),
        path_variants: Vec::new(),
        recording,
        quality: None,
    }
}

/// A small but valid 8 kHz mono WAV (a 440 Hz tone).
pub(crate) fn wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..800)
        .map(|i| ((i as f32 * 440.0 * std::f32::consts::TAU / 8000.0).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut v = Vec::new();
    v.extend_from_slice(b"RIFF");
    v.extend_from_slice(&(36 + data_len).to_le_bytes());
    v.extend_from_slice(b"WAVEfmt ");
    v.extend_from_slice(&16u32.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&8000u32.to_le_bytes());
    v.extend_from_slice(&16000u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&16u16.to_le_bytes());
    v.extend_from_slice(b"data");
    v.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        v.extend_from_slice(&s.to_le_bytes());
    }
    v
}

#[tokio::test]
async fn a_call_moves_live_to_ended_with_sealed_transcript_and_recording() {
    let (dir, store) = store().await;
    let camp = store
        .campaign_create("订单确认", "name: x\n", "test", t0())
        .await
        .unwrap();
    let s = start("call-1@host", Some(camp), "order_confirmation.zh");
    store.call_started(&s).await.unwrap();
    store.call_started(&s).await.unwrap(); // idempotent
    assert_eq!(store.calls_live().await.unwrap()[0].status, "dialing");
    store
        .call_progress(&cid("call-1@host"), "talking", Some("greet"), None, t0())
        .await
        .unwrap();
    let bad = store
        .call_progress(&cid("call-1@host"), "ended", None, None, t0())
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("call_finished"), "{bad}");
    assert!(store
        .call_progress(&cid("nope"), "talking", None, None, t0())
        .await
        .is_err());

    let turns = [
        turn(0, Speaker::Bot, "greet", "您好，请问是张先生吗？", None),
        turn(
            1,
            Speaker::Callee,
            "greet",
            "是我，我叫张伟",
            Some("affirm"),
        ),
        turn(2, Speaker::Bot, "confirm", "您的订单确认吗？", None),
        turn(3, Speaker::Callee, "confirm", "确认", Some("affirm")),
    ];
    for t in &turns {
        store.call_turn(&cid("call-1@host"), t).await.unwrap();
    }
    store
        .call_turn(&cid("call-1@host"), &turns[1])
        .await
        .unwrap(); // replay: no-op
    let live = store.calls_live().await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].node.as_deref(), Some("greet"));
    assert_eq!(live[0].emotion.as_deref(), Some("calm"));
    assert_eq!(live[0].turns, 4);

    let rec = wav();
    let f = finish(
        &["greet", "confirm", "done"],
        Some("confirmed"),
        Some(rec.clone()),
    );
    store.call_finished(&cid("call-1@host"), &f).await.unwrap();
    store.call_finished(&cid("call-1@host"), &f).await.unwrap(); // idempotent
    assert!(store.calls_live().await.unwrap().is_empty());

    let d = store
        .call_detail(&cid("call-1@host"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.summary.status, "ended");
    assert_eq!(d.summary.campaign, Some(camp));
    assert_eq!(d.summary.business_outcome.as_deref(), Some("confirmed"));
    assert_eq!(d.summary.node.as_deref(), Some("done"));
    assert!(d.summary.has_recording);
    assert_eq!(d.path, ["greet", "confirm", "done"]);
    assert_eq!(d.turns, turns);
    assert_eq!(
        store.call_recording(&cid("call-1@host")).await.unwrap(),
        Some(rec.clone())
    );
    assert!(store.call_detail(&cid("nope")).await.unwrap().is_none());
    assert_eq!(store.call_recording(&cid("nope")).await.unwrap(), None);

    // Only callee turns are events, and they carry no words.
    let evs = store.events_of_type("call_turn", 0, 100).await.unwrap();
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].1.campaign, Some(camp));
    assert!(
        matches!(&evs[1].1.kind, EventKind::CallTurn { seq: 3, state, intent, .. } if state == "confirm" && intent == "affirm")
    );
    let funnel = store
        .funnel(Some(camp), "order_confirmation.zh")
        .await
        .unwrap();
    let names: Vec<_> = funnel.iter().map(|r| r.state.as_str()).collect();
    assert_eq!(names, ["greet", "confirm", "done"]);
    assert_eq!(
        (funnel[2].entered, funnel[2].completed, funnel[2].dropped),
        (1, 1, 0)
    );
    let heat = store.intent_heatmap(None).await.unwrap();
    assert_eq!(
        heat,
        [
            ("confirm".to_string(), "affirm".to_string(), 1),
            ("greet".to_string(), "affirm".to_string(), 1)
        ]
    );
    store.close().await;

    // Neither the database nor the recording file holds the words or the audio in clear.
    let mut raw = std::fs::read(dir.path().join(DB_FILE)).unwrap();
    if let Ok(wal) = std::fs::read(dir.path().join(format!("{DB_FILE}-wal"))) {
        raw.extend(wal);
    }
    for needle in ["张伟", "确认吗"] {
        assert!(
            !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "{needle} in clear"
        );
    }
    let files: Vec<_> = std::fs::read_dir(dir.path().join(RECORDINGS_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let sealed = std::fs::read(&files[0]).unwrap();
    assert!(!sealed.windows(4).any(|w| w == b"RIFF"));
    assert!(!sealed.windows(64).any(|w| w == &rec[100..164]));
}

#[tokio::test]
async fn events_given_with_start_and_finish_are_appended_once_in_the_same_transaction() {
    let (_dir, store) = store().await;
    let ev = |kind: EventKind| Event {
        at: t0(),
        customer: None,
        campaign: None,
        call: Some("e1".into()),
        kind,
    };
    let started = [ev(EventKind::CampaignState {
        state: "marker-start".into(),
        actor: None,
    })];
    let s = start("e1", None, "s");
    store.call_started_with(&s, &started).await.unwrap();
    store.call_started_with(&s, &started).await.unwrap();
    let ended = [ev(EventKind::AttemptEnded {
        outcome: CallOutcome::Answered,
        sip_status: Some(200),
        duration_s: 30.0,
    })];
    let f = finish(&["a"], Some("confirmed"), None);
    store
        .call_finished_with(&cid("e1"), &f, &ended)
        .await
        .unwrap();
    store
        .call_finished_with(&cid("e1"), &f, &ended)
        .await
        .unwrap();
    let counts: std::collections::HashMap<_, _> =
        store.event_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts["campaign_state"], 1);
    assert_eq!(counts["attempt_ended"], 1);
    // An unknown call appends nothing either.
    assert!(store
        .call_finished_with(&cid("nope"), &f, &ended)
        .await
        .is_err());
    assert_eq!(
        store
            .events_of_type("attempt_ended", 0, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn turns_and_finish_of_an_unknown_call_are_refused() {
    let (_dir, store) = store().await;
    let e = store
        .call_turn(&cid("ghost"), &turn(0, Speaker::Callee, "a", "x", None))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("call_started"), "{e}");
    assert!(store
        .call_finished(&cid("ghost"), &finish(&["a"], None, None))
        .await
        .is_err());
}

#[test]
fn funnel_steps_count_each_state_once_and_classify_the_end() {
    let p: Vec<String> = ["a", "b", "a", "c"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        funnel_steps(&p, Some("confirmed")),
        [
            ("a", 0, true, false, false),
            ("b", 1, true, false, false),
            ("c", 3, false, false, true)
        ]
    );
    // Ending where it has been before: that state is the terminal one.
    let p: Vec<String> = ["a", "b", "a"].iter().map(|s| s.to_string()).collect();
    assert_eq!(
        funnel_steps(&p, Some("hangup")),
        [("a", 0, false, true, false), ("b", 1, true, false, false)]
    );
    assert_eq!(funnel_steps(&p, None)[0], ("a", 0, false, true, false));
    assert!(funnel_steps(&[], None).is_empty());
}

/// Deterministic pseudo-random numbers (no extra dependency).
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test]
async fn rollups_equal_the_raw_tables_over_random_calls() {
    let (_dir, store) = store().await;
    let c1 = store.campaign_create("one", "a", "t", t0()).await.unwrap();
    let c2 = store.campaign_create("two", "b", "t", t0()).await.unwrap();
    let states = ["greet", "verify", "offer", "fee", "confirm", "bye"];
    let intents = ["affirm", "deny", "ask_fee", "busy"];
    let outcomes = [None, Some("hangup"), Some("confirmed"), Some("refused")];
    let mut rng = Lcg(42);
    let mut batch = Vec::new();
    for i in 0..400 {
        let campaign = [Some(c1), Some(c2), None][rng.below(3) as usize];
        let script = ["s1", "s2"][rng.below(2) as usize];
        let len = rng.below(7) as usize;
        let path: Vec<&str> = (0..len)
            .map(|k| {
                if k == 0 {
                    "greet"
                } else {
                    states[rng.below(6) as usize]
                }
            })
            .collect();
        let turns: Vec<TurnRecord> = path
            .iter()
            .enumerate()
            .map(|(k, s)| {
                let intent = (rng.below(5) > 0).then(|| intents[rng.below(4) as usize]);
                turn(k as u32, Speaker::Callee, s, "嗯", intent)
            })
            .collect();
        let outcome = outcomes[rng.below(4) as usize];
        batch.push((
            start(&format!("c{i}"), campaign, script),
            turns,
            finish(&path, outcome, None),
        ));
    }
    // Half through the bulk loader, half through the one-call-at-a-time API.
    let (bulk, single) = batch.split_at(200);
    store.calls_bulk(bulk, 64).await.unwrap();
    for (s, turns, f) in single {
        store.call_started(s).await.unwrap();
        for t in turns {
            store.call_turn(&s.call_id, t).await.unwrap();
        }
        store.call_finished(&s.call_id, f).await.unwrap();
    }
    for campaign in [None, Some(c1), Some(c2)] {
        for script in ["s1", "s2"] {
            let a = store.funnel(campaign, script).await.unwrap();
            let b = store.funnel_from_raw(campaign, script).await.unwrap();
            assert_eq!(a, b, "{campaign:?} {script}");
            for r in &a {
                assert_eq!(r.entered, r.continued + r.dropped + r.completed);
            }
            assert_eq!(a[0].state, "greet");
        }
        assert_eq!(
            store.intent_heatmap(campaign).await.unwrap(),
            store.intent_heatmap_from_raw(campaign).await.unwrap()
        );
    }
    let total: u64 = store
        .funnel_scripts(None)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    let with_path = batch.iter().filter(|(_, _, f)| !f.path.is_empty()).count();
    assert_eq!(total as usize, with_path);
    assert_eq!(store.calls_count(None).await.unwrap(), 400);

    // Paging newest first covers every call once.
    let mut seen = Vec::new();
    let mut before: Option<CallId> = None;
    loop {
        let page = store
            .calls_list(Some(c1), 50, before.as_ref())
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|c| c.call_id.clone());
        seen.extend(page.into_iter().map(|c| c.call_id));
    }
    let want = batch
        .iter()
        .filter(|(s, ..)| s.campaign == Some(c1))
        .count();
    assert_eq!(seen.len(), want);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), want);
}

#[tokio::test]
async fn voice_features_average_by_segment_and_hour() {
    let (_dir, store) = store().await;
    let mut s = start("v1", None, "s");
    s.customer = Some(CustomerId(99)); // not a stored customer: no segment
    store.call_started(&s).await.unwrap();
    store
        .call_turn(
            &cid("v1"),
            &turn(1, Speaker::Callee, "a", "x", Some("affirm")),
        )
        .await
        .unwrap();
    store
        .call_turn(
            &cid("v1"),
            &turn(3, Speaker::Callee, "a", "y", Some("deny")),
        )
        .await
        .unwrap();
    let mut no_feat = turn(5, Speaker::Callee, "a", "z", None);
    no_feat.features = None;
    no_feat.emotion = Some("angry".into());
    no_feat.sentiment = Some(-0.6);
    store.call_turn(&cid("v1"), &no_feat).await.unwrap();
    store
        .call_turn(&cid("v1"), &turn(6, Speaker::Bot, "a", "bot", None))
        .await
        .unwrap();
    let rows = store.voice_features(None).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let seg = &rows[0];
    assert_eq!((seg.by.as_str(), seg.key.as_str()), ("segment", ""));
    assert_eq!((seg.turns, seg.with_features), (3, 2));
    assert_eq!(seg.avg_rate_sps, Some(6.0)); // (5 + 7) / 2
    assert_eq!(seg.avg_pause_ratio, Some(0.25));
    assert_eq!(seg.emotions["calm"], 2);
    assert_eq!(seg.emotions["angry"], 1);
    // One turn had a (negative) sentiment: satisfaction 0 of 1.
    assert_eq!((seg.with_sentiment, seg.positive, seg.negative), (1, 0, 1));
    assert_eq!(seg.avg_sentiment, Some(-0.6000000238418579));
    assert_eq!(seg.satisfaction, Some(0.0));
    assert_eq!(rows[1].by, "hour");
    assert_eq!(rows[1].key, "2026-11-24T08");
}

#[tokio::test]
async fn campaigns_are_idempotent_and_move_only_along_allowed_transitions() {
    let (_dir, store) = store().await;
    let id = store
        .campaign_create("c", "spec: 1\n", "alice", t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .campaign_create("c", "spec: 1\n", "alice", t0())
            .await
            .unwrap(),
        id
    );
    assert_eq!(
        store
            .campaign_create("c", "spec: 2\n", "bob", t0())
            .await
            .unwrap(),
        id
    );
    let row = store.campaign_get(id).await.unwrap().unwrap();
    assert_eq!(
        (row.spec.as_str(), row.state.as_str()),
        ("spec: 2\n", "created")
    );
    assert_eq!(row.updated_by.as_deref(), Some("bob"));
    assert_eq!(store.campaign_by_name("c").await.unwrap().unwrap().id, id);
    assert!(store.campaign_by_name("x").await.unwrap().is_none());

    let e = store
        .campaign_set_state(id, st("paused"), "op", t0())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Transition { from, to, .. } if from == "created" && to == "paused"),
        "{e}"
    );
    assert!(e.to_string().contains("running"), "{e}");
    for s in [
        "running", "running", "paused", "running", "finished", "running", "stopped",
    ] {
        store
            .campaign_set_state(id, st(s), "op", t0())
            .await
            .unwrap();
    }
    let e = store
        .campaign_set_state(id, st("running"), "op", t0())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("final"), "{e}");
    assert!("bogus".parse::<CampaignState>().is_err());
    assert!(store
        .campaign_set_state(CampaignId(77), st("running"), "op", t0())
        .await
        .is_err());
    let logged = store
        .events_of_type("campaign_state", 0, 100)
        .await
        .unwrap();
    // Stamped with the time the caller gave (the campaign's clock), not the store's.
    assert!(logged.iter().all(|(_, e)| e.at == t0()));
    let states: Vec<String> = logged
        .into_iter()
        .map(|(_, e)| match e.kind {
            EventKind::CampaignState { state, .. } => state,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(
        states,
        ["created", "running", "paused", "running", "finished", "running", "stopped"]
    );
    assert_eq!(store.campaigns().await.unwrap().len(), 1);
}
