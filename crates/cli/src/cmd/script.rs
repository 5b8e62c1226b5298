//! `waihu script ...`: validate, draw, chat with and test dialog scripts.
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use waihu_core::NluResult;
use waihu_dialog::testing::{self, BotTurn};
use waihu_dialog::{Input, Interpreter, Output, Program};

use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Check scripts: unknown targets, unreachable states, states with no way to end,
    /// intents without examples, missing variables, templates that do not render.
    /// 校验话术脚本。
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check that these customer variables cover what the script needs.
        #[arg(long = "customer", value_name = "KEY=VALUE")]
        customer: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Draw the state graph (Mermaid or Graphviz DOT). 绘制状态图。
    Graph {
        file: PathBuf,
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
    /// Talk to a script in the console, with the real NLU. Type what the callee says;
    /// an empty line is silence, `/dtmf 1` presses keys, `/hangup` hangs up.
    /// 在终端里与话术对话。
    Chat {
        file: PathBuf,
        /// Customer variables; missing ones take the script's example values.
        #[arg(long = "customer", value_name = "KEY=VALUE")]
        customer: Vec<String>,
        /// Picks the A/B prompt variants.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// One JSON object per bot turn, then the outcome.
        #[arg(long)]
        json: bool,
    },
    /// Run scripted conversations and check paths and outcomes. 运行话术测试用例。
    Test {
        file: PathBuf,
        cases: PathBuf,
        #[arg(long)]
        json: bool,
        /// Print the bot's side of every case.
        #[arg(long)]
        verbose: bool,
    },
    /// Validation time and per-step cost on a generated large script, beside a
    /// naive baseline (name lookups and template parsing on every step).
    /// Same as `waihu bench script`.
    Bench(BenchArgs),
}

pub fn run(_ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Validate {
            files,
            customer,
            json,
        } => validate(&files, &customer, json),
        Cmd::Graph { file, format } => {
            let prog = load(&file)?;
            let out = if format == "dot" {
                waihu_dialog::graph::dot(&prog)
            } else {
                waihu_dialog::graph::mermaid(&prog)
            };
            print!("{out}");
            Ok(())
        }
        Cmd::Chat {
            file,
            customer,
            seed,
            json,
        } => chat(&file, &customer, seed, json),
        Cmd::Test {
            file,
            cases,
            json,
            verbose,
        } => test(&file, &cases, json, verbose),
        Cmd::Bench(a) => bench(a),
    }
}

fn load(file: &Path) -> anyhow::Result<Program> {
    // The LoadError's Display already names file:line:column for each problem.
    waihu_dialog::load_file(file).map_err(|e| anyhow::anyhow!("{e}"))
}

fn parse_kv(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--customer {item:?}: expected KEY=VALUE (e.g. name=张先生)");
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

fn validate(files: &[PathBuf], customer: &[String], json: bool) -> anyhow::Result<()> {
    let customer = parse_kv(customer)?;
    let mut failed = 0;
    for f in files {
        match waihu_dialog::load_file(f) {
            Ok(p) => {
                let missing: Vec<&str> = if customer.is_empty() {
                    Vec::new()
                } else {
                    p.required
                        .iter()
                        .filter(|(_, n, _)| !customer.contains_key(n))
                        .map(|(_, n, _)| n.as_str())
                        .collect()
                };
                if !missing.is_empty() {
                    failed += 1;
                }
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": f.display().to_string(), "ok": missing.is_empty(), "name": p.name,
                            "states": p.states.len(), "transitions": p.transition_count(),
                            "intents": p.intents.len(), "variables": p.required.len(),
                            "missing_variables": missing,
                        })
                    );
                } else if missing.is_empty() {
                    println!(
                        "✓ {}: {} — {} states, {} transitions, {} custom intents, {} variables / ok",
                        f.display(),
                        p.title.as_deref().unwrap_or(&p.name),
                        p.states.len(),
                        p.transition_count(),
                        p.intents.len(),
                        p.required.len()
                    );
                } else {
                    println!(
                        "✗ {}: 缺少客户变量 / variables not provided: {}",
                        f.display(),
                        missing.join(", ")
                    );
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    for d in &e.diagnostics {
                        println!(
                            "{}",
                            serde_json::json!({"file": e.file, "ok": false, "line": d.pos.line, "column": d.pos.col, "path": d.path, "message": d.message})
                        );
                    }
                } else {
                    println!("{e}");
                    println!(
                        "✗ {}: {} 个问题 / {} problem(s)",
                        f.display(),
                        e.diagnostics.len(),
                        e.diagnostics.len()
                    );
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} script(s) failed validation", files.len());
    }
    Ok(())
}

/// The NLU used by `chat` and by text-only test turns. Kept in one place so the
/// runtime's choice of model can be swapped in. `live` anchors relative times
/// ("明天下午") at the real clock; otherwise at the fixed simulation start, so
/// test runs are reproducible.
fn classifier(prog: &Program, live: bool) -> anyhow::Result<impl Fn(&str) -> NluResult> {
    let nlu = waihu_bot::script_nlu(prog).map_err(|e| anyhow::anyhow!("training the NLU: {e}"))?;
    let zone = match prog.language {
        waihu_dialog::Language::Zh => "Asia/Shanghai",
        waihu_dialog::Language::En => "America/New_York",
    };
    Ok(move |text: &str| match zone.parse() {
        Ok(tz) => nlu.classify(text, anchor(live), tz),
        Err(_) => nlu.classify(text, anchor(live), Default::default()),
    })
}

fn anchor(live: bool) -> chrono::DateTime<chrono::Utc> {
    if live {
        chrono::Utc::now()
    } else {
        testing::sim_start()
    }
}

fn print_turn(turn: &BotTurn, heard: Option<&NluResult>, json: bool) {
    let mut plays: Vec<(&str, &str)> = Vec::new();
    let mut actions = Vec::new();
    let mut end = None;
    for o in &turn.outputs {
        match o {
            Output::Play { text, style, .. } => plays.push((text, style)),
            Output::Action { action } => actions.push(action.clone()),
            Output::End { outcome, level } => end = Some((outcome.clone(), *level)),
            Output::Listen { .. } | Output::StopPlayback => {}
        }
    }
    if json {
        let prompt: String = plays.iter().map(|(t, _)| *t).collect();
        let mut v = serde_json::json!({
            "state": turn.state,
            "prompt": prompt,
            "style": plays.last().map(|(_, s)| *s),
            "actions": actions,
        });
        if let Some(n) = heard {
            v["heard"] = serde_json::json!({"text": n.text, "intent": n.intent, "confidence": n.confidence, "entities": n.entities});
        }
        if let Some((o, l)) = &end {
            v["end"] = serde_json::json!({"outcome": o, "level": l});
        }
        println!("{v}");
        return;
    }
    if let Some(n) = heard {
        println!("  (听到 / heard: {} {:.2})", n.intent, n.confidence);
    }
    for a in &actions {
        println!("  → {}", serde_json::to_string(a).unwrap_or_default());
    }
    for (text, style) in &plays {
        println!("[{}] ({style}) 🤖 {text}", turn.state);
    }
    if let Some((o, l)) = end {
        println!(
            "  ☎ 通话结束 / call ended: {o}{}",
            l.map(|l| format!(" (意向 {})", l.as_str()))
                .unwrap_or_default()
        );
    }
}

fn chat(file: &Path, customer: &[String], seed: u64, json: bool) -> anyhow::Result<()> {
    let prog = Arc::new(load(file)?);
    let mut vars = parse_kv(customer)?;
    for (_, name, example) in &prog.required {
        if !vars.contains_key(name) {
            eprintln!("note: {name} not given, using the example value {example:?}");
            vars.insert(name.clone(), example.clone());
        }
    }
    let classify = classifier(&prog, true)?;
    let mut call = Interpreter::new(prog.clone(), &vars, seed)?;
    let mut now = chrono::Utc::now();
    let tty = std::io::stdin().is_terminal();
    let step =
        |call: &mut Interpreter, input: Input<'_>, now: &mut chrono::DateTime<chrono::Utc>| {
            // A console has no audio: playback "finishes" at once.
            *now = chrono::Utc::now();
            let mut outputs = call.handle(*now, input).to_vec();
            if outputs.iter().any(|o| matches!(o, Output::Play { .. })) && !call.is_ended() {
                outputs.extend(call.handle(*now, Input::PlaybackFinished).iter().cloned());
            }
            BotTurn {
                state: call.state().to_string(),
                outputs,
            }
        };
    let t = step(&mut call, Input::Answered, &mut now);
    print_turn(&t, None, json);
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    while !call.is_ended() {
        if tty && !json {
            print!("> ");
            std::io::stdout().flush().ok();
        }
        let Some(line) = lines.next() else {
            let t = step(&mut call, Input::HungUp, &mut now);
            print_turn(&t, None, json);
            break;
        };
        let line = line.context("reading stdin")?;
        let line = line.trim();
        let (turn, heard) = if line.is_empty() || line == "/silence" {
            (step(&mut call, Input::NoInput, &mut now), None)
        } else if line == "/hangup" {
            (step(&mut call, Input::HungUp, &mut now), None)
        } else if let Some(d) = line.strip_prefix("/dtmf") {
            (step(&mut call, Input::Dtmf(d.trim()), &mut now), None)
        } else {
            let nlu = classify(line);
            let emotion = nlu.sentiment.angry.then_some(waihu_core::Emotion {
                label: waihu_core::EmotionLabel::Angry,
                confidence: 0.8,
            });
            (
                step(&mut call, Input::Utterance { nlu: &nlu, emotion }, &mut now),
                Some(nlu),
            )
        };
        print_turn(&turn, heard.as_ref(), json);
    }
    let (outcome, level) = call.ended().cloned().unwrap_or(("hangup".into(), None));
    if json {
        println!(
            "{}",
            serde_json::json!({"outcome": outcome, "level": level, "path": call.path()})
        );
    } else {
        println!("路径 / path: {}", call.path().join(" → "));
    }
    Ok(())
}

fn test(file: &Path, cases: &Path, json: bool, verbose: bool) -> anyhow::Result<()> {
    let prog = Arc::new(load(file)?);
    let cases = testing::load_cases(cases).map_err(|e| anyhow::anyhow!("{e}"))?;
    let needs_nlu = cases
        .cases
        .iter()
        .flat_map(|c| &c.turns)
        .any(|t| t.intent.is_none() && t.text.is_some());
    let classify = if needs_nlu {
        Some(classifier(&prog, false)?)
    } else {
        None
    };
    let classify_ref: Option<&dyn Fn(&str) -> NluResult> =
        classify.as_ref().map(|c| c as &dyn Fn(&str) -> NluResult);
    let results = testing::run_cases(&prog, &cases, classify_ref);
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in &results {
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        println!("{} {}", if r.passed { "✓" } else { "✗" }, r.name);
        if !r.passed || verbose {
            println!(
                "    path: {}  outcome: {}",
                r.path.join(" → "),
                r.outcome.as_deref().unwrap_or("-")
            );
        }
        for f in &r.failures {
            println!("    {f}");
        }
        if verbose {
            for t in &r.transcript {
                print_turn(t, None, false);
            }
        }
    }
    if !json {
        println!(
            "{} passed, {} failed ({})",
            results.len() - failed,
            failed,
            file.display()
        );
    }
    if failed > 0 {
        bail!("{failed} of {} case(s) failed", results.len());
    }
    Ok(())
}

#[derive(serde::Serialize)]
struct BenchReport {
    states: usize,
    transitions: usize,
    yaml_bytes: usize,
    parse_ms: f64,
    validate_ms: f64,
    calls: usize,
    steps: usize,
    step_us: f64,
    step_p99_us: f64,
    baseline_step_us: f64,
}

/// Arguments of `waihu bench script` / `waihu script bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// States in the generated script (about 6.7 transitions each).
    #[arg(long, default_value_t = 250)]
    pub states: usize,
    /// Simulated calls of up to 12 callee turns.
    #[arg(long, default_value_t = 2000)]
    pub calls: usize,
    #[arg(long)]
    pub json: bool,
}

/// `waihu bench script`: validation time and per-step cost on a generated
/// 250-state script, beside the naive baseline.
pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let BenchArgs {
        states,
        calls,
        json,
    } = args;
    use std::time::Instant;
    use waihu_dialog::bench::{generate, workload, Naive, TurnInput};
    let src = generate(states);
    // Validation: best of 5 (the first run warms the allocator).
    let mut validate_ms = f64::MAX;
    let mut parse_ms = f64::MAX;
    let mut prog = None;
    for _ in 0..5 {
        let t = Instant::now();
        let p =
            waihu_dialog::load_str(&src, "generated.yaml").map_err(|e| anyhow::anyhow!("{e}"))?;
        validate_ms = validate_ms.min(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        let script = waihu_dialog::program::parse_script(&src, "generated.yaml")
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        parse_ms = parse_ms.min(t.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(script);
        prog = Some(p);
    }
    let prog = Arc::new(prog.context("no program")?);
    let script = waihu_dialog::program::parse_script(&src, "generated.yaml")
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let customer = [
        ("name", "张先生"),
        ("order.amount", "899"),
        ("segment", "vip"),
    ];
    let work = workload(calls, 0x5eed);
    let mut now = waihu_dialog::testing::sim_start();

    // Compiled interpreter: time each step that carries callee input.
    let mut samples: Vec<f64> = Vec::with_capacity(calls * 13);
    let t_all = Instant::now();
    for (c, turns) in work.iter().enumerate() {
        let mut call = Interpreter::new(prog.clone(), customer, c as u64)?;
        let t = Instant::now();
        std::hint::black_box(call.handle(now, Input::Answered).len());
        samples.push(t.elapsed().as_secs_f64());
        for turn in turns {
            if call.is_ended() {
                break;
            }
            now += chrono::Duration::seconds(1);
            call.handle(now, Input::PlaybackFinished);
            let input = match turn {
                TurnInput::Say(n) => Input::Utterance {
                    nlu: n,
                    emotion: None,
                },
                TurnInput::Dtmf(d) => Input::Dtmf(d),
                TurnInput::Silence => Input::NoInput,
            };
            let t = Instant::now();
            std::hint::black_box(call.handle(now, input).len());
            samples.push(t.elapsed().as_secs_f64());
        }
    }
    let compiled_total = t_all.elapsed().as_secs_f64();
    let steps = samples.len();
    let step_us = samples.iter().sum::<f64>() / steps.max(1) as f64 * 1e6;
    samples.sort_by(|a, b| a.total_cmp(b));
    let step_p99_us = samples.get(steps * 99 / 100).copied().unwrap_or(0.0) * 1e6;

    // Baseline over the same inputs.
    let mut base_samples = 0usize;
    let mut base_time = 0f64;
    for turns in &work {
        let mut naive = Naive::new(&script, &customer);
        let t = Instant::now();
        std::hint::black_box(naive.answer());
        base_time += t.elapsed().as_secs_f64();
        base_samples += 1;
        for turn in turns {
            if naive.ended {
                break;
            }
            let t = Instant::now();
            std::hint::black_box(naive.step(turn));
            base_time += t.elapsed().as_secs_f64();
            base_samples += 1;
        }
    }
    let baseline_step_us = base_time / base_samples.max(1) as f64 * 1e6;
    tracing::debug!(compiled_total, "bench finished");
    let r = BenchReport {
        states: prog.states.len(),
        transitions: prog.transition_count(),
        yaml_bytes: src.len(),
        parse_ms,
        validate_ms,
        calls,
        steps,
        step_us,
        step_p99_us,
        baseline_step_us,
    };
    if json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "generated script: {} states, {} transitions, {} KiB of YAML",
        r.states,
        r.transitions,
        r.yaml_bytes / 1024
    );
    println!(
        "validation (parse + check + compile): {:.2} ms  (target < 100 ms)",
        r.validate_ms
    );
    println!(
        "  of which YAML parse + serde:          {:.2} ms",
        r.parse_ms
    );
    println!(
        "{:<34} {:>12} {:>12} {:>10}",
        "per step (mean)", "compiled", "baseline", "speed-up"
    );
    println!(
        "{:<34} {:>9.2} µs {:>9.2} µs {:>9.1}x",
        format!("{} calls, {} steps", r.calls, r.steps),
        r.step_us,
        r.baseline_step_us,
        r.baseline_step_us / r.step_us.max(1e-9)
    );
    println!(
        "p99 step (compiled): {:.2} µs  (target < 10 µs)",
        r.step_p99_us
    );
    println!("baseline: the parsed script walked by name (HashMap), templates and conditions parsed on every step");
    Ok(())
}
