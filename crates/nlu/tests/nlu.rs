//! End-to-end: held-out accuracy, custom intents, classify output, no panics.
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use waihu_nlu::{eval, parse_tsv, CustomIntent, Nlu, HELDOUT_EN, HELDOUT_ZH};

fn accuracy(nlu: &Nlu, data: &str) -> eval::Report {
    let test = parse_tsv(data).expect("held-out data parses");
    let pairs: Vec<(String, String)> = test
        .iter()
        .map(|(l, t)| (l.clone(), nlu.intent(t).intent))
        .collect();
    eval::evaluate(&pairs)
}

#[test]
fn held_out_accuracy() {
    let nlu = Nlu::builtin();
    let zh = accuracy(&nlu, HELDOUT_ZH);
    let en = accuracy(&nlu, HELDOUT_EN);
    eprintln!(
        "zh {:.4} / {:.4}  en {:.4} / {:.4}",
        zh.accuracy, zh.macro_f1, en.accuracy, en.macro_f1
    );
    assert!(zh.n > 300 && en.n > 300);
    assert!(zh.accuracy >= 0.92, "zh accuracy {}", zh.accuracy);
    assert!(en.accuracy >= 0.91, "en accuracy {}", en.accuracy);
    assert!(zh.macro_f1 >= 0.90 && en.macro_f1 >= 0.90);
}

#[test]
fn held_out_never_trained_on() {
    let train: std::collections::HashSet<String> = waihu_nlu::builtin_training_data()
        .into_iter()
        .map(|(_, t)| waihu_nlu::normalize(&t))
        .collect();
    for (_, t) in waihu_nlu::builtin_heldout_data() {
        assert!(
            !train.contains(&waihu_nlu::normalize(&t)),
            "{t} is in the training data"
        );
    }
}

#[test]
fn typical_phone_utterances() {
    let nlu = Nlu::builtin();
    for (text, want) in [
        ("嗯 对的", "affirm"),
        ("你哪位", "ask_identity"),
        ("在开车 晚点打", "busy_callback"),
        ("不需要 谢谢", "not_interested"),
        ("别再给我打电话了", "do_not_call"),
        ("转人工", "request_human"),
        ("你说什么 没听清", "repeat"),
        ("你打错了", "wrong_number"),
        ("i'm driving call me later", "busy_callback"),
        ("stop calling me", "do_not_call"),
        ("who is this", "ask_identity"),
    ] {
        let r = nlu.intent(text);
        assert_eq!(r.intent, want, "{text}: {r:?}");
        assert!(r.confidence > 0.0 && r.confidence <= 1.0);
    }
}

#[test]
fn custom_intents_train_fast_and_rules_win() {
    let custom = vec![
        CustomIntent {
            name: "ask_store_location".into(),
            examples: vec![
                "你们门店在哪".into(),
                "最近的门店在什么地方".into(),
                "店在哪个位置".into(),
                "where is your store".into(),
                "where's the nearest shop".into(),
                "门店地址是多少".into(),
            ],
            ..Default::default()
        },
        CustomIntent {
            name: "wants_coupon".into(),
            keywords: vec!["优惠券".into(), "coupon".into()],
            regexes: vec![r"^给我.*券$".into()],
            ..Default::default()
        },
    ];
    let _ = Nlu::builtin(); // loads jieba and the built-in features once per process
    let t = std::time::Instant::now();
    let nlu = Nlu::with_custom(&custom).expect("valid custom intents");
    eprintln!("custom model trained in {:?}", t.elapsed());
    assert_eq!(
        nlu.intent("那个 你们门店在哪里啊").intent,
        "ask_store_location"
    );
    assert_eq!(
        nlu.intent("uh where is the store").intent,
        "ask_store_location"
    );
    let r = nlu.intent("有没有优惠券");
    assert!(r.by_rule && r.intent == "wants_coupon" && r.confidence == 1.0);
    assert!(nlu.intent("给我一张代金券").by_rule);
    assert!(
        !nlu.intent("coupons").by_rule,
        "ASCII keywords match whole words"
    );
    // Built-ins still work.
    assert_eq!(nlu.intent("在开会 晚点打").intent, "busy_callback");
    // Bad regexes are reported, not panicked on.
    let bad = CustomIntent {
        name: "x".into(),
        regexes: vec!["(".into()],
        ..Default::default()
    };
    assert!(Nlu::with_custom(&[bad]).is_err());
    assert!(Nlu::with_custom(&[CustomIntent {
        name: "empty".into(),
        ..Default::default()
    }])
    .is_err());
}

#[test]
fn script_intents_parse_from_yaml() {
    let src = "name: demo\nintents:\n  ask_store:\n    examples: [门店在哪, where is the store]\n    keywords: [门店]\nstates: {}\n";
    let i = waihu_nlu::parse_script_intents(src).expect("parses");
    assert_eq!(i.len(), 1);
    assert_eq!(i[0].name, "ask_store");
    assert_eq!(i[0].keywords, vec!["门店"]);
    let err = waihu_nlu::parse_script_intents("intents:\n  a: [1\n").expect_err("bad yaml");
    assert!(err.to_string().contains("line"), "{err}");
}

#[test]
fn classify_fills_every_field() {
    let nlu = Nlu::builtin();
    let now = Utc
        .with_ymd_and_hms(2026, 11, 25, 2, 0, 0)
        .single()
        .expect("valid");
    let r = nlu.classify("在开车 明天下午三点再打吧", now, chrono_tz::Asia::Shanghai);
    assert_eq!(r.intent, "busy_callback");
    assert_eq!(r.entities.len(), 1);
    assert_eq!(r.entities[0].kind, "time");
    assert_eq!(
        r.entities[0].value,
        serde_json::json!("2026-11-26T15:00:00+08:00")
    );
    assert_eq!(r.entities[0].text, "明天下午三点");
    let r = nlu.classify("滚 别再打了 烦死了", now, chrono_tz::Asia::Shanghai);
    assert_eq!(r.intent, "do_not_call");
    assert!(r.sentiment.angry);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn never_panics_on_arbitrary_text(s in "\\PC{0,40}") {
        let nlu = Nlu::builtin();
        let now = Utc.with_ymd_and_hms(2026, 3, 8, 6, 59, 0).single().expect("valid");
        let r = nlu.classify(&s, now, chrono_tz::America::New_York);
        prop_assert!(r.confidence >= 0.0 && r.confidence <= 1.0);
        prop_assert!(r.sentiment.score >= -1.0 && r.sentiment.score <= 1.0);
    }

    #[test]
    fn never_panics_on_number_and_time_soup(
        s in "[零一二两三四五六七八九十百千万亿幺点半号月周星期下上午明天后以个小时分钟块元0-9.,:$¥a-z ]{0,30}"
    ) {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 15, 59, 59).single().expect("valid");
        let _ = waihu_nlu::entities::extract(&s, now, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn never_panics_on_english_soup(
        s in "(in |an |hour |minutes |tomorrow |next |monday |at |pm |am |dollars |two |hundred |thousand |a |and |oh |nine |[0-9]{1,3} ){0,8}"
    ) {
        let now = Utc.with_ymd_and_hms(2026, 12, 31, 23, 59, 59).single().expect("valid");
        let _ = waihu_nlu::entities::extract(&s, now, chrono_tz::Pacific::Kiritimati);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn acoustic_analysis_never_panics(samples in proptest::collection::vec(any::<i16>(), 0..4000), rate in prop_oneof![Just(8000u32), Just(16000), 0u32..200_000]) {
        let r = waihu_nlu::emotion::analyze(&samples, rate, Some("好的"));
        let f = &r.acoustic;
        for v in [f.duration_s, f.rms_dbfs, f.energy_std_db, f.pitch_mean_hz, f.pitch_range_st, f.voiced_ratio, f.pause_ratio, f.speech_rate, f.arousal, r.emotion.confidence] {
            prop_assert!(v.is_finite());
        }
        prop_assert!((0.0..=1.0).contains(&r.emotion.confidence));
    }
}

/// Few-shot custom intents: a script's intents with ≤ 12 examples each, scored
/// on phrasings they never saw. Prints the figures; fails below the floor.
#[test]
fn few_shot_custom_intents() {
    for (lang, src) in [("zh", waihu_nlu::FEWSHOT_ZH), ("en", waihu_nlu::FEWSHOT_EN)] {
        let set = eval::parse_fewshot(src).unwrap();
        assert!(set.intents.iter().all(|i| i.examples.len() <= 12));
        let r = eval::fewshot(&set).unwrap();
        eprintln!(
            "few-shot {lang}: {:.1}% of {} (built-in swallowed {:.1}%, other custom {:.1}%, unknown {:.1}%)",
            r.accuracy * 100.0,
            r.n,
            r.swallowed_by_builtin * 100.0,
            r.other_custom * 100.0,
            r.unknown * 100.0
        );
        for (g, p, t) in &r.errors {
            eprintln!("  {g} -> {p}: {t}");
        }
        assert!(r.n >= 48, "{lang}: {} held-out lines", r.n);
        // The linear model alone measured 21% (zh) and 19% (en) here: this set
        // is what a sentence encoder must lift (issue 15). The floor catches a
        // script model that stops learning its custom intents at all.
        assert!(
            r.accuracy >= 0.15,
            "{lang}: few-shot accuracy {:.3}",
            r.accuracy
        );
    }
}
