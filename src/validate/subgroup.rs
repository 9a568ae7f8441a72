//! The generated subgroup kernels: direct runs against the f64 twin at awkward sizes, the
//! subgroup evaluation, and whole epochs through the engine on them.

use bytemuck::cast_slice;

use super::{
    Bench, Check, KERNEL_TOL, TrainingCase, check_evaluate, f64s, outputs_for, poison, random_dataset, table,
    training_check, uniforms,
};
use crate::{
    cpu::kernels as twin,
    engine::{EpochPlan, StepRule},
    gpu::{
        GpuContext, KernelPath,
        kernel::Recording,
        kernels::{BatchTable, EpochBindings},
    },
    model::{LossCode, ModelKind},
};

/// One direct check of the subgroup training kernel: `runs` runs of `steps` steps of a random
/// problem with `features` features, in dispatches of `per` steps, against `cpu::kernels::train_epoch`.
#[derive(Debug, Clone, Copy)]
pub struct SubgroupCase {
    pub features: usize,
    pub code: LossCode,
    /// Classes of the data (softmax's rows of W; logistic and squares have one row).
    pub classes: usize,
    pub u8: bool,
    pub batch: usize,
    pub runs: usize,
    pub steps: usize,
    pub per: usize,
    pub rule: StepRule,
    /// Every run trains on the same batches, [`crate::gpu::subgroup::SWEEP_GROUP`] runs per
    /// workgroup (the last group partly empty with 5 runs); else each run on its own.
    pub shared: bool,
}

impl SubgroupCase {
    pub fn name(&self) -> String {
        let rule = match self.rule {
            StepRule::Table => "table",
            StepRule::Polyak { .. } => "SPS",
            StepRule::Armijo { .. } => "Armijo",
        };
        format!(
            "train_subgroup {:?} {rule} (p {}, {} classes, {}, b {}, {} run(s){}, {} steps by {})",
            self.code,
            self.features,
            self.classes,
            if self.u8 { "u8" } else { "f32" },
            self.batch,
            self.runs,
            if self.shared { " sharing batches" } else { "" },
            self.steps,
            self.per
        )
    }
}

const POLYAK: StepRule = StepRule::Polyak { c: 0.5, max_lr: 2.0 };
const ARMIJO: StepRule = StepRule::Armijo { c: 0.1, beta: 0.7, growth: 1.5, max_lr: 4.0 };

/// Every loss under every step rule, at awkward sizes (1, 33, 785 features; every load mode of
/// the generated kernel), batches of 1 and 33, 1 and 5 runs, epochs split across dispatches.
pub fn subgroup_cases() -> Vec<SubgroupCase> {
    use LossCode::*;
    let case = |features, code, classes, u8, batch, runs, steps, per, rule| SubgroupCase {
        features,
        code,
        classes,
        u8,
        batch,
        runs,
        steps,
        per,
        rule,
        shared: false,
    };
    let shared = |c: SubgroupCase| SubgroupCase { shared: true, ..c };
    let t = StepRule::Table;
    vec![
        case(1, SoftmaxCe, 2, false, 1, 1, 7, 3, t),
        shared(case(33, SoftmaxCe, 3, true, 33, 5, 5, 2, POLYAK)),
        case(100, SoftmaxCe, 10, false, 17, 1, 4, 3, ARMIJO),
        // MNIST 0–9's size: 1,120 weights a lane, most of them on the stack.
        case(784, SoftmaxCe, 10, true, 64, 1, 4, 3, t),
        case(784, SoftmaxCe, 2, true, 64, 5, 6, 4, t),
        shared(case(784, SoftmaxCe, 2, true, 64, 5, 6, 4, t)),
        case(784, SoftmaxSeedCompat, 2, true, 33, 1, 5, 2, t),
        shared(case(64, SoftmaxSeedCompat, 4, true, 17, 5, 5, 3, POLYAK)),
        case(785, SoftmaxSeedCompat, 2, false, 33, 1, 4, 3, ARMIJO),
        case(1, Logistic, 2, true, 33, 1, 5, 2, t),
        case(785, Logistic, 2, true, 33, 5, 4, 3, POLYAK),
        shared(case(36, Logistic, 2, true, 1, 5, 9, 4, ARMIJO)),
        case(33, Squares, 0, false, 33, 1, 5, 2, t),
        case(36, Squares, 0, false, 17, 5, 5, 3, POLYAK),
        case(784, Squares, 0, true, 1, 5, 7, 3, ARMIJO),
        shared(case(784, Squares, 0, true, 17, 5, 7, 3, ARMIJO)),
    ]
}

/// The subgroup kernel against its f64 twin ([`subgroup_cases`]), then two epochs through the
/// engine on it; empty where the adapter has no subgroups of 8 lanes or more.
pub fn subgroup_checks(ctx_for: &dyn Fn() -> crate::Result<GpuContext>) -> Vec<Check> {
    let ctx = match ctx_for() {
        Ok(ctx) => ctx,
        Err(e) => return vec![Check::failed("train_subgroup", e.to_string())],
    };
    if crate::gpu::subgroup::adapter_unsupported(&ctx).is_some() {
        return Vec::new();
    }
    let mut out: Vec<Check> = subgroup_cases()
        .iter()
        .map(|c| check_subgroup(&ctx, c).unwrap_or_else(|e| Check::failed(c.name(), e.to_string())))
        .collect();
    out.extend(check_evaluate(&ctx, true).unwrap_or_else(|e| vec![Check::failed("evaluate_subgroup", e.to_string())]));
    out.extend(super::residual_checks(&ctx, true));
    drop(ctx);
    let path = KernelPath::Subgroup;
    let case = |name, kind, classes, batch, rule, runs| TrainingCase { name, kind, classes, batch, rule, path, runs };
    let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.2, max_lr: 5.0 };
    for c in [
        case("train softmax subgroup 2 epochs, 3 runs", ModelKind::Softmax, Some(3), 32, StepRule::Table, 3),
        case("train lls subgroup Armijo, 1 run", ModelKind::Lls, None, 64, armijo, 1),
    ] {
        out.push(training_check(ctx_for, &c).unwrap_or_else(|e| Check::failed(c.name, e.to_string())).named(c.name));
    }
    out
}

/// Outcome of one subgroup case: (GPU θ and step statistics, f64 θ and statistics).
pub type SubgroupOutcome = (Vec<f32>, Vec<f32>, Vec<f64>, Vec<f64>);

/// Run one case on the GPU (step statistics poisoned with NaN first) and on the twin.
pub fn run_subgroup_case(ctx: &GpuContext, c: &SubgroupCase) -> crate::Result<SubgroupOutcome> {
    use crate::{gpu::subgroup::SubgroupTrain, shader_source::SubgroupSpec};
    let tag = (c.features * 7 + c.batch + c.runs) as u32;
    let n = 50;
    let classes = if c.classes == 0 { None } else { Some(c.classes) };
    let mut data = random_dataset(n, c.features, classes, c.u8, tag);
    if c.code == LossCode::Logistic {
        data.targets.iter_mut().for_each(|t| *t = (*t > 0.5) as u32 as f32);
    }
    let outputs = outputs_for(c.code, c.classes);
    let dim = outputs * (c.features + 1);
    let b = Bench::new(ctx, data, c.code)?;
    let spec = SubgroupSpec { p: c.features as u32, classes: outputs as u32, model: c.code as u32, x_u8: c.u8 };
    let tables = if !c.shared && c.runs > 1 { c.runs } else { 1 };
    let group = crate::gpu::subgroup::runs_per_group(&spec, c.runs, tables);
    if c.shared && c.runs > 1 && group == 1 {
        return Err(crate::Error::usage("the shared case's runs do not fit one workgroup's registers"));
    }
    let kernel = SubgroupTrain::new(ctx, &b.layout, spec, group)?;
    let batches = table(n, tables * c.steps * c.batch, tag + 1);
    // Rates that keep the random problems stable: about 1 / (the Hessian's scale).
    let scale = if c.u8 { 2.0 / c.features as f32 } else { 1.0 };
    let lrs: Vec<f32> = uniforms(c.runs * c.steps, tag + 2, 0.2, 1.0).iter().map(|l| l * scale).collect();
    let rule = match c.rule {
        StepRule::Polyak { c, max_lr } => StepRule::Polyak { c, max_lr: max_lr * scale },
        StepRule::Armijo { c, beta, growth, max_lr } => StepRule::Armijo { c, beta, growth, max_lr: max_lr * scale },
        r => r,
    };
    let theta = uniforms(c.runs * dim, tag + 3, -0.1, 0.1);
    let plan = EpochPlan {
        batches: &batches,
        batch_size: c.batch,
        steps: c.steps,
        lrs: &lrs,
        rule,
        read_params: true,
        evaluate: false,
    };
    let (tb, lb) = (b.storage("theta", cast_slice(&theta))?, b.storage("lrs", cast_slice(&lrs))?);
    let table = BatchTable::texels(ctx, &batches, &b.data.targets)?;
    let sb = b.storage("stats", &poison(c.runs * c.steps * 4))?;
    let prm = crate::gpu::engine::epoch_params(&plan, c.runs as u32, outputs as u32, dim as u32);
    let mut rec = Recording::new(ctx);
    let bufs = EpochBindings { data: &b.gpu_data.bind, theta: &tb, batches: &table, lrs: &lb, stats: &sb };
    kernel.encode(&mut rec, (prm, c.per), bufs)?;
    let got = b.run(rec, &[(&tb, c.runs * dim), (&sb, c.runs * c.steps * 4)])?;
    let mut want = f64s(&theta);
    let stats = twin::train_epoch(c.code, &b.data, &mut want, &plan, outputs);
    let want_stats =
        stats.iter().flat_map(|s| [s.loss as f64, s.lr as f64, s.grad_sq as f64, s.trials as f64 + 1.0]).collect();
    Ok((got[0].clone(), got[1].clone(), want, want_stats))
}

/// Parameters and per-step (loss, rate, ‖g‖², trials + 1) after the case's steps, each within
/// [`KERNEL_TOL`] of the twin's (normwise over the runs); trial counts equal.
fn check_subgroup(ctx: &GpuContext, c: &SubgroupCase) -> crate::Result<Check> {
    let (theta, stats, want_theta, want_stats) = run_subgroup_case(ctx, c)?;
    let mut check = Check::compare(c.name(), &theta, &want_theta, KERNEL_TOL);
    for (field, what) in ["loss", "rate", "|g|²", "trials"].iter().enumerate() {
        let got: Vec<f32> = stats.iter().skip(field).step_by(4).copied().collect();
        let want: Vec<f64> = want_stats.iter().skip(field).step_by(4).copied().collect();
        let part = Check::compare(c.name(), &got, &want, KERNEL_TOL);
        if !part.passed {
            let why = part.note.unwrap_or_else(|| format!("error {:.2e}", part.max_error));
            check.note = Some(format!("step {what}: {why}"));
            check.passed = false;
        }
        check.max_error = check.max_error.max(part.max_error);
    }
    Ok(check)
}
