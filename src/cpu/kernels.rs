//! f64 twins of the WGSL kernels, one function per shader, with the same inputs and layouts.
//! Tests compare each kernel with its twin; [`super::CpuEngine`] is built from them.

use super::loss::loss_and_dlogits;
use crate::{
    data::Dataset,
    engine::{Block, EpochPlan, GradBlock, Perturbation, PerturbedRequest, RowGroups, StepRule, StepStat},
    model::{LossCode, Model},
    prng,
};

/// Twin of `logits.wgsl`: [sets, rows, classes].
pub fn logits(data: &Dataset, theta: &[f64], rows: RowGroups, classes: usize, dim: usize, table: &[u32]) -> Vec<f64> {
    let p = data.p;
    let mut out = vec![0.0; rows.sets() as usize * rows.rows as usize * classes];
    for s in 0..rows.sets() {
        let w = &theta[s as usize * dim..][..dim];
        for i in 0..rows.rows {
            let row = table[rows.entry(s, i)] as usize;
            for c in 0..classes {
                let z = (0..p).map(|j| w[c * p + j] * data.x(row, j)).sum::<f64>() + w[classes * p + c];
                out[(s as usize * rows.rows as usize + i as usize) * classes + c] = z;
            }
        }
    }
    out
}

/// Twin of `dlogits.wgsl`: (scale · d loss / d z [sets, rows, classes], loss [sets, rows]).
pub fn dlogits(
    code: LossCode,
    data: &Dataset,
    logits: &[f64],
    rows: RowGroups,
    classes: usize,
    scale: f64,
    table: &[u32],
) -> (Vec<f64>, Vec<f64>) {
    let mut dz = logits.to_vec();
    let mut losses = vec![0.0; rows.sets() as usize * rows.rows as usize];
    for s in 0..rows.sets() {
        for i in 0..rows.rows {
            let id = (s * rows.rows + i) as usize;
            let z = &mut dz[id * classes..][..classes];
            let t = data.targets[table[rows.entry(s, i)] as usize] as f64;
            losses[id] = loss_and_dlogits(code, z, t).0;
            z.iter_mut().for_each(|v| *v *= scale);
        }
    }
    (dz, losses)
}

/// Twin of `weight_grad.wgsl`: [sets, block.dim()].
pub fn weight_grad(
    data: &Dataset,
    dz: &[f64],
    rows: RowGroups,
    classes: usize,
    block: GradBlock,
    table: &[u32],
) -> Vec<f64> {
    let (p, out_dim) = (data.p, block.dim() as usize);
    let mut out = vec![0.0; rows.sets() as usize * out_dim];
    for s in 0..rows.sets() {
        let g = &mut out[s as usize * out_dim..][..out_dim];
        for i in 0..rows.rows {
            let row = table[rows.entry(s, i)] as usize;
            let d = &dz[(s * rows.rows + i) as usize * classes..][..classes];
            for cl in 0..block.nrows as usize {
                let dzc = d[block.c0 as usize + cl];
                for j in 0..p {
                    g[cl * p + j] += dzc * data.x(row, j);
                }
                if block.with_bias {
                    g[block.nrows as usize * p + cl] += dzc;
                }
            }
        }
    }
    out
}

/// Twin of `sgd_update.wgsl`.
pub fn sgd_update(theta: &mut [f64], grads: &[f64], lrs: &[f64], dim: usize, lr_stride: usize, lr_index: usize) {
    for (s, (t, g)) in theta.chunks_mut(dim).zip(grads.chunks(dim)).enumerate() {
        let h = lrs[s * lr_stride + lr_index];
        t.iter_mut().zip(g).for_each(|(t, g)| *t -= h * g);
    }
}

/// Twin of `evaluate.wgsl` + `reduce.wgsl`: (mean loss, accuracy) of each set over the whole set.
pub fn evaluate(code: LossCode, data: &Dataset, theta: &[f64], classes: usize, dim: usize) -> Vec<(f64, f64)> {
    theta
        .chunks(dim)
        .map(|w| {
            let (mut loss, mut correct) = (0.0, 0usize);
            let mut z = vec![0.0; classes];
            for row in 0..data.n {
                forward(data, w, row, &mut z);
                let (l, ok) = loss_and_dlogits(code, &mut z, data.targets[row] as f64);
                loss += l;
                correct += ok as usize;
            }
            (loss / data.n as f64, correct as f64 / data.n as f64)
        })
        .collect()
}

/// z = W x_row + b for one parameter vector w.
fn forward(data: &Dataset, w: &[f64], row: usize, z: &mut [f64]) {
    let (p, classes) = (data.p, z.len());
    for (c, zc) in z.iter_mut().enumerate() {
        *zc = w[classes * p + c] + (0..p).map(|j| w[c * p + j] * data.x(row, j)).sum::<f64>();
    }
}

/// Mean loss of a batch under w and, with `grad`, its gradient (θ's layout) into `grad`.
pub fn batch_loss(
    code: LossCode,
    data: &Dataset,
    w: &[f64],
    batch: &[u32],
    classes: usize,
    grad: Option<&mut [f64]>,
) -> f64 {
    let p = data.p;
    let b = batch.len() as f64;
    let mut z = vec![0.0; classes];
    let mut total = 0.0;
    let mut grad = grad;
    if let Some(g) = grad.as_deref_mut() {
        g.fill(0.0);
    }
    for &row in batch {
        let row = row as usize;
        forward(data, w, row, &mut z);
        total += loss_and_dlogits(code, &mut z, data.targets[row] as f64).0;
        if let Some(g) = grad.as_deref_mut() {
            for c in 0..classes {
                let d = z[c] / b;
                for j in 0..p {
                    g[c * p + j] += d * data.x(row, j);
                }
                g[classes * p + c] += d;
            }
        }
    }
    total / b
}

/// Twin of `train_epoch.wgsl`: every run through every step; θ is runs × dim.
pub fn train_epoch(
    code: LossCode,
    data: &Dataset,
    theta: &mut [f64],
    plan: &EpochPlan,
    classes: usize,
) -> Vec<StepStat> {
    let dim = classes * (data.p + 1);
    let (steps, b) = (plan.steps, plan.batch_size);
    let tables = plan.tables();
    let mut stats = Vec::with_capacity(theta.len() / dim * steps);
    let mut grad = vec![0.0; dim];
    let mut trial = vec![0.0; dim];
    for (r, w) in theta.chunks_mut(dim).enumerate() {
        let mut h_prev = 0.0;
        for s in 0..steps {
            let batch = &plan.batches[((r % tables) * steps + s) * b..][..b];
            let f = batch_loss(code, data, w, batch, classes, Some(&mut grad));
            let gsq = if plan.rule == StepRule::Table { 0.0 } else { grad.iter().map(|g| g * g).sum() };
            let mut h = plan.lrs[r * steps + s] as f64;
            let mut trials = 0.0;
            match plan.rule {
                StepRule::Table => {}
                StepRule::Polyak { c, max_lr } => {
                    h = if gsq > 0.0 { (f / (c as f64 * gsq)).min(max_lr as f64) } else { max_lr as f64 };
                }
                StepRule::Armijo { c, beta, growth, max_lr } => {
                    if s > 0 {
                        h = (h_prev * growth as f64).min(max_lr as f64);
                    }
                    for _ in 0..crate::engine::MAX_BACKTRACKS {
                        trials += 1.0;
                        trial.iter_mut().zip(w.iter().zip(&grad)).for_each(|(t, (w, g))| *t = w - h * g);
                        if batch_loss(code, data, &trial, batch, classes, None) <= f - c as f64 * h * gsq {
                            break;
                        }
                        h *= beta as f64;
                    }
                }
            }
            h_prev = h;
            w.iter_mut().zip(&grad).for_each(|(w, g)| *w -= h * g);
            stats.push(StepStat { loss: f as f32, lr: h as f32, grad_sq: gsq as f32, trials });
        }
    }
    stats
}

/// Twin of `perturb.wgsl`: [B·K, dim] perturbed copies of θ.
pub fn perturb(
    theta: &[f32],
    batch_ids: &[u32],
    points: usize,
    perturbation: Perturbation,
    seed: u64,
    stream: u32,
) -> Vec<f64> {
    let dim = theta.len();
    let mut out = Vec::with_capacity(batch_ids.len() * points * dim);
    for &batch in batch_ids {
        for k in 0..points as u32 {
            out.extend(theta.iter().enumerate().map(|(d, &t)| {
                let d = d as u32;
                let delta = match perturbation {
                    Perturbation::Uniform { scale } => scale * prng::uniform(seed, stream, batch, k, d),
                    Perturbation::Gaussian { sigma } => sigma * prng::normal(seed, stream, batch, k, d),
                };
                t as f64 + delta as f64
            }));
        }
    }
    out
}

/// Twin of `project.wgsl`: [sets, 2] pairs (q·(θ+δ)|block, q·g).
pub fn project(model: &Model, block: Block, q: &[f64], perturbed: &[f64], grads: &[f64], points: usize) -> Vec<f64> {
    let (dim, bd) = (model.dim(), block.dim(model));
    let mut out = Vec::new();
    for (s, (theta, g)) in perturbed.chunks(dim).zip(grads.chunks(bd)).enumerate() {
        let qg = &q[(s / points) * bd..][..bd];
        let restricted: Vec<f64> = block_indices(model, block).into_iter().map(|i| theta[i]).collect();
        out.push(dot(qg, &restricted));
        out.push(dot(qg, g));
    }
    out
}

/// Indices in θ of the block's entries, in block order.
pub fn block_indices(model: &Model, block: Block) -> Vec<usize> {
    let (c0, rows, bias) = block.rows(model);
    let p = model.p;
    let mut idx: Vec<usize> = (c0 * p..(c0 + rows) * p).collect();
    if bias {
        idx.extend(model.outputs * p + c0..model.outputs * p + c0 + rows);
    }
    idx
}

/// The gradients of a perturbed request through the twins: ([B·K, dim] θ+δ, [B·K, block_dim] g).
pub fn perturbed_gradients(model: &Model, data: &Dataset, req: &PerturbedRequest) -> (Vec<f64>, Vec<f64>) {
    let perturbed = perturb(req.theta, req.batch_ids, req.points, req.perturbation, req.seed, req.stream);
    let (b, k) = (req.batch_size as u32, req.points as u32);
    let rows = RowGroups { groups: req.count() as u32, sets_per_group: k, rows: b, offset: 0, stride: b };
    let scale = req.grad_scale as f64 / b as f64;
    let grads = set_gradients(model, data, &perturbed, rows, req.batches, scale, req.block);
    (perturbed, grads)
}

/// Twin of `residuals.wgsl`: [B·K, b, classes] = grad_scale/b · d loss / d z at
/// z = base + δ_k·x̃, with `base` ([B, b, classes]) the batches' logits at θ and δ_k drawn as
/// [`perturb`] draws them over θ's layout (classes rows of p weights, then the biases).
pub fn residuals(code: LossCode, data: &Dataset, base: &[f64], req: &PerturbedRequest, classes: usize) -> Vec<f64> {
    let (p, b, k) = (data.p, req.batch_size, req.points);
    let scale = req.grad_scale as f64 / b as f64;
    let mut out = Vec::with_capacity(req.count() * k * b * classes);
    let mut z = vec![0.0; classes];
    for (g, &batch) in req.batch_ids.iter().enumerate() {
        for point in 0..k as u32 {
            let counter = prng::Counter::new(req.seed, req.stream, batch, point);
            let delta = |d: usize| -> f64 {
                (match req.perturbation {
                    Perturbation::Uniform { scale } => scale * counter.uniform(d as u32),
                    Perturbation::Gaussian { sigma } => sigma * counter.normal(d as u32),
                }) as f64
            };
            for i in 0..b {
                let row = req.batches[g * b + i] as usize;
                for (c, zc) in z.iter_mut().enumerate() {
                    let moved: f64 = (0..p).map(|j| delta(c * p + j) * data.x(row, j)).sum();
                    *zc = base[(g * b + i) * classes + c] + moved + delta(classes * p + c);
                }
                loss_and_dlogits(code, &mut z, data.targets[row] as f64);
                out.extend(z.iter().map(|v| v * scale));
            }
        }
    }
    out
}

/// The residuals of a perturbed request through the twins (perturb, logits, dlogits):
/// [B·K, b, classes] = grad_scale/b · ∂loss_i/∂z at each θ + δ_k.
pub fn perturbed_residuals(model: &Model, data: &Dataset, req: &PerturbedRequest) -> Vec<f64> {
    let perturbed = perturb(req.theta, req.batch_ids, req.points, req.perturbation, req.seed, req.stream);
    let (b, k) = (req.batch_size as u32, req.points as u32);
    let rows = RowGroups { groups: req.count() as u32, sets_per_group: k, rows: b, offset: 0, stride: b };
    let z = logits(data, &perturbed, rows, model.outputs, model.dim(), req.batches);
    let scale = req.grad_scale as f64 / b as f64;
    dlogits(model.loss_code(), data, &z, rows, model.outputs, scale, req.batches).0
}

/// `scale` × the block gradients of the summed batch loss of each parameter set (sets × dim),
/// the groups' rows as `rows` says: logits, their derivatives, the weight gradient.
pub fn set_gradients(
    model: &Model,
    data: &Dataset,
    sets: &[f64],
    rows: RowGroups,
    table: &[u32],
    scale: f64,
    block: Block,
) -> Vec<f64> {
    let z = logits(data, sets, rows, model.outputs, model.dim(), table);
    let (dz, _) = dlogits(model.loss_code(), data, &z, rows, model.outputs, scale, table);
    weight_grad(data, &dz, rows, model.outputs, block.grad_block(model), table)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
