//! What users read: run directories written atomically, tables, CSV/JSON, plots, progress bars.
//!
//! - [`files`]: [`files::OutDir`] (a run's directory), [`files::write_atomic`], CSV helpers and
//!   the default run directory name;
//! - [`table`]: aligned terminal and Markdown tables, compact numbers;
//! - [`progress`]: a progress bar that hides itself when it should;
//! - [`plot`]: PNG and SVG charts;
//! - [`comparison`], [`sweep`]: the outputs of comparisons and sweeps, sharded or not.

pub mod comparison;
pub mod files;
pub mod json_f64;
pub mod plot;
pub mod progress;
pub mod record;
pub mod sweep;
pub mod table;
