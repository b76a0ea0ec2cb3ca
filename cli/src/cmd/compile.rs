//! `botc compile`: verified bytecode, one `.botc` per flow, and a manifest.

use crate::cmd::fmt::write_atomic;
use crate::flows::{collect, compile};
use crate::render::{self, Format};
use crate::{EXIT_FINDINGS, fail};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

pub(crate) fn compile_cmd(paths: &[PathBuf], out_dir: &Path, debug: bool) -> ExitCode {
    let files = match collect(paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => return fail("no flow files (.yaml, .yml, .flow) found"),
        Err(e) => return fail(e),
    };
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Compile everything first; write nothing unless everything compiles.
    let mut outputs: Vec<(String, Vec<u8>, botc_bytecode::Program, String)> = Vec::new();
    let mut errors = 0;
    for path in &files {
        let c = match compile(path) {
            Ok(c) => c,
            Err(e) => return fail(e),
        };
        for d in &c.diagnostics {
            errors += usize::from(d.is_error());
            eprintln!("{}\n", render::render(&c.sources, d, Format::Human, color));
        }
        let Some(checked) = &c.program else { continue };
        let options = botc_compiler::emit::Options { debug: debug.then_some(&c.sources) };
        let program = botc_compiler::emit::emit(checked, &options);
        let bytes = program.encode();
        let stem = path.file_stem().map_or("flow".into(), |s| s.to_string_lossy().into_owned());
        let file = format!("{stem}.botc");
        let source = path.to_string_lossy().into_owned();
        if let Some((_, other, _, other_src)) = outputs.iter().find(|(f, ..)| *f == file) {
            if *other != bytes {
                return fail(format!("{other_src} and {source} both compile to {file} but differ; rename one of them"));
            }
            continue;
        }
        outputs.push((file, bytes, program, source));
    }
    if errors > 0 {
        eprintln!("error: {errors} error(s); nothing was written");
        return ExitCode::from(EXIT_FINDINGS);
    }
    if let Err(e) = std::fs::create_dir_all(out_dir) {
        return fail(format!("cannot create {}: {e}", out_dir.display()));
    }
    outputs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut manifest = Vec::new();
    for (file, bytes, program, source) in &outputs {
        if let Err(e) = write_atomic(&out_dir.join(file), bytes) {
            return fail(format!("cannot write {}: {e}", out_dir.join(file).display()));
        }
        manifest.push(serde_json::json!({
            "file": file,
            "name": program.name,
            "hash": program.hash_hex(),
            "size": bytes.len(),
            "source": source,
        }));
    }
    let manifest = serde_json::json!({ "format_version": botc_bytecode::FORMAT_VERSION, "programs": manifest });
    let text = serde_json::to_string_pretty(&manifest).expect("JSON values serialize") + "\n";
    if let Err(e) = write_atomic(&out_dir.join("manifest.json"), text.as_bytes()) {
        return fail(format!("cannot write manifest.json: {e}"));
    }
    eprintln!("compiled {} program(s) into {}", outputs.len(), out_dir.display());
    ExitCode::SUCCESS
}
