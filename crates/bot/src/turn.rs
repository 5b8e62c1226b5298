//! End of turn from the words: does a transcript taken at a pause read as a
//! whole answer, or does it trail off mid-sentence? Sans-IO.
//!
//! The endpointer waits `end_silence_ms` after speech before it calls a turn
//! over; at a shorter pause the bot already has a speculative transcript.
//! Ending the turn there is safe when the words are a confident answer
//! (the NLU decides that) and do not stop on a word that announces more:
//! a conjunction, a filler, an article or a preposition. Those are what
//! people leave hanging when they pause to think ("明天上午，然后……",
//! "yes, but"), so they keep the bot listening.

/// Words after which a Mandarin speaker who pauses usually goes on.
const ZH_TRAILING: &[&str] = &[
    "然后",
    "还有",
    "就是",
    "那个",
    "这个",
    "因为",
    "所以",
    "但是",
    "不过",
    "可是",
    "如果",
    "而且",
    "的话",
    "或者",
    "还是",
    "比如",
    "我想",
    "我要",
    "我觉得",
    "嗯",
    "呃",
    "额",
    "啊",
    "和",
    "跟",
    "在",
    "把",
    "给",
    "要",
    "是",
];

/// English words a turn does not end on.
const EN_TRAILING: &[&str] = &[
    "and", "but", "so", "because", "or", "if", "um", "uh", "er", "erm", "the", "a", "an", "to",
    "with", "my", "our", "your", "i", "i'm", "like", "of", "for", "at", "on", "in", "is", "was",
    "then", "maybe", "well", "actually",
];

/// True when `text` ends on a word that announces more (see the module doc).
/// Punctuation Whisper adds ("然后，", "and...") is ignored.
pub fn trails_off(text: &str) -> bool {
    let t = text.trim_end_matches(|c: char| {
        c.is_whitespace() || c.is_ascii_punctuation() || "，。！？、；：…—～".contains(c)
    });
    if t.is_empty() {
        return true;
    }
    let last_word = t
        .rsplit(|c: char| c.is_whitespace() || c == ',')
        .next()
        .unwrap_or(t)
        .to_lowercase();
    if last_word.is_ascii() {
        return EN_TRAILING.contains(&last_word.as_str());
    }
    ZH_TRAILING.iter().any(|w| t.ends_with(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_answers_end_and_hanging_ones_wait() {
        for done in [
            "好的，没问题。",
            "明天上午在家",
            "不需要了",
            "Yes, that's right.",
            "Tomorrow morning works",
            "no thanks",
        ] {
            assert!(!trails_off(done), "{done}");
        }
        for more in [
            "明天上午，然后",
            "我觉得……",
            "嗯",
            "地址是上海市浦东新区和",
            "Yes, but",
            "I'd like to...",
            "um",
            "Send it to the",
            "",
        ] {
            assert!(trails_off(more), "{more}");
        }
    }
}
