//! `botc test`: conversation tests in `NAME.test.yaml` files next to the flows.
//!
//! A test file names its flow and holds tests; a test is a list of steps, each one input
//! (user text, a button, the clock moving on, an http response, a hand-back) and what the
//! bot must do in answer. Tests run on the real VM through [`botc_runtime::sim`].

use botc_compiler::yaml::{self, Node, Value as Y};
use botc_runtime::sim::{Conversation, Reply};
use botc_runtime::{Context, Loaded, Value};
use serde_json::{Value as Json, json};
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub struct TestFile {
    pub flow: PathBuf,
    pub tests: Vec<Test>,
}

pub struct Test {
    pub name: String,
    pub line: usize,
    pub user: Context,
    pub start: Option<String>,
    pub vars: Vec<(String, Node)>,
    pub steps: Vec<TestStep>,
}

pub enum Action {
    /// Begin at a node (the first step only), so its messages can be checked.
    Start(String),
    User(String),
    Button(String),
    Advance(u64),
    Http(u16, Json),
    HandBack,
}

pub enum Matcher {
    Exact(String),
    Contains(String),
    Matches(regex::Regex),
}

pub struct TestStep {
    pub line: usize,
    pub action: Action,
    pub bot: Option<Vec<Matcher>>,
    pub buttons: Option<Vec<String>>,
    pub vars: Vec<(String, Node)>,
    pub ended: Option<bool>,
    pub waiting: Option<String>,
    pub request: Option<String>,
    pub handoff: Option<String>,
}

/// A test file that could not be read, with the line at fault.
pub struct SpecError {
    pub line: usize,
    pub message: String,
}

fn err<T>(n: &Node, text: &str, message: impl Into<String>) -> Result<T, SpecError> {
    let line = text[..(n.span.lo as usize).min(text.len())].matches('\n').count() + 1;
    Err(SpecError { line, message: message.into() })
}

fn line_of(n: &Node, text: &str) -> usize {
    text[..(n.span.lo as usize).min(text.len())].matches('\n').count() + 1
}

fn map<'a>(n: &'a Node, text: &str, what: &str, allowed: &[&str]) -> Result<Vec<(&'a str, &'a Node)>, SpecError> {
    let Y::Map(pairs) = &n.value else { return err(n, text, format!("{what} must be a mapping")) };
    let mut out = Vec::new();
    for (k, v) in pairs {
        let Some(key) = k.as_str() else { return err(k, text, "keys must be names") };
        if !allowed.contains(&key) {
            return err(k, text, format!("unknown key `{key}` in {what}; expected one of: {}", allowed.join(", ")));
        }
        out.push((key, v));
    }
    Ok(out)
}

fn scalar(n: &Node, text: &str, what: &str) -> Result<String, SpecError> {
    match &n.value {
        Y::Scalar { text: s, .. } => Ok(s.to_string()),
        _ => err(n, text, format!("{what} must be a single value")),
    }
}

/// A YAML value as JSON, typing plain scalars like YAML's core schema.
pub fn to_json(n: &Node) -> Json {
    match &n.value {
        Y::Null => Json::Null,
        Y::Scalar { text, quoted: true } => json!(text.as_str()),
        Y::Scalar { text, quoted: false } => match text.as_str() {
            "true" => json!(true),
            "false" => json!(false),
            t => t
                .parse::<i64>()
                .map(|i| json!(i))
                // `nan`, `inf` and the like stay text: JSON has no such numbers.
                .or_else(|_| t.parse::<f64>().ok().filter(|f| f.is_finite()).map(|f| json!(f)).ok_or(()))
                .unwrap_or_else(|_| json!(t)),
        },
        Y::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Y::Map(pairs) => {
            Json::Object(pairs.iter().map(|(k, v)| (k.as_str().unwrap_or_default().to_string(), to_json(v))).collect())
        }
    }
}

pub fn parse(path: &Path, text: &str) -> Result<TestFile, SpecError> {
    let root = yaml::parse(botc_compiler::FileId(0), text).map_err(|d| SpecError {
        line: text[..(d.span.lo as usize).min(text.len())].matches('\n').count() + 1,
        message: d.message,
    })?;
    let top = map(&root, text, "a test file", &["flow", "tests"])?;
    let get = |k: &str| top.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let Some(flow) = get("flow") else { return err(&root, text, "a test file needs `flow: <path to the flow>`") };
    let flow = path.parent().unwrap_or(Path::new("")).join(scalar(flow, text, "`flow`")?);
    let Some(Node { value: Y::Seq(items), .. }) = get("tests") else {
        return err(&root, text, "a test file needs `tests:`, a list of tests");
    };
    let mut tests = Vec::new();
    for t in items {
        let fields = map(t, text, "a test", &["name", "user", "start", "vars", "steps"])?;
        let mut test = Test {
            name: String::new(),
            line: line_of(t, text),
            user: Context::default(),
            start: None,
            vars: Vec::new(),
            steps: Vec::new(),
        };
        test.user.user_id = "test-user".into();
        test.user.user_name = "Test User".into();
        test.user.platform = "web".into();
        test.user.bot_id = "test-bot".into();
        test.user.bot_name = "Test Bot".into();
        for (k, v) in fields {
            match k {
                "name" => test.name = scalar(v, text, "`name`")?,
                "start" => test.start = Some(scalar(v, text, "`start`")?),
                "user" => {
                    for (uk, uv) in map(v, text, "`user`", &["id", "name", "language", "platform"])? {
                        let s = scalar(uv, text, uk)?;
                        match uk {
                            "id" => test.user.user_id = s,
                            "name" => test.user.user_name = s,
                            "language" => test.user.user_language = s,
                            _ => test.user.platform = s,
                        }
                    }
                }
                "vars" => test.vars = vars(v, text)?,
                _ => {
                    let Y::Seq(steps) = &v.value else { return err(v, text, "`steps` must be a list") };
                    for s in steps {
                        test.steps.push(step(s, text)?);
                    }
                }
            }
        }
        if test.name.is_empty() {
            return err(t, text, "every test needs a `name`");
        }
        tests.push(test);
    }
    Ok(TestFile { flow, tests })
}

fn boolean(n: &Node, text: &str, what: &str) -> Result<bool, SpecError> {
    match scalar(n, text, what)?.as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        other => err(n, text, format!("{what} is `true` or `false`, not `{other}`")),
    }
}

fn vars(v: &Node, text: &str) -> Result<Vec<(String, Node)>, SpecError> {
    let Y::Map(pairs) = &v.value else { return err(v, text, "`vars` must map variable names to values") };
    pairs.iter().map(|(k, v)| Ok((scalar(k, text, "a variable name")?, v.clone()))).collect()
}

const STEP_KEYS: &[&str] = &[
    "start", "user", "button", "advance", "http", "handback", "bot", "buttons", "vars", "ended", "waiting", "request",
    "handoff",
];

fn step(s: &Node, text: &str) -> Result<TestStep, SpecError> {
    let fields = map(s, text, "a step", STEP_KEYS)?;
    let mut action = None;
    let mut out = TestStep {
        line: line_of(s, text),
        action: Action::HandBack,
        bot: None,
        buttons: None,
        vars: Vec::new(),
        ended: None,
        waiting: None,
        request: None,
        handoff: None,
    };
    for (k, v) in fields {
        let a = match k {
            "start" => Some(Action::Start(scalar(v, text, "`start`")?)),
            "user" => Some(Action::User(scalar(v, text, "`user`")?)),
            "button" => Some(Action::Button(scalar(v, text, "`button`")?)),
            "advance" => {
                let d = scalar(v, text, "`advance`")?;
                let secs = botc_compiler::ast::parse_duration(&d)
                    .map_err(|e| SpecError { line: line_of(v, text), message: format!("`advance: {d}`: {e}") })?;
                Some(Action::Advance(secs))
            }
            "http" => Some(match &v.value {
                Y::Scalar { text: t, .. } if t == "error" => Action::Http(0, Json::Null),
                _ => {
                    let mut status = 200;
                    let mut body = Json::Null;
                    for (hk, hv) in map(v, text, "`http`", &["status", "body"])? {
                        if hk == "status" {
                            status = scalar(hv, text, "`status`")?.parse().map_err(|_| SpecError {
                                line: line_of(hv, text),
                                message: "`status` must be a number".into(),
                            })?;
                        } else {
                            body = to_json(hv);
                        }
                    }
                    Action::Http(status, body)
                }
            }),
            "handback" => {
                if !boolean(v, text, "`handback`")? {
                    return err(v, text, "`handback` is an input: write `handback: true`");
                }
                Some(Action::HandBack)
            }
            "bot" => {
                let Y::Seq(items) = &v.value else { return err(v, text, "`bot` lists the expected messages") };
                let mut ms = Vec::new();
                for i in items {
                    ms.push(match &i.value {
                        Y::Scalar { text: t, .. } => Matcher::Exact(t.to_string()),
                        Y::Map(_) => {
                            let m = map(i, text, "a message matcher", &["contains", "matches"])?;
                            if m.len() != 1 {
                                return err(i, text, "a message matcher has one key: `contains` or `matches`");
                            }
                            let (kind, val) = m
                                .first()
                                .ok_or_else(|| SpecError { line: line_of(i, text), message: "empty matcher".into() })?;
                            let val = scalar(val, text, kind)?;
                            if *kind == "contains" {
                                Matcher::Contains(val)
                            } else {
                                Matcher::Matches(regex::Regex::new(&val).map_err(|e| SpecError {
                                    line: line_of(i, text),
                                    message: format!("invalid regex: {e}"),
                                })?)
                            }
                        }
                        _ => return err(i, text, "a message is a text, `{contains: ...}` or `{matches: ...}`"),
                    });
                }
                out.bot = Some(ms);
                None
            }
            "buttons" => {
                let Y::Seq(items) = &v.value else { return err(v, text, "`buttons` lists button labels") };
                out.buttons = Some(items.iter().map(|i| scalar(i, text, "a button label")).collect::<Result<_, _>>()?);
                None
            }
            "vars" => {
                out.vars = vars(v, text)?;
                None
            }
            "ended" => {
                out.ended = Some(boolean(v, text, "`ended`")?);
                None
            }
            "waiting" => {
                out.waiting = Some(scalar(v, text, "`waiting`")?);
                None
            }
            "request" => {
                out.request = Some(scalar(v, text, "`request`")?);
                None
            }
            _ => {
                out.handoff = Some(scalar(v, text, "`handoff`")?);
                None
            }
        };
        if let Some(a) = a {
            if action.is_some() {
                return err(s, text, "a step has one input: user, button, advance, http or handback");
            }
            action = Some(a);
        }
    }
    out.action = action.ok_or_else(|| SpecError {
        line: out.line,
        message: "a step needs an input: user, button, advance, http or handback".into(),
    })?;
    Ok(out)
}

/// A variable's expected or initial value, typed like the variable.
fn typed(n: &Node, like: Option<&Value>) -> Value {
    // A text variable takes a scalar exactly as written (`01234` stays `01234`).
    if let (Some(Value::Text(_)), Y::Scalar { text, .. }) = (like, &n.value) {
        return Value::Text(text.to_string());
    }
    let j = to_json(n);
    match (like, &j) {
        (Some(Value::Text(_)) | None, Json::String(s)) => Value::Text(s.clone()),
        (Some(Value::Text(_)), other) => Value::Text(match other {
            Json::Null => String::new(),
            o => o.to_string(),
        }),
        (Some(Value::Num(_)), Json::Number(x)) => Value::Num(x.as_f64().unwrap_or(0.0)),
        (Some(Value::Json(_)), other) => Value::Json(other.clone()),
        _ => Value::from_json(&j),
    }
}

/// The outcome of one test.
pub struct Outcome {
    pub name: String,
    pub failure: Option<String>,
    pub steps: usize,
}

/// What coverage a flow got from its tests.
#[derive(Default)]
pub struct Coverage {
    pub nodes: BTreeSet<u32>,
    pub edges: BTreeSet<(u32, u32)>,
}

fn describe(a: &Action) -> String {
    match a {
        Action::Start(n) => format!("start at {n}"),
        Action::User(t) => format!("user {t:?}"),
        Action::Button(b) => format!("button {b:?}"),
        Action::Advance(s) => format!("advance {}", botc_compiler::ast::format_duration(*s)),
        Action::Http(0, _) => "http error".into(),
        Action::Http(s, _) => format!("http {s}"),
        Action::HandBack => "handback".into(),
    }
}

fn matches(m: &Matcher, text: &str) -> bool {
    match m {
        Matcher::Exact(s) => s == text,
        Matcher::Contains(s) => text.contains(s.as_str()),
        Matcher::Matches(r) => r.is_match(text),
    }
}

fn show(m: &Matcher) -> String {
    match m {
        Matcher::Exact(s) => format!("{s:?}"),
        Matcher::Contains(s) => format!("(contains) {s:?}"),
        Matcher::Matches(r) => format!("(matches) /{}/", r.as_str()),
    }
}

pub fn run(program: &Loaded, test: &Test, coverage: &mut Coverage) -> Outcome {
    let mut c = Conversation::new(program, test.user.clone());
    let fail = |msg: String| Outcome { name: test.name.clone(), failure: Some(msg), steps: test.steps.len() };
    let flow_vars = flow_var_types(program);
    let vars: Vec<(String, Value)> = test
        .vars
        .iter()
        .map(|(k, v)| (k.clone(), typed(v, flow_vars.iter().find(|(n, _)| n == k).map(|(_, t)| t))))
        .collect();
    let starts_in_steps = test.steps.first().is_some_and(|s| matches!(s.action, Action::Start(_)));
    if !vars.is_empty() && test.start.is_none() && !starts_in_steps {
        return fail(format!("line {}: `vars` needs `start` (the node to begin at)", test.line));
    }
    // Edges are counted within each flow: a call's sub-flow runs between the call node
    // and the node after it.
    let mut last: std::collections::HashMap<u16, u32> = std::collections::HashMap::new();
    let p = program.program();
    let mut record = |coverage: &mut Coverage, visited: &[u32]| {
        for &n in visited {
            coverage.nodes.insert(n);
            let flow = p.nodes.get(n as usize).map_or(0, |node| node.flow);
            if let Some(prev) = last.insert(flow, n) {
                coverage.edges.insert((prev, n));
            }
        }
    };
    if let Some(start) = &test.start {
        match c.start_at(start, &vars) {
            Ok(r) => record(coverage, &r.visited),
            Err(e) => return fail(format!("line {}: cannot start at `{start}`: {e}", test.line)),
        }
    }
    for (i, s) in test.steps.iter().enumerate() {
        let at = format!("step {} (line {}): {}", i + 1, s.line, describe(&s.action));
        let result = match &s.action {
            Action::Start(node) if i == 0 && test.start.is_none() => match c.start_at(node, &vars) {
                Ok(r) => Ok(r),
                Err(e) => return fail(format!("{at}\n    cannot start there: {e}")),
            },
            Action::Start(_) => {
                return fail(format!("{at}\n    `start` can only be the first step of a test without `start`"));
            }
            Action::User(t) => c.user(t),
            Action::Button(b) => c.button(b),
            Action::Advance(secs) => c.advance(*secs),
            Action::Http(status, body) => c.http(*status, body.clone()),
            Action::HandBack => c.hand_back(),
        };
        let reply = match result {
            Ok(r) => r,
            Err(e) => return fail(format!("{at}\n    the flow failed: {e}")),
        };
        record(coverage, &reply.visited);
        if let Some(problem) = check(s, &reply, &c) {
            return fail(format!("{at}\n{problem}"));
        }
    }
    Outcome { name: test.name.clone(), failure: None, steps: test.steps.len() }
}

fn flow_var_types(program: &Loaded) -> Vec<(String, Value)> {
    let p = program.program();
    p.flows[0]
        .vars
        .iter()
        .map(|v| {
            let like = match v.ty {
                botc_bytecode::Ty::Text => Value::Text(String::new()),
                botc_bytecode::Ty::Number => Value::Num(0.0),
                botc_bytecode::Ty::Integer => Value::Int(0),
                botc_bytecode::Ty::Boolean => Value::Bool(false),
                botc_bytecode::Ty::List => Value::List(Vec::new()),
                botc_bytecode::Ty::Json => Value::Json(Json::Null),
            };
            (p.text(v.name).to_string(), like)
        })
        .collect()
}

/// What is wrong with a step's reply, as an expected-vs-actual report.
fn check(s: &TestStep, reply: &Reply, c: &Conversation<'_>) -> Option<String> {
    let mut out = String::new();
    let sent: Vec<&str> = reply.messages.iter().map(|m| m.text.as_str()).collect();
    if let Some(expected) = &s.bot {
        let ok = expected.len() == sent.len() && expected.iter().zip(&sent).all(|(m, t)| matches(m, t));
        if !ok {
            let _ = writeln!(out, "    bot messages differ:");
            let _ = writeln!(out, "      expected:");
            for m in expected {
                let _ = writeln!(out, "        - {}", show(m));
            }
            let _ = writeln!(out, "      actual:");
            if sent.is_empty() {
                let _ = writeln!(
                    out,
                    "        (no messages{})",
                    reply.ignored.first().map(|w| format!("; input ignored: {w}")).unwrap_or_default()
                );
            }
            for t in &sent {
                let _ = writeln!(out, "        - {t:?}");
            }
        }
    }
    if let Some(expected) = &s.buttons {
        let actual: Vec<&str> =
            reply.messages.last().map(|m| m.buttons.iter().map(|b| b.label.as_str()).collect()).unwrap_or_default();
        if *expected != actual {
            let _ = writeln!(out, "    buttons differ:\n      expected: {expected:?}\n      actual:   {actual:?}");
        }
    }
    let vars = c.vars();
    for (name, want) in &s.vars {
        match vars.iter().find(|(n, _)| n == name) {
            None => {
                let _ = writeln!(out, "    no variable `{name}` in the current flow");
            }
            Some((_, actual)) => {
                let want = typed(want, Some(actual));
                let same = match (&want, actual) {
                    (Value::Int(a), Value::Num(b)) | (Value::Num(b), Value::Int(a)) => (*a as f64) == *b,
                    (a, b) => a == b,
                };
                if !same {
                    let _ = writeln!(
                        out,
                        "    variable `{name}` differs:\n      expected: {}\n      actual:   {}",
                        show_value(&want),
                        show_value(actual)
                    );
                }
            }
        }
    }
    if let Some(ended) = s.ended
        && ended != c.ended()
    {
        let _ = writeln!(out, "    expected the conversation {}", if ended { "to have ended" } else { "to go on" });
    }
    if let Some(node) = &s.waiting {
        let actual = c.waiting_at();
        if actual != Some(node.as_str()) {
            let _ = writeln!(
                out,
                "    expected to wait at `{node}`, but {}",
                actual.map_or("it is not waiting".into(), |a| format!("it waits at `{a}`"))
            );
        }
    }
    if let Some(req) = &s.request {
        let found = reply.requests.iter().any(|r| match r {
            botc_runtime::Effect::Http { method, url, .. } => format!("{} {url}", method.name()).contains(req.as_str()),
            _ => false,
        });
        if !found {
            let _ = writeln!(out, "    expected an http request matching {req:?}; requests: {:?}", reply.requests);
        }
    }
    if let Some(q) = &s.handoff
        && !reply.handoffs.iter().any(|(queue, _)| queue == q)
    {
        let _ = writeln!(out, "    expected a handoff to `{q}`; handoffs: {:?}", reply.handoffs);
    }
    (!out.is_empty()).then_some(out)
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Text(s) => format!("{s:?}"),
        Value::Unset => "(unset)".into(),
        other => format!("{other} ({})", other.type_name()),
    }
}

/// Test files under the given paths (`*.test.yaml`), sorted.
pub fn find(paths: &[PathBuf]) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d)? {
                    let path = e?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path.to_string_lossy().ends_with(".test.yaml") {
                        out.push(path);
                    }
                }
            }
        } else {
            std::fs::metadata(p)?;
            out.push(p.clone());
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_scalars_become_json_as_yaml_types_them_and_nothing_json_cannot_hold() {
        let text = "a: 1\nb: 2.5\nc: true\nd: ~\ne: \"7\"\nf: nan\ng: inf\nh: .nan\ni: 1e3\nj: [x, null]\n";
        let root = yaml::parse(botc_compiler::FileId(0), text).expect("parses");
        assert_eq!(
            to_json(&root),
            json!({"a": 1, "b": 2.5, "c": true, "d": null, "e": "7", "f": "nan", "g": "inf", "h": ".nan", "i": 1000.0, "j": ["x", null]})
        );
    }
}
