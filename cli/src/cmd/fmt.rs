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

/// The text's full-line comments, which formatting cannot keep (the schema modeline is kept).
pub(crate) fn comment_lines(text: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('#') && !l.starts_with("# yaml-language-server:"))
        .count()
}

pub(crate) fn fmt(file: &Path, to: Option<Form>, write: bool, drop_comments: bool) -> ExitCode {
    let name = file.to_string_lossy().into_owned();
    let Some(syntax) = syntax_of(file) else {
        return fail(format!("{name} is not a flow file (expected .yaml, .yml or .flow)"));
    };
    let text = match read_flow(file) {
        Err(e) => return fail(format!("cannot read {name}: {e}")),
        Ok(Err(d)) => return fail(d.message),
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
        return ExitCode::from(EXIT_FINDINGS);
    };
    let to = to.unwrap_or(match syntax {
        Syntax::Yaml => Form::Yaml,
        Syntax::Dsl => Form::Dsl,
    });
    let out = match to {
        Form::Yaml => {
            let modeline = text.lines().next().filter(|l| l.starts_with("# yaml-language-server:"));
            modeline.map(|m| format!("{m}\n")).unwrap_or_default() + &botc_compiler::print::yaml(&ast)
        }
        Form::Dsl => botc_compiler::print::dsl(&ast),
    };
    if !write {
        out!("{out}");
        return ExitCode::SUCCESS;
    }
    let comments = comment_lines(&text);
    if comments > 0 && !drop_comments {
        return fail(format!(
            "{name} has {comments} comment line(s) that formatting would drop; nothing was written \
             (print without -w to compare, or pass --drop-comments)"
        ));
    }
    let target = file.with_extension(match to {
        Form::Yaml => "yaml",
        Form::Dsl => "flow",
    });
    let target = if syntax_of(file)
        == Some(match to {
            Form::Yaml => Syntax::Yaml,
            Form::Dsl => Syntax::Dsl,
        }) {
        file.to_path_buf()
    } else {
        target
    };
    // Write to a temporary file and rename, so a crash never leaves half a flow behind.
    let tmp = target.with_extension("botc-fmt.tmp");
    if let Err(e) = std::fs::write(&tmp, &out).and_then(|()| std::fs::rename(&tmp, &target)) {
        let _ = std::fs::remove_file(&tmp);
        return fail(format!("cannot write {}: {e}", target.display()));
    }
    if target != file {
        eprintln!("wrote {}", target.display());
    }
    ExitCode::SUCCESS
}

/// Writes `bytes` to `path` through a temporary file and a rename, so readers never see half
/// a file and a crash leaves the old one.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp-botc");
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
