//! The default learning-rate procedure of `steplens schedule`: rates from the local
//! one-dimensional problems of the gradient geometry, at about the cost of one training run.
//!
//! Along the batch gradient ĝ_B the local problem's curvature is bounded below by
//! λ_P = ‖g_B‖² / (2 f_B) (a loss f ≥ 0 cannot fall below f − ‖g‖²/(2λ)); along the top two
//! directions of the batch Hessian its curvatures are the Ritz values μ₁ ≥ μ₂. Each step takes
//!
//!   h = min(α · a / λ_P,  2 / (μ₁ + max(μ₂, 0)))
//!
//! - a / λ_P = a · 2 f_B / ‖g_B‖² is computed on the device at every step (the stochastic Polyak
//!   rule with c = 1/(2aα)); it cannot vanish on confidently wrong examples, where the pure
//!   curvature rules of the notebook's procedure run away.
//! - 2/(μ₁ + μ₂) is the Chebyshev-like step of the top two Hessian directions (the centred-G
//!   idea with two directed perturbations, iterated): μ come from a two-vector subspace
//!   iteration on the current batch's Hessian every `every` steps, with finite-difference
//!   Hessian–vector products (three batch gradients per iteration); the cap uses the pair with
//!   the largest μ₁ among those of the last epoch, forgetting pairs older than half the steps
//!   taken so far (so the start's sharp curvature does not hold the whole first epoch back).
//! - α ≤ 1 is a revisit guard at no cost: batches come back once an epoch in a fixed order, so
//!   each batch's loss is compared with its own loss one epoch earlier; α may double over an
//!   epoch in which no batch's loss rose and shrinks when more than a fraction ρ of them rise:
//!   α ← min(1, α·exp(κ(ρ − [rose]))), κ = ln 2 / (ρ s). On the device α is held for a segment
//!   of `every` steps and updated from that segment's losses (at most `every` steps late).
//!
//! The constants are properties of the method, not of a dataset (see [`PcgConfig`]).

use std::collections::VecDeque;

use nalgebra::{Matrix2, SymmetricEigen};
use serde::Serialize;

use crate::{
    Error, Result,
    driver::{Planning, RateSource, Segment},
    engine::{StepRule, StepStat},
    prng,
};

/// The procedure's constants, each with why it is not a per-dataset knob.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PcgConfig {
    /// Multiplier of the Polyak step 1/λ_P. 2 is the exact minimiser of the 1-D model whose
    /// minimum is 0 and whose curvature is λ_P; a scale-free number (same for every loss ≥ 0).
    pub a: f64,
    /// Steps between subspace iterations: every 13 steps three batch gradients cost
    /// 3/13 = 0.23 of a training run, inside the 1.25× budget.
    pub every: usize,
    /// Finite-difference step along a unit direction. f32 gradients: the difference of two
    /// gradients must stand well above their rounding (~1e-7 relative) and well below the
    /// change of curvature; for least squares any ε is exact.
    pub eps: f64,
    /// Fraction of batches whose loss may rise over an epoch before α shrinks (a probability,
    /// scale-free).
    pub rho: f64,
    /// Subspace iterations at the first step, before any cap exists.
    pub warmup: usize,
    /// An upper bound on every rate (`--max-lr`): a guard against f32 overflow, not a tuning knob.
    pub max_lr: f64,
    /// Seed of the start vectors.
    pub seed: u64,
}

impl Default for PcgConfig {
    fn default() -> PcgConfig {
        PcgConfig { a: 2.0, every: 13, eps: 1e-3, rho: 0.125, warmup: 2, max_lr: 10.0, seed: 0 }
    }
}

/// One subspace iteration's result: the Ritz values of the batch Hessian.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RitzPair {
    /// Steps trained before it (over all epochs).
    pub step: usize,
    pub mu1: f64,
    pub mu2: f64,
}

/// One segment of steps with its cap and guard, for schedule.csv and the report.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PcgSegment {
    pub epoch: usize,
    /// First step (1-based) within the epoch.
    pub step: usize,
    pub steps: usize,
    /// The Ritz pair setting the cap (NaN before any positive curvature was seen).
    pub mu1: f64,
    pub mu2: f64,
    pub cap: f64,
    pub alpha: f64,
}

/// The procedure as a rate source for the [driver](crate::driver) (one run).
#[derive(Debug, Clone)]
pub struct PcgRates {
    pub config: PcgConfig,
    /// The two directions of the subspace iteration (dim each), orthonormal.
    basis: [Vec<f64>; 2],
    pairs: VecDeque<RitzPair>,
    alpha: f64,
    /// This and the previous epoch's batch losses, by step (NaN where not known).
    losses: Vec<f32>,
    previous: Vec<f32>,
    steps_per_epoch: usize,
    /// Batch gradients evaluated for the Hessian–vector products.
    pub hvp_grad_evals: u64,
    pub segments: Vec<PcgSegment>,
    pub ritz: Vec<RitzPair>,
}

impl PcgRates {
    pub fn new(config: PcgConfig) -> Result<PcgRates> {
        if config.every == 0 || config.warmup == 0 {
            return Err(Error::usage("the schedule's subspace iteration needs every ≥ 1 and warmup ≥ 1"));
        }
        Ok(PcgRates {
            config,
            basis: [Vec::new(), Vec::new()],
            pairs: VecDeque::new(),
            alpha: 1.0,
            losses: Vec::new(),
            previous: Vec::new(),
            steps_per_epoch: 0,
            hvp_grad_evals: 0,
            segments: Vec::new(),
            ritz: Vec::new(),
        })
    }

    /// (μ₁, μ₂, cap) from the pairs in the window: the largest μ₁ of the pairs not older than
    /// min(s, t/2) steps at step t.
    fn cap(&mut self, done: usize, steps: usize) -> (f64, f64, f64) {
        let window = steps.min(done / 2);
        while self.pairs.len() > 1 && self.pairs[0].step + window < done {
            self.pairs.pop_front();
        }
        let best = self.pairs.iter().filter(|p| p.mu1.is_finite()).max_by(|a, b| a.mu1.total_cmp(&b.mu1));
        match best {
            Some(p) if p.mu1 > 0.0 => (p.mu1, p.mu2, (2.0 / (p.mu1 + p.mu2.max(0.0))).min(self.config.max_lr)),
            _ => (f64::NAN, f64::NAN, self.config.max_lr),
        }
    }

    /// One subspace iteration on the Hessian of `batch`'s mean loss at the engine's parameters.
    fn iterate(&mut self, cx: &mut Planning, batch: &[u32]) -> Result<RitzPair> {
        let dim = cx.engine.model().dim();
        let theta: Vec<f64> = cx.engine.params()?[..dim].iter().map(|&v| v as f64).collect();
        if self.basis[0].len() != dim {
            self.basis = start_basis(dim, self.config.seed);
        }
        let eps = self.config.eps;
        let mut sets: Vec<f32> = theta.iter().map(|&t| t as f32).collect();
        for v in &self.basis {
            sets.extend(theta.iter().zip(v).map(|(t, v)| (t + eps * v) as f32));
        }
        let g = cx.engine.gradients(&sets, batch)?;
        self.hvp_grad_evals += 3;
        // Hv from the directions actually taken (θ+εv rounded to f32, minus θ rounded).
        let hv: Vec<Vec<f64>> =
            (1..3).map(|j| (0..dim).map(|d| (g[j * dim + d] as f64 - g[d] as f64) / eps).collect()).collect();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
        let t = Matrix2::new(
            dot(&self.basis[0], &hv[0]),
            0.5 * (dot(&self.basis[0], &hv[1]) + dot(&self.basis[1], &hv[0])),
            0.5 * (dot(&self.basis[0], &hv[1]) + dot(&self.basis[1], &hv[0])),
            dot(&self.basis[1], &hv[1]),
        );
        let eig = SymmetricEigen::new(t);
        let (i1, i2) = if eig.eigenvalues[0] >= eig.eigenvalues[1] { (0, 1) } else { (1, 0) };
        let (mu1, mu2) = (eig.eigenvalues[i1], eig.eigenvalues[i2]);
        // Next basis: H V rotated to the Ritz vectors, orthonormalised (μ₁'s direction first).
        let next: Vec<Vec<f64>> = [i1, i2]
            .iter()
            .map(|&i| {
                let y = eig.eigenvectors.column(i);
                (0..dim).map(|d| y[0] * hv[0][d] + y[1] * hv[1][d]).collect()
            })
            .collect();
        self.basis = orthonormal(next, dim, self.config.seed ^ cx.done as u64);
        let pair = RitzPair { step: cx.done, mu1, mu2 };
        self.ritz.push(pair);
        Ok(pair)
    }

    /// α after one step whose batch loss `rose` (or not) against the same batch an epoch ago.
    fn guard(&mut self, rose: bool, steps: usize) {
        let kappa = std::f64::consts::LN_2 / (self.config.rho * steps as f64);
        let rose = if rose { 1.0 } else { 0.0 };
        self.alpha = (self.alpha * (kappa * (self.config.rho - rose)).exp()).min(1.0);
    }
}

impl RateSource for PcgRates {
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment> {
        let every = self.config.every;
        self.steps_per_epoch = cx.steps;
        if cx.done.is_multiple_of(every) {
            let b = cx.batching.batch_size;
            let batch = cx.table[cx.start * b..(cx.start + 1) * b].to_vec();
            let iterations = if cx.done == 0 { self.config.warmup } else { 1 };
            for _ in 0..iterations {
                let pair = self.iterate(cx, &batch)?;
                self.pairs.push_back(pair);
            }
        }
        let count = (every - cx.done % every).min(cx.left);
        let (mu1, mu2, cap) = self.cap(cx.done, cx.steps);
        self.segments.push(PcgSegment {
            epoch: cx.epoch,
            step: cx.start + 1,
            steps: count,
            mu1,
            mu2,
            cap,
            alpha: self.alpha,
        });
        let c = (1.0 / (2.0 * self.config.a * self.alpha)) as f32;
        let rule = StepRule::Polyak { c, max_lr: cap as f32 };
        Ok(Segment { count, lrs: vec![0.0; count * cx.engine.runs()], rule })
    }

    fn observe(&mut self, _: usize, start: usize, steps: &[StepStat]) -> Result<()> {
        let per_epoch = self.steps_per_epoch;
        self.losses.resize(per_epoch, f32::NAN);
        for (i, st) in (start..).zip(steps) {
            if let Some(&before) = self.previous.get(i)
                && before.is_finite()
            {
                self.guard(st.loss > before, per_epoch);
            }
            self.losses[i] = st.loss;
        }
        if start + steps.len() == per_epoch {
            // This epoch's losses become the next epoch's reference.
            self.previous = std::mem::take(&mut self.losses);
        }
        Ok(())
    }

    /// The rate of the epoch's first step, as a schedule file of the run names it (schedule.csv
    /// has every step's).
    fn epoch_lr(&self, _: usize, _: usize, _: usize, steps: &[StepStat]) -> f64 {
        steps.first().map_or(f64::NAN, |s| s.lr as f64)
    }

    fn extra_grad_evals(&self) -> u64 {
        self.hvp_grad_evals
    }
}

/// Two orthonormal start vectors from the counter-based PRNG.
fn start_basis(dim: usize, seed: u64) -> [Vec<f64>; 2] {
    let v: Vec<Vec<f64>> = (0..2u32)
        .map(|j| (0..dim).map(|d| prng::normal(seed, prng::stream::HESSIAN_START, j, 0, d as u32) as f64).collect())
        .collect();
    orthonormal(v, dim, seed)
}

/// Gram–Schmidt on two vectors; a vector that vanishes (a Hessian of rank < 2 on the
/// subspace) is replaced by a fresh random one.
fn orthonormal(mut v: Vec<Vec<f64>>, dim: usize, seed: u64) -> [Vec<f64>; 2] {
    let norm = |a: &[f64]| a.iter().map(|x| x * x).sum::<f64>().sqrt();
    for j in 0..2 {
        for attempt in 0..4u32 {
            for i in 0..j {
                let d: f64 = v[j].iter().zip(&v[i]).map(|(a, b)| a * b).sum();
                let vi = v[i].clone();
                v[j].iter_mut().zip(&vi).for_each(|(a, b)| *a -= d * b);
            }
            let n = norm(&v[j]);
            if n > 1e-30 && n.is_finite() {
                v[j].iter_mut().for_each(|a| *a /= n);
                break;
            }
            v[j] = (0..dim)
                .map(|d| prng::normal(seed, prng::stream::HESSIAN_START, 2 + j as u32, attempt, d as u32) as f64)
                .collect();
        }
    }
    let second = v.pop().unwrap_or_default();
    let first = v.pop().unwrap_or_default();
    [first, second]
}
