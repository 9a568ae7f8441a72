//! What the adapter can do at best, to read the kernel figures against: the cost of one
//! dependent dispatch (an empty kernel, many dispatches in one pass, one submit), the ALU peak
//! (a chain of vec4 FMAs in registers, no memory traffic) and what a lane's load costs by where
//! the data lives (a storage buffer, a uniform buffer, a texture; each lane its own address).
//! These are probes, not shipped kernels, so their WGSL lives here. BENCHMARKS.md explains the
//! figures on lavapipe with them.

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use steplens::gpu::{AdapterRequest, GpuContext};

const PROBE: &str = r#"
struct Probe { iters: u32, _a: u32, _b: u32, _c: u32 }
@group(0) @binding(0) var<uniform> prm: Probe;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;

@compute @workgroup_size(64)
fn empty(@builtin(global_invocation_id) gid: vec3<u32>) {
    if prm.iters == 0xffffffffu { out[gid.x] = vec4<f32>(0.0); }
}

// 8 independent vec4 chains: 8 · 4 · 2 = 64 flops per iteration per invocation.
@compute @workgroup_size(64)
fn fma_chain(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = vec4<f32>(0.9999);
    let c = vec4<f32>(1e-4);
    var a0 = vec4<f32>(f32(gid.x)); var a1 = a0 + 1.0; var a2 = a0 + 2.0; var a3 = a0 + 3.0;
    var a4 = a0 + 4.0; var a5 = a0 + 5.0; var a6 = a0 + 6.0; var a7 = a0 + 7.0;
    for (var i = 0u; i < prm.iters; i++) {
        a0 = fma(a0, m, c); a1 = fma(a1, m, c); a2 = fma(a2, m, c); a3 = fma(a3, m, c);
        a4 = fma(a4, m, c); a5 = fma(a5, m, c); a6 = fma(a6, m, c); a7 = fma(a7, m, c);
    }
    out[gid.x] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7;
}

// The same LOAD_VEC4S vec4<u32> (64 KiB) three ways; every lane reads its own vec4 each
// iteration. llvmpipe (Mesa 22.3) loads storage (and workgroup) memory one lane at a time,
// inserting each word at a variable lane index; uniform buffers and textures go through its
// gather code instead.
@group(0) @binding(2) var<storage, read> s_words: array<vec4<u32>>;
@group(0) @binding(3) var<uniform> u_words: array<vec4<u32>, 4096>;
@group(0) @binding(4) var t_words: texture_2d<u32>;

fn load_at(lane: u32, i: u32) -> u32 {
    return (lane * 97u + i * 61u) & 4095u;
}

@compute @workgroup_size(64)
fn load_storage(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < prm.iters; i++) { acc ^= s_words[load_at(gid.x, i)]; }
    out[gid.x] = vec4<f32>(acc);
}

@compute @workgroup_size(64)
fn load_uniform(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < prm.iters; i++) { acc ^= u_words[load_at(gid.x, i)]; }
    out[gid.x] = vec4<f32>(acc);
}

@compute @workgroup_size(64)
fn load_texture(@builtin(global_invocation_id) gid: vec3<u32>) {
    var acc = vec4<u32>(0u);
    for (var i = 0u; i < prm.iters; i++) {
        let k = load_at(gid.x, i);
        acc ^= textureLoad(t_words, vec2<u32>(k & 63u, k >> 6u), 0);
    }
    out[gid.x] = vec4<f32>(acc);
}
"#;

const INVOCATIONS: u32 = 64 * 256;
const ITERS: u32 = 1024;
const DISPATCHES: u32 = 200;
/// The load probes' data: 4,096 vec4<u32> (a 64 × 64 texture), and their workgroups of 64.
const LOAD_VEC4S: u32 = 4096;
const LOAD_GROUPS: u32 = 16;

struct Probe {
    ctx: GpuContext,
    empty: (wgpu::ComputePipeline, wgpu::BindGroup),
    fma: (wgpu::ComputePipeline, wgpu::BindGroup),
    loads: Vec<(&'static str, (wgpu::ComputePipeline, wgpu::BindGroup))>,
}

impl Probe {
    fn new() -> Probe {
        let ctx = GpuContext::new(&AdapterRequest::default()).expect("a GPU adapter (e.g. Mesa's lavapipe)");
        let module = ctx.device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("probe"),
            source: wgpu::ShaderSource::Wgsl(PROBE.into()),
        });
        let params = ctx
            .buffer_init("probe params", bytemuck::cast_slice(&[ITERS, 0, 0, 0]), wgpu::BufferUsages::UNIFORM)
            .unwrap();
        let out = ctx.buffer("probe out", INVOCATIONS as u64 * 16).unwrap();
        let words: Vec<u32> = (0..LOAD_VEC4S * 4).map(|i| i.wrapping_mul(2_654_435_761)).collect();
        let bytes: &[u8] = bytemuck::cast_slice(&words);
        let storage = ctx.buffer_init("probe storage words", bytes, wgpu::BufferUsages::STORAGE).unwrap();
        let uniform = ctx.buffer_init("probe uniform words", bytes, wgpu::BufferUsages::UNIFORM).unwrap();
        let side = (LOAD_VEC4S as f64).sqrt() as u32;
        let view = ctx.texel_words("probe texture words", side, side, bytes).create_view(&Default::default());
        // Each entry point gets its own derived layout, hence its own bind group, with the
        // bindings it uses.
        let pipeline = |entry: &str, data: Option<wgpu::BindGroupEntry>| {
            let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            let mut entries = vec![
                wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
            ];
            entries.extend(data);
            let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            });
            (pipeline, bind)
        };
        let (empty, fma) = (pipeline("empty", None), pipeline("fma_chain", None));
        let loads = vec![
            (
                "storage buffer",
                pipeline(
                    "load_storage",
                    Some(wgpu::BindGroupEntry { binding: 2, resource: storage.as_entire_binding() }),
                ),
            ),
            (
                "uniform buffer",
                pipeline(
                    "load_uniform",
                    Some(wgpu::BindGroupEntry { binding: 3, resource: uniform.as_entire_binding() }),
                ),
            ),
            (
                "texture",
                pipeline(
                    "load_texture",
                    Some(wgpu::BindGroupEntry { binding: 4, resource: wgpu::BindingResource::TextureView(&view) }),
                ),
            ),
        ];
        Probe { ctx, empty, fma, loads }
    }

    /// `dispatches` dispatches of `groups` workgroups in one pass and one submit, then a wait.
    fn run(&self, (pipeline, bind): &(wgpu::ComputePipeline, wgpu::BindGroup), dispatches: u32, groups: u32) {
        let mut enc = self.ctx.encoder();
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind, &[]);
            for _ in 0..dispatches {
                pass.dispatch_workgroups(groups, 1, 1);
            }
        }
        self.ctx.submit_and_wait(enc).unwrap();
    }
}

fn limits(c: &mut Criterion) {
    let probe = Probe::new();
    let mut group = c.benchmark_group("adapter limits");
    group.measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(DISPATCHES as u64));
    group.bench_function(format!("{DISPATCHES} dependent empty dispatches"), |b| {
        b.iter(|| probe.run(&probe.empty, DISPATCHES, 1))
    });
    group.throughput(Throughput::Elements(INVOCATIONS as u64 * ITERS as u64 * 64));
    group.bench_function("vec4 FMA chains (flops)", |b| b.iter(|| probe.run(&probe.fma, 1, INVOCATIONS / 64)));
    group.throughput(Throughput::Elements(LOAD_GROUPS as u64 * 64 * ITERS as u64));
    for (name, load) in &probe.loads {
        group.bench_function(format!("vec4 lane loads, {name}"), |b| b.iter(|| probe.run(load, 1, LOAD_GROUPS)));
    }
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
