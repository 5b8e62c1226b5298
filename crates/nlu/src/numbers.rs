//! Chinese and English numerals.

fn cn_digit(c: char) -> Option<u64> {
    Some(match c {
        '零' | '〇' => 0,
        '一' | '幺' => 1,
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

fn cn_unit(c: char) -> Option<u64> {
    Some(match c {
        '十' => 10,
        '百' => 100,
        '千' => 1000,
        '万' => 10_000,
        '亿' => 100_000_000,
        _ => return None,
    })
}

/// Digit-by-digit reading ("一三八零", "幺零零八六"): the digit string, if every
/// character is a digit.
pub fn cn_digit_string(s: &str) -> Option<String> {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            out.push(c);
        } else {
            out.push(char::from_digit(cn_digit(c)? as u32, 10)?);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// Value of a Chinese numeral ("三千五" = 3500, "两万五" = 25000, "十二" = 12,
/// "一百零五" = 105) or a digit-by-digit one ("二零二四" = 2024). Arabic digits may
/// be mixed in ("3千", "1.5万"). `None` for anything else.
pub fn parse_cn(s: &str) -> Option<f64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    // Arabic number with an optional trailing Chinese multiplier: "1.5万", "3千", "2亿".
    let arabic_end = s
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '.'))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    if arabic_end > 0 {
        let base: f64 = s[..arabic_end].parse().ok()?;
        let mut mult = 1.0;
        for c in s[arabic_end..].chars() {
            mult *= cn_unit(c)? as f64;
        }
        return Some(base * mult);
    }
    let chars: Vec<char> = s.chars().collect();
    if chars.iter().all(|c| cn_digit(*c).is_some()) {
        if chars.len() == 1 {
            return cn_digit(chars[0]).map(|d| d as f64);
        }
        return cn_digit_string(s)?.parse::<f64>().ok();
    }
    let mut total: u64 = 0;
    let mut section: u64 = 0;
    let mut number: Option<u64> = None;
    let mut last_unit: u64 = 0;
    let mut saw_zero = false;
    for &c in &chars {
        if let Some(d) = cn_digit(c) {
            if d == 0 {
                saw_zero = true;
            }
            if number.is_some_and(|n| n != 0) {
                return None; // "三五" inside a numeral with units is not a number
            }
            number = Some(d);
        } else if let Some(u) = cn_unit(c) {
            match u {
                10_000 | 100_000_000 => {
                    let v = section.checked_add(number.unwrap_or(0))?;
                    let v = if v == 0 { 1 } else { v };
                    total = total.checked_add(v.checked_mul(u)?)?;
                    section = 0;
                }
                _ => {
                    let n = number.unwrap_or(1);
                    section = section.checked_add(n.checked_mul(u)?)?;
                }
            }
            number = None;
            last_unit = u;
            saw_zero = false;
        } else {
            return None;
        }
    }
    let mut tail = number.unwrap_or(0);
    // Colloquial abbreviation: "三千五" is 3500, "两万五" 25000, "一百五" 150 (not after 零).
    if number.is_some() && !saw_zero && last_unit >= 100 && tail > 0 {
        tail *= last_unit / 10;
    }
    Some((total + section + tail) as f64)
}

const EN_SMALL: [&str; 20] = [
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
const EN_TENS: [&str; 8] = [
    "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
];

pub fn en_word_value(w: &str) -> Option<u64> {
    if let Some(i) = EN_SMALL.iter().position(|x| *x == w) {
        return Some(i as u64);
    }
    if w == "oh" {
        return None;
    }
    EN_TENS
        .iter()
        .position(|x| *x == w)
        .map(|i| (i as u64 + 2) * 10)
}

/// English number words ("two hundred", "three thousand five hundred", "a
/// hundred and twenty") or digits. `None` when the words are not a number.
pub fn parse_en(words: &[&str]) -> Option<f64> {
    if words.len() == 1 {
        if let Ok(v) = words[0].replace(',', "").parse::<f64>() {
            return Some(v);
        }
    }
    let mut total: u64 = 0;
    let mut current: u64 = 0;
    let mut any = false;
    for (i, w) in words.iter().enumerate() {
        match *w {
            "a" if i == 0 => current = 1,
            "and" if any => {}
            "hundred" => {
                current = current.max(1).checked_mul(100)?;
                any = true;
            }
            "thousand" | "million" => {
                let m = if *w == "thousand" { 1000 } else { 1_000_000 };
                total = total.checked_add(current.max(1).checked_mul(m)?)?;
                current = 0;
                any = true;
            }
            _ => {
                let v = en_word_value(w)?;
                current = current.checked_add(v)?;
                any = true;
            }
        }
    }
    any.then_some((total + current) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_numerals() {
        for (s, v) in [
            ("五百", 500.0),
            ("三千五", 3500.0),
            ("两万五", 25000.0),
            ("十二", 12.0),
            ("二十", 20.0),
            ("一百零五", 105.0),
            ("一百五", 150.0),
            ("一万两千三百", 12300.0),
            ("1.5万", 15000.0),
            ("3千", 3000.0),
            ("二零二四", 2024.0),
            ("两", 2.0),
            ("十", 10.0),
            ("三亿", 300_000_000.0),
        ] {
            assert_eq!(parse_cn(s), Some(v), "{s}");
        }
        assert_eq!(parse_cn("三五十"), None);
        assert_eq!(parse_cn("abc"), None);
    }

    #[test]
    fn english_numerals() {
        let p = |s: &str| parse_en(&s.split(' ').collect::<Vec<_>>());
        assert_eq!(p("two hundred"), Some(200.0));
        assert_eq!(p("a hundred and twenty"), Some(120.0));
        assert_eq!(p("three thousand five hundred"), Some(3500.0));
        assert_eq!(p("forty two"), Some(42.0));
        assert_eq!(p("1,500"), Some(1500.0));
        assert_eq!(p("hello"), None);
    }
}
