//! waihu's LLM adapter.
//!
//! - [`client`]: an OpenAI-compatible chat-completions client, streaming, with
//!   connect / first-token / total timeouts and a token budget (runtime).
//! - [`sse`]: the sans-IO event-stream and chunk parser behind it.
//! - [`kb`], [`retrieve`], [`guard`], [`sentence`]: knowledge-base answers —
//!   passages, retrieval ([`retrieve::Retriever`]: BM25 now, a sentence
//!   encoder later), the prompt, and the deterministic guardrails that decide
//!   sentence by sentence what may be spoken; [`answer`] runs one answer.
//! - [`summary`]: call summaries and dispositions as schema-checked JSON, with
//!   a rule-based fallback.
//! - [`intent`]: the intent fallback, limited to a state's expected labels.
//! - [`serve`]: a local OpenAI-compatible server for a small GGUF model (candle).
//!
//! Architecture invariant: every decision about model output (what is spoken,
//! which label, which summary) is made by sans-IO code that never trusts the
//! model: the same text in gives the same verdict out, whatever the model did.
//! Only `client`, `answer` and `serve` do I/O.

pub mod answer;
pub mod client;
pub mod eval;
pub mod guard;
pub mod intent;
pub mod kb;
pub mod retrieve;
pub mod sentence;
pub mod serve;
pub mod sse;
pub mod summary;

pub use answer::{answer, Answer};
pub use client::{Client, Completion, Config, Flow, LlmError, Message};
pub use guard::{Facts, Guard, Lang, Violation};
pub use kb::{split_document, AnswerEvent, AnswerStream, Knowledge};
pub use retrieve::{Bm25, Dense, Embedder, Passage, Retriever};
pub use summary::{parse_summary, rule_summary, CallText, Summary};
