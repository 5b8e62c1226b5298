//! Runtime glue for one knowledge-base answer: retrieval and guard from
//! [`crate::kb`], the model through [`Client::stream`], sentences handed to
//! the caller (TTS) the moment they pass.
use std::time::Instant;

use serde::Serialize;

use crate::client::{Client, Completion, Flow};
use crate::guard::Violation;
use crate::kb::{AnswerEvent, AnswerStream, Knowledge};

#[derive(Debug, Clone, Serialize)]
pub struct Answer {
    /// Sentences spoken, in order (empty when the fallback was used).
    pub spoken: Vec<String>,
    /// Why the fallback line was said instead, if it was.
    pub fallback: Option<Violation>,
    /// Why the answer was cut short after some sentences, if it was.
    pub stopped: Option<Violation>,
    /// From the question to the first sentence ready for TTS.
    pub first_sentence_ms: Option<f64>,
    pub total_ms: f64,
    pub passages: Vec<usize>,
    pub completion: Option<Completion>,
}

/// Answers `question` from `kb`. `vars` are the script's values the answer
/// may state; `on_speak` gets each sentence as soon as it passes the guard.
pub async fn answer<'a>(
    client: &Client,
    kb: &Knowledge,
    question: &str,
    vars: impl IntoIterator<Item = &'a str>,
    mut on_speak: impl FnMut(&str),
) -> Answer {
    let start = Instant::now();
    let mut a = Answer {
        spoken: Vec::new(),
        fallback: None,
        stopped: None,
        first_sentence_ms: None,
        total_ms: 0.0,
        passages: Vec::new(),
        completion: None,
    };
    let prep = match kb.prepare(question, vars) {
        Ok(p) => p,
        Err(v) => {
            a.fallback = Some(v);
            a.total_ms = start.elapsed().as_secs_f64() * 1e3;
            return a;
        }
    };
    a.passages = prep.passages.clone();
    let mut stream = AnswerStream::new(prep.guard);
    let mut events: Vec<AnswerEvent> = Vec::new();
    let mut take = |evs: Vec<AnswerEvent>, a: &mut Answer| {
        for e in &evs {
            if let AnswerEvent::Speak { text } = e {
                if a.first_sentence_ms.is_none() {
                    a.first_sentence_ms = Some(start.elapsed().as_secs_f64() * 1e3);
                }
                on_speak(text);
            }
        }
        events.extend(evs);
    };
    let res = client
        .stream(&prep.messages, None, |delta| {
            let evs = stream.push(delta);
            take(evs, &mut a);
            if stream.is_over() {
                Flow::Stop
            } else {
                Flow::Continue
            }
        })
        .await;
    match res {
        Ok(c) => {
            let evs = stream.finish();
            take(evs, &mut a);
            a.completion = Some(c);
        }
        Err(e) => {
            let evs = stream.abort(Violation::Model {
                error: e.to_string(),
            });
            take(evs, &mut a);
        }
    }
    for e in events {
        match e {
            AnswerEvent::Speak { text } => a.spoken.push(text),
            AnswerEvent::Fallback { reason } => a.fallback = Some(reason),
            AnswerEvent::Done { stopped } => a.stopped = stopped,
        }
    }
    a.total_ms = start.elapsed().as_secs_f64() * 1e3;
    a
}
