//! What a training run is made of: the notebook's batching (shuffle once with the run's seed,
//! ⌊n/b⌋ batches, the remainder dropped; `--reshuffle` permutes every epoch) and the rows of
//! its history. The epoch loop itself is the [driver](crate::driver).

use serde::{Deserialize, Serialize};

use crate::{Error, Result, engine::Metrics, prng, report::files::csv_num};

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
                "the batch size {batch_size} is larger than the training set ({})",
                crate::report::table::count(n, "sample", "samples")
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
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HistoryRow {
    pub epoch: usize,
    /// The epoch's learning rate (NaN for row 0): a schedule's rate of the epoch, a procedure's
    /// first step's, the median step rate of SPS and Armijo.
    #[serde(with = "crate::report::json_f64")]
    pub lr: f64,
    #[serde(with = "crate::report::json_f64")]
    pub train_loss: f64,
    #[serde(with = "crate::report::json_f64")]
    pub train_acc: f64,
    #[serde(with = "crate::report::json_f64")]
    pub test_loss: f64,
    #[serde(with = "crate::report::json_f64")]
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
        vec![
            self.epoch.to_string(),
            csv_num(self.lr),
            csv_num(self.train_loss),
            csv_num(self.train_acc),
            csv_num(self.test_loss),
            csv_num(self.test_acc),
            format!("{:.6}", self.seconds),
        ]
    }
}

/// Whether a run's row shows divergence (a non-finite loss).
pub fn diverged(row: &HistoryRow) -> bool {
    !row.train_loss.is_finite() || (!row.test_loss.is_nan() && !row.test_loss.is_finite())
}
