//! Front ends: source text to [`crate::ast::File`]. Both forms of the language end here.

pub mod dsl;
pub mod tree;

use crate::ast::File;
use crate::diagnostic::Diagnostic;
use crate::span::{FileId, SourceFile};

/// Files larger than this are refused before parsing; real flows are a few hundred KiB.
pub const MAX_SOURCE_BYTES: usize = 10 * 1024 * 1024;

/// Which surface syntax a file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Syntax {
    Yaml,
    Dsl,
}

impl Syntax {
    /// `.yaml`/`.yml` are YAML, `.flow` is the DSL.
    pub fn from_path(path: &str) -> Option<Syntax> {
        let ext = path.rsplit_once('.').map(|(_, e)| e)?;
        match ext {
            "yaml" | "yml" => Some(Syntax::Yaml),
            "flow" => Some(Syntax::Dsl),
            _ => None,
        }
    }
}

/// Parses a file in either syntax. Returns a tree whenever the file's structure could be
/// read at all, together with every diagnostic found on the way.
pub fn parse(id: FileId, file: &SourceFile, syntax: Syntax) -> (Option<File>, Vec<Diagnostic>) {
    if file.text.len() > MAX_SOURCE_BYTES {
        let d = Diagnostic::error(
            "E0003",
            crate::span::Span::new(id, 0, 0),
            format!("file is {} bytes; flow files are limited to {} bytes", file.text.len(), MAX_SOURCE_BYTES),
        )
        .help("split the flow into several files and `imports` them");
        return (None, vec![d]);
    }
    let tree = match syntax {
        Syntax::Yaml => crate::yaml::parse(id, &file.text),
        Syntax::Dsl => dsl::parse(id, &file.text),
    };
    match tree {
        Ok(root) => tree::build(&root),
        Err(d) => (None, vec![d]),
    }
}

/// The comments of a file's source, which parsing skips, for [`crate::print`] to put back.
pub fn comments(text: &str, syntax: Syntax) -> Vec<crate::print::Comment> {
    match syntax {
        Syntax::Yaml => crate::yaml::comments(text),
        Syntax::Dsl => dsl::comments(text),
    }
}
