//! One module per command; `main.rs` only parses arguments and calls these.

pub(crate) mod chat;
pub(crate) mod check;
pub(crate) mod compile;
pub(crate) mod deploy;
pub(crate) mod diff;
pub(crate) mod disasm;
pub(crate) mod dump_ir;
pub(crate) mod fake_platform;
pub(crate) mod fmt;
pub(crate) mod graph;
pub(crate) mod history;
pub(crate) mod load;
pub(crate) mod quarantine;
#[cfg(feature = "distributed")]
pub(crate) mod role;
pub(crate) mod serve;
pub(crate) mod test;
