//! Name resolution and type checking of expressions: AST expressions to typed IR expressions.
//!
//! `json` is the dynamic type: it is accepted wherever any type is expected and any field
//! can be read from it; everything else is checked here, before a flow can run.

use crate::ast::Type;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::expr::{self as ast, BinOp, UnOp};
use crate::ir::{Builtin, Expr, ExprKind, Func, Template, TemplatePart, Var, VarId};

/// What names an expression can see.
pub struct Scope<'a> {
    pub vars: &'a [Var],
}

impl Scope<'_> {
    pub fn lookup(&self, name: &str) -> Option<VarId> {
        self.vars.iter().position(|v| v.name == name).map(|i| VarId(i as u32))
    }
}

/// `from` can be stored where `to` is expected.
pub fn assignable(to: Type, from: Type) -> bool {
    to == from || to == Type::Json || from == Type::Json || (to == Type::Number && from == Type::Integer)
}

fn numeric(t: Type) -> bool {
    matches!(t, Type::Number | Type::Integer | Type::Json)
}

pub struct Typer<'a, 'd> {
    pub scope: Scope<'a>,
    pub diags: &'d mut Vec<Diagnostic>,
}

impl Typer<'_, '_> {
    fn mismatch(&mut self, e: &Expr, want: &str, help: Option<&str>) {
        let mut d =
            Diagnostic::error("E0304", e.span, format!("type mismatch: expected {want}, found {}", e.ty.name()))
                .label(format!("this is {}", article(e.ty)));
        if let Some(h) = help {
            d = d.help(h.to_string());
        }
        self.diags.push(d);
    }

    pub fn template(&mut self, t: &ast::Template) -> Template {
        let parts = t
            .parts
            .iter()
            .map(|p| match p {
                ast::Part::Lit(s) => TemplatePart::Lit(s.clone()),
                ast::Part::Expr(e) => TemplatePart::Expr(self.expr(e)),
            })
            .collect();
        Template { parts, span: t.span, literal_len: t.literal_len() }
    }

    /// Types `e` and reports a mismatch unless it fits `want`.
    pub fn expect(&mut self, e: &ast::Expr, want: Type) -> Expr {
        let out = self.expr(e);
        if !assignable(want, out.ty) {
            self.mismatch(&out, want.name(), None);
        }
        out
    }

    pub fn expr(&mut self, e: &ast::Expr) -> Expr {
        let span = e.span;
        let (kind, ty) = match &e.kind {
            ast::ExprKind::Text(s) => (ExprKind::Text(s.clone()), Type::Text),
            ast::ExprKind::Integer(i) => (ExprKind::Integer(*i), Type::Integer),
            ast::ExprKind::Number(n) => (ExprKind::Number(*n), Type::Number),
            ast::ExprKind::Bool(b) => (ExprKind::Bool(*b), Type::Boolean),
            // The names in text that did not parse: the declared ones count as read.
            ast::ExprKind::Error(names) => {
                let reads = names
                    .iter()
                    .filter_map(|n| match &n.kind {
                        ast::ExprKind::Var(name) => self.scope.lookup(name).map(|v| Expr {
                            kind: ExprKind::Var(v),
                            ty: self.scope.vars[v.0 as usize].ty,
                            span: n.span,
                        }),
                        _ => None,
                    })
                    .collect();
                (ExprKind::Error(reads), Type::Json)
            }
            ast::ExprKind::List(items) => {
                let items: Vec<Expr> = items.iter().map(|i| self.expr(i)).collect();
                for i in &items {
                    if !assignable(Type::Text, i.ty) {
                        self.mismatch(i, "text", Some("lists hold texts; convert with text(...)"));
                    }
                }
                (ExprKind::List(items), Type::List)
            }
            ast::ExprKind::Var(name) => match self.scope.lookup(name) {
                Some(v) => (ExprKind::Var(v), self.scope.vars[v.0 as usize].ty),
                None => {
                    self.undeclared(name, span);
                    (ExprKind::Error(vec![]), Type::Json)
                }
            },
            ast::ExprKind::Field(base, field, fspan) => {
                if let ast::ExprKind::Var(ns) = &base.kind
                    && matches!(ns.as_str(), "user" | "event" | "bot")
                    && self.scope.lookup(ns).is_none()
                {
                    match Builtin::ALL.iter().find(|(_, n, f)| n == ns && f == field) {
                        Some((b, _, _)) => (ExprKind::Builtin(*b), Type::Text),
                        None => {
                            let fields: Vec<&str> =
                                Builtin::ALL.iter().filter(|(_, n, _)| n == ns).map(|(_, _, f)| *f).collect();
                            let help = did_you_mean(field, fields.iter().copied())
                                .unwrap_or_else(|| format!("`{ns}` has: {}", fields.join(", ")));
                            self.diags.push(
                                Diagnostic::error("E0301", *fspan, format!("`{ns}` has no field `{field}`"))
                                    .label("unknown built-in")
                                    .help(help),
                            );
                            (ExprKind::Error(vec![]), Type::Json)
                        }
                    }
                } else {
                    let base = self.expr(base);
                    if base.ty != Type::Json {
                        self.diags.push(
                            Diagnostic::error("E0304", *fspan, format!("a {} value has no fields", base.ty.name()))
                                .label(format!("`.{field}` needs a json value"))
                                .help(
                                    "only `json` values (like an http result) and `user`, `event`, `bot` have fields",
                                ),
                        );
                    }
                    (ExprKind::Field(Box::new(base), field.clone()), Type::Json)
                }
            }
            ast::ExprKind::Unary(op, operand) => {
                let operand = self.expr(operand);
                let ty = match op {
                    UnOp::Not => {
                        if !assignable(Type::Boolean, operand.ty) {
                            self.mismatch(&operand, "boolean", None);
                        }
                        Type::Boolean
                    }
                    UnOp::Neg => {
                        if !numeric(operand.ty) {
                            self.mismatch(&operand, "a number", None);
                            // Reported: the result goes with anything from here on.
                            Type::Json
                        } else if operand.ty == Type::Integer {
                            Type::Integer
                        } else {
                            Type::Number
                        }
                    }
                };
                (ExprKind::Unary(*op, Box::new(operand)), ty)
            }
            ast::ExprKind::Binary(op @ (BinOp::In | BinOp::NotIn), a, b)
                if matches!(b.kind, ast::ExprKind::List(_)) =>
            {
                // `x in [1, 2]`: the list literal's items are checked against `x`, not as texts.
                let a = self.expr(a);
                let ast::ExprKind::List(items) = &b.kind else { unreachable!("matched above") };
                let items = Expr {
                    kind: ExprKind::List(items.iter().map(|i| self.expr(i)).collect()),
                    ty: Type::List,
                    span: b.span,
                };
                let ty = self.binary(*op, &a, &items);
                (ExprKind::Binary(*op, Box::new(a), Box::new(items)), ty)
            }
            ast::ExprKind::Binary(op, a, b) => {
                let (a, b) = (self.expr(a), self.expr(b));
                let ty = self.binary(*op, &a, &b);
                (ExprKind::Binary(*op, Box::new(a), Box::new(b)), ty)
            }
            ast::ExprKind::Call(name, nspan, args) => {
                let args: Vec<Expr> = args.iter().map(|a| self.expr(a)).collect();
                match Func::from_name(name) {
                    Some(f) => {
                        let ty = self.call(f, *nspan, &args);
                        (ExprKind::Call(f, args), ty)
                    }
                    None => {
                        let help = did_you_mean(name, Func::ALL.iter().map(|(_, n)| *n))
                            .unwrap_or_else(|| "see the list of functions in docs/flow-language.md".into());
                        self.diags.push(
                            Diagnostic::error("E0305", *nspan, format!("unknown function `{name}`"))
                                .label("not a built-in function")
                                .help(help),
                        );
                        (ExprKind::Error(args), Type::Json)
                    }
                }
            }
        };
        Expr { kind, ty, span }
    }

    fn undeclared(&mut self, name: &str, span: crate::span::Span) {
        let mut d = Diagnostic::error("E0301", span, format!("undeclared variable `{name}`")).label("not declared");
        d = match did_you_mean(name, self.scope.vars.iter().map(|v| v.name.as_str())) {
            Some(s) => d.help(s),
            None if matches!(name, "user" | "event" | "bot") => {
                d.help(format!("`{name}` is a group of built-ins; read a field such as `{name}.id`"))
            }
            None => d.help(format!(
                "declare it under `vars:` (for example `{name}: text`); a text literal needs quotes: '\"{name}\"'"
            )),
        };
        self.diags.push(d);
    }

    fn binary(&mut self, op: BinOp, a: &Expr, b: &Expr) -> Type {
        use BinOp::*;
        match op {
            Or | And => {
                for side in [a, b] {
                    if !assignable(Type::Boolean, side.ty) {
                        self.mismatch(side, "boolean", Some("`and`/`or` combine conditions"));
                    }
                }
                Type::Boolean
            }
            Eq | Ne => {
                if !(assignable(a.ty, b.ty) || assignable(b.ty, a.ty)) {
                    self.mismatch(b, a.ty.name(), Some("both sides of a comparison must have the same type"));
                }
                Type::Boolean
            }
            Lt | Le | Gt | Ge => {
                let ok = (numeric(a.ty) && numeric(b.ty)) || (a.ty == Type::Text && b.ty == Type::Text);
                if !ok {
                    // The side that does not fit the other: a text beside a number wants text.
                    let (side, want) = match (a.ty, b.ty) {
                        (Type::Text, _) => (b, "text"),
                        (t, _) if numeric(t) => (b, "a number"),
                        (_, Type::Text) => (a, "text"),
                        _ => (a, "a number"),
                    };
                    self.mismatch(side, want, Some("`<`, `>`, `<=`, `>=` compare two numbers or two texts"));
                }
                Type::Boolean
            }
            In | NotIn => {
                match &b.kind {
                    ExprKind::List(items) if a.ty != Type::Json => {
                        if let Some(bad) = items.iter().find(|i| !assignable(a.ty, i.ty)) {
                            self.mismatch(bad, a.ty.name(), Some("every item of the list must match the left side"));
                        }
                    }
                    _ => {
                        if !assignable(Type::List, b.ty) {
                            self.mismatch(b, "a list", Some("use contains(text, part) to search inside a text"));
                        } else if !assignable(Type::Text, a.ty) {
                            self.mismatch(a, "text", None);
                        }
                    }
                }
                Type::Boolean
            }
            Add if a.ty == Type::Text || b.ty == Type::Text => {
                for side in [a, b] {
                    if !assignable(Type::Text, side.ty) {
                        self.mismatch(side, "text", Some("`+` joins two texts; convert numbers with text(...)"));
                    }
                }
                Type::Text
            }
            Add | Sub | Mul | Div | Rem => {
                // One diagnostic for the operation, at its first operand that is not a number.
                let wrong = [a, b].into_iter().find(|side| !numeric(side.ty));
                if let Some(side) = wrong {
                    self.mismatch(side, "a number", Some("arithmetic takes numbers; `+` also joins two texts"));
                    // Already reported: the result goes with anything, so where it is stored
                    // or compared is not reported again.
                    Type::Json
                } else if a.ty == Type::Integer && b.ty == Type::Integer && op != Div {
                    Type::Integer
                } else {
                    Type::Number
                }
            }
        }
    }

    fn call(&mut self, f: Func, name_span: crate::span::Span, args: &[Expr]) -> Type {
        use Type::*;
        let (params, ret): (&[Type], Type) = match f {
            Func::Len => (&[Json], Integer),
            Func::Lower | Func::Upper | Func::Trim => (&[Text], Text),
            Func::Contains => (&[Json, Text], Boolean),
            Func::StartsWith | Func::EndsWith | Func::Matches => (&[Text, Text], Boolean),
            Func::Replace => (&[Text, Text, Text], Text),
            Func::Number => (&[Text], Number),
            Func::Int | Func::Round | Func::Floor | Func::Ceil => (&[Number], Integer),
            Func::Abs => (&[Number], args.first().map_or(Number, |a| if a.ty == Integer { Integer } else { Number })),
            Func::Min | Func::Max => {
                (&[Number, Number], if args.iter().all(|a| a.ty == Integer) { Integer } else { Number })
            }
            Func::Text => (&[Json], Text),
            Func::Join => (&[List, Text], Text),
            Func::Now => (&[], Integer),
            Func::Fixed => (&[Number, Integer], Text),
        };
        if args.len() != params.len() {
            self.diags.push(
                Diagnostic::error(
                    "E0305",
                    name_span,
                    format!(
                        "`{}` takes {} argument{}, found {}",
                        f.name(),
                        params.len(),
                        plural(params.len()),
                        args.len()
                    ),
                )
                .label("wrong number of arguments")
                .help(format!("see `{}` in docs/flow-language.md", f.name())),
            );
            return ret;
        }
        for (arg, &want) in args.iter().zip(params) {
            if !assignable(want, arg.ty) {
                self.mismatch(arg, want.name(), None);
            }
        }
        // `len` and `contains` take a text or a list, which the table cannot say.
        if matches!(f, Func::Len | Func::Contains)
            && let Some(first) = args.first()
            && !matches!(first.ty, Text | List | Json)
        {
            self.mismatch(first, "text or list", None);
        }
        // `fixed` rounds to 0 to 10 decimals; a written count outside that is a mistake (the
        // VM would clamp it).
        let written = |e: &Expr| match &e.kind {
            ExprKind::Integer(i) => Some(*i),
            ExprKind::Unary(UnOp::Neg, inner) => match inner.kind {
                ExprKind::Integer(i) => Some(-i),
                _ => None,
            },
            _ => None,
        };
        if f == Func::Fixed
            && let Some(arg @ Expr { span, .. }) = args.get(1)
            && let Some(digits) = written(arg)
            && !(0..=10).contains(&digits)
        {
            self.diags.push(
                Diagnostic::error("E0304", *span, format!("`fixed` shows 0 to 10 decimals, not {digits}"))
                    .label("out of range")
                    .help("for money, `fixed(total, 2)`"),
            );
        }
        if f == Func::Matches
            && let Some(Expr { kind: ExprKind::Text(re), span, .. }) = args.get(1)
            && let Err(e) = regex::Regex::new(re)
        {
            self.diags.push(invalid_regex(*span, &e));
        }
        ret
    }
}

pub fn invalid_regex(span: crate::span::Span, e: &regex::Error) -> Diagnostic {
    let detail = e.to_string();
    let last = detail.lines().last().unwrap_or("invalid pattern").trim().to_string();
    Diagnostic::error("E0603", span, "invalid regular expression")
        .label(last)
        .help("botc uses Rust regex syntax (no look-around or back-references)")
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn article(t: Type) -> String {
    match t {
        Type::Integer => "an integer".into(),
        other => format!("a {}", other.name()),
    }
}
