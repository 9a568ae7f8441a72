//! The small interface the orchestrators (train, analyze, schedule, compare) are written against,
//! with two implementations: [`crate::gpu::GpuEngine`] (WGSL kernels through wgpu) and
//! [`crate::cpu::CpuEngine`] (the f64 reference).
//!
//! An engine holds the data (train and test sets) and the parameters of R independent runs of
//! one model. Work is requested in large units — a whole epoch, a chunk of analysed batches — so
//! that the GPU engine records it into one pass and one submit and reads back once.

use serde::Serialize;

use crate::{Error, Result, data::Dataset, model::Model};

/// The most Armijo backtracking steps per SGD step (0.9^200 ≈ 7e-10), on every engine.
pub const MAX_BACKTRACKS: u32 = 200;

/// How each step's learning rate is chosen.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepRule {
    /// The rate of step s of run r is `lrs[r * steps + s]`.
    Table,
    /// Stochastic Polyak step with f* = 0: h = min(f_B / (c ‖∇f_B‖²), max_lr).
    Polyak { c: f32, max_lr: f32 },
    /// Armijo backtracking (SLS): start from min(h_prev·growth, max_lr) (the plan's rate at the
    /// epoch's first step), shrink by `beta` until f_B(θ − h g) ≤ f_B(θ) − c h ‖g‖².
    Armijo { c: f32, beta: f32, growth: f32, max_lr: f32 },
}

impl StepRule {
    /// The rule's code in the epoch kernels' parameters.
    pub fn code(&self) -> u32 {
        use crate::shader_source::codes;
        match self {
            StepRule::Table => codes::RULE_TABLE,
            StepRule::Polyak { .. } => codes::RULE_POLYAK,
            StepRule::Armijo { .. } => codes::RULE_ARMIJO,
        }
    }
}

/// One epoch of SGD for every run.
#[derive(Debug, Clone)]
pub struct EpochPlan<'a> {
    /// Training-set indices: `tables` × steps × batch_size; run r uses table r % tables.
    pub batches: &'a [u32],
    pub batch_size: usize,
    pub steps: usize,
    /// runs × steps learning rates (see [`StepRule`]).
    pub lrs: &'a [f32],
    pub rule: StepRule,
    /// Read the parameters back with the epoch's results (same submit).
    pub read_params: bool,
    /// Evaluate the whole train and test sets at the end (else `EpochOutcome::eval` is empty).
    pub evaluate: bool,
}

impl EpochPlan<'_> {
    pub fn tables(&self) -> usize {
        self.batches.len() / (self.steps * self.batch_size).max(1)
    }
}

/// Loss and accuracy over a whole set (accuracy is NaN for regression).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    pub loss: f64,
    pub acc: f64,
}

/// Whole-set metrics of every run.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub train: Vec<Metrics>,
    /// `None` where there is no test set.
    pub test: Option<Vec<Metrics>>,
}

/// What one step did, per run: the batch loss before the step, the rate used, ‖∇f_B‖² (for
/// the adaptive rules), and the extra loss evaluations of Armijo's backtracking.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct StepStat {
    pub loss: f32,
    pub lr: f32,
    pub grad_sq: f32,
    pub trials: f32,
}

#[derive(Debug, Clone)]
pub struct EpochOutcome {
    /// runs × steps.
    pub steps: Vec<StepStat>,
    /// Metrics at the epoch's end.
    pub eval: Evaluation,
    /// runs × dim parameters at the epoch's end, when the plan asked for them.
    pub params: Option<Vec<f32>>,
}

/// How the analysis perturbs the parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum Perturbation {
    /// δ = scale · U[0, 1) on every parameter (the notebook's, with scale 0.01; not centred).
    Uniform { scale: f32 },
    /// δ = σ · N(0, 1), centred.
    Gaussian { sigma: f32 },
}

/// The parameters whose gradient the analysis looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Block {
    /// Row c of W (the notebook's `parameter_column`), p entries.
    Row(usize),
    /// Every parameter, biases included, in θ's layout.
    All,
}

impl Block {
    /// (first row, rows, with bias) of W this block covers.
    pub fn rows(&self, model: &Model) -> (usize, usize, bool) {
        match *self {
            Block::Row(c) => (c, 1, false),
            Block::All => (0, model.outputs, true),
        }
    }
    pub fn dim(&self, model: &Model) -> usize {
        let (_, rows, bias) = self.rows(model);
        rows * model.p + if bias { rows } else { 0 }
    }
}

/// K perturbed copies of θ for each of B batches, and their batch gradients.
#[derive(Debug, Clone)]
pub struct PerturbedRequest<'a> {
    /// The base parameters (one model).
    pub theta: &'a [f32],
    /// B × batch_size training-set indices.
    pub batches: &'a [u32],
    /// The batch numbers (the PRNG's counter word `a`), B of them.
    pub batch_ids: &'a [u32],
    pub batch_size: usize,
    /// K.
    pub points: usize,
    pub perturbation: Perturbation,
    pub seed: u64,
    /// PRNG stream: `prng::stream::PERTURB_SVD` or `PERTURB_PROJECT`.
    pub stream: u32,
    pub block: Block,
    /// Multiplies the gradient of the batch's mean loss: −b/n gives the notebook's g_i.
    pub grad_scale: f32,
}

impl PerturbedRequest<'_> {
    pub fn count(&self) -> usize {
        self.batch_ids.len()
    }
}

/// The kernels an engine resolved `--kernels` to, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KernelChoice {
    pub path: String,
    pub why: String,
}

/// Which implementation, and on what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct EngineInfo {
    /// `gpu` or `cpu`.
    pub device: String,
    pub adapter: String,
    pub backend: String,
    pub driver: String,
    pub device_type: String,
}

pub trait Engine {
    fn info(&self) -> EngineInfo;
    fn model(&self) -> Model;
    /// Number of independent runs held.
    fn runs(&self) -> usize;
    /// Replace the parameters of all runs (runs × dim).
    fn set_params(&mut self, theta: &[f32]) -> Result<()>;
    /// Read the parameters of all runs (runs × dim).
    fn params(&mut self) -> Result<Vec<f32>>;
    /// Whole train and test set metrics of every run.
    fn evaluate(&mut self) -> Result<Evaluation>;
    /// The kernels an epoch under `rule` with one batch table would run on, and why (for
    /// config.json); `None` where there is no choice (the CPU reference).
    fn kernel_choice(&self, _rule: StepRule, _steps: usize, _batch_size: usize) -> Option<KernelChoice> {
        None
    }
    /// The kernel the analysis' residuals take, and why (`None`: the f64 reference).
    fn analysis_kernel(&self) -> Option<KernelChoice> {
        None
    }
    /// Train one epoch and evaluate at its end.
    fn run_epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome>;
    /// The perturbed gradients G_i (B × K × block_dim), for the reference SVD path and tests.
    fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>>;
    /// Gradients of one batch's mean loss at each of S parameter vectors (`sets`, S × dim, θ's
    /// layout), S × dim. The finite-difference Hessian–vector products of the schedule use it.
    fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>>;
    /// Projection pairs (B × K × 2) of fresh perturbations (`req.stream`) onto given q (B × block_dim).
    fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>>;
    /// The per-sample residuals of the perturbed parameter sets, B × K × b × classes:
    /// r[g, k, i, c] = grad_scale/b · ∂loss_i/∂z_c at θ + δ_k (the dlogits of every class; the
    /// analysis keeps the block's rows). The block gradient is G = X̃ᵀR (X̃ the batch's features,
    /// with a ones column for the biases), so these b·classes numbers per set replace the
    /// block_dim of a gradient. f64 so that the CPU reference keeps its precision (the GPU's are
    /// its f32 values).
    fn perturbed_residuals(&mut self, req: &PerturbedRequest) -> Result<Vec<f64>>;
    /// The training set the engine holds (the analysis forms the batches' sample Gram matrices
    /// X̃X̃ᵀ from it on the host, in f64).
    fn train_set(&self) -> &Dataset;
}

// Row and block addressing shared by the kernels and their CPU twins.

/// Which rows each group of parameter sets reads: group g's rows are
/// `table[offset + g·stride ..][..rows]`.
#[derive(Debug, Clone, Copy)]
pub struct RowGroups {
    pub groups: u32,
    pub sets_per_group: u32,
    pub rows: u32,
    pub offset: u32,
    pub stride: u32,
}

impl RowGroups {
    pub fn sets(&self) -> u32 {
        self.groups * self.sets_per_group
    }
}

/// Rows c0 .. c0 + nrows of W (and optionally their biases): the block a gradient covers.
#[derive(Debug, Clone, Copy)]
pub struct GradBlock {
    pub c0: u32,
    pub nrows: u32,
    pub with_bias: bool,
    pub p: u32,
}

impl GradBlock {
    pub fn dim(&self) -> u32 {
        self.nrows * (self.p + self.with_bias as u32)
    }
}

impl RowGroups {
    /// The table entry holding sample i of parameter set `set`.
    pub fn entry(&self, set: u32, i: u32) -> usize {
        (self.offset + (set / self.sets_per_group) * self.stride + i) as usize
    }
}

impl Block {
    /// The block as rows of W for the gradient kernels.
    pub fn grad_block(&self, model: &Model) -> GradBlock {
        let (c0, nrows, with_bias) = self.rows(model);
        GradBlock { c0: c0 as u32, nrows: nrows as u32, with_bias, p: model.p as u32 }
    }
}

/// Checks of an epoch plan both engines make before any work.
pub fn check_plan(plan: &EpochPlan, runs: usize, n: usize) -> Result<()> {
    let per_table = plan.steps * plan.batch_size;
    if plan.steps == 0
        || plan.batch_size == 0
        || plan.batches.is_empty()
        || !plan.batches.len().is_multiple_of(per_table)
    {
        return Err(Error::usage("an epoch needs at least one step of a non-empty batch"));
    }
    if plan.lrs.len() != runs * plan.steps {
        return Err(Error::usage(format!("expected {} learning rates, got {}", runs * plan.steps, plan.lrs.len())));
    }
    check_rows(plan.batches, n)
}

fn check_rows(rows: &[u32], n: usize) -> Result<()> {
    if rows.iter().any(|&i| i as usize >= n) {
        return Err(Error::usage("a batch refers to a sample outside the training set"));
    }
    Ok(())
}

/// Checks of an analysis request both engines make before any work.
pub fn check_perturbed(req: &PerturbedRequest, model: &Model, n: usize) -> Result<()> {
    if req.points == 0 {
        return Err(Error::usage("the analysis needs at least one perturbation point"));
    }
    if req.theta.len() != model.dim() {
        return Err(Error::usage(format!("expected {} parameters, got {}", model.dim(), req.theta.len())));
    }
    if req.batch_size == 0 || req.batches.len() != req.count() * req.batch_size {
        return Err(Error::usage("every analysed batch needs batch_size training-set indices"));
    }
    check_rows(req.batches, n)?;
    if let Block::Row(c) = req.block
        && c >= model.outputs
    {
        return Err(Error::usage(format!("--block row:{c} does not exist: the model has {} row(s)", model.outputs)));
    }
    Ok(())
}

/// Checks of a gradient request both engines make before any work.
pub fn check_gradients(sets: &[f32], batch: &[u32], model: &Model, n: usize) -> Result<()> {
    if sets.is_empty() || !sets.len().is_multiple_of(model.dim()) {
        return Err(Error::usage(format!(
            "expected parameter sets of {} values each, got {}",
            model.dim(),
            sets.len()
        )));
    }
    if batch.is_empty() {
        return Err(Error::usage("a gradient needs a non-empty batch"));
    }
    check_rows(batch, n)
}

impl std::str::FromStr for Perturbation {
    type Err = Error;

    /// `uniform:SCALE` or `gaussian:SIGMA`, a positive finite number.
    fn from_str(text: &str) -> Result<Perturbation> {
        let bad =
            || Error::usage(format!("--perturb `{text}`: use uniform:SCALE or gaussian:SIGMA with a positive number"));
        let (kind, v) = text.split_once(':').ok_or_else(bad)?;
        let v: f32 = v.trim().parse().map_err(|_| bad())?;
        if !(v.is_finite() && v > 0.0) {
            return Err(bad());
        }
        match kind.trim() {
            "uniform" => Ok(Perturbation::Uniform { scale: v }),
            "gaussian" => Ok(Perturbation::Gaussian { sigma: v }),
            _ => Err(bad()),
        }
    }
}

impl std::str::FromStr for Block {
    type Err = Error;

    /// `row:c` (c = 0, 1, …) or `all`.
    fn from_str(text: &str) -> Result<Block> {
        match text.trim() {
            "all" => Ok(Block::All),
            t => t
                .strip_prefix("row:")
                .and_then(|c| c.trim().parse().ok())
                .map(Block::Row)
                .ok_or_else(|| Error::usage(format!("--block `{text}`: use row:c (c = 0, 1, …) or all"))),
        }
    }
}
