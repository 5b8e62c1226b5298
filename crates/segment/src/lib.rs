//! Segmentation rules: parse, type-check and compile CEL rules over customer
//! attributes, then classify customers. Sans-IO: `today` is an input, rows come
//! from whoever calls.
//!
//! A rule file is YAML:
//!
//! ```yaml
//! segments:              # first match wins, unless `priority` says otherwise
//!   - name: high_value
//!     description: 高价值客户
//!     rule: purchase_freq > 5 && avg_order > 1000
//!   - name: churn_risk
//!     rule: last_interaction > 90
//! default: regular        # optional: the segment of customers no rule matches
//! ```
//!
//! Expressions are parsed by `cel-parser` (the parser of the `cel-interpreter`
//! crate) and then compiled here to a typed tree over attribute slots. Why not
//! evaluate with `cel-interpreter` itself: it resolves every identifier by
//! name through a context map built per customer, which costs about a
//! microsecond per customer; the compiled form indexes a slot array and is
//! checked against the attribute schema once, so a rule that names an unknown
//! attribute or compares a number with text fails at load time, with its
//! position, instead of silently never matching. `cel-interpreter` stays as the
//! baseline of `waihu bench segments` (crate `waihu-bench`) and, as a
//! dev-dependency, the oracle of the property tests.
#[cfg(test)]
mod cel_oracle;
mod compile;
mod eval;
mod file;

pub use compile::CompileError;
pub use eval::{Row, Value};
pub use file::{RuleError, RuleSet, Segment};

#[cfg(test)]
mod tests;
