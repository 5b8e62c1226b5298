//! The compiled form of a rule and its evaluation. Every expression is typed
//! at compile time, so evaluation never meets a type error; the only runtime
//! "error" is a missing attribute, which follows CEL: `&&` and `||` absorb it
//! when the other side decides, otherwise the rule does not match.
use chrono::{Datelike, NaiveDate};

/// One attribute value in evaluation form. Dates are days since 0001-01-01.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(f64),
    Date(i32),
    Text(Box<str>),
    Bool(bool),
}

impl Value {
    pub fn from_attr(v: &waihu_core::AttrValue) -> Value {
        use waihu_core::AttrValue as A;
        match v {
            A::Number(n) => Value::Num(*n),
            A::Date(d) => Value::Date(d.num_days_from_ce()),
            A::Text(t) => Value::Text(t.as_str().into()),
            A::Bool(b) => Value::Bool(*b),
        }
    }
}

/// A customer's attributes laid out in the slots of one [`crate::RuleSet`]
/// (only the attributes its rules use). Build with [`crate::RuleSet::row`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row(pub Vec<Option<Value>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    fn test<T: PartialOrd + ?Sized>(self, a: &T, b: &T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextFn {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Num {
    Const(f64),
    Slot(u16),
    /// Days from a date to `today` (positive for the past).
    DaysSince(Box<Date>),
    /// Characters in a text.
    Size(Box<Text>),
    Neg(Box<Num>),
    Arith(ArithOp, Box<Num>, Box<Num>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Date {
    Const(i32),
    Slot(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Text {
    Const(Box<str>),
    Slot(u16),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pred {
    Const(bool),
    Slot(u16),
    Has(u16),
    Not(Box<Pred>),
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
    Cond(Box<Pred>, Box<Pred>, Box<Pred>),
    Num(CmpOp, Num, Num),
    Date(CmpOp, Date, Date),
    Text(CmpOp, Text, Text),
    Bool(CmpOp, Box<Pred>, Box<Pred>),
    NumIn(Num, Box<[f64]>),
    TextIn(Text, Box<[Box<str>]>),
    TextFn(TextFn, Text, Text),
}

/// What evaluation reads besides the row.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Env {
    pub today: i32,
}

impl Env {
    pub fn new(today: NaiveDate) -> Env {
        Env {
            today: today.num_days_from_ce(),
        }
    }
}

impl Num {
    pub(crate) fn eval(&self, row: &Row, env: Env) -> Option<f64> {
        Some(match self {
            Num::Const(c) => *c,
            Num::Slot(s) => match row.0.get(*s as usize)? {
                Some(Value::Num(n)) => *n,
                _ => return None,
            },
            Num::DaysSince(d) => f64::from(env.today - d.eval(row)?),
            Num::Size(t) => t.eval(row)?.chars().count() as f64,
            Num::Neg(n) => -n.eval(row, env)?,
            Num::Arith(op, a, b) => {
                let (a, b) = (a.eval(row, env)?, b.eval(row, env)?);
                match op {
                    ArithOp::Add => a + b,
                    ArithOp::Sub => a - b,
                    ArithOp::Mul => a * b,
                    // Numbers are doubles: division follows IEEE 754 as in CEL.
                    ArithOp::Div => a / b,
                    // `%` by zero is an error in CEL: no match.
                    ArithOp::Rem if b == 0.0 => return None,
                    ArithOp::Rem => a % b,
                }
            }
        })
    }
}

impl Date {
    fn eval(&self, row: &Row) -> Option<i32> {
        match self {
            Date::Const(d) => Some(*d),
            Date::Slot(s) => match row.0.get(*s as usize)? {
                Some(Value::Date(d)) => Some(*d),
                _ => None,
            },
        }
    }
}

impl Text {
    fn eval<'a>(&'a self, row: &'a Row) -> Option<&'a str> {
        match self {
            Text::Const(t) => Some(t),
            Text::Slot(s) => match row.0.get(*s as usize)? {
                Some(Value::Text(t)) => Some(t),
                _ => None,
            },
        }
    }
}

impl Pred {
    /// `None` when a needed attribute is missing and nothing absorbed it.
    pub(crate) fn eval(&self, row: &Row, env: Env) -> Option<bool> {
        match self {
            Pred::Const(b) => Some(*b),
            Pred::Slot(s) => match row.0.get(*s as usize)? {
                Some(Value::Bool(b)) => Some(*b),
                _ => None,
            },
            Pred::Has(s) => Some(matches!(row.0.get(*s as usize), Some(Some(_)))),
            Pred::Not(p) => p.eval(row, env).map(|b| !b),
            Pred::And(a, b) => match (a.eval(row, env), b.eval(row, env)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Pred::Or(a, b) => match (a.eval(row, env), b.eval(row, env)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Pred::Cond(c, t, f) => {
                if c.eval(row, env)? {
                    t.eval(row, env)
                } else {
                    f.eval(row, env)
                }
            }
            Pred::Num(op, a, b) => Some(op.test(&a.eval(row, env)?, &b.eval(row, env)?)),
            Pred::Date(op, a, b) => Some(op.test(&a.eval(row)?, &b.eval(row)?)),
            Pred::Text(op, a, b) => Some(op.test(a.eval(row)?, b.eval(row)?)),
            Pred::Bool(op, a, b) => Some(op.test(&a.eval(row, env)?, &b.eval(row, env)?)),
            Pred::NumIn(n, list) => {
                let n = n.eval(row, env)?;
                Some(list.contains(&n))
            }
            Pred::TextIn(t, list) => {
                let t = t.eval(row)?;
                Some(list.iter().any(|x| &**x == t))
            }
            Pred::TextFn(f, a, b) => {
                let (a, b) = (a.eval(row)?, b.eval(row)?);
                Some(match f {
                    TextFn::Contains => a.contains(b),
                    TextFn::StartsWith => a.starts_with(b),
                    TextFn::EndsWith => a.ends_with(b),
                })
            }
        }
    }
}
