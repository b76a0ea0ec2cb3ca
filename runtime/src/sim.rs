//! An in-memory conversation: the real VM with a virtual clock, timers kept in a list, and
//! http and hand-backs supplied by the caller. `botc test` and `botc chat` are built on it.

use crate::session::{Session, State};
use crate::value::Value;
use crate::vm::{self, Context, Effect, Error, Input, Limits, Loaded, Step};

/// One message the bot sent.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    pub text: String,
    pub image: Option<String>,
    pub buttons: Vec<vm::Button>,
}

/// What one input produced, collected from every step it caused (firing timers can cause
/// several).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reply {
    pub messages: Vec<Message>,
    pub requests: Vec<Effect>,
    pub handoffs: Vec<(String, Option<String>)>,
    pub visited: Vec<u32>,
    pub ignored: Vec<&'static str>,
}

pub struct Conversation<'p> {
    pub program: &'p Loaded,
    pub session: Session,
    /// Seconds since the Unix epoch on the virtual clock.
    pub now: u64,
    pub context: Context,
    pub limits: Limits,
    /// Live timers: (number, due time).
    timers: Vec<(u32, u64)>,
    events: u64,
    /// Every node visited, in order, across the whole conversation.
    pub trail: Vec<u32>,
}

impl<'p> Conversation<'p> {
    pub fn new(program: &'p Loaded, context: Context) -> Conversation<'p> {
        Conversation {
            program,
            session: program.new_session(),
            now: 1_767_225_600, // 2026-01-01T00:00:00Z: tests see the same clock everywhere
            context,
            limits: Limits::default(),
            timers: Vec::new(),
            events: 0,
            trail: Vec::new(),
        }
    }

    /// Begins at `node` with `vars` set, instead of at the flow's start.
    pub fn start_at(&mut self, node: &str, vars: &[(String, Value)]) -> Result<Reply, String> {
        let step = vm::start_at(self.program, &mut self.session, node, vars, &self.context, self.now, &self.limits)?;
        Ok(self.absorb(step))
    }

    pub fn user(&mut self, text: &str) -> Result<Reply, Error> {
        self.input(Input::Text(text.to_string()), text)
    }

    pub fn button(&mut self, value: &str) -> Result<Reply, Error> {
        self.input(Input::Button(value.to_string()), value)
    }

    pub fn http(&mut self, status: u16, body: serde_json::Value) -> Result<Reply, Error> {
        self.input(Input::Http { status, body }, "")
    }

    pub fn hand_back(&mut self) -> Result<Reply, Error> {
        self.input(Input::HandBack, "")
    }

    /// Moves the clock forward, firing every timer that falls due, in order.
    pub fn advance(&mut self, secs: u64) -> Result<Reply, Error> {
        let until = self.now + secs;
        let mut reply = Reply::default();
        loop {
            self.timers.sort_by_key(|&(n, at)| (at, n));
            let Some(&(timer, at)) = self.timers.first().filter(|&&(_, at)| at <= until) else { break };
            self.timers.remove(0);
            self.now = at;
            let r = self.input(Input::Timer { timer }, "")?;
            merge(&mut reply, r);
        }
        self.now = until;
        Ok(reply)
    }

    fn input(&mut self, input: Input, text: &str) -> Result<Reply, Error> {
        self.events += 1;
        self.context.event_id = format!("sim-{}", self.events);
        self.context.event_text = text.to_string();
        // As `botc serve` does: a message after the end begins the conversation again.
        self.program.reopen(&mut self.session, &input);
        let step = vm::step(self.program, &mut self.session, input, &self.context, self.now, &self.limits)?;
        Ok(self.absorb(step))
    }

    fn absorb(&mut self, step: Step) -> Reply {
        let mut reply = Reply { visited: step.visited.clone(), ..Reply::default() };
        reply.ignored.extend(step.ignored);
        self.trail.extend(&step.visited);
        for e in step.effects {
            match e {
                Effect::Send { text, image, buttons } => reply.messages.push(Message { text, image, buttons }),
                Effect::StartTimer { timer, at } => self.timers.push((timer, at)),
                Effect::CancelTimer { timer } => self.timers.retain(|&(n, _)| n != timer),
                Effect::Http { .. } => reply.requests.push(e),
                Effect::Handoff { queue, reason } => reply.handoffs.push((queue, reason)),
                Effect::End => self.timers.clear(),
            }
        }
        reply
    }

    /// The node the conversation waits at, by name, or `None` when it is not waiting.
    pub fn waiting_at(&self) -> Option<&str> {
        let p = self.program.program();
        let node = self.program.waiting_at(&self.session)?;
        Some(p.text(p.nodes.get(node as usize)?.name))
    }

    pub fn ended(&self) -> bool {
        self.session.state == State::Ended
    }

    /// The variables of the innermost frame, by name.
    pub fn vars(&self) -> Vec<(String, Value)> {
        let p = self.program.program();
        let Some(frame) = self.session.frames.last() else { return Vec::new() };
        let flow = &p.flows[frame.flow as usize];
        flow.vars.iter().zip(&frame.vars).map(|(v, value)| (p.text(v.name).to_string(), value.clone())).collect()
    }

    /// Pending timers as (number, seconds from now).
    pub fn timers(&self) -> Vec<(u32, u64)> {
        self.timers.iter().map(|&(n, at)| (n, at.saturating_sub(self.now))).collect()
    }
}

fn merge(into: &mut Reply, r: Reply) {
    into.messages.extend(r.messages);
    into.requests.extend(r.requests);
    into.handoffs.extend(r.handoffs);
    into.visited.extend(r.visited);
    into.ignored.extend(r.ignored);
}
