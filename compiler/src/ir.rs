//! The IR: one petgraph graph per flow, with names resolved to typed ids and every
//! expression typed. Checks run over it; the bytecode emitter will read it.

use crate::ast::{Expect, Method, Type};
use crate::expr::{BinOp, UnOp};
use crate::span::{FileId, Span};
use petgraph::graph::{DiGraph, NodeIndex};
use std::fmt;

/// A node of one flow's graph. `Display` is the author's node name's index form, `n3`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

/// A variable of one flow (parameters first, then declared variables).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u32);

/// A flow of the program; `FlowId(0)` is the main flow of the file being compiled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u32);

impl NodeId {
    pub fn index(self) -> NodeIndex {
        NodeIndex::new(self.0 as usize)
    }
    pub fn from_index(i: NodeIndex) -> NodeId {
        NodeId(i.index() as u32)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}
impl fmt::Display for VarId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}
impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "f{}", self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Channel {
    Web,
    Discord,
    Telegram,
    Slack,
}

impl Channel {
    pub fn from_name(s: &str) -> Option<Channel> {
        Some(match s {
            "web" => Channel::Web,
            "discord" => Channel::Discord,
            "telegram" => Channel::Telegram,
            "slack" => Channel::Slack,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Discord => "discord",
            Channel::Telegram => "telegram",
            Channel::Slack => "slack",
        }
    }
    /// Longest message text the platform accepts, in characters (../shared/PLATFORMS.md).
    pub fn max_text(self) -> usize {
        match self {
            Channel::Web => 100_000,
            Channel::Discord => 2000,
            Channel::Telegram => 4096,
            Channel::Slack => 40_000,
        }
    }
    /// Most buttons one message can carry: Discord allows 5 action rows of 5, Slack's
    /// actions block takes 25 elements, Telegram's inline keyboard is capped at 100.
    pub fn max_buttons(self) -> usize {
        match self {
            Channel::Web => 100,
            Channel::Discord | Channel::Slack => 25,
            Channel::Telegram => 100,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Program {
    pub flows: Vec<Flow>,
    pub channels: Vec<(Channel, Span)>,
}

#[derive(Clone, Debug)]
pub struct Flow {
    pub name: String,
    pub file: FileId,
    pub span: Span,
    /// The flow's name as written.
    pub name_span: Span,
    /// Parameters are the first `params` variables.
    pub params: usize,
    pub returns: Option<Type>,
    pub vars: Vec<Var>,
    pub graph: DiGraph<Node, Edge, u32>,
    pub start: Option<NodeId>,
}

impl Flow {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.graph[id.index()]
    }
    pub fn var(&self, id: VarId) -> &Var {
        &self.vars[id.0 as usize]
    }
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph.node_indices().map(NodeId::from_index)
    }
    /// Outgoing edges in the order they were written.
    pub fn exits(&self, id: NodeId) -> Vec<(Edge, NodeId)> {
        let mut out: Vec<_> = self
            .graph
            .edges(id.index())
            .map(|e| (*e.weight(), NodeId::from_index(petgraph::visit::EdgeRef::target(&e))))
            .collect();
        // petgraph lists a node's edges newest first.
        out.reverse();
        out
    }
}

#[derive(Clone, Debug)]
pub struct Var {
    pub name: String,
    pub ty: Type,
    pub default: Option<Expr>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Node {
    /// Inline up to 24 bytes, as the AST's names.
    pub name: compact_str::CompactString,
    /// The node's id as written.
    pub name_span: Span,
    /// The kind keyword; node-level diagnostics point here.
    pub span: Span,
    pub kind: NodeKind,
    /// Where each outgoing edge's target is written (`next: x`'s `x`), for diagnostics
    /// about an edge.
    pub targets: Vec<(Edge, Span)>,
}

/// Why control moves from one node to another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Edge {
    Next,
    /// The `n`-th `when` of a branch (0-based).
    Case(u32),
    Else,
    Goto,
    /// An `ask` ran out of retries.
    Invalid,
    /// An `ask` timed out.
    Timeout,
    /// An `http` call failed.
    Error,
}

impl Edge {
    pub fn label(self) -> String {
        match self {
            Edge::Next => "next".into(),
            Edge::Case(i) => format!("when {}", i + 1),
            Edge::Else => "else".into(),
            Edge::Goto => "goto".into(),
            Edge::Invalid => "on_invalid".into(),
            Edge::Timeout => "on_timeout".into(),
            Edge::Error => "on_error".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Button {
    pub label: Template,
    /// `Some(value)` sends the value; `None` with `url` is a link.
    pub value: Option<compact_str::CompactString>,
    pub url: Option<Template>,
}

#[derive(Clone, Debug)]
pub enum NodeKind {
    Say {
        text: Template,
        buttons: Vec<Button>,
        image: Option<Template>,
    },
    Ask {
        prompt: Template,
        into: Option<VarId>,
        expect: Expect,
        buttons: Vec<Button>,
        retries: u32,
        reprompt: Option<Template>,
        timeout: Option<u64>,
    },
    Branch {
        conds: Vec<Expr>,
    },
    Set {
        assigns: Vec<(VarId, Expr)>,
    },
    Call {
        flow: Option<FlowId>,
        args: Vec<Expr>,
        into: Option<VarId>,
    },
    Return {
        value: Option<Expr>,
    },
    Http {
        method: Method,
        url: Template,
        headers: Vec<(String, Template)>,
        body: Option<Template>,
        into: Option<VarId>,
    },
    Handoff {
        queue: String,
        reason: Option<Template>,
        resumes: bool,
    },
    Wait {
        seconds: u64,
    },
    Goto,
    End,
}

impl NodeKind {
    /// Whether a conversation stops here until something from outside arrives: the nodes a
    /// loop must pass through so it cannot spin without input.
    pub fn waits(&self) -> bool {
        matches!(self, NodeKind::Ask { .. } | NodeKind::Wait { .. } | NodeKind::Handoff { resumes: true, .. })
    }
}

#[derive(Clone, Debug)]
pub struct Template {
    pub parts: Vec<TemplatePart>,
    pub span: Span,
    pub literal_len: usize,
}

#[derive(Clone, Debug)]
pub enum TemplatePart {
    Lit(compact_str::CompactString),
    Expr(Expr),
}

/// A typed, resolved expression.
#[derive(Clone, Debug)]
pub struct Expr {
    pub kind: ExprKind,
    pub ty: Type,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    UserId,
    UserName,
    UserLanguage,
    EventText,
    EventPlatform,
    BotId,
    BotName,
    BotPlatform,
}

impl Builtin {
    pub const ALL: [(Builtin, &'static str, &'static str); 8] = [
        (Builtin::UserId, "user", "id"),
        (Builtin::UserName, "user", "name"),
        (Builtin::UserLanguage, "user", "language"),
        (Builtin::EventText, "event", "text"),
        (Builtin::EventPlatform, "event", "platform"),
        (Builtin::BotId, "bot", "id"),
        (Builtin::BotName, "bot", "name"),
        (Builtin::BotPlatform, "bot", "platform"),
    ];
    pub fn path(self) -> String {
        let (_, ns, field) = Builtin::ALL.iter().find(|(b, _, _)| *b == self).expect("every builtin is listed");
        format!("{ns}.{field}")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    Len,
    Lower,
    Upper,
    Trim,
    Contains,
    StartsWith,
    EndsWith,
    Matches,
    Replace,
    Number,
    Int,
    Round,
    Floor,
    Ceil,
    Abs,
    Min,
    Max,
    Text,
    Join,
    Now,
    Fixed,
}

impl Func {
    pub const ALL: [(Func, &'static str); 21] = [
        (Func::Len, "len"),
        (Func::Lower, "lower"),
        (Func::Upper, "upper"),
        (Func::Trim, "trim"),
        (Func::Contains, "contains"),
        (Func::StartsWith, "starts_with"),
        (Func::EndsWith, "ends_with"),
        (Func::Matches, "matches"),
        (Func::Replace, "replace"),
        (Func::Number, "number"),
        (Func::Int, "int"),
        (Func::Round, "round"),
        (Func::Floor, "floor"),
        (Func::Ceil, "ceil"),
        (Func::Abs, "abs"),
        (Func::Min, "min"),
        (Func::Max, "max"),
        (Func::Text, "text"),
        (Func::Join, "join"),
        (Func::Now, "now"),
        (Func::Fixed, "fixed"),
    ];
    pub fn from_name(s: &str) -> Option<Func> {
        Func::ALL.iter().find(|(_, n)| *n == s).map(|(f, _)| *f)
    }
    pub fn name(self) -> &'static str {
        Func::ALL.iter().find(|(f, _)| *f == self).map(|(_, n)| *n).expect("every function is listed")
    }
}

#[derive(Clone, Debug)]
pub enum ExprKind {
    Text(compact_str::CompactString),
    Integer(i64),
    Number(f64),
    Bool(bool),
    List(Vec<Expr>),
    Var(VarId),
    Builtin(Builtin),
    /// Field access on a `json` value, resolved at run time.
    Field(Box<Expr>, compact_str::CompactString),
    Unary(UnOp, Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
    /// An expression that failed to resolve (already reported), keeping the parts that did,
    /// so the variables they read still count as read.
    Error(Vec<Expr>),
}

impl Expr {
    /// Calls `f` on this expression and every expression inside it, in evaluation order
    /// (an operation before its operands).
    pub fn visit<'a>(&'a self, f: &mut impl FnMut(&'a Expr)) {
        f(self);
        match &self.kind {
            ExprKind::List(items) | ExprKind::Call(_, items) | ExprKind::Error(items) => {
                items.iter().for_each(|e| e.visit(f))
            }
            ExprKind::Field(e, _) | ExprKind::Unary(_, e) => e.visit(f),
            ExprKind::Binary(_, a, b) => {
                a.visit(f);
                b.visit(f);
            }
            _ => {}
        }
    }

    /// Every variable this expression reads, with where, in evaluation order.
    pub fn reads(&self, out: &mut Vec<(VarId, Span)>) {
        self.visit(&mut |e| {
            if let ExprKind::Var(v) = e.kind {
                out.push((v, e.span));
            }
        });
    }
}

impl Template {
    pub fn reads(&self, out: &mut Vec<(VarId, Span)>) {
        for p in &self.parts {
            if let TemplatePart::Expr(e) = p {
                e.reads(out);
            }
        }
    }
}
