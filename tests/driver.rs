//! The run driver: every command that trains goes through one epoch loop. These tests hold
//! its behaviour to the histories the commands wrote before the driver existed (bit for bit,
//! on the deterministic f64 CPU reference; `tests/fixtures/driver/README.md`), and check on
//! the GPU that a schedule file reproduces the run that wrote it.

use std::{collections::BTreeMap, path::Path, process::Command};

fn steplens(args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).arg("--quiet").output().unwrap();
    assert!(out.status.success(), "steplens {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CSV as rows of column → value, without the `seconds` column (timings differ run to run).
fn table(path: &Path) -> Vec<BTreeMap<String, Option<f64>>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    lines
        .map(|line| {
            header
                .iter()
                .zip(line.split(','))
                .filter(|(h, _)| **h != "seconds" && **h != "method")
                .map(|(h, v)| (h.to_string(), if v.is_empty() { None } else { Some(v.parse().unwrap()) }))
                .collect()
        })
        .collect()
}

fn fixture(name: &str) -> Vec<BTreeMap<String, Option<f64>>> {
    table(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/driver").join(name))
}

fn assert_same(name: &str, got: Vec<BTreeMap<String, Option<f64>>>) {
    let want = fixture(name);
    assert_eq!(got.len(), want.len(), "{name}: row count");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "{name}: row {i} differs from the history before the driver");
    }
}

#[test]
fn train_sweeps_and_schedules_keep_their_histories_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let out = |n: &str| dir.path().join(n).to_str().unwrap().to_string();
    let cpu = ["--device", "cpu"];
    let runs: [(&str, Vec<&str>); 6] = [
        ("train-const", vec!["train", "--epochs", "2", "--lr", "0.5"]),
        ("train-cos", vec!["train", "--epochs", "3", "--schedule", "cosine:2", "--model", "logreg"]),
        ("sweep-lr", vec!["train", "--epochs", "2", "--model", "logreg", "--sweep-lr", "0.01:1:3"]),
        (
            "sweep-seed",
            vec!["train", "--epochs", "2", "--model", "lls", "--lr", "0.01", "--sweep-seed", "2", "--seed", "3"],
        ),
        (
            "sched-epoch",
            vec!["schedule", "--procedure", "notebook", "--epochs", "2", "--sample", "3", "--points", "20"],
        ),
        (
            "sched-online",
            vec![
                "schedule",
                "--procedure",
                "notebook",
                "--epochs",
                "2",
                "--sample",
                "3",
                "--points",
                "20",
                "--mode",
                "online",
                "--every",
                "60",
                "--model",
                "logreg",
            ],
        ),
    ];
    for (name, args) in &runs {
        let o = out(name);
        let mut all = args.clone();
        all.extend(cpu);
        all.extend(["--out", &o]);
        steplens(&all);
        let history = if name.starts_with("sweep") { "sweep-history.csv" } else { "history.csv" };
        assert_same(&format!("{name}-history.csv"), table(&Path::new(&o).join(history)));
        if name.starts_with("sched") {
            assert_same(&format!("{name}-schedule.csv"), table(&Path::new(&o).join("schedule.csv")));
        }
    }
}

#[test]
fn compare_keeps_every_methods_history_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let o = dir.path().join("compare");
    let o = o.to_str().unwrap();
    steplens(&[
        "compare",
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--grid",
        "0.01:1:3",
        "--procedures",
        "none",
        "--local",
        "local;local:center=true,aggregate=max",
        "--sample",
        "3",
        "--points",
        "20",
        "--model",
        "logreg",
        "--out",
        o,
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(o).join("compare.json")).unwrap()).unwrap();
    let num = |v: &serde_json::Value| v.as_f64();
    let mut rows = Vec::new();
    for run in json["runs"][0].as_array().unwrap() {
        for h in run["history"].as_array().unwrap() {
            let mut row = BTreeMap::new();
            row.insert("epoch".to_string(), num(&h["epoch"]));
            for k in ["lr", "train_loss", "train_acc", "test_loss", "test_acc"] {
                row.insert(k.to_string(), num(&h[k]));
            }
            row.insert("grad_evals".to_string(), num(&run["grad_evals"]));
            row.insert("loss_evals".to_string(), num(&run["loss_evals"]));
            rows.push(row);
        }
    }
    assert_same("compare-history.csv", rows);
}

/// The same runs through the driver on the GPU (f32 kernels, whichever path `auto` picks on this
/// adapter) agree with the pre-driver histories of the f64 reference within f32 tolerance.
#[test]
fn the_driver_on_the_gpu_agrees_with_the_reference_histories() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("train-const", vec!["train", "--epochs", "2", "--lr", "0.5"]),
        ("train-cos", vec!["train", "--epochs", "3", "--schedule", "cosine:2", "--model", "logreg"]),
    ] {
        let o = dir.path().join(name);
        let mut all = args.clone();
        all.extend(["--device", "gpu", "--out", o.to_str().unwrap()]);
        steplens(&all);
        let (got, want) = (table(&o.join("history.csv")), fixture(&format!("{name}-history.csv")));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            for (k, v) in w {
                let (a, b) = (g[k].unwrap_or(f64::NAN), v.unwrap_or(f64::NAN));
                let close = (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-4 * b.abs().max(1e-3);
                assert!(close, "{name} {k}: GPU {a} vs reference {b}");
            }
        }
    }
}
