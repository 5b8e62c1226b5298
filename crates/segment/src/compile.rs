//! CEL syntax tree (from `cel-parser`) → typed tree over attribute slots,
//! checked against the attribute schema.
use std::collections::BTreeMap;

use cel_parser::ast::{CallExpr, Expr, IdedExpr};
use cel_parser::reference::Val;
use chrono::{Datelike, NaiveDate};
use waihu_core::{AttrKind, AttrSchema};

use crate::eval::{ArithOp, CmpOp, Date, Num, Pred, Text, TextFn};

/// Why a rule does not compile. `ident` names the attribute or function the
/// error is about, so the caller can point at it in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    pub message: String,
    pub ident: Option<String>,
}

impl CompileError {
    fn new(message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
            ident: None,
        }
    }
    fn at(ident: &str, message: impl Into<String>) -> Self {
        CompileError {
            message: message.into(),
            ident: Some(ident.to_string()),
        }
    }
}

/// Attribute name → slot, shared by all rules of one rule set.
#[derive(Debug, Default, Clone)]
pub(crate) struct Slots {
    pub by_name: BTreeMap<String, (u16, AttrKind)>,
    pub names: Vec<String>,
}

impl Slots {
    fn slot(&mut self, name: &str, kind: AttrKind) -> u16 {
        if let Some((s, _)) = self.by_name.get(name) {
            return *s;
        }
        let s = self.names.len() as u16;
        self.names.push(name.to_string());
        self.by_name.insert(name.to_string(), (s, kind));
        s
    }
}

enum Typed {
    Num(Num),
    Date(Date),
    Text(Text),
    Bool(Pred),
}

impl Typed {
    fn kind(&self) -> &'static str {
        match self {
            Typed::Num(_) => "number",
            Typed::Date(_) => "date",
            Typed::Text(_) => "text",
            Typed::Bool(_) => "bool",
        }
    }
}

pub(crate) struct Compiler<'a> {
    pub schema: &'a AttrSchema,
    pub slots: &'a mut Slots,
}

/// Namespaces accepted in front of an attribute name: `customer.avg_order`.
const NAMESPACES: [&str; 2] = ["customer", "attrs"];

impl Compiler<'_> {
    pub fn rule(&mut self, e: &IdedExpr) -> Result<Pred, CompileError> {
        match self.expr(e)? {
            Typed::Bool(p) => Ok(p),
            other => Err(CompileError::new(format!(
                "a rule must be true or false, this one is a {}; compare it, e.g. `x > 5`",
                other.kind()
            ))),
        }
    }

    fn attr(&mut self, name: &str) -> Result<Typed, CompileError> {
        let Some(kind) = self.schema.get(name).copied() else {
            let known: Vec<&str> = self.schema.keys().map(String::as_str).collect();
            return Err(CompileError::at(
                name,
                format!(
                    "unknown attribute `{name}` (known: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                ),
            ));
        };
        let s = self.slots.slot(name, kind);
        Ok(match kind {
            AttrKind::Number => Typed::Num(Num::Slot(s)),
            AttrKind::Date => Typed::Date(Date::Slot(s)),
            AttrKind::Text => Typed::Text(Text::Slot(s)),
            AttrKind::Bool => Typed::Bool(Pred::Slot(s)),
        })
    }

    fn expr(&mut self, e: &IdedExpr) -> Result<Typed, CompileError> {
        match &e.expr {
            Expr::Literal(v) => literal(v),
            Expr::Ident(name) => self.attr(name),
            Expr::Select(sel) => {
                let ns_ok = matches!(&sel.operand.expr, Expr::Ident(ns) if NAMESPACES.contains(&ns.as_str()));
                if !ns_ok {
                    return Err(CompileError::at(
                        &sel.field,
                        "attributes are flat: write `x` or `customer.x`",
                    ));
                }
                let t = self.attr(&sel.field)?;
                if sel.test {
                    let s = self.slots.by_name[&sel.field].0;
                    return Ok(Typed::Bool(Pred::Has(s)));
                }
                Ok(t)
            }
            Expr::Call(call) => self.call(call),
            Expr::List(_) => Err(CompileError::new(
                "a list is only allowed on the right of `in`",
            )),
            Expr::Map(_) | Expr::Struct(_) => Err(CompileError::new(
                "maps and messages are not supported in rules",
            )),
            Expr::Comprehension(_) => Err(CompileError::new(
                "macros (all, exists, map, filter) are not supported in rules",
            )),
            Expr::Unspecified => Err(CompileError::new("empty expression")),
        }
    }

    fn pred(&mut self, e: &IdedExpr, what: &str) -> Result<Pred, CompileError> {
        match self.expr(e)? {
            Typed::Bool(p) => Ok(p),
            other => Err(CompileError::new(format!(
                "{what} needs true/false, got a {}",
                other.kind()
            ))),
        }
    }

    fn num(&mut self, e: &IdedExpr, what: &str) -> Result<Num, CompileError> {
        match self.expr(e)? {
            Typed::Num(n) => Ok(n),
            Typed::Date(_) => Err(CompileError::new(format!(
                "{what} needs a number, got a date; use days_since(x) for the age of a date"
            ))),
            other => Err(CompileError::new(format!(
                "{what} needs a number, got a {}",
                other.kind()
            ))),
        }
    }

    fn text(&mut self, e: &IdedExpr, what: &str) -> Result<Text, CompileError> {
        match self.expr(e)? {
            Typed::Text(t) => Ok(t),
            other => Err(CompileError::new(format!(
                "{what} needs text, got a {}",
                other.kind()
            ))),
        }
    }

    fn call(&mut self, c: &CallExpr) -> Result<Typed, CompileError> {
        use cel_parser::ast::operators as op;
        let f = c.func_name.as_str();
        let args = &c.args;
        let arity = |n: usize| -> Result<(), CompileError> {
            let got = args.len() + usize::from(c.target.is_some());
            if got == n {
                Ok(())
            } else {
                Err(CompileError::at(
                    f,
                    format!("`{f}` takes {n} argument(s), got {got}"),
                ))
            }
        };
        match f {
            op::LOGICAL_AND | op::LOGICAL_OR => {
                arity(2)?;
                let a = self.pred(&args[0], f.trim_matches('_'))?;
                let b = self.pred(&args[1], f.trim_matches('_'))?;
                Ok(Typed::Bool(if f == op::LOGICAL_AND {
                    Pred::And(Box::new(a), Box::new(b))
                } else {
                    Pred::Or(Box::new(a), Box::new(b))
                }))
            }
            op::LOGICAL_NOT => {
                arity(1)?;
                Ok(Typed::Bool(Pred::Not(Box::new(self.pred(&args[0], "`!`")?))))
            }
            op::NOT_STRICTLY_FALSE => {
                arity(1)?;
                self.expr(&args[0])
            }
            op::CONDITIONAL => {
                arity(3)?;
                let cond = self.pred(&args[0], "the condition of `?:`")?;
                let t = self.pred(&args[1], "`?:` in a rule")?;
                let e = self.pred(&args[2], "`?:` in a rule")?;
                Ok(Typed::Bool(Pred::Cond(Box::new(cond), Box::new(t), Box::new(e))))
            }
            op::EQUALS | op::NOT_EQUALS | op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
                arity(2)?;
                let cmp = match f {
                    op::EQUALS => CmpOp::Eq,
                    op::NOT_EQUALS => CmpOp::Ne,
                    op::LESS => CmpOp::Lt,
                    op::LESS_EQUALS => CmpOp::Le,
                    op::GREATER => CmpOp::Gt,
                    _ => CmpOp::Ge,
                };
                let a = self.expr(&args[0])?;
                let b = self.expr(&args[1])?;
                self.compare(cmp, a, b)
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
                arity(2)?;
                let ar = match f {
                    op::ADD => ArithOp::Add,
                    op::SUBSTRACT => ArithOp::Sub,
                    op::MULTIPLY => ArithOp::Mul,
                    op::DIVIDE => ArithOp::Div,
                    _ => ArithOp::Rem,
                };
                let sym = f.trim_matches('_');
                let a = self.num(&args[0], &format!("`{sym}`"))?;
                let b = self.num(&args[1], &format!("`{sym}`"))?;
                Ok(Typed::Num(fold(Num::Arith(ar, Box::new(a), Box::new(b)))))
            }
            op::NEGATE => {
                arity(1)?;
                let n = self.num(&args[0], "`-`")?;
                Ok(Typed::Num(match n {
                    Num::Const(c) => Num::Const(-c),
                    n => Num::Neg(Box::new(n)),
                }))
            }
            op::IN => {
                arity(2)?;
                let Expr::List(list) = &args[1].expr else {
                    return Err(CompileError::new("`in` needs a list literal on its right, e.g. x in [\"金卡\", \"银卡\"]"));
                };
                match self.expr(&args[0])? {
                    Typed::Num(n) => {
                        let vals = list
                            .elements
                            .iter()
                            .map(|e| match &e.expr {
                                Expr::Literal(v) => match literal(v)? {
                                    Typed::Num(Num::Const(c)) => Ok(c),
                                    other => Err(CompileError::new(format!("list for a number holds a {}", other.kind()))),
                                },
                                _ => Err(CompileError::new("`in` lists hold literals only")),
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(Typed::Bool(Pred::NumIn(n, vals.into())))
                    }
                    Typed::Text(t) => {
                        let vals = list
                            .elements
                            .iter()
                            .map(|e| match &e.expr {
                                Expr::Literal(Val::String(s)) => Ok(s.as_str().into()),
                                Expr::Literal(_) => Err(CompileError::new("list for a text holds a non-text literal")),
                                _ => Err(CompileError::new("`in` lists hold literals only")),
                            })
                            .collect::<Result<Vec<Box<str>>, _>>()?;
                        Ok(Typed::Bool(Pred::TextIn(t, vals.into())))
                    }
                    other => Err(CompileError::new(format!("`in` works on numbers and text, not {}", other.kind()))),
                }
            }
            "days_since" => {
                arity(1)?;
                match self.expr(&args[0])? {
                    Typed::Date(d) => Ok(Typed::Num(Num::DaysSince(Box::new(d)))),
                    other => Err(CompileError::at(f, format!("days_since() needs a date, got a {}", other.kind()))),
                }
            }
            "date" => {
                arity(1)?;
                match &args[0].expr {
                    Expr::Literal(Val::String(s)) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                        .map(|d| Typed::Date(Date::Const(d.num_days_from_ce())))
                        .map_err(|_| CompileError::at(f, format!("date(\"{s}\") is not a YYYY-MM-DD date"))),
                    _ => Err(CompileError::at(f, "date() takes a text literal such as date(\"2026-01-31\")")),
                }
            }
            "size" => {
                arity(1)?;
                let e = c.target.as_deref().unwrap_or(&args[0]);
                let t = self.text(e, "size()")?;
                Ok(Typed::Num(Num::Size(Box::new(t))))
            }
            "double" | "int" => {
                arity(1)?;
                Ok(Typed::Num(self.num(&args[0], &format!("{f}()"))?))
            }
            "contains" | "startsWith" | "endsWith" => {
                let Some(target) = c.target.as_deref() else {
                    return Err(CompileError::at(f, format!("write it as a method: x.{f}(\"...\")")));
                };
                arity(2)?;
                let a = self.text(target, &format!("{f}()"))?;
                let b = self.text(&args[0], &format!("{f}()"))?;
                let tf = match f {
                    "contains" => TextFn::Contains,
                    "startsWith" => TextFn::StartsWith,
                    _ => TextFn::EndsWith,
                };
                Ok(Typed::Bool(Pred::TextFn(tf, a, b)))
            }
            op::INDEX | op::OPT_INDEX | op::OPT_SELECT => Err(CompileError::new("indexing is not supported in rules")),
            other => Err(CompileError::at(
                other,
                format!(
                    "unknown function `{other}` (rules know: days_since, date, size, contains, startsWith, endsWith, double, int)"
                ),
            )),
        }
    }

    fn compare(&mut self, cmp: CmpOp, a: Typed, b: Typed) -> Result<Typed, CompileError> {
        Ok(Typed::Bool(match (a, b) {
            (Typed::Num(a), Typed::Num(b)) => Pred::Num(cmp, a, b),
            (Typed::Date(a), Typed::Date(b)) => Pred::Date(cmp, a, b),
            (Typed::Text(a), Typed::Text(b)) => Pred::Text(cmp, a, b),
            (Typed::Bool(a), Typed::Bool(b)) if matches!(cmp, CmpOp::Eq | CmpOp::Ne) => {
                Pred::Bool(cmp, Box::new(a), Box::new(b))
            }
            (Typed::Date(_), Typed::Num(_)) | (Typed::Num(_), Typed::Date(_)) => {
                return Err(CompileError::new(
                    "cannot compare a date with a number; use days_since(x) < 30 or x > date(\"2026-01-01\")",
                ))
            }
            (a, b) => return Err(CompileError::new(format!("cannot compare a {} with a {}", a.kind(), b.kind()))),
        }))
    }
}

fn literal(v: &Val) -> Result<Typed, CompileError> {
    Ok(match v {
        Val::Int(i) => Typed::Num(Num::Const(*i as f64)),
        Val::UInt(u) => Typed::Num(Num::Const(*u as f64)),
        Val::Double(d) => Typed::Num(Num::Const(*d)),
        Val::String(s) => Typed::Text(Text::Const(s.as_str().into())),
        Val::Boolean(b) => Typed::Bool(Pred::Const(*b)),
        Val::Null => {
            return Err(CompileError::new(
                "null is not a value in rules; test presence with has(customer.x)",
            ))
        }
        Val::Bytes(_) => return Err(CompileError::new("bytes are not supported in rules")),
    })
}

/// Fold arithmetic over constants (`1000 * 10` → `10000`).
fn fold(n: Num) -> Num {
    if let Num::Arith(op, a, b) = &n {
        if let (Num::Const(x), Num::Const(y)) = (&**a, &**b) {
            let v = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div => x / y,
                ArithOp::Rem if *y != 0.0 => x % y,
                _ => return n,
            };
            return Num::Const(v);
        }
    }
    n
}
