//! steplens: learning-rate schedules for SGD from the local geometry of mini-batch gradients.
//!
//! The crate is laid out as its architecture:
//! - [`data`]: MNIST (embedded 0/1 subset, full set downloaded), CSV and npy user data;
//! - [`model`]: the three models (softmax, logistic, least squares) and their parameters;
//! - [`gpu`]: the wgpu engine, one struct per WGSL kernel in `shaders/`;
//! - [`cpu`]: the f64 reference, a twin of every kernel;
//! - [`engine`]: the small interface both implement, which the orchestrators use;
//! - [`train`], [`schedule`]: training runs and learning-rate schedules;
//! - [`report`]: run directories, tables, CSV/JSON/npy and plots.

pub mod analysis;
pub mod cli;
pub mod compare;
pub mod cpu;
pub mod data;
pub mod driver;
pub mod engine;
pub mod error;
pub mod gpu;
pub mod interrupt;
pub mod local;
pub mod model;
pub mod pcg;
pub mod prng;
pub mod procedure;
pub mod rates;
pub mod report;
pub mod residual;
pub mod schedule;
pub mod shader_source;
pub mod shard;
pub mod stats;
pub mod suite;
pub mod train;
pub mod validate;

pub use error::{Error, Result};
