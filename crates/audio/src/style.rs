//! Emotion styles (pitch and speed multipliers, as in the seed) and how they
//! map onto espeak-ng's parameters.
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// A speaking style. `pitch` and `speed` are multipliers of the voice's
/// neutral F0 and rate; `range` scales the pitch range (intonation width)
/// for engines that support it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Style {
    pub pitch: f32,
    pub speed: f32,
    #[serde(default = "one")]
    pub range: f32,
}

fn one() -> f32 {
    1.0
}

impl Style {
    pub const NEUTRAL: Style = Style {
        pitch: 1.0,
        speed: 1.0,
        range: 1.0,
    };
}

impl Default for Style {
    fn default() -> Self {
        Style::NEUTRAL
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StyleError {
    #[error("读取风格配置失败 / cannot read style config {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("风格配置错误 / style config {origin}: {message}")]
    Parse { origin: String, message: String },
    #[error("风格配置错误 / style config {origin}: style `{style}` field `{field}` = {value} is outside {min}..={max}")]
    Range {
        origin: String,
        style: String,
        field: &'static str,
        value: f32,
        min: f32,
        max: f32,
    },
    #[error("未知风格 / unknown style `{0}` (known: {1})")]
    Unknown(String, String),
}

/// Named styles: the seed's presets plus `neutral` and `calm`, overridable and
/// extendable from a YAML or JSON file of the same shape as the seed's
/// example: `{"happy": {"pitch": 1.2, "speed": 1.1}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StyleBook {
    styles: BTreeMap<String, Style>,
}

impl Default for StyleBook {
    fn default() -> Self {
        let mut styles = BTreeMap::new();
        styles.insert("neutral".to_string(), Style::NEUTRAL);
        styles.insert(
            "happy".to_string(),
            Style {
                pitch: 1.2,
                speed: 1.1,
                range: 1.0,
            },
        );
        styles.insert(
            "urgent".to_string(),
            Style {
                pitch: 1.5,
                speed: 1.3,
                range: 1.0,
            },
        );
        styles.insert(
            "apologetic".to_string(),
            Style {
                pitch: 0.8,
                speed: 0.9,
                range: 1.0,
            },
        );
        // Scripts may name `calm` (de-escalation): slower, lower, narrower.
        styles.insert(
            "calm".to_string(),
            Style {
                pitch: 0.9,
                speed: 0.85,
                range: 0.8,
            },
        );
        StyleBook { styles }
    }
}

const PITCH_BOUNDS: (f32, f32) = (0.5, 2.0);
const SPEED_BOUNDS: (f32, f32) = (0.4, 2.5);
const RANGE_BOUNDS: (f32, f32) = (0.0, 2.0);

impl StyleBook {
    /// Parse a style file (YAML, of which JSON is a subset) over the defaults.
    /// `origin` names the file in errors; parse errors carry line and column.
    pub fn from_str_over_defaults(text: &str, origin: &str) -> Result<Self, StyleError> {
        let parsed: BTreeMap<String, Style> = serde_norway::from_str(text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {} column {}", l.line(), l.column()))
                .unwrap_or_default();
            StyleError::Parse {
                origin: origin.to_string(),
                message: format!("{e}{at}"),
            }
        })?;
        let mut book = StyleBook::default();
        for (name, style) in parsed {
            for (field, value, (min, max)) in [
                ("pitch", style.pitch, PITCH_BOUNDS),
                ("speed", style.speed, SPEED_BOUNDS),
                ("range", style.range, RANGE_BOUNDS),
            ] {
                if !(min..=max).contains(&value) {
                    return Err(StyleError::Range {
                        origin: origin.to_string(),
                        style: name,
                        field,
                        value,
                        min,
                        max,
                    });
                }
            }
            book.styles.insert(name, style);
        }
        Ok(book)
    }

    pub fn load(path: &Path) -> Result<Self, StyleError> {
        let text = std::fs::read_to_string(path).map_err(|err| StyleError::Io {
            path: path.display().to_string(),
            err,
        })?;
        Self::from_str_over_defaults(&text, &path.display().to_string())
    }

    pub fn get(&self, name: &str) -> Result<Style, StyleError> {
        self.styles.get(name).copied().ok_or_else(|| {
            StyleError::Unknown(
                name.to_string(),
                self.styles.keys().cloned().collect::<Vec<_>>().join(", "),
            )
        })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.styles.keys().map(String::as_str)
    }
}

/// espeak-ng `-p` values and the F0 ratio to `-p 50` measured for each on
/// this project's machine (Debian 12, espeak-ng 1.51). espeak's pitch is not
/// a multiplier, so a style's multiplier is mapped through this table.
pub const ESPEAK_PITCH_TABLE: [(u8, f32); 8] = [
    (0, 0.76),
    (20, 0.82),
    (35, 0.91),
    (50, 1.00),
    (60, 1.10),
    (70, 1.19),
    (80, 1.34),
    (99, 1.64),
];

/// espeak-ng's default rate in words per minute.
pub const ESPEAK_DEFAULT_WPM: f32 = 175.0;

/// Parameters for one espeak-ng invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspeakParams {
    /// `-p`, 0..=99.
    pub pitch: u8,
    /// `-s`, words per minute, 80..=450.
    pub wpm: u32,
}

/// The `-p` giving F0 × `multiplier`, by linear interpolation in the measured
/// table; multipliers beyond the table's ends give 0 or 99.
pub fn espeak_pitch(multiplier: f32) -> u8 {
    let t = &ESPEAK_PITCH_TABLE;
    if !multiplier.is_finite() || multiplier <= t[0].1 {
        return t[0].0;
    }
    for w in t.windows(2) {
        let ((p0, r0), (p1, r1)) = (w[0], w[1]);
        if multiplier <= r1 {
            let frac = (multiplier - r0) / (r1 - r0);
            return (p0 as f32 + frac * (p1 as f32 - p0 as f32)).round() as u8;
        }
    }
    t[t.len() - 1].0
}

pub fn espeak_params(style: &Style) -> EspeakParams {
    let wpm = (ESPEAK_DEFAULT_WPM * style.speed).round();
    let wpm = if wpm.is_finite() {
        wpm.clamp(80.0, 450.0) as u32
    } else {
        ESPEAK_DEFAULT_WPM as u32
    };
    EspeakParams {
        pitch: espeak_pitch(style.pitch),
        wpm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pitch_table_is_inverted_by_interpolation() {
        assert_eq!(espeak_pitch(1.0), 50);
        assert_eq!(espeak_pitch(1.19), 70);
        assert_eq!(espeak_pitch(1.2), 71);
        // ×0.8 lies between -p 0 (0.76) and -p 20 (0.82).
        assert_eq!(espeak_pitch(0.8), 13);
        assert_eq!(espeak_pitch(1.5), 90);
        assert_eq!(espeak_pitch(0.5), 0);
        assert_eq!(espeak_pitch(3.0), 99);
        assert_eq!(espeak_pitch(f32::NAN), 0);
        // Monotonic.
        let mut last = 0;
        for i in 0..100 {
            let p = espeak_pitch(0.7 + i as f32 * 0.01);
            assert!(p >= last);
            last = p;
        }
    }

    #[test]
    fn seed_presets_map_to_espeak_parameters() {
        let book = StyleBook::default();
        assert_eq!(
            espeak_params(&book.get("neutral").unwrap()),
            EspeakParams {
                pitch: 50,
                wpm: 175
            }
        );
        assert_eq!(
            espeak_params(&book.get("happy").unwrap()),
            EspeakParams {
                pitch: 71,
                wpm: 193
            }
        );
        assert_eq!(
            espeak_params(&book.get("urgent").unwrap()),
            EspeakParams {
                pitch: 90,
                wpm: 227
            }
        );
        assert_eq!(
            espeak_params(&book.get("apologetic").unwrap()),
            EspeakParams {
                pitch: 13,
                wpm: 158
            }
        );
    }

    #[test]
    fn config_overrides_and_extends_defaults() {
        let book = StyleBook::from_str_over_defaults(
            "happy: {pitch: 1.3, speed: 1.0}\ncalm:\n  pitch: 0.9\n  speed: 0.85\n",
            "styles.yaml",
        )
        .unwrap();
        assert_eq!(book.get("happy").unwrap().pitch, 1.3);
        assert_eq!(book.get("calm").unwrap().speed, 0.85);
        assert_eq!(book.get("urgent").unwrap().pitch, 1.5);
        let json = StyleBook::from_str_over_defaults(
            r#"{"sad": {"pitch": 0.8, "speed": 0.8, "range": 0.5}}"#,
            "s.json",
        );
        assert_eq!(json.unwrap().get("sad").unwrap().range, 0.5);
    }

    #[test]
    fn config_errors_name_place_and_field() {
        let e =
            StyleBook::from_str_over_defaults("happy:\n  pitch: 1.2\n  sped: 1.1\n", "styles.yaml")
                .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("styles.yaml") && msg.contains("sped") && msg.contains("line"),
            "{msg}"
        );
        let e = StyleBook::from_str_over_defaults("x: {pitch: 9, speed: 1}", "s.yaml").unwrap_err();
        assert!(matches!(e, StyleError::Range { field: "pitch", .. }), "{e}");
        assert!(StyleBook::default()
            .get("angry")
            .unwrap_err()
            .to_string()
            .contains("happy"));
    }
}
