//! The learning-rate procedure and the adaptive rules: SPS and Armijo against hand-computed
//! steps, the epoch-mode λ against the exact curvature, `train --schedule schedule.csv`
//! reproducing a schedule run, and the analyze command's files.

mod common;

use std::process::Command;

use common::*;
use steplens::{
    analysis::{self, Batches, Settings, SvdMethod},
    engine::{Block, Engine, EpochPlan, Perturbation, StepRule},
    gpu::{GpuEngine, KernelPath},
    local::{Aggregate, Procedure, Tau},
    model::{InitKind, LossKind, Model, ModelKind},
    train::Batching,
};

fn steplens(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_steplens")).args(args).env("STEPLENS_QUIET", "1").output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into())
}

/// One step of SPS and of Armijo on a two-parameter least-squares problem (θ = (w, β), one
/// feature), against the same step computed by hand.
#[test]
fn sps_and_armijo_steps_match_hand_computed_values() {
    let xs = [0.5f32, -1.0, 2.0, 0.25];
    let ys = [1.0f32, -0.5, 2.5, 0.0];
    let mut d = data(dataset(4, 1, None, false, 1), None);
    d.train.features = steplens::data::Features::F32(xs.to_vec());
    d.train.targets = ys.to_vec();
    let model = Model::for_data(ModelKind::Lls, LossKind::Ce, &d.train).unwrap();
    let (w0, b0) = (0.3f64, -0.2f64);
    // f(θ) = mean (w x + β − y)², ∇f = mean 2 r (x, 1).
    let f = |w: f64, b: f64| xs.iter().zip(ys).map(|(&x, y)| (w * x as f64 + b - y as f64).powi(2)).sum::<f64>() / 4.0;
    let r: Vec<f64> = xs.iter().zip(ys).map(|(&x, y)| w0 * x as f64 + b0 - y as f64).collect();
    let g = [
        r.iter().zip(xs).map(|(r, x)| 2.0 * r * x as f64).sum::<f64>() / 4.0,
        r.iter().map(|r| 2.0 * r).sum::<f64>() / 4.0,
    ];
    let gsq = g[0] * g[0] + g[1] * g[1];
    let f0 = f(w0, b0);
    let sps = (f0 / (0.5 * gsq)).min(100.0);
    let mut armijo = 10.0f64;
    while f(w0 - armijo * g[0], b0 - armijo * g[1]) > f0 - 0.1 * armijo * gsq {
        armijo *= 0.9;
    }
    let batches = [0u32, 1, 2, 3];
    for (rule, want) in [
        (StepRule::Polyak { c: 0.5, max_lr: 100.0 }, sps),
        (StepRule::Armijo { c: 0.1, beta: 0.9, growth: 2.0, max_lr: 100.0 }, armijo),
    ] {
        let mut e = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
        e.set_params(&[w0 as f32, b0 as f32]).unwrap();
        let plan = EpochPlan {
            batches: &batches,
            batch_size: 4,
            steps: 1,
            lrs: &[10.0],
            rule,
            read_params: true,
            evaluate: false,
        };
        let out = e.run_epoch(&plan).unwrap();
        let step = out.steps[0];
        assert!((step.lr as f64 - want).abs() < 1e-5 * want, "{rule:?}: h {} vs {want}", step.lr);
        assert!((step.loss as f64 - f0).abs() < 1e-6, "{rule:?}: f {} vs {f0}", step.loss);
        let theta = out.params.unwrap();
        assert!((theta[0] as f64 - (w0 - want * g[0])).abs() < 1e-5, "{rule:?}: w {}", theta[0]);
    }
}

/// For least squares the epoch-mode λ (median over batches) is the median exact curvature
/// q_iᵀ H_i q_i along the reported directions, H_i = (2/b) X_iᵀ X_i.
#[test]
fn epoch_mode_lambda_is_the_exact_curvature_for_lls() {
    let (n, p, b) = (640, 24, 32);
    let mut d = data(dataset(n, p, None, false, 31), None);
    d.train.targets = uniforms(n, 32, -1.0, 1.0);
    let model = Model::for_data(ModelKind::Lls, LossKind::Ce, &d.train).unwrap();
    let theta = model.init(InitKind::Xavier, 5);
    let batching = Batching::new(n, b, 2, false).unwrap();
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: b, n };
    let which: Vec<usize> = (0..batching.steps()).collect();
    let settings = Settings {
        points: 100,
        perturbation: Perturbation::Uniform { scale: 0.01 },
        block: Block::Row(0),
        seed: 9,
        center: true,
        method: SvdMethod::Residual,
    };
    let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
    let results = analysis::analyze(&mut g, &theta, &batches, &which, &settings, 8, &mut |_| {}).unwrap();
    let procedure = Procedure { tau: Tau::Infinite, aggregate: Aggregate::Median, min_r2: 0.1, max_lr: 10.0 };
    let estimate = procedure.estimate(&results);
    let exact: Vec<f64> = results
        .iter()
        .map(|r| {
            let rows = &table[r.batch * b..(r.batch + 1) * b];
            2.0 / b as f64
                * rows
                    .iter()
                    .map(|&i| (0..p).map(|j| r.q[j] as f64 * d.train.x(i as usize, j)).sum::<f64>().powi(2))
                    .sum::<f64>()
        })
        .collect();
    let median_exact = steplens::stats::quantile(exact, 0.5);
    let ratio = estimate.lambda_median / median_exact;
    assert!((ratio - 1.0).abs() < 0.05, "λ median {} vs exact {median_exact}", estimate.lambda_median);
    assert!((estimate.lr - 1.0 / estimate.lambda_median).abs() < 0.05 * estimate.lr, "h = 1/λ for τ = ∞");
}

/// history.csv without the seconds column.
fn history_without_seconds(d: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(d.join("history.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

/// `train --schedule DIR/schedule.csv` with `extra` flags, into `out`; its history. A run
/// reproduces bit for bit on the kernels that wrote it cut into the same dispatches: the fused
/// kernel keeps θ in its buffer between steps, whereas the subgroup kernel keeps W₁ − W₀ of a
/// two-class softmax in registers within a dispatch, so another cut rounds differently.
fn retrain(sched: &std::path::Path, out: &std::path::Path, epochs: &str, extra: &[&str]) -> Vec<String> {
    let file = sched.join("schedule.csv");
    let mut args = vec!["train", "--device", "gpu", "--epochs", epochs, "--schedule", file.to_str().unwrap()];
    args.extend(extra);
    args.extend(["--out", out.to_str().unwrap()]);
    let (code, err) = steplens(&args);
    assert_eq!(code, 0, "{err}");
    history_without_seconds(out)
}

#[test]
fn train_with_schedule_csv_reproduces_the_notebook_procedures_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sched = tmp.path().join("sched");
    let (code, err) = steplens(&[
        "schedule",
        "--procedure",
        "notebook",
        "--device",
        "gpu",
        "--kernels",
        "fused",
        "--epochs",
        "2",
        "--sample",
        "4",
        "--points",
        "16",
        "--out",
        sched.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(sched.join("schedule.csv")).unwrap();
    assert!(csv.starts_with("epoch,lr,lambda_median,lambda_q1,lambda_q3,r2_median"), "{csv}");
    assert_eq!(
        history_without_seconds(&sched),
        retrain(&sched, &tmp.path().join("again"), "2", &["--kernels", "fused"])
    );
    // Online mode writes a step column that train accepts too.
    let online = tmp.path().join("online");
    let (code, err) = steplens(&[
        "schedule",
        "--procedure",
        "notebook",
        "--device",
        "gpu",
        "--kernels",
        "fused",
        "--mode",
        "online",
        "--every",
        "100",
        "--epochs",
        "1",
        "--sample",
        "2",
        "--points",
        "8",
        "--out",
        online.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(online.join("schedule.csv")).unwrap();
    assert!(csv.starts_with("epoch,step,lr,"), "{csv}");
    assert_eq!(csv.lines().count(), 3, "two estimates in 197 steps every 100: {csv}");
    assert_eq!(
        history_without_seconds(&online),
        retrain(&online, &tmp.path().join("online-again"), "1", &["--kernels", "fused"])
    );
}

/// The default procedure changes its rate every step: schedule.csv has a row per step, and
/// training with it on the same kernels reproduces the run exactly.
#[test]
fn train_with_schedule_csv_reproduces_the_default_procedures_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sched = tmp.path().join("pcg");
    for model in ["logreg", "lls"] {
        let (code, err) = steplens(&[
            "schedule",
            "--device",
            "gpu",
            "--kernels",
            "fused",
            "--model",
            model,
            "--epochs",
            "2",
            "--out",
            sched.to_str().unwrap(),
            "--force",
        ]);
        assert_eq!(code, 0, "{err}");
        let csv = std::fs::read_to_string(sched.join("schedule.csv")).unwrap();
        assert!(csv.starts_with("epoch,step,lr,batch_loss,grad_sq,mu1,mu2,cap,alpha\n"), "{csv}");
        assert_eq!(csv.lines().count(), 1 + 2 * 197, "a row per step");
        let again = tmp.path().join(format!("again-{model}"));
        let retrained = retrain(&sched, &again, "2", &["--model", model, "--kernels", "fused"]);
        assert_eq!(history_without_seconds(&sched), retrained, "{model}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(sched.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["procedure"], "pcg");
        assert_eq!(summary["grad_evals_per_training_run"], 2 * 197);
        // 3 gradients per subspace iteration, one every 13 steps, two at the start.
        assert_eq!(summary["grad_evals"], 2 * 197 + 3 * ((2 * 197usize).div_ceil(13) + 1));
        assert_eq!(summary["diverged"], false);
        let last = history_without_seconds(&sched).last().unwrap().split(',').nth(2).unwrap().parse::<f64>().unwrap();
        assert_eq!(summary["final_train_loss"].as_f64().unwrap(), last);
        assert!(summary["final_test_loss"].as_f64().unwrap().is_finite());
        assert!(sched.join("report.md").exists());
    }
}

#[test]
fn analyze_writes_its_files_and_averages_every_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("an");
    let (code, err) = steplens(&["analyze", "--batches", "0..6", "--points", "20", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let csv = std::fs::read_to_string(out.join("analysis.csv")).unwrap();
    assert!(csv.starts_with("batch,sigma1,sigma2,sigma3,explained1,alpha,beta,r2,lambda"));
    assert_eq!(csv.lines().count(), 7);
    let shape = |f: &str| steplens::data::npy::read(&out.join(f)).unwrap().shape;
    assert_eq!(shape("q.npy"), vec![6, 784]);
    assert_eq!(shape("spectrum.npy"), vec![6, 20]);
    assert_eq!(shape("projection.npy"), vec![6, 20, 2]);
    assert_eq!(shape("batches.npy"), vec![6, 32]);
    for f in ["projection.png", "projection.svg", "projection-batch-0.png", "spectrum.png", "lambda.png"] {
        assert!(out.join(f).exists(), "{f}");
    }
    // The averaged picture is the plain mean over all batches, batch 0 included.
    let pairs = steplens::data::npy::read(&out.join("projection.npy")).unwrap().data;
    let results: Vec<steplens::analysis::BatchAnalysis> = (0..6)
        .map(|i| steplens::analysis::BatchAnalysis {
            batch: i,
            sigma: vec![],
            explained1: 0.0,
            alpha: 0.0,
            beta: 0.0,
            r2: 0.0,
            lambda: 0.0,
            q: vec![],
            pairs: pairs[i * 40..(i + 1) * 40].chunks(2).map(|p| [p[0], p[1]]).collect(),
        })
        .collect();
    let avg = steplens::analysis::averaged_pairs(&results);
    for (k, a) in avg.iter().enumerate() {
        let mean_x: f64 = (0..6).map(|i| pairs[i * 40 + 2 * k] as f64).sum::<f64>() / 6.0;
        assert!((a[0] - mean_x).abs() < 1e-9);
    }
}
