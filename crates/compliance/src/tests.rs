use super::*;
use chrono::TimeZone;
use waihu_core::{CampaignId, CustomerId, PhoneIndex};

const RULES: &str = r#"
name: t
id: 7
timezone: Asia/Shanghai
active: {from: 2026-11-01, to: 2026-11-30}
windows:
  default: ["09:00-12:00", "14:00-20:00"]
  sun: []
holidays: [2026-11-11]
caps: {per_number_per_day: 2, per_number_per_week: 3, max_attempts: 4}
caller_ids:
  pool:
    - {number: "+861058880001", daily_cap: 2}
pacing: {mode: predictive, target_abandon_rate: 0.03}
extra_field_the_checker_ignores: 1
"#;

fn rules() -> Vec<CampaignRules> {
    vec![CampaignRules::from_yaml("t.yaml", RULES).unwrap()]
}

fn attempt_in(at: DateTime<Utc>, phone: &str, tz: &str, caller: Option<&str>) -> Event {
    let z: Tz = tz.parse().unwrap();
    Event {
        at,
        customer: Some(CustomerId(1)),
        campaign: Some(CampaignId(7)),
        call: Some(format!("c{}", at.timestamp()).into()),
        kind: EventKind::AttemptStarted {
            phone: PhoneIndex(phone.into()),
            tz: tz.into(),
            local_time: at.with_timezone(&z).to_rfc3339(),
            caller_id: caller.map(str::to_string),
            channel: "voice".into(),
        },
    }
}

/// Shanghai local wall-clock time → UTC.
fn sh(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, h, min, 0)
        .unwrap()
        .with_timezone(&Utc)
}

fn attempt(at: DateTime<Utc>, phone: &str) -> Event {
    attempt_in(at, phone, "Asia/Shanghai", None)
}

fn ended(at: DateTime<Utc>, outcome: CallOutcome) -> Event {
    Event {
        at,
        customer: Some(CustomerId(1)),
        campaign: Some(CampaignId(7)),
        call: None,
        kind: EventKind::AttemptEnded {
            outcome,
            sip_status: None,
            duration_s: 1.0,
        },
    }
}

#[test]
fn clean_log_passes() {
    // Mon 2026-11-02: two calls in windows, different days for the cap.
    let evs = vec![
        attempt(sh(2026, 11, 2, 9, 0), "a"),
        ended(sh(2026, 11, 2, 9, 1), CallOutcome::NoAnswer),
        attempt(sh(2026, 11, 2, 19, 59), "a"),
        attempt(sh(2026, 11, 3, 11, 59), "a"),
        attempt(sh(2026, 11, 2, 14, 0), "b"),
        ended(sh(2026, 11, 2, 14, 1), CallOutcome::Answered),
    ];
    let r = check(rules(), evs);
    assert!(r.ok(), "{}", render_text(&r));
    assert_eq!(r.attempts, 4);
    assert_eq!(r.campaigns[0].answered, 1);
}

#[test]
fn every_violation_kind_is_caught() {
    let mut evs = vec![
        // Window: 12:30 is in the lunch gap; 20:00 is the exclusive end.
        attempt(sh(2026, 11, 2, 12, 30), "w1"),
        attempt(sh(2026, 11, 2, 20, 0), "w2"),
        // Sunday has no window.
        attempt(sh(2026, 11, 8, 10, 0), "w3"),
        // Holiday.
        attempt(sh(2026, 11, 11, 10, 0), "h1"),
        // Before the active dates.
        attempt(sh(2026, 10, 30, 10, 0), "i1"),
        // Daily cap 2: third attempt on the same local day.
        attempt(sh(2026, 11, 3, 9, 0), "d"),
        attempt(sh(2026, 11, 3, 10, 0), "d"),
        attempt(sh(2026, 11, 3, 15, 0), "d"),
        // Weekly cap 3 (ISO week Mon 11-02 .. Sun 11-08), one per day.
        attempt(sh(2026, 11, 2, 9, 0), "k"),
        attempt(sh(2026, 11, 3, 9, 0), "k"),
        attempt(sh(2026, 11, 4, 9, 0), "k"),
        attempt(sh(2026, 11, 5, 9, 0), "k"),
        // Max attempts 4 over two weeks (caps respected).
        attempt(sh(2026, 11, 2, 9, 0), "m"),
        attempt(sh(2026, 11, 3, 9, 0), "m"),
        attempt(sh(2026, 11, 9, 9, 0), "m"),
        attempt(sh(2026, 11, 10, 9, 0), "m"),
        attempt(sh(2026, 11, 12, 9, 0), "m"),
        // DNC: listed at 09:00, dialled at 10:00; a removal later makes the next call fine.
        Event {
            at: sh(2026, 11, 2, 9, 0),
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::DncAdded {
                phone: PhoneIndex("n".into()),
                scope: "global".into(),
                reason: "x".into(),
            },
        },
        attempt(sh(2026, 11, 2, 10, 0), "n"),
        Event {
            at: sh(2026, 11, 3, 9, 0),
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::DncRemoved {
                phone: PhoneIndex("n".into()),
                scope: "global".into(),
            },
        },
        attempt(sh(2026, 11, 3, 10, 0), "n"),
        // Caller ID cap 2 per day.
        attempt_in(
            sh(2026, 11, 2, 9, 0),
            "c1",
            "Asia/Shanghai",
            Some("+861058880001"),
        ),
        attempt_in(
            sh(2026, 11, 2, 9, 1),
            "c2",
            "Asia/Shanghai",
            Some("+861058880001"),
        ),
        attempt_in(
            sh(2026, 11, 2, 9, 2),
            "c3",
            "Asia/Shanghai",
            Some("+861058880001"),
        ),
        // US callee: 21:30 New York is past the legal bound (and the window).
        attempt_in(
            chrono_tz::America::New_York
                .with_ymd_and_hms(2026, 11, 2, 21, 30, 0)
                .unwrap()
                .to_utc(),
            "u",
            "America/New_York",
            None,
        ),
        // Unknown zone.
        attempt_in(sh(2026, 11, 2, 10, 0), "z", "UTC", None),
    ];
    if let EventKind::AttemptStarted { tz, .. } = &mut evs.last_mut().unwrap().kind {
        *tz = "Mars/Olympus".into();
    }
    // Logged local time that lies (claims 10:00 when it was 23:00).
    let mut lying = attempt(sh(2026, 11, 2, 23, 0), "l");
    if let EventKind::AttemptStarted { local_time, .. } = &mut lying.kind {
        *local_time = "2026-11-02T10:00:00+08:00".into();
    }
    evs.push(lying);
    // Abandon rate: 1 of 10 answered.
    for i in 0..10 {
        evs.push(ended(sh(2026, 11, 4, 10, i), CallOutcome::Answered));
    }
    evs.push(Event {
        at: sh(2026, 11, 4, 10, 0),
        customer: None,
        campaign: Some(CampaignId(7)),
        call: None,
        kind: EventKind::CallAbandoned {
            phone: PhoneIndex("q".into()),
        },
    });
    let r = check(rules(), evs);
    let n = |k| r.by_kind.get(&k).copied().unwrap_or(0);
    // w1, w2, w3, u (21:30 NY), l (23:00).
    assert_eq!(n(ViolationKind::OutsideWindow), 5, "{}", render_text(&r));
    assert_eq!(n(ViolationKind::Holiday), 1);
    assert_eq!(n(ViolationKind::Inactive), 1);
    assert_eq!(n(ViolationKind::DailyCap), 1);
    assert_eq!(n(ViolationKind::WeeklyCap), 1);
    assert_eq!(n(ViolationKind::MaxAttempts), 1);
    assert_eq!(n(ViolationKind::Dnc), 1);
    assert_eq!(n(ViolationKind::CallerIdCap), 1);
    assert_eq!(n(ViolationKind::LegalBound), 1);
    assert_eq!(n(ViolationKind::BadTimeZone), 1);
    assert_eq!(n(ViolationKind::LocalTimeMismatch), 1);
    assert_eq!(n(ViolationKind::AbandonRate), 1);
    assert!(!r.ok());
    let text = render_text(&r);
    assert!(text.contains("FAIL") && text.contains("弃呼率"), "{text}");
    let json = serde_json::to_string(&r).unwrap();
    assert!(json.contains("\"dnc\""), "{json}");
}

#[test]
fn dst_edges_in_new_york() {
    let us = r#"
name: us
id: 7
timezone: America/New_York
country: US
windows: {default: ["08:00-21:00"]}
"#;
    let rules = vec![CampaignRules::from_yaml("us.yaml", us).unwrap()];
    let ny = chrono_tz::America::New_York;
    // 2026-03-08: clocks jump 02:00 → 03:00. 08:00 EDT is 12:00 UTC (EST would be 13:00).
    let ok = ny.with_ymd_and_hms(2026, 3, 8, 8, 0, 0).unwrap().to_utc();
    assert_eq!(ok, Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap());
    let early = Utc.with_ymd_and_hms(2026, 3, 8, 11, 59, 0).unwrap(); // 07:59 EDT
                                                                      // 2026-11-01: back to EST. 20:59 EST is 01:59 UTC next day; 21:00 is 02:00.
    let late_ok = Utc.with_ymd_and_hms(2026, 11, 2, 1, 59, 0).unwrap();
    let late_bad = Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap();
    let evs = vec![
        attempt_in(ok, "a", "America/New_York", None),
        attempt_in(early, "b", "America/New_York", None),
        attempt_in(late_ok, "c", "America/New_York", None),
        attempt_in(late_bad, "d", "America/New_York", None),
    ];
    let r = check(rules, evs);
    let bad: Vec<_> = r.violations.iter().map(|v| (v.at, v.kind)).collect();
    assert_eq!(
        bad,
        vec![
            (early, ViolationKind::OutsideWindow),
            (early, ViolationKind::LegalBound),
            (late_bad, ViolationKind::OutsideWindow),
            (late_bad, ViolationKind::LegalBound),
        ]
    );
}

#[test]
fn unknown_campaign_uses_legal_bound_and_warns() {
    let mut e = attempt(sh(2026, 11, 2, 7, 0), "x");
    e.campaign = Some(CampaignId(99));
    let r = check(rules(), vec![e]);
    assert_eq!(r.by_kind.get(&ViolationKind::OutsideWindow), Some(&1));
    assert_eq!(r.warnings.len(), 1);
}

#[test]
fn bad_rules_file_is_an_error_with_field() {
    let e = CampaignRules::from_yaml("x.yaml", "name: x\nwindows: {funday: []}\n").unwrap_err();
    assert!(e.to_string().contains("windows.funday"), "{e}");
    let e = CampaignRules::from_yaml("x.yaml", "name: [").unwrap_err();
    assert!(e.to_string().starts_with("x.yaml"), "{e}");
}

proptest::proptest! {
    #[test]
    fn rules_parser_never_panics(s in "\\PC{0,300}") {
        let _ = CampaignRules::from_yaml("fuzz.yaml", &s);
    }

    #[test]
    fn checker_never_panics_on_odd_events(
        tz in "[A-Za-z/_+0-9-]{0,24}",
        local in "\\PC{0,40}",
        secs in -4_000_000_000i64..8_000_000_000i64,
        campaign in proptest::option::of(-3i64..10),
        phone in "[0-9a-f]{0,8}",
    ) {
        let at = DateTime::from_timestamp(secs, 0).unwrap_or_default();
        let e = Event {
            at,
            customer: None,
            campaign: campaign.map(CampaignId),
            call: None,
            kind: EventKind::AttemptStarted {
                phone: PhoneIndex(phone),
                tz,
                local_time: local,
                caller_id: Some("+861058880001".into()),
                channel: "voice".into(),
            },
        };
        let r = check(rules(), vec![e.clone(), e]);
        proptest::prop_assert_eq!(r.attempts, 2);
    }
}

fn imported(at: DateTime<Utc>, customer: i64, consent: Option<bool>, created: bool) -> Event {
    Event {
        at,
        customer: Some(CustomerId(customer)),
        campaign: None,
        call: None,
        kind: if created {
            EventKind::CustomerCreated {
                source: "c.csv".into(),
                consent,
            }
        } else {
            EventKind::CustomerUpdated {
                source: "c.csv".into(),
                consent,
            }
        },
    }
}

#[test]
fn no_consent_is_a_violation_when_the_campaign_requires_it() {
    let required = format!("{RULES}consent: {{required: true}}\n");
    let rules = || vec![CampaignRules::from_yaml("t.yaml", &required).unwrap()];
    let with = |customer: i64, mut e: Event| {
        e.customer = Some(CustomerId(customer));
        e
    };
    let t = sh(2026, 11, 2, 9, 0);
    let evs = vec![
        imported(t, 1, Some(true), true),
        imported(t, 2, Some(false), true),
        imported(t, 3, None, true),
        // Customer 4 said no, then yes on a re-import; a re-import without the
        // column keeps the yes.
        imported(t, 4, Some(false), true),
        imported(t + chrono::Duration::minutes(1), 4, Some(true), false),
        imported(t + chrono::Duration::minutes(2), 4, None, false),
        with(1, attempt(t + chrono::Duration::minutes(10), "p1")),
        with(2, attempt(t + chrono::Duration::minutes(11), "p2")),
        with(3, attempt(t + chrono::Duration::minutes(12), "p3")),
        with(4, attempt(t + chrono::Duration::minutes(13), "p4")),
    ];
    let r = check(rules(), evs.clone());
    assert_eq!(
        r.by_kind.get(&ViolationKind::NoConsent),
        Some(&2),
        "{}",
        render_text(&r)
    );
    let who: Vec<Option<i64>> = r
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::NoConsent)
        .map(|v| v.customer)
        .collect();
    assert_eq!(who, [Some(2), Some(3)]);
    assert_eq!(
        serde_json::to_value(ViolationKind::NoConsent).unwrap(),
        "no_consent"
    );
    // The same log under rules without the requirement is clean.
    let r = check(self::rules(), evs);
    assert!(r.ok(), "{}", render_text(&r));
}

fn message_in(at: DateTime<Utc>, id: i64, phone: &str, tz: &str, campaign: i64) -> Event {
    let z: Tz = tz.parse().unwrap();
    Event {
        at,
        customer: Some(CustomerId(1)),
        campaign: Some(CampaignId(campaign)),
        call: None,
        kind: EventKind::MessageSubmitted {
            message: id,
            phone: PhoneIndex(phone.into()),
            tz: tz.into(),
            local_time: at.with_timezone(&z).to_rfc3339(),
            channel: "sms".into(),
            template: "coupon".into(),
        },
    }
}

fn message(at: DateTime<Utc>, id: i64, phone: &str) -> Event {
    message_in(at, id, phone, "Asia/Shanghai", 7)
}

const MESSAGE_RULES: &str = r#"
name: m
id: 8
timezone: Asia/Shanghai
messages:
  quiet_hours: ["20:00-09:00", "12:00-13:00"]
  per_number_per_day: 1
  per_number_per_week: 2
"#;

#[test]
fn a_clean_message_log_has_no_violations() {
    let rules = vec![
        CampaignRules::from_yaml("t.yaml", RULES).unwrap(),
        CampaignRules::from_yaml("m.yaml", MESSAGE_RULES).unwrap(),
    ];
    let evs = vec![
        // Campaign 7 has the defaults: quiet 21:00-08:00, 2 a day, 5 a week.
        message(sh(2026, 11, 2, 8, 0), 1, "a"),
        message(sh(2026, 11, 2, 20, 59), 2, "a"),
        message(sh(2026, 11, 3, 10, 0), 3, "a"),
        message(sh(2026, 11, 4, 10, 0), 4, "a"),
        message(sh(2026, 11, 5, 10, 0), 5, "a"),
        // A new ISO week.
        message(sh(2026, 11, 9, 10, 0), 6, "a"),
        // The same message logged twice counts once.
        message(sh(2026, 11, 9, 10, 0), 6, "a"),
        // 10:00 in New York is 23:00 in Shanghai: the recipient's zone decides.
        message_in(sh(2026, 11, 2, 23, 0), 7, "b", "America/New_York", 7),
        // Campaign 8's own rules: 09:00 and 13:00 are allowed, one a day.
        message_in(sh(2026, 11, 2, 9, 0), 8, "c", "Asia/Shanghai", 8),
        message_in(sh(2026, 11, 3, 13, 0), 9, "c", "Asia/Shanghai", 8),
    ];
    let r = check(rules, evs);
    assert!(r.ok(), "{}", render_text(&r));
    assert_eq!(r.messages, 9);
}

#[test]
fn messages_in_quiet_hours_over_the_caps_or_to_dnc_numbers_are_caught() {
    let rules = vec![
        CampaignRules::from_yaml("t.yaml", RULES).unwrap(),
        CampaignRules::from_yaml("m.yaml", MESSAGE_RULES).unwrap(),
    ];
    let evs = vec![
        // Quiet hours (default 21:00-08:00 in campaign 7): 21:00 and 07:59 local.
        message(sh(2026, 11, 2, 21, 0), 1, "q"),
        message(sh(2026, 11, 3, 7, 59), 2, "q2"),
        // 09:00 in Shanghai is 20:00 in New York the evening before: allowed for campaign
        // 7 (quiet from 21:00) ...
        message_in(sh(2026, 11, 4, 9, 0), 3, "ny", "America/New_York", 7),
        // ... but 10:00 Shanghai is 21:00 New York: quiet.
        message_in(sh(2026, 11, 5, 10, 0), 4, "ny2", "America/New_York", 7),
        // Campaign 8: lunch quiet span, and its one-a-day cap.
        message_in(sh(2026, 11, 2, 12, 30), 5, "l", "Asia/Shanghai", 8),
        message_in(sh(2026, 11, 3, 10, 0), 6, "d", "Asia/Shanghai", 8),
        message_in(sh(2026, 11, 3, 15, 0), 7, "d", "Asia/Shanghai", 8),
        // Weekly cap 2 (days apart, so only the weekly one fires).
        message_in(sh(2026, 11, 4, 10, 0), 8, "d", "Asia/Shanghai", 8),
        // DNC.
        Event {
            at: sh(2026, 11, 2, 9, 0),
            customer: None,
            campaign: None,
            call: None,
            kind: EventKind::DncAdded {
                phone: PhoneIndex("x".into()),
                scope: "global".into(),
                reason: "sms reply: 退订".into(),
            },
        },
        message(sh(2026, 11, 2, 10, 0), 9, "x"),
    ];
    let r = check(rules, evs);
    let n = |k| r.by_kind.get(&k).copied().unwrap_or(0);
    assert_eq!(
        n(ViolationKind::MessageQuietHours),
        4,
        "{}",
        render_text(&r)
    );
    assert_eq!(n(ViolationKind::MessageDailyCap), 1, "{}", render_text(&r));
    assert_eq!(n(ViolationKind::MessageWeeklyCap), 1, "{}", render_text(&r));
    assert_eq!(n(ViolationKind::MessageDnc), 1, "{}", render_text(&r));
    assert_eq!(r.violation_count, 7, "{}", render_text(&r));
    let text = render_text(&r);
    assert!(text.contains("免打扰时段发送了消息"), "{text}");
    // A forged local time is caught like a call's.
    let mut e = message(sh(2026, 11, 2, 10, 0), 10, "f");
    if let EventKind::MessageSubmitted { local_time, .. } = &mut e.kind {
        *local_time = "2026-11-02T10:00:00+00:00".into();
    }
    let r = check(rules_m(), vec![e]);
    assert_eq!(r.by_kind.get(&ViolationKind::LocalTimeMismatch), Some(&1));
    // A bad quiet span in the file is a field error.
    let e = CampaignRules::from_yaml("m.yaml", "name: m\nmessages:\n  quiet_hours: [\"21:00\"]\n")
        .unwrap_err();
    assert!(e.to_string().contains("messages.quiet_hours[0]"), "{e}");
}

fn rules_m() -> Vec<CampaignRules> {
    vec![CampaignRules::from_yaml("t.yaml", RULES).unwrap()]
}

#[test]
fn the_abandon_rate_is_held_in_every_24_hours_not_only_overall() {
    let sh = |d, h, m| {
        chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 11, d, h, m, 0)
            .unwrap()
            .to_utc()
    };
    let dropped = |at| Event {
        at,
        customer: None,
        campaign: Some(CampaignId(7)),
        call: None,
        kind: EventKind::CallAbandoned {
            phone: PhoneIndex("q".into()),
        },
    };
    let mut evs = Vec::new();
    // Day 1: 40 answered, 2 dropped (5%: over). Day 2: 160 answered, none
    // dropped. Overall 1% — under the limit, but day 1 was not.
    for i in 0..40 {
        evs.push(ended(sh(2, 10, i), CallOutcome::Answered));
    }
    evs.push(dropped(sh(2, 10, 5)));
    evs.push(dropped(sh(2, 10, 6)));
    for i in 0..160 {
        evs.push(ended(
            sh(3, 11, 0) + chrono::Duration::seconds(i),
            CallOutcome::Answered,
        ));
    }
    let r = check(rules(), evs.clone());
    let v: Vec<_> = r
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::AbandonRate)
        .collect();
    assert_eq!(v.len(), 1, "{}", render_text(&r));
    assert!(
        v[0].detail.contains("2 abandoned of 40 answered"),
        "{}",
        v[0].detail
    );
    assert_eq!(r.campaigns[0].abandoned, 2);
    assert!((r.campaigns[0].abandon_rate - 0.01).abs() < 1e-9);
    // One drop in 40 (2.5%) each day is within the limit.
    evs.retain(|e| !(matches!(e.kind, EventKind::CallAbandoned { .. }) && e.at == sh(2, 10, 6)));
    let r = check(rules(), evs);
    assert!(
        !r.violations
            .iter()
            .any(|v| v.kind == ViolationKind::AbandonRate),
        "{}",
        render_text(&r)
    );
}

fn ended_call(at: DateTime<Utc>, call: &str) -> Event {
    let mut e = ended(at, CallOutcome::NoAnswer);
    e.call = Some(call.to_string().into());
    e
}

fn attempt_call(at: DateTime<Utc>, phone: &str, call: &str) -> Event {
    let mut e = attempt(at, phone);
    e.call = Some(call.to_string().into());
    e
}

#[test]
fn a_number_is_dialled_once_at_a_time_whichever_node_dials_it() {
    let evs = vec![
        attempt_call(sh(2026, 11, 2, 10, 0), "p", "a1"),
        // Another node dials the same number while a1 rings: a violation.
        attempt_call(sh(2026, 11, 2, 10, 1), "p", "b1"),
        // Another number at the same time: fine.
        attempt_call(sh(2026, 11, 2, 10, 1), "q", "b2"),
        ended_call(sh(2026, 11, 2, 10, 2), "a1"),
        ended_call(sh(2026, 11, 2, 10, 2), "b1"),
        ended_call(sh(2026, 11, 2, 10, 2), "b2"),
        // After both ended: fine (the daily cap of 2 is another rule, and q is under it).
        attempt_call(sh(2026, 11, 2, 15, 0), "q", "a2"),
        // A call whose end was lost stops counting as open after four hours.
        attempt_call(sh(2026, 11, 3, 10, 0), "r", "a3"),
        attempt_call(sh(2026, 11, 3, 14, 30), "r", "a4"),
        ended_call(sh(2026, 11, 3, 14, 31), "a4"),
    ];
    let r = check(rules(), evs);
    let concurrent: Vec<_> = r
        .violations
        .iter()
        .filter(|v| v.kind == ViolationKind::ConcurrentDial)
        .collect();
    assert_eq!(concurrent.len(), 1, "{}", render_text(&r));
    assert_eq!(concurrent[0].call.as_deref(), Some("b1"));
    assert!(concurrent[0].detail.contains("a1"));
}
