//! Entities on ASR-style text (no punctuation, numbers in words, lower case,
//! fillers): addresses with their parts, names, order numbers, amounts and
//! dates said in words, Mandarin and English.
use chrono::{TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use proptest::prelude::*;
use waihu_core::nlu::Entity;
use waihu_nlu::entities::extract;

fn all(text: &str) -> Vec<Entity> {
    // Wednesday 2026-11-25 10:00 in Shanghai.
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 2, 0, 0).unwrap();
    extract(text, now, Shanghai)
}

fn one(text: &str, kind: &str) -> Entity {
    let found: Vec<Entity> = all(text).into_iter().filter(|e| e.kind == kind).collect();
    assert_eq!(
        found.len(),
        1,
        "{text:?}: want one {kind}, got {:?}",
        all(text)
    );
    found.into_iter().next().unwrap()
}

fn none(text: &str, kind: &str) {
    let found: Vec<Entity> = all(text).into_iter().filter(|e| e.kind == kind).collect();
    assert!(found.is_empty(), "{text:?}: want no {kind}, got {found:?}");
}

fn parts(e: &Entity, want: &[(&str, &str)]) {
    for (k, v) in want {
        assert_eq!(
            e.parts.get(*k).map(String::as_str),
            Some(*v),
            "{:?} part {k}",
            e
        );
    }
}

#[test]
fn chinese_addresses_have_parts() {
    let cases: &[(&str, &[(&str, &str)])] = &[
        (
            "嗯 送到上海市浦东新区世纪大道一百号",
            &[
                ("province", "上海市"),
                ("district", "浦东新区"),
                ("street", "世纪大道"),
                ("number", "100"),
            ],
        ),
        (
            "我们搬到广东深圳市南山区科技园小区三栋五零二室了",
            &[
                ("province", "广东省"),
                ("city", "深圳市"),
                ("community", "科技园小区"),
                ("building", "3"),
                ("room", "502"),
            ],
        ),
        (
            "新地址是浙江省杭州市西湖区文三路二十五号",
            &[
                ("province", "浙江省"),
                ("city", "杭州市"),
                ("district", "西湖区"),
                ("street", "文三路"),
                ("number", "25"),
            ],
        ),
        (
            "改到北京市朝阳区建国路88号",
            &[
                ("city", "北京市"),
                ("district", "朝阳区"),
                ("street", "建国路"),
                ("number", "88"),
            ],
        ),
        (
            "就寄到四川省成都市武侯区人民南路四段12号吧",
            &[
                ("province", "四川省"),
                ("city", "成都市"),
                ("district", "武侯区"),
                ("street", "人民南路"),
            ],
        ),
        (
            "地址是江苏省苏州市昆山市玉山镇",
            &[
                ("province", "江苏省"),
                ("city", "苏州市"),
                ("district", "昆山市"),
                ("town", "玉山镇"),
            ],
        ),
    ];
    for (text, want) in cases {
        let e = one(text, "address");
        parts(&e, want);
        none(text, "time");
    }
}

#[test]
fn english_addresses_have_parts() {
    let e = one("yeah it's two fifty oak avenue apartment 3b", "address");
    parts(
        &e,
        &[("number", "250"), ("street", "Oak Avenue"), ("unit", "3B")],
    );
    let e = one(
        "send it to 1200 main street springfield il 62704 please",
        "address",
    );
    parts(
        &e,
        &[
            ("number", "1200"),
            ("street", "Main Street"),
            ("city", "Springfield"),
            ("state", "IL"),
            ("zip", "62704"),
        ],
    );
    let e = one("we moved to forty two elm road", "address");
    parts(&e, &[("number", "42"), ("street", "Elm Road")]);
}

#[test]
fn names() {
    let e = one("喂 你好 我叫张伟", "name");
    assert_eq!(e.value, "张伟");
    parts(&e, &[("surname", "张"), ("given", "伟")]);
    let e = one("我姓欧阳", "name");
    parts(&e, &[("surname", "欧阳")]);
    let e = one("你找王先生吗 他不在", "name");
    parts(&e, &[("surname", "王"), ("title", "先生")]);
    let e = one("嗯 我是李娜 有什么事", "name");
    assert_eq!(e.value, "李娜");
    let e = one("my name is john smith and i never ordered that", "name");
    assert_eq!(e.value, "John Smith");
    parts(&e, &[("given", "John"), ("surname", "Smith")]);
    let e = one("this is mary speaking", "name");
    assert_eq!(e.value, "Mary");
    let e = one("you want mrs johnson she's out", "name");
    parts(&e, &[("title", "Mrs"), ("surname", "Johnson")]);
    for not in [
        "我是马上要出门了",
        "我是说你们打错了",
        "和老师说一下",
        "call me back tomorrow",
        "this is ridiculous",
        "this is not a good time",
        "i miss you",
    ] {
        none(not, "name");
    }
}

#[test]
fn order_numbers() {
    let e = one("订单号是幺三八零零二六一二零三", "order_number");
    assert_eq!(e.value, "13800261203");
    none("订单号是幺三八零零二六一二零三", "digits");
    let e = one(
        "my order number is a b one two three four five",
        "order_number",
    );
    assert_eq!(e.value, "AB12345");
    let e = one("快递单号sf1234567890 查一下", "order_number");
    assert_eq!(e.value, "SF1234567890");
    let e = one("the tracking number is jd dash 20261203", "order_number");
    assert_eq!(e.value, "JD20261203");
    // A phone number with no cue stays a digit string.
    let e = one("打我电话幺三八零零一三八零零零", "digits");
    assert_eq!(e.value, "13800138000");
    none("打我电话幺三八零零一三八零零零", "order_number");
}

#[test]
fn amounts_said_in_words() {
    assert_eq!(one("一千二百九十九块", "money").value, 1299);
    assert_eq!(one("价格是一千二百九十九", "number").value, 1299);
    assert_eq!(
        one("it was twelve ninety-nine dollars", "money").value,
        1299
    );
    assert_eq!(one("it cost twelve ninety nine", "number").value, 1299);
    assert_eq!(
        one("about two thousand five hundred bucks", "money").value,
        2500
    );
    assert_eq!(one("三千五百块钱", "money").value, 3500);
}

#[test]
fn dates_said_in_words() {
    // With a year: a calendar date (a birth date), not a callback time.
    let e = one("我是一九八五年三月二号出生的", "date");
    assert_eq!(e.value, "1985-03-02");
    none("我是一九八五年三月二号出生的", "time");
    assert_eq!(one("2027年1月15日到期", "date").value, "2027-01-15");
    assert_eq!(
        one("born march second nineteen eighty five", "date").value,
        "1985-03-02"
    );
    assert_eq!(
        one("due on the fifth of june twenty twenty seven", "date").value,
        "2027-06-05"
    );
    // Without a year: the next such day, as a callback time.
    assert_eq!(
        one("call me on december twenty fifth", "time").value,
        "2026-12-25T10:00:00+08:00"
    );
    assert_eq!(
        one("the third of january in the afternoon", "time").value,
        "2027-01-03T15:00:00+08:00"
    );
    assert_eq!(
        one("十二月二十五号下午再打", "time").value,
        "2026-12-25T15:00:00+08:00"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Cue words followed by arbitrary characters never panic and every
    /// entity's text is a piece of the folded input.
    #[test]
    fn structured_entities_never_panic(
        cue in prop_oneof![
            Just("订单号是"), Just("my order number is "), Just("我叫"), Just("this is "),
            Just("上海市浦东新区"), Just("mr "), Just("一九八五年"), Just("born march "),
            Just("250 oak avenue "), Just(""),
        ],
        tail in "[a-z0-9 幺零一二三四五六七八九十百千号路区市-]{0,24}|\\PC{0,24}",
    ) {
        let text = format!("{cue}{tail}");
        for e in all(&text) {
            prop_assert!(!e.kind.is_empty());
        }
    }
}
