//! The analysis' checks: the perturbations and the fused residuals against their twins, and a
//! few batches of the default analysis on the GPU against the CPU's full SVD.

use bytemuck::cast_slice;

use super::{Bench, Check, KERNEL_TOL, RUN_TOL, f64s, poison, random_dataset, table, uniforms};
use crate::{
    analysis::{self, Batches, Settings, SvdMethod},
    cpu::{CpuEngine, kernels as twin},
    data::Data,
    engine::{Block, Perturbation},
    gpu::{
        GpuContext, GpuEngine, KernelPath,
        kernel::Recording,
        kernels::{Perturb, PerturbParams, ResidualParams, Residuals},
    },
    model::{InitKind, LossCode, LossKind, Model, ModelKind},
    train::Batching,
};

/// (samples, features, b, K, batches, classes, u8 pixels, loss, perturbation) of the fused
/// residual checks: 1, 33, 784 and 785 features, one and many batches, b = 1, 17, 33, 65 (not
/// multiples of the samples an invocation takes, `Residuals::samples`), 1 to 10 classes, every
/// loss, both perturbations; the two-class softmax's one sum (`PAIR`) under both losses, with
/// whole tiles (32 samples on the subgroup kernel, 16 on residuals.wgsl) and a partial one, on
/// aligned u8 rows and unaligned ones.
#[allow(clippy::type_complexity)]
pub const RESIDUAL_SHAPES: &[(usize, usize, usize, usize, usize, usize, bool, LossCode, bool)] = &[
    (5, 1, 1, 1, 1, 2, false, LossCode::SoftmaxCe, false),
    (50, 33, 33, 7, 2, 3, true, LossCode::SoftmaxSeedCompat, true),
    (70, 785, 17, 5, 3, 1, false, LossCode::Logistic, false),
    (90, 784, 32, 100, 2, 2, true, LossCode::SoftmaxCe, false),
    (60, 785, 33, 9, 5, 10, true, LossCode::SoftmaxCe, true),
    (40, 33, 65, 3, 4, 1, true, LossCode::Squares, true),
    (80, 784, 33, 13, 3, 2, true, LossCode::SoftmaxSeedCompat, false),
    (45, 785, 35, 9, 2, 2, true, LossCode::SoftmaxCe, true),
];

/// The name of residual check `k` (`broadcast`: of the generated `residuals_subgroup`).
pub(super) fn residuals_check_name(k: usize, broadcast: bool) -> String {
    let kernel = if broadcast { "residuals_subgroup" } else { "residuals" };
    format!("{kernel} {:?} (shape {k})", RESIDUAL_SHAPES[k].7)
}

/// `residuals.wgsl` (or, `broadcast`, the generated `residuals_subgroup`, whose K of 1, 3, 5, 7, 9 and 100
/// leave partial subgroups) against its twin: random base logits, δ drawn on both sides.
pub(super) fn check_residuals(ctx: &GpuContext, k: usize, broadcast: bool) -> crate::Result<Check> {
    let (n, p, rows, points, groups, classes, u8, code, gaussian) = RESIDUAL_SHAPES[k];
    let mut data = random_dataset(n, p, Some(classes.max(2)), u8, 20 + k as u32);
    if code == LossCode::Squares {
        data.targets = uniforms(n, 90 + k as u32, -2.0, 2.0);
    }
    let b = Bench::new(ctx, data, code)?;
    let tab = table(n, groups * rows, 30 + k as u32);
    let ids: Vec<u32> = (0..groups as u32).map(|g| 5 * g + 2).collect();
    let base = uniforms(groups * rows * classes, 80 + k as u32, -3.0, 3.0);
    let theta = vec![0.0f32; classes * (p + 1)];
    let perturbation =
        if gaussian { Perturbation::Gaussian { sigma: 0.02 } } else { Perturbation::Uniform { scale: 0.01 } };
    let req = crate::engine::PerturbedRequest {
        theta: &theta,
        batches: &tab,
        batch_ids: &ids,
        batch_size: rows,
        points,
        perturbation,
        seed: 42,
        stream: 3,
        block: Block::All,
        grad_scale: -0.7,
    };
    let len = groups * points * rows * classes;
    let (bb, ib, tb, ob) = (
        b.storage("base", cast_slice(&base))?,
        b.storage("ids", cast_slice(&ids))?,
        b.storage("table", cast_slice(&tab))?,
        b.storage("residuals", &poison(len))?,
    );
    let prm = ResidualParams::new(groups as u32, points as u32, rows as u32, perturbation, 42, 3, -0.7 / rows as f32);
    let kernel = Residuals::new(ctx, &b.layout, &b.spec, (classes as u32, p as u32), prm.kind, broadcast)?;
    let mut rec = Recording::new(ctx);
    kernel.encode(&mut rec, &b.gpu_data.bind, prm, &bb, &ib, &tb, &ob)?;
    let got = b.run(rec, &[(&ob, len)])?;
    let want = twin::residuals(code, &b.data, &f64s(&base), &req, classes);
    Ok(Check::compare(residuals_check_name(k, broadcast), &got[0], &want, KERNEL_TOL))
}

/// K perturbed copies of θ per batch (four parameters per invocation, so dims 1, 33 and 785 leave
/// partial quads), uniform and Gaussian, against the CPU's draws of the same counter PRNG.
pub(super) fn check_perturb(ctx: &GpuContext) -> crate::Result<Vec<Check>> {
    let b = Bench::new(ctx, random_dataset(4, 3, Some(2), false, 0), LossCode::SoftmaxCe)?;
    let kernel = Perturb::new(ctx, &b.layout, &b.spec)?;
    let mut out = Vec::new();
    let kinds = [Perturbation::Uniform { scale: 0.01 }, Perturbation::Gaussian { sigma: 0.5 }];
    for ((batches, points, dim), perturbation) in
        [(1usize, 1usize, 1usize), (2, 5, 33), (3, 7, 785), (1, 100, 1570)].into_iter().zip(kinds.into_iter().cycle())
    {
        let theta = uniforms(dim, 7, -1.0, 1.0);
        let ids: Vec<u32> = (0..batches as u32).map(|i| 3 * i + 1).collect();
        let sets = batches * points;
        let (tb, ib) = (b.storage("theta", cast_slice(&theta))?, b.storage("ids", cast_slice(&ids))?);
        let pb = b.storage("perturbed", &poison(sets * dim))?;
        let prm = PerturbParams::new(sets as u32, points as u32, dim as u32, perturbation, 42, 3);
        let mut rec = Recording::new(ctx);
        kernel.encode(&mut rec, prm, &tb, &ib, &pb)?;
        let got = b.run(rec, &[(&pb, sets * dim)])?;
        let want = twin::perturb(&theta, &ids, points, perturbation, 42, 3);
        out.push(Check::compare(format!("perturb {batches}x{points}x{dim}"), &got[0], &want, KERNEL_TOL));
    }
    Ok(out)
}

/// A few batches of the analysis: q and σ from the GPU's residual path against the CPU's full SVD.
pub fn analysis_check(ctx: GpuContext) -> crate::Result<Check> {
    let d = Data { train: random_dataset(300, 60, Some(2), true, 3), test: None };
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &d.train)?;
    let theta = model.init(InitKind::Xavier, 4);
    let batching = Batching::new(300, 20, 1, false)?;
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: 20, n: 300 };
    let which = [0usize, 3, 14];
    let settings = |method| Settings {
        points: 24,
        perturbation: Perturbation::Uniform { scale: 0.01 },
        block: Block::All,
        seed: 5,
        center: true,
        method,
    };
    let mut gpu = GpuEngine::new(ctx, model, &d, 1, KernelPath::Fused)?;
    let mut cpu = CpuEngine::new(model, &d, 1);
    let g = analysis::analyze(&mut gpu, &theta, &batches, &which, &settings(SvdMethod::Residual), 2, &mut |_| {})?;
    let c = analysis::analyze(&mut cpu, &theta, &batches, &which, &settings(SvdMethod::Full), 2, &mut |_| {})?;
    let mut got = Vec::new();
    let mut want = Vec::new();
    for (a, b) in g.iter().zip(&c) {
        got.extend(&a.q);
        want.extend(f64s(&b.q));
        got.extend(a.sigma.iter().take(2).map(|&s| (s / b.sigma[0]) as f32));
        want.extend(b.sigma.iter().take(2).map(|&s| s / b.sigma[0]));
    }
    Ok(Check::compare("analysis q, σ (3 batches)", &got, &want, RUN_TOL))
}
