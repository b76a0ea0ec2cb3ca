//! `botc check`: every mistake in the flows, in one run.

use crate::flows::{collect, compile, s};
use crate::render::{self, Format};
use crate::{EXIT_FINDINGS, fail};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

pub(crate) fn check(paths: &[PathBuf], format: Format, deny_warnings: bool) -> ExitCode {
    let files = match collect(paths) {
        Ok(f) => f,
        Err(e) => return fail(e),
    };
    if files.is_empty() {
        return fail("no flow files (.yaml, .yml, .flow) found");
    }
    let color = format == Format::Human && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let mut out = std::io::stdout().lock();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for path in &files {
        let c = match compile(path) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for d in &c.diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            let _ = write!(out, "{}", render::render(&c.sources, d, format, color));
            if format == Format::Human {
                let _ = write!(out, "\n\n");
            }
        }
    }
    if format == Format::Human {
        let _ = writeln!(
            out,
            "checked {} file{}: {errors} error{}, {warnings} warning{}",
            files.len(),
            s(files.len()),
            s(errors),
            s(warnings)
        );
    }
    if errors > 0 || (deny_warnings && warnings > 0) { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}
