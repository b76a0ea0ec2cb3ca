//! Instructions: one opcode byte, then fixed-size little-endian operands. [`Op::decode`] is
//! the only place that reads instruction bytes; the verifier, the disassembler and the VM all
//! go through it.

use std::fmt;

/// Sentinel for "no target" in tables (`on_invalid` absent, say).
pub const NONE: u32 = u32::MAX;

macro_rules! ops {
    ($($(#[$doc:meta])* $name:ident = $code:literal $({ $($field:ident : $ty:ty),* })?),* $(,)?) => {
        /// One decoded instruction.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum Op {
            $($(#[$doc])* $name $({ $($field: $ty),* })?),*
        }

        impl Op {
            pub fn opcode(&self) -> u8 {
                match self { $(Op::$name { .. } => $code),* }
            }

            pub fn name(&self) -> &'static str {
                match self { $(Op::$name { .. } => stringify!($name)),* }
            }

            /// Decodes the instruction at `at`: the op and the offset of the next one.
            /// `None` when the bytes there are not a whole instruction.
            pub fn decode(code: &[u8], at: usize) -> Option<(Op, usize)> {
                let mut r = Reader { code, at: at + 1 };
                let op = match *code.get(at)? {
                    $($code => Op::$name $({ $($field: r.read::<$ty>()?),* })?,)*
                    _ => return None,
                };
                Some((op, r.at))
            }

            pub fn encode(&self, out: &mut Vec<u8>) {
                out.push(self.opcode());
                match *self {
                    $(Op::$name $({ $($field),* })? => { $($( $field.put(out); )*)? })*
                }
            }
        }
    };
}

ops! {
    /// Push text constant `c`.
    PushText = 0x01 { c: u32 },
    PushInt = 0x02 { v: i64 },
    PushNum = 0x03 { v: f64 },
    PushBool = 0x04 { v: bool },
    /// Pop `n` texts, push them as a list.
    List = 0x05 { n: u16 },
    /// Push variable `v` of the current frame.
    Load = 0x06 { v: u16 },
    /// Pop into variable `v` of the current frame.
    Store = 0x07 { v: u16 },
    /// Push a built-in value (`user.name`, ...); see [`Builtin`](crate::Builtin).
    Builtin = 0x08 { b: u8 },
    /// Pop a json value, push its field named by text constant `c`.
    Field = 0x09 { c: u32 },
    /// Pop one operand, push the result; see [`UnOp`](crate::UnOp).
    Unary = 0x0A { op: u8 },
    /// Pop two operands (right on top), push the result; see [`BinOp`](crate::BinOp).
    Binary = 0x0B { op: u8 },
    /// Call built-in function `f` with `argc` arguments popped; push its result.
    Call = 0x0C { f: u8, argc: u8 },
    /// Pop `n` values, push them rendered as one text (a template).
    Concat = 0x0D { n: u16 },
    /// Pop one value.
    Pop = 0x0E,
    Jump = 0x10 { to: u32 },
    /// Pop a boolean; jump when it is false.
    JumpIfFalse = 0x11 { to: u32 },
    /// `and`: when the boolean on top is false, jump (keeping it); else pop it.
    AndThen = 0x12 { to: u32 },
    /// `or`: when the boolean on top is true, jump (keeping it); else pop it.
    OrElse = 0x13 { to: u32 },
    /// Entering node `n` of the node table (position, metrics).
    Node = 0x20 { n: u32 },
    /// Pop a label and a value (or URL when `url`), queue a button for the next message.
    Button = 0x21 { url: bool },
    /// Pop a text (and an image URL under it when `image`), send it with the queued buttons.
    Say = 0x22 { image: bool },
    /// Pop the prompt, send it with the queued buttons, and wait for an answer to ask-table
    /// entry `a`. Execution resumes according to the entry when the answer (or timeout) comes.
    Ask = 0x23 { a: u16 },
    /// Pop the URL, then one value per header and the body if the http-table entry `h` says so;
    /// request it and wait for the response.
    Http = 0x24 { h: u16 },
    /// Pop the reason when `reason`; hand the conversation to human queue (text constant) `q`.
    /// When `resumes`, wait for the agent to hand back, else end.
    Handoff = 0x25 { q: u32, reason: bool, resumes: bool },
    /// Wait `secs` seconds, then continue with the next instruction.
    Wait = 0x26 { secs: u32 },
    /// Pop the arguments of flow `f` (its parameters, in order) and run it.
    CallFlow = 0x27 { f: u16 },
    /// Leave the current flow, pushing the popped value for the caller when `value`.
    Return = 0x28 { value: bool },
    /// The conversation is over.
    End = 0x29,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = format!("{self:?}");
        // `PushText { c: 3 }` → `PushText c=3`
        let s = s.replace(" {", "").replace(" }", "").replace(": ", "=").replace(',', "");
        f.write_str(&s)
    }
}

struct Reader<'a> {
    code: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn read<T: Operand>(&mut self) -> Option<T> {
        let bytes = self.code.get(self.at..self.at + T::SIZE)?;
        self.at += T::SIZE;
        T::from_le(bytes)
    }
}

trait Operand: Sized {
    const SIZE: usize;
    fn from_le(b: &[u8]) -> Option<Self>;
    fn put(self, out: &mut Vec<u8>);
}

macro_rules! int_operand {
    ($($t:ty),*) => {$(
        impl Operand for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn from_le(b: &[u8]) -> Option<Self> {
                Some(<$t>::from_le_bytes(b.try_into().ok()?))
            }
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
int_operand!(u8, u16, u32, i64, f64);

impl Operand for bool {
    const SIZE: usize = 1;
    fn from_le(b: &[u8]) -> Option<Self> {
        match b[0] {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
    fn put(self, out: &mut Vec<u8>) {
        out.push(u8::from(self));
    }
}

impl Op {
    /// Jump targets of this instruction (not table targets).
    pub fn jump_target(&self) -> Option<u32> {
        match *self {
            Op::Jump { to } | Op::JumpIfFalse { to } | Op::AndThen { to } | Op::OrElse { to } => Some(to),
            _ => None,
        }
    }

    /// Whether control never falls through to the next instruction.
    pub fn ends_block(&self) -> bool {
        matches!(
            self,
            Op::Jump { .. }
                | Op::Ask { .. }
                | Op::Http { .. }
                | Op::Return { .. }
                | Op::End
                | Op::Handoff { resumes: false, .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_round_trips() {
        let ops = [
            Op::PushText { c: 7 },
            Op::PushInt { v: -42 },
            Op::PushNum { v: 2.5 },
            Op::PushBool { v: true },
            Op::Binary { op: 3 },
            Op::Handoff { q: 1, reason: true, resumes: false },
            Op::End,
        ];
        let mut code = Vec::new();
        for op in &ops {
            op.encode(&mut code);
        }
        let mut at = 0;
        for op in &ops {
            let (got, next) = Op::decode(&code, at).expect("decodes");
            assert_eq!(&got, op);
            at = next;
        }
        assert_eq!(at, code.len());
        assert_eq!(Op::decode(&[0x02, 1, 2], 0), None, "a truncated operand is not an instruction");
        assert_eq!(Op::decode(&[0xFF], 0), None);
        assert_eq!(Op::decode(&[0x04, 2], 0), None, "a bool operand is 0 or 1");
    }
}
