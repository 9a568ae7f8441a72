//! `steplens schedule`: train with rates from a learning-rate procedure (by default `pcg`, the
//! cheap robust one; `notebook` and `centred-max` are the accurate-local-problem procedures)
//! and write the schedule as a file `train --schedule` accepts.

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::{
    OutArgs, ProblemArgs,
    args::{AnalysisArgs, ProcedureArgs, RunArgs},
};
use crate::{
    Error, Result,
    driver::{OnDivergence, RunSpec, drive},
    local::{LocalConfig, Mode},
    procedure::{ProcedureName, ProcedureRates},
    report::{
        files::OutDir,
        progress::Progress,
        record::{print_history, write_history, write_run_outputs},
        table::fmt_num,
    },
    train::diverged,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Re-estimate at each epoch's start.
    Epoch,
    /// Re-estimate every --every steps.
    Online,
}

#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    /// The procedure: `pcg` (the default: Polyak-like steps capped by the top Hessian
    /// curvatures, with a revisit guard; ~1.23× one run's gradients), `notebook` (the notebook's
    /// accurate local problem along q; --tau, --aggregate, analysis flags) or `centred-max`.
    #[arg(long, value_enum, default_value_t = ProcedureName::Pcg)]
    pub procedure: ProcedureName,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub knobs: ProcedureArgs,
    /// When `notebook`/`centred-max` re-estimate [default: epoch]; pcg re-estimates on its own.
    #[arg(long, value_enum)]
    pub mode: Option<ModeArg>,
    /// Online mode: re-estimate every M steps.
    #[arg(long, value_name = "M")]
    pub every: Option<usize>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub output: OutArgs,
}

impl ScheduleArgs {
    fn mode(&self) -> Result<Mode> {
        if self.procedure == ProcedureName::Pcg && (self.mode.is_some() || self.every.is_some()) {
            return Err(Error::usage(
                "--mode and --every set when notebook and centred-max re-estimate; pcg re-estimates every 13 steps",
            ));
        }
        match (self.mode, self.every) {
            (Some(ModeArg::Online), every) => match every.unwrap_or(50) {
                0 => Err(Error::usage("--every must be at least 1")),
                every => Ok(Mode::Online { every }),
            },
            (_, Some(_)) => Err(Error::usage("--every needs --mode online")),
            _ => Ok(Mode::Epoch),
        }
    }
}

/// What a scheduled run cost and where it ended, as summary.json.
#[derive(Debug, Serialize)]
pub struct ScheduleSummary {
    pub procedure: ProcedureName,
    pub grad_evals: u64,
    pub grad_evals_per_training_run: u64,
    pub grad_evals_ratio: f64,
    pub diverged: bool,
    pub epochs_completed: usize,
    pub final_train_loss: f64,
    pub final_test_loss: Option<f64>,
}

pub fn run(args: &ScheduleArgs, quiet: bool) -> Result<()> {
    args.analysis.check()?;
    args.problem.device.check()?;
    let mode = args.mode()?;
    let procedure = args.knobs.procedure()?;
    if args.run.reshuffle && args.procedure == ProcedureName::Pcg {
        return Err(Error::usage(
            "--reshuffle: the pcg procedure compares each batch with itself one epoch earlier, so it needs the batches in \
             the same order every epoch",
        ));
    }
    let out = args.output.open("schedule")?;
    let setup = args.run.setup(&args.problem)?;
    let (model, batching) = (setup.model, setup.batching);
    let local = LocalConfig {
        procedure,
        analysis: args.analysis.settings(&model, args.run.seed)?,
        mode,
        sample: args.knobs.sample,
    };
    let spec = args.procedure.spec(&local, args.run.seed);
    let mut engine = args.problem.device.engine(model, &setup.data, 1, quiet)?;
    engine.set_params(&model.init(args.problem.model.init, args.run.seed))?;
    // pcg's steps run under the Polyak rule, the local procedures' under a table.
    let rule = match args.procedure {
        ProcedureName::Pcg => crate::engine::StepRule::Polyak { c: 1.0, max_lr: 1.0 },
        _ => crate::engine::StepRule::Table,
    };
    let mut record = args.run.record("schedule", &setup, &args.problem, Some(engine.info()));
    record.kernels_resolved = engine.kernel_choice(rule, batching.steps(), batching.batch_size);
    let record = record.with("schedule", "schedule.csv").with("procedure", args.procedure).with("settings", &spec);
    out.write_json("config.json", &record)?;

    let run_spec = RunSpec {
        batching: vec![batching],
        epochs: args.run.epochs,
        on_divergence: OnDivergence::Stop,
        keep_params: true,
    };
    let mut rates = spec.start()?;
    let bar = Progress::with_quiet(run_spec.epochs as u64, "schedule", quiet);
    let steps = batching.steps();
    let result = drive(engine.as_mut(), &run_spec, &mut rates, &mut |state, rates: &ProcedureRates| {
        write_schedule(&out, rates, &state.steps[0], steps)?;
        write_history(&out, &state.histories[0])?;
        if state.completed > 0 {
            bar.inc(1);
            bar.set_message(format!("lr {}", fmt_num(state.histories[0].last().map_or(f64::NAN, |r| r.lr), 3)));
        }
        Ok(())
    });
    bar.finish();
    let state = &result.state;
    write_run_outputs(&out, &model, &batching, state)?;
    let last = state.histories[0].last().expect("row 0 exists");
    let summary = ScheduleSummary {
        procedure: args.procedure,
        grad_evals: state.grad_evals,
        grad_evals_per_training_run: (args.run.epochs * steps) as u64,
        grad_evals_ratio: state.grad_evals as f64 / (args.run.epochs * steps) as f64,
        diverged: matches!(result.failure, Some(Error::Diverged { .. })) || diverged(last),
        epochs_completed: state.completed,
        final_train_loss: last.train_loss,
        final_test_loss: setup.data.test.as_ref().map(|_| last.test_loss),
    };
    out.write_json("summary.json", &summary)?;
    out.write_text("report.md", &report(args, &rates, &summary))?;
    print_history(&state.histories[0], model.has_accuracy());
    for line in rates.notes() {
        println!("{line}");
    }
    match result.failure {
        None => {
            println!(
                "wrote {} (train --schedule {} reproduces the run)",
                out.path().display(),
                out.file("schedule.csv").display()
            );
            Ok(())
        }
        Some(e) => {
            eprintln!("steplens: kept the {} completed epoch(s) in {}", state.completed, out.path().display());
            Err(e)
        }
    }
}

/// schedule.csv: `epoch,lr,…` (an estimate per epoch), or `epoch,step,lr,…` (online estimates;
/// pcg's per-step rates).
fn write_schedule(
    out: &OutDir,
    rates: &ProcedureRates,
    steps: &[crate::engine::StepStat],
    per_epoch: usize,
) -> Result<()> {
    let table = rates.table(steps, per_epoch);
    out.write_csv("schedule.csv", &table.header, table.rows)
}

fn report(args: &ScheduleArgs, rates: &ProcedureRates, summary: &ScheduleSummary) -> String {
    let mut s = format!(
        "# steplens schedule: {}\n\n{} of {} epochs, batch {}, seed {}. Final training loss {}{}. Gradient evaluations: {} \
         (×{} those of one training run, every estimate included).\n\n",
        args.procedure.row_name(),
        summary.epochs_completed,
        args.run.epochs,
        args.run.batch_size,
        args.run.seed,
        fmt_num(summary.final_train_loss, 4),
        summary.final_test_loss.map_or(String::new(), |t| format!(", test loss {}", fmt_num(t, 4))),
        summary.grad_evals,
        fmt_num(summary.grad_evals_ratio, 3),
    );
    s.push_str(&rates.explain(summary.diverged));
    s.push_str("\n\n## Estimates\n\n");
    for line in rates.notes() {
        s.push_str(&format!("- {line}\n"));
    }
    s.push_str("\nschedule.csv holds every rate as the run used it; `steplens train --schedule schedule.csv` reproduces the run.\n");
    s
}
