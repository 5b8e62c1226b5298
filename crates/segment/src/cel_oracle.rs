//! The property tests' oracle: the same rules evaluated by `cel-interpreter`,
//! the reference CEL implementation in Rust. Numbers are passed as doubles,
//! dates as the number of days since 0001-01-01 (CEL has no date type), the
//! same mapping `waihu bench segments` uses for its baseline (crate
//! `waihu-bench`, which this test-only copy must not depend on).
use cel_interpreter::{Context, Program, Value as CelValue};
use chrono::Datelike;
use waihu_core::{AttrValue, Attrs};

pub struct CelOracle {
    rules: Vec<Program>,
}

impl CelOracle {
    /// `rules` in priority order: (segment name, CEL source).
    pub fn new(rules: &[(String, String)]) -> Result<Self, String> {
        let rules = rules
            .iter()
            .map(|(n, src)| Program::compile(src).map_err(|e| format!("{n}: {e}")))
            .collect::<Result<_, _>>()?;
        Ok(CelOracle { rules })
    }

    /// `Ok(b)` when rule `i` evaluated to a bool, `Err` on a CEL runtime
    /// error (such as a missing attribute).
    pub fn eval_rule(&self, i: usize, attrs: &Attrs) -> Result<bool, String> {
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
        match self.rules[i].execute(&ctx) {
            Ok(CelValue::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("not a bool: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}
