//! What the adapter can do at best, to read the kernel figures against: the cost of one
//! dependent dispatch (an empty kernel, many dispatches in one pass, one submit) and the ALU peak
//! (a chain of vec4 FMAs in registers, no memory traffic). These are probes, not shipped kernels,
//! so their WGSL lives here. BENCHMARKS.md explains the figures on lavapipe with them.

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
"#;

const INVOCATIONS: u32 = 64 * 256;
const ITERS: u32 = 1024;
const DISPATCHES: u32 = 200;

struct Probe {
    ctx: GpuContext,
    empty: (wgpu::ComputePipeline, wgpu::BindGroup),
    fma: (wgpu::ComputePipeline, wgpu::BindGroup),
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
        // Each entry point gets its own derived layout, hence its own bind group.
        let pipeline = |entry: &str| {
            let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            });
            let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &[
                    wgpu::BindGroupEntry { binding: 0, resource: params.as_entire_binding() },
                    wgpu::BindGroupEntry { binding: 1, resource: out.as_entire_binding() },
                ],
            });
            (pipeline, bind)
        };
        let (empty, fma) = (pipeline("empty"), pipeline("fma_chain"));
        Probe { ctx, empty, fma }
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
    group.finish();
}

criterion_group!(benches, limits);
criterion_main!(benches);
