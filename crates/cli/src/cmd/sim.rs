//! `waihu sim`: serve virtual callees on a SIP address until interrupted.
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use waihu_sim::{callee_voice, Persona, Population, SimOptions, SimServer};
use waihu_speech::channel::LineConfig;
use waihu_speech::g711::Law;
use waihu_speech::{EspeakTts, Lang, TtsCache};

use crate::ctx::Ctx;

/// 虚拟被叫: answer SIP calls as virtual callees (personas) on loopback.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address to listen on / 监听地址. Dial sip:+15551230001@ADDR.
    #[arg(long, default_value = "127.0.0.1:5070")]
    listen: SocketAddr,
    /// Language of the callees / 语言: en or zh.
    #[arg(long, default_value = "en", value_parser = parse_lang)]
    lang: Lang,
    /// Seed of the persona mix, phrasings and pauses / 随机种子.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Every number is this persona / 固定角色 (default: a seeded mix by number):
    /// cooperative, changes_address, reschedules, busy_callback, not_interested, cancels,
    /// angry, asks_human, do_not_call, wrong_number, no_answer, busy, powered_off,
    /// voicemail, interrupter.
    #[arg(long)]
    persona: Option<Persona>,
    /// Conversing callees always pick up (no answer draw by local hour) / 总是接听.
    #[arg(long)]
    always_answer: bool,
    /// The bot's script name, for the expected outcomes / 话术名称.
    #[arg(long, default_value = "order_confirmation")]
    script: String,
    /// Calls served at once; more are refused with 503 / 最大并发.
    #[arg(long, default_value_t = 64)]
    max_concurrent: usize,
    /// Exit after this many finished calls (default: run until Ctrl-C) / 处理若干通后退出.
    #[arg(long)]
    calls: Option<usize>,
    /// Keep synthesised lines in this directory between runs / 语音缓存目录.
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// One JSON object per finished call / 每通电话一行 JSON.
    #[arg(long)]
    json: bool,
    /// Telephone line noise / 线路噪声: background noise this many dB below
    /// the callee's speech (default: none). Every callee's voice goes through
    /// a line model: 300-3400 Hz band, G.711 round trip, optional noise and loss.
    #[arg(long, value_name = "DB")]
    line_snr: Option<f64>,
    /// Packet loss on the line / 丢包率: percent of 20 ms frames dropped (0-100).
    #[arg(long, value_name = "PCT", default_value_t = 0.0, value_parser = parse_pct)]
    line_loss: f64,
    /// G.711 law of the line model / 线路编码: ulaw or alaw.
    #[arg(long, default_value = "ulaw", value_parser = parse_law)]
    line_law: Law,
    /// Callees speak with espeak-ng even where the neural Mandarin voice is installed / 使用 espeak-ng.
    #[arg(long)]
    espeak: bool,
}

fn parse_pct(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=100.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "丢包率须为 0-100 / `{s}` is not a percentage 0-100"
        )),
    }
}

fn parse_law(s: &str) -> Result<Law, String> {
    match s.to_ascii_lowercase().as_str() {
        "ulaw" | "pcmu" | "mulaw" => Ok(Law::Ulaw),
        "alaw" | "pcma" => Ok(Law::Alaw),
        other => Err(format!("未知编码 / unknown law `{other}` (ulaw, alaw)")),
    }
}

fn parse_lang(s: &str) -> Result<Lang, String> {
    match s.to_ascii_lowercase().as_str() {
        "en" | "en-us" => Ok(Lang::En),
        "zh" | "cmn" | "zh-cn" => Ok(Lang::Zh),
        other => Err(format!("未知语言 / unknown language `{other}` (en, zh)")),
    }
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    if !EspeakTts::default().available() {
        anyhow::bail!("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng");
    }
    let cache = match &a.cache_dir {
        Some(dir) => TtsCache::with_dir(64 << 20, dir).map_err(anyhow::Error::msg)?,
        None => TtsCache::in_memory(64 << 20),
    };
    let mut pop = Population::new(a.seed);
    if let Some(p) = a.persona {
        pop = pop.with_fixed(p);
    }
    if a.always_answer {
        pop = pop.always_answer();
    }
    let mut opts = SimOptions::new(a.lang);
    opts.script = a.script.clone();
    opts.max_concurrent = a.max_concurrent.max(1);
    opts.line = Some(LineConfig {
        law: a.line_law,
        snr_db: a.line_snr,
        loss: a.line_loss / 100.0,
        ..LineConfig::default()
    });
    let cache = Some(Arc::new(cache));
    let voice = if a.espeak {
        waihu_sim::CalleeVoice {
            synth: waihu_sim::callee_synthesizer(cache),
            zh_neural: false,
            note: None,
        }
    } else {
        callee_voice(ctx.home(), cache)
    };
    if a.lang == Lang::Zh {
        if let Some(note) = &voice.note {
            eprintln!("note: {note}");
        }
        if voice.zh_neural {
            eprintln!("{}", waihu_speech::zhvoice::LICENCE_NOTE);
        }
    }
    opts.vary_voices = voice.zh_neural && a.lang == Lang::Zh;
    let rt = ctx.runtime()?;
    rt.block_on(async {
        let sim = SimServer::start_with(a.listen, pop, voice.synth, opts)
            .await
            .with_context(|| format!("starting virtual callees on {}", a.listen))?;
        eprintln!(
            "虚拟被叫 / virtual callees on {} ({}, seed {}{}): {} lines synthesised in {:.2} s; dial sip:+15551230001@{}",
            sim.addr,
            match a.lang {
                Lang::En => "en",
                Lang::Zh => "zh",
            },
            a.seed,
            a.persona.map(|p| format!(", all {p}")).unwrap_or_default(),
            sim.prepare.lines,
            sim.prepare.seconds,
            sim.addr,
        );
        let mut logs = sim
            .take_log_stream()
            .context("the simulator's call log was already taken")?;
        let mut done = 0usize;
        loop {
            tokio::select! {
                l = logs.recv() => {
                    let Some(l) = l else { break };
                    done += 1;
                    if a.json {
                        println!("{}", serde_json::to_string(&l)?);
                    } else {
                        println!(
                            "{} {} {} lines={} prompts={} talk={:.1}s expect={}{} {}",
                            l.to,
                            l.persona,
                            l.decision.name(),
                            l.lines_said.len(),
                            l.bot_prompts_heard,
                            l.talk_s,
                            l.expected_outcome.as_str(),
                            l.expected_business.as_deref().map(|b| format!("/{b}")).unwrap_or_default(),
                            l.callee_hangup.as_deref().map(|h| format!("(callee hung up: {h})")).unwrap_or_else(|| format!("({})", l.reason)),
                        );
                    }
                    if a.calls.is_some_and(|n| done >= n) {
                        break;
                    }
                }
                _ = tokio::signal::ctrl_c() => break,
            }
        }
        sim.shutdown().await;
        Ok(())
    })
}
