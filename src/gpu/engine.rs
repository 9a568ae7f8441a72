//! [`GpuEngine`]: the [`Engine`] on a wgpu device.

mod analysis;

use bytemuck::cast_slice;

use super::{
    context::GpuContext,
    kernel::{Recording, data_layout},
    kernels::{
        Dlogits, EpochParams, Evaluate, Logits, Perturb, Project, Residuals, SgdParams, SgdUpdate, Specialisation,
        TrainEpoch, WeightGrad,
    },
    subgroup::{self, SubgroupEvaluate, SubgroupTrain},
};
use crate::{
    Error, Result,
    data::{Data, Dataset, Features},
    engine::{
        Engine, EngineInfo, EpochOutcome, EpochPlan, Evaluation, GradBlock, MAX_BACKTRACKS, Metrics, PerturbedRequest,
        RowGroups, StepRule, StepStat, check_plan,
    },
    model::Model,
    shader_source::SubgroupSpec,
};

/// How an epoch is computed: the fused kernel (one workgroup per run does every step), the
/// unfused reference kernels (four dispatches per step, all in one pass, every step spread over
/// the whole device), the subgroup kernel (one subgroup of 8 lanes per run, no barriers), or
/// `auto`, chosen from what the adapter reports ([`GpuEngine::kernel_path`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KernelPath {
    /// On CPU adapters with subgroups of 8 (Vulkan lavapipe): the subgroup kernel where the sizes
    /// allow it; on other CPU adapters (GL llvmpipe): unfused where the step rule allows it; the
    /// fused kernel otherwise (real GPUs).
    #[default]
    Auto,
    Fused,
    Unfused,
    /// Needs an adapter with subgroups of at least 8 lanes.
    Subgroup,
}

/// A dataset resident on the device, bound as group 1.
pub struct GpuData {
    pub n: usize,
    pub bind: wgpu::BindGroup,
}

impl GpuData {
    pub fn upload(ctx: &GpuContext, layout: &wgpu::BindGroupLayout, set: &Dataset) -> Result<GpuData> {
        let words: Vec<u8> = match &set.features {
            // Four pixels per word, byte k of word w is pixel 4w + k: the bytes as they are.
            // Padded to 16 bytes: the subgroup kernel reads the words as `array<vec4<u32>>`.
            Features::U8(v) => {
                let mut b = v.clone();
                b.resize(v.len().next_multiple_of(16), 0);
                b
            }
            Features::F32(v) => {
                let mut b = cast_slice(v).to_vec();
                b.resize(b.len().next_multiple_of(16), 0);
                b
            }
        };
        let storage = wgpu::BufferUsages::STORAGE;
        let x = ctx.buffer_init(&format!("{} features", set.name), &words, storage)?;
        let y = ctx.buffer_init(&format!("{} targets", set.name), cast_slice(&set.targets), storage)?;
        let info = [set.n as u32, set.p as u32, 0, 0];
        let info = ctx.buffer_init("data info", cast_slice(&info), wgpu::BufferUsages::UNIFORM)?;
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("data"),
            layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: info.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: x.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: y.as_entire_binding() },
            ],
        });
        Ok(GpuData { n: set.n, bind })
    }
}

struct Kernels {
    logits: Logits,
    dlogits: Dlogits,
    weight_grad: WeightGrad,
    sgd: SgdUpdate,
    evaluate: Evaluate,
    train_epoch: TrainEpoch,
    perturb: Perturb,
    project: Project,
    /// The analysis' fused residuals, compiled on the first analysis (specialised per model).
    residuals: Option<Residuals>,
}

impl Kernels {
    fn new(ctx: &GpuContext, layout: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Kernels> {
        Ok(Kernels {
            logits: Logits::new(ctx, layout, spec)?,
            dlogits: Dlogits::new(ctx, layout, spec)?,
            weight_grad: WeightGrad::new(ctx, layout, spec)?,
            sgd: SgdUpdate::new(ctx, layout, spec)?,
            evaluate: Evaluate::new(ctx, layout, spec)?,
            train_epoch: TrainEpoch::new(ctx, layout, spec)?,
            perturb: Perturb::new(ctx, layout, spec)?,
            project: Project::new(ctx, layout, spec)?,
            residuals: None,
        })
    }
}

pub struct GpuEngine {
    ctx: GpuContext,
    model: Model,
    runs: usize,
    path: KernelPath,
    kernels: Kernels,
    /// The group-1 layout, for kernels compiled on first use.
    data_layout: wgpu::BindGroupLayout,
    x_u8: bool,
    /// The subgroup kernel, compiled on the first epoch that runs on it.
    subgroup: Option<SubgroupTrain>,
    /// The subgroup evaluation, compiled on the first evaluation that runs on it.
    subgroup_eval: Option<SubgroupEvaluate>,
    loop_cap: u64,
    train: GpuData,
    /// The training set on the host: the analysis forms its batches' sample Gram matrices
    /// from it in f64 (the device's f32 would not be exact).
    host_train: Dataset,
    test: Option<GpuData>,
    theta: wgpu::Buffer,
    grads: wgpu::Buffer,
    partials: wgpu::Buffer,
    totals_train: wgpu::Buffer,
    totals_test: wgpu::Buffer,
    last_gpu_ms: std::cell::Cell<Option<f64>>,
}

impl GpuEngine {
    /// Upload `data` once and prepare `runs` parameter sets (zeros until [`Engine::set_params`]).
    pub fn new(ctx: GpuContext, model: Model, data: &Data, runs: usize, path: KernelPath) -> Result<GpuEngine> {
        let x_u8 = matches!(data.train.features, Features::U8(_));
        if data.test.as_ref().is_some_and(|t| matches!(t.features, Features::U8(_)) != x_u8) {
            return Err(Error::usage("the train and test sets must have the same feature type"));
        }
        if path == KernelPath::Subgroup
            && let Some(why) = subgroup::adapter_unsupported(&ctx)
        {
            return Err(Error::usage(why));
        }
        let layout = data_layout(&ctx);
        let spec = Specialisation { model: model.loss_code() as u32, x_u8 };
        let kernels = Kernels::new(&ctx, &layout, &spec)?;
        let train = GpuData::upload(&ctx, &layout, &data.train)?;
        let test = data.test.as_ref().map(|t| GpuData::upload(&ctx, &layout, t)).transpose()?;
        let params_bytes = (runs * model.dim() * 4) as u64;
        let n_max = data.train.n.max(test.as_ref().map_or(0, |t| t.n));
        let theta = ctx.buffer("parameters", params_bytes)?;
        let grads = ctx.buffer("gradients", params_bytes)?;
        let partials = ctx.buffer("partial sums", Evaluate::partials_size(runs as u32, n_max))?;
        let totals_train = ctx.buffer("train totals", runs as u64 * 8)?;
        let totals_test = ctx.buffer("test totals", runs as u64 * 8)?;
        Ok(GpuEngine {
            ctx,
            model,
            runs,
            path,
            kernels,
            data_layout: layout,
            x_u8,
            subgroup: None,
            subgroup_eval: None,
            loop_cap: subgroup::LOOP_CAP,
            train,
            host_train: data.train.clone(),
            test,
            theta,
            grads,
            partials,
            totals_train,
            totals_test,
            last_gpu_ms: std::cell::Cell::new(None),
        })
    }

    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// The loop iterations per invocation the subgroup kernel's dispatches are sized for
    /// ([`subgroup::LOOP_CAP`] unless changed: tests lower it to split epochs into more dispatches,
    /// or raise it to see the driver's cap hit).
    pub fn set_loop_cap(&mut self, cap: u64) {
        self.loop_cap = cap;
    }

    /// The subgroup kernel's specialisation for this engine's model and data.
    fn subgroup_spec(&self) -> SubgroupSpec {
        SubgroupSpec {
            p: self.model.p as u32,
            classes: self.model.outputs as u32,
            model: self.model.loss_code() as u32,
            x_u8: self.x_u8,
        }
    }

    fn dims(&self) -> (u32, u32, u32) {
        (self.runs as u32, self.model.outputs as u32, self.model.dim() as u32)
    }

    /// Whether evaluations run on the subgroup evaluation kernel: with `--kernels auto` or
    /// `subgroup`, where `auto` would take the subgroup training kernel for this model (the
    /// adapter and the registers' budget; evaluation has no loop-cap concern).
    fn subgroup_evaluation(&self) -> bool {
        matches!(self.path, KernelPath::Auto | KernelPath::Subgroup)
            && subgroup::adapter_prefers(&self.ctx)
            && self.subgroup_spec().lane_weights() <= subgroup::MAX_LANE_WEIGHTS
    }

    /// Compile the subgroup evaluation if evaluations run on it and it is not compiled yet.
    fn prepare_evaluation(&mut self) -> Result<()> {
        if self.subgroup_evaluation() && self.subgroup_eval.is_none() {
            self.subgroup_eval = Some(SubgroupEvaluate::new(&self.ctx, &self.data_layout, self.subgroup_spec())?);
        }
        Ok(())
    }

    /// Record the whole-set evaluations of every run.
    fn record_evaluation<'a>(&'a self, rec: &mut Recording<'a>) -> Result<()> {
        let (runs, classes, dim) = self.dims();
        let k = &self.kernels.evaluate;
        if let Some(sub) = self.subgroup_eval.as_ref().filter(|_| self.subgroup_evaluation()) {
            let (train, test) = (&self.train, self.test.as_ref());
            sub.encode(rec, k, &train.bind, train.n, runs, &self.theta, &self.partials, &self.totals_train)?;
            if let Some(test) = test {
                sub.encode(rec, k, &test.bind, test.n, runs, &self.theta, &self.partials, &self.totals_test)?;
            }
            return Ok(());
        }
        k.encode(
            rec,
            &self.train.bind,
            self.train.n,
            runs,
            classes,
            dim,
            &self.theta,
            &self.partials,
            &self.totals_train,
        )?;
        if let Some(test) = &self.test {
            // The partial sums are reused: dispatches in one pass run in order.
            k.encode(rec, &test.bind, test.n, runs, classes, dim, &self.theta, &self.partials, &self.totals_test)?;
        }
        Ok(())
    }

    /// Record `rec`, then read back `ranges` and the evaluation totals in one submit. Where the
    /// adapter has timestamp queries the pass is timed ([`GpuEngine::last_gpu_ms`]).
    fn finish(&self, rec: Recording, extra: &[(&wgpu::Buffer, u64, u64)]) -> Result<(Vec<Vec<u8>>, Evaluation)> {
        let mut encoder = self.ctx.encoder();
        let timer = self.ctx.timestamps.then(|| {
            let set = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("pass time"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            });
            let resolved = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pass time"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            (set, resolved)
        });
        let writes = timer.as_ref().map(|(set, _)| wgpu::ComputePassTimestampWrites {
            query_set: set,
            beginning_of_pass_write_index: Some(0),
            end_of_pass_write_index: Some(1),
        });
        rec.encode(&self.ctx, &mut encoder, writes)?;
        if let Some((set, resolved)) = &timer {
            encoder.resolve_query_set(set, 0..2, resolved, 0);
        }
        let bytes = self.runs as u64 * 8;
        let mut ranges = extra.to_vec();
        ranges.push((&self.totals_train, 0, bytes));
        ranges.push((&self.totals_test, 0, bytes));
        if let Some((_, resolved)) = &timer {
            ranges.push((resolved, 0, 16));
        }
        let mut out = self.ctx.submit_and_read(encoder, &ranges)?;
        self.last_gpu_ms.set(timer.map(|_| {
            let raw = out.pop().unwrap_or_default();
            let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&raw);
            let period = self.ctx.queue.get_timestamp_period() as f64;
            ticks.get(1).zip(ticks.first()).map_or(f64::NAN, |(b, a)| b.wrapping_sub(*a) as f64 * period / 1e6)
        }));
        let test = out.pop().unwrap_or_default();
        let train = out.pop().unwrap_or_default();
        let eval = Evaluation {
            train: self.metrics(&train, self.train.n),
            test: self.test.as_ref().map(|t| self.metrics(&test, t.n)),
        };
        Ok((out, eval))
    }

    /// GPU time of the last epoch's or evaluation's pass, in ms, where the adapter has timestamps.
    pub fn last_gpu_ms(&self) -> Option<f64> {
        self.last_gpu_ms.get()
    }

    /// Means over the `n` samples from the device's sums.
    fn metrics(&self, totals: &[u8], n: usize) -> Vec<Metrics> {
        let v: &[f32] = cast_slice(totals);
        let n = n as f64;
        let acc = |c: f32| if self.model.has_accuracy() { c as f64 / n } else { f64::NAN };
        v.chunks(2).map(|t| Metrics { loss: t[0] as f64 / n, acc: acc(t[1]) }).collect()
    }

    fn record_unfused<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        plan: &EpochPlan,
        table: &'a wgpu::Buffer,
        lrs: &'a wgpu::Buffer,
        [logits, dz]: &'a [wgpu::Buffer; 2],
        losses: &'a wgpu::Buffer,
    ) -> Result<()> {
        let (runs, classes, dim) = self.dims();
        let tables = plan.tables() as u32;
        if plan.rule != StepRule::Table || (tables != 1 && tables != runs) {
            return Err(Error::usage(
                "the unfused kernels support table learning rates with one shared batch order or one per run",
            ));
        }
        let b = plan.batch_size as u32;
        let block = GradBlock { c0: 0, nrows: classes, with_bias: true, p: self.model.p as u32 };
        let k = &self.kernels;
        for s in 0..plan.steps as u32 {
            let rows = RowGroups {
                groups: tables,
                sets_per_group: runs / tables,
                rows: b,
                offset: s * b,
                stride: plan.steps as u32 * b,
            };
            let data = &self.train.bind;
            k.logits.encode(rec, data, rows, classes, dim, &self.theta, table, logits)?;
            let loss_at = (losses, s * runs * b);
            k.dlogits.encode(rec, data, rows, classes, 1.0 / b as f32, logits, table, dz, loss_at)?;
            k.weight_grad.encode(rec, data, rows, classes, block, dz, table, &self.grads)?;
            let prm = SgdParams { sets: runs, dim, lr_stride: plan.steps as u32, lr_index: s };
            k.sgd.encode(rec, prm, &self.theta, &self.grads, lrs)?;
        }
        Ok(())
    }
}

impl GpuEngine {
    /// The kernels `plan` runs on.
    fn path_for(&self, plan: &EpochPlan) -> KernelPath {
        self.kernel_path(plan.rule, plan.tables(), plan.steps, plan.batch_size)
    }

    /// The kernels an epoch runs on (never `Auto`), from what the adapter reports: on a CPU
    /// adapter whose subgroups are 8 lanes wide (Vulkan lavapipe) the subgroup kernel, when
    /// its registers hold the model's slice and one step fits the loop cap; on other CPU adapters
    /// (GL llvmpipe) the unfused kernels, which spread each step over every core, when the step
    /// rule is one they support and their per-step losses (steps × runs × batch) fit one storage
    /// binding; the fused kernel otherwise (real GPUs, where 8 lanes a run would leave them idle).
    pub fn kernel_path(&self, rule: StepRule, tables: usize, steps: usize, batch_size: usize) -> KernelPath {
        self.kernel_choice(rule, tables, steps, batch_size).0
    }

    /// [`GpuEngine::kernel_path`] and why, in words (for `bench` and the run's records).
    pub fn kernel_choice(
        &self,
        rule: StepRule,
        tables: usize,
        steps: usize,
        batch_size: usize,
    ) -> (KernelPath, String) {
        let losses_bytes = (steps * self.runs * batch_size * 4) as u64;
        let unfused_can = rule == StepRule::Table
            && (tables == 1 || tables == self.runs)
            && losses_bytes <= self.ctx.limits.max_storage_buffer_binding_size;
        let info = &self.ctx.info;
        let cpu = info.device_type == wgpu::DeviceType::Cpu;
        let sizes = subgroup::sizes_unsupported(&self.subgroup_spec(), rule, batch_size, MAX_BACKTRACKS);
        let subgroups = match self.ctx.subgroup_sizes() {
            Some((min, max)) => format!("subgroups of {min}..{max} lanes"),
            None => "no subgroups".into(),
        };
        let adapter = format!("{:?} adapter ({:?}) with {subgroups}", info.device_type, info.backend);
        match self.path {
            KernelPath::Auto if subgroup::adapter_prefers(&self.ctx) && sizes.is_none() => (
                KernelPath::Subgroup,
                format!("auto: {adapter}: one subgroup per run (two per subgroup in sweeps sharing batches)"),
            ),
            KernelPath::Auto if unfused_can && cpu => {
                let why = sizes.map_or(String::new(), |s| format!(" ({s})"));
                (KernelPath::Unfused, format!("auto: {adapter}: every step spread over the cores{why}"))
            }
            KernelPath::Auto => (KernelPath::Fused, format!("auto: {adapter}: one workgroup per run")),
            path => (path, "forced by --kernels".into()),
        }
    }
}

/// Step statistics from the unfused kernels' per-sample losses ([steps, runs, b]): the batch's
/// mean loss at each step (the gradient norm is not formed there: NaN).
fn unfused_step_stats(losses: &[f32], plan: &EpochPlan, runs: usize) -> Vec<StepStat> {
    let b = plan.batch_size;
    (0..runs)
        .flat_map(|r| (0..plan.steps).map(move |s| (r, s)))
        .map(|(r, s)| {
            let batch = &losses[(s * runs + r) * b..][..b];
            let loss = (batch.iter().map(|&l| l as f64).sum::<f64>() / b as f64) as f32;
            StepStat { loss, lr: plan.lrs[r * plan.steps + s], grad_sq: f32::NAN, trials: 0.0 }
        })
        .collect()
}

/// Steps of the fused kernel per dispatch. Mesa's lavapipe (22.3) silently ends a dispatch of
/// this kernel after a few dozen steps (45 at b = 64), so an epoch is split into dispatches of
/// 16 steps inside its one pass (BENCHMARKS.md has what a dispatch costs), fewer where the loop
/// cap of llvmpipe (65,535 iterations per invocation, all loops together) would end a dispatch of
/// 16 steps early: more classes and features mean more iterations a step.
/// `STEPLENS_STEPS_PER_DISPATCH` overrides it for experiments.
fn steps_per_dispatch(rule: StepRule, p: usize, classes: usize, batch: usize, cap: u64) -> usize {
    if let Some(v) = std::env::var("STEPLENS_STEPS_PER_DISPATCH").ok().and_then(|v| v.parse().ok()) {
        return usize::max(v, 1);
    }
    let per_step = fused_iterations_per_step(rule, p, classes, batch);
    // A fifth of the cap in reserve: the count is an estimate (measured: 45 steps end a dispatch
    // for two classes at p = 784, b = 64; this counts ~1,450 iterations a step there).
    let fits = (cap - cap / 5) / per_step.max(1);
    (fits as usize).clamp(1, 16)
}

/// Loop iterations one invocation of `train_epoch.wgsl` runs a step (each loop counted with one
/// extra pass for its exit test): the forward pass over class groups of 8 (features split in 4
/// parts), the loss, the gradient (features strided by the workgroup of 256, samples inner), the
/// norm and the update; Armijo's forward passes counted for 3 trials.
pub fn fused_iterations_per_step(rule: StepRule, p: usize, classes: usize, batch: usize) -> u64 {
    let (p, c, b) = (p as u64, classes as u64, batch as u64);
    let (chunks, n) = (b.div_ceil(64), b.min(64));
    let span = p.div_ceil(4);
    let forward: u64 = (0..c.div_ceil(8))
        .map(|g| {
            let nc = 8.min(c - 8 * g);
            span * (nc + 1) + span + 1 + 9 + nc * 6 + 1
        })
        .sum::<u64>()
        + 1;
    let loss = 5 * c + 20;
    let grad = c * (p.div_ceil(256) * (n + 1) + 1) + (n + 1) + 1;
    let dim = c * (p + 1);
    let norm_update = 2 * (dim.div_ceil(256) + 1) + 9;
    let trials = if matches!(rule, StepRule::Armijo { .. }) { 3 } else { 0 };
    chunks * (forward * (1 + trials) + loss * (1 + trials) + grad) + norm_update + 2
}

/// The fused and subgroup kernels' parameters for `plan` (every step, one dispatch).
pub fn epoch_params(plan: &EpochPlan, runs: u32, classes: u32, dim: u32) -> EpochParams {
    let mut prm = EpochParams {
        runs,
        steps: plan.steps as u32,
        batch: plan.batch_size as u32,
        classes,
        dim,
        tables: plan.tables() as u32,
        rule: plan.rule.code(),
        max_backtracks: MAX_BACKTRACKS,
        armijo_c: 0.0,
        armijo_beta: 1.0,
        armijo_growth: 1.0,
        max_lr: f32::MAX,
        polyak_c: 1.0,
        first_step: 0,
        count: plan.steps as u32,
        _pad0: 0,
    };
    match plan.rule {
        StepRule::Table => {}
        StepRule::Polyak { c, max_lr } => {
            prm.polyak_c = c;
            prm.max_lr = max_lr;
        }
        StepRule::Armijo { c, beta, growth, max_lr } => {
            prm.armijo_c = c;
            prm.armijo_beta = beta;
            prm.armijo_growth = growth;
            prm.max_lr = max_lr;
        }
    }
    prm
}

/// Checks shared by both engines: the plan's tables fit the runs and the data.
impl Engine for GpuEngine {
    fn kernel_choice(&self, rule: StepRule, steps: usize, batch_size: usize) -> Option<crate::engine::KernelChoice> {
        let (path, why) = GpuEngine::kernel_choice(self, rule, 1, steps, batch_size);
        let path = serde_json::to_value(path).ok()?.as_str()?.to_string();
        Some(crate::engine::KernelChoice { path, why })
    }

    fn info(&self) -> EngineInfo {
        self.ctx.engine_info()
    }

    fn model(&self) -> Model {
        self.model
    }

    fn runs(&self) -> usize {
        self.runs
    }

    fn set_params(&mut self, theta: &[f32]) -> Result<()> {
        if theta.len() != self.runs * self.model.dim() {
            return Err(Error::usage(format!(
                "expected {} parameters, got {}",
                self.runs * self.model.dim(),
                theta.len()
            )));
        }
        self.ctx.queue.write_buffer(&self.theta, 0, cast_slice(theta));
        self.ctx.check()
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let bytes = (self.runs * self.model.dim() * 4) as u64;
        let out = self.ctx.submit_and_read(self.ctx.encoder(), &[(&self.theta, 0, bytes)])?;
        Ok(cast_slice(&out[0]).to_vec())
    }

    fn evaluate(&mut self) -> Result<Evaluation> {
        self.prepare_evaluation()?;
        let mut rec = Recording::new(&self.ctx);
        self.record_evaluation(&mut rec)?;
        Ok(self.finish(rec, &[])?.1)
    }

    fn run_epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome> {
        check_plan(plan, self.runs, self.train.n)?;
        let (runs, classes, dim) = self.dims();
        let storage = wgpu::BufferUsages::STORAGE;
        let table = self.ctx.buffer_init("batches", cast_slice(plan.batches), storage)?;
        let lrs = self.ctx.buffer_init("learning rates", cast_slice(plan.lrs), storage)?;
        let path = self.path_for(plan);
        if plan.evaluate {
            self.prepare_evaluation()?;
        }
        let per_subgroup_dispatch = if path == KernelPath::Subgroup {
            let spec = self.subgroup_spec();
            if let Some(why) = subgroup::sizes_unsupported(&spec, plan.rule, plan.batch_size, MAX_BACKTRACKS) {
                return Err(Error::usage(format!("--kernels subgroup: {why}")));
            }
            let group = subgroup::runs_per_group(&spec, self.runs, plan.tables());
            if self.subgroup.as_ref().is_none_or(|k| k.spec != spec || k.runs_per_group != group) {
                self.subgroup = Some(SubgroupTrain::new(&self.ctx, &self.data_layout, spec, group)?);
            }
            subgroup::steps_per_dispatch(plan.rule, plan.batch_size, MAX_BACKTRACKS, self.loop_cap)
                .ok_or_else(|| Error::usage("the loop cap is below one step's iterations"))?
        } else {
            0
        };
        // What the host reads for the step statistics: the fused kernel's (loss, lr, |g|², trials)
        // per step, or the unfused kernels' per-sample losses of every step.
        let stats_bytes = match path {
            KernelPath::Unfused => plan.steps * self.runs * plan.batch_size * 4,
            _ => self.runs * plan.steps * 16,
        } as u64;
        let stats = self.ctx.buffer("step stats", stats_bytes)?;
        let scratch_size = (self.runs * plan.batch_size * self.model.outputs * 4) as u64;
        let scratch = match path {
            KernelPath::Unfused => {
                Some([self.ctx.buffer("logits", scratch_size)?, self.ctx.buffer("dlogits", scratch_size)?])
            }
            _ => None,
        };
        let mut rec = Recording::new(&self.ctx);
        match &scratch {
            None if path == KernelPath::Subgroup => {
                let kernel = self.subgroup.as_ref().ok_or_else(|| Error::gpu("the subgroup kernel is missing"))?;
                let prm = epoch_params(plan, runs, classes, dim);
                let data = &self.train.bind;
                kernel.encode(&mut rec, data, prm, per_subgroup_dispatch, &self.theta, &table, &lrs, &stats)?;
            }
            None => {
                let data = &self.train.bind;
                let per =
                    steps_per_dispatch(plan.rule, self.model.p, self.model.outputs, plan.batch_size, self.loop_cap)
                        .min(plan.steps);
                for first in (0..plan.steps).step_by(per) {
                    let mut prm = epoch_params(plan, runs, classes, dim);
                    prm.first_step = first as u32;
                    prm.count = per.min(plan.steps - first) as u32;
                    self.kernels.train_epoch.encode(
                        &mut rec,
                        data,
                        prm,
                        &self.theta,
                        &table,
                        &lrs,
                        &self.grads,
                        &stats,
                    )?;
                }
            }
            Some(scratch) => self.record_unfused(&mut rec, plan, &table, &lrs, scratch, &stats)?,
        }
        if plan.evaluate {
            self.record_evaluation(&mut rec)?;
        }
        let params_bytes = if plan.read_params { (self.runs * self.model.dim() * 4) as u64 } else { 0 };
        let (out, eval) = self.finish(rec, &[(&stats, 0, stats_bytes), (&self.theta, 0, params_bytes)])?;
        let params = plan.read_params.then(|| cast_slice::<u8, f32>(&out[1]).to_vec());
        let steps = match path {
            KernelPath::Unfused => unfused_step_stats(cast_slice(&out[0]), plan, self.runs),
            _ => {
                let raw: &[f32] = cast_slice(&out[0]);
                // The kernel writes trials + 1 for every step it ran: a zero means a skipped step.
                if let Some(i) = raw.chunks(4).position(|s| s[3] < 1.0) {
                    let hint = if path == KernelPath::Subgroup {
                        "the loop cap the dispatches were sized for is wrong for this driver"
                    } else {
                        "try STEPLENS_STEPS_PER_DISPATCH=4"
                    };
                    return Err(Error::gpu(format!(
                        "the GPU did not run step {} of {} of run {} (the driver ended the dispatch early); {hint}",
                        i % plan.steps + 1,
                        plan.steps,
                        i / plan.steps + 1
                    )));
                }
                raw.chunks(4).map(|s| StepStat { loss: s[0], lr: s[1], grad_sq: s[2], trials: s[3] - 1.0 }).collect()
            }
        };
        Ok(EpochOutcome { steps, eval, params })
    }

    fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        GpuEngine::perturbed_gradients(self, req)
    }

    fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>> {
        GpuEngine::gradients(self, sets, batch)
    }

    fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>> {
        GpuEngine::project(self, req, q)
    }

    fn perturbed_residuals(&mut self, req: &PerturbedRequest) -> Result<Vec<f64>> {
        Ok(GpuEngine::perturbed_residuals(self, req)?.iter().map(|&v| v as f64).collect())
    }

    fn train_set(&self) -> &Dataset {
        &self.host_train
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fused_dispatches_stay_under_llvmpipes_loop_cap() {
        let cap = crate::gpu::subgroup::LOOP_CAP;
        // Two classes at p = 784, b = 64: a dispatch measured to end after 45 steps; 16 fit.
        let two = fused_iterations_per_step(StepRule::Table, 784, 2, 64);
        assert!((1300..1600).contains(&two), "{two}");
        assert_eq!(steps_per_dispatch(StepRule::Table, 784, 2, 64, cap), 16);
        // Ten classes: 16 steps ended a dispatch at step 13 on lavapipe; the count cuts sooner.
        let ten = steps_per_dispatch(StepRule::Polyak { c: 0.5, max_lr: 1.0 }, 784, 10, 64, cap);
        assert!((1..=12).contains(&ten), "{ten}");
        let armijo = StepRule::Armijo { c: 0.1, beta: 0.9, growth: 1.0, max_lr: 1.0 };
        assert!(steps_per_dispatch(armijo, 784, 10, 64, cap) < ten);
    }
}
