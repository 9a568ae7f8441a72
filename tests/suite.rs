//! The benchmark suite and what it relies on: one `--seed` fixes the initialisation and the
//! batch order in `train`, a seed sweep and `schedule` alike; `--standardize` is recorded;
//! `compare --seeds` and `suite` write their summaries.

use std::{path::Path, process::Command};

fn steplens(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).arg("--quiet").output().unwrap();
    assert!(out.status.success(), "steplens {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(String::from)
        .collect()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Row 0 of a history (the initial model's losses: the same initialisation gives the same row).
fn row0(history: &Path) -> Vec<String> {
    lines(history)[1].split(',').skip(2).take(4).map(String::from).collect()
}

#[test]
fn one_seed_gives_the_same_initialisation_and_batches_in_train_a_sweep_and_schedule() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n);
    let gpu = ["--device", "gpu", "--epochs", "1", "--model", "logreg"];
    let run = |name: &str, extra: &[&str]| {
        let out = dir(name);
        let mut args: Vec<&str> = extra.to_vec();
        args.extend(gpu);
        args.extend(["--out", out.to_str().unwrap()]);
        steplens(&args);
    };
    run("train", &["train", "--seed", "7"]);
    run("sweep", &["train", "--seed", "6", "--sweep-seed", "2"]);
    run("schedule", &["schedule", "--seed", "7"]);
    run("other", &["train", "--seed", "8"]);
    let train = row0(&dir("train").join("history.csv"));
    assert_eq!(train, row0(&dir("schedule").join("history.csv")), "schedule: same θ₀ as train");
    let sweep: Vec<String> = lines(&dir("sweep").join("sweep-history.csv"))
        .iter()
        .filter(|l| l.starts_with("1,0,"))
        .flat_map(|l| l.split(',').skip(3).take(4).map(String::from).collect::<Vec<_>>())
        .collect();
    assert_eq!(train, sweep, "the sweep's run with seed 7: same θ₀ as train");
    assert_ne!(train, row0(&dir("other").join("history.csv")), "another seed, another θ₀");
    let batches = |d: &str| std::fs::read(dir(d).join("batches.npy")).unwrap();
    assert_eq!(batches("train"), batches("schedule"), "same batch order");
    assert_ne!(batches("train"), batches("other"));
}

#[test]
fn standardize_is_applied_and_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bc");
    let o = out.to_str().unwrap();
    steplens(&[
        "train",
        "--device",
        "gpu",
        "--dataset",
        "breast_cancer",
        "--model",
        "logreg",
        "--standardize",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--lr",
        "0.5",
        "--out",
        o,
    ]);
    let config = json(&out.join("config.json"));
    let z = &config["standardization"];
    assert_eq!(z["mean"].as_array().unwrap().len(), 30);
    assert!(z["target_mean"].is_null(), "a classifier's target stays as it is");
    // What --kernels resolved to on this adapter, and why.
    let path = config["kernels_resolved"]["path"].as_str().unwrap_or_default().to_string();
    assert!(["subgroup", "fused", "unfused"].contains(&path.as_str()), "{}", config["kernels_resolved"]);
    assert!(config["kernels_resolved"]["why"].as_str().is_some_and(|w| !w.is_empty()));
    // Raw features (areas in the hundreds) at lr 0.5 would not train this well.
    let last: f64 = lines(&out.join("history.csv")).last().unwrap().split(',').nth(2).unwrap().parse().unwrap();
    assert!(last < 0.2, "final training loss {last}");
    let raw = tmp.path().join("raw");
    steplens(&[
        "train",
        "--device",
        "gpu",
        "--dataset",
        "breast_cancer",
        "--model",
        "logreg",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--out",
        raw.to_str().unwrap(),
    ]);
    assert!(json(&raw.join("config.json"))["standardization"].is_null());
}

const SUMMARY: &str =
    "dataset,model,method,seeds,diverged_seeds,ratio_median,ratio_q1,ratio_q3,test_loss_median,grad_evals_ratio";

#[test]
fn compare_over_seeds_and_the_suite_write_their_summaries() {
    let tmp = tempfile::tempdir().unwrap();
    let cmp = tmp.path().join("cmp");
    steplens(&[
        "compare",
        "--device",
        "gpu",
        "--model",
        "lls",
        "--epochs",
        "1",
        "--seeds",
        "2",
        "--grid",
        "1e-3:0.03:3",
        "--procedures",
        "pcg",
        "--out",
        cmp.to_str().unwrap(),
    ]);
    let csv = lines(&cmp.join("compare.csv"));
    assert!(csv[0].starts_with(SUMMARY), "{}", csv[0]);
    let names: Vec<&str> = csv[1..].iter().map(|l| l.split(',').nth(2).unwrap()).collect();
    assert_eq!(
        names,
        [
            "constant:0.001",
            "constant:0.00548",
            "constant:0.03",
            "notebook:0.005",
            "step",
            "cosine",
            "inv-t",
            "range-test",
            "sps",
            "armijo",
            "schedule"
        ]
    );
    assert!(csv[1..].iter().all(|l| l.split(',').nth(3) == Some("2")), "two seeds each");
    for f in ["compare.json", "curves.png", "curves.svg", "lr.png", "report.md", "config.json"] {
        assert!(cmp.join(f).exists(), "{f}");
    }
    let suite = tmp.path().join("suite");
    steplens(&[
        "suite",
        "--device",
        "gpu",
        "--members",
        "diabetes,breast_cancer",
        "--seeds",
        "2",
        "--epochs",
        "2",
        "--grid",
        "1e-2:1:3",
        "--procedures",
        "pcg",
        "--out",
        suite.to_str().unwrap(),
    ]);
    let csv = lines(&suite.join("suite.csv"));
    assert!(csv[0].starts_with(SUMMARY));
    let members: std::collections::BTreeSet<(String, String)> = csv[1..]
        .iter()
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            (c[0].to_string(), c[1].to_string())
        })
        .collect();
    let want: std::collections::BTreeSet<(String, String)> = [("breast_cancer", "logreg"), ("diabetes", "lls")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(members, want);
    let board = std::fs::read_to_string(suite.join("leaderboard.md")).unwrap();
    assert!(board.contains("| schedule") && board.contains("### diabetes:lls"), "{board}");
    for f in ["suite.png", "suite.svg", "suite.json", "config.json"] {
        assert!(suite.join(f).exists(), "{f}");
    }
}
