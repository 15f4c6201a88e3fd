//! Files that are not a network in RON: the parser's error, turned into one that points
//! where the fix goes. The parser reports where it got lost, which for a missing comma is
//! the next entry and for a missing bracket can be many lines later.

use ron::error::{Error as RonError, SpannedError};

use super::locate::{Span, Unbalanced};
use super::words::lower_first;
use super::{Loader, nearest};
use crate::error::{ErrorKind, GraphError};

/// The general shape of a file, for hints that have nothing more specific to say.
const FORMAT: &str = "a network file is `Network(inputs: {...}, nodes: {...}, outputs: [...])`; \
                      see graphs/README.md";

/// How a message names a struct of the format (`NodeSpec` is no name a user knows).
fn describe(outer: Option<&str>) -> String {
    match outer {
        Some("Network") => "the network".to_string(),
        Some("NodeSpec") => "a node".to_string(),
        Some("InitSpec") => "`init`".to_string(),
        Some(other) => format!("`{other}`"),
        None => "this value".to_string(),
    }
}

/// An example of a field of the format, for a file that left it out.
fn example(field: &str) -> String {
    match field {
        "inputs" => "declare the inputs and their per-sample shapes: \
                     `inputs: { \"image\": [1, 28, 28] },`"
            .to_string(),
        "nodes" => {
            "list the nodes: `nodes: { \"relu\": (op: Relu, input: \"image\") },`".to_string()
        }
        "outputs" => {
            "name the nodes whose values the network returns: `outputs: [\"logits\"],`".to_string()
        }
        "op" => "give every node its op: `(op: Relu, input: \"conv\")`".to_string(),
        other => format!("add `{other}: ...`; see graphs/README.md"),
    }
}

/// `` `a`, `b`, `c` ``.
fn ticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Loader<'_> {
    pub(super) fn syntax_error(&self, error: SpannedError) -> GraphError {
        let src = self.src();
        let start = super::locate::offset_in(src, error.span.start.line, error.span.start.col);
        let end = super::locate::offset_in(src, error.span.end.line, error.span.end.col).max(start);
        if let Some(unbalanced) = self.unbalanced_near(start) {
            return unbalanced;
        }
        let here: Span = (start.min(src.len().saturating_sub(1)), (end - start).max(1));
        let syntax = |message: String| self.error(ErrorKind::Syntax, message);
        match error.code {
            RonError::ExpectedComma => {
                // The comma belongs after the previous entry, not before the next one.
                let after = self.text.end_of_previous_token(start);
                syntax("a `,` is missing between two entries".to_string())
                    .at((after.saturating_sub(1), 1), "add a `,` after this")
                    .help("separate the entries of maps, lists and structs with commas")
            }
            RonError::NoSuchStructField {
                expected,
                found,
                outer,
            } => {
                let what = describe(outer.as_deref());
                let field = self.text.token_at(start);
                let hint = match nearest(&found, expected.iter().copied()) {
                    Some(near) => {
                        format!("did you mean `{near}`? The fields are {}", ticked(expected))
                    }
                    None => format!("the fields are {}", ticked(expected)),
                };
                syntax(format!("{what} has no field `{found}`"))
                    .at(field, "unknown field")
                    .help(hint)
            }
            RonError::MissingStructField { field, outer } => {
                syntax(format!("{} has no `{field}`", describe(outer.as_deref())))
                    .at(here, format!("`{field}` is missing before this"))
                    .help(example(field))
            }
            RonError::DuplicateStructField { field, outer } => syntax(format!(
                "{} gives `{field}` twice",
                describe(outer.as_deref())
            ))
            .at(self.text.token_at(start), "given again here")
            .help(format!("keep one `{field}`")),
            RonError::NoSuchEnumVariant {
                expected,
                found,
                outer,
            } => {
                let what = outer.map_or("value".to_string(), |o| format!("`{o}`"));
                let hint = match nearest(&found, expected.iter().copied()) {
                    Some(near) => format!(
                        "did you mean `{near}`? The choices are {}",
                        ticked(expected)
                    ),
                    None => format!("the choices are {}", ticked(expected)),
                };
                syntax(format!("`{found}` is not a known {what}"))
                    .at(self.text.token_at(start), "unknown")
                    .help(hint)
            }
            RonError::ExpectedDifferentStructName { expected, found } => syntax(format!(
                "the file must be a `{expected}(...)`, not `{found}(...)`"
            ))
            .at(self.text.token_at(start), format!("write `{expected}`"))
            .help(FORMAT),
            code => syntax(format!(
                "not a valid network file: {}",
                lower_first(&code.to_string())
            ))
            .at(here, "here")
            .help(FORMAT),
        }
    }

    /// A bracket that does not pair up and explains the parser's error at `at`: an opener
    /// before `at` that is never closed, or a closer right at `at` with nothing to close.
    fn unbalanced_near(&self, at: usize) -> Option<GraphError> {
        let line = |offset: usize| self.text.line(offset);
        let bracket = |offset: usize| self.src()[offset..].chars().next().unwrap_or('?');
        let closer = |open: char| match open {
            '(' => ')',
            '[' => ']',
            _ => '}',
        };
        let error = match self.text.unbalanced()? {
            // The parser got lost at the closer itself: it is the closer that is wrong.
            Unbalanced::Unclosed {
                open,
                by: Some(close),
            } if self.text.end_of_previous_token(at) <= close + 1 && close <= at => self
                .error(
                    ErrorKind::Syntax,
                    format!(
                        "`{}` does not close the `{}` opened on line {}",
                        bracket(close),
                        bracket(open),
                        line(open)
                    ),
                )
                .at((close, 1), format!("one `{}` too many?", bracket(close)))
                .help(format!(
                    "remove this `{}`; or, if it belongs here, close the `{}` of line {} before it",
                    bracket(close),
                    bracket(open),
                    line(open)
                )),
            Unbalanced::Unclosed { open, by } if open < at && by.is_none_or(|c| at < c) => self
                .error(
                    ErrorKind::Syntax,
                    format!(
                        "a `{}` opened on line {} is never closed",
                        bracket(open),
                        line(open)
                    ),
                )
                .at((open, 1), "never closed")
                .help(format!(
                    "add the `{}` that closes it, where its group ends",
                    closer(bracket(open))
                )),
            Unbalanced::Stray { close } if close <= at => self
                .error(
                    ErrorKind::Syntax,
                    format!("`{}` closes nothing", bracket(close)),
                )
                .at((close, 1), "nothing to close")
                .help(format!("remove this `{}`", bracket(close))),
            _ => return None,
        };
        Some(error)
    }
}
