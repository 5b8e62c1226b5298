//! Prompt templates of scripts (crates/dialog template.rs): parse, then render
//! with some slots filled and some missing.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_dialog::template::{parse, Template};

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = parse(src) else { return };
    let mut names: Vec<String> = Vec::new();
    let t = Template::from_raw(&raw, |n| match names.iter().position(|x| x == n) {
        Some(i) => i,
        None => {
            names.push(n.to_string());
            names.len() - 1
        }
    });
    let _ = t.render(|slot| (slot % 2 == 0).then_some("张三"));
});
