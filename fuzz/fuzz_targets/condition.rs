//! Script conditions (crates/dialog cond.rs): parse, then evaluate with variables
//! holding text, numbers and nothing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_dialog::cond::{parse, Val};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(src) else { return };
    let mut names: Vec<String> = Vec::new();
    let expr = expr.map(&mut |n: String| match names.iter().position(|x| *x == n) {
        Some(i) => i,
        None => {
            names.push(n);
            names.len() - 1
        }
    });
    let vals = [
        Val::new("3"),
        Val::new("是"),
        Val::new("-1e309"),
        Val::new(""),
    ];
    let _ = expr.eval(&|slot| vals.get(slot));
});
