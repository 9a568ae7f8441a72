//! `steplens train`: one run of SGD, or a sweep of runs (`--sweep-lr`, `--sweep-seed`) trained
//! side by side on one engine, written to a run directory.

use clap::Args;
use serde::Serialize;

use super::{
    OutArgs, ProblemArgs,
    args::{RunArgs, Setup},
};
use crate::{
    Error, Result,
    driver::{OnDivergence, RunSpec, RunState, drive},
    engine::StepRule,
    rates::{Scheduled, parse_grid},
    report::{
        files::{OutDir, csv_num},
        plot::{self, Chart, Series},
        progress::Progress,
        record::{print_history, write_history, write_run_outputs},
        table::{Table, fmt_num},
    },
    schedule::Schedule,
    train::{Batching, HISTORY_HEADER, HistoryRow, diverged},
};

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Constant learning rate (the notebook's 0.005 by default).
    #[arg(long, value_name = "H", conflicts_with = "schedule", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// `constant:H`, `step:H,gamma=G,every=E`, `cosine:H[,min=M]`, `inv-t:H[,k=K]` or a CSV file.
    #[arg(long, value_name = "SPEC|FILE")]
    pub schedule: Option<String>,
    #[command(flatten)]
    pub output: OutArgs,
    /// Train R runs at once with R log-spaced constant rates from A to B (e.g. 1e-3:10:64).
    #[arg(long, value_name = "A:B:R", conflicts_with_all = ["lr", "schedule", "sweep_seed"])]
    pub sweep_lr: Option<String>,
    /// Train N runs at once with seeds seed .. seed+N−1 (initialisation and batch order).
    #[arg(long, value_name = "N")]
    pub sweep_seed: Option<usize>,
}

impl TrainArgs {
    fn schedule(&self) -> Result<Schedule> {
        match (&self.schedule, self.lr) {
            (Some(s), _) => Schedule::parse(s),
            (None, Some(lr)) => Schedule::constant(lr),
            (None, None) => Schedule::constant(0.005),
        }
    }

    /// The runs: (schedule, seed) of each.
    fn runs(&self) -> Result<Vec<(Schedule, u64)>> {
        let seed = self.run.seed;
        if let Some(spec) = &self.sweep_lr {
            return Ok(parse_grid("--sweep-lr", spec)?
                .into_iter()
                .map(|lr| (Schedule::Constant { lr }, seed))
                .collect());
        }
        let schedule = self.schedule()?;
        match self.sweep_seed {
            Some(n) if n == 0 || n > crate::rates::MAX_RUNS => {
                Err(Error::usage(format!("--sweep-seed {n}: use 1 to {} runs", crate::rates::MAX_RUNS)))
            }
            Some(n) => Ok((0..n as u64).map(|i| (schedule.clone(), seed + i)).collect()),
            None => Ok(vec![(schedule, seed)]),
        }
    }

    fn is_sweep(&self) -> bool {
        self.sweep_lr.is_some() || self.sweep_seed.is_some()
    }
}

pub fn run(args: &TrainArgs, quiet: bool) -> Result<()> {
    args.problem.device.check()?;
    let runs = args.runs()?;
    // The run directory first: an unwritable --out is a usage error before any work.
    let name = if args.is_sweep() { "sweep".into() } else { format!("{:?}", args.problem.model.model).to_lowercase() };
    let out = args.output.open(&name)?;
    let setup = args.run.setup(&args.problem)?;
    let Setup { data, model, batching, .. } = &setup;
    for (s, _) in &runs {
        s.check(args.run.epochs, batching.steps())?;
    }
    // One batch order for a single run or an lr sweep; one per seed for a seed sweep.
    let batchings: Vec<Batching> = if args.sweep_seed.is_some() {
        runs.iter().map(|&(_, seed)| Batching { seed, ..*batching }).collect()
    } else {
        vec![*batching]
    };
    let mut engine = args.problem.device.engine(*model, data, runs.len(), quiet)?;
    let theta: Vec<f32> = runs.iter().flat_map(|&(_, seed)| model.init(args.problem.model.init, seed)).collect();
    engine.set_params(&theta)?;
    let schedules: Vec<Schedule> = runs.iter().map(|(s, _)| s.clone()).collect();
    let seeds: Vec<u64> = runs.iter().map(|&(_, s)| s).collect();
    let mut record = args.run.record("train", &setup, &args.problem, Some(engine.info()));
    record.kernels_resolved = engine.kernel_choice(StepRule::Table, batching.steps(), batching.batch_size);
    record = if args.is_sweep() {
        record.with("schedules", schedules.iter().map(|s| s.to_string()).collect::<Vec<_>>()).with("seeds", &seeds)
    } else {
        record.with("schedule", schedules[0].to_string())
    };
    out.write_json("config.json", &record)?;

    let spec = RunSpec {
        batching: batchings,
        epochs: args.run.epochs,
        on_divergence: if args.is_sweep() { OnDivergence::Continue } else { OnDivergence::Stop },
        keep_params: !args.is_sweep(),
    };
    let bar = Progress::with_quiet(spec.epochs as u64, if args.is_sweep() { "sweep" } else { "train" }, quiet);
    let sweep = args.is_sweep();
    let result = drive(engine.as_mut(), &spec, &mut Scheduled { schedules: schedules.clone() }, &mut |state, _| {
        if state.completed > 0 {
            bar.inc(1);
            bar.set_message(format!(
                "loss {}",
                fmt_num(state.histories[0].last().map_or(f64::NAN, |r| r.train_loss), 4)
            ));
        }
        if sweep {
            write_sweep(&out, &sweep_runs(state, &schedules, &seeds, spec.epochs))
        } else {
            write_history(&out, &state.histories[0])
        }
    });
    bar.finish();
    if sweep {
        let runs = sweep_runs(&result.state, &schedules, &seeds, spec.epochs);
        if result.failure.is_none() {
            plot_sweep(&out, &runs, args.sweep_lr.is_some())?;
        }
        print_sweep(&runs);
    } else {
        write_run_outputs(&out, model, batching, &result.state)?;
        print_history(&result.state.histories[0], model.has_accuracy());
    }
    finish(&out, &result.state, result.failure)
}

/// Says where the results are; a failed run keeps its completed epochs.
fn finish(out: &OutDir, state: &RunState, failure: Option<Error>) -> Result<()> {
    match failure {
        None => {
            println!("wrote {}", out.path().display());
            Ok(())
        }
        Some(e) => {
            eprintln!("steplens: kept the {} completed epoch(s) in {}", state.completed, out.path().display());
            Err(e)
        }
    }
}

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
    fn last(&self) -> &HistoryRow {
        self.history.last().expect("row 0 always exists")
    }
}

fn sweep_runs(state: &RunState, schedules: &[Schedule], seeds: &[u64], epochs: usize) -> Vec<SweepRun> {
    state
        .histories
        .iter()
        .enumerate()
        .map(|(r, h)| SweepRun { run: r, lr: schedules[r].epoch_lr(1, epochs), seed: seeds[r], history: h.clone() })
        .collect()
}

pub const SWEEP_HEADER: &[&str] = &["run", "lr", "seed", "final_train_loss", "final_test_loss", "final_test_acc"];

/// sweep.csv (one row per run) and sweep-history.csv (every epoch of every run).
fn write_sweep(out: &OutDir, sweep: &[SweepRun]) -> Result<()> {
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

fn plot_sweep(out: &OutDir, sweep: &[SweepRun], by_lr: bool) -> Result<()> {
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
