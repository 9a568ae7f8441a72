//! Methods compared on the same data, initialisation, batch order and epochs: the roster is
//! data (a name, a family and a rate source each), run through the [driver](crate::driver),
//! and summarised over seeds against the tuned constant.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    driver::{OnDivergence, RateSource, RunSpec, RunState, drive},
    engine::{Engine, Metrics},
    procedure::ProcedureSpec,
    rates::{Adaptive, Scheduled, range_test},
    report::{progress::Progress, table::fmt_num},
    schedule::Schedule,
    stats::{quantile, quantile_with_inf},
    train::{Batching, HistoryRow, diverged},
};

/// Where a method's rates come from.
#[derive(Debug, Clone)]
pub enum MethodRates {
    /// A fixed schedule (the grid, the notebook's 0.005).
    Schedule(Schedule),
    /// A decay based at the best constant of the grid, run after the grid.
    FromBest(Decay),
    /// The LR range test's suggestion, as a constant.
    RangeTest,
    /// Stochastic Polyak (SPS, f* = 0).
    Sps,
    /// Armijo line search (SLS).
    Armijo,
    /// A learning-rate procedure (the default `schedule`, the notebook's, …).
    Procedure(ProcedureSpec),
}

/// Decays from the best constant h: step (×0.5 every max(2, epochs/3) epochs), cosine to 0, 1/t.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decay {
    Step,
    Cosine,
    InvT,
}

impl Decay {
    fn schedule(self, lr: f64, epochs: usize) -> Schedule {
        match self {
            Decay::Step => Schedule::Step { lr, gamma: 0.5, every: 2.max(epochs / 3) },
            Decay::Cosine => Schedule::Cosine { lr, min: 0.0 },
            Decay::InvT => Schedule::InvT { lr, k: 1.0 },
        }
    }

    fn name(self) -> &'static str {
        match self {
            Decay::Step => "step",
            Decay::Cosine => "cosine",
            Decay::InvT => "inv-t",
        }
    }
}

/// One entry of the roster.
#[derive(Debug, Clone)]
pub struct Method {
    /// The row's name (`constant:0.1`, `sps`, `schedule`, …); for `FromBest` and `RangeTest`
    /// the rate is appended when it is known.
    pub name: String,
    /// constant, notebook, step, cosine, inv-t, range-test, sps, armijo, procedure.
    pub family: String,
    pub rates: MethodRates,
}

impl Method {
    pub fn new(name: impl Into<String>, family: impl Into<String>, rates: MethodRates) -> Method {
        Method { name: name.into(), family: family.into(), rates }
    }

    /// A constant of the grid.
    pub fn constant(lr: f64) -> Method {
        Method::new(
            format!("constant:{}", fmt_num(lr, 3)),
            "constant",
            MethodRates::Schedule(Schedule::Constant { lr }),
        )
    }
}

/// The comparison's roster in the order it is reported: the grid, the notebook's 0.005, the
/// decays from the best constant, the range test, SPS, Armijo, then `procedures`.
pub fn roster(grid: &[f64], procedures: Vec<(String, ProcedureSpec)>) -> Vec<Method> {
    let mut methods: Vec<Method> = grid.iter().map(|&lr| Method::constant(lr)).collect();
    methods.push(Method::new("notebook:0.005", "notebook", MethodRates::Schedule(Schedule::Constant { lr: 0.005 })));
    for d in [Decay::Step, Decay::Cosine, Decay::InvT] {
        methods.push(Method::new(d.name(), d.name(), MethodRates::FromBest(d)));
    }
    methods.push(Method::new("range-test", "range-test", MethodRates::RangeTest));
    methods.push(Method::new("sps", "sps", MethodRates::Sps));
    methods.push(Method::new("armijo", "armijo", MethodRates::Armijo));
    methods.extend(procedures.into_iter().map(|(n, p)| Method::new(n, "procedure", MethodRates::Procedure(p))));
    methods
}

/// One method's run on one seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MethodRun {
    /// The roster's name.
    pub name: String,
    /// The rate a decay or the range test was based at on this seed.
    pub based_at: Option<f64>,
    pub family: String,
    pub seed: u64,
    pub history: Vec<HistoryRow>,
    /// Batch gradients evaluated (every estimate included).
    pub grad_evals: u64,
    /// Extra batch-loss evaluations (Armijo).
    pub loss_evals: u64,
    pub seconds: f64,
    /// Why the rates are what they are (procedures).
    pub notes: Vec<String>,
    /// Why a procedure chose its rates (and why it diverged, if it did), for report.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
}

impl MethodRun {
    pub fn last(&self) -> &HistoryRow {
        self.history.last().expect("row 0 exists")
    }

    /// The name with the rate it was based at (`step:2.68`, `range-test:0.2`).
    pub fn label(&self) -> String {
        match self.based_at {
            Some(lr) => format!("{}:{}", self.name, fmt_num(lr, 3)),
            None => self.name.clone(),
        }
    }

    /// The final training loss; +∞ for a run that diverged.
    pub fn final_loss(&self) -> f64 {
        if diverged(self.last()) { f64::INFINITY } else { self.last().train_loss }
    }

    pub fn diverged(&self) -> bool {
        !self.final_loss().is_finite()
    }

    /// The `lr` column of every epoch.
    pub fn epoch_lrs(&self) -> Vec<f64> {
        self.history.iter().skip(1).map(|h| h.lr).collect()
    }
}

/// What a comparison on one seed needs.
pub struct Trial<'a> {
    /// Makes an engine with `runs` runs, every run at the initial parameters of this seed.
    pub engine: &'a mut dyn FnMut(usize) -> Result<Box<dyn Engine>>,
    pub batching: Batching,
    pub epochs: usize,
    /// The cap of SPS and Armijo.
    pub max_lr: f32,
    pub quiet: bool,
}

/// Runs every method of `methods` on one seed; rows in roster order.
pub fn run_roster(trial: &mut Trial, methods: &[Method]) -> Result<Vec<MethodRun>> {
    let mut runs: Vec<Option<MethodRun>> = vec![None; methods.len()];
    let table: Vec<usize> =
        (0..methods.len()).filter(|&i| matches!(methods[i].rates, MethodRates::Schedule(_))).collect();
    let schedules = table.iter().map(|&i| (i, fixed(&methods[i]))).collect::<Vec<_>>();
    run_group(trial, methods, &schedules, &mut runs)?;
    let best = runs
        .iter()
        .flatten()
        .filter(|r| r.family == "constant")
        .min_by(|a, b| a.final_loss().total_cmp(&b.final_loss()))
        .map(|r| r.history[1].lr)
        .ok_or_else(|| Error::usage("the comparison needs a constant grid"))?;
    let mut based = Vec::new();
    let mut range_steps = 0;
    for (i, m) in methods.iter().enumerate() {
        match m.rates {
            MethodRates::FromBest(d) => based.push((i, d.schedule(best, trial.epochs))),
            MethodRates::RangeTest => {
                let mut e = (trial.engine)(1)?;
                let (suggestion, steps) = range_test(e.as_mut(), &trial.batching)?;
                range_steps = steps;
                based.push((i, Schedule::Constant { lr: suggestion }));
            }
            _ => {}
        }
    }
    run_group(trial, methods, &based, &mut runs)?;
    for (i, m) in methods.iter().enumerate() {
        match &m.rates {
            MethodRates::FromBest(_) => rename_with_rate(&mut runs[i], best),
            MethodRates::RangeTest => {
                if let Some(r) = runs[i].as_mut() {
                    r.grad_evals += range_steps;
                    let lr = r.history.get(1).map_or(f64::NAN, |h| h.lr);
                    rename_with_rate(&mut runs[i], lr);
                }
            }
            MethodRates::Sps => runs[i] = Some(run_single(trial, m, Adaptive::sps(trial.max_lr, 1))?),
            MethodRates::Armijo => {
                runs[i] = Some(run_single(trial, m, Adaptive::armijo(&trial.batching, trial.max_lr, 1))?)
            }
            MethodRates::Procedure(spec) => runs[i] = Some(run_procedure(trial, m, spec)?),
            MethodRates::Schedule(_) => {}
        }
    }
    Ok(runs.into_iter().flatten().collect())
}

fn fixed(m: &Method) -> Schedule {
    match &m.rates {
        MethodRates::Schedule(s) => s.clone(),
        _ => unreachable!("only fixed schedules are grouped"),
    }
}

fn rename_with_rate(run: &mut Option<MethodRun>, lr: f64) {
    if let Some(r) = run.as_mut() {
        r.based_at = Some(lr);
    }
}

/// Table-rate methods trained side by side on one engine.
fn run_group(
    trial: &mut Trial,
    methods: &[Method],
    group: &[(usize, Schedule)],
    out: &mut [Option<MethodRun>],
) -> Result<()> {
    if group.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let mut engine = (trial.engine)(group.len())?;
    let names: Vec<&str> = group.iter().map(|&(i, _)| methods[i].name.as_str()).collect();
    let label = names.join(", ");
    let mut rates = Scheduled { schedules: group.iter().map(|(_, s)| s.clone()).collect() };
    let state = drive_shown(trial, engine.as_mut(), &mut rates, OnDivergence::Continue, &label).into_result()?;
    let seconds = started.elapsed().as_secs_f64() / group.len() as f64;
    for (r, &(i, _)) in group.iter().enumerate() {
        out[i] = Some(method_run(&methods[i], &state, r, seconds));
    }
    Ok(())
}

fn run_single(trial: &mut Trial, m: &Method, mut rates: Adaptive) -> Result<MethodRun> {
    let started = Instant::now();
    let mut engine = (trial.engine)(1)?;
    let state = drive_shown(trial, engine.as_mut(), &mut rates, OnDivergence::Continue, &m.name).into_result()?;
    Ok(method_run(m, &state, 0, started.elapsed().as_secs_f64()))
}

/// A procedure's run; one that diverges is a result to report (its later epochs count as +∞).
fn run_procedure(trial: &mut Trial, m: &Method, spec: &ProcedureSpec) -> Result<MethodRun> {
    let started = Instant::now();
    let mut engine = (trial.engine)(1)?;
    let mut rates = spec.start()?;
    let result = drive_shown(trial, engine.as_mut(), &mut rates, OnDivergence::Stop, &m.name);
    match result.failure {
        None | Some(Error::Diverged { .. }) => {}
        Some(e) => return Err(e),
    }
    let mut state = result.state;
    let history = &mut state.histories[0];
    while history.len() <= trial.epochs {
        let inf = Metrics { loss: f64::INFINITY, acc: f64::NAN };
        history.push(HistoryRow::new(history.len(), f64::NAN, inf, None, 0.0));
    }
    let mut run = method_run(m, &state, 0, started.elapsed().as_secs_f64());
    run.notes = rates.notes();
    run.explanation = Some(rates.explain(run.diverged()));
    Ok(run)
}

fn drive_shown<R: RateSource>(
    trial: &mut Trial,
    engine: &mut dyn Engine,
    rates: &mut R,
    on_divergence: OnDivergence,
    label: &str,
) -> crate::driver::RunResult {
    let spec = RunSpec { batching: vec![trial.batching], epochs: trial.epochs, on_divergence, keep_params: false };
    let bar = Progress::with_quiet(trial.epochs as u64, label, trial.quiet);
    let result = drive(engine, &spec, rates, &mut |state, _| {
        if state.completed > 0 {
            bar.inc(1);
        }
        Ok(())
    });
    bar.finish();
    result
}

fn method_run(m: &Method, state: &RunState, r: usize, seconds: f64) -> MethodRun {
    MethodRun {
        name: m.name.clone(),
        based_at: None,
        family: m.family.clone(),
        seed: 0,
        history: state.histories[r].clone(),
        grad_evals: state.grad_evals,
        loss_evals: state.loss_evals[r],
        seconds,
        notes: Vec::new(),
        explanation: None,
    }
}

/// One method over seeds, against the tuned constant.
#[derive(Debug, Clone, Serialize)]
pub struct MethodSummary {
    pub name: String,
    pub family: String,
    pub seeds: usize,
    pub diverged_seeds: usize,
    /// Final training losses over seeds (+∞ where diverged): median and quartiles.
    pub loss_median: f64,
    pub loss_q1: f64,
    pub loss_q3: f64,
    /// The same ÷ the tuned constant's median.
    pub ratio_median: f64,
    pub ratio_q1: f64,
    pub ratio_q3: f64,
    pub test_loss_median: f64,
    pub test_acc_median: f64,
    /// Gradient evaluations (median over seeds) ÷ those of one constant-rate run.
    pub grad_evals_ratio: f64,
    pub grad_evals: f64,
    pub loss_evals: f64,
    pub seconds: f64,
}

/// The tuned constant: the grid rate whose median final loss over seeds is lowest (a per-seed
/// best of many noisy runs is biased low). Returns its name and median loss.
pub fn tuned_constant(per_seed: &[Vec<MethodRun>]) -> Option<(String, f64)> {
    let first = per_seed.first()?;
    first
        .iter()
        .enumerate()
        .filter(|(_, r)| r.family == "constant")
        .map(|(i, r)| (r.label(), quantile_with_inf(per_seed.iter().map(|s| s[i].final_loss()).collect(), 0.5)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
}

/// Every method's summary over seeds (`per_seed[s][m]`: seed s, method m in roster order), as
/// ratios to the tuned constant's median.
pub fn summarize(per_seed: &[Vec<MethodRun>], steps_per_run: u64) -> Result<(Vec<MethodSummary>, String)> {
    let (tuned_name, tuned) =
        tuned_constant(per_seed).ok_or_else(|| Error::usage("the comparison needs a constant grid"))?;
    let methods = per_seed[0].len();
    let summaries = (0..methods)
        .map(|m| {
            let runs: Vec<&MethodRun> = per_seed.iter().map(|s| &s[m]).collect();
            let losses: Vec<f64> = runs.iter().map(|r| r.final_loss()).collect();
            let q = |p: f64| quantile_with_inf(losses.clone(), p);
            let med = |f: &dyn Fn(&MethodRun) -> f64| quantile(runs.iter().map(|r| f(r)).collect(), 0.5);
            let grad_evals = med(&|r| r.grad_evals as f64);
            MethodSummary {
                name: if runs.len() == 1 { runs[0].label() } else { runs[0].name.clone() },
                family: runs[0].family.clone(),
                seeds: runs.len(),
                diverged_seeds: runs.iter().filter(|r| r.diverged()).count(),
                loss_median: q(0.5),
                loss_q1: q(0.25),
                loss_q3: q(0.75),
                ratio_median: q(0.5) / tuned,
                ratio_q1: q(0.25) / tuned,
                ratio_q3: q(0.75) / tuned,
                test_loss_median: med(&|r| r.last().test_loss),
                test_acc_median: med(&|r| r.last().test_acc),
                grad_evals_ratio: grad_evals / steps_per_run as f64,
                grad_evals,
                loss_evals: med(&|r| r.loss_evals as f64),
                seconds: med(&|r| r.seconds),
            }
        })
        .collect();
    Ok((summaries, tuned_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Metrics;

    /// A run whose history ends at `loss` (NaN or ∞ for a diverged one).
    fn run(name: &str, family: &str, loss: f64, grad_evals: u64) -> MethodRun {
        let m = |l| Metrics { loss: l, acc: f64::NAN };
        MethodRun {
            name: name.into(),
            based_at: None,
            family: family.into(),
            seed: 0,
            history: vec![HistoryRow::new(0, f64::NAN, m(1.0), None, 0.0), HistoryRow::new(1, 0.1, m(loss), None, 0.0)],
            grad_evals,
            loss_evals: 0,
            seconds: 0.0,
            notes: Vec::new(),
            explanation: None,
        }
    }

    /// Four seeds of a two-rate grid and one method.
    fn seeds() -> Vec<Vec<MethodRun>> {
        let grid_a = [1.0, 2.0, 3.0, 10.0];
        let grid_b = [0.5, 4.0, 5.0, 6.0];
        let method = [1.0, 2.0, f64::NAN, 8.0];
        (0..4)
            .map(|s| {
                vec![
                    run("constant:a", "constant", grid_a[s], 100),
                    run("constant:b", "constant", grid_b[s], 100),
                    run("m", "procedure", method[s], 125),
                ]
            })
            .collect()
    }

    #[test]
    fn the_tuned_constant_has_the_lowest_median_over_seeds_not_the_lowest_loss() {
        // a: median 2.5; b: median 4.5 although b holds the single lowest loss (0.5).
        assert_eq!(tuned_constant(&seeds()), Some(("constant:a".to_string(), 2.5)));
    }

    #[test]
    fn ratios_and_quartiles_are_over_seeds_with_divergence_as_infinity() {
        let (summaries, tuned) = summarize(&seeds(), 100).unwrap();
        assert_eq!(tuned, "constant:a");
        let m = &summaries[2];
        // Losses 1, 2, ∞, 8 → sorted 1, 2, 8, ∞: q1 at 0.75 → 1.75, median at 1.5 → 5, q3 at 2.25 → ∞.
        assert_eq!((m.seeds, m.diverged_seeds), (4, 1));
        assert_eq!((m.loss_q1, m.loss_median, m.loss_q3), (1.75, 5.0, f64::INFINITY));
        assert_eq!((m.ratio_q1, m.ratio_median), (1.75 / 2.5, 5.0 / 2.5));
        assert!(m.ratio_q3.is_infinite());
        assert_eq!(m.grad_evals_ratio, 1.25);
        // The tuned constant's own median ratio is 1.
        assert_eq!(summaries[0].ratio_median, 1.0);
    }
}
