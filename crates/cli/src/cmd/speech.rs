//! `waihu tts ...` and `waihu asr ...`: speech synthesis and recognition from
//! the command line, plus their measurements (`--bench`).
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::builder::TypedValueParser;
use waihu_speech::{EspeakTts, LangChoice, StyleBook, Synthesizer, TtsCache, TtsEngine, Voice};

use crate::ctx::Ctx;

/// Synthesise TEXT with an emotion style and write a WAV file.
#[derive(clap::Args, Debug)]
pub struct TtsArgs {
    /// Text to speak (Chinese, English or mixed).
    #[arg(required_unless_present = "bench")]
    text: Option<String>,
    /// Style: neutral, happy, urgent, apologetic, or one from --styles.
    #[arg(long, default_value = "neutral")]
    style: String,
    /// Style file (YAML or JSON, `{"happy": {"pitch": 1.2, "speed": 1.1}}`), merged over the defaults.
    #[arg(long, value_name = "FILE")]
    styles: Option<PathBuf>,
    /// Language: auto splits by script; zh/en set the language of text without letters.
    #[arg(long, default_value = "auto")]
    lang: LangChoice,
    /// Output sample rate.
    #[arg(long, default_value_t = 8000, value_parser = clap::builder::PossibleValuesParser::new(["8000", "16000"]).map(|s| s.parse::<u32>().unwrap_or(8000)))]
    rate: u32,
    /// Output WAV file.
    #[arg(short, long, value_name = "FILE", required_unless_present = "bench")]
    output: Option<PathBuf>,
    /// Cache synthesised sentences in this directory (default: memory only).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Measure instead: RTF and time to first audio per language, cached vs uncached.
    #[arg(long)]
    bench: bool,
    /// Repetitions per measurement with --bench.
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

pub fn run_tts(_ctx: &Ctx, a: TtsArgs) -> anyhow::Result<()> {
    if a.bench {
        return bench_tts(a.runs);
    }
    let book = match &a.styles {
        Some(p) => StyleBook::load(p)?,
        None => StyleBook::default(),
    };
    let style = book.get(&a.style)?;
    let engine = EspeakTts::default();
    if !engine.available() {
        anyhow::bail!("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng");
    }
    let mut synth = Synthesizer::new(Arc::new(engine));
    if let Some(dir) = &a.cache_dir {
        synth = synth.with_cache(Arc::new(
            TtsCache::with_dir(64 << 20, dir).map_err(anyhow::Error::msg)?,
        ));
    }
    let text = a.text.unwrap_or_default();
    let output = a.output.context("--output is required")?;
    let voice = Voice {
        style,
        lang: a.lang,
        rate: a.rate,
    };
    let t0 = Instant::now();
    let mut first = None;
    let mut samples = Vec::new();
    for f in synth.stream(&text, voice)? {
        let f = f?;
        first.get_or_insert_with(|| t0.elapsed());
        samples.extend_from_slice(&f.samples);
    }
    let total = t0.elapsed();
    if samples.is_empty() {
        anyhow::bail!("没有可朗读的内容 / nothing to speak in {text:?}");
    }
    waihu_speech::wav::write_wav(&output, a.rate, &samples)?;
    let audio_s = samples.len() as f64 / a.rate as f64;
    println!(
        "已写入 / wrote {}: {:.2} s audio at {} Hz, style {} (pitch ×{}, speed ×{}); first audio {:.0} ms, total {:.0} ms, RTF {:.3}",
        output.display(),
        audio_s,
        a.rate,
        a.style,
        style.pitch,
        style.speed,
        first.unwrap_or_default().as_secs_f64() * 1000.0,
        total.as_secs_f64() * 1000.0,
        total.as_secs_f64() / audio_s
    );
    Ok(())
}

/// Time to first frame and real-time factor per language, for a fresh
/// (uncached) synthesiser beside a warmed cache, in the same run.
pub fn bench_tts(runs: usize) -> anyhow::Result<()> {
    let engine: Arc<EspeakTts> = Arc::new(EspeakTts::default());
    if !engine.available() {
        anyhow::bail!("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng");
    }
    let prompts = [
        ("zh", "您好，这里是星河商城客服中心。您上周购买的订单已经发货，预计明天送达。请问您现在方便接听吗？"),
        ("en", "Hello, this is the customer service centre. Your order shipped last week and should arrive tomorrow. Is now a good time to talk?"),
        ("mixed", "您好，您的iPhone订单已发货。Thank you for your patience, 祝您生活愉快！"),
    ];
    let runs = runs.max(1);
    println!("TTS espeak-ng ({}), {runs} runs each, medians", engine.id());
    println!(
        "{:<6} {:>5} {:>8} | {:>14} {:>8} | {:>14} {:>8} | {:>7}",
        "lang", "rate", "audio s", "uncached 1st ms", "RTF", "cached 1st ms", "RTF", "speedup"
    );
    for (name, text) in prompts {
        for rate in [8000u32, 16000] {
            let voice = Voice {
                style: waihu_speech::Style::NEUTRAL,
                lang: LangChoice::Auto,
                rate,
            };
            let measure = |synth: &Synthesizer| -> anyhow::Result<(f64, f64, f64)> {
                let t0 = Instant::now();
                let mut first = None;
                let mut n = 0usize;
                for f in synth.stream(text, voice)? {
                    n += f?.samples.len();
                    first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
                }
                let total = t0.elapsed().as_secs_f64();
                let audio = n as f64 / rate as f64;
                Ok((first.unwrap_or(total) * 1000.0, total / audio, audio))
            };
            let mut unc = Vec::new();
            let mut cac = Vec::new();
            let mut audio = 0.0;
            let cached = Synthesizer::new(engine.clone())
                .with_cache(Arc::new(TtsCache::in_memory(64 << 20)));
            measure(&cached)?; // warm
            for _ in 0..runs {
                let (f, r, a) = measure(&Synthesizer::new(engine.clone()))?;
                unc.push((f, r));
                audio = a;
                let (f, r, _) = measure(&cached)?;
                cac.push((f, r));
            }
            let med = |v: &mut Vec<(f64, f64)>, i: usize| {
                let mut x: Vec<f64> = v.iter().map(|p| if i == 0 { p.0 } else { p.1 }).collect();
                x.sort_by(|a, b| a.total_cmp(b));
                x[x.len() / 2]
            };
            let (uf, ur, cf, cr) = (
                med(&mut unc, 0),
                med(&mut unc, 1),
                med(&mut cac, 0),
                med(&mut cac, 1),
            );
            println!(
                "{name:<6} {rate:>5} {audio:>8.2} | {uf:>14.1} {ur:>8.4} | {cf:>14.2} {cr:>8.5} | {:>6.0}×",
                ur / cr.max(1e-9)
            );
        }
    }
    Ok(())
}
