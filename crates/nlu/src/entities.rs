//! Entities in one utterance: callback times relative to `now` in the callee's
//! time zone, money amounts, numbers, digit strings and a yes/no reading; and,
//! from [`crate::structured`], address parts, names, order numbers and dates.
//! Sans-IO: the clock is a parameter.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveTime, SecondsFormat, TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use regex::{Captures, Regex};
use serde_json::Value;
use waihu_core::nlu::Entity;

use crate::numbers::{cn_digit_string, en_word_value, parse_cn};
use crate::structured::{self, en_day_of_month, en_month, parse_en_spoken};

const CN_NUM: &str = "[0-9零〇一二两三四五六七八九十幺]";
const EN_SMALL_WORDS: &str = "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve";
const EN_NUM_WORDS: &str = "zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million";
const WEEKDAYS_EN: &str = "monday|tuesday|wednesday|thursday|friday|saturday|sunday";
/// Measure words after which a lone Chinese numeral is a number ("三个", "两次").
const MEASURE: &str = "个块次岁年月天期元号位件张台条家人分钟小时周遍套";
/// "慢一点", "早一点", "有一点": 一点 there is "a little", not one o'clock.
const NOT_CLOCK_BEFORE: &str = "慢快大小多少好有声便宜早晚近远高低清楚轻重差点再稍";

/// Place words that end a part of a Chinese address (省, 市, 区, 路...).
const ZH_PLACE: &str =
    "(?:自治区|省|市|区|县|镇|乡|街道|大街|大道|路|街|巷|胡同|村|小区|花园|公寓|大厦|广场|新村)";
const CN_NUM_CHARS: &str = "零〇一二两三四五六七八九十百";
/// Words before an address that are not part of it ("改到", "送到", "地址是").
const ZH_ADDRESS_LEAD: [&str; 20] = [
    "新地址是",
    "我家在",
    "家住",
    "我住",
    "搬去",
    "地址是",
    "地址改成",
    "改成",
    "换成",
    "改到",
    "送到",
    "寄到",
    "发到",
    "搬到",
    "住在",
    "现在",
    "地址",
    "是",
    "在",
    "到",
];

struct Patterns {
    zh_rel: Regex,
    zh_day: Regex,
    zh_part: Regex,
    zh_clock: Regex,
    en_rel: Regex,
    en_day: Regex,
    en_part: Regex,
    en_clock: Regex,
    money_symbol: Regex,
    money_unit: Regex,
    money_jiao: Regex,
    money_bare: Regex,
    money_en_words: Regex,
    digits: Regex,
    cn_digits: Regex,
    en_digits: Regex,
    number: Regex,
    cn_number: Regex,
    en_number: Regex,
    zh_address: Regex,
    zh_place: Regex,
    en_address: Regex,
    en_date: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("entity pattern is valid");
        let n = CN_NUM;
        Patterns {
            zh_rel: re(&format!(
                r"(?P<pre>过)?(?P<n>{n}{{1,4}}|半)个?(?P<half>半)?(?P<unit>小时|钟头|分钟|天|星期|礼拜|周)(?P<post>以后|之后|后)?"
            )),
            zh_day: re(&format!(
                r"(?P<day>大后天|后天|明天|明儿|明早|明晚|今天|今儿|今晚|今早)|(?P<wk>下下个?|下个?|这个?|本)?(?:周|星期|礼拜)(?P<wd>[一二三四五六日天1-7])|(?:(?P<mon>{n}{{1,3}})月)?(?P<dom>{n}{{1,3}})[号日]"
            )),
            zh_part: re(r"早上|早晨|上午|中午|下午|傍晚|晚上|夜里|凌晨|明早|明晚|今晚|今早"),
            zh_clock: re(&format!(
                r"(?P<hour>{n}{{1,3}})(?:点钟?|时)(?:(?P<half>半)|(?P<q>一刻|三刻)|(?P<min>{n}{{1,3}})分?)?|(?P<hh>\d{{1,2}})[:：](?P<mm>\d{{2}})"
            )),
            en_rel: re(&format!(
                r"\b(?:in\s+(?P<n>an?|half an?|a couple of|couple of|{EN_SMALL_WORDS}|fifteen|twenty|thirty|forty five|\d+)\s+(?P<unit>minutes?|mins?|hours?|hrs?|days?|weeks?)\b|(?P<n2>an?|{EN_SMALL_WORDS}|fifteen|twenty|thirty|\d+)\s+(?P<unit2>minutes?|mins?|hours?|days?|weeks?)\s+(?:from now|later))"
            )),
            en_day: re(&format!(
                r"\b(?:(?P<day>day after tomorrow|tomorrow|today|tonight)|(?P<wk>next|this)\s+(?P<wd>{WEEKDAYS_EN}|week)|(?:on\s+)?(?P<wd2>{WEEKDAYS_EN}))\b"
            )),
            en_part: re(r"\b(?:morning|afternoon|evening|tonight|night|noon|lunchtime)\b"),
            en_clock: re(&format!(
                r"\b(?:(?P<hour>\d{{1,2}})(?::(?P<min>\d{{2}}))?\s*(?P<ampm>am|pm|a\.m\.?|p\.m\.?|o'?clock)|(?P<prep>at|after|around|by|about|before)\s+(?P<hour2>\d{{1,2}}|{EN_SMALL_WORDS})(?::(?P<min2>\d{{2}}))?(?:\s*(?P<ampm2>am|pm|a\.m\.?|p\.m\.?|o'?clock))?)\b"
            )),
            money_symbol: re(r"(?:[¥$]|rmb|usd)\s*(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?)\s*(?P<mult>[万千]|k\b|w\b)?"),
            money_unit: re(
                r"(?P<num>[0-9][0-9,]*(?:\.[0-9]+)?[万千百亿]?|[零一二两三四五六七八九十百千万亿]+)\s*(?P<mult>k|w)?\s*(?P<unit>块钱|块|元|圆|人民币|美元|美金|dollars?|bucks|yuan|rmb|usd)(?P<jiao>[一二两三四五六七八九1-9](?:毛|角)?)?",
            ),
            money_jiao: re(r"(?P<num>[一二两三四五六七八九1-9])(?:毛|角)钱?"),
            money_bare: re(r"(?P<num>[0-9]+(?:\.[0-9]+)?|[零一二两三四五六七八九十百千]+)(?P<mult>万|千|k\b|w\b)"),
            money_en_words: re(&format!(
                r"\b(?P<num>(?:(?:a|and|{EN_NUM_WORDS})[\s-]+)*(?:{EN_NUM_WORDS}))\s+(?:dollars?|bucks|yuan)\b"
            )),
            digits: re(r"[0-9]{4,}"),
            cn_digits: re(r"[零〇一二三四五六七八九幺]{4,}"),
            en_digits: re(r"\b(?:(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\s+){3,}(?:zero|oh|one|two|three|four|five|six|seven|eight|nine)\b"),
            number: re(r"[0-9]+(?:\.[0-9]+)?"),
            cn_number: re(r"[零〇一二两三四五六七八九十百千万亿]+"),
            en_number: re(&format!(r"\b(?:{EN_NUM_WORDS})(?:[\s-]+(?:and\s+)?(?:{EN_NUM_WORDS}))*\b")),
            zh_address: re(&format!(
                r"(?:\p{{Han}}{{1,8}}?{ZH_PLACE})+(?:[0-9a-z{CN_NUM_CHARS}]+(?:号楼|号院|号|弄|段|期|栋|幢|座|单元|楼|层|室))*"
            )),
            zh_place: re(ZH_PLACE),
            en_address: re(&format!(
                r"\b(?P<num>\d{{1,6}}|(?:(?:{EN_NUM_WORDS})[\s-]+){{0,3}}(?:{EN_NUM_WORDS}))\s+(?P<street>(?:[a-z]+\s+){{1,3}}?(?:street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|way|court|ct|place|pl|terrace|parkway))\b(?:,?\s*(?:apt|apartment|suite|unit)\.?\s*(?P<unit>[0-9a-z]+))?(?:,?\s+(?P<city>[a-z]+(?:\s[a-z]+)?),?\s+(?P<state>[a-z]{{2}})\s+(?P<zip>\d{{5}}))?"
            )),
            en_date: re(&format!(
                r"\b(?:(?P<mon>{mon})\s+(?:the\s+)?(?P<d>{ord})|(?:the\s+)?(?P<d2>{ord})\s+of\s+(?P<mon2>{mon}))\b",
                mon = structured::en_month_pattern(),
                ord = structured::en_ordinal_pattern(),
            )),
        }
    })
}

/// Lower case and full-width ASCII folded; every byte offset maps 1:1 onto
/// characters of the original, so entity text is a substring of this.
fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            0x3000 => ' ',
            0xFFE5 => '¥',
            _ => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

fn num_value(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        Value::from(v as i64)
    } else {
        Value::from(v)
    }
}

struct Found {
    start: usize,
    end: usize,
    kind: &'static str,
    value: Value,
    parts: BTreeMap<String, String>,
}

struct Spans(Vec<Found>);

impl Spans {
    fn free(&self, start: usize, end: usize) -> bool {
        self.0.iter().all(|f| end <= f.start || start >= f.end)
    }
    fn push(&mut self, start: usize, end: usize, kind: &'static str, value: Value) -> bool {
        self.push_parts(start, end, kind, value, BTreeMap::new())
    }
    fn push_parts(
        &mut self,
        start: usize,
        end: usize,
        kind: &'static str,
        value: Value,
        parts: BTreeMap<String, String>,
    ) -> bool {
        if start < end && self.free(start, end) {
            self.0.push(Found {
                start,
                end,
                kind,
                value,
                parts,
            });
            true
        } else {
            false
        }
    }
    fn hits(&mut self, hits: Vec<structured::Hit>) {
        for h in hits {
            self.push_parts(h.start, h.end, h.kind, Value::String(h.value), h.parts);
        }
    }
}

/// All entities of `text`, in order of appearance (a `yes_no` reading first).
pub fn extract(text: &str, now: DateTime<Utc>, tz: Tz) -> Vec<Entity> {
    let s = fold(text);
    let mut spans = Spans(Vec::new());
    let local = now.with_timezone(&tz);
    // First, so "…路18号" is a house number and never the 18th.
    address(text, &s, &mut spans);
    // Before digits, so "订单号幺二三四五六" is an order number, not a phone.
    spans.hits(structured::order_numbers(&s));
    spans.hits(structured::names(&s));
    // Before times, so a birth date is a date and not a callback time.
    spans.hits(structured::dates_with_year(&s));
    times(&s, &local, &mut spans);
    money(&s, &mut spans);
    digits_and_numbers(&s, &mut spans);
    spans.0.sort_by_key(|f| f.start);
    let mut out = Vec::with_capacity(spans.0.len() + 1);
    if let Some(yes) = yes_no(&s) {
        out.push(Entity {
            kind: "yes_no".into(),
            value: Value::Bool(yes),
            text: yes_no_text(&s),
            parts: BTreeMap::new(),
        });
    }
    for f in spans.0 {
        out.push(Entity {
            kind: f.kind.into(),
            value: f.value,
            text: s[f.start..f.end].trim().to_string(),
            parts: f.parts,
        });
    }
    out
}

/// A Chinese address (at least two place words, or one and a house number) or
/// an English street address; the value is the address as the callee said it.
fn address(original: &str, s: &str, spans: &mut Spans) {
    let p = patterns();
    // Folding keeps characters 1:1, so char offsets in `s` index `original`.
    let same = original.chars().count() == s.chars().count();
    let original_of = |start: usize, end: usize| -> String {
        if !same {
            return s[start..end].to_string();
        }
        let cs = s[..start].chars().count();
        let ce = cs + s[start..end].chars().count();
        original.chars().skip(cs).take(ce - cs).collect()
    };
    for m in p.zh_address.find_iter(s) {
        let mut start = m.start();
        'lead: loop {
            for l in ZH_ADDRESS_LEAD {
                if s[start..m.end()].starts_with(l)
                    && s[start + l.len()..m.end()].chars().count() > 2
                {
                    start += l.len();
                    continue 'lead;
                }
            }
            break;
        }
        // A lead inside the first part ("我们搬到广东…", "我家在上海市…"): the
        // address starts after it, or at a province name.
        let first_place = p
            .zh_place
            .find(&s[start..m.end()])
            .map(|x| start + x.start());
        if let Some(fp) = first_place {
            let head = &s[start..fp];
            let cut = ZH_ADDRESS_LEAD
                .iter()
                .filter(|l| l.chars().count() >= 2)
                .filter_map(|l| head.rfind(l).map(|i| i + l.len()))
                .max()
                .or_else(|| structured::province_start(head).filter(|i| *i > 0));
            if let Some(c) = cut {
                if s[start + c..m.end()].chars().count() > 2 {
                    start += c;
                }
            }
        }
        let text = &s[start..m.end()];
        let places = p.zh_place.find_iter(text).count();
        let numbered = text.ends_with(['号', '弄', '栋', '幢', '座', '元', '楼', '层', '室']);
        if places >= 2 || (places >= 1 && numbered) {
            let v = original_of(start, m.end());
            let parts = structured::zh_address_parts(text);
            spans.push_parts(start, m.end(), "address", Value::String(v), parts);
        }
    }
    for c in p.en_address.captures_iter(s) {
        let Some(m) = c.get(0) else { continue };
        let v = original_of(m.start(), m.end());
        let parts = structured::en_address_parts(&c);
        spans.push_parts(m.start(), m.end(), "address", Value::String(v), parts);
    }
}

fn rfc3339(t: DateTime<Tz>) -> Value {
    Value::String(t.to_rfc3339_opts(SecondsFormat::Secs, false))
}

/// Resolve a local date and time in `tz`; in a DST gap, an hour later.
fn at(tz: Tz, date: NaiveDate, time: NaiveTime) -> Option<DateTime<Tz>> {
    let ndt = date.and_time(time);
    tz.from_local_datetime(&ndt).earliest().or_else(|| {
        tz.from_local_datetime(&(ndt + Duration::hours(1)))
            .earliest()
    })
}

#[derive(Clone, Copy, PartialEq)]
enum Part {
    EarlyMorning,
    Morning,
    Forenoon,
    Noon,
    Afternoon,
    Dusk,
    Evening,
    Night,
}

impl Part {
    fn default_hour(self) -> u32 {
        match self {
            Part::EarlyMorning => 6,
            Part::Morning => 9,
            Part::Forenoon => 10,
            Part::Noon => 12,
            Part::Afternoon => 15,
            Part::Dusk => 18,
            Part::Evening => 19,
            Part::Night => 21,
        }
    }
    /// 24-hour clock for an hour said within this part of the day.
    fn adjust(self, h: u32) -> u32 {
        match self {
            Part::Afternoon | Part::Dusk | Part::Evening | Part::Night if h < 12 => h + 12,
            Part::Noon if h <= 3 => h + 12,
            Part::EarlyMorning if h == 12 => 0,
            _ => h,
        }
    }
}

fn zh_part(s: &str) -> Option<Part> {
    Some(match s {
        "凌晨" => Part::EarlyMorning,
        "早上" | "早晨" | "明早" | "今早" => Part::Morning,
        "上午" => Part::Forenoon,
        "中午" => Part::Noon,
        "下午" => Part::Afternoon,
        "傍晚" => Part::Dusk,
        "晚上" | "明晚" | "今晚" => Part::Evening,
        "夜里" => Part::Night,
        _ => return None,
    })
}

fn en_part(s: &str) -> Option<Part> {
    Some(match s {
        "morning" => Part::Morning,
        "noon" | "lunchtime" => Part::Noon,
        "afternoon" => Part::Afternoon,
        "evening" | "tonight" => Part::Evening,
        "night" => Part::Night,
        _ => return None,
    })
}

fn weekday_from(c: &str) -> Option<Weekday> {
    Some(match c {
        "一" | "1" | "monday" => Weekday::Mon,
        "二" | "2" | "tuesday" => Weekday::Tue,
        "三" | "3" | "wednesday" => Weekday::Wed,
        "四" | "4" | "thursday" => Weekday::Thu,
        "五" | "5" | "friday" => Weekday::Fri,
        "六" | "6" | "saturday" => Weekday::Sat,
        "日" | "天" | "7" | "sunday" => Weekday::Sun,
        _ => return None,
    })
}

/// Date of `wd` in the week `weeks_ahead` weeks from today's (weeks start on Monday).
fn weekday_in_week(today: NaiveDate, wd: Weekday, weeks_ahead: i64) -> NaiveDate {
    let monday = today - Duration::days(today.weekday().num_days_from_monday() as i64);
    monday + Duration::days(7 * weeks_ahead + wd.num_days_from_monday() as i64)
}

/// The next `wd` from today (today itself counts).
fn next_weekday(today: NaiveDate, wd: Weekday) -> NaiveDate {
    let diff =
        (7 + wd.num_days_from_monday() as i64 - today.weekday().num_days_from_monday() as i64) % 7;
    today + Duration::days(diff)
}

struct DayFix {
    date: NaiveDate,
    part: Option<Part>,
}

fn zh_day(c: &Captures, today: NaiveDate) -> Option<DayFix> {
    if let Some(d) = c.name("day") {
        let (off, part) = match d.as_str() {
            "今天" | "今儿" => (0, None),
            "今晚" => (0, Some(Part::Evening)),
            "今早" => (0, Some(Part::Morning)),
            "明天" | "明儿" => (1, None),
            "明早" => (1, Some(Part::Morning)),
            "明晚" => (1, Some(Part::Evening)),
            "后天" => (2, None),
            "大后天" => (3, None),
            _ => return None,
        };
        return Some(DayFix {
            date: today + Duration::days(off),
            part,
        });
    }
    if let Some(wd) = c.name("wd") {
        let wd = weekday_from(wd.as_str())?;
        let date = match c.name("wk").map(|m| m.as_str()) {
            Some(w) if w.starts_with("下下") => weekday_in_week(today, wd, 2),
            Some(w) if w.starts_with('下') => weekday_in_week(today, wd, 1),
            Some(_) => weekday_in_week(today, wd, 0),
            None => next_weekday(today, wd),
        };
        return Some(DayFix { date, part: None });
    }
    let dom = parse_cn(c.name("dom")?.as_str())? as u32;
    let date = match c.name("mon") {
        Some(m) => {
            let mon = parse_cn(m.as_str())? as u32;
            let d = NaiveDate::from_ymd_opt(today.year(), mon, dom)?;
            if d < today {
                NaiveDate::from_ymd_opt(today.year() + 1, mon, dom)?
            } else {
                d
            }
        }
        None => {
            let d = NaiveDate::from_ymd_opt(today.year(), today.month(), dom)?;
            if d < today {
                let (y, m) = if today.month() == 12 {
                    (today.year() + 1, 1)
                } else {
                    (today.year(), today.month() + 1)
                };
                NaiveDate::from_ymd_opt(y, m, dom)?
            } else {
                d
            }
        }
    };
    Some(DayFix { date, part: None })
}

fn en_day(c: &Captures, today: NaiveDate) -> Option<DayFix> {
    if let Some(d) = c.name("day") {
        let (off, part) = match d.as_str() {
            "today" => (0, None),
            "tonight" => (0, Some(Part::Evening)),
            "tomorrow" => (1, None),
            _ => (2, None),
        };
        return Some(DayFix {
            date: today + Duration::days(off),
            part,
        });
    }
    if let Some(wd) = c.name("wd") {
        let next = c.name("wk").is_some_and(|w| w.as_str() == "next");
        if wd.as_str() == "week" {
            return Some(DayFix {
                date: weekday_in_week(today, Weekday::Mon, if next { 1 } else { 0 }),
                part: None,
            });
        }
        let wd = weekday_from(wd.as_str())?;
        let date = if next {
            weekday_in_week(today, wd, 1)
        } else {
            next_weekday(today, wd)
        };
        return Some(DayFix { date, part: None });
    }
    let wd = weekday_from(c.name("wd2")?.as_str())?;
    Some(DayFix {
        date: next_weekday(today, wd),
        part: None,
    })
}

struct Clock {
    hour: u32,
    minute: u32,
    /// The speaker said am/pm explicitly.
    pinned: bool,
}

fn zh_clock(c: &Captures, s: &str) -> Option<Clock> {
    if let (Some(h), Some(m)) = (c.name("hh"), c.name("mm")) {
        return Some(Clock {
            hour: h.as_str().parse().ok()?,
            minute: m.as_str().parse().ok()?,
            pinned: false,
        });
    }
    let h = c.name("hour")?;
    if let Some(prev) = s[..h.start()].chars().next_back() {
        if NOT_CLOCK_BEFORE.contains(prev) {
            return None;
        }
    }
    let hour = parse_cn(h.as_str())? as u32;
    let minute = if c.name("half").is_some() {
        30
    } else if let Some(q) = c.name("q") {
        if q.as_str() == "一刻" {
            15
        } else {
            45
        }
    } else if let Some(m) = c.name("min") {
        parse_cn(m.as_str())? as u32
    } else {
        0
    };
    Some(Clock {
        hour,
        minute,
        pinned: false,
    })
}

fn en_clock(c: &Captures) -> Option<Clock> {
    let (h, m, ampm) = match c.name("hour") {
        Some(h) => (h.as_str(), c.name("min"), c.name("ampm")),
        None => (c.name("hour2")?.as_str(), c.name("min2"), c.name("ampm2")),
    };
    let mut hour: u32 = match h.parse() {
        Ok(v) => v,
        Err(_) => en_word_value(h)? as u32,
    };
    let minute: u32 = match m {
        Some(m) => m.as_str().parse().ok()?,
        None => 0,
    };
    let mut pinned = false;
    if let Some(a) = ampm {
        let a = a.as_str();
        if a.starts_with('p') && hour < 12 {
            hour += 12;
            pinned = true;
        } else if a.starts_with('a') {
            if hour == 12 {
                hour = 0;
            }
            pinned = true;
        }
    }
    Some(Clock {
        hour,
        minute,
        pinned,
    })
}

fn rel_amount(n: &str, half: bool) -> Option<f64> {
    let v = match n {
        "半" | "half an" | "half a" => 0.5,
        "a" | "an" => 1.0,
        "a couple of" | "couple of" => 2.0,
        "forty five" => 45.0,
        _ => match n.parse::<f64>() {
            Ok(v) => v,
            Err(_) => match en_word_value(n) {
                Some(v) => v as f64,
                None => parse_cn(n)?,
            },
        },
    };
    Some(if half { v + 0.5 } else { v })
}

fn rel_minutes(unit: &str) -> Option<f64> {
    Some(match unit {
        "分钟" => 1.0,
        u if u.starts_with("min") => 1.0,
        "小时" | "钟头" => 60.0,
        u if u.starts_with("hour") || u.starts_with("hr") => 60.0,
        "天" => 1440.0,
        u if u.starts_with("day") => 1440.0,
        "星期" | "礼拜" | "周" => 10080.0,
        u if u.starts_with("week") => 10080.0,
        _ => return None,
    })
}

fn times(s: &str, local: &DateTime<Tz>, spans: &mut Spans) {
    let p = patterns();
    let tz = local.timezone();
    let today = local.date_naive();
    // Relative: "一个小时以后", "过两天", "in an hour", "20 minutes from now".
    for c in p.zh_rel.captures_iter(s) {
        if c.name("pre").is_none() && c.name("post").is_none() {
            continue;
        }
        let (Some(n), Some(u)) = (c.name("n"), c.name("unit")) else {
            continue;
        };
        let (Some(a), Some(m)) = (
            rel_amount(n.as_str(), c.name("half").is_some()),
            rel_minutes(u.as_str()),
        ) else {
            continue;
        };
        let m0 = c.get(0).map(|m| (m.start(), m.end()));
        if let (Some((st, en)), Some(t)) = (
            m0,
            local.checked_add_signed(Duration::seconds((a * m * 60.0) as i64)),
        ) {
            spans.push(st, en, "time", rfc3339(t));
        }
    }
    for c in p.en_rel.captures_iter(s) {
        let (n, u) = match (c.name("n"), c.name("unit")) {
            (Some(n), Some(u)) => (n, u),
            _ => match (c.name("n2"), c.name("unit2")) {
                (Some(n), Some(u)) => (n, u),
                _ => continue,
            },
        };
        let (Some(a), Some(m)) = (rel_amount(n.as_str(), false), rel_minutes(u.as_str())) else {
            continue;
        };
        let m0 = c.get(0).map(|m| (m.start(), m.end()));
        if let (Some((st, en)), Some(t)) = (
            m0,
            local.checked_add_signed(Duration::seconds((a * m * 60.0) as i64)),
        ) {
            spans.push(st, en, "time", rfc3339(t));
        }
    }
    // Absolute: a day, a part of the day and a clock time, each optional, combined.
    let mut lo = usize::MAX;
    let mut hi = 0;
    let mut day: Option<DayFix> = None;
    let mut part: Option<Part> = None;
    let mut clock: Option<Clock> = None;
    let note = |st: usize, en: usize, lo: &mut usize, hi: &mut usize| {
        *lo = (*lo).min(st);
        *hi = (*hi).max(en);
    };
    for c in p.zh_day.captures_iter(s).chain(p.en_day.captures_iter(s)) {
        let Some(m) = c.get(0) else { continue };
        if day.is_some() || !spans.free(m.start(), m.end()) {
            continue;
        }
        let fix = if c.name("wd2").is_some() || m.as_str().is_ascii() {
            en_day(&c, today)
        } else {
            zh_day(&c, today)
        };
        if let Some(f) = fix {
            part = part.or(f.part);
            day = Some(f);
            note(m.start(), m.end(), &mut lo, &mut hi);
        }
    }
    // "december twenty fifth", "the 3rd of january": the next such date.
    for c in p.en_date.captures_iter(s) {
        let Some(m) = c.get(0) else { continue };
        if day.is_some() || !spans.free(m.start(), m.end()) {
            continue;
        }
        let mon = c
            .name("mon")
            .or(c.name("mon2"))
            .and_then(|x| en_month(x.as_str()));
        let dom = c
            .name("d")
            .or(c.name("d2"))
            .and_then(|x| en_day_of_month(x.as_str()));
        let fix = mon.zip(dom).and_then(|(mon, dom)| {
            let d = NaiveDate::from_ymd_opt(today.year(), mon, dom)?;
            let date = if d < today {
                NaiveDate::from_ymd_opt(today.year() + 1, mon, dom)?
            } else {
                d
            };
            Some(DayFix { date, part: None })
        });
        if let Some(f) = fix {
            part = part.or(f.part);
            day = Some(f);
            note(m.start(), m.end(), &mut lo, &mut hi);
        }
    }
    for m in p.zh_part.find_iter(s).chain(p.en_part.find_iter(s)) {
        if !spans.free(m.start(), m.end()) {
            continue;
        }
        if let Some(pt) = zh_part(m.as_str()).or_else(|| en_part(m.as_str())) {
            part = Some(part.unwrap_or(pt));
            note(m.start(), m.end(), &mut lo, &mut hi);
            break;
        }
    }
    for c in p.zh_clock.captures_iter(s) {
        let Some(m) = c.get(0) else { continue };
        if !spans.free(m.start(), m.end()) {
            continue;
        }
        if let Some(k) = zh_clock(&c, s) {
            clock = Some(k);
            note(m.start(), m.end(), &mut lo, &mut hi);
            break;
        }
    }
    if clock.is_none() {
        for c in p.en_clock.captures_iter(s) {
            let Some(m) = c.get(0) else { continue };
            if !spans.free(m.start(), m.end()) {
                continue;
            }
            // "about two thousand", "at one hundred dollars": an amount, not a clock.
            let next = s[m.end()..].split_whitespace().next().unwrap_or("");
            if [
                "hundred", "thousand", "million", "dollars", "bucks", "yuan", "percent",
            ]
            .contains(&next)
            {
                continue;
            }
            if let Some(k) = en_clock(&c) {
                clock = Some(k);
                note(m.start(), m.end(), &mut lo, &mut hi);
                break;
            }
        }
    }
    if day.is_none() && part.is_none() && clock.is_none() {
        return;
    }
    let (hour, minute) = match (&clock, part) {
        (Some(k), _) if k.pinned => (k.hour, k.minute),
        (Some(k), Some(pt)) => (pt.adjust(k.hour), k.minute),
        // A callback "at 3" means 3 pm.
        (Some(k), None) if (1..=7).contains(&k.hour) => (k.hour + 12, k.minute),
        (Some(k), None) => (k.hour, k.minute),
        (None, Some(pt)) => (pt.default_hour(), 0),
        (None, None) => (10, 0),
    };
    let (hour, extra_days) = if hour == 24 { (0, 1) } else { (hour, 0) };
    let Some(time) = NaiveTime::from_hms_opt(hour, minute, 0) else {
        return;
    };
    let explicit_day = day.is_some();
    let date = day.map(|d| d.date).unwrap_or(today) + Duration::days(extra_days);
    let Some(mut t) = at(tz, date, time) else {
        return;
    };
    if !explicit_day && t <= *local {
        match at(tz, date + Duration::days(1), time) {
            Some(next) => t = next,
            None => return,
        }
    }
    if lo < hi {
        spans.push(lo, hi, "time", rfc3339(t));
    }
}

fn mult_of(m: Option<&str>) -> f64 {
    match m {
        Some("万") | Some("w") => 10_000.0,
        Some("千") | Some("k") => 1000.0,
        _ => 1.0,
    }
}

fn money(s: &str, spans: &mut Spans) {
    let p = patterns();
    for c in p.money_symbol.captures_iter(s) {
        let (Some(m), Some(n)) = (c.get(0), c.name("num")) else {
            continue;
        };
        if let Ok(v) = n.as_str().replace(',', "").parse::<f64>() {
            spans.push(
                m.start(),
                m.end(),
                "money",
                num_value(v * mult_of(c.name("mult").map(|x| x.as_str()))),
            );
        }
    }
    for c in p.money_unit.captures_iter(s) {
        let (Some(m), Some(n)) = (c.get(0), c.name("num")) else {
            continue;
        };
        let Some(mut v) = parse_cn(&n.as_str().replace(',', "")) else {
            continue;
        };
        v *= mult_of(c.name("mult").map(|x| x.as_str()));
        let mut end = m.end();
        if let Some(j) = c.name("jiao") {
            // "三块五" = 3.5, but not "五块五十" (ambiguous, leave the tail).
            match j
                .as_str()
                .chars()
                .next()
                .and_then(|ch| parse_cn(&ch.to_string()))
            {
                Some(d) if c.name("unit").is_some_and(|u| u.as_str().starts_with('块')) => {
                    v += d / 10.0
                }
                _ => end = j.start(),
            }
        }
        spans.push(m.start(), end, "money", num_value(v));
    }
    for c in p.money_jiao.captures_iter(s) {
        let (Some(m), Some(n)) = (c.get(0), c.name("num")) else {
            continue;
        };
        if let Some(v) = parse_cn(n.as_str()) {
            spans.push(m.start(), m.end(), "money", num_value(v / 10.0));
        }
    }
    for c in p.money_bare.captures_iter(s) {
        let (Some(m), Some(n)) = (c.get(0), c.name("num")) else {
            continue;
        };
        // "三万人", "两千个": counted things, not money; "一千二百九十九": a
        // longer number that goes on after 千.
        if s[m.end()..].chars().next().is_some_and(|ch| {
            "个人次条张家年月天件台位岁块元".contains(ch)
                || "零一二两三四五六七八九十百".contains(ch)
        }) {
            continue;
        }
        if let Some(v) = parse_cn(n.as_str()) {
            spans.push(
                m.start(),
                m.end(),
                "money",
                num_value(v * mult_of(c.name("mult").map(|x| x.as_str()))),
            );
        }
    }
    for c in p.money_en_words.captures_iter(s) {
        let (Some(m), Some(n)) = (c.get(0), c.name("num")) else {
            continue;
        };
        let words: Vec<&str> = n.as_str().split_whitespace().collect();
        if let Some(v) = parse_en_spoken(&words) {
            spans.push(m.start(), m.end(), "money", num_value(v));
        }
    }
}

fn digits_and_numbers(s: &str, spans: &mut Spans) {
    let p = patterns();
    for m in p.digits.find_iter(s) {
        // Part of a decimal ("12345.6") is a number, not a digit string.
        if s[m.end()..].starts_with('.') || s[..m.start()].ends_with('.') {
            continue;
        }
        spans.push(
            m.start(),
            m.end(),
            "digits",
            Value::String(m.as_str().to_string()),
        );
    }
    for m in p.cn_digits.find_iter(s) {
        if let Some(d) = cn_digit_string(m.as_str()) {
            spans.push(m.start(), m.end(), "digits", Value::String(d));
        }
    }
    for m in p.en_digits.find_iter(s) {
        let d: String = m
            .as_str()
            .split_whitespace()
            .filter_map(|w| if w == "oh" { Some(0) } else { en_word_value(w) })
            .filter_map(|v| char::from_digit(v as u32, 10))
            .collect();
        spans.push(m.start(), m.end(), "digits", Value::String(d));
    }
    for m in p.number.find_iter(s) {
        if let Ok(v) = m.as_str().parse::<f64>() {
            spans.push(m.start(), m.end(), "number", num_value(v));
        }
    }
    for m in p.cn_number.find_iter(s) {
        let t = m.as_str();
        // "万一", "一下", "一起": a lone numeral is a number only before a measure word.
        if t.starts_with(['万', '亿', '千', '百']) {
            continue;
        }
        let next = s[m.end()..].chars().next();
        if t.chars().count() < 2 && !next.is_some_and(|c| MEASURE.contains(c)) {
            continue;
        }
        if let Some(v) = parse_cn(t) {
            spans.push(m.start(), m.end(), "number", num_value(v));
        }
    }
    for m in p.en_number.find_iter(s) {
        let words: Vec<&str> = m.as_str().split_whitespace().collect();
        if words.len() == 1 && words[0] == "one" {
            continue; // "no one", "one more time"
        }
        if let Some(v) = parse_en_spoken(&words) {
            spans.push(m.start(), m.end(), "number", num_value(v));
        }
    }
}

const ZH_NO: [&str; 10] = [
    "不是",
    "不对",
    "没有",
    "不行",
    "不要",
    "不用",
    "不可以",
    "不",
    "没",
    "否",
];
const ZH_YES: [&str; 11] = [
    "是",
    "对",
    "好",
    "可以",
    "行",
    "嗯",
    "没问题",
    "当然",
    "要",
    "有",
    "ok",
];
const EN_NO: [&str; 6] = ["no", "nope", "nah", "never", "negative", "incorrect"];
const EN_YES: [&str; 13] = [
    "yes",
    "yeah",
    "yep",
    "yup",
    "sure",
    "correct",
    "right",
    "ok",
    "okay",
    "absolutely",
    "definitely",
    "affirmative",
    "mhm",
];
const LEADING_FILLERS: [&str; 9] = ["嗯", "啊", "呃", "额", "哦", "喂", "那个", "哎", "就是"];

/// The answer's head after leading fillers (but a bare "嗯嗯" is itself a yes).
fn head(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ')
        .collect();
    let mut rest = t.trim();
    loop {
        let before = rest;
        for f in LEADING_FILLERS {
            if let Some(r) = rest.strip_prefix(f) {
                if !r.trim().is_empty() {
                    rest = r.trim_start();
                }
            }
        }
        for f in ["uh ", "um ", "well ", "oh ", "hmm "] {
            if let Some(r) = rest.strip_prefix(f) {
                rest = r.trim_start();
            }
        }
        if rest == before {
            break;
        }
    }
    rest.to_string()
}

fn yes_no(s: &str) -> Option<bool> {
    let h = head(s);
    if h.is_empty() {
        return None;
    }
    if h.is_ascii() {
        let first = h.split_whitespace().next()?;
        if EN_NO.contains(&first) {
            return Some(false);
        }
        if EN_YES.contains(&first) && !h.starts_with("right now") {
            return Some(true);
        }
        return None;
    }
    let compact: String = h.chars().filter(|c| !c.is_whitespace()).collect();
    if ZH_NO.iter().any(|p| compact.starts_with(p)) {
        return Some(false);
    }
    for p in ZH_YES {
        if let Some(rest) = compact.strip_prefix(p) {
            // "好的", "对啊", "是我" — but "好烦", "要不", "有病" are not answers.
            let short = compact.chars().count() <= 4;
            let particle = rest.is_empty()
                || rest.starts_with([
                    '的',
                    '啊',
                    '呀',
                    '吧',
                    '了',
                    '嘛',
                    '呢',
                    '滴',
                    '我',
                    p.chars().next().unwrap_or(' '),
                ]);
            if particle || (short && !rest.starts_with(['不', '病', '烦', '点'])) {
                return Some(true);
            }
        }
    }
    None
}

fn yes_no_text(s: &str) -> String {
    head(s)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .chars()
        .take(4)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Asia::Shanghai;

    /// Wednesday 2026-11-25 10:00 in Shanghai.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0)
            .single()
            .expect("valid")
    }

    fn find(text: &str, kind: &str) -> Vec<Value> {
        extract(text, now(), Shanghai)
            .into_iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.value)
            .collect()
    }

    fn time(text: &str) -> String {
        match find(text, "time").first() {
            Some(Value::String(s)) => s.clone(),
            other => panic!("{text}: no time, got {other:?}"),
        }
    }

    #[test]
    fn chinese_callback_times() {
        assert_eq!(time("明天下午三点"), "2026-11-26T15:00:00+08:00");
        assert_eq!(time("在开车 明天下午三点再打"), "2026-11-26T15:00:00+08:00");
        assert_eq!(time("下周三上午"), "2026-12-02T10:00:00+08:00");
        assert_eq!(time("一个小时以后"), "2026-11-25T11:00:00+08:00");
        assert_eq!(time("半小时后再打"), "2026-11-25T10:30:00+08:00");
        assert_eq!(time("一个半小时之后"), "2026-11-25T11:30:00+08:00");
        assert_eq!(time("晚上八点以后"), "2026-11-25T20:00:00+08:00");
        assert_eq!(time("后天晚上七点半"), "2026-11-27T19:30:00+08:00");
        assert_eq!(time("周五下午"), "2026-11-27T15:00:00+08:00");
        assert_eq!(time("三点"), "2026-11-25T15:00:00+08:00");
        assert_eq!(
            time("9点"),
            "2026-11-26T09:00:00+08:00",
            "past today means tomorrow"
        );
        assert_eq!(time("过两天"), "2026-11-27T10:00:00+08:00");
        assert_eq!(time("12月3号上午十点一刻"), "2026-12-03T10:15:00+08:00");
        assert_eq!(time("明天14:30"), "2026-11-26T14:30:00+08:00");
        assert!(find("说慢一点", "time").is_empty());
    }

    #[test]
    fn english_callback_times() {
        assert_eq!(time("tomorrow morning"), "2026-11-26T09:00:00+08:00");
        assert_eq!(time("call me in an hour"), "2026-11-25T11:00:00+08:00");
        assert_eq!(time("in 20 minutes"), "2026-11-25T10:20:00+08:00");
        assert_eq!(time("tomorrow at 3pm"), "2026-11-26T15:00:00+08:00");
        assert_eq!(time("after eight tonight"), "2026-11-25T20:00:00+08:00");
        assert_eq!(time("next monday afternoon"), "2026-11-30T15:00:00+08:00");
        assert_eq!(time("call back on friday"), "2026-11-27T10:00:00+08:00");
    }

    #[test]
    fn time_zone_is_the_callees() {
        let e = extract("tomorrow at 9am", now(), chrono_tz::America::New_York);
        // 2026-11-24 21:00 in New York, so tomorrow is the 25th.
        assert_eq!(
            e.iter().find(|e| e.kind == "time").map(|e| e.value.clone()),
            Some(Value::from("2026-11-25T09:00:00-05:00"))
        );
    }

    #[test]
    fn money_amounts() {
        assert_eq!(find("五百块", "money"), vec![Value::from(500)]);
        assert_eq!(find("大概1.5万吧", "money"), vec![Value::from(15000)]);
        assert_eq!(find("¥300", "money"), vec![Value::from(300)]);
        assert_eq!(find("￥３００", "money"), vec![Value::from(300)]);
        assert_eq!(find("two hundred dollars", "money"), vec![Value::from(200)]);
        assert_eq!(find("$1,250.50 please", "money"), vec![Value::from(1250.5)]);
        assert_eq!(find("三块五", "money"), vec![Value::from(3.5)]);
        assert_eq!(find("两万五千元", "money"), vec![Value::from(25000)]);
        assert_eq!(find("3千块钱", "money"), vec![Value::from(3000)]);
        assert_eq!(find("20 bucks", "money"), vec![Value::from(20)]);
        assert!(find("三万人", "money").is_empty());
    }

    #[test]
    fn numbers_and_digits() {
        assert_eq!(find("尾号是幺三五七", "digits"), vec![Value::from("1357")]);
        // After an order cue the digits are an order number.
        assert_eq!(
            find("订单号20231125001", "order_number"),
            vec![Value::from("20231125001")]
        );
        assert_eq!(
            find("卡号20231125001", "digits"),
            vec![Value::from("20231125001")]
        );
        assert_eq!(
            find("my id ends in four five six seven", "digits"),
            vec![Value::from("4567")]
        );
        assert_eq!(find("我有三个孩子", "number"), vec![Value::from(3)]);
        assert_eq!(find("借了二十五期", "number"), vec![Value::from(25)]);
        assert_eq!(find("about 42 times", "number"), vec![Value::from(42)]);
        assert!(find("等一下 万一呢", "number").is_empty());
    }

    #[test]
    fn addresses_win_over_dates() {
        assert_eq!(
            find("上海市徐汇区漕溪北路18号", "address"),
            vec![Value::from("上海市徐汇区漕溪北路18号")]
        );
        assert!(find("上海市徐汇区漕溪北路18号", "time").is_empty());
        assert_eq!(
            find("嗯 送到闵行区七莘路3号", "address"),
            vec![Value::from("闵行区七莘路3号")]
        );
        assert_eq!(
            find("改到杭州市西湖区文三路25号", "address"),
            vec![Value::from("杭州市西湖区文三路25号")]
        );
        assert_eq!(
            find("it's 250 Oak Avenue", "address"),
            vec![Value::from("250 Oak Avenue")]
        );
        // No place word: still a date.
        assert!(find("18号再打吧", "address").is_empty());
        assert!(!find("18号再打吧", "time").is_empty());
    }

    #[test]
    fn yes_and_no() {
        let yn = |t: &str| find(t, "yes_no").first().and_then(|v| v.as_bool());
        assert_eq!(yn("嗯 对的"), Some(true));
        assert_eq!(yn("嗯嗯"), Some(true));
        assert_eq!(yn("好的"), Some(true));
        assert_eq!(yn("是我"), Some(true));
        assert_eq!(yn("不是"), Some(false));
        assert_eq!(yn("嗯 没有"), Some(false));
        assert_eq!(yn("uh yeah sure"), Some(true));
        assert_eq!(yn("nope"), Some(false));
        assert_eq!(yn("好烦啊你们"), None);
        assert_eq!(yn("你是谁"), None);
    }
}
