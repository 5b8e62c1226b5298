//! Prompt templates: text with `{{variable}}` holes, parsed once at load time
//! into literal and slot parts so rendering is a few appends.

/// A parsed template whose variables are still names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawPart {
    Lit(String),
    Var(String),
}

/// A template error: `offset` is the character index of the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
}

fn valid_var(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('.')
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '.')
}

/// Split `src` into literal text and `{{name}}` references.
pub fn parse(src: &str) -> Result<Vec<RawPart>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = src;
    let mut consumed_chars = 0usize;
    while let Some(open) = rest.find("{{") {
        let lit = &rest[..open];
        if let Some(bad) = lit.find("}}") {
            return Err(TemplateError {
                offset: consumed_chars + lit[..bad].chars().count(),
                message: "`}}` without a matching `{{`".into(),
            });
        }
        if !lit.is_empty() {
            parts.push(RawPart::Lit(lit.to_string()));
        }
        let open_offset = consumed_chars + lit.chars().count();
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Err(TemplateError {
                offset: open_offset,
                message: "`{{` is never closed with `}}`".into(),
            });
        };
        let name = after[..close].trim();
        if !valid_var(name) {
            return Err(TemplateError {
                offset: open_offset,
                message: format!(
                    "`{{{{{}}}}}` is not a variable name (letters, digits, `_` and `.` between parts)",
                    &after[..close]
                ),
            });
        }
        parts.push(RawPart::Var(name.to_string()));
        consumed_chars = open_offset + 2 + after[..close].chars().count() + 2;
        rest = &after[close + 2..];
    }
    if let Some(bad) = rest.find("}}") {
        return Err(TemplateError {
            offset: consumed_chars + rest[..bad].chars().count(),
            message: "`}}` without a matching `{{`".into(),
        });
    }
    if !rest.is_empty() {
        parts.push(RawPart::Lit(rest.to_string()));
    }
    Ok(parts)
}

/// A template whose variables are slots of the interpreter's variable table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
    /// Literal length, to size the output once.
    lit_len: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(usize),
}

impl Template {
    pub fn from_raw(raw: &[RawPart], mut slot: impl FnMut(&str) -> usize) -> Template {
        let mut lit_len = 0;
        let parts = raw
            .iter()
            .map(|p| match p {
                RawPart::Lit(s) => {
                    lit_len += s.len();
                    Part::Lit(s.clone())
                }
                RawPart::Var(v) => Part::Var(slot(v)),
            })
            .collect();
        Template { parts, lit_len }
    }

    /// Render with `value(slot)`; a missing value renders as nothing.
    pub fn render<'a>(&self, value: impl Fn(usize) -> Option<&'a str>) -> String {
        let mut out = String::with_capacity(self.lit_len + 16);
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(slot) => {
                    if let Some(v) = value(*slot) {
                        out.push_str(v)
                    }
                }
            }
        }
        out
    }

    pub fn slots(&self) -> impl Iterator<Item = usize> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(s) => Some(*s),
            Part::Lit(_) => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_holes_and_nested_names() {
        let p = parse("您好{{name}}，订单{{ order.amount }}元").unwrap();
        assert_eq!(
            p,
            vec![
                RawPart::Lit("您好".into()),
                RawPart::Var("name".into()),
                RawPart::Lit("，订单".into()),
                RawPart::Var("order.amount".into()),
                RawPart::Lit("元".into()),
            ]
        );
        let names = ["name", "order.amount"];
        let t = Template::from_raw(&p, |v| names.iter().position(|n| *n == v).unwrap_or(99));
        let vals = ["张先生", "299"];
        assert_eq!(t.render(|s| vals.get(s).copied()), "您好张先生，订单299元");
    }

    #[test]
    fn reports_broken_templates_with_offsets() {
        let e = parse("您好{{name").unwrap_err();
        assert_eq!(e.offset, 2);
        assert!(e.message.contains("never closed"));
        let e = parse("a}}b").unwrap_err();
        assert_eq!(e.offset, 1);
        let e = parse("x{{ }}").unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(parse("{{a..b}}").is_err());
        assert!(parse("{{a b}}").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
