//! Renders diagnostics at the edge: rustc-style text (annotate-snippets), JSON lines for
//! tools, and GitHub workflow annotations.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use botc_compiler::diagnostic::{Diagnostic, Severity};
use botc_compiler::span::{SourceMap, Span};
use serde_json::json;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// rustc-style text with source snippets
    Human,
    /// one JSON object per line
    Json,
    /// GitHub Actions workflow commands (`::error file=...`)
    Github,
}

pub fn render(sources: &SourceMap, d: &Diagnostic, format: Format, color: bool) -> String {
    match format {
        Format::Human => human(sources, d, color),
        Format::Json => json_line(sources, d),
        Format::Github => github(sources, d),
    }
}

fn human(sources: &SourceMap, d: &Diagnostic, color: bool) -> String {
    let file = sources.get(d.span.file);
    let level = match d.severity {
        Severity::Error => Level::ERROR,
        Severity::Warning => Level::WARNING,
    };
    let mut snippet = Snippet::source(file.text.as_str())
        .path(file.name.as_str())
        .fold(true)
        .annotation(AnnotationKind::Primary.span(clamp(file.text.as_str(), d.span)).label(d.primary_label.as_str()));
    let mut elsewhere: Vec<Snippet<'_, _>> = Vec::new();
    for l in &d.labels {
        if l.span.file == d.span.file {
            snippet =
                snippet.annotation(AnnotationKind::Context.span(clamp(&file.text, l.span)).label(l.message.as_str()));
        } else {
            let other = sources.get(l.span.file);
            elsewhere.push(
                Snippet::source(other.text.as_str())
                    .path(other.name.as_str())
                    .fold(true)
                    .annotation(AnnotationKind::Context.span(clamp(&other.text, l.span)).label(l.message.as_str())),
            );
        }
    }
    let mut group = level.primary_title(d.message.as_str()).id(d.code.0).element(snippet);
    for s in elsewhere {
        group = group.element(s);
    }
    let mut report: Vec<Group<'_>> = vec![group];
    if let Some(h) = &d.help {
        report.push(Group::with_title(Level::HELP.secondary_title(h.as_str())));
    }
    let renderer = if color { Renderer::styled() } else { Renderer::plain() };
    renderer.render(&report).to_string()
}

/// Keeps a span inside its text and on character boundaries, whatever produced it.
fn clamp(text: &str, span: Span) -> std::ops::Range<usize> {
    let fix = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    fix(span.lo as usize)..fix(span.hi as usize).max(fix(span.lo as usize))
}

fn location(sources: &SourceMap, span: Span) -> serde_json::Value {
    let file = sources.get(span.file);
    let (line, column) = file.line_col(span.lo);
    let (end_line, end_column) = file.line_col(span.hi);
    json!({
        "file": file.name,
        "line": line,
        "column": column,
        "end_line": end_line,
        "end_column": end_column,
        "byte_start": span.lo,
        "byte_end": span.hi,
    })
}

fn json_line(sources: &SourceMap, d: &Diagnostic) -> String {
    let mut obj = location(sources, d.span);
    let map = obj.as_object_mut().expect("location is an object");
    map.insert("code".into(), json!(d.code.0));
    map.insert(
        "severity".into(),
        json!(match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }),
    );
    map.insert("message".into(), json!(d.message));
    map.insert("label".into(), json!(d.primary_label));
    let labels: Vec<_> = d
        .labels
        .iter()
        .map(|l| {
            let mut v = location(sources, l.span);
            v.as_object_mut().expect("object").insert("message".into(), json!(l.message));
            v
        })
        .collect();
    map.insert("labels".into(), json!(labels));
    map.insert("help".into(), json!(d.help));
    format!("{obj}\n")
}

/// GitHub's workflow-command escaping: data escapes `%`, CR, LF; properties also `:` and `,`.
fn gh_escape(s: &str, property: bool) -> String {
    let mut out = s.replace('%', "%25").replace('\r', "%0D").replace('\n', "%0A");
    if property {
        out = out.replace(':', "%3A").replace(',', "%2C");
    }
    out
}

fn github(sources: &SourceMap, d: &Diagnostic) -> String {
    let file = sources.get(d.span.file);
    let (line, col) = file.line_col(d.span.lo);
    let (end_line, end_col) = file.line_col(d.span.hi);
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut message = d.message.clone();
    if !d.primary_label.is_empty() {
        message = format!("{message}: {}", d.primary_label);
    }
    if let Some(h) = &d.help {
        message = format!("{message}\nhelp: {h}");
    }
    format!(
        "::{kind} file={},line={line},col={col},endLine={end_line},endColumn={end_col},title={}::{}\n",
        gh_escape(&file.name, true),
        gh_escape(&format!("{} {}", d.code, d.message), true),
        gh_escape(&message, false)
    )
}
