//! Canonical text for expressions and templates: minimal parentheses, double quotes.
//! Used by IR dumps, `botc graph` labels and `botc fmt`.

use crate::expr::{Expr, ExprKind, Part, Template, UnOp};

pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, 0);
    out
}

pub fn template(t: &Template) -> String {
    let mut out = String::new();
    for p in &t.parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Expr(e) => {
                out.push_str("{{ ");
                write_expr(&mut out, e, 0);
                out.push_str(" }}");
            }
        }
    }
    out
}

/// A string literal in double quotes with the escapes the expression grammar reads back.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn write_expr(out: &mut String, e: &Expr, min_prec: u8) {
    match &e.kind {
        ExprKind::Text(s) => out.push_str(&quote(s)),
        ExprKind::Integer(i) => out.push_str(&i.to_string()),
        ExprKind::Number(n) => {
            let s = n.to_string();
            out.push_str(&s);
            if !s.contains('.') && n.is_finite() {
                out.push_str(".0");
            }
        }
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, item, 0);
            }
            out.push(']');
        }
        ExprKind::Var(name) => out.push_str(name),
        ExprKind::Field(base, field, _) => {
            write_expr(out, base, 9);
            out.push('.');
            out.push_str(field);
        }
        ExprKind::Call(name, _, args) => {
            out.push_str(name);
            out.push('(');
            for (i, a) in args.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_expr(out, a, 0);
            }
            out.push(')');
        }
        ExprKind::Unary(op, operand) => {
            let (text, prec) = match op {
                UnOp::Not => ("not ", 3),
                UnOp::Neg => ("-", 7),
            };
            let paren = prec < min_prec;
            if paren {
                out.push('(');
            }
            out.push_str(text);
            write_expr(out, operand, prec);
            if paren {
                out.push(')');
            }
        }
        ExprKind::Binary(op, lhs, rhs) => {
            let prec = op.precedence();
            let paren = prec < min_prec;
            if paren {
                out.push('(');
            }
            // Comparisons do not chain, so both sides bind tighter; other operators are
            // left-associative, so only the right side needs the stricter bound.
            let left_min = if prec == 4 { prec + 1 } else { prec };
            write_expr(out, lhs, left_min);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            write_expr(out, rhs, prec + 1);
            if paren {
                out.push(')');
            }
        }
        ExprKind::Error => out.push_str("<error>"),
    }
}
