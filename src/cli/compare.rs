//! `steplens compare`: the learning-rate procedures against the schedules people use, on the
//! same data, initialisation, batch order and epochs, over `--seeds` seeds.

use clap::Args;

use super::{
    OutArgs, ProblemArgs,
    args::{AnalysisArgs, ProcedureArgs, RunArgs, Setup, ShardArgs},
};
use crate::{
    Error, Result,
    compare::{MethodRun, Trial, roster, run_roster},
    engine::{Block, Engine},
    local::{LocalConfig, Mode, Tau},
    procedure::{ProcedureSpec, parse_procedures},
    rates::parse_grid,
    report::{
        comparison::{CompareInfo, summary_table, write_comparison},
        table::fmt_num,
    },
    shard::{JobResult, Manifest, ShardDir},
    train::Batching,
};

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    #[command(flatten)]
    pub problem: ProblemArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
    #[command(flatten)]
    pub procedure: ProcedureArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Seeds seed .. seed+N−1: every method on each (initialisation and batch order), reported
    /// as the median and quartiles over seeds.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub seeds: usize,
    /// The constant-rate grid: A:B:R, R log-spaced rates from A to B.
    #[arg(long, default_value = "1e-3:10:8", value_name = "A:B:R")]
    pub grid: String,
    /// Epochs-to-target threshold [default: 1.05 × the tuned constant's median final training loss].
    #[arg(long, value_name = "LOSS")]
    pub target_loss: Option<f64>,
    /// The named procedures to compare, `,`-separated (`none` for none).
    #[arg(long, default_value = "pcg,notebook,centred-max", value_name = "LIST")]
    pub procedures: String,
    /// More variants of the accurate-local-problem procedure, `;`-separated: `local` (τ = inf),
    /// `local-tau:T`, or `local:key=value,…` with keys tau, aggregate, center (true/false),
    /// block, perturb, sample (40 unless given).
    #[arg(long, default_value = "", value_name = "LIST")]
    pub local: String,
    // The jobs are the seeds, in order.
    #[command(flatten)]
    pub sharding: ShardArgs,
    #[command(flatten)]
    pub output: OutArgs,
}

/// `local`, `local-tau:T`, `local:key=value,…`; `;`-separated.
fn parse_locals(text: &str, base: &LocalConfig, outputs: usize) -> Result<Vec<(String, ProcedureSpec)>> {
    let mut out = Vec::new();
    for spec in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| Error::usage(format!("--local `{spec}`: {why}"));
        let mut cfg = base.clone();
        let opts = if spec == "local" {
            ""
        } else if let Some(t) = spec.strip_prefix("local-tau:") {
            cfg.procedure.tau = Tau::parse(t)?;
            ""
        } else if let Some(o) = spec.strip_prefix("local:") {
            o
        } else {
            return Err(bad("use local, local-tau:T or local:key=value,…"));
        };
        for kv in opts.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').ok_or_else(|| bad("expected key=value"))?;
            match k.trim() {
                "tau" => cfg.procedure.tau = Tau::parse(v)?,
                "aggregate" => cfg.procedure.aggregate = v.parse()?,
                "center" => cfg.analysis.center = v.trim().parse().map_err(|_| bad("center is true or false"))?,
                "block" => cfg.analysis.block = v.parse()?,
                "perturb" => cfg.analysis.perturbation = v.parse()?,
                "sample" => match v.trim().parse() {
                    Ok(0) | Err(_) => return Err(bad("sample is a whole number of batches, at least 1")),
                    Ok(n) => cfg.sample = Some(n),
                },
                other => return Err(bad(&format!("unknown key `{other}`"))),
            }
        }
        if let Block::Row(c) = cfg.analysis.block
            && c >= outputs
        {
            return Err(bad("that block row does not exist"));
        }
        out.push((spec.to_string(), ProcedureSpec::Local(cfg)));
    }
    Ok(out)
}

/// Batches the local procedures of `compare` analyse per estimate unless `--sample` says otherwise.
const COMPARE_SAMPLE: usize = 40;

pub fn run(args: &CompareArgs, quiet: bool) -> Result<()> {
    args.analysis.check()?;
    args.problem.device.check()?;
    if args.seeds < 1 || args.seeds > crate::rates::MAX_RUNS {
        return Err(Error::usage(format!("--seeds must be between 1 and {}", crate::rates::MAX_RUNS)));
    }
    if let Some(t) = args.target_loss
        && !(t.is_finite() && t > 0.0)
    {
        return Err(Error::usage("--target-loss must be a positive number"));
    }
    let shard = args.sharding.shard()?;
    let grid = parse_grid("--grid", &args.grid)?;
    let names = parse_procedures(&args.procedures)?;
    let procedure = args.procedure.procedure()?;
    let out = args.sharding.out_dir(&args.output, &format!("compare-{:?}", args.problem.model.model).to_lowercase())?;
    let setup = args.run.setup(&args.problem)?;
    let local = LocalConfig {
        procedure,
        analysis: args.analysis.settings(&setup.model, args.run.seed)?,
        mode: Mode::Epoch,
        sample: args.procedure.sample.or(Some(COMPARE_SAMPLE)),
    };
    let locals = parse_locals(&args.local, &local, setup.model.outputs)?;
    let procedures = |seed: u64| -> Vec<(String, ProcedureSpec)> {
        names
            .iter()
            .map(|n| (n.row_name().to_string(), n.spec(&with_seed(&local, seed), seed)))
            .chain(locals.iter().map(|(l, s)| (l.clone(), reseed(s, seed))))
            .collect()
    };
    if args.run.reshuffle && procedures(args.run.seed).iter().any(|(_, p)| p.needs_fixed_order()) {
        return Err(Error::usage(
            "--reshuffle: the pcg procedure compares each batch with itself one epoch earlier, so it needs the batches in \
             the same order every epoch",
        ));
    }
    // The jobs: one seed each, in order.
    let seeds: Vec<u64> = (0..args.seeds as u64).map(|i| args.run.seed + i).collect();
    let steps_per_run = (args.run.epochs * setup.batching.steps()) as u64;
    let info = CompareInfo {
        dataset: dataset_name(&setup),
        data_name: setup.data.train.name.clone(),
        model: setup.model.kind,
        epochs: args.run.epochs,
        batch_size: args.run.batch_size,
        first_seed: args.run.seed,
        steps_per_run,
        target_loss: args.target_loss,
    };
    let record = args
        .run
        .record("compare", &setup, &args.problem, None)
        .with("seeds", &seeds)
        .with("grid", &grid)
        .with("target_loss", args.target_loss)
        .with("procedures", procedures(args.run.seed).iter().map(|(n, _)| n.clone()).collect::<Vec<_>>())
        .with("local", &local)
        .with("comparison", &info);
    let manifest = Manifest::new("compare", shard, &record, seeds.iter().map(|s| format!("seed {s}")))?;
    let mut dir = ShardDir::open(&out, &manifest, args.sharding.resume)?;
    let mut stop = None;
    for index in dir.pending(seeds.len()) {
        let (seed, started) = (seeds[index], std::time::Instant::now());
        match compare_seed(args, &setup, seed, &grid, procedures(seed), quiet) {
            Ok((runs, adapter)) => {
                let result =
                    JobResult { runs, ..JobResult::new(index, format!("seed {seed}"), adapter, steps_per_run) };
                dir.keep(result, started.elapsed().as_secs_f64(), quiet)?;
            }
            // Stopped: report the seeds that finished (if any), then exit 130.
            Err(e @ Error::Interrupted { .. }) => {
                stop = Some(e);
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if !dir.whole() {
        if stop.is_some() {
            return Err(dir.stopped());
        }
        dir.report_partial();
        return Ok(());
    }
    let per_seed: Vec<Vec<MethodRun>> = dir.done.values().map(|j| j.runs.clone()).collect();
    if per_seed.is_empty() {
        return Err(stop.unwrap_or_else(|| Error::Runtime("no seed was compared".into())));
    }
    let written = write_comparison(&out, &manifest.settings, &info, &per_seed)?;
    print!("{}", summary_table(&written.summaries));
    println!("tuned constant {}; target loss {}", written.tuned, fmt_num(written.target, 4));
    println!("wrote {}", out.path().display());
    match stop {
        Some(_) => Err(Error::Stopped {
            done: format!(
                "{} of {} seeds, written to {} (--resume does the rest)",
                per_seed.len(),
                seeds.len(),
                out.path().display()
            ),
        }),
        None => Ok(()),
    }
}

fn with_seed(local: &LocalConfig, seed: u64) -> LocalConfig {
    let mut c = local.clone();
    c.analysis.seed = seed;
    c
}

fn reseed(spec: &ProcedureSpec, seed: u64) -> ProcedureSpec {
    match spec {
        ProcedureSpec::Local(c) => ProcedureSpec::Local(with_seed(c, seed)),
        ProcedureSpec::Pcg(c) => ProcedureSpec::Pcg(crate::pcg::PcgConfig { seed, ..*c }),
    }
}

/// The short name of the data (`mnist01` for the embedded default).
pub fn dataset_name(setup: &Setup) -> String {
    let name = &setup.data.train.name;
    if name.starts_with("mnist digits 0,1") { "mnist01".into() } else { name.clone() }
}

/// Every method of the roster on one seed (initialisation and batch order), and the adapter it
/// ran on.
fn compare_seed(
    args: &CompareArgs,
    setup: &Setup,
    seed: u64,
    grid: &[f64],
    procedures: Vec<(String, ProcedureSpec)>,
    quiet: bool,
) -> Result<(Vec<MethodRun>, String)> {
    let theta0 = setup.model.init(args.problem.model.init, seed);
    let mut adapter = String::new();
    let mut make = |runs: usize| -> Result<Box<dyn Engine>> {
        let mut e = args.problem.device.engine(setup.model, &setup.data, runs, true)?;
        let info = e.info();
        adapter = format!("{} ({})", info.adapter, info.backend);
        e.set_params(&theta0.repeat(runs))?;
        Ok(e)
    };
    let mut trial = Trial {
        engine: &mut make,
        batching: Batching { seed, ..setup.batching },
        epochs: args.run.epochs,
        max_lr: args.procedure.max_lr as f32,
        quiet,
    };
    let mut runs = run_roster(&mut trial, &roster(grid, procedures))?;
    runs.iter_mut().for_each(|r| r.seed = seed);
    Ok((runs, adapter))
}
