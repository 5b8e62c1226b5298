//! Server-sent events as the OpenAI-compatible chat-completions stream uses
//! them: a sans-IO parser fed raw bytes as they arrive (split anywhere, even
//! inside a UTF-8 character or a `\r\n`), yielding each event's `data:`
//! payload, then [`chunk_delta`] to read one `chat.completion.chunk`.
//!
//! The stream comes from outside the process: nothing here panics, lines and
//! events are bounded, and every error says what was wrong.
use serde::Deserialize;

/// Longest line or event payload accepted (a chunk is normally < 1 KiB).
pub const MAX_LINE: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseEvent {
    /// The `data:` payload of one event (multi-line data joined by `\n`).
    Data(String),
    /// `data: [DONE]`: the end of the completion.
    Done,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("SSE line longer than {MAX_LINE} bytes (is this an event stream?)")]
    LineTooLong,
    #[error("SSE line {line} is not UTF-8")]
    NotUtf8 { line: u64 },
}

/// Incremental `text/event-stream` parser (WHATWG rules for `data:`, comments
/// and blank-line dispatch; `event:`, `id:` and `retry:` are ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    data: Option<String>,
    line_no: u64,
    /// The previous byte was a `\r` that ended a line (a following `\n` belongs to it).
    after_cr: bool,
    failed: bool,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed bytes; returns the events completed by them. After an error the
    /// parser stays failed (the stream cannot be trusted any more).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        if self.failed {
            return Err(SseError::LineTooLong);
        }
        for &b in bytes {
            if self.after_cr {
                self.after_cr = false;
                if b == b'\n' {
                    continue;
                }
            }
            if b == b'\n' || b == b'\r' {
                self.after_cr = b == b'\r';
                let line = std::mem::take(&mut self.buf);
                self.line_no += 1;
                if let Err(e) = self.line(&line, &mut out) {
                    self.failed = true;
                    return Err(e);
                }
            } else {
                if self.buf.len() >= MAX_LINE {
                    self.failed = true;
                    return Err(SseError::LineTooLong);
                }
                self.buf.push(b);
            }
        }
        Ok(out)
    }

    /// The stream ended: an event not yet terminated by a blank line is
    /// dispatched (servers often close right after the last `data:` line).
    pub fn finish(&mut self) -> Result<Vec<SseEvent>, SseError> {
        let mut out = Vec::new();
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line_no += 1;
            self.line(&line, &mut out)?;
        }
        self.dispatch(&mut out);
        Ok(out)
    }

    fn line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        let line =
            std::str::from_utf8(line).map_err(|_| SseError::NotUtf8 { line: self.line_no })?;
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        if field == "data" {
            match &mut self.data {
                Some(d) => {
                    if d.len() + value.len() + 1 > MAX_LINE {
                        return Err(SseError::LineTooLong);
                    }
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if let Some(d) = self.data.take() {
            if d.trim() == "[DONE]" {
                out.push(SseEvent::Done);
            } else {
                out.push(SseEvent::Data(d));
            }
        }
    }
}

/// What one `chat.completion.chunk` adds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delta {
    /// New answer text (may be empty: role-only or final chunks).
    pub content: String,
    /// `stop`, `length`, ... on the last chunk.
    pub finish_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("stream chunk is not JSON ({0}): {1:?}")]
    NotJson(String, String),
    #[error("the server reported an error in the stream: {0}")]
    Server(String),
}

#[derive(Deserialize)]
struct RawChunk {
    #[serde(default)]
    choices: Vec<RawChoice>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawChoice {
    #[serde(default)]
    delta: Option<RawDelta>,
    /// Non-streaming servers that stream anyway sometimes send `message`.
    #[serde(default)]
    message: Option<RawDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct RawDelta {
    #[serde(default)]
    content: Option<String>,
}

/// Reads one `data:` payload of a chat-completions stream. Unknown fields
/// are ignored; a chunk without choices adds nothing.
pub fn chunk_delta(data: &str) -> Result<Delta, ChunkError> {
    let raw: RawChunk = serde_json::from_str(data).map_err(|e| {
        let mut shown: String = data.chars().take(80).collect();
        if shown.len() < data.len() {
            shown.push('…');
        }
        ChunkError::NotJson(e.to_string(), shown)
    })?;
    if let Some(e) = raw.error {
        let msg = e
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Err(ChunkError::Server(msg));
    }
    let mut d = Delta::default();
    if let Some(c) = raw.choices.into_iter().next() {
        if let Some(t) = c.delta.or(c.message).and_then(|d| d.content) {
            d.content = t;
        }
        d.finish_reason = c.finish_reason;
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(p: &mut SseParser, s: &[u8]) -> Vec<SseEvent> {
        let mut v = p.push(s).unwrap();
        v.extend(p.finish().unwrap());
        v
    }

    #[test]
    fn openai_stream() {
        let s = b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\n\n: keep-alive\n\ndata: {\"choices\":[{\"delta\":{\"content\":\"\xe4\xbd\xa0\xe5\xa5\xbd\"}}]}\r\n\r\ndata: [DONE]\n\n";
        let ev = all(&mut SseParser::new(), s);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[2], SseEvent::Done);
        let SseEvent::Data(d) = &ev[1] else { panic!() };
        assert_eq!(chunk_delta(d).unwrap().content, "你好");
        let SseEvent::Data(d) = &ev[0] else { panic!() };
        assert_eq!(chunk_delta(d).unwrap().content, "");
    }

    #[test]
    fn multi_line_data_and_no_trailing_blank() {
        let ev = all(&mut SseParser::new(), b"data: a\ndata: b\n\ndata:c");
        assert_eq!(
            ev,
            vec![SseEvent::Data("a\nb".into()), SseEvent::Data("c".into())]
        );
    }

    #[test]
    fn errors_are_clear() {
        assert!(matches!(chunk_delta("{oops"), Err(ChunkError::NotJson(..))));
        let e = chunk_delta(r#"{"error":{"message":"model overloaded"}}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the server reported an error in the stream: model overloaded"
        );
        let mut p = SseParser::new();
        assert_eq!(
            p.push(b"data: \xff\xfe\n"),
            Err(SseError::NotUtf8 { line: 1 })
        );
        let mut p = SseParser::new();
        assert_eq!(
            p.push(&vec![b'a'; MAX_LINE + 1]),
            Err(SseError::LineTooLong)
        );
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let mut p = SseParser::new();
            if let Ok(evs) = p.push(&bytes) {
                for e in evs {
                    if let SseEvent::Data(d) = e { let _ = chunk_delta(&d); }
                }
            }
            let _ = p.finish();
        }

        #[test]
        fn split_anywhere_same_events(
            texts in proptest::collection::vec("[a-z你好 {}\":,]{0,12}", 0..8),
            cuts in proptest::collection::vec(0usize..400, 0..6),
            crlf in any::<bool>(),
        ) {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut s = String::new();
            for t in &texts { s.push_str(&format!("data: {t}{nl}{nl}")); }
            s.push_str(&format!("data: [DONE]{nl}{nl}"));
            let bytes = s.as_bytes();
            let whole = all(&mut SseParser::new(), bytes);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort();
            let mut p = SseParser::new();
            let mut got = Vec::new();
            let mut at = 0;
            for c in cuts { got.extend(p.push(&bytes[at..c]).unwrap()); at = c; }
            got.extend(p.push(&bytes[at..]).unwrap());
            got.extend(p.finish().unwrap());
            prop_assert_eq!(&got, &whole);
            prop_assert_eq!(got.len(), texts.len() + 1);
            for (e, t) in got.iter().zip(&texts) {
                prop_assert_eq!(e, &SseEvent::Data(t.clone()));
            }
        }
    }
}
