//! botc's flow compiler: source text to a checked IR, with every mistake reported as a
//! [`Diagnostic`]. The pipeline reads top to bottom:
//!
//! parse ([`front`]: YAML via [`yaml`], or the DSL) → resolve and lower ([`lower`], typing
//! expressions with [`types`]) → [`check`] → [`emit`] (a `.botc` program, see
//! `botc-bytecode`).
//!
//! No I/O happens here: imports are read through the [`Loader`] the caller passes in.

pub mod ast;
pub mod check;
pub mod diagnostic;
pub mod dump;
pub mod emit;
pub mod explain;
pub mod expr;
mod expr_fast;
pub mod front;
pub mod ir;
pub mod lower;
pub mod print;
pub mod span;
pub mod types;
pub mod values;
pub mod yaml;

pub use check::CheckedProgram;
pub use diagnostic::{Diagnostic, Severity};
pub use front::Syntax;
pub use span::{FileId, SourceMap, Span};

/// Reads imported files. The CLI reads the file system; tests read from memory.
pub trait Loader {
    /// Resolves `path` as written in `importer`'s `imports`, returning the display name of the
    /// file (used in diagnostics, and to load each file once) and its text.
    fn load(&mut self, importer: &str, path: &str) -> Result<(String, String), String>;
}

/// A loader for flows that import nothing.
pub struct NoImports;

impl Loader for NoImports {
    fn load(&mut self, _importer: &str, path: &str) -> Result<(String, String), String> {
        Err(format!("cannot import `{path}` here"))
    }
}

/// Everything one compilation produced.
pub struct Compilation {
    pub sources: SourceMap,
    pub root: FileId,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Present only when there were no errors.
    pub program: Option<CheckedProgram>,
    /// The IR when it has errors (for `botc graph`); see [`Compilation::ir`].
    pub unchecked: Option<ir::Program>,
}

impl Compilation {
    /// The IR, checked or not, when lowering got that far.
    pub fn ir(&self) -> Option<&ir::Program> {
        self.program.as_ref().map(CheckedProgram::program).or(self.unchecked.as_ref())
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Imports deeper than this are refused (a chain, not a count; cycles are loaded once).
const MAX_IMPORTS: usize = 256;

/// Parses, lowers and checks `text` (and, through `loader`, everything it imports).
pub fn compile(name: &str, text: &str, syntax: Syntax, loader: &mut dyn Loader) -> Compilation {
    let mut sources = SourceMap::new();
    let root = sources.add(name, text);
    let mut diagnostics = Vec::new();
    let (root_ast, ds) = front::parse(root, sources.get(root), syntax);
    diagnostics.extend(ds);
    let mut parsed = Vec::new();
    if let Some(ast) = root_ast {
        parsed.push(lower::Parsed { file: root, ast });
    }
    // Load imports breadth first; each file once.
    let mut i = 0;
    while i < parsed.len() && parsed.len() < MAX_IMPORTS {
        let importer = sources.get(parsed[i].file).name.clone();
        for imp in parsed[i].ast.imports.clone() {
            match loader.load(&importer, &imp.value) {
                Ok((iname, itext)) => {
                    if sources.find(&iname).is_some() {
                        continue;
                    }
                    let Some(isyntax) = Syntax::from_path(&iname) else {
                        diagnostics.push(import_error(&imp, "imports must be `.yaml`, `.yml` or `.flow` files"));
                        continue;
                    };
                    let id = sources.add(iname, itext);
                    let (a, ds) = front::parse(id, sources.get(id), isyntax);
                    diagnostics.extend(ds);
                    if let Some(a) = a {
                        parsed.push(lower::Parsed { file: id, ast: a });
                    }
                }
                Err(why) => diagnostics.push(import_error(&imp, &why)),
            }
        }
        i += 1;
    }
    let (program, unchecked) = if parsed.is_empty() {
        (None, None)
    } else {
        let ir = lower::lower(&parsed, &mut diagnostics);
        let (checked, ds) = check::check(ir, std::mem::take(&mut diagnostics));
        diagnostics = ds;
        match checked {
            Ok(p) => (Some(p), None),
            Err(ir) => (None, Some(ir)),
        }
    };
    diagnostics.sort_by_key(|d| (d.span.file, d.span.lo, d.span.hi, d.code));
    diagnostics.dedup();
    Compilation { sources, root, diagnostics, program, unchecked }
}

fn import_error(imp: &ast::Str, why: &str) -> Diagnostic {
    Diagnostic::error("E0507", imp.span, format!("cannot import `{}`", imp.value))
        .label(why.to_string())
        .help("import paths are relative to the importing file")
}
