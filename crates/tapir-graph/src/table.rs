//! Plain-text tables, as `tapir check` (the summary) and `tapir profile` print them.

/// `rows` (the first is the header) in columns two spaces apart, padded to the widest cell:
/// columns before `numbers_from` left-aligned, the rest right-aligned, a rule under the
/// header and one under the last row.
pub(crate) fn render<const N: usize>(rows: &[[String; N]], numbers_from: usize) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let rule = "-".repeat(widths.iter().sum::<usize>() + 2 * N.saturating_sub(1));
    let mut out = String::new();
    for (index, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| {
                if column >= numbers_from {
                    format!("{cell:>width$}")
                } else {
                    format!("{cell:<width$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
        if index == 0 {
            out.push_str(&rule);
            out.push('\n');
        }
    }
    out.push_str(&rule);
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_and_rules_frame_the_body() {
        let rows = [
            ["name".to_string(), "count".to_string()],
            ["a".to_string(), "1,234".to_string()],
            ["longer".to_string(), "5".to_string()],
        ];
        assert_eq!(
            super::render(&rows, 1),
            "name    count\n-------------\na       1,234\nlonger      5\n-------------\n"
        );
    }
}
