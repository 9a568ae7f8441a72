//! The gradient-subspace analysis (the notebook's `calculate_main_singular_vector` and
//! `plot_projection_picture`), written once over [`Engine`]: for each batch i,
//! K perturbed gradients G_i = [g_i(θ+δ_1) … g_i(θ+δ_K)] of the batch's share of the gradient
//! flow (g_i = −(b/n)∇f_i), their principal direction q_i (sign fixed so q_i · mean_k g_k ≥ 0)
//! and spectrum, the projection picture of K fresh perturbations, the line y = α + βx through
//! it, and the curvature λ_i = −(n/b)β_i along q_i.
//!
//! Two ways to q_i: `residual` (the default) reads back the per-sample residuals R_i of the K
//! perturbed sets (b × classes numbers per set instead of block_dim) and takes σ and q from
//! G_i = X̃_iᵀR_i on the host in f64 ([`crate::residual`]): exact over the whole spectrum; `full`
//! reads G_i back and takes nalgebra's SVD, the reference the tests compare the fast path with.

use nalgebra::DMatrix;
use serde::Serialize;

use crate::{
    Error, Result,
    engine::{Block, Engine, Perturbation, PerturbedRequest},
    prng, residual,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SvdMethod {
    /// Per-sample residuals from the device, σ and q of G = X̃ᵀR from the small matrices of the
    /// batch on the host in f64 (exact; the default).
    Residual,
    /// Read G back, nalgebra's SVD (the reference).
    Full,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// K perturbations per batch.
    pub points: usize,
    pub perturbation: Perturbation,
    pub block: Block,
    pub seed: u64,
    /// Subtract the mean gradient before the SVD (q becomes the top Hessian direction).
    pub center: bool,
    pub method: SvdMethod,
}

impl Settings {
    /// The notebook's analysis: K = 100 perturbations δ = 0.01·U[0,1) of row 0 of W, uncentred,
    /// through the residual path.
    pub fn notebook(seed: u64) -> Settings {
        Settings {
            points: 100,
            perturbation: Perturbation::Uniform { scale: 0.01 },
            block: Block::Row(0),
            seed,
            center: false,
            method: SvdMethod::Residual,
        }
    }
}

/// What the analysis finds for one batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchAnalysis {
    pub batch: usize,
    /// Singular values of G_i (centred if asked), descending: min(block_dim, K) of them.
    pub sigma: Vec<f64>,
    /// σ₁² / Σσ².
    pub explained1: f64,
    pub alpha: f64,
    pub beta: f64,
    pub r2: f64,
    /// −(n/b)·β: the curvature along q_i.
    pub lambda: f64,
    #[serde(skip)]
    pub q: Vec<f32>,
    /// (x_k, y_k) of the projection picture.
    #[serde(skip)]
    pub pairs: Vec<[f32; 2]>,
}

/// The analysed batches: `table` holds every batch's training-set indices (s × b) into the
/// engine's training set.
pub struct Batches<'a> {
    pub table: &'a [u32],
    pub batch_size: usize,
    /// Samples in the training set (n of g_i = −(b/n)∇f_i).
    pub n: usize,
}

/// Analyse the batches `which` (indices into the table) at parameters θ, `chunk` batches per
/// engine call; `progress` hears how many batches are done.
pub fn analyze(
    engine: &mut dyn Engine,
    theta: &[f32],
    batches: &Batches,
    which: &[usize],
    settings: &Settings,
    chunk: usize,
    progress: &mut dyn FnMut(usize),
) -> Result<Vec<BatchAnalysis>> {
    let model = engine.model();
    let bd = settings.block.dim(&model);
    let keep = bd.min(settings.points);
    let mut out = Vec::with_capacity(which.len());
    for ids in which.chunks(chunk.max(1)) {
        let rows: Vec<u32> = ids
            .iter()
            .flat_map(|&i| batches.table[i * batches.batch_size..][..batches.batch_size].iter().copied())
            .collect();
        let batch_ids: Vec<u32> = ids.iter().map(|&i| i as u32).collect();
        let request = |stream| PerturbedRequest {
            theta,
            batches: &rows,
            batch_ids: &batch_ids,
            batch_size: batches.batch_size,
            points: settings.points,
            perturbation: settings.perturbation,
            seed: settings.seed,
            stream,
            block: settings.block,
            grad_scale: -(batches.batch_size as f32) / batches.n as f32,
        };
        let (svd_req, proj_req) = (request(prng::stream::PERTURB_SVD), request(prng::stream::PERTURB_PROJECT));
        let (q, sigmas, pairs) = match settings.method {
            SvdMethod::Residual => {
                let shape = residual::Shape {
                    model,
                    block: settings.block,
                    points: settings.points,
                    batch_size: batches.batch_size,
                    center: settings.center,
                    keep,
                    theta,
                    perturbation: settings.perturbation,
                    seed: settings.seed,
                    project_stream: prng::stream::PERTURB_PROJECT,
                };
                let r = engine.perturbed_residuals(&svd_req)?;
                let fresh = engine.perturbed_residuals(&proj_req)?;
                let per = settings.points * batches.batch_size * model.outputs;
                let b = batches.batch_size;
                let data = engine.train_set();
                let bias = settings.block.rows(&model).2;
                let outcomes = parallel(ids.len(), |j| {
                    let xt = residual::features_t(data, &rows[j * b..(j + 1) * b], bias);
                    let input = residual::BatchInput {
                        xt: &xt,
                        batch_id: batch_ids[j],
                        residuals: &r[j * per..(j + 1) * per],
                        fresh: &fresh[j * per..(j + 1) * per],
                    };
                    residual::analyze_batch(&shape, &input)
                });
                let mut q = Vec::with_capacity(ids.len() * bd);
                let (mut sigmas, mut pairs) = (Vec::new(), Vec::new());
                for o in outcomes {
                    q.extend(o.q);
                    sigmas.push(o.sigma);
                    pairs.extend(o.pairs.iter().flatten());
                }
                (q, sigmas, pairs)
            }
            SvdMethod::Full => {
                let g = engine.perturbed_gradients(&svd_req)?;
                let mut q = Vec::with_capacity(ids.len() * bd);
                let mut sigmas = Vec::new();
                for gi in g.chunks(settings.points * bd) {
                    let (qi, s) = direction_by_svd(gi, settings.points, bd, settings.center, keep);
                    q.extend(qi);
                    sigmas.push(s);
                }
                let pairs = engine.project(&proj_req, &q)?;
                (q, sigmas, pairs)
            }
        };
        for (j, &i) in ids.iter().enumerate() {
            let pairs: Vec<[f32; 2]> =
                pairs[j * 2 * settings.points..][..2 * settings.points].chunks(2).map(|p| [p[0], p[1]]).collect();
            out.push(summarise(i, q[j * bd..(j + 1) * bd].to_vec(), sigmas[j].clone(), pairs, batches));
        }
        progress(ids.len());
    }
    Ok(out)
}

/// f(0), …, f(n − 1) on the host's cores (contiguous parts, one thread each), in order.
fn parallel<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(n).max(1);
    if threads == 1 {
        return (0..n).map(f).collect();
    }
    let per = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let f = &f;
        let parts: Vec<_> = (0..n)
            .step_by(per)
            .map(|start| scope.spawn(move || (start..(start + per).min(n)).map(f).collect::<Vec<T>>()))
            .collect();
        // A thread's panic (a bug, never a bad input) goes on as itself.
        parts.into_iter().flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
    })
}

fn summarise(batch: usize, q: Vec<f32>, sigma: Vec<f64>, pairs: Vec<[f32; 2]>, batches: &Batches) -> BatchAnalysis {
    let total: f64 = sigma.iter().map(|s| s * s).sum();
    let explained1 = if total > 0.0 { sigma[0] * sigma[0] / total } else { f64::NAN };
    let fit = line_fit(&pairs);
    let lambda = -(batches.n as f64 / batches.batch_size as f64) * fit.beta;
    BatchAnalysis { batch, sigma, explained1, alpha: fit.alpha, beta: fit.beta, r2: fit.r2, lambda, q, pairs }
}

/// Least squares y = α + βx and its R².
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LineFit {
    pub alpha: f64,
    pub beta: f64,
    pub r2: f64,
}

pub fn line_fit(pairs: &[[f32; 2]]) -> LineFit {
    let n = pairs.len() as f64;
    let mx = pairs.iter().map(|p| p[0] as f64).sum::<f64>() / n;
    let my = pairs.iter().map(|p| p[1] as f64).sum::<f64>() / n;
    let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
    for p in pairs {
        let (dx, dy) = (p[0] as f64 - mx, p[1] as f64 - my);
        sxx += dx * dx;
        sxy += dx * dy;
        syy += dy * dy;
    }
    if sxx == 0.0 {
        return LineFit { alpha: my, beta: f64::NAN, r2: f64::NAN };
    }
    let beta = sxy / sxx;
    let r2 = if syy > 0.0 { sxy * sxy / (sxx * syy) } else { f64::NAN };
    LineFit { alpha: my - beta * mx, beta, r2 }
}

/// The reference: q and the singular values from nalgebra's SVD of G (block_dim × K, from the
/// engine's K × block_dim rows).
pub fn direction_by_svd(g: &[f32], k: usize, bd: usize, center: bool, keep: usize) -> (Vec<f32>, Vec<f64>) {
    let raw = DMatrix::from_fn(bd, k, |d, j| g[j * bd + d] as f64);
    let mean = raw.column_mean();
    let m = if center { DMatrix::from_fn(bd, k, |d, j| raw[(d, j)] - mean[d]) } else { raw.clone() };
    let svd = m.svd(true, false);
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let sigma: Vec<f64> = order.iter().take(keep).map(|&i| svd.singular_values[i]).collect();
    let Some(u) = svd.u else { return (vec![0.0; bd], sigma) };
    let mut q: Vec<f64> = u.column(order[0]).iter().copied().collect();
    if q.iter().zip(mean.iter()).map(|(a, b)| a * b).sum::<f64>() < 0.0 {
        q.iter_mut().for_each(|v| *v = -*v);
    }
    (q.into_iter().map(|v| v as f32).collect(), sigma)
}

/// `all`, `a..b` (half-open) or `i,j,k` as batch indices below `s`.
pub fn parse_batches(text: &str, s: usize) -> Result<Vec<usize>> {
    let bad = |why: String| Error::usage(format!("--batches `{text}`: {why}"));
    let t = text.trim();
    let out: Vec<usize> = if t == "all" {
        (0..s).collect()
    } else if let Some((a, b)) = t.split_once("..") {
        let a: usize = a.trim().parse().map_err(|_| bad("expected a..b with whole numbers".into()))?;
        let b: usize = b.trim().parse().map_err(|_| bad("expected a..b with whole numbers".into()))?;
        (a..b).collect()
    } else {
        t.split(',')
            .map(|x| x.trim().parse::<usize>().map_err(|_| bad(format!("`{x}` is not a batch index"))))
            .collect::<Result<_>>()?
    };
    if out.is_empty() {
        return Err(bad("selects no batch".into()));
    }
    if let Some(&i) = out.iter().find(|&&i| i >= s) {
        return Err(bad(format!("batch {i} does not exist (there are {s})")));
    }
    Ok(out)
}

/// The averaged projection picture: the mean over batches of (x_k, y_k), k = 1..K (the notebook
/// averaged with a running mean that dropped batch 0).
pub fn averaged_pairs(results: &[BatchAnalysis]) -> Vec<[f64; 2]> {
    let k = results.first().map_or(0, |r| r.pairs.len());
    let mut out = vec![[0.0f64; 2]; k];
    for r in results {
        for (o, p) in out.iter_mut().zip(&r.pairs) {
            o[0] += p[0] as f64;
            o[1] += p[1] as f64;
        }
    }
    let n = results.len().max(1) as f64;
    out.iter_mut().for_each(|o| {
        o[0] /= n;
        o[1] /= n;
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_fit_recovers_a_line() {
        let pairs: Vec<[f32; 2]> = (0..10).map(|i| [i as f32, 3.0 - 2.0 * i as f32]).collect();
        let f = line_fit(&pairs);
        assert!((f.alpha - 3.0).abs() < 1e-9 && (f.beta + 2.0).abs() < 1e-9 && (f.r2 - 1.0).abs() < 1e-9);
    }

    #[test]
    fn batch_selections() {
        assert_eq!(parse_batches("all", 3).unwrap(), vec![0, 1, 2]);
        assert_eq!(parse_batches("2..4", 9).unwrap(), vec![2, 3]);
        assert_eq!(parse_batches("5, 1", 9).unwrap(), vec![5, 1]);
        for bad in ["4..2", "9", "x", "1..", ""] {
            assert!(parse_batches(bad, 9).is_err(), "{bad}");
        }
    }
}
