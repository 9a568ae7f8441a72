//! Criterion benchmarks on the adapter wgpu picks (`WGPU_BACKEND`, `WGPU_ADAPTER_NAME`): the
//! batched matmul and weight gradient at a few sizes, one training epoch (fused and unfused), and
//! the analysis of one batch. Each iteration is one submit and one wait. `steplens bench` gives
//! the headline figures against the anchors.

use criterion::{Criterion, criterion_group, criterion_main};
use steplens::{
    analysis::{self, Batches, Settings, SvdMethod},
    data::mnist,
    engine::{Block, Engine, EpochPlan, GradBlock, Perturbation, RowGroups, StepRule},
    gpu::{
        AdapterRequest, GpuContext, GpuEngine, KernelPath,
        engine::GpuData,
        kernel::{Recording, data_layout},
        kernels::{Logits, Perturb, PerturbParams, Project, ProjectParams, Rows, Specialisation, WeightGrad},
    },
    model::{InitKind, LossKind, Model, ModelKind},
    train::Batching,
    validate::uniforms,
};

fn context() -> GpuContext {
    GpuContext::new(&AdapterRequest::default()).expect("a GPU adapter (e.g. Mesa's lavapipe)")
}

fn kernels(c: &mut Criterion) {
    let data = mnist::embedded_01().unwrap();
    let ctx = context();
    let layout = data_layout(&ctx);
    let gpu_data = GpuData::upload(&ctx, &layout, &data.train).unwrap();
    let spec = Specialisation { model: 0, x_u8: true, textured: true };
    let logits = Logits::new(&ctx, &layout, &spec).unwrap();
    let weight_grad = WeightGrad::new(&ctx, &layout, &spec).unwrap();
    let usage = wgpu::BufferUsages::STORAGE;
    for sets in [1u32, 100] {
        let rows = RowGroups { groups: 1, sets_per_group: sets, rows: 64, offset: 0, stride: 64 };
        let theta = uniforms(sets as usize * 1570, 1, -0.1, 0.1);
        let table: Vec<u32> = (0..64).collect();
        let tb = ctx.buffer_init("theta", bytemuck::cast_slice(&theta), usage).unwrap();
        let rb = ctx.buffer_init("rows", bytemuck::cast_slice(&table), usage).unwrap();
        let zb = ctx.buffer("z", sets as u64 * 64 * 2 * 4).unwrap();
        let gb = ctx.buffer("g", sets as u64 * 1570 * 4).unwrap();
        let at = Rows { data: &gpu_data.bind, table: &rb, groups: rows, classes: 2 };
        c.bench_function(&format!("logits {sets} sets x 64 rows x 784"), |b| {
            b.iter(|| {
                let mut rec = Recording::new(&ctx);
                logits.encode(&mut rec, at, 1570, &tb, &zb).unwrap();
                let mut enc = ctx.encoder();
                rec.encode(&ctx, &mut enc, None).unwrap();
                ctx.submit_and_wait(enc).unwrap();
            })
        });
        let block = GradBlock { c0: 0, nrows: 2, with_bias: true, p: 784 };
        c.bench_function(&format!("weight_grad {sets} sets x 64 rows x 1570"), |b| {
            b.iter(|| {
                let mut rec = Recording::new(&ctx);
                weight_grad.encode(&mut rec, at, block, &zb, &gb).unwrap();
                let mut enc = ctx.encoder();
                rec.encode(&ctx, &mut enc, None).unwrap();
                ctx.submit_and_wait(enc).unwrap();
            })
        });
    }
    analysis_kernels(c, &ctx, &layout, &spec);
}

/// Record with `record`, then one submit and one wait.
fn submit<'a>(ctx: &'a GpuContext, record: impl FnOnce(&mut Recording<'a>)) {
    let mut rec = Recording::new(ctx);
    record(&mut rec);
    let mut enc = ctx.encoder();
    rec.encode(ctx, &mut enc, None).unwrap();
    ctx.submit_and_wait(enc).unwrap();
}

/// The analysis' other kernels at its sizes (one batch: K = 100 copies, the row-0 block of 784).
fn analysis_kernels(c: &mut Criterion, ctx: &GpuContext, layout: &wgpu::BindGroupLayout, spec: &Specialisation) {
    let usage = wgpu::BufferUsages::STORAGE;
    let (k, dim, bd) = (100u32, 1570u32, 784u32);
    let buffer = |label: &str, v: &[f32]| ctx.buffer_init(label, bytemuck::cast_slice(v), usage).unwrap();
    let theta = buffer("theta", &uniforms(dim as usize, 1, -0.1, 0.1));
    let ids = ctx.buffer_init("ids", bytemuck::cast_slice(&[0u32]), usage).unwrap();
    let perturbed = ctx.buffer("perturbed", (k * dim * 4) as u64).unwrap();
    let grads = buffer("g", &uniforms((k * bd) as usize, 2, -1.0, 1.0));
    let q = buffer("q", &uniforms(bd as usize, 3, -1.0, 1.0));
    let pairs = ctx.buffer("pairs", (k * 8) as u64).unwrap();
    let (perturb, project) = (Perturb::new(ctx, layout, spec).unwrap(), Project::new(ctx, layout, spec).unwrap());
    let prm = PerturbParams::new(k, k, dim, Perturbation::Uniform { scale: 0.01 }, 0, 0);
    c.bench_function("perturb 100 x 1570", |b| {
        b.iter(|| submit(ctx, |rec| perturb.encode(rec, prm, &theta, &ids, &perturbed).unwrap()))
    });
    let prm = ProjectParams { points: k, block_dim: bd, dim, p: 784, classes: 2, c0: 0, nrows: 1, sets: k };
    c.bench_function("project 100 x 784", |b| {
        b.iter(|| submit(ctx, |rec| project.encode(rec, prm, &q, &perturbed, &grads, &pairs).unwrap()))
    });
    c.bench_function("empty submit and wait", |b| b.iter(|| submit(ctx, |_| {})));
}

fn epoch(c: &mut Criterion) {
    let data = mnist::embedded_01().unwrap();
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &data.train).unwrap();
    let batching = Batching::new(data.train.n, 64, 0, false).unwrap();
    let batches = batching.epoch(1);
    let lrs = vec![0.005f32; batching.steps()];
    let plan = EpochPlan {
        batches: &batches,
        batch_size: 64,
        steps: batching.steps(),
        lrs: &lrs,
        rule: StepRule::Table,
        read_params: false,
        evaluate: false,
    };
    let mut group = c.benchmark_group("train epoch (softmax, b=64, 197 steps)");
    group.sample_size(10);
    for path in [KernelPath::Fused, KernelPath::Unfused] {
        let mut engine = GpuEngine::new(context(), model, &data, 1, path).unwrap();
        engine.set_params(&model.init(InitKind::Xavier, 0)).unwrap();
        group.bench_function(format!("{path:?}"), |b| b.iter(|| engine.run_epoch(&plan).unwrap()));
    }
    group.finish();
}

fn analysis_of_one_batch(c: &mut Criterion) {
    let data = mnist::embedded_01().unwrap();
    let model = Model::for_data(ModelKind::Softmax, LossKind::Ce, &data.train).unwrap();
    let mut engine = GpuEngine::new(context(), model, &data, 1, KernelPath::Fused).unwrap();
    let theta = model.init(InitKind::Xavier, 0);
    let batching = Batching::new(data.train.n, 32, 0, false).unwrap();
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: 32, n: data.train.n };
    let mut group = c.benchmark_group("analysis of one batch (b=32, K=100)");
    group.sample_size(10);
    for method in [SvdMethod::Residual, SvdMethod::Full] {
        let settings = Settings {
            points: 100,
            perturbation: Perturbation::Uniform { scale: 0.01 },
            block: Block::Row(0),
            seed: 0,
            center: false,
            method,
        };
        group.bench_function(format!("{method:?}"), |b| {
            b.iter(|| analysis::analyze(&mut engine, &theta, &batches, &[0], &settings, 1, &mut |_| {}).unwrap())
        });
    }
    group.finish();
}

criterion_group!(benches, kernels, epoch, analysis_of_one_batch);
criterion_main!(benches);
