//! The rate sources people use today, for the [driver](crate::driver): schedule tables
//! (constant, step, cosine, 1/t, files), the adaptive step rules computed on the device
//! (stochastic Polyak, Armijo line search) and the LR range test.

use crate::{
    Result,
    driver::{Planning, RateSource, Segment},
    engine::{Engine, EpochPlan, StepRule, StepStat},
    schedule::Schedule,
    stats::quantile,
    train::Batching,
};

/// One schedule per run (or one for all runs), as tables of step rates.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub schedules: Vec<Schedule>,
}

impl Scheduled {
    fn of(&self, run: usize) -> &Schedule {
        &self.schedules[run % self.schedules.len()]
    }
}

impl RateSource for Scheduled {
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment> {
        let runs = cx.engine.runs();
        let lrs = (0..runs).flat_map(|r| self.of(r).step_lrs(cx.epoch, cx.epochs, cx.steps)).collect();
        Ok(Segment { count: cx.steps, lrs, rule: StepRule::Table })
    }

    /// The schedule's own value, not its f32 rounding, names the epoch's rate.
    fn epoch_lr(&self, run: usize, epoch: usize, epochs: usize, _: &[StepStat]) -> f64 {
        self.of(run).epoch_lr(epoch, epochs)
    }
}

/// Stochastic Polyak's constant: h = f_B / (c ‖∇f_B‖²) with c = 1/2, f* = 0 (Loizou et al. 2021).
pub const SPS_C: f32 = 0.5;
/// Armijo's sufficient-decrease constant and backtracking factor (Vaswani et al. 2019).
pub const ARMIJO_C: f32 = 0.1;
pub const ARMIJO_BETA: f32 = 0.9;

/// A step rule the device evaluates at every step; each run starts from its own rate.
#[derive(Debug, Clone)]
pub struct Adaptive {
    pub rule: StepRule,
    /// Per run: the rate the next epoch starts from (Armijo's first trial).
    pub start: Vec<f32>,
}

impl Adaptive {
    /// SPS with f* = 0, capped at `max_lr`.
    pub fn sps(max_lr: f32, runs: usize) -> Adaptive {
        Adaptive { rule: StepRule::Polyak { c: SPS_C, max_lr }, start: vec![0.0; runs] }
    }

    /// Armijo backtracking whose trial rate may double over an epoch (growth 2^(b/n) a step),
    /// starting at 1, capped at `max_lr`.
    pub fn armijo(batching: &Batching, max_lr: f32, runs: usize) -> Adaptive {
        let growth = 2f32.powf(batching.batch_size as f32 / batching.n as f32);
        Adaptive { rule: StepRule::Armijo { c: ARMIJO_C, beta: ARMIJO_BETA, growth, max_lr }, start: vec![1.0; runs] }
    }
}

impl RateSource for Adaptive {
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment> {
        let lrs = self.start.iter().flat_map(|&h| vec![h; cx.steps]).collect();
        Ok(Segment { count: cx.steps, lrs, rule: self.rule })
    }

    fn observe(&mut self, _: usize, _: usize, steps: &[StepStat]) -> Result<()> {
        if let StepRule::Armijo { growth, max_lr, .. } = self.rule {
            let per_run = steps.len() / self.start.len();
            for (h, st) in self.start.iter_mut().zip(steps.chunks(per_run)) {
                *h = (st.last().map_or(*h, |s| s.lr) * growth).min(max_lr);
            }
        }
        Ok(())
    }

    /// The median of the epoch's step rates.
    fn epoch_lr(&self, _: usize, _: usize, _: usize, steps: &[StepStat]) -> f64 {
        quantile(steps.iter().map(|s| s.lr as f64).collect(), 0.5)
    }
}

/// The LR range test (fastai, Lightning): up to 100 steps of epoch 1 with the rate growing
/// exponentially from 1e-7 to 10, from the engine's current parameters (run 0). Returns the
/// suggested rate and the steps spent.
pub fn range_test(engine: &mut dyn Engine, batching: &Batching) -> Result<(f64, u64)> {
    let steps = 100.min(batching.steps());
    let (lo, hi) = (1e-7f64, 10f64);
    let lrs: Vec<f32> =
        (0..steps).map(|i| (lo * (hi / lo).powf(i as f64 / (steps - 1).max(1) as f64)) as f32).collect();
    let b = batching.batch_size;
    let batches = &batching.epoch(1)[..steps * b];
    let plan = EpochPlan {
        batches,
        batch_size: b,
        steps,
        lrs: &lrs,
        rule: StepRule::Table,
        read_params: false,
        evaluate: false,
    };
    let out = engine.run_epoch(&plan)?;
    let losses: Vec<f64> = out.steps[..steps].iter().map(|s| s.loss as f64).collect();
    Ok((range_suggestion(&lrs, &losses), steps as u64))
}

/// Lightning's rule: smooth (EMA 0.98, debiased), stop once the loss exceeds 4× its best, take
/// the steepest descent (the most negative difference of the smoothed loss), skipping the first
/// 10 points.
pub fn range_suggestion(lrs: &[f32], losses: &[f64]) -> f64 {
    let mut smooth = Vec::with_capacity(losses.len());
    let (mut avg, mut best) = (0.0, f64::INFINITY);
    for (i, &l) in losses.iter().enumerate() {
        if !l.is_finite() {
            break;
        }
        avg = 0.98 * avg + 0.02 * l;
        let s = avg / (1.0 - 0.98f64.powi(i as i32 + 1));
        if s > 4.0 * best {
            break;
        }
        best = best.min(s);
        smooth.push(s);
    }
    let skip = 10.min(smooth.len().saturating_sub(2));
    let steepest = (skip + 1..smooth.len())
        .min_by(|&a, &b| (smooth[a] - smooth[a - 1]).total_cmp(&(smooth[b] - smooth[b - 1])))
        .unwrap_or(0);
    lrs[steepest] as f64
}

/// The most runs a sweep, a grid or a seed sweep may ask for: far more than any study needs,
/// and a bound that keeps every count in range (runs × parameters, runs × steps).
pub const MAX_RUNS: usize = 4096;

/// `A:B:R` as R log-spaced rates from A to B (`flag` names the option in the error).
pub fn parse_grid(flag: &str, text: &str) -> Result<Vec<f64>> {
    let bad = || {
        crate::Error::usage(format!(
            "{flag} `{text}`: use A:B:R with 0 < A ≤ B and 1 ≤ R ≤ {MAX_RUNS} rates, e.g. 1e-3:10:8"
        ))
    };
    let parts: Vec<&str> = text.split(':').collect();
    let [a, b, r] = parts.as_slice() else { return Err(bad()) };
    let (a, b): (f64, f64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    let r: usize = r.trim().parse().map_err(|_| bad())?;
    if b < a || b.is_nan() || r == 0 || r > MAX_RUNS {
        return Err(bad());
    }
    for v in [a, b] {
        if let Some(why) = crate::schedule::lr_problem(v) {
            return Err(crate::Error::usage(format!("{flag} `{text}`: {why}")));
        }
    }
    Ok((0..r).map(|i| if r == 1 { a } else { a * (b / a).powf(i as f64 / (r - 1) as f64) }).collect())
}
