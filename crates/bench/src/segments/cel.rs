//! The same rules evaluated by `cel-interpreter`, the reference CEL
//! implementation in Rust: the baseline of `waihu bench segments` (the
//! property tests of `waihu-segment` use the same mapping as their oracle).
//! Numbers are passed as doubles, dates as the number of days since 0001-01-01
//! (CEL has no date type).
use cel_interpreter::{Context, Program, Value as CelValue};
use chrono::Datelike;
use waihu_core::{AttrValue, Attrs};

pub struct CelBaseline {
    rules: Vec<(String, Program)>,
    default: Option<String>,
}

impl CelBaseline {
    /// `rules` in priority order: (segment name, CEL source).
    pub fn new(rules: &[(String, String)], default: Option<String>) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|(n, src)| {
                Program::compile(src)
                    .map(|p| (n.clone(), p))
                    .map_err(|e| format!("{n}: {e}"))
            })
            .collect::<Result<_, _>>()?;
        Ok(CelBaseline { rules, default })
    }

    /// The first rule (in priority order) that evaluates to `true`, else the default.
    pub fn classify(&self, attrs: &Attrs) -> Option<&str> {
        let ctx = context(attrs);
        for (name, p) in &self.rules {
            if let Ok(CelValue::Bool(true)) = p.execute(&ctx) {
                return Some(name);
            }
        }
        self.default.as_deref()
    }
}

fn context(attrs: &Attrs) -> Context<'static> {
    let mut ctx = Context::default();
    for (k, v) in attrs {
        let v = match v {
            AttrValue::Number(n) => CelValue::Float(*n),
            AttrValue::Date(d) => CelValue::Int(i64::from(d.num_days_from_ce())),
            AttrValue::Text(t) => CelValue::String(t.clone().into()),
            AttrValue::Bool(b) => CelValue::Bool(*b),
        };
        ctx.add_variable_from_value(k.clone(), v);
    }
    ctx
}
