//! Knowledge-base answers, sans-IO: split a FAQ document into passages,
//! pick the passages for a question, build the prompt that confines the
//! model to them, and turn the model's streamed text into sentences that are
//! spoken only if they pass the [`Guard`] — or into the script's fallback.
//!
//! The runtime (see [`crate::answer`]) only moves bytes between the model and
//! an [`AnswerStream`]; every decision is here, so tests drive it directly.
use serde::Serialize;

use crate::client::Message;
use crate::guard::{Facts, Guard, Lang, Violation};
use crate::retrieve::{Bm25, Hit, Passage, Retriever};
use crate::sentence::SentenceSplitter;

/// Splits a Markdown/plain-text document into passages: each heading starts
/// a section, and each blank-line-separated paragraph of a section is one
/// passage titled with the heading. Paragraphs longer than `max_chars` are cut
/// at sentence ends.
pub fn split_document(text: &str, max_chars: usize) -> Vec<Passage> {
    let mut out = Vec::new();
    let mut title = String::new();
    let mut para = String::new();
    let flush = |title: &str, para: &mut String, out: &mut Vec<Passage>| {
        let p = para.trim();
        if !p.is_empty() {
            let mut piece = String::new();
            let mut sp = SentenceSplitter::new();
            let mut sentences = sp.push(p);
            sentences.extend(sp.finish());
            for s in sentences {
                if !piece.is_empty() && piece.chars().count() + s.chars().count() > max_chars {
                    out.push(Passage {
                        title: title.to_string(),
                        text: std::mem::take(&mut piece),
                    });
                }
                if !piece.is_empty() && !piece.ends_with(|c: char| !c.is_ascii()) {
                    piece.push(' ');
                }
                piece.push_str(&s);
            }
            if !piece.is_empty() {
                out.push(Passage {
                    title: title.to_string(),
                    text: piece,
                });
            }
        }
        para.clear();
    };
    for line in text.lines() {
        let l = line.trim();
        if let Some(h) = l.strip_prefix('#') {
            flush(&title, &mut para, &mut out);
            title = h.trim_start_matches('#').trim().to_string();
        } else if l.is_empty() {
            flush(&title, &mut para, &mut out);
        } else {
            if !para.is_empty() {
                para.push(if l.is_ascii() { ' ' } else { '\n' });
            }
            para.push_str(l.trim_start_matches(['-', '*']).trim());
        }
    }
    flush(&title, &mut para, &mut out);
    out
}

/// A script's knowledge: its passages, their index, and the limits of use.
pub struct Knowledge {
    pub lang: Lang,
    pub passages: Vec<Passage>,
    retriever: Box<dyn Retriever>,
    /// Passages given to the model (default 2).
    pub top_k: usize,
    /// Below this coverage of the question by the best passage (or with no
    /// shared bigram or word) the question is not answered from the
    /// document at all (default 0.3).
    pub min_coverage: f32,
}

impl Knowledge {
    pub fn new(lang: Lang, passages: Vec<Passage>) -> Knowledge {
        let retriever = Box::new(Bm25::new(passages.iter().map(Passage::full)));
        Knowledge {
            lang,
            passages,
            retriever,
            top_k: 2,
            min_coverage: 0.3,
        }
    }

    /// Replace the lexical index (e.g. by a sentence-encoder [`crate::retrieve::Dense`]).
    pub fn with_retriever(mut self, r: Box<dyn Retriever>) -> Knowledge {
        self.retriever = r;
        self
    }

    /// The passages to answer `question` from; empty when none covers it.
    pub fn retrieve(&self, question: &str) -> Vec<Hit> {
        let hits = self.retriever.search(question, self.top_k);
        match hits.first() {
            Some(h) if h.coverage >= self.min_coverage && h.strong > 0 => hits
                .into_iter()
                .filter(|h| h.coverage >= self.min_coverage / 2.0)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Everything an answer to `question` needs, or `Err(NoPassage)`.
    /// `variables` are the script's values the answer may also state.
    pub fn prepare<'a>(
        &self,
        question: &str,
        variables: impl IntoIterator<Item = &'a str>,
    ) -> Result<Prepared, Violation> {
        let hits = self.retrieve(question);
        if hits.is_empty() {
            return Err(Violation::NoPassage);
        }
        let used: Vec<&Passage> = hits.iter().map(|h| &self.passages[h.index]).collect();
        let texts: Vec<String> = used.iter().map(|p| p.full()).collect();
        let mut all = texts.clone();
        all.extend(variables.into_iter().map(str::to_string));
        let facts = Facts::new(&all);
        Ok(Prepared {
            messages: prompt(self.lang, question, &texts),
            guard: Guard::new(self.lang, facts),
            passages: hits.iter().map(|h| h.index).collect(),
        })
    }
}

/// The request and the checker for one answer.
pub struct Prepared {
    pub messages: Vec<Message>,
    pub guard: Guard,
    /// Indexes of the passages used.
    pub passages: Vec<usize>,
}

/// The prompt: the passages, the question, and the rule to stay inside them.
pub fn prompt(lang: Lang, question: &str, passages: &[String]) -> Vec<Message> {
    let mut ctx = String::new();
    for (i, p) in passages.iter().enumerate() {
        ctx.push_str(&format!("{}. {}\n", i + 1, p));
    }
    // Short on purpose: a small CPU model pays for every prompt token.
    let (system, user) = match lang {
        Lang::Zh => (
            "只根据资料，用一句简短中文回答。资料里没有答案就只回答NO_ANSWER。",
            format!("资料：\n{ctx}问题：{question}"),
        ),
        Lang::En => (
            "Answer in one short English sentence using only the passages. If they do not say, reply NO_ANSWER.",
            format!("Passages:\n{ctx}Question: {question}"),
        ),
    };
    vec![Message::system(system), Message::user(user)]
}

/// What to do with the answer so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnswerEvent {
    /// Speak this sentence now (it passed the guard).
    Speak { text: String },
    /// Nothing was spoken and nothing will be: say the fallback line.
    Fallback { reason: Violation },
    /// The answer is over (`stopped`: cut at a sentence that failed, or at the length cap).
    Done { stopped: Option<Violation> },
}

/// One streamed answer: feed model text, get sentences to speak.
pub struct AnswerStream {
    guard: Guard,
    split: SentenceSplitter,
    spoken: Vec<String>,
    chars: usize,
    over: bool,
}

impl AnswerStream {
    pub fn new(guard: Guard) -> Self {
        AnswerStream {
            guard,
            split: SentenceSplitter::new(),
            spoken: Vec::new(),
            chars: 0,
            over: false,
        }
    }

    pub fn is_over(&self) -> bool {
        self.over
    }

    pub fn spoken(&self) -> &[String] {
        &self.spoken
    }

    /// New model text. Once the result holds `Fallback` or `Done` the stream
    /// is over and the runtime should stop the model.
    pub fn push(&mut self, delta: &str) -> Vec<AnswerEvent> {
        if self.over {
            return Vec::new();
        }
        let sentences = self.split.push(delta);
        let mut out = Vec::new();
        for s in sentences {
            self.sentence(&s, &mut out);
            if self.over {
                break;
            }
        }
        out
    }

    /// The model finished normally.
    pub fn finish(&mut self) -> Vec<AnswerEvent> {
        if self.over {
            return Vec::new();
        }
        let mut out = Vec::new();
        if let Some(s) = self.split.finish() {
            self.sentence(&s, &mut out);
        }
        if !self.over {
            self.over = true;
            out.push(if self.spoken.is_empty() {
                AnswerEvent::Fallback {
                    reason: Violation::Empty,
                }
            } else {
                AnswerEvent::Done { stopped: None }
            });
        }
        out
    }

    /// The model failed or timed out: what was spoken stands, else fallback.
    pub fn abort(&mut self, reason: Violation) -> Vec<AnswerEvent> {
        if self.over {
            return Vec::new();
        }
        self.over = true;
        vec![if self.spoken.is_empty() {
            AnswerEvent::Fallback { reason }
        } else {
            AnswerEvent::Done {
                stopped: Some(reason),
            }
        }]
    }

    fn sentence(&mut self, s: &str, out: &mut Vec<AnswerEvent>) {
        let n = s.chars().count();
        let verdict = if self.chars + n > self.guard.max_chars {
            Err(Violation::TooLong {
                max: self.guard.max_chars,
            })
        } else {
            self.guard.check(s)
        };
        match verdict {
            Ok(()) => {
                self.chars += n;
                self.spoken.push(s.to_string());
                out.push(AnswerEvent::Speak {
                    text: s.to_string(),
                });
            }
            Err(reason) => {
                self.over = true;
                out.push(if self.spoken.is_empty() {
                    AnswerEvent::Fallback { reason }
                } else {
                    AnswerEvent::Done {
                        stopped: Some(reason),
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retrieval over the shipped question sets (`cargo test -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn show_retrieval() {
        for lang in ["zh", "en"] {
            let root = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../examples/knowledge/air_purifier"
            );
            let doc = std::fs::read_to_string(format!("{root}.{lang}.md")).unwrap();
            let qs = std::fs::read_to_string(format!("{root}.{lang}.questions.tsv")).unwrap();
            let l = if lang == "zh" { Lang::Zh } else { Lang::En };
            let kb = Knowledge::new(l, split_document(&doc, 300));
            for line in qs.lines().filter(|l| !l.starts_with('#')) {
                let (q, e) = line.split_once('\t').unwrap_or((line, ""));
                let hits = kb.retriever.search(q, 3);
                let kept = kb.retrieve(q);
                println!(
                    "{q} [{e}] kept={} {:?}",
                    kept.len(),
                    hits.iter()
                        .map(|h| (kb.passages[h.index].title.clone(), h.coverage, h.strong))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    const FAQ: &str = "# 滤芯\n滤芯建议每6个月更换一次。滤芯价格199元。\n\n# 配送\n下单后48小时内发货，江浙沪次日达。\n";

    #[test]
    fn document_split() {
        let p = split_document(FAQ, 200);
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].title, "滤芯");
        assert!(p[1].text.contains("48小时"));
    }

    #[test]
    fn streamed_answer_is_checked_sentence_by_sentence() {
        let kb = Knowledge::new(Lang::Zh, split_document(FAQ, 200));
        let prep = kb.prepare("滤芯多久换一次", ["张先生"]).unwrap();
        assert_eq!(prep.passages[0], 0);
        let mut a = AnswerStream::new(prep.guard.clone());
        assert!(a.push("建议每六个月").is_empty());
        let ev = a.push("更换一次。价格是");
        assert_eq!(
            ev,
            vec![AnswerEvent::Speak {
                text: "建议每六个月更换一次。".into()
            }]
        );
        let ev = a.push("99元。还有");
        assert!(matches!(
            ev[0],
            AnswerEvent::Done {
                stopped: Some(Violation::Number { .. })
            }
        ));
        assert!(a.is_over());
        let mut b = AnswerStream::new(prep.guard.clone());
        assert!(matches!(
            b.push("我是人工客服。")[0],
            AnswerEvent::Fallback {
                reason: Violation::Identity { .. }
            }
        ));
        assert!(b.finish().is_empty());
        let mut c = AnswerStream::new(prep.guard);
        assert!(matches!(
            c.abort(Violation::Model {
                error: "timeout".into()
            })[0],
            AnswerEvent::Fallback { .. }
        ));
    }

    #[test]
    fn unrelated_question_gets_no_passage() {
        let kb = Knowledge::new(Lang::Zh, split_document(FAQ, 200));
        assert!(matches!(
            kb.prepare("你们老板是谁", []),
            Err(Violation::NoPassage)
        ));
    }
}
