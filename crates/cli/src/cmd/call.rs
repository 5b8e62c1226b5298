//! `waihu call` and `waihu answer`: place or answer one SIP call with media from the
//! command line (`waihu bench sip` is in crate `waihu-bench`).
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use waihu_engine::call::{self, CallOptions, CallReport, MediaOptions, Progress};
use waihu_engine::sip::SipEndpoint;
use waihu_engine::waihu_sip::{Credentials, SrtpMode, TrunkAddr};

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
    /// Blind transfer (REFER) once answered: sip:/sips:/tel: URI the callee is asked to call
    /// instead; we hang up when it answers / 接通后盲转至该地址.
    #[arg(long, value_name = "URI")]
    transfer_to: Option<String>,
    /// Seconds after the answer to send the REFER (after the prompt, if any, has had this
    /// long) / 接通后多少秒发起转接.
    #[arg(long, default_value_t = 2.0)]
    transfer_after: f64,
    /// SDES-SRTP media encryption / 媒体加密: off, optional (offer keys, accept plain RTP),
    /// mandatory (RTP/SAVP; hang up if the callee answers without keys).
    #[arg(long, value_enum, default_value_t = SrtpArg::Off)]
    srtp: SrtpArg,
    /// Print progress and the outcome as JSON lines (the last line is the outcome).
    #[arg(long)]
    json: bool,
}

/// `--srtp` values.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrtpArg {
    Off,
    Optional,
    Mandatory,
}

impl From<SrtpArg> for SrtpMode {
    fn from(a: SrtpArg) -> SrtpMode {
        match a {
            SrtpArg::Off => SrtpMode::Off,
            SrtpArg::Optional => SrtpMode::Optional,
            SrtpArg::Mandatory => SrtpMode::Mandatory,
        }
    }
}

/// Plays the prompt (if any) and asks for the blind transfer once `after` has passed.
struct TransferAfter {
    target: Option<String>,
    after: Duration,
    at: Option<std::time::Instant>,
    prompt: Option<Arc<[i16]>>,
    pos: usize,
}

impl waihu_engine::agent::CallAgent for TransferAfter {
    fn on_answered(&mut self, now: std::time::Instant) {
        self.at = Some(now + self.after);
    }
    fn on_frame(
        &mut self,
        now: std::time::Instant,
        _heard: &[i16],
        say: &mut [i16],
    ) -> waihu_engine::agent::Control {
        if let Some(p) = &self.prompt {
            let n = say.len().min(p.len().saturating_sub(self.pos));
            say[..n].copy_from_slice(&p[self.pos..self.pos + n]);
            self.pos += n;
        }
        if self.at.is_some_and(|at| now >= at) {
            if let Some(t) = self.target.take() {
                return waihu_engine::agent::Control::Transfer(t);
            }
        }
        waihu_engine::agent::Control::Continue
    }
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
    /// SDES-SRTP / 媒体加密: off (refuse RTP/SAVP offers), optional (answer keys when
    /// offered), mandatory (refuse offers without keys, 488).
    #[arg(long, value_enum, default_value_t = SrtpArg::Off)]
    srtp: SrtpArg,
    /// One JSON line per finished call.
    #[arg(long)]
    json: bool,
}

fn secs(s: f64, what: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| anyhow::anyhow!("{what}: {s} is not a valid number of seconds / 秒数无效"))
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
            Progress::Transfer(step) => serde_json::json!({"event": "transfer", "step": step}),
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
        Progress::Transfer(step) => println!("转接 / transfer: {step}"),
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
    if r.rtp.srtp {
        println!(
            "SRTP: on (AES_CM_128_HMAC_SHA1_80); dropped: auth failed {}, replayed {}",
            r.rtp.srtp_auth_failed, r.rtp.srtp_replayed
        );
    }
    if let Some(p) = &r.recording {
        println!("录音 / recording: {}", p.display());
    }
    if let Some(t) = &r.transfer {
        let result = match t.succeeded {
            Some(true) => "成功 / succeeded",
            Some(false) => "失败 / failed",
            None => "未完成 / unfinished",
        };
        println!(
            "转接 / transfer to {}: {result} — {}",
            t.target,
            t.progress.join(", ")
        );
    }
    Ok(())
}

pub fn run_call(ctx: &Ctx, a: CallArgs) -> anyhow::Result<()> {
    let (proxy, credentials) = match &a.trunk {
        Some(t) => {
            let t = TrunkAddr::parse(t).context("--trunk")?;
            let password = || std::env::var("WAIHU_SIP_PASSWORD").unwrap_or_default();
            (Some(t.addr), t.credentials(password))
        }
        None => (None, None),
    };
    let play = load_prompt(&a.play)?;
    let transfer_after = secs(a.transfer_after, "--transfer-after")?;
    let mut opts = CallOptions::new(a.target.clone());
    opts.proxy = proxy;
    opts.credentials = credentials;
    opts.ring_timeout = secs(a.ring_timeout, "--ring-timeout")?;
    opts.media = MediaOptions {
        // A transfer ends the call itself (when the target answers) or leaves it to the
        // other side and the timeouts.
        hangup_after_play: a.transfer_to.is_none() && (play.is_some() || a.dtmf.is_some()),
        play,
        record: a.record.clone(),
        dtmf: a.dtmf.clone(),
        max_duration: secs(a.max_duration, "--max-duration")?,
        no_rtp_timeout: secs(a.no_rtp_timeout, "--no-rtp-timeout")?,
        srtp: a.srtp.into(),
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
        let placed = match &a.transfer_to {
            Some(t) => {
                let agent = TransferAfter {
                    target: Some(t.clone()),
                    after: transfer_after,
                    at: None,
                    prompt: opts.media.play.clone(),
                    pos: 0,
                };
                call::place_call_with(&ep, opts, Box::new(agent), &mut |p| {
                    progress_line(p, json)
                })
                .await
            }
            None => call::place_call(&ep, opts, &mut |p| progress_line(p, json)).await,
        };
        match placed {
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
        srtp: a.srtp.into(),
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
