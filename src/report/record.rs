//! What every run directory records: `config.json` (one [`RunRecord`] for every command),
//! `history.csv`/`history.json`, and a single run's weights and batch order.

use serde::Serialize;

use crate::{
    Result,
    data::{Data, npy},
    driver::RunState,
    engine::EngineInfo,
    model::{InitKind, Model},
    report::{
        files::{OutDir, csv_string},
        table::{Table, fmt_num},
    },
    train::{Batching, HISTORY_HEADER, HistoryRow},
};

/// The data a run used, for config.json.
#[derive(Debug, Clone, Serialize)]
pub struct DataSummary {
    pub train: String,
    pub train_samples: usize,
    pub test: Option<String>,
    pub test_samples: Option<usize>,
    pub features: usize,
    pub classes: Option<usize>,
}

impl DataSummary {
    pub fn of(data: &Data) -> DataSummary {
        DataSummary {
            train: data.train.name.clone(),
            train_samples: data.train.n,
            test: data.test.as_ref().map(|t| t.name.clone()),
            test_samples: data.test.as_ref().map(|t| t.n),
            features: data.train.p,
            classes: data.train.classes,
        }
    }
}

/// Every resolved setting of a run, written as config.json by every command. The settings
/// only one command has (a schedule, a sweep's rates, a procedure, a comparison's roster, an
/// analysis' settings) go into `details`, flattened into the same object; what only training has
/// (epochs, steps, reshuffling) is absent from `analyze`'s, as is `init` when it analyses given
/// weights.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub command: String,
    pub version: &'static str,
    pub model: Model,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init: Option<InitKind>,
    pub data: DataSummary,
    /// The z-scores `--standardize` applied (absent without it).
    pub standardization: Option<crate::data::Standardization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    pub batch_size: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_epoch: Option<usize>,
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reshuffle: Option<bool>,
    /// `--kernels` as asked.
    pub kernels: crate::gpu::KernelPath,
    /// What it resolved to on this adapter for the run's rates (for `analyze`: the analysis'
    /// residual kernel), and why (absent on the CPU reference).
    pub kernels_resolved: Option<crate::engine::KernelChoice>,
    /// The engine the run computed on (absent for commands that open several).
    pub engine: Option<EngineInfo>,
    #[serde(flatten)]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl RunRecord {
    /// Adds a command-specific setting.
    pub fn with(mut self, key: &str, value: impl Serialize) -> RunRecord {
        self.details.insert(key.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        self
    }
}

/// history.csv and history.json of one run.
pub fn write_history(out: &OutDir, rows: &[HistoryRow]) -> Result<()> {
    let header: Vec<&str> = HISTORY_HEADER.split(',').collect();
    out.write_text("history.csv", &csv_string(&header, rows.iter().map(HistoryRow::cells)))?;
    out.write_json("history.json", &rows)
}

/// weights.npy, bias.npy (run 0's parameters, when the state holds them) and batches.npy.
pub fn write_run_outputs(out: &OutDir, model: &Model, batching: &Batching, state: &RunState) -> Result<()> {
    let (c, p) = (model.outputs, model.p);
    if state.params.len() >= model.dim() {
        let (w, b) = state.params[..model.dim()].split_at(c * p);
        let w_shape: Vec<usize> = if c == 1 { vec![p] } else { vec![c, p] };
        out.write("weights.npy", &npy::f32_bytes(&w_shape, w))?;
        out.write("bias.npy", &npy::f32_bytes(&[c], b))?;
    }
    let (steps, b) = (batching.steps(), batching.batch_size);
    if !batching.reshuffle {
        out.write("batches.npy", &npy::u32_bytes(&[steps, b], &batching.epoch(1)))?;
    } else if state.completed > 0 {
        let all: Vec<u32> = (1..=state.completed).flat_map(|e| batching.epoch(e)).collect();
        out.write("batches.npy", &npy::u32_bytes(&[state.completed, steps, b], &all))?;
    }
    Ok(())
}

/// The history as a terminal table.
pub fn print_history(rows: &[HistoryRow], accuracy: bool) {
    let mut t = Table::new(vec!["epoch", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"]);
    let acc = |v: f64| if accuracy { fmt_num(v, 4) } else { "-".into() };
    for r in rows {
        t.row(vec![
            r.epoch.to_string(),
            fmt_num(r.lr, 4),
            fmt_num(r.train_loss, 5),
            acc(r.train_acc),
            fmt_num(r.test_loss, 5),
            acc(r.test_acc),
            format!("{:.3}", r.seconds),
        ]);
    }
    print!("{t}");
}
