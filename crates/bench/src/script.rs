//! `waihu bench script`: validation time and per-step cost of the dialog interpreter on
//! a generated large script, beside a naive interpreter of the parsed YAML.
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use waihu_dialog::{Input, Interpreter};

pub mod naive;

use naive::{generate, workload, Naive, TurnInput};

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
pub struct Args {
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
pub fn run(args: Args) -> anyhow::Result<()> {
    let Args {
        states,
        calls,
        json,
    } = args;
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
