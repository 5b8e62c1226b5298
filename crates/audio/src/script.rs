//! Splitting prompt text into runs of one language and into sentences, so each
//! piece goes to the voice that can read it and the first sentence can play
//! while the rest is still being synthesised.
use serde::{Deserialize, Serialize};

/// A language a TTS voice speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// What the caller says about the text's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LangChoice {
    /// Split by script; text without letters (digits only) is read in the
    /// language that has more letters in the prompt, Mandarin on a tie.
    #[default]
    Auto,
    /// Han runs in Mandarin, Latin runs in English, everything else in Mandarin.
    Zh,
    /// Han runs in Mandarin, Latin runs in English, everything else in English.
    En,
}

impl std::str::FromStr for LangChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(LangChoice::Auto),
            "zh" | "cmn" | "zh-cn" => Ok(LangChoice::Zh),
            "en" | "en-us" | "en-gb" => Ok(LangChoice::En),
            other => Err(format!(
                "未知语言 / unknown language `{other}` (auto, zh, en)"
            )),
        }
    }
}

/// A piece of text in one language, at most one sentence long.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chunk {
    pub lang: Lang,
    pub text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Han,
    Latin,
    Neutral,
}

fn is_han(c: char) -> bool {
    matches!(c as u32,
        0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xF900..=0xFAFF | 0x20000..=0x2A6DF | 0x2A700..=0x2EBEF | 0x3007)
}

fn class(c: char) -> Class {
    if is_han(c) {
        Class::Han
    } else if c.is_alphabetic() {
        // Any other letters (Latin, Greek, Cyrillic) go to the English voice,
        // which at least spells them; the Mandarin voice would read Latin as pinyin.
        Class::Latin
    } else {
        Class::Neutral
    }
}

/// Full-width ASCII forms and the ideographic space to their ASCII
/// equivalents, so digits typed in a Chinese IME are read as numbers.
pub fn normalize(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            _ => c,
        })
        .collect()
}

fn lang_of(c: Class) -> Option<Lang> {
    match c {
        Class::Han => Some(Lang::Zh),
        Class::Latin => Some(Lang::En),
        Class::Neutral => None,
    }
}

/// Split text into maximal runs of one script. Digits, spaces and punctuation
/// join the run before them (so "订单12345" is read in Mandarin, "order 12345"
/// in English), or the run after them at the start of the text.
pub fn split_runs(text: &str, choice: LangChoice) -> Vec<Chunk> {
    let text = normalize(text);
    let primary = match choice {
        LangChoice::Zh => Lang::Zh,
        LangChoice::En => Lang::En,
        LangChoice::Auto => {
            let (mut han, mut latin) = (0usize, 0usize);
            for c in text.chars() {
                match class(c) {
                    Class::Han => han += 1,
                    Class::Latin => latin += 1,
                    Class::Neutral => {}
                }
            }
            if latin > han {
                Lang::En
            } else {
                Lang::Zh
            }
        }
    };
    let mut runs: Vec<Chunk> = Vec::new();
    let mut pending = String::new();
    for c in text.chars() {
        match lang_of(class(c)) {
            None => pending.push(c),
            Some(lang) => match runs.last_mut() {
                Some(last) if last.lang == lang => {
                    last.text.push_str(&pending);
                    last.text.push(c);
                    pending.clear();
                }
                Some(last) => {
                    // Neutral text between two scripts: trailing punctuation and
                    // digits belong to the run they follow.
                    last.text.push_str(&pending);
                    pending.clear();
                    runs.push(Chunk {
                        lang,
                        text: c.to_string(),
                    });
                }
                None => {
                    let mut t = std::mem::take(&mut pending);
                    t.push(c);
                    runs.push(Chunk { lang, text: t });
                }
            },
        }
    }
    match runs.last_mut() {
        Some(last) => last.text.push_str(&pending),
        None => runs.push(Chunk {
            lang: primary,
            text: pending,
        }),
    }
    runs.retain(|r| r.text.chars().any(|c| c.is_alphanumeric()));
    for r in &mut runs {
        r.text = r.text.trim().to_string();
    }
    runs
}

fn ends_sentence(c: char, next: Option<char>) -> bool {
    match c {
        '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n' | '…' => true,
        // A full stop ends a sentence only before a space or the end: not in 9.5 or e.g.
        '.' => next.is_none_or(|n| n.is_whitespace()),
        _ => false,
    }
}

/// Split a run into sentences (each keeps its punctuation, which shapes the
/// intonation); pieces without letters or digits are dropped.
pub fn split_sentences(chunk: &Chunk) -> Vec<Chunk> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let chars: Vec<char> = chunk.text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        cur.push(c);
        if ends_sentence(c, chars.get(i + 1).copied()) {
            push_piece(&mut out, chunk.lang, &mut cur);
        }
    }
    push_piece(&mut out, chunk.lang, &mut cur);
    out
}

fn push_piece(out: &mut Vec<Chunk>, lang: Lang, cur: &mut String) {
    let t = cur.trim();
    if t.chars().any(|c| c.is_alphanumeric()) {
        out.push(Chunk {
            lang,
            text: t.to_string(),
        });
    }
    cur.clear();
}

/// The unit of synthesis and caching: script runs split into sentences.
pub fn chunks(text: &str, choice: LangChoice) -> Vec<Chunk> {
    split_runs(text, choice)
        .iter()
        .flat_map(split_sentences)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(lang: Lang, t: &str) -> Chunk {
        Chunk {
            lang,
            text: t.to_string(),
        }
    }

    #[test]
    fn splits_han_and_latin_runs() {
        let runs = split_runs(
            "您好，您的iPhone 15订单已发货。Thank you!",
            LangChoice::Auto,
        );
        assert_eq!(
            runs,
            vec![
                c(Lang::Zh, "您好,您的"),
                c(Lang::En, "iPhone 15"),
                c(Lang::Zh, "订单已发货。"),
                c(Lang::En, "Thank you!")
            ]
        );
    }

    #[test]
    fn digits_follow_the_run_before_them() {
        assert_eq!(
            split_runs("订单12345", LangChoice::Auto),
            vec![c(Lang::Zh, "订单12345")]
        );
        assert_eq!(
            split_runs("order 12345", LangChoice::Auto),
            vec![c(Lang::En, "order 12345")]
        );
        // Leading digits join the first run with letters.
        assert_eq!(
            split_runs("3 items", LangChoice::Auto),
            vec![c(Lang::En, "3 items")]
        );
    }

    #[test]
    fn text_without_letters_uses_the_primary_language() {
        assert_eq!(
            split_runs("12345", LangChoice::Auto),
            vec![c(Lang::Zh, "12345")]
        );
        assert_eq!(
            split_runs("12345", LangChoice::En),
            vec![c(Lang::En, "12345")]
        );
        assert!(split_runs("，。!", LangChoice::Auto).is_empty());
        assert!(split_runs("", LangChoice::Auto).is_empty());
    }

    #[test]
    fn full_width_digits_are_normalised() {
        assert_eq!(
            split_runs("共１２３元", LangChoice::Auto),
            vec![c(Lang::Zh, "共123元")]
        );
    }

    #[test]
    fn sentences_split_on_terminal_punctuation_not_decimals() {
        let ch = chunks("金额99.5元。请确认！Thanks. Bye", LangChoice::Auto);
        assert_eq!(
            ch,
            vec![
                c(Lang::Zh, "金额99.5元。"),
                c(Lang::Zh, "请确认!"),
                c(Lang::En, "Thanks."),
                c(Lang::En, "Bye")
            ]
        );
    }

    #[test]
    fn lang_choice_parses() {
        assert_eq!("ZH".parse::<LangChoice>().unwrap(), LangChoice::Zh);
        assert!("fr".parse::<LangChoice>().is_err());
    }
}
