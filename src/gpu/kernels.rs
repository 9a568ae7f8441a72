//! One struct per WGSL kernel: it owns the pipeline, its parameter struct mirrors the WGSL one
//! (`#[repr(C)]`, checked against naga's layout in the tests), and `encode` adds a typed dispatch
//! to a [`Recording`]. The CPU twin of each lives in `crate::cpu::kernels`.

use bytemuck::{Pod, Zeroable};

use super::{
    context::GpuContext,
    kernel::{Kernel, Recording, composed_generated, groups_for},
};
use crate::{
    Result,
    engine::{GradBlock, Perturbation, RowGroups},
    shader_source::{
        codes::{
            DISPATCH_ROW, MAX_TILE, PERTURB_GAUSSIAN, PERTURB_UNIFORM, RESIDUAL_ACC, SUBGROUP_LANES, WG_1D, WG_WIDE,
            two_class_softmax,
        },
        residuals_subgroup,
    },
};

mod epoch;
mod evaluate;

pub use epoch::{BatchTable, EpochBindings, EpochParams, TrainEpoch};
pub use evaluate::{Evaluate, EvaluateParams, EvaluationBindings, ReduceParams};

/// Workgroups for `n` invocations of a 1-D kernel (`WG_1D` invocations each): x up to
/// `DISPATCH_ROW`, the rest in y (the kernels' `flat_id` undoes it).
pub fn linear_groups(n: usize) -> [u32; 3] {
    wrapped_groups(groups_for(n, WG_1D))
}

/// `groups` workgroups, continued along y past [`DISPATCH_ROW`] (shaders number them x + y·DISPATCH_ROW).
pub fn wrapped_groups(groups: u32) -> [u32; 3] {
    if groups <= DISPATCH_ROW { [groups.max(1), 1, 1] } else { [DISPATCH_ROW, groups.div_ceil(DISPATCH_ROW), 1] }
}

/// Override constants shared by every kernel of one engine (unused ones are ignored).
pub struct Specialisation {
    pub model: u32,
    pub x_u8: bool,
    /// The dataset's texture holds its features (`GpuData::textured`).
    pub textured: bool,
}

impl Specialisation {
    fn constants(&self) -> [(&'static str, f64); 2] {
        [("MODEL", self.model as f64), ("X_U8", if self.x_u8 { 1.0 } else { 0.0 })]
    }
}

fn compile<P>(
    ctx: &GpuContext,
    data: &wgpu::BindGroupLayout,
    name: &'static str,
    spec: &Specialisation,
) -> Result<Kernel> {
    Kernel::new(ctx, data, name, std::mem::size_of::<P>(), &spec.constants())
}

/// What the per-sample kernels (logits, dlogits, weight_grad) read besides their own buffers: the
/// resident dataset's bind group, the table of training-set rows, which of its rows each group of
/// parameter sets takes, and the model's classes.
#[derive(Clone, Copy)]
pub struct Rows<'a> {
    pub data: &'a wgpu::BindGroup,
    pub table: &'a wgpu::Buffer,
    pub groups: RowGroups,
    pub classes: u32,
}

/// A kernel compiled twice from one shader: `single` for dispatches where each set has its own rows
/// (training one run), and [`MAX_TILE`]² tiles (overrides SET_TILE = TILE = MAX_TILE) where at least
/// that many parameter sets share their rows (the analysis, sweeps).
struct TilePair {
    single: (Kernel, [u32; 2]),
    tiled: Kernel,
}

impl TilePair {
    /// `single` is the (SET_TILE, TILE) of the variant for unshared rows.
    fn new<P>(
        ctx: &GpuContext,
        data: &wgpu::BindGroupLayout,
        name: &'static str,
        spec: &Specialisation,
        single: [u32; 2],
    ) -> Result<Self> {
        let with_tiles = |[sets, other]: [u32; 2]| {
            let mut constants = spec.constants().to_vec();
            constants.extend([("SET_TILE", sets as f64), ("TILE", other as f64)]);
            Kernel::new(ctx, data, name, std::mem::size_of::<P>(), &constants)
        };
        Ok(TilePair { single: (with_tiles(single)?, single), tiled: with_tiles([MAX_TILE; 2])? })
    }

    /// Add a dispatch of the variant for `rows` (the tiled one where enough sets share enough
    /// rows): one invocation per tile of sets and per `per_set(tile)` of what each set needs,
    /// `tile` the variant's other tile size.
    fn dispatch<'a, P: Pod>(
        &'a self,
        rec: &mut Recording<'a>,
        at: Rows<'a>,
        prm: P,
        buffers: &[&'a wgpu::Buffer],
        per_set: impl Fn(u32) -> u32,
    ) -> Result<()> {
        let rows = at.groups;
        let big = rows.sets_per_group >= MAX_TILE && rows.rows >= MAX_TILE;
        let (kernel, [set_tile, tile]) =
            if big { (&self.tiled, [MAX_TILE; 2]) } else { (&self.single.0, self.single.1) };
        let invocations = rows.groups * rows.sets_per_group.div_ceil(set_tile) * per_set(tile);
        rec.dispatch(kernel, &prm, buffers, Some(at.data), linear_groups(invocations as usize))
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LogitsParams {
    pub sets_per_group: u32,
    pub rows: u32,
    pub classes: u32,
    pub dim: u32,
    pub table_offset: u32,
    pub group_stride: u32,
    pub sets: u32,
    pub _pad2: u32,
}

/// `shaders/logits.wgsl`: the batched matmul z = W x + b for many parameter sets; one
/// invocation per (set, row), or per 4 × 4 tile of them.
pub struct Logits(TilePair);

impl Logits {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        // One invocation per (set, row) for a single run: 4-row tiles would leave cores idle there.
        Ok(Logits(TilePair::new::<LogitsParams>(ctx, data, "logits", spec, [1, 1])?))
    }

    /// logits[set, row, class] for the parameter sets `theta` (sets × dim) on the rows `at`.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        at: Rows<'a>,
        dim: u32,
        theta: &'a wgpu::Buffer,
        logits: &'a wgpu::Buffer,
    ) -> Result<()> {
        let g = at.groups;
        let prm = LogitsParams {
            sets_per_group: g.sets_per_group,
            rows: g.rows,
            classes: at.classes,
            dim,
            table_offset: g.offset,
            group_stride: g.stride,
            sets: g.sets(),
            _pad2: 0,
        };
        self.0.dispatch(rec, at, prm, &[theta, at.table, logits], |row_tile| g.rows.div_ceil(row_tile))
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct DlogitsParams {
    pub sets_per_group: u32,
    pub rows: u32,
    pub classes: u32,
    pub table_offset: u32,
    pub sets: u32,
    pub scale: f32,
    pub group_stride: u32,
    pub loss_offset: u32,
}

/// `shaders/dlogits.wgsl`: per-sample loss and scaled d loss / d z (softmax CE, seed-compat,
/// sigmoid, least squares, by specialisation).
pub struct Dlogits(Kernel);

impl Dlogits {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(Dlogits(compile::<DlogitsParams>(ctx, data, "dlogits", spec)?))
    }

    /// scale · d loss / d z of `logits` on the rows `at` into `dlogits`, and each sample's loss
    /// into `losses` from the given element on.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        at: Rows<'a>,
        scale: f32,
        (logits, dlogits): (&'a wgpu::Buffer, &'a wgpu::Buffer),
        (losses, loss_offset): (&'a wgpu::Buffer, u32),
    ) -> Result<()> {
        let g = at.groups;
        let prm = DlogitsParams {
            sets_per_group: g.sets_per_group,
            rows: g.rows,
            classes: at.classes,
            table_offset: g.offset,
            sets: g.sets(),
            scale,
            group_stride: g.stride,
            loss_offset,
        };
        let wg = linear_groups((g.sets() * g.rows) as usize);
        rec.dispatch(&self.0, &prm, &[logits, at.table, dlogits, losses], Some(at.data), wg)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct WeightGradParams {
    pub sets_per_group: u32,
    pub rows: u32,
    pub classes: u32,
    pub table_offset: u32,
    pub c0: u32,
    pub nrows: u32,
    pub with_bias: u32,
    pub out_dim: u32,
    pub group_stride: u32,
    pub sets: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// `shaders/weight_grad.wgsl`: G = dzᵀ X over a block of rows of W.
pub struct WeightGrad(TilePair);

impl WeightGrad {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        // A single run still takes 4 features per invocation: 1,570 outputs leave enough of them.
        Ok(WeightGrad(TilePair::new::<WeightGradParams>(ctx, data, "weight_grad", spec, [1, 4])?))
    }

    /// The gradients of `block` from `dlogits` on the rows `at` into `grads`.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        at: Rows<'a>,
        block: GradBlock,
        dlogits: &'a wgpu::Buffer,
        grads: &'a wgpu::Buffer,
    ) -> Result<()> {
        let g = at.groups;
        let prm = WeightGradParams {
            sets_per_group: g.sets_per_group,
            rows: g.rows,
            classes: at.classes,
            table_offset: g.offset,
            c0: block.c0,
            nrows: block.nrows,
            with_bias: block.with_bias as u32,
            out_dim: block.dim(),
            group_stride: g.stride,
            sets: g.sets(),
            _pad1: 0,
            _pad2: 0,
        };
        // Tiles of `tile` features of one row of W, and one per bias.
        let per_set = |tile: u32| block.nrows * block.p.div_ceil(tile) + if block.with_bias { block.nrows } else { 0 };
        self.0.dispatch(rec, at, prm, &[dlogits, at.table, grads], per_set)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SgdParams {
    pub sets: u32,
    pub dim: u32,
    pub lr_stride: u32,
    pub lr_index: u32,
}

/// `shaders/sgd_update.wgsl`: θ ← θ − h g with h from a per-set table.
pub struct SgdUpdate(Kernel);

impl SgdUpdate {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(SgdUpdate(compile::<SgdParams>(ctx, data, "sgd_update", spec)?))
    }

    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        prm: SgdParams,
        theta: &'a wgpu::Buffer,
        grads: &'a wgpu::Buffer,
        lrs: &'a wgpu::Buffer,
    ) -> Result<()> {
        let wg = [groups_for(prm.dim as usize, WG_WIDE), prm.sets, 1];
        rec.dispatch(&self.0, &prm, &[theta, grads, lrs], None, wg)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct PerturbParams {
    pub sets: u32,
    pub points: u32,
    pub dim: u32,
    pub kind: u32,
    pub scale: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stream: u32,
}

impl PerturbParams {
    pub fn new(sets: u32, points: u32, dim: u32, perturbation: Perturbation, seed: u64, stream: u32) -> Self {
        let (kind, scale) = match perturbation {
            Perturbation::Uniform { scale } => (PERTURB_UNIFORM, scale),
            Perturbation::Gaussian { sigma } => (PERTURB_GAUSSIAN, sigma),
        };
        PerturbParams { sets, points, dim, kind, scale, seed_lo: seed as u32, seed_hi: (seed >> 32) as u32, stream }
    }
}

/// `shaders/perturb.wgsl`: K perturbed copies of θ per batch from the counter PRNG.
pub struct Perturb(Kernel);

impl Perturb {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(Perturb(compile::<PerturbParams>(ctx, data, "perturb", spec)?))
    }

    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        prm: PerturbParams,
        theta: &'a wgpu::Buffer,
        batch_ids: &'a wgpu::Buffer,
        perturbed: &'a wgpu::Buffer,
    ) -> Result<()> {
        let wg = [groups_for(prm.dim.div_ceil(4) as usize, WG_WIDE), prm.sets, 1];
        rec.dispatch(&self.0, &prm, &[theta, batch_ids, perturbed], None, wg)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ProjectParams {
    pub points: u32,
    pub block_dim: u32,
    pub dim: u32,
    pub p: u32,
    pub classes: u32,
    pub c0: u32,
    pub nrows: u32,
    pub sets: u32,
}

/// `shaders/project.wgsl`: the projection pairs (q·(θ+δ)|block, q·g).
pub struct Project(Kernel);

impl Project {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(Project(compile::<ProjectParams>(ctx, data, "project", spec)?))
    }

    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        prm: ProjectParams,
        q: &'a wgpu::Buffer,
        perturbed: &'a wgpu::Buffer,
        grads: &'a wgpu::Buffer,
        pairs: &'a wgpu::Buffer,
    ) -> Result<()> {
        let wg = linear_groups(prm.sets as usize);
        rec.dispatch(&self.0, &prm, &[q, perturbed, grads, pairs], None, wg)
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ResidualParams {
    pub points: u32,
    pub rows: u32,
    pub groups: u32,
    pub kind: u32,
    pub scale: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stream: u32,
    pub grad_scale: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

impl ResidualParams {
    /// `grad_scale` multiplies d loss / d z (the request's grad_scale / b).
    pub fn new(
        groups: u32,
        points: u32,
        rows: u32,
        perturbation: Perturbation,
        seed: u64,
        stream: u32,
        grad_scale: f32,
    ) -> Self {
        let p = PerturbParams::new(groups * points, points, 0, perturbation, seed, stream);
        ResidualParams {
            points,
            rows,
            groups,
            kind: p.kind,
            scale: p.scale,
            seed_lo: p.seed_lo,
            seed_hi: p.seed_hi,
            stream,
            grad_scale,
            _pad0: 0,
            _pad1: 0,
            _pad2: 0,
        }
    }
}

/// `shaders/residuals.wgsl`: the per-sample residuals of K perturbed copies of θ per batch, with
/// the perturbations drawn in the shader and the batch's base logits θ·x̃ given; or, on adapters
/// with subgroups of at least [`SUBGROUP_LANES`] lanes, `residuals_subgroup` (generated by
/// [`crate::shader_source::residuals_subgroup`]: the same numbers, each pixel load shared by the
/// lanes of a subgroup).
pub struct Residuals {
    kernel: Kernel,
    samples: u32,
    broadcast: bool,
    /// The perturbation kind it draws (`ResidualParams::kind`), a constant of the pipeline.
    pub kind: u32,
}

impl Residuals {
    /// Specialised for a model with `classes` rows of W and `p` features a sample (SAMPLES per
    /// invocation from [`Residuals::samples`]), drawing perturbations of `kind`
    /// (`ResidualParams::kind`); `broadcast`: the subgroup kernel. The two-class softmax takes
    /// the `PAIR` form: one sum per sample instead of two.
    pub fn new(
        ctx: &GpuContext,
        data: &wgpu::BindGroupLayout,
        spec: &Specialisation,
        (classes, p): (u32, u32),
        kind: u32,
        broadcast: bool,
    ) -> Result<Self> {
        let pair = two_class_softmax(spec.model, classes);
        let samples = Self::samples(spec.model, classes, broadcast);
        // u8 rows that start on a word: whole words from the texture (shaders/shared/residual.wgsl).
        let aligned = spec.x_u8 && p.is_multiple_of(4) && spec.textured;
        let mut constants = spec.constants().to_vec();
        constants.extend([
            ("CLASSES", classes as f64),
            ("SAMPLES", samples as f64),
            ("PAIR", if pair { 1.0 } else { 0.0 }),
            ("ALIGNED", if aligned { 1.0 } else { 0.0 }),
            ("GAUSSIAN", if kind == PERTURB_GAUSSIAN { 1.0 } else { 0.0 }),
        ]);
        let size = std::mem::size_of::<ResidualParams>();
        let kernel = if broadcast {
            let name = "residuals_subgroup";
            let source = composed_generated(name, &residuals_subgroup(classes, samples, pair))?;
            Kernel::from_source(ctx, data, name, source, size, &constants)?
        } else {
            Kernel::new(ctx, data, "residuals", size, &constants)?
        };
        Ok(Residuals { kernel, samples, broadcast, kind })
    }

    /// Sums an invocation keeps per sample for loss `code` and `classes` rows of W: one per
    /// class, or one for the two-class softmax (`PAIR`).
    pub fn sums(code: u32, classes: u32) -> u32 {
        if two_class_softmax(code, classes) { 1 } else { classes.max(1) }
    }

    /// Samples one invocation accumulates: RESIDUAL_ACC accumulators shared by its sums on the
    /// subgroup kernel (`broadcast`); on `residuals.wgsl` one per class even where `PAIR` keeps
    /// one sum a sample. Its 32 samples of the two-class softmax, unrolled, took llvmpipe's GL
    /// driver over ten minutes to compile, against under a minute at 16 (BENCHMARKS.md).
    pub fn samples(code: u32, classes: u32, broadcast: bool) -> u32 {
        let per_sample = if broadcast { Self::sums(code, classes) } else { classes.max(1) };
        (RESIDUAL_ACC / per_sample).max(1)
    }

    /// Loop passes of one invocation, counted as if no loop over a constant were unrolled (what
    /// llvmpipe's cap of 65,535 an invocation counts against).
    pub fn loop_passes(code: u32, classes: u32, p: u32, broadcast: bool) -> u64 {
        let (c, s) = (classes as u64, Self::samples(code, classes, broadcast) as u64);
        // Per 4 features: the classes' draws, and per sample a load (or a broadcast) and its sums.
        let per_word = c + 1 + s * (Self::sums(code, classes) as u64 + 2);
        let words = (p as u64).div_ceil(4);
        let body = if broadcast {
            let lanes = SUBGROUP_LANES as u64;
            (words.div_ceil(lanes) + 1) * (s + lanes * (per_word + s))
        } else {
            (words + 1) * per_word
        };
        body + s * (3 * c + 4)
    }

    /// residuals[g·K + k, i, c] for the `prm.groups` batches of `table` (groups × rows).
    #[allow(clippy::too_many_arguments)]
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        data: &'a wgpu::BindGroup,
        prm: ResidualParams,
        base: &'a wgpu::Buffer,
        batch_ids: &'a wgpu::Buffer,
        table: &'a wgpu::Buffer,
        residuals: &'a wgpu::Buffer,
    ) -> Result<()> {
        if prm.kind != self.kind {
            return Err(crate::Error::gpu(format!(
                "the residual kernel draws perturbations of kind {}, asked for kind {}",
                self.kind, prm.kind
            )));
        }
        let tiles = prm.groups * prm.rows.div_ceil(self.samples);
        let wg = if self.broadcast {
            // One workgroup (one subgroup) per tile and 8 perturbations.
            wrapped_groups(tiles * prm.points.div_ceil(SUBGROUP_LANES))
        } else {
            linear_groups((tiles * prm.points) as usize)
        };
        rec.dispatch(&self.kernel, &prm, &[base, batch_ids, table, residuals], Some(data), wg)
    }
}
