//! Lists every shader of `shaders/` (kernels) and `shaders/shared/` (the libraries they import)
//! for the binary to embed, and validates each one (with its imports inlined) through naga, the
//! front end wgpu uses, so invalid WGSL fails the build with the file and line instead of failing
//! at run time.

#[path = "src/shader_source/mod.rs"]
#[allow(dead_code, unused_imports)]
mod shader_source;

use std::{fs, path::Path};

fn main() {
    let dir = Path::new("shaders");
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=src/shader_source");
    let read = |name: &str| fs::read_to_string(dir.join(format!("{name}.wgsl"))).ok();
    // The kernels (shaders/*.wgsl), then the libraries they import (shaders/shared/*.wgsl), by the
    // names `compose` reads them by.
    let names: Vec<String> = stems(dir)
        .into_iter()
        .chain(stems(&dir.join(shader_source::SHARED)).iter().map(|s| format!("{}/{s}", shader_source::SHARED)))
        .collect();
    write_list(&names);
    let mut failures = Vec::new();
    for name in &names {
        println!("cargo:rerun-if-changed=shaders/{name}.wgsl");
        if let Err(e) = validate(name, &read) {
            failures.push(e);
        }
    }
    // The generated subgroup kernels, one specialisation per load mode and loss.
    for (p, classes, model, x_u8) in [(784, 2, 0, true), (36, 3, 1, true), (36, 1, 2, false), (5, 1, 3, true)] {
        let spec = shader_source::SubgroupSpec { p, classes, model, x_u8 };
        for (name, text) in [
            ("train_subgroup", shader_source::subgroup_train(&spec, 1)),
            ("train_subgroup", shader_source::subgroup_train(&spec, 2)),
            ("evaluate_subgroup", shader_source::subgroup_evaluate(&spec)),
        ] {
            if let Err(e) = validate_generated(name, &text, &read) {
                failures.push(format!("{spec:?}: {e}"));
            }
        }
    }
    if !failures.is_empty() {
        for f in &failures {
            println!("cargo:warning={}", f.replace('\n', " | "));
        }
        eprintln!("{}", failures.join("\n\n"));
        std::process::exit(1);
    }
}

/// The stems of the `.wgsl` files in `dir`, sorted.
fn stems(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `$OUT_DIR/shaders.rs`: `SHADERS`, every shader's name and text, embedded in the binary
/// (`gpu::kernel::SHADERS`), so a file added to or removed from `shaders/` needs no list kept.
fn write_list(names: &[String]) {
    let root = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let mut out = String::from("/// Every shader of `shaders/` (kernels, then `shared/` libraries): name and text.\n");
    out.push_str("pub const SHADERS: &[(&str, &str)] = &[\n");
    for name in names {
        let path = Path::new(&root).join("shaders").join(format!("{name}.wgsl"));
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("shaders.rs");
    if fs::read_to_string(&dest).ok().as_deref() != Some(out.as_str()) {
        fs::write(&dest, out).expect("OUT_DIR is writable");
    }
}

fn validate(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    check(shader_source::compose(name, read)?)
}

fn validate_generated(name: &str, text: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    check(shader_source::compose_generated(name, text, read)?)
}

fn check(composed: shader_source::Composed) -> Result<(), String> {
    let module = naga::front::wgsl::parse_str(&composed.source).map_err(|e| {
        let line = e.location(&composed.source).map(|l| l.line_number as usize).unwrap_or(0);
        format!("{}: invalid WGSL: {}", composed.locate(line), e.message())
    })?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::SUBGROUP);
    validator.validate(&module).map_err(|e| {
        let line = e.location(&composed.source).map(|l| l.line_number as usize).unwrap_or(0);
        format!("{}: WGSL does not validate: {}", composed.locate(line), e.emit_to_string(&composed.source))
    })?;
    Ok(())
}
