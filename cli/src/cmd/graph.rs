//! `botc graph`: a flow's graph as Graphviz dot or a Mermaid flowchart.

use crate::EXIT_FINDINGS;
use crate::flows::compile_for_output;
use botc_compiler::dump;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum GraphFormat {
    /// Graphviz dot
    Dot,
    /// Mermaid flowchart
    Mermaid,
}

pub(crate) fn graph(file: &Path, format: GraphFormat) -> ExitCode {
    let c = match compile_for_output(file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(ir) = c.ir() else { return ExitCode::from(EXIT_FINDINGS) };
    out!(
        "{}",
        match format {
            GraphFormat::Dot => dump::dot(ir),
            GraphFormat::Mermaid => dump::mermaid(ir),
        }
    );
    if c.has_errors() { ExitCode::from(EXIT_FINDINGS) } else { ExitCode::SUCCESS }
}
