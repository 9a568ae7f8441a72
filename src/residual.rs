//! The exact analysis of one batch from its per-sample residuals, on the host in f64 (the
//! default `--svd residual`).
//!
//! The block gradient of these models is G = X̃ᵀR: X̃ the batch's b samples (b × (p + 1) with a
//! ones column when the block holds the biases, else b × p) and R the residuals
//! grad_scale/b · ∂loss_i/∂z_c of the block's rows c (b × K per row, one column per perturbation).
//! With any F such that FᵀF = X̃X̃ᵀ (b × b; here Λ^{1/2}Vᵀ from the eigendecomposition of the
//! batch's sample Gram matrix), GᵀG = Σ_c R_cᵀX̃X̃ᵀR_c = MᵀM for M = [F R_c]_c, a matrix of
//! nrows·b rows and K columns: the singular values and right singular vectors of G (dim × K,
//! rows stacked) are M's, and q = G v₁/σ₁ follows from one small product. Everything is f64
//! from the residuals' f32 values: where an f32 Gram matrix GᵀG loses every σ below ~1e-3·σ₁
//! (its rounding is ε₃₂·σ₁²), the f64 eigendecompositions here (of X̃X̃ᵀ and of the smaller
//! Gram matrix of M) keep σ_k to ~ε₆₄·σ₁²/σ_k, below the f32 residuals' own rounding over the
//! whole spectrum, and return exact zeros past the rank of G (at most nrows·b: b samples per
//! row of W). Negative eigenvalues of a singular X̃X̃ᵀ (repeated samples, b > p + 1) are
//! rounding and count as zero. (A QR of X̃ᵀ and an SVD of M avoid the squaring; they took a
//! fifth more host time: BENCHMARKS.md.)

use nalgebra::{DMatrix, DVector};

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

/// One batch's inputs: its features X̃ᵀ ([`features_t`]), its PRNG counter word, and the
/// residuals of the SVD's and of the fresh perturbations (each K × b × classes, as the engine
/// returns them).
pub struct BatchInput<'a> {
    pub xt: &'a DMatrix<f64>,
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

/// The base logits θ·x̃ (`classes` per row, in order) of the training-set rows `rows`, in f64
/// and then f32: what the residual kernels add each perturbation's share to. Computed here
/// rather than by the logits kernel: one product per sample next to the kernel's K, and on
/// lavapipe the logits kernel's per-lane storage loads took 19% of the analysis' samples against
/// the residual kernel's 35% (BENCHMARKS.md). Four partial sums, so that the sum is not one chain of dependent adds.
pub fn base_logits(data: &Dataset, theta: &[f32], rows: &[u32], classes: usize) -> Vec<f32> {
    let p = data.p;
    let mut x = vec![0.0f64; p];
    let mut out = Vec::with_capacity(rows.len() * classes);
    for &row in rows {
        x.iter_mut().enumerate().for_each(|(j, v)| *v = data.x(row as usize, j));
        for c in 0..classes {
            let w = &theta[c * p..(c + 1) * p];
            let mut part = [0.0f64; 4];
            for (wq, xq) in w.chunks(4).zip(x.chunks(4)) {
                for (s, (&a, &b)) in part.iter_mut().zip(wq.iter().zip(xq)) {
                    *s += a as f64 * b;
                }
            }
            out.push((part.iter().sum::<f64>() + theta[classes * p + c] as f64) as f32);
        }
    }
    out
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
pub fn analyze_batch(shape: &Shape, input: &BatchInput) -> BatchOutcome {
    let (c0, nrows, bias) = shape.block.rows(&shape.model);
    let k = shape.points;
    let xt = input.xt;
    let f = gram_factor(xt);
    let blocks: Vec<DMatrix<f64>> =
        (0..nrows).map(|c| residual_block(input.residuals, shape, c0 + c, shape.center)).collect();
    let fr = f.nrows();
    let mut m = DMatrix::zeros(nrows * fr, k);
    for (c, rc) in blocks.iter().enumerate() {
        m.view_mut((c * fr, 0), (fr, k)).copy_from(&(&f * rc));
    }
    let (mut sigma, v1) = top_singular(&m);
    sigma.truncate(shape.keep);
    // Past the rank of G (nrows·b at most) its singular values are exactly zero.
    sigma.resize(shape.keep, 0.0);
    let s1 = sigma.first().copied().unwrap_or(0.0);
    let bd = shape.block.dim(&shape.model);
    let p1 = xt.nrows();
    let mut q = vec![0.0f64; bd];
    if s1 > 0.0 {
        // q = G v₁/σ₁ = X̃ᵀ (R_c v₁)/σ₁ per row; the mean gradient X̃ᵀ R_c 1/K of the raw residuals.
        let mut along_mean = 0.0;
        for (c, rc) in blocks.iter().enumerate() {
            let qc = xt * (rc * &v1) / s1;
            let raw = if shape.center { residual_block(input.residuals, shape, c0 + c, false) } else { rc.clone() };
            let mean = xt * raw.column_mean();
            along_mean += qc.dot(&mean);
            write_row(&mut q, qc.as_slice(), c, nrows, p1, bias);
        }
        if along_mean < 0.0 {
            q.iter_mut().for_each(|v| *v = -*v);
        }
    }
    BatchOutcome { pairs: pairs(shape, input, &q), q: q.iter().map(|&v| v as f32).collect(), sigma }
}

/// F (b × b) with FᵀF = X̃X̃ᵀ, from the eigendecomposition of the batch's sample Gram matrix
/// X̃X̃ᵀ = VΛVᵀ (b × b, in f64): F = Λ^{1/2}Vᵀ, with the eigenvalues rounding leaves below zero
/// (where X̃X̃ᵀ is singular: repeated samples, b > p + 1) taken as zero.
fn gram_factor(xt: &DMatrix<f64>) -> DMatrix<f64> {
    // Through the matrix product (blocked, vectorised) rather than tr_mul's column dots.
    let eig = (xt.transpose() * xt).symmetric_eigen();
    let b = xt.ncols();
    DMatrix::from_fn(b, b, |r, i| eig.eigenvalues[r].max(0.0).sqrt() * eig.eigenvectors[(i, r)])
}

/// The singular values of M (descending, min(rows, columns) of them) and a unit right singular
/// vector of the largest, from the eigendecomposition of the smaller of MMᵀ and MᵀM in f64:
/// for the notebook's block that is 32 × 32 where M is 32 × 100 (with the Gram factor above,
/// 10–30% less host time than the QR and M's SVD: BENCHMARKS.md). σ_k² carries an error of a few ε·σ₁², so σ_k one of ~ε·σ₁²/σ_k: 1e-9·σ₁ at
/// σ_k = 1e-6·σ₁, far below the f32 residuals' own rounding (~1e-7·σ₁).
fn top_singular(m: &DMatrix<f64>) -> (Vec<f64>, DVector<f64>) {
    let wide = m.nrows() <= m.ncols();
    let eig = if wide { m * m.transpose() } else { m.tr_mul(m) }.symmetric_eigen();
    let mut order: Vec<usize> = (0..eig.eigenvalues.len()).collect();
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let sigma = order.iter().map(|&i| eig.eigenvalues[i].max(0.0).sqrt()).collect();
    let first = eig.eigenvectors.column(order[0]).into_owned();
    if !wide {
        return (sigma, first);
    }
    // v₁ = Mᵀu₁/σ₁, normalised by its own length.
    let v = m.tr_mul(&first);
    let norm = v.norm();
    (sigma, if norm > 0.0 { v / norm } else { v })
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
fn pairs(shape: &Shape, input: &BatchInput, q: &[f64]) -> Vec<[f32; 2]> {
    let (c0, nrows, bias) = shape.block.rows(&shape.model);
    let (p, b, classes, xt) = (shape.model.p, shape.batch_size, shape.model.outputs, input.xt);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{cpu::kernels as twin, data::Features, engine::RowGroups};

    /// The host's base logits agree with the logits kernel's twin to f32 rounding, u8 and f32
    /// features, p not a multiple of the four partial sums, one and three classes.
    #[test]
    fn base_logits_match_the_twin() {
        for (p, classes, u8) in [(1, 1, true), (33, 3, false), (785, 2, true)] {
            let n = 7;
            let features = if u8 {
                Features::U8((0..n * p).map(|i| (i * 37 % 251) as u8).collect())
            } else {
                Features::F32((0..n * p).map(|i| ((i * 13 % 17) as f32 - 8.0) / 3.0).collect())
            };
            let data = Dataset { name: "t".into(), features, targets: vec![0.0; n], n, p, classes: Some(classes) };
            let theta: Vec<f32> = (0..classes * (p + 1)).map(|i| ((i * 7 % 11) as f32 - 5.0) / 9.0).collect();
            let rows = [3u32, 0, 6, 6];
            let got = base_logits(&data, &theta, &rows, classes);
            let theta64: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
            let groups = RowGroups { groups: 1, sets_per_group: 1, rows: 4, offset: 0, stride: 4 };
            let want = twin::logits(&data, &theta64, groups, classes, theta.len(), &rows);
            assert_eq!(got.len(), want.len());
            for (g, w) in got.iter().zip(&want) {
                assert!((*g as f64 - w).abs() <= 1e-6 * w.abs().max(1.0), "p {p}: {g} against {w}");
            }
        }
    }
}
