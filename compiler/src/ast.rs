//! The syntax tree both front ends (YAML and DSL) produce. It mirrors the source one to one,
//! spans included; names are not resolved yet. `botc fmt` prints it back in either form.

use crate::expr::{Expr, Template};
use crate::span::Span;

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ident {
    pub name: compact_str::CompactString,
    pub span: Span,
}

/// A plain (non-template) string value, e.g. an import path or a choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Str {
    /// Inline up to 24 bytes: choices and button values are short.
    pub value: compact_str::CompactString,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub flow: Flow,
    pub description: Option<Str>,
    pub channels: Vec<Ident>,
    pub imports: Vec<Str>,
    pub subflows: Vec<Flow>,
}

/// The main flow of a file, or one of its sub-flows.
#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    pub name: Ident,
    pub params: Vec<VarDecl>,
    pub returns: Option<TypeRef>,
    pub vars: Vec<VarDecl>,
    pub start: Option<Ident>,
    pub nodes: Vec<Node>,
    /// The whole flow (or sub-flow) definition; "missing start" points here.
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Type {
    Text,
    Number,
    Integer,
    Boolean,
    List,
    Json,
}

impl Type {
    pub const ALL: [Type; 6] = [Type::Text, Type::Number, Type::Integer, Type::Boolean, Type::List, Type::Json];

    pub fn name(self) -> &'static str {
        match self {
            Type::Text => "text",
            Type::Number => "number",
            Type::Integer => "integer",
            Type::Boolean => "boolean",
            Type::List => "list",
            Type::Json => "json",
        }
    }

    pub fn from_name(s: &str) -> Option<Type> {
        Type::ALL.into_iter().find(|t| t.name() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct TypeRef {
    pub ty: Type,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct VarDecl {
    pub name: Ident,
    pub ty: TypeRef,
    pub default: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: Ident,
    pub kind: NodeKind,
    /// The span of the kind keyword (`say`, `ask`, ...): where node-level errors point.
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Button {
    pub label: Template,
    pub action: ButtonAction,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ButtonAction {
    /// Clicking sends this value as the user's answer.
    Value(Str),
    /// A link button: opens the URL, sends nothing.
    Url(Template),
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    Text,
    Number,
    Integer,
    Boolean,
    Email,
    Choice(Vec<Str>, Span),
    Regex(Str),
}

impl Expect {
    /// The type of the value an answer is stored as.
    pub fn value_type(&self) -> Type {
        match self {
            Expect::Number => Type::Number,
            Expect::Integer => Type::Integer,
            Expect::Boolean => Type::Boolean,
            Expect::Text | Expect::Email | Expect::Choice(..) | Expect::Regex(_) => Type::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Duration {
    pub seconds: u64,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub const ALL: [Method; 5] = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete];

    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arm {
    pub when: Expr,
    pub goto: Option<Ident>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Assign {
    pub var: Ident,
    pub value: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub name: Str,
    pub value: Template,
}

/// Every field that names a target is an `Option`: a missing `next` is reported by the
/// dead-end check, which knows whether the node needed one.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeKind {
    Say {
        text: Template,
        buttons: Vec<Button>,
        image: Option<Template>,
        next: Option<Ident>,
    },
    Ask {
        prompt: Template,
        into: Option<Ident>,
        expect: Expect,
        /// Where `expect` was written; `None`: it was not (the answer is text).
        expect_at: Option<Span>,
        buttons: Vec<Button>,
        retries: Option<(u32, Span)>,
        reprompt: Option<Template>,
        on_invalid: Option<Ident>,
        timeout: Option<Duration>,
        on_timeout: Option<Ident>,
        next: Option<Ident>,
    },
    Branch {
        arms: Vec<Arm>,
        otherwise: Option<Ident>,
    },
    Set {
        assigns: Vec<Assign>,
        next: Option<Ident>,
    },
    Call {
        flow: Ident,
        args: Vec<Assign>,
        into: Option<Ident>,
        next: Option<Ident>,
    },
    Return {
        value: Option<Expr>,
    },
    Http {
        url: Template,
        method: Method,
        headers: Vec<Header>,
        body: Option<Template>,
        into: Option<Ident>,
        on_error: Option<Ident>,
        next: Option<Ident>,
    },
    Handoff {
        queue: Str,
        reason: Option<Template>,
        next: Option<Ident>,
    },
    Wait {
        duration: Duration,
        next: Option<Ident>,
    },
    Goto {
        target: Ident,
    },
    End,
}

impl NodeKind {
    pub fn keyword(&self) -> &'static str {
        match self {
            NodeKind::Say { .. } => "say",
            NodeKind::Ask { .. } => "ask",
            NodeKind::Branch { .. } => "branch",
            NodeKind::Set { .. } => "set",
            NodeKind::Call { .. } => "call",
            NodeKind::Return { .. } => "return",
            NodeKind::Http { .. } => "http",
            NodeKind::Handoff { .. } => "handoff",
            NodeKind::Wait { .. } => "wait",
            NodeKind::Goto { .. } => "goto",
            NodeKind::End => "end",
        }
    }
}

/// The namespaces of the built-in variables (`user.name`, `event.text`, `bot.id`): read-only.
pub const BUILTIN_NAMESPACES: [&str; 3] = ["user", "event", "bot"];

/// Node kind keywords, in the order the docs list them.
pub const NODE_KINDS: [&str; 11] =
    ["say", "ask", "branch", "set", "call", "return", "http", "handoff", "wait", "goto", "end"];

/// Parses `30s`, `10m`, `2h`, `1d`, `1h30m`. At most 30 days.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    const MAX: u64 = 30 * 86_400;
    if s.is_empty() {
        return Err("a duration is empty".into());
    }
    let mut total: u64 = 0;
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(u64::from(d)));
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(format!("`{c}` is not a duration unit (use s, m, h or d)")),
        };
        let n = num.take().ok_or_else(|| format!("`{c}` needs a number before it"))?;
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if num.is_some() {
        return Err("the last number has no unit (add s, m, h or d)".into());
    }
    if total == 0 {
        return Err("a duration must be longer than zero".into());
    }
    if total > MAX {
        return Err("durations are limited to 30 days".into());
    }
    Ok(total)
}

/// The canonical text of a duration: `5400` seconds prints as `1h30m`.
pub fn format_duration(mut secs: u64) -> String {
    let mut out = String::new();
    for (unit, n) in [('d', 86_400), ('h', 3600), ('m', 60), ('s', 1)] {
        if secs >= n {
            out += &format!("{}{unit}", secs / n);
            secs %= n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for (s, n) in [("30s", 30), ("10m", 600), ("1h30m", 5400), ("2d", 172_800)] {
            assert_eq!(parse_duration(s), Ok(n));
            assert_eq!(format_duration(n), s);
        }
        for bad in ["", "10", "m", "5x", "0s", "31d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
