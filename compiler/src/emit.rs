//! Emit: a [`CheckedProgram`] to a `.botc` [`bc::Program`]. Only checked programs can be
//! emitted, so every name here is resolved and every expression typed.
//!
//! The output is deterministic: flows are laid out main first, then callees in the order
//! calls reach them; nodes in their flow's order; constants in order of first use. Spans
//! only go into the optional debug section, so a flow's YAML and DSL forms emit the same
//! bytes.

use crate::ast::{Expect, Method, Type};
use crate::check::CheckedProgram;
use crate::expr::{BinOp, UnOp};
use crate::ir::{self, Builtin, Edge, ExprKind, FlowId, NodeId, NodeKind, Template, TemplatePart};
use crate::span::SourceMap;
use botc_bytecode::{self as bc, NONE, Op};
use rustc_hash::FxHashMap;

pub struct Options<'a> {
    /// Include node source positions (line, column) from these sources.
    pub debug: Option<&'a SourceMap>,
}

/// A place in the code that waits for a node's offset.
enum Fixup {
    Jump { at: usize, node: (usize, NodeId) },
    Ask { ask: usize, field: u8, node: (usize, NodeId) },
    Http { http: usize, field: u8, node: (usize, NodeId) },
}

struct Emitter<'a> {
    program: &'a ir::Program,
    out: bc::Program,
    consts: FxHashMap<String, u32>,
    /// IR flow id → position in the output (main first, then callees as reached).
    flow_order: Vec<FlowId>,
    node_index: FxHashMap<(usize, NodeId), u32>,
    fixups: Vec<Fixup>,
    depth: u32,
    /// The node laid out right after the current one: jumping to it is falling through.
    following: Option<NodeId>,
}

pub fn emit(checked: &CheckedProgram, options: &Options<'_>) -> bc::Program {
    let program = checked.program();
    // Main flow and every flow it calls, transitively, in order of first call.
    let mut flow_order = vec![FlowId(0)];
    let mut i = 0;
    while i < flow_order.len() {
        let flow = &program.flows[flow_order[i].0 as usize];
        for id in flow.node_ids() {
            if let NodeKind::Call { flow: Some(c), .. } = flow.node(id).kind
                && !flow_order.contains(&c)
            {
                flow_order.push(c);
            }
        }
        i += 1;
    }
    let mut e = Emitter {
        program,
        out: bc::Program {
            name: program.flows[0].name.clone(),
            hash: [0; 32],
            consts: Vec::new(),
            flows: Vec::new(),
            nodes: Vec::new(),
            asks: Vec::new(),
            https: Vec::new(),
            code: Vec::new(),
            max_stack: 0,
            debug: None,
        },
        consts: FxHashMap::default(),
        flow_order,
        node_index: FxHashMap::default(),
        fixups: Vec::new(),
        depth: 0,
        following: None,
    };
    // Number every node first, so calls and tables can name them.
    for (fi, &fid) in e.flow_order.clone().iter().enumerate() {
        for id in program.flows[fid.0 as usize].node_ids() {
            let n = e.node_index.len() as u32;
            e.node_index.insert((fi, id), n);
        }
    }
    e.out.nodes = vec![bc::Node { flow: 0, name: 0, offset: 0 }; e.node_index.len()];
    let mut offsets: FxHashMap<(usize, NodeId), u32> = FxHashMap::default();
    for fi in 0..e.flow_order.len() {
        e.flow(fi, &mut offsets);
    }
    for f in std::mem::take(&mut e.fixups) {
        match f {
            Fixup::Jump { at, node } => {
                e.out.code[at..at + 4].copy_from_slice(&offsets[&node].to_le_bytes());
            }
            Fixup::Ask { ask, field, node } => {
                let a = &mut e.out.asks[ask];
                let o = offsets[&node];
                match field {
                    0 => a.next = o,
                    1 => a.on_invalid = o,
                    _ => a.on_timeout = o,
                }
            }
            Fixup::Http { http, field, node } => {
                let h = &mut e.out.https[http];
                if field == 0 {
                    h.next = offsets[&node];
                } else {
                    h.on_error = offsets[&node];
                }
            }
        }
    }
    if let Some(sources) = options.debug {
        let mut spans = Vec::new();
        for (fi, &fid) in e.flow_order.iter().enumerate() {
            let flow = &program.flows[fid.0 as usize];
            for id in flow.node_ids() {
                let span = flow.node(id).name_span;
                let (line, column) = sources.get(span.file).line_col(span.lo);
                spans.push(bc::DebugSpan { node: e.node_index[&(fi, id)], line: line as u32, column: column as u32 });
            }
        }
        e.out.debug = Some(spans);
    }
    let mut out = e.out;
    out.seal();
    out
}

fn ty(t: Type) -> bc::Ty {
    match t {
        Type::Text => bc::Ty::Text,
        Type::Number => bc::Ty::Number,
        Type::Integer => bc::Ty::Integer,
        Type::Boolean => bc::Ty::Boolean,
        Type::List => bc::Ty::List,
        Type::Json => bc::Ty::Json,
    }
}

impl Emitter<'_> {
    fn text(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.consts.get(s) {
            return c;
        }
        let c = self.out.consts.len() as u32;
        self.out.consts.push(s.to_string());
        self.consts.insert(s.to_string(), c);
        c
    }

    /// Appends an instruction, tracking the operand stack's depth for `max_stack`.
    fn op(&mut self, op: Op, effect: i32) {
        op.encode(&mut self.out.code);
        self.depth = (self.depth as i32 + effect).max(0) as u32;
        self.out.max_stack = self.out.max_stack.max(self.depth as u16);
    }

    fn here(&self) -> u32 {
        self.out.code.len() as u32
    }

    /// A jump to a node, patched once every node has an offset; nothing when the node comes
    /// next anyway.
    fn jump_to(&mut self, flow: usize, node: NodeId) {
        if self.following == Some(node) {
            return;
        }
        self.jump_always(flow, node);
    }

    /// A jump that is emitted even to the following node: other code comes after it.
    fn jump_always(&mut self, flow: usize, node: NodeId) {
        self.op(Op::Jump { to: NONE }, 0);
        let at = self.out.code.len() - 4;
        self.fixups.push(Fixup::Jump { at, node: (flow, node) });
    }

    fn flow(&mut self, fi: usize, offsets: &mut FxHashMap<(usize, NodeId), u32>) {
        let fid = self.flow_order[fi];
        let flow = &self.program.flows[fid.0 as usize];
        let entry = self.here();
        let name = self.text(&flow.name);
        let vars = flow.vars.iter().map(|v| bc::Var { name: self.text(&v.name), ty: ty(v.ty) }).collect();
        self.out.flows.push(bc::Flow { name, params: flow.params as u16, vars, returns: flow.returns.map(ty), entry });
        for (i, v) in flow.vars.iter().enumerate() {
            if let Some(d) = &v.default {
                self.expr(d);
                self.op(Op::Store { v: i as u16 }, -1);
            }
        }
        let start = flow.start.expect("a checked flow has a start");
        // The start node first saves a jump in the common case.
        let mut order: Vec<NodeId> = flow.node_ids().collect();
        order.sort_by_key(|&id| id != start);
        for (i, &id) in order.iter().enumerate() {
            offsets.insert((fi, id), self.here());
            self.following = order.get(i + 1).copied();
            self.node(fi, flow, id);
        }
    }

    fn exit(&self, flow: &ir::Flow, id: NodeId, edge: Edge) -> Option<NodeId> {
        flow.exits(id).into_iter().find(|(e, _)| *e == edge).map(|(_, t)| t)
    }

    fn node(&mut self, fi: usize, flow: &ir::Flow, id: NodeId) {
        let n = self.node_index[&(fi, id)];
        let node = flow.node(id);
        self.out.nodes[n as usize] = bc::Node { flow: fi as u16, name: self.text(&node.name), offset: self.here() };
        self.depth = 0;
        self.op(Op::Node { n }, 0);
        let next = self.exit(flow, id, Edge::Next);
        match &node.kind {
            NodeKind::Say { text, buttons, image } => {
                self.buttons(buttons);
                if let Some(i) = image {
                    self.template(i);
                }
                self.template(text);
                self.op(Op::Say { image: image.is_some() }, -1 - i32::from(image.is_some()));
                self.jump_to(fi, next.expect("checked: say has next"));
            }
            NodeKind::Ask { prompt, into, expect, buttons, retries, reprompt, timeout } => {
                let a = self.out.asks.len();
                let mut choices = Vec::new();
                let expect = match expect {
                    Expect::Text => bc::Expect::Text,
                    Expect::Number => bc::Expect::Number,
                    Expect::Integer => bc::Expect::Integer,
                    Expect::Boolean => bc::Expect::Boolean,
                    Expect::Email => bc::Expect::Email,
                    Expect::Choice(list, _) => {
                        choices = list.iter().map(|c| self.text(&c.value)).collect();
                        bc::Expect::Choice
                    }
                    Expect::Regex(r) => bc::Expect::Regex { pattern: self.text(&r.value) },
                };
                self.out.asks.push(bc::Ask {
                    node: n,
                    var: into.expect("checked: ask has into").0 as u16,
                    expect,
                    choices: choices.clone(),
                    retries: (*retries).min(255) as u8,
                    timeout: timeout.unwrap_or(0) as u32,
                    next: NONE,
                    on_invalid: NONE,
                    on_timeout: NONE,
                    reprompt: NONE,
                });
                for (field, edge) in [(0u8, Edge::Next), (1, Edge::Invalid), (2, Edge::Timeout)] {
                    if let Some(t) = self.exit(flow, id, edge) {
                        self.fixups.push(Fixup::Ask { ask: a, field, node: (fi, t) });
                    }
                }
                let choice_buttons = buttons.is_empty() && expect == bc::Expect::Choice;
                let prompt_code = |e: &mut Self, text: &Template| {
                    if choice_buttons {
                        for &c in &choices {
                            e.op(Op::PushText { c }, 1);
                            e.op(Op::PushText { c }, 1);
                            e.op(Op::Button { url: false }, -2);
                        }
                    } else {
                        e.buttons(buttons);
                    }
                    e.template(text);
                    e.op(Op::Ask { a: a as u16 }, -1);
                };
                // Without a `reprompt`, asking again is asking the same: reuse the prompt code.
                self.out.asks[a].reprompt = self.here();
                prompt_code(self, prompt);
                if let Some(r) = reprompt {
                    self.out.asks[a].reprompt = self.here();
                    self.depth = 0;
                    prompt_code(self, r);
                }
            }
            NodeKind::Branch { conds } => {
                for (i, c) in conds.iter().enumerate() {
                    self.expr(c);
                    self.op(Op::JumpIfFalse { to: NONE }, -1);
                    let skip = self.out.code.len() - 4;
                    self.jump_always(
                        fi,
                        self.exit(flow, id, Edge::Case(i as u32)).expect("checked: case has a target"),
                    );
                    let here = self.here();
                    self.out.code[skip..skip + 4].copy_from_slice(&here.to_le_bytes());
                }
                self.jump_to(fi, self.exit(flow, id, Edge::Else).expect("checked: branch has else"));
            }
            NodeKind::Set { assigns } => {
                for (v, value) in assigns {
                    self.expr(value);
                    self.op(Op::Store { v: v.0 as u16 }, -1);
                }
                self.jump_to(fi, next.expect("checked: set has next"));
            }
            NodeKind::Call { flow: callee, args, into } => {
                let callee = callee.expect("checked: call resolves");
                for a in args {
                    self.expr(a);
                }
                let f = self.flow_order.iter().position(|&c| c == callee).expect("callees are laid out") as u16;
                let returns = self.program.flows[callee.0 as usize].returns.is_some();
                self.op(Op::CallFlow { f }, -(args.len() as i32) + i32::from(returns));
                match (into, returns) {
                    (Some(v), true) => self.op(Op::Store { v: v.0 as u16 }, -1),
                    (None, true) => self.op(Op::Pop, -1),
                    _ => {}
                }
                self.jump_to(fi, next.expect("checked: call has next"));
            }
            NodeKind::Return { value } => {
                if let Some(v) = value {
                    self.expr(v);
                }
                self.op(Op::Return { value: value.is_some() }, -i32::from(value.is_some()));
            }
            NodeKind::Http { method, url, headers, body, into } => {
                let h = self.out.https.len();
                let header_names = headers.iter().map(|(k, _)| self.text(k)).collect();
                self.out.https.push(bc::Http {
                    node: n,
                    method: match method {
                        Method::Get => bc::Method::Get,
                        Method::Post => bc::Method::Post,
                        Method::Put => bc::Method::Put,
                        Method::Patch => bc::Method::Patch,
                        Method::Delete => bc::Method::Delete,
                    },
                    headers: header_names,
                    body: body.is_some(),
                    var: into.map_or(u16::MAX, |v| v.0 as u16),
                    next: NONE,
                    on_error: NONE,
                });
                for (field, edge) in [(0u8, Edge::Next), (1, Edge::Error)] {
                    if let Some(t) = self.exit(flow, id, edge) {
                        self.fixups.push(Fixup::Http { http: h, field, node: (fi, t) });
                    }
                }
                // Values inserted into the URL are percent-encoded and those inserted into the
                // body are escaped as JSON string content, so user text cannot break either.
                self.template_with(url, Some(bc::Func::UrlEncode));
                for (_, v) in headers {
                    self.template(v);
                }
                if let Some(b) = body {
                    self.template_with(b, Some(bc::Func::JsonEscape));
                }
                let popped = 1 + headers.len() as i32 + i32::from(body.is_some());
                self.op(Op::Http { h: h as u16 }, -popped);
            }
            NodeKind::Handoff { queue, reason, resumes } => {
                if let Some(r) = reason {
                    self.template(r);
                }
                let q = self.text(queue);
                self.op(Op::Handoff { q, reason: reason.is_some(), resumes: *resumes }, -i32::from(reason.is_some()));
                if let Some(t) = next {
                    self.jump_to(fi, t);
                }
            }
            NodeKind::Wait { seconds } => {
                self.op(Op::Wait { secs: (*seconds).min(u64::from(u32::MAX)) as u32 }, 0);
                self.jump_to(fi, next.expect("checked: wait has next"));
            }
            NodeKind::Goto => {
                self.jump_to(fi, self.exit(flow, id, Edge::Goto).expect("checked: goto resolves"));
            }
            NodeKind::End => self.op(Op::End, 0),
        }
    }

    fn buttons(&mut self, buttons: &[ir::Button]) {
        for b in buttons {
            self.template(&b.label);
            match (&b.value, &b.url) {
                (Some(v), _) => {
                    let c = self.text(v);
                    self.op(Op::PushText { c }, 1);
                    self.op(Op::Button { url: false }, -2);
                }
                (None, Some(u)) => {
                    self.template(u);
                    self.op(Op::Button { url: true }, -2);
                }
                (None, None) => {
                    let c = self.text("");
                    self.op(Op::PushText { c }, 1);
                    self.op(Op::Button { url: false }, -2);
                }
            }
        }
    }

    fn template(&mut self, t: &Template) {
        self.template_with(t, None);
    }

    /// A template whose inserted values each pass through `escape`.
    fn template_with(&mut self, t: &Template, escape: Option<bc::Func>) {
        match t.parts.as_slice() {
            [] => {
                let c = self.text("");
                self.op(Op::PushText { c }, 1);
            }
            [TemplatePart::Lit(s)] => {
                let c = self.text(s);
                self.op(Op::PushText { c }, 1);
            }
            parts => {
                for p in parts {
                    match p {
                        TemplatePart::Lit(s) => {
                            let c = self.text(s);
                            self.op(Op::PushText { c }, 1);
                        }
                        TemplatePart::Expr(e) => {
                            self.expr(e);
                            if let Some(f) = escape {
                                self.op(Op::Call { f: f.code(), argc: 1 }, 0);
                            }
                        }
                    }
                }
                let n = parts.len() as u16;
                self.op(Op::Concat { n }, 1 - i32::from(n));
            }
        }
    }

    fn expr(&mut self, e: &ir::Expr) {
        match &e.kind {
            ExprKind::Text(s) => {
                let c = self.text(s);
                self.op(Op::PushText { c }, 1);
            }
            ExprKind::Integer(v) => self.op(Op::PushInt { v: *v }, 1),
            ExprKind::Number(v) => self.op(Op::PushNum { v: *v }, 1),
            ExprKind::Bool(v) => self.op(Op::PushBool { v: *v }, 1),
            ExprKind::List(items) => {
                for i in items {
                    self.expr(i);
                }
                let n = items.len() as u16;
                self.op(Op::List { n }, 1 - i32::from(n));
            }
            ExprKind::Var(v) => self.op(Op::Load { v: v.0 as u16 }, 1),
            ExprKind::Builtin(b) => {
                let b = match b {
                    Builtin::UserId => bc::Builtin::UserId,
                    Builtin::UserName => bc::Builtin::UserName,
                    Builtin::UserLanguage => bc::Builtin::UserLanguage,
                    Builtin::EventText => bc::Builtin::EventText,
                    Builtin::EventPlatform => bc::Builtin::EventPlatform,
                    Builtin::BotId => bc::Builtin::BotId,
                    Builtin::BotName => bc::Builtin::BotName,
                    Builtin::BotPlatform => bc::Builtin::BotPlatform,
                };
                self.op(Op::Builtin { b: b.code() }, 1);
            }
            ExprKind::Field(base, field) => {
                self.expr(base);
                let c = self.text(field);
                self.op(Op::Field { c }, 0);
            }
            ExprKind::Unary(op, a) => {
                self.expr(a);
                let op = match op {
                    UnOp::Not => bc::UnOp::Not,
                    UnOp::Neg => bc::UnOp::Neg,
                };
                self.op(Op::Unary { op: op.code() }, 0);
            }
            ExprKind::Binary(op @ (BinOp::And | BinOp::Or), a, b) => {
                self.expr(a);
                let jump = if *op == BinOp::And { Op::AndThen { to: NONE } } else { Op::OrElse { to: NONE } };
                self.op(jump, -1);
                let at = self.out.code.len() - 4;
                self.expr(b);
                let here = self.here();
                self.out.code[at..at + 4].copy_from_slice(&here.to_le_bytes());
            }
            ExprKind::Binary(op, a, b) => {
                self.expr(a);
                self.expr(b);
                let op = match op {
                    BinOp::Eq => bc::BinOp::Eq,
                    BinOp::Ne => bc::BinOp::Ne,
                    BinOp::Lt => bc::BinOp::Lt,
                    BinOp::Le => bc::BinOp::Le,
                    BinOp::Gt => bc::BinOp::Gt,
                    BinOp::Ge => bc::BinOp::Ge,
                    BinOp::In => bc::BinOp::In,
                    BinOp::NotIn => bc::BinOp::NotIn,
                    BinOp::Add if e.ty == Type::Text => bc::BinOp::Concat,
                    BinOp::Add => bc::BinOp::Add,
                    BinOp::Sub => bc::BinOp::Sub,
                    BinOp::Mul => bc::BinOp::Mul,
                    BinOp::Div => bc::BinOp::Div,
                    BinOp::Rem => bc::BinOp::Rem,
                    BinOp::And | BinOp::Or => unreachable!("handled above"),
                };
                self.op(Op::Binary { op: op.code() }, -1);
            }
            ExprKind::Call(f, args) => {
                for a in args {
                    self.expr(a);
                }
                let f = *bc::Func::ALL
                    .iter()
                    .find(|g| g.name() == f.name())
                    .expect("the compiler's functions are the VM's");
                self.op(Op::Call { f: f.code(), argc: args.len() as u8 }, 1 - args.len() as i32);
            }
            ExprKind::Error(_) => unreachable!("a checked program has no error expressions"),
        }
    }
}
