//! Typed attribute values from CSV cells.
use chrono::NaiveDate;
use waihu_core::{AttrKind, AttrValue};

const DATE_FORMATS: [&str; 4] = ["%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日"];

pub fn parse_number(s: &str) -> Option<f64> {
    let t = s.trim();
    let t = t
        .trim_start_matches(['¥', '￥', '$'])
        .trim_end_matches('元')
        .trim();
    if t.is_empty() {
        return None;
    }
    if let Ok(v) = t.parse::<f64>() {
        return v.is_finite().then_some(v);
    }
    let cleaned: String = t.chars().filter(|c| *c != ',').collect();
    cleaned.parse::<f64>().ok().filter(|v| v.is_finite())
}

pub fn parse_bool(s: &str) -> Option<bool> {
    let t = s.trim();
    let is = |words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(&["是", "真", "有", "true", "yes", "y", "t"]) {
        Some(true)
    } else if is(&["否", "假", "无", "false", "no", "n", "f"]) {
        Some(false)
    } else {
        None
    }
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let t = s.trim();
    DATE_FORMATS
        .iter()
        .find_map(|f| NaiveDate::parse_from_str(t, f).ok())
}

/// Parse one non-empty cell as `kind`; `Err` says what was expected.
pub fn parse_as(kind: AttrKind, s: &str) -> Result<AttrValue, &'static str> {
    match kind {
        AttrKind::Number => parse_number(s)
            .map(AttrValue::Number)
            .ok_or("expected a number"),
        AttrKind::Bool => parse_bool(s)
            .map(AttrValue::Bool)
            .ok_or("expected yes/no (是/否, true/false)"),
        AttrKind::Date => parse_date(s)
            .map(AttrValue::Date)
            .ok_or("expected a date like 2026-01-31"),
        AttrKind::Text => Ok(AttrValue::Text(s.trim().to_string())),
    }
}

/// The narrowest kind that the sampled non-empty values fit, tolerating a few
/// bad cells (up to 5% of the sample, at least one once there are five values):
/// a stray "很多" in a number column should reject that row, not turn the whole
/// column into text. A column the store already knows keeps its stored kind.
pub fn infer_kind<'a>(values: impl Iterator<Item = &'a str>) -> AttrKind {
    let (mut n, mut num, mut boolean, mut date) = (0usize, 0usize, 0usize, 0usize);
    for v in values.map(str::trim).filter(|v| !v.is_empty()) {
        n += 1;
        num += usize::from(parse_number(v).is_some());
        boolean += usize::from(parse_bool(v).is_some());
        date += usize::from(parse_date(v).is_some());
    }
    if n == 0 {
        return AttrKind::Text;
    }
    let tolerated = if n >= 5 { (n / 20).max(1) } else { 0 };
    let fits = |ok: usize| ok > 0 && n - ok <= tolerated;
    if fits(num) {
        AttrKind::Number
    } else if fits(boolean) {
        AttrKind::Bool
    } else if fits(date) {
        AttrKind::Date
    } else {
        AttrKind::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells() {
        assert_eq!(parse_number("¥1,200.50"), Some(1200.5));
        assert_eq!(parse_number("300元"), Some(300.0));
        assert_eq!(parse_number("abc"), None);
        assert_eq!(parse_number("NaN"), None);
        assert_eq!(parse_bool("是"), Some(true));
        assert_eq!(parse_bool("No"), Some(false));
        assert_eq!(
            parse_date("2025年3月7日"),
            NaiveDate::from_ymd_opt(2025, 3, 7)
        );
        assert_eq!(
            parse_date("2025/03/07"),
            NaiveDate::from_ymd_opt(2025, 3, 7)
        );
        assert_eq!(infer_kind(["1", "2.5", ""].into_iter()), AttrKind::Number);
        assert_eq!(infer_kind(["是", "否"].into_iter()), AttrKind::Bool);
        assert_eq!(
            infer_kind(["2025-01-01", "2025/2/3"].into_iter()),
            AttrKind::Date
        );
        assert_eq!(infer_kind(["金卡", "3"].into_iter()), AttrKind::Text);
        assert_eq!(
            infer_kind(["1", "2", "3", "4", "很多"].into_iter()),
            AttrKind::Number
        );
        assert_eq!(
            infer_kind(["1", "2", "金卡", "银卡", "3"].into_iter()),
            AttrKind::Text
        );
    }
}
