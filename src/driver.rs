//! The run driver: the one epoch loop of steplens. Every command that trains — `train`, its
//! sweeps, `schedule`, `compare` and `suite` — hands the driver an engine holding R runs, the
//! batching, and a [`RateSource`] that says where each step's rate comes from (a schedule
//! table, a step rule computed on the device, or a procedure that re-estimates from the local
//! geometry). The driver owns batching, the segments an epoch is cut into, whole-set evaluation,
//! divergence, interrupts, partial results and the meaning of every history column; commands
//! see the run through an observer after each epoch (to write files, move a progress bar).

use std::time::Instant;

use crate::{
    Error, Result,
    engine::{Engine, EpochPlan, Evaluation, Metrics, StepRule, StepStat},
    train::{Batching, HistoryRow, diverged},
};

/// The steps of one engine call: `count` steps from the epoch's step `start`.
#[derive(Debug, Clone)]
pub struct Segment {
    pub count: usize,
    /// runs × count rates (see [`StepRule`]; the adaptive rules read the first as their start).
    pub lrs: Vec<f32>,
    pub rule: StepRule,
}

/// What a rate source may look at when it plans a segment.
pub struct Planning<'a> {
    /// The engine, at the parameters the segment starts from (a procedure may analyse them).
    pub engine: &'a mut dyn Engine,
    pub batching: &'a Batching,
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// The segment's first step within the epoch (0-based) and the steps left in the epoch.
    pub start: usize,
    pub left: usize,
    /// Steps per epoch.
    pub steps: usize,
    /// Steps trained before this segment, over all epochs.
    pub done: usize,
    /// This epoch's batches (steps × b training-set indices) of run 0.
    pub table: &'a [u32],
}

/// Where a run's rates come from. One source covers every run on the engine.
pub trait RateSource {
    /// The next segment of the epoch (its `count` must be between 1 and `cx.left`).
    fn plan(&mut self, cx: &mut Planning) -> Result<Segment>;
    /// The per-step statistics of the segment just trained (runs × count).
    fn observe(&mut self, _epoch: usize, _start: usize, _steps: &[StepStat]) -> Result<()> {
        Ok(())
    }
    /// The `lr` column of run `run` at epoch `epoch` of `epochs`, given the epoch's step statistics.
    fn epoch_lr(&self, run: usize, epoch: usize, epochs: usize, steps: &[StepStat]) -> f64;
    /// Gradient evaluations beyond the one per training step (perturbed gradients,
    /// Hessian–vector products), per run.
    fn extra_grad_evals(&self) -> u64 {
        0
    }
}

/// What to do when a run's loss becomes NaN or infinite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnDivergence {
    /// Stop with [`Error::Diverged`], keeping the good epochs (single runs).
    Stop,
    /// Keep training the other runs; the diverged run's rows show it (sweeps, grids).
    Continue,
}

/// How a run is driven.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// One batching for every run, or one per run (seed sweeps).
    pub batching: Vec<Batching>,
    pub epochs: usize,
    pub on_divergence: OnDivergence,
    /// Read the parameters back with each epoch's results, so a failed run keeps its last good ones.
    pub keep_params: bool,
}

/// A run's results so far, complete or not.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// Per run: row 0 (the initial model) and one row per completed epoch.
    pub histories: Vec<Vec<HistoryRow>>,
    /// Per run: the step statistics of every completed epoch, in order.
    pub steps: Vec<Vec<StepStat>>,
    /// runs × dim parameters after the last completed epoch (when `keep_params`).
    pub params: Vec<f32>,
    /// Completed epochs.
    pub completed: usize,
    /// Per run: batch gradients evaluated (training steps plus the rate source's extras),
    /// steps of an epoch that did not complete included.
    pub grad_evals: u64,
    /// Steps trained per run, over all epochs (a failed epoch's completed segments included).
    pub steps_trained: u64,
    /// Per run: extra batch-loss evaluations (Armijo's backtracking).
    pub loss_evals: Vec<u64>,
}

impl RunState {
    pub fn runs(&self) -> usize {
        self.histories.len()
    }
}

/// A finished (or stopped) run: the state and, if it stopped early, why.
pub struct RunResult {
    pub state: RunState,
    pub failure: Option<Error>,
}

impl RunResult {
    /// The state, or the failure when there is one.
    pub fn into_result(self) -> Result<RunState> {
        match self.failure {
            None => Ok(self.state),
            Some(e) => Err(e),
        }
    }
}

/// Train `spec.epochs` epochs from the engine's current parameters with rates from `rates`;
/// `observe` sees the state after row 0 and after every epoch.
pub fn drive<R: RateSource + ?Sized>(
    engine: &mut dyn Engine,
    spec: &RunSpec,
    rates: &mut R,
    observe: &mut dyn FnMut(&RunState, &R) -> Result<()>,
) -> RunResult {
    let runs = engine.runs();
    let mut state = RunState {
        histories: vec![Vec::new(); runs],
        steps: vec![Vec::new(); runs],
        loss_evals: vec![0; runs],
        ..RunState::default()
    };
    let failure = drive_epochs(engine, spec, rates, observe, &mut state).err();
    state.grad_evals = state.steps_trained + rates.extra_grad_evals();
    RunResult { state, failure }
}

fn drive_epochs<R: RateSource + ?Sized>(
    engine: &mut dyn Engine,
    spec: &RunSpec,
    rates: &mut R,
    observe: &mut dyn FnMut(&RunState, &R) -> Result<()>,
    state: &mut RunState,
) -> Result<()> {
    let runs = engine.runs();
    if spec.batching.is_empty() || (spec.batching.len() != 1 && spec.batching.len() != runs) {
        return Err(Error::usage("give one batching for all runs or one per run"));
    }
    if spec.keep_params {
        state.params = engine.params()?;
    }
    let started = Instant::now();
    let eval = engine.evaluate()?;
    for (r, row) in rows(0, &eval, &vec![f64::NAN; runs], started.elapsed().as_secs_f64()).into_iter().enumerate() {
        state.histories[r].push(row);
    }
    observe(state, rates)?;
    for epoch in 1..=spec.epochs {
        let (rows, steps, params) = train_epoch(engine, spec, rates, state, epoch)?;
        for r in 0..runs {
            let mut row = rows[r].clone();
            row.lr = rates.epoch_lr(r, epoch, spec.epochs, &steps[r]);
            if spec.on_divergence == OnDivergence::Stop && diverged(&row) {
                return Err(Error::Diverged {
                    epoch,
                    lr: row.lr,
                    what: format!("the training loss became {}", row.train_loss),
                });
            }
            state.loss_evals[r] += steps[r].iter().map(|s| s.trials as u64).sum::<u64>();
            state.histories[r].push(row);
            state.steps[r].extend_from_slice(&steps[r]);
        }
        if let Some(p) = params {
            state.params = p;
        }
        state.completed = epoch;
        state.grad_evals = state.steps_trained + rates.extra_grad_evals();
        observe(state, rates)?;
        if crate::interrupt::interrupted() && epoch < spec.epochs {
            return Err(Error::Interrupted { completed: epoch });
        }
    }
    Ok(())
}

type EpochRows = (Vec<HistoryRow>, Vec<Vec<StepStat>>, Option<Vec<f32>>);

/// One epoch as the rate source's segments; evaluates after the last one.
fn train_epoch<R: RateSource + ?Sized>(
    engine: &mut dyn Engine,
    spec: &RunSpec,
    rates: &mut R,
    state: &mut RunState,
    epoch: usize,
) -> Result<EpochRows> {
    let started = Instant::now();
    let runs = engine.runs();
    let batching = &spec.batching[0];
    let (steps, b) = (batching.steps(), batching.batch_size);
    let tables: Vec<Vec<u32>> = spec.batching.iter().map(|bt| bt.epoch(epoch)).collect();
    let mut per_run: Vec<Vec<StepStat>> = vec![Vec::with_capacity(steps); runs];
    let mut start = 0;
    while start < steps {
        let mut cx = Planning {
            engine: &mut *engine,
            batching,
            epoch,
            epochs: spec.epochs,
            start,
            left: steps - start,
            steps,
            done: state.steps_trained as usize,
            table: &tables[0],
        };
        let seg = rates.plan(&mut cx)?;
        if seg.count == 0 || seg.count > steps - start || seg.lrs.len() != runs * seg.count {
            return Err(Error::Runtime(format!(
                "a rate source planned {} steps with {} rates at step {start} of {steps}",
                seg.count,
                seg.lrs.len()
            )));
        }
        let last = start + seg.count == steps;
        let batches: Vec<u32> = tables.iter().flat_map(|t| t[start * b..(start + seg.count) * b].to_vec()).collect();
        let plan = EpochPlan {
            batches: &batches,
            batch_size: b,
            steps: seg.count,
            lrs: &seg.lrs,
            rule: seg.rule,
            read_params: last && spec.keep_params,
            evaluate: last,
        };
        let out = engine.run_epoch(&plan)?;
        state.steps_trained += seg.count as u64;
        if spec.on_divergence == OnDivergence::Stop
            && let Some(s) = out.steps.iter().find(|s| !s.loss.is_finite())
        {
            return Err(Error::Diverged {
                epoch,
                lr: s.lr as f64,
                what: "the loss of a batch became NaN or infinite".into(),
            });
        }
        rates.observe(epoch, start, &out.steps)?;
        for (r, st) in out.steps.chunks(seg.count).enumerate() {
            per_run[r].extend_from_slice(st);
        }
        start += seg.count;
        if last {
            let seconds = started.elapsed().as_secs_f64();
            let first: Vec<f64> = per_run.iter().map(|s| s[0].lr as f64).collect();
            return Ok((rows(epoch, &out.eval, &first, seconds), per_run, out.params));
        }
    }
    Err(Error::Runtime("an epoch has no steps".into()))
}

fn rows(epoch: usize, eval: &Evaluation, lrs: &[f64], seconds: f64) -> Vec<HistoryRow> {
    let nan = Metrics { loss: f64::NAN, acc: f64::NAN };
    (0..lrs.len())
        .map(|r| {
            let train = eval.train.get(r).copied().unwrap_or(nan);
            HistoryRow::new(epoch, lrs[r], train, eval.test.as_ref().map(|t| t[r]), seconds)
        })
        .collect()
}
