//! One epoch of every run: the choice of kernels (fused, unfused, subgroup), the split of an
//! epoch into dispatches a driver's loop cap allows, the parameters the epoch kernels read, and
//! the step statistics read back.

use bytemuck::cast_slice;

use super::GpuEngine;
use crate::{
    Error, Result,
    engine::{EpochOutcome, EpochPlan, GradBlock, MAX_BACKTRACKS, RowGroups, StepRule, StepStat, check_plan},
    gpu::{
        kernel::Recording,
        kernels::{BatchTable, EpochBindings, EpochParams, Rows, SgdParams},
        subgroup::{self, SubgroupTrain},
    },
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

impl GpuEngine {
    /// Run `plan` on every run: one pass, one submit, one read-back.
    pub(super) fn epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome> {
        check_plan(plan, self.runs, self.train.n)?;
        let (runs, classes, dim) = self.dims();
        let storage = wgpu::BufferUsages::STORAGE;
        let lrs = self.ctx.buffer_init("learning rates", cast_slice(plan.lrs), storage)?;
        let path = self.path_for(plan);
        // The subgroup kernel reads the table, with each row's target, as texels; the others a buffer.
        let table = match path {
            KernelPath::Subgroup => BatchTable::texels(&self.ctx, plan.batches, &self.host_train.targets)?,
            _ => BatchTable::buffer(&self.ctx, plan.batches)?,
        };
        if plan.evaluate {
            self.prepare_evaluation()?;
        }
        let per_subgroup_dispatch = if path == KernelPath::Subgroup {
            let spec = self.subgroup_spec();
            if let Some(why) = self.subgroup_unsupported(plan.rule, plan.batch_size) {
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
        let prm = epoch_params(plan, runs, classes, dim);
        let bufs =
            EpochBindings { data: &self.train.bind, theta: &self.theta, batches: &table, lrs: &lrs, stats: &stats };
        match &scratch {
            None if path == KernelPath::Subgroup => {
                let kernel = self.subgroup.as_ref().ok_or_else(|| Error::gpu("the subgroup kernel is missing"))?;
                kernel.encode(&mut rec, (prm, per_subgroup_dispatch), bufs)?;
            }
            None => {
                let per =
                    steps_per_dispatch(plan.rule, self.model.p, self.model.outputs, plan.batch_size, self.loop_cap)
                        .min(plan.steps);
                self.train_epoch_kernel()?.encode(&mut rec, (prm, per), bufs, &self.grads)?;
            }
            Some(scratch) => self.record_unfused(&mut rec, plan, table.as_buffer()?, &lrs, scratch, &stats)?,
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
        let (logits_k, dlogits_k, weight_grad_k, sgd_k) =
            (self.logits_kernel()?, self.dlogits_kernel()?, self.weight_grad_kernel()?, self.sgd_kernel()?);
        for s in 0..plan.steps as u32 {
            let rows = RowGroups {
                groups: tables,
                sets_per_group: runs / tables,
                rows: b,
                offset: s * b,
                stride: plan.steps as u32 * b,
            };
            let at = Rows { data: &self.train.bind, table, groups: rows, classes };
            logits_k.encode(rec, at, dim, &self.theta, logits)?;
            dlogits_k.encode(rec, at, 1.0 / b as f32, (logits, dz), (losses, s * runs * b))?;
            weight_grad_k.encode(rec, at, block, dz, &self.grads)?;
            let prm = SgdParams { sets: runs, dim, lr_stride: plan.steps as u32, lr_index: s };
            sgd_k.encode(rec, prm, &self.theta, &self.grads, lrs)?;
        }
        Ok(())
    }

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

    /// Why the subgroup training kernel cannot train this engine's model and data with `rule` at
    /// `batch_size`, if it cannot.
    fn subgroup_unsupported(&self, rule: StepRule, batch_size: usize) -> Option<String> {
        subgroup::sizes_unsupported(&self.subgroup_spec(), rule, batch_size, MAX_BACKTRACKS)
            .or_else(|| (!self.textured()).then(|| "the dataset is larger than this adapter's 2-D textures".into()))
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
        let sizes = self.subgroup_unsupported(rule, batch_size);
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
/// extra pass for its exit test): per chunk of samples the forward pass over class groups
/// (features split in parts), the loss, the gradient (features strided by the workgroup, samples
/// inner); the norm and the update; Armijo's forward passes counted for 3 trials. The kernel's
/// shape comes from `shader_source::codes`, as the kernel's does.
fn fused_iterations_per_step(rule: StepRule, p: usize, classes: usize, batch: usize) -> u64 {
    use crate::shader_source::codes::{EPOCH_CHUNK, EPOCH_CLASS_GROUP, EPOCH_PARTS, WG_WIDE};
    let (chunk, parts, cg, wg) = (EPOCH_CHUNK as u64, EPOCH_PARTS as u64, EPOCH_CLASS_GROUP as u64, WG_WIDE as u64);
    let (p, c, b) = (p as u64, classes as u64, batch as u64);
    let (chunks, n) = (b.div_ceil(chunk), b.min(chunk));
    let span = p.div_ceil(parts);
    let forward: u64 = (0..c.div_ceil(cg))
        .map(|g| {
            let nc = cg.min(c - cg * g);
            span * (nc + 1) + span + 1 + 9 + nc * 6 + 1
        })
        .sum::<u64>()
        + 1;
    let loss = 5 * c + 20;
    let grad = c * (p.div_ceil(wg) * (n + 1) + 1) + (n + 1) + 1;
    let dim = c * (p + 1);
    let norm_update = 2 * (dim.div_ceil(wg) + 1) + 9;
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
