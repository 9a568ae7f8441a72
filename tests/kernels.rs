//! Every WGSL kernel against its f64 CPU twin, on fresh random inputs (never zeros) at awkward
//! sizes, outputs poisoned with NaN first so unwritten elements show.
//! Tolerance: normwise relative error ≤ 1e-5 (f32 arithmetic against f64).

mod common;

use bytemuck::cast_slice;
use common::*;
use steplens::{
    cpu::kernels as twin,
    data::Dataset,
    engine::{GradBlock, RowGroups},
    gpu::{
        GpuContext,
        engine::GpuData,
        kernel::{Recording, data_layout},
        kernels::{Dlogits, Evaluate, Logits, SgdParams, SgdUpdate, Specialisation, WeightGrad},
    },
    model::LossCode,
};

const TOL: f64 = 1e-5;

/// (samples in the set, features, rows per group, sets per group, groups, classes, u8 pixels)
const SHAPES: &[(usize, usize, u32, u32, u32, usize, bool)] = &[
    (5, 1, 1, 1, 1, 2, false),
    (50, 33, 33, 3, 2, 3, true),
    (70, 785, 64, 1, 3, 2, false),
    (40, 17, 7, 5, 1, 10, true),
    (90, 784, 32, 2, 2, 1, true),
];

struct Setup {
    ctx: GpuContext,
    layout: wgpu::BindGroupLayout,
    spec: Specialisation,
    data: Dataset,
    gpu_data: GpuData,
}

fn setup(n: usize, p: usize, classes: usize, u8: bool, code: LossCode, tag: u32) -> Setup {
    let ctx = gpu();
    let layout = data_layout(&ctx);
    let data = dataset(n, p, Some(classes.max(2)), u8, tag);
    let gpu_data = GpuData::upload(&ctx, &layout, &data).unwrap();
    Setup { ctx, layout, spec: Specialisation { model: code as u32, x_u8: u8 }, data, gpu_data }
}

fn storage(ctx: &GpuContext, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    ctx.buffer_init(label, bytes, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC).unwrap()
}

fn run(ctx: &GpuContext, rec: Recording, out: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let mut enc = ctx.encoder();
    rec.encode(ctx, &mut enc, None).unwrap();
    let bytes = ctx.submit_and_read(enc, &[(out, 0, len as u64 * 4)]).unwrap();
    cast_slice(&bytes[0]).to_vec()
}

fn table(n: usize, len: usize, tag: u32) -> Vec<u32> {
    (0..len).map(|i| steplens::prng::hash(11, tag, 0, 0, i as u32) % n as u32).collect()
}

fn rows(rows: u32, spg: u32, groups: u32) -> RowGroups {
    RowGroups { groups, sets_per_group: spg, rows, offset: 3, stride: rows + 2 }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn logits_matches_twin() {
    for (k, &(n, p, r, spg, groups, classes, u8)) in SHAPES.iter().enumerate() {
        let s = setup(n, p, classes, u8, LossCode::SoftmaxCe, k as u32);
        let rg = rows(r, spg, groups);
        let dim = classes * (p + 1);
        let theta = uniforms(rg.sets() as usize * dim, 40 + k as u32, -1.0, 1.0);
        let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
        let out_len = (rg.sets() * r) as usize * classes;
        let (tb, rb) = (storage(&s.ctx, "theta", cast_slice(&theta)), storage(&s.ctx, "table", cast_slice(&tab)));
        let ob = storage(&s.ctx, "out", &poison(out_len));
        let kernel = Logits::new(&s.ctx, &s.layout, &s.spec).unwrap();
        let mut rec = Recording::new(&s.ctx);
        kernel.encode(&mut rec, &s.gpu_data.bind, rg, classes as u32, dim as u32, &tb, &rb, &ob).unwrap();
        let got = run(&s.ctx, rec, &ob, out_len);
        let want = twin::logits(&s.data, &f64s(&theta), rg, classes, dim, &tab);
        assert_close(&format!("logits shape {k}"), &got, &want, TOL);
    }
}

#[test]
fn dlogits_matches_twin_for_every_loss() {
    let codes = [LossCode::SoftmaxCe, LossCode::SoftmaxSeedCompat, LossCode::Logistic, LossCode::Squares];
    for code in codes {
        for (k, &(n, p, r, spg, groups, classes, u8)) in SHAPES.iter().enumerate() {
            let classes = if matches!(code, LossCode::Logistic | LossCode::Squares) { 1 } else { classes.max(2) };
            let mut s = setup(n, p, classes, u8, code, k as u32);
            if code == LossCode::Squares {
                s.data.targets = uniforms(n, 70 + k as u32, -2.0, 2.0);
                s.gpu_data = GpuData::upload(&s.ctx, &s.layout, &s.data).unwrap();
            }
            let rg = rows(r, spg, groups);
            let len = (rg.sets() * r) as usize;
            let z = uniforms(len * classes, 50 + k as u32, -4.0, 4.0);
            let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
            let zb = storage(&s.ctx, "z", cast_slice(&z));
            let rb = storage(&s.ctx, "table", cast_slice(&tab));
            let db = storage(&s.ctx, "dz", &poison(len * classes));
            let lb = storage(&s.ctx, "loss", &poison(len));
            let kernel = Dlogits::new(&s.ctx, &s.layout, &s.spec).unwrap();
            let mut rec = Recording::new(&s.ctx);
            let scale = 1.0 / 3.0;
            kernel.encode(&mut rec, &s.gpu_data.bind, rg, classes as u32, scale, &zb, &rb, &db, &lb).unwrap();
            let mut enc = s.ctx.encoder();
            rec.encode(&s.ctx, &mut enc, None).unwrap();
            let out = s
                .ctx
                .submit_and_read(enc, &[(&db, 0, (len * classes * 4) as u64), (&lb, 0, (len * 4) as u64)])
                .unwrap();
            let (want_dz, want_loss) = twin::dlogits(code, &s.data, &f64s(&z), rg, classes, scale as f64, &tab);
            assert_close(&format!("{code:?} dz shape {k}"), cast_slice(&out[0]), &want_dz, TOL);
            assert_close(&format!("{code:?} loss shape {k}"), cast_slice(&out[1]), &want_loss, TOL);
        }
    }
}

#[test]
fn weight_grad_matches_twin_for_blocks() {
    for (k, &(n, p, r, spg, groups, classes, u8)) in SHAPES.iter().enumerate() {
        let s = setup(n, p, classes, u8, LossCode::SoftmaxCe, k as u32);
        let rg = rows(r, spg, groups);
        let dz = uniforms((rg.sets() * r) as usize * classes, 60 + k as u32, -1.0, 1.0);
        let tab = table(n, (3 + groups * (r + 2)) as usize, k as u32);
        let blocks = [
            GradBlock { c0: 0, nrows: classes as u32, with_bias: true, p: p as u32 },
            GradBlock { c0: (classes - 1) as u32, nrows: 1, with_bias: false, p: p as u32 },
        ];
        for block in blocks {
            let len = rg.sets() as usize * block.dim() as usize;
            let db = storage(&s.ctx, "dz", cast_slice(&dz));
            let rb = storage(&s.ctx, "table", cast_slice(&tab));
            let gb = storage(&s.ctx, "grads", &poison(len));
            let kernel = WeightGrad::new(&s.ctx, &s.layout, &s.spec).unwrap();
            let mut rec = Recording::new(&s.ctx);
            kernel.encode(&mut rec, &s.gpu_data.bind, rg, classes as u32, block, &db, &rb, &gb).unwrap();
            let got = run(&s.ctx, rec, &gb, len);
            let want = twin::weight_grad(&s.data, &f64s(&dz), rg, classes, block, &tab);
            assert_close(&format!("weight_grad shape {k} {block:?}"), &got, &want, TOL);
        }
    }
}

#[test]
fn sgd_update_matches_twin() {
    for (sets, dim) in [(1usize, 1usize), (3, 33), (2, 785), (5, 1570)] {
        let s = setup(4, 3, 2, false, LossCode::SoftmaxCe, 0);
        let theta = uniforms(sets * dim, 1, -1.0, 1.0);
        let grads = uniforms(sets * dim, 2, -1.0, 1.0);
        let lrs = uniforms(sets * 4, 3, 0.01, 2.0);
        let tb = storage(&s.ctx, "theta", cast_slice(&theta));
        let (gb, lb) = (storage(&s.ctx, "g", cast_slice(&grads)), storage(&s.ctx, "lr", cast_slice(&lrs)));
        let kernel = SgdUpdate::new(&s.ctx, &s.layout, &s.spec).unwrap();
        let mut rec = Recording::new(&s.ctx);
        let prm = SgdParams { sets: sets as u32, dim: dim as u32, lr_stride: 4, lr_index: 2 };
        kernel.encode(&mut rec, prm, &tb, &gb, &lb).unwrap();
        let got = run(&s.ctx, rec, &tb, sets * dim);
        let mut want = f64s(&theta);
        twin::sgd_update(&mut want, &f64s(&grads), &f64s(&lrs), dim, 4, 2);
        assert_close(&format!("sgd {sets}x{dim}"), &got, &want, TOL);
    }
}

#[test]
fn evaluate_matches_twin() {
    let codes = [LossCode::SoftmaxCe, LossCode::SoftmaxSeedCompat, LossCode::Logistic, LossCode::Squares];
    for (k, &(n, p, classes, sets)) in
        [(1usize, 1usize, 2usize, 1usize), (257, 33, 3, 2), (600, 785, 2, 3), (33, 64, 10, 1)].iter().enumerate()
    {
        for code in codes {
            let classes = if matches!(code, LossCode::Logistic | LossCode::Squares) { 1 } else { classes };
            let s = setup(n, p, classes, k % 2 == 0, code, 20 + k as u32);
            let dim = classes * (p + 1);
            let theta = uniforms(sets * dim, 80 + k as u32, -0.2, 0.2);
            let tb = storage(&s.ctx, "theta", cast_slice(&theta));
            let pb = storage(&s.ctx, "partials", &poison((Evaluate::partials_size(sets as u32, n) / 4) as usize));
            let ob = storage(&s.ctx, "totals", &poison(sets * 2));
            let kernel = Evaluate::new(&s.ctx, &s.layout, &s.spec).unwrap();
            let mut rec = Recording::new(&s.ctx);
            kernel
                .encode(&mut rec, &s.gpu_data.bind, n, sets as u32, classes as u32, dim as u32, &tb, &pb, &ob)
                .unwrap();
            let got = run(&s.ctx, rec, &ob, sets * 2);
            // The kernels return sums; the twin means.
            let want: Vec<f64> = twin::evaluate(code, &s.data, &f64s(&theta), classes, dim)
                .into_iter()
                .flat_map(|(l, a)| [l * n as f64, if code == LossCode::Squares { 0.0 } else { a * n as f64 }])
                .collect();
            let losses: Vec<f32> = got.iter().step_by(2).copied().collect();
            let want_losses: Vec<f64> = want.iter().step_by(2).copied().collect();
            assert_close(&format!("{code:?} eval loss {k}"), &losses, &want_losses, TOL);
            for (g, w) in got.iter().skip(1).step_by(2).zip(want.iter().skip(1).step_by(2)) {
                // Accuracy counts: equal unless a logit sits within f32 rounding of a tie.
                assert!((*g as f64 - w).abs() <= 1.5, "{code:?} correct count {g} vs {w}");
            }
        }
    }
}
