//! Customer CSV files (crates/ingest): encoding detection (UTF-8, GBK, ...),
//! header mapping, kind inference and row normalisation, as `customers import` reads them.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_ingest::{Options, Source};

fuzz_target!(|data: &[u8]| {
    let opts = Options::new("CN").expect("CN is a region");
    let Ok(mut src) = Source::open(std::io::Cursor::new(data), opts) else {
        return;
    };
    while let Ok(batch) = src.next_batch(64) {
        if batch.is_empty() {
            break;
        }
    }
});
