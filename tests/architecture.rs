//! The rules of CONTRIBUTING.md that a program can check: one epoch loop, commands that do not
//! use each other as libraries, a CPU reference independent of the GPU engine, and a guide whose
//! paths exist.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// The source without `//` comments (so prose that names a module does not count).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The command modules: every file of src/cli but the shared argument groups.
fn commands() -> Vec<String> {
    rust_files(&root().join("src/cli"))
        .iter()
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .filter(|n| n != "mod" && n != "args")
        .collect()
}

/// The command modules a file reaches through `super::` or `crate::cli::` (its `use` statements
/// and inline `super::name::` paths).
fn commands_used(text: &str, commands: &[String]) -> Vec<String> {
    let mut used = Vec::new();
    for prefix in ["use super::", "use crate::cli::"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let stmt = &rest[at..rest[at..].find(';').map_or(rest.len(), |e| at + e)];
            for c in commands {
                let named = |tail: &str| stmt.contains(&format!("{c}{tail}"));
                let boundary = stmt.match_indices(c.as_str()).any(|(i, _)| {
                    let before = stmt[..i].chars().last().unwrap_or(' ');
                    !(before.is_alphanumeric() || before == '_')
                });
                if boundary && (named("::") || named(",") || named("}") || named(";")) {
                    used.push(c.clone());
                }
            }
            rest = &rest[at + 1..];
        }
    }
    let inline = |c: &&String| text.contains(&format!("super::{c}::")) || text.contains(&format!("cli::{c}::"));
    used.extend(commands.iter().filter(inline).cloned());
    used.sort();
    used.dedup();
    used
}

#[test]
fn no_command_module_uses_another_command() {
    let commands = commands();
    assert!(commands.len() >= 7, "{commands:?}");
    let mut offences = Vec::new();
    for file in rust_files(&root().join("src/cli")) {
        let me = file.file_stem().unwrap().to_string_lossy().to_string();
        if me == "mod" {
            continue;
        }
        for other in commands_used(&code(&file), &commands).into_iter().filter(|c| *c != me) {
            offences.push(format!("src/cli/{me}.rs uses the {other} command's module"));
        }
    }
    assert!(offences.is_empty(), "commands use each other as libraries: {offences:#?}");
}

#[test]
fn the_import_check_sees_an_import() {
    let commands = vec!["analyze".to_string(), "train".to_string()];
    let text = "use super::{\n    DataArgs,\n    analyze::AnalysisArgs,\n};\nfn f() { super::train::run(); }";
    assert_eq!(commands_used(text, &commands), commands);
    assert!(commands_used("use super::{DataArgs, retrain::X};", &commands).is_empty());
    assert_eq!(commands_used("use crate::cli::{args::RunArgs, train};", &commands), ["train"]);
    assert_eq!(commands_used("fn f() { crate::cli::analyze::run(); }", &commands), ["analyze"]);
}

/// Whether `text` names `word` as an identifier (not inside a longer one).
fn names(text: &str, word: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        !text[..i].chars().next_back().is_some_and(ident) && !text[i + word.len()..].chars().next().is_some_and(ident)
    })
}

#[test]
fn the_cpu_reference_does_not_import_the_gpu_engine() {
    // `crate::gpu::X`, `use crate::{gpu, …}` and `super::super::gpu` all name the module.
    assert!(names("use crate::{engine, gpu};", "gpu") && !names("fn gpu_free() {}", "gpu"));
    for file in rust_files(&root().join("src/cpu")) {
        assert!(!names(&code(&file), "gpu"), "{} imports the GPU engine", file.display());
    }
}

#[test]
fn only_the_driver_loops_over_epochs() {
    // An epoch loop runs `run_epoch` inside a loop over epochs; only the driver may. Callers of
    // `run_epoch` outside it run a single plan (the range test, benchmarks, validation).
    let mut loops = Vec::new();
    for file in rust_files(&root().join("src")) {
        let text = code(&file);
        if text.contains("for epoch in 1..=") {
            loops.push(file.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert_eq!(loops, ["src/driver.rs"], "epoch loops outside the driver");
}

#[test]
fn every_path_contributing_names_exists() {
    let guide = std::fs::read_to_string(root().join("CONTRIBUTING.md")).unwrap();
    let paths: Vec<&str> = guide
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            (s.starts_with("src/") || s.starts_with("shaders/") || s.starts_with("tests/") || s.starts_with("docs/"))
                && !s.contains('<')
        })
        .collect();
    assert!(paths.len() >= 20, "{paths:?}");
    for p in paths {
        assert!(root().join(p).exists(), "CONTRIBUTING.md names {p}, which does not exist");
    }
}
