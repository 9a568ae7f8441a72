//! The `.npy` preamble and header: the magic and version, the header's Python literal (parsed,
//! not evaluated), the dtype and the shape.

pub(super) const MAGIC: &[u8] = b"\x93NUMPY";

/// The element type, the shape and the data bytes of a `.npy` file (not yet checked against
/// each other).
pub(super) fn read(bytes: &[u8]) -> Result<(Dtype, Vec<usize>, &[u8]), String> {
    let (header, data) = split_header(bytes)?;
    let dict = Parser::new(&header).dict()?;
    let dtype = Dtype::parse(dict.text("descr")?)?;
    let shape = dict.shape()?;
    if dict.flag("fortran_order")? && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err("the array is in Fortran order; save it in C order (numpy.ascontiguousarray)".into());
    }
    Ok((dtype, shape, data))
}

/// The header text and the data bytes.
fn split_header(bytes: &[u8]) -> Result<(String, &[u8]), String> {
    if !bytes.starts_with(MAGIC) {
        return Err("it is not a .npy file (it does not start with \\x93NUMPY)".into());
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err("truncated: the file ends inside the .npy preamble".into()),
    };
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(format!("it is .npy version {major}.{minor}; versions 1, 2 and 3 are supported"));
        }
    };
    let len = bytes
        .get(8..8 + len_bytes)
        .ok_or("truncated: the file ends inside the .npy preamble")?
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    let header = bytes.get(start..start + len).ok_or("truncated: the file ends inside the .npy header")?;
    let text = if major == 3 {
        String::from_utf8(header.to_vec()).map_err(|_| "its header is not UTF-8 text".to_string())?
    } else {
        // Versions 1 and 2 use latin-1, whose bytes are the first 256 code points.
        header.iter().map(|&b| b as char).collect()
    };
    Ok((text, &bytes[start + len..]))
}

/// A supported element type.
#[derive(Debug, Clone)]
pub(super) struct Dtype {
    pub(super) descr: String,
    kind: u8,
    pub(super) size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Dtype, String> {
        let unsupported =
            || format!("its dtype '{descr}' is not supported (use float32/64, int8..64, uint8..64 or bool)");
        let mut chars = descr.chars();
        let (order, kind) = (chars.next().ok_or_else(unsupported)?, chars.next().ok_or_else(unsupported)?);
        let size: usize = chars.as_str().parse().map_err(|_| unsupported())?;
        let known = matches!((kind, size), ('f', 4 | 8) | ('i' | 'u', 1 | 2 | 4 | 8) | ('b', 1));
        let big_endian = match order {
            '<' => false,
            '>' => true,
            '=' => cfg!(target_endian = "big"),
            '|' if size == 1 => false,
            _ => return Err(unsupported()),
        };
        if !known {
            return Err(unsupported());
        }
        Ok(Dtype { descr: descr.to_string(), kind: kind as u8, size, big_endian })
    }

    /// One element (`self.size` bytes) as f32.
    pub(super) fn value(&self, bytes: &[u8]) -> f32 {
        let mut b = [0u8; 8];
        b[..self.size].copy_from_slice(bytes);
        if self.big_endian {
            b[..self.size].reverse();
        }
        let [b0, b1, b2, b3, ..] = b;
        match (self.kind, self.size) {
            (b'f', 4) => f32::from_le_bytes([b0, b1, b2, b3]),
            (b'f', _) => f64::from_le_bytes(b) as f32,
            (b'b', _) => (b0 != 0) as u8 as f32,
            (b'i', 1) => b0 as i8 as f32,
            (b'i', 2) => i16::from_le_bytes([b0, b1]) as f32,
            (b'i', 4) => i32::from_le_bytes([b0, b1, b2, b3]) as f32,
            (b'i', _) => i64::from_le_bytes(b) as f32,
            // Unsigned: the zero-padded little-endian bytes are the value.
            _ => u64::from_le_bytes(b) as f32,
        }
    }
}

/// A value of the header's Python literal.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(u64),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

/// The header dictionary.
struct Header(Vec<(Lit, Lit)>);

impl Header {
    fn get(&self, key: &str) -> Result<&Lit, String> {
        self.0
            .iter()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| format!("its header has no '{key}'"))
    }

    fn text(&self, key: &str) -> Result<&str, String> {
        match self.get(key)? {
            Lit::Str(s) => Ok(s),
            _ => Err(format!("its '{key}' is not a plain dtype string (structured arrays are not supported)")),
        }
    }

    fn flag(&self, key: &str) -> Result<bool, String> {
        match self.get(key)? {
            Lit::Bool(b) => Ok(*b),
            _ => Err(format!("its '{key}' is not True or False")),
        }
    }

    fn shape(&self) -> Result<Vec<usize>, String> {
        let bad = || "its 'shape' is not a tuple of non-negative integers".to_string();
        match self.get("shape")? {
            Lit::Seq(items) => items
                .iter()
                .map(|d| match d {
                    Lit::Int(v) => usize::try_from(*v).map_err(|_| bad()),
                    _ => Err(bad()),
                })
                .collect(),
            _ => Err(bad()),
        }
    }
}

/// A recursive-descent parser of the Python literals a `.npy` header can hold.
struct Parser {
    chars: Vec<char>,
    pos: usize,
}

/// Nesting deeper than this is not a header but an attack on the stack.
const MAX_DEPTH: usize = 16;

impl Parser {
    fn new(text: &str) -> Parser {
        Parser { chars: text.chars().collect(), pos: 0 }
    }

    fn dict(&mut self) -> Result<Header, String> {
        let lit = self.value(0)?;
        self.skip_space();
        if self.pos != self.chars.len() {
            return Err(self.unexpected());
        }
        match lit {
            Lit::Dict(items) => Ok(Header(items)),
            _ => Err("its header is not a Python dict".into()),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_space(&mut self) {
        while self.peek().is_some_and(|c| c.is_whitespace() || c == '\0') {
            self.pos += 1;
        }
    }

    fn unexpected(&self) -> String {
        match self.peek() {
            Some(c) => format!("its header cannot be parsed: unexpected {c:?} at character {}", self.pos),
            None => "its header cannot be parsed: it ends too early".into(),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Lit, String> {
        if depth > MAX_DEPTH {
            return Err("its header is nested too deeply".into());
        }
        self.skip_space();
        match self.peek() {
            Some('{') => self.items('}', depth, true).map(Lit::Dict),
            Some('(') => Ok(Lit::Seq(self.items(')', depth, false)?.into_iter().map(|(v, _)| v).collect())),
            Some('[') => Ok(Lit::Seq(self.items(']', depth, false)?.into_iter().map(|(v, _)| v).collect())),
            Some(q @ ('\'' | '"')) => self.string(q),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            _ => Err(self.unexpected()),
        }
    }

    /// The comma-separated items up to `close` (a trailing comma allowed): key-value pairs when
    /// `pairs`, else values (paired with `Lit::None`).
    fn items(&mut self, close: char, depth: usize, pairs: bool) -> Result<Vec<(Lit, Lit)>, String> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            self.skip_space();
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok(items);
            }
            let first = self.value(depth + 1)?;
            let second = if pairs {
                self.expect(':')?;
                self.value(depth + 1)?
            } else {
                Lit::None
            };
            items.push((first, second));
            self.skip_space();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(c) if c == close => {}
                _ => return Err(self.unexpected()),
            }
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.skip_space();
        if self.peek() != Some(c) {
            return Err(self.unexpected());
        }
        self.pos += 1;
        Ok(())
    }

    fn string(&mut self, quote: char) -> Result<Lit, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err(self.unexpected()),
                Some(c) if c == quote => break,
                // An escaped character stands for itself: enough for dtype strings.
                Some('\\') => {
                    self.pos += 1;
                    s.extend(self.peek());
                }
                Some(c) => s.push(c),
            }
            self.pos += 1;
        }
        self.pos += 1;
        Ok(Lit::Str(s))
    }

    fn int(&mut self) -> Result<Lit, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits: String = self.chars[start..self.pos].iter().collect();
        // Python 2 wrote long integers with an L suffix.
        if matches!(self.peek(), Some('L' | 'l')) {
            self.pos += 1;
        }
        digits.parse().map(Lit::Int).map_err(|_| format!("its header has the integer {digits}, too large"))
    }

    fn word(&mut self) -> Result<Lit, String> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        match self.chars[start..self.pos].iter().collect::<String>().as_str() {
            "True" => Ok(Lit::Bool(true)),
            "False" => Ok(Lit::Bool(false)),
            "None" => Ok(Lit::None),
            _ => {
                self.pos = start;
                Err(self.unexpected())
            }
        }
    }
}
