//! Helpers shared by the integration tests: random inputs (never zeros), the GPU context
//! (lavapipe in CI: a test that needs a GPU fails rather than skips when there is none), and
//! tolerance checks.
#![allow(dead_code)]

use steplens::{
    data::{Data, Dataset, Features},
    gpu::{AdapterRequest, GpuContext},
    prng,
};

/// The GPU every test uses: honours WGPU_BACKEND / WGPU_ADAPTER_NAME, else the best adapter.
pub fn gpu() -> GpuContext {
    GpuContext::new(&AdapterRequest::default())
        .unwrap_or_else(|e| panic!("these tests need a GPU adapter (CI installs Mesa's lavapipe): {e}"))
}

/// Uniform in [lo, hi) from stream `tag`.
pub fn uniforms(n: usize, tag: u32, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|i| lo + (hi - lo) * prng::uniform(99, 1000 + tag, 0, 0, i as u32)).collect()
}

/// A random dataset: n samples of p features, `classes` classes (None: real targets).
pub fn dataset(n: usize, p: usize, classes: Option<usize>, u8_features: bool, tag: u32) -> Dataset {
    let features = if u8_features {
        Features::U8((0..n * p).map(|i| 1 + (prng::hash(5, tag, 0, 0, i as u32) % 255) as u8).collect())
    } else {
        Features::F32(uniforms(n * p, tag, -1.0, 1.0))
    };
    let targets = match classes {
        Some(k) => (0..n).map(|i| (prng::hash(6, tag, 0, 0, i as u32) as usize % k) as f32).collect(),
        None => uniforms(n, tag + 1, -2.0, 2.0),
    };
    Dataset { name: format!("random {n}x{p}"), n, p, features, targets, classes }
}

pub fn data(train: Dataset, test: Option<Dataset>) -> Data {
    Data { train, test }
}

/// Normwise relative error: max |a − b| / max |b| (b the f64 reference).
pub fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-30);
    a.iter().zip(b).map(|(x, y)| (*x as f64 - y).abs()).fold(0.0, f64::max) / scale
}

#[track_caller]
pub fn assert_close(what: &str, a: &[f32], b: &[f64], tol: f64) {
    assert!(a.iter().all(|v| v.is_finite()), "{what}: non-finite output (an unwritten poisoned element?)");
    let e = rel_err(a, b);
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
}

/// NaN bytes, to poison outputs so unwritten elements show.
pub fn poison(len: usize) -> Vec<u8> {
    bytemuck::cast_slice(&vec![f32::NAN; len]).to_vec()
}
