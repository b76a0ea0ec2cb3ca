//! botc's runtime. Today: the VM ([`vm`]), a pure function from (program, session, input,
//! now) to effects, and the session model ([`session`]) with its own versioned encoding.
//! The ports and adapters (bus, stores, gateway, dispatcher) build on these.

pub mod clock;
mod codec;
pub mod migrate;
pub mod platforms;
pub mod serve;
pub mod session;
pub mod sim;
pub mod value;
pub mod vm;

pub use session::Session;
pub use value::Value;
pub use vm::{Context, Effect, Input, Limits, Loaded, Step, Trap, VmBug, step, step_in_place};
