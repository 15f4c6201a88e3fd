//! Where things are in a network file's text. The parsed file carries no positions, so
//! fields, names and values are found again in the text, with comments blanked out and the
//! bracket depth of every byte known: a name in a comment, or a node named like a field,
//! is never taken for the real thing.

use std::ops::Range;

/// A byte span: offset and length.
pub(crate) type Span = (usize, usize);

/// A network file's text, lexed just enough to search it.
pub(crate) struct Text<'a> {
    text: &'a str,
    /// `text` with every comment byte replaced by a space (newlines kept): same offsets.
    masked: String,
    /// The bracket depth of each byte; an opener and its closer have the depth outside them.
    depth: Vec<u32>,
    /// Whether each byte belongs to a string or char literal, quotes included.
    literal: Vec<bool>,
}

/// A bracket that does not pair up, as the parser's error may not say.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unbalanced {
    /// The opener at this offset is never closed, or is closed by the wrong kind of bracket
    /// at `by`.
    Unclosed { open: usize, by: Option<usize> },
    /// The closer at this offset closes nothing that is open.
    Stray { close: usize },
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn closer_of(open: u8) -> u8 {
    match open {
        b'(' => b')',
        b'[' => b']',
        _ => b'}',
    }
}

impl<'a> Text<'a> {
    /// Lexes `text`: comments, string and char literals, brackets.
    pub(crate) fn new(text: &'a str) -> Self {
        // Every byte that matters here is ASCII, and ASCII bytes never occur inside a
        // multi-byte UTF-8 character, so walking bytes is safe.
        let bytes = text.as_bytes();
        let mut masked = bytes.to_vec();
        let mut depth = vec![0u32; bytes.len()];
        let mut literal = vec![false; bytes.len()];
        let mut level = 0u32;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let next = bytes.get(i + 1).copied();
            let start = i;
            match b {
                b'/' if next == Some(b'/') => {
                    while i < bytes.len() && bytes[i] != b'\n' {
                        i += 1;
                    }
                }
                b'/' if next == Some(b'*') => {
                    // RON's block comments nest.
                    let mut open = 0usize;
                    while i < bytes.len() {
                        if bytes[i..].starts_with(b"/*") {
                            open += 1;
                            i += 2;
                        } else if bytes[i..].starts_with(b"*/") {
                            open -= 1;
                            i += 2;
                            if open == 0 {
                                break;
                            }
                        } else {
                            i += 1;
                        }
                    }
                }
                b'"' | b'\'' => {
                    i += 1;
                    while i < bytes.len() && bytes[i] != b {
                        i += if bytes[i] == b'\\' { 2 } else { 1 };
                    }
                    i = (i + 1).min(bytes.len());
                    literal[start..i].iter_mut().for_each(|l| *l = true);
                }
                b'r' if (i == 0 || !is_ident(bytes[i - 1]))
                    && matches!(next, Some(b'"' | b'#')) =>
                {
                    let hashes = bytes[i + 1..].iter().take_while(|&&c| c == b'#').count();
                    if bytes.get(i + 1 + hashes) == Some(&b'"') {
                        let close: Vec<u8> = std::iter::once(b'"')
                            .chain(std::iter::repeat_n(b'#', hashes))
                            .collect();
                        i += 2 + hashes;
                        while i < bytes.len() && !bytes[i..].starts_with(&close) {
                            i += 1;
                        }
                        i = (i + close.len()).min(bytes.len());
                        literal[start..i].iter_mut().for_each(|l| *l = true);
                    } else {
                        i += 1;
                    }
                }
                b'(' | b'[' | b'{' => {
                    depth[i] = level;
                    level += 1;
                    i += 1;
                    continue;
                }
                b')' | b']' | b'}' => {
                    level = level.saturating_sub(1);
                    depth[i] = level;
                    i += 1;
                    continue;
                }
                _ => i += 1,
            }
            depth[start..i].iter_mut().for_each(|d| *d = level);
            if b == b'/' && i > start + 1 {
                for m in &mut masked[start..i] {
                    if *m != b'\n' {
                        *m = b' ';
                    }
                }
            }
        }
        // Blanking replaced whole comments, multi-byte characters included, by ASCII spaces.
        let masked = String::from_utf8(masked).unwrap_or_else(|_| text.to_string());
        Text {
            text,
            masked,
            depth,
            literal,
        }
    }

    /// The original text.
    pub(crate) fn source(&self) -> &'a str {
        self.text
    }

    /// The span of the whole text.
    pub(crate) fn all(&self) -> Range<usize> {
        0..self.text.len()
    }

    /// Occurrences of `needle` in `range` outside comments, at bracket depth `depth`.
    fn find_all<'s>(
        &'s self,
        needle: &'s str,
        range: Range<usize>,
        depth: u32,
    ) -> impl Iterator<Item = usize> + 's {
        let hay = self.masked.get(range.clone()).unwrap_or("");
        hay.match_indices(needle)
            .map(move |(i, _)| range.start + i)
            .filter(move |&at| self.depth[at] == depth)
    }

    /// Whether `at` is followed, after whitespace, by a `:` (and not `::`).
    fn colon_after(&self, at: usize) -> Option<usize> {
        let rest = &self.masked[at..];
        let skipped = rest.len() - rest.trim_start().len();
        let colon = at + skipped;
        (self.masked[colon..].starts_with(':') && !self.masked[colon..].starts_with("::"))
            .then_some(colon)
    }

    /// The first field `name:` in `range` at `depth`, outside literals.
    pub(crate) fn field(&self, name: &str, range: Range<usize>, depth: u32) -> Option<Span> {
        let bytes = self.masked.as_bytes();
        self.find_all(name, range, depth)
            .find(|&at| {
                let end = at + name.len();
                !self.literal[at]
                    && (at == 0 || !is_ident(bytes[at - 1]))
                    && !bytes.get(end).copied().is_some_and(is_ident)
                    && self.colon_after(end).is_some()
            })
            .map(|at| (at, name.len()))
    }

    /// A field of the `Network(...)` itself.
    pub(crate) fn top_field(&self, name: &str) -> Option<Span> {
        self.field(name, self.all(), 1)
    }

    /// The `skip`-th (0-based) map key `"name":` in `range` at `depth`.
    pub(crate) fn key(
        &self,
        name: &str,
        range: Range<usize>,
        depth: u32,
        skip: usize,
    ) -> Option<Span> {
        let quoted = format!("\"{name}\"");
        let found: Vec<usize> = self
            .find_all(&quoted, range, depth)
            .filter(|&at| self.opens_literal(at) && self.colon_after(at + quoted.len()).is_some())
            .collect();
        found.get(skip).map(|&at| (at, quoted.len()))
    }

    /// The string literals in `range`, in order.
    pub(crate) fn strings(&self, range: Range<usize>) -> Vec<Span> {
        let end = range.end.min(self.text.len());
        let mut found = Vec::new();
        let mut at = range.start;
        while at < end {
            if self.opens_literal(at) && self.masked.as_bytes()[at] == b'"' {
                let len = self.literal[at..end].iter().take_while(|&&l| l).count();
                found.push((at, len));
                at += len.max(1);
            } else {
                at += 1;
            }
        }
        found
    }

    /// Whether a literal starts at `at`.
    fn opens_literal(&self, at: usize) -> bool {
        self.literal[at] && (at == 0 || !self.literal[at - 1] || self.closes_literal(at - 1))
    }

    /// Whether the literal byte at `at` is a closing quote (an unescaped quote that is not
    /// the literal's first byte).
    fn closes_literal(&self, at: usize) -> bool {
        let bytes = self.masked.as_bytes();
        let start = (0..=at).rev().take_while(|&i| self.literal[i]).last();
        start.is_some_and(|s| s < at && bytes[at] == bytes[s])
    }

    /// The value after a key or field whose name ends at `name_end`: a bracketed group, a
    /// literal, or a word optionally followed by a bracketed group (`Conv2d(...)`).
    pub(crate) fn value_after(&self, name_end: usize) -> Option<Span> {
        let colon = self.colon_after(name_end)?;
        self.value_at(colon + 1)
    }

    /// The value that starts at the first non-blank byte from `from` (see [`Self::value_after`]).
    pub(crate) fn value_at(&self, from: usize) -> Option<Span> {
        let bytes = self.masked.as_bytes();
        let rest = self.masked.get(from..)?;
        let start = from + (rest.len() - rest.trim_start().len());
        let depth = *self.depth.get(start)?;
        let mut end = start;
        while end < bytes.len() {
            let b = bytes[end];
            if self.literal[end] {
                let len = self.literal[end..].iter().take_while(|&&l| l).count();
                end += len;
                continue;
            }
            match b {
                b'(' | b'[' | b'{' => {
                    end = self.matching(end).map_or(bytes.len(), |close| close + 1);
                    if !self.masked[end..].trim_start().starts_with(['(', '[', '{']) {
                        break;
                    }
                }
                b')' | b']' | b'}' | b',' if self.depth[end] <= depth => break,
                _ => end += 1,
            }
        }
        let value = self.masked[start..end].trim_end();
        (!value.is_empty()).then_some((start, value.len()))
    }

    /// The closer that pairs with the opener at `open`.
    pub(crate) fn matching(&self, open: usize) -> Option<usize> {
        let depth = self.depth[open];
        let bytes = self.masked.as_bytes();
        (open + 1..bytes.len()).find(|&i| {
            self.depth[i] == depth && !self.literal[i] && matches!(bytes[i], b')' | b']' | b'}')
        })
    }

    /// The inside of a bracketed value, and the depth of what is directly inside it.
    pub(crate) fn inside(&self, value: Span) -> (Range<usize>, u32) {
        let (start, end) = (value.0, (value.0 + value.1).min(self.masked.len()));
        let bracket = self.masked[start.min(end)..end]
            .find(['(', '[', '{'])
            .map_or(start, |i| start + i);
        let depth = self.depth.get(bracket).map_or(0, |d| d + 1);
        (bracket..end, depth)
    }

    /// The offset just past the last non-blank byte before `at` (comments count as blank).
    pub(crate) fn end_of_previous_token(&self, at: usize) -> usize {
        self.masked[..at.min(self.masked.len())].trim_end().len()
    }

    /// The identifier (or, failing that, the value) that starts at `at`.
    pub(crate) fn token_at(&self, at: usize) -> Span {
        let bytes = self.masked.as_bytes();
        let word = bytes[at.min(bytes.len())..]
            .iter()
            .take_while(|&&b| is_ident(b))
            .count();
        if word > 0 && !bytes.get(at + word).is_some_and(|b| b"([{".contains(b)) {
            return (at, word);
        }
        self.value_at(at).unwrap_or((at, 1))
    }

    /// The identifier or value that `at` points into: the parser may point at the middle
    /// of a value (the `1` of `-1`, the inside of a string).
    pub(crate) fn token_around(&self, at: usize) -> Span {
        let bytes = self.masked.as_bytes();
        let mut start = at.min(bytes.len().saturating_sub(1));
        while start > 0 && self.literal[start] && !self.opens_literal(start) {
            start -= 1;
        }
        if !self.literal[start] {
            while start > 0 {
                let b = bytes[start - 1];
                if b"(:,[{".contains(&b) || b.is_ascii_whitespace() {
                    break;
                }
                start -= 1;
            }
        }
        self.token_at(start)
    }

    /// The identifier that ends just before a `:` preceding `at` (`kernel` for the value in
    /// `kernel: 0`), if there is one.
    pub(crate) fn field_before(&self, at: usize) -> Option<Span> {
        let before = self.masked[..at].trim_end();
        let before = before.strip_suffix(':')?.trim_end();
        let len = before.bytes().rev().take_while(|&b| is_ident(b)).count();
        (len > 0).then(|| (before.len() - len, len))
    }

    /// The 1-based line of the byte at `at`.
    pub(crate) fn line(&self, at: usize) -> usize {
        self.text[..at.min(self.text.len())].matches('\n').count() + 1
    }

    /// The first bracket that does not pair up, if any.
    pub(crate) fn unbalanced(&self) -> Option<Unbalanced> {
        let bytes = self.masked.as_bytes();
        let mut open: Vec<usize> = Vec::new();
        for (i, &b) in bytes.iter().enumerate() {
            if self.literal[i] {
                continue;
            }
            match b {
                b'(' | b'[' | b'{' => open.push(i),
                b')' | b']' | b'}' => match open.last() {
                    Some(&top) if closer_of(bytes[top]) == b => {
                        open.pop();
                    }
                    // The closer belongs to the bracket below: the top one was never closed.
                    Some(&top)
                        if open.len() >= 2 && closer_of(bytes[open[open.len() - 2]]) == b =>
                    {
                        return Some(Unbalanced::Unclosed {
                            open: top,
                            by: Some(i),
                        });
                    }
                    _ => return Some(Unbalanced::Stray { close: i }),
                },
                _ => {}
            }
        }
        open.last().map(|&top| Unbalanced::Unclosed {
            open: top,
            by: None,
        })
    }
}

/// The byte offset of 1-based `line` and `column` (in characters) in `text`.
pub(crate) fn offset_in(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let rest = &text[line_start.min(text.len())..];
    let in_line = rest
        .char_indices()
        .nth(column.saturating_sub(1))
        .map_or(rest.len(), |(i, _)| i);
    (line_start + in_line).min(text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, span: Option<Span>) -> &str {
        let (start, len) = span.expect("found");
        &text[start..start + len]
    }

    #[test]
    fn offsets_count_characters_from_one() {
        let text = "ab\ncdé\nf";
        assert_eq!(offset_in(text, 1, 1), 0);
        assert_eq!(offset_in(text, 2, 3), 5);
        assert_eq!(offset_in(text, 3, 1), 8);
    }

    #[test]
    fn fields_in_comments_and_strings_are_not_fields() {
        let text = "// outputs: [\"a\"] é\nNetwork(inputs: {\"outputs\": [1]}, /* outputs: */ outputs: [\"b\"])";
        let t = Text::new(text);
        let span = t.top_field("outputs").expect("found");
        assert_eq!(&text[span.0..], "outputs: [\"b\"])");
        assert_eq!(at(text, t.value_after(span.0 + span.1)), "[\"b\"]");
        assert_eq!(t.top_field("output"), None);
    }

    #[test]
    fn keys_values_and_strings_are_found_at_their_depth() {
        let text = r#"Network(nodes: {
    "a": (op: Conv2d(kernel: (3, 3)), input: "x"), // "a": again
    "b": (op: Relu, inputs: ["a", "x"]),
    "a": (op: Relu, input: "b"),
})"#;
        let t = Text::new(text);
        let nodes = t.value_after(t.top_field("nodes").map(|(s, l)| s + l).expect("nodes"));
        let (inside, depth) = t.inside(nodes.expect("value"));
        assert_eq!(depth, 2);
        let second = t.key("a", inside.clone(), depth, 1).expect("second a");
        assert_eq!(t.line(second.0), 4);
        let first = t.key("a", inside, depth, 0).expect("first a");
        let body = t.value_after(first.0 + first.1).expect("body");
        assert_eq!(
            at(text, Some(body)),
            r#"(op: Conv2d(kernel: (3, 3)), input: "x")"#
        );
        let (fields, depth) = t.inside(body);
        let op = t.field("op", fields.clone(), depth).expect("op");
        assert_eq!(
            at(text, t.value_after(op.0 + op.1)),
            "Conv2d(kernel: (3, 3))"
        );
        let input = t.field("input", fields, depth).expect("input");
        assert_eq!(at(text, t.value_after(input.0 + input.1)), "\"x\"");
        let b = t.key("b", t.all(), 2, 0).expect("b");
        let list = t.value_after(b.0 + b.1).expect("body");
        let strings: Vec<&str> = t
            .strings(list.0..list.0 + list.1)
            .into_iter()
            .map(|s| at(text, Some(s)))
            .collect();
        assert_eq!(strings, ["\"a\"", "\"x\""]);
    }

    #[test]
    fn tokens_and_fields_around_a_position() {
        let text = "(filters: 8, padding: -1, kernel: (3, 5))";
        let t = Text::new(text);
        let minus = text.find('-').expect("minus");
        assert_eq!(at(text, Some(t.token_at(minus))), "-1");
        assert_eq!(at(text, t.field_before(minus)), "padding");
        let pair = text.find("(3").expect("pair");
        assert_eq!(at(text, Some(t.token_at(pair))), "(3, 5)");
        assert_eq!(at(text, Some(t.token_at(1))), "filters");
        assert_eq!(at(text, Some(t.token_around(minus + 1))), "-1");
        assert_eq!(
            t.end_of_previous_token(text.find("padding").expect("p")),
            12
        );
        let text = "(kernel: \"3\")";
        let t = Text::new(text);
        assert_eq!(at(text, Some(t.token_around(10))), "\"3\"");
        assert_eq!(at(text, Some(t.token_around(3))), "kernel");
    }

    #[test]
    fn unbalanced_brackets_are_found() {
        let t = Text::new("A(b: [1, 2), c: \")\")");
        assert_eq!(
            t.unbalanced(),
            Some(Unbalanced::Unclosed {
                open: 5,
                by: Some(10)
            })
        );
        assert_eq!(
            Text::new("A(b: 1))").unbalanced(),
            Some(Unbalanced::Stray { close: 7 })
        );
        assert_eq!(
            Text::new("A(b: (1)").unbalanced(),
            Some(Unbalanced::Unclosed { open: 1, by: None })
        );
        assert_eq!(Text::new("A(b: \"(\") // (").unbalanced(), None);
    }
}
