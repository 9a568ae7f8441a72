//! Validates every `shaders/*.wgsl` (with its imports inlined) through naga, the front end wgpu
//! uses, so invalid WGSL fails the build with the file and line instead of failing at run time.

#[path = "src/shader_source.rs"]
mod shader_source;

use std::{fs, path::Path};

fn main() {
    let dir = Path::new("shaders");
    println!("cargo:rerun-if-changed=shaders");
    println!("cargo:rerun-if-changed=src/shader_source.rs");
    let read = |name: &str| fs::read_to_string(dir.join(format!("{name}.wgsl"))).ok();
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wgsl"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut failures = Vec::new();
    for name in &names {
        println!("cargo:rerun-if-changed=shaders/{name}.wgsl");
        if let Err(e) = validate(name, &read) {
            failures.push(e);
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

fn validate(name: &str, read: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
    let composed = shader_source::compose(name, read)?;
    let module = naga::front::wgsl::parse_str(&composed.source).map_err(|e| {
        let line = e.location(&composed.source).map(|l| l.line_number as usize).unwrap_or(0);
        format!("{}: invalid WGSL: {}", composed.locate(line), e.message())
    })?;
    let mut validator =
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default());
    validator.validate(&module).map_err(|e| {
        let line = e.location(&composed.source).map(|l| l.line_number as usize).unwrap_or(0);
        format!("{}: WGSL does not validate: {}", composed.locate(line), e.emit_to_string(&composed.source))
    })?;
    Ok(())
}
