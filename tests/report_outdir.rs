//! A run's output directory as the commands use it: create, write every kind of output, drop.

use std::fs;
use std::path::Path;

use serde::Serialize;
use steplens::report::files::{OutDir, csv_num, csv_opt};
use steplens::report::plot::{Chart, Series, render_png, render_svg};
use steplens::report::table::{Table, fmt_num};
use steplens::{Error, Result};

#[derive(Serialize)]
struct Summary {
    schedule: &'static str,
    final_loss: f64,
    epochs: usize,
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// What a command does with its directory: every output kind once.
fn write_run(out: &OutDir, history: &[(usize, f64, Option<f64>)]) -> Result<()> {
    let rows = history.iter().map(|&(e, loss, acc)| vec![e.to_string(), csv_num(loss), csv_opt(acc)]);
    out.write_csv("history.csv", &["epoch", "train_loss", "test_accuracy"], rows)?;
    let last = history.last().map_or(f64::NAN, |h| h.1);
    out.write_json("summary.json", &Summary { schedule: "cosine", final_loss: last, epochs: history.len() })?;
    let mut table = Table::new(["epoch", "train loss"]);
    for &(e, loss, _) in history {
        table.row(vec![e.to_string(), fmt_num(loss, 4)]);
    }
    out.write_text("report.md", &format!("# Run\n\n{}", table.to_markdown()))?;
    let chart = Chart::new("Training loss", "epoch", "loss")
        .log_y()
        .with_series(Series::line_points("cosine", history.iter().map(|h| (h.0 as f64, h.1)).collect()));
    out.write("plots/loss.png", &render_png(&chart)?)?;
    out.write_text("plots/loss.svg", &render_svg(&chart)?)
}

#[test]
fn a_run_writes_all_its_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runs/train-20240101T000000Z");
    let out = OutDir::create(&path, false).unwrap();
    write_run(&out, &[(1, 0.5, Some(0.9)), (2, 0.1, None), (3, 1.0 / 3.0, Some(0.995))]).unwrap();
    drop(out);
    assert_eq!(names(&path), ["history.csv", "plots", "report.md", "summary.json"]);
    assert_eq!(names(&path.join("plots")), ["loss.png", "loss.svg"]);
    let csv = fs::read_to_string(path.join("history.csv")).unwrap();
    assert_eq!(csv, "epoch,train_loss,test_accuracy\n1,0.5,0.9\n2,0.1,\n3,0.3333333333333333,0.995\n");
    let json: serde_json::Value = serde_json::from_slice(&fs::read(path.join("summary.json")).unwrap()).unwrap();
    assert_eq!(json["final_loss"].as_f64(), Some(1.0 / 3.0), "JSON floats round-trip");
    let md = fs::read_to_string(path.join("report.md")).unwrap();
    assert!(md.contains("| epoch | train loss |\n| ----: | ---------: |\n|     1 |        0.5 |"), "{md}");
}

#[test]
fn a_run_that_fails_before_writing_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("runs/train-x");
    let run = || -> Result<()> {
        let _out = OutDir::create(&path, false)?;
        Err(Error::Runtime("the GPU went away".into()))
    };
    assert!(run().is_err());
    assert!(names(tmp.path()).is_empty(), "neither runs/ nor runs/train-x remain");
}

#[test]
fn a_second_run_into_the_same_directory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = OutDir::create(tmp.path(), false).unwrap();
    write_run(&out, &[(1, 0.5, None)]).unwrap();
    drop(out);
    let err = OutDir::create(tmp.path(), false).unwrap_err();
    assert_eq!(err.exit_code(), 2, "a usage error: {err}");
    assert!(OutDir::create(tmp.path(), true).is_ok());
}

/// Two runs into one directory at the same time: the second fails at once, naming the first;
/// the lock goes with the first run.
#[test]
fn a_directory_in_use_is_locked() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("run");
    let first = OutDir::create(&path, false).unwrap();
    assert!(path.join(steplens::report::files::LOCK_FILE).exists());
    for force in [false, true] {
        let err = OutDir::create(&path, force).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.exit_code(), 2, "{text}");
        assert!(
            text.contains("is in use by steplens process") && text.contains(&std::process::id().to_string()),
            "{text}"
        );
    }
    write_run(&first, &[(1, 0.5, None)]).unwrap();
    // The refused attempts removed neither the lock nor anything else.
    assert!(path.join(steplens::report::files::LOCK_FILE).exists());
    drop(first);
    assert_eq!(names(&path), ["history.csv", "plots", "report.md", "summary.json"], "no lock file left");
    assert!(OutDir::create(&path, true).is_ok(), "free again once the first run is over");
    // An empty directory the first run made and left empty is removed with its lock.
    let second = tmp.path().join("empty");
    drop(OutDir::create(&second, false).unwrap());
    assert!(!second.exists());
}

/// A directory that exists but cannot be written is found when it is opened, before any work.
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_directory_is_refused_when_opened() {
    let err = OutDir::create(Path::new("/proc"), true).unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("cannot write into the output directory /proc"), "{err}");
}
