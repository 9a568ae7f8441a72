//! The `steplens` binary: the CLI in `steplens::cli`, its exit code.

fn main() {
    quiet_headless_wayland();
    std::process::exit(steplens::cli::main());
}

/// Mesa's Vulkan and GL drivers probe for a Wayland display; on a headless machine without
/// XDG_RUNTIME_DIR libwayland prints "XDG_RUNTIME_DIR is invalid or not set" on every probe.
/// Point it at the temp dir (no Wayland socket there, so the probe fails quietly).
fn quiet_headless_wayland() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() && std::env::var_os("WAYLAND_DISPLAY").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir()) };
    }
}
