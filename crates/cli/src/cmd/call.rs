//! `waihu call`, `waihu answer` and `waihu bench sip`: place or answer one SIP call with
//! media from the command line, and measure concurrent calls and setup rate.
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use waihu_engine::call::{self, CallOptions, CallReport, MediaOptions, Progress};
use waihu_engine::sip::SipEndpoint;
use waihu_engine::waihu_sip::Credentials;

use crate::ctx::Ctx;

/// Place one call: 拨打一通电话 (SIP URI), with optional prompt, recording and DTMF.
#[derive(clap::Args, Debug)]
pub struct CallArgs {
    /// Who to call / 被叫地址, e.g. sip:bob@127.0.0.1:5062 or sip:+8613800000000@trunk.
    target: String,
    /// Trunk / outbound proxy / 中继: `[sip:][USER[:PASSWORD]@]IP:PORT` (digest credentials optional).
    #[arg(long)]
    trunk: Option<String>,
    /// Local SIP address to bind / 本地地址 (port 0: any).
    #[arg(long, default_value = "0.0.0.0:0")]
    bind: SocketAddr,
    /// Our SIP user (From) / 主叫用户名.
    #[arg(long, default_value = "waihu")]
    from: String,
    /// WAV file to play once answered (any rate, mono or stereo) / 接通后播放的 WAV.
    #[arg(long, value_name = "FILE")]
    play: Option<PathBuf>,
    /// Record the call to a stereo WAV (left: callee, right: us) / 录音（左：被叫，右：我方）.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// DTMF digits to send after answer (RFC 4733) / 接通后发送的按键, e.g. 123#.
    #[arg(long)]
    dtmf: Option<String>,
    /// Seconds to let it ring before CANCEL / 振铃超时（秒）.
    #[arg(long, default_value_t = 45.0)]
    ring_timeout: f64,
    /// Hang up after this many seconds of conversation / 最长通话时长（秒）.
    #[arg(long, default_value_t = 60.0)]
    max_duration: f64,
    /// Hang up when no RTP arrives for this long / 无媒体超时（秒）.
    #[arg(long, default_value_t = 10.0)]
    no_rtp_timeout: f64,
    /// Print progress and the outcome as JSON lines (the last line is the outcome).
    #[arg(long)]
    json: bool,
}

/// Answer incoming calls: 作为被叫应答来电，播放并录音.
#[derive(clap::Args, Debug)]
pub struct AnswerArgs {
    /// Address to listen on / 监听地址, e.g. 127.0.0.1:5062.
    #[arg(long)]
    listen: SocketAddr,
    /// WAV to play to every caller / 播放给主叫的 WAV.
    #[arg(long, value_name = "FILE")]
    play: Option<PathBuf>,
    /// Play the WAV in a loop instead of hanging up when it ends / 循环播放.
    #[arg(long)]
    r#loop: bool,
    /// Directory for one stereo WAV per call / 录音目录.
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// Ring this many seconds before answering / 振铃时长（秒）.
    #[arg(long, default_value_t = 1.0)]
    ring: f64,
    /// Hang up after this many seconds / 最长通话时长（秒）.
    #[arg(long, default_value_t = 300.0)]
    max_duration: f64,
    /// Stop after this many calls (default: run until interrupted) / 处理若干通后退出.
    #[arg(long)]
    calls: Option<u64>,
    /// Register at this registrar (IP-literal SIP URI, e.g. sip:10.0.0.1:5060) and keep the
    /// binding refreshed / 向注册服务器注册.
    #[arg(long, value_name = "URI")]
    register: Option<String>,
    /// Our SIP user (Contact, registration) / 本端用户名.
    #[arg(long, default_value = "waihu")]
    user: String,
    /// Digest password for --register (or env WAIHU_SIP_PASSWORD) / 注册密码.
    #[arg(long, env = "WAIHU_SIP_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// One JSON line per finished call.
    #[arg(long)]
    json: bool,
}

/// `waihu bench sip` arguments.
#[derive(clap::Args, Debug)]
pub struct BenchSipArgs {
    /// Concurrent calls with two-way G.711 media.
    #[arg(long, default_value_t = 200)]
    calls: usize,
    /// Seconds each call is held.
    #[arg(long, default_value_t = 10.0)]
    hold: f64,
    /// Calls started per second while ramping up.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Calls in the setup-rate run (INVITE → 200 → ACK → BYE, no hold).
    #[arg(long, default_value_t = 2000)]
    setup_calls: usize,
    /// Offered rate of the setup-rate run.
    #[arg(long, default_value_t = 400.0)]
    setup_rate: f64,
    /// Skip the SIPp reference runs.
    #[arg(long)]
    no_sipp: bool,
    #[arg(long)]
    json: bool,
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{what}: {s} is not a valid number of seconds / 秒数无效"))
}

/// `[sip:][user[:password]@]ip:port`.
fn parse_trunk(s: &str) -> anyhow::Result<(SocketAddr, Option<Credentials>)> {
    let rest = s.strip_prefix("sip:").unwrap_or(s);
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => {
            let (u, p) = c.split_once(':').unwrap_or((c, ""));
            let p = if p.is_empty() {
                std::env::var("WAIHU_SIP_PASSWORD").unwrap_or_default()
            } else {
                p.to_string()
            };
            (
                Some(Credentials {
                    username: u.to_string(),
                    password: p,
                }),
                h,
            )
        }
        None => (None, rest),
    };
    let addr = host.parse().with_context(|| {
        format!("--trunk {s:?}: expected [sip:][USER[:PASSWORD]@]IP:PORT / 中继地址格式错误")
    })?;
    Ok((addr, creds))
}

fn load_prompt(path: &Option<PathBuf>) -> anyhow::Result<Option<Arc<[i16]>>> {
    path.as_ref()
        .map(|p| {
            waihu_engine::waihu_media::wav::read_8k_mono(p)
                .map(Arc::from)
                .map_err(anyhow::Error::from)
        })
        .transpose()
}

fn progress_line(p: &Progress, json: bool) {
    if json {
        let v = match p {
            Progress::Trying => serde_json::json!({"event": "trying"}),
            Progress::Ringing => serde_json::json!({"event": "ringing"}),
            Progress::EarlyMedia => serde_json::json!({"event": "early_media"}),
            Progress::Answered { setup_ms } => {
                serde_json::json!({"event": "answered", "setup_ms": setup_ms})
            }
            Progress::DtmfReceived(d) => {
                serde_json::json!({"event": "dtmf", "digit": d.to_string()})
            }
            Progress::HangingUp(why) => serde_json::json!({"event": "hanging_up", "reason": why}),
            Progress::PeerHungUp => serde_json::json!({"event": "peer_hung_up"}),
        };
        println!("{v}");
        return;
    }
    match p {
        Progress::Trying => println!("呼叫中 / trying"),
        Progress::Ringing => println!("振铃 / ringing"),
        Progress::EarlyMedia => println!("早期媒体 / early media"),
        Progress::Answered { setup_ms } => println!("已接通 / answered ({setup_ms:.0} ms)"),
        Progress::DtmfReceived(d) => println!("收到按键 / DTMF received: {d}"),
        Progress::HangingUp(why) => println!("挂断 / hanging up: {why}"),
        Progress::PeerHungUp => println!("对方挂断 / peer hung up"),
    }
}

fn print_report(r: &CallReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let outcome = serde_json::to_value(r.outcome)?
        .as_str()
        .unwrap_or("failed")
        .to_string();
    println!(
        "结果 / outcome: {outcome} (SIP {}), 通话 / duration {:.2} s — {}",
        r.sip_status.map_or("-".into(), |s| s.to_string()),
        r.duration_s,
        r.reason
    );
    println!(
        "RTP: sent {} received {} lost {} late {} jitter {:.1} ms; early audio {:.1} s; DTMF sent {:?} received {:?}",
        r.rtp.packets_sent, r.rtp.packets_received, r.rtp.lost, r.rtp.late, r.rtp.jitter_ms, r.early_audio_s, r.dtmf_sent, r.dtmf_received
    );
    if let Some(p) = &r.recording {
        println!("录音 / recording: {}", p.display());
    }
    Ok(())
}

pub fn run_call(ctx: &Ctx, a: CallArgs) -> anyhow::Result<()> {
    let (proxy, credentials) = match &a.trunk {
        Some(t) => {
            let (addr, c) = parse_trunk(t)?;
            (Some(addr), c)
        }
        None => (None, None),
    };
    let play = load_prompt(&a.play)?;
    let mut opts = CallOptions::new(a.target.clone());
    opts.proxy = proxy;
    opts.credentials = credentials;
    opts.ring_timeout = secs(a.ring_timeout, "--ring-timeout")?;
    opts.media = MediaOptions {
        hangup_after_play: play.is_some() || a.dtmf.is_some(),
        play,
        record: a.record.clone(),
        dtmf: a.dtmf.clone(),
        max_duration: secs(a.max_duration, "--max-duration")?,
        no_rtp_timeout: secs(a.no_rtp_timeout, "--no-rtp-timeout")?,
        ..MediaOptions::default()
    };
    let rt = ctx.runtime()?;
    rt.block_on(async {
        // Advertise the interface that routes to the peer when bound to 0.0.0.0.
        let toward = proxy.or_else(|| {
            waihu_engine::waihu_sip::msg::SipUri::parse(&a.target).and_then(|u| u.socket_addr())
        });
        let adv = waihu_engine::sip::advertised_ip(a.bind.ip(), toward);
        let ep = SipEndpoint::bind(a.bind, &a.from, Some(adv)).await?;
        let json = a.json;
        match call::place_call(&ep, opts, &mut |p| progress_line(p, json)).await {
            Ok(report) => print_report(&report, json),
            Err(e) => {
                // Scripts read the last line: it is an outcome even when the call never started.
                if json {
                    let v = serde_json::json!({"outcome": "failed", "sip_status": null, "duration_s": 0.0, "reason": e.to_string()});
                    println!("{v}");
                }
                Err(anyhow::Error::from(e).context("the call failed / 呼叫失败"))
            }
        }
    })
}

pub fn run_answer(ctx: &Ctx, a: AnswerArgs) -> anyhow::Result<()> {
    let play = load_prompt(&a.play)?;
    if let Some(d) = &a.record {
        std::fs::create_dir_all(d)
            .with_context(|| format!("creating recording directory {}", d.display()))?;
    }
    let opts = MediaOptions {
        hangup_after_play: play.is_some() && !a.r#loop,
        loop_play: a.r#loop,
        play,
        record: a.record.clone(),
        max_duration: secs(a.max_duration, "--max-duration")?,
        ..MediaOptions::default()
    };
    let ring = secs(a.ring, "--ring")?;
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let ep = Arc::new(SipEndpoint::bind(a.listen, &a.user, None).await?);
        if let Some(registrar) = &a.register {
            let reg = waihu_engine::waihu_sip::Registration {
                registrar: registrar.clone(),
                proxy: None,
                transport: waihu_engine::waihu_sip::Transport::Udp,
                expires: 300,
                credentials: a.password.clone().map(|password| Credentials {
                    username: a.user.clone(),
                    password,
                }),
            };
            let (_id, mut events) = ep.register(reg).await?;
            tokio::spawn(async move {
                while let Some(ev) = events.recv().await {
                    match ev {
                        waihu_engine::waihu_sip::UaEvent::Registered { expires, .. } => {
                            eprintln!("已注册 / registered ({expires} s)")
                        }
                        waihu_engine::waihu_sip::UaEvent::RegistrationFailed { status, .. } => {
                            eprintln!(
                                "注册失败 / registration failed: {}",
                                status.map_or("timeout".into(), |s| s.to_string())
                            )
                        }
                        _ => {}
                    }
                }
            });
        }
        if !a.json {
            println!("应答中 / answering on {} (Ctrl-C to stop)", ep.local_addr());
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let serve = tokio::spawn(call::answer_loop(ep.clone(), ring, opts, tx));
        let mut served = 0u64;
        loop {
            tokio::select! {
                r = rx.recv() => {
                    let Some(r) = r else { break };
                    match r {
                        Ok(report) => print_report(&report, a.json)?,
                        Err(e) => eprintln!("waihu: call failed / 通话失败: {e}"),
                    }
                    served += 1;
                    if a.calls.is_some_and(|n| served >= n) {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        serve.abort();
        Ok(())
    })
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
        waihu_engine::bench::process_cpu_seconds(&self.child.id().to_string()).unwrap_or(0.0)
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
    load: waihu_engine::bench::LoadResult,
    callee_cpu_s: f64,
    /// Both sides' CPU per concurrent call, as a percentage of one core.
    cpu_pct_per_call: f64,
    /// Loss seen by the callee (our UAS only; SIPp does not report it).
    callee_lost: Option<u64>,
    callee_late: Option<u64>,
}

pub fn bench_sip(ctx: &Ctx, a: BenchSipArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tone_path = dir.path().join("tone.wav");
    let tone: Vec<i16> = (0..8000)
        .map(|i| ((i as f64 * 2.0 * std::f64::consts::PI * 425.0 / 8000.0).sin() * 6000.0) as i16)
        .collect();
    waihu_engine::waihu_media::wav::write_8k_mono(&tone_path, &tone)?;
    let tone: Arc<[i16]> = tone.into();
    let hold = secs(a.hold, "--hold")?;
    let with_sipp = !a.no_sipp && sipp_available();
    if !a.no_sipp && !with_sipp {
        eprintln!("waihu: sipp not installed, reference runs skipped / 未安装 sipp，跳过参照组");
    }
    let rt = ctx.runtime()?;
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
                let r = waihu_engine::bench::run_load(
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
