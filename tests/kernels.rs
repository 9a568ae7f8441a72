//! Every WGSL kernel against its f64 CPU twin, on fresh random inputs (never zeros) at awkward
//! sizes (1, 17, 33, 64, 784, 785 features; partial 4 × 4 tiles), outputs poisoned with NaN first
//! so unwritten elements show. Tolerance: normwise relative error ≤ 1e-5 (f32 arithmetic against f64). The checks live
//! in `steplens::validate`, which `steplens validate` runs on every adapter.

mod common;

use std::collections::BTreeSet;

use steplens::{
    engine::StepRule,
    gpu::subgroup::{LOOP_CAP, adapter_prefers, steps_per_dispatch},
    model::LossCode,
    validate::{self, KERNEL_TOL, RUN_TOL, SubgroupCase},
};

#[test]
fn every_kernel_matches_its_cpu_twin() {
    let checks = validate::kernel_checks(&common::gpu());
    let names: BTreeSet<String> = checks.iter().map(|c| c.name.clone()).collect();
    assert_eq!(names.len(), checks.len(), "check names must be unique");
    let expected = expected_kernel_checks();
    let missing: Vec<&String> = expected.difference(&names).collect();
    let unexpected: Vec<&String> = names.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "missing checks {missing:?}, unexpected checks {unexpected:?}"
    );
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed || c.tolerance != KERNEL_TOL)
        .map(|c| format!("{}: error {:.2e} {}", c.name, c.max_error, c.note.clone().unwrap_or_default()))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
}

#[test]
fn validation_runs_and_analysis_pass_here() {
    let ctx = || Ok(common::gpu());
    for c in validate::training_checks(&ctx) {
        assert!(c.passed, "{}: {:.2e} {:?}", c.name, c.max_error, c.note);
    }
    let c = validate::analysis_check(common::gpu()).unwrap();
    assert!(c.passed, "{}: {:.2e} {:?}", c.name, c.max_error, c.note);
}

/// The subgroup training kernel against its f64 twin: every loss and step rule, awkward sizes,
/// epochs split across dispatches, step statistics poisoned with NaN first; the subgroup
/// evaluation at the evaluation kernel's sizes (partial sums poisoned); two epochs through the
/// engine on the subgroup path.
#[test]
fn subgroup_kernel_matches_its_cpu_twin() {
    let checks = validate::subgroup_checks(&|| Ok(common::gpu()));
    if steplens::gpu::subgroup::adapter_unsupported(&common::gpu()).is_some() {
        assert!(checks.is_empty());
        return;
    }
    let mut names: Vec<String> = validate::subgroup_cases().iter().map(|c| c.name()).collect();
    for set in ["1x1, 1 sets", "257x33, 2 sets", "600x785, 3 sets", "33x64, 1 sets"] {
        for code in ["SoftmaxCe", "SoftmaxSeedCompat", "Logistic", "Squares"] {
            names.push(format!("evaluate_subgroup {code} ({set})"));
        }
    }
    for (shape, code) in RESIDUAL_CODES.iter().enumerate() {
        names.push(format!("residuals_subgroup {code} (shape {shape})"));
    }
    names.extend(["train softmax subgroup 2 epochs, 3 runs", "train lls subgroup Armijo, 1 run"].map(String::from));
    assert_eq!(checks.iter().map(|c| c.name.clone()).collect::<Vec<_>>(), names);
    let tolerance = |c: &validate::Check| if c.name.starts_with("train ") { RUN_TOL } else { KERNEL_TOL };
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| !c.passed || c.tolerance != tolerance(c))
        .map(|c| format!("{}: error {:.2e} {}", c.name, c.max_error, c.note.clone().unwrap_or_default()))
        .collect();
    for c in &checks {
        eprintln!("{}: {:.2e}", c.name, c.max_error);
    }
    assert!(failed.is_empty(), "{failed:#?}");
}

/// The losses of the residual checks' shapes (`validate::RESIDUAL_SHAPES`), in order.
const RESIDUAL_CODES: [&str; 8] = [
    "SoftmaxCe",
    "SoftmaxSeedCompat",
    "Logistic",
    "SoftmaxCe",
    "SoftmaxCe",
    "Squares",
    "SoftmaxSeedCompat",
    "SoftmaxCe",
];

/// Every check `kernel_checks` must run, by name (issue 12: a dropped check fails here).
fn expected_kernel_checks() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let codes = ["SoftmaxCe", "SoftmaxSeedCompat", "Logistic", "Squares"];
    for shape in 0..6 {
        names.insert(format!("logits (shape {shape})"));
        for code in codes {
            names.insert(format!("dlogits {code} (shape {shape})"));
        }
        names.insert(format!("weight_grad all rows (shape {shape})"));
        names.insert(format!("weight_grad one row (shape {shape})"));
    }
    for size in ["1x1", "3x33", "2x785", "5x1570"] {
        names.insert(format!("sgd_update {size}"));
    }
    for set in ["1x1, 1 sets", "257x33, 2 sets", "600x785, 3 sets", "33x64, 1 sets"] {
        for code in codes {
            names.insert(format!("evaluate {code} ({set})"));
        }
    }
    for shape in ["1x1x1", "2x5x33", "3x7x785", "1x100x1570"] {
        names.insert(format!("perturb {shape}"));
    }
    for (shape, code) in RESIDUAL_CODES.iter().enumerate() {
        names.insert(format!("residuals {code} (shape {shape})"));
    }
    names
}

/// llvmpipe's loop cap, seen through the subgroup kernel: a dispatch sized by the host's
/// arithmetic to just under the cap (963 steps of 64 samples: 65,485 loop passes) trains every
/// step as the twin does; one dispatch of 3 steps more passes the cap, and the driver silently
/// ends its loops: steps are missing (their statistics stay NaN) or wrong. (Measured so: the
/// first step to go wrong is the 964th at b = 64, the 13,108th at b = 1, the 3,277th at
/// b = 16 — b + 4 passes a step.) Only on adapters the subgroup kernel is chosen for
/// (lavapipe): other drivers may have no cap.
#[test]
fn subgroup_dispatches_stay_under_the_loop_cap() {
    let ctx = common::gpu();
    if !adapter_prefers(&ctx) {
        return;
    }
    let per = steps_per_dispatch(StepRule::Table, 64, 200, LOOP_CAP).unwrap();
    assert_eq!(per, 963);
    let at_cap = SubgroupCase {
        features: 4,
        code: LossCode::SoftmaxCe,
        classes: 2,
        u8: true,
        batch: 64,
        runs: 1,
        steps: per + 3,
        per,
        rule: StepRule::Table,
        shared: false,
    };
    let (theta, stats, want_theta, want_stats) = validate::run_subgroup_case(&ctx, &at_cap).unwrap();
    common::assert_close("at the cap: parameters", &theta, &want_theta, RUN_TOL);
    common::assert_close("at the cap: step statistics", &stats, &want_stats, RUN_TOL);
    let past = SubgroupCase { per: per + 3, ..at_cap };
    let (theta, stats, want_theta, _) = validate::run_subgroup_case(&ctx, &past).unwrap();
    let missing = stats.iter().filter(|v| !v.is_finite()).count();
    let err = common::rel_err(&theta, &want_theta);
    assert!(missing > 0 || err > RUN_TOL, "past the cap every step ran ({err:.2e}): is the cap gone?");
}

/// The engine splits an epoch into as many dispatches as the loop cap needs, in one pass and one
/// submit: with the cap lowered to a few steps per dispatch, two epochs of Armijo (whose step size
/// carries over from one dispatch to the next through the step statistics) and of table rates
/// for 3 runs sharing their batches match the f64 reference as one dispatch would.
#[test]
fn subgroup_engine_splits_epochs_at_the_loop_cap() {
    use steplens::{
        cpu::CpuEngine,
        engine::{Engine, EpochPlan},
        gpu::{GpuEngine, KernelPath},
        model::{InitKind, LossKind, Model, ModelKind},
        train::Batching,
    };
    if steplens::gpu::subgroup::adapter_unsupported(&common::gpu()).is_some() {
        return;
    }
    let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.2, max_lr: 5.0 };
    for (kind, classes, rule, runs) in
        [(ModelKind::Logreg, Some(2), armijo, 1), (ModelKind::Softmax, Some(3), StepRule::Table, 3)]
    {
        let d = common::data(common::dataset(200, 37, classes, true, 9), None);
        let model = Model::for_data(kind, LossKind::Ce, &d.train).unwrap();
        let theta: Vec<f32> = (0..runs).flat_map(|r| model.init(InitKind::Xavier, r as u64)).collect();
        let batching = Batching::new(d.train.n, 16, 3, true).unwrap();
        let steps = batching.steps();
        let lrs: Vec<f32> = (0..runs * steps).map(|i| 0.05 + 0.1 * (i / steps) as f32).collect();
        let mut gpu = GpuEngine::new(common::gpu(), model, &d, runs, KernelPath::Subgroup).unwrap();
        // 16-sample steps cost 20 passes (Armijo: 3,619 at worst): 3 and 2 steps a dispatch.
        gpu.set_loop_cap(if rule == StepRule::Table { 62 } else { 7_300 });
        let mut cpu = CpuEngine::new(model, &d, runs);
        let mut results = Vec::new();
        for engine in [&mut gpu as &mut dyn Engine, &mut cpu] {
            engine.set_params(&theta).unwrap();
            let mut stats = Vec::new();
            for e in 1..=2 {
                let batches = batching.epoch(e);
                let plan = EpochPlan {
                    batches: &batches,
                    batch_size: 16,
                    steps,
                    lrs: &lrs,
                    rule,
                    read_params: false,
                    evaluate: false,
                };
                let out = engine.run_epoch(&plan).unwrap();
                stats.extend(out.steps.iter().flat_map(|s| [s.loss, s.lr, s.trials]));
            }
            let mut params = engine.params().unwrap();
            params.extend(stats);
            results.push(params);
        }
        let want: Vec<f64> = results[1].iter().map(|&v| v as f64).collect();
        common::assert_close(&format!("{kind:?} {rule:?}, split epochs"), &results[0], &want, RUN_TOL);
    }
}
