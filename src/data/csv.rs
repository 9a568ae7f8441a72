//! Numeric CSV files: one sample per line, comma-separated, the last column the target.
//!
//! - Cells may have spaces or tabs around them; lines may end in `\n` or `\r\n`; blank lines
//!   are skipped (line numbers in errors still count them); a UTF-8 byte order mark is ignored.
//! - The first line is a header when none of its cells is a number (a notice says it was
//!   skipped); a first line with some numbers is data, so a typo in it (`1e3,0x10,1`) is an
//!   error that names the cell rather than a lost row. After it every cell must be a finite
//!   number (NaN and infinities are errors, as are values beyond f32).
//! - Cells may be quoted as RFC 4180 writes them (`"1.5"`, `"a,b"` in a header); a quoted
//!   cell cannot span lines.
//! - Every line has as many cells as the first, and at least two (one feature and the target).
//! - The targets are class indices (`classes = Some(max + 1)`) when all of them are integers in
//!   0..=1,000,000, and real values otherwise; see [`super::detect_classes`].

use std::path::Path;

use super::{Dataset, Features, detect_classes};
use crate::error::DataError;

/// Read and parse a CSV file; the dataset is named after the path.
pub fn load(path: &Path) -> Result<Dataset, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes, path)
}

/// Parse CSV text held in memory; `name` names the dataset and the file in errors. A skipped
/// header line is announced on stderr (unless quiet).
pub fn parse(bytes: impl AsRef<[u8]>, name: impl AsRef<Path>) -> Result<Dataset, DataError> {
    parse_with(bytes.as_ref(), name.as_ref(), true)
}

/// [`parse`] without the header notice, for files whose header is known (the embedded sets).
pub(crate) fn parse_known(bytes: &[u8], name: &Path) -> Result<Dataset, DataError> {
    parse_with(bytes, name, false)
}

fn parse_with(bytes: &[u8], name: &Path, announce: bool) -> Result<Dataset, DataError> {
    let fail = |reason: String| DataError::invalid(name, reason);
    let text = std::str::from_utf8(bytes)
        .map_err(|e| fail(format!("it is not UTF-8 text (byte {} is not)", e.valid_up_to())))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty());
    let (first_no, first) = lines.next().ok_or_else(|| fail("it is empty".into()))?;
    let width = cells(first).count();
    if width < 2 {
        return Err(fail(format!(
            "line {first_no} has only one column: the file needs at least one feature column and the target as the last column"
        )));
    }
    let header = cells(first).all(|c| c.parse::<f32>().is_err());
    let mut table = Table { width, first_no, features: Vec::new(), targets: Vec::new() };
    if !header {
        table.push(first_no, first).map_err(fail)?;
    } else if announce {
        crate::report::progress::notice(&format!(
            "{}: line {first_no} has no number, so it is taken as a header and skipped ({})",
            name.display(),
            quoted(first.trim())
        ));
    }
    for (no, line) in lines {
        table.push(no, line).map_err(fail)?;
    }
    if table.targets.is_empty() {
        return Err(fail("it has a header line but no data".into()));
    }
    let Table { features, mut targets, .. } = table;
    let classes = detect_classes(&mut targets);
    let n = targets.len();
    Ok(Dataset {
        name: name.display().to_string(),
        n,
        p: width - 1,
        features: Features::F32(features),
        targets,
        classes,
    })
}

/// The rows read so far.
struct Table {
    /// Cells per line, set by the first line.
    width: usize,
    first_no: usize,
    features: Vec<f32>,
    targets: Vec<f32>,
}

impl Table {
    /// Parse line number `no` and append it; the error is the reason (the caller adds the file).
    fn push(&mut self, no: usize, line: &str) -> Result<(), String> {
        let count = cells(line).count();
        if count != self.width {
            return Err(format!("line {no} has {count} cells but line {} has {}", self.first_no, self.width));
        }
        for (j, cell) in cells(line).enumerate() {
            let value = number(cell).map_err(|what| format!("line {no}, column {}: {what}", j + 1))?;
            if j + 1 == self.width {
                self.targets.push(value);
            } else {
                self.features.push(value);
            }
        }
        Ok(())
    }
}

/// The cells of a line: split at commas outside double quotes, trimmed, and unquoted when a
/// whole cell is quoted (RFC 4180; a doubled quote inside stays doubled, which no number has).
fn cells(line: &str) -> impl Iterator<Item = &str> {
    let mut start = 0;
    let mut in_quotes = false;
    let mut bounds = Vec::new();
    for (i, b) in line.bytes().enumerate() {
        match b {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                bounds.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    bounds.push((start, line.len()));
    bounds.into_iter().map(move |(a, b)| unquote(line[a..b].trim()))
}

fn unquote(cell: &str) -> &str {
    match cell.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
        Some(inner) if cell.len() >= 2 => inner.trim(),
        _ => cell,
    }
}

/// A cell as a finite f32, or what is wrong with it.
fn number(cell: &str) -> Result<f32, String> {
    match cell.parse::<f32>() {
        _ if cell.is_empty() => Err("the cell is empty".into()),
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!("{} is not a finite number in f32 (NaN, infinite or too large)", quoted(cell))),
        Err(_) => Err(format!("{} is not a number", quoted(cell))),
    }
}

/// A cell in quotes, shortened so that a huge cell does not drown the message.
fn quoted(cell: &str) -> String {
    const MAX: usize = 40;
    match cell.char_indices().nth(MAX) {
        Some((end, _)) => format!("\"{}…\"", &cell[..end]),
        None => format!("\"{cell}\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        let e = parse(text, "d.csv").unwrap_err().to_string();
        assert!(e.starts_with("d.csv is not valid: "), "{e}");
        e
    }

    #[test]
    fn with_header_and_classes() {
        let d = parse("a, b ,label\r\n1,2,0\r\n3.5, -4e1 ,2\r\n", "d.csv").unwrap();
        assert_eq!((d.n, d.p, d.classes), (2, 2, Some(3)));
        assert_eq!(d.features, Features::F32(vec![1.0, 2.0, 3.5, -40.0]));
        assert_eq!(d.targets, vec![0.0, 2.0]);
        assert_eq!(d.name, "d.csv");
    }

    #[test]
    fn without_header_real_targets() {
        let d = parse("1,2,0.5\n\n3,4,-1\n", "d.csv").unwrap();
        assert_eq!((d.n, d.p, d.classes), (2, 2, None));
        assert_eq!(d.targets, vec![0.5, -1.0]);
        assert_eq!(d.x(1, 1), 4.0);
    }

    #[test]
    fn class_detection_limits() {
        assert_eq!(parse("1,1000000\n", "d.csv").unwrap().classes, Some(1_000_001));
        assert_eq!(parse("1,1000001\n", "d.csv").unwrap().classes, None);
        assert_eq!(parse("1,-1\n2,0\n", "d.csv").unwrap().classes, None);
        let d = parse("1,-0\n2,1\n", "d.csv").unwrap();
        assert_eq!(d.classes, Some(2));
        assert!(d.targets[0].is_sign_positive());
    }

    #[test]
    fn a_header_is_a_line_without_numbers() {
        // A typo in the first line is an error naming it, not a header that loses the row.
        assert!(err("1e3,0x10,1\n2,3,0\n").contains("line 1, column 2: \"0x10\" is not a number"));
        assert!(err("x,1,y\n2,3,0\n").contains("line 1, column 1"));
        let d = parse("a,b,label\n1,2,0\n", "d.csv").unwrap();
        assert_eq!(d.n, 1);
    }

    #[test]
    fn quoted_cells() {
        let d = parse("\"a, first\",\"b\",\"label\"\n\"1.5\", \"-2\" ,\"1\"\n3,\" 4 \",0\n", "d.csv").unwrap();
        assert_eq!((d.n, d.p, d.classes), (2, 2, Some(2)));
        assert_eq!(d.features, Features::F32(vec![1.5, -2.0, 3.0, 4.0]));
        assert!(err("1,2\n\"1,5\",2\n").contains("\"1,5\" is not a number"));
        assert!(err("1,2\n\"\",2\n").contains("the cell is empty"));
    }

    #[test]
    fn bom_and_no_final_newline() {
        let d = parse("\u{feff}x,y\n1,1", "d.csv").unwrap();
        assert_eq!((d.n, d.p), (1, 1));
    }

    #[test]
    fn errors() {
        assert!(err("").contains("it is empty"));
        assert!(err("\n  \n").contains("it is empty"));
        assert!(err("a,b,c\n").contains("header line but no data"));
        assert!(err("1\n2\n").contains("line 1 has only one column"));
        assert!(err("1,2,3\n4,5\n").contains("line 2 has 2 cells but line 1 has 3"));
        assert!(err("a,b\n1,2\n\n3,4,5\n").contains("line 4 has 3 cells but line 1 has 2"));
        assert!(err("1,2\n3,x\n").contains("line 2, column 2: \"x\" is not a number"));
        assert!(err("1,2\n,3\n").contains("line 2, column 1: the cell is empty"));
        assert!(err("1,2\nnan,3\n").contains("\"nan\" is not a finite number"));
        assert!(err("1,2\n1,-inf\n").contains("line 2, column 2: \"-inf\" is not a finite number"));
        assert!(err("1,2\n1e39,0\n").contains("\"1e39\" is not a finite number"));
        assert!(parse(b"1,2\n\xff,3\n", "d.csv").unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn long_cells_are_shortened() {
        let cell = "é".repeat(100);
        let e = err(&format!("1,2\n{cell},3\n"));
        assert!(e.contains(&format!("\"{}…\" is not a number", "é".repeat(40))), "{e}");
    }
}
