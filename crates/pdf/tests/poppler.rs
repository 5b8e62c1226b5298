//! The PDF read back by an independent reader (poppler: `pdfinfo`,
//! `pdffonts`, `pdftotext`): the pages, the embedded font subset, and the
//! Chinese text extractable as Chinese. Fails when poppler or the CJK font is
//! missing and `CI` is set (`waihu_testkit::have_peer`).
use std::process::Command;

const FONT: &str = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc";

fn run(tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The font, when poppler and the font are installed (else the test has
/// nothing to read with; `have_peer` fails it under `CI`).
fn font() -> Option<waihu_pdf::Font> {
    if !waihu_testkit::have_peer("pdftotext")
        || !waihu_testkit::have_peer_at("fonts-wqy-microhei", std::path::Path::new(FONT))
    {
        return None;
    }
    Some(waihu_pdf::Font::from_bytes(std::fs::read(FONT).unwrap(), 0).unwrap())
}

/// A table titled "kpis" as PDF, read back as text by `pdftotext`.
fn kpis_text(font: &waihu_pdf::Font, columns: &[String], rows: &[Vec<String>]) -> String {
    let pdf = waihu_pdf::table(
        font,
        &waihu_pdf::Table {
            title: "kpis",
            subtitle: "",
            columns,
            rows,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kpis.pdf");
    std::fs::write(&path, &pdf).unwrap();
    run("pdftotext", &[path.to_str().unwrap(), "-"])
}

#[test]
fn poppler_reads_pages_font_and_chinese_text() {
    let Some(font) = font() else { return };
    let columns: Vec<String> = [
        "活动 campaign",
        "呼叫 attempts",
        "接通率 connect rate",
        "备注 note",
    ]
    .map(String::from)
    .to_vec();
    let mut rows: Vec<Vec<String>> = (0..70)
        .map(|i| {
            vec![
                format!("订单确认-{i}"),
                format!("{}", 100 + i),
                format!("{:.1}%", 40.0 + i as f64 / 2.0),
                "客户要求改天再打".to_string(),
            ]
        })
        .collect();
    // A cell far too long for its column is cut with an ellipsis, not spilled.
    rows[0][3] = "很长的备注".repeat(80);
    let pdf = waihu_pdf::table(
        &font,
        &waihu_pdf::Table {
            title: "外呼日报 · Daily report",
            subtitle: "2026-12-07 · 租户 acme",
            columns: &columns,
            rows: &rows,
        },
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.pdf");
    std::fs::write(&path, &pdf).unwrap();
    let p = path.to_str().unwrap();
    if let Ok(keep) = std::env::var("WAIHU_PDF_KEEP") {
        std::fs::write(keep, &pdf).unwrap();
    }

    let info = run("pdfinfo", &[p]);
    let pages: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("Pages:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(pages >= 2, "70 rows on one page?\n{info}");
    assert!(info.contains("外呼日报"), "{info}");
    // Embedded, subset, CID TrueType with a ToUnicode map.
    let fonts = run("pdffonts", &[p]);
    let line = fonts.lines().nth(2).unwrap_or("");
    assert!(line.contains("CID TrueType"), "{fonts}");
    let cols: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &cols[cols.len() - 5..cols.len() - 2],
        ["yes", "yes", "yes"],
        "emb sub uni: {fonts}"
    );
    let text = run("pdftotext", &["-layout", p, "-"]);
    for want in [
        "外呼日报",
        "接通率",
        "订单确认-0",
        "订单确认-69",
        "客户要求改天再打",
        "40.0%",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert!(text.contains(&format!("第 {pages} / {pages} 页")), "{text}");
    assert!(text.contains("很长的备注…"), "{text}");
    assert!(
        !text.contains(&"很长的备注".repeat(20)),
        "the long cell was not cut"
    );
    assert!(
        pdf.len() < 80_000,
        "{} bytes: the font is not a subset",
        pdf.len()
    );
}

/// A report with many columns keeps every header whole: the text shrinks
/// (to 5 pt) before a header is cut.
#[test]
fn many_columns_keep_their_headers() {
    let Some(font) = font() else { return };
    let columns: Vec<String> = (0..16).map(|i| format!("connect_rate_{i:02}")).collect();
    let rows: Vec<Vec<String>> = (0..3)
        .map(|r| (0..16).map(|c| format!("{}", r * 100 + c)).collect())
        .collect();
    let text = kpis_text(&font, &columns, &rows);
    for c in &columns {
        assert!(text.contains(c.as_str()), "{c} cut or missing:\n{text}");
    }
    assert!(text.contains("215"), "{text}");
}

/// Wider still (a KPI export has 24 columns): the columns are split into
/// bands, each repeating the first column, so nothing is cut or dropped.
#[test]
fn very_wide_tables_split_into_column_bands() {
    let Some(font) = font() else { return };
    let mut columns = vec!["day".to_string()];
    columns.extend((1..30).map(|i| format!("outcome_invalid_number_{i:02}")));
    let rows: Vec<Vec<String>> = (0..3)
        .map(|r| {
            let mut row = vec![format!("2026-11-0{}", r + 1)];
            row.extend((1..30).map(|c| format!("{}", r * 1000 + c)));
            row
        })
        .collect();
    let text = kpis_text(&font, &columns, &rows);
    for c in &columns {
        assert!(text.contains(c.as_str()), "{c} cut or missing:\n{text}");
    }
    assert!(text.contains("2029"), "{text}");
    assert!(text.contains("columns 2–"), "{text}");
    let bands = text.matches("columns ").count();
    assert!(bands >= 2, "{text}");
    // The key column on every band.
    assert_eq!(text.matches("2026-11-03").count(), bands, "{text}");
}
