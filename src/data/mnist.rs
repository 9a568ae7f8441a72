//! MNIST: the digits 0/1 subset embedded in the binary, and the full set downloaded into a
//! cache and verified by SHA-256.
//!
//! Both end up as [`Dataset`]s whose features are the raw pixels ([`Features::U8`], value/255
//! as the models see it) and whose targets are class indices: class k is the k-th digit of the
//! requested list. Loading digits `[0, 1]` from the download gives exactly [`embedded_01`].

use std::fs;
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sha2::{Digest, Sha256};

use super::idx::{self, Images};
use super::{Data, Dataset, Features};
use crate::error::DataError;

/// Where MNIST is downloaded from unless the caller names mirrors: base URLs to which a file
/// name is appended. Both serve the original gzip files of LeCun and Cortes.
pub const DEFAULT_MIRRORS: &[&str] =
    &["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"];

/// The four MNIST files (train images, train labels, test images, test labels) with the
/// SHA-256 of their *decompressed* content, which is what a download is verified against (the
/// gzip bytes differ between mirrors that recompressed them).
pub const FILES: [(&str, &str); 4] = [
    ("train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
    ("train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
    ("t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
    ("t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
];

/// The names of the embedded files, in the order of [`FILES`], as they lie in `data/`.
pub const EMBEDDED_FILES: [&str; 4] = [
    "mnist01-train-images-idx3-ubyte.gz",
    "mnist01-train-labels-idx1-ubyte.gz",
    "mnist01-t10k-images-idx3-ubyte.gz",
    "mnist01-t10k-labels-idx1-ubyte.gz",
];

/// The embedded subset: the digits 0 and 1 of MNIST in their original order (see
/// `data/README.md`; `examples/make_mnist01.rs` makes it).
const EMBEDDED: [&[u8]; 4] = [
    include_bytes!("../../data/mnist01-train-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist01-train-labels-idx1-ubyte.gz"),
    include_bytes!("../../data/mnist01-t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist01-t10k-labels-idx1-ubyte.gz"),
];

/// The largest download accepted: the largest MNIST file is 9.9 MB.
const MAX_DOWNLOAD: u64 = 64 << 20;
/// The largest decompressed file accepted: the largest MNIST file is 47 MB decompressed.
const MAX_DECOMPRESSED: u64 = 64 << 20;

/// The default cache directory: `<user cache dir>/steplens/mnist` (`~/.cache/steplens/mnist`
/// on Linux), under the temporary directory where the platform has no cache directory.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("steplens").join("mnist")
}

/// The MNIST digits 0 and 1 embedded in the binary: 12,665 training images (5923 zeros, 6742
/// ones) and 2,115 test images (980 + 1135), 28×28 pixels, labels as classes 0 and 1.
pub fn embedded_01() -> Result<Data, DataError> {
    let name = |k: usize| PathBuf::from("(embedded) data").join(EMBEDDED_FILES[k]);
    let part = |k: usize| -> Result<Part, DataError> {
        let images = idx::parse_images(EMBEDDED[k], name(k))?;
        let labels = idx::parse_labels(EMBEDDED[k + 1], name(k + 1))?;
        Ok(Part { images, labels, images_name: name(k), labels_name: name(k + 1) })
    };
    assemble(&part(0)?, &part(2)?, &[0, 1])
}

/// MNIST restricted to `digits`, from `cache_dir` or downloaded into it.
///
/// `digits` must be sorted, distinct and in 0..=9; the label of digit `digits[k]` becomes class
/// `k`. Each of the four [`FILES`] is taken from `cache_dir` when a copy there has the right
/// SHA-256; otherwise it is downloaded from the first of `mirrors` (base URLs;
/// [`DEFAULT_MIRRORS`] when empty) that serves it intact, and written into the cache
/// atomically. A failed or corrupt download leaves nothing in the cache. A progress bar shows
/// on standard error while downloading, only when that is a terminal.
pub fn load_digits(digits: &[u8], cache_dir: &Path, mirrors: &[String]) -> Result<Data, DataError> {
    check_digits(digits)?;
    let mirrors: Vec<String> =
        if mirrors.is_empty() { DEFAULT_MIRRORS.iter().map(|m| m.to_string()).collect() } else { mirrors.to_vec() };
    let mut fetcher = Fetcher { cache_dir, mirrors: &mirrors, client: None };
    let mut raw = Vec::with_capacity(FILES.len());
    for (file, sha) in FILES {
        raw.push(fetcher.fetch(file, sha)?);
    }
    let part = |k: usize| -> Result<Part, DataError> {
        let (images_name, labels_name) = (cache_dir.join(FILES[k].0), cache_dir.join(FILES[k + 1].0));
        let images = idx::parse_images(&raw[k], &images_name)?;
        let labels = idx::parse_labels(&raw[k + 1], &labels_name)?;
        Ok(Part { images, labels, images_name, labels_name })
    };
    assemble(&part(0)?, &part(2)?, digits)
}

/// The images whose label is one of `digits`, in their original order, labelled with the
/// position of their digit in `digits` (digits `[3, 5]`: 3 → class 0, 5 → class 1).
///
/// `digits` should be distinct; `classes` is `Some(digits.len())`. Images without a label (when
/// `labels` is shorter) and labels without an image are ignored.
pub fn select_digits(images: &Images, labels: &[u8], digits: &[u8], name: &str) -> Dataset {
    let p = images.pixels_per_image();
    let mut class_of = [None; 256];
    for (k, &d) in digits.iter().enumerate() {
        class_of[d as usize] = Some(k as f32);
    }
    let chosen: Vec<(&[u8], f32)> = images
        .pixels
        .chunks_exact(p.max(1))
        .zip(labels)
        .filter_map(|(image, &label)| Some((image, class_of[label as usize]?)))
        .collect();
    let mut pixels = Vec::with_capacity(chosen.len() * p);
    let mut targets = Vec::with_capacity(chosen.len());
    for (image, class) in chosen {
        pixels.extend_from_slice(image);
        targets.push(class);
    }
    let n = targets.len();
    Dataset { name: name.to_string(), n, p, features: Features::U8(pixels), targets, classes: Some(digits.len()) }
}

/// Images and labels of one split, with the names errors use.
struct Part {
    images: Images,
    labels: Vec<u8>,
    images_name: PathBuf,
    labels_name: PathBuf,
}

fn assemble(train: &Part, test: &Part, digits: &[u8]) -> Result<Data, DataError> {
    let list = digits.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(",");
    let select = |part: &Part, split: &str| -> Result<Dataset, DataError> {
        if part.images.n != part.labels.len() {
            let reason = format!(
                "it has {} labels but {} has {} images",
                part.labels.len(),
                part.images_name.display(),
                part.images.n
            );
            return Err(DataError::invalid(&part.labels_name, reason));
        }
        let set = select_digits(&part.images, &part.labels, digits, &format!("mnist digits {list} ({split})"));
        if set.n == 0 {
            return Err(DataError::invalid(&part.labels_name, format!("no label is one of the digits {list}")));
        }
        Ok(set)
    };
    let (train_set, test_set) = (select(train, "train")?, select(test, "test")?);
    if train_set.p != test_set.p {
        let reason = format!("its images have {} pixels but the training images have {}", test_set.p, train_set.p);
        return Err(DataError::invalid(&test.images_name, reason));
    }
    Ok(Data { train: train_set, test: Some(test_set) })
}

fn check_digits(digits: &[u8]) -> Result<(), DataError> {
    let reason = if digits.is_empty() {
        "it is empty"
    } else if digits.iter().any(|&d| d > 9) {
        "MNIST has only the digits 0 to 9"
    } else if digits.windows(2).any(|w| w[0] >= w[1]) {
        "the digits must be sorted and distinct"
    } else {
        return Ok(());
    };
    Err(DataError::Digits { digits: digits.to_vec(), reason: reason.into() })
}

/// The SHA-256 of `bytes` in lowercase hex, as `sha256sum` prints it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Gets each file from the cache or the mirrors; the HTTP client is built only when needed.
struct Fetcher<'a> {
    cache_dir: &'a Path,
    mirrors: &'a [String],
    client: Option<reqwest::blocking::Client>,
}

/// Why one mirror could not provide a file.
enum Failure {
    /// The request or the transfer failed.
    Fetch(String),
    /// The file arrived but is not the original.
    Checksum(String),
}

impl Fetcher<'_> {
    /// The decompressed content of `file`, verified against `sha`.
    fn fetch(&mut self, file: &str, sha: &str) -> Result<Vec<u8>, DataError> {
        if let Ok(meta) = fs::metadata(self.cache_dir)
            && !meta.is_dir()
        {
            return Err(DataError::invalid(
                self.cache_dir,
                "it is a file, not a directory: give --cache-dir a directory (it is created when missing)",
            ));
        }
        let path = self.cache_dir.join(file);
        let bad_copy = match cached(&path, sha) {
            Cached::Good(raw) => return Ok(raw),
            Cached::Missing => None,
            Cached::Bad(why) => {
                crate::report::progress::notice(&format!(
                    "the cached {} {why}; downloading it again to replace it",
                    path.display()
                ));
                Some(why)
            }
        };
        let (gz, raw) = self.download(file, sha).map_err(|e| match (e, &bad_copy) {
            (DataError::Download { url, reason }, Some(why)) => DataError::Download {
                url,
                reason: format!("{reason} (the cached copy {} {why} and was left as it is)", path.display()),
            },
            (e, _) => e,
        })?;
        write_atomic(self.cache_dir, file, &gz)?;
        Ok(raw)
    }

    /// The gzip bytes and their decompressed content from the first mirror that serves `file`
    /// intact; when none does, one error that says what each mirror did.
    fn download(&mut self, file: &str, sha: &str) -> Result<(Vec<u8>, Vec<u8>), DataError> {
        let client = self.client()?;
        let mut failures = Vec::new();
        for mirror in self.mirrors {
            let url = if mirror.ends_with('/') { format!("{mirror}{file}") } else { format!("{mirror}/{file}") };
            match try_mirror(&client, &url, file, sha) {
                Ok(got) => return Ok(got),
                Err(f) => failures.push((url, f)),
            }
        }
        Err(all_failed(file, sha, failures))
    }

    fn client(&mut self) -> Result<reqwest::blocking::Client, DataError> {
        if let Some(c) = &self.client {
            return Ok(c.clone());
        }
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("steplens/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(15))
            // In the blocking client this bounds the wait for the response and each read.
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| DataError::Download { url: "(none)".into(), reason: format!("no HTTP client: {e}") })?;
        self.client = Some(client.clone());
        Ok(client)
    }
}

/// What the cache holds for one file.
enum Cached {
    /// The decompressed content, with the right checksum.
    Good(Vec<u8>),
    /// No copy.
    Missing,
    /// A copy that cannot be used, and why (as the end of "the cached PATH …").
    Bad(String),
}

fn cached(path: &Path, sha: &str) -> Cached {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Cached::Missing,
        Err(e) => return Cached::Bad(format!("cannot be read ({e})")),
    };
    let raw = match idx::gunzip(&bytes, MAX_DECOMPRESSED) {
        Ok(raw) => raw,
        Err(r) => return Cached::Bad(format!("is not a valid gzip file ({r})")),
    };
    let actual = sha256_hex(&raw);
    if actual == sha {
        Cached::Good(raw)
    } else {
        Cached::Bad("failed its SHA-256 check (corrupt or not the original)".into())
    }
}

fn try_mirror(
    client: &reqwest::blocking::Client,
    url: &str,
    file: &str,
    sha: &str,
) -> Result<(Vec<u8>, Vec<u8>), Failure> {
    let resp = client.get(url).send().map_err(|e| Failure::Fetch(reqwest_reason(&e)))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Failure::Fetch(format!("HTTP {status}")));
    }
    let len = resp.content_length();
    if len.is_some_and(|l| l > MAX_DOWNLOAD) {
        return Err(Failure::Fetch(format!("it announces {} bytes, more than MNIST has", len.unwrap_or(0))));
    }
    let gz = read_body(resp, len, file)?;
    let raw =
        idx::gunzip(&gz, MAX_DECOMPRESSED).map_err(|r| Failure::Fetch(format!("it sent no valid gzip file: {r}")))?;
    let actual = sha256_hex(&raw);
    if actual != sha {
        return Err(Failure::Checksum(actual));
    }
    Ok((gz, raw))
}

/// The body, with a progress bar (hidden unless standard error is a terminal).
fn read_body(resp: reqwest::blocking::Response, len: Option<u64>, file: &str) -> Result<Vec<u8>, Failure> {
    let target = if crate::report::progress::is_quiet() || !std::io::stderr().is_terminal() {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    };
    let bar = ProgressBar::with_draw_target(len, target);
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("downloading {file}"));
    let mut body = Vec::with_capacity(len.unwrap_or(0) as usize);
    let read = bar.wrap_read(resp.take(MAX_DOWNLOAD + 1)).read_to_end(&mut body);
    bar.finish_and_clear();
    if let Err(e) = read {
        let of = len.map(|l| format!(" of {l}")).unwrap_or_default();
        return Err(Failure::Fetch(format!("the transfer broke after {}{of} bytes ({})", body.len(), innermost(&e))));
    }
    if body.len() as u64 > MAX_DOWNLOAD {
        return Err(Failure::Fetch(format!("it sent more than {MAX_DOWNLOAD} bytes, more than MNIST has")));
    }
    if let Some(l) = len.filter(|&l| l != body.len() as u64) {
        return Err(Failure::Fetch(format!("the transfer broke after {} of {l} bytes", body.len())));
    }
    Ok(body)
}

fn reqwest_reason(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect ({})", innermost(e))
    } else {
        innermost(e)
    }
}

/// The innermost cause of an error, which is the one that says what happened ("Connection
/// refused", "connection closed before message completed") without the wrappers' repetition.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(source) = e.source() {
        e = source;
    }
    e.to_string()
}

fn all_failed(file: &str, sha: &str, failures: Vec<(String, Failure)>) -> DataError {
    // Every mirror served a wrong file: that is a checksum problem, not a network one.
    if let Some((url, Failure::Checksum(actual))) = failures.first()
        && failures.iter().all(|(_, f)| matches!(f, Failure::Checksum(_)))
    {
        return DataError::Checksum { path: PathBuf::from(url), expected: sha.into(), actual: actual.clone() };
    }
    let said: Vec<String> = failures
        .iter()
        .map(|(url, f)| match f {
            Failure::Fetch(r) => format!("{url}: {r}"),
            Failure::Checksum(actual) => {
                format!("{url}: the content has SHA-256 {actual}, expected {sha}")
            }
        })
        .collect();
    let offline = !failures.is_empty()
        && failures
            .iter()
            .all(|(_, f)| matches!(f, Failure::Fetch(r) if r.starts_with("cannot connect") || r == "timed out"));
    let reason = if said.is_empty() {
        "no mirror to download from".to_string()
    } else if offline {
        format!(
            "no mirror could be reached, so this machine seems to be offline or behind a firewall ({}); copy the MNIST files into the cache directory or pass --mirror",
            said.join("; ")
        )
    } else {
        said.join("; ")
    };
    DataError::Download { url: file.into(), reason }
}

/// Write `bytes` to `dir/file` so that the file is either absent or complete (the one atomic
/// writer of steplens, [`crate::report::files::write_atomic`]), creating `dir` first.
fn write_atomic(dir: &Path, file: &str, bytes: &[u8]) -> Result<(), DataError> {
    fs::create_dir_all(dir).map_err(|e| DataError::Write { path: dir.to_path_buf(), source: e })?;
    crate::report::files::write_atomic(&dir.join(file), bytes).map_err(|e| match e {
        crate::Error::Write { path, source } => DataError::Write { path, source },
        other => DataError::Write { path: dir.join(file), source: std::io::Error::other(other.to_string()) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(labels: &[u8]) -> Images {
        let pixels = labels.iter().flat_map(|&l| [l, l * 10]).collect();
        Images { n: labels.len(), rows: 1, cols: 2, pixels }
    }

    #[test]
    fn select_remaps_in_list_order() {
        let labels = [5, 3, 7, 5, 3, 0];
        let set = select_digits(&images(&labels), &labels, &[3, 5], "t");
        assert_eq!(set.n, 4);
        assert_eq!(set.p, 2);
        assert_eq!(set.targets, vec![1.0, 0.0, 1.0, 0.0]);
        assert_eq!(set.features, Features::U8(vec![5, 50, 3, 30, 5, 50, 3, 30]));
        assert_eq!(set.classes, Some(2));
        assert_eq!(set.name, "t");
    }

    #[test]
    fn select_ignores_unmatched_lengths() {
        let labels = [1, 1, 1];
        let set = select_digits(&images(&labels), &labels[..2], &[1], "t");
        assert_eq!(set.n, 2);
    }

    #[test]
    fn digit_lists() {
        assert!(check_digits(&[0, 1]).is_ok());
        assert!(check_digits(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]).is_ok());
        for bad in [&[][..], &[1, 0], &[3, 3], &[10]] {
            let e = check_digits(bad).unwrap_err().to_string();
            assert!(e.starts_with("the digit list"), "{e}");
        }
    }

    #[test]
    fn sha256_hex_matches_sha256sum() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn embedded_counts() {
        let data = embedded_01().unwrap();
        let test = data.test.unwrap();
        for (set, n, ones, name) in
            [(&data.train, 12665, 6742, "mnist digits 0,1 (train)"), (&test, 2115, 1135, "mnist digits 0,1 (test)")]
        {
            assert_eq!((set.n, set.p, set.classes, set.name.as_str()), (n, 784, Some(2), name));
            assert_eq!(set.targets.iter().filter(|&&t| t == 1.0).count(), ones);
            assert!(set.targets.iter().all(|&t| t == 0.0 || t == 1.0));
            assert!(matches!(&set.features, Features::U8(v) if v.len() == n * 784));
        }
    }

    fn part(labels: &[u8], n_images: usize) -> Part {
        let mut images = images(labels);
        images.n = n_images;
        images.pixels.resize(n_images * 2, 0);
        Part { images, labels: labels.to_vec(), images_name: "i.gz".into(), labels_name: "l.gz".into() }
    }

    #[test]
    fn assemble_checks_counts_and_sizes() {
        let good = part(&[0, 1, 1], 3);
        assert!(assemble(&good, &good, &[0, 1]).is_ok());
        let e = assemble(&good, &part(&[0, 1], 3), &[0, 1]).unwrap_err().to_string();
        assert_eq!(e, "l.gz is not valid: it has 2 labels but i.gz has 3 images");
        let e = assemble(&good, &good, &[7]).unwrap_err().to_string();
        assert_eq!(e, "l.gz is not valid: no label is one of the digits 7");
        let mut wide = part(&[0, 1, 1], 3);
        wide.images.cols = 1;
        wide.images.pixels.truncate(3);
        let e = assemble(&good, &wide, &[0, 1]).unwrap_err().to_string();
        assert_eq!(e, "i.gz is not valid: its images have 1 pixels but the training images have 2");
    }

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        write_atomic(&sub, "f.gz", b"one").unwrap();
        write_atomic(&sub, "f.gz", b"two").unwrap();
        assert_eq!(fs::read(sub.join("f.gz")).unwrap(), b"two");
        assert_eq!(fs::read_dir(&sub).unwrap().count(), 1);
    }
}
