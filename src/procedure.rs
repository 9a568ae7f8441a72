//! The learning-rate procedures by name: the default (`pcg`, see [`crate::pcg`]) and the
//! accurate-local-problem procedures of [`crate::local`] (`notebook`, `centred-max`), as one
//! rate source type that `schedule`, `compare` and `suite` drive and report alike.

use serde::Serialize;

use crate::{
    Result,
    driver::{Planning, RateSource, Segment},
    engine::StepStat,
    local::{LocalConfig, LocalRates, Mode},
    pcg::{PcgConfig, PcgRates},
    report::{files::csv_num, table::fmt_num},
    stats::quantile,
};

/// A procedure and its settings.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ProcedureSpec {
    Pcg(PcgConfig),
    Local(LocalConfig),
}

/// A procedure while it runs.
#[derive(Debug, Clone)]
pub enum ProcedureRates {
    Pcg(PcgRates),
    Local(LocalRates),
}

impl ProcedureSpec {
    pub fn start(&self) -> Result<ProcedureRates> {
        Ok(match self {
            ProcedureSpec::Pcg(c) => ProcedureRates::Pcg(PcgRates::new(*c)?),
            ProcedureSpec::Local(c) => ProcedureRates::Local(LocalRates::new(c.clone())),
        })
    }

    /// Whether the procedure needs the batches in the same order every epoch.
    pub fn needs_fixed_order(&self) -> bool {
        matches!(self, ProcedureSpec::Pcg(_))
    }
}

impl RateSource for ProcedureRates {
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment> {
        match self {
            ProcedureRates::Pcg(p) => p.plan(cx),
            ProcedureRates::Local(l) => l.plan(cx),
        }
    }

    fn observe(&mut self, epoch: usize, start: usize, steps: &[StepStat]) -> Result<()> {
        match self {
            ProcedureRates::Pcg(p) => p.observe(epoch, start, steps),
            ProcedureRates::Local(l) => l.observe(epoch, start, steps),
        }
    }

    fn epoch_lr(&self, run: usize, epoch: usize, epochs: usize, steps: &[StepStat]) -> f64 {
        match self {
            ProcedureRates::Pcg(p) => p.epoch_lr(run, epoch, epochs, steps),
            ProcedureRates::Local(l) => l.epoch_lr(run, epoch, epochs, steps),
        }
    }

    fn extra_grad_evals(&self) -> u64 {
        match self {
            ProcedureRates::Pcg(p) => p.extra_grad_evals(),
            ProcedureRates::Local(l) => l.extra_grad_evals(),
        }
    }
}

/// schedule.csv's header and rows: what `train --schedule` reads (`epoch[,step],lr`) and the
/// estimates behind each rate.
pub struct ScheduleTable {
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

impl ProcedureRates {
    /// The schedule as run: per estimate (local procedures) or per step (pcg, whose rate
    /// changes every step), given the run's step statistics.
    pub fn table(&self, steps: &[StepStat], steps_per_epoch: usize) -> ScheduleTable {
        match self {
            ProcedureRates::Pcg(p) => pcg_table(p, steps, steps_per_epoch),
            ProcedureRates::Local(l) => local_table(l),
        }
    }

    /// Lines that explain the rates, for report.md.
    pub fn notes(&self) -> Vec<String> {
        match self {
            ProcedureRates::Pcg(p) => p
                .segments
                .iter()
                .filter(|s| s.step == 1)
                .map(|s| {
                    format!(
                        "epoch {}: cap 2/(μ₁+μ₂) = {} from μ₁ {}, μ₂ {}; guard α {}",
                        s.epoch,
                        fmt_num(s.cap, 3),
                        fmt_num(s.mu1, 3),
                        fmt_num(s.mu2, 3),
                        fmt_num(s.alpha, 3)
                    )
                })
                .collect(),
            ProcedureRates::Local(l) => l
                .schedule
                .iter()
                .map(|s| {
                    let e = &s.estimate;
                    format!(
                        "epoch {} step {}: lr {}, λ median {} (q1 {}, q3 {}), R² median {}, {} of {} batches fell back",
                        s.epoch,
                        s.step,
                        fmt_num(e.lr, 3),
                        fmt_num(e.lambda_median, 3),
                        fmt_num(e.lambda_q1, 3),
                        fmt_num(e.lambda_q3, 3),
                        fmt_num(e.r2_median, 2),
                        e.fallbacks,
                        e.batches
                    )
                })
                .collect(),
        }
    }
}

fn pcg_table(p: &PcgRates, steps: &[StepStat], steps_per_epoch: usize) -> ScheduleTable {
    let header = vec!["epoch", "step", "lr", "batch_loss", "grad_sq", "mu1", "mu2", "cap", "alpha"];
    let mut rows = Vec::with_capacity(steps.len());
    let mut segments = p.segments.iter().peekable();
    let mut current = None;
    for (i, st) in steps.iter().enumerate() {
        let (epoch, step) = (i / steps_per_epoch + 1, i % steps_per_epoch + 1);
        while let Some(seg) = segments.peek()
            && (seg.epoch, seg.step) <= (epoch, step)
        {
            current = segments.next();
        }
        let seg = current.copied();
        let seg_num = |f: fn(&crate::pcg::PcgSegment) -> f64| seg.as_ref().map_or(String::new(), |s| csv_num(f(s)));
        rows.push(vec![
            epoch.to_string(),
            step.to_string(),
            // The rate as the f32 the run used, so `train --schedule` reproduces it.
            csv_num(st.lr as f64),
            csv_num(st.loss as f64),
            csv_num(st.grad_sq as f64),
            seg_num(|s| s.mu1),
            seg_num(|s| s.mu2),
            seg_num(|s| s.cap),
            seg_num(|s| s.alpha),
        ]);
    }
    ScheduleTable { header, rows }
}

fn local_table(l: &LocalRates) -> ScheduleTable {
    let online = matches!(l.config.mode, Mode::Online { .. });
    let mut header = vec!["epoch"];
    if online {
        header.push("step");
    }
    header.extend(["lr", "lambda_median", "lambda_q1", "lambda_q3", "r2_median", "lambda_max", "h_median", "h_min"]);
    header.extend(["fallbacks", "batches"]);
    let rows = l
        .schedule
        .iter()
        .map(|r| {
            let e = &r.estimate;
            let mut cells = vec![r.epoch.to_string()];
            if online {
                cells.push(r.step.to_string());
            }
            // The rate as the f32 the run used, so `train --schedule` reproduces the run exactly.
            cells.push(csv_num(e.lr as f32 as f64));
            cells.extend(
                [e.lambda_median, e.lambda_q1, e.lambda_q3, e.r2_median, e.lambda_max, e.h_median, e.h_min]
                    .map(csv_num),
            );
            cells.push(e.fallbacks.to_string());
            cells.push(e.batches.to_string());
            cells
        })
        .collect();
    ScheduleTable { header, rows }
}

/// The named procedures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ProcedureName {
    /// The default: Polyak-like steps along the gradient, capped by the top two Hessian
    /// curvatures (subspace iteration), with a revisit guard; ~1.23× the gradients of one run.
    Pcg,
    /// The notebook's procedure: uncentred G, the Newton step 1/λ along q (or h(τ) with
    /// --tau), median over the batches (--aggregate); K perturbed gradients twice per batch.
    Notebook,
    /// Centred G (q is the top Hessian direction), the most cautious batch (max λ), 40 batches.
    CentredMax,
}

impl ProcedureName {
    /// The row name in compare.csv and suite.csv (`schedule` is what `steplens schedule` runs).
    pub fn row_name(self) -> &'static str {
        match self {
            ProcedureName::Pcg => "schedule",
            ProcedureName::Notebook => "notebook",
            ProcedureName::CentredMax => "centred-max",
        }
    }

    /// The procedure with the local procedures' settings from the command line (`local`:
    /// τ, aggregate, R² threshold, cap, analysis, re-estimation, sampled batches).
    pub fn spec(self, local: &LocalConfig, seed: u64) -> ProcedureSpec {
        match self {
            ProcedureName::Pcg => {
                ProcedureSpec::Pcg(PcgConfig { seed, max_lr: local.procedure.max_lr, ..PcgConfig::default() })
            }
            ProcedureName::Notebook => ProcedureSpec::Local(local.clone()),
            ProcedureName::CentredMax => {
                let mut c = local.clone();
                c.procedure.aggregate = crate::local::Aggregate::Max;
                c.analysis.center = true;
                c.sample = c.sample.or(Some(CENTRED_MAX_SAMPLE));
                ProcedureSpec::Local(c)
            }
        }
    }
}

/// Batches `centred-max` analyses per estimate unless told otherwise: a sample large enough that
/// the most curved batch of an epoch is rarely missed, at 40·2K gradients an epoch.
pub const CENTRED_MAX_SAMPLE: usize = 40;

impl ProcedureRates {
    /// Why the procedure chose its rates (and, if it diverged, why that happened), for report.md.
    pub fn explain(&self, diverged: bool) -> String {
        match self {
            ProcedureRates::Pcg(p) => explain_pcg(p, diverged),
            ProcedureRates::Local(l) => explain_local(l, diverged),
        }
    }
}

fn explain_pcg(p: &PcgRates, diverged: bool) -> String {
    let capped = p.segments.iter().filter(|s| s.cap < p.config.max_lr).count();
    let n = p.segments.len();
    let alpha_min = p.segments.iter().map(|s| s.alpha).fold(1.0, f64::min);
    let mu1: Vec<f64> = p.ritz.iter().map(|r| r.mu1).collect();
    let mut s = format!(
        "Each step took the Polyak-like rate {}·2f_B/‖g_B‖² times the guard α, capped by 2/(μ₁+μ₂) from {} subspace iterations \
         ({} Hessian–vector products); the top curvature μ₁ ranged {}–{}, the cap was below --max-lr in {capped} of {n} segments, \
         and α fell to {} at its lowest (1 = no batch's loss rose on its revisit).",
        p.config.a,
        p.ritz.len(),
        2 * p.ritz.len(),
        fmt_num(quantile(mu1.clone(), 0.0), 3),
        fmt_num(quantile(mu1, 1.0), 3),
        fmt_num(alpha_min, 3),
    );
    if diverged {
        s.push_str(" It diverged: the cap holds along the two directions it measured, not along every direction of the batch Hessian.");
    }
    s
}

fn explain_local(l: &LocalRates, diverged: bool) -> String {
    let max_lr = l.config.procedure.max_lr;
    if diverged {
        let last = l.schedule.last().map(|e| e.estimate);
        let (lr, lambda) =
            (last.map_or("-".into(), |e| fmt_num(e.lr, 3)), last.map_or("-".into(), |e| fmt_num(e.lambda_median, 3)));
        return if l.config.analysis.center {
            format!(
                "Why: it diverged at rate {lr} for λ ≈ {lambda}: the curvatures of the sampled batches along their top Hessian \
                 direction did not bound the curvature of every batch the run stepped on."
            )
        } else {
            format!(
                "Why: it diverged at rate {lr} = 1/λ for λ ≈ {lambda}: without centring, q is almost the batch-gradient direction \
                 (σ₂/σ₁ ≈ 0.01), which sees an average curvature, not the sharpest curvature L of the batch Hessian, and a step \
                 1/λ > 2/L is unstable along the sharpest direction; centring G turns q into the top Hessian direction."
            )
        };
    }
    let n = l.schedule.len();
    let capped = l.schedule.iter().filter(|e| e.estimate.lr >= max_lr * 0.999).count();
    let tiny = l.schedule.iter().filter(|e| e.estimate.lambda_median.abs() < 1e-3).count();
    let mut why = Vec::new();
    if capped > 0 {
        why.push(format!(
            "in {capped} of {n} estimates the rate hit --max-lr {max_lr}: where λ is tiny (predictions saturate) or the fit is \
             poor the Newton step 1/λ is unbounded, so the cap, not the geometry, set the rate"
        ));
    }
    if tiny > 0 {
        why.push(format!("the median curvature fell below 1e-3 in {tiny} of {n} estimates"));
    }
    if why.is_empty() {
        why.push(
            "the curvature estimates were positive and fitted well enough (R² ≥ --min-r2), so the rate is the aggregate of \
             the batches' accurate steps h_i(τ) along q"
                .into(),
        );
    }
    format!("Why: {}.", why.join("; "))
}

/// `pcg,notebook,…` (or `none`) as procedure names.
pub fn parse_procedures(text: &str) -> Result<Vec<ProcedureName>> {
    use clap::ValueEnum;
    if text.trim() == "none" {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            ProcedureName::from_str(s, false).map_err(|_| {
                crate::Error::usage(format!("--procedures `{s}`: use pcg, notebook or centred-max (or none)"))
            })
        })
        .collect()
}
