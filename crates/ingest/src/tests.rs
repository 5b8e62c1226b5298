use super::*;
use proptest::prelude::*;
use waihu_core::AttrValue;

fn read_all(bytes: &[u8]) -> (Source<&[u8]>, Vec<CustomerRecord>, Vec<Reject>) {
    let mut src = Source::open(bytes, Options::new("CN").unwrap()).unwrap();
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    loop {
        let batch = src.next_batch(100).unwrap();
        if batch.is_empty() {
            break;
        }
        for r in batch {
            match r {
                Ok(c) => ok.push(c),
                Err(e) => bad.push(e),
            }
        }
    }
    (src, ok, bad)
}

const SAMPLE: &str = "姓名,手机号,购买频次,平均客单价,注册日期,是否APP用户,会员等级\n\
张伟,138 1234 5678,6,1200.5,2023-04-01,是,金卡\n\
李娜,+86 139-0000-1111,2,300,2024/01/15,否,普通\n\
王芳,12345,1,10,2024-01-01,否,普通\n\
赵磊,13700001111,很多,10,2024-01-01,否,普通\n\
钱多,13700002222,3\n\
Alice,+1 415 555 0123,4,99,2022-12-31,true,银卡\n";

#[test]
fn utf8_with_chinese_headers() {
    let (src, ok, bad) = read_all(SAMPLE.as_bytes());
    assert_eq!(src.encoding, "UTF-8");
    assert_eq!(ok.len(), 3, "{bad:?}");
    assert_eq!(ok[0].phone_e164, "+8613812345678");
    assert_eq!(ok[0].name.as_deref(), Some("张伟"));
    assert_eq!(ok[0].tz, chrono_tz::Asia::Shanghai);
    assert_eq!(ok[0].attrs["purchase_freq"], AttrValue::Number(6.0));
    assert_eq!(ok[0].attrs["has_app"], AttrValue::Bool(true));
    assert_eq!(ok[0].attrs["member_level"], AttrValue::Text("金卡".into()));
    assert_eq!(ok[1].phone_e164, "+8613900001111");
    assert_eq!(ok[2].phone_e164, "+14155550123");
    assert_eq!(ok[2].tz, chrono_tz::America::Los_Angeles);
    assert_eq!(ok[2].region, "US");
    // Bad rows: named by line, column and reason.
    assert_eq!(bad.len(), 3);
    let by_line = |l: u64| bad.iter().find(|r| r.line == l).unwrap();
    assert_eq!(by_line(4).column.as_deref(), Some("手机号"));
    assert!(by_line(4).reason.contains("12345"), "{:?}", by_line(4));
    assert_eq!(by_line(5).column.as_deref(), Some("购买频次"));
    assert!(by_line(5).reason.contains("expected a number"));
    assert!(by_line(6).reason.contains("expected 7 fields, found 3"));
}

#[test]
fn gbk_is_detected_and_decoded() {
    let (gbk, _, had_errors) = encoding_rs::GBK.encode(SAMPLE);
    assert!(!had_errors);
    assert!(
        std::str::from_utf8(&gbk).is_err(),
        "the fixture must really be GBK"
    );
    let (src, ok, bad) = read_all(&gbk);
    assert_eq!(src.encoding, "gb18030");
    assert_eq!(ok.len(), 3);
    assert_eq!(bad.len(), 3);
    assert_eq!(ok[0].name.as_deref(), Some("张伟"));
    assert_eq!(ok[0].attrs["member_level"], AttrValue::Text("金卡".into()));
}

#[test]
fn english_headers_bom_and_column_map() {
    let csv = "\u{feff}Customer Name,Mobile,Time Zone,Lifetime Value,VIP\nBob,+12125550123,America/Chicago,1000,yes\nEve,+12125550124,Mars/Olympus,5,no\n";
    let mut opts = Options::new("US").unwrap();
    opts.map = ColumnMap::from_yaml(
        "columns:\n  Time Zone: timezone\n  Customer Name: name\n",
        "map.yaml",
    )
    .unwrap();
    let mut src = Source::open(csv.as_bytes(), opts).unwrap();
    let rows = src.next_batch(10).unwrap();
    let ok = rows[0].as_ref().unwrap();
    assert_eq!(ok.name.as_deref(), Some("Bob"));
    assert_eq!(ok.tz, chrono_tz::America::Chicago);
    assert_eq!(ok.tz_source, TzSource::Column);
    assert_eq!(ok.attrs["lifetime_value"], AttrValue::Number(1000.0));
    assert_eq!(ok.attrs["vip"], AttrValue::Bool(true));
    let bad = rows[1].as_ref().unwrap_err();
    assert_eq!(bad.column.as_deref(), Some("Time Zone"));
}

#[test]
fn schema_kind_wins_over_inference() {
    let csv = "phone,score\n13800000001,A\n13800000002,5\n";
    let mut opts = Options::new("CN").unwrap();
    opts.schema.insert("score".into(), AttrKind::Number);
    let (_, ok, bad) = {
        let mut src = Source::open(csv.as_bytes(), opts).unwrap();
        let rows = src.next_batch(10).unwrap();
        let (ok, bad): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.is_ok());
        (src, ok, bad)
    };
    assert_eq!(ok.len(), 1);
    assert_eq!(bad.len(), 1);
}

#[test]
fn missing_phone_column_is_a_clear_error() {
    let err = Source::open(
        "姓名,城市\n张三,北京\n".as_bytes(),
        Options::new("CN").unwrap(),
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("no phone column"), "{err}");
    assert!(err.to_string().contains("城市"), "{err}");
    assert!(Options::new("XX").is_err());
}

#[test]
fn rejects_file_keeps_original_cells() {
    let (src, _, bad) = read_all(SAMPLE.as_bytes());
    let mut out = Vec::new();
    write_rejects(&mut out, &src.headers, &bad).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("赵磊"), "{text}");
    assert!(text.lines().count() == 4);
}

#[test]
fn split_batch_keeps_file_order() {
    let csv = "phone,name\n13800000001,A\n12,B\n13800000002,C\nx,D\n";
    let mut src = Source::open(csv.as_bytes(), Options::new("CN").unwrap()).unwrap();
    let (good, bad) = split_batch(src.next_batch(10).unwrap());
    let names: Vec<_> = good.iter().map(|c| c.name.as_deref().unwrap()).collect();
    assert_eq!(names, ["A", "C"]);
    let lines: Vec<_> = bad.iter().map(|r| r.line).collect();
    assert_eq!(lines, [3, 5]);
}

/// Rejects name the line the row is on in the file, blank lines and line
/// breaks inside quoted cells included (the csv crate alone gives the row after
/// a blank line the blank's number).
#[test]
fn reject_lines_count_blank_lines_and_quoted_line_breaks() {
    let csv = "phone,name,note\n\
               13800000001,A,x\n\
               \n\
               12,B,after one blank\n\
               \n\
               \n\
               x,C,after two blanks\n\
               13800000002,D,\"two\nlines\"\n\
               y,E,after a two-line row\r\n\
               \r\n\
               z,F,crlf\r\n";
    let (_, ok, bad) = read_all(csv.as_bytes());
    assert_eq!(ok.len(), 2, "{bad:?}");
    let lines: Vec<(u64, &str)> = bad.iter().map(|r| (r.line, r.cells[1].as_str())).collect();
    assert_eq!(lines, [(4, "B"), (7, "C"), (10, "E"), (12, "F")]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut input = b"phone,name,x\n".to_vec();
        input.extend_from_slice(&body);
        if let Ok(mut src) = Source::open(&input[..], Options::new("CN").unwrap()) {
            for _ in 0..100 {
                match src.next_batch(7) {
                    Ok(b) if b.is_empty() => break,
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn arbitrary_text_rows_never_panic(rows in proptest::collection::vec("[0-9a-z+ ,\"\n\\-中文]{0,30}", 0..20)) {
        let input = format!("手机号,姓名,金额\n{}", rows.join("\n"));
        let mut src = Source::open(input.as_bytes(), Options::new("CN").unwrap()).unwrap();
        while let Ok(b) = src.next_batch(5) {
            if b.is_empty() { break; }
        }
    }
}

#[test]
fn single_numbers_normalise() {
    assert_eq!(
        normalize_phone("138-1234-5678", "CN").unwrap().0,
        "+8613812345678"
    );
    assert_eq!(
        normalize_phone("+1 (415) 555-0123", "CN").unwrap(),
        ("+14155550123".into(), "US".into())
    );
    assert!(normalize_phone("12", "CN").is_err());
    assert!(normalize_phone("138", "XX").is_err());
}

#[test]
fn channel_preferences_are_read_in_either_language_and_bad_ones_named() {
    let csv = "手机号,联系偏好\n\
13800000001,短信\n\
13800000002,APP推送\n\
13800000003,不接收\n\
13800000004,\n\
13800000005,fax\n";
    let (_, ok, bad) = read_all(csv.as_bytes());
    let pref = |i: usize| ok[i].attrs.get("channel_pref").cloned();
    assert_eq!(ok.len(), 4, "{bad:?}");
    assert_eq!(pref(0), Some(AttrValue::Text("sms".into())));
    assert_eq!(pref(1), Some(AttrValue::Text("push".into())));
    assert_eq!(pref(2), Some(AttrValue::Text("none".into())));
    assert_eq!(pref(3), None, "an empty cell says nothing");
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].line, 6);
    assert_eq!(bad[0].column.as_deref(), Some("联系偏好"));
    assert!(bad[0].reason.contains("'fax'"), "{:?}", bad[0]);
    for (cell, want) in [
        ("SMS", "sms"),
        ("push", "push"),
        ("none", "none"),
        ("不限", "any"),
    ] {
        assert_eq!(parse_channel_pref(cell), Some(want));
    }
}
