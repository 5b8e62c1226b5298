//! Every style a script may name exists in the default style book the live
//! calls speak with (`calm` included), every example script passes the
//! load-time style check, and a style the book lacks is a load-time error with
//! file:line:column — never a silent fallback to the neutral voice.
use std::path::PathBuf;

use waihu_dialog::program::STYLES;
use waihu_speech::StyleBook;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn default_book_has_every_style_a_script_may_name() {
    let book = StyleBook::default();
    for s in STYLES {
        assert!(
            book.get(s).is_ok(),
            "style `{s}` missing from the default book"
        );
    }
    let calm = book.get("calm").unwrap();
    assert!(calm.speed < 1.0 && calm.pitch < 1.0, "{calm:?}");
}

#[test]
fn every_example_script_passes_the_style_check() {
    let book = StyleBook::default();
    let dir = root().join("examples/scripts");
    let mut checked = 0;
    let mut named_calm = false;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".yaml") || name.contains(".cases.") {
            continue;
        }
        let prog = waihu_dialog::load_file(&path).unwrap();
        named_calm |= prog.styles.iter().any(|u| u.name == "calm");
        let kit = waihu_bot::ScriptKit::new(prog).unwrap();
        kit.check_styles(&book)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        checked += 1;
    }
    assert!(checked >= 10, "{checked} scripts");
    assert!(named_calm, "an example script names `calm`");
}

#[test]
fn a_style_missing_from_the_book_is_a_load_error_with_its_place() {
    let src = "name: t\nlanguage: en\nstates:\n  a:\n    say: hi\n    style: calm\n    end: done\n";
    let prog = match waihu_dialog::load_str(src, "t.yaml") {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(prog.styles.len(), 1, "{:?}", prog.styles);
    // A book without `calm` (the default book before this check existed).
    let e = prog
        .check_styles(&["neutral", "happy", "urgent", "apologetic"])
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.yaml:6:"), "{e}");
    assert!(e.contains("calm"), "{e}");
    let book = StyleBook::default();
    prog.check_styles(&book.names().collect::<Vec<_>>())
        .unwrap();
    // A style no book knows is refused by the script loader itself, with its place.
    let bad = src.replace("style: calm", "style: soothing");
    let e = waihu_dialog::load_str(&bad, "t.yaml")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("t.yaml:6:") && e.contains("soothing"), "{e}");
}
