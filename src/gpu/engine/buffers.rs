//! The engine's device state: the datasets uploaded once, the kernels compiled at construction,
//! the parameters, gradients and evaluation totals of every run.

use bytemuck::cast_slice;

use super::{GpuEngine, KernelPath, Kernels};
use crate::{
    Error, Result,
    data::{Data, Dataset, Features},
    gpu::{
        context::GpuContext,
        kernel::data_layout,
        kernels::{Evaluate, Specialisation},
        subgroup,
    },
    model::Model,
    shader_source::{SubgroupSpec, codes::DATA_TEXTURE_WIDTH},
};

/// A dataset resident on the device, bound as group 1.
pub struct GpuData {
    pub n: usize,
    pub bind: wgpu::BindGroup,
    /// The features are also in the bind group's texture (binding 3: the device holds them
    /// twice, 47 MB more for full MNIST); false where the set is larger than the adapter's 2-D
    /// textures (a placeholder texel is bound instead), and the kernels that fetch from it are
    /// not taken.
    pub textured: bool,
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
        let (texture, textured) = features_texture(ctx, &words);
        let view = texture.create_view(&Default::default());
        let info = [set.n as u32, set.p as u32, 0, 0];
        let info = ctx.buffer_init("data info", cast_slice(&info), wgpu::BufferUsages::UNIFORM)?;
        let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("data"),
            layout,
            entries: &[
                wgpu::BindGroupEntry { binding: 0, resource: info.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: x.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 2, resource: y.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 3, resource: wgpu::BindingResource::TextureView(&view) },
            ],
        });
        Ok(GpuData { n: set.n, bind, textured })
    }
}

/// The feature words (a multiple of 16 bytes) as an Rgba32Uint texture of
/// [`DATA_TEXTURE_WIDTH`] texels a row: texel (i % width, i / width) is vec4<u32> word i; and
/// whether it holds them (else a single zero texel, where the adapter's textures are too small).
fn features_texture(ctx: &GpuContext, words: &[u8]) -> (wgpu::Texture, bool) {
    let rows = texture_rows(words.len(), ctx.limits.max_texture_dimension_2d);
    let (width, height) = rows.map_or((1, 1), |h| (DATA_TEXTURE_WIDTH as usize, h as usize));
    let mut padded = if rows.is_some() { words.to_vec() } else { Vec::new() };
    padded.resize(height * width * 16, 0);
    let texture = ctx.texel_words("features texture", width as u32, height as u32, &padded);
    (texture, rows.is_some())
}

/// Rows of the features texture for `bytes` of feature words (at least one), if the adapter's
/// 2-D textures (`max_dim` texels a side) hold them.
pub fn texture_rows(bytes: usize, max_dim: u32) -> Option<u32> {
    let rows = bytes.div_ceil(16).div_ceil(DATA_TEXTURE_WIDTH as usize).max(1);
    (DATA_TEXTURE_WIDTH <= max_dim && rows <= max_dim as usize).then_some(rows as u32)
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
        let train = GpuData::upload(&ctx, &layout, &data.train)?;
        let test = data.test.as_ref().map(|t| GpuData::upload(&ctx, &layout, t)).transpose()?;
        let spec = Specialisation { model: model.loss_code() as u32, x_u8, textured: train.textured };
        let kernels = Kernels::new(spec);
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

    /// The loop iterations per invocation the subgroup kernel's dispatches are sized for
    /// ([`subgroup::LOOP_CAP`] unless changed: tests lower it to split epochs into more dispatches,
    /// or raise it to see the driver's cap hit).
    pub fn set_loop_cap(&mut self, cap: u64) {
        self.loop_cap = cap;
    }

    /// Whether every set's features are in its texture (what the subgroup kernels fetch).
    pub(super) fn textured(&self) -> bool {
        self.train.textured && self.test.as_ref().is_none_or(|t| t.textured)
    }

    /// The subgroup kernel's specialisation for this engine's model and data.
    pub(super) fn subgroup_spec(&self) -> SubgroupSpec {
        SubgroupSpec {
            p: self.model.p as u32,
            classes: self.model.outputs as u32,
            model: self.model.loss_code() as u32,
            x_u8: self.x_u8,
        }
    }

    pub(super) fn dims(&self) -> (u32, u32, u32) {
        (self.runs as u32, self.model.outputs as u32, self.model.dim() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texture_rows_hold_every_word_or_refuse() {
        let row = DATA_TEXTURE_WIDTH as usize * 16;
        assert_eq!(texture_rows(16, 8192), Some(1));
        assert_eq!(texture_rows(row, 8192), Some(1));
        assert_eq!(texture_rows(row + 16, 8192), Some(2));
        // Full MNIST as u8 (60,000 × 784 bytes): 1,436 rows of 2,048 texels.
        assert_eq!(texture_rows(60_000 * 784, 8192), Some(1436));
        assert_eq!(texture_rows(8192 * row, 8192), Some(8192));
        assert_eq!(texture_rows(8192 * row + 16, 8192), None);
        // Narrower than one row: nothing fits.
        assert_eq!(texture_rows(16, DATA_TEXTURE_WIDTH - 1), None);
    }
}
