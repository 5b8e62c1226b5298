//! Dialogue script YAML (crates/dialog program.rs): parse, type-check, compile.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = waihu_dialog::program::load_str(src, "fuzz.yaml");
    let _ = waihu_dialog::testing::load_cases_str(src, "fuzz.cases.yaml");
});
