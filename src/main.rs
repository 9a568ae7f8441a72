//! The `steplens` binary: the CLI in `steplens::cli`, its exit code.

fn main() {
    std::process::exit(steplens::cli::main());
}
