use super::*;
use proptest::prelude::*;

/// Rows copied from the converted PyPI `phone` 0.4.5 table.
const SMALL: &str = "waihu-geo 1
V\ttest rows from PyPI phone 0.4.5
R\t北京\t北京\t100000\t010
R\t辽宁\t沈阳\t110000\t024
R\t广东\t广州\t510000\t020
R\t广东\t深圳\t518000\t0755
R\t辽宁\t本溪\t117000\t024
R\t四川\t成都\t610000\t028
M\t1380000\t1\t0\t1
M\t1380004\t3\t1\t6
M\t1380009\t1\t2\t6
M\t1380028\t1\t5\t1
M\t1380220\t10\t3\t1
";

#[test]
fn mobile_segments_find_their_city_and_carrier() {
    let t = Table::parse(SMALL).unwrap();
    assert_eq!(t.source(), "test rows from PyPI phone 0.4.5");
    assert_eq!((t.places(), t.segments()), (6, 16));
    let l = t.lookup("+86 138 0222 5678").unwrap();
    assert_eq!(
        (l.province, l.city, l.area_code),
        ("广东", Some("深圳"), "0755")
    );
    assert_eq!(l.carrier, Some(Carrier::ChinaMobile));
    assert_eq!(l.region(), "广东/深圳");
    for n in [
        "13802295678",
        "+8613802295678",
        "008613802295678",
        "8613802295678",
        "138-0229-5678",
    ] {
        assert_eq!(t.region(n).as_deref(), Some("广东/深圳"), "{n}");
    }
    assert_eq!(t.region("13800061234").as_deref(), Some("辽宁/沈阳"));
    assert_eq!(
        t.lookup("13800061234").unwrap().carrier,
        Some(Carrier::MobileMvno)
    );
    // Between runs, past the last one, before the first: unknown.
    assert_eq!(t.region("13800071234"), None);
    assert_eq!(t.region("13802301234"), None);
    assert_eq!(t.region("13000001234"), None);
    // Another country, even when its digits look like a Chinese mobile.
    assert_eq!(t.region("+1 380 022 1234"), None);
    assert_eq!(t.region("+13802201234"), None);
}

#[test]
fn fixed_lines_by_area_code() {
    let t = Table::parse(SMALL).unwrap();
    let l = t.lookup("010-6552 9988").unwrap();
    assert_eq!(
        (l.region(), l.area_code, l.carrier),
        ("北京/北京".into(), "010", None)
    );
    assert_eq!(t.region("+86 755 8888 1234").as_deref(), Some("广东/深圳"));
    assert_eq!(t.region("02087654321").as_deref(), Some("广东/广州"));
    // 024 is shared by 沈阳 and 本溪: the province only.
    let l = t.lookup("024-2345 6789").unwrap();
    assert_eq!((l.region(), l.city), ("辽宁".into(), None));
    // Unknown area code, too short, too long.
    assert_eq!(t.region("0311-8765 4321"), None);
    assert_eq!(t.region("010-123"), None);
    assert_eq!(t.region("010-1234567890"), None);
}

#[test]
fn bad_lines_are_named() {
    let cases = [
        ("", 1, "empty file"),
        ("waihu-geo 2\n", 1, "format line"),
        ("waihu-geo 1\nR\t北京\t北京\t100000\n", 2, "4 fields"),
        ("waihu-geo 1\nR\t北京\t北京\t100000\t10\n", 2, "area code"),
        (
            "waihu-geo 1\nM\t1380000\t1\t0\t1\n",
            2,
            "place 0 is not defined",
        ),
        (
            "waihu-geo 1\nR\ta\tb\t1\t010\nM\t138000\t1\t0\t1\n",
            3,
            "7 digits",
        ),
        (
            "waihu-geo 1\nR\ta\tb\t1\t010\nM\t1380000\tx\t0\t1\n",
            3,
            "count 'x'",
        ),
        (
            "waihu-geo 1\nR\ta\tb\t1\t010\nM\t1380000\t1\t0\t9\n",
            3,
            "carrier",
        ),
        (
            "waihu-geo 1\nR\ta\tb\t1\t010\nM\t1380000\t5\t0\t1\nM\t1380002\t1\t0\t1\n",
            4,
            "overlaps",
        ),
        ("waihu-geo 1\n\n# note\nX\t1\n", 4, "unknown line kind"),
    ];
    for (text, line, words) in cases {
        let e = Table::parse(text).unwrap_err();
        assert_eq!(e.line, line, "{text:?}: {e}");
        assert!(e.to_string().contains(words), "{text:?}: {e}");
    }
}

#[test]
fn default_path_is_under_the_models_dir() {
    if std::env::var_os("WAIHU_GEO_TABLE").is_none()
        && std::env::var_os("WAIHU_MODELS_DIR").is_none()
    {
        assert_eq!(
            default_path(Path::new("/d")),
            Path::new("/d/models/geo/cn-phone.tsv")
        );
    }
}

fn table_text(places: &[(String, String, u16)], runs: &[(u32, u32, usize, u8)]) -> String {
    let mut s = String::from("waihu-geo 1\nV\tgenerated\n");
    for (p, c, a) in places {
        s.push_str(&format!("R\t{p}\t{c}\t100000\t0{a}\n"));
    }
    for (start, count, place, carrier) in runs {
        s.push_str(&format!("M\t{start}\t{count}\t{place}\t{carrier}\n"));
    }
    s
}

proptest! {
    #[test]
    fn parse_never_panics(text in "(waihu-geo 1\n)?([VRM#]?[\t0-9a-z北京\n-]{0,30}){0,12}") {
        let _ = Table::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_mutated_tables(cut in 0usize..200, junk in "[\t0-9x\n]{0,5}") {
        let mut text = SMALL.to_string();
        let at = text.char_indices().map(|(i, _)| i).nth(cut % SMALL.chars().count()).unwrap_or(0);
        text.insert_str(at, &junk);
        if let Err(e) = Table::parse(&text) {
            prop_assert!(e.line >= 1 && e.line <= text.lines().count().max(1));
        }
    }

    /// Any well-formed table answers every segment as written, and nothing outside its runs.
    #[test]
    fn lookups_match_the_runs(
        n_places in 1usize..6,
        gaps in prop::collection::vec((0u32..50, 1u32..40, 0usize..6, 1u8..9), 1..20),
        probe in 1_300_000u32..1_303_000,
    ) {
        let places: Vec<(String, String, u16)> =
            (0..n_places).map(|i| (format!("省{i}"), format!("市{i}"), 300 + i as u16)).collect();
        let mut runs = Vec::new();
        let mut at = 1_300_000;
        for (gap, count, place, carrier) in gaps {
            at += gap;
            runs.push((at, count, place % n_places, carrier));
            at += count;
        }
        let t = Table::parse(&table_text(&places, &runs)).unwrap();
        let want = runs
            .iter()
            .find(|(s, c, _, _)| (*s..s + c).contains(&probe))
            .map(|(_, _, p, carrier)| (format!("省{p}/市{p}"), Carrier::from_code(*carrier)));
        let got = t.lookup(&format!("{probe}1234")).map(|l| (l.region(), l.carrier));
        prop_assert_eq!(got, want);
    }
}
