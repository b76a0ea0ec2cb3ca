//! The one diagnostic type every stage reports in. Diagnostics are data; the CLI renders them.

use crate::span::Span;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// A stable diagnostic code: `E0xxx` for errors, `W0xxx` for warnings. Codes never change
/// meaning once published; CI scripts and editors match on them. docs/diagnostics.md lists them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(pub &'static str);

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A secondary span with its own message ("first defined here").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// What the primary span is labelled with (may be empty).
    pub primary_label: String,
    pub span: Span,
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        debug_assert!(code.starts_with('E'));
        Diagnostic {
            code: Code(code),
            severity: Severity::Error,
            message: message.into(),
            primary_label: String::new(),
            span,
            labels: Vec::new(),
            help: None,
        }
    }

    pub fn warning(code: &'static str, span: Span, message: impl Into<String>) -> Diagnostic {
        debug_assert!(code.starts_with('W'));
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error("E", span, message) }.with_code(code)
    }

    fn with_code(mut self, code: &'static str) -> Diagnostic {
        self.code = Code(code);
        self
    }

    pub fn label(mut self, message: impl Into<String>) -> Diagnostic {
        self.primary_label = message.into();
        self
    }

    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Diagnostic {
        self.labels.push(Label { span, message: message.into() });
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// "did you mean `x`?" for a misspelt name, when some candidate is close enough to be a typo:
/// at most a third of the longer name's characters edited, swapping two neighbours counting
/// as one edit (`sya` is one edit from `say`).
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let best = candidates
        .into_iter()
        .map(|c| (strsim::osa_distance(name, c), c))
        .filter(|&(d, c)| d <= (name.len().max(c.len()) / 3).max(1))
        .min_by_key(|&(d, c)| (d, c.to_string()))?;
    Some(format!("did you mean `{}`?", best.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(did_you_mean("nxt", ["next", "say", "buttons"]), Some("did you mean `next`?".into()));
        assert_eq!(did_you_mean("zzzzzz", ["next", "say"]), None);
        assert_eq!(did_you_mean("sya", ["say", "set", "ask"]), Some("did you mean `say`?".into()));
    }
}
