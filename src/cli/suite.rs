//! `steplens suite`: every method of `compare` on the benchmark members over seeds; writes
//! suite.csv, leaderboard.md and suite.png/.svg.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::{DeviceArgs, OutArgs, args::ShardArgs};
use crate::{
    Error, Result,
    analysis::Settings,
    data::{Data, Source},
    local::{Aggregate, LocalConfig, Mode, Procedure, Tau},
    model::ModelKind,
    procedure::parse_procedures,
    rates::parse_grid,
    shard::{Manifest, ShardDir},
    suite::{
        Job, Member, MemberInfo, SMALL_BATCH, SMALL_EPOCHS, SharedMaker, SuiteSettings, default_members,
        finished_members, leaderboard_markdown, run_jobs, write_suite,
    },
};

#[derive(Debug, Clone, Args)]
pub struct SuiteArgs {
    /// Members, `,`-separated: a dataset (`mnist01`, `mnist`, `breast_cancer`, `diabetes`: all
    /// its models), `dataset:model`, or an added set `name=PATH:model` (CSV or npy directory,
    /// standardised, 20 epochs at batch 32) [default: every scored member].
    #[arg(long, value_name = "LIST")]
    pub members: Option<String>,
    /// Seeds 0 .. N−1 (initialisation and batch order).
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub seeds: usize,
    /// The constant-rate grid: A:B:R, R log-spaced rates from A to B.
    #[arg(long, default_value = "1e-4:100:25", value_name = "A:B:R")]
    pub grid: String,
    /// The named procedures, `,`-separated (`none` for none).
    #[arg(long, default_value = "pcg,notebook,centred-max", value_name = "LIST")]
    pub procedures: String,
    /// Epochs of every member [default: 6 for MNIST, 20 for the small sets].
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Batch size of every member [default: 64 for MNIST, 32 for the small sets].
    #[arg(long, value_name = "B")]
    pub batch_size: Option<usize>,
    /// Where the full MNIST (member `mnist`) is kept [default: the platform cache dir]/steplens/mnist.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A base URL to download MNIST from, instead of the default mirrors (repeatable).
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
    // The jobs are member × seed, member by member.
    #[command(flatten)]
    pub sharding: ShardArgs,
    /// Spread the jobs over several adapters, one worker each: `all` (every adapter of every
    /// backend) or names, `,`-separated [default: the one adapter --device/--backend/--adapter choose].
    #[arg(long, value_name = "all|LIST", conflicts_with = "adapter")]
    pub adapters: Option<String>,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub output: OutArgs,
}

/// The local procedures' settings in the suite: the notebook's analysis (K = 100, δ = 0.01·U[0,1),
/// row 0) and procedure (τ = ∞, median, R² ≥ 0.1), 40 sampled batches per estimate.
fn suite_local() -> LocalConfig {
    LocalConfig {
        procedure: Procedure { tau: Tau::Infinite, aggregate: Aggregate::Median, min_r2: 0.1, max_lr: MAX_LR },
        analysis: Settings::notebook(0),
        mode: Mode::Epoch,
        sample: Some(40),
    }
}

/// The rate bound of SPS, Armijo and the procedures: SPS's usual cap (Loizou et al. 2021), kept
/// for every method so that none is bounded differently.
const MAX_LR: f64 = 10.0;

impl SuiteArgs {
    /// The devices of the workers: one per adapter of `--adapters`, else the one of the flags.
    fn workers(&self) -> Result<Vec<DeviceArgs>> {
        let Some(list) = &self.adapters else { return Ok(vec![self.device.clone()]) };
        let all = crate::gpu::context::all_adapters(self.device.request().backends()?);
        let wanted: Vec<String> = list.split(',').map(|s| s.trim().to_lowercase()).filter(|s| !s.is_empty()).collect();
        let mut out = Vec::new();
        for a in &all {
            let info = a.get_info();
            let name = info.name.to_lowercase();
            if list.trim() == "all" || wanted.iter().any(|w| name.contains(w.as_str())) {
                out.push(DeviceArgs {
                    device: super::DeviceChoice::Gpu,
                    backend: Some(crate::gpu::context::backend_name(info.backend).to_lowercase()),
                    adapter: Some(info.name.clone()),
                    ..self.device.clone()
                });
            }
        }
        if out.is_empty() {
            let names: Vec<String> = all.iter().map(|a| crate::gpu::context::describe(&a.get_info())).collect();
            return Err(Error::usage(format!(
                "--adapters `{list}` matches no adapter; the adapters are: {}",
                if names.is_empty() { "none".to_string() } else { names.join(", ") }
            )));
        }
        Ok(out)
    }

    fn members(&self) -> Result<Vec<Member>> {
        let mnist = super::DataArgs {
            digits: "0-9".into(),
            data: None,
            test_data: None,
            dataset: None,
            standardize: false,
            cache_dir: self.cache_dir.clone(),
            mirror: self.mirror.clone(),
        }
        .source()?;
        let defaults = default_members(mnist);
        let mut members = match &self.members {
            None => defaults,
            Some(text) => parse_members(text, &defaults)?,
        };
        for m in &mut members {
            m.epochs = self.epochs.unwrap_or(m.epochs);
            m.batch_size = self.batch_size.unwrap_or(m.batch_size);
        }
        Ok(members)
    }
}

/// `dataset`, `dataset:model` or `name=PATH:model`, `,`-separated.
fn parse_members(text: &str, defaults: &[Member]) -> Result<Vec<Member>> {
    let mut out: Vec<Member> = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| Error::usage(format!("--members `{item}`: {why}"));
        let model = |m: &str| {
            <ModelKind as clap::ValueEnum>::from_str(m.trim(), false)
                .map_err(|_| bad("the model is softmax, logreg or lls"))
        };
        if let Some((name, rest)) = item.split_once('=') {
            let (path, m) = rest.rsplit_once(':').ok_or_else(|| bad("an added set is name=PATH:model"))?;
            out.push(Member {
                dataset: name.trim().into(),
                model: model(m)?,
                source: Source::User { train: PathBuf::from(path), test: None },
                standardize: true,
                epochs: SMALL_EPOCHS,
                batch_size: SMALL_BATCH,
            });
            continue;
        }
        let (dataset, m) = match item.split_once(':') {
            Some((d, m)) => (d, Some(model(m)?)),
            None => (item, None),
        };
        let found: Vec<&Member> =
            defaults.iter().filter(|d| d.dataset == dataset && m.is_none_or(|m| d.model == m)).collect();
        if found.is_empty() {
            let names: Vec<String> = defaults.iter().map(Member::name).collect();
            return Err(bad(&format!("no such member; the members are {}", names.join(", "))));
        }
        out.extend(found.into_iter().cloned());
    }
    if out.is_empty() {
        return Err(Error::usage("--members names no member"));
    }
    Ok(out)
}

/// config.json of a suite, and the settings every shard of it must share.
#[derive(Serialize)]
struct SuiteRecord<'a> {
    command: &'static str,
    version: &'static str,
    members: Vec<MemberInfo>,
    seeds: &'a [u64],
    grid: &'a [f64],
    procedures: Vec<&'static str>,
    local: &'a LocalConfig,
    max_lr: f64,
    kernels: crate::gpu::KernelPath,
}

pub fn run(args: &SuiteArgs, quiet: bool) -> Result<()> {
    args.device.check()?;
    if args.seeds < 1 || args.seeds > crate::rates::MAX_RUNS {
        return Err(Error::usage(format!("--seeds must be between 1 and {}", crate::rates::MAX_RUNS)));
    }
    if args.epochs == Some(0) || args.batch_size == Some(0) {
        return Err(Error::usage("--epochs and --batch-size must be at least 1"));
    }
    let shard = args.sharding.shard()?;
    let grid = parse_grid("--grid", &args.grid)?;
    let members = args.members()?;
    let settings = SuiteSettings {
        seeds: (0..args.seeds as u64).collect(),
        grid,
        procedures: parse_procedures(&args.procedures)?,
        local: suite_local(),
        max_lr: MAX_LR,
        quiet,
    };
    let record = SuiteRecord {
        command: "suite",
        version: env!("CARGO_PKG_VERSION"),
        members: members.iter().map(Member::info).collect(),
        seeds: &settings.seeds,
        grid: &settings.grid,
        procedures: settings.procedures.iter().map(|p| p.row_name()).collect(),
        local: &settings.local,
        max_lr: MAX_LR,
        kernels: args.device.kernels,
    };
    let jobs = Job::all(members.len(), &settings.seeds);
    let manifest = Manifest::new("suite", shard, &record, jobs.iter().map(|j| j.name(&members)))?;
    let out = args.sharding.out_dir(&args.output, "suite")?;
    let mut dir = ShardDir::open(&out, &manifest, args.sharding.resume)?;
    if dir.whole() {
        // The same JSON value merge writes, so both give the same bytes.
        out.write_json("config.json", &manifest.settings)?;
    }
    let workers = args.workers()?;
    let makers: Vec<Box<SharedMaker>> = workers
        .into_iter()
        .map(|device| -> Box<SharedMaker> {
            Box::new(move |model, data: &Data, runs| device.engine(model, data, runs, true))
        })
        .collect();
    let makers: Vec<&SharedMaker> = makers.iter().map(|m| m.as_ref()).collect();
    let pending = dir.pending(jobs.len());
    let ran = run_jobs(&members, &jobs, pending, &settings, &makers, &mut |result, seconds| {
        dir.keep(result, seconds, quiet)?;
        if dir.whole() {
            write_suite(&out, &finished_members(&record.members, args.seeds, &dir.done)?, args.seeds)?;
        }
        Ok(())
    });
    match ran {
        Ok(()) => {}
        Err(Error::Interrupted { .. }) => return Err(dir.stopped()),
        Err(e) => return Err(e),
    }
    if !dir.whole() {
        dir.report_partial();
        return Ok(());
    }
    let results = finished_members(&record.members, args.seeds, &dir.done)?;
    write_suite(&out, &results, args.seeds)?;
    print!("{}", leaderboard_markdown(&results, args.seeds, "## Leaderboard"));
    println!("wrote {}", out.path().display());
    Ok(())
}
