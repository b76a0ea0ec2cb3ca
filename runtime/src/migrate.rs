//! Deploying a new version of a flow: which waiting conversations can move to it.
//!
//! Sessions stay pinned to the program they started on. [`diff`] lists every place a session
//! can wait in the old program and whether a session waiting there can resume in the new
//! one (same flow and node name, same kind of wait, compatible variables), must restart, or
//! needs an explicit mapping. [`migrate`] moves one session, following a map from old node
//! names to new ones where the names alone do not say.

use crate::session::{Frame, Session, State};
use crate::vm::{Loaded, initial_vars};
use botc_bytecode::{NONE, Op, Program};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitKind {
    Ask,
    Wait,
    Http,
    Handoff,
}

impl WaitKind {
    pub fn name(self) -> &'static str {
        match self {
            WaitKind::Ask => "ask",
            WaitKind::Wait => "wait",
            WaitKind::Http => "http",
            WaitKind::Handoff => "handoff",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Sessions waiting here continue in the new program as they are.
    Resume,
    /// The node is gone: sessions waiting here start over (unless a map says where to go).
    Restart,
    /// The node is there but differs (kind of wait, variable types): a map must say.
    Mapping,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Resume => "resume",
            Verdict::Restart => "restart",
            Verdict::Mapping => "mapping",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaitPoint {
    pub flow: String,
    pub node: String,
    pub kind: WaitKind,
    pub verdict: Verdict,
    pub reason: String,
}

/// A place a session can wait: node index, kind, and the position the session records.
#[derive(Clone, Copy, Debug)]
struct Point {
    node: u32,
    kind: WaitKind,
    state: State,
}

/// Where sessions can wait in a program.
fn wait_points(p: &Program) -> Vec<Point> {
    let mut out = Vec::new();
    for (i, n) in p.nodes.iter().enumerate() {
        let end = p
            .nodes
            .iter()
            .filter(|m| m.flow == n.flow && m.offset > n.offset)
            .map(|m| m.offset)
            .min()
            .unwrap_or_else(|| p.flows.get(n.flow as usize + 1).map_or(p.code.len() as u32, |f| f.entry));
        let mut at = n.offset as usize;
        while at < end as usize {
            let Some((op, next)) = Op::decode(&p.code, at) else { break };
            let point = match op {
                Op::Ask { a } => Some((WaitKind::Ask, State::Ask { ask: a })),
                Op::Wait { .. } => Some((WaitKind::Wait, State::Timer { pc: next as u32 })),
                Op::Http { h } => Some((WaitKind::Http, State::Http { http: h })),
                Op::Handoff { resumes: true, .. } => Some((WaitKind::Handoff, State::Handoff { pc: next as u32 })),
                _ => None,
            };
            // An ask's re-prompt code asks again; one point per node and kind is enough.
            if let Some((kind, state)) = point
                && !out.iter().any(|p: &Point| p.node == i as u32 && p.kind == kind)
            {
                out.push(Point { node: i as u32, kind, state });
            }
            at = next;
        }
    }
    out
}

/// Whether a waiting position runs a timer (an ask with a timeout, or a wait).
fn has_timeout(p: &Program, state: State) -> bool {
    match state {
        State::Ask { ask } => p.asks.get(ask as usize).is_some_and(|a| a.timeout > 0),
        State::Timer { .. } => true,
        _ => false,
    }
}

fn flow_name(p: &Program, node: u32) -> &str {
    let n = &p.nodes[node as usize];
    p.text(p.flows[n.flow as usize].name)
}

fn node_name(p: &Program, node: u32) -> &str {
    p.text(p.nodes[node as usize].name)
}

fn find_node(p: &Program, flow: &str, node: &str) -> Option<u32> {
    p.nodes
        .iter()
        .position(|n| p.text(p.flows[n.flow as usize].name) == flow && p.text(n.name) == node)
        .map(|i| i as u32)
}

/// Variables with a default in a flow: those its prologue stores.
fn defaults(p: &Program, flow: usize) -> Vec<u16> {
    let mut out = Vec::new();
    let mut at = p.flows[flow].entry as usize;
    while let Some((op, next)) = Op::decode(&p.code, at) {
        match op {
            Op::Node { .. } | Op::Jump { .. } => break,
            Op::Store { v } => out.push(v),
            _ => {}
        }
        at = next;
    }
    out
}

/// Why the variables of `flow` in `old` cannot carry over to `new`, if they cannot.
fn vars_problem(old: &Program, new: &Program, flow: &str) -> Option<String> {
    let fo = old.flows.iter().position(|f| old.text(f.name) == flow)?;
    let fnew = new.flows.iter().position(|f| new.text(f.name) == flow)?;
    let with_default = defaults(new, fnew);
    for (i, v) in new.flows[fnew].vars.iter().enumerate() {
        let name = new.text(v.name);
        match old.flows[fo].vars.iter().find(|o| old.text(o.name) == name) {
            Some(o) if o.ty != v.ty => {
                return Some(format!("variable `{name}` changed type ({} → {})", o.ty.name(), v.ty.name()));
            }
            Some(_) => {}
            None if with_default.contains(&(i as u16)) => {}
            None => return Some(format!("new variable `{name}` has no default")),
        }
    }
    None
}

pub fn diff(old: &Program, new: &Program) -> Vec<WaitPoint> {
    let new_points = wait_points(new);
    wait_points(old)
        .into_iter()
        .map(|p| {
            let flow = flow_name(old, p.node).to_string();
            let node = node_name(old, p.node).to_string();
            let (verdict, reason) = match find_node(new, &flow, &node) {
                None => (Verdict::Restart, format!("node `{node}` is gone from `{flow}`")),
                Some(n) => match new_points.iter().find(|q| q.node == n) {
                    None => (Verdict::Mapping, format!("`{node}` no longer waits")),
                    Some(q) if q.kind != p.kind => (
                        Verdict::Mapping,
                        format!("`{node}` was a `{}` node and is now a `{}` node", p.kind.name(), q.kind.name()),
                    ),
                    Some(q) if has_timeout(old, p.state) != has_timeout(new, q.state) => {
                        (Verdict::Mapping, format!("`{node}` gained or lost its timeout"))
                    }
                    Some(_) => match vars_problem(old, new, &flow) {
                        Some(why) => (Verdict::Mapping, why),
                        None => (Verdict::Resume, String::new()),
                    },
                },
            };
            WaitPoint { flow, node, kind: p.kind, verdict, reason }
        })
        .collect()
}

/// Moves a session of `old` to `new`. `map` sends old node names (in any flow) to new ones
/// where names alone do not match. Fails (the session must restart) when a position or a
/// variable cannot be carried over.
pub fn migrate(
    old: &Program,
    new_program: &Loaded,
    session: &Session,
    map: &BTreeMap<String, String>,
) -> Result<Session, String> {
    let new = new_program.program();
    if session.program != old.hash {
        return Err("the session does not belong to the old program".into());
    }
    let old_points = wait_points(old);
    let new_points = wait_points(new);
    let mut out = session.clone();
    out.program = new.hash;
    out.state = match session.state {
        State::New | State::Ended => session.state,
        waiting => {
            let point = old_points
                .iter()
                .find(|p| p.state == waiting)
                .ok_or("the session waits at a position the old program does not have")?;
            let flow = flow_name(old, point.node);
            let old_node = node_name(old, point.node);
            let target = map.get(old_node).map_or(old_node, String::as_str);
            let n = find_node(new, flow, target).ok_or_else(|| format!("`{target}` does not exist in `{flow}`"))?;
            let q = new_points
                .iter()
                .find(|q| q.node == n && q.kind == point.kind)
                .ok_or_else(|| format!("`{target}` is not a {} in the new program", point.kind.name()))?;
            q.state
        }
    };
    // A live timer only carries over to a position that still has one.
    if !has_timeout(new, out.state) {
        out.timer = 0;
    }
    // Every frame: same flow by name, variables by name (new ones get their defaults later:
    // here they start unset only if the flow has a default for them), return positions by
    // the call instruction of the same node.
    let mut frames: Vec<Frame> = Vec::with_capacity(session.frames.len());
    // Each frame's return position, to check the call there calls this frame's flow.
    let mut frame_callers: Vec<u32> = Vec::new();
    for f in session.frames.iter() {
        let ofl = &old.flows[f.flow as usize];
        let flow = old.text(ofl.name);
        let nf =
            new.flows.iter().position(|x| new.text(x.name) == flow).ok_or_else(|| format!("flow `{flow}` is gone"))?;
        if let Some(why) = vars_problem(old, new, flow) {
            return Err(why);
        }
        // Variables new in this version start from their defaults (`vars_problem` made sure
        // they have one); the others keep their values.
        let initial = initial_vars(new_program, nf as u16).map_err(|e| e.to_string())?;
        let vars = new.flows[nf]
            .vars
            .iter()
            .zip(initial)
            .map(|(v, init)| {
                let name = new.text(v.name);
                // Unset in the old session (a new version may assign it earlier): the new default.
                ofl.vars
                    .iter()
                    .position(|o| old.text(o.name) == name)
                    .map(|i| f.vars[i].clone())
                    .filter(|v| *v != crate::value::Value::Unset)
                    .unwrap_or(init)
            })
            .collect();
        let ret = if f.ret == NONE { NONE } else { return_position(old, new, f.ret, map)? };
        frame_callers.push(ret);
        frames.push(Frame { flow: nf as u16, ret, vars });
    }
    for (frame, &ret) in frames.iter().zip(&frame_callers) {
        if ret == NONE {
            continue;
        }
        match call_before(new, ret) {
            Some(Op::CallFlow { f }) if f == frame.flow => {}
            _ => {
                let flow = new.text(new.flows[frame.flow as usize].name);
                return Err(format!("`{flow}` is no longer called where this conversation left its caller"));
            }
        }
    }
    out.frames = frames;
    Ok(out)
}

/// The `CallFlow` instruction that returns to `ret` (the one right before it).
fn call_before(p: &Program, ret: u32) -> Option<Op> {
    let node = p.node_at(ret.saturating_sub(1))?;
    let mut at = p.nodes[node as usize].offset as usize;
    while let Some((op, next)) = Op::decode(&p.code, at) {
        if next as u32 == ret {
            return Some(op);
        }
        if next as u32 > ret {
            return None;
        }
        at = next;
    }
    None
}

/// Translates a caller's return position: the `CallFlow` before it, found in the node of the
/// same name in the new program.
fn return_position(old: &Program, new: &Program, ret: u32, map: &BTreeMap<String, String>) -> Result<u32, String> {
    let node = old.node_at(ret.saturating_sub(1)).ok_or("a return position outside any node")?;
    let flow = flow_name(old, node);
    let name = node_name(old, node);
    let target = map.get(name).map_or(name, String::as_str);
    let n =
        find_node(new, flow, target).ok_or_else(|| format!("`{target}` (a call in progress) is gone from `{flow}`"))?;
    let start = new.nodes[n as usize].offset as usize;
    let mut at = start;
    while let Some((op, next)) = Op::decode(&new.code, at) {
        if matches!(op, Op::CallFlow { .. }) {
            return Ok(next as u32);
        }
        if at != start && matches!(op, Op::Node { .. }) {
            break;
        }
        at = next;
    }
    Err(format!("`{target}` no longer calls a sub-flow"))
}

/// What a deploy does to the conversations waiting in a bot, worked out exactly as the
/// worker will do it: each session is moved with [`migrate`] (no map) and counted by where
/// it waits and what happens to it there.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Forecast {
    /// Waiting on the version being deployed already: nothing happens to them.
    pub staying: u64,
    /// Carried over to the new version where they wait.
    pub moving: u64,
    /// Started over: their node or variables do not fit the new version, or their own
    /// version is not in the registry.
    pub restarting: u64,
    /// By the version (hash) and node they wait at, and whether they move: how many, and
    /// why not.
    pub places: BTreeMap<([u8; 32], String, bool), Place>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Place {
    pub count: u64,
    /// Why they start over (empty when they move).
    pub reason: String,
}

impl Forecast {
    pub fn waiting(&self) -> u64 {
        self.staying + self.moving + self.restarting
    }
}

/// The [`Forecast`] of moving `sessions` to `target`; `version` finds the program a session
/// is pinned to (the registry's, by hash). Sessions that wait nowhere (new or finished) are
/// not counted: they start from the top either way.
pub fn forecast<'a>(
    target: &Loaded,
    version: impl Fn(&[u8; 32]) -> Option<&'a Loaded>,
    sessions: impl IntoIterator<Item = Session>,
) -> Forecast {
    let mut f = Forecast::default();
    for s in sessions {
        if matches!(s.state, State::New | State::Ended) {
            continue;
        }
        if s.program == target.program().hash {
            f.staying += 1;
            continue;
        }
        let (place, outcome) = match version(&s.program) {
            None => ("(unknown version)".to_string(), Err("its version is not in the registry".to_string())),
            Some(old) => {
                let p = old.program();
                let place = old.waiting_at(&s).map_or_else(
                    || "(nowhere)".to_string(),
                    |n| {
                        let flow = flow_name(p, n);
                        let node = node_name(p, n);
                        if p.flows.first().is_some_and(|main| p.text(main.name) == flow) {
                            node.to_string()
                        } else {
                            format!("{flow}.{node}")
                        }
                    },
                );
                (place, migrate(p, target, &s, &BTreeMap::new()).map(|_| ()))
            }
        };
        let moves = outcome.is_ok();
        if moves {
            f.moving += 1;
        } else {
            f.restarting += 1;
        }
        let entry = f
            .places
            .entry((s.program, place, moves))
            .or_insert(Place { count: 0, reason: outcome.err().unwrap_or_default() });
        entry.count += 1;
    }
    f
}
