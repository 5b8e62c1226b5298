//! Customer lists uploaded as XLSX (crates/ingest/src/xlsx.rs): the workbook's
//! first sheet to CSV, then the same CSV reader as `csv_import`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use waihu_ingest::{xlsx, Options, Source};

fuzz_target!(|data: &[u8]| {
    let Ok(csv) = xlsx::to_csv(data) else {
        return;
    };
    let opts = Options::new("CN").expect("CN is a region");
    let Ok(mut src) = Source::open(std::io::Cursor::new(csv), opts) else {
        return;
    };
    while let Ok(batch) = src.next_batch(64) {
        if batch.is_empty() {
            break;
        }
    }
});
