//! `waihu llm ...`: the local model server, knowledge-base answers and call
//! summaries from the command line (crate `waihu-llm`).
use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use waihu_dialog::Program;
use waihu_llm::guard::Lang;
use waihu_llm::serve::{default_model_path, serve, LocalModel};
use waihu_llm::summary::{parse_summary, parse_transcript, rule_summary, summary_prompt};
use waihu_llm::{answer, split_document, Client, Config, Knowledge, Passage, Violation};

#[derive(clap::Subcommand, Debug)]
pub enum Cmd {
    /// Serve a GGUF Qwen2 model as an OpenAI-compatible chat-completions endpoint
    /// (default: the model scripts/deps/llm.sh installs). 本地模型服务。
    Serve {
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: SocketAddr,
        #[arg(long)]
        model: Option<PathBuf>,
        /// Cap on max_tokens per request.
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
    },
    /// Answer a question from a script's `knowledge:` (or a document), as a call would:
    /// retrieval, the model (WAIHU_LLM_ENDPOINT), the guardrails, the fallback line. 知识库问答。
    Ask {
        /// A script with `knowledge:`, or a Markdown document.
        file: PathBuf,
        question: String,
        /// Language of a bare document (default: detected).
        #[arg(long, value_parser = ["zh", "en"])]
        lang: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Summarise a call: `waihu script chat --json` output or {"turns": [...]}; summary,
    /// disposition, callback time, follow-up as validated JSON; rule-based when the model
    /// is unreachable or its output fails validation. 通话摘要。
    Summarize {
        file: PathBuf,
        /// Rules only, no model.
        #[arg(long)]
        no_llm: bool,
    },
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(run_async(cmd))
}

async fn run_async(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Serve {
            listen,
            model,
            max_tokens,
        } => {
            let path = model.unwrap_or_else(default_model_path);
            anyhow::ensure!(
                path.exists(),
                "no model at {} (run scripts/deps/llm.sh or pass --model)",
                path.display()
            );
            let p2 = path.clone();
            let m = tokio::task::spawn_blocking(move || LocalModel::load(&p2)).await??;
            serve(m, listen, max_tokens, |a| {
                eprintln!("waihu llm: serving {} on http://{a}/v1", path.display());
            })
            .await
            .with_context(|| format!("serving on {listen}"))?;
            Ok(())
        }
        Cmd::Ask {
            file,
            question,
            lang,
            json,
        } => {
            let (kb, fallback, vars) = load_knowledge(&file, lang.as_deref())?;
            let client = Client::new(Config::from_env())?;
            let vref: Vec<&str> = vars.iter().map(String::as_str).collect();
            let a = answer(&client, &kb, &question, vref, |s| {
                if !json {
                    println!("🤖 {s}");
                    std::io::stdout().flush().ok();
                }
            })
            .await;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"answer": a, "fallback_line": fallback})
                );
            } else if let Some(r) = &a.fallback {
                println!("🤖 {fallback}");
                eprintln!("  (fallback: {r})");
            } else if let Some(r) = &a.stopped {
                eprintln!("  (cut: {r})");
            }
            // The call would have said the fallback line; the command still fails,
            // since nothing was asked of a model.
            if let Some(hint) = a.fallback.as_ref().and_then(model_hint) {
                anyhow::bail!("llm ask: {hint}");
            }
            Ok(())
        }
        Cmd::Summarize { file, no_llm } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let call =
                parse_transcript(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let mut note = None;
            let s = if no_llm {
                rule_summary(&call)
            } else {
                let client = Client::new(Config::from_env())?;
                match client.complete(&summary_prompt(&call), Some(160)).await {
                    Ok(c) => parse_summary(&c.text, &call).unwrap_or_else(|e| {
                        note = Some(format!("model output rejected ({e})"));
                        rule_summary(&call)
                    }),
                    Err(e) => {
                        note = Some(format!(
                            "model unavailable ({e}; start one with `waihu llm serve` or set WAIHU_LLM_ENDPOINT)"
                        ));
                        rule_summary(&call)
                    }
                }
            };
            if let Some(n) = note {
                eprintln!("waihu llm: {n}; rule-based summary");
            }
            println!("{}", serde_json::to_string_pretty(&s)?);
            Ok(())
        }
    }
}

/// The knowledge of a script (passages, fallback line rendered with the
/// script's example values, those values) or of a bare document.
fn load_knowledge(
    file: &Path,
    lang: Option<&str>,
) -> anyhow::Result<(Knowledge, String, Vec<String>)> {
    let is_script = matches!(
        file.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if is_script {
        let prog = Arc::new(waihu_dialog::load_file(file).map_err(|e| anyhow::anyhow!("{e}"))?);
        let kb = script_knowledge(&prog, file)?;
        let vars: BTreeMap<String, String> = prog
            .required
            .iter()
            .map(|(_, name, example)| (name.clone(), example.clone()))
            .collect();
        let call = waihu_dialog::Interpreter::new(prog, &vars, 0)?;
        let fallback = call.knowledge_fallback().unwrap_or_default();
        let values = call
            .variable_values()
            .into_iter()
            .map(String::from)
            .collect();
        return Ok((kb, fallback, values));
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let lang = match lang {
        Some("en") => Lang::En,
        Some(_) => Lang::Zh,
        None => waihu_llm::summary::detect_lang(&text),
    };
    let passages = split_document(&text, 300);
    anyhow::ensure!(
        !passages.is_empty(),
        "{}: no text to answer from (a Markdown document: `# heading` lines, then paragraphs)",
        file.display()
    );
    let fallback = match lang {
        Lang::Zh => "这个问题我需要跟同事确认一下，稍后再回复您。",
        Lang::En => "I need to check that with a colleague and get back to you.",
    };
    Ok((Knowledge::new(lang, passages), fallback.into(), Vec::new()))
}

/// The knowledge base of a loaded script (`knowledge:`), for `llm ask` and
/// `script chat --llm`.
pub fn script_knowledge(prog: &Program, file: &Path) -> anyhow::Result<Knowledge> {
    program_knowledge(prog).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The passages of a program's `knowledge:` (its document split, or its
/// inline passages), in the program's language.
fn program_knowledge(prog: &Program) -> anyhow::Result<Knowledge> {
    let kn = prog
        .knowledge
        .as_ref()
        .context("no `knowledge:` to answer from (see docs/llm.md)")?;
    let passages = match &kn.document {
        Some(doc) => split_document(doc, 300),
        None => kn
            .passages
            .iter()
            .map(|(title, text)| Passage {
                title: title.clone(),
                text: text.clone(),
            })
            .collect(),
    };
    anyhow::ensure!(
        !passages.is_empty(),
        "`knowledge:` has no text to answer from"
    );
    let lang = match prog.language {
        waihu_dialog::Language::Zh => Lang::Zh,
        waihu_dialog::Language::En => Lang::En,
    };
    Ok(Knowledge::new(lang, passages))
}

/// Live calls' knowledge answers (`waihu run --llm`): the model at
/// `WAIHU_LLM_ENDPOINT` behind the guardrails, over each script's passages
/// (indexed once per script, on its first question). Scripts are told apart
/// by file, name and language: a Mandarin and an English version of one
/// script share its name.
pub struct LiveAnswerer {
    client: Arc<Client>,
    kbs: std::sync::Mutex<BTreeMap<(String, String, String), Arc<Knowledge>>>,
}

impl LiveAnswerer {
    pub fn from_env() -> anyhow::Result<LiveAnswerer> {
        Ok(LiveAnswerer {
            client: Arc::new(Client::new(Config::from_env()).context("setting up the LLM client")?),
            kbs: Default::default(),
        })
    }

    fn knowledge(&self, prog: &Program) -> Result<Arc<Knowledge>, String> {
        let key = (
            prog.file.clone(),
            prog.name.clone(),
            format!("{:?}", prog.language),
        );
        let mut kbs = self.kbs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(kb) = kbs.get(&key) {
            return Ok(kb.clone());
        }
        let kb = Arc::new(program_knowledge(prog).map_err(|e| format!("{e:#}"))?);
        kbs.insert(key, kb.clone());
        Ok(kb)
    }
}

impl waihu_bot::Answerer for LiveAnswerer {
    fn answer(
        &self,
        prog: Arc<Program>,
        question: String,
        values: Vec<String>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = waihu_bot::KnowledgeReply> + Send>>
    {
        let kb = self.knowledge(&prog);
        let client = self.client.clone();
        Box::pin(async move {
            let kb = match kb {
                Ok(kb) => kb,
                Err(why) => {
                    return waihu_bot::KnowledgeReply {
                        spoken: Vec::new(),
                        why_not: Some(why),
                    }
                }
            };
            let a = answer(
                &client,
                &kb,
                &question,
                values.iter().map(String::as_str),
                |_| {},
            )
            .await;
            let why_not = a
                .fallback
                .as_ref()
                .or(a.stopped.as_ref())
                .map(|r| model_hint(r).unwrap_or_else(|| r.to_string()));
            waihu_bot::KnowledgeReply {
                spoken: a.spoken,
                why_not,
            }
        })
    }
}

/// A hint when the model could not be reached or failed, so a fallback line
/// caused by the set-up is not mistaken for a guardrail verdict.
pub fn model_hint(reason: &Violation) -> Option<String> {
    match reason {
        Violation::Model { error } => Some(format!(
            "{error} (is a model serving at WAIHU_LLM_ENDPOINT? `waihu llm serve` starts one; \
             a slow local model needs a longer WAIHU_LLM_FIRST_TOKEN_MS; see docs/llm.md)"
        )),
        _ => None,
    }
}
