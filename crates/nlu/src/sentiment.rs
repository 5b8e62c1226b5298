//! Lexicon-based sentiment for phone-call language, Chinese and English.
//!
//! Written by hand for what callees say to an outbound call rather than for
//! product reviews: a polite refusal ("不需要 谢谢") is neutral, being pestered
//! ("又打来了", "别再打了") is negative, abuse and threats ("滚", "再打我就报警")
//! set the anger flag the dialog uses to back off or hand over.
use waihu_core::nlu::{Sentiment, SentimentLabel};

use crate::text::normalize;

/// (word, weight). Negative weights are negative sentiment.
const ZH: &[(&str, f32)] = &[
    // positive
    ("谢谢", 0.6),
    ("感谢", 0.8),
    ("多谢", 0.7),
    ("好的", 0.4),
    ("不错", 0.8),
    ("挺好", 0.8),
    ("很好", 0.9),
    ("太好了", 1.2),
    ("满意", 0.9),
    ("不感兴趣", 0.0),
    ("没兴趣", 0.0),
    ("不需要", 0.0),
    ("不好意思", 0.0),
    ("不好", -0.6),
    ("不客气", 0.3),
    ("喜欢", 0.8),
    ("开心", 1.0),
    ("高兴", 1.0),
    ("方便", 0.4),
    ("划算", 0.8),
    ("优惠", 0.4),
    ("没问题", 0.6),
    ("可以", 0.3),
    ("感兴趣", 0.7),
    ("有兴趣", 0.7),
    ("辛苦了", 0.8),
    ("棒", 1.0),
    ("靠谱", 0.8),
    ("放心", 0.6),
    ("愿意", 0.5),
    ("好呀", 0.6),
    ("好啊", 0.5),
    ("行啊", 0.4),
    ("太棒", 1.2),
    ("实惠", 0.7),
    ("贴心", 0.9),
    ("周到", 0.8),
    ("热情", 0.6),
    ("专业", 0.5),
    // negative
    ("烦", -1.0),
    ("讨厌", -1.1),
    ("骚扰", -1.2),
    ("投诉", -1.0),
    ("差", -0.9),
    ("太差", -1.3),
    ("坑", -1.1),
    ("骗", -1.2),
    ("失望", -1.0),
    ("生气", -1.2),
    ("不满意", -1.1),
    ("垃圾", -1.4),
    ("恶心", -1.3),
    ("郁闷", -0.8),
    ("麻烦", -0.5),
    ("又打", -0.9),
    ("又是你们", -0.9),
    ("天天打", -1.1),
    ("老打", -1.0),
    ("别再打", -0.8),
    ("不要再打", -0.8),
    ("没用", -0.8),
    ("乱扣", -1.2),
    ("扣费", -0.5),
    ("问题", -0.3),
    ("没解决", -0.9),
    ("太贵", -0.7),
    ("贵", -0.4),
    ("慢", -0.3),
    ("倒霉", -0.9),
    ("难受", -0.8),
    ("着急", -0.7),
    ("急", -0.4),
    ("担心", -0.6),
    ("害怕", -0.8),
    ("不放心", -0.7),
    ("乱收费", -1.2),
    ("欺诈", -1.4),
    ("忽悠", -1.1),
    ("态度", -0.3),
    ("过分", -1.2),
    ("无语", -0.9),
    ("受不了", -1.2),
    ("不耐烦", -1.0),
    ("催", -0.5),
    // abuse and threats (also anger, below)
    ("滚", -1.6),
    ("有病", -1.5),
    ("神经病", -1.6),
    ("去死", -2.0),
    ("妈的", -1.6),
    ("他妈", -1.6),
    ("傻逼", -2.0),
    ("骗子", -1.5),
    ("混蛋", -1.6),
    ("报警", -1.2),
    ("找死", -1.8),
    ("闭嘴", -1.5),
    ("烦死了", -1.6),
    ("王八蛋", -1.8),
    ("脑子有问题", -1.6),
    ("告你们", -1.3),
    ("举报", -1.0),
    ("拉黑", -0.8),
    ("卧槽", -1.2),
    ("我靠", -1.0),
];

const ZH_ANGER: &[&str] = &[
    "滚",
    "有病",
    "神经病",
    "去死",
    "妈的",
    "他妈",
    "傻逼",
    "混蛋",
    "报警",
    "找死",
    "闭嘴",
    "烦死了",
    "王八蛋",
    "脑子有问题",
    "告你们",
    "卧槽",
    "我靠",
    "生气",
    "受不了",
    "骗子",
    "别烦我",
    "气死",
];

const EN: &[(&str, f32)] = &[
    ("thanks", 0.6),
    ("thank", 0.6),
    ("great", 0.9),
    ("good", 0.5),
    ("nice", 0.6),
    ("happy", 0.9),
    ("love", 1.0),
    ("appreciate", 0.8),
    ("perfect", 0.9),
    ("awesome", 1.0),
    ("wonderful", 1.0),
    ("glad", 0.8),
    ("excellent", 1.0),
    ("helpful", 0.8),
    ("interested", 0.5),
    ("cool", 0.5),
    ("fine", 0.2),
    ("pleasure", 0.8),
    ("lovely", 0.9),
    ("bad", -0.8),
    ("terrible", -1.3),
    ("awful", -1.3),
    ("worst", -1.4),
    ("hate", -1.3),
    ("annoying", -1.1),
    ("annoyed", -1.1),
    ("ridiculous", -1.1),
    ("useless", -1.1),
    ("scam", -1.3),
    ("scammers", -1.4),
    ("rude", -1.1),
    ("horrible", -1.3),
    ("angry", -1.3),
    ("upset", -1.0),
    ("disappointed", -1.0),
    ("unacceptable", -1.2),
    ("frustrated", -1.1),
    ("frustrating", -1.1),
    ("sick", -0.8),
    ("fed", -0.6),
    ("waste", -0.9),
    ("complaint", -0.9),
    ("complain", -0.9),
    ("harassing", -1.3),
    ("harassment", -1.3),
    ("stop", -0.4),
    ("again", -0.2),
    ("problem", -0.4),
    ("expensive", -0.6),
    ("overcharged", -1.1),
    ("cheated", -1.3),
    ("broken", -0.8),
    ("late", -0.4),
    ("worried", -0.7),
    ("nervous", -0.7),
    ("hurry", -0.4),
    ("busy", -0.2),
    ("damn", -1.4),
    ("hell", -1.2),
    ("fuck", -2.0),
    ("fucking", -2.0),
    ("shit", -1.6),
    ("stupid", -1.4),
    ("idiot", -1.6),
    ("idiots", -1.6),
    ("sue", -1.2),
    ("police", -1.0),
    ("pissed", -1.6),
    ("crap", -1.2),
];

const EN_ANGER: &[&str] = &[
    "damn",
    "hell",
    "fuck",
    "fucking",
    "shit",
    "stupid",
    "idiot",
    "idiots",
    "sue",
    "police",
    "pissed",
    "crap",
    "angry",
    "shut up",
    "screw you",
    "leave me alone",
    "harassing",
    "harassment",
    "sick of",
    "fed up",
];

const ZH_NEGATORS: &[char] = &['不', '没', '别', '无', '非'];
const ZH_INTENSIFIERS: &[&str] = &["很", "太", "非常", "特别", "真", "超", "挺", "极其", "实在"];
const EN_NEGATORS: &[&str] = &[
    "not", "no", "never", "dont", "didnt", "isnt", "wasnt", "cant", "wont", "aint", "doesnt",
];
const EN_INTENSIFIERS: &[&str] = &[
    "very",
    "so",
    "really",
    "too",
    "extremely",
    "totally",
    "absolutely",
];

/// Sentiment of one utterance: label, score in -1..=1 and an anger flag.
pub fn analyze(text: &str) -> Sentiment {
    let norm = normalize(text);
    let exclaim = text.contains('!') || text.contains('！');
    let (mut raw, mut angry, mut intense_neg) = (0.0f32, false, false);
    let (r, a, i) = score_zh(&norm);
    raw += r;
    angry |= a;
    intense_neg |= i;
    let (r, a, i) = score_en(&norm);
    raw += r;
    angry |= a;
    intense_neg |= i;
    let score = (raw / 1.5).tanh();
    angry |= score <= -0.6 && (exclaim || intense_neg);
    let label = if score <= -0.2 {
        SentimentLabel::Negative
    } else if score >= 0.2 {
        SentimentLabel::Positive
    } else {
        SentimentLabel::Neutral
    };
    Sentiment {
        label,
        score: (score * 1000.0).round() / 1000.0,
        angry,
    }
}

/// Longest-match scan over the Chinese lexicon, with negation and intensity
/// looked up in the characters just before each match.
fn score_zh(s: &str) -> (f32, bool, bool) {
    let chars: Vec<char> = s.chars().collect();
    if !chars.iter().any(|c| crate::text::is_cjk(*c)) {
        return (0.0, false, false);
    }
    let compact: Vec<char> = chars
        .iter()
        .copied()
        .filter(|c| !c.is_whitespace())
        .collect();
    let text: String = compact.iter().collect();
    let mut raw = 0.0;
    let mut angry = ZH_ANGER.iter().any(|w| text.contains(w));
    let mut intense_neg = false;
    let mut i = 0;
    let byte_at: Vec<usize> = text
        .char_indices()
        .map(|(b, _)| b)
        .chain(std::iter::once(text.len()))
        .collect();
    while i < compact.len() {
        let rest = &text[byte_at[i]..];
        let best = ZH
            .iter()
            .filter(|(w, _)| rest.starts_with(w))
            .max_by_key(|(w, _)| w.len());
        let Some((w, weight)) = best else {
            i += 1;
            continue;
        };
        let before: String = compact[i.saturating_sub(3)..i].iter().collect();
        let intensifier = ZH_INTENSIFIERS.iter().find(|x| before.ends_with(*x));
        let intense = intensifier.is_some();
        // The negator sits right before the word or before its intensifier ("不太满意").
        let head = &before[..before.len() - intensifier.map_or(0, |x| x.len())];
        let negated = head
            .chars()
            .next_back()
            .is_some_and(|c| ZH_NEGATORS.contains(&c))
            && !w.starts_with(ZH_NEGATORS);
        let mut v = *weight;
        if intense {
            v *= 1.5;
        }
        if negated {
            // "不好" is bad, "不差" only mildly good.
            v = if v > 0.0 { -v * 0.8 } else { -v * 0.4 };
        }
        if *weight < -1.0 && intense && !negated {
            intense_neg = true;
        }
        raw += v;
        i += w.chars().count();
    }
    // Repeated "!" or "？？" read as agitation; "气死我了" etc. already in anger words.
    if text.contains("了吗") && raw < 0.0 {
        raw -= 0.2;
    }
    if angry && raw > -1.0 {
        raw = -1.0;
    }
    angry |= raw <= -2.5;
    (raw, angry, intense_neg)
}

fn score_en(s: &str) -> (f32, bool, bool) {
    let words: Vec<&str> = s.split_whitespace().filter(|w| w.is_ascii()).collect();
    if words.is_empty() {
        return (0.0, false, false);
    }
    let joined = words.join(" ");
    let mut angry = EN_ANGER.iter().any(|w| {
        if w.contains(' ') {
            joined.contains(w)
        } else {
            words.contains(w)
        }
    });
    let mut raw = 0.0;
    let mut intense_neg = false;
    for (i, w) in words.iter().enumerate() {
        let Some((_, weight)) = EN.iter().find(|(x, _)| x == w) else {
            continue;
        };
        let before = &words[i.saturating_sub(3)..i];
        let negated = before.iter().any(|b| EN_NEGATORS.contains(b));
        let intense = i > 0 && EN_INTENSIFIERS.contains(&words[i - 1]);
        let mut v = *weight;
        if intense {
            v *= 1.5;
        }
        if negated {
            // "not interested" is a refusal, not a feeling.
            v = if *w == "interested" {
                0.0
            } else if v > 0.0 {
                -v * 0.8
            } else {
                -v * 0.4
            };
        }
        if *weight < -1.0 && intense && !negated {
            intense_neg = true;
        }
        raw += v;
    }
    if angry && raw > -1.0 {
        raw = -1.0;
    }
    angry |= raw <= -2.5;
    (raw, angry, intense_neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(t: &str) -> SentimentLabel {
        analyze(t).label
    }

    #[test]
    fn chinese_phone_call_sentiment() {
        assert_eq!(label("好的 谢谢你"), SentimentLabel::Positive);
        assert_eq!(label("挺好的 我很满意"), SentimentLabel::Positive);
        assert_eq!(label("不需要"), SentimentLabel::Neutral);
        assert_eq!(label("在开车 晚点打"), SentimentLabel::Neutral);
        assert_eq!(label("你们服务太差了"), SentimentLabel::Negative);
        assert_eq!(label("不满意"), SentimentLabel::Negative);
        assert_eq!(label("不好"), SentimentLabel::Negative);
        assert_eq!(label("不好意思 我在忙"), SentimentLabel::Neutral);
        assert_eq!(label("不太满意"), SentimentLabel::Negative);
        assert_eq!(label("一点都不好 太差了"), SentimentLabel::Negative);
        assert_eq!(label("天天打 烦不烦"), SentimentLabel::Negative);
        assert!(!analyze("不需要 谢谢").angry);
        assert!(analyze("滚 再打我就报警").angry);
        assert!(analyze("你们有病吧").angry);
        assert!(!analyze("你们的产品有问题").angry);
        assert!(analyze("你们服务太差了").score < 0.0);
    }

    #[test]
    fn english_phone_call_sentiment() {
        assert_eq!(label("great thanks a lot"), SentimentLabel::Positive);
        assert_eq!(label("not interested"), SentimentLabel::Neutral);
        assert_eq!(label("your service is terrible"), SentimentLabel::Negative);
        assert_eq!(label("that's not good"), SentimentLabel::Negative);
        assert_eq!(label("not bad"), SentimentLabel::Positive);
        assert!(analyze("stop calling me you idiots").angry);
        assert!(analyze("leave me alone damn it").angry);
        assert!(!analyze("i'm driving call me later").angry);
    }

    #[test]
    fn score_is_bounded() {
        let s = analyze("垃圾 骗子 滚 去死 傻逼 有病 fuck shit damn 太差 太差 太差");
        assert!(s.score >= -1.0 && s.score < -0.9 && s.angry);
        assert_eq!(analyze("").label, SentimentLabel::Neutral);
    }
}
