//! The VM: [`step`] applies one event to one session and returns the effects to perform.
//!
//! It is a pure function of (program, session, input, context, now): no I/O, no clock of its
//! own, no randomness. It runs from the session's position until the conversation waits
//! (an `ask`, `wait`, `http` or resuming `handoff`) or ends, under a fuel limit.
//!
//! It relies on exactly what `botc_bytecode::verify` guarantees; anything else that goes
//! wrong is either the flow's fault at run time (a [`Trap`], such as running out of fuel) or
//! a bug in botc (a [`VmBug`]), and the two are different types.

use crate::session::{Frame, Session, State};
use crate::value::Value;
use botc_bytecode::{self as bc, BinOp, Builtin, Expect, Func, NONE, Op, UnOp, Verified, answers};
use serde_json::Value as Json;
use std::fmt;

/// A verified program with what the VM needs precomputed (compiled regexes).
pub struct Loaded {
    verified: Verified,
    /// `regexes[c]`: constant `c` compiled, for every constant used as a pattern.
    regexes: Vec<Option<regex::Regex>>,
    /// Every instruction decoded once, with the offset of the next one.
    ops: Vec<(Op, u32)>,
    /// `op_at[offset]`: index into `ops` of the instruction starting at that byte.
    op_at: Vec<u32>,
}

impl Loaded {
    /// Loads and verifies a `.botc` file and compiles its patterns.
    pub fn from_bytes(bytes: &[u8]) -> Result<Loaded, bc::LoadError> {
        Loaded::new(bc::load(bytes)?)
    }

    pub fn new(verified: Verified) -> Result<Loaded, bc::LoadError> {
        let p = verified.program();
        let mut regexes: Vec<Option<regex::Regex>> = vec![None; p.consts.len()];
        let mut patterns: Vec<u32> = p
            .asks
            .iter()
            .filter_map(|a| if let Expect::Regex { pattern } = a.expect { Some(pattern) } else { None })
            .collect();
        // Patterns passed to `matches` are constants pushed right before the call.
        let mut at = 0;
        let mut last_text = None;
        while let Some((op, next)) = Op::decode(&p.code, at) {
            match op {
                Op::PushText { c } => last_text = Some(c),
                Op::Call { f, .. } if f == Func::Matches.code() => patterns.extend(last_text),
                _ => last_text = None,
            }
            at = next;
        }
        for c in patterns {
            let re = regex::Regex::new(p.text(c))
                .map_err(|e| bc::LoadError::Invalid(format!("pattern {:?} does not compile: {e}", p.text(c))))?;
            regexes[c as usize] = Some(re);
        }
        let p = verified.program();
        let mut ops = Vec::new();
        let mut op_at = vec![u32::MAX; p.code.len()];
        let mut at = 0;
        while let Some((op, next)) = Op::decode(&p.code, at) {
            op_at[at] = ops.len() as u32;
            ops.push((op, next as u32));
            at = next;
        }
        Ok(Loaded { verified, regexes, ops, op_at })
    }

    /// The instruction at byte offset `pc` (verified to be a boundary whenever execution
    /// can reach it).
    #[inline]
    fn op(&self, pc: u32) -> Option<(Op, u32)> {
        let i = *self.op_at.get(pc as usize)?;
        self.ops.get(i as usize).copied()
    }

    pub fn program(&self) -> &bc::Program {
        self.verified.program()
    }

    /// A fresh session pinned to this program.
    pub fn new_session(&self) -> Session {
        Session::new(self.program().hash)
    }

    /// A fresh session that follows `old`: its version and timer numbers keep counting, so
    /// compare-and-set stays meaningful and the old conversation's timers stay stale.
    pub fn restart(&self, old: &Session) -> Session {
        let mut s = self.new_session();
        s.timers_started = old.timers_started;
        s.version = old.version;
        s
    }

    /// Readies `session` for `input`: a conversation that has ended starts again when its
    /// user writes or presses a button (timers, http answers and hand-backs for it are
    /// ignored). The one rule `botc serve`, `botc test` and `botc chat` all follow; returns
    /// whether it started again.
    pub fn reopen(&self, session: &mut Session, input: &Input) -> bool {
        let reopens = session.state == State::Ended && matches!(input, Input::Text(_) | Input::Button(_));
        if reopens {
            *session = self.restart(session);
        }
        reopens
    }

    /// The node (index into `program().nodes`) a session waits at, or `None` when it is not
    /// waiting (new or ended). For a `wait` or a hand-off, the node that paused it.
    pub fn waiting_at(&self, session: &Session) -> Option<u32> {
        let p = self.program();
        match session.state {
            State::Ask { ask } => Some(p.asks.get(ask as usize)?.node),
            State::Http { http } => Some(p.https.get(http as usize)?.node),
            State::Timer { pc } | State::Handoff { pc } => p.node_at(pc.saturating_sub(1)),
            State::New | State::Ended => None,
        }
    }
}

/// Who and what an event is about: the values of the built-ins.
#[derive(Clone, Debug, Default)]
pub struct Context {
    /// The event's id: an event whose id equals the session's last one is not applied twice.
    pub event_id: String,
    pub user_id: String,
    pub user_name: String,
    pub user_language: String,
    pub platform: String,
    pub bot_id: String,
    pub bot_name: String,
    /// `event.text`: what the user wrote (empty for timers and http responses).
    pub event_text: String,
}

/// What happened that the conversation must react to.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// The user wrote something (or a conversation starts with a message).
    Text(String),
    /// The user pressed a button with this value.
    Button(String),
    /// A timer fired; `timer` is the sequence number it was scheduled with.
    Timer { timer: u32 },
    /// An http request finished (`status` 0: it failed before any response).
    Http { status: u16, body: Json },
    /// The human agent handed the conversation back.
    HandBack,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Button {
    pub label: String,
    /// The value sent back when pressed, or `None` for a link.
    pub value: Option<String>,
    pub url: Option<String>,
}

/// Something the runtime must do. Effects are data; the VM performs none of them.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send {
        text: String,
        image: Option<String>,
        buttons: Vec<Button>,
    },
    /// Fire `Input::Timer { timer }` at unix time `at` (seconds).
    StartTimer {
        timer: u32,
        at: u64,
    },
    /// A timer that can no longer matter (stale timers are ignored anyway; this lets stores
    /// delete it early).
    CancelTimer {
        timer: u32,
    },
    Http {
        method: bc::Method,
        url: String,
        headers: Vec<(String, String)>,
        body: Option<String>,
    },
    Handoff {
        queue: String,
        reason: Option<String>,
    },
    /// The conversation is over.
    End,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    pub effects: Vec<Effect>,
    /// Nodes entered, in order (for per-node metrics and tests' coverage).
    pub visited: Vec<u32>,
    /// The input did not apply: a duplicate event, a stale timer, or text while the
    /// conversation waits for something else. The session is unchanged.
    pub ignored: Option<&'static str>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Instructions one step may execute before it traps.
    pub fuel: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { fuel: 100_000 }
    }
}

/// The flow did something it cannot do at run time. The session is left as it was.
#[derive(Clone, Debug, PartialEq)]
pub enum Trap {
    OutOfFuel {
        fuel: u32,
    },
    /// A `json` value did not have the type an operation needs.
    Type {
        op: &'static str,
        found: &'static str,
    },
    /// The session belongs to another program (a deploy did not migrate it).
    WrongProgram,
}

/// An invariant the verifier or checker should have guaranteed did not hold: a bug in botc.
#[derive(Clone, Debug, PartialEq)]
pub struct VmBug(pub String);

#[derive(Clone, Debug, PartialEq)]
pub enum Error {
    Trap(Trap),
    Bug(VmBug),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Trap(Trap::OutOfFuel { fuel }) => {
                write!(f, "the flow ran {fuel} instructions without waiting for input; it was stopped")
            }
            Error::Trap(Trap::Type { op, found }) => write!(f, "`{op}` cannot use a {found} value (from json data)"),
            Error::Trap(Trap::WrongProgram) => write!(f, "the session belongs to another version of the flow"),
            Error::Bug(VmBug(m)) => write!(f, "internal error in the botc VM (please report): {m}"),
        }
    }
}

impl std::error::Error for Error {}

fn bug(m: impl Into<String>) -> Error {
    Error::Bug(VmBug(m.into()))
}

fn trap_type(op: &'static str, v: &Value) -> Error {
    Error::Trap(Trap::Type { op, found: v.type_name() })
}

/// Applies `input` to `session`. On success the session holds the new state (and a bumped
/// version); on error it is unchanged.
pub fn step(
    program: &Loaded,
    session: &mut Session,
    input: Input,
    ctx: &Context,
    now: u64,
    limits: &Limits,
) -> Result<Step, Error> {
    let mut work = session.clone();
    let out = step_in_place(program, &mut work, input, ctx, now, limits)?;
    *session = work;
    Ok(out)
}

/// [`step`] without the copy that makes errors leave the session unchanged: on error the
/// session is left part-way and must be discarded. For workers, which decode the session
/// for every event anyway and only persist it after a successful step.
pub fn step_in_place(
    program: &Loaded,
    session: &mut Session,
    input: Input,
    ctx: &Context,
    now: u64,
    limits: &Limits,
) -> Result<Step, Error> {
    if session.program != program.program().hash {
        return Err(Error::Trap(Trap::WrongProgram));
    }
    if !ctx.event_id.is_empty() && ctx.event_id == session.last_event {
        return Ok(Step { ignored: Some("event already applied"), ..Step::default() });
    }
    let mut m = Machine::new(program, session, ctx, now);
    let start = match m.resume(input)? {
        Resume::At(pc) => pc,
        Resume::Ignore(why) => return Ok(Step { ignored: Some(why), ..Step::default() }),
    };
    m.run(start, limits.fuel)?;
    m.s.last_event.clone_from(&ctx.event_id);
    m.s.version += 1;
    Ok(m.step)
}

/// Starts a conversation at node `node` of the main flow instead of its `start`, with some
/// variables already set (for tests that begin in the middle of a flow). Defaults are applied
/// first, then `vars`, then the node runs as if the conversation had just reached it.
pub fn start_at(
    program: &Loaded,
    session: &mut Session,
    node: &str,
    vars: &[(String, Value)],
    ctx: &Context,
    now: u64,
    limits: &Limits,
) -> Result<Step, String> {
    let p = program.program();
    let target = p
        .nodes
        .iter()
        .find(|n| n.flow == 0 && p.text(n.name) == node)
        .ok_or_else(|| format!("the flow has no node `{node}`"))?
        .offset;
    let flow = &p.flows[0];
    let mut work = program.new_session();
    work.frames = vec![Frame { flow: 0, ret: NONE, vars: vec![Value::Unset; flow.vars.len()] }];
    let mut m = Machine::new(program, &mut work, ctx, now);
    m.run_prologue(flow.entry).map_err(|e| e.to_string())?;
    for (name, value) in vars {
        let i = flow
            .vars
            .iter()
            .position(|v| p.text(v.name) == name)
            .ok_or_else(|| format!("the flow has no variable `{name}`"))?;
        m.s.frames[0].vars[i] = value.clone();
    }
    m.run(target, limits.fuel).map_err(|e| e.to_string())?;
    m.s.version += 1;
    let step = m.step;
    *session = work;
    Ok(step)
}

/// A flow's variables as its defaults leave them (unset where there is no default).
pub fn initial_vars(program: &Loaded, flow: u16) -> Result<Vec<Value>, Error> {
    let p = program.program();
    let f = p.flows.get(flow as usize).ok_or_else(|| bug("flow out of range"))?;
    let mut scratch = program.new_session();
    scratch.frames = vec![Frame { flow, ret: NONE, vars: vec![Value::Unset; f.vars.len()] }];
    let ctx = Context::default();
    let mut m = Machine::new(program, &mut scratch, &ctx, 0);
    m.run_prologue(f.entry)?;
    Ok(scratch.frames.pop().map(|f| f.vars).unwrap_or_default())
}

enum Resume {
    At(u32),
    Ignore(&'static str),
}

struct Machine<'a> {
    p: &'a Loaded,
    s: &'a mut Session,
    ctx: &'a Context,
    now: u64,
    step: Step,
    stack: Vec<Operand<'a>>,
    buttons: Vec<Button>,
}

/// A value on the operand stack. Texts from the program's constants and the event's context
/// are borrowed, not copied: most of them only ever end up inside a larger message.
#[derive(Clone, Debug)]
enum Operand<'a> {
    Str(&'a str),
    Val(Value),
}

impl Operand<'_> {
    fn into_value(self) -> Value {
        match self {
            Operand::Str(s) => Value::Text(s.to_string()),
            Operand::Val(v) => v,
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Operand::Str(s) => Some(s),
            Operand::Val(Value::Text(s)) => Some(s),
            Operand::Val(_) => None,
        }
    }
}

impl fmt::Display for Operand<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Str(s) => f.write_str(s),
            Operand::Val(v) => v.fmt(f),
        }
    }
}

impl<'a> Machine<'a> {
    fn new(p: &'a Loaded, s: &'a mut Session, ctx: &'a Context, now: u64) -> Machine<'a> {
        Machine {
            p,
            s,
            ctx,
            now,
            step: Step { effects: Vec::with_capacity(4), visited: Vec::with_capacity(8), ignored: None },
            stack: Vec::with_capacity(usize::from(p.program().max_stack)),
            buttons: Vec::new(),
        }
    }

    fn prog(&self) -> &'a bc::Program {
        self.p.program()
    }

    fn frame(&mut self) -> Result<&mut Frame, Error> {
        self.s.frames.last_mut().ok_or_else(|| bug("no frame"))
    }

    /// Decides where execution continues for this input.
    fn resume(&mut self, input: Input) -> Result<Resume, Error> {
        match (self.s.state, input) {
            (State::New, Input::Text(_) | Input::Button(_)) => {
                let p = self.p.program();
                let (nvars, entry) = (p.flows[0].vars.len(), p.flows[0].entry);
                self.s.frames = vec![Frame { flow: 0, ret: NONE, vars: vec![Value::Unset; nvars] }];
                Ok(Resume::At(entry))
            }
            (State::New, _) => Ok(Resume::Ignore("the conversation has not started")),
            (State::Ended, _) => Ok(Resume::Ignore("the conversation has ended")),
            (State::Ask { ask }, Input::Text(answer) | Input::Button(answer)) => self.answer(ask, &answer),
            (State::Ask { ask }, Input::Timer { timer }) if timer != 0 && timer == self.s.timer => {
                let a = self.prog().asks.get(ask as usize).ok_or_else(|| bug("ask out of range"))?;
                if a.on_timeout == NONE {
                    return Err(bug("a timer is live for an ask without a timeout"));
                }
                let to = a.on_timeout;
                self.s.timer = 0;
                self.s.invalid = 0;
                Ok(Resume::At(to))
            }
            (State::Timer { pc }, Input::Timer { timer }) if timer != 0 && timer == self.s.timer => {
                self.s.timer = 0;
                Ok(Resume::At(pc))
            }
            (_, Input::Timer { .. }) => Ok(Resume::Ignore("stale timer")),
            (State::Http { http }, Input::Http { status, body }) => {
                let h = self.prog().https.get(http as usize).ok_or_else(|| bug("http out of range"))?.clone();
                let ok = (200..300).contains(&status);
                if !ok && h.on_error != NONE {
                    return Ok(Resume::At(h.on_error));
                }
                if h.var != u16::MAX {
                    let v = Value::Json(serde_json::json!({ "status": status, "body": body }));
                    *self.var(h.var)? = v;
                }
                Ok(Resume::At(h.next))
            }
            (State::Handoff { pc }, Input::HandBack) => Ok(Resume::At(pc)),
            (State::Ask { .. }, _) => Ok(Resume::Ignore("waiting for an answer")),
            (State::Http { .. }, _) => Ok(Resume::Ignore("waiting for an http response")),
            (State::Timer { .. }, _) => Ok(Resume::Ignore("waiting for a timer")),
            (State::Handoff { .. }, _) => Ok(Resume::Ignore("handed off to a human")),
        }
    }

    fn var(&mut self, v: u16) -> Result<&mut Value, Error> {
        self.frame()?.vars.get_mut(v as usize).ok_or_else(|| bug("variable out of range"))
    }

    /// Validates an answer: stores it and continues, or re-prompts, or gives up.
    fn answer(&mut self, ask: u16, answer: &str) -> Result<Resume, Error> {
        let a: &'a bc::Ask = self.prog().asks.get(ask as usize).ok_or_else(|| bug("ask out of range"))?;
        let text = answer.trim();
        let value = match a.expect {
            Expect::Text => Some(Value::Text(text.to_string())),
            Expect::Number => answers::number(text).map(Value::Num),
            Expect::Integer => answers::integer(text).map(Value::Int),
            Expect::Boolean => answers::boolean(text).map(Value::Bool),
            Expect::Email => answers::is_email(text).then(|| Value::Text(text.to_string())),
            Expect::Choice => a
                .choices
                .iter()
                .map(|&c| self.prog().text(c))
                .find(|c| answers::same_words(c, text))
                .map(|c| Value::Text(c.to_string())),
            Expect::Regex { pattern } => {
                let re = self
                    .p
                    .regexes
                    .get(pattern as usize)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| bug("pattern not compiled"))?;
                re.is_match(text).then(|| Value::Text(text.to_string()))
            }
        };
        if self.s.timer != 0 {
            self.step.effects.push(Effect::CancelTimer { timer: self.s.timer });
            self.s.timer = 0;
        }
        match value {
            Some(v) => {
                *self.var(a.var)? = v;
                self.s.invalid = 0;
                Ok(Resume::At(a.next))
            }
            None => {
                self.s.invalid = self.s.invalid.saturating_add(1);
                if self.s.invalid > a.retries && a.on_invalid != NONE {
                    self.s.invalid = 0;
                    Ok(Resume::At(a.on_invalid))
                } else {
                    Ok(Resume::At(a.reprompt))
                }
            }
        }
    }

    fn pop(&mut self) -> Result<Value, Error> {
        Ok(self.pop_operand()?.into_value())
    }

    fn pop_operand(&mut self) -> Result<Operand<'a>, Error> {
        self.stack.pop().ok_or_else(|| bug("stack underflow"))
    }

    /// The top `n` operands, removed from the stack.
    fn pop_n(&mut self, n: usize) -> Result<std::vec::Drain<'_, Operand<'a>>, Error> {
        let at = self.stack.len().checked_sub(n).ok_or_else(|| bug("stack underflow"))?;
        Ok(self.stack.drain(at..))
    }

    fn pop_text(&mut self) -> Result<String, Error> {
        Ok(match self.pop_operand()? {
            Operand::Val(Value::Text(s)) => s,
            other => other.to_string(),
        })
    }

    fn start_timer(&mut self, secs: u32) {
        self.s.timers_started = self.s.timers_started.wrapping_add(1).max(1);
        self.s.timer = self.s.timers_started;
        self.step.effects.push(Effect::StartTimer { timer: self.s.timer, at: self.now + u64::from(secs) });
    }

    /// Runs a flow's variable defaults: everything before its first node.
    fn run_prologue(&mut self, entry: u32) -> Result<(), Error> {
        let mut pc = entry as usize;
        while let Some((op, next)) = Op::decode(&self.prog().code, pc) {
            match op {
                Op::Node { .. } | Op::Jump { .. } => return Ok(()),
                Op::PushText { .. }
                | Op::PushInt { .. }
                | Op::PushNum { .. }
                | Op::PushBool { .. }
                | Op::List { .. } => {}
                Op::Store { .. } => {}
                _ => return Err(bug("unexpected instruction in a flow's prologue")),
            }
            // Execute the one instruction (the prologue holds only literals and stores).
            self.run_one(op)?;
            pc = next;
        }
        Err(bug("flow without nodes"))
    }

    /// The instructions a prologue may hold (the main loop runs them through here too).
    #[inline(always)]
    fn run_one(&mut self, op: Op) -> Result<(), Error> {
        match op {
            Op::PushText { c } => self.stack.push(Operand::Str(self.prog().text(c))),
            Op::PushInt { v } => self.stack.push(Operand::Val(Value::Int(v))),
            Op::PushNum { v } => self.stack.push(Operand::Val(Value::Num(v))),
            Op::PushBool { v } => self.stack.push(Operand::Val(Value::Bool(v))),
            Op::List { n } => {
                let items = self.pop_n(n as usize)?.map(|v| v.to_string()).collect();
                self.stack.push(Operand::Val(Value::List(items)));
            }
            Op::Store { v } => {
                let value = self.pop()?;
                *self.var(v)? = value;
            }
            _ => return Err(bug("not a prologue instruction")),
        }
        Ok(())
    }

    fn run(&mut self, mut pc: u32, fuel: u32) -> Result<(), Error> {
        let mut left = fuel;
        loop {
            if left == 0 {
                return Err(Error::Trap(Trap::OutOfFuel { fuel }));
            }
            left -= 1;
            let (op, mut next) = self.p.op(pc).ok_or_else(|| bug(format!("no instruction at {pc}")))?;
            match op {
                Op::PushText { .. }
                | Op::PushInt { .. }
                | Op::PushNum { .. }
                | Op::PushBool { .. }
                | Op::List { .. } => {
                    self.run_one(op)?;
                }
                Op::Load { v } => {
                    let value = self.var(v)?.clone();
                    if value == Value::Unset {
                        return Err(bug(format!("variable {v} read before it was assigned")));
                    }
                    self.stack.push(Operand::Val(value));
                }
                Op::Store { .. } => self.run_one(op)?,
                Op::Builtin { b } => {
                    let c: &'a Context = self.ctx;
                    let v: &'a String = match Builtin::from_code(b).ok_or_else(|| bug("bad builtin"))? {
                        Builtin::UserId => &c.user_id,
                        Builtin::UserName => &c.user_name,
                        Builtin::UserLanguage => &c.user_language,
                        Builtin::EventText => &c.event_text,
                        Builtin::EventPlatform | Builtin::BotPlatform => &c.platform,
                        Builtin::BotId => &c.bot_id,
                        Builtin::BotName => &c.bot_name,
                    };
                    self.stack.push(Operand::Str(v));
                }
                Op::Field { c } => {
                    let base = self.pop()?;
                    let field = self.prog().text(c);
                    let v = match &base {
                        Value::Json(j) => j.get(field).map_or(Value::Json(Json::Null), Value::from_json),
                        _ => Value::Json(Json::Null),
                    };
                    self.stack.push(Operand::Val(v));
                }
                Op::Unary { op } => {
                    let v = self.pop()?;
                    let r = match (UnOp::from_code(op).ok_or_else(|| bug("bad unary"))?, norm(v)) {
                        (UnOp::Not, Value::Bool(b)) => Value::Bool(!b),
                        (UnOp::Neg, Value::Int(i)) => Value::Int(i.wrapping_neg()),
                        (UnOp::Neg, Value::Num(n)) => Value::Num(-n),
                        (UnOp::Not, v) => return Err(trap_type("not", &v)),
                        (UnOp::Neg, v) => return Err(trap_type("-", &v)),
                    };
                    self.stack.push(Operand::Val(r));
                }
                Op::Binary { op } => {
                    let op = BinOp::from_code(op).ok_or_else(|| bug("bad binary"))?;
                    let b = self.pop_operand()?;
                    let a = self.pop_operand()?;
                    // Text comparisons and joins work on borrowed texts, without copies.
                    let r = match (a.as_str(), b.as_str(), op) {
                        (Some(x), Some(y), BinOp::Eq) => Value::Bool(x == y),
                        (Some(x), Some(y), BinOp::Ne) => Value::Bool(x != y),
                        (Some(x), Some(y), BinOp::Concat | BinOp::Add) => Value::Text([x, y].concat()),
                        _ => binary(op, norm(a.into_value()), norm(b.into_value()))?,
                    };
                    self.stack.push(Operand::Val(r));
                }
                Op::Call { f, argc } => {
                    let args: Vec<Value> = self.pop_n(argc as usize)?.map(|o| norm(o.into_value())).collect();
                    let f = Func::from_code(f).ok_or_else(|| bug("bad function"))?;
                    let r = self.call(f, args)?;
                    self.stack.push(Operand::Val(r));
                }
                Op::Concat { n } => {
                    let parts = self.pop_n(n as usize)?;
                    let size = parts.as_slice().iter().map(|p| p.as_str().map_or(16, str::len)).sum();
                    let mut text = String::with_capacity(size);
                    for part in parts {
                        match part.as_str() {
                            Some(s) => text.push_str(s),
                            None => {
                                use std::fmt::Write as _;
                                let _ = write!(text, "{part}");
                            }
                        }
                    }
                    self.stack.push(Operand::Val(Value::Text(text)));
                }
                Op::Pop => {
                    self.pop()?;
                }
                Op::Jump { to } => next = to,
                Op::JumpIfFalse { to } => {
                    let cond = match self.pop_operand()? {
                        Operand::Val(Value::Bool(b)) => b,
                        other => truthy(other.into_value())?,
                    };
                    if !cond {
                        next = to;
                    }
                }
                Op::AndThen { to } | Op::OrElse { to } => {
                    let top = match self.stack.last() {
                        Some(Operand::Val(Value::Bool(b))) => *b,
                        Some(other) => truthy(other.clone().into_value())?,
                        None => return Err(bug("stack underflow")),
                    };
                    let short = if matches!(op, Op::AndThen { .. }) { !top } else { top };
                    if short {
                        next = to;
                    } else {
                        self.pop()?;
                    }
                }
                Op::Node { n } => self.step.visited.push(n),
                Op::Button { url } => {
                    let value = self.pop_text()?;
                    let label = self.pop_text()?;
                    self.buttons.push(if url {
                        Button { label, value: None, url: Some(value) }
                    } else {
                        Button { label, value: Some(value), url: None }
                    });
                }
                Op::Say { image } => {
                    let text = self.pop_text()?;
                    let image = if image { Some(self.pop_text()?) } else { None };
                    let buttons = std::mem::take(&mut self.buttons);
                    self.step.effects.push(Effect::Send { text, image, buttons });
                }
                Op::Ask { a } => {
                    let text = self.pop_text()?;
                    let buttons = std::mem::take(&mut self.buttons);
                    self.step.effects.push(Effect::Send { text, image: None, buttons });
                    let timeout = self.prog().asks.get(a as usize).ok_or_else(|| bug("ask out of range"))?.timeout;
                    if timeout > 0 {
                        self.start_timer(timeout);
                    }
                    self.s.state = State::Ask { ask: a };
                    return Ok(());
                }
                Op::Http { h } => {
                    let http = self.prog().https.get(h as usize).ok_or_else(|| bug("http out of range"))?.clone();
                    let body = if http.body { Some(self.pop_text()?) } else { None };
                    let mut values = Vec::with_capacity(http.headers.len());
                    for _ in &http.headers {
                        values.push(self.pop_text()?);
                    }
                    values.reverse();
                    let url = self.pop_text()?;
                    let headers = http.headers.iter().map(|&c| self.prog().text(c).to_string()).zip(values).collect();
                    self.step.effects.push(Effect::Http { method: http.method, url, headers, body });
                    self.s.state = State::Http { http: h };
                    return Ok(());
                }
                Op::Handoff { q, reason, resumes } => {
                    let reason = if reason { Some(self.pop_text()?) } else { None };
                    self.step.effects.push(Effect::Handoff { queue: self.prog().text(q).to_string(), reason });
                    if resumes {
                        self.s.state = State::Handoff { pc: next };
                    } else {
                        self.s.state = State::Ended;
                        self.step.effects.push(Effect::End);
                    }
                    return Ok(());
                }
                Op::Wait { secs } => {
                    self.start_timer(secs);
                    self.s.state = State::Timer { pc: next };
                    return Ok(());
                }
                Op::CallFlow { f } => {
                    let flow = self.prog().flows.get(f as usize).ok_or_else(|| bug("flow out of range"))?;
                    let (params, nvars, entry) = (flow.params as usize, flow.vars.len(), flow.entry);
                    let mut vars: Vec<Value> = self.pop_n(params)?.map(Operand::into_value).collect();
                    vars.resize(nvars, Value::Unset);
                    if self.s.frames.len() >= 256 {
                        return Err(bug("call stack deeper than 256 (recursion should have been refused)"));
                    }
                    self.s.frames.push(Frame { flow: f, ret: next, vars });
                    next = entry;
                }
                Op::Return { value } => {
                    let frame = self.s.frames.pop().ok_or_else(|| bug("return without a frame"))?;
                    if frame.ret == NONE || self.s.frames.is_empty() {
                        return Err(bug("return from the main flow"));
                    }
                    // The callee's operands were its own; the result goes on the caller's.
                    let result = if value { Some(self.pop_operand()?) } else { None };
                    self.stack.clear();
                    self.stack.extend(result);
                    next = frame.ret;
                }
                Op::End => {
                    // Variables stay: transcripts and tests can still read the final state.
                    self.s.state = State::Ended;
                    self.step.effects.push(Effect::End);
                    return Ok(());
                }
            }
            pc = next;
        }
    }

    fn call(&self, f: Func, args: Vec<Value>) -> Result<Value, Error> {
        let text = |v: &Value, op: &'static str| match v {
            Value::Text(s) => Ok(s.clone()),
            other => Err(trap_type(op, other)),
        };
        let num = |v: &Value, op: &'static str| match v {
            Value::Int(i) => Ok(*i as f64),
            Value::Num(n) => Ok(*n),
            other => Err(trap_type(op, other)),
        };
        let name = f.name();
        let a = |i: usize| args.get(i).ok_or_else(|| bug("missing argument"));
        Ok(match f {
            Func::Len => match a(0)? {
                Value::Text(s) => Value::Int(s.chars().count() as i64),
                Value::List(l) => Value::Int(l.len() as i64),
                other => return Err(trap_type(name, other)),
            },
            Func::Lower => Value::Text(text(a(0)?, name)?.to_lowercase()),
            Func::Upper => Value::Text(text(a(0)?, name)?.to_uppercase()),
            Func::Trim => Value::Text(text(a(0)?, name)?.trim().to_string()),
            Func::Contains => {
                let needle = text(a(1)?, name)?;
                match a(0)? {
                    Value::Text(s) => Value::Bool(s.contains(&needle)),
                    Value::List(l) => Value::Bool(l.contains(&needle)),
                    other => return Err(trap_type(name, other)),
                }
            }
            Func::StartsWith => Value::Bool(text(a(0)?, name)?.starts_with(&text(a(1)?, name)?)),
            Func::EndsWith => Value::Bool(text(a(0)?, name)?.ends_with(&text(a(1)?, name)?)),
            Func::Matches => {
                let s = text(a(0)?, name)?;
                let pattern = text(a(1)?, name)?;
                // Literal patterns were compiled at load; others (from data) compile here.
                let found = self.p.regexes.iter().flatten().find(|r| r.as_str() == pattern).cloned();
                let re = match found {
                    Some(r) => r,
                    None => regex::Regex::new(&pattern)
                        .map_err(|_| Error::Trap(Trap::Type { op: "matches", found: "invalid pattern" }))?,
                };
                Value::Bool(re.is_match(&s))
            }
            Func::Replace => Value::Text(text(a(0)?, name)?.replace(&text(a(1)?, name)?, &text(a(2)?, name)?)),
            Func::Number => {
                Value::Num(text(a(0)?, name)?.trim().parse::<f64>().ok().filter(|n| n.is_finite()).unwrap_or(0.0))
            }
            Func::Int => Value::Int(num(a(0)?, name)?.trunc() as i64),
            Func::Round => Value::Int(num(a(0)?, name)?.round() as i64),
            Func::Floor => Value::Int(num(a(0)?, name)?.floor() as i64),
            Func::Ceil => Value::Int(num(a(0)?, name)?.ceil() as i64),
            Func::Abs => match a(0)? {
                Value::Int(i) => Value::Int(i.wrapping_abs()),
                other => Value::Num(num(other, name)?.abs()),
            },
            Func::Min | Func::Max => match (a(0)?, a(1)?) {
                (Value::Int(x), Value::Int(y)) => Value::Int(if f == Func::Min { *x.min(y) } else { *x.max(y) }),
                (x, y) => {
                    let (x, y) = (num(x, name)?, num(y, name)?);
                    Value::Num(if f == Func::Min { x.min(y) } else { x.max(y) })
                }
            },
            Func::Text => Value::Text(a(0)?.to_string()),
            Func::Join => match a(0)? {
                Value::List(l) => Value::Text(l.join(&text(a(1)?, name)?)),
                other => return Err(trap_type(name, other)),
            },
            Func::Now => Value::Int(self.now as i64),
            Func::Fixed => {
                let digits = match a(1)? {
                    Value::Int(d) => (*d).clamp(0, 10) as usize,
                    other => return Err(trap_type(name, other)),
                };
                Value::Text(fixed(num(a(0)?, name)?, digits))
            }
            Func::UrlEncode => Value::Text(url_encode(&a(0)?.to_string())),
            Func::JsonEscape => {
                let quoted = Json::String(a(0)?.to_string()).to_string();
                Value::Text(quoted[1..quoted.len() - 1].to_string())
            }
        })
    }
}

/// Json scalars become ordinary values so operators see one representation.
fn norm(v: Value) -> Value {
    match v {
        Value::Json(j) => Value::from_json(&j),
        other => other,
    }
}

fn truthy(v: Value) -> Result<bool, Error> {
    match norm(v) {
        Value::Bool(b) => Ok(b),
        other => Err(trap_type("condition", &other)),
    }
}

fn binary(op: BinOp, a: Value, b: Value) -> Result<Value, Error> {
    use Value::{Bool, Int, List, Num, Text};
    let num = |v: &Value| match v {
        Int(i) => Some(*i as f64),
        Num(n) => Some(*n),
        _ => None,
    };
    Ok(match op {
        BinOp::Eq | BinOp::Ne => {
            let eq = match (&a, &b) {
                (Int(x), Int(y)) => x == y,
                (Int(_) | Num(_), Int(_) | Num(_)) => num(&a) == num(&b),
                (Value::Json(Json::Null), Value::Json(Json::Null)) => true,
                _ => a == b,
            };
            Bool(if op == BinOp::Eq { eq } else { !eq })
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ord = match (&a, &b) {
                (Text(x), Text(y)) => x.cmp(y),
                _ => {
                    let (x, y) =
                        (num(&a).ok_or_else(|| trap_type("<", &a))?, num(&b).ok_or_else(|| trap_type("<", &b))?);
                    x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
                }
            };
            Bool(match op {
                BinOp::Lt => ord.is_lt(),
                BinOp::Le => ord.is_le(),
                BinOp::Gt => ord.is_gt(),
                _ => ord.is_ge(),
            })
        }
        BinOp::In | BinOp::NotIn => {
            let List(items) = &b else { return Err(trap_type("in", &b)) };
            let needle = a.to_string();
            let found = items.contains(&needle);
            Bool(if op == BinOp::In { found } else { !found })
        }
        BinOp::Concat => Text(format!("{a}{b}")),
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => match (&a, &b, op) {
            (Int(x), Int(y), BinOp::Add) => x.checked_add(*y).map_or(Num(*x as f64 + *y as f64), Int),
            (Int(x), Int(y), BinOp::Sub) => x.checked_sub(*y).map_or(Num(*x as f64 - *y as f64), Int),
            (Int(x), Int(y), BinOp::Mul) => x.checked_mul(*y).map_or(Num(*x as f64 * *y as f64), Int),
            (Int(x), Int(y), BinOp::Rem) => Int(if *y == 0 { 0 } else { x.wrapping_rem(*y) }),
            (Text(x), Text(y), BinOp::Add) => Text(format!("{x}{y}")),
            _ => {
                let x = num(&a).ok_or_else(|| trap_type("arithmetic", &a))?;
                let y = num(&b).ok_or_else(|| trap_type("arithmetic", &b))?;
                Num(match op {
                    BinOp::Add => x + y,
                    BinOp::Sub => x - y,
                    BinOp::Mul => x * y,
                    BinOp::Div if y == 0.0 => 0.0,
                    BinOp::Div => x / y,
                    _ if y == 0.0 => 0.0,
                    _ => x % y,
                })
            }
        },
    })
}

/// `x` with exactly `digits` decimals, halves rounded away from zero (`fixed(8.125, 2)` is
/// `8.13`; Rust's `{:.2}` alone rounds the binary value, which makes `8.12`).
fn fixed(x: f64, digits: usize) -> String {
    let scale = 10f64.powi(digits as i32);
    let rounded = (x * scale).round() / scale;
    // -0.00 reads as a bug in a bot's message.
    let rounded = if rounded == 0.0 { 0.0 } else { rounded };
    format!("{rounded:.digits$}")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fixed;

    #[test]
    fn fixed_writes_exactly_the_digits_asked_for() {
        assert_eq!(fixed(8.5, 2), "8.50");
        assert_eq!(fixed(35.0, 2), "35.00");
        assert_eq!(fixed(8.125, 2), "8.13");
        assert_eq!(fixed(-2.5, 0), "-3");
        assert_eq!(fixed(-0.001, 2), "0.00");
        assert_eq!(fixed(1234.5678, 1), "1234.6");
    }
}
