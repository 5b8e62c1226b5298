//! Structured entities a call collects: the parts of an address (province,
//! city, district...; number, street, city, state, zip), person names, order
//! numbers and calendar dates with a year. Works on ASR-style text (no
//! punctuation, numbers said in words, lower case). Sans-IO and clock-free.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::NaiveDate;
use regex::Regex;

use crate::numbers::{cn_digit_string, en_word_value, parse_cn, parse_en};

/// One structured entity: byte range in the folded text, kind, value, parts.
pub(crate) struct Hit {
    pub start: usize,
    pub end: usize,
    pub kind: &'static str,
    pub value: String,
    pub parts: BTreeMap<String, String>,
}

/// Provincial-level names, short form; the long form adds 省/市/自治区.
const PROVINCES: [(&str, &str); 34] = [
    ("北京", "北京市"),
    ("天津", "天津市"),
    ("上海", "上海市"),
    ("重庆", "重庆市"),
    ("河北", "河北省"),
    ("山西", "山西省"),
    ("辽宁", "辽宁省"),
    ("吉林", "吉林省"),
    ("黑龙江", "黑龙江省"),
    ("江苏", "江苏省"),
    ("浙江", "浙江省"),
    ("安徽", "安徽省"),
    ("福建", "福建省"),
    ("江西", "江西省"),
    ("山东", "山东省"),
    ("河南", "河南省"),
    ("湖北", "湖北省"),
    ("湖南", "湖南省"),
    ("广东", "广东省"),
    ("海南", "海南省"),
    ("四川", "四川省"),
    ("贵州", "贵州省"),
    ("云南", "云南省"),
    ("陕西", "陕西省"),
    ("甘肃", "甘肃省"),
    ("青海", "青海省"),
    ("台湾", "台湾省"),
    ("内蒙古", "内蒙古自治区"),
    ("广西", "广西壮族自治区"),
    ("西藏", "西藏自治区"),
    ("宁夏", "宁夏回族自治区"),
    ("新疆", "新疆维吾尔自治区"),
    ("香港", "香港特别行政区"),
    ("澳门", "澳门特别行政区"),
];
const MUNICIPALITIES: [&str; 4] = ["北京", "天津", "上海", "重庆"];

/// Byte offset of the first provincial-level name in `s`, if any.
pub(crate) fn province_start(s: &str) -> Option<usize> {
    PROVINCES
        .iter()
        .filter_map(|(short, _)| s.find(short))
        .min()
}

/// Split a Chinese address (as matched by the address pattern) into its
/// administrative and street parts. Numbers said in words become digits in
/// `number` ("一百号" → "100").
pub(crate) fn zh_address_parts(addr: &str) -> BTreeMap<String, String> {
    let mut parts = BTreeMap::new();
    let mut rest = addr;
    // Province: long form, or the short form when more follows ("广东深圳市").
    for (short, long) in PROVINCES {
        let (name, tail) = if let Some(t) = rest.strip_prefix(long) {
            (long, t)
        } else if let Some(t) = rest.strip_prefix(short) {
            let t = t
                .strip_prefix("省")
                .or_else(|| t.strip_prefix("市"))
                .or_else(|| t.strip_prefix("自治区"))
                .unwrap_or(t);
            if t.chars().count() < 2 {
                continue;
            }
            (long, t)
        } else {
            continue;
        };
        parts.insert("province".into(), name.to_string());
        if MUNICIPALITIES.contains(&short) {
            parts.insert("city".into(), name.to_string());
        }
        rest = tail;
        break;
    }
    let p = pats();
    let mut consumed = 0;
    for m in p.zh_segment.find_iter(rest) {
        if m.start() != consumed {
            break;
        }
        consumed = m.end();
        let seg = m.as_str();
        const COMMUNITY: [&str; 7] = ["村", "小区", "花园", "公寓", "大厦", "广场", "新村"];
        let key = if COMMUNITY.iter().any(|c| seg.ends_with(c)) {
            "community"
        } else if seg.ends_with("自治区") || seg.ends_with('省') {
            "province"
        } else if seg.ends_with("自治州") || seg.ends_with('盟') {
            "city"
        } else if seg.ends_with('市') {
            if parts.contains_key("city") {
                "district"
            } else {
                "city"
            }
        } else if seg.ends_with(['区', '县', '旗']) {
            "district"
        } else if seg.ends_with("街道") || seg.ends_with(['镇', '乡']) {
            "town"
        } else if seg.ends_with(['路', '街', '巷', '道']) || seg.ends_with("胡同") {
            "street"
        } else {
            "community"
        };
        parts
            .entry(key.to_string())
            .or_insert_with(|| seg.to_string());
    }
    let tail = &rest[consumed..];
    for c in p.zh_unit.captures_iter(tail) {
        let (Some(n), Some(u)) = (c.name("n"), c.name("u")) else {
            continue;
        };
        let n = zh_number_text(n.as_str());
        let key = match u.as_str() {
            "号" | "弄" | "号院" => "number",
            "段" => "section",
            "期" => "phase",
            "号楼" | "栋" | "幢" | "座" => "building",
            "单元" => "unit",
            "层" | "楼" => "floor",
            _ => "room",
        };
        parts.entry(key.to_string()).or_insert(n);
    }
    parts
}

/// "一百" → "100", "三零二" → "302", "18" → "18"; letters kept.
fn zh_number_text(s: &str) -> String {
    if s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return s.to_uppercase();
    }
    if !s.contains(['十', '百']) {
        if let Some(d) = cn_digit_string(s) {
            return d;
        }
    }
    match parse_cn(s) {
        Some(v) if v.fract() == 0.0 && v >= 0.0 => format!("{}", v as u64),
        _ => s.to_string(),
    }
}

/// US-style street address parts from the address pattern's captures.
pub(crate) fn en_address_parts(c: &regex::Captures) -> BTreeMap<String, String> {
    let mut parts = BTreeMap::new();
    let put = |parts: &mut BTreeMap<String, String>, k: &str, v: String| {
        if !v.is_empty() {
            parts.insert(k.to_string(), v);
        }
    };
    if let Some(n) = c.name("num") {
        let words: Vec<&str> = n.as_str().split_whitespace().collect();
        let v = parse_en_spoken(&words).map(|v| format!("{}", v as u64));
        put(&mut parts, "number", v.unwrap_or_else(|| n.as_str().into()));
    }
    if let Some(s) = c.name("street") {
        put(&mut parts, "street", title_case(s.as_str()));
    }
    if let Some(u) = c.name("unit") {
        put(&mut parts, "unit", u.as_str().to_uppercase());
    }
    if let Some(x) = c.name("city") {
        put(&mut parts, "city", title_case(x.as_str()));
    }
    if let Some(x) = c.name("state") {
        put(&mut parts, "state", x.as_str().to_uppercase());
    }
    if let Some(x) = c.name("zip") {
        put(&mut parts, "zip", x.as_str().into());
    }
    parts
}

fn title_case(s: &str) -> String {
    s.split_whitespace()
        .map(|w| {
            let mut cs = w.chars();
            match cs.next() {
                Some(f) => f.to_uppercase().chain(cs).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// English number words as people say them: standard ("one thousand two
/// hundred ninety nine") and paired ("twelve ninety nine" = 1299, "nineteen
/// eighty five" = 1985, "two fifty" = 250), or digits. `None` when not a number.
pub fn parse_en_spoken(words: &[&str]) -> Option<f64> {
    let words: Vec<&str> = words.iter().copied().filter(|w| *w != "-").collect();
    if words.len() == 1 {
        if let Ok(v) = words[0].replace(',', "").parse::<f64>() {
            return Some(v);
        }
    }
    let split: Vec<String> = words
        .iter()
        .flat_map(|w| w.split('-').map(str::to_string))
        .collect();
    let refs: Vec<&str> = split.iter().map(String::as_str).collect();
    if refs
        .iter()
        .any(|w| matches!(*w, "hundred" | "thousand" | "million"))
    {
        return parse_en(&refs);
    }
    // Pairs: each group is 1–99 said as "twelve", "ninety nine", "oh five".
    let mut groups: Vec<u64> = Vec::new();
    let mut i = 0;
    while i < refs.len() {
        let w = refs[i];
        if w == "and" {
            i += 1;
            continue;
        }
        if w == "oh" {
            let d = en_word_value(refs.get(i + 1)?)?;
            if d >= 10 {
                return None;
            }
            groups.push(d);
            i += 2;
            continue;
        }
        let v = en_word_value(w)?;
        if (20..100).contains(&v) && v % 10 == 0 {
            if let Some(d) = refs.get(i + 1).and_then(|n| en_word_value(n)) {
                if (1..10).contains(&d) {
                    groups.push(v + d);
                    i += 2;
                    continue;
                }
            }
        }
        groups.push(v);
        i += 1;
    }
    match groups.as_slice() {
        [] => None,
        [a] => Some(*a as f64),
        // "two fifty", "twelve ninety nine", "nineteen oh five"
        [a, b] if *a >= 1 && *b < 100 => Some((a * 100 + b) as f64),
        _ => None,
    }
}

/// Compound and common single surnames (百家姓, most frequent first).
const ZH_COMPOUND_SURNAMES: [&str; 12] = [
    "欧阳", "司马", "上官", "诸葛", "东方", "皇甫", "尉迟", "公孙", "慕容", "长孙", "夏侯", "令狐",
];
/// Characters that are also everyday words before a title ("和老师说",
/// "向先生问好", "说明") are left out.
const ZH_SURNAMES: &str = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳穆农司卓古吉缪简车项连芦麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩佘池查麻苑迟邝";
/// Everyday words that start with a surname character ("我是马上要走").
const ZH_NOT_NAMES: [&str; 24] = [
    "马上", "高兴", "方便", "安全", "安排", "常常", "平时", "白天", "金额", "万一", "关于", "包括",
    "全部", "全都", "单位", "单独", "路上", "江湖", "文件", "华为", "程序", "时候", "管理", "车上",
];
/// Titles after a surname: 王先生, 李女士, 张经理.
const ZH_TITLES: [&str; 11] = [
    "先生", "女士", "小姐", "老师", "经理", "阿姨", "师傅", "大姐", "大哥", "主任", "医生",
];
/// Characters that end a given name said after 我叫/我是 (particles, verbs).
const ZH_NAME_STOP: &str = "的了吗呢啊吧呀哦是在不也就都还要会有和跟说这那你我他她们，。,.!！?？ ";

/// English words that follow "this is" / "my name is" but are not names.
const EN_NOT_NAMES: &[&str] = &[
    "a",
    "an",
    "the",
    "not",
    "no",
    "yes",
    "busy",
    "sorry",
    "fine",
    "good",
    "ok",
    "okay",
    "just",
    "going",
    "driving",
    "working",
    "really",
    "very",
    "so",
    "he",
    "she",
    "him",
    "her",
    "it",
    "that",
    "what",
    "who",
    "his",
    "wife",
    "husband",
    "mom",
    "dad",
    "calling",
    "correct",
    "right",
    "wrong",
    "me",
    "my",
    "about",
    "too",
    "you",
    "back",
    "later",
    "tomorrow",
    "tonight",
    "again",
    "anytime",
    "at",
    "in",
    "on",
    "next",
    "after",
    "before",
    "when",
    "if",
    "sometime",
    "ridiculous",
    "annoying",
    "unacceptable",
    "great",
    "terrible",
    "important",
    "crazy",
    "bad",
    "nice",
    "spam",
    "weird",
    "urgent",
    "for",
    "why",
    "how",
    "where",
    "true",
    "false",
    "your",
    "our",
    "their",
    "this",
    "is",
    "was",
    "all",
    "too",
    "getting",
    "out",
    "of",
    "him",
    "them",
    "us",
    "now",
    "here",
    "there",
    "to",
    "be",
    "waste",
    "fraud",
    "scam",
    "insane",
];

/// Person names said by the callee: "我叫张伟", "我姓王", "王先生",
/// "my name is john smith", "this is mary", "mr smith".
pub(crate) fn names(s: &str) -> Vec<Hit> {
    let p = pats();
    let mut out = Vec::new();
    for c in p.zh_name_intro.captures_iter(s) {
        let (Some(lead), Some(n)) = (c.name("lead"), c.name("n")) else {
            continue;
        };
        let raw: String = n
            .as_str()
            .chars()
            .take_while(|ch| !ZH_NAME_STOP.contains(*ch))
            .collect();
        let only_surname = lead.as_str().ends_with('姓');
        if ZH_NOT_NAMES.iter().any(|w| raw.starts_with(w)) {
            continue;
        }
        let Some((surname, given)) = split_zh_name(&raw, only_surname) else {
            continue;
        };
        let mut parts = BTreeMap::new();
        parts.insert("surname".to_string(), surname.clone());
        let mut end = n.start() + surname.len() + given.len();
        if !given.is_empty() {
            parts.insert("given".into(), given.clone());
        }
        if let Some(t) = ZH_TITLES.iter().find(|t| s[end..].starts_with(**t)) {
            parts.insert("title".into(), t.to_string());
            end += t.len();
        }
        out.push(Hit {
            start: n.start(),
            end,
            kind: "name",
            value: format!("{surname}{given}"),
            parts,
        });
    }
    for c in p.zh_name_title.captures_iter(s) {
        let (Some(sur), Some(t), Some(m)) = (c.name("sur"), c.name("t"), c.get(0)) else {
            continue;
        };
        let mut parts = BTreeMap::new();
        parts.insert("surname".to_string(), sur.as_str().to_string());
        parts.insert("title".to_string(), t.as_str().to_string());
        out.push(Hit {
            start: m.start(),
            end: m.end(),
            kind: "name",
            value: sur.as_str().to_string(),
            parts,
        });
    }
    for c in p.en_name_intro.captures_iter(s) {
        let Some(n) = c.name("n") else { continue };
        let words: Vec<&str> = n
            .as_str()
            .split_whitespace()
            .take_while(|w| !EN_NOT_NAMES.contains(w) && !EN_NAME_END.contains(w))
            .collect();
        if words.is_empty() {
            continue;
        }
        let text_len: usize = words.iter().map(|w| w.len()).sum::<usize>() + words.len() - 1;
        let mut parts = BTreeMap::new();
        parts.insert("given".to_string(), title_case(words[0]));
        if words.len() > 1 {
            parts.insert("surname".to_string(), title_case(words[words.len() - 1]));
        }
        out.push(Hit {
            start: n.start(),
            end: n.start() + text_len,
            kind: "name",
            value: title_case(&words.join(" ")),
            parts,
        });
    }
    for c in p.en_name_title.captures_iter(s) {
        let (Some(t), Some(n), Some(m)) = (c.name("t"), c.name("n"), c.get(0)) else {
            continue;
        };
        if EN_NOT_NAMES.contains(&n.as_str()) {
            continue;
        }
        let mut parts = BTreeMap::new();
        parts.insert("title".to_string(), title_case(t.as_str()));
        parts.insert("surname".to_string(), title_case(n.as_str()));
        out.push(Hit {
            start: m.start(),
            end: m.end(),
            kind: "name",
            value: title_case(n.as_str()),
            parts,
        });
    }
    out
}

/// Words that end a name after "my name is" ("my name is john and...").
const EN_NAME_END: [&str; 10] = [
    "and", "but", "from", "speaking", "here", "calling", "i", "i'm", "please", "thanks",
];

/// Surname and given name of `raw` (the characters after 我叫/我是/我姓).
fn split_zh_name(raw: &str, only_surname: bool) -> Option<(String, String)> {
    let (surname, rest) =
        if let Some(c) = ZH_COMPOUND_SURNAMES.iter().find(|c| raw.starts_with(**c)) {
            (c.to_string(), &raw[c.len()..])
        } else {
            let first = raw.chars().next()?;
            if !ZH_SURNAMES.contains(first) {
                return None;
            }
            (first.to_string(), &raw[first.len_utf8()..])
        };
    if only_surname {
        return Some((surname, String::new()));
    }
    // A title right after the surname ("我是王经理"): no given name.
    if ZH_TITLES.iter().any(|t| rest.starts_with(t)) {
        return Some((surname, String::new()));
    }
    let given: String = rest.chars().take(2).collect();
    if given.is_empty() {
        return None;
    }
    Some((surname, given))
}

/// Order, tracking and reference numbers after a cue ("订单号是幺二三...",
/// "order number a b one two three"), or a standalone token mixing letters
/// and digits ("sf1234567890"). The value is upper case letters and digits.
pub(crate) fn order_numbers(s: &str) -> Vec<Hit> {
    let p = pats();
    let mut out = Vec::new();
    for c in p.order_cue.captures_iter(s) {
        let Some(rest) = c.get(0).map(|m| m.end()) else {
            continue;
        };
        if let Some((end, id)) = read_id(&s[rest..]) {
            if id.len() >= 4 {
                let start = rest + (s[rest..].len() - s[rest..].trim_start().len());
                let mut parts = BTreeMap::new();
                if let Some(cue) = c.get(0) {
                    parts.insert("cue".to_string(), cue.as_str().trim().to_string());
                }
                out.push(Hit {
                    start,
                    end: rest + end,
                    kind: "order_number",
                    value: id,
                    parts,
                });
            }
        }
    }
    for c in p.mixed_id.captures_iter(s) {
        let Some(m) = c.name("id") else { continue };
        let t = m.as_str();
        if t.chars().any(|c| c.is_ascii_digit()) && t.chars().any(|c| c.is_ascii_alphabetic()) {
            out.push(Hit {
                start: m.start(),
                end: m.end(),
                kind: "order_number",
                value: t.to_uppercase().replace('-', ""),
                parts: BTreeMap::new(),
            });
        }
    }
    out
}

/// Read an identifier spoken or typed at the start of `t`: digits, letters,
/// Chinese digits (幺 = 1), English digit words and single letters, dashes.
/// Returns the byte length consumed and the identifier.
fn read_id(t: &str) -> Option<(usize, String)> {
    let mut id = String::new();
    let mut end = 0;
    let mut i = 0;
    let lead = t.len() - t.trim_start().len();
    i += lead;
    let cue_words = ["是", "为", ":", "：", "is", "number", "no", "号"];
    // Skip one connecting word ("是", "is").
    loop {
        let rest = t[i..].trim_start();
        let skip = t[i..].len() - rest.len();
        match cue_words.iter().find(|w| {
            rest.starts_with(**w)
                && (!w.is_ascii()
                    || rest[w.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_ascii_alphanumeric()))
        }) {
            Some(w) if id.is_empty() => i += skip + w.len(),
            _ => break,
        }
    }
    while i < t.len() {
        let rest = &t[i..];
        let ws = rest.len() - rest.trim_start().len();
        let rest = rest.trim_start();
        if rest.is_empty() {
            break;
        }
        let c = rest.chars().next()?;
        if c.is_ascii_alphanumeric() {
            // A typed run ("sf12345") or a spelled word ("one", "a", "dash").
            let word: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            let w = word.trim_end_matches('-');
            let typed = w.replace('-', "");
            let piece = if w.chars().all(|c| c.is_ascii_digit()) {
                Some(w.to_string())
            } else if w == "oh" || w == "zero" {
                Some("0".into())
            } else if let Some(v) = en_word_value(w).filter(|v| *v < 10) {
                Some(v.to_string())
            } else if w == "dash" || w == "hyphen" {
                Some(String::new())
            } else if (w.len() == 1 && w != "i") || w.chars().any(|c| c.is_ascii_digit()) {
                Some(typed.to_uppercase())
            } else if id.is_empty()
                && (2..=3).contains(&w.len())
                && ![
                    "the", "and", "uh", "um", "er", "ah", "it", "its", "was", "my", "so",
                ]
                .contains(&w)
            {
                // A letter prefix said as a word: "jd 2026...", "sf 1234...".
                Some(w.to_uppercase())
            } else {
                None
            };
            match piece {
                Some(p) => {
                    id.push_str(&p);
                    i += ws + word.len();
                    end = i;
                }
                None => break,
            }
        } else if "零〇一二三四五六七八九幺".contains(c) {
            let run: String = rest
                .chars()
                .take_while(|c| "零〇一二三四五六七八九幺".contains(*c))
                .collect();
            id.push_str(&cn_digit_string(&run)?);
            i += ws + run.len();
            end = i;
        } else if c == '-' {
            i += ws + 1;
        } else {
            break;
        }
    }
    (!id.is_empty()).then_some((end, id))
}

const MONTHS_EN: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Month number of an English month name or abbreviation.
pub(crate) fn en_month(w: &str) -> Option<u32> {
    let w = w.trim_end_matches('.');
    if w.len() < 3 {
        return None;
    }
    MONTHS_EN
        .iter()
        .position(|m| m.starts_with(w) && (w.len() >= 3))
        .map(|i| i as u32 + 1)
}

const ORDINALS_EN: [&str; 20] = [
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
    "eleventh",
    "twelfth",
    "thirteenth",
    "fourteenth",
    "fifteenth",
    "sixteenth",
    "seventeenth",
    "eighteenth",
    "nineteenth",
    "twentieth",
];

/// Day of month said in English: "25", "25th", "twenty fifth", "thirtieth".
pub(crate) fn en_day_of_month(s: &str) -> Option<u32> {
    let s = s.trim();
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    if !digits.is_empty() {
        return digits.parse().ok().filter(|d| (1..=31).contains(d));
    }
    let words: Vec<&str> = s.split([' ', '-']).filter(|w| !w.is_empty()).collect();
    let ord = |w: &str| -> Option<u32> {
        if w == "thirtieth" {
            return Some(30);
        }
        ORDINALS_EN
            .iter()
            .position(|o| *o == w)
            .map(|i| i as u32 + 1)
    };
    match words.as_slice() {
        [w] => ord(w),
        ["twenty", w] => ord(w).filter(|d| *d < 10).map(|d| 20 + d),
        ["thirty", w] => ord(w).filter(|d| *d == 1).map(|d| 30 + d),
        _ => None,
    }
}

/// Ordinal day pattern for English regexes ("twenty fifth", "25th", "3").
pub(crate) fn en_ordinal_pattern() -> String {
    let ords = ORDINALS_EN.join("|");
    format!(r"(?:\d{{1,2}}(?:st|nd|rd|th)?|(?:(?:twenty|thirty)[\s-])?(?:{ords})|thirtieth)")
}

/// Month-name pattern for English regexes.
pub(crate) fn en_month_pattern() -> &'static str {
    r"(?:january|february|march|april|may|june|july|august|september|october|november|december|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec)\.?"
}

/// Calendar dates that carry a year ("一九八五年三月二号", "2026年12月5日",
/// "march second nineteen eighty five", "the 5th of june 2027"): a `date`
/// entity "YYYY-MM-DD" — a birth date or a due date, not a callback time.
pub(crate) fn dates_with_year(s: &str) -> Vec<Hit> {
    let p = pats();
    let mut out = Vec::new();
    for c in p.zh_ymd.captures_iter(s) {
        let (Some(m), Some(y), Some(mo), Some(d)) =
            (c.get(0), c.name("y"), c.name("m"), c.name("d"))
        else {
            continue;
        };
        let year = if y.as_str().chars().all(|c| c.is_ascii_digit()) {
            y.as_str().parse::<i32>().ok()
        } else {
            cn_digit_string(y.as_str()).and_then(|d| d.parse::<i32>().ok())
        };
        let (Some(year), Some(mo), Some(d)) = (year, parse_cn(mo.as_str()), parse_cn(d.as_str()))
        else {
            continue;
        };
        if let Some(date) = NaiveDate::from_ymd_opt(year, mo as u32, d as u32) {
            out.push(date_hit(m.start(), m.end(), date));
        }
    }
    for c in p.en_mdy.captures_iter(s).chain(p.en_dmy.captures_iter(s)) {
        let (Some(m), Some(mo), Some(d), Some(y)) =
            (c.get(0), c.name("mon"), c.name("d"), c.name("y"))
        else {
            continue;
        };
        let words: Vec<&str> = y.as_str().split_whitespace().collect();
        let year = parse_en_spoken(&words).filter(|y| (1900.0..2200.0).contains(y));
        let (Some(mo), Some(d), Some(year)) =
            (en_month(mo.as_str()), en_day_of_month(d.as_str()), year)
        else {
            continue;
        };
        if let Some(date) = NaiveDate::from_ymd_opt(year as i32, mo, d) {
            out.push(date_hit(m.start(), m.end(), date));
        }
    }
    out
}

fn date_hit(start: usize, end: usize, date: NaiveDate) -> Hit {
    Hit {
        start,
        end,
        kind: "date",
        value: date.format("%Y-%m-%d").to_string(),
        parts: BTreeMap::new(),
    }
}

struct Pats {
    zh_segment: Regex,
    zh_unit: Regex,
    zh_name_intro: Regex,
    zh_name_title: Regex,
    en_name_intro: Regex,
    en_name_title: Regex,
    order_cue: Regex,
    mixed_id: Regex,
    zh_ymd: Regex,
    en_mdy: Regex,
    en_dmy: Regex,
}

fn pats() -> &'static Pats {
    static P: OnceLock<Pats> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("structured entity pattern is valid");
        let n = "[0-9零〇一二两三四五六七八九十]";
        let year_words = r"(?:\d{4}|(?:nineteen|twenty)(?:\s+(?:oh\s+)?(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)){1,2}|two thousand(?:\s+and)?(?:\s+(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty)){0,2})";
        let ord = en_ordinal_pattern();
        let mon = en_month_pattern();
        Pats {
            zh_segment: re(
                r"\p{Han}{1,8}?(?:自治区|自治州|特别行政区|省|市|区|县|旗|盟|街道|镇|乡|大街|大道|路|街|巷|胡同|村|小区|花园|公寓|大厦|广场|新村)",
            ),
            zh_unit: re(
                r"(?P<n>[0-9a-z]+|[零〇一二两三四五六七八九十百幺]+)(?P<u>号楼|号院|号|弄|段|期|栋|幢|座|单元|楼|层|室)",
            ),
            zh_name_intro: re(r"(?P<lead>我叫|我是|我姓|本人姓?|姓名是?|名字是?|叫我)(?P<n>\p{Han}{1,5})"),
            zh_name_title: re(&format!(
                r"(?P<sur>[{ZH_SURNAMES}])(?P<t>{})",
                ZH_TITLES.join("|")
            )),
            en_name_intro: re(
                r"\b(?:my name is|my name's|name is|this is|call me)\s+(?P<n>[a-z]+(?:\s+[a-z]+){0,2})",
            ),
            en_name_title: re(r"\b(?P<t>mr|mrs|ms|miss|dr)\.?\s+(?P<n>[a-z]{2,})\b"),
            order_cue: re(
                r"(?:快递单号|运单号|订单编号|订单号码|订单号|单号|工单号|order\s+(?:number|no\.?|id)|tracking\s+(?:number|no\.?)|reference\s+(?:number|no\.?)|confirmation\s+(?:number|code)|case\s+number)",
            ),
            mixed_id: re(r"(?:^|[^a-z0-9])(?P<id>[a-z]{1,4}-?[0-9]{6,20})(?:$|[^a-z0-9])"),
            zh_ymd: re(&format!(
                r"(?P<y>[0-9]{{4}}|[零〇一二三四五六七八九]{{4}})年(?P<m>{n}{{1,3}})月(?P<d>{n}{{1,3}})[日号]?"
            )),
            en_mdy: re(&format!(
                r"\b(?P<mon>{mon})\s+(?:the\s+)?(?P<d>{ord}),?\s+(?P<y>{year_words})\b"
            )),
            en_dmy: re(&format!(
                r"\b(?:the\s+)?(?P<d>{ord})\s+(?:of\s+)?(?P<mon>{mon}),?\s+(?P<y>{year_words})\b"
            )),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Option<f64> {
        parse_en_spoken(&s.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn spoken_english_numbers() {
        assert_eq!(words("twelve ninety nine"), Some(1299.0));
        assert_eq!(words("twelve ninety-nine"), Some(1299.0));
        assert_eq!(words("nineteen eighty five"), Some(1985.0));
        assert_eq!(words("nineteen oh five"), Some(1905.0));
        assert_eq!(words("two fifty"), Some(250.0));
        assert_eq!(words("one thousand two hundred ninety nine"), Some(1299.0));
        assert_eq!(words("forty two"), Some(42.0));
        assert_eq!(words("twenty twenty six"), Some(2026.0));
        assert_eq!(words("one two three"), None);
        assert_eq!(words("hello"), None);
    }

    #[test]
    fn chinese_address_parts() {
        let p = zh_address_parts("上海市浦东新区世纪大道一百号");
        assert_eq!(p["province"], "上海市");
        assert_eq!(p["city"], "上海市");
        assert_eq!(p["district"], "浦东新区");
        assert_eq!(p["street"], "世纪大道");
        assert_eq!(p["number"], "100");
        let p = zh_address_parts("广东深圳市南山区粤海街道科技园小区3栋502室");
        assert_eq!(p["province"], "广东省");
        assert_eq!(p["city"], "深圳市");
        assert_eq!(p["district"], "南山区");
        assert_eq!(p["town"], "粤海街道");
        assert_eq!(p["community"], "科技园小区");
        assert_eq!(p["building"], "3");
        assert_eq!(p["room"], "502");
        let p = zh_address_parts("浙江省杭州市西湖区文三路二十五号");
        assert_eq!(p["province"], "浙江省");
        assert_eq!(p["district"], "西湖区");
        assert_eq!(p["number"], "25");
        let p = zh_address_parts("江苏省昆山市玉山镇");
        assert_eq!(p["city"], "昆山市");
        assert_eq!(p["town"], "玉山镇");
    }

    #[test]
    fn english_days_of_month() {
        assert_eq!(en_day_of_month("twenty fifth"), Some(25));
        assert_eq!(en_day_of_month("thirty first"), Some(31));
        assert_eq!(en_day_of_month("3rd"), Some(3));
        assert_eq!(en_day_of_month("thirtieth"), Some(30));
        assert_eq!(en_day_of_month("32"), None);
        assert_eq!(en_month("dec"), Some(12));
        assert_eq!(en_month("ma"), None);
    }

    #[test]
    fn spoken_identifiers() {
        assert_eq!(
            read_id("是幺三八零零一二三四五六").map(|x| x.1),
            Some("13800123456".into())
        );
        assert_eq!(
            read_id(" is a b one two three four please").map(|x| x.1),
            Some("AB1234".into())
        );
        assert_eq!(
            read_id(" sf-1234567").map(|x| x.1),
            Some("SF1234567".into())
        );
        assert_eq!(read_id(" hello"), None);
    }
}
