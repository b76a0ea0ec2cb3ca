//! The `.botc` format: the contract between the compiler and every runtime worker.
//!
//! A [`Program`] is plain data. [`Program::encode`] writes it deterministically;
//! [`load`] decodes *and verifies* bytes, returning a [`Verified`] program, the only thing the
//! VM runs. The format is documented in docs/bytecode.md; the verifier's guarantees are listed
//! in [`verify`].

pub mod answers;
pub mod disasm;
pub mod format;
pub mod op;
pub mod verify;

pub use format::{FORMAT_VERSION, LoadError, MAGIC};
pub use op::{NONE, Op};
pub use verify::{Verified, load};

/// A compiled program: one flow with every sub-flow it calls linked in.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The main flow's name.
    pub name: String,
    /// SHA-256 of the encoded sections (everything after the header but debug spans): the
    /// same flow always hashes the same, whichever form it was written in. Sessions pin it.
    pub hash: [u8; 32],
    /// Every string the program uses, each once.
    pub consts: Vec<String>,
    /// Flow 0 is the main flow.
    pub flows: Vec<Flow>,
    /// Every node of every flow: name and code offset, for positions, metrics and migration.
    pub nodes: Vec<Node>,
    pub asks: Vec<Ask>,
    pub https: Vec<Http>,
    pub code: Vec<u8>,
    /// The deepest the operand stack gets; the verifier checks it.
    pub max_stack: u16,
    /// Source positions of nodes, when compiled with debug info.
    pub debug: Option<Vec<DebugSpan>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Flow {
    /// Text constant holding the flow's name.
    pub name: u32,
    /// The first `params` variables are parameters.
    pub params: u16,
    pub vars: Vec<Var>,
    /// `None` when the flow returns nothing.
    pub returns: Option<Ty>,
    /// Code offset where the flow starts (variable defaults, then its start node).
    pub entry: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Var {
    pub name: u32,
    pub ty: Ty,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    pub flow: u16,
    pub name: u32,
    pub offset: u32,
}

/// How an `ask` validates, where it goes next, and how it re-prompts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub node: u32,
    pub var: u16,
    pub expect: Expect,
    /// For [`Expect::Choice`]: the choices, as text constants.
    pub choices: Vec<u32>,
    pub retries: u8,
    /// Seconds; 0 for none.
    pub timeout: u32,
    /// Code offsets ([`NONE`] when absent).
    pub next: u32,
    pub on_invalid: u32,
    pub on_timeout: u32,
    /// Code that pushes the re-prompt text and queues its buttons, then re-executes `Ask`.
    pub reprompt: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Text,
    Number,
    Integer,
    Boolean,
    Email,
    /// One of [`Ask::choices`].
    Choice,
    /// Pattern in text constant `pattern`.
    Regex {
        pattern: u32,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Http {
    pub node: u32,
    pub method: Method,
    /// Header names (text constants); their values are on the stack.
    pub headers: Vec<u32>,
    pub body: bool,
    /// Variable receiving `{status, body}` (`u16::MAX` for none).
    pub var: u16,
    pub next: u32,
    pub on_error: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebugSpan {
    pub node: u32,
    pub line: u32,
    pub column: u32,
}

macro_rules! byte_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $code:literal => $text:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn code(self) -> u8 {
                match self { $($name::$variant => $code),* }
            }
            pub fn from_code(c: u8) -> Option<$name> {
                match c { $($code => Some($name::$variant),)* _ => None }
            }
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }
        }
    };
}

byte_enum!(
    /// Value types, as the variable table stores them.
    Ty { Text = 0 => "text", Number = 1 => "number", Integer = 2 => "integer", Boolean = 3 => "boolean", List = 4 => "list", Json = 5 => "json" }
);
byte_enum!(Method { Get = 0 => "GET", Post = 1 => "POST", Put = 2 => "PUT", Patch = 3 => "PATCH", Delete = 4 => "DELETE" });
byte_enum!(
    /// Operand of [`Op::Builtin`].
    Builtin {
        UserId = 0 => "user.id", UserName = 1 => "user.name", UserLanguage = 2 => "user.language",
        EventText = 3 => "event.text", EventPlatform = 4 => "event.platform",
        BotId = 5 => "bot.id", BotName = 6 => "bot.name", BotPlatform = 7 => "bot.platform",
    }
);
byte_enum!(UnOp { Not = 0 => "not", Neg = 1 => "neg" });
byte_enum!(
    /// Operand of [`Op::Binary`]. `Concat` joins two texts; `Add` is numeric.
    BinOp {
        Eq = 0 => "eq", Ne = 1 => "ne", Lt = 2 => "lt", Le = 3 => "le", Gt = 4 => "gt", Ge = 5 => "ge",
        In = 6 => "in", NotIn = 7 => "not_in", Add = 8 => "add", Sub = 9 => "sub", Mul = 10 => "mul",
        Div = 11 => "div", Rem = 12 => "rem", Concat = 13 => "concat",
    }
);
byte_enum!(
    /// Operand of [`Op::Call`].
    Func {
        Len = 0 => "len", Lower = 1 => "lower", Upper = 2 => "upper", Trim = 3 => "trim",
        Contains = 4 => "contains", StartsWith = 5 => "starts_with", EndsWith = 6 => "ends_with",
        Matches = 7 => "matches", Replace = 8 => "replace", Number = 9 => "number", Int = 10 => "int",
        Round = 11 => "round", Floor = 12 => "floor", Ceil = 13 => "ceil", Abs = 14 => "abs",
        Min = 15 => "min", Max = 16 => "max", Text = 17 => "text", Join = 18 => "join", Now = 19 => "now",
        Fixed = 20 => "fixed",
        // Not in the language: the compiler wraps values inserted into an http URL and body.
        UrlEncode = 64 => "url_encode", JsonEscape = 65 => "json_escape",
    }
);

impl Func {
    /// How many arguments the function takes; the verifier checks every call against it.
    pub fn arity(self) -> u8 {
        match self {
            Func::Now => 0,
            Func::Len | Func::Lower | Func::Upper | Func::Trim | Func::Number | Func::Int | Func::Round => 1,
            Func::Floor | Func::Ceil | Func::Abs | Func::Text | Func::UrlEncode | Func::JsonEscape => 1,
            Func::Replace => 3,
            _ => 2,
        }
    }
}

impl Program {
    pub fn text(&self, c: u32) -> &str {
        self.consts.get(c as usize).map_or("<bad constant>", String::as_str)
    }

    /// The node whose code contains `offset` (the last node starting at or before it).
    pub fn node_at(&self, offset: u32) -> Option<u32> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.offset <= offset)
            .max_by_key(|(_, n)| n.offset)
            .map(|(i, _)| i as u32)
    }

    /// The hash as lowercase hex.
    pub fn hash_hex(&self) -> String {
        self.hash.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Why control goes from one node to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EdgeKind {
    /// The node's `next` (or the only way on).
    Next,
    /// A branch case whose condition held.
    When,
    /// A branch's `else`: every case's condition failed.
    Else,
    OnInvalid,
    OnTimeout,
    OnError,
}

impl EdgeKind {
    /// As the flow language writes it (`""` for a plain `next`).
    pub fn name(self) -> &'static str {
        match self {
            EdgeKind::Next => "",
            EdgeKind::When => "when",
            EdgeKind::Else => "else",
            EdgeKind::OnInvalid => "on_invalid",
            EdgeKind::OnTimeout => "on_timeout",
            EdgeKind::OnError => "on_error",
        }
    }
}

/// What a node does, for pictures of the flow: its kind (`say`, `ask`, `branch`, …) and a
/// short text (a message's fixed words, an http request's method and URL, a hand-off's team).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOutline {
    pub kind: &'static str,
    pub text: String,
}

impl Program {
    /// Every edge between nodes of the same flow that some execution can take, as (from, to)
    /// node indices, sorted. Derived from the code and tables, so it matches what runs.
    pub fn edges(&self) -> Vec<(u32, u32)> {
        let mut edges: Vec<(u32, u32)> = self.labelled_edges().into_iter().map(|(a, b, _)| (a, b)).collect();
        edges.dedup();
        edges
    }

    /// [`Program::edges`], each with why it is taken (an edge taken for two reasons, such as
    /// a case and the `else` leading to the same node, is there twice), sorted.
    pub fn labelled_edges(&self) -> Vec<(u32, u32, EdgeKind)> {
        let node_at: std::collections::HashMap<u32, u32> =
            self.nodes.iter().enumerate().map(|(i, n)| (n.offset, i as u32)).collect();
        let mut edges = std::collections::BTreeSet::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let from = i as u32;
            let mut seen = std::collections::HashSet::new();
            let mut work = vec![(n.offset, EdgeKind::Next)];
            let mut first = true;
            while let Some((at, kind)) = work.pop() {
                if !first && let Some(&to) = node_at.get(&at) {
                    edges.insert((from, to, kind));
                    continue;
                }
                first = false;
                if !seen.insert((at, kind)) {
                    continue;
                }
                let Some((op, next)) = Op::decode(&self.code, at as usize) else { continue };
                let mut go = |t: u32, k: EdgeKind| {
                    if t != NONE {
                        work.push((t, k));
                    }
                };
                match op {
                    Op::Ask { a } => {
                        if let Some(a) = self.asks.get(a as usize) {
                            go(a.next, EdgeKind::Next);
                            go(a.on_invalid, EdgeKind::OnInvalid);
                            go(a.on_timeout, EdgeKind::OnTimeout);
                        }
                    }
                    Op::Http { h } => {
                        if let Some(h) = self.https.get(h as usize) {
                            go(h.next, EdgeKind::Next);
                            go(h.on_error, EdgeKind::OnError);
                        }
                    }
                    Op::Jump { to } => go(to, kind),
                    // A case's test: false goes on to the next case (or the `else`), true
                    // falls through to the case's target.
                    Op::JumpIfFalse { to } => {
                        go(to, EdgeKind::Else);
                        go(next as u32, EdgeKind::When);
                    }
                    Op::Return { .. } | Op::End | Op::Handoff { resumes: false, .. } => {}
                    other => {
                        if let Some(t) = other.jump_target() {
                            go(t, kind);
                        }
                        go(next as u32, kind);
                    }
                }
            }
        }
        edges.into_iter().collect()
    }

    /// Each node's kind and short text, by node index (see [`NodeOutline`]).
    pub fn outline(&self) -> Vec<NodeOutline> {
        let mut starts: Vec<u32> = self.nodes.iter().map(|n| n.offset).collect();
        starts.sort_unstable();
        self.nodes
            .iter()
            .map(|n| {
                let end = starts.iter().copied().find(|&o| o > n.offset).unwrap_or(self.code.len() as u32);
                self.outline_of(n.offset as usize, end as usize)
            })
            .collect()
    }

    fn outline_of(&self, mut at: usize, end: usize) -> NodeOutline {
        // The fixed words pushed since the last button: a message's text, with `…` where
        // a value is filled in.
        let mut words: Vec<String> = Vec::new();
        let mut said: Option<String> = None;
        let (mut kind, mut text) = ("", String::new());
        let mut branches = false;
        let mut sets = false;
        while at < end {
            let Some((op, next)) = Op::decode(&self.code, at) else { break };
            at = next;
            match op {
                Op::PushText { c } => words.push(self.text(c).to_string()),
                Op::Load { .. } | Op::Builtin { .. } | Op::Field { .. } | Op::Call { .. } => words.push("…".into()),
                Op::Button { .. } => words.clear(),
                Op::Say { .. } => {
                    said.get_or_insert_with(|| words.concat());
                    words.clear();
                }
                Op::Ask { .. } if kind.is_empty() => {
                    (kind, text) = ("ask", words.concat());
                }
                Op::Http { h } if kind.is_empty() => {
                    let method = self.https.get(h as usize).map_or("", |h| h.method.name());
                    (kind, text) = ("http", format!("{method} {}", words.first().map_or("", String::as_str)));
                }
                Op::Handoff { q, .. } if kind.is_empty() => (kind, text) = ("handoff", self.text(q).to_string()),
                Op::Wait { secs } if kind.is_empty() => (kind, text) = ("wait", format!("{secs} s")),
                Op::CallFlow { f } if kind.is_empty() => {
                    let name = self.flows.get(f as usize).map_or("", |f| self.text(f.name));
                    (kind, text) = ("call", name.to_string());
                }
                Op::End if kind.is_empty() => kind = "end",
                Op::Return { .. } if kind.is_empty() => kind = "return",
                Op::JumpIfFalse { .. } => branches = true,
                Op::Store { .. } => sets = true,
                _ => {}
            }
            if matches!(op, Op::Concat { .. }) {
                let joined = words.concat();
                words = vec![joined];
            }
        }
        if kind.is_empty() {
            kind = if said.is_some() {
                "say"
            } else if branches {
                "branch"
            } else if sets {
                "set"
            } else {
                "step"
            };
        }
        if text.is_empty() {
            text = said.unwrap_or_default();
        }
        // Short: the first line, at most 60 characters.
        let line = text.lines().next().unwrap_or("").trim();
        let short: String = line.chars().take(60).collect();
        let text = if short.chars().count() < line.chars().count() { format!("{short}…") } else { short };
        NodeOutline { kind, text }
    }
}
