//! `waihu bench ...`: throughput of waihu's parts, each beside a baseline
//! measured in the same run so the ratio means something on any machine. The
//! benches are in crate `waihu-bench`; this is their command line.
use std::path::PathBuf;

use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// SIP calls: concurrent calls with two-way G.711 media and call setup rate, against our
    /// UAS and a SIPp UAS (-rtp_echo) as the reference.
    Sip(waihu_bench::sip::Args),
    /// Trunks: calls/s and call setup time through Kamailio (registrar, digest auth on
    /// REGISTER and INVITE) beside direct calls, same run, same trunk code. 中继。
    Trunks(waihu_bench::trunks::Args),
    /// DNS: RFC 3263 resolution of a trunk (NAPTR → SRV → A) beside a single A lookup,
    /// against dnsmasq on loopback; and a cached lookup. 中继域名解析。
    Dns(waihu_bench::dns::Args),
    /// SIP flood: live calls through INVITE, OPTIONS, garbage and held-TCP floods with the
    /// flood guard and without it, beside the same calls with no flood. 洪水攻击。
    Flood(waihu_bench::flood::Args),
    /// Soak: many concurrent calls with two-way audio for a long time, each replaced as it
    /// ends; resident memory, descriptors, tasks and loss sampled, slopes after the warm-up.
    /// 长时间压力测试。
    Soak(waihu_bench::soak::Args),
    /// Script experiments: Thompson sampling over prompt variants beside the fixed
    /// split of a classic A/B test (calls to a confident winner, regret). 话术实验。
    Bandit(waihu_bench::bandit::Args),
    /// HTTPS: API requests/s over TLS beside plain HTTP, same server, same run.
    Https(waihu_bench::https::Args),
    /// Tenants: API requests/s to one store alone beside one of several tenants (the
    /// dispatcher's cost), and a report written as CSV beside PDF. 多租户与 PDF 报表。
    Tenants(waihu_bench::tenants::Args),
    /// HTTP API: KPI and heat-map pages over 1,000,000 generated attempts (rollup vs SQL over
    /// the event log vs a Rust scan of decoded events).
    Api(waihu_bench::api::Args),
    /// Operations console: its requests over HTTP (page, customers, segment preview, script
    /// validation, chat, test cases, campaign forecast, calls) on 1,000,000 customers and
    /// calls, beside the same on 1/100 of them. 运营控制台。
    Console(waihu_bench::console::Args),
    /// Dialog scripts: validation time and per-step cost of the interpreter on a generated
    /// 250-state / 1,000+-transition script, beside a naive interpreter of the parsed YAML.
    Script(waihu_bench::script::Args),
    /// Audit chain: append cost per event with the hash chain beside the same insert
    /// without it (one per transaction and in batches), and verify time over 1M events,
    /// extrapolated to 10M. 审计链。
    Audit(waihu_bench::audit::Args),
    /// Scale-out: dials per second through the cluster's PostgreSQL gate (lease, caps,
    /// one call per number, shared channels, attempt and event) with 1, 2 and 3 nodes,
    /// beside one SQLite node committing the same dials; and the COPY enqueue rate.
    /// PostgreSQL is started in a temporary directory unless --url names one. 多节点。
    Cluster(waihu_bench::cluster::Args),
    /// Speech synthesis: time to first audio and real-time factor per language,
    /// uncached beside cached; then the neural voice (Piper) beside espeak-ng on
    /// English call sentences: first audio, RTF and the ASR round-trip WER
    /// (TTS → G.711 → Whisper tiny.en).
    Tts {
        #[arg(long, default_value_t = 3)]
        runs: usize,
    },
    /// Intent classification: held-out accuracy, macro-F1 and latency beside
    /// a scikit-learn TF-IDF + LogisticRegression baseline on the same split.
    Nlu(waihu_bench::nlu::Args),
    /// The voice bot end to end over SIP against virtual callees at several
    /// concurrency levels: turn latency and its breakdown, correctness, CPU.
    Voice(waihu_bench::voice::Args),
    /// The console's voice test measured: mouth to ear in headless Chromium over
    /// WebRTC (Opus, then G.711) beside a phone call over SIP to the same bot, in
    /// one run.
    Webrtc(waihu_bench::webrtc::Args),
    /// 转人工: warm transfer end to end on loopback (virtual callees asking for a
    /// human, in-process agents): decision → agent answered (cold-transfer
    /// baseline) and decision → agent hears the callee, p50/p95; CPU per call.
    Handoff(waihu_bench::handoff::Args),
    /// 预测式外呼: an agent-assisted campaign live on loopback, predictive pacing
    /// beside progressive (same agents, same callees): abandon rate from the
    /// stored log, agent occupancy, calls per agent-hour.
    Agents(waihu_bench::agents::Args),
    /// 声纹: verification EER over ≥ 20 synthetic voices (espeak-ng variants,
    /// the neural Mandarin voice) through an 8 kHz line, and time per call.
    Voiceprint(waihu_bench::voiceprint::Args),
    /// Homomorphic analytics: Paillier keygen/encrypt/add/decrypt, and a campaign report over
    /// encrypted amounts vs the same report in plaintext.
    Paillier(waihu_bench::paillier::Args),
    /// 媒体加密: SDES-SRTP cost — protect/unprotect per packet beside the plain media path,
    /// and CPU per call of concurrent two-way streams over loopback, SRTP vs plain RTP.
    Srtp(waihu_bench::srtp::Args),
    /// 答录机检测: AMD decision time p50/p95, voicemail precision/recall and
    /// announcement accuracy, beside today's text-only detector.
    Amd(waihu_bench::amd::Args),
    /// SMS: SMPP submit throughput (messages/s) with a window against a real SMSC
    /// (Net::SMPP) on 127.0.0.1, beside stop-and-wait (window 1). 短信吞吐。
    Sms(waihu_bench::sms::Args),
    /// 号段归属地: load time of the installed number-segment table and lookups/s,
    /// beside a HashMap of the raw 7-digit segments built in the same run.
    Geo(waihu_bench::geo::Args),
    /// 知识库问答: LLM answers from a FAQ document behind the guardrails — share correct,
    /// refused, unsupported facts (must be 0; beside the unguarded raw output), time to
    /// the first sentence, tokens/s. Serves the local Qwen2.5-0.5B in-process.
    Llm(waihu_bench::llm::Args),
    /// Voice activity detection: endpoint delay and false barge-ins on espeak
    /// clips, clean and at 10 dB SNR, beside WebRTC VAD without the noise gate.
    Vad,
    /// Embedded Whisper: WER and time per utterance beside faster-whisper
    /// (Python) on the same audio and model.
    Asr {
        /// Model directory (default: DATA_DIR/models/whisper-tiny.en).
        #[arg(long)]
        model_dir: Option<PathBuf>,
        /// Skip the faster-whisper baseline.
        #[arg(long)]
        no_baseline: bool,
    },
    /// 实测嘈杂环境识别率: CER/WER of 246 Mandarin and 246 English call utterances
    /// (bench/asr) spoken by the neural voices, clean and at 20/10/5 dB SNR
    /// through G.711, per model, beam and vocabulary prompt, beside faster-whisper.
    AsrNoise(waihu_bench::asr_noise::Args),
    /// Customer import: generate ROWS rows, import them with encryption on,
    /// beside baselines (CSV parsing alone; parsing + normalisation).
    Import {
        #[arg(long, default_value_t = 1_000_000)]
        rows: usize,
        /// Keep the generated file and data directory here (default: a temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Segment evaluation: classify CUSTOMERS generated customers under the
    /// rules of examples/segments.yaml (or --rules), compiled (one core and
    /// all cores) beside cel-interpreter evaluating the same rules.
    Segments {
        #[arg(long, default_value_t = 1_000_000)]
        customers: usize,
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Customers given to the cel-interpreter baseline (it is slower).
        #[arg(long, default_value_t = 200_000)]
        baseline_customers: usize,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Sip(a) => waihu_bench::sip::run(a),
        Cmd::Trunks(a) => waihu_bench::trunks::run(a),
        Cmd::Dns(a) => waihu_bench::dns::run(a),
        Cmd::Flood(a) => waihu_bench::flood::run(a),
        Cmd::Soak(a) => waihu_bench::soak::run(a),
        Cmd::Bandit(a) => waihu_bench::bandit::run(a),
        Cmd::Https(a) => waihu_bench::https::run(a),
        Cmd::Tenants(a) => waihu_bench::tenants::run(a),
        Cmd::Api(a) => waihu_bench::api::run(a),
        Cmd::Console(a) => waihu_bench::console::run(a),
        Cmd::Script(a) => waihu_bench::script::run(a),
        Cmd::Tts { runs } => {
            waihu_bench::speech::tts(runs)?;
            println!();
            waihu_bench::speech::tts_neural(ctx.home(), runs)
        }
        Cmd::Vad => waihu_bench::speech::vad(),
        Cmd::Voice(a) => waihu_bench::voice::run(a),
        Cmd::Webrtc(a) => waihu_bench::webrtc::run(ctx.home(), a),
        Cmd::Handoff(a) => waihu_bench::handoff::run(a),
        Cmd::Agents(a) => waihu_bench::agents::run(a),
        Cmd::Voiceprint(a) => waihu_bench::voiceprint::run(ctx.home(), a),
        Cmd::Paillier(a) => waihu_bench::paillier::run(a),
        Cmd::Srtp(a) => waihu_bench::srtp::run(a),
        Cmd::Amd(a) => waihu_bench::amd::run(ctx.home(), a),
        Cmd::Sms(a) => waihu_bench::sms::run(a),
        Cmd::Geo(a) => waihu_bench::geo::run(ctx.home(), &a),
        Cmd::Llm(a) => waihu_bench::llm::run(&a),
        Cmd::Audit(a) => waihu_bench::audit::run(a),
        Cmd::Cluster(a) => waihu_bench::cluster::run(a),
        Cmd::Nlu(a) => waihu_bench::nlu::run(a),
        Cmd::Asr {
            model_dir,
            no_baseline,
        } => waihu_bench::speech::asr(ctx.home(), model_dir, !no_baseline),
        Cmd::AsrNoise(a) => waihu_bench::asr_noise::run(ctx.home(), &a),
        Cmd::Import { rows, dir, json } => waihu_bench::import::run(rows, dir, json),
        Cmd::Segments {
            customers,
            rules,
            baseline_customers,
            json,
        } => waihu_bench::segments::run(customers, rules, baseline_customers, json),
    }
}
