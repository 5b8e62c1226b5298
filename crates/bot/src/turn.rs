//! Turn-taking decisions, sans-IO: does a transcript taken at a pause read as
//! a whole answer, or does it trail off mid-sentence ([`trails_off`])? Do
//! words heard after the bot replied answer that reply, or finish the
//! callee's previous answer ([`is_continuation`])?
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

/// An utterance whose speech began before the first audio of the prompt that
/// replied to the callee's last turn, or this soon after it, cannot answer
/// that prompt: the callee had not heard it yet (nobody answers a question
/// within 100 ms of its first sound). It is the rest of their previous
/// answer, split by a pause longer than the endpointer's ("对，地址没错": "对"
/// was taken as the answer, and "地址没错" began 20 ms before the next
/// question and cut it).
pub const CONTINUATION_MARGIN_MS: u64 = 100;

/// More continuations in a row than this are taken as answers after all: a
/// callee who keeps talking over every prompt must still be heard.
pub const MAX_CONTINUATIONS: u32 = 2;

/// Is an utterance that began at `start_ms` the rest of the callee's previous
/// answer? `reply_start_ms` is when the bot's reply to that answer began to
/// play (None when the latest prompt was no reply: an opening, or a re-prompt
/// after silence, which may be answered at once); `last_end_ms` is when the
/// callee's previous turn ended; `in_a_row` counts continuations since the
/// last utterance taken as an answer.
pub fn is_continuation(
    start_ms: u64,
    reply_start_ms: Option<u64>,
    last_end_ms: Option<u64>,
    in_a_row: u32,
) -> bool {
    match (reply_start_ms, last_end_ms) {
        (Some(reply), Some(last)) => {
            in_a_row < MAX_CONTINUATIONS
                && last <= start_ms
                && start_ms < reply + CONTINUATION_MARGIN_MS
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_begun_before_the_reply_finish_the_last_answer() {
        // "对" ended at 5,000 ms; the reply began at 5,600 ms.
        let (reply, last) = (Some(5_600), Some(5_000));
        // "地址没错" began 20 ms before the reply, or 60 ms into it.
        assert!(is_continuation(5_580, reply, last, 0));
        assert!(is_continuation(5_660, reply, last, 0));
        // Someone who heard the question answers (or barges in) later.
        assert!(!is_continuation(5_700, reply, last, 0));
        assert!(!is_continuation(6_600, reply, last, 0));
        // No reply to a turn (an opening, a re-prompt after silence), or no
        // earlier turn: an answer.
        assert!(!is_continuation(5_580, None, last, 0));
        assert!(!is_continuation(5_580, reply, None, 0));
        // Words that overlap the last turn are not after it.
        assert!(!is_continuation(4_900, reply, last, 0));
        // A callee who keeps talking over every reply is heard on the third.
        assert!(is_continuation(5_580, reply, last, MAX_CONTINUATIONS - 1));
        assert!(!is_continuation(5_580, reply, last, MAX_CONTINUATIONS));
    }

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
