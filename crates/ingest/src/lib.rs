//! Customer CSV parsing as CRMs export it.
//!
//! * Encoding: UTF-8 (with or without BOM) or GBK/GB18030, detected from the
//!   first 64 KiB (`chardetng`), transcoded while streaming (`encoding_rs_io`).
//! * Headers: Chinese or English, mapped to roles (phone, name, time zone,
//!   region) and attribute names by built-in synonyms plus a user mapping.
//! * Phone numbers normalised to E.164 (`phonenumber`), default region CN;
//!   time zone from a column, else derived from the number ([`tz`]).
//! * Other columns become typed attributes (number, date, text, bool), the
//!   kind inferred from the first rows or taken from the store's schema.
//! * A bad row becomes a [`Reject`] naming its line, column and reason; it
//!   never stops the import and never panics.
//!
//! Architecture invariant: reads only from the `Read` it is given; no
//! storage, no clock, no encryption (the store seals what this produces).

mod cn_mobile;
pub mod tz;
pub mod value;
pub mod xlsx;

use std::collections::BTreeMap;
use std::io::{Chain, Cursor, Read};

use chrono_tz::Tz;
use rayon::prelude::*;
use waihu_core::{AttrKind, AttrSchema, AttrValue, Attrs};

// The record and zone source live in core so the store can take them
// without depending on this crate; re-exported so callers needn't change.
pub use waihu_core::{CustomerRecord, TzSource};
/// Single numbers (DNC entries, lookups) go through `waihu-phone`, shared with the API server.
pub use waihu_phone::normalize_phone;

/// Rows sampled to infer attribute kinds.
const SAMPLE_ROWS: usize = 1000;
const SNIFF_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("cannot read input: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {reason}")]
    Csv { line: u64, reason: String },
    #[error("the file has no header row")]
    NoHeader,
    #[error("no phone column: expected a header such as 手机号, 电话, phone or mobile (found: {found}); map one with a column mapping")]
    NoPhoneColumn { found: String },
    #[error("column mapping {file}: {reason}")]
    Mapping { file: String, reason: String },
    #[error("unknown default region '{0}': use an ISO 3166 code such as CN or US")]
    Region(String),
}

/// What a column is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Phone,
    Name,
    Timezone,
    Region,
    /// Whether the customer agreed to be called (`consent.required` campaigns
    /// dial only those who did).
    Consent,
    Attr(String),
}

const PHONE: &[&str] = &[
    "手机号",
    "手机号码",
    "手机",
    "电话",
    "电话号码",
    "联系电话",
    "phone",
    "mobile",
    "phone_number",
    "tel",
    "telephone",
    "cell",
];
const NAME: &[&str] = &[
    "姓名",
    "客户姓名",
    "名字",
    "客户名称",
    "name",
    "customer_name",
    "full_name",
];
const TIMEZONE: &[&str] = &["时区", "timezone", "time_zone", "tz"];
const REGION: &[&str] = &[
    "国家",
    "国家/地区",
    "地区代码",
    "country",
    "region",
    "country_code",
];
const CONSENT: &[&str] = &[
    "consent",
    "opt_in",
    "optin",
    "opt-in",
    "consented",
    "has_consent",
    "call_consent",
    "同意",
    "授权",
    "是否同意",
    "是否授权",
    "同意外呼",
    "外呼授权",
    "同意联系",
];

/// A consent cell: yes/no, true/false, 1/0, 是/否, 同意/不同意 (and a few close
/// spellings). `None` when it is none of them.
pub fn parse_consent(cell: &str) -> Option<bool> {
    let t = cell.trim();
    let is = |words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(&[
        "yes",
        "y",
        "true",
        "t",
        "1",
        "是",
        "同意",
        "已同意",
        "授权",
        "已授权",
        "opt_in",
        "opt-in",
    ]) {
        Some(true)
    } else if is(&[
        "no",
        "n",
        "false",
        "f",
        "0",
        "否",
        "不同意",
        "未同意",
        "拒绝",
        "未授权",
        "opt_out",
        "opt-out",
    ]) {
        Some(false)
    } else {
        None
    }
}

/// A message-channel preference cell → `sms`, `push`, `none` (no follow-up messages at all)
/// or `any`; `None` when it is none of them. What the planner's fallbacks honour.
pub fn parse_channel_pref(cell: &str) -> Option<&'static str> {
    let t = cell.trim();
    let is = |words: &[&str]| words.iter().any(|w| t.eq_ignore_ascii_case(w));
    if is(&["sms", "text", "短信", "短信优先"]) {
        Some("sms")
    } else if is(&[
        "push",
        "app",
        "app push",
        "推送",
        "app推送",
        "App推送",
        "APP推送",
    ]) {
        Some("push")
    } else if is(&[
        "none",
        "no messages",
        "never",
        "不接收",
        "拒收",
        "不发送",
        "无",
    ]) {
        Some("none")
    } else if is(&["any", "all", "either", "不限", "均可", "任意"]) {
        Some("any")
    } else {
        None
    }
}

/// Built-in names for the attributes the seed's segmentation uses.
const ATTR_SYNONYMS: &[(&str, &str)] = &[
    ("联系偏好", "channel_pref"),
    ("偏好渠道", "channel_pref"),
    ("消息偏好", "channel_pref"),
    ("preferred_channel", "channel_pref"),
    ("channel preference", "channel_pref"),
    ("购买频次", "purchase_freq"),
    ("购买次数", "purchase_freq"),
    ("平均客单价", "avg_order"),
    ("客单价", "avg_order"),
    ("互动次数", "interaction_count"),
    ("最近购买天数", "last_purchase"),
    ("距上次购买天数", "last_purchase"),
    ("最近互动天数", "last_interaction"),
    ("距上次互动天数", "last_interaction"),
    ("会员等级", "member_level"),
    ("是否app用户", "has_app"),
    ("注册日期", "registered_on"),
    ("城市", "city"),
    ("省份", "province"),
    ("性别", "gender"),
    ("年龄", "age"),
    ("客户编号", "external_id"),
    ("订单号", "order_id"),
    ("订单金额", "order_amount"),
    ("欠款金额", "amount_due"),
    ("到期日", "due_date"),
];

/// How headers map to roles and attribute names.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// Header (as written in the file) → `phone`, `name`, `timezone`, `region`, `consent`,
    /// or an attribute name.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
}

impl ColumnMap {
    pub fn from_yaml(src: &str, file: &str) -> Result<Self, IngestError> {
        serde_norway::from_str(src).map_err(|e| IngestError::Mapping {
            file: file.to_string(),
            reason: e.to_string(),
        })
    }

    fn role_of(&self, header: &str) -> Role {
        let h = header.trim().trim_start_matches('\u{feff}');
        if let Some(target) = self.columns.get(h) {
            return match target.as_str() {
                "phone" => Role::Phone,
                "name" => Role::Name,
                "timezone" => Role::Timezone,
                "region" => Role::Region,
                "consent" => Role::Consent,
                other => Role::Attr(other.to_string()),
            };
        }
        let lower = h.to_lowercase();
        let is = |list: &[&str]| list.iter().any(|s| *s == lower);
        if is(PHONE) {
            Role::Phone
        } else if is(NAME) {
            Role::Name
        } else if is(TIMEZONE) {
            Role::Timezone
        } else if is(REGION) {
            Role::Region
        } else if is(CONSENT) {
            Role::Consent
        } else if let Some((_, n)) = ATTR_SYNONYMS.iter().find(|(k, _)| *k == lower) {
            Role::Attr((*n).to_string())
        } else {
            Role::Attr(identifier(h))
        }
    }
}

/// `Avg Order (¥)` → `avg_order`; non-ASCII headers are kept as written.
fn identifier(h: &str) -> String {
    if !h.is_ascii() {
        return h.to_string();
    }
    let mut out = String::new();
    for c in h.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    let out = out.trim_end_matches('_').to_string();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        format!("col_{out}")
    } else {
        out
    }
}

/// Import settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub default_region: phonenumber::country::Id,
    pub map: ColumnMap,
    /// Kinds already known to the store; they win over inference.
    pub schema: AttrSchema,
    /// 号段归属地: a Chinese number's region becomes its province/city.
    pub geo: Option<std::sync::Arc<waihu_geo::Table>>,
}

impl Options {
    pub fn new(default_region: &str) -> Result<Self, IngestError> {
        let id = default_region
            .trim()
            .to_uppercase()
            .parse()
            .map_err(|_| IngestError::Region(default_region.to_string()))?;
        Ok(Options {
            default_region: id,
            map: ColumnMap::default(),
            schema: AttrSchema::new(),
            geo: None,
        })
    }
}

/// One raw record as read: its line in the file and its cells.
#[derive(Debug, Clone)]
pub struct RawRow {
    pub line: u64,
    pub cells: Vec<String>,
}

/// A row that was not imported, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Reject {
    pub line: u64,
    /// Header of the offending column, when one is to blame.
    pub column: Option<String>,
    pub reason: String,
    pub cells: Vec<String>,
}

/// Encoding of the input as detected.
pub fn detect_encoding(sample: &[u8], complete: bool) -> &'static encoding_rs::Encoding {
    if sample.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return encoding_rs::UTF_8;
    }
    match std::str::from_utf8(sample) {
        Ok(_) => return encoding_rs::UTF_8,
        // A multi-byte character cut at the end of the sample is still UTF-8.
        Err(e) if !complete && e.error_len().is_none() => return encoding_rs::UTF_8,
        Err(_) => {}
    }
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(sample, complete);
    let guess = det.guess(Some(b"cn"), chardetng::Utf8Detection::Allow);
    // GBK files are decoded with GB18030, its superset.
    if guess == encoding_rs::GBK {
        encoding_rs::GB18030
    } else {
        guess
    }
}

/// The decoded text on its way to the csv reader, with the offsets of its line
/// breaks, so a record's line is counted from the text itself: the csv crate
/// gives a record after blank lines the first blank's number
/// (BurntSushi/rust-csv#208).
struct Lines<R> {
    inner: R,
    read: u64,
    /// Offsets of line breaks not yet passed by a query.
    ahead: std::collections::VecDeque<u64>,
    /// Line breaks before the last query.
    passed: u64,
}

impl<R: Read> Read for Lines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, b) in buf[..n].iter().enumerate() {
            if *b == b'\n' {
                self.ahead.push_back(self.read + i as u64);
            }
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl<R> Lines<R> {
    fn new(inner: R) -> Self {
        Lines {
            inner,
            read: 0,
            ahead: std::collections::VecDeque::new(),
            passed: 0,
        }
    }

    /// The 1-based line of the byte at `offset` (queries never go back).
    fn line_of(&mut self, offset: u64) -> u64 {
        while self.ahead.front().is_some_and(|&o| o < offset) {
            self.ahead.pop_front();
            self.passed += 1;
        }
        self.passed + 1
    }
}

/// The line a record starts on: the line of its last byte (the reader stands
/// just past it, or past its terminator's `\r`) less the line breaks inside
/// its quoted fields.
fn record_line<R: Read>(rec: &csv::StringRecord, reader: &mut csv::Reader<Lines<R>>) -> u64 {
    let end = reader.position().byte();
    let inside: u64 = rec.iter().map(|f| f.matches('\n').count() as u64).sum();
    reader
        .get_mut()
        .line_of(end.saturating_sub(1))
        .saturating_sub(inside)
        .max(1)
}

type Decoded<R> = encoding_rs_io::DecodeReaderBytes<Chain<Cursor<Vec<u8>>, R>, Vec<u8>>;

/// A CSV file being read: the header, the decided column plan, and the rows.
pub struct Source<R: Read> {
    reader: csv::Reader<Lines<Decoded<R>>>,
    pub encoding: &'static str,
    pub headers: Vec<String>,
    pub roles: Vec<Role>,
    /// Attribute kinds decided for this file (schema first, then inference).
    pub kinds: BTreeMap<String, AttrKind>,
    opts: Options,
    pending: Vec<RawRow>,
    /// Rows the reader itself could not split (bad quoting, wrong field count).
    framing_rejects: Vec<Reject>,
    done: bool,
}

impl<R: Read> Source<R> {
    pub fn open(mut input: R, opts: Options) -> Result<Self, IngestError> {
        let mut sniff = Vec::with_capacity(SNIFF_BYTES);
        (&mut input)
            .take(SNIFF_BYTES as u64)
            .read_to_end(&mut sniff)?;
        let complete = sniff.len() < SNIFF_BYTES;
        let enc = detect_encoding(&sniff, complete);
        let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
            .encoding(Some(enc))
            .bom_override(true)
            .build(Cursor::new(sniff).chain(input));
        let mut reader = csv::ReaderBuilder::new()
            .flexible(true)
            .has_headers(true)
            .from_reader(Lines::new(decoded));
        let headers: Vec<String> = match reader.headers() {
            Ok(h) if h.iter().any(|c| !c.trim().is_empty()) => h
                .iter()
                .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
                .collect(),
            Ok(_) => return Err(IngestError::NoHeader),
            Err(e) => return Err(csv_error(e)),
        };
        let roles: Vec<Role> = headers.iter().map(|h| opts.map.role_of(h)).collect();
        if !roles.contains(&Role::Phone) {
            return Err(IngestError::NoPhoneColumn {
                found: headers.join(", "),
            });
        }
        let mut src = Source {
            reader,
            encoding: enc.name(),
            headers,
            roles,
            kinds: BTreeMap::new(),
            opts,
            pending: Vec::new(),
            framing_rejects: Vec::new(),
            done: false,
        };
        let sample = src.read_raw(SAMPLE_ROWS)?;
        src.decide_kinds(&sample);
        src.pending = sample;
        Ok(src)
    }

    fn decide_kinds(&mut self, sample: &[RawRow]) {
        for (i, role) in self.roles.iter().enumerate() {
            if let Role::Attr(name) = role {
                let kind = self.opts.schema.get(name).copied().unwrap_or_else(|| {
                    value::infer_kind(
                        sample
                            .iter()
                            .filter_map(|r| r.cells.get(i).map(String::as_str)),
                    )
                });
                self.kinds.insert(name.clone(), kind);
            }
        }
    }

    fn read_raw(&mut self, max: usize) -> Result<Vec<RawRow>, IngestError> {
        let mut out = Vec::with_capacity(max.min(8192));
        let mut rec = csv::StringRecord::new();
        while out.len() < max && !self.done {
            match self.reader.read_record(&mut rec) {
                Ok(false) => self.done = true,
                Ok(true) => {
                    let line = record_line(&rec, &mut self.reader);
                    if rec.len() == 1 && rec[0].trim().is_empty() {
                        continue; // blank line
                    }
                    let cells: Vec<String> = rec.iter().map(str::to_string).collect();
                    if cells.len() != self.headers.len() {
                        self.framing_rejects.push(Reject {
                            line,
                            column: None,
                            reason: format!(
                                "expected {} fields, found {}",
                                self.headers.len(),
                                cells.len()
                            ),
                            cells,
                        });
                        continue;
                    }
                    out.push(RawRow { line, cells });
                }
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    match e.kind() {
                        csv::ErrorKind::Io(_) => return Err(csv_error(e)),
                        _ => self.framing_rejects.push(Reject {
                            line,
                            column: None,
                            reason: e.to_string(),
                            cells: Vec::new(),
                        }),
                    }
                }
            }
        }
        Ok(out)
    }

    /// The next up to `max` rows, normalised in parallel. Empty when the file is done.
    pub fn next_batch(
        &mut self,
        max: usize,
    ) -> Result<Vec<Result<CustomerRecord, Reject>>, IngestError> {
        let mut raw = std::mem::take(&mut self.pending);
        if raw.len() < max {
            let more = self.read_raw(max - raw.len())?;
            raw.extend(more);
        }
        let mut out: Vec<Result<CustomerRecord, Reject>> =
            self.framing_rejects.drain(..).map(Err).collect();
        let plan = Plan {
            headers: &self.headers,
            roles: &self.roles,
            kinds: &self.kinds,
            opts: &self.opts,
        };
        let rows: Vec<_> = raw
            .into_par_iter()
            .with_min_len(256)
            .map(|r| plan.normalize(r))
            .collect();
        out.extend(rows);
        Ok(out)
    }
}

fn csv_error(e: csv::Error) -> IngestError {
    let line = e.position().map_or(0, |p| p.line());
    match e.into_kind() {
        csv::ErrorKind::Io(io) => IngestError::Io(io),
        other => IngestError::Csv {
            line,
            reason: format!("{other:?}"),
        },
    }
}

struct Plan<'a> {
    headers: &'a [String],
    roles: &'a [Role],
    kinds: &'a BTreeMap<String, AttrKind>,
    opts: &'a Options,
}

impl Plan<'_> {
    fn normalize(&self, row: RawRow) -> Result<CustomerRecord, Reject> {
        let reject = |col: usize, reason: String, row: &RawRow| Reject {
            line: row.line,
            column: Some(self.headers[col].clone()),
            reason,
            cells: row.cells.clone(),
        };
        let (mut phone, mut name, mut tz_cell, mut region_cell) = (None, None, None, None);
        let mut consent = None;
        let mut attrs = Attrs::new();
        for (i, (role, cell)) in self.roles.iter().zip(&row.cells).enumerate() {
            let cell = cell.trim();
            match role {
                Role::Phone => phone = Some((i, cell)),
                Role::Name if !cell.is_empty() => name = Some(cell.to_string()),
                Role::Timezone if !cell.is_empty() => tz_cell = Some((i, cell)),
                Role::Region if !cell.is_empty() => region_cell = Some((i, cell)),
                Role::Consent if !cell.is_empty() => {
                    consent = Some(parse_consent(cell).ok_or_else(|| {
                        reject(
                            i,
                            format!("consent must be yes/no (是/否, 同意/不同意, true/false, 1/0), got '{cell}' / 同意字段无效"),
                            &row,
                        )
                    })?);
                }
                Role::Attr(a) if !cell.is_empty() && a == "channel_pref" => {
                    let pref = parse_channel_pref(cell).ok_or_else(|| {
                        reject(
                            i,
                            format!("channel preference must be sms, push, none or any (短信/推送/不接收/不限), got '{cell}' / 联系偏好无效"),
                            &row,
                        )
                    })?;
                    attrs.insert(a.clone(), AttrValue::Text(pref.to_string()));
                }
                Role::Attr(a) if !cell.is_empty() => {
                    let kind = self.kinds.get(a).copied().unwrap_or(AttrKind::Text);
                    let v = value::parse_as(kind, cell)
                        .map_err(|why| reject(i, format!("{why}, got '{cell}'"), &row))?;
                    attrs.insert(a.clone(), v);
                }
                _ => {}
            }
        }
        let region = match region_cell {
            Some((i, r)) => r
                .to_uppercase()
                .parse()
                .map_err(|_| reject(i, format!("unknown region code '{r}'"), &row))?,
            None => self.opts.default_region,
        };
        let (pi, raw_phone) = phone.expect("a phone column exists (checked at open)");
        if raw_phone.is_empty() {
            return Err(reject(pi, "phone number is empty".into(), &row));
        }
        let (e164, num_region, national) = match cn_mobile::normalize(region, raw_phone) {
            Some(Ok((e164, national))) => (e164, "CN".to_string(), national),
            Some(Err(())) => {
                return Err(reject(
                    pi,
                    format!("'{raw_phone}' is not a valid number for region CN"),
                    &row,
                ));
            }
            None => {
                let parsed = phonenumber::parse(Some(region), raw_phone).map_err(|e| {
                    reject(
                        pi,
                        format!("'{raw_phone}' is not a phone number ({e})"),
                        &row,
                    )
                })?;
                if !phonenumber::is_valid(&parsed) {
                    return Err(reject(
                        pi,
                        format!(
                            "'{raw_phone}' is not a valid number for region {}",
                            region.as_ref()
                        ),
                        &row,
                    ));
                }
                let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
                let num_region = parsed
                    .country()
                    .id()
                    .map_or_else(|| "ZZ".to_string(), |id| id.as_ref().to_string());
                (e164, num_region, parsed.national().value().to_string())
            }
        };
        let (tz, tz_source) = match tz_cell {
            Some((i, t)) => {
                let tz: Tz = t.parse().map_err(|_| reject(i, format!("unknown time zone '{t}' (use an IANA name such as Asia/Shanghai)"), &row))?;
                (tz, TzSource::Column)
            }
            None => tz::zone_for(&num_region, &national)
                .ok_or_else(|| reject(pi, format!("cannot derive a time zone for region {num_region}; add a 时区/timezone column"), &row))?,
        };
        let region = match &self.opts.geo {
            Some(geo) if num_region == "CN" => geo.region(&e164).unwrap_or(num_region),
            _ => num_region,
        };
        Ok(CustomerRecord {
            line: row.line,
            phone_e164: e164,
            name,
            region,
            tz,
            tz_source,
            attrs,
            consent,
        })
    }
}

/// Write rejects as CSV (UTF-8 with BOM so spreadsheet programs read Chinese).
pub fn write_rejects<W: std::io::Write>(
    out: W,
    headers: &[String],
    rejects: &[Reject],
) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new().flexible(true).from_writer(out);
    let mut head = vec!["\u{feff}line".to_string(), "column".into(), "reason".into()];
    head.extend(headers.iter().cloned());
    w.write_record(&head)?;
    for r in rejects {
        let mut rec = vec![
            r.line.to_string(),
            r.column.clone().unwrap_or_default(),
            r.reason.clone(),
        ];
        rec.extend(r.cells.iter().cloned());
        w.write_record(&rec)?;
    }
    w.flush()
}

/// Split a batch from [`Source::next_batch`] into valid rows and rejects,
/// each in file order.
pub fn split_batch(
    rows: Vec<Result<CustomerRecord, Reject>>,
) -> (Vec<CustomerRecord>, Vec<Reject>) {
    let mut good = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for r in rows {
        match r {
            Ok(c) => good.push(c),
            Err(rej) => bad.push(rej),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests;
