//! `waihu amd FILE.wav`: who answered — a person, a machine, a carrier
//! announcement or silence — from the first seconds of a call recording.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde_json::json;
use waihu_amd::{analyze_with, Announcement, Library, Verdict};

use crate::ctx::{print_json, Ctx};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A WAV recording of the callee's side from answer (any rate, mono).
    pub file: PathBuf,
    /// Acoustic evidence only: do not run the ASR for greeting and announcement words.
    #[arg(long)]
    pub no_asr: bool,
    /// Seconds of audio analysed (and recognised).
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// A carrier's recording of an announcement, recognised by its audio
    /// fingerprint (repeatable): KIND=FILE.wav, KIND one of vacant (空号),
    /// suspended (停机), powered_off (关机), unreachable (无法接通), busy (忙), sit.
    #[arg(long = "announcement", value_name = "KIND=WAV")]
    pub announcements: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(ctx: &Ctx, a: Args) -> anyhow::Result<()> {
    let pcm = waihu_audio::wav::read_wav(&a.file)
        .with_context(|| format!("reading {}", a.file.display()))?;
    let mut samples = waihu_audio::resample::resample_i16(&pcm.samples, pcm.rate, waihu_amd::RATE);
    samples.truncate((a.seconds.max(0.0) * waihu_amd::RATE as f64) as usize);
    let model = waihu_speech::whisper::default_model_dir(ctx.home(), "whisper-base");
    let use_asr = !a.no_asr && model.join("model.bin").exists();
    let t0 = Instant::now();
    let texts = if use_asr {
        let asr = waihu_speech::engines::AsrEngine::Whisper { model_dir: model }.build(400)?;
        let opts = waihu_speech::asr::AsrOptions {
            rate: waihu_amd::RATE,
            ..Default::default()
        };
        let results = ctx.runtime()?.block_on(waihu_speech::asr::recognize_all(
            asr.as_ref(),
            &samples,
            &opts,
        ))?;
        results
            .into_iter()
            .filter(|r| r.is_final)
            .map(|r| (r.end_ms, r.text))
            .collect()
    } else {
        Vec::new()
    };
    let asr_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let mut lib = Library::new();
    for (i, spec) in a.announcements.iter().enumerate() {
        let (kind, file) = spec
            .split_once('=')
            .with_context(|| format!("--announcement '{spec}': expected KIND=FILE.wav"))?;
        add_recording(
            &mut lib,
            kind,
            std::path::Path::new(file.trim()),
            None,
            None,
            &format!("--announcement #{}", i + 1),
        )?;
    }
    let an = analyze_with(&samples, &texts, (!lib.is_empty()).then_some(&lib))?;
    let d = &an.last;
    let outcome = d.announcement.map(|k| (k.outcome(), k.retry()));
    if a.json {
        print_json(&json!({
            "file": a.file.display().to_string(),
            "decision": d.verdict.name(),
            "confidence": d.confidence,
            "decision_ms": an.first.at_ms,
            "final_ms": d.at_ms,
            "first_decision": an.first.verdict.name(),
            "reason": d.reason,
            "announcement": d.announcement.map(|k| k.name()),
            "outcome": outcome.map(|o| o.0),
            "retry": outcome.map(|o| o.1),
            "beep_end_ms": d.beep_end_ms,
            "fingerprint": an.fingerprint,
            "asr": use_asr,
            "asr_compute_ms": use_asr.then_some(asr_ms),
            "words": texts.iter().map(|t| &t.1).collect::<Vec<_>>(),
        }))?;
    } else {
        let zh = match d.verdict {
            Verdict::Human => "真人",
            Verdict::Machine => "答录机",
            Verdict::Announcement => "运营商提示音",
            Verdict::Silence => "静音",
        };
        println!(
            "{zh} / {}{}: confidence {:.2}, decided at {} ms ({:?}){}",
            d.verdict.name(),
            d.announcement
                .map(|k| format!(" ({} / {})", k.zh(), k.name()))
                .unwrap_or_default(),
            d.confidence,
            an.first.at_ms,
            d.reason,
            d.beep_end_ms
                .map(|b| format!(", beep ends at {b} ms"))
                .unwrap_or_default()
        );
        if an.first.verdict != d.verdict || an.first.announcement != d.announcement {
            println!(
                "  first decision {} at {} ms, revised at {} ms",
                an.first.verdict.name(),
                an.first.at_ms,
                d.at_ms
            );
        }
        if let Some(m) = &an.fingerprint {
            println!(
                "  recording '{}' ({}) heard: bit error rate {:.3}, at {} ms of it",
                m.name,
                m.kind.name(),
                m.ber,
                m.offset_ms
            );
        }
        if let Some((o, r)) = outcome {
            println!("  outcome {o:?}, retry {r:?}");
        }
        if use_asr {
            for (t, w) in &texts {
                println!("  [{t} ms] {w}");
            }
        } else {
            println!(
                "  (acoustic only{})",
                if a.no_asr {
                    ""
                } else {
                    ": Whisper base not installed, see scripts/deps/speech.sh"
                }
            );
        }
    }
    Ok(())
}

/// Reads one recording (any WAV rate, mono) into `lib` as an announcement of
/// `kind`; `at` names where it was asked for, for errors.
pub fn add_recording(
    lib: &mut Library,
    kind: &str,
    file: &std::path::Path,
    name: Option<&str>,
    trunk: Option<&str>,
    at: &str,
) -> anyhow::Result<()> {
    let known = || {
        Announcement::ALL
            .iter()
            .map(|k| format!("{} ({})", k.name(), k.zh()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let kind = Announcement::from_name(kind).with_context(|| {
        format!(
            "{at}: unknown announcement kind '{kind}'; use {} / 未知的提示音类型",
            known()
        )
    })?;
    let pcm = waihu_audio::wav::read_wav(file)
        .with_context(|| format!("{at}: reading {}", file.display()))?;
    let samples = waihu_audio::resample::resample_i16(&pcm.samples, pcm.rate, waihu_amd::RATE);
    let name = name.map(String::from).unwrap_or_else(|| {
        file.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| file.display().to_string())
    });
    lib.add_for_trunk(kind, name, trunk, &samples)
        .with_context(|| format!("{at}: {} cannot be fingerprinted", file.display()))
}

/// The campaign's `announcements:` recordings (paths relative to the campaign
/// file) as a fingerprint library; `None` when it names none. `trunks`: the
/// names of the trunks the run dials through (empty: one `--trunk` address,
/// no named trunks), which a recording's `trunk:` must name.
pub fn campaign_library(
    campaign_path: &std::path::Path,
    campaign: &waihu_campaign::config::Campaign,
    trunks: &[&str],
) -> anyhow::Result<Option<Library>> {
    if campaign.announcements.is_empty() {
        return Ok(None);
    }
    let base = campaign_path.parent().unwrap_or(std::path::Path::new("."));
    let mut lib = Library::new();
    for (i, a) in campaign.announcements.iter().enumerate() {
        let at = format!("{}: announcements[{i}]", campaign_path.display());
        let trunk = a.trunk.as_deref().map(str::trim);
        match trunk {
            Some(t) if trunks.is_empty() => anyhow::bail!(
                "{at}.trunk: '{t}', but calls go out through one --trunk address, not named trunks: give --trunks FILE or trunks with a proxy in the campaign / 外呼未使用命名中继"
            ),
            Some(t) if !trunks.contains(&t) => anyhow::bail!(
                "{at}.trunk: '{t}' is not a trunk of this run ({}) / 没有这个中继",
                trunks.join(", ")
            ),
            _ => {}
        }
        add_recording(
            &mut lib,
            &a.kind,
            &base.join(a.file.trim()),
            a.name.as_deref(),
            trunk,
            &at,
        )?;
    }
    Ok(Some(lib))
}

#[cfg(test)]
mod tests {
    /// The campaign parser checks `announcements[].kind` against its own list
    /// (the planner's crate does not depend on the detector's): the two agree.
    #[test]
    fn campaign_kinds_are_the_detectors() {
        assert_eq!(
            waihu_campaign::config::ANNOUNCEMENT_KINDS,
            waihu_amd::Announcement::ALL.map(|k| k.name())
        );
    }
}
