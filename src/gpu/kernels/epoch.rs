//! `shaders/train_epoch.wgsl`, the fused epoch kernel, and what it shares with the generated
//! subgroup kernel: the parameters, the bindings and the split of an epoch into dispatches.

use bytemuck::{Pod, Zeroable};

use super::{Specialisation, compile};
use crate::{
    Error, Result,
    gpu::{
        context::GpuContext,
        engine::texture_rows,
        kernel::{Kernel, Recording},
    },
    shader_source::codes::DATA_TEXTURE_WIDTH,
};

#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct EpochParams {
    pub runs: u32,
    pub steps: u32,
    pub batch: u32,
    pub classes: u32,
    pub dim: u32,
    pub tables: u32,
    pub rule: u32,
    pub max_backtracks: u32,
    pub armijo_c: f32,
    pub armijo_beta: f32,
    pub armijo_growth: f32,
    pub max_lr: f32,
    pub polyak_c: f32,
    pub first_step: u32,
    pub count: u32,
    pub _pad0: u32,
}

impl EpochParams {
    /// These parameters' steps (`first_step ..` `+ count`) in dispatches of at most `per` steps:
    /// what a driver's loop cap or early end of a long dispatch allows, all in one pass.
    pub fn dispatches(self, per: usize) -> impl Iterator<Item = EpochParams> {
        let (start, end) = (self.first_step as usize, (self.first_step + self.count) as usize);
        (start..end).step_by(per.max(1)).map(move |first| EpochParams {
            first_step: first as u32,
            count: per.min(end - first) as u32,
            ..self
        })
    }
}

/// What the epoch kernels (fused and subgroup) bind: the training data, every run's parameters,
/// the batch tables, the rates and the per-step statistics they write.
#[derive(Clone, Copy)]
pub struct EpochBindings<'a> {
    pub data: &'a wgpu::BindGroup,
    pub theta: &'a wgpu::Buffer,
    pub batches: &'a BatchTable,
    pub lrs: &'a wgpu::Buffer,
    pub stats: &'a wgpu::Buffer,
}

/// The batch tables on the device, as the epoch kernels read them.
pub enum BatchTable {
    /// A storage buffer of rows (the fused and unfused kernels).
    Buffer(wgpu::Buffer),
    /// A texture of the data texture's layout (texel j at (j % [`DATA_TEXTURE_WIDTH`], j / width)):
    /// texel j is (row, the bits of its f32 target, 0, 0) of entry j (the subgroup kernel). On
    /// lavapipe a storage load fills the vector one lane at a time through the stack, where a
    /// texel fetch is a gather: the subgroup kernel's two storage loads a sample, its row and
    /// its target, held about a tenth of an epoch's profile (BENCHMARKS.md measures the change).
    Texels(wgpu::TextureView),
}

impl BatchTable {
    /// The entries of `batches` as a storage buffer.
    pub fn buffer(ctx: &GpuContext, batches: &[u32]) -> Result<BatchTable> {
        Ok(BatchTable::Buffer(ctx.buffer_init(
            "batches",
            bytemuck::cast_slice(batches),
            wgpu::BufferUsages::STORAGE,
        )?))
    }

    /// The entries of `batches`, rows of a set whose targets are `targets`, as texels.
    pub fn texels(ctx: &GpuContext, batches: &[u32], targets: &[f32]) -> Result<BatchTable> {
        let entries = batches.len().max(1);
        let height = texture_rows(entries * 16, ctx.limits.max_texture_dimension_2d).ok_or_else(|| {
            Error::usage(format!("{} batch entries an epoch exceed this adapter's 2-D textures", batches.len()))
        })?;
        let mut words = vec![0u32; height as usize * DATA_TEXTURE_WIDTH as usize * 4];
        for (texel, &row) in words.chunks_mut(4).zip(batches) {
            let target =
                targets.get(row as usize).ok_or_else(|| Error::gpu(format!("batch row {row} is past the set")))?;
            texel[..2].copy_from_slice(&[row, target.to_bits()]);
        }
        let texture = ctx.texel_words("batch table", DATA_TEXTURE_WIDTH, height, bytemuck::cast_slice(&words));
        Ok(BatchTable::Texels(texture.create_view(&Default::default())))
    }

    /// The table's buffer, for kernels that read no other kind.
    pub fn as_buffer(&self) -> Result<&wgpu::Buffer> {
        match self {
            BatchTable::Buffer(b) => Ok(b),
            BatchTable::Texels(_) => Err(Error::gpu("this kernel reads the batch table from a buffer, not texels")),
        }
    }
}

impl<'a> EpochBindings<'a> {
    /// `prm`'s steps on `kernel` in dispatches of at most `per` steps ([`EpochParams::dispatches`])
    /// of `groups` workgroups; `scratch` is bound between the rates and the statistics. A table
    /// in a buffer is bound after θ, one in texels after the statistics (a texture is group 0's
    /// last binding).
    pub fn record(
        self,
        rec: &mut Recording<'a>,
        kernel: &'a Kernel,
        (prm, per, groups): (EpochParams, usize, u32),
        scratch: Option<&'a wgpu::Buffer>,
    ) -> Result<()> {
        let mut buffers = vec![self.theta];
        let texels = match self.batches {
            BatchTable::Buffer(table) => {
                buffers.push(table);
                None
            }
            BatchTable::Texels(view) => Some(view),
        };
        buffers.push(self.lrs);
        buffers.extend(scratch);
        buffers.push(self.stats);
        for p in prm.dispatches(per) {
            rec.dispatch_reading(kernel, &p, (&buffers, texels), Some(self.data), [groups, 1, 1])?;
        }
        Ok(())
    }
}

/// `shaders/train_epoch.wgsl`: a whole epoch of every run, one workgroup per run.
pub struct TrainEpoch(Kernel);

impl TrainEpoch {
    pub fn new(ctx: &GpuContext, data: &wgpu::BindGroupLayout, spec: &Specialisation) -> Result<Self> {
        Ok(TrainEpoch(compile::<EpochParams>(ctx, data, "train_epoch", spec)?))
    }

    /// `prm`'s steps of every run in dispatches of at most `per` steps ([`EpochParams::dispatches`]);
    /// `grads` is the kernel's scratch for each run's gradient.
    pub fn encode<'a>(
        &'a self,
        rec: &mut Recording<'a>,
        (prm, per): (EpochParams, usize),
        b: EpochBindings<'a>,
        grads: &'a wgpu::Buffer,
    ) -> Result<()> {
        b.record(rec, &self.0, (prm, per, prm.runs), Some(grads))
    }
}
