//! Streaming sentence splitter: text deltas in, complete sentences out, so
//! the first sentence can be checked and spoken while the model still writes.
//! Sans-IO; never panics on any input.

/// Cuts model output into sentences at `。！？；!?;…` and newlines, and at `.`
/// followed by whitespace (not inside `3.5` or `e.g`-style runs). A sentence
/// ending in `.` is only released once the character after it has arrived
/// (or [`SentenceSplitter::finish`] is called), so `3.` + `5` is never cut;
/// the other marks release it at once, so TTS can start.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buf: String,
}

fn hard_end(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '；' | '!' | '?' | ';' | '…' | '\n')
}

impl SentenceSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, delta: &str) -> Vec<String> {
        self.buf.push_str(delta);
        let mut out = Vec::new();
        while let Some(end) = self.first_end() {
            let s: String = self.buf[..end].to_string();
            self.buf.drain(..end);
            let t = s.trim();
            if !t.is_empty() {
                out.push(t.to_string());
            }
        }
        out
    }

    /// The rest, once the stream is over.
    pub fn finish(&mut self) -> Option<String> {
        let t = self.buf.trim().to_string();
        self.buf.clear();
        (!t.is_empty()).then_some(t)
    }

    /// Byte index just past the first complete sentence end whose next
    /// character is known.
    fn first_end(&self) -> Option<usize> {
        let mut it = self.buf.char_indices().peekable();
        while let Some((i, c)) = it.next() {
            let next = it.peek().map(|&(_, n)| n);
            let after = i + c.len_utf8();
            if hard_end(c) {
                // Keep closing quotes/brackets and repeated marks with the sentence.
                let mut end = after;
                let mut rest = self.buf[after..].chars();
                for n in rest.by_ref() {
                    if hard_end(n) && n != '\n' || matches!(n, '”' | '’' | '」' | '）' | ')' | '"')
                    {
                        end += n.len_utf8();
                    } else {
                        return Some(end);
                    }
                }
                // Nothing after the marks yet: the sentence is complete (a
                // closing quote arriving later starts the next piece).
                return Some(end);
            }
            if c == '.' {
                match next {
                    None => return None,
                    Some(n) if n.is_whitespace() => return Some(after),
                    _ => {}
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zh_and_en() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("滤芯建议").is_empty());
        assert_eq!(s.push("六个月更换一次。"), vec!["滤芯建议六个月更换一次。"]);
        assert!(s.push("如有").is_empty());
        assert_eq!(
            s.push("疑问请联系客服！\"好"),
            vec!["如有疑问请联系客服！\""]
        );
        assert_eq!(s.finish().as_deref(), Some("好"));
        let mut s = SentenceSplitter::new();
        assert!(s.push("It costs 3.").is_empty());
        assert!(s.push("5 dollars. Next").len() == 1);
        assert_eq!(s.finish().as_deref(), Some("Next"));
    }

    proptest! {
        #[test]
        fn never_loses_text(parts in proptest::collection::vec("[a-z 。！？.\\n3你]{0,10}", 0..10)) {
            let mut s = SentenceSplitter::new();
            let mut got = String::new();
            for p in &parts { for x in s.push(p) { got.push_str(&x); } }
            if let Some(x) = s.finish() { got.push_str(&x); }
            let strip = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
            prop_assert_eq!(strip(&got), strip(&parts.concat()));
        }
    }
}
