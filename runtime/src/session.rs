//! A conversation's state between events, and its wire encoding.
//!
//! The encoding is its own versioned format (not the VM's structs serialized): a version
//! byte, then fields as LEB128 varints and length-prefixed bytes. Decoding never panics and
//! refuses anything it does not fully understand.

pub use crate::codec::DecodeError;
use crate::codec::{Reader, put_bytes, put_var};
use crate::value::Value;
use serde_json::Value as Json;

/// Version of the encoding below; bump it with any layout change and keep reading the old.
pub const SESSION_VERSION: u8 = 1;

#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    /// Hash of the program the conversation started on; it stays pinned to it.
    pub program: [u8; 32],
    pub state: State,
    /// The call stack; the first frame is the main flow. Empty before the first event.
    pub frames: Vec<Frame>,
    /// Invalid answers given to the current ask so far.
    pub invalid: u8,
    /// Sequence number of the live timer (0: none). A timer event with another number is
    /// stale and ignored.
    pub timer: u32,
    /// How many timers this conversation has started; the next one gets the next number.
    pub timers_started: u32,
    /// Id of the last event applied; applying it again changes nothing.
    pub last_event: String,
    /// Bumped on every change; stores compare-and-set on it.
    pub version: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// No event has been applied yet.
    New,
    /// Waiting for an answer to ask-table entry `ask`.
    Ask {
        ask: u16,
    },
    /// Waiting for the response to http-table entry `http`.
    Http {
        http: u16,
    },
    /// Waiting for the live timer, then continuing at `pc`.
    Timer {
        pc: u32,
    },
    /// Handed to a human; continuing at `pc` when the agent hands back.
    Handoff {
        pc: u32,
    },
    Ended,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub flow: u16,
    /// Where the caller continues (`u32::MAX` for the main flow).
    pub ret: u32,
    pub vars: Vec<Value>,
}

impl Session {
    pub fn new(program: [u8; 32]) -> Session {
        Session {
            program,
            state: State::New,
            frames: Vec::new(),
            invalid: 0,
            timer: 0,
            timers_started: 0,
            last_event: String::new(),
            version: 0,
        }
    }
}

/// Zig-zag, so small negative integers stay small.
fn zig(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}
fn zag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

const V_UNSET: u8 = 0;
const V_TEXT: u8 = 1;
const V_INT: u8 = 2;
const V_NUM: u8 = 3;
const V_FALSE: u8 = 4;
const V_TRUE: u8 = 5;
const V_LIST: u8 = 6;
const V_JSON: u8 = 7;

impl Session {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        out.push(SESSION_VERSION);
        out.extend_from_slice(&self.program);
        put_var(&mut out, self.version);
        let (tag, arg) = match self.state {
            State::New => (0, 0),
            State::Ask { ask } => (1, u64::from(ask)),
            State::Http { http } => (2, u64::from(http)),
            State::Timer { pc } => (3, u64::from(pc)),
            State::Handoff { pc } => (4, u64::from(pc)),
            State::Ended => (5, 0),
        };
        out.push(tag);
        put_var(&mut out, arg);
        out.push(self.invalid);
        put_var(&mut out, u64::from(self.timer));
        put_var(&mut out, u64::from(self.timers_started));
        put_bytes(&mut out, self.last_event.as_bytes());
        put_var(&mut out, self.frames.len() as u64);
        for f in &self.frames {
            put_var(&mut out, u64::from(f.flow));
            put_var(&mut out, u64::from(f.ret));
            put_var(&mut out, f.vars.len() as u64);
            for v in &f.vars {
                match v {
                    Value::Unset => out.push(V_UNSET),
                    Value::Text(s) => {
                        out.push(V_TEXT);
                        put_bytes(&mut out, s.as_bytes());
                    }
                    Value::Int(i) => {
                        out.push(V_INT);
                        put_var(&mut out, zig(*i));
                    }
                    Value::Num(n) => {
                        out.push(V_NUM);
                        out.extend_from_slice(&n.to_le_bytes());
                    }
                    Value::Bool(b) => out.push(if *b { V_TRUE } else { V_FALSE }),
                    Value::List(items) => {
                        out.push(V_LIST);
                        put_var(&mut out, items.len() as u64);
                        for i in items {
                            put_bytes(&mut out, i.as_bytes());
                        }
                    }
                    Value::Json(j) => {
                        out.push(V_JSON);
                        put_bytes(&mut out, j.to_string().as_bytes());
                    }
                }
            }
        }
        out
    }

    /// The program an encoded session is pinned to, without decoding the rest.
    pub fn program_of(bytes: &[u8]) -> Option<[u8; 32]> {
        match bytes {
            [SESSION_VERSION, rest @ ..] => rest.get(..32)?.try_into().ok(),
            _ => None,
        }
    }

    pub fn decode(bytes: &[u8]) -> Result<Session, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8()?;
        if version != SESSION_VERSION {
            return Err(DecodeError::Version(version));
        }
        let program: [u8; 32] = r.take(32)?.try_into().map_err(|_| DecodeError::Truncated)?;
        let version = r.var()?;
        let tag = r.u8()?;
        let arg = r.var()?;
        let small = |a: u64| u16::try_from(a).map_err(|_| DecodeError::Malformed("state index out of range"));
        let pc = |a: u64| u32::try_from(a).map_err(|_| DecodeError::Malformed("position out of range"));
        let state = match tag {
            0 => State::New,
            1 => State::Ask { ask: small(arg)? },
            2 => State::Http { http: small(arg)? },
            3 => State::Timer { pc: pc(arg)? },
            4 => State::Handoff { pc: pc(arg)? },
            5 => State::Ended,
            _ => return Err(DecodeError::Malformed("unknown state")),
        };
        let invalid = r.u8()?;
        let timer = u32::try_from(r.var()?).map_err(|_| DecodeError::Malformed("timer out of range"))?;
        let timers_started = u32::try_from(r.var()?).map_err(|_| DecodeError::Malformed("timer count out of range"))?;
        let last_event = r.string()?;
        let nframes = r.count()?;
        let mut frames = Vec::with_capacity(nframes);
        for _ in 0..nframes {
            let flow = u16::try_from(r.var()?).map_err(|_| DecodeError::Malformed("flow out of range"))?;
            let ret = u32::try_from(r.var()?).map_err(|_| DecodeError::Malformed("return position out of range"))?;
            let nvars = r.count()?;
            let mut vars = Vec::with_capacity(nvars);
            for _ in 0..nvars {
                vars.push(match r.u8()? {
                    V_UNSET => Value::Unset,
                    V_TEXT => Value::Text(r.string()?),
                    V_INT => Value::Int(zag(r.var()?)),
                    V_NUM => Value::Num(f64::from_le_bytes(r.take(8)?.try_into().map_err(|_| DecodeError::Truncated)?)),
                    V_FALSE => Value::Bool(false),
                    V_TRUE => Value::Bool(true),
                    V_LIST => {
                        let n = r.count()?;
                        let mut items = Vec::with_capacity(n);
                        for _ in 0..n {
                            items.push(r.string()?);
                        }
                        Value::List(items)
                    }
                    V_JSON => {
                        let text = r.string()?;
                        Value::Json(
                            serde_json::from_str::<Json>(&text)
                                .map_err(|_| DecodeError::Malformed("bad json value"))?,
                        )
                    }
                    _ => return Err(DecodeError::Malformed("unknown value tag")),
                });
            }
            frames.push(Frame { flow, ret, vars });
        }
        if !r.done() {
            return Err(DecodeError::Malformed("trailing bytes"));
        }
        Ok(Session { program, state, frames, invalid, timer, timers_started, last_event, version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Unset),
            ".{0,20}".prop_map(Value::Text),
            any::<i64>().prop_map(Value::Int),
            any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()).prop_map(Value::Num),
            any::<bool>().prop_map(Value::Bool),
            proptest::collection::vec(".{0,5}", 0..4).prop_map(Value::List),
            (".{0,5}", any::<i32>())
                .prop_map(|(k, v)| Value::Json(serde_json::json!({ "status": v, "body": { "k": k } }))),
        ]
    }

    fn session() -> impl Strategy<Value = Session> {
        let state = prop_oneof![
            Just(State::New),
            any::<u16>().prop_map(|ask| State::Ask { ask }),
            any::<u16>().prop_map(|http| State::Http { http }),
            any::<u32>().prop_map(|pc| State::Timer { pc }),
            any::<u32>().prop_map(|pc| State::Handoff { pc }),
            Just(State::Ended),
        ];
        let frame = (any::<u16>(), any::<u32>(), proptest::collection::vec(value(), 0..6))
            .prop_map(|(flow, ret, vars)| Frame { flow, ret, vars });
        (
            any::<[u8; 32]>(),
            state,
            proptest::collection::vec(frame, 0..3),
            any::<u8>(),
            any::<(u32, u32)>(),
            ".{0,12}",
            any::<u64>(),
        )
            .prop_map(|(program, state, frames, invalid, (timer, timers_started), last_event, version)| {
                Session { program, state, frames, invalid, timer, timers_started, last_event, version }
            })
    }

    proptest! {
        #[test]
        fn sessions_round_trip(s in session()) {
            prop_assert_eq!(Session::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn damaged_sessions_are_errors_not_panics(s in session(), cut in any::<prop::sample::Index>(), flip in any::<(prop::sample::Index, u8)>()) {
            let bytes = s.encode();
            let _ = Session::decode(&bytes[..cut.index(bytes.len())]);
            let mut b = bytes.clone();
            let i = flip.0.index(b.len());
            b[i] ^= flip.1 | 1;
            let _ = Session::decode(&b);
        }
    }

    #[test]
    fn unknown_versions_are_refused() {
        let mut b = Session::new([7; 32]).encode();
        b[0] = 99;
        assert_eq!(Session::decode(&b), Err(DecodeError::Version(99)));
    }
}
