//! A progress bar on stderr (indicatif) that stays out of the way: hidden when stderr is not
//! a terminal (logs, pipes, CI) and when the user asked for quiet (`--quiet` or the
//! `STEPLENS_QUIET` environment variable), so callers never branch on either.

use std::borrow::Cow;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The environment variable that silences progress bars when set to anything but `""`/`0`.
pub const QUIET_ENV: &str = "STEPLENS_QUIET";

const TEMPLATE: &str = "{prefix} [{bar:32}] {pos}/{len}  {elapsed} < {eta}  {msg}";

/// A labelled progress bar with elapsed time, ETA and a free-form message.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl Progress {
    /// A bar counting to `total`, shown unless stderr is not a terminal or [`QUIET_ENV`] is set.
    pub fn new(total: u64, label: &str) -> Progress {
        Progress::with_quiet(total, label, false)
    }

    /// As [`Progress::new`], also hidden when `quiet` (the command's `--quiet` flag).
    pub fn with_quiet(total: u64, label: &str, quiet: bool) -> Progress {
        let quiet = quiet || env_quiet();
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        let bar = ProgressBar::with_draw_target(Some(total), target);
        // The template is a constant known to parse; the fallback only guards against a
        // future indicatif rejecting it, which must not become a panic.
        let style = ProgressStyle::with_template(TEMPLATE)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar, quiet }
    }

    /// Advances by `delta` steps.
    pub fn inc(&self, delta: u64) {
        self.bar.inc(delta);
    }

    /// Replaces the message shown after the ETA (e.g. the current loss).
    pub fn set_message(&self, msg: impl Into<Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    /// Prints a line on stderr above the bar without garbling it; a plain line when the bar
    /// is hidden because stderr is not a terminal, and nothing when quiet.
    pub fn println(&self, line: &str) {
        if self.quiet {
            return;
        }
        if self.bar.is_hidden() {
            eprintln!("{line}");
        } else {
            self.bar.println(line);
        }
    }

    /// Stops the clock and leaves the bar on screen as it stands: a run that stopped early
    /// shows where it stopped (indicatif's own `finish` would jump to 100%).
    pub fn finish(&self) {
        self.bar.abandon();
    }

    /// Whether nothing is drawn.
    pub fn is_hidden(&self) -> bool {
        self.bar.is_hidden()
    }

    /// The steps done so far.
    pub fn position(&self) -> u64 {
        self.bar.position()
    }
}

fn env_quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
        || std::env::var_os(QUIET_ENV).is_some_and(|v| !v.is_empty() && v != "0")
}

/// The process-wide `--quiet`, set once by the CLI: progress bars (the download's included) and
/// notices stay silent.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes every later bar and notice of this process silent (`--quiet`), or not.
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, std::sync::atomic::Ordering::Relaxed);
}

/// Whether bars and notices are silenced (`--quiet` or [`QUIET_ENV`]).
pub fn is_quiet() -> bool {
    env_quiet()
}

/// A notice on stderr (`steplens: …`), unless quiet: something the user should know that is not
/// an error (a skipped CSV header, a cached file replaced).
pub fn notice(msg: &str) {
    if !is_quiet() {
        eprintln!("steplens: {msg}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_bar_is_hidden_and_counts() {
        let p = Progress::with_quiet(10, "train", true);
        assert!(p.is_hidden());
        p.inc(3);
        p.set_message("loss 0.31");
        p.set_message(format!("loss {}", 0.25));
        p.println("not shown");
        p.finish();
        assert_eq!(p.position(), 3);
    }

    #[test]
    fn test_harness_stderr_is_not_a_terminal_or_bar_works() {
        // Under `cargo test` stderr is captured (not a terminal) in CI; either way no panic.
        let p = Progress::new(0, "empty");
        p.inc(1);
        p.finish();
        if !std::io::stderr().is_terminal() {
            assert!(p.is_hidden());
        }
    }
}
