//! The f64 CPU reference: a twin of every WGSL kernel ([`kernels`], [`loss`]) and
//! [`CpuEngine`], the [`Engine`](crate::engine::Engine) built from them. Slow and plain on
//! purpose: it is what the GPU is checked against, and the fallback where no adapter exists.

pub mod engine;
pub mod kernels;
pub mod loss;

pub use engine::CpuEngine;
