//! Training runs, written once over [`Engine`]: the notebook's batching (shuffle once with the
//! run's seed, ⌊n/b⌋ batches, the remainder dropped; `--reshuffle` permutes every epoch), SGD
//! with a schedule per run, whole-set metrics at every epoch's end, one submit per epoch.

use std::time::Instant;

use serde::Serialize;

use crate::{
    Error, Result,
    engine::{Engine, EpochPlan, Evaluation, Metrics, StepRule, StepStat},
    prng,
};

/// Which samples form each step's batch.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Batching {
    /// Samples in the training set.
    pub n: usize,
    pub batch_size: usize,
    pub seed: u64,
    /// A new permutation every epoch (else the first one throughout, as the notebook).
    pub reshuffle: bool,
}

impl Batching {
    pub fn new(n: usize, batch_size: usize, seed: u64, reshuffle: bool) -> Result<Batching> {
        if batch_size == 0 {
            return Err(Error::usage("the batch size must be at least 1"));
        }
        if batch_size > n {
            return Err(Error::usage(format!(
                "the batch size {batch_size} is larger than the training set ({n} samples)"
            )));
        }
        Ok(Batching { n, batch_size, seed, reshuffle })
    }

    /// s = ⌊n/b⌋ steps per epoch.
    pub fn steps(&self) -> usize {
        self.n / self.batch_size
    }

    /// The training-set indices of every batch of epoch `epoch` (1-based), steps × b.
    pub fn epoch(&self, epoch: usize) -> Vec<u32> {
        let which = if self.reshuffle { epoch as u32 - 1 } else { 0 };
        let mut perm = prng::permutation(self.n, self.seed, which);
        perm.truncate(self.steps() * self.batch_size);
        perm
    }
}

/// One row of `history.csv`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HistoryRow {
    pub epoch: usize,
    /// The epoch's learning rate (its first step's; NaN for row 0).
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    /// Wall-clock seconds of the epoch (training and evaluation).
    pub seconds: f64,
}

pub const HISTORY_HEADER: &str = "epoch,lr,train_loss,train_acc,test_loss,test_acc,seconds";

impl HistoryRow {
    pub fn new(epoch: usize, lr: f64, train: Metrics, test: Option<Metrics>, seconds: f64) -> HistoryRow {
        let test = test.unwrap_or(Metrics { loss: f64::NAN, acc: f64::NAN });
        HistoryRow {
            epoch,
            lr,
            train_loss: train.loss,
            train_acc: train.acc,
            test_loss: test.loss,
            test_acc: test.acc,
            seconds,
        }
    }

    /// The row as CSV cells (empty where a value does not exist).
    pub fn cells(&self) -> Vec<String> {
        let f = |v: f64| if v.is_nan() { String::new() } else { format!("{v}") };
        vec![
            self.epoch.to_string(),
            f(self.lr),
            f(self.train_loss),
            f(self.train_acc),
            f(self.test_loss),
            f(self.test_acc),
            format!("{:.6}", self.seconds),
        ]
    }
}

/// history.csv text.
pub fn history_csv(rows: &[HistoryRow]) -> String {
    let mut s = format!("{HISTORY_HEADER}\n");
    for r in rows {
        s.push_str(&r.cells().join(","));
        s.push('\n');
    }
    s
}

/// What the host learns of one epoch of one run.
#[derive(Debug, Clone)]
pub struct RunEpoch {
    pub row: HistoryRow,
    pub steps: Vec<StepStat>,
    /// The run's parameters at the epoch's end, when the trainer reads them.
    pub params: Option<Vec<f32>>,
}

/// R runs of one model trained side by side on one engine.
pub struct Trainer<'e> {
    pub engine: &'e mut dyn Engine,
    pub batching: Vec<Batching>,
    /// Read every run's parameters back with each epoch (single runs keep the last good ones).
    pub read_params: bool,
}

impl<'e> Trainer<'e> {
    /// Runs share `batching` (or one per run, for seed sweeps).
    pub fn new(engine: &'e mut dyn Engine, batching: Vec<Batching>) -> Result<Trainer<'e>> {
        let runs = engine.runs();
        if batching.is_empty() || (batching.len() != 1 && batching.len() != runs) {
            return Err(Error::usage("give one batching for all runs or one per run"));
        }
        Ok(Trainer { engine, batching, read_params: false })
    }

    pub fn steps(&self) -> usize {
        self.batching[0].steps()
    }

    /// Row 0 of every run: the initial model.
    pub fn initial(&mut self) -> Result<Vec<HistoryRow>> {
        let t = Instant::now();
        let eval = self.engine.evaluate()?;
        let s = t.elapsed().as_secs_f64();
        Ok(rows(0, &eval, &vec![f64::NAN; self.engine.runs()], s))
    }

    /// Train epoch `epoch` (1-based) with `lrs` (runs × steps) under `rule`, then evaluate.
    pub fn epoch(&mut self, epoch: usize, lrs: &[f32], rule: StepRule) -> Result<Vec<RunEpoch>> {
        self.steps_of(epoch, 0..self.steps(), lrs, rule, true)
    }

    /// Train steps `range` of epoch `epoch` with `lrs` (runs × range.len()); evaluate at the end
    /// when asked (the rows' metrics are NaN otherwise).
    pub fn steps_of(
        &mut self,
        epoch: usize,
        range: std::ops::Range<usize>,
        lrs: &[f32],
        rule: StepRule,
        evaluate: bool,
    ) -> Result<Vec<RunEpoch>> {
        let t = Instant::now();
        let b = self.batching[0].batch_size;
        let batches: Vec<u32> =
            self.batching.iter().flat_map(|bt| bt.epoch(epoch)[range.start * b..range.end * b].to_vec()).collect();
        let steps = range.len();
        let plan =
            EpochPlan { batches: &batches, batch_size: b, steps, lrs, rule, read_params: self.read_params, evaluate };
        let out = self.engine.run_epoch(&plan)?;
        let seconds = t.elapsed().as_secs_f64();
        let first_lrs: Vec<f64> = out.steps.chunks(steps).map(|s| s[0].lr as f64).collect();
        let dim = self.engine.model().dim();
        let runs = self.engine.runs();
        let eval = if evaluate {
            out.eval
        } else {
            let nan = Metrics { loss: f64::NAN, acc: f64::NAN };
            Evaluation { train: vec![nan; runs], test: None }
        };
        Ok(rows(epoch, &eval, &first_lrs, seconds)
            .into_iter()
            .zip(out.steps.chunks(steps))
            .enumerate()
            .map(|(r, (row, st))| RunEpoch {
                row,
                steps: st.to_vec(),
                params: out.params.as_ref().map(|p| p[r * dim..(r + 1) * dim].to_vec()),
            })
            .collect())
    }
}

fn rows(epoch: usize, eval: &Evaluation, lrs: &[f64], seconds: f64) -> Vec<HistoryRow> {
    eval.train
        .iter()
        .enumerate()
        .map(|(r, &train)| HistoryRow::new(epoch, lrs[r], train, eval.test.as_ref().map(|t| t[r]), seconds))
        .collect()
}

/// Whether a run's row shows divergence (a non-finite loss).
pub fn diverged(row: &HistoryRow) -> bool {
    !row.train_loss.is_finite() || (!row.test_loss.is_nan() && !row.test_loss.is_finite())
}
