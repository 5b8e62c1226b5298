//! `waihu bench asr-noise` — recognition in noise as the seed measures it
//! (实测嘈杂环境识别率, bar: ≥ 92% accuracy in noise).
//!
//! The set is `bench/asr/{zh,en}.tsv` in the repository (246 call utterances
//! per language: names, numbers, dates, times, money, phone and order
//! numbers, addresses, confirmations, refusals, do-not-call requests...),
//! each with the script vocabulary a calling script would know (the
//! customer's name, the shop, the product). Each utterance is spoken by the
//! product's neural voice of its language (Mandarin FastSpeech2 + MB-MelGAN,
//! English Piper) in one of three speaker styles (speed and pitch), brought
//! to -20 dBFS active speech, and sent through the telephone line model
//! (`waihu_audio::channel`: noise at the condition's SNR, 300–3400 Hz band,
//! G.711 µ-law). Every model that knows the language decodes every clip, at
//! each beam size, with the vocabulary as the decoder prompt (as a script's
//! calls would) and, at beam 1, without it; faster-whisper (CTranslate2,
//! int8, same model directory) decodes the same files with the same
//! settings. Scores: CER for Mandarin (numbers read out on both sides by the
//! TTS front end's normaliser, punctuation dropped), WER for English
//! (numbers spelled on both sides, `eval::spoken_en`).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use waihu_speech::asr::{AsrOptions, UtteranceAsr};
use waihu_speech::channel::{Line, LineConfig};
use waihu_speech::eval::{active_speech, char_errors, word_errors_en};
use waihu_speech::whisper::{default_model_dir, WhisperAsr, WhisperModel};
use waihu_speech::{LangChoice, Style, Synthesizer, TtsEngine, Voice};

const ZH: &str = include_str!("../../../bench/asr/zh.tsv");
const EN: &str = include_str!("../../../bench/asr/en.tsv");

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Utterances per language (default: the whole set, 246 each).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Languages.
    #[arg(long, value_delimiter = ',', default_value = "zh,en")]
    pub lang: Vec<String>,
    /// Line conditions: `clean` and SNRs in dB.
    #[arg(long, value_delimiter = ',', default_value = "clean,20,10,5")]
    pub snr: Vec<String>,
    /// Beam sizes (1 = greedy; 5, as faster-whisper's default, costs ~4× here).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub beams: Vec<usize>,
    /// Also decode at beam 1 without the vocabulary prompt, to show what it buys.
    #[arg(long)]
    pub compare_vocab: bool,
    /// Model directories under the models dir; each decodes the languages it knows.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "whisper-tiny.en,whisper-base"
    )]
    pub models: Vec<String>,
    /// Skip the faster-whisper baseline.
    #[arg(long)]
    pub no_baseline: bool,
    /// Print every utterance's reference and transcripts.
    #[arg(long)]
    pub verbose: bool,
    /// Also write the rows as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One line of a set file.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub category: String,
    pub text: String,
    pub vocab: Vec<String>,
}

/// Parse a set file (`category<TAB>text<TAB>vocab`, a header line first);
/// a bad line is an error naming it.
pub fn parse_set(name: &str, tsv: &str) -> anyhow::Result<Vec<Item>> {
    let mut out = Vec::new();
    for (i, line) in tsv.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        anyhow::ensure!(
            f.len() == 3 && !f[1].trim().is_empty(),
            "{name}:{}: want `category<TAB>text<TAB>vocab`, got {} field(s)",
            i + 1,
            f.len()
        );
        let vocab: Vec<String> = f[2]
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(String::from)
            .collect();
        if let Some(v) = vocab.iter().find(|v| !f[1].contains(v.as_str())) {
            anyhow::bail!("{name}:{}: vocab {v:?} is not in the text", i + 1);
        }
        out.push(Item {
            category: f[0].trim().to_string(),
            text: f[1].trim().to_string(),
            vocab,
        });
    }
    Ok(out)
}

/// Errors and reference units (characters for Mandarin, words for English).
pub fn score(lang: &str, reference: &str, hyp: &str) -> (usize, usize) {
    if lang == "zh" {
        let n = |s: &str| {
            // "138-0013-8000" and "138 0013 8000" are the digits of 13800138000.
            let c: Vec<char> = waihu_speech::zh::to_simplified(s).chars().collect();
            let joined: String = c
                .iter()
                .enumerate()
                .filter(|&(i, &ch)| {
                    !((ch == '-' || ch == ' ')
                        && i > 0
                        && c[i - 1].is_ascii_digit()
                        && c.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
                })
                .map(|(_, &ch)| ch)
                .collect();
            waihu_speech::zhtext::normalize(&joined)
        };
        char_errors(&n(reference), &n(hyp))
    } else {
        word_errors_en(reference, hyp)
    }
}

/// The three virtual speakers: (speed, pitch).
const SPEAKERS: [(f32, f32); 3] = [(1.0, 1.0), (0.9, 1.12), (1.15, 0.9)];

/// The recognition options of an utterance, as a campaign with
/// `asr: {vocabulary: [...]}` sets them (`waihu_bot::asr_vocabulary`): the
/// script's terms as hot words, for Mandarin after a Simplified-Chinese
/// lead-in; without a vocabulary, no prompt (the product's default).
fn options(lang: &str, vocab: &[String], with_vocab: bool) -> AsrOptions {
    AsrOptions {
        lang: Some(lang.to_string()),
        rate: 8000,
        prompt: (with_vocab && lang == "zh").then(|| waihu_bot::ZH_PROMPT.to_string()),
        hotwords: if with_vocab {
            vocab.to_vec()
        } else {
            Vec::new()
        },
    }
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A line of progress on stderr: done/total, rate, ETA.
fn progress(what: &str, done: usize, total: usize, t0: Instant) {
    let secs = t0.elapsed().as_secs_f64();
    let rate = done as f64 / secs.max(1e-9);
    eprintln!(
        "  {what}: {done}/{total}, {rate:.1}/s, ETA {:.0} s",
        (total - done) as f64 / rate.max(1e-9)
    );
}

/// Clean 8 kHz speech of every item, synthesised once and kept in `cache`.
fn speak(
    lang: &str,
    items: &[Item],
    engine: Arc<dyn TtsEngine>,
    cache: &Path,
) -> anyhow::Result<Vec<Vec<i16>>> {
    std::fs::create_dir_all(cache)?;
    let synth = Synthesizer::new(engine.clone());
    let (t0, mut last) = (Instant::now(), Instant::now());
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let (speed, pitch) = SPEAKERS[i % SPEAKERS.len()];
        let key = fnv(&format!("{}|{speed}|{pitch}|{}", engine.id(), it.text));
        let path = cache.join(format!("{lang}-{key:016x}.wav"));
        let audio = match waihu_speech::wav::read_wav(&path) {
            Ok(p) if p.rate == 8000 && !p.samples.is_empty() => p.samples,
            _ => {
                let voice = Voice {
                    style: Style {
                        speed,
                        pitch,
                        range: 1.0,
                    },
                    lang: if lang == "zh" {
                        LangChoice::Zh
                    } else {
                        LangChoice::En
                    },
                    rate: 8000,
                };
                let s = synth
                    .synthesize_all(&it.text, voice)
                    .with_context(|| format!("speaking {:?}", it.text))?;
                waihu_speech::wav::write_wav(&path, 8000, &s)?;
                s
            }
        };
        out.push(audio);
        if last.elapsed().as_secs() >= 10 {
            progress(&format!("speaking {lang}"), i + 1, items.len(), t0);
            last = Instant::now();
        }
    }
    Ok(out)
}

/// The clip as the bot hears it: -20 dBFS active speech, 300 ms of line
/// before and after, through the line at `snr_db`.
fn through_line(clean: &[i16], snr_db: Option<f64>, seed: u64) -> Vec<i16> {
    let (rms, _, _) = active_speech(clean, 8000);
    let gain = if rms > 0.0 {
        32768.0 * 10f64.powf(-20.0 / 20.0) / rms
    } else {
        1.0
    };
    let mut x = vec![0i16; 2400];
    x.extend(
        clean
            .iter()
            .map(|&s| (s as f64 * gain).clamp(-32768.0, 32767.0) as i16),
    );
    x.extend(std::iter::repeat_n(0, 2400));
    let cfg = LineConfig {
        snr_db,
        ..LineConfig::default()
    };
    Line::new(cfg, seed).process(&x)
}

/// One decoding setup of one model.
#[derive(Debug, Clone, Serialize)]
struct Setup {
    lang: String,
    model: String,
    beam: usize,
    vocab_prompt: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Row {
    #[serde(flatten)]
    setup: Setup,
    condition: String,
    n: usize,
    unit: &'static str,
    errors: usize,
    units: usize,
    error_rate: f64,
    accuracy: f64,
    secs_per_utt: f64,
    fw_error_rate: Option<f64>,
    fw_secs_per_utt: Option<f64>,
}

const FW_SCRIPT: &str = r#"
import json, sys, time
from faster_whisper import WhisperModel
job = json.load(sys.stdin)
m = WhisperModel(job["model"], device="cpu", compute_type="int8", cpu_threads=2)
for it in job["items"]:
    t0 = time.perf_counter()
    segs, info = m.transcribe(it["file"], language=it["lang"], beam_size=job["beam"], temperature=0.0,
                              initial_prompt=it.get("prompt"), without_timestamps=True,
                              condition_on_previous_text=False, vad_filter=False)
    text = "".join(s.text for s in segs).strip()
    print(json.dumps({"file": it["file"], "text": text, "secs": time.perf_counter() - t0}), flush=True)
"#;

struct Clip {
    item: usize,
    cond: usize,
    samples: Vec<i16>,
    file: PathBuf,
}

pub fn run(data_dir: &Path, a: &Args) -> anyhow::Result<()> {
    let conds: Vec<(String, Option<f64>)> = a
        .snr
        .iter()
        .map(|s| match s.trim() {
            "clean" => Ok(("clean".to_string(), None)),
            v => v
                .parse::<f64>()
                .map(|db| (format!("{db} dB"), Some(db)))
                .map_err(|_| anyhow::anyhow!("--snr: {v:?} is neither `clean` nor a number")),
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(
        a.beams.iter().all(|&b| (1..=16).contains(&b)),
        "--beams: each must be 1..=16"
    );
    let cache = asr_noise_cache(data_dir);
    let tmp = tempfile::tempdir()?;
    let fw_py = if a.no_baseline {
        None
    } else {
        match crate::speech::faster_whisper_python() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("faster-whisper unavailable: {e:#}");
                None
            }
        }
    };
    let rt = crate::runtime()?;
    let mut rows: Vec<Row> = Vec::new();
    let mut cats: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for lang in &a.lang {
        let (set, name) = match lang.as_str() {
            "zh" => (ZH, "bench/asr/zh.tsv"),
            "en" => (EN, "bench/asr/en.tsv"),
            l => anyhow::bail!("--lang: {l:?} (zh or en)"),
        };
        let mut items = parse_set(name, set)?;
        if let Some(n) = a.limit {
            // An even spread over the set (it is grouped by category).
            let step = items.len() as f64 / n.clamp(1, items.len()) as f64;
            items = (0..n.min(items.len()))
                .map(|i| items[(i as f64 * step) as usize].clone())
                .collect();
        }
        let engine: Arc<dyn TtsEngine> = if lang == "zh" {
            waihu_speech::engines::shared_zh(data_dir)
                .context("the Mandarin neural voice (scripts/deps/tts.sh)")?
        } else {
            waihu_speech::engines::shared_piper(data_dir)
                .context("the English Piper voice (scripts/deps/tts.sh)")?
        };
        eprintln!(
            "{lang}: {} utterances, voice {}, conditions {:?}",
            items.len(),
            engine.id(),
            conds.iter().map(|c| &c.0).collect::<Vec<_>>()
        );
        let clean = speak(lang, &items, engine, &cache)?;
        let audio_s: f64 = clean.iter().map(|c| c.len() as f64 / 8000.0).sum();
        let mut clips = Vec::new();
        for (ci, (_, snr)) in conds.iter().enumerate() {
            for (i, c) in clean.iter().enumerate() {
                let samples = through_line(c, *snr, (ci * 1000 + i) as u64 + 1);
                let file = tmp.path().join(format!("{lang}-{ci}-{i}.wav"));
                waihu_speech::wav::write_wav(&file, 8000, &samples)?;
                clips.push(Clip {
                    item: i,
                    cond: ci,
                    samples,
                    file,
                });
            }
        }
        for model_name in &a.models {
            let dir = default_model_dir(data_dir, model_name);
            let probe = WhisperModel::load(&dir)
                .with_context(|| format!("loading {} (scripts/deps/speech.sh)", dir.display()))?;
            if lang == "zh" && !probe.is_multilingual() {
                eprintln!("{model_name}: English-only, skipped for Mandarin");
                continue;
            }
            drop(probe);
            let mut setups: Vec<Setup> = a
                .beams
                .iter()
                .map(|&beam| Setup {
                    lang: lang.clone(),
                    model: model_name.clone(),
                    beam,
                    vocab_prompt: true,
                })
                .collect();
            if a.compare_vocab {
                setups.push(Setup {
                    lang: lang.clone(),
                    model: model_name.clone(),
                    beam: 1,
                    vocab_prompt: false,
                });
            }
            for setup in setups {
                let mut m = WhisperModel::load(&dir)?;
                m.beam = setup.beam;
                let asr = WhisperAsr::from_model(m);
                let label = format!(
                    "{lang} {model_name} beam {}{}",
                    setup.beam,
                    if setup.vocab_prompt { "" } else { ", no vocab" }
                );
                // Two decodes at a time, as the product's two ASR slots on two cores.
                let (t0, mut last) = (Instant::now(), Instant::now());
                let mut ours: Vec<(String, f64)> = Vec::with_capacity(clips.len());
                for (k, pair) in clips.chunks(2).enumerate() {
                    let handles: Vec<_> = pair
                        .iter()
                        .map(|c| {
                            let opts = options(lang, &items[c.item].vocab, setup.vocab_prompt);
                            let (asr, samples) = (asr.clone(), c.samples.clone());
                            rt.spawn(async move {
                                let t = Instant::now();
                                let r = asr.transcribe(&samples, 8000, &opts).await;
                                r.map(|tr| (tr.text, t.elapsed().as_secs_f64()))
                            })
                        })
                        .collect();
                    for h in handles {
                        ours.push(rt.block_on(h)??);
                    }
                    if last.elapsed().as_secs() >= 10 {
                        progress(&label, (k + 1) * 2, clips.len(), t0);
                        last = Instant::now();
                    }
                }
                let wall = t0.elapsed().as_secs_f64();
                let theirs = match &fw_py {
                    Some(py) => {
                        faster_whisper(py, &dir, &setup, &items, &clips, tmp.path(), &label)?
                    }
                    None => vec![None; clips.len()],
                };
                for (ci, (cname, _)) in conds.iter().enumerate() {
                    let idx: Vec<usize> =
                        (0..clips.len()).filter(|&k| clips[k].cond == ci).collect();
                    let (mut e, mut n, mut fe, mut fn_, mut fs, mut fc) = (0, 0, 0, 0, 0.0, 0);
                    for &k in &idx {
                        let it = &items[clips[k].item];
                        let (ke, kn) = score(lang, &it.text, &ours[k].0);
                        e += ke;
                        n += kn;
                        if setup.beam == 1 && setup.vocab_prompt && ci + 1 == conds.len() {
                            let c = cats
                                .entry((format!("{lang} {model_name}"), it.category.clone()))
                                .or_default();
                            c.0 += ke;
                            c.1 += kn;
                        }
                        if let Some((t, s)) = &theirs[k] {
                            let (te, tn) = score(lang, &it.text, t);
                            fe += te;
                            fn_ += tn;
                            fs += s;
                            fc += 1;
                        }
                        if a.verbose {
                            println!(
                                "  [{label}, {cname}] {:?}\n     ours {:?} ({ke}/{kn})\n     fw   {:?}",
                                it.text,
                                ours[k].0,
                                theirs[k].as_ref().map(|t| t.0.as_str()).unwrap_or("-")
                            );
                        }
                    }
                    let er = e as f64 / n.max(1) as f64;
                    rows.push(Row {
                        setup: setup.clone(),
                        condition: cname.clone(),
                        n: idx.len(),
                        unit: if lang == "zh" { "CER" } else { "WER" },
                        errors: e,
                        units: n,
                        error_rate: er,
                        accuracy: 1.0 - er,
                        secs_per_utt: wall / clips.len() as f64,
                        fw_error_rate: (fc > 0).then(|| fe as f64 / fn_.max(1) as f64),
                        fw_secs_per_utt: (fc > 0).then(|| fs / fc as f64),
                    });
                }
            }
        }
        eprintln!("{lang}: {audio_s:.0} s of speech per condition");
    }
    print_rows(&rows, &cats);
    if let Some(p) = &a.json {
        std::fs::write(p, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}

/// Where synthesised clean speech is kept between runs.
fn asr_noise_cache(data_dir: &Path) -> PathBuf {
    data_dir.join("cache").join("asr-noise")
}

#[allow(clippy::too_many_arguments)]
fn faster_whisper(
    py: &Path,
    dir: &Path,
    setup: &Setup,
    items: &[Item],
    clips: &[Clip],
    tmp: &Path,
    label: &str,
) -> anyhow::Result<Vec<Option<(String, f64)>>> {
    use std::io::{BufRead, Write};
    let script = tmp.join("fw_noise.py");
    std::fs::write(&script, FW_SCRIPT)?;
    let job = serde_json::json!({
        "model": dir,
        "beam": setup.beam,
        "items": clips.iter().map(|c| serde_json::json!({
            "file": c.file,
            "lang": setup.lang,
            "prompt": options(&setup.lang, &items[c.item].vocab, setup.vocab_prompt).whisper_prompt(),
        })).collect::<Vec<_>>(),
    });
    let mut child = std::process::Command::new(py)
        .arg(&script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting faster-whisper")?;
    child
        .stdin
        .take()
        .context("faster-whisper stdin")?
        .write_all(job.to_string().as_bytes())?;
    let mut out = vec![None; clips.len()];
    let (t0, mut last, mut done) = (Instant::now(), Instant::now(), 0);
    let stdout = child.stdout.take().context("faster-whisper stdout")?;
    for line in std::io::BufReader::new(stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let f = PathBuf::from(v["file"].as_str().unwrap_or_default());
        if let Some(k) = clips.iter().position(|c| c.file == f) {
            out[k] = Some((
                v["text"].as_str().unwrap_or_default().to_string(),
                v["secs"].as_f64().unwrap_or(0.0),
            ));
        }
        done += 1;
        if last.elapsed().as_secs() >= 10 {
            progress(&format!("{label}, faster-whisper"), done, clips.len(), t0);
            last = Instant::now();
        }
    }
    let o = child.wait_with_output()?;
    if !o.status.success() {
        anyhow::bail!(
            "faster-whisper failed: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    Ok(out)
}

fn print_rows(rows: &[Row], cats: &BTreeMap<(String, String), (usize, usize)>) {
    println!(
        "ASR in noise (bench/asr, neural voices → telephone band → G.711 µ-law; accuracy = 1 − CER/WER; seed bar 92%)"
    );
    println!(
        "{:<4} {:<16} {:>4} {:>5} {:<7} {:>4} | {:>5} {:>7} {:>8} | {:>7} {:>8}",
        "lang",
        "model",
        "beam",
        "vocab",
        "line",
        "n",
        "unit",
        "error",
        "s/utt",
        "fw err",
        "fw s/utt"
    );
    for r in rows {
        println!(
            "{:<4} {:<16} {:>4} {:>5} {:<7} {:>4} | {:>5} {:>7.3} {:>8.3} | {:>7} {:>8}",
            r.setup.lang,
            r.setup.model,
            r.setup.beam,
            if r.setup.vocab_prompt { "yes" } else { "no" },
            r.condition,
            r.n,
            r.unit,
            r.error_rate,
            r.secs_per_utt,
            r.fw_error_rate
                .map(|v| format!("{v:.3}"))
                .unwrap_or("-".into()),
            r.fw_secs_per_utt
                .map(|v| format!("{v:.3}"))
                .unwrap_or("-".into()),
        );
    }
    if !cats.is_empty() {
        println!("error rate by category, beam 1 with vocabulary, the last condition:");
        for ((who, cat), (e, n)) in cats {
            println!(
                "  {who:<22} {cat:<10} {:.3} ({e}/{n})",
                *e as f64 / (*n).max(1) as f64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sets_parse_and_are_big_enough() {
        let zh = parse_set("zh", ZH).unwrap();
        let en = parse_set("en", EN).unwrap();
        assert!(zh.len() >= 200 && en.len() >= 200);
        for (set, name) in [(&zh, "zh"), (&en, "en")] {
            for cat in ["name", "number", "date", "address", "refusal", "dnc"] {
                assert!(
                    set.iter().filter(|i| i.category == cat).count() >= 8,
                    "{name} {cat}"
                );
            }
        }
    }

    #[test]
    fn bad_lines_are_named() {
        let e = parse_set("x.tsv", "h\nname\tonly two").unwrap_err();
        assert!(e.to_string().contains("x.tsv:2"), "{e}");
        let e = parse_set("x.tsv", "h\nname\thello\tbob").unwrap_err();
        assert!(e.to_string().contains("\"bob\""), "{e}");
    }

    #[test]
    fn scoring_reads_numbers_the_same_either_way() {
        assert_eq!(score("zh", "订单3月15日到", "订单三月十五日到。"), (0, 8));
        assert_eq!(score("zh", "您好", "您們好"), (1, 2));
        assert_eq!(score("zh", "手机13800138000", "手机138-0013 8000").0, 0);
        assert_eq!(
            score("en", "It is $129.", "it is one hundred twenty nine dollars"),
            (0, 7)
        );
    }
}
