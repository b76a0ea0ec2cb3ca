//! `botc dump-ir`: the checked IR as stable text.

use crate::EXIT_FINDINGS;
use crate::flows::compile_for_output;
use botc_compiler::dump;
use std::path::Path;
use std::process::ExitCode;

pub(crate) fn dump_ir(file: &Path) -> ExitCode {
    let c = match compile_for_output(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match &c.program {
        Some(p) => {
            out!("{}", dump::ir(p.program()));
            ExitCode::SUCCESS
        }
        None => ExitCode::from(EXIT_FINDINGS),
    }
}
