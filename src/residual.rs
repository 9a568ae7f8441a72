//! The exact analysis of one batch from its per-sample residuals, on the host in f64 (the
//! default `--svd residual`).
//!
//! The block gradient of these models is G = X̃ᵀR: X̃ the batch's b samples (b × (p + 1) with a
//! ones column when the block holds the biases, else b × p) and R the residuals
//! grad_scale/b · ∂loss_i/∂z_c of the block's rows c (b × K per row, one column per perturbation).
//! With the QR factorisation X̃ᵀ = QF (Q orthonormal columns, F at most b × b), each row's part is
//! Q·F·R_c, so the singular values and right singular vectors of G (dim × K, rows stacked) are those
//! of M = [F R_c]_c, a matrix of nrows·b rows and K columns, and q = G v₁/σ₁ follows from one
//! small product. Nothing is squared: where an f32 Gram matrix GᵀG loses every σ below
//! ~1e-3·σ₁ (its rounding is ε·σ₁²), this keeps σ_k to f64 rounding of the residuals' f32 values,
//! and returns exact zeros past the rank of G (at most nrows·b: b samples per row of W).
//! The QR route also needs no care where X̃X̃ᵀ is singular (repeated samples, b > p + 1).

use nalgebra::DMatrix;

use crate::{
    cpu::kernels::block_indices,
    data::Dataset,
    engine::{Block, Perturbation},
    model::Model,
    prng::Counter,
};

/// What is shared by every batch of one analysis.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    pub model: Model,
    pub block: Block,
    /// K.
    pub points: usize,
    pub batch_size: usize,
    pub center: bool,
    /// Singular values to report (min(block_dim, K)).
    pub keep: usize,
    /// The base parameters (the projection's x_k = q·(θ + δ_k)|block).
    pub theta: &'a [f32],
    pub perturbation: Perturbation,
    pub seed: u64,
    /// The PRNG stream of the fresh perturbations.
    pub project_stream: u32,
}

/// One batch's inputs: its training-set rows, its PRNG counter word, and the residuals of the
/// SVD's and of the fresh perturbations (each K × b × classes, as the engine returns them).
pub struct BatchInput<'a> {
    pub rows: &'a [u32],
    pub batch_id: u32,
    pub residuals: &'a [f64],
    pub fresh: &'a [f64],
}

/// One batch's outcome: q (block_dim), the singular values (descending, `keep` of them) and the
/// projection pairs (K × (x_k, y_k)).
pub struct BatchOutcome {
    pub q: Vec<f32>,
    pub sigma: Vec<f64>,
    pub pairs: Vec<[f32; 2]>,
}

/// X̃ᵀ: (p + bias) × b, in f64 (the features as the engine's twins read them).
pub fn features_t(data: &Dataset, rows: &[u32], bias: bool) -> DMatrix<f64> {
    let p = data.p;
    DMatrix::from_fn(p + bias as usize, rows.len(), |j, i| if j < p { data.x(rows[i] as usize, j) } else { 1.0 })
}

/// The block row c's residuals as b × K (column k: perturbation k), centred across k if asked.
fn residual_block(r: &[f64], shape: &Shape, c: usize, center: bool) -> DMatrix<f64> {
    let (b, classes) = (shape.batch_size, shape.model.outputs);
    let mut m = DMatrix::from_fn(b, shape.points, |i, k| r[(k * b + i) * classes + c]);
    if center {
        for mut row in m.row_iter_mut() {
            let mean = row.mean();
            row.add_scalar_mut(-mean);
        }
    }
    m
}

/// The analysis of one batch: σ(G), q with q·mean_k g_k ≥ 0, and the projection pairs.
pub fn analyze_batch(data: &Dataset, shape: &Shape, input: &BatchInput) -> BatchOutcome {
    let (c0, nrows, bias) = shape.block.rows(&shape.model);
    let k = shape.points;
    let xt = features_t(data, input.rows, bias);
    // X̃ᵀ = QF: F has min(p + bias, b) rows, FᵀF = X̃X̃ᵀ.
    let f = xt.clone().qr().r();
    let blocks: Vec<DMatrix<f64>> =
        (0..nrows).map(|c| residual_block(input.residuals, shape, c0 + c, shape.center)).collect();
    let fr = f.nrows();
    let mut m = DMatrix::zeros(nrows * fr, k);
    for (c, rc) in blocks.iter().enumerate() {
        m.view_mut((c * fr, 0), (fr, k)).copy_from(&(&f * rc));
    }
    let svd = m.svd(false, true);
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let mut sigma: Vec<f64> = order.iter().take(shape.keep).map(|&i| svd.singular_values[i]).collect();
    // Past the rank of G (nrows·b at most) its singular values are exactly zero.
    sigma.resize(shape.keep, 0.0);
    let s1 = sigma.first().copied().unwrap_or(0.0);
    let bd = shape.block.dim(&shape.model);
    let p1 = xt.nrows();
    let mut q = vec![0.0f64; bd];
    if let (true, Some(vt)) = (s1 > 0.0, svd.v_t.as_ref()) {
        let v1 = vt.row(order[0]).transpose();
        // q = G v₁/σ₁ = X̃ᵀ (R_c v₁)/σ₁ per row; the mean gradient X̃ᵀ R_c 1/K of the raw residuals.
        let mut along_mean = 0.0;
        for (c, rc) in blocks.iter().enumerate() {
            let qc = &xt * (rc * &v1) / s1;
            let raw = if shape.center { residual_block(input.residuals, shape, c0 + c, false) } else { rc.clone() };
            let mean = &xt * raw.column_mean();
            along_mean += qc.dot(&mean);
            write_row(&mut q, qc.as_slice(), c, nrows, p1, bias);
        }
        if along_mean < 0.0 {
            q.iter_mut().for_each(|v| *v = -*v);
        }
    }
    BatchOutcome { pairs: pairs(data, shape, input, &xt, &q), q: q.iter().map(|&v| v as f32).collect(), sigma }
}

/// Row c's entries (p weights, then its bias) into the block's layout: every row's weights,
/// then every row's bias.
fn write_row(q: &mut [f64], qc: &[f64], c: usize, nrows: usize, p1: usize, bias: bool) {
    let p = p1 - bias as usize;
    q[c * p..(c + 1) * p].copy_from_slice(&qc[..p]);
    if bias {
        q[nrows * p + c] = qc[p];
    }
}

/// (x_k, y_k) = (q·(θ + δ_k)|block, q·g_k) of the fresh perturbations: g_k = X̃ᵀR'_k per row,
/// so y_k = Σ_c (X̃ q_c)·r'_{c,k}; δ_k is drawn again here from the counter PRNG.
fn pairs(data: &Dataset, shape: &Shape, input: &BatchInput, xt: &DMatrix<f64>, q: &[f64]) -> Vec<[f32; 2]> {
    let (c0, nrows, bias) = shape.block.rows(&shape.model);
    let (p, b, classes) = (data.p, shape.batch_size, shape.model.outputs);
    // u_c = X̃ q_c (b values per row).
    let u: Vec<Vec<f64>> = (0..nrows)
        .map(|c| {
            (0..b)
                .map(|i| {
                    let w: f64 = (0..p).map(|j| xt[(j, i)] * q[c * p + j]).sum();
                    w + if bias { q[nrows * p + c] } else { 0.0 }
                })
                .collect()
        })
        .collect();
    let index = block_indices(&shape.model, shape.block);
    let q_theta: f64 = index.iter().zip(q).map(|(&d, qe)| qe * shape.theta[d] as f64).sum();
    (0..shape.points)
        .map(|k| {
            let counter = Counter::new(shape.seed, shape.project_stream, input.batch_id, k as u32);
            let q_delta: f64 = index
                .iter()
                .zip(q)
                .map(|(&d, qe)| {
                    // As `perturb.wgsl` draws it: an f32 scale times an f32 draw.
                    let delta = match shape.perturbation {
                        Perturbation::Uniform { scale } => scale * counter.uniform(d as u32),
                        Perturbation::Gaussian { sigma } => sigma * counter.normal(d as u32),
                    };
                    qe * delta as f64
                })
                .sum();
            let r = &input.fresh[k * b * classes..][..b * classes];
            let y: f64 = (0..nrows).map(|c| (0..b).map(|i| u[c][i] * r[i * classes + c0 + c]).sum::<f64>()).sum();
            [(q_theta + q_delta) as f32, y as f32]
        })
        .collect()
}
