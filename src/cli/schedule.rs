//! `steplens schedule`: train with rates from the accurate local problem (GUIDE §4) and write
//! the schedule as a file `train --schedule` accepts.

use clap::{Args, ValueEnum};

use super::{
    DataArgs, DeviceArgs, ModelArgs, OutArgs,
    analyze::AnalysisArgs,
    train::{DataSummary, RunSummary, print_history, write_history, write_run_outputs},
};
use crate::{
    Error, Result,
    local::{Aggregate, LocalConfig, LocalRun, Mode, Procedure, ScheduleRow, Tau, run_local},
    report::{
        files::{OutDir, csv_num},
        progress::Progress,
    },
    train::Batching,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Re-estimate at each epoch's start.
    Epoch,
    /// Re-estimate every --every steps.
    Online,
}

/// The procedure's knobs, shared with `compare`.
#[derive(Debug, Clone, Args)]
pub struct ProcedureArgs {
    /// The time one step should cover: a positive number, or `inf` for the Newton step 1/λ.
    #[arg(long, default_value = "inf", value_name = "T")]
    pub tau: String,
    /// How the batches' rates become one: `median`, `max` (largest λ: the most cautious rate), `q<p>`.
    #[arg(long, default_value = "median", value_name = "AGG")]
    pub aggregate: String,
    /// Batches whose projection line has R² below this fall back to τ (bounded by --max-lr).
    /// 0.1 is where, with K = 100 points, the fitted slope is about three standard errors from 0.
    #[arg(long, default_value_t = 0.1, value_name = "R2")]
    pub min_r2: f64,
    /// The largest rate the procedure may choose (and the fallback where τ = inf).
    #[arg(long, default_value_t = 10.0, value_name = "H")]
    pub max_lr: f64,
    /// Batches analysed per estimate [default: all].
    #[arg(long, value_name = "S")]
    pub sample: Option<usize>,
}

impl ProcedureArgs {
    pub fn procedure(&self) -> Result<Procedure> {
        if !(self.max_lr.is_finite() && self.max_lr > 0.0) {
            return Err(Error::usage(format!("--max-lr must be a positive finite number, got {}", self.max_lr)));
        }
        if !(0.0..=1.0).contains(&self.min_r2) {
            return Err(Error::usage(format!("--min-r2 must be between 0 and 1, got {}", self.min_r2)));
        }
        if self.sample == Some(0) {
            return Err(Error::usage("--sample must be at least 1"));
        }
        Ok(Procedure {
            tau: Tau::parse(&self.tau)?,
            aggregate: Aggregate::parse(&self.aggregate)?,
            min_r2: self.min_r2,
            max_lr: self.max_lr,
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub procedure: ProcedureArgs,
    #[arg(long, value_enum, default_value_t = ModeArg::Epoch)]
    pub mode: ModeArg,
    /// Online mode: re-estimate every M steps.
    #[arg(long, default_value_t = 50, value_name = "M")]
    pub every: usize,
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub epochs: usize,
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub batch_size: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub reshuffle: bool,
    #[command(flatten)]
    pub output: OutArgs,
}

pub fn run(args: &ScheduleArgs, quiet: bool) -> Result<()> {
    if args.epochs < 1 {
        return Err(Error::usage("--epochs must be at least 1"));
    }
    if args.every < 1 {
        return Err(Error::usage("--every must be at least 1"));
    }
    args.analysis.check()?;
    args.device.check()?;
    let procedure = args.procedure.procedure()?;
    let data = args.data.load()?;
    let model = args.model.model(&data)?;
    let analysis = args.analysis.settings(&model, args.seed)?;
    let batching = Batching::new(data.train.n, args.batch_size, args.seed, args.reshuffle)?;
    let mode = match args.mode {
        ModeArg::Epoch => Mode::Epoch,
        ModeArg::Online => Mode::Online { every: args.every },
    };
    let cfg = LocalConfig { procedure, analysis, mode, sample: args.procedure.sample, epochs: args.epochs };
    let out = args.output.open("schedule")?;
    let mut engine = args.device.engine(model, &data, 1, quiet)?;
    engine.set_params(&model.init(args.model.init, args.seed))?;
    out.write_json(
        "config.json",
        &serde_json::json!({
            "command": "schedule",
            "version": env!("CARGO_PKG_VERSION"),
            "model": model,
            "init": args.model.init,
            "data": DataSummary::of(&data),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "steps_per_epoch": batching.steps(),
            "seed": args.seed,
            "reshuffle": args.reshuffle,
            "schedule": "schedule.csv",
            "procedure": cfg,
            "engine": engine.info(),
        }),
    )?;
    let bar = Progress::with_quiet(args.epochs as u64, "schedule", quiet);
    let mut after = |run: &LocalRun| -> Result<()> {
        write_schedule(&out, &run.schedule, mode)?;
        write_history(&out, &run.rows)?;
        if let Some(last) = run.schedule.last() {
            bar.set_message(format!("lr {}", crate::report::table::fmt_num(last.estimate.lr, 3)));
        }
        bar.inc(1);
        if super::interrupted() && run.rows.len() <= args.epochs {
            return Err(Error::Interrupted { completed: run.rows.len() - 1 });
        }
        Ok(())
    };
    let (run, failure) = match run_local(engine.as_mut(), &batching, &cfg, &mut after) {
        Ok(r) => (r, None),
        Err(failed) => {
            let (e, r) = *failed;
            (r, Some(e))
        }
    };
    bar.finish();
    let batches = (1..run.rows.len()).map(|e| batching.epoch(e)).collect();
    let summary = RunSummary { rows: run.rows.clone(), params: run.params.clone(), batches };
    write_run_outputs(&out, &model, &batching, &summary)?;
    print_history(&summary.rows, model.has_accuracy());
    print_estimates(&run.schedule);
    match failure {
        None => {
            println!(
                "wrote {} (train --schedule {} reproduces the run)",
                out.path().display(),
                out.file("schedule.csv").display()
            );
            Ok(())
        }
        Some(e) => Err(e),
    }
}

/// schedule.csv: `epoch,lr,…` (epoch mode) or `epoch,step,lr,…` (online mode).
pub fn write_schedule(out: &OutDir, rows: &[ScheduleRow], mode: Mode) -> Result<()> {
    let online = matches!(mode, Mode::Online { .. });
    let mut header = vec!["epoch"];
    if online {
        header.push("step");
    }
    header.extend([
        "lr",
        "lambda_median",
        "lambda_q1",
        "lambda_q3",
        "r2_median",
        "lambda_max",
        "h_median",
        "h_min",
        "fallbacks",
        "batches",
    ]);
    let csv_rows = rows.iter().map(|r| {
        let e = &r.estimate;
        let mut cells = vec![r.epoch.to_string()];
        if online {
            cells.push(r.step.to_string());
        }
        // The rate as the f32 the run used, so `train --schedule` reproduces the run exactly.
        cells.push(csv_num(e.lr as f32 as f64));
        cells.extend(
            [e.lambda_median, e.lambda_q1, e.lambda_q3, e.r2_median, e.lambda_max, e.h_median, e.h_min].map(csv_num),
        );
        cells.push(e.fallbacks.to_string());
        cells.push(e.batches.to_string());
        cells
    });
    out.write_csv("schedule.csv", &header, csv_rows)
}

fn print_estimates(rows: &[ScheduleRow]) {
    use crate::report::table::{Table, fmt_num};
    let mut t = Table::new(["epoch", "step", "lr", "λ median", "λ q1", "λ q3", "R² median", "fallbacks"]);
    for r in rows {
        let e = &r.estimate;
        t.row(vec![
            r.epoch.to_string(),
            r.step.to_string(),
            fmt_num(e.lr, 4),
            fmt_num(e.lambda_median, 4),
            fmt_num(e.lambda_q1, 4),
            fmt_num(e.lambda_q3, 4),
            fmt_num(e.r2_median, 3),
            format!("{}/{}", e.fallbacks, e.batches),
        ]);
    }
    print!("{t}");
}
