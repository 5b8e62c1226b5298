//! Reading an utterance against the question just asked: back-channels ("嗯",
//! "mm-hm") and echo answers ("家里有人收吗？" → "有的，有人") to a yes/no
//! question. Pure functions of the normalised text and the prompt.
use crate::text::is_cjk;

/// Particles and fillers that carry no answer of their own.
const ZH_PARTICLES: &str = "的啊呀呢吧了哈嘛滴哦噢喔呃额哎诶唉嗯恩";
/// Words a Chinese answer adds around the question's own words.
const ZH_GENERIC: &str =
    "我们他她都会也还就一直肯定当然应该在人家有是对要可以行好那个这时候放心随便";
/// Questions back, not answers.
const ZH_QUESTION: [&str; 9] = [
    "吗",
    "什么",
    "谁",
    "哪",
    "怎么",
    "为什么",
    "多少",
    "几",
    "啥",
];
/// Negations that are a yes ("没错", "没问题", "不错") before the negation test.
const ZH_NOT_NEGATIVE: [&str; 5] = ["没错", "没问题", "不错", "没毛病", "不用客气"];
/// Chinese back-channel tokens; the first group affirms, the rest only pads.
const ZH_BACK_AFFIRM: [&str; 14] = [
    "没问题",
    "没错",
    "可以",
    "嗯哼",
    "嗯呢",
    "嗯",
    "恩",
    "对",
    "是",
    "好",
    "行",
    "中",
    "成",
    "哼",
];
const ZH_BACK_PAD: [&str; 14] = [
    "你说", "你讲", "您说", "您讲", "请讲", "说吧", "讲吧", "的", "啊", "呀", "吧", "哦", "噢",
    "嘛",
];

const EN_BACK_AFFIRM: [&str; 18] = [
    "mm", "mmm", "mhm", "mmhm", "mmhmm", "hmm", "yeah", "yes", "yep", "yup", "yea", "ya", "ok",
    "okay", "sure", "right", "alright", "correct",
];
const EN_BACK_PAD: [&str; 10] = [
    "uh", "um", "oh", "go", "ahead", "on", "hm", "huh", "so", "well",
];
const EN_NEGATION: [&str; 17] = [
    "no", "not", "nobody", "noone", "none", "never", "nope", "nah", "dont", "doesnt", "wont",
    "cant", "isnt", "arent", "wasnt", "nothing", "nowhere",
];
const EN_QUESTION: [&str; 7] = ["what", "who", "why", "how", "where", "which", "whats"];
const EN_GENERIC: [&str; 40] = [
    "i",
    "im",
    "we",
    "were",
    "my",
    "our",
    "me",
    "us",
    "there",
    "theres",
    "is",
    "are",
    "am",
    "will",
    "would",
    "be",
    "it",
    "its",
    "thats",
    "that",
    "yes",
    "yeah",
    "sure",
    "of",
    "course",
    "definitely",
    "someone",
    "somebody",
    "someones",
    "the",
    "a",
    "then",
    "do",
    "does",
    "can",
    "should",
    "one",
    "ill",
    "well",
    "ok",
];

/// The whole utterance is a back-channel with at least one affirming token:
/// "嗯", "嗯嗯，你说", "mm-hm", "uh huh", "yeah yeah".
pub fn backchannel(norm: &str) -> bool {
    if norm.chars().any(is_cjk) {
        let mut rest: &str = &norm
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>();
        let owned = rest.to_string();
        rest = &owned;
        let mut affirmed = false;
        'outer: while !rest.is_empty() {
            for t in ZH_BACK_AFFIRM {
                if let Some(r) = rest.strip_prefix(t) {
                    rest = r;
                    affirmed = true;
                    continue 'outer;
                }
            }
            for t in ZH_BACK_PAD {
                if let Some(r) = rest.strip_prefix(t) {
                    rest = r;
                    continue 'outer;
                }
            }
            return false;
        }
        return affirmed;
    }
    let words: Vec<&str> = norm.split_whitespace().collect();
    if words.is_empty() || words.len() > 5 {
        return false;
    }
    let uh = words.contains(&"uh");
    let mut affirmed = false;
    for w in &words {
        if EN_BACK_AFFIRM.contains(w) || (*w == "huh" && uh) {
            affirmed |= *w != "hmm" || words.len() > 1 || words.contains(&"mm");
        } else if !EN_BACK_PAD.contains(w) {
            return false;
        }
    }
    affirmed
}

/// The sentence of the prompt that asks (the last one ending in a question
/// mark, or the last sentence).
fn question_sentence(prompt: &str) -> String {
    let mut sentences = Vec::new();
    let mut cur = String::new();
    for c in prompt.chars() {
        cur.push(c);
        if matches!(c, '。' | '！' | '？' | '?' | '!' | '.') {
            sentences.push(std::mem::take(&mut cur));
        }
    }
    if !cur.trim().is_empty() {
        sentences.push(cur);
    }
    sentences
        .iter()
        .rev()
        .find(|s| s.ends_with(['？', '?']))
        .or_else(|| sentences.last())
        .cloned()
        .unwrap_or_default()
}

/// An answer made of the question's own words (plus a few generic ones):
/// `Some(true)` for "有的，有人" / "someone will be", `Some(false)` for
/// "家里没人" / "nobody will be home"; `None` when the answer says anything the
/// question did not (the model decides then).
pub fn echo(norm: &str, prompt: &str) -> Option<bool> {
    let q = crate::text::normalize(&question_sentence(prompt));
    if q.is_empty() || norm.is_empty() {
        return None;
    }
    if norm.chars().any(is_cjk) {
        zh_echo(norm, &q)
    } else {
        en_echo(norm, &q)
    }
}

fn zh_echo(norm: &str, q: &str) -> Option<bool> {
    if ZH_QUESTION.iter().any(|w| norm.contains(w)) {
        return None;
    }
    let all = zh_clauses(norm.split_whitespace(), q);
    if all.is_some() {
        return all;
    }
    // "没人，家里都上班去了": a no that echoes the question, then the reason.
    match norm.split_whitespace().next() {
        Some(first) if norm.contains(' ') => zh_clauses([first].into_iter(), q).filter(|yes| !yes),
        _ => None,
    }
}

fn zh_clauses<'a>(clauses: impl Iterator<Item = &'a str>, q: &str) -> Option<bool> {
    let mut verdict: Option<bool> = None;
    for clause in clauses {
        let mut c = clause.to_string();
        for w in ZH_NOT_NEGATIVE {
            c = c.replace(w, "对");
        }
        let negative = c.contains(['不', '没', '别', '无']);
        let content: Vec<char> = c
            .chars()
            .filter(|ch| !ZH_PARTICLES.contains(*ch) && !matches!(ch, '不' | '没' | '别' | '无'))
            .collect();
        if content.is_empty() {
            if negative {
                verdict = merge(verdict, false)?;
            }
            continue;
        }
        if content.len() > 8 {
            return None;
        }
        let mut from_question = false;
        for ch in &content {
            if q.contains(*ch) && !ZH_GENERIC.contains(*ch) {
                from_question = true;
            } else if !ZH_GENERIC.contains(*ch) && !q.contains(*ch) {
                return None;
            }
        }
        if !from_question && !negative && !content.iter().any(|ch| "有是对要可以行好".contains(*ch))
        {
            return None;
        }
        verdict = merge(verdict, !negative)?;
    }
    verdict
}

fn en_echo(norm: &str, q: &str) -> Option<bool> {
    let words: Vec<&str> = norm.split_whitespace().collect();
    if words.is_empty() || words.len() > 8 || words.iter().any(|w| EN_QUESTION.contains(w)) {
        return None;
    }
    let qwords: Vec<&str> = q.split_whitespace().collect();
    let negative = words.iter().any(|w| EN_NEGATION.contains(w));
    let mut from_question = 0usize;
    let mut foreign = 0usize;
    for w in &words {
        if EN_NEGATION.contains(w) || EN_BACK_AFFIRM.contains(w) || EN_BACK_PAD.contains(w) {
            continue;
        }
        if qwords.contains(w) {
            from_question += 1;
        } else if !EN_GENERIC.contains(w) {
            foreign += 1;
        }
    }
    // "my wife will be home to receive it": one word the question did not use
    // is still an echo when most of the answer is the question's.
    if from_question == 0 || foreign * 3 > from_question {
        return None;
    }
    Some(!negative)
}

fn merge(v: Option<bool>, clause: bool) -> Option<Option<bool>> {
    match v {
        Some(prev) if prev != clause => None,
        _ => Some(Some(clause)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::normalize;

    fn bc(s: &str) -> bool {
        backchannel(&normalize(s))
    }

    #[test]
    fn backchannels() {
        for s in [
            "嗯",
            "嗯嗯",
            "恩，你讲",
            "嗯哼",
            "对对对",
            "mm-hm",
            "uh huh",
            "yeah",
            "mhm, go ahead",
        ] {
            assert!(bc(s), "{s}");
        }
        for s in [
            "啊",
            "哦",
            "嗯 我不要",
            "hmm",
            "uh",
            "oh",
            "yeah stop calling",
            "嗯 别打了",
        ] {
            assert!(!bc(s), "{s}");
        }
    }

    #[test]
    fn echo_answers() {
        let zh = "预计明天上午9点到12点送达，这个时间家里有人收货吗？";
        let e = |s: &str, p: &str| echo(&normalize(s), p);
        assert_eq!(e("有的，有人", zh), Some(true));
        assert_eq!(e("家里有人", zh), Some(true));
        assert_eq!(e("那个时间家里没有人", zh), Some(false));
        assert_eq!(e("有人吗", zh), None);
        assert_eq!(e("没人，家里都上班去了", zh), Some(false));
        assert_eq!(e("有人，家里都上班去了", zh), None);
        assert_eq!(e("我要找人工客服", zh), None);
        assert_eq!(e("嗯，以后别再给我打电话了", zh), None);
        let en = "Delivery is planned for tomorrow. Will someone be home to receive it?";
        assert_eq!(e("someone will be", en), Some(true));
        assert_eq!(e("nobody will be home then", en), Some(false));
        assert_eq!(e("let me talk to a real person", en), None);
        assert_eq!(e("who is this", en), None);
    }
}
