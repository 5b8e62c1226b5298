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

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// Embedded Whisper (faster-whisper / CTranslate2 model directory, run with candle), behind the endpointer.
    Whisper,
    /// OpenAI-compatible `POST /v1/audio/transcriptions` (faster-whisper servers, vLLM, FunASR's OpenAI server), behind the endpointer.
    Openai,
    /// FunASR runtime WebSocket server (Paraformer / SenseVoice), streaming.
    Funasr,
}

/// Recognise speech in a WAV file and print the text, timings and RTF.
#[derive(clap::Args, Debug)]
pub struct AsrArgs {
    /// WAV file (PCM 8-32 bit, float, A-law or µ-law; mixed down to mono).
    #[arg(required_unless_present_any = ["bench_vad", "bench"])]
    file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "whisper")]
    engine: Engine,
    /// Whisper model directory (default: <models dir>/whisper-tiny.en, installed by scripts/deps/speech.sh).
    #[arg(long = "model-dir", value_name = "DIR")]
    model_dir: Option<PathBuf>,
    /// Server URL: `http://host:8000/v1` (openai) or `ws://host:10095` (funasr).
    #[arg(long, env = "WAIHU_ASR_URL")]
    url: Option<String>,
    /// Model name sent to OpenAI-compatible servers.
    #[arg(long, default_value = "whisper-1")]
    model: String,
    #[arg(long, env = "WAIHU_ASR_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// zh, en or auto.
    #[arg(long, default_value = "auto")]
    lang: String,
    /// Hot word to bias recognition towards (repeatable): product and customer names.
    #[arg(long = "hotword")]
    hotwords: Vec<String>,
    /// Context prompt for Whisper-style servers.
    #[arg(long)]
    prompt: Option<String>,
    /// FunASR mode: 2pass, online or offline.
    #[arg(long, default_value = "2pass")]
    mode: String,
    /// End-of-speech silence for the endpointer, in ms.
    #[arg(long, default_value_t = 500)]
    end_silence_ms: u32,
    /// Print results as JSON lines.
    #[arg(long)]
    json: bool,
    /// Measure the VAD and endpointer instead: endpoint delay and false
    /// barge-ins on espeak-ng speech, clean and with noise.
    #[arg(long)]
    bench_vad: bool,
    /// Measure the embedded engine instead: WER and time per utterance beside
    /// faster-whisper (Python) on the same audio and model, clean and at 10 dB SNR.
    #[arg(long)]
    bench: bool,
    /// With --bench: skip the faster-whisper baseline.
    #[arg(long)]
    no_baseline: bool,
}

pub fn run_asr(ctx: &Ctx, a: AsrArgs) -> anyhow::Result<()> {
    use waihu_speech::asr::{recognize_all, Asr, AsrOptions, Endpointed};
    use waihu_speech::endpoint::EndpointConfig;
    if a.bench_vad {
        return bench_vad();
    }
    if a.bench {
        return bench_asr(ctx, a.model_dir.clone(), !a.no_baseline);
    }
    let file = a.file.context("FILE is required")?;
    let pcm = waihu_speech::wav::read_wav(&file)?;
    // The VAD takes 8, 16, 32 or 48 kHz; anything else goes to 16 kHz.
    let (rate, samples) = match pcm.rate {
        8000 | 16000 | 32000 | 48000 => (pcm.rate, pcm.samples),
        r => (
            16000,
            waihu_speech::resample::resample_i16(&pcm.samples, r, 16000),
        ),
    };
    let audio_s = samples.len() as f64 / rate as f64;
    let lang = match a.lang.as_str() {
        "auto" | "" => None,
        "zh" | "en" => Some(a.lang.clone()),
        other => anyhow::bail!("未知语言 / unknown language `{other}` (zh, en, auto)"),
    };
    let opts = AsrOptions {
        lang,
        hotwords: a.hotwords.clone(),
        prompt: a.prompt.clone(),
        rate,
    };
    let url = || {
        a.url
            .clone()
            .context("需要 --url / --url is required (or WAIHU_ASR_URL): the ASR server to use")
    };
    let asr: Box<dyn Asr> = match a.engine {
        Engine::Whisper => {
            let dir = a.model_dir.clone().unwrap_or_else(|| {
                waihu_speech::whisper::default_model_dir(ctx.data_dir(), "whisper-tiny.en")
            });
            let engine = waihu_speech::whisper::WhisperAsr::load(&dir).with_context(|| {
                format!(
                    "loading {} (install it with scripts/deps/speech.sh)",
                    dir.display()
                )
            })?;
            let cfg = EndpointConfig {
                end_silence_ms: a.end_silence_ms,
                ..Default::default()
            };
            Box::new(Endpointed::new(Arc::new(engine), cfg))
        }
        Engine::Openai => {
            let engine = waihu_speech::openai::OpenAiAsr::new(&url()?, &a.model)?
                .with_api_key(a.api_key.clone());
            let cfg = EndpointConfig {
                end_silence_ms: a.end_silence_ms,
                ..Default::default()
            };
            Box::new(Endpointed::new(Arc::new(engine), cfg))
        }
        Engine::Funasr => {
            let mode = a.mode.parse().map_err(anyhow::Error::msg)?;
            Box::new(waihu_speech::funasr::FunAsr::new(&url()?, mode)?)
        }
    };
    let t0 = Instant::now();
    let results = ctx
        .runtime()?
        .block_on(recognize_all(asr.as_ref(), &samples, &opts))?;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut text = String::new();
    for r in &results {
        if a.json {
            crate::ctx::print_json(r)?;
        } else {
            println!(
                "[{:>7.2}-{:>7.2} s] {} {}{}",
                r.start_ms as f64 / 1000.0,
                r.end_ms as f64 / 1000.0,
                if r.is_final { "final  " } else { "partial" },
                r.text,
                r.confidence
                    .map(|c| format!("  (confidence {c:.2})"))
                    .unwrap_or_default()
            );
        }
        if r.is_final {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&r.text);
        }
    }
    if !a.json {
        println!("文本 / text: {text}");
        println!(
            "引擎 / engine {}: audio {audio_s:.2} s at {rate} Hz, processed in {elapsed:.2} s, RTF {:.3}",
            asr.name(),
            elapsed / audio_s.max(1e-9)
        );
    }
    Ok(())
}

/// Endpoint delay, start error, barge-in delay and false barge-ins of the
/// default detector (WebRTC VAD + noise-floor gate) beside plain WebRTC VAD,
/// on espeak-ng sentences (Mandarin and English, four styles) embedded in
/// silence, clean and with white noise at 20 and 10 dB SNR, plus one minute
/// of noise alone with a prompt playing.
pub fn bench_vad() -> anyhow::Result<()> {
    use waihu_speech::endpoint::EndpointConfig;
    use waihu_speech::eval::{
        active_speech, add_noise, make_clip, run_clip_with, Clip, ClipOutcome, Noise,
    };
    use waihu_speech::vad::{default_vad, Aggressiveness, Vad, WebRtcVad};
    let engine = EspeakTts::default();
    if !engine.available() {
        anyhow::bail!("找不到 espeak-ng / espeak-ng not found: apt-get install espeak-ng");
    }
    let synth = Synthesizer::new(Arc::new(engine));
    let sentences = [
        "Yes, that's fine, please deliver it tomorrow morning.",
        "No thanks, I am not interested.",
        "Could you call me back after five o'clock?",
        "I already paid for that order last week.",
        "好的，明天上午送货就可以。",
        "我现在不方便，请晚点再打过来。",
        "这个优惠我没有兴趣，谢谢。",
        "请问你们是哪家公司？",
    ];
    let styles = ["neutral", "happy", "urgent", "apologetic"];
    let book = StyleBook::default();
    let rate = 8000u32;
    let cfg = EndpointConfig::default();
    let mut clips = Vec::new();
    for s in sentences {
        for st in styles {
            let v = Voice {
                style: book.get(st)?,
                lang: LangChoice::Auto,
                rate,
            };
            clips.push(synth.synthesize_all(s, v)?);
        }
    }
    let (ref_rms, _, _) = active_speech(&clips[0], rate);
    type Factory = fn(u32) -> Box<dyn Vad>;
    let detectors: [(&str, Factory); 2] = [
        ("webrtc+gate", |r| {
            default_vad(r).expect("8 kHz is supported")
        }),
        ("webrtc only", |r| {
            Box::new(WebRtcVad::new(r, Aggressiveness::Aggressive).expect("8 kHz is supported"))
        }),
    ];
    println!(
        "VAD/endpointer at {rate} Hz, {} clips (8 sentences × 4 styles), end silence {} ms, barge-in after {} ms of speech",
        clips.len(),
        cfg.end_silence_ms,
        cfg.barge_in_ms
    );
    println!(
        "{:<12} {:>6} | {:>5} {:>5} {:>5} | {:>9} {:>9} {:>9} {:>9} | {:>6} {:>12}",
        "detector",
        "SNR",
        "found",
        "split",
        "miss",
        "start ms",
        "end p50",
        "end p90",
        "barge p50",
        "false",
        "false/min noise"
    );
    let pct = |v: &mut Vec<i64>, p: f64| -> String {
        if v.is_empty() {
            return "-".into();
        }
        v.sort();
        v[((v.len() - 1) as f64 * p).round() as usize].to_string()
    };
    for (name, make) in detectors {
        for snr in [None, Some(20.0), Some(10.0)] {
            let (mut found, mut split, mut miss, mut fb) = (0, 0, 0, 0);
            let (mut starts, mut ends, mut barges) = (Vec::new(), Vec::new(), Vec::new());
            for (i, speech) in clips.iter().enumerate() {
                let clip = make_clip(speech, rate, 1500, 1500, snr, i as u64 + 1);
                let o: ClipOutcome = run_clip_with(&clip, cfg, make(rate))?;
                match o.utterances {
                    0 => miss += 1,
                    1 => found += 1,
                    _ => split += 1,
                }
                fb += o.false_barge_ins + o.false_starts;
                starts.extend(o.start_error_ms);
                ends.extend(o.end_delay_ms);
                barges.extend(o.barge_in_delay_ms);
            }
            // One minute of noise alone, at the level the SNR implies for this speech.
            let mut noise = vec![0i16; rate as usize * 60];
            if let Some(s) = snr {
                add_noise(&mut noise, ref_rms, s, &mut Noise::new(99));
            }
            let only = Clip {
                samples: noise,
                rate,
                speech_start_ms: u64::MAX / 4,
                speech_end_ms: u64::MAX / 4,
            };
            let o = run_clip_with(&only, cfg, make(rate))?;
            println!(
                "{name:<12} {:>6} | {found:>5} {split:>5} {miss:>5} | {:>9} {:>9} {:>9} {:>9} | {fb:>6} {:>12}",
                snr.map(|s| format!("{s} dB")).unwrap_or("clean".into()),
                pct(&mut starts, 0.5),
                pct(&mut ends, 0.5),
                pct(&mut ends, 0.9),
                pct(&mut barges, 0.5),
                o.false_barge_ins + o.false_starts
            );
        }
    }
    Ok(())
}

const FASTER_WHISPER_SCRIPT: &str = r#"
import json, sys, time
from faster_whisper import WhisperModel
model_dir, compute, files = sys.argv[1], sys.argv[2], sys.argv[3:]
m = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=2)
for f in files:
    t0 = time.perf_counter()
    segs, info = m.transcribe(f, language="en", beam_size=1, temperature=0.0, without_timestamps=True,
                              condition_on_previous_text=False, vad_filter=False)
    text = " ".join(s.text.strip() for s in segs)
    print(json.dumps({"file": f, "text": text, "secs": time.perf_counter() - t0}), flush=True)
"#;

/// The Python baseline's interpreter: a venv under the cache dir with
/// faster-whisper installed (created on first use).
fn faster_whisper_python() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let venv = home.join(".cache/waihu/fw-venv");
    let py = venv.join("bin/python");
    let ok = |p: &PathBuf| {
        std::process::Command::new(p)
            .args(["-c", "import faster_whisper"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if py.exists() && ok(&py) {
        return Ok(py);
    }
    eprintln!(
        "安装对照组 / installing the baseline: faster-whisper into {}",
        venv.display()
    );
    let st = std::process::Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()?;
    anyhow::ensure!(st.success(), "python3 -m venv failed");
    let st = std::process::Command::new(venv.join("bin/pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "faster-whisper",
        ])
        .status()?;
    anyhow::ensure!(st.success() && ok(&py), "pip install faster-whisper failed");
    Ok(py)
}

/// WER and time per utterance of the embedded Whisper engine beside
/// faster-whisper (Python, CTranslate2) on the same audio and model: espeak-ng
/// English sentences (two voices, two speeds) through the 8 kHz telephone
/// band, clean and with white noise at 10 dB SNR.
pub fn bench_asr(ctx: &Ctx, model_dir: Option<PathBuf>, baseline: bool) -> anyhow::Result<()> {
    use waihu_speech::asr::{AsrOptions, UtteranceAsr};
    use waihu_speech::eval::{make_clip, word_errors};
    use waihu_speech::whisper::{default_model_dir, WhisperAsr};
    let dir = model_dir.unwrap_or_else(|| default_model_dir(ctx.data_dir(), "whisper-tiny.en"));
    let t_load = Instant::now();
    let asr = WhisperAsr::load(&dir)
        .with_context(|| format!("loading {} (run scripts/deps/speech.sh)", dir.display()))?;
    let load_s = t_load.elapsed().as_secs_f64();
    let sentences = [
        "Yes, that's fine, please deliver it tomorrow morning.",
        "No thanks, I am not interested in this offer.",
        "Could you call me back after five o'clock?",
        "I already paid for that order last week.",
        "Please remove my number from your list.",
        "Who is calling, and which company are you from?",
    ];
    let voices = [
        ("en-us", 1.0f32),
        ("en-gb", 1.0),
        ("en-us", 1.2),
        ("en-gb", 0.9),
    ];
    let tmp = tempfile::tempdir()?;
    let mut cases = Vec::new();
    for (vi, (voice, speed)) in voices.iter().enumerate() {
        let synth = Synthesizer::new(Arc::new(EspeakTts::new(
            "espeak-ng",
            "cmn-latn-pinyin",
            voice,
        )));
        for (si, s) in sentences.iter().enumerate() {
            let style = waihu_speech::Style {
                pitch: 1.0,
                speed: *speed,
                range: 1.0,
            };
            let audio = synth.synthesize_all(
                s,
                Voice {
                    style,
                    lang: LangChoice::En,
                    rate: 8000,
                },
            )?;
            for snr in [None, Some(10.0)] {
                let clip = make_clip(&audio, 8000, 300, 300, snr, (vi * 100 + si) as u64);
                let path = tmp.path().join(format!(
                    "v{vi}s{si}{}.wav",
                    if snr.is_some() { "n" } else { "c" }
                ));
                waihu_speech::wav::write_wav(&path, 8000, &clip.samples)?;
                cases.push((s.to_string(), snr, clip, path));
            }
        }
    }
    let rt = ctx.runtime()?;
    let opts = AsrOptions {
        lang: Some("en".into()),
        rate: 8000,
        ..Default::default()
    };
    // Warm-up (first-call allocations), not counted.
    rt.block_on(asr.transcribe(&cases[0].2.samples, 8000, &opts))?;
    let mut ours = Vec::new();
    for (_, _, clip, _) in &cases {
        let t0 = Instant::now();
        let t = rt.block_on(asr.transcribe(&clip.samples, 8000, &opts))?;
        ours.push((t.text, t0.elapsed().as_secs_f64()));
    }
    let mut theirs: Vec<Option<(String, f64)>> = vec![None; cases.len()];
    let mut baseline_note = String::from("not run (--no-baseline)");
    if baseline {
        match faster_whisper_python() {
            Ok(py) => {
                let script = tmp.path().join("fw.py");
                std::fs::write(&script, FASTER_WHISPER_SCRIPT)?;
                for compute in ["int8"] {
                    let out = std::process::Command::new(&py)
                        .arg(&script)
                        .arg(&dir)
                        .arg(compute)
                        .args(cases.iter().map(|c| c.3.clone()))
                        .output()?;
                    if !out.status.success() {
                        baseline_note = format!(
                            "failed: {}",
                            String::from_utf8_lossy(&out.stderr)
                                .lines()
                                .last()
                                .unwrap_or("")
                        );
                        break;
                    }
                    for line in String::from_utf8_lossy(&out.stdout).lines() {
                        let v: serde_json::Value = serde_json::from_str(line)?;
                        let f = PathBuf::from(v["file"].as_str().unwrap_or_default());
                        if let Some(i) = cases.iter().position(|c| c.3 == f) {
                            theirs[i] = Some((
                                v["text"].as_str().unwrap_or_default().to_string(),
                                v["secs"].as_f64().unwrap_or(0.0),
                            ));
                        }
                    }
                    baseline_note =
                        format!("faster-whisper {compute}, 2 threads, greedy, same model dir");
                }
            }
            Err(e) => baseline_note = format!("unavailable: {e:#}"),
        }
    }
    println!(
        "ASR {} from {} (loaded in {load_s:.2} s); baseline: {baseline_note}",
        asr.model().name(),
        dir.display()
    );
    println!(
        "{:<6} {:>3} {:>7} | {:>6} {:>9} {:>6} | {:>6} {:>9} {:>6} | {:>6}",
        "audio", "n", "audio s", "WER", "s/utt", "RTF", "fw WER", "fw s/utt", "fw RTF", "speed"
    );
    for (label, noisy) in [("clean", false), ("10 dB", true)] {
        let idx: Vec<usize> = (0..cases.len())
            .filter(|&i| cases[i].1.is_some() == noisy)
            .collect();
        let audio: f64 = idx
            .iter()
            .map(|&i| cases[i].2.samples.len() as f64 / 8000.0)
            .sum();
        let (mut e, mut n, mut secs) = (0, 0, 0.0);
        let (mut fe, mut fn_, mut fsecs, mut fcount) = (0, 0, 0.0, 0);
        for &i in &idx {
            let (a, b) = word_errors(&cases[i].0, &ours[i].0);
            e += a;
            n += b;
            secs += ours[i].1;
            if let Some((t, s)) = &theirs[i] {
                let (a, b) = word_errors(&cases[i].0, t);
                fe += a;
                fn_ += b;
                fsecs += s;
                fcount += 1;
            }
        }
        let k = idx.len() as f64;
        let fw = if fcount > 0 {
            format!(
                "{:>6.3} {:>9.3} {:>6.3} | {:>5.2}×",
                fe as f64 / fn_.max(1) as f64,
                fsecs / fcount as f64,
                fsecs / audio,
                fsecs / secs.max(1e-9)
            )
        } else {
            format!("{:>6} {:>9} {:>6} | {:>6}", "-", "-", "-", "-")
        };
        println!(
            "{label:<6} {:>3} {:>7.2} | {:>6.3} {:>9.3} {:>6.3} | {fw}",
            idx.len(),
            audio / k,
            e as f64 / n.max(1) as f64,
            secs / k,
            secs / audio
        );
    }
    for (i, c) in cases
        .iter()
        .enumerate()
        .filter(|(_, c)| c.1.is_some())
        .take(4)
    {
        println!(
            "  ref {:?}\n  ours {:?}\n  fw   {:?}",
            c.0,
            ours[i].0,
            theirs[i].as_ref().map(|t| t.0.as_str()).unwrap_or("-")
        );
    }
    Ok(())
}
