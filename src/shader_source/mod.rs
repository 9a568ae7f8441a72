//! The WGSL "preprocessor": one directive, `//! import NAME`, which inlines the library
//! `shaders/shared/NAME.wgsl` once, and the kernels generated on the host. It is shared with `build.rs` (through `#[path]`),
//! so the build validates exactly the source the engine compiles, and naga's error positions map
//! back to the original file and line.

pub mod codes;
mod compose;
mod residuals;
mod subgroup;

pub use codes::wgsl as codes_wgsl;
pub use compose::{Composed, SHARED, compose, compose_generated, library};
pub use residuals::residuals_subgroup;
pub use subgroup::{FeatureLoad, SUBGROUP_LANES, SubgroupSpec, subgroup_evaluate, subgroup_train};
