//! Helpers shared by the integration tests: random inputs (never zeros), the GPU context
//! (lavapipe in CI: a test that needs a GPU fails rather than skips when there is none), and
//! tolerance checks.
#![allow(dead_code)]

use steplens::{
    data::{Data, Dataset},
    gpu::{AdapterRequest, GpuContext},
};

/// The GPU every test uses: honours WGPU_BACKEND / WGPU_ADAPTER_NAME, else the best adapter.
pub fn gpu() -> GpuContext {
    GpuContext::new(&AdapterRequest::default())
        .unwrap_or_else(|e| panic!("these tests need a GPU adapter (CI installs Mesa's lavapipe): {e}"))
}

#[allow(unused_imports)]
pub use steplens::validate::{random_dataset as dataset, rel_err, uniforms};

pub fn data(train: Dataset, test: Option<Dataset>) -> Data {
    Data { train, test }
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
