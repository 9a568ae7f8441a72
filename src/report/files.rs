//! Output directories and atomic writes. (stub: being written)
