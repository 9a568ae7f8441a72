//! Small aligned text tables for the terminal and for `report.md`, and compact numbers.
//!
//! ```
//! use steplens::report::table::{fmt_num, Table};
//! let mut t = Table::new(["schedule", "final loss"]);
//! t.row(vec!["cosine".into(), fmt_num(0.031234, 3)]);
//! t.row(vec!["accurate (τ = ∞)".into(), fmt_num(0.0287, 3)]);
//! assert_eq!(
//!     t.render(),
//!     "schedule          final loss\n\
//!      ----------------  ----------\n\
//!      cosine                0.0312\n\
//!      accurate (τ = ∞)      0.0287\n"
//! );
//! ```

use std::fmt;

/// A table of text cells with a header row. Columns whose cells are all numbers (or `-`, or
/// empty) are right-aligned, so digits line up; the others are left-aligned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers and no rows.
    pub fn new<S: Into<String>>(headers: impl IntoIterator<Item = S>) -> Table {
        Table { headers: headers.into_iter().map(Into::into).collect(), rows: Vec::new() }
    }

    /// Appends a row. Missing trailing cells render empty; extra cells get an untitled column.
    pub fn row(&mut self, cells: Vec<String>) -> &mut Table {
        self.rows.push(cells);
        self
    }

    /// The number of rows (the header excluded).
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether the table has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table for a terminal: columns separated by two spaces, the header underlined with
    /// dashes, every line `\n`-terminated and without trailing spaces.
    pub fn render(&self) -> String {
        let layout = self.layout(|s| s.replace(['\n', '\r'], " "));
        let mut out = String::new();
        let rule: Vec<String> = layout.widths.iter().map(|w| "-".repeat(*w)).collect();
        for line in std::iter::once(&layout.headers).chain([&rule]).chain(&layout.rows) {
            let cells = line.iter().enumerate().map(|(c, s)| layout.pad(c, s));
            out.push_str(cells.collect::<Vec<_>>().join("  ").trim_end());
            out.push('\n');
        }
        out
    }

    /// The table as GitHub-flavoured Markdown, numeric columns right-aligned (`---:`), `|`
    /// escaped, cells padded so the source reads as a table too.
    pub fn to_markdown(&self) -> String {
        let mut layout = self.layout(|s| s.replace(['\n', '\r'], " ").replace('|', "\\|"));
        // Three dashes is the shortest delimiter every Markdown dialect accepts.
        layout.widths.iter_mut().for_each(|w| *w = (*w).max(3));
        let rule: Vec<String> = (0..layout.widths.len())
            .map(|c| {
                let w = layout.widths[c];
                if layout.numeric[c] { format!("{}:", "-".repeat(w - 1)) } else { "-".repeat(w) }
            })
            .collect();
        let mut out = String::new();
        for (i, line) in std::iter::once(&layout.headers).chain(&layout.rows).enumerate() {
            let cells: Vec<String> = line.iter().enumerate().map(|(c, s)| layout.pad(c, s)).collect();
            out.push_str(&format!("| {} |\n", cells.join(" | ")));
            if i == 0 {
                out.push_str(&format!("| {} |\n", rule.join(" | ")));
            }
        }
        out
    }

    /// Cleans every cell with `clean`, squares the rows off and measures the columns.
    fn layout(&self, clean: impl Fn(&str) -> String) -> Layout {
        let ncols = self.rows.iter().map(Vec::len).chain([self.headers.len()]).max().unwrap_or(0);
        let square = |cells: &[String]| -> Vec<String> {
            (0..ncols).map(|c| cells.get(c).map(|s| clean(s)).unwrap_or_default()).collect()
        };
        let headers = square(&self.headers);
        let rows: Vec<Vec<String>> = self.rows.iter().map(|r| square(r)).collect();
        let widths =
            (0..ncols).map(|c| rows.iter().chain([&headers]).map(|r| width(&r[c])).max().unwrap_or(0)).collect();
        let numeric = (0..ncols).map(|c| is_numeric_column(rows.iter().map(|r| &r[c]))).collect();
        Layout { headers, rows, widths, numeric }
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// Cleaned, squared-off cells with each column's width and alignment.
struct Layout {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
    widths: Vec<usize>,
    numeric: Vec<bool>,
}

impl Layout {
    fn pad(&self, col: usize, cell: &str) -> String {
        let fill = " ".repeat(self.widths[col].saturating_sub(width(cell)));
        if self.numeric[col] { format!("{fill}{cell}") } else { format!("{cell}{fill}") }
    }
}

/// Display width in characters (the tables hold ASCII, Greek and math symbols, all one
/// column wide in a terminal).
fn width(s: &str) -> usize {
    s.chars().count()
}

/// A column is numeric if it has at least one number and nothing but numbers, `-` and blanks
/// (`-` is what [`fmt_num`] writes for NaN). A trailing `%` or `×`/`x` still counts as a number.
fn is_numeric_column<'a>(cells: impl Iterator<Item = &'a String>) -> bool {
    let mut any = false;
    for cell in cells {
        let s = cell.trim();
        if s.is_empty() || s == "-" {
            continue;
        }
        let s = s.trim_end_matches(['%', '×', 'x']);
        if s.parse::<f64>().is_err() {
            return false;
        }
        any = true;
    }
    any
}

/// `x` with about `sig` significant digits, compactly: trailing zeros dropped, plain decimals
/// for magnitudes in [0.001, 10⁶) (all integer digits kept) and exponent form (`1.5e-5`)
/// outside. NaN is `-`, infinities `inf` and `-inf`.
pub fn fmt_num(x: f64, sig: usize) -> String {
    let sig = sig.clamp(1, 17);
    if x.is_nan() {
        return "-".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if (1e-3..1e6).contains(&a) {
        // In this range floor(log10) is within -3..=5, so the cast cannot misbehave.
        let exp = a.log10().floor() as i64;
        let decimals = usize::try_from(sig as i64 - 1 - exp).unwrap_or(0);
        trim_zeros(format!("{x:.decimals$}"))
    } else {
        let s = format!("{x:.prec$e}", prec = sig - 1);
        match s.split_once('e') {
            Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
            None => s,
        }
    }
}

/// `n` with its noun in the right number: `1 batch`, `2 batches`, `0 samples`.
pub fn count(n: usize, one: &str, many: &str) -> String {
    if n == 1 { format!("1 {one}") } else { format!("{n} {many}") }
}

/// Drops trailing zeros after a decimal point, and the point itself if nothing follows.
fn trim_zeros(s: String) -> String {
    if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn counts_agree_in_number() {
        assert_eq!(count(1, "batch", "batches"), "1 batch");
        assert_eq!(count(0, "sample", "samples"), "0 samples");
        assert_eq!(count(12, "class", "classes"), "12 classes");
    }

    #[test]
    fn fmt_num_cases() {
        let cases = [
            (0.0, 3, "0"),
            (-0.0, 3, "0"),
            (1.0, 3, "1"),
            (0.31326, 3, "0.313"),
            (0.30000000000000004, 6, "0.3"),
            (-2.5, 3, "-2.5"),
            (12665.0, 3, "12665"),
            (123456.7, 3, "123457"),
            (1e6, 3, "1e6"),
            (1234567.0, 3, "1.23e6"),
            (0.001, 3, "0.001"),
            (0.00099996, 3, "1e-3"),
            (1.5e-5, 3, "1.5e-5"),
            (-4.2e-12, 2, "-4.2e-12"),
            (9.9996, 4, "10"),
            (2.0 / 3.0, 0, "0.7"),
            (2.0 / 3.0, 100, "0.66666666666666663"),
            (f64::NAN, 3, "-"),
            (f64::INFINITY, 3, "inf"),
            (f64::NEG_INFINITY, 3, "-inf"),
            (f64::MAX, 3, "1.8e308"),
            (f64::MIN_POSITIVE, 2, "2.2e-308"),
        ];
        for (x, sig, want) in cases {
            assert_eq!(fmt_num(x, sig), want, "fmt_num({x}, {sig})");
        }
    }

    fn sample() -> Table {
        let mut t = Table::new(["name", "lr", "loss"]);
        t.row(strings(&["constant", "0.005", "0.3133"]));
        t.row(strings(&["accurate τ=∞", "2.68", "-"]));
        t.row(strings(&["a|b", "1e-3", "12%"]));
        t
    }

    #[test]
    fn render_aligns_numbers_right_and_text_left() {
        let want = "\
name             lr    loss
------------  -----  ------
constant      0.005  0.3133
accurate τ=∞   2.68       -
a|b            1e-3     12%
";
        assert_eq!(sample().render(), want);
        assert_eq!(sample().to_string(), want);
    }

    #[test]
    fn markdown_escapes_and_marks_alignment() {
        let want = "\
| name         |    lr |   loss |
| ------------ | ----: | -----: |
| constant     | 0.005 | 0.3133 |
| accurate τ=∞ |  2.68 |      - |
| a\\|b         |  1e-3 |    12% |
";
        assert_eq!(sample().to_markdown(), want);
    }

    #[test]
    fn ragged_and_empty_tables_do_not_panic() {
        let mut t = Table::new(["a"]);
        t.row(vec![]).row(strings(&["1", "extra\nline"]));
        assert_eq!(t.render(), "a\n-  ----------\n\n1  extra line\n");
        assert_eq!(t.len(), 2);
        let empty = Table::new(Vec::<String>::new());
        assert!(empty.is_empty());
        assert_eq!(empty.render(), "\n\n");
        assert_eq!(empty.to_markdown(), "|  |\n|  |\n");
    }

    #[test]
    fn header_only_column_is_text() {
        let t = Table::new(["x", "y"]);
        assert_eq!(t.to_markdown(), "| x   | y   |\n| --- | --- |\n");
    }
}
