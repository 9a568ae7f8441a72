//! Errors of the library. Every variant renders as one sentence a user can act on; the binary
//! maps usage errors to exit code 2 and everything else to exit code 1.

use std::path::PathBuf;

/// Problems with input files (IDX, CSV, npy, schedule files, downloads).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },
    #[error("{path} has SHA-256 {actual}, expected {expected}: the file is corrupt or not the original")]
    Checksum { path: PathBuf, expected: String, actual: String },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the digit list {digits:?} is not usable: {reason}")]
    Digits { digits: Vec<u8>, reason: String },
}

impl DataError {
    pub fn invalid(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Invalid { path: path.into(), reason: reason.into() }
    }
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), source }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A command-line value that cannot work (exit code 2).
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Data(#[from] DataError),
    /// No adapter, lost device, out of memory, a timed-out wait.
    #[error("GPU: {0}")]
    Gpu(String),
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("training diverged in epoch {epoch} at learning rate {}: {what}", crate::report::table::fmt_num(*lr, 6))]
    Diverged { epoch: usize, lr: f64, what: String },
    #[error("interrupted by the user after {completed} completed epoch(s)")]
    Interrupted { completed: usize },
    /// A stop request (Ctrl-C, SIGTERM) honoured by a command whose unit of work is not an
    /// epoch: `done` says what was finished and kept ("12 of 395 batches, written to runs/x").
    #[error("interrupted by the user after {done}")]
    Stopped { done: String },
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
    pub fn gpu(msg: impl Into<String>) -> Self {
        Error::Gpu(msg.into())
    }
    /// The process exit code: 2 for usage errors, 130 for a honoured stop request (as a shell
    /// reports a process ended by SIGINT), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::Interrupted { .. } | Error::Stopped { .. } => 130,
            _ => 1,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
