//! Where a syntax error sits in text a user wrote (a filter expression, a JSON document):
//! the line holding it, cut to a readable width, and the fault's column in that excerpt,
//! so that `error_log` can put a caret under it.

/// Widest excerpt kept, in characters; longer lines are cut around the fault.
const EXCERPT_CHARS: usize = 72;

/// A one-line excerpt and the column (in characters) of the fault within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxSpot {
    /// The text around the fault, one line, control characters shown as `?`.
    pub excerpt: String,
    /// Characters before the fault in `excerpt`.
    pub column: usize,
}

impl SyntaxSpot {
    /// The spot of byte `offset` of `text` (past the end: just after the last byte).
    pub fn at_offset(text: &[u8], offset: usize) -> SyntaxSpot {
        let offset = offset.min(text.len());
        let start = text[..offset].iter().rposition(|b| *b == b'\n').map_or(0, |at| at + 1);
        let end = text[offset..].iter().position(|b| *b == b'\n').map_or(text.len(), |at| offset + at);
        let before = String::from_utf8_lossy(&text[start..offset]);
        let after = String::from_utf8_lossy(&text[offset..end]);
        let before: Vec<char> = before.chars().map(printable).collect();
        let after: Vec<char> = after.chars().map(printable).collect();
        // Keep at most half the width before the fault, and fill the rest after it.
        let keep_before = before.len().min(EXCERPT_CHARS / 2).max(EXCERPT_CHARS.saturating_sub(after.len()).min(before.len()));
        let first = before.len() - keep_before;
        let keep_after = EXCERPT_CHARS.saturating_sub(keep_before).min(after.len());
        let excerpt: String = before[first..].iter().chain(&after[..keep_after]).collect();
        SyntaxSpot { excerpt, column: keep_before }
    }

    /// The spot at a 1-based line and column (as JSON parsers report them; column counts
    /// bytes of that line).
    pub fn at_line_column(text: &[u8], line: usize, column: usize) -> SyntaxSpot {
        let line_start = text
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line.saturating_sub(2))
            .map_or(0, |(at, _)| if line > 1 { at + 1 } else { 0 });
        let line_start = if line > 1 && line_start == 0 { text.len() } else { line_start };
        SyntaxSpot::at_offset(text, line_start + column.saturating_sub(1))
    }

    /// Two lines: the excerpt and a caret under the fault, each indented by `indent`.
    pub fn caret_lines(&self, indent: &str) -> String {
        format!("{indent}{}\n{indent}{}^\n", self.excerpt, " ".repeat(self.column))
    }
}

fn printable(c: char) -> char {
    if c.is_control() {
        '?'
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_caret_is_under_the_byte_at_fault() {
        let spot = SyntaxSpot::at_offset(b"{\"a\": 1,,}", 8);
        assert_eq!(spot, SyntaxSpot { excerpt: "{\"a\": 1,,}".into(), column: 8 });
        assert_eq!(spot.caret_lines("  "), "  {\"a\": 1,,}\n          ^\n");
    }

    #[test]
    fn only_the_line_of_the_fault_is_shown_and_long_lines_are_cut_around_it() {
        let spot = SyntaxSpot::at_offset(b"{\n  \"a\": tru\n}", 11);
        assert_eq!(spot, SyntaxSpot { excerpt: "  \"a\": tru".into(), column: 9 });
        let long = format!("{}X{}", "a".repeat(200), "b".repeat(200));
        let spot = SyntaxSpot::at_offset(long.as_bytes(), 200);
        assert_eq!(spot.excerpt.chars().count(), EXCERPT_CHARS);
        assert_eq!(spot.excerpt.chars().nth(spot.column), Some('X'));
        let end = SyntaxSpot::at_offset(b"{\"a\":", 99);
        assert_eq!(end, SyntaxSpot { excerpt: "{\"a\":".into(), column: 5 });
    }

    #[test]
    fn a_line_and_column_name_the_same_spot_as_the_offset() {
        let text = b"{\n  \"a\": tru\n}";
        assert_eq!(SyntaxSpot::at_line_column(text, 2, 10), SyntaxSpot::at_offset(text, 11));
        assert_eq!(SyntaxSpot::at_line_column(text, 1, 1), SyntaxSpot::at_offset(text, 0));
    }
}
