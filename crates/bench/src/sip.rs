//! `waihu bench sip`: concurrent calls with two-way G.711 media and the call setup rate,
//! our UAC against our UAS (`waihu answer` in a child process) and against a SIPp UAS
//! (`-rtp_echo`) as the reference.
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use waihu_engine::sip::SipEndpoint;

pub mod load;

/// `waihu bench sip` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Concurrent calls with two-way G.711 media.
    #[arg(long, default_value_t = 200)]
    pub calls: usize,
    /// Seconds each call is held.
    #[arg(long, default_value_t = 10.0)]
    pub hold: f64,
    /// Calls started per second while ramping up.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Calls in the setup-rate run (INVITE → 200 → ACK → BYE, no hold).
    #[arg(long, default_value_t = 2000)]
    pub setup_calls: usize,
    /// Offered rate of the setup-rate run.
    #[arg(long, default_value_t = 400.0)]
    pub setup_rate: f64,
    /// Skip the SIPp reference runs.
    #[arg(long)]
    pub no_sipp: bool,
    #[arg(long)]
    pub json: bool,
}

fn sipp_available() -> bool {
    Command::new("sipp")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A callee process (our `waihu answer` or SIPp) and its CPU clock.
struct Callee {
    child: std::process::Child,
    name: &'static str,
}

impl Drop for Callee {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Callee {
    fn cpu(&self) -> f64 {
        crate::process_cpu_seconds(&self.child.id().to_string()).unwrap_or(0.0)
    }
}

fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn start_callee(ours: bool, port: u16, tone: &std::path::Path) -> anyhow::Result<Callee> {
    let child = if ours {
        Command::new(std::env::current_exe()?)
            .args([
                "answer",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--ring",
                "0",
                "--loop",
                "--json",
                "--play",
            ])
            .arg(tone)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("starting our UAS (waihu answer)")?
    } else {
        let mp = free_udp_port()?;
        Command::new("sipp")
            .args([
                "-sn",
                "uas",
                "-i",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-mi",
                "127.0.0.1",
                "-mp",
                &mp.to_string(),
                "-rtp_echo",
                "-nostdin",
            ])
            .args(["-max_socket", "65000"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting sipp")?
    };
    // Ready once the port is taken.
    for _ in 0..100 {
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    Ok(Callee {
        child,
        name: if ours {
            "waihu UAS"
        } else {
            "SIPp UAS (-rtp_echo)"
        },
    })
}

#[derive(serde::Serialize)]
struct Row {
    run: String,
    callee: &'static str,
    #[serde(flatten)]
    load: load::LoadResult,
    callee_cpu_s: f64,
    /// Both sides' CPU per concurrent call, as a percentage of one core.
    cpu_pct_per_call: f64,
    /// Loss seen by the callee (our UAS only; SIPp does not report it).
    callee_lost: Option<u64>,
    callee_late: Option<u64>,
}

/// Runs the media and setup-rate runs against each callee and prints one row per run.
/// Starts the `waihu` binary it runs in as our callee (`waihu answer`).
pub fn run(a: Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tone_path = dir.path().join("tone.wav");
    let tone: Vec<i16> = (0..8000)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 425.0 / 8000.0).sin() * 6000.0) as i16)
        .collect();
    waihu_engine::waihu_media::wav::write_8k_mono(&tone_path, &tone)?;
    let tone: Arc<[i16]> = tone.into();
    let hold = Duration::try_from_secs_f64(a.hold).map_err(|_| {
        anyhow::anyhow!(
            "--hold: {} is not a valid number of seconds / 秒数无效",
            a.hold
        )
    })?;
    let with_sipp = !a.no_sipp && sipp_available();
    if !a.no_sipp && !with_sipp {
        eprintln!("waihu: sipp not installed, reference runs skipped / 未安装 sipp，跳过参照组");
    }
    let rt = crate::runtime()?;
    let mut rows = Vec::new();
    let mut callees: Vec<bool> = vec![true];
    if with_sipp {
        callees.push(false);
    }
    for (run, calls, rate, hold, prompt) in [
        ("media", a.calls, a.rate, hold, Some(tone.clone())),
        ("setup", a.setup_calls, a.setup_rate, Duration::ZERO, None),
    ] {
        for &ours in &callees {
            let port = free_udp_port()?;
            let mut callee = start_callee(ours, port, &tone_path)?;
            let cpu0 = callee.cpu();
            let t0 = Instant::now();
            let load = rt.block_on(async {
                let ep = Arc::new(SipEndpoint::bind("127.0.0.1:0".parse()?, "bench", None).await?);
                let r = load::run_load(
                    ep,
                    format!("sip:bench@127.0.0.1:{port}"),
                    calls,
                    rate,
                    hold,
                    prompt.clone(),
                )
                .await?;
                anyhow::Ok(r)
            })?;
            let wall = t0.elapsed().as_secs_f64();
            let callee_cpu = callee.cpu() - cpu0;
            let (mut lost, mut late) = (None, None);
            if ours {
                let _ = callee.child.kill();
                if let Some(out) = callee.child.stdout.take() {
                    let (mut l, mut t) = (0u64, 0u64);
                    for line in BufReader::new(out).lines().map_while(Result::ok) {
                        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                            l += v["rtp"]["lost"].as_u64().unwrap_or(0);
                            t += v["rtp"]["late"].as_u64().unwrap_or(0);
                        }
                    }
                    (lost, late) = (Some(l), Some(t));
                }
            }
            // CPU over the whole run divided by the mean number of calls up during it.
            let call_seconds = if hold.is_zero() {
                0.0
            } else {
                calls as f64 * hold.as_secs_f64()
            };
            let cpu_pct_per_call = if call_seconds > 0.0 {
                100.0 * (load.cpu_s + callee_cpu) / call_seconds
            } else {
                0.0
            };
            let _ = wall;
            rows.push(Row {
                run: run.into(),
                callee: callee.name,
                load,
                callee_cpu_s: callee_cpu,
                cpu_pct_per_call,
                callee_lost: lost,
                callee_late: late,
            });
            drop(callee);
        }
    }
    if a.json {
        for r in &rows {
            println!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    println!("waihu bench sip — caller: waihu UAC (this process); callee: see column / 主叫为 waihu，被叫见列");
    println!(
        "{:<6} {:<22} {:>6} {:>8} {:>9} {:>10} {:>10} {:>8} {:>6} {:>6} {:>8} {:>8} {:>10}",
        "run",
        "callee",
        "calls",
        "answered",
        "calls/s",
        "setup p50",
        "setup p99",
        "rtp rx",
        "lost",
        "late",
        "uac cpu",
        "uas cpu",
        "%core/call"
    );
    for r in &rows {
        let lost = r.load.lost + r.callee_lost.unwrap_or(0);
        let late = r.load.late + r.callee_late.unwrap_or(0);
        println!(
            "{:<6} {:<22} {:>6} {:>8} {:>9.1} {:>8.1}ms {:>8.1}ms {:>8} {:>6} {:>6} {:>7.2}s {:>7.2}s {:>10.3}",
            r.run,
            r.callee,
            r.load.calls,
            r.load.answered,
            r.load.setup_rate_cps,
            r.load.setup_ms_p50,
            r.load.setup_ms_p99,
            r.load.packets_received,
            lost,
            late,
            r.load.cpu_s,
            r.callee_cpu_s,
            r.cpu_pct_per_call
        );
    }
    println!("media: calls held with two-way G.711; %core/call = (uac + uas CPU) / call-seconds. setup: calls/s = whole calls (INVITE..BYE) per second.");
    println!(
        "lost/late: both directions for the waihu callee; caller side only for SIPp (it echoes)."
    );
    Ok(())
}
