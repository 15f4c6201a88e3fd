//! Small pieces of English for messages, and the parser's messages taken apart.

use tapir_core::Arity;

/// At most this many names are listed in a hint.
const LISTED_NAMES: usize = 12;

/// `1 input`, `2 inputs`, `at least 1 input`.
pub(super) fn inputs_phrase(arity: Arity) -> String {
    let plural = |n: usize| if n == 1 { "input" } else { "inputs" };
    match arity {
        Arity::Exactly(n) => format!("{n} {}", plural(n)),
        Arity::Between(min, max) => format!("{min} to {max} inputs"),
        Arity::AtLeast(n) => format!("at least {n} {}", plural(n)),
    }
}

/// `"a", "b", "c"`, cut short after [`LISTED_NAMES`].
pub(super) fn quoted_list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    let mut listed: Vec<String> = names
        .iter()
        .take(LISTED_NAMES)
        .map(|n| format!("\"{n}\""))
        .collect();
    if names.len() > LISTED_NAMES {
        listed.push(format!("and {} more", names.len() - LISTED_NAMES));
    }
    listed.join(", ")
}

/// The names in backticks in `text`, in order.
pub(super) fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The names a parser message lists as expected (`..., expected `units` or `bias``).
pub(super) fn expected_names(message: &str) -> Vec<&str> {
    backticked(message.split_once(", expected").map_or("", |(_, e)| e))
}

/// The first backticked name after `marker` in `text`.
pub(super) fn quoted_after<'t>(text: &'t str, marker: &str) -> Option<&'t str> {
    let (_, rest) = text.split_once(marker)?;
    backticked(rest).first().copied()
}

/// `Expected comma` -> `expected comma`: the parser's messages, inside ours.
pub(super) fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_lowercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arity_reads_as_english() {
        assert_eq!(inputs_phrase(Arity::Exactly(1)), "1 input");
        assert_eq!(inputs_phrase(Arity::Exactly(2)), "2 inputs");
        assert_eq!(inputs_phrase(Arity::AtLeast(1)), "at least 1 input");
        assert_eq!(inputs_phrase(Arity::Between(1, 3)), "1 to 3 inputs");
    }

    #[test]
    fn parser_messages_are_taken_apart() {
        let message = "Unexpected field named `outputs` in `Dense`, expected either `units` or `bias` instead";
        assert_eq!(
            quoted_after(message, "Unexpected field named"),
            Some("outputs")
        );
        assert_eq!(expected_names(message), ["units", "bias"]);
        assert_eq!(lower_first("Expected comma"), "expected comma");
        let many = (0..14).map(|i| format!("n{i}")).collect::<Vec<_>>();
        assert!(quoted_list(many.iter().map(String::as_str)).ends_with("\"n11\", and 2 more"));
    }
}
