//! The document tree (see [`crate::yaml::Node`]) to the AST. Both front ends end here: the
//! YAML front end reads a YAML document into the tree, the DSL front end builds the same tree
//! from its statements, so both forms get exactly the same structural checks and AST.
//!
//! It reports every unknown or duplicate key, wrong value shape and bad name it sees and keeps
//! going, so one run shows all of a file's structural mistakes.

use crate::ast::*;
use crate::diagnostic::{Diagnostic, did_you_mean};
use crate::expr::{self, Expr, ExprKind, Locator, Template};
use crate::span::Span;
use crate::yaml::{Node as Y, Value};
use std::fmt;

/// Names a thing in messages (`sub-flow `x``), formatted only when a message is written.
struct Named<'a>(&'static str, &'a str);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`", self.0, self.1)
    }
}

/// A node in messages: `` `say` node `greet` ``.
struct NodeWhat<'a>(&'a str, &'a str);

impl fmt::Display for NodeWhat<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` node `{}`", self.0, self.1)
    }
}

/// Builds the AST of a whole file from its document tree.
pub fn build(root: &Y) -> (Option<File>, Vec<Diagnostic>) {
    let mut cx = Cx { diags: Vec::new(), invalid: Vec::new() };
    let out = cx.file(root);
    (out, cx.diags)
}

struct Cx {
    diags: Vec<Diagnostic>,
    /// Invalid names already reported (E0107).
    invalid: Vec<String>,
}

/// The keys of one YAML mapping, checked against what is allowed there.
struct Fields<'a> {
    /// On the stack up to 12 fields (a node has at most 10): one per mapping read, and a
    /// large flow has tens of thousands.
    pairs: smallvec::SmallVec<[(&'a str, &'a Y, &'a Y); 12]>,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Option<&'a Y> {
        self.pairs.iter().find(|(k, _, _)| *k == key).map(|&(_, _, v)| v)
    }

    fn key(&self, key: &str) -> Option<&'a Y> {
        self.pairs.iter().find(|(k, _, _)| *k == key).map(|&(_, k, _)| k)
    }
}

/// Stands in for a node whose kind could not be read (already reported), so references to
/// its id still resolve and do not produce follow-on errors.
fn placeholder(id: Ident) -> Node {
    Node { span: id.span, id, kind: NodeKind::End }
}

fn closest(key: &str, allowed: &[&'static str]) -> Option<&'static str> {
    let hint = did_you_mean(key, allowed.iter().copied())?;
    allowed.iter().copied().find(|a| hint == format!("did you mean `{a}`?"))
}

/// A key of a node with no kind that is a misspelling of one (`sya` for `say`), and the kind:
/// a key that is no node's attribute and is close to exactly one kind.
fn misspelt_kind(pairs: &[(Y, Y)]) -> Option<(&Y, &'static str)> {
    let attribute = |key: &str| NODE_KINDS.iter().any(|kind| node_keys(kind).contains(&key));
    pairs.iter().find_map(|(k, _)| {
        let key = k.as_str().filter(|key| !attribute(key))?;
        Some((k, closest(key, &NODE_KINDS)?))
    })
}

pub(crate) fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn locator(v: &Y) -> Locator<'_> {
    Locator::new(v.span, &v.origin)
}

const TOP_KEYS: &[&str] = &["flow", "description", "channels", "imports", "start", "vars", "nodes", "subflows"];
const SUBFLOW_KEYS: &[&str] = &["description", "params", "returns", "vars", "start", "nodes"];
const CHANNELS: &[&str] = &["web", "discord", "telegram", "slack"];

/// Attributes each node kind accepts, its kind keyword first.
fn node_keys(kind: &str) -> &'static [&'static str] {
    match kind {
        "say" => &["say", "buttons", "image", "next"],
        "ask" => {
            &["ask", "into", "expect", "buttons", "retries", "reprompt", "on_invalid", "timeout", "on_timeout", "next"]
        }
        "branch" => &["branch", "else"],
        "set" => &["set", "next"],
        "call" => &["call", "with", "into", "next"],
        "return" => &["return"],
        "http" => &["http", "method", "headers", "body", "into", "on_error", "next"],
        "handoff" => &["handoff", "reason", "next"],
        "wait" => &["wait", "next"],
        "goto" => &["goto"],
        _ => &["end"],
    }
}

impl Cx {
    fn err(&mut self, d: Diagnostic) {
        self.diags.push(d);
    }

    fn expected(&mut self, v: &Y, what: &str) {
        self.err(
            Diagnostic::error("E0103", v.span, format!("expected {what}, found {}", v.kind_name()))
                .label(format!("this should be {what}")),
        );
    }

    /// Reads a mapping, reporting unknown and duplicate keys. `None` (and a diagnostic) when
    /// `v` is not a mapping at all.
    fn fields<'a>(&mut self, v: &'a Y, what: &dyn fmt::Display, allowed: &[&'static str]) -> Option<Fields<'a>> {
        self.fields_as(v, what, allowed, None)
    }

    /// [`Self::fields`], reading the key `alias.0` as `alias.1` without a diagnostic (one was
    /// given already).
    fn fields_as<'a>(
        &mut self,
        v: &'a Y,
        what: &dyn fmt::Display,
        allowed: &[&'static str],
        alias: Option<(&str, &'static str)>,
    ) -> Option<Fields<'a>> {
        let Value::Map(pairs) = &v.value else {
            self.expected(v, &format!("a mapping ({what})"));
            return None;
        };
        let mut out = Fields { pairs: smallvec::SmallVec::new() };
        for (k, val) in pairs {
            let Some(key) = k.as_str() else {
                self.expected(k, "a key name");
                continue;
            };
            if let Some(&(_, first, _)) = out.pairs.iter().find(|(name, _, _)| *name == key) {
                self.err(
                    Diagnostic::error("E0106", k.span, format!("`{key}` is given twice in {what}"))
                        .label("second value")
                        .with_label(first.span, "first value")
                        .help("remove one of them"),
                );
                continue;
            }
            if let Some((typo, meant)) = alias
                && key == typo
            {
                out.pairs.push((meant, k, val));
                continue;
            }
            if !allowed.contains(&key) {
                let mut d = Diagnostic::error("E0101", k.span, format!("unknown field `{key}` in {what}"))
                    .label("not a field here");
                let guess = closest(key, allowed);
                d = match guess {
                    Some(g) => d.help(format!("did you mean `{g}`?")),
                    None => d.help(format!("the fields here are: {}", allowed.join(", "))),
                };
                self.err(d);
                // Read a misspelt field as the one it is closest to (when that one is not
                // also given), so a typo'd `nxt:` does not also make the node a dead end.
                if let Some(g) = guess
                    && !pairs.iter().any(|(other, _)| other.as_str() == Some(g))
                {
                    out.pairs.push((g, k, val));
                }
                continue;
            }
            out.pairs.push((key, k, val));
        }
        Some(out)
    }

    fn missing(&mut self, at: Span, what: &dyn fmt::Display, field: &str, help: &str) {
        self.err(
            Diagnostic::error("E0102", at, format!("{what} is missing `{field}`"))
                .label(format!("`{field}` is required here"))
                .help(help.to_string()),
        );
    }

    fn scalar<'a>(&mut self, v: &'a Y, what: &str) -> Option<&'a str> {
        match &v.value {
            Value::Scalar { text, .. } => Some(text),
            _ => {
                self.expected(v, what);
                None
            }
        }
    }

    fn ident(&mut self, v: &Y, what: &str) -> Option<Ident> {
        let s = self.scalar(v, what)?;
        if !is_ident(s) {
            // Said once per name; the name is still used as written, so the node, variable or
            // sub-flow it names exists and its other mentions are not also reported.
            if !self.invalid.iter().any(|n| n == s) {
                self.invalid.push(s.to_string());
                self.err(
                    Diagnostic::error("E0107", v.span, format!("`{s}` is not a valid {what}"))
                        .label("invalid name")
                        .help("names use lowercase letters, digits and `_`, and start with a letter or `_`"),
                );
            }
            if s.trim().is_empty() {
                return None;
            }
        }
        Some(Ident { name: s.into(), span: v.span })
    }

    fn str(&mut self, v: &Y, what: &str) -> Option<Str> {
        let s = self.scalar(v, what)?;
        Some(Str { value: s.into(), span: v.span })
    }

    fn template(&mut self, v: &Y, what: &str) -> Template {
        match self.scalar(v, what) {
            Some(s) => expr::parse_template(s, locator(v), &mut self.diags),
            None => Template { parts: vec![], span: v.span },
        }
    }

    fn expr(&mut self, v: &Y) -> Expr {
        match &v.value {
            Value::Scalar { text, quoted } => {
                let before = self.diags.len();
                let e = expr::parse_expr(text, locator(v), &mut self.diags);
                // `label: "with milk"`: YAML's quotes, around an expression that is not one
                // (a syntax error with no more specific help, such as `&&` → `and`).
                if *quoted
                    && matches!(e.kind, ExprKind::Error(_))
                    && !text.trim_start().starts_with(['"', '\''])
                    && let Some(d) = self.diags.get_mut(before)
                    && d.code.0 == "E0303"
                    && d.help.is_none()
                {
                    d.help = Some(format!(
                        "these quotes are YAML's, so botc reads the expression `{text}`; for a text, put quotes inside them: '\"{text}\"'"
                    ));
                }
                e
            }
            _ => {
                self.expected(v, "an expression");
                Expr { kind: ExprKind::Error(Vec::new()), span: v.span }
            }
        }
    }

    /// A target node id. An invalid one is reported here and still returned, so the node does
    /// not also count as a dead end; lowering skips names that cannot be ids.
    fn target(&mut self, f: &Fields<'_>, key: &str) -> Option<Ident> {
        let v = f.get(key)?;
        let id = self.ident(v, "node id");
        id.or_else(|| Some(Ident { name: v.as_str().unwrap_or_default().into(), span: v.span }))
    }

    fn duration(&mut self, v: &Y) -> Option<Duration> {
        let s = self.scalar(v, "a duration like `10m`")?;
        match parse_duration(s) {
            Ok(seconds) => Some(Duration { seconds, span: v.span }),
            Err(why) => {
                self.err(
                    Diagnostic::error("E0604", v.span, format!("invalid duration `{s}`"))
                        .label(why)
                        .help("write a duration like `30s`, `10m`, `2h`, `1d` or `1h30m`"),
                );
                None
            }
        }
    }

    fn list<'a>(&mut self, v: &'a Y, what: &str) -> &'a [Y] {
        match &v.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                self.expected(v, what);
                &[]
            }
        }
    }

    fn file(&mut self, root: &Y) -> Option<File> {
        let f = self.fields(root, &"a flow file", TOP_KEYS)?;
        let name = match f.get("flow") {
            Some(v) => self.ident(v, "flow name"),
            None => {
                self.missing(
                    Span::new(root.span.file, 0, 0),
                    &"the flow file",
                    "flow",
                    "add `flow: my_bot` at the top",
                );
                None
            }
        };
        let name = name.unwrap_or(Ident { name: "flow".into(), span: root.span });
        let mut flow = self.flow_body(&f, name, root.span);
        flow.params.clear();
        let description = f.get("description").and_then(|v| self.str(v, "a description"));
        let mut channels = Vec::new();
        if let Some(v) = f.get("channels") {
            for c in self.list(v, "a list of channels") {
                let Some(id) = self.ident(c, "channel") else { continue };
                if !CHANNELS.contains(&id.name.as_str()) {
                    let hint = did_you_mean(&id.name, CHANNELS.iter().copied())
                        .unwrap_or_else(|| format!("channels are: {}", CHANNELS.join(", ")));
                    self.err(
                        Diagnostic::error("E0703", id.span, format!("unknown channel `{}`", id.name))
                            .label("not a channel botc supports")
                            .help(hint),
                    );
                    continue;
                }
                channels.push(id);
            }
        }
        let imports = match f.get("imports") {
            Some(v) => self.list(v, "a list of file paths").iter().filter_map(|i| self.str(i, "a file path")).collect(),
            None => Vec::new(),
        };
        let mut subflows = Vec::new();
        if let Some(v) = f.get("subflows")
            && let Some(sf) = self.fields_any(v, "subflows")
        {
            {
                for (k, body) in sf {
                    let Some(name) = self.ident(k, "sub-flow name") else { continue };
                    let Some(bf) = self.fields(body, &Named("sub-flow", &name.name), SUBFLOW_KEYS) else {
                        continue;
                    };
                    subflows.push(self.flow_body(&bf, name, body.span));
                }
            }
        }
        Some(File { flow, description, channels, imports, subflows })
    }

    /// A mapping whose keys are names chosen by the author (nodes, vars, subflows).
    fn fields_any<'a>(&mut self, v: &'a Y, what: &str) -> Option<Vec<(&'a Y, &'a Y)>> {
        match &v.value {
            Value::Map(pairs) => Some(pairs.iter().map(|(k, v)| (k, v)).collect()),
            Value::Null => Some(Vec::new()),
            _ => {
                self.expected(v, &format!("a mapping ({what})"));
                None
            }
        }
    }

    fn flow_body(&mut self, f: &Fields<'_>, name: Ident, span: Span) -> Flow {
        let params = f.get("params").map(|v| self.var_decls(v, "params")).unwrap_or_default();
        let vars = f.get("vars").map(|v| self.var_decls(v, "vars")).unwrap_or_default();
        let returns = f.get("returns").and_then(|v| self.type_ref(v));
        let start = f.get("start").and_then(|v| self.ident(v, "node id"));
        // No `nodes` at all is reported by the start check (there is nothing to start at).
        let mut nodes = Vec::new();
        if let Some(v) = f.get("nodes") {
            let bodies = self.fields_any(v, "nodes").unwrap_or_default();
            // Sized once: a node is a few hundred bytes, and a large flow has thousands.
            nodes.reserve_exact(bodies.len());
            for (k, body) in bodies {
                let Some(id) = self.ident(k, "node id") else { continue };
                if let Some(node) = self.node(id, body) {
                    nodes.push(node);
                }
            }
        }
        let span = f.key("flow").map_or(span, |k| k.span);
        Flow { name, params, returns, vars, start, nodes, span }
    }

    fn type_ref(&mut self, v: &Y) -> Option<TypeRef> {
        let s = self.scalar(v, "a type")?;
        match Type::from_name(s) {
            Some(ty) => Some(TypeRef { ty, span: v.span }),
            None => {
                let names: Vec<&str> = Type::ALL.iter().map(|t| t.name()).collect();
                let hint = did_you_mean(s, names.iter().copied())
                    .unwrap_or_else(|| format!("types are: {}", names.join(", ")));
                self.err(
                    Diagnostic::error("E0105", v.span, format!("unknown type `{s}`")).label("not a type").help(hint),
                );
                // Read as `json`, which goes with anything: the variable, parameter or result
                // still exists, so its uses are not also reported (undeclared, wrong type).
                Some(TypeRef { ty: Type::Json, span: v.span })
            }
        }
    }

    fn var_decls(&mut self, v: &Y, what: &str) -> Vec<VarDecl> {
        let mut out = Vec::new();
        for (k, body) in self.fields_any(v, what).unwrap_or_default() {
            let Some(name) = self.ident(k, "variable name") else { continue };
            if expr::EXPR_KEYWORDS.contains(&name.name.as_str()) {
                self.err(
                    Diagnostic::error("E0107", name.span, format!("`{}` cannot name a variable", name.name))
                        .label("a keyword of expressions")
                        .help("expressions read it as the keyword, never as this variable: choose another name"),
                );
            }
            let (ty, default) = match &body.value {
                Value::Map(_) => {
                    let Some(f) = self.fields(body, &Named("variable", &name.name), &["type", "default"]) else {
                        continue;
                    };
                    let ty = match f.get("type") {
                        Some(t) => self.type_ref(t),
                        None => {
                            self.missing(
                                body.span,
                                &format!("variable `{}`", name.name),
                                "type",
                                "add `type: text` (or number, integer, boolean, list, json)",
                            );
                            None
                        }
                    };
                    let default = match (&ty, f.get("default")) {
                        (Some(t), Some(d)) => Some(self.literal(d, t.ty)),
                        _ => None,
                    };
                    (ty, default)
                }
                _ => (self.type_ref(body), None),
            };
            if let Some(ty) = ty {
                out.push(VarDecl { name, ty, default });
            }
        }
        out
    }

    /// A YAML default value, read as a literal of the declared type (an error expression when
    /// it is not one, reported).
    fn literal(&mut self, v: &Y, ty: Type) -> Expr {
        let span = v.span;
        let kind = match (ty, &v.value) {
            (Type::List, Value::Seq(items)) => ExprKind::List(
                items
                    .iter()
                    .filter_map(|i| {
                        if let Some(other) = unquoted_non_text(i) {
                            self.err(not_text_default(i, other));
                            return None;
                        }
                        self.scalar(i, "a text").map(|s| Expr { kind: ExprKind::Text(s.into()), span: i.span })
                    })
                    .collect(),
            ),
            (Type::Text, Value::Scalar { .. }) if unquoted_non_text(v).is_some() => {
                self.err(not_text_default(v, unquoted_non_text(v).unwrap_or_default()));
                ExprKind::Error(Vec::new())
            }
            (Type::Text | Type::Json, Value::Scalar { text, .. }) => ExprKind::Text(text.clone()),
            (Type::Integer, Value::Scalar { text, .. }) if text.parse::<i64>().is_ok() => {
                ExprKind::Integer(text.parse().unwrap_or_default())
            }
            (Type::Number, Value::Scalar { text, .. }) if text.parse::<f64>().is_ok_and(f64::is_finite) => {
                match text.parse::<i64>() {
                    Ok(i) => ExprKind::Integer(i),
                    Err(_) => ExprKind::Number(text.parse().unwrap_or_default()),
                }
            }
            (Type::Boolean, Value::Scalar { text, .. }) if text == "true" || text == "false" => {
                ExprKind::Bool(text == "true")
            }
            _ => {
                self.err(
                    Diagnostic::error("E0304", span, format!("this default is not {}", an(ty.name())))
                        .label(format!("expected {} value", an(ty.name())))
                        .help(
                            "a default is a plain value (`\"Hello\"`, `0`, `true`, `[\"a\", \"b\"]`), not an \
                             expression; compute a value with `set` instead",
                        ),
                );
                // Still a default: the variable is not also reported as read before it is set.
                ExprKind::Error(Vec::new())
            }
        };
        Expr { kind, span }
    }

    fn node(&mut self, id: Ident, body: &Y) -> Option<Node> {
        let Value::Map(pairs) = &body.value else {
            self.expected(body, &format!("a mapping (node `{}`)", id.name));
            return None;
        };
        let mut kinds =
            pairs.iter().filter(|(k, _)| k.as_str().is_some_and(|s| NODE_KINDS.contains(&s))).map(|(k, _)| k);
        let mut alias = None;
        let kind_key = match (kinds.next(), kinds.next()) {
            (Some(one), None) => one,
            // A misspelt kind (`sya:`): said once, as the typo it is, and the node read as
            // the kind it is closest to, so its `next` and texts are still checked and the
            // nodes after it are not reported unreachable.
            (None, _) => match misspelt_kind(pairs) {
                Some((k, meant)) => {
                    let typo = k.as_str().unwrap_or_default();
                    self.err(
                        Diagnostic::error(
                            "E0104",
                            k.span,
                            format!("node `{}` has no kind: `{typo}` is not one", id.name),
                        )
                        .label("not a node kind")
                        .help(format!("did you mean `{meant}`?")),
                    );
                    alias = Some((typo, meant));
                    k
                }
                None => {
                    self.err(
                        Diagnostic::error("E0104", id.span, format!("node `{}` has no kind", id.name))
                            .label("this node does nothing")
                            .help(format!("give it exactly one of: {}", NODE_KINDS.join(", "))),
                    );
                    return Some(placeholder(id));
                }
            },
            (Some(first), Some(second)) => {
                self.err(
                    Diagnostic::error("E0104", second.span, format!("node `{}` has two kinds", id.name))
                        .label("second kind")
                        .with_label(first.span, "first kind")
                        .help("a node is one step; split it into two nodes joined by `next`"),
                );
                return Some(placeholder(id));
            }
        };
        let kw = alias.map_or(kind_key.as_str().unwrap_or("end"), |(_, meant)| meant);
        let what = NodeWhat(kw, &id.name);
        let f = self.fields_as(body, &what, node_keys(kw), alias)?;
        let main = f.get(kw).expect("the kind key is present");
        let next = self.target(&f, "next");
        let kind = match kw {
            "say" => NodeKind::Say {
                text: self.template(main, "the message text"),
                buttons: self.buttons(&f),
                image: f.get("image").map(|v| self.template(v, "an image URL")),
                next,
            },
            "ask" => {
                let into = self.target_var(&f, "into");
                if f.get("into").is_none() {
                    self.missing(
                        kind_key.span,
                        &what,
                        "into",
                        "add `into: some_variable` to say where the answer goes",
                    );
                }
                NodeKind::Ask {
                    prompt: self.template(main, "the question"),
                    into,
                    expect: f.get("expect").map_or(Expect::Text, |v| self.expect(v)),
                    expect_at: f.get("expect").map(|v| v.span),
                    buttons: self.buttons(&f),
                    retries: f.get("retries").and_then(|v| self.count(v)),
                    reprompt: f.get("reprompt").map(|v| self.template(v, "the re-prompt text")),
                    on_invalid: self.target(&f, "on_invalid"),
                    // An invalid duration is reported once; the node still has a timeout,
                    // so its `on_timeout` is not reported as having none.
                    timeout: f
                        .get("timeout")
                        .map(|v| self.duration(v).unwrap_or(Duration { seconds: 1, span: v.span })),
                    on_timeout: self.target(&f, "on_timeout"),
                    next,
                }
            }
            "branch" => {
                let mut arms = Vec::new();
                for arm in self.list(main, "a list of `when`/`goto` cases") {
                    let Some(af) = self.fields(arm, &"a branch case", &["when", "goto"]) else { continue };
                    let when = match af.get("when") {
                        Some(v) => self.expr(v),
                        None => {
                            self.missing(arm.span, &"a branch case", "when", "add `when: <condition>`");
                            continue;
                        }
                    };
                    let goto = self.target(&af, "goto");
                    if af.get("goto").is_none() {
                        self.missing(arm.span, &"a branch case", "goto", "add `goto: <node id>`");
                    }
                    arms.push(Arm { when, goto });
                }
                NodeKind::Branch { arms, otherwise: self.target(&f, "else") }
            }
            "set" => {
                let assigns = self.assigns(main, "assignments");
                if assigns.is_empty() && !matches!(main.value, Value::Map(ref m) if !m.is_empty()) {
                    self.err(
                        Diagnostic::error("E0102", main.span, format!("{what} assigns nothing"))
                            .label("at least one assignment is required here")
                            .help("write `set: { variable: expression }`"),
                    );
                }
                NodeKind::Set { assigns, next }
            }
            "call" => NodeKind::Call {
                flow: self.ident(main, "sub-flow name").unwrap_or(Ident { name: Default::default(), span: main.span }),
                args: f.get("with").map(|v| self.assigns(v, "arguments")).unwrap_or_default(),
                into: self.target_var(&f, "into"),
                next,
            },
            "return" => NodeKind::Return {
                value: match &main.value {
                    Value::Null => None,
                    _ => Some(self.expr(main)),
                },
            },
            "http" => {
                let method = match f.get("method") {
                    None => Method::Get,
                    Some(v) => {
                        let s = self.scalar(v, "an HTTP method").unwrap_or("GET");
                        match Method::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(s)) {
                            Some(m) => m,
                            None => {
                                self.err(
                                    Diagnostic::error("E0108", v.span, format!("unknown HTTP method `{s}`"))
                                        .label("not a method")
                                        .help("use GET, POST, PUT, PATCH or DELETE"),
                                );
                                Method::Get
                            }
                        }
                    }
                };
                let mut headers = Vec::new();
                if let Some(v) = f.get("headers") {
                    let pairs = self.fields_any(v, "headers").unwrap_or_default();
                    // Header names are case-insensitive: `Accept` and `accept` are one header.
                    for (k, val) in self.unique(pairs, "headers", |k| k.to_ascii_lowercase()) {
                        if let Some(name) = self.str(k, "a header name") {
                            headers.push(Header { name, value: self.template(val, "a header value") });
                        }
                    }
                }
                NodeKind::Http {
                    url: self.template(main, "a URL"),
                    method,
                    headers,
                    body: f.get("body").map(|v| self.template(v, "a request body")),
                    into: self.target_var(&f, "into"),
                    on_error: self.target(&f, "on_error"),
                    next,
                }
            }
            "handoff" => NodeKind::Handoff {
                queue: {
                    let queue =
                        self.str(main, "a queue name").unwrap_or(Str { value: Default::default(), span: main.span });
                    self.fixed_text(&queue.value, queue.span, "a queue name is plain text");
                    queue
                },
                reason: f.get("reason").map(|v| self.template(v, "a reason")),
                next,
            },
            "wait" => NodeKind::Wait {
                // An invalid duration is already reported; keep the node so its edges still
                // count and no unrelated errors follow from its absence.
                duration: self.duration(main).unwrap_or(Duration { seconds: 1, span: main.span }),
                next,
            },
            "goto" => NodeKind::Goto { target: self.ident(main, "node id")? },
            _ => {
                match &main.value {
                    Value::Null => {}
                    Value::Scalar { text, .. } if text == "true" => {}
                    _ => self.expected(main, "nothing (write `end:` or `end: true`)"),
                }
                NodeKind::End
            }
        };
        Some(Node { id, kind, span: kind_key.span })
    }

    fn target_var(&mut self, f: &Fields<'_>, key: &str) -> Option<Ident> {
        let v = f.get(key)?;
        // `into: user.name`: a built-in, said as such when it is looked up (E0306), not as an
        // invalid name.
        if let Some(s) = v.as_str()
            && s.split_once('.').is_some_and(|(ns, _)| BUILTIN_NAMESPACES.contains(&ns))
        {
            return Some(Ident { name: s.into(), span: v.span });
        }
        self.ident(v, "variable name")
    }

    fn count(&mut self, v: &Y) -> Option<(u32, Span)> {
        match v.as_str().and_then(|s| s.parse::<u32>().ok()) {
            Some(n) if n <= 100 => Some((n, v.span)),
            _ => {
                self.err(
                    Diagnostic::error("E0103", v.span, "expected a whole number from 0 to 100")
                        .label("not a retry count"),
                );
                None
            }
        }
    }

    /// A `{{ … }}` in text that is never filled in (a button's answer, a queue name) is an
    /// error: it would be sent as written.
    fn fixed_text(&mut self, text: &str, span: Span, why: &str) {
        if text.contains("{{") {
            let help = if why.starts_with("a queue") {
                "name a fixed queue; to route by what the user said, branch to `handoff` nodes with different queues"
            } else {
                "a button's answer is fixed: give it a plain `value` (the label may keep its template), \
                 e.g. `{ label: \"Yes, {{ user.name }}\", value: \"yes\" }`"
            };
            self.err(
                Diagnostic::error("E0303", span, "a template where none is filled in")
                    .label(format!("{why}: `{{{{ … }}}}` is not filled in here"))
                    .help(help),
            );
        }
    }

    /// `pairs` without the keys given again (each reported as E0106), keys compared as
    /// `same` makes them.
    fn unique<'a>(&mut self, pairs: Vec<(&'a Y, &'a Y)>, what: &str, same: fn(&str) -> String) -> Vec<(&'a Y, &'a Y)> {
        let mut seen: Vec<(String, &'a Y)> = Vec::with_capacity(pairs.len());
        let mut out = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            if let Some(key) = k.as_str() {
                let key = same(key);
                if let Some((_, first)) = seen.iter().find(|(s, _)| *s == key) {
                    self.err(
                        Diagnostic::error(
                            "E0106",
                            k.span,
                            format!("`{}` is given twice in {what}", k.as_str().unwrap_or_default()),
                        )
                        .label("second value")
                        .with_label(first.span, "first value")
                        .help("remove one of them"),
                    );
                    continue;
                }
                seen.push((key, k));
            }
            out.push((k, v));
        }
        out
    }

    fn assigns(&mut self, v: &Y, what: &str) -> Vec<Assign> {
        let mut out = Vec::new();
        let pairs = self.fields_any(v, what).unwrap_or_default();
        for (k, val) in self.unique(pairs, what, str::to_string) {
            // `user.name: ...`: a built-in, said as such (not as an invalid name).
            if let Some(s) = k.as_str()
                && s.split_once('.').is_some_and(|(ns, _)| BUILTIN_NAMESPACES.contains(&ns))
            {
                self.err(
                    Diagnostic::error("E0306", k.span, format!("`{s}` is read-only"))
                        .label("a built-in, not a variable")
                        .help("built-ins cannot be assigned; declare a variable and set that"),
                );
                self.expr(val);
                continue;
            }
            if let Some(var) = self.ident(k, "variable name") {
                out.push(Assign { var, value: self.expr(val) });
            }
        }
        out
    }

    fn expect(&mut self, v: &Y) -> Expect {
        const SIMPLE: &[&str] = &["text", "number", "integer", "boolean", "email", "choice", "regex"];
        match &v.value {
            Value::Scalar { text, .. } => match text.as_str() {
                "text" => Expect::Text,
                "number" => Expect::Number,
                "integer" => Expect::Integer,
                "boolean" => Expect::Boolean,
                "email" => Expect::Email,
                other => {
                    let hint = did_you_mean(other, SIMPLE.iter().copied()).unwrap_or_else(|| {
                        "use text, number, integer, boolean, email, `{choice: [...]}` or `{regex: ...}`".into()
                    });
                    self.err(
                        Diagnostic::error("E0109", v.span, format!("unknown answer type `{other}`"))
                            .label("not an answer type")
                            .help(hint),
                    );
                    Expect::Text
                }
            },
            Value::Map(_) => {
                let Some(f) = self.fields(v, &"`expect`", &["choice", "regex"]) else { return Expect::Text };
                if let Some(c) = f.get("choice") {
                    let choices =
                        self.list(c, "a list of choices").iter().filter_map(|i| self.str(i, "a choice")).collect();
                    Expect::Choice(choices, c.span)
                } else if let Some(r) = f.get("regex") {
                    self.str(r, "a regular expression").map_or(Expect::Text, Expect::Regex)
                } else {
                    self.expected(v, "`choice: [...]` or `regex: ...`");
                    Expect::Text
                }
            }
            _ => {
                self.expected(v, "an answer type");
                Expect::Text
            }
        }
    }

    fn buttons(&mut self, f: &Fields<'_>) -> Vec<Button> {
        let Some(v) = f.get("buttons") else { return Vec::new() };
        let mut out = Vec::new();
        for b in self.list(v, "a list of buttons") {
            match &b.value {
                Value::Scalar { text, .. } => {
                    self.fixed_text(text, b.span, "the answer of a button without a `value` is its label as written");
                    out.push(Button {
                        label: self.template(b, "a button label"),
                        action: ButtonAction::Value(Str { value: text.clone(), span: b.span }),
                        span: b.span,
                    })
                }
                _ => {
                    let Some(bf) = self.fields(b, &"a button", &["label", "value", "url"]) else { continue };
                    let Some(lv) = bf.get("label") else {
                        self.missing(b.span, &"a button", "label", "add `label: \"Text on the button\"`");
                        continue;
                    };
                    let label = self.template(lv, "a button label");
                    let action = match (bf.get("value"), bf.get("url")) {
                        (Some(val), None) => match self.str(val, "a button value") {
                            Some(s) => {
                                self.fixed_text(&s.value, s.span, "a button's value is plain text");
                                ButtonAction::Value(s)
                            }
                            None => continue,
                        },
                        (None, Some(u)) => ButtonAction::Url(self.template(u, "a URL")),
                        (None, None) => {
                            let value: compact_str::CompactString = lv.as_str().unwrap_or_default().into();
                            self.fixed_text(
                                &value,
                                lv.span,
                                "the answer of a button without a `value` is its label as written",
                            );
                            ButtonAction::Value(Str { value, span: lv.span })
                        }
                        (Some(_), Some(u)) => {
                            self.err(
                                Diagnostic::error("E0106", u.span, "a button has either `value` or `url`, not both")
                                    .label("second action")
                                    .help("a link button (url) sends nothing back; split it into two buttons"),
                            );
                            continue;
                        }
                    };
                    out.push(Button { label, action, span: b.span });
                }
            }
        }
        out
    }
}

/// What an unquoted scalar reads as when it is not text (`5`, `true`, `null`), if so: YAML
/// means a number there, and a `text` default or list item must not silently turn it into
/// digits.
fn unquoted_non_text(v: &Y) -> Option<&'static str> {
    match &v.value {
        Value::Scalar { text, quoted: false } => match text.as_str() {
            "true" | "false" => Some("a boolean"),
            "null" | "~" => Some("null"),
            t if t.parse::<f64>().is_ok() => Some("a number"),
            _ => None,
        },
        _ => None,
    }
}

fn not_text_default(v: &Y, what: &str) -> Diagnostic {
    let text = v.as_str().unwrap_or_default();
    Diagnostic::error("E0304", v.span, format!("this default is {what}, not text"))
        .label("expected a text value")
        .help(format!("quote it to mean the text: `\"{text}\"`"))
}

/// `integer` → `an integer`, `text` → `a text`.
fn an(name: &str) -> String {
    if name.starts_with(['a', 'e', 'i', 'o', 'u']) { format!("an {name}") } else { format!("a {name}") }
}
