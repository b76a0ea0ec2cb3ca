//! What an `ask` accepts as an answer, by its `expect`: one definition for the VM, which
//! validates the answers users give, and the checker, which tells authors when a button of
//! theirs can never be accepted. Answers are trimmed before they are read.

/// A number (`4.5`, `-2`); not infinite, not NaN.
pub fn number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A whole number (`42`, `-7`).
pub fn integer(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

/// Yes or no: `yes`, `y`, `true` / `no`, `n`, `false`, in any case.
pub fn boolean(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" => Some(true),
        "no" | "n" | "false" => Some(false),
        _ => None,
    }
}

/// `name@domain.tld`: one `@`, something on each side, a dot in the domain, no spaces.
pub fn is_email(text: &str) -> bool {
    let s = text.trim();
    let Some((local, domain)) = s.split_once('@') else { return false };
    !local.is_empty()
        && !domain.contains('@')
        && !s.chars().any(char::is_whitespace)
        && domain.split('.').count() >= 2
        && domain.split('.').all(|part| !part.is_empty())
}

/// Whether an answer picks `choice`: the same words ignoring case, in any script (`CRÈME`
/// is `crème`).
pub fn same_words(choice: &str, answer: &str) -> bool {
    let answer = answer.trim();
    choice.eq_ignore_ascii_case(answer) || choice.to_lowercase() == answer.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_documented() {
        assert_eq!(number(" 4.5 "), Some(4.5));
        assert_eq!(number("inf"), None);
        assert_eq!(integer("-7"), Some(-7));
        assert_eq!(integer("7.0"), None);
        assert_eq!(boolean("Y"), Some(true));
        assert_eq!(boolean("nope"), None);
        assert!(is_email("ada@example.com"));
        assert!(!is_email("ada@example"));
        assert!(same_words("Crème", " CRÈME "));
        assert!(!same_words("small", "smal"));
    }
}
