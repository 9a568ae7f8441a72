//! Argument groups several commands share, and what they resolve to: the run's settings
//! (epochs, batch size, seed, batch order), the procedure's knobs, and the setup every
//! training command starts from (data, model, batching, the config record).

use clap::Args;

use super::ProblemArgs;
use crate::{
    Error, Result,
    analysis::{Settings, SvdMethod},
    data::{Data, Standardization},
    engine::EngineInfo,
    engine::{Block, Perturbation},
    local::{Aggregate, Procedure, Tau},
    model::Model,
    report::record::{DataSummary, RunRecord},
    train::Batching,
};

/// How long and in what order a run trains.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 6, value_name = "N")]
    pub epochs: usize,
    #[arg(long, default_value_t = 64, value_name = "B")]
    pub batch_size: usize,
    /// Seed of the initialisation and of the batch order (and of the analysis's perturbations).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Draw a new batch permutation every epoch (the notebook shuffles once).
    #[arg(long)]
    pub reshuffle: bool,
}

/// What a training command starts from.
pub struct Setup {
    pub data: Data,
    /// What `--standardize` did (None without it).
    pub standardization: Option<Standardization>,
    pub model: Model,
    pub batching: Batching,
}

impl RunArgs {
    /// Checks the counts before any work.
    pub fn check(&self) -> Result<()> {
        if self.epochs < 1 {
            return Err(Error::usage("--epochs must be at least 1"));
        }
        if self.batch_size < 1 {
            return Err(Error::usage("--batch-size must be at least 1"));
        }
        Ok(())
    }

    /// Loads the data and resolves the model and batching.
    pub fn setup(&self, problem: &ProblemArgs) -> Result<Setup> {
        self.check()?;
        let (data, standardization) = problem.data.load_for(problem.model.model)?;
        let model = problem.model.model(&data)?;
        let batching = Batching::new(data.train.n, self.batch_size, self.seed, self.reshuffle)?;
        Ok(Setup { data, standardization, model, batching })
    }

    /// The config record every command writes, before its own details.
    pub fn record(&self, command: &str, setup: &Setup, problem: &ProblemArgs, engine: Option<EngineInfo>) -> RunRecord {
        RunRecord {
            command: command.to_string(),
            version: env!("CARGO_PKG_VERSION"),
            model: setup.model,
            init: Some(problem.model.init),
            data: DataSummary::of(&setup.data),
            standardization: setup.standardization.clone(),
            epochs: Some(self.epochs),
            batch_size: self.batch_size,
            steps_per_epoch: Some(setup.batching.steps()),
            seed: self.seed,
            reshuffle: Some(self.reshuffle),
            kernels: problem.device.kernels,
            kernels_resolved: None,
            engine,
            details: serde_json::Map::new(),
        }
    }
}

/// The knobs of the accurate-local-problem procedures (`schedule`, `compare`).
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
    /// The largest rate a procedure or adaptive rule may choose (and the fallback where τ = inf).
    #[arg(long, default_value_t = 10.0, value_name = "H")]
    pub max_lr: f64,
    /// Batches analysed per estimate [default: all for `schedule`, 40 for `compare`].
    #[arg(long, value_name = "S")]
    pub sample: Option<usize>,
}

impl ProcedureArgs {
    pub fn procedure(&self) -> Result<Procedure> {
        if !(self.max_lr.is_finite() && self.max_lr > 0.0 && self.max_lr <= f32::MAX as f64) {
            return Err(Error::usage(format!(
                "--max-lr must be a positive number within f32's range, got {}",
                self.max_lr
            )));
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

/// The analysis knobs shared by `analyze` and `schedule`.
#[derive(Debug, Clone, Args)]
pub struct AnalysisArgs {
    /// Perturbations per batch (K).
    #[arg(long, default_value_t = 100, value_name = "K")]
    pub points: usize,
    /// `uniform:0.01` (the notebook's δ = 0.01·U[0,1), not centred) or `gaussian:σ`.
    #[arg(long, default_value = "uniform:0.01", value_name = "SPEC")]
    pub perturb: String,
    /// `row:c` (row c of W, the notebook's parameter_column) or `all` (every parameter).
    #[arg(long, default_value = "row:0", value_name = "BLOCK")]
    pub block: String,
    /// Subtract the mean gradient before the SVD: q becomes the top Hessian direction.
    #[arg(long)]
    pub center: bool,
    /// `residual` (per-sample residuals from the device, σ and q of G = X̃ᵀR exactly in f64 on
    /// the host) or `full` (read G back, nalgebra SVD: the reference).
    #[arg(long, value_enum, default_value_t = SvdMethod::Residual)]
    pub svd: SvdMethod,
}

/// The fewest perturbations that give a fit with a residual: a line through two points fits
/// exactly (R² = 1 whatever the data), which would defeat `--min-r2`.
pub const MIN_POINTS: usize = 3;
/// The most perturbations per batch: each batch's K × K Gram matrix is decomposed on the host,
/// which grows as K³ (K = 1,000 takes about a second a batch on one core).
pub const MAX_POINTS: usize = 1000;

/// `--points` within [`MIN_POINTS`]..=[`MAX_POINTS`], with the reason when not.
pub fn check_points(points: usize) -> Result<()> {
    if points < MIN_POINTS {
        return Err(Error::usage(format!(
            "--points {points} is too few: the line fit needs at least {MIN_POINTS} perturbations to mean \
             anything (through 2 points any line fits with R² = 1)"
        )));
    }
    if points > MAX_POINTS {
        return Err(Error::usage(format!(
            "--points {points} is too many: at most {MAX_POINTS} (each batch's K × K Gram matrix is \
             decomposed on the host, in time growing as K³)"
        )));
    }
    Ok(())
}

impl AnalysisArgs {
    pub fn settings(&self, model: &Model, seed: u64) -> Result<Settings> {
        check_points(self.points)?;
        let block: Block = self.block.parse()?;
        if let Block::Row(c) = block
            && c >= model.outputs
        {
            return Err(Error::usage(format!(
                "--block row:{c} does not exist: the model has {} row(s) (row:0 .. row:{})",
                model.outputs,
                model.outputs - 1
            )));
        }
        Ok(Settings {
            points: self.points,
            perturbation: self.perturb.parse()?,
            block,
            seed,
            center: self.center,
            method: self.svd,
        })
    }

    /// Validate what can be validated before the data is loaded.
    pub fn check(&self) -> Result<()> {
        check_points(self.points)?;
        self.perturb.parse::<Perturbation>()?;
        self.block.parse::<Block>().map(|_| ())
    }
}

/// Sharding a run into jobs that separate processes do (`--shard`) and resuming one.
#[derive(Debug, Clone, Args)]
pub struct ShardArgs {
    /// Run shard K of N: the jobs whose index ≡ K−1 (mod N), into a partial run directory that
    /// `steplens merge` combines (docs/cluster.md lists each command's jobs).
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Continue an interrupted run or shard in --out: keep its finished jobs, do the rest.
    #[arg(long)]
    pub resume: bool,
}

impl ShardArgs {
    /// The shard asked for; the whole run (1/1) when none is.
    pub fn shard(&self) -> Result<crate::shard::Shard> {
        match &self.shard {
            Some(text) => text.parse(),
            None => Ok(crate::shard::Shard { shard: 1, of: 1 }),
        }
    }

    /// Whether the run is cut into jobs that are kept as they finish.
    pub fn by_jobs(&self) -> bool {
        self.shard.is_some() || self.resume
    }

    /// The run directory: --out reopened to continue (`--resume`), or a new one.
    pub fn out_dir(&self, output: &super::OutArgs, command: &str) -> Result<crate::report::files::OutDir> {
        if self.resume { output.reopen(command) } else { output.open(command) }
    }
}
