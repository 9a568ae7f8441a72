//! `steplens train`: one run (or a sweep of runs) of SGD, written to a run directory.

use clap::Args;
use serde::Serialize;

use super::{DataArgs, DeviceArgs, ModelArgs, OutArgs, interrupted};
use crate::{
    Error, Result,
    data::{Data, npy},
    engine::{Engine, EngineInfo, StepRule},
    model::Model,
    report::{files::OutDir, progress::Progress, table::Table},
    schedule::Schedule,
    train::{Batching, HistoryRow, Trainer, diverged, history_csv},
};

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub epochs: usize,
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub batch_size: usize,
    /// Constant learning rate (the notebook's 0.005 by default).
    #[arg(long, value_name = "H", conflicts_with = "schedule", allow_negative_numbers = true)]
    pub lr: Option<f64>,
    /// `constant:H`, `step:H,gamma=G,every=E`, `cosine:H[,min=M]`, `inv-t:H[,k=K]` or a CSV file.
    #[arg(long, value_name = "SPEC|FILE")]
    pub schedule: Option<String>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A new batch permutation every epoch (the notebook shuffles once).
    #[arg(long)]
    pub reshuffle: bool,
    #[command(flatten)]
    pub output: OutArgs,
    /// Train R runs at once with R log-spaced constant rates from A to B (e.g. 1e-3:10:64).
    #[arg(long, value_name = "A:B:R", conflicts_with_all = ["lr", "schedule", "sweep_seed"])]
    pub sweep_lr: Option<String>,
    /// Train N runs at once with seeds seed .. seed+N−1 (initialisation and batch order).
    #[arg(long, value_name = "N")]
    pub sweep_seed: Option<usize>,
}

/// `A:B:R` as R log-spaced rates from A to B.
pub fn parse_sweep(text: &str) -> Result<Vec<f64>> {
    let bad = || Error::usage(format!("--sweep-lr `{text}`: use A:B:R with 0 < A ≤ B and R ≥ 1 runs, e.g. 1e-3:10:64"));
    let parts: Vec<&str> = text.split(':').collect();
    let [a, b, r] = parts.as_slice() else { return Err(bad()) };
    let (a, b): (f64, f64) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    let r: usize = r.trim().parse().map_err(|_| bad())?;
    if !(a > 0.0 && b >= a && b.is_finite()) || r == 0 {
        return Err(bad());
    }
    Ok((0..r).map(|i| if r == 1 { a } else { a * (b / a).powf(i as f64 / (r - 1) as f64) }).collect())
}

/// Every resolved setting of a run, written as config.json.
#[derive(Debug, Serialize)]
pub struct RunConfig<'a> {
    pub command: &'a str,
    pub version: &'a str,
    pub model: Model,
    pub init: crate::model::InitKind,
    pub data: DataSummary,
    pub epochs: usize,
    pub batch_size: usize,
    pub steps_per_epoch: usize,
    pub seed: u64,
    pub reshuffle: bool,
    pub schedule: String,
    pub kernels: crate::gpu::KernelPath,
    pub engine: EngineInfo,
}

#[derive(Debug, Serialize)]
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

impl TrainArgs {
    pub fn resolved_schedule(&self) -> Result<Schedule> {
        match (&self.schedule, self.lr) {
            (Some(s), _) => Schedule::parse(s),
            (None, Some(lr)) => Schedule::constant(lr),
            (None, None) => Schedule::constant(0.005),
        }
    }

    pub fn check(&self) -> Result<Schedule> {
        if self.epochs < 1 {
            return Err(Error::usage("--epochs must be at least 1"));
        }
        if self.batch_size < 1 {
            return Err(Error::usage("--batch-size must be at least 1"));
        }
        self.device.check()?;
        self.resolved_schedule()
    }
}

pub fn run(args: &TrainArgs, quiet: bool) -> Result<()> {
    if args.sweep_lr.is_some() || args.sweep_seed.is_some() {
        return super::sweep::run(args, quiet);
    }
    let schedule = args.check()?;
    let data = args.data.load()?;
    let model = args.model.model(&data)?;
    let batching = Batching::new(data.train.n, args.batch_size, args.seed, args.reshuffle)?;
    schedule.check(args.epochs, batching.steps())?;
    let out = args.output.open(&format!("{:?}", args.model.model).to_lowercase())?;
    let mut engine = args.device.engine(model, &data, 1, quiet)?;
    engine.set_params(&model.init(args.model.init, args.seed))?;
    let config = RunConfig {
        command: "train",
        version: env!("CARGO_PKG_VERSION"),
        model,
        init: args.model.init,
        data: DataSummary::of(&data),
        epochs: args.epochs,
        batch_size: args.batch_size,
        steps_per_epoch: batching.steps(),
        seed: args.seed,
        reshuffle: args.reshuffle,
        schedule: schedule.to_string(),
        kernels: args.device.kernels,
        engine: engine.info(),
    };
    out.write_json("config.json", &config)?;
    let (summary, failure) = match train_single(engine.as_mut(), &batching, &schedule, args.epochs, &out, quiet) {
        Ok(s) => (s, None),
        Err(failed) => {
            let (e, s) = *failed;
            (s, Some(e))
        }
    };
    write_run_outputs(&out, &model, &batching, &summary)?;
    print_history(&summary.rows, model.has_accuracy());
    match failure {
        None => {
            println!("wrote {}", out.path().display());
            Ok(())
        }
        Some(e) => {
            eprintln!(
                "steplens: kept the {} completed epoch(s) in {}",
                summary.rows.len().saturating_sub(1),
                out.path().display()
            );
            Err(e)
        }
    }
}

/// What a single run leaves behind, complete or not.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub rows: Vec<HistoryRow>,
    /// Parameters after the last good epoch.
    pub params: Vec<f32>,
    /// The batch order of each completed epoch (steps × b each).
    pub batches: Vec<Vec<u32>>,
}

/// Train one run, writing history.csv/json after every epoch; on failure returns the error with
/// everything completed so far.
pub fn train_single(
    engine: &mut dyn Engine,
    batching: &Batching,
    schedule: &Schedule,
    epochs: usize,
    out: &OutDir,
    quiet: bool,
) -> std::result::Result<RunSummary, Box<(Error, RunSummary)>> {
    let mut summary = RunSummary::default();
    let attempt = (|| -> Result<()> {
        summary.params = engine.params()?;
        let mut trainer = Trainer::new(engine, vec![*batching])?;
        trainer.read_params = true;
        summary.rows.push(trainer.initial()?.remove(0));
        write_history(out, &summary.rows)?;
        let steps = trainer.steps();
        let bar = Progress::with_quiet(epochs as u64, "train", quiet);
        for epoch in 1..=epochs {
            let lrs = schedule.step_lrs(epoch, epochs, steps);
            let mut run = trainer.epoch(epoch, &lrs, StepRule::Table)?.remove(0);
            if diverged(&run.row) {
                bar.finish();
                return Err(Error::Diverged {
                    epoch,
                    lr: run.row.lr,
                    what: format!("the training loss became {}", run.row.train_loss),
                });
            }
            // The schedule's own value, not its f32 rounding, names the epoch's rate.
            run.row.lr = schedule.epoch_lr(epoch, epochs);
            summary.params = run.params.take().unwrap_or_default();
            summary.batches.push(batching.epoch(epoch));
            bar.set_message(format!("loss {:.4}", run.row.train_loss));
            summary.rows.push(run.row);
            write_history(out, &summary.rows)?;
            bar.inc(1);
            if interrupted() && epoch < epochs {
                bar.finish();
                return Err(Error::Interrupted { completed: epoch });
            }
        }
        bar.finish();
        Ok(())
    })();
    match attempt {
        Ok(()) => Ok(summary),
        Err(e) => Err(Box::new((e, summary))),
    }
}

pub fn write_history(out: &OutDir, rows: &[HistoryRow]) -> Result<()> {
    out.write_text("history.csv", &history_csv(rows))?;
    out.write_json("history.json", &rows)
}

/// weights.npy, bias.npy and batches.npy of a run.
pub fn write_run_outputs(out: &OutDir, model: &Model, batching: &Batching, summary: &RunSummary) -> Result<()> {
    let (c, p) = (model.outputs, model.p);
    if summary.params.len() == model.dim() {
        let (w, b) = summary.params.split_at(c * p);
        let w_shape: Vec<usize> = if c == 1 { vec![p] } else { vec![c, p] };
        out.write("weights.npy", &npy::f32_bytes(&w_shape, w))?;
        out.write("bias.npy", &npy::f32_bytes(&[c], b))?;
    }
    let steps = batching.steps();
    let b = batching.batch_size;
    if !batching.reshuffle {
        out.write("batches.npy", &npy::u32_bytes(&[steps, b], &batching.epoch(1)))?;
    } else if !summary.batches.is_empty() {
        let all: Vec<u32> = summary.batches.concat();
        out.write("batches.npy", &npy::u32_bytes(&[summary.batches.len(), steps, b], &all))?;
    }
    Ok(())
}

pub fn print_history(rows: &[HistoryRow], accuracy: bool) {
    let mut t = Table::new(vec!["epoch", "lr", "train loss", "train acc", "test loss", "test acc", "seconds"]);
    let f = |v: f64, d: usize| if v.is_nan() { "-".to_string() } else { format!("{v:.d$}") };
    for r in rows {
        t.row(vec![
            r.epoch.to_string(),
            crate::report::table::fmt_num(r.lr, 4),
            f(r.train_loss, 5),
            if accuracy { f(r.train_acc, 4) } else { "-".into() },
            f(r.test_loss, 5),
            if accuracy { f(r.test_acc, 4) } else { "-".into() },
            format!("{:.3}", r.seconds),
        ]);
    }
    print!("{t}");
}
