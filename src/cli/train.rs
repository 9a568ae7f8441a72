//! `steplens train`: one run of SGD, or a sweep of runs (`--sweep-lr`, `--sweep-seed`) trained
//! side by side on one engine, written to a run directory.

use clap::Args;

use super::{
    OutArgs, ProblemArgs,
    args::{RunArgs, Setup, ShardArgs},
};
use crate::{
    Error, Result,
    driver::{OnDivergence, RunSpec, RunState, drive},
    engine::StepRule,
    rates::{Scheduled, parse_grid},
    report::{
        files::OutDir,
        progress::Progress,
        record::{RunRecord, print_history, write_history, write_run_outputs},
        sweep::{print_sweep, sweep_record, sweep_runs, write_finished, write_merged, write_sweep},
        table::fmt_num,
    },
    schedule::Schedule,
    shard::{JobResult, Manifest, SWEEP_JOB_RUNS, ShardDir},
    train::Batching,
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
    // The jobs of a sweep are blocks of 16 runs, in order.
    #[command(flatten)]
    pub sharding: ShardArgs,
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
    if args.sharding.by_jobs() && !args.is_sweep() {
        return Err(Error::usage(
            "--shard and --resume cut a sweep into jobs: use them with --sweep-lr or --sweep-seed",
        ));
    }
    let shard = args.sharding.shard()?;
    // The run directory first: an unwritable --out is a usage error before any work.
    let name = if args.is_sweep() { "sweep".into() } else { format!("{:?}", args.problem.model.model).to_lowercase() };
    let out = args.sharding.out_dir(&args.output, &name)?;
    let setup = args.run.setup(&args.problem)?;
    for (s, _) in &runs {
        s.check(args.run.epochs, setup.batching.steps())?;
    }
    let schedules: Vec<Schedule> = runs.iter().map(|(s, _)| s.clone()).collect();
    let seeds: Vec<u64> = runs.iter().map(|&(_, s)| s).collect();
    let record = args.run.record("train", &setup, &args.problem, None);
    if !args.is_sweep() {
        return train_one(args, &out, &setup, record, &schedules[0], quiet);
    }
    let record = record
        .with("sweep", if args.sweep_lr.is_some() { "lr" } else { "seed" })
        .with("schedules", schedules.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .with("seeds", &seeds);
    let settings = serde_json::to_value(&record).map_err(|e| Error::Runtime(e.to_string()))?;
    if !args.sharding.by_jobs() {
        let all = Block { first: 0, schedules: &schedules, seeds: &seeds };
        return sweep_whole(args, &out, &setup, &settings, all, quiet);
    }
    let all = Block { first: 0, schedules: &schedules, seeds: &seeds };
    sweep_sharded(args, &out, &setup, (shard, &settings), all, quiet)
}

/// A sweep cut into jobs of [`SWEEP_JOB_RUNS`] runs, in order: this shard's that are not done
/// yet, each kept as it finishes; the whole run's outputs when this shard is the whole run.
fn sweep_sharded(
    args: &TrainArgs,
    out: &OutDir,
    setup: &Setup,
    (shard, settings): (crate::shard::Shard, &serde_json::Value),
    all: Block,
    quiet: bool,
) -> Result<()> {
    let runs = all.seeds.len();
    let blocks: Vec<(usize, usize)> =
        (0..runs).step_by(SWEEP_JOB_RUNS).map(|first| (first, (first + SWEEP_JOB_RUNS).min(runs))).collect();
    let names = blocks.iter().map(|(first, end)| format!("runs {first}–{}", end - 1));
    let manifest = Manifest::new("sweep", shard, settings, names)?;
    let mut dir = ShardDir::open(out, &manifest, args.sharding.resume)?;
    let steps_per_run = (args.run.epochs * setup.batching.steps()) as u64;
    for index in dir.pending(blocks.len()) {
        let (first, end) = blocks[index];
        let block = Block { first, schedules: &all.schedules[first..end], seeds: &all.seeds[first..end] };
        let (name, started) = (&manifest.jobs[index].name, std::time::Instant::now());
        let mut engine = sweep_engine(args, setup, &block, quiet)?;
        let bar = Progress::with_quiet(args.run.epochs as u64, name, quiet);
        let result = drive(engine.as_mut(), &sweep_spec(args, setup, &block), &mut block.rates(), &mut |state, _| {
            if state.completed > 0 {
                bar.inc(1);
            }
            Ok(())
        });
        bar.finish();
        match result.failure {
            None => {}
            Some(Error::Interrupted { .. }) => return Err(dir.stopped()),
            Some(e) => return Err(e),
        }
        let info = engine.info();
        let job = JobResult {
            sweep: sweep_runs(&result.state, first, block.schedules, block.seeds, args.run.epochs),
            kernels_resolved: engine.kernel_choice(StepRule::Table, setup.batching.steps(), setup.batching.batch_size),
            engine: Some(info.clone()),
            ..JobResult::new(index, name.clone(), format!("{} ({})", info.adapter, info.backend), steps_per_run)
        };
        dir.keep(job, started.elapsed().as_secs_f64(), quiet)?;
    }
    if !dir.whole() {
        dir.report_partial();
        return Ok(());
    }
    write_merged(out, &manifest, dir.done.values().cloned().collect())?;
    println!("wrote {}", out.path().display());
    Ok(())
}

/// A block of a sweep's runs: run `first + r` has `schedules[r]` and `seeds[r]`.
#[derive(Clone, Copy)]
struct Block<'a> {
    first: usize,
    schedules: &'a [Schedule],
    seeds: &'a [u64],
}

impl Block<'_> {
    fn rates(&self) -> Scheduled {
        Scheduled { schedules: self.schedules.to_vec() }
    }
}

/// An engine holding a block's runs at their initial parameters.
fn sweep_engine(args: &TrainArgs, setup: &Setup, block: &Block, quiet: bool) -> Result<Box<dyn crate::engine::Engine>> {
    let mut engine = args.problem.device.engine(setup.model, &setup.data, block.seeds.len(), quiet)?;
    let theta: Vec<f32> =
        block.seeds.iter().flat_map(|&seed| setup.model.init(args.problem.model.init, seed)).collect();
    engine.set_params(&theta)?;
    Ok(engine)
}

/// How a block of a sweep trains: one batch order for an lr sweep, one per seed for a seed sweep;
/// a diverged run does not stop the others.
fn sweep_spec(args: &TrainArgs, setup: &Setup, block: &Block) -> RunSpec {
    let batching = if args.sweep_seed.is_some() {
        block.seeds.iter().map(|&seed| Batching { seed, ..setup.batching }).collect()
    } else {
        vec![setup.batching]
    };
    RunSpec { batching, epochs: args.run.epochs, on_divergence: OnDivergence::Continue, keep_params: false }
}

/// A sweep in one go, its files rewritten after every epoch.
fn sweep_whole(
    args: &TrainArgs,
    out: &OutDir,
    setup: &Setup,
    settings: &serde_json::Value,
    block: Block,
    quiet: bool,
) -> Result<()> {
    let mut engine = sweep_engine(args, setup, &block, quiet)?;
    let info = engine.info();
    let kernels = engine.kernel_choice(StepRule::Table, setup.batching.steps(), setup.batching.batch_size);
    let record = sweep_record(settings, Some(&info), kernels.as_ref());
    out.write_json("config.json", &record)?;
    let spec = sweep_spec(args, setup, &block);
    let bar = Progress::with_quiet(spec.epochs as u64, "sweep", quiet);
    let epochs = spec.epochs;
    let result = drive(engine.as_mut(), &spec, &mut block.rates(), &mut |state, _| {
        if state.completed > 0 {
            bar.inc(1);
            bar.set_message(format!(
                "loss {}",
                fmt_num(state.histories[0].last().map_or(f64::NAN, |r| r.train_loss), 4)
            ));
        }
        write_sweep(out, &sweep_runs(state, block.first, block.schedules, block.seeds, epochs))
    });
    bar.finish();
    let runs = sweep_runs(&result.state, block.first, block.schedules, block.seeds, epochs);
    if result.failure.is_none() {
        write_finished(out, &record, &runs, args.sweep_lr.is_some())?;
    }
    print_sweep(&runs);
    finish(out, &result.state, result.failure)
}

/// One run, with its weights.
fn train_one(
    args: &TrainArgs,
    out: &OutDir,
    setup: &Setup,
    record: RunRecord,
    schedule: &Schedule,
    quiet: bool,
) -> Result<()> {
    let Setup { data, model, batching, .. } = setup;
    let mut engine = args.problem.device.engine(*model, data, 1, quiet)?;
    engine.set_params(&model.init(args.problem.model.init, args.run.seed))?;
    let mut record = record.with("schedule", schedule.to_string());
    record.engine = Some(engine.info());
    record.kernels_resolved = engine.kernel_choice(StepRule::Table, batching.steps(), batching.batch_size);
    out.write_json("config.json", &record)?;
    let spec = RunSpec {
        batching: vec![*batching],
        epochs: args.run.epochs,
        on_divergence: OnDivergence::Stop,
        keep_params: true,
    };
    let bar = Progress::with_quiet(spec.epochs as u64, "train", quiet);
    let result =
        drive(engine.as_mut(), &spec, &mut Scheduled { schedules: vec![schedule.clone()] }, &mut |state, _| {
            if state.completed > 0 {
                bar.inc(1);
                bar.set_message(format!(
                    "loss {}",
                    fmt_num(state.histories[0].last().map_or(f64::NAN, |r| r.train_loss), 4)
                ));
            }
            write_history(out, &state.histories[0])
        });
    bar.finish();
    write_run_outputs(out, model, batching, &result.state)?;
    print_history(&result.state.histories[0], model.has_accuracy());
    finish(out, &result.state, result.failure)
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
