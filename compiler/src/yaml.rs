//! The one module that knows about the YAML library: it turns text into a small tree of
//! [`Node`]s that carry byte spans, so later stages can point at any key or value.
//!
//! It also enforces the input limits that keep hostile documents harmless: nesting depth,
//! total node count after alias expansion ("billion laughs"), and one document per file.

use crate::diagnostic::Diagnostic;
use crate::span::{FileId, Span};
use saphyr_parser::{Event, Parser, ScalarStyle};
use std::collections::HashMap;

/// Deeper nesting than this is refused; real flows nest four or five levels.
pub const MAX_DEPTH: usize = 64;
/// More nodes than this (after expanding aliases) is refused.
pub const MAX_NODES: usize = 2_000_000;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing at all.
    Null,
    /// A scalar as written; `quoted` tells `"42"` (text) apart from `42` (a number).
    Scalar {
        /// Inline up to 24 bytes: most scalars of a flow (keys, node ids, names) are short,
        /// and a large flow has a hundred thousand of them, so they cost no allocation.
        text: compact_str::CompactString,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys in document order; duplicates are kept so the caller can report them.
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub span: Span,
    /// Where the scalar's text is in the source, so errors in templates and expressions can
    /// point inside a string.
    pub origin: Origin,
}

/// How a scalar's text maps onto its source bytes.
#[derive(Clone, Debug, PartialEq, Default)]
pub enum Origin {
    /// Not known (a folded or multi-line scalar): errors point at the whole value.
    #[default]
    Unknown,
    /// The text appears verbatim starting at this byte.
    At(u32),
    /// `map[i]` is the source byte of the text's byte `i` (escapes decoded); one entry past
    /// the end.
    Mapped(Vec<u32>),
}

impl Node {
    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    fn size(&self) -> usize {
        match &self.value {
            Value::Null | Value::Scalar { .. } => 1,
            Value::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Value::Map(pairs) => 1 + pairs.iter().map(|(k, v)| k.size() + v.size()).sum::<usize>(),
        }
    }
}

/// Converts the parser's character positions to byte offsets.
struct Offsets<'a> {
    text: &'a str,
    /// Byte offset of every char, only built when the text is not pure ASCII.
    table: Option<Vec<u32>>,
}

impl Offsets<'_> {
    fn byte(&self, char_index: usize) -> usize {
        match &self.table {
            None => char_index.min(self.text.len()),
            Some(t) => t.get(char_index).map_or(self.text.len(), |&b| b as usize),
        }
    }
}

enum Frame {
    Seq { start: usize, items: Vec<Node>, anchor: usize },
    Map { start: usize, pairs: Vec<(Node, Node)>, key: Option<Node>, anchor: usize },
}

/// Parses one YAML document. Never panics; syntax and limit errors come back as diagnostics.
pub fn parse(file: FileId, text: &str) -> Result<Node, Diagnostic> {
    let offsets =
        Offsets { text, table: (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b as u32).collect()) };
    let span = |lo: usize, hi: usize| Span::new(file, offsets.byte(lo), offsets.byte(hi));
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: HashMap<usize, Node> = HashMap::new();
    let mut total = 0usize;
    let mut root: Option<Node> = None;
    let mut documents = 0;

    for event in Parser::new_from_str(text) {
        let (event, ev_span) = match event {
            Ok(e) => e,
            Err(e) => {
                let at = offsets.byte(e.marker().index());
                if e.info().contains("recursion limit") {
                    return Err(too_deep(Span::new(file, at, at)));
                }
                return Err(Diagnostic::error(
                    "E0001",
                    Span::new(file, at, at),
                    format!("YAML syntax error: {}", e.info()),
                )
                .label("the YAML parser stopped here")
                .help("check indentation, quoting and that every `key:` has a space after the colon"));
            }
        };
        let (lo, hi) = (ev_span.start.index(), ev_span.end.index());
        let finished: Option<(Node, usize)> = match event {
            Event::StreamStart | Event::StreamEnd | Event::Nothing | Event::DocumentEnd => None,
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Diagnostic::error(
                        "E0001",
                        span(lo, hi),
                        "a flow file holds exactly one YAML document",
                    )
                    .label("a second document starts here")
                    .help("put each flow in its own file"));
                }
                None
            }
            Event::Alias(id) => {
                let Some(node) = anchors.get(&id) else {
                    return Err(Diagnostic::error("E0001", span(lo, hi), "alias to an unknown anchor"));
                };
                total += node.size();
                if total > MAX_NODES {
                    return Err(too_big(span(lo, hi)));
                }
                Some((node.clone(), 0))
            }
            Event::Scalar(value, style, anchor, _tag) => {
                let quoted = !matches!(style, ScalarStyle::Plain);
                let mut s = span(lo, hi);
                // The parser's span of a quoted scalar that ends a flow mapping (`{ a: "x" }`)
                // runs on over the spaces before the `}`; a quoted scalar ends at its quote.
                if matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) {
                    s.hi = s.lo + text[s.range()].trim_end().len() as u32;
                }
                let src = &text[s.range()];
                let origin = match style {
                    ScalarStyle::Plain if src == value => Origin::At(s.lo),
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted
                        if src.len() == value.len() + 2 && src[1..src.len() - 1] == value =>
                    {
                        Origin::At(s.lo + 1)
                    }
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted if !src.contains('\n') => {
                        escaped_map(src, &value, s.lo, matches!(style, ScalarStyle::DoubleQuoted))
                    }
                    // Text that spans lines: a block scalar's (`|`, `>-`) starts after its
                    // header when the parser's span includes it, a quoted one after its
                    // quote, any other where its span does.
                    ScalarStyle::Literal | ScalarStyle::Folded if src.starts_with(['|', '>']) => {
                        src.find('\n').map_or(Origin::Unknown, |nl| aligned_map(src, &value, s.lo, nl + 1))
                    }
                    ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => aligned_map(src, &value, s.lo, 1),
                    _ => aligned_map(src, &value, s.lo, 0),
                };
                let value = if !quoted && matches!(&*value, "" | "~" | "null" | "Null" | "NULL") {
                    Value::Null
                } else {
                    Value::Scalar { text: value.as_ref().into(), quoted }
                };
                Some((Node { value, span: s, origin }, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq { start: lo, items: Vec::new(), anchor });
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map { start: lo, pairs: Vec::new(), key: None, anchor });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                // Flow collections end at their `]`/`}`; block ones are reported at the next
                // token, possibly lines later, so they end at their last child instead.
                let closer = offsets.byte(lo);
                let flow_end = matches!(text.as_bytes().get(closer), Some(b']' | b'}'));
                let end_of = |last: Option<&Span>| match (flow_end, last) {
                    (false, Some(last)) => last.hi as usize,
                    _ => offsets.byte(hi),
                };
                match stack.pop() {
                    Some(Frame::Seq { start, items, anchor }) => {
                        let s = Span::new(file, offsets.byte(start), end_of(items.last().map(|n| &n.span)));
                        Some((Node { value: Value::Seq(items), span: s, origin: Origin::Unknown }, anchor))
                    }
                    Some(Frame::Map { start, pairs, anchor, .. }) => {
                        let s = Span::new(file, offsets.byte(start), end_of(pairs.last().map(|(_, v)| &v.span)));
                        Some((Node { value: Value::Map(pairs), span: s, origin: Origin::Unknown }, anchor))
                    }
                    None => None,
                }
            }
        };
        if stack.len() > MAX_DEPTH {
            return Err(too_deep(span(lo, hi)));
        }
        let Some((node, anchor)) = finished else { continue };
        total += 1;
        if total > MAX_NODES {
            return Err(too_big(node.span));
        }
        if anchor != 0 {
            anchors.insert(anchor, node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { pairs, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => pairs.push((k, node)),
            },
        }
    }
    Ok(root.unwrap_or(Node { value: Value::Null, span: Span::new(file, 0, 0), origin: Origin::Unknown }))
}

/// Maps a scalar that spans lines back onto its source, from byte `from` of `src`: YAML
/// folds and indents its lines but keeps every other character in order, so each
/// non-blank character of the text is the next non-blank one of the source, and a blank
/// one maps to where the source is at. `Unknown` when that does not hold (escapes).
fn aligned_map(src: &str, value: &str, lo: u32, from: usize) -> Origin {
    let mut map = Vec::with_capacity(value.len() + 1);
    let mut rest = src.get(from..).unwrap_or_default().char_indices().map(|(i, c)| (from + i, c)).peekable();
    for c in value.chars() {
        let at = if c.is_whitespace() {
            let at = rest.peek().map_or(src.len(), |&(i, _)| i);
            if rest.peek().is_some_and(|&(_, s)| s.is_whitespace()) {
                rest.next();
            }
            at
        } else {
            loop {
                match rest.next() {
                    Some((i, s)) if s == c => break i,
                    Some((_, s)) if s.is_whitespace() => continue,
                    _ => return Origin::Unknown,
                }
            }
        };
        map.extend((0..c.len_utf8()).map(|k| lo + (at + k) as u32));
    }
    map.push(lo + rest.peek().map_or(src.len(), |&(i, _)| i) as u32);
    Origin::Mapped(map)
}

/// Maps a one-line quoted scalar's decoded text back onto its source, decoding the escapes
/// YAML allows (`\\x`, `\\u`, `\\U` and one-character escapes in double quotes, `''` in single
/// quotes). `Unknown` when the scalar spans lines (line folding) or anything does not add up.
fn escaped_map(src: &str, value: &str, lo: u32, double: bool) -> Origin {
    if src.contains('\n') || src.len() < 2 {
        return Origin::Unknown;
    }
    let inner = &src[1..src.len() - 1];
    let mut map = Vec::with_capacity(value.len() + 1);
    let bytes = inner.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let at = lo + 1 + i as u32;
        let (consumed, produced) = if double && bytes[i] == b'\\' {
            let Some(&e) = bytes.get(i + 1) else { return Origin::Unknown };
            let len = match e {
                b'x' => 4,
                b'u' => 6,
                b'U' => 10,
                _ => 2,
            };
            let Some(escape) = inner.get(i..i + len) else { return Origin::Unknown };
            let produced = match e {
                b'x' | b'u' | b'U' => {
                    u32::from_str_radix(&escape[2..], 16).ok().and_then(char::from_u32).map_or(0, char::len_utf8)
                }
                b'N' | b'_' => 2,
                b'L' | b'P' => 3,
                _ => 1,
            };
            (len, produced)
        } else if !double && bytes[i] == b'\'' {
            (2, 1)
        } else {
            let c = inner[i..].chars().next().map_or(1, char::len_utf8);
            for k in 0..c {
                map.push(at + k as u32);
            }
            i += c;
            continue;
        };
        map.extend(std::iter::repeat_n(at, produced));
        i += consumed;
    }
    if map.len() != value.len() {
        return Origin::Unknown;
    }
    map.push(lo + src.len() as u32 - 1);
    Origin::Mapped(map)
}

/// The comments of a YAML source, which the parser skips: a `#` at the start of a line or
/// after whitespace, outside quoted scalars and the text of block scalars (`|`, `>`), to the
/// end of its line. `text` must parse (`botc fmt` only formats files without syntax errors).
pub fn comments(text: &str) -> Vec<crate::print::Comment> {
    let offsets =
        Offsets { text, table: (!text.is_ascii()).then(|| text.char_indices().map(|(b, _)| b as u32).collect()) };
    // Byte ranges whose `#` are text. Plain scalars cannot hold ` #` (it ends them), so only
    // quoted and block scalars count; their ends are found here, not taken from the parser's
    // spans, which can run on past the scalar.
    let mut texts: Vec<(usize, usize)> = Vec::new();
    for event in Parser::new_from_str(text) {
        let Ok((Event::Scalar(_, style, ..), span)) = event else {
            if event.is_err() {
                break;
            }
            continue;
        };
        // The parser's position includes an anchor or a tag written before the scalar.
        let lo = after_properties(text, offsets.byte(span.start.index()));
        match style {
            ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
                texts.push((lo, quoted_end(text, lo, style == ScalarStyle::DoubleQuoted)))
            }
            ScalarStyle::Literal | ScalarStyle::Folded => texts.push(block_text(text, lo)),
            _ => {}
        }
    }
    texts.sort_unstable();
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        // A byte order mark may come first; a `#` right after it starts the first line.
        let line_start = i == 0 || (i == 3 && text.starts_with('\u{feff}'));
        let starts_comment = bytes[i] == b'#' && (line_start || matches!(bytes[i - 1], b' ' | b'\t' | b'\n' | b'\r'));
        let in_text = || {
            let k = texts.partition_point(|&(a, _)| a <= i);
            k > 0 && i < texts[k - 1].1
        };
        if starts_comment && !in_text() {
            out.push(crate::print::Comment::at(text, i));
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        }
        i += 1;
    }
    out
}

/// The byte where a scalar starting at byte `lo` starts once its properties (`&anchor`,
/// `!tag`) and the spaces after them are passed.
fn after_properties(text: &str, mut lo: usize) -> usize {
    let b = text.as_bytes();
    while lo < b.len() && matches!(b[lo], b'&' | b'!') {
        while lo < b.len() && !b[lo].is_ascii_whitespace() {
            lo += 1;
        }
        while lo < b.len() && matches!(b[lo], b' ' | b'\t') {
            lo += 1;
        }
    }
    lo
}

/// The byte after the closing quote of the quoted scalar that starts at byte `lo`.
fn quoted_end(text: &str, lo: usize, double: bool) -> usize {
    let b = text.as_bytes();
    let q = b.get(lo).copied().unwrap_or(b'"');
    let mut i = lo + 1;
    while i < b.len() {
        match b[i] {
            b'\\' if double => i += 1,
            c if c == q => {
                // `''` inside single quotes is a quote, not the end.
                if !double && b.get(i + 1) == Some(&b'\'') {
                    i += 1;
                } else {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    b.len()
}

/// The byte range of the text of the block scalar whose event starts at byte `lo`: the lines
/// after its header (`|`, `>-`) indented deeper than the header's line, up to the first line
/// indented less than the text (its indentation indicator's, or its first line's).
fn block_text(text: &str, lo: usize) -> (usize, usize) {
    let header = if text[lo..].starts_with(['|', '>']) { lo } else { text[..lo].rfind(['|', '>']).unwrap_or(lo) };
    let header_line = text[..header].rfind('\n').map_or(0, |i| i + 1);
    let indent_of = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let parent = indent_of(&text[header_line..]);
    let Some(nl) = text[header..].find('\n') else { return (text.len(), text.len()) };
    let start = header + nl + 1;
    // An indentation indicator (`|2`, `>-1`) fixes the text's indentation, relative to the
    // header's line; otherwise the first line that is not blank sets it.
    let indicator =
        text[header + 1..].chars().take_while(|c| matches!(c, '+' | '-' | '1'..='9')).find_map(|c| c.to_digit(10));
    let (mut end, mut content_indent) = (start, indicator.map(|d| parent + d as usize));
    let mut at = start;
    for line in text[start..].split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        if !body.trim().is_empty() {
            let indent = indent_of(body);
            let min = *content_indent.get_or_insert(indent);
            if indent <= parent || indent < min {
                break;
            }
        }
        at += line.len();
        end = at;
    }
    (start, end)
}

fn too_deep(span: Span) -> Diagnostic {
    Diagnostic::error("E0003", span, format!("YAML nested deeper than {MAX_DEPTH} levels"))
        .label("nesting passed the limit here")
        .help("flows never need this much nesting; is the file generated by mistake?")
}

fn too_big(span: Span) -> Diagnostic {
    Diagnostic::error("E0003", span, format!("YAML document expands to more than {MAX_NODES} nodes"))
        .label("expansion passed the limit here")
        .help("aliases (`*name`) are expanded; nested aliases can multiply a small file into a huge one")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Node, Diagnostic> {
        parse(FileId(0), s)
    }

    #[test]
    fn spans_are_bytes_even_after_non_ascii() {
        let src = "a: \"héllo\"\nb: x\n";
        let Value::Map(pairs) = p(src).unwrap().value else { panic!() };
        let b = &pairs[1].1;
        assert_eq!(&src[b.span.range()], "x");
        assert_eq!(pairs[0].1.origin, Origin::At(4));
    }

    #[test]
    fn escaped_scalars_map_back_to_their_source() {
        let src = "a: \"x\\\"y\\u00e9z\"\nb: 'it''s'\n";
        let Value::Map(pairs) = p(src).unwrap().value else { panic!() };
        let Origin::Mapped(map) = &pairs[0].1.origin else { panic!("{:?}", pairs[0].1.origin) };
        let text = pairs[0].1.as_str().unwrap();
        assert_eq!(text, "x\"yéz");
        let z = text.find('z').unwrap();
        assert_eq!(&src[map[z] as usize..map[z] as usize + 1], "z");
        let y = text.find('y').unwrap();
        assert_eq!(&src[map[y] as usize..map[y] as usize + 1], "y");
        let Origin::Mapped(map) = &pairs[1].1.origin else { panic!() };
        assert_eq!(&src[map[3] as usize..map[3] as usize + 1], "s");
    }

    #[test]
    fn multi_line_scalars_map_back_to_their_source() {
        let src = "a: |\n  one {{ x }}\n  two {{ y }}\nb: >-\n  folded\n  {{ z }} here\nc: plain\n  {{ w }}\n";
        let Value::Map(pairs) = p(src).unwrap().value else { panic!() };
        for (i, name) in ["y", "z", "w"].into_iter().enumerate() {
            let node = &pairs[i].1;
            let Origin::Mapped(map) = &node.origin else { panic!("{name}: {:?} {:?}", node.origin, node.span) };
            let text = node.as_str().unwrap();
            let at = text.find(&format!("{{{{ {name} }}}}")).unwrap() + 3;
            assert_eq!(&src[map[at] as usize..map[at] as usize + 1], name, "{text:?}");
        }
    }

    #[test]
    fn quoted_scalars_ending_a_flow_mapping_know_their_place() {
        let src = "a: { n: 'x', m: \"y\" }\n";
        let Value::Map(pairs) = p(src).unwrap().value else { panic!() };
        let Value::Map(inner) = &pairs[0].1.value else { panic!() };
        assert_eq!(&src[inner[1].1.span.range()], "\"y\"");
        assert_eq!(inner[1].1.origin, Origin::At(17));
        assert_eq!(inner[0].1.origin, Origin::At(9));
    }

    #[test]
    fn keeps_duplicate_keys() {
        let Value::Map(pairs) = p("a: 1\na: 2\n").unwrap().value else { panic!() };
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn refuses_alias_bombs_and_deep_nesting() {
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let prev = format!("*a{}", i - 1);
            bomb += &format!("a{i}: &a{i} [{}]\n", [prev.as_str(); 10].join(", "));
        }
        assert_eq!(p(&bomb).unwrap_err().code.0, "E0003");
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert_eq!(p(&deep).unwrap_err().code.0, "E0003");
        let block: String = (0..100).map(|i| format!("{}k{i}:\n", " ".repeat(i))).collect();
        assert_eq!(p(&block).unwrap_err().code.0, "E0003");
    }

    #[test]
    fn syntax_errors_have_a_location() {
        let e = p("a: [1, 2\nb: c\n").unwrap_err();
        assert_eq!(e.code.0, "E0001");
    }
}
