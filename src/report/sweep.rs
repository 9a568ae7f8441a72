//! How a sweep is shown: sweep.csv (one row per run), sweep-history.csv (every epoch of every
//! run), the final-loss picture and the terminal table — written alike by `train --sweep-*` and
//! by `merge` from the shards of a sharded sweep.

use serde::{Deserialize, Serialize};

use crate::{
    Result,
    driver::RunState,
    report::{
        files::{OutDir, csv_num},
        plot::{self, Chart, Series},
        table::{Table, fmt_num},
    },
    schedule::Schedule,
    train::{HISTORY_HEADER, HistoryRow, diverged},
};

/// One run of a sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepRun {
    /// The run's index in the whole sweep.
    pub run: usize,
    /// The run's rate (its schedule's first epoch rate for seed sweeps).
    pub lr: f64,
    pub seed: u64,
    pub history: Vec<HistoryRow>,
}

impl SweepRun {
    fn last(&self) -> &HistoryRow {
        self.history.last().expect("row 0 always exists")
    }
}

/// The runs of a driven sweep; `first` is the sweep index of the state's run 0.
pub fn sweep_runs(
    state: &RunState,
    first: usize,
    schedules: &[Schedule],
    seeds: &[u64],
    epochs: usize,
) -> Vec<SweepRun> {
    state
        .histories
        .iter()
        .enumerate()
        .map(|(r, h)| SweepRun {
            run: first + r,
            lr: schedules[r].epoch_lr(1, epochs),
            seed: seeds[r],
            history: h.clone(),
        })
        .collect()
}

pub const SWEEP_HEADER: &[&str] = &["run", "lr", "seed", "final_train_loss", "final_test_loss", "final_test_acc"];

/// sweep.csv (one row per run) and sweep-history.csv (every epoch of every run).
pub fn write_sweep(out: &OutDir, sweep: &[SweepRun]) -> Result<()> {
    let rows = sweep.iter().map(|s| {
        let l = s.last();
        vec![
            s.run.to_string(),
            csv_num(s.lr),
            s.seed.to_string(),
            csv_num(l.train_loss),
            csv_num(l.test_loss),
            csv_num(l.test_acc),
        ]
    });
    out.write_csv("sweep.csv", SWEEP_HEADER, rows)?;
    let mut header = vec!["run"];
    header.extend(HISTORY_HEADER.split(','));
    let rows = sweep.iter().flat_map(|s| {
        s.history.iter().map(move |h| {
            let mut cells = vec![s.run.to_string()];
            cells.extend(h.cells());
            cells
        })
    });
    out.write_csv("sweep-history.csv", &header, rows)
}

/// sweep.png/.svg: the final losses against the rate (`by_lr`) or the seed.
pub fn plot_sweep(out: &OutDir, sweep: &[SweepRun], by_lr: bool) -> Result<()> {
    let x = |s: &SweepRun| if by_lr { s.lr } else { s.seed as f64 };
    let finite = |v: f64| if v.is_finite() { v } else { f64::NAN };
    let train: Vec<(f64, f64)> = sweep.iter().map(|s| (x(s), finite(s.last().train_loss))).collect();
    let test: Vec<(f64, f64)> = sweep.iter().map(|s| (x(s), finite(s.last().test_loss))).collect();
    let mut chart = Chart::new(
        format!("Final loss after {} epochs", sweep[0].history.len() - 1),
        if by_lr { "learning rate" } else { "seed" },
        "loss",
    )
    .log_y();
    // Rates lie on a line; seeds are separate draws, so they are not joined.
    let series = if by_lr { Series::line_points } else { Series::points };
    chart = chart.with_series(series("train", train)).with_series(series("test", test));
    if by_lr {
        chart = chart.log_x();
    }
    plot::save(&chart, Some(&out.file("sweep.png")), Some(&out.file("sweep.svg")))
}

/// The terminal table of a sweep and its best run.
pub fn print_sweep(sweep: &[SweepRun]) {
    let mut t = Table::new(["run", "lr", "seed", "train loss", "test loss", "test acc"]);
    for s in sweep {
        let l = s.last();
        let status = if diverged(l) { " (diverged)" } else { "" };
        t.row(vec![
            s.run.to_string(),
            fmt_num(s.lr, 4),
            s.seed.to_string(),
            format!("{}{status}", fmt_num(l.train_loss, 5)),
            fmt_num(l.test_loss, 5),
            fmt_num(l.test_acc, 4),
        ]);
    }
    print!("{t}");
    if let Some(best) =
        sweep.iter().filter(|s| !diverged(s.last())).min_by(|a, b| a.last().train_loss.total_cmp(&b.last().train_loss))
    {
        println!(
            "best: run {} (lr {}, seed {}) with final train loss {}",
            best.run,
            fmt_num(best.lr, 4),
            best.seed,
            fmt_num(best.last().train_loss, 5)
        );
    }
}

/// Every output of a finished sweep: config.json (`record`, the settings with the engine that
/// ran), the CSVs and the picture.
pub fn write_finished(out: &OutDir, record: &serde_json::Value, sweep: &[SweepRun], by_lr: bool) -> Result<()> {
    out.write_json("config.json", record)?;
    write_sweep(out, sweep)?;
    plot_sweep(out, sweep, by_lr)
}

/// config.json of a sweep: its settings with the engine that ran it and the kernels it chose
/// (null when the blocks of a sharded sweep ran on different adapters).
pub fn sweep_record(
    settings: &serde_json::Value,
    engine: Option<&crate::engine::EngineInfo>,
    kernels: Option<&crate::engine::KernelChoice>,
) -> serde_json::Value {
    let mut record = settings.clone();
    if let Some(map) = record.as_object_mut() {
        map.insert("engine".into(), serde_json::json!(engine));
        map.insert("kernels_resolved".into(), serde_json::json!(kernels));
    }
    record
}

/// Whether the sweep's runs vary the rate (else the seed): how the picture's x axis is chosen.
fn by_lr(settings: &serde_json::Value) -> bool {
    settings.get("sweep").and_then(|v| v.as_str()) == Some("lr")
}

/// What a sharded sweep's whole run writes, from its finished jobs (blocks of runs, in order).
pub fn write_merged(out: &OutDir, manifest: &crate::shard::Manifest, jobs: Vec<crate::shard::JobResult>) -> Result<()> {
    let engine = crate::shard::common(&jobs, |j| j.engine.clone());
    let kernels = crate::shard::common(&jobs, |j| j.kernels_resolved.clone());
    let record = sweep_record(&manifest.settings, engine.as_ref(), kernels.as_ref());
    let runs: Vec<SweepRun> = jobs.into_iter().flat_map(|j| j.sweep).collect();
    write_finished(out, &record, &runs, by_lr(&manifest.settings))?;
    print_sweep(&runs);
    Ok(())
}
