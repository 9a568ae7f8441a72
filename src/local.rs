//! The accurate-local-problem procedure (the notebook's, `docs/procedures.md`): along q_i the flow of batch i is locally
//! dη/dt = (n/b)(α_i + β_i η), so one SGD step of rate h reproduces the exact local solution
//! over a time τ when
//!
//!   h_i(τ) = (1 − e^{−λ_i τ}) / λ_i,   λ_i = −(n/b) β_i   (h_i = τ where λ_i ≤ 0; 1/λ_i as τ → ∞).
//!
//! The per-batch rates are then aggregated into one rate (median by default), with guard rails
//! where the local problem is not convex (λ ≤ 0) or the line fits badly (low R²).

use std::fmt;

use serde::Serialize;

use crate::{
    Error, Result,
    analysis::BatchAnalysis,
    driver::{Planning, RateSource, Segment},
    engine::{StepRule, StepStat},
    stats::quantile,
};

/// The time τ one step should cover.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Tau {
    Finite(f64),
    /// The Newton step along q: h = 1/λ.
    Infinite,
}

impl Tau {
    pub fn parse(text: &str) -> Result<Tau> {
        let t = text.trim();
        if t == "inf" || t == "∞" {
            return Ok(Tau::Infinite);
        }
        match t.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(Tau::Finite(v)),
            Ok(v) if v == f64::INFINITY => Ok(Tau::Infinite),
            _ => Err(Error::usage(format!("--tau `{text}`: use a positive number or inf"))),
        }
    }
}

impl fmt::Display for Tau {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tau::Finite(v) => write!(f, "{v}"),
            Tau::Infinite => write!(f, "inf"),
        }
    }
}

/// The accurate step h(τ) for curvature λ; `None` where it is unbounded (λ ≤ 0, τ = ∞).
pub fn accurate_step(lambda: f64, tau: Tau) -> Option<f64> {
    match tau {
        Tau::Infinite => (lambda > 0.0).then(|| 1.0 / lambda),
        Tau::Finite(t) if lambda <= 0.0 => Some(t),
        // −expm1(−λτ)/λ keeps its precision where λτ is small (h → τ).
        Tau::Finite(t) => Some(-(-lambda * t).exp_m1() / lambda),
    }
}

/// How the batches' rates become one rate, named after the curvature they follow:
/// `median`, `max` (the largest λ: the smallest, most cautious rate), `q<p>` (the p-th percentile
/// of λ, e.g. q90).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Aggregate {
    Median,
    Max,
    Quantile(f64),
}

impl Aggregate {
    pub fn parse(text: &str) -> Result<Aggregate> {
        match text.trim() {
            "median" => Ok(Aggregate::Median),
            "max" => Ok(Aggregate::Max),
            t => t
                .strip_prefix('q')
                .and_then(|p| p.parse::<f64>().ok())
                .filter(|p| (0.0..=100.0).contains(p))
                .map(|p| Aggregate::Quantile(p / 100.0))
                .ok_or_else(|| Error::usage(format!("--aggregate `{text}`: use median, max or q<p> (e.g. q90)"))),
        }
    }

    /// The quantile of the per-batch *rates* this aggregate takes (rates fall as λ grows).
    fn rate_quantile(&self) -> f64 {
        match self {
            Aggregate::Median => 0.5,
            Aggregate::Max => 0.0,
            Aggregate::Quantile(p) => 1.0 - p,
        }
    }
}

impl std::str::FromStr for Aggregate {
    type Err = Error;

    fn from_str(text: &str) -> Result<Aggregate> {
        Aggregate::parse(text)
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Median => write!(f, "median"),
            Aggregate::Max => write!(f, "max"),
            Aggregate::Quantile(p) => write!(f, "q{}", p * 100.0),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Procedure {
    pub tau: Tau,
    pub aggregate: Aggregate,
    /// Batches whose projection fit has R² below this fall back.
    pub min_r2: f64,
    /// The largest rate the procedure returns (also the fallback where τ = ∞).
    pub max_lr: f64,
}

impl Procedure {
    /// The rate of one batch and whether it fell back (λ ≤ 0, non-finite, or R² < min_r2).
    pub fn batch_rate(&self, lambda: f64, r2: f64) -> (f64, bool) {
        let fallback = match self.tau {
            Tau::Finite(t) => t.min(self.max_lr),
            Tau::Infinite => self.max_lr,
        };
        if !lambda.is_finite() || lambda <= 0.0 || r2.is_nan() || r2 < self.min_r2 {
            return (fallback, true);
        }
        match accurate_step(lambda, self.tau) {
            Some(h) => (h.min(self.max_lr), false),
            None => (fallback, true),
        }
    }

    /// One rate from the analysed batches, with the statistics that explain it.
    pub fn estimate(&self, results: &[BatchAnalysis]) -> Estimate {
        let mut rates = Vec::with_capacity(results.len());
        let mut fallbacks = 0;
        for r in results {
            let (h, fell) = self.batch_rate(r.lambda, r.r2);
            rates.push(h);
            fallbacks += fell as usize;
        }
        let lambdas: Vec<f64> = results.iter().map(|r| r.lambda).collect();
        let r2s: Vec<f64> = results.iter().map(|r| r.r2).collect();
        Estimate {
            lr: quantile(rates.clone(), self.aggregate.rate_quantile()),
            lambda_median: quantile(lambdas.clone(), 0.5),
            lambda_q1: quantile(lambdas.clone(), 0.25),
            lambda_q3: quantile(lambdas.clone(), 0.75),
            lambda_max: quantile(lambdas, 1.0),
            r2_median: quantile(r2s, 0.5),
            h_median: quantile(rates.clone(), 0.5),
            h_min: quantile(rates, 0.0),
            fallbacks,
            batches: results.len(),
        }
    }
}

/// One estimate of the procedure: the rate and why.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Estimate {
    pub lr: f64,
    pub lambda_median: f64,
    pub lambda_q1: f64,
    pub lambda_q3: f64,
    pub lambda_max: f64,
    pub r2_median: f64,
    pub h_median: f64,
    pub h_min: f64,
    /// Batches that fell back to τ / max-lr.
    pub fallbacks: usize,
    pub batches: usize,
}

/// When the procedure re-estimates the rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Mode {
    /// At each epoch's start.
    Epoch,
    /// Every `every` steps (restarting at each epoch's start).
    Online { every: usize },
}

/// Everything a scheduled run needs besides the engine and the batching.
#[derive(Debug, Clone, Serialize)]
pub struct LocalConfig {
    pub procedure: Procedure,
    pub analysis: crate::analysis::Settings,
    pub mode: Mode,
    /// Batches analysed per estimate (None: all).
    pub sample: Option<usize>,
}

/// One row of schedule.csv: an estimate and the steps it governs.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRow {
    pub epoch: usize,
    /// First step (1-based) the rate applies to.
    pub step: usize,
    pub estimate: Estimate,
}

/// Rates from the accurate local problem, re-estimated at each epoch's start or every M steps
/// from the analysis of sampled batches at the current parameters (run 0).
#[derive(Debug, Clone)]
pub struct LocalRates {
    pub config: LocalConfig,
    /// Every estimate so far, with the steps it governs.
    pub schedule: Vec<ScheduleRow>,
    /// Perturbed gradients evaluated: K twice per analysed batch (the SVD and the fresh projection).
    pub analysis_grad_evals: u64,
    /// Seconds spent in the analysis.
    pub analysis_seconds: f64,
}

impl LocalRates {
    pub fn new(config: LocalConfig) -> LocalRates {
        LocalRates { config, schedule: Vec::new(), analysis_grad_evals: 0, analysis_seconds: 0.0 }
    }

    /// The steps one estimate governs.
    fn every(&self, steps: usize) -> usize {
        match self.config.mode {
            Mode::Epoch => steps,
            Mode::Online { every } => every.clamp(1, steps),
        }
    }

    /// One estimate at the engine's parameters on the sampled batches of this epoch's table.
    fn estimate(&self, cx: &mut Planning) -> Result<Estimate> {
        let cfg = &self.config;
        let chunk = cx.start / self.every(cx.steps);
        let which: Vec<usize> = match cfg.sample {
            Some(s) if s < cx.steps => {
                let seed = cfg.analysis.seed ^ ((crate::prng::stream::SAMPLE_BATCHES as u64) << 40);
                let mut w: Vec<usize> = crate::prng::permutation(cx.steps, seed, (cx.epoch * 100_003 + chunk) as u32)
                    [..s]
                    .iter()
                    .map(|&i| i as usize)
                    .collect();
                w.sort();
                w
            }
            _ => (0..cx.steps).collect(),
        };
        let dim = cx.engine.model().dim();
        let theta = cx.engine.params()?[..dim].to_vec();
        let batches =
            crate::analysis::Batches { table: cx.table, batch_size: cx.batching.batch_size, n: cx.batching.n };
        let results = crate::analysis::analyze(cx.engine, &theta, &batches, &which, &cfg.analysis, 64, &mut |_| {})?;
        Ok(cfg.procedure.estimate(&results))
    }
}

impl RateSource for LocalRates {
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment> {
        let t = std::time::Instant::now();
        let estimate = self.estimate(cx)?;
        self.analysis_seconds += t.elapsed().as_secs_f64();
        self.analysis_grad_evals += (estimate.batches * self.config.analysis.points * 2) as u64;
        self.schedule.push(ScheduleRow { epoch: cx.epoch, step: cx.start + 1, estimate });
        let count = self.every(cx.steps).min(cx.left);
        Ok(Segment { count, lrs: vec![estimate.lr as f32; count * cx.engine.runs()], rule: StepRule::Table })
    }

    /// The rate of the epoch's first estimate, as the f32 the run used.
    fn epoch_lr(&self, _: usize, epoch: usize, _: usize, _: &[StepStat]) -> f64 {
        self.schedule
            .iter()
            .rev()
            .find(|s| s.epoch == epoch && s.step == 1)
            .map_or(f64::NAN, |s| s.estimate.lr as f32 as f64)
    }

    fn extra_grad_evals(&self) -> u64 {
        self.analysis_grad_evals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accurate_step_on_known_curvatures() {
        // λ ≤ 0: h = τ; τ → ∞: 1/λ; small λτ: h → τ(1 − λτ/2).
        assert_eq!(accurate_step(-3.0, Tau::Finite(0.2)), Some(0.2));
        assert_eq!(accurate_step(0.0, Tau::Finite(0.2)), Some(0.2));
        assert_eq!(accurate_step(4.0, Tau::Infinite), Some(0.25));
        assert_eq!(accurate_step(-1.0, Tau::Infinite), None);
        let h = accurate_step(1e-9, Tau::Finite(1e-3)).unwrap();
        assert!((h - 1e-3 * (1.0 - 0.5e-12)).abs() < 1e-18);
        let h = accurate_step(2.0, Tau::Finite(1e3)).unwrap();
        assert!((h - 0.5).abs() < 1e-12);
        let h = accurate_step(2.0, Tau::Finite(0.5)).unwrap();
        assert!((h - (1.0 - (-1.0f64).exp()) / 2.0).abs() < 1e-15);
    }

    #[test]
    fn guard_rails_fall_back_and_cap() {
        let p = Procedure { tau: Tau::Infinite, aggregate: Aggregate::Median, min_r2: 0.5, max_lr: 3.0 };
        assert_eq!(p.batch_rate(-1.0, 0.9), (3.0, true));
        assert_eq!(p.batch_rate(4.0, 0.1), (3.0, true));
        assert_eq!(p.batch_rate(4.0, f64::NAN), (3.0, true));
        assert_eq!(p.batch_rate(0.1, 0.9), (3.0, false));
        assert_eq!(p.batch_rate(4.0, 0.9), (0.25, false));
        let p = Procedure { tau: Tau::Finite(0.1), ..p };
        assert_eq!(p.batch_rate(-1.0, 0.9), (0.1, true));
    }

    #[test]
    fn aggregates() {
        assert_eq!(Aggregate::parse("q90").unwrap(), Aggregate::Quantile(0.9));
        assert!(Aggregate::parse("q200").is_err() && Aggregate::parse("mean").is_err());
        assert_eq!(quantile(vec![3.0, 1.0, f64::NAN, 2.0], 0.5), 2.0);
        assert_eq!(Aggregate::Max.rate_quantile(), 0.0);
        assert!(Tau::parse("0").is_err() && Tau::parse("-1").is_err());
        assert_eq!(Tau::parse("inf").unwrap(), Tau::Infinite);
    }
}
