//! `steplens suite`: every method of `compare` on the benchmark members over seeds; writes
//! suite.csv, leaderboard.md and suite.png/.svg.

use std::{path::PathBuf, time::Instant};

use clap::Args;
use serde::Serialize;

use super::{DeviceArgs, OutArgs};
use crate::{
    Error, Result,
    analysis::{Settings, SvdMethod},
    data::Source,
    engine::{Block, Perturbation},
    local::{Aggregate, LocalConfig, Mode, Procedure, Tau},
    model::ModelKind,
    procedure::parse_procedures,
    rates::parse_grid,
    report::{
        comparison::{SUMMARY_HEADER, summary_cells},
        files::OutDir,
        plot,
    },
    suite::{
        Member, MemberResult, SMALL_BATCH, SMALL_EPOCHS, SuiteSettings, default_members, leaderboard_markdown,
        run_member,
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
        analysis: Settings {
            points: 100,
            perturbation: Perturbation::Uniform { scale: 0.01 },
            block: Block::Row(0),
            seed: 0,
            center: false,
            method: SvdMethod::Gram,
        },
        mode: Mode::Epoch,
        sample: Some(40),
    }
}

/// The rate bound of SPS, Armijo and the procedures: SPS's usual cap (Loizou et al. 2021), kept
/// for every method so that none is bounded differently.
const MAX_LR: f64 = 10.0;

impl SuiteArgs {
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

#[derive(Serialize)]
struct SuiteRecord<'a> {
    command: &'static str,
    version: &'static str,
    members: Vec<String>,
    seeds: &'a [u64],
    grid: &'a [f64],
    procedures: Vec<&'static str>,
    local: &'a LocalConfig,
    max_lr: f64,
    kernels: crate::gpu::KernelPath,
}

pub fn run(args: &SuiteArgs, quiet: bool) -> Result<()> {
    args.device.check()?;
    if args.seeds < 1 {
        return Err(Error::usage("--seeds must be at least 1"));
    }
    if args.epochs == Some(0) || args.batch_size == Some(0) {
        return Err(Error::usage("--epochs and --batch-size must be at least 1"));
    }
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
    let out = args.output.open("suite")?;
    let record = SuiteRecord {
        command: "suite",
        version: env!("CARGO_PKG_VERSION"),
        members: members.iter().map(Member::name).collect(),
        seeds: &settings.seeds,
        grid: &settings.grid,
        procedures: settings.procedures.iter().map(|p| p.row_name()).collect(),
        local: &settings.local,
        max_lr: MAX_LR,
        kernels: args.device.kernels,
    };
    out.write_json("config.json", &record)?;
    let mut make = |model, data: &crate::data::Data, runs| args.device.engine(model, data, runs, true);
    let mut results: Vec<MemberResult> = Vec::new();
    for member in &members {
        let started = Instant::now();
        match run_member(member, &settings, &mut make) {
            Ok(r) => results.push(r),
            Err(Error::Interrupted { .. }) if !results.is_empty() => {
                return Err(Error::Stopped {
                    done: format!(
                        "{} of {} members, written to {}",
                        results.len(),
                        members.len(),
                        out.path().display()
                    ),
                });
            }
            Err(e) => return Err(e),
        }
        if !quiet {
            eprintln!("steplens: {} done in {:.1} s", member.name(), started.elapsed().as_secs_f64());
        }
        write_suite(&out, &results, args.seeds)?;
    }
    print!("{}", leaderboard_markdown(&results, args.seeds, "## Leaderboard"));
    println!("wrote {}", out.path().display());
    Ok(())
}

/// suite.csv, suite.json, leaderboard.md and the picture, after every member.
fn write_suite(out: &OutDir, results: &[MemberResult], seeds: usize) -> Result<()> {
    let rows = results.iter().flat_map(|m| m.summaries.iter().map(|s| summary_cells(&m.dataset, m.model, s)));
    out.write_csv("suite.csv", SUMMARY_HEADER, rows)?;
    out.write_json("suite.json", &results)?;
    out.write_text("leaderboard.md", &leaderboard_markdown(results, seeds, "# steplens suite: leaderboard"))?;
    let chart = crate::report::comparison::suite_chart(results);
    plot::save(&chart, Some(&out.file("suite.png")), Some(&out.file("suite.svg")))
}
