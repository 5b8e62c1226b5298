//! `waihu bench tts|vad|asr` (also `waihu tts --bench`, `waihu asr --bench|--bench-vad`):
//! speech synthesis, voice activity detection and the embedded Whisper engine, each
//! beside a baseline measured in the same run.
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use waihu_speech::{EspeakTts, LangChoice, StyleBook, Synthesizer, TtsCache, TtsEngine, Voice};

/// Time to first frame and real-time factor per language, for a fresh
/// (uncached) synthesiser beside a warmed cache, in the same run.
pub fn tts(runs: usize) -> anyhow::Result<()> {
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

/// Endpoint delay, start error, barge-in delay and false barge-ins of the
/// default detector (WebRTC VAD + noise-floor gate) beside plain WebRTC VAD,
/// on espeak-ng sentences (Mandarin and English, four styles) embedded in
/// silence, clean and with white noise at 20 and 10 dB SNR, plus one minute
/// of noise alone with a prompt playing.
pub fn vad() -> anyhow::Result<()> {
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
pub(crate) fn faster_whisper_python() -> anyhow::Result<PathBuf> {
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
/// `data_dir` holds the default model (`models/whisper-tiny.en`).
pub fn asr(data_dir: &Path, model_dir: Option<PathBuf>, baseline: bool) -> anyhow::Result<()> {
    use waihu_speech::asr::{AsrOptions, UtteranceAsr};
    use waihu_speech::eval::{make_clip, word_errors};
    use waihu_speech::whisper::{default_model_dir, WhisperAsr};
    let dir = model_dir.unwrap_or_else(|| default_model_dir(data_dir, "whisper-tiny.en"));
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
    let rt = crate::runtime()?;
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

/// Call sentences for the neural-vs-espeak comparison: names, numbers, dates,
/// refusals, the things a call turns on.
const CALL_SENTENCES: [&str; 20] = [
    "Hello, this is Anna from Star River shop.",
    "Am I speaking with Mister Wang?",
    "Your order of two blue jackets shipped on Monday.",
    "It should arrive tomorrow between nine and twelve.",
    "Can you confirm the delivery address, please?",
    "Is forty two Park Road still correct?",
    "The total is one hundred and twenty nine dollars.",
    "Would you like to pay in cash on delivery?",
    "I am sorry for the delay with your parcel.",
    "We can give you a ten percent discount next time.",
    "Please remove my number from your list.",
    "Please do not call me again.",
    "Yes, that's fine, please deliver it tomorrow morning.",
    "No thanks, I am not interested in this offer.",
    "Could you call me back after five o'clock?",
    "I already paid for that order last week.",
    "Who is calling, and which company are you from?",
    "Thank you for your time, have a nice day.",
    "Your appointment is on the third of March at ten.",
    "Press one to speak with an agent.",
];

/// Piper (neural) beside espeak-ng on the same English call sentences, in the
/// same run: time to first audio and RTF through the [`Synthesizer`]
/// (uncached, 8 kHz), and an ASR round trip as an intelligibility proxy:
/// each sentence → 8 kHz → G.711 µ-law → Whisper tiny.en → WER.
pub fn tts_neural(data_dir: &Path, runs: usize) -> anyhow::Result<()> {
    use waihu_speech::asr::{AsrOptions, UtteranceAsr};
    use waihu_speech::eval::{make_clip, word_errors};
    use waihu_speech::g711::Law;
    use waihu_speech::whisper::{default_model_dir, WhisperAsr};
    use waihu_speech::{ByLang, PiperTts};
    let runs = runs.max(1);
    if !PiperTts::installed(data_dir) {
        println!("neural TTS: not installed (scripts/deps/tts.sh); Piper vs espeak-ng skipped");
        return Ok(());
    }
    let t_load = Instant::now();
    let piper = Arc::new(PiperTts::load_default(data_dir)?);
    let load_ms = t_load.elapsed().as_secs_f64() * 1000.0;
    let espeak: Arc<dyn TtsEngine> = Arc::new(EspeakTts::default());
    let engines: [(&str, Arc<dyn TtsEngine>); 2] = [
        ("espeak-ng", espeak.clone()),
        ("piper", Arc::new(ByLang::new(espeak, piper.clone()))),
    ];
    let voice = Voice {
        style: waihu_speech::Style::NEUTRAL,
        lang: LangChoice::En,
        rate: 8000,
    };
    let whisper_dir = default_model_dir(data_dir, "whisper-tiny.en");
    let asr = WhisperAsr::load(&whisper_dir).with_context(|| {
        format!(
            "loading {} (run scripts/deps/speech.sh)",
            whisper_dir.display()
        )
    })?;
    let rt = crate::runtime()?;
    let opts = AsrOptions {
        lang: Some("en".into()),
        rate: 8000,
        ..Default::default()
    };
    let short = "Hello, this is Anna.";
    println!(
        "TTS Piper ({}, loaded in {load_ms:.0} ms) beside espeak-ng, {} English call sentences, 8 kHz, uncached, {runs} runs, medians",
        piper.id(),
        CALL_SENTENCES.len()
    );
    println!(
        "{:<10} | {:>13} | {:>10} {:>10} | {:>8} {:>8} | {:>9} {:>6}",
        "engine",
        "short 1st ms",
        "1st ms p50",
        "1st ms max",
        "RTF p50",
        "RTF max",
        "audio s",
        "WER"
    );
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    for (name, engine) in engines {
        let synth = Synthesizer::new(engine);
        // Warm-up: the first run of a fresh session allocates.
        synth.synthesize_all(short, voice)?;
        let measure = |text: &str| -> anyhow::Result<(f64, f64, Vec<i16>)> {
            let t0 = Instant::now();
            let mut first = None;
            let mut audio = Vec::new();
            for f in synth.stream(text, voice)? {
                audio.extend_from_slice(&f?.samples);
                first.get_or_insert_with(|| t0.elapsed().as_secs_f64());
            }
            let total = t0.elapsed().as_secs_f64();
            let secs = audio.len() as f64 / 8000.0;
            Ok((
                first.unwrap_or(total) * 1000.0,
                total / secs.max(1e-6),
                audio,
            ))
        };
        let short_first = median(
            (0..runs)
                .map(|_| measure(short).map(|m| m.0))
                .collect::<anyhow::Result<Vec<_>>>()?,
        );
        let (mut firsts, mut rtfs, mut audio_s) = (Vec::new(), Vec::new(), 0.0);
        let (mut errs, mut words) = (0usize, 0usize);
        for (i, s) in CALL_SENTENCES.iter().enumerate() {
            let mut audio = Vec::new();
            for _ in 0..runs {
                let (f, r, a) = measure(s)?;
                firsts.push(f);
                rtfs.push(r);
                audio = a;
            }
            audio_s += audio.len() as f64 / 8000.0;
            let (mut codes, mut line) = (Vec::new(), Vec::new());
            Law::Ulaw.encode(&audio, &mut codes);
            Law::Ulaw.decode(&codes, &mut line);
            let clip = make_clip(&line, 8000, 300, 300, None, i as u64);
            let heard = rt.block_on(asr.transcribe(&clip.samples, 8000, &opts))?;
            let (e, n) = word_errors(s, &heard.text);
            errs += e;
            words += n;
        }
        let max = |v: &[f64]| v.iter().copied().fold(0.0f64, f64::max);
        println!(
            "{name:<10} | {short_first:>13.1} | {:>10.1} {:>10.1} | {:>8.3} {:>8.3} | {audio_s:>9.1} {:>6.3}",
            median(firsts.clone()),
            max(&firsts),
            median(rtfs.clone()),
            max(&rtfs),
            errs as f64 / words.max(1) as f64
        );
    }
    println!(
        "(WER: each sentence synthesised at 8 kHz, through G.711 µ-law, recognised by {}; lower is more intelligible)",
        asr.model().name()
    );
    Ok(())
}
