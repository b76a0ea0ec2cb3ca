//! `botc check --explain CODE`: the long explanation of a diagnostic code, from
//! docs/diagnostics.md (compiled in), whose examples the test suite checks.

/// docs/diagnostics.md, the one source of the explanations.
pub const DOC: &str = include_str!("../../docs/diagnostics.md");

/// The codes explained, in the order the page lists them, each with its one-line meaning.
pub fn codes() -> impl Iterator<Item = (&'static str, &'static str)> {
    DOC.lines().filter_map(|l| l.strip_prefix("## ")?.split_once(": "))
}

/// The section of `code` (`E0401`, in any case): its title line, explanation and examples.
pub fn explain(code: &str) -> Option<&'static str> {
    let code = code.trim().to_ascii_uppercase();
    let start = DOC.find(&format!("\n## {code}: "))? + 1;
    let rest = &DOC[start..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    Some(rest[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_code_has_one_section_from_its_heading_to_the_next() {
        let e = explain("e0401").expect("E0401 is explained");
        assert!(e.starts_with("## E0401: loop that never waits for input"), "{e}");
        assert!(!e.contains("## W0402"), "{e}");
        assert_eq!(explain("E9999"), None);
        let all: Vec<&str> = codes().map(|(c, _)| c).collect();
        let mut sorted = all.clone();
        sorted.dedup();
        assert_eq!(all.len(), sorted.len(), "a code is explained twice");
        assert!(all.iter().all(|c| explain(c).is_some()));
    }
}
