//! The web-chat channel's view of a conversation: its messages both ways, in order. Entries
//! are written by workers as part of their batch (see [`super::ports::Batch`]); reply ids
//! are derived from the event that caused them.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    User,
    Bot,
    /// Notes from botc itself ("handed to a human", "the conversation has ended").
    System,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// Position in the conversation, from 1; the store assigns it.
    pub seq: u64,
    /// Deterministic id: the event id and the effect's index.
    pub id: String,
    pub from: From,
    pub text: String,
    pub buttons: Vec<botc_runtime::vm::Button>,
    /// When it was said (unix seconds: the event's time); 0 for entries from before botc
    /// kept it.
    pub at: u64,
}
