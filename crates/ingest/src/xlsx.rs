//! XLSX customer lists, as operations staff export them from Excel or WPS: the
//! first worksheet becomes CSV text and goes through the CSV pipeline, so a
//! row keeps its sheet row number in the rejects file (row 1, the header, is
//! line 1). Numbers that are whole (a phone number typed into a cell) are
//! written without a decimal point, dates as `YYYY-MM-DD`, and line breaks
//! inside a cell become spaces so one row stays one line.
use calamine::{Data, Reader, Xlsx};

/// Whether `bytes` start like a ZIP archive (an XLSX file is one).
pub fn looks_like_xlsx(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
}

/// Whether a file name says XLSX.
pub fn named_xlsx(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".xlsx") || lower.ends_with(".xlsm")
}

/// The first worksheet of an XLSX workbook as UTF-8 CSV.
pub fn to_csv(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut wb: Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(bytes)).map_err(|e| {
            format!("not a readable XLSX workbook ({e}); save it again as .xlsx or .csv")
        })?;
    let first = wb
        .sheet_names()
        .first()
        .cloned()
        .ok_or("the workbook has no worksheet")?;
    let range = wb
        .worksheet_range(&first)
        .map_err(|e| format!("worksheet {first:?}: {e}"))?;
    let mut out = Vec::new();
    // Rows above the used range stay as empty lines: row numbers are kept.
    let (top, _) = range.start().unwrap_or((0, 0));
    out.extend(std::iter::repeat_n(b'\n', top as usize));
    for row in range.rows() {
        let rec: Vec<String> = row.iter().map(cell).collect();
        if rec.iter().all(String::is_empty) {
            out.push(b'\n');
            continue;
        }
        let mut w = csv::WriterBuilder::new()
            .flexible(true)
            .from_writer(Vec::new());
        w.write_record(&rec).map_err(|e| e.to_string())?;
        out.extend(w.into_inner().map_err(|e| e.to_string())?);
    }
    Ok(out)
}

fn cell(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => {
            s.replace(['\r', '\n'], " ")
        }
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", *f as i64),
        Data::Float(f) => f.to_string(),
        Data::Int(i) => i.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.format("%Y-%m-%d").to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => dt.as_f64().to_string(),
        },
        Data::Error(e) => format!("#{e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Anything sent as a workbook is read or refused with a message, never a panic,
        /// including ZIP-signed garbage.
        #[test]
        fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600), zip in any::<bool>()) {
            let mut bytes = if zip { b"PK\x03\x04".to_vec() } else { Vec::new() };
            bytes.extend(body);
            let _ = to_csv(&bytes);
        }
    }

    /// A hand-made workbook (inline strings, numbers, a boolean, a missing row 3):
    /// the bad number on sheet row 4 is rejected as line 4.
    #[test]
    fn sheet_rows_are_lines() {
        let csv = to_csv(include_bytes!("../../../fuzz/corpus/xlsx_import/seed.xlsx")).unwrap();
        let text = String::from_utf8(csv.clone()).unwrap();
        assert_eq!(
            text,
            "姓名,手机号,购买频次\n张伟,13812345678,6\n\n王芳,12345,true\n"
        );
        let mut src = crate::Source::open(&csv[..], crate::Options::new("CN").unwrap()).unwrap();
        let (ok, bad) = crate::split_batch(src.next_batch(10).unwrap());
        assert_eq!(ok.len(), 1);
        assert_eq!(bad[0].line, 4, "{bad:?}");
    }

    #[test]
    fn not_a_workbook_says_so() {
        let e = to_csv(b"PK\x03\x04nope").unwrap_err();
        assert!(e.contains("not a readable XLSX workbook"), "{e}");
    }
}
