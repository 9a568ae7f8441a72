//! Whole epochs through the engine interface: the fused GPU kernel against the unfused GPU
//! kernels and against the f64 CPU reference, for every model and step rule.
//! Tolerance: parameters and metrics within 1e-4 relative after the run (f32 against f64 over
//! dozens of dependent steps).

mod common;

use common::*;
use steplens::{
    cpu::CpuEngine,
    engine::{Engine, EpochPlan, StepRule},
    gpu::{GpuEngine, KernelPath},
    model::{LossKind, Model, ModelKind},
    train::Batching,
};

const TOL: f64 = 1e-4;

fn model_for(kind: ModelKind, loss: LossKind, data: &steplens::data::Data) -> Model {
    Model::for_data(kind, loss, &data.train).unwrap()
}

/// Train `epochs` epochs of `runs` runs; returns (params, per-epoch train losses, step stats).
fn train(
    engine: &mut dyn Engine,
    batching: &Batching,
    epochs: usize,
    lrs: &[f32],
    rule: StepRule,
) -> (Vec<f32>, Vec<f64>, Vec<f32>) {
    let steps = batching.steps();
    let mut losses = Vec::new();
    let mut stats = Vec::new();
    for e in 1..=epochs {
        let batches = batching.epoch(e);
        let plan = EpochPlan {
            batches: &batches,
            batch_size: batching.batch_size,
            steps,
            lrs,
            rule,
            read_params: false,
            evaluate: true,
        };
        let out = engine.run_epoch(&plan).unwrap();
        losses.extend(out.eval.train.iter().map(|m| m.loss));
        losses.extend(out.eval.test.unwrap().iter().map(|m| m.loss));
        stats.extend(out.steps.iter().flat_map(|s| [s.loss, s.lr]));
    }
    (engine.params().unwrap(), losses, stats)
}

fn compare(kind: ModelKind, loss: LossKind, classes: Option<usize>, batch: usize, rule: StepRule, tag: u32) {
    compare_p(kind, loss, classes, batch, rule, tag, 37, 3);
}

#[allow(clippy::too_many_arguments)]
fn compare_p(
    kind: ModelKind,
    loss: LossKind,
    classes: Option<usize>,
    batch: usize,
    rule: StepRule,
    tag: u32,
    p: usize,
    runs: usize,
) {
    let u8 = tag.is_multiple_of(2);
    let d = data(dataset(257, p, classes, u8, tag), Some(dataset(61, p, classes, u8, tag + 1)));
    let model = model_for(kind, loss, &d);
    let theta: Vec<f32> = (0..runs).flat_map(|r| model.init(steplens::model::InitKind::Xavier, r as u64)).collect();
    let batching = Batching::new(d.train.n, batch, 7, true).unwrap();
    let steps = batching.steps();
    let lrs: Vec<f32> = (0..runs * steps).map(|i| 0.05 + 0.1 * (i / steps) as f32).collect();
    let ctx = gpu();
    let mut fused = GpuEngine::new(ctx, model, &d, runs, KernelPath::Fused).unwrap();
    let mut cpu = CpuEngine::new(model, &d, runs);
    fused.set_params(&theta).unwrap();
    cpu.set_params(&theta).unwrap();
    let (pf, lf, sf) = train(&mut fused, &batching, 2, &lrs, rule);
    let (pc, lc, sc) = train(&mut cpu, &batching, 2, &lrs, rule);
    let what = format!("{kind:?}/{loss:?} b={batch} {rule:?}");
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    assert_close(&format!("{what}: params, fused vs CPU"), &pf, &f64s(&pc), TOL);
    assert_close(&format!("{what}: losses, fused vs CPU"), &lf.iter().map(|&x| x as f32).collect::<Vec<_>>(), &lc, TOL);
    assert_close(&format!("{what}: step stats, fused vs CPU"), &sf, &f64s(&sc), TOL);
    if rule == StepRule::Table {
        let mut unfused = GpuEngine::new(gpu(), model, &d, runs, KernelPath::Unfused).unwrap();
        unfused.set_params(&theta).unwrap();
        let (pu, lu, su) = train(&mut unfused, &batching, 2, &lrs, rule);
        assert_close(&format!("{what}: params, fused vs unfused"), &pf, &f64s(&pu), TOL);
        assert_close(&format!("{what}: step losses and rates, unfused vs CPU"), &su, &f64s(&sc), TOL);
        assert_close(
            &format!("{what}: losses, fused vs unfused"),
            &lf.iter().map(|&x| x as f32).collect::<Vec<_>>(),
            &lu,
            TOL,
        );
    }
}

#[test]
fn softmax_fused_matches_unfused_and_cpu() {
    compare(ModelKind::Softmax, LossKind::Ce, Some(3), 32, StepRule::Table, 0);
    compare(ModelKind::Softmax, LossKind::Ce, Some(10), 100, StepRule::Table, 1);
    compare(ModelKind::Softmax, LossKind::Ce, Some(2), 1, StepRule::Table, 2);
}

#[test]
fn seed_compat_fused_matches_unfused_and_cpu() {
    compare(ModelKind::Softmax, LossKind::SeedCompat, Some(2), 64, StepRule::Table, 3);
}

#[test]
fn logreg_and_lls_fused_match_unfused_and_cpu() {
    compare(ModelKind::Logreg, LossKind::Ce, Some(2), 33, StepRule::Table, 4);
    compare(ModelKind::Lls, LossKind::Ce, None, 65, StepRule::Table, 5);
}

#[test]
fn polyak_and_armijo_rules_match_cpu() {
    // Rates capped where the random problem stays well-conditioned, so f32 rounding is not amplified.
    let polyak = StepRule::Polyak { c: 0.5, max_lr: 0.5 };
    let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.2, max_lr: 5.0 };
    compare(ModelKind::Softmax, LossKind::Ce, Some(3), 32, polyak, 6);
    compare(ModelKind::Logreg, LossKind::Ce, Some(2), 16, armijo, 7);
    compare(ModelKind::Lls, LossKind::Ce, None, 64, armijo, 8);
}

#[test]
fn mnist_sized_rows() {
    compare_p(ModelKind::Softmax, LossKind::Ce, Some(2), 64, StepRule::Table, 10, 784, 3);
}

/// Five runs sharing their batches take the unfused kernels' 4 × 4 tiles (a sweep on a CPU adapter).
#[test]
fn sweep_sized_runs_take_the_tiled_kernels() {
    compare_p(ModelKind::Softmax, LossKind::Ce, Some(3), 32, StepRule::Table, 11, 37, 5);
    compare_p(ModelKind::Logreg, LossKind::Ce, Some(2), 17, StepRule::Table, 12, 37, 6);
}

/// A whole MNIST 0/1 epoch (197 steps of 64): long fused epochs must run every step (lavapipe
/// once ended a single long dispatch after 45 steps, silently).
#[test]
fn full_mnist_epoch_fused_matches_cpu() {
    let d = steplens::data::mnist::embedded_01().unwrap();
    let model = model_for(ModelKind::Softmax, LossKind::Ce, &d);
    let theta = model.init(steplens::model::InitKind::Xavier, 0);
    let batching = Batching::new(d.train.n, 64, 0, false).unwrap();
    let lrs = vec![0.005f32; batching.steps()];
    let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
    let mut c = CpuEngine::new(model, &d, 1);
    g.set_params(&theta).unwrap();
    c.set_params(&theta).unwrap();
    let (pg, lg, sg) = train(&mut g, &batching, 1, &lrs, StepRule::Table);
    let (pc, lc, sc) = train(&mut c, &batching, 1, &lrs, StepRule::Table);
    let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<_>>();
    assert_close("MNIST epoch: params", &pg, &f64s(&pc), TOL);
    assert_close("MNIST epoch: metrics", &lg.iter().map(|&x| x as f32).collect::<Vec<_>>(), &lc, TOL);
    assert_close("MNIST epoch: step losses", &sg, &f64s(&sc), TOL);
}
