//! `botc fmt`: canonical formatting, and conversion between YAML and the DSL.

use crate::flows::{read_flow, syntax_of};
use crate::render::{self, Format};
use crate::{EXIT_FINDINGS, fail};
use botc_compiler::Syntax;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Form {
    Yaml,
    Dsl,
}

/// What to do with the formatted text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Print it.
    Print,
    /// Write it to the file (or, converting, to its twin of the other form).
    Write,
    /// Write nothing; report files that are not in canonical form.
    Check,
}

/// The YAML schema modeline editors read (`# yaml-language-server: $schema=...`): a YAML
/// file's own comment, which a DSL file has no use for.
const MODELINE: &str = "# yaml-language-server:";

pub(crate) fn fmt(paths: &[std::path::PathBuf], to: Option<Form>, mode: Mode, drop_comments: bool) -> ExitCode {
    let files = match crate::flows::collect(paths) {
        Ok(files) => files,
        Err(e) => return fail(e),
    };
    if files.is_empty() {
        return fail("no flow files (.yaml, .yml, .flow) there");
    }
    if files.len() > 1 && mode == Mode::Print {
        return fail(format!(
            "{} flow files: pass -w to format them in place or --check to list those not formatted",
            files.len()
        ));
    }
    let mut worst = ExitCode::SUCCESS;
    let mut unformatted = 0;
    for file in &files {
        match fmt_one(file, to, mode, drop_comments) {
            Ok(true) => {}
            Ok(false) => unformatted += 1,
            Err(code) => worst = code,
        }
    }
    if unformatted > 0 {
        eprintln!(
            "{unformatted} of {} file{} not formatted; `botc fmt -w` formats them",
            files.len(),
            crate::flows::s(files.len())
        );
        return ExitCode::from(EXIT_FINDINGS);
    }
    worst
}

/// Formats one file; `Ok(false)`: with `--check`, it is not in canonical form.
fn fmt_one(file: &Path, to: Option<Form>, mode: Mode, drop_comments: bool) -> Result<bool, ExitCode> {
    let name = file.to_string_lossy().into_owned();
    let Some(syntax) = syntax_of(file) else {
        return Err(fail(format!("{name} is not a flow file (expected .yaml, .yml or .flow)")));
    };
    let text = match read_flow(file) {
        Err(e) => return Err(fail(format!("cannot read {name}: {e}"))),
        Ok(Err(d)) => return Err(fail(d.message)),
        Ok(Ok(text)) => text,
    };
    let mut sources = botc_compiler::SourceMap::new();
    let id = sources.add(name.clone(), text.clone());
    let (ast, diags) = botc_compiler::front::parse(id, sources.get(id), syntax);
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
    let Some(ast) = ast.filter(|_| errors.is_empty()) else {
        for d in errors {
            eprintln!("{}", render::render(&sources, d, Format::Human, color));
        }
        eprintln!("error: {name} has syntax errors; fix them before formatting (nothing was written)");
        return Err(ExitCode::from(EXIT_FINDINGS));
    };
    let out_syntax = match to {
        Some(Form::Yaml) => Syntax::Yaml,
        Some(Form::Dsl) => Syntax::Dsl,
        None => syntax,
    };
    let mut comments = if drop_comments { Vec::new() } else { botc_compiler::front::comments(&text, syntax) };
    if out_syntax == Syntax::Dsl {
        comments.retain(|c| !c.text.starts_with(MODELINE));
    }
    let out = match out_syntax {
        Syntax::Yaml => botc_compiler::print::yaml(&ast, &comments),
        Syntax::Dsl => botc_compiler::print::dsl(&ast, &comments),
    };
    // The output must hold exactly the comments kept, each as often: a comment lost or
    // doubled must never reach the disk.
    let texts = |cs: &[botc_compiler::print::Comment]| {
        let mut t: Vec<String> = cs.iter().map(|c| c.text.clone()).collect();
        t.sort();
        t
    };
    if texts(&botc_compiler::front::comments(&out, out_syntax)) != texts(&comments) {
        return Err(fail(format!(
            "botc fmt could not place every comment of {name} exactly once, so nothing was written; this \
             is a bug, please report it with the file"
        )));
    }
    let same_form = syntax == out_syntax;
    match mode {
        Mode::Print => {
            out!("{out}");
            return Ok(true);
        }
        // clap keeps `--check` and `--to` apart, so the form is the file's own.
        Mode::Check if out == text => return Ok(true),
        Mode::Check => {
            let line = text.lines().zip(out.lines()).position(|(a, b)| a != b);
            let line = line.unwrap_or_else(|| text.lines().count().min(out.lines().count()));
            eprintln!("{name}: not formatted (the first difference is on line {})", line + 1);
            return Ok(false);
        }
        Mode::Write => {}
    }
    let target = if same_form {
        file.to_path_buf()
    } else {
        file.with_extension(match out_syntax {
            Syntax::Yaml => "yaml",
            Syntax::Dsl => "flow",
        })
    };
    if same_form && out == text {
        return Ok(true);
    }
    // Write to a temporary file and rename, so a crash never leaves half a flow behind.
    if let Err(e) = write_atomic(&target, out.as_bytes()) {
        return Err(fail(format!("cannot write {}: {e}", target.display())));
    }
    if target != file {
        eprintln!("wrote {}", target.display());
    }
    Ok(true)
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half
/// a file and a crash leaves the old one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-botc");
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
