//! `botc chat`: talk to a flow in the terminal.

use crate::flows::load_flow;
use crate::{EXIT_FINDINGS, chat, fail};
use std::path::Path;
use std::process::ExitCode;

/// Runs `flow` as a conversation with `user` on the terminal (or a pipe).
pub(crate) fn chat_cmd(flow: &Path, user: &str) -> ExitCode {
    match load_flow(flow) {
        Ok(program) => match chat::run(&program, user) {
            Ok(()) => ExitCode::SUCCESS,
            // The reader went away (`botc chat ... | head`): nothing more to say.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(e) => fail(format!("terminal: {e}")),
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}
