//! A process killed mid-call leaves the call open in the store; the next start
//! closes it as `failed` with an `attempt_ended` event, so the attempt is not
//! lost and the caps and the compliance checker still count it.
use chrono::{TimeZone, Utc};
use waihu_core::{CallId, CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};
use waihu_privacy::MasterKey;
use waihu_store::{CallStart, Store};

#[tokio::test]
async fn calls_left_open_by_a_killed_process_are_closed_as_failed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with_key(dir.path(), &MasterKey::from_bytes([7; 32]))
        .await
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 14, 30, 0).unwrap();
    for (i, status) in ["ringing", "talking"].iter().enumerate() {
        let id = CallId(format!("c{i}"));
        store
            .call_started_with(
                &CallStart {
                    call_id: id.clone(),
                    campaign: Some(CampaignId(1)),
                    customer: Some(CustomerId(i as i64 + 1)),
                    script: "order_confirmation.en".into(),
                    lang: "en".into(),
                    at: t0,
                },
                &[Event {
                    at: t0,
                    customer: Some(CustomerId(i as i64 + 1)),
                    campaign: Some(CampaignId(1)),
                    call: Some(id.clone()),
                    kind: EventKind::AttemptStarted {
                        phone: PhoneIndex(format!("{i:032}")),
                        tz: "America/New_York".into(),
                        local_time: "2026-11-25T09:30:00-05:00".into(),
                        caller_id: None,
                        channel: "voice".into(),
                    },
                }],
            )
            .await
            .unwrap();
        store
            .call_progress(&id, status, Some("opening"), None, t0)
            .await
            .unwrap();
    }
    assert_eq!(store.calls_live().await.unwrap().len(), 2);

    let later = t0 + chrono::Duration::minutes(5);
    assert_eq!(waihu_dialer::reconcile(&store, later).await.unwrap(), 2);
    assert!(store.calls_live().await.unwrap().is_empty());
    let ended = store.events_of_type("attempt_ended", 0, 100).await.unwrap();
    assert_eq!(ended.len(), 2);
    for (_, e) in &ended {
        assert_eq!(e.at, later);
        assert!(matches!(
            e.kind,
            EventKind::AttemptEnded {
                outcome: CallOutcome::Failed,
                ..
            }
        ));
    }
    let c = store
        .call_detail(&CallId::from("c1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.summary.outcome.as_deref(), Some("failed"));
    // A second start finds nothing left to close.
    assert_eq!(waihu_dialer::reconcile(&store, later).await.unwrap(), 0);
    assert_eq!(
        store
            .events_of_type("attempt_ended", 0, 100)
            .await
            .unwrap()
            .len(),
        2
    );
}
