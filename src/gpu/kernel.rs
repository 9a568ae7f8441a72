//! A compute kernel compiled from `shaders/`, its bind-group layouts reflected from the WGSL by
//! naga (as vello does), and [`Recording`]: a plan of dispatches encoded into one compute pass
//! (as vello's `Recording` and web-rwkv's op lists), with every dispatch's parameters packed into
//! one uniform arena bound at dynamic offsets.
//!
//! Binding conventions of every shader: group 0, binding 0 is the kernel's parameter struct
//! (a uniform read at a dynamic offset); group 0, bindings 1.. are its buffers in order, then at
//! most one `texture_2d<u32>` (the subgroup kernel's batch table); group 1 is the resident dataset
//! (`shaders/shared/data.wgsl`).

use std::collections::HashMap;

use bytemuck::Pod;

use super::context::GpuContext;
use crate::{Error, Result, shader_source};

// `SHADERS`: the text of every shader in `shaders/` and `shaders/shared/` (the build validated
// each one), listed by build.rs from the files themselves.
include!(concat!(env!("OUT_DIR"), "/shaders.rs"));

/// Shader `name` with its imports inlined.
pub fn composed(name: &str) -> Result<shader_source::Composed> {
    let read = |n: &str| SHADERS.iter().find(|(k, _)| *k == n).map(|(_, t)| t.to_string());
    shader_source::compose(name, &read).map_err(Error::gpu)
}

/// Shader `name` parsed by naga.
pub fn naga_module(name: &str) -> Result<naga::Module> {
    parse(name, &composed(name)?)
}

/// A composed shader parsed by naga; errors name the original file and line.
pub fn parse(name: &str, c: &shader_source::Composed) -> Result<naga::Module> {
    naga::front::wgsl::parse_str(&c.source).map_err(|e| {
        let line = e.location(&c.source).map_or(0, |l| l.line_number as usize);
        Error::gpu(format!("{name}: {}: {}", c.locate(line), e.message()))
    })
}

/// A generated shader with its imports inlined (through `shader_source`, as the files are).
pub fn composed_generated(name: &str, text: &str) -> Result<shader_source::Composed> {
    let read = |n: &str| SHADERS.iter().find(|(k, _)| *k == n).map(|(_, t)| t.to_string());
    shader_source::compose_generated(name, text, &read).map_err(Error::gpu)
}

/// The group-1 layout every dataset-reading kernel shares.
pub fn data_layout(ctx: &GpuContext) -> wgpu::BindGroupLayout {
    let entries = [
        layout_entry(0, wgpu::BufferBindingType::Uniform, false, None),
        layout_entry(1, wgpu::BufferBindingType::Storage { read_only: true }, false, None),
        layout_entry(2, wgpu::BufferBindingType::Storage { read_only: true }, false, None),
        // The features again as a texture (`GpuData::upload`): the subgroup kernels and the
        // residuals fetch from it.
        texture_entry(3),
    ];
    ctx.device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some("data"), entries: &entries })
}

/// A `texture_2d<u32>` binding (texel words: the features, the subgroup kernel's batch table).
fn texture_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Texture {
            sample_type: wgpu::TextureSampleType::Uint,
            view_dimension: wgpu::TextureViewDimension::D2,
            multisampled: false,
        },
        count: None,
    }
}

fn layout_entry(
    binding: u32,
    ty: wgpu::BufferBindingType,
    dynamic: bool,
    min_size: Option<u64>,
) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: dynamic,
            min_binding_size: min_size.and_then(wgpu::BufferSize::new),
        },
        count: None,
    }
}

/// One compute pipeline and what its bindings are.
pub struct Kernel {
    pub name: &'static str,
    pipeline: wgpu::ComputePipeline,
    /// Group 0: the parameters and the kernel's own buffers.
    layout0: wgpu::BindGroupLayout,
    /// Storage buffers of group 0 (bindings 1..=buffers).
    buffers: u32,
    /// Group 0 ends with a texture (binding buffers + 1).
    reads_texture: bool,
    params_size: u64,
    uses_data: bool,
    pub workgroup_size: [u32; 3],
}

impl Kernel {
    /// Compile shader `name` (entry point `main`) with the given override constants; those the
    /// shader does not declare are ignored, so callers can pass the same set to every kernel.
    pub fn new(
        ctx: &GpuContext,
        data_layout: &wgpu::BindGroupLayout,
        name: &'static str,
        params_size: usize,
        overrides: &[(&str, f64)],
    ) -> Result<Kernel> {
        Kernel::from_source(ctx, data_layout, name, composed(name)?, params_size, overrides)
    }

    /// [`Kernel::new`] for a shader generated on the host (composed by `shader_source`).
    pub fn from_source(
        ctx: &GpuContext,
        data_layout: &wgpu::BindGroupLayout,
        name: &'static str,
        composed: shader_source::Composed,
        params_size: usize,
        overrides: &[(&str, f64)],
    ) -> Result<Kernel> {
        let module = parse(name, &composed)?;
        let source = composed.source;
        let (entries0, uses_data) = reflect_group0(&module, name, params_size as u64)?;
        let reads_texture = entries0.last().is_some_and(|e| matches!(e.ty, wgpu::BindingType::Texture { .. }));
        let workgroup_size = module
            .entry_points
            .iter()
            .find(|e| e.name == "main")
            .map(|e| e.workgroup_size)
            .ok_or_else(|| Error::gpu(format!("shaders/{name}.wgsl has no entry point `main`")))?;
        let declared: Vec<&str> = module.overrides.iter().filter_map(|(_, o)| o.name.as_deref()).collect();
        let constants: Vec<(&str, f64)> = overrides.iter().copied().filter(|(k, _)| declared.contains(k)).collect();
        let layout0 = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(name), entries: &entries0 });
        let groups: Vec<Option<&wgpu::BindGroupLayout>> =
            if uses_data { vec![Some(&layout0), Some(data_layout)] } else { vec![Some(&layout0)] };
        let pipeline_layout = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &groups,
            immediate_size: 0,
        });
        let mut checks = wgpu::ShaderRuntimeChecks::checked();
        checks.force_loop_bounding = false;
        // SAFETY: every loop in shaders/ is bounded by a uniform count (steps, samples, features),
        // so dropping wgpu's injected loop bound cannot let a shader spin forever; bounds checks stay on.
        let shader = unsafe {
            ctx.device.create_shader_module_trusted(
                wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) },
                checks,
            )
        };
        let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &shader,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        ctx.check().map_err(|e| Error::gpu(format!("compiling shaders/{name}.wgsl: {e}")))?;
        Ok(Kernel {
            name,
            pipeline,
            layout0,
            buffers: entries0.len() as u32 - 1 - reads_texture as u32,
            reads_texture,
            params_size: params_size as u64,
            uses_data,
            workgroup_size,
        })
    }
}

/// Group 0's layout from the shader's declarations, checking the binding conventions.
fn reflect_group0(
    module: &naga::Module,
    name: &str,
    params_size: u64,
) -> Result<(Vec<wgpu::BindGroupLayoutEntry>, bool)> {
    let mut entries = Vec::new();
    let mut uses_data = false;
    for (_, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else { continue };
        if binding.group == 1 {
            uses_data = true;
            continue;
        }
        if let naga::TypeInner::Image { class, dim, arrayed } = module.types[var.ty].inner {
            let uint = matches!(class, naga::ImageClass::Sampled { kind: naga::ScalarKind::Uint, multi: false });
            if binding.group != 0 || !uint || dim != naga::ImageDimension::D2 || arrayed {
                return Err(Error::gpu(format!("shaders/{name}.wgsl: a texture of group 0 must be a texture_2d<u32>")));
            }
            entries.push(texture_entry(binding.binding));
            continue;
        }
        let ty = match var.space {
            naga::AddressSpace::Uniform => wgpu::BufferBindingType::Uniform,
            naga::AddressSpace::Storage { access } => {
                wgpu::BufferBindingType::Storage { read_only: !access.contains(naga::StorageAccess::STORE) }
            }
            _ => return Err(Error::gpu(format!("shaders/{name}.wgsl: unsupported binding kind"))),
        };
        let is_params = binding.binding == 0;
        if is_params != (ty == wgpu::BufferBindingType::Uniform) || binding.group != 0 {
            return Err(Error::gpu(format!(
                "shaders/{name}.wgsl: group 0 binding 0 must be the uniform parameters and the rest storage"
            )));
        }
        entries.push(layout_entry(binding.binding, ty, is_params, is_params.then_some(params_size)));
    }
    entries.sort_by_key(|e| e.binding);
    let contiguous = entries.iter().enumerate().all(|(i, e)| e.binding == i as u32);
    if entries.is_empty() || !contiguous {
        return Err(Error::gpu(format!("shaders/{name}.wgsl: group 0 bindings must be 0, 1, 2, … without gaps")));
    }
    let texture = |e: &wgpu::BindGroupLayoutEntry| matches!(e.ty, wgpu::BindingType::Texture { .. });
    if entries.iter().rev().skip(1).any(texture) {
        return Err(Error::gpu(format!("shaders/{name}.wgsl: a texture must be group 0's last binding")));
    }
    Ok((entries, uses_data))
}

/// Size and member offsets of a WGSL struct as naga lays it out (for layout tests).
pub fn wgsl_struct_layout(shader: &str, struct_name: &str) -> Result<(u32, Vec<(String, u32)>)> {
    struct_layout(&naga_module(shader)?, struct_name)
        .ok_or_else(|| Error::gpu(format!("shaders/{shader}.wgsl has no struct {struct_name}")))
}

/// Size and member offsets of struct `struct_name` of a parsed module.
pub fn struct_layout(module: &naga::Module, struct_name: &str) -> Option<(u32, Vec<(String, u32)>)> {
    for (_, ty) in module.types.iter() {
        if ty.name.as_deref() == Some(struct_name)
            && let naga::TypeInner::Struct { members, span } = &ty.inner
        {
            let offsets = members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset)).collect();
            return Some((*span, offsets));
        }
    }
    None
}

struct Op<'a> {
    kernel: &'a Kernel,
    offset: u32,
    buffers: Vec<&'a wgpu::Buffer>,
    texture: Option<&'a wgpu::TextureView>,
    data: Option<&'a wgpu::BindGroup>,
    workgroups: [u32; 3],
}

/// A plan of dispatches, encoded later into one compute pass.
pub struct Recording<'a> {
    ops: Vec<Op<'a>>,
    arena: Vec<u8>,
    align: usize,
    max_groups: u32,
}

impl<'a> Recording<'a> {
    pub fn new(ctx: &GpuContext) -> Recording<'a> {
        Recording {
            ops: Vec::new(),
            arena: Vec::new(),
            align: ctx.limits.min_uniform_buffer_offset_alignment.max(16) as usize,
            max_groups: ctx.limits.max_compute_workgroups_per_dimension,
        }
    }

    /// Add a dispatch of `kernel` with `params` and its group-0 `buffers` (bindings 1..).
    pub fn dispatch<P: Pod>(
        &mut self,
        kernel: &'a Kernel,
        params: &P,
        buffers: &[&'a wgpu::Buffer],
        data: Option<&'a wgpu::BindGroup>,
        workgroups: [u32; 3],
    ) -> Result<()> {
        self.dispatch_reading(kernel, params, (buffers, None), data, workgroups)
    }

    /// [`Recording::dispatch`] for a kernel whose group 0 ends with a texture: `texture` is bound
    /// after the buffers.
    pub fn dispatch_reading<P: Pod>(
        &mut self,
        kernel: &'a Kernel,
        params: &P,
        (buffers, texture): (&[&'a wgpu::Buffer], Option<&'a wgpu::TextureView>),
        data: Option<&'a wgpu::BindGroup>,
        workgroups: [u32; 3],
    ) -> Result<()> {
        if std::mem::size_of::<P>() as u64 != kernel.params_size
            || buffers.len() as u32 != kernel.buffers
            || texture.is_some() != kernel.reads_texture
            || data.is_some() != kernel.uses_data
        {
            return Err(Error::gpu(format!("{}: dispatch does not match the kernel's bindings", kernel.name)));
        }
        if workgroups.iter().any(|&w| w > self.max_groups) {
            return Err(Error::gpu(format!(
                "{}: {workgroups:?} workgroups exceed this adapter's limit of {} per dimension: use smaller chunks",
                kernel.name, self.max_groups
            )));
        }
        let offset = self.arena.len().next_multiple_of(self.align);
        self.arena.resize(offset, 0);
        self.arena.extend_from_slice(bytemuck::bytes_of(params));
        self.ops.push(Op { kernel, offset: offset as u32, buffers: buffers.to_vec(), texture, data, workgroups });
        Ok(())
    }

    /// Encode every dispatch, in order, into one compute pass of `encoder`.
    pub fn encode(
        self,
        ctx: &GpuContext,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
    ) -> Result<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let arena = ctx.buffer_init("params", &self.arena, wgpu::BufferUsages::UNIFORM)?;
        // A buffer's or view's hash and equality are its identity, which never changes.
        #[allow(clippy::mutable_key_type)]
        let mut groups: HashMap<GroupKey, wgpu::BindGroup> = HashMap::new();
        for op in &self.ops {
            groups.entry(op.key()).or_insert_with(|| bind_group(ctx, op, &arena));
        }
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("steplens"), timestamp_writes: timestamps });
        for op in &self.ops {
            pass.set_pipeline(&op.kernel.pipeline);
            pass.set_bind_group(0, &groups[&op.key()], &[op.offset]);
            if let Some(data) = op.data {
                pass.set_bind_group(1, data, &[]);
            }
            let [x, y, z] = op.workgroups;
            pass.dispatch_workgroups(x, y, z);
        }
        drop(pass);
        ctx.check()
    }
}

/// What one group-0 bind group is made of: the kernel, its buffers and its texture.
type GroupKey = (usize, Vec<wgpu::Buffer>, Option<wgpu::TextureView>);

impl Op<'_> {
    fn key(&self) -> GroupKey {
        let buffers = self.buffers.iter().map(|b| (*b).clone()).collect();
        (self.kernel as *const Kernel as usize, buffers, self.texture.cloned())
    }
}

fn bind_group(ctx: &GpuContext, op: &Op, arena: &wgpu::Buffer) -> wgpu::BindGroup {
    let mut entries = vec![wgpu::BindGroupEntry {
        binding: 0,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: arena,
            offset: 0,
            size: wgpu::BufferSize::new(op.kernel.params_size),
        }),
    }];
    for (i, b) in op.buffers.iter().enumerate() {
        entries.push(wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() });
    }
    if let Some(view) = op.texture {
        let binding = op.buffers.len() as u32 + 1;
        entries.push(wgpu::BindGroupEntry { binding, resource: wgpu::BindingResource::TextureView(view) });
    }
    ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some(op.kernel.name),
        layout: &op.kernel.layout0,
        entries: &entries,
    })
}

/// ⌈n / d⌉ as a workgroup count.
pub fn groups_for(n: usize, d: u32) -> u32 {
    n.div_ceil(d as usize) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group0(bindings: &str) -> Result<Vec<wgpu::BindGroupLayoutEntry>> {
        let src = format!(
            "struct P {{ n: u32 }}\n@group(0) @binding(0) var<uniform> prm: P;\n{bindings}\n\
             @compute @workgroup_size(1) fn main() {{}}"
        );
        let module = naga::front::wgsl::parse_str(&src).expect("test WGSL parses");
        reflect_group0(&module, "test", 4).map(|(entries, _)| entries)
    }

    #[test]
    fn group0_may_end_with_one_u32_texture() {
        let entries = group0(
            "@group(0) @binding(1) var<storage, read> a: array<u32>;\n\
             @group(0) @binding(2) var t: texture_2d<u32>;",
        )
        .unwrap();
        assert_eq!(entries.len(), 3);
        assert!(matches!(entries[1].ty, wgpu::BindingType::Buffer { .. }));
        assert!(matches!(entries[2].ty, wgpu::BindingType::Texture { sample_type: wgpu::TextureSampleType::Uint, .. }));
        let before_a_buffer = group0(
            "@group(0) @binding(1) var t: texture_2d<u32>;\n\
             @group(0) @binding(2) var<storage, read> a: array<u32>;",
        );
        assert!(before_a_buffer.unwrap_err().to_string().contains("last binding"));
        let floats = group0("@group(0) @binding(1) var t: texture_2d<f32>;");
        assert!(floats.unwrap_err().to_string().contains("texture_2d<u32>"));
    }
}
