//! `waihu nlu ...`: intents, entities and sentiment of callee utterances
//! (`waihu bench nlu` is in crate `waihu-bench`).
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use waihu_nlu::{eval, Nlu};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// 意图识别 Classify utterances: UTF-8 lines on stdin, one JSON object per line on stdout
    /// ({"text","intent","confidence","entities":[{"kind","value","text"}],"sentiment":{"label","score","angry"}}).
    Classify {
        /// A script (YAML/JSON) whose `intents:` map adds custom intents (examples, keywords, regexes).
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// The callee's time zone, for relative callback times.
        #[arg(long, default_value = "Asia/Shanghai")]
        tz: String,
        /// "Now" for relative times, RFC 3339 (default: the system clock).
        #[arg(long)]
        now: Option<String>,
    },
    /// 评估 Score a `label<TAB>text` file: accuracy, macro-F1, per-label precision/recall, confusion matrix.
    Eval {
        file: PathBuf,
        #[arg(long, value_name = "FILE")]
        script: Option<PathBuf>,
        /// One JSON object instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// 情绪分析 Acoustic emotion cues of one utterance (WAV), fused with its text's sentiment.
    #[command(subcommand)]
    Emotion(EmotionCmd),
    /// Same as `waihu bench nlu`.
    #[command(hide = true)]
    Bench(waihu_bench::nlu::Args),
}

/// `waihu nlu emotion ...`, and `waihu emotion ...` where the top level wires it.
#[derive(clap::Subcommand, Debug)]
pub enum EmotionCmd {
    /// Acoustic features (RMS energy, pitch mean/range, speech rate, pause ratio) and the fused reading.
    Analyze(EmotionArgs),
}

#[derive(clap::Args, Debug)]
pub struct EmotionArgs {
    /// One utterance, mono or stereo WAV (8/16 kHz typical).
    pub file: PathBuf,
    /// What was said (ASR text), for the text half of the reading.
    #[arg(long)]
    pub text: Option<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run_emotion(cmd: EmotionCmd) -> anyhow::Result<()> {
    match cmd {
        EmotionCmd::Analyze(a) => emotion(a),
    }
}

fn emotion(a: EmotionArgs) -> anyhow::Result<()> {
    let pcm = waihu_speech::wav::read_wav(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let r = waihu_nlu::emotion::analyze(&pcm.samples, pcm.rate, a.text.as_deref());
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    let f = &r.acoustic;
    println!(
        "文件 file: {} ({} Hz, {:.2} s)",
        a.file.display(),
        pcm.rate,
        f.duration_s
    );
    println!(
        "  能量 RMS energy:      {:.1} dBFS (spread {:.1} dB)",
        f.rms_dbfs, f.energy_std_db
    );
    println!(
        "  音高 pitch:           mean {:.0} Hz, range {:.1} semitones, voiced {:.0}%",
        f.pitch_mean_hz,
        f.pitch_range_st,
        f.voiced_ratio * 100.0
    );
    println!("  语速 speech rate:     {:.1} syllables/s", f.speech_rate);
    println!("  停顿 pause ratio:     {:.0}%", f.pause_ratio * 100.0);
    println!("  唤醒度 arousal:       {:.2}", f.arousal);
    if let Some(s) = &r.sentiment {
        println!(
            "  文本情感 text:        {:?} {:.2}{}",
            s.label,
            s.score,
            if s.angry { " (angry words)" } else { "" }
        );
    }
    println!(
        "情绪 emotion: {} (confidence {:.2})",
        r.emotion.label.as_str(),
        r.emotion.confidence
    );
    Ok(())
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Classify { script, tz, now } => classify(script.as_deref(), &tz, now.as_deref()),
        Cmd::Eval { file, script, json } => run_eval(&file, script.as_deref(), json),
        Cmd::Emotion(c) => run_emotion(c),
        Cmd::Bench(a) => waihu_bench::nlu::run(a),
    }
}

fn load(script: Option<&Path>) -> anyhow::Result<Nlu> {
    let Some(path) = script else {
        return Ok(Nlu::builtin());
    };
    let src =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let custom =
        waihu_nlu::parse_script_intents(&src).with_context(|| format!("{}", path.display()))?;
    let nlu = Nlu::with_custom(&custom)
        .with_context(|| format!("{}: building the intent model", path.display()))?;
    Ok(match (custom.is_empty(), waihu_nlu::encoder::installed()) {
        (false, Some(enc)) => nlu.with_encoder(enc),
        _ => nlu,
    })
}

fn classify(script: Option<&Path>, tz: &str, now: Option<&str>) -> anyhow::Result<()> {
    let nlu = load(script)?;
    let tz = waihu_nlu::parse_tz(tz)?;
    let fixed_now = match now {
        Some(s) => Some(
            chrono::DateTime::parse_from_rfc3339(s)
                .with_context(|| {
                    format!("--now {s:?}: expected RFC 3339, e.g. 2026-11-25T10:00:00+08:00")
                })?
                .with_timezone(&chrono::Utc),
        ),
        None => None,
    };
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for (i, line) in stdin.lock().lines().enumerate() {
        let line = line.with_context(|| format!("stdin line {}: not UTF-8", i + 1))?;
        let text = line.trim_end_matches('\r');
        let r = nlu.classify(text, fixed_now.unwrap_or_else(chrono::Utc::now), tz);
        serde_json::to_writer(&mut out, &r)?;
        out.write_all(b"\n")?;
        // Interactive use (a pipe from ASR) wants each answer at once.
        out.flush()?;
    }
    Ok(())
}

fn read_labelled(path: &Path) -> anyhow::Result<Vec<(String, String)>> {
    let src =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let rows = waihu_nlu::parse_tsv(&src).with_context(|| format!("{}", path.display()))?;
    if rows.is_empty() {
        bail!("{}: no `label<TAB>text` lines", path.display());
    }
    Ok(rows)
}

fn run_eval(file: &Path, script: Option<&Path>, json: bool) -> anyhow::Result<()> {
    let rows = read_labelled(file)?;
    let nlu = load(script)?;
    let pairs: Vec<(String, String)> = rows
        .iter()
        .map(|(l, t)| (l.clone(), nlu.intent(t).intent))
        .collect();
    let report = eval::evaluate(&pairs);
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print!("{}", report.render());
    }
    Ok(())
}
