//! MNIST: the embedded subset against the original files, and downloads from an HTTP server on
//! 127.0.0.1 that serves `tests/fixtures/mnist` (normally, or failing in chosen ways).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use steplens::data::idx;
use steplens::data::mnist::{self, FILES};
use steplens::data::{Data, Features};
use steplens::error::DataError;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist")
}

/// The fixture files, read once for all tests and servers.
fn originals() -> &'static HashMap<String, Vec<u8>> {
    static FILES_READ: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
    FILES_READ.get_or_init(|| {
        FILES.iter().map(|(f, _)| (f.to_string(), std::fs::read(fixtures().join(f)).unwrap())).collect()
    })
}

/// How the test server answers.
#[derive(Clone, Copy)]
enum Mode {
    /// Every file as it is.
    Serve,
    /// 404 for everything.
    NotFound,
    /// This file as valid gzip of content with one byte changed.
    Corrupt(&'static str),
    /// This file cut short, with a matching Content-Length.
    BadGzip(&'static str),
    /// This file announced in full, then the connection closed half-way.
    Drop(&'static str),
}

struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(mode: Mode) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (requests, stop) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicBool::new(false)));
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = answer(stream, mode);
                }
            }
        });
        Server { addr, requests, stop, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://{}/mnist/", self.addr)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A URL where nothing listens (connection refused).
fn dead_url() -> String {
    let addr = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    format!("http://{addr}/mnist")
}

fn answer(stream: TcpStream, mode: Mode) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("");
    let file = path.rsplit('/').next().unwrap_or("");
    let mut stream = stream;
    let body = match (mode, originals().get(file)) {
        (Mode::NotFound, _) | (_, None) => {
            stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found")?;
            return Ok(());
        }
        (Mode::Corrupt(f), Some(_)) if f == file => corrupted(file),
        (Mode::BadGzip(f), Some(b)) if f == file => b[..b.len() - 100].to_vec(),
        (Mode::Drop(f), Some(b)) if f == file => {
            write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", b.len())?;
            stream.write_all(&b[..b.len() / 2])?;
            stream.flush()?;
            return stream.shutdown(Shutdown::Both);
        }
        (_, Some(b)) => b.clone(),
    };
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    stream.write_all(&body)?;
    stream.flush()
}

/// The file with one byte of its content changed, as a valid gzip file.
fn corrupted(file: &str) -> Vec<u8> {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&originals()[file][..]).read_to_end(&mut raw).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x55;
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(&raw).unwrap();
    enc.finish().unwrap()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

fn assert_same(a: &Data, b: &Data) {
    assert_eq!(a.train, b.train);
    assert_eq!(a.test, b.test);
}

#[test]
fn embedded_subset_is_the_zeros_and_ones_of_the_originals_in_order() {
    let data = mnist::embedded_01().unwrap();
    let test = data.test.as_ref().unwrap();
    for (set, k, counts) in [(&data.train, 0, [5923, 6742]), (test, 2, [980, 1135])] {
        let images = idx::read_images(&fixtures().join(FILES[k].0)).unwrap();
        let labels = idx::read_labels(&fixtures().join(FILES[k + 1].0)).unwrap();
        let mut pixels = Vec::new();
        let mut targets = Vec::new();
        for (i, &l) in labels.iter().enumerate() {
            if l <= 1 {
                pixels.extend_from_slice(images.image(i).unwrap());
                targets.push(l as f32);
            }
        }
        assert_eq!(set.n, counts[0] + counts[1]);
        assert_eq!(set.targets.iter().filter(|&&t| t == 0.0).count(), counts[0]);
        assert_eq!(set.targets, targets);
        assert_eq!(set.features, Features::U8(pixels));
    }
}

#[test]
fn download_into_the_cache_then_use_it_offline() {
    let server = Server::start(Mode::Serve);
    let cache = tempfile::tempdir().unwrap();
    let data = mnist::load_digits(&[0, 1], cache.path(), &[server.url()]).unwrap();
    assert_same(&data, &mnist::embedded_01().unwrap());
    let mut want: Vec<String> = FILES.iter().map(|(f, _)| f.to_string()).collect();
    want.sort();
    assert_eq!(files_in(cache.path()), want);
    for (f, _) in FILES {
        assert_eq!(&std::fs::read(cache.path().join(f)).unwrap(), &originals()[f]);
    }
    assert_eq!(server.requests(), 4);
    drop(server);

    // No server now: everything must come from the cache.
    let again = mnist::load_digits(&[0, 1], cache.path(), &[dead_url()]).unwrap();
    assert_same(&again, &data);
    let three_five = mnist::load_digits(&[3, 5], cache.path(), &[dead_url()]).unwrap();
    let (train, test) = (&three_five.train, three_five.test.as_ref().unwrap());
    assert_eq!((train.n, train.classes, train.name.as_str()), (6131 + 5421, Some(2), "mnist digits 3,5 (train)"));
    assert_eq!(train.targets.iter().filter(|&&t| t == 0.0).count(), 6131);
    assert_eq!((test.n, test.targets.iter().filter(|&&t| t == 1.0).count()), (1010 + 892, 892));
    let all = mnist::load_digits(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], cache.path(), &[dead_url()]).unwrap();
    assert_eq!((all.train.n, all.train.classes, all.test.unwrap().n), (60000, Some(10), 10000));
}

#[test]
fn failing_mirrors_are_skipped() {
    let (missing, corrupt, good) = (
        Server::start(Mode::NotFound),
        Server::start(Mode::Corrupt("t10k-labels-idx1-ubyte.gz")),
        Server::start(Mode::Serve),
    );
    let cache = tempfile::tempdir().unwrap();
    let mirrors = [dead_url(), missing.url(), corrupt.url(), good.url()];
    let data = mnist::load_digits(&[0, 1], cache.path(), &mirrors).unwrap();
    assert_same(&data, &mnist::embedded_01().unwrap());
    assert_eq!(missing.requests(), 4);
    assert_eq!(corrupt.requests(), 4);
    // Only the corrupt file was needed from the last mirror.
    assert_eq!(good.requests(), 1);
    assert_eq!(files_in(cache.path()).len(), 4);
}

#[test]
fn every_mirror_failing_gives_one_error_listing_each() {
    let missing = Server::start(Mode::NotFound);
    let dead = dead_url();
    let cache = tempfile::tempdir().unwrap();
    let e = mnist::load_digits(&[0, 1], cache.path(), &[dead.clone(), missing.url()]).unwrap_err();
    assert!(matches!(e, DataError::Download { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.starts_with("download of train-images-idx3-ubyte.gz failed: "), "{msg}");
    assert!(msg.contains(&format!("{dead}/train-images-idx3-ubyte.gz: cannot connect")), "{msg}");
    assert!(msg.contains(&format!("{}train-images-idx3-ubyte.gz: HTTP 404 Not Found", missing.url())), "{msg}");
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_corrupt_download_is_a_checksum_error_and_leaves_nothing() {
    let server = Server::start(Mode::Corrupt("train-images-idx3-ubyte.gz"));
    let cache = tempfile::tempdir().unwrap();
    let e = mnist::load_digits(&[0, 1], cache.path(), &[server.url()]).unwrap_err();
    assert!(matches!(e, DataError::Checksum { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("train-images-idx3-ubyte.gz has SHA-256"), "{msg}");
    assert!(msg.contains(&format!("expected {}", FILES[0].1)), "{msg}");
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_truncated_gzip_download_is_an_error_and_leaves_nothing() {
    let server = Server::start(Mode::BadGzip("train-images-idx3-ubyte.gz"));
    let cache = tempfile::tempdir().unwrap();
    let msg = mnist::load_digits(&[0, 1], cache.path(), &[server.url()]).unwrap_err().to_string();
    assert!(msg.contains("it sent no valid gzip file: the gzip stream is truncated"), "{msg}");
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_dropped_connection_is_an_error_and_leaves_nothing() {
    let server = Server::start(Mode::Drop("train-images-idx3-ubyte.gz"));
    let cache = tempfile::tempdir().unwrap();
    let e = mnist::load_digits(&[0, 1], cache.path(), &[server.url()]).unwrap_err();
    assert!(matches!(e, DataError::Download { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("the transfer broke after"), "{msg}");
    assert!(files_in(cache.path()).is_empty());
}

#[test]
fn a_corrupt_cached_copy_is_downloaded_again() {
    let server = Server::start(Mode::Serve);
    let cache = tempfile::tempdir().unwrap();
    let labels = cache.path().join("t10k-labels-idx1-ubyte.gz");
    std::fs::write(&labels, b"not the labels").unwrap();
    // The other three come from a first, partial run.
    for (f, _) in &FILES[..3] {
        std::fs::write(cache.path().join(f), &originals()[*f]).unwrap();
    }
    mnist::load_digits(&[0, 1], cache.path(), &[server.url()]).unwrap();
    assert_eq!(server.requests(), 1);
    assert_eq!(&std::fs::read(&labels).unwrap(), &originals()["t10k-labels-idx1-ubyte.gz"]);
    assert_eq!(files_in(cache.path()).len(), 4);
}

#[test]
fn a_bad_digit_list_is_refused_before_any_download() {
    let cache = tempfile::tempdir().unwrap();
    let e = mnist::load_digits(&[1, 0], cache.path(), &[dead_url()]).unwrap_err();
    assert!(matches!(e, DataError::Digits { .. }), "{e:?}");
}

#[test]
fn offline_errors_say_so() {
    let cache = tempfile::tempdir().unwrap();
    let msg = mnist::load_digits(&[0, 1], cache.path(), &[dead_url(), dead_url()]).unwrap_err().to_string();
    assert!(msg.contains("no mirror could be reached") && msg.contains("offline"), "{msg}");
    assert!(msg.contains("--mirror"), "{msg}");
}

#[test]
fn a_corrupt_cached_copy_that_cannot_be_replaced_is_named() {
    let cache = tempfile::tempdir().unwrap();
    let images = cache.path().join("train-images-idx3-ubyte.gz");
    std::fs::write(&images, corrupted("train-images-idx3-ubyte.gz")).unwrap();
    let msg = mnist::load_digits(&[0, 1], cache.path(), &[dead_url()]).unwrap_err().to_string();
    assert!(
        msg.contains(&format!("the cached copy {} failed its SHA-256 check", images.display()))
            && msg.contains("was left as it is"),
        "{msg}"
    );
    std::fs::write(&images, b"not gzip").unwrap();
    let msg = mnist::load_digits(&[0, 1], cache.path(), &[dead_url()]).unwrap_err().to_string();
    assert!(msg.contains(&format!("the cached copy {}", images.display())), "{msg}");
}

#[test]
fn a_cache_dir_that_is_a_file_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("cache");
    std::fs::write(&file, b"x").unwrap();
    let msg = mnist::load_digits(&[0, 1], &file, &[dead_url()]).unwrap_err().to_string();
    assert!(msg.contains("it is a file, not a directory") && !msg.contains("os error"), "{msg}");
}

/// The binary says what happened to a corrupt cached copy (a notice, silenced by --quiet).
#[test]
fn the_cli_announces_a_replaced_cached_copy() {
    let server = Server::start(Mode::Serve);
    for quiet in [false, true] {
        let cache = tempfile::tempdir().unwrap();
        for (f, _) in &FILES {
            std::fs::write(cache.path().join(f), &originals()[*f]).unwrap();
        }
        std::fs::write(cache.path().join("t10k-labels-idx1-ubyte.gz"), b"not the labels").unwrap();
        let out = cache.path().join("run");
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_steplens"));
        cmd.args(["analyze", "--digits", "3,5", "--batches", "0", "--points", "8", "--device", "gpu"])
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["--mirror", &server.url(), "--out"])
            .arg(&out);
        if quiet {
            cmd.arg("--quiet");
        }
        let o = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{err}");
        let said = err.contains("t10k-labels-idx1-ubyte.gz failed its SHA-256 check (corrupt or not the original); downloading it again to replace it");
        assert_eq!(said, !quiet, "quiet {quiet}: {err}");
    }
}
