//! `waihu script ...`: validate, draw, chat with and test dialog scripts.
use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use waihu_bot::text::{Line, TextCall};
use waihu_core::NluResult;
use waihu_dialog::testing::{self, BotTurn};
use waihu_dialog::{Output, Program};

use crate::ctx::Ctx;

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Check scripts: unknown targets, unreachable states, states with no way to end,
    /// intents without examples, missing variables, templates that do not render.
    /// 校验话术脚本。
    Validate {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check that these customer variables cover what the script needs.
        #[arg(long = "customer", value_name = "KEY=VALUE")]
        customer: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Draw the state graph (Mermaid or Graphviz DOT). 绘制状态图。
    Graph {
        file: PathBuf,
        #[arg(long, default_value = "mermaid", value_parser = ["mermaid", "dot"])]
        format: String,
    },
    /// Talk to a script in the console, with the real NLU. Type what the callee says;
    /// an empty line is silence, `/dtmf 1` presses keys, `/hangup` hangs up.
    /// 在终端里与话术对话。
    Chat {
        file: PathBuf,
        /// Customer variables; missing ones take the script's example values.
        #[arg(long = "customer", value_name = "KEY=VALUE")]
        customer: Vec<String>,
        /// Picks the A/B prompt variants.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// One JSON object per bot turn, then the outcome.
        #[arg(long)]
        json: bool,
        /// Answer out-of-script questions from the script's `knowledge:` with the LLM
        /// at WAIHU_LLM_ENDPOINT (see docs/llm.md), behind the guardrails.
        #[arg(long)]
        llm: bool,
    },
    /// Run scripted conversations and check paths and outcomes. 运行话术测试用例。
    Test {
        file: PathBuf,
        cases: PathBuf,
        #[arg(long)]
        json: bool,
        /// Print the bot's side of every case.
        #[arg(long)]
        verbose: bool,
    },
    /// Validation time and per-step cost on a generated large script, beside a
    /// naive baseline (name lookups and template parsing on every step).
    /// Same as `waihu bench script`.
    Bench(waihu_bench::script::Args),
}

pub fn run(_ctx: &Ctx, cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Validate {
            files,
            customer,
            json,
        } => validate(&files, &customer, json),
        Cmd::Graph { file, format } => {
            let prog = load(&file)?;
            let out = if format == "dot" {
                waihu_dialog::graph::dot(&prog)
            } else {
                waihu_dialog::graph::mermaid(&prog)
            };
            print!("{out}");
            Ok(())
        }
        Cmd::Chat {
            file,
            customer,
            seed,
            json,
            llm,
        } => chat(&file, &customer, seed, json, llm),
        Cmd::Test {
            file,
            cases,
            json,
            verbose,
        } => test(&file, &cases, json, verbose),
        Cmd::Bench(a) => waihu_bench::script::run(a),
    }
}

fn load(file: &Path) -> anyhow::Result<Program> {
    // The LoadError's Display already names file:line:column for each problem.
    waihu_dialog::load_file(file).map_err(|e| anyhow::anyhow!("{e}"))
}

fn parse_kv(items: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--customer {item:?}: expected KEY=VALUE (e.g. name=张先生)");
        };
        out.insert(k.trim().to_string(), v.to_string());
    }
    Ok(out)
}

fn validate(files: &[PathBuf], customer: &[String], json: bool) -> anyhow::Result<()> {
    let customer = parse_kv(customer)?;
    let mut failed = 0;
    for f in files {
        match waihu_dialog::load_file(f) {
            Ok(p) => {
                let missing: Vec<&str> = if customer.is_empty() {
                    Vec::new()
                } else {
                    p.required
                        .iter()
                        .filter(|(_, n, _)| !customer.contains_key(n))
                        .map(|(_, n, _)| n.as_str())
                        .collect()
                };
                if !missing.is_empty() {
                    failed += 1;
                }
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "file": f.display().to_string(), "ok": missing.is_empty(), "name": p.name,
                            "states": p.states.len(), "transitions": p.transition_count(),
                            "intents": p.intents.len(), "variables": p.required.len(),
                            "missing_variables": missing,
                        })
                    );
                } else if missing.is_empty() {
                    println!(
                        "✓ {}: {} — {} states, {} transitions, {} custom intents, {} variables / ok",
                        f.display(),
                        p.title.as_deref().unwrap_or(&p.name),
                        p.states.len(),
                        p.transition_count(),
                        p.intents.len(),
                        p.required.len()
                    );
                } else {
                    println!(
                        "✗ {}: 缺少客户变量 / variables not provided: {}",
                        f.display(),
                        missing.join(", ")
                    );
                }
            }
            Err(e) => {
                failed += 1;
                if json {
                    for d in &e.diagnostics {
                        println!(
                            "{}",
                            serde_json::json!({"file": e.file, "ok": false, "line": d.pos.line, "column": d.pos.col, "path": d.path, "message": d.message})
                        );
                    }
                } else {
                    println!("{e}");
                    println!(
                        "✗ {}: {} 个问题 / {} problem(s)",
                        f.display(),
                        e.diagnostics.len(),
                        e.diagnostics.len()
                    );
                }
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} script(s) failed validation", files.len());
    }
    Ok(())
}

/// The NLU of `chat` and of text-only test turns. `chat` anchors relative times
/// ("明天下午") at the real clock; tests at the fixed simulation start, so they
/// are reproducible.
fn classifier(
    prog: &Program,
    live: bool,
) -> anyhow::Result<impl Fn(&str, &waihu_core::NluContext) -> NluResult> {
    let anchor = move || {
        if live {
            chrono::Utc::now()
        } else {
            testing::sim_start()
        }
    };
    waihu_bot::text::classifier(prog, anchor).map_err(|e| anyhow::anyhow!("training the NLU: {e}"))
}

fn print_turn(turn: &BotTurn, heard: Option<&NluResult>, json: bool) {
    let mut plays: Vec<(&str, &str)> = Vec::new();
    let mut actions = Vec::new();
    let mut end = None;
    for o in &turn.outputs {
        match o {
            Output::Play { text, style, .. } => plays.push((text, style)),
            Output::Action { action } => actions.push(action.clone()),
            Output::End { outcome, level } => end = Some((outcome.clone(), *level)),
            Output::Listen { .. } | Output::StopPlayback => {}
        }
    }
    if json {
        let prompt: String = plays.iter().map(|(t, _)| *t).collect();
        let mut v = serde_json::json!({
            "state": turn.state,
            "prompt": prompt,
            "style": plays.last().map(|(_, s)| *s),
            "actions": actions,
        });
        if let Some(n) = heard {
            v["heard"] = serde_json::json!({"text": n.text, "intent": n.intent, "confidence": n.confidence, "entities": n.entities});
        }
        if let Some((o, l)) = &end {
            v["end"] = serde_json::json!({"outcome": o, "level": l});
        }
        println!("{v}");
        return;
    }
    if let Some(n) = heard {
        println!("  (听到 / heard: {} {:.2})", n.intent, n.confidence);
    }
    for a in &actions {
        println!("  → {}", serde_json::to_string(a).unwrap_or_default());
    }
    for (text, style) in &plays {
        println!("[{}] ({style}) 🤖 {text}", turn.state);
    }
    if let Some((o, l)) = end {
        println!(
            "  ☎ 通话结束 / call ended: {o}{}",
            l.map(|l| format!(" (意向 {})", l.as_str()))
                .unwrap_or_default()
        );
    }
}

/// The model and knowledge base behind `chat --llm`.
struct Answerer {
    rt: tokio::runtime::Runtime,
    client: waihu_llm::Client,
    kb: waihu_llm::Knowledge,
}

fn chat(file: &Path, customer: &[String], seed: u64, json: bool, llm: bool) -> anyhow::Result<()> {
    let prog = Arc::new(load(file)?);
    let answerer = if llm {
        Some(Answerer {
            kb: crate::cmd::llm::script_knowledge(&prog, file)?,
            client: waihu_llm::Client::new(waihu_llm::Config::from_env())
                .context("setting up the LLM client")?,
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?,
        })
    } else {
        None
    };
    let mut vars = parse_kv(customer)?;
    for (_, name, example) in &prog.required {
        if !vars.contains_key(name) {
            eprintln!("note: {name} not given, using the example value {example:?}");
            vars.insert(name.clone(), example.clone());
        }
    }
    let classify = classifier(&prog, true)?;
    let mut call = TextCall::new(prog, &vars, seed, classify)?;
    let tty = std::io::stdin().is_terminal();
    print_turn(&call.answer(chrono::Utc::now()), None, json);
    let mut lines = std::io::stdin().lock().lines();
    while !call.is_ended() {
        if tty && !json {
            print!("> ");
            std::io::stdout().flush().ok();
        }
        let Some(line) = lines.next() else {
            print_turn(&call.line(Line::HangUp, chrono::Utc::now()).0, None, json);
            break;
        };
        let line = line.context("reading stdin")?;
        let now = chrono::Utc::now();
        let (turn, heard) = match (Line::parse(&line), &answerer) {
            (Line::Say(text), Some(ans)) => {
                let nlu = call.understand(text);
                let turn = if call.interpreter().wants_knowledge(&nlu) {
                    knowledge_turn(&mut call, ans, text, now)
                } else {
                    call.heard(&nlu, now)
                };
                (turn, Some(nlu))
            }
            (l, _) => call.line(l, now),
        };
        print_turn(&turn, heard.as_ref(), json);
    }
    let (outcome, level) = call.outcome();
    if json {
        println!(
            "{}",
            serde_json::json!({"outcome": outcome, "level": level, "path": call.path()})
        );
    } else {
        println!("路径 / path: {}", call.path().join(" → "));
    }
    Ok(())
}

/// `chat --llm`: an out-of-script question (`Interpreter::wants_knowledge`)
/// answered from the script's knowledge by the model behind the guardrails,
/// or with the script's fallback line; then the prompt is repeated. Why an
/// answer fell back or was cut goes to stderr.
fn knowledge_turn<C>(
    call: &mut TextCall<C>,
    ans: &Answerer,
    question: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> BotTurn
where
    C: Fn(&str, &waihu_core::NluContext) -> NluResult,
{
    let values: Vec<String> = call
        .interpreter()
        .variable_values()
        .into_iter()
        .map(String::from)
        .collect();
    let a = ans.rt.block_on(waihu_llm::answer(
        &ans.client,
        &ans.kb,
        question,
        values.iter().map(String::as_str),
        |_| {},
    ));
    if let Some(r) = a.fallback.as_ref().or(a.stopped.as_ref()) {
        let why = crate::cmd::llm::model_hint(r).unwrap_or_else(|| r.to_string());
        eprintln!("  (知识库 / knowledge: {why})");
    }
    if a.spoken.is_empty() {
        call.aside(waihu_dialog::Aside::Fallback, now)
    } else {
        call.aside(waihu_dialog::Aside::Said(&a.spoken), now)
    }
}

fn test(file: &Path, cases: &Path, json: bool, verbose: bool) -> anyhow::Result<()> {
    let prog = Arc::new(load(file)?);
    let cases = testing::load_cases(cases).map_err(|e| anyhow::anyhow!("{e}"))?;
    let needs_nlu = cases
        .cases
        .iter()
        .flat_map(|c| &c.turns)
        .any(|t| t.intent.is_none() && t.text.is_some());
    let classify = if needs_nlu {
        Some(classifier(&prog, false)?)
    } else {
        None
    };
    let classify_ref: Option<testing::Classify<'_>> = classify
        .as_ref()
        .map(|c| c as &dyn Fn(&str, &waihu_core::NluContext) -> NluResult);
    let results = testing::run_cases(&prog, &cases, classify_ref);
    let failed = results.iter().filter(|r| !r.passed).count();
    for r in &results {
        if json {
            println!("{}", serde_json::to_string(r)?);
            continue;
        }
        println!("{} {}", if r.passed { "✓" } else { "✗" }, r.name);
        if !r.passed || verbose {
            println!(
                "    path: {}  outcome: {}",
                r.path.join(" → "),
                r.outcome.as_deref().unwrap_or("-")
            );
        }
        for f in &r.failures {
            println!("    {f}");
        }
        if verbose {
            for t in &r.transcript {
                print_turn(t, None, false);
            }
        }
    }
    if !json {
        println!(
            "{} passed, {} failed ({})",
            results.len() - failed,
            failed,
            file.display()
        );
    }
    if failed > 0 {
        bail!("{failed} of {} case(s) failed", results.len());
    }
    Ok(())
}
