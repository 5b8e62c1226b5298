//! Planner behaviour at the edges: windows across zones and DST, caps, DNC,
//! retries, callbacks, fallback, caller IDs; and a property test that the
//! planner never emits a dial the independent compliance checker rejects.
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;
use waihu_campaign::{
    Action, Campaign, ContactInput, ContactRef, ContactStatus, Ineligible, OwnAttempt, Planner,
    Report,
};
use waihu_core::{CallOutcome, CampaignId, CustomerId, Event, EventKind, PhoneIndex};

const CN: &str = r#"
name: cn
timezone: Asia/Shanghai
caps: {per_number_per_day: 2, per_number_per_week: 4, max_attempts: 5}
retry:
  busy: {after: 1m}
  no_answer: {after: 3h}
dnc:
  prefixes: ["+86170"]
  ranges: [{from: "+8613800000000", to: "+8613800000099"}]
trunks: [{name: t, channels: 100, cps: 100}]
caller_ids:
  pool:
    - {number: "+861058880001", region: 北京}
    - {number: "+862158880001", region: 上海}
    - {number: "+4008800000"}
segments:
  - {name: high_value, script: vip, value: 3}
  - {name: regular, script: promo, value: 1}
fallback:
  - {after_unanswered: 2, channel: push, template: p, when: has_app}
  - {after_unanswered: 3, channel: sms, template: s}
"#;

fn contact(id: i64, phone: &str, tz: Tz, segment: &str) -> ContactInput {
    ContactInput {
        customer: CustomerId(id),
        phone: phone.into(),
        tz,
        segment: segment.into(),
        region: None,
        has_app: false,
        channel_pref: waihu_campaign::ChannelPref::Any,
        consent: true,
        recency_days: Some(10),
        history: Vec::new(),
        features: Vec::new(),
    }
}

fn sh(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 11, d, h, m, s)
        .unwrap()
        .with_timezone(&Utc)
}

fn planner(yaml: &str) -> Planner {
    Planner::new(Campaign::from_yaml(yaml).unwrap())
}

#[test]
fn shanghai_window_edges() {
    let mut p = planner(CN);
    let c = p
        .add_contact(contact(
            1,
            "+8613912345678",
            chrono_tz::Asia::Shanghai,
            "regular",
        ))
        .unwrap();
    // Tuesday 2026-11-03.
    assert_eq!(
        p.eligibility(c, sh(3, 8, 59, 59)),
        Err(Ineligible::OutsideWindow)
    );
    assert!(p.next_dials(sh(3, 8, 59, 59), 10).is_empty());
    assert_eq!(p.eligibility(c, sh(3, 9, 0, 0)), Ok(()));
    assert_eq!(p.eligibility(c, sh(3, 11, 59, 59)), Ok(()));
    assert_eq!(
        p.eligibility(c, sh(3, 12, 0, 0)),
        Err(Ineligible::OutsideWindow)
    );
    assert_eq!(
        p.eligibility(c, sh(3, 13, 59, 59)),
        Err(Ineligible::OutsideWindow)
    );
    assert_eq!(p.eligibility(c, sh(3, 14, 0, 0)), Ok(()));
    assert_eq!(p.eligibility(c, sh(3, 19, 59, 59)), Ok(()));
    assert_eq!(
        p.eligibility(c, sh(3, 20, 0, 0)),
        Err(Ineligible::OutsideWindow)
    );
    let d = p.next_dials(sh(3, 9, 0, 0), 10);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].local_time.format("%H:%M:%S").to_string(), "09:00:00");
}

#[test]
fn new_york_dst_edges_and_legal_bound() {
    // A CN campaign calling an overseas customer: CN windows in *callee* time,
    // and the US legal bound on top (windows extended to test the bound).
    let yaml = CN.replace(
        "timezone: Asia/Shanghai",
        "timezone: Asia/Shanghai\nwindows: {default: [\"07:00-22:00\"]}",
    );
    let mut p = planner(&yaml);
    let ny = chrono_tz::America::New_York;
    let c = p
        .add_contact(contact(1, "+12125550100", ny, "regular"))
        .unwrap();
    // Spring forward 2026-03-08 (EDT from 02:00): 08:00 EDT = 12:00 UTC.
    let mut p2 = planner(&yaml.replace("name: cn", "name: cn2"));
    let c2 = p2
        .add_contact(contact(2, "+12125550101", ny, "regular"))
        .unwrap();
    assert_eq!(
        p2.eligibility(c2, Utc.with_ymd_and_hms(2026, 3, 8, 11, 59, 59).unwrap()),
        Err(Ineligible::OutsideWindow)
    );
    assert_eq!(
        p2.eligibility(c2, Utc.with_ymd_and_hms(2026, 3, 8, 12, 0, 0).unwrap()),
        Ok(())
    );
    // Fall back 2026-11-01 (EST from 02:00): 21:00 EST = 02:00 UTC on 11-02.
    assert_eq!(
        p.eligibility(c, Utc.with_ymd_and_hms(2026, 11, 2, 1, 59, 59).unwrap()),
        Ok(())
    );
    assert_eq!(
        p.eligibility(c, Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap()),
        Err(Ineligible::OutsideWindow)
    );
    // A Shanghai number in the same campaign is not bound by the US rule.
    let cn = p
        .add_contact(contact(
            3,
            "+8613912345678",
            chrono_tz::Asia::Shanghai,
            "regular",
        ))
        .unwrap();
    assert_eq!(p.eligibility(cn, sh(3, 21, 30, 0)), Ok(()));
    // The planner parks a refused contact and dials it at the next opening.
    let now = Utc.with_ymd_and_hms(2026, 11, 2, 2, 0, 0).unwrap(); // 21:00 EST
    assert!(p.next_dials(now, 10).iter().all(|d| d.contact != c));
    let mut t = now;
    let first = loop {
        t += Duration::minutes(1);
        if let Some(d) = p.next_dials(t, 10).into_iter().find(|d| d.contact == c) {
            break d;
        }
        assert!(t < now + Duration::days(1), "never dialled");
    };
    assert_eq!(first.local_time.format("%H:%M").to_string(), "08:00");
}

#[test]
fn daily_and_weekly_caps_in_callee_days() {
    let mut p = planner(CN);
    let c = p
        .add_contact(contact(
            1,
            "+8613912345678",
            chrono_tz::Asia::Shanghai,
            "regular",
        ))
        .unwrap();
    let mut t = sh(2, 9, 0, 0); // Monday
    let mut dial_days = Vec::new();
    for _ in 0..(7 * 24 * 60) {
        for d in p.next_dials(t, 10) {
            dial_days.push(d.local_time.date_naive());
            p.on_outcome(
                t + Duration::seconds(5),
                d.contact,
                Report::outcome(CallOutcome::Busy),
            );
        }
        t += Duration::minutes(1);
    }
    // Busy retries every minute, but at most 2 a day and 4 a week; max attempts 5.
    let mut per_day = std::collections::BTreeMap::new();
    for d in &dial_days {
        *per_day.entry(*d).or_insert(0) += 1;
    }
    assert!(per_day.values().all(|&n| n <= 2), "{per_day:?}");
    assert_eq!(dial_days.len(), 4, "{dial_days:?}");
    assert_eq!(
        p.eligibility(c, sh(8, 10, 0, 0)),
        Err(Ineligible::WeeklyCap)
    );
    // Next Monday the week resets; the fifth attempt is the last one.
    let mon = sh(9, 9, 0, 0);
    assert_eq!(p.next_dials(mon, 10).len(), 1);
}

#[test]
fn external_attempts_count_towards_caps() {
    let mut p = planner(CN);
    let c = p
        .add_contact(contact(
            1,
            "+8613912345678",
            chrono_tz::Asia::Shanghai,
            "regular",
        ))
        .unwrap();
    p.record_external_attempt("+8613912345678", sh(3, 9, 0, 0));
    p.record_external_attempt("+8613912345678", sh(3, 9, 5, 0));
    assert_eq!(p.eligibility(c, sh(3, 10, 0, 0)), Err(Ineligible::DailyCap));
    assert_eq!(p.eligibility(c, sh(4, 10, 0, 0)), Ok(()));
}

fn own<'a>(e164: &'a str, outcome: CallOutcome, ended_at: DateTime<Utc>) -> OwnAttempt<'a> {
    OwnAttempt {
        e164,
        outcome,
        ended_at,
        callback_at: None,
        abandoned: false,
    }
}

/// Regression (found by the SIGKILL harness, crates/cli/tests/crash.rs): a campaign
/// restarted after a kill forgot its own attempts and dialled a number past
/// `max_attempts` on the next day, and called again a customer it had reached.
#[test]
fn own_attempts_of_an_earlier_run_count_towards_max_attempts_and_finish_the_reached() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let busy = p
        .add_contact(contact(1, "+8613912345678", sh_tz, "regular"))
        .unwrap();
    let reached = p
        .add_contact(contact(2, "+8613912345679", sh_tz, "regular"))
        .unwrap();
    let fresh = p
        .add_contact(contact(3, "+8613912345670", sh_tz, "regular"))
        .unwrap();
    for _ in 0..5 {
        p.record_own_attempt(own("+8613912345678", CallOutcome::Busy, sh(3, 9, 0, 0)));
    }
    p.record_own_attempt(own("+8613912345679", CallOutcome::Answered, sh(3, 9, 0, 0)));
    let later = sh(10, 10, 0, 0);
    assert!(
        p.eligibility(busy, later).is_err(),
        "max_attempts 5 reached"
    );
    assert_eq!(p.eligibility(reached, later), Err(Ineligible::Finished));
    assert_eq!(p.eligibility(fresh, later), Ok(()));
    assert_eq!(p.pending(), 2, "the reached one is done");
    let dials = p.next_dials(later, 10);
    assert_eq!(dials.len(), 1);
    assert_eq!(dials[0].contact, fresh);
}

/// A restart keeps the retry delay of the attempt before it (no_answer: 3 h) and the
/// callback a callee asked for.
#[test]
fn own_attempts_of_an_earlier_run_keep_their_retry_delay_and_callbacks() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let unanswered = p
        .add_contact(contact(1, "+8613912345678", sh_tz, "regular"))
        .unwrap();
    let callback = p
        .add_contact(contact(2, "+8613912345679", sh_tz, "regular"))
        .unwrap();
    p.record_own_attempt(own(
        "+8613912345678",
        CallOutcome::NoAnswer,
        sh(3, 14, 0, 0),
    ));
    p.record_own_attempt(OwnAttempt {
        callback_at: Some(sh(3, 16, 0, 0)),
        ..own("+8613912345679", CallOutcome::Answered, sh(3, 9, 0, 0))
    });
    assert_eq!(
        p.eligibility(unanswered, sh(3, 11, 59, 0)),
        Err(Ineligible::Backoff)
    );
    assert_eq!(p.eligibility(unanswered, sh(3, 17, 0, 0)), Ok(()));
    assert_eq!(
        p.eligibility(callback, sh(3, 15, 59, 0)),
        Err(Ineligible::Backoff)
    );
    assert_eq!(p.eligibility(callback, sh(3, 16, 0, 0)), Ok(()));
}

#[test]
fn dnc_lists_prefixes_and_ranges_are_never_dialled() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let listed = p
        .add_contact(contact(1, "+8613912345678", sh_tz, "regular"))
        .unwrap();
    let prefix = p
        .add_contact(contact(2, "+8617012345678", sh_tz, "regular"))
        .unwrap();
    let range = p
        .add_contact(contact(3, "+8613800000042", sh_tz, "regular"))
        .unwrap();
    let edge = p
        .add_contact(contact(4, "+8613800000100", sh_tz, "regular"))
        .unwrap();
    p.add_dnc("+8613912345678");
    for c in [listed, prefix, range] {
        assert_eq!(p.eligibility(c, sh(3, 10, 0, 0)), Err(Ineligible::Dnc));
    }
    let dials = p.next_dials(sh(3, 10, 0, 0), 10);
    assert_eq!(
        dials.iter().map(|d| d.contact).collect::<Vec<_>>(),
        vec![edge]
    );
    // Asked on the call: DNC at once, never again.
    let acts = p.on_outcome(
        sh(3, 10, 1, 0),
        edge,
        Report {
            outcome: CallOutcome::Answered,
            callback_at: None,
            do_not_call: true,
            abandoned: false,
            converted: false,
        },
    );
    assert!(acts.contains(&Action::AddDnc {
        customer: CustomerId(4)
    }));
    assert_eq!(
        p.eligibility(edge, sh(4, 10, 0, 0)),
        Err(Ineligible::Finished)
    );
    assert!(p.next_dials(sh(5, 10, 0, 0), 10).is_empty());
}

#[test]
fn retries_follow_the_policy_per_outcome() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let a = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    let b = p
        .add_contact(contact(2, "+8613900000002", sh_tz, "regular"))
        .unwrap();
    let t = sh(3, 14, 0, 0);
    assert_eq!(p.next_dials(t, 10).len(), 2);
    p.on_outcome(
        t + Duration::seconds(30),
        a,
        Report::outcome(CallOutcome::NoAnswer),
    );
    let acts = p.on_outcome(
        t + Duration::seconds(5),
        b,
        Report::outcome(CallOutcome::InvalidNumber),
    );
    assert!(acts.iter().any(|x| matches!(
        x,
        Action::Finished {
            reason: "invalid_number",
            ..
        }
    )));
    // No answer: 3 h backoff.
    assert_eq!(
        p.eligibility(a, t + Duration::minutes(179)),
        Err(Ineligible::Backoff)
    );
    assert!(p.next_dials(t + Duration::minutes(179), 10).is_empty());
    let d = p.next_dials(t + Duration::seconds(3 * 3600 + 60), 10);
    assert_eq!(d.iter().map(|d| d.contact).collect::<Vec<_>>(), vec![a]);
    assert_eq!(
        p.eligibility(b, t + Duration::days(1)),
        Err(Ineligible::Finished)
    );
}

#[test]
fn a_cluster_node_reads_status_hands_contacts_back_and_counts_prior_attempts() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let a = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    let b = p
        .add_contact(contact(2, "+8613900000002", sh_tz, "regular"))
        .unwrap();
    // Four attempts made elsewhere: one left of five.
    p.set_prior_attempts(b, 4);
    assert_eq!(p.status(a, sh(3, 14, 0, 0)), Some(ContactStatus::Ready));
    let t = sh(3, 14, 0, 0);
    let d = p.next_dials(t, 10);
    assert_eq!(d.len(), 2);
    assert_eq!(p.status(a, t), Some(ContactStatus::InFlight));
    // The shared gate refused `a`: nothing went out, the channel comes back.
    assert_eq!(p.in_flight(), 2);
    assert!(p.release(a));
    assert_eq!(p.in_flight(), 1);
    assert_eq!(p.status(a, t), Some(ContactStatus::Done));
    assert_eq!(p.pending(), 1);
    // Its number can come back to this node later, as a new contact.
    let a2 = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    assert_ne!(a2, a);
    // A no-answer waits 3 h; `b` used its last attempt: finished.
    p.on_outcome(
        t + Duration::seconds(30),
        b,
        Report::outcome(CallOutcome::NoAnswer),
    );
    assert_eq!(p.status(b, t), Some(ContactStatus::Done));
    let d = p.next_dials(t + Duration::seconds(40), 10);
    assert_eq!(d.iter().map(|d| d.contact).collect::<Vec<_>>(), vec![a2]);
    p.on_outcome(
        t + Duration::seconds(90),
        a2,
        Report::outcome(CallOutcome::NoAnswer),
    );
    assert_eq!(
        p.status(a2, t),
        Some(ContactStatus::Waiting(t + Duration::seconds(90 + 3 * 3600)))
    );
    // Outside the window (Shanghai 21:30): waits for the window's next opening.
    let late = p
        .add_contact(contact(3, "+8613900000003", sh_tz, "regular"))
        .unwrap();
    assert!(p.next_dials(sh(3, 21, 30, 0), 10).is_empty());
    match p.status(late, sh(3, 21, 30, 0)) {
        Some(ContactStatus::Waiting(at)) => assert!(at > sh(3, 21, 30, 0), "{at}"),
        other => panic!("{other:?}"),
    }
    assert!(!p.release(ContactRef(99)));
}

#[test]
fn a_callback_heard_on_another_node_waits_for_its_time_then_goes_first() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    for i in 0..20 {
        p.add_contact(contact(
            10 + i,
            &format!("+86139100000{i:02}"),
            sh_tz,
            "high_value",
        ))
        .unwrap();
    }
    let asker = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    p.set_prior_attempts(asker, 1);
    let at = sh(3, 15, 0, 0);
    assert!(p.set_callback(asker, at));
    assert_eq!(
        p.status(asker, sh(3, 14, 0, 0)),
        Some(ContactStatus::Callback(at))
    );
    // Before its time it is not dialled, however much capacity is free.
    let early = p.next_dials(sh(3, 14, 0, 0), 5);
    assert_eq!(early.len(), 5);
    assert!(early.iter().all(|d| d.contact != asker && !d.callback));
    // At its time it is the first dial, marked as a callback.
    let d = p.next_dials(at, 1);
    assert_eq!(d.len(), 1);
    assert_eq!((d[0].contact, d[0].callback), (asker, true));
    // In flight or finished contacts are left alone.
    assert!(!p.set_callback(asker, at + Duration::hours(1)));
    assert!(!p.set_callback(ContactRef(999), at));
}

#[test]
fn callbacks_come_first_at_the_asked_time_and_inside_windows() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let asker = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    let late = p
        .add_contact(contact(2, "+8613900000002", sh_tz, "regular"))
        .unwrap();
    for i in 0..50 {
        p.add_contact(contact(
            10 + i,
            &format!("+86139100000{i:02}"),
            sh_tz,
            "high_value",
        ))
        .unwrap();
    }
    let t = sh(3, 9, 0, 0);
    // Capacity 2: the first two added regular contacts lose to high_value ones,
    // so dial them explicitly by exhausting the others is not needed: use ranking order.
    let mut placed = Vec::new();
    let mut now = t;
    while !(placed.contains(&asker) && placed.contains(&late)) {
        for d in p.next_dials(now, 5) {
            placed.push(d.contact);
            let r = if d.contact == asker {
                Report {
                    outcome: CallOutcome::Answered,
                    callback_at: Some(sh(4, 10, 30, 0)),
                    do_not_call: false,
                    abandoned: false,
                    converted: false,
                }
            } else if d.contact == late {
                // Asks for 21:30, outside the window: honoured at the next opening.
                Report {
                    outcome: CallOutcome::Answered,
                    callback_at: Some(sh(4, 21, 30, 0)),
                    do_not_call: false,
                    abandoned: false,
                    converted: false,
                }
            } else {
                Report::outcome(CallOutcome::NoAnswer)
            };
            p.on_outcome(now, d.contact, r);
        }
        now += Duration::seconds(10);
        assert!(now < t + Duration::hours(3));
    }
    // Not before the asked time.
    assert!(p
        .next_dials(sh(4, 10, 29, 0), 100)
        .iter()
        .all(|d| d.contact != asker));
    let d = p.next_dials(sh(4, 10, 30, 0), 1);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].contact, asker);
    assert!(d[0].callback);
    p.on_outcome(
        sh(4, 10, 31, 0),
        asker,
        Report::outcome(CallOutcome::Answered),
    );
    // 21:30 is outside; the callback waits for 09:00 next day, then goes first.
    let mut first = None;
    let mut now = sh(4, 21, 30, 0);
    while first.is_none() {
        for d in p.next_dials(now, 1) {
            first = Some(d);
        }
        now += Duration::minutes(1);
    }
    let first = first.unwrap();
    assert_eq!(first.contact, late);
    assert!(first.callback);
    assert_eq!(first.local_time.format("%d %H:%M").to_string(), "05 09:00");
}

/// The messages a customer gets over four powered-off attempts.
fn fallbacks_sent(has_app: bool, pref: waihu_campaign::ChannelPref) -> Vec<(&'static str, String)> {
    let yaml = CN.replace(
        "busy: {after: 1m}",
        "busy: {after: 1m}\n  powered_off: {after: 1m}",
    );
    let mut p = planner(&yaml);
    let mut input = contact(1, "+8613900000001", chrono_tz::Asia::Shanghai, "regular");
    input.has_app = has_app;
    input.channel_pref = pref;
    let c = p.add_contact(input).unwrap();
    let mut sent = Vec::new();
    let mut t = sh(3, 9, 0, 0);
    for _ in 0..4 {
        let d = loop {
            if let Some(d) = p.next_dials(t, 1).pop() {
                break d;
            }
            t += Duration::minutes(1);
        };
        assert_eq!(d.contact, c);
        for a in p.on_outcome(t, c, Report::outcome(CallOutcome::PoweredOff)) {
            if let Action::SendMessage {
                channel, template, ..
            } = a
            {
                sent.push((channel, template));
            }
        }
    }
    sent
}

#[test]
fn fallback_messages_after_unanswered_attempts() {
    use waihu_campaign::ChannelPref;
    let push = ("push", "p".to_string());
    let sms = ("sms", "s".to_string());
    assert_eq!(
        fallbacks_sent(true, ChannelPref::Any),
        vec![push.clone(), sms.clone()]
    );
    assert_eq!(fallbacks_sent(false, ChannelPref::Any), vec![sms.clone()]);
}

#[test]
fn fallback_messages_follow_the_customers_channel_preference() {
    use waihu_campaign::ChannelPref;
    let push = ("push", "p".to_string());
    let sms = ("sms", "s".to_string());
    assert_eq!(fallbacks_sent(true, ChannelPref::Sms), vec![sms.clone()]);
    assert_eq!(fallbacks_sent(true, ChannelPref::Push), vec![push]);
    // Push preferred but no app: SMS is the only channel that reaches them.
    assert_eq!(fallbacks_sent(false, ChannelPref::Push), vec![sms]);
    assert!(fallbacks_sent(true, ChannelPref::None).is_empty());
    assert!(fallbacks_sent(false, ChannelPref::None).is_empty());
    assert_eq!(ChannelPref::from_attr("none"), ChannelPref::None);
    assert_eq!(ChannelPref::from_attr("whatever"), ChannelPref::Any);
}

#[test]
fn local_presence_picks_a_same_region_caller_id() {
    let mut p = planner(CN);
    let mut a = contact(1, "+8613900000001", chrono_tz::Asia::Shanghai, "regular");
    a.region = Some("上海".into());
    p.add_contact(a).unwrap();
    let mut b = contact(2, "+8613900000002", chrono_tz::Asia::Shanghai, "regular");
    b.region = Some("北京".into());
    p.add_contact(b).unwrap();
    let dials = p.next_dials(sh(3, 9, 0, 0), 10);
    let by_customer: std::collections::HashMap<i64, Option<String>> = dials
        .iter()
        .map(|d| (d.customer.0, p.caller_id_number(d).map(str::to_string)))
        .collect();
    assert_eq!(by_customer[&1].as_deref(), Some("+862158880001"));
    assert_eq!(by_customer[&2].as_deref(), Some("+861058880001"));
}

#[test]
fn best_time_ranks_by_value_and_learns_hours() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    let reg = p
        .add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    let vip = p
        .add_contact(contact(2, "+8613900000002", sh_tz, "high_value"))
        .unwrap();
    let d = p.next_dials(sh(3, 9, 0, 0), 1);
    assert_eq!(d[0].contact, vip);
    let _ = reg;
    // Teach the model: regular answers at 19:00, never at 09:00 (many customers).
    let mut q = planner(CN);
    for i in 0..400 {
        q.add_contact(contact(
            100 + i,
            &format!("+8613920000{i:03}"),
            sh_tz,
            "regular",
        ))
        .unwrap();
    }
    let mut t = sh(3, 9, 0, 0);
    for d in q.next_dials(t, 100) {
        q.on_outcome(t, d.contact, Report::outcome(CallOutcome::NoAnswer));
    }
    t = sh(3, 19, 0, 0);
    for d in q.next_dials(t, 100) {
        q.on_outcome(t, d.contact, Report::outcome(CallOutcome::Answered));
    }
    let c = ContactRef(350);
    // Same hour of week one week later.
    assert!(
        q.p_answer(c, sh(10, 19, 0, 0)) > 0.8,
        "{}",
        q.p_answer(c, sh(10, 19, 0, 0))
    );
    assert!(
        q.p_answer(c, sh(10, 9, 0, 0)) < 0.1,
        "{}",
        q.p_answer(c, sh(10, 9, 0, 0))
    );
}

#[test]
fn bad_contacts_are_rejected_with_reasons() {
    let mut p = planner(CN);
    let sh_tz = chrono_tz::Asia::Shanghai;
    assert!(p.add_contact(contact(1, "12ab", sh_tz, "regular")).is_err());
    assert!(p
        .add_contact(contact(1, "+8613900000001", sh_tz, "nope"))
        .is_err());
    p.add_contact(contact(1, "+8613900000001", sh_tz, "regular"))
        .unwrap();
    assert!(p
        .add_contact(contact(2, "8613900000001", sh_tz, "regular"))
        .is_err());
}

// ---------------------------------------------------------------------------
// Property: whatever the campaign, contacts and outcomes, the independent
// checker finds no violation in what the planner dialled.
// ---------------------------------------------------------------------------

const ZONES: [Tz; 5] = [
    chrono_tz::Asia::Shanghai,
    chrono_tz::America::New_York,
    chrono_tz::Europe::London,
    chrono_tz::Asia::Kolkata,
    chrono_tz::America::Los_Angeles,
];

const OUTCOMES: [CallOutcome; 9] = [
    CallOutcome::Answered,
    CallOutcome::Busy,
    CallOutcome::NoAnswer,
    CallOutcome::PoweredOff,
    CallOutcome::Voicemail,
    CallOutcome::Rejected,
    CallOutcome::Congestion,
    CallOutcome::InvalidNumber,
    CallOutcome::Suspended,
];

#[derive(Debug, Clone)]
struct Scenario {
    w1: (u32, u32),
    w2: Option<(u32, u32)>,
    sun_off: bool,
    per_day: u32,
    per_week: u32,
    max_attempts: u32,
    busy_mins: u32,
    contacts: Vec<(usize, bool, bool)>, // zone, dnc, fifo-segment
    outcomes: Vec<(usize, bool, u8)>,   // outcome, asks callback, callback hour
    step_mins: Vec<u32>,
    /// 0 fifo, 1 best_time, 2 learned (warm from the start, message first, skipping).
    policy: u8,
    cid_cap: u32,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        (0u32..20, 1u32..6),
        proptest::option::of((12u32..20, 1u32..5)),
        any::<bool>(),
        (1u32..4, 0u32..4, 1u32..8, 1u32..240),
        proptest::collection::vec(
            (0usize..5, proptest::bool::weighted(0.1), any::<bool>()),
            1..30,
        ),
        proptest::collection::vec(
            (
                0usize..OUTCOMES.len(),
                proptest::bool::weighted(0.15),
                0u8..24,
            ),
            1..60,
        ),
        proptest::collection::vec(1u32..200, 1..40),
        0u8..3,
        1u32..20,
    )
        .prop_map(
            |(w1, w2, sun_off, caps, contacts, outcomes, step_mins, policy, cid_cap)| Scenario {
                w1: (w1.0, (w1.0 + w1.1).min(24)),
                w2: w2
                    .map(|(a, l)| (a.max(w1.0 + w1.1), (a.max(w1.0 + w1.1) + l).min(24)))
                    .filter(|(a, b)| a < b),
                sun_off,
                per_day: caps.0,
                per_week: caps.0 + caps.1,
                max_attempts: caps.2,
                busy_mins: caps.3,
                contacts,
                outcomes,
                step_mins,
                policy,
                cid_cap,
            },
        )
}

fn yaml(s: &Scenario) -> String {
    let w = |(a, b): (u32, u32)| format!("\"{a:02}:00-{b:02}:00\"");
    let mut list = vec![w(s.w1)];
    if let Some(w2) = s.w2 {
        list.push(w(w2));
    }
    format!(
        r#"
name: prop
id: 3
timezone: Asia/Shanghai
windows:
  default: [{}]
{}
holidays: [2026-11-04]
caps: {{per_number_per_day: {}, per_number_per_week: {}, max_attempts: {}}}
retry:
  busy: {{after: {}m}}
  no_answer: {{after: 20m}}
  powered_off: {{after: 1h}}
  congestion: {{after: 1m}}
trunks: [{{name: t, channels: 7, cps: 3}}]
caller_ids:
  pool:
    - {{number: "+861058880001", region: 北京, daily_cap: {}}}
    - {{number: "+12125550000", daily_cap: {}}}
segments:
  - {{name: a, script: s, value: 2}}
  - {{name: b, script: s}}
ranking:
  policy: {}
  learning: {{call_cost: 0.3, explore: 0.2, skip_unprofitable: true, min_outcomes: 0,
             message_first: {{template: t, cost: 0.01, wait: 2h}}}}
"#,
        list.join(", "),
        if s.sun_off { "  sun: []" } else { "" },
        s.per_day,
        s.per_week,
        s.max_attempts,
        s.busy_mins,
        s.cid_cap,
        s.cid_cap,
        ["fifo", "best_time", "learned"][s.policy as usize],
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, .. ProptestConfig::default() })]
    #[test]
    fn planner_never_emits_a_dial_the_checker_rejects(s in scenario()) {
        let text = yaml(&s);
        let campaign = Campaign::from_yaml(&text).unwrap();
        let rules = waihu_compliance::CampaignRules::from_yaml("prop.yaml", &text).unwrap();
        let mut p = Planner::new(campaign);
        let start = sh(2, 0, 0, 0);
        let mut events: Vec<Event> = Vec::new();
        for (i, &(zone, dnc, seg)) in s.contacts.iter().enumerate() {
            let phone = if zone == 1 || zone == 4 { format!("+1212555{i:04}") } else { format!("+86139{i:08}") };
            p.add_contact(ContactInput {
                customer: CustomerId(i as i64),
                phone: phone.clone(),
                tz: ZONES[zone],
                segment: if seg { "a".into() } else { "b".into() },
                region: None,
                has_app: false,
                channel_pref: waihu_campaign::ChannelPref::Any,
                consent: true,
                recency_days: None,
                history: Vec::new(),
                features: vec![format!("zone={zone}"), format!("dnc={dnc}")],
            }).unwrap();
            if dnc {
                p.add_dnc(&phone);
                events.push(Event { at: start, customer: None, campaign: None, call: None,
                    kind: EventKind::DncAdded { phone: PhoneIndex(phone), scope: "global".into(), reason: "t".into() } });
            }
        }
        let mut now = start;
        let mut k = 0usize;
        let mut messages = 0u64;
        let phones: Vec<String> = s.contacts.iter().enumerate().map(|(i, &(zone, ..))|
            if zone == 1 || zone == 4 { format!("+1212555{i:04}") } else { format!("+86139{i:08}") }).collect();
        let end = start + Duration::days(9);
        let mut in_flight: Vec<(DateTime<Utc>, ContactRef, usize)> = Vec::new();
        let mut step = 0usize;
        while now < end {
            // Finish calls due.
            in_flight.sort_by_key(|x| x.0);
            while in_flight.first().is_some_and(|x| x.0 <= now) {
                let (at, c, o) = in_flight.remove(0);
                let (oi, cb, hour) = s.outcomes[o % s.outcomes.len()];
                let outcome = OUTCOMES[oi];
                let callback_at = (cb && outcome == CallOutcome::Answered)
                    .then(|| at + Duration::hours(hour as i64 + 1));
                let converted = outcome == CallOutcome::Answered && hour % 3 == 0;
                p.on_outcome(at, c, Report { outcome, callback_at, do_not_call: false, abandoned: false, converted });
            }

            for d in p.next_dials(now, 5) {
                // Oracle 1: the planner's own gate (cheap sanity).
                prop_assert!(d.local_time.with_timezone(&Utc) == now);
                events.push(Event {
                    at: now,
                    customer: Some(d.customer),
                    campaign: Some(CampaignId(3)),
                    call: None,
                    kind: EventKind::AttemptStarted {
                        phone: PhoneIndex(Planner::e164(d.phone)),
                        tz: d.tz.name().into(),
                        local_time: d.local_time.to_rfc3339(),
                        caller_id: p.caller_id_number(&d).map(str::to_string),
                        channel: "voice".into(),
                    },
                });
                in_flight.push((now + Duration::seconds(40), d.contact, k));
                k += 1;
            }
            // Learned policy: messages first and contacts skipped. A message
            // works for every fourth customer, which finishes them.
            for a in p.take_actions() {
                if let waihu_campaign::Action::SendMessage { customer, channel, template } = a {
                    messages += 1;
                    events.push(Event {
                        at: now,
                        customer: Some(customer),
                        campaign: Some(CampaignId(3)),
                        call: None,
                        kind: EventKind::MessageSent { channel: channel.into(), template },
                    });
                    if customer.0 % 4 == 0 {
                        if let Some(c) = p.contact_by_phone(&phones[customer.0 as usize]) {
                            p.on_message_result(c, true);
                        }
                    }
                }
            }
            now += Duration::minutes(s.step_mins[step % s.step_mins.len()] as i64);
            step += 1;
        }
        let _ = messages;
        // Oracle 2: the independent checker.
        let report = waihu_compliance::check(vec![rules], events);
        prop_assert!(report.ok(), "{}\n{}", waihu_compliance::render_text(&report), text);
    }
}

/// Last week's history (the store's earlier attempts): the `evening` segment's
/// callees answered at 19:00 every day and missed every morning; `other` has
/// no history. Two Shanghai weekdays' worth of each, every day of the week.
fn evening_history(p: &Planner) -> Vec<waihu_campaign::PastAttempt> {
    let seg = p.campaign().segment_index("evening").unwrap();
    let mut h = Vec::new();
    for day in 23..30 {
        for k in 0..20 {
            let at = |hour| {
                chrono::NaiveDate::from_ymd_opt(2026, 11, day)
                    .unwrap()
                    .and_hms_opt(hour, k, 0)
                    .unwrap()
            };
            h.push(waihu_campaign::PastAttempt {
                segment: seg,
                local: at(19),
                outcome: CallOutcome::Answered,
            });
            h.push(waihu_campaign::PastAttempt {
                segment: seg,
                local: at(10),
                outcome: CallOutcome::NoAnswer,
            });
            // Network failures say nothing about the callee.
            h.push(waihu_campaign::PastAttempt {
                segment: seg,
                local: at(19),
                outcome: CallOutcome::Congestion,
            });
        }
    }
    h
}

const TWO_SEGMENTS: &str = r#"
name: seeded
timezone: Asia/Shanghai
trunks: [{name: t, channels: 100, cps: 100}]
segments:
  - {name: other, script: s, value: 1}
  - {name: evening, script: s, value: 1}
"#;

#[test]
fn stored_history_moves_the_first_choice_at_19() {
    let sh_tz = chrono_tz::Asia::Shanghai;
    let build = |seed: bool| {
        let mut p = planner(TWO_SEGMENTS);
        if seed {
            let h = evening_history(&p);
            assert_eq!(p.seed_model(h), 7 * 20 * 2);
        }
        let other = p
            .add_contact(contact(1, "+8613900000001", sh_tz, "other"))
            .unwrap();
        let evening = p
            .add_contact(contact(2, "+8613900000002", sh_tz, "evening"))
            .unwrap();
        (p, other, evening)
    };
    // Wed 2 Dec 2026, 19:00 in Shanghai.
    let t = chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(2026, 12, 2, 19, 0, 0)
        .unwrap()
        .with_timezone(&Utc);
    // From the prior alone the two are equal: the first added goes first.
    let (mut p, other, evening) = build(false);
    assert_eq!(p.next_dials(t, 1)[0].contact, other);
    assert!((p.p_answer(evening, t) - p.p_answer(other, t)).abs() < 1e-9);
    // From the history, the evening segment's callee goes first at 19:00.
    let (mut p, other, evening) = build(true);
    let d = p.next_dials(t, 1);
    assert_eq!(d[0].contact, evening);
    assert!(d[0].p_answer > 0.75, "{}", d[0].p_answer);
    assert!(
        p.p_answer(other, t) < d[0].p_answer,
        "{}",
        p.p_answer(other, t)
    );
}

#[test]
fn stored_history_moves_the_first_dial_to_the_evening_with_deferral() {
    let yaml = format!("{CN_EVENING}ranking: {{defer_below: 0.5}}\n");
    let sh_tz = chrono_tz::Asia::Shanghai;
    let first_dial_hour = |seed: bool| {
        let mut p = planner(&yaml);
        if seed {
            let h = evening_history(&p);
            p.seed_model(h);
        }
        p.add_contact(contact(2, "+8613900000002", sh_tz, "evening"))
            .unwrap();
        // Wed 2 Dec 2026 from 09:00, every 30 minutes of Shanghai time.
        let start = chrono_tz::Asia::Shanghai
            .with_ymd_and_hms(2026, 12, 2, 9, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        (0..30)
            .map(|k| start + Duration::minutes(30 * k))
            .find(|t| !p.next_dials(*t, 1).is_empty())
            .map(|t| t.with_timezone(&sh_tz).format("%H:%M").to_string())
    };
    assert_eq!(first_dial_hour(false).as_deref(), Some("09:00"));
    assert_eq!(first_dial_hour(true).as_deref(), Some("19:00"));
}

const CN_EVENING: &str = r#"
name: seeded-deferral
timezone: Asia/Shanghai
trunks: [{name: t, channels: 100, cps: 100}]
segments:
  - {name: evening, script: s, value: 1}
"#;

/// The learned policy's three roads, with the models trained on a few hundred
/// outcomes: a message first to the customers messages work for, no contact
/// for those worth less than a call costs, a call for the rest — each
/// explained by its features; and the gate still decides (a DNC number gets
/// neither a call nor a message).
#[test]
fn learned_policy_messages_first_skips_calls_and_explains() {
    let cn = CN.replace("channels: 100, cps: 100", "channels: 5000, cps: 5000");
    let yaml = format!(
        "{cn}ranking:\n  policy: learned\n  learning: {{call_cost: 0.2, explore: 0, skip_unprofitable: true, min_outcomes: 100,\n    message_first: {{template: remind, cost: 0.01, wait: 1d}}}}\n"
    );
    let mut p = planner(&yaml);
    let kinds = ["texter", "caller", "hopeless"];
    let mut refs = Vec::new();
    for i in 0..3000i64 {
        let mut c = contact(
            i + 1,
            &format!("+86139{:08}", i),
            chrono_tz::Asia::Shanghai,
            "regular",
        );
        c.features = vec![format!("kind={}", kinds[(i % 3) as usize])];
        refs.push(p.add_contact(c).unwrap());
    }
    // Teach: texters act on messages, callers convert when called, the
    // hopeless answer but never convert, by call or by message.
    let t = sh(3, 10, 0, 0);
    for round in 0..2 {
        let dials = p.next_dials(t + Duration::hours(round), 5000);
        for a in p.take_actions() {
            if let Action::SendMessage { customer, .. } = a {
                let texter = (customer.0 - 1) % 3 == 0;
                p.on_message_result(refs[(customer.0 - 1) as usize], texter);
            }
        }
        for d in dials {
            let kind = (d.customer.0 - 1) % 3;
            let r = Report {
                converted: kind == 1,
                ..Report::outcome(CallOutcome::Answered)
            };
            p.on_outcome(t + Duration::hours(round), d.contact, r);
            // The same customers' answers to an earlier message.
            p.on_message_result(d.contact, kind == 0);
        }
    }
    let base = 10_000i64;
    let mut fresh = Vec::new();
    for (k, kind) in kinds.iter().enumerate() {
        let mut c = contact(
            base + k as i64,
            &format!("+86138{:08}", 5000 + k),
            chrono_tz::Asia::Shanghai,
            "regular",
        );
        c.features = vec![format!("kind={kind}")];
        fresh.push(p.add_contact(c).unwrap());
    }
    let mut dnc = contact(
        base + 9,
        "+8613700000009",
        chrono_tz::Asia::Shanghai,
        "regular",
    );
    dnc.features = vec!["kind=texter".into()];
    p.add_contact(dnc).unwrap();
    p.add_dnc("+8613700000009");
    // A texter who takes no follow-up messages (联系偏好: 不接收) is called instead.
    let mut no_msgs = contact(
        base + 3,
        "+8613800005003",
        chrono_tz::Asia::Shanghai,
        "regular",
    );
    no_msgs.features = vec!["kind=texter".into()];
    no_msgs.channel_pref = waihu_campaign::ChannelPref::None;
    p.add_contact(no_msgs).unwrap();
    let e: Vec<_> = fresh.iter().map(|&c| p.explain(c).unwrap()).collect();
    assert!(e[0].p_message.unwrap() > 0.5, "{:?}", e[0]);
    assert!(e[1].p_convert > 0.5 && e[2].p_convert < 0.2, "{e:?}");
    assert_eq!(
        e[0].choice,
        waihu_campaign::learned::Choice::MessageFirst,
        "{:?}",
        e[0]
    );
    assert_eq!(
        e[1].choice,
        waihu_campaign::learned::Choice::Call,
        "{:?}",
        e[1]
    );
    assert_eq!(
        e[2].choice,
        waihu_campaign::learned::Choice::Skip,
        "{:?}",
        e[2]
    );
    assert!(e[1]
        .convert_features
        .iter()
        .any(|c| c.feature == "kind=caller" && c.weight > 0.0));
    let dials = p.next_dials(sh(4, 10, 0, 0), 50);
    let acts = p.take_actions();
    let messaged: Vec<i64> = acts
        .iter()
        .filter_map(|a| match a {
            Action::SendMessage {
                customer, template, ..
            } if template == "remind" => Some(customer.0),
            _ => None,
        })
        .collect();
    assert!(messaged.contains(&base), "{acts:?}");
    assert!(dials.iter().any(|d| d.customer.0 == base + 1), "{dials:?}");
    assert!(acts.iter().any(|a| matches!(a, Action::Finished { customer, reason: "not_worthwhile" } if customer.0 == base + 2)), "{acts:?}");
    assert!(!messaged.contains(&(base + 9)) && !dials.iter().any(|d| d.customer.0 == base + 9));
    assert!(
        !messaged.contains(&(base + 3)) && dials.iter().any(|d| d.customer.0 == base + 3),
        "{acts:?} {dials:?}"
    );
    assert!(p.stats().message_first >= 1 && p.stats().skipped >= 1);
    // Other policies explain nothing.
    assert!(planner(CN).explain(ContactRef(0)).is_none());
}

/// Rows of the 号段归属地 table converted from PyPI `phone` 0.4.5.
const GEO: &str = "waihu-geo 1
V\ttest rows from PyPI phone 0.4.5
R\t广东\t广州\t510000\t020
R\t广东\t深圳\t518000\t0755
R\t四川\t成都\t610000\t028
R\t北京\t北京\t100000\t010
M\t1380009\t1\t0\t6
M\t1380028\t1\t2\t1
M\t1380220\t10\t1\t1
";

/// Customers in two provinces (广东, 四川), caller IDs in both, located by the
/// 号段归属地 table (fixed lines by area code, a mobile by its segment): same
/// city first, then same province, then the shared-prefix rule.
#[test]
fn local_presence_prefers_same_city_then_same_province() {
    let yaml = CN.replace(
        r#"    - {number: "+861058880001", region: 北京}
    - {number: "+862158880001", region: 上海}
    - {number: "+4008800000"}"#,
        r#"    - {number: "+8675588880001"}
    - {number: "+862088880001"}
    - {number: "+862888880001"}
    - {number: "+8613800091234"}
    - {number: "+861058880001", region: 上海}"#,
    );
    let mut campaign = Campaign::from_yaml(&yaml).unwrap();
    let geo = waihu_geo::Table::parse(GEO).unwrap();
    // The explicit region (上海, however wrong for 010) is kept.
    assert_eq!(campaign.locate_caller_ids(&geo), 4);
    let regions: Vec<Option<&str>> = campaign
        .caller_ids
        .iter()
        .map(|c| c.region.as_deref())
        .collect();
    assert_eq!(
        regions,
        [
            Some("广东/深圳"),
            Some("广东/广州"),
            Some("四川/成都"),
            Some("广东/广州"),
            Some("上海")
        ]
    );
    let mut p = Planner::new(campaign);
    let customers = [
        (1, "+8613911110001", Some("广东/深圳"), "+8675588880001"),
        // Same province, no caller ID in 佛山: one of 广东's (广州 is first after 深圳's turn).
        (2, "+8613911110002", Some("广东/佛山"), "广东"),
        (3, "+8613911110003", Some("四川/成都"), "+862888880001"),
        (4, "+8613911110004", Some("四川/绵阳"), "+862888880001"),
        (5, "+8613911110005", Some("上海/上海"), "+861058880001"),
        // Nothing known but the country: the longest shared prefix (+86138000...).
        (6, "+8613800091999", Some("CN"), "+8613800091234"),
    ];
    for (id, phone, region, _) in customers {
        let mut c = contact(id, phone, chrono_tz::Asia::Shanghai, "regular");
        c.region = region.map(str::to_string);
        p.add_contact(c).unwrap();
    }
    let dials = p.next_dials(sh(3, 9, 0, 0), 10);
    assert_eq!(dials.len(), customers.len());
    let by_customer: std::collections::HashMap<i64, String> = dials
        .iter()
        .map(|d| (d.customer.0, p.caller_id_number(d).unwrap().to_string()))
        .collect();
    for (id, _, _, want) in customers {
        let got = &by_customer[&id];
        if want == "广东" {
            assert!(
                ["+8675588880001", "+862088880001", "+8613800091234"].contains(&got.as_str()),
                "customer {id}: {got}"
            );
        } else {
            assert_eq!(got, want, "customer {id}");
        }
    }
}

#[test]
fn place_rank_city_province_and_single_names() {
    use waihu_campaign::planner::place_rank;
    assert_eq!(place_rank("广东/深圳", "广东/深圳"), 2000);
    assert_eq!(place_rank("广东/深圳", "深圳"), 2000);
    assert_eq!(place_rank("北京/北京", "北京"), 2000);
    assert_eq!(place_rank("广东/深圳", "广东/广州"), 1000);
    assert_eq!(place_rank("广东/深圳", "广东"), 1000);
    assert_eq!(place_rank("辽宁", "辽宁/沈阳"), 1000);
    assert_eq!(place_rank("广东/深圳", "四川/成都"), 0);
    assert_eq!(place_rank("CN", "CN"), 0);
    assert_eq!(place_rank("", "广东"), 0);
}
