//! [`GpuEngine`]: the [`Engine`] on a wgpu device.

use bytemuck::cast_slice;

use super::{
    context::GpuContext,
    kernel::Recording,
    kernels::{
        Center, Combine, Dlogits, Evaluate, Gram, Logits, Perturb, PerturbParams, Project, ProjectParams, SgdUpdate,
        Specialisation, TrainEpoch, WeightGrad,
    },
    subgroup::{SubgroupEvaluate, SubgroupTrain},
};
use crate::{
    Error, Result,
    engine::{
        AnalysisChunk, DirectionFn, Engine, EngineInfo, EpochOutcome, EpochPlan, Evaluation, PerturbedRequest,
        RowGroups, StepRule, check_gradients, check_perturbed,
    },
    model::Model,
};

mod buffers;
mod epoch;
mod evaluation;

pub use buffers::GpuData;
pub use epoch::{KernelPath, epoch_params};

struct Kernels {
    logits: Logits,
    dlogits: Dlogits,
    weight_grad: WeightGrad,
    sgd: SgdUpdate,
    evaluate: Evaluate,
    train_epoch: TrainEpoch,
    perturb: Perturb,
    gram: Gram,
    center: Center,
    combine: Combine,
    project: Project,
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
            gram: Gram::new(ctx, layout, spec)?,
            center: Center::new(ctx, layout, spec)?,
            combine: Combine::new(ctx, layout, spec)?,
            project: Project::new(ctx, layout, spec)?,
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
    test: Option<GpuData>,
    theta: wgpu::Buffer,
    grads: wgpu::Buffer,
    partials: wgpu::Buffer,
    totals_train: wgpu::Buffer,
    totals_test: wgpu::Buffer,
    last_gpu_ms: std::cell::Cell<Option<f64>>,
}

/// The interface the driver and the analysis use; training and evaluation live in `epoch` and
/// `evaluation`, the device state in `buffers`.
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
        self.evaluation()
    }

    fn run_epoch(&mut self, plan: &EpochPlan) -> Result<EpochOutcome> {
        self.epoch(plan)
    }

    fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for part in self.split(req)? {
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &part)?;
            let mut rec = Recording::new(&self.ctx);
            self.record_gradients(&mut rec, &part, &bufs)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let g = self.ctx.submit_and_read(enc, &[(&bufs.grads, 0, bufs.grads_bytes)])?;
            out.extend_from_slice(cast_slice(&g[0]));
        }
        Ok(out)
    }

    fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>> {
        check_gradients(sets, batch, &self.model, self.train.n)?;
        let dim = self.model.dim();
        // One group of S parameter sets on one batch: the analysis's buffers, filled with the sets.
        let req = PerturbedRequest {
            theta: &sets[..dim],
            batches: batch,
            batch_ids: &[0],
            batch_size: batch.len(),
            points: sets.len() / dim,
            perturbation: crate::engine::Perturbation::Uniform { scale: 0.0 },
            seed: 0,
            stream: 0,
            block: crate::engine::Block::All,
            grad_scale: 1.0,
        };
        let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &req)?;
        self.ctx.queue.write_buffer(&bufs.perturbed, 0, cast_slice(sets));
        let mut rec = Recording::new(&self.ctx);
        self.record_set_gradients(&mut rec, &req, &bufs)?;
        let mut enc = self.ctx.encoder();
        rec.encode(&self.ctx, &mut enc, None)?;
        let g = self.ctx.submit_and_read(enc, &[(&bufs.grads, 0, bufs.grads_bytes)])?;
        Ok(cast_slice(&g[0]).to_vec())
    }

    fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>> {
        let bd = req.block.dim(&self.model);
        if q.len() != req.count() * bd {
            return Err(Error::usage(format!("expected {} direction entries, got {}", req.count() * bd, q.len())));
        }
        let mut out = Vec::new();
        let mut at = 0;
        for part in self.split(req)? {
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &part)?;
            let qb = self.ctx.buffer_init(
                "q",
                cast_slice(&q[at * bd..(at + part.count()) * bd]),
                wgpu::BufferUsages::STORAGE,
            )?;
            at += part.count();
            let mut rec = Recording::new(&self.ctx);
            self.record_gradients(&mut rec, &part, &bufs)?;
            self.record_projection(&mut rec, &part, &qb, &bufs)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let p = self.ctx.submit_and_read(enc, &[(&bufs.pairs, 0, bufs.pairs_bytes)])?;
            out.extend_from_slice(cast_slice(&p[0]));
        }
        Ok(out)
    }

    fn analyze(
        &mut self,
        svd: &PerturbedRequest,
        project: &PerturbedRequest,
        center: bool,
        direction: &mut DirectionFn,
    ) -> Result<AnalysisChunk> {
        if svd.batch_ids != project.batch_ids || svd.points != project.points || svd.block != project.block {
            return Err(Error::usage("the SVD and projection requests must cover the same batches, points and block"));
        }
        let (k, bd) = (svd.points as u32, svd.block.dim(&self.model) as u32);
        let mut chunk = AnalysisChunk { q: Vec::new(), pairs: Vec::new() };
        for (part, proj) in self.split(svd)?.into_iter().zip(self.split(project)?) {
            let groups = part.count() as u32;
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &part)?;
            let gram_bytes = (groups * k * k * 4) as u64;
            let gram = self.ctx.buffer("gram", gram_bytes)?;
            let centered = self.ctx.buffer("centred gram", gram_bytes)?;
            let mut rec = Recording::new(&self.ctx);
            self.record_gradients(&mut rec, &part, &bufs)?;
            self.kernels.gram.encode(&mut rec, groups, k, bd, &bufs.grads, &gram)?;
            if center {
                self.kernels.center.encode(&mut rec, groups, k, bd, &bufs.grads)?;
                self.kernels.gram.encode(&mut rec, groups, k, bd, &bufs.grads, &centered)?;
            }
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let grams = self
                .ctx
                .submit_and_read(enc, &[(&gram, 0, gram_bytes), (&centered, 0, if center { gram_bytes } else { 0 })])?;
            let coefs = direction(cast_slice(&grams[0]), center.then(|| cast_slice(&grams[1])))?;
            if coefs.len() != (groups * k) as usize {
                return Err(Error::Runtime("the direction function returned the wrong number of coefficients".into()));
            }
            let cb = self.ctx.buffer_init("coefficients", cast_slice(&coefs), wgpu::BufferUsages::STORAGE)?;
            let qb = self.ctx.buffer("q", (groups * bd * 4) as u64)?;
            let mut rec = Recording::new(&self.ctx);
            // q = G c first; the projection's fresh gradients then reuse G's buffer (dispatches run in order).
            self.kernels.combine.encode(&mut rec, groups, k, bd, &bufs.grads, &cb, &qb)?;
            self.record_gradients(&mut rec, &proj, &bufs)?;
            self.record_projection(&mut rec, &proj, &qb, &bufs)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let out = self
                .ctx
                .submit_and_read(enc, &[(&qb, 0, (groups * bd * 4) as u64), (&bufs.pairs, 0, bufs.pairs_bytes)])?;
            chunk.q.extend_from_slice(cast_slice(&out[0]));
            chunk.pairs.extend_from_slice(cast_slice(&out[1]));
        }
        Ok(chunk)
    }
}

/// Device buffers of one chunk of the analysis.
struct AnalysisBuffers {
    theta: wgpu::Buffer,
    ids: wgpu::Buffer,
    table: wgpu::Buffer,
    perturbed: wgpu::Buffer,
    logits: wgpu::Buffer,
    dlogits: wgpu::Buffer,
    losses: wgpu::Buffer,
    grads: wgpu::Buffer,
    grads_bytes: u64,
    pairs: wgpu::Buffer,
    pairs_bytes: u64,
}

impl AnalysisBuffers {
    fn new(ctx: &GpuContext, model: &Model, req: &PerturbedRequest) -> Result<AnalysisBuffers> {
        let sets = (req.count() * req.points) as u64;
        let rows = sets * req.batch_size as u64;
        let grads_bytes = sets * req.block.dim(model) as u64 * 4;
        let storage = wgpu::BufferUsages::STORAGE;
        Ok(AnalysisBuffers {
            theta: ctx.buffer_init("base parameters", cast_slice(req.theta), storage)?,
            ids: ctx.buffer_init("batch ids", cast_slice(req.batch_ids), storage)?,
            table: ctx.buffer_init("batch rows", cast_slice(req.batches), storage)?,
            perturbed: ctx.buffer("perturbed parameters", sets * model.dim() as u64 * 4)?,
            logits: ctx.buffer("logits", rows * model.outputs as u64 * 4)?,
            dlogits: ctx.buffer("dlogits", rows * model.outputs as u64 * 4)?,
            losses: ctx.buffer("losses", rows * 4)?,
            grads: ctx.buffer("perturbed gradients", grads_bytes)?,
            grads_bytes,
            pairs: ctx.buffer("projection pairs", sets * 8)?,
            pairs_bytes: sets * 8,
        })
    }
}

impl GpuEngine {
    /// The request in parts whose buffers fit the device's binding and dispatch limits.
    fn split<'r>(&self, req: &PerturbedRequest<'r>) -> Result<Vec<PerturbedRequest<'r>>> {
        check_perturbed(req, &self.model, self.train.n)?;
        let per_batch = (req.points * self.model.dim().max(req.batch_size * self.model.outputs) * 4) as u64;
        let by_memory = (self.ctx.limits.max_storage_buffer_binding_size.min(256 << 20) / per_batch.max(1)) as usize;
        let by_dispatch = self.ctx.limits.max_compute_workgroups_per_dimension as usize / req.points;
        let chunk = by_memory.min(by_dispatch).max(1);
        let b = req.batch_size;
        Ok((0..req.count())
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(req.count());
                PerturbedRequest {
                    batches: &req.batches[start * b..end * b],
                    batch_ids: &req.batch_ids[start..end],
                    ..*req
                }
            })
            .collect())
    }

    /// Perturbed parameters, their logits, derivatives and block gradients into `bufs.grads`.
    fn record_gradients<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        let (groups, k) = (req.count() as u32, req.points as u32);
        let prm = PerturbParams::new(groups * k, k, self.model.dim() as u32, req.perturbation, req.seed, req.stream);
        self.kernels.perturb.encode(rec, prm, &bufs.theta, &bufs.ids, &bufs.perturbed)?;
        self.record_set_gradients(rec, req, bufs)
    }

    /// Logits, derivatives and block gradients of the parameter sets already in `bufs.perturbed`.
    fn record_set_gradients<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        let (groups, k, b) = (req.count() as u32, req.points as u32, req.batch_size as u32);
        let (classes, dim) = (self.model.outputs as u32, self.model.dim() as u32);
        let kn = &self.kernels;
        let rows = RowGroups { groups, sets_per_group: k, rows: b, offset: 0, stride: b };
        let data = &self.train.bind;
        kn.logits.encode(rec, data, rows, classes, dim, &bufs.perturbed, &bufs.table, &bufs.logits)?;
        let scale = req.grad_scale / b as f32;
        kn.dlogits.encode(
            rec,
            data,
            rows,
            classes,
            scale,
            &bufs.logits,
            &bufs.table,
            &bufs.dlogits,
            (&bufs.losses, 0),
        )?;
        let block = req.block.grad_block(&self.model);
        kn.weight_grad.encode(rec, data, rows, classes, block, &bufs.dlogits, &bufs.table, &bufs.grads)
    }

    fn record_projection<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        q: &'a wgpu::Buffer,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        let (c0, nrows, _) = req.block.rows(&self.model);
        let prm = ProjectParams {
            points: req.points as u32,
            block_dim: req.block.dim(&self.model) as u32,
            dim: self.model.dim() as u32,
            p: self.model.p as u32,
            classes: self.model.outputs as u32,
            c0: c0 as u32,
            nrows: nrows as u32,
            sets: (req.count() * req.points) as u32,
        };
        self.kernels.project.encode(rec, prm, q, &bufs.perturbed, &bufs.grads, &bufs.pairs)
    }
}
