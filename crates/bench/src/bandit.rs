//! `waihu bench bandit`: Thompson sampling against the fixed split of a
//! classic A/B test, on Bernoulli variants with known success rates, same
//! seeds for both. Per strategy: calls until the stop rule names a winner
//! (the same rule for both: one variant best with probability `--stop` after
//! `--min-trials` rewards), how often that winner is the true best, and the
//! successes lost on the way (regret against always playing the best).
use std::time::Instant;

use rand09::rngs::StdRng;
use rand09::SeedableRng;
use serde::Serialize;
use waihu_learn::race::{race, Race, RaceResult, Strategy};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// True success rate of each variant.
    #[arg(long, value_delimiter = ',', default_value = "0.20,0.23,0.26")]
    rates: Vec<f64>,
    /// Independent repetitions (seeds) per strategy.
    #[arg(long, default_value_t = 200)]
    reps: u64,
    /// Calls per repetition.
    #[arg(long, default_value_t = 20_000)]
    horizon: u64,
    /// Calls whose result is still pending when the next is chosen.
    #[arg(long, default_value_t = 20)]
    in_flight: usize,
    /// Stop when a variant is best with this posterior probability.
    #[arg(long, default_value_t = 0.95)]
    stop: f64,
    #[arg(long, default_value_t = 200)]
    min_trials: u64,
    /// Thompson sampling's minimum exploration share per variant.
    #[arg(long, default_value_t = 0.05)]
    min_share: f64,
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Row {
    strategy: &'static str,
    reps: u64,
    /// Repetitions where the stop rule fired within the horizon.
    stopped: u64,
    calls_to_stop_p50: Option<u64>,
    calls_to_stop_p90: Option<u64>,
    /// Share of stopped repetitions whose winner is the true best variant.
    correct: f64,
    successes_mean: f64,
    regret_mean: f64,
    wall_s: f64,
}

fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    Some(sorted[i])
}

fn summarise(name: &'static str, results: &[RaceResult], best: usize, wall_s: f64) -> Row {
    let mut calls: Vec<u64> = results.iter().filter_map(|r| r.calls_to_stop).collect();
    calls.sort_unstable();
    let stopped = calls.len() as u64;
    let correct = results.iter().filter(|r| r.winner == Some(best)).count();
    let n = results.len().max(1) as f64;
    Row {
        strategy: name,
        reps: results.len() as u64,
        stopped,
        calls_to_stop_p50: nearest_rank(&calls, 0.5),
        calls_to_stop_p90: nearest_rank(&calls, 0.9),
        correct: if stopped == 0 {
            0.0
        } else {
            correct as f64 / stopped as f64
        },
        successes_mean: results.iter().map(|r| r.successes as f64).sum::<f64>() / n,
        regret_mean: results.iter().map(|r| r.regret).sum::<f64>() / n,
        wall_s,
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    anyhow::ensure!(a.rates.len() >= 2, "--rates needs at least 2 variants");
    anyhow::ensure!(
        a.rates.iter().all(|r| (0.0..=1.0).contains(r)),
        "--rates must be between 0 and 1"
    );
    waihu_learn::Policy {
        min_share: a.min_share,
        stop_prob: a.stop,
        min_trials: a.min_trials,
    }
    .check(a.rates.len())
    .map_err(anyhow::Error::msg)?;
    let best = a
        .rates
        .iter()
        .enumerate()
        .max_by(|x, y| x.1.total_cmp(y.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let r = Race {
        rates: a.rates.clone(),
        horizon: a.horizon,
        in_flight: a.in_flight,
        stop_prob: a.stop,
        min_trials: a.min_trials,
        check_every: 20,
    };
    let mut rows = Vec::new();
    for (name, strategy) in [
        ("fixed_split", Strategy::FixedSplit),
        (
            "thompson",
            Strategy::Thompson {
                min_share: a.min_share,
            },
        ),
    ] {
        let t = Instant::now();
        let mut results = Vec::with_capacity(a.reps as usize);
        for seed in 0..a.reps {
            results.push(race(&r, strategy, &mut StdRng::seed_from_u64(seed)));
            if !a.json && (seed + 1).is_multiple_of((a.reps / 4).max(1)) && seed + 1 < a.reps {
                let el = t.elapsed().as_secs_f64();
                eprintln!(
                    "  {name}: {}/{} reps, {:.1} reps/s, ETA {:.0} s",
                    seed + 1,
                    a.reps,
                    (seed + 1) as f64 / el,
                    el / (seed + 1) as f64 * (a.reps - seed - 1) as f64
                );
            }
        }
        rows.push(summarise(name, &results, best, t.elapsed().as_secs_f64()));
    }
    if a.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!(
        "话术实验 bandit: rates {:?}, {} reps × {} calls, {} in flight, stop at P(best) ≥ {} after {} rewards",
        a.rates, a.reps, a.horizon, a.in_flight, a.stop, a.min_trials
    );
    println!(
        "  {:<12} {:>8} {:>10} {:>10} {:>9} {:>11} {:>10} {:>7}",
        "strategy", "stopped", "calls p50", "calls p90", "correct", "successes", "regret", "wall s"
    );
    let fmt = |x: Option<u64>| x.map_or("-".to_string(), |v| v.to_string());
    for row in &rows {
        println!(
            "  {:<12} {:>8} {:>10} {:>10} {:>8.1}% {:>11.1} {:>10.1} {:>7.2}",
            row.strategy,
            row.stopped,
            fmt(row.calls_to_stop_p50),
            fmt(row.calls_to_stop_p90),
            100.0 * row.correct,
            row.successes_mean,
            row.regret_mean,
            row.wall_s
        );
    }
    let (f, t) = (&rows[0], &rows[1]);
    if let (Some(fc), Some(tc)) = (f.calls_to_stop_p50, t.calls_to_stop_p50) {
        println!(
            "  thompson / fixed split: calls to stop {:.2}×, regret {:.2}×, successes {:+.1}",
            tc as f64 / fc as f64,
            t.regret_mean / f.regret_mean.max(1e-9),
            t.successes_mean - f.successes_mean
        );
    }
    Ok(())
}
