//! botc's pure core: the VM ([`vm`]), a pure function from (program, session, input, now)
//! to effects; the session model ([`session`]) with its own versioned encoding and its
//! migration to a new flow version ([`migrate`]); the conversation simulator ([`sim`]);
//! the platforms' pure code ([`platforms`]: signatures, message shapes, send budgets); and
//! the [`clock`] every role is given. No I/O: `botc-serve` builds the roles, their ports
//! and the stores on top of this crate.

pub mod clock;
pub mod codec;
pub mod migrate;
pub mod platforms;
pub mod session;
pub mod sim;
pub mod value;
pub mod vm;

pub use session::Session;
pub use value::Value;
pub use vm::{Context, Effect, Input, Limits, Loaded, Step, Trap, VmBug, step, step_in_place};
