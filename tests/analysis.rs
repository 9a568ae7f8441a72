//! The gradient-subspace analysis on the GPU against the f64 CPU reference (same PRNG stream),
//! the default residual path against the full SVD, and the least-squares slope against the exact
//! batch Hessian. Tolerances: f32 kernels 1e-5 normwise; directions and projection pairs 1e-4
//! (f32 residuals and gradients on both sides). The whole spectrum is in `tests/spectrum.rs`.

mod common;

use common::*;
use steplens::{
    analysis::{self, Batches, Settings, SvdMethod},
    cpu::{CpuEngine, kernels as twin},
    engine::{Block, Engine, Perturbation, PerturbedRequest},
    gpu::{GpuEngine, KernelPath},
    model::{InitKind, LossKind, Model, ModelKind},
    prng,
    train::Batching,
};

fn setup(kind: ModelKind, classes: Option<usize>, n: usize, p: usize) -> (steplens::data::Data, Model, Vec<f32>) {
    let d = data(dataset(n, p, classes, true, 3), None);
    let model = Model::for_data(kind, LossKind::Ce, &d.train).unwrap();
    let theta = model.init(InitKind::Xavier, 4);
    (d, model, theta)
}

#[allow(clippy::too_many_arguments)]
fn request<'a>(
    theta: &'a [f32],
    rows: &'a [u32],
    ids: &'a [u32],
    b: usize,
    k: usize,
    pert: Perturbation,
    block: Block,
    n: usize,
    stream: u32,
) -> PerturbedRequest<'a> {
    PerturbedRequest {
        theta,
        batches: rows,
        batch_ids: ids,
        batch_size: b,
        points: k,
        perturbation: pert,
        seed: 17,
        stream,
        block,
        grad_scale: -(b as f32) / n as f32,
    }
}

#[test]
fn perturbed_gradients_match_cpu_reference() {
    let cases = [
        (ModelKind::Softmax, Some(3), Block::Row(1), Perturbation::Uniform { scale: 0.01 }, 33, 7),
        (ModelKind::Softmax, Some(2), Block::All, Perturbation::Gaussian { sigma: 0.02 }, 1, 100),
        (ModelKind::Lls, None, Block::All, Perturbation::Uniform { scale: 0.01 }, 32, 5),
        (ModelKind::Logreg, Some(2), Block::Row(0), Perturbation::Uniform { scale: 0.05 }, 17, 33),
    ];
    for (kind, classes, block, pert, b, k) in cases {
        let (d, model, theta) = setup(kind, classes, 200, 45);
        let rows: Vec<u32> = prng::permutation(200, 1, 0)[..3 * b].to_vec();
        let ids = [4u32, 9, 0];
        let req = request(&theta, &rows, &ids, b, k, pert, block, 200, prng::stream::PERTURB_SVD);
        let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
        let got = g.perturbed_gradients(&req).unwrap();
        let (_, want) = twin::perturbed_gradients(&model, &d.train, &req);
        assert_close(&format!("G {kind:?} {block:?} {pert:?} b={b} K={k}"), &got, &want, 1e-5);
    }
}

#[test]
fn gpu_perturbations_are_the_rust_prng_numbers() {
    // θ = 0 for one parameter: the perturbed parameter *is* δ, read back through the logits of a
    // one-feature, one-sample batch with x = 1 (u8 255 → 1.0 exactly).
    let mut d = data(dataset(1, 1, None, true, 0), None);
    d.train.features = steplens::data::Features::U8(vec![255]);
    let model = Model::for_data(ModelKind::Lls, LossKind::Ce, &d.train).unwrap();
    let theta = vec![0.0f32; 2];
    let ids = [3u32, 8];
    let rows = [0u32, 0];
    let k = 50;
    for pert in [Perturbation::Uniform { scale: 1.0 }, Perturbation::Gaussian { sigma: 1.0 }] {
        // lls gradient of (w + b − y)² scaled by −1/n·… is affine in δ: recover δ_w + δ_b from
        // g_w = 2(δ_w + δ_b − y)·grad_scale.
        let req = request(&theta, &rows, &ids, 1, k, pert, Block::Row(0), 1, prng::stream::PERTURB_PROJECT);
        let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
        let got = g.perturbed_gradients(&req).unwrap();
        let y = d.train.targets[0] as f64;
        for (s, gv) in got.iter().enumerate() {
            let (batch, kk) = (ids[s / k], (s % k) as u32);
            let draw = |i| match pert {
                Perturbation::Uniform { .. } => prng::uniform(17, prng::stream::PERTURB_PROJECT, batch, kk, i) as f64,
                Perturbation::Gaussian { .. } => prng::normal(17, prng::stream::PERTURB_PROJECT, batch, kk, i) as f64,
            };
            let want = -2.0 * (draw(0) + draw(1) - y);
            assert!((*gv as f64 - want).abs() < 1e-5 * (1.0 + want.abs()), "{pert:?} set {s}: {gv} vs {want}");
        }
    }
}

fn settings(method: SvdMethod, center: bool, block: Block) -> Settings {
    Settings { points: 24, perturbation: Perturbation::Uniform { scale: 0.01 }, block, seed: 5, center, method }
}

#[test]
fn gpu_analysis_matches_cpu_and_residual_matches_full_svd() {
    let (d, model, theta) = setup(ModelKind::Softmax, Some(2), 300, 60);
    let batching = Batching::new(300, 20, 1, false).unwrap();
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: 20, n: 300 };
    let which = [0usize, 3, 14];
    for center in [false, true] {
        for block in [Block::Row(0), Block::All] {
            let run = |engine: &mut dyn Engine, method| {
                analysis::analyze(engine, &theta, &batches, &which, &settings(method, center, block), 2, &mut |_| {})
                    .unwrap()
            };
            let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
            let mut c = CpuEngine::new(model, &d, 1);
            let gpu_residual = run(&mut g, SvdMethod::Residual);
            let gpu_full = run(&mut g, SvdMethod::Full);
            let cpu_full = run(&mut c, SvdMethod::Full);
            for ((a, b), r) in gpu_residual.iter().zip(&gpu_full).zip(&cpu_full) {
                let what = format!("center={center} {block:?} batch {}", a.batch);
                let rq: Vec<f64> = r.q.iter().map(|&v| v as f64).collect();
                assert_close(&format!("{what}: q residual vs cpu"), &a.q, &rq, 1e-4);
                assert_close(&format!("{what}: q full vs cpu"), &b.q, &rq, 1e-4);
                let s: Vec<f32> = a.sigma.iter().take(2).map(|&v| v as f32).collect();
                assert_close(&format!("{what}: σ1,σ2 residual vs cpu"), &s, &r.sigma[..2], 1e-4);
                let pairs: Vec<f32> = a.pairs.iter().flatten().copied().collect();
                let want: Vec<f64> = r.pairs.iter().flatten().map(|&v| v as f64).collect();
                assert_close(&format!("{what}: projection pairs"), &pairs, &want, 1e-4);
                // The sign convention (GUIDE §3): q · mean_k g_i(θ + δ_k) ≥ 0 over the very
                // perturbations the SVD saw, recomputed by the f64 reference.
                assert!(a.q.iter().all(|v| v.is_finite()));
                let rows = &table[a.batch * 20..(a.batch + 1) * 20];
                let ids = [a.batch as u32];
                let s = settings(SvdMethod::Residual, center, block);
                let req = PerturbedRequest {
                    theta: &theta,
                    batches: rows,
                    batch_ids: &ids,
                    batch_size: 20,
                    points: s.points,
                    perturbation: s.perturbation,
                    seed: s.seed,
                    stream: prng::stream::PERTURB_SVD,
                    block,
                    grad_scale: -20.0 / 300.0,
                };
                let g = c.perturbed_gradients(&req).unwrap();
                let bd = a.q.len();
                let mean: Vec<f64> = (0..bd)
                    .map(|j| (0..s.points).map(|k| g[k * bd + j] as f64).sum::<f64>() / s.points as f64)
                    .collect();
                let dot: f64 = a.q.iter().zip(&mean).map(|(&q, m)| q as f64 * m).sum();
                let norm = mean.iter().map(|m| m * m).sum::<f64>().sqrt();
                assert!(dot >= -1e-6 * norm, "{what}: q · mean g = {dot:.3e} < 0 (|mean g| = {norm:.3e})");
                if !center {
                    // Uncentred, q is nearly the mean gradient's direction: clearly positive.
                    assert!(dot > 0.5 * norm, "{what}: q · mean g = {dot:.3e}, |mean g| = {norm:.3e}");
                }
            }
        }
    }
}

#[test]
fn lls_slope_is_the_exact_curvature_along_q() {
    // Least squares: y_k = q·g(θ+δ_k) is exactly linear in δ, and E[β] = −(b/n) qᵀ H_i q with
    // H_i = (2/b) X_iᵀ X_i the Hessian of batch i's mean loss restricted to the block.
    let (n, p, b) = (640, 30, 32);
    let mut d = data(dataset(n, p, None, false, 9), None);
    d.train.targets = uniforms(n, 77, -1.0, 1.0);
    let model = Model::for_data(ModelKind::Lls, LossKind::Ce, &d.train).unwrap();
    let theta = model.init(InitKind::Xavier, 2);
    let batching = Batching::new(n, b, 3, false).unwrap();
    let table = batching.epoch(1);
    let batches = Batches { table: &table, batch_size: b, n };
    let which: Vec<usize> = (0..batching.steps()).collect();
    let mut g = GpuEngine::new(gpu(), model, &d, 1, KernelPath::Fused).unwrap();
    let s = Settings { points: 100, ..settings(SvdMethod::Residual, false, Block::Row(0)) };
    let results = analysis::analyze(&mut g, &theta, &batches, &which, &s, 8, &mut |_| {}).unwrap();
    let mut ratios: Vec<f64> = results
        .iter()
        .map(|r| {
            let rows = &table[r.batch * b..(r.batch + 1) * b];
            let qx: Vec<f64> =
                rows.iter().map(|&i| (0..p).map(|j| r.q[j] as f64 * d.train.x(i as usize, j)).sum::<f64>()).collect();
            let curvature = 2.0 / b as f64 * qx.iter().map(|v| v * v).sum::<f64>();
            r.beta / (-(b as f64 / n as f64) * curvature)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let median = ratios[ratios.len() / 2];
    assert!((median - 1.0).abs() < 0.05, "median slope ratio {median}");
}

/// The engine's residuals against the f64 twins (perturb → logits → dlogits) on every device
/// path, each named by the engine's own choice: MNIST-like rows (784 u8 features, whole-word
/// loads) and unaligned f32 rows through the generated `residuals_subgroup` (`auto` on an adapter with
/// subgroups of 8, as lavapipe) and `residuals.wgsl` (`--kernels fused`); 5,000 features × 10
/// classes, where either kernel's loop passes would near llvmpipe's cap and a CPU adapter takes
/// perturb + logits + dlogits instead.
#[test]
fn residuals_match_the_twins_on_every_device_path() {
    let subgroups = steplens::gpu::subgroup::adapter_prefers(&gpu());
    let cpu = gpu().info.device_type == wgpu::DeviceType::Cpu;
    for (p, classes, u8, b, k) in [(784, 2, true, 33, 100), (45, 3, false, 7, 9), (5000, 10, true, 5, 6)] {
        let (d, model, theta) = setup(ModelKind::Softmax, Some(classes), 120, p);
        let mut d = d;
        if !u8 {
            d.train = dataset(120, p, Some(classes), false, 8);
        }
        let rows: Vec<u32> = prng::permutation(120, 2, 0)[..2 * b].to_vec();
        let ids = [6u32, 1];
        let pert = Perturbation::Uniform { scale: 0.01 };
        let req = request(&theta, &rows, &ids, b, k, pert, Block::All, 120, prng::stream::PERTURB_SVD);
        for path in [KernelPath::Auto, KernelPath::Fused] {
            let mut g = GpuEngine::new(gpu(), model, &d, 1, path).unwrap();
            let kernel = match (p, path) {
                (5000, _) if cpu => "perturb + logits + dlogits",
                (_, KernelPath::Auto) if subgroups => "residuals_subgroup",
                _ => "residuals",
            };
            let choice = g.residual_kernel_choice();
            assert_eq!(choice.path, kernel, "p={p} {path:?}: {}", choice.why);
            let got: Vec<f32> = g.perturbed_residuals(&req).unwrap().iter().map(|&v| v as f32).collect();
            let want = twin::perturbed_residuals(&model, &d.train, &req);
            assert_close(&format!("residuals p={p} classes={classes} u8={u8} {kernel}"), &got, &want, 1e-5);
        }
    }
}
