//! Finding, reading and compiling flow files, shared by the commands.

use crate::render::{self, Format};
use crate::{EXIT_FINDINGS, fail};
use botc_compiler::{Compilation, Loader, Syntax, diagnostic::Diagnostic, front::MAX_SOURCE_BYTES};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Reads imports from the file system, relative to the importing file.
pub(crate) struct FsLoader;

impl Loader for FsLoader {
    fn load(&mut self, importer: &str, path: &str) -> Result<(String, String), String> {
        let base = Path::new(importer).parent().unwrap_or(Path::new(""));
        let full = base.join(path);
        let name = full.to_string_lossy().into_owned();
        match read_flow(&full) {
            Ok(Ok(text)) => Ok((name, text)),
            Ok(Err(d)) => Err(d.message),
            Err(e) => Err(format!("cannot read {name}: {e}")),
        }
    }
}

/// Reads a flow file, refusing oversized and non-UTF-8 files with a diagnostic. The outer
/// error is I/O (exit 2); the inner one is a problem with the file's content (exit 1).
pub(crate) fn read_flow(path: &Path) -> std::io::Result<Result<String, Diagnostic>> {
    let meta = std::fs::metadata(path)?;
    let at = botc_compiler::Span::default();
    if meta.len() > MAX_SOURCE_BYTES as u64 {
        return Ok(Err(Diagnostic::error(
            "E0003",
            at,
            format!("file is {} bytes; flow files are limited to {MAX_SOURCE_BYTES} bytes", meta.len()),
        )
        .help("split the flow into several files and `imports` them")));
    }
    let bytes = std::fs::read(path)?;
    Ok(String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        Diagnostic::error(
            "E0004",
            at,
            format!("file is not valid UTF-8 (first bad byte at offset {valid}, line {line})"),
        )
        .help("save the file as UTF-8")
    }))
}

pub(crate) fn syntax_of(path: &Path) -> Option<Syntax> {
    Syntax::from_path(&path.to_string_lossy())
}

/// Expands directories into the flow files under them, sorted, so output is stable.
pub(crate) fn collect(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(p, &mut found).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            found.sort();
            out.extend(found);
        } else if syntax_of(p).is_some() {
            out.push(p.clone());
        } else {
            return Err(format!("{} is not a flow file (expected .yaml, .yml or .flow)", p.display()));
        }
    }
    Ok(out)
}

/// The flow files under `dir`, skipping hidden entries (`.git`, editors' files, and the
/// `..data` links a Kubernetes ConfigMap mount makes beside its files, which would otherwise
/// show every flow three times).
pub(crate) fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out)?;
        } else if syntax_of(&path).is_some() && !path.to_string_lossy().ends_with(".test.yaml") {
            out.push(path);
        }
    }
    Ok(())
}

/// Compiles one file; `Err` is an I/O problem.
pub(crate) fn compile(path: &Path) -> Result<Compilation, String> {
    let name = path.to_string_lossy().into_owned();
    let syntax = syntax_of(path).ok_or_else(|| format!("{name} is not a flow file (expected .yaml, .yml or .flow)"))?;
    match read_flow(path).map_err(|e| format!("cannot read {name}: {e}"))? {
        Ok(text) => Ok(botc_compiler::compile(&name, &text, syntax, &mut FsLoader)),
        Err(d) => {
            // The content was refused before parsing: report against an empty source.
            let mut sources = botc_compiler::SourceMap::new();
            let root = sources.add(name, "");
            Ok(Compilation { sources, root, diagnostics: vec![d], program: None, unchecked: None })
        }
    }
}

pub(crate) fn s(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Compiles one file for `graph`/`dump-ir`, printing its diagnostics to stderr.
pub(crate) fn compile_for_output(file: &Path) -> Result<Compilation, ExitCode> {
    let c = compile(file).map_err(fail)?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    for d in &c.diagnostics {
        eprintln!("{}", render::render(&c.sources, d, Format::Human, color));
    }
    Ok(c)
}

/// Compiles a flow file and loads it as the runtime would; diagnostics go to stderr.
pub(crate) fn load_flow(path: &Path) -> Result<botc_runtime::Loaded, String> {
    let c = compile(path)?;
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let Some(checked) = &c.program else {
        for d in c.diagnostics.iter().filter(|d| d.is_error()) {
            eprintln!("{}\n", render::render(&c.sources, d, Format::Human, color));
        }
        return Err(format!("{} does not compile", path.display()));
    };
    let bytes = botc_compiler::emit::emit(checked, &botc_compiler::emit::Options { debug: None }).encode();
    botc_runtime::Loaded::from_bytes(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

pub(crate) fn load_botc(path: &Path) -> Result<botc_runtime::Loaded, ExitCode> {
    let bytes = std::fs::read(path).map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
    botc_runtime::Loaded::from_bytes(&bytes).map_err(|e| {
        eprintln!("error: {}: {e}", path.display());
        ExitCode::from(EXIT_FINDINGS)
    })
}
