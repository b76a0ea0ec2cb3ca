//! The DSL front end (`grammar/flow.pest`): statements to the same document tree the YAML
//! front end produces, so [`super::tree`] builds the AST for both. Each statement keyword is
//! the YAML key of the same name; repeated statements (`set`, `header`, `when`, `var`, `node`,
//! `import`) gather into the one mapping or list the YAML form writes.

use crate::diagnostic::Diagnostic;
use crate::expr::{BotcParser, ESCAPES, Rule, bad_escape, expected, unescape};
use crate::span::{FileId, Span};
use crate::yaml::{Node, Origin, Value};
use pest::Parser as _;
use pest::iterators::Pair;

pub fn parse(file: FileId, text: &str) -> Result<Node, Diagnostic> {
    let mut pairs = BotcParser::parse(Rule::dsl_file, text).map_err(|e| {
        let (lo, hi) = match e.location {
            pest::error::InputLocation::Pos(p) => (p, p),
            pest::error::InputLocation::Span((a, b)) => (a, b),
        };
        let at = Span::new(file, lo, hi);
        // pest stops at its nesting limit (hundreds of parentheses): an input limit, not a
        // typo, said as in YAML.
        if let pest::error::ErrorVariant::CustomError { message } = &e.variant
            && message.contains("limit")
        {
            return Diagnostic::error("E0003", at, "input over a limit")
                .label("nested too deep")
                .help("split the expression: compute parts into variables with `set`");
        }
        Diagnostic::error("E0002", at, "syntax error")
            .label(expected(&e))
            .help("see docs/flow-language.md for the DSL's statements; `botc fmt --to dsl` converts a YAML flow")
    })?;
    let root = pairs.next().expect("dsl_file matched");
    let b = Builder { file, syntax: std::cell::RefCell::new(None) };
    let mut top = Map::default();
    for stmt in root.into_inner() {
        if stmt.as_rule() != Rule::EOI {
            b.top(&mut top, stmt);
        }
    }
    match b.syntax.into_inner() {
        Some(d) => Err(d),
        None => Ok(top.into_node(Span::new(file, 0, 0))),
    }
}

/// The comments of a DSL source: `#` outside a string, to the end of its line.
pub fn comments(text: &str) -> Vec<crate::print::Comment> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut quote) = (0, None);
    while i < b.len() {
        match (quote, b[i]) {
            (Some(_), b'\\') => i += 1,
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, q @ (b'"' | b'\'')) => quote = Some(q),
            (None, b'#') => {
                out.push(crate::print::Comment::at(text, i));
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Statements whose value is a text in double quotes (`text_kw` in the grammar).
const TEXT_WORDS: [&str; 8] = ["say", "ask", "image", "reprompt", "http", "body", "handoff", "reason"];

/// A pair's text without the whitespace and comments pest skipped after its last token
/// (a non-atomic rule that ends in an optional or repeated part keeps them). Everything
/// after its last token is punctuation (`)`, `]`, a string's closing quote) or skipped
/// trivia, and holds no string, so a `#` there always starts a comment.
fn content<'i>(p: &Pair<'i, Rule>) -> &'i str {
    let (start, text) = (p.as_span().start(), p.as_str());
    // Inner rules can end in skipped trivia too; tokens (pairs with no inner pairs) cannot.
    let inner = p
        .clone()
        .into_inner()
        .flatten()
        .filter(|q| q.clone().into_inner().next().is_none())
        .map(|q| q.as_span().end())
        .max()
        .map_or(0, |e| e - start);
    let tail = &text.as_bytes()[inner..];
    let (mut i, mut end) = (0, 0);
    while i < tail.len() {
        match tail[i] {
            b'#' => {
                while i < tail.len() && tail[i] != b'\n' {
                    i += 1;
                }
            }
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            _ => {
                i += 1;
                end = i;
            }
        }
    }
    &text[..inner + end]
}

/// `text` up to a comment (`#` outside a string).
fn without_comment(text: &str) -> &str {
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => return &text[..i],
            _ => {}
        }
    }
    text
}

/// Where the double-quoted string `text` starts with ends: the byte of its closing quote
/// (`None`: it is never closed).
fn string_end(text: &str) -> Option<usize> {
    let rest = text.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The inside of `text` when it is one double-quoted string, maybe followed by a comment.
fn lone_string(text: &str) -> Option<&str> {
    let end = string_end(text)?;
    let after = text[end + 1..].trim_start();
    (after.is_empty() || after.starts_with('#')).then_some(&text[1..end])
}

/// A mapping under construction, keeping keys in order.
#[derive(Default)]
struct Map {
    pairs: Vec<(Node, Node)>,
}

impl Map {
    fn push(&mut self, key: Node, value: Node) {
        self.pairs.push((key, value));
    }

    /// The value under `key`, created (with `empty`) at the first statement that uses it.
    fn gather(&mut self, key: Node, empty: Value) -> &mut Node {
        let i = match self.pairs.iter().position(|(k, _)| k.as_str() == key.as_str()) {
            Some(i) => i,
            None => {
                let span = key.span;
                self.pairs.push((key, Node { value: empty, span, origin: Origin::Unknown }));
                self.pairs.len() - 1
            }
        };
        &mut self.pairs[i].1
    }

    fn gather_entry(&mut self, key: Node, k: Node, v: Node) {
        if let Value::Map(m) = &mut self.gather(key, Value::Map(Vec::new())).value {
            m.push((k, v));
        }
    }

    fn gather_item(&mut self, key: Node, item: Node) {
        if let Value::Seq(items) = &mut self.gather(key, Value::Seq(Vec::new())).value {
            items.push(item);
        }
    }

    fn into_node(self, span: Span) -> Node {
        Node { value: Value::Map(self.pairs), span, origin: Origin::Unknown }
    }
}

struct Builder {
    file: FileId,
    /// The first mistake the grammar lets through as an unknown statement: a node whose `}`
    /// is missing (a `node`, `var`, ... inside it), or a string that is never closed.
    syntax: std::cell::RefCell<Option<Diagnostic>>,
}

/// The statements of a node's body (flow.pest's `node_stmt`).
const NODE_WORDS: &[&str] = &[
    "say",
    "ask",
    "image",
    "reprompt",
    "http",
    "body",
    "handoff",
    "reason",
    "next",
    "into",
    "on_invalid",
    "on_timeout",
    "on_error",
    "goto",
    "call",
    "method",
    "expect",
    "buttons",
    "retries",
    "timeout",
    "wait",
    "branch",
    "when",
    "else",
    "set",
    "with",
    "return",
    "header",
    "end",
];

/// A `set` value runs on over line ends (`set total = price +` and `tax` on the next line),
/// so one left unfinished swallows the statement on the next line (`next done`): `next`
/// becomes the value's last word and `done` an unknown statement. For a value whose last
/// token, at `lo..hi` of `input`, is a variable: when it is a statement's word alone at the
/// start of a later line than the value's `start`, and after it on that line comes what that
/// statement takes (a name that is not itself a statement, a number or a string), that word
/// and where it is. A variable named like a statement stays usable: inside the value, at its
/// end with nothing after it, or followed by the next statement, it is a variable.
fn statement_swallowed(input: &str, start: usize, lo: usize, hi: usize) -> Option<(usize, &str)> {
    let word = &input[lo..hi];
    if !NODE_WORDS.contains(&word) {
        return None;
    }
    let before = &input[start..lo];
    let line_start = before.rfind('\n')? + 1;
    if !before[line_start..].trim().is_empty() {
        return None;
    }
    let after = input[hi..].trim_start_matches([' ', '\t']);
    let next_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
    let takes = if next_len > 0 { !NODE_WORDS.contains(&&after[..next_len]) } else { after.starts_with('"') };
    takes.then_some((lo, word))
}

/// Words for a duration's unit that an author may write apart from its number (`10 m`).
const UNITS: &[&str] = &[
    "s", "sec", "secs", "second", "seconds", "m", "min", "mins", "minute", "minutes", "h", "hr", "hrs", "hour",
    "hours", "d", "day", "days",
];

/// Statements that begin a file's or sub-flow's lines, never a node's.
const OUTER: &[&str] = &["node", "var", "subflow", "import", "param", "flow", "channels", "description"];

impl Builder {
    fn span(&self, p: &Pair<'_, Rule>) -> Span {
        Span::new(self.file, p.as_span().start(), p.as_span().end())
    }

    /// An unquoted value: a name, number, duration or expression source. Expression pairs
    /// can end in the whitespace and comments pest skipped after them, which are not part
    /// of the value.
    fn plain(&self, p: &Pair<'_, Rule>) -> Node {
        let text = content(p);
        let lo = p.as_span().start();
        let s = Span::new(self.file, lo, lo + text.len());
        Node { value: Value::Scalar { text: text.into(), quoted: false }, span: s, origin: Origin::At(s.lo) }
    }

    /// A keyword as a key node; `as_key` renames it (`header` gathers under `headers`).
    fn key(&self, p: &Pair<'_, Rule>, as_key: &str) -> Node {
        Node {
            value: Value::Scalar { text: as_key.into(), quoted: false },
            span: self.span(p),
            origin: Origin::Unknown,
        }
    }

    fn string(&self, p: &Pair<'_, Rule>) -> Node {
        let inner = p.clone().into_inner().next().expect("dstring has its inner text");
        let raw = inner.as_str();
        self.escapes(raw, inner.as_span().start());
        Node {
            value: Value::Scalar { text: unescape(raw), quoted: true },
            span: self.span(p),
            origin: dsl_origin(raw, inner.as_span().start() as u32),
        }
    }

    /// An escape the language does not define (`\q`), in a string whose raw text starts at
    /// byte `at`: a syntax error, as in YAML.
    fn escapes(&self, raw: &str, at: usize) {
        if let Some((i, len)) = bad_escape(raw)
            && self.syntax.borrow().is_none()
        {
            let span = Span::new(self.file, at + i, at + i + len);
            *self.syntax.borrow_mut() = Some(
                Diagnostic::error("E0002", span, "syntax error")
                    .label(format!("`{}` is not an escape", &raw[i..i + len]))
                    .help(format!("the escapes are {ESCAPES}; write `\\\\` for a backslash")),
            );
        }
    }

    fn null(&self, p: &Pair<'_, Rule>) -> Node {
        Node { value: Value::Null, span: self.span(p), origin: Origin::Unknown }
    }

    fn seq(&self, items: Vec<Node>, span: Span) -> Node {
        Node { value: Value::Seq(items), span, origin: Origin::Unknown }
    }

    fn map(&self, pairs: Vec<(Node, Node)>, span: Span) -> Node {
        Node { value: Value::Map(pairs), span, origin: Origin::Unknown }
    }

    /// `var name: type = default` as the YAML form writes it: `name: type`, or
    /// `name: { type: type, default: value }`.
    fn decl(&self, p: Pair<'_, Rule>) -> (Node, Node) {
        let mut it = p.into_inner();
        let kw = it.next().expect("keyword");
        let name = self.plain(&it.next().expect("name"));
        let ty = self.plain(&it.next().expect("type"));
        let value = match it.next() {
            None => ty,
            Some(default) => {
                let dspan = self.plain(&default).span;
                let type_key = Node {
                    value: Value::Scalar { text: "type".into(), quoted: false },
                    span: ty.span,
                    origin: Origin::Unknown,
                };
                let default_key = Node {
                    value: Value::Scalar { text: "default".into(), quoted: false },
                    span: dspan,
                    origin: Origin::Unknown,
                };
                self.map(vec![(type_key, ty), (default_key, self.literal(default))], self.span(&kw))
            }
        };
        (name, value)
    }

    /// A default value written as an expression, in the shape the YAML form writes it.
    fn literal(&self, p: Pair<'_, Rule>) -> Node {
        let span = self.span(&p);
        // Descend through the single-child wrappers of the expression grammar.
        let mut cur = p.clone();
        loop {
            let mut inner = cur.clone().into_inner();
            match (cur.as_rule(), inner.next(), inner.next()) {
                (Rule::string, Some(i), _) => {
                    self.escapes(i.as_str(), i.as_span().start());
                    return Node {
                        value: Value::Scalar { text: unescape(i.as_str()), quoted: true },
                        span,
                        origin: Origin::Unknown,
                    };
                }
                (Rule::string, None, _) => {
                    return Node {
                        value: Value::Scalar { text: Default::default(), quoted: true },
                        span,
                        origin: Origin::Unknown,
                    };
                }
                (Rule::list, ..) => {
                    let items = cur.into_inner().map(|i| self.literal(i)).collect();
                    return self.seq(items, span);
                }
                (_, Some(only), None) if !matches!(cur.as_rule(), Rule::unary) || content(&cur) == content(&only) => {
                    cur = only
                }
                _ => break,
            }
        }
        let plain = self.plain(&p);
        match &plain.value {
            Value::Scalar { text, .. } if text.parse::<f64>().is_ok() || text == "true" || text == "false" => plain,
            // A name, `null` or a call is not a plain value: the tree refuses it as a default
            // of any type (in YAML, `null` is refused the same way).
            _ => Node { value: Value::Null, span: plain.span, origin: Origin::Unknown },
        }
    }

    fn top(&self, top: &mut Map, stmt: Pair<'_, Rule>) {
        let rule = stmt.as_rule();
        let span = self.span(&stmt);
        match rule {
            Rule::flow_stmt | Rule::description | Rule::start | Rule::returns => {
                let mut it = stmt.into_inner();
                let kw = it.next().expect("keyword");
                let key = self.key(&kw, kw.as_str());
                let v = it.next().expect("value");
                let value = if v.as_rule() == Rule::dstring { self.string(&v) } else { self.plain(&v) };
                top.push(key, value);
            }
            Rule::channels => {
                let mut it = stmt.into_inner();
                let kw = it.next().expect("keyword");
                let items = it.map(|c| self.plain(&c)).collect();
                top.push(self.key(&kw, "channels"), self.seq(items, span));
            }
            Rule::import => {
                let mut it = stmt.into_inner();
                let kw = it.next().expect("keyword");
                let path = self.string(&it.next().expect("path"));
                top.gather_item(self.key(&kw, "imports"), path);
            }
            Rule::var_decl | Rule::param_decl => {
                let kw = stmt.clone().into_inner().next().expect("keyword");
                let key = self.key(&kw, if rule == Rule::var_decl { "vars" } else { "params" });
                let (name, value) = self.decl(stmt);
                top.gather_entry(key, name, value);
            }
            Rule::node => {
                let mut it = stmt.into_inner();
                let kw = it.next().expect("keyword");
                let name = self.plain(&it.next().expect("name"));
                let mut body = Map::default();
                let mut duration: Option<&str> = None;
                for s in it {
                    let word = s.as_str().split_whitespace().next().unwrap_or_default();
                    // `wait 10 m`: the number is the duration and `m …` an unknown statement
                    // that takes the rest of the line with it.
                    if let Some(number) = duration.take()
                        && s.as_rule() == Rule::other_stmt
                        && UNITS.contains(&word)
                        && self.syntax.borrow().is_none()
                    {
                        let at = Span::new(self.file, s.as_span().start(), s.as_span().start() + word.len());
                        *self.syntax.borrow_mut() = Some(
                            Diagnostic::error("E0002", at, "syntax error")
                                .label(format!("`{number} {word}`: a duration's unit follows its number with no space"))
                                .help(format!("write `{number}{}`", &word[..1])),
                        );
                    }
                    if matches!(s.as_rule(), Rule::wait | Rule::timeout) {
                        duration = s
                            .clone()
                            .into_inner()
                            .nth(1)
                            .map(|d| d.as_str())
                            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
                    }
                    if s.as_rule() == Rule::other_stmt && OUTER.contains(&word) && self.syntax.borrow().is_none() {
                        let node = name.as_str().unwrap_or_default();
                        let at = Span::new(self.file, s.as_span().start(), s.as_span().start() + word.len());
                        *self.syntax.borrow_mut() = Some(
                            Diagnostic::error("E0002", at, "syntax error")
                                .label(format!("`{word}` inside node `{node}`: its `}}` is missing"))
                                .help(format!("close node `{node}` with `}}` before this line")),
                        );
                    }
                    self.node_stmt(&mut body, s);
                }
                top.gather_entry(self.key(&kw, "nodes"), name, body.into_node(span));
            }
            Rule::subflow => {
                let mut it = stmt.into_inner();
                let kw = it.next().expect("keyword");
                let name = self.plain(&it.next().expect("name"));
                let mut body = Map::default();
                for s in it {
                    self.top(&mut body, s);
                }
                top.gather_entry(self.key(&kw, "subflows"), name, body.into_node(span));
            }
            _ => {}
        }
    }

    fn node_stmt(&self, body: &mut Map, stmt: Pair<'_, Rule>) {
        let rule = stmt.as_rule();
        let span = self.span(&stmt);
        if rule == Rule::other_stmt {
            // An unknown statement: the tree builder reports it as an unknown field.
            let mut it = stmt.clone().into_inner();
            let name = it.next().expect("name");
            let rest = without_comment(&stmt.as_str()[name.as_str().len()..]);
            let trimmed = rest.trim();
            let lo = name.as_span().end() + (rest.len() - rest.trim_start().len());
            if trimmed.starts_with('"') && string_end(trimmed).is_none() && self.syntax.borrow().is_none() {
                let at = Span::new(self.file, lo, lo + 1);
                *self.syntax.borrow_mut() = Some(
                    Diagnostic::error("E0002", at, "syntax error")
                        .label("this string is never closed")
                        .help("end it with `\"` (write `\\\"` for a quote inside it)"),
                );
            }
            let value = if trimmed.is_empty() {
                self.null(&name)
            } else if let Some(inner) = lone_string(trimmed) {
                // `sya "hello"`: the string, as the misspelt statement would have read it.
                let s = Span::new(self.file, lo, lo + inner.len() + 2);
                Node {
                    value: Value::Scalar { text: unescape(inner), quoted: true },
                    span: s,
                    origin: dsl_origin(inner, lo as u32 + 1),
                }
            } else {
                let s = Span::new(self.file, lo, lo + trimmed.len());
                // `say hello`: a text statement's text is a string; unquoted, it would run on
                // to the end of the line and take the statements after it.
                let word = name.as_str();
                if TEXT_WORDS.contains(&word) && self.syntax.borrow().is_none() {
                    let first = trimmed.split_whitespace().next().unwrap_or(trimmed);
                    *self.syntax.borrow_mut() = Some(
                        Diagnostic::error("E0002", Span::new(self.file, lo, lo + first.len()), "syntax error")
                            .label(format!("`{word}` takes a text in double quotes"))
                            .help(format!("write `{word} \"{first} …\"`; the text ends at its closing quote")),
                    );
                }
                Node { value: Value::Scalar { text: trimmed.into(), quoted: false }, span: s, origin: Origin::At(s.lo) }
            };
            body.push(self.key(&name, name.as_str()), value);
            return;
        }
        let mut it = stmt.into_inner();
        let mut kw = it.next().expect("every statement starts with its keyword");
        // `text_stmt`/`name_stmt` wrap the keyword in a `text_kw`/`name_kw` pair.
        if matches!(kw.as_rule(), Rule::text_kw | Rule::name_kw) {
            kw = kw.into_inner().next().expect("keyword");
        }
        let word = kw.as_str();
        match rule {
            Rule::text_stmt => body.push(self.key(&kw, word), self.string(&it.next().expect("text"))),
            Rule::name_stmt | Rule::retries | Rule::timeout | Rule::wait | Rule::else_stmt => {
                body.push(self.key(&kw, word), self.plain(&it.next().expect("value")))
            }
            Rule::expect => {
                let v = it.next().expect("answer type");
                let value = match v.as_rule() {
                    Rule::expect_choice | Rule::expect_regex => {
                        let vspan = self.span(&v);
                        let mut parts = v.into_inner();
                        let k = parts.next().expect("choice/regex keyword");
                        let strings: Vec<Node> = parts.map(|s| self.string(&s)).collect();
                        let inner = if k.as_rule() == Rule::k_choice {
                            self.seq(strings, vspan)
                        } else {
                            strings.into_iter().next().expect("regex has a pattern")
                        };
                        self.map(vec![(self.key(&k, k.as_str()), inner)], vspan)
                    }
                    _ => self.plain(&v),
                };
                body.push(self.key(&kw, "expect"), value);
            }
            Rule::buttons => {
                let items = it.map(|b| self.button(b)).collect();
                body.push(self.key(&kw, "buttons"), self.seq(items, span));
            }
            Rule::branch => {
                body.gather(self.key(&kw, "branch"), Value::Seq(Vec::new()));
            }
            Rule::when => {
                let cond = self.plain(&it.next().expect("condition"));
                let goto_kw = it.next().expect("goto");
                let target = self.plain(&it.next().expect("target"));
                let case = self.map(vec![(self.key(&kw, "when"), cond), (self.key(&goto_kw, "goto"), target)], span);
                // `when` belongs to a `branch`; elsewhere it is an unknown field of that node.
                if body.pairs.iter().any(|(k, _)| k.as_str() == Some("branch")) {
                    body.gather_item(self.key(&kw, "branch"), case);
                } else {
                    body.push(self.key(&kw, "when"), case);
                }
            }
            Rule::set => {
                let var = it.next().expect("variable");
                let expr = it.next().expect("expression");
                // The value's last token: the rightmost leaf of its tree.
                let last = expr.clone().into_inner().flatten().last().filter(|t| t.as_rule() == Rule::ident);
                let (input, start) = (expr.as_span().get_input(), expr.as_span().start());
                if let Some(last) = last
                    && let Some((lo, word)) =
                        statement_swallowed(input, start, last.as_span().start(), last.as_span().end())
                    && self.syntax.borrow().is_none()
                {
                    *self.syntax.borrow_mut() = Some(
                        Diagnostic::error("E0002", Span::new(self.file, lo, lo + word.len()), "syntax error")
                            .label(format!(
                                "`{word}` starts a statement, but it was read as part of the value of `set {}`",
                                var.as_str()
                            ))
                            .help("the line before ends in the middle of an expression (an operator at its end?): finish the value on its line"),
                    );
                }
                let name = self.plain(&var);
                let value = self.plain(&expr);
                body.gather_entry(self.key(&kw, "set"), name, value);
            }
            Rule::with => {
                let args = it
                    .map(|a| {
                        let mut p = a.into_inner();
                        let name = self.plain(&p.next().expect("parameter"));
                        (name, self.plain(&p.next().expect("argument")))
                    })
                    .collect();
                body.push(self.key(&kw, "with"), self.map(args, span));
            }
            Rule::header => {
                let name = self.string(&it.next().expect("header name"));
                let value = self.string(&it.next().expect("header value"));
                body.gather_entry(self.key(&kw, "headers"), name, value);
            }
            Rule::return_stmt => {
                let value = match it.next() {
                    Some(e) => self.plain(&e),
                    None => self.null(&kw),
                };
                body.push(self.key(&kw, "return"), value);
            }
            Rule::end => body.push(self.key(&kw, "end"), self.null(&kw)),
            _ => {}
        }
    }

    /// `"Label"`, `"Label" = "value"` or `"Label" url "https://..."`.
    fn button(&self, b: Pair<'_, Rule>) -> Node {
        let span = self.span(&b);
        let mut it = b.into_inner();
        let label_pair = it.next().expect("label");
        let label = self.string(&label_pair);
        let mut fields = vec![(self.key(&label_pair, "label"), label.clone())];
        while let Some(p) = it.next() {
            if p.as_rule() == Rule::k_url {
                let url = it.next().expect("a url after `url`");
                fields.push((self.key(&p, "url"), self.string(&url)));
            } else {
                fields.push((self.key(&p, "value"), self.string(&p)));
            }
        }
        if fields.len() == 1 { label } else { self.map(fields, span) }
    }
}

/// Where a DSL string's decoded text is in the source: every escape is two bytes
/// (`\\n`, `\\"`, ...) that decode to one character.
fn dsl_origin(raw: &str, start: u32) -> Origin {
    if !raw.contains('\\') {
        return Origin::At(start);
    }
    let mut map = Vec::with_capacity(raw.len() + 1);
    let mut chars = raw.char_indices();
    while let Some((i, c)) = chars.next() {
        let at = start + i as u32;
        if c == '\\' {
            let Some((_, e)) = chars.next() else { break };
            let produced = match e {
                'n' | 't' | 'r' => 1,
                other => other.len_utf8(),
            };
            map.extend(std::iter::repeat_n(at, produced));
        } else {
            map.extend((0..c.len_utf8() as u32).map(|k| at + k));
        }
    }
    map.push(start + raw.len() as u32);
    Origin::Mapped(map)
}
