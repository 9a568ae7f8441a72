//! Output directories and atomic writes.
//!
//! Every file steplens writes goes through [`write_atomic`]: a reader (a user's `tail`, a
//! plotting script, a second run) sees either the previous complete file or the new complete
//! file, never a torn one, and a run interrupted half-way leaves no partial outputs.
//!
//! [`OutDir`] is a run's output directory. It refuses to mix a new run into an old one, holds
//! an exclusive lock on it (the file [`LOCK_FILE`], locked by the operating system, so a run
//! that crashed leaves no stale lock), proves that it can write there before any work starts,
//! and a run that fails before writing anything leaves no directory behind, so callers only
//! `create`, `write*` and drop it: there is no commit step to forget.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::{Error, Result};

/// Distinguishes temporary files of concurrent writes to the same target within one process
/// (the pid alone only separates processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `bytes` to `path` atomically: into `.<name>.tmp-<pid>-<n>` in the same directory,
/// flushed and fsynced, then renamed over `path` (rename is atomic within one file system,
/// hence the same directory). On error the temporary file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |source| Error::Write { path: path.to_path_buf(), source };
    let tmp = temp_path(path).map_err(fail)?;
    let result = write_synced(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        // Best effort: the temp file may not exist if its creation was what failed.
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    sync_parent(path);
    Ok(())
}

/// The temporary sibling of `path` that [`write_atomic`] writes first.
fn temp_path(path: &Path) -> io::Result<PathBuf> {
    let name =
        path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path does not name a file"))?;
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}-{n}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Creates `path` (which must not exist), writes `bytes` and fsyncs, so that the rename that
/// follows publishes complete contents even after a crash.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(bytes)?;
    file.flush()?;
    file.sync_all()
}

/// Fsyncs the directory holding `path` so the rename itself is durable. Best effort: some
/// platforms and file systems cannot open or sync a directory, and the data is already safe.
fn sync_parent(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// The lock file of a run directory: locked exclusively (an OS file lock, released when the
/// process ends however it ends) while a run writes there; it holds the pid, the command line
/// and the start time of that run, and is removed when the run's [`OutDir`] is dropped.
pub const LOCK_FILE: &str = ".steplens.lock";

/// A run's output directory. See the [module documentation](self).
///
/// Dropping an `OutDir` removes its lock file and then the directories that [`OutDir::create`]
/// made, provided they are empty: a run that fails before its first output leaves nothing
/// behind, and a directory holding any file (written through `OutDir` or not) is never touched.
#[derive(Debug)]
pub struct OutDir {
    path: PathBuf,
    /// Directories `create` made, deepest first, so `Drop` can undo exactly those.
    created: Vec<PathBuf>,
    /// The locked [`LOCK_FILE`], once taken.
    lock: Option<File>,
}

impl OutDir {
    /// Opens `path` as a run's output directory, creating it and its parents as needed, and
    /// locks it for this process.
    ///
    /// Fails with [`Error::Usage`] when `path` is a file, when it cannot be created or written
    /// (checked by writing the lock file, before any work), when another process holds its
    /// lock (the error names that process), or when it is a non-empty directory and `force` is
    /// false. With `force`, files of an earlier run stay where a new run writes none of the
    /// same name.
    pub fn create(path: &Path, force: bool) -> Result<OutDir> {
        let shown = path.display();
        let mut out = match fs::metadata(path) {
            Ok(meta) if !meta.is_dir() => {
                return Err(Error::usage(format!("the output directory {shown} is a file: choose another --out")));
            }
            Ok(_) => OutDir { path: path.to_path_buf(), created: Vec::new(), lock: None },
            Err(_) => {
                let created = create_dirs(path)
                    .map_err(|e| Error::usage(format!("cannot create the output directory {shown}: {e}")))?;
                OutDir { path: path.to_path_buf(), created, lock: None }
            }
        };
        // From here on, an error drops `out`, which removes the lock file and what it created.
        out.lock = Some(take_lock(path)?);
        if !force && !is_empty_dir(path)? {
            return Err(Error::usage(format!(
                "the output directory {shown} is not empty: choose another --out or \
                 pass --force to write into it"
            )));
        }
        Ok(out)
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` inside the directory, for writers that need a path (the directory
    /// is not created for a name with subdirectories: [`OutDir::write`] does that).
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes `bytes` to `name` atomically. `name` is relative and may contain
    /// subdirectories (`plots/loss.png`), which are created.
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let target = self.path.join(name);
        check_relative(name).map_err(|source| Error::Write { path: target.clone(), source })?;
        if let Some(parent) = target.parent().filter(|p| *p != self.path) {
            fs::create_dir_all(parent).map_err(|source| Error::Write { path: target.clone(), source })?;
        }
        write_atomic(&target, bytes)
    }

    /// Writes a text file atomically.
    pub fn write_text(&self, name: &str, text: &str) -> Result<()> {
        self.write(name, text.as_bytes())
    }

    /// Writes `value` as pretty-printed JSON with a trailing newline (non-finite floats
    /// become `null`, as serde_json writes them).
    pub fn write_json(&self, name: &str, value: &impl Serialize) -> Result<()> {
        let mut text = serde_json::to_string_pretty(value).map_err(|e| Error::Write {
            path: self.path.join(name),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
        text.push('\n');
        self.write_text(name, &text)
    }

    /// Writes a CSV file: `header`, then `rows`, quoted as RFC 4180 requires. Format numbers
    /// with [`csv_num`] and [`csv_opt`] so they round-trip exactly.
    pub fn write_csv<I>(&self, name: &str, header: &[&str], rows: I) -> Result<()>
    where
        I: IntoIterator<Item = Vec<String>>,
    {
        self.write_text(name, &csv_string(header, rows))
    }
}

impl Drop for OutDir {
    fn drop(&mut self) {
        // The lock file goes first (while still locked), so the directory can be empty again.
        if let Some(lock) = self.lock.take() {
            let _ = fs::remove_file(self.path.join(LOCK_FILE));
            drop(lock);
        }
        // `remove_dir` only removes empty directories, so nothing anyone wrote is ever lost;
        // the first failure means that directory (and so every parent) is in use.
        for dir in &self.created {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

/// Whether `path` (a directory) has no entries but the lock file.
fn is_empty_dir(path: &Path) -> Result<bool> {
    let entries = fs::read_dir(path)
        .map_err(|e| Error::usage(format!("cannot read the output directory {}: {e}", path.display())))?;
    Ok(entries.flatten().all(|e| e.file_name() == LOCK_FILE))
}

/// Opens and locks `dir`'s [`LOCK_FILE`] and writes who holds it. Creating the file is also
/// the proof that the directory is writable, before any work starts.
fn take_lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let shown = dir.display();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| Error::usage(format!("cannot write into the output directory {shown}: {e}")))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let who = if holder.is_empty() { "another steplens process".to_string() } else { holder.to_string() };
            return Err(Error::usage(format!(
                "the output directory {shown} is in use by {who}: wait for it to finish or choose another --out"
            )));
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(Error::usage(format!("cannot lock the output directory {shown}: {e}")));
        }
    }
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let command: Vec<String> = std::env::args_os().map(|a| a.to_string_lossy().into_owned()).collect();
    let text =
        format!("steplens process {} (`{}`, started {})\n", std::process::id(), command.join(" "), utc_stamp(secs));
    file.set_len(0)
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::usage(format!("cannot write into the output directory {shown}: {e}")))?;
    Ok(file)
}

/// Creates `path` and its missing parents; returns the directories it created, deepest first.
fn create_dirs(path: &Path) -> io::Result<Vec<PathBuf>> {
    let missing: Vec<PathBuf> = path
        .ancestors()
        .filter(|p| !p.as_os_str().is_empty())
        .take_while(|p| fs::symlink_metadata(p).is_err())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(path)?;
    Ok(missing)
}

/// Refuses names that would escape the output directory.
fn check_relative(name: &str) -> io::Result<()> {
    let inside = Path::new(name).components().all(|c| matches!(c, Component::Normal(_)));
    if inside && !name.is_empty() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a file of the output directory must have a relative name without `..`",
        ))
    }
}

/// The CSV text of `header` and `rows`, one line each, `\n`-terminated.
pub fn csv_string<I>(header: &[&str], rows: I) -> String
where
    I: IntoIterator<Item = Vec<String>>,
{
    let mut out = String::new();
    push_csv_line(&mut out, header.iter().copied());
    for row in rows {
        push_csv_line(&mut out, row.iter().map(String::as_str));
    }
    out
}

fn push_csv_line<'a>(out: &mut String, fields: impl Iterator<Item = &'a str>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            out.push('"');
            out.push_str(&field.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(field);
        }
    }
    out.push('\n');
}

/// A CSV field for `x` that parses back to exactly `x`: the shortest round-trip decimal,
/// in exponent form outside [1e-5, 1e16) so extremes stay short; `inf`/`-inf` for
/// infinities and the empty field (missing) for NaN, as pandas and numpy read them.
pub fn csv_num(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else if x == 0.0 || x.is_infinite() || (1e-5..1e16).contains(&x.abs()) {
        format!("{x}")
    } else {
        format!("{x:e}")
    }
}

/// [`csv_num`] of a value that may be missing (the empty field).
pub fn csv_opt(x: Option<f64>) -> String {
    x.map(csv_num).unwrap_or_default()
}

/// A fresh run directory `runs/<prefix>-<UTC time YYYYmmddTHHMMSSZ>`, with `-2`, `-3`, …
/// appended when that name is already taken (two runs started within one second).
pub fn default_run_dir(prefix: &str) -> PathBuf {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let base = Path::new("runs").join(format!("{prefix}-{}", utc_stamp(secs)));
    let mut candidate = base.clone();
    let mut n = 2u32;
    while fs::symlink_metadata(&candidate).is_ok() && n < 10_000 {
        let mut name = base.clone().into_os_string();
        name.push(format!("-{n}"));
        candidate = PathBuf::from(name);
        n += 1;
    }
    candidate
}

/// `secs` since the Unix epoch as a compact UTC stamp, `YYYYmmddTHHMMSSZ`.
pub fn utc_stamp(secs: u64) -> String {
    // u64 seconds / 86400 always fits an i64 day count.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

/// The proleptic Gregorian date `(year, month 1..=12, day 1..=31)` of `days` since
/// 1970-01-01 (negative before). Howard Hinnant's `civil_from_days`: it shifts the year to
/// start in March, so the leap day is the last day of a 400-year era's year.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468); // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of March-based year, 0..=365
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both are within 1..=31 and 1..=12 by construction.
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn write_atomic_writes_overwrites_and_leaves_no_temp() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a.txt");
        write_atomic(&path, b"first").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, b"second, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second, longer");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
        assert_eq!(names(tmp.path()), ["a.txt"]);
    }

    #[test]
    fn write_atomic_failure_reports_path_and_leaves_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails after the temp was written.
        let target = tmp.path().join("taken");
        fs::create_dir_all(target.join("inner")).unwrap();
        let err = write_atomic(&target, b"x").unwrap_err();
        assert!(matches!(&err, Error::Write { path, .. } if *path == target), "{err}");
        assert_eq!(names(tmp.path()), ["taken"]);
        // A missing parent: the temp file cannot even be created.
        let missing = tmp.path().join("no/such/dir/f.txt");
        assert!(matches!(write_atomic(&missing, b"x"), Err(Error::Write { .. })));
        assert_eq!(names(tmp.path()), ["taken"]);
    }

    #[test]
    fn write_atomic_concurrent_writers_do_not_collide() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("shared.txt");
        std::thread::scope(|s| {
            for i in 0..8 {
                let path = &path;
                s.spawn(move || write_atomic(path, format!("writer {i}").as_bytes()).unwrap());
            }
        });
        assert!(fs::read_to_string(&path).unwrap().starts_with("writer "));
        assert_eq!(names(tmp.path()), ["shared.txt"]);
    }

    #[test]
    fn outdir_creates_parents_and_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("runs/r1");
        let out = OutDir::create(&path, false).unwrap();
        assert_eq!(out.path(), path);
        out.write_text("notes.txt", "hello\n").unwrap();
        out.write_json("m.json", &serde_json::json!({"a": 1, "b": f64::NAN})).unwrap();
        out.write("plots/x.bin", &[1, 2, 3]).unwrap();
        out.write_csv("h.csv", &["x", "note"], vec![vec![csv_num(0.1), "a,\"b\"".into()]]).unwrap();
        drop(out);
        assert_eq!(names(&path), ["h.csv", "m.json", "notes.txt", "plots"]);
        let json = fs::read_to_string(path.join("m.json")).unwrap();
        assert_eq!(json, "{\n  \"a\": 1,\n  \"b\": null\n}\n");
        let csv = fs::read_to_string(path.join("h.csv")).unwrap();
        assert_eq!(csv, "x,note\n0.1,\"a,\"\"b\"\"\"\n");
        assert_eq!(fs::read(path.join("plots/x.bin")).unwrap(), [1, 2, 3]);
    }

    #[test]
    fn outdir_refuses_non_empty_unless_forced() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("old.txt"), "old").unwrap();
        let err = OutDir::create(tmp.path(), false).unwrap_err();
        assert!(matches!(&err, Error::Usage(m) if m.contains("not empty") && m.contains("--force")));
        let out = OutDir::create(tmp.path(), true).unwrap();
        out.write_text("new.txt", "new").unwrap();
        drop(out);
        assert_eq!(names(tmp.path()), ["new.txt", "old.txt"]);
    }

    #[test]
    fn outdir_accepts_existing_empty_dir_and_never_removes_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("empty");
        fs::create_dir(&path).unwrap();
        drop(OutDir::create(&path, false).unwrap());
        assert!(path.is_dir(), "a directory the user made must stay");
    }

    #[test]
    fn outdir_refuses_a_file_and_an_uncreatable_path() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        fs::write(&file, "x").unwrap();
        let err = OutDir::create(&file, true).unwrap_err();
        assert!(matches!(&err, Error::Usage(m) if m.contains("is a file")), "{err}");
        // Under a file, creation fails even as root (where permissions would not bite).
        let under = file.join("sub/run");
        let err = OutDir::create(&under, false).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Usage(_)));
        assert!(msg.starts_with("cannot create the output directory"), "{msg}");
        assert!(msg.contains(&under.display().to_string()) && msg.contains("os error"), "{msg}");
        assert_eq!(names(tmp.path()), ["f"]);
    }

    #[test]
    fn drop_removes_unused_created_dirs_only() {
        let tmp = tempfile::tempdir().unwrap();
        let unused = tmp.path().join("runs/a/b");
        drop(OutDir::create(&unused, false).unwrap());
        assert!(names(tmp.path()).is_empty(), "all three created levels are removed");

        let used = tmp.path().join("runs/c");
        let out = OutDir::create(&used, false).unwrap();
        out.write_text("x.txt", "x").unwrap();
        drop(out);
        assert_eq!(names(&used), ["x.txt"]);

        // A sibling run keeps the shared parent alive.
        let sibling = tmp.path().join("runs/d");
        drop(OutDir::create(&sibling, false).unwrap());
        assert!(!sibling.exists());
        assert_eq!(names(&tmp.path().join("runs")), ["c"]);
    }

    #[test]
    fn drop_keeps_files_written_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("r");
        let out = OutDir::create(&path, false).unwrap();
        write_atomic(&out.file("chart.svg"), b"<svg/>").unwrap();
        drop(out);
        assert_eq!(names(&path), ["chart.svg"]);
    }

    #[test]
    fn write_refuses_escaping_names() {
        let tmp = tempfile::tempdir().unwrap();
        let out = OutDir::create(&tmp.path().join("r"), false).unwrap();
        for bad in ["../x", "/etc/x", "", "a/../../x"] {
            assert!(matches!(out.write(bad, b"x"), Err(Error::Write { .. })), "{bad}");
        }
    }

    #[test]
    fn csv_numbers_round_trip() {
        for x in [0.1, 1.0 / 3.0, -2.5e-300, 1e300, 123456.0, 1e-5, 9.99e-6, 0.0, -0.0, 5e-324] {
            assert_eq!(csv_num(x).parse::<f64>().unwrap().to_bits(), x.to_bits(), "{x}");
        }
        assert_eq!(csv_num(0.1), "0.1");
        assert_eq!(csv_num(1e-20), "1e-20");
        assert_eq!(csv_num(f64::NAN), "");
        assert_eq!(csv_num(f64::NEG_INFINITY), "-inf");
        assert_eq!(csv_opt(None), "");
        assert_eq!(csv_opt(Some(2.0)), "2");
    }

    #[test]
    fn civil_from_days_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(11_017), (2000, 3, 1));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
    }

    #[test]
    fn civil_from_days_is_consecutive() {
        // Walk 1900..2100 day by day: every step advances the date by exactly one day.
        let mut prev = civil_from_days(-25_567);
        assert_eq!(prev, (1900, 1, 1));
        for days in -25_566..47_482 {
            let next = civil_from_days(days);
            let (y, m, d) = prev;
            let ok = next == (y, m, d + 1) || next == (y, m + 1, 1) || next == (y + 1, 1, 1);
            assert!(ok, "{prev:?} -> {next:?}");
            prev = next;
        }
        assert_eq!(prev, (2099, 12, 31));
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        assert_eq!(utc_stamp(951_782_400), "20000229T000000Z");
        assert_eq!(utc_stamp(1_234_567_890), "20090213T233130Z");
        assert_eq!(utc_stamp(1_700_000_000), "20231114T221320Z");
        assert_eq!(utc_stamp(4_102_444_799), "20991231T235959Z");
        assert!(!utc_stamp(u64::MAX).is_empty(), "no panic at the extreme");
    }

    #[test]
    fn default_run_dir_shape() {
        let p = default_run_dir("train");
        let s = p.to_string_lossy();
        assert!(s.starts_with("runs/train-20") || s.starts_with("runs\\train-20"), "{s}");
        let stamp = &s[11..];
        assert_eq!(stamp.len(), 16, "{s}");
        assert!(stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T', "{s}");
    }
}
