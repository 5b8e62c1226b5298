//! Guardrails for spoken model output: deterministic, sans-IO checks of one
//! sentence at a time against the facts the model was allowed to use (the
//! retrieved passages and the script's variables).
//!
//! A sentence fails when it contains
//! - a number (digits, Chinese numerals, English number words; so prices,
//!   dates, phone numbers and percentages) whose value is not in the facts,
//! - a promise word (保证, 免费, refund, guarantee, ...) or a time word
//!   (明天, 周五, tomorrow, Friday, ...) the facts do not contain,
//! - an identity claim (我是人工, I am a human, my name is, a model's name),
//! - text in the wrong language.
//!
//! False alarms only make the bot say the script's fallback line, so the
//! lists err on the side of refusing.
use std::collections::BTreeSet;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Zh,
    En,
}

impl Lang {
    pub fn as_str(self) -> &'static str {
        match self {
            Lang::Zh => "zh",
            Lang::En => "en",
        }
    }
}

/// Why a sentence (or a whole answer) was not spoken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Violation {
    #[error("number {text:?} is not in the passages or variables")]
    Number { text: String },
    #[error("promise word {word:?} is not in the passages")]
    Promise { word: String },
    #[error("time word {word:?} is not in the passages")]
    Time { word: String },
    #[error("identity claim {text:?}")]
    Identity { text: String },
    #[error("not in the call's language ({expected})")]
    Language { expected: String },
    #[error("answer longer than {max} characters")]
    TooLong { max: usize },
    #[error("the model said it has no answer")]
    NoAnswer,
    #[error("empty answer")]
    Empty,
    #[error("model error: {error}")]
    Model { error: String },
    #[error("no passage matches the question")]
    NoPassage,
}

const PROMISE_ZH: &[&str] = &[
    "保证",
    "一定",
    "承诺",
    "免费",
    "退款",
    "包退",
    "包换",
    "赔偿",
    "赔付",
    "补偿",
    "返现",
    "赠",
    "送您",
    "下单送",
    "买一送",
    "加送",
    "附送",
    "白送",
    "折扣",
    "打折",
    "优惠",
    "最低价",
    "最便宜",
    "绝对",
    "肯定",
    "永久",
    "终身",
    "全额",
    "无条件",
    "不收费",
    "零风险",
    "包邮",
];
/// English promise stems: a word starting with one of these (`guaranteed`).
const PROMISE_EN_STEMS: &[&str] = &[
    "guarantee",
    "promis",
    "refund",
    "compensat",
    "discount",
    "cashback",
    "lifetime",
    "forever",
    "certainly",
    "definitely",
    "absolutely",
    "warrant",
    "reimburs",
];
/// English promise words matched whole.
const PROMISE_EN_WORDS: &[&str] = &["free", "cheapest", "lowest"];

const TIME_ZH: &[&str] = &[
    "今天",
    "明天",
    "后天",
    "昨天",
    "今晚",
    "下周",
    "下星期",
    "本周",
    "这周",
    "下个月",
    "下月",
    "月底",
    "月初",
    "年底",
    "周末",
    "工作日",
    "当天",
    "次日",
    "周一",
    "周二",
    "周三",
    "周四",
    "周五",
    "周六",
    "周日",
    "周天",
    "星期一",
    "星期二",
    "星期三",
    "星期四",
    "星期五",
    "星期六",
    "星期日",
    "星期天",
    "上午",
    "下午",
    "晚上",
    "凌晨",
    "中午",
];
const TIME_EN: &[&str] = &[
    "today",
    "tomorrow",
    "yesterday",
    "tonight",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "weekend",
    "weekday",
    "january",
    "february",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "noon",
    "midnight",
    "morning",
    "afternoon",
    "evening",
];

const IDENTITY_ZH: &[&str] = &[
    "我是",
    "我叫",
    "本人是",
    "我不是机器",
    "我不是ai",
    "我不是人工智能",
    "真人",
    "通义",
    "千问",
    "阿里云",
    "阿里巴巴",
    "语言模型",
    "人工智能助手",
    "ai助手",
];
const IDENTITY_EN_PHRASES: &[&str] = &[
    "my name is",
    "qwen",
    "alibaba",
    "openai",
    "chatgpt",
    "language model",
    "as an ai",
    "as a human",
    "real person",
    "human being",
];
const IDENTITY_EN_AFTER_I_AM: &[&str] = &[
    "a",
    "an",
    "human",
    "real",
    "person",
    "robot",
    "bot",
    "machine",
    "ai",
    "assistant",
    "agent",
    "representative",
    "called",
    "named",
    "your",
    "the",
    "not",
];

fn is_han(c: char) -> bool {
    matches!(c, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

fn zh_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' => 1,
        '二' | '两' => 2,
        '三' => 3,
        '四' => 4,
        '五' => 5,
        '六' => 6,
        '七' => 7,
        '八' => 8,
        '九' => 9,
        _ => return None,
    })
}

fn zh_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        '万' => 10_000,
        '亿' => 100_000_000,
        _ => return None,
    })
}

/// Value of a run of Chinese numerals (`一千二百九十九`, `两万`, `十五`, the colloquial
/// `三千五` = 3500), or a digit string for digit-by-digit readings (`一三八` → `138`).
/// The NLU's parser decides, so the guard and the slot filler read a number the same way.
fn zh_number(run: &[char]) -> Option<String> {
    let s: String = run.iter().collect();
    if !run.iter().any(|&c| zh_unit(c).is_some()) {
        return waihu_nlu::numbers::cn_digit_string(&s);
    }
    match waihu_nlu::numbers::parse_cn(&s) {
        Some(v) => Some(normalise_decimal(&format!("{v}"))),
        // Not a well-formed numeral ("三五千"): keep its digits, so a number the
        // passage does not hold is still a number the check sees.
        None => waihu_nlu::numbers::cn_digit_string(
            &run.iter()
                .filter(|&&c| zh_digit(c).is_some())
                .collect::<String>(),
        ),
    }
}

fn en_number_word(w: &str) -> Option<(u64, bool)> {
    // (value, is a multiplier)
    const SMALL: &[&str] = &[
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: &[&str] = &[
        "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    if let Some(i) = SMALL.iter().position(|&s| s == w) {
        return Some((i as u64, false));
    }
    if let Some(i) = TENS.iter().position(|&s| s == w) {
        return Some((20 + 10 * i as u64, false));
    }
    match w {
        "hundred" => Some((100, true)),
        "thousand" => Some((1000, true)),
        "million" => Some((1_000_000, true)),
        "half" | "dozen" | "double" | "twice" | "triple" => Some((0, false)),
        _ => None,
    }
}

fn normalise_decimal(s: &str) -> String {
    let s: String = s.chars().filter(|&c| c != ',').collect();
    let s = match s.split_once('.') {
        Some((a, b)) => {
            let b = b.trim_end_matches('0');
            if b.is_empty() {
                a.to_string()
            } else {
                format!("{a}.{b}")
            }
        }
        None => s,
    };
    let t = s.trim_start_matches('0');
    if t.is_empty() || t.starts_with('.') {
        format!("0{t}")
    } else {
        t.to_string()
    }
}

/// The numbers a text states, as normalised values (`1,299.00` → `1299`,
/// `一千二百九十九` → `1299`, `3万` → `30000`, `twenty five` → `25`). A lone
/// `一`/`one` is not counted (一下, 一定, "the one you ordered").
pub fn numbers(text: &str) -> Vec<String> {
    let chars: Vec<char> = text
        .chars()
        .map(|c| match c {
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '．' => '.',
            '，' => '，',
            _ => c,
        })
        .collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_digit()
                    || (matches!(chars[i], '.' | ',')
                        && i + 1 < chars.len()
                        && chars[i + 1].is_ascii_digit()))
            {
                i += 1;
            }
            let raw: String = chars[start..i].iter().collect();
            let mut v = normalise_decimal(&raw);
            if let Some(u) = chars.get(i).and_then(|&c| zh_unit(c).filter(|&u| u >= 100)) {
                if let Ok(n) = v.parse::<f64>() {
                    v = normalise_decimal(&format!("{}", n * u as f64));
                }
                i += 1;
            }
            out.push(v);
            continue;
        }
        if zh_digit(c).is_some() || zh_unit(c).is_some() {
            let start = i;
            while i < chars.len() && (zh_digit(chars[i]).is_some() || zh_unit(chars[i]).is_some()) {
                i += 1;
            }
            let run = &chars[start..i];
            if run == ['一'] || run == ['万'] || run == ['千'] || run == ['百'] || run == ['亿']
            {
                continue;
            }
            if let Some(v) = zh_number(run) {
                if !v.is_empty() {
                    out.push(v);
                }
            }
            continue;
        }
        if c.is_ascii_alphabetic() {
            // English number words: a run of them is one number.
            let mut words = Vec::new();
            let mut j = i;
            loop {
                let ws = j;
                while j < chars.len() && chars[j].is_ascii_alphabetic() {
                    j += 1;
                }
                let w: String = chars[ws..j].iter().collect::<String>().to_ascii_lowercase();
                if en_number_word(&w).is_some() || (!words.is_empty() && w == "and") {
                    words.push(w);
                    i = j;
                    while j < chars.len() && matches!(chars[j], ' ' | '-') {
                        j += 1;
                    }
                    if j < chars.len() && chars[j].is_ascii_alphabetic() {
                        continue;
                    }
                }
                break;
            }
            if words.is_empty() {
                while i < chars.len() && chars[i].is_ascii_alphanumeric() {
                    i += 1;
                }
                continue;
            }
            while words.last().is_some_and(|w| w == "and") {
                words.pop();
            }
            if words.len() == 1 && words[0] == "one" {
                continue;
            }
            let (mut total, mut cur) = (0u64, 0u64);
            for w in &words {
                if let Some((v, mult)) = en_number_word(w) {
                    if mult {
                        cur = cur.max(1).saturating_mul(v);
                        if v >= 1000 {
                            total = total.saturating_add(cur);
                            cur = 0;
                        }
                    } else {
                        cur = cur.saturating_add(v);
                    }
                }
            }
            out.push((total + cur).to_string());
            continue;
        }
        i += 1;
    }
    out
}

fn en_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .replace(['’', '‘'], "'")
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
        .map(|w| match w {
            "i'm" | "im" => "i am".to_string(),
            _ => w.trim_matches('\'').to_string(),
        })
        .flat_map(|w| w.split(' ').map(str::to_string).collect::<Vec<_>>())
        .collect()
}

/// What the model may state: the facts of the retrieved passages and the
/// script's variables.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    numbers: BTreeSet<String>,
    text: String,
    words: BTreeSet<String>,
}

impl Facts {
    pub fn new<S: AsRef<str>>(texts: impl IntoIterator<Item = S>) -> Facts {
        let mut f = Facts::default();
        for t in texts {
            let t = t.as_ref();
            f.numbers.extend(numbers(t));
            f.text.push_str(&t.to_lowercase());
            f.text.push('\n');
            f.words.extend(en_words(t));
        }
        f
    }

    fn has_stem(&self, stem: &str) -> bool {
        self.words.iter().any(|w| w.starts_with(stem))
    }
}

/// Checks sentences of one answer.
#[derive(Debug, Clone)]
pub struct Guard {
    pub lang: Lang,
    pub facts: Facts,
    /// Longest answer in characters (all sentences together).
    pub max_chars: usize,
}

impl Guard {
    pub fn new(lang: Lang, facts: Facts) -> Guard {
        let max_chars = match lang {
            Lang::Zh => 120,
            Lang::En => 320,
        };
        Guard {
            lang,
            facts,
            max_chars,
        }
    }

    /// The first rule `sentence` breaks, if any.
    pub fn check(&self, sentence: &str) -> Result<(), Violation> {
        let lower = sentence.to_lowercase();
        if lower.contains("no_answer") || lower.contains("no answer") {
            return Err(Violation::NoAnswer);
        }
        let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
        for w in IDENTITY_ZH {
            if compact.contains(w) {
                return Err(Violation::Identity {
                    text: sentence.to_string(),
                });
            }
        }
        let words = en_words(sentence);
        let joined = words.join(" ");
        for p in IDENTITY_EN_PHRASES {
            if format!(" {joined} ").contains(&format!(" {p} ")) {
                return Err(Violation::Identity {
                    text: sentence.to_string(),
                });
            }
        }
        for win in words.windows(3) {
            if win[0] == "i" && win[1] == "am" && IDENTITY_EN_AFTER_I_AM.contains(&win[2].as_str())
            {
                let not_sure = win[2] == "not";
                if !not_sure
                    || words.iter().any(|w| {
                        ["human", "robot", "bot", "machine", "ai", "person"].contains(&w.as_str())
                    })
                {
                    return Err(Violation::Identity {
                        text: sentence.to_string(),
                    });
                }
            }
        }
        self.check_language(sentence)?;
        for n in numbers(sentence) {
            if !self.facts.numbers.contains(&n) {
                return Err(Violation::Number { text: n });
            }
        }
        for w in PROMISE_ZH {
            if compact.contains(w) && !self.facts.text.contains(w) {
                return Err(Violation::Promise {
                    word: w.to_string(),
                });
            }
        }
        for w in TIME_ZH {
            if compact.contains(w) && !self.facts.text.contains(w) {
                return Err(Violation::Time {
                    word: w.to_string(),
                });
            }
        }
        for w in &words {
            let promise = PROMISE_EN_STEMS
                .iter()
                .find(|s| w.starts_with(*s))
                .filter(|s| !self.facts.has_stem(s))
                .map(|s| s.to_string())
                .or_else(|| {
                    PROMISE_EN_WORDS
                        .iter()
                        .find(|p| *p == w && !self.facts.words.contains(w))
                        .map(|p| p.to_string())
                });
            if let Some(word) = promise {
                return Err(Violation::Promise { word });
            }
            if TIME_EN.contains(&w.as_str()) && !self.facts.words.contains(w) {
                return Err(Violation::Time { word: w.clone() });
            }
        }
        Ok(())
    }

    fn check_language(&self, s: &str) -> Result<(), Violation> {
        let han = s.chars().filter(|&c| is_han(c)).count();
        let latin = s.chars().filter(|c| c.is_ascii_alphabetic()).count();
        // Other scripts (kana, hangul, Cyrillic...) are never right.
        let other = s
            .chars()
            .filter(|&c| c.is_alphabetic() && !is_han(c) && !c.is_ascii_alphabetic())
            .count();
        let ok = match self.lang {
            // Latin letters count a third: product names (HEPA) inside Chinese are fine.
            Lang::Zh => other == 0 && (han + latin == 0 || han * 3 >= latin),
            Lang::En => other == 0 && han == 0,
        };
        if ok {
            Ok(())
        } else {
            Err(Violation::Language {
                expected: self.lang.as_str().into(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `waihu llm ask --json` and the bench print reasons as JSON objects.
    #[test]
    fn every_violation_serialises_with_its_kind() {
        let all = [
            Violation::Number { text: "99".into() },
            Violation::Promise {
                word: "免费".into(),
            },
            Violation::Time {
                word: "明天".into(),
            },
            Violation::Identity {
                text: "我是".into(),
            },
            Violation::Language {
                expected: "zh".into(),
            },
            Violation::TooLong { max: 120 },
            Violation::NoAnswer,
            Violation::Empty,
            Violation::Model {
                error: "timeout".into(),
            },
            Violation::NoPassage,
        ];
        for v in all {
            let j = serde_json::to_value(&v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert!(j["kind"].is_string(), "{j}");
        }
    }

    #[test]
    fn numbers_in_all_their_forms() {
        assert_eq!(
            numbers("价格是1,299.00元，电话400-820-8820"),
            vec!["1299", "400", "820", "8820"]
        );
        assert_eq!(
            numbers("一千二百九十九元，两年保修，百分之五十"),
            vec!["1299", "2", "50"]
        );
        assert_eq!(
            numbers("3万 and twenty five dollars, the one"),
            vec!["30000", "25"]
        );
        assert_eq!(numbers("稍等一下，一定"), Vec::<String>::new());
        assert_eq!(numbers("十五天"), vec!["15"]);
        assert_eq!(numbers("一三八"), vec!["138"]);
        // Colloquial abbreviations, read as the NLU reads them.
        assert_eq!(numbers("三千五"), vec!["3500"]);
        assert_eq!(numbers("两万五千元"), vec!["25000"]);
        assert_eq!(numbers("一百零五"), vec!["105"]);
    }

    #[test]
    fn an_answer_in_colloquial_numerals_matches_the_passage_digits() {
        let g = guard(Lang::Zh, "这款净水器售价3500元。");
        assert!(g.check("这款净水器售价三千五。").is_ok());
        assert!(matches!(
            g.check("这款净水器售价三千三。"),
            Err(Violation::Number { .. })
        ));
    }

    fn guard(lang: Lang, passage: &str) -> Guard {
        Guard::new(lang, Facts::new([passage]))
    }

    #[test]
    fn invented_facts_are_caught() {
        let g = guard(
            Lang::Zh,
            "滤芯建议每6个月更换一次，滤芯价格199元。整机保修两年。",
        );
        assert!(g.check("滤芯建议每六个月更换一次。").is_ok());
        assert!(g.check("滤芯价格是一百九十九元。").is_ok());
        assert!(matches!(
            g.check("滤芯只要99元。"),
            Err(Violation::Number { .. })
        ));
        assert!(matches!(
            g.check("保修三年。"),
            Err(Violation::Number { .. })
        ));
        assert!(matches!(
            g.check("现在购买可以免费换滤芯。"),
            Err(Violation::Promise { .. })
        ));
        assert!(matches!(
            g.check("明天就能送到。"),
            Err(Violation::Time { .. })
        ));
        assert!(matches!(
            g.check("我是人工客服小王。"),
            Err(Violation::Identity { .. })
        ));
        assert!(matches!(
            g.check("The filter lasts six months."),
            Err(Violation::Language { .. })
        ));
        assert!(matches!(
            g.check("我们保证效果。"),
            Err(Violation::Promise { .. })
        ));
        assert!(matches!(g.check("NO_ANSWER"), Err(Violation::NoAnswer)));
    }

    #[test]
    fn english() {
        let g = guard(
            Lang::En,
            "Replace the filter every 6 months. A filter costs $19.90. Refunds within 7 days.",
        );
        assert!(g.check("Replace the filter every six months.").is_ok());
        assert!(g.check("A filter costs 19.9 dollars.").is_ok());
        assert!(g.check("You can get a refund within seven days.").is_ok());
        assert!(g.check("I am not sure about that.").is_ok());
        assert!(matches!(
            g.check("It is free for you."),
            Err(Violation::Promise { .. })
        ));
        assert!(matches!(
            g.check("We guarantee it works."),
            Err(Violation::Promise { .. })
        ));
        assert!(matches!(
            g.check("It costs $25."),
            Err(Violation::Number { .. })
        ));
        assert!(matches!(
            g.check("I'm a real person, not a bot."),
            Err(Violation::Identity { .. })
        ));
        assert!(matches!(
            g.check("I am Qwen, created by Alibaba Cloud."),
            Err(Violation::Identity { .. })
        ));
        assert!(matches!(
            g.check("It arrives tomorrow."),
            Err(Violation::Time { .. })
        ));
        assert!(matches!(
            g.check("滤芯六个月换一次。"),
            Err(Violation::Language { .. })
        ));
        assert!(matches!(
            g.check("Call 13800138000 for help."),
            Err(Violation::Number { .. })
        ));
        assert!(g.check("That is a 50% discount.").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}", p in "\\PC{0,80}") {
            let g = Guard::new(Lang::Zh, Facts::new([p.as_str()]));
            let _ = g.check(&s);
            let g = Guard::new(Lang::En, Facts::new([p.as_str()]));
            let _ = g.check(&s);
        }

        #[test]
        fn any_number_not_in_facts_is_refused(n in 2u64..10_000_000) {
            let g = guard(Lang::Zh, "滤芯建议定期更换。");
            let s = format!("价格是{n}元。");
            prop_assert!(g.check(&s).is_err());
            let g = guard(Lang::En, "Replace the filter regularly.");
            let s = format!("It costs {n} dollars.");
            prop_assert!(g.check(&s).is_err());
        }
    }
}
