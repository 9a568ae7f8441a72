//! The process-wide stop request: Ctrl-C (and, where the platform has it, SIGTERM) sets a flag
//! that long work polls between units of work, so it can keep what is finished and stop.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Whether the user asked the process to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Install the handler: the first signal sets the flag; a second one exits at once (files are
/// written atomically, so none is half-written).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nsteplens: interrupted; finishing the current unit of work and saving (Ctrl-C again to quit now)");
    });
}
