//! The validator: every problem found, each at the right line and column.
use waihu_dialog::{load_str, LoadError};

fn errors(src: &str) -> Vec<(u32, u32, String)> {
    match load_str(src, "t.yaml") {
        Ok(_) => panic!("expected errors"),
        Err(LoadError { diagnostics, .. }) => diagnostics
            .into_iter()
            .map(|d| (d.pos.line, d.pos.col, d.message))
            .collect(),
    }
}

fn has(errs: &[(u32, u32, String)], line: u32, col: u32, needle: &str) {
    assert!(
        errs.iter()
            .any(|(l, c, m)| *l == line && *c == col && m.contains(needle)),
        "no error {line}:{col} containing {needle:?} in {errs:#?}"
    );
}

const BAD: &str = r#"name: t
language: zh
variables:
  name: 张三
intents:
  custom_x:
    examples: []
states:
  a:
    say: "你好{{nmae}}"
    on:
      - intent: affirm
        goto: bb
      - intent: afirm
        goto: b
  b:
    say: "b {{name"
    style: shouty
    end: done
"#;

#[test]
fn reports_every_name_and_template_error_with_position() {
    let e = errors(BAD);
    has(&e, 6, 3, "intent `custom_x` has no examples");
    has(&e, 6, 3, "意图 `custom_x` 没有例句 / ");
    has(&e, 10, 10, "no variable `nmae` is provided");
    has(&e, 10, 10, "did you mean `name`");
    has(&e, 13, 15, "unknown state `bb`");
    has(&e, 14, 17, "unknown intent `afirm`");
    has(&e, 17, 10, "never closed");
    has(&e, 18, 12, "unknown style `shouty`");
    assert_eq!(e.len(), 6, "{e:#?}");
    let text = load_str(BAD, "t.yaml").unwrap_err().to_string();
    assert!(
        text.lines().next().unwrap().starts_with("t.yaml:6:3: "),
        "{text}"
    );
}

#[test]
fn reports_unreachable_states_and_states_that_cannot_end() {
    let e = errors(
        r#"name: t
language: en
states:
  a:
    say: "hello"
    on:
      - intent: affirm
        goto: loop
      - intent: deny
        end: refused
  loop:
    say: "loop"
    on:
      - intent: affirm
        goto: loop2
  loop2:
    say: "again"
    on:
      - intent: affirm
        goto: loop
  orphan:
    say: "nobody comes here"
    end: x
"#,
    );
    has(&e, 11, 3, "`loop` has no way to end");
    has(&e, 16, 3, "`loop2` has no way to end");
    has(&e, 21, 3, "`orphan` is unreachable");
    assert_eq!(e.len(), 3, "{e:#?}");
}

#[test]
fn syntax_and_shape_errors_point_into_the_file() {
    has(
        &errors("name: t\nlanguage: zh\nstates:\n  a:\n    say: hi\n    gotoo: b\n"),
        6,
        5,
        "unknown field `gotoo`",
    );
    has(
        &errors("name: t\nlanguage: fr\nstates: {}\n"),
        2,
        11,
        "unknown variant `fr`",
    );
    has(
        &errors("name: t\nlanguage: zh\nstates:\n  a:\n    say: {{name}}\n"),
        5,
        11,
        "quote a value",
    );
    has(
        &errors(
            "name: t\nlanguage: zh\nstates:\n  a: { say: x, end: y }\n  a: { say: x, end: y }\n",
        ),
        5,
        3,
        "duplicate key `a`",
    );
    has(&errors("name: t\nlanguage: zh\nstates:\n  a:\n    say: x\n    on:\n      - intent: affirm\n        max: 2\n"), 8, 9, "unknown field `max`");
    // A missing required field points at the map that lacks it.
    has(
        &errors("name: t\nstates: {}\n"),
        1,
        1,
        "missing field `language`",
    );
}

#[test]
fn global_rules_cannot_be_broken() {
    let e = errors(
        r#"name: t
language: zh
globals:
  do_not_call:
    goto: a
states:
  a:
    say: "x"
    disable: [do_not_call]
    on:
      - intent: do_not_call
        goto: a
      - intent: deny
        end: no
"#,
    );
    has(&e, 5, 5, "`do_not_call` may only change what is said");
    has(&e, 9, 15, "can never be disabled");
    has(&e, 11, 17, "always handled globally");
}

#[test]
fn routers_conditions_and_variants_are_checked() {
    let e = errors(
        r#"name: t
language: zh
variables:
  amount: 10
states:
  route:
    on:
      - when: "amount >> 3"
        goto: a
      - intent: affirm
        goto: a
  a:
    variants:
      - { id: x, say: "一" }
      - { id: x, say: "二", weight: 0 }
    on:
      - goto: done
      - intent: deny
        goto: done
  done:
    say: "{{missing}}"
    end: ok
"#,
    );
    has(&e, 8, 15, "bad condition");
    has(&e, 10, 9, "routes on `when` conditions only");
    has(&e, 7, 5, "needs a last transition without conditions");
    has(&e, 15, 15, "variant id `x` is used twice");
    has(&e, 15, 36, "weight must be at least 1");
    has(&e, 18, 9, "can never fire");
    has(&e, 21, 10, "no variable `missing`");
}

#[test]
fn prompts_that_render_empty_are_rejected() {
    let e = errors(
        "name: t\nlanguage: zh\nvariables:\n  blank: ''\nstates:\n  a:\n    say: \"{{blank}}\"\n    end: x\n",
    );
    has(&e, 7, 10, "renders to nothing");
}

#[test]
fn a_good_script_compiles() {
    let p = load_str(
        r#"name: ok
language: en
variables: { name: Ann }
intents:
  upgrade: { examples: ["I want the bigger plan"], keywords: [upgrade] }
states:
  hello:
    say: "Hi {{name}}"
    on:
      - intent: upgrade
        goto: bye
  bye:
    say: "Bye"
    end: done
"#,
        "ok.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.states.len(), 2);
    assert_eq!(p.intents[0].name, "upgrade");
}

#[test]
fn bandits_are_checked() {
    let e = errors(
        r#"name: b
language: en
states:
  a:
    say: "one prompt"
    bandit: { reward: continued }
    on:
      - intent: affirm
        goto: b
  b:
    variants:
      - { id: x, say: "X" }
      - { id: y, say: "Y" }
    bandit:
      reward: { outcome: [sold, nonexistent] }
      min_share: 0.6
      stop: { prob_best: 1.5 }
    on:
      - intent: affirm
        end: sold
      - intent: deny
        end: declined
"#,
    );
    has(&e, 6, 13, "at least 2 variants, this state has 1");
    has(&e, 16, 18, "min_share 0.6 × 2 variants");
    has(&e, 17, 26, "prob_best must be above 0.5");
    // Unknown outcomes are only reported once the rest is valid.
    let e = errors(
        r#"name: b
language: en
states:
  b:
    variants:
      - { id: x, say: "X" }
      - { id: y, say: "Y" }
    bandit:
      reward: { outcome: [sold, nonexistent] }
    on:
      - intent: affirm
        end: sold
      - intent: deny
        end: declined
"#,
    );
    has(&e, 9, 33, "never ends with outcome `nonexistent`");
    assert_eq!(e.len(), 1, "{e:?}");
}

#[test]
fn voicemail_rule_is_checked_with_position() {
    let base = "name: t\nlanguage: zh\nvariables:\n  name: 张三\n";
    let states = "states:\n  a:\n    say: 你好\n    end: done\n";
    // leave_message without words to leave.
    let e = errors(&format!(
        "{base}voicemail:\n  action: leave_message\n{states}"
    ));
    has(&e, 6, 11, "`leave_message` needs `say`");
    // hang_up with words it would never say.
    let e = errors(&format!(
        "{base}voicemail:\n  action: hang_up\n  say: 你好\n{states}"
    ));
    has(&e, 7, 8, "`hang_up` leaves no message");
    // An unknown variable in the message, an unknown action.
    let e = errors(&format!(
        "{base}voicemail:\n  action: leave_message\n  say: \"{{{{nmae}}}}您好\"\n{states}"
    ));
    has(&e, 7, 8, "no variable `nmae`");
    let src = format!("{base}voicemail:\n  action: shout\n{states}");
    let err = load_str(&src, "t.yaml").unwrap_err().to_string();
    assert!(err.starts_with("t.yaml:6:"), "{err}");
    // A good one renders with the call's variables.
    let prog = load_str(
        &format!("{base}voicemail:\n  action: leave_message\n  say: \"{{{{name}}}}您好，我们稍后再联系您。\"\n  style: calm\n{states}"),
        "t.yaml",
    )
    .unwrap();
    let interp =
        waihu_dialog::Interpreter::new(std::sync::Arc::new(prog), vec![("name", "李四")], 1)
            .unwrap();
    let (text, style) = interp.voicemail_message().expect("a message");
    assert_eq!(text, "李四您好，我们稍后再联系您。");
    assert_eq!(style, "calm");
}
