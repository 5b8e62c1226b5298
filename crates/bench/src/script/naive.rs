//! Material for `waihu bench script`: a generated large script, a random but
//! deterministic workload, and a naive baseline interpreter that walks the
//! serde model directly (state lookup by name, templates and conditions parsed
//! on every step). The timing loop is [`super::run`].
use std::collections::HashMap;
use std::fmt::Write;

use waihu_core::{Entity, NluResult, Sentiment, SentimentLabel};

use waihu_dialog::cond::{self, Val};
use waihu_dialog::model::{Rule, Script, State};
use waihu_dialog::template::{self, RawPart};

const CUSTOM: usize = 10;

/// A script with `states` states (at least 20) and about five transitions
/// each, shaped like a real one: templates, custom intents, entities, DTMF,
/// conditions, emotions, terminal states.
pub fn generate(states: usize) -> String {
    let n = states.max(20);
    let terminal = 10;
    let live = n - terminal;
    let mut s = String::with_capacity(n * 600);
    s.push_str("name: generated\ntitle: 生成的大脚本\nlanguage: zh\nstyle: neutral\n");
    s.push_str("variables:\n  name: 张先生\n  order.amount: 899\n  segment: vip\n");
    s.push_str("transfer: { queue: default }\nmax_turns: 1000\nintents:\n");
    for c in 0..CUSTOM {
        let _ = writeln!(s, "  custom_{c}:\n    examples: [\"例句{c}甲\", \"例句{c}乙\"]\n    keywords: [\"关键词{c}\"]");
    }
    s.push_str("states:\n");
    let t = |i: usize, k: usize| {
        let j = i + k;
        if j < live {
            format!("s{j}")
        } else {
            format!("s{}", live + (i * 3 + k) % terminal)
        }
    };
    for i in 0..n {
        let _ = writeln!(s, "  s{i}:\n    title: 节点{i}");
        if i >= live {
            let _ = writeln!(
                s,
                "    say: \"{{{{name}}}}，感谢您的时间，节点{i}结束。\"\n    end: outcome_{}",
                i % 4
            );
            continue;
        }
        let _ = writeln!(
            s,
            "    say: \"{{{{name}}}}您好，这是第{i}步，订单金额{{{{order.amount}}}}元，请问可以继续吗？\"\n    expect: {{ dtmf: \"123\" }}\n    on:"
        );
        let _ = writeln!(s, "      - intent: affirm\n        goto: {}", t(i, 1));
        let _ = writeln!(
            s,
            "      - intent: custom_{}\n        goto: {}",
            i % CUSTOM,
            t(i, 2)
        );
        let _ = writeln!(
            s,
            "      - entity: time\n        do: [ {{ set: {{ when_{}: \"{{{{entity.time}}}}\" }} }}, {{ level: B }} ]\n        say: \"好的，记下了。\"\n        goto: {}",
            i % 7,
            t(i, 3)
        );
        let _ = writeln!(s, "      - dtmf: \"1\"\n        goto: {}", t(i, 4));
        let _ = writeln!(
            s,
            "      - intent: ask_info\n        when: \"order.amount > 500 && segment == 'vip'\"\n        say: \"您的订单金额是{{{{order.amount}}}}元。\"\n        goto: {}",
            t(i, 5)
        );
        let _ = writeln!(s, "      - emotion: angry\n        style: apologetic\n        say: \"抱歉。\"\n        goto: {}", t(i, 1));
        let _ = writeln!(s, "      - intent: deny\n        do: [ {{ outcome: refused }}, {{ sms: info }} ]\n        end: refused");
    }
    s
}

/// One scripted input of the workload.
#[derive(Debug, Clone)]
pub enum TurnInput {
    Say(NluResult),
    Dtmf(String),
    Silence,
}

fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

fn nlu(intent: &str, entities: Vec<Entity>, angry: bool) -> NluResult {
    NluResult {
        text: format!("用户说了{intent}"),
        intent: intent.to_string(),
        confidence: 0.9,
        entities,
        sentiment: Sentiment {
            label: if angry {
                SentimentLabel::Negative
            } else {
                SentimentLabel::Neutral
            },
            score: if angry { -0.8 } else { 0.0 },
            angry,
        },
    }
}

/// `calls` conversations of up to 12 turns with a mix of inputs.
pub fn workload(calls: usize, seed: u64) -> Vec<Vec<TurnInput>> {
    let mut rng = seed | 1;
    (0..calls)
        .map(|_| {
            (0..12)
                .map(|_| match xorshift(&mut rng) % 20 {
                    0..=6 => TurnInput::Say(nlu("affirm", vec![], false)),
                    7..=8 => TurnInput::Say(nlu(
                        &format!("custom_{}", xorshift(&mut rng) % CUSTOM as u64),
                        vec![],
                        false,
                    )),
                    9 => TurnInput::Say(nlu(
                        "ask_info",
                        vec![Entity {
                            kind: "time".into(),
                            value: serde_json::Value::String("2026-11-26T10:00:00+08:00".into()),
                            text: "明天上午十点".into(),
                            parts: Default::default(),
                        }],
                        false,
                    )),
                    10..=11 => TurnInput::Say(nlu("ask_info", vec![], false)),
                    12 => TurnInput::Say(nlu("unknown", vec![], true)),
                    13 => TurnInput::Dtmf("1".into()),
                    14 => TurnInput::Dtmf("3".into()),
                    15 => TurnInput::Silence,
                    16 => TurnInput::Say(nlu("repeat", vec![], false)),
                    17 => TurnInput::Say(nlu("unknown", vec![], false)),
                    18 => TurnInput::Say(nlu("deny", vec![], false)),
                    _ => TurnInput::Say(nlu("affirm", vec![], false)),
                })
                .collect()
        })
        .collect()
}

/// The baseline: interpret the script as parsed, by name, with no compilation.
pub struct Naive<'s> {
    states: HashMap<String, &'s State>,
    start: String,
    current: String,
    vars: HashMap<String, String>,
    pub ended: bool,
}

fn render_naive(src: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::new();
    if let Ok(parts) = template::parse(src) {
        for p in parts {
            match p {
                RawPart::Lit(s) => out.push_str(&s),
                RawPart::Var(v) => out.push_str(vars.get(&v).map(String::as_str).unwrap_or("")),
            }
        }
    }
    out
}

impl<'s> Naive<'s> {
    pub fn new(script: &'s Script, customer: &[(&str, &str)]) -> Naive<'s> {
        let start = script.start.clone().unwrap_or_else(|| "s0".into());
        Naive {
            states: script.states.iter().map(|(k, v)| (k.clone(), v)).collect(),
            current: start.clone(),
            start,
            vars: customer
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ended: false,
        }
    }

    fn prompt(&self) -> Vec<String> {
        let st = self.states[&self.current];
        st.say.iter().map(|s| render_naive(s, &self.vars)).collect()
    }

    pub fn answer(&mut self) -> Vec<String> {
        self.current = self.start.clone();
        self.prompt()
    }

    fn rule_matches(&self, r: &Rule, input: &TurnInput) -> bool {
        if let Some(i) = &r.intent {
            let TurnInput::Say(n) = input else {
                return false;
            };
            if !i.to_vec().contains(&n.intent) {
                return false;
            }
        }
        if let Some(e) = &r.entity {
            let TurnInput::Say(n) = input else {
                return false;
            };
            if !n.entities.iter().any(|x| &x.kind == e) {
                return false;
            }
        }
        if r.emotion.is_some() {
            let TurnInput::Say(n) = input else {
                return false;
            };
            if !n.sentiment.angry {
                return false;
            }
        }
        if let Some(d) = &r.dtmf {
            let TurnInput::Dtmf(got) = input else {
                return false;
            };
            if got != d {
                return false;
            }
        }
        if let Some(w) = &r.when {
            let Ok(expr) = cond::parse(w) else {
                return false;
            };
            let mut names = Vec::new();
            expr.vars(&mut names);
            let vals: Vec<Val> = names
                .iter()
                .map(|n| Val::new(self.vars.get(n).cloned().unwrap_or_default()))
                .collect();
            let expr =
                expr.map(&mut |v: String| names.iter().position(|n| *n == v).unwrap_or(usize::MAX));
            if !expr.eval(&|s| vals.get(s)) {
                return false;
            }
        }
        true
    }

    pub fn step(&mut self, input: &TurnInput) -> Vec<String> {
        if self.ended {
            return Vec::new();
        }
        if let TurnInput::Say(n) = input {
            for e in &n.entities {
                if let serde_json::Value::String(s) = &e.value {
                    self.vars.insert(format!("entity.{}", e.kind), s.clone());
                }
            }
        }
        let st = self.states[&self.current];
        let Some(rule) = st.on.iter().find(|r| self.rule_matches(r, input)) else {
            return self.prompt();
        };
        let mut out = Vec::new();
        for a in &rule.actions {
            if let waihu_dialog::model::Action::Set(m) = a {
                for (k, v) in m {
                    let text = render_naive(&v.to_string(), &self.vars);
                    self.vars.insert(k.clone(), text);
                }
            }
        }
        if let Some(s) = &rule.say {
            out.push(render_naive(s, &self.vars));
        }
        if let Some(g) = &rule.goto {
            self.current = g.clone();
            out.extend(self.prompt());
            if self.states[&self.current].end.is_some() {
                self.ended = true;
            }
        } else if rule.end.is_some() {
            self.ended = true;
        } else {
            out.extend(self.prompt());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_script_is_large_and_valid() {
        let src = generate(250);
        let p = waihu_dialog::load_str(&src, "generated.yaml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.states.len(), 250);
        assert!(p.transition_count() >= 1000, "{}", p.transition_count());
        let script = waihu_dialog::program::parse_script(&src, "g").unwrap();
        let mut naive = Naive::new(
            &script,
            &[
                ("name", "张先生"),
                ("order.amount", "899"),
                ("segment", "vip"),
            ],
        );
        assert!(naive.answer()[0].contains("张先生"));
        let w = workload(3, 7);
        let out = naive.step(&w[0][0]);
        assert!(!out.is_empty() || naive.ended);
    }
}
