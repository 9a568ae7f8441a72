//! Sharded suites, comparisons and sweeps: shards run as separate processes and merged
//! reproduce the unsharded run; a missing or foreign shard is refused; an interrupted shard
//! resumes; several adapters in one process agree with one.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

const SUITE: &[&str] = &[
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
    "--quiet",
];

fn steplens(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).output().unwrap()
}

fn ok(args: &[&str]) {
    let out = steplens(args);
    assert!(out.status.success(), "steplens {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn suite(extra: &[&str], out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_steplens"));
    c.args(SUITE).args(extra).args(["--out", out.to_str().unwrap()]);
    c
}

/// A file's text with the timings taken out: the `seconds` column of a CSV, `"seconds": …` in
/// JSON, the seconds column (the last) of a Markdown table.
fn without_timings(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy();
    let seconds_column = text.lines().next().and_then(|h| h.split(',').position(|c| c == "seconds"));
    text.lines()
        .map(|l| {
            if name.ends_with(".csv") {
                let mut cells: Vec<&str> = l.split(',').collect();
                if let Some(i) = seconds_column {
                    cells.remove(i);
                }
                cells.join(",")
            } else if name.ends_with(".md") && l.starts_with('|') {
                let cells: Vec<&str> = l.split('|').collect();
                cells[..cells.len().saturating_sub(2)].join("|")
            } else if l.trim_start().starts_with("\"seconds\"") {
                String::new()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const OUTPUTS: [&str; 4] = ["suite.csv", "suite.json", "leaderboard.md", "config.json"];

fn assert_same_outputs(a: &Path, b: &Path) {
    assert_same_files(a, b, &OUTPUTS);
}

fn assert_same_files(a: &Path, b: &Path, files: &[&str]) {
    for f in files {
        assert_eq!(without_timings(&a.join(f)), without_timings(&b.join(f)), "{f} differs between {a:?} and {b:?}");
    }
}

#[test]
fn shards_as_separate_processes_merge_into_the_unsharded_outputs() {
    let tmp = shards_reproduce_the_whole_run(SUITE, &OUTPUTS);
    let dir = |n: &str| tmp.path().join(n);
    // Refused with a sentence and exit 1: a missing shard, a shard twice, a foreign shard.
    let refused = |args: &[&str], says: &str| {
        let out = steplens(args);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{args:?}: {err}");
    };
    let s = |n: &str| dir(n).to_str().unwrap().to_string();
    refused(&["merge", &s("n3-s1"), &s("n3-s2"), "--out", &s("m1")], "1 missing");
    refused(&["merge", &s("n3-s1"), &s("n3-s2"), &s("n3-s2"), "--out", &s("m2")], "both shard 2/3");
    refused(&["merge", &s("n3-s1"), &s("n3-s2"), &s("n2-s2"), "--out", &s("m3")], "differ in the shard");
    assert!(suite(&["--shard", "3/3", "--batch-size", "16"], &dir("foreign")).status().unwrap().success());
    refused(&["merge", &s("n3-s1"), &s("n3-s2"), &s("foreign"), "--out", &s("m4")], "differ in the setting `members`");
}

#[test]
fn an_interrupted_shard_resumes_with_only_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, shard) = (tmp.path().join("whole"), tmp.path().join("shard"));
    assert!(suite(&[], &whole).status().unwrap().success());
    assert!(suite(&["--shard", "1/1"], &shard).status().unwrap().success());
    // Take one finished job away, as if the shard had been stopped before it.
    let jobs = shard.join("jobs");
    let kept = jobs.join("00000.json");
    let before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    std::fs::remove_file(jobs.join("00003.json")).unwrap();
    assert!(suite(&["--shard", "1/1", "--resume"], &shard).status().unwrap().success());
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), before, "a finished job ran again");
    assert!(jobs.join("00003.json").exists());
    assert_same_outputs(&whole, &shard);
    // --resume refuses a directory of another run.
    let out = suite(&["--shard", "1/1", "--resume", "--batch-size", "16"], &shard).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("another run or shard"));
}

#[cfg(unix)]
#[test]
fn a_stopped_shard_keeps_its_finished_jobs_and_exits_130() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = tmp.path().join("shard");
    let mut child = suite(&["--shard", "1/1"], &shard).spawn().unwrap();
    let first = shard.join("jobs/00000.json");
    let started = std::time::Instant::now();
    while !first.exists() && started.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(first.exists(), "no job finished in 120 s");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    let finished = std::fs::read_dir(shard.join("jobs")).unwrap().count();
    if status.success() {
        // The shard finished every job before the signal arrived: nothing to check.
        assert_eq!(finished, 4);
        return;
    }
    assert_eq!(status.code(), Some(130));
    assert!((1..4).contains(&finished), "{finished} jobs kept");
    assert!(suite(&["--shard", "1/1", "--resume"], &shard).status().unwrap().success());
    assert_eq!(std::fs::read_dir(shard.join("jobs")).unwrap().count(), 4);
}

#[test]
fn every_adapter_of_the_host_runs_jobs_and_agrees_with_one() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, all) = (tmp.path().join("one"), tmp.path().join("all"));
    assert!(suite(&[], &one).status().unwrap().success());
    let out = suite(&["--adapters", "all"], &all).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let adapters: std::collections::BTreeSet<String> = std::fs::read_dir(all.join("jobs"))
        .unwrap()
        .map(|e| {
            let v: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap();
            v["adapter"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(adapters.len() >= 2, "jobs ran on {adapters:?}: this machine has lavapipe (Vulkan) and llvmpipe (GL)");
    // The same numbers within the validation tolerance: f32 rounding differs between kernels.
    let losses = |d: &Path| -> Vec<f64> {
        let text = std::fs::read_to_string(d.join("suite.csv")).unwrap();
        text.lines().skip(1).map(|l| l.split(',').nth(11).unwrap().parse().unwrap()).collect()
    };
    for (a, b) in losses(&one).iter().zip(losses(&all)) {
        assert!(a == &b || (a - b).abs() <= 1e-4 * a.abs(), "{a} vs {b}");
    }
}

/// Runs `command` whole (into `whole`) and as N = 1, 2, 3 shards in separate processes (into
/// `nN-sK`), merges each N (into `merged-N`), and checks that the merged `files` are the whole
/// run's (timings aside). Returns the directory holding them all.
fn shards_reproduce_the_whole_run(command: &[&str], files: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n);
    let run = |extra: &[&str], out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_steplens"));
        c.args(command).args(extra).args(["--out", out.to_str().unwrap()]);
        if !command.contains(&"--quiet") {
            c.arg("--quiet");
        }
        c
    };
    let whole = run(&[], &dir("whole")).output().unwrap();
    assert!(whole.status.success(), "{command:?}: {}", String::from_utf8_lossy(&whole.stderr));
    for n in 1..=3 {
        let shards: Vec<PathBuf> = (1..=n).map(|k| dir(&format!("n{n}-s{k}"))).collect();
        let mut children: Vec<_> = shards
            .iter()
            .enumerate()
            .map(|(k, d)| run(&["--shard", &format!("{}/{n}", k + 1)], d).spawn().unwrap())
            .collect();
        for c in &mut children {
            assert!(c.wait().unwrap().success(), "{command:?} shard of {n}");
        }
        let merged = dir(&format!("merged-{n}"));
        let mut args = vec!["merge"];
        args.extend(shards.iter().map(|d| d.to_str().unwrap()));
        args.extend(["--out", merged.to_str().unwrap()]);
        ok(&args);
        assert_same_files(&dir("whole"), &merged, files);
    }
    tmp
}

#[test]
fn a_sharded_comparison_over_seeds_merges_into_the_unsharded_outputs() {
    // Three jobs (seeds 4, 5, 6): with three shards each runs one.
    let compare = [
        "compare",
        "--device",
        "gpu",
        "--seeds",
        "3",
        "--seed",
        "4",
        "--epochs",
        "2",
        "--grid",
        "1e-2:1:3",
        "--procedures",
        "pcg",
    ];
    shards_reproduce_the_whole_run(&compare, &["compare.csv", "compare.json", "report.md", "config.json"]);
}

#[test]
fn a_sharded_sweep_merges_into_the_unsharded_outputs() {
    // 40 runs are three jobs of up to 16 runs; the unsharded sweep trains all 40 side by side.
    let lr = ["train", "--device", "gpu", "--epochs", "2", "--sweep-lr", "1e-3:10:40"];
    shards_reproduce_the_whole_run(&lr, &["sweep.csv", "sweep-history.csv", "config.json"]);
    let seeds = ["train", "--device", "gpu", "--epochs", "1", "--sweep-seed", "20"];
    shards_reproduce_the_whole_run(&seeds, &["sweep.csv", "sweep-history.csv", "config.json"]);
}

#[test]
fn only_sweeps_of_train_are_sharded() {
    let out = steplens(&["train", "--shard", "1/2", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--sweep-lr or --sweep-seed") && err.lines().count() == 1, "{err}");
}

#[test]
fn an_interrupted_comparison_resumes_with_only_the_missing_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, resumed) = (tmp.path().join("whole"), tmp.path().join("resumed"));
    let compare = |extra: &[&str], out: &Path| {
        let mut args = vec!["compare", "--device", "gpu", "--seeds", "2", "--epochs", "1", "--grid", "1e-2:1:2"];
        args.extend(["--procedures", "none", "--quiet", "--out", out.to_str().unwrap()]);
        args.extend(extra);
        ok(&args);
    };
    compare(&[], &whole);
    compare(&[], &resumed);
    let kept = resumed.join("jobs/00000.json");
    let before = std::fs::metadata(&kept).unwrap().modified().unwrap();
    std::fs::remove_file(resumed.join("jobs/00001.json")).unwrap();
    compare(&["--resume"], &resumed);
    assert_eq!(std::fs::metadata(&kept).unwrap().modified().unwrap(), before, "a finished seed ran again");
    assert_same_files(&whole, &resumed, &["compare.csv", "compare.json", "report.md", "config.json"]);
}
