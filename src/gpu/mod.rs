//! The wgpu engine: the dataset and the parameters of R runs resident on the device, every epoch
//! (or chunk of analysed batches) recorded into one compute pass, one submit, one read-back.

pub mod context;
pub mod engine;
pub mod kernel;
pub mod kernels;
pub mod subgroup;

pub use context::{AdapterRequest, GpuContext};
pub use engine::{GpuEngine, KernelPath};
