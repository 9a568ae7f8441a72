//! The process-wide stop request: Ctrl-C (SIGINT) and, on Unix, SIGTERM and SIGHUP (sent by
//! `timeout`, job schedulers, `docker stop`, a closed terminal) set a flag that long work polls
//! between units of work, so it can keep what is finished and stop with exit code 130.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the user (or a supervisor) asked the process to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Install the handler: the first signal sets the flag; a second one exits at once with 130
/// (files are written atomically, so none is half-written).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!(
            "\nsteplens: stop requested; finishing the current unit of work and saving what is done (Ctrl-C again to quit now)"
        );
    });
}
