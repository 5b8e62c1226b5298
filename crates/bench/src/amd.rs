//! `waihu bench amd`: answering-machine and announcement detection on
//! synthetic callees — people answering ("喂？", "Hello, who is this?",
//! sometimes at length), voicemail greetings (the simulator's, and others)
//! ending in a 1 kHz beep, and carrier announcements (空号, 停机, 关机, 无法接通,
//! 忙 and English ones) — each after 0.3–0.7 s of line silence, through an 8
//! kHz line. Three detectors run on the same clips in the same run:
//! `waihu-amd` on audio alone, `waihu-amd` with Whisper base's words, and
//! today's text-only detector (the bot's first-turn `is_voicemail_greeting`
//! and `classify_announcement` on the first recognised utterance). Prints
//! decision time p50/p95, voicemail precision/recall and announcement
//! accuracy for each.
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;
use waihu_amd::{analyze, analyze_with, Announcement, Library, Verdict};
use waihu_speech::{EspeakTts, Lang, Style, TtsEngine};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip the ASR (acoustic detector only; the text rows are not measured).
    #[arg(long)]
    pub no_asr: bool,
    /// Print every clip: truth, words heard, each detector's call.
    #[arg(long)]
    pub verbose: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Truth {
    Human,
    Machine,
    Announcement(Announcement),
}

const HUMAN_ZH: &[&str] = &[
    "喂？",
    "喂，你好。",
    "你好，哪位？",
    "喂，哪位啊？",
    "嗯，你好。",
    "喂，你好，我是王先生，请问你找谁？",
];
const HUMAN_EN: &[&str] = &[
    "Hello?",
    "Hello, who is this?",
    "Yes?",
    "Hi, this is Sam.",
    "Hello, speaking.",
    "Hello, this is John Smith from accounting, how can I help you?",
];
const MACHINE_ZH: &[&str] = &[
    "您好，我现在无法接听电话，请在提示音后留言。",
    "您好，这里是李明的语音信箱，请在嘀声后留下您的姓名和电话。",
    "你好，我暂时不方便接听，有事请留言，我会尽快回复。",
];
const MACHINE_EN: &[&str] = &[
    "Hi, you have reached my voicemail. I can't take your call right now. Please leave a message after the tone.",
    "You have reached the voice mail of Anna Lee. Please leave your message after the beep.",
    "Hello, I am not available to take your call. Leave a message and I will call you back.",
];
const ANNOUNCE: &[(Announcement, &str, &str)] = &[
    (
        Announcement::Vacant,
        "您拨打的号码是空号，请查证后再拨。",
        "The number you have dialed is not in service. Please check the number and try again.",
    ),
    (
        Announcement::Suspended,
        "您拨打的电话已停机。",
        "The number you have dialed has been suspended.",
    ),
    (
        Announcement::PoweredOff,
        "您拨打的电话已关机，请稍后再拨。",
        "The number you have dialed is switched off. Please try again later.",
    ),
    (
        Announcement::Unreachable,
        "您拨打的电话暂时无法接通，请稍后再拨。",
        "The number you have dialed cannot be reached at the moment.",
    ),
    (
        Announcement::Busy,
        "您拨打的用户正在通话中，请稍后再拨。",
        "The line is busy, please try again later.",
    ),
];

fn beep(ms: u64) -> Vec<i16> {
    let n = (ms * 8) as usize;
    (0..n)
        .map(|i| {
            let env = ((i.min(n - 1 - i)) as f32 / 40.0).min(1.0);
            ((2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin() * env * 11_600.0)
                as i16
        })
        .collect()
}

struct Clip {
    truth: Truth,
    text: &'static str,
    audio: Vec<i16>,
    /// An announcement's words alone: the recording an operator would supply.
    recording: Option<Vec<i16>>,
}

/// What a telephone line delivers of `audio`: half the level, white noise
/// about 25 dB below speech, through G.711 μ-law (a deterministic noise).
fn over_the_line(audio: &[i16]) -> Vec<i16> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noisy: Vec<i16> = audio
        .iter()
        .map(|&s| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = ((x >> 40) as f64 / (1u64 << 24) as f64 - 0.5) * 2.0 * 180.0;
            (s as f64 * 0.5 + n).clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    let mut codes = Vec::new();
    waihu_audio::g711::Law::Ulaw.encode(&noisy, &mut codes);
    let mut out = Vec::new();
    waihu_audio::g711::Law::Ulaw.decode(&codes, &mut out);
    out
}

fn clips(models: &Path) -> anyhow::Result<Vec<Clip>> {
    let zh: Arc<dyn TtsEngine> = match waihu_speech::zhvoice::ZhVoice::load(
        &waihu_speech::zhvoice::voice_dir(models),
        &waihu_speech::piper::runtime_path(models),
        None,
    ) {
        Ok(v) => Arc::new(v),
        Err(_) => Arc::new(EspeakTts::default()),
    };
    let en: Arc<dyn TtsEngine> = Arc::new(EspeakTts::default());
    let mut specs: Vec<(Truth, Lang, &'static str)> = Vec::new();
    for t in HUMAN_ZH {
        specs.push((Truth::Human, Lang::Zh, t));
    }
    for t in HUMAN_EN {
        specs.push((Truth::Human, Lang::En, t));
    }
    for t in MACHINE_ZH {
        specs.push((Truth::Machine, Lang::Zh, t));
    }
    for t in MACHINE_EN {
        specs.push((Truth::Machine, Lang::En, t));
    }
    for (k, z, e) in ANNOUNCE {
        specs.push((Truth::Announcement(*k), Lang::Zh, z));
        specs.push((Truth::Announcement(*k), Lang::En, e));
    }
    let mut out = Vec::new();
    for (i, (truth, lang, text)) in specs.into_iter().enumerate() {
        let engine = if lang == Lang::Zh { &zh } else { &en };
        let style = Style {
            pitch: [0.9, 1.0, 1.1][i % 3],
            speed: [1.0, 1.1, 0.95][i % 3],
            range: 1.0,
        };
        let pcm = engine
            .synthesize(text, lang, &style)
            .with_context(|| format!("synthesising {text}"))?;
        let speech = waihu_audio::resample::resample_i16(&pcm.samples, pcm.rate, 8000);
        let mut audio = vec![0i16; 8 * (300 + 100 * (i % 5))];
        let recording = matches!(truth, Truth::Announcement(_)).then(|| speech.clone());
        audio.extend(speech);
        if truth == Truth::Machine {
            audio.extend(vec![0; 8 * 300]);
            audio.extend(beep(500));
        }
        audio.extend(vec![0; 8 * 3000]);
        out.push(Clip {
            truth,
            text,
            audio,
            recording,
        });
    }
    Ok(out)
}

#[derive(Debug, Default, Serialize)]
pub struct DetectorReport {
    pub name: &'static str,
    pub clips: usize,
    pub decided_ms_p50: f64,
    pub decided_ms_p95: f64,
    /// Share of clips decided within 2 s of answer.
    pub within_2s: f64,
    pub voicemail_precision: f64,
    pub voicemail_recall: f64,
    pub human_recall: f64,
    /// Announcements whose kind was named right.
    pub announcement_accuracy: f64,
}

#[derive(Debug, Serialize)]
pub struct AmdReport {
    pub detectors: Vec<DetectorReport>,
    pub asr: bool,
}

/// A detector's call on one clip: the verdict the call ends with (with the
/// announcement kind), and when the first decision — the one a live call
/// acts on — was made.
type Call = (Verdict, Option<Announcement>, u64);

fn score(name: &'static str, clips: &[Clip], calls: &[Call]) -> DetectorReport {
    let mut times: Vec<f64> = calls.iter().map(|c| c.2 as f64).collect();
    times.sort_by(f64::total_cmp);
    let pct = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let (mut tp, mut fp, mut fneg, mut hum, mut hum_ok, mut ann, mut ann_ok) =
        (0, 0, 0, 0, 0, 0, 0);
    for (c, (v, k, _)) in clips.iter().zip(calls) {
        let said_machine = *v == Verdict::Machine;
        match c.truth {
            Truth::Machine if said_machine => tp += 1,
            Truth::Machine => fneg += 1,
            _ if said_machine => fp += 1,
            _ => {}
        }
        if c.truth == Truth::Human {
            hum += 1;
            hum_ok += usize::from(*v == Verdict::Human);
        }
        if let Truth::Announcement(kind) = c.truth {
            ann += 1;
            ann_ok += usize::from(*v == Verdict::Announcement && *k == Some(kind));
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    DetectorReport {
        name,
        clips: clips.len(),
        decided_ms_p50: pct(0.5),
        decided_ms_p95: pct(0.95),
        within_2s: ratio(times.iter().filter(|&&t| t <= 2000.0).count(), times.len()),
        voicemail_precision: ratio(tp, tp + fp),
        voicemail_recall: ratio(tp, tp + fneg),
        human_recall: ratio(hum_ok, hum),
        announcement_accuracy: ratio(ann_ok, ann),
    }
}

/// Run the detectors over the clips.
pub fn measure(models: &Path, with_asr: bool, verbose: bool) -> anyhow::Result<AmdReport> {
    let clips = clips(models)?;
    // The operator gave every announcement's recording; the calls hear them
    // (and everything else) over the line.
    let mut lib = Library::new();
    for c in &clips {
        if let (Truth::Announcement(kind), Some(rec)) = (c.truth, &c.recording) {
            lib.add(kind, c.text, rec)
                .with_context(|| format!("fingerprinting «{}»", c.text))?;
        }
    }
    let mut recorded = Vec::new();
    let mut acoustic = Vec::new();
    let mut fused = Vec::new();
    let mut text_only = Vec::new();
    let mut words = Vec::new();
    let asr = if with_asr {
        let dir = models.join("whisper-base");
        anyhow::ensure!(
            dir.join("model.bin").exists(),
            "Whisper base missing in {} (scripts/deps/speech.sh), or pass --no-asr",
            dir.display()
        );
        Some(waihu_speech::engines::AsrEngine::Whisper { model_dir: dir }.build(400)?)
    } else {
        None
    };
    let rt = crate::runtime()?;
    for c in &clips {
        let a = analyze(&c.audio, &[])?;
        acoustic.push((a.last.verdict, a.last.announcement, a.first.at_ms));
        let r = analyze_with(&over_the_line(&c.audio), &[], Some(&lib))?;
        recorded.push((r.last.verdict, r.last.announcement, r.first.at_ms));
        if let Some(asr) = &asr {
            let opts = waihu_speech::asr::AsrOptions {
                rate: 8000,
                ..Default::default()
            };
            let results = rt.block_on(waihu_speech::asr::recognize_all(
                asr.as_ref(),
                &c.audio,
                &opts,
            ))?;
            let texts: Vec<(u64, String)> = results
                .iter()
                .filter(|r| r.is_final)
                .map(|r| (r.end_ms, r.text.clone()))
                .collect();
            let f = analyze(&c.audio, &texts)?;
            fused.push((f.last.verdict, f.last.announcement, f.first.at_ms));
            words.push(
                texts
                    .iter()
                    .map(|t| format!("[{}] {}", t.0, t.1))
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            // Today's detector: the first recognised utterance, read for voicemail
            // and announcement words; a person otherwise.
            let call = match texts.first() {
                None => (Verdict::Silence, None, c.audio.len() as u64 / 8),
                Some((at, words)) => {
                    if waihu_bot::is_voicemail_greeting(words) {
                        (Verdict::Machine, None, *at)
                    } else if let Some(kind) = waihu_amd::announce::classify(words)
                        .filter(|_| waihu_bot::classify_announcement(words).is_some())
                    {
                        (Verdict::Announcement, Some(kind), *at)
                    } else {
                        (Verdict::Human, None, *at)
                    }
                }
            };
            text_only.push(call);
        }
    }
    if verbose {
        for (i, c) in clips.iter().enumerate() {
            let show = |v: &[Call]| {
                v.get(i)
                    .map(|c| {
                        format!(
                            "{}{} @{}",
                            c.0.name(),
                            c.1.map(|k| format!("/{}", k.name())).unwrap_or_default(),
                            c.2
                        )
                    })
                    .unwrap_or_default()
            };
            println!(
                "{:?} «{}»: audio {} | recordings {} | fused {} | text {} | heard {}",
                c.truth,
                c.text,
                show(&acoustic),
                show(&recorded),
                show(&fused),
                show(&text_only),
                words.get(i).map(String::as_str).unwrap_or("")
            );
        }
    }
    let mut detectors = vec![
        score("amd (audio)", &clips, &acoustic),
        score("amd (audio + recordings)", &clips, &recorded),
    ];
    if asr.is_some() {
        detectors.push(score("amd (audio + words)", &clips, &fused));
        detectors.push(score("text only (today)", &clips, &text_only));
    }
    Ok(AmdReport {
        detectors,
        asr: asr.is_some(),
    })
}

pub fn run(data_dir: &Path, a: Args) -> anyhow::Result<()> {
    let models = waihu_speech::piper::models_dir(data_dir);
    let r = measure(&models, !a.no_asr, a.verbose)?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "答录机检测 / answering-machine detection: {} clips (people, voicemail + beep, carrier announcements), 8 kHz",
        r.detectors.first().map(|d| d.clips).unwrap_or(0)
    );
    println!(
        "  {:<26} {:>8} {:>8} {:>7} {:>9} {:>9} {:>8} {:>9}",
        "detector", "p50 ms", "p95 ms", "≤2 s", "VM prec", "VM rec", "human", "announce"
    );
    for d in &r.detectors {
        println!(
            "  {:<26} {:>8.0} {:>8.0} {:>6.0}% {:>8.0}% {:>8.0}% {:>7.0}% {:>8.0}%",
            d.name,
            d.decided_ms_p50,
            d.decided_ms_p95,
            d.within_2s * 100.0,
            d.voicemail_precision * 100.0,
            d.voicemail_recall * 100.0,
            d.human_recall * 100.0,
            d.announcement_accuracy * 100.0
        );
    }
    println!("  (time: the first decision, from answer; words count from the end of their utterance, ASR compute not");
    println!("   included. Precision/recall and accuracy: the verdict the call ends with. \"recordings\": the");
    println!("   operator supplied each announcement's recording; every clip heard at half level, noise, μ-law.)");
    Ok(())
}
