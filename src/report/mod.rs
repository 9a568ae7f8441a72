//! What users read: run directories written atomically, tables, CSV/JSON, plots, progress bars.

pub mod files;
pub mod plot;
pub mod progress;
pub mod table;
