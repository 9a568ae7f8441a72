//! Stop requests: SIGTERM (sent by `timeout`, job schedulers, `docker stop`) and SIGINT (Ctrl-C)
//! sent to a running command stop it within one unit of work, keep what is finished, and exit
//! with 130.
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Starts the binary with stderr piped; its lines arrive on the returned channel.
/// `train` of least squares on `csv` for far more epochs than a test waits for, into `out`.
fn spawn_long_train(csv: &str, out: &str) -> (Child, mpsc::Receiver<String>) {
    let args = ["train", "--model", "lls", "--data", csv, "--lr", "0.1", "--batch-size", "10", "--epochs", "100000"];
    let mut all = args.to_vec();
    all.extend(["--device", "gpu", "--out", out]);
    spawn(&all)
}

fn spawn(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_steplens"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (child, rx)
}

fn signal(child: &Child, name: &str) {
    let ok = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill -{name} failed");
}

/// The exit code, or a panic (after killing the child) when it takes longer than `limit`.
fn wait(child: &mut Child, limit: Duration) -> i32 {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("the process did not stop within {limit:?} of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `f` holds (polling), at most `limit`.
fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn lls_csv(dir: &Path) -> String {
    let mut s = String::from("x0,x1,y\n");
    for i in 0..200 {
        let (a, b) = ((i % 17) as f64 / 17.0, (i % 11) as f64 / 11.0);
        s.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 0.5));
    }
    let p = dir.join("lls.csv");
    std::fs::write(&p, s).unwrap();
    p.display().to_string()
}

#[test]
fn sigterm_stops_train_and_keeps_the_finished_epochs_and_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = lls_csv(tmp.path());
    let out = tmp.path().join("run");
    let (mut child, _err) = spawn_long_train(&csv, out.to_str().unwrap());
    until(Duration::from_secs(120), "three epochs in history.csv", || lines(&out.join("history.csv")) >= 4);
    signal(&child, "TERM");
    assert_eq!(wait(&mut child, Duration::from_secs(30)), 130);
    let epochs = lines(&out.join("history.csv")) - 2;
    assert!((3..100000).contains(&epochs), "{epochs} epochs kept");
    for f in ["config.json", "history.json", "weights.npy", "bias.npy", "batches.npy"] {
        assert!(out.join(f).exists(), "{f} is kept");
    }
    let w = steplens::data::npy::read_f32(&out.join("weights.npy")).unwrap().1;
    assert!(w.len() == 2 && w.iter().all(|v| v.is_finite()));
}

/// Ctrl-C (SIGINT) and SIGTERM to `analyze`: the batches analysed so far are written as a
/// complete analysis (config.json counts them) and the process exits 130.
#[test]
fn signals_stop_analyze_and_keep_the_finished_batches() {
    for sig in ["INT", "TERM"] {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        // MNIST 0/1 at b = 4: 3,166 batches, far more than the seconds before the signal.
        let (mut child, err) = spawn(&[
            "analyze",
            "--batch-size",
            "4",
            "--points",
            "48",
            "--device",
            "gpu",
            "--out",
            out.to_str().unwrap(),
        ]);
        let mut seen = Vec::new();
        until(Duration::from_secs(120), "the adapter notice", || {
            seen.extend(err.try_iter());
            seen.iter().any(|l| l.contains("computing on"))
        });
        std::thread::sleep(Duration::from_millis(500));
        signal(&child, sig);
        assert_eq!(wait(&mut child, Duration::from_secs(60)), 130, "SIG{sig}");
        seen.extend(err.try_iter());
        let text = seen.join("\n");
        assert!(text.contains("interrupted by the user after") && text.contains("of 3166 batches"), "{text}");
        let rows = lines(&out.join("analysis.csv")) - 1;
        assert!((1..3166).contains(&rows), "SIG{sig}: {rows} batches kept");
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["batches"], rows, "config.json counts the batches written");
        for f in ["q.npy", "spectrum.npy", "projection.npy", "batches.npy", "projection.png"] {
            assert!(out.join(f).exists(), "SIG{sig}: {f} is kept");
        }
    }
}

/// `bench` stops between two timed repeats; its report is one unit, so nothing is written.
#[test]
fn sigterm_stops_bench() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("bench.json");
    let (mut child, _err) = spawn(&[
        "bench",
        "--repeats",
        "100000",
        "--sweep-runs",
        "2",
        "--no-analysis",
        "--device",
        "gpu",
        "--json",
        json.to_str().unwrap(),
    ]);
    std::thread::sleep(Duration::from_secs(3));
    signal(&child, "TERM");
    assert_eq!(wait(&mut child, Duration::from_secs(60)), 130);
    assert!(!json.exists(), "no partial report");
}

/// A second run into the directory of a running one fails at once (exit 2), naming the first.
#[test]
fn a_second_process_cannot_write_into_a_running_runs_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = lls_csv(tmp.path());
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let (mut child, _err) = spawn_long_train(&csv, o);
    until(Duration::from_secs(120), "the first epoch", || lines(&out.join("history.csv")) >= 3);
    for cmd in [&["train", "--model", "lls", "--data", &csv][..], &["analyze"][..]] {
        let second = Command::new(env!("CARGO_BIN_EXE_steplens"))
            .args(cmd)
            .args(["--force", "--quiet", "--device", "gpu", "--out", o])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&second.stderr);
        assert_eq!(second.status.code(), Some(2), "{err}");
        assert!(err.contains(&format!("in use by steplens process {}", child.id())), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    signal(&child, "TERM");
    assert_eq!(wait(&mut child, Duration::from_secs(30)), 130);
    assert!(out.join("weights.npy").exists(), "the first run's files are its own");
    assert!(!out.join(".steplens.lock").exists());
}
