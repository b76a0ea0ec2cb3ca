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
    let mut first_code = None;
    for path in &files {
        let c = match compile(path) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for d in &c.diagnostics {
            first_code.get_or_insert(d.code.0);
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
        if let Some(code) = first_code {
            let _ = writeln!(out, "for more about a code: botc check --explain {code}");
        }
    }
    if errors > 0 || (deny_warnings && warnings > 0) { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}

/// `botc check --explain CODE`: the code's section of docs/diagnostics.md.
pub(crate) fn explain(code: &str) -> ExitCode {
    match botc_compiler::explain::explain(code) {
        Some(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        None => {
            let codes: Vec<&str> = botc_compiler::explain::codes().map(|(c, _)| c).collect();
            let hint = botc_compiler::diagnostic::did_you_mean(&code.to_ascii_uppercase(), codes.iter().copied())
                .map_or(String::new(), |h| format!("; {h}"));
            fail(format!(
                "no diagnostic code `{code}`{hint}\nthe codes are: {} (docs/diagnostics.md explains each)",
                codes.join(", ")
            ))
        }
    }
}
