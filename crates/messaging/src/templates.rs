//! Message templates per script or campaign, in Chinese and English, with the script's
//! `{{variables}}`. Checked at load: every variable must be one the caller knows, every
//! text must fit in `max_segments` SMS (GSM-7 or UCS-2, counted with the variables as
//! written), and a Chinese text must carry a 【签名】 signature (Chinese carriers reject
//! messages to +86 numbers without one) or the set must give one to prepend.
//!
//! ```yaml
//! signature: 【外呼】        # optional; prepended to zh texts lacking one
//! max_segments: 3           # optional, default 3
//! templates:
//!   coupon:
//!     zh: "{{name}}您好，您的{{amount}}元优惠券已到账，回复TD退订"
//!     en: "Hi {{name}}, your {{amount}} coupon is ready. Reply STOP to opt out."
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use waihu_dialog::template::{parse, RawPart};
use waihu_smpp::text::{plan, Encoding};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemplateError {
    #[error("message templates: {0}")]
    Yaml(String),
    #[error("template {template} ({lang}): {message}")]
    Invalid {
        template: String,
        lang: &'static str,
        message: String,
    },
    #[error("no message template named '{0}'")]
    Unknown(String),
    #[error("template {template} ({lang}): variable '{var}' has no value for this customer")]
    MissingValue {
        template: String,
        lang: &'static str,
        var: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    signature: Option<String>,
    #[serde(default)]
    max_segments: Option<usize>,
    templates: BTreeMap<String, Texts>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Texts {
    #[serde(default)]
    zh: Option<String>,
    #[serde(default)]
    en: Option<String>,
}

#[derive(Debug, Clone)]
struct Checked {
    parts: Vec<RawPart>,
}

/// What load found about one text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCheck {
    pub template: String,
    pub lang: &'static str,
    pub encoding: Encoding,
    pub segments: usize,
}

#[derive(Debug, Clone)]
pub struct TemplateSet {
    signature: Option<String>,
    templates: BTreeMap<String, (Option<Checked>, Option<Checked>)>,
    pub checks: Vec<TextCheck>,
}

/// A text ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    pub lang: &'static str,
    pub encoding: Encoding,
    pub segments: usize,
}

/// Whether a text carries a 【…】 signature at its start or end.
pub fn has_signature(text: &str) -> bool {
    let t = text.trim();
    let at_start = t.starts_with('【') && t.contains('】');
    let at_end = t.ends_with('】') && t.contains('【');
    at_start || at_end
}

impl TemplateSet {
    /// Parses and checks a template file. `known_vars`: the variables the script can fill
    /// (its constants, `name`, the customers' attributes).
    pub fn load(yaml: &str, known_vars: &[&str]) -> Result<TemplateSet, TemplateError> {
        let file: File =
            serde_norway::from_str(yaml).map_err(|e| TemplateError::Yaml(e.to_string()))?;
        let max = file.max_segments.unwrap_or(3);
        if let Some(sig) = &file.signature {
            if !has_signature(sig) {
                return Err(TemplateError::Yaml(format!(
                    "signature '{sig}' must look like 【名称】"
                )));
            }
        }
        let mut set = TemplateSet {
            signature: file.signature.clone(),
            templates: BTreeMap::new(),
            checks: Vec::new(),
        };
        for (name, texts) in file.templates {
            if texts.zh.is_none() && texts.en.is_none() {
                return Err(TemplateError::Invalid {
                    template: name,
                    lang: "zh/en",
                    message: "needs a zh or an en text".into(),
                });
            }
            let mut check = |lang: &'static str, src: &Option<String>| {
                let Some(src) = src else {
                    return Ok(None);
                };
                let invalid = |message: String| TemplateError::Invalid {
                    template: name.clone(),
                    lang,
                    message,
                };
                let parts = parse(src)
                    .map_err(|e| invalid(format!("at character {}: {}", e.offset, e.message)))?;
                for p in &parts {
                    if let RawPart::Var(v) = p {
                        if !known_vars.contains(&v.as_str()) {
                            return Err(invalid(format!(
                                "unknown variable '{{{{{v}}}}}' (known: {})",
                                known_vars.join(", ")
                            )));
                        }
                    }
                }
                let mut text = src.clone();
                if lang == "zh" && !has_signature(&text) {
                    match &set.signature {
                        Some(sig) => text = format!("{sig}{text}"),
                        None => {
                            return Err(invalid(
                                "a Chinese text needs a 【签名】 signature (or set `signature:`)"
                                    .into(),
                            ))
                        }
                    }
                }
                let p = plan(&text);
                if p.segment_count() > max {
                    return Err(invalid(format!(
                        "{} {} units need {} SMS segments (max_segments {max})",
                        p.units,
                        p.encoding.name(),
                        p.segment_count()
                    )));
                }
                set.checks.push(TextCheck {
                    template: name.clone(),
                    lang,
                    encoding: p.encoding,
                    segments: p.segment_count(),
                });
                Ok(Some(Checked { parts }))
            };
            let zh = check("zh", &texts.zh)?;
            let en = check("en", &texts.en)?;
            set.templates.insert(name, (zh, en));
        }
        Ok(set)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.templates.keys().map(String::as_str)
    }

    /// Renders `name` for a number: Chinese for +86 (and when only zh exists), English
    /// otherwise. A +86 text always carries a signature.
    pub fn render(
        &self,
        name: &str,
        to: &str,
        vars: &[(String, String)],
    ) -> Result<Rendered, TemplateError> {
        let (zh, en) = self
            .templates
            .get(name)
            .ok_or_else(|| TemplateError::Unknown(name.into()))?;
        let chinese = to.starts_with("+86");
        let (lang, t) = match (chinese, zh, en) {
            (true, Some(t), _) | (false, Some(t), None) => ("zh", t),
            (_, _, Some(t)) => ("en", t),
            (_, None, None) => return Err(TemplateError::Unknown(name.into())),
        };
        let mut text = String::new();
        for p in &t.parts {
            match p {
                RawPart::Lit(s) => text.push_str(s),
                RawPart::Var(v) => {
                    let value = vars.iter().rev().find(|(k, _)| k == v).ok_or_else(|| {
                        TemplateError::MissingValue {
                            template: name.into(),
                            lang,
                            var: v.clone(),
                        }
                    })?;
                    text.push_str(&value.1);
                }
            }
        }
        if (lang == "zh" || chinese) && !has_signature(&text) {
            match &self.signature {
                Some(sig) => text = format!("{sig}{text}"),
                None => {
                    return Err(TemplateError::Invalid {
                        template: name.into(),
                        lang,
                        message: "a message to a +86 number needs a 【签名】 signature".into(),
                    })
                }
            }
        }
        let p = plan(&text);
        Ok(Rendered {
            segments: p.segment_count(),
            encoding: p.encoding,
            lang,
            text,
        })
    }
}

/// Loads a template file for a campaign: the known variables are the run's constants,
/// `name`, and every stored customer attribute (`order_item` also as `order.item`), as the
/// dialer fills them.
pub async fn load_for_campaign(
    store: &waihu_store::Store,
    yaml: &str,
    constants: &[(String, String)],
) -> Result<TemplateSet, TemplateError> {
    let schema = store
        .attr_schema()
        .await
        .map_err(|e| TemplateError::Yaml(format!("reading the attribute schema: {e}")))?;
    let mut known: Vec<String> = constants.iter().map(|(k, _)| k.clone()).collect();
    known.push("name".into());
    for k in schema.keys() {
        known.push(k.clone());
        if k.contains('_') {
            known.push(k.replacen('_', ".", 1));
        }
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    TemplateSet::load(yaml, &known)
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
signature: 【外呼】
templates:
  coupon:
    zh: "{{name}}您好，您的{{amount}}元优惠券已到账，回复TD退订"
    en: "Hi {{name}}, your {{amount}} coupon is ready. Reply STOP to opt out."
"#;

    fn vars() -> Vec<(String, String)> {
        vec![
            ("name".into(), "张伟".into()),
            ("amount".into(), "50".into()),
        ]
    }

    #[test]
    fn renders_by_number_and_checks_encoding() {
        let set = TemplateSet::load(YAML, &["name", "amount"]).unwrap();
        let zh = set.render("coupon", "+8613800000001", &vars()).unwrap();
        assert_eq!(
            zh.text,
            "【外呼】张伟您好，您的50元优惠券已到账，回复TD退订"
        );
        assert_eq!((zh.encoding, zh.segments), (Encoding::Ucs2, 1));
        let en = set.render("coupon", "+447700900001", &vars()).unwrap();
        assert_eq!(en.encoding, Encoding::Ucs2, "the name is Chinese");
        let en = set
            .render(
                "coupon",
                "+447700900001",
                &[
                    ("name".into(), "Ann".into()),
                    ("amount".into(), "$5".into()),
                ],
            )
            .unwrap();
        assert_eq!(en.encoding, Encoding::Gsm7);
        assert_eq!(set.checks.len(), 2);
    }

    #[test]
    fn the_example_file_loads_and_names_the_campaigns_fallback() {
        let yaml = include_str!("../../../examples/messages.yaml");
        let set = TemplateSet::load(yaml, &["name"]).unwrap();
        let campaign = include_str!("../../../examples/campaign.yaml");
        assert!(campaign.contains("template: missed_call_sms"));
        assert!(set.names().any(|n| n == "missed_call_sms"));
    }

    #[test]
    fn bad_templates_are_refused_at_load() {
        let e = TemplateSet::load(YAML, &["name"]).unwrap_err();
        assert!(
            e.to_string().contains("unknown variable '{{amount}}'"),
            "{e}"
        );
        let nosig = "templates:\n  a:\n    zh: \"您好\"\n";
        assert!(TemplateSet::load(nosig, &[])
            .unwrap_err()
            .to_string()
            .contains("【签名】"));
        let long = format!(
            "max_segments: 1\ntemplates:\n  a:\n    en: \"{}\"\n",
            "x".repeat(200)
        );
        assert!(TemplateSet::load(&long, &[])
            .unwrap_err()
            .to_string()
            .contains("2 SMS segments"));
        assert!(TemplateSet::load("templates: [", &[]).is_err());
        let e = TemplateSet::load(YAML, &["name", "amount"])
            .unwrap()
            .render("coupon", "+86138", &vars()[..1])
            .unwrap_err();
        assert!(matches!(e, TemplateError::MissingValue { .. }));
    }
}
