//! IDX files (MNIST's format), gzip-compressed or raw.
//!
//! An IDX file is a big-endian header (a magic number `0x0000TTDD`: type `TT`, `DD` dimensions,
//! then one u32 per dimension) followed by the values in row-major order. MNIST uses two kinds,
//! both of u8 values: images (`0x00000803`, `[n, rows, cols]`) and labels (`0x00000801`, `[n]`).
//!
//! The readers accept the file as it is downloaded (gzip, detected by its magic bytes `1f 8b`)
//! or decompressed. They check the header against the bytes that actually follow before
//! allocating anything, so a file whose header lies cannot make them allocate gigabytes, and
//! every problem becomes a [`DataError`] that names the file.

use std::io::{self, Read, Write};
use std::path::Path;

use flate2::Compression;
use flate2::bufread::GzDecoder;
use flate2::write::GzEncoder;

use crate::error::DataError;

/// Magic number of an IDX file of u8 values with 3 dimensions (MNIST images).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 values with 1 dimension (MNIST labels).
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// The largest payload accepted (1 GiB): full MNIST's images are 47 MB, so anything near this
/// is a lying header rather than data.
pub const MAX_PAYLOAD: u64 = 1 << 30;

/// The two magic bytes that start every gzip stream.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Greyscale images: `n` images of `rows` × `cols` pixels, row-major, image after image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub n: usize,
    /// Pixel rows per image (28 for MNIST).
    pub rows: usize,
    /// Pixel columns per image (28 for MNIST).
    pub cols: usize,
    /// `n * rows * cols` pixel values, 0 = background.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image (`rows * cols`).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`, or `None` past the end.
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let p = self.pixels_per_image();
        self.pixels.get(i * p..(i + 1) * p)
    }
}

/// Whether `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Parse an IDX image file (gzip or raw) held in memory; `name` is the file the error names.
pub fn parse_images(bytes: &[u8], name: impl AsRef<Path>) -> Result<Images, DataError> {
    let name = name.as_ref();
    let mut input = Input::new(bytes);
    let dims = read_header(&mut input, IMAGES_MAGIC, name)?;
    let [n, rows, cols] = [dims[0], dims[1], dims[2]];
    let what = format!("{n} images of {rows}x{cols}");
    let pixels = read_payload(&mut input, &[n, rows, cols], &what, name)?;
    Ok(Images { n: n as usize, rows: rows as usize, cols: cols as usize, pixels })
}

/// Parse an IDX label file (gzip or raw) held in memory; `name` is the file the error names.
pub fn parse_labels(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let name = name.as_ref();
    let mut input = Input::new(bytes);
    let dims = read_header(&mut input, LABELS_MAGIC, name)?;
    let what = format!("{} labels", dims[0]);
    read_payload(&mut input, &dims, &what, name)
}

/// Read and parse an IDX image file (gzip or raw).
pub fn read_images(path: &Path) -> Result<Images, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_images(&bytes, path)
}

/// Read and parse an IDX label file (gzip or raw).
pub fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    parse_labels(&bytes, path)
}

/// The decompressed content of `bytes` if they are gzip, else `bytes` themselves. The output is
/// limited to [`MAX_PAYLOAD`] + 1 KiB so that a gzip bomb is an error, not an exhausted memory.
pub fn decompress(bytes: &[u8], name: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    gunzip(bytes, MAX_PAYLOAD + 1024).map_err(|reason| DataError::invalid(name.as_ref(), reason))
}

/// [`decompress`] with an output limit of `limit` bytes, and the reason of a failure as a bare
/// sentence fragment.
pub(crate) fn gunzip(bytes: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    if !is_gzip(bytes) {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    let read = GzMembers::new(bytes).take(limit + 1).read_to_end(&mut out).map_err(|e| gzip_reason(&e))?;
    if read as u64 > limit {
        return Err(format!("it decompresses to more than {limit} bytes"));
    }
    Ok(out)
}

/// `images` as a gzip IDX file (best compression, no file name or time stamp in the gzip
/// header, so the output depends on the images only).
///
/// # Panics
/// If `images.pixels` does not hold `n * rows * cols` values or a dimension exceeds u32: the
/// caller built an inconsistent value.
pub fn images_gz(images: &Images) -> Vec<u8> {
    let dims = [images.n, images.rows, images.cols];
    assert_eq!(images.pixels.len(), dims.iter().product::<usize>(), "pixels do not match n*rows*cols");
    gzip_idx(IMAGES_MAGIC, &dims, &images.pixels)
}

/// `labels` as a gzip IDX label file (best compression, reproducible output).
///
/// # Panics
/// If there are more than `u32::MAX` labels.
pub fn labels_gz(labels: &[u8]) -> Vec<u8> {
    gzip_idx(LABELS_MAGIC, &[labels.len()], labels)
}

fn gzip_idx(magic: u32, dims: &[usize], payload: &[u8]) -> Vec<u8> {
    let mut raw = Vec::with_capacity(4 + 4 * dims.len() + payload.len());
    raw.extend_from_slice(&magic.to_be_bytes());
    for &d in dims {
        let d = u32::try_from(d).expect("an IDX dimension fits in u32");
        raw.extend_from_slice(&d.to_be_bytes());
    }
    raw.extend_from_slice(payload);
    let mut enc = GzEncoder::new(Vec::new(), Compression::best());
    // Writing into a Vec cannot fail.
    enc.write_all(&raw).expect("write to Vec");
    enc.finish().expect("write to Vec")
}

/// The bytes of the file, decompressed on the fly if they are gzip.
struct Input<'a> {
    reader: Box<dyn Read + 'a>,
    gzip: bool,
    /// Bytes of the (decompressed) stream consumed so far.
    consumed: u64,
    /// The size of the input, to reject a raw file whose header announces more than it holds
    /// before reading anything.
    raw_len: u64,
}

impl<'a> Input<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        let gzip = is_gzip(bytes);
        let reader: Box<dyn Read + 'a> = if gzip { Box::new(GzMembers::new(bytes)) } else { Box::new(bytes) };
        Input { reader, gzip, consumed: 0, raw_len: bytes.len() as u64 }
    }

    /// Read up to `limit` bytes (fewer only at the end of the stream).
    fn read_up_to(&mut self, limit: u64, name: &Path) -> Result<Vec<u8>, DataError> {
        // Reserve no more than the input could hold raw; a gzip stream grows the vector as the
        // data actually arrives.
        let mut out = Vec::with_capacity(limit.min(self.raw_len).min(MAX_PAYLOAD) as usize);
        (&mut self.reader).take(limit).read_to_end(&mut out).map_err(|e| DataError::invalid(name, gzip_reason(&e)))?;
        self.consumed += out.len() as u64;
        Ok(out)
    }
}

/// The decompressed content of a gzip file: its members one after another, as `gzip -d` reads
/// it. Bytes after the last member that are not gzip are an error of their own (flate2's
/// `MultiGzDecoder` would report them as a truncated stream).
struct GzMembers<'a> {
    decoder: GzDecoder<&'a [u8]>,
}

impl<'a> GzMembers<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        GzMembers { decoder: GzDecoder::new(bytes) }
    }
}

impl Read for GzMembers<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.decoder.read(buf)?;
            // The bufread decoder has consumed exactly its member: what is left follows it.
            let rest: &[u8] = self.decoder.get_ref();
            if n > 0 || buf.is_empty() || rest.is_empty() {
                return Ok(n);
            }
            if !is_gzip(rest) {
                return Err(io::Error::new(io::ErrorKind::InvalidData, Trailing(rest.len())));
            }
            self.decoder = GzDecoder::new(rest);
        }
    }
}

/// Bytes that are not gzip after a gzip stream.
#[derive(Debug)]
struct Trailing(usize);

impl std::fmt::Display for Trailing {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "{} bytes that are not gzip follow the gzip stream", self.0)
    }
}

impl std::error::Error for Trailing {}

/// One sentence for an error of the gzip decoder (the only reader here that can fail).
fn gzip_reason(e: &io::Error) -> String {
    if let Some(t) = e.get_ref().and_then(|inner| inner.downcast_ref::<Trailing>()) {
        return t.to_string();
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the gzip stream is truncated".into(),
        _ => format!("corrupt gzip data ({e})"),
    }
}

/// Read the magic number and the dimensions, checking they are the ones `expected` announces
/// and that none is zero.
fn read_header(input: &mut Input, expected: u32, name: &Path) -> Result<Vec<u32>, DataError> {
    let magic_bytes = input.read_up_to(4, name)?;
    let magic = be_u32(&magic_bytes).ok_or_else(|| too_short(input, name))?;
    check_magic(magic, expected, input.gzip, name)?;
    let ndim = (expected & 0xff) as u64;
    let dim_bytes = input.read_up_to(4 * ndim, name)?;
    if (dim_bytes.len() as u64) < 4 * ndim {
        return Err(too_short(input, name));
    }
    let dims: Vec<u32> = dim_bytes.chunks_exact(4).filter_map(be_u32).collect();
    if let Some(k) = dims.iter().position(|&d| d == 0) {
        let reason = format!("dimension {} of the header is zero: the file holds no data", k + 1);
        return Err(DataError::invalid(name, reason));
    }
    Ok(dims)
}

fn too_short(input: &Input, name: &Path) -> DataError {
    let reason = format!("truncated: the file ends after {} bytes, inside the IDX header", input.consumed);
    DataError::invalid(name, reason)
}

fn be_u32(b: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(b.try_into().ok()?))
}

fn check_magic(magic: u32, expected: u32, gzip: bool, name: &Path) -> Result<(), DataError> {
    if magic == expected {
        return Ok(());
    }
    let want = if expected == IMAGES_MAGIC { "u8 images, 3 dimensions" } else { "u8 labels, 1 dimension" };
    let reason = match magic {
        IMAGES_MAGIC => "it holds images (magic 0x00000803) where labels were expected".to_string(),
        LABELS_MAGIC => "it holds labels (magic 0x00000801) where images were expected".to_string(),
        _ if magic >> 16 != 0 && !gzip => format!(
            "it is neither gzip nor an IDX file (it starts with 0x{magic:08x}, expected 0x{expected:08x}: {want})"
        ),
        _ => format!("wrong magic number 0x{magic:08x}, expected 0x{expected:08x} ({want})"),
    };
    Err(DataError::invalid(name, reason))
}

/// Read exactly the values the dimensions announce, and check nothing follows them.
fn read_payload(input: &mut Input, dims: &[u32], what: &str, name: &Path) -> Result<Vec<u8>, DataError> {
    let size = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).unwrap_or(u64::MAX);
    if size > MAX_PAYLOAD {
        let reason =
            format!("implausible header: it says {what} ({size} bytes), more than the {MAX_PAYLOAD}-byte limit");
        return Err(DataError::invalid(name, reason));
    }
    let header = input.consumed;
    if !input.gzip && input.raw_len < header + size {
        let follow = input.raw_len - header;
        return Err(truncated(what, follow, name));
    }
    // One byte more than announced, to notice trailing garbage.
    let payload = input.read_up_to(size + 1, name)?;
    let got = payload.len() as u64;
    if got < size {
        return Err(truncated(what, got, name));
    }
    if got > size {
        let extra = got - size + input.read_up_to(MAX_PAYLOAD, name)?.len() as u64;
        let reason = format!("the header says {what} but {extra} more bytes follow them");
        return Err(DataError::invalid(name, reason));
    }
    let mut payload = payload;
    payload.truncate(size as usize);
    Ok(payload)
}

fn truncated(what: &str, follow: u64, name: &Path) -> DataError {
    let reason = format!("truncated: the header says {what} but only {follow} bytes follow");
    DataError::invalid(name, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(magic: u32, dims: &[u32], payload: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn small() -> Images {
        Images { n: 3, rows: 2, cols: 4, pixels: (0..24).collect() }
    }

    fn reason(e: DataError) -> String {
        let s = e.to_string();
        assert!(s.starts_with("x.gz is not valid: "), "{s}");
        s
    }

    #[test]
    fn images_round_trip_gzip_and_raw() {
        let im = small();
        let gzipped = images_gz(&im);
        assert!(is_gzip(&gzipped));
        assert_eq!(parse_images(&gzipped, "x.gz").unwrap(), im);
        let raw = decompress(&gzipped, "x.gz").unwrap();
        assert_eq!(raw.len(), 16 + 24);
        assert_eq!(parse_images(&raw, "x.gz").unwrap(), im);
        assert_eq!(im.image(2).unwrap(), &(16..24).collect::<Vec<u8>>()[..]);
        assert_eq!(im.image(3), None);
    }

    #[test]
    fn labels_round_trip() {
        let labels = vec![0, 1, 1, 0, 9];
        assert_eq!(parse_labels(&labels_gz(&labels), "x.gz").unwrap(), labels);
        assert_eq!(parse_labels(&raw(LABELS_MAGIC, &[5], &labels), "x.gz").unwrap(), labels);
    }

    #[test]
    fn writer_is_reproducible() {
        assert_eq!(images_gz(&small()), images_gz(&small()));
    }

    #[test]
    fn wrong_magic() {
        let labels = raw(LABELS_MAGIC, &[3], &[1, 2, 3]);
        let e = reason(parse_images(&labels, "x.gz").unwrap_err());
        assert!(e.contains("holds labels"), "{e}");
        let images = raw(IMAGES_MAGIC, &[1, 1, 1], &[7]);
        let e = reason(parse_labels(&images, "x.gz").unwrap_err());
        assert!(e.contains("holds images"), "{e}");
        let e = reason(parse_labels(&raw(0x0000_0901, &[1], &[7]), "x.gz").unwrap_err());
        assert!(e.contains("wrong magic number 0x00000901"), "{e}");
    }

    #[test]
    fn garbage_is_neither_gzip_nor_idx() {
        let e = reason(parse_images(b"hello, this is not an IDX file", "x.gz").unwrap_err());
        assert!(e.contains("neither gzip nor an IDX file"), "{e}");
    }

    #[test]
    fn short_header() {
        for bytes in [&b""[..], &[0, 0, 8], &raw(IMAGES_MAGIC, &[2, 28], &[])] {
            let e = reason(parse_images(bytes, "x.gz").unwrap_err());
            assert!(e.contains("inside the IDX header"), "{e}");
        }
    }

    #[test]
    fn short_payload_raw_and_gzip() {
        let bytes = raw(IMAGES_MAGIC, &[12665, 28, 28], &[0; 812]);
        let want = "truncated: the header says 12665 images of 28x28 but only 812 bytes follow";
        assert_eq!(parse_images(&bytes, "x.gz").unwrap_err().to_string(), format!("x.gz is not valid: {want}"));
        let e = reason(parse_images(&gz(&bytes), "x.gz").unwrap_err());
        assert!(e.contains(want), "{e}");
        let e = reason(parse_labels(&raw(LABELS_MAGIC, &[10], &[1; 9]), "x.gz").unwrap_err());
        assert!(e.contains("10 labels but only 9 bytes"), "{e}");
    }

    #[test]
    fn trailing_garbage() {
        let e = reason(parse_labels(&raw(LABELS_MAGIC, &[2], &[1, 0, 5, 5, 5]), "x.gz").unwrap_err());
        assert!(e.contains("2 labels but 3 more bytes follow"), "{e}");
        let e = reason(parse_labels(&gz(&raw(LABELS_MAGIC, &[2], &[1, 0, 5])), "x.gz").unwrap_err());
        assert!(e.contains("1 more bytes follow"), "{e}");
    }

    #[test]
    fn zero_dimension() {
        let e = reason(parse_images(&raw(IMAGES_MAGIC, &[0, 28, 28], &[]), "x.gz").unwrap_err());
        assert!(e.contains("dimension 1 of the header is zero"), "{e}");
    }

    #[test]
    fn lying_header_allocates_nothing() {
        // 4 billion images of 65535x65535: the check must happen before any allocation.
        let bytes = raw(IMAGES_MAGIC, &[u32::MAX, 65535, 65535], &[1, 2, 3]);
        assert!(reason(parse_images(&bytes, "x.gz").unwrap_err()).contains("implausible header"));
        // Under the limit but far more than the file holds.
        let bytes = raw(IMAGES_MAGIC, &[1000, 1000, 1000], &[1, 2, 3]);
        assert!(reason(parse_images(&bytes, "x.gz").unwrap_err()).contains("only 3 bytes follow"));
        let e = reason(parse_images(&gz(&bytes), "x.gz").unwrap_err());
        assert!(e.contains("only 3 bytes follow"), "{e}");
    }

    #[test]
    fn truncated_and_corrupt_gzip() {
        let good = images_gz(&small());
        for cut in [3, 10, 20, good.len() - 4, good.len() - 1] {
            let e = reason(parse_images(&good[..cut], "x.gz").unwrap_err());
            assert!(e.contains("truncated") || e.contains("corrupt gzip"), "cut {cut}: {e}");
        }
        // A flipped bit in the CRC-32 trailer.
        let mut bad = good.clone();
        let k = bad.len() - 6;
        bad[k] ^= 1;
        let e = reason(parse_images(&bad, "x.gz").unwrap_err());
        assert!(e.contains("corrupt gzip"), "{e}");
        // Garbage after the gzip stream.
        let mut trailing = good.clone();
        trailing.extend_from_slice(b"garbage!");
        let e = reason(parse_images(&trailing, "x.gz").unwrap_err());
        assert!(e.contains("8 bytes that are not gzip follow the gzip stream"), "{e}");
        // Two members are one stream, as for gzip itself.
        let raw = decompress(&good, "x.gz").unwrap();
        let mut two = gz(&raw[..10]);
        two.extend_from_slice(&gz(&raw[10..]));
        assert_eq!(parse_images(&two, "x.gz").unwrap(), small());
    }

    #[test]
    fn decompress_passes_raw_through() {
        assert_eq!(decompress(b"abc", "x.gz").unwrap(), b"abc");
        assert_eq!(decompress(&gz(b"abc"), "x.gz").unwrap(), b"abc");
        assert!(reason(decompress(&gz(b"abc")[..8], "x.gz").unwrap_err()).contains("truncated"));
    }
}
