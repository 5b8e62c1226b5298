//! JSON request bodies of the HTTP API (crates/server): decoded by the same
//! extractor and validated by the same code as the handlers, before the store.
//! The first byte picks the route, the rest is the body.
#![no_main]
use libfuzzer_sys::fuzz_target;

const ROUTES: [&str; 9] = [
    "POST /api/dnc",
    "POST /api/webhooks",
    "POST /api/keys",
    "POST /api/campaigns",
    "POST /api/segments/preview",
    "POST /api/scripts/validate",
    "PUT /api/scripts/{name}",
    "POST /api/auth/login",
    "POST /api/scripts/edit",
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let route = ROUTES[pick as usize % ROUTES.len()];
    if let Err(e) = waihu_server::api::check_json_body(route, body) {
        assert!(
            e.status.is_client_error(),
            "{route}: {} {}",
            e.status,
            e.message
        );
    }
});
