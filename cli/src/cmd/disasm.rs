//! `botc disasm`: a `.botc` file as text.

use crate::{EXIT_FINDINGS, fail};
use std::path::Path;
use std::process::ExitCode;

pub(crate) fn disasm(file: &Path) -> ExitCode {
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read {}: {e}", file.display())),
    };
    match botc_bytecode::load(&bytes) {
        Ok(v) => {
            out!("{}", botc_bytecode::disasm::disassemble(v.program()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            ExitCode::from(EXIT_FINDINGS)
        }
    }
}
