//! The interpreter: paths, global handlers, retries, barge-in, determinism.
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use waihu_core::{Emotion, EmotionLabel, Entity, NluResult, Sentiment, SentimentLabel};
use waihu_dialog::{Action, Input, Interpreter, Level, Output, StepKind};

const SCRIPT: &str = r#"
name: t
language: zh
style: neutral
variables:
  name: 张三
  amount: 100
transfer: { queue: care }
max_turns: 8
intents:
  pay_now: { examples: ["我现在就付"] }
globals:
  request_human:
    say: "好的，马上转人工。"
    do: [ { transfer: { queue: vip } } ]
states:
  hello:
    style: happy
    say: "{{name}}您好，欠款{{amount}}元。"
    expect: { dtmf: "19" }
    no_input: { reprompt: 1, say: "还在吗？", then: { end: silent } }
    no_match: { reprompt: 1, say: "没听清。", then: { goto: bye } }
    on:
      - intent: pay_now
        do: [ { level: A }, { outcome: promised } ]
        goto: when
      - dtmf: "9"
        goto: bye
      - intent: affirm
        when: "amount >= 100"
        goto: big
      - intent: affirm
        goto: bye
  big:
    say: "金额较大，"
    barge_in: false
    handlers:
      request_human: { say: "这一步不能转人工。" }
    disable: [repeat]
    on:
      - intent: affirm
        goto: bye
  when:
    say: "哪天付？"
    on:
      - entity: time
        do: [ { set: { promise: "{{entity.time}}" } }, { callback: {} } ]
        goto: bye
  bye:
    say: "再见{{name}}。"
    end: done
"#;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap()
}

fn prog() -> Arc<waihu_dialog::Program> {
    Arc::new(waihu_dialog::load_str(SCRIPT, "t.yaml").unwrap_or_else(|e| panic!("{e}")))
}

fn nlu(intent: &str) -> NluResult {
    NluResult {
        text: intent.into(),
        intent: intent.into(),
        confidence: 0.9,
        entities: vec![],
        sentiment: Sentiment {
            label: SentimentLabel::Neutral,
            score: 0.0,
            angry: false,
        },
    }
}

fn call() -> Interpreter {
    Interpreter::new(prog(), [("name", "李四"), ("amount", "250")], 7).unwrap()
}

/// Drive one input and acknowledge playback; returns all outputs.
fn step(c: &mut Interpreter, now: &mut DateTime<Utc>, input: Input<'_>) -> Vec<Output> {
    *now += Duration::seconds(2);
    let mut out = c.handle(*now, input).to_vec();
    if out.iter().any(|o| matches!(o, Output::Play { .. })) && !c.is_ended() {
        out.extend(c.handle(*now, Input::PlaybackFinished).iter().cloned());
    }
    out
}

fn said(out: &[Output]) -> String {
    out.iter()
        .filter_map(|o| match o {
            Output::Play { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn say(c: &mut Interpreter, now: &mut DateTime<Utc>, intent: &str) -> Vec<Output> {
    let n = nlu(intent);
    step(
        c,
        now,
        Input::Utterance {
            nlu: &n,
            emotion: None,
        },
    )
}

#[test]
fn answered_plays_the_rendered_prompt_then_listens() {
    let mut c = call();
    let out = c.handle(t0(), Input::Answered).to_vec();
    assert_eq!(
        out,
        vec![Output::Play {
            text: "李四您好，欠款250元。".into(),
            style: "happy".into(),
            barge_in: true
        }]
    );
    let out = c.handle(t0(), Input::PlaybackFinished).to_vec();
    assert_eq!(
        out,
        vec![Output::Listen {
            no_input_ms: 6000,
            max_speech_ms: 15000,
            dtmf: true
        }]
    );
    // Inputs before the answer, or after the end, are ignored.
    let mut fresh = call();
    assert!(fresh.handle(t0(), Input::NoInput).is_empty());
}

#[test]
fn conditions_pick_the_transition_and_the_path_is_recorded() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    say(&mut c, &mut now, "affirm");
    assert_eq!(c.state(), "big");
    let out = say(&mut c, &mut now, "affirm");
    assert!(
        matches!(out.last(), Some(Output::End { outcome, level: None }) if outcome == "done"),
        "{out:?}"
    );
    assert_eq!(c.path(), vec!["hello", "big", "bye"]);
    // One prompt per state: no variant to record.
    assert_eq!(c.path_variants(), vec![None, None, None]);
    let heard: Vec<&StepKind> = c
        .trace()
        .iter()
        .map(|s| &s.kind)
        .filter(|k| matches!(k, StepKind::Heard { .. }))
        .collect();
    assert_eq!(heard.len(), 2);
    assert!(c.trace().windows(2).all(|w| w[0].at <= w[1].at));
    // A smaller amount takes the other branch.
    let mut c = Interpreter::new(prog(), [("name", "李四"), ("amount", "50")], 7).unwrap();
    step(&mut c, &mut now, Input::Answered);
    say(&mut c, &mut now, "affirm");
    assert_eq!(c.path(), vec!["hello", "bye"]);
}

#[test]
fn do_not_call_always_wins() {
    for state_inputs in [vec![], vec!["affirm"]] {
        let mut now = t0();
        let mut c = call();
        step(&mut c, &mut now, Input::Answered);
        for i in state_inputs {
            say(&mut c, &mut now, i);
        }
        let out = say(&mut c, &mut now, "do_not_call");
        assert!(
            out.contains(&Output::Action {
                action: Action::AddDnc
            }),
            "{out:?}"
        );
        assert!(said(&out).contains("免打扰"));
        // The goodbye is played first; the call ends when it has finished.
        assert_eq!(
            out.last(),
            Some(&Output::End {
                outcome: "do_not_call".into(),
                level: None
            })
        );
        assert!(c.is_ended());
        assert!(c.handle(now, Input::NoInput).is_empty());
    }
}

#[test]
fn global_handlers_apply_unless_a_state_overrides_or_disables_them() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    // Global repeat: same prompt again, same state.
    let out = say(&mut c, &mut now, "repeat");
    assert_eq!(said(&out), "李四您好，欠款250元。");
    // ask_identity uses the built-in identity line, then repeats the prompt.
    let out = say(&mut c, &mut now, "ask_identity");
    assert!(said(&out).starts_with("我是智能客服助理。"), "{out:?}");
    say(&mut c, &mut now, "affirm");
    assert_eq!(c.state(), "big");
    // Per-state override: no transfer here.
    let out = say(&mut c, &mut now, "request_human");
    assert!(said(&out).starts_with("这一步不能转人工。"));
    assert!(!out.iter().any(|o| matches!(
        o,
        Output::Action {
            action: Action::Transfer { .. }
        }
    )));
    // `repeat` is disabled in `big`: it is a no-match (reprompt with the default text).
    let out = say(&mut c, &mut now, "repeat");
    assert!(said(&out).starts_with("不好意思"), "{out:?}");
    // In another state the global request_human transfers to the given queue.
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let out = say(&mut c, &mut now, "request_human");
    assert!(out.contains(&Output::Action {
        action: Action::Transfer {
            queue: Some("vip".into()),
            number: None
        }
    }));
    assert!(matches!(out.last(), Some(Output::End { outcome, .. }) if outcome == "transferred"));
}

#[test]
fn anger_switches_to_apologetic_style_then_escalates() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let angry = Emotion {
        label: EmotionLabel::Angry,
        confidence: 0.9,
    };
    let n = nlu("unknown");
    let out = step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: Some(angry),
        },
    );
    assert!(
        out.iter()
            .all(|o| !matches!(o, Output::Play { style, .. } if style != "apologetic")),
        "{out:?}"
    );
    assert!(said(&out).contains("非常抱歉"));
    // Style stays apologetic for the rest of the call.
    let out = say(&mut c, &mut now, "repeat");
    assert!(matches!(&out[0], Output::Play { style, .. } if style == "apologetic"));
    step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: Some(angry),
        },
    );
    let out = step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: Some(angry),
        },
    );
    // Third angry turn: the built-in escalation transfers to the script's default queue.
    assert!(
        out.contains(&Output::Action {
            action: Action::Transfer {
                queue: Some("care".into()),
                number: None
            }
        }),
        "{out:?}"
    );
    assert!(matches!(out.last(), Some(Output::End { outcome, .. }) if outcome == "transferred"));
}

#[test]
fn no_input_and_no_match_reprompt_then_give_up() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let out = step(&mut c, &mut now, Input::NoInput);
    assert_eq!(said(&out), "还在吗？李四您好，欠款250元。");
    let out = step(&mut c, &mut now, Input::NoInput);
    assert_eq!(
        out,
        vec![Output::End {
            outcome: "silent".into(),
            level: None
        }]
    );

    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let out = say(&mut c, &mut now, "ask_info");
    assert!(said(&out).starts_with("没听清。"));
    say(&mut c, &mut now, "ask_info");
    assert_eq!(c.path(), vec!["hello", "bye"]);
}

#[test]
fn dtmf_entities_actions_and_callback_time() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let out = say(&mut c, &mut now, "pay_now");
    assert!(out.contains(&Output::Action {
        action: Action::Level { level: Level::A }
    }));
    assert_eq!(c.state(), "when");
    let mut n = nlu("ask_info");
    n.entities.push(Entity {
        kind: "time".into(),
        value: serde_json::json!("2026-11-28T10:00:00+08:00"),
        text: "周六上午十点".into(),
        parts: Default::default(),
    });
    let out = step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: None,
        },
    );
    let at = Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).unwrap();
    assert!(
        out.contains(&Output::Action {
            action: Action::Callback { at }
        }),
        "{out:?}"
    );
    assert_eq!(c.var("promise"), Some("2026-11-28T10:00:00+08:00"));
    assert_eq!(
        out.last(),
        Some(&Output::End {
            outcome: "done".into(),
            level: Some(Level::A)
        })
    );

    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    step(&mut c, &mut now, Input::Dtmf("9"));
    assert_eq!(c.path(), vec!["hello", "bye"]);
}

#[test]
fn barge_in_follows_the_prompt_setting() {
    let mut now = t0();
    let mut c = call();
    c.handle(now, Input::Answered);
    // The first prompt allows barge-in.
    let out = c.handle(now, Input::BargeIn).to_vec();
    assert_eq!(out[0], Output::StopPlayback);
    assert!(matches!(out[1], Output::Listen { .. }));
    say(&mut c, &mut now, "affirm");
    assert_eq!(c.state(), "big");
    // `big` has barge_in: false. Speech during its prompt is ignored.
    let mut c = call();
    c.handle(now, Input::Answered);
    c.handle(now, Input::PlaybackFinished);
    let n = nlu("affirm");
    let out = c
        .handle(
            now,
            Input::Utterance {
                nlu: &n,
                emotion: None,
            },
        )
        .to_vec();
    assert!(matches!(
        &out[0],
        Output::Play {
            barge_in: false,
            ..
        }
    ));
    assert!(c.handle(now, Input::BargeIn).is_empty());
    assert!(c
        .handle(
            now,
            Input::Utterance {
                nlu: &n,
                emotion: None
            }
        )
        .is_empty());
    assert_eq!(c.state(), "big");
}

#[test]
fn the_last_words_before_an_end_cannot_be_barged_in_on() {
    let mut now = t0();
    let mut c = call();
    c.handle(now, Input::Answered);
    c.handle(now, Input::PlaybackFinished);
    now += Duration::seconds(2);
    let n = nlu("request_human");
    let out = c
        .handle(
            now,
            Input::Utterance {
                nlu: &n,
                emotion: None,
            },
        )
        .to_vec();
    // "好的，马上转人工。" then the end: the state allows barge-in, its closing
    // prompt does not, so the rest of a split sentence cannot cut the transfer.
    assert!(
        out.iter().any(
            |o| matches!(o, Output::Play { barge_in: false, text, .. } if text.contains("转人工"))
        ),
        "{out:?}"
    );
    assert!(c.handle(now, Input::BargeIn).is_empty());
    let out = c.handle(now, Input::PlaybackFinished).to_vec();
    assert!(
        out.iter().any(|o| matches!(o, Output::End { .. })) || c.is_ended(),
        "{out:?}"
    );
}

#[test]
fn a_continuation_asks_the_cut_question_again_and_answers_nothing() {
    let mut now = t0();
    let mut c = call();
    c.handle(now, Input::Answered);
    c.handle(now, Input::PlaybackFinished);
    now += Duration::seconds(2);
    let n = nlu("pay_now");
    c.handle(
        now,
        Input::Utterance {
            nlu: &n,
            emotion: None,
        },
    );
    assert_eq!(c.state(), "when");
    // While "哪天付？" plays, the rest of the last answer is still being said.
    assert!(c.handle(now, Input::Continuation).is_empty());
    // It cut the question: the question is asked again, in the same state.
    c.handle(now, Input::BargeIn);
    let heard_before = c
        .trace()
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Heard { .. }))
        .count();
    let out = c.handle(now, Input::Continuation).to_vec();
    assert_eq!(said(&out), "哪天付？", "{out:?}");
    assert_eq!(c.state(), "when");
    assert!(c
        .trace()
        .iter()
        .any(|s| matches!(&s.kind, StepKind::Handler { name } if name == "continuation")));
    let heard_after = c
        .trace()
        .iter()
        .filter(|s| matches!(s.kind, StepKind::Heard { .. }))
        .count();
    assert_eq!(heard_before, heard_after, "nothing was taken as an answer");
}

#[test]
fn max_turns_and_hangup_end_the_call() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let mut last = Vec::new();
    for _ in 0..9 {
        if c.is_ended() {
            break;
        }
        last = say(&mut c, &mut now, "repeat");
    }
    let out = c.handle(now, Input::PlaybackFinished).to_vec();
    let end = last.iter().chain(out.iter()).find_map(|o| match o {
        Output::End { outcome, .. } => Some(outcome.clone()),
        _ => None,
    });
    assert_eq!(end.as_deref(), Some("max_turns"));

    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    say(&mut c, &mut now, "pay_now");
    assert!(c.conversation_ended().is_none());
    let out = c.handle(now, Input::HungUp).to_vec();
    assert_eq!(
        out,
        vec![Output::End {
            outcome: "promised".into(),
            level: Some(Level::A)
        }]
    );
    assert_eq!(
        c.conversation_ended(),
        Some(waihu_core::EventKind::ConversationEnded {
            outcome: "promised".into(),
            level: Some("A".into()),
            path: vec!["hello".into(), "when".into()],
        })
    );
}

#[test]
fn missing_customer_variables_are_refused() {
    let e = Interpreter::new(prog(), [("name", "李四")], 0)
        .err()
        .unwrap();
    assert_eq!(e.0, vec!["amount".to_string()]);
    assert!(e.to_string().contains("variables not provided: amount"));
}

#[test]
fn same_inputs_give_same_outputs_and_variants_split_by_seed() {
    let src = r#"
name: ab
language: en
states:
  a:
    variants:
      - { id: x, say: "X" }
      - { id: y, say: "Y", weight: 3 }
    end: done
"#;
    let p = Arc::new(waihu_dialog::load_str(src, "ab.yaml").unwrap());
    let mut counts = [0usize; 2];
    for seed in 0..4000u64 {
        let mut a = Interpreter::new(p.clone(), Vec::<(&str, &str)>::new(), seed).unwrap();
        let mut b = Interpreter::new(p.clone(), Vec::<(&str, &str)>::new(), seed).unwrap();
        let oa = a.handle(t0(), Input::Answered).to_vec();
        let ob = b.handle(t0(), Input::Answered).to_vec();
        assert_eq!(oa, ob);
        counts[usize::from(said(&oa) == "Y")] += 1;
        // The variant played is kept with the path (the call's stored path_variants).
        assert_eq!(a.path(), ["a"]);
        let want = if said(&oa) == "Y" { "y" } else { "x" };
        assert_eq!(a.path_variants(), [Some(want)]);
    }
    // 1:3 weights.
    assert!((850..1150).contains(&counts[0]), "{counts:?}");
}

#[test]
fn low_confidence_counts_as_unknown() {
    let mut now = t0();
    let mut c = call();
    step(&mut c, &mut now, Input::Answered);
    let mut n = nlu("affirm");
    n.confidence = 0.2;
    let out = step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: None,
        },
    );
    assert!(said(&out).starts_with("没听清。"));
    assert!(c.trace().iter().any(|s| s.kind
        == StepKind::Heard {
            intent: "unknown".into()
        }));
}

#[test]
fn entity_parts_fill_dotted_slots() {
    const ADDR: &str = r#"
name: a
language: zh
style: neutral
states:
  ask:
    say: "请说新地址。"
    expect: { entities: [address] }
    on:
      - entity: address
        do: [ { set: { city: "{{entity.address.city}}", full: "{{entity.address}}" } } ]
        goto: bye
  bye:
    say: "好的，{{city}}。"
    end: done
"#;
    let prog = Arc::new(waihu_dialog::load_str(ADDR, "a.yaml").unwrap_or_else(|e| panic!("{e}")));
    let mut c = Interpreter::new(prog, std::iter::empty::<(&str, &str)>(), 1).unwrap();
    let mut now = t0();
    step(&mut c, &mut now, Input::Answered);
    let mut n = nlu("ask_info");
    n.entities.push(Entity {
        kind: "address".into(),
        value: serde_json::json!("杭州市西湖区文三路25号"),
        text: "杭州市西湖区文三路25号".into(),
        parts: [("city".to_string(), "杭州市".to_string())].into(),
    });
    let out = step(
        &mut c,
        &mut now,
        Input::Utterance {
            nlu: &n,
            emotion: None,
        },
    );
    assert_eq!(said(&out), "好的，杭州市。");
    assert_eq!(c.var("full"), Some("杭州市西湖区文三路25号"));
}

const BANDIT: &str = r#"
name: offer
language: en
states:
  pitch:
    variants:
      - { id: plain, say: "Would you like the offer?" }
      - { id: urgent, say: "The offer ends today. Would you like it?" }
    bandit:
      reward: { outcome: [accepted] }
      min_share: 0.1
    on:
      - intent: affirm
        goto: thanks
      - intent: deny
        end: declined
  thanks:
    say: "Thank you."
    end: accepted
"#;

#[test]
fn a_chosen_variant_overrides_the_weights_and_earns_its_reward() {
    let p = Arc::new(waihu_dialog::load_str(BANDIT, "offer.yaml").unwrap());
    let b = p.bandit_states().next().expect("one bandit state").2;
    assert_eq!(b.min_share, 0.1);
    assert_eq!((b.stop_prob, b.min_calls), (0.95, 200));
    for seed in 0..50u64 {
        let mut now = t0();
        let mut c = Interpreter::new(p.clone(), Vec::<(&str, &str)>::new(), seed).unwrap();
        c.choose_variant("pitch", "urgent").unwrap();
        let out = c.handle(now, Input::Answered).to_vec();
        assert_eq!(said(&out), "The offer ends today. Would you like it?");
        let yes = seed % 2 == 0;
        say(&mut c, &mut now, if yes { "affirm" } else { "deny" });
        let path: Vec<String> = c.path().into_iter().map(String::from).collect();
        let variants: Vec<Option<String>> = c
            .path_variants()
            .into_iter()
            .map(|v| v.map(String::from))
            .collect();
        let (outcome, _) = c.ended().expect("ended").clone();
        let r = p.bandit_rewards(&path, &variants, Some(&outcome), None);
        assert_eq!(r.len(), 1);
        assert_eq!((r[0].variant.as_str(), r[0].variant_index), ("urgent", 1));
        assert_eq!(r[0].success, yes, "outcome {outcome}");
    }
    // Names the script does not have are refused.
    let mut c = Interpreter::new(p.clone(), Vec::<(&str, &str)>::new(), 1).unwrap();
    assert!(c
        .choose_variant("pitch", "nope")
        .unwrap_err()
        .contains("no variant `nope`"));
    assert!(c
        .choose_variant("nowhere", "plain")
        .unwrap_err()
        .contains("no state"));
    // A call that never reached the state earns nothing.
    assert!(p.bandit_rewards(&[], &[], Some("hangup"), None).is_empty());
}

#[test]
fn only_the_runtime_sets_the_voice_check() {
    let src = r#"
name: v
language: zh
style: neutral
variables: { name: 张三 }
states:
  hello:
    say: "是{{name}}本人吗？"
    expect: { intents: [affirm] }
    on:
      - intent: affirm
        goto: check
  check:
    on:
      - when: voice.alert
        end: alert
      - when: 'voice.verdict == "match"'
        goto: disclose
      - end: unverified
  disclose:
    say: "您的账单是100元。"
    end: done
"#;
    let prog = Arc::new(waihu_dialog::load_str(src, "v.yaml").expect("valid"));
    let run = |customer: &[(&str, &str)], voice: Option<(&str, Option<&str>)>| {
        let vars = [("name", "张三")].iter().chain(customer).copied();
        let mut c = Interpreter::new(prog.clone(), vars, 1).unwrap();
        let mut now = t0();
        step(&mut c, &mut now, Input::Answered);
        step(&mut c, &mut now, Input::PlaybackFinished);
        if let Some((verdict, alert)) = voice {
            c.set_voice(verdict, 0.95, alert);
        }
        say(&mut c, &mut now, "affirm");
        c.ended().map(|(o, _)| o.clone())
    };
    assert_eq!(run(&[], Some(("match", None))).as_deref(), Some("done"));
    assert_eq!(
        run(&[], Some(("no_match", None))).as_deref(),
        Some("unverified")
    );
    assert_eq!(run(&[], None).as_deref(), Some("unverified"));
    assert_eq!(
        run(&[], Some(("match", Some("case-1")))).as_deref(),
        Some("alert")
    );
    // A customer record cannot claim a verified voice.
    assert_eq!(
        run(&[("voice.verdict", "match")], None).as_deref(),
        Some("unverified")
    );
}
