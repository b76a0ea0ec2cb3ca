//! Expressions and templates: their syntax tree and the pest parser for `grammar/expr.pest`.
//!
//! Parsing never fails: a syntax error becomes an [`ExprKind::Error`] node plus a diagnostic,
//! so one bad condition does not hide the other mistakes in a flow.

use crate::diagnostic::Diagnostic;
use crate::span::Span;
use pest::Parser as _;
use pest::iterators::Pair;

/// One parser for both grammars: the DSL embeds expressions, and sharing the `Rule` enum lets
/// both front ends build expression trees with the same code.
#[derive(pest_derive::Parser)]
#[grammar = "../grammar/expr.pest"]
#[grammar = "../grammar/flow.pest"]
pub(crate) struct BotcParser;

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Text(compact_str::CompactString),
    Integer(i64),
    Number(f64),
    Bool(bool),
    List(Vec<Expr>),
    /// Names are inline up to 24 bytes (`compact_str`): a large flow reads variables a
    /// hundred thousand times, and each read would otherwise be an allocation.
    Var(compact_str::CompactString),
    Field(Box<Expr>, compact_str::CompactString, Span),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(compact_str::CompactString, Span, Vec<Expr>),
    /// Stands in for text that did not parse; its diagnostic was already reported. Holds
    /// the names in that text (as `Var`s), so the variables it reads still count as read
    /// and are not also reported unused.
    Error(Vec<Expr>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    Not,
    Neg,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    NotIn,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Or => "or",
            BinOp::And => "and",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }

    /// Binding strength, higher binds tighter; used to print minimal parentheses.
    pub fn precedence(self) -> u8 {
        match self {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => 4,
            BinOp::In | BinOp::NotIn => 4,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
        }
    }
}

/// A text with `{{ expr }}` holes.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Part {
    Lit(compact_str::CompactString),
    Expr(Expr),
}

impl Template {
    /// Characters of literal text, the part whose length is known before run time.
    pub fn literal_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Lit(s) => s.chars().count(),
                Part::Expr(_) => 0,
            })
            .sum()
    }

    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.parts.iter().filter_map(|p| match p {
            Part::Expr(e) => Some(e),
            Part::Lit(_) => None,
        })
    }
}

/// Maps offsets inside a piece of source text to spans in its file. When the text is not
/// in the file as it is (a YAML block scalar, say), every span is the whole value.
#[derive(Clone, Copy, Debug)]
pub struct Locator<'a> {
    pub whole: Span,
    pub origin: LocOrigin<'a>,
}

#[derive(Clone, Copy, Debug)]
pub enum LocOrigin<'a> {
    Unknown,
    /// Verbatim from this byte.
    At(u32),
    /// Through a map of decoded byte → source byte, starting at an offset into it.
    Mapped(&'a [u32], usize),
}

impl<'a> Locator<'a> {
    pub fn new(whole: Span, origin: &'a crate::yaml::Origin) -> Locator<'a> {
        let origin = match origin {
            crate::yaml::Origin::Unknown => LocOrigin::Unknown,
            crate::yaml::Origin::At(b) => LocOrigin::At(*b),
            crate::yaml::Origin::Mapped(m) => LocOrigin::Mapped(m, 0),
        };
        Locator { whole, origin }
    }

    /// Verbatim text starting at byte `base` of the file.
    pub fn at(whole: Span, base: u32) -> Locator<'static> {
        Locator { whole, origin: LocOrigin::At(base) }
    }

    fn byte(&self, i: usize) -> Option<usize> {
        match self.origin {
            LocOrigin::Unknown => None,
            LocOrigin::At(b) => Some(b as usize + i),
            LocOrigin::Mapped(m, shift) => m.get(shift + i).or(m.last()).map(|&b| b as usize),
        }
    }

    pub fn span(&self, lo: usize, hi: usize) -> Span {
        match (self.byte(lo), self.byte(hi)) {
            (Some(a), Some(b)) => Span::new(self.whole.file, a, b),
            _ => self.whole,
        }
    }

    /// The locator of the text from byte `by` on (a template's hole).
    pub fn shifted(&self, by: usize, whole: Span) -> Locator<'a> {
        let origin = match self.origin {
            LocOrigin::Unknown => LocOrigin::Unknown,
            LocOrigin::At(b) => LocOrigin::At(b + by as u32),
            LocOrigin::Mapped(m, shift) => LocOrigin::Mapped(m, shift + by),
        };
        Locator { whole, origin }
    }
}

/// Words an expression reads as operators or values, never as a variable's name.
pub const EXPR_KEYWORDS: [&str; 6] = ["and", "or", "not", "in", "true", "false"];

/// Operators and brackets one expression may hold. The parser and the compiler's passes walk
/// an expression recursively, so this bounds how deep they go (a 6 KB sum once overflowed
/// the stack); no real condition or template comes near it.
pub const MAX_EXPR_PARTS: usize = 100;

/// A piece of expression text outside its string literals: a word (letters, digits and `_`,
/// starting with a letter or `_`) as its byte range, or any other byte.
enum Piece {
    Word(usize, usize),
    Byte(usize, u8),
}

/// The pieces of `src` outside string literals, in order: a lexer for text that may not
/// parse (the limit below, and the names of text that did not parse).
fn pieces(src: &str, mut f: impl FnMut(Piece)) {
    let bytes = src.as_bytes();
    let (mut i, mut quote) = (0, None::<u8>);
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'"' || b == b'\'' => quote = Some(b),
            None if b.is_ascii_alphabetic() || b == b'_' => {
                let start = i;
                while i + 1 < bytes.len() && (bytes[i + 1].is_ascii_alphanumeric() || bytes[i + 1] == b'_') {
                    i += 1;
                }
                f(Piece::Word(start, i + 1));
            }
            None => f(Piece::Byte(i, b)),
        }
        i += 1;
    }
}

/// An upper bound on an expression's tree depth, from its text alone (so it is known before
/// anything recursive runs): its operators, brackets and field accesses outside string
/// literals, each of which adds at most one level.
fn parts(src: &str) -> usize {
    let (mut n, mut last_comparison) = (0, None);
    pieces(src, |p| match p {
        Piece::Word(a, b) => n += usize::from(matches!(&src[a..b], "and" | "or" | "not" | "in")),
        Piece::Byte(_, b'(' | b'[' | b'.' | b'+' | b'-' | b'*' | b'/' | b'%') => n += 1,
        // A comparison (`<`, `<=`, `==`, `!=`) is one operator however many characters.
        Piece::Byte(i, b'<' | b'>' | b'=' | b'!') => {
            if last_comparison.is_none_or(|l: usize| l + 1 != i) {
                n += 1;
            }
            last_comparison = Some(i);
        }
        Piece::Byte(..) => {}
    });
    n
}

pub fn parse_expr(src: &str, at: Locator, diags: &mut Vec<Diagnostic>) -> Expr {
    let n = parts(src);
    if n > MAX_EXPR_PARTS {
        diags.push(
            Diagnostic::error("E0003", at.whole, "expression too complex")
                .label(format!("{n} operators and brackets; the limit is {MAX_EXPR_PARTS}"))
                .help("split it: compute parts into variables with `set`, or test many values at once with `in [...]`"),
        );
        return Expr { kind: ExprKind::Error(names(src, at)), span: at.whole };
    }
    if src.contains('\\') {
        check_escapes(src, at, diags);
    }
    if let Some(e) = crate::expr_fast::parse(src, at) {
        return e;
    }
    match BotcParser::parse(Rule::expr_main, src) {
        Ok(mut pairs) => {
            let main = pairs.next().expect("expr_main always has one pair");
            let expr = main.into_inner().next().expect("expr_main holds an expr");
            build(expr, at)
        }
        Err(e) => {
            let mut d = syntax_error(&e, at, "expression");
            d.help = typo_help(src);
            diags.push(d);
            Expr { kind: ExprKind::Error(names(src, at)), span: at.whole }
        }
    }
}

/// Splits a text into literal parts and `{{ expression }}` holes. This is lexing, not
/// grammar: a hole ends at the first `}}` outside a string literal.
pub fn parse_template(src: &str, at: Locator, diags: &mut Vec<Diagnostic>) -> Template {
    // At most a literal before each hole, the hole, and a literal after the last: sized
    // once instead of grown (a part is 80 bytes, and a large flow has many templates).
    let holes = src.matches("{{").count();
    let mut parts = Vec::with_capacity(2 * holes + 1);
    let mut rest = 0;
    while let Some(open) = src[rest..].find("{{").map(|i| rest + i) {
        if open > rest {
            parts.push(Part::Lit(src[rest..open].into()));
        }
        let inner = open + 2;
        let Some(close) = hole_end(&src[inner..]).map(|i| inner + i) else {
            diags.push(
                Diagnostic::error("E0303", at.span(open, open + 2), "invalid template")
                    .label("this `{{` is never closed")
                    .help("a template hole is `{{ expression }}`; close it with `}}`"),
            );
            parts.push(Part::Expr(Expr { kind: ExprKind::Error(Vec::new()), span: at.span(open, src.len()) }));
            return Template { parts, span: at.whole };
        };
        let body = &src[inner..close];
        let loc = at.shifted(inner, at.span(inner, close));
        if body.trim().is_empty() {
            diags.push(
                Diagnostic::error("E0303", at.span(open, close + 2), "invalid template")
                    .label("empty `{{ }}`")
                    .help("put an expression inside, e.g. `{{ user.name }}`"),
            );
            parts.push(Part::Expr(Expr { kind: ExprKind::Error(Vec::new()), span: loc.whole }));
        } else {
            parts.push(Part::Expr(parse_expr(body, loc, diags)));
        }
        rest = close + 2;
    }
    if rest < src.len() {
        parts.push(Part::Lit(src[rest..].into()));
    }
    Template { parts, span: at.whole }
}

/// Offset of the `}}` that closes a hole, skipping string literals inside it.
fn hole_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < b.len() {
        match (quote, b[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (None, c @ (b'"' | b'\'')) => quote = Some(c),
            (None, b'}') if b.get(i + 1) == Some(&b'}') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A hint for the operators people write from other languages.
fn typo_help(src: &str) -> Option<String> {
    let lone_eq = src.char_indices().any(|(i, c)| {
        c == '='
            && !matches!(src[..i].chars().last(), Some('=' | '<' | '>' | '!'))
            && !src[i + 1..].starts_with(['=', '>', '<'])
    });
    if src.contains("=>") {
        Some("did you mean `>=`?".into())
    } else if src.contains("=<") {
        Some("did you mean `<=`?".into())
    } else if src.contains("&&") || src.contains("||") {
        Some("write `and` and `or`".into())
    } else if lone_eq {
        Some("compare with `==` (`=` does not assign inside an expression)".into())
    } else {
        None
    }
}

/// The names (identifiers outside string literals, not keywords, functions or fields) in
/// text that did not parse, as `Var`s at their places.
fn names(src: &str, at: Locator) -> Vec<Expr> {
    let mut out = Vec::new();
    pieces(src, |p| {
        let Piece::Word(start, end) = p else { return };
        let word = &src[start..end];
        let field = src[..start].ends_with('.');
        let call = src[end..].trim_start().starts_with('(');
        let lower = word.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
        if lower && !field && !call && !EXPR_KEYWORDS.contains(&word) {
            out.push(Expr { kind: ExprKind::Var(word.into()), span: at.span(start, end) });
        }
    });
    out
}

fn syntax_error(e: &pest::error::Error<Rule>, at: Locator, what: &str) -> Diagnostic {
    let (lo, hi) = match e.location {
        pest::error::InputLocation::Pos(p) => (p, p),
        pest::error::InputLocation::Span((a, b)) => (a, b),
    };
    Diagnostic::error("E0303", at.span(lo, hi), format!("invalid {what}")).label(expected(e))
}

/// "expected a name, `goto`" from a pest error, in the words of the language.
pub(crate) fn expected(e: &pest::error::Error<Rule>) -> String {
    let names = match &e.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<String> = positives.iter().filter_map(|r| rule_name(*r)).collect();
            names.sort_unstable();
            names.dedup();
            names.join(", ")
        }
        pest::error::ErrorVariant::CustomError { message } => message.clone(),
    };
    if names.is_empty() { "unexpected text here".to_string() } else { format!("expected {names}") }
}

/// How a grammar rule is named in an error message; `None` hides plumbing rules.
fn rule_name(rule: Rule) -> Option<String> {
    let name = match rule {
        Rule::expr | Rule::or_expr | Rule::and_expr | Rule::not_expr | Rule::cmp_expr => "an expression",
        Rule::add_expr | Rule::mul_expr | Rule::unary | Rule::postfix | Rule::primary => "a value",
        Rule::cmp_op => "a comparison",
        Rule::add_op | Rule::mul_op => "an operator",
        Rule::number | Rule::integer => "a number",
        Rule::string | Rule::dstring => "a string",
        Rule::ident | Rule::name => "a name",
        Rule::call => "a function call",
        Rule::list => "a list",
        Rule::duration => "a duration",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_in | Rule::not_in => "`in`",
        Rule::EOI => "end of input",
        Rule::node_stmt | Rule::text_stmt | Rule::name_stmt | Rule::other_stmt => "a node statement",
        Rule::top_stmt | Rule::sub_stmt => "a declaration (`var`, `node`, `start`, ...)",
        other => {
            let debug = format!("{other:?}");
            return debug.strip_prefix("k_").map(|k| format!("`{k}`"));
        }
    };
    Some(name.to_string())
}

/// The escapes the language defines, in the DSL's strings and in expressions' text literals
/// alike (YAML's own quoting has YAML's escapes, decoded before botc reads the text).
pub(crate) const ESCAPES: &str = "`\\\"`, `\\'`, `\\\\`, `\\n`, `\\t` and `\\r`";

/// The first escape in a string's raw text that the language does not define: its byte
/// offset and length in `raw`.
pub(crate) fn bad_escape(raw: &str) -> Option<(usize, usize)> {
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some((_, '"' | '\'' | '\\' | 'n' | 't' | 'r')) => {}
                Some((_, other)) => return Some((i, 1 + other.len_utf8())),
                None => return Some((i, 1)),
            }
        }
    }
    None
}

/// E0303 for each undefined escape in the text literals of an expression's source.
fn check_escapes(src: &str, at: Locator, diags: &mut Vec<Diagnostic>) {
    let (mut i, mut quote) = (0, None::<char>);
    while let Some(c) = src[i..].chars().next() {
        match quote {
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(q) if c == q => quote = None,
            Some(_) if c == '\\' => {
                let len = 1 + src[i + 1..].chars().next().map_or(0, char::len_utf8);
                if bad_escape(&src[i..i + len]).is_some() {
                    diags.push(
                        Diagnostic::error("E0303", at.span(i, i + len), "invalid expression")
                            .label(format!("`{}` is not an escape", &src[i..i + len]))
                            .help(format!("the escapes are {ESCAPES}; write `\\\\` for a backslash")),
                    );
                }
                i += len;
                continue;
            }
            _ => {}
        }
        i += c.len_utf8();
    }
}

pub(crate) fn unescape(s: &str) -> compact_str::CompactString {
    // Inline up to 24 bytes: most texts in expressions are short and cost no allocation.
    let mut out = compact_str::CompactString::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

pub(crate) fn build(pair: Pair<'_, Rule>, at: Locator) -> Expr {
    // A pair can end in whitespace the grammar skipped after it; spans never include it.
    let start = pair.as_span().start();
    let span = at.span(start, start + pair.as_str().trim_end().len());
    let rule = pair.as_rule();
    let mut inner = pair.clone().into_inner();
    let kind = match rule {
        Rule::expr => return build(inner.next().expect("expr wraps one rule"), at),
        Rule::or_expr | Rule::and_expr | Rule::add_expr | Rule::mul_expr => {
            let mut lhs = build(inner.next().expect("binary rule has a first operand"), at);
            while let (Some(op), Some(rhs)) = (inner.next(), inner.next()) {
                let op = match op.as_str() {
                    "+" => BinOp::Add,
                    "-" => BinOp::Sub,
                    "*" => BinOp::Mul,
                    "/" => BinOp::Div,
                    "%" => BinOp::Rem,
                    "and" => BinOp::And,
                    _ => BinOp::Or,
                };
                let rhs = build(rhs, at);
                let span = lhs.span.to(rhs.span);
                lhs = Expr { kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)), span };
            }
            return lhs;
        }
        Rule::not_expr => {
            let first = inner.next().expect("not_expr has a child");
            if first.as_rule() == Rule::kw_not {
                let operand = build(inner.next().expect("`not` has an operand"), at);
                ExprKind::Unary(UnOp::Not, Box::new(operand))
            } else {
                return build(first, at);
            }
        }
        Rule::cmp_expr => {
            let lhs = build(inner.next().expect("cmp_expr has a left side"), at);
            let (Some(op), Some(rhs)) = (inner.next(), inner.next()) else { return lhs };
            let op = match op.as_str() {
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<=" => BinOp::Le,
                ">=" => BinOp::Ge,
                "<" => BinOp::Lt,
                ">" => BinOp::Gt,
                "in" => BinOp::In,
                _ => BinOp::NotIn,
            };
            ExprKind::Binary(op, Box::new(lhs), Box::new(build(rhs, at)))
        }
        Rule::unary => {
            let parts: Vec<_> = inner.collect();
            let (negs, operand) = parts.split_at(parts.len() - 1);
            let mut e = build(operand[0].clone(), at);
            for _ in negs {
                e = Expr { kind: ExprKind::Unary(UnOp::Neg, Box::new(e)), span };
            }
            return e;
        }
        Rule::postfix => {
            let mut e = build(inner.next().expect("postfix has a primary"), at);
            for field in inner {
                let fspan = at.span(field.as_span().start(), field.as_span().end());
                let span = e.span.to(fspan);
                e = Expr { kind: ExprKind::Field(Box::new(e), field.as_str().into(), fspan), span };
            }
            return e;
        }
        Rule::primary => return build(inner.next().expect("primary has a child"), at),
        Rule::number => {
            let s = pair.as_str();
            match s.parse::<i64>() {
                Ok(i) if !s.contains('.') => ExprKind::Integer(i),
                _ => ExprKind::Number(s.parse::<f64>().unwrap_or(f64::INFINITY)),
            }
        }
        Rule::string => {
            let raw = inner.next().map_or("", |p| p.as_str());
            ExprKind::Text(unescape(raw))
        }
        Rule::kw_true => ExprKind::Bool(true),
        Rule::kw_false => ExprKind::Bool(false),
        Rule::list => ExprKind::List(inner.map(|p| build(p, at)).collect()),
        Rule::call => {
            let name = inner.next().expect("call has a name");
            let nspan = at.span(name.as_span().start(), name.as_span().end());
            ExprKind::Call(name.as_str().into(), nspan, inner.map(|p| build(p, at)).collect())
        }
        Rule::ident => ExprKind::Var(pair.as_str().into()),
        _ => ExprKind::Error(Vec::new()),
    };
    Expr { kind, span }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::FileId;

    fn loc(n: usize) -> Locator<'static> {
        Locator::at(Span::new(FileId(0), 0, n), 0)
    }

    fn show(e: &Expr) -> String {
        crate::print::expr(e)
    }

    #[test]
    fn precedence_and_associativity() {
        let mut d = vec![];
        let cases = [
            ("a + b * c", "a + b * c"),
            ("(a + b) * c", "(a + b) * c"),
            ("a - (b - c)", "a - (b - c)"),
            ("not a and b or c", "not a and b or c"),
            ("x not in [\"a\", 'b']", "x not in [\"a\", \"b\"]"),
            ("-len(user.name) >= 3", "-len(user.name) >= 3"),
        ];
        for (src, want) in cases {
            assert_eq!(show(&parse_expr(src, loc(src.len()), &mut d)), want, "{src}");
        }
        assert!(d.is_empty(), "{d:?}");
    }

    #[test]
    fn errors_point_into_the_expression() {
        let mut d = vec![];
        let e = parse_expr("a +", loc(3), &mut d);
        assert!(
            matches!(&e.kind, ExprKind::Error(names) if matches!(&names[..], [Expr { kind: ExprKind::Var(a), .. }] if a == "a"))
        );
        assert_eq!(d[0].code.0, "E0303");
        assert_eq!(d[0].span.lo, 3);
    }

    #[test]
    fn templates_split_into_parts() {
        let mut d = vec![];
        let t = parse_template("Hi {{ user.name }}, you owe {{ total * 2 }}!", loc(44), &mut d);
        assert_eq!(t.parts.len(), 5);
        assert_eq!(t.literal_len(), "Hi , you owe !".len());
        let bad = parse_template("Hi {{ name", loc(10), &mut d);
        assert!(matches!(bad.parts.last(), Some(Part::Expr(Expr { kind: ExprKind::Error(_), .. }))));
        assert_eq!(d.len(), 1);
        let quoted = parse_template("{{ \"}}\" + x }} and }} alone", loc(27), &mut d);
        assert_eq!(quoted.parts.len(), 2, "a `}}` inside a string does not close the hole");
        assert_eq!(d.len(), 1);
    }

    /// Mostly well-formed expressions: random trees printed with random spacing, with
    /// stray tokens mixed in now and then.
    fn grammatical() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            "[a-z_][a-z0-9_]{0,5}",
            "[0-9]{1,3}(\\.[0-9]{1,2})?",
            Just("\"it's\"".to_string()),
            Just("'say \\'hi\\''".to_string()),
            Just("true".to_string()),
            Just("99999999999999999999".to_string()),
            Just("user.name".to_string()),
        ];
        leaf.prop_recursive(4, 24, 3, |inner| {
            let op = prop_oneof![
                Just("or"),
                Just("and"),
                Just("=="),
                Just("!="),
                Just("<"),
                Just("<="),
                Just(">"),
                Just(">="),
                Just("in"),
                Just("not in"),
                Just("+"),
                Just("-"),
                Just("*"),
                Just("/"),
                Just("%"),
            ];
            let sp = prop_oneof![Just(" "), Just(""), Just("  "), Just("\n")];
            prop_oneof![
                (inner.clone(), op, inner.clone(), sp.clone()).prop_map(|(a, o, b, s)| format!("{a}{s} {o} {s}{b}")),
                (inner.clone(), sp.clone()).prop_map(|(a, s)| format!("({s}{a}{s})")),
                inner.clone().prop_map(|a| format!("not {a}")),
                inner.clone().prop_map(|a| format!("-{a}")),
                (inner.clone(), "[a-z]{1,4}").prop_map(|(a, f)| format!("{a}.{f}")),
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("len({})", v.join(", "))),
                proptest::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
                (inner, prop_oneof![Just(")"), Just("=="), Just(","), Just("."), Just("and")])
                    .prop_map(|(a, t)| format!("{a} {t}")),
            ]
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 3000, ..Default::default() })]
        #[test]
        fn the_fast_parser_agrees_with_the_grammar(src in grammatical()) {
            let reference = BotcParser::parse(Rule::expr_main, &src)
                .ok()
                .map(|mut p| build(p.next().unwrap().into_inner().next().unwrap(), loc(src.len())));
            match crate::expr_fast::parse(&src, loc(src.len())) {
                Some(fast) => proptest::prop_assert_eq!(Some(fast), reference, "{}", src),
                // Whatever the grammar accepts, the fast parser takes too.
                None => proptest::prop_assert!(reference.is_none(), "fast parser refused: {}", src),
            }
        }
    }
}
