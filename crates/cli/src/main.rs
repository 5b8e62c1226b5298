//! `waihu`: the thin binary. Parses arguments, sets up logging, opens what a
//! command needs and hands over to the library crates. No business logic here.

mod cmd;
mod ctx;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// waihu (外呼) — AI outbound calling: decide whom to call and when, place real SIP
/// calls, hold a scripted spoken conversation, follow up, and report.
#[derive(Parser, Debug)]
#[command(name = "waihu", version, propagate_version = true)]
pub struct Cli {
    /// Directory holding the database, key file, models and recordings.
    #[arg(long, global = true, env = "WAIHU_DATA_DIR", value_name = "DIR")]
    data_dir: Option<std::path::PathBuf>,

    /// Act on this tenant's data (its own database, key, scripts and
    /// recordings under DIR/tenants/NAME); models stay shared. 租户。
    #[arg(long, global = true, env = "WAIHU_TENANT", value_name = "NAME")]
    tenant: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// 演示: run the demo on embedded defaults (import the sample customers,
    /// segment them, report); the README's main job.
    Demo(cmd::demo::Args),
    /// 客户: import, list, show and export customers (numbers masked unless --reveal).
    #[command(subcommand)]
    Customers(cmd::customers::Cmd),
    /// 客户分群: preview, apply and list segmentation rules (CEL).
    #[command(subcommand)]
    Segments(cmd::segments::Cmd),
    /// 免打扰: manage the do-not-call list.
    #[command(subcommand)]
    Dnc(cmd::dnc::Cmd),
    /// 事件日志: read the append-only event log.
    #[command(subcommand)]
    Events(cmd::events::Cmd),
    /// 审计链: verify the tamper-evident event log (hash chain + signed checkpoints).
    #[command(subcommand)]
    Audit(cmd::audit::Cmd),
    /// 主密钥: rotate the master key (re-wraps every data key; nothing re-encrypted).
    #[command(subcommand)]
    Keys(cmd::keys::Cmd),
    /// 短信: the follow-up message outbox (channel, template, status, delivery time).
    #[command(subcommand)]
    Messages(cmd::messages::Cmd),
    /// 数据平台: serve the HTTP API and the dashboard (default 127.0.0.1:8080).
    Serve(cmd::serve::ServeArgs),
    /// API keys for `waihu serve` (roles admin, supervisor, operator, analyst). API 密钥。
    #[command(subcommand)]
    Apikey(cmd::serve::ApikeyCmd),
    /// 用户: accounts that sign in to the dashboard and console (password, TOTP, lock-out).
    #[command(subcommand)]
    User(cmd::user::Cmd),
    /// 租户: client companies served by one installation, each with its own store.
    #[command(subcommand)]
    Tenant(cmd::tenant::Cmd),
    /// 基准测试: measure waihu's parts beside a baseline run in the same process.
    #[command(subcommand)]
    Bench(cmd::bench::Cmd),
    /// 运行外呼活动: place a campaign's calls over SIP with the voice bot
    /// (planner → SIP → VAD → ASR → NLU → dialog → TTS), storing every call.
    Run(cmd::live::RunArgs),
    /// 中继: validate a trunks file (`check`), show what DNS gives for it (`resolve`), show a
    /// running node's trunks (`status`).
    #[command(subcommand)]
    Trunks(cmd::trunks::Cmd),
    /// 号段归属地: where a number belongs (`lookup`), the installed table (`info`).
    #[command(subcommand)]
    Geo(cmd::geo::Cmd),
    /// Place one SIP call with media (拨打电话); `answer` runs the callee side (应答来电).
    Call(cmd::call::CallArgs),
    /// Answer incoming SIP calls: play a WAV and record (应答来电，播放并录音).
    Answer(cmd::call::AnswerArgs),
    /// Campaigns: validate, simulate in virtual time, bench the planner. 外呼活动。
    #[command(subcommand)]
    Campaign(cmd::campaign::Cmd),
    /// Independent compliance check of the event log. 合规检查。
    #[command(subcommand)]
    Compliance(cmd::compliance::Cmd),
    /// The multi-node deployment's shared PostgreSQL (WAIHU_DATABASE_URL): nodes,
    /// campaigns, start/pause/stop everywhere, the merged log's compliance. 多节点集群。
    #[command(subcommand)]
    Cluster(cmd::cluster::Cmd),
    /// Synthesise speech with an emotion style (语音合成) and write a WAV file.
    Tts(cmd::speech::TtsArgs),
    /// Recognise speech in a WAV file (语音识别): text, timings, RTF.
    Asr(cmd::speech::AsrArgs),
    /// 语义理解: classify utterances (intent, entities, sentiment), evaluate on labelled data.
    #[command(subcommand)]
    Nlu(cmd::nlu::Cmd),
    /// 情绪分析: acoustic emotion cues of one utterance (WAV), fused with its text's sentiment.
    #[command(subcommand)]
    Emotion(cmd::nlu::EmotionCmd),
    /// 话术脚本: validate, graph, chat with and test dialog scripts; bench the interpreter.
    #[command(subcommand)]
    Script(cmd::script::Cmd),
    /// 大模型: serve a local model (OpenAI-compatible), answer from a knowledge document,
    /// summarise a call (summary + disposition as validated JSON).
    #[command(subcommand)]
    Llm(cmd::llm::Cmd),
    /// 虚拟被叫: answer SIP calls as virtual callees (personas) for tests and the demo.
    Sim(cmd::sim::Args),
    /// 声纹: enrol and verify customers by voice; the fraud voice watchlist.
    #[command(subcommand)]
    Voiceprint(cmd::voiceprint::Cmd),
    /// 答录机检测: person, answering machine, carrier announcement (空号, 停机, 关机…) or silence.
    Amd(cmd::amd::Args),
    /// 同态加密分析: Paillier-encrypted numbers summed with the public key only; k-anonymous
    /// reports decrypted by the private key's holder.
    #[command(subcommand)]
    Analytics(cmd::analytics::Cmd),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WAIHU_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let ctx = match ctx::Ctx::new(cli.data_dir, cli.tenant) {
        Ok(c) => c,
        Err(e) => return finish(Err(e)),
    };
    finish(run(&ctx, cli.command))
}

/// Most commands succeed with status 0; those whose status carries a decision
/// (`voiceprint verify`, `voiceprint watch check`) return their own.
fn run(ctx: &ctx::Ctx, command: Command) -> anyhow::Result<ExitCode> {
    let ok = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    match command {
        Command::Demo(a) => ok(cmd::demo::run(ctx, a)),
        Command::Customers(c) => ok(cmd::customers::run(ctx, c)),
        Command::Segments(c) => ok(cmd::segments::run(ctx, c)),
        Command::Dnc(c) => ok(cmd::dnc::run(ctx, c)),
        Command::Events(c) => ok(cmd::events::run(ctx, c)),
        Command::Audit(c) => ok(cmd::audit::run(ctx, c)),
        Command::Keys(c) => ok(cmd::keys::run(ctx, c)),
        Command::Messages(c) => ok(cmd::messages::run(ctx, c)),
        Command::Serve(a) => ok(cmd::serve::run_serve(ctx, a)),
        Command::Apikey(c) => ok(cmd::serve::run_apikey(ctx, c)),
        Command::User(c) => ok(cmd::user::run(ctx, c)),
        Command::Tenant(c) => ok(cmd::tenant::run(ctx, c)),
        Command::Bench(c) => ok(cmd::bench::run(ctx, c)),
        Command::Run(a) => ok(cmd::live::run(ctx, a)),
        Command::Trunks(c) => ok(cmd::trunks::run(ctx, c)),
        Command::Geo(c) => ok(cmd::geo::run(ctx, c)),
        Command::Call(a) => ok(cmd::call::run_call(ctx, a)),
        Command::Answer(a) => ok(cmd::call::run_answer(ctx, a)),
        Command::Campaign(c) => ok(cmd::campaign::run(ctx, c)),
        Command::Compliance(c) => ok(cmd::compliance::run(ctx, c)),
        Command::Cluster(c) => ok(cmd::cluster::run(ctx, c)),
        Command::Tts(a) => ok(cmd::speech::run_tts(ctx, a)),
        Command::Asr(a) => ok(cmd::speech::run_asr(ctx, a)),
        Command::Nlu(c) => ok(cmd::nlu::run(c)),
        Command::Emotion(c) => ok(cmd::nlu::run_emotion(c)),
        Command::Script(c) => ok(cmd::script::run(ctx, c)),
        Command::Llm(c) => ok(cmd::llm::run(c)),
        Command::Sim(a) => ok(cmd::sim::run(ctx, a)),
        Command::Voiceprint(c) => cmd::voiceprint::run(ctx, c),
        Command::Amd(a) => ok(cmd::amd::run(ctx, a)),
        Command::Analytics(c) => ok(cmd::analytics::run(c)),
    }
}

fn finish(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the outermost context first, then its causes.
            let mut line = e.to_string();
            for cause in e.chain().skip(1) {
                line.push_str(": ");
                line.push_str(&cause.to_string());
            }
            eprintln!("waihu: {line}");
            ExitCode::FAILURE
        }
    }
}
