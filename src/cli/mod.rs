//! The command line: argument groups shared by the commands, engine and data construction, and
//! the error edge (one sentence on stderr; exit 2 for usage errors, 1 for runtime errors).

pub mod analyze;
pub mod args;
pub mod bench;
pub mod compare;
pub mod merge;
pub mod schedule;
pub mod suite;
pub mod train;
pub mod validate;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::{
    Error, Result,
    cpu::CpuEngine,
    data::{self, Data, Source, Standardization},
    engine::Engine,
    gpu::{AdapterRequest, GpuContext, GpuEngine, KernelPath},
    model::{InitKind, LossKind, Model, ModelKind},
};

#[derive(Debug, Parser)]
#[command(
    name = "steplens",
    version,
    about = "Learning-rate schedules for SGD from the local geometry of mini-batch gradients, on the GPU",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// No progress bars or notices (results and errors are still printed).
    #[arg(long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model with SGD and write a run directory (history, weights, batches, config).
    Train(train::TrainArgs),
    /// Principal direction, spectrum and projection picture of every batch's perturbed gradients.
    Analyze(analyze::AnalyzeArgs),
    /// Train with rates from a learning-rate procedure (default pcg); write schedule.csv, summary.json, report.md.
    Schedule(schedule::ScheduleArgs),
    /// The procedures against constant (grid), step, cosine, 1/t, range test, SPS, Armijo, over seeds.
    Compare(compare::CompareArgs),
    /// Every method of `compare` on the benchmark members over seeds: suite.csv, leaderboard.md.
    Suite(suite::SuiteArgs),
    /// Combine the shard directories of a sharded `suite` into what the unsharded run writes.
    Merge(merge::MergeArgs),
    /// How fast this adapter trains, sweeps and analyses, against the anchors.
    Bench(bench::BenchArgs),
    /// Every kernel, a training run and the analysis on every adapter, against the f64 reference.
    Validate(validate::ValidateArgs),
    /// List the GPU adapters wgpu can see.
    Adapters(DeviceArgs),
}

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// MNIST digits to use: `0,1` (embedded, the default), `0-9`, `3,5`, … (others are downloaded).
    #[arg(long, default_value = "0,1", value_name = "LIST")]
    pub digits: String,
    /// User data: a CSV file (last column the target, optional header) or a directory with X.npy, y.npy.
    #[arg(long, value_name = "PATH", conflicts_with = "digits")]
    pub data: Option<PathBuf>,
    /// User test data (CSV or directory), for --data.
    #[arg(long, value_name = "PATH", requires = "data")]
    pub test_data: Option<PathBuf>,
    /// An embedded small dataset of the benchmark suite (no test set; use with --standardize).
    #[arg(long, value_enum, value_name = "NAME", conflicts_with_all = ["data", "digits"])]
    pub dataset: Option<data::Embedded>,
    /// Z-score every feature (and the least-squares target) with the training set's mean and
    /// standard deviation, applied to the test set too; a constant feature becomes 0.
    #[arg(long)]
    pub standardize: bool,
    /// Where downloaded MNIST files are kept [default: the platform cache dir]/steplens/mnist.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// A base URL to download MNIST from, instead of the default mirrors (repeatable).
    #[arg(long, value_name = "URL")]
    pub mirror: Vec<String>,
}

impl DataArgs {
    pub fn source(&self) -> Result<Source> {
        if let Some(path) = &self.data {
            return Ok(Source::User { train: path.clone(), test: self.test_data.clone() });
        }
        if let Some(e) = self.dataset {
            return Ok(Source::Embedded(e));
        }
        let digits = parse_digits(&self.digits)?;
        if digits == [0, 1] {
            return Ok(Source::EmbeddedMnist01);
        }
        let cache_dir = self.cache_dir.clone().unwrap_or_else(data::mnist::default_cache_dir);
        let mirrors = if self.mirror.is_empty() {
            data::mnist::DEFAULT_MIRRORS.iter().map(|s| s.to_string()).collect()
        } else {
            self.mirror.clone()
        };
        Ok(Source::Mnist { digits, cache_dir, mirrors })
    }

    /// The data for a `model` run: loaded, and with `--standardize` z-scored with the training
    /// set's statistics (the target too for least squares), which are returned for config.json.
    pub fn load_for(&self, model: ModelKind) -> Result<(Data, Option<Standardization>)> {
        let mut data = data::load(&self.source()?)?;
        let stats = self.standardize.then(|| data::standardize(&mut data, model == ModelKind::Lls));
        Ok((data, stats))
    }

    /// The data as it is, for commands that do not yet record a standardisation: refuses
    /// `--standardize` rather than ignore it. Prefer [`DataArgs::load_for`].
    pub fn load(&self) -> Result<Data> {
        if self.standardize {
            return Err(Error::usage("--standardize is not available for this command yet"));
        }
        Ok(data::load(&self.source()?)?)
    }
}

/// `0,1`, `0-9`, `3,5,7`, `2-4,8` as a sorted list of distinct digits.
pub fn parse_digits(text: &str) -> Result<Vec<u8>> {
    let bad = || Error::usage(format!("--digits `{text}` is not a list of digits like 0,1 or 0-9"));
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u8, u8) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
        if a > 9 || b > 9 || a > b {
            return Err(bad());
        }
        out.extend(a..=b);
    }
    out.sort();
    out.dedup();
    if out.len() < 2 {
        return Err(Error::usage(format!("--digits `{text}` must name at least two digits")));
    }
    Ok(out)
}

#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    #[arg(long, value_enum, default_value_t = ModelKind::Softmax)]
    pub model: ModelKind,
    /// Softmax loss: `ce` (correct cross-entropy) or `seed-compat` (the notebook's double softmax).
    #[arg(long, value_enum, default_value_t = LossKind::Ce)]
    pub loss: LossKind,
    #[arg(long, value_enum, default_value_t = InitKind::Xavier)]
    pub init: InitKind,
}

impl ModelArgs {
    /// The model for the training data, checking that the training and the test targets suit it.
    pub fn model(&self, data: &Data) -> Result<Model> {
        let model = Model::for_data(self.model, self.loss, &data.train)?;
        data.check_test(&model)?;
        Ok(model)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeviceChoice {
    /// The GPU if one exists, else the CPU reference (with a notice).
    Auto,
    Gpu,
    Cpu,
}

/// Where a command writes its files.
#[derive(Debug, Clone, Args)]
pub struct OutArgs {
    /// Output directory [default: runs/<model>-<UTC time> for train, runs/<command>-… otherwise].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Write into --out even if it already holds files.
    #[arg(long)]
    pub force: bool,
}

impl OutArgs {
    /// The run directory: --out, or `runs/<prefix>-<UTC time>`.
    pub fn open(&self, prefix: &str) -> crate::Result<crate::report::files::OutDir> {
        let path = self.out.clone().unwrap_or_else(|| crate::report::files::default_run_dir(prefix));
        crate::report::files::OutDir::create(&path, self.force)
    }

    /// The run directory to continue (`--resume`): --out, which may hold the earlier files.
    pub fn reopen(&self, command: &str) -> crate::Result<crate::report::files::OutDir> {
        let path = self.out.clone().ok_or_else(|| {
            Error::usage(format!("--resume needs --out: the directory of the {command} run to continue"))
        })?;
        crate::report::files::OutDir::create(&path, true)
    }
}

/// The data, the model and where to compute them: the flags of every command that trains or
/// analyses one problem.
#[derive(Debug, Clone, Args)]
pub struct ProblemArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub device: DeviceArgs,
}

#[derive(Debug, Clone, Args)]
pub struct DeviceArgs {
    /// Where to compute.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    pub device: DeviceChoice,
    /// GPU backend: vulkan, metal, dx12 or gl [default: $WGPU_BACKEND, else the best available].
    #[arg(long, value_name = "NAME")]
    pub backend: Option<String>,
    /// Use the adapter whose name contains NAME [default: $WGPU_ADAPTER_NAME, else the best].
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
    /// Training kernels: `subgroup` (one subgroup of 8 lanes per run, no barriers; needs adapter
    /// subgroups), `fused` (one workgroup per run does every step), `unfused` (four dispatches per
    /// step over the whole device) or `auto` (subgroup on CPU adapters with subgroups of 8, unfused
    /// on other CPU adapters where the rule allows, fused on GPUs).
    #[arg(long, value_enum, default_value_t = KernelPath::Auto)]
    pub kernels: KernelPath,
}

impl DeviceArgs {
    pub fn request(&self) -> AdapterRequest {
        AdapterRequest { backend: self.backend.clone(), name: self.adapter.clone() }
    }

    /// Validate the flags before any work starts.
    pub fn check(&self) -> Result<()> {
        self.request().backends().map(|_| ())
    }

    /// The engine for `model` on `data` with `runs` runs; announces the adapter unless quiet.
    pub fn engine(&self, model: Model, data: &Data, runs: usize, quiet: bool) -> Result<Box<dyn Engine>> {
        let gpu = match self.device {
            DeviceChoice::Cpu => None,
            DeviceChoice::Gpu => Some(GpuContext::new(&self.request())?),
            DeviceChoice::Auto => match GpuContext::new(&self.request()) {
                Ok(ctx) => Some(ctx),
                // A request that names what does not exist is a mistake, not a reason to fall back.
                Err(e @ Error::Usage(_)) => return Err(e),
                Err(e) => {
                    eprintln!(
                        "steplens: {e}; running on the CPU reference instead (the f64 implementation the GPU \
                         kernels are tested against: exact, on one CPU thread, many times slower than an adapter)"
                    );
                    None
                }
            },
        };
        let engine: Box<dyn Engine> = match gpu {
            Some(ctx) => Box::new(GpuEngine::new(ctx, model, data, runs, self.kernels)?),
            None => Box::new(CpuEngine::new(model, data, runs)),
        };
        if !quiet {
            let i = engine.info();
            eprintln!("steplens: computing on {} ({}, {}, {})", i.adapter, i.backend, i.device_type, i.driver);
        }
        Ok(engine)
    }
}

pub use crate::interrupt::interrupted;

/// Parse the command line and run it; returns the process exit code.
pub fn main() -> i32 {
    use clap::{CommandFactory, FromArgMatches, parser::ValueSource};
    let parsed = Cli::command().try_get_matches().and_then(|m| Cli::from_arg_matches(&m).map(|cli| (cli, m)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            // Which of analyze's arguments the user gave (not defaults): --weights checks them
            // against the run's own settings.
            if let (Command::Analyze(a), Some(sub)) = (&mut cli.command, matches.subcommand_matches("analyze")) {
                a.explicit = sub
                    .ids()
                    .filter(|id| sub.value_source(id.as_str()) == Some(ValueSource::CommandLine))
                    .map(|id| id.to_string())
                    .collect();
            }
            cli
        }
        Err(e) => {
            use clap::error::ErrorKind::*;
            if matches!(e.kind(), DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand) {
                let _ = e.print();
                return if e.kind() == DisplayHelpOnMissingArgumentOrSubcommand { 2 } else { 0 };
            }
            // clap's first line is the sentence; the rest is advice about --help.
            let text = e.to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid arguments"));
            return 2;
        }
    };
    crate::interrupt::install();
    crate::report::progress::set_quiet(cli.quiet);
    match run(&cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

fn run(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Train(args) => train::run(args, cli.quiet),
        Command::Analyze(args) => analyze::run(args, cli.quiet),
        Command::Schedule(args) => schedule::run(args, cli.quiet),
        Command::Compare(args) => compare::run(args, cli.quiet),
        Command::Suite(args) => suite::run(args, cli.quiet),
        Command::Merge(args) => merge::run(args),
        Command::Validate(args) => validate::run(args, cli.quiet),
        Command::Bench(args) => bench::run(args, cli.quiet),
        Command::Adapters(args) => list_adapters(args),
    }
}

/// Every adapter of every backend (GL included), best first; `--backend`/`--adapter` narrow the
/// list.
fn list_adapters(args: &DeviceArgs) -> Result<()> {
    let request = args.request();
    let backends = request.backends()?;
    let name = args.adapter.clone().or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok()).map(|n| n.to_lowercase());
    let adapters: Vec<_> = crate::gpu::context::all_adapters(backends)
        .into_iter()
        .filter(|a| name.as_ref().is_none_or(|n| a.get_info().name.to_lowercase().contains(n)))
        .collect();
    if adapters.is_empty() {
        println!("no GPU adapters found for {}", crate::gpu::context::backends_name(backends));
        return Ok(());
    }
    let mut t = crate::report::table::Table::new(["adapter", "backend", "type", "driver"]);
    for a in adapters {
        let i = a.get_info();
        t.row(vec![
            i.name.clone(),
            crate::gpu::context::backend_name(i.backend).into(),
            crate::gpu::context::device_type_name(i.device_type).into(),
            format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        ]);
    }
    print!("{t}");
    Ok(())
}
