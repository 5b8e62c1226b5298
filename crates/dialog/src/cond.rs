//! `when:` conditions over call variables: `order.amount >= 1000 && segment == "vip"`.
//!
//! Grammar: `or := and ("||" and)*`, `and := not ("&&" not)*`,
//! `not := "!" not | cmp`, `cmp := atom (("=="|"!="|"<"|"<="|">"|">=") atom)?`,
//! `atom := "(" or ")" | number | 'text' | "text" | true | false | variable`.
//! A bare variable is true when set, non-empty and not `false`/`0`/`no`/`否`.
//! Comparisons are numeric when both sides are numbers, textual otherwise
//! (so RFC 3339 dates compare correctly as text).

#[derive(Debug, Clone, PartialEq)]
pub enum Expr<V> {
    Var(V),
    Num(f64),
    Text(String),
    Bool(bool),
    Not(Box<Expr<V>>),
    And(Box<Expr<V>>, Box<Expr<V>>),
    Or(Box<Expr<V>>, Box<Expr<V>>),
    Cmp(Op, Box<Expr<V>>, Box<Expr<V>>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CondError {
    /// Character offset in the condition text.
    pub offset: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Text(String),
    Op(Op),
    And,
    Or,
    Not,
    LParen,
    RParen,
}

const MAX_DEPTH: usize = 32;

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, CondError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two = |s: &str| {
            chars
                .get(i..i + 2)
                .is_some_and(|w| w.iter().copied().eq(s.chars()))
        };
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if two("&&") {
            i += 2;
            Tok::And
        } else if two("||") {
            i += 2;
            Tok::Or
        } else if two("==") {
            i += 2;
            Tok::Op(Op::Eq)
        } else if two("!=") {
            i += 2;
            Tok::Op(Op::Ne)
        } else if two("<=") {
            i += 2;
            Tok::Op(Op::Le)
        } else if two(">=") {
            i += 2;
            Tok::Op(Op::Ge)
        } else if c == '<' {
            i += 1;
            Tok::Op(Op::Lt)
        } else if c == '>' {
            i += 1;
            Tok::Op(Op::Gt)
        } else if c == '!' {
            i += 1;
            Tok::Not
        } else if c == '(' {
            i += 1;
            Tok::LParen
        } else if c == ')' {
            i += 1;
            Tok::RParen
        } else if c == '"' || c == '\'' {
            let end = chars[i + 1..]
                .iter()
                .position(|&d| d == c)
                .ok_or(CondError {
                    offset: start,
                    message: "text is never closed".into(),
                })?;
            let s: String = chars[i + 1..i + 1 + end].iter().collect();
            i += end + 2;
            Tok::Text(s)
        } else if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            Tok::Num(s.parse().map_err(|_| CondError {
                offset: start,
                message: format!("`{s}` is not a number"),
            })?)
        } else if c.is_alphanumeric() || c == '_' {
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let s: String = chars[start..i].iter().collect();
            match s.as_str() {
                "and" => Tok::And,
                "or" => Tok::Or,
                "not" => Tok::Not,
                _ => Tok::Ident(s),
            }
        } else {
            return Err(CondError {
                offset: start,
                message: format!("unexpected `{c}`"),
            });
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct P {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|(_, t)| t)
    }
    fn offset(&self) -> usize {
        self.toks.get(self.i).map(|(o, _)| *o).unwrap_or(self.end)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T, CondError> {
        Err(CondError {
            offset: self.offset(),
            message: message.into(),
        })
    }
    fn or(&mut self, depth: usize) -> Result<Expr<String>, CondError> {
        if depth > MAX_DEPTH {
            return self.err("condition nested too deeply");
        }
        let mut l = self.and(depth)?;
        while self.peek() == Some(&Tok::Or) {
            self.i += 1;
            let r = self.and(depth)?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self, depth: usize) -> Result<Expr<String>, CondError> {
        let mut l = self.not(depth)?;
        while self.peek() == Some(&Tok::And) {
            self.i += 1;
            let r = self.not(depth)?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn not(&mut self, depth: usize) -> Result<Expr<String>, CondError> {
        if self.peek() == Some(&Tok::Not) {
            if depth > MAX_DEPTH {
                return self.err("condition nested too deeply");
            }
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not(depth + 1)?)));
        }
        let l = self.atom(depth)?;
        if let Some(Tok::Op(op)) = self.peek() {
            let op = *op;
            self.i += 1;
            let r = self.atom(depth)?;
            return Ok(Expr::Cmp(op, Box::new(l), Box::new(r)));
        }
        Ok(l)
    }
    fn atom(&mut self, depth: usize) -> Result<Expr<String>, CondError> {
        let Some(t) = self.peek().cloned() else {
            return self.err("condition ends too early");
        };
        self.i += 1;
        Ok(match t {
            Tok::LParen => {
                let e = self.or(depth + 1)?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.err("expected `)`");
                }
                self.i += 1;
                e
            }
            Tok::Num(n) => Expr::Num(n),
            Tok::Text(s) => Expr::Text(s),
            Tok::Ident(s) if s == "true" => Expr::Bool(true),
            Tok::Ident(s) if s == "false" => Expr::Bool(false),
            Tok::Ident(s) => {
                if s.starts_with('.') || s.ends_with('.') || s.contains("..") {
                    self.i -= 1;
                    return self.err(format!("`{s}` is not a variable name"));
                }
                Expr::Var(s)
            }
            _ => {
                self.i -= 1;
                return self.err("expected a variable, number, text or `(`");
            }
        })
    }
}

/// Parse a condition; variables stay names.
pub fn parse(src: &str) -> Result<Expr<String>, CondError> {
    let toks = lex(src)?;
    let end = src.chars().count();
    let mut p = P { toks, i: 0, end };
    let e = p.or(0)?;
    if p.i < p.toks.len() {
        return p.err("unexpected text after the condition");
    }
    Ok(e)
}

impl<V> Expr<V> {
    /// Every variable the condition reads.
    pub fn vars(&self, out: &mut Vec<V>)
    where
        V: Clone,
    {
        match self {
            Expr::Var(v) => out.push(v.clone()),
            Expr::Num(_) | Expr::Text(_) | Expr::Bool(_) => {}
            Expr::Not(e) => e.vars(out),
            Expr::And(a, b) | Expr::Or(a, b) | Expr::Cmp(_, a, b) => {
                a.vars(out);
                b.vars(out);
            }
        }
    }

    pub fn map<W>(self, f: &mut impl FnMut(V) -> W) -> Expr<W> {
        match self {
            Expr::Var(v) => Expr::Var(f(v)),
            Expr::Num(n) => Expr::Num(n),
            Expr::Text(s) => Expr::Text(s),
            Expr::Bool(b) => Expr::Bool(b),
            Expr::Not(e) => Expr::Not(Box::new(e.map(f))),
            Expr::And(a, b) => Expr::And(Box::new(a.map(f)), Box::new(b.map(f))),
            Expr::Or(a, b) => Expr::Or(Box::new(a.map(f)), Box::new(b.map(f))),
            Expr::Cmp(op, a, b) => Expr::Cmp(op, Box::new(a.map(f)), Box::new(b.map(f))),
        }
    }
}

/// A variable's value as conditions see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Val {
    pub text: String,
    pub num: Option<f64>,
}

impl Val {
    pub fn new(text: impl Into<String>) -> Val {
        let text = text.into();
        let num = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
        Val { text, num }
    }
}

enum Ev<'a> {
    Text(&'a str, Option<f64>),
    Bool(bool),
}

fn truthy(s: &str) -> bool {
    !matches!(s.trim(), "" | "false" | "0" | "no" | "否" | "null")
}

impl Expr<usize> {
    pub fn eval<'a>(&'a self, get: &impl Fn(usize) -> Option<&'a Val>) -> bool {
        match self.value(get) {
            Ev::Bool(b) => b,
            Ev::Text(s, _) => truthy(s),
        }
    }

    fn value<'a>(&'a self, get: &impl Fn(usize) -> Option<&'a Val>) -> Ev<'a> {
        match self {
            Expr::Var(slot) => match get(*slot) {
                Some(v) => Ev::Text(&v.text, v.num),
                None => Ev::Text("", None),
            },
            Expr::Num(n) => Ev::Text("", Some(*n)),
            Expr::Text(s) => Ev::Text(s, None),
            Expr::Bool(b) => Ev::Bool(*b),
            Expr::Not(e) => Ev::Bool(!e.eval(get)),
            Expr::And(a, b) => Ev::Bool(a.eval(get) && b.eval(get)),
            Expr::Or(a, b) => Ev::Bool(a.eval(get) || b.eval(get)),
            Expr::Cmp(op, a, b) => {
                let (a, b) = (a.value(get), b.value(get));
                let ord = match (&a, &b) {
                    (Ev::Text(_, Some(x)), Ev::Text(_, Some(y))) => x.partial_cmp(y),
                    (Ev::Text(x, None), Ev::Text(y, _)) | (Ev::Text(x, _), Ev::Text(y, None)) => {
                        Some(x.cmp(y))
                    }
                    (Ev::Bool(x), Ev::Bool(y)) => Some(x.cmp(y)),
                    (Ev::Bool(x), Ev::Text(s, _)) => Some(x.cmp(&truthy(s))),
                    (Ev::Text(s, _), Ev::Bool(y)) => Some(truthy(s).cmp(y)),
                };
                let Some(ord) = ord else {
                    return Ev::Bool(false);
                };
                use std::cmp::Ordering::*;
                Ev::Bool(match op {
                    Op::Eq => ord == Equal,
                    Op::Ne => ord != Equal,
                    Op::Lt => ord == Less,
                    Op::Le => ord != Greater,
                    Op::Gt => ord == Greater,
                    Op::Ge => ord != Less,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str, vars: &[(&str, &str)]) -> bool {
        let e = parse(src).unwrap();
        let names: Vec<&str> = vars.iter().map(|(n, _)| *n).collect();
        let vals: Vec<Val> = vars.iter().map(|(_, v)| Val::new(*v)).collect();
        let e = e.map(&mut |n: String| names.iter().position(|x| *x == n).unwrap_or(usize::MAX));
        e.eval(&|s| vals.get(s))
    }

    #[test]
    fn evaluates_comparisons_and_logic() {
        let v = [
            ("order.amount", "1299.5"),
            ("segment", "vip"),
            ("paid", "否"),
        ];
        assert!(check("order.amount >= 1000 && segment == \"vip\"", &v));
        assert!(!check("order.amount < 1000 || segment != 'vip'", &v));
        assert!(check("!paid", &v));
        assert!(check("not (missing) and segment", &v));
        assert!(check("order.amount > 99", &v)); // numeric, not textual
        assert!(check("'2026-11-02' < '2026-11-10'", &v));
    }

    #[test]
    fn errors_carry_offsets() {
        assert_eq!(parse("a == ").unwrap_err().offset, 5);
        assert_eq!(parse("a === b").unwrap_err().offset, 4);
        assert_eq!(parse("(a").unwrap_err().message, "expected `)`");
        assert!(parse("'abc").is_err());
        assert!(parse(&"(".repeat(1000)).is_err());
        assert!(parse(&"!".repeat(1000)).is_err());
    }
}
