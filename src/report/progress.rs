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
}

impl Progress {
    /// A bar counting to `total`, shown unless stderr is not a terminal, [`QUIET_ENV`] is set or
    /// `quiet` (the command's `--quiet` flag).
    pub fn with_quiet(total: u64, label: &str, quiet: bool) -> Progress {
        let quiet = quiet || env_quiet();
        let target = if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress::with_target(total, label, target)
    }

    /// A bar drawn on `target` (tests draw on a simulated terminal).
    #[doc(hidden)]
    pub fn with_target(total: u64, label: &str, target: ProgressDrawTarget) -> Progress {
        let bar = ProgressBar::with_draw_target(Some(total), target);
        // The template is a constant known to parse; the fallback only guards against a
        // future indicatif rejecting it, which must not become a panic.
        let style = ProgressStyle::with_template(TEMPLATE)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        Progress { bar }
    }

    /// Advances by `delta` steps.
    pub fn inc(&self, delta: u64) {
        self.bar.inc(delta);
    }

    /// Replaces the message shown after the ETA (e.g. the current loss).
    pub fn set_message(&self, msg: impl Into<Cow<'static, str>>) {
        self.bar.set_message(msg);
    }

    /// Stops the clock and clears the bar from the screen, so that what the command prints next
    /// (a table, a message) starts on a clean line.
    pub fn finish(&self) {
        if !self.bar.is_finished() {
            self.bar.finish_and_clear();
        }
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

    /// A terminal screen as a list of lines and a cursor, enough for indicatif's drawing.
    #[derive(Debug, Default, Clone)]
    struct Screen(std::sync::Arc<std::sync::Mutex<(Vec<String>, usize)>>);

    impl Screen {
        fn with<R>(&self, f: impl FnOnce(&mut Vec<String>, &mut usize) -> R) -> R {
            let mut g = self.0.lock().unwrap();
            let (lines, row) = &mut *g;
            if lines.len() <= *row {
                lines.resize(*row + 1, String::new());
            }
            f(lines, row)
        }
    }

    impl indicatif::TermLike for Screen {
        fn width(&self) -> u16 {
            100
        }
        fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
            self.with(|_, row| *row = row.saturating_sub(n));
            Ok(())
        }
        fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
            self.with(|_, row| *row += n);
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> std::io::Result<()> {
            self.with(|lines, row| {
                lines[*row].push_str(s);
                *row += 1;
            });
            Ok(())
        }
        fn write_str(&self, s: &str) -> std::io::Result<()> {
            self.with(|lines, row| lines[*row].push_str(s));
            Ok(())
        }
        fn clear_line(&self) -> std::io::Result<()> {
            self.with(|lines, row| lines[*row].clear());
            Ok(())
        }
        fn flush(&self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn finish_clears_the_bar_so_a_table_starts_on_a_clean_line() {
        let screen = Screen::default();
        let p = Progress::with_target(6, "train", ProgressDrawTarget::term_like(Box::new(screen.clone())));
        p.inc(2);
        p.bar.tick();
        assert!(screen.with(|lines, _| lines.iter().any(|l| l.contains("train ["))), "the bar was drawn");
        p.finish();
        screen.with(|lines, row| {
            assert!(lines.iter().all(|l| !l.contains("train [")), "the bar is still on screen: {lines:?}");
            assert!(lines[*row].is_empty(), "the cursor is on a used line: {lines:?}");
        });
    }

    #[test]
    fn quiet_bar_is_hidden_and_counts() {
        let p = Progress::with_quiet(10, "train", true);
        assert!(p.bar.is_hidden());
        p.inc(3);
        p.set_message("loss 0.31");
        p.set_message(format!("loss {}", 0.25));
        assert_eq!(p.bar.position(), 3);
        p.finish();
        assert!(p.bar.is_finished());
    }

    #[test]
    fn test_harness_stderr_is_not_a_terminal_or_bar_works() {
        // Under `cargo test` stderr is captured (not a terminal) in CI; either way no panic.
        let p = Progress::with_quiet(0, "empty", false);
        p.inc(1);
        p.finish();
        if !std::io::stderr().is_terminal() {
            assert!(p.bar.is_hidden());
        }
    }
}
