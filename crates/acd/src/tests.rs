use super::*;
use proptest::prelude::*;

const FILE: &str = "\
agents:
  - id: li
    uri: sip:li@127.0.0.1:5062
    skills: [zh, after_sales, order_service]
  - id: wang
    uri: sip:wang@127.0.0.1:5064
    skills: [zh, order_service]
  - id: amy
    uri: sip:amy@127.0.0.1:5066
    skills: [en, order_service]
queues:
  - name: order_service
    skills: [zh, order_service]
    ring_timeout_s: 10
    wait_timeout_s: 30
    wrap_up_s: 20
  - name: after_sales
";

fn acd() -> Acd {
    Acd::new(Config::from_yaml(FILE, "agents.yaml").unwrap(), 0)
}

fn offered(s: Step) -> String {
    match s {
        Step::Offer { agent, .. } => agent,
        other => panic!("expected an offer, got {other:?}"),
    }
}

#[test]
fn the_longest_idle_agent_with_the_skills_gets_the_call() {
    let mut a = acd();
    // wang idle since 0, li since 5 s (after a call and wrap-up).
    a.resume("li", 0).unwrap();
    let mut w = a.request("order_service", 1_000).unwrap();
    assert_eq!(
        offered(a.next(&mut w, 1_000)),
        "li",
        "file order breaks ties"
    );
    a.answered(&w, 2_000);
    a.ended_call(&w, 3_000);
    // li wraps up until 23 s: wang is the only free one now and the longest idle after.
    let mut w2 = a.request("order_service", 4_000).unwrap();
    assert_eq!(offered(a.next(&mut w2, 4_000)), "wang");
    a.answered(&w2, 4_500);
    a.ended_call(&w2, 5_000); // wang wraps up until 25 s
    let mut w3 = a.request("order_service", 24_000).unwrap();
    assert_eq!(
        offered(a.next(&mut w3, 24_000)),
        "li",
        "li is free from 23 s, wang still wraps up"
    );
    // amy (en) never serves the zh queue.
    assert_ne!(a.state("amy", 24_000), None);
    assert_eq!(a.state("amy", 24_000), Some(AgentState::Available));
}

#[test]
fn skills_default_to_the_queue_name() {
    let mut a = acd();
    let mut w = a.request("after_sales", 0).unwrap();
    assert_eq!(offered(a.next(&mut w, 0)), "li");
    a.no_answer(&mut w, 15_000);
    // Only li has after_sales: rung again, not given up.
    assert_eq!(offered(a.next(&mut w, 15_000)), "li");
    assert!(matches!(
        a.request("nope", 0),
        Err(AcdError::UnknownQueue(_))
    ));
}

#[test]
fn ring_timeout_moves_to_the_next_agent_and_never_past_the_wait() {
    let mut a = acd();
    let mut w = a.request("order_service", 0).unwrap();
    let first = a.next(&mut w, 0);
    assert_eq!(
        first,
        Step::Offer {
            agent: "li".into(),
            uri: "sip:li@127.0.0.1:5062".into(),
            ring_ms: 10_000
        }
    );
    assert_eq!(a.state("li", 0).unwrap().name(), "ringing");
    a.no_answer(&mut w, 10_000);
    assert_eq!(a.state("li", 10_000), Some(AgentState::Available));
    assert_eq!(offered(a.next(&mut w, 10_000)), "wang", "li was tried");
    a.no_answer(&mut w, 20_000);
    // Both tried: li again, but only for what is left of the 30 s wait.
    match a.next(&mut w, 25_000) {
        Step::Offer { agent, ring_ms, .. } => {
            assert_eq!(agent, "li");
            assert_eq!(ring_ms, 5_000);
        }
        other => panic!("{other:?}"),
    }
    a.no_answer(&mut w, 29_500);
    assert_eq!(
        a.next(&mut w, 29_500),
        Step::GiveUp {
            reason: GiveUp::Timeout,
            waited_ms: 29_500
        }
    );
}

#[test]
fn busy_agents_make_the_caller_wait_then_time_out() {
    let mut a = acd();
    let mut w1 = a.request("order_service", 0).unwrap();
    let mut w2 = a.request("order_service", 0).unwrap();
    a.next(&mut w1, 0);
    a.answered(&w1, 100);
    a.next(&mut w2, 0);
    a.answered(&w2, 100);
    let mut w3 = a.request("order_service", 1_000).unwrap();
    assert_eq!(
        a.next(&mut w3, 1_000),
        Step::Wait {
            until: 1_000 + POLL_MS
        }
    );
    // One ends: wrap-up 20 s; the caller waits for its end, not a poll past it.
    a.ended_call(&w1, 5_000);
    assert_eq!(
        a.next(&mut w3, 24_900),
        Step::Wait { until: 25_000 },
        "wakes when the wrap-up ends"
    );
    assert_eq!(offered(a.next(&mut w3, 25_000)), "li");
    let mut w4 = a.request("order_service", 26_000).unwrap();
    assert!(matches!(a.next(&mut w4, 26_000), Step::Wait { .. }));
    assert!(matches!(
        a.next(&mut w4, 55_500),
        Step::GiveUp {
            reason: GiveUp::Timeout,
            ..
        }
    ));
}

#[test]
fn paused_agents_get_no_calls_and_all_paused_gives_up_at_once() {
    let mut a = acd();
    a.pause("li", 0).unwrap();
    let mut w = a.request("order_service", 0).unwrap();
    assert_eq!(offered(a.next(&mut w, 0)), "wang");
    a.no_answer(&mut w, 1_000);
    assert_eq!(offered(a.next(&mut w, 1_000)), "wang", "li stays paused");
    a.no_answer(&mut w, 2_000);
    a.pause("wang", 2_000).unwrap();
    assert_eq!(
        a.next(&mut w, 2_000),
        Step::GiveUp {
            reason: GiveUp::AllPaused,
            waited_ms: 2_000
        }
    );
    a.resume("wang", 3_000).unwrap();
    assert_eq!(offered(a.next(&mut w, 3_000)), "wang");
    assert_eq!(a.pause("wang", 3_000), Err(AcdError::Busy("wang".into())));
    assert!(matches!(
        a.pause("nobody", 0),
        Err(AcdError::UnknownAgent(_))
    ));
}

#[test]
fn a_caller_hanging_up_frees_the_ringing_agent() {
    let mut a = acd();
    let mut w = a.request("order_service", 0).unwrap();
    a.next(&mut w, 0);
    a.abandon(&mut w, 500);
    assert_eq!(a.state("li", 500), Some(AgentState::Available));
}

#[test]
fn wrap_up_ends_on_time_and_counts_as_idle_from_its_end() {
    let mut a = acd();
    let mut w = a.request("order_service", 0).unwrap();
    a.next(&mut w, 0);
    a.answered(&w, 0);
    a.ended_call(&w, 1_000);
    assert_eq!(
        a.state("li", 20_999),
        Some(AgentState::WrapUp { until: 21_000 })
    );
    assert_eq!(a.state("li", 21_000), Some(AgentState::Available));
    // wang idle since 0, li since 21 s: wang first.
    let mut w2 = a.request("order_service", 30_000).unwrap();
    assert_eq!(offered(a.next(&mut w2, 30_000)), "wang");
}

#[test]
fn config_errors_name_file_line_and_field() {
    let e = Config::from_yaml(
        "agents:\n  - id: li\n    uri: sip:li@h\n    skils: [zh]\nqueues: []\n",
        "a.yaml",
    )
    .unwrap_err();
    assert_eq!(e.file, "a.yaml");
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.field.starts_with("agents[0]"), "{e}");
    assert!(e.to_string().starts_with("a.yaml:4:"), "{e}");

    let e = Config::from_yaml(
        "agents:\n  - id: li\n    uri: sip:li@h\n    skills: [x]\n  - id: li\n    uri: tel:123\nqueues: []\n",
        "a.yaml",
    )
    .unwrap_err();
    assert_eq!(e.field, "agents[1].id");
    assert_eq!(e.line, Some(2), "the first line naming li: {e}");

    let e = Config::from_yaml("agents:\n  - id: li\n    uri: li@h\nqueues: []\n", "a.yaml")
        .unwrap_err();
    assert_eq!(e.field, "agents[0].uri");
    assert_eq!(e.line, Some(3));

    let e = Config::from_yaml(
        "agents:\n  - id: li\n    uri: sip:li@h\n    skills: [zh]\nqueues:\n  - name: vip\n",
        "a.yaml",
    )
    .unwrap_err();
    assert_eq!(e.field, "queues[0].skills");
    assert_eq!(e.line, Some(6));
    assert!(e.message.contains("vip"), "{e}");

    let e = Config::from_yaml(
        "agents:\n  - id: li\n    uri: sip:li@h\n    skills: [vip]\nqueues:\n  - name: vip\n    ring_timeout_s: 0\n",
        "a.yaml",
    )
    .unwrap_err();
    assert_eq!(e.field, "queues[0].ring_timeout_s");
    assert_eq!(e.line, Some(7));
}

proptest! {
    /// Any text: an agents file or an error with a field; never a panic.
    #[test]
    fn the_parser_never_panics(text in "\\PC{0,300}") {
        let _ = Config::from_yaml(&text, "p.yaml");
    }

    /// Mutating a valid file anywhere yields a valid file or a located error.
    #[test]
    fn mutated_files_parse_or_say_where(pos in 0usize..FILE.len(), ch in "[ :\\-\\[\\]a-z0-9\\n]") {
        let mut s = FILE.to_string();
        let p = (0..=pos).rev().find(|p| s.is_char_boundary(*p)).unwrap_or(0);
        s.insert_str(p, &ch);
        match Config::from_yaml(&s, "p.yaml") {
            Ok(cfg) => {
                let mut a = Acd::new(cfg, 0);
                // Routing on whatever parsed never panics either.
                let names: Vec<String> = a.queues().iter().map(|q| q.name.clone()).collect();
                for q in names {
                    let mut w = a.request(&q, 0).unwrap();
                    let _ = a.next(&mut w, 0);
                }
            }
            Err(e) => {
                prop_assert!(!e.field.is_empty());
                prop_assert!(e.line.is_some() || e.field.contains('['), "{}", e);
            }
        }
    }

    /// Routing invariants under random operations: an offered agent had the
    /// skills and was available; a paused agent is never offered a call.
    #[test]
    fn routing_respects_states(ops in proptest::collection::vec((0u8..6, 0usize..3, 0u64..5_000), 1..80)) {
        let mut a = acd();
        let mut now = 0;
        let ids = ["li", "wang", "amy"];
        let mut waits: Vec<Waiting> = Vec::new();
        for (op, who, dt) in ops {
            now += dt;
            match op {
                0 => { let _ = a.pause(ids[who], now); }
                1 => { let _ = a.resume(ids[who], now); }
                2 => {
                    let before = a.snapshot(now);
                    let mut w = a.request("order_service", now).unwrap();
                    if let Step::Offer { agent, .. } = a.next(&mut w, now) {
                        prop_assert!(agent != "amy");
                        let st = before.iter().find(|(i, _)| *i == agent).unwrap().1;
                        prop_assert_eq!(st, AgentState::Available);
                        waits.push(w);
                    }
                }
                3 => if let Some(w) = waits.first() { a.answered(w, now); },
                4 => if !waits.is_empty() { let w = waits.remove(0); a.ended_call(&w, now); },
                _ => if !waits.is_empty() { let mut w = waits.remove(0); a.no_answer(&mut w, now); },
            }
        }
    }
}

#[test]
fn a_short_wait_gives_up_in_time_and_takes_an_agent_freed_within_it() {
    let mut a = acd();
    // Both zh order agents busy: li on a call, wang ringing for another caller.
    let mut w1 = a.request("order_service", 0).unwrap();
    assert_eq!(offered(a.next(&mut w1, 0)), "li");
    a.answered(&w1, 100);
    let mut w2 = a.request("order_service", 0).unwrap();
    assert_eq!(offered(a.next(&mut w2, 0)), "wang");
    // A predictive call waits 2 s, not the queue's 30.
    let mut w = a.request_within("order_service", 1_000, 2_000).unwrap();
    match a.next(&mut w, 1_000) {
        Step::Wait { until } => assert!(until <= 1_000 + POLL_MS, "{until}"),
        other => panic!("{other:?}"),
    }
    // wang's caller gave up ringing: wang is free at 2.2 s and rung for at most what is left.
    a.no_answer(&mut w2, 2_200);
    a.abandon(&mut w2, 2_200);
    match a.next(&mut w, 2_200) {
        Step::Offer { agent, ring_ms, .. } => {
            assert_eq!(agent, "wang");
            assert_eq!(ring_ms, 800);
        }
        other => panic!("{other:?}"),
    }
    a.no_answer(&mut w, 2_850);
    assert!(matches!(
        a.next(&mut w, 2_850),
        Step::GiveUp {
            reason: GiveUp::Timeout,
            waited_ms: 1_850
        }
    ));
}

#[test]
fn queue_states_are_the_skilled_agents_only() {
    let mut a = acd();
    let mut w = a.request("order_service", 0).unwrap();
    assert_eq!(offered(a.next(&mut w, 0)), "li");
    a.answered(&w, 500);
    let s: Vec<(String, AgentState)> = a
        .queue_states("order_service", 1_000)
        .unwrap()
        .into_iter()
        .map(|(spec, st)| (spec.id.clone(), st))
        .collect();
    assert_eq!(
        s,
        vec![
            ("li".to_string(), AgentState::OnCall { since: 500 }),
            ("wang".to_string(), AgentState::Available)
        ]
    );
    assert_eq!(a.queue_states("after_sales", 1_000).unwrap().len(), 1);
    assert!(a.queue_states("nope", 1_000).is_none());
}

const REGISTERING: &str = "\
registrar: {realm: callcenter, algorithms: [MD5]}
agents:
  - id: li
    register: {user: li, password_env: WAIHU_AGENT_LI}
    skills: [zh, default]
  - id: wang
    register: {user: wang, password_file: secrets/wang.txt}
    uri: sip:wang@127.0.0.1:5064
    skills: [zh, default]
queues:
  - name: default
    skills: [zh, default]
";

#[test]
fn registering_agents_parse_and_resolve_their_password_file() {
    let cfg = Config::from_yaml(REGISTERING, "agents.yaml").unwrap();
    assert!(cfg.any_registers());
    assert_eq!(cfg.registrar().realm, "callcenter");
    assert_eq!(cfg.registrar().algorithms, ["MD5"]);
    assert_eq!(cfg.registrar().min_expires_s, 60);
    let r = cfg.agents[0].register.as_ref().unwrap();
    assert_eq!(
        r.source(),
        Some(PasswordSource::Env("WAIHU_AGENT_LI".into()))
    );
    let cfg = cfg.with_base(Some(std::path::Path::new("/etc/waihu")));
    assert_eq!(
        cfg.agents[1].register.as_ref().unwrap().source(),
        Some(PasswordSource::File("/etc/waihu/secrets/wang.txt".into()))
    );
    let acd = Acd::new(cfg, 0);
    assert_eq!(
        acd.registrations(),
        [("li".into(), "li".into()), ("wang".into(), "wang".into())]
    );
    // Without a registrar section the realm is waihu, both algorithms offered.
    let plain = Config::from_yaml(FILE, "agents.yaml").unwrap();
    assert!(!plain.any_registers());
    assert_eq!(plain.registrar().realm, "waihu");
    assert_eq!(plain.registrar().algorithms, ["SHA-256", "MD5"]);
}

#[test]
fn register_errors_name_line_and_field_and_an_inline_password_is_refused() {
    let inline = REGISTERING.replace("password_env: WAIHU_AGENT_LI", "password: hunter2");
    let e = Config::from_yaml(&inline, "agents.yaml").unwrap_err();
    assert_eq!(e.field, "agents[0].register.password", "{e}");
    assert!(e.to_string().starts_with("agents.yaml:4:"), "{e}");
    assert!(e.message.contains("password_env"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");

    let cases = [
        (
            REGISTERING.replace(
                "password_env: WAIHU_AGENT_LI",
                "password_env: X, password_file: y",
            ),
            "agents[0].register.password_file",
        ),
        (
            REGISTERING.replace(", password_env: WAIHU_AGENT_LI", ""),
            "agents[0].register",
        ),
        (
            REGISTERING.replace("user: wang", "user: li"),
            "agents[1].register.user",
        ),
        (
            REGISTERING.replace("user: li,", "user: 'l i',"),
            "agents[0].register.user",
        ),
        (
            REGISTERING.replace(
                "    register: {user: li, password_env: WAIHU_AGENT_LI}\n",
                "",
            ),
            "agents[0]",
        ),
        (
            REGISTERING.replace("realm: callcenter", "realm: ''"),
            "registrar.realm",
        ),
        (
            REGISTERING.replace("[MD5]", "[SHA-512]"),
            "registrar.algorithms",
        ),
        (
            REGISTERING.replace("{realm: callcenter", "{min_expires_s: 0, realm: callcenter"),
            "registrar.min_expires_s",
        ),
    ];
    for (text, field) in cases {
        let e = Config::from_yaml(&text, "agents.yaml").unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.line.is_some(), "{e}");
    }
    let e = Config::from_yaml(
        &REGISTERING.replace("password_env:", "pasword_env:"),
        "agents.yaml",
    )
    .unwrap_err();
    assert_eq!(
        (e.line, e.field.as_str()),
        (Some(4), "agents[0].register.pasword_env"),
        "{e}"
    );
}

#[test]
fn an_agent_without_a_live_registration_is_never_offered_a_call() {
    let mut a = Acd::new(Config::from_yaml(REGISTERING, "agents.yaml").unwrap(), 0);
    // Nobody registered; wang has a fallback uri: he is offered, at that uri.
    let mut w = a.request("default", 1_000).unwrap();
    match a.next_with(&mut w, 1_000, &|s: &AgentSpec| s.uri.clone()) {
        Step::Offer { agent, uri, .. } => assert_eq!(
            (agent.as_str(), uri.as_str()),
            ("wang", "sip:wang@127.0.0.1:5064")
        ),
        other => panic!("{other:?}"),
    }
    a.no_answer(&mut w, 2_000);
    // li registered (idle longest after wang's try): offered at the binding's contact.
    let reg = |s: &AgentSpec| match s.id.as_str() {
        "li" => Some("sip:li@127.0.0.1:5070;transport=udp".to_string()),
        _ => s.uri.clone(),
    };
    match a.next_with(&mut w, 2_000, &reg) {
        Step::Offer { agent, uri, .. } => assert_eq!(
            (agent.as_str(), uri.as_str()),
            ("li", "sip:li@127.0.0.1:5070;transport=udp")
        ),
        other => panic!("{other:?}"),
    }
    a.no_answer(&mut w, 3_000);
    // wang paused and li unregistered: nobody can come, the caller is not kept waiting.
    a.pause("wang", 3_000).unwrap();
    match a.next_with(&mut w, 3_000, &|s: &AgentSpec| s.uri.clone()) {
        Step::GiveUp { reason, .. } => assert_eq!(reason.name(), "unregistered"),
        other => panic!("{other:?}"),
    }
    // `next` knows no registrations: only uri agents are reachable.
    match a.next(&mut w, 3_000) {
        Step::GiveUp { reason, .. } => assert_eq!(reason, GiveUp::Unregistered),
        other => panic!("{other:?}"),
    }
    // Unreachable agents stay available (not paused): nothing about their state changed.
    assert_eq!(a.state("li", 3_000), Some(AgentState::Available));
}

proptest! {
    #[test]
    fn an_unreachable_agent_is_never_offered(reachable in proptest::collection::vec(any::<bool>(), 3), steps in 1usize..20) {
        let mut a = acd();
        let ids = ["li", "wang", "amy"];
        let f = |s: &AgentSpec| {
            let i = ids.iter().position(|x| *x == s.id).unwrap_or(0);
            reachable[i].then(|| s.uri.clone()).flatten()
        };
        let mut w = a.request("order_service", 0).unwrap();
        for k in 0..steps {
            let now = (k as u64) * 500;
            match a.next_with(&mut w, now, &f) {
                Step::Offer { agent, uri, .. } => {
                    let i = ids.iter().position(|x| *x == agent).unwrap();
                    prop_assert!(reachable[i]);
                    prop_assert!(!uri.is_empty());
                    a.no_answer(&mut w, now);
                }
                Step::GiveUp { .. } => break,
                Step::Wait { .. } => {}
            }
        }
    }
}

#[test]
fn the_example_agents_file_is_valid() {
    let cfg = Config::from_yaml(
        include_str!("../../../examples/agents.yaml"),
        "examples/agents.yaml",
    )
    .unwrap();
    assert!(cfg.any_registers());
    assert_eq!(cfg.agents.len(), 3);
    let mut a = Acd::new(cfg, 0);
    // emma starts paused; li registers and has no uri (unreachable by `next`).
    let mut w = a.request("order_service", 0).unwrap();
    assert_eq!(offered(a.next(&mut w, 0)), "wang");
}
