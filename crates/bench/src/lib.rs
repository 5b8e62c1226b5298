//! waihu's benchmarks: `waihu bench import|segments|script|sip|srtp|api|audit|tts|vad|asr|nlu|voice|bandit`,
//! `waihu campaign bench`, and the timing of `waihu campaign simulate`.
//!
//! Every bench runs a workload and a baseline side by side in the same run and prints
//! both with their ratio, so the figures mean something on any machine. The `waihu`
//! binary parses the arguments (the larger benches' argument types derive clap here) and
//! calls one function per bench; this crate is the harness around the crates it measures:
//! it reads the clock, generates the workloads, starts the baselines and prints, so the
//! measured crates hold no timing code (the campaign simulator, for one, reports its
//! planner calls to a [`campaign::Stopwatch`] instead of reading the clock).
//!
//! | bench | module | workload | baseline |
//! | --- | --- | --- | --- |
//! | `import` | [`import`] | generated customers through `waihu customers import` | CSV parsing alone; parsing + normalising |
//! | `segments` | [`segments`] | compiled rules over generated attributes | `cel-interpreter` ([`segments::cel`]) |
//! | `script` | [`script`] | the interpreter on a generated 250-state script | a naive interpreter of the parsed YAML ([`script::naive`]) |
//! | `sip` | [`sip`] | concurrent calls with media, setup rate ([`sip::load`]) | a SIPp UAS |
//! | `audit` | [`audit`] | appending through the audit chain; `audit_verify` | the same INSERT without the chain |
//! | `api` | [`api`] | dashboard pages over rollups ([`api::harness`]) | SQL over the raw log; a Rust scan of decoded events |
//! | `tts`, `vad`, `asr` | [`speech`] | espeak-ng, the VAD + gate, embedded Whisper | cached; plain WebRTC VAD; faster-whisper |
//! | `nlu` | [`nlu`] | the intent classifier on the held-out split | scikit-learn (and e5) on the same split |
//! | `voice` | [`voice`] | the bot over SIP against virtual callees | — (latency breakdown, correctness, CPU) |
//! | `agents` | [`agents`] | an agent-assisted campaign live, predictive pacing | progressive pacing, same agents and callees |
//! | `bandit` | [`bandit`] | Thompson sampling over variants with known rates | the fixed split of a classic A/B test |
//! | `srtp` | [`srtp`] | SRTP protect/unprotect per packet; CPU per call of concurrent two-way SRTP streams | the plain media path; the same streams in plain RTP |
//! | `https` | [`https`] | API requests/s over TLS (rustls, keep-alive or a handshake per request) | the same server over plain HTTP |
//! | `llm` | [`llm`] | knowledge-base answers through the guardrails (local Qwen2.5-0.5B) | the same model's raw, unguarded output |
//! | `campaign bench` | [`campaign`] | the planner's queues | a full scan per decision |
//!
//! The benches are the `waihu` binary's commands moved out of it, so they behave like
//! it: they print to stdout (`--json`: one object per line), return `anyhow` errors the
//! binary reports as one line, and some run the binary itself as a child (`import` runs
//! `waihu customers import`, `sip` runs `waihu answer`): call them from `waihu`.

pub mod agents;
pub mod amd;
pub mod api;
pub mod asr_noise;
pub mod audit;
pub mod bandit;
pub mod campaign;
pub mod cluster;
pub mod console;
pub mod dns;
pub mod flood;
pub mod geo;
pub mod handoff;
pub mod https;
pub mod import;
pub mod llm;
pub mod nlu;
pub mod paillier;
pub mod script;
pub mod segments;
pub mod simulate;
pub mod sip;
pub mod sms;
pub mod soak;
pub mod speech;
pub mod srtp;
pub mod tenants;
pub mod trunks;
pub mod voice;
pub mod voiceprint;
pub mod webrtc;

use anyhow::Context;

/// Print one JSON object per line (the binary's `--json` convention).
pub(crate) fn print_json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

/// A tokio runtime for one bench (the binary's commands each make their own).
pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

const ORDER_EN: &str = include_str!("../../../examples/scripts/order_confirmation.en.yaml");
const ORDER_EN_KNOWLEDGE: &str = include_str!("../../../examples/knowledge/air_purifier.en.md");
const ORDER_ZH: &str = include_str!("../../../examples/scripts/order_confirmation.zh.yaml");
const ORDER_ZH_KNOWLEDGE: &str = include_str!("../../../examples/knowledge/air_purifier.zh.md");

/// Writes the shipped English order-confirmation script as
/// `dir/scripts/order_confirmation.en.yaml` and the document its `knowledge:`
/// names (`../knowledge/air_purifier.en.md`, relative to the script) beside
/// it, as in the repository, so the copy loads; returns the script's path.
pub(crate) fn write_order_script(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    write_order_script_in(dir, "en")
}

/// [`write_order_script`] for language `lang` (`zh` or `en`).
pub(crate) fn write_order_script_in(
    dir: &std::path::Path,
    lang: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let (script_text, doc_text) = if lang == "zh" {
        (ORDER_ZH, ORDER_ZH_KNOWLEDGE)
    } else {
        (ORDER_EN, ORDER_EN_KNOWLEDGE)
    };
    let script = dir.join(format!("scripts/order_confirmation.{lang}.yaml"));
    let doc = dir.join(format!("knowledge/air_purifier.{lang}.md"));
    for (path, text) in [(&script, script_text), (&doc, doc_text)] {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(script)
}

/// Items per second.
pub(crate) fn rate(items: usize, secs: f64) -> f64 {
    items as f64 / secs.max(1e-9)
}

/// CPU seconds (user + system) used so far by process `pid` ("self" for us), from procfs.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// Resident set of this process now, in MB (0 where procfs is missing).
pub fn rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Peak resident set of this process so far, in MB (0 where procfs is missing).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
