//! Cross-checks of the GPU against the f64 CPU reference, used by `steplens validate` (every
//! adapter of every backend) and by the test suite: every kernel on fresh random inputs (never
//! zeros) at awkward sizes with NaN-poisoned outputs, a fused training run, and the analysis.

use bytemuck::cast_slice;
use serde::Serialize;

use crate::{
    cpu::kernels as twin,
    data::{Dataset, Features},
    engine::{GradBlock, RowGroups},
    gpu::{
        GpuContext,
        engine::GpuData,
        kernel::{Recording, data_layout},
        kernels::{
            Dlogits, Evaluate, EvaluationBindings, Logits, Rows, SgdParams, SgdUpdate, Specialisation, WeightGrad,
        },
    },
    model::LossCode,
    prng,
};

mod analysis;
mod subgroup;
mod training;

pub use analysis::{RESIDUAL_SHAPES, analysis_check};
use analysis::{check_perturb, check_residuals, residuals_check_name};

pub use subgroup::{SubgroupCase, SubgroupOutcome, run_subgroup_case, subgroup_cases, subgroup_checks};
pub use training::{TrainingCase, training_check, training_checks};

/// f32 kernels against f64: normwise relative error.
pub const KERNEL_TOL: f64 = 1e-5;
/// Whole runs (dozens of dependent f32 steps) and directions through an eigen-decomposition.
pub const RUN_TOL: f64 = 1e-4;

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    /// Normwise relative error against the reference (NaN where the check could not run).
    pub max_error: f64,
    pub tolerance: f64,
    pub passed: bool,
    /// Why a check failed or could not run.
    pub note: Option<String>,
}

impl Check {
    fn compare(name: impl Into<String>, got: &[f32], want: &[f64], tolerance: f64) -> Check {
        let name = name.into();
        if got.len() != want.len() {
            return Check::failed(name, format!("{} values, expected {}", got.len(), want.len()));
        }
        if let Some(i) = got.iter().position(|v| !v.is_finite()) {
            return Check::failed(name, format!("element {i} is not finite: unwritten (poisoned) or overflowed"));
        }
        let e = rel_err(got, want);
        Check { name, max_error: e, tolerance, passed: e <= tolerance, note: None }
    }

    pub fn failed(name: impl Into<String>, why: impl Into<String>) -> Check {
        Check { name: name.into(), max_error: f64::NAN, tolerance: f64::NAN, passed: false, note: Some(why.into()) }
    }

    fn named(mut self, name: &str) -> Check {
        self.name = name.into();
        self
    }
}

/// max |a − b| / max |b|.
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

/// Uniform in [lo, hi) from a stream of the counter PRNG.
pub fn uniforms(n: usize, tag: u32, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|i| lo + (hi - lo) * prng::uniform(99, 1000 + tag, 0, 0, i as u32)).collect()
}

/// A random dataset of n × p non-zero features; `classes` classes or real targets.
pub fn random_dataset(n: usize, p: usize, classes: Option<usize>, u8_features: bool, tag: u32) -> Dataset {
    let features = if u8_features {
        Features::U8((0..n * p).map(|i| 1 + (prng::hash(5, tag, 0, 0, i as u32) % 255) as u8).collect())
    } else {
        Features::F32(uniforms(n * p, tag, -1.0, 1.0))
    };
    let targets = match classes {
        Some(k) => (0..n).map(|i| (prng::hash(6, tag, 0, 0, i as u32) as usize % k) as f32).collect(),
        None => uniforms(n, tag + 1, -2.0, 2.0),
    };
    Dataset { name: format!("random {n}x{p}"), n, p, features, targets, classes }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// NaN bytes: outputs start poisoned so unwritten elements show.
fn poison(len: usize) -> Vec<u8> {
    cast_slice(&vec![f32::NAN; len]).to_vec()
}

/// (samples, features, rows per group, sets per group, groups, classes, u8 pixels): sizes that
/// are not multiples of any workgroup size, one sample, one feature, 785 features.
pub const SHAPES: &[(usize, usize, u32, u32, u32, usize, bool)] = &[
    (5, 1, 1, 1, 1, 2, false),
    (50, 33, 33, 3, 2, 3, true),
    (70, 785, 64, 1, 3, 2, false),
    (40, 17, 7, 5, 1, 10, true),
    (90, 784, 32, 2, 2, 1, true),
    (60, 785, 33, 6, 2, 2, false),
];

struct Bench<'c> {
    ctx: &'c GpuContext,
    layout: wgpu::BindGroupLayout,
    spec: Specialisation,
    data: Dataset,
    gpu_data: GpuData,
}

impl<'c> Bench<'c> {
    fn new(ctx: &'c GpuContext, data: Dataset, code: LossCode) -> crate::Result<Bench<'c>> {
        let layout = data_layout(ctx);
        let x_u8 = matches!(data.features, Features::U8(_));
        let gpu_data = GpuData::upload(ctx, &layout, &data)?;
        Ok(Bench {
            ctx,
            layout,
            spec: Specialisation { model: code as u32, x_u8, textured: gpu_data.textured },
            data,
            gpu_data,
        })
    }

    fn storage(&self, label: &str, bytes: &[u8]) -> crate::Result<wgpu::Buffer> {
        self.ctx.buffer_init(label, bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC)
    }

    fn run(&self, rec: Recording, outs: &[(&wgpu::Buffer, usize)]) -> crate::Result<Vec<Vec<f32>>> {
        let mut enc = self.ctx.encoder();
        rec.encode(self.ctx, &mut enc, None)?;
        let ranges: Vec<_> = outs.iter().map(|(b, n)| (*b, 0u64, *n as u64 * 4)).collect();
        Ok(self.ctx.submit_and_read(enc, &ranges)?.iter().map(|b| cast_slice(b).to_vec()).collect())
    }
}

fn table(n: usize, len: usize, tag: u32) -> Vec<u32> {
    (0..len).map(|i| prng::hash(11, tag, 0, 0, i as u32) % n as u32).collect()
}

fn row_groups(rows: u32, spg: u32, groups: u32) -> RowGroups {
    // An offset and a stride that are not the trivial ones.
    RowGroups { groups, sets_per_group: spg, rows, offset: 3, stride: rows + 2 }
}

const CODES: [LossCode; 4] = [LossCode::SoftmaxCe, LossCode::SoftmaxSeedCompat, LossCode::Logistic, LossCode::Squares];

fn outputs_for(code: LossCode, classes: usize) -> usize {
    if matches!(code, LossCode::Logistic | LossCode::Squares) { 1 } else { classes.max(2) }
}

/// Every kernel against its CPU twin.
pub fn kernel_checks(ctx: &GpuContext) -> Vec<Check> {
    let mut out = Vec::new();
    for (k, &shape) in SHAPES.iter().enumerate() {
        let name = |kernel: &str| format!("{kernel} (shape {k})");
        out.push(check_logits(ctx, k, shape).unwrap_or_else(|e| Check::failed(name("logits"), e.to_string())));
        for code in CODES {
            let n = name(&format!("dlogits {code:?}"));
            out.push(check_dlogits(ctx, k, shape, code).unwrap_or_else(|e| Check::failed(n, e.to_string())));
        }
        out.extend(
            check_weight_grad(ctx, k, shape)
                .unwrap_or_else(|e| vec![Check::failed(name("weight_grad"), e.to_string())]),
        );
    }
    out.extend(check_sgd(ctx).unwrap_or_else(|e| vec![Check::failed("sgd_update", e.to_string())]));
    out.extend(check_evaluate(ctx, false).unwrap_or_else(|e| vec![Check::failed("evaluate", e.to_string())]));
    out.extend(check_perturb(ctx).unwrap_or_else(|e| vec![Check::failed("perturb", e.to_string())]));
    out.extend(residual_checks(ctx, false));
    out
}

/// The residual kernel against its twin at every [`RESIDUAL_SHAPES`] (`broadcast`: the subgroup one).
fn residual_checks(ctx: &GpuContext, broadcast: bool) -> Vec<Check> {
    (0..RESIDUAL_SHAPES.len())
        .map(|k| {
            check_residuals(ctx, k, broadcast)
                .unwrap_or_else(|e| Check::failed(residuals_check_name(k, broadcast), e.to_string()))
        })
        .collect()
}

fn check_logits(
    ctx: &GpuContext,
    k: usize,
    (n, p, r, spg, groups, classes, u8): (usize, usize, u32, u32, u32, usize, bool),
) -> crate::Result<Check> {
    let b = Bench::new(ctx, random_dataset(n, p, Some(classes.max(2)), u8, k as u32), LossCode::SoftmaxCe)?;
    let rg = row_groups(r, spg, groups);
    let dim = classes * (p + 1);
    let theta = uniforms(rg.sets() as usize * dim, 40 + k as u32, -1.0, 1.0);
    let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
    let len = (rg.sets() * r) as usize * classes;
    let (tb, rb, ob) = (
        b.storage("theta", cast_slice(&theta))?,
        b.storage("table", cast_slice(&tab))?,
        b.storage("out", &poison(len))?,
    );
    let kernel = Logits::new(ctx, &b.layout, &b.spec)?;
    let mut rec = Recording::new(ctx);
    let at = Rows { data: &b.gpu_data.bind, table: &rb, groups: rg, classes: classes as u32 };
    kernel.encode(&mut rec, at, dim as u32, &tb, &ob)?;
    let got = b.run(rec, &[(&ob, len)])?;
    let want = twin::logits(&b.data, &f64s(&theta), rg, classes, dim, &tab);
    Ok(Check::compare(format!("logits (shape {k})"), &got[0], &want, KERNEL_TOL))
}

fn check_dlogits(
    ctx: &GpuContext,
    k: usize,
    (n, p, r, spg, groups, classes, u8): (usize, usize, u32, u32, u32, usize, bool),
    code: LossCode,
) -> crate::Result<Check> {
    let classes = outputs_for(code, classes);
    let mut data = random_dataset(n, p, Some(classes.max(2)), u8, k as u32);
    if code == LossCode::Squares {
        data.targets = uniforms(n, 70 + k as u32, -2.0, 2.0);
    }
    let b = Bench::new(ctx, data, code)?;
    let rg = row_groups(r, spg, groups);
    let len = (rg.sets() * r) as usize;
    let z = uniforms(len * classes, 50 + k as u32, -4.0, 4.0);
    let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
    let (zb, rb) = (b.storage("z", cast_slice(&z))?, b.storage("table", cast_slice(&tab))?);
    // The losses land at an offset, as training's per-step losses do.
    let at = 3;
    let (db, lb) = (b.storage("dz", &poison(len * classes))?, b.storage("loss", &poison(at + len))?);
    let kernel = Dlogits::new(ctx, &b.layout, &b.spec)?;
    let mut rec = Recording::new(ctx);
    let scale = 1.0 / 3.0;
    let rows = Rows { data: &b.gpu_data.bind, table: &rb, groups: rg, classes: classes as u32 };
    kernel.encode(&mut rec, rows, scale, (&zb, &db), (&lb, at as u32))?;
    let got = b.run(rec, &[(&db, len * classes), (&lb, at + len)])?;
    let (want_dz, want_loss) = twin::dlogits(code, &b.data, &f64s(&z), rg, classes, scale as f64, &tab);
    let mut all_got = got[0].clone();
    all_got.extend(&got[1][at..]);
    let mut all_want = want_dz;
    all_want.extend(want_loss);
    Ok(Check::compare(format!("dlogits {code:?} (shape {k})"), &all_got, &all_want, KERNEL_TOL))
}

fn check_weight_grad(
    ctx: &GpuContext,
    k: usize,
    (n, p, r, spg, groups, classes, u8): (usize, usize, u32, u32, u32, usize, bool),
) -> crate::Result<Vec<Check>> {
    let b = Bench::new(ctx, random_dataset(n, p, Some(classes.max(2)), u8, k as u32), LossCode::SoftmaxCe)?;
    let rg = row_groups(r, spg, groups);
    let dz = uniforms((rg.sets() * r) as usize * classes, 60 + k as u32, -1.0, 1.0);
    let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
    let kernel = WeightGrad::new(ctx, &b.layout, &b.spec)?;
    let blocks = [
        GradBlock { c0: 0, nrows: classes as u32, with_bias: true, p: p as u32 },
        GradBlock { c0: (classes - 1) as u32, nrows: 1, with_bias: false, p: p as u32 },
    ];
    let mut out = Vec::new();
    for block in blocks {
        let len = rg.sets() as usize * block.dim() as usize;
        let (db, rb, gb) =
            (b.storage("dz", cast_slice(&dz))?, b.storage("table", cast_slice(&tab))?, b.storage("g", &poison(len))?);
        let mut rec = Recording::new(ctx);
        let at = Rows { data: &b.gpu_data.bind, table: &rb, groups: rg, classes: classes as u32 };
        kernel.encode(&mut rec, at, block, &db, &gb)?;
        let got = b.run(rec, &[(&gb, len)])?;
        let want = twin::weight_grad(&b.data, &f64s(&dz), rg, classes, block, &tab);
        let what = if block.with_bias { "all rows" } else { "one row" };
        out.push(Check::compare(format!("weight_grad {what} (shape {k})"), &got[0], &want, KERNEL_TOL));
    }
    Ok(out)
}

fn check_sgd(ctx: &GpuContext) -> crate::Result<Vec<Check>> {
    let b = Bench::new(ctx, random_dataset(4, 3, Some(2), false, 0), LossCode::SoftmaxCe)?;
    let kernel = SgdUpdate::new(ctx, &b.layout, &b.spec)?;
    let mut out = Vec::new();
    for (sets, dim) in [(1usize, 1usize), (3, 33), (2, 785), (5, 1570)] {
        let theta = uniforms(sets * dim, 1, -1.0, 1.0);
        let grads = uniforms(sets * dim, 2, -1.0, 1.0);
        let lrs = uniforms(sets * 4, 3, 0.01, 2.0);
        let (tb, gb, lb) = (
            b.storage("theta", cast_slice(&theta))?,
            b.storage("g", cast_slice(&grads))?,
            b.storage("lr", cast_slice(&lrs))?,
        );
        let mut rec = Recording::new(ctx);
        kernel.encode(
            &mut rec,
            SgdParams { sets: sets as u32, dim: dim as u32, lr_stride: 4, lr_index: 2 },
            &tb,
            &gb,
            &lb,
        )?;
        let got = b.run(rec, &[(&tb, sets * dim)])?;
        let mut want = f64s(&theta);
        twin::sgd_update(&mut want, &f64s(&grads), &f64s(&lrs), dim, 4, 2);
        out.push(Check::compare(format!("sgd_update {sets}x{dim}"), &got[0], &want, KERNEL_TOL));
    }
    Ok(out)
}

/// The whole-set evaluation (with `subgroup`, the generated subgroup one) against its twin.
fn check_evaluate(ctx: &GpuContext, subgroup: bool) -> crate::Result<Vec<Check>> {
    let mut out = Vec::new();
    for (k, &(n, p, classes, sets)) in
        [(1usize, 1usize, 2usize, 1usize), (257, 33, 3, 2), (600, 785, 2, 3), (33, 64, 10, 1)].iter().enumerate()
    {
        for code in CODES {
            let classes = outputs_for(code, classes);
            let b = Bench::new(ctx, random_dataset(n, p, Some(classes.max(2)), k % 2 == 0, 20 + k as u32), code)?;
            let dim = classes * (p + 1);
            let theta = uniforms(sets * dim, 80 + k as u32, -0.2, 0.2);
            let tb = b.storage("theta", cast_slice(&theta))?;
            let pb = b.storage("partials", &poison((Evaluate::partials_size(sets as u32, n) / 4) as usize))?;
            let ob = b.storage("totals", &poison(sets * 2))?;
            let kernel = Evaluate::new(ctx, &b.layout, &b.spec)?;
            let mut rec = Recording::new(ctx);
            let name = if subgroup { "evaluate_subgroup" } else { "evaluate" };
            let sub = if subgroup {
                let spec = crate::shader_source::SubgroupSpec {
                    p: p as u32,
                    classes: classes as u32,
                    model: code as u32,
                    x_u8: k % 2 == 0,
                };
                Some(crate::gpu::subgroup::SubgroupEvaluate::new(ctx, &b.layout, spec)?)
            } else {
                None
            };
            let bind = EvaluationBindings { data: &b.gpu_data.bind, n, theta: &tb, partials: &pb, totals: &ob };
            match &sub {
                Some(sub) => sub.encode(&mut rec, &kernel, sets as u32, bind)?,
                None => kernel.encode(&mut rec, (sets as u32, classes as u32, dim as u32), bind)?,
            }
            let got = b.run(rec, &[(&ob, sets * 2)])?;
            let reference = twin::evaluate(code, &b.data, &f64s(&theta), classes, dim);
            let losses: Vec<f32> = got[0].iter().step_by(2).copied().collect();
            let want: Vec<f64> = reference.iter().map(|(l, _)| l * n as f64).collect();
            let mut check =
                Check::compare(format!("{name} {code:?} ({n}x{p}, {sets} sets)"), &losses, &want, KERNEL_TOL);
            // Correct counts: equal unless a logit sits within f32 rounding of a tie.
            if code != LossCode::Squares {
                let off = got[0]
                    .iter()
                    .skip(1)
                    .step_by(2)
                    .zip(&reference)
                    .map(|(g, (_, a))| (*g as f64 - a * n as f64).abs())
                    .fold(0.0, f64::max);
                if off > 1.5 {
                    check.passed = false;
                    check.note = Some(format!("correct counts differ by {off}"));
                }
            }
            out.push(check);
        }
    }
    Ok(out)
}
