//! Whole epochs through the engine against the CPU engine: the fused and unfused kernels under
//! every step rule.

use super::{Check, RUN_TOL, f64s, random_dataset};
use crate::{
    cpu::CpuEngine,
    data::Data,
    engine::{Engine, EpochPlan, StepRule},
    gpu::{GpuContext, GpuEngine, KernelPath},
    model::{InitKind, LossKind, Model, ModelKind},
    train::Batching,
};

/// Two epochs against the CPU reference: the fused kernel under every rule, and the unfused
/// kernels (what `--kernels auto` runs on CPU adapters) for one run and for 5 runs sharing their
/// batches (the tiled variants, as in a sweep).
pub fn training_checks(ctx_for: &dyn Fn() -> crate::Result<GpuContext>) -> Vec<Check> {
    let (fused, unfused) = (KernelPath::Fused, KernelPath::Unfused);
    let polyak = StepRule::Polyak { c: 0.5, max_lr: 0.5 };
    let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.2, max_lr: 5.0 };
    let case =
        |name, kind, classes, batch, rule, path, runs| TrainingCase { name, kind, classes, batch, rule, path, runs };
    [
        case("train softmax 2 epochs", ModelKind::Softmax, Some(3), 32, StepRule::Table, fused, 3),
        case("train lls 2 epochs", ModelKind::Lls, None, 65, StepRule::Table, fused, 3),
        case("train logreg SPS", ModelKind::Logreg, Some(2), 16, polyak, fused, 3),
        case("train lls Armijo", ModelKind::Lls, None, 64, armijo, fused, 3),
        // 32 steps an epoch: the rate must carry across the 16-step dispatches of the fused kernel.
        case("train lls Armijo across dispatches", ModelKind::Lls, None, 8, armijo, fused, 2),
        case("train softmax unfused, 1 run", ModelKind::Softmax, Some(3), 32, StepRule::Table, unfused, 1),
        case("train logreg unfused, 5 runs", ModelKind::Logreg, Some(2), 33, StepRule::Table, unfused, 5),
    ]
    .iter()
    .map(|c| training_check(ctx_for, c).unwrap_or_else(|e| Check::failed(c.name, e.to_string())).named(c.name))
    .collect()
}

/// Two epochs of `runs` runs of a random problem, on the kernels `path`, under `rule`.
pub struct TrainingCase {
    pub name: &'static str,
    pub kind: ModelKind,
    pub classes: Option<usize>,
    pub batch: usize,
    pub rule: StepRule,
    pub path: KernelPath,
    pub runs: usize,
}

/// Parameters after two epochs on the GPU and on the CPU reference.
pub fn training_check(ctx_for: &dyn Fn() -> crate::Result<GpuContext>, case: &TrainingCase) -> crate::Result<Check> {
    let &TrainingCase { kind, classes, batch, rule, path, runs, .. } = case;
    let d =
        Data { train: random_dataset(257, 37, classes, true, 7), test: Some(random_dataset(61, 37, classes, true, 8)) };
    let model = Model::for_data(kind, LossKind::Ce, &d.train)?;
    let theta: Vec<f32> = (0..runs).flat_map(|r| model.init(InitKind::Xavier, r as u64)).collect();
    let batching = Batching::new(d.train.n, batch, 7, true)?;
    let steps = batching.steps();
    let lrs: Vec<f32> = (0..runs * steps).map(|i| 0.05 + 0.1 * (i / steps) as f32).collect();
    let mut gpu = GpuEngine::new(ctx_for()?, model, &d, runs, path)?;
    let mut cpu = CpuEngine::new(model, &d, runs);
    let mut results = Vec::new();
    for engine in [&mut gpu as &mut dyn Engine, &mut cpu] {
        engine.set_params(&theta)?;
        let mut losses = Vec::new();
        for e in 1..=2 {
            let batches = batching.epoch(e);
            let plan = EpochPlan {
                batches: &batches,
                batch_size: batch,
                steps,
                lrs: &lrs,
                rule,
                read_params: false,
                evaluate: true,
            };
            let out = engine.run_epoch(&plan)?;
            losses.extend(out.eval.train.iter().map(|m| m.loss as f32));
        }
        let mut params = engine.params()?;
        params.extend(losses);
        results.push(params);
    }
    Ok(Check::compare("", &results[0], &f64s(&results[1]), RUN_TOL))
}
