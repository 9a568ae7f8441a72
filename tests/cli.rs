//! The binary under bad input: one clear sentence on stderr, exit code 2 for usage errors and 1
//! for runtime errors, no panic, and no run directory left behind; divergence keeps the good
//! epochs. And the happy paths a user takes first.

use std::{path::Path, process::Command};

fn steplens(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).env("STEPLENS_QUIET", "1").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

/// A small regression problem as CSV: y = 2 x0 − x1 + 0.5 + noise.
fn lls_csv(dir: &Path) -> String {
    let mut s = String::from("x0,x1,y\n");
    for i in 0..200 {
        let (a, b) = ((i % 17) as f64 / 17.0, (i % 11) as f64 / 11.0);
        s.push_str(&format!("{a},{b},{}\n", 2.0 * a - b + 0.5 + 0.01 * ((i * 7919 % 13) as f64 - 6.0)));
    }
    write(dir, "lls.csv", &s)
}

/// Runs the command, expects `code`, one line on stderr mentioning `needle`, and no `out` dir.
#[track_caller]
fn rejects(args: &[&str], code: i32, needle: &str, out: &Path) {
    let (c, _, err) = steplens(args);
    let lines: Vec<&str> =
        err.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("steplens: computing on")).collect();
    assert_eq!(c, code, "{args:?}: exit {c}, stderr {err}");
    assert_eq!(lines.len(), 1, "{args:?}: expected one sentence, got {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "{args:?}: {err}");
    assert!(err.to_lowercase().contains(&needle.to_lowercase()), "{args:?}: `{needle}` not in {err}");
    assert!(!out.exists(), "{args:?}: left {} behind", out.display());
}

#[test]
fn bad_input_gets_one_sentence_and_the_right_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    let good = lls_csv(d);
    let ragged = write(d, "ragged.csv", "1,2,3\n4,5\n");
    let text = write(d, "text.csv", "1,2,3\n4,five,6\n");
    let empty = write(d, "empty.csv", "");
    let three = write(d, "three.csv", "0.1,0\n0.2,1\n0.3,2\n0.4,1\n");
    let short = write(d, "short.csv", "epoch,lr\n1,0.1\n");
    let negative = write(d, "neg.csv", "epoch,lr\n1,0.1\n2,-0.1\n");
    let file = write(d, "afile", "x");
    let under_file = format!("{file}/run");
    let lls = ["train", "--model", "lls", "--data", &good, "--out", o, "--epochs", "2"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        lls.iter().map(|s| s.to_string()).chain(extra.iter().map(|s| s.to_string())).collect()
    };
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            vec![
                "train".into(),
                "--data".into(),
                d.join("missing.csv").display().to_string(),
                "--out".into(),
                o.into(),
            ],
            1,
            "missing.csv",
        ),
        (
            vec![
                "train".into(),
                "--model".into(),
                "lls".into(),
                "--data".into(),
                ragged.clone(),
                "--out".into(),
                o.into(),
            ],
            1,
            "line 2",
        ),
        (
            vec![
                "train".into(),
                "--model".into(),
                "lls".into(),
                "--data".into(),
                text.clone(),
                "--out".into(),
                o.into(),
            ],
            1,
            "five",
        ),
        (
            vec![
                "train".into(),
                "--model".into(),
                "lls".into(),
                "--data".into(),
                empty.clone(),
                "--out".into(),
                o.into(),
            ],
            1,
            "empty",
        ),
        (
            vec![
                "train".into(),
                "--model".into(),
                "logreg".into(),
                "--data".into(),
                three.clone(),
                "--out".into(),
                o.into(),
            ],
            2,
            "0 and 1",
        ),
        (with(&["--batch-size", "0"]), 2, "batch"),
        (with(&["--batch-size", "100000"]), 2, "larger than the training set"),
        (with(&["--lr", "0"]), 2, "learning rate"),
        (with(&["--lr", "-1"]), 2, "learning rate"),
        (with(&["--lr", "NaN"]), 2, "learning rate"),
        (with(&["--lr", "inf"]), 2, "learning rate"),
        (with(&["--epochs", "0"]), 2, "epochs"),
        (with(&["--schedule", "wobble:1"]), 2, "schedule"),
        (with(&["--schedule", "cosine:"]), 2, "schedule"),
        (lls.iter().map(|s| s.to_string()).chain(["--schedule".to_string(), short.clone()]).collect(), 2, "epochs"),
        (vec!["train".into(), "--model".into(), "perceptron".into(), "--out".into(), o.into()], 2, "perceptron"),
        (with(&["--backend", "glide"]), 2, "glide"),
        (with(&["--device", "gpu", "--adapter", "no-such-adapter"]), 2, "no-such-adapter"),
        (with(&["--adapter", "no-such-adapter"]), 2, "the adapters are"),
        (
            vec![
                "train".into(),
                "--model".into(),
                "lls".into(),
                "--data".into(),
                good.clone(),
                "--out".into(),
                under_file.clone(),
            ],
            2,
            "afile",
        ),
        (vec!["analyze".into(), "--points".into(), "0".into(), "--out".into(), o.into()], 2, "points"),
        (vec!["analyze".into(), "--block".into(), "row:7".into(), "--out".into(), o.into()], 2, "row:7"),
        (vec!["train".into(), "--digits".into(), "0,x".into(), "--out".into(), o.into()], 2, "digits"),
    ];
    for (args, code, needle) in cases {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        rejects(&refs, code, needle, &out);
    }
    // A negative rate inside a schedule file is a problem of the file.
    let mut neg: Vec<&str> = lls.to_vec();
    neg.extend(["--schedule", &negative]);
    rejects(&neg, 1, "not positive", &out);
}

#[test]
fn divergence_stops_with_the_epoch_and_rate_and_keeps_good_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let good = lls_csv(tmp.path());
    let out = tmp.path().join("run");
    // Epoch 1 at a stable rate, then a rate far above 2/L.
    let sched = write(tmp.path(), "s.csv", "epoch,lr\n1,0.05\n2,1000\n3,1000\n");
    let (code, _, err) = steplens(&[
        "train",
        "--model",
        "lls",
        "--data",
        &good,
        "--schedule",
        &sched,
        "--epochs",
        "3",
        "--batch-size",
        "10",
        "--device",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("diverged in epoch 2") && err.contains("1000"), "{err}");
    let history = std::fs::read_to_string(out.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 3, "header, epoch 0 and epoch 1: {history}");
    assert!(out.join("weights.npy").exists(), "the last good weights are kept");
}

#[test]
fn csv_lls_trains_to_the_least_squares_optimum() {
    let tmp = tempfile::tempdir().unwrap();
    let good = lls_csv(tmp.path());
    let out = tmp.path().join("run");
    let (code, stdout, err) = steplens(&[
        "train",
        "--model",
        "lls",
        "--data",
        &good,
        "--lr",
        "0.3",
        "--epochs",
        "60",
        "--batch-size",
        "20",
        "--device",
        "gpu",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("wrote"));
    let w = steplens::data::npy::read_f32(&out.join("weights.npy")).unwrap().1;
    let b = steplens::data::npy::read_f32(&out.join("bias.npy")).unwrap().1;
    assert!((w[0] - 2.0).abs() < 0.05 && (w[1] + 1.0).abs() < 0.05 && (b[0] - 0.5).abs() < 0.05, "{w:?} {b:?}");
}

#[test]
fn embedded_datasets_and_standardize() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let csv = lls_csv(tmp.path());
    rejects(&["analyze", "--dataset", "diabetes", "--data", &csv, "--out", o], 2, "--data", &out);
    rejects(&["analyze", "--dataset", "diabetes", "--digits", "0-9", "--out", o], 2, "--digits", &out);
    rejects(&["analyze", "--data", &csv, "--digits", "0-9", "--out", o], 2, "--digits", &out);
    rejects(&["analyze", "--dataset", "digits", "--out", o], 2, "digits", &out);
    let (code, _, err) = steplens(&[
        "analyze",
        "--dataset",
        "diabetes",
        "--model",
        "lls",
        "--standardize",
        "--batches",
        "0,1",
        "--points",
        "8",
        "--device",
        "gpu",
        "--out",
        o,
    ]);
    assert_eq!(code, 0, "{err}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["data"]["train"], "diabetes");
    assert_eq!(config["data"]["train_samples"], 442);
    let s = &config["standardization"];
    assert_eq!(s["mean"].as_array().unwrap().len(), 10);
    assert!((s["target_mean"].as_f64().unwrap() - 152.133).abs() < 1e-3, "{s}");
    // The run record every command writes: the analysis' kernel as resolved, no training fields.
    let path = config["kernels_resolved"]["path"].as_str().unwrap();
    assert!(["residuals_subgroup", "residuals"].contains(&path), "{config}");
    assert_eq!(config["command"], "analyze");
    assert_eq!(config["batches"], 2);
    assert_eq!(config["settings"]["points"], 8);
    assert!(config.get("epochs").is_none() && config.get("reshuffle").is_none(), "{config}");
}

/// An existing directory that cannot be written fails before any work, as a usage error.
#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_out_is_refused_before_any_work() {
    for args in [
        &["analyze", "--batches", "0,1", "--points", "8"][..],
        &["train", "--epochs", "1"][..],
        &["schedule", "--epochs", "1"][..],
    ] {
        let mut all = args.to_vec();
        all.extend(["--device", "gpu", "--force", "--out", "/proc"]);
        let (code, _, err) = steplens(&all);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains("cannot write into the output directory /proc"), "{args:?}: {err}");
    }
}

fn steplens_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).envs(env.iter().copied()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// An adapter or backend that does not exist is a usage error naming the adapters that do,
/// with any --device (no silent fall-back to the CPU), in words rather than Rust debug text.
#[test]
fn unknown_adapters_and_backends_are_usage_errors_that_list_the_adapters() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (&["train", "--epochs", "1", "--adapter", "nonsense"], &[], "(--adapter)"),
        (&["train", "--epochs", "1", "--device", "auto"], &[("WGPU_ADAPTER_NAME", "nonsense")], "(WGPU_ADAPTER_NAME)"),
        (&["analyze", "--batches", "0"], &[("WGPU_ADAPTER_NAME", "nonsense")], "nonsense"),
        (&["train", "--epochs", "1"], &[("WGPU_BACKEND", "nonsense")], "WGPU_BACKEND=nonsense"),
        (&["train", "--epochs", "1", "--backend", "metal"], &[], "no adapter found for Metal"),
    ];
    for (args, env, needle) in cases {
        let mut all = args.to_vec();
        all.extend(["--out", o]);
        let (code, _, err) = steplens_env(&all, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {err}");
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
        if needle != "WGPU_BACKEND=nonsense" {
            assert!(err.contains("the adapters are llvmpipe") && err.contains("(Vulkan, CPU)"), "{err}");
        }
        assert!(!err.contains("Backends(") && !err.contains("reference instead"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(!out.exists());
    }
}

/// `steplens adapters` lists every adapter of every backend (lavapipe's Vulkan and llvmpipe's
/// OpenGL on the test machines), in words.
#[test]
fn adapters_lists_every_backend() {
    let (code, stdout, err) = steplens_env(&["adapters"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("Vulkan") && stdout.contains("OpenGL"), "{stdout}");
    assert!(!stdout.contains("Gl ") && !stdout.contains("Cpu"), "{stdout}");
    let (_, only_gl, _) = steplens_env(&["adapters", "--backend", "gl"], &[]);
    assert!(only_gl.contains("OpenGL") && !only_gl.contains("Vulkan"), "{only_gl}");
}

/// No count flag panics: 0 and absurd values of analyze's and bench's counts are usage errors
/// with the reason (a fit needs 3 points; the host eigen-decomposition bounds K; a batch is
/// analysed once; a sweep needs a run and must fit the adapter).
#[test]
fn counts_at_zero_and_absurd_values_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let json = tmp.path().join("bench.json");
    let j = json.to_str().unwrap();
    let cases: [(&[&str], &str); 22] = [
        (&["analyze", "--points", "1", "--out", o], "at least 3"),
        (&["analyze", "--points", "2", "--out", o], "R² = 1"),
        (&["analyze", "--points", "18446744073709551615", "--out", o], "at most 1000"),
        (&["analyze", "--points", "18446744073709551616", "--out", o], "points"),
        (&["analyze", "--batch-size", "0", "--out", o], "batch size"),
        (&["analyze", "--batch-size", "18446744073709551615", "--out", o], "larger than the training set"),
        (&["analyze", "--batches", "1,1,1", "--device", "gpu", "--out", o], "batch 1 more than once"),
        (&["analyze", "--batches", "0..99999999", "--out", o], "does not exist"),
        (&["bench", "--sweep-runs", "0", "--no-analysis", "--json", j], "--sweep-runs must be at least 1"),
        (&["bench", "--sweep-runs", "100000000000", "--no-analysis", "--json", j], "more than this adapter holds"),
        (&["bench", "--repeats", "0", "--json", j], "--repeats"),
        (&["bench", "--device", "cpu", "--json", j], "not benchmarked"),
        (&["train", "--sweep-lr", "1e-3:1:100000000000", "--out", o], "R ≤ 4096"),
        (&["train", "--sweep-lr", "1e-3:1e39:3", "--out", o], "beyond"),
        (&["train", "--sweep-seed", "100000000", "--out", o], "--sweep-seed 100000000"),
        (&["compare", "--grid", "1e-3:1:100000000000", "--out", o], "--grid"),
        (&["compare", "--grid", "abc", "--out", o], "--grid `abc`"),
        (&["compare", "--seeds", "0", "--out", o], "--seeds"),
        (&["compare", "--local", "local:sample=0", "--out", o], "sample"),
        (&["schedule", "--every", "5", "--procedure", "notebook", "--out", o], "--every needs --mode online"),
        (&["schedule", "--mode", "online", "--out", o], "pcg re-estimates"),
        (&["suite", "--seeds", "0", "--out", o], "--seeds"),
    ];
    for (args, needle) in cases {
        rejects(args, 2, needle, &out);
        assert!(!json.exists());
    }
}

/// `bench --anchors FILE` takes the PyTorch figures `scripts/anchors.py` measured on this machine:
/// a missing, malformed or nonsensical file is refused before anything is measured, and a good
/// one replaces the built-in anchors in the table and the JSON (the ratio is against it), beside
/// the host CPU they were measured on.
#[test]
fn bench_takes_anchors_measured_here() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let json = d.join("bench.json");
    let j = json.to_str().unwrap();
    let good = r#"{"date": "2026-12-01T11:30:28Z", "torch": "2.15.0", "threads": 2, "train_epoch_ms": 123.0, "analysis_ms": 4567.0, "load_average": [0.5, 0.4, 0.3]}"#;
    let bad = [
        (d.join("missing.json").display().to_string(), "missing.json"),
        (write(d, "text.json", "not json"), "not the JSON scripts/anchors.py writes"),
        (write(d, "partial.json", r#"{"date": "x", "torch": "2", "threads": 2, "train_epoch_ms": 3}"#), "analysis_ms"),
        (write(d, "negative.json", &good.replace("123.0", "-1")), "train_epoch_ms must be a positive"),
    ];
    for (file, needle) in &bad {
        rejects(&["bench", "--no-analysis", "--anchors", file, "--json", j], 2, needle, &json);
    }
    let file = write(d, "anchors.json", good);
    let args = ["bench", "--device", "gpu", "--no-analysis", "--repeats", "1", "--sweep-runs", "1"];
    let (code, stdout, err) = steplens(&[&args[..], &["--anchors", &file, "--json", j]].concat());
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("PyTorch anchors measured on this machine (torch 2.15.0, 2 threads"), "{stdout}");
    let row = stdout.lines().find(|l| l.starts_with("train epoch")).unwrap();
    assert!(row.contains("the notebook's PyTorch loop, measured here") && row.contains(" 123 "), "{row}");
    let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["measured_anchors"]["train_epoch_ms"], 123.0);
    assert_eq!(report["measured_anchors"]["analysis_ms"], 4567.0);
    // The host CPU the figures are of (on a CPU adapter, the CPU's own).
    let threads = std::thread::available_parallelism().unwrap().get();
    let host = report["host"].as_str().unwrap();
    assert!(host.contains(&format!(", {threads} threads, ")), "{host}");
    assert!(stdout.contains(&format!("host: {host}\n")), "{stdout}");
    let speedup = 123.0 / report["train_epoch_ms"].as_f64().unwrap();
    assert!(row.ends_with(&format!("×{}", steplens::report::table::fmt_num(speedup, 3))), "{row} against {speedup}");
}

/// Test data must suit the model as training data must: classes for the classifiers, and no
/// class the model does not have (CSV test files and npy `y_test` alike).
#[test]
fn test_data_must_suit_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    let rows = |labels: &[&str]| -> String {
        let mut s = String::from("a,b,label\n");
        for (i, l) in labels.iter().cycle().take(40).enumerate() {
            s.push_str(&format!("{},{},{l}\n", i % 7, i % 5));
        }
        s
    };
    let train = write(d, "train.csv", &rows(&["0", "1"]));
    let six = write(d, "six.csv", &rows(&["0", "1", "2", "3", "4", "5"]));
    let frac = write(d, "frac.csv", &rows(&["0", "0.5"]));
    let npy = d.join("npy");
    std::fs::create_dir(&npy).unwrap();
    let x: Vec<f32> = (0..80).map(|i| (i % 9) as f32).collect();
    let y: Vec<f32> = (0..40).map(|i| (i % 2) as f32).collect();
    let y_test: Vec<f32> = (0..40).map(|i| (i % 3) as f32).collect();
    use steplens::data::npy::f32_bytes;
    std::fs::write(npy.join("X.npy"), f32_bytes(&[40, 2], &x)).unwrap();
    std::fs::write(npy.join("y.npy"), f32_bytes(&[40], &y)).unwrap();
    std::fs::write(npy.join("X_test.npy"), f32_bytes(&[40, 2], &x)).unwrap();
    std::fs::write(npy.join("y_test.npy"), f32_bytes(&[40], &y_test)).unwrap();
    let n = npy.to_str().unwrap();
    let base = ["train", "--epochs", "1", "--batch-size", "8", "--device", "gpu", "--out", o];
    let cases: [(&[&str], &str); 5] = [
        (&["--model", "logreg", "--data", &train, "--test-data", &six], "has class 2"),
        (&["--model", "softmax", "--data", &train, "--test-data", &six], "the model has 2 classes"),
        (&["--model", "logreg", "--data", &train, "--test-data", &frac], "target 0.5"),
        (&["--model", "softmax", "--data", &train, "--test-data", &frac], "not a class index"),
        (&["--model", "softmax", "--data", n], "X_test.npy has class 2 (sample 3)"),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        rejects(&args, 2, needle, &out);
    }
    // Least squares takes any real test target.
    let args: Vec<&str> =
        base.iter().chain(&["--model", "lls", "--data", &train, "--test-data", &frac]).copied().collect();
    let (code, _, err) = steplens(&args);
    assert_eq!(code, 0, "{err}");
}

/// Rates beyond f32 or underflowing to 0 are refused before anything is written, in short
/// numbers; a schedule directory is named as one.
/// A `.npy` file npyz cannot read or steplens cannot use, as user data: one sentence that names
/// the file and says what is wrong with it, exit code 1.
#[test]
fn bad_npy_files_get_one_sentence_naming_the_file() {
    use steplens::data::npy::f32_bytes;
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    // Version 1.0 with the header dict as given.
    let npy = |dict: &str, data: &[u8]| {
        let header = format!("{dict}\n");
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    };
    let dict = |descr: &str, fortran: &str, shape: &str| {
        format!("{{'descr': {descr}, 'fortran_order': {fortran}, 'shape': {shape}, }}")
    };
    let good_x = f32_bytes(&[4, 2], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]);
    let good_y = f32_bytes(&[4], &[0.0, 1.0, 0.0, 1.0]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not-npy", b"PK\x03\x04 a zip file".to_vec(), "X.npy is not valid: it is not a .npy file"),
        ("truncated-header", good_x[..30].to_vec(), "X.npy is not valid: truncated"),
        ("truncated-data", good_x[..good_x.len() - 3].to_vec(), "but 29 data bytes follow"),
        (
            "corrupt-header",
            npy(&dict("'<f4'", "Maybe", "(4, 2)"), &[0; 32]),
            "X.npy is not valid: its .npy header cannot be read (a syntax error",
        ),
        ("half", npy(&dict("'<f2'", "False", "(4, 2)"), &[0; 16]), "X.npy is not valid: its dtype '<f2' is not"),
        ("fortran", npy(&dict("'<f4'", "True", "(4, 2)"), &[0; 32]), "X.npy is not valid: the array is in Fortran"),
        (
            "structured",
            npy(&dict("[('a', '<f4'), ('b', '<f4')]", "False", "(4,)"), &[0; 32]),
            "X.npy is not valid: its dtype [('a', '<f4'), ('b', '<f4'), ] is structured",
        ),
        ("shape", f32_bytes(&[8], &[0.0; 8]), "X.npy is not valid: its shape is (8,)"),
    ];
    for (name, x, needle) in cases {
        let dir = d.join(name);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("X.npy"), &x).unwrap();
        std::fs::write(dir.join("y.npy"), &good_y).unwrap();
        let data = dir.to_str().unwrap();
        rejects(&["train", "--model", "lls", "--data", data, "--device", "cpu", "--out", o], 1, needle, &out);
    }
}

#[test]
fn rates_outside_f32_are_refused_in_short_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    let good = lls_csv(d);
    let huge_row = write(d, "huge.csv", "epoch,lr\n1,0.1\n2,1e308\n");
    let dir = d.display().to_string();
    let base = ["train", "--model", "lls", "--data", &good, "--epochs", "2", "--device", "gpu", "--out", o];
    let cases: [(&[&str], i32, &str); 7] = [
        (&["--lr", "1e39"], 2, "beyond f32"),
        (&["--lr", "1e308"], 2, "beyond f32"),
        (&["--lr", "1e-46"], 2, "subnormal"),
        (&["--schedule", "constant:1e308"], 2, "beyond f32"),
        (&["--schedule", "inv-t:0.1,k=1e300"], 2, "epoch 2 of 2"),
        (&["--schedule", &huge_row], 1, "line 3"),
        (&["--schedule", &dir], 2, "is a directory"),
    ];
    for (extra, code, needle) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (_, _, err) = steplens(&args);
        assert!(!err.contains(&"0".repeat(20)), "{extra:?}: a long decimal in {err}");
        rejects(&args, code, needle, &out);
    }
}

/// A skipped CSV header is announced (not with --quiet); a typo in a first line of numbers is
/// an error naming the cell; quoted numbers are read.
#[test]
fn csv_headers_are_announced_and_typos_are_not_headers() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let out = d.join("run");
    let o = out.to_str().unwrap();
    let mut text = String::from("\"x0\",\"x1\",\"y\"\n");
    for i in 0..40 {
        text.push_str(&format!("\"{}\",{},\"{}\"\n", i % 7, i % 5, (i % 7) as f64 * 0.5));
    }
    let quoted = write(d, "quoted.csv", &text);
    let base = ["train", "--model", "lls", "--epochs", "1", "--batch-size", "8", "--device", "gpu", "--out", o];
    let args: Vec<&str> = base.iter().copied().chain(["--data", quoted.as_str()]).collect();
    let (code, _, err) = steplens_env(&args, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("quoted.csv: line 1 has no number, so it is taken as a header and skipped"), "{err}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["data"]["train_samples"], 40);
    std::fs::remove_dir_all(&out).unwrap();
    let quiet: Vec<&str> = args.iter().copied().chain(["--quiet"]).collect();
    let (code, _, err) = steplens_env(&quiet, &[]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("header"), "--quiet: {err}");
    std::fs::remove_dir_all(&out).unwrap();
    let typo = write(d, "typo.csv", "1e3,0x10,1\n2,3,0\n4,5,1\n");
    let args: Vec<&str> = base.iter().copied().chain(["--data", typo.as_str()]).collect();
    rejects(&args, 1, "line 1, column 2: \"0x10\" is not a number", &d.join("nothing"));
}

/// `analyze --weights RUN` analyses the run as it was trained: its model and its data from
/// config.json; flags that contradict the run and non-finite weights are refused.
#[test]
fn analyze_weights_uses_the_runs_model_and_data() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let mut text = String::from("a,b,label\n");
    for i in 0..60 {
        text.push_str(&format!("{},{},{}\n", (i % 7) as f64 / 7.0, (i % 5) as f64 / 5.0, i % 3));
    }
    let csv = write(d, "three.csv", &text);
    let run = d.join("run");
    let r = run.to_str().unwrap();
    let (code, _, err) = steplens(&[
        "train",
        "--model",
        "softmax",
        "--data",
        &csv,
        "--epochs",
        "1",
        "--batch-size",
        "10",
        "--device",
        "gpu",
        "--out",
        r,
    ]);
    assert_eq!(code, 0, "{err}");
    let out = d.join("analysis");
    let o = out.to_str().unwrap();
    let common =
        ["analyze", "--weights", r, "--batches", "0,1", "--points", "8", "--batch-size", "10", "--device", "gpu"];
    let with = |extra: &[&'static str]| -> Vec<String> {
        common.iter().chain(extra).chain(&["--out", o]).map(|s| s.to_string()).collect()
    };
    let (code, _, err) = steplens(&with(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["kind"], "softmax");
    assert_eq!(config["model"]["outputs"], 3);
    assert_eq!(config["data"]["train"], csv.as_str(), "the run's data, not MNIST");
    std::fs::remove_dir_all(&out).unwrap();
    for (extra, needle) in [
        (&["--model", "logreg"][..], "--model logreg contradicts it"),
        (&["--loss", "seed-compat"][..], "--loss seed-compat contradicts it"),
        (&["--digits", "0,1"][..], "was trained on"),
        (&["--standardize"][..], "not standardised"),
    ] {
        let args = with(extra);
        rejects(&args.iter().map(String::as_str).collect::<Vec<_>>(), 2, needle, &out);
    }
    // Flags that agree with the run are fine.
    let (code, _, err) = steplens(&with(&["--model", "softmax"]).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{err}");
    std::fs::remove_dir_all(&out).unwrap();
    // NaN weights: refused, not an analysis of empty cells.
    let (shape, mut w) = steplens::data::npy::read_f32(&run.join("weights.npy")).unwrap();
    w[3] = f32::NAN;
    std::fs::write(run.join("weights.npy"), steplens::data::npy::f32_bytes(&shape, &w)).unwrap();
    let args = with(&[]);
    rejects(&args.iter().map(String::as_str).collect::<Vec<_>>(), 1, "value 3 is NaN", &out);
}

/// With no adapter at all (the Vulkan and EGL loaders pointed at nothing): `--device gpu` is a
/// runtime error, `--device auto` falls back with a notice that says what the reference is,
/// and `adapters` says there are none.
#[test]
fn no_adapter_at_all() {
    let none = [
        ("VK_ICD_FILENAMES", "/nonexistent.json"),
        ("VK_DRIVER_FILES", "/nonexistent.json"),
        ("__EGL_VENDOR_LIBRARY_FILENAMES", "/nonexistent.json"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let o = out.to_str().unwrap();
    let (code, stdout, err) = steplens_env(&["adapters"], &none);
    assert_eq!(code, 0, "{err}");
    assert_eq!(stdout.trim(), "no GPU adapters found for Vulkan, Metal, DX12 and OpenGL");
    let (code, _, err) =
        steplens_env(&["analyze", "--batches", "0", "--points", "4", "--device", "gpu", "--out", o], &none);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no adapter found for") && !err.contains("Backends("), "{err}");
    assert!(!out.exists());
    let (code, _, err) = steplens_env(&["analyze", "--batches", "0", "--points", "4", "--out", o], &none);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("running on the CPU reference instead (the f64 implementation"), "{err}");
    assert!(!err.contains("(slow)"), "{err}");
}
