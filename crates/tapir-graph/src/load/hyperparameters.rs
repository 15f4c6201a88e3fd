//! Hyperparameters that do not parse, or are out of range: the error points at the
//! `field: value` it is about, not at the whole op.

use tapir_core::{Error as CoreError, RegistryEntry};

use super::locate::{Span, offset_in};
use super::words::{expected_names, lower_first, quoted_after};
use super::{Loader, Place, camel_case, nearest};
use crate::error::{ErrorKind, GraphError};

/// How the parser's own messages start; anything else is a type saying what it accepts
/// (`a number, or (height, width)`).
const PARSER_MESSAGES: [&str; 8] = [
    "Expected",
    "Unexpected",
    "Invalid",
    "Integer",
    "Non-whitespace",
    "No RON",
    "Found",
    "Unclosed",
];

/// A hint for a value that is wrong in a way that has one obvious fix.
fn value_hint(field: &str, written: &str) -> Option<String> {
    if written.starts_with('-') {
        return Some(format!(
            "`{field}` counts pixels or items and cannot be negative: use 0 or more"
        ));
    }
    written
        .strip_prefix('"')
        .and_then(|w| w.strip_suffix('"'))
        .map(|inner| format!("write numbers and names without quotes: `{field}: {inner}`"))
}

impl Loader<'_> {
    /// An error from building an op, pointed at the hyperparameter it is about.
    pub(super) fn op_error(
        &self,
        title: &str,
        entry: &RegistryEntry,
        place: &Place,
        error: CoreError,
    ) -> GraphError {
        let op = camel_case(entry.name);
        let (start, len) = place.op;
        let op_text = &self.src()[start..start + len];
        match error {
            CoreError::Parse {
                line,
                column,
                message,
                ..
            } => match op_text.find('(') {
                // Line and column count within the hyperparameter text, after the op's name.
                Some(open) => {
                    let at = start + open + offset_in(&op_text[open..], line, column);
                    self.parse_error(title, &op, at, &message)
                }
                // An op written without parentheses parses as `()`: only a missing field
                // can be wrong with that.
                None => {
                    let name = place.op_name(self.src());
                    let error = |message: String| self.error(ErrorKind::Hyperparameter, message);
                    match quoted_after(&message, "missing field named") {
                        Some(field) => {
                            error(format!("{title}: {op} needs the hyperparameter `{field}`"))
                                .at(name, format!("`{field}` is missing"))
                                .help(format!("give it: `{op}({field}: ...)`"))
                        }
                        None => error(format!("{title}: {op}: {}", lower_first(&message)))
                            .at(name, "here")
                            .help(format!("see graphs/README.md for {op}'s hyperparameters")),
                    }
                }
            },
            CoreError::Hyperparameter { message, .. } => {
                let span = self.mentioned_field(place, &message).unwrap_or(place.op);
                let written = &self.src()[span.0..span.0 + span.1];
                self.error(
                    ErrorKind::Hyperparameter,
                    format!("{title}: {op}: {message}"),
                )
                .at(span, "this hyperparameter")
                .help(format!(
                    "change `{written}`; graphs/README.md lists {op}'s hyperparameters and their \
                     ranges"
                ))
            }
            other => self
                .error(ErrorKind::Hyperparameter, format!("{title}: {other}"))
                .at(place.op, "this op")
                .help(format!("see graphs/README.md for {op}'s hyperparameters")),
        }
    }

    /// A hyperparameter text that does not parse as the op's: `message` is the parser's
    /// complaint about the text at `at`.
    fn parse_error(&self, title: &str, op: &str, at: usize, message: &str) -> GraphError {
        let token = self.text.token_around(at);
        let written = &self.src()[token.0..token.0 + token.1];
        let error =
            |text: String| self.error(ErrorKind::Hyperparameter, format!("{title}: {op}: {text}"));
        if let Some(field) = quoted_after(message, "Unexpected field named") {
            let expected = expected_names(message);
            let listed = expected
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ");
            let help = match nearest(field, expected.iter().copied()) {
                Some(near) => format!("did you mean `{near}`? {op} takes {listed}"),
                None => format!("{op} takes {listed}; remove `{field}` or use one of those"),
            };
            return error(format!("no hyperparameter named `{field}`"))
                .at(token, "unknown hyperparameter")
                .help(help);
        }
        if let Some(field) = quoted_after(message, "missing field named") {
            // The parser stops at the closing parenthesis, where the field would go.
            return error(format!("the hyperparameter `{field}` is missing"))
                .at((at, 1), format!("`{field}` is missing"))
                .help(format!(
                    "add `{field}: ...`; see graphs/README.md for {op}'s hyperparameters"
                ));
        }
        let field = self
            .text
            .field_before(token.0)
            .map(|(s, l)| &self.src()[s..s + l]);
        let from_parser = PARSER_MESSAGES.iter().any(|p| message.starts_with(p));
        match field {
            Some(field) => {
                let (problem, label) = if from_parser {
                    (lower_first(message), "here".to_string())
                } else {
                    (format!("expected {message}"), "not valid".to_string())
                };
                let help = value_hint(field, written)
                    .unwrap_or_else(|| format!("see graphs/README.md for {op}'s `{field}`"));
                error(format!("`{field}: {written}`: {problem}"))
                    .at(token, label)
                    .help(help)
            }
            None => error(lower_first(message))
                .at(token, "here")
                .help(format!("see graphs/README.md for {op}'s hyperparameters")),
        }
    }

    /// The `field: value` of the op's hyperparameters that `message` names first.
    pub(super) fn mentioned_field(&self, place: &Place, message: &str) -> Option<Span> {
        let (inside, depth) = self.text.inside(place.op);
        let words = message
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty());
        words.into_iter().find_map(|word| {
            let field = self.text.field(word, inside.clone(), depth)?;
            let value = self.text.value_after(field.0 + field.1)?;
            Some((field.0, value.0 + value.1 - field.0))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obvious_value_mistakes_get_their_fix() {
        assert_eq!(
            value_hint("padding", "-1").as_deref(),
            Some("`padding` counts pixels or items and cannot be negative: use 0 or more")
        );
        assert_eq!(
            value_hint("kernel", "\"3\"").as_deref(),
            Some("write numbers and names without quotes: `kernel: 3`")
        );
        assert_eq!(value_hint("kernel", "(3, 3, 3)"), None);
    }
}
