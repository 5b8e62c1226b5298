//! Reports as PDF: a titled table over as many A4 landscape pages as it
//! takes, the header repeated on each, page numbers at the foot, and the text
//! in an embedded **subset** of a CJK font (only the glyphs the report uses),
//! so Chinese prints and copies as Chinese on any reader, without the reader
//! having the font.
//!
//! Pure: the caller reads the font file ([`Font::from_bytes`]) and gets bytes
//! back. The font is written as a CID-keyed Type 0 font (Identity-H, one CID
//! per subset glyph) with a `ToUnicode` map, which is what PDF needs for
//! searchable, copyable CJK text. `pdf-writer` writes the objects, `subsetter`
//! cuts the font, `ttf-parser` maps characters to glyphs and widths.
use std::collections::BTreeMap;
use std::io::Write;

use pdf_writer::types::{CidFontType, FontFlags, SystemInfo, UnicodeCmap};
use pdf_writer::{Content, Filter, Finish, Name, Pdf, Rect, Ref, Str, TextStr};

/// What can go wrong making a PDF.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    #[error("font: {0}")]
    Font(String),
    #[error("font subset: {0}")]
    Subset(String),
}

/// A parsed font file (TrueType or OpenType, or one face of a collection).
pub struct Font {
    data: Vec<u8>,
    index: u32,
    units_per_em: f32,
    ascent: f32,
    descent: f32,
    bbox: [f32; 4],
    cff: bool,
    name: String,
}

impl Font {
    /// Parse `data` (face `index` of a `.ttc` collection, else 0). Refuses a
    /// font without Chinese: a report's 接通率 must not print as boxes.
    pub fn from_bytes(data: Vec<u8>, index: u32) -> Result<Font, PdfError> {
        let face = ttf_parser::Face::parse(&data, index)
            .map_err(|e| PdfError::Font(format!("not a usable font: {e}")))?;
        if face.glyph_index('中').is_none() {
            return Err(PdfError::Font(
                "has no Chinese glyphs (use a CJK font such as WenQuanYi Micro Hei or Noto Sans CJK)"
                    .into(),
            ));
        }
        let upem = f32::from(face.units_per_em());
        let b = face.global_bounding_box();
        let name = face
            .names()
            .into_iter()
            .find(|n| n.name_id == ttf_parser::name_id::POST_SCRIPT_NAME)
            .and_then(|n| n.to_string())
            .unwrap_or_else(|| "WaihuCJK".into())
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect::<String>();
        Ok(Font {
            units_per_em: upem,
            ascent: f32::from(face.ascender()),
            descent: f32::from(face.descender()),
            bbox: [
                f32::from(b.x_min),
                f32::from(b.y_min),
                f32::from(b.x_max),
                f32::from(b.y_max),
            ],
            cff: face.tables().cff.is_some(),
            name: if name.is_empty() {
                "WaihuCJK".into()
            } else {
                name
            },
            data,
            index,
        })
    }

    fn face(&self) -> ttf_parser::Face<'_> {
        // Parsed once already in `from_bytes`: cannot fail on the same bytes.
        ttf_parser::Face::parse(&self.data, self.index).expect("parsed before")
    }
}

/// A table to print.
pub struct Table<'a> {
    pub title: &'a str,
    /// A line under the title (when, which filters, a truncation note).
    pub subtitle: &'a str,
    pub columns: &'a [String],
    pub rows: &'a [Vec<String>],
}

// A4 landscape, in points.
const PAGE_W: f32 = 842.0;
const PAGE_H: f32 = 595.0;
const MARGIN: f32 = 36.0;
const TITLE_SIZE: f32 = 14.0;
const SUB_SIZE: f32 = 9.0;
const CELL_SIZE: f32 = 8.0;
/// Many columns shrink the text down to this before headers are cut.
const MIN_CELL_SIZE: f32 = 5.0;
/// Cell padding on each side, as a share of the text size.
const PAD_EM: f32 = 0.375;
/// No column is wider than this share of the page before fitting.
const MAX_COL: f32 = 220.0;

/// Columns that share pages: the first column (the row's key) and as many
/// more as fit, in order. A table whose headers fit across the page at
/// [`MIN_CELL_SIZE`] is one band; a wider one is split into bands at
/// [`CELL_SIZE`], each printed over all the rows in turn.
fn bands(head_w: &[f32], avail: f32) -> Vec<Vec<usize>> {
    let least = |c: usize, size: f32| head_w[c] * size + 2.0 * PAD_EM * size;
    let all: f32 = (0..head_w.len()).map(|c| least(c, MIN_CELL_SIZE)).sum();
    if all <= avail || head_w.len() < 2 {
        return vec![(0..head_w.len()).collect()];
    }
    let mut out = Vec::new();
    let mut band = vec![0];
    let mut w = least(0, CELL_SIZE);
    for c in 1..head_w.len() {
        let cw = least(c, CELL_SIZE);
        if w + cw > avail && band.len() > 1 {
            out.push(std::mem::replace(&mut band, vec![0]));
            w = least(0, CELL_SIZE);
        }
        band.push(c);
        w += cw;
    }
    out.push(band);
    out
}

/// One band's text size and column widths.
struct Band {
    cols: Vec<usize>,
    size: f32,
    row_h: f32,
    widths: Vec<f32>,
}

impl Band {
    /// The text shrinks (to [`MIN_CELL_SIZE`]) until every header fits whole;
    /// each column gets its header's width, and what is left of the page
    /// goes to the columns whose cells want more, in proportion.
    fn fit(cols: Vec<usize>, head_w: &[f32], body_w: &[f32], avail: f32) -> Band {
        let heads: f32 = cols.iter().map(|&c| head_w[c]).sum();
        let size = if heads > 0.0 {
            (avail / (heads + 2.0 * PAD_EM * cols.len() as f32)).clamp(MIN_CELL_SIZE, CELL_SIZE)
        } else {
            CELL_SIZE
        };
        let pad = size * PAD_EM;
        let least: Vec<f32> = cols.iter().map(|&c| head_w[c] * size + 2.0 * pad).collect();
        let want: Vec<f32> = cols
            .iter()
            .zip(&least)
            .map(|(&c, l)| (head_w[c].max(body_w[c]) * size + 2.0 * pad).min(MAX_COL.max(*l)))
            .collect();
        let total_least: f32 = least.iter().sum();
        let total_want: f32 = want.iter().sum();
        let widths = if total_want <= avail {
            want
        } else if total_least <= avail {
            // Max-min fair: the widest cap `c` with Σ min(want, max(least, c)) ≤ avail.
            // Short columns (a masked phone, a date) stay whole and only the widest
            // are cut; shares in proportion cut a little from every column, so which
            // ones lost their last characters depended on the other rows' lengths.
            let used =
                |c: f32| -> f32 { least.iter().zip(&want).map(|(l, w)| w.min(l.max(c))).sum() };
            let (mut lo, mut hi) = (0.0f32, want.iter().copied().fold(0.0, f32::max));
            for _ in 0..40 {
                let mid = (lo + hi) / 2.0;
                if used(mid) <= avail {
                    lo = mid;
                } else {
                    hi = mid;
                }
            }
            least
                .iter()
                .zip(&want)
                .map(|(l, w)| w.min(l.max(lo)))
                .collect()
        } else {
            least.iter().map(|l| l * avail / total_least).collect()
        };
        Band {
            cols,
            size,
            row_h: size * 1.6,
            widths,
        }
    }
}

/// Characters → subset glyph ids, widths and the Unicode map, as used.
struct Glyphs<'f> {
    face: ttf_parser::Face<'f>,
    upem: f32,
    remap: subsetter::GlyphRemapper,
    /// Subset glyph id → (advance in 1/1000 em, the character).
    used: BTreeMap<u16, (f32, char)>,
}

impl<'f> Glyphs<'f> {
    fn gid(&self, c: char) -> u16 {
        self.face
            .glyph_index(c)
            .or_else(|| self.face.glyph_index('?'))
            .map_or(0, |g| g.0)
    }

    /// Width of `text` at `size` points.
    fn width(&self, text: &str, size: f32) -> f32 {
        text.chars()
            .map(|c| {
                let adv = self
                    .face
                    .glyph_hor_advance(ttf_parser::GlyphId(self.gid(c)))
                    .unwrap_or(0);
                f32::from(adv) / self.upem * size
            })
            .sum()
    }

    /// `text` cut (with "…") to fit `max` points at `size`.
    fn fit(&self, text: &str, size: f32, max: f32) -> String {
        if self.width(text, size) <= max + 0.01 {
            return text.to_string();
        }
        let ell = self.width("…", size);
        let mut out = String::new();
        let mut w = 0.0;
        for c in text.chars() {
            let cw = self.width(c.encode_utf8(&mut [0; 4]), size);
            if w + cw + ell > max {
                break;
            }
            w += cw;
            out.push(c);
        }
        out.push('…');
        out
    }

    /// The CID string (big-endian subset glyph ids) for `text`.
    fn encode(&mut self, text: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(text.len() * 2);
        for c in text.chars().filter(|c| !c.is_control()) {
            let gid = self.gid(c);
            let new = self.remap.remap(gid);
            let adv = self
                .face
                .glyph_hor_advance(ttf_parser::GlyphId(gid))
                .unwrap_or(0);
            self.used
                .entry(new)
                .or_insert((f32::from(adv) / self.upem * 1000.0, c));
            out.extend_from_slice(&new.to_be_bytes());
        }
        out
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

const FONT: Name = Name(b"F1");

/// The table as a PDF document.
pub fn table(font: &Font, t: &Table) -> Result<Vec<u8>, PdfError> {
    let mut g = Glyphs {
        face: font.face(),
        upem: font.units_per_em,
        remap: subsetter::GlyphRemapper::new(),
        used: BTreeMap::new(),
    };
    let ncol = t.columns.len().max(1);
    let head_w: Vec<f32> = (0..ncol)
        .map(|c| t.columns.get(c).map_or(0.0, |h| g.width(h, 1.0)))
        .collect();
    let body_w: Vec<f32> = (0..ncol)
        .map(|c| {
            t.rows
                .iter()
                .take(2_000)
                .filter_map(|r| r.get(c))
                .map(|v| g.width(v, 1.0))
                .fold(0.0, f32::max)
        })
        .collect();
    let avail = PAGE_W - 2.0 * MARGIN;
    let bands: Vec<Band> = bands(&head_w, avail)
        .into_iter()
        .map(|cols| Band::fit(cols, &head_w, &body_w, avail))
        .collect();
    let table_top = PAGE_H - MARGIN - TITLE_SIZE - SUB_SIZE - 24.0;
    // Every band prints every row: (band, rows) per page.
    let mut pages: Vec<(&Band, &[Vec<String>])> = Vec::new();
    for band in &bands {
        let per_page = (((table_top - MARGIN - 16.0) / band.row_h) as usize)
            .saturating_sub(1)
            .max(1);
        if t.rows.is_empty() {
            pages.push((band, &[]));
        }
        for chunk in t.rows.chunks(per_page) {
            pages.push((band, chunk));
        }
    }
    let npages = pages.len();

    let mut pdf = Pdf::new();
    let mut next = 1;
    let mut alloc = || {
        let r = Ref::new(next);
        next += 1;
        r
    };
    let catalog = alloc();
    let tree = alloc();
    let info = alloc();
    let type0 = alloc();
    let cid = alloc();
    let descriptor = alloc();
    let tounicode = alloc();
    let file = alloc();
    let page_ids: Vec<(Ref, Ref)> = (0..npages).map(|_| (alloc(), alloc())).collect();

    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_ids.iter().map(|(p, _)| *p))
        .count(npages as i32);
    pdf.document_info(info)
        .title(TextStr(t.title))
        .producer(TextStr("waihu"));

    for (i, ((band, rows), (page_id, content_id))) in pages.iter().zip(&page_ids).enumerate() {
        let (size, pad, row_h, widths) = (band.size, band.size * PAD_EM, band.row_h, &band.widths);
        let mut c = Content::new();
        // Title and subtitle.
        let mut y = PAGE_H - MARGIN - TITLE_SIZE;
        let title = g.encode(t.title);
        c.begin_text()
            .set_font(FONT, TITLE_SIZE)
            .next_line(MARGIN, y)
            .show(Str(&title))
            .end_text();
        y -= SUB_SIZE + 6.0;
        let subtitle = if bands.len() > 1 {
            let (first, last) = (band.cols[1] + 1, band.cols[band.cols.len() - 1] + 1);
            format!(
                "{}{}列 {first}–{last} / {ncol} · columns {first}–{last} of {ncol}",
                t.subtitle,
                if t.subtitle.is_empty() { "" } else { " · " },
            )
        } else {
            t.subtitle.to_string()
        };
        if !subtitle.is_empty() {
            let sub = g.encode(&g.fit(&subtitle, SUB_SIZE, avail));
            c.set_fill_gray(0.35)
                .begin_text()
                .set_font(FONT, SUB_SIZE)
                .next_line(MARGIN, y)
                .show(Str(&sub))
                .end_text()
                .set_fill_gray(0.0);
        }
        // The header row on a grey band, then the rows with hairlines.
        let mut y = table_top;
        c.set_fill_gray(0.88)
            .rect(MARGIN, y - row_h + 3.0, widths.iter().sum(), row_h)
            .fill_nonzero()
            .set_fill_gray(0.0);
        let header: Vec<String> = (0..ncol)
            .map(|k| t.columns.get(k).cloned().unwrap_or_default())
            .collect();
        for (k, row) in std::iter::once(&header).chain(rows.iter()).enumerate() {
            let mut x = MARGIN;
            for (&col, w) in band.cols.iter().zip(widths) {
                let text = row.get(col).map(String::as_str).unwrap_or("");
                if !text.is_empty() {
                    let s = g.encode(&g.fit(text, size, w - 2.0 * pad));
                    c.begin_text()
                        .set_font(FONT, size)
                        .next_line(x + pad, y)
                        .show(Str(&s))
                        .end_text();
                }
                x += w;
            }
            if k > 0 {
                c.set_stroke_gray(0.85)
                    .set_line_width(0.3)
                    .move_to(MARGIN, y - 3.5)
                    .line_to(MARGIN + widths.iter().sum::<f32>(), y - 3.5)
                    .stroke();
            }
            y -= row_h;
        }
        // The foot: page n of N.
        let foot = g.encode(&format!(
            "第 {} / {} 页 · page {} of {}",
            i + 1,
            npages,
            i + 1,
            npages
        ));
        c.set_fill_gray(0.35)
            .begin_text()
            .set_font(FONT, SUB_SIZE)
            .next_line(MARGIN, MARGIN / 2.0)
            .show(Str(&foot))
            .end_text();
        let data = deflate(&c.finish());
        pdf.stream(*content_id, &data).filter(Filter::FlateDecode);
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_W, PAGE_H))
            .parent(tree)
            .contents(*content_id);
        page.resources().fonts().pair(FONT, type0);
        page.finish();
    }

    // The font: only the glyphs used, CID = subset glyph id.
    let subset = subsetter::subset(&font.data, font.index, &g.remap)
        .map_err(|e| PdfError::Subset(e.to_string()))?;
    let base = format!("WAIHUA+{}", font.name);
    let base = Name(base.as_bytes());
    let info_sys = SystemInfo {
        registry: Str(b"Adobe"),
        ordering: Str(b"Identity"),
        supplement: 0,
    };
    pdf.type0_font(type0)
        .base_font(base)
        .encoding_predefined(Name(b"Identity-H"))
        .descendant_font(cid)
        .to_unicode(tounicode);
    let scale = 1000.0 / font.units_per_em;
    {
        let mut cf = pdf.cid_font(cid);
        cf.subtype(if font.cff {
            CidFontType::Type0
        } else {
            CidFontType::Type2
        })
        .base_font(base)
        .system_info(info_sys)
        .font_descriptor(descriptor)
        .default_width(500.0);
        if !font.cff {
            cf.cid_to_gid_map_predefined(Name(b"Identity"));
        }
        let mut w = cf.widths();
        for (gid, (adv, _)) in &g.used {
            w.consecutive(*gid, [*adv]);
        }
    }
    let mut fd = pdf.font_descriptor(descriptor);
    fd.name(base)
        .flags(FontFlags::SYMBOLIC)
        .bbox(Rect::new(
            font.bbox[0] * scale,
            font.bbox[1] * scale,
            font.bbox[2] * scale,
            font.bbox[3] * scale,
        ))
        .italic_angle(0.0)
        .ascent(font.ascent * scale)
        .descent(font.descent * scale)
        .cap_height(font.ascent * scale)
        .stem_v(80.0);
    if font.cff {
        fd.font_file3(file);
    } else {
        fd.font_file2(file);
    }
    fd.finish();
    let mut cmap = UnicodeCmap::new(Name(b"Custom"), info_sys);
    for (gid, (_, ch)) in &g.used {
        cmap.pair(*gid, *ch);
    }
    let cmap = cmap.finish();
    pdf.cmap(tounicode, &cmap);
    let packed = deflate(&subset);
    let mut s = pdf.stream(file, &packed);
    s.filter(Filter::FlateDecode);
    if font.cff {
        s.pair(Name(b"Subtype"), Name(b"OpenType"));
    }
    s.finish();
    Ok(pdf.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The CJK font the project installs (scripts/deps/server.apt), when present.
    fn font() -> Option<Font> {
        let data = std::fs::read("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc").ok()?;
        Some(Font::from_bytes(data, 0).unwrap())
    }

    #[test]
    fn short_columns_stay_whole_when_the_page_is_too_narrow_for_all() {
        // Header widths (at size 1) and the widest cell of each column: a key, a
        // phone, two long free-text columns that cannot all fit. In proportion the
        // phone lost its last digits; max-min it is whole, as it is narrower than
        // the share each long column gets.
        let head_w = [2.0, 5.0, 5.0, 5.0];
        let body_w = [4.0, 12.0, 60.0, 45.0];
        let avail = 400.0;
        let band = Band::fit(vec![0, 1, 2, 3], &head_w, &body_w, avail);
        let pad = 2.0 * PAD_EM * band.size;
        let want = |c: usize| head_w[c].max(body_w[c]) * band.size + pad;
        assert!(
            (band.widths.iter().sum::<f32>() - avail).abs() < 0.5,
            "{:?}",
            band.widths
        );
        for c in [0, 1] {
            assert!(
                (band.widths[c] - want(c)).abs() < 0.01,
                "column {c} cut: {:?}",
                band.widths
            );
        }
        // The long ones share what is left equally (neither is given more than it wants).
        assert!(
            (band.widths[2] - band.widths[3]).abs() < 0.5,
            "{:?}",
            band.widths
        );
        assert!(band.widths[3] < want(3));
    }

    #[test]
    fn a_font_without_chinese_is_refused() {
        let Ok(data) = std::fs::read("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf") else {
            return;
        };
        let e = Font::from_bytes(data, 0).err().unwrap();
        assert!(e.to_string().contains("no Chinese"), "{e}");
        assert!(Font::from_bytes(b"not a font".to_vec(), 0).is_err());
    }

    #[test]
    fn pages_split_and_the_font_is_a_subset() {
        let Some(f) = font() else { return };
        let columns = vec!["活动".to_string(), "接通率".to_string()];
        let rows: Vec<Vec<String>> = (0..100)
            .map(|i| vec![format!("订单确认 {i}"), format!("{}%", i % 100)])
            .collect();
        let pdf = table(
            &f,
            &Table {
                title: "外呼日报",
                subtitle: "2026-12-07",
                columns: &columns,
                rows: &rows,
            },
        )
        .unwrap();
        assert!(pdf.starts_with(b"%PDF-"));
        let text = String::from_utf8_lossy(&pdf);
        let pages = text.matches("/Type /Page").count() - text.matches("/Type /Pages").count();
        assert_eq!(pages, 3, "100 rows: 3 pages");
        // A few dozen glyphs, not the 5 MB font.
        assert!(pdf.len() < 60_000, "{} bytes", pdf.len());
    }
}
