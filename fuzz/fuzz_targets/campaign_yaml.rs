//! Campaign YAML (crates/campaign config.rs), and the message rules read from the
//! same file (message_gate.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let _ = waihu_campaign::Campaign::from_yaml(src);
    let _ = waihu_campaign::message_gate::MessageRules::from_campaign_yaml("fuzz.yaml", src);
});
