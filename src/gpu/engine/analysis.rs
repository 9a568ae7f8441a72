//! The analysis' device work of [`GpuEngine`]: K perturbed copies of θ for chunks of batches,
//! their per-sample residuals (what the default analysis reads back), and, for the reference
//! `--svd full` path and the schedule's Hessian–vector products, whole block gradients and the
//! projection pairs. The `Engine` implementation in the parent module delegates here.

use bytemuck::cast_slice;

use super::{GpuEngine, KernelPath};
use crate::{
    Error, Result,
    engine::{KernelChoice, PerturbedRequest, RowGroups, check_gradients, check_perturbed},
    gpu::{
        context::GpuContext,
        kernel::Recording,
        kernels::{PerturbParams, ProjectParams, ResidualParams, Residuals, Rows},
        subgroup::{self, LOOP_CAP},
    },
    model::Model,
    residual,
};

impl GpuEngine {
    pub(super) fn perturbed_gradients(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for part in self.split(req)? {
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &part, true)?;
            let mut rec = Recording::new(&self.ctx);
            self.record_gradients(&mut rec, &part, &bufs)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let g = self.ctx.submit_and_read(enc, &[(&bufs.grads, 0, bufs.grads_bytes)])?;
            out.extend_from_slice(cast_slice(&g[0]));
        }
        Ok(out)
    }

    pub(super) fn gradients(&mut self, sets: &[f32], batch: &[u32]) -> Result<Vec<f32>> {
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
        let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &req, true)?;
        self.ctx.queue.write_buffer(&bufs.perturbed, 0, cast_slice(sets));
        let mut rec = Recording::new(&self.ctx);
        self.record_set_gradients(&mut rec, &req, &bufs)?;
        let mut enc = self.ctx.encoder();
        rec.encode(&self.ctx, &mut enc, None)?;
        let g = self.ctx.submit_and_read(enc, &[(&bufs.grads, 0, bufs.grads_bytes)])?;
        Ok(cast_slice(&g[0]).to_vec())
    }

    pub(super) fn project(&mut self, req: &PerturbedRequest, q: &[f32]) -> Result<Vec<f32>> {
        let bd = req.block.dim(&self.model);
        if q.len() != req.count() * bd {
            return Err(Error::usage(format!("expected {} direction entries, got {}", req.count() * bd, q.len())));
        }
        let mut out = Vec::new();
        let mut at = 0;
        for part in self.split(req)? {
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, &part, true)?;
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

    /// The per-sample residuals of K perturbed copies of θ per batch, read back: B × K × b ×
    /// classes, one submit per part of the request. The batches' base logits θ·x̃ (on the host:
    /// [`residual::base_logits`]) and then `residuals.wgsl`, which draws δ itself; where its loop
    /// passes could reach llvmpipe's cap (thousands of features), the perturbed copies through
    /// perturb, logits and dlogits instead. No block gradient is formed: the host
    /// multiplies by the batch's features itself (`crate::residual`).
    pub(super) fn perturbed_residuals(&mut self, req: &PerturbedRequest) -> Result<Vec<f32>> {
        let parts = self.split(req)?;
        let broadcast = self.residuals_broadcast();
        if !self.fused_residuals_fit(broadcast) {
            return self.unfused_residuals(&parts);
        }
        let kind = PerturbParams::new(0, 0, 0, req.perturbation, 0, 0).kind;
        if self.kernels.residuals.as_ref().is_none_or(|r| r.kind != kind) {
            let sizes = (self.model.outputs as u32, self.model.p as u32);
            let kernel = Residuals::new(&self.ctx, &self.data_layout, &self.kernels.spec, sizes, kind, broadcast)?;
            self.kernels.residuals = Some(kernel);
        }
        let kernel = self.kernels.residuals.as_ref().ok_or_else(|| Error::gpu("the residual kernel is missing"))?;
        let classes = self.model.outputs as u32;
        let storage = wgpu::BufferUsages::STORAGE;
        let mut out = Vec::new();
        for part in parts {
            let (groups, k, b) = (part.count() as u32, part.points as u32, part.batch_size as u32);
            let ids = self.ctx.buffer_init("batch ids", cast_slice(part.batch_ids), storage)?;
            let table = self.ctx.buffer_init("batch rows", cast_slice(part.batches), storage)?;
            let base = residual::base_logits(&self.host_train, req.theta, part.batches, classes as usize);
            let base = self.ctx.buffer_init("base logits", cast_slice(&base), storage)?;
            let bytes = (groups * k * b * classes) as u64 * 4;
            let residuals = self.ctx.buffer("residuals", bytes)?;
            let mut rec = Recording::new(&self.ctx);
            let data = &self.train.bind;
            let prm = ResidualParams::new(
                groups,
                k,
                b,
                part.perturbation,
                part.seed,
                part.stream,
                part.grad_scale / b as f32,
            );
            kernel.encode(&mut rec, data, prm, &base, &ids, &table, &residuals)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let r = self.ctx.submit_and_read(enc, &[(&residuals, 0, bytes)])?;
            out.extend_from_slice(cast_slice(&r[0]));
        }
        Ok(out)
    }

    /// Whether the residuals share pixel loads across a subgroup (the generated
    /// `residuals_subgroup`, `shader_source::residuals_subgroup`): with
    /// `--kernels subgroup`, and with `auto` where the subgroup training kernel would be chosen
    /// (CPU adapters with subgroups of exactly 8 lanes: on a GPU, workgroups of 8 would leave most
    /// of each SIMD unit idle).
    pub(super) fn residuals_broadcast(&self) -> bool {
        match self.path {
            KernelPath::Subgroup => true,
            KernelPath::Auto => subgroup::adapter_prefers(&self.ctx),
            KernelPath::Fused | KernelPath::Unfused => false,
        }
    }

    /// The kernel the analysis' residuals take on this engine, and why, in words (for `bench` and
    /// `analyze`'s config.json).
    pub fn residual_kernel_choice(&self) -> KernelChoice {
        let broadcast = self.residuals_broadcast();
        let adapter = format!("{:?} adapter ({:?})", self.ctx.info.device_type, self.ctx.info.backend);
        let (path, why) = match (self.fused_residuals_fit(broadcast), broadcast) {
            (false, _) => (
                "perturb + logits + dlogits",
                format!("{adapter}: one invocation's loop passes would near llvmpipe's cap"),
            ),
            (true, true) => (
                "residuals_subgroup",
                format!("{adapter} with subgroups of 8: each pixel load shared by 8 perturbations"),
            ),
            (true, false) => ("residuals", format!("{adapter}: one invocation per (tile of samples, perturbation)")),
        };
        KernelChoice { path: path.to_string(), why }
    }

    /// Whether the residual kernel stays under llvmpipe's loop cap on this adapter, with a fifth
    /// in reserve. Other adapters have no cap.
    fn fused_residuals_fit(&self, broadcast: bool) -> bool {
        if self.ctx.info.device_type != wgpu::DeviceType::Cpu {
            return true;
        }
        let passes =
            Residuals::loop_passes(self.kernels.spec.model, self.model.outputs as u32, self.model.p as u32, broadcast);
        passes <= LOOP_CAP - LOOP_CAP / 5
    }

    /// The residuals through the perturbed copies in memory (perturb, logits, dlogits).
    fn unfused_residuals(&self, parts: &[PerturbedRequest]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        for part in parts {
            let bufs = AnalysisBuffers::new(&self.ctx, &self.model, part, false)?;
            let mut rec = Recording::new(&self.ctx);
            self.record_perturbed(&mut rec, part, &bufs)?;
            self.record_residuals(&mut rec, part, &bufs)?;
            let mut enc = self.ctx.encoder();
            rec.encode(&self.ctx, &mut enc, None)?;
            let r = self.ctx.submit_and_read(enc, &[(&bufs.dlogits, 0, bufs.dlogits_bytes)])?;
            out.extend_from_slice(cast_slice(&r[0]));
        }
        Ok(out)
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
    dlogits_bytes: u64,
    losses: wgpu::Buffer,
    grads: wgpu::Buffer,
    grads_bytes: u64,
    pairs: wgpu::Buffer,
    pairs_bytes: u64,
}

impl AnalysisBuffers {
    /// `with_grads`: room for the block gradients (the residuals alone need none).
    fn new(ctx: &GpuContext, model: &Model, req: &PerturbedRequest, with_grads: bool) -> Result<AnalysisBuffers> {
        let sets = (req.count() * req.points) as u64;
        let rows = sets * req.batch_size as u64;
        let grads_bytes = if with_grads { sets * req.block.dim(model) as u64 * 4 } else { 0 };
        let dlogits_bytes = rows * model.outputs as u64 * 4;
        let storage = wgpu::BufferUsages::STORAGE;
        Ok(AnalysisBuffers {
            theta: ctx.buffer_init("base parameters", cast_slice(req.theta), storage)?,
            ids: ctx.buffer_init("batch ids", cast_slice(req.batch_ids), storage)?,
            table: ctx.buffer_init("batch rows", cast_slice(req.batches), storage)?,
            perturbed: ctx.buffer("perturbed parameters", sets * model.dim() as u64 * 4)?,
            logits: ctx.buffer("logits", rows * model.outputs as u64 * 4)?,
            dlogits: ctx.buffer("dlogits", dlogits_bytes)?,
            dlogits_bytes,
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
        self.record_perturbed(rec, req, bufs)?;
        self.record_set_gradients(rec, req, bufs)
    }

    /// The K perturbed copies of θ per batch into `bufs.perturbed`.
    fn record_perturbed<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        let (groups, k) = (req.count() as u32, req.points as u32);
        let prm = PerturbParams::new(groups * k, k, self.model.dim() as u32, req.perturbation, req.seed, req.stream);
        self.perturb_kernel()?.encode(rec, prm, &bufs.theta, &bufs.ids, &bufs.perturbed)
    }

    /// Logits, derivatives and block gradients of the parameter sets already in `bufs.perturbed`.
    fn record_set_gradients<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        self.record_residuals(rec, req, bufs)?;
        let block = req.block.grad_block(&self.model);
        self.weight_grad_kernel()?.encode(rec, self.rows_of(req, bufs), block, &bufs.dlogits, &bufs.grads)
    }

    /// The rows of the request's batches, each taken by its K parameter sets.
    fn rows_of<'a>(&'a self, req: &PerturbedRequest, bufs: &'a AnalysisBuffers) -> Rows<'a> {
        let (groups, k, b) = (req.count() as u32, req.points as u32, req.batch_size as u32);
        let groups = RowGroups { groups, sets_per_group: k, rows: b, offset: 0, stride: b };
        Rows { data: &self.train.bind, table: &bufs.table, groups, classes: self.model.outputs as u32 }
    }

    /// Logits and their scaled derivatives (grad_scale/b · ∂loss/∂z) of the parameter sets in
    /// `bufs.perturbed` into `bufs.dlogits`.
    fn record_residuals<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        req: &PerturbedRequest,
        bufs: &'a AnalysisBuffers,
    ) -> Result<()> {
        let at = self.rows_of(req, bufs);
        self.logits_kernel()?.encode(rec, at, self.model.dim() as u32, &bufs.perturbed, &bufs.logits)?;
        let scale = req.grad_scale / req.batch_size as f32;
        self.dlogits_kernel()?.encode(rec, at, scale, (&bufs.logits, &bufs.dlogits), (&bufs.losses, 0))
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
        self.project_kernel()?.encode(rec, prm, q, &bufs.perturbed, &bufs.grads, &bufs.pairs)
    }
}
