//! Load-time errors and warnings, located in the network file and rendered with `miette`:
//! file, line and column, a caret under the offending text, and a hint.

use std::fmt;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
    SourceSpan,
};

/// What kind of problem a [`GraphError`] is; tests and tools match on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file cannot be read.
    Io,
    /// The file is not valid RON, or not of the network format (unknown or missing field...).
    Syntax,
    /// A node names an op the registry does not know.
    UnknownOp,
    /// A node's input, an output or the loss names no graph input or node.
    UnknownReference,
    /// Two inputs or nodes share a name, or a node is named like an input.
    DuplicateName,
    /// The nodes' inputs form a cycle.
    Cycle,
    /// A node has the wrong number of inputs for its op.
    Arity,
    /// An op's hyperparameters do not parse or are out of range, or an `init` constant is not
    /// a finite number.
    Hyperparameter,
    /// An op cannot take the shapes of its inputs.
    Shape,
    /// The network has no outputs, or none of a kind it needs.
    Structure,
    /// A node that no output or loss uses (a warning).
    UnusedNode,
}

impl ErrorKind {
    fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "tapir::io",
            ErrorKind::Syntax => "tapir::syntax",
            ErrorKind::UnknownOp => "tapir::unknown_op",
            ErrorKind::UnknownReference => "tapir::unknown_reference",
            ErrorKind::DuplicateName => "tapir::duplicate_name",
            ErrorKind::Cycle => "tapir::cycle",
            ErrorKind::Arity => "tapir::arity",
            ErrorKind::Hyperparameter => "tapir::hyperparameter",
            ErrorKind::Shape => "tapir::shape",
            ErrorKind::Structure => "tapir::structure",
            ErrorKind::UnusedNode => "tapir::unused_node",
        }
    }
}

/// A problem found while loading a network file, with where it is.
#[derive(Debug, Clone)]
pub struct GraphError {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The text under the caret, and what to say there.
    label: Option<(SourceSpan, String)>,
    /// How to fix it.
    pub help: Option<String>,
    source: Arc<NamedSource<String>>,
    severity: Severity,
}

impl GraphError {
    /// The width, in columns, that [`GraphError::render`] wraps at.
    pub const RENDER_WIDTH: usize = 100;

    pub(crate) fn new(
        kind: ErrorKind,
        source: &Arc<NamedSource<String>>,
        message: impl Into<String>,
    ) -> Self {
        let severity = if kind == ErrorKind::UnusedNode {
            Severity::Warning
        } else {
            Severity::Error
        };
        GraphError {
            kind,
            message: message.into(),
            label: None,
            help: None,
            source: Arc::clone(source),
            severity,
        }
    }

    /// Puts the caret under `span` (byte offset and length), saying `label` there.
    pub(crate) fn at(mut self, span: (usize, usize), label: impl Into<String>) -> Self {
        self.label = Some((span.into(), label.into()));
        self
    }

    /// Adds a hint on how to fix it.
    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The 1-based line and column of the caret, if the error points into the file.
    pub fn line_column(&self) -> Option<(usize, usize)> {
        let (span, _) = self.label.as_ref()?;
        let text = self.source.inner();
        let before = text.get(..span.offset())?;
        let line = before.matches('\n').count() + 1;
        let column = before.rfind('\n').map_or(before.chars().count(), |nl| {
            before[nl + 1..].chars().count()
        }) + 1;
        Some((line, column))
    }

    /// The text the caret is under, if the error points into the file.
    pub fn located_text(&self) -> Option<&str> {
        let (span, _) = self.label.as_ref()?;
        self.source
            .inner()
            .get(span.offset()..span.offset() + span.len())
    }

    /// The whole report as plain text: message, `file:line:column`, the line with a caret, the hint.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // No colours, links or highlighting, and a fixed width: the same text on every
        // terminal, in logs and in snapshots.
        let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
            .with_links(false)
            .without_syntax_highlighting()
            .with_width(Self::RENDER_WIDTH);
        if handler.render_report(&mut out, self).is_err() {
            return self.to_string();
        }
        out
    }
}

impl GraphError {
    /// One line: `file:line:column: message` (or `file: message` where no place applies).
    pub fn headline(&self) -> String {
        match self.line_column() {
            Some((line, column)) => {
                format!("{}:{line}:{column}: {}", self.source.name(), self.message)
            }
            None => format!("{}: {}", self.source.name(), self.message),
        }
    }
}

/// The message alone; [`GraphError::headline`] adds the place, [`GraphError::render`] shows it.
impl fmt::Display for GraphError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GraphError {}

impl Diagnostic for GraphError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.kind.code()))
    }
    fn severity(&self) -> Option<Severity> {
        Some(self.severity)
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(self.source.as_ref())
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let (span, text) = self.label.as_ref()?;
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(text.clone()),
            *span,
        ))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_plain_text_with_the_place_and_the_caret() {
        let source = Arc::new(NamedSource::new(
            "net.ron",
            "Network(\n    outputs: [\"logit\"],\n)".to_string(),
        ));
        let error = GraphError::new(ErrorKind::UnknownReference, &source, "no such node")
            .at((23, 7), "unknown name")
            .help("write \"logits\"");
        assert_eq!(error.line_column(), Some((2, 15)));
        assert_eq!(error.located_text(), Some("\"logit\""));
        assert_eq!(error.headline(), "net.ron:2:15: no such node");
        let rendered = error.render();
        assert!(!rendered.contains('\u{1b}'), "{rendered:?}");
        assert!(rendered.contains("[net.ron:2:15]"), "{rendered}");
        assert!(rendered.contains("help: write \"logits\""), "{rendered}");
        let warning = GraphError::new(ErrorKind::UnusedNode, &source, "unused");
        assert!(
            warning.render().contains("⚠ unused"),
            "{}",
            warning.render()
        );
        assert_eq!(warning.line_column(), None);
    }
}
