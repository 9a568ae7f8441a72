//! `steplens train --sweep-lr A:B:R` / `--sweep-seed N`: R independent runs trained together,
//! one workgroup each in the same dispatch, sharing the resident data.

use serde::Serialize;

use super::train::{DataSummary, TrainArgs, parse_sweep};
use crate::{
    Error, Result,
    engine::StepRule,
    report::{
        files::{OutDir, csv_num},
        plot::{self, Chart, Series},
        progress::Progress,
        table::{Table, fmt_num},
    },
    schedule::Schedule,
    train::{Batching, HistoryRow, Trainer, diverged},
};

/// One run of a sweep.
#[derive(Debug, Clone, Serialize)]
pub struct SweepRun {
    pub run: usize,
    /// The run's rate (its schedule's first epoch rate for seed sweeps).
    pub lr: f64,
    pub seed: u64,
    pub history: Vec<HistoryRow>,
}

impl SweepRun {
    pub fn last(&self) -> &HistoryRow {
        self.history.last().expect("row 0 always exists")
    }
}

pub const SWEEP_HEADER: &[&str] = &["run", "lr", "seed", "final_train_loss", "final_test_loss", "final_test_acc"];

pub fn run(args: &TrainArgs, quiet: bool) -> Result<()> {
    let (schedules, seeds): (Vec<Schedule>, Vec<u64>) = match (&args.sweep_lr, args.sweep_seed) {
        (Some(spec), _) => {
            let lrs = parse_sweep(spec)?;
            (lrs.iter().map(|&lr| Schedule::Constant { lr }).collect(), vec![args.seed; lrs.len()])
        }
        (None, Some(n)) if n >= 1 => {
            (vec![args.resolved_schedule()?; n], (0..n as u64).map(|i| args.seed + i).collect())
        }
        _ => return Err(Error::usage("--sweep-seed needs at least 1 run")),
    };
    args.check()?;
    let data = args.data.load()?;
    let model = args.model.model(&data)?;
    let batchings: Vec<Batching> = seeds
        .iter()
        .map(|&s| Batching::new(data.train.n, args.batch_size, s, args.reshuffle))
        .collect::<Result<_>>()?;
    // One batch order for an lr sweep; one per run for a seed sweep.
    let batchings = if args.sweep_seed.is_some() { batchings } else { batchings[..1].to_vec() };
    let steps = batchings[0].steps();
    for s in &schedules {
        s.check(args.epochs, steps)?;
    }
    let out = args.output.open("sweep")?;
    let runs = schedules.len();
    let mut engine = args.device.engine(model, &data, runs, quiet)?;
    let theta: Vec<f32> = seeds.iter().flat_map(|&s| model.init(args.model.init, s)).collect();
    engine.set_params(&theta)?;
    out.write_json(
        "config.json",
        &serde_json::json!({
            "command": "train --sweep",
            "version": env!("CARGO_PKG_VERSION"),
            "model": model,
            "data": DataSummary::of(&data),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "runs": runs,
            "schedules": schedules.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "seeds": seeds,
            "engine": engine.info(),
        }),
    )?;
    let mut trainer = Trainer::new(engine.as_mut(), batchings)?;
    let mut sweep: Vec<SweepRun> = trainer
        .initial()?
        .into_iter()
        .enumerate()
        .map(|(r, row)| SweepRun {
            run: r,
            lr: schedules[r].epoch_lr(1, args.epochs),
            seed: seeds[r],
            history: vec![row],
        })
        .collect();
    let bar = Progress::with_quiet(args.epochs as u64, "sweep", quiet);
    for epoch in 1..=args.epochs {
        let lrs: Vec<f32> = schedules.iter().flat_map(|s| s.step_lrs(epoch, args.epochs, steps)).collect();
        for (r, mut e) in trainer.epoch(epoch, &lrs, StepRule::Table)?.into_iter().enumerate() {
            e.row.lr = schedules[r].epoch_lr(epoch, args.epochs);
            sweep[r].history.push(e.row);
        }
        write_sweep(&out, &sweep)?;
        bar.inc(1);
        if super::interrupted() {
            bar.finish();
            return Err(Error::Interrupted { completed: epoch });
        }
    }
    bar.finish();
    plot_sweep(&out, &sweep, args.sweep_lr.is_some())?;
    print_sweep(&sweep);
    println!("wrote {}", out.path().display());
    Ok(())
}

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
    header.extend(crate::train::HISTORY_HEADER.split(','));
    let rows = sweep.iter().flat_map(|s| {
        s.history.iter().map(move |h| {
            let mut cells = vec![s.run.to_string()];
            cells.extend(h.cells());
            cells
        })
    });
    out.write_csv("sweep-history.csv", &header, rows)
}

fn plot_sweep(out: &OutDir, sweep: &[SweepRun], by_lr: bool) -> Result<()> {
    let x = |s: &SweepRun| if by_lr { s.lr } else { s.seed as f64 };
    let finite = |v: f64| if diverged_value(v) { f64::NAN } else { v };
    let train: Vec<(f64, f64)> = sweep.iter().map(|s| (x(s), finite(s.last().train_loss))).collect();
    let test: Vec<(f64, f64)> = sweep.iter().map(|s| (x(s), finite(s.last().test_loss))).collect();
    let mut chart = Chart::new(
        format!("Final loss after {} epochs", sweep[0].history.len() - 1),
        if by_lr { "learning rate" } else { "seed" },
        "loss",
    )
    .log_y()
    .with_series(Series::line_points("train", train))
    .with_series(Series::line_points("test", test));
    if by_lr {
        chart = chart.log_x();
    }
    plot::save(&chart, Some(&out.file("sweep.png")), Some(&out.file("sweep.svg")))
}

fn diverged_value(v: f64) -> bool {
    !v.is_finite()
}

fn print_sweep(sweep: &[SweepRun]) {
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
