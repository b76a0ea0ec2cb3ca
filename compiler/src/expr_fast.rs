//! A hand-written parser for the expression grammar in `grammar/expr.pest`, used first
//! because it is an order of magnitude faster than the generated one. It accepts a subset
//! of what the grammar accepts and builds exactly the tree (spans included) the grammar's
//! builder would; anything it does not accept (including every syntax error) goes to the
//! generated parser, which is the reference and reports errors. A property test compares
//! the two on random token sequences.

use crate::expr::{BinOp, Expr, ExprKind, Locator, UnOp, unescape};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Tok<'a> {
    Ident(&'a str),
    Num(&'a str),
    /// The text between the quotes, still escaped.
    Str(&'a str),
    Punct(&'static str),
}

struct Lexer;

impl Lexer {
    /// Tokens with their byte ranges; `None` on anything the fast path does not handle.
    fn run(src: &str) -> Option<Vec<(Tok<'_>, usize, usize)>> {
        let b = src.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let start = i;
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => {
                    i += 1;
                    continue;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                        i += 1;
                    }
                    out.push((Tok::Ident(&src[start..i]), start, i));
                }
                b'0'..=b'9' => {
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i + 1 < b.len() && b[i] == b'.' && b[i + 1].is_ascii_digit() {
                        i += 1;
                        while i < b.len() && b[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                    out.push((Tok::Num(&src[start..i]), start, i));
                }
                b'"' | b'\'' => {
                    i += 1;
                    loop {
                        match b.get(i) {
                            None => return None,
                            Some(b'\\') => i += 2,
                            Some(&q) if q == c => break,
                            Some(_) => i += 1,
                        }
                    }
                    if i >= b.len() {
                        return None;
                    }
                    out.push((Tok::Str(&src[start + 1..i]), start, i + 1));
                    i += 1;
                }
                _ => {
                    let two = src.get(i..i + 2).unwrap_or("");
                    let p: &'static str = match two {
                        "==" => "==",
                        "!=" => "!=",
                        "<=" => "<=",
                        ">=" => ">=",
                        _ => match c {
                            b'<' => "<",
                            b'>' => ">",
                            b'+' => "+",
                            b'-' => "-",
                            b'*' => "*",
                            b'/' => "/",
                            b'%' => "%",
                            b'(' => "(",
                            b')' => ")",
                            b'[' => "[",
                            b']' => "]",
                            b',' => ",",
                            b'.' => ".",
                            _ => return None,
                        },
                    };
                    i += p.len();
                    out.push((Tok::Punct(p), start, i));
                }
            }
        }
        Some(out)
    }
}

const KEYWORDS: [&str; 6] = ["and", "or", "not", "in", "true", "false"];

struct P<'a> {
    toks: Vec<(Tok<'a>, usize, usize)>,
    pos: usize,
    at: Locator<'a>,
}

/// A parsed rule: its tree, and where its text starts and ends (what the grammar's pair
/// would span).
type R = Option<(Expr, usize, usize)>;

impl<'a> P<'a> {
    fn peek(&self) -> Option<Tok<'a>> {
        self.toks.get(self.pos).map(|t| t.0)
    }
    fn punct(&mut self, p: &str) -> Option<(usize, usize)> {
        match self.toks.get(self.pos) {
            Some(&(Tok::Punct(q), s, e)) if q == p => {
                self.pos += 1;
                Some((s, e))
            }
            _ => None,
        }
    }
    fn word(&mut self, w: &str) -> Option<(usize, usize)> {
        match self.toks.get(self.pos) {
            Some(&(Tok::Ident(q), s, e)) if q == w => {
                self.pos += 1;
                Some((s, e))
            }
            _ => None,
        }
    }
    fn span(&self, lo: usize, hi: usize) -> crate::span::Span {
        self.at.span(lo, hi)
    }

    fn left_assoc(&mut self, next: fn(&mut Self) -> R, ops: &[(&str, BinOp)], words: bool) -> R {
        let (mut lhs, start, mut end) = next(self)?;
        loop {
            let op = ops.iter().find(|(t, _)| match self.peek() {
                Some(Tok::Punct(p)) => !words && p == *t,
                Some(Tok::Ident(w)) => words && w == *t,
                _ => false,
            });
            let Some(&(_, op)) = op else { break };
            self.pos += 1;
            let (rhs, _, e) = next(self)?;
            end = e;
            let span = lhs.span.to(rhs.span);
            lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
        }
        Some((lhs, start, end))
    }

    fn expr(&mut self) -> R {
        self.left_assoc(Self::and, &[("or", BinOp::Or)], true)
    }
    fn and(&mut self) -> R {
        self.left_assoc(Self::not, &[("and", BinOp::And)], true)
    }
    fn not(&mut self) -> R {
        if let Some((s, _)) = self.word("not") {
            let (operand, _, e) = self.not()?;
            return Some((Expr { kind: ExprKind::Unary(UnOp::Not, Box::new(operand)), span: self.span(s, e) }, s, e));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> R {
        let (lhs, s, e) = self.add()?;
        let op = match self.peek() {
            Some(Tok::Punct("==")) => BinOp::Eq,
            Some(Tok::Punct("!=")) => BinOp::Ne,
            Some(Tok::Punct("<=")) => BinOp::Le,
            Some(Tok::Punct(">=")) => BinOp::Ge,
            Some(Tok::Punct("<")) => BinOp::Lt,
            Some(Tok::Punct(">")) => BinOp::Gt,
            Some(Tok::Ident("in")) => BinOp::In,
            Some(Tok::Ident("not")) if matches!(self.toks.get(self.pos + 1), Some((Tok::Ident("in"), ..))) => {
                self.pos += 1;
                BinOp::NotIn
            }
            _ => return Some((lhs, s, e)),
        };
        self.pos += 1;
        let (rhs, _, e) = self.add()?;
        Some((Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span: self.span(s, e) }, s, e))
    }
    fn add(&mut self) -> R {
        self.left_assoc(Self::mul, &[("+", BinOp::Add), ("-", BinOp::Sub)], false)
    }
    fn mul(&mut self) -> R {
        self.left_assoc(Self::unary, &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)], false)
    }
    fn unary(&mut self) -> R {
        let mut negs = 0;
        let mut start = None;
        while let Some((s, _)) = self.punct("-") {
            start.get_or_insert(s);
            negs += 1;
        }
        let (mut e, s, end) = self.postfix()?;
        let start = start.unwrap_or(s);
        for _ in 0..negs {
            e = Expr { kind: ExprKind::Unary(UnOp::Neg, Box::new(e)), span: self.span(start, end) };
        }
        Some((e, start, end))
    }
    fn postfix(&mut self) -> R {
        let (mut e, s, mut end) = self.primary()?;
        while self.punct(".").is_some() {
            let Some(&(Tok::Ident(f), fs, fe)) = self.toks.get(self.pos) else { return None };
            if KEYWORDS.contains(&f) {
                return None;
            }
            self.pos += 1;
            let fspan = self.span(fs, fe);
            let span = e.span.to(fspan);
            e = Expr { kind: ExprKind::Field(Box::new(e), f.into(), fspan), span };
            end = fe;
        }
        Some((e, s, end))
    }
    fn list_items(&mut self, close: &str, trailing_comma: bool) -> Option<(Vec<Expr>, usize)> {
        let mut items = Vec::new();
        if let Some((_, e)) = self.punct(close) {
            return Some((items, e));
        }
        loop {
            items.push(self.expr()?.0);
            if let Some((_, e)) = self.punct(close) {
                return Some((items, e));
            }
            self.punct(",")?;
            if trailing_comma && let Some((_, e)) = self.punct(close) {
                return Some((items, e));
            }
        }
    }
    fn primary(&mut self) -> R {
        let &(tok, s, e) = self.toks.get(self.pos)?;
        self.pos += 1;
        let kind = match tok {
            Tok::Num(n) => match n.parse::<i64>() {
                Ok(i) if !n.contains('.') => ExprKind::Integer(i),
                _ => ExprKind::Number(n.parse::<f64>().unwrap_or(f64::INFINITY)),
            },
            Tok::Str(raw) => ExprKind::Text(unescape(raw)),
            Tok::Ident("true") => ExprKind::Bool(true),
            Tok::Ident("false") => ExprKind::Bool(false),
            Tok::Ident(w) if KEYWORDS.contains(&w) => return None,
            Tok::Ident(name) => {
                if self.punct("(").is_some() {
                    let (args, end) = self.list_items(")", false)?;
                    let call = ExprKind::Call(name.into(), self.span(s, e), args);
                    return Some((Expr { kind: call, span: self.span(s, end) }, s, end));
                }
                ExprKind::Var(name.into())
            }
            Tok::Punct("[") => {
                let (items, end) = self.list_items("]", true)?;
                return Some((Expr { kind: ExprKind::List(items), span: self.span(s, end) }, s, end));
            }
            Tok::Punct("(") => {
                let (inner, _, _) = self.expr()?;
                let (_, end) = self.punct(")")?;
                return Some((inner, s, end));
            }
            Tok::Punct(_) => return None,
        };
        Some((Expr { kind, span: self.span(s, e) }, s, e))
    }
}

/// The expression, or `None` when the reference parser must decide.
pub(crate) fn parse(src: &str, at: Locator) -> Option<Expr> {
    let toks = Lexer::run(src)?;
    let mut p = P { toks, pos: 0, at };
    let (e, _, _) = p.expr()?;
    (p.pos == p.toks.len()).then_some(e)
}
