//! The verifier. It runs on every load, before anything executes, and guarantees what the VM
//! relies on (the VM treats a violation of any of these as its own bug, not the flow's):
//!
//! 1. The header's version is one this build reads (1 to
//!    [`FORMAT_VERSION`](crate::FORMAT_VERSION)) and its hash matches the sections (checked
//!    while decoding).
//! 2. The code is a whole sequence of instructions: every byte belongs to exactly one
//!    instruction, every opcode and enum operand is known.
//! 3. Flows own contiguous code regions in table order (`flows[i].entry` ascending, the
//!    first at 0); every jump, node offset and table target lands on an instruction boundary
//!    inside the region of the flow it belongs to.
//! 4. Every constant, variable, node, flow, ask and http index is in range; text constants
//!    used for choices and patterns exist; `Call` passes exactly the function's arity.
//! 5. Stack depth is the same on every path into an instruction, never negative, never above
//!    `max_stack`; it is 0 at flow entries, node starts, table targets, `Wait`, `End`; `Ask`
//!    pops exactly its prompt; `Http` its operands; `CallFlow` exactly the callee's parameters;
//!    `Return` carries a value exactly when the flow declares one.
//! 6. Every node-table entry points at a `Node` instruction naming that entry.
//! 7. Every code path ends in a terminator (`End`, `Return`, `Ask`, `Http`, a non-resuming
//!    `Handoff`, or a `Jump`): execution never runs off the end of a flow's region.

use crate::format::{LoadError, decode};
use crate::op::{NONE, Op};
use crate::{BinOp, Builtin, Expect, Func, Program, UnOp};

/// A program that passed the verifier. Only [`load`] and [`verify`] make one.
#[derive(Clone, Debug)]
pub struct Verified {
    program: Program,
    /// `flow_of[i]`: the flow whose region holds instruction-boundary byte `i` (dense map
    /// kept for the VM's positions).
    regions: Vec<(u32, u32)>,
}

impl Verified {
    pub fn program(&self) -> &Program {
        &self.program
    }

    /// The code region `[start, end)` of flow `f`.
    pub fn region(&self, f: u16) -> (u32, u32) {
        self.regions[f as usize]
    }
}

/// Decodes and verifies a `.botc` file.
pub fn load(bytes: &[u8]) -> Result<Verified, LoadError> {
    verify(decode(bytes)?)
}

fn err(msg: impl Into<String>) -> LoadError {
    LoadError::Invalid(msg.into())
}

/// Checks every invariant listed in the module docs.
pub fn verify(program: Program) -> Result<Verified, LoadError> {
    let p = &program;
    let code = &p.code;
    if code.len() >= NONE as usize {
        return Err(err("code is too large"));
    }
    // 2. Instruction boundaries.
    let mut boundary = vec![false; code.len() + 1];
    let mut ops: Vec<(usize, Op, usize)> = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let (op, next) = Op::decode(code, at).ok_or_else(|| err(format!("bad instruction at offset {at}")))?;
        boundary[at] = true;
        ops.push((at, op, next));
        at = next;
    }
    let is_boundary = |o: u32| (o as usize) < code.len() && boundary[o as usize];

    // 3. Regions.
    if p.flows.is_empty() || p.flows[0].entry != 0 {
        return Err(err("the main flow must start at offset 0"));
    }
    let mut regions = Vec::with_capacity(p.flows.len());
    for (i, f) in p.flows.iter().enumerate() {
        let end = p.flows.get(i + 1).map_or(code.len() as u32, |n| n.entry);
        if f.entry >= end || !is_boundary(f.entry) {
            return Err(err(format!("flow {i} has an empty or misplaced code region")));
        }
        regions.push((f.entry, end));
    }
    let flow_at = |o: u32| regions.iter().position(|&(s, e)| s <= o && o < e);
    let in_flow = |o: u32, f: usize| is_boundary(o) && flow_at(o) == Some(f);

    // 4. Indices in tables.
    let nconst = p.consts.len() as u32;
    let text =
        |c: u32, what: &str| if c < nconst { Ok(()) } else { Err(err(format!("{what}: constant {c} out of range"))) };
    for (i, f) in p.flows.iter().enumerate() {
        text(f.name, "flow name")?;
        if f.params as usize > f.vars.len() {
            return Err(err(format!("flow {i} has more parameters than variables")));
        }
        for v in &f.vars {
            text(v.name, "variable name")?;
        }
    }
    for (i, n) in p.nodes.iter().enumerate() {
        text(n.name, "node name")?;
        if n.flow as usize >= p.flows.len() || !in_flow(n.offset, n.flow as usize) {
            return Err(err(format!("node {i} points outside its flow")));
        }
        // 6.
        match Op::decode(code, n.offset as usize) {
            Some((Op::Node { n: m }, _)) if m as usize == i => {}
            _ => return Err(err(format!("node {i} does not point at its own Node instruction"))),
        }
    }
    let target = |t: u32, f: usize, required: bool, what: &str| {
        if (t == NONE && !required) || (t != NONE && in_flow(t, f)) {
            Ok(())
        } else {
            Err(err(format!("{what} target {t} is not an instruction of its flow")))
        }
    };
    let node_flow = |n: u32| {
        p.nodes.get(n as usize).map(|n| n.flow as usize).ok_or_else(|| err("table entry names an unknown node"))
    };
    for (i, a) in p.asks.iter().enumerate() {
        let f = node_flow(a.node)?;
        if a.var as usize >= p.flows[f].vars.len() {
            return Err(err(format!("ask {i} stores into an unknown variable")));
        }
        for &c in &a.choices {
            text(c, "choice")?;
        }
        match a.expect {
            Expect::Choice if a.choices.is_empty() => return Err(err(format!("ask {i} has no choices"))),
            Expect::Regex { pattern } => text(pattern, "regex")?,
            _ if a.expect != Expect::Choice && !a.choices.is_empty() => {
                return Err(err(format!("ask {i} has choices but does not expect one")));
            }
            _ => {}
        }
        target(a.next, f, true, "ask next")?;
        target(a.reprompt, f, true, "ask reprompt")?;
        target(a.on_invalid, f, false, "ask on_invalid")?;
        target(a.on_timeout, f, false, "ask on_timeout")?;
        if (a.timeout == 0) != (a.on_timeout == NONE) {
            return Err(err(format!("ask {i} has a timeout without a target or the reverse")));
        }
    }
    for (i, h) in p.https.iter().enumerate() {
        let f = node_flow(h.node)?;
        for &c in &h.headers {
            text(c, "header name")?;
        }
        if h.var != u16::MAX && h.var as usize >= p.flows[f].vars.len() {
            return Err(err(format!("http {i} stores into an unknown variable")));
        }
        target(h.next, f, true, "http next")?;
        target(h.on_error, f, false, "http on_error")?;
    }

    // 4 and 5: operands and stack depth, per flow, by a worklist over the instructions.
    let index_of = |o: usize| ops.binary_search_by_key(&o, |&(a, _, _)| a).ok();
    let mut depth: Vec<Option<u32>> = vec![None; ops.len()];
    let mut work: Vec<(usize, u32)> = Vec::new();
    let seed = |o: u32, work: &mut Vec<(usize, u32)>| {
        if o != NONE
            && let Some(i) = index_of(o as usize)
        {
            work.push((i, 0));
        }
    };
    for f in &p.flows {
        seed(f.entry, &mut work);
    }
    for n in &p.nodes {
        seed(n.offset, &mut work);
    }
    for a in &p.asks {
        for t in [a.next, a.on_invalid, a.on_timeout, a.reprompt] {
            seed(t, &mut work);
        }
    }
    for h in &p.https {
        seed(h.next, &mut work);
        seed(h.on_error, &mut work);
    }
    let max = u32::from(p.max_stack);
    while let Some((i, d)) = work.pop() {
        match depth[i] {
            Some(seen) if seen == d => continue,
            Some(seen) => {
                return Err(err(format!(
                    "stack depth at offset {} is {seen} on one path and {d} on another",
                    ops[i].0
                )));
            }
            None => depth[i] = Some(d),
        }
        let (at, op, next) = ops[i];
        let f = flow_at(at as u32).expect("every instruction is in a region");
        let flow = &p.flows[f];
        let nvars = flow.vars.len();
        let bad = |m: &str| Err(err(format!("{m} at offset {at}")));
        let need = |n: u32| if d >= n { Ok(()) } else { Err(err(format!("stack underflow at offset {at}"))) };
        let exact = |n: u32, what: &str| {
            if d == n { Ok(()) } else { Err(err(format!("{what} at offset {at} with stack depth {d}, expected {n}"))) }
        };
        // The depth after the instruction, and whether control can fall through.
        let after: Option<u32> = match op {
            Op::PushText { c } | Op::Field { c } => {
                text(c, "operand")?;
                if matches!(op, Op::Field { .. }) {
                    need(1)?;
                    Some(d)
                } else {
                    Some(d + 1)
                }
            }
            Op::PushInt { .. } | Op::PushNum { .. } | Op::PushBool { .. } => Some(d + 1),
            Op::List { n } | Op::Concat { n } => {
                need(u32::from(n))?;
                Some(d - u32::from(n) + 1)
            }
            Op::Load { v } | Op::Store { v } => {
                if v as usize >= nvars {
                    return bad("unknown variable");
                }
                if matches!(op, Op::Store { .. }) {
                    need(1)?;
                    Some(d - 1)
                } else {
                    Some(d + 1)
                }
            }
            Op::Builtin { b } => {
                if Builtin::from_code(b).is_none() {
                    return bad("unknown built-in");
                }
                Some(d + 1)
            }
            Op::Unary { op } => {
                if UnOp::from_code(op).is_none() {
                    return bad("unknown unary operator");
                }
                need(1)?;
                Some(d)
            }
            Op::Binary { op } => {
                if BinOp::from_code(op).is_none() {
                    return bad("unknown binary operator");
                }
                need(2)?;
                Some(d - 1)
            }
            Op::Call { f: func, argc } => {
                let Some(func) = Func::from_code(func) else { return bad("unknown function") };
                if func.arity() != argc {
                    return bad("wrong number of arguments");
                }
                need(u32::from(argc))?;
                Some(d - u32::from(argc) + 1)
            }
            Op::Pop => {
                need(1)?;
                Some(d - 1)
            }
            Op::Jump { .. } => None,
            Op::JumpIfFalse { .. } => {
                need(1)?;
                Some(d - 1)
            }
            Op::AndThen { .. } | Op::OrElse { .. } => {
                need(1)?;
                Some(d - 1)
            }
            Op::Node { n } => {
                exact(0, "node start")?;
                if p.nodes.get(n as usize).is_none_or(|node| node.offset != at as u32) {
                    return bad("Node instruction that the node table does not point at");
                }
                Some(0)
            }
            Op::Button { .. } => {
                need(2)?;
                Some(d - 2)
            }
            Op::Say { image } => {
                exact(1 + u32::from(image), "say")?;
                Some(0)
            }
            Op::Ask { a } => {
                let Some(ask) = p.asks.get(a as usize) else { return bad("unknown ask") };
                if node_flow(ask.node)? != f {
                    return bad("ask of another flow");
                }
                exact(1, "ask")?;
                None
            }
            Op::Http { h } => {
                let Some(http) = p.https.get(h as usize) else { return bad("unknown http entry") };
                if node_flow(http.node)? != f {
                    return bad("http of another flow");
                }
                exact(1 + http.headers.len() as u32 + u32::from(http.body), "http")?;
                None
            }
            Op::Handoff { q, reason, resumes } => {
                text(q, "queue")?;
                exact(u32::from(reason), "handoff")?;
                resumes.then_some(0)
            }
            Op::Wait { secs } => {
                exact(0, "wait")?;
                if secs == 0 {
                    return bad("zero wait");
                }
                Some(0)
            }
            Op::CallFlow { f: callee } => {
                let Some(c) = p.flows.get(callee as usize) else { return bad("unknown flow") };
                exact(u32::from(c.params), "call")?;
                Some(u32::from(c.returns.is_some()))
            }
            Op::Return { value } => {
                if value != flow.returns.is_some() {
                    return bad("return value does not match the flow's declaration");
                }
                exact(u32::from(value), "return")?;
                None
            }
            Op::End => {
                exact(0, "end")?;
                None
            }
        };
        if let Some(t) = op.jump_target() {
            if !in_flow(t, f) {
                return bad("jump outside the flow");
            }
            let kept = if matches!(op, Op::AndThen { .. } | Op::OrElse { .. }) { d } else { after.unwrap_or(d) };
            work.push((index_of(t as usize).expect("boundary has an index"), kept));
        }
        if let Some(a) = after {
            if a > max {
                return bad("stack deeper than the declared maximum");
            }
            // 7. Falling through must stay in the flow.
            if next >= regions[f].1 as usize {
                return bad("code runs off the end of its flow");
            }
            work.push((i + 1, a));
        }
    }
    Ok(Verified { program, regions })
}
