//! `.npy` files (NumPy's array format), read and written with the `npyz` crate.
//!
//! The reader takes what npyz parses (versions 1.0, 2.0 and 3.0) and what steplens can use: arrays
//! of the dtypes `f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1`, little- or big-endian, in C order (or 1-D,
//! where the order does not matter), their values converted to f32. It refuses structured dtypes,
//! Fortran order and a shape that does not match the bytes that follow (checked before the
//! values are read), each in one sentence that names the file.
//!
//! Two guards against lying files that npyz lacks: it allocates the header length a version 2
//! or 3 preamble states (up to 4 GiB) before reading the header, so a file too short for it is
//! refused first; and it multiplies the shape's dimensions unchecked, so `Cargo.toml` turns its
//! overflow checks off in dev builds, as they are in release builds, and [`parse`] rejects the
//! shape by its checked size.
//!
//! A directory of user data holds `X.npy` (shape `[n, p]`) and `y.npy` (`[n]` or `[n, 1]`), and
//! optionally `X_test.npy` and `y_test.npy`, the test set.

use std::{io, path::Path};

use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar, TypeStr, WriterBuilder};

use super::{Dataset, Features, detect_classes};
use crate::error::DataError;

const MAGIC: &[u8] = b"\x93NUMPY";

/// An array read from a `.npy` file, its values converted to f32, in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// The dimensions, outermost first (`[]` for a scalar).
    pub shape: Vec<usize>,
    /// The product of `shape` values, row-major.
    pub data: Vec<f32>,
}

/// Read and parse a `.npy` file.
pub fn read(path: &Path) -> Result<Array, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse(&bytes, path)
}

/// Read a `.npy` file as (shape, values converted to f32), e.g. weights a run wrote.
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>), DataError> {
    read(path).map(|a| (a.shape, a.data))
}

/// Parse a `.npy` file held in memory; `name` is the file errors name.
pub fn parse(bytes: &[u8], name: impl AsRef<Path>) -> Result<Array, DataError> {
    parse_reason(bytes).map_err(|reason| DataError::invalid(name.as_ref(), reason))
}

fn parse_reason(bytes: &[u8]) -> Result<Array, String> {
    if header_overruns(bytes) {
        return Err(TRUNCATED.into());
    }
    let mut data = bytes;
    let header = NpyHeader::from_reader(&mut data).map_err(|e| header_reason(bytes, &e))?;
    let dtype = match header.dtype() {
        DType::Plain(t) => t,
        other => {
            return Err(format!("its dtype {} is structured; only plain numeric arrays are supported", other.descr()));
        }
    };
    let convert = converter(&dtype)
        .ok_or_else(|| format!("its dtype '{dtype}' is not supported (use float32/64, int8..64, uint8..64 or bool)"))?;
    // usize is 64 bits wherever steplens runs; a dimension that does not fit cannot match the bytes.
    let shape: Vec<usize> = header.shape().iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
    if header.order() == Order::Fortran && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err("the array is in Fortran order; save it in C order (numpy.ascontiguousarray)".into());
    }
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let size = count.zip(dtype.num_bytes()).and_then(|(c, s)| c.checked_mul(s));
    if size != Some(data.len()) {
        let shape = shape_tuple(&shape);
        return Err(format!("its header says shape {shape} of {dtype} but {} data bytes follow", data.len()));
    }
    let data = convert(NpyFile::with_header(header, data)).map_err(|e| format!("its data cannot be read ({e})"))?;
    Ok(Array { shape, data })
}

const TRUNCATED: &str = "truncated: the file ends inside the .npy header";

/// Whether a version 2 or 3 preamble states a header longer than the rest of the file.
fn header_overruns(bytes: &[u8]) -> bool {
    match bytes.get(MAGIC.len()..12) {
        Some(&[2 | 3, _, a, b, c, d]) => u32::from_le_bytes([a, b, c, d]) as usize > bytes.len() - 12,
        _ => false,
    }
}

/// What is wrong with a header npyz refused, in words.
fn header_reason(bytes: &[u8], e: &io::Error) -> String {
    if !bytes.starts_with(MAGIC) {
        return "it is not a .npy file (it does not start with \\x93NUMPY)".into();
    }
    // npyz calls a file too short for its version bytes one without the magic.
    if e.kind() == io::ErrorKind::UnexpectedEof || bytes.len() < MAGIC.len() + 2 {
        return TRUNCATED.into();
    }
    // A syntax error quotes the header over several lines; the first says where it is.
    let message = e.to_string();
    let first = message.lines().next().unwrap_or_default();
    match first.split_once("syntax error:") {
        Some((_, at)) => {
            let at = at.trim().trim_start_matches("-->").trim();
            format!("its .npy header cannot be read (a syntax error at line:column {at})")
        }
        None => format!("its .npy header cannot be read ({first})"),
    }
}

/// Reads an array's values as f32.
type Convert = fn(NpyFile<&[u8]>) -> io::Result<Vec<f32>>;

/// The conversion of a supported dtype's values to f32.
fn converter(dtype: &TypeStr) -> Option<Convert> {
    use TypeChar::{Bool, Float, Int, Uint};
    Some(match (dtype.type_char(), dtype.size_field()) {
        (Float, 4) => |f| values(f, |v: f32| v),
        (Float, 8) => |f| values(f, |v: f64| v as f32),
        (Int, 1) => |f| values(f, |v: i8| v as f32),
        (Int, 2) => |f| values(f, |v: i16| v as f32),
        (Int, 4) => |f| values(f, |v: i32| v as f32),
        (Int, 8) => |f| values(f, |v: i64| v as f32),
        (Uint, 1) => |f| values(f, |v: u8| v as f32),
        (Uint, 2) => |f| values(f, |v: u16| v as f32),
        (Uint, 4) => |f| values(f, |v: u32| v as f32),
        (Uint, 8) => |f| values(f, |v: u64| v as f32),
        (Bool, 1) => |f| values(f, |v: bool| v as u8 as f32),
        _ => return None,
    })
}

fn values<T: npyz::Deserialize>(file: NpyFile<&[u8]>, to_f32: fn(T) -> f32) -> io::Result<Vec<f32>> {
    file.data::<T>().map_err(io::Error::other)?.map(|v| v.map(to_f32)).collect()
}

/// Read the user data in `dir`: `X.npy` and `y.npy`, and the test set `X_test.npy` and
/// `y_test.npy` when both exist. Features stay as stored, converted to f32; the targets are
/// classes when they are all integers in 0..=1,000,000 (see [`super::detect_classes`]).
pub fn load_dir(dir: &Path) -> Result<(Dataset, Option<Dataset>), DataError> {
    let train = load_pair(&dir.join("X.npy"), &dir.join("y.npy"), dir.display().to_string())?;
    let (x_test, y_test) = (dir.join("X_test.npy"), dir.join("y_test.npy"));
    let test = match (x_test.exists(), y_test.exists()) {
        (false, false) => None,
        (true, true) => Some(load_pair(&x_test, &y_test, x_test.display().to_string())?),
        (true, false) => {
            return Err(DataError::invalid(dir, "it has X_test.npy but no y_test.npy"));
        }
        (false, true) => {
            return Err(DataError::invalid(dir, "it has y_test.npy but no X_test.npy"));
        }
    };
    if let Some(t) = &test
        && t.p != train.p
    {
        let reason =
            format!("it has {} but X.npy has {}", crate::report::table::count(t.p, "feature", "features"), train.p);
        return Err(DataError::invalid(x_test, reason));
    }
    Ok((train, test))
}

fn load_pair(x_path: &Path, y_path: &Path, name: String) -> Result<Dataset, DataError> {
    let x = read(x_path)?;
    let (n, p) = match x.shape[..] {
        [n, p] if n > 0 && p > 0 => (n, p),
        _ => {
            let reason =
                format!("its shape is {}; it must be (samples, features), both non-zero", shape_tuple(&x.shape));
            return Err(DataError::invalid(x_path, reason));
        }
    };
    let mut y = read(y_path)?;
    if !matches!(y.shape[..], [m] | [m, 1] if m == n) {
        let reason =
            format!("its shape is {} but X has {n} samples: it must be ({n},) or ({n}, 1)", shape_tuple(&y.shape));
        return Err(DataError::invalid(y_path, reason));
    }
    check_finite(&x, x_path)?;
    check_finite(&y, y_path)?;
    let classes = detect_classes(&mut y.data);
    Ok(Dataset { name, n, p, features: Features::F32(x.data), targets: y.data, classes })
}

fn check_finite(a: &Array, path: &Path) -> Result<(), DataError> {
    match a.data.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => {
            let at = match a.shape[..] {
                [_, p] if p > 0 => format!("({}, {})", i / p, i % p),
                _ => format!("{i}"),
            };
            let reason = format!("element {at} is {}: NaN and infinite values are not allowed", a.data[i]);
            Err(DataError::invalid(path, reason))
        }
    }
}

/// A shape as Python writes the tuple: `()`, `(3,)`, `(3, 4)`.
fn shape_tuple(shape: &[usize]) -> String {
    match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    }
}

/// An f32 array as `.npy` bytes (little-endian on the machines steplens runs on, C order).
///
/// # Panics
/// If `data` does not hold the number of elements `shape` implies (a bug in the caller).
pub fn f32_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    npy_bytes(shape, data)
}

/// A u32 array as `.npy` bytes (little-endian on the machines steplens runs on, C order).
///
/// # Panics
/// If `data` does not hold the number of elements `shape` implies (a bug in the caller).
pub fn u32_bytes(shape: &[usize], data: &[u32]) -> Vec<u8> {
    npy_bytes(shape, data)
}

/// The file as NumPy writes it: the header padded so that the data starts at a multiple of 64
/// bytes, then the data.
fn npy_bytes<T: npyz::AutoSerialize + Copy>(shape: &[usize], data: &[T]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "the shape does not match the number of elements");
    let shape: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let mut out = Vec::new();
    let write = |out: &mut Vec<u8>| -> io::Result<()> {
        let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(out).begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    };
    write(&mut out).expect("writing to memory does not fail");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A .npy file with the given version, header dict and data.
    fn npy(major: u8, dict: &str, data: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[major, 0]);
        let header = format!("{dict}\n");
        if major == 1 {
            v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            v.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn err(bytes: &[u8]) -> String {
        let e = parse(bytes, "a.npy").unwrap_err().to_string();
        assert!(e.starts_with("a.npy is not valid: "), "{e}");
        assert!(!e.contains('\n') && e.len() < 200, "one short sentence: {e}");
        e
    }

    #[test]
    fn f32_round_trip_and_alignment() {
        for shape in [vec![], vec![3], vec![2, 3], vec![0, 4]] {
            let data: Vec<f32> = (0..shape.iter().product::<usize>()).map(|i| i as f32 * 0.5 - 1.0).collect();
            let bytes = f32_bytes(&shape, &data);
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0);
            assert_eq!(bytes[10 + header_len - 1], b'\n');
            assert_eq!(parse(&bytes, "a.npy").unwrap(), Array { shape, data });
        }
        let bytes = f32_bytes(&[3], &[1.0, 2.0, 3.0]);
        let header = String::from_utf8(bytes[10..bytes.len() - 12].to_vec()).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (3, ), }"), "{header}");
    }

    #[test]
    fn u32_round_trip() {
        let bytes = u32_bytes(&[2, 2], &[0, 1, 2, 16_777_216]);
        assert!(String::from_utf8_lossy(&bytes[..64]).contains("'descr': '<u4'"));
        let a = parse(&bytes, "a.npy").unwrap();
        assert_eq!(a.shape, vec![2, 2]);
        assert_eq!(a.data, vec![0.0, 1.0, 2.0, 16_777_216.0]);
    }

    #[test]
    fn every_dtype() {
        let cases: &[(&str, Vec<u8>, f32)] = &[
            ("<f4", 1.5f32.to_le_bytes().to_vec(), 1.5),
            (">f4", 1.5f32.to_be_bytes().to_vec(), 1.5),
            ("<f8", (-2.25f64).to_le_bytes().to_vec(), -2.25),
            (">f8", (-2.25f64).to_be_bytes().to_vec(), -2.25),
            ("<i4", (-7i32).to_le_bytes().to_vec(), -7.0),
            ("<i8", (-7i64).to_le_bytes().to_vec(), -7.0),
            (">i8", (-7i64).to_be_bytes().to_vec(), -7.0),
            ("<u4", 70000u32.to_le_bytes().to_vec(), 70000.0),
            ("<u8", 70000u64.to_le_bytes().to_vec(), 70000.0),
            ("|u1", vec![200], 200.0),
            ("|i1", vec![0xff], -1.0),
            ("<u2", 60000u16.to_le_bytes().to_vec(), 60000.0),
            (">u2", 60000u16.to_be_bytes().to_vec(), 60000.0),
            ("<i2", (-300i16).to_le_bytes().to_vec(), -300.0),
            ("|b1", vec![1], 1.0),
        ];
        for (descr, bytes, want) in cases {
            let file = npy(1, &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': (1,), }}"), bytes);
            assert_eq!(parse(&file, "a.npy").unwrap().data, vec![*want], "{descr}");
        }
    }

    #[test]
    fn versions_and_header_variants() {
        let one = 3.0f32.to_le_bytes();
        for (major, dict) in [
            (1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1)}"),
            (2, "{\"shape\": [1, 1], \"descr\": \"<f4\", \"fortran_order\": False, \"extra\": None}"),
            (3, "{ 'descr' : '<f4' , 'fortran_order' : True , 'shape' : ( 1 , 1 , ) , }   "),
        ] {
            let a = parse(&npy(major, dict, &one), "a.npy").unwrap();
            assert_eq!(a, Array { shape: vec![1, 1], data: vec![3.0] }, "{dict}");
        }
    }

    #[test]
    fn errors() {
        let d = |descr: &str, fortran: &str, shape: &str| {
            format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}")
        };
        assert!(err(b"PK\x03\x04 a zip file").contains("not a .npy file"));
        assert!(err(b"\x93NUMPY\x01").contains("truncated"));
        assert!(err(b"\x93NUMPY\x01\x00\xff\x00{'descr'").contains("truncated"));
        assert!(err(&npy(4, &d("<f4", "False", "(1,)"), &[0; 4])).contains("unsupported version: (4, 0)"));
        assert!(err(&npy(1, &d("<f2", "False", "(1,)"), &[0; 2])).contains("dtype '<f2' is not supported"));
        assert!(err(&npy(1, &d("|O", "False", "(1,)"), &[0; 8])).contains("dtype '|O' is not supported"));
        assert!(err(&npy(1, &d("|f4", "False", "(1,)"), &[0; 4])).contains("'|f4' has invalid endianness"));
        assert!(err(&npy(1, &d("=f4", "False", "(1,)"), &[0; 4])).contains("invalid type string"));
        assert!(
            err(&npy(1, &d("|b1", "False", "(1,)"), &[2]))
                .contains("its data cannot be read (invalid value for bool: 2)")
        );
        assert!(err(&npy(1, &d("<f4", "True", "(2, 2)"), &[0; 16])).contains("Fortran order"));
        assert!(err(&npy(1, &d("<f4", "False", "(2, 2)"), &[0; 12])).contains("shape (2, 2) of <f4 but 12 data bytes"));
        assert!(err(&npy(1, &d("<f4", "False", "(1,)"), &[0; 5])).contains("but 5 data bytes"));
        assert!(err(&npy(1, &d("<f4", "False", "(-1,)"), &[])).contains("dimension cannot be negative"));
        assert!(err(&npy(1, &d("<f4", "Maybe", "(1,)"), &[0; 4])).contains("a syntax error at line:column 1:35"));
        assert!(err(&npy(1, "{'descr': '<f4', 'shape': (1,)}", &[0; 4])).contains("missing key 'fortran_order'"));
        assert!(err(&npy(1, "['descr', '<f4']", &[])).contains("expected a python dict literal"));
        assert!(err(&npy(1, "{'descr': '<f4'", &[])).contains("a syntax error at line:column 1:15"));
        let descr = "[('a', '<f4')]";
        assert!(
            err(&npy(1, &format!("{{'descr': {descr}, 'fortran_order': False, 'shape': (1,)}}"), &[0; 4]))
                .contains("structured")
        );
        // npyz's parser stops at a nesting limit instead of running out of stack.
        let deep = format!("{}{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(err(&npy(2, &deep, &[])).contains("a syntax error at line:column 1:"));
    }

    #[test]
    fn lying_sizes_allocate_nothing() {
        assert!(err(b"\x93NUMPY\x02\x00\xff\xff\xff\xff{'descr'").contains("truncated"));
        assert!(err(b"\x93NUMPY\x03\x00\x00\x00\x00\x10{").contains("truncated"));
        let huge = "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }";
        assert!(err(&npy(1, huge, &[0; 8])).contains("but 8 data bytes follow"));
        let overflow = "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,), }";
        assert!(err(&npy(1, overflow, &[0; 8])).contains("dimension cannot be larger than u64"));
    }

    fn write_dir(files: &[(&str, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        dir
    }

    #[test]
    fn load_dir_train_and_test() {
        let dir = write_dir(&[
            ("X.npy", f32_bytes(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0])),
            ("y.npy", u32_bytes(&[3, 1], &[0, 2, 1])),
            ("X_test.npy", f32_bytes(&[1, 2], &[7.0, 8.0])),
            ("y_test.npy", f32_bytes(&[1], &[0.5])),
        ]);
        let (train, test) = load_dir(dir.path()).unwrap();
        assert_eq!((train.n, train.p, train.classes), (3, 2, Some(3)));
        assert_eq!(train.features, Features::F32(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]));
        assert_eq!(train.targets, vec![0.0, 2.0, 1.0]);
        let test = test.unwrap();
        assert_eq!((test.n, test.p, test.classes, test.targets), (1, 2, None, vec![0.5]));
    }

    #[test]
    fn load_dir_errors() {
        let x = || ("X.npy", f32_bytes(&[2, 2], &[1.0, 2.0, 3.0, 4.0]));
        let y = || ("y.npy", f32_bytes(&[2], &[0.0, 1.0]));
        let msg = |files: &[(&str, Vec<u8>)]| {
            let dir = write_dir(files);
            load_dir(dir.path()).unwrap_err().to_string()
        };
        assert!(msg(&[x()]).contains("cannot read"));
        assert!(msg(&[x(), ("y.npy", f32_bytes(&[3], &[0.0; 3]))]).contains("shape is (3,) but X has 2 samples"));
        assert!(msg(&[x(), ("y.npy", f32_bytes(&[2, 2], &[0.0; 4]))]).contains("must be (2,) or (2, 1)"));
        assert!(msg(&[("X.npy", f32_bytes(&[4], &[0.0; 4])), y()]).contains("must be (samples, features)"));
        assert!(msg(&[("X.npy", f32_bytes(&[0, 2], &[])), y()]).contains("both non-zero"));
        assert!(
            msg(&[("X.npy", f32_bytes(&[2, 2], &[1.0, 2.0, f32::NAN, 4.0])), y()]).contains("element (1, 0) is NaN")
        );
        assert!(msg(&[x(), ("y.npy", f32_bytes(&[2], &[0.0, f32::INFINITY]))]).contains("element 1 is inf"));
        assert!(msg(&[x(), y(), ("X_test.npy", f32_bytes(&[1, 2], &[0.0; 2]))]).contains("no y_test.npy"));
        let wrong_p =
            [x(), y(), ("X_test.npy", f32_bytes(&[1, 3], &[0.0; 3])), ("y_test.npy", f32_bytes(&[1], &[0.0]))];
        assert!(msg(&wrong_p).contains("X_test.npy is not valid: it has 3 features but X.npy has 2"));
    }
}
